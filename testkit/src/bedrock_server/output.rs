//! The server's vectors, segments and output items.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Malformed, SourceVector};
use crate::bedrock_schema::{Parsed, Seg, Version};

/// The deterministic vector for `seed` parts.
pub fn vector(dim: usize, parts: &[&[u8]]) -> Vec<f32> {
    let mut base = Sha256::new();
    for p in parts {
        base.update((p.len() as u64).to_le_bytes());
        base.update(p);
    }
    let base = base.finalize();
    let mut out = Vec::with_capacity(dim);
    let mut counter = 0u64;
    while out.len() < dim {
        let mut h = Sha256::new();
        h.update(base);
        h.update(counter.to_le_bytes());
        counter += 1;
        for chunk in h.finalize().chunks_exact(4) {
            if out.len() == dim {
                break;
            }
            let u = u32::from_le_bytes(chunk.try_into().unwrap());
            out.push((u as f64 / u32::MAX as f64 * 2.0 - 1.0) as f32);
        }
    }
    out
}

/// The vector the server returns for a text.
pub fn text_vector(version: Version, text: &str) -> Vec<f32> {
    vector(version.dimension(), &[b"text", text.as_bytes()])
}

/// The vector the server returns for a composed text + image query (3.0 `text_image`).
pub fn text_image_vector(version: Version, text: &str, image: &[u8]) -> Vec<f32> {
    vector(
        version.dimension(),
        &[b"text_image", text.as_bytes(), &Sha256::digest(image)],
    )
}

/// The vector the server returns for media content, option and segment.
pub fn media_vector(version: Version, bytes: &[u8], option: &str, segment: usize) -> Vec<f32> {
    media_vector_of_digest(version, &Sha256::digest(bytes), option, segment)
}

fn media_vector_of_digest(
    version: Version,
    digest: &[u8],
    option: &str,
    segment: usize,
) -> Vec<f32> {
    vector(
        version.dimension(),
        &[b"media", digest, option.as_bytes(), &segment.to_le_bytes()],
    )
}

/// Duration the server assumes for media: one second per 1000 bytes, 1..=600 s.
pub fn media_duration(bytes: &[u8]) -> f64 {
    (bytes.len() as f64 / 1000.0).clamp(1.0, 600.0)
}

/// The segments the server cuts a whole file of `duration` seconds into.
pub fn segments(version: Version, input_type: &str, seg: Seg, duration: f64) -> Vec<(f64, f64)> {
    let step = match (version, input_type, seg) {
        (_, _, Seg::Fixed(d)) => d,
        (Version::V27, "audio", _) => {
            let n = (duration / 10.0).round().max(1.0);
            duration / n
        }
        (_, "audio", _) => 10.0,
        (_, _, Seg::Dynamic(m)) => m + 1.5,
        (Version::V27, _, Seg::Default) => 6.0,
        (Version::V30, _, Seg::Default) => 5.5,
    };
    let mut out = Vec::new();
    let mut t = 0.0;
    while t < duration - 1e-9 {
        let end = (t + step).min(duration);
        out.push((round3(t), round3(end)));
        t += step;
    }
    out
}

