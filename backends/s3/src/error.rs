//! Mapping of `aws-sdk-s3` errors onto [`crossmodal_core::ErrorKind`].

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::RequestId;
use aws_sdk_s3::primitives::ByteStreamError;
use crossmodal_core::{Error, ErrorKind};

/// What a failed request was about, for the error's context.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    /// The S3 operation (`GetObject`, ...).
    pub op: &'static str,
    /// The bucket.
    pub bucket: &'a str,
    /// The store key (not the full object key), when the request names one.
    pub key: Option<&'a str>,
    /// Attempts the client makes per request (its standard retry mode; 1 when it does not
    /// retry).
    pub attempts: u32,
}

/// Error codes the SDK's standard retry mode retries (throttling and transient errors).
const SDK_RETRIED_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
];

/// Whether the SDK's standard retry mode retries a failure like `err` (so a client with more
/// than one attempt has already spent them on it): throttling and transient codes, HTTP 500,
/// 502, 503 and 504, time-outs, connection and response failures.
fn sdk_retries<E>(err: &SdkError<E>, code: Option<&str>, status: Option<u16>) -> bool {
    match err {
        SdkError::ServiceError(_) => {
            code.is_some_and(|c| SDK_RETRIED_CODES.contains(&c))
                || status.is_some_and(|s| matches!(s, 500 | 502 | 503 | 504))
        }
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
        SdkError::DispatchFailure(d) => !d.is_user(),
        _ => false,
    }
}

/// The kind an S3 error code or HTTP status stands for; `None` when neither is recognised.
pub(crate) fn kind_of(code: Option<&str>, status: Option<u16>) -> Option<ErrorKind> {
    let by_code = match code {
        Some("NoSuchKey" | "NotFound" | "NoSuchBucket" | "NoSuchUpload" | "NoSuchVersion") => {
            Some(ErrorKind::NotFound)
        }
        Some(
            "AccessDenied"
            | "AllAccessDisabled"
            | "AccountProblem"
            | "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "ExpiredToken"
            | "InvalidToken"
            | "InvalidObjectState"
            | "Forbidden",
        ) => Some(ErrorKind::PermissionDenied),
        Some(
            "SlowDown"
            | "Throttling"
            | "ThrottlingException"
            | "ThrottledException"
            | "RequestThrottled"
            | "RequestLimitExceeded"
            | "TooManyRequests"
            | "TooManyRequestsException"
            | "ProvisionedThroughputExceededException",
        ) => Some(ErrorKind::RateLimited),
        Some("RequestTimeout" | "RequestTimeoutException") => Some(ErrorKind::Timeout),
        Some("InternalError" | "ServiceUnavailable" | "Busy") => Some(ErrorKind::Unavailable),
        Some(
            "InvalidBucketName" | "KeyTooLongError" | "EntityTooLarge" | "MetadataTooLarge"
            | "InvalidRange",
        ) => Some(ErrorKind::InvalidInput),
        Some(
            "PreconditionFailed"
            | "OperationAborted"
            | "ConditionalRequestConflict"
            | "BucketNotEmpty"
            | "BucketAlreadyExists"
            | "BucketAlreadyOwnedByYou",
        ) => Some(ErrorKind::Conflict),
        Some("InvalidDigest" | "BadDigest" | "InvalidChecksum") => Some(ErrorKind::Corrupt),
        _ => None,
    };
    by_code.or_else(|| match status? {
        404 => Some(ErrorKind::NotFound),
        401 | 403 => Some(ErrorKind::PermissionDenied),
        429 | 503 => Some(ErrorKind::RateLimited),
        408 => Some(ErrorKind::Timeout),
        409 | 412 => Some(ErrorKind::Conflict),
        500..=599 => Some(ErrorKind::Unavailable),
        _ => None,
    })
}

