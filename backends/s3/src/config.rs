//! [`S3StoreConfig`]: where the store keeps its objects and how it talks to S3.

use std::time::Duration;

use crossmodal_core::{Error, MediaKey, Result};

/// One mebibyte.
const MIB: u64 = 1024 * 1024;

/// Settings of an [`S3MediaStore`](crate::S3MediaStore).
///
/// Only the bucket is required; everything else has a default suited to Amazon S3. Settings are
/// chained:
///
/// ```
/// use std::time::Duration;
/// use crossmodal_s3::S3StoreConfig;
///
/// let config = S3StoreConfig::new("my-media")
///     .with_prefix("originals/")
///     .with_endpoint("http://127.0.0.1:9000")
///     .with_path_style(true)
///     .with_connect_timeout(Duration::from_secs(2));
/// assert_eq!(config.bucket(), "my-media");
/// assert_eq!(config.multipart_threshold(), 16 * 1024 * 1024);
/// ```
///
/// Client settings (endpoint, path-style addressing, region, timeouts, attempts) are applied on
/// top of the client the store is given: a setting left at `None` keeps the client's own value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3StoreConfig {
    bucket: String,
    prefix: String,
    endpoint: Option<String>,
    path_style: bool,
    region: Option<String>,
    multipart_threshold: u64,
    part_size: u64,
    upload_concurrency: usize,
    upload_buffer: u64,
    connect_timeout: Option<Duration>,
    read_timeout: Option<Duration>,
    attempt_timeout: Option<Duration>,
    operation_timeout: Option<Duration>,
    max_attempts: Option<u32>,
}

impl S3StoreConfig {
    /// Objects of this size or larger go up as a multipart upload (16 MiB).
    pub const DEFAULT_MULTIPART_THRESHOLD: u64 = 16 * MIB;
    /// Size of each part of a multipart upload (8 MiB).
    pub const DEFAULT_PART_SIZE: u64 = 8 * MIB;
    /// The smallest part S3 accepts (every part but the last): 5 MiB.
    pub const MIN_PART_SIZE: u64 = 5 * MIB;
    /// The largest part S3 accepts: 5 GiB.
    pub const MAX_PART_SIZE: u64 = 5 * 1024 * MIB;
    /// The most parts one multipart upload may have.
    pub const MAX_PARTS: u64 = 10_000;
    /// Parts uploaded at once by one multipart upload (4).
    pub const DEFAULT_UPLOAD_CONCURRENCY: usize = 4;
    /// Bytes of upload parts all uploads of one store hold in memory at once (64 MiB: eight
    /// 8 MiB parts, shared by however many files are uploaded together).
    pub const DEFAULT_UPLOAD_BUFFER: u64 = 64 * MIB;
    /// Time allowed to open a connection (3 s).
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
    /// Time allowed between bytes of a response (30 s).
    pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
    /// Time allowed for one attempt of one request, body upload included (120 s: an 8 MiB part
    /// over a slow link still fits).
    pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(120);

    /// Settings for `bucket` with every default: no key prefix, virtual-hosted addressing, the
    /// client's endpoint and region, 16 MiB multipart threshold, 8 MiB parts, 4 parts in flight,
    /// connect time-out 3 s, read time-out 30 s, attempt time-out 120 s, no overall operation
    /// time-out, the client's retry attempts.
    pub fn new(bucket: impl Into<String>) -> Self {
        S3StoreConfig {
            bucket: bucket.into(),
            prefix: String::new(),
            endpoint: None,
            path_style: false,
            region: None,
            multipart_threshold: Self::DEFAULT_MULTIPART_THRESHOLD,
            part_size: Self::DEFAULT_PART_SIZE,
            upload_concurrency: Self::DEFAULT_UPLOAD_CONCURRENCY,
            upload_buffer: Self::DEFAULT_UPLOAD_BUFFER,
            connect_timeout: Some(Self::DEFAULT_CONNECT_TIMEOUT),
            read_timeout: Some(Self::DEFAULT_READ_TIMEOUT),
            attempt_timeout: Some(Self::DEFAULT_ATTEMPT_TIMEOUT),
            operation_timeout: None,
            max_attempts: None,
        }
    }

