//! Sign-in through an organisation's own identity systems: an LDAP directory (Active
//! Directory, OpenLDAP) with the username and password typed here, or an OpenID
//! Connect provider (authorization code flow with PKCE) in the browser.
//!
//! The protocols live behind two ports, [`Directory`] and [`OidcProvider`], which
//! `crate::sso` implements; this module decides who may sign in and as what: the
//! groups an identity brings are mapped to roles and teams (`role_map`, `team_map` in
//! the config); an identity whose groups map to no role is refused; an external
//! account never takes over a local one of the same name; its roles and mapped teams
//! follow its groups at every sign-in (grants made by hand are kept). SAML would be a
//! third port ending in the same [`Appliance::external_login`].

use super::access::ClientInfo;
use super::auth::{new_user, LoginOutcome};
use super::{lock, now_ms, Appliance, DomainError, Record, Result};
use crate::config::GroupMap;
use crate::store::records::GrantRecord;
use base64::Engine;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::pin::Pin;
use subtle::ConstantTimeEq;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Who an identity system says signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalIdentity {
    pub username: String,
    pub name: Option<String>,
    pub email: Option<String>,
    /// Group names (not DNs).
    pub groups: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    /// Wrong password, unknown user: the person is not who they say.
    #[error("the identity provider refused the sign-in")]
    Rejected,
    /// The directory or provider cannot be reached or misbehaves.
    #[error("{0}")]
    Unavailable(String),
}

/// An LDAP directory: checks a username and password, and names the user's groups.
pub trait Directory: Send + Sync {
    fn authenticate<'a>(
        &'a self,
        username: &'a str,
        password: &'a str,
    ) -> BoxFuture<'a, std::result::Result<ExternalIdentity, SsoError>>;
}

/// An OpenID Connect provider.
pub trait OidcProvider: Send + Sync {
    /// Where to send the browser (the provider's authorization endpoint with these
    /// values).
    fn authorization_url<'a>(
        &'a self,
        redirect_uri: &'a str,
        state: &'a str,
        nonce: &'a str,
        code_challenge: &'a str,
    ) -> BoxFuture<'a, std::result::Result<String, SsoError>>;

    /// Redeems the code (with the PKCE verifier) and checks the ID token (signature,
    /// issuer, audience, expiry, nonce).
    fn exchange<'a>(
        &'a self,
        redirect_uri: &'a str,
        code: &'a str,
        code_verifier: &'a str,
        nonce: &'a str,
    ) -> BoxFuture<'a, std::result::Result<ExternalIdentity, SsoError>>;
}

/// An OpenID Connect sign-in under way (between the redirect and the callback).
pub(super) struct PendingOidc {
    /// SHA-256 of the value in the browser's pre-sign-in cookie: the callback must
    /// come from the browser that started (no login CSRF).
    browser: [u8; 32],
    verifier: String,
    nonce: String,
    redirect_uri: String,
    created_ms: i64,
}

/// A sign-in must come back from the provider within this long.
const OIDC_PENDING_MS: i64 = 10 * 60_000;
const OIDC_PENDING_MAX: usize = 10_000;

fn random_b64() -> String {
    let mut b = [0u8; 32];
    OsRng.fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// The PKCE S256 challenge for a verifier (RFC 7636).
pub fn pkce_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Roles and team names that `groups` map to.
pub fn map_groups(
    groups: &[String],
    roles: &GroupMap,
    teams: &GroupMap,
) -> (Vec<String>, Vec<(String, bool)>) {
    let mut r: Vec<String> = groups
        .iter()
        .filter_map(|g| roles.get(g).cloned())
        .collect();
    r.sort();
    r.dedup();
    // Every mapped team, and whether the identity belongs to it now.
    let mut t: Vec<(String, bool)> = teams
        .iter()
        .map(|(group, team)| (team.clone(), groups.contains(group)))
        .collect();
    t.sort();
    // A team named by two groups: member if either says so.
    t.dedup_by(|b, a| {
        if a.0 == b.0 {
            a.1 |= b.1;
            true
        } else {
            false
        }
    });
    (r, t)
}

/// What a browser's start of an OpenID Connect sign-in needs.
pub struct OidcStart {
    /// The provider's authorization URL.
    pub location: String,
    /// For the pre-sign-in cookie.
    pub browser_cookie: String,
}

/// How sign-in works on this appliance (for the console's sign-in page).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SignInMethods {
    pub password: bool,
    pub ldap: bool,
    /// The single-sign-on button's text, when OpenID Connect is configured.
    pub oidc: Option<String>,
}

impl Appliance {
    pub fn sign_in_methods(&self) -> SignInMethods {
        SignInMethods {
            password: true,
            ldap: self.directory.is_some(),
            oidc: self
                .oidc
                .as_ref()
                .and(self.config.auth.oidc.as_ref())
                .map(|c| c.label.clone()),
        }
    }

