//! The scale benchmark of the embedded default (a program, not a criterion bench; see
//! `benches/README.md`): a synthetic library of video assets x 5 segments x 3 spaces at 512
//! dims ingested through `Engine` with a fast synthetic provider, at two sizes in one run (the
//! founding library, 100,000 assets = 1.5M vectors, and 10x smaller), reporting per size:
//!
//! - ingest throughput (assets/s, vectors/s) until every vector is linked;
//! - the cost of one more upload (ingest + durable) as the library passes 10k, 100k, 500k and
//!   1.5M vectors;
//! - resident memory (process RSS growth over the raw f32 bytes) and bytes on disk per vector;
//! - open time of the data directory (drop, reopen);
//! - p50 / p99 of a three-route text query (visual, audio, transcription) and of a filtered one,
//!   sequential, one thread, the provider's text embedding excluded (it is instant here);
//! - recall@10 of the index against an exact scan for 100 queries;
//! - search latency while a compaction rebuilds a space, against before.
//!
//! ```text
//! cargo bench -p crossmodal-benches --bench scale                       # 10k and 100k assets, f32
//! SCALE_ASSETS=20000 SCALE_QUANT=int8 cargo bench -p crossmodal-benches --bench scale
//! SCALE_KEEP=/big/disk cargo bench ...    # keep the larger library (library-<assets>-<quant>)
//! SCALE_OPEN=/big/disk/library-100000-None cargo bench ...   # measure a kept library again
//! ```
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use crossmodal::{
    AssetId, Embedding, EmbeddingProvider, EmbeddingSpace, Engine, Filter, HnswConfig, HnswIndex,
    IndexSpec, IngestConfig, IngestItem, LocalOptions, MediaInput, MediaKind, ModelInfo,
    Quantization, Query, Result, RoutingRule, RoutingRules, SearchMode, Segment, VectorIndex,
    VectorQuery,
};

const DIM: usize = 512;
const SEGMENTS: usize = 5;
const CLUSTERS: u64 = 4000;
const SIGMA: f32 = 1.5;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// xorshift64*: fast deterministic numbers.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Approximately standard normal (sum of 4 uniforms, scaled).
    fn gauss(&mut self) -> f32 {
        let s: f32 = (0..4)
            .map(|_| (self.next() >> 40) as f32 / (1u64 << 24) as f32)
            .sum();
        (s - 2.0) * 1.732
    }
}

/// A point of cluster `c` (seeded by `seed`), not normalised.
fn point(c: u64, seed: u64) -> Vec<f32> {
    let mut centre = Rng::new(c + 1);
    let mut noise = Rng::new(seed ^ 0xABCD_EF01);
    (0..DIM)
        .map(|_| centre.gauss() + SIGMA * noise.gauss())
        .collect()
}

fn seed_of(bytes: &[u8]) -> u64 {
    seed_of_id(&AssetId::from_content(bytes))
}

/// The seed of content by its id (the provider is not given the bytes).
fn seed_of_id(id: &AssetId) -> u64 {
    u64::from_str_radix(&id.as_str()[..16], 16).unwrap()
}

/// Vectors a real model would give in shape only: clustered points, one per segment per space.
struct SyntheticProvider(ModelInfo);

#[async_trait]
impl EmbeddingProvider for SyntheticProvider {
    fn model(&self) -> &ModelInfo {
        &self.0
    }
    async fn embed_text(&self, text: &str) -> Result<Vec<f32>> {
        let s = seed_of(text.as_bytes());
        Ok(point(s % CLUSTERS, s))
    }
    async fn embed_media(&self, media: &MediaInput) -> Result<Vec<Embedding>> {
        Ok(asset_embeddings(seed_of_id(&media.asset_id)))
    }
}

fn asset_embeddings(seed: u64) -> Vec<Embedding> {
    let mut out = Vec::with_capacity(SEGMENTS * 3);
    for (k, space) in [
        EmbeddingSpace::Visual,
        EmbeddingSpace::Audio,
        EmbeddingSpace::Transcription,
    ]
    .into_iter()
    .enumerate()
    {
        for s in 0..SEGMENTS as u64 {
            let sub = seed.wrapping_add(s * 7919 + k as u64 * 104_729);
            out.push(Embedding {
                space,
                segment: Some(Segment::new(s as f64 * 6.0, s as f64 * 6.0 + 6.0).unwrap()),
                vector: point((seed + s) % CLUSTERS, sub),
            });
        }
    }
    out
}

