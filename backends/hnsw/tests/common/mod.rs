//! Helpers shared by the integration tests.
#![allow(dead_code, unused_imports)]

use std::collections::HashSet;

use crossmodal_core::conformance::random_vector;
use crossmodal_core::{
    AssetId, EmbeddingSpace, FlatIndex, IndexSpec, MediaFormat, MediaKind, RecordMeta, VectorQuery,
    VectorRecord,
};
use crossmodal_hnsw::HnswIndex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// `n` single-vector image records in `dim` dims around 50 cluster centres; every 100th record
/// is tagged "rare", the others "common"; `created_at_ms` = record number.
pub fn image_records(n: usize, dim: usize, seed: u64) -> Vec<VectorRecord> {
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
                meta: RecordMeta {
                    kind: MediaKind::Image,
                    format: if i % 2 == 0 {
                        MediaFormat::Png
                    } else {
                        MediaFormat::Jpeg
                    },
                    tags: vec![if i % 100 == 0 { "rare" } else { "common" }.to_string()],
                    created_at_ms: i as i64,
                },
            }
        })
        .collect()
}

pub fn flat_of(spec: &IndexSpec, records: &[VectorRecord]) -> FlatIndex {
    let flat = FlatIndex::new(spec.clone());
    flat.upsert_sync(records.to_vec()).expect("flat upsert");
    flat
}

/// Recall@k of `index` against `flat` over `queries`.
pub fn recall(index: &HnswIndex, flat: &FlatIndex, queries: &[VectorQuery]) -> f64 {
    let (mut found, mut total) = (0usize, 0usize);
    for q in queries {
        let want: HashSet<(AssetId, u32)> = flat
            .search_sync(q)
            .expect("flat search")
            .into_iter()
            .map(|h| (h.asset_id, h.seq))
            .collect();
        let got: HashSet<(AssetId, u32)> = index
            .search_sync(q)
            .expect("search")
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

pub fn queries(
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
