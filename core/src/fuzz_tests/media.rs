//! The media probes under mutated fixtures.

use proptest::prelude::*;

use crate::error::ErrorKind;
use crate::fuzz::{self, LIVENESS};
use crate::media::{MediaFormat, MediaKind, MediaLimits, check_size, probe};
use crate::test_support::fixture;
use crate::validate_media;

/// Bytes a probe may hold at once: twice the input (the audio reader works on a copy of the
/// stream) plus 1 MiB of fixed buffers (the audio reader's ring buffer, the MP4 parser's
/// tables).
pub(super) fn probe_bound(len: usize) -> usize {
    2 * len + (1 << 20)
}

/// The fixtures and a few valid variants of them (an ID3v2-tagged MP3, an MP3 without its
/// Info frame, an audio-only MP4 branded `isom`, a JPEG with trailing bytes after its marker).
fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds: Vec<(String, Vec<u8>)> = [
        "image.png",
        "image.jpg",
        "image.webp",
        "video.mp4",
        "video.mov",
        "audio.wav",
        "audio.mp3",
        "audio.m4a",
    ]
    .iter()
    .map(|name| (name.to_string(), fixture(name).to_vec()))
    .collect();
    let mp3 = fixture("audio.mp3").to_vec();
    let mut tagged = b"ID3\x04\0\0\0\0\0\x0A".to_vec();
    tagged.extend_from_slice(&[0; 10]);
    tagged.extend_from_slice(&mp3);
    seeds.push(("audio+id3.mp3".into(), tagged));
    // Without its first frame (the Info frame): a plain CBR stream, as older encoders wrote.
    let second = (4..mp3.len().min(2048))
        .find(|&o| mp3[o] == 0xFF && mp3[o + 1] & 0xE0 == 0xE0 && probe(&mp3[o..]).is_ok());
    if let Some(o) = second {
        seeds.push(("audio-noinfo.mp3".into(), mp3[o..].to_vec()));
    }
    let mut isom = fixture("audio.m4a").to_vec();
    isom[8..12].copy_from_slice(b"isom");
    seeds.push(("audio-isom.mp4".into(), isom));
    for (name, bytes) in &seeds {
        assert!(probe(bytes).is_ok(), "seed {name} must be valid");
    }
    seeds
}

fn check_probe_invariants(bytes: &[u8], p: &crate::MediaProbe) -> Result<(), TestCaseError> {
    prop_assert_eq!(p.kind(), p.format.kind());
    match p.kind() {
        MediaKind::Image => {
            prop_assert!(p.width.is_some_and(|w| w > 0) && p.height.is_some_and(|h| h > 0));
            prop_assert!(p.duration_sec.is_none());
        }
        MediaKind::Video => prop_assert!(p.has_video),
        MediaKind::Audio => prop_assert!(p.has_audio && !p.has_video),
    }
    if let Some(d) = p.duration_sec {
        prop_assert!(d.is_finite() && d >= 0.0, "duration {}", d);
    }
    // The sniffed format agrees with what the probe says (an audio-only MP4 may become M4A).
    let sniffed = MediaFormat::sniff(bytes);
    prop_assert!(sniffed.is_some());
    if let Some(s) = sniffed
        && s.kind() == MediaKind::Image
    {
        prop_assert_eq!(s, p.format);
    }
    Ok(())
}

