//! Media kinds and formats, header probing, size limits and validation.
//!
//! Formats are detected from the bytes, never from the file name alone. A name whose extension
//! disagrees with the content is accepted by content and the disagreement is reported.
//!
//! ```
//! use crossmodal_core::{validate_media, ErrorKind, MediaLimits};
//! let limits = MediaLimits::default();
//! let err = validate_media(b"", Some("empty.png"), &limits).unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::InvalidInput);
//! let err = validate_media(b"GIF89a....", Some("x.gif"), &limits).unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::Unsupported);
//! ```

mod format;
mod mp3;
mod probe;
mod source;

pub use format::{MediaFormat, MediaKind};
pub(crate) use probe::HeadProbe;
pub use probe::{MediaProbe, probe};

use serde::{Deserialize, Serialize};
use std::fs::File;
use std::path::Path;

use crate::asset::AssetId;
use crate::error::{Error, ErrorKind, Result};

/// Size and duration limits applied before anything is stored or embedded.
///
/// The defaults follow Marengo's limits on Bedrock: images up to 5 MB, video and audio up to
/// 2 GiB and 2 hours (Marengo 2.7's bounds; 3.0 allows more, raise them if you use only 3.0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaLimits {
    /// Largest image, bytes.
    pub max_image_bytes: u64,
    /// Largest video, bytes.
    pub max_video_bytes: u64,
    /// Largest audio file, bytes.
    pub max_audio_bytes: u64,
    /// Longest video or audio, seconds.
    pub max_duration_sec: f64,
}

impl Default for MediaLimits {
    fn default() -> Self {
        MediaLimits {
            max_image_bytes: 5 * 1000 * 1000,
            max_video_bytes: 2 * 1024 * 1024 * 1024,
            max_audio_bytes: 2 * 1024 * 1024 * 1024,
            max_duration_sec: 2.0 * 3600.0,
        }
    }
}

impl MediaLimits {
    /// The byte limit for a kind.
    pub fn max_bytes(&self, kind: MediaKind) -> u64 {
        match kind {
            MediaKind::Image => self.max_image_bytes,
            MediaKind::Video => self.max_video_bytes,
            MediaKind::Audio => self.max_audio_bytes,
        }
    }

    /// Sets one byte limit for every kind.
    pub fn with_max_bytes(mut self, bytes: u64) -> Self {
        self.max_image_bytes = bytes;
        self.max_video_bytes = bytes;
        self.max_audio_bytes = bytes;
        self
    }
}

/// The checks of [`validate_media`] that need only the first bytes and the size: not empty, a
/// supported format by content (`head` holds the file's first bytes, 64 are enough to sniff),
/// within the size limit of its kind. Lets a caller refuse an oversized file before reading it.
///
/// ```
/// use crossmodal_core::{MediaLimits, media::check_size};
/// let png_head = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
/// let limits = MediaLimits::default().with_max_bytes(1000);
/// assert!(check_size(png_head, 1000, &limits).is_ok());
/// assert_eq!(
///     check_size(png_head, 1001, &limits).unwrap_err().kind(),
///     crossmodal_core::ErrorKind::InvalidInput
/// );
/// ```
pub fn check_size(head: &[u8], size: u64, limits: &MediaLimits) -> Result<MediaFormat> {
    if size == 0 || head.is_empty() {
        return Err(Error::invalid_input("file is empty"));
    }
    let sniffed = MediaFormat::sniff(head).ok_or_else(|| {
        Error::unsupported(
            "not a supported media format (png, jpeg, webp, mp4, mov, wav, mp3, m4a) by content",
        )
    })?;
    let max = limits.max_bytes(sniffed.kind());
    if size > max {
        return Err(Error::invalid_input(format!(
            "{} file is {size} bytes, the limit for {} is {max} bytes",
            sniffed,
            sniffed.kind()
        )));
    }
    Ok(sniffed)
}

