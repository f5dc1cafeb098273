//! [`HnswConfig`]: graph parameters, search width, compaction and persistence settings.

use std::path::{Path, PathBuf};

use crossmodal_core::{Error, Result};

use crate::space::GraphSearch;

/// Largest `m` accepted. hnsw_rs stores the connection count in a `u8` and exits the process
/// above 256, so the limit is enforced here, before the graph is created.
pub const MAX_M: usize = 128;

/// Largest `ef_construction` / `ef_search` accepted (a sanity bound, far above useful values).
pub const MAX_EF: usize = 100_000;

/// Settings of an [`HnswIndex`](crate::HnswIndex).
///
/// A plain struct with [`Default`] and builder-style setters:
///
/// ```
/// use crossmodal_hnsw::HnswConfig;
/// let config = HnswConfig::default().m(24).ef_search(96).compaction_ratio(0.3);
/// assert_eq!(config.m, 24);
/// assert_eq!(config.ef_construction, 200);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct HnswConfig {
    /// Links per node and layer (`M`; layer 0 keeps `2 * m`). Default 16, allowed `2..=128`.
    pub m: usize,
    /// Candidate list size while building (`efConstruction`). Default 200.
    pub ef_construction: usize,
    /// Candidate list size while searching (`ef`), raised to at least `k`. Default 96
    /// (64 gives recall@10 0.94 on the conformance data, 96 gives 0.97; see the README).
    pub ef_search: usize,
    /// Expected number of vectors per space: a capacity hint for the graph's tables. Default 16,384.
    pub max_elements: usize,
    /// Share of tombstones (deleted or replaced vectors still in a graph) above which the space's
    /// graph is rebuilt from its live vectors. Default 0.2; `1.0` or more disables automatic
    /// compaction ([`HnswIndex::compact`](crate::HnswIndex::compact) still works).
    pub compaction_ratio: f64,
    /// A search whose candidate vectors (the space's live vectors, times the filter's estimated
    /// selectivity) add up to at most this many bytes scans them exactly instead of walking the
    /// graph: below that size a streaming scan is as fast as the walk, and exact. Default
    /// 16 MiB (8k vectors of 512 dims); `0` always walks the graph.
    pub exact_scan_bytes: usize,
    /// A filtered search whose filter is estimated (from 256 sampled rows) to match less than
    /// this share of a space scans the matching vectors exactly: a graph walk must visit about
    /// `ef / selectivity` nodes to collect `ef` matches, so selective filters are cheaper (and
    /// exact) to scan (at 100k x 1024 a 10% filter: walk 8.9 ms, scan 6.2 ms). Default 0.15;
    /// `0.0` walks the graph unless `exact_scan_bytes` applies
    /// (results are still completed exactly when a walk finds fewer than `k`).
    pub exact_filter_selectivity: f64,
    /// Which graph search runs: this crate's walk over a compact copy of the links (default) or
    /// hnsw_rs's own `search_filter` with a `FilterT` (3-4x slower; kept for comparison).
    pub graph_search: GraphSearch,
    /// Directory holding the index's snapshots; `None` keeps the index in memory only.
    pub dir: Option<PathBuf>,
    /// Whether snapshots also store the graphs (hnsw_rs dump files), so reopening loads them
    /// instead of rebuilding them from the vectors. Default `true`.
    pub persist_graph: bool,
}

impl Default for HnswConfig {
    fn default() -> Self {
        HnswConfig {
            m: 16,
            ef_construction: 200,
            ef_search: 96,
            max_elements: 16_384,
            compaction_ratio: 0.2,
            exact_scan_bytes: 16 << 20,
            exact_filter_selectivity: 0.15,
            graph_search: GraphSearch::Links,
            dir: None,
            persist_graph: true,
        }
    }
}

impl HnswConfig {
    /// Sets `m` (links per node and layer).
    pub fn m(mut self, m: usize) -> Self {
        self.m = m;
        self
    }

    /// Sets `ef_construction`.
    pub fn ef_construction(mut self, ef: usize) -> Self {
        self.ef_construction = ef;
        self
    }

    /// Sets `ef_search` (raised to at least `k` per query).
    pub fn ef_search(mut self, ef: usize) -> Self {
        self.ef_search = ef;
        self
    }