    /// Signs in with a username and password: a local account, or else — when a
    /// directory is configured — the directory. A local account of that name always
    /// wins; an account that came from OpenID Connect cannot sign in with a password.
    pub async fn sign_in(
        self: &std::sync::Arc<Self>,
        username: &str,
        password: &str,
        totp_code: Option<&str>,
        client: &ClientInfo,
    ) -> Result<LoginOutcome> {
        let existing = self.store.user(username)?;
        let use_directory = match &existing {
            Some(u) => u.source.as_deref() == Some("ldap"),
            None => self.directory.is_some(),
        };
        let Some(dir) = self.directory.clone().filter(|_| use_directory) else {
            let (app, u, p, t, c) = (
                self.clone(),
                username.to_owned(),
                zeroize::Zeroizing::new(password.to_owned()),
                totp_code.map(str::to_owned),
                client.clone(),
            );
            // argon2 takes tens of milliseconds of CPU: off the async workers.
            return tokio::task::spawn_blocking(move || app.login(&u, &p, t.as_deref(), &c))
                .await
                .map_err(|e| DomainError::Internal(e.to_string()))?;
        };
        self.check_throttle(username, "ldap", client)?;
        // Names outside the local rules never reach a directory filter.
        if super::auth::check_username(username).is_err() || password.is_empty() {
            return Err(self.login_failed(
                username,
                "ldap",
                client,
                "not a valid directory sign-in",
            ));
        }
        let identity = match dir.authenticate(username, password).await {
            Ok(i) => i,
            Err(SsoError::Rejected) => {
                return Err(self.login_failed(
                    username,
                    "ldap",
                    client,
                    "the directory refused the password",
                ))
            }
            Err(SsoError::Unavailable(why)) => {
                self.audit_quietly(
                    username,
                    "ldap",
                    client,
                    Record::failed("login", format!("user:{username}"), &why),
                );
                tracing::error!(error = %why, "directory sign-in failed");
                return Err(DomainError::Unavailable(
                    "the directory cannot be reached; try again later".into(),
                ));
            }
        };
        let mut user = self.external_user(&identity, "ldap", client)?;
        self.second_factor(&mut user, totp_code, "ldap", client)?;
        self.open_session(&user, "ldap", client)
    }

