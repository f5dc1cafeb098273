//! The HTTP API and page of the `serve` example: the library's workflows (upload, list, search by
//! text or by an uploaded file, play the matched segment, delete) behind a small JSON API, plus
//! one static HTML page (`serve_page.html`) that uses it.
//!
//! | method and path | what it does |
//! |---|---|
//! | `GET /` | the HTML page |
//! | `GET /api/stats` | status counts, index statistics and the service limits |
//! | `POST /api/assets` | multipart upload of one or more files (`file`), optional `tags`; `?wait=false` answers 202 after validation and ingests in the background |
//! | `GET /api/assets` | one page of assets: `?kind=video&status=indexed&cursor=..&limit=..` (comma lists or repeated keys) |
//! | `GET /api/assets/{id}` | one asset |
//! | `DELETE /api/assets/{id}` | removes an asset everywhere (204) |
//! | `GET /api/assets/{id}/media` | the original with its content type; honours `Range` (206) |
//! | `POST /api/search` | JSON `{text | asset_id, mode, kinds, k, min_score, fusion, tags}` |
//! | `POST /api/search/upload` | multipart: `file` (the reference), `mode`, `kinds`, `k`, `min_score` |
//!
//! Every error is `{"error": {"kind": "<ErrorKind in snake_case>", "message": "..."}}` with the
//! status of [`status_for`].
//!
//! Included by `examples/serve.rs` and by the tests (`#[path]` modules), so it depends on nothing
//! but the core crate, `axum`, `serde`, `futures` and `tokio`.

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::multipart::{Field, MultipartRejection};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::{Bytes, BytesMut};
use crossmodal_core::{
    AssetId, AssetQuery, AssetRecord, AssetState, AssetStatus, Engine, Error, ErrorKind, Filter,
    Fusion, IngestItem, IngestOutcome, MediaFormat, MediaKey, MediaKind, MediaLimits, MediaStore,
    Query as SearchQuery, RouteReport, SearchHit, SearchMode, Segment, StatusCounts,
    validate_media,
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The page served at `/`.
const PAGE: &str = include_str!("page.html");

/// Longest text field (tags, mode, ...) read from a multipart form.
const MAX_TEXT_FIELD: usize = 4096;
/// Most tags on one upload, and the longest tag.
const MAX_TAGS: usize = 32;
const MAX_TAG_CHARS: usize = 64;

/// Sizes and times the service enforces, on top of the engine's [`MediaLimits`].
#[derive(Debug, Clone, PartialEq)]
pub struct ServeLimits {
    /// Largest single uploaded file (ingest or reference file), bytes. A larger file gets a 413
    /// result; the rest of the request is still processed.
    pub max_upload_bytes: u64,
    /// Largest multipart request body, bytes (all files and fields together). A larger body gets
    /// a 413 for the whole request. Uploads are held in memory: this bounds one request's memory.
    pub max_request_bytes: usize,
    /// Most files in one upload request.
    pub max_files: usize,
    /// A search that takes longer answers 504.
    pub search_timeout: Duration,
    /// Lifetime of presigned preview URLs (for stores that give `http(s)` URLs, such as S3).
    pub preview_ttl: Duration,
}

impl Default for ServeLimits {
    /// 256 MiB a file, 512 MiB a request, 100 files a request, 30 s a search, 1 h previews.
    fn default() -> Self {
        ServeLimits {
            max_upload_bytes: 256 * 1024 * 1024,
            max_request_bytes: 512 * 1024 * 1024,
            max_files: 100,
            search_timeout: Duration::from_secs(30),
            preview_ttl: Duration::from_secs(3600),
        }
    }
}

/// Shared state of the handlers.
#[derive(Clone)]
struct App {
    engine: Engine,
    limits: Arc<ServeLimits>,
    media_limits: Arc<MediaLimits>,
    /// Bounds background ingests (`?wait=false`) to the engine's ingest concurrency.
    background: Arc<tokio::sync::Semaphore>,
}

/// The service: the JSON API under `/api` and the page at `/`, over `engine`.
///
/// Bind it to a loopback address unless something in front of it authenticates: the API has no
/// authentication of its own.
pub fn router(engine: Engine, limits: ServeLimits) -> Router {
    let concurrency = engine.ingestor().config().concurrency.max(1);
    let app = App {
        media_limits: Arc::new(engine.ingestor().config().limits.clone()),
        engine,
        background: Arc::new(tokio::sync::Semaphore::new(concurrency)),
        limits: Arc::new(limits),
    };
    // The default body limit (2 MB) stays on the JSON routes; uploads get the configured one.
    let upload_limit = DefaultBodyLimit::max(app.limits.max_request_bytes);
    Router::new()
        .route("/", get(page))
        .route("/api/stats", get(stats))
        .route(
            "/api/assets",
            post(upload).layer(upload_limit).get(list_assets),
        )
        .route("/api/assets/{id}", get(get_asset).delete(delete_asset))
        .route("/api/assets/{id}/media", get(media))
        .route("/api/search", post(search))
        .route(
            "/api/search/upload",
            post(search_upload).layer(upload_limit),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::map_response(security_headers))
        .with_state(app)
}

// ---------------------------------------------------------------------------------------------
// Errors

/// The HTTP status for an error of `kind` raised while serving a request: `InvalidInput` 400,
/// `Unsupported` 422, `NotFound` 404, `Conflict` 409, `RateLimited` 429, `Timeout` 504,
/// `Unavailable` 503, anything else 500. Errors about an uploaded file itself are refined by the
/// upload handlers: too large 413, unknown format 415, damaged 422.
pub fn status_for(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorKind::Unsupported => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The `error` object of every error response.
#[derive(Debug, Clone, Serialize)]
struct ErrorBody {
    /// The [`ErrorKind`] in snake_case (`invalid_input`, `not_found`, ...).
    kind: String,
    /// What went wrong, with the error's context (file, asset, ...).
    message: String,
}

/// An error response: a status and `{"error": {...}}`.
#[derive(Debug, Clone)]
struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

fn kind_name(kind: ErrorKind) -> String {
    match serde_json::to_value(kind) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "backend".to_string(),
    }
}

/// The message of `err` with its context, without the kind prefix (the kind is a separate field).
fn message_of(err: &Error) -> String {
    let mut m = err.message().to_string();
    if !err.context().is_empty() {
        // Layers may add the same pair twice (the provider and the ingestor both name the asset).
        let mut ctx: Vec<String> = Vec::new();
        for (k, v) in err.context() {
            let pair = format!("{k}: {v}");
            if !ctx.contains(&pair) {
                ctx.push(pair);
            }
        }
        m.push_str(&format!(" ({})", ctx.join(", ")));
    }
    m
}

impl ApiError {
    fn new(status: StatusCode, kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                kind: kind_name(kind),
                message: message.into(),
            },
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorKind::InvalidInput, message)
    }

    fn too_large(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::InvalidInput,
            message,
        )
    }

    /// An error about an uploaded file's content (from [`validate_media`]): too large 413,
    /// unknown format 415, damaged 422, other invalid input 400.
    fn upload(err: &Error, bytes: &[u8], limits: &MediaLimits) -> Self {
        let status = match err.kind() {
            ErrorKind::InvalidInput
                if MediaFormat::sniff(bytes)
                    .is_some_and(|f| bytes.len() as u64 > limits.max_bytes(f.kind())) =>
            {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ErrorKind::Unsupported => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorKind::Corrupt => StatusCode::UNPROCESSABLE_ENTITY,
            kind => status_for(kind),
        };
        ApiError::new(status, err.kind(), message_of(err))
    }

    /// An axum extractor rejection (bad JSON, bad multipart, body over the limit): 413 for a body
    /// over the limit, 415 for a missing content type, 400 otherwise.
    fn rejection(status: StatusCode, text: String) -> Self {
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            return Self::too_large(format!("request body too large: {text}"));
        }
        if status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
            return Self::new(status, ErrorKind::Unsupported, text);
        }
        // Malformed and mis-shaped bodies alike are the caller's input: 400, like `InvalidInput`.
        Self::bad_request(text)
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        ApiError::new(status_for(err.kind()), err.kind(), message_of(&err))
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        ApiError::rejection(r.status(), r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::rejection(r.status(), r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::rejection(r.status(), r.body_text())
    }
}

