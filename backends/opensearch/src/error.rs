//! Mapping of transport failures and OpenSearch error responses onto [`crossmodal_core::ErrorKind`].

use crossmodal_core::{Error, ErrorKind};
use serde_json::Value;

/// The kind an HTTP status (and OpenSearch error `type`) stands for.
pub(crate) fn kind_of_status(status: u16, error_type: Option<&str>) -> ErrorKind {
    match error_type {
        Some("resource_already_exists_exception" | "version_conflict_engine_exception") => {
            return ErrorKind::Conflict;
        }
        Some("index_not_found_exception") => return ErrorKind::NotFound,
        Some("es_rejected_execution_exception" | "circuit_breaking_exception") if status == 429 => {
            return ErrorKind::RateLimited;
        }
        Some("security_exception") => return ErrorKind::PermissionDenied,
        _ => {}
    }
    match status {
        401 | 403 => ErrorKind::PermissionDenied,
        404 => ErrorKind::NotFound,
        408 => ErrorKind::Timeout,
        409 => ErrorKind::Conflict,
        413 => ErrorKind::InvalidInput,
        429 => ErrorKind::RateLimited,
        502 | 503 => ErrorKind::Unavailable,
        504 => ErrorKind::Timeout,
        _ => ErrorKind::Backend,
    }
}

/// Whether a response with this status is worth retrying unchanged.
pub(crate) fn status_is_temporary(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// `(type, reason)` of an OpenSearch error body (`{"error": {"type", "reason", ..}, "status"}`
/// or `{"error": "text"}`), or of a bulk item's `error` object.
pub(crate) fn error_type_reason(body: &Value) -> (Option<String>, Option<String>) {
    let err = body.get("error").unwrap_or(body);
    match err {
        Value::String(s) => (None, Some(s.clone())),
        Value::Object(map) => {
            let ty = map.get("type").and_then(Value::as_str).map(str::to_string);
            let mut reason = map
                .get("reason")
                .and_then(Value::as_str)
                .map(str::to_string);
            // The innermost cause usually says what actually went wrong.
            let mut cause = map.get("caused_by");
            while let Some(c) = cause {
                if let Some(r) = c.get("reason").and_then(Value::as_str) {
                    let t = c.get("type").and_then(Value::as_str).unwrap_or("cause");
                    reason = Some(match reason {
                        Some(outer) => format!("{outer} (caused by {t}: {r})"),
                        None => format!("{t}: {r}"),
                    });
                }
                cause = c.get("caused_by");
            }
            (ty, reason)
        }
        _ => (None, None),
    }
}

/// An [`Error`] for a non-success response of `op`.
pub(crate) fn http_error(op: &'static str, status: u16, body_text: &str) -> Error {
    let body: Value = serde_json::from_str(body_text).unwrap_or(Value::Null);
    let (ty, reason) = error_type_reason(&body);
    let kind = kind_of_status(status, ty.as_deref());
    let mut snippet: String = body_text.chars().take(300).collect();
    if snippet.len() < body_text.len() {
        snippet.push('…');
    }
    let message = match (&ty, &reason) {
        (Some(t), Some(r)) => format!("OpenSearch {op} failed with HTTP {status}: {t}: {r}"),
        (None, Some(r)) => format!("OpenSearch {op} failed with HTTP {status}: {r}"),
        _ if snippet.is_empty() => format!("OpenSearch {op} failed with HTTP {status}"),
        _ => format!("OpenSearch {op} failed with HTTP {status}: {snippet}"),
    };
    let mut err = Error::new(kind, message)
        .with_context("operation", op)
        .with_context("status", status);
    if let Some(t) = ty {
        err = err.with_context("error_type", t);
    }
    err
}

/// An [`Error`] for a request of `op` that got no usable response: connection refused or reset
/// (`Unavailable`), time-outs (`Timeout`), anything else `Backend`. The original is the source.
pub(crate) fn transport_error(op: &'static str, err: opensearch::Error) -> Error {
    let kind = transport_kind(&err);
    Error::new(kind, format!("OpenSearch {op}: {}", describe_chain(&err)))
        .with_context("operation", op)
        .with_source(err)
}

fn transport_kind(err: &opensearch::Error) -> ErrorKind {
    if err.is_timeout() {
        return ErrorKind::Timeout;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(r) = e.downcast_ref::<reqwest::Error>() {
            if r.is_timeout() {
                return ErrorKind::Timeout;
            }
            if r.is_connect() {
                return ErrorKind::Unavailable;
            }
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as Io;
            return match io.kind() {
                Io::TimedOut => ErrorKind::Timeout,
                Io::ConnectionRefused
                | Io::ConnectionReset
                | Io::ConnectionAborted
                | Io::NotConnected
                | Io::BrokenPipe
                | Io::UnexpectedEof => ErrorKind::Unavailable,
                _ => ErrorKind::Backend,
            };
        }
        source = e.source();
    }
    // Requests that failed mid-flight (a reset connection, an incomplete body) are worth
    // another attempt; anything reqwest reports as a request/body error is a transport error.
    match std::error::Error::source(err).and_then(|s| s.downcast_ref::<reqwest::Error>()) {
        Some(r) if r.is_request() || r.is_body() => ErrorKind::Unavailable,
        _ => ErrorKind::Backend,
    }
}

/// "outer: inner: innermost", so a log shows the root cause (e.g. "Connection refused").
fn describe_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        source = e.source();
    }
    out
}

/// A JSON encoding or decoding error (no `From` impl: serde_json stays out of the public API).
#[allow(dead_code)]
pub(crate) fn json_error(err: serde_json::Error) -> crossmodal_core::Error {
    crossmodal_core::Error::backend(format!("JSON: {err}")).with_source(err)
}

/// A failed background task.
#[allow(dead_code)]
pub(crate) fn join_error(err: tokio::task::JoinError) -> crossmodal_core::Error {
    crossmodal_core::Error::backend(format!("background task failed: {err}")).with_source(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn statuses_map_to_kinds() {
        assert_eq!(kind_of_status(429, None), ErrorKind::RateLimited);
        assert_eq!(kind_of_status(503, None), ErrorKind::Unavailable);
        assert_eq!(kind_of_status(504, None), ErrorKind::Timeout);
        assert_eq!(kind_of_status(403, None), ErrorKind::PermissionDenied);
        assert_eq!(
            kind_of_status(400, Some("resource_already_exists_exception")),
            ErrorKind::Conflict
        );
        assert_eq!(
            kind_of_status(404, Some("index_not_found_exception")),
            ErrorKind::NotFound
        );
        assert_eq!(
            kind_of_status(400, Some("mapper_parsing_exception")),
            ErrorKind::Backend
        );
        assert!(status_is_temporary(429) && status_is_temporary(503));
        assert!(!status_is_temporary(500) && !status_is_temporary(400));
    }

    #[test]
    fn error_bodies_are_summarised_with_their_cause() {
        let body = json!({"error": {"type": "mapper_parsing_exception", "reason": "failed to parse",
            "caused_by": {"type": "illegal_argument_exception", "reason": "Vector dimension mismatch"}},
            "status": 400});
        let (t, r) = error_type_reason(&body);
        assert_eq!(t.as_deref(), Some("mapper_parsing_exception"));
        assert!(r.unwrap().contains("Vector dimension mismatch"));
        let e = http_error("bulk", 400, &body.to_string());
        assert_eq!(
            e.context_value("error_type"),
            Some("mapper_parsing_exception")
        );
        let e = http_error("search", 502, "<html>bad gateway</html>");
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.message().contains("bad gateway"));
    }
}
