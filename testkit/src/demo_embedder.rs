//! The offline demo embedder used by the examples when no Marengo credentials are present.
//!
//! It is NOT a multimodal model and does not look at pixels or sound: every sample the examples
//! generate carries a sidecar caption (`<file>.caption.txt` with `visual:`, `audio:` and
//! `speech:` lines), and this embedder hashes the caption's words into a 512-dimensional vector
//! (feature hashing). Text queries are hashed the same way, so a query matches a sample when they
//! share words. It exists so the whole pipeline (validate, store, embed, index, route, fuse)
//! runs on a machine without a cloud account; results are lexical, not semantic.

use async_trait::async_trait;
use crossmodal_core::{
    AssetId, Embedding, EmbeddingProvider, EmbeddingSpace, Error, MediaInput, MediaKind, ModelInfo,
    Result, Segment, normalized,
};
use std::collections::HashMap;
use std::path::Path;

/// Where the caption of `media` lives: `<media>.caption.txt`.
pub fn caption_path(media: &Path) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("{}.caption.txt", media.display()))
}

/// A sample's caption, one line per aspect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caption {
    pub visual: String,
    pub audio: String,
    pub speech: String,
}

impl Caption {
    /// Parses `visual: ...`, `audio: ...`, `speech: ...` lines.
    pub fn parse(text: &str) -> Caption {
        let mut c = Caption::default();
        for line in text.lines() {
            if let Some((key, value)) = line.split_once(':') {
                let value = value.trim().to_string();
                match key.trim() {
                    "visual" => c.visual = value,
                    "audio" => c.audio = value,
                    "speech" => c.speech = value,
                    _ => {}
                }
            }
        }
        c
    }

    /// The caption text as a sidecar file holds it.
    pub fn to_text(&self) -> String {
        format!(
            "visual: {}\naudio: {}\nspeech: {}\n",
            self.visual, self.audio, self.speech
        )
    }
}

/// Deterministic caption-hash vectors; see the module docs. Announce it as not semantic.
pub struct CaptionHashEmbedder {
    model: ModelInfo,
    captions: HashMap<AssetId, Caption>,
}

const DIM: usize = 512;
const SEGMENT_SEC: f64 = 2.0;
const STOP_WORDS: [&str; 12] = [
    "the", "and", "with", "for", "from", "that", "this", "over", "into", "onto", "its", "are",
];

impl CaptionHashEmbedder {
    /// The model description: shaped like Marengo 3.0 (512 dims; visual, audio, transcription),
    /// under a model id that says what it is.
    pub fn model_info() -> ModelInfo {
        ModelInfo {
            id: "crossmodal-demo/caption-hash-v1 (not a model)".to_string(),
            ..ModelInfo::marengo_3_0()
        }
    }

    /// An embedder knowing no captions yet.
    #[allow(clippy::new_without_default)] // "new" is the documented way to start one
    pub fn new() -> Self {
        CaptionHashEmbedder {
            model: Self::model_info(),
            captions: HashMap::new(),
        }
    }

    /// Registers the caption of a file's content.
    pub fn add_caption(&mut self, content: &[u8], caption: Caption) {
        self.captions
            .insert(AssetId::from_content(content), caption);
    }

    /// Registers every `<file>` under `dir` (recursively) that has a `<file>.caption.txt`
    /// beside it; returns how many.
    pub fn add_dir(&mut self, dir: &Path) -> std::io::Result<usize> {
        let mut n = 0;
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                n += self.add_dir(&path)?;
                continue;
            }
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.ends_with(".caption.txt") {
                continue;
            }
            let sidecar = caption_path(&path);
            if sidecar.exists() {
                let caption = Caption::parse(&std::fs::read_to_string(&sidecar)?);
                self.add_caption(&std::fs::read(&path)?, caption);
                n += 1;
            }
        }
        Ok(n)
    }

    /// Feature-hashes the words of `text` into a unit vector (FNV-1a; the hash's top bit picks
    /// the sign). Words shorter than 3 letters and a few stop words are dropped.
    pub fn hash_words(text: &str) -> Vec<f32> {
        let mut v = vec![0f32; DIM];
        let lower = text.to_lowercase();
        for word in lower.split(|c: char| !c.is_alphanumeric()) {
            if word.len() < 3 || STOP_WORDS.contains(&word) {
                continue;
            }
            // A crude stem so "storming" meets "storm" and "cars" meets "car".
            let stem = word
                .strip_suffix("ing")
                .or_else(|| word.strip_suffix('s'))
                .filter(|s| s.len() >= 3)
                .unwrap_or(word);
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in stem.bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
            let sign = if h >> 63 == 1 { -1.0 } else { 1.0 };
            v[(h % DIM as u64) as usize] += sign;
        }
        if v.iter().all(|x| *x == 0.0) {
            // No usable words: a fixed direction rather than a zero vector.
            v[0] = 1.0;
        }
        normalized(&v)
    }

    /// The caption vector nudged per segment, so clips of one file differ a little.
    fn segment_vector(base: &[f32], salt: u64) -> Vec<f32> {
        let mut state = salt.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let nudged: Vec<f32> = base
            .iter()
            .map(|x| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let noise = ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5;
                x + 0.02 * noise
            })
            .collect();
        normalized(&nudged)
    }
}

#[async_trait]
impl EmbeddingProvider for CaptionHashEmbedder {
    fn model(&self) -> &ModelInfo {
        &self.model
    }

    async fn embed_text(&self, text: &str) -> Result<Vec<f32>> {
        Ok(Self::hash_words(text))
    }

    async fn embed_media(&self, media: &MediaInput) -> Result<Vec<Embedding>> {
        let caption = self.captions.get(&media.asset_id).ok_or_else(|| {
            Error::unsupported(
                "the offline demo embedder only knows the generated samples (they carry captions); \
                 use Marengo on Bedrock for real media",
            )
            .with_context("asset", media.asset_id.short())
        })?;
        let segments: Vec<Option<Segment>> = match media.kind() {
            MediaKind::Image => vec![None],
            _ => {
                let duration = media.duration_sec.unwrap_or(SEGMENT_SEC).max(0.1);
                let n = (duration / SEGMENT_SEC).ceil().max(1.0) as usize;
                (0..n)
                    .map(|i| {
                        let start = i as f64 * SEGMENT_SEC;
                        Segment::new(start, (start + SEGMENT_SEC).min(duration)).ok()
                    })
                    .collect()
            }
        };
        let mut out = Vec::new();
        for space in self.model.spaces_for(media.kind()) {
            let text = match space {
                EmbeddingSpace::Visual | EmbeddingSpace::VisualText => &caption.visual,
                EmbeddingSpace::Audio => &caption.audio,
                EmbeddingSpace::Transcription => &caption.speech,
            };
            if text.is_empty() {
                continue; // a silent clip has no speech vector
            }
            let base = Self::hash_words(text);
            for (i, segment) in segments.iter().enumerate() {
                out.push(Embedding {
                    space: *space,
                    segment: *segment,
                    vector: Self::segment_vector(&base, i as u64 + 1),
                });
            }
        }
        Ok(out)
    }
}
