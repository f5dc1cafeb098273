//! [`MemoryStore`]: a [`MediaStore`] held in memory, for tests and short-lived tools.

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use parking_lot::RwLock;
use std::collections::BTreeMap;
use std::ops::{Bound, Range};
use std::sync::Arc;
use std::time::Duration;
use url::Url;

use super::{KeyPage, MediaKey, MediaRef, MediaStore, StagedWrite, clamp_range};
use crate::error::{Error, Result};
use crate::media::MediaFormat;

/// A [`MediaStore`] that keeps every object in memory.
///
/// Objects are named `memory:///<key>`. Nothing survives the value being dropped; clones are not
/// offered, share it behind an `Arc` instead.
///
/// ```
/// # block_on(async {
/// use bytes::Bytes;
/// use crossmodal_core::{MediaFormat, MediaKey, MediaStore, MemoryStore};
/// let store = MemoryStore::new();
/// let key = MediaKey::parse("ab/clip.mp4").unwrap();
/// let stored = store.put(&key, Bytes::from_static(b"not really a video"), MediaFormat::Mp4).await.unwrap();
/// assert_eq!(stored.uri.as_str(), "memory:///ab/clip.mp4");
/// assert_eq!(store.get(&key).await.unwrap(), Bytes::from_static(b"not really a video"));
/// # });
/// # fn block_on(f: impl std::future::Future<Output = ()>) {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    objects: Arc<RwLock<Objects>>,
}

type Objects = BTreeMap<MediaKey, (Bytes, MediaFormat)>;

/// A [`MemoryStore`] object being written: chunks gathered until the commit.
struct MemoryStaged {
    objects: Arc<RwLock<Objects>>,
    format: MediaFormat,
    buf: BytesMut,
}

#[async_trait]
impl StagedWrite for MemoryStaged {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        self.buf.extend_from_slice(&chunk);
        Ok(())
    }

    fn written(&self) -> u64 {
        self.buf.len() as u64
    }

    async fn commit(self: Box<Self>, key: &MediaKey) -> Result<MediaRef> {
        let MemoryStaged {
            objects,
            format,
            buf,
        } = *self;
        objects.write().insert(key.clone(), (buf.freeze(), format));
        Ok(MediaRef {
            key: key.clone(),
            uri: memory_uri(key),
        })
    }

    async fn abort(self: Box<Self>) {}
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of objects held.
    pub fn len(&self) -> usize {
        self.objects.read().len()
    }

    /// Whether the store holds no objects.
    pub fn is_empty(&self) -> bool {
        self.objects.read().is_empty()
    }

    /// The format an object was stored with, if it exists.
    pub fn format_of(&self, key: &MediaKey) -> Option<MediaFormat> {
        self.objects.read().get(key).map(|(_, f)| *f)
    }
}

/// `memory:///<key>`.
fn memory_uri(key: &MediaKey) -> Url {
    match Url::parse(&format!("memory:///{key}")) {
        Ok(url) => url,
        // A `MediaKey` holds only `[A-Za-z0-9._-]` segments joined by `/`, which always form a
        // valid URL path, so this arm cannot be reached (see the `uri_of_every_key_char` test).
        Err(e) => unreachable!("memory URI of validated key {key} did not parse: {e}"),
    }
}

fn check_limit(limit: usize) -> Result<()> {
    if limit == 0 {
        return Err(Error::invalid_input("list limit must be at least 1"));
    }
    Ok(())
}

#[async_trait]
impl MediaStore for MemoryStore {
    async fn put(&self, key: &MediaKey, bytes: Bytes, format: MediaFormat) -> Result<MediaRef> {
        self.objects.write().insert(key.clone(), (bytes, format));
        Ok(self.media_ref(key))
    }

    async fn get(&self, key: &MediaKey) -> Result<Bytes> {
        self.objects
            .read()
            .get(key)
            .map(|(bytes, _)| bytes.clone())
            .ok_or_else(|| Error::not_found("no such object").with_context("key", key))
    }

    async fn get_range(&self, key: &MediaKey, range: Range<u64>) -> Result<Bytes> {
        let bytes = self.get(key).await?;
        let part =
            clamp_range(&range, bytes.len() as u64).map_err(|e| e.with_context("key", key))?;
        // `clamp_range` keeps both ends within the length, which fits in usize.
        Ok(bytes.slice(part.start as usize..part.end as usize))
    }

    async fn stage(&self, format: MediaFormat) -> Result<Option<Box<dyn StagedWrite>>> {
        Ok(Some(Box::new(MemoryStaged {
            objects: Arc::clone(&self.objects),
            format,
            buf: BytesMut::new(),
        })))
    }

    async fn delete(&self, key: &MediaKey) -> Result<bool> {
        Ok(self.objects.write().remove(key).is_some())
    }

    async fn exists(&self, key: &MediaKey) -> Result<bool> {
        Ok(self.objects.read().contains_key(key))
    }

    async fn list(&self, prefix: &str, after: Option<MediaKey>, limit: usize) -> Result<KeyPage> {
        check_limit(limit)?;
        let objects = self.objects.read();
        let lower = match after {
            Some(after) => Bound::Excluded(after),
            None => Bound::Unbounded,
        };
        let mut keys: Vec<MediaKey> = objects
            .range((lower, Bound::Unbounded))
            .map(|(k, _)| k)
            .skip_while(|k| k.as_str() < prefix)
            .take_while(|k| k.as_str().starts_with(prefix))
            .take(limit.saturating_add(1))
            .cloned()
            .collect();
        let next_after = if keys.len() > limit {
            keys.truncate(limit);
            keys.last().cloned()
        } else {
            None
        };
        Ok(KeyPage { keys, next_after })
    }

    fn media_ref(&self, key: &MediaKey) -> MediaRef {
        MediaRef {
            key: key.clone(),
            uri: memory_uri(key),
        }
    }

    async fn preview_url(&self, key: &MediaKey, _ttl: Duration) -> Result<Url> {
        if self.objects.read().contains_key(key) {
            Ok(memory_uri(key))
        } else {
            Err(Error::not_found("no such object").with_context("key", key))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[tokio::test]
    async fn passes_the_media_store_suite() {
        let store = MemoryStore::new();
        crate::conformance::media_store_suite(&store).await;
    }

    #[test]
    fn uri_of_every_key_char() {
        let key = MediaKey::parse(
            "abcdefghijklmnopqrstuvwxyz/ABCDEFGHIJKLMNOPQRSTUVWXYZ/0123456789/x._-/x.x/x.",
        )
        .unwrap();
        let uri = memory_uri(&key);
        assert_eq!(uri.scheme(), "memory");
        assert_eq!(uri.as_str(), format!("memory:///{key}"));
    }

    #[tokio::test]
    async fn remembers_formats_and_refuses_a_zero_limit() {
        let store = MemoryStore::new();
        assert!(store.is_empty());
        let key = MediaKey::parse("a/b.wav").unwrap();
        store
            .put(&key, Bytes::from_static(b"RIFF"), MediaFormat::Wav)
            .await
            .unwrap();
        assert_eq!(store.len(), 1);
        assert_eq!(store.format_of(&key), Some(MediaFormat::Wav));
        let err = store.list("", None, 0).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }
}