/// A valid MP4 (the fixture) with a `free` box making its bytes unique.
fn video(base: &[u8], i: u64) -> Vec<u8> {
    let mut v = base.to_vec();
    v.extend_from_slice(&16u32.to_be_bytes());
    v.extend_from_slice(b"free");
    v.extend_from_slice(&i.to_le_bytes());
    v
}

fn rss() -> u64 {
    status_bytes("VmRSS:")
}

/// A `kB` field of `/proc/self/status` (`VmRSS:`, `RssAnon:`, `RssFile:`), bytes; 0 if absent.
fn status_bytes(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(field)).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
            })
        })
        .unwrap_or(0)
        * 1024
}

/// Anonymous and file-backed resident bytes now, as `"anonymous A MB, file-backed F MB"`
/// beside `raw` (file-backed pages are mapped vector files the kernel can drop; anonymous
/// memory is what the process holds).
fn rss_split(raw: f64) -> String {
    let (anon, file) = (status_bytes("RssAnon:"), status_bytes("RssFile:"));
    format!(
        "anonymous {:.0} MB = {:.2}x raw, file-backed {:.0} MB (whole process)",
        anon as f64 / 1e6,
        anon as f64 / raw,
        file as f64 / 1e6
    )
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|it| {
            it.filter_map(|e| e.ok())
                .map(|e| {
                    let m = e.metadata().unwrap();
                    if m.is_dir() {
                        dir_bytes(&e.path())
                    } else {
                        m.len()
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1e3
}

fn provider() -> Arc<dyn EmbeddingProvider> {
    Arc::new(SyntheticProvider(ModelInfo {
        id: "scale-bench-synthetic (not a model)".into(),
        ..ModelInfo::marengo_3_0()
    }))
}

/// Text queries search all three spaces (a three-route query).
fn rules() -> RoutingRules {
    use crossmodal::{QueryKind, Route};
    RoutingRules::marengo_3_0().with_rule(RoutingRule {
        query: QueryKind::Text,
        mode: SearchMode::Auto,
        routes: vec![
            Route::same_space(
                EmbeddingSpace::Visual,
                &[MediaKind::Image, MediaKind::Video],
            ),
            Route::same_space(EmbeddingSpace::Audio, &[MediaKind::Audio, MediaKind::Video]),
            Route::same_space(
                EmbeddingSpace::Transcription,
                &[MediaKind::Video, MediaKind::Audio],
            ),
        ],
    })
}

fn options(index: Arc<HnswIndex>) -> LocalOptions {
    LocalOptions::default()
        .index(index)
        .ingest(
            IngestConfig::default()
                .concurrency(8)
                .flush_each(true)
                .checkpoint_interval(Duration::from_secs(10)),
        )
        .rules(rules())
}

/// Which page of a search is timed.
#[derive(Clone, Copy, PartialEq)]
enum Timed {
    /// The first page (k 10: 40 candidates a route).
    First,
    /// The second page, by the first page's cursor (the five-page window: 200 a route).
    Second,
    /// A first page filtered by a tag (1 asset in 7) and a creation-time range.
    Filtered,
}

/// p50 and p99 of `n` three-route text queries (k 10).
async fn query_latencies(engine: &Engine, n: usize, timed: Timed) -> (f64, f64) {
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let mut q = Query::text(format!("query {i}")).k(10);
        if timed == Timed::Filtered {
            q = q.filter(
                Filter::default()
                    .created_between(None, Some(i64::MAX))
                    .tag("batch-1"),
            );
        }
        if timed == Timed::Second {
            let first = engine.search(&q).await.unwrap();
            q = q.cursor(first.next_cursor.expect("a second page"));
        }
        let started = Instant::now();
        let results = engine.search(&q).await.unwrap();
        times.push(started.elapsed());
        std::hint::black_box(results);
    }
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99))
}

/// Recall@10 of the index against an exact scan (vectors regenerated from their seeds).
async fn recall(index: &dyn VectorIndex, seeds: &[u64], n: usize) -> f64 {
    let vectors: Vec<Vec<f32>> = seeds
        .iter()
        .flat_map(|&seed| asset_embeddings(seed))
        .filter(|e| e.space == EmbeddingSpace::Visual)
        .map(|e| crossmodal::normalized(&e.vector))
        .collect();
    let (mut found, mut total) = (0, 0);
    for qi in 0..n as u64 {
        let q = crossmodal::normalized(&point(qi * 37 % CLUSTERS, qi ^ 0x5EED));
        let mut exact: Vec<f32> = vectors
            .iter()
            .map(|v| crossmodal::vector::dot(&q, v))
            .collect();
        exact.sort_by(|a, b| b.total_cmp(a));
        let want: Vec<f32> = exact.into_iter().take(10).collect();
        let hits = index
            .search(&VectorQuery::new(EmbeddingSpace::Visual, q.clone(), 10))
            .await
            .unwrap();
        // Compare by score: the exact top-10 scores must be matched (ties are equal vectors).
        let threshold = want[9] - 1e-5;
        found += hits.iter().filter(|h| h.score >= threshold).count().min(10);
        total += 10;
    }
    found as f64 / total as f64
}

async fn run(assets: usize, quant: Quantization, base: &[u8]) {
    let root =
        tempfile::tempdir_in(std::env::var("SCALE_DIR").unwrap_or_else(|_| "/tmp".into())).unwrap();
    let dir = root.path().join("library");
    let vectors_total = assets * SEGMENTS * 3;
    let raw = (vectors_total * DIM * 4) as f64;
    println!(
        "\n## {assets} assets x {SEGMENTS} segments x 3 spaces = {vectors_total} vectors of {DIM} dims ({quant:?}; raw f32 {:.0} MB)",
        raw / 1e6
    );
    let rss_before = rss();
    let hnsw = dir.join("index");
    let index = open_index(&hnsw, quant).await;
    let engine = Engine::open_local_with(&dir, provider(), options(Arc::clone(&index)))
        .await
        .unwrap();
    let started = Instant::now();
    let milestones = [10_000usize, 100_000, 500_000, 1_500_000];
    let mut next_milestone = 0;
    let batch = 2000;
    let mut made = 0usize;
    let mut upload_costs = Vec::new();
    while made < assets {
        let n = batch.min(assets - made);
        let items: Vec<IngestItem> = (made..made + n)
            .map(|i| {
                let bytes = video(base, i as u64);
                IngestItem::bytes(bytes, format!("clip-{i}.mp4")).tags([format!("batch-{}", i % 7)])
            })
            .collect();
        let report = engine.ingest_batch(items, |_, _| {}).await;
        assert_eq!(report.progress.failed, 0, "{:?}", report.failures().next());
        made += n;
        let vectors = made * SEGMENTS * 3;
        while next_milestone < milestones.len() && vectors >= milestones[next_milestone] {
            // One more upload, made durable (ingest with flush_each: index log fsync + catalog).
            let bytes = extra_upload(base, next_milestone);
            let t = Instant::now();
            engine
                .ingest(IngestItem::bytes(bytes.clone(), "one-more.mp4"))
                .await
                .unwrap();
            let cost = t.elapsed();
            upload_costs.push((milestones[next_milestone], vectors, cost));
            next_milestone += 1;
        }
    }
    let ingest_s = started.elapsed().as_secs_f64();
    // Built = every vector linked.
    let linked_at = Instant::now();
    let waiting = Arc::clone(&index);
    tokio::task::spawn_blocking(move || waiting.wait_linked())
        .await
        .unwrap();
    let build_s = started.elapsed().as_secs_f64();
    engine.flush().await.unwrap();
    let rss_built = rss().saturating_sub(rss_before);
    println!(
        "ingest: {:.1} s to accept ({:.0} assets/s, {:.0} vectors/s), {:.1} s until every vector is linked ({:.0} vectors/s; linking waited {:.1} s)",
        ingest_s,
        assets as f64 / ingest_s,
        vectors_total as f64 / ingest_s,
        build_s,
        vectors_total as f64 / build_s,
        linked_at.elapsed().as_secs_f64()
    );
    for (m, v, cost) in &upload_costs {
        println!(
            "one more upload at {m} vectors (library at {v}): {:.1} ms (ingest + durable)",
            cost.as_secs_f64() * 1e3
        );
    }
    let stats = engine.index_stats().await.unwrap();
    println!(
        "memory: RSS growth {:.0} MB = {:.2}x raw; index reports {:.0} MB = {:.2}x raw; {}",
        rss_built as f64 / 1e6,
        rss_built as f64 / raw,
        stats.memory_bytes as f64 / 1e6,
        stats.memory_bytes as f64 / raw,
        rss_split(raw)
    );
    let disk_index = dir_bytes(&hnsw);
    println!(
        "disk: index {:.0} MB = {:.0} bytes/vector ({:.2}x raw); whole directory {:.0} MB",
        disk_index as f64 / 1e6,
        disk_index as f64 / stats.vectors() as f64,
        disk_index as f64 / raw,
        dir_bytes(&dir) as f64 / 1e6
    );
    queries_and_recall(&engine, assets, base).await;
    println!("memory after the queries: {}", rss_split(raw));
    drop(engine);
    drop(index);
    let (engine, _) = reopen(&dir, quant, raw, rss_before).await;
    compaction(&engine, assets, base).await;
    if let Ok(keep) = std::env::var("SCALE_KEEP") {
        drop(engine);
        let kept = Path::new(&keep).join(format!("library-{assets}-{quant:?}"));
        std::fs::rename(&dir, &kept).unwrap();
        println!(
            "kept the library at {} (SCALE_OPEN measures it again)",
            kept.display()
        );
    }
}

/// The extra upload made at milestone `m`.
fn extra_upload(base: &[u8], m: usize) -> Vec<u8> {
    video(base, 10_000_000 + m as u64)
}

/// The seeds of every asset of a library of `assets` (with the extra uploads its milestones
/// made), in ingest order.
fn library_seeds(assets: usize, base: &[u8]) -> Vec<u64> {
    let milestones = [10_000usize, 100_000, 500_000, 1_500_000];
    let extra = milestones
        .iter()
        .take_while(|&&m| assets * SEGMENTS * 3 >= m)
        .count();
    (0..assets)
        .map(|i| seed_of(&video(base, i as u64)))
        .chain((0..extra).map(|m| seed_of(&extra_upload(base, m))))
        .collect()
}

/// Query latency (the default five-page window and a single page; filtered) and recall.
async fn queries_and_recall(engine: &Engine, assets: usize, base: &[u8]) {
    let (p50, p99) = query_latencies(engine, 500, Timed::First).await;
    let (s50, s99) = query_latencies(engine, 500, Timed::Second).await;
    let (f50, f99) = query_latencies(engine, 500, Timed::Filtered).await;
    println!(
        "three-route text query, first page (k 10, 40 candidates a route): p50 {p50:.2} ms, p99 {p99:.2} ms"
    );
    println!(
        "second page by its cursor (the five-page window, 200 candidates a route): p50 {s50:.2} ms, p99 {s99:.2} ms"
    );
    println!("filtered first page (tag, 1 asset in 7): p50 {f50:.2} ms, p99 {f99:.2} ms");
    let seeds = library_seeds(assets, base);
    let r = recall(engine.index().as_ref(), &seeds, 100).await;
    println!("recall@10 (visual space, index search at ef 64, exact top-10 by score): {r:.3}");
}

/// Drops nothing: opens the library in `dir`, reporting the open and resident memory.
async fn reopen(
    dir: &Path,
    quant: Quantization,
    raw: f64,
    rss_before: u64,
) -> (Engine, Arc<HnswIndex>) {
    let rss_closed = rss();
    let t = Instant::now();
    let index = open_index(&dir.join("index"), quant).await;
    println!(
        "index open: {:.2} s; index reports {:.2}x raw; {}",
        t.elapsed().as_secs_f64(),
        index.stats_sync().memory_bytes as f64 / raw,
        rss_split(raw)
    );
    let engine = Engine::open_local_with(dir, provider(), options(Arc::clone(&index)))
        .await
        .unwrap();
    let open_s = t.elapsed().as_secs_f64();
    let rss_open = rss().saturating_sub(rss_before.min(rss_closed));
    let report = index.open_report().clone();
    let waiting = Arc::clone(&index);
    tokio::task::spawn_blocking(move || waiting.wait_linked())
        .await
        .unwrap();
    let linked_s = t.elapsed().as_secs_f64();
    let rss_rest = rss().saturating_sub(rss_before.min(rss_closed));
    println!(
        "open: {open_s:.2} s ({} vectors from the checkpoint, {} log records replayed, {} to link, linked {:.1} s after the open began); RSS after open {:.2}x raw, at rest once linked {:.2}x raw; {}",
        report.vectors,
        report.log_records,
        report.pending,
        linked_s,
        rss_open as f64 / raw,
        rss_rest as f64 / raw,
        rss_split(raw)
    );
    (engine, index)
}

/// A compaction's effect on concurrent search latency: delete a quarter of the assets (every
/// space passes the compaction ratio) and search while they are rebuilt. Deletes go through
/// `Engine::delete`, as a user's do: catalog, media store and index agree afterwards, so a
/// later open has nothing to reconcile.
async fn compaction(engine: &Engine, assets: usize, base: &[u8]) {
    let (b50, b99) = query_latencies(engine, 300, Timed::First).await;
    let index = Arc::clone(engine.index());
    let mut deleted = HashSet::new();
    let t = Instant::now();
    for i in (0..assets).step_by(4) {
        let id = AssetId::from_content(&video(base, i as u64));
        if engine.delete(&id).await.unwrap() {
            deleted.insert(id);
        }
    }
    index.flush().await.unwrap();
    println!(
        "deleted {} assets through the engine in {:.1} s ({:.2} ms each, catalog + media + index)",
        deleted.len(),
        t.elapsed().as_secs_f64(),
        t.elapsed().as_secs_f64() * 1e3 / deleted.len().max(1) as f64
    );
    let anon_before = status_bytes("RssAnon:");
    let mut anon_peak = anon_before;
    let t = Instant::now();
    let mut during = Vec::new();
    let mut compacted = false;
    while t.elapsed() < Duration::from_secs(600) {
        let q = Query::text(format!("compaction {}", during.len())).k(10);
        let s = Instant::now();
        let results = engine.search(&q).await.unwrap();
        during.push(s.elapsed());
        assert!(results.hits.iter().all(|h| !deleted.contains(&h.asset_id)));
        // Done when no space is past the compaction ratio (20%): deletes that land while a
        // space is rebuilt stay as the new space's tombstones, below it.
        let s = if during.len() % 50 == 0 {
            anon_peak = anon_peak.max(status_bytes("RssAnon:"));
            Some(index.stats().await.unwrap())
        } else {
            None
        };
        if s.is_some_and(|s| (s.tombstones as f64) <= 0.2 * (s.vectors() + s.tombstones) as f64) {
            compacted = true;
            break;
        }
    }
    during.sort();
    println!(
        "during compaction ({} queries, {:.1} s{}): p50 {:.2} ms, p99 {:.2} ms; before: p50 {b50:.2} ms, p99 {b99:.2} ms",
        during.len(),
        t.elapsed().as_secs_f64(),
        if compacted { "" } else { ", not finished" },
        percentile(&during, 0.5),
        percentile(&during, 0.99)
    );
    let raw = (assets * SEGMENTS * 3 * DIM * 4) as f64;
    println!(
        "anonymous memory during compaction: peak {:.0} MB = {:.2}x raw (sampled every 50 queries); {:.0} MB = {:.2}x raw before it",
        anon_peak as f64 / 1e6,
        anon_peak as f64 / raw,
        anon_before as f64 / 1e6,
        anon_before as f64 / raw
    );
}

async fn open_index(dir: &Path, quant: Quantization) -> Arc<HnswIndex> {
    let dir = dir.to_path_buf();
    let spec = IndexSpec::for_model(provider().model());
    let mut config = HnswConfig::default().quantization(quant);
    // SCALE_EXACT_FILTER: the filter selectivity below which a space is scanned exactly
    // (default 0.15; 0 walks the graph for every filter).
    if let Some(share) = std::env::var("SCALE_EXACT_FILTER")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config = config.exact_filter_selectivity(share);
    }
    Arc::new(
        tokio::task::spawn_blocking(move || HnswIndex::open(dir, spec, config))
            .await
            .unwrap()
            .unwrap(),
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let base = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/media/video.mp4"
    ))
    .unwrap();
    let assets = env_usize("SCALE_ASSETS", 100_000);
    let quant = match std::env::var("SCALE_QUANT").as_deref() {
        Ok("int8") => Quantization::Int8,
        _ => Quantization::None,
    };
    println!(
        "# scale benchmark: embedded default (HnswIndex m 16, efC 200, ef 64; LocalDirStore; SQLite), synthetic provider, {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    if let Ok(dir) = std::env::var("SCALE_OPEN") {
        // A library kept by an earlier run (SCALE_KEEP), measured again: open, memory at
        // rest, queries and recall. SCALE_ASSETS must be the size it was built with.
        let raw = (assets * SEGMENTS * 3 * DIM * 4) as f64;
        println!("\n## the library in {dir} ({assets} assets, {quant:?}), opened again");
        let rss_before = rss();
        let (engine, _index) = reopen(Path::new(&dir), quant, raw, rss_before).await;
        queries_and_recall(&engine, assets, &base).await;
        println!("memory after the queries: {}", rss_split(raw));
        return;
    }
    run((assets / 10).max(100), quant, &base).await;
    run(assets, quant, &base).await;
}
