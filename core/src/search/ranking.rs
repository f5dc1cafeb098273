//! From what the routes found to the ranked hits: per-asset fusion of the vector routes and the
//! keyword route, clips (every matching segment, adjacent ones merged), ordering.
//!
//! Pure functions over the routes' answers, so every index (flat, HNSW, OpenSearch) gets the
//! same grouping, fusion and order.

use std::collections::{BTreeMap, HashMap};

use super::{ClipMatch, Fusion, Grouping, KeywordScore, ResultOrder, RouteMatch, SearchHit};
use crate::asset::AssetId;
use crate::embedding::{EmbeddingSpace, Segment};
use crate::index::RecordMeta;
use crate::keywords::KeywordHit;

/// Weight of keyword relevance when a query with keywords uses [`Fusion::Cosine`]: it is
/// fused as [`Fusion::Weighted`] with this weight.
pub const DEFAULT_KEYWORD_WEIGHT: f32 = 0.3;

/// One clip a route found: the best cosine of one record over the route's query vectors.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FoundClip {
    pub(crate) seq: u32,
    pub(crate) segment: Option<Segment>,
    pub(crate) cosine: f32,
}

/// One asset a route found: its clips, best first.
#[derive(Debug, Clone)]
pub(crate) struct RouteAsset {
    pub(crate) asset_id: AssetId,
    pub(crate) clips: Vec<FoundClip>,
    pub(crate) meta: RecordMeta,
}

/// What one vector route found, best asset first.
#[derive(Debug, Clone)]
pub(crate) struct RouteFound {
    pub(crate) space: EmbeddingSpace,
    pub(crate) assets: Vec<RouteAsset>,
}

/// How the hits are grouped, fused and ordered.
#[derive(Debug, Clone)]
pub(crate) struct RankSpec {
    /// Weight of each space's matches when fusing (absent: 1).
    pub(crate) space_weights: BTreeMap<EmbeddingSpace, f32>,
    pub(crate) fusion: Fusion,
    pub(crate) grouping: Grouping,
    pub(crate) order: ResultOrder,
    /// Whether the query ran a keyword route (every asset is then scored with keywords).
    pub(crate) keywords: bool,
}

