//! Vector indexes: the [`VectorIndex`] trait, records, filters, hits, and [`FlatIndex`], the exact
//! reference every approximate index is checked against.
//!
//! Implementations: [`FlatIndex`] (exact), [`HnswIndex`] (the embedded default: HNSW graphs,
//! optionally int8), both in memory or durable in a directory over one storage engine (a
//! write-ahead log, background checkpoints and compactions, one writer per directory), and
//! `crossmodal_opensearch::OpenSearchIndex` (distributed).
//!
//! **`Hit::score` is cosine similarity in [-1, 1] in every backend.**

mod fields;
mod filter;
mod flat;
mod hnsw;
pub(crate) mod tables;
#[cfg(test)]
mod tests;

pub use fields::{
    FieldCondition, FieldTest, FieldValue, MAX_FIELD_NAME, MAX_FIELD_TEXT, MAX_FIELDS, MAX_TAG,
    MetaPatch, check_field, check_tag,
};
pub use filter::{Filter, KindCounts};
pub use flat::FlatIndex;
pub(crate) use flat::run_blocking;
pub use hnsw::{HnswConfig, HnswIndex, MAX_EF, Quantization, SearchOptions};
pub use tables::OpenReport;
pub use tables::search::SearchTrace;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::asset::AssetId;
use crate::embedding::{EmbeddingSpace, Segment};
use crate::error::{Error, ErrorKind, Result};
use crate::media::{MediaFormat, MediaKind};
use crate::vector::check_vector;

/// Which model an index's vectors come from. An index refuses records and queries of any other.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IndexSpec {
    /// Model id the vectors come from.
    pub model_id: String,
    /// Vector dimension.
    pub dimension: usize,
}

impl IndexSpec {
    /// A spec for `model_id` vectors of `dimension`.
    pub fn new(model_id: impl Into<String>, dimension: usize) -> Self {
        IndexSpec {
            model_id: model_id.into(),
            dimension,
        }
    }

    /// The spec of a model.
    pub fn for_model(model: &crate::ModelInfo) -> Self {
        IndexSpec::new(model.id.clone(), model.dimension)
    }

    /// Checks that another spec (a reloaded snapshot, an existing remote index) is this one.
    pub fn check_same(&self, other: &IndexSpec) -> Result<()> {
        if self != other {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "index was built for model {} ({} dims), not {} ({} dims); vectors of different models never mix",
                    other.model_id, other.dimension, self.model_id, self.dimension
                ),
            ));
        }
        Ok(())
    }
}

/// Metadata stored with every vector, usable in filters and returned with hits.
///
/// ```
/// use crossmodal_core::{FieldValue, MediaFormat, MediaKind, RecordMeta};
/// let meta = RecordMeta::new(MediaKind::Video, MediaFormat::Mp4)
///     .tags(["castle"])
///     .name("castle_siege_v3.mp4")
///     .duration_ms(30_000)
///     .field("campaign", "summer");
/// assert_eq!(meta.fields["campaign"], FieldValue::from("summer"));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RecordMeta {
    /// Media kind of the asset.
    pub kind: MediaKind,
    /// Format of the asset.
    pub format: MediaFormat,
    /// Tags of the asset.
    #[serde(default)]
    pub tags: Vec<String>,
    /// When the asset was ingested, ms since the Unix epoch.
    pub created_at_ms: i64,
    /// The asset's display name (keyword search matches it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Length of the asset's media (audio and video), ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// The user's own fields.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, FieldValue>,
}

impl RecordMeta {
    /// Metadata of a `kind` asset in `format`, created at time 0, no tags or fields.
    pub fn new(kind: MediaKind, format: MediaFormat) -> Self {
        RecordMeta {
            kind,
            format,
            tags: Vec::new(),
            created_at_ms: 0,
            name: None,
            duration_ms: None,
            fields: BTreeMap::new(),
        }
    }

    /// Sets the tags.
    pub fn tags(mut self, tags: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.tags = tags.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the creation time.
    pub fn created_at_ms(mut self, ms: i64) -> Self {
        self.created_at_ms = ms;
        self
    }

    /// Sets the display name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the media length.
    pub fn duration_ms(mut self, ms: u64) -> Self {
        self.duration_ms = Some(ms);
        self
    }

    /// Sets a user field.
    pub fn field(mut self, key: impl Into<String>, value: impl Into<FieldValue>) -> Self {
        self.fields.insert(key.into(), value.into());
        self
    }
}

/// Identifies one vector: asset, space, and position among the asset's vectors in that space.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RecordKey {
    /// The asset.
    pub asset_id: AssetId,
    /// The space.
    pub space: EmbeddingSpace,
    /// Position among the asset's vectors in this space (0 for a single vector).
    pub seq: u32,
}

