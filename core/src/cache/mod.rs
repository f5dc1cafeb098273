//! The embedding cache: vectors keyed by content hash, model and options, so the same bytes are
//! never embedded twice by the same model.

mod memory;
pub(crate) mod sqlite;

pub use memory::MemoryEmbeddingCache;
pub use sqlite::SqliteEmbeddingCache;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::asset::AssetId;
use crate::embedding::Embedding;
use crate::error::Result;

/// What an embedding result depends on: the content, the model and the options that change the
/// vectors.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CacheKey {
    /// Content hash of the media.
    pub content: AssetId,
    /// Model id.
    pub model_id: String,
    /// The provider's [`options_fingerprint`](crate::EmbeddingProvider::options_fingerprint).
    pub options: String,
}

/// Stores provider results.
///
/// Implementations may expire entries (a TTL); an expired entry reads as a miss.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait EmbeddingCache: Send + Sync {
    /// The cached embeddings for `key`, if present and not expired.
    async fn get(&self, key: &CacheKey) -> Result<Option<Vec<Embedding>>>;

    /// Stores embeddings for `key`, replacing any earlier entry.
    async fn put(&self, key: &CacheKey, embeddings: &[Embedding]) -> Result<()>;

    /// Removes an entry; `false` if there was none.
    async fn remove(&self, key: &CacheKey) -> Result<bool>;
}
