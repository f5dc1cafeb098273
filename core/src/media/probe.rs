//! Header probing: what a media file says about itself, without decoding it.
//!
//! [`probe`] sniffs the format from the magic numbers, parses just enough of the header to report
//! dimensions, duration and which streams are present, and runs cheap structural checks that catch
//! truncated uploads (a PNG without its `IEND` chunk, an MP4 whose last box runs past the end of
//! the file, an MP3 with fewer frames than its Xing header promises, ...).
//!
//! ```
//! use crossmodal_core::ErrorKind;
//! use crossmodal_core::media::probe;
//!
//! assert_eq!(probe(b"").unwrap_err().kind(), ErrorKind::InvalidInput);
//! assert_eq!(probe(b"plain text").unwrap_err().kind(), ErrorKind::Unsupported);
//! // A PNG signature with nothing after it is a truncated PNG.
//! assert_eq!(probe(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").unwrap_err().kind(), ErrorKind::Corrupt);
//! ```

use std::any::Any;
use std::io::Cursor;
use std::panic::{self, AssertUnwindSafe};

use serde::{Deserialize, Serialize};
use symphonia::core::errors::Error as AudioError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::default::formats::WavReader;

use super::format::{MediaFormat, MediaKind};
use super::mp3::{Mp3Scan, probe_mp3_head};
#[cfg(test)]
use super::mp3::{parse_frame_header, xing_frame_count};
use super::source::{Source, SourceReader};
use crate::error::{Error, Result};

/// What a media file's header says about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaProbe {
    /// The format, detected from the content (never from a file name).
    ///
    /// An MP4 or MOV container with no video track but an audio track is reported as
    /// [`MediaFormat::M4a`]; an M4A-branded file that does carry video is reported as
    /// [`MediaFormat::Mp4`].
    pub format: MediaFormat,
    /// Width in pixels, for images and video.
    pub width: Option<u32>,
    /// Height in pixels, for images and video.
    pub height: Option<u32>,
    /// Length in seconds, for video and audio, when the header says it.
    pub duration_sec: Option<f64>,
    /// Whether the file holds moving pictures.
    pub has_video: bool,
    /// Whether the file holds sound.
    pub has_audio: bool,
}

impl MediaProbe {
    /// The kind of media the probed file is (image, video or audio).
    pub fn kind(&self) -> MediaKind {
        self.format.kind()
    }

    fn image(format: MediaFormat, width: u32, height: u32) -> Self {
        MediaProbe {
            format,
            width: Some(width),
            height: Some(height),
            duration_sec: None,
            has_video: false,
            has_audio: false,
        }
    }

    pub(super) fn audio(format: MediaFormat, duration_sec: Option<f64>) -> Self {
        MediaProbe {
            format,
            width: None,
            height: None,
            duration_sec,
            has_video: false,
            has_audio: true,
        }
    }
}

/// Sniffs the format of `bytes` and parses its header.
///
/// Only headers and container structure are read; nothing is decoded. The structural checks are
/// cheap and aimed at truncated files: a PNG must reach its `IEND` chunk, a JPEG must carry its
/// end-of-image marker in its last 64 bytes, RIFF (WEBP, WAV) chunk sizes must fit in the file,
/// MP4/MOV/M4A top-level boxes must tile the file exactly and include a `moov` box, and an MP3
/// with a Xing/Info header must hold at least 95% of the frames that header announces.
///
/// # Errors
///
/// * [`ErrorKind::InvalidInput`](crate::error::ErrorKind::InvalidInput) for empty input.
/// * [`ErrorKind::Unsupported`](crate::error::ErrorKind::Unsupported) when the bytes are not one of
///   the supported formats (see [`MediaFormat`]), or use a feature of one that is not supported
///   (an MPEG layer I/II stream, a WAV codec the parser does not know, an MP4 without any audio or
///   video track).
/// * [`ErrorKind::Corrupt`](crate::error::ErrorKind::Corrupt) when the header does not parse or
///   the file is structurally truncated; the message names the format and what is wrong.
///
/// Never panics, whatever the input (a panic inside a third-party parser is caught and reported
/// as `Corrupt`, unless the binary is built with `panic = "abort"`).
pub fn probe(bytes: &[u8]) -> Result<MediaProbe> {
    let mut head = probe_head(bytes)?;
    head.feed(0, bytes);
    head.finish()
}

/// What the header probe of [`probe_head`] found. Complete for every format but MP3, whose
/// length and truncation check need its frames counted: the ingest pipeline
/// [feeds](Self::feed) them the bytes of the one read that also hashes and stores the file.
pub(crate) struct HeadProbe {
    probe: MediaProbe,
    mp3: Option<Mp3Scan>,
}

impl HeadProbe {
    /// The format by content (final for every format but an MP4/M4A container, where the
    /// tracks decide, which the header probe already did).
    pub(crate) fn format(&self) -> MediaFormat {
        self.probe.format
    }

    /// Whether [`feed`](Self::feed) wants the whole content.
    pub(crate) fn wants_content(&self) -> bool {
        self.mp3.is_some()
    }

    /// The next `chunk` of the content, at `offset` (chunks in order, from the start).
    pub(crate) fn feed(&mut self, offset: u64, chunk: &[u8]) {
        if let Some(scan) = &mut self.mp3 {
            scan.feed(offset, chunk);
        }
    }

