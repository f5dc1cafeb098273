//! One embedding space: its graph, the metadata of every graph id, tombstones, and search.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use hnsw_rs::hnsw::{Hnsw, Neighbour, Point};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crossmodal_core::vector::cosine_of_unit;
use crossmodal_core::{
    AssetId, EmbeddingSpace, Error, Filter, Hit, KindCounts, RecordMeta, Result, Segment,
};

use crate::config::HnswConfig;
use crate::distance::UnitCosine;
use crate::links::{Links, NodeLinks, Visited};

/// hnsw_rs's own bound on layers (`NB_LAYER_MAX`).
pub(crate) const MAX_LAYERS: usize = 16;

/// Rows sampled to estimate a filter's selectivity, in runs of `SAMPLE_RUN` consecutive rows.
const SELECTIVITY_SAMPLE: usize = 256;
const SAMPLE_RUN: usize = 8;

/// The graph type: unit f32 vectors, cosine distance, owning its data (no mmap).
pub(crate) type Graph = Hnsw<'static, f32, UnitCosine>;

/// A graph node, held so vectors can be read by graph id without a graph search.
pub(crate) type PointRef = Arc<Point<'static, f32>>;

/// Identity and metadata of one stored vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Row {
    pub asset_id: AssetId,
    pub seq: u32,
    pub segment: Option<Segment>,
    pub meta: RecordMeta,
}

/// Runs hnsw_rs code, turning a panic (an upstream assertion) into a `Backend` error.
pub(crate) fn guarded<T>(what: &str, f: impl FnOnce() -> T) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|panic| {
        let why = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown panic".to_string());
        Error::backend(format!("hnsw_rs failed during {what}: {why}"))
    })
}

/// A new, empty graph for `config`.
pub(crate) fn new_graph(config: &HnswConfig, expected: usize) -> Graph {
    Hnsw::new(
        config.m,
        // A capacity hint only: capped so a large hint cannot trigger a huge allocation.
        expected.max(config.max_elements).clamp(1, 1 << 24),
        MAX_LAYERS,
        config.ef_construction,
        UnitCosine,
    )
}

/// Inserts `(vector, id)` pairs with `parallel_insert` and returns the new nodes in input order.
///
/// The caller holds the index's writer lock, so no other insert runs on this graph meanwhile;
/// searches may. Ids must be fresh (not yet in the graph).
pub(crate) fn insert_batch(graph: &Graph, batch: &[(Vec<f32>, usize)]) -> Result<Vec<PointRef>> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let layers = graph.get_max_level().min(MAX_LAYERS);
    let indexation = graph.get_point_indexation();
    let before: Vec<usize> = (0..layers)
        .map(|l| indexation.get_layer_nb_point(l))
        .collect();
    let refs: Vec<(&Vec<f32>, usize)> = batch.iter().map(|(v, id)| (v, *id)).collect();
    guarded("insert", || {
        if refs.len() == 1 {
            graph.insert((refs[0].0.as_slice(), refs[0].1));
        } else {
            graph.parallel_insert(&refs);
        }
    })?;
    // A batch's ids are consecutive.
    let first = batch.iter().map(|(_, id)| *id).min().unwrap_or(0);
    let mut found: Vec<Option<PointRef>> = vec![None; batch.len()];
    for (l, skip) in before.iter().enumerate() {
        for p in indexation.get_layer_iterator(l).skip(*skip) {
            if let Some(slot) = p
                .get_origin_id()
                .checked_sub(first)
                .and_then(|i| found.get_mut(i))
            {
                *slot = Some(p);
            }
        }
    }
    let mut out = Vec::with_capacity(batch.len());
    for (i, p) in found.into_iter().enumerate() {
        match p {
            Some(p) => out.push(p),
            None => {
                return Err(Error::backend(format!(
                    "hnsw_rs did not store graph id {} after insert",
                    first + i
                )));
            }
        }
    }
    Ok(out)
}