    /// Puts every object under `prefix` in the bucket (`"originals/"`: key `ab/x.png` is object
    /// `originals/ab/x.png`). A missing trailing `/` is added; an empty prefix means the bucket
    /// root. Checked by [`S3MediaStore::new`](crate::S3MediaStore::new): the same characters as a
    /// [`MediaKey`].
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sends requests to `endpoint` (`http://127.0.0.1:9000` for an S3-compatible server)
    /// instead of the client's.
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Addresses the bucket in the path (`http://host/bucket/key`) rather than the host name
    /// (`http://bucket.host/key`); most S3-compatible servers need this. `false` keeps the
    /// client's setting.
    pub fn with_path_style(mut self, path_style: bool) -> Self {
        self.path_style = path_style;
        self
    }

    /// The region to sign requests for, instead of the client's (or, for
    /// [`S3MediaStore::from_env`](crate::S3MediaStore::from_env), the environment's).
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Objects of `bytes` or more go up as multipart uploads (at least
    /// [`MIN_PART_SIZE`](Self::MIN_PART_SIZE); smaller values are raised to it).
    pub fn with_multipart_threshold(mut self, bytes: u64) -> Self {
        self.multipart_threshold = bytes;
        self
    }

    /// Size of each multipart part, clamped to
    /// [`MIN_PART_SIZE`](Self::MIN_PART_SIZE)..=[`MAX_PART_SIZE`](Self::MAX_PART_SIZE). An object
    /// that would need more than [`MAX_PARTS`](Self::MAX_PARTS) parts uses larger ones.
    pub fn with_part_size(mut self, bytes: u64) -> Self {
        self.part_size = bytes;
        self
    }

    /// Parts of one multipart upload sent at once (at least 1). Memory held by an upload is at
    /// most `(concurrency + 1) * part size`, and all uploads together stay within
    /// [`with_upload_buffer`](Self::with_upload_buffer).
    pub fn with_upload_concurrency(mut self, parts: usize) -> Self {
        self.upload_concurrency = parts;
        self
    }

    /// Bytes of parts that all uploads of the store hold in memory at once (default
    /// [`DEFAULT_UPLOAD_BUFFER`](Self::DEFAULT_UPLOAD_BUFFER)): eight files uploaded together
    /// share it rather than each holding `(concurrency + 1) * part size`. A part larger than
    /// the budget still goes, alone.
    pub fn with_upload_buffer(mut self, bytes: u64) -> Self {
        self.upload_buffer = bytes;
        self
    }

    /// Time allowed to open a connection; `None` keeps the client's.
    pub fn with_connect_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.connect_timeout = timeout.into();
        self
    }

    /// Time allowed between bytes of a response; `None` keeps the client's.
    pub fn with_read_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.read_timeout = timeout.into();
        self
    }

    /// Time allowed for one attempt of a request (a retry gets a fresh allowance); `None` keeps
    /// the client's.
    pub fn with_attempt_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.attempt_timeout = timeout.into();
        self
    }

    /// Time allowed for a whole request, retries included; `None` keeps the client's (none by
    /// default). Streaming a response body after the request returned is not counted.
    pub fn with_operation_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.operation_timeout = timeout.into();
        self
    }

    /// Attempts per request, the first included (the SDK's standard retry mode retries
    /// throttling, 5xx and connection errors with jittered backoff); `None` keeps the client's
    /// (3 by default).
    pub fn with_max_attempts(mut self, attempts: impl Into<Option<u32>>) -> Self {
        self.max_attempts = attempts.into();
        self
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key prefix as given (see [`with_prefix`](Self::with_prefix)).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The endpoint override.
    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    /// Whether path-style addressing is forced.
    pub fn path_style(&self) -> bool {
        self.path_style
    }

    /// The region override.
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// The multipart threshold in bytes.
    pub fn multipart_threshold(&self) -> u64 {
        self.multipart_threshold
    }

    /// The configured multipart part size in bytes.
    pub fn part_size(&self) -> u64 {
        self.part_size
    }

    /// Parts sent at once by one multipart upload.
    pub fn upload_concurrency(&self) -> usize {
        self.upload_concurrency
    }

    /// Bytes of upload parts all uploads of the store hold at once.
    pub fn upload_buffer(&self) -> u64 {
        self.upload_buffer
    }

    /// The connect time-out.
    pub fn connect_timeout(&self) -> Option<Duration> {
        self.connect_timeout
    }

    /// The read time-out.
    pub fn read_timeout(&self) -> Option<Duration> {
        self.read_timeout
    }

    /// The per-attempt time-out.
    pub fn attempt_timeout(&self) -> Option<Duration> {
        self.attempt_timeout
    }

    /// The whole-operation time-out.
    pub fn operation_timeout(&self) -> Option<Duration> {
        self.operation_timeout
    }

    /// Attempts per request.
    pub fn max_attempts(&self) -> Option<u32> {
        self.max_attempts
    }

    /// The multipart threshold actually used (never below the minimum part size).
    pub(crate) fn effective_threshold(&self) -> u64 {
        self.multipart_threshold.max(Self::MIN_PART_SIZE)
    }

    /// The part size for an object of `len` bytes: the configured size, clamped to S3's limits
    /// and raised (in whole MiB) when `len` would otherwise need more than `MAX_PARTS` parts.
    pub(crate) fn part_size_for(&self, len: u64) -> u64 {
        let configured = self
            .part_size
            .clamp(Self::MIN_PART_SIZE, Self::MAX_PART_SIZE);
        let needed = len.div_ceil(Self::MAX_PARTS).div_ceil(MIB) * MIB;
        configured.max(needed).min(Self::MAX_PART_SIZE)
    }

    /// Checks the bucket name and normalises the prefix (adds the trailing `/`).
    pub(crate) fn validated(mut self) -> Result<Self> {
        let bucket = &self.bucket;
        if bucket.is_empty()
            || bucket.len() > 255
            || !bucket
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        {
            return Err(Error::invalid_input(
                "invalid S3 bucket name: expected 1 to 255 ASCII letters, digits, '.', '-' or '_'",
            )
            .with_context("bucket", format!("{bucket:?}")));
        }
        if !self.prefix.is_empty() {
            let trimmed = self.prefix.trim_end_matches('/');
            MediaKey::parse(trimmed).map_err(|e| {
                Error::invalid_input(format!("invalid S3 key prefix: {}", e.message()))
                    .with_context("prefix", format!("{:?}", self.prefix))
            })?;
            self.prefix = format!("{trimmed}/");
        }
        if self.upload_concurrency == 0 {
            self.upload_concurrency = 1;
        }
        Ok(self)
    }
}