    /// The probe, once the content has been fed (for formats that want it).
    pub(crate) fn finish(self) -> Result<MediaProbe> {
        match self.mp3 {
            Some(scan) => scan.finish(),
            None => Ok(self.probe),
        }
    }
}

/// Sniffs the format of `src` and parses its header, reading only what the format needs: box,
/// chunk and tag headers, the movie header of an MP4, the last bytes of a JPEG.
pub(crate) fn probe_head<S: Source + ?Sized>(src: &S) -> Result<HeadProbe> {
    if src.len() == 0 {
        return Err(Error::invalid_input("cannot probe an empty media file"));
    }
    let head = src.read(0, 64)?;
    let format = MediaFormat::sniff(&head).ok_or_else(|| {
        Error::unsupported(
            "not a supported media format (expected PNG, JPEG, WEBP, MP4, MOV, WAV, MP3 or M4A)",
        )
    })?;
    let done = |probe| HeadProbe { probe, mp3: None };
    match format {
        MediaFormat::Png => probe_png(src).map(done),
        MediaFormat::Jpeg => probe_jpeg(src).map(done),
        MediaFormat::Webp => probe_webp(src).map(done),
        MediaFormat::Mp4 | MediaFormat::Mov | MediaFormat::M4a => {
            probe_isobmff(src, format).map(done)
        }
        MediaFormat::Wav => probe_wav(src).map(done),
        MediaFormat::Mp3 => {
            let scan = probe_mp3_head(src)?;
            Ok(HeadProbe {
                probe: MediaProbe::audio(MediaFormat::Mp3, None),
                mp3: Some(scan),
            })
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

pub(super) fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes(b.try_into().ok()?))
}

fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(b.try_into().ok()?))
}

fn be_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let b = bytes.get(at..at.checked_add(8)?)?;
    Some(u64::from_be_bytes(b.try_into().ok()?))
}

pub(super) fn fourcc(bytes: &[u8], at: usize) -> Option<[u8; 4]> {
    bytes.get(at..at.checked_add(4)?)?.try_into().ok()
}

/// A four-character code for messages, with non-printable bytes escaped.
fn show_fourcc(code: [u8; 4]) -> String {
    code.escape_ascii().to_string()
}

/// Runs a third-party parser, turning a panic into a `Corrupt` error.
pub(super) fn guarded<T>(what: &str, parse: impl FnOnce() -> Result<T>) -> Result<T> {
    panic::catch_unwind(AssertUnwindSafe(parse)).unwrap_or_else(|payload| {
        Err(Error::corrupt(format!(
            "{what} header could not be parsed (the parser failed: {})",
            panic_message(payload.as_ref())
        )))
    })
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "unknown panic"
    }
}

fn dimension(value: usize, what: &str, format: &str) -> Result<u32> {
    match u32::try_from(value) {
        Ok(v) if v > 0 => Ok(v),
        _ => Err(Error::corrupt(format!(
            "{format} header gives an invalid {what} of {value}"
        ))),
    }
}

fn image_size<S: Source + ?Sized>(src: &S, format: &str) -> Result<(u32, u32)> {
    let size = guarded(format, || {
        imagesize::reader_size(SourceReader::new(src)).map_err(|e| {
            Error::corrupt(format!("{format} header does not parse: {e}")).with_source(e)
        })
    })?;
    Ok((
        dimension(size.width, "width", format)?,
        dimension(size.height, "height", format)?,
    ))
}

// ---------------------------------------------------------------------------------------------
// Images
// ---------------------------------------------------------------------------------------------

const PNG_SIGNATURE_LEN: u64 = 8;
/// PNG chunk lengths are limited to 2^31 - 1.
const PNG_MAX_CHUNK_LEN: u32 = 0x7FFF_FFFF;

/// CRC-32 (ISO-HDLC), as used by PNG chunks.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// Walks the PNG chunks: the first must be a 13-byte `IHDR` with a valid CRC, every chunk must fit
/// in the file, and an `IEND` chunk must be reached.
fn check_png_chunks<S: Source + ?Sized>(src: &S) -> Result<()> {
    let total = src.len();
    let mut pos = PNG_SIGNATURE_LEN;
    let mut first = true;
    loop {
        let header = src.read(pos, 8)?;
        let (Some(len), Some(ty)) = (be_u32(&header, 0), fourcc(&header, 4)) else {
            return Err(Error::corrupt(format!(
                "PNG is truncated: the file ends at byte {total} before the IEND chunk"
            )));
        };
        if !ty.iter().all(u8::is_ascii_alphabetic) {
            return Err(Error::corrupt(format!(
                "PNG has an invalid chunk type '{}' at byte {pos}",
                show_fourcc(ty)
            )));
        }
        if len > PNG_MAX_CHUNK_LEN {
            return Err(Error::corrupt(format!(
                "PNG chunk '{}' at byte {pos} has an invalid length {len}",
                show_fourcc(ty)
            )));
        }
        if first && (&ty != b"IHDR" || len != 13) {
            return Err(Error::corrupt(format!(
                "PNG header is invalid: the first chunk is '{}' of {len} bytes, expected a \
                 13-byte IHDR",
                show_fourcc(ty)
            )));
        }
        // 4 bytes length + 4 bytes type + data + 4 bytes CRC.
        let chunk_len = 12 + u64::from(len);
        let remaining = total - pos;
        if chunk_len > remaining {
            return Err(Error::corrupt(format!(
                "PNG is truncated or damaged: chunk '{}' at byte {pos} needs {chunk_len} bytes, \
                 only {remaining} remain",
                show_fourcc(ty),
            )));
        }
        if first {
            // Type and data (17 bytes) followed by the CRC.
            let ihdr = src.read(pos + 4, 21)?;
            let crc_ok = ihdr
                .get(..17)
                .zip(be_u32(&ihdr, 17))
                .is_some_and(|(data, crc)| crc32(data) == crc);
            if !crc_ok {
                return Err(Error::corrupt(
                    "PNG header is invalid: IHDR checksum mismatch",
                ));
            }
        }
        if &ty == b"IEND" {
            return Ok(());
        }
        pos += chunk_len;
        first = false;
    }
}

