//! Analytics across meetings (JSON, a table's CSV, a table's SVG chart), and a
//! team's keyword trackers.

use super::auth::Authed;
use super::error::ApiError;
use super::handlers::{blocking, json, ApiResult};
use crate::analytics::Report;
use crate::domain::analytics::{Analytics, AnalyticsQuery, TableFile};
use crate::domain::views::TeamView;
use crate::insights::Tracker;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use std::sync::Arc;

/// `GET /api/v1/analytics?from=&to=&team=&room=`
pub async fn report(
    State(an): State<Arc<Analytics>>,
    a: Authed,
    Query(q): Query<AnalyticsQuery>,
) -> ApiResult<Report> {
    json(move || an.report(&a.actor, &q)).await
}

fn file(f: TableFile, content_type: &'static str, disposition: &str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("{disposition}; filename=\"{}\"", f.file_name),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        f.body,
    )
        .into_response()
}

/// `GET /api/v1/analytics/csv?table=…&from=&to=&team=&room=`: a download.
pub async fn table_csv(
    State(an): State<Arc<Analytics>>,
    a: Authed,
    Query(q): Query<AnalyticsQuery>,
) -> Result<Response, ApiError> {
    let f = blocking(move || an.table_csv(&a.actor, &q)).await?;
    Ok(file(f, "text/csv; charset=utf-8", "attachment"))
}

/// `GET /api/v1/analytics/svg?table=…`: the chart, shown in place (an image: no
/// script runs in it).
pub async fn table_svg(
    State(an): State<Arc<Analytics>>,
    a: Authed,
    Query(q): Query<AnalyticsQuery>,
) -> Result<Response, ApiError> {
    let f = blocking(move || an.table_svg(&a.actor, &q)).await?;
    Ok(file(f, "image/svg+xml", "inline"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackersBody {
    trackers: Vec<Tracker>,
}

/// `PUT /api/v1/teams/{id}/trackers`
pub async fn set_trackers(
    State(an): State<Arc<Analytics>>,
    a: Authed,
    Path(id): Path<String>,
    Json(b): Json<TrackersBody>,
) -> ApiResult<TeamView> {
    json(move || an.set_trackers(&a.actor, &id, b.trackers)).await
}