    /// Sets the capacity hint (expected vectors per space).
    pub fn max_elements(mut self, n: usize) -> Self {
        self.max_elements = n;
        self
    }

    /// Sets the tombstone share that triggers compaction (`>= 1.0` disables it).
    pub fn compaction_ratio(mut self, ratio: f64) -> Self {
        self.compaction_ratio = ratio;
        self
    }

    /// Sets the estimated filter selectivity below which filtered searches scan exactly.
    pub fn exact_filter_selectivity(mut self, share: f64) -> Self {
        self.exact_filter_selectivity = share;
        self
    }

    /// Sets the candidate bytes up to which searches scan exactly (`0`: never by size).
    pub fn exact_scan_bytes(mut self, bytes: usize) -> Self {
        self.exact_scan_bytes = bytes;
        self
    }

    /// Chooses the graph search implementation.
    pub fn graph_search(mut self, search: GraphSearch) -> Self {
        self.graph_search = search;
        self
    }

    /// Always walks the graph (no planned exact scans; a short walk is still completed exactly).
    pub fn always_walk_graph(self) -> Self {
        self.exact_scan_bytes(0).exact_filter_selectivity(0.0)
    }

    /// Persists the index in `dir`.
    pub fn dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Keeps the index in memory only.
    pub fn in_memory(mut self) -> Self {
        self.dir = None;
        self
    }

    /// Whether snapshots store the graphs as well as the vectors.
    pub fn persist_graph(mut self, yes: bool) -> Self {
        self.persist_graph = yes;
        self
    }

    /// Checks every value; `InvalidInput` names the first bad one.
    pub fn validate(&self) -> Result<()> {
        if !(2..=MAX_M).contains(&self.m) {
            return Err(Error::invalid_input(format!(
                "hnsw m must be between 2 and {MAX_M}, got {}",
                self.m
            )));
        }
        if !(1..=MAX_EF).contains(&self.ef_construction) {
            return Err(Error::invalid_input(format!(
                "hnsw ef_construction must be between 1 and {MAX_EF}, got {}",
                self.ef_construction
            )));
        }
        if !(1..=MAX_EF).contains(&self.ef_search) {
            return Err(Error::invalid_input(format!(
                "hnsw ef_search must be between 1 and {MAX_EF}, got {}",
                self.ef_search
            )));
        }
        if !(1..=(1usize << 32)).contains(&self.max_elements) {
            return Err(Error::invalid_input(format!(
                "hnsw max_elements must be between 1 and 2^32, got {}",
                self.max_elements
            )));
        }
        if !(self.compaction_ratio.is_finite() && self.compaction_ratio > 0.0) {
            return Err(Error::invalid_input(format!(
                "hnsw compaction_ratio must be a positive number, got {}",
                self.compaction_ratio
            )));
        }
        if !(self.exact_filter_selectivity.is_finite()
            && (0.0..=1.0).contains(&self.exact_filter_selectivity))
        {
            return Err(Error::invalid_input(format!(
                "hnsw exact_filter_selectivity must be in [0, 1], got {}",
                self.exact_filter_selectivity
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        assert!(HnswConfig::default().validate().is_ok());
        for (config, word) in [
            (HnswConfig::default().m(1), "m"),
            (HnswConfig::default().m(300), "m"),
            (HnswConfig::default().ef_construction(0), "ef_construction"),
            (HnswConfig::default().ef_search(0), "ef_search"),
            (HnswConfig::default().max_elements(0), "max_elements"),
            (
                HnswConfig::default().max_elements(usize::MAX),
                "max_elements",
            ),
            (
                HnswConfig::default().compaction_ratio(f64::NAN),
                "compaction_ratio",
            ),
            (
                HnswConfig::default().compaction_ratio(0.0),
                "compaction_ratio",
            ),
            (
                HnswConfig::default().exact_filter_selectivity(2.0),
                "exact_filter_selectivity",
            ),
        ] {
            let err = config.validate().unwrap_err();
            assert_eq!(err.kind(), crossmodal_core::ErrorKind::InvalidInput);
            assert!(err.message().contains(word), "{err}");
        }
    }
}