fn probe_png<S: Source + ?Sized>(src: &S) -> Result<MediaProbe> {
    check_png_chunks(src)?;
    let (width, height) = image_size(src, "PNG")?;
    Ok(MediaProbe::image(MediaFormat::Png, width, height))
}

/// How far from the end a JPEG end-of-image marker is looked for.
const JPEG_EOI_WINDOW: usize = 64;

fn probe_jpeg<S: Source + ?Sized>(src: &S) -> Result<MediaProbe> {
    let (width, height) = image_size(src, "JPEG")?;
    let tail = src.read(
        src.len().saturating_sub(JPEG_EOI_WINDOW as u64),
        JPEG_EOI_WINDOW,
    )?;
    if !tail.windows(2).any(|w| w == [0xFF, 0xD9]) {
        return Err(Error::corrupt(format!(
            "JPEG is truncated: no end-of-image marker (FF D9) in the last {JPEG_EOI_WINDOW} bytes"
        )));
    }
    Ok(MediaProbe::image(MediaFormat::Jpeg, width, height))
}

/// Checks a RIFF header: the declared size must fit in the file. Returns the end of the RIFF
/// chunk (8 + declared size).
fn riff_end<S: Source + ?Sized>(src: &S, format: &str) -> Result<u64> {
    let header = src.read(0, 8)?;
    let size = le_u32(&header, 4)
        .ok_or_else(|| Error::corrupt(format!("{format} is truncated: incomplete RIFF header")))?;
    let end = u64::from(size) + 8;
    if end < 12 {
        return Err(Error::corrupt(format!(
            "{format} RIFF header is invalid: declared size {size} is too small"
        )));
    }
    if end > src.len() {
        return Err(Error::corrupt(format!(
            "{format} is truncated: the RIFF header declares {end} bytes, only {} are present",
            src.len()
        )));
    }
    Ok(end)
}

fn probe_webp<S: Source + ?Sized>(src: &S) -> Result<MediaProbe> {
    let end = riff_end(src, "WEBP")?;
    let head = src.read(0, 32)?;
    let (Some(chunk), Some(chunk_len)) = (fourcc(&head, 12), le_u32(&head, 16)) else {
        return Err(Error::corrupt("WEBP is truncated: no image chunk"));
    };
    // The first chunk is the image (VP8, VP8L) or the extended header (VP8X), each with a
    // recognisable signature.
    let valid = match &chunk {
        b"VP8 " => head.get(23..26) == Some(&[0x9D, 0x01, 0x2A][..]),
        b"VP8L" => head.get(20) == Some(&0x2F),
        b"VP8X" => chunk_len >= 10,
        _ => false,
    };
    if !valid {
        return Err(Error::corrupt(format!(
            "WEBP header is invalid: first chunk '{}' is not a valid VP8, VP8L or VP8X chunk",
            show_fourcc(chunk)
        )));
    }
    if 20 + u64::from(chunk_len) > end {
        return Err(Error::corrupt(format!(
            "WEBP is truncated or damaged: chunk '{}' of {chunk_len} bytes runs past the end of \
             the RIFF data",
            show_fourcc(chunk)
        )));
    }
    let (mut width, mut height) = image_size(src, "WEBP")?;
    if &chunk == b"VP8 " {
        // The top two bits of each VP8 dimension are an upscaling hint, not part of the size.
        width &= 0x3FFF;
        height &= 0x3FFF;
        if width == 0 || height == 0 {
            return Err(Error::corrupt("WEBP header gives a zero dimension"));
        }
    }
    Ok(MediaProbe::image(MediaFormat::Webp, width, height))
}

// ---------------------------------------------------------------------------------------------
// MP4 / MOV / M4A
// ---------------------------------------------------------------------------------------------

/// The most movie-header bytes (`ftyp` and `moov` boxes) read to probe an MP4, MOV or M4A: a
/// 4-hour video's sample tables take a few tens of MB.
pub(crate) const MAX_MOVIE_HEADER_BYTES: u64 = 64 * 1024 * 1024;

fn container_name(format: MediaFormat) -> &'static str {
    match format {
        MediaFormat::Mov => "MOV",
        MediaFormat::M4a => "M4A",
        _ => "MP4",
    }
}

