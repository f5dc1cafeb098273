//! # crossmodal-opensearch
//!
//! The distributed backend of crossmodal: [`OpenSearchIndex`], a [`crossmodal_core::VectorIndex`] in
//! an OpenSearch k-NN index, and [`OpenSearchCatalog`], a [`crossmodal_core::AssetCatalog`] in a
//! second index, on the official [`opensearch`] client. Works with self-managed OpenSearch,
//! Amazon OpenSearch Service (SigV4 `es`) and Amazon OpenSearch Serverless vector search
//! collections (SigV4 `aoss`), which play by other rules ([`Deployment`]).
//!
//! - **Mapping**: `index.knn: true`; one `knn_vector` field per
//!   [`EmbeddingSpace`](crossmodal_core::EmbeddingSpace) (`vector_visual`, `vector_visual_text`,
//!   `vector_audio`, `vector_transcription`) with the model's dimension, HNSW on the configured
//!   [`Engine`] (faiss by default, or lucene) and [`SpaceType`] (`cosinesimil` by default);
//!   keyword `key` (the record key), `asset_id`, `space`, `kind`, `format`, `tags`; `seq`; float
//!   `start_sec` / `end_sec`; date `created_at`, `written_at`; the model id and dimension in
//!   `_meta`. An existing index built for another model, dimension or space is refused with
//!   `ErrorKind::Conflict`.
//! - **Writes**: `_bulk` in batches, every item's result checked; documents rejected for load
//!   are resent with backoff; what is still refused is reported document by document
//!   ([`BulkReport`]). On a cluster the record key is the `_id` and deletes by asset use
//!   `_delete_by_query`; on Serverless the service assigns ids, an upsert replaces a key's
//!   earlier documents by searching them and deleting them after the new one is written,
//!   deletes search the ids and send bulk `delete` items, and
//!   [`flush`](crossmodal_core::VectorIndex::flush) waits until the handle's writes are
//!   searchable (about 60 s there; no refresh exists).
//! - **Search**: `{"knn": {"vector_<space>": {"vector", "k", "filter"}}}` with the filter
//!   **inside** the knn clause (OpenSearch's efficient filtering: `k` matching hits whenever that
//!   many exist, never a post-filter that returns fewer), vectors excluded from `_source`, and
//!   OpenSearch's score converted back to cosine similarity (`cos = 2 * score - 1` for
//!   `cosinesimil`), so [`Hit::score`](crossmodal_core::Hit::score) means the same in every backend.
//! - **Failures**: 429 / 502 / 503 / 504, refused connections and time-outs are retried under the
//!   configured [`RetryPolicy`](crossmodal_core::RetryPolicy) and surface as temporary errors
//!   (`RateLimited`, `Unavailable`, `Timeout`).
//!
//! Versions: faiss with `cosinesimil` (the default) needs OpenSearch 2.19; faiss with
//! [`SpaceType::InnerProduct`] 2.13 (this crate stores and queries unit vectors, so the inner
//! product is the cosine); [`Engine::Lucene`] 2.4 (efficient filtering), with `innerproduct`
//! 2.13; per-query `ef_search` 2.16. [`OpenSearchIndex::connect`] checks the version the cluster
//! reports against these floors ([`OpenSearchVersion`]).
//!
//! Feature `aws-auth` (default): SigV4 with the AWS default credential chain. Without it the
//! crate compiles no AWS SDK crate.
//!
//! ```no_run
//! # async fn demo() -> crossmodal_core::Result<()> {
//! use crossmodal_core::{AssetCatalog, AssetQuery, IndexSpec, ModelInfo, VectorIndex};
//! use crossmodal_opensearch::{OpenSearchCatalog, OpenSearchConfig, OpenSearchIndex};
//!
//! // A local cluster; for Amazon OpenSearch Service use `OpenSearchConfig::aws(url, region)`,
//! // for Serverless `OpenSearchConfig::serverless(url, region)`.
//! let config = OpenSearchConfig::builder("https://localhost:9200")
//!     .basic_auth("admin", "admin-password")
//!     .index("media")
//!     .build()?;
//! let index = OpenSearchIndex::connect(config.clone(), IndexSpec::for_model(&ModelInfo::marengo_3_0())).await?;
//! let catalog = OpenSearchCatalog::connect(config).await?;
//! println!("{} vectors, {} assets", index.stats().await?.vectors(), catalog.counts().await?.total());
//! let page = catalog.list(&AssetQuery::new().limit(20)).await?;
//! # let _ = page; Ok(()) }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

mod bulk;
mod catalog;
mod client;
mod config;
mod error;
mod index;
mod keywords;
mod mapping;
mod meta;
mod query;
mod recent;
mod version;
mod visibility;

pub use bulk::{BulkItemError, BulkReport};
pub use catalog::OpenSearchCatalog;
pub use config::{
    AwsService, Deployment, Engine, OpenSearchAuth, OpenSearchConfig, OpenSearchConfigBuilder,
    RefreshPolicy, SpaceType,
};
pub use index::OpenSearchIndex;
pub use mapping::vector_field;
pub use version::OpenSearchVersion;

/// The `aws-config` crate SigV4 signing loads credentials with, so callers can build the
/// [`SdkConfig`](aws_config::SdkConfig) of [`OpenSearchConfigBuilder::sigv4_with_config`]
/// without a separate, possibly different, dependency. Feature `aws-auth`.
#[cfg(feature = "aws-auth")]
pub use aws_config;

/// The `opensearch` crate this backend is built on, so callers can use
/// [`OpenSearchIndex::client`] without a separate, possibly different, dependency.
pub use opensearch;
