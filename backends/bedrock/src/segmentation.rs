//! How video and audio are cut into segments, per kind, in whole seconds.
//!
//! Marengo cuts video at shot boundaries (`dynamic`) or into fixed lengths; audio has no shots,
//! so it is cut into fixed lengths only (Marengo 3.0 refuses `dynamic` for audio). The two kinds
//! are therefore configured apart, with types that cannot express dynamic audio. Marengo 3.0's
//! `durationSec` and `minDurationSec` are Integer, so every length here is a whole number of
//! seconds; a string such as `fixed:2.5` is refused with `InvalidInput`.

use std::fmt;
use std::str::FromStr;

use crossmodal_core::{Error, Result};

/// How video is segmented (one vector per segment per space).
///
/// The ranges are checked when the configuration is built: Marengo 3.0 takes fixed segments of
/// 1-10 s (`durationSec`) and a dynamic minimum of 1-5 s (`minDurationSec`); Marengo 2.7 takes
/// fixed segments of 2-10 s (`useFixedLengthSec`) and a dynamic minimum clip of 1-5 s
/// (`minClipSec`).
///
/// ```
/// use crossmodal_bedrock::VideoSegmentation;
/// let s: VideoSegmentation = "dynamic:3".parse().unwrap();
/// assert_eq!(s, VideoSegmentation::Dynamic { min_duration_sec: 3 });
/// assert_eq!(s.to_string(), "dynamic:3");
/// assert!("fixed:2.5".parse::<VideoSegmentation>().is_err()); // whole seconds only
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum VideoSegmentation {
    /// Leave segmentation to the model (shot boundaries).
    #[default]
    ModelDefault,
    /// Segments of a fixed length.
    Fixed {
        /// Segment length, whole seconds.
        duration_sec: u32,
    },
    /// Segments cut at shot boundaries, each at least this long.
    Dynamic {
        /// Shortest segment, whole seconds.
        min_duration_sec: u32,
    },
}

/// How audio is segmented: fixed lengths or the model's default (Marengo 3.0 about 10 s;
/// Marengo 2.7 splits evenly near 10 s, 16 s into 2 x 8 s). There is no dynamic audio
/// segmentation.
///
/// Ranges: Marengo 3.0 fixed 1-10 s (`durationSec`), Marengo 2.7 fixed 2-10 s
/// (`useFixedLengthSec`).
///
/// ```
/// use crossmodal_bedrock::AudioSegmentation;
/// assert_eq!("fixed:5".parse::<AudioSegmentation>().unwrap(), AudioSegmentation::Fixed { duration_sec: 5 });
/// let err = "dynamic:4".parse::<AudioSegmentation>().unwrap_err();
/// assert!(err.to_string().contains("video only"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum AudioSegmentation {
    /// Leave segmentation to the model.
    #[default]
    ModelDefault,
    /// Segments of a fixed length.
    Fixed {
        /// Segment length, whole seconds.
        duration_sec: u32,
    },
}

impl fmt::Display for VideoSegmentation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VideoSegmentation::ModelDefault => f.write_str("default"),
            VideoSegmentation::Fixed { duration_sec } => write!(f, "fixed:{duration_sec}"),
            VideoSegmentation::Dynamic { min_duration_sec } => {
                write!(f, "dynamic:{min_duration_sec}")
            }
        }
    }
}

impl fmt::Display for AudioSegmentation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AudioSegmentation::ModelDefault => f.write_str("default"),
            AudioSegmentation::Fixed { duration_sec } => write!(f, "fixed:{duration_sec}"),
        }
    }
}

/// Parses a whole number of seconds, refusing fractions with a message that says why.
fn whole_seconds(text: &str, what: &str) -> Result<u32> {
    let text = text.trim().trim_end_matches('s');
    if let Ok(n) = text.parse::<u32>() {
        return Ok(n);
    }
    if let Ok(x) = text.parse::<f64>() {
        if x.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&x) {
            // "6.0" is six whole seconds (and is sent as 6).
            return Ok(x as u32);
        }
        return Err(Error::invalid_input(format!(
            "{what} {text:?} is not a whole number of seconds: Marengo 3.0 takes Integer \
             durations (durationSec, minDurationSec)"
        )));
    }
    Err(Error::invalid_input(format!(
        "{what} {text:?} is not a number of seconds"
    )))
}

impl FromStr for VideoSegmentation {
    type Err = Error;

