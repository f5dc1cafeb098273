//! The SQLite embedding cache's payload decoder under mutated valid payloads.

use proptest::prelude::*;

use crate::cache::sqlite::{decode, encode};
use crate::embedding::{Embedding, EmbeddingSpace, Segment};
use crate::fuzz::{self, LIVENESS};

fn embeddings(n: usize, dim: usize) -> Vec<Embedding> {
    (0..n)
        .map(|i| Embedding {
            space: EmbeddingSpace::ALL[i % 4],
            segment: (i % 2 == 1)
                .then(|| Segment::new(i as f64 * 2.0, i as f64 * 2.0 + 2.0).unwrap()),
            vector: (0..dim).map(|d| (i + d) as f32 * 0.25 - 1.0).collect(),
        })
        .collect()
}

#[test]
fn fuzz_cache_payloads() {
    let seeds: Vec<Vec<u8>> = [(0, 4), (1, 8), (5, 3), (3, 16)]
        .iter()
        .map(|&(n, d)| encode(&embeddings(n, d)).unwrap())
        .collect();
    fuzz::run(
        "embedding-cache payloads",
        fuzz::cases(4000),
        fuzz::mutated(seeds),
        |(_, payload)| {
            let len = payload.len();
            let input = payload.clone();
            let (decoded, peak) = fuzz::within(LIVENESS, move || fuzz::measure(|| decode(&input)))?;
            // The vectors are as large as their bytes; each embedding adds a fixed header.
            prop_assert!(
                peak <= 8 * len + (16 << 10),
                "{} bytes held for {}",
                peak,
                len
            );
            match decoded {
                Ok(e) => {
                    // The format is canonical: what decodes encodes to the same bytes.
                    let again = encode(&e).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert_eq!(again, payload);
                    Ok(format!("ok, {} embeddings", e.len().min(5)))
                }
                Err(why) => {
                    prop_assert!(!why.is_empty());
                    Ok("refused".into())
                }
            }
        },
    );
}
