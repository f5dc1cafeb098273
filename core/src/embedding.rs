//! Embedding spaces, segments, vectors, model descriptions and the [`EmbeddingProvider`] trait.

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use crate::asset::AssetId;
use crate::error::{Error, Result};
use crate::media::{MediaFormat, MediaKind};
use crate::store::MediaRef;
use crate::vector::check_vector;

/// Which kind of vector a record holds.
///
/// Marengo Embed 2.7 yields `visual-image` ([`Visual`](EmbeddingSpace::Visual)), `visual-text`
/// ([`VisualText`](EmbeddingSpace::VisualText)) and `audio`; Marengo Embed 3.0 yields `visual`,
/// `audio` and `transcription` (spoken words). A text query embeds into the model's shared space
/// and is compared against whichever space a routing rule names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmbeddingSpace {
    /// What things look like (Marengo 2.7 `visual-image`, 3.0 `visual`).
    Visual,
    /// What happens on screen, for text-to-video search (Marengo 2.7 `visual-text`).
    VisualText,
    /// Music, speech and ambient sound (`audio`).
    Audio,
    /// Spoken words (Marengo 3.0 `transcription`).
    Transcription,
}

impl EmbeddingSpace {
    /// All spaces, in a stable order.
    pub const ALL: [EmbeddingSpace; 4] = [
        EmbeddingSpace::Visual,
        EmbeddingSpace::VisualText,
        EmbeddingSpace::Audio,
        EmbeddingSpace::Transcription,
    ];

    /// Stable snake-case name, used in file names, index fields and catalogs.
    pub fn as_str(self) -> &'static str {
        match self {
            EmbeddingSpace::Visual => "visual",
            EmbeddingSpace::VisualText => "visual_text",
            EmbeddingSpace::Audio => "audio",
            EmbeddingSpace::Transcription => "transcription",
        }
    }
}

impl fmt::Display for EmbeddingSpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EmbeddingSpace {
    type Err = Error;
    /// Accepts the crate's names and Marengo's option names (`visual-image`, `visual-text`).
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "visual" | "visual-image" | "visual_image" => Ok(EmbeddingSpace::Visual),
            "visual_text" | "visual-text" => Ok(EmbeddingSpace::VisualText),
            "audio" => Ok(EmbeddingSpace::Audio),
            "transcription" => Ok(EmbeddingSpace::Transcription),
            other => Err(Error::invalid_input(format!(
                "unknown embedding space {other:?}"
            ))),
        }
    }
}

/// A clip of a video or audio file, in seconds from its start.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// Start of the clip, seconds.
    pub start_sec: f64,
    /// End of the clip, seconds (`>= start_sec`).
    pub end_sec: f64,
}

impl Segment {
    /// A segment from `start_sec` to `end_sec`; rejects negative, reversed or non-finite bounds.
    ///
    /// ```
    /// use crossmodal_core::Segment;
    /// let s = Segment::new(12.0, 18.0).unwrap();
    /// assert_eq!(s.duration(), 6.0);
    /// assert!(Segment::new(5.0, 1.0).is_err());
    /// ```
    pub fn new(start_sec: f64, end_sec: f64) -> Result<Segment> {
        if !start_sec.is_finite() || !end_sec.is_finite() || start_sec < 0.0 || end_sec < start_sec
        {
            return Err(Error::invalid_input(format!(
                "invalid segment {start_sec}..{end_sec} s"
            )));
        }
        Ok(Segment { start_sec, end_sec })
    }

    /// Length in seconds.
    pub fn duration(&self) -> f64 {
        self.end_sec - self.start_sec
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1}..{:.1} s", self.start_sec, self.end_sec)
    }
}

/// One vector a provider produced for a piece of media.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Embedding {
    /// The space the vector lives in.
    pub space: EmbeddingSpace,
    /// The clip it describes; `None` for a whole image or a whole-asset vector.
    pub segment: Option<Segment>,
    /// The vector itself.
    pub vector: Vec<f32>,
}

