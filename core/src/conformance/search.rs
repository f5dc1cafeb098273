//! The search behaviour suite: grouping, paging, keywords, per-route minimums and negative
//! examples of a [`CrossModalSearcher`] over the index under test.
//!
//! Grouping, fusion and paging live above the [`VectorIndex`] trait, so they behave alike on
//! every index only if every index answers filtered k-NN queries alike: a backend's tests call
//! [`search_suite`] with the same factory as [`vector_index_suite`](super::vector_index_suite).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::index::{DIM, clustered_records, random_vector};
use crate::asset::AssetId;
use crate::catalog::{AssetCatalog, AssetRecord, AssetStatus, SqliteCatalog};
use crate::embedding::{
    Embedding, EmbeddingProvider, EmbeddingSpace, MediaInput, ModelInfo, Segment,
};
use crate::error::Result;
use crate::index::{FieldTest, Filter, IndexSpec, VectorIndex, VectorRecord};
use crate::media::{MediaKind, MediaProbe};
use crate::search::{CrossModalSearcher, Fusion, Grouping, Query, ResultOrder, SearchHit};
use crate::vector::{cosine_of_unit, normalized};

/// The model the suite's searcher runs with: Marengo 3.0's spaces and routes, [`DIM`] dims.
pub fn suite_model() -> ModelInfo {
    ModelInfo {
        id: "crossmodal-conformance-model".into(),
        dimension: DIM,
        ..ModelInfo::marengo_3_0()
    }
}

/// Text vectors drawn from the text's hash: the same text, the same vector.
struct SeededText(ModelInfo);

#[async_trait]
impl EmbeddingProvider for SeededText {
    fn model(&self) -> &ModelInfo {
        &self.0
    }
    async fn embed_text(&self, text: &str) -> Result<Vec<f32>> {
        Ok(text_vector(text))
    }
    async fn embed_media(&self, _: &MediaInput) -> Result<Vec<Embedding>> {
        Err(crate::Error::unsupported(
            "the search suite queries by text only",
        ))
    }
}

fn text_vector(text: &str) -> Vec<f32> {
    let seed = AssetId::from_content(text.as_bytes());
    let seed = u64::from_str_radix(&seed.as_str()[..16], 16).unwrap();
    random_vector(&mut StdRng::seed_from_u64(seed), DIM)
}

/// An index from `make` holding `records`, a searcher over it with a keyword index (an
/// in-memory SQLite catalog holding one record per asset).
async fn rig(
    index: Box<dyn VectorIndex>,
    records: &[VectorRecord],
) -> (CrossModalSearcher, Arc<dyn VectorIndex>) {
    let index: Arc<dyn VectorIndex> = Arc::from(index);
    let batch = index.capabilities().max_batch.max(1);
    for chunk in records.chunks(batch) {
        index.upsert(chunk.to_vec()).await.expect("upsert");
    }
    index.flush().await.expect("flush");
    // Paging rules hold while the index does not change; linking in the background changes
    // how the same vectors are found (exact scan, then graph walk).
    index.settle().await.expect("settle");
    let catalog = Arc::new(SqliteCatalog::open_in_memory().unwrap());
    let mut seen = HashSet::new();
    for r in records {
        if !seen.insert(r.asset_id.clone()) {
            continue;
        }
        let m = &r.meta;
        let record = AssetRecord {
            asset_id: r.asset_id.clone(),
            probe: MediaProbe {
                format: m.format,
                width: None,
                height: None,
                duration_sec: m.duration_ms.map(|d| d as f64 / 1000.0),
                has_video: m.kind == MediaKind::Video,
                has_audio: m.kind != MediaKind::Image,
            },
            size_bytes: 1,
            media: None,
            display_name: m.name.clone(),
            extension_mismatch: None,
            source_path: None,
            tags: m.tags.clone(),
            fields: m.fields.clone(),
            status: AssetStatus::Indexed,
            created_at_ms: m.created_at_ms,
            updated_at_ms: m.created_at_ms,
        };
        catalog.upsert(&record).await.unwrap();
    }
    let searcher = CrossModalSearcher::new(Arc::new(SeededText(suite_model())), index.clone())
        .keyword_index(catalog);
    (searcher, index)
}

/// Runs every search rule, each on a fresh index from `make`.
pub async fn search_suite<F, Fut>(make: F)
where
    F: Fn(IndexSpec) -> Fut,
    Fut: Future<Output = Box<dyn VectorIndex>>,
{
    let spec = IndexSpec::for_model(&suite_model());
    search_pages_have_no_repeats_or_gaps(make(spec.clone()).await).await;
    search_lists_every_matching_clip(make(spec.clone()).await).await;
    search_finds_names_by_keywords(make(spec.clone()).await).await;
    search_moves_away_from_negative_examples(make(spec).await).await;
}

