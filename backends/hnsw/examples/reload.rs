//! Measures snapshot write and reload times of a large index (default 100k x 512).
//!
//! ```text
//! cargo run --release -p crossmodal-hnsw --example reload [-- N DIM]
//! ```
//!
//! Builds N clustered vectors (500 clusters, sigma 2, L2-normalised), flushes a snapshot with
//! the graph files, reopens it (graph loaded), then rewrites the snapshot without graph files
//! and reopens it again (graph rebuilt from the stored vectors with `parallel_insert`).
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::time::Instant;

use crossmodal_core::{
    AssetId, EmbeddingSpace, IndexSpec, MediaFormat, MediaKind, RecordMeta, VectorQuery,
    VectorRecord,
};
use crossmodal_hnsw::{HnswConfig, HnswIndex};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn gaussian(rng: &mut StdRng) -> f32 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .unwrap_or(0.0)
        / 1024.0
}

fn dir_mb(dir: &std::path::Path) -> f64 {
    let mut total = 0u64;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            for f in std::fs::read_dir(&p).into_iter().flatten().flatten() {
                total += f.metadata().map(|m| m.len()).unwrap_or(0);
            }
        } else {
            total += e.metadata().map(|m| m.len()).unwrap_or(0);
        }
    }
    total as f64 / 1e6
}

fn main() -> crossmodal_core::Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(100_000);
    let dim = args.get(1).copied().unwrap_or(512);
    let mut rng = StdRng::seed_from_u64(7);
    let centres: Vec<Vec<f32>> = (0..500)
        .map(|_| (0..dim).map(|_| gaussian(&mut rng)).collect())
        .collect();
    let point = |rng: &mut StdRng| -> Vec<f32> {
        let c = &centres[rng.random_range(0..centres.len())];
        crossmodal_core::normalized(
            &c.iter()
                .map(|x| x + 2.0 * gaussian(rng))
                .collect::<Vec<_>>(),
        )
    };
    let records: Vec<VectorRecord> = (0..n)
        .map(|i| VectorRecord {
            asset_id: AssetId::from_content(format!("reload-{i}").as_bytes()),
            space: EmbeddingSpace::Visual,
            seq: 0,
            segment: None,
            vector: point(&mut rng),
            meta: RecordMeta {
                kind: MediaKind::Image,
                format: MediaFormat::Jpeg,
                tags: vec![format!("t{}", i % 10)],
                created_at_ms: i as i64,
            },
        })
        .collect();
    let queries: Vec<VectorQuery> = (0..200)
        .map(|_| VectorQuery::new(EmbeddingSpace::Visual, point(&mut rng), 10))
        .collect();
    let tmp = tempfile::tempdir().map_err(crossmodal_core::Error::from)?;
    let dir = tmp.path().join("index");
    let spec = IndexSpec::new("reload-model", dim);
    let raw_mb = (n * dim * 4) as f64 / 1e6;
    println!("{n} x {dim}: raw vectors {raw_mb:.0} MB, M=16 ef_construction=200");

    let rss0 = rss_mb();
    let index = HnswIndex::open(&dir, spec.clone(), HnswConfig::default())?;
    let t = Instant::now();
    index.upsert_sync(records.clone())?;
    let build = t.elapsed().as_secs_f64();
    let rss_built = rss_mb();
    println!(
        "build: {build:.1} s ({:.0} vectors/s); RSS +{:.0} MB ({:.2}x raw; records held by the example excluded: {:.0} MB); stats estimate {:.0} MB",
        n as f64 / build,
        rss_built - rss0,
        (rss_built - rss0) / raw_mb,
        raw_mb,
        index.stats_sync().memory_bytes as f64 / 1e6
    );
    let before: Vec<_> = queries
        .iter()
        .map(|q| index.search_sync(q))
        .collect::<Result<_, _>>()?;
    let t = Instant::now();
    index.flush_sync()?;
    println!(
        "flush with graph files: {:.2} s, {:.0} MB on disk",
        t.elapsed().as_secs_f64(),
        dir_mb(&dir)
    );
    drop(index);

    let t = Instant::now();
    let loaded = HnswIndex::open(&dir, spec.clone(), HnswConfig::default())?;
    println!(
        "reopen, graph loaded: {:.2} s ({:?}); identical results: {}",
        t.elapsed().as_secs_f64(),
        loaded.open_report().graphs_loaded,
        queries
            .iter()
            .zip(&before)
            .all(|(q, b)| loaded.search_sync(q).map(|h| &h == b).unwrap_or(false))
    );
    drop(loaded);

    // Rewrite the snapshot without graph files (mark it dirty with a no-op change).
    let no_graph = HnswConfig::default().persist_graph(false);
    let index = HnswIndex::open(&dir, spec.clone(), no_graph.clone())?;
    index.upsert_sync(vec![records[0].clone()])?;
    index.compact()?; // drop the replacement's tombstone so both snapshots hold the same graph size
    let t = Instant::now();
    index.flush_sync()?;
    println!(
        "flush without graph files: {:.2} s, {:.0} MB on disk",
        t.elapsed().as_secs_f64(),
        dir_mb(&dir)
    );
    drop(index);
    let t = Instant::now();
    let rebuilt = HnswIndex::open(&dir, spec, no_graph)?;
    let rebuild = t.elapsed().as_secs_f64();
    let same = queries
        .iter()
        .zip(&before)
        .filter(|(q, b)| {
            let got: std::collections::HashSet<_> = rebuilt
                .search_sync(q)
                .map(|h| h.into_iter().map(|h| h.asset_id).collect())
                .unwrap_or_default();
            b.iter().filter(|h| got.contains(&h.asset_id)).count() >= 9
        })
        .count();
    println!(
        "reopen, graph rebuilt: {rebuild:.1} s ({:?}); queries with >= 9 of 10 hits unchanged: {same}/200",
        rebuilt.open_report().graphs_rebuilt
    );
    Ok(())
}