impl From<MultipartRejection> for ApiError {
    fn from(r: MultipartRejection) -> Self {
        ApiError::rejection(r.status(), r.body_text())
    }
}

impl From<axum::extract::multipart::MultipartError> for ApiError {
    fn from(e: axum::extract::multipart::MultipartError) -> Self {
        ApiError::rejection(e.status(), e.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            eprintln!(
                "serve: {} {}: {}",
                self.status.as_u16(),
                self.body.kind,
                self.body.message
            );
        }
        let retry_after = matches!(
            self.status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        );
        let mut response =
            (self.status, Json(serde_json::json!({ "error": self.body }))).into_response();
        if retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

type ApiResult<T> = std::result::Result<T, ApiError>;

async fn not_found(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorKind::NotFound,
        format!("no route for {method} {}", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorKind::Unsupported,
        format!("{method} is not allowed on {}", uri.path()),
    )
}

async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

// ---------------------------------------------------------------------------------------------
// Views

/// An asset as the API shows it (no server paths).
#[derive(Debug, Serialize)]
struct AssetView {
    asset_id: String,
    name: Option<String>,
    kind: MediaKind,
    format: MediaFormat,
    size_bytes: u64,
    width: Option<u32>,
    height: Option<u32>,
    duration_sec: Option<f64>,
    has_video: bool,
    has_audio: bool,
    tags: Vec<String>,
    /// `pending`, `embedding`, `indexed` or `failed`.
    state: AssetState,
    /// The state with the failed stage and message.
    status: AssetStatus,
    extension_mismatch: Option<String>,
    created_at_ms: i64,
    updated_at_ms: i64,
    /// Where to fetch the original, once stored.
    media_url: Option<String>,
}

fn media_path(asset: &AssetId) -> String {
    format!("/api/assets/{}/media", asset.as_str())
}

impl From<AssetRecord> for AssetView {
    fn from(r: AssetRecord) -> Self {
        AssetView {
            media_url: r.media.as_ref().map(|_| media_path(&r.asset_id)),
            asset_id: r.asset_id.to_string(),
            kind: r.kind(),
            format: r.format(),
            name: r.display_name,
            size_bytes: r.size_bytes,
            width: r.probe.width,
            height: r.probe.height,
            duration_sec: r.probe.duration_sec,
            has_video: r.probe.has_video,
            has_audio: r.probe.has_audio,
            tags: r.tags,
            state: r.status.state(),
            status: r.status,
            extension_mismatch: r.extension_mismatch,
            created_at_ms: r.created_at_ms,
            updated_at_ms: r.updated_at_ms,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Page and stats

async fn page() -> Response {
    let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' \
             'unsafe-inline'; img-src 'self' https: http: data: blob:; media-src 'self' https: \
             http: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    response
}

#[derive(Serialize)]
struct LimitsView {
    max_upload_bytes: u64,
    max_request_bytes: usize,
    max_files: usize,
    search_timeout_ms: u128,
    media: MediaLimits,
}

async fn stats(State(app): State<App>) -> ApiResult<Json<serde_json::Value>> {
    let counts = app.engine.counts().await?;
    let index = app.engine.index_stats().await?;
    let limits = LimitsView {
        max_upload_bytes: app.limits.max_upload_bytes,
        max_request_bytes: app.limits.max_request_bytes,
        max_files: app.limits.max_files,
        search_timeout_ms: app.limits.search_timeout.as_millis(),
        media: (*app.media_limits).clone(),
    };
    Ok(Json(serde_json::json!({
        "counts": counts_json(&counts),
        "index": index,
        "limits": limits,
    })))
}

fn counts_json(c: &StatusCounts) -> serde_json::Value {
    serde_json::json!({
        "pending": c.pending,
        "embedding": c.embedding,
        "indexed": c.indexed,
        "failed": c.failed,
        "total": c.total(),
    })
}

// ---------------------------------------------------------------------------------------------
// Query-string and form helpers

fn parse_bool(name: &str, value: &str) -> ApiResult<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "{name} must be true or false, got {value:?}"
        ))),
    }
}