/// Vectors inserted per `parallel_insert` call (bounds the extra copies held while inserting).
pub(crate) const INSERT_CHUNK: usize = 8192;

/// A space holding `rows`, whose vectors (unit length) `vector_of(i)` gives, in a new graph with
/// ids `0..rows.len()`.
pub(crate) fn build_space<'v>(
    config: &HnswConfig,
    dim: usize,
    rows: Vec<Row>,
    vector_of: impl Fn(usize) -> &'v [f32],
) -> Result<SpaceState> {
    let mut state = SpaceState::with_graph(config, dim, new_graph(config, rows.len()));
    let mut rows = rows.into_iter().enumerate().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<(usize, Row)> = rows.by_ref().take(INSERT_CHUNK).collect();
        let batch: Vec<Vec<f32>> = chunk.iter().map(|(i, _)| vector_of(*i).to_vec()).collect();
        let pending = state.insert(batch)?;
        state.commit(chunk.into_iter().map(|(_, r)| r).collect(), pending);
    }
    Ok(state)
}

/// SplitMix64: a well-mixed hash of `x` (sampling positions for selectivity estimates).
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A scored graph id for top-k selection, ordered so the heap's top is the worst kept.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scored(pub f32, pub usize);

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
        // Higher score is "smaller", ties broken by lower id first.
        other.0.total_cmp(&self.0).then(self.1.cmp(&other.1))
    }
}

/// How a search was answered (for tests and benches).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SearchTrace {
    /// Graph searches run (more than one when `ef` was widened on the hnsw_rs path).
    pub graph_rounds: u32,
    /// The `ef` of the last graph search (0 if none ran).
    pub final_ef: usize,
    /// Whether an exact scan produced the hits (planned, or completing a short graph walk).
    pub exact: bool,
    /// Distance evaluations of the graph walk over the link copy (`GraphSearch::Links`; a
    /// load-independent measure of a query's cost).
    pub distances: u64,
}

/// How a space is searched. See [`HnswConfig::graph_search`](crate::HnswConfig::graph_search).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GraphSearch {
    /// Walk this crate's compact copy of the graph's links (fast; the default).
    #[default]
    Links,
    /// Call hnsw_rs's `search_filter` with the filter as its `FilterT` (slower; kept as a
    /// reference and for comparison).
    HnswRs,
}

/// Unit vectors by graph id, in fixed-size blocks (appending never moves existing vectors, so
/// growing the store never copies the whole index while searches wait).
#[derive(Debug, Default)]
pub(crate) struct VectorStore {
    dim: usize,
    blocks: Vec<Vec<f32>>,
    len: usize,
}

const BLOCK: usize = 1024;

impl VectorStore {
    pub fn new(dim: usize) -> Self {
        VectorStore {
            dim: dim.max(1),
            blocks: Vec::new(),
            len: 0,
        }
    }

    pub fn push(&mut self, v: &[f32]) {
        if self.len.is_multiple_of(BLOCK) {
            self.blocks.push(Vec::with_capacity(BLOCK * self.dim));
        }
        if let Some(block) = self.blocks.last_mut() {
            block.extend_from_slice(&v[..self.dim.min(v.len())]);
            block.resize(block.len() + self.dim.saturating_sub(v.len()), 0.0);
        }
        self.len += 1;
    }

    #[inline]
    pub fn get(&self, id: usize) -> &[f32] {
        let (b, i) = (id / BLOCK, id % BLOCK);
        self.blocks
            .get(b)
            .and_then(|block| block.get(i * self.dim..(i + 1) * self.dim))
            .unwrap_or(&[])
    }

    pub fn memory_bytes(&self) -> usize {
        self.blocks.iter().map(|b| b.capacity() * 4).sum()
    }