/// Checks that the top-level boxes tile the file exactly and that one of them is `moov`.
/// Returns where the `ftyp` and `moov` boxes are (offset, size), in file order.
fn check_top_level_boxes<S: Source + ?Sized>(src: &S, name: &str) -> Result<Vec<(u64, u64)>> {
    let len = src.len();
    let mut pos = 0u64;
    let mut has_moov = false;
    let mut header_boxes = Vec::new();
    while pos < len {
        let remaining = len - pos;
        let header = src.read(pos, 16)?;
        let (Some(size32), Some(ty)) = (be_u32(&header, 0), fourcc(&header, 4)) else {
            return Err(Error::corrupt(format!(
                "{name} is truncated: {remaining} stray bytes at byte {pos} where a box was \
                 expected"
            )));
        };
        let (size, header_len) = match size32 {
            // A 64-bit size follows the type.
            1 => match be_u64(&header, 8) {
                Some(large) => (large, 16),
                None => {
                    return Err(Error::corrupt(format!(
                        "{name} is truncated: box '{}' at byte {pos} has an incomplete header",
                        show_fourcc(ty)
                    )));
                }
            },
            // The box extends to the end of the file.
            0 => (remaining, 8),
            n => (u64::from(n), 8),
        };
        if size < header_len {
            return Err(Error::corrupt(format!(
                "{name} box '{}' at byte {pos} has an invalid size {size}",
                show_fourcc(ty)
            )));
        }
        if size > remaining {
            return Err(Error::corrupt(format!(
                "{name} is truncated or damaged: box '{}' at byte {pos} needs {size} bytes, only \
                 {remaining} remain",
                show_fourcc(ty)
            )));
        }
        has_moov |= &ty == b"moov";
        if &ty == b"moov" || &ty == b"ftyp" {
            header_boxes.push((pos, size));
        }
        pos += size;
    }
    if !has_moov {
        return Err(Error::corrupt(format!(
            "{name} has no 'moov' box: the movie header is missing (incomplete or damaged file)"
        )));
    }
    Ok(header_boxes)
}

/// Boxes whose children the MP4 parser reads (the path to every table it sizes by a count).
const MP4_CONTAINERS: [&[u8; 4]; 9] = [
    b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"mvex", b"dinf", b"udta",
];

/// How deep [`check_table_counts`] descends (real files nest 5 levels to `stbl`).
const MP4_MAX_DEPTH: usize = 12;

/// Tables the MP4 parser allocates by the entry count in their header before reading the
/// entries: `(box, offset of the count after the version and flags, smallest entry in bytes)`.
const MP4_COUNTED: [(&[u8; 4], usize, u64); 9] = [
    (b"elst", 0, 12),
    (b"stts", 0, 8),
    (b"ctts", 0, 8),
    (b"stsc", 0, 12),
    (b"stss", 0, 4),
    (b"stco", 0, 4),
    (b"co64", 0, 8),
    (b"stsd", 0, 8),
    // `pssh` version 1: 16 bytes of system id, then the key-id count; 16 bytes per key id.
    (b"pssh", 16, 16),
];

/// Checks, before the MP4 parser runs, that every table it sizes by a declared count (edit
/// lists, sample tables, chunk offsets, sample descriptions, key ids) declares no more entries
/// than its box can hold. The parser reserves memory for the declared count first (an edit list
/// claiming 2^32 entries in a 28-byte box asks for 51 GB), so a count that does not fit is
/// refused here as `Corrupt`.
fn check_table_counts(bytes: &[u8], name: &str, depth: usize) -> Result<()> {
    let mut pos = 0usize;
    while pos < bytes.len() {
        let (Some(size32), Some(ty)) = (be_u32(bytes, pos), fourcc(bytes, pos + 4)) else {
            return Err(Error::corrupt(format!(
                "{name} has a truncated box header inside a container"
            )));
        };
        let remaining = (bytes.len() - pos) as u64;
        let (size, header) = match size32 {
            1 => (be_u64(bytes, pos + 8).unwrap_or(0), 16u64),
            0 => (remaining, 8),
            n => (u64::from(n), 8),
        };
        if size < header || size > remaining {
            return Err(Error::corrupt(format!(
                "{name} box '{}' at byte {pos} of its container has an invalid size {size}",
                show_fourcc(ty)
            )));
        }
        // `size <= remaining` so these fit in usize.
        let body = bytes
            .get(pos + header as usize..pos + size as usize)
            .unwrap_or_default();
        if MP4_CONTAINERS.contains(&&ty) {
            if depth >= MP4_MAX_DEPTH {
                return Err(Error::corrupt(format!(
                    "{name} nests boxes deeper than {MP4_MAX_DEPTH} levels"
                )));
            }
            check_table_counts(body, name, depth + 1)?;
        } else if let Some((_, at, entry)) = MP4_COUNTED.iter().find(|(t, _, _)| **t == ty) {
            let version = body.first().copied().unwrap_or(0);
            let applies = &ty != b"pssh" || version > 0;
            // Version and flags (4 bytes), then the count.
            if let (true, Some(count)) = (applies, be_u32(body, 4 + at)) {
                let room = (body.len() as u64).saturating_sub(8 + *at as u64);
                if u64::from(count).saturating_mul(*entry) > room {
                    return Err(Error::corrupt(format!(
                        "{name} box '{}' declares {count} entries, its {} bytes hold at most {}",
                        show_fourcc(ty),
                        body.len(),
                        room / entry
                    )));
                }
            }
        } else if &ty == b"stsz" {
            // `sample_size` 0 means one 4-byte size per sample follows.
            if let (Some(0), Some(count)) = (be_u32(body, 4), be_u32(body, 8)) {
                let room = (body.len() as u64).saturating_sub(12);
                if u64::from(count).saturating_mul(4) > room {
                    return Err(Error::corrupt(format!(
                        "{name} box 'stsz' declares {count} sample sizes, its {} bytes hold at \
                         most {}",
                        body.len(),
                        room / 4
                    )));
                }
            }
        }
        pos += size as usize;
    }
    Ok(())
}