fn parse_kinds(values: &[String]) -> ApiResult<Vec<MediaKind>> {
    let mut kinds = Vec::new();
    for v in values.iter().flat_map(|v| v.split(',')) {
        let v = v.trim();
        if v.is_empty() || v == "all" {
            continue;
        }
        let kind: MediaKind = v.parse()?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    Ok(kinds)
}

fn parse_state(s: &str) -> ApiResult<AssetState> {
    Ok(s.parse::<AssetState>()?)
}

fn parse_mode(s: &str) -> ApiResult<SearchMode> {
    Ok(s.trim().parse::<SearchMode>()?)
}

fn parse_k(s: &str) -> ApiResult<usize> {
    s.trim()
        .parse()
        .map_err(|_| ApiError::bad_request(format!("k must be a positive integer, got {s:?}")))
}

fn parse_min_score(s: &str) -> ApiResult<f32> {
    s.trim().parse().map_err(|_| {
        ApiError::bad_request(format!("min_score must be a number in [-1, 1], got {s:?}"))
    })
}

fn parse_fusion(s: &str) -> ApiResult<Fusion> {
    match s.to_ascii_lowercase().as_str() {
        "cosine" => Ok(Fusion::Cosine),
        "rrf" | "reciprocal_rank" => Ok(Fusion::ReciprocalRank { k0: 60.0 }),
        _ => Err(ApiError::bad_request(format!(
            "unknown fusion {s:?} (cosine or rrf)"
        ))),
    }
}

fn parse_tags(values: &[String]) -> ApiResult<Vec<String>> {
    let mut tags: Vec<String> = Vec::new();
    for t in values.iter().flat_map(|v| v.split(',')) {
        let t = t.trim();
        if t.is_empty() {
            continue;
        }
        if t.chars().count() > MAX_TAG_CHARS || t.chars().any(char::is_control) {
            return Err(ApiError::bad_request(format!(
                "a tag is at most {MAX_TAG_CHARS} printable characters: {:?}",
                t.chars().take(MAX_TAG_CHARS + 1).collect::<String>()
            )));
        }
        if !tags.iter().any(|x| x == t) {
            tags.push(t.to_string());
        }
    }
    if tags.len() > MAX_TAGS {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_TAGS} tags, got {}",
            tags.len()
        )));
    }
    Ok(tags)
}