    /// Asks the CPU to start loading vector `id` into the cache (a hint: no effect on results,
    /// nothing happens for an unknown id or on other architectures).
    #[inline]
    pub fn prefetch(&self, id: usize) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            let v = self.get(id);
            let start = v.as_ptr().cast::<i8>();
            for line in 0..(v.len() * 4).div_ceil(64) {
                // SAFETY: prefetch never faults, and the address lies inside `v`.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(line * 64)) };
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = id;
    }
}

/// What a graph insert produced, to be published by [`SpaceState::commit`].
pub(crate) struct Pending {
    points: Vec<PointRef>,
    vectors: Vec<Vec<f32>>,
    links: Vec<NodeLinks>,
    full: bool,
}

/// One space: an hnsw_rs graph, a compact copy of its links, the vectors, and per graph id its
/// row (`None` once deleted or replaced: a tombstone).
pub(crate) struct SpaceState {
    pub graph: Arc<Graph>,
    /// Indexed by graph id.
    pub rows: Vec<Option<Row>>,
    /// hnsw_rs nodes by graph id (to read their links after inserts).
    pub points: Vec<PointRef>,
    /// Unit vectors by graph id (tombstones included: the walk still passes through them).
    pub vectors: VectorStore,
    links: Links,
    /// Live rows by (asset, seq).
    pub by_key: BTreeMap<(AssetId, u32), usize>,
    /// Number of `Some` rows.
    pub live: usize,
    /// Live rows per media kind: a kind filter naming every kind present filters nothing, and
    /// the search then skips the per-node checks.
    live_kinds: KindCounts,
    /// Nodes inserted since the links were last copied in full.
    stale: usize,
    visited: Mutex<Vec<Visited>>,
}

impl SpaceState {
    pub fn empty(config: &HnswConfig, dim: usize) -> Self {
        SpaceState::with_graph(config, dim, new_graph(config, 0))
    }

    fn with_graph(_config: &HnswConfig, dim: usize, graph: Graph) -> Self {
        let m = usize::from(graph.get_max_nb_connection()).max(1);
        SpaceState {
            graph: Arc::new(graph),
            rows: Vec::new(),
            points: Vec::new(),
            vectors: VectorStore::new(dim),
            links: Links::new(m),
            by_key: BTreeMap::new(),
            live: 0,
            live_kinds: KindCounts::default(),
            stale: 0,
            visited: Mutex::new(Vec::new()),
        }
    }

    /// A space around a loaded graph whose nodes are `points` (by id, all of them), with
    /// `rows` (by id, `None` for tombstones).
    pub fn loaded(
        config: &HnswConfig,
        dim: usize,
        graph: Graph,
        points: Vec<PointRef>,
        rows: Vec<Option<Row>>,
    ) -> Self {
        let mut state = SpaceState::with_graph(config, dim, graph);
        for p in &points {
            state.vectors.push(p.get_v());
        }
        state.links.grow(points.len());
        for p in &points {
            state.links.set(NodeLinks::read(p));
        }
        state.by_key = rows
            .iter()
            .enumerate()
            .filter_map(|(id, r)| r.as_ref().map(|r| ((r.asset_id.clone(), r.seq), id)))
            .collect();
        state.live = state.by_key.len();
        for row in rows.iter().flatten() {
            state.live_kinds.add(row.meta.kind);
        }
        state.rows = rows;
        state.points = points;
        state
    }

    /// Whether every live row matches `filter` without looking at the rows: no criteria, or
    /// only a kind list naming every kind present (what a searcher's route sends when its
    /// target kinds cover the space).
    fn matches_every_row(&self, filter: &Filter) -> bool {
        filter.is_empty_except_kinds() && self.live_kinds.all_admitted_by(&filter.kinds)
    }

    /// Graph ids whose rows are deleted or replaced but still in the graph.
    pub fn tombstones(&self) -> usize {
        self.rows.len() - self.live
    }

    /// Share of graph nodes that are tombstones.
    pub fn tombstone_ratio(&self) -> f64 {
        if self.rows.is_empty() {
            0.0
        } else {
            self.tombstones() as f64 / self.rows.len() as f64
        }
    }

