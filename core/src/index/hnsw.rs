//! `HnswIndex`: the embedded default's approximate index, one HNSW graph per space over the
//! shared storage engine, optionally walking int8 codes with an exact f32 re-rank.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use crossmodal_hnsw::GraphConfig;

use super::flat::run_blocking;
use super::tables::search::{Plan, SearchTrace};
use super::tables::{Layout, OpenReport, Options, Tables};
use super::{
    Hit, IndexCapabilities, IndexSpec, IndexStats, MetaPatch, VectorIndex, VectorQuery,
    VectorRecord,
};
use crate::asset::AssetId;
use crate::embedding::EmbeddingSpace;
use crate::error::{Error, Result};
use crate::storage::StorageConfig;

/// Largest `ef_search` accepted (a sanity bound, far above useful values).
pub const MAX_EF: usize = 100_000;

/// How the graph walk reads vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Quantization {
    /// f32 unit vectors in memory (about 1.1x the raw vector bytes with links and rows).
    #[default]
    None,
    /// Int8 codes (one byte a component plus a scale) in memory for the walk; the best
    /// candidates are re-ranked exactly with their f32 vectors, read from the vector file
    /// (about 0.35x the raw vector bytes resident at 512 dims).
    Int8,
}

/// Settings of an [`HnswIndex`].
///
/// ```
/// use crossmodal_core::{HnswConfig, Quantization};
/// let config = HnswConfig::default().m(24).ef_search(64).quantization(Quantization::Int8);
/// assert_eq!((config.m, config.ef_construction), (24, 200));
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct HnswConfig {
    /// Links per node and upper layer (`M`; layer 0 keeps `2 * m`). Default 16.
    pub m: usize,
    /// Candidate list while inserting. Default 200.
    pub ef_construction: usize,
    /// Candidate list while searching, raised to `k`. Default 64 (recall@10 >= 0.97 on the
    /// conformance data; see the crate README for the sweep).
    pub ef_search: usize,
    /// How the walk reads vectors. Default f32.
    pub quantization: Quantization,
    /// Int8 mode, exact scans over the codes: the best `k * rerank` rows by code are re-ranked
    /// with their f32 vectors. Default 4. A graph walk re-ranks every candidate it keeps (`ef`
    /// of them, at least `k`): raise `ef_search` for a larger pool there.
    pub rerank: usize,
    /// A search whose candidate vectors (live vectors times the filter's estimated
    /// selectivity) add up to at most this many bytes scans them exactly instead of walking
    /// the graph. Default 16 MiB; `0`: always walk.
    pub exact_scan_bytes: usize,
    /// A filtered search whose filter is estimated to match less than this share of a space
    /// scans the matching rows exactly (a walk must visit about `ef / selectivity` nodes).
    /// Default 0.15. An upper bound: a walk costs about `1 / selectivity` and a scan
    /// `selectivity x rows`, so a space of more than about 130,000 rows scans only below
    /// `sqrt(3000 / rows)` (7.7% at 500,000 rows, where a walk at 14% measured 3.4x faster
    /// than the scan).
    pub exact_filter_selectivity: f64,
    /// Threads that link new vectors into the graph (0: every core). Default 0.
    pub threads: usize,
    /// Seed of the graph's level draws. Default fixed, so builds are reproducible.
    pub seed: u64,
    /// Log, checkpoint and compaction settings.
    pub storage: StorageConfig,
}

impl Default for HnswConfig {
    fn default() -> Self {
        HnswConfig {
            m: 16,
            ef_construction: 200,
            ef_search: 64,
            quantization: Quantization::None,
            rerank: 4,
            exact_scan_bytes: 16 << 20,
            exact_filter_selectivity: 0.15,
            threads: 0,
            seed: GraphConfig::default().seed,
            storage: StorageConfig::default(),
        }
    }
}

impl HnswConfig {
    /// Sets `m`.
    pub fn m(mut self, m: usize) -> Self {
        self.m = m;
        self
    }

    /// Sets `ef_construction`.
    pub fn ef_construction(mut self, ef: usize) -> Self {
        self.ef_construction = ef;
        self
    }

