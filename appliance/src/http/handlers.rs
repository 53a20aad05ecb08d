//! Route handlers: extract, call the domain, map. Nothing else belongs here.

use super::auth::{
    clear_cookie, clear_oidc_cookie, oidc_cookie, oidc_cookie_value, resolve, session_token,
    set_cookie, Authed, Client,
};
use super::error::ApiError;
use super::AppState;
use crate::domain::views::{
    AgentView, CommandResultView, EnrollTokenView, MeView, MeetingView, NewTokenView,
    PermissionView, RoleView, RoomView, ScheduleView, SegmentHistoryView, SegmentView, TeamView,
    TokenView, TotpSetupView, TranscriptView, UserView,
};
use crate::domain::{
    ApiTokens, AuditLog, Commands, Consent, Corrections, Credentials, Directory, DomainError,
    EventBus, Fleet, MeetingPatch, Meetings, Monitoring, NewToken, Search, SearchParams,
    SearchResults, SegmentPatch, SignIn, SignInMethods,
};
use axum::extract::{Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{AppendHeaders, IntoResponse};
use axum::Json;
use serde::Deserialize;
use std::convert::Infallible;
use std::sync::Arc;
use tokio_stream::Stream;

pub(super) type ApiResult<T> = Result<Json<T>, ApiError>;

/// Runs domain work (storage, argon2) off the async workers.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, DomainError> + Send + 'static,
) -> Result<T, ApiError> {
    Ok(tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| DomainError::Internal(e.to_string()))??)
}

/// [`blocking`], answered as JSON.
pub(super) async fn json<T: serde::Serialize + Send + 'static>(
    f: impl FnOnce() -> Result<T, DomainError> + Send + 'static,
) -> ApiResult<T> {
    blocking(f).await.map(Json)
}