    /// Graph ids of `asset`'s live rows.
    pub fn ids_of_asset(&self, asset: &AssetId) -> Vec<usize> {
        self.by_key
            .range((asset.clone(), 0)..=(asset.clone(), u32::MAX))
            .map(|(_, id)| *id)
            .collect()
    }

    /// Tombstones a live row; returns whether it was live.
    pub fn kill(&mut self, id: usize) -> bool {
        match self.rows.get_mut(id).and_then(Option::take) {
            Some(row) => {
                self.by_key.remove(&(row.asset_id, row.seq));
                self.live -= 1;
                self.live_kinds.remove(row.meta.kind);
                true
            }
            None => false,
        }
    }

    /// Inserts unit vectors into the graph under the next graph ids and reads back the links
    /// that changed. Needs only `&self`: the caller holds the index's writer lock (so nothing
    /// else changes this space) and a read lock (so searches continue); the new ids stay
    /// invisible to searches until [`commit`](Self::commit).
    pub fn insert(&self, vectors: Vec<Vec<f32>>) -> Result<Pending> {
        let first = self.rows.len();
        let after = first + vectors.len();
        if after > u32::MAX as usize {
            return Err(Error::invalid_input(format!(
                "a space holds at most {} vectors (tombstones included)",
                u32::MAX
            )));
        }
        let batch: Vec<(Vec<f32>, usize)> = vectors
            .into_iter()
            .enumerate()
            .map(|(i, v)| (v, first + i))
            .collect();
        let points = insert_batch(&self.graph, &batch)?;
        // Copy the links of every node when the batch is large relative to the graph (or often
        // enough to catch lists changed by reverse updates that the incremental copy misses);
        // otherwise those of the new nodes and of their neighbours, which their insertion
        // changed.
        let full = first == 0 || (self.stale + batch.len()) * 10 >= after;
        let links = guarded("link copy", || {
            if full {
                let layers = self.graph.get_max_level().min(MAX_LAYERS);
                let indexation = self.graph.get_point_indexation();
                (0..layers)
                    .flat_map(|l| indexation.get_layer_iterator(l))
                    .map(|p| NodeLinks::read(&p))
                    .collect::<Vec<_>>()
            } else {
                let new: Vec<NodeLinks> = points.iter().map(NodeLinks::read).collect();
                let mut touched: Vec<u32> = new
                    .iter()
                    .flat_map(|n| n.layers.iter().flatten().copied())
                    .filter(|id| (*id as usize) < first)
                    .collect();
                touched.sort_unstable();
                touched.dedup();
                let mut all = new;
                all.extend(
                    touched
                        .into_iter()
                        .filter_map(|id| self.points.get(id as usize))
                        .map(NodeLinks::read),
                );
                all
            }
        })?;
        Ok(Pending {
            points,
            vectors: batch.into_iter().map(|(v, _)| v).collect(),
            links,
            full,
        })
    }

    /// Publishes inserted nodes with their rows (one per node, in order), tombstoning the rows
    /// they replace.
    pub fn commit(&mut self, rows: Vec<Row>, pending: Pending) {
        let Pending {
            points,
            vectors,
            links,
            full,
        } = pending;
        let added = points.len();
        for ((row, point), vector) in rows.into_iter().zip(points).zip(vectors) {
            let id = self.rows.len();
            let key = (row.asset_id.clone(), row.seq);
            if let Some(old) = self.by_key.get(&key).copied() {
                self.kill(old);
            }
            self.by_key.insert(key, id);
            self.live_kinds.add(row.meta.kind);
            self.rows.push(Some(row));
            self.points.push(point);
            self.vectors.push(&vector);
            self.live += 1;
        }
        if full {
            self.links = Links::new(usize::from(self.graph.get_max_nb_connection()).max(1));
            self.stale = 0;
        } else {
            self.stale += added;
        }
        self.links.grow(self.rows.len());
        for node in links {
            self.links.set(node);
        }
    }

