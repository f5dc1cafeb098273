//! Tombstones and compaction, low-selectivity filters, and searches running during inserts.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use common::{flat_of, image_records, queries, recall};
use crossmodal_core::conformance::{clustered_records, random_vector, spec};
use crossmodal_core::{
    AssetId, EmbeddingSpace, Filter, IndexSpec, MediaKind, VectorIndex, VectorQuery,
};
use crossmodal_hnsw::{GraphSearch, HnswConfig, HnswIndex, SearchOptions};

/// Graph walks only (the default plan would scan these small test spaces exactly).
fn walk() -> HnswConfig {
    HnswConfig::default().always_walk_graph()
}
use rand::SeedableRng;
use rand::rngs::StdRng;

#[tokio::test]
async fn deletes_leave_tombstones_until_compaction() {
    let records = clustered_records(1000, 11);
    // No automatic compaction: tombstones stay visible in stats.
    let index = HnswIndex::new(spec(), walk().compaction_ratio(1.0)).unwrap();
    index.upsert(records.clone()).await.unwrap();
    let assets: Vec<AssetId> = records
        .iter()
        .map(|r| r.asset_id.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let doomed: HashSet<AssetId> = assets.iter().step_by(3).cloned().collect();
    let mut removed = 0;
    for a in &doomed {
        removed += index.delete_asset(a).await.unwrap();
    }
    let expected_removed = records
        .iter()
        .filter(|r| doomed.contains(&r.asset_id))
        .count();
    assert_eq!(removed, expected_removed);
    let stats = index.stats().await.unwrap();
    assert_eq!(stats.tombstones, removed as u64);
    assert_eq!(stats.vectors(), (records.len() - removed) as u64);
    assert_eq!(stats.assets, (assets.len() - doomed.len()) as u64);
    assert!(stats.memory_bytes > 0);

    let live: Vec<_> = records
        .iter()
        .filter(|r| !doomed.contains(&r.asset_id))
        .cloned()
        .collect();
    let flat = flat_of(&spec(), &live);
    let mut qs = queries(100, 32, 5, EmbeddingSpace::Audio, 10);
    qs.extend(queries(100, 32, 6, EmbeddingSpace::Visual, 10));
    for q in &qs {
        let hits = index.search(q).await.unwrap();
        assert_eq!(hits.len(), 10);
        assert!(
            hits.iter().all(|h| !doomed.contains(&h.asset_id)),
            "deleted asset returned"
        );
    }
    let before = recall(&index, &flat, &qs);
    assert!(before >= 0.95, "recall with tombstones {before:.3}");

    index.compact().unwrap();
    let stats = index.stats().await.unwrap();
    assert_eq!(stats.tombstones, 0);
    assert_eq!(stats.vectors(), live.len() as u64);
    let after = recall(&index, &flat, &qs);
    assert!(after >= 0.95, "recall after compaction {after:.3}");
    for q in &qs {
        let hits = index.search(q).await.unwrap();
        assert!(hits.iter().all(|h| !doomed.contains(&h.asset_id)));
    }
}

#[tokio::test]
async fn compaction_runs_when_tombstones_pass_the_ratio() {
    let records = image_records(2000, 24, 3);
    let spec = IndexSpec::new("m", 24);
    let index = HnswIndex::new(spec.clone(), walk().compaction_ratio(0.25)).unwrap();
    index.upsert(records.clone()).await.unwrap();
    // 20% deleted: below the ratio, tombstones kept.
    for r in records.iter().take(400) {
        index.delete_asset(&r.asset_id).await.unwrap();
    }
    assert_eq!(index.stats().await.unwrap().tombstones, 400);
    // The 501st tombstone passes 25% of the 2000 graph nodes: the space is rebuilt.
    for r in records.iter().skip(400).take(101) {
        index.delete_asset(&r.asset_id).await.unwrap();
    }
    let stats = index.stats().await.unwrap();
    assert_eq!(stats.tombstones, 0, "compacted");
    assert_eq!(stats.vectors(), 1499);
    // Later deletes count against the rebuilt graph.
    for r in records.iter().skip(501).take(99) {
        index.delete_asset(&r.asset_id).await.unwrap();
    }
    let stats = index.stats().await.unwrap();
    assert_eq!((stats.tombstones, stats.vectors()), (99, 1400));
    let flat = flat_of(&spec, &records[600..]);
    let qs = queries(100, 24, 9, EmbeddingSpace::Visual, 10);
    let r = recall(&index, &flat, &qs);
    assert!(r >= 0.95, "recall after automatic compaction {r:.3}");
}

#[tokio::test]
async fn replacements_are_tombstones_too() {
    let mut records = image_records(500, 16, 4);
    let spec = IndexSpec::new("m", 16);
    let index = HnswIndex::new(spec.clone(), walk().compaction_ratio(1.0)).unwrap();
    index.upsert(records.clone()).await.unwrap();
    let mut rng = StdRng::seed_from_u64(40);
    for r in records.iter_mut().take(50) {
        r.vector = random_vector(&mut rng, 16);
        r.meta.tags = vec!["moved".into()];
    }
    index.upsert(records[..50].to_vec()).await.unwrap();
    let stats = index.stats().await.unwrap();
    assert_eq!((stats.vectors(), stats.tombstones), (500, 50));
    for r in &records[..50] {
        let hits = index
            .search(&VectorQuery::new(r.space, r.vector.clone(), 1))
            .await
            .unwrap();
        assert_eq!(hits[0].asset_id, r.asset_id);
        assert_eq!(hits[0].meta.tags, vec!["moved".to_string()]);
        assert!((hits[0].score - 1.0).abs() < 1e-4);
    }
    // A batch naming one key twice keeps the last record.
    let mut twice = vec![records[60].clone(), records[60].clone()];
    twice[1].meta.tags = vec!["second".into()];
    index.upsert(twice).await.unwrap();
    let hits = index
        .search(&VectorQuery::new(
            records[60].space,
            records[60].vector.clone(),
            1,
        ))
        .await
        .unwrap();
    assert_eq!(hits[0].meta.tags, vec!["second".to_string()]);
    assert_eq!(index.stats().await.unwrap().vectors(), 500);
}

#[tokio::test]
async fn one_percent_filters_still_return_k_matching_hits() {
    let dim = 48;
    let spec = IndexSpec::new("m", dim);
    let records = image_records(5000, dim, 7);
    let flat = flat_of(&spec, &records);
    let rare = Filter::default().tag("rare"); // 50 of 5000 match
    let window = Filter::default().created_between(Some(4000), Some(4050)); // 50 match
    let tiny = Filter::default().created_between(Some(10), Some(13)); // 3 match
    for (name, config) in [
        (
            "default (planned exact scan)",
            HnswConfig::default().exact_scan_bytes(0),
        ),
        ("graph walk only", walk()),
        (
            "hnsw_rs search only",
            walk().graph_search(GraphSearch::HnswRs),
        ),
    ] {
        let index = HnswIndex::new(spec.clone(), config).unwrap();
        index.upsert(records.clone()).await.unwrap();
        let mut rng = StdRng::seed_from_u64(70);
        let (mut found, mut total) = (0, 0);
        for i in 0..40 {
            let filter = if i % 2 == 0 {
                rare.clone()
            } else {
                window.clone()
            };
            let q = VectorQuery::new(EmbeddingSpace::Visual, random_vector(&mut rng, dim), 10)
                .filter(filter.clone());
            let (hits, trace) = index
                .search_with(&q, &SearchOptions::default().ef(64))
                .unwrap();
            assert_eq!(hits.len(), 10, "{name}: k matching hits");
            assert!(hits.iter().all(|h| filter.matches(&h.asset_id, &h.meta)));
            for w in hits.windows(2) {
                assert!(w[0].score >= w[1].score);
            }
            if !name.starts_with("default") {
                assert!(trace.graph_rounds >= 1, "{name}: {trace:?}");
            } else {
                assert!(trace.exact, "{name}: {trace:?}");
            }
            let want: HashSet<_> = flat
                .search_sync(&q)
                .unwrap()
                .into_iter()
                .map(|h| h.asset_id)
                .collect();
            found += hits.iter().filter(|h| want.contains(&h.asset_id)).count();
            total += want.len();
        }
        let r = found as f64 / total as f64;
        assert!(r >= 0.95, "{name}: filtered recall {r:.3}");
        // Fewer matches than k: all of them.
        let q = VectorQuery::new(EmbeddingSpace::Visual, random_vector(&mut rng, dim), 10)
            .filter(tiny.clone());
        let (hits, trace) = index.search_with(&q, &SearchOptions::default()).unwrap();
        assert_eq!(hits.len(), 3, "{name}");
        if !name.starts_with("default") {
            // The walk runs (and, finding fewer than k, is completed by an exact scan) even
            // though no sampled row matches the filter.
            assert!(trace.graph_rounds >= 1 && trace.exact, "{name}: {trace:?}");
        }
        // An asset-id filter is answered from the key map.
        let ids: Vec<AssetId> = records
            .iter()
            .step_by(500)
            .map(|r| r.asset_id.clone())
            .collect();
        let q = VectorQuery::new(EmbeddingSpace::Visual, random_vector(&mut rng, dim), 10)
            .filter(Filter::default().asset_ids(ids.clone()));
        let hits = index.search(&q).await.unwrap();
        assert_eq!(hits.len(), 10);
        assert!(hits.iter().all(|h| ids.contains(&h.asset_id)));
        // Nothing matches.
        let q = VectorQuery::new(EmbeddingSpace::Visual, random_vector(&mut rng, dim), 10)
            .filter(Filter::default().kinds([MediaKind::Audio]));
        assert!(index.search(&q).await.unwrap().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn searches_proceed_while_batches_are_inserted() {
    let dim = 32;
    let spec = IndexSpec::new("m", dim);
    let records = image_records(8_000, dim, 8);
    let index = Arc::new(HnswIndex::new(spec.clone(), walk()).unwrap());
    index.upsert(records[..2000].to_vec()).await.unwrap();
    let known: Arc<HashSet<AssetId>> =
        Arc::new(records.iter().map(|r| r.asset_id.clone()).collect());
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));

    let writer = {
        let index = Arc::clone(&index);
        let records = records.clone();
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            for (i, batch) in records[2000..].chunks(1000).enumerate() {
                index.upsert(batch.to_vec()).await.unwrap();
                if i % 3 == 1 {
                    // Deletes and a flush-free compaction path run concurrently too.
                    index.delete_asset(&batch[0].asset_id).await.unwrap();
                }
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        })
    };
    let mut readers = Vec::new();
    for t in 0..3u64 {
        let index = Arc::clone(&index);
        let known = Arc::clone(&known);
        let done = Arc::clone(&done);
        readers.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(100 + t);
            let mut searches = 0usize;
            let mut during = 0usize;
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                let filter = if searches.is_multiple_of(2) {
                    Filter::default()
                } else {
                    Filter::default().tag("common")
                };
                let q = VectorQuery::new(EmbeddingSpace::Visual, random_vector(&mut rng, dim), 10)
                    .filter(filter.clone());
                let hits = index.search(&q).await.unwrap();
                assert_eq!(hits.len(), 10);
                for h in &hits {
                    assert!(known.contains(&h.asset_id));
                    assert!(filter.matches(&h.asset_id, &h.meta));
                    assert!((-1.0..=1.0).contains(&h.score));
                }
                for w in hits.windows(2) {
                    assert!(w[0].score >= w[1].score);
                }
                searches += 1;
                if !finished {
                    during += 1;
                }
                if finished {
                    return during;
                }
                tokio::task::yield_now().await;
            }
        }));
    }
    let all = async {
        writer.await.unwrap();
        let mut during = 0;
        for r in readers {
            during += r.await.unwrap();
        }
        during
    };
    let during = tokio::time::timeout(Duration::from_secs(300), all)
        .await
        .expect("no deadlock: writers and readers finish");
    assert!(during > 10, "searches ran while inserting ({during})");
    let deleted: HashSet<AssetId> = records[2000..]
        .chunks(1000)
        .enumerate()
        .filter(|(i, _)| i % 3 == 1)
        .map(|(_, b)| b[0].asset_id.clone())
        .collect();
    let live: Vec<_> = records
        .iter()
        .filter(|r| !deleted.contains(&r.asset_id))
        .cloned()
        .collect();
    let stats = index.stats().await.unwrap();
    assert_eq!(stats.vectors(), live.len() as u64);
    let flat = flat_of(&spec, &live);
    let r = recall(
        &index,
        &flat,
        &queries(100, dim, 77, EmbeddingSpace::Visual, 10),
    );
    assert!(r >= 0.95, "recall after concurrent inserts {r:.3}");
}

