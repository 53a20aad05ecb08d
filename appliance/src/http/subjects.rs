//! A data subject's requests: access (the signed archive, as JSON with the archive in
//! base64 and its manifest) and erasure.

use super::auth::Authed;
use super::handlers::{json, ApiResult};
use crate::domain::subject::{Subject, SubjectErasure, Subjects};
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectBody {
    name: String,
    #[serde(default)]
    username: Option<String>,
}

/// The archive as the console receives it.
#[derive(Serialize)]
pub struct SubjectArchiveView {
    file_name: String,
    /// The ZIP, base64.
    archive: String,
    manifest: crate::export::manifest::Manifest,
    meetings: usize,
    segments: usize,
    audit_entries: usize,
}

/// `POST /api/v1/subjects/export`: a data subject's access request.
pub async fn export_subject(
    State(subjects): State<Arc<Subjects>>,
    a: Authed,
    Json(b): Json<SubjectBody>,
) -> ApiResult<SubjectArchiveView> {
    json(move || {
        use base64::Engine as _;
        let subject = Subject {
            name: b.name,
            username: b.username,
        };
        let r = subjects.export(&a.actor, &subject)?;
        Ok(SubjectArchiveView {
            archive: base64::engine::general_purpose::STANDARD.encode(&r.bytes),
            file_name: r.file_name,
            manifest: r.manifest,
            meetings: r.meetings,
            segments: r.segments,
            audit_entries: r.audit_entries,
        })
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectEraseBody {
    name: String,
    #[serde(default)]
    username: Option<String>,
    reason: String,
}

/// `POST /api/v1/subjects/erase`: a data subject's erasure request.
pub async fn erase_subject(
    State(subjects): State<Arc<Subjects>>,
    a: Authed,
    Json(b): Json<SubjectEraseBody>,
) -> ApiResult<SubjectErasure> {
    json(move || {
        let subject = Subject {
            name: b.name,
            username: b.username,
        };
        subjects.erase(&a.actor, &subject, &b.reason)
    })
    .await
}
