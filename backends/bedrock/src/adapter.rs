//! One small adapter per Marengo version: request bodies, option names, limits.
//!
//! Everything that differs between Marengo Embed 2.7 (flat body) and 3.0 (body nested under the
//! input type) lives here, behind [`MarengoAdapter`]; the provider never branches on the version.

use crossmodal_core::{EmbeddingSpace, Error, MediaKind, ModelInfo, Result};
use serde_json::{Map, Value, json};

use crate::config::{MarengoModel, Segmentation, TextTruncate};

/// Where the model reads a piece of media from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum MediaSource {
    /// Inline, base64-encoded bytes.
    Base64(String),
    /// An object in S3 in the model's region.
    S3 {
        uri: String,
        bucket_owner: Option<String>,
    },
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
    pub segmentation: Segmentation,
    pub asset_embeddings: bool,
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
    /// Checks segmentation values against the version's ranges.
    fn check_segmentation(&self, segmentation: Segmentation) -> Result<()>;
    /// The body of a text request.
    fn text_body(&self, text: &str, truncate: TextTruncate) -> Value;
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

fn check_range(what: &str, value: f64, min: f64, max: f64, model: MarengoModel) -> Result<()> {
    if !value.is_finite() || value < min || value > max {
        return Err(Error::invalid_input(format!(
            "{model}: {what} must be between {min} and {max} seconds, not {value}"
        )));
    }
    Ok(())
}

fn kind_name(kind: MediaKind) -> &'static str {
    kind.as_str()
}

