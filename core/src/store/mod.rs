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

/// Stores original media files.
///
/// Every method is safe to call concurrently. `put` of a key that exists replaces it atomically:
/// a reader sees the old or the new bytes, never a mix.
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

    /// Reads a whole object. `NotFound` if it does not exist.
    async fn get(&self, key: &MediaKey) -> Result<Bytes>;

    /// Deletes an object. Deleting a missing key is not an error (returns `false`).
    async fn delete(&self, key: &MediaKey) -> Result<bool>;

    /// Whether an object exists.
    async fn exists(&self, key: &MediaKey) -> Result<bool>;

    /// Lists keys that start with `prefix`, in ascending order, strictly after `after`, at most
    /// `limit` (>= 1) of them.
    async fn list(&self, prefix: &str, after: Option<MediaKey>, limit: usize) -> Result<KeyPage>;

    /// The [`MediaRef`] a key has in this store (no I/O; the object may not exist).
    fn media_ref(&self, key: &MediaKey) -> MediaRef;

    /// A URL a browser or player can fetch the object from for `ttl` (presigned for S3, a
    /// `file://` URL for a local directory). `NotFound` if the object does not exist.
    async fn preview_url(&self, key: &MediaKey, ttl: Duration) -> Result<Url>;
}
