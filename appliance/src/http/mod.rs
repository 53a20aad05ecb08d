//! HTTPS console and JSON API (axum over rustls).
//!
//! Handlers extract, call the domain, and map the result; [`error::ApiError`] is the
//! one place where domain errors become status codes. Every response, static files and
//! errors included, carries the security headers from [`security_headers`].
//!
//! Every route is added through [`Routes::add`] with the [`Access`] it needs, so the
//! route table ([`route_table`]) is the router itself. The access rule is enforced in
//! the domain (`domain::access`), never here; the authorization-matrix test walks this
//! table and checks the domain's answer for every route and every built-in role.

mod analytics;
mod assets;
mod auth;
mod backups;
mod consent;
mod erasure;
mod error;
mod exports;
mod handlers;
pub mod redirect;
mod subjects;
mod understanding;

use crate::domain::{
    ApiTokens, Appliance, AuditLog, Commands, Consent, Corrections, Credentials, Directory,
    Erasure, EventBus, ExportJobs, Fleet, Meetings, Monitoring, Permission, Principal, Retention,
    Search, SignIn,
};
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::handler::Handler;
use axum::http::{header, HeaderValue, Method, Request, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter};
use axum::Router;
use std::sync::Arc;

/// The router's state: the composed services. Each handler extracts only the
/// service it calls (`State<Arc<Meetings>>`, …).
pub type AppState = Appliance;

macro_rules! services {
    ($($field:ident: $t:ty,)*) => {$(
        impl FromRef<Appliance> for Arc<$t> {
            fn from_ref(app: &Appliance) -> Self {
                app.$field.clone()
            }
        }
    )*};
}

services! {
    audit: AuditLog,
    directory: Directory,
    sign_in: SignIn,
    credentials: Credentials,
    tokens: ApiTokens,
    fleet: Fleet,
    commands: Commands,
    consent: Consent,
    meetings: Meetings,
    understanding: crate::domain::understanding::Understanding,
    analytics: crate::domain::analytics::Analytics,
    exports: ExportJobs,
    erasure: Erasure,
    retention: Retention,
    subjects: crate::domain::subject::Subjects,
    corrections: Corrections,
    search: Search,
    monitoring: Monitoring,
    events: EventBus,
    backups: crate::domain::backups::Backups,
}

/// Largest request body accepted (JSON only; nothing here uploads files).
pub const MAX_BODY: usize = 64 * 1024;

pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, signed in or not.
    Public,
    /// Any signed-in user, about their own account.
    SignedIn,
    /// A monitoring system: an address in `metrics.allow` or `metrics.token_file`'s
    /// bearer token.
    Scraper,
    /// The permission over everything (scope `all`).
    All(Permission),
    /// The permission; with scope `teams` it reaches only the caller's teams: lists
    /// are filtered, and the object named by the path's first `{param}` (a meeting,
    /// room or agent) must belong to one of them (else 404).
    Teams(Permission),
}

/// One route of the API: method, path (axum syntax) and access rule.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
}

/// Builds the router and its table together, so neither can miss a route.
struct Routes {
    router: Router<AppState>,
    table: Vec<RouteSpec>,
    prefix: &'static str,
}

impl Routes {
    fn new(prefix: &'static str) -> Self {
        Self {
            router: Router::new(),
            table: Vec::new(),
            prefix,
        }
    }

    fn add<H, T>(mut self, method: Method, path: &'static str, access: Access, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).unwrap_or(MethodFilter::GET);
        self.router = self.router.route(path, on(filter, handler));
        self.table.push(RouteSpec {
            method,
            path,
            access,
        });
        self
    }

    fn specs(&self) -> impl Iterator<Item = RouteSpec> + '_ {
        self.table.iter().map(|r| RouteSpec {
            path: leak(format!("{}{}", self.prefix, r.path)),
            ..r.clone()
        })
    }
}

fn leak(s: String) -> &'static str {
    // The table is built a handful of times per process (router, tests).
    Box::leak(s.into_boxed_str())
}