/// Marengo Embed 2.7: flat body (`inputType`, `inputText`, `mediaSource`, `useFixedLengthSec`,
/// `minClipSec`, `embeddingOption`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Marengo27;

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

    fn check_segmentation(&self, segmentation: Segmentation) -> Result<()> {
        match segmentation {
            Segmentation::ModelDefault => Ok(()),
            Segmentation::Fixed { duration_sec } => check_range(
                "fixed segment length (useFixedLengthSec)",
                duration_sec,
                2.0,
                10.0,
                self.model(),
            ),
            Segmentation::Dynamic { min_duration_sec } => {
                check_range(
                    "minimum clip length (minClipSec)",
                    min_duration_sec,
                    1.0,
                    5.0,
                    self.model(),
                )?;
                if min_duration_sec.fract() != 0.0 {
                    return Err(Error::invalid_input(format!(
                        "{}: minimum clip length (minClipSec) is a whole number of seconds, not {min_duration_sec}",
                        self.model()
                    )));
                }
                Ok(())
            }
        }
    }

    fn text_body(&self, text: &str, truncate: TextTruncate) -> Value {
        json!({
            "inputType": "text",
            "inputText": text,
            "textTruncate": truncate.as_str(),
        })
    }

    fn media_body(&self, req: &MediaRequest<'_>) -> Value {
        let mut body = Map::new();
        body.insert("inputType".into(), json!(kind_name(req.kind)));
        body.insert("mediaSource".into(), req.source.to_json());
        match req.kind {
            MediaKind::Image => {}
            MediaKind::Video => {
                match req.segmentation {
                    Segmentation::ModelDefault => {}
                    Segmentation::Fixed { duration_sec } => {
                        body.insert("useFixedLengthSec".into(), json!(duration_sec));
                    }
                    Segmentation::Dynamic { min_duration_sec } => {
                        body.insert("minClipSec".into(), json!(min_duration_sec as u64));
                    }
                }
                body.insert(
                    "embeddingOption".into(),
                    Value::Array(self.option_names(req.spaces)),
                );
            }
            MediaKind::Audio => {
                // 2.7 audio has no embeddingOption (it only yields `audio`) and no minClipSec:
                // without a fixed length it is split evenly into segments near 10 s.
                if let Segmentation::Fixed { duration_sec } = req.segmentation {
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

    fn check_segmentation(&self, segmentation: Segmentation) -> Result<()> {
        match segmentation {
            Segmentation::ModelDefault => Ok(()),
            Segmentation::Fixed { duration_sec } => check_range(
                "fixed segment duration (durationSec)",
                duration_sec,
                1.0,
                10.0,
                self.model(),
            ),
            Segmentation::Dynamic { min_duration_sec } => check_range(
                "dynamic minimum duration (minDurationSec)",
                min_duration_sec,
                1.0,
                5.0,
                self.model(),
            ),
        }
    }

    fn text_body(&self, text: &str, _truncate: TextTruncate) -> Value {
        json!({ "inputType": "text", "text": { "inputText": text } })
    }

    fn media_body(&self, req: &MediaRequest<'_>) -> Value {
        let name = kind_name(req.kind);
        let mut inner = Map::new();
        inner.insert("mediaSource".into(), req.source.to_json());
        if req.kind != MediaKind::Image {
            match req.segmentation {
                Segmentation::ModelDefault => {}
                Segmentation::Fixed { duration_sec } => {
                    inner.insert(
                        "segmentation".into(),
                        json!({ "method": "fixed", "fixed": { "durationSec": duration_sec } }),
                    );
                }
                Segmentation::Dynamic { min_duration_sec } => {
                    inner.insert(
                        "segmentation".into(),
                        json!({ "method": "dynamic", "dynamic": { "minDurationSec": min_duration_sec } }),
                    );
                }
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

    #[test]
    fn v27_bodies_are_flat() {
        let a = Marengo27;
        assert_eq!(
            a.text_body("a castle", TextTruncate::Error),
            json!({"inputType":"text","inputText":"a castle","textTruncate":"none"})
        );
        let src = s3();
        let body = a.media_body(&MediaRequest {
            kind: MediaKind::Video,
            source: &src,
            spaces: &[VisualText, Visual, Audio],
            segmentation: Segmentation::Fixed { duration_sec: 6.0 },
            asset_embeddings: false,
        });
        assert_eq!(
            body,
            json!({"inputType":"video",
                   "mediaSource":{"s3Location":{"uri":"s3://b/k.mp4","bucketOwner":"123456789012"}},
                   "useFixedLengthSec":6.0,
                   "embeddingOption":["visual-text","visual-image","audio"]})
        );
        let src = MediaSource::Base64("AAAA".into());
        let body = a.media_body(&MediaRequest {
            kind: MediaKind::Audio,
            source: &src,
            spaces: &[Audio],
            segmentation: Segmentation::Dynamic {
                min_duration_sec: 4.0,
            },
            asset_embeddings: false,
        });
        assert_eq!(
            body,
            json!({"inputType":"audio","mediaSource":{"base64String":"AAAA"}})
        );
    }

    #[test]
    fn v30_bodies_are_nested() {
        let a = Marengo30;
        assert_eq!(
            a.text_body("a castle", TextTruncate::End),
            json!({"inputType":"text","text":{"inputText":"a castle"}})
        );
        let src = s3();
        let body = a.media_body(&MediaRequest {
            kind: MediaKind::Video,
            source: &src,
            spaces: &[Visual, Audio, Transcription],
            segmentation: Segmentation::Dynamic {
                min_duration_sec: 2.0,
            },
            asset_embeddings: true,
        });
        assert_eq!(
            body,
            json!({"inputType":"video","video":{
                "mediaSource":{"s3Location":{"uri":"s3://b/k.mp4","bucketOwner":"123456789012"}},
                "segmentation":{"method":"dynamic","dynamic":{"minDurationSec":2.0}},
                "embeddingOption":["visual","audio","transcription"],
                "embeddingScope":["clip","asset"]}})
        );
        let img = MediaSource::Base64("AAAA".into());
        let body = a.media_body(&MediaRequest {
            kind: MediaKind::Image,
            source: &img,
            spaces: &[Visual],
            segmentation: Segmentation::Fixed { duration_sec: 3.0 },
            asset_embeddings: false,
        });
        assert_eq!(
            body,
            json!({"inputType":"image","image":{"mediaSource":{"base64String":"AAAA"}}})
        );
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
