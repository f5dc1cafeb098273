//! The `VectorIndex` behaviour suite.
//!
//! A backend's tests call [`vector_index_suite`] with a factory that makes a fresh, empty index
//! for a given [`IndexSpec`]. Exact indexes (`capabilities().exact`) must return the same top-k
//! ids and cosine scores (within 1e-4) as [`FlatIndex`]; approximate ones must reach recall@10
//! >= 0.95 against it and still report true cosine scores for what they return.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashSet;
use std::future::Future;

use crate::asset::AssetId;
use crate::embedding::{EmbeddingSpace, Segment};
use crate::error::ErrorKind;
use crate::index::{
    FieldTest, FieldValue, Filter, FlatIndex, IndexSpec, MetaPatch, RecordMeta, VectorIndex,
    VectorQuery, VectorRecord,
};
use crate::media::{MediaFormat, MediaKind};
use crate::vector::{cosine_of_unit, normalized};

/// Dimension of the suite's vectors.
pub const DIM: usize = 32;

/// Minimum recall@10 against exact search an approximate index must reach.
pub const MIN_RECALL_AT_10: f64 = 0.95;

/// The spec every index under test is created with.
pub fn spec() -> IndexSpec {
    IndexSpec::new("crossmodal-conformance-model", DIM)
}

