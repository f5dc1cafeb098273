//! # crossmodal-core
//!
//! Cross-modal media search: find images, video clips and sounds by a text description, or by a
//! reference image, video or audio snippet.
//!
//! The job is split behind small traits: an [`EmbeddingProvider`] (TwelveLabs Marengo on Amazon
//! Bedrock in `crossmodal-bedrock`) embeds text and media into one space; a [`MediaStore`] keeps
//! originals; a [`VectorIndex`] answers cosine k-NN queries; a [`CrossModalSearcher`] applies the
//! [`RoutingRules`] (which space to search for which query and target kind), fuses and ranks; an
//! [`Ingestor`] validates, deduplicates, stores, embeds (through an [`EmbeddingCache`]) and
//! indexes, recording each asset's status in an [`AssetCatalog`]. [`Engine`] owns all four.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use crossmodal_core::*;
//! use std::sync::Arc;
//!
//! // A stand-in provider for this example only; use `crossmodal_bedrock::MarengoProvider`.
//! struct Toy(ModelInfo);
//! #[async_trait::async_trait]
//! impl EmbeddingProvider for Toy {
//!     fn model(&self) -> &ModelInfo { &self.0 }
//!     async fn embed_text(&self, text: &str) -> Result<Vec<f32>> {
//!         Ok(if text.contains("tone") { vec![0.0, 1.0] } else { vec![1.0, 0.0] })
//!     }
//!     async fn embed_media(&self, m: &MediaInput) -> Result<Vec<Embedding>> {
//!         let v = if m.kind() == MediaKind::Audio { vec![0.1, 1.0] } else { vec![1.0, 0.1] };
//!         Ok(self.0.spaces_for(m.kind()).iter()
//!             .map(|s| Embedding { space: *s, segment: None, vector: v.clone() }).collect())
//!     }
//! }
//!
//! let dir = tempfile::tempdir().unwrap();
//! let model = ModelInfo { id: "toy".into(), dimension: 2, ..ModelInfo::marengo_3_0() };
//! let engine = Engine::open_local(dir.path(), Arc::new(Toy(model))).await.unwrap();
//!
//! // A one-second 8 kHz WAV file.
//! let mut wav = std::io::Cursor::new(Vec::new());
//! let spec = hound::WavSpec { channels: 1, sample_rate: 8000, bits_per_sample: 16,
//!                             sample_format: hound::SampleFormat::Int };
//! let mut w = hound::WavWriter::new(&mut wav, spec).unwrap();
//! for i in 0..8000 { w.write_sample(((i as f32 * 0.3).sin() * 9000.0) as i16).unwrap(); }
//! w.finalize().unwrap();
//!
//! let report = engine.ingest(IngestItem::bytes(wav.into_inner(), "beep.wav")).await.unwrap();
//! assert_eq!(report.outcome, IngestOutcome::Indexed);
//! let results = engine.search(&Query::text("a pure tone").mode(SearchMode::Audio)).await.unwrap();
//! assert_eq!(results.hits[0].display_name.as_deref(), Some("beep.wav"));
//! assert_eq!(results.hits[0].space, EmbeddingSpace::Audio);
//! # });
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

pub mod asset;
pub mod cache;
pub mod catalog;
pub mod duplicates;
pub mod durable;
pub mod embedder;
pub mod embedding;
pub mod engine;
pub mod error;
pub mod index;
pub mod ingest;
pub mod jobs;
pub mod keywords;
pub mod media;
pub mod query_cache;
pub mod retry;
pub mod routing;
pub mod search;
pub mod storage;
pub mod store;
pub mod vector;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
#[cfg(any(test, feature = "fuzz"))]
pub mod fuzz;
#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod test_support;

pub use asset::{AssetId, now_ms};
pub use cache::{CacheKey, EmbeddingCache, MemoryEmbeddingCache, SqliteEmbeddingCache};
pub use catalog::{
    AssetCatalog, AssetPage, AssetQuery, AssetRecord, AssetState, AssetStatus, IngestStage,
    SqliteCatalog, StatusCounts,
};
pub use duplicates::{
    Duplicate, DuplicateFinder, DuplicateKind, DuplicatePair, DuplicateQuery, SegmentPair,
};
pub use embedder::{CachedEmbedder, MediaEmbeddings};
pub use embedding::{
    Embedding, EmbeddingProvider, EmbeddingSpace, MediaContent, MediaInput, ModelInfo, Segment,
    check_text,
};
pub use engine::{Engine, EngineParts, LocalIndex, LocalLayout, LocalOpenReport, LocalOptions};
pub use error::{BoxError, Error, ErrorKind, Result};
pub use index::{
    FieldCondition, FieldTest, FieldValue, Filter, FlatIndex, Hit, HnswConfig, HnswIndex,
    IndexCapabilities, IndexSpec, IndexStats, KindCounts, MetaPatch, OpenReport, Quantization,
    RecordKey, RecordMeta, SearchOptions, SearchTrace, VectorIndex, VectorQuery, VectorRecord,
};
pub use ingest::{
    BatchItemResult, BatchProgress, BatchReport, IngestConfig, IngestItem, IngestOutcome,
    IngestReport, IngestSource, Ingestor, ReconcileReport,
};
pub use jobs::{JobKey, JobLedger, JobRecord, MemoryJobLedger, SqliteJobLedger};
pub use keywords::{
    KeywordHit, KeywordIndex, KeywordMatch, KeywordQuery, MAX_KEYWORD_TERMS, keyword_matches,
    keyword_terms,
};
pub use media::{MediaFormat, MediaKind, MediaLimits, MediaProbe, ValidatedMedia, validate_media};
pub use query_cache::QueryCacheConfig;
pub use retry::RetryPolicy;
pub use routing::{QueryKind, Route, RoutingRule, RoutingRules, SearchMode};
pub use search::{
    ClipMatch, CrossModalSearcher, DEFAULT_KEYWORD_WEIGHT, DEFAULT_PAGE_DEPTH, Fusion, Grouping,
    KeywordScore, MAX_NEGATIVES, MAX_PAGE_DEPTH, Query, QueryInput, QuerySegments, ResultOrder,
    RouteMatch, RouteOutcome, RouteReport, SearchHit, SearchResults,
};
pub use store::{KeyPage, LocalDirStore, MediaKey, MediaRef, MediaStore, MemoryStore, StagedWrite};
pub use vector::{check_vector, normalized};
