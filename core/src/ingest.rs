//! The ingest pipeline: validate -> hash -> dedupe -> store -> embed (cached) -> index, with
//! per-asset status in the catalog. Nothing lost, nothing done twice.

use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::asset::{AssetId, now_ms};
use crate::catalog::{AssetCatalog, AssetQuery, AssetRecord, AssetState, AssetStatus, IngestStage};
use crate::embedder::CachedEmbedder;
use crate::embedding::{EmbeddingSpace, MediaInput};
use crate::error::{Error, Result};
use crate::index::{RecordMeta, VectorIndex, VectorRecord};
use crate::media::{MediaFormat, MediaKind, MediaLimits, validate_media};
use crate::retry::RetryPolicy;
use crate::store::{MediaKey, MediaStore};

/// Settings of an [`Ingestor`].
#[derive(Debug, Clone, PartialEq)]
pub struct IngestConfig {
    /// Size and duration limits.
    pub limits: MediaLimits,
    /// Files processed at once by [`Ingestor::ingest_batch`]. Providers bound their own
    /// concurrent calls below this.
    pub concurrency: usize,
    /// Retry policy for temporary store and index errors (the provider's retries are the
    /// embedder's).
    pub retry: RetryPolicy,
    /// Flush the index after every single-file ingest (batches flush at checkpoints and at the
    /// end). With `false`, an ingested asset is searchable at once but stays `Embedding` until
    /// [`Ingestor::checkpoint`] (or `Engine::flush`) makes its vectors durable.
    pub flush_each: bool,
    /// How often a batch flushes the index and marks the assets indexed since the last
    /// checkpoint as `Indexed` (default 60 s). An asset is `Indexed` only once its vectors are
    /// durable, so a crash mid-batch loses at most this much indexing, and `retry_failed`
    /// redoes it from the embedding cache without calling the provider again.
    pub checkpoint_interval: Duration,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            limits: MediaLimits::default(),
            concurrency: 8,
            retry: RetryPolicy::default(),
            flush_each: true,
            checkpoint_interval: Duration::from_secs(60),
        }
    }
}

impl IngestConfig {
    /// Sets the limits.
    pub fn limits(mut self, limits: MediaLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the batch concurrency (at least 1).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Sets the retry policy for store and index calls.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets whether single-file ingests flush the index.
    pub fn flush_each(mut self, on: bool) -> Self {
        self.flush_each = on;
        self
    }

    /// Sets how often a batch checkpoints (flushes the index and marks assets `Indexed`).
    pub fn checkpoint_interval(mut self, every: Duration) -> Self {
        self.checkpoint_interval = every;
        self
    }
}

/// Where an item's bytes come from.
#[derive(Debug, Clone, PartialEq)]
pub enum IngestSource {
    /// Bytes in memory.
    Bytes(Bytes),
    /// A file, read when the item is processed.
    File(PathBuf),
}

/// One file to ingest.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestItem {
    /// The bytes or the file.
    pub source: IngestSource,
    /// The name shown for the asset (defaults to the file name).
    pub display_name: Option<String>,
    /// Tags stored with the asset and usable in search filters.
    pub tags: Vec<String>,
    /// The user's own fields, stored with the asset and usable in search filters.
    pub fields: std::collections::BTreeMap<String, crate::index::FieldValue>,
}

