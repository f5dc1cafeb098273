//! Mapping of AWS SDK errors (Bedrock Runtime and S3) onto [`crossmodal_core::Error`].

use aws_sdk_bedrockruntime::config::http::HttpResponse;
use aws_sdk_bedrockruntime::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use crossmodal_core::{Error, ErrorKind};

/// The [`ErrorKind`] of a service error code (`x-amzn-ErrorType` / S3 `Code`), falling back on
/// the HTTP status.
///
/// ```
/// use crossmodal_core::ErrorKind;
/// use crossmodal_bedrock::error_kind_for;
/// assert_eq!(error_kind_for(Some("ThrottlingException"), Some(429)), ErrorKind::RateLimited);
/// assert_eq!(error_kind_for(Some("ServiceQuotaExceededException"), Some(400)), ErrorKind::RateLimited);
/// assert_eq!(error_kind_for(Some("ValidationException"), Some(400)), ErrorKind::InvalidInput);
/// assert_eq!(error_kind_for(None, Some(502)), ErrorKind::Unavailable);
/// ```
pub fn error_kind_for(code: Option<&str>, status: Option<u16>) -> ErrorKind {
    match code {
        Some(
            "ThrottlingException"
            | "ServiceQuotaExceededException"
            | "SlowDown"
            | "TooManyRequestsException"
            | "RequestLimitExceeded",
        ) => ErrorKind::RateLimited,
        Some(
            "ServiceUnavailableException"
            | "InternalServerException"
            | "ModelNotReadyException"
            | "InternalError"
            | "ServiceUnavailable",
        ) => ErrorKind::Unavailable,
        Some("ModelTimeoutException" | "RequestTimeout") => ErrorKind::Timeout,
        Some("ValidationException" | "InvalidRequest" | "InvalidArgument") => {
            ErrorKind::InvalidInput
        }
        Some(
            "AccessDeniedException"
            | "AccessDenied"
            | "UnrecognizedClientException"
            | "ExpiredTokenException"
            | "InvalidAccessKeyId"
            | "SignatureDoesNotMatch",
        ) => ErrorKind::PermissionDenied,
        Some("ResourceNotFoundException" | "NoSuchKey" | "NoSuchBucket" | "NotFound") => {
            ErrorKind::NotFound
        }
        Some("ConflictException") => ErrorKind::Conflict,
        Some("ModelErrorException") => ErrorKind::ModelFailed,
        _ => match status {
            Some(429) => ErrorKind::RateLimited,
            Some(403 | 401) => ErrorKind::PermissionDenied,
            Some(404) => ErrorKind::NotFound,
            Some(408) => ErrorKind::Timeout,
            Some(s) if s >= 500 => ErrorKind::Unavailable,
            Some(400 | 413 | 422) => ErrorKind::InvalidInput,
            _ => ErrorKind::Backend,
        },
    }
}

/// Whether a service error code is a model failure worth retrying: `ModelErrorException`
/// (HTTP 424), which TwelveLabs' own Bedrock client retries for Marengo like
/// `InternalServerException`. It stays [`ErrorKind::ModelFailed`] but is temporary, so the
/// retry policy tries again.
///
/// ```
/// assert!(crossmodal_bedrock::is_transient_model_error(Some("ModelErrorException")));
/// assert!(!crossmodal_bedrock::is_transient_model_error(Some("ValidationException")));
/// ```
pub fn is_transient_model_error(code: Option<&str>) -> bool {
    code == Some("ModelErrorException")
}

/// Maps an SDK error of operation `op` onto a [`crossmodal_core::Error`]: kind from the error code or
/// status, the service's message in the text, the request id as context, the SDK error as
/// source.
pub(crate) fn map_sdk_error<E>(op: &'static str, err: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let request_id = err.raw_response().and_then(|r| {
        r.headers()
            .get("x-amzn-requestid")
            .or_else(|| r.headers().get("x-amz-request-id"))
            .map(str::to_owned)
    });
    let mut temporary = None;
    let (kind, message) = match &err {
        SdkError::ServiceError(ctx) => {
            let e = ctx.err();
            let code = e.code();
            let kind = error_kind_for(code, status);
            if is_transient_model_error(code) {
                temporary = Some(true);
            }
            let text = e
                .message()
                .filter(|m| !m.is_empty())
                .unwrap_or("no message");
            let code = code.unwrap_or("unknown error");
            let status = status.map(|s| format!(", HTTP {s}")).unwrap_or_default();
            (kind, format!("{op} failed: {code}{status}: {text}"))
        }
        SdkError::TimeoutError(_) => (ErrorKind::Timeout, format!("{op} timed out")),
        SdkError::DispatchFailure(d) => {
            let kind = if d.is_timeout() {
                ErrorKind::Timeout
            } else if d.is_user() {
                ErrorKind::InvalidInput
            } else {
                ErrorKind::Unavailable
            };
            (
                kind,
                format!(
                    "{op}: could not reach the service: {}",
                    DisplayErrorContext(&err)
                ),
            )
        }
        SdkError::ResponseError(_) => (
            match status {
                Some(s) if s >= 500 => ErrorKind::Unavailable,
                _ => ErrorKind::Backend,
            },
            format!("{op}: unreadable response: {}", DisplayErrorContext(&err)),
        ),
        _ => (
            ErrorKind::Backend,
            format!("{op} failed: {}", DisplayErrorContext(&err)),
        ),
    };
    let mut out = Error::new(kind, message).with_context("operation", op);
    if let Some(t) = temporary {
        out = out.set_temporary(t);
    }
    if let Some(id) = request_id {
        out = out.with_context("request_id", id);
    }
    out.with_source(err)
}

/// A JSON encoding or decoding error (no `From` impl: serde_json stays out of the public API).
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
    fn kinds_follow_codes_then_status() {
        assert_eq!(
            error_kind_for(Some("AccessDeniedException"), Some(403)),
            ErrorKind::PermissionDenied
        );
        assert_eq!(
            error_kind_for(Some("ServiceUnavailableException"), Some(503)),
            ErrorKind::Unavailable
        );
        assert_eq!(
            error_kind_for(Some("InternalServerException"), Some(500)),
            ErrorKind::Unavailable
        );
        assert_eq!(
            error_kind_for(Some("Weird"), Some(429)),
            ErrorKind::RateLimited
        );
        assert_eq!(error_kind_for(None, None), ErrorKind::Backend);
        assert!(error_kind_for(Some("ThrottlingException"), None).is_temporary());
        assert!(!error_kind_for(Some("ValidationException"), None).is_temporary());
    }
}
