//! `Engine`: a thin owner of the four parts, with the calls a user makes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::asset::AssetId;
use crate::cache::{EmbeddingCache, SqliteEmbeddingCache};
use crate::catalog::{
    AssetCatalog, AssetPage, AssetQuery, AssetRecord, SqliteCatalog, StatusCounts,
};
use crate::duplicates::{Duplicate, DuplicateFinder, DuplicatePair, DuplicateQuery};
use crate::embedder::CachedEmbedder;
use crate::embedding::EmbeddingProvider;
use crate::error::Result;
use crate::index::MetaPatch;
use crate::index::{
    FlatIndex, HnswConfig, HnswIndex, IndexSpec, IndexStats, OpenReport, VectorIndex,
};
use crate::ingest::{
    BatchItemResult, BatchProgress, BatchReport, IngestConfig, IngestItem, IngestReport, Ingestor,
    ReconcileReport,
};
use crate::keywords::KeywordIndex;
use crate::retry::RetryPolicy;
use crate::routing::RoutingRules;
use crate::search::{CrossModalSearcher, Query, SearchResults};
use crate::storage::DirLock;
use crate::store::{LocalDirStore, MediaStore};

/// The parts of a local data directory (see [`Engine::open_local`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalLayout {
    /// `<dir>/media`: originals ([`LocalDirStore`]).
    pub media: PathBuf,
    /// `<dir>/index`: the vector index's files.
    pub index: PathBuf,
    /// `<dir>/catalog.db`: asset status, metadata and the embedding cache (SQLite).
    pub catalog: PathBuf,
}

impl LocalLayout {
    /// The layout under `dir`.
    pub fn new(dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref();
        LocalLayout {
            media: dir.join("media"),
            index: dir.join("index"),
            catalog: dir.join("catalog.db"),
        }
    }
}

/// Which vector index [`Engine::open_local_with`] opens in `<dir>/index`.
#[derive(Clone)]
#[non_exhaustive]
pub enum LocalIndex {
    /// [`HnswIndex`] with this configuration (the default, with `HnswConfig::default()`).
    Hnsw(HnswConfig),
    /// [`FlatIndex`]: exact, fine up to ~100k vectors.
    Flat,
    /// An index the caller opened (it manages its own files and locks).
    Custom(Arc<dyn VectorIndex>),
}

impl Default for LocalIndex {
    fn default() -> Self {
        LocalIndex::Hnsw(HnswConfig::default())
    }
}

impl std::fmt::Debug for LocalIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LocalIndex::Hnsw(c) => f.debug_tuple("Hnsw").field(c).finish(),
            LocalIndex::Flat => f.write_str("Flat"),
            LocalIndex::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// What [`Engine::open_local`] found: the index's open report and what reconciling the catalog
/// with the index did.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct LocalOpenReport {
    /// The index's report (`None` for a custom index).
    pub index: Option<OpenReport>,
    /// Assets the catalog called `Indexed` whose vectors the index lacked, and what was done.
    pub reconciled: ReconcileReport,
}

/// Options of [`Engine::open_local_with`].
#[derive(Clone, Default, Debug)]
#[non_exhaustive]
pub struct LocalOptions {
    /// The vector index (default: [`HnswIndex`] in `<dir>/index`).
    pub index: LocalIndex,
    /// Ingest settings.
    pub ingest: IngestConfig,
    /// Expire cached embeddings after this long (default: never; a model's vectors for the same
    /// bytes and options do not change).
    pub cache_ttl: Option<std::time::Duration>,
    /// Routing rules (default: the model's).
    pub rules: Option<RoutingRules>,
}

impl LocalOptions {
    /// Sets the routing rules.
    pub fn rules(mut self, rules: RoutingRules) -> Self {
        self.rules = Some(rules);
        self
    }

    /// Uses `index` (opened by the caller) instead of the default HNSW index.
    pub fn index(mut self, index: Arc<dyn VectorIndex>) -> Self {
        self.index = LocalIndex::Custom(index);
        self
    }

    /// Uses [`HnswIndex`] with `config`.
    pub fn hnsw(mut self, config: HnswConfig) -> Self {
        self.index = LocalIndex::Hnsw(config);
        self
    }

    /// Uses the exact [`FlatIndex`].
    pub fn flat(mut self) -> Self {
        self.index = LocalIndex::Flat;
        self
    }

