//! HTTPS console and JSON API (axum over rustls).
//!
//! Handlers extract, call the domain, and map the result; [`error::ApiError`] is the
//! one place where domain errors become status codes. Every response, static files and
//! errors included, carries the security headers from [`security_headers`].

mod assets;
mod auth;
mod error;
mod handlers;

use crate::domain::Appliance;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, Method, Request, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use std::sync::Arc;

pub type AppState = Arc<Appliance>;

/// Largest request body accepted (JSON only; nothing here uploads files).
pub const MAX_BODY: usize = 64 * 1024;

pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

pub fn router(app: AppState) -> Router {
    let api = Router::new()
        .route("/session", post(handlers::login).delete(handlers::logout))
        .route("/me", get(handlers::me))
        .route("/me/password", post(handlers::change_password))
        .route("/rooms", get(handlers::rooms))
        .route("/agents", get(handlers::agents))
        .route("/agents/{id}/revoke", post(handlers::revoke_agent))
        .route("/agents/{id}/commands", post(handlers::agent_command))
        .route(
            "/rooms/{id}/schedule",
            get(handlers::schedule).post(handlers::add_schedule_entry),
        )
        .route(
            "/rooms/{id}/schedule/{entry}",
            delete(handlers::delete_schedule_entry),
        )
        .route("/enroll-tokens", post(handlers::create_enroll_token))
        .route("/meetings", get(handlers::meetings))
        .route("/meetings/{id}/transcript", get(handlers::transcript))
        .route("/meetings/{id}/speakers", post(handlers::name_speaker))
        .route("/events", get(handlers::events))
        .fallback(handlers::api_not_found);
    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(handlers::healthz))
        .route("/readyz", get(handlers::readyz))
        .fallback(assets::serve)
        .layer(middleware::from_fn(same_origin_writes))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(security_headers))
        .with_state(app)
}

async fn security_headers(req: Request<axum::body::Body>, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(h, "content-security-policy", CONTENT_SECURITY_POLICY);
    set(
        h,
        "strict-transport-security",
        "max-age=31536000; includeSubDomains",
    );
    set(h, "x-content-type-options", "nosniff");
    set(h, "referrer-policy", "no-referrer");
    set(h, "x-frame-options", "DENY");
    set(h, "cross-origin-opener-policy", "same-origin");
    set(
        h,
        "permissions-policy",
        "microphone=(), camera=(), geolocation=()",
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, "cache-control", "no-store");
    }
    res
}

/// CSRF defence in depth beside SameSite=Strict cookies: a state-changing request that
/// carries an Origin header must come from this very origin.
async fn same_origin_writes(req: Request<axum::body::Body>, next: Next) -> Response {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe {
        if let Some(origin) = req.headers().get(header::ORIGIN) {
            let host = req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("");
            if origin.to_str().ok() != Some(format!("https://{host}").as_str()) {
                return error::ApiError::new(
                    StatusCode::FORBIDDEN,
                    "cross_origin",
                    "cross-origin request refused",
                )
                .into_response();
            }
        }
    }
    next.run(req).await
}