/// What an embedding model is: its id, its dimension and which spaces each kind of media yields.
///
/// Vectors of different models never mix: indexes record the model id and dimension they were
/// built with and refuse anything else.
///
/// ```
/// use crossmodal_core::{EmbeddingSpace, MediaKind, ModelInfo};
/// let m = ModelInfo::marengo_3_0();
/// assert_eq!(m.dimension, 512);
/// assert!(m.spaces_for(MediaKind::Video).contains(&EmbeddingSpace::Transcription));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Model id, for example `twelvelabs.marengo-embed-3-0-v1:0`.
    pub id: String,
    /// Vector dimension.
    pub dimension: usize,
    /// Spaces an image yields.
    pub image_spaces: Vec<EmbeddingSpace>,
    /// Spaces a video yields.
    pub video_spaces: Vec<EmbeddingSpace>,
    /// Spaces an audio file yields.
    pub audio_spaces: Vec<EmbeddingSpace>,
    /// Longest text query accepted before any call, in characters: a generous bound that never
    /// rejects text within the model's token limit (the provider enforces the exact limit).
    pub max_text_chars: usize,
}

impl ModelInfo {
    /// Model id of TwelveLabs Marengo Embed 3.0 on Amazon Bedrock.
    pub const MARENGO_3_0_ID: &'static str = "twelvelabs.marengo-embed-3-0-v1:0";
    /// Model id of TwelveLabs Marengo Embed 2.7 on Amazon Bedrock (end of life 2026-11-30).
    pub const MARENGO_2_7_ID: &'static str = "twelvelabs.marengo-embed-2-7-v1:0";

    /// Whether this is a Marengo 2.7 model (by id, profile id or ARN).
    pub fn is_marengo_2_7(&self) -> bool {
        self.id.contains("marengo-embed-2-7")
    }

    /// Marengo Embed 3.0: 512 dimensions; images yield `visual`, video `visual`, `audio` and
    /// `transcription`, audio `audio` and `transcription`; text up to 500 tokens.
    pub fn marengo_3_0() -> ModelInfo {
        use EmbeddingSpace::*;
        ModelInfo {
            id: Self::MARENGO_3_0_ID.to_string(),
            dimension: 512,
            image_spaces: vec![Visual],
            video_spaces: vec![Visual, Audio, Transcription],
            audio_spaces: vec![Audio, Transcription],
            max_text_chars: 8000,
        }
    }

    /// Marengo Embed 2.7: 1024 dimensions; images yield `visual-image`, video `visual-image`,
    /// `visual-text` and `audio`, audio `audio`; text up to 77 tokens.
    pub fn marengo_2_7() -> ModelInfo {
        use EmbeddingSpace::*;
        ModelInfo {
            id: Self::MARENGO_2_7_ID.to_string(),
            dimension: 1024,
            image_spaces: vec![Visual],
            video_spaces: vec![Visual, VisualText, Audio],
            audio_spaces: vec![Audio],
            max_text_chars: 2000,
        }
    }

    /// The spaces media of `kind` yields.
    pub fn spaces_for(&self, kind: MediaKind) -> &[EmbeddingSpace] {
        match kind {
            MediaKind::Image => &self.image_spaces,
            MediaKind::Video => &self.video_spaces,
            MediaKind::Audio => &self.audio_spaces,
        }
    }

