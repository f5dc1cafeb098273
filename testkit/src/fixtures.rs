//! The tiny media fixtures in `tests/fixtures/media` (made by `scripts/make-fixtures.sh`).

use std::path::{Path, PathBuf};

/// The names of every fixture, one per supported format.
pub const ALL: [&str; 8] = [
    "image.png",
    "image.jpg",
    "image.webp",
    "video.mp4",
    "video.mov",
    "audio.wav",
    "audio.mp3",
    "audio.m4a",
];

/// The fixture directory (`<workspace>/tests/fixtures/media`), canonical (a browser's file
/// input refuses paths with `..`).
pub fn dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/media");
    dir.canonicalize().unwrap_or(dir)
}

/// The path of fixture `name`.
pub fn path(name: &str) -> PathBuf {
    dir().join(name)
}

/// The bytes of fixture `name` (panics if it is missing: the fixtures are in the repository).
pub fn read(name: &str) -> Vec<u8> {
    let p = path(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
}
