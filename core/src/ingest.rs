//! The ingest pipeline: validate -> hash -> dedupe -> store -> embed (cached) -> index, with
//! per-asset status in the catalog. Nothing lost, nothing done twice.
//!
//! A file is read once, in 4 MiB chunks on the blocking pool: each chunk is hashed (SHA-256),
//! fed to the probe where the format needs the whole content (an MP3's frame count), and
//! written to the store's staged write when the store offers one (`LocalDirStore`: a
//! temporary file renamed into place once the hash names the key). Its header is probed
//! before that from a few small reads, so an oversized or broken file is refused before the
//! read. A store without staged writes (S3) gets the file after the hash and the duplicate
//! check, with the hash (`MediaStore::put_file_checked`: a streamed multipart upload). Memory
//! per file in flight is a few chunks whatever the file's size, plus what the provider needs
//! for media it sends inline.

use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::asset::{AssetId, now_ms};
use crate::catalog::{AssetCatalog, AssetQuery, AssetRecord, AssetState, AssetStatus, IngestStage};
use crate::embedder::CachedEmbedder;
use crate::embedding::{EmbeddingSpace, MediaContent, MediaInput};
use crate::error::{Error, ErrorKind, Result};
use crate::index::{MetaPatch, RecordMeta, VectorIndex, VectorRecord};
use crate::media::{
    HeadProbe, MediaFormat, MediaKind, MediaLimits, ValidatedMedia, check_file_head,
    finish_validation, validate_media,
};
use crate::retry::RetryPolicy;
use crate::store::{MediaKey, MediaRef, MediaStore, StagedWrite};

/// Bytes read from a file per step of the one read that hashes, probes and stores it.
pub const READ_CHUNK_BYTES: usize = 4 * 1024 * 1024;

/// In-memory media at least this large is validated (hashed, probed) on the blocking pool.
const INLINE_VALIDATION_MAX: usize = 256 * 1024;

/// Settings of an [`Ingestor`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
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
        self.tags
            .iter()
            .try_for_each(|t| crate::index::check_tag(t))
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
#[non_exhaustive]
pub enum IngestOutcome {
    /// The asset was embedded (or its embeddings came from the cache) and indexed.
    Indexed,
    /// The same bytes were already indexed: nothing was done.
    AlreadyIndexed,
}

