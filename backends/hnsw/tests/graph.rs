//! The graph against brute force: recall of inserts on one and two threads, filters inside the
//! walk, searches while inserting, the file format (round trip and damage), and hnsw_rs.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::HashSet;

use crossmodal_hnsw::{Graph, GraphConfig, GraphError, QueryDistance, SearchScratch, Vectors};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Unit vectors around `clusters` centres (Gaussian noise), row-major.
struct Data {
    dim: usize,
    rows: Vec<f32>,
}

impl Data {
    fn clustered(n: usize, dim: usize, clusters: usize, sigma: f32, seed: u64) -> Data {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut gauss = move || {
            let u1: f64 = 1.0 - rng.random::<f64>();
            let u2: f64 = rng.random::<f64>();
            ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
        };
        let centres: Vec<Vec<f32>> = (0..clusters)
            .map(|_| (0..dim).map(|_| gauss()).collect())
            .collect();
        let mut rows = Vec::with_capacity(n * dim);
        for i in 0..n {
            let c = &centres[(i * 7919) % clusters];
            let v: Vec<f32> = c.iter().map(|x| x + sigma * gauss()).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            rows.extend(v.iter().map(|x| x / norm));
        }
        Data { dim, rows }
    }

    fn row(&self, i: u32) -> &[f32] {
        &self.rows[i as usize * self.dim..(i as usize + 1) * self.dim]
    }

