//! `FlatIndex`: exact cosine search, in memory or durable in a directory.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;

use super::tables::search::Plan;
use super::tables::{Layout, OpenReport, Options, Tables};
use super::{
    Hit, IndexCapabilities, IndexSpec, IndexStats, MetaPatch, VectorIndex, VectorQuery,
    VectorRecord,
};
use crate::asset::AssetId;
use crate::embedding::EmbeddingSpace;
use crate::error::Result;
use crate::storage::StorageConfig;

/// An exact index: every query scans every vector of its space.
///
/// Vectors are normalised at insert and kept in huge-page blocks, so a query is a streaming
/// pass of SIMD inner products (memory-bandwidth bound). It is the reference every approximate
/// index is checked against, and a fine choice up to ~100k vectors. [`open`](Self::open) makes
/// it durable in a directory with the same storage engine as `HnswIndex` (a write-ahead log
/// beside append-only data files, background checkpoints, one writer per directory).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use crossmodal_core::{AssetId, EmbeddingSpace, FlatIndex, IndexSpec, MediaFormat, MediaKind,
///                  RecordMeta, VectorIndex, VectorQuery, VectorRecord};
/// let index = FlatIndex::new(IndexSpec::new("demo-model", 3));
/// let meta = RecordMeta::new(MediaKind::Image, MediaFormat::Png);
/// index.upsert(vec![VectorRecord {
///     asset_id: AssetId::from_content(b"red square"), space: EmbeddingSpace::Visual, seq: 0,
///     segment: None, vector: vec![1.0, 0.0, 0.0], meta,
/// }]).await.unwrap();
/// let hits = index.search(&VectorQuery::new(EmbeddingSpace::Visual, vec![2.0, 0.0, 0.0], 5)).await.unwrap();
/// assert_eq!(hits.len(), 1);
/// assert!((hits[0].score - 1.0).abs() < 1e-6);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct FlatIndex {
    tables: Arc<Tables>,
}

fn options(storage: StorageConfig) -> Options {
    Options {
        layout: Layout::Flat,
        storage,
        plan: Plan {
            exact_scan_bytes: usize::MAX,
            exact_filter_selectivity: 1.0,
            rerank: 1,
        },
    }
}

impl FlatIndex {
    /// An empty in-memory index for vectors of `spec`.
    /// (With a zero dimension every record and query is rejected as `InvalidInput`.)
    pub fn new(spec: IndexSpec) -> Self {
        FlatIndex {
            tables: Arc::new(Tables::in_memory(spec, options(StorageConfig::default()))),
        }
    }

    /// The durable index in directory `dir` (created if needed; locked while open). Blocking:
    /// from async code call it in `spawn_blocking`. `Conflict` if another process holds the
    /// directory or it was built for another model or dimension; `Corrupt` naming the file if
    /// a data file is damaged.
    pub fn open(dir: impl AsRef<Path>, spec: IndexSpec) -> Result<Self> {
        FlatIndex::open_with(dir, spec, StorageConfig::default())
    }

    /// Like [`open`](Self::open), with storage settings.
    pub fn open_with(
        dir: impl AsRef<Path>,
        spec: IndexSpec,
        storage: StorageConfig,
    ) -> Result<Self> {
        Ok(FlatIndex {
            tables: Arc::new(Tables::open(Some(dir.as_ref()), spec, options(storage))?),
        })
    }

    /// Number of live vectors in all spaces.
    pub fn len(&self) -> usize {
        self.tables.len()
    }

    /// Whether the index holds no vectors.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What opening found (checkpoint loaded, log replayed, leftovers removed).
    pub fn open_report(&self) -> &OpenReport {
        &self.tables.report
    }

    /// Exact top-`k` search without the async wrapper (blocking; what benches and other
    /// indexes' recall checks call).
    pub fn search_sync(&self, query: &VectorQuery) -> Result<Vec<Hit>> {
        self.tables.search_planned(
            query,
            0,
            &self.tables.shared.options.plan,
            &mut Default::default(),
        )
    }

    /// Inserts or replaces records without the async wrapper (blocking).
    pub fn upsert_sync(&self, records: Vec<VectorRecord>) -> Result<()> {
        self.tables.upsert(records)
    }

    /// Writes a checkpoint now (blocking; a no-op in memory).
    pub fn checkpoint(&self) -> Result<()> {
        self.tables.checkpoint()
    }

    /// Removes tombstones now (blocking).
    pub fn compact(&self) -> Result<()> {
        self.tables.compact()
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Tables) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let tables = Arc::clone(&self.tables);
        run_blocking(move || f(&tables)).await
    }
}

/// Runs `f` on tokio's blocking pool when inside a runtime, inline otherwise (scans, log writes
/// and fsyncs never stall an async worker).
pub(crate) async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle
            .spawn_blocking(f)
            .await
            .map_err(crate::error::join_error)?,
        Err(_) => f(),
    }
}

#[async_trait]
impl VectorIndex for FlatIndex {
    fn spec(&self) -> &IndexSpec {
        self.tables.spec()
    }

    fn capabilities(&self) -> IndexCapabilities {
        IndexCapabilities {
            filter_push_down: true,
            exact: true,
            persistent: self.tables.shared.dir.is_some(),
            max_batch: usize::MAX,
        }
    }

    async fn upsert(&self, records: Vec<VectorRecord>) -> Result<()> {
        self.blocking(move |t| t.upsert(records)).await
    }

    async fn search(&self, query: &VectorQuery) -> Result<Vec<Hit>> {
        let query = query.clone();
        self.blocking(move |t| {
            t.search_planned(&query, 0, &t.shared.options.plan, &mut Default::default())
        })
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
}
