//! The searcher's bounded cache of query embeddings: the same text (or the same reference file,
//! by content hash) searched again, in another mode or by another user, costs no provider call.
//!
//! Built on [`moka`]'s concurrent cache: bounded by the bytes of the vectors it holds, least
//! recently used entries evicted first, concurrent look-ups of one key coalesced into one
//! provider call. Errors are never cached.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::asset::AssetId;
use crate::embedding::Embedding;
use crate::error::{Error, Result};

/// Settings of the query-embedding cache of a
/// [`CrossModalSearcher`](crate::CrossModalSearcher).
///
/// ```
/// use std::time::Duration;
/// use crossmodal_core::QueryCacheConfig;
/// let config = QueryCacheConfig::default()
///     .max_bytes(16 * 1024 * 1024)
///     .time_to_idle(Some(Duration::from_secs(3600)));
/// assert_eq!(config.max_bytes, 16 * 1024 * 1024);
/// assert!(QueryCacheConfig::disabled().is_disabled());
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct QueryCacheConfig {
    /// Most bytes of vectors held (default 32 MiB: about 16,000 text queries of Marengo 3.0's
    /// 512 dimensions). 0 disables the cache.
    pub max_bytes: u64,
    /// Drops an entry unused for this long (default: never; a model's vector for a text does
    /// not change).
    pub time_to_idle: Option<Duration>,
}

impl Default for QueryCacheConfig {
    fn default() -> Self {
        QueryCacheConfig {
            max_bytes: 32 * 1024 * 1024,
            time_to_idle: None,
        }
    }
}

impl QueryCacheConfig {
    /// No cache: every query calls the provider.
    pub fn disabled() -> Self {
        QueryCacheConfig {
            max_bytes: 0,
            time_to_idle: None,
        }
    }

    /// Sets the bound on the bytes of vectors held.
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// Sets (or clears) the idle time after which an entry is dropped.
    pub fn time_to_idle(mut self, idle: Option<Duration>) -> Self {
        self.time_to_idle = idle;
        self
    }

    /// Whether the configuration turns the cache off.
    pub fn is_disabled(&self) -> bool {
        self.max_bytes == 0
    }
}

/// What a cached query was.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum QueryKey {
    /// A text, trimmed.
    Text(String),
    /// Media by content hash (an uploaded file or a stored asset).
    Media(AssetId),
    /// A composed query: a text and an image (by content hash).
    TextImage(String, AssetId),
}

/// The full key: the query, the model and the options that change its vectors.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    query: QueryKey,
    model_id: String,
    options: String,
}

/// What a query embedded to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum QueryEmbedding {
    /// One vector (text, composed query).
    Vector(Vec<f32>),
    /// One per space per segment (media).
    Media(Vec<Embedding>),
}

impl QueryEmbedding {
    /// Bytes of vectors held, for the cache's bound.
    fn weight(&self) -> u32 {
        let floats = match self {
            QueryEmbedding::Vector(v) => v.len(),
            QueryEmbedding::Media(e) => e.iter().map(|e| e.vector.len() + 8).sum(),
        };
        u32::try_from(floats.saturating_mul(4).saturating_add(64)).unwrap_or(u32::MAX)
    }
}

/// A bounded, concurrent cache of query embeddings.
#[derive(Clone)]
pub(crate) struct QueryCache {
    cache: moka::future::Cache<Key, Arc<QueryEmbedding>>,
    model_id: String,
    options: String,
}

impl std::fmt::Debug for QueryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryCache")
            .field("entries", &self.cache.entry_count())
            .field("bytes", &self.cache.weighted_size())
            .finish()
    }
}

impl QueryCache {
    /// A cache for queries of `model_id` with `options`, or `None` when `config` disables it.
    pub(crate) fn new(config: &QueryCacheConfig, model_id: &str, options: &str) -> Option<Self> {
        if config.is_disabled() {
            return None;
        }
        let mut builder = moka::future::Cache::builder()
            .max_capacity(config.max_bytes)
            .weigher(|_: &Key, v: &Arc<QueryEmbedding>| v.weight());
        if let Some(idle) = config.time_to_idle {
            builder = builder.time_to_idle(idle);
        }
        Some(QueryCache {
            cache: builder.build(),
            model_id: model_id.to_string(),
            options: options.to_string(),
        })
    }

    /// The cached embedding of `query`, or the one `embed` computes (stored unless it fails).
    /// Concurrent calls for one query share one `embed`.
    pub(crate) async fn get_or_embed<F>(
        &self,
        query: QueryKey,
        embed: F,
    ) -> Result<Arc<QueryEmbedding>>
    where
        F: Future<Output = Result<QueryEmbedding>>,
    {
        let key = Key {
            query,
            model_id: self.model_id.clone(),
            options: self.options.clone(),
        };
        self.cache
            .try_get_with(key, async move { embed.await.map(Arc::new) })
            .await
            .map_err(unshare)
    }

    /// Entries held (after pending maintenance).
    #[cfg(test)]
    pub(crate) async fn entries(&self) -> u64 {
        self.cache.run_pending_tasks().await;
        self.cache.entry_count()
    }
}

/// The error of a failed embed as each caller gets it: the original when this caller is the
/// only one holding it, else a copy (kind, message, context, retry state) with the shared
/// original as its source.
fn unshare(err: Arc<Error>) -> Error {
    match Arc::try_unwrap(err) {
        Ok(e) => e,
        Err(shared) => {
            let mut copy = Error::new(shared.kind(), shared.message());
            for (k, v) in shared.context() {
                copy = copy.with_context(k, v);
            }
            let copy = copy.set_temporary(shared.is_temporary());
            let copy = if shared.is_persistent() {
                copy.set_persistent()
            } else {
                copy
            };
            copy.with_source(shared)
        }
    }
}