/// Every asset any route found, fused, grouped and ordered (all of them: the caller pages).
pub(crate) fn rank(
    routes: Vec<RouteFound>,
    keywords: Vec<KeywordHit>,
    spec: RankSpec,
) -> Vec<SearchHit> {
    struct Acc {
        matches: Vec<RouteMatch>,
        clips: Vec<ClipMatch>,
        rrf: f32,
        meta: RecordMeta,
        keywords: Option<KeywordScore>,
    }
    let mut merged: HashMap<AssetId, Acc> = HashMap::new();
    let rrf = |k0: f32, rank: usize| 1.0 / (k0 + rank as f32 + 1.0);
    let weight = |space: EmbeddingSpace| spec.space_weights.get(&space).copied().unwrap_or(1.0);
    for route in routes {
        let w = weight(route.space);
        for (rank, asset) in route.assets.into_iter().enumerate() {
            let Some(best) = asset.clips.first().cloned() else {
                continue;
            };
            let acc = merged.entry(asset.asset_id).or_insert_with(|| Acc {
                matches: Vec::new(),
                clips: Vec::new(),
                rrf: 0.0,
                meta: asset.meta.clone(),
                keywords: None,
            });
            if let Fusion::ReciprocalRank { k0 } = spec.fusion {
                acc.rrf += w * rrf(k0, rank);
            }
            acc.matches.push(RouteMatch {
                space: route.space,
                segment: best.segment,
                cosine: best.cosine,
                rank,
            });
            acc.clips.extend(asset.clips.into_iter().map(|c| ClipMatch {
                space: route.space,
                segment: c.segment,
                cosine: c.cosine,
            }));
        }
    }
    for (rank, hit) in keywords.into_iter().enumerate() {
        // Only assets a vector route reached (the caller scores keyword-only assets by vector
        // first): an asset none of the routes' spaces holds is outside what the query asks.
        let Some(acc) = merged.get_mut(&hit.asset_id) else {
            continue;
        };
        if let Fusion::ReciprocalRank { k0 } = spec.fusion {
            acc.rrf += rrf(k0, rank);
        }
        // The keyword index's metadata is the catalog's, the newest.
        acc.meta = hit.meta;
        acc.keywords = Some(KeywordScore {
            score: hit.score,
            rank,
            matches: hit.matches,
        });
    }

    let mut hits: Vec<(SearchHit, usize)> = merged
        .into_iter()
        .filter_map(|(asset_id, mut acc)| {
            // The best match by weighted cosine (all weights 1: the best cosine).
            let best = acc
                .matches
                .iter()
                .max_by(|a, b| {
                    (weight(a.space) * a.cosine)
                        .total_cmp(&(weight(b.space) * b.cosine))
                        .then(b.rank.cmp(&a.rank))
                })?
                .clone();
            let vector = weight(best.space) * best.cosine;
            let keyword = acc.keywords.as_ref().map_or(0.0, |k| k.score);
            let score = match spec.fusion {
                Fusion::Cosine if spec.keywords => {
                    weighted(vector, keyword, DEFAULT_KEYWORD_WEIGHT)
                }
                Fusion::Cosine => vector,
                Fusion::Weighted { keyword_weight } => weighted(vector, keyword, keyword_weight),
                Fusion::ReciprocalRank { .. } => acc.rrf,
            };
            let clips = group_clips(std::mem::take(&mut acc.clips), spec.grouping);
            let count = clips.len();
            let clips = match spec.grouping {
                Grouping::Asset => Vec::new(),
                Grouping::Clips {
                    clips_per_asset, ..
                } => clips.into_iter().take(clips_per_asset.max(1)).collect(),
            };
            Some((
                SearchHit {
                    asset_id,
                    score,
                    cosine: best.cosine,
                    space: best.space,
                    best_segment: best.segment,
                    matches: acc.matches,
                    clips,
                    clip_count: count,
                    keywords: acc.keywords,
                    meta: acc.meta,
                    media: None,
                    display_name: None,
                },
                count,
            ))
        })
        .collect();
    hits.sort_by(|(a, ca), (b, cb)| {
        let by_count = match spec.order {
            ResultOrder::ClipCount => cb.cmp(ca),
            ResultOrder::BestScore => std::cmp::Ordering::Equal,
        };
        by_count
            .then(b.score.total_cmp(&a.score))
            .then(b.cosine.total_cmp(&a.cosine))
            .then(a.asset_id.cmp(&b.asset_id))
    });
    hits.into_iter().map(|(h, _)| h).collect()
}

/// `(1 - w) * max(cosine, 0) + w * s / (s + 1)` for a keyword relevance `s >= 0` (BM25): the
/// keyword part saturates below 1 and depends on the asset alone, not on the other results,
/// so scores are comparable across pages.
fn weighted(cosine: f32, keyword: f32, w: f32) -> f32 {
    let s = keyword.max(0.0);
    (1.0 - w) * cosine.max(0.0) + w * (s / (s + 1.0))
}

