//! One error type for the whole crate family.
//!
//! Every backend maps its SDK's errors onto [`ErrorKind`] and keeps the original error as the
//! [`source`](std::error::Error::source), so a caller matches on the kind and a log still shows the
//! root cause. [`Error::is_temporary`] tells one retry policy ([`RetryPolicy`](crate::RetryPolicy))
//! which errors are worth another attempt, whatever backend raised them.
//!
//! An error that already went through a retry loop and ran out of attempts is
//! [persistent](Error::is_persistent) (as OpenDAL's retry layer marks it): it is no longer
//! temporary, so a layer above (the [`Ingestor`](crate::Ingestor) around a store that retried
//! inside, say) returns it at once instead of multiplying the attempts. One loop decides.
//!
//! ```
//! use crossmodal_core::{Error, ErrorKind};
//!
//! let err = Error::new(ErrorKind::RateLimited, "too many requests")
//!     .with_context("operation", "embed_text");
//! assert!(err.is_temporary());
//! assert_eq!(err.kind(), ErrorKind::RateLimited);
//! assert_eq!(err.to_string(), "rate limited: too many requests (operation: embed_text)");
//! ```

use std::fmt;

/// A boxed error kept as the source of an [`Error`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong, in terms a caller can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The caller's input is wrong: empty text, wrong vector dimension, NaN, a file over the limit.
    InvalidInput,
    /// Well-formed but not supported: an unknown media format, a mode the model does not offer.
    Unsupported,
    /// The asset, object, record or job does not exist.
    NotFound,
    /// The backend refused the credentials or the action.
    PermissionDenied,
    /// The backend asked us to slow down (throttling, quota). Temporary.
    RateLimited,
    /// An operation did not finish in time. Temporary.
    Timeout,
    /// The backend could not be reached or is temporarily failing (connection refused, 5xx). Temporary.
    Unavailable,
    /// The embedding model ran and reported a failure, or returned output that is not usable.
    ModelFailed,
    /// Stored or supplied data is damaged: a media header that does not parse, a bad snapshot.
    Corrupt,
    /// The request conflicts with existing state (an index built with another model).
    Conflict,
    /// Any other backend failure.
    Backend,
}