    fn hit(&self, space: EmbeddingSpace, id: usize, score: f32) -> Option<Hit> {
        let row = self.rows.get(id)?.as_ref()?;
        Some(Hit {
            asset_id: row.asset_id.clone(),
            space,
            seq: row.seq,
            segment: row.segment,
            score,
            meta: row.meta.clone(),
        })
    }

    /// Estimated share of live rows matching `filter`: exact for small spaces, else from rows
    /// picked from a fixed hash sequence (a stride would alias with periodic metadata).
    fn estimate_selectivity(&self, filter: &Filter) -> f64 {
        let n = self.rows.len();
        let (mut seen, mut matching) = (0usize, 0usize);
        let mut count = |row: &Row| {
            seen += 1;
            if filter.matches(&row.asset_id, &row.meta) {
                matching += 1;
            }
        };
        if n <= SELECTIVITY_SAMPLE {
            self.rows.iter().flatten().for_each(&mut count);
        } else {
            // Short runs from hashed starting points: nearly as unbiased as single random rows,
            // at a fraction of the cache misses.
            for i in 0..(SELECTIVITY_SAMPLE / SAMPLE_RUN) as u64 {
                let start = (splitmix64(i) % (n - SAMPLE_RUN) as u64) as usize;
                for row in self.rows[start..start + SAMPLE_RUN].iter().flatten() {
                    count(row);
                }
            }
        }
        if seen == 0 {
            1.0
        } else {
            matching as f64 / seen as f64
        }
    }

    /// Exact top-k over all live rows matching `filter`: one sequential pass over the vector
    /// blocks and the rows (the same work as `FlatIndex`).
    fn exact_top_k_all(&self, q: &[f32], k: usize, filter: &Filter) -> Vec<Scored> {
        let unfiltered = filter.is_empty();
        let dim = q.len().max(1);
        let mut heap: BinaryHeap<Scored> = BinaryHeap::with_capacity(k + 1);
        for (b, block) in self.vectors.blocks.iter().enumerate() {
            let base = b * BLOCK;
            let rows = self.rows.get(base..).unwrap_or(&[]);
            for ((v, row), id) in block.chunks_exact(dim).zip(rows).zip(base..) {
                let Some(row) = row else {
                    continue;
                };
                if !unfiltered && !filter.matches(&row.asset_id, &row.meta) {
                    continue;
                }
                let s = Scored(cosine_of_unit(q, v), id);
                if heap.len() < k {
                    heap.push(s);
                } else if heap.peek().is_some_and(|worst| s < *worst) {
                    heap.pop();
                    heap.push(s);
                }
            }
        }
        heap.into_sorted_vec()
    }

    /// Exact top-k over the live rows among `ids` that match `filter`.
    fn exact_top_k(
        &self,
        q: &[f32],
        k: usize,
        filter: &Filter,
        ids: impl Iterator<Item = usize>,
    ) -> Vec<Scored> {
        let unfiltered = filter.is_empty();
        let mut heap: BinaryHeap<Scored> = BinaryHeap::with_capacity(k + 1);
        for id in ids {
            let Some(Some(row)) = self.rows.get(id) else {
                continue;
            };
            if !unfiltered && !filter.matches(&row.asset_id, &row.meta) {
                continue;
            }
            let s = Scored(cosine_of_unit(q, self.vectors.get(id)), id);
            if heap.len() < k {
                heap.push(s);
            } else if heap.peek().is_some_and(|worst| s < *worst) {
                heap.pop();
                heap.push(s);
            }
        }
        heap.into_sorted_vec()
    }

