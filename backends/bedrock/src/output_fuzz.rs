//! Fuzz target of the Marengo output parser (run with the unit tests; `CROSSMODAL_FUZZ_CASES`
//! raises the case count): valid outputs of both documented shapes, for every media kind and
//! both models, mutated as JSON (values replaced by hostile ones, items removed or repeated)
//! and as bytes. The parser must answer `ModelFailed` naming the invocation, or embeddings that
//! are usable (the requested dimension, finite, not all zeros, valid segments, requested
//! spaces); never panic, hang or hold far more than the output's size.

use crossmodal_core::fuzz::{self, LIVENESS};
use crossmodal_core::{EmbeddingSpace, ErrorKind, MediaKind, Segment, check_vector};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::adapter::{Marengo27, Marengo30, MarengoAdapter};
use crate::output::Expect;

const DIM: usize = 4;
const ARN: &str = "arn:aws:bedrock:us-east-1:123456789012:async-invoke/fuzzfuzzfuzz";
const OUT: &str = "s3://bucket/out/fuzzfuzzfuzz/output.json";

fn item(option: Option<&str>, scope: Option<&str>, start: f64, end: f64, seed: f32) -> Value {
    let mut v = json!({
        "embedding": (0..DIM).map(|i| seed + i as f32 * 0.125).collect::<Vec<f32>>(),
        "startSec": start,
        "endSec": end,
    });
    if let Some(o) = option {
        v["embeddingOption"] = json!(o);
    }
    if let Some(s) = scope {
        v["embeddingScope"] = json!(s);
    }
    v
}

/// (model, kind, requested spaces, a valid output).
fn seeds() -> Vec<(
    &'static dyn MarengoAdapter,
    MediaKind,
    Vec<EmbeddingSpace>,
    Value,
)> {
    use EmbeddingSpace::*;
    vec![
        (
            &Marengo30,
            MediaKind::Video,
            vec![Visual, Audio, Transcription],
            json!({"data": [
                item(Some("visual"), Some("clip"), 0.0, 6.0, 0.1),
                item(Some("visual"), Some("clip"), 6.0, 9.5, 0.2),
                item(Some("audio"), Some("clip"), 0.0, 9.5, 0.3),
                item(Some("transcription"), Some("clip"), 0.0, 9.5, 0.4),
                item(Some("visual"), Some("asset"), 0.0, 9.5, 0.5),
            ]}),
        ),
        (
            &Marengo30,
            MediaKind::Audio,
            vec![Audio],
            json!({"data": {"embedding": [0.1, 0.2, 0.3, 0.4], "embeddingOption": ["audio"],
                            "embeddingScope": ["clip"], "startSec": 0, "endSec": 10}}),
        ),
        (
            &Marengo30,
            MediaKind::Image,
            vec![Visual],
            json!({"data": [{"embedding": [0.5, -0.5, 0.25, 1.0]}]}),
        ),
        (
            &Marengo27,
            MediaKind::Video,
            vec![VisualText, Visual, Audio],
            json!({"data": [
                item(Some("visual-text"), None, 0.0, 6.0, 0.1),
                item(Some("visual-image"), None, 0.0, 6.0, 0.2),
                item(Some("audio"), None, 0.0, 6.0, 0.3),
            ]}),
        ),
        (
            &Marengo27,
            MediaKind::Audio,
            vec![Audio],
            json!({"data": [item(None, None, 0.0, 8.0, 0.7), item(None, None, 8.0, 10.0, 0.8)]}),
        ),
    ]
}

fn expect(adapter: &'static dyn MarengoAdapter) -> Expect<'static> {
    Expect {
        adapter,
        dimension: DIM,
        invocation: ARN,
        output: Some(OUT),
    }
}

#[test]
fn fuzz_marengo_outputs() {
    let seeds = seeds();
    for (adapter, kind, spaces, doc) in &seeds {
        let body = serde_json::to_vec(doc).unwrap();
        let out = expect(*adapter).media(&body, *kind, spaces);
        assert!(out.is_ok(), "seed {kind} must parse: {out:?}");
    }
    let docs: Vec<Value> = seeds.iter().map(|s| s.3.clone()).collect();
    let contexts: Vec<_> = seeds.iter().map(|s| (s.0, s.1, s.2.clone())).collect();
    fuzz::run(
        "Marengo output (media and query)",
        fuzz::cases(2000),
        fuzz::json_mutated(docs),
        |(seed, body)| {
            let Some((adapter, kind, spaces)) = contexts.get(seed).cloned() else {
                return Ok("no seed".into());
            };
            let len = body.len();
            let input = body.clone();
            let requested = spaces.clone();
            let ((media, query), peak) = fuzz::within(LIVENESS, move || {
                fuzz::measure(|| {
                    let ex = expect(adapter);
                    (ex.media(&input, kind, &requested), ex.single_vector(&input))
                })
            })?;
            // serde_json's tree is a few times the text; the embeddings are smaller than it.
            prop_assert!(
                peak <= 16 * len + (64 << 10),
                "{} bytes held for {}",
                peak,
                len
            );
            let label = match media {
                Ok(out) => {
                    prop_assert!(!out.embeddings.is_empty());
                    for e in &out.embeddings {
                        prop_assert!(check_vector(&e.vector, DIM).is_ok(), "{:?}", e.vector);
                        if kind != MediaKind::Image {
                            prop_assert!(spaces.contains(&e.space), "{} not asked for", e.space);
                        }
                        if let Some(s) = e.segment {
                            prop_assert!(Segment::new(s.start_sec, s.end_sec).is_ok());
                        }
                    }
                    format!("{kind}: ok ({} skipped)", out.skipped.len().min(3))
                }
                Err(e) => {
                    prop_assert_eq!(e.kind(), ErrorKind::ModelFailed, "{}", e);
                    prop_assert_eq!(e.context_value("invocation"), Some(ARN));
                    prop_assert_eq!(e.context_value("output"), Some(OUT));
                    format!("{kind}: ModelFailed")
                }
            };
            match query {
                Ok(v) => prop_assert!(check_vector(&v, DIM).is_ok()),
                Err(e) => prop_assert_eq!(e.kind(), ErrorKind::ModelFailed, "{}", e),
            }
            Ok(label)
        },
    );
}