/// The name shown for an uploaded file: the last path component, no control characters, at most
/// 255 characters. Never used as a path.
fn display_name(raw: Option<&str>) -> Option<String> {
    let raw = raw?;
    let base = raw.rsplit(['/', '\\']).next().unwrap_or(raw);
    let clean: String = base.chars().filter(|c| !c.is_control()).take(255).collect();
    let clean = clean.trim();
    (!clean.is_empty()).then(|| clean.to_string())
}

fn parse_asset_id(id: ApiResult<String>) -> ApiResult<AssetId> {
    Ok(AssetId::parse(&id?)?)
}

/// Reads a text field of at most [`MAX_TEXT_FIELD`] bytes.
async fn read_text(field: &mut Field<'_>, name: &str) -> ApiResult<String> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = field.chunk().await? {
        if buf.len() + chunk.len() > MAX_TEXT_FIELD {
            return Err(ApiError::bad_request(format!(
                "form field {name:?} is longer than {MAX_TEXT_FIELD} bytes"
            )));
        }
        buf.extend_from_slice(&chunk);
    }
    String::from_utf8(buf.to_vec())
        .map_err(|_| ApiError::bad_request(format!("form field {name:?} is not UTF-8")))
}

/// A file read from a multipart form.
struct UploadedFile {
    name: Option<String>,
    /// The bytes, or the 413 error when the file is over the per-file limit (its bytes were
    /// read and dropped so the rest of the form can be processed).
    bytes: Result<Bytes, ApiError>,
}

