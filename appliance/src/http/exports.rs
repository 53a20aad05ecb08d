//! Export handlers: a transcript as a file at once (`GET …/export`), or made in the
//! background with progress (`POST …/exports`, then `GET /exports/{job}` until ready,
//! then its `/file` and `/manifest`).

use super::auth::Authed;
use super::error::ApiError;
use super::handlers::{blocking, json, ApiResult};
use crate::domain::{DomainError, Export, ExportJobView, ExportJobs, ExportRequest, Meetings};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use std::sync::Arc;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    format: Option<String>,
    /// `1`: corrected segments carry the agent's original text.
    original: Option<String>,
    /// `1`: the signed manifest of that file instead of the file.
    manifest: Option<String>,
    /// With `manifest=1`: the `X-Roomscribe-Transcript-Sha256` of the export the
    /// manifest is for; 409 if the transcript has changed since.
    transcript: Option<String>,
}

/// `1`/`true` or `0`/`false` (absent: false).
fn flag(name: &'static str, v: Option<&str>) -> Result<bool, ApiError> {
    match v {
        None | Some("0" | "false") => Ok(false),
        Some("1" | "true") => Ok(true),
        Some(_) => Err(DomainError::invalid(name, "1 or 0").into()),
    }
}

/// A transcript as a download (`?format=json|txt|html|srt|vtt|csv`, default json;
/// `&original=1`; `&manifest=1` for the file's signed manifest).
pub async fn export_meeting(
    State(meetings): State<Arc<Meetings>>,
    a: Authed,
    Path(id): Path<String>,
    Query(q): Query<ExportQuery>,
) -> Result<axum::response::Response, ApiError> {
    let req = ExportRequest::parse(
        q.format.as_deref().unwrap_or("json"),
        flag("original", q.original.as_deref())?,
    )?;
    if flag("manifest", q.manifest.as_deref())? {
        let pinned = q.transcript.filter(|t| !t.is_empty());
        let m = blocking(move || meetings.export_manifest(&a.actor, &id, req, pinned.as_deref()))
            .await?;
        let name = format!("{}.manifest.json", m.body.file_name);
        return Ok((
            [(
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            )],
            Json(m),
        )
            .into_response());
    }
    let e = blocking(move || meetings.export(&a.actor, &id, req)).await?;
    Ok(file_response(e))
}

/// The file as a download, naming the transcript state it was made from.
fn file_response(e: Export) -> axum::response::Response {
    (
        [
            (header::CONTENT_TYPE, e.content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", e.filename),
            ),
            (
                header::HeaderName::from_static("x-roomscribe-transcript-sha256"),
                e.transcript_sha256,
            ),
        ],
        e.body,
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartExportBody {
    format: String,
    #[serde(default)]
    original: bool,
}

/// Starts a background export: `202` with the job to poll.
pub async fn start_export(
    State(jobs): State<Arc<ExportJobs>>,
    a: Authed,
    Path(id): Path<String>,
    Json(b): Json<StartExportBody>,
) -> Result<(StatusCode, Json<ExportJobView>), ApiError> {
    let req = ExportRequest::parse(&b.format, b.original)?;
    let view = blocking(move || jobs.start(&a.actor, &id, req)).await?;
    Ok((StatusCode::ACCEPTED, Json(view)))
}

/// A background export's state and progress (the caller's own only).
pub async fn export_job(
    State(jobs): State<Arc<ExportJobs>>,
    a: Authed,
    Path(id): Path<String>,
) -> ApiResult<ExportJobView> {
    json(move || jobs.status(&a.actor, &id)).await
}

/// A ready background export's file.
pub async fn export_job_file(
    State(jobs): State<Arc<ExportJobs>>,
    a: Authed,
    Path(id): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    let done = blocking(move || jobs.finished(&a.actor, &id)).await?;
    Ok(file_response(done.export.clone()))
}

/// The manifest signed for a ready background export's very file.
pub async fn export_job_manifest(
    State(jobs): State<Arc<ExportJobs>>,
    a: Authed,
    Path(id): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    let done = blocking(move || jobs.finished(&a.actor, &id)).await?;
    let name = format!("{}.manifest.json", done.manifest.body.file_name);
    Ok((
        [(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        )],
        Json(done.manifest.clone()),
    )
        .into_response())
}
