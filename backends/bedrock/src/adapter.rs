//! One small adapter per Marengo version: request bodies, option names, limits.
//!
//! Everything that differs between Marengo Embed 2.7 (flat body) and 3.0 (body nested under the
//! input type) lives here, behind [`MarengoAdapter`]; the provider never branches on the version.

use crossmodal_core::{EmbeddingSpace, Error, MediaKind, ModelInfo, Result};
use serde_json::{Map, Value, json};

use crate::config::TextTruncate;
use crate::model::MarengoModel;
use crate::options::ProcessingWindow;
use crate::segmentation::{AudioSegmentation, VideoSegmentation};

/// Where the model reads a piece of media from.
#[derive(Clone, PartialEq)]
pub(crate) enum MediaSource {
    /// Inline, base64-encoded bytes.
    Base64(String),
    /// An object in S3 in the model's region.
    S3 {
        uri: String,
        bucket_owner: Option<String>,
    },
}

impl std::fmt::Debug for MediaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MediaSource::Base64(b) => write!(f, "Base64({} characters)", b.len()),
            MediaSource::S3 { uri, bucket_owner } => f
                .debug_struct("S3")
                .field("uri", uri)
                .field("bucket_owner", bucket_owner)
                .finish(),
        }
    }
}

impl MediaSource {
    /// The `mediaSource` object, the same in both versions.
    pub(crate) fn to_json(&self) -> Value {
        match self {
            MediaSource::Base64(b64) => json!({ "base64String": b64 }),
            MediaSource::S3 { uri, bucket_owner } => {
                let mut loc = Map::new();
                loc.insert("uri".into(), Value::String(uri.clone()));
                if let Some(owner) = bucket_owner {
                    loc.insert("bucketOwner".into(), Value::String(owner.clone()));
                }
                json!({ "s3Location": loc })
            }
        }
    }

    /// Short name for logs and spans.
    pub(crate) fn describe(&self) -> &'static str {
        match self {
            MediaSource::Base64(_) => "inline",
            MediaSource::S3 { .. } => "s3",
        }
    }
}

/// A media request in version-neutral terms.
#[derive(Debug, Clone)]
pub(crate) struct MediaRequest<'a> {
    pub kind: MediaKind,
    pub source: &'a MediaSource,
    /// Spaces asked for (video and audio; ignored for images).
    pub spaces: &'a [EmbeddingSpace],
    pub video_segmentation: VideoSegmentation,
    pub audio_segmentation: AudioSegmentation,
    pub asset_embeddings: bool,
    /// Only this part of the file (video and audio).
    pub window: Option<ProcessingWindow>,
}

/// A number of seconds as JSON: an integer when it is whole (`6`, never `6.0`), else a
/// decimal.
pub(crate) fn seconds(value: f64) -> Value {
    if value.fract() == 0.0 && (0.0..9.0e15).contains(&value) {
        json!(value as u64)
    } else {
        json!(value)
    }
}

/// What differs between Marengo versions.
pub(crate) trait MarengoAdapter: Send + Sync + 'static {
    /// The version.
    fn model(&self) -> MarengoModel;
    /// The model as the core sees it.
    fn model_info(&self) -> ModelInfo;
    /// Text limit, tokens.
    fn max_text_tokens(&self) -> usize;
    /// Largest video or audio file (by S3 location), bytes.
    fn max_media_bytes(&self) -> u64;
    /// Longest video or audio file, seconds.
    fn max_media_duration_sec(&self) -> f64;
    /// Whether `embeddingScope` `asset` exists.
    fn supports_asset_scope(&self) -> bool;
    /// Whether an S3 media source must name its bucket owner (`s3Location.bucketOwner`).
    fn requires_bucket_owner(&self) -> bool;
    /// Checks video segmentation values against the version's ranges.
    fn check_video_segmentation(&self, segmentation: VideoSegmentation) -> Result<()>;
    /// Checks audio segmentation values against the version's ranges.
    fn check_audio_segmentation(&self, segmentation: AudioSegmentation) -> Result<()>;
    /// The body of a text request.
    fn text_body(&self, text: &str, truncate: TextTruncate) -> Value;
    /// The body of a composed text + image request (`Unsupported` where the version has none).
    fn text_image_body(&self, text: &str, image: &MediaSource) -> Result<Value>;
    /// The body of an image, video or audio request.
    fn media_body(&self, req: &MediaRequest<'_>) -> Value;
    /// Marengo's option name for a space, if the version has it.
    fn option_name(&self, space: EmbeddingSpace) -> Option<&'static str>;
    /// The space an output item's `embeddingOption` names, if this version has it.
    fn space_of_option(&self, option: &str) -> Option<EmbeddingSpace>;
    /// The space of an output item without `embeddingOption` for media of `kind`, where that is
    /// unambiguous.
    fn implicit_space(&self, kind: MediaKind) -> Option<EmbeddingSpace>;

    /// The option names for `spaces`, in the order given.
    fn option_names(&self, spaces: &[EmbeddingSpace]) -> Vec<Value> {
        spaces
            .iter()
            .filter_map(|s| self.option_name(*s))
            .map(|s| Value::String(s.to_string()))
            .collect()
    }
}