    /// Sets `ef_search`.
    pub fn ef_search(mut self, ef: usize) -> Self {
        self.ef_search = ef;
        self
    }

    /// Sets the quantization.
    pub fn quantization(mut self, q: Quantization) -> Self {
        self.quantization = q;
        self
    }

    /// Sets the re-rank factor of int8 mode.
    pub fn rerank(mut self, factor: usize) -> Self {
        self.rerank = factor;
        self
    }

    /// Sets the candidate bytes up to which searches scan exactly (`0`: never by size).
    pub fn exact_scan_bytes(mut self, bytes: usize) -> Self {
        self.exact_scan_bytes = bytes;
        self
    }

    /// Sets the selectivity below which filtered searches scan exactly.
    pub fn exact_filter_selectivity(mut self, share: f64) -> Self {
        self.exact_filter_selectivity = share;
        self
    }

    /// Always walks the graph (no planned exact scans; a short walk is still completed).
    pub fn always_walk_graph(self) -> Self {
        self.exact_scan_bytes(0).exact_filter_selectivity(0.0)
    }

    /// Sets the linking threads (0: every core).
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n;
        self
    }

    /// Sets the level seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the storage settings.
    pub fn storage(mut self, storage: StorageConfig) -> Self {
        self.storage = storage;
        self
    }

    fn graph(&self) -> GraphConfig {
        GraphConfig::default()
            .m(self.m)
            .ef_construction(self.ef_construction)
            .seed(self.seed)
    }

    /// Checks every value; `InvalidInput` names the first bad one.
    pub fn validate(&self) -> Result<()> {
        self.graph()
            .validate()
            .map_err(|e| Error::invalid_input(format!("hnsw {e}")))?;
        if !(1..=MAX_EF).contains(&self.ef_search) {
            return Err(Error::invalid_input(format!(
                "hnsw ef_search must be between 1 and {MAX_EF}, got {}",
                self.ef_search
            )));
        }
        if !(1..=64).contains(&self.rerank) {
            return Err(Error::invalid_input(format!(
                "hnsw rerank must be between 1 and 64, got {}",
                self.rerank
            )));
        }
        if !(self.exact_filter_selectivity.is_finite()
            && (0.0..=1.0).contains(&self.exact_filter_selectivity))
        {
            return Err(Error::invalid_input(format!(
                "hnsw exact_filter_selectivity must be in [0, 1], got {}",
                self.exact_filter_selectivity
            )));
        }
        self.storage.validate()
    }

    fn options(&self) -> Options {
        let threads = if self.threads == 0 {
            std::thread::available_parallelism().map_or(1, usize::from)
        } else {
            self.threads
        };
        Options {
            layout: Layout::Graph {
                config: self.graph(),
                int8: self.quantization == Quantization::Int8,
                threads,
            },
            storage: self.storage.clone(),
            plan: self.plan(),
        }
    }

    fn plan(&self) -> Plan {
        Plan {
            exact_scan_bytes: self.exact_scan_bytes,
            exact_filter_selectivity: self.exact_filter_selectivity,
            rerank: self.rerank,
        }
    }
}

/// Per-query overrides of the configured search settings (see [`HnswIndex::search_with`]).
///
/// ```
/// use crossmodal_core::SearchOptions;
/// let options = SearchOptions::default().ef(256).always_walk_graph();
/// assert_eq!(options.ef, Some(256));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct SearchOptions {
    /// `ef` for this query (raised to `k`); `None`: `HnswConfig::ef_search`.
    pub ef: Option<usize>,
    /// Walk the graph even where the plan would scan exactly (benchmarks, recall checks).
    pub always_walk_graph: bool,
}

impl SearchOptions {
    /// Sets `ef`.
    pub fn ef(mut self, ef: usize) -> Self {
        self.ef = Some(ef);
        self
    }

    /// Walks the graph even where the plan would scan exactly.
    pub fn always_walk_graph(mut self) -> Self {
        self.always_walk_graph = true;
        self
    }
}

