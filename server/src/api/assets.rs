//! `POST /api/assets` (upload), `GET /api/assets` (a page), `GET` and `DELETE
//! /api/assets/{id}`.

use axum::Json;
use axum::extract::multipart::MultipartRejection;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use crossmodal_core::{
    AssetId, AssetQuery, AssetStatus, DuplicateQuery, IngestItem, MediaFormat, MediaKind,
    MetaPatch, validate_media,
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::api::forms::{
    UploadedFile, parse_asset_id, parse_bool, parse_kinds, parse_state, parse_tags, read_file,
    read_text, truncated,
};
use crate::api::views::{AssetView, counts_json};
use crate::api::{App, Base, asset_path};
use crate::error::{ApiError, ApiResult, ErrorBody, internal};

/// The result of one uploaded file.
#[derive(Debug, Serialize)]
struct FileResult {
    file_name: Option<String>,
    /// The HTTP status this file alone would get.
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    asset_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<MediaKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<MediaFormat>,
    /// `indexed`, `already_indexed` or `processing` (accepted, ingesting in the background).
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vectors: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from_cache: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    extension_mismatch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    media_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorBody>,
}

impl FileResult {
    fn failed(file_name: Option<String>, err: ApiError) -> Self {
        FileResult {
            file_name,
            status: err.status.as_u16(),
            asset_id: None,
            kind: None,
            format: None,
            outcome: None,
            vectors: None,
            from_cache: None,
            extension_mismatch: None,
            media_url: None,
            error: Some(err.body),
        }
    }
}

#[derive(Default, Serialize)]
struct UploadSummary {
    indexed: usize,
    already_indexed: usize,
    processing: usize,
    failed: usize,
}

pub(crate) async fn upload(
    State(app): State<App>,
    Base(base): Base,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<Response> {
    let mut wait = true;
    for (k, v) in params?.0 {
        match k.as_str() {
            "wait" => wait = parse_bool("wait", &v)?,
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {:?} (wait)",
                    truncated(other)
                )));
            }
        }
    }
    let mut multipart = multipart?;
    let mut files = Vec::new();
    let mut tag_fields = Vec::new();
    while let Some(mut field) = multipart.next_field().await? {
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "file" | "files" => {
                // An empty file input still sends a part with an empty name and no bytes.
                let file = read_file(&mut field, app.config.max_upload_bytes).await?;
                let empty_input = file.name.is_none()
                    && field.file_name().is_some()
                    && file.bytes.as_ref().is_ok_and(|b| b.is_empty());
                if empty_input {
                    continue;
                }
                if files.len() == app.config.max_files {
                    return Err(ApiError::too_large(format!(
                        "at most {} files per upload",
                        app.config.max_files
                    )));
                }
                files.push(file);
            }
            "tags" => tag_fields.push(read_text(&mut field, "tags").await?),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown form field {:?} (file, tags)",
                    truncated(other)
                )));
            }
        }
    }
    if files.is_empty() {
        return Err(ApiError::bad_request(
            "no file in the upload: send one or more multipart fields named \"file\"",
        ));
    }
    let tags = parse_tags(&tag_fields)?;

    let concurrency = app.engine.ingestor().config().concurrency.max(1);
    let results: Vec<FileResult> = futures::stream::iter(files)
        .map(|file| ingest_upload(&app, &base, file, tags.clone(), wait))
        .buffered(concurrency)
        .collect()
        .await;

    let mut summary = UploadSummary::default();
    for r in &results {
        match (r.outcome, &r.error) {
            (_, Some(_)) => summary.failed += 1,
            (Some("already_indexed"), _) => summary.already_indexed += 1,
            (Some("processing"), _) => summary.processing += 1,
            _ => summary.indexed += 1,
        }
    }
    let first_error = results.iter().find(|r| r.error.is_some());
    let status = match first_error {
        None if summary.processing > 0 => StatusCode::ACCEPTED,
        None => StatusCode::OK,
        Some(r) if summary.failed == results.len() => {
            StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST)
        }
        Some(_) => StatusCode::MULTI_STATUS,
    };
    let mut body = serde_json::json!({ "files": results, "summary": summary });
    if summary.failed == results.len()
        && let Some(err) = first_error.and_then(|r| r.error.clone())
        && let Some(map) = body.as_object_mut()
    {
        map.insert("error".into(), serde_json::json!(err));
    }
    Ok((status, Json(body)).into_response())
}