    /// The `k` best live rows matching `filter` for the unit query `q`.
    ///
    /// Plan: a filter naming assets is answered exactly from the key map; so is a space (or
    /// the estimated matching part of it) small enough to scan (`plan.exact_scan_bytes`) or a
    /// filter estimated to match less than `plan.exact_filter_selectivity` of the space.
    /// Otherwise the graph is walked with the tombstone and filter checks inside the walk
    /// (the walk keeps going until `ef` accepted nodes are found or candidates run out), and an
    /// exact scan completes the answer if the walk found fewer than `k`.
    #[allow(clippy::too_many_arguments)]
    pub fn search(
        &self,
        space: EmbeddingSpace,
        q: &[f32],
        k: usize,
        ef: usize,
        filter: &Filter,
        plan: &Plan,
        trace: &mut SearchTrace,
    ) -> Result<Vec<Hit>> {
        if self.live == 0 || k == 0 {
            return Ok(Vec::new());
        }
        let filtered = !self.matches_every_row(filter);
        let to_hits = |scored: Vec<Scored>| -> Vec<Hit> {
            scored
                .into_iter()
                .take(k)
                .filter_map(|Scored(s, id)| self.hit(space, id, s))
                .collect()
        };
        if filtered && !filter.asset_ids.is_empty() {
            trace.exact = true;
            let ids = filter
                .asset_ids
                .iter()
                .collect::<HashSet<_>>()
                .into_iter()
                .flat_map(|a| self.ids_of_asset(a));
            return Ok(to_hits(self.exact_top_k(q, k, filter, ids)));
        }
        let space_bytes = self.live as f64 * (q.len() * 4) as f64;
        let selectivity = if filtered && space_bytes > plan.exact_scan_bytes as f64 {
            self.estimate_selectivity(filter)
        } else {
            1.0
        };
        let scan_bytes = selectivity * space_bytes;
        if (plan.exact_scan_bytes > 0 && scan_bytes <= plan.exact_scan_bytes as f64)
            || (filtered && selectivity < plan.exact_filter_selectivity)
        {
            trace.exact = true;
            return Ok(to_hits(self.exact_top_k_all(q, k, filter)));
        }
        let ef = ef.max(k);
        let want = if filtered { k } else { k.min(self.live) };
        let found = match plan.graph_search {
            GraphSearch::Links => self.walk_links(q, ef, filtered.then_some(filter), trace),
            GraphSearch::HnswRs => {
                self.walk_hnsw_rs(q, ef, want, filtered.then_some(filter), trace)?
            }
        };
        if found.len() < want {
            trace.exact = true;
            return Ok(to_hits(self.exact_top_k_all(q, k, filter)));
        }
        Ok(to_hits(found))
    }

    /// `filter`: `None` when every live row matches (see `matches_every_row`).
    fn walk_links(
        &self,
        q: &[f32],
        ef: usize,
        filter: Option<&Filter>,
        trace: &mut SearchTrace,
    ) -> Vec<Scored> {
        trace.graph_rounds += 1;
        trace.final_ef = ef;
        let mut visited = self.visited.lock().pop().unwrap_or_default();
        let distances = std::cell::Cell::new(0u64);
        let all_live = filter.is_none() && self.live == self.rows.len();
        let found = self.links.search(
            ef,
            &mut visited,
            |id| {
                distances.set(distances.get() + 1);
                1.0 - crossmodal_core::vector::dot(q, self.vectors.get(id as usize))
            },
            |id| self.vectors.prefetch(id as usize),
            prefetch_ahead(q.len()),
            // Without a filter or tombstones every node is a hit: no need to touch its row
            // (a cache miss per accepted node once the rows outgrow the cache).
            |id| match self.rows.get(id as usize) {
                Some(_) if all_live => true,
                Some(Some(row)) => filter.is_none_or(|f| f.matches(&row.asset_id, &row.meta)),
                _ => false,
            },
        );
        self.visited.lock().push(visited);
        trace.distances += distances.get();
        found
    }

