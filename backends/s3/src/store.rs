//! [`S3MediaStore`]: a [`MediaStore`] on Amazon S3 or an S3-compatible server.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Region};
use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use crossmodal_core::store::clamp_range;
use crossmodal_core::{
    Error, ErrorKind, KeyPage, MediaFormat, MediaKey, MediaRef, MediaStore, Result,
};
use sha2::{Digest, Sha256};
use url::Url;

use crate::config::S3StoreConfig;
use crate::error::{Target, body_error, sdk_error};
use crate::meta::{
    DISPLAY_NAME_METADATA, ObjectInfo, PutOptions, SHA256_METADATA, decode_display_name,
    encode_display_name,
};
use crate::multipart::{self, PartSource, Upload, UploadBuffer};

/// Bodies at least this large are hashed on the blocking pool.
const HASH_INLINE_MAX: usize = 1024 * 1024;
/// Most keys one ListObjectsV2 call returns.
const LIST_PAGE_MAX: usize = 1000;

/// A [`MediaStore`] keeping originals as objects in one S3 bucket, under an optional key prefix.
///
/// - Store key `ab/abcd….mp4` is object `<prefix>ab/abcd….mp4`; its [`MediaRef::uri`] is
///   `s3://<bucket>/<prefix>ab/abcd….mp4`, the form Marengo's `s3Location.uri` takes.
/// - Every object gets the content type of its [`MediaFormat`] and the hex SHA-256 of its
///   content as user metadata `x-amz-meta-sha256`; [`put_with`](Self::put_with) can add a
///   display name (`x-amz-meta-display-name`, percent-encoded).
/// - Objects of [`multipart_threshold`](S3StoreConfig::multipart_threshold) bytes or more go up
///   as multipart uploads; [`put_file`](MediaStore::put_file) streams them from disk a part at a
///   time (memory: at most `(concurrency + 1) * part size` per upload, and all uploads of the
///   store together within [`upload_buffer`](S3StoreConfig::with_upload_buffer)), and a failed
///   or cancelled upload is aborted so no parts are left behind.
/// - [`get_range`](MediaStore::get_range) sends a ranged `GetObject` (what an HTTP `Range`
///   request or a preview needs, without downloading the rest).
/// - Retries are the SDK's standard retry mode, once: an error the client already retried
///   [`max_attempts`](S3StoreConfig::with_max_attempts) times comes back
///   [persistent](crossmodal_core::Error::is_persistent), so the `Ingestor` (or any caller's
///   retry loop) does not start the attempts over.
/// - [`region`](MediaStore::region) is the client's region, so Bedrock reads an original in
///   place only when the bucket is in the model's region.
/// - [`get`](MediaStore::get) checks the body against the recorded SHA-256 (`Corrupt` on a
///   mismatch), end to end, whatever checksums the server keeps.
/// - Errors carry a [`crossmodal_core::ErrorKind`] (`NoSuchKey` and `NoSuchBucket` are `NotFound`,
///   `AccessDenied` is `PermissionDenied`, `SlowDown`/503/429 `RateLimited`, other 5xx and
///   connection failures `Unavailable`, time-outs `Timeout`), the S3 request id as context
///   `request_id`, and the SDK error as source.
///
/// Cloning is cheap and clones share the client.
///
/// ```no_run
/// # async fn demo() -> crossmodal_core::Result<()> {
/// use bytes::Bytes;
/// use crossmodal_core::{AssetId, MediaFormat, MediaKey, MediaStore};
/// use crossmodal_s3::{S3MediaStore, S3StoreConfig};
///
/// let store = S3MediaStore::from_env(S3StoreConfig::new("my-media").with_prefix("originals/")).await?;
/// let bytes = Bytes::from(std::fs::read("castle.png")?);
/// let key = MediaKey::for_asset(&AssetId::from_content(&bytes), MediaFormat::Png);
/// let stored = store.put(&key, bytes, MediaFormat::Png).await?;
/// println!("{}", stored.uri); // s3://my-media/originals/ab/ab12….png
/// let url = store.preview_url(&key, std::time::Duration::from_secs(600)).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct S3MediaStore {
    client: Client,
    config: Arc<S3StoreConfig>,
    /// Set once the bucket is known to exist, so a 404 from `HeadObject` (which has no body to
    /// tell a missing key from a missing bucket) needs a `HeadBucket` only until then.
    bucket_seen: Arc<AtomicBool>,
    /// Attempts the client makes per request (its retry configuration).
    sdk_attempts: u32,
    /// The client's region.
    region: Option<String>,
    /// Part bytes all uploads hold in memory at once.
    buffer: UploadBuffer,
}