/// Maps a failed SDK request onto a crossmodal [`Error`] with the operation, bucket, key, HTTP
/// status and S3 request id as context and the SDK error as source.
pub(crate) fn sdk_error<E>(err: SdkError<E>, target: Target<'_>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let request_id = err.request_id().map(str::to_owned);
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = match &err {
        SdkError::ServiceError(service) => service.err().code().map(str::to_owned),
        _ => None,
    };
    let retried = target.attempts > 1 && sdk_retries(&err, code.as_deref(), status);
    let (kind, message) = match &err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            let code = e.code();
            let kind = kind_of(code, status).unwrap_or(ErrorKind::Backend);
            let what = match (code, kind) {
                (Some("NoSuchBucket"), _) => "no such bucket".to_string(),
                (Some("NoSuchKey" | "NotFound"), _) | (None, ErrorKind::NotFound) => {
                    if target.key.is_some() {
                        "no such object".to_string()
                    } else {
                        "not found".to_string()
                    }
                }
                _ => match (code, e.message()) {
                    (Some(c), Some(m)) => format!("{c}: {m}"),
                    (Some(c), None) => c.to_string(),
                    (None, Some(m)) => m.to_string(),
                    (None, None) => match status {
                        Some(s) => format!("HTTP status {s}"),
                        None => "unrecognised error".to_string(),
                    },
                },
            };
            (kind, format!("S3 {} failed: {what}", target.op))
        }
        SdkError::TimeoutError(_) => (
            ErrorKind::Timeout,
            format!("S3 {} timed out: {}", target.op, causes(&err)),
        ),
        SdkError::DispatchFailure(d) => {
            let kind = if d.is_timeout() {
                ErrorKind::Timeout
            } else if d.is_user() {
                ErrorKind::Backend
            } else {
                ErrorKind::Unavailable
            };
            (
                kind,
                format!(
                    "S3 {} could not reach the server: {}",
                    target.op,
                    causes(&err)
                ),
            )
        }
        SdkError::ResponseError(_) => (
            ErrorKind::Unavailable,
            format!(
                "S3 {} received a response that could not be read: {}",
                target.op,
                causes(&err)
            ),
        ),
        SdkError::ConstructionFailure(_) => (
            ErrorKind::Backend,
            format!(
                "S3 {} request could not be built (check region, endpoint and credentials): {}",
                target.op,
                causes(&err)
            ),
        ),
        _ => (
            ErrorKind::Backend,
            format!("S3 {} failed: {}", target.op, causes(&err)),
        ),
    };
    let mut error = Error::new(kind, message)
        .with_context("operation", target.op)
        .with_context("bucket", target.bucket);
    if let Some(key) = target.key {
        error = error.with_context("key", key);
    }
    if let Some(status) = status {
        error = error.with_context("status", status);
    }
    if let Some(id) = request_id {
        error = error.with_context("request_id", id);
    }
    if retried && error.is_temporary() {
        // The client's own retry spent its attempts on this: no layer above retries it again.
        error = error
            .with_context("attempts", target.attempts)
            .set_persistent();
    }
    error.with_source(err)
}

/// The `Display` of `err` and of each of its sources, joined by `": "`, skipping a source whose
/// text is already included (the SDK's errors often repeat their cause).
pub(crate) fn causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        let text = e.to_string();
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = e.source();
    }
    out
}

/// Maps a failure while streaming a response body: the connection dropped or stalled.
pub(crate) fn body_error(err: ByteStreamError, target: Target<'_>) -> Error {
    let mut error = Error::new(
        ErrorKind::Unavailable,
        format!("S3 {} response body could not be read: {err}", target.op),
    )
    .with_context("operation", target.op)
    .with_context("bucket", target.bucket);
    if let Some(key) = target.key {
        error = error.with_context("key", key);
    }
    error.with_source(err)
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

    #[test]
    fn codes_and_statuses_map_to_kinds() {
        use ErrorKind::*;
        let cases: &[(Option<&str>, Option<u16>, Option<ErrorKind>)] = &[
            (Some("NoSuchKey"), Some(404), Some(NotFound)),
            (Some("NoSuchBucket"), Some(404), Some(NotFound)),
            (None, Some(404), Some(NotFound)),
            (Some("AccessDenied"), Some(403), Some(PermissionDenied)),
            (None, Some(403), Some(PermissionDenied)),
            (Some("SlowDown"), Some(503), Some(RateLimited)),
            (None, Some(503), Some(RateLimited)),
            (None, Some(429), Some(RateLimited)),
            (Some("InternalError"), Some(500), Some(Unavailable)),
            (None, Some(502), Some(Unavailable)),
            (Some("RequestTimeout"), Some(400), Some(Timeout)),
            (Some("PreconditionFailed"), Some(412), Some(Conflict)),
            (Some("BadDigest"), Some(400), Some(Corrupt)),
            (Some("SomethingNew"), Some(400), None),
            (None, None, None),
        ];
        for (code, status, want) in cases {
            assert_eq!(kind_of(*code, *status), *want, "{code:?} {status:?}");
        }
        for k in [RateLimited, Unavailable, Timeout] {
            assert!(k.is_temporary());
        }
    }
}