    /// The hnsw_rs path: `search_filter` with the predicate as `FilterT`, results re-checked
    /// (upstream issue 27), `ef` doubled until `want` valid hits or the walk runs dry.
    fn walk_hnsw_rs(
        &self,
        q: &[f32],
        ef: usize,
        want: usize,
        filter: Option<&Filter>,
        trace: &mut SearchTrace,
    ) -> Result<Vec<Scored>> {
        let filtered = filter.is_some();
        let graph_n = self.graph.get_nb_point();
        let plain = !filtered && self.live == self.rows.len() && graph_n == self.rows.len();
        let rows = &self.rows;
        let predicate = |id: &usize| -> bool {
            match rows.get(*id) {
                Some(Some(row)) => filter.is_none_or(|f| f.matches(&row.asset_id, &row.meta)),
                _ => false,
            }
        };
        let mut ef = ef.min(graph_n.max(1));
        loop {
            trace.graph_rounds += 1;
            trace.final_ef = ef;
            let raw: Vec<Neighbour> = guarded("search", || {
                if plain {
                    self.graph.search(q, ef, ef)
                } else {
                    self.graph.search_filter(q, ef, ef, Some(&predicate))
                }
            })?;
            let exhausted = raw.len() < ef;
            let mut seen = HashSet::with_capacity(raw.len());
            let mut valid: Vec<Scored> = raw
                .iter()
                .filter(|n| predicate(&n.d_id) && seen.insert(n.d_id))
                .map(|n| Scored(UnitCosine::similarity(n.distance), n.d_id))
                .collect();
            if valid.len() >= want || exhausted || ef >= graph_n {
                valid.sort();
                return Ok(valid);
            }
            ef = ef.saturating_mul(2).min(graph_n);
        }
    }

    /// Approximate bytes held: vectors (ours and hnsw_rs's copy), nodes, links, rows.
    pub fn memory_bytes(&self, dim: usize) -> u64 {
        let nodes = self.points.len();
        if nodes == 0 {
            return 0;
        }
        // Average hnsw_rs links per node, from a sample of nodes.
        let step = (nodes / 64).max(1);
        let (mut sampled, mut links) = (0usize, 0usize);
        for p in self.points.iter().step_by(step) {
            sampled += 1;
            links += p.get_neighborhood_id().iter().map(Vec::len).sum::<usize>();
        }
        let links_per_node = links as f64 / sampled.max(1) as f64;
        // hnsw_rs node: vector + Arc<Point> (enum, ids, Arc<RwLock<Vec<Vec<_>>>> with 16 layer
        // vectors); a link: an Arc<PointWithOrder> (~32 B) plus its pointer in the layer list.
        let node = dim * 4 + 16 + 64 + 16 + 8 + 24 + 16 * 24 + 8;
        let link = 8.0 + 32.0;
        let row = std::mem::size_of::<Option<Row>>() + 64 + 8 + 8;
        let key = std::mem::size_of::<(AssetId, u32, usize)>() + 64 + 16;
        let hnsw_rs = nodes as f64 * (node as f64 + links_per_node * link);
        (hnsw_rs
            + (nodes * row) as f64
            + (self.live * key) as f64
            + self.vectors.memory_bytes() as f64
            + self.links.memory_bytes() as f64) as u64
    }
}

/// How many neighbours ahead the walk prefetches vectors: about 128 cache lines in flight
/// (2048 / dim vectors of `dim` f32), measured best at 384, 512 and 1024 dims (5, 4, 2).
fn prefetch_ahead(dim: usize) -> usize {
    (2048 / dim.max(1)).clamp(1, 8)
}

/// Search planning knobs (from [`HnswConfig`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub exact_scan_bytes: usize,
    pub exact_filter_selectivity: f64,
    pub graph_search: GraphSearch,
}

impl Plan {
    pub fn of(config: &HnswConfig) -> Plan {
        Plan {
            exact_scan_bytes: config.exact_scan_bytes,
            exact_filter_selectivity: config.exact_filter_selectivity,
            graph_search: config.graph_search,
        }
    }
}
