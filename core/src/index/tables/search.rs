//! Searching one space: the plan (exact scan or graph walk), the scans, the walk with the
//! filter inside it, the exact scan of rows not yet linked, and int8 re-ranking.

use std::cell::Cell;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashSet};

use crossmodal_hnsw::{QueryDistance, SearchScratch};
use parking_lot::Mutex;

use super::assets::AssetTable;
use super::space::{SpaceTable, VectorData, kind_bit, prefetch_ahead};
use crate::error::Result;
use crate::index::Filter;
use crate::storage::blocks::RowBlocks;
use crate::vector::{cosine_of_unit, dot, dot_i8, quantize_i8};

/// Rows sampled to estimate a filter's selectivity, in runs of `SAMPLE_RUN` consecutive rows.
const SELECTIVITY_SAMPLE: usize = 256;
const SAMPLE_RUN: usize = 8;

/// Where a filtered walk and an exact scan of the matching rows cost the same, as
/// `selectivity^2 x rows` (measured at 500,000 rows x 512 dims: the break-even near 7.7%, a
/// walk 3.4x faster than the scan at 14%; at 150,000 rows near the 15% default).
const FILTER_BREAK_EVEN_ROWS: f64 = 3000.0;

/// How a search was answered (for tests and benches).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SearchTrace {
    /// Graph walks run (0 when the plan scanned exactly).
    pub graph_rounds: u32,
    /// The candidate list size of the walk (0 if none ran).
    pub final_ef: usize,
    /// Whether an exact scan produced the hits (planned, or completing a short walk).
    pub exact: bool,
    /// Distance evaluations of the walk (a load-independent measure of its cost).
    pub distances: u64,
    /// Rows not yet linked into the graph, scanned exactly beside the walk.
    pub pending: usize,
    /// Candidates re-ranked with their f32 vectors (int8 mode).
    pub reranked: usize,
}

/// Search planning knobs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub(crate) exact_scan_bytes: usize,
    pub(crate) exact_filter_selectivity: f64,
    /// Int8 mode, exact scans over the codes: candidates re-ranked per requested hit.
    pub(crate) rerank: usize,
}

/// A scored row, ordered so that a max-heap keeps the *worst* on top (higher score is "less").
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scored(pub(crate) f32, pub(crate) u32);

impl PartialEq for Scored {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        other.0.total_cmp(&self.0).then(self.1.cmp(&other.1))
    }
}

/// Keeps the `k` best of what it is offered.
struct TopK {
    k: usize,
    heap: BinaryHeap<Scored>,
}

impl TopK {
    fn new(k: usize) -> TopK {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
        }
    }

    #[inline]
    fn offer(&mut self, s: Scored) {
        if self.heap.len() < self.k {
            self.heap.push(s);
        } else if self.heap.peek().is_some_and(|worst| s < *worst) {
            self.heap.pop();
            self.heap.push(s);
        }
    }

    /// Best first.
    fn into_sorted(self) -> Vec<Scored> {
        self.heap.into_sorted_vec()
    }
}

/// A query as a space searches it: the unit vector, and its int8 code in int8 mode.
pub(crate) struct QueryVec {
    pub(crate) unit: Vec<f32>,
    code: Vec<i8>,
    scale: f32,
}

impl QueryVec {
    pub(crate) fn new(unit: Vec<f32>) -> QueryVec {
        let mut code = Vec::new();
        let scale = quantize_i8(&unit, &mut code);
        QueryVec { unit, code, scale }
    }
}

struct F32Query<'a> {
    q: &'a [f32],
    v: &'a RowBlocks<f32>,
}

impl QueryDistance for F32Query<'_> {
    #[inline]
    fn distance(&self, id: u32) -> f32 {
        1.0 - dot(self.q, self.v.get(id as usize))
    }
    #[inline]
    fn prefetch(&self, id: u32) {
        self.v.prefetch(id as usize);
    }
    fn prefetch_ahead(&self) -> usize {
        prefetch_ahead(self.q.len() * 4)
    }
}

struct Int8Query<'a> {
    code: &'a [i8],
    scale: f32,
    codes: &'a RowBlocks<i8>,
    scales: &'a [f32],
}

impl QueryDistance for Int8Query<'_> {
    #[inline]
    fn distance(&self, id: u32) -> f32 {
        let s = self.scale * self.scales.get(id as usize).copied().unwrap_or(0.0);
        1.0 - s * dot_i8(self.code, self.codes.get(id as usize)) as f32
    }
    #[inline]
    fn prefetch(&self, id: u32) {
        self.codes.prefetch(id as usize);
    }
    fn prefetch_ahead(&self) -> usize {
        prefetch_ahead(self.code.len())
    }
}