/// The segments of a request, with their index in the whole file: the whole-file segments that
/// overlap the processing window, clipped to it (times stay relative to the file's start).
pub fn window_segments(
    version: Version,
    parsed: &Parsed,
    duration: f64,
) -> Vec<(usize, (f64, f64))> {
    let start = parsed.window_start.unwrap_or(0.0);
    let end = parsed.window_end.unwrap_or(duration).min(duration);
    segments(version, &parsed.input_type, parsed.seg, duration)
        .into_iter()
        .enumerate()
        .filter(|(_, (s, e))| *e > start + 1e-9 && *s < end - 1e-9)
        .map(|(i, (s, e))| (i, (round3(s.max(start)), round3(e.min(end)))))
        .collect()
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn clip_item(version: Version, kind: &str, option: &str, vector: Value, clip: (f64, f64)) -> Value {
    let mut item = json!({ "embedding": vector, "startSec": clip.0, "endSec": clip.1 });
    match version {
        // 2.7 names the option of video items; audio has only one.
        Version::V27 if kind == "video" => item["embeddingOption"] = json!(option),
        Version::V27 => {}
        Version::V30 => {
            item["embeddingOption"] = json!(option);
            item["embeddingScope"] = json!("clip");
        }
    }
    item
}

/// The output items of a media request.
pub fn media_items(version: Version, parsed: &Parsed, bytes: &[u8]) -> Vec<Value> {
    let digest = Sha256::digest(bytes);
    let vec =
        |option: &str, seg: usize| json!(media_vector_of_digest(version, &digest, option, seg));
    match parsed.input_type.as_str() {
        "image" => vec![json!({ "embedding": vec("image", 0) })],
        kind => {
            let duration = media_duration(bytes);
            let mut items = Vec::new();
            for (i, clip) in window_segments(version, parsed, duration) {
                for option in &parsed.options {
                    items.push(clip_item(version, kind, option, vec(option, i), clip));
                }
            }
            if parsed.asset_scope {
                for option in &parsed.options {
                    items.push(json!({
                        "embedding": vec(option, usize::MAX),
                        "embeddingOption": option,
                        "embeddingScope": "asset",
                        "startSec": 0.0,
                        "endSec": round3(duration),
                    }));
                }
            }
            items
        }
    }
}

/// The output items of a media request, from a [`VectorSource`](super::VectorSource)'s vectors:
/// the same shapes as [`media_items`].
pub fn source_items(version: Version, parsed: &Parsed, vectors: &[SourceVector]) -> Vec<Value> {
    if parsed.input_type == "image" {
        return vectors
            .iter()
            .take(1)
            .map(|v| json!({ "embedding": v.vector }))
            .collect();
    }
    let kind = parsed.input_type.as_str();
    let asked = |v: &&SourceVector| {
        // 2.7 audio takes no option and yields `audio` only.
        parsed.options.contains(&v.option)
            || (version == Version::V27 && kind == "audio" && v.option == "audio")
    };
    let duration = vectors
        .iter()
        .filter_map(|v| v.clip.map(|c| c.1))
        .fold(0.0, f64::max);
    let (w_start, w_end) = (
        parsed.window_start.unwrap_or(0.0),
        parsed.window_end.unwrap_or(f64::INFINITY),
    );
    let mut items = Vec::new();
    for v in vectors.iter().filter(asked) {
        match v.clip {
            Some((start, end)) => {
                if end <= w_start || start >= w_end {
                    continue;
                }
                let clip = (start.max(w_start), end.min(w_end));
                items.push(clip_item(version, kind, &v.option, json!(v.vector), clip));
            }
            None if parsed.asset_scope => items.push(json!({
                "embedding": v.vector,
                "embeddingOption": v.option,
                "embeddingScope": "asset",
                "startSec": 0.0,
                "endSec": duration,
            })),
            None => {}
        }
    }
    items
}

/// `output.json` of a job: `{"data": items}`, damaged as asked.
pub(super) fn render_output(items: Vec<Value>, malformed: Option<Malformed>) -> Vec<u8> {
    let mut items = items;
    match malformed {
        None => {}
        Some(Malformed::EmptyData) => items.clear(),
        Some(Malformed::NotJson) => return b"this is not json {".to_vec(),
        Some(Malformed::WrongDimension) => {
            items[0]["embedding"].as_array_mut().unwrap().pop();
        }
        Some(Malformed::MissingEmbedding) => {
            items[0].as_object_mut().unwrap().remove("embedding");
        }
        Some(Malformed::MissingStartSec) => {
            items[0].as_object_mut().unwrap().remove("startSec");
        }
        Some(Malformed::NaN) => {
            items[0]["embedding"][0] = json!("__NAN__");
        }
        Some(Malformed::DataAsObject) => {
            // The newest AWS page's shape: `data` one item, options and scopes as lists.
            let mut first = items.swap_remove(0);
            for key in ["embeddingOption", "embeddingScope"] {
                if let Some(v) = first.get(key).cloned() {
                    first[key] = json!([v]);
                }
            }
            return json!({ "data": first }).to_string().into_bytes();
        }
        Some(Malformed::ExtraItems) => {
            // What `embeddingType: fused_embedding` adds, and a space nobody asked for.
            let mut fused = items[0].clone();
            fused["embeddingOption"] = json!("fused");
            let mut foreign = items[0].clone();
            foreign["embeddingOption"] = json!("a-space-of-a-newer-model");
            items.push(fused);
            items.push(foreign);
        }
    }
    let text = json!({ "data": items }).to_string();
    text.replace("\"__NAN__\"", "NaN").into_bytes()
}

/// `manifest.json` of a job (Bedrock writes it beside `output.json`).
pub(super) fn render_manifest(invocation_arn: &str, items: usize) -> Vec<u8> {
    json!({ "invocationArn": invocation_arn, "outputs": ["output.json"], "items": items })
        .to_string()
        .into_bytes()
}
