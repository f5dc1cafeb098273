//! MP3 probing: ID3v2 tags, the first frame, the Xing/Info header, and a frame count taken
//! from a streamed read of the whole file (fed in chunks, never held whole).

use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::default::formats::MpaReader;

use super::format::MediaFormat;
use super::probe::{MediaProbe, audio_error, be_u32, fourcc, guarded, media_stream};
use super::source::Source;
use crate::error::{Error, Result};

/// MPEG audio version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MpegVersion {
    V1,
    V2,
    V2_5,
}

/// The fields of an MPEG audio frame header that the structural checks need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FrameHeader {
    version: MpegVersion,
    /// 1, 2 or 3.
    layer: u8,
    has_crc: bool,
    sample_rate: u32,
    mono: bool,
    /// The whole frame, header included, in bytes.
    pub(super) frame_len: usize,
}

impl FrameHeader {
    /// Bytes between the header (and CRC) and the Xing/Info tag of a layer III frame.
    fn side_info_len(&self) -> usize {
        match (self.version, self.mono) {
            (MpegVersion::V1, true) => 17,
            (MpegVersion::V1, false) => 32,
            (_, true) => 9,
            (_, false) => 17,
        }
    }

    /// Samples per channel one frame holds (layer III: 1152 in MPEG-1, 576 in MPEG-2 and 2.5).
    fn samples(&self) -> u64 {
        match (self.layer, self.version) {
            (1, _) => 384,
            (2, _) | (3, MpegVersion::V1) => 1152,
            _ => 576,
        }
    }

    fn similar(&self, other: &FrameHeader) -> bool {
        self.version == other.version
            && self.layer == other.layer
            && self.sample_rate == other.sample_rate
            && self.mono == other.mono
    }
}

const MP3_BITRATES_V1_L3: [u32; 15] = [
    0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
];
const MP3_BITRATES_V2_L3: [u32; 15] =
    [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];

/// Parses a frame header word. Layer I/II headers parse (so a following frame can be compared)
/// but get `frame_len` 0; the caller rejects them.
pub(super) fn parse_frame_header(word: u32) -> std::result::Result<FrameHeader, &'static str> {
    if word & 0xFFE0_0000 != 0xFFE0_0000 {
        return Err("no frame sync");
    }
    let version = match (word >> 19) & 3 {
        0 => MpegVersion::V2_5,
        2 => MpegVersion::V2,
        3 => MpegVersion::V1,
        _ => return Err("reserved MPEG version"),
    };
    let layer = match (word >> 17) & 3 {
        1 => 3,
        2 => 2,
        3 => 1,
        _ => return Err("reserved layer"),
    };
    let bitrate_index = ((word >> 12) & 0xF) as usize;
    if bitrate_index == 0 {
        return Err("free-format bitrate");
    }
    if bitrate_index == 15 {
        return Err("invalid bitrate index");
    }
    let sample_rate = match ((word >> 10) & 3, version) {
        (3, _) => return Err("reserved sample rate"),
        (0, MpegVersion::V1) => 44_100,
        (1, MpegVersion::V1) => 48_000,
        (_, MpegVersion::V1) => 32_000,
        (0, MpegVersion::V2) => 22_050,
        (1, MpegVersion::V2) => 24_000,
        (_, MpegVersion::V2) => 16_000,
        (0, MpegVersion::V2_5) => 11_025,
        (1, MpegVersion::V2_5) => 12_000,
        (_, MpegVersion::V2_5) => 8_000,
    };
    let padding = ((word >> 9) & 1) as usize;
    let frame_len = if layer == 3 {
        let (bitrate, coefficient) = match version {
            MpegVersion::V1 => (MP3_BITRATES_V1_L3.get(bitrate_index), 144),
            _ => (MP3_BITRATES_V2_L3.get(bitrate_index), 72),
        };
        let bitrate = bitrate.copied().ok_or("invalid bitrate index")?;
        (coefficient * bitrate * 1000 / sample_rate) as usize + padding
    } else {
        0
    };
    Ok(FrameHeader {
        version,
        layer,
        has_crc: (word >> 16) & 1 == 0,
        sample_rate,
        mono: (word >> 6) & 3 == 3,
        frame_len,
    })
}

