//! `FlatIndex` exact search against the memory-bandwidth bound, measured in the same run.
//!
//! For each size (10k and 100k vectors; 512 and 1024 dims) it times one unfiltered top-10 query
//! and, as the peer, a plain streaming sum over the same number of bytes (`read_bound`): the
//! ratio `flat_search / read_bound` is how far the scan is from the single-core read bandwidth.
//! Besides criterion's timings it prints (stderr, lines starting `FLAT`) that ratio measured
//! alternately in 7 rounds, median and min-max: the figure to quote on a noisy machine.
//! Run: `cargo bench --bench flat_index` (set `CROSSMODAL_BENCH_LARGE=0` to skip 100k).
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use crossmodal::{
    AssetId, EmbeddingSpace, FlatIndex, IndexSpec, MediaFormat, MediaKind, RecordMeta, VectorQuery,
    VectorRecord,
};
use std::hint::black_box;
use std::time::Duration;

/// Deterministic pseudo-random unit-ish vectors (xorshift), clustered around 500 centres.
fn data(n: usize, dim: usize) -> Vec<Vec<f32>> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    };
    let centres: Vec<Vec<f32>> = (0..500)
        .map(|_| (0..dim).map(|_| next()).collect())
        .collect();
    (0..n)
        .map(|i| {
            centres[i % centres.len()]
                .iter()
                .map(|c| c + 2.0 * next())
                .collect()
        })
        .collect()
}

fn build(n: usize, dim: usize) -> (FlatIndex, Vec<f32>) {
    let index = FlatIndex::new(IndexSpec::new("bench", dim));
    let vectors = data(n + 1, dim);
    let meta = RecordMeta::new(MediaKind::Video, MediaFormat::Mp4);
    let records: Vec<VectorRecord> = vectors[..n]
        .iter()
        .enumerate()
        .map(|(i, v)| VectorRecord {
            asset_id: AssetId::from_content(&(i as u64).to_le_bytes()),
            space: EmbeddingSpace::Visual,
            seq: 0,
            segment: None,
            vector: v.clone(),
            meta: meta.clone(),
        })
        .collect();
    index.upsert_sync(records).expect("upsert");
    (index, vectors[n].clone())
}

fn bench(c: &mut Criterion) {
    let large = std::env::var("CROSSMODAL_BENCH_LARGE").map_or(true, |v| v != "0");
    let mut sizes = vec![(10_000usize, 512usize), (10_000, 1024)];
    if large {
        sizes.extend([(100_000, 512), (100_000, 1024)]);
    }
    let mut group = c.benchmark_group("flat_index");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for (n, dim) in sizes {
        let (index, query) = build(n, dim);
        let bytes = (n * dim * 4) as u64;
        group.throughput(Throughput::Bytes(bytes));
        let id = format!("{n}x{dim}");
        let q = VectorQuery::new(EmbeddingSpace::Visual, query, 10);
        group.bench_with_input(BenchmarkId::new("flat_search", &id), &q, |b, q| {
            b.iter(|| black_box(index.search_sync(black_box(q)).expect("search")))
        });
        // The peer: stream the same number of bytes and sum them (what a scan cannot beat).
        let buffer: Vec<f32> = vec![1.0; n * dim];
        group.bench_with_input(BenchmarkId::new("read_bound", &id), &buffer, |b, buf| {
            b.iter(|| black_box(read_bound(black_box(buf))))
        });
        alternating_ratio(&id, bytes, &index, &q, &buffer);
    }
    group.finish();
}

/// Sums `buf`: a streaming read at the machine's bandwidth (AVX2 with 8 independent
/// accumulators where the CPU has it, so the adds never limit the read rate).
fn read_bound(buf: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is available (checked just above).
        return unsafe { read_bound_avx2(buf) };
    }
    let mut acc = [0f32; 16];
    for chunk in buf.chunks_exact(16) {
        for (a, x) in acc.iter_mut().zip(chunk) {
            *a += x;
        }
    }
    acc.iter().sum::<f32>()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn read_bound_avx2(buf: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_setzero_ps(); 8];
    let chunks = buf.chunks_exact(64);
    for chunk in chunks {
        for (j, a) in acc.iter_mut().enumerate() {
            // SAFETY: `chunk` holds 64 floats, lane group j reads floats 8j..8j+8.
            *a = _mm256_add_ps(*a, unsafe { _mm256_loadu_ps(chunk.as_ptr().add(8 * j)) });
        }
    }
    let mut lanes = [0f32; 8];
    let total = acc
        .iter()
        .fold(_mm256_setzero_ps(), |s, a| _mm256_add_ps(s, *a));
    // SAFETY: `lanes` holds 8 floats.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), total) };
    lanes.iter().sum()
}

/// The figure to quote on a noisy machine: search and read bound run alternately (7 rounds of
/// 10 calls each), the ratio taken per round; prints the median and the min-max spread.
fn alternating_ratio(id: &str, bytes: u64, index: &FlatIndex, q: &VectorQuery, buf: &[f32]) {
    const ROUNDS: usize = 7;
    const CALLS: u32 = 10;
    let mut ratios = Vec::with_capacity(ROUNDS);
    let mut search_times = Vec::with_capacity(ROUNDS);
    let mut read_times = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let t = std::time::Instant::now();
        for _ in 0..CALLS {
            black_box(index.search_sync(black_box(q)).expect("search"));
        }
        let search = t.elapsed() / CALLS;
        let t = std::time::Instant::now();
        for _ in 0..CALLS {
            black_box(read_bound(black_box(buf)));
        }
        let read = t.elapsed() / CALLS;
        ratios.push(search.as_secs_f64() / read.as_secs_f64());
        search_times.push(search);
        read_times.push(read);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    search_times.sort();
    read_times.sort();
    let (lo, hi) = ratios
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
    let read = read_times[ROUNDS / 2];
    eprintln!(
        "FLAT {id}: search {:?}/query, read bound {:?} ({:.1} GB/s over {} MB), \
         search/bound median {:.2} (min {lo:.2}, max {hi:.2}) over {ROUNDS} alternating rounds",
        search_times[ROUNDS / 2],
        read,
        bytes as f64 / read.as_secs_f64() / 1e9,
        bytes / 1_000_000,
        median(&mut ratios),
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
