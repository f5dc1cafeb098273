//! What the ways of searching cost over plain vector search, in one run: `Clips` grouping (every
//! matching clip, merged, ordered by clip count), keywords fused with vectors (weighted and
//! RRF, SQLite FTS5), a later page (cursor), and a negative example, each as a ratio to the
//! default search (vector routes, one hit per asset) on the same index and queries.
//!
//! Library: videos of 5 segments in the visual and audio spaces, `HnswIndex` (default
//! configuration), 64 dims (the searcher's costs do not depend on the dimension; the index's
//! do, and are measured by `ann_compare`). Two sizes, 10x apart: 10k and 100k segments per
//! space. Rounds alternate the modes (7 by default); per mode the median of the per-query means.
//! Run: `cargo bench --bench search_modes` (`CROSSMODAL_BENCH_LARGE=0`: the small size only).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use crossmodal::{
    AssetCatalog, AssetId, AssetRecord, AssetStatus, CrossModalSearcher, Embedding,
    EmbeddingProvider, EmbeddingSpace, Fusion, Grouping, HnswConfig, HnswIndex, IndexSpec,
    MediaFormat, MediaInput, MediaKind, MediaProbe, ModelInfo, Query, QueryCacheConfig, RecordMeta,
    ResultOrder, Segment, SqliteCatalog, VectorIndex, VectorRecord,
};

const DIM: usize = 64;
const SEGMENTS: usize = 5;
const WORDS: [&str; 16] = [
    "castle", "siege", "sunset", "forest", "beach", "city", "night", "rain", "car", "dog",
    "summer", "winter", "launch", "promo", "teaser", "final",
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    }
}

fn model() -> ModelInfo {
    ModelInfo {
        id: "bench-model".into(),
        dimension: DIM,
        ..ModelInfo::marengo_3_0()
    }
}

/// Text vectors from the text's hash (no model: this measures the searcher and the index).
struct HashedText(ModelInfo);

#[async_trait]
impl EmbeddingProvider for HashedText {
    fn model(&self) -> &ModelInfo {
        &self.0
    }
    async fn embed_text(&self, text: &str) -> crossmodal::Result<Vec<f32>> {
        let id = AssetId::from_content(text.as_bytes());
        let mut rng = Rng(u64::from_str_radix(&id.as_str()[..16], 16).unwrap() | 1);
        Ok((0..DIM).map(|_| rng.next()).collect())
    }
    async fn embed_media(&self, _: &MediaInput) -> crossmodal::Result<Vec<Embedding>> {
        Err(crossmodal::Error::unsupported("text queries only"))
    }
}

async fn library(videos: usize) -> CrossModalSearcher {
    let model = model();
    let index = HnswIndex::new(IndexSpec::for_model(&model), HnswConfig::default()).unwrap();
    let catalog = SqliteCatalog::open_in_memory().unwrap();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let centres: Vec<Vec<f32>> = (0..200)
        .map(|_| (0..DIM).map(|_| rng.next()).collect())
        .collect();
    let mut batch = Vec::new();
    for v in 0..videos {
        let asset_id = AssetId::from_content(format!("video-{v}").as_bytes());
        let name = format!(
            "{}_{}_{v}.mp4",
            WORDS[v % WORDS.len()],
            WORDS[(v / WORDS.len()) % WORDS.len()]
        );
        let meta = RecordMeta::new(MediaKind::Video, MediaFormat::Mp4)
            .name(name.clone())
            .duration_ms(30_000)
            .created_at_ms(v as i64);
        let centre = &centres[v % centres.len()];
        for space in [EmbeddingSpace::Visual, EmbeddingSpace::Audio] {
            for s in 0..SEGMENTS {
                batch.push(VectorRecord {
                    asset_id: asset_id.clone(),
                    space,
                    seq: s as u32,
                    segment: Segment::new(s as f64 * 6.0, (s + 1) as f64 * 6.0).ok(),
                    vector: centre.iter().map(|c| c + 0.8 * rng.next()).collect(),
                    meta: meta.clone(),
                });
            }
        }
        catalog
            .upsert(&AssetRecord {
                asset_id,
                probe: MediaProbe {
                    format: MediaFormat::Mp4,
                    width: Some(1280),
                    height: Some(720),
                    duration_sec: Some(30.0),
                    has_video: true,
                    has_audio: true,
                },
                size_bytes: 1,
                media: None,
                display_name: Some(name),
                extension_mismatch: None,
                source_path: None,
                tags: vec![WORDS[(v * 7) % WORDS.len()].to_string()],
                fields: Default::default(),
                status: AssetStatus::Indexed,
                created_at_ms: v as i64,
                updated_at_ms: v as i64,
            })
            .await
            .unwrap();
        if batch.len() >= 10_000 {
            index.upsert_sync(std::mem::take(&mut batch)).unwrap();
        }
    }
    index.upsert_sync(batch).unwrap();
    index.wait_linked();
    let index: Arc<dyn VectorIndex> = Arc::new(index);
    CrossModalSearcher::new(Arc::new(HashedText(model)), index)
        .keyword_index(Arc::new(catalog))
        // Every query text is distinct anyway; no cache keeps the comparison about search.
        .query_cache(QueryCacheConfig::disabled())
}