/// Skips any ID3v2 tags at the start. Returns the offset just past them.
fn skip_id3v2<S: Source + ?Sized>(src: &S) -> Result<u64> {
    let total = src.len();
    let mut pos = 0u64;
    loop {
        let header = src.read(pos, 10)?;
        if header.get(..3) != Some(b"ID3") {
            return Ok(pos);
        }
        let Some(&[_, _, _, major, revision, flags, s0, s1, s2, s3]) = header.get(..10) else {
            return Err(Error::corrupt(
                "MP3 is truncated: incomplete ID3v2 tag header",
            ));
        };
        let size = [s0, s1, s2, s3];
        if !(2..=4).contains(&major) || revision == 0xFF || size.iter().any(|b| b & 0x80 != 0) {
            return Err(Error::corrupt("MP3 ID3v2 tag header is invalid"));
        }
        // A 28-bit "synchsafe" integer: 7 bits per byte.
        let size = size.iter().fold(0u64, |acc, &b| (acc << 7) | u64::from(b));
        let footer = if flags & 0x10 != 0 { 10 } else { 0 };
        let end = pos + 10 + size + footer;
        if end > total {
            return Err(Error::corrupt(format!(
                "MP3 is truncated: the ID3v2 tag declares {} bytes, only {} remain",
                end - pos,
                total - pos
            )));
        }
        pos = end;
    }
}

/// Offset of a Xing/Info tag in a layer III frame starting at `frame_at`.
fn tag_offset(frame_at: usize, header: &FrameHeader) -> usize {
    frame_at + 4 + if header.has_crc { 2 } else { 0 } + header.side_info_len()
}

/// The frame count of a Xing/Info tag in the first frame, if it has one.
pub(super) fn xing_frame_count(bytes: &[u8], frame_at: usize, header: &FrameHeader) -> Option<u32> {
    let at = tag_offset(frame_at, header);
    let tag = fourcc(bytes, at)?;
    if &tag != b"Xing" && &tag != b"Info" {
        return None;
    }
    let flags = be_u32(bytes, at + 4)?;
    if flags & 1 == 0 {
        return None;
    }
    be_u32(bytes, at + 8)
}

/// Whether the frame at `frame_at` is an information frame (Xing/Info or VBRI) rather than
/// audio: a decoder skips it, so it is not counted.
fn is_info_frame(bytes: &[u8], frame_at: usize, header: &FrameHeader) -> bool {
    let xing = fourcc(bytes, tag_offset(frame_at, header));
    let vbri = fourcc(bytes, frame_at + 4 + 32);
    matches!(xing.as_ref(), Some(b"Xing" | b"Info")) || vbri.as_ref() == Some(b"VBRI")
}

/// Checks the first frame header and that another frame (or a trailing tag) follows it.
/// `bytes` is a prefix of a stream of `total` bytes (the window a probe read).
fn check_first_frame(bytes: &[u8], at: usize, total: u64) -> Result<FrameHeader> {
    let word = be_u32(bytes, at)
        .ok_or_else(|| Error::corrupt("MP3 is truncated: no complete frame header"))?;
    let header = parse_frame_header(word).map_err(|why| {
        Error::corrupt(format!("MP3 frame header at byte {at} is invalid: {why}"))
    })?;
    if header.layer != 3 {
        return Err(Error::unsupported(format!(
            "MPEG audio layer {} is not supported, only layer III (MP3)",
            header.layer
        )));
    }
    let next = at + header.frame_len;
    if next as u64 > total {
        return Err(Error::corrupt(format!(
            "MP3 is truncated: the first frame needs {} bytes, only {} remain",
            header.frame_len,
            total.saturating_sub(at as u64)
        )));
    }
    let rest = bytes.get(next..).unwrap_or_default();
    let trailing_tag = [&b"TAG"[..], b"APETAGEX", b"LYRICSBEGIN", b"ID3"]
        .iter()
        .any(|tag| rest.starts_with(tag));
    if let Some(word) = be_u32(bytes, next)
        && !trailing_tag
    {
        let follows = parse_frame_header(word).is_ok_and(|h| h.similar(&header));
        if !follows {
            return Err(Error::corrupt(format!(
                "MP3 frame header at byte {at} is invalid: no matching frame follows it at byte \
                 {next}"
            )));
        }
    }
    Ok(header)
}