fn mp4_error(name: &str, err: mp4parse::Error) -> Error {
    let e = match &err {
        mp4parse::Error::Unsupported(what) => {
            Error::unsupported(format!("{name} uses an unsupported feature: {what}"))
        }
        mp4parse::Error::UnexpectedEOF => Error::corrupt(format!(
            "{name} is truncated: a box ends before its content"
        )),
        mp4parse::Error::MoovMissing => Error::corrupt(format!("{name} has no 'moov' box")),
        mp4parse::Error::OutOfMemory => Error::corrupt(format!(
            "{name} header declares more entries than can be allocated"
        )),
        other => Error::corrupt(format!("{name} header does not parse: {other}")),
    };
    e.with_source(err)
}

/// A time in `units` at `per_second`, in seconds; `None` when unknown or nonsensical.
fn seconds(units: u64, per_second: u64) -> Option<f64> {
    // All-ones durations mean "unknown"; zero is what fragmented files carry.
    if units == 0 || units == u64::MAX || units == u64::from(u32::MAX) || per_second == 0 {
        return None;
    }
    let s = units as f64 / per_second as f64;
    s.is_finite().then_some(s)
}

/// A track's duration: from its track header (`tkhd`, the presented length after any edit list,
/// in the movie timescale), else from its media header (`mdhd`, in the track timescale; this one
/// includes e.g. AAC priming samples).
fn track_duration(track: &mp4parse::Track, movie_timescale: Option<u64>) -> Option<f64> {
    let presented = track
        .tkhd
        .as_ref()
        .zip(movie_timescale)
        .and_then(|(tkhd, ts)| seconds(tkhd.duration, ts));
    presented.or_else(|| {
        let (d, ts) = track.duration.zip(track.timescale)?;
        seconds(d.0, ts.0)
    })
}

/// A video track's size: from its track header (16.16 fixed point), else its sample entry.
fn video_size(track: &mp4parse::Track) -> Option<(u32, u32)> {
    if let Some(tkhd) = &track.tkhd {
        let (w, h) = (tkhd.width >> 16, tkhd.height >> 16);
        if w > 0 && h > 0 {
            return Some((w, h));
        }
    }
    track
        .stsd
        .as_ref()?
        .descriptions
        .iter()
        .find_map(|entry| match entry {
            mp4parse::SampleEntry::Video(v) if v.width > 0 && v.height > 0 => {
                Some((u32::from(v.width), u32::from(v.height)))
            }
            _ => None,
        })
}

fn probe_isobmff<S: Source + ?Sized>(src: &S, sniffed: MediaFormat) -> Result<MediaProbe> {
    let name = container_name(sniffed);
    let header_boxes = check_top_level_boxes(src, name)?;
    // The parser reads the movie header only (`ftyp` and `moov`, in file order), never the
    // media data, wherever the header sits in the file.
    let header_len: u64 = header_boxes.iter().map(|(_, size)| size).sum();
    if header_len > MAX_MOVIE_HEADER_BYTES {
        return Err(Error::unsupported(format!(
            "{name} movie header is {header_len} bytes, more than the {MAX_MOVIE_HEADER_BYTES} \
             bytes read to probe a file"
        )));
    }
    let mut movie = Vec::with_capacity(usize::try_from(header_len).unwrap_or(0));
    for (at, size) in header_boxes {
        let part = src.read(at, usize::try_from(size).unwrap_or(usize::MAX))?;
        movie.extend_from_slice(&part);
    }
    check_table_counts(&movie, name, 0)?;
    let context = guarded(name, || {
        mp4parse::read_mp4(&mut Cursor::new(&movie)).map_err(|e| mp4_error(name, e))
    })?;

    let movie_timescale = context.timescale.map(|t| t.0);
    let mut has_video = false;
    let mut has_audio = false;
    let mut size = None;
    let mut duration: Option<f64> = None;
    for track in context.tracks.iter() {
        match track.track_type {
            mp4parse::TrackType::Video => {
                has_video = true;
                if size.is_none() {
                    size = video_size(track);
                }
            }
            mp4parse::TrackType::Audio => has_audio = true,
            _ => continue,
        }
        if let Some(d) = track_duration(track, movie_timescale) {
            duration = Some(duration.map_or(d, |longest| longest.max(d)));
        }
    }
    if duration.is_none() {
        // Fragmented files carry the overall duration in the movie extends header.
        duration = context
            .mvex
            .as_ref()
            .and_then(|m| m.fragment_duration)
            .zip(movie_timescale)
            .and_then(|(d, ts)| seconds(d.0, ts));
    }

    let format = match (sniffed, has_video, has_audio) {
        (_, false, true) => MediaFormat::M4a,
        (MediaFormat::M4a, true, _) => MediaFormat::Mp4,
        (format, true, _) => format,
        (_, false, false) => {
            return Err(Error::unsupported(format!(
                "{name} has no audio or video track"
            )));
        }
    };
    Ok(MediaProbe {
        format,
        width: size.map(|(w, _)| w),
        height: size.map(|(_, h)| h),
        duration_sec: duration,
        has_video,
        has_audio,
    })
}