    /// `default`, `fixed:<seconds>` or `dynamic:<seconds>` (whole seconds).
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        match s.split_once(':') {
            None if s == "default" => Ok(VideoSegmentation::ModelDefault),
            Some(("fixed", n)) => Ok(VideoSegmentation::Fixed {
                duration_sec: whole_seconds(n, "fixed segment length")?,
            }),
            Some(("dynamic", n)) => Ok(VideoSegmentation::Dynamic {
                min_duration_sec: whole_seconds(n, "dynamic minimum segment length")?,
            }),
            _ => Err(Error::invalid_input(format!(
                "video segmentation {s:?}: expected default, fixed:<seconds> or \
                 dynamic:<seconds>"
            ))),
        }
    }
}

impl FromStr for AudioSegmentation {
    type Err = Error;

    /// `default` or `fixed:<seconds>` (whole seconds).
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        match s.split_once(':') {
            None if s == "default" => Ok(AudioSegmentation::ModelDefault),
            Some(("fixed", n)) => Ok(AudioSegmentation::Fixed {
                duration_sec: whole_seconds(n, "fixed segment length")?,
            }),
            Some(("dynamic", _)) => Err(Error::invalid_input(format!(
                "audio segmentation {s:?}: dynamic (shot-boundary) segmentation is video only; \
                 use fixed:<seconds> or default for audio"
            ))),
            _ => Err(Error::invalid_input(format!(
                "audio segmentation {s:?}: expected default or fixed:<seconds>"
            ))),
        }
    }
}

/// The segmentation part of the options fingerprint (the embedding-cache key).
///
/// Configurations that send what a single setting used to send keep their old key, so an
/// upgrade does not re-embed (and pay for) an unchanged library: both kinds default ->
/// `default`; both fixed at the same length -> `fixed:<n>`; dynamic video with default audio ->
/// `dynamic:<n>`. Any other pair is `video:<v>,audio:<a>`.
pub(crate) fn fingerprint(video: VideoSegmentation, audio: AudioSegmentation) -> String {
    match (video, audio) {
        (VideoSegmentation::ModelDefault, AudioSegmentation::ModelDefault) => "default".into(),
        (
            VideoSegmentation::Fixed { duration_sec: v },
            AudioSegmentation::Fixed { duration_sec: a },
        ) if v == a => {
            format!("fixed:{v}")
        }
        (VideoSegmentation::Dynamic { .. }, AudioSegmentation::ModelDefault) => video.to_string(),
        _ => format!("video:{video},audio:{audio}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossmodal_core::ErrorKind;

    #[test]
    fn parse_and_display_round_trip() {
        for s in ["default", "fixed:6", "dynamic:4"] {
            let v: VideoSegmentation = s.parse().unwrap();
            assert_eq!(v.to_string(), s);
        }
        for s in ["default", "fixed:10"] {
            let a: AudioSegmentation = s.parse().unwrap();
            assert_eq!(a.to_string(), s);
        }
        for s in ["fixed:6s", "fixed:6.0", " fixed:6 "] {
            assert_eq!(
                s.parse::<VideoSegmentation>().unwrap(),
                VideoSegmentation::Fixed { duration_sec: 6 },
                "{s}"
            );
        }
    }

    #[test]
    fn fractions_and_dynamic_audio_are_refused_as_invalid_input() {
        for s in ["fixed:2.5", "dynamic:1.5", "fixed:x", "shots", "fixed:-1"] {
            let err = s.parse::<VideoSegmentation>().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{s}: {err}");
        }
        let err = "fixed:2.5".parse::<VideoSegmentation>().unwrap_err();
        assert!(err.to_string().contains("whole number"), "{err}");
        let err = "dynamic:4".parse::<AudioSegmentation>().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains("video only"), "{err}");
        assert!("fixed:7.5".parse::<AudioSegmentation>().is_err());
    }

    #[test]
    fn fingerprints_keep_the_keys_of_the_single_setting() {
        use AudioSegmentation as A;
        use VideoSegmentation as V;
        // What `Segmentation::{ModelDefault, Fixed{6.0}, Dynamic{4.0}}` fingerprinted as.
        assert_eq!(fingerprint(V::ModelDefault, A::ModelDefault), "default");
        assert_eq!(
            fingerprint(V::Fixed { duration_sec: 6 }, A::Fixed { duration_sec: 6 }),
            "fixed:6"
        );
        assert_eq!(
            fingerprint(
                V::Dynamic {
                    min_duration_sec: 4
                },
                A::ModelDefault
            ),
            "dynamic:4"
        );
        assert_eq!(
            fingerprint(
                V::Dynamic {
                    min_duration_sec: 4
                },
                A::Fixed { duration_sec: 10 }
            ),
            "video:dynamic:4,audio:fixed:10"
        );
        assert_eq!(
            fingerprint(V::Fixed { duration_sec: 6 }, A::ModelDefault),
            "video:fixed:6,audio:default"
        );
    }
}
