//! Tests of the index implementations and their storage engine (the behaviour suite itself is
//! in `conformance`).

mod durable;
mod hnsw;

use std::collections::HashSet;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::conformance::random_vector;
use crate::{
    AssetId, EmbeddingSpace, FlatIndex, HnswConfig, HnswIndex, IndexSpec, MediaFormat, MediaKind,
    RecordMeta, VectorQuery, VectorRecord,
};

/// `n` single-vector image records in `dim` dims around 50 cluster centres; every 100th record
/// is tagged "rare", the others "common"; `created_at_ms` = record number.
pub(crate) fn image_records(n: usize, dim: usize, seed: u64) -> Vec<VectorRecord> {
    let mut rng = StdRng::seed_from_u64(seed);
    let centres: Vec<Vec<f32>> = (0..50).map(|_| random_vector(&mut rng, dim)).collect();
    (0..n)
        .map(|i| {
            let c = &centres[rng.random_range(0..centres.len())];
            let noise = random_vector(&mut rng, dim);
            VectorRecord {
                asset_id: AssetId::from_content(format!("img-{seed}-{i}").as_bytes()),
                space: EmbeddingSpace::Visual,
                seq: 0,
                segment: None,
                vector: c.iter().zip(&noise).map(|(c, e)| c + 0.8 * e).collect(),
                meta: RecordMeta::new(
                    MediaKind::Image,
                    if i % 2 == 0 {
                        MediaFormat::Png
                    } else {
                        MediaFormat::Jpeg
                    },
                )
                .tags([if i % 100 == 0 { "rare" } else { "common" }])
                .created_at_ms(i as i64)
                .field("n", i as f64),
            }
        })
        .collect()
}

pub(crate) fn flat_of(spec: &IndexSpec, records: &[VectorRecord]) -> FlatIndex {
    let flat = FlatIndex::new(spec.clone());
    flat.upsert_sync(records.to_vec()).expect("flat upsert");
    flat
}

pub(crate) fn queries(
    n: usize,
    dim: usize,
    seed: u64,
    space: EmbeddingSpace,
    k: usize,
) -> Vec<VectorQuery> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| VectorQuery::new(space, random_vector(&mut rng, dim), k))
        .collect()
}

/// Recall@k of `index` against `flat` over `queries`.
pub(crate) fn recall(index: &HnswIndex, flat: &FlatIndex, queries: &[VectorQuery]) -> f64 {
    let (mut found, mut total) = (0usize, 0usize);
    for q in queries {
        let want: HashSet<(AssetId, u32)> = flat
            .search_sync(q)
            .unwrap()
            .into_iter()
            .map(|h| (h.asset_id, h.seq))
            .collect();
        let got: HashSet<(AssetId, u32)> = index
            .search_sync(q)
            .unwrap()
            .into_iter()
            .map(|h| (h.asset_id, h.seq))
            .collect();
        found += want.intersection(&got).count();
        total += want.len();
    }
    if total == 0 {
        1.0
    } else {
        found as f64 / total as f64
    }
}

/// Graph walks only (the default plan scans these small test spaces exactly).
pub(crate) fn walk() -> HnswConfig {
    HnswConfig::default().always_walk_graph()
}

/// Polls `cond` (up to a generous bound; a liveness check, not a timing assertion).
pub(crate) fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