fn check_range(what: &str, value: u32, min: u32, max: u32, model: MarengoModel) -> Result<()> {
    if value < min || value > max {
        return Err(Error::invalid_input(format!(
            "{model}: {what} must be between {min} and {max} whole seconds, not {value}"
        )));
    }
    Ok(())
}

fn kind_name(kind: MediaKind) -> &'static str {
    kind.as_str()
}

/// Marengo Embed 2.7: flat body (`inputType`, `inputText`, `mediaSource`, `startSec`,
/// `lengthSec`, `useFixedLengthSec`, `minClipSec`, `embeddingOption`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Marengo27;

impl Marengo27 {
    /// `minClipSec`'s default: a fixed length below it must be sent with a `minClipSec` of its
    /// own (`useFixedLengthSec` >= `minClipSec`).
    const DEFAULT_MIN_CLIP_SEC: u32 = 4;
}

impl MarengoAdapter for Marengo27 {
    fn model(&self) -> MarengoModel {
        MarengoModel::V2_7
    }

    fn model_info(&self) -> ModelInfo {
        ModelInfo::marengo_2_7()
    }

    fn max_text_tokens(&self) -> usize {
        77
    }

    fn max_media_bytes(&self) -> u64 {
        2_000_000_000
    }

    fn max_media_duration_sec(&self) -> f64 {
        2.0 * 3600.0
    }

    fn supports_asset_scope(&self) -> bool {
        false
    }

    fn requires_bucket_owner(&self) -> bool {
        false
    }

    fn check_video_segmentation(&self, segmentation: VideoSegmentation) -> Result<()> {
        match segmentation {
            VideoSegmentation::Fixed { duration_sec } => check_range(
                "fixed video segment length (useFixedLengthSec)",
                duration_sec,
                2,
                10,
                self.model(),
            ),
            VideoSegmentation::Dynamic { min_duration_sec } => check_range(
                "minimum clip length (minClipSec)",
                min_duration_sec,
                1,
                5,
                self.model(),
            ),
            _ => Ok(()),
        }
    }

    fn check_audio_segmentation(&self, segmentation: AudioSegmentation) -> Result<()> {
        match segmentation {
            AudioSegmentation::Fixed { duration_sec } => check_range(
                "fixed audio segment length (useFixedLengthSec)",
                duration_sec,
                2,
                10,
                self.model(),
            ),
            _ => Ok(()),
        }
    }

    fn text_body(&self, text: &str, truncate: TextTruncate) -> Value {
        json!({
            "inputType": "text",
            "inputText": text,
            "textTruncate": truncate.as_str(),
        })
    }

    fn text_image_body(&self, _text: &str, _image: &MediaSource) -> Result<Value> {
        Err(Error::unsupported(
            "Marengo Embed 2.7 has no composed text+image input (text_image is Marengo 3.0's)",
        ))
    }

    fn media_body(&self, req: &MediaRequest<'_>) -> Value {
        let mut body = Map::new();
        body.insert("inputType".into(), json!(kind_name(req.kind)));
        body.insert("mediaSource".into(), req.source.to_json());
        if req.kind != MediaKind::Image
            && let Some(w) = req.window
        {
            body.insert("startSec".into(), seconds(w.start_sec()));
            body.insert("lengthSec".into(), seconds(w.length_sec()));
        }
        match req.kind {
            MediaKind::Image => {}
            MediaKind::Video => {
                match req.video_segmentation {
                    VideoSegmentation::Fixed { duration_sec } => {
                        body.insert("useFixedLengthSec".into(), json!(duration_sec));
                        // useFixedLengthSec must be >= minClipSec, whose default is 4.
                        if duration_sec < Self::DEFAULT_MIN_CLIP_SEC {
                            body.insert("minClipSec".into(), json!(duration_sec));
                        }
                    }
                    VideoSegmentation::Dynamic { min_duration_sec } => {
                        body.insert("minClipSec".into(), json!(min_duration_sec));
                    }
                    _ => {}
                }
                body.insert(
                    "embeddingOption".into(),
                    Value::Array(self.option_names(req.spaces)),
                );
            }
            MediaKind::Audio => {
                // 2.7 audio has no embeddingOption (it only yields `audio`) and no minClipSec:
                // without a fixed length it is split evenly into segments near 10 s.
                if let AudioSegmentation::Fixed { duration_sec } = req.audio_segmentation {
                    body.insert("useFixedLengthSec".into(), json!(duration_sec));
                }
            }
        }
        Value::Object(body)
    }