fn key(h: &SearchHit) -> AssetId {
    h.asset_id.clone()
}

/// Ten pages of 7, in both groupings, both orders, with a metadata filter, with keywords, by
/// cosine and by RRF: each page continues the previous in one order, no asset twice, and the
/// pages together are exactly one search of 70 over the same candidate window.
pub async fn search_pages_have_no_repeats_or_gaps(index: Box<dyn VectorIndex>) {
    let records = clustered_records(240, 21);
    let (searcher, _index) = rig(index, &records).await;
    let summer_or_winter = Filter::default().field(
        "campaign",
        FieldTest::In(vec!["summer".into(), "winter".into()]),
    );
    let variants: Vec<(&str, Query)> = vec![
        ("asset", Query::text("cluster query")),
        (
            "clips",
            Query::text("cluster query").grouping(Grouping::clips(3)),
        ),
        (
            "merged clips by count",
            Query::text("cluster query")
                .grouping(Grouping::merged_clips(2))
                .order(ResultOrder::ClipCount),
        ),
        (
            "filtered",
            Query::text("cluster query").filter(summer_or_winter),
        ),
        ("keywords", Query::text("asset mp4 cluster").keywords(true)),
        (
            "keywords rrf clips",
            Query::text("asset wav")
                .keywords(true)
                .fusion(Fusion::ReciprocalRank { k0: 60.0 })
                .grouping(Grouping::clips(5)),
        ),
    ];
    for (name, base) in variants {
        let mut pages = Vec::new();
        let mut q = base.clone().k(7).oversample(4).page_depth(10);
        for _ in 0..10 {
            let page = searcher.search(&q).await.expect(name);
            assert!(page.hits.len() <= 7, "{name}: a page holds at most k");
            let next = page.next_cursor.clone();
            if next.is_some() {
                assert_eq!(page.hits.len(), 7, "{name}: a page before the last is full");
            }
            pages.push(page.hits);
            match next {
                Some(c) => q = q.cursor(c),
                None => break,
            }
        }
        let all: Vec<AssetId> = pages.iter().flatten().map(key).collect();
        assert!(pages.len() >= 3, "{name}: only {} pages", pages.len());
        let distinct: HashSet<&AssetId> = all.iter().collect();
        assert_eq!(distinct.len(), all.len(), "{name}: an asset on two pages");
        // The first page, then the later pages' window in one search without the first
        // page's assets: 70 = 7 * 10, window = k * oversample * depth = 280.
        let first: Vec<AssetId> = pages[0].iter().map(key).collect();
        let one = searcher
            .search(&base.clone().k(70).oversample(4).page_depth(1))
            .await
            .expect(name);
        let rest: Vec<AssetId> = one
            .hits
            .iter()
            .map(key)
            .filter(|id| !first.contains(id))
            .take(all.len() - first.len())
            .collect();
        assert_eq!(
            all[first.len()..].to_vec(),
            rest,
            "{name}: the later pages are one search of their window cut in pieces"
        );
        // A cursor belongs to its query.
        if pages.len() > 1 {
            let page = searcher
                .search(&base.clone().k(7).page_depth(10))
                .await
                .unwrap();
            let other = Query::text("another text").k(7).page_depth(10);
            let err = searcher
                .search(&other.cursor(page.next_cursor.unwrap()))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::InvalidInput, "{name}: {err}");
        }
    }
}

/// The unit vector of each record, by asset, space and time range (what a hit names).
/// A record by asset, space and the bits of its time range.
type ClipKey = (AssetId, EmbeddingSpace, Option<(u64, u64)>);

struct ClipVectors(HashMap<ClipKey, Vec<f32>>);

impl ClipVectors {
    fn key(s: Option<Segment>) -> Option<(u64, u64)> {
        s.map(|s| (s.start_sec.to_bits(), s.end_sec.to_bits()))
    }

    fn of(records: &[VectorRecord]) -> Self {
        ClipVectors(
            records
                .iter()
                .map(|r| {
                    (
                        (r.asset_id.clone(), r.space, Self::key(r.segment)),
                        normalized(&r.vector),
                    )
                })
                .collect(),
        )
    }

    fn get(&self, asset: &AssetId, space: EmbeddingSpace, segment: Option<Segment>) -> &[f32] {
        &self.0[&(asset.clone(), space, Self::key(segment))]
    }
}