impl IngestItem {
    /// An item read from a file.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        IngestItem {
            source: IngestSource::File(path.into()),
            display_name: None,
            tags: Vec::new(),
            fields: Default::default(),
        }
    }

    /// An item from bytes in memory.
    pub fn bytes(bytes: impl Into<Bytes>, display_name: impl Into<String>) -> Self {
        IngestItem {
            source: IngestSource::Bytes(bytes.into()),
            display_name: Some(display_name.into()),
            tags: Vec::new(),
            fields: Default::default(),
        }
    }

    /// Adds tags.
    pub fn tags(mut self, tags: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.tags.extend(tags.into_iter().map(Into::into));
        self
    }

    /// Sets one of the user's own fields.
    pub fn field(
        mut self,
        key: impl Into<String>,
        value: impl Into<crate::index::FieldValue>,
    ) -> Self {
        self.fields.insert(key.into(), value.into());
        self
    }

    /// Checks the tags and fields (before anything is read or stored).
    pub fn check_metadata(&self) -> Result<()> {
        if self.fields.len() > crate::index::MAX_FIELDS {
            return Err(Error::invalid_input(format!(
                "an asset holds at most {} fields",
                crate::index::MAX_FIELDS
            )));
        }
        for (k, v) in &self.fields {
            crate::index::check_field(k, v)?;
        }
        self.tags.iter().try_for_each(|t| crate::index::check_tag(t))
    }

    /// A label for progress and reports: the display name or the path.
    pub fn label(&self) -> String {
        match (&self.display_name, &self.source) {
            (Some(n), _) => n.clone(),
            (None, IngestSource::File(p)) => p.display().to_string(),
            (None, IngestSource::Bytes(_)) => "<bytes>".to_string(),
        }
    }

    fn name(&self) -> Option<String> {
        self.display_name.clone().or_else(|| match &self.source {
            IngestSource::File(p) => p.file_name().map(|n| n.to_string_lossy().into_owned()),
            IngestSource::Bytes(_) => None,
        })
    }
}

/// What an ingest did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IngestOutcome {
    /// The asset was embedded (or its embeddings came from the cache) and indexed.
    Indexed,
    /// The same bytes were already indexed: nothing was done.
    AlreadyIndexed,
}

/// The result of ingesting one file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngestReport {
    /// The asset (content hash).
    pub asset_id: AssetId,
    /// Its kind.
    pub kind: MediaKind,
    /// Its format by content.
    pub format: MediaFormat,
    /// What was done.
    pub outcome: IngestOutcome,
    /// Vectors written to the index.
    pub vectors: usize,
    /// Whether the embeddings came from the cache (no provider call).
    pub from_cache: bool,
    /// Set when the name's extension disagreed with the content.
    pub extension_mismatch: Option<String>,
}

/// Progress of a batch, passed to the progress callback after every item.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchProgress {
    /// Items finished (any outcome).
    pub done: usize,
    /// Items in the batch.
    pub total: usize,
    /// Newly indexed.
    pub indexed: usize,
    /// Skipped as already indexed.
    pub duplicates: usize,
    /// Failed.
    pub failed: usize,
}

/// One item's result in a batch.
#[derive(Debug)]
pub struct BatchItemResult {
    /// The item's label.
    pub label: String,
    /// Its report or error.
    pub result: Result<IngestReport>,
}

/// The result of a batch: every item's outcome; one bad file never stops the batch.
#[derive(Debug, Default)]
pub struct BatchReport {
    /// Per-item results, in completion order.
    pub items: Vec<BatchItemResult>,
    /// Final counts.
    pub progress: BatchProgress,
}

impl BatchReport {
    /// The items that failed, with their errors.
    pub fn failures(&self) -> impl Iterator<Item = (&str, &Error)> {
        self.items
            .iter()
            .filter_map(|i| i.result.as_ref().err().map(|e| (i.label.as_str(), e)))
    }
}

/// Serialises work on one asset so two copies of the same bytes in a batch are embedded once.
#[derive(Default)]
struct AssetLocks {
    locks: parking_lot::Mutex<HashMap<AssetId, Arc<tokio::sync::Mutex<()>>>>,
}

impl AssetLocks {
    async fn lock(&self, asset: &AssetId) -> AssetGuard<'_> {
        let lock = self.locks.lock().entry(asset.clone()).or_default().clone();
        let guard = lock.clone().lock_owned().await;
        AssetGuard {
            locks: self,
            asset: asset.clone(),
            _guard: guard,
            lock,
        }
    }
}

struct AssetGuard<'a> {
    locks: &'a AssetLocks,
    asset: AssetId,
    _guard: tokio::sync::OwnedMutexGuard<()>,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl Drop for AssetGuard<'_> {
    fn drop(&mut self) {
        let mut map = self.locks.locks.lock();
        // The map and this guard hold two references; nobody else waits: forget the lock.
        if Arc::strong_count(&self.lock) <= 3 {
            map.remove(&self.asset);
        }
    }
}

