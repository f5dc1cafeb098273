//! Embedding spaces, segments, vectors, model descriptions and the [`EmbeddingProvider`] trait.

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use crate::asset::AssetId;
use crate::error::{Error, Result};
use crate::media::{MediaFormat, MediaKind};
use crate::store::{MediaKey, MediaRef, MediaStore, clamp_range};
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

/// Where a provider gets the bytes of a [`MediaInput`] when it needs them.
#[derive(Clone)]
#[non_exhaustive]
pub enum MediaContent {
    /// Bytes already in memory (an uploaded query, [`IngestItem::bytes`](crate::IngestItem::bytes)).
    Bytes(Bytes),
    /// A local file, read when asked (in ranges, or whole up to a bound).
    File(PathBuf),
    /// An object of a media store, read when asked (in ranges, or whole up to a bound).
    Stored {
        /// The store.
        store: Arc<dyn MediaStore>,
        /// The object's key.
        key: MediaKey,
    },
}

impl fmt::Debug for MediaContent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MediaContent::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            MediaContent::File(p) => f.debug_tuple("File").field(p).finish(),
            MediaContent::Stored { key, .. } => f.debug_struct("Stored").field("key", key).finish(),
        }
    }
}

/// A piece of media handed to a provider: what it is (content hash, format, size, duration),
/// where the original is stored, and a way to read its bytes when the provider needs them.
///
/// The bytes are not carried: a multi-GB video stays on disk or in the store. A provider that
/// reads media in place (Bedrock reading an S3 object of its own region) uses
/// [`stored`](Self::stored) and [`stored_region`](Self::stored_region) and reads nothing; one
/// that sends media inline asks for the bytes with a bound ([`read_all`](Self::read_all)), or
/// reads them piece by piece ([`read_range`](Self::read_range)).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use crossmodal_core::{ErrorKind, MediaFormat, MediaInput};
/// let input = MediaInput::from_bytes(MediaFormat::Png, &b"pretend png"[..]);
/// assert_eq!(input.size_bytes, 11);
/// assert_eq!(input.read_all(1024).await.unwrap(), &b"pretend png"[..]);
/// assert_eq!(input.read_range(8..11).await.unwrap(), &b"png"[..]);
/// // More than the caller can hold: refused before anything is read.
/// assert_eq!(input.read_all(4).await.unwrap_err().kind(), ErrorKind::InvalidInput);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct MediaInput {
    /// Content hash of the bytes.
    pub asset_id: AssetId,
    /// Detected format.
    pub format: MediaFormat,
    /// Size of the content, bytes.
    pub size_bytes: u64,
    /// Where the original is stored, if it is (an `s3://` URI lets Bedrock read it in place).
    pub stored: Option<MediaRef>,
    /// The region of the store holding [`stored`](Self::stored), when it has one
    /// ([`MediaStore::region`]).
    pub stored_region: Option<String>,
    /// Duration from the header, for audio and video.
    pub duration_sec: Option<f64>,
    content: MediaContent,
}

impl MediaInput {
    /// Media of `format` whose content is `content` (`size_bytes` long, hashing to `asset_id`).
    pub fn new(
        asset_id: AssetId,
        format: MediaFormat,
        size_bytes: u64,
        content: MediaContent,
    ) -> MediaInput {
        MediaInput {
            asset_id,
            format,
            size_bytes,
            stored: None,
            stored_region: None,
            duration_sec: None,
            content,
        }
    }

    /// Media of `format` held in memory; the id is the SHA-256 of `bytes` (hashed here: for
    /// large bytes call it off the async workers). The bytes are not validated.
    pub fn from_bytes(format: MediaFormat, bytes: impl Into<Bytes>) -> MediaInput {
        let bytes = bytes.into();
        MediaInput::new(
            AssetId::from_content(&bytes),
            format,
            bytes.len() as u64,
            MediaContent::Bytes(bytes),
        )
    }

    /// Records where the original is stored, and the store's region (if it has one).
    pub fn with_stored(mut self, media: MediaRef, region: Option<String>) -> MediaInput {
        self.stored = Some(media);
        self.stored_region = region;
        self
    }

