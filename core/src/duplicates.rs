//! Near-duplicates: re-encoded, cropped or re-cut copies of an asset, found segment by segment.
//!
//! Every segment vector of the asset (from the embedding cache: nothing is embedded again) is
//! searched in its own space; other assets' segments at or above a cosine threshold pair with
//! it. Comparing *how much* of each asset pairs up tells a true copy (most segments of both
//! match) from two ads that only share an opening or a pack shot (a few segments match): one
//! frame per video cannot (immich#11699, #27688).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::asset::AssetId;
use crate::catalog::{AssetCatalog, AssetQuery, AssetState};
use crate::embedder::CachedEmbedder;
use crate::embedding::{EmbeddingSpace, Segment};
use crate::error::{Error, Result};
use crate::index::{Filter, VectorIndex, VectorQuery};

/// What counts as a near-duplicate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DuplicateQuery {
    /// Two segments pair up at or above this cosine (default 0.92: re-encodes and small crops
    /// of one shot stay above it with Marengo; different shots of one campaign fall below).
    pub min_cosine: f32,
    /// Neighbours looked at per segment (default 10).
    pub per_segment: usize,
    /// A pair is a [`DuplicateKind::Copy`] when at least this share of *both* assets' segments
    /// pair up (default 0.8); below, a [`DuplicateKind::SharedPart`].
    pub copy_coverage: f32,
    /// Only candidates passing this filter.
    pub filter: Filter,
}

impl Default for DuplicateQuery {
    fn default() -> Self {
        DuplicateQuery {
            min_cosine: 0.92,
            per_segment: 10,
            copy_coverage: 0.8,
            filter: Filter::default(),
        }
    }
}

impl DuplicateQuery {
    /// Sets the cosine threshold.
    pub fn min_cosine(mut self, min: f32) -> Self {
        self.min_cosine = min;
        self
    }

    /// Sets the share of segments that makes a copy.
    pub fn copy_coverage(mut self, share: f32) -> Self {
        self.copy_coverage = share;
        self
    }

    /// Sets the filter candidates must pass.
    pub fn filter(mut self, filter: Filter) -> Self {
        self.filter = filter;
        self
    }

    fn check(&self) -> Result<()> {
        if !(-1.0..=1.0).contains(&self.min_cosine) {
            return Err(Error::invalid_input(format!(
                "min_cosine must be a cosine in [-1, 1], got {}",
                self.min_cosine
            )));
        }
        if !(0.0..=1.0).contains(&self.copy_coverage) {
            return Err(Error::invalid_input(format!(
                "copy_coverage must be a share in [0, 1], got {}",
                self.copy_coverage
            )));
        }
        if self.per_segment == 0 || self.per_segment > 1000 {
            return Err(Error::invalid_input(format!(
                "per_segment must be between 1 and 1000, got {}",
                self.per_segment
            )));
        }
        self.filter.check()
    }
}

/// Two segments that look alike.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SegmentPair {
    /// The space they matched in.
    pub space: EmbeddingSpace,
    /// The segment of the asset asked about (`None`: a whole image).
    pub segment: Option<Segment>,
    /// The matching segment of the other asset.
    pub other_segment: Option<Segment>,
    /// Their cosine similarity.
    pub cosine: f32,
}

/// Whether two assets are one piece of media or only share part of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DuplicateKind {
    /// Most of both assets pair up: a re-encode, crop or re-cut of the same media.
    Copy,
    /// Only some segments pair up: a shared opening, pack shot or jingle.
    SharedPart,
}

/// Another asset that looks like the one asked about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Duplicate {
    /// The other asset.
    pub asset_id: AssetId,
    /// Copy or shared part.
    pub kind: DuplicateKind,
    /// Share of the asked asset's segments that pair with the other's.
    pub coverage: f32,
    /// Share of the other asset's segments that pair with the asked one's.
    pub other_coverage: f32,
    /// The best pair's cosine.
    pub best_cosine: f32,
    /// The pairs, in the asked asset's time order (its best match per segment).
    pub pairs: Vec<SegmentPair>,
}

/// A near-duplicate pair of the library.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DuplicatePair {
    /// One asset (the smaller id).
    pub asset_id: AssetId,
    /// The other, with the pairs seen from `asset_id`.
    pub duplicate: Duplicate,
}

/// Finds near-duplicates with an index and the embedding cache.
#[derive(Clone)]
pub struct DuplicateFinder {
    embedder: CachedEmbedder,
    index: Arc<dyn VectorIndex>,
    catalog: Arc<dyn AssetCatalog>,
}

impl std::fmt::Debug for DuplicateFinder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DuplicateFinder").finish_non_exhaustive()
    }
}

impl DuplicateFinder {
    /// A finder over these parts (the embedder's cache holds the segment vectors).
    pub fn new(
        embedder: CachedEmbedder,
        index: Arc<dyn VectorIndex>,
        catalog: Arc<dyn AssetCatalog>,
    ) -> Self {
        DuplicateFinder {
            embedder,
            index,
            catalog,
        }
    }