fn api() -> Routes {
    use handlers as h;
    use Access::*;
    use Method as M;
    use Permission as P;
    Routes::new("/api/v1")
        .add(M::POST, "/session", Public, h::login)
        .add(M::DELETE, "/session", Public, h::logout)
        .add(M::GET, "/auth/methods", Public, h::sign_in_methods)
        .add(M::GET, "/auth/oidc/start", Public, h::oidc_start)
        .add(M::GET, "/auth/oidc/callback", Public, h::oidc_callback)
        .add(M::GET, "/me", SignedIn, h::me)
        .add(M::POST, "/me/password", SignedIn, h::change_password)
        .add(M::POST, "/me/totp", SignedIn, h::begin_totp)
        .add(M::POST, "/me/totp/confirm", SignedIn, h::confirm_totp)
        .add(M::DELETE, "/me/totp", SignedIn, h::remove_totp)
        .add(M::GET, "/tokens", SignedIn, h::tokens)
        .add(M::POST, "/tokens", SignedIn, h::create_token)
        .add(M::DELETE, "/tokens/{id}", SignedIn, h::revoke_token)
        .add(M::GET, "/rooms", Teams(P::RoomsRead), h::rooms)
        .add(
            M::POST,
            "/rooms/{id}/team",
            All(P::RoomsManage),
            h::set_room_team,
        )
        .add(
            M::GET,
            "/rooms/{id}/schedule",
            Teams(P::RoomsRead),
            h::schedule,
        )
        .add(
            M::POST,
            "/rooms/{id}/schedule",
            Teams(P::RoomsManage),
            h::add_schedule_entry,
        )
        .add(
            M::DELETE,
            "/rooms/{id}/schedule/{entry}",
            Teams(P::RoomsManage),
            h::delete_schedule_entry,
        )
        .add(M::GET, "/agents", Teams(P::AgentsRead), h::agents)
        .add(
            M::POST,
            "/agents/{id}/revoke",
            Teams(P::AgentsRevoke),
            h::revoke_agent,
        )
        .add(
            M::POST,
            "/agents/{id}/commands",
            Teams(P::MeetingsControl),
            h::agent_command,
        )
        .add(
            M::POST,
            "/enroll-tokens",
            All(P::AgentsEnroll),
            h::create_enroll_token,
        )
        .add(M::GET, "/meetings", Teams(P::MeetingsRead), h::meetings)
        .add(M::GET, "/search", Teams(P::MeetingsRead), h::search)
        .add(
            M::GET,
            "/meetings/{id}/transcript",
            Teams(P::MeetingsRead),
            h::transcript,
        )
        .add(
            M::GET,
            "/meetings/{id}/summary",
            Teams(P::MeetingsRead),
            understanding::summary,
        )
        .add(
            M::GET,
            "/action-items",
            Teams(P::MeetingsRead),
            understanding::action_items,
        )
        .add(
            M::PUT,
            "/meetings/{id}/action-items/{item}",
            Teams(P::MeetingsEdit),
            understanding::set_status,
        )
        .add(
            M::GET,
            "/analytics",
            Teams(P::AnalyticsRead),
            analytics::report,
        )
        .add(
            M::GET,
            "/analytics/csv",
            Teams(P::AnalyticsRead),
            analytics::table_csv,
        )
        .add(
            M::GET,
            "/analytics/svg",
            Teams(P::AnalyticsRead),
            analytics::table_svg,
        )
        .add(
            M::GET,
            "/meetings/{id}/export",
            Teams(P::MeetingsExport),
            exports::export_meeting,
        )
        .add(
            M::POST,
            "/meetings/{id}/exports",
            Teams(P::MeetingsExport),
            exports::start_export,
        )
        // A background export is its starter's alone: anyone else's is not found.
        .add(
            M::GET,
            "/exports/{id}",
            Teams(P::MeetingsExport),
            exports::export_job,
        )
        .add(
            M::GET,
            "/exports/{id}/file",
            Teams(P::MeetingsExport),
            exports::export_job_file,
        )
        .add(
            M::GET,
            "/exports/{id}/manifest",
            Teams(P::MeetingsExport),
            exports::export_job_manifest,
        )
        .add(
            M::DELETE,
            "/meetings/{id}",
            Teams(P::MeetingsDelete),
            erasure::erase_meeting,
        )
        .add(
            M::POST,
            "/meetings/{id}/hold",
            Teams(P::RetentionManage),
            erasure::hold_meeting,
        )
        .add(
            M::DELETE,
            "/meetings/{id}/hold",
            Teams(P::RetentionManage),
            erasure::lift_meeting_hold,
        )
        .add(
            M::POST,
            "/rooms/{id}/hold",
            Teams(P::RetentionManage),
            erasure::hold_room,
        )
        .add(
            M::DELETE,
            "/rooms/{id}/hold",
            Teams(P::RetentionManage),
            erasure::lift_room_hold,
        )
        .add(
            M::POST,
            "/teams/{id}/hold",
            Teams(P::RetentionManage),
            erasure::hold_team,
        )
        .add(
            M::DELETE,
            "/teams/{id}/hold",
            Teams(P::RetentionManage),
            erasure::lift_team_hold,
        )
        .add(M::GET, "/holds", All(P::RetentionManage), erasure::holds)
        .add(
            M::POST,
            "/subjects/export",
            All(P::AuditRead),
            subjects::export_subject,
        )
        .add(
            M::POST,
            "/subjects/erase",
            Teams(P::MeetingsDelete),
            subjects::erase_subject,
        )
        .add(
            M::GET,
            "/retention/policies",
            All(P::RetentionManage),
            erasure::retention_policies,
        )
        .add(
            M::PUT,
            "/retention/policies",
            All(P::RetentionManage),
            erasure::set_retention_policies,
        )
        .add(
            M::GET,
            "/retention/preview",
            All(P::RetentionManage),
            erasure::retention_preview,
        )
        .add(M::GET, "/jobs", All(P::RetentionManage), erasure::jobs)
        .add(M::GET, "/backups", All(P::BackupsManage), backups::status)
        .add(M::POST, "/backups", All(P::BackupsManage), backups::start)
        .add(
            M::GET,
            "/backups/target",
            All(P::BackupsManage),
            backups::target,
        )
        .add(
            M::POST,
            "/meetings/{id}/speakers",
            Teams(P::MeetingsEdit),
            h::name_speaker,
        )
        .add(
            M::PATCH,
            "/meetings/{id}",
            Teams(P::MeetingsEdit),
            h::update_meeting,
        )
        .add(
            M::GET,
            "/meeting-types",
            Teams(P::MeetingsRead),
            h::meeting_types,
        )
        .add(
            M::PUT,
            "/meeting-types",
            All(P::SettingsManage),
            h::set_meeting_types,
        )
        .add(
            M::PATCH,
            "/meetings/{id}/segments/{n}",
            Teams(P::MeetingsEdit),
            h::correct_segment,
        )
        .add(
            M::GET,
            "/meetings/{id}/segments/{n}/history",
            Teams(P::MeetingsRead),
            h::segment_history,
        )
        .add(
            M::POST,
            "/meetings/{id}/consent",
            Teams(P::MeetingsEdit),
            consent::record_consent,
        )
        .add(
            M::POST,
            "/meetings/{id}/team",
            Teams(P::MeetingsEdit),
            h::set_meeting_team,
        )
        .add(M::GET, "/events", SignedIn, h::events)
        .add(M::GET, "/users", All(P::UsersManage), h::users)
        .add(M::POST, "/users", All(P::UsersManage), h::add_user)
        .add(
            M::DELETE,
            "/users/{username}",
            All(P::UsersManage),
            h::delete_user,
        )
        .add(
            M::POST,
            "/users/{username}/disabled",
            All(P::UsersManage),
            h::set_user_disabled,
        )
        .add(
            M::POST,
            "/users/{username}/password",
            All(P::UsersManage),
            h::reset_password,
        )
        .add(
            M::DELETE,
            "/users/{username}/totp",
            All(P::UsersManage),
            h::reset_totp,
        )
        .add(
            M::POST,
            "/users/{username}/grants",
            All(P::RolesAssign),
            h::grant_role,
        )
        .add(
            M::DELETE,
            "/users/{username}/grants/{role}",
            All(P::RolesAssign),
            h::withdraw_role,
        )
        .add(M::GET, "/teams", SignedIn, h::teams)
        .add(M::POST, "/teams", All(P::TeamsManage), h::create_team)
        .add(
            M::DELETE,
            "/teams/{id}",
            All(P::TeamsManage),
            h::delete_team,
        )
        .add(
            M::PUT,
            "/teams/{id}/consent",
            All(P::TeamsManage),
            consent::set_team_consent,
        )
        .add(
            M::PUT,
            "/teams/{id}/trackers",
            All(P::TeamsManage),
            analytics::set_trackers,
        )
        .add(
            M::PUT,
            "/teams/{id}/members/{username}",
            All(P::TeamsManage),
            h::add_team_member,
        )
        .add(
            M::DELETE,
            "/teams/{id}/members/{username}",
            All(P::TeamsManage),
            h::remove_team_member,
        )
        .add(M::GET, "/roles", All(P::RolesAssign), h::roles)
        .add(M::POST, "/roles", All(P::RolesManage), h::create_role)
        .add(
            M::DELETE,
            "/roles/{name}",
            All(P::RolesManage),
            h::delete_role,
        )
        .add(M::GET, "/permissions", All(P::RolesAssign), h::permissions)
        .add(M::GET, "/audit", All(P::AuditRead), h::audit_entries)
        .add(M::GET, "/audit/export", All(P::AuditRead), h::export_audit)
        .add(M::GET, "/audit/verify", All(P::AuditRead), h::verify_audit)
        .add(
            M::GET,
            "/audit/public-key",
            All(P::AuditRead),
            h::audit_public_key,
        )
}

