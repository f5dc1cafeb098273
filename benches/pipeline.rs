//! Ingest throughput of the pipeline (a program, not a criterion bench):
//! ingest throughput (files/s) with a provider that adds a fixed latency per call (default
//!    2 s) at ingest concurrency 1, 8 and 32, with the provider's own concurrency limit (16):
//!    throughput should scale with concurrency up to that limit.
//!
//! The searcher's overhead over raw index search is measured in
//! `backends/hnsw/benches/searcher_overhead.rs` (on the embedded default's HNSW index).
//!
//! ```text
//! cargo bench --bench pipeline
//! CROSSMODAL_BENCH_LATENCY_MS=500 cargo bench --bench pipeline
//! ```
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use async_trait::async_trait;
use crossmodal::{
    CachedEmbedder, Embedding, EmbeddingProvider, EmbeddingSpace, FlatIndex, IndexSpec,
    IngestConfig, IngestItem, Ingestor, MediaInput, MemoryStore, ModelInfo, Result, RetryPolicy,
    Segment, SqliteCatalog,
};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

const DIM: usize = 512;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// xorshift vectors, deterministic.
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

/// A provider that sleeps `latency` per media call, at most `limit` calls at once.
struct SlowProvider {
    model: ModelInfo,
    latency: Duration,
    limit: Semaphore,
}

#[async_trait]
impl EmbeddingProvider for SlowProvider {
    fn model(&self) -> &ModelInfo {
        &self.model
    }
    async fn embed_text(&self, text: &str) -> Result<Vec<f32>> {
        let mut rng = Rng(text.len() as u64 * 7919 + 1);
        Ok(rng.vector())
    }
    async fn embed_media(&self, media: &MediaInput) -> Result<Vec<Embedding>> {
        let _slot = self.limit.acquire().await.expect("semaphore open");
        tokio::time::sleep(self.latency).await;
        let seed = u64::from_le_bytes(media.asset_id.as_str().as_bytes()[..8].try_into().unwrap());
        let mut rng = Rng(seed | 1);
        Ok(vec![Embedding {
            space: EmbeddingSpace::Audio,
            segment: Segment::new(0.0, 1.0).ok(),
            vector: rng.vector(),
        }])
    }
}

fn model() -> ModelInfo {
    ModelInfo {
        id: "bench/slow-provider".into(),
        ..ModelInfo::marengo_3_0()
    }
}

/// A distinct, valid one-second WAV per `i`.
fn wav(i: usize) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::new(&mut out, spec).unwrap();
    for t in 0..8000 {
        let x = ((t as f32) * (0.01 + i as f32 * 0.001)).sin() * 8000.0;
        w.write_sample(x as i16).unwrap();
    }
    w.finalize().unwrap();
    out.into_inner()
}

async fn ingest_throughput(latency: Duration) {
    println!("## ingest throughput, provider latency {latency:?}, provider limit 16");
    println!("| concurrency | files | seconds | files/s | speed-up vs 1 |");
    println!("|---|---|---|---|---|");
    let mut base = None;
    for (concurrency, files) in [(1usize, 6usize), (8, 32), (32, 64)] {
        let provider = Arc::new(SlowProvider {
            model: model(),
            latency,
            limit: Semaphore::new(16),
        });
        let index = Arc::new(FlatIndex::new(IndexSpec::for_model(&provider.model)));
        let ingestor = Ingestor::new(
            CachedEmbedder::new(provider, None, RetryPolicy::none()),
            Arc::new(MemoryStore::new()),
            index,
            Arc::new(SqliteCatalog::open_in_memory().unwrap()),
            IngestConfig::default().concurrency(concurrency),
        )
        .unwrap();
        let items: Vec<IngestItem> = (0..files)
            .map(|i| IngestItem::bytes(wav(concurrency * 1000 + i), format!("{i}.wav")))
            .collect();
        let t = Instant::now();
        let report = ingestor.ingest_batch(items, |_, _| {}).await;
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(report.progress.indexed, files, "{:?}", report.items);
        let rate = files as f64 / secs;
        let base_rate = *base.get_or_insert(rate);
        println!(
            "| {concurrency} | {files} | {secs:.2} | {rate:.2} | {:.1}x |",
            rate / base_rate
        );
    }
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; nothing else is parsed.
    let latency = Duration::from_millis(env_usize("CROSSMODAL_BENCH_LATENCY_MS", 2000) as u64);
    ingest_throughput(latency).await;
}
