//! The searcher's overhead over raw index search, on the embedded default's index (and on
//! `FlatIndex` as a second reference): p50/p99 over 1,000 text queries on a 100k-segment index,
//! raw `VectorIndex::search` and the whole `CrossModalSearcher` on the same query vector, which
//! one runs first alternating per query (the second finds the graph in cache), so the ratio
//! comes from one run. A program, not a criterion bench:
//!
//! ```text
//! cargo bench -p crossmodal-hnsw --bench searcher_overhead
//! CROSSMODAL_BENCH_SEGMENTS=20000 cargo bench -p crossmodal-hnsw --bench searcher_overhead
//! ```
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use async_trait::async_trait;
use crossmodal_core::{
    AssetId, CachedEmbedder, CrossModalSearcher, Embedding, EmbeddingProvider, EmbeddingSpace,
    FlatIndex, IndexSpec, MediaFormat, MediaInput, MediaKind, ModelInfo, Query, RecordMeta, Result,
    RetryPolicy, SearchMode, Segment, VectorIndex, VectorQuery, VectorRecord,
};
use crossmodal_hnsw::{HnswConfig, HnswIndex};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DIM: usize = 512;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    }
    fn vector(&mut self) -> Vec<f32> {
        (0..DIM).map(|_| self.next()).collect()
    }
}

/// Text vectors from a seeded generator; media is never embedded here.
struct TextOnly(ModelInfo);

#[async_trait]
impl EmbeddingProvider for TextOnly {
    fn model(&self) -> &ModelInfo {
        &self.0
    }
    async fn embed_text(&self, text: &str) -> Result<Vec<f32>> {
        Ok(Rng(text.len() as u64 * 7919 + text.as_bytes()[text.len() - 1] as u64).vector())
    }
    async fn embed_media(&self, _: &MediaInput) -> Result<Vec<Embedding>> {
        Err(crossmodal_core::Error::unsupported("text only"))
    }
}

fn records(segments: usize) -> Vec<VectorRecord> {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let centres: Vec<Vec<f32>> = (0..500).map(|_| rng.vector()).collect();
    (0..segments)
        .map(|i| {
            let asset = i / 4;
            VectorRecord {
                asset_id: AssetId::from_content(&(asset as u64).to_le_bytes()),
                space: EmbeddingSpace::Visual,
                seq: (i % 4) as u32,
                segment: Segment::new((i % 4) as f64 * 4.0, (i % 4) as f64 * 4.0 + 4.0).ok(),
                vector: centres[asset % 500]
                    .iter()
                    .map(|c| c + 2.0 * rng.next())
                    .collect(),
                meta: RecordMeta {
                    kind: if asset % 2 == 0 {
                        MediaKind::Video
                    } else {
                        MediaKind::Image
                    },
                    format: MediaFormat::Mp4,
                    tags: vec![],
                    created_at_ms: 0,
                },
            }
        })
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn measure(name: &str, index: Arc<dyn VectorIndex>, provider: Arc<TextOnly>, queries: usize) {
    let searcher = CrossModalSearcher::with_embedder(
        CachedEmbedder::new(provider.clone(), None, RetryPolicy::none()),
        index.clone(),
    );
    let mut raw = Vec::with_capacity(queries);
    let mut full = Vec::with_capacity(queries);
    for i in 0..queries {
        let text = format!("query number {i}");
        let vector = provider.embed_text(&text).await.expect("embed");
        let q = VectorQuery::new(EmbeddingSpace::Visual, vector, 10);
        let query = Query::text(text).mode(SearchMode::Visual).k(10);
        // Alternate which path runs first: the second one finds the same graph nodes in cache.
        for path in [i % 2, 1 - i % 2] {
            let t = Instant::now();
            if path == 0 {
                std::hint::black_box(index.search(&q).await.expect("search"));
                raw.push(t.elapsed());
            } else {
                std::hint::black_box(searcher.search(&query).await.expect("search"));
                full.push(t.elapsed());
            }
        }
    }
    raw.sort();
    full.sort();
    println!(
        "| {name} | {:?} / {:?} | {:?} / {:?} | {:.3} / {:.3} |",
        percentile(&raw, 0.5),
        percentile(&raw, 0.99),
        percentile(&full, 0.5),
        percentile(&full, 0.99),
        percentile(&full, 0.5).as_secs_f64() / percentile(&raw, 0.5).as_secs_f64(),
        percentile(&full, 0.99).as_secs_f64() / percentile(&raw, 0.99).as_secs_f64(),
    );
}

#[tokio::main]
async fn main() {
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let segments = env("CROSSMODAL_BENCH_SEGMENTS", 100_000);
    let queries = env("CROSSMODAL_BENCH_QUERIES", 1000);
    let model = ModelInfo {
        id: "bench/text-only".into(),
        ..ModelInfo::marengo_3_0()
    };
    let provider = Arc::new(TextOnly(model.clone()));
    let spec = IndexSpec::for_model(&model);
    let data = records(segments);
    let hnsw = HnswIndex::new(spec.clone(), HnswConfig::default()).expect("hnsw");
    let t = Instant::now();
    hnsw.upsert_sync(data.clone()).expect("hnsw upsert");
    let build = t.elapsed();
    let flat = FlatIndex::new(spec);
    flat.upsert_sync(data).expect("flat upsert");
    println!(
        "## searcher overhead, {segments} segments x {DIM} dims, {queries} text queries, k=10 (HNSW built in {build:.1?})"
    );
    println!("| index | raw p50 / p99 | searcher p50 / p99 | searcher / raw p50 / p99 |");
    println!("|---|---|---|---|");
    measure(
        "HnswIndex (M=16, efC=200, ef=96)",
        Arc::new(hnsw),
        provider.clone(),
        queries,
    )
    .await;
    measure("FlatIndex", Arc::new(flat), provider, queries).await;
}
