//! `GET /api/assets/{id}/media` (the original, with ranges and ETag) and
//! `GET /api/assets/{id}/thumbnail` (a still of the asset or of a moment of it).

use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

use crossmodal_core::{Error, ErrorKind, MediaKey, MediaStore};
use futures::StreamExt;

use crate::api::App;
use crate::api::assets::{no_such_asset, path_id};
use crate::api::forms::truncated;
use crate::error::{ApiError, ApiResult, internal};
use crate::thumbnails::Still;

/// A parsed `Range` header for a body of a known length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ByteRange {
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
pub(crate) fn parse_range(value: &str, len: u64) -> ByteRange {
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
    let last = len.saturating_sub(1);
    match (a.parse::<u64>().ok(), b.parse::<u64>().ok()) {
        (Some(start), None) if b.is_empty() => {
            if start < len {
                ByteRange::Part(start, last)
            } else {
                ByteRange::Unsatisfiable
            }
        }
        (Some(start), Some(end)) if start <= end => {
            if start < len {
                ByteRange::Part(start, end.min(last))
            } else {
                ByteRange::Unsatisfiable
            }
        }
        (None, Some(suffix)) if a.is_empty() => {
            if suffix == 0 || len == 0 {
                ByteRange::Unsatisfiable
            } else {
                ByteRange::Part(len.saturating_sub(suffix), last)
            }
        }
        _ => ByteRange::Full,
    }
}

pub(crate) async fn media(
    State(app): State<App>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = path_id(id)?;
    let record = app
        .engine
        .asset(&id)
        .await?
        .ok_or_else(|| no_such_asset(&id))?;
    let Some(stored) = &record.media else {
        return Err(ApiError::not_found(format!(
            "the original of asset {id} is not stored (yet)"
        )));
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
    let store = app.engine.store().clone();
    match range {
        ByteRange::Full => {
            let body = ranged_body(store, stored.key.clone(), 0, len).await?;
            base(StatusCode::OK)
                .header(header::CONTENT_LENGTH, len)
                .body(body)
                .map_err(internal)
        }
        ByteRange::Part(start, end) => {
            let body = ranged_body(store, stored.key.clone(), start, end + 1).await?;
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

/// Longest time offset a thumbnail may ask for (a day of video), seconds.
const MAX_THUMBNAIL_SEC: f64 = 86_400.0;

pub(crate) async fn thumbnail(
    State(app): State<App>,
    id: Result<Path<String>, PathRejection>,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult<Response> {
    let id = path_id(id)?;
    let mut at_sec = None;
    for (k, v) in params?.0 {
        match k.as_str() {
            "t" => {
                let t: f64 = v.trim().parse().map_err(|_| {
                    ApiError::bad_request(format!(
                        "t must be a time in seconds, got {:?}",
                        truncated(&v)
                    ))
                })?;
                if !t.is_finite() || !(0.0..=MAX_THUMBNAIL_SEC).contains(&t) {
                    return Err(ApiError::bad_request(format!(
                        "t must be between 0 and {MAX_THUMBNAIL_SEC} seconds, got {:?}",
                        truncated(&v)
                    )));
                }
                at_sec = Some(t);
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {:?} (t)",
                    truncated(other)
                )));
            }
        }
    }
    let record = app
        .engine
        .asset(&id)
        .await?
        .ok_or_else(|| no_such_asset(&id))?;
    let still = app.thumbnails.still(&app.engine, &record, at_sec).await?;
    let (content_type, bytes) = match still {
        Still::Jpeg(bytes) => ("image/jpeg", bytes),
        Still::Original(bytes) => (record.format().mime_type(), bytes),
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONTENT_LENGTH, bytes.len())
        .header(header::CACHE_CONTROL, "private, max-age=86400")
        .body(Body::from(bytes))
        .map_err(internal)
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
        assert_eq!(parse_range("bytes=0-", 0), ByteRange::Unsatisfiable);
    }
}