/// A file that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedMedia {
    /// Content hash.
    pub asset_id: AssetId,
    /// Header facts; `probe.format` is the format by content.
    pub probe: MediaProbe,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Set when the file name's extension disagrees with the content, e.g.
    /// `"name says .png, content is jpg"`.
    pub extension_mismatch: Option<String>,
}

/// Validates a media file: not empty, a supported format by content, within the size limit, a
/// header that parses, within the duration limit. `file_name` is only used to report an
/// extension that disagrees with the content.
///
/// Errors: `InvalidInput` (empty, too large, too long), `Unsupported` (unknown format),
/// `Corrupt` (header does not parse, truncated).
pub fn validate_media(
    bytes: &[u8],
    file_name: Option<&str>,
    limits: &MediaLimits,
) -> Result<ValidatedMedia> {
    let with_name = |e: Error| match file_name {
        Some(n) => e.with_context("file", n),
        None => e,
    };
    check_size(bytes, bytes.len() as u64, limits).map_err(with_name)?;
    let mut head = probe::probe_head(bytes).map_err(with_name)?;
    head.feed(0, bytes);
    finish_validation(
        head,
        AssetId::from_content(bytes),
        bytes.len() as u64,
        file_name,
        limits,
    )
}

/// The checks of a file that need only its header, read in pieces from `file` (`size` bytes,
/// opened from `path`): not empty, a supported format by content, within the size limit of its
/// kind (refused before anything else is read), a header that parses. What remains (an MP3's
/// frame count) is fed the content by the caller's one read of the file, then
/// [`finish_validation`] gives the result. Blocking.
pub(crate) fn check_file_head(
    file: &File,
    size: u64,
    path: &Path,
    file_name: Option<&str>,
    limits: &MediaLimits,
) -> Result<HeadProbe> {
    let with_name = |e: Error| match file_name {
        Some(n) => e.with_context("file", n),
        None => e,
    };
    let src = source::FileSource::new(file, size, path);
    let head = source::Source::read(&src, 0, 64)?;
    check_size(&head, size, limits).map_err(with_name)?;
    probe::probe_head(&src).map_err(with_name)
}

/// Finishes a validation begun by the header probe: the probe's last checks, the duration
/// limit, the extension check.
pub(crate) fn finish_validation(
    head: HeadProbe,
    asset_id: AssetId,
    size_bytes: u64,
    file_name: Option<&str>,
    limits: &MediaLimits,
) -> Result<ValidatedMedia> {
    let with_name = |e: Error| match file_name {
        Some(n) => e.with_context("file", n),
        None => e,
    };
    let probe = head.finish().map_err(with_name)?;
    if let Some(d) = probe.duration_sec
        && d > limits.max_duration_sec
    {
        return Err(with_name(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "media is {d:.1} s long, the limit is {:.1} s",
                limits.max_duration_sec
            ),
        )));
    }
    let extension_mismatch = file_name.and_then(|name| extension_mismatch(name, probe.format));
    Ok(ValidatedMedia {
        asset_id,
        probe,
        size_bytes,
        extension_mismatch,
    })
}

/// Describes how `name`'s extension disagrees with `actual`, or `None` if it agrees.
fn extension_mismatch(name: &str, actual: MediaFormat) -> Option<String> {
    let ext = std::path::Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("");
    match MediaFormat::from_extension(ext) {
        Some(claimed) if claimed == actual => None,
        _ if ext.is_empty() => Some(format!("name has no extension, content is {actual}")),
        _ => Some(format!("name says .{ext}, content is {actual}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mismatch_is_described() {
        assert_eq!(extension_mismatch("a.JPEG", MediaFormat::Jpeg), None);
        assert_eq!(
            extension_mismatch("a.png", MediaFormat::Jpeg).as_deref(),
            Some("name says .png, content is jpg")
        );
        assert_eq!(
            extension_mismatch("noext", MediaFormat::Wav).as_deref(),
            Some("name has no extension, content is wav")
        );
    }
}