    /// Sets the ingest settings.
    pub fn ingest(mut self, config: IngestConfig) -> Self {
        self.ingest = config;
        self
    }

    /// Sets the cache TTL.
    pub fn cache_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.cache_ttl = Some(ttl);
        self
    }
}

/// Everything an engine is made of, for [`Engine::from_parts`].
#[derive(Clone)]
pub struct EngineParts {
    /// The embedding model.
    pub provider: Arc<dyn EmbeddingProvider>,
    /// Where originals go.
    pub store: Arc<dyn MediaStore>,
    /// Where vectors go.
    pub index: Arc<dyn VectorIndex>,
    /// Asset metadata and status.
    pub catalog: Arc<dyn AssetCatalog>,
    /// Optional embedding cache.
    pub cache: Option<Arc<dyn EmbeddingCache>>,
    /// Ingest settings.
    pub ingest: IngestConfig,
    /// Retry policy for provider calls.
    pub provider_retry: RetryPolicy,
    /// Routing rules (default: the model's).
    pub rules: Option<RoutingRules>,
    /// Full-text index of names, tags and fields for searches with keywords (the embedded
    /// default uses its `SqliteCatalog`).
    pub keywords: Option<Arc<dyn KeywordIndex>>,
}

impl EngineParts {
    /// Parts with no cache, default settings and the model's routing rules.
    pub fn new(
        provider: Arc<dyn EmbeddingProvider>,
        store: Arc<dyn MediaStore>,
        index: Arc<dyn VectorIndex>,
        catalog: Arc<dyn AssetCatalog>,
    ) -> Self {
        EngineParts {
            provider,
            store,
            index,
            catalog,
            cache: None,
            ingest: IngestConfig::default(),
            provider_retry: RetryPolicy::default(),
            rules: None,
            keywords: None,
        }
    }

    /// Adds an embedding cache.
    pub fn cache(mut self, cache: Arc<dyn EmbeddingCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Sets the ingest settings.
    pub fn ingest_config(mut self, config: IngestConfig) -> Self {
        self.ingest = config;
        self
    }

    /// Sets the routing rules.
    pub fn rules(mut self, rules: RoutingRules) -> Self {
        self.rules = Some(rules);
        self
    }

    /// Adds a full-text index for searches with keywords.
    pub fn keyword_index(mut self, index: Arc<dyn KeywordIndex>) -> Self {
        self.keywords = Some(index);
        self
    }
}

/// A complete search system: ingest files, search them by text or by example, manage assets.
///
/// `Engine` owns an [`Ingestor`] and a [`CrossModalSearcher`] over one provider, store, index and
/// catalog; both can also be used on their own.
#[derive(Clone)]
pub struct Engine {
    ingestor: Ingestor,
    searcher: CrossModalSearcher,
    duplicates: DuplicateFinder,
    index: Arc<dyn VectorIndex>,
    catalog: Arc<dyn AssetCatalog>,
    store: Arc<dyn MediaStore>,
    /// The data directory's lock (embedded default), held as long as any clone lives.
    lock: Option<Arc<DirLock>>,
    open_report: Arc<LocalOpenReport>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("ingestor", &self.ingestor)
            .field("searcher", &self.searcher)
            .finish()
    }
}

impl Engine {
    /// An engine over the given parts, with no cache and default settings.
    pub fn new(
        provider: Arc<dyn EmbeddingProvider>,
        store: Arc<dyn MediaStore>,
        index: Arc<dyn VectorIndex>,
        catalog: Arc<dyn AssetCatalog>,
    ) -> Result<Self> {
        Self::from_parts(EngineParts::new(provider, store, index, catalog))
    }

    /// An engine over the given parts and settings. `Conflict` if the index holds vectors of
    /// another model than the provider's.
    pub fn from_parts(parts: EngineParts) -> Result<Self> {
        let embedder =
            CachedEmbedder::new(parts.provider.clone(), parts.cache, parts.provider_retry);
        let ingestor = Ingestor::new(
            embedder.clone(),
            parts.store.clone(),
            parts.index.clone(),
            parts.catalog.clone(),
            parts.ingest.clone(),
        )?;
        let mut searcher = CrossModalSearcher::with_embedder(embedder.clone(), parts.index.clone())
            .catalog(parts.catalog.clone(), parts.store.clone())
            .limits(parts.ingest.limits.clone());
        if let Some(rules) = parts.rules {
            searcher = searcher.rules(rules);
        }
        if let Some(keywords) = parts.keywords {
            searcher = searcher.keyword_index(keywords);
        }
        let duplicates = DuplicateFinder::new(embedder, parts.index.clone(), parts.catalog.clone());
        Ok(Engine {
            ingestor,
            searcher,
            duplicates,
            index: parts.index,
            catalog: parts.catalog,
            store: parts.store,
            lock: None,
            open_report: Arc::default(),
        })
    }