/// Reads a file field, keeping at most `max` bytes.
async fn read_file(field: &mut Field<'_>, max: u64) -> ApiResult<UploadedFile> {
    let name = display_name(field.file_name());
    let mut buf = BytesMut::new();
    let mut size: u64 = 0;
    while let Some(chunk) = field.chunk().await? {
        size += chunk.len() as u64;
        if size <= max {
            buf.extend_from_slice(&chunk);
        } else if !buf.is_empty() {
            buf = BytesMut::new();
        }
    }
    let bytes = if size > max {
        Err(ApiError::too_large(format!(
            "file {} is larger than the upload limit of {max} bytes",
            name.as_deref()
                .map(|n| format!("{n:?}"))
                .unwrap_or_else(|| "(unnamed)".into()),
        )))
    } else {
        Ok(buf.freeze())
    };
    Ok(UploadedFile { name, bytes })
}

// ---------------------------------------------------------------------------------------------
// Upload

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

async fn upload(
    State(app): State<App>,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<Response> {
    let mut wait = true;
    for (k, v) in params?.0 {
        match k.as_str() {
            "wait" => wait = parse_bool("wait", &v)?,
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {other:?} (wait)"
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
                let file = read_file(&mut field, app.limits.max_upload_bytes).await?;
                let empty_input = file.name.is_none()
                    && field.file_name().is_some()
                    && file.bytes.as_ref().is_ok_and(|b| b.is_empty());
                if empty_input {
                    continue;
                }
                if files.len() == app.limits.max_files {
                    return Err(ApiError::too_large(format!(
                        "at most {} files per upload",
                        app.limits.max_files
                    )));
                }
                files.push(file);
            }
            "tags" => tag_fields.push(read_text(&mut field, "tags").await?),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown form field {other:?} (file, tags)"
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
        .map(|file| ingest_upload(&app, file, tags.clone(), wait))
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
async fn ingest_upload(app: &App, file: UploadedFile, tags: Vec<String>, wait: bool) -> FileResult {
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
        media_url: Some(media_path(&valid.asset_id)),
        error: None,
    };
    let mut item = IngestItem::bytes(bytes, file.name.clone().unwrap_or_else(|| "upload".into()));
    item = item.tags(tags);
    if !wait {
        match app.engine.asset(&valid.asset_id).await {
            Ok(Some(r)) if r.status == AssetStatus::Indexed => {
                result.outcome = Some("already_indexed");
                return result;
            }
            Ok(_) => {}
            Err(e) => return FileResult::failed(file.name, e.into()),
        }
        let engine = app.engine.clone();
        let permits = app.background.clone();
        let label = file.name.clone().unwrap_or_default();
        tokio::spawn(async move {
            let Ok(_permit) = permits.acquire_owned().await else {
                return;
            };
            if let Err(e) = engine.ingest(item).await {
                eprintln!("serve: background ingest of {label:?} failed: {e}");
            }
        });
        result.status = 202;
        result.outcome = Some("processing");
        return result;
    }
    match app.engine.ingest(item).await {
        Ok(report) => {
            result.outcome = Some(match report.outcome {
                IngestOutcome::Indexed => "indexed",
                IngestOutcome::AlreadyIndexed => "already_indexed",
            });
            result.vectors = Some(report.vectors);
            result.from_cache = Some(report.from_cache);
            result
        }
        Err(e) => FileResult::failed(file.name, e.into()),
    }
}

// ---------------------------------------------------------------------------------------------
// Assets

async fn list_assets(
    State(app): State<App>,
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
                if !v.is_empty() {
                    query.cursor = Some(v);
                }
            }
            "limit" => {
                query.limit = match v.trim().parse::<usize>() {
                    Ok(n @ 1..=1000) => n,
                    _ => {
                        return Err(ApiError::bad_request(format!(
                            "limit must be an integer from 1 to 1000, got {v:?}"
                        )));
                    }
                }
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {other:?} (kind, status, cursor, limit)"
                )));
            }
        }
    }
    query.kinds = parse_kinds(&kinds)?;
    let page = app.engine.assets(&query).await?;
    let counts = app.engine.counts().await?;
    let assets: Vec<AssetView> = page.assets.into_iter().map(AssetView::from).collect();
    Ok(Json(serde_json::json!({
        "assets": assets,
        "next_cursor": page.next_cursor,
        "counts": counts_json(&counts),
    })))
}