// ---------------------------------------------------------------------------------------------
// Audio (symphonia)
// ---------------------------------------------------------------------------------------------

pub(super) fn audio_error(format: &str, err: AudioError) -> Error {
    match err {
        AudioError::Unsupported(what) => {
            Error::unsupported(format!("{format} uses an unsupported feature: {what}"))
        }
        AudioError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Error::corrupt(format!("{format} is truncated: the header ends early")).with_source(e)
        }
        other => {
            Error::corrupt(format!("{format} header does not parse: {other}")).with_source(other)
        }
    }
}

pub(super) fn media_stream(bytes: &[u8]) -> MediaSourceStream {
    MediaSourceStream::new(
        Box::new(Cursor::new(bytes.to_vec())),
        MediaSourceStreamOptions::default(),
    )
}

/// Walks the chunks of a WAVE file (reading only their headers). Returns the offset of the
/// `data` chunk header.
fn check_wav_chunks<S: Source + ?Sized>(src: &S, end: u64) -> Result<u64> {
    let mut pos = 12u64;
    let mut fmt = None;
    let mut data = None;
    while pos.saturating_add(8) <= end {
        let header = src.read(pos, 8)?;
        let (Some(id), Some(size)) = (fourcc(&header, 0), le_u32(&header, 4)) else {
            break;
        };
        if !id.iter().all(|b| (0x20..=0x7E).contains(b)) {
            return Err(Error::corrupt(format!(
                "WAV has an invalid chunk id '{}' at byte {pos}",
                show_fourcc(id)
            )));
        }
        let body = pos + 8;
        let chunk_end = body + u64::from(size);
        if chunk_end > end {
            return Err(Error::corrupt(format!(
                "WAV is truncated or damaged: chunk '{}' at byte {pos} declares {size} bytes, only \
                 {} remain",
                show_fourcc(id),
                end - body
            )));
        }
        match &id {
            b"fmt " if fmt.is_none() => fmt = Some(pos),
            b"data" if data.is_none() => data = Some(pos),
            _ => {}
        }
        // Chunks are padded to an even size.
        pos = chunk_end + u64::from(size & 1);
    }
    match (fmt, data) {
        (Some(f), Some(d)) if f < d => Ok(d),
        (None, _) => Err(Error::corrupt("WAV header is invalid: no 'fmt ' chunk")),
        (_, None) => Err(Error::corrupt("WAV has no 'data' chunk")),
        _ => Err(Error::corrupt(
            "WAV header is invalid: the 'data' chunk comes before the 'fmt ' chunk",
        )),
    }
}

/// The most bytes before the samples of a WAV file (its `fmt ` and other chunks) read to probe
/// it.
const MAX_WAV_HEADER_BYTES: u64 = 16 * 1024 * 1024;