/// With `Clips`, each hit lists its matching clips best first with their true cosines, a
/// per-route minimum holds, merged clips never overlap or touch, and `ClipCount` orders by
/// the number of matching clips.
pub async fn search_lists_every_matching_clip(index: Box<dyn VectorIndex>) {
    let records = clustered_records(120, 22);
    let by_clip = ClipVectors::of(&records);
    let (searcher, _index) = rig(index, &records).await;
    let text = "knights at dawn";
    let qv = normalized(&text_vector(text));
    let results = searcher
        .search(
            &Query::text(text)
                .k(20)
                .grouping(Grouping::clips(10))
                .min_score_in(EmbeddingSpace::Audio, 0.05),
        )
        .await
        .unwrap();
    assert!(!results.hits.is_empty());
    let mut several = 0;
    for h in &results.hits {
        assert!(!h.clips.is_empty(), "a hit lists its clips");
        assert!(h.clip_count >= h.clips.len());
        several += usize::from(h.clips.len() > 1);
        for w in h.clips.windows(2) {
            assert!(w[0].cosine >= w[1].cosine, "clips best first");
        }
        for c in &h.clips {
            let v = by_clip.get(&h.asset_id, c.space, c.segment);
            let true_cos = cosine_of_unit(&qv, v);
            assert!(
                (c.cosine - true_cos).abs() < 1e-3,
                "{} vs {true_cos}",
                c.cosine
            );
            if c.space == EmbeddingSpace::Audio {
                assert!(c.cosine >= 0.05, "the audio route's minimum holds");
            }
        }
        assert!(
            (h.clips[0].cosine - h.cosine).abs() < 1e-6,
            "best clip = best cosine"
        );
    }
    assert!(several > 0, "videos match with several clips");

    let merged = searcher
        .search(
            &Query::text(text)
                .k(20)
                .grouping(Grouping::merged_clips(10))
                .order(ResultOrder::ClipCount),
        )
        .await
        .unwrap();
    for w in merged.hits.windows(2) {
        assert!(w[0].clip_count >= w[1].clip_count, "ordered by clip count");
    }
    for h in &merged.hits {
        let mut spans: Vec<_> = h.clips.iter().filter_map(|c| c.segment).collect();
        spans.sort_by(|a, b| a.start_sec.total_cmp(&b.start_sec));
        for w in spans.windows(2) {
            assert!(
                w[1].start_sec > w[0].end_sec + 1e-4,
                "merged clips are apart: {spans:?}"
            );
        }
    }
}

/// A file named `castle_siege_v3.mp4` whose pictures look like nothing asked for is found by
/// "castle siege" with keywords, marked where it matched, and not found without.
pub async fn search_finds_names_by_keywords(index: Box<dyn VectorIndex>) {
    let mut records = clustered_records(80, 23);
    let text = "castle siege";
    // Its vectors point away from the query's.
    let away: Vec<f32> = text_vector(text).iter().map(|x| -x).collect();
    let target = records
        .iter()
        .find(|r| r.meta.kind == MediaKind::Video)
        .unwrap()
        .asset_id
        .clone();
    for r in records.iter_mut().filter(|r| r.asset_id == target) {
        r.meta.name = Some("castle_siege_v3.mp4".into());
        r.vector = away.clone();
    }
    let (searcher, _index) = rig(index, &records).await;
    let without = searcher.search(&Query::text(text).k(10)).await.unwrap();
    assert!(without.hits.iter().all(|h| h.asset_id != target));
    let with = searcher
        .search(&Query::text(text).k(10).keywords(true))
        .await
        .unwrap();
    let hit = with
        .hits
        .iter()
        .find(|h| h.asset_id == target)
        .expect("found by its name");
    assert_eq!(
        with.hits[0].asset_id, target,
        "the only keyword match leads"
    );
    let kw = hit.keywords.as_ref().unwrap();
    assert!(kw.matches.iter().any(|m| m.field == "name"), "{kw:?}");
    assert!(
        hit.best_segment.is_some(),
        "scored by vector too: it has its clip"
    );
}

/// A negative example moves the results away: the hits' similarity to it drops, and a stored
/// asset given as a negative is never returned.
pub async fn search_moves_away_from_negative_examples(index: Box<dyn VectorIndex>) {
    let records = clustered_records(160, 24);
    let by_clip = ClipVectors::of(&records);
    let (searcher, _index) = rig(index, &records).await;
    let text = "sunset over the sea";
    let negative = "people talking indoors";
    let nv = normalized(&text_vector(negative));
    let mean_to_negative = |hits: &[SearchHit]| {
        let s: f32 = hits
            .iter()
            .map(|h| {
                let v = by_clip.get(&h.asset_id, h.space, h.best_segment);
                cosine_of_unit(&nv, v)
            })
            .sum();
        s / hits.len().max(1) as f32
    };
    let plain = searcher.search(&Query::text(text).k(10)).await.unwrap();
    let pushed = searcher
        .search(&Query::text(text).k(10).negative_text(negative))
        .await
        .unwrap();
    assert!(
        mean_to_negative(&pushed.hits) < mean_to_negative(&plain.hits),
        "results move away from the negative example"
    );
    assert_ne!(
        plain.hits.iter().map(key).collect::<Vec<_>>(),
        pushed.hits.iter().map(key).collect::<Vec<_>>()
    );
}
