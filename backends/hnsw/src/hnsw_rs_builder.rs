//! Building a [`Graph`] with [hnsw_rs](https://crates.io/crates/hnsw_rs) (feature `hnsw-rs`).
//!
//! hnsw_rs's `parallel_insert` builds the graph; its links and levels are then copied into a
//! [`Graph`] and hnsw_rs's structures are dropped. This was the crate's builder before it had an
//! insert of its own; it stays for comparison (`benches/ann_compare` runs both). Measured at
//! 100k x 512, m 16, ef_construction 200 on 2 threads: hnsw_rs's insert is about 3.7x faiss's
//! build time and holds about 3x the raw vectors while it builds (a heap `Arc` per node and per
//! link, 16 per-layer `Vec`s per node), which is why [`Graph::insert`] is the default.

use anndists::dist::Distance;
use hnsw_rs::hnsw::Hnsw;

use crate::GraphError;
use crate::config::GraphConfig;
use crate::graph::{Graph, MAX_LEVEL};

/// A distance given as a function (hnsw_rs wants a type implementing anndists' `Distance`).
#[derive(Clone, Copy)]
struct FnDistance(fn(&[f32], &[f32]) -> f32);

impl Distance<f32> for FnDistance {
    fn eval(&self, va: &[f32], vb: &[f32]) -> f32 {
        // hnsw_rs asserts that distances are non-negative and finite.
        let d = (self.0)(va, vb);
        if d.is_finite() { d.max(0.0) } else { f32::MAX }
    }
}

/// Builds a graph over `n` vectors (`vector(i)` is node `i`'s) with hnsw_rs, using `distance`
/// (smaller is closer, never negative), on all the threads hnsw_rs's `parallel_insert` uses.
/// hnsw_rs draws its own levels, so the graph's levels differ from those [`Graph::push_nodes`]
/// would draw.
pub fn build_with_hnsw_rs<'v>(
    config: GraphConfig,
    n: usize,
    vector: impl Fn(usize) -> &'v [f32],
    distance: fn(&[f32], &[f32]) -> f32,
) -> Result<Graph, GraphError> {
    config.validate()?;
    let mut graph = Graph::new(config)?;
    if n == 0 {
        return Ok(graph);
    }
    let hnsw: Hnsw<f32, FnDistance> = Hnsw::new(
        config.m,
        n.max(1),
        usize::from(MAX_LEVEL) + 1,
        config.ef_construction,
        FnDistance(distance),
    );
    let data: Vec<(Vec<f32>, usize)> = (0..n).map(|i| (vector(i).to_vec(), i)).collect();
    let refs: Vec<(&Vec<f32>, usize)> = data.iter().map(|(v, i)| (v, *i)).collect();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hnsw.parallel_insert(&refs)))
        .map_err(|_| GraphError::Builder("hnsw_rs panicked while inserting".into()))?;
    drop(refs);
    drop(data);
    let mut levels = vec![0u8; n];
    let mut lists: Vec<Vec<Vec<u32>>> = vec![Vec::new(); n];
    let indexation = hnsw.get_point_indexation();
    for layer in 0..=usize::from(MAX_LEVEL) {
        for point in indexation.get_layer_iterator(layer) {
            let id = point.get_origin_id();
            let level = point.get_point_id().0.min(MAX_LEVEL);
            let layers: Vec<Vec<u32>> = point
                .get_neighborhood_id()
                .into_iter()
                .take(usize::from(level) + 1)
                .map(|l| l.into_iter().map(|nb| nb.d_id as u32).collect())
                .collect();
            if let (Some(slot), Some(list)) = (levels.get_mut(id), lists.get_mut(id)) {
                *slot = level;
                *list = layers;
            }
        }
    }
    drop(hnsw);
    graph.push_nodes_with_levels(&levels)?;
    let mut top: Option<(u32, u8)> = None;
    for (id, layers) in lists.iter().enumerate() {
        let id = id as u32;
        for (level, list) in layers.iter().enumerate() {
            graph.store_neighbours(id, level as u8, list);
        }
        let level = graph.level(id);
        if top.is_none_or(|(_, l)| level > l) {
            top = Some((id, level));
        }
    }
    if let Some((node, level)) = top {
        graph.set_entry(node, level);
    }
    Ok(graph)
}