fn texts(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            format!(
                "{} {} shot {i}",
                WORDS[i % WORDS.len()],
                WORDS[(i * 5 + 3) % WORDS.len()]
            )
        })
        .collect()
}

type Mode = (&'static str, fn(Query) -> Query);

fn modes() -> Vec<Mode> {
    vec![
        ("vector, asset (peer)", |q| q),
        ("clips", |q| q.grouping(Grouping::clips(10))),
        ("merged clips by count", |q| {
            q.grouping(Grouping::merged_clips(10))
                .order(ResultOrder::ClipCount)
        }),
        ("keywords weighted", |q| q.keywords(true)),
        ("keywords rrf", |q| {
            q.keywords(true).fusion(Fusion::ReciprocalRank { k0: 60.0 })
        }),
        ("keywords + clips", |q| {
            q.keywords(true).grouping(Grouping::clips(10))
        }),
        ("negative example", |q| {
            q.negative_text("people talking indoors")
        }),
    ]
}

async fn mean_latency(searcher: &CrossModalSearcher, mode: &Mode, queries: &[String]) -> Duration {
    let started = Instant::now();
    for t in queries {
        let q = (mode.1)(Query::text(t.clone()).k(10));
        std::hint::black_box(searcher.search(&q).await.unwrap());
    }
    started.elapsed() / queries.len() as u32
}

/// The third page: the first two pages' cursors are fetched outside the timing.
async fn third_page_latency(searcher: &CrossModalSearcher, queries: &[String]) -> Duration {
    let mut total = Duration::ZERO;
    for t in queries {
        let mut q = Query::text(t.clone()).k(10);
        for _ in 0..2 {
            let page = searcher.search(&q).await.unwrap();
            q = q.cursor(page.next_cursor.expect("more pages"));
        }
        let started = Instant::now();
        std::hint::black_box(searcher.search(&q).await.unwrap());
        total += started.elapsed();
    }
    total / queries.len() as u32
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let large = std::env::var("CROSSMODAL_BENCH_LARGE").map_or(true, |v| v != "0");
    let rounds: usize = std::env::var("CROSSMODAL_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let sizes: &[usize] = if large { &[2_000, 20_000] } else { &[2_000] };
    let queries = texts(40);
    for &videos in sizes {
        let built = Instant::now();
        let searcher = library(videos).await;
        eprintln!(
            "SEARCH_MODES library: {videos} videos, {} segments per space, built in {:.1} s",
            videos * SEGMENTS,
            built.elapsed().as_secs_f64()
        );
        let modes = modes();
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); modes.len() + 1];
        // Warm-up.
        for m in &modes {
            mean_latency(&searcher, m, &queries[..5]).await;
        }
        for _ in 0..rounds {
            for (i, m) in modes.iter().enumerate() {
                times[i].push(mean_latency(&searcher, m, &queries).await.as_secs_f64() * 1e3);
            }
            times[modes.len()]
                .push(third_page_latency(&searcher, &queries).await.as_secs_f64() * 1e3);
        }
        let peer = median(times[0].clone());
        for (i, m) in modes.iter().enumerate() {
            let t = median(times[i].clone());
            eprintln!(
                "SEARCH_MODES {:>6} segments/space  {:<24} {:>8.3} ms/query  {:>5.2}x peer",
                videos * SEGMENTS,
                m.0,
                t,
                t / peer
            );
        }
        let t = median(times[modes.len()].clone());
        eprintln!(
            "SEARCH_MODES {:>6} segments/space  {:<24} {:>8.3} ms/query  {:>5.2}x peer",
            videos * SEGMENTS,
            "third page (cursor)",
            t,
            t / peer
        );
    }
}
