//! The Backups page's API (`backups.manage`): the status (schedule, last runs, the
//! run in progress, the alarm, what a restore needs), the target's health and "back
//! up now".

use super::auth::Authed;
use super::error::ApiError;
use super::handlers::{blocking, json, ApiResult};
use crate::domain::backups::{Backups, StatusView, TargetHealth};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use std::sync::Arc;

pub async fn status(State(b): State<Arc<Backups>>, a: Authed) -> ApiResult<StatusView> {
    json(move || b.status(&a.actor)).await
}

/// Looks at the configured target now (reachable, what it holds, room left).
pub async fn target(State(b): State<Arc<Backups>>, a: Authed) -> ApiResult<TargetHealth> {
    json(move || b.check_target(&a.actor)).await
}

/// Starts a run now; `202` with the status, whose `running` shows its progress.
pub async fn start(
    State(b): State<Arc<Backups>>,
    a: Authed,
) -> Result<(StatusCode, Json<StatusView>), ApiError> {
    let view = blocking(move || b.start(&a.actor)).await?;
    Ok((StatusCode::ACCEPTED, Json(view)))
}