    /// Starts an OpenID Connect sign-in for a browser: where to send it, and the
    /// cookie that binds the callback to it.
    pub async fn oidc_start(&self, default_redirect: &str) -> Result<OidcStart> {
        let (provider, cfg) = self.oidc_parts()?;
        let redirect_uri = cfg
            .redirect_url
            .clone()
            .unwrap_or_else(|| default_redirect.to_owned());
        let (state, nonce, verifier, browser) =
            (random_b64(), random_b64(), random_b64(), random_b64());
        let location = provider
            .authorization_url(&redirect_uri, &state, &nonce, &pkce_challenge(&verifier))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "OpenID Connect provider");
                DomainError::Unavailable(format!("the sign-in provider cannot be reached: {e}"))
            })?;
        let now = now_ms();
        let mut pending = lock(&self.oidc_pending);
        pending.retain(|_, p| now - p.created_ms < OIDC_PENDING_MS);
        if pending.len() >= OIDC_PENDING_MAX {
            return Err(DomainError::Unavailable(
                "too many sign-ins under way; try again shortly".into(),
            ));
        }
        pending.insert(
            state,
            PendingOidc {
                browser: Sha256::digest(browser.as_bytes()).into(),
                verifier,
                nonce,
                redirect_uri,
                created_ms: now,
            },
        );
        Ok(OidcStart {
            location,
            browser_cookie: browser,
        })
    }

    /// Finishes an OpenID Connect sign-in when the provider sends the browser back.
    pub async fn oidc_callback(
        &self,
        state: &str,
        code: Option<&str>,
        provider_error: Option<&str>,
        browser_cookie: Option<&str>,
        client: &ClientInfo,
    ) -> Result<LoginOutcome> {
        let (provider, _) = self.oidc_parts()?;
        let pending = lock(&self.oidc_pending)
            .remove(state)
            .filter(|p| now_ms() - p.created_ms < OIDC_PENDING_MS)
            .ok_or_else(|| {
                DomainError::invalid(
                    "state",
                    "this sign-in expired or was already used; start again",
                )
            })?;
        let presented: [u8; 32] =
            Sha256::digest(browser_cookie.unwrap_or_default().as_bytes()).into();
        let same: bool = presented.ct_eq(&pending.browser).into();
        if !same {
            self.audit_quietly(
                "unknown",
                "oidc",
                client,
                Record::failed(
                    "login",
                    None,
                    "callback from another browser than the one that started",
                ),
            );
            return Err(DomainError::invalid(
                "state",
                "this sign-in was started in another browser",
            ));
        }
        if let Some(e) = provider_error {
            let e: String = e.chars().filter(|c| !c.is_control()).take(100).collect();
            self.audit_quietly(
                "unknown",
                "oidc",
                client,
                Record::failed("login", None, &format!("provider said {e}")),
            );
            return Err(DomainError::invalid(
                "provider",
                format!("the provider refused: {e}"),
            ));
        }
        let code = code.ok_or_else(|| DomainError::invalid("code", "missing"))?;
        let identity = provider
            .exchange(
                &pending.redirect_uri,
                code,
                &pending.verifier,
                &pending.nonce,
            )
            .await
            .map_err(|e| {
                self.audit_quietly(
                    "unknown",
                    "oidc",
                    client,
                    Record::failed("login", None, &e.to_string()),
                );
                match e {
                    SsoError::Rejected => DomainError::BadCredentials,
                    SsoError::Unavailable(why) => {
                        tracing::error!(error = %why, "OpenID Connect sign-in failed");
                        DomainError::Unavailable(format!("single sign-on failed: {why}"))
                    }
                }
            })?;
        if super::auth::check_username(&identity.username).is_err() {
            return Err(self.login_failed(
                &identity.username,
                "oidc",
                client,
                "username claim is not a valid username here",
            ));
        }
        let user = self.external_user(&identity, "oidc", client)?;
        self.open_session(&user, "oidc", client)
    }

    fn oidc_parts(&self) -> Result<(std::sync::Arc<dyn OidcProvider>, &crate::config::OidcConfig)> {
        match (&self.oidc, &self.config.auth.oidc) {
            (Some(p), Some(c)) => Ok((p.clone(), c)),
            _ => Err(DomainError::Conflict(
                "single sign-on (OpenID Connect) is not configured".into(),
            )),
        }
    }

    /// The account of an external identity, created or brought up to date: roles
    /// and mapped teams from its groups. Refuses identities with no role and names
    /// that belong to a local account.
    fn external_user(
        &self,
        id: &ExternalIdentity,
        via: &'static str,
        client: &ClientInfo,
    ) -> Result<crate::store::records::UserRecord> {
        let (role_map, team_map) = match via {
            "ldap" => self
                .config
                .auth
                .ldap
                .as_ref()
                .map(|c| (&c.role_map, &c.team_map)),
            _ => self
                .config
                .auth
                .oidc
                .as_ref()
                .map(|c| (&c.role_map, &c.team_map)),
        }
        .ok_or_else(|| DomainError::Internal(format!("{via} is not configured")))?;
        let (roles, teams) = map_groups(&id.groups, role_map, team_map);
        let target = format!("user:{}", id.username);
        let mut user = match self.store.user(&id.username)? {
            Some(u) if u.source.as_deref() != Some(via) => {
                self.audit_quietly(
                    &id.username,
                    via,
                    client,
                    Record::failed("login", target, "a local or other account has this name"),
                );
                return Err(DomainError::Conflict(format!(
                    "an account named {} exists here already; ask an administrator",
                    id.username
                )));
            }
            Some(u) => u,
            None => {
                let mut u = new_user(&id.username, "", via, "!external".into(), false);
                u.grants.clear();
                u.source = Some(via.to_owned());
                u
            }
        };
        if user.disabled {
            return Err(self.login_failed(&id.username, via, client, "account disabled"));
        }
        if roles.is_empty() {
            self.audit_quietly(
                &id.username,
                via,
                client,
                Record::failed(
                    "login",
                    target,
                    &format!("no role for groups {:?}", id.groups),
                ),
            );
            return Err(DomainError::NoRole);
        }
        // Grants from the identity system follow its groups; hand-made ones stay.
        let now = now_ms();
        user.grants.retain(|g| g.granted_by != via);
        user.grants.extend(roles.iter().map(|r| GrantRecord {
            role: r.clone(),
            expires_at_ms: None,
            granted_by: via.to_owned(),
            granted_at_ms: now,
        }));
        self.store.put_user(&user)?;
        for (team, member) in teams {
            let mut t = self.team_by_name_or_create(&team)?;
            let changed = if member {
                t.members.insert(user.username.clone())
            } else {
                t.members.remove(&user.username)
            };
            if changed {
                self.store.put_team(&t)?;
            }
        }
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_map_to_roles_and_team_membership() {
        let roles: GroupMap = [
            ("auditors", "compliance_officer"),
            ("ward", "member"),
            ("x", "member"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .into();
        let teams: GroupMap = [("ward", "Ward 4"), ("x", "Ward 4"), ("lab", "Lab")]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .into();
        let g = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let (r, t) = map_groups(&g(&["auditors", "ward", "x", "unmapped"]), &roles, &teams);
        assert_eq!(r, ["compliance_officer", "member"]);
        assert_eq!(t, [("Lab".to_owned(), false), ("Ward 4".to_owned(), true)]);
        let (r, t) = map_groups(&g(&["unmapped"]), &roles, &teams);
        assert!(r.is_empty());
        assert!(t.iter().all(|(_, m)| !m));
    }

    #[test]
    fn pkce_s256_matches_rfc_7636() {
        // RFC 7636 appendix B.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
