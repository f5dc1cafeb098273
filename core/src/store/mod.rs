//! Where original media files live: the [`MediaStore`] trait, its keys, and the embedded stores.
//!
//! - [`LocalDirStore`]: files under a root directory (the embedded default).
//! - [`MemoryStore`]: in memory, for tests and short-lived tools.
//! - `crossmodal_s3::S3MediaStore`: Amazon S3 or an S3-compatible server.

mod local;
mod memory;

pub use local::LocalDirStore;
pub use memory::MemoryStore;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;
use url::Url;

use crate::asset::AssetId;
use crate::error::{Error, Result};
use crate::media::MediaFormat;

/// A relative, validated object key: `/`-separated segments of `[A-Za-z0-9._-]`, no empty
/// segment and none starting with `.`, no leading `/`, at most 512 bytes.
///
/// Keys are derived from asset ids ([`MediaKey::for_asset`]), never from user-supplied paths, so a
/// key can never escape a store's root.
///
/// ```
/// use crossmodal_core::{AssetId, MediaFormat, MediaKey};
/// let id = AssetId::from_content(b"clip");
/// let key = MediaKey::for_asset(&id, MediaFormat::Mp4);
/// assert!(key.as_str().ends_with(".mp4"));
/// assert!(MediaKey::parse("../etc/passwd").is_err());
/// assert!(MediaKey::parse("/abs").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MediaKey(String);

impl MediaKey {
    /// Longest key accepted, in bytes.
    pub const MAX_LEN: usize = 512;

    /// The key of an asset's original: `<first two hex chars>/<asset id>.<extension>`.
    pub fn for_asset(asset: &AssetId, format: MediaFormat) -> MediaKey {
        let id = asset.as_str();
        MediaKey(format!("{}/{}.{}", &id[..2], id, format.extension()))
    }

    /// Validates a key (see the type's rules).
    pub fn parse(key: &str) -> Result<MediaKey> {
        let bad = |why: &str| {
            Err(Error::invalid_input(format!(
                "invalid media key {key:?}: {why}"
            )))
        };
        if key.is_empty() {
            return bad("empty");
        }
        if key.len() > Self::MAX_LEN {
            return bad("too long");
        }
        for seg in key.split('/') {
            if seg.is_empty() {
                return bad("empty path segment or leading/trailing '/'");
            }
            if seg.starts_with('.') {
                return bad("a segment may not start with '.' ('..', hidden and temporary names)");
            }
            if !seg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            {
                return bad("only ASCII letters, digits, '.', '_', '-' and '/' are allowed");
            }
        }
        Ok(MediaKey(key.to_string()))
    }

    /// The key as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MediaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for MediaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MediaKey({})", self.0)
    }
}

impl TryFrom<String> for MediaKey {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        MediaKey::parse(&s)
    }
}

impl From<MediaKey> for String {
    fn from(k: MediaKey) -> String {
        k.0
    }
}

/// Where a stored original lives: its key in the store and a URI naming it outside the store
/// (`file:///…` for a local directory, `s3://bucket/key` for S3 — the form Marengo's
/// `s3Location.uri` takes — `memory:///key` for memory).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MediaRef {
    /// Key within the store.
    pub key: MediaKey,
    /// URI of the object.
    pub uri: Url,
}

/// One page of keys from [`MediaStore::list`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPage {
    /// Keys in ascending byte order.
    pub keys: Vec<MediaKey>,
    /// Pass as `after` to get the next page; `None` on the last page.
    pub next_after: Option<MediaKey>,
}

/// An object being written before its key is known: content-addressed ingest hashes the bytes
/// while it writes them, and the key (derived from the hash) is given at
/// [`commit`](StagedWrite::commit). See [`MediaStore::stage`].
///
/// Dropping a staged write without committing it discards what was written (as
/// [`abort`](StagedWrite::abort) does, on a best-effort basis).
#[async_trait]
pub trait StagedWrite: Send {
    /// Appends `chunk`.
    async fn write(&mut self, chunk: Bytes) -> Result<()>;

    /// Bytes written so far.
    fn written(&self) -> u64;

    /// Stores what was written under `key`, atomically (a reader sees the old object or the
    /// whole new one) and durably where the store is durable, and returns where it lives.
    async fn commit(self: Box<Self>, key: &MediaKey) -> Result<MediaRef>;

    /// Discards what was written.
    async fn abort(self: Box<Self>);
}

/// Checks a requested byte range against an object of `len` bytes and returns the part to
/// read: `start..min(end, len)`. `InvalidInput` when `start > end` or `start > len`.
///
/// ```
/// use crossmodal_core::store::clamp_range;
/// assert_eq!(clamp_range(&(2..10), 6).unwrap(), 2..6);
/// assert_eq!(clamp_range(&(6..6), 6).unwrap(), 6..6);
/// assert!(clamp_range(&(7..9), 6).is_err());
/// ```
pub fn clamp_range(range: &Range<u64>, len: u64) -> Result<Range<u64>> {
    if range.start > range.end {
        return Err(Error::invalid_input(format!(
            "byte range {}..{} ends before it starts",
            range.start, range.end
        )));
    }
    if range.start > len {
        return Err(Error::invalid_input(format!(
            "byte range {}..{} starts past the end of the {len}-byte object",
            range.start, range.end
        ))
        .with_context("size", len));
    }
    Ok(range.start..range.end.min(len))
}