fn probe_wav<S: Source + ?Sized>(src: &S) -> Result<MediaProbe> {
    let end = riff_end(src, "WAV")?;
    let data_at = check_wav_chunks(src, end)?;
    // The reader stops at the data chunk header, so the samples are never read.
    let header_len = data_at + 8;
    if header_len > MAX_WAV_HEADER_BYTES {
        return Err(Error::unsupported(format!(
            "WAV has {data_at} bytes of chunks before its samples, more than the \
             {MAX_WAV_HEADER_BYTES} bytes read to probe a file"
        )));
    }
    let header = src.read(0, usize::try_from(header_len).unwrap_or(usize::MAX))?;
    let (frames, sample_rate) = guarded("WAV", || {
        let reader = WavReader::try_new(media_stream(&header), &FormatOptions::default())
            .map_err(|e| audio_error("WAV", e))?;
        let params = reader
            .tracks()
            .first()
            .map(|t| &t.codec_params)
            .ok_or_else(|| Error::corrupt("WAV has no audio track"))?;
        Ok((params.n_frames, params.sample_rate))
    })?;
    let sample_rate = match sample_rate {
        Some(rate) if rate > 0 => rate,
        _ => return Err(Error::corrupt("WAV header is invalid: zero sample rate")),
    };
    let duration = frames.map(|n| n as f64 / f64::from(sample_rate));
    Ok(MediaProbe::audio(MediaFormat::Wav, duration))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    macro_rules! fixture {
        ($name:literal) => {
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tests/fixtures/media/",
                $name
            ))
            .as_slice()
        };
    }

    /// A fixture and the format `probe` must report for it.
    struct Fixture {
        name: &'static str,
        bytes: &'static [u8],
        format: MediaFormat,
        /// Length of the magic number that `sniff` keys on.
        magic_len: usize,
    }

    impl Fixture {
        fn has_size(&self) -> bool {
            self.format.kind() != MediaKind::Audio
        }
        fn has_duration(&self) -> bool {
            self.format.kind() != MediaKind::Image
        }
    }

    macro_rules! fx {
        ($name:literal, $format:ident, $magic_len:literal) => {
            Fixture {
                name: $name,
                bytes: fixture!($name),
                format: MediaFormat::$format,
                magic_len: $magic_len,
            }
        };
    }

    fn fixtures() -> Vec<Fixture> {
        vec![
            fx!("image.png", Png, 8),
            fx!("image.jpg", Jpeg, 3),
            fx!("image.webp", Webp, 12),
            fx!("video.mp4", Mp4, 12),
            fx!("video.mov", Mov, 12),
            fx!("audio.wav", Wav, 12),
            fx!("audio.mp3", Mp3, 2),
            fx!("audio.m4a", M4a, 12),
        ]
    }

    /// Deterministic pseudo-random bytes (xorshift64*).
    fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut state = seed.max(1);
        (0..len)
            .map(|_| {
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
            })
            .collect()
    }

    #[test]
    fn fixtures_probe_to_their_format_size_and_duration() {
        for fx in fixtures() {
            let p = probe(fx.bytes).unwrap_or_else(|e| panic!("{}: {e}", fx.name));
            assert_eq!(p.format, fx.format, "{}", fx.name);
            assert_eq!(p.kind(), fx.format.kind(), "{}", fx.name);
            let kind = fx.format.kind();
            assert_eq!(p.has_video, kind == MediaKind::Video, "{}", fx.name);
            assert_eq!(p.has_audio, kind != MediaKind::Image, "{}", fx.name);
            if fx.has_size() {
                assert_eq!((p.width, p.height), (Some(64), Some(48)), "{}", fx.name);
            } else {
                assert_eq!((p.width, p.height), (None, None), "{}", fx.name);
            }
            if fx.has_duration() {
                let d = p
                    .duration_sec
                    .unwrap_or_else(|| panic!("{}: no duration", fx.name));
                assert!((d - 2.0).abs() <= 0.2, "{}: duration {d}", fx.name);
            } else {
                assert_eq!(p.duration_sec, None, "{}", fx.name);
            }
        }
    }

    #[test]
    fn fixture_sniffing_matches_the_probed_format() {
        for fx in fixtures() {
            assert_eq!(MediaFormat::sniff(fx.bytes), Some(fx.format), "{}", fx.name);
        }
    }

    #[test]
    fn probe_round_trips_through_json() {
        let p = probe(fixture!("video.mp4")).unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert!(json.contains("\"format\":\"mp4\""), "{json}");
        let back: MediaProbe = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn empty_input_is_invalid() {
        for fx in fixtures() {
            let err = probe(&fx.bytes[..0]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{}", fx.name);
        }
    }

    #[test]
    fn truncated_fixtures_are_corrupt() {
        for fx in fixtures() {
            let half = &fx.bytes[..fx.bytes.len() / 2];
            let err = probe(half).expect_err(fx.name);
            assert_eq!(err.kind(), ErrorKind::Corrupt, "{}: {err}", fx.name);
            assert!(
                err.message()
                    .contains(&fx.format.extension().to_ascii_uppercase())
                    || err.message().contains("JPEG"),
                "{}: message should name the format: {err}",
                fx.name
            );
        }
    }

    #[test]
    fn fixtures_missing_their_last_bytes_are_corrupt() {
        // Losing just the tail must still be noticed (the MP3 check allows 5% missing frames).
        for fx in fixtures() {
            let cut = if fx.format == MediaFormat::Mp3 {
                fx.bytes.len() / 10
            } else {
                1
            };
            let short = &fx.bytes[..fx.bytes.len() - cut];
            let err = probe(short).expect_err(fx.name);
            assert_eq!(err.kind(), ErrorKind::Corrupt, "{}: {err}", fx.name);
        }
    }

    #[test]
    fn fixtures_with_overwritten_headers_are_corrupt() {
        for fx in fixtures() {
            for fill in [0x00, 0xFF, 0x5A] {
                let mut bytes = fx.bytes.to_vec();
                let end = (fx.magic_len + 32).min(bytes.len());
                bytes[fx.magic_len..end].fill(fill);
                let err = probe(&bytes).expect_err(fx.name);
                assert_eq!(
                    err.kind(),
                    ErrorKind::Corrupt,
                    "{} fill {fill:#04x}: {err}",
                    fx.name
                );
            }
        }
    }

    #[test]
    fn random_garbage_is_unsupported() {
        for seed in 1..50 {
            let bytes = noise(seed, 4096);
            if MediaFormat::sniff(&bytes).is_some() {
                continue;
            }
            let err = probe(&bytes).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Unsupported, "seed {seed}");
        }
        assert_eq!(probe(b"x").unwrap_err().kind(), ErrorKind::Unsupported);
    }

    #[test]
    fn damaged_fixtures_never_panic() {
        for fx in fixtures() {
            let len = fx.bytes.len();
            // Every prefix of the first 256 bytes, and prefixes at a coarser step after that.
            for cut in (0..len.min(256)).chain((256..len).step_by(97)) {
                let _ = probe(&fx.bytes[..cut]);
            }
            // Random byte flips anywhere, and random bytes after the magic number.
            for seed in 1..200u64 {
                let r = noise(seed, 16);
                let mut bytes = fx.bytes.to_vec();
                for pair in r.chunks(4) {
                    let at = u32::from_le_bytes([pair[0], pair[1], pair[2], 0]) as usize % len;
                    bytes[at] = pair[3];
                }
                let _ = probe(&bytes);
                let mut bytes = fx.bytes.to_vec();
                let tail = noise(seed, len - fx.magic_len);
                bytes[fx.magic_len..].copy_from_slice(&tail);
                let _ = probe(&bytes);
            }
        }
    }

    #[test]
    fn magic_numbers_alone_are_corrupt() {
        let cases: [&[u8]; 7] = [
            b"\x89PNG\r\n\x1a\n",
            b"\xFF\xD8\xFF",
            b"RIFF\x04\0\0\0WEBP",
            b"RIFF\x04\0\0\0WAVE",
            b"\0\0\0\x10ftypisom\0\0\0\0",
            b"\0\0\0\x10ftypM4A \0\0\0\0",
            b"\xFF\xFB\x90\x64",
        ];
        for bytes in cases {
            let err = probe(bytes).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Corrupt, "{bytes:?}: {err}");
        }
    }

    #[test]
    fn audio_only_mp4_container_is_reported_as_m4a() {
        // Rebrand the M4A fixture as a plain MP4: the audio-only content still makes it M4A.
        let mut bytes = fixture!("audio.m4a").to_vec();
        bytes[8..12].copy_from_slice(b"isom");
        assert_eq!(MediaFormat::sniff(&bytes), Some(MediaFormat::Mp4));
        let p = probe(&bytes).unwrap();
        assert_eq!(p.format, MediaFormat::M4a);
        assert_eq!(p.kind(), MediaKind::Audio);

        // And an M4A-branded file that carries video is a video.
        let mut bytes = fixture!("video.mp4").to_vec();
        bytes[8..12].copy_from_slice(b"M4A ");
        assert_eq!(MediaFormat::sniff(&bytes), Some(MediaFormat::M4a));
        let p = probe(&bytes).unwrap();
        assert_eq!(p.format, MediaFormat::Mp4);
        assert_eq!((p.width, p.height, p.has_video), (Some(64), Some(48), true));
    }

    #[test]
    fn wav_data_chunk_must_fit() {
        let wav = fixture!("audio.wav");
        let data_at = wav.windows(4).position(|w| w == b"data").unwrap();
        let mut bytes = wav.to_vec();
        let size = u32::from_le_bytes(bytes[data_at + 4..data_at + 8].try_into().unwrap());
        bytes[data_at + 4..data_at + 8].copy_from_slice(&(size + 2).to_le_bytes());
        let err = probe(&bytes).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt);
        assert!(err.message().contains("'data'"), "{err}");
    }

    #[test]
    fn parser_panics_become_corrupt_errors() {
        let err = guarded::<()>("TEST", || panic!("boom")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt);
        assert!(err.message().contains("boom"), "{err}");
    }

    #[test]
    fn mp4_with_trailing_junk_or_without_moov_is_corrupt() {
        let mut bytes = fixture!("video.mp4").to_vec();
        bytes.extend_from_slice(b"junk");
        assert_eq!(probe(&bytes).unwrap_err().kind(), ErrorKind::Corrupt);

        // ftyp + free only: tiles the file but has no movie header.
        let no_moov = b"\0\0\0\x10ftypisom\0\0\0\0\0\0\0\x08free";
        let err = probe(no_moov).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt);
        assert!(err.message().contains("moov"), "{err}");
    }

    #[test]
    fn mp3_with_id3v2_tag_probes() {
        let mp3 = fixture!("audio.mp3");
        let mut bytes = b"ID3\x04\0\0\0\0\0\x0A".to_vec();
        bytes.extend_from_slice(&[0; 10]);
        bytes.extend_from_slice(mp3);
        let p = probe(&bytes).unwrap();
        assert_eq!(p.format, MediaFormat::Mp3);
        let d = p.duration_sec.unwrap();
        assert!((d - 2.0).abs() <= 0.2, "{d}");

        // Junk between the tag and the first frame is skipped, as players do.
        let mut junk = b"ID3\x04\0\0\0\0\0\x0A".to_vec();
        junk.extend_from_slice(b"0123456789 some junk \xFF\xFB\x00 more junk");
        junk.extend_from_slice(mp3);
        assert_eq!(probe(&junk).unwrap().duration_sec, p.duration_sec);

        // A damaged tag header, or a tag that runs past the end, is corrupt.
        bytes[3] = 0;
        assert_eq!(probe(&bytes).unwrap_err().kind(), ErrorKind::Corrupt);
        let err = probe(&b"ID3\x04\0\0\0\0\x7F\x7Fshort"[..]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt);
        assert!(err.message().contains("ID3v2"), "{err}");
    }

    #[test]
    fn mp3_without_xing_header_gets_duration_from_frames() {
        // Drop the first (Info) frame: the remaining frames are a plain CBR stream.
        let mp3 = fixture!("audio.mp3");
        let header = parse_frame_header(be_u32(mp3, 0).unwrap()).unwrap();
        assert!(xing_frame_count(mp3, 0, &header).is_some());
        let bytes = &mp3[header.frame_len..];
        assert_eq!(MediaFormat::sniff(bytes), Some(MediaFormat::Mp3));
        assert_eq!(xing_frame_count(bytes, 0, &header), None);
        let p = probe(bytes).unwrap();
        let d = p.duration_sec.unwrap();
        assert!((d - 2.0).abs() <= 0.2, "{d}");
        // Without the Info header truncation is only detectable at frame granularity.
        assert!(probe(&bytes[..bytes.len() / 2]).is_ok());
    }

    #[test]
    fn png_ihdr_crc_is_checked() {
        let mut bytes = fixture!("image.png").to_vec();
        bytes[19] ^= 0x01; // low byte of the width
        let err = probe(&bytes).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt);
        assert!(err.message().contains("checksum"), "{err}");
    }

    #[test]
    fn crc32_matches_the_reference_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }
}
