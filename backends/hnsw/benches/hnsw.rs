//! Insert throughput and query latency of `HnswIndex`, with `FlatIndex` (exact) as the peer in
//! the same run, on deterministic clustered data hard enough to matter (docs/benchmarks.md):
//! 500 Gaussian clusters with unit-variance centres and noise sigma 2, L2-normalised; queries
//! drawn the same way. Metadata: tag `t0`..`t9` (10% each) and `rare` on 1% of the vectors.
//!
//! ```text
//! cargo bench -p crossmodal-hnsw --bench hnsw                       # 10k vectors, 512 + 1024 dims
//! CROSSMODAL_BENCH_100K=1 cargo bench -p crossmodal-hnsw --bench hnsw   # also 100k (slow)
//! ```
//!
//! Criterion groups: `insert/2000xD` (a fresh index of 2,000 vectors per sample; the full-size
//! build is timed once and printed) and `search/NxD/<variant>/{unfiltered,tag-10pct,tag-1pct}`
//! where the variants are `hnsw` (default plan: exact scan for small candidate sets),
//! `hnsw-walk` (always the graph walk over the link copy), `hnsw_rs` (always hnsw_rs's own
//! `search_filter`) and `flat` (`FlatIndex`, exact).
//! Besides criterion's timings, the bench prints (to stderr) for every size and dimension:
//! recall@10 of the HNSW index against the exact one at a sweep of `ef` values, and the
//! HNSW/flat latency ratio measured by running both alternately over the same queries
//! (5 rounds; median and min-max), which is the figure to quote on a noisy machine.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::HashSet;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use crossmodal_core::{
    AssetId, EmbeddingSpace, Filter, FlatIndex, IndexSpec, MediaFormat, MediaKind, RecordMeta,
    VectorQuery, VectorRecord,
};
use crossmodal_hnsw::{GraphSearch, HnswConfig, HnswIndex, SearchOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const CLUSTERS: usize = 500;
const SIGMA: f32 = 2.0;
const QUERIES: usize = 200;
const K: usize = 10;
/// Vectors per criterion insert sample.
const INSERT_N: usize = 2_000;

fn gaussian(rng: &mut StdRng) -> f32 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

struct Dataset {
    spec: IndexSpec,
    records: Vec<VectorRecord>,
    queries: Vec<Vec<f32>>,
}

fn dataset(n: usize, dim: usize, seed: u64) -> Dataset {
    let mut rng = StdRng::seed_from_u64(seed);
    let centres: Vec<Vec<f32>> = (0..CLUSTERS)
        .map(|_| (0..dim).map(|_| gaussian(&mut rng)).collect())
        .collect();
    let point = |rng: &mut StdRng| -> Vec<f32> {
        let c = &centres[rng.random_range(0..CLUSTERS)];
        let v: Vec<f32> = c.iter().map(|x| x + SIGMA * gaussian(rng)).collect();
        crossmodal_core::normalized(&v)
    };
    let records = (0..n)
        .map(|i| {
            let mut tags = vec![format!("t{}", i % 10)];
            if i % 100 == 7 {
                tags.push("rare".to_string());
            }
            VectorRecord {
                asset_id: AssetId::from_content(format!("bench-{seed}-{i}").as_bytes()),
                space: EmbeddingSpace::Visual,
                seq: 0,
                segment: None,
                vector: point(&mut rng),
                meta: RecordMeta {
                    kind: MediaKind::Image,
                    format: MediaFormat::Jpeg,
                    tags,
                    created_at_ms: i as i64,
                },
            }
        })
        .collect();
    let queries = (0..QUERIES).map(|_| point(&mut rng)).collect();
    Dataset {
        spec: IndexSpec::new("bench-model", dim),
        records,
        queries,
    }
}

fn build_hnsw(d: &Dataset) -> HnswIndex {
    let index = HnswIndex::new(d.spec.clone(), HnswConfig::default()).expect("index");
    index.upsert_sync(d.records.clone()).expect("upsert");
    index
}

fn build_flat(d: &Dataset) -> FlatIndex {
    let index = FlatIndex::new(d.spec.clone());
    index.upsert_sync(d.records.clone()).expect("upsert");
    index
}

fn filters() -> Vec<(&'static str, Filter)> {
    vec![
        ("unfiltered", Filter::default()),
        ("tag-10pct", Filter::default().tag("t3")),
        ("tag-1pct", Filter::default().tag("rare")),
    ]
}

fn query(d: &Dataset, i: usize, filter: &Filter) -> VectorQuery {
    VectorQuery::new(
        EmbeddingSpace::Visual,
        d.queries[i % d.queries.len()].clone(),
        K,
    )
    .filter(filter.clone())
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn median_min_max(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

/// The HNSW variants measured: the default plan, a forced walk over the link copy, and a
/// forced walk with hnsw_rs's own search (`FilterT`).
fn variants() -> Vec<(&'static str, SearchOptions)> {
    vec![
        ("hnsw", SearchOptions::default()),
        ("hnsw-walk", SearchOptions::default().always_walk_graph()),
        (
            "hnsw_rs",
            SearchOptions::default()
                .always_walk_graph()
                .graph_search(GraphSearch::HnswRs),
        ),
    ]
}

/// Recall@10 per ef, and the alternating latency ratios, printed to stderr.
fn report(d: &Dataset, hnsw: &HnswIndex, flat: &FlatIndex, n: usize, dim: usize) {
    let config = hnsw.config();
    eprintln!(
        "\n== {n} x {dim}: M={} ef_construction={} ef_search={} (clusters {CLUSTERS}, sigma {SIGMA}, {} queries, k={K})",
        config.m,
        config.ef_construction,
        config.ef_search,
        d.queries.len()
    );
    for (name, filter) in filters() {
        let exact: Vec<HashSet<AssetId>> = (0..d.queries.len())
            .map(|i| {
                flat.search_sync(&query(d, i, &filter))
                    .expect("flat")
                    .into_iter()
                    .map(|h| h.asset_id)
                    .collect()
            })
            .collect();
        let recall = |options: &SearchOptions| -> (f64, usize) {
            let (mut found, mut total, mut exact_scans) = (0, 0, 0);
            for (i, want) in exact.iter().enumerate() {
                let (hits, trace) = hnsw
                    .search_with(&query(d, i, &filter), options)
                    .expect("search");
                found += hits.iter().filter(|h| want.contains(&h.asset_id)).count();
                total += want.len();
                exact_scans += usize::from(trace.exact);
            }
            (found as f64 / total.max(1) as f64, exact_scans)
        };
        let mut line = format!("  recall@10 {name:10} graph walk:");
        for ef in [10, 16, 24, 32, 48, 64, 96, 128, 256] {
            let (r, _) = recall(&SearchOptions::default().always_walk_graph().ef(ef));
            line += &format!(" ef{ef}={r:.3}");
        }
        eprintln!("{line}");
        let mut line = format!("  recall@10 {name:10} at ef={}:", config.ef_search);
        for (variant, options) in variants() {
            let (r, scans) = recall(&options);
            line += &format!(" {variant}={r:.3}");
            if scans > 0 {
                line += &format!(" (exact scans {scans}/{})", exact.len());
            }
        }
        eprintln!("{line}");
    }
    // Alternating rounds over the same queries: mean latency per query of each candidate, and
    // flat / candidate per round (median, min-max of 5 rounds).
    for (name, filter) in filters() {
        let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); variants().len()];
        let mut micros: Vec<Vec<f64>> = vec![Vec::new(); variants().len() + 1];
        for _ in 0..5 {
            let t = Instant::now();
            for i in 0..d.queries.len() {
                black_box(flat.search_sync(&query(d, i, &filter)).expect("flat"));
            }
            let f = t.elapsed().as_secs_f64() / d.queries.len() as f64;
            micros[0].push(f * 1e6);
            for (v, (_, options)) in variants().iter().enumerate() {
                let t = Instant::now();
                for i in 0..d.queries.len() {
                    black_box(
                        hnsw.search_with(&query(d, i, &filter), options)
                            .expect("search"),
                    );
                }
                let h = t.elapsed().as_secs_f64() / d.queries.len() as f64;
                micros[v + 1].push(h * 1e6);
                ratios[v].push(f / h);
            }
        }
        let (f, _, _) = median_min_max(micros[0].clone());
        let mut line = format!("  latency {name:10} flat {f:8.1} us |");
        for (v, (variant, _)) in variants().iter().enumerate() {
            let (us, _, _) = median_min_max(micros[v + 1].clone());
            let (r, lo, hi) = median_min_max(ratios[v].clone());
            line += &format!(" {variant} {us:8.1} us = {r:5.2}x flat ({lo:.2}-{hi:.2}) |");
        }
        eprintln!("{line}");
    }
    let stats = hnsw.stats_sync();
    let raw = (n * dim * 4) as f64;
    eprintln!(
        "  memory estimate {:.1} MB = {:.2}x raw vector bytes ({:.1} MB)",
        stats.memory_bytes as f64 / 1e6,
        stats.memory_bytes as f64 / raw,
        raw / 1e6
    );
}

fn benches(c: &mut Criterion) {
    let mut sizes = vec![10_000usize];
    if std::env::var_os("CROSSMODAL_BENCH_100K").is_some() {
        sizes.push(100_000);
    }
    for &n in &sizes {
        for dim in [512usize, 1024] {
            let d = dataset(n, dim, 42);

            // Insert throughput: criterion builds a fresh index of the first INSERT_N vectors
            // per sample (a 10k build takes ~10 s here, too long for 10 samples in a short
            // run); the full-size build is timed once below.
            if n == sizes[0] {
                let sub = Dataset {
                    spec: d.spec.clone(),
                    records: d.records[..INSERT_N.min(n)].to_vec(),
                    queries: Vec::new(),
                };
                let mut group = c.benchmark_group(format!("insert/{}x{dim}", sub.records.len()));
                group.sample_size(10);
                group.measurement_time(Duration::from_secs(5));
                group.warm_up_time(Duration::from_millis(100));
                group.throughput(Throughput::Elements(sub.records.len() as u64));
                group.bench_function("hnsw", |b| b.iter(|| black_box(build_hnsw(&sub))));
                group.bench_function("flat", |b| b.iter(|| black_box(build_flat(&sub))));
                group.finish();
            }
            let rss0 = rss_kib();
            let t = Instant::now();
            let hnsw = build_hnsw(&d);
            let hnsw_build = t.elapsed();
            let rss1 = rss_kib();
            let t = Instant::now();
            let flat = build_flat(&d);
            let flat_build = t.elapsed();
            eprintln!(
                "\n== {n} x {dim}: build hnsw {:.2} s ({:.0} vectors/s, RSS +{:.1} MB), flat {:.3} s",
                hnsw_build.as_secs_f64(),
                n as f64 / hnsw_build.as_secs_f64(),
                rss1.saturating_sub(rss0) as f64 / 1024.0,
                flat_build.as_secs_f64()
            );

            let mut group = c.benchmark_group(format!("search/{n}x{dim}"));
            group.sample_size(10);
            group.measurement_time(Duration::from_secs(2));
            group.warm_up_time(Duration::from_millis(300));
            for (name, filter) in filters() {
                for (variant, options) in variants() {
                    let mut i = 0usize;
                    group.bench_function(BenchmarkId::new(variant, name), |b| {
                        b.iter(|| {
                            i += 1;
                            black_box(
                                hnsw.search_with(&query(&d, i, &filter), &options)
                                    .expect("search"),
                            )
                        })
                    });
                }
                let mut i = 0usize;
                group.bench_function(BenchmarkId::new("flat", name), |b| {
                    b.iter(|| {
                        i += 1;
                        black_box(flat.search_sync(&query(&d, i, &filter)).expect("flat"))
                    })
                });
            }
            group.finish();
            report(&d, &hnsw, &flat, n, dim);
        }
    }
}

criterion_group!(hnsw_benches, benches);
criterion_main!(hnsw_benches);