/// How far past an ID3v2 tag the first frame is looked for (taggers sometimes leave padding or
/// junk behind the tag).
const MP3_MAX_GAP_AFTER_TAG: usize = 64 * 1024;
/// Bytes read past that window, so a frame found at its end can be checked against the next.
const MP3_WINDOW_SLACK: usize = 8 * 1024;
/// The longest layer III frame (MPEG-1 at 320 kbit/s and 32 kHz, padded), bytes.
const MP3_MAX_FRAME_LEN: usize = 1441;

/// The first frame after an ID3v2 tag: the first offset in the gap window that passes
/// [`check_first_frame`], or 0 (whose check then reports the problem). Offsets are relative to
/// the end of the tags; `total` is the length of the stream from there.
fn first_frame_after_tag(window: &[u8], total: u64) -> usize {
    let gap = window
        .get(..MP3_MAX_GAP_AFTER_TAG.min(window.len()))
        .unwrap_or_default();
    gap.iter()
        .enumerate()
        .filter(|&(_, &b)| b == 0xFF)
        .map(|(i, _)| i)
        .find(|&at| check_first_frame(window, at, total).is_ok())
        .unwrap_or(0)
}

/// The header checks of an MP3: tags, first frame, Xing/Info header and LAME padding. The frame
/// count comes from [`Mp3Scan::feed`].
pub(super) fn probe_mp3_head<S: Source + ?Sized>(src: &S) -> Result<Mp3Scan> {
    let tags_end = skip_id3v2(src)?;
    let remaining = src.len() - tags_end;
    let window = src.read(tags_end, MP3_MAX_GAP_AFTER_TAG + MP3_WINDOW_SLACK)?;
    // Without an ID3v2 tag the sniffed frame sync is at byte 0 and the first frame must be there.
    let first = if tags_end == 0 {
        0
    } else {
        first_frame_after_tag(&window, remaining)
    };
    let header = check_first_frame(&window, first, remaining)?;
    let xing_frames = xing_frame_count(&window, first, &header);
    let info_frame = is_info_frame(&window, first, &header);
    // The first frames only: the reader parses the Xing/Info and LAME tags from them.
    let frames = window
        .get(
            first
                ..first
                    .saturating_add(4 * MP3_MAX_FRAME_LEN)
                    .min(window.len()),
        )
        .unwrap_or_default();
    let params = guarded("MP3", || {
        let reader = MpaReader::try_new(media_stream(frames), &FormatOptions::default())
            .map_err(|e| audio_error("MP3", e))?;
        reader
            .tracks()
            .first()
            .map(|t| t.codec_params.clone())
            .ok_or_else(|| Error::corrupt("MP3 has no audio track"))
    })?;
    let first = tags_end + first as u64;
    let count_from = if info_frame {
        first + header.frame_len as u64
    } else {
        first
    };
    Ok(Mp3Scan {
        xing_frames,
        n_frames: params.n_frames,
        trim: u64::from(params.delay.unwrap_or(0)) + u64::from(params.padding.unwrap_or(0)),
        sample_rate: params.sample_rate.unwrap_or(header.sample_rate).max(1),
        next: count_from,
        carry: Vec::new(),
        packets: 0,
        samples: 0,
    })
}