    /// Sets the duration (from the header).
    pub fn with_duration(mut self, duration_sec: Option<f64>) -> MediaInput {
        self.duration_sec = duration_sec;
        self
    }

    /// The kind of media.
    pub fn kind(&self) -> MediaKind {
        self.format.kind()
    }

    /// Where the bytes come from.
    pub fn content(&self) -> &MediaContent {
        &self.content
    }

    /// The bytes, when they are already in memory.
    pub fn in_memory(&self) -> Option<&Bytes> {
        match &self.content {
            MediaContent::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The stored original when it is an `s3://` object that a provider of `region` can read
    /// in place: the store's region is `region`, or unknown (a location given by hand).
    pub fn s3_location_in(&self, region: &str) -> Option<&MediaRef> {
        self.stored.as_ref().filter(|m| {
            m.uri.scheme() == "s3" && self.stored_region.as_deref().is_none_or(|r| r == region)
        })
    }

    /// All the bytes, refusing (`InvalidInput`, before reading anything) content larger than
    /// `max_bytes`: what a provider sending media inline calls with its request quota, so
    /// memory stays bounded whatever the file size.
    pub async fn read_all(&self, max_bytes: u64) -> Result<Bytes> {
        if self.size_bytes > max_bytes {
            return Err(Error::invalid_input(format!(
                "the {} is {} bytes, more than the {max_bytes} bytes that may be read into \
                 memory for it",
                self.kind(),
                self.size_bytes
            ))
            .with_context("asset", self.asset_id.short()));
        }
        let bytes = match &self.content {
            MediaContent::Bytes(b) => b.clone(),
            MediaContent::File(path) => {
                let (path, size) = (path.clone(), self.size_bytes);
                tokio::task::spawn_blocking(move || read_file_range(&path, 0..size))
                    .await
                    .map_err(crate::error::join_error)??
            }
            MediaContent::Stored { store, key } => {
                store
                    .get_range(key, 0..self.size_bytes.saturating_add(1))
                    .await?
            }
        };
        if bytes.len() as u64 != self.size_bytes {
            return Err(Error::new(
                crate::ErrorKind::Conflict,
                format!(
                    "the {} has {} bytes, not the {} its input says (changed since it was hashed)",
                    self.kind(),
                    bytes.len(),
                    self.size_bytes
                ),
            )
            .with_context("asset", self.asset_id.short()));
        }
        Ok(bytes)
    }

    /// Bytes `range.start..range.end` (the end clamped to the size): what a provider that
    /// uploads or streams large media reads a part at a time. `InvalidInput` for a range that
    /// ends before it starts or starts past the end.
    pub async fn read_range(&self, range: Range<u64>) -> Result<Bytes> {
        let part = clamp_range(&range, self.size_bytes)?;
        match &self.content {
            MediaContent::Bytes(b) => Ok(b.slice(part.start as usize..part.end as usize)),
            MediaContent::File(path) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || read_file_range(&path, part))
                    .await
                    .map_err(crate::error::join_error)?
            }
            MediaContent::Stored { store, key } => store.get_range(key, part).await,
        }
    }
}

/// Reads `range` of the file at `path` (blocking).
fn read_file_range(path: &std::path::Path, range: Range<u64>) -> Result<Bytes> {
    use std::io::{Read, Seek, SeekFrom};
    let io = |e: std::io::Error| Error::from(e).with_context("path", path.display());
    let mut file = std::fs::File::open(path).map_err(io)?;
    file.seek(SeekFrom::Start(range.start)).map_err(io)?;
    let want = range.end - range.start;
    let mut buf = Vec::with_capacity(usize::try_from(want).unwrap_or(0));
    file.take(want).read_to_end(&mut buf).map_err(io)?;
    if buf.len() as u64 != want {
        return Err(Error::new(
            crate::ErrorKind::Conflict,
            "the file shrank since it was hashed",
        )
        .with_context("path", path.display()));
    }
    Ok(Bytes::from(buf))
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
