//! Helpers shared by the crate's unit tests (compiled only under `cfg(test)`).

use async_trait::async_trait;
use bytes::Bytes;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use url::Url;

use crate::asset::AssetId;
use crate::embedding::{Embedding, MediaInput, ModelInfo, Segment};
use crate::error::{Error, ErrorKind, Result};
use crate::index::{
    FlatIndex, Hit, IndexCapabilities, IndexSpec, IndexStats, VectorIndex, VectorQuery,
    VectorRecord,
};
use crate::media::{MediaFormat, MediaKind};
use crate::store::{KeyPage, MediaKey, MediaRef, MediaStore, MemoryStore};

/// The tiny real media fixtures.
pub fn fixture(name: &str) -> Bytes {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/media")
        .join(name);
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// A 4-dimensional model shaped like Marengo 3.0.
pub fn tiny_model() -> ModelInfo {
    ModelInfo {
        id: "test-model".into(),
        dimension: 4,
        max_text_chars: 100,
        ..ModelInfo::marengo_3_0()
    }
}

/// A deterministic unit-ish vector from a label.
pub fn vec_for(label: &str) -> Vec<f32> {
    let h = AssetId::from_content(label.as_bytes());
    let b = h.as_str().as_bytes();
    (0..4).map(|i| f32::from(b[i]) / 100.0 - 0.5).collect()
}

/// What the test provider returns for media of each kind: one vector per space the model
/// declares (two segments for video and audio), derived from the content hash.
pub fn embeddings_for(model: &ModelInfo, media: &MediaInput) -> Vec<Embedding> {
    let segs: Vec<Option<Segment>> = match media.kind() {
        MediaKind::Image => vec![None],
        _ => vec![Segment::new(0.0, 1.0).ok(), Segment::new(1.0, 2.0).ok()],
    };
    let mut out = Vec::new();
    for space in model.spaces_for(media.kind()) {
        for (i, seg) in segs.iter().enumerate() {
            out.push(Embedding {
                space: *space,
                segment: *seg,
                vector: vec_for(&format!("{}:{space}:{i}", media.asset_id)),
            });
        }
    }
    out
}

/// A provider for tests: deterministic vectors, counted calls, injectable failures.
pub struct TestProvider {
    pub model: ModelInfo,
    pub media_calls: AtomicUsize,
    pub text_calls: AtomicUsize,
    pub fail_media: AtomicBool,
    pub delay: Option<Duration>,
}

impl TestProvider {
    pub fn new() -> Arc<Self> {
        Arc::new(TestProvider {
            model: tiny_model(),
            media_calls: AtomicUsize::new(0),
            text_calls: AtomicUsize::new(0),
            fail_media: AtomicBool::new(false),
            delay: None,
        })
    }

    pub fn media_calls(&self) -> usize {
        self.media_calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl crate::EmbeddingProvider for TestProvider {
    fn model(&self) -> &ModelInfo {
        &self.model
    }

    async fn embed_text(&self, text: &str) -> Result<Vec<f32>> {
        self.text_calls.fetch_add(1, Ordering::SeqCst);
        Ok(vec_for(text))
    }

    async fn embed_media(&self, media: &MediaInput) -> Result<Vec<Embedding>> {
        self.media_calls.fetch_add(1, Ordering::SeqCst);
        if let Some(d) = self.delay {
            tokio::time::sleep(d).await;
        }
        if self.fail_media.load(Ordering::SeqCst) {
            return Err(Error::new(ErrorKind::ModelFailed, "injected model failure"));
        }
        Ok(embeddings_for(&self.model, media))
    }

    /// The text's vector (so a test can aim a composed query at a known record).
    async fn embed_text_image(&self, text: &str, _image: &MediaInput) -> Result<Vec<f32>> {
        self.text_calls.fetch_add(1, Ordering::SeqCst);
        Ok(vec_for(text))
    }
}

/// A `MemoryStore` whose writes can be made to fail, counting its reads and writes.
#[derive(Default)]
pub struct FlakyStore {
    pub inner: MemoryStore,
    pub fail_put: AtomicBool,
    /// Whole-object reads (`get`).
    pub gets: AtomicUsize,
    /// Ranged reads (`get_range`).
    pub range_reads: AtomicUsize,
    /// `put_file` / `put_file_checked` calls.
    pub file_puts: AtomicUsize,
}

impl FlakyStore {
    /// Reads of originals of any kind so far.
    pub fn reads(&self) -> usize {
        self.gets.load(Ordering::SeqCst) + self.range_reads.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl MediaStore for FlakyStore {
    async fn put(&self, key: &MediaKey, bytes: Bytes, format: MediaFormat) -> Result<MediaRef> {
        if self.fail_put.load(Ordering::SeqCst) {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                "injected store failure",
            ));
        }
        self.inner.put(key, bytes, format).await
    }
    async fn put_file(&self, key: &MediaKey, path: &Path, format: MediaFormat) -> Result<MediaRef> {
        self.file_puts.fetch_add(1, Ordering::SeqCst);
        if self.fail_put.load(Ordering::SeqCst) {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                "injected store failure",
            ));
        }
        self.inner.put_file(key, path, format).await
    }
    async fn get(&self, key: &MediaKey) -> Result<Bytes> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get(key).await
    }
    async fn get_range(&self, key: &MediaKey, range: std::ops::Range<u64>) -> Result<Bytes> {
        self.range_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.get_range(key, range).await
    }
    async fn delete(&self, key: &MediaKey) -> Result<bool> {
        self.inner.delete(key).await
    }
    async fn exists(&self, key: &MediaKey) -> Result<bool> {
        self.inner.exists(key).await
    }
    async fn list(&self, prefix: &str, after: Option<MediaKey>, limit: usize) -> Result<KeyPage> {
        self.inner.list(prefix, after, limit).await
    }
    fn media_ref(&self, key: &MediaKey) -> MediaRef {
        self.inner.media_ref(key)
    }
    async fn preview_url(&self, key: &MediaKey, ttl: Duration) -> Result<Url> {
        self.inner.preview_url(key, ttl).await
    }
}