fn gaussian(rng: &mut StdRng) -> f32 {
    // Box-Muller; u1 in (0, 1] so ln is finite.
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

/// A random direction, not normalised.
pub fn random_vector(rng: &mut StdRng, dim: usize) -> Vec<f32> {
    (0..dim).map(|_| gaussian(rng)).collect()
}

/// Deterministic records for `n_assets` assets: every 4th asset an image (one visual vector), two
/// of four videos (three segments, each with a visual and an audio vector), one of four audio
/// files (two audio segments). Vectors are drawn around 16 cluster centres, so nearest neighbours
/// are not trivial; tags are `tag0`..`tag4`; `created_at_ms` grows with the asset number.
/// Every asset has a name (`asset-<i>.<ext>`) and user fields: `campaign` (`summer`, `winter`,
/// `spring` in turn), `budget` (a number), `approved` (a bool) and, for four assets of five,
/// `launch` (a time); videos and audio have a duration (8 to 20 s).
pub fn clustered_records(n_assets: usize, seed: u64) -> Vec<VectorRecord> {
    let mut rng = StdRng::seed_from_u64(seed);
    let centres: Vec<Vec<f32>> = (0..16).map(|_| random_vector(&mut rng, DIM)).collect();
    let mut out = Vec::new();
    for i in 0..n_assets {
        let asset_id = AssetId::from_content(format!("conformance-{seed}-{i}").as_bytes());
        let (kind, format) = match i % 4 {
            0 => (MediaKind::Image, MediaFormat::Png),
            1 => (MediaKind::Video, MediaFormat::Mp4),
            2 => (MediaKind::Video, MediaFormat::Mov),
            _ => (MediaKind::Audio, MediaFormat::Wav),
        };
        let mut meta = RecordMeta::new(kind, format)
            .tags([format!("tag{}", i % 5)])
            .created_at_ms(1_000_000 + i as i64 * 1000)
            .name(format!("asset-{i}.{}", format.extension()))
            .field("campaign", ["summer", "winter", "spring"][i % 3])
            .field("budget", ((i * 37) % 1000) as f64)
            .field("approved", i % 2 == 0);
        if i % 5 != 0 {
            meta = meta.field(
                "launch",
                FieldValue::Time(1_700_000_000_000 + i as i64 * 86_400_000),
            );
        }
        if kind != MediaKind::Image {
            meta = meta.duration_ms(8_000 + (i as u64 % 13) * 1_000);
        }
        let centre = &centres[rng.random_range(0..centres.len())];
        let vector_near = |rng: &mut StdRng| -> Vec<f32> {
            centre.iter().map(|c| c + 0.9 * gaussian(rng)).collect()
        };
        let mut push = |space, seq: u32, segment, vector| {
            out.push(VectorRecord {
                asset_id: asset_id.clone(),
                space,
                seq,
                segment,
                vector,
                meta: meta.clone(),
            })
        };
        match kind {
            MediaKind::Image => push(EmbeddingSpace::Visual, 0, None, vector_near(&mut rng)),
            MediaKind::Video => {
                for s in 0..3u32 {
                    let seg = Segment::new(f64::from(s) * 4.0, f64::from(s + 1) * 4.0).ok();
                    push(EmbeddingSpace::Visual, s, seg, vector_near(&mut rng));
                    push(EmbeddingSpace::Audio, s, seg, vector_near(&mut rng));
                }
            }
            MediaKind::Audio => {
                for s in 0..2u32 {
                    let seg = Segment::new(f64::from(s) * 5.0, f64::from(s + 1) * 5.0).ok();
                    push(EmbeddingSpace::Audio, s, seg, vector_near(&mut rng));
                }
            }
        }
    }
    out
}

/// Runs every check, each on a fresh index from `make`.
pub async fn vector_index_suite<F, Fut>(make: F)
where
    F: Fn(IndexSpec) -> Fut,
    Fut: Future<Output = Box<dyn VectorIndex>>,
{
    index_upsert_and_self_match(&*make(spec()).await).await;
    index_scores_match_exact_search(&*make(spec()).await).await;
    index_filters_are_pushed_down(&*make(spec()).await).await;
    index_upsert_replaces_by_key(&*make(spec()).await).await;
    index_delete_asset_removes_every_space(&*make(spec()).await).await;
    index_rejects_bad_input_and_changes_nothing(&*make(spec()).await).await;
    index_empty_and_unknown_space(&*make(spec()).await).await;
    index_recall_at_10(&*make(spec()).await).await;
    index_updates_metadata_in_place(&*make(spec()).await).await;
}

/// Every record is found as its own nearest neighbour with score ~1, segment and metadata intact;
/// stats count vectors per space and assets.
pub async fn index_upsert_and_self_match(index: &dyn VectorIndex) {
    let records = clustered_records(40, 1);
    index.upsert(records.clone()).await.expect("upsert");
    index.flush().await.expect("flush");
    for r in &records {
        let hits = index
            .search(&VectorQuery::new(r.space, r.vector.clone(), 1))
            .await
            .expect("search");
        assert_eq!(hits.len(), 1, "one hit for k=1");
        let h = &hits[0];
        assert_eq!(
            (&h.asset_id, h.seq, h.space),
            (&r.asset_id, r.seq, r.space),
            "a record is its own nearest neighbour"
        );
        assert!(
            (h.score - 1.0).abs() < 1e-4,
            "self-similarity is 1, got {}",
            h.score
        );
        assert_eq!(h.segment, r.segment, "segment returned with the hit");
        assert_eq!(h.meta, r.meta, "metadata returned with the hit");
    }
    let stats = index.stats().await.expect("stats");
    let visual = records
        .iter()
        .filter(|r| r.space == EmbeddingSpace::Visual)
        .count();
    let audio = records
        .iter()
        .filter(|r| r.space == EmbeddingSpace::Audio)
        .count();
    assert_eq!(stats.vectors_in(EmbeddingSpace::Visual), visual as u64);
    assert_eq!(stats.vectors_in(EmbeddingSpace::Audio), audio as u64);
    assert_eq!(stats.vectors(), records.len() as u64);
    assert_eq!(stats.assets, 40);
}

/// Scores are cosine similarity: exact indexes match `FlatIndex` (ids and scores within 1e-4),
/// approximate ones report the true cosine of every hit, best first.
pub async fn index_scores_match_exact_search(index: &dyn VectorIndex) {
    let records = clustered_records(120, 2);
    let exact = FlatIndex::new(index.spec().clone());
    exact.upsert_sync(records.clone()).expect("flat upsert");
    index.upsert(records.clone()).await.expect("upsert");
    index.flush().await.expect("flush");
    let mut rng = StdRng::seed_from_u64(22);
    for _ in 0..20 {
        let q = VectorQuery::new(EmbeddingSpace::Visual, random_vector(&mut rng, DIM), 10);
        let got = index.search(&q).await.expect("search");
        let want = exact.search_sync(&q).expect("flat search");
        assert!(got.len() <= 10);
        for w in got.windows(2) {
            assert!(w[0].score >= w[1].score, "hits sorted best first");
        }
        let qn = normalized(&q.vector);
        for h in &got {
            let r = records
                .iter()
                .find(|r| r.asset_id == h.asset_id && r.space == h.space && r.seq == h.seq)
                .expect("hit names an inserted record");
            let cos = cosine_of_unit(&qn, &normalized(&r.vector));
            assert!(
                (h.score - cos).abs() < 1e-4,
                "score {} is the cosine {cos}",
                h.score
            );
            assert!((-1.0..=1.0).contains(&h.score));
        }
        if index.capabilities().exact {
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                assert!((g.score - w.score).abs() < 1e-4);
                assert_eq!((&g.asset_id, g.seq), (&w.asset_id, w.seq));
            }
        }
    }
}