fn root() -> Routes {
    Routes::new("")
        .add(Method::GET, "/healthz", Access::Public, handlers::healthz)
        .add(Method::GET, "/readyz", Access::Public, handlers::readyz)
        .add(Method::GET, "/metrics", Access::Scraper, handlers::metrics)
}

/// Every route with its access rule (the authorization matrix test walks it).
pub fn route_table() -> Vec<RouteSpec> {
    let (api, root) = (api(), root());
    api.specs().chain(root.specs()).collect()
}

pub fn router(app: AppState) -> Router {
    let api = api().router.fallback(handlers::api_not_found);
    let timeout = std::time::Duration::from_secs(app.config.http.request_timeout_secs);
    root()
        .router
        .nest("/api/v1", api)
        .fallback(assets::serve)
        .layer(middleware::from_fn(same_origin_writes))
        .layer(middleware::from_fn_with_state(app.clone(), audit_denials))
        .layer(middleware::from_fn_with_state(app.clone(), rate_limit))
        .layer(middleware::from_fn_with_state(app.clone(), record_metrics))
        .layer(middleware::from_fn(request_span))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(security_headers))
        .with_state(app)
}

/// The route pattern of a request (never the concrete path: ids would make unbounded
/// labels and audit keys).
fn route_of(req: &Request<axum::body::Body>) -> String {
    req.extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(
            || {
                if req.uri().path().starts_with("/api/") {
                    "unmatched".to_owned()
                } else {
                    "console".to_owned()
                }
            },
            |m| m.as_str().to_owned(),
        )
}