impl From<&str> for S3StoreConfig {
    /// [`S3StoreConfig::new`] of a bucket name.
    fn from(bucket: &str) -> Self {
        S3StoreConfig::new(bucket)
    }
}

impl From<String> for S3StoreConfig {
    /// [`S3StoreConfig::new`] of a bucket name.
    fn from(bucket: String) -> Self {
        S3StoreConfig::new(bucket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_normalised_and_checked() {
        let c = S3StoreConfig::new("b")
            .with_prefix("media")
            .validated()
            .unwrap();
        assert_eq!(c.prefix(), "media/");
        let c = S3StoreConfig::new("b")
            .with_prefix("a/b/")
            .validated()
            .unwrap();
        assert_eq!(c.prefix(), "a/b/");
        let c = S3StoreConfig::new("b").validated().unwrap();
        assert_eq!(c.prefix(), "");
        for bad in ["../x", "/abs", "a//b", "sp ace/", "a/./b"] {
            let e = S3StoreConfig::new("b")
                .with_prefix(bad)
                .validated()
                .unwrap_err();
            assert_eq!(e.kind(), crossmodal_core::ErrorKind::InvalidInput, "{bad}");
        }
    }

    #[test]
    fn bucket_names_are_checked() {
        for bad in ["", "a/b", "a b", "x?y"] {
            assert!(S3StoreConfig::new(bad).validated().is_err(), "{bad:?}");
        }
        for good in ["media", "my.bucket-1", "Legacy_Bucket"] {
            assert!(S3StoreConfig::new(good).validated().is_ok(), "{good:?}");
        }
    }

    #[test]
    fn part_size_respects_s3_limits() {
        let c = S3StoreConfig::new("b");
        assert_eq!(c.part_size_for(100 * MIB), 8 * MIB);
        // 100 GiB at 8 MiB would be 12,800 parts: raised to 11 MiB (10,000 parts of 10.24 MiB).
        let big = 100 * 1024 * MIB;
        let p = c.part_size_for(big);
        assert_eq!(p, 11 * MIB);
        assert!(big.div_ceil(p) <= S3StoreConfig::MAX_PARTS);
        let small = S3StoreConfig::new("b").with_part_size(1);
        assert_eq!(small.part_size_for(10 * MIB), S3StoreConfig::MIN_PART_SIZE);
        let t = S3StoreConfig::new("b").with_multipart_threshold(0);
        assert_eq!(t.effective_threshold(), S3StoreConfig::MIN_PART_SIZE);
    }
}