/// Filters hold inside the search: a rare kind still yields `min(k, matching)` hits, all matching.
pub async fn index_filters_are_pushed_down(index: &dyn VectorIndex) {
    let records = clustered_records(400, 3);
    index.upsert(records.clone()).await.expect("upsert");
    index.flush().await.expect("flush");
    let mut rng = StdRng::seed_from_u64(33);
    let some_ids: Vec<AssetId> = records
        .iter()
        .filter(|r| r.space == EmbeddingSpace::Visual)
        .map(|r| r.asset_id.clone())
        .step_by(37)
        .take(3)
        .collect();
    let filters = vec![
        Filter::default().kinds([MediaKind::Image]),
        Filter::default().formats([MediaFormat::Mov]),
        Filter::default().tag("tag3"),
        Filter::default().asset_ids(some_ids.clone()),
        Filter::default()
            .created_between(Some(1_000_000 + 100 * 1000), Some(1_000_000 + 110 * 1000)),
        Filter::default().kinds([MediaKind::Video]).tag("tag1"),
        Filter::default().field("campaign", FieldTest::Eq("winter".into())),
        Filter::default().field(
            "campaign",
            FieldTest::In(vec!["winter".into(), "spring".into()]),
        ),
        Filter::default().field(
            "budget",
            FieldTest::Range {
                gte: Some(100.0.into()),
                lt: Some(150.0.into()),
            },
        ),
        Filter::default().field("approved", FieldTest::Eq(true.into())),
        Filter::default().field(
            "launch",
            FieldTest::Range {
                gte: Some(FieldValue::Time(1_700_000_000_000 + 50 * 86_400_000)),
                lt: None,
            },
        ),
        Filter::default().field("launch", FieldTest::Not(Box::new(FieldTest::Exists))),
        Filter::default().field(
            "campaign",
            FieldTest::Not(Box::new(FieldTest::Eq("summer".into()))),
        ),
        Filter::default().duration_between(Some(15_000), None),
        Filter::default()
            .kinds([MediaKind::Video])
            .field(
                "budget",
                FieldTest::Range {
                    gte: None,
                    lt: Some(300.0.into()),
                },
            )
            .field("approved", FieldTest::Eq(false.into())),
    ];
    for filter in filters {
        let matching: Vec<&VectorRecord> = records
            .iter()
            .filter(|r| r.space == EmbeddingSpace::Visual && filter.matches(&r.asset_id, &r.meta))
            .collect();
        let q = VectorQuery::new(EmbeddingSpace::Visual, random_vector(&mut rng, DIM), 10)
            .filter(filter.clone());
        let hits = index.search(&q).await.expect("filtered search");
        assert_eq!(
            hits.len(),
            matching.len().min(10),
            "filter {filter:?} returns min(k, matching) hits"
        );
        for h in &hits {
            assert!(
                filter.matches(&h.asset_id, &h.meta),
                "hit violates {filter:?}"
            );
        }
    }
    // Nothing matches: no hits, no error.
    let q = VectorQuery::new(EmbeddingSpace::Audio, random_vector(&mut rng, DIM), 10)
        .filter(Filter::default().kinds([MediaKind::Image]));
    assert!(index.search(&q).await.expect("search").is_empty());
}

