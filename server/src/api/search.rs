//! `POST /api/search` (by text or by an asset in the library) and `POST /api/search/upload`
//! (by an uploaded reference file).

use std::time::Instant;

use axum::Json;
use axum::extract::multipart::MultipartRejection;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use crossmodal_core::{
    AssetId, ErrorKind, Filter, Grouping, Query as SearchQuery, ResultOrder, validate_media,
};
use serde::Deserialize;

use crate::api::forms::{
    UploadedFile, parse_fusion, parse_k, parse_kinds, parse_min_score, parse_mode, parse_tags,
    read_file, read_text, truncated,
};
use crate::api::views::hit_view;
use crate::api::{App, Base};
use crate::error::{ApiError, ApiResult};

/// The JSON body of `POST /api/search`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SearchBody {
    /// Search by a text description...
    text: Option<String>,
    /// ...or by an asset already in the library.
    asset_id: Option<String>,
    /// auto (default), visual, semantic, audio, transcription.
    mode: Option<String>,
    /// Only these kinds (image, video, audio).
    #[serde(default)]
    kinds: Vec<String>,
    /// Number of results (default 10, at most 1000).
    k: Option<usize>,
    /// Drop results whose best cosine is below this.
    min_score: Option<f32>,
    /// cosine (default) or rrf.
    fusion: Option<String>,
    /// Only assets carrying at least one of these tags.
    #[serde(default)]
    tags: Vec<String>,
    /// Any metadata filter (kinds, formats, tags, times, duration, user fields), as
    /// `crossmodal_core::Filter` serialises: e.g. `{"fields": [{"key": "campaign", "test":
    /// {"eq": "autumn"}}], "min_duration_ms": 5000}`.
    filter: Option<Filter>,
    /// `asset` (default: one hit per asset) or `clips` (every matching clip).
    group: Option<String>,
    /// With `group: "clips"`: clips listed per asset (default 10).
    clips_per_asset: Option<usize>,
    /// With `group: "clips"`: merge adjacent and overlapping clips.
    #[serde(default)]
    merge_adjacent: bool,
    /// `best_score` (default) or `clip_count`.
    order: Option<String>,
    /// Also match names, tags and fields by their words (text queries).
    #[serde(default)]
    keywords: bool,
    /// Examples to move away from: assets of the library...
    #[serde(default)]
    negative_asset_ids: Vec<String>,
    /// ...or texts.
    #[serde(default)]
    negative_texts: Vec<String>,
    /// Minimum cosine per space (`{"audio": 0.2}`).
    #[serde(default)]
    min_score_per_space: std::collections::BTreeMap<crossmodal_core::EmbeddingSpace, f32>,
    /// Weight per space when fusing (`{"audio": 0.5}`; absent: 1).
    #[serde(default)]
    space_weights: std::collections::BTreeMap<crossmodal_core::EmbeddingSpace, f32>,
    /// The `next_cursor` of the previous page (the rest of the body unchanged).
    cursor: Option<String>,
}

async fn run_search(
    app: &App,
    base: &str,
    query: SearchQuery,
) -> ApiResult<Json<serde_json::Value>> {
    let started = Instant::now();
    let results = tokio::time::timeout(app.config.search_timeout, app.engine.search(&query))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                ErrorKind::Timeout,
                format!(
                    "the search did not finish within {} s",
                    app.config.search_timeout.as_secs_f64()
                ),
            )
        })??;
    let missing = results.missing_spaces();
    let routes = results.routes.clone();
    let mut hits = Vec::with_capacity(results.hits.len());
    for (rank, hit) in results.hits.into_iter().enumerate() {
        hits.push(hit_view(app, base, rank + 1, hit).await);
    }
    Ok(Json(serde_json::json!({
        "query_kind": results.query_kind,
        "mode": results.mode,
        "routes": routes,
        "missing_spaces": missing,
        "hits": hits,
        "next_cursor": results.next_cursor,
        "took_ms": started.elapsed().as_secs_f64() * 1000.0,
    })))
}

/// Applies the options shared by both search endpoints.
fn with_options(
    mut query: SearchQuery,
    mode: Option<&str>,
    kinds: &[String],
    k: Option<usize>,
    min_score: Option<f32>,
) -> ApiResult<SearchQuery> {
    if let Some(mode) = mode {
        query = query.mode(parse_mode(mode)?);
    }
    query = query.kinds(parse_kinds(kinds)?);
    if let Some(k) = k {
        query = query.k(k);
    }
    if let Some(min) = min_score {
        query = query.min_score(min);
    }
    Ok(query)
}