async fn get_asset(
    State(app): State<App>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<AssetView>> {
    let id = parse_asset_id(id.map(|p| p.0).map_err(ApiError::from))?;
    let record = app
        .engine
        .asset(&id)
        .await?
        .ok_or_else(|| no_such_asset(&id))?;
    Ok(Json(AssetView::from(record)))
}

fn no_such_asset(id: &AssetId) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorKind::NotFound,
        format!("no asset {id}"),
    )
}

async fn delete_asset(
    State(app): State<App>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<StatusCode> {
    let id = parse_asset_id(id.map(|p| p.0).map_err(ApiError::from))?;
    if app.engine.delete(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_such_asset(&id))
    }
}

/// A parsed `Range` header for a body of a known length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ByteRange {
    /// No usable range: send everything (200).
    Full,
    /// Bytes `start..=end` (206).
    Part(u64, u64),
    /// The range lies outside the body (416).
    Unsatisfiable,
}

/// Parses a single-range `Range` header (`bytes=a-b`, `bytes=a-`, `bytes=-n`). Headers that do
/// not parse, other units and multiple ranges are ignored (the whole body is sent), as RFC 9110
/// allows.
fn parse_range(value: &str, len: u64) -> ByteRange {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return ByteRange::Full;
    };
    if spec.contains(',') {
        return ByteRange::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return ByteRange::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    match (a.parse::<u64>().ok(), b.parse::<u64>().ok()) {
        (Some(start), None) if b.is_empty() => {
            if start < len {
                ByteRange::Part(start, len - 1)
            } else {
                ByteRange::Unsatisfiable
            }
        }
        (Some(start), Some(end)) if start <= end => {
            if start < len {
                ByteRange::Part(start, end.min(len - 1))
            } else {
                ByteRange::Unsatisfiable
            }
        }
        (None, Some(suffix)) if a.is_empty() => {
            if suffix == 0 || len == 0 {
                ByteRange::Unsatisfiable
            } else {
                ByteRange::Part(len.saturating_sub(suffix), len - 1)
            }
        }
        _ => ByteRange::Full,
    }
}

async fn media(
    State(app): State<App>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = parse_asset_id(id.map(|p| p.0).map_err(ApiError::from))?;
    let record = app
        .engine
        .asset(&id)
        .await?
        .ok_or_else(|| no_such_asset(&id))?;
    let Some(stored) = &record.media else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorKind::NotFound,
            format!("the original of asset {id} is not stored (yet)"),
        ));
    };
    let etag = format!("\"{}\"", id.as_str());
    let header_str = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let base = |status: StatusCode| {
        let mut r = Response::builder()
            .status(status)
            .header(header::ETAG, &etag)
            .header(header::ACCEPT_RANGES, "bytes")
            .header(header::CACHE_CONTROL, "private, max-age=3600");
        if status != StatusCode::RANGE_NOT_SATISFIABLE {
            r = r.header(header::CONTENT_TYPE, record.format().mime_type());
        }
        r
    };
    if header_str(header::IF_NONE_MATCH)
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        return base(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .map_err(internal);
    }
    // Content-addressed: the bytes of an asset id never change, so its ETag is strong.
    let len = record.size_bytes;
    let if_range_ok = header_str(header::IF_RANGE).is_none_or(|v| v.trim() == etag);
    let range = match header_str(header::RANGE) {
        Some(v) if if_range_ok => parse_range(v, len),
        _ => ByteRange::Full,
    };
    match range {
        ByteRange::Full => {
            let body = ranged_body(app.engine.store().clone(), stored.key.clone(), 0, len).await?;
            base(StatusCode::OK)
                .header(header::CONTENT_LENGTH, len)
                .body(body)
                .map_err(internal)
        }
        ByteRange::Part(start, end) => {
            let body = ranged_body(
                app.engine.store().clone(),
                stored.key.clone(),
                start,
                end + 1,
            )
            .await?;
            base(StatusCode::PARTIAL_CONTENT)
                .header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"))
                .header(header::CONTENT_LENGTH, end - start + 1)
                .body(body)
                .map_err(internal)
        }
        ByteRange::Unsatisfiable => {
            let err = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                ErrorKind::InvalidInput,
                format!("the requested range is outside the {len} bytes of the original"),
            );
            let mut response = err.into_response();
            response.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{len}")).map_err(internal)?,
            );
            Ok(response)
        }
    }
}

