//! One embedding space: its graph, the metadata of every graph id, tombstones, and search.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use hnsw_rs::hnsw::{Hnsw, Neighbour, Point};
use serde::{Deserialize, Serialize};

use crossmodal::vector::cosine_of_unit;
use crossmodal::{AssetId, EmbeddingSpace, Error, Filter, Hit, RecordMeta, Result, Segment};

use crate::config::HnswConfig;
use crate::distance::UnitCosine;

/// hnsw_rs's own bound on layers (`NB_LAYER_MAX`).
pub(crate) const MAX_LAYERS: usize = 16;

/// Rows sampled to estimate a filter's selectivity.
const SELECTIVITY_SAMPLE: usize = 512;

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
        expected.max(config.max_elements).max(1),
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
    rows: Vec<Row>,
    vector_of: impl Fn(usize) -> &'v [f32],
) -> Result<SpaceState> {
    let graph = new_graph(config, rows.len());
    let mut points = Vec::with_capacity(rows.len());
    let mut start = 0;
    while start < rows.len() {
        let end = (start + INSERT_CHUNK).min(rows.len());
        let batch: Vec<(Vec<f32>, usize)> =
            (start..end).map(|i| (vector_of(i).to_vec(), i)).collect();
        points.extend(insert_batch(&graph, &batch)?);
        start = end;
    }
    let by_key = rows
        .iter()
        .enumerate()
        .map(|(id, r)| ((r.asset_id.clone(), r.seq), id))
        .collect();
    let live = rows.len();
    Ok(SpaceState {
        graph: Arc::new(graph),
        rows: rows.into_iter().map(Some).collect(),
        points,
        by_key,
        live,
    })
}

/// A scored graph id for top-k selection, ordered so the heap's top is the worst kept.
#[derive(Debug, Clone, Copy)]
struct Scored(f32, usize);

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
    /// Graph searches run (more than one when `ef` was widened).
    pub graph_rounds: u32,
    /// The `ef` of the last graph search (0 if none ran).
    pub final_ef: usize,
    /// Whether an exact scan of the matching vectors produced the hits.
    pub exact: bool,
}

/// One space: a graph plus, per graph id, its row (`None` once deleted or replaced: a
/// tombstone) and its node.
pub(crate) struct SpaceState {
    pub graph: Arc<Graph>,
    /// Indexed by graph id.
    pub rows: Vec<Option<Row>>,
    /// Indexed by graph id, same length as `rows`.
    pub points: Vec<PointRef>,
    /// Live rows by (asset, seq).
    pub by_key: BTreeMap<(AssetId, u32), usize>,
    /// Number of `Some` rows.
    pub live: usize,
}

