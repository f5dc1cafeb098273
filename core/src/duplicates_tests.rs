//! Near-duplicates through an engine: copies, shared openings and strangers told apart.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;

use super::*;
use crate::catalog::SqliteCatalog;
use crate::embedding::{Embedding, EmbeddingProvider, MediaInput, ModelInfo};
use crate::engine::{Engine, EngineParts};
use crate::index::FlatIndex;
use crate::store::MemoryStore;
use crate::{IndexSpec, IngestItem, MemoryEmbeddingCache};

/// A 1-second 8 kHz mono WAV whose samples start with `tag` (distinct content per tag).
fn wav(tag: u8) -> Bytes {
    let data: Vec<u8> = (0..16_000u32)
        .map(|i| (i as u8).wrapping_mul(tag))
        .collect();
    let mut w = Vec::new();
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&8_000u32.to_le_bytes());
    w.extend_from_slice(&16_000u32.to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&(data.len() as u32).to_le_bytes());
    w.extend_from_slice(&data);
    Bytes::from(w)
}

/// Segment vectors set per asset by the test.
struct Planted {
    model: ModelInfo,
    by_asset: Mutex<HashMap<AssetId, Vec<Vec<f32>>>>,
}

#[async_trait]
impl EmbeddingProvider for Planted {
    fn model(&self) -> &ModelInfo {
        &self.model
    }
    async fn embed_text(&self, _: &str) -> Result<Vec<f32>> {
        Ok(vec![1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    }
    async fn embed_media(&self, media: &MediaInput) -> Result<Vec<Embedding>> {
        let vectors = self.by_asset.lock().get(&media.asset_id).cloned().unwrap();
        Ok(vectors
            .into_iter()
            .enumerate()
            .map(|(i, v)| Embedding {
                space: EmbeddingSpace::Audio,
                segment: Segment::new(i as f64 * 6.0, (i + 1) as f64 * 6.0).ok(),
                vector: v,
            })
            .collect())
    }
}

fn unit(i: usize) -> Vec<f32> {
    let mut v = vec![0.05; 6];
    v[i % 6] = 1.0;
    v
}

#[tokio::test]
async fn copies_shared_openings_and_strangers_are_told_apart() {
    let model = ModelInfo {
        id: "dup-model".into(),
        dimension: 6,
        audio_spaces: vec![EmbeddingSpace::Audio],
        ..ModelInfo::marengo_3_0()
    };
    let provider = Arc::new(Planted {
        model: model.clone(),
        by_asset: Mutex::new(HashMap::new()),
    });
    // a: five shots; b: the same five, re-encoded (slightly off); c: a's opening, then its own
    // four; d: nothing alike.
    let shots = |ids: &[usize], jitter: f32| -> Vec<Vec<f32>> {
        ids.iter()
            .map(|i| {
                let mut v = unit(*i);
                v[(*i + 1) % 6] += jitter;
                v
            })
            .collect()
    };
    let plan = [
        (1u8, shots(&[0, 1, 2, 3, 4], 0.0)),
        (2, shots(&[0, 1, 2, 3, 4], 0.08)),
        (3, {
            let mut v = shots(&[0], 0.02);
            v.extend((0..4).map(|i| {
                let mut x = vec![0.3; 6];
                x[5] = -1.0 - i as f32;
                x
            }));
            v
        }),
        (4, vec![vec![-1.0, -1.0, 0.2, -0.3, 0.1, 0.0]]),
    ];
    let mut ids = Vec::new();
    for (tag, vectors) in &plan {
        let id = AssetId::from_content(&wav(*tag));
        provider.by_asset.lock().insert(id.clone(), vectors.clone());
        ids.push(id);
    }
    let engine = Engine::from_parts(
        EngineParts::new(
            provider.clone(),
            Arc::new(MemoryStore::default()),
            Arc::new(FlatIndex::new(IndexSpec::for_model(&model))),
            Arc::new(SqliteCatalog::open_in_memory().unwrap()),
        )
        .cache(Arc::new(MemoryEmbeddingCache::new(None))),
    )
    .unwrap();
    for (tag, _) in &plan {
        engine
            .ingest(IngestItem::bytes(wav(*tag), format!("ad-{tag}.wav")))
            .await
            .unwrap();
    }
    let (a, b, c, d) = (&ids[0], &ids[1], &ids[2], &ids[3]);
    let dups = engine
        .near_duplicates(a, &DuplicateQuery::default())
        .await
        .unwrap();
    let of = |id: &AssetId| dups.iter().find(|x| &x.asset_id == id);
    let copy = of(b).expect("the re-encode is found");
    assert_eq!(copy.kind, DuplicateKind::Copy);
    assert!((copy.coverage - 1.0).abs() < 1e-6 && (copy.other_coverage - 1.0).abs() < 1e-6);
    assert_eq!(copy.pairs.len(), 5);
    assert_eq!(
        copy.pairs[2].segment, copy.pairs[2].other_segment,
        "shot by shot"
    );
    let shared = of(c).expect("the shared opening is found");
    assert_eq!(shared.kind, DuplicateKind::SharedPart);
    assert_eq!(shared.pairs.len(), 1);
    assert_eq!(shared.pairs[0].segment, Segment::new(0.0, 6.0).ok());
    assert!((shared.coverage - 0.2).abs() < 1e-6, "{shared:?}");
    assert!(of(d).is_none(), "a stranger is not a duplicate");
    assert_eq!(dups[0].asset_id, *b, "copies first");

    let pairs = engine
        .library_duplicates(&DuplicateQuery::default(), 100)
        .await
        .unwrap();
    let mut seen: Vec<(AssetId, AssetId)> = pairs
        .iter()
        .map(|p| (p.asset_id.clone(), p.duplicate.asset_id.clone()))
        .collect();
    seen.sort();
    let mut want = vec![
        (a.clone().min(b.clone()), a.clone().max(b.clone())),
        (a.clone().min(c.clone()), a.clone().max(c.clone())),
        (b.clone().min(c.clone()), b.clone().max(c.clone())),
    ];
    want.sort();
    assert_eq!(seen, want, "each pair once");

    let err = engine
        .near_duplicates(
            &AssetId::from_content(b"unknown"),
            &DuplicateQuery::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), crate::ErrorKind::NotFound);
    let err = engine
        .near_duplicates(a, &DuplicateQuery::default().min_cosine(2.0))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), crate::ErrorKind::InvalidInput);
}
