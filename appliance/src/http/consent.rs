//! Consent: a team's rule, and evidence per meeting participant.

use super::auth::Authed;
use super::handlers::{json, ApiResult};
use crate::domain::consent::{ConsentResultView, EvidenceInput};
use crate::domain::views::TeamView;
use crate::domain::Consent;
use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use std::sync::Arc;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyBody {
    rule: String,
    #[serde(default)]
    notice: String,
    /// `speaker` (the default) or `meeting`.
    #[serde(default)]
    withdrawal: Option<String>,
}

/// `PUT /api/v1/teams/{id}/consent`
pub async fn set_team_consent(
    State(consent): State<Arc<Consent>>,
    a: Authed,
    Path(id): Path<String>,
    Json(b): Json<PolicyBody>,
) -> ApiResult<TeamView> {
    json(move || consent.set_policy(&a.actor, &id, &b.rule, &b.notice, b.withdrawal.as_deref()))
        .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceBody {
    participant: String,
    state: String,
    how: String,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    at_s: Option<f64>,
}

/// `POST /api/v1/meetings/{id}/consent`
pub async fn record_consent(
    State(consent): State<Arc<Consent>>,
    a: Authed,
    Path(id): Path<String>,
    Json(b): Json<EvidenceBody>,
) -> ApiResult<ConsentResultView> {
    let input = EvidenceInput {
        participant: b.participant,
        state: b.state,
        how: b.how,
        note: b.note,
        at_s: b.at_s,
    };
    Ok(Json(consent.record(&a.actor, &id, &input).await?))
}