    fn option_name(&self, space: EmbeddingSpace) -> Option<&'static str> {
        match space {
            EmbeddingSpace::Visual => Some("visual-image"),
            EmbeddingSpace::VisualText => Some("visual-text"),
            EmbeddingSpace::Audio => Some("audio"),
            EmbeddingSpace::Transcription => None,
        }
    }

    fn space_of_option(&self, option: &str) -> Option<EmbeddingSpace> {
        match option {
            "visual-image" => Some(EmbeddingSpace::Visual),
            "visual-text" => Some(EmbeddingSpace::VisualText),
            "audio" => Some(EmbeddingSpace::Audio),
            _ => None,
        }
    }

    fn implicit_space(&self, kind: MediaKind) -> Option<EmbeddingSpace> {
        match kind {
            MediaKind::Image => Some(EmbeddingSpace::Visual),
            MediaKind::Audio => Some(EmbeddingSpace::Audio),
            MediaKind::Video => None,
        }
    }
}

/// Marengo Embed 3.0: body nested under the input type (`{"inputType":"video","video":{...}}`),
/// `segmentation` objects, `embeddingOption` and `embeddingScope`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Marengo30;

impl MarengoAdapter for Marengo30 {
    fn model(&self) -> MarengoModel {
        MarengoModel::V3_0
    }

    fn model_info(&self) -> ModelInfo {
        ModelInfo::marengo_3_0()
    }

    fn max_text_tokens(&self) -> usize {
        500
    }

    fn max_media_bytes(&self) -> u64 {
        6_000_000_000
    }

    fn max_media_duration_sec(&self) -> f64 {
        4.0 * 3600.0
    }

    fn supports_asset_scope(&self) -> bool {
        true
    }

    fn requires_bucket_owner(&self) -> bool {
        true
    }

    fn check_video_segmentation(&self, segmentation: VideoSegmentation) -> Result<()> {
        match segmentation {
            VideoSegmentation::Fixed { duration_sec } => check_range(
                "fixed video segment duration (durationSec)",
                duration_sec,
                1,
                10,
                self.model(),
            ),
            VideoSegmentation::Dynamic { min_duration_sec } => check_range(
                "dynamic minimum duration (minDurationSec)",
                min_duration_sec,
                1,
                5,
                self.model(),
            ),
            _ => Ok(()),
        }
    }

    fn check_audio_segmentation(&self, segmentation: AudioSegmentation) -> Result<()> {
        match segmentation {
            AudioSegmentation::Fixed { duration_sec } => check_range(
                "fixed audio segment duration (durationSec)",
                duration_sec,
                1,
                10,
                self.model(),
            ),
            _ => Ok(()),
        }
    }

    fn text_body(&self, text: &str, _truncate: TextTruncate) -> Value {
        json!({ "inputType": "text", "text": { "inputText": text } })
    }

    fn text_image_body(&self, text: &str, image: &MediaSource) -> Result<Value> {
        Ok(json!({
            "inputType": "text_image",
            "text_image": { "inputText": text, "mediaSource": image.to_json() },
        }))
    }