/// Upserting an existing key replaces its vector and metadata, not adds a second vector.
pub async fn index_upsert_replaces_by_key(index: &dyn VectorIndex) {
    let records = clustered_records(20, 4);
    index.upsert(records.clone()).await.expect("upsert");
    let before = index.stats().await.expect("stats").vectors();
    let mut changed = records[0].clone();
    let mut rng = StdRng::seed_from_u64(44);
    changed.vector = random_vector(&mut rng, DIM);
    changed.meta.tags = vec!["replaced".into()];
    index.upsert(vec![changed.clone()]).await.expect("replace");
    index.flush().await.expect("flush");
    assert_eq!(index.stats().await.expect("stats").vectors(), before);
    let hits = index
        .search(&VectorQuery::new(changed.space, changed.vector.clone(), 1))
        .await
        .expect("search");
    assert_eq!(hits[0].asset_id, changed.asset_id);
    assert!((hits[0].score - 1.0).abs() < 1e-4);
    assert_eq!(hits[0].meta.tags, vec!["replaced".to_string()]);
    let old = index
        .search(
            &VectorQuery::new(changed.space, records[0].vector.clone(), 40)
                .filter(Filter::default().asset_ids([changed.asset_id.clone()])),
        )
        .await
        .expect("search");
    assert!(
        old.iter()
            .filter(|h| h.seq == changed.seq && h.space == changed.space)
            .count()
            == 1,
        "the old vector is gone"
    );
}

/// `delete_asset` removes every vector of the asset in every space and reports how many.
pub async fn index_delete_asset_removes_every_space(index: &dyn VectorIndex) {
    let records = clustered_records(24, 5);
    index.upsert(records.clone()).await.expect("upsert");
    let video = records
        .iter()
        .find(|r| r.meta.kind == MediaKind::Video)
        .expect("a video")
        .asset_id
        .clone();
    let expected = records.iter().filter(|r| r.asset_id == video).count();
    assert_eq!(index.delete_asset(&video).await.expect("delete"), expected);
    index.flush().await.expect("flush");
    assert_eq!(
        index.delete_asset(&video).await.expect("delete again"),
        0,
        "deleting twice removes nothing"
    );
    for r in records.iter().filter(|r| r.asset_id == video) {
        let hits = index
            .search(&VectorQuery::new(r.space, r.vector.clone(), 50))
            .await
            .expect("search");
        assert!(
            hits.iter().all(|h| h.asset_id != video),
            "deleted asset found"
        );
    }
    let stats = index.stats().await.expect("stats");
    assert_eq!(stats.vectors(), (records.len() - expected) as u64);
    assert_eq!(stats.assets, 23);
    let unknown = AssetId::from_content(b"never inserted");
    assert_eq!(
        index.delete_asset(&unknown).await.expect("delete unknown"),
        0
    );
}