    /// The near-duplicates of `asset`, copies first, then by coverage. `NotFound` for an
    /// unknown asset or one whose vectors the embedding cache does not hold.
    pub async fn of_asset(
        &self,
        asset: &AssetId,
        query: &DuplicateQuery,
    ) -> Result<Vec<Duplicate>> {
        query.check()?;
        let record = self.catalog.get(asset).await?.ok_or_else(|| {
            Error::not_found("no such asset in the catalog").with_context("asset", asset.short())
        })?;
        let mine = self
            .embedder
            .cached(asset, record.kind())
            .await
            .ok_or_else(|| {
                Error::not_found(
                    "the embedding cache does not hold this asset's vectors (needed to compare \
                     it segment by segment)",
                )
                .with_context("asset", asset.short())
            })?;
        let total = mine.len().max(1);
        // Per other asset: per (space, my segment index) its best (other segment, cosine).
        type Best = BTreeMap<(EmbeddingSpace, usize), (Option<Segment>, f32, u32)>;
        let mut found: HashMap<AssetId, (Best, crate::MediaKind)> = HashMap::new();
        for (i, e) in mine.iter().enumerate() {
            let hits = self
                .index
                .search(&VectorQuery {
                    space: e.space,
                    vector: e.vector.clone(),
                    k: query.per_segment + 1,
                    filter: query.filter.clone(),
                })
                .await?;
            for h in hits {
                if &h.asset_id == asset || h.score < query.min_cosine {
                    continue;
                }
                let (best, _) = found
                    .entry(h.asset_id.clone())
                    .or_insert_with(|| (BTreeMap::new(), h.meta.kind));
                let slot = best
                    .entry((e.space, i))
                    .or_insert((h.segment, h.score, h.seq));
                if h.score > slot.1 {
                    *slot = (h.segment, h.score, h.seq);
                }
            }
        }
        let mut out = Vec::with_capacity(found.len());
        for (other, (best, kind)) in found {
            let other_total = self
                .embedder
                .cached(&other, kind)
                .await
                .map_or(0, |v| v.len());
            let other_matched: HashSet<(EmbeddingSpace, u32)> = best
                .iter()
                .map(|((s, _), (_, _, seq))| (*s, *seq))
                .collect();
            let coverage = best.len() as f32 / total as f32;
            // Without the other's vectors cached, its size is unknown: judged by ours alone.
            let other_coverage = if other_total == 0 {
                coverage
            } else {
                (other_matched.len() as f32 / other_total as f32).min(1.0)
            };
            let mut pairs: Vec<SegmentPair> = best
                .iter()
                .filter_map(|((space, i), (seg, cosine, _))| {
                    Some(SegmentPair {
                        space: *space,
                        segment: mine.get(*i)?.segment,
                        other_segment: *seg,
                        cosine: *cosine,
                    })
                })
                .collect();
            pairs.sort_by(|a, b| {
                let start = |s: Option<Segment>| s.map_or(f64::NEG_INFINITY, |s| s.start_sec);
                start(a.segment)
                    .total_cmp(&start(b.segment))
                    .then(a.space.cmp(&b.space))
            });
            let best_cosine = pairs.iter().map(|p| p.cosine).fold(f32::MIN, f32::max);
            let kind = if coverage >= query.copy_coverage && other_coverage >= query.copy_coverage {
                DuplicateKind::Copy
            } else {
                DuplicateKind::SharedPart
            };
            out.push(Duplicate {
                asset_id: other,
                kind,
                coverage,
                other_coverage,
                best_cosine,
                pairs,
            });
        }
        out.sort_by(|a, b| {
            (a.kind != DuplicateKind::Copy)
                .cmp(&(b.kind != DuplicateKind::Copy))
                .then(
                    b.coverage
                        .min(b.other_coverage)
                        .total_cmp(&a.coverage.min(a.other_coverage)),
                )
                .then(b.best_cosine.total_cmp(&a.best_cosine))
                .then(a.asset_id.cmp(&b.asset_id))
        });
        Ok(out)
    }

    /// Every near-duplicate pair of the library's indexed assets, each pair once (seen from
    /// the smaller id), at most `limit` pairs. A batch job: one search per segment of every
    /// asset (for 100,000 assets of 15 vectors, 1.5 million searches).
    pub async fn library(
        &self,
        query: &DuplicateQuery,
        limit: usize,
    ) -> Result<Vec<DuplicatePair>> {
        query.check()?;
        let mut out = Vec::new();
        let mut page_query = AssetQuery::new().state(AssetState::Indexed).limit(500);
        loop {
            let page = self.catalog.list(&page_query).await?;
            for record in page.assets {
                let dups = match self.of_asset(&record.asset_id, query).await {
                    Ok(d) => d,
                    // An asset whose vectors are not cached cannot be compared: skipped.
                    Err(e) if e.kind() == crate::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                for d in dups {
                    if record.asset_id < d.asset_id {
                        out.push(DuplicatePair {
                            asset_id: record.asset_id.clone(),
                            duplicate: d,
                        });
                        if out.len() >= limit {
                            return Ok(out);
                        }
                    }
                }
            }
            match page.next_cursor {
                Some(c) => page_query = page_query.cursor(c),
                None => return Ok(out),
            }
        }
    }
}

#[cfg(test)]
#[path = "duplicates_tests.rs"]
mod tests;
