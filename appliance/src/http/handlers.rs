//! Route handlers: extract, call the domain, map. Nothing else belongs here.

use super::auth::{clear_cookie, session_token, set_cookie, Authed};
use super::error::ApiError;
use super::AppState;
use crate::domain::views::{
    AgentView, CommandResultView, EnrollTokenView, MeetingView, RoomView, ScheduleView,
    TranscriptView,
};
use crate::domain::DomainError;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{AppendHeaders, IntoResponse};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::{Stream, StreamExt};

type ApiResult<T> = Result<Json<T>, ApiError>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    username: String,
    password: String,
}

#[derive(Serialize)]
pub struct MeView {
    username: String,
    role: crate::store::records::Role,
    must_change_password: bool,
}

pub async fn login(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Json(body): Json<LoginBody>,
) -> Result<impl IntoResponse, ApiError> {
    // argon2 takes tens of milliseconds of CPU: keep it off the async workers.
    let outcome = tokio::task::spawn_blocking(move || {
        app.login(&body.username, &body.password, Some(peer.ip()))
    })
    .await
    .map_err(|e| DomainError::Internal(e.to_string()))??;
    let me = MeView {
        username: outcome.actor.username.clone(),
        role: outcome.actor.role,
        must_change_password: outcome.actor.must_change_password,
    };
    Ok((
        AppendHeaders([(header::SET_COOKIE, set_cookie(&outcome.token))]),
        Json(me),
    ))
}

pub async fn logout(State(app): State<AppState>, parts: Parts) -> impl IntoResponse {
    if let Some(token) = session_token(&parts) {
        app.logout(&token);
    }
    (
        StatusCode::NO_CONTENT,
        AppendHeaders([(header::SET_COOKIE, clear_cookie())]),
    )
}

pub async fn me(a: Authed) -> Json<MeView> {
    Json(MeView {
        username: a.actor.username,
        role: a.actor.role,
        must_change_password: a.actor.must_change_password,
    })
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
    tokio::task::spawn_blocking(move || {
        app.change_password(&a.actor, &b.current_password, &b.new_password, &a.token)
    })
    .await
    .map_err(|e| DomainError::Internal(e.to_string()))??;
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
    ttl_minutes: Option<u64>,
}

pub async fn create_enroll_token(
    State(app): State<AppState>,
    a: Authed,
    Json(b): Json<EnrollTokenBody>,
) -> Result<(StatusCode, Json<EnrollTokenView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(app.create_enroll_token(&a.actor, &b.room, b.ttl_minutes)?),
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
    let stream = BroadcastStream::new(app.subscribe()).filter_map(|e| {
        let e = e.ok()?;
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

pub async fn api_not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such API route")
}