/// An approximate nearest-neighbour index: one HNSW graph per [`EmbeddingSpace`] (the
/// `crossmodal-hnsw` graph: compact links, its own concurrent insert), cosine similarity,
/// filters applied inside the walk, deletes as tombstones with background compaction, and the
/// durable storage engine of this crate (a write-ahead log: making one more asset durable costs
/// its own bytes; checkpoints in the background; one writer per directory).
///
/// Writes are searchable when `upsert` returns: rows not yet linked into the graph are scanned
/// exactly beside the walk until the background linker has them. [`flush`](VectorIndex::flush)
/// makes them durable.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use crossmodal_core::{AssetId, EmbeddingSpace, HnswConfig, HnswIndex, IndexSpec, MediaFormat,
///                       MediaKind, RecordMeta, VectorIndex, VectorQuery, VectorRecord};
///
/// let dir = tempfile::tempdir().unwrap();
/// let spec = IndexSpec::new("demo-model", 3);
/// let index = HnswIndex::open(dir.path(), spec.clone(), HnswConfig::default()).unwrap();
/// let meta = RecordMeta::new(MediaKind::Image, MediaFormat::Png);
/// index.upsert(vec![VectorRecord {
///     asset_id: AssetId::from_content(b"red square"), space: EmbeddingSpace::Visual, seq: 0,
///     segment: None, vector: vec![1.0, 0.0, 0.0], meta,
/// }]).await.unwrap();
/// index.flush().await.unwrap(); // durable: one log record, fsynced
/// drop(index);
///
/// let reopened = HnswIndex::open(dir.path(), spec, HnswConfig::default()).unwrap();
/// let hits = reopened.search(&VectorQuery::new(EmbeddingSpace::Visual, vec![2.0, 0.1, 0.0], 5)).await.unwrap();
/// assert_eq!(hits.len(), 1);
/// assert!(hits[0].score > 0.99);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct HnswIndex {
    tables: Arc<Tables>,
    config: Arc<HnswConfig>,
}

impl HnswIndex {
    /// The durable index in `dir` (created if needed; locked while open). Blocking: from async
    /// code call it in `spawn_blocking`.
    ///
    /// Errors: `InvalidInput` for a bad config; `Conflict` if another process holds the
    /// directory or it was built for another model or dimension; `Corrupt`, naming the file,
    /// if a data file or the log is damaged (a torn log tail is dropped, not an error).
    pub fn open(dir: impl AsRef<Path>, spec: IndexSpec, config: HnswConfig) -> Result<Self> {
        config.validate()?;
        let tables = Tables::open(Some(dir.as_ref()), spec, config.options())?;
        Ok(HnswIndex {
            tables: Arc::new(tables),
            config: Arc::new(config),
        })
    }

    /// An empty in-memory index.
    pub fn new(spec: IndexSpec, config: HnswConfig) -> Result<Self> {
        config.validate()?;
        Ok(HnswIndex {
            tables: Arc::new(Tables::in_memory(spec, config.options())),
            config: Arc::new(config),
        })
    }