/// Runs the ingest pipeline over a provider, a store, an index and a catalog.
///
/// Statuses go `Pending -> Embedding -> Indexed`, or `Failed { stage, message }` with the
/// original kept; [`retry_failed`](Ingestor::retry_failed) resumes failed and interrupted assets
/// without re-embedding what the cache holds. Re-ingesting identical bytes does no work.
///
/// `Indexed` means durable: an asset is marked `Indexed` only after the index has been
/// flushed with its vectors ([`checkpoint`](Ingestor::checkpoint)). Until then it is searchable
/// but stays `Embedding` in the catalog, so a crash before the flush leaves it to be resumed,
/// never marked indexed without vectors.
#[derive(Clone)]
pub struct Ingestor {
    embedder: CachedEmbedder,
    store: Arc<dyn MediaStore>,
    index: Arc<dyn VectorIndex>,
    catalog: Arc<dyn AssetCatalog>,
    config: IngestConfig,
    locks: Arc<AssetLocks>,
    /// Assets whose vectors are in the index but not yet flushed (not yet `Indexed`).
    unflushed: Arc<parking_lot::Mutex<HashSet<AssetId>>>,
}

impl std::fmt::Debug for Ingestor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingestor")
            .field("embedder", &self.embedder)
            .field("config", &self.config)
            .finish()
    }
}