#[test]
fn fuzz_media_probes() {
    let named = seeds();
    let names: Vec<String> = named.iter().map(|(n, _)| n.clone()).collect();
    let seeds: Vec<Vec<u8>> = named.into_iter().map(|(_, b)| b).collect();
    // (most bytes held, that input's length, panics caught inside third-party parsers)
    let worst = std::sync::Mutex::new((0usize, 0usize, 0u64));
    let tally = fuzz::run(
        "media probes",
        fuzz::cases(3000),
        fuzz::mutated(seeds),
        |(seed, bytes)| {
            let len = bytes.len();
            let input = bytes.clone();
            let ((outcome, peak), panics) = fuzz::within(LIVENESS, move || {
                fuzz::caught_panics(|| fuzz::measure(|| probe(&input)))
            })?;
            prop_assert!(
                peak <= probe_bound(len),
                "probe held {} bytes for a {}-byte input",
                peak,
                len
            );
            if let Ok(mut w) = worst.lock() {
                if peak > w.0 {
                    (w.0, w.1) = (peak, len);
                }
                w.2 += panics;
            }
            let name = names.get(seed).cloned().unwrap_or_default();
            let label = match &outcome {
                Ok(p) => {
                    check_probe_invariants(&bytes, p)?;
                    format!("{name}: ok {}", p.format)
                }
                Err(e) => {
                    prop_assert!(
                        matches!(
                            e.kind(),
                            ErrorKind::InvalidInput | ErrorKind::Unsupported | ErrorKind::Corrupt
                        ),
                        "{} answered {:?}: {}",
                        name,
                        e.kind(),
                        e
                    );
                    prop_assert!(!e.message().is_empty());
                    format!("{name}: {:?}", e.kind())
                }
            };
            // validate_media agrees with the probe and adds only the limits.
            let limits = MediaLimits::default();
            let valid = validate_media(&bytes, Some("upload.bin"), &limits);
            match (&outcome, &valid) {
                (Ok(p), Ok(v)) => {
                    prop_assert_eq!(p, &v.probe);
                    prop_assert_eq!(v.size_bytes, len as u64);
                }
                (Err(a), Err(b)) => prop_assert_eq!(a.kind(), b.kind()),
                (Ok(_), Err(b)) => prop_assert_eq!(b.kind(), ErrorKind::InvalidInput),
                (Err(a), Ok(_)) => {
                    prop_assert!(false, "probe failed ({}) but validation passed", a)
                }
            }
            // The head-only check never panics and agrees on the format.
            if let (Ok(p), Ok(f)) = (&outcome, check_size(&bytes, len as u64, &limits)) {
                prop_assert_eq!(f.kind() == MediaKind::Image, p.kind() == MediaKind::Image);
            }
            Ok(label)
        },
    );
    let (most, its_len, caught) = worst.lock().map(|w| *w).unwrap_or_default();
    eprintln!(
        "fuzz media probes: at most {most} bytes held (for a {its_len}-byte input; bound 2 x \
         input + 1 MiB), {caught} panics inside third-party parsers caught and reported as \
         Corrupt"
    );
    assert!(tally.inputs >= u64::from(fuzz::cases(3000)));
    // The mutations reach past the sniffing: some inputs still probe, many are corrupt.
    let ok = tally
        .outcomes
        .iter()
        .filter(|(k, _)| k.contains(": ok"))
        .count();
    assert!(
        ok >= 4,
        "mutated fixtures that still probe: {:?}",
        tally.outcomes
    );
    assert!(tally.outcomes.keys().any(|k| k.ends_with("Corrupt")));
}

#[test]
fn probe_refuses_huge_claims_before_allocating() {
    // Header fields that claim far more than the file holds: refused, and nothing near the
    // claimed size is allocated.
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    // PNG: an IHDR followed by a chunk claiming 2 GiB.
    let mut png = fixture("image.png")[..33].to_vec();
    png.extend_from_slice(&0x7FFF_FFFFu32.to_be_bytes());
    png.extend_from_slice(b"IDAT");
    cases.push(("png chunk", png));
    // MP4: a top-level box claiming 2^64 - 8 bytes through the 64-bit size.
    let mut mp4 = fixture("video.mp4")[..32].to_vec();
    mp4.extend_from_slice(&1u32.to_be_bytes());
    mp4.extend_from_slice(b"mdat");
    mp4.extend_from_slice(&(u64::MAX - 8).to_be_bytes());
    cases.push(("mp4 box", mp4));
    // M4A: an edit list claiming 2^32 - 129 entries in its 28-byte box (the MP4 parser
    // reserved 51 GB for it before the count was checked).
    let mut m4a = fixture("audio.m4a").to_vec();
    let elst = m4a.windows(4).position(|w| w == b"elst").unwrap();
    m4a[elst + 8..elst + 12].copy_from_slice(&0xFFFF_FF7Fu32.to_be_bytes());
    cases.push(("m4a edit list", m4a));
    // MP4: a sample-size table claiming 2^30 sizes.
    let mut mp4 = fixture("video.mp4").to_vec();
    let stsz = mp4.windows(4).position(|w| w == b"stsz").unwrap();
    mp4[stsz + 8..stsz + 12].copy_from_slice(&0u32.to_be_bytes());
    mp4[stsz + 12..stsz + 16].copy_from_slice(&(1u32 << 30).to_be_bytes());
    cases.push(("mp4 sample sizes", mp4));
    // WAV: a RIFF size of 4 GiB.
    let mut wav = fixture("audio.wav").to_vec();
    wav[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    cases.push(("wav riff", wav));
    // MP3: an ID3v2 tag claiming 256 MiB.
    let mut mp3 = b"ID3\x04\0\0\x7F\x7F\x7F\x7F".to_vec();
    mp3.extend_from_slice(&fixture("audio.mp3"));
    cases.push(("id3 tag", mp3));
    for (what, bytes) in cases {
        let (result, peak) = fuzz::measure(|| probe(&bytes));
        let err = result.expect_err(what);
        assert_eq!(err.kind(), ErrorKind::Corrupt, "{what}: {err}");
        assert!(
            peak <= probe_bound(bytes.len()),
            "{what}: {peak} bytes held"
        );
    }
}
