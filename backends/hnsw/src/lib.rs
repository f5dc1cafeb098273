//! # crossmodal-hnsw
//!
//! The HNSW graph behind crossmodal's embedded default index (`crossmodal::HnswIndex`): a
//! navigable small-world graph (Malkov & Yashunin) kept compact, built by its own concurrent
//! insert, searched best-first with a caller's filter inside the walk, and saved in a checked
//! file format. It knows nothing of vectors: whoever stores them answers distances through
//! [`Vectors`] (node to node, for inserts) and [`QueryDistance`] (query to node, for searches),
//! so the same graph serves f32 vectors and quantised codes.
//!
//! - **Compact links**: layer 0 is one fixed-stride `u32` array per node (`2m` links plus a
//!   length) in chunks that never move; the few nodes on higher layers get a second arena. At
//!   m = 16 that is 132 bytes a node (6% of a 512-dimensional f32 vector).
//! - **Concurrent insert** ([`Graph::insert`], [`Graph::insert_range`]): the search for a new
//!   node's neighbours runs lock-free; only the lists it changes are locked (striped locks), as
//!   in hnswlib. Searches run while nodes are inserted.
//! - **Filtered search** ([`Graph::search`]): an `accept` test runs inside the walk; rejected
//!   nodes are traversed but never returned, and the walk widens until it holds `ef` accepted
//!   nodes or runs out of candidates.
//! - **hnsw_rs** (feature `hnsw-rs`): [`build_with_hnsw_rs`] builds the same graph with
//!   hnsw_rs's `parallel_insert`, for comparison.
//!
//! ```
//! use crossmodal_hnsw::{Graph, GraphConfig, QueryDistance, SearchScratch, Vectors};
//!
//! // Points on a line; distance = |a - b|.
//! struct Line(Vec<f32>);
//! impl Vectors for Line {
//!     fn distance(&self, a: u32, b: u32) -> f32 { (self.0[a as usize] - self.0[b as usize]).abs() }
//! }
//! struct To<'a>(&'a Line, f32);
//! impl QueryDistance for To<'_> {
//!     fn distance(&self, id: u32) -> f32 { (self.0.0[id as usize] - self.1).abs() }
//! }
//!
//! let points = Line((0..1000).map(|i| i as f32).collect());
//! let mut graph = Graph::new(GraphConfig::default().m(8)).unwrap();
//! graph.push_nodes(1000).unwrap();
//! // One thread: the same graph every run (with more, the order of inserts varies).
//! graph.insert_range(0, 1000, 1, &points);
//! let mut scratch = SearchScratch::new();
//! let hits = graph.search(&mut scratch, 64, &To(&points, 417.2), |id| id % 2 == 0);
//! assert!(hits.iter().all(|h| h.id % 2 == 0)); // only what the filter accepts
//! assert_eq!(hits[0].id, 418); // the nearest even point
//! ```
#![cfg_attr(
    not(feature = "hnsw-rs"),
    doc = "[`build_with_hnsw_rs`]: https://docs.rs/crossmodal-hnsw/latest/crossmodal_hnsw/fn.build_with_hnsw_rs.html"
)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

mod config;
mod graph;
#[cfg(feature = "hnsw-rs")]
mod hnsw_rs_builder;
mod insert;
mod persist;
mod search;

pub use config::{GraphConfig, MAX_EF_CONSTRUCTION, MAX_M};
pub use graph::{Graph, MAX_LEVEL};
#[cfg(feature = "hnsw-rs")]
pub use hnsw_rs_builder::build_with_hnsw_rs;
pub use insert::Vectors;
pub use search::{Neighbour, QueryDistance, SearchScratch};

/// What can go wrong with a graph.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GraphError {
    /// A configuration value is out of range.
    #[error("invalid graph configuration: {0}")]
    Config(String),
    /// More nodes than ids (`u32`) can name.
    #[error("a graph holds at most 2^32 - 1 nodes, {0} requested")]
    Capacity(usize),
    /// A graph file is damaged or belongs to another configuration.
    #[error("corrupt graph file: {0}")]
    Corrupt(String),
    /// Reading or writing failed.
    #[error("graph file I/O while reading the {0}: {1}")]
    Io(String, #[source] std::io::Error),
    /// The optional hnsw_rs builder failed.
    #[error("hnsw_rs builder: {0}")]
    Builder(String),
}