/// Bytes `start..end` of a stored original as a response body, read with
/// `MediaStore::get_range` a few MiB at a time as the client takes them, so neither a `Range`
/// request nor a whole multi-GB video is held in memory. The first piece is read before the
/// response starts (a missing object is still a 404).
async fn ranged_body(
    store: Arc<dyn MediaStore>,
    key: MediaKey,
    start: u64,
    end: u64,
) -> ApiResult<Body> {
    const STEP: u64 = 4 * 1024 * 1024;
    let first_end = end.min(start.saturating_add(STEP));
    let first = store.get_range(&key, start..first_end).await?;
    let after = start + first.len() as u64;
    let rest = futures::stream::try_unfold(after, move |at| {
        let (store, key) = (store.clone(), key.clone());
        async move {
            if at >= end {
                return Ok(None);
            }
            let bytes = store.get_range(&key, at..end.min(at + STEP)).await?;
            if bytes.is_empty() {
                return Err(Error::corrupt(
                    "the stored original is shorter than its catalog record says",
                )
                .with_context("key", &key));
            }
            let next = at + bytes.len() as u64;
            Ok(Some((bytes, next)))
        }
    });
    let chunks = futures::stream::once(async move { Ok::<_, Error>(first) }).chain(rest);
    Ok(Body::from_stream(chunks))
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        ErrorKind::Backend,
        e.to_string(),
    )
}

// ---------------------------------------------------------------------------------------------
// Search

/// The JSON body of `POST /api/search`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchBody {
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
}

/// One search result as the API shows it.
#[derive(Debug, Serialize)]
struct HitView {
    rank: usize,
    asset_id: String,
    name: Option<String>,
    kind: MediaKind,
    format: MediaFormat,
    score: f32,
    cosine: f32,
    /// The embedding space of the best match.
    space: crossmodal_core::EmbeddingSpace,
    /// The best-matching clip (`None` for images).
    segment: Option<Segment>,
    matches: Vec<crossmodal_core::RouteMatch>,
    tags: Vec<String>,
    /// Where a browser can play or show the hit: `/api/assets/{id}/media#t=start,end` for local
    /// stores, a presigned URL (with the same fragment) for stores that give `http(s)` URLs.
    preview_url: Option<String>,
    /// The original through this service.
    media_url: Option<String>,
}

/// `1`, `1.5`, `12.25`: seconds for a media fragment.
fn seconds(s: f64) -> String {
    let t = format!("{s:.3}");
    let t = t.trim_end_matches('0').trim_end_matches('.');
    if t.is_empty() { "0".into() } else { t.into() }
}