    /// The embedded default in one directory, no server and no cloud account: originals in
    /// `media/` ([`LocalDirStore`]), an [`HnswIndex`] in `index/`, asset status and the
    /// embedding cache in `catalog.db` (SQLite). Survives restarts and crashes: reopening the
    /// directory finds everything made durable before.
    ///
    /// One process owns a data directory at a time: the directory is locked while the engine
    /// (or any clone) lives, and a second open gets `ErrorKind::Conflict` naming the holder's
    /// pid (add files to a directory a server holds through the server's upload API). At open
    /// the catalog and the index are reconciled ([`Ingestor::reconcile`]): assets marked
    /// `Indexed` whose vectors the index lacks are re-indexed from the embedding cache
    /// ([`open_report`](Self::open_report) says how many).
    pub async fn open_local(
        dir: impl AsRef<Path>,
        provider: Arc<dyn EmbeddingProvider>,
    ) -> Result<Self> {
        Self::open_local_with(dir, provider, LocalOptions::default()).await
    }

    /// Like [`open_local`](Self::open_local), with options: another vector index, ingest
    /// settings, a cache TTL.
    pub async fn open_local_with(
        dir: impl AsRef<Path>,
        provider: Arc<dyn EmbeddingProvider>,
        options: LocalOptions,
    ) -> Result<Self> {
        let layout = LocalLayout::new(&dir);
        let data_dir = dir.as_ref().to_path_buf();
        let spec = IndexSpec::for_model(provider.model());
        let index_choice = options.index.clone();
        let index_dir = layout.index.clone();
        let (lock, index, index_report) = crate::index::run_blocking(move || {
            let lock = DirLock::acquire(&data_dir)?;
            Ok(match index_choice {
                LocalIndex::Hnsw(config) => {
                    let index = HnswIndex::open(&index_dir, spec, config)?;
                    let report = index.open_report().clone();
                    (lock, Arc::new(index) as Arc<dyn VectorIndex>, Some(report))
                }
                LocalIndex::Flat => {
                    let index = FlatIndex::open(&index_dir, spec)?;
                    let report = index.open_report().clone();
                    (lock, Arc::new(index) as Arc<dyn VectorIndex>, Some(report))
                }
                LocalIndex::Custom(index) => (lock, index, None),
            })
        })
        .await?;
        let store = LocalDirStore::open(&layout.media)?;
        let catalog = Arc::new(SqliteCatalog::open(&layout.catalog)?);
        let cache = SqliteEmbeddingCache::open(&layout.catalog, options.cache_ttl)?;
        let mut parts = EngineParts::new(provider, Arc::new(store), index, catalog.clone())
            .cache(Arc::new(cache))
            .ingest_config(options.ingest)
            .keyword_index(catalog);
        if let Some(rules) = options.rules {
            parts = parts.rules(rules);
        }
        let mut engine = Self::from_parts(parts)?;
        let reconciled = engine.ingestor.reconcile().await?;
        if reconciled.missing > 0 {
            tracing::warn!(
                missing = reconciled.missing,
                reindexed = reconciled.reindexed,
                requeued = reconciled.requeued,
                "the index lacked vectors of assets the catalog calls indexed"
            );
        }
        engine.lock = Some(Arc::new(lock));
        engine.open_report = Arc::new(LocalOpenReport {
            index: index_report,
            reconciled,
        });
        Ok(engine)
    }

    /// What [`open_local`](Self::open_local) found (empty for engines made from parts).
    pub fn open_report(&self) -> &LocalOpenReport {
        &self.open_report
    }

    /// Ingests one file.
    pub async fn ingest_file(&self, path: impl AsRef<Path>) -> Result<IngestReport> {
        self.ingestor.ingest_file(path).await
    }