impl Ingestor {
    /// An ingestor over the four parts. The index must hold vectors of the provider's model.
    pub fn new(
        embedder: CachedEmbedder,
        store: Arc<dyn MediaStore>,
        index: Arc<dyn VectorIndex>,
        catalog: Arc<dyn AssetCatalog>,
        config: IngestConfig,
    ) -> Result<Self> {
        crate::index::IndexSpec::for_model(embedder.model()).check_same(index.spec())?;
        Ok(Ingestor {
            embedder,
            store,
            index,
            catalog,
            config,
            locks: Arc::default(),
            unflushed: Arc::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &IngestConfig {
        &self.config
    }

    /// Ingests one file from disk.
    pub async fn ingest_file(&self, path: impl AsRef<Path>) -> Result<IngestReport> {
        self.ingest(IngestItem::file(path.as_ref())).await
    }

    /// Ingests one item and (by default, see [`IngestConfig::flush_each`]) flushes the index
    /// and marks the asset `Indexed`.
    pub async fn ingest(&self, item: IngestItem) -> Result<IngestReport> {
        let report = self.ingest_one(item).await?;
        if self.config.flush_each && report.outcome == IngestOutcome::Indexed {
            self.checkpoint().await?;
        }
        Ok(report)
    }

    /// Makes every vector indexed so far durable (flushes the index), then marks the assets
    /// they belong to `Indexed`. Returns how many assets were marked. If the flush fails, those
    /// assets are marked `Failed` at the index stage (their originals and cached embeddings are
    /// kept, so [`retry_failed`](Self::retry_failed) re-indexes them without embedding again)
    /// and the error is returned.
    pub async fn checkpoint(&self) -> Result<usize> {
        let assets: Vec<AssetId> = self.unflushed.lock().iter().cloned().collect();
        if let Err(e) = self.index.flush().await {
            for asset in &assets {
                let err = Error::new(e.kind(), format!("index flush failed: {e}"));
                self.fail(asset, IngestStage::Index, err).await;
                self.unflushed.lock().remove(asset);
            }
            return Err(e);
        }
        let mut marked = 0;
        for asset in &assets {
            // Under the asset's lock, and marked before it leaves the waiting set: an ingest of
            // the same content in between must see it either waiting or `Indexed`, never neither
            // (it would index it a second time).
            let _guard = self.locks.lock(asset).await;
            // Only assets still waiting (a concurrent delete may have removed one).
            if !self.unflushed.lock().contains(asset) {
                continue;
            }
            let marked_now = match self.catalog.set_status(asset, &AssetStatus::Indexed).await {
                Ok(()) => true,
                // A record deleted meanwhile has nothing left to mark.
                Err(e) if e.kind() == crate::ErrorKind::NotFound => false,
                Err(e) => return Err(e),
            };
            self.unflushed.lock().remove(asset);
            marked += usize::from(marked_now);
        }
        Ok(marked)
    }

    /// Ingests many items with bounded concurrency, calling `progress` after each one. Never
    /// fails as a whole: each item's error is in the report. Checkpoints (flushes the index and
    /// marks assets `Indexed`) every [`IngestConfig::checkpoint_interval`] and at the end.
    pub async fn ingest_batch(
        &self,
        items: Vec<IngestItem>,
        mut progress: impl FnMut(&BatchProgress, &BatchItemResult) + Send,
    ) -> BatchReport {
        let mut report = BatchReport {
            items: Vec::with_capacity(items.len()),
            progress: BatchProgress {
                total: items.len(),
                ..BatchProgress::default()
            },
        };
        let mut stream = futures::stream::iter(items)
            .map(|item| async move {
                let label = item.label();
                let result = self.ingest_one(item).await;
                BatchItemResult { label, result }
            })
            .buffer_unordered(self.config.concurrency.max(1));
        let mut last_checkpoint = Instant::now();
        while let Some(done) = stream.next().await {
            let p = &mut report.progress;
            p.done += 1;
            match &done.result {
                Ok(r) if r.outcome == IngestOutcome::AlreadyIndexed => p.duplicates += 1,
                Ok(_) => p.indexed += 1,
                Err(_) => p.failed += 1,
            }
            progress(p, &done);
            report.items.push(done);
            if last_checkpoint.elapsed() >= self.config.checkpoint_interval {
                self.batch_checkpoint(&mut report).await;
                last_checkpoint = Instant::now();
            }
        }
        drop(stream);
        self.batch_checkpoint(&mut report).await;
        report
    }

    /// A checkpoint inside a batch: a failed flush is reported as one more failed item.
    async fn batch_checkpoint(&self, report: &mut BatchReport) {
        if self.unflushed.lock().is_empty() {
            return;
        }
        if let Err(e) = self.checkpoint().await {
            tracing::error!(error = %e, "index flush in batch failed");
            report.items.push(BatchItemResult {
                label: "<index flush>".into(),
                result: Err(e),
            });
            report.progress.failed += 1;
        }
    }

    /// Resumes every asset that failed or was interrupted (left `Pending` or `Embedding` by a
    /// crash): reads the original back from the store (or its source file) and runs the
    /// remaining stages. Embeddings already cached are not recomputed.
    pub async fn retry_failed(
        &self,
        progress: impl FnMut(&BatchProgress, &BatchItemResult) + Send,
    ) -> Result<BatchReport> {
        // An interrupted deletion is finished, not re-ingested.
        self.finish_interrupted_deletes().await?;
        let mut items = Vec::new();
        let mut query = AssetQuery::new()
            .state(AssetState::Failed)
            .state(AssetState::Pending)
            .state(AssetState::Embedding)
            .limit(1000);
        loop {
            let page = self.catalog.list(&query).await?;
            for record in page.assets {
                let source = match (&record.media, &record.source_path) {
                    (Some(media), _) => match self.store.get(&media.key).await {
                        Ok(bytes) => IngestSource::Bytes(bytes),
                        Err(e) => match &record.source_path {
                            Some(p) => IngestSource::File(p.clone()),
                            None => {
                                tracing::warn!(asset = %record.asset_id, error = %e, "cannot read the original back");
                                continue;
                            }
                        },
                    },
                    (None, Some(p)) => IngestSource::File(p.clone()),
                    (None, None) => continue,
                };
                items.push(IngestItem {
                    source,
                    display_name: record.display_name.clone(),
                    tags: record.tags.clone(),
                    fields: record.fields.clone(),
                });
            }
            match page.next_cursor {
                Some(c) => query = query.cursor(c),
                None => break,
            }
        }
        Ok(self.ingest_batch(items, progress).await)
    }

    /// Finds the assets the catalog calls `Indexed` whose vectors the index lacks (an index
    /// directory replaced or restored from an older copy, a lost log tail) and re-indexes them
    /// from the embedding cache without calling the provider; those the cache does not hold
    /// are marked `Failed` at the index stage so [`retry_failed`](Self::retry_failed) re-embeds
    /// them. [`Engine::open_local`](crate::Engine::open_local) runs this at every open.
    pub async fn reconcile(&self) -> Result<ReconcileReport> {
        let mut report = ReconcileReport {
            deletes_finished: self.finish_interrupted_deletes().await?,
            ..ReconcileReport::default()
        };
        let mut missing = Vec::new();
        let mut query = AssetQuery::new().state(AssetState::Indexed).limit(1000);
        loop {
            let page = self.catalog.list(&query).await?;
            for record in page.assets {
                report.checked += 1;
                match self.index.asset_vectors(&record.asset_id).await? {
                    None => {
                        report.skipped = true;
                        return Ok(report);
                    }
                    Some(0) => missing.push(record),
                    Some(_) => {}
                }
            }
            match page.next_cursor {
                Some(c) => query = query.cursor(c),
                None => break,
            }
        }
        report.missing = missing.len();
        for record in missing {
            let _guard = self.locks.lock(&record.asset_id).await;
            let cached = self.embedder.cached(&record.asset_id, record.kind()).await;
            let Some(embeddings) = cached else {
                let err = Error::not_found(
                    "the index lacks this asset's vectors and the embedding cache does not hold them; \
                     retry_failed re-embeds it",
                );
                self.fail(&record.asset_id, IngestStage::Index, err).await;
                report.requeued += 1;
                continue;
            };
            let meta = record.index_meta();
            // `Indexed` again only once durable: the checkpoint below marks it.
            self.catalog
                .set_status(&record.asset_id, &AssetStatus::Embedding)
                .await?;
            let records = vector_records(&record.asset_id, &meta, embeddings);
            if let Err(e) = self.upsert_in_batches(&records).await {
                self.fail(&record.asset_id, IngestStage::Index, e).await;
                report.requeued += 1;
                continue;
            }
            self.unflushed.lock().insert(record.asset_id.clone());
            report.reindexed += 1;
        }
        if report.reindexed > 0 {
            self.checkpoint().await?;
        }
        Ok(report)
    }

    /// Finishes every deletion a crash interrupted; returns how many.
    async fn finish_interrupted_deletes(&self) -> Result<usize> {
        let mut interrupted = Vec::new();
        let mut query = AssetQuery::new().state(AssetState::Failed).limit(1000);
        loop {
            let page = self.catalog.list(&query).await?;
            interrupted.extend(page.assets.into_iter().filter(|r| {
                matches!(
                    r.status,
                    AssetStatus::Failed {
                        stage: IngestStage::Delete,
                        ..
                    }
                )
            }));
            match page.next_cursor {
                Some(c) => query = query.cursor(c),
                None => break,
            }
        }
        for record in &interrupted {
            let _guard = self.locks.lock(&record.asset_id).await;
            self.finish_delete(record).await?;
        }
        Ok(interrupted.len())
    }

    /// Upserts records in batches the index accepts.
    async fn upsert_in_batches(&self, records: &[VectorRecord]) -> Result<()> {
        let max = self.index.capabilities().max_batch.max(1);
        for chunk in records.chunks(max) {
            self.index.upsert(chunk.to_vec()).await?;
        }
        Ok(())
    }

    /// Removes an asset everywhere: its vectors, its stored original and its catalog record.
    /// Returns `false` if the catalog did not know it.
    ///
    /// The catalog records the intent first (`Failed` at [`IngestStage::Delete`]), so a crash
    /// part-way is finished by the next [`reconcile`](Self::reconcile) (at every open of the
    /// embedded default) instead of leaving an asset without vectors marked `Indexed`.
    pub async fn delete(&self, asset: &AssetId) -> Result<bool> {
        let _guard = self.locks.lock(asset).await;
        self.unflushed.lock().remove(asset);
        let Some(record) = self.catalog.get(asset).await? else {
            // Vectors without a record (an interrupted ingest) are removed all the same.
            self.index.delete_asset(asset).await?;
            self.index.flush().await?;
            return Ok(false);
        };
        let deleting = AssetStatus::Failed {
            stage: IngestStage::Delete,
            message: "deletion started".into(),
        };
        self.catalog.set_status(asset, &deleting).await?;
        self.finish_delete(&record).await?;
        Ok(true)
    }

    /// The deletion's remaining steps: vectors (made durable), original, record.
    async fn finish_delete(&self, record: &AssetRecord) -> Result<()> {
        self.index.delete_asset(&record.asset_id).await?;
        self.index.flush().await?;
        if let Some(media) = &record.media {
            self.store.delete(&media.key).await?;
        }
        self.catalog.remove(&record.asset_id).await?;
        Ok(())
    }

    async fn ingest_one(&self, item: IngestItem) -> Result<IngestReport> {
        item.check_metadata()?;
        let name = item.name();
        let source_path = match &item.source {
            IngestSource::File(p) => Some(p.clone()),
            IngestSource::Bytes(_) => None,
        };
        let bytes = match item.source {
            IngestSource::Bytes(b) => b,
            IngestSource::File(path) => Bytes::from(
                read_within_limits(&path, &self.config.limits)
                    .await
                    .map_err(|e| e.with_context("path", path.display()))?,
            ),
        };
        let valid = validate_media(&bytes, name.as_deref(), &self.config.limits)?;
        let asset_id = valid.asset_id.clone();
        let _guard = self.locks.lock(&asset_id).await;

        let existing = self.catalog.get(&asset_id).await?;
        let report = |outcome, vectors, from_cache| IngestReport {
            asset_id: asset_id.clone(),
            kind: valid.probe.kind(),
            format: valid.probe.format,
            outcome,
            vectors,
            from_cache,
            extension_mismatch: valid.extension_mismatch.clone(),
        };
        if existing
            .as_ref()
            .is_some_and(|r| r.status == AssetStatus::Indexed)
            || self.unflushed.lock().contains(&asset_id)
        {
            return Ok(report(IngestOutcome::AlreadyIndexed, 0, false));
        }
        let resumed = existing.is_some();
        let now = now_ms();
        let mut record = existing.unwrap_or_else(|| AssetRecord {
            asset_id: asset_id.clone(),
            probe: valid.probe.clone(),
            size_bytes: valid.size_bytes,
            media: None,
            display_name: name.clone(),
            extension_mismatch: valid.extension_mismatch.clone(),
            source_path: source_path.clone(),
            tags: item.tags.clone(),
            fields: item.fields.clone(),
            status: AssetStatus::Pending,
            created_at_ms: now,
            updated_at_ms: now,
        });
        for t in item.tags {
            if !record.tags.contains(&t) {
                record.tags.push(t);
            }
        }
        record.fields.extend(item.fields);
        if record.source_path.is_none() {
            record.source_path = source_path;
        }
        record.status = AssetStatus::Pending;
        record.updated_at_ms = now;
        self.catalog.upsert(&record).await?;

        // Store the original (idempotent: content-addressed key).
        let key = MediaKey::for_asset(&asset_id, valid.probe.format);
        let stored = self
            .config
            .retry
            .run("store original", || async {
                if self.store.exists(&key).await? {
                    Ok(self.store.media_ref(&key))
                } else {
                    self.store
                        .put(&key, bytes.clone(), valid.probe.format)
                        .await
                }
            })
            .await;
        let media = match stored {
            Ok(m) => m,
            Err(e) => return Err(self.fail(&asset_id, IngestStage::Store, e).await),
        };
        record.media = Some(media.clone());
        record.status = AssetStatus::Embedding;
        record.updated_at_ms = now_ms();
        self.catalog.upsert(&record).await?;

        // Embed, from the cache when possible.
        let input = MediaInput {
            asset_id: asset_id.clone(),
            format: valid.probe.format,
            bytes,
            stored: Some(media),
            duration_sec: valid.probe.duration_sec,
        };
        let embedded = match self.embedder.embed_media(&input).await {
            Ok(e) => e,
            Err(e) => return Err(self.fail(&asset_id, IngestStage::Embed, e).await),
        };

        // Index: one record per embedding, numbered per space.
        let meta = record.index_meta();
        let records = vector_records(&asset_id, &meta, embedded.embeddings);
        let vectors = records.len();
        let indexed = self
            .config
            .retry
            .run("index vectors", || async {
                if resumed {
                    // A resumed asset may have stale vectors from an earlier attempt.
                    self.index.delete_asset(&asset_id).await?;
                }
                self.upsert_in_batches(&records).await
            })
            .await;
        if let Err(e) = indexed {
            return Err(self.fail(&asset_id, IngestStage::Index, e).await);
        }
        // `Indexed` once durable: the next checkpoint flushes the index and marks it.
        self.unflushed.lock().insert(asset_id.clone());
        Ok(report(IngestOutcome::Indexed, vectors, embedded.cached))
    }

    /// Records a failure in the catalog and returns the error with the stage as context.
    async fn fail(&self, asset: &AssetId, stage: IngestStage, err: Error) -> Error {
        let status = AssetStatus::Failed {
            stage,
            message: err.to_string(),
        };
        if let Err(e) = self.catalog.set_status(asset, &status).await {
            tracing::error!(asset = %asset, error = %e, "could not record the failure in the catalog");
        }
        let err = err.with_context("stage", stage);
        if err.context_value("asset").is_some() {
            err
        } else {
            err.with_context("asset", asset.short())
        }
    }
}

/// One index record per embedding, numbered per space in the order the embeddings come.
fn vector_records(
    asset_id: &AssetId,
    meta: &RecordMeta,
    embeddings: Vec<crate::embedding::Embedding>,
) -> Vec<VectorRecord> {
    let mut seqs: HashMap<EmbeddingSpace, u32> = HashMap::new();
    embeddings
        .into_iter()
        .map(|e| {
            let seq = seqs.entry(e.space).or_insert(0);
            let r = VectorRecord {
                asset_id: asset_id.clone(),
                space: e.space,
                seq: *seq,
                segment: e.segment,
                vector: e.vector,
                meta: meta.clone(),
            };
            *seq += 1;
            r
        })
        .collect()
}

/// What [`Ingestor::reconcile`] found and did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ReconcileReport {
    /// Assets the catalog calls `Indexed` that were checked.
    pub checked: usize,
    /// Of those, assets whose vectors the index lacked.
    pub missing: usize,
    /// Re-indexed from the embedding cache (no provider call).
    pub reindexed: usize,
    /// Not in the cache: marked `Failed` at the index stage for `retry_failed` to re-embed.
    pub requeued: usize,
    /// Deletions a crash interrupted, finished.
    pub deletes_finished: usize,
    /// The index cannot count an asset's vectors cheaply, so nothing was checked.
    pub skipped: bool,
}

/// Reads a file whole, after refusing it by its header and size if it is empty, of an unknown
/// format or over the limit of its kind (so an oversized video is never read into memory).
async fn read_within_limits(path: &Path, limits: &MediaLimits) -> Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut file = tokio::fs::File::open(path).await?;
    let size = file.metadata().await?.len();
    let mut head = [0u8; 64];
    let mut filled = 0;
    while let Some(rest) = head.get_mut(filled..).filter(|r| !r.is_empty()) {
        let n = file.read(rest).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    let head = head.get(..filled).unwrap_or(&[]);
    crate::media::check_size(head, size, limits)?;
    let mut bytes = Vec::with_capacity(size as usize);
    bytes.extend_from_slice(head);
    file.read_to_end(&mut bytes).await?;
    Ok(bytes)
}

#[cfg(test)]
#[path = "ingest_tests.rs"]
mod tests;