async fn hit_view(app: &App, rank: usize, hit: SearchHit) -> HitView {
    let fragment = hit
        .best_segment
        .map(|s| format!("#t={},{}", seconds(s.start_sec), seconds(s.end_sec)))
        .unwrap_or_default();
    let local = media_path(&hit.asset_id);
    let preview_url = match &hit.media {
        None => None,
        Some(m) => {
            let store = app.engine.store();
            let scheme = store.media_ref(&m.key).uri.scheme().to_string();
            if scheme == "file" || scheme == "memory" {
                Some(format!("{local}{fragment}"))
            } else {
                match store.preview_url(&m.key, app.limits.preview_ttl).await {
                    Ok(url) if matches!(url.scheme(), "http" | "https") => {
                        Some(format!("{url}{fragment}"))
                    }
                    Ok(_) => Some(format!("{local}{fragment}")),
                    Err(e) => {
                        eprintln!("serve: no preview URL for {}: {e}", hit.asset_id);
                        Some(format!("{local}{fragment}"))
                    }
                }
            }
        }
    };
    HitView {
        rank,
        asset_id: hit.asset_id.to_string(),
        media_url: hit.media.as_ref().map(|_| local),
        name: hit.display_name,
        kind: hit.meta.kind,
        format: hit.meta.format,
        score: hit.score,
        cosine: hit.cosine,
        space: hit.space,
        segment: hit.best_segment,
        matches: hit.matches,
        tags: hit.meta.tags,
        preview_url,
    }
}

async fn run_search(app: &App, query: SearchQuery) -> ApiResult<Json<serde_json::Value>> {
    let started = Instant::now();
    let results = tokio::time::timeout(app.limits.search_timeout, app.engine.search(&query))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                ErrorKind::Timeout,
                format!(
                    "the search did not finish within {:?}",
                    app.limits.search_timeout
                ),
            )
        })??;
    let missing = results.missing_spaces();
    let routes: Vec<RouteReport> = results.routes.clone();
    let mut hits = Vec::with_capacity(results.hits.len());
    for (rank, hit) in results.hits.into_iter().enumerate() {
        hits.push(hit_view(app, rank + 1, hit).await);
    }
    Ok(Json(serde_json::json!({
        "query_kind": results.query_kind,
        "mode": results.mode,
        "routes": routes,
        "missing_spaces": missing,
        "hits": hits,
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

async fn search(
    State(app): State<App>,
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
    if !tags.is_empty() {
        query = query.filter(Filter {
            tags_any: tags,
            ..Filter::default()
        });
    }
    run_search(&app, query).await
}

async fn search_upload(
    State(app): State<App>,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let mut multipart = multipart?;
    let mut file: Option<UploadedFile> = None;
    let (mut mode, mut kinds, mut k, mut min_score) = (None, Vec::new(), None, None);
    while let Some(mut field) = multipart.next_field().await? {
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "file" => {
                let f = read_file(&mut field, app.limits.max_upload_bytes).await?;
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
                    "unknown form field {other:?} (file, mode, kinds, k, min_score)"
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
    run_search(&app, query).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), ByteRange::Part(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), ByteRange::Part(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), ByteRange::Part(90, 99));
        assert_eq!(parse_range("bytes=-1000", 100), ByteRange::Part(0, 99));
        assert_eq!(parse_range("bytes=50-1000", 100), ByteRange::Part(50, 99));
        assert_eq!(parse_range("bytes=100-", 100), ByteRange::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), ByteRange::Unsatisfiable);
        assert_eq!(parse_range("bytes=9-1", 100), ByteRange::Full);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), ByteRange::Full);
        assert_eq!(parse_range("items=0-1", 100), ByteRange::Full);
        assert_eq!(parse_range("bytes=x-y", 100), ByteRange::Full);
    }

    #[test]
    fn names_and_seconds() {
        assert_eq!(
            display_name(Some("C:\\fakepath\\a.png")).as_deref(),
            Some("a.png")
        );
        assert_eq!(
            display_name(Some("../../etc/x\n.png")).as_deref(),
            Some("x.png")
        );
        assert_eq!(display_name(Some("")), None);
        assert_eq!(seconds(1.0), "1");
        assert_eq!(seconds(12.25), "12.25");
        assert_eq!(seconds(0.0), "0");
    }
}
