//! Unit tests of the ingest state machine.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::*;
use crate::cache::MemoryEmbeddingCache;
use crate::catalog::SqliteCatalog;
use crate::error::ErrorKind;
use crate::index::FlatIndex;
use crate::store::MemoryStore;
use crate::test_support::*;

struct Rig {
    provider: Arc<TestProvider>,
    store: Arc<FlakyStore>,
    index: Arc<FlakyIndex>,
    catalog: Arc<SqliteCatalog>,
    ingestor: Ingestor,
}

fn rig_with(provider: Arc<TestProvider>) -> Rig {
    rig_configured(provider, IngestConfig::default().retry(RetryPolicy::none()))
}

fn rig_configured(provider: Arc<TestProvider>, config: IngestConfig) -> Rig {
    let store = Arc::new(FlakyStore::default());
    let index = Arc::new(FlakyIndex::new(&provider.model));
    let catalog = Arc::new(SqliteCatalog::open_in_memory().unwrap());
    let embedder = CachedEmbedder::new(
        provider.clone(),
        Some(Arc::new(MemoryEmbeddingCache::new(None))),
        RetryPolicy::none(),
    );
    let ingestor = Ingestor::new(
        embedder,
        store.clone(),
        index.clone(),
        catalog.clone(),
        config,
    )
    .unwrap();
    Rig {
        provider,
        store,
        index,
        catalog,
        ingestor,
    }
}

fn rig() -> Rig {
    rig_with(TestProvider::new())
}

impl Rig {
    async fn status(&self, id: &AssetId) -> AssetStatus {
        self.catalog.get(id).await.unwrap().unwrap().status
    }
    async fn vectors(&self) -> u64 {
        self.index.stats().await.unwrap().vectors()
    }
}

#[tokio::test]
async fn each_kind_is_stored_embedded_and_indexed() {
    let rig = rig();
    for (name, kind, vectors) in [
        ("image.png", MediaKind::Image, 1),
        ("video.mp4", MediaKind::Video, 6),
        ("audio.wav", MediaKind::Audio, 4),
    ] {
        let r = rig
            .ingestor
            .ingest(IngestItem::bytes(fixture(name), name).tags(["demo"]))
            .await
            .unwrap();
        assert_eq!(r.outcome, IngestOutcome::Indexed);
        assert_eq!(r.kind, kind);
        assert_eq!(r.vectors, vectors, "{name}");
        assert!(!r.from_cache);
        assert_eq!(r.extension_mismatch, None);
        let rec = rig.catalog.get(&r.asset_id).await.unwrap().unwrap();
        assert_eq!(rec.status, AssetStatus::Indexed);
        assert_eq!(rec.display_name.as_deref(), Some(name));
        assert_eq!(rec.tags, vec!["demo".to_string()]);
        let media = rec.media.expect("stored");
        assert_eq!(rig.store.get(&media.key).await.unwrap(), fixture(name));
    }
    assert_eq!(rig.vectors().await, 11);
    assert_eq!(rig.provider.media_calls(), 3);
}

#[tokio::test]
async fn identical_bytes_are_done_once() {
    let rig = rig();
    let first = rig
        .ingestor
        .ingest(IngestItem::bytes(fixture("image.jpg"), "a.jpg"))
        .await
        .unwrap();
    let second = rig
        .ingestor
        .ingest(IngestItem::bytes(fixture("image.jpg"), "copy.jpg"))
        .await
        .unwrap();
    assert_eq!(second.outcome, IngestOutcome::AlreadyIndexed);
    assert_eq!(first.asset_id, second.asset_id);
    assert_eq!(rig.provider.media_calls(), 1);
    assert_eq!(rig.vectors().await, 1);
}

#[tokio::test]
async fn concurrent_copies_in_a_batch_embed_once() {
    let rig = rig();
    let items: Vec<IngestItem> = (0..6)
        .map(|i| IngestItem::bytes(fixture("audio.mp3"), format!("copy{i}.mp3")))
        .collect();
    let report = rig.ingestor.ingest_batch(items, |_, _| {}).await;
    assert_eq!(report.progress.indexed, 1);
    assert_eq!(report.progress.duplicates, 5);
    assert_eq!(rig.provider.media_calls(), 1);
}