    /// Ingests one item (bytes or a file, with a name and tags).
    pub async fn ingest(&self, item: IngestItem) -> Result<IngestReport> {
        self.ingestor.ingest(item).await
    }

    /// Ingests many items with bounded concurrency; see [`Ingestor::ingest_batch`].
    pub async fn ingest_batch(
        &self,
        items: Vec<IngestItem>,
        progress: impl FnMut(&BatchProgress, &BatchItemResult) + Send,
    ) -> BatchReport {
        self.ingestor.ingest_batch(items, progress).await
    }

    /// Resumes failed and interrupted assets; see [`Ingestor::retry_failed`].
    pub async fn retry_failed(
        &self,
        progress: impl FnMut(&BatchProgress, &BatchItemResult) + Send,
    ) -> Result<BatchReport> {
        self.ingestor.retry_failed(progress).await
    }

    /// Runs a search.
    pub async fn search(&self, query: &Query) -> Result<SearchResults> {
        self.searcher.search(query).await
    }

    /// Removes an asset everywhere.
    pub async fn delete(&self, asset: &AssetId) -> Result<bool> {
        self.ingestor.delete(asset).await
    }

    /// Changes an asset's name, tags or fields in place, in the catalog and on every vector of
    /// the index, without embedding anything again; returns the updated record. See
    /// [`Ingestor::update_meta`].
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// # use crossmodal_core::*;
    /// # let engine: Option<Engine> = None;
    /// # if let Some(engine) = engine { let id = AssetId::from_content(b"x");
    /// let patch = MetaPatch::default()
    ///     .set("campaign", "autumn-2026")
    ///     .set("budget", 12_000.0)
    ///     .add_tag("approved")
    ///     .remove_tag("draft");
    /// let record = engine.update_asset(&id, &patch).await?;
    /// assert!(record.tags.contains(&"approved".to_string()));
    /// # } Ok::<(), Error>(()) }).unwrap();
    /// ```
    pub async fn update_asset(&self, asset: &AssetId, patch: &MetaPatch) -> Result<AssetRecord> {
        self.ingestor.update_meta(asset, patch).await
    }

    /// The near-duplicates of `asset` (re-encodes, crops, re-cuts, shared openings), with the
    /// segment pairs that match. See [`DuplicateFinder::of_asset`].
    pub async fn near_duplicates(
        &self,
        asset: &AssetId,
        query: &DuplicateQuery,
    ) -> Result<Vec<Duplicate>> {
        self.duplicates.of_asset(asset, query).await
    }

    /// Every near-duplicate pair of the library, at most `limit`. See
    /// [`DuplicateFinder::library`].
    pub async fn library_duplicates(
        &self,
        query: &DuplicateQuery,
        limit: usize,
    ) -> Result<Vec<DuplicatePair>> {
        self.duplicates.library(query, limit).await
    }

    /// One asset's record.
    pub async fn asset(&self, asset: &AssetId) -> Result<Option<AssetRecord>> {
        self.catalog.get(asset).await
    }

    /// A page of assets.
    pub async fn assets(&self, query: &AssetQuery) -> Result<AssetPage> {
        self.catalog.list(query).await
    }

    /// Number of assets in each state.
    pub async fn counts(&self) -> Result<StatusCounts> {
        self.catalog.counts().await
    }

    /// Index counts and sizes.
    pub async fn index_stats(&self) -> Result<IndexStats> {
        self.index.stats().await
    }

    /// Makes everything written durable (flushes the index) and marks the assets ingested
    /// since the last flush `Indexed` (see [`Ingestor::checkpoint`]).
    pub async fn flush(&self) -> Result<()> {
        self.ingestor.checkpoint().await.map(|_| ())
    }

    /// The embedding model in use (id, dimension, spaces).
    pub fn model(&self) -> &crate::ModelInfo {
        self.searcher.model()
    }

    /// The ingestor.
    pub fn ingestor(&self) -> &Ingestor {
        &self.ingestor
    }

    /// The searcher.
    pub fn searcher(&self) -> &CrossModalSearcher {
        &self.searcher
    }

    /// The vector index.
    pub fn index(&self) -> &Arc<dyn VectorIndex> {
        &self.index
    }

    /// The media store.
    pub fn store(&self) -> &Arc<dyn MediaStore> {
        &self.store
    }
}
