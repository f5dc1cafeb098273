//! Graph construction, the crate's own insert against hnsw_rs's, on the same vectors (a program,
//! not a criterion bench): build time, recall@10 at a fixed `ef` and the process's RSS growth,
//! in alternating rounds; with `GRAPH_COUNT=1` also the own insert's node-to-node distance
//! evaluations per insert (that run's time is then not a build time).
//!
//! ```text
//! cargo bench -p crossmodal-benches --bench graph_build                 # 100k x 512, 3 rounds
//! GRAPH_N=20000 GRAPH_DIM=384 GRAPH_ROUNDS=1 cargo bench -p crossmodal-benches --bench graph_build
//! GRAPH_N=30000 GRAPH_COUNT=1 GRAPH_BUILDERS=own cargo bench -p crossmodal-benches --bench graph_build
//! ```
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crossmodal::hnsw::{Graph, GraphConfig, QueryDistance, SearchScratch, Vectors};
use crossmodal::vector::dot;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Rows {
    dim: usize,
    data: Vec<f32>,
    /// Node-to-node distances evaluated (what an insert costs, whatever the machine's load),
    /// counted only with `GRAPH_COUNT=1`: two threads adding to one counter slow the build
    /// about 3x, so a counted run's time is not a build time.
    evaluations: AtomicU64,
    count: bool,
}

impl Rows {
    fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
}

impl Vectors for Rows {
    fn distance(&self, a: u32, b: u32) -> f32 {
        if self.count {
            self.evaluations.fetch_add(1, Ordering::Relaxed);
        }
        1.0 - dot(self.row(a as usize), self.row(b as usize))
    }
    fn prefetch(&self, _id: u32) {}
}

struct Q<'a>(&'a Rows, &'a [f32]);
impl QueryDistance for Q<'_> {
    fn distance(&self, id: u32) -> f32 {
        1.0 - dot(self.0.row(id as usize), self.1)
    }
}

/// 500 Gaussian clusters (the same centres for every call), sigma 2, L2-normalised (the
/// ann_compare synthetic set's recipe); `seed` draws the points.
fn clustered(n: usize, dim: usize, seed: u64) -> Rows {
    fn stream(seed: u64) -> impl FnMut() -> f32 {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        move || {
            // Approximately standard normal: a sum of 4 uniforms, centred and scaled.
            (0..4)
                .map(|_| {
                    state ^= state >> 12;
                    state ^= state << 25;
                    state ^= state >> 27;
                    (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32
                })
                .sum::<f32>()
                * 1.732
                - 3.464
        }
    }
    let mut centre = stream(0xC3);
    let centres: Vec<f32> = (0..500 * dim).map(|_| centre()).collect();
    let mut noise = stream(seed);
    let mut data = Vec::with_capacity(n * dim);
    for i in 0..n {
        let pick = (mix(seed ^ (i as u64).wrapping_mul(0xA24B_AED4_963E_E407)) % 500) as usize;
        let c = &centres[pick * dim..][..dim];
        let v: Vec<f32> = c.iter().map(|x| x + 2.0 * noise()).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        data.extend(v.iter().map(|x| x / norm));
    }
    Rows {
        dim,
        data,
        evaluations: AtomicU64::new(0),
        count: false,
    }
}

/// SplitMix64.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
        * 1024
}

fn recall(graph: &Graph, rows: &Rows, queries: &Rows, ef: usize) -> f64 {
    let mut scratch = SearchScratch::new();
    let (mut hit, mut total) = (0, 0);
    for qi in 0..queries.data.len() / queries.dim {
        let q = queries.row(qi);
        let mut exact: Vec<(f32, u32)> = (0..rows.data.len() / rows.dim)
            .map(|i| (1.0 - dot(rows.row(i), q), i as u32))
            .collect();
        exact.sort_by(|a, b| a.0.total_cmp(&b.0));
        let truth: std::collections::HashSet<u32> = exact.iter().take(10).map(|e| e.1).collect();
        let found = graph.search(&mut scratch, ef, &Q(rows, q), |_| true);
        hit += found
            .iter()
            .take(10)
            .filter(|n| truth.contains(&n.id))
            .count();
        total += 10;
    }
    hit as f64 / total as f64
}

fn main() {
    let n = env_usize("GRAPH_N", 100_000);
    let dim = env_usize("GRAPH_DIM", 512);
    let rounds = env_usize("GRAPH_ROUNDS", 3);
    let threads = env_usize(
        "GRAPH_THREADS",
        std::thread::available_parallelism().map_or(1, |t| t.get()),
    );
    let mut rows = clustered(n, dim, 7);
    rows.count = env_usize("GRAPH_COUNT", 0) == 1;
    let queries = clustered(200, dim, 8);
    let config = GraphConfig::default().keep_pruned(env_usize("GRAPH_KEEP_PRUNED", 1) == 1);
    println!(
        "# graph build: {n} x {dim}, m {}, ef_construction {}, {threads} threads",
        config.m, config.ef_construction
    );
    for round in 1..=rounds {
        let builders: Vec<String> = std::env::var("GRAPH_BUILDERS")
            .unwrap_or_else(|_| "own,hnsw_rs".into())
            .split(',')
            .map(String::from)
            .collect();
        for builder in builders.iter().map(String::as_str) {
            let before = rss();
            rows.evaluations.store(0, Ordering::Relaxed);
            let started = Instant::now();
            let graph = match builder {
                "own" => {
                    let mut g = Graph::new(config).unwrap();
                    g.push_nodes(n).unwrap();
                    g.insert_range(0, n as u32, threads, &rows);
                    g
                }
                _ => crossmodal::hnsw::build_with_hnsw_rs(
                    config,
                    n,
                    |i| rows.row(i),
                    |a, b| (1.0 - dot(a, b)).max(0.0),
                )
                .unwrap(),
            };
            let secs = started.elapsed().as_secs_f64();
            let evaluations = match (rows.count, builder) {
                (true, "own") => format!(
                    "{:.0}",
                    rows.evaluations.load(Ordering::Relaxed) as f64 / n as f64
                ),
                _ => "not counted".into(),
            };
            let peak = rss().saturating_sub(before);
            let r = recall(&graph, &rows, &queries, 32);
            println!(
                "round {round} {builder:8} build {secs:7.2} s ({:6.0} vectors/s)  links {:5.1} MB  rss growth {:7.1} MB  recall@10 at ef 32: {r:.3}  distances/insert {evaluations}",
                n as f64 / secs,
                graph.memory_bytes() as f64 / 1e6,
                peak as f64 / 1e6
            );
        }
    }
}