#[test]
fn sync_api_works_without_a_runtime() {
    let index = HnswIndex::new(spec(), HnswConfig::default()).unwrap();
    let records = clustered_records(50, 12);
    index.upsert_sync(records.clone()).unwrap();
    let hits = index
        .search_sync(&VectorQuery::new(
            records[0].space,
            records[0].vector.clone(),
            3,
        ))
        .unwrap();
    assert_eq!(hits[0].asset_id, records[0].asset_id);
    assert!(index.delete_asset_sync(&records[0].asset_id).unwrap() > 0);
    // The async trait also works on a non-tokio executor (no spawn_blocking there).
    let stats = futures_lite_block_on(index.stats()).unwrap();
    assert!(stats.vectors() > 0);
    futures_lite_block_on(index.upsert(clustered_records(5, 13))).unwrap();
}

/// A minimal executor (no tokio context) for the test above.
fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    let waker = Waker::from(Arc::new(Noop));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

#[tokio::test]
async fn trickle_inserts_stay_searchable() {
    // One record per upsert: the link copy is refreshed incrementally (new nodes and their
    // neighbours) and in full every ~10% growth; every new vector must be reachable.
    let dim = 24;
    let spec = IndexSpec::new("m", dim);
    let records = image_records(2300, dim, 9);
    let index = HnswIndex::new(spec.clone(), walk()).unwrap();
    index.upsert(records[..2000].to_vec()).await.unwrap();
    for r in &records[2000..] {
        index.upsert(vec![r.clone()]).await.unwrap();
    }
    let mut missed = 0;
    for r in &records[2000..] {
        let hits = index
            .search(&VectorQuery::new(r.space, r.vector.clone(), 1))
            .await
            .unwrap();
        if hits[0].asset_id != r.asset_id {
            missed += 1;
        }
    }
    assert!(
        missed <= 3,
        "{missed} of 300 trickled vectors not found as their own neighbour"
    );
    let flat = flat_of(&spec, &records);
    let r = recall(
        &index,
        &flat,
        &queries(100, dim, 91, EmbeddingSpace::Visual, 10),
    );
    assert!(r >= 0.95, "recall after trickle inserts {r:.3}");
}