/// Counts the audio frames of an MP3 from chunks of its content, as a decoder walks them:
/// a frame header, the frame, the next header; bytes that are not a frame header are skipped
/// one at a time (resynchronisation). Holds at most one partial frame between chunks.
pub(crate) struct Mp3Scan {
    xing_frames: Option<u32>,
    n_frames: Option<u64>,
    trim: u64,
    sample_rate: u32,
    /// Offset of the next byte to examine.
    next: u64,
    /// Bytes from `next` on, seen but not yet examined (less than a frame).
    carry: Vec<u8>,
    packets: u64,
    samples: u64,
}

impl Mp3Scan {
    /// Walks frames starting at `pos < limit` in `data`; returns where it stopped (the first
    /// frame that is not complete in `data`, or `limit`).
    fn walk(&mut self, data: &[u8], limit: usize) -> usize {
        let mut pos = 0usize;
        while pos < limit {
            let Some(word) = be_u32(data, pos) else {
                break;
            };
            match parse_frame_header(word) {
                Ok(h) if h.frame_len > 0 => {
                    if pos + h.frame_len > data.len() {
                        break;
                    }
                    self.packets += 1;
                    self.samples = self.samples.saturating_add(h.samples());
                    pos += h.frame_len;
                }
                _ => pos += 1,
            }
        }
        pos
    }

    /// The next `chunk` of the file, at `offset`; chunks come in order.
    pub(crate) fn feed(&mut self, offset: u64, chunk: &[u8]) {
        let seen_to = self.next + self.carry.len() as u64;
        let chunk_end = offset + chunk.len() as u64;
        if chunk_end <= seen_to || offset > seen_to {
            // Already seen, or a gap (chunks out of order): nothing to add.
            return;
        }
        // `seen_to - offset < chunk.len()` here.
        let mut new = chunk
            .get(usize::try_from(seen_to - offset).unwrap_or(usize::MAX)..)
            .unwrap_or_default();
        if !self.carry.is_empty() {
            // Finish the frames that start in the carried bytes: they end within a frame length.
            let take = new.len().min(MP3_MAX_FRAME_LEN + 4);
            let mut joined = std::mem::take(&mut self.carry);
            let carried = joined.len();
            joined.extend_from_slice(new.get(..take).unwrap_or_default());
            let stop = self.walk(&joined, carried);
            if stop < carried {
                // Not enough data yet to finish the frame at `stop`.
                self.next += stop as u64;
                self.carry = joined.get(stop..).unwrap_or_default().to_vec();
                if take == new.len() {
                    return;
                }
                // (Unreachable with frames no longer than `MP3_MAX_FRAME_LEN`.)
                new = new.get(take..).unwrap_or_default();
                self.carry.extend_from_slice(new);
                return;
            }
            self.next += stop as u64;
            new = new.get(stop - carried..).unwrap_or_default();
        }
        let stop = self.walk(new, new.len());
        self.next += stop as u64;
        self.carry = new.get(stop..).unwrap_or_default().to_vec();
    }

    /// The probe: the duration from the Xing/Info header (less the encoder's delay and padding)
    /// or from the frames counted; `Corrupt` when fewer than 95% of the frames the Xing/Info
    /// header announces are present.
    pub(crate) fn finish(self) -> Result<MediaProbe> {
        let rate = f64::from(self.sample_rate);
        // Without a Xing/Info header the counted frames give the exact length.
        let counted = (self.samples > 0).then(|| self.samples as f64 / rate);
        let duration = match self.xing_frames {
            Some(expected) => {
                if self.packets.saturating_mul(100) < u64::from(expected).saturating_mul(95) {
                    return Err(Error::corrupt(format!(
                        "MP3 is truncated: the Xing/Info header announces {expected} frames, only \
                         {} are present",
                        self.packets
                    )));
                }
                // Encoder delay and padding (from the LAME tag) are not part of the audio.
                self.n_frames
                    .map(|n| n.checked_sub(self.trim).unwrap_or(n) as f64 / rate)
                    .or(counted)
            }
            None => counted,
        };
        Ok(MediaProbe::audio(MediaFormat::Mp3, duration))
    }
}