/// Whether row `id` passes the filter: live, and the filter's conditions.
struct RowTest<'a> {
    space: &'a SpaceTable,
    assets: &'a AssetTable,
    filter: &'a Filter,
    /// The filter's asset ids as asset indexes (empty: any asset).
    assets_allowed: HashSet<u32>,
    kind_mask: u8,
    check_kinds: bool,
    check_rest: bool,
    /// The last (asset, metadata slot) tested and its answer: an asset's rows share their
    /// metadata and sit side by side, so a scan evaluates the filter about once per asset
    /// instead of once per row (at 500k rows a space the evaluations cost more than the
    /// dot products of the rows that pass).
    last: Cell<Option<(u32, u16, bool)>>,
}

impl<'a> RowTest<'a> {
    fn new(space: &'a SpaceTable, assets: &'a AssetTable, filter: &'a Filter) -> RowTest<'a> {
        let kind_mask = if filter.kinds.is_empty() {
            0b111
        } else {
            filter.kinds.iter().fold(0, |m, k| m | kind_bit(*k))
        };
        RowTest {
            space,
            assets,
            filter,
            assets_allowed: filter
                .asset_ids
                .iter()
                .filter_map(|a| assets.index_of(a))
                .collect(),
            kind_mask,
            check_kinds: !space.kind_counts.all_admitted_by(&filter.kinds),
            check_rest: !filter.is_empty_except_kinds(),
            last: Cell::new(None),
        }
    }

    /// Whether the filter can exclude a live row at all.
    fn filters(&self) -> bool {
        self.check_kinds || self.check_rest
    }

    #[inline]
    fn accepts(&self, id: usize) -> bool {
        if !self.space.is_live(id) {
            return false;
        }
        if self.check_kinds
            && self
                .space
                .kinds
                .get(id)
                .is_none_or(|k| k & self.kind_mask == 0)
        {
            return false;
        }
        if self.check_rest {
            let Some(row) = self.space.rows.get(id) else {
                return false;
            };
            if !self.assets_allowed.is_empty() && !self.assets_allowed.contains(&row.asset) {
                return false;
            }
            if let Some((asset, slot, answer)) = self.last.get()
                && asset == row.asset
                && slot == row.meta
            {
                return answer;
            }
            let answer = self
                .assets
                .meta_of(row.asset, row.meta)
                .is_some_and(|meta| self.filter.matches_meta(meta));
            self.last.set(Some((row.asset, row.meta, answer)));
            return answer;
        }
        true
    }
}

/// Per-thread search buffers, pooled per index.
#[derive(Debug, Default)]
pub(crate) struct ScratchPool(Mutex<Vec<SearchScratch>>);

impl ScratchPool {
    fn take(&self) -> SearchScratch {
        self.0.lock().pop().unwrap_or_default()
    }
    fn give(&self, s: SearchScratch) {
        let mut pool = self.0.lock();
        if pool.len() < 64 {
            pool.push(s);
        }
    }
}

impl SpaceTable {
    /// The `k` best live rows matching `filter` for `query`, best first, scores exact cosines.
    ///
    /// Plan: a filter naming assets is answered exactly from the per-asset ids; so is a space
    /// (or the estimated matching part of it) small enough to scan (`exact_scan_bytes`), a
    /// filter estimated to match less than `exact_filter_selectivity` of the space, and a
    /// space without a graph (`FlatIndex`). Otherwise the graph is walked with the tombstone
    /// and filter checks inside the walk, the rows not yet linked are scanned exactly beside
    /// it, and an exact scan completes the answer if both found fewer than `k`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn search(
        &self,
        assets: &AssetTable,
        query: &QueryVec,
        k: usize,
        ef: usize,
        filter: &Filter,
        plan: &Plan,
        scratch: &ScratchPool,
        trace: &mut SearchTrace,
    ) -> Result<Vec<Scored>> {
        if self.live_count == 0 || k == 0 {
            return Ok(Vec::new());
        }
        let test = RowTest::new(self, assets, filter);
        let filtered = test.filters();
        if filtered && !filter.asset_ids.is_empty() {
            trace.exact = true;
            let mut ids: Vec<u32> = filter
                .asset_ids
                .iter()
                .collect::<HashSet<_>>()
                .into_iter()
                .filter_map(|a| assets.index_of(a))
                .filter_map(|a| self.by_asset.get(a))
                .flat_map(|l| l.as_slice().iter().copied())
                .collect();
            ids.sort_unstable();
            return self.exact_over(query, k, ids.into_iter(), &test);
        }
        let space_bytes = self.live_count as f64 * (self.dim * 4) as f64;
        let selectivity = if filtered && space_bytes > plan.exact_scan_bytes as f64 {
            self.estimate_selectivity(&test)
        } else {
            1.0
        };
        // A filtered walk costs about 1 / selectivity, a scan selectivity x rows: the
        // selectivity where they break even falls as 1 / sqrt(rows).
        let scan_below = plan
            .exact_filter_selectivity
            .min((FILTER_BREAK_EVEN_ROWS / self.live_count as f64).sqrt());
        let graph = match &self.graph {
            Some(g)
                if !((plan.exact_scan_bytes > 0
                    && selectivity * space_bytes <= plan.exact_scan_bytes as f64)
                    || (filtered && selectivity < scan_below)) =>
            {
                g
            }
            _ => {
                trace.exact = true;
                return self.exact_all(query, k, &test, plan);
            }
        };
        let linked = self.linked();
        let int8 = matches!(self.vectors, VectorData::Int8(_));
        // Int8 mode re-ranks every candidate the walk keeps: `ef` is the pool in both modes
        // (`plan.rerank` sizes the pool of an exact scan over the codes, which has no `ef`).
        let ef = ef.max(k);
        trace.graph_rounds += 1;
        trace.final_ef = ef;
        let mut s = scratch.take();
        let accept = |id: u32| (id as usize) < linked && test.accepts(id as usize);
        let walked = match &self.vectors {
            VectorData::F32(v) => graph.search(&mut s, ef, &F32Query { q: &query.unit, v }, accept),
            VectorData::Int8(d) => graph.search(
                &mut s,
                ef,
                &Int8Query {
                    code: &query.code,
                    scale: query.scale,
                    codes: &d.codes,
                    scales: &d.scales,
                },
                accept,
            ),
        };
        trace.distances += s.distances;
        scratch.give(s);
        let mut top = TopK::new(k);
        if int8 {
            trace.reranked += walked.len();
            for n in &walked {
                let v = self.vector(n.id as usize)?;
                top.offer(Scored(cosine_of_unit(&query.unit, &v), n.id));
            }
        } else {
            for n in &walked {
                top.offer(Scored((1.0 - n.distance).clamp(-1.0, 1.0), n.id));
            }
        }
        // Rows not linked yet (the walk never accepts them): scanned exactly; their f32
        // vectors are in memory in both modes.
        trace.pending += self.len() - linked;
        for id in linked..self.len() {
            if !test.accepts(id) {
                continue;
            }
            if let Some(v) = self.memory_vectors(id) {
                top.offer(Scored(cosine_of_unit(&query.unit, v), id as u32));
            }
        }
        let found = top.into_sorted();
        let want = if filtered { k } else { k.min(self.live_count) };
        if found.len() < want {
            trace.exact = true;
            return self.exact_all(query, k, &test, plan);
        }
        Ok(found)
    }