impl ErrorKind {
    /// A short lower-case name, as used in messages and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::NotFound => "not found",
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::RateLimited => "rate limited",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::ModelFailed => "model failed",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Backend => "backend error",
        }
    }

    /// Whether an error of this kind may succeed when retried unchanged.
    pub fn is_temporary(self) -> bool {
        matches!(
            self,
            ErrorKind::RateLimited | ErrorKind::Timeout | ErrorKind::Unavailable
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of every crossmodal crate.
///
/// Carries a [`kind`](Error::kind), a human message, key/value context (the asset, the S3 key, the
/// invocation ARN, the request id) and the original error as its source.
#[derive(thiserror::Error)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    context: Vec<(&'static str, String)>,
    temporary: Option<bool>,
    persistent: bool,
    #[source]
    source: Option<BoxError>,
}

/// The crate-wide result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` with a message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            context: Vec::new(),
            temporary: None,
            persistent: false,
            source: None,
        }
    }

    /// Shorthand for [`ErrorKind::InvalidInput`].
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidInput, message)
    }

    /// Shorthand for [`ErrorKind::NotFound`].
    pub fn not_found(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::NotFound, message)
    }

    /// Shorthand for [`ErrorKind::Unsupported`].
    pub fn unsupported(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Unsupported, message)
    }

    /// Shorthand for [`ErrorKind::Corrupt`].
    pub fn corrupt(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Corrupt, message)
    }

    /// Shorthand for [`ErrorKind::Conflict`].
    pub fn conflict(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Conflict, message)
    }

    /// Shorthand for [`ErrorKind::Backend`].
    pub fn backend(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Backend, message)
    }

    /// Adds a key/value pair of context (shown after the message).
    pub fn with_context(mut self, key: &'static str, value: impl fmt::Display) -> Self {
        self.context.push((key, value.to_string()));
        self
    }

    /// Keeps `source` as the cause of this error.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Overrides whether the error is temporary (by default it follows the kind).
    pub fn set_temporary(mut self, temporary: bool) -> Self {
        self.temporary = Some(temporary);
        self
    }

    /// Marks the error persistent: it was temporary, and a retry loop already spent its
    /// attempts (or its deadline) on it. A persistent error is not
    /// [temporary](Self::is_temporary), so no layer above retries it again.
    /// [`RetryPolicy::run`](crate::RetryPolicy::run) marks what it gives up on; a backend whose
    /// client retries by itself (the AWS SDK's standard retry) marks what its client gave up on.
    ///
    /// ```
    /// use crossmodal_core::{Error, ErrorKind};
    /// let e = Error::new(ErrorKind::Unavailable, "503 after 3 attempts").set_persistent();
    /// assert!(e.is_persistent());
    /// assert!(!e.is_temporary());
    /// assert_eq!(e.kind(), ErrorKind::Unavailable);
    /// ```
    pub fn set_persistent(mut self) -> Self {
        self.persistent = true;
        self
    }

    /// Whether a retry loop already gave up on this error (see
    /// [`set_persistent`](Self::set_persistent)).
    pub fn is_persistent(&self) -> bool {
        self.persistent
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The human message, without kind or context.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The key/value context in the order it was added.
    pub fn context(&self) -> &[(&'static str, String)] {
        &self.context
    }

    /// The first context value stored under `key`.
    pub fn context_value(&self, key: &str) -> Option<&str> {
        self.context
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether retrying the same call may succeed (rate limits, time-outs, unreachable
    /// backends). Never true for a [persistent](Self::is_persistent) error: its retries are
    /// spent.
    pub fn is_temporary(&self) -> bool {
        !self.persistent && self.temporary.unwrap_or_else(|| self.kind.is_temporary())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)?;
        if !self.context.is_empty() {
            f.write_str(" (")?;
            for (i, (k, v)) in self.context.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{k}: {v}")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        if !self.context.is_empty() {
            d.field("context", &self.context);
        }
        if self.persistent {
            d.field("persistent", &true);
        }
        if let Some(source) = &self.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        use std::io::ErrorKind as Io;
        let kind = match err.kind() {
            Io::NotFound => ErrorKind::NotFound,
            Io::PermissionDenied => ErrorKind::PermissionDenied,
            Io::TimedOut => ErrorKind::Timeout,
            Io::ConnectionRefused
            | Io::ConnectionReset
            | Io::ConnectionAborted
            | Io::NotConnected
            | Io::BrokenPipe
            | Io::Interrupted => ErrorKind::Unavailable,
            Io::InvalidInput => ErrorKind::InvalidInput,
            Io::InvalidData | Io::UnexpectedEof => ErrorKind::Corrupt,
            _ => ErrorKind::Backend,
        };
        Error::new(kind, err.to_string()).with_source(err)
    }
}

/// A JSON error as a crate error (kept out of the public API: no `From` impl).
pub(crate) fn json_error(err: serde_json::Error) -> Error {
    Error::new(ErrorKind::Corrupt, format!("invalid JSON: {err}")).with_source(err)
}

/// A SQLite error as a crate error (kept out of the public API: no `From` impl).
pub(crate) fn sqlite_error(err: rusqlite::Error) -> Error {
    let kind = match &err {
        rusqlite::Error::QueryReturnedNoRows => ErrorKind::NotFound,
        rusqlite::Error::SqliteFailure(e, _)
            if matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            ErrorKind::Unavailable
        }
        rusqlite::Error::SqliteFailure(e, _)
            if matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase
            ) =>
        {
            ErrorKind::Corrupt
        }
        _ => ErrorKind::Backend,
    };
    Error::new(kind, format!("catalog database: {err}")).with_source(err)
}

/// A failed background task as a crate error (kept out of the public API).
pub(crate) fn join_error(err: tokio::task::JoinError) -> Error {
    Error::backend(format!("background task failed: {err}")).with_source(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn display_includes_kind_message_and_context() {
        let e = Error::not_found("no such asset")
            .with_context("asset", "abc")
            .with_context("store", "local");
        assert_eq!(
            e.to_string(),
            "not found: no such asset (asset: abc, store: local)"
        );
        assert_eq!(e.context_value("store"), Some("local"));
        assert!(!e.is_temporary());
    }

    #[test]
    fn io_errors_map_to_kinds_and_keep_source() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e: Error = io.into();
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.is_temporary());
        assert!(e.source().is_some());
    }

    #[test]
    fn temporary_can_be_overridden() {
        let e = Error::backend("5xx").set_temporary(true);
        assert!(e.is_temporary());
        let e = Error::new(ErrorKind::Timeout, "deadline").set_temporary(false);
        assert!(!e.is_temporary());
    }

    #[test]
    fn persistent_errors_are_never_temporary() {
        let e = Error::new(ErrorKind::RateLimited, "slow down");
        assert!(e.is_temporary() && !e.is_persistent());
        let e = e.set_persistent();
        assert!(e.is_persistent());
        assert!(!e.is_temporary());
        // Even an explicit temporary flag does not bring it back.
        let e = e.set_temporary(true);
        assert!(!e.is_temporary());
        assert!(format!("{e:?}").contains("persistent"));
    }
}