#[tokio::test]
async fn bad_files_fail_validation_and_touch_nothing() {
    let rig = rig();
    let png = fixture("image.png");
    let cases: Vec<(&str, Bytes, ErrorKind)> = vec![
        ("empty.png", Bytes::new(), ErrorKind::InvalidInput),
        (
            "notes.png",
            Bytes::from_static(b"just some text"),
            ErrorKind::Unsupported,
        ),
        ("half.png", png.slice(..png.len() / 2), ErrorKind::Corrupt),
    ];
    for (name, bytes, kind) in cases {
        let err = rig
            .ingestor
            .ingest(IngestItem::bytes(bytes, name))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), kind, "{name}: {err}");
        assert_eq!(err.context_value("file"), Some(name));
    }
    assert_eq!(rig.catalog.counts().await.unwrap().total(), 0);
    assert!(
        rig.store
            .inner
            .list("", None, 10)
            .await
            .unwrap()
            .keys
            .is_empty()
    );
    assert_eq!(rig.provider.media_calls(), 0);
}

#[tokio::test]
async fn oversized_files_are_rejected_before_anything_is_stored() {
    let provider = TestProvider::new();
    let rig = rig_with(provider);
    let small = Ingestor {
        config: IngestConfig::default().limits(MediaLimits::default().with_max_bytes(100)),
        ..rig.ingestor.clone()
    };
    let err = small
        .ingest(IngestItem::bytes(fixture("audio.wav"), "big.wav"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.message().contains("limit"), "{err}");
    assert_eq!(rig.catalog.counts().await.unwrap().total(), 0);
}

#[tokio::test]
async fn mislabelled_files_are_accepted_by_content_and_reported() {
    let rig = rig();
    let r = rig
        .ingestor
        .ingest(IngestItem::bytes(fixture("image.jpg"), "holiday.png"))
        .await
        .unwrap();
    assert_eq!(r.format, MediaFormat::Jpeg);
    assert_eq!(
        r.extension_mismatch.as_deref(),
        Some("name says .png, content is jpg")
    );
    let rec = rig.catalog.get(&r.asset_id).await.unwrap().unwrap();
    assert_eq!(rec.extension_mismatch, r.extension_mismatch);
}

#[tokio::test]
async fn store_failure_is_recorded_and_retry_resumes() {
    let rig = rig();
    rig.store.fail_put.store(true, Ordering::SeqCst);
    let err = rig
        .ingestor
        .ingest(IngestItem::bytes(fixture("image.webp"), "w.webp"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert_eq!(err.context_value("stage"), Some("store"));
    let id = AssetId::from_content(&fixture("image.webp"));
    assert!(matches!(
        rig.status(&id).await,
        AssetStatus::Failed {
            stage: IngestStage::Store,
            ..
        }
    ));
    assert_eq!(
        rig.provider.media_calls(),
        0,
        "no model call before the original is safe"
    );
    // The original never reached the store and came from memory: re-ingesting the bytes
    // resumes the asset.
    rig.store.fail_put.store(false, Ordering::SeqCst);
    let r = rig
        .ingestor
        .ingest(IngestItem::bytes(fixture("image.webp"), "w.webp"))
        .await
        .unwrap();
    assert_eq!(r.outcome, IngestOutcome::Indexed);
    assert_eq!(rig.status(&id).await, AssetStatus::Indexed);
}

#[tokio::test]
async fn store_failure_of_a_file_is_retried_from_its_path() {
    let rig = rig();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip.mov");
    std::fs::write(&path, fixture("video.mov")).unwrap();
    rig.store.fail_put.store(true, Ordering::SeqCst);
    assert!(rig.ingestor.ingest_file(&path).await.is_err());
    rig.store.fail_put.store(false, Ordering::SeqCst);
    let report = rig.ingestor.retry_failed(|_, _| {}).await.unwrap();
    assert_eq!(report.progress.indexed, 1, "{:?}", report.items);
    let id = AssetId::from_content(&fixture("video.mov"));
    assert_eq!(rig.status(&id).await, AssetStatus::Indexed);
}

#[tokio::test]
async fn embed_failure_keeps_the_original_and_retry_resumes() {
    let rig = rig();
    rig.provider.fail_media.store(true, Ordering::SeqCst);
    let err = rig
        .ingestor
        .ingest(IngestItem::bytes(fixture("audio.m4a"), "a.m4a"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ModelFailed);
    let id = AssetId::from_content(&fixture("audio.m4a"));
    let rec = rig.catalog.get(&id).await.unwrap().unwrap();
    assert!(matches!(
        rec.status,
        AssetStatus::Failed { stage: IngestStage::Embed, ref message } if message.contains("injected")
    ));
    assert_eq!(
        rig.store.get(&rec.media.unwrap().key).await.unwrap(),
        fixture("audio.m4a"),
        "the original is kept"
    );
    assert_eq!(rig.vectors().await, 0);
    rig.provider.fail_media.store(false, Ordering::SeqCst);
    let report = rig.ingestor.retry_failed(|_, _| {}).await.unwrap();
    assert_eq!(report.progress.indexed, 1);
    assert_eq!(rig.status(&id).await, AssetStatus::Indexed);
    assert_eq!(rig.vectors().await, 4);
}

#[tokio::test]
async fn index_failure_is_retried_from_the_cache_without_a_model_call() {
    let rig = rig();
    rig.index.fail_upsert.store(true, Ordering::SeqCst);
    let err = rig
        .ingestor
        .ingest(IngestItem::bytes(fixture("video.mp4"), "v.mp4"))
        .await
        .unwrap_err();
    assert_eq!(err.context_value("stage"), Some("index"));
    let id = AssetId::from_content(&fixture("video.mp4"));
    assert!(matches!(
        rig.status(&id).await,
        AssetStatus::Failed {
            stage: IngestStage::Index,
            ..
        }
    ));
    assert_eq!(rig.provider.media_calls(), 1);
    rig.index.fail_upsert.store(false, Ordering::SeqCst);
    let mut seen = Vec::new();
    let report = rig
        .ingestor
        .retry_failed(|p, item| seen.push((p.done, item.label.clone())))
        .await
        .unwrap();
    assert_eq!(report.progress.indexed, 1);
    assert_eq!(seen, vec![(1, "v.mp4".to_string())]);
    let ok = report.items[0].result.as_ref().unwrap();
    assert!(ok.from_cache, "embeddings came from the cache");
    assert_eq!(rig.provider.media_calls(), 1, "no second model call");
    assert_eq!(rig.status(&id).await, AssetStatus::Indexed);
}

#[tokio::test]
async fn a_bad_file_never_stops_a_batch() {
    let rig = rig();
    let items = vec![
        IngestItem::bytes(fixture("image.png"), "ok.png"),
        IngestItem::bytes(Bytes::from_static(b"garbage"), "bad.png"),
        IngestItem::bytes(fixture("audio.wav"), "ok.wav"),
        IngestItem::bytes(fixture("image.png"), "dup.png"),
        IngestItem::file("/definitely/not/here.mp4"),
    ];
    let mut calls = 0;
    let report = rig
        .ingestor
        .ingest_batch(items, |p, _| {
            calls += 1;
            assert_eq!(p.done, calls);
            assert_eq!(p.total, 5);
        })
        .await;
    assert_eq!(calls, 5);
    let p = report.progress;
    assert_eq!((p.indexed, p.duplicates, p.failed), (2, 1, 2));
    let failures: Vec<(&str, ErrorKind)> = report.failures().map(|(l, e)| (l, e.kind())).collect();
    assert!(failures.contains(&("bad.png", ErrorKind::Unsupported)));
    assert!(failures.contains(&("/definitely/not/here.mp4", ErrorKind::NotFound)));
}

#[tokio::test]
async fn delete_removes_vectors_original_and_record() {
    let rig = rig();
    let r = rig
        .ingestor
        .ingest(IngestItem::bytes(fixture("video.mov"), "v.mov"))
        .await
        .unwrap();
    let key = rig
        .catalog
        .get(&r.asset_id)
        .await
        .unwrap()
        .unwrap()
        .media
        .unwrap()
        .key;
    assert!(rig.ingestor.delete(&r.asset_id).await.unwrap());
    assert_eq!(rig.vectors().await, 0);
    assert!(!rig.store.exists(&key).await.unwrap());
    assert!(rig.catalog.get(&r.asset_id).await.unwrap().is_none());
    assert!(
        !rig.ingestor.delete(&r.asset_id).await.unwrap(),
        "second delete finds nothing"
    );
}

#[tokio::test]
async fn index_of_another_model_is_refused() {
    let provider = TestProvider::new();
    let index = Arc::new(FlatIndex::new(crate::IndexSpec::new("other", 4)));
    let err = Ingestor::new(
        CachedEmbedder::new(provider, None, RetryPolicy::none()),
        Arc::new(FlakyStore::default()),
        index,
        Arc::new(SqliteCatalog::open_in_memory().unwrap()),
        IngestConfig::default(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
}

#[tokio::test]
async fn bad_provider_output_fails_the_embed_stage() {
    use crate::embedding::MockEmbeddingProvider;
    let mut mock = MockEmbeddingProvider::new();
    mock.expect_model().return_const(tiny_model());
    mock.expect_options_fingerprint().returning(String::new);
    mock.expect_retries_internally().return_const(false);
    mock.expect_embed_media().times(1).returning(|_| {
        Ok(vec![crate::Embedding {
            space: EmbeddingSpace::Visual,
            segment: None,
            vector: vec![f32::NAN, 0.0, 0.0, 1.0],
        }])
    });
    let provider: Arc<dyn crate::EmbeddingProvider> = Arc::new(mock);
    let catalog = Arc::new(SqliteCatalog::open_in_memory().unwrap());
    let ingestor = Ingestor::new(
        CachedEmbedder::new(provider, None, RetryPolicy::none()),
        Arc::new(FlakyStore::default()),
        Arc::new(FlatIndex::new(crate::IndexSpec::for_model(&tiny_model()))),
        catalog.clone(),
        IngestConfig::default(),
    )
    .unwrap();
    let err = ingestor
        .ingest(IngestItem::bytes(fixture("image.png"), "p.png"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ModelFailed);
    let id = AssetId::from_content(&fixture("image.png"));
    assert!(matches!(
        catalog.get(&id).await.unwrap().unwrap().status,
        AssetStatus::Failed {
            stage: IngestStage::Embed,
            ..
        }
    ));
}

#[tokio::test]
async fn an_asset_is_indexed_only_once_its_vectors_are_flushed() {
    let Rig {
        provider,
        index,
        catalog,
        ingestor,
        ..
    } = rig_configured(
        TestProvider::new(),
        IngestConfig::default()
            .retry(RetryPolicy::none())
            .flush_each(false),
    );
    let r = ingestor
        .ingest(IngestItem::bytes(fixture("image.png"), "a.png"))
        .await
        .unwrap();
    assert_eq!(r.outcome, IngestOutcome::Indexed);
    // Searchable at once, but not durable yet: still `Embedding`.
    assert_eq!(index.stats().await.unwrap().vectors(), 1);
    let status = |c: Arc<SqliteCatalog>, id: AssetId| async move {
        c.get(&id).await.unwrap().unwrap().status
    };
    assert_eq!(
        status(catalog.clone(), r.asset_id.clone()).await,
        AssetStatus::Embedding
    );
    assert_eq!(index.flushes.load(Ordering::SeqCst), 0);
    // The same bytes again while unflushed: a duplicate, not a second embedding.
    let again = ingestor
        .ingest(IngestItem::bytes(fixture("image.png"), "b.png"))
        .await
        .unwrap();
    assert_eq!(again.outcome, IngestOutcome::AlreadyIndexed);
    assert_eq!(provider.media_calls(), 1);

    assert_eq!(ingestor.checkpoint().await.unwrap(), 1);
    assert_eq!(index.flushes.load(Ordering::SeqCst), 1);
    assert_eq!(
        status(catalog.clone(), r.asset_id.clone()).await,
        AssetStatus::Indexed
    );
    // Nothing left to mark.
    assert_eq!(ingestor.checkpoint().await.unwrap(), 0);
}

#[tokio::test]
async fn a_failed_flush_fails_the_batch_items_and_retry_reindexes_from_the_cache() {
    let rig = rig();
    rig.index.fail_flush.store(true, Ordering::SeqCst);
    let items = vec![
        IngestItem::bytes(fixture("image.png"), "a.png"),
        IngestItem::bytes(fixture("audio.wav"), "b.wav"),
    ];
    let report = rig.ingestor.ingest_batch(items, |_, _| {}).await;
    let failures: Vec<&str> = report.failures().map(|(label, _)| label).collect();
    assert_eq!(failures, vec!["<index flush>"]);
    let ids: Vec<AssetId> = report
        .items
        .iter()
        .filter_map(|i| i.result.as_ref().ok().map(|r| r.asset_id.clone()))
        .collect();
    assert_eq!(ids.len(), 2);
    for id in &ids {
        match rig.status(id).await {
            AssetStatus::Failed { stage, message } => {
                assert_eq!(stage, IngestStage::Index);
                assert!(message.contains("injected flush failure"), "{message}");
            }
            other => panic!("expected Failed at the index stage, got {other:?}"),
        }
    }
    rig.index.fail_flush.store(false, Ordering::SeqCst);
    let retried = rig.ingestor.retry_failed(|_, _| {}).await.unwrap();
    assert_eq!(retried.progress.indexed, 2, "{:?}", retried.items);
    for id in &ids {
        assert_eq!(rig.status(id).await, AssetStatus::Indexed);
    }
    // Re-indexed from the cache: the provider saw each file once; no vector twice.
    assert_eq!(rig.provider.media_calls(), 2);
    assert_eq!(rig.vectors().await, 5);
}

#[tokio::test]
async fn an_asset_closed_before_its_flush_stays_unindexed_and_resumes_from_the_cache() {
    // (A process killed before the flush loses the unflushed log tail instead; the process-level
    // kill tests in tests/ cover that. Either way the asset is never marked Indexed without
    // durable vectors, and resuming it adds no vector twice.)
    use crate::cache::SqliteEmbeddingCache;
    let dir = tempfile::tempdir().unwrap();
    let provider = TestProvider::new();
    let open = || {
        let spec = crate::index::IndexSpec::for_model(&provider.model);
        let index = Arc::new(FlatIndex::open(dir.path().join("index"), spec).unwrap());
        let catalog = Arc::new(SqliteCatalog::open(dir.path().join("catalog.db")).unwrap());
        let cache = SqliteEmbeddingCache::open(dir.path().join("catalog.db"), None).unwrap();
        let ingestor = Ingestor::new(
            CachedEmbedder::new(provider.clone(), Some(Arc::new(cache)), RetryPolicy::none()),
            Arc::new(crate::store::LocalDirStore::open(dir.path().join("media")).unwrap()),
            index.clone(),
            catalog.clone(),
            IngestConfig::default()
                .retry(RetryPolicy::none())
                .flush_each(false),
        )
        .unwrap();
        (ingestor, index, catalog)
    };
    let (ingestor, index, _) = open();
    let r = ingestor
        .ingest(IngestItem::bytes(fixture("video.mp4"), "clip.mp4"))
        .await
        .unwrap();
    assert_eq!(index.stats().await.unwrap().vectors(), 6);
    // Closed here without a flush (or checkpoint): the catalog never heard the asset was durable.
    drop((ingestor, index));

    let (ingestor, index, catalog) = open();
    assert!(
        [0, 6].contains(&index.stats().await.unwrap().vectors()),
        "the log tail is kept whole or dropped whole"
    );
    assert_eq!(
        catalog.get(&r.asset_id).await.unwrap().unwrap().status,
        AssetStatus::Embedding,
        "an asset whose vectors were lost must not be marked indexed"
    );
    let resumed = ingestor.retry_failed(|_, _| {}).await.unwrap();
    assert_eq!(resumed.progress.indexed, 1, "{:?}", resumed.items);
    let item = resumed.items[0].result.as_ref().unwrap();
    assert!(item.from_cache, "resumed from the embedding cache");
    assert_eq!(provider.media_calls(), 1);
    assert_eq!(index.stats().await.unwrap().vectors(), 6);
    assert_eq!(
        catalog.get(&r.asset_id).await.unwrap().unwrap().status,
        AssetStatus::Indexed
    );
}

#[tokio::test]
async fn an_oversized_file_is_refused_by_its_size_before_it_is_read() {
    let Rig {
        provider,
        catalog,
        ingestor,
        ..
    } = rig_configured(
        TestProvider::new(),
        IngestConfig::default().limits(MediaLimits::default().with_max_bytes(100)),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.png");
    std::fs::write(&path, fixture("image.png")).unwrap();
    let err = ingestor.ingest_file(&path).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.to_string().contains("the limit for image is 100 bytes"),
        "{err}"
    );
    assert!(err.context_value("path").is_some(), "{err}");
    let empty = dir.path().join("empty.png");
    std::fs::write(&empty, b"").unwrap();
    let err = ingestor.ingest_file(&empty).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(catalog.counts().await.unwrap().total(), 0);
    assert_eq!(provider.media_calls(), 0);
}

/// An ingestor over a `LocalDirStore` in `dir`.
fn local_rig(
    dir: &Path,
) -> (
    Ingestor,
    Arc<crate::store::LocalDirStore>,
    Arc<SqliteCatalog>,
) {
    let provider = TestProvider::new();
    let store = Arc::new(crate::store::LocalDirStore::open(dir.join("media")).unwrap());
    let catalog = Arc::new(SqliteCatalog::open_in_memory().unwrap());
    let ingestor = Ingestor::new(
        CachedEmbedder::new(provider.clone(), None, RetryPolicy::none()),
        store.clone(),
        Arc::new(FlakyIndex::new(&provider.model)),
        catalog.clone(),
        IngestConfig::default().retry(RetryPolicy::none()),
    )
    .unwrap();
    (ingestor, store, catalog)
}

/// Names in the store's root that are temporary files.
fn temp_files(store: &crate::store::LocalDirStore) -> Vec<String> {
    std::fs::read_dir(store.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

#[tokio::test]
async fn a_file_is_read_once_into_the_stores_staged_write() {
    let dir = tempfile::tempdir().unwrap();
    let (ingestor, store, catalog) = local_rig(dir.path());
    for name in [
        "audio.mp3",
        "video.mp4",
        "audio.wav",
        "image.jpg",
        "audio.m4a",
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, fixture(name)).unwrap();
        let r = ingestor.ingest_file(&path).await.unwrap();
        assert_eq!(r.outcome, IngestOutcome::Indexed, "{name}");
        assert_eq!(r.asset_id, AssetId::from_content(&fixture(name)), "{name}");
        let record = catalog.get(&r.asset_id).await.unwrap().unwrap();
        // The probe of the one read equals the probe of the bytes in memory.
        assert_eq!(
            record.probe,
            crate::media::probe(&fixture(name)).unwrap(),
            "{name}"
        );
        assert_eq!(record.source_path.as_deref(), Some(path.as_path()));
        let stored = record.media.unwrap();
        assert_eq!(
            store.get(&stored.key).await.unwrap(),
            fixture(name),
            "{name}"
        );
        // Read again: a duplicate, and the staged copy is dropped.
        let again = ingestor.ingest_file(&path).await.unwrap();
        assert_eq!(again.outcome, IngestOutcome::AlreadyIndexed, "{name}");
    }
    assert!(temp_files(&store).is_empty(), "{:?}", temp_files(&store));
}

#[tokio::test]
async fn a_file_that_fails_after_the_read_leaves_nothing_in_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let (ingestor, store, catalog) = local_rig(dir.path());
    // Missing 10% of its frames: only the frame count of the full read finds it.
    let mp3 = fixture("audio.mp3");
    let path = dir.path().join("cut.mp3");
    std::fs::write(&path, &mp3[..mp3.len() - mp3.len() / 10]).unwrap();
    let err = ingestor.ingest_file(&path).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(err.message().contains("Xing"), "{err}");
    assert_eq!(
        err.context_value("path"),
        Some(path.display().to_string().as_str())
    );
    assert!(store.list("", None, 10).await.unwrap().keys.is_empty());
    assert!(temp_files(&store).is_empty(), "{:?}", temp_files(&store));
    assert_eq!(catalog.counts().await.unwrap().total(), 0);
}

#[tokio::test]
async fn a_store_without_staged_writes_gets_the_file_after_the_duplicate_check() {
    let rig = rig();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip.mov");
    std::fs::write(&path, fixture("video.mov")).unwrap();
    let r = rig.ingestor.ingest_file(&path).await.unwrap();
    assert_eq!(r.outcome, IngestOutcome::Indexed);
    assert_eq!(rig.store.file_puts.load(Ordering::SeqCst), 1);
    let copy = dir.path().join("copy.mov");
    std::fs::write(&copy, fixture("video.mov")).unwrap();
    let again = rig.ingestor.ingest_file(&copy).await.unwrap();
    assert_eq!(again.outcome, IngestOutcome::AlreadyIndexed);
    assert_eq!(
        rig.store.file_puts.load(Ordering::SeqCst),
        1,
        "a duplicate is found by its hash before anything is uploaded"
    );
}

/// A store whose `put` retries inside (like the S3 SDK) and always fails.
struct RetryingStore {
    inner: MemoryStore,
    retry: RetryPolicy,
    puts: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl MediaStore for RetryingStore {
    async fn put(&self, _: &MediaKey, _: Bytes, _: MediaFormat) -> Result<crate::MediaRef> {
        self.retry
            .run("put", || async {
                self.puts.fetch_add(1, Ordering::SeqCst);
                Err(Error::new(ErrorKind::Unavailable, "503 from the store"))
            })
            .await
    }
    async fn get(&self, key: &MediaKey) -> Result<Bytes> {
        self.inner.get(key).await
    }
    async fn delete(&self, key: &MediaKey) -> Result<bool> {
        self.inner.delete(key).await
    }
    async fn exists(&self, key: &MediaKey) -> Result<bool> {
        self.inner.exists(key).await
    }
    async fn list(
        &self,
        prefix: &str,
        after: Option<MediaKey>,
        limit: usize,
    ) -> Result<crate::KeyPage> {
        self.inner.list(prefix, after, limit).await
    }
    fn media_ref(&self, key: &MediaKey) -> crate::MediaRef {
        self.inner.media_ref(key)
    }
    async fn preview_url(&self, key: &MediaKey, ttl: Duration) -> Result<url::Url> {
        self.inner.preview_url(key, ttl).await
    }
}

/// A `FlatIndex` whose upserts retry inside (like an OpenSearch bulk) and always fail.
struct RetryingIndex {
    inner: FlatIndex,
    retry: RetryPolicy,
    upserts: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl VectorIndex for RetryingIndex {
    fn spec(&self) -> &crate::IndexSpec {
        self.inner.spec()
    }
    fn capabilities(&self) -> crate::IndexCapabilities {
        self.inner.capabilities()
    }
    async fn upsert(&self, _: Vec<VectorRecord>) -> Result<()> {
        self.retry
            .run("bulk", || async {
                self.upserts.fetch_add(1, Ordering::SeqCst);
                Err(Error::new(ErrorKind::RateLimited, "429 from the index"))
            })
            .await
    }
    async fn search(&self, query: &crate::VectorQuery) -> Result<Vec<crate::Hit>> {
        self.inner.search(query).await
    }
    async fn delete_asset(&self, asset: &AssetId) -> Result<usize> {
        self.inner.delete_asset(asset).await
    }
    async fn stats(&self) -> Result<crate::IndexStats> {
        self.inner.stats().await
    }
}

/// A provider that always fails with a temporary error, counting its calls; when
/// `inner_attempts` > 1 it retries inside first (as Bedrock's provider does).
struct ThrottledProvider {
    model: crate::ModelInfo,
    inner: Option<RetryPolicy>,
    calls: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl crate::EmbeddingProvider for ThrottledProvider {
    fn model(&self) -> &crate::ModelInfo {
        &self.model
    }
    fn retries_internally(&self) -> bool {
        self.inner.is_some()
    }
    async fn embed_text(&self, _: &str) -> Result<Vec<f32>> {
        Err(Error::unsupported("no text here"))
    }
    async fn embed_media(&self, _: &MediaInput) -> Result<Vec<crate::Embedding>> {
        let once = || async {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Err(Error::new(ErrorKind::RateLimited, "ThrottlingException"))
        };
        match &self.inner {
            Some(retry) => retry.run("invoke", once).await,
            None => once().await,
        }
    }
}

fn fast_retry(attempts: u32) -> RetryPolicy {
    RetryPolicy::default()
        .max_attempts(attempts)
        .initial_backoff(Duration::from_millis(1))
        .max_backoff(Duration::from_millis(2))
}

#[tokio::test]
async fn an_exhausted_retry_is_attempted_max_attempts_times_end_to_end() {
    let model = tiny_model();
    let outer = IngestConfig::default().retry(fast_retry(5));
    let item = || IngestItem::bytes(fixture("image.png"), "p.png");

    // The store retries 3 times inside; the Ingestor's 5 attempts do not multiply them.
    let store = Arc::new(RetryingStore {
        inner: MemoryStore::new(),
        retry: fast_retry(3),
        puts: Default::default(),
    });
    let provider = TestProvider::new();
    let ingestor = Ingestor::new(
        CachedEmbedder::new(provider.clone(), None, fast_retry(5)),
        store.clone(),
        Arc::new(FlatIndex::new(crate::IndexSpec::for_model(&model))),
        Arc::new(SqliteCatalog::open_in_memory().unwrap()),
        outer.clone(),
    )
    .unwrap();
    let err = ingestor.ingest(item()).await.unwrap_err();
    assert_eq!(err.context_value("stage"), Some("store"));
    assert!(err.is_persistent(), "{err}");
    assert_eq!(store.puts.load(Ordering::SeqCst), 3, "store attempts");

    // The index (an OpenSearch bulk, say) retries 3 times inside.
    let index = Arc::new(RetryingIndex {
        inner: FlatIndex::new(crate::IndexSpec::for_model(&model)),
        retry: fast_retry(3),
        upserts: Default::default(),
    });
    let ingestor = Ingestor::new(
        CachedEmbedder::new(provider.clone(), None, fast_retry(5)),
        Arc::new(FlakyStore::default()),
        index.clone(),
        Arc::new(SqliteCatalog::open_in_memory().unwrap()),
        outer.clone(),
    )
    .unwrap();
    let err = ingestor.ingest(item()).await.unwrap_err();
    assert_eq!(err.context_value("stage"), Some("index"));
    assert_eq!(index.upserts.load(Ordering::SeqCst), 3, "index attempts");

    // The provider: retried by the embedder's policy (3), or by itself (3) behind an embedder
    // policy of 5; the Ingestor adds none.
    for (inner, embedder_attempts) in [(None, 3), (Some(fast_retry(3)), 5)] {
        let provider = Arc::new(ThrottledProvider {
            model: model.clone(),
            inner,
            calls: Default::default(),
        });
        let ingestor = Ingestor::new(
            CachedEmbedder::new(provider.clone(), None, fast_retry(embedder_attempts)),
            Arc::new(FlakyStore::default()),
            Arc::new(FlatIndex::new(crate::IndexSpec::for_model(&model))),
            Arc::new(SqliteCatalog::open_in_memory().unwrap()),
            outer.clone(),
        )
        .unwrap();
        let err = ingestor.ingest(item()).await.unwrap_err();
        assert_eq!(err.context_value("stage"), Some("embed"));
        assert_eq!(
            provider.calls.load(Ordering::SeqCst),
            3,
            "provider attempts"
        );
    }
}

#[tokio::test]
async fn retry_failed_resumes_without_reading_the_originals_up_front() {
    let rig = rig();
    rig.provider.fail_media.store(true, Ordering::SeqCst);
    for name in ["image.png", "video.mp4", "audio.wav"] {
        assert!(
            rig.ingestor
                .ingest(IngestItem::bytes(fixture(name), name))
                .await
                .is_err()
        );
    }
    assert_eq!(rig.store.inner.len(), 3, "the originals are kept");
    rig.provider.fail_media.store(false, Ordering::SeqCst);
    let report = rig.ingestor.retry_failed(|_, _| {}).await.unwrap();
    assert_eq!(report.progress.indexed, 3, "{:?}", report.items);
    assert_eq!(
        rig.store.reads(),
        0,
        "nothing was read back: the provider reads what it needs (this one nothing)"
    );
    assert_eq!(rig.store.inner.len(), 3, "nothing stored again");
    assert_eq!(rig.vectors().await, 1 + 6 + 4);
}