pub(crate) async fn search(
    State(app): State<App>,
    Base(base): Base,
    body: Result<Json<SearchBody>, JsonRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let Json(body) = body?;
    let query = match (body.text, body.asset_id) {
        (Some(text), None) => SearchQuery::text(text),
        (None, Some(id)) => SearchQuery::asset(AssetId::parse(id.trim())?),
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "give either \"text\" or \"asset_id\", not both",
            ));
        }
        (None, None) => {
            return Err(ApiError::bad_request(
                "give \"text\" or \"asset_id\" (or POST a file to /api/search/upload)",
            ));
        }
    };
    let mut query = with_options(
        query,
        body.mode.as_deref(),
        &body.kinds,
        body.k,
        body.min_score,
    )?;
    if let Some(f) = &body.fusion {
        query = query.fusion(parse_fusion(f)?);
    }
    let tags = parse_tags(&body.tags)?;
    let mut filter = body.filter.unwrap_or_default();
    if !tags.is_empty() {
        filter.tags_any.extend(tags);
    }
    query = query.filter(filter);
    query = match (body.group.as_deref(), body.clips_per_asset) {
        (None | Some("asset"), None) => query,
        (None | Some("asset"), Some(_)) => {
            return Err(ApiError::bad_request(
                "clips_per_asset needs \"group\": \"clips\"",
            ));
        }
        (Some("clips"), n) => query.grouping(Grouping::Clips {
            clips_per_asset: n.unwrap_or(10),
            merge_adjacent: body.merge_adjacent,
        }),
        (Some(other), _) => {
            return Err(ApiError::bad_request(format!(
                "unknown group {:?} (asset or clips)",
                truncated(other)
            )));
        }
    };
    query = match body.order.as_deref() {
        None | Some("best_score") => query,
        Some("clip_count") => query.order(ResultOrder::ClipCount),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown order {:?} (best_score or clip_count)",
                truncated(other)
            )));
        }
    };
    query = query.keywords(body.keywords);
    for id in &body.negative_asset_ids {
        query = query.negative_asset(AssetId::parse(id.trim())?);
    }
    for text in body.negative_texts {
        query = query.negative_text(text);
    }
    for (space, min) in body.min_score_per_space {
        query = query.min_score_in(space, min);
    }
    for (space, w) in body.space_weights {
        query = query.space_weight(space, w);
    }
    if let Some(c) = body.cursor {
        query = query.cursor(c);
    }
    run_search(&app, &base, query).await
}

pub(crate) async fn search_upload(
    State(app): State<App>,
    Base(base): Base,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let mut multipart = multipart?;
    let mut file: Option<UploadedFile> = None;
    let (mut mode, mut kinds, mut k, mut min_score) = (None, Vec::new(), None, None);
    while let Some(mut field) = multipart.next_field().await? {
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "file" => {
                let f = read_file(&mut field, app.config.max_upload_bytes).await?;
                if f.name.is_none() && f.bytes.as_ref().is_ok_and(|b| b.is_empty()) {
                    continue; // an empty file input
                }
                if file.is_some() {
                    return Err(ApiError::bad_request(
                        "send exactly one reference file (field \"file\")",
                    ));
                }
                file = Some(f);
            }
            "mode" => mode = Some(read_text(&mut field, "mode").await?),
            "kinds" | "kind" => kinds.push(read_text(&mut field, "kinds").await?),
            "k" => k = Some(parse_k(&read_text(&mut field, "k").await?)?),
            "min_score" => {
                let v = read_text(&mut field, "min_score").await?;
                if !v.trim().is_empty() {
                    min_score = Some(parse_min_score(&v)?);
                }
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown form field {:?} (file, mode, kinds, k, min_score)",
                    truncated(other)
                )));
            }
        }
    }
    let Some(file) = file else {
        return Err(ApiError::bad_request(
            "no reference file: send it as the multipart field \"file\"",
        ));
    };
    let bytes = file.bytes?;
    // Check the options before the file, so an unknown mode is a 400 whatever the file is.
    let options = with_options(
        SearchQuery::text("-"),
        mode.as_deref().filter(|m| !m.trim().is_empty()),
        &kinds,
        k,
        min_score,
    )?;
    if let Err(e) = validate_media(&bytes, file.name.as_deref(), &app.media_limits) {
        return Err(ApiError::upload(&e, &bytes, &app.media_limits));
    }
    let mut query = SearchQuery::media(bytes);
    if let Some(name) = &file.name {
        query = query.file_name(name.clone());
    }
    query.mode = options.mode;
    query.kinds = options.kinds;
    query.k = options.k;
    query.min_score = options.min_score;
    run_search(&app, &base, query).await
}