impl S3MediaStore {
    /// A store on `client`, with the client settings of `config` (endpoint, path-style
    /// addressing, time-outs, attempts) applied on top of the client's own.
    ///
    /// `config` is an [`S3StoreConfig`] or just a bucket name:
    /// `S3MediaStore::new(client, "my-media")`.
    ///
    /// Fails with `InvalidInput` for a malformed bucket name or key prefix. Does no I/O: a
    /// missing bucket shows up as `NotFound` on first use.
    pub fn new(client: Client, config: impl Into<S3StoreConfig>) -> Result<Self> {
        let config = config.into().validated()?;
        let probe = format!("s3://{}/{}probe", config.bucket(), config.prefix());
        Url::parse(&probe).map_err(|e| {
            Error::invalid_input(format!("bucket and prefix do not form an s3:// URI: {e}"))
                .with_context("bucket", config.bucket())
        })?;
        let mut builder = client.config().to_builder();
        if let Some(endpoint) = config.endpoint() {
            builder = builder.endpoint_url(endpoint);
        }
        if config.path_style() {
            builder = builder.force_path_style(true);
        }
        if let Some(region) = config.region() {
            builder = builder.region(Region::new(region.to_string()));
        }
        let mut timeouts = TimeoutConfig::builder();
        timeouts.set_connect_timeout(config.connect_timeout());
        timeouts.set_read_timeout(config.read_timeout());
        timeouts.set_operation_attempt_timeout(config.attempt_timeout());
        timeouts.set_operation_timeout(config.operation_timeout());
        if let Some(existing) = client.config().timeout_config() {
            timeouts = timeouts.take_unset_from(existing.to_builder());
        }
        builder = builder.timeout_config(timeouts.build());
        if let Some(attempts) = config.max_attempts() {
            let retry = client
                .config()
                .retry_config()
                .cloned()
                .unwrap_or_else(RetryConfig::standard)
                .with_max_attempts(attempts.max(1));
            builder = builder.retry_config(retry);
        }
        let client = Client::from_conf(builder.build());
        let sdk_attempts = client
            .config()
            .retry_config()
            .map_or(1, |r| r.max_attempts());
        let region = client.config().region().map(|r| r.to_string());
        let buffer = UploadBuffer::new(config.upload_buffer());
        Ok(S3MediaStore {
            client,
            config: Arc::new(config),
            bucket_seen: Arc::new(AtomicBool::new(false)),
            sdk_attempts,
            region,
            buffer,
        })
    }

    /// A store on a client from `aws-config`'s standard chain (environment, shared config and
    /// credentials files, SSO, web identity, container and instance metadata), with
    /// [`S3StoreConfig::region`] overriding the chain's region. `AWS_ENDPOINT_URL_S3` /
    /// `AWS_ENDPOINT_URL` are honoured; [`S3StoreConfig::endpoint`] overrides them.
    pub async fn from_env(config: impl Into<S3StoreConfig>) -> Result<Self> {
        let config = config.into();
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = config.region() {
            loader = loader.region(Region::new(region.to_string()));
        }
        let sdk_config = loader.load().await;
        S3MediaStore::new(Client::new(&sdk_config), config)
    }

    /// The client the store uses (with the store's settings applied).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The store's settings (prefix normalised).
    pub fn config(&self) -> &S3StoreConfig {
        &self.config
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        self.config.bucket()
    }

    /// The full object key of a store key: the prefix followed by the key.
    pub fn object_key(&self, key: &MediaKey) -> String {
        format!("{}{}", self.config.prefix(), key)
    }