    /// An empty in-memory index with the default configuration.
    pub fn in_memory(spec: IndexSpec) -> Self {
        let config = HnswConfig::default();
        HnswIndex {
            tables: Arc::new(Tables::in_memory(spec, config.options())),
            config: Arc::new(config),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &HnswConfig {
        &self.config
    }

    /// The index directory, if durable.
    pub fn dir(&self) -> Option<&Path> {
        self.tables.shared.dir.as_deref()
    }

    /// What opening found: checkpoint loaded, log records replayed, torn tail dropped,
    /// vectors still to link, graphs being rebuilt, leftovers removed.
    pub fn open_report(&self) -> &OpenReport {
        &self.tables.report
    }

    /// Inserts or replaces records (blocking). All are validated before anything changes.
    pub fn upsert_sync(&self, records: Vec<VectorRecord>) -> Result<()> {
        self.tables.upsert(records)
    }

    /// Searches with the configured settings (blocking).
    pub fn search_sync(&self, query: &VectorQuery) -> Result<Vec<Hit>> {
        Ok(self.search_with(query, &SearchOptions::default())?.0)
    }

    /// Searches with per-query overrides, also reporting how the search ran.
    pub fn search_with(
        &self,
        query: &VectorQuery,
        options: &SearchOptions,
    ) -> Result<(Vec<Hit>, SearchTrace)> {
        let mut plan = self.config.plan();
        if options.always_walk_graph {
            plan.exact_scan_bytes = 0;
            plan.exact_filter_selectivity = 0.0;
        }
        let ef = options.ef.unwrap_or(self.config.ef_search).clamp(1, MAX_EF);
        let mut trace = SearchTrace::default();
        let hits = self.tables.search_planned(query, ef, &plan, &mut trace)?;
        Ok((hits, trace))
    }

    /// Removes every vector of `asset` (blocking).
    pub fn delete_asset_sync(&self, asset: &AssetId) -> Result<usize> {
        self.tables.delete_asset(asset)
    }

    /// Applies a metadata patch to every vector of `asset` (blocking).
    pub fn update_meta_sync(&self, asset: &AssetId, patch: &MetaPatch) -> Result<usize> {
        self.tables.update_meta(asset, patch)
    }

    /// Counts and sizes.
    pub fn stats_sync(&self) -> IndexStats {
        self.tables.stats()
    }

    /// Makes every write durable (fsync of the log; blocking).
    pub fn flush_sync(&self) -> Result<()> {
        self.tables.flush()
    }

    /// Writes a checkpoint now (blocking; a no-op in memory). Checkpoints also run in the
    /// background when the log has grown.
    pub fn checkpoint(&self) -> Result<()> {
        self.tables.checkpoint()
    }

    /// Rebuilds every space holding tombstones without them (blocking; searches and writes
    /// continue meanwhile). Compactions also run in the background past
    /// `StorageConfig::compaction_ratio`.
    pub fn compact(&self) -> Result<()> {
        self.tables.compact()
    }

    /// Blocks until every vector written so far is linked into its graph (searches do not need
    /// this: unlinked vectors are scanned exactly).
    pub fn wait_linked(&self) {
        self.tables.wait_linked();
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Tables) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let tables = Arc::clone(&self.tables);
        run_blocking(move || f(&tables)).await
    }
}

#[async_trait]
impl VectorIndex for HnswIndex {
    fn spec(&self) -> &IndexSpec {
        self.tables.spec()
    }

    fn capabilities(&self) -> IndexCapabilities {
        IndexCapabilities {
            filter_push_down: true,
            exact: false,
            persistent: self.tables.shared.dir.is_some(),
            max_batch: usize::MAX,
        }
    }

    async fn upsert(&self, records: Vec<VectorRecord>) -> Result<()> {
        self.blocking(move |t| t.upsert(records)).await
    }

    async fn search(&self, query: &VectorQuery) -> Result<Vec<Hit>> {
        let query = query.clone();
        let ef = self.config.ef_search;
        let plan = self.config.plan();
        self.blocking(move |t| t.search_planned(&query, ef, &plan, &mut SearchTrace::default()))
            .await
    }

    async fn delete_asset(&self, asset: &AssetId) -> Result<usize> {
        let asset = asset.clone();
        self.blocking(move |t| t.delete_asset(&asset)).await
    }

    async fn stats(&self) -> Result<IndexStats> {
        Ok(self.tables.stats())
    }

    async fn space_counts(&self) -> Result<BTreeMap<EmbeddingSpace, u64>> {
        Ok(self.tables.space_counts())
    }

    async fn update_meta(&self, asset: &AssetId, patch: &MetaPatch) -> Result<usize> {
        let (asset, patch) = (asset.clone(), patch.clone());
        self.blocking(move |t| t.update_meta(&asset, &patch)).await
    }

    async fn asset_vectors(&self, asset: &AssetId) -> Result<Option<usize>> {
        Ok(Some(self.tables.asset_vectors(asset)))
    }

    async fn flush(&self) -> Result<()> {
        self.blocking(|t| t.flush()).await
    }

    async fn settle(&self) -> Result<()> {
        self.blocking(|t| {
            t.wait_linked();
            Ok(())
        })
        .await
    }
}
