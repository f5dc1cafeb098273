//! Error responses: every error is `{"error": {"kind": "...", "message": "..."}}` with the
//! status of [`status_for`] (refined for uploads), including the plain-text refusals of the
//! tower layers (body limit, timeouts), which [`json_errors`] rewrites.

use axum::Json;
use axum::extract::multipart::{MultipartError, MultipartRejection};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use crossmodal_core::{Error, ErrorKind, MediaFormat, MediaLimits};
use serde::Serialize;

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
pub(crate) struct ErrorBody {
    /// The [`ErrorKind`] in snake_case (`invalid_input`, `not_found`, ...).
    pub(crate) kind: String,
    /// What went wrong, with the error's context (file, asset, ...).
    pub(crate) message: String,
}

/// An error response: a status and `{"error": {...}}`.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) body: ErrorBody,
}

pub(crate) type ApiResult<T> = std::result::Result<T, ApiError>;

fn kind_name(kind: ErrorKind) -> String {
    match serde_json::to_value(kind) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "backend".to_string(),
    }
}

/// The message of `err` with its context, without the kind prefix (the kind is a separate field).
pub(crate) fn message_of(err: &Error) -> String {
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
    pub(crate) fn new(status: StatusCode, kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                kind: kind_name(kind),
                message: message.into(),
            },
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorKind::InvalidInput, message)
    }

    pub(crate) fn too_large(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::InvalidInput,
            message,
        )
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorKind::NotFound, message)
    }

    /// An error about an uploaded file's content (from `validate_media`): too large 413,
    /// unknown format 415, damaged 422, other invalid input 400.
    pub(crate) fn upload(err: &Error, bytes: &[u8], limits: &MediaLimits) -> Self {
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

    /// A failure while reading a body stream: the idle timeout (408), the size limit (413), or
    /// a body that broke off (400).
    fn body_stream(
        err: &(dyn std::error::Error + 'static),
        status: StatusCode,
        text: String,
    ) -> Self {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(e) = source {
            if e.is::<tower_http::timeout::TimeoutError>() {
                return Self::new(
                    StatusCode::REQUEST_TIMEOUT,
                    ErrorKind::Timeout,
                    "the request body stopped arriving: the upload was abandoned after the idle timeout",
                );
            }
            source = e.source();
        }
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            // A stream error that is not a limit: the client's body broke off or is malformed.
            return Self::bad_request(format!("the request body could not be read: {text}"));
        }
        Self::rejection(status, text)
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        ApiError::new(status_for(err.kind()), err.kind(), message_of(&err))
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let (status, text) = (r.status(), r.body_text());
        ApiError::body_stream(&r, status, text)
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

impl From<MultipartError> for ApiError {
    fn from(e: MultipartError) -> Self {
        let (status, text) = (e.status(), e.body_text());
        let mut err = ApiError::body_stream(&e, status, text);
        if err.status == StatusCode::BAD_REQUEST && !err.body.message.contains("multipart") {
            err.body.message = format!("malformed multipart body: {}", err.body.message);
        }
        err
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(
                status = self.status.as_u16(),
                kind = %self.body.kind,
                message = %self.body.message,
                "request failed"
            );
        } else {
            tracing::debug!(
                status = self.status.as_u16(),
                kind = %self.body.kind,
                message = %self.body.message,
                "request refused"
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

/// An unexpected internal failure (500).
pub(crate) fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        ErrorKind::Backend,
        e.to_string(),
    )
}

/// The limits the JSON rewrite of layer refusals names.
#[derive(Debug, Clone)]
pub(crate) struct LayerLimits {
    pub(crate) max_request_bytes: usize,
    pub(crate) max_json_bytes: usize,
    pub(crate) request_timeout: std::time::Duration,
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// Rewrites error responses that are not JSON yet (the tower layers' plain-text 413 and 408, a
/// panic's 500) into the JSON envelope, and adds the security headers to every response.
pub(crate) async fn json_errors(
    axum::extract::State(limits): axum::extract::State<LayerLimits>,
    response: Response,
) -> Response {
    let status = response.status();
    let mut response = if (status.is_client_error() || status.is_server_error())
        && !is_json(&response)
        && status != StatusCode::NOT_MODIFIED
    {
        let err = match status {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large(format!(
                "request body too large: uploads are at most {} bytes, JSON bodies at most {} bytes",
                limits.max_request_bytes, limits.max_json_bytes
            )),
            StatusCode::REQUEST_TIMEOUT => ApiError::new(
                status,
                ErrorKind::Timeout,
                format!(
                    "the request did not complete within {} s",
                    limits.request_timeout.as_secs_f64()
                ),
            ),
            s if s.is_server_error() => ApiError::new(
                s,
                ErrorKind::Backend,
                format!(
                    "internal error ({})",
                    s.canonical_reason().unwrap_or("error")
                ),
            ),
            s => ApiError::new(
                s,
                ErrorKind::InvalidInput,
                s.canonical_reason().unwrap_or("the request was refused"),
            ),
        };
        let mut rewritten = err.into_response();
        // Keep headers such as Content-Range and WWW-Authenticate.
        for (name, value) in response.headers() {
            if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                rewritten.headers_mut().insert(name.clone(), value.clone());
            }
        }
        drop(response);
        rewritten
    } else {
        response
    };
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