    fn target<'a>(&'a self, op: &'static str, key: Option<&'a MediaKey>) -> Target<'a> {
        Target {
            op,
            bucket: self.bucket(),
            key: key.map(MediaKey::as_str),
            attempts: self.sdk_attempts,
        }
    }

    /// Content type, SHA-256 and display-name metadata for an upload.
    fn metadata(&self, sha256: &[u8; 32], options: &PutOptions) -> Result<HashMap<String, String>> {
        let mut metadata = HashMap::new();
        metadata.insert(SHA256_METADATA.to_string(), hex::encode(sha256));
        if let Some(name) = options.display_name() {
            metadata.insert(
                DISPLAY_NAME_METADATA.to_string(),
                encode_display_name(name)?,
            );
        }
        Ok(metadata)
    }

    /// [`put`](MediaStore::put) with extra [`PutOptions`] (a display name, a known SHA-256).
    ///
    /// Bodies of [`multipart_threshold`](S3StoreConfig::multipart_threshold) bytes or more go up
    /// as a multipart upload (slices of `bytes`, no copies).
    pub async fn put_with(
        &self,
        key: &MediaKey,
        bytes: Bytes,
        format: MediaFormat,
        options: &PutOptions,
    ) -> Result<MediaRef> {
        let digest = sha256_of(bytes.clone()).await?;
        if let Some(expected) = options.sha256()
            && *expected != digest
        {
            return Err(Error::invalid_input(
                "the content does not have the SHA-256 the caller gave",
            )
            .with_context("key", key)
            .with_context("expected_sha256", hex::encode(expected))
            .with_context("sha256", hex::encode(digest)));
        }
        let metadata = self.metadata(&digest, options)?;
        let len = bytes.len() as u64;
        if len >= self.config.effective_threshold() {
            let object_key = self.object_key(key);
            let upload = Upload {
                client: &self.client,
                bucket: self.bucket(),
                object_key: &object_key,
                store_key: key.as_str(),
                content_type: format.mime_type(),
                metadata,
                len,
                part_size: self.config.part_size_for(len),
                concurrency: self.config.upload_concurrency(),
                expected_sha256: None,
                caller_hash: false,
                attempts: self.sdk_attempts,
                buffer: &self.buffer,
            };
            multipart::run(upload, PartSource::Memory { bytes, offset: 0 }).await?;
        } else {
            self.client
                .put_object()
                .bucket(self.bucket())
                .key(self.object_key(key))
                .content_type(format.mime_type())
                .content_length(len as i64)
                .set_metadata(Some(metadata))
                .body(ByteStream::from(bytes))
                .send()
                .await
                .map_err(|e| sdk_error(e, self.target("PutObject", Some(key))))?;
        }
        self.bucket_seen.store(true, Ordering::Relaxed);
        Ok(self.media_ref(key))
    }

    /// [`put_file`](MediaStore::put_file) with extra [`PutOptions`].
    ///
    /// A file below the multipart threshold is read whole and sent with one `PutObject`. A
    /// larger one is hashed in a first pass (skipped when [`PutOptions::with_sha256`] gives the
    /// hash), then sent as a multipart upload read from disk a part at a time and hashed again
    /// on the way; if the file changed in between, the upload is aborted (`Conflict`, or
    /// `InvalidInput` against a caller-given hash) and nothing is stored.
    pub async fn put_file_with(
        &self,
        key: &MediaKey,
        path: &Path,
        format: MediaFormat,
        options: &PutOptions,
    ) -> Result<MediaRef> {
        let io = |e: std::io::Error| Error::from(e).with_context("path", path.display());
        let file_meta = tokio::fs::metadata(path).await.map_err(io)?;
        if !file_meta.is_file() {
            return Err(
                Error::invalid_input("not a regular file").with_context("path", path.display())
            );
        }
        let len = file_meta.len();
        if len < self.config.effective_threshold() {
            let _held = self.buffer.reserve(len).await?;
            let bytes = tokio::fs::read(path).await.map_err(io)?;
            return self
                .put_with(key, Bytes::from(bytes), format, options)
                .await;
        }
        let (expected, caller_hash) = match options.sha256() {
            Some(digest) => (*digest, true),
            None => (sha256_of_file(path, len).await?, false),
        };
        let metadata = self.metadata(&expected, options)?;
        let file = std::fs::File::open(path).map_err(io)?;
        let object_key = self.object_key(key);
        let upload = Upload {
            client: &self.client,
            bucket: self.bucket(),
            object_key: &object_key,
            store_key: key.as_str(),
            content_type: format.mime_type(),
            metadata,
            len,
            part_size: self.config.part_size_for(len),
            concurrency: self.config.upload_concurrency(),
            expected_sha256: Some(expected),
            caller_hash,
            attempts: self.sdk_attempts,
            buffer: &self.buffer,
        };
        multipart::run(upload, PartSource::file(file, path.to_path_buf()))
            .await
            .map_err(|e| e.with_context("path", path.display()))?;
        self.bucket_seen.store(true, Ordering::Relaxed);
        Ok(self.media_ref(key))
    }

    /// Starts reading an object and returns its body as a stream, without buffering it.
    /// `NotFound` if the object (or the bucket) does not exist.
    ///
    /// Unlike [`get`](MediaStore::get), which checks the whole body against the SHA-256
    /// recorded at upload (`Corrupt` on a mismatch), a stream is not checked by the store; the
    /// caller can compare its own hash with [`ObjectInfo::sha256`].
    ///
    /// `ByteStream::into_async_read` turns it into a `tokio::io::AsyncBufRead`;
    /// `ByteStream::next` yields chunks; `ByteStream::collect` gathers everything.
    pub async fn get_stream(&self, key: &MediaKey) -> Result<ByteStream> {
        Ok(self.get_object(key).await?.body)
    }

    async fn get_object(&self, key: &MediaKey) -> Result<GetObjectOutput> {
        self.client
            .get_object()
            .bucket(self.bucket())
            .key(self.object_key(key))
            .send()
            .await
            .map_err(|e| sdk_error(e, self.target("GetObject", Some(key))))
    }

    /// What S3 reports about an object: size, content type, recorded SHA-256, display name.
    /// `NotFound` if the object (or the bucket) does not exist.
    pub async fn head(&self, key: &MediaKey) -> Result<ObjectInfo> {
        let Some(out) = self.head_object(key).await? else {
            return Err(Error::not_found("S3 HeadObject failed: no such object")
                .with_context("operation", "HeadObject")
                .with_context("bucket", self.bucket())
                .with_context("key", key));
        };
        let meta = out.metadata.unwrap_or_default();
        Ok(ObjectInfo {
            key: key.clone(),
            size: out
                .content_length
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(0),
            content_type: out.content_type,
            sha256: meta.get(SHA256_METADATA).cloned(),
            display_name: meta
                .get(DISPLAY_NAME_METADATA)
                .and_then(|v| decode_display_name(v)),
            etag: out.e_tag,
            last_modified: out
                .last_modified
                .and_then(|t| std::time::SystemTime::try_from(t).ok()),
        })
    }

    /// `HeadObject`: `Some` if the object exists, `None` if it does not, `NotFound` if the
    /// bucket does not.
    async fn head_object(&self, key: &MediaKey) -> Result<Option<HeadObjectOutput>> {
        let result = self
            .client
            .head_object()
            .bucket(self.bucket())
            .key(self.object_key(key))
            .send()
            .await;
        match result {
            Ok(out) => {
                self.bucket_seen.store(true, Ordering::Relaxed);
                Ok(Some(out))
            }
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {
                self.check_bucket().await?;
                Ok(None)
            }
            Err(e) => Err(sdk_error(e, self.target("HeadObject", Some(key)))),
        }
    }

    /// `NotFound` (with the bucket as context) unless the bucket exists; remembered once seen.
    async fn check_bucket(&self) -> Result<()> {
        if self.bucket_seen.load(Ordering::Relaxed) {
            return Ok(());
        }
        match self.client.head_bucket().bucket(self.bucket()).send().await {
            Ok(_) => {
                self.bucket_seen.store(true, Ordering::Relaxed);
                Ok(())
            }
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {
                let mut err = Error::not_found("S3 HeadBucket failed: no such bucket")
                    .with_context("operation", "HeadBucket")
                    .with_context("bucket", self.bucket());
                if let Some(id) = aws_sdk_s3::operation::RequestId::request_id(&e) {
                    err = err.with_context("request_id", id);
                }
                Err(err.with_source(e))
            }
            Err(e) => Err(sdk_error(e, self.target("HeadBucket", None))),
        }
    }
}

