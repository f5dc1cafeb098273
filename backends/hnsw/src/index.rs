//! [`HnswIndex`]: the `VectorIndex` implementation.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::{Mutex, RwLock};

use crossmodal_core::vector::normalized;
use crossmodal_core::{
    AssetId, EmbeddingSpace, Error, Hit, IndexCapabilities, IndexSpec, IndexStats, Result,
    VectorIndex, VectorQuery, VectorRecord,
};

use crossmodal_core::index::{check_query, check_records};

use crate::config::HnswConfig;
use crate::persist::{self, OpenReport};
use crate::space::{GraphSearch, INSERT_CHUNK, Plan, Row, SearchTrace, SpaceState, build_space};

type SpaceHandle = Arc<RwLock<SpaceState>>;

/// Per-query overrides of the configured search settings (see [`HnswIndex::search_with`]).
///
/// ```
/// use crossmodal_hnsw::{GraphSearch, SearchOptions};
/// let options = SearchOptions::default().ef(256).always_walk_graph();
/// assert_eq!(options.ef, Some(256));
/// assert_eq!(options.graph_search, None::<GraphSearch>);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct SearchOptions {
    /// `ef` for this query (raised to `k`); `None`: `HnswConfig::ef_search`.
    pub ef: Option<usize>,
    /// Graph search implementation for this query; `None`: `HnswConfig::graph_search`.
    pub graph_search: Option<GraphSearch>,
    /// Walk the graph even where the plan would scan exactly (benchmarks, recall checks).
    pub always_walk_graph: bool,
}

impl SearchOptions {
    /// Sets `ef`.
    pub fn ef(mut self, ef: usize) -> Self {
        self.ef = Some(ef);
        self
    }

    /// Sets the graph search implementation.
    pub fn graph_search(mut self, search: GraphSearch) -> Self {
        self.graph_search = Some(search);
        self
    }

    /// Walks the graph even where the plan would scan exactly.
    pub fn always_walk_graph(mut self) -> Self {
        self.always_walk_graph = true;
        self
    }
}

/// An approximate nearest-neighbour index on [hnsw_rs](https://crates.io/crates/hnsw_rs): one
/// HNSW graph per [`EmbeddingSpace`], cosine similarity, filters applied inside the graph walk,
/// deletes as tombstones with automatic compaction, and crash-safe snapshots to a directory.
///
/// Concurrency: searches take a per-space read lock for their duration; writers (upsert,
/// delete, compaction, flush) are serialised by a writer mutex, insert into the hnsw_rs graph
/// holding only a read lock (shared with searches; hnsw_rs locks its nodes itself), and take
/// the write lock only to publish the new rows, vectors and links (a copy, no graph work).
/// Searches therefore proceed while a batch is being inserted, and never see half a batch.
/// Compaction builds the new graph beside the old one and swaps it in. The async methods run
/// writes and snapshots on tokio's blocking pool; searches run inline (they are short).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use crossmodal_core::{AssetId, EmbeddingSpace, IndexSpec, MediaFormat, MediaKind, RecordMeta,
///                  VectorIndex, VectorQuery, VectorRecord};
/// use crossmodal_hnsw::{HnswConfig, HnswIndex};
///
/// let dir = tempfile::tempdir().unwrap();
/// let spec = IndexSpec::new("demo-model", 3);
/// let index = HnswIndex::open(dir.path(), spec.clone(), HnswConfig::default()).unwrap();
/// let meta = RecordMeta { kind: MediaKind::Image, format: MediaFormat::Png, tags: vec![], created_at_ms: 0 };
/// index.upsert(vec![VectorRecord {
///     asset_id: AssetId::from_content(b"red square"), space: EmbeddingSpace::Visual, seq: 0,
///     segment: None, vector: vec![1.0, 0.0, 0.0], meta,
/// }]).await.unwrap();
/// index.flush().await.unwrap();
///
/// let reopened = HnswIndex::open(dir.path(), spec, HnswConfig::default()).unwrap();
/// let hits = reopened.search(&VectorQuery::new(EmbeddingSpace::Visual, vec![2.0, 0.1, 0.0], 5)).await.unwrap();
/// assert_eq!(hits.len(), 1);
/// assert!(hits[0].score > 0.99);
/// # });
/// ```
#[derive(Clone)]
pub struct HnswIndex {
    inner: Arc<Inner>,
}

struct Inner {
    spec: IndexSpec,
    config: HnswConfig,
    spaces: RwLock<BTreeMap<EmbeddingSpace, SpaceHandle>>,
    writer: Mutex<WriterState>,
    open_report: OpenReport,
}

struct WriterState {
    generation: u64,
    /// Changes since the last snapshot.
    dirty: bool,
}