impl IngestOutcome {
    /// The outcome's name as the HTTP API and logs write it (`indexed`, `already_indexed`).
    pub fn as_str(self) -> &'static str {
        match self {
            IngestOutcome::Indexed => "indexed",
            IngestOutcome::AlreadyIndexed => "already_indexed",
        }
    }
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
        progress: impl FnMut(&BatchProgress, &BatchItemResult) + Send,
    ) -> BatchReport {
        let total = items.len();
        self.run_batch(items.into_iter().map(Work::Item), total, progress)
            .await
    }

    /// Runs work units with bounded concurrency: each is started only when a slot is free, so
    /// nothing of a unit is read before its turn.
    async fn run_batch(
        &self,
        work: impl Iterator<Item = Work> + Send,
        total: usize,
        mut progress: impl FnMut(&BatchProgress, &BatchItemResult) + Send,
    ) -> BatchReport {
        let mut report = BatchReport {
            items: Vec::with_capacity(total),
            progress: BatchProgress {
                total,
                ..BatchProgress::default()
            },
        };
        let mut stream = futures::stream::iter(work)
            .map(|unit| async move {
                let label = unit.label();
                let result = match unit {
                    Work::Item(item) => self.ingest_one(item).await,
                    Work::Resume(record) => self.resume_one(*record).await,
                };
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
    /// crash) and runs its remaining stages, with the batch's bounded concurrency.
    ///
    /// Nothing is read up front: an asset whose original is stored resumes from the catalog
    /// record (no re-hash, no re-store); its embeddings come from the cache when it holds them,
    /// and otherwise the provider reads the stored original (in place, or bounded). An asset
    /// whose original never reached the store is ingested again from its source file.
    pub async fn retry_failed(
        &self,
        progress: impl FnMut(&BatchProgress, &BatchItemResult) + Send,
    ) -> Result<BatchReport> {
        // An interrupted deletion is finished, not re-ingested.
        self.finish_interrupted_deletes().await?;
        let mut work = Vec::new();
        let mut query = AssetQuery::new()
            .state(AssetState::Failed)
            .state(AssetState::Pending)
            .state(AssetState::Embedding)
            .limit(1000);
        loop {
            let page = self.catalog.list(&query).await?;
            for record in page.assets {
                match (&record.media, &record.source_path) {
                    (Some(_), _) => work.push(Work::Resume(Box::new(record))),
                    (None, Some(p)) => work.push(Work::Item(IngestItem {
                        source: IngestSource::File(p.clone()),
                        display_name: record.display_name.clone(),
                        tags: record.tags.clone(),
                        fields: record.fields.clone(),
                    })),
                    (None, None) => tracing::warn!(
                        asset = %record.asset_id,
                        "cannot resume: the original was never stored and has no source file"
                    ),
                }
            }
            match page.next_cursor {
                Some(c) => query = query.cursor(c),
                None => break,
            }
        }
        let total = work.len();
        Ok(self.run_batch(work.into_iter(), total, progress).await)
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

    /// Records an accepted file as `Pending` before its ingest runs (in the background), so a
    /// client told "accepted" finds the asset at once and follows its status. Does nothing if
    /// the catalog already knows the asset. The ingest itself then proceeds as usual.
    pub async fn register_pending(&self, valid: &ValidatedMedia, item: &IngestItem) -> Result<()> {
        item.check_metadata()?;
        let _guard = self.locks.lock(&valid.asset_id).await;
        if self.catalog.get(&valid.asset_id).await?.is_some() {
            return Ok(());
        }
        let now = now_ms();
        let record = AssetRecord {
            asset_id: valid.asset_id.clone(),
            probe: valid.probe.clone(),
            size_bytes: valid.size_bytes,
            media: None,
            display_name: item.name(),
            extension_mismatch: valid.extension_mismatch.clone(),
            source_path: None,
            tags: item.tags.clone(),
            fields: item.fields.clone(),
            status: AssetStatus::Pending,
            created_at_ms: now,
            updated_at_ms: now,
        };
        self.catalog.upsert(&record).await
    }

    /// Changes an asset's metadata in place (name, tags, fields), under the asset's lock: the
    /// index's records first (every vector of the asset, made durable), then the catalog. No
    /// embedding is redone. Patches are idempotent, so one that failed part-way can be sent
    /// again. `NotFound` for an unknown asset, `InvalidInput` for a patch that cannot apply
    /// (nothing is changed then).
    pub async fn update_meta(&self, asset: &AssetId, patch: &MetaPatch) -> Result<AssetRecord> {
        patch.validate()?;
        let _guard = self.locks.lock(asset).await;
        let mut record = self.catalog.get(asset).await?.ok_or_else(|| {
            Error::not_found("no such asset in the catalog").with_context("asset", asset.short())
        })?;
        // Checked on a copy first: a patch the record refuses changes nothing anywhere.
        record.apply_patch(patch)?;
        if record.status == AssetStatus::Indexed || self.unflushed.lock().contains(asset) {
            self.index.update_meta(asset, patch).await?;
            self.index.flush().await?;
        }
        self.catalog.update_meta(asset, patch).await
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
        let IngestItem {
            source,
            tags,
            fields,
            ..
        } = item;
        let (valid, content) = match source {
            IngestSource::Bytes(bytes) => {
                let valid =
                    validate_bytes(bytes.clone(), name.clone(), &self.config.limits).await?;
                (valid, Content::Bytes(bytes))
            }
            IngestSource::File(path) => {
                let read = self
                    .read_file(&path, name.as_deref())
                    .await
                    .map_err(|e| with_path(e, &path))?;
                (
                    read.valid,
                    Content::File {
                        path,
                        digest: read.digest,
                        staged: read.staged,
                    },
                )
            }
        };
        let asset_id = valid.asset_id.clone();
        let _guard = self.locks.lock(&asset_id).await;

        let existing = self.catalog.get(&asset_id).await?;
        if existing
            .as_ref()
            .is_some_and(|r| r.status == AssetStatus::Indexed)
            || self.unflushed.lock().contains(&asset_id)
        {
            content.discard().await;
            return Ok(report_for(&valid, IngestOutcome::AlreadyIndexed, 0, false));
        }
        let resumed = existing.is_some();
        let now = now_ms();
        let source_path = content.path().map(Path::to_path_buf);
        let mut record = existing.unwrap_or_else(|| AssetRecord {
            asset_id: asset_id.clone(),
            probe: valid.probe.clone(),
            size_bytes: valid.size_bytes,
            media: None,
            display_name: name.clone(),
            extension_mismatch: valid.extension_mismatch.clone(),
            source_path: source_path.clone(),
            tags: Vec::new(),
            fields: Default::default(),
            status: AssetStatus::Pending,
            created_at_ms: now,
            updated_at_ms: now,
        });
        for t in tags {
            if !record.tags.contains(&t) {
                record.tags.push(t);
            }
        }
        record.fields.extend(fields);
        if record.source_path.is_none() {
            record.source_path = source_path;
        }
        record.status = AssetStatus::Pending;
        record.updated_at_ms = now;
        if let Err(e) = self.catalog.upsert(&record).await {
            content.discard().await;
            return Err(e);
        }

        // Store the original (idempotent: content-addressed key).
        let key = MediaKey::for_asset(&asset_id, valid.probe.format);
        let (media, content) = match self.store_original(&key, valid.probe.format, content).await {
            Ok(stored) => stored,
            Err(e) => return Err(self.fail(&asset_id, IngestStage::Store, e).await),
        };
        record.media = Some(media.clone());
        record.status = AssetStatus::Embedding;
        record.updated_at_ms = now_ms();
        self.catalog.upsert(&record).await?;

        let input = MediaInput::new(asset_id, valid.probe.format, valid.size_bytes, content)
            .with_stored(media, self.store.region())
            .with_duration(valid.probe.duration_sec);
        let (vectors, from_cache) = self.embed_and_index(&record, &input, resumed).await?;
        Ok(report_for(
            &valid,
            IngestOutcome::Indexed,
            vectors,
            from_cache,
        ))
    }

    /// Resumes an asset whose original is stored: from its catalog record, without reading,
    /// hashing or storing the original again.
    async fn resume_one(&self, record: AssetRecord) -> Result<IngestReport> {
        let asset_id = record.asset_id.clone();
        let Some(media) = record.media.clone() else {
            return Err(Error::not_found("the asset's original was never stored")
                .with_context("asset", asset_id.short()));
        };
        let present = self
            .config
            .retry
            .run("find stored original", || self.store.exists(&media.key))
            .await;
        match (present, &record.source_path) {
            (Ok(true), _) => {}
            // The stored copy is gone: ingest again from the source file.
            (_, Some(path)) => {
                let item = IngestItem {
                    source: IngestSource::File(path.clone()),
                    display_name: record.display_name.clone(),
                    tags: record.tags.clone(),
                    fields: record.fields.clone(),
                };
                return self.ingest_one(item).await;
            }
            (Ok(false), None) => {
                let err =
                    Error::not_found("the stored original is gone and there is no source file")
                        .with_context("key", &media.key);
                return Err(self.fail(&asset_id, IngestStage::Store, err).await);
            }
            (Err(e), None) => return Err(self.fail(&asset_id, IngestStage::Store, e).await),
        }
        let _guard = self.locks.lock(&asset_id).await;
        // The record as it is now (a concurrent ingest or delete may have moved it on).
        let Some(mut record) = self.catalog.get(&asset_id).await? else {
            return Err(
                Error::not_found("the asset was removed").with_context("asset", asset_id.short())
            );
        };
        let (kind, format, mismatch) = (
            record.kind(),
            record.format(),
            record.extension_mismatch.clone(),
        );
        let report = |outcome, vectors, from_cache| IngestReport {
            asset_id: asset_id.clone(),
            kind,
            format,
            outcome,
            vectors,
            from_cache,
            extension_mismatch: mismatch.clone(),
        };
        if record.status == AssetStatus::Indexed || self.unflushed.lock().contains(&asset_id) {
            return Ok(report(IngestOutcome::AlreadyIndexed, 0, false));
        }
        record.status = AssetStatus::Embedding;
        record.updated_at_ms = now_ms();
        self.catalog.upsert(&record).await?;
        let input = MediaInput::new(
            asset_id.clone(),
            record.format(),
            record.size_bytes,
            MediaContent::Stored {
                store: Arc::clone(&self.store),
                key: media.key.clone(),
            },
        )
        .with_stored(media, self.store.region())
        .with_duration(record.probe.duration_sec);
        let (vectors, from_cache) = self.embed_and_index(&record, &input, true).await?;
        Ok(report(IngestOutcome::Indexed, vectors, from_cache))
    }

    /// The stages after the store: embed (from the cache when possible), then index one record
    /// per embedding. Returns the vectors written and whether the embeddings came from the
    /// cache.
    async fn embed_and_index(
        &self,
        record: &AssetRecord,
        input: &MediaInput,
        resumed: bool,
    ) -> Result<(usize, bool)> {
        let asset_id = &record.asset_id;
        let embedded = match self.embedder.embed_media(input).await {
            Ok(e) => e,
            Err(e) => return Err(self.fail(asset_id, IngestStage::Embed, e).await),
        };
        let meta = record.index_meta();
        let records = vector_records(asset_id, &meta, embedded.embeddings);
        let vectors = records.len();
        let indexed = self
            .config
            .retry
            .run("index vectors", || async {
                if resumed {
                    // A resumed asset may have stale vectors from an earlier attempt.
                    self.index.delete_asset(asset_id).await?;
                }
                self.upsert_in_batches(&records).await
            })
            .await;
        if let Err(e) = indexed {
            return Err(self.fail(asset_id, IngestStage::Index, e).await);
        }
        // `Indexed` once durable: the next checkpoint flushes the index and marks it.
        self.unflushed.lock().insert(asset_id.clone());
        Ok((vectors, embedded.cached))
    }

    /// Stores the original under `key` unless the store already holds it (content-addressed:
    /// same key, same bytes). Returns where it is and how the provider reads it.
    async fn store_original(
        &self,
        key: &MediaKey,
        format: MediaFormat,
        content: Content,
    ) -> Result<(MediaRef, MediaContent)> {
        let from_store = || MediaContent::Stored {
            store: Arc::clone(&self.store),
            key: key.clone(),
        };
        let exists = || {
            self.config
                .retry
                .run("find stored original", || self.store.exists(key))
        };
        match content {
            Content::Bytes(bytes) => {
                let media = self
                    .config
                    .retry
                    .run("store original", || async {
                        if self.store.exists(key).await? {
                            Ok(self.store.media_ref(key))
                        } else {
                            self.store.put(key, bytes.clone(), format).await
                        }
                    })
                    .await?;
                Ok((media, MediaContent::Bytes(bytes)))
            }
            Content::File {
                staged: Some(staged),
                ..
            } => {
                let present = match exists().await {
                    Ok(p) => p,
                    Err(e) => {
                        staged.abort().await;
                        return Err(e);
                    }
                };
                let media = if present {
                    staged.abort().await;
                    self.store.media_ref(key)
                } else {
                    staged.commit(key).await?
                };
                Ok((media, from_store()))
            }
            Content::File {
                path,
                digest,
                staged: None,
            } => {
                let media = self
                    .config
                    .retry
                    .run("store original", || async {
                        if self.store.exists(key).await? {
                            Ok(self.store.media_ref(key))
                        } else {
                            self.store
                                .put_file_checked(key, &path, format, &digest)
                                .await
                        }
                    })
                    .await
                    .map_err(|e| with_path(e, &path))?;
                Ok((media, from_store()))
            }
        }
    }

    /// Reads a file once: its header first (a few small reads; an oversized, unknown or broken
    /// file is refused here), then the whole content in chunks on the blocking pool, hashing it,
    /// feeding the probe where the format needs the content, and writing the store's staged
    /// write when it offers one.
    async fn read_file(&self, path: &Path, name: Option<&str>) -> Result<FileRead> {
        let (file, size, head) = {
            let path = path.to_path_buf();
            let name = name.map(str::to_owned);
            let limits = self.config.limits.clone();
            tokio::task::spawn_blocking(move || -> Result<_> {
                let file = std::fs::File::open(&path)?;
                let meta = file.metadata()?;
                if !meta.is_file() {
                    return Err(Error::invalid_input("not a regular file"));
                }
                let size = meta.len();
                let head = check_file_head(&file, size, &path, name.as_deref(), &limits)?;
                Ok((file, size, head))
            })
            .await
            .map_err(crate::error::join_error)??
        };
        let mut staged = self.store.stage(head.format()).await?;
        let pass = Pass {
            file,
            hasher: Sha256::new(),
            head,
            offset: 0,
        };
        let outcome = async {
            let pass = read_all(pass, staged.as_mut()).await?;
            if pass.offset != size {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "the file changed while it was read: {size} bytes at the start, {} read",
                        pass.offset
                    ),
                ));
            }
            let digest: [u8; 32] = pass.hasher.finalize().into();
            let valid = finish_validation(
                pass.head,
                AssetId::from_digest(digest),
                size,
                name,
                &self.config.limits,
            )?;
            Ok((digest, valid))
        }
        .await;
        match outcome {
            Ok((digest, valid)) => Ok(FileRead {
                valid,
                digest,
                staged,
            }),
            Err(e) => {
                if let Some(s) = staged.take() {
                    s.abort().await;
                }
                Err(e)
            }
        }
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

/// One unit of a batch: an item to ingest, or a stored asset to resume.
enum Work {
    Item(IngestItem),
    Resume(Box<AssetRecord>),
}

impl Work {
    fn label(&self) -> String {
        match self {
            Work::Item(item) => item.label(),
            Work::Resume(record) => record
                .display_name
                .clone()
                .unwrap_or_else(|| record.asset_id.to_string()),
        }
    }
}

/// An item's content between validation and the store.
enum Content {
    Bytes(Bytes),
    File {
        path: PathBuf,
        digest: [u8; 32],
        /// What the store received during the read, to commit under the key.
        staged: Option<Box<dyn StagedWrite>>,
    },
}

impl Content {
    fn path(&self) -> Option<&Path> {
        match self {
            Content::File { path, .. } => Some(path),
            Content::Bytes(_) => None,
        }
    }

    /// Drops what was staged for a content that will not be stored.
    async fn discard(self) {
        if let Content::File {
            staged: Some(staged),
            ..
        } = self
        {
            staged.abort().await;
        }
    }
}

/// A file read once: what it is, its hash, what the store staged.
struct FileRead {
    valid: ValidatedMedia,
    digest: [u8; 32],
    staged: Option<Box<dyn StagedWrite>>,
}

/// The state of the one read of a file, moved to the blocking pool for each chunk.
struct Pass {
    file: std::fs::File,
    hasher: Sha256,
    head: HeadProbe,
    offset: u64,
}

/// Reads the file to its end: each chunk hashed and fed to the probe on the blocking pool,
/// then written to `staged`.
async fn read_all(mut pass: Pass, mut staged: Option<&mut Box<dyn StagedWrite>>) -> Result<Pass> {
    loop {
        let (next, chunk) = tokio::task::spawn_blocking(move || -> Result<_> {
            use std::io::Read;
            let mut buf = vec![0u8; READ_CHUNK_BYTES];
            let mut filled = 0;
            while filled < buf.len() {
                let Some(rest) = buf.get_mut(filled..) else {
                    break;
                };
                match pass.file.read(rest) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e.into()),
                }
            }
            buf.truncate(filled);
            pass.hasher.update(&buf);
            if pass.head.wants_content() {
                pass.head.feed(pass.offset, &buf);
            }
            pass.offset += filled as u64;
            Ok((pass, Bytes::from(buf)))
        })
        .await
        .map_err(crate::error::join_error)??;
        pass = next;
        if chunk.is_empty() {
            return Ok(pass);
        }
        if let Some(staged) = staged.as_mut() {
            staged.write(chunk).await?;
        }
    }
}