#[tokio::test]
async fn a_kind_filter_naming_every_kind_present_filters_nothing() {
    let dim = 32;
    let spec = IndexSpec::new("m", dim);
    let mut records = image_records(2000, dim, 3);
    for r in records.iter_mut().step_by(3) {
        r.meta.kind = MediaKind::Video;
    }
    let videos: Vec<AssetId> = records
        .iter()
        .filter(|r| r.meta.kind == MediaKind::Video)
        .map(|r| r.asset_id.clone())
        .collect();
    let index = HnswIndex::new(spec, walk()).unwrap();
    index.upsert(records).await.unwrap();
    let mut rng = StdRng::seed_from_u64(5);
    let run = |index: &HnswIndex, q: &VectorQuery| {
        index.search_with(q, &SearchOptions::default()).unwrap()
    };
    for _ in 0..10 {
        let q = VectorQuery::new(EmbeddingSpace::Visual, random_vector(&mut rng, dim), 10);
        let (plain, plain_trace) = run(&index, &q);
        let both = q
            .clone()
            .filter(Filter::default().kinds([MediaKind::Video, MediaKind::Image]));
        let (hits, trace) = run(&index, &both);
        assert_eq!(hits, plain, "a filter every row matches changes nothing");
        assert_eq!(trace.distances, plain_trace.distances, "the same walk");
        // A kind filter that excludes something still filters.
        let (hits, _) = run(
            &index,
            &q.clone()
                .filter(Filter::default().kinds([MediaKind::Video])),
        );
        assert_eq!(hits.len(), 10);
        assert!(hits.iter().all(|h| h.meta.kind == MediaKind::Video));
    }
    // With the videos deleted, an image-only filter covers every live row.
    for id in &videos {
        index.delete_asset(id).await.unwrap();
    }
    let q = VectorQuery::new(EmbeddingSpace::Visual, random_vector(&mut rng, dim), 10);
    let (images, _) = run(
        &index,
        &q.clone()
            .filter(Filter::default().kinds([MediaKind::Image])),
    );
    let (plain, _) = run(&index, &q);
    assert_eq!(images, plain);
    assert!(images.iter().all(|h| h.meta.kind == MediaKind::Image));
    assert!(
        run(
            &index,
            &q.filter(Filter::default().kinds([MediaKind::Video]))
        )
        .0
        .is_empty()
    );
}
