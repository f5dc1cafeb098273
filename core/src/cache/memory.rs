//! An in-memory embedding cache with an optional TTL.

use async_trait::async_trait;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{CacheKey, EmbeddingCache};
use crate::embedding::Embedding;
use crate::error::Result;

/// An in-memory [`EmbeddingCache`]; entries older than the TTL read as misses.
///
/// ```
/// # tokio_test_block(async {
/// use crossmodal_core::{AssetId, CacheKey, EmbeddingCache, MemoryEmbeddingCache};
/// let cache = MemoryEmbeddingCache::new(None);
/// let key = CacheKey { content: AssetId::from_content(b"x"), model_id: "m".into(), options: String::new() };
/// assert!(cache.get(&key).await.unwrap().is_none());
/// cache.put(&key, &[]).await.unwrap();
/// assert!(cache.get(&key).await.unwrap().is_some());
/// # });
/// # fn tokio_test_block(f: impl std::future::Future<Output = ()>) {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Debug, Default)]
pub struct MemoryEmbeddingCache {
    ttl: Option<Duration>,
    entries: Mutex<HashMap<CacheKey, (Instant, Vec<Embedding>)>>,
}

impl MemoryEmbeddingCache {
    /// A cache whose entries expire after `ttl` (`None`: never).
    pub fn new(ttl: Option<Duration>) -> Self {
        MemoryEmbeddingCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Number of entries held (expired ones included until read).
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    /// Whether the cache holds no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl EmbeddingCache for MemoryEmbeddingCache {
    async fn get(&self, key: &CacheKey) -> Result<Option<Vec<Embedding>>> {
        let mut entries = self.entries.lock();
        match entries.get(key) {
            Some((at, _)) if self.ttl.is_some_and(|ttl| at.elapsed() > ttl) => {
                entries.remove(key);
                Ok(None)
            }
            Some((_, e)) => Ok(Some(e.clone())),
            None => Ok(None),
        }
    }

    async fn put(&self, key: &CacheKey, embeddings: &[Embedding]) -> Result<()> {
        self.entries
            .lock()
            .insert(key.clone(), (Instant::now(), embeddings.to_vec()));
        Ok(())
    }

    async fn remove(&self, key: &CacheKey) -> Result<bool> {
        Ok(self.entries.lock().remove(key).is_some())
    }
}