impl SpaceState {
    pub fn empty(config: &HnswConfig) -> Self {
        SpaceState {
            graph: Arc::new(new_graph(config, 0)),
            rows: Vec::new(),
            points: Vec::new(),
            by_key: BTreeMap::new(),
            live: 0,
        }
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
                true
            }
            None => false,
        }
    }

    /// Appends freshly inserted nodes and their rows (ids continue `rows`), tombstoning the rows
    /// they replace.
    pub fn commit(&mut self, rows: Vec<Row>, points: Vec<PointRef>) {
        for (row, point) in rows.into_iter().zip(points) {
            let id = self.rows.len();
            let key = (row.asset_id.clone(), row.seq);
            if let Some(old) = self.by_key.get(&key).copied() {
                self.kill(old);
            }
            self.by_key.insert(key, id);
            self.rows.push(Some(row));
            self.points.push(point);
            self.live += 1;
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

    /// Estimated share of live rows matching `filter` (exact for small spaces).
    fn estimate_selectivity(&self, filter: &Filter) -> f64 {
        let step = (self.rows.len() / SELECTIVITY_SAMPLE).max(1);
        let (mut seen, mut matching) = (0usize, 0usize);
        for row in self.rows.iter().step_by(step).flatten() {
            seen += 1;
            if filter.matches(&row.asset_id, &row.meta) {
                matching += 1;
            }
        }
        if seen == 0 {
            1.0
        } else {
            matching as f64 / seen as f64
        }
    }

    /// Exact top-k over the live rows among `ids` that match `filter`.
    fn exact_top_k(
        &self,
        q: &[f32],
        k: usize,
        filter: &Filter,
        ids: impl Iterator<Item = usize>,
    ) -> Vec<Scored> {
        let mut heap: BinaryHeap<Scored> = BinaryHeap::with_capacity(k + 1);
        for id in ids {
            let (Some(Some(row)), Some(point)) = (self.rows.get(id), self.points.get(id)) else {
                continue;
            };
            if !filter.matches(&row.asset_id, &row.meta) {
                continue;
            }
            let s = Scored(cosine_of_unit(q, point.get_v()), id);
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
    /// Plan: a filter naming assets is answered exactly from the key map; a filter estimated to
    /// match less than `exact_selectivity` of the space is answered by an exact scan; otherwise
    /// the graph is searched with the filter (and the tombstones) inside hnsw_rs's `FilterT`,
    /// results are re-checked (hnsw_rs issue 27), `ef` is doubled until `k` valid hits are found
    /// or the graph walk runs out of candidates, and an exact scan completes the answer if the
    /// walk still found fewer than `k`.
    #[allow(clippy::too_many_arguments)]
    pub fn search(
        &self,
        space: EmbeddingSpace,
        q: &[f32],
        k: usize,
        ef: usize,
        filter: &Filter,
        exact_selectivity: f64,
        trace: &mut SearchTrace,
    ) -> Result<Vec<Hit>> {
        if self.live == 0 || k == 0 {
            return Ok(Vec::new());
        }
        let filtered = !filter.is_empty();
        let exact = |trace: &mut SearchTrace, ids: &mut dyn Iterator<Item = usize>| {
            trace.exact = true;
            self.exact_top_k(q, k, filter, ids)
                .into_iter()
                .filter_map(|Scored(s, id)| self.hit(space, id, s))
                .collect::<Vec<Hit>>()
        };
        if filtered && !filter.asset_ids.is_empty() {
            let mut ids = filter
                .asset_ids
                .iter()
                .collect::<HashSet<_>>()
                .into_iter()
                .flat_map(|a| self.ids_of_asset(a));
            return Ok(exact(trace, &mut ids));
        }
        if filtered
            && exact_selectivity > 0.0
            && self.estimate_selectivity(filter) < exact_selectivity
        {
            return Ok(exact(trace, &mut (0..self.rows.len())));
        }

        let graph_n = self.graph.get_nb_point();
        // Without filter, tombstones or nodes inserted but not yet committed, the plain search
        // (with early termination) is used; otherwise the predicate runs inside the walk.
        let plain = !filtered && self.live == self.rows.len() && graph_n == self.rows.len();
        let rows = &self.rows;
        let predicate = |id: &usize| -> bool {
            match rows.get(*id) {
                Some(Some(row)) => !filtered || filter.matches(&row.asset_id, &row.meta),
                _ => false,
            }
        };
        let want = if filtered { k } else { k.min(self.live) };
        let mut ef = ef.max(k).min(graph_n.max(1));
        let mut valid: Vec<Scored>;
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
            valid = raw
                .iter()
                .filter(|n| predicate(&n.d_id) && seen.insert(n.d_id))
                .map(|n| Scored(UnitCosine::similarity(n.distance), n.d_id))
                .collect();
            if valid.len() >= want || exhausted || ef >= graph_n {
                break;
            }
            ef = ef.saturating_mul(2).min(graph_n);
        }
        if valid.len() < want {
            return Ok(exact(trace, &mut (0..self.rows.len())));
        }
        valid.sort();
        valid.truncate(k);
        Ok(valid
            .into_iter()
            .filter_map(|Scored(s, id)| self.hit(space, id, s))
            .collect())
    }

    /// Approximate bytes held: vectors, nodes, links and rows.
    pub fn memory_bytes(&self, dim: usize) -> u64 {
        let nodes = self.points.len();
        if nodes == 0 {
            return 0;
        }
        // Average links per node, from a sample of nodes.
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
        let row = std::mem::size_of::<Option<Row>>() + 64 + 8;
        let key = std::mem::size_of::<(AssetId, u32, usize)>() + 64 + 16;
        let per_row_live = key;
        (nodes as f64 * (node as f64 + links_per_node * link + row as f64)
            + self.live as f64 * per_row_live as f64) as u64
    }
}