    /// Estimated share of live rows passing `test`: exact for small spaces, else from short
    /// runs at hashed positions (a stride would alias with periodic metadata).
    fn estimate_selectivity(&self, test: &RowTest<'_>) -> f64 {
        let n = self.len();
        let (mut seen, mut matching) = (0usize, 0usize);
        let mut count = |id: usize| {
            if self.is_live(id) {
                seen += 1;
                if test.accepts(id) {
                    matching += 1;
                }
            }
        };
        if n <= SELECTIVITY_SAMPLE {
            (0..n).for_each(&mut count);
        } else {
            for i in 0..(SELECTIVITY_SAMPLE / SAMPLE_RUN) as u64 {
                let start =
                    (crate::index::tables::splitmix64(i) % (n - SAMPLE_RUN) as u64) as usize;
                (start..start + SAMPLE_RUN).for_each(&mut count);
            }
        }
        if seen == 0 {
            1.0
        } else {
            matching as f64 / seen as f64
        }
    }

    /// Top `k` over every live row passing `test`: one sequential pass (int8 mode: over the
    /// codes, then the best `k * rerank` re-ranked with their f32 vectors).
    fn exact_all(
        &self,
        query: &QueryVec,
        k: usize,
        test: &RowTest<'_>,
        plan: &Plan,
    ) -> Result<Vec<Scored>> {
        match &self.vectors {
            VectorData::F32(v) => {
                let mut top = TopK::new(k);
                for (first, chunk) in v.chunks() {
                    for (i, row) in chunk.chunks_exact(self.dim).enumerate() {
                        let id = first + i;
                        if test.accepts(id) {
                            top.offer(Scored(cosine_of_unit(&query.unit, row), id as u32));
                        }
                    }
                }
                Ok(top.into_sorted())
            }
            VectorData::Int8(d) => {
                let mut coarse = TopK::new(k.saturating_mul(plan.rerank.max(1)).max(k));
                for (first, chunk) in d.codes.chunks() {
                    for (i, code) in chunk.chunks_exact(self.dim).enumerate() {
                        let id = first + i;
                        if test.accepts(id) {
                            let s = query.scale * d.scales.get(id).copied().unwrap_or(0.0);
                            coarse.offer(Scored(s * dot_i8(&query.code, code) as f32, id as u32));
                        }
                    }
                }
                let candidates = coarse.into_sorted();
                self.exact_over(query, k, candidates.into_iter().map(|s| s.1), test)
            }
        }
    }

    /// Top `k` among the rows `ids` passing `test`, scored with their f32 vectors.
    fn exact_over(
        &self,
        query: &QueryVec,
        k: usize,
        ids: impl Iterator<Item = u32>,
        test: &RowTest<'_>,
    ) -> Result<Vec<Scored>> {
        let mut top = TopK::new(k);
        for id in ids {
            if test.accepts(id as usize) {
                let v = self.vector(id as usize)?;
                top.offer(Scored(cosine_of_unit(&query.unit, &v), id));
            }
        }
        Ok(top.into_sorted())
    }
}
