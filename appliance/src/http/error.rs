//! The one mapping from domain errors to HTTP: `{"error":{"code","message"}}`.

use crate::domain::DomainError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after_secs: Option<u64>,
    /// Set when access was refused: what was needed (for the audit log; never sent).
    denied: Option<String>,
}

/// Marks a response as an access refusal; the audit layer records it.
#[derive(Debug, Clone)]
pub struct Denied(pub String);

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after_secs: None,
            denied: None,
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        let (status, code) = match &e {
            DomainError::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            DomainError::BadCredentials => (StatusCode::UNAUTHORIZED, "bad_credentials"),
            DomainError::TooManyAttempts { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts")
            }
            DomainError::PasswordChangeRequired => {
                (StatusCode::FORBIDDEN, "password_change_required")
            }
            DomainError::TotpRequired => (StatusCode::UNAUTHORIZED, "totp_required"),
            DomainError::TotpEnrollmentRequired => {
                (StatusCode::FORBIDDEN, "totp_enrollment_required")
            }
            DomainError::Csrf => (StatusCode::FORBIDDEN, "csrf"),
            DomainError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            DomainError::Busy { .. } => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            DomainError::ReauthenticationRequired => {
                (StatusCode::FORBIDDEN, "reauthentication_required")
            }
            DomainError::SignInFailed => (StatusCode::BAD_GATEWAY, "sign_in_failed"),
            DomainError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            DomainError::NotFound(_) | DomainError::OutOfScope(_) => {
                (StatusCode::NOT_FOUND, "not_found")
            }
            DomainError::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            DomainError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            DomainError::AgentOffline => (StatusCode::CONFLICT, "agent_offline"),
            DomainError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            DomainError::NoRole => (StatusCode::FORBIDDEN, "no_role"),
            DomainError::AgentTimeout => (StatusCode::GATEWAY_TIMEOUT, "agent_timeout"),
            DomainError::DiskFull => (StatusCode::INSUFFICIENT_STORAGE, "disk_full"),
            DomainError::StorageUnavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable")
            }
            DomainError::Store(_) | DomainError::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            // Details go to the log, never to the client.
            tracing::error!(error = %e, "request failed");
            "internal error".to_owned()
        } else {
            e.to_string()
        };
        let retry_after_secs = match e {
            DomainError::TooManyAttempts { retry_after_secs }
            | DomainError::RateLimited { retry_after_secs }
            | DomainError::Busy { retry_after_secs } => Some(retry_after_secs),
            _ => None,
        };
        let denied = match e {
            DomainError::Forbidden(p) => Some(format!("needs {p}")),
            DomainError::OutOfScope(what) => Some(format!("{what} outside the caller's teams")),
            _ => None,
        };
        Self {
            status,
            code,
            message,
            retry_after_secs,
            denied,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": { "code": self.code, "message": self.message } });
        let mut res = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            res.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        if let Some(d) = self.denied {
            res.extensions_mut().insert(Denied(d));
        }
        res
    }
}
