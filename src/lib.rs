//! # crossmodal
//!
//! Cross-modal media search: find images, video clips and sounds by a text description, or by a
//! reference image, video or audio snippet.
#![warn(missing_docs)]

pub mod asset;
pub mod cache;
pub mod catalog;
pub mod durable;
pub mod embedder;
pub mod embedding;
pub mod engine;
pub mod error;
pub mod index;
pub mod ingest;
pub mod media;
pub mod retry;
pub mod routing;
pub mod search;
pub mod store;
pub mod vector;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
#[cfg(test)]
mod test_support;

pub use asset::{AssetId, now_ms};
pub use cache::{CacheKey, EmbeddingCache, MemoryEmbeddingCache, SqliteEmbeddingCache};
pub use catalog::{
    AssetCatalog, AssetPage, AssetQuery, AssetRecord, AssetState, AssetStatus, IngestStage,
    SqliteCatalog, StatusCounts,
};
pub use embedding::{
    Embedding, EmbeddingProvider, EmbeddingSpace, MediaInput, ModelInfo, Segment, check_text,
};
pub use embedder::{CachedEmbedder, MediaEmbeddings};
pub use engine::{Engine, EngineParts, LocalLayout};
pub use error::{BoxError, Error, ErrorKind, Result};
pub use index::{
    FlatIndex, Filter, Hit, IndexCapabilities, IndexSpec, IndexStats, RecordKey, RecordMeta,
    VectorIndex, VectorQuery, VectorRecord,
};
pub use ingest::{
    BatchItemResult, BatchProgress, BatchReport, IngestConfig, IngestItem, IngestOutcome,
    IngestReport, IngestSource, Ingestor,
};
pub use media::{MediaFormat, MediaKind, MediaLimits, MediaProbe, ValidatedMedia, validate_media};
pub use vector::{check_vector, normalized};
pub use retry::RetryPolicy;
pub use routing::{QueryKind, Route, RoutingRule, RoutingRules, SearchMode};
pub use search::{
    CrossModalSearcher, Fusion, Query, QueryInput, QuerySegments, RouteMatch, RouteOutcome,
    RouteReport, SearchHit, SearchResults,
};
pub use store::{KeyPage, LocalDirStore, MediaKey, MediaRef, MediaStore, MemoryStore};