/// Validates and ingests one uploaded file (or, without `wait`, starts its ingest).
async fn ingest_upload(
    app: &App,
    base: &str,
    file: UploadedFile,
    tags: Vec<String>,
    wait: bool,
) -> FileResult {
    let bytes = match file.bytes {
        Ok(b) => b,
        Err(e) => return FileResult::failed(file.name, e),
    };
    // Validate here too, so errors about the file itself get their own statuses (413, 415, 422)
    // apart from failures of the service behind it.
    let valid = match validate_media(&bytes, file.name.as_deref(), &app.media_limits) {
        Ok(v) => v,
        Err(e) => {
            return FileResult::failed(file.name, ApiError::upload(&e, &bytes, &app.media_limits));
        }
    };
    let mut result = FileResult {
        file_name: file.name.clone(),
        status: 200,
        asset_id: Some(valid.asset_id.to_string()),
        kind: Some(valid.probe.kind()),
        format: Some(valid.probe.format),
        outcome: None,
        vectors: None,
        from_cache: None,
        extension_mismatch: valid.extension_mismatch.clone(),
        media_url: Some(format!("{}/media", asset_path(base, &valid.asset_id))),
        error: None,
    };
    let item =
        IngestItem::bytes(bytes, file.name.clone().unwrap_or_else(|| "upload".into())).tags(tags);
    if !wait {
        match app.engine.asset(&valid.asset_id).await {
            Ok(Some(r)) if r.status == AssetStatus::Indexed => {
                result.outcome = Some("already_indexed");
                return result;
            }
            Ok(_) => {}
            Err(e) => return FileResult::failed(file.name, e.into()),
        }
        // Listed as pending from now on; runs on its own; its outcome is the asset's status.
        if let Err(e) = app.engine.register_pending(&valid, &item).await {
            return FileResult::failed(file.name, e.into());
        }
        drop(app.spawn_ingest(item));
        result.status = 202;
        result.outcome = Some("processing");
        return result;
    }
    let joined = app.spawn_ingest(item).await;
    match joined {
        Ok(Ok(report)) => {
            result.outcome = Some(report.outcome.as_str());
            result.vectors = Some(report.vectors);
            result.from_cache = Some(report.from_cache);
            result
        }
        Ok(Err(e)) => FileResult::failed(file.name, e.into()),
        Err(e) => FileResult::failed(file.name, internal(format!("the ingest task failed: {e}"))),
    }
}

pub(crate) async fn list_assets(
    State(app): State<App>,
    Base(base): Base,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let mut query = AssetQuery::new().limit(50);
    let mut kinds = Vec::new();
    for (k, v) in params?.0 {
        match k.as_str() {
            "kind" => kinds.push(v),
            "status" | "state" => {
                for s in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    if s == "all" {
                        continue;
                    }
                    let state = parse_state(s)?;
                    if !query.states.contains(&state) {
                        query.states.push(state);
                    }
                }
            }
            "cursor" => {
                if v.len() > 1024 {
                    return Err(ApiError::bad_request("cursor is not one this service gave"));
                }
                if !v.is_empty() {
                    query.cursor = Some(v);
                }
            }
            "limit" => {
                query.limit = match v.trim().parse::<usize>() {
                    Ok(n @ 1..=1000) => n,
                    _ => {
                        return Err(ApiError::bad_request(format!(
                            "limit must be an integer from 1 to 1000, got {:?}",
                            truncated(&v)
                        )));
                    }
                }
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {:?} (kind, status, cursor, limit)",
                    truncated(other)
                )));
            }
        }
    }
    query.kinds = parse_kinds(&kinds)?;
    let page = app.engine.assets(&query).await?;
    let counts = app.engine.counts().await?;
    let assets: Vec<AssetView> = page
        .assets
        .into_iter()
        .map(|r| AssetView::new(&base, r))
        .collect();
    Ok(Json(serde_json::json!({
        "assets": assets,
        "next_cursor": page.next_cursor,
        "counts": counts_json(&counts),
    })))
}

