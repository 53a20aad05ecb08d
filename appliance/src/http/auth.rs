//! Session cookie extraction.

use super::error::ApiError;
use super::AppState;
use crate::domain::{Actor, DomainError, SESSION_COOKIE};
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use zeroize::Zeroizing;

/// The signed-in user, with the session token (for logout and password change).
pub struct Authed {
    pub actor: Actor,
    pub token: Zeroizing<String>,
}

pub fn session_token(parts: &Parts) -> Option<Zeroizing<String>> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| Zeroizing::new(value.to_owned()))
}

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = session_token(parts).ok_or(DomainError::Unauthenticated)?;
        let actor = app.session(&token)?;
        Ok(Self { actor, token })
    }
}

pub fn set_cookie(token: &str) -> String {
    format!("{SESSION_COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Strict")
}

pub fn clear_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0")
}