/// Wrong dimension, NaN, infinity, zero vectors and k = 0 are `InvalidInput`; a batch with one
/// bad record changes nothing.
pub async fn index_rejects_bad_input_and_changes_nothing(index: &dyn VectorIndex) {
    let records = clustered_records(8, 6);
    index.upsert(records.clone()).await.expect("upsert");
    let before = index.stats().await.expect("stats").vectors();
    let bad_vectors = [
        vec![0.5; DIM - 1],
        {
            let mut v = vec![0.5; DIM];
            v[3] = f32::NAN;
            v
        },
        {
            let mut v = vec![0.5; DIM];
            v[0] = f32::INFINITY;
            v
        },
        vec![0.0; DIM],
    ];
    for bad in &bad_vectors {
        let mut batch = clustered_records(3, 60);
        batch[1].vector = bad.clone();
        let err = index.upsert(batch).await.expect_err("bad record rejected");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        let err = index
            .search(&VectorQuery::new(EmbeddingSpace::Visual, bad.clone(), 5))
            .await
            .expect_err("bad query rejected");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    }
    let err = index
        .search(&VectorQuery::new(EmbeddingSpace::Visual, vec![0.5; DIM], 0))
        .await
        .expect_err("k = 0 rejected");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    index.flush().await.expect("flush");
    assert_eq!(
        index.stats().await.expect("stats").vectors(),
        before,
        "a rejected batch changes nothing"
    );
}

/// An empty index, and a space without vectors, answer with no hits rather than an error.
pub async fn index_empty_and_unknown_space(index: &dyn VectorIndex) {
    let q = VectorQuery::new(EmbeddingSpace::Transcription, vec![0.1; DIM], 5);
    assert!(index.search(&q).await.expect("search empty").is_empty());
    assert_eq!(index.stats().await.expect("stats").vectors(), 0);
    index.upsert(clustered_records(8, 7)).await.expect("upsert");
    assert!(
        index
            .search(&q)
            .await
            .expect("search unknown space")
            .is_empty()
    );
}

/// Recall@10 against exact search, unfiltered and with a kind filter, on 3,000 assets.
pub async fn index_recall_at_10(index: &dyn VectorIndex) {
    let records = clustered_records(3000, 8);
    let exact = FlatIndex::new(index.spec().clone());
    exact.upsert_sync(records.clone()).expect("flat upsert");
    for chunk in records.chunks(1000) {
        index.upsert(chunk.to_vec()).await.expect("upsert");
    }
    index.flush().await.expect("flush");
    let mut rng = StdRng::seed_from_u64(88);
    for filter in [
        Filter::default(),
        Filter::default().kinds([MediaKind::Audio]),
    ] {
        let (mut found, mut total) = (0usize, 0usize);
        for _ in 0..100 {
            let q = VectorQuery::new(EmbeddingSpace::Audio, random_vector(&mut rng, DIM), 10)
                .filter(filter.clone());
            let want: HashSet<(AssetId, u32)> = exact
                .search_sync(&q)
                .expect("flat")
                .into_iter()
                .map(|h| (h.asset_id, h.seq))
                .collect();
            let got: HashSet<(AssetId, u32)> = index
                .search(&q)
                .await
                .expect("search")
                .into_iter()
                .map(|h| (h.asset_id, h.seq))
                .collect();
            found += want.intersection(&got).count();
            total += want.len();
        }
        let recall = found as f64 / total as f64;
        let min = if index.capabilities().exact {
            1.0
        } else {
            MIN_RECALL_AT_10
        };
        assert!(
            recall >= min,
            "recall@10 {recall:.3} below {min} with filter {filter:?}"
        );
    }
}