impl std::fmt::Debug for HnswIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HnswIndex")
            .field("spec", &self.inner.spec)
            .field("config", &self.inner.config)
            .field(
                "spaces",
                &self.inner.spaces.read().keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl HnswIndex {
    /// An index for `spec` with `config`: loaded from `config.dir` if it holds a snapshot, empty
    /// otherwise (and in memory if `config.dir` is `None`). Blocking (file I/O, possibly a graph
    /// rebuild): from async code call it in `spawn_blocking`.
    ///
    /// Errors: `InvalidInput` for a bad config or a zero dimension; `Conflict` if the snapshot
    /// was built for another model or dimension; `Corrupt`, naming the file, if a snapshot file
    /// is missing or damaged.
    pub fn new(spec: IndexSpec, config: HnswConfig) -> Result<Self> {
        config.validate()?;
        if spec.dimension == 0 {
            return Err(Error::invalid_input("index dimension must be at least 1"));
        }
        let (spaces, open_report) = match &config.dir {
            Some(dir) => {
                let loaded = persist::load(dir, &spec, &config)?;
                (loaded.spaces, loaded.report)
            }
            None => (Vec::new(), OpenReport::default()),
        };
        let generation = open_report.generation;
        Ok(HnswIndex {
            inner: Arc::new(Inner {
                spec,
                spaces: RwLock::new(
                    spaces
                        .into_iter()
                        .map(|(s, state)| (s, Arc::new(RwLock::new(state))))
                        .collect(),
                ),
                writer: Mutex::new(WriterState {
                    generation,
                    dirty: false,
                }),
                config,
                open_report,
            }),
        })
    }

    /// Opens (or creates) the index persisted in `dir`; `config.dir` is replaced by `dir`.
    /// See [`new`](Self::new).
    pub fn open(dir: impl AsRef<Path>, spec: IndexSpec, config: HnswConfig) -> Result<Self> {
        HnswIndex::new(spec, config.dir(dir))
    }

    /// An empty in-memory index with the default configuration. (With a zero dimension every
    /// record and query is rejected as `InvalidInput`.)
    pub fn in_memory(spec: IndexSpec) -> Self {
        HnswIndex {
            inner: Arc::new(Inner {
                spec,
                config: HnswConfig::default(),
                spaces: RwLock::new(BTreeMap::new()),
                writer: Mutex::new(WriterState {
                    generation: 0,
                    dirty: false,
                }),
                open_report: OpenReport::default(),
            }),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &HnswConfig {
        &self.inner.config
    }

    /// The directory snapshots are written to, if any.
    pub fn dir(&self) -> Option<&Path> {
        self.inner.config.dir.as_deref()
    }

    /// What opening found: snapshot generation, graphs loaded or rebuilt, leftovers removed.
    pub fn open_report(&self) -> &OpenReport {
        &self.inner.open_report
    }

    /// Inserts or replaces records (blocking; the async [`VectorIndex::upsert`] runs this on
    /// the blocking pool). All records are validated before anything changes.
    pub fn upsert_sync(&self, records: Vec<VectorRecord>) -> Result<()> {
        self.inner.upsert(records)
    }

    /// Searches with the configured settings (blocking only on a concurrent commit, briefly).
    pub fn search_sync(&self, query: &VectorQuery) -> Result<Vec<Hit>> {
        Ok(self.search_with(query, &SearchOptions::default())?.0)
    }

    /// Searches with a given `ef` (raised to `k`), e.g. to trade recall for speed per query.
    pub fn search_with_ef(&self, query: &VectorQuery, ef: usize) -> Result<Vec<Hit>> {
        Ok(self.search_with(query, &SearchOptions::default().ef(ef))?.0)
    }

    /// Searches with per-query overrides of the configured settings, also reporting how the
    /// search ran (exact scan or graph walk, rounds, final `ef`).
    pub fn search_with(
        &self,
        query: &VectorQuery,
        options: &SearchOptions,
    ) -> Result<(Vec<Hit>, SearchTrace)> {
        let mut trace = SearchTrace::default();
        let hits = self.inner.search(query, options, &mut trace)?;
        Ok((hits, trace))
    }

    /// Removes every vector of `asset` (blocking).
    pub fn delete_asset_sync(&self, asset: &AssetId) -> Result<usize> {
        self.inner.delete_asset(asset)
    }

    /// Counts and sizes (never blocks on writers for long).
    pub fn stats_sync(&self) -> IndexStats {
        self.inner.stats()
    }

    /// Writes a snapshot if anything changed since the last one (blocking; no-op in memory).
    pub fn flush_sync(&self) -> Result<()> {
        self.inner.flush()
    }

    /// Rebuilds every space that holds tombstones from its live vectors (blocking). Searches
    /// keep using the old graph until the new one replaces it.
    pub fn compact(&self) -> Result<()> {
        let _w = self.inner.writer.lock();
        for handle in self.inner.handles() {
            if handle.read().tombstones() > 0 {
                self.inner.compact_space(&handle)?;
            }
        }
        Ok(())
    }

    /// Runs `f` on tokio's blocking pool when inside a runtime, inline otherwise.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = Arc::clone(&self.inner);
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => handle
                .spawn_blocking(move || f(&inner))
                .await
                .map_err(|e| Error::backend(format!("hnsw index task failed: {e}")))?,
            Err(_) => f(&inner),
        }
    }
}

impl Inner {
    fn handles(&self) -> Vec<SpaceHandle> {
        self.spaces.read().values().cloned().collect()
    }

    fn handle(&self, space: EmbeddingSpace) -> Option<SpaceHandle> {
        self.spaces.read().get(&space).cloned()
    }

    fn handle_or_create(&self, space: EmbeddingSpace) -> SpaceHandle {
        if let Some(h) = self.handle(space) {
            return h;
        }
        self.spaces
            .write()
            .entry(space)
            .or_insert_with(|| {
                Arc::new(RwLock::new(SpaceState::empty(
                    &self.config,
                    self.spec.dimension,
                )))
            })
            .clone()
    }

    fn search(
        &self,
        query: &VectorQuery,
        options: &SearchOptions,
        trace: &mut SearchTrace,
    ) -> Result<Vec<Hit>> {
        check_query(&self.spec, query)?;
        let Some(handle) = self.handle(query.space) else {
            return Ok(Vec::new());
        };
        let q = normalized(&query.vector);
        let mut plan = Plan::of(&self.config);
        if let Some(search) = options.graph_search {
            plan.graph_search = search;
        }
        if options.always_walk_graph {
            plan.exact_scan_bytes = 0;
            plan.exact_filter_selectivity = 0.0;
        }
        let ef = options
            .ef
            .unwrap_or(self.config.ef_search)
            .clamp(1, crate::config::MAX_EF);
        let state = handle.read();
        state.search(query.space, &q, query.k, ef, &query.filter, &plan, trace)
    }

    fn upsert(&self, records: Vec<VectorRecord>) -> Result<()> {
        check_records(&self.spec, &records)?;
        if records.is_empty() {
            return Ok(());
        }
        // Group by space; within a batch the last record of a key wins.
        let mut by_space: BTreeMap<EmbeddingSpace, Vec<VectorRecord>> = BTreeMap::new();
        let mut last_of_key: HashMap<(EmbeddingSpace, AssetId, u32), usize> = HashMap::new();
        for (i, r) in records.iter().enumerate() {
            last_of_key.insert((r.space, r.asset_id.clone(), r.seq), i);
        }
        for (i, r) in records.into_iter().enumerate() {
            if last_of_key.get(&(r.space, r.asset_id.clone(), r.seq)) == Some(&i) {
                by_space.entry(r.space).or_default().push(r);
            }
        }
        let mut w = self.writer.lock();
        w.dirty = true;
        for (space, records) in by_space {
            let handle = self.handle_or_create(space);
            let mut records = records.into_iter().peekable();
            while records.peek().is_some() {
                let chunk: Vec<VectorRecord> = records.by_ref().take(INSERT_CHUNK).collect();
                let mut rows = Vec::with_capacity(chunk.len());
                let mut vectors = Vec::with_capacity(chunk.len());
                for r in chunk {
                    vectors.push(normalized(&r.vector));
                    rows.push(Row {
                        asset_id: r.asset_id,
                        seq: r.seq,
                        segment: r.segment,
                        meta: r.meta,
                    });
                }
                // The graph insert runs under a read lock (searches continue; nothing else
                // writes, the writer lock is held) and the new ids stay invisible until
                // `commit` publishes them under the write lock.
                let inserted = handle.read().insert(vectors);
                match inserted {
                    Ok(pending) => handle.write().commit(rows, pending),
                    Err(e) => {
                        // The graph may hold nodes no row describes: rebuild it from the live
                        // rows so ids stay unique, then report the failure.
                        if let Err(again) = self.compact_space(&handle) {
                            tracing::error!(error = %again, "hnsw space rebuild after a failed insert failed");
                        }
                        return Err(e);
                    }
                }
            }
            self.maybe_compact(&handle)?;
        }
        Ok(())
    }

    fn delete_asset(&self, asset: &AssetId) -> Result<usize> {
        let mut w = self.writer.lock();
        let mut removed = 0;
        for handle in self.handles() {
            let n = {
                let mut s = handle.write();
                s.ids_of_asset(asset)
                    .into_iter()
                    .filter(|id| s.kill(*id))
                    .count()
            };
            if n > 0 {
                removed += n;
                self.maybe_compact(&handle)?;
            }
        }
        if removed > 0 {
            w.dirty = true;
        }
        Ok(removed)
    }

    /// Compacts a space if its tombstone share passes the configured ratio. Writer lock held.
    fn maybe_compact(&self, handle: &SpaceHandle) -> Result<()> {
        let ratio = handle.read().tombstone_ratio();
        if self.config.compaction_ratio < 1.0 && ratio > self.config.compaction_ratio {
            self.compact_space(handle)?;
        }
        Ok(())
    }

    /// Rebuilds a space's graph from its live rows. Writer lock held; searches continue on the
    /// old graph until the swap.
    fn compact_space(&self, handle: &SpaceHandle) -> Result<()> {
        let fresh = {
            let s = handle.read();
            let live: Vec<usize> = (0..s.rows.len())
                .filter(|id| s.rows[*id].is_some())
                .collect();
            let rows: Vec<Row> = live.iter().filter_map(|id| s.rows[*id].clone()).collect();
            build_space(&self.config, self.spec.dimension, rows, |i| {
                s.vectors.get(live[i])
            })?
        };
        let old = std::mem::replace(&mut *handle.write(), fresh);
        tracing::debug!(
            tombstones = old.tombstones(),
            live = old.live,
            "hnsw space compacted"
        );
        // The old graph is freed here, outside the space lock.
        drop(old);
        Ok(())
    }

    fn stats(&self) -> IndexStats {
        let mut stats = IndexStats::default();
        let mut assets: HashSet<AssetId> = HashSet::new();
        for (space, handle) in self.spaces.read().iter() {
            let s = handle.read();
            if s.live > 0 {
                stats.vectors_per_space.insert(*space, s.live as u64);
            }
            stats.tombstones += s.tombstones() as u64;
            stats.memory_bytes += s.memory_bytes(self.spec.dimension);
            let mut last: Option<&AssetId> = None;
            for (asset, _) in s.by_key.keys() {
                if last != Some(asset) {
                    assets.insert(asset.clone());
                    last = Some(asset);
                }
            }
        }
        stats.assets = assets.len() as u64;
        stats
    }

    fn flush(&self) -> Result<()> {
        let Some(dir) = self.config.dir.clone() else {
            return Ok(());
        };
        let mut w = self.writer.lock();
        if !w.dirty && persist::current_snapshot(&dir)?.is_some() {
            return Ok(());
        }
        let handles: Vec<(EmbeddingSpace, SpaceHandle)> = self
            .spaces
            .read()
            .iter()
            .map(|(s, h)| (*s, Arc::clone(h)))
            .collect();
        // Read guards: searches continue; writers are excluded by the writer lock we hold.
        let guards: Vec<_> = handles.iter().map(|(s, h)| (*s, h.read())).collect();
        let views: Vec<(EmbeddingSpace, &SpaceState)> =
            guards.iter().map(|(s, g)| (*s, &**g)).collect();
        let generation = w.generation + 1;
        persist::write_snapshot(
            &dir,
            &self.spec,
            generation,
            &views,
            self.config.persist_graph,
        )?;
        w.generation = generation;
        w.dirty = false;
        Ok(())
    }
}

#[async_trait]
impl VectorIndex for HnswIndex {
    fn spec(&self) -> &IndexSpec {
        &self.inner.spec
    }

    fn capabilities(&self) -> IndexCapabilities {
        IndexCapabilities {
            filter_push_down: true,
            exact: false,
            persistent: self.inner.config.dir.is_some(),
            max_batch: usize::MAX,
        }
    }

    async fn upsert(&self, records: Vec<VectorRecord>) -> Result<()> {
        self.blocking(move |inner| inner.upsert(records)).await
    }

    async fn search(&self, query: &VectorQuery) -> Result<Vec<Hit>> {
        self.search_sync(query)
    }

    async fn delete_asset(&self, asset: &AssetId) -> Result<usize> {
        let asset = asset.clone();
        self.blocking(move |inner| inner.delete_asset(&asset)).await
    }

    async fn stats(&self) -> Result<IndexStats> {
        Ok(self.inner.stats())
    }

    /// Live vectors per space without counting distinct assets (what a searcher asks on every
    /// query; `stats` walks every key).
    async fn space_counts(&self) -> Result<BTreeMap<EmbeddingSpace, u64>> {
        Ok(self
            .inner
            .spaces
            .read()
            .iter()
            .map(|(space, handle)| (*space, handle.read().live as u64))
            .filter(|(_, live)| *live > 0)
            .collect())
    }

    async fn flush(&self) -> Result<()> {
        if self.inner.config.dir.is_none() {
            return Ok(());
        }
        self.blocking(|inner| inner.flush()).await
    }
}

/// The snapshot directory the manifest in `dir` currently names, if any.
pub fn current_snapshot_dir(dir: impl AsRef<Path>) -> Result<Option<PathBuf>> {
    persist::current_snapshot(dir.as_ref())
}
