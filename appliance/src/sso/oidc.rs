//! OpenID Connect (authorization code flow with PKCE, RFC 7636): discovery of the
//! provider's endpoints, the authorization URL, the code exchange with the client's
//! secret, and the ID token's signature (JWKS) and claims ([`super::jwt`]). Only
//! HTTPS; the provider's certificate is checked against `ca_file` or the system store.

use super::jwt::{self, Jwk, JwkSet};
use super::{secret_file, tls_config};
use crate::config::OidcConfig;
use crate::domain::sso::{BoxFuture, ExternalIdentity, OidcProvider, SsoError};
use crate::urlencode::component;
use serde::Deserialize;
use serde_json::Value;
use std::time::{Duration, Instant};

/// Discovery and keys are fetched again after this long (keys also on an unknown kid).
const CACHE_FOR: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
}

#[derive(Deserialize)]
struct TokenResponse {
    id_token: Option<String>,
}

pub struct Oidc {
    cfg: OidcConfig,
    secret: zeroize::Zeroizing<String>,
    http: reqwest::Client,
    discovery: tokio::sync::Mutex<Option<(Discovery, Instant)>>,
    keys: tokio::sync::Mutex<Option<(Vec<Jwk>, Instant)>>,
}

fn unavailable(what: &str) -> impl Fn(reqwest::Error) -> SsoError + '_ {
    move |e| SsoError::Unavailable(format!("{what}: {e}"))
}

impl Oidc {
    pub fn new(cfg: OidcConfig) -> anyhow::Result<Self> {
        anyhow::ensure!(
            cfg.issuer.starts_with("https://"),
            "auth.oidc.issuer: must be an https:// URL, got {:?}",
            cfg.issuer
        );
        let secret = secret_file(&cfg.client_secret_file, "auth.oidc.client_secret_file")?;
        let tls = tls_config(cfg.ca_file.as_deref(), "auth.oidc.ca_file")?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(cfg.timeout_secs))
            .build()?;
        Ok(Self {
            cfg,
            secret,
            http,
            discovery: tokio::sync::Mutex::new(None),
            keys: tokio::sync::Mutex::new(None),
        })
    }

    async fn discovery(&self) -> Result<Discovery, SsoError> {
        let mut cached = self.discovery.lock().await;
        if let Some((d, at)) = cached.as_ref() {
            if at.elapsed() < CACHE_FOR {
                return Ok(d.clone());
            }
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.cfg.issuer.trim_end_matches('/')
        );
        let d: Discovery = self
            .http
            .get(&url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(unavailable("fetching the provider's discovery document"))?
            .json()
            .await
            .map_err(unavailable("reading the discovery document"))?;
        if d.issuer != self.cfg.issuer {
            return Err(SsoError::Unavailable(format!(
                "the provider calls itself {:?}, not the configured issuer {:?}",
                d.issuer, self.cfg.issuer
            )));
        }
        *cached = Some((d.clone(), Instant::now()));
        Ok(d)
    }

    async fn fetch_keys(&self, d: &Discovery, force: bool) -> Result<Vec<Jwk>, SsoError> {
        let mut cached = self.keys.lock().await;
        if let Some((k, at)) = cached.as_ref() {
            if !force && at.elapsed() < CACHE_FOR {
                return Ok(k.clone());
            }
        }
        let set: JwkSet = self
            .http
            .get(&d.jwks_uri)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(unavailable("fetching the provider's keys"))?
            .json()
            .await
            .map_err(unavailable("reading the provider's keys"))?;
        *cached = Some((set.keys.clone(), Instant::now()));
        Ok(set.keys)
    }

    async fn redeem(
        &self,
        redirect_uri: &str,
        code: &str,
        verifier: &str,
        nonce: &str,
    ) -> Result<ExternalIdentity, SsoError> {
        let d = self.discovery().await?;
        let response = self
            .http
            .post(&d.token_endpoint)
            // RFC 6749 2.3.1: the Basic credentials are form-encoded first.
            .basic_auth(
                component(&self.cfg.client_id),
                Some(component(&self.secret)),
            )
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("code_verifier", verifier),
            ])
            .send()
            .await
            .map_err(unavailable("redeeming the code"))?;
        if response.status().is_client_error() {
            // An invalid, reused or stolen code.
            return Err(SsoError::Rejected);
        }
        let tokens: TokenResponse = response
            .error_for_status()
            .map_err(unavailable("redeeming the code"))?
            .json()
            .await
            .map_err(unavailable("reading the token response"))?;
        let id_token = tokens
            .id_token
            .ok_or_else(|| SsoError::Unavailable("the provider sent no ID token".into()))?;
        let keys = self.fetch_keys(&d, false).await?;
        let claims = match jwt::verify_signature(&id_token, &keys) {
            Err(jwt::JwtError::UnknownKey) => {
                // The provider may have rotated its keys.
                let keys = self.fetch_keys(&d, true).await?;
                jwt::verify_signature(&id_token, &keys)
            }
            other => other,
        }
        .map_err(|e| SsoError::Unavailable(format!("ID token: {e}")))?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        jwt::check_id_token(&claims, &self.cfg.issuer, &self.cfg.client_id, nonce, now)
            .map_err(|e| SsoError::Unavailable(format!("ID token: {e}")))?;
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
        let username = text(&self.cfg.username_claim).ok_or_else(|| {
            SsoError::Unavailable(format!(
                "the ID token has no {:?} claim (auth.oidc.username_claim)",
                self.cfg.username_claim
            ))
        })?;
        let groups = match claims.get(&self.cfg.groups_claim) {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|g| g.as_str().map(str::to_owned))
                .collect(),
            Some(Value::String(g)) => vec![g.clone()],
            _ => vec![],
        };
        let sub = text("sub")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| SsoError::Unavailable("the ID token has no sub claim".into()))?;
        Ok(ExternalIdentity {
            // The issuer was checked to be the configured one.
            subject: format!("oidc:{}#{sub}", self.cfg.issuer),
            username,
            name: text("name"),
            email: text("email"),
            groups,
        })
    }
}

impl OidcProvider for Oidc {
    fn authorization_url<'a>(
        &'a self,
        redirect_uri: &'a str,
        state: &'a str,
        nonce: &'a str,
        code_challenge: &'a str,
    ) -> BoxFuture<'a, Result<String, SsoError>> {
        Box::pin(async move {
            let d = self.discovery().await?;
            let scope = self.cfg.scopes.join(" ");
            let url = reqwest::Url::parse_with_params(
                &d.authorization_endpoint,
                &[
                    ("response_type", "code"),
                    ("client_id", self.cfg.client_id.as_str()),
                    ("redirect_uri", redirect_uri),
                    ("scope", scope.as_str()),
                    ("state", state),
                    ("nonce", nonce),
                    ("code_challenge", code_challenge),
                    ("code_challenge_method", "S256"),
                ],
            )
            .map_err(|e| SsoError::Unavailable(format!("authorization endpoint: {e}")))?;
            Ok(url.to_string())
        })
    }

    fn exchange<'a>(
        &'a self,
        redirect_uri: &'a str,
        code: &'a str,
        code_verifier: &'a str,
        nonce: &'a str,
    ) -> BoxFuture<'a, Result<ExternalIdentity, SsoError>> {
        Box::pin(self.redeem(redirect_uri, code, code_verifier, nonce))
    }
}