/// `update_meta` changes the metadata of every vector of one asset in place: filters see the
/// new values at once, the vectors and other assets are untouched, an unknown asset changes
/// nothing (0), a bad patch is `InvalidInput` and changes nothing.
pub async fn index_updates_metadata_in_place(index: &dyn VectorIndex) {
    let records = clustered_records(40, 9);
    index.upsert(records.clone()).await.expect("upsert");
    index.flush().await.expect("flush");
    let target = records
        .iter()
        .find(|r| r.meta.kind == MediaKind::Video)
        .expect("a video")
        .clone();
    let expected = records
        .iter()
        .filter(|r| r.asset_id == target.asset_id)
        .count();
    let patch = MetaPatch::default()
        .set("campaign", "autumn")
        .set("reviewer", "ana")
        .remove("budget")
        .add_tag("approved-cut")
        .remove_tag(target.meta.tags[0].clone())
        .rename("renamed.mp4");
    let changed = index
        .update_meta(&target.asset_id, &patch)
        .await
        .expect("update_meta");
    assert_eq!(changed, expected, "every vector of the asset is updated");
    index.flush().await.expect("flush");
    let mut want = target.meta.clone();
    patch.apply_to(&mut want).expect("apply");
    for space in [EmbeddingSpace::Visual, EmbeddingSpace::Audio] {
        let by_field = Filter::default().field("campaign", FieldTest::Eq("autumn".into()));
        let hits = index
            .search(&VectorQuery::new(space, target.vector.clone(), 10).filter(by_field))
            .await
            .expect("search by the new value");
        assert_eq!(
            hits.len(),
            records
                .iter()
                .filter(|r| r.asset_id == target.asset_id && r.space == space)
                .count(),
            "only the patched asset carries the new value"
        );
        for h in &hits {
            assert_eq!(h.asset_id, target.asset_id);
            assert_eq!(h.meta, want, "hits carry the patched metadata");
        }
        let by_tag = Filter::default().tag("approved-cut");
        let tagged = index
            .search(&VectorQuery::new(space, target.vector.clone(), 10).filter(by_tag))
            .await
            .expect("search by the new tag");
        assert!(tagged.iter().all(|h| h.asset_id == target.asset_id));
        assert_eq!(tagged.len(), hits.len());
    }
    let old = Filter::default()
        .asset_ids([target.asset_id.clone()])
        .field("budget", FieldTest::Exists);
    assert!(
        index
            .search(&VectorQuery::new(target.space, target.vector.clone(), 10).filter(old))
            .await
            .expect("search")
            .is_empty(),
        "a removed field no longer matches"
    );
    // The vectors are the same: the record is still its own nearest neighbour.
    let hits = index
        .search(&VectorQuery::new(target.space, target.vector.clone(), 1))
        .await
        .expect("search");
    assert_eq!(hits[0].asset_id, target.asset_id);
    assert!((hits[0].score - 1.0).abs() < 1e-4);
    // Another asset keeps its metadata.
    let other = records
        .iter()
        .find(|r| r.asset_id != target.asset_id && r.space == EmbeddingSpace::Visual)
        .expect("another asset");
    let hits = index
        .search(&VectorQuery::new(other.space, other.vector.clone(), 1))
        .await
        .expect("search");
    assert_eq!(hits[0].meta, other.meta);
    // Unknown asset: nothing to change.
    let unknown = AssetId::from_content(b"never inserted");
    assert_eq!(
        index
            .update_meta(&unknown, &MetaPatch::default().set("campaign", "x"))
            .await
            .expect("unknown asset"),
        0
    );
    // A bad patch is refused and changes nothing.
    for bad in [
        MetaPatch::default().set("bad key", "x"),
        MetaPatch::default().set("n", f64::NAN),
        MetaPatch::default().add_tag(" "),
    ] {
        let err = index
            .update_meta(&target.asset_id, &bad)
            .await
            .expect_err("bad patch refused");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    }
    let too_many = (0..crate::index::MAX_FIELDS).fold(MetaPatch::default(), |p, i| {
        p.set(format!("f{i}"), i as f64)
    });
    let err = index
        .update_meta(&target.asset_id, &too_many)
        .await
        .expect_err("too many fields");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let hits = index
        .search(&VectorQuery::new(target.space, target.vector.clone(), 1))
        .await
        .expect("search");
    assert_eq!(hits[0].meta, want, "refused patches changed nothing");
}