/// An asset's clips, best first: one per record (the best space when two spaces matched the
/// same time range), and with `merge_adjacent` overlapping or touching time ranges merged into
/// one (its score the best of them).
fn group_clips(mut clips: Vec<ClipMatch>, grouping: Grouping) -> Vec<ClipMatch> {
    // Same time range in several spaces: keep the best.
    clips.sort_by(|a, b| {
        seg_key(a.segment)
            .partial_cmp(&seg_key(b.segment))
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(b.cosine.total_cmp(&a.cosine))
    });
    clips.dedup_by(|later, kept| later.segment == kept.segment);
    let merge = matches!(
        grouping,
        Grouping::Clips {
            merge_adjacent: true,
            ..
        }
    );
    if merge {
        // Sorted by start: fold each clip into the previous one when they overlap or touch.
        let mut out: Vec<ClipMatch> = Vec::with_capacity(clips.len());
        for c in clips {
            match (out.last_mut(), c.segment) {
                (Some(prev), Some(seg)) => match prev.segment {
                    Some(p) if seg.start_sec <= p.end_sec + ADJACENT_SEC => {
                        let end = p.end_sec.max(seg.end_sec);
                        if c.cosine > prev.cosine {
                            prev.cosine = c.cosine;
                            prev.space = c.space;
                        }
                        prev.segment = Some(Segment {
                            start_sec: p.start_sec,
                            end_sec: end,
                        });
                    }
                    _ => out.push(c),
                },
                _ => out.push(c),
            }
        }
        clips = out;
    }
    clips.sort_by(|a, b| {
        b.cosine.total_cmp(&a.cosine).then(
            seg_key(a.segment)
                .partial_cmp(&seg_key(b.segment))
                .unwrap_or(std::cmp::Ordering::Equal),
        )
    });
    clips
}

/// Gap below which two clips count as touching (segment bounds are floats).
const ADJACENT_SEC: f64 = 1e-3;