impl RecordKey {
    /// A document id usable in remote indexes: `<asset>:<space>:<seq>`.
    pub fn doc_id(&self) -> String {
        format!("{}:{}:{}", self.asset_id, self.space, self.seq)
    }
}

/// One vector with its identity and metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VectorRecord {
    /// The asset the vector describes.
    pub asset_id: AssetId,
    /// The space it lives in.
    pub space: EmbeddingSpace,
    /// Position among the asset's vectors in this space.
    pub seq: u32,
    /// The clip it describes, if any.
    pub segment: Option<Segment>,
    /// The vector (any length-scaling; indexes compare by cosine).
    pub vector: Vec<f32>,
    /// Filterable metadata.
    pub meta: RecordMeta,
}

impl VectorRecord {
    /// The record's identity.
    pub fn key(&self) -> RecordKey {
        RecordKey {
            asset_id: self.asset_id.clone(),
            space: self.space,
            seq: self.seq,
        }
    }
}

/// A k-nearest-neighbour query against one space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VectorQuery {
    /// The space to search.
    pub space: EmbeddingSpace,
    /// The query vector.
    pub vector: Vec<f32>,
    /// How many hits (vectors, not assets) to return at most.
    pub k: usize,
    /// Conditions every hit meets, applied inside the search.
    pub filter: Filter,
}

impl VectorQuery {
    /// A query for the `k` nearest vectors to `vector` in `space`, unfiltered.
    pub fn new(space: EmbeddingSpace, vector: Vec<f32>, k: usize) -> Self {
        VectorQuery {
            space,
            vector,
            k,
            filter: Filter::default(),
        }
    }

    /// Adds a filter.
    pub fn filter(mut self, filter: Filter) -> Self {
        self.filter = filter;
        self
    }
}

/// Largest `k` any index accepts in one query.
pub const MAX_K: usize = 10_000;

/// One matching vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// The asset.
    pub asset_id: AssetId,
    /// The space the vector lives in.
    pub space: EmbeddingSpace,
    /// Position among the asset's vectors in that space.
    pub seq: u32,
    /// The clip that matched, if any.
    pub segment: Option<Segment>,
    /// Cosine similarity to the query, in [-1, 1].
    pub score: f32,
    /// The record's metadata.
    pub meta: RecordMeta,
}

/// Counts and sizes of an index.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IndexStats {
    /// Live vectors per space.
    pub vectors_per_space: BTreeMap<EmbeddingSpace, u64>,
    /// Deleted vectors still occupying space (awaiting compaction).
    pub tombstones: u64,
    /// Distinct assets with at least one live vector.
    pub assets: u64,
    /// Approximate memory held, bytes (0 if unknown, e.g. remote).
    pub memory_bytes: u64,
}

impl IndexStats {
    /// Live vectors in all spaces.
    pub fn vectors(&self) -> u64 {
        self.vectors_per_space.values().sum()
    }

    /// Live vectors in `space`.
    pub fn vectors_in(&self, space: EmbeddingSpace) -> u64 {
        self.vectors_per_space.get(&space).copied().unwrap_or(0)
    }
}

/// What an index can do, so a searcher can plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexCapabilities {
    /// Filters are applied inside the search (k valid hits when they exist).
    pub filter_push_down: bool,
    /// Results are exact (every approximate index is checked against an exact one).
    pub exact: bool,
    /// Survives a restart.
    pub persistent: bool,
    /// Largest batch `upsert` takes in one call (larger batches are split by the caller).
    pub max_batch: usize,
}