/// SHA-256 of an in-memory body (large ones on the blocking pool).
async fn sha256_of(bytes: Bytes) -> Result<[u8; 32]> {
    if bytes.len() < HASH_INLINE_MAX {
        return Ok(Sha256::digest(&bytes).into());
    }
    tokio::task::spawn_blocking(move || Sha256::digest(&bytes).into())
        .await
        .map_err(crate::error::join_error)
}

/// SHA-256 of the first `len` bytes of a file, read in 1 MiB blocks on the blocking pool.
async fn sha256_of_file(path: &Path, len: u64) -> Result<[u8; 32]> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let io = |e: std::io::Error| Error::from(e).with_context("path", path.display());
        let file = std::fs::File::open(&path).map_err(io)?;
        let mut reader = file.take(len);
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1024 * 1024];
        let mut total = 0u64;
        loop {
            let n = reader.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            hasher.update(buf.get(..n).unwrap_or_default());
            total += n as u64;
        }
        if total != len {
            return Err(Error::new(
                ErrorKind::Conflict,
                "the file shrank while it was being hashed",
            )
            .with_context("path", path.display()));
        }
        Ok(hasher.finalize().into())
    })
    .await
    .map_err(crate::error::join_error)?
}

#[async_trait]
impl MediaStore for S3MediaStore {
    async fn put(&self, key: &MediaKey, bytes: Bytes, format: MediaFormat) -> Result<MediaRef> {
        self.put_with(key, bytes, format, &PutOptions::default())
            .await
    }