/// Orders clips by time, whole-asset clips (images) first.
fn seg_key(s: Option<Segment>) -> (f64, f64) {
    s.map_or((f64::NEG_INFINITY, f64::NEG_INFINITY), |s| {
        (s.start_sec, s.end_sec)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{MediaFormat, MediaKind};

    fn seg(a: f64, b: f64) -> Option<Segment> {
        Some(Segment::new(a, b).unwrap())
    }

    fn asset(n: u8, clips: &[(Option<Segment>, f32)]) -> RouteAsset {
        RouteAsset {
            asset_id: AssetId::from_content(&[n]),
            clips: clips
                .iter()
                .enumerate()
                .map(|(i, (s, c))| FoundClip {
                    seq: i as u32,
                    segment: *s,
                    cosine: *c,
                })
                .collect(),
            meta: RecordMeta::new(MediaKind::Video, MediaFormat::Mp4),
        }
    }

    fn spec(grouping: Grouping, order: ResultOrder) -> RankSpec {
        RankSpec {
            fusion: Fusion::Cosine,
            grouping,
            order,
            keywords: false,
            space_weights: BTreeMap::new(),
        }
    }

    #[test]
    fn clips_are_listed_merged_and_counted() {
        let routes = vec![RouteFound {
            space: EmbeddingSpace::Visual,
            assets: vec![
                asset(1, &[(seg(0.0, 6.0), 0.9)]),
                asset(
                    2,
                    &[
                        (seg(12.0, 18.0), 0.8),
                        (seg(6.0, 12.0), 0.7),
                        (seg(24.0, 30.0), 0.6),
                    ],
                ),
            ],
        }];
        let clips = Grouping::Clips {
            clips_per_asset: 10,
            merge_adjacent: false,
        };
        let hits = rank(
            routes.clone(),
            Vec::new(),
            spec(clips, ResultOrder::BestScore),
        );
        assert_eq!(hits[0].asset_id, AssetId::from_content(&[1]));
        assert_eq!(hits[1].clips.len(), 3);
        assert_eq!(hits[1].clips[0].segment, seg(12.0, 18.0), "best first");
        // By clip count, the asset with three matching clips leads.
        let hits = rank(
            routes.clone(),
            Vec::new(),
            spec(clips, ResultOrder::ClipCount),
        );
        assert_eq!(hits[0].asset_id, AssetId::from_content(&[2]));
        assert_eq!(hits[0].clip_count, 3);
        // Merged: 6-12 and 12-18 touch, 24-30 stays apart.
        let merged = Grouping::Clips {
            clips_per_asset: 10,
            merge_adjacent: true,
        };
        let hits = rank(routes, Vec::new(), spec(merged, ResultOrder::ClipCount));
        let two = &hits
            .iter()
            .find(|h| h.asset_id == AssetId::from_content(&[2]))
            .unwrap()
            .clips;
        assert_eq!(two.len(), 2);
        assert_eq!(two[0].segment, seg(6.0, 18.0));
        assert!((two[0].cosine - 0.8).abs() < 1e-6);
        assert_eq!(two[1].segment, seg(24.0, 30.0));
    }

    #[test]
    fn asset_grouping_keeps_the_best_clip_and_no_list() {
        let routes = vec![
            RouteFound {
                space: EmbeddingSpace::Visual,
                assets: vec![asset(1, &[(seg(0.0, 6.0), 0.5), (seg(6.0, 12.0), 0.4)])],
            },
            RouteFound {
                space: EmbeddingSpace::Audio,
                assets: vec![asset(1, &[(seg(6.0, 12.0), 0.7)])],
            },
        ];
        let hits = rank(
            routes,
            Vec::new(),
            spec(Grouping::Asset, ResultOrder::BestScore),
        );
        assert_eq!(hits.len(), 1);
        assert!(hits[0].clips.is_empty());
        assert_eq!(hits[0].space, EmbeddingSpace::Audio);
        assert_eq!(hits[0].best_segment, seg(6.0, 12.0));
        // Two records of the same time range in two spaces are one clip.
        assert_eq!(hits[0].clip_count, 2);
        assert_eq!(hits[0].matches.len(), 2);
    }

    #[test]
    fn keyword_relevance_is_fused_by_weight_or_rank() {
        let routes = vec![RouteFound {
            space: EmbeddingSpace::Visual,
            assets: vec![asset(1, &[(None, 0.6)]), asset(2, &[(None, 0.5)])],
        }];
        let meta = RecordMeta::new(MediaKind::Video, MediaFormat::Mp4).name("castle_siege.mp4");
        let kw = vec![KeywordHit::new(
            AssetId::from_content(&[2]),
            3.0,
            meta,
            &["castle".to_string()],
        )];
        let with_keywords = RankSpec {
            keywords: true,
            ..spec(Grouping::Asset, ResultOrder::BestScore)
        };
        let hits = rank(routes.clone(), kw.clone(), with_keywords.clone());
        assert_eq!(hits[0].asset_id, AssetId::from_content(&[2]), "{hits:?}");
        assert_eq!(hits[0].keywords.as_ref().unwrap().matches[0].field, "name");
        let expected = 0.7 * 0.5 + 0.3 * 0.75;
        assert!((hits[0].score - expected).abs() < 1e-6);
        // Without a keyword match, the same scale (the vector part only).
        assert!((hits[1].score - 0.7 * 0.6).abs() < 1e-6);
        let rrf = RankSpec {
            fusion: Fusion::ReciprocalRank { k0: 60.0 },
            ..with_keywords
        };
        let hits = rank(routes, kw, rrf);
        assert_eq!(hits[0].asset_id, AssetId::from_content(&[2]));
        assert!((hits[0].score - (1.0 / 62.0 + 1.0 / 61.0)).abs() < 1e-6);
    }

    #[test]
    fn space_weights_scale_each_space_in_the_fusion() {
        let routes = vec![
            RouteFound {
                space: EmbeddingSpace::Visual,
                assets: vec![asset(1, &[(None, 0.6)])],
            },
            RouteFound {
                space: EmbeddingSpace::Audio,
                assets: vec![asset(2, &[(seg(0.0, 6.0), 0.5)])],
            },
        ];
        let plain = rank(
            routes.clone(),
            Vec::new(),
            spec(Grouping::Asset, ResultOrder::BestScore),
        );
        assert_eq!(plain[0].asset_id, AssetId::from_content(&[1]));
        let mut audio_first = spec(Grouping::Asset, ResultOrder::BestScore);
        audio_first
            .space_weights
            .insert(EmbeddingSpace::Visual, 0.5);
        let weighted = rank(routes, Vec::new(), audio_first);
        assert_eq!(weighted[0].asset_id, AssetId::from_content(&[2]));
        assert!((weighted[1].score - 0.3).abs() < 1e-6, "0.5 x 0.6");
        assert!(
            (weighted[1].cosine - 0.6).abs() < 1e-6,
            "the raw cosine is kept"
        );
    }
}