/// [`blocking`], answered `204 No Content`.
async fn done(
    f: impl FnOnce() -> Result<(), DomainError> + Send + 'static,
) -> Result<StatusCode, ApiError> {
    blocking(f).await.map(|()| StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    username: String,
    password: String,
    /// The code from an authenticator app, for users with a second factor.
    totp: Option<String>,
}

pub async fn login(
    State(sign_in): State<Arc<SignIn>>,
    State(directory): State<Arc<Directory>>,
    Client(client): Client,
    Json(body): Json<LoginBody>,
) -> Result<impl IntoResponse, ApiError> {
    let outcome = sign_in
        .sign_in(
            &body.username,
            &body.password,
            body.totp.as_deref(),
            &client,
        )
        .await?;
    let (actor, csrf) = (outcome.actor.clone(), outcome.csrf_token.clone());
    let mut me = blocking(move || directory.me_view(&actor)).await?;
    me.csrf_token = Some(csrf);
    Ok((
        AppendHeaders([(header::SET_COOKIE, set_cookie(&outcome.token))]),
        Json(me),
    ))
}

/// How one may sign in here (password, directory, single sign-on button).
pub async fn sign_in_methods(State(sign_in): State<Arc<SignIn>>) -> Json<SignInMethods> {
    Json(sign_in.methods())
}

/// Starts a single sign-on: to the provider, with a cookie binding this browser.
pub async fn oidc_start(
    State(sign_in): State<Arc<SignIn>>,
    Client(client): Client,
) -> Result<impl IntoResponse, ApiError> {
    let start = sign_in.oidc_start(&client).await?;
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
    State(sign_in): State<Arc<SignIn>>,
    Client(client): Client,
    Query(q): Query<OidcCallback>,
    parts: Parts,
) -> impl IntoResponse {
    let browser = oidc_cookie_value(&parts);
    let outcome = sign_in
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

pub async fn logout(State(sign_in): State<Arc<SignIn>>, parts: Parts) -> impl IntoResponse {
    if let Some(token) = session_token(&parts) {
        let client = super::auth::client_info(&parts);
        let _ = tokio::task::spawn_blocking(move || sign_in.logout(&token, &client)).await;
    }
    (
        StatusCode::NO_CONTENT,
        AppendHeaders([(header::SET_COOKIE, clear_cookie())]),
    )
}

pub async fn me(
    State(directory): State<Arc<Directory>>,
    State(sign_in): State<Arc<SignIn>>,
    a: Authed,
) -> ApiResult<MeView> {
    let csrf = sign_in.csrf_token(a.session_token());
    let mut me = blocking(move || directory.me_view(&a.actor)).await?;
    me.csrf_token = csrf;
    Ok(Json(me))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ReauthBody {
    /// The current password (local accounts), to confirm it is the account's owner.
    #[serde(default)]
    password: Option<String>,
}

/// Starts setting up a TOTP second factor: the secret for the authenticator app.
pub async fn begin_totp(
    State(credentials): State<Arc<Credentials>>,
    a: Authed,
    body: Option<Json<ReauthBody>>,
) -> Result<(StatusCode, Json<TotpSetupView>), ApiError> {
    let b = body.map(|Json(b)| b).unwrap_or_default();
    let view = blocking(move || credentials.begin_totp(&a.actor, b.password.as_deref())).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeBody {
    code: String,
}

pub async fn confirm_totp(
    State(credentials): State<Arc<Credentials>>,
    a: Authed,
    Json(b): Json<CodeBody>,
) -> Result<StatusCode, ApiError> {
    done(move || credentials.confirm_totp(&a.actor, &b.code)).await
}

pub async fn remove_totp(
    State(credentials): State<Arc<Credentials>>,
    a: Authed,
    Json(b): Json<CodeBody>,
) -> Result<StatusCode, ApiError> {
    done(move || credentials.remove_totp(&a.actor, &b.code)).await
}

pub async fn reset_totp(
    State(directory): State<Arc<Directory>>,
    a: Authed,
    Path(username): Path<String>,
) -> Result<StatusCode, ApiError> {
    done(move || directory.reset_totp(&a.actor, &username)).await
}

pub async fn tokens(State(tokens): State<Arc<ApiTokens>>, a: Authed) -> ApiResult<Vec<TokenView>> {
    json(move || tokens.list(&a.actor)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTokenBody {
    name: String,
    permissions: Vec<String>,
    expires_at_ms: Option<i64>,
    /// The current password (local accounts), to confirm it is the account's owner.
    #[serde(default)]
    password: Option<String>,
}

/// Creates an API token; its text is in this answer only.
pub async fn create_token(
    State(tokens): State<Arc<ApiTokens>>,
    a: Authed,
    Json(b): Json<NewTokenBody>,
) -> Result<(StatusCode, Json<NewTokenView>), ApiError> {
    let view = blocking(move || {
        tokens.create(
            &a.actor,
            &NewToken {
                name: &b.name,
                permissions: &b.permissions,
                expires_at_ms: b.expires_at_ms,
                password: b.password.as_deref(),
            },
        )
    })
    .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

pub async fn revoke_token(
    State(tokens): State<Arc<ApiTokens>>,
    a: Authed,
    Path(id): Path<String>,
) -> ApiResult<TokenView> {
    json(move || tokens.revoke(&a.actor, &id)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    current_password: String,
    new_password: String,
}

pub async fn change_password(
    State(credentials): State<Arc<Credentials>>,
    a: Authed,
    Json(b): Json<PasswordBody>,
) -> Result<StatusCode, ApiError> {
    let keep = a.session_token().to_owned();
    done(move || credentials.change_password(&a.actor, &b.current_password, &b.new_password, &keep))
        .await
}

pub async fn rooms(State(fleet): State<Arc<Fleet>>, a: Authed) -> ApiResult<Vec<RoomView>> {
    json(move || fleet.rooms(&a.actor)).await
}

pub async fn agents(State(fleet): State<Arc<Fleet>>, a: Authed) -> ApiResult<Vec<AgentView>> {
    json(move || fleet.agents(&a.actor)).await
}

pub async fn revoke_agent(
    State(fleet): State<Arc<Fleet>>,
    a: Authed,
    Path(id): Path<String>,
) -> ApiResult<AgentView> {
    json(move || fleet.revoke_agent(&a.actor, &id)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandBody {
    action: String,
    title: Option<String>,
}

/// Sends a signed meeting command to an online agent; answers with the agent's reply.
pub async fn agent_command(
    State(commands): State<Arc<Commands>>,
    a: Authed,
    Path(id): Path<String>,
    Json(body): Json<CommandBody>,
) -> ApiResult<CommandResultView> {
    Ok(Json(
        commands
            .meeting_command(&a.actor, &id, &body.action, body.title)
            .await?,
    ))
}

pub async fn schedule(
    State(commands): State<Arc<Commands>>,
    a: Authed,
    Path(room): Path<String>,
) -> ApiResult<ScheduleView> {
    json(move || commands.schedule(&a.actor, &room)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleEntryBody {
    title: String,
    starts_at_ms: i64,
    ends_at_ms: i64,
}

pub async fn add_schedule_entry(
    State(commands): State<Arc<Commands>>,
    a: Authed,
    Path(room): Path<String>,
    Json(b): Json<ScheduleEntryBody>,
) -> ApiResult<ScheduleView> {
    json(move || {
        commands.add_schedule_entry(&a.actor, &room, &b.title, b.starts_at_ms, b.ends_at_ms)
    })
    .await
}

pub async fn delete_schedule_entry(
    State(commands): State<Arc<Commands>>,
    a: Authed,
    Path((room, entry)): Path<(String, String)>,
) -> ApiResult<ScheduleView> {
    json(move || commands.delete_schedule_entry(&a.actor, &room, &entry)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollTokenBody {
    room: String,
    team: Option<String>,
    ttl_minutes: Option<u64>,
}

pub async fn create_enroll_token(
    State(fleet): State<Arc<Fleet>>,
    a: Authed,
    Json(b): Json<EnrollTokenBody>,
) -> Result<(StatusCode, Json<EnrollTokenView>), ApiError> {
    let view = blocking(move || {
        fleet.create_enroll_token(&a.actor, &b.room, b.team.as_deref(), b.ttl_minutes)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

pub async fn meetings(
    State(meetings): State<Arc<Meetings>>,
    a: Authed,
) -> ApiResult<Vec<MeetingView>> {
    json(move || meetings.list(&a.actor)).await
}

pub async fn transcript(
    State(meetings): State<Arc<Meetings>>,
    a: Authed,
    Path(id): Path<String>,
) -> ApiResult<TranscriptView> {
    json(move || meetings.transcript(&a.actor, &id)).await
}

pub async fn search(
    State(search): State<Arc<Search>>,
    a: Authed,
    Query(q): Query<SearchParams>,
) -> ApiResult<SearchResults> {
    json(move || search.search(&a.actor, &q.into_request()?)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpeakerNameBody {
    pub speaker: String,
    pub name: String,
}

pub async fn name_speaker(
    State(meetings): State<Arc<Meetings>>,
    a: Authed,
    Path(id): Path<String>,
    Json(b): Json<SpeakerNameBody>,
) -> ApiResult<MeetingView> {
    json(move || meetings.name_speaker(&a.actor, &id, &b.speaker, &b.name)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParticipantBody {
    pub name: String,
    pub username: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeetingPatchBody {
    pub title: Option<String>,
    #[serde(rename = "type")]
    pub meeting_type: Option<String>,
    pub tags: Option<Vec<String>>,
    pub participants: Option<Vec<ParticipantBody>>,
}

pub async fn update_meeting(
    State(meetings): State<Arc<Meetings>>,
    a: Authed,
    Path(id): Path<String>,
    Json(b): Json<MeetingPatchBody>,
) -> ApiResult<MeetingView> {
    let patch = MeetingPatch {
        title: b.title,
        meeting_type: b.meeting_type,
        tags: b.tags,
        participants: b.participants.map(|v| {
            v.into_iter()
                .map(|p| crate::store::records::ParticipantRecord {
                    name: p.name,
                    username: p.username,
                })
                .collect()
        }),
    };
    json(move || meetings.update(&a.actor, &id, &patch)).await
}

#[derive(serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeetingTypesBody {
    pub types: Vec<String>,
}

pub async fn meeting_types(
    State(meetings): State<Arc<Meetings>>,
    a: Authed,
) -> ApiResult<MeetingTypesBody> {
    json(move || {
        meetings
            .types(&a.actor)
            .map(|types| MeetingTypesBody { types })
    })
    .await
}

pub async fn set_meeting_types(
    State(meetings): State<Arc<Meetings>>,
    a: Authed,
    Json(b): Json<MeetingTypesBody>,
) -> ApiResult<MeetingTypesBody> {
    json(move || {
        meetings
            .set_types(&a.actor, &b.types)
            .map(|types| MeetingTypesBody { types })
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentPatchBody {
    pub text: Option<String>,
    pub speaker: Option<String>,
    /// The segment's `version` as the caller read it.
    pub expected_version: u64,
}

/// A segment number from the path: anything else names no segment.
fn segment_number(n: &str) -> Result<u64, ApiError> {
    n.parse()
        .map_err(|_| DomainError::NotFound("segment").into())
}

pub async fn correct_segment(
    State(corrections): State<Arc<Corrections>>,
    a: Authed,
    Path((id, n)): Path<(String, String)>,
    Json(b): Json<SegmentPatchBody>,
) -> ApiResult<SegmentView> {
    let seq = segment_number(&n)?;
    let patch = SegmentPatch {
        text: b.text,
        speaker: b.speaker,
        expected_version: b.expected_version,
    };
    json(move || corrections.correct(&a.actor, &id, seq, &patch)).await
}

pub async fn segment_history(
    State(corrections): State<Arc<Corrections>>,
    a: Authed,
    Path((id, n)): Path<(String, String)>,
) -> ApiResult<SegmentHistoryView> {
    let seq = segment_number(&n)?;
    json(move || corrections.history(&a.actor, &id, seq)).await
}

/// Server-sent events: `segment`, `caption`, `meeting`, `meeting_event` and `agent`,
/// each with a JSON body. Each event is shown only to a caller who may read it now:
/// when anyone's permissions or teams change, the caller is resolved again (and the
/// stream ends if they are signed out, disabled or deleted).
pub async fn events(
    State(app): State<AppState>,
    a: Authed,
    Client(client): Client,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    a.actor.require_active()?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<SseEvent, Infallible>>(64);
    let bus: Arc<EventBus> = app.events.clone();
    let mut events = bus.subscribe();
    let (mut actor, credential) = (a.actor, a.credential);
    let mut version = bus.access_version();
    tokio::spawn(async move {
        loop {
            let p = tokio::select! {
                r = events.recv() => r,
                _ = tx.closed() => return,
            };
            let p = match p {
                Ok(p) => p,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return,
            };
            let now = bus.access_version();
            // A signed-out or expired session ends the stream at the next event.
            let session_gone = matches!(&credential, super::auth::Credential::Session(t)
                if app.sign_in.session_user(t).is_none());
            if session_gone {
                return;
            }
            if now != version {
                match resolve(&app, &credential, &client, false).await {
                    Ok(a) if a.require_active().is_ok() => actor = a,
                    _ => return,
                }
                version = now;
            }
            if !p.visible_to(&actor) {
                continue;
            }
            let e = p.event;
            let name = match &e {
                crate::domain::views::Event::Segment { .. } => "segment",
                crate::domain::views::Event::Meeting { .. } => "meeting",
                crate::domain::views::Event::MeetingErased { .. } => "meeting_erased",
                crate::domain::views::Event::Agent { .. } => "agent",
                crate::domain::views::Event::Caption { .. } => "caption",
                crate::domain::views::Event::MeetingEvent { .. } => "meeting_event",
            };
            let Ok(sse) = SseEvent::default().event(name).json_data(&e) else {
                continue;
            };
            if tx.send(Ok(sse)).await.is_err() {
                return;
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

pub async fn healthz() -> &'static str {
    "ok"
}

/// `ready`, or 503 with the reason (storage failed and could not be opened again).
pub async fn readyz(State(monitoring): State<Arc<Monitoring>>) -> (StatusCode, String) {
    match tokio::task::spawn_blocking(move || {
        monitoring.ready().map(|()| monitoring.indexing_percent())
    })
    .await
    {
        Ok(Ok(None)) => (StatusCode::OK, "ready".into()),
        Ok(Ok(Some(p))) => (StatusCode::OK, format!("ready; search indexing {p}%")),
        Ok(Err(why)) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}")),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}")),
    }
}

/// Prometheus text exposition, for a scraper (see `Access::Scraper`).
pub async fn metrics(
    State(monitoring): State<Arc<Monitoring>>,
    Client(client): Client,
    parts: Parts,
) -> Result<impl IntoResponse, ApiError> {
    let bearer = super::auth::bearer(&parts);
    monitoring.may_scrape(client.ip, bearer.as_deref().map(|s| s.as_str()))?;
    let body = tokio::task::spawn_blocking(move || monitoring.render_metrics())
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
    State(fleet): State<Arc<Fleet>>,
    State(consent): State<Arc<Consent>>,
    a: Authed,
    Path(id): Path<String>,
    Json(b): Json<TeamIdBody>,
) -> ApiResult<RoomView> {
    json(move || {
        let room = fleet.set_room_team(&a.actor, &id, b.team_id.as_deref())?;
        // The room's agents keep to their new team's consent rule from now on.
        consent.room_moved(&id)?;
        Ok(room)
    })
    .await
}

pub async fn set_meeting_team(
    State(meetings): State<Arc<Meetings>>,
    a: Authed,
    Path(id): Path<String>,
    Json(b): Json<TeamIdBody>,
) -> ApiResult<MeetingView> {
    let team = b
        .team_id
        .ok_or_else(|| DomainError::invalid("team_id", "a meeting always belongs to a team"))?;
    json(move || meetings.set_team(&a.actor, &id, &team)).await
}

pub async fn users(State(directory): State<Arc<Directory>>, a: Authed) -> ApiResult<Vec<UserView>> {
    json(move || directory.users(&a.actor)).await
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
    State(directory): State<Arc<Directory>>,
    a: Authed,
    Json(b): Json<NewUserBody>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let view = blocking(move || {
        directory.create_user(&a.actor, &b.username, &b.role, &b.password, &b.teams, true)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

pub async fn delete_user(
    State(directory): State<Arc<Directory>>,
    a: Authed,
    Path(username): Path<String>,
) -> Result<StatusCode, ApiError> {
    done(move || directory.delete_user(&a.actor, &username)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisabledBody {
    disabled: bool,
}

pub async fn set_user_disabled(
    State(directory): State<Arc<Directory>>,
    a: Authed,
    Path(username): Path<String>,
    Json(b): Json<DisabledBody>,
) -> ApiResult<UserView> {
    json(move || directory.set_user_disabled(&a.actor, &username, b.disabled)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordBody {
    password: String,
}

pub async fn reset_password(
    State(directory): State<Arc<Directory>>,
    a: Authed,
    Path(username): Path<String>,
    Json(b): Json<ResetPasswordBody>,
) -> Result<StatusCode, ApiError> {
    done(move || directory.reset_password(&a.actor, &username, &b.password)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantBody {
    role: String,
    expires_at_ms: Option<i64>,
}

pub async fn grant_role(
    State(directory): State<Arc<Directory>>,
    a: Authed,
    Path(username): Path<String>,
    Json(b): Json<GrantBody>,
) -> ApiResult<UserView> {
    json(move || directory.grant_role(&a.actor, &username, &b.role, b.expires_at_ms)).await
}

pub async fn withdraw_role(
    State(directory): State<Arc<Directory>>,
    a: Authed,
    Path((username, role)): Path<(String, String)>,
) -> ApiResult<UserView> {
    json(move || directory.withdraw_role(&a.actor, &username, &role)).await
}

pub async fn teams(State(directory): State<Arc<Directory>>, a: Authed) -> ApiResult<Vec<TeamView>> {
    json(move || directory.teams(&a.actor)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTeamBody {
    name: String,
}

pub async fn create_team(
    State(directory): State<Arc<Directory>>,
    a: Authed,
    Json(b): Json<NewTeamBody>,
) -> Result<(StatusCode, Json<TeamView>), ApiError> {
    let view = blocking(move || directory.create_team(&a.actor, &b.name)).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

pub async fn delete_team(
    State(directory): State<Arc<Directory>>,
    a: Authed,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    done(move || directory.delete_team(&a.actor, &id)).await
}

pub async fn add_team_member(
    State(directory): State<Arc<Directory>>,
    a: Authed,
    Path((id, username)): Path<(String, String)>,
) -> ApiResult<TeamView> {
    json(move || directory.set_team_member(&a.actor, &id, &username, true)).await
}

pub async fn remove_team_member(
    State(directory): State<Arc<Directory>>,
    a: Authed,
    Path((id, username)): Path<(String, String)>,
) -> ApiResult<TeamView> {
    json(move || directory.set_team_member(&a.actor, &id, &username, false)).await
}

pub async fn roles(State(directory): State<Arc<Directory>>, a: Authed) -> ApiResult<Vec<RoleView>> {
    json(move || directory.roles(&a.actor)).await
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
    State(directory): State<Arc<Directory>>,
    a: Authed,
    Json(b): Json<NewRoleBody>,
) -> Result<(StatusCode, Json<RoleView>), ApiError> {
    let view = blocking(move || {
        directory.create_role(&a.actor, &b.name, &b.description, &b.scope, &b.permissions)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

pub async fn delete_role(
    State(directory): State<Arc<Directory>>,
    a: Authed,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    done(move || directory.delete_role(&a.actor, &name)).await
}

pub async fn permissions(
    State(directory): State<Arc<Directory>>,
    a: Authed,
) -> ApiResult<Vec<PermissionView>> {
    json(move || directory.permission_catalogue(&a.actor)).await
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
    State(audit): State<Arc<AuditLog>>,
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
    json(move || audit.entries(&a.actor, &q)).await
}

/// The whole log as a verifiable export (JSON lines with signed checkpoints).
pub async fn export_audit(
    State(audit): State<Arc<AuditLog>>,
    a: Authed,
) -> Result<impl IntoResponse, ApiError> {
    let body = blocking(move || audit.export(&a.actor)).await?;
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
pub async fn verify_audit(
    State(audit): State<Arc<AuditLog>>,
    a: Authed,
) -> ApiResult<serde_json::Value> {
    // Against the configured witness directory too, when there is one.
    let outcome = blocking(move || audit.verify(&a.actor, None)).await?;
    Ok(Json(match outcome {
        Ok(report) => {
            serde_json::json!({"ok": true, "report": report, "summary": report.to_string()})
        }
        Err(b) => serde_json::json!({"ok": false, "entry": b.entry, "summary": b.to_string()}),
    }))
}

pub async fn audit_public_key(
    State(audit): State<Arc<AuditLog>>,
    a: Authed,
) -> ApiResult<serde_json::Value> {
    Ok(Json(
        serde_json::json!({"public_key": audit.public_key(&a.actor)?}),
    ))
}