pub(crate) fn path_id(id: Result<Path<String>, PathRejection>) -> ApiResult<AssetId> {
    let Path(id) = id?;
    parse_asset_id(&id)
}

pub(crate) fn no_such_asset(id: &AssetId) -> ApiError {
    ApiError::not_found(format!("no asset {id}"))
}

pub(crate) async fn get_asset(
    State(app): State<App>,
    Base(base): Base,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<AssetView>> {
    let id = path_id(id)?;
    let record = app
        .engine
        .asset(&id)
        .await?
        .ok_or_else(|| no_such_asset(&id))?;
    Ok(Json(AssetView::new(&base, record)))
}

pub(crate) async fn delete_asset(
    State(app): State<App>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<StatusCode> {
    let id = path_id(id)?;
    let deleted = app.engine.delete(&id).await?;
    app.thumbnails.forget(&id).await;
    if deleted {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_such_asset(&id))
    }
}

/// `PATCH /api/assets/{id}`: a `crossmodal_core::MetaPatch` as JSON (`{"name": "..",
/// "set_fields": {"campaign": "autumn"}, "remove_fields": ["draft"], "add_tags": ["approved"],
/// "remove_tags": ["wip"]}`); changes the catalog and every vector's metadata in place, no
/// re-embedding. Answers the updated asset.
pub(crate) async fn patch_asset(
    State(app): State<App>,
    Base(base): Base,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<MetaPatch>, JsonRejection>,
) -> ApiResult<Json<AssetView>> {
    let id = path_id(id)?;
    let Json(patch) = body?;
    if patch.is_empty() {
        return Err(ApiError::bad_request(
            "the patch changes nothing (name, set_fields, remove_fields, add_tags, remove_tags)",
        ));
    }
    let record = app.engine.update_asset(&id, &patch).await?;
    Ok(Json(AssetView::new(&base, record)))
}

/// Query parameters of the duplicate endpoints.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DuplicateParams {
    /// Cosine at or above which two segments pair up (default 0.92).
    min_cosine: Option<f32>,
    /// Share of both assets' segments that makes a copy (default 0.8).
    copy_coverage: Option<f32>,
    /// Library-wide: pairs returned at most (default 100, at most 10,000).
    limit: Option<usize>,
}

impl DuplicateParams {
    fn query(&self) -> DuplicateQuery {
        let mut q = DuplicateQuery::default();
        if let Some(m) = self.min_cosine {
            q = q.min_cosine(m);
        }
        if let Some(c) = self.copy_coverage {
            q = q.copy_coverage(c);
        }
        q
    }
}

/// `GET /api/assets/{id}/duplicates`: the asset's near-duplicates with the segment pairs.
pub(crate) async fn asset_duplicates(
    State(app): State<App>,
    id: Result<Path<String>, PathRejection>,
    params: Result<Query<DuplicateParams>, QueryRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let id = path_id(id)?;
    let Query(params) = params?;
    if params.limit.is_some() {
        return Err(ApiError::bad_request(
            "limit applies to /api/duplicates only",
        ));
    }
    let found = app.engine.near_duplicates(&id, &params.query()).await?;
    Ok(Json(
        serde_json::json!({ "asset_id": id, "duplicates": found }),
    ))
}

/// `GET /api/duplicates`: near-duplicate pairs of the whole library (a batch job: one search
/// per segment of every asset).
pub(crate) async fn library_duplicates(
    State(app): State<App>,
    params: Result<Query<DuplicateParams>, QueryRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let Query(params) = params?;
    let limit = params.limit.unwrap_or(100);
    if limit == 0 || limit > 10_000 {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and 10000, got {limit}"
        )));
    }
    let pairs = app
        .engine
        .library_duplicates(&params.query(), limit)
        .await?;
    Ok(Json(serde_json::json!({ "pairs": pairs })))
}