/// A `FlatIndex` whose upserts can be made to fail.
pub struct FlakyIndex {
    pub inner: FlatIndex,
    pub fail_upsert: AtomicBool,
    pub fail_flush: AtomicBool,
    /// Successful flushes.
    pub flushes: AtomicUsize,
    /// The `k` of every search, in order.
    pub asked: std::sync::Mutex<Vec<usize>>,
}

impl FlakyIndex {
    pub fn new(model: &ModelInfo) -> Self {
        FlakyIndex {
            inner: FlatIndex::new(IndexSpec::for_model(model)),
            fail_upsert: AtomicBool::new(false),
            fail_flush: AtomicBool::new(false),
            flushes: AtomicUsize::new(0),
            asked: std::sync::Mutex::new(Vec::new()),
        }
    }
}

#[async_trait]
impl VectorIndex for FlakyIndex {
    fn spec(&self) -> &IndexSpec {
        self.inner.spec()
    }
    fn capabilities(&self) -> IndexCapabilities {
        self.inner.capabilities()
    }
    async fn upsert(&self, records: Vec<VectorRecord>) -> Result<()> {
        if self.fail_upsert.load(Ordering::SeqCst) {
            return Err(Error::new(ErrorKind::Backend, "injected index failure"));
        }
        self.inner.upsert(records).await
    }
    async fn search(&self, query: &VectorQuery) -> Result<Vec<Hit>> {
        if let Ok(mut asked) = self.asked.lock() {
            asked.push(query.k);
        }
        self.inner.search(query).await
    }
    async fn delete_asset(&self, asset: &AssetId) -> Result<usize> {
        self.inner.delete_asset(asset).await
    }
    async fn stats(&self) -> Result<IndexStats> {
        self.inner.stats().await
    }
    async fn flush(&self) -> Result<()> {
        if self.fail_flush.load(Ordering::SeqCst) {
            return Err(Error::new(ErrorKind::Unavailable, "injected flush failure"));
        }
        self.flushes.fetch_add(1, Ordering::SeqCst);
        self.inner.flush().await
    }
}
