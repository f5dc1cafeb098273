//! Unit tests of routing, grouping, fusion and ranking in the searcher.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::*;
use crate::cache::MemoryEmbeddingCache;
use crate::catalog::SqliteCatalog;
use crate::index::{FlatIndex, IndexSpec};
use crate::ingest::{IngestConfig, IngestItem, Ingestor};
use crate::store::MemoryStore;
use crate::test_support::*;

const FIXTURES: [&str; 8] = [
    "image.png",
    "image.jpg",
    "image.webp",
    "video.mp4",
    "video.mov",
    "audio.wav",
    "audio.mp3",
    "audio.m4a",
];

struct Rig {
    provider: Arc<TestProvider>,
    searcher: CrossModalSearcher,
    ids: HashMap<&'static str, AssetId>,
}

async fn rig_with(names: &[&'static str]) -> Rig {
    let provider = TestProvider::new();
    let index: Arc<dyn VectorIndex> =
        Arc::new(FlatIndex::new(IndexSpec::for_model(&provider.model)));
    rig_over(provider, index, names).await
}

async fn rig_over(
    provider: Arc<TestProvider>,
    index: Arc<dyn VectorIndex>,
    names: &[&'static str],
) -> Rig {
    let store: Arc<dyn MediaStore> = Arc::new(MemoryStore::new());
    let catalog: Arc<dyn AssetCatalog> = Arc::new(SqliteCatalog::open_in_memory().unwrap());
    let embedder = CachedEmbedder::new(
        provider.clone(),
        Some(Arc::new(MemoryEmbeddingCache::new(None))),
        RetryPolicy::none(),
    );
    let ingestor = Ingestor::new(
        embedder.clone(),
        store.clone(),
        index.clone(),
        catalog.clone(),
        IngestConfig::default(),
    )
    .unwrap();
    let mut ids = HashMap::new();
    for name in names {
        let tags = if name.starts_with("audio") {
            vec!["sfx"]
        } else {
            vec![]
        };
        let r = ingestor
            .ingest(IngestItem::bytes(fixture(name), *name).tags(tags))
            .await
            .unwrap();
        ids.insert(*name, r.asset_id);
    }
    let searcher = CrossModalSearcher::with_embedder(embedder, index).catalog(catalog, store);
    Rig {
        provider,
        searcher,
        ids,
    }
}

async fn rig() -> Rig {
    rig_with(&FIXTURES).await
}

fn allowed(results: &SearchResults, hit: &SearchHit) -> bool {
    hit.matches.iter().all(|m| {
        results
            .routes
            .iter()
            .any(|r| r.route.target_space == m.space && r.route.target_kinds.contains(&hit.kind()))
    })
}

#[tokio::test]
async fn a_first_page_reads_a_single_page_and_later_pages_the_larger_window() {
    let provider = TestProvider::new();
    let index = Arc::new(FlakyIndex::new(&provider.model));
    let rig = rig_over(provider, index.clone(), &FIXTURES).await;
    let asked = || std::mem::take(&mut *index.asked.lock().unwrap());
    let query = Query::text("castle siege").k(2).oversample(2).page_depth(3);
    let first = rig.searcher.search(&query).await.unwrap();
    let first_asked = asked();
    assert!(!first_asked.is_empty());
    assert!(
        first_asked.iter().all(|&k| k == 4),
        "a first page asks k x oversample per route: {first_asked:?}"
    );
    assert_eq!(first.hits.len(), 2);
    let cursor = first.next_cursor.clone().expect("more pages");
    let second = rig
        .searcher
        .search(&query.clone().cursor(cursor))
        .await
        .unwrap();
    let second_asked = asked();
    assert!(
        second_asked.iter().all(|&k| k == 12),
        "a later page asks k x oversample x page_depth: {second_asked:?}"
    );
    let shown: HashSet<&AssetId> = first.hits.iter().map(|h| &h.asset_id).collect();
    assert_eq!(second.hits.len(), 2);
    assert!(
        second.hits.iter().all(|h| !shown.contains(&h.asset_id)),
        "no asset of the first page again"
    );
    // The later pages are the larger window's ranking without the first page's assets.
    let whole = rig
        .searcher
        .search(&Query::text("castle siege").k(6).oversample(2).page_depth(1))
        .await
        .unwrap();
    let rest: Vec<&AssetId> = whole
        .hits
        .iter()
        .map(|h| &h.asset_id)
        .filter(|id| !shown.contains(id))
        .take(2)
        .collect();
    assert_eq!(
        second.hits.iter().map(|h| &h.asset_id).collect::<Vec<_>>(),
        rest
    );
}

#[tokio::test]
async fn text_auto_searches_every_route_and_explains_each_hit() {
    let rig = rig().await;
    let results = rig
        .searcher
        .search(&Query::text("castle siege").k(20))
        .await
        .unwrap();
    assert_eq!(results.query_kind, QueryKind::Text);
    assert_eq!(results.routes.len(), 2);
    assert!(
        results
            .routes
            .iter()
            .all(|r| matches!(r.outcome, RouteOutcome::Searched { assets } if assets > 0))
    );
    assert_eq!(
        results.hits.len(),
        8,
        "every asset is reachable by some route"
    );
    let unique: HashSet<&AssetId> = results.hits.iter().map(|h| &h.asset_id).collect();
    assert_eq!(unique.len(), results.hits.len(), "grouped by asset");
    for h in &results.hits {
        assert!(
            allowed(&results, h),
            "{h:?} came through a route that does not target it"
        );
        assert!(
            h.matches
                .iter()
                .any(|m| m.space == h.space && m.cosine == h.cosine)
        );
        assert!(
            h.media.is_some() && h.display_name.is_some(),
            "catalog data attached"
        );
        match h.kind() {
            MediaKind::Image => assert!(h.best_segment.is_none()),
            _ => assert!(h.best_segment.is_some(), "clips name their segment"),
        }
    }
    for w in results.hits.windows(2) {
        assert!(w[0].score >= w[1].score, "ranked best first");
    }
}

#[tokio::test]
async fn kinds_restrict_routes_inside_the_index_query() {
    let rig = rig().await;
    let results = rig
        .searcher
        .search(&Query::text("explosion").kinds([MediaKind::Audio]))
        .await
        .unwrap();
    assert!(!results.hits.is_empty());
    assert!(results.hits.iter().all(|h| h.kind() == MediaKind::Audio));
    assert!(
        results
            .routes
            .iter()
            .any(|r| r.outcome == RouteOutcome::KindsExcluded)
    );
    let err = rig
        .searcher
        .search(
            &Query::text("x")
                .mode(SearchMode::Visual)
                .kinds([MediaKind::Audio]),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

#[tokio::test]
async fn user_filters_are_pushed_into_every_route() {
    let rig = rig().await;
    let results = rig
        .searcher
        .search(
            &Query::text("boom")
                .mode(SearchMode::Audio)
                .filter(Filter::default().tag("sfx")),
        )
        .await
        .unwrap();
    assert_eq!(results.hits.len(), 3);
    assert!(
        results
            .hits
            .iter()
            .all(|h| h.meta.tags == vec!["sfx".to_string()])
    );
}

#[tokio::test]
async fn bad_queries_are_rejected_before_any_model_call() {
    let rig = rig().await;
    let calls = rig.provider.text_calls.load(Ordering::SeqCst);
    for q in [
        Query::text("   "),
        Query::text("x").k(0),
        Query::text("x").k(5000),
    ] {
        let err = rig.searcher.search(&q).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{q:?}");
    }
    let long = "word ".repeat(100);
    assert_eq!(
        rig.searcher
            .search(&Query::text(long))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        rig.searcher
            .search(&Query::text("x").min_score(2.0))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(rig.provider.text_calls.load(Ordering::SeqCst), calls);
    let err = rig
        .searcher
        .search(&Query::media(Bytes::from_static(b"not media")))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
}

#[tokio::test]
async fn unsupported_mode_is_a_clear_error() {
    let rig = rig().await;
    let calls = rig.provider.media_calls();
    let err = rig
        .searcher
        .search(&Query::media(fixture("image.png")).mode(SearchMode::Audio))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(err.message().contains("image query in audio mode"), "{err}");
    assert_eq!(
        rig.provider.media_calls(),
        calls,
        "no model call for an unsupported mode"
    );
}

#[tokio::test]
async fn media_queries_exclude_themselves_unless_asked() {
    let rig = rig().await;
    let me = &rig.ids["image.png"];
    let q = Query::media(fixture("image.png")).k(10);
    let results = rig.searcher.search(&q).await.unwrap();
    assert!(results.hits.iter().all(|h| &h.asset_id != me));
    assert!(
        results
            .hits
            .iter()
            .all(|h| matches!(h.kind(), MediaKind::Image | MediaKind::Video))
    );
    let with_self = rig.searcher.search(&q.include_self(true)).await.unwrap();
    assert_eq!(&with_self.hits[0].asset_id, me);
    assert!((with_self.hits[0].cosine - 1.0).abs() < 1e-5);
    assert_eq!(
        rig.provider.media_calls(),
        8,
        "the query's embeddings came from the cache"
    );
}

#[tokio::test]
async fn video_query_finds_its_best_segment() {
    let rig = rig().await;
    let me = rig.ids["video.mp4"].clone();
    for mode in [SearchMode::Visual, SearchMode::Audio, SearchMode::Semantic] {
        let results = rig
            .searcher
            .search(&Query::asset(me.clone()).mode(mode).include_self(true))
            .await
            .unwrap();
        let top = &results.hits[0];
        assert_eq!(top.asset_id, me, "{mode}");
        assert!((top.cosine - 1.0).abs() < 1e-5);
        assert!(top.best_segment.is_some());
    }
    let unknown = AssetId::from_content(b"nobody");
    let err = rig
        .searcher
        .search(&Query::asset(unknown))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn pooled_query_segments_search_once_per_route() {
    let rig = rig().await;
    let each = rig
        .searcher
        .search(&Query::media(fixture("audio.wav")).k(3))
        .await
        .unwrap();
    let pooled = rig
        .searcher
        .search(
            &Query::media(fixture("audio.wav"))
                .k(3)
                .segments(QuerySegments::Pooled),
        )
        .await
        .unwrap();
    assert_eq!(each.hits.len(), pooled.hits.len());
    // Each segment's best match is at least as good as the pooled vector's.
    let best_each: f32 = each.hits.iter().map(|h| h.cosine).fold(f32::MIN, f32::max);
    let best_pooled: f32 = pooled
        .hits
        .iter()
        .map(|h| h.cosine)
        .fold(f32::MIN, f32::max);
    assert!(best_each >= best_pooled - 1e-6);
}

#[tokio::test]
async fn missing_spaces_are_reported_not_silently_empty() {
    let rig = rig_with(&["image.png", "image.jpg"]).await;
    let results = rig.searcher.search(&Query::text("a sound")).await.unwrap();
    assert_eq!(results.missing_spaces(), vec![EmbeddingSpace::Audio]);
    assert_eq!(results.hits.len(), 2);
    let results = rig
        .searcher
        .search(&Query::text("a sound").mode(SearchMode::Audio))
        .await
        .unwrap();
    assert!(results.hits.is_empty());
    assert_eq!(results.missing_spaces(), vec![EmbeddingSpace::Audio]);
}

#[tokio::test]
async fn reciprocal_rank_fusion_ranks_by_rank_sums() {
    let rig = rig().await;
    let k0 = 60.0;
    let results = rig
        .searcher
        .search(
            &Query::text("battle")
                .k(20)
                .fusion(Fusion::ReciprocalRank { k0 }),
        )
        .await
        .unwrap();
    for h in &results.hits {
        let expected: f32 = h
            .matches
            .iter()
            .map(|m| 1.0 / (k0 + m.rank as f32 + 1.0))
            .sum();
        assert!((h.score - expected).abs() < 1e-6);
    }
    for w in results.hits.windows(2) {
        assert!(w[0].score >= w[1].score);
    }
}

#[tokio::test]
async fn min_score_drops_weak_matches() {
    let rig = rig().await;
    let all = rig
        .searcher
        .search(&Query::text("castle").k(20))
        .await
        .unwrap();
    let cut = all.hits[all.hits.len() / 2].cosine;
    let some = rig
        .searcher
        .search(&Query::text("castle").k(20).min_score(cut))
        .await
        .unwrap();
    assert!(some.hits.iter().all(|h| h.cosine >= cut));
    assert!(some.hits.len() < all.hits.len());
}

#[tokio::test]
async fn a_query_without_embeddings_for_any_route_is_an_error() {
    use crate::embedding::MockEmbeddingProvider;
    let mut mock = MockEmbeddingProvider::new();
    mock.expect_model().return_const(tiny_model());
    mock.expect_options_fingerprint().returning(String::new);
    mock.expect_retries_internally().return_const(false);
    // A silent video: only visual vectors.
    mock.expect_embed_media().returning(|_| {
        Ok(vec![crate::Embedding {
            space: EmbeddingSpace::Visual,
            segment: Segment::new(0.0, 2.0).ok(),
            vector: vec![1.0, 0.0, 0.0, 0.0],
        }])
    });
    let index = Arc::new(FlatIndex::new(IndexSpec::for_model(&tiny_model())));
    index
        .upsert(vec![crate::VectorRecord {
            asset_id: AssetId::from_content(b"a"),
            space: EmbeddingSpace::Audio,
            seq: 0,
            segment: None,
            vector: vec![0.0, 1.0, 0.0, 0.0],
            meta: crate::RecordMeta::new(MediaKind::Audio, MediaFormat::Wav),
        }])
        .await
        .unwrap();
    let searcher = CrossModalSearcher::new(Arc::new(mock), index);
    let err = searcher
        .search(&Query::media(fixture("video.mp4")).mode(SearchMode::Audio))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.message().contains("no embedding"), "{err}");
}

#[tokio::test]
async fn a_text_image_query_is_routed_like_an_image_query() {
    let rig = rig().await;
    // The test provider embeds a composed query as its text's vector: aim it at the first
    // visual clip of the video.
    let target = &rig.ids["video.mp4"];
    let text = format!("{target}:visual:0");
    let results = rig
        .searcher
        .search(&Query::text_image(text, fixture("image.png")).k(3))
        .await
        .unwrap();
    assert_eq!(results.query_kind, QueryKind::Image);
    let image_routes = rig
        .searcher
        .routing_rules()
        .routes(QueryKind::Image, SearchMode::Auto)
        .unwrap()
        .to_vec();
    let routes: Vec<Route> = results.routes.iter().map(|r| r.route.clone()).collect();
    assert_eq!(routes, image_routes);
    let top = &results.hits[0];
    assert_eq!(&top.asset_id, target);
    assert_eq!(top.space, EmbeddingSpace::Visual);
    assert!((top.cosine - 1.0).abs() < 1e-5, "{}", top.cosine);
    // The reference image itself is left out, as for an image query.
    assert!(
        results
            .hits
            .iter()
            .all(|h| h.asset_id != rig.ids["image.png"])
    );
    // No media embedding call: one composed call.
    assert_eq!(rig.provider.text_calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_text_image_query_needs_an_image_text_and_a_capable_model() {
    let rig = rig().await;
    let calls = rig.provider.text_calls.load(Ordering::SeqCst);
    let err = rig
        .searcher
        .search(&Query::text_image("at night", fixture("video.mp4")).file_name("clip.mp4"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("takes an image"), "{err}");
    let err = rig
        .searcher
        .search(&Query::text_image("  ", fixture("image.png")))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(rig.provider.text_calls.load(Ordering::SeqCst), calls);

    // A provider without composed inputs: a clear Unsupported error.
    struct TextOnly(crate::ModelInfo);
    #[async_trait::async_trait]
    impl EmbeddingProvider for TextOnly {
        fn model(&self) -> &crate::ModelInfo {
            &self.0
        }
        async fn embed_text(&self, text: &str) -> Result<Vec<f32>> {
            Ok(vec_for(text))
        }
        async fn embed_media(&self, _: &MediaInput) -> Result<Vec<crate::Embedding>> {
            Err(Error::unsupported("text only"))
        }
    }
    let model = tiny_model();
    let index: Arc<dyn VectorIndex> = Arc::new(FlatIndex::new(IndexSpec::for_model(&model)));
    let searcher = CrossModalSearcher::new(Arc::new(TextOnly(model)), index);
    let err = searcher
        .search(&Query::text_image("at night", fixture("image.png")))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    assert!(err.to_string().contains("text_image"), "{err}");
}

#[tokio::test]
async fn the_same_text_searched_in_five_modes_calls_the_provider_once() {
    let rig = rig().await;
    let before = rig.provider.text_calls.load(Ordering::SeqCst);
    let modes = [
        SearchMode::Auto,
        SearchMode::Visual,
        SearchMode::Semantic,
        SearchMode::Audio,
        SearchMode::Transcription,
    ];
    for mode in modes {
        let results = rig
            .searcher
            .search(&Query::text("knights storming a castle").mode(mode))
            .await
            .unwrap();
        assert_eq!(results.mode, mode);
    }
    // White space around it is the same query.
    rig.searcher
        .search(&Query::text("  knights storming a castle "))
        .await
        .unwrap();
    assert_eq!(
        rig.provider.text_calls.load(Ordering::SeqCst) - before,
        1,
        "one provider call for one text, whatever the mode"
    );
    // Another text is another call.
    rig.searcher
        .search(&Query::text("a dog barking"))
        .await
        .unwrap();
    assert_eq!(rig.provider.text_calls.load(Ordering::SeqCst) - before, 2);

    // Without the cache every search calls the provider (what main did).
    let uncached = rig
        .searcher
        .clone()
        .query_cache(QueryCacheConfig::disabled());
    let before = rig.provider.text_calls.load(Ordering::SeqCst);
    for mode in modes {
        uncached
            .search(&Query::text("knights storming a castle").mode(mode))
            .await
            .unwrap();
    }
    assert_eq!(rig.provider.text_calls.load(Ordering::SeqCst) - before, 5);
}

#[tokio::test]
async fn the_query_cache_is_bounded() {
    // Room for about three 4-dimensional text vectors (80 bytes each).
    let rig = rig().await;
    let small = rig
        .searcher
        .clone()
        .query_cache(QueryCacheConfig::default().max_bytes(250));
    for i in 0..20 {
        small
            .search(&Query::text(format!("query number {i}")))
            .await
            .unwrap();
    }
    let cache = small.query_cache.as_ref().unwrap();
    let entries = cache.entries().await;
    assert!(
        entries <= 3,
        "{entries} entries in a cache bounded to 250 bytes"
    );
}

#[tokio::test]
async fn a_media_query_is_embedded_once_per_content() {
    let rig = rig_with(&["image.png", "audio.wav"]).await;
    // A searcher without the embedding cache: only the query cache can save the call.
    let searcher = CrossModalSearcher::new(
        rig.provider.clone(),
        Arc::new(FlatIndex::new(IndexSpec::for_model(&rig.provider.model))),
    );
    let before = rig.provider.media_calls();
    for mode in [SearchMode::Auto, SearchMode::Audio] {
        searcher
            .search(&Query::media(fixture("audio.wav")).mode(mode))
            .await
            .unwrap();
    }
    searcher
        .search(&Query::media(fixture("audio.wav")).file_name("same bytes, other name.wav"))
        .await
        .unwrap();
    assert_eq!(rig.provider.media_calls() - before, 1);
}

#[tokio::test]
async fn an_asset_query_takes_cached_vectors_without_reading_the_original() {
    let provider = TestProvider::new();
    let index: Arc<dyn VectorIndex> =
        Arc::new(FlatIndex::new(IndexSpec::for_model(&provider.model)));
    let store = Arc::new(FlakyStore::default());
    let catalog: Arc<dyn AssetCatalog> = Arc::new(SqliteCatalog::open_in_memory().unwrap());
    let cached = CachedEmbedder::new(
        provider.clone(),
        Some(Arc::new(MemoryEmbeddingCache::new(None))),
        RetryPolicy::none(),
    );
    let ingestor = Ingestor::new(
        cached.clone(),
        store.clone(),
        index.clone(),
        catalog.clone(),
        IngestConfig::default(),
    )
    .unwrap();
    let mut ids = Vec::new();
    for name in ["video.mp4", "audio.wav"] {
        ids.push(
            ingestor
                .ingest(IngestItem::bytes(fixture(name), name))
                .await
                .unwrap()
                .asset_id,
        );
    }
    let calls = provider.media_calls();
    let searcher = CrossModalSearcher::with_embedder(cached, index.clone())
        .catalog(catalog.clone(), store.clone());
    let results = searcher
        .search(&Query::asset(ids[0].clone()).mode(SearchMode::Audio))
        .await
        .unwrap();
    assert!(results.hits.iter().any(|h| h.asset_id == ids[1]));
    assert_eq!(
        provider.media_calls(),
        calls,
        "the vectors came from the cache"
    );
    assert_eq!(store.reads(), 0, "the original was not read");

    // Without an embedding cache the provider embeds it, reading only what it needs (this
    // provider reads nothing): still no download of the original up front.
    let uncached = CrossModalSearcher::new(provider.clone(), index).catalog(catalog, store.clone());
    uncached
        .search(&Query::asset(ids[1].clone()))
        .await
        .unwrap();
    assert_eq!(provider.media_calls(), calls + 1);
    assert_eq!(store.reads(), 0);
}
