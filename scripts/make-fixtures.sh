#!/usr/bin/env bash
# Regenerates the tiny media fixtures in tests/fixtures/media/ used by the probe tests.
#
# Every file is 64x48 (images, video) and/or 2 s long (video, audio), each well under 40 KB.
# Flags aim at reproducible output: bit-exact muxing and encoding, no metadata, one thread.
# Byte-identical output is only expected with the same ffmpeg/x264/lame versions.
#
# Usage: scripts/make-fixtures.sh   (from anywhere; needs ffmpeg on PATH or $FFMPEG)
set -euo pipefail

FFMPEG="${FFMPEG:-ffmpeg}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/tests/fixtures/media"
mkdir -p "$OUT"

# Common options: quiet, overwrite, deterministic, no metadata or chapters.
COMMON=(-hide_banner -loglevel error -y)
EXACT=(-threads 1 -fflags +bitexact -flags:v +bitexact -flags:a +bitexact
    -map_metadata -1 -map_chapters -1)

# Sources: a 64x48 test pattern and a 440 Hz sine.
PATTERN="testsrc=size=64x48:rate=10"
sine() { echo "sine=frequency=440:sample_rate=$1:duration=2"; }

ff() { "$FFMPEG" "${COMMON[@]}" "$@"; }

# Images: one frame of the test pattern.
ff -f lavfi -i "$PATTERN" -frames:v 1 "${EXACT[@]}" -c:v png -pred mixed "$OUT/image.png"
ff -f lavfi -i "$PATTERN" -frames:v 1 "${EXACT[@]}" -c:v mjpeg -q:v 5 -pix_fmt yuvj420p \
    "$OUT/image.jpg"
ff -f lavfi -i "$PATTERN" -frames:v 1 "${EXACT[@]}" -c:v libwebp -lossless 0 -quality 60 \
    "$OUT/image.webp"

# Videos: 2 s of the pattern at 10 fps with a 2 s sine track.
ff -f lavfi -i "$PATTERN" -f lavfi -i "$(sine 22050)" -t 2 "${EXACT[@]}" \
    -c:v libx264 -preset veryfast -crf 35 -pix_fmt yuv420p -x264-params threads=1 \
    -c:a aac -b:a 24k -ac 1 "$OUT/video.mp4"
ff -f lavfi -i "$PATTERN" -f lavfi -i "$(sine 22050)" -t 2 "${EXACT[@]}" \
    -c:v mpeg4 -q:v 10 -pix_fmt yuv420p -c:a aac -b:a 24k -ac 1 "$OUT/video.mov"

# Audio: 2 s of sine.
ff -f lavfi -i "$(sine 8000)" "${EXACT[@]}" -c:a pcm_s16le -ac 1 "$OUT/audio.wav"
# MPEG-1 layer III at 44.1 kHz, so the file starts FF FB (MediaFormat::sniff, via `infer`, only
# recognises MP3s starting with FF FB or an ID3 tag), with a Xing/Info header and no ID3 tags.
ff -f lavfi -i "$(sine 44100)" "${EXACT[@]}" -c:a libmp3lame -b:a 32k -ac 1 \
    -write_xing 1 -id3v2_version 0 -write_id3v1 0 "$OUT/audio.mp3"
ff -f lavfi -i "$(sine 22050)" "${EXACT[@]}" -c:a aac -b:a 24k -ac 1 "$OUT/audio.m4a"

ls -l "$OUT"
