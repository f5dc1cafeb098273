//! # crossmodal-hnsw
//!
//! The embedded default [`VectorIndex`](crossmodal_core::VectorIndex) of
//! [crossmodal](https://docs.rs/crossmodal): an HNSW index on [`hnsw_rs`] that needs no server,
//! survives restarts and crashes, and answers filtered k-NN queries by cosine similarity.
//!
//! - One graph per [`EmbeddingSpace`](crossmodal_core::EmbeddingSpace); vectors are normalised at
//!   insert and compared with [`UnitCosine`] (`1 - a·b` with a SIMD inner product, clamped so it
//!   never panics).
//! - hnsw_rs builds and persists the graphs; queries walk a compact copy of the links (3-4x
//!   faster than hnsw_rs's own search at equal recall), or hnsw_rs's `search_filter` with a
//!   `FilterT` if [`GraphSearch::HnswRs`] is chosen.
//! - Filters (kind, format, asset ids, tags, time range) and tombstones are checked *inside* the
//!   graph walk; a walk that finds fewer than `k` matches is completed by an exact scan, and
//!   small or selective candidate sets are scanned exactly in the first place.
//! - Deletes and replacements leave tombstones that the search skips; a space's graph is rebuilt
//!   from its live vectors when tombstones pass [`HnswConfig::compaction_ratio`].
//! - [`VectorIndex::flush`](crossmodal_core::VectorIndex::flush) writes an atomic snapshot (fresh
//!   directory, fsync, manifest replaced by rename); [`HnswIndex::open`] loads it back, checking
//!   model id, dimension and per-file CRC-32s.
//!
//! See [`HnswIndex`] for an example and the crate README for the persistence guarantees.

#![warn(missing_docs)]
// Replaced by the storage-engine rewrite (issue 10); indexes here are bounded by the graph.
#![allow(clippy::indexing_slicing)]

mod config;
mod distance;
mod index;
mod links;
mod persist;
mod space;

pub use config::{HnswConfig, MAX_EF, MAX_M};
pub use distance::UnitCosine;
pub use index::{HnswIndex, SearchOptions, current_snapshot_dir};
pub use persist::{MANIFEST, OpenReport};
pub use space::{GraphSearch, SearchTrace};