/// Stores original media files.
///
/// Every method is safe to call concurrently. `put` of a key that exists replaces it atomically:
/// a reader sees the old or the new bytes, never a mix.
///
/// The required methods are the small core; the provided ones (`put_file`, `get_range`,
/// `stage`, ...) have defaults that work for any store and that a store overrides when it can do
/// better (stream, read a range without reading the rest, write while the content is hashed).
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait MediaStore: Send + Sync {
    /// Stores `bytes` under `key`; `format` sets the content type.
    async fn put(&self, key: &MediaKey, bytes: Bytes, format: MediaFormat) -> Result<MediaRef>;

    /// Stores the file at `path` under `key`. Stores that can stream (S3 multipart) override this
    /// so a multi-GB video is never held in memory; the default reads the whole file.
    async fn put_file(&self, key: &MediaKey, path: &Path, format: MediaFormat) -> Result<MediaRef> {
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|e| Error::from(e).with_context("path", path.display()))?;
        self.put(key, Bytes::from(bytes), format).await
    }

    /// Stores the file at `path`, whose SHA-256 the caller computed (content-addressed ingest
    /// hashes a file before it knows its key). A store that reads the file again checks what it
    /// read against `sha256` and refuses a file that changed since (`Conflict` or
    /// `InvalidInput`, nothing stored). The default is [`put_file`](Self::put_file).
    async fn put_file_checked(
        &self,
        key: &MediaKey,
        path: &Path,
        format: MediaFormat,
        sha256: &[u8; 32],
    ) -> Result<MediaRef> {
        let _ = sha256;
        self.put_file(key, path, format).await
    }

    /// Starts an object whose key is known only once all of it has been written: the ingest
    /// pipeline reads a file once, hashing it while it feeds the bytes here, and commits under
    /// the key the hash gives. `None` (the default) when the store has no cheap way to
    /// rename an object into place: the pipeline then hashes first and calls
    /// [`put_file_checked`](Self::put_file_checked). `LocalDirStore` writes a temporary file in
    /// its root and renames it into place; `MemoryStore` gathers the chunks.
    async fn stage(&self, format: MediaFormat) -> Result<Option<Box<dyn StagedWrite>>> {
        let _ = format;
        Ok(None)
    }

    /// Reads a whole object. `NotFound` if it does not exist.
    async fn get(&self, key: &MediaKey) -> Result<Bytes>;

    /// Reads bytes `range.start..range.end` of an object, the end clamped to the object's
    /// length (see [`clamp_range`]): `InvalidInput` when the range ends before it starts or
    /// starts past the end, `NotFound` when the object does not exist. What an HTTP `Range`
    /// request, a preview or a provider reading a piece of a large file needs.
    ///
    /// The default reads the whole object and slices it; every store of this family reads only
    /// the range (`LocalDirStore` seeks, `S3MediaStore` sends a ranged `GetObject`).
    async fn get_range(&self, key: &MediaKey, range: Range<u64>) -> Result<Bytes> {
        let bytes = self.get(key).await?;
        let part =
            clamp_range(&range, bytes.len() as u64).map_err(|e| e.with_context("key", key))?;
        // `clamp_range` keeps both ends within the length, which fits in usize.
        Ok(bytes.slice(part.start as usize..part.end as usize))
    }

    /// Deletes an object. Deleting a missing key is not an error (returns `false`).
    async fn delete(&self, key: &MediaKey) -> Result<bool>;

    /// Whether an object exists.
    async fn exists(&self, key: &MediaKey) -> Result<bool>;

    /// Lists keys that start with `prefix`, in ascending order, strictly after `after`, at most
    /// `limit` (>= 1) of them.
    async fn list(&self, prefix: &str, after: Option<MediaKey>, limit: usize) -> Result<KeyPage>;

    /// The [`MediaRef`] a key has in this store (no I/O; the object may not exist).
    fn media_ref(&self, key: &MediaKey) -> MediaRef;

    /// The cloud region the store keeps its objects in, when it has one (an S3 bucket's
    /// region). A provider reads a stored object in place only from its own region (Bedrock
    /// refuses S3 input from another one); `None` (the default) for stores without regions.
    fn region(&self) -> Option<String> {
        None
    }

    /// A URL a browser or player can fetch the object from for `ttl` (presigned for S3, a
    /// `file://` URL for a local directory). `NotFound` if the object does not exist.
    async fn preview_url(&self, key: &MediaKey, ttl: Duration) -> Result<Url>;
}
