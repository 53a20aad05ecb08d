//! A meeting understood: its summary, action items and insights, and an action
//! item's status.

use super::auth::Authed;
use super::handlers::{json, ApiResult};
use crate::domain::understanding::{
    ActionItemView, ItemQuery, ItemRow, SummaryView, Understanding,
};
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use std::sync::Arc;

pub async fn summary(
    State(u): State<Arc<Understanding>>,
    a: Authed,
    Path(id): Path<String>,
) -> ApiResult<SummaryView> {
    json(move || u.summary(&a.actor, &id)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusBody {
    /// `open`, `done` or `dismissed`.
    status: String,
}

pub async fn set_status(
    State(u): State<Arc<Understanding>>,
    a: Authed,
    Path((id, item)): Path<(String, String)>,
    Json(b): Json<StatusBody>,
) -> ApiResult<ActionItemView> {
    json(move || u.set_status(&a.actor, &id, &item, &b.status)).await
}

/// `?owner=&status=&team=`: action items across the meetings the caller may read.
pub async fn action_items(
    State(u): State<Arc<Understanding>>,
    a: Authed,
    Query(q): Query<ItemQuery>,
) -> ApiResult<Vec<ItemRow>> {
    json(move || u.action_items(&a.actor, &q)).await
}
