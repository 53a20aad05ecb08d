//! Who is calling: a console session cookie or an API token ([`Authed`]), and where
//! the request came from ([`Client`], for the audit log and sign-in throttling).
//!
//! A cookie session must echo its CSRF token in `X-CSRF-Token` on every request that
//! is not GET, HEAD or OPTIONS; a bearer token needs none (browsers never attach it).

use super::error::ApiError;
use super::AppState;
use crate::domain::{Actor, ClientInfo, DomainError, SESSION_COOKIE};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, Method};
use std::net::SocketAddr;
use zeroize::Zeroizing;

/// How the caller authenticated.
#[derive(Clone)]
pub enum Credential {
    /// A console session: its token (from the cookie).
    Session(Zeroizing<String>),
    /// `Authorization: Bearer` with an API token.
    Bearer(Zeroizing<String>),
}

/// The caller, with the credential it presented.
pub struct Authed {
    pub actor: Actor,
    pub credential: Credential,
}

impl Authed {
    /// The console session's token (empty for API tokens).
    pub fn session_token(&self) -> &str {
        match &self.credential {
            Credential::Session(t) => t.as_str(),
            Credential::Bearer(_) => "",
        }
    }
}

pub const CSRF_HEADER: &str = "x-csrf-token";

/// The value of `Authorization: Bearer …`.
pub fn bearer(parts: &Parts) -> Option<Zeroizing<String>> {
    parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| Zeroizing::new(t.trim().to_owned()))
}

pub fn session_token(parts: &Parts) -> Option<Zeroizing<String>> {
    cookie(parts, SESSION_COOKIE)
}

/// Where the audit layer learns who made a request that was then refused.
#[derive(Clone, Default)]
pub struct ActorSlot(std::sync::Arc<std::sync::Mutex<Option<Actor>>>);

impl ActorSlot {
    fn set(&self, actor: &Actor) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(actor.clone());
    }

    pub fn get(&self) -> Option<Actor> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The peer address and user agent of a request.
pub struct Client(pub ClientInfo);

pub fn client_info(parts: &Parts) -> ClientInfo {
    let ip = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let ua = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    ClientInfo::new(ip, ua)
}

impl FromRequestParts<AppState> for Client {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        Ok(Self(client_info(parts)))
    }
}

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let client = client_info(parts);
        let credential = match bearer(parts) {
            Some(t) => Credential::Bearer(t),
            None => Credential::Session(session_token(parts).ok_or(DomainError::Unauthenticated)?),
        };
        if let Credential::Session(token) = &credential {
            if !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
                let presented = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
                app.sign_in.check_csrf(token, presented)?;
            }
        }
        let actor = resolve(app, &credential, &client, true).await?;
        if let Some(slot) = parts.extensions.get::<ActorSlot>() {
            slot.set(&actor);
        }
        Ok(Self { actor, credential })
    }
}

/// The actor a credential acts as now (storage work, off the async workers);
/// `touch` counts a session's use as activity.
pub async fn resolve(
    app: &AppState,
    credential: &Credential,
    client: &ClientInfo,
    touch: bool,
) -> Result<Actor, ApiError> {
    let (sign_in, tokens, credential, client) = (
        app.sign_in.clone(),
        app.tokens.clone(),
        credential.clone(),
        client.clone(),
    );
    let actor = tokio::task::spawn_blocking(move || match &credential {
        Credential::Bearer(t) => tokens.actor_for(t, &client),
        Credential::Session(t) => sign_in.session_actor(t, &client, touch),
    })
    .await
    .map_err(|e| DomainError::Internal(e.to_string()))??;
    Ok(actor)
}

/// Binds an OpenID Connect sign-in to the browser that started it. `Lax`: it must
/// come back on the provider's (cross-site) redirect; it holds no authority itself.
const OIDC_COOKIE: &str = "__Host-roomscribe_oidc";

pub fn oidc_cookie(value: &str) -> String {
    format!("{OIDC_COOKIE}={value}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=600")
}

pub fn clear_oidc_cookie() -> String {
    format!("{OIDC_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0")
}

pub fn oidc_cookie_value(parts: &Parts) -> Option<Zeroizing<String>> {
    cookie(parts, OIDC_COOKIE)
}

fn cookie(parts: &Parts, name: &str) -> Option<Zeroizing<String>> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| Zeroizing::new(value.to_owned()))
}

pub fn set_cookie(token: &str) -> String {
    format!("{SESSION_COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Strict")
}

pub fn clear_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0")
}