    fn len(&self) -> usize {
        self.rows.len() / self.dim
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

impl Vectors for Data {
    fn distance(&self, a: u32, b: u32) -> f32 {
        1.0 - dot(self.row(a), self.row(b))
    }
}

struct Query<'a>(&'a Data, &'a [f32]);

impl QueryDistance for Query<'_> {
    fn distance(&self, id: u32) -> f32 {
        1.0 - dot(self.0.row(id), self.1)
    }
}

fn exact(data: &Data, q: &[f32], k: usize, accept: impl Fn(u32) -> bool) -> Vec<u32> {
    let mut all: Vec<(f32, u32)> = (0..data.len() as u32)
        .filter(|i| accept(*i))
        .map(|i| (1.0 - dot(data.row(i), q), i))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    all.into_iter().take(k).map(|(_, i)| i).collect()
}

fn recall(
    graph: &Graph,
    data: &Data,
    queries: &Data,
    ef: usize,
    accept: impl Fn(u32) -> bool + Copy,
) -> f64 {
    let mut scratch = SearchScratch::new();
    let (mut hit, mut total) = (0usize, 0usize);
    for qi in 0..queries.len() as u32 {
        let q = queries.row(qi);
        let truth: HashSet<u32> = exact(data, q, 10, accept).into_iter().collect();
        let found = graph.search(&mut scratch, ef, &Query(data, q), accept);
        assert!(found.windows(2).all(|w| w[0].distance <= w[1].distance));
        assert!(
            found.iter().all(|n| accept(n.id)),
            "a rejected node was returned"
        );
        hit += found
            .iter()
            .take(10)
            .filter(|n| truth.contains(&n.id))
            .count();
        total += truth.len();
    }
    hit as f64 / total as f64
}

fn build(data: &Data, config: GraphConfig, threads: usize) -> Graph {
    let mut graph = Graph::new(config).unwrap();
    graph.push_nodes(data.len()).unwrap();
    graph.insert_range(0, data.len() as u32, threads, data);
    graph
}

#[test]
fn inserted_graphs_reach_high_recall_on_one_and_two_threads() {
    let data = Data::clustered(4000, 32, 40, 0.9, 1);
    let queries = Data::clustered(100, 32, 40, 0.9, 2);
    for threads in [1, 2] {
        let graph = build(&data, GraphConfig::default(), threads);
        let r = recall(&graph, &data, &queries, 64, |_| true);
        assert!(r >= 0.97, "recall@10 {r} with {threads} threads");
        // Every node is reachable as its own nearest neighbour.
        let mut scratch = SearchScratch::new();
        let missed = (0..data.len() as u32)
            .step_by(37)
            .filter(|i| {
                graph.search(&mut scratch, 32, &Query(&data, data.row(*i)), |_| true)[0].id != *i
            })
            .count();
        assert_eq!(missed, 0, "{threads} threads");
        // Lists respect their capacity.
        assert!((0..data.len() as u32).all(|i| graph.neighbours(i, 0).len() <= 32));
    }
}

#[test]
fn filters_apply_inside_the_walk() {
    let data = Data::clustered(3000, 24, 30, 0.9, 3);
    let queries = Data::clustered(60, 24, 30, 0.9, 4);
    let graph = build(&data, GraphConfig::default(), 2);
    // A 10% filter: the walk widens until it holds ef accepted nodes.
    let r = recall(&graph, &data, &queries, 64, |id| id % 10 == 3);
    assert!(r >= 0.9, "recall@10 under a 10% filter: {r}");
    // A filter nothing passes returns nothing.
    let mut scratch = SearchScratch::new();
    assert!(
        graph
            .search(&mut scratch, 32, &Query(&data, queries.row(0)), |_| false)
            .is_empty()
    );
}

#[test]
fn searches_run_while_nodes_are_inserted() {
    let data = Data::clustered(3000, 16, 20, 0.8, 5);
    let mut graph = Graph::new(GraphConfig::default()).unwrap();
    graph.push_nodes(data.len()).unwrap();
    graph.insert_range(0, 1000, 1, &data);
    std::thread::scope(|s| {
        s.spawn(|| graph.insert_range(1000, 2000, 1, &data));
        let mut scratch = SearchScratch::new();
        for i in 0..300u32 {
            let found = graph.search(&mut scratch, 16, &Query(&data, data.row(i)), |id| id < 1000);
            assert_eq!(
                found[0].id, i,
                "an old node stays findable while others insert"
            );
        }
    });
    let queries = Data::clustered(50, 16, 20, 0.8, 6);
    assert!(recall(&graph, &data, &queries, 64, |_| true) >= 0.97);
}

#[test]
fn the_file_format_round_trips_and_refuses_damage() {
    let data = Data::clustered(1500, 16, 15, 0.8, 7);
    let config = GraphConfig::default().m(8);
    let graph = build(&data, config, 2);
    let mut bytes = Vec::new();
    graph.write(&mut bytes, graph.len()).unwrap();
    let loaded = Graph::read(&mut bytes.as_slice(), config, graph.len()).unwrap();
    assert_eq!(loaded.entry(), graph.entry());
    for id in 0..graph.len() as u32 {
        for level in 0..=graph.level(id) {
            assert_eq!(loaded.neighbours(id, level), graph.neighbours(id, level));
        }
    }
    // Wrong expectations and every kind of damage are typed errors, never panics.
    assert!(matches!(
        Graph::read(&mut bytes.as_slice(), config, graph.len() + 1),
        Err(GraphError::Corrupt(_))
    ));
    assert!(matches!(
        Graph::read(&mut bytes.as_slice(), config.m(9), graph.len()),
        Err(GraphError::Corrupt(_))
    ));
    for cut in [0, 7, 20, 40, bytes.len() / 2, bytes.len() - 1] {
        let r = Graph::read(&mut &bytes[..cut], config, graph.len());
        assert!(matches!(r, Err(GraphError::Corrupt(_))), "cut at {cut}");
    }
    let mut rng = StdRng::seed_from_u64(9);
    for _ in 0..200 {
        let mut damaged = bytes.clone();
        let i = rng.random_range(0..damaged.len());
        damaged[i] ^= 1 << rng.random_range(0..8);
        // Either detected, or a structurally valid graph (a flipped link id within range):
        // never a panic. (The storage engine's CRC catches the latter.)
        let _ = Graph::read(&mut damaged.as_slice(), config, graph.len());
    }
    // A prefix of the nodes: the lists never point past it.
    let mut prefix = Vec::new();
    graph.write(&mut prefix, 700).unwrap();
    let part = Graph::read(&mut prefix.as_slice(), config, 700).unwrap();
    assert!((0..700u32).all(|i| part.neighbours(i, 0).iter().all(|n| *n < 700)));
}

#[cfg(feature = "hnsw-rs")]
#[test]
fn hnsw_rs_builds_an_equivalent_graph() {
    let data = Data::clustered(3000, 32, 30, 0.9, 11);
    let queries = Data::clustered(60, 32, 30, 0.9, 12);
    fn distance(a: &[f32], b: &[f32]) -> f32 {
        (1.0 - dot(a, b)).max(0.0)
    }
    let graph = crossmodal_hnsw::build_with_hnsw_rs(
        GraphConfig::default(),
        data.len(),
        |i| data.row(i as u32),
        distance,
    )
    .unwrap();
    assert!(recall(&graph, &data, &queries, 64, |_| true) >= 0.95);
}
