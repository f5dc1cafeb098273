//! Media kinds and formats, detected from the bytes.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// What a media file is, as the search routes see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    /// A still picture (PNG, JPEG, WEBP).
    Image,
    /// A moving picture, usually with sound (MP4, MOV).
    Video,
    /// Sound only (WAV, MP3, M4A).
    Audio,
}

impl MediaKind {
    /// All kinds, in a stable order.
    pub const ALL: [MediaKind; 3] = [MediaKind::Image, MediaKind::Video, MediaKind::Audio];

    /// Lower-case name (`image`, `video`, `audio`), as stored in catalogs and indexes.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Video => "video",
            MediaKind::Audio => "audio",
        }
    }
}

impl fmt::Display for MediaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MediaKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "image" => Ok(MediaKind::Image),
            "video" => Ok(MediaKind::Video),
            "audio" => Ok(MediaKind::Audio),
            other => Err(Error::invalid_input(format!(
                "unknown media kind {other:?} (expected image, video or audio)"
            ))),
        }
    }
}

/// A supported container format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MediaFormat {
    /// PNG image.
    Png,
    /// JPEG image.
    Jpeg,
    /// WEBP image.
    Webp,
    /// MPEG-4 video.
    Mp4,
    /// QuickTime video.
    Mov,
    /// RIFF WAVE audio.
    Wav,
    /// MPEG-1/2 layer III audio.
    Mp3,
    /// MPEG-4 audio.
    M4a,
}

impl MediaFormat {
    /// All formats, in a stable order.
    pub const ALL: [MediaFormat; 8] = [
        MediaFormat::Png,
        MediaFormat::Jpeg,
        MediaFormat::Webp,
        MediaFormat::Mp4,
        MediaFormat::Mov,
        MediaFormat::Wav,
        MediaFormat::Mp3,
        MediaFormat::M4a,
    ];

    /// The kind of media this format holds.
    pub fn kind(self) -> MediaKind {
        match self {
            MediaFormat::Png | MediaFormat::Jpeg | MediaFormat::Webp => MediaKind::Image,
            MediaFormat::Mp4 | MediaFormat::Mov => MediaKind::Video,
            MediaFormat::Wav | MediaFormat::Mp3 | MediaFormat::M4a => MediaKind::Audio,
        }
    }

    /// The canonical file extension, without a dot.
    pub fn extension(self) -> &'static str {
        match self {
            MediaFormat::Png => "png",
            MediaFormat::Jpeg => "jpg",
            MediaFormat::Webp => "webp",
            MediaFormat::Mp4 => "mp4",
            MediaFormat::Mov => "mov",
            MediaFormat::Wav => "wav",
            MediaFormat::Mp3 => "mp3",
            MediaFormat::M4a => "m4a",
        }
    }

    /// The MIME type to serve the file with.
    pub fn mime_type(self) -> &'static str {
        match self {
            MediaFormat::Png => "image/png",
            MediaFormat::Jpeg => "image/jpeg",
            MediaFormat::Webp => "image/webp",
            MediaFormat::Mp4 => "video/mp4",
            MediaFormat::Mov => "video/quicktime",
            MediaFormat::Wav => "audio/wav",
            MediaFormat::Mp3 => "audio/mpeg",
            MediaFormat::M4a => "audio/mp4",
        }
    }

    /// The format a file extension names (case-insensitive, with or without the dot).
    ///
    /// ```
    /// use crossmodal_core::MediaFormat;
    /// assert_eq!(MediaFormat::from_extension(".JPEG"), Some(MediaFormat::Jpeg));
    /// assert_eq!(MediaFormat::from_extension("gif"), None);
    /// ```
    pub fn from_extension(ext: &str) -> Option<MediaFormat> {
        let ext = ext.trim_start_matches('.').to_ascii_lowercase();
        Some(match ext.as_str() {
            "png" => MediaFormat::Png,
            "jpg" | "jpeg" => MediaFormat::Jpeg,
            "webp" => MediaFormat::Webp,
            "mp4" | "m4v" => MediaFormat::Mp4,
            "mov" | "qt" => MediaFormat::Mov,
            "wav" | "wave" => MediaFormat::Wav,
            "mp3" => MediaFormat::Mp3,
            "m4a" => MediaFormat::M4a,
            _ => return None,
        })
    }

    /// Detects the format from the first bytes of a file (magic numbers), never from its name.
    ///
    /// Returns `None` for anything that is not one of the supported formats.
    ///
    /// ```
    /// use crossmodal_core::MediaFormat;
    /// let png_magic = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    /// assert_eq!(MediaFormat::sniff(png_magic), Some(MediaFormat::Png));
    /// assert_eq!(MediaFormat::sniff(b"hello world"), None);
    /// ```
    pub fn sniff(bytes: &[u8]) -> Option<MediaFormat> {
        if infer::image::is_png(bytes) {
            Some(MediaFormat::Png)
        } else if infer::image::is_jpeg(bytes) {
            Some(MediaFormat::Jpeg)
        } else if infer::image::is_webp(bytes) {
            Some(MediaFormat::Webp)
        } else if infer::audio::is_wav(bytes) {
            Some(MediaFormat::Wav)
        } else if infer::audio::is_m4a(bytes) {
            Some(MediaFormat::M4a)
        } else if infer::video::is_mov(bytes) {
            Some(MediaFormat::Mov)
        } else if infer::video::is_mp4(bytes) {
            Some(MediaFormat::Mp4)
        } else if infer::audio::is_mp3(bytes) {
            Some(MediaFormat::Mp3)
        } else {
            None
        }
    }
}

impl fmt::Display for MediaFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.extension())
    }
}

impl FromStr for MediaFormat {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        MediaFormat::from_extension(s).ok_or_else(|| {
            Error::unsupported(format!(
                "unknown media format {s:?} (supported: png, jpg, webp, mp4, mov, wav, mp3, m4a)"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_round_trips_through_its_extension() {
        for f in MediaFormat::ALL {
            assert_eq!(MediaFormat::from_extension(f.extension()), Some(f));
            assert_eq!(f.to_string().parse::<MediaFormat>().unwrap(), f);
        }
    }

    #[test]
    fn kinds_parse_case_insensitively() {
        assert_eq!("VIDEO".parse::<MediaKind>().unwrap(), MediaKind::Video);
        assert!("gif".parse::<MediaKind>().is_err());
    }

    #[test]
    fn sniff_rejects_text_and_empty() {
        assert_eq!(MediaFormat::sniff(b""), None);
        assert_eq!(MediaFormat::sniff(b"<html></html>"), None);
    }
}
