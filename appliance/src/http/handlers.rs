//! Route handlers: extract, call the domain, map. Nothing else belongs here.

use super::auth::{
    clear_cookie, clear_oidc_cookie, oidc_cookie, oidc_cookie_value, session_token, set_cookie,
    Authed, Client,
};
use super::error::ApiError;
use super::AppState;
use crate::domain::sso::SignInMethods;
use crate::domain::views::{
    AgentView, CommandResultView, EnrollTokenView, MeView, MeetingView, NewTokenView,
    PermissionView, RoleView, RoomView, ScheduleView, TeamView, TokenView, TotpSetupView,
    TranscriptView, UserView,
};
use crate::domain::{DomainError, ExportFormat};
use axum::extract::{Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{AppendHeaders, IntoResponse};
use axum::Json;
use serde::Deserialize;
use std::convert::Infallible;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::{Stream, StreamExt};

type ApiResult<T> = Result<Json<T>, ApiError>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    username: String,
    password: String,
    /// The code from an authenticator app, for users with a second factor.
    totp: Option<String>,
}

pub async fn login(
    State(app): State<AppState>,
    Client(client): Client,
    Json(body): Json<LoginBody>,
) -> Result<impl IntoResponse, ApiError> {
    let outcome = app
        .sign_in(
            &body.username,
            &body.password,
            body.totp.as_deref(),
            &client,
        )
        .await?;
    let mut me = app.me_view(&outcome.actor);
    me.csrf_token = Some(outcome.csrf_token.clone());
    Ok((
        AppendHeaders([(header::SET_COOKIE, set_cookie(&outcome.token))]),
        Json(me),
    ))
}

/// How one may sign in here (password, directory, single sign-on button).
pub async fn sign_in_methods(State(app): State<AppState>) -> Json<SignInMethods> {
    Json(app.sign_in_methods())
}

/// Starts a single sign-on: to the provider, with a cookie binding this browser.
pub async fn oidc_start(
    State(app): State<AppState>,
    parts: Parts,
) -> Result<impl IntoResponse, ApiError> {
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let start = app
        .oidc_start(&format!("https://{host}/api/v1/auth/oidc/callback"))
        .await?;
    Ok((
        StatusCode::SEE_OTHER,
        AppendHeaders([
            (header::LOCATION, start.location),
            (header::SET_COOKIE, oidc_cookie(&start.browser_cookie)),
        ]),
    ))
}

#[derive(Deserialize)]
pub struct OidcCallback {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
}

/// The provider sends the browser back here: signed in and on to the console, or
/// back to the sign-in page with the reason.
pub async fn oidc_callback(
    State(app): State<AppState>,
    Client(client): Client,
    Query(q): Query<OidcCallback>,
    parts: Parts,
) -> impl IntoResponse {
    let browser = oidc_cookie_value(&parts);
    let outcome = app
        .oidc_callback(
            q.state.as_deref().unwrap_or_default(),
            q.code.as_deref(),
            q.error.as_deref(),
            browser.as_deref().map(|s| s.as_str()),
            &client,
        )
        .await;
    let (to, session) = match outcome {
        Ok(o) => ("/".to_owned(), Some(set_cookie(&o.token))),
        Err(e) => (
            format!(
                "/?sso_error={}",
                crate::urlencode::component(&e.to_string())
            ),
            None,
        ),
    };
    let mut headers = vec![
        (header::LOCATION, to),
        (header::SET_COOKIE, clear_oidc_cookie()),
    ];
    if let Some(c) = session {
        headers.push((header::SET_COOKIE, c));
    }
    (StatusCode::SEE_OTHER, AppendHeaders(headers))
}

/// Runs CPU-heavy domain work (argon2) off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, DomainError> + Send + 'static,
) -> Result<T, ApiError> {
    Ok(tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| DomainError::Internal(e.to_string()))??)
}

pub async fn logout(State(app): State<AppState>, parts: Parts) -> impl IntoResponse {
    if let Some(token) = session_token(&parts) {
        app.logout(&token, &super::auth::client_info(&parts));
    }
    (
        StatusCode::NO_CONTENT,
        AppendHeaders([(header::SET_COOKIE, clear_cookie())]),
    )
}

pub async fn me(State(app): State<AppState>, a: Authed) -> Json<MeView> {
    let mut me = app.me_view(&a.actor);
    me.csrf_token = app.csrf_token(&a.token);
    Json(me)
}