/// Every request runs in a span naming its method, route and a request id (also
/// sent back as `X-Request-Id`), so every log line says whose work it was.
async fn request_span(req: Request<axum::body::Body>, next: Next) -> Response {
    use rand_core::RngCore;
    use tracing::Instrument;
    let mut raw = [0u8; 8];
    rand_core::OsRng.fill_bytes(&mut raw);
    let id = hex::encode(raw);
    let span = tracing::info_span!("http", method = %req.method(), route = %route_of(&req), request_id = %id);
    let mut res = next.run(req).instrument(span).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert("x-request-id", v);
    }
    res
}

/// Counts every request by method, route pattern and status, with its latency.
async fn record_metrics(
    axum::extract::State(monitoring): axum::extract::State<Arc<Monitoring>>,
    req: Request<axum::body::Body>,
    next: Next,
) -> Response {
    let started = std::time::Instant::now();
    let method = req.method().to_string();
    let route = route_of(&req);
    let res = next.run(req).await;
    monitoring.metrics.http_request(
        &method,
        &route,
        res.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    res
}

/// Rate limits (`http.rate_limit_*`): every request against its source address; an
/// API request also against its API token or signed-in user once that verified.
async fn rate_limit(
    axum::extract::State(app): axum::extract::State<AppState>,
    req: Request<axum::body::Body>,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let ip = auth::client_info(&parts).ip;
    let principal = if parts.uri.path().starts_with("/api/") {
        match auth::bearer(&parts) {
            Some(t) => {
                let tokens = app.tokens.clone();
                tokio::task::spawn_blocking(move || tokens.principal(&t))
                    .await
                    .ok()
                    .flatten()
                    .map(Principal::Token)
            }
            None => auth::session_token(&parts)
                .and_then(|t| app.sign_in.session_user(&t))
                .map(Principal::User),
        }
    } else {
        None
    };
    if let Err(e) = app.limits.admit(principal.as_ref(), ip) {
        return error::ApiError::from(e).into_response();
    }
    next.run(Request::from_parts(parts, body)).await
}

/// Records refused requests (403, or 404 for an object outside the caller's teams)
/// in the audit log, with the caller when one was signed in: the first of a source,
/// caller and route in a minute at once, repeats counted (see `AuditLog::denied`).
async fn audit_denials(
    axum::extract::State(audit): axum::extract::State<Arc<AuditLog>>,
    mut req: Request<axum::body::Body>,
    next: Next,
) -> Response {
    let slot = auth::ActorSlot::default();
    req.extensions_mut().insert(slot.clone());
    let route = format!("{} {}", req.method(), route_of(&req));
    let (parts, body) = req.into_parts();
    let client = auth::client_info(&parts);
    let request = format!("{} {}", parts.method, parts.uri.path());
    let res = next.run(Request::from_parts(parts, body)).await;
    if let Some(error::Denied(what)) = res.extensions().get::<error::Denied>() {
        let what = what.clone();
        let actor = slot.get();
        let _ = tokio::task::spawn_blocking(move || {
            audit.denied(actor.as_ref(), &route, &request, &what, &client)
        })
        .await;
    }
    res
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

#[cfg(test)]
mod tests {
    #[test]
    fn table_has_every_route_once_with_a_rule() {
        let table = super::route_table();
        let mut seen = std::collections::BTreeSet::new();
        for r in &table {
            assert!(
                seen.insert((r.method.to_string(), r.path)),
                "{} {} twice",
                r.method,
                r.path
            );
        }
        assert!(table.len() > 30);
        // Building the router from the same table must not panic (overlaps, syntax).
        let _ = super::api().router;
    }
}