/// Validates media held in memory (hashing and probing large bytes on the blocking pool).
async fn validate_bytes(
    bytes: Bytes,
    name: Option<String>,
    limits: &MediaLimits,
) -> Result<ValidatedMedia> {
    if bytes.len() < INLINE_VALIDATION_MAX {
        return validate_media(&bytes, name.as_deref(), limits);
    }
    let limits = limits.clone();
    tokio::task::spawn_blocking(move || validate_media(&bytes, name.as_deref(), &limits))
        .await
        .map_err(crate::error::join_error)?
}

/// The report of an ingest of `valid`.
fn report_for(
    valid: &ValidatedMedia,
    outcome: IngestOutcome,
    vectors: usize,
    from_cache: bool,
) -> IngestReport {
    IngestReport {
        asset_id: valid.asset_id.clone(),
        kind: valid.probe.kind(),
        format: valid.probe.format,
        outcome,
        vectors,
        from_cache,
        extension_mismatch: valid.extension_mismatch.clone(),
    }
}

/// Adds the file's path to an error (once).
fn with_path(err: Error, path: &Path) -> Error {
    if err.context_value("path").is_some() {
        err
    } else {
        err.with_context("path", path.display())
    }
}

#[cfg(test)]
#[path = "ingest_tests.rs"]
mod tests;