    fn media_body(&self, req: &MediaRequest<'_>) -> Value {
        let name = kind_name(req.kind);
        let mut inner = Map::new();
        inner.insert("mediaSource".into(), req.source.to_json());
        if req.kind != MediaKind::Image {
            if let Some(w) = req.window {
                inner.insert("startSec".into(), seconds(w.start_sec()));
                inner.insert("endSec".into(), seconds(w.end_sec()));
            }
            let fixed = |d: u32| json!({ "method": "fixed", "fixed": { "durationSec": d } });
            // Dynamic (shot-boundary) segmentation exists for video only.
            let segmentation = match (req.kind, req.video_segmentation, req.audio_segmentation) {
                (MediaKind::Video, VideoSegmentation::Fixed { duration_sec }, _) => {
                    Some(fixed(duration_sec))
                }
                (MediaKind::Video, VideoSegmentation::Dynamic { min_duration_sec }, _) => Some(
                    json!({ "method": "dynamic", "dynamic": { "minDurationSec": min_duration_sec } }),
                ),
                (MediaKind::Audio, _, AudioSegmentation::Fixed { duration_sec }) => {
                    Some(fixed(duration_sec))
                }
                _ => None,
            };
            if let Some(s) = segmentation {
                inner.insert("segmentation".into(), s);
            }
            inner.insert(
                "embeddingOption".into(),
                Value::Array(self.option_names(req.spaces)),
            );
            let scope = if req.asset_embeddings {
                json!(["clip", "asset"])
            } else {
                json!(["clip"])
            };
            inner.insert("embeddingScope".into(), scope);
        }
        let mut body = Map::new();
        body.insert("inputType".into(), json!(name));
        body.insert(name.into(), Value::Object(inner));
        Value::Object(body)
    }

