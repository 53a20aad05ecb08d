//! Legal hold and erasure handlers: `DELETE /meetings/{id}` with a reason, and a hold
//! placed (`POST …/hold` with a reason) or lifted (`DELETE …/hold`) on a meeting, a
//! room or a team.

use super::auth::Authed;
use super::error::ApiError;
use super::handlers::{blocking, json, ApiResult};
use crate::domain::retention::{DueMeeting, Policy};
use crate::domain::{DomainError, Erasure, ErasureView, HoldTarget, HoldView, Retention};
use axum::extract::Query;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use std::sync::Arc;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    reason: String,
}

pub async fn erase_meeting(
    State(erasure): State<Arc<Erasure>>,
    a: Authed,
    Path(id): Path<String>,
    Json(b): Json<ReasonBody>,
) -> ApiResult<ErasureView> {
    json(move || erasure.erase(&a.actor, &id, &b.reason)).await
}

async fn place(
    erasure: Arc<Erasure>,
    a: Authed,
    target: HoldTarget,
    id: String,
    reason: String,
) -> Result<(StatusCode, Json<HoldView>), ApiError> {
    let view = blocking(move || erasure.hold(&a.actor, target, &id, &reason)).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

async fn lift(
    erasure: Arc<Erasure>,
    a: Authed,
    target: HoldTarget,
    id: String,
) -> Result<StatusCode, ApiError> {
    blocking(move || erasure.lift(&a.actor, target, &id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn hold_meeting(
    State(e): State<Arc<Erasure>>,
    a: Authed,
    Path(id): Path<String>,
    Json(b): Json<ReasonBody>,
) -> Result<(StatusCode, Json<HoldView>), ApiError> {
    place(e, a, HoldTarget::Meeting, id, b.reason).await
}

pub async fn lift_meeting_hold(
    State(e): State<Arc<Erasure>>,
    a: Authed,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    lift(e, a, HoldTarget::Meeting, id).await
}

pub async fn hold_room(
    State(e): State<Arc<Erasure>>,
    a: Authed,
    Path(id): Path<String>,
    Json(b): Json<ReasonBody>,
) -> Result<(StatusCode, Json<HoldView>), ApiError> {
    place(e, a, HoldTarget::Room, id, b.reason).await
}

pub async fn lift_room_hold(
    State(e): State<Arc<Erasure>>,
    a: Authed,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    lift(e, a, HoldTarget::Room, id).await
}

pub async fn hold_team(
    State(e): State<Arc<Erasure>>,
    a: Authed,
    Path(id): Path<String>,
    Json(b): Json<ReasonBody>,
) -> Result<(StatusCode, Json<HoldView>), ApiError> {
    place(e, a, HoldTarget::Team, id, b.reason).await
}

pub async fn lift_team_hold(
    State(e): State<Arc<Erasure>>,
    a: Authed,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    lift(e, a, HoldTarget::Team, id).await
}

/// Every hold in place.
pub async fn holds(State(e): State<Arc<Erasure>>, a: Authed) -> ApiResult<Vec<HoldView>> {
    json(move || e.holds(&a.actor)).await
}

pub async fn retention_policies(
    State(r): State<Arc<Retention>>,
    a: Authed,
) -> ApiResult<Vec<Policy>> {
    json(move || r.policies(&a.actor)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoliciesBody {
    policies: Vec<Policy>,
}

pub async fn set_retention_policies(
    State(r): State<Arc<Retention>>,
    a: Authed,
    Json(b): Json<PoliciesBody>,
) -> ApiResult<Vec<Policy>> {
    json(move || r.set_policies(&a.actor, &b.policies)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviewQuery {
    /// `YYYY-MM-DD` (the end of that day, UTC); absent: now.
    as_of: Option<String>,
}

/// The scheduler's jobs (the retention job among them): last run, result, next run.
pub async fn jobs(
    State(m): State<Arc<crate::domain::Monitoring>>,
    a: Authed,
) -> ApiResult<Vec<crate::domain::JobStatus>> {
    json(move || m.jobs(&a.actor)).await
}

/// What the retention job would erase at `as_of`, and what holds keep.
pub async fn retention_preview(
    State(r): State<Arc<Retention>>,
    a: Authed,
    Query(q): Query<PreviewQuery>,
) -> ApiResult<Vec<DueMeeting>> {
    let at = match q.as_of.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(d) => Some(
            crate::domain::search::parse_time(d, true)
                .ok_or_else(|| DomainError::invalid("as_of", "a date, YYYY-MM-DD"))?,
        ),
    };
    json(move || r.preview(&a.actor, at)).await
}