    async fn put_file(&self, key: &MediaKey, path: &Path, format: MediaFormat) -> Result<MediaRef> {
        self.put_file_with(key, path, format, &PutOptions::default())
            .await
    }

    /// Sends the caller's hash along, so the upload is not preceded by a hashing pass; a file
    /// that no longer has that hash is refused (`InvalidInput`) and nothing is stored.
    async fn put_file_checked(
        &self,
        key: &MediaKey,
        path: &Path,
        format: MediaFormat,
        sha256: &[u8; 32],
    ) -> Result<MediaRef> {
        self.put_file_with(
            key,
            path,
            format,
            &PutOptions::default().with_sha256(*sha256),
        )
        .await
    }

    /// A ranged `GetObject`. The part is not checked against the recorded SHA-256 (which covers
    /// the whole object).
    async fn get_range(&self, key: &MediaKey, range: Range<u64>) -> Result<Bytes> {
        if range.start > range.end {
            return clamp_range(&range, 0).map(|_| Bytes::new());
        }
        if range.start == range.end {
            // Nothing to read: the object must exist and the range start within it.
            let info = self.head(key).await?;
            clamp_range(&range, info.size).map_err(|e| e.with_context("key", key))?;
            return Ok(Bytes::new());
        }
        let result = self
            .client
            .get_object()
            .bucket(self.bucket())
            .key(self.object_key(key))
            .range(format!("bytes={}-{}", range.start, range.end - 1))
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 416) => {
                // The range starts at or past the end: empty at the end, refused past it.
                let info = self.head(key).await?;
                clamp_range(&range, info.size).map_err(|e| e.with_context("key", key))?;
                return Ok(Bytes::new());
            }
            Err(e) => return Err(sdk_error(e, self.target("GetObject", Some(key)))),
        };
        let ranged = out.content_range.is_some();
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| body_error(e, self.target("GetObject", Some(key))))?
            .into_bytes();
        if ranged {
            let want = usize::try_from(range.end - range.start).unwrap_or(usize::MAX);
            Ok(bytes.slice(..want.min(bytes.len())))
        } else {
            // A server that ignored the range sent the whole object.
            let part =
                clamp_range(&range, bytes.len() as u64).map_err(|e| e.with_context("key", key))?;
            Ok(bytes.slice(part.start as usize..part.end as usize))
        }
    }

    fn region(&self) -> Option<String> {
        self.region.clone()
    }

    async fn get(&self, key: &MediaKey) -> Result<Bytes> {
        let out = self.get_object(key).await?;
        let recorded = out
            .metadata
            .as_ref()
            .and_then(|m| m.get(SHA256_METADATA))
            .map(|v| v.to_ascii_lowercase());
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| body_error(e, self.target("GetObject", Some(key))))?
            .into_bytes();
        // End-to-end check against the hash recorded at upload (S3's own checksums of multipart
        // objects are per part, so the SDK cannot check those whole).
        if let Some(recorded) = recorded {
            let actual = hex::encode(sha256_of(bytes.clone()).await?);
            if actual != recorded {
                return Err(Error::corrupt(
                    "the object's content does not match the SHA-256 recorded at upload",
                )
                .with_context("bucket", self.bucket())
                .with_context("key", key)
                .with_context("recorded_sha256", recorded)
                .with_context("sha256", actual));
            }
        }
        Ok(bytes)
    }

    async fn delete(&self, key: &MediaKey) -> Result<bool> {
        if self.head_object(key).await?.is_none() {
            return Ok(false);
        }
        self.client
            .delete_object()
            .bucket(self.bucket())
            .key(self.object_key(key))
            .send()
            .await
            .map_err(|e| sdk_error(e, self.target("DeleteObject", Some(key))))?;
        Ok(true)
    }

    async fn exists(&self, key: &MediaKey) -> Result<bool> {
        Ok(self.head_object(key).await?.is_some())
    }

    async fn list(&self, prefix: &str, after: Option<MediaKey>, limit: usize) -> Result<KeyPage> {
        if limit == 0 {
            return Err(Error::invalid_input("list limit must be at least 1"));
        }
        let store_prefix = self.config.prefix();
        let full_prefix = format!("{store_prefix}{prefix}");
        let want = limit.saturating_add(1);
        let mut keys: Vec<MediaKey> = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page_size = (want - keys.len()).min(LIST_PAGE_MAX);
            let mut request = self
                .client
                .list_objects_v2()
                .bucket(self.bucket())
                .prefix(&full_prefix)
                .max_keys(page_size as i32);
            request = match (&token, &after) {
                (Some(t), _) => request.continuation_token(t),
                (None, Some(a)) => request.start_after(format!("{store_prefix}{a}")),
                (None, None) => request,
            };
            let out = request.send().await.map_err(|e| {
                sdk_error(e, self.target("ListObjectsV2", None))
                    .with_context("prefix", &full_prefix)
            })?;
            for object in out.contents() {
                let Some(name) = object.key() else { continue };
                let Some(rest) = name.strip_prefix(store_prefix) else {
                    continue;
                };
                match MediaKey::parse(rest) {
                    Ok(k) if keys.len() < want => keys.push(k),
                    Ok(_) => {}
                    Err(_) => tracing::debug!(
                        object = name,
                        "skipping an object whose name is not a media key"
                    ),
                }
            }
            token = out.next_continuation_token;
            if keys.len() >= want || !out.is_truncated.unwrap_or(false) || token.is_none() {
                break;
            }
        }
        self.bucket_seen.store(true, Ordering::Relaxed);
        let next_after = if keys.len() > limit {
            keys.truncate(limit);
            keys.last().cloned()
        } else {
            None
        };
        Ok(KeyPage { keys, next_after })
    }

    fn media_ref(&self, key: &MediaKey) -> MediaRef {
        let text = format!("s3://{}/{}", self.bucket(), self.object_key(key));
        // The bucket and prefix were checked in `new` and a key is `[A-Za-z0-9._/-]`, so the
        // URI always parses.
        let uri = Url::parse(&text).expect("an s3:// URI of a checked bucket and key parses");
        MediaRef {
            key: key.clone(),
            uri,
        }
    }

    async fn preview_url(&self, key: &MediaKey, ttl: Duration) -> Result<Url> {
        let presigning = PresigningConfig::expires_in(ttl).map_err(|e| {
            Error::invalid_input(format!("invalid preview URL lifetime: {e}"))
                .with_context("ttl_secs", ttl.as_secs())
                .with_source(e)
        })?;
        if self.head_object(key).await?.is_none() {
            return Err(Error::not_found("no such object")
                .with_context("bucket", self.bucket())
                .with_context("key", key));
        }
        let presigned = self
            .client
            .get_object()
            .bucket(self.bucket())
            .key(self.object_key(key))
            .presigned(presigning)
            .await
            .map_err(|e| sdk_error(e, self.target("GetObject (presign)", Some(key))))?;
        Url::parse(presigned.uri()).map_err(|e| {
            Error::backend(format!("the presigned URL does not parse: {e}"))
                .with_context("key", key)
                .with_source(e)
        })
    }
}