    fn option_name(&self, space: EmbeddingSpace) -> Option<&'static str> {
        match space {
            EmbeddingSpace::Visual => Some("visual"),
            EmbeddingSpace::Audio => Some("audio"),
            EmbeddingSpace::Transcription => Some("transcription"),
            EmbeddingSpace::VisualText => None,
        }
    }

    fn space_of_option(&self, option: &str) -> Option<EmbeddingSpace> {
        match option {
            "visual" => Some(EmbeddingSpace::Visual),
            "audio" => Some(EmbeddingSpace::Audio),
            "transcription" => Some(EmbeddingSpace::Transcription),
            _ => None,
        }
    }

    fn implicit_space(&self, kind: MediaKind) -> Option<EmbeddingSpace> {
        match kind {
            MediaKind::Image => Some(EmbeddingSpace::Visual),
            MediaKind::Video | MediaKind::Audio => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use EmbeddingSpace::*;

    fn s3() -> MediaSource {
        MediaSource::S3 {
            uri: "s3://b/k.mp4".into(),
            bucket_owner: Some("123456789012".into()),
        }
    }

    fn req<'a>(
        kind: MediaKind,
        source: &'a MediaSource,
        spaces: &'a [EmbeddingSpace],
        video: VideoSegmentation,
        audio: AudioSegmentation,
    ) -> MediaRequest<'a> {
        MediaRequest {
            kind,
            source,
            spaces,
            video_segmentation: video,
            audio_segmentation: audio,
            asset_embeddings: false,
            window: None,
        }
    }

    #[test]
    fn v27_bodies_are_flat() {
        let a = Marengo27;
        assert_eq!(
            a.text_body("a castle", TextTruncate::Error),
            json!({"inputType":"text","inputText":"a castle","textTruncate":"none"})
        );
        let src = s3();
        let body = a.media_body(&req(
            MediaKind::Video,
            &src,
            &[VisualText, Visual, Audio],
            VideoSegmentation::Fixed { duration_sec: 6 },
            AudioSegmentation::ModelDefault,
        ));
        assert_eq!(
            body,
            json!({"inputType":"video",
                   "mediaSource":{"s3Location":{"uri":"s3://b/k.mp4","bucketOwner":"123456789012"}},
                   "useFixedLengthSec":6,
                   "embeddingOption":["visual-text","visual-image","audio"]})
        );
        let src = MediaSource::Base64("AAAA".into());
        let body = a.media_body(&req(
            MediaKind::Audio,
            &src,
            &[Audio],
            VideoSegmentation::Dynamic {
                min_duration_sec: 4,
            },
            AudioSegmentation::ModelDefault,
        ));
        assert_eq!(
            body,
            json!({"inputType":"audio","mediaSource":{"base64String":"AAAA"}})
        );
    }

    #[test]
    fn v27_short_fixed_lengths_carry_their_own_min_clip() {
        let src = s3();
        for (d, min_clip) in [(2, Some(2)), (3, Some(3)), (4, None), (10, None)] {
            let body = Marengo27.media_body(&req(
                MediaKind::Video,
                &src,
                &[Visual],
                VideoSegmentation::Fixed { duration_sec: d },
                AudioSegmentation::ModelDefault,
            ));
            assert_eq!(body["useFixedLengthSec"], json!(d));
            assert_eq!(body.get("minClipSec").cloned(), min_clip.map(|m| json!(m)));
        }
    }

    #[test]
    fn v30_bodies_are_nested_with_integer_durations() {
        let a = Marengo30;
        assert_eq!(
            a.text_body("a castle", TextTruncate::End),
            json!({"inputType":"text","text":{"inputText":"a castle"}})
        );
        let src = s3();
        let body = a.media_body(&MediaRequest {
            asset_embeddings: true,
            ..req(
                MediaKind::Video,
                &src,
                &[Visual, Audio, Transcription],
                VideoSegmentation::Dynamic {
                    min_duration_sec: 2,
                },
                AudioSegmentation::ModelDefault,
            )
        });
        assert_eq!(
            body,
            json!({"inputType":"video","video":{
                "mediaSource":{"s3Location":{"uri":"s3://b/k.mp4","bucketOwner":"123456789012"}},
                "segmentation":{"method":"dynamic","dynamic":{"minDurationSec":2}},
                "embeddingOption":["visual","audio","transcription"],
                "embeddingScope":["clip","asset"]}})
        );
        // `2`, never `2.0`: the wire text has no decimal point.
        assert!(body.to_string().contains("\"minDurationSec\":2}"), "{body}");
        let img = MediaSource::Base64("AAAA".into());
        let body = a.media_body(&req(
            MediaKind::Image,
            &img,
            &[Visual],
            VideoSegmentation::Fixed { duration_sec: 3 },
            AudioSegmentation::Fixed { duration_sec: 3 },
        ));
        assert_eq!(
            body,
            json!({"inputType":"image","image":{"mediaSource":{"base64String":"AAAA"}}})
        );
    }

    #[test]
    fn v30_audio_never_gets_dynamic_segmentation() {
        let src = s3();
        let dynamic = VideoSegmentation::Dynamic {
            min_duration_sec: 4,
        };
        let body = Marengo30.media_body(&req(
            MediaKind::Audio,
            &src,
            &[Audio],
            dynamic,
            AudioSegmentation::ModelDefault,
        ));
        assert!(body["audio"].get("segmentation").is_none(), "{body}");
        let body = Marengo30.media_body(&req(
            MediaKind::Audio,
            &src,
            &[Audio],
            dynamic,
            AudioSegmentation::Fixed { duration_sec: 6 },
        ));
        assert_eq!(
            body["audio"]["segmentation"],
            json!({"method":"fixed","fixed":{"durationSec":6}})
        );
        // ...while the video of the same configuration is dynamic.
        let body = Marengo30.media_body(&req(
            MediaKind::Video,
            &src,
            &[Audio],
            dynamic,
            AudioSegmentation::Fixed { duration_sec: 6 },
        ));
        assert_eq!(body["video"]["segmentation"]["method"], json!("dynamic"));
    }

    #[test]
    fn windows_are_sent_per_version() {
        let src = s3();
        let w = ProcessingWindow::new(30.0, 42.5).unwrap();
        let r = MediaRequest {
            window: Some(w),
            ..req(
                MediaKind::Video,
                &src,
                &[Visual],
                VideoSegmentation::ModelDefault,
                AudioSegmentation::ModelDefault,
            )
        };
        let v3 = Marengo30.media_body(&r);
        assert_eq!(v3["video"]["startSec"], json!(30));
        assert_eq!(v3["video"]["endSec"], json!(42.5));
        let v2 = Marengo27.media_body(&r);
        assert_eq!(v2["startSec"], json!(30));
        assert_eq!(v2["lengthSec"], json!(12.5));
    }

    #[test]
    fn text_image_is_a_3_0_input() {
        let img = MediaSource::Base64("AAAA".into());
        assert_eq!(
            Marengo30.text_image_body("at night", &img).unwrap(),
            json!({"inputType":"text_image","text_image":{"inputText":"at night","mediaSource":{"base64String":"AAAA"}}})
        );
        let err = Marengo27.text_image_body("at night", &img).unwrap_err();
        assert_eq!(err.kind(), crossmodal_core::ErrorKind::Unsupported);
    }

    #[test]
    fn option_names_round_trip_and_parse_as_core_spaces() {
        let adapters: [&dyn MarengoAdapter; 2] = [&Marengo27, &Marengo30];
        for a in adapters {
            for space in a.model_info().all_spaces() {
                let name = a
                    .option_name(space)
                    .expect("every declared space has a name");
                assert_eq!(a.space_of_option(name), Some(space));
                // The core accepts Marengo's option names too.
                assert_eq!(name.parse::<EmbeddingSpace>().unwrap(), space);
            }
        }
        assert_eq!(Marengo27.option_name(Transcription), None);
        assert_eq!(Marengo30.option_name(VisualText), None);
    }
}
