//! `GET /api/assets/{id}/media` reads the original with `MediaStore::get_range`: a `Range`
//! request reads only its bytes, a whole download streams in pieces, `get` is never called.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use crossmodal_core::{
    Embedding, EmbeddingProvider, Engine, EngineParts, FlatIndex, IndexSpec, IngestItem, KeyPage,
    MediaFormat, MediaInput, MediaKey, MediaRef, MediaStore, MemoryStore, ModelInfo, Result,
    SqliteCatalog, StagedWrite,
};
use crossmodal_server::{AuthConfig, ServerConfig, router};

/// A `MemoryStore` that records every read.
#[derive(Default)]
struct RecordingStore {
    inner: MemoryStore,
    whole_reads: Mutex<usize>,
    ranges: Mutex<Vec<Range<u64>>>,
}

#[async_trait]
impl MediaStore for RecordingStore {
    async fn put(&self, key: &MediaKey, bytes: Bytes, format: MediaFormat) -> Result<MediaRef> {
        self.inner.put(key, bytes, format).await
    }
    async fn stage(&self, format: MediaFormat) -> Result<Option<Box<dyn StagedWrite>>> {
        self.inner.stage(format).await
    }
    async fn put_file(&self, key: &MediaKey, path: &Path, format: MediaFormat) -> Result<MediaRef> {
        self.inner.put_file(key, path, format).await
    }
    async fn get(&self, key: &MediaKey) -> Result<Bytes> {
        *self.whole_reads.lock().unwrap() += 1;
        self.inner.get(key).await
    }
    async fn get_range(&self, key: &MediaKey, range: Range<u64>) -> Result<Bytes> {
        self.ranges.lock().unwrap().push(range.clone());
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
    async fn preview_url(&self, key: &MediaKey, ttl: Duration) -> Result<url::Url> {
        self.inner.preview_url(key, ttl).await
    }
}

struct OneVector(ModelInfo);

#[async_trait]
impl EmbeddingProvider for OneVector {
    fn model(&self) -> &ModelInfo {
        &self.0
    }
    async fn embed_text(&self, _: &str) -> Result<Vec<f32>> {
        Ok(vec![1.0, 0.0])
    }
    async fn embed_media(&self, media: &MediaInput) -> Result<Vec<Embedding>> {
        Ok(self
            .0
            .spaces_for(media.kind())
            .iter()
            .map(|s| Embedding {
                space: *s,
                segment: None,
                vector: vec![1.0, 0.0],
            })
            .collect())
    }
}

#[tokio::test]
async fn media_downloads_read_ranges_of_the_store() {
    let model = ModelInfo {
        id: "test".into(),
        dimension: 2,
        ..ModelInfo::marengo_3_0()
    };
    let store = Arc::new(RecordingStore::default());
    let engine = Engine::from_parts(EngineParts::new(
        Arc::new(OneVector(model.clone())),
        store.clone(),
        Arc::new(FlatIndex::new(IndexSpec::for_model(&model))),
        Arc::new(SqliteCatalog::open_in_memory().unwrap()),
    ))
    .unwrap();
    let png = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/media/image.png"
    ))
    .unwrap();
    let id = engine
        .ingest(IngestItem::bytes(png.clone(), "p.png"))
        .await
        .unwrap()
        .asset_id;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = ServerConfig::builder()
        .auth(AuthConfig::disabled())
        .build()
        .unwrap();
    let app = router(engine, config);
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap()
    });
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/api/assets/{id}/media");

    store.ranges.lock().unwrap().clear();
    let r = http
        .get(&url)
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 206);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &png[10..20]);
    assert_eq!(*store.ranges.lock().unwrap(), vec![10..20]);

    store.ranges.lock().unwrap().clear();
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), png.as_slice());
    let len = png.len() as u64;
    assert_eq!(*store.ranges.lock().unwrap(), vec![0..len]);
    assert_eq!(
        *store.whole_reads.lock().unwrap(),
        0,
        "no whole-object read"
    );
}