/// Starts setting up a TOTP second factor: the secret for the authenticator app.
pub async fn begin_totp(
    State(app): State<AppState>,
    a: Authed,
) -> Result<(StatusCode, Json<TotpSetupView>), ApiError> {
    Ok((StatusCode::CREATED, Json(app.begin_totp(&a.actor)?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeBody {
    code: String,
}

pub async fn confirm_totp(
    State(app): State<AppState>,
    a: Authed,
    Json(b): Json<CodeBody>,
) -> Result<StatusCode, ApiError> {
    app.confirm_totp(&a.actor, &b.code)?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn remove_totp(
    State(app): State<AppState>,
    a: Authed,
    Json(b): Json<CodeBody>,
) -> Result<StatusCode, ApiError> {
    app.remove_totp(&a.actor, &b.code)?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn reset_totp(
    State(app): State<AppState>,
    a: Authed,
    Path(username): Path<String>,
) -> Result<StatusCode, ApiError> {
    app.reset_totp(&a.actor, &username)?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn tokens(State(app): State<AppState>, a: Authed) -> ApiResult<Vec<TokenView>> {
    Ok(Json(app.tokens(&a.actor)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTokenBody {
    name: String,
    permissions: Vec<String>,
    expires_at_ms: Option<i64>,
}

/// Creates an API token; its text is in this answer only.
pub async fn create_token(
    State(app): State<AppState>,
    a: Authed,
    Json(b): Json<NewTokenBody>,
) -> Result<(StatusCode, Json<NewTokenView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(app.create_token(&a.actor, &b.name, &b.permissions, b.expires_at_ms)?),
    ))
}

pub async fn revoke_token(
    State(app): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
) -> ApiResult<TokenView> {
    Ok(Json(app.revoke_token(&a.actor, &id)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    current_password: String,
    new_password: String,
}

pub async fn change_password(
    State(app): State<AppState>,
    a: Authed,
    Json(b): Json<PasswordBody>,
) -> Result<StatusCode, ApiError> {
    blocking(move || app.change_password(&a.actor, &b.current_password, &b.new_password, &a.token))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn rooms(State(app): State<AppState>, a: Authed) -> ApiResult<Vec<RoomView>> {
    Ok(Json(app.rooms(&a.actor)?))
}

pub async fn agents(State(app): State<AppState>, a: Authed) -> ApiResult<Vec<AgentView>> {
    Ok(Json(app.agents(&a.actor)?))
}

pub async fn revoke_agent(
    State(app): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
) -> ApiResult<AgentView> {
    Ok(Json(app.revoke_agent(&a.actor, &id)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandBody {
    action: String,
    title: Option<String>,
}

/// Sends a signed meeting command to an online agent; answers with the agent's reply.
pub async fn agent_command(
    State(app): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
    Json(body): Json<CommandBody>,
) -> ApiResult<CommandResultView> {
    Ok(Json(
        app.meeting_command(&a.actor, &id, &body.action, body.title)
            .await?,
    ))
}

pub async fn schedule(
    State(app): State<AppState>,
    a: Authed,
    Path(room): Path<String>,
) -> ApiResult<ScheduleView> {
    Ok(Json(app.schedule(&a.actor, &room)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleEntryBody {
    title: String,
    starts_at_ms: i64,
    ends_at_ms: i64,
}

pub async fn add_schedule_entry(
    State(app): State<AppState>,
    a: Authed,
    Path(room): Path<String>,
    Json(body): Json<ScheduleEntryBody>,
) -> ApiResult<ScheduleView> {
    Ok(Json(app.add_schedule_entry(
        &a.actor,
        &room,
        &body.title,
        body.starts_at_ms,
        body.ends_at_ms,
    )?))
}

pub async fn delete_schedule_entry(
    State(app): State<AppState>,
    a: Authed,
    Path((room, entry)): Path<(String, String)>,
) -> ApiResult<ScheduleView> {
    Ok(Json(app.delete_schedule_entry(&a.actor, &room, &entry)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollTokenBody {
    room: String,
    team: Option<String>,
    ttl_minutes: Option<u64>,
}

pub async fn create_enroll_token(
    State(app): State<AppState>,
    a: Authed,
    Json(b): Json<EnrollTokenBody>,
) -> Result<(StatusCode, Json<EnrollTokenView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(app.create_enroll_token(&a.actor, &b.room, b.team.as_deref(), b.ttl_minutes)?),
    ))
}

pub async fn meetings(State(app): State<AppState>, a: Authed) -> ApiResult<Vec<MeetingView>> {
    Ok(Json(app.meetings(&a.actor)?))
}

pub async fn transcript(
    State(app): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
) -> ApiResult<TranscriptView> {
    Ok(Json(app.transcript(&a.actor, &id)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpeakerNameBody {
    pub speaker: String,
    pub name: String,
}

pub async fn name_speaker(
    State(app): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
    Json(body): Json<SpeakerNameBody>,
) -> ApiResult<MeetingView> {
    Ok(Json(app.name_speaker(
        &a.actor,
        &id,
        &body.speaker,
        &body.name,
    )?))
}

/// Server-sent events: `segment`, `caption`, `meeting`, `meeting_event` and `agent`,
/// each with a JSON body.
pub async fn events(
    State(app): State<AppState>,
    a: Authed,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    a.actor.require_active()?;
    let (actor, token) = (a.actor, a.token);
    let stream = BroadcastStream::new(app.subscribe())
        // A signed-out or expired session ends the stream at the next event.
        .take_while({
            let app = app.clone();
            move |_| app.session_open(&token)
        })
        .filter_map(move |p| {
            let p = p.ok().filter(|p| app.visible_to(&actor, p))?;
            let e = p.event;
            let name = match &e {
                crate::domain::views::Event::Segment { .. } => "segment",
                crate::domain::views::Event::Meeting { .. } => "meeting",
                crate::domain::views::Event::Agent { .. } => "agent",
                crate::domain::views::Event::Caption { .. } => "caption",
                crate::domain::views::Event::MeetingEvent { .. } => "meeting_event",
            };
            SseEvent::default().event(name).json_data(&e).ok().map(Ok)
        });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn readyz(State(app): State<AppState>) -> (StatusCode, &'static str) {
    if app.ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "storage unavailable")
    }
}

/// Prometheus text exposition, for a scraper (see `Access::Scraper`).
pub async fn metrics(
    State(app): State<AppState>,
    Client(client): Client,
    parts: Parts,
) -> Result<impl IntoResponse, ApiError> {
    let bearer = super::auth::bearer(&parts);
    app.may_scrape(client.ip, bearer.as_deref().map(|s| s.as_str()))?;
    let body = tokio::task::spawn_blocking(move || app.render_metrics())
        .await
        .map_err(|e| DomainError::Internal(e.to_string()))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    ))
}

pub async fn api_not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such API route")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamIdBody {
    team_id: Option<String>,
}

pub async fn set_room_team(
    State(app): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
    Json(b): Json<TeamIdBody>,
) -> ApiResult<RoomView> {
    Ok(Json(app.set_room_team(
        &a.actor,
        &id,
        b.team_id.as_deref(),
    )?))
}

pub async fn set_meeting_team(
    State(app): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
    Json(b): Json<TeamIdBody>,
) -> ApiResult<MeetingView> {
    let team = b
        .team_id
        .ok_or_else(|| DomainError::invalid("team_id", "a meeting always belongs to a team"))?;
    Ok(Json(app.set_meeting_team(&a.actor, &id, &team)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    format: Option<String>,
}

/// A transcript as a download (`?format=json|txt`, default json).
pub async fn export_meeting(
    State(app): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
    Query(q): Query<ExportQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let format = ExportFormat::parse(q.format.as_deref().unwrap_or("json"))?;
    let e = app.export_meeting(&a.actor, &id, format)?;
    Ok((
        [
            (header::CONTENT_TYPE, e.content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", e.filename),
            ),
        ],
        e.body,
    ))
}

pub async fn users(State(app): State<AppState>, a: Authed) -> ApiResult<Vec<UserView>> {
    Ok(Json(app.users(&a.actor)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUserBody {
    username: String,
    /// A one-time password: the user must change it at first sign-in.
    password: String,
    role: String,
    #[serde(default)]
    teams: Vec<String>,
}

pub async fn add_user(
    State(app): State<AppState>,
    a: Authed,
    Json(b): Json<NewUserBody>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let view = blocking(move || {
        app.create_user(&a.actor, &b.username, &b.role, &b.password, &b.teams, true)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

pub async fn delete_user(
    State(app): State<AppState>,
    a: Authed,
    Path(username): Path<String>,
) -> Result<StatusCode, ApiError> {
    app.delete_user(&a.actor, &username)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisabledBody {
    disabled: bool,
}

pub async fn set_user_disabled(
    State(app): State<AppState>,
    a: Authed,
    Path(username): Path<String>,
    Json(b): Json<DisabledBody>,
) -> ApiResult<UserView> {
    Ok(Json(
        app.set_user_disabled(&a.actor, &username, b.disabled)?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordBody {
    password: String,
}

pub async fn reset_password(
    State(app): State<AppState>,
    a: Authed,
    Path(username): Path<String>,
    Json(b): Json<ResetPasswordBody>,
) -> Result<StatusCode, ApiError> {
    blocking(move || app.reset_password(&a.actor, &username, &b.password)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantBody {
    role: String,
    expires_at_ms: Option<i64>,
}

pub async fn grant_role(
    State(app): State<AppState>,
    a: Authed,
    Path(username): Path<String>,
    Json(b): Json<GrantBody>,
) -> ApiResult<UserView> {
    Ok(Json(app.grant_role(
        &a.actor,
        &username,
        &b.role,
        b.expires_at_ms,
    )?))
}

pub async fn withdraw_role(
    State(app): State<AppState>,
    a: Authed,
    Path((username, role)): Path<(String, String)>,
) -> ApiResult<UserView> {
    Ok(Json(app.withdraw_role(&a.actor, &username, &role)?))
}

pub async fn teams(State(app): State<AppState>, a: Authed) -> ApiResult<Vec<TeamView>> {
    Ok(Json(app.teams(&a.actor)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTeamBody {
    name: String,
}

pub async fn create_team(
    State(app): State<AppState>,
    a: Authed,
    Json(b): Json<NewTeamBody>,
) -> Result<(StatusCode, Json<TeamView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(app.create_team(&a.actor, &b.name)?),
    ))
}

pub async fn delete_team(
    State(app): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    app.delete_team(&a.actor, &id)?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn add_team_member(
    State(app): State<AppState>,
    a: Authed,
    Path((id, username)): Path<(String, String)>,
) -> ApiResult<TeamView> {
    Ok(Json(app.set_team_member(&a.actor, &id, &username, true)?))
}

pub async fn remove_team_member(
    State(app): State<AppState>,
    a: Authed,
    Path((id, username)): Path<(String, String)>,
) -> ApiResult<TeamView> {
    Ok(Json(app.set_team_member(&a.actor, &id, &username, false)?))
}

pub async fn roles(State(app): State<AppState>, a: Authed) -> ApiResult<Vec<RoleView>> {
    Ok(Json(app.roles(&a.actor)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRoleBody {
    name: String,
    #[serde(default)]
    description: String,
    scope: String,
    permissions: Vec<String>,
}

pub async fn create_role(
    State(app): State<AppState>,
    a: Authed,
    Json(b): Json<NewRoleBody>,
) -> Result<(StatusCode, Json<RoleView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(app.create_role(&a.actor, &b.name, &b.description, &b.scope, &b.permissions)?),
    ))
}

pub async fn delete_role(
    State(app): State<AppState>,
    a: Authed,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    app.delete_role(&a.actor, &name)?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn permissions(State(app): State<AppState>, a: Authed) -> ApiResult<Vec<PermissionView>> {
    Ok(Json(app.permission_catalogue(&a.actor)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    actor: Option<String>,
    action: Option<String>,
    target: Option<String>,
    outcome: Option<crate::auditlog::Outcome>,
    since_ms: Option<i64>,
    until_ms: Option<i64>,
    before_seq: Option<u64>,
    limit: Option<usize>,
}

/// Audit entries, newest first, filtered.
pub async fn audit_entries(
    State(app): State<AppState>,
    a: Authed,
    Query(p): Query<AuditParams>,
) -> ApiResult<Vec<crate::auditlog::Entry>> {
    let q = crate::domain::AuditQuery {
        actor: p.actor,
        action: p.action,
        target: p.target,
        outcome: p.outcome,
        since_ms: p.since_ms,
        until_ms: p.until_ms,
        before_seq: p.before_seq,
        limit: p.limit,
    };
    Ok(Json(
        blocking(move || app.audit_entries(&a.actor, &q)).await?,
    ))
}

/// The whole log as a verifiable export (JSON lines with signed checkpoints).
pub async fn export_audit(
    State(app): State<AppState>,
    a: Authed,
) -> Result<impl IntoResponse, ApiError> {
    let body = blocking(move || app.export_audit(&a.actor)).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"roomscribe-audit.jsonl\"",
            ),
        ],
        body,
    ))
}

/// Verifies the stored log: `{"ok":true,"report":…}` or `{"ok":false,"broken":…}`.
pub async fn verify_audit(State(app): State<AppState>, a: Authed) -> ApiResult<serde_json::Value> {
    let outcome = blocking(move || app.verify_audit(&a.actor)).await?;
    Ok(Json(match outcome {
        Ok(report) => {
            serde_json::json!({"ok": true, "report": report, "summary": report.to_string()})
        }
        Err(b) => serde_json::json!({"ok": false, "entry": b.entry, "summary": b.to_string()}),
    }))
}

pub async fn audit_public_key(
    State(app): State<AppState>,
    a: Authed,
) -> ApiResult<serde_json::Value> {
    Ok(Json(
        serde_json::json!({"public_key": app.audit_public_key(&a.actor)?}),
    ))
}