    /// Every space any kind yields, sorted and deduplicated.
    pub fn all_spaces(&self) -> Vec<EmbeddingSpace> {
        let mut all: Vec<EmbeddingSpace> = self
            .image_spaces
            .iter()
            .chain(&self.video_spaces)
            .chain(&self.audio_spaces)
            .copied()
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// Checks a batch of embeddings a provider returned for media of `kind`: dimension,
    /// finiteness, a space the model declares for that kind, and a valid segment.
    pub fn check_embeddings(&self, kind: MediaKind, embeddings: &[Embedding]) -> Result<()> {
        if embeddings.is_empty() {
            return Err(Error::new(
                crate::ErrorKind::ModelFailed,
                format!("model {} returned no embeddings for {kind}", self.id),
            ));
        }
        for e in embeddings {
            check_vector(&e.vector, self.dimension).map_err(|err| {
                Error::new(
                    crate::ErrorKind::ModelFailed,
                    format!("model {} returned a bad vector: {}", self.id, err.message()),
                )
            })?;
            if !self.spaces_for(kind).contains(&e.space) {
                return Err(Error::new(
                    crate::ErrorKind::ModelFailed,
                    format!(
                        "model {} returned a {} vector for {kind}, which it does not declare",
                        self.id, e.space
                    ),
                ));
            }
            if let Some(s) = e.segment {
                Segment::new(s.start_sec, s.end_sec)?;
            }
        }
        Ok(())
    }
}

/// A piece of media handed to a provider: its bytes and, once stored, where it lives.
#[derive(Debug, Clone)]
pub struct MediaInput {
    /// Content hash of the bytes.
    pub asset_id: AssetId,
    /// Detected format.
    pub format: MediaFormat,
    /// The whole file.
    pub bytes: Bytes,
    /// Where the original is stored, if it is (an `s3://` URI lets Bedrock read it in place).
    pub stored: Option<MediaRef>,
    /// Duration from the header, for audio and video.
    pub duration_sec: Option<f64>,
}

impl MediaInput {
    /// The kind of media.
    pub fn kind(&self) -> MediaKind {
        self.format.kind()
    }
}

/// Turns text and media into vectors of one shared space.
///
/// Implementations: `crossmodal_bedrock::MarengoProvider` (TwelveLabs Marengo on Amazon Bedrock).
/// Implementations validate their input before any remote call and return typed errors
/// (`InvalidInput` for empty or over-long text, `Unsupported` for media the model cannot take).
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait EmbeddingProvider: Send + Sync {
    /// The model this provider runs.
    fn model(&self) -> &ModelInfo;

    /// A fingerprint of the options that change the vectors (segmentation, truncation), part of
    /// the embedding-cache key. Empty by default.
    fn options_fingerprint(&self) -> String {
        String::new()
    }

    /// Whether the provider retries temporary errors itself (with its own policy). When true,
    /// [`CachedEmbedder`](crate::CachedEmbedder) does not add a second retry loop on top.
    fn retries_internally(&self) -> bool {
        false
    }

    /// Embeds a text query into the model's shared space.
    async fn embed_text(&self, text: &str) -> Result<Vec<f32>>;

    /// Embeds a media file: one [`Embedding`] per space per segment.
    async fn embed_media(&self, media: &MediaInput) -> Result<Vec<Embedding>>;

    /// Embeds a composed query, an image and a text that modifies it ("this character, but at
    /// night"), into one vector of the space image queries search (Marengo 3.0's `text_image`
    /// input). [`Query::text_image`](crate::Query::text_image) calls it.
    ///
    /// The default returns [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported): a model
    /// without composed inputs says so instead of guessing.
    async fn embed_text_image(&self, text: &str, image: &MediaInput) -> Result<Vec<f32>> {
        let _ = (text, image);
        Err(Error::unsupported(format!(
            "model {} cannot embed a text and an image together (composed queries need a model \
             with a text+image input, such as Marengo Embed 3.0's text_image)",
            self.model().id
        )))
    }
}

/// Validates a text query against the generic rules (not empty, not only white space, at most
/// `max_chars` characters) and returns it trimmed.
pub fn check_text(text: &str, max_chars: usize) -> Result<&str> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(Error::invalid_input("query text is empty"));
    }
    let chars = trimmed.chars().count();
    if chars > max_chars {
        return Err(Error::invalid_input(format!(
            "query text has {chars} characters, the limit is {max_chars}"
        )));
    }
    Ok(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marengo_option_names_parse() {
        assert_eq!(
            "visual-image".parse::<EmbeddingSpace>().unwrap(),
            EmbeddingSpace::Visual
        );
        assert_eq!(
            "visual-text".parse::<EmbeddingSpace>().unwrap(),
            EmbeddingSpace::VisualText
        );
        for s in EmbeddingSpace::ALL {
            assert_eq!(s.as_str().parse::<EmbeddingSpace>().unwrap(), s);
        }
    }

    #[test]
    fn check_embeddings_rejects_undeclared_space_and_bad_vectors() {
        let m = ModelInfo {
            dimension: 2,
            ..ModelInfo::marengo_3_0()
        };
        let ok = Embedding {
            space: EmbeddingSpace::Visual,
            segment: None,
            vector: vec![1.0, 0.0],
        };
        assert!(
            m.check_embeddings(MediaKind::Image, std::slice::from_ref(&ok))
                .is_ok()
        );
        let wrong_space = Embedding {
            space: EmbeddingSpace::Audio,
            ..ok.clone()
        };
        assert!(
            m.check_embeddings(MediaKind::Image, &[wrong_space])
                .is_err()
        );
        let nan = Embedding {
            vector: vec![f32::NAN, 0.0],
            ..ok
        };
        let err = m.check_embeddings(MediaKind::Image, &[nan]).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::ModelFailed);
        assert!(m.check_embeddings(MediaKind::Image, &[]).is_err());
    }

    #[test]
    fn text_checks() {
        assert!(check_text("   ", 10).is_err());
        assert_eq!(check_text("  castle ", 10).unwrap(), "castle");
        assert!(check_text("a very long query", 5).is_err());
    }
}