/// Stores vectors and answers k-NN queries by cosine similarity.
///
/// Contract (checked by `crossmodal_core::conformance`): `upsert` validates every record (dimension,
/// finite, non-zero) before changing anything and replaces records with the same [`RecordKey`]
/// (a remote index that can still reject single documents after validation writes the others
/// and returns an error naming every rejected one: nothing is dropped silently);
/// `search` returns at most `k` hits matching the filter, best first, with `score` = cosine in
/// [-1, 1]; `delete_asset` removes every vector of the asset in every space.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait VectorIndex: Send + Sync {
    /// The model and dimension this index holds.
    fn spec(&self) -> &IndexSpec;

    /// What the index can do.
    fn capabilities(&self) -> IndexCapabilities;

    /// Inserts or replaces records. All-or-nothing validation: one bad record rejects the batch.
    async fn upsert(&self, records: Vec<VectorRecord>) -> Result<()>;

    /// The nearest vectors to the query that match its filter, best first.
    async fn search(&self, query: &VectorQuery) -> Result<Vec<Hit>>;

    /// Removes every vector of `asset`; returns how many were removed.
    async fn delete_asset(&self, asset: &AssetId) -> Result<usize>;

    /// Counts and sizes.
    async fn stats(&self) -> Result<IndexStats>;

    /// Live vectors per space: what a searcher checks on every query to report routes whose
    /// space is empty. Indexes that can answer this more cheaply than [`stats`](Self::stats)
    /// (which may count distinct assets) override it.
    async fn space_counts(&self) -> Result<BTreeMap<EmbeddingSpace, u64>> {
        Ok(self.stats().await?.vectors_per_space)
    }

    /// Applies `patch` to the metadata of every vector of `asset` in place (no re-embedding);
    /// returns how many vectors changed (0 for an asset the index does not hold). Validates
    /// the patch first (`InvalidInput`, nothing changed). Indexes that cannot update in place
    /// return `Unsupported`.
    async fn update_meta(&self, _asset: &AssetId, _patch: &MetaPatch) -> Result<usize> {
        Err(Error::unsupported(
            "this index cannot update metadata in place",
        ))
    }

    /// Live vectors of `asset` in every space, if the index can tell cheaply (`None`: it
    /// cannot; the engine's reconciliation at open then skips this index).
    async fn asset_vectors(&self, _asset: &AssetId) -> Result<Option<usize>> {
        Ok(None)
    }

    /// Makes everything written so far durable and visible to searches (a log fsync for a
    /// persisted index, a refresh for a remote one, a no-op for an in-memory one).
    async fn flush(&self) -> Result<()> {
        Ok(())
    }

    /// Waits until background work that changes how the same content is searched is done (an
    /// HNSW index linking new vectors into its graph: until then they are scanned exactly, so
    /// a result can shift between two identical searches). Searches never need it; a caller
    /// that pages through results right after a bulk load, or compares runs, may. The
    /// default returns at once.
    async fn settle(&self) -> Result<()> {
        Ok(())
    }
}

/// Validates a batch of records against a spec (used by every index before it changes anything).
pub fn check_records(spec: &IndexSpec, records: &[VectorRecord]) -> Result<()> {
    for r in records {
        check_vector(&r.vector, spec.dimension).map_err(|e| {
            Error::invalid_input(e.message().to_string())
                .with_context("asset", r.asset_id.short())
                .with_context("space", r.space)
                .with_context("seq", r.seq)
        })?;
        if let Some(s) = r.segment {
            Segment::new(s.start_sec, s.end_sec)
                .map_err(|e| e.with_context("asset", r.asset_id.short()))?;
        }
        check_meta(&r.meta).map_err(|e| e.with_context("asset", r.asset_id.short()))?;
    }
    Ok(())
}

/// Validates record metadata: at most [`MAX_FIELDS`] well-formed fields, well-formed tags.
pub fn check_meta(meta: &RecordMeta) -> Result<()> {
    if meta.fields.len() > MAX_FIELDS {
        return Err(Error::invalid_input(format!(
            "an asset holds at most {MAX_FIELDS} fields, got {}",
            meta.fields.len()
        )));
    }
    for (k, v) in &meta.fields {
        check_field(k, v)?;
    }
    for t in &meta.tags {
        check_tag(t)?;
    }
    Ok(())
}

/// Validates a query against a spec: dimension, finite, non-zero, `1 <= k <= MAX_K`.
pub fn check_query(spec: &IndexSpec, query: &VectorQuery) -> Result<()> {
    check_vector(&query.vector, spec.dimension)?;
    query.filter.check()?;
    if query.k == 0 || query.k > MAX_K {
        return Err(Error::invalid_input(format!(
            "k must be between 1 and {MAX_K}, got {}",
            query.k
        )));
    }
    Ok(())
}
