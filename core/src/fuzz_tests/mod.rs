//! Fuzz targets of the crate's parsers of untrusted bytes (run with the unit tests; see
//! [`crate::fuzz`] for the driver and `CROSSMODAL_FUZZ_CASES` for a longer run):
//!
//! - `media`: every format probe (PNG, JPEG, WEBP, MP4/MOV boxes, WAV, MP3, M4A) through
//!   [`crate::media::probe`] and [`crate::validate_media`], seeded from `tests/fixtures/media`.
//! - `storage`: the storage engine's files: log files (`storage::wal::read`), log records
//!   (`Op::decode`), the asset table (`AssetTable::decode`), rows (`Row::decode`) and the
//!   graph file (`crossmodal_hnsw::Graph::read`), seeded from valid encodings.
//! - `open`: `HnswIndex::open` on a directory one of whose files is mutated, raw (the
//!   manifest's checksums must catch it) or re-sealed (checksums fixed up, so the decoders
//!   behind them see the damage).
//! - `cache`: the SQLite embedding cache's payload decoder.
//!
//! Every target asserts: no panic, no hang (a liveness bound per input), a typed error of the
//! documented kind or a result that satisfies the format's invariants, and a bound on the
//! bytes held relative to the input's size (the unit-test binary counts allocations with
//! [`crate::fuzz::CountingAllocator`]).

mod cache;
mod media;
mod open;
mod storage;

/// The unit-test binary's allocator counts bytes per thread (for the fuzz targets' bounds).
#[global_allocator]
static ALLOC: crate::fuzz::CountingAllocator = crate::fuzz::CountingAllocator;

#[test]
fn the_counting_allocator_is_installed() {
    assert!(crate::fuzz::counting_installed());
}
