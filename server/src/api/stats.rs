//! `GET /api/stats`: status counts, index statistics, the service's limits and whether it makes
//! thumbnails.

use axum::Json;
use axum::extract::State;
use crossmodal_core::MediaLimits;
use serde::Serialize;

use crate::api::App;
use crate::api::views::counts_json;
use crate::error::ApiResult;

#[derive(Serialize)]
struct LimitsView {
    max_upload_bytes: u64,
    max_request_bytes: usize,
    max_json_bytes: usize,
    max_files: usize,
    upload_concurrency: usize,
    request_timeout_ms: u128,
    body_idle_timeout_ms: u128,
    search_timeout_ms: u128,
    media: MediaLimits,
}

pub(crate) async fn stats(State(app): State<App>) -> ApiResult<Json<serde_json::Value>> {
    let counts = app.engine.counts().await?;
    let index = app.engine.index_stats().await?;
    let c = &app.config;
    let limits = LimitsView {
        max_upload_bytes: c.max_upload_bytes,
        max_request_bytes: c.max_request_bytes,
        max_json_bytes: c.max_json_bytes,
        max_files: c.max_files,
        upload_concurrency: c.upload_concurrency,
        request_timeout_ms: c.request_timeout.as_millis(),
        body_idle_timeout_ms: c.body_idle_timeout.as_millis(),
        search_timeout_ms: c.search_timeout.as_millis(),
        media: (*app.media_limits).clone(),
    };
    let thumbnails = app.thumbnails.status().await;
    Ok(Json(serde_json::json!({
        "counts": counts_json(&counts),
        "index": index,
        "limits": limits,
        "thumbnails": thumbnails,
        "model": app.engine.model().id,
        "ingests_in_flight": app.ingests.count(),
    })))
}
