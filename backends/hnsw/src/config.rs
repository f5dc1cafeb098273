//! [`GraphConfig`]: the parameters a graph is built with.

use crate::GraphError;

/// Largest `m` accepted (layer 0 keeps `2 * m` links; a list length fits in a `u32` slot).
pub const MAX_M: usize = 128;

/// Largest `ef_construction` accepted (a sanity bound, far above useful values).
pub const MAX_EF_CONSTRUCTION: usize = 100_000;

/// How a graph is built.
///
/// ```
/// use crossmodal_hnsw::GraphConfig;
/// let config = GraphConfig::default().m(24).ef_construction(300);
/// assert_eq!((config.m, config.ef_construction), (24, 300));
/// assert!(config.validate().is_ok());
/// assert!(GraphConfig::default().m(1).validate().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct GraphConfig {
    /// Links per node on the upper layers (`M`); layer 0 keeps `2 * m`. Default 16.
    pub m: usize,
    /// Candidate list size while inserting (`efConstruction`). Default 200.
    pub ef_construction: usize,
    /// Seed of the level assignment: a node's level is a function of the seed and its id, so a
    /// graph built from the same vectors in the same order has the same levels however many
    /// threads insert.
    pub seed: u64,
    /// Fill the links the selection heuristic leaves free with the nearest candidates it
    /// rejected (`keepPrunedConnections` in the HNSW paper). Default `true`: it keeps small and
    /// clustered graphs connected; see the crate README for its effect on recall and speed.
    pub keep_pruned: bool,
}

impl Default for GraphConfig {
    fn default() -> Self {
        GraphConfig {
            m: 16,
            ef_construction: 200,
            seed: 0x5eed_c0de_2026,
            keep_pruned: true,
        }
    }
}

impl GraphConfig {
    /// Sets `m`.
    pub fn m(mut self, m: usize) -> Self {
        self.m = m;
        self
    }

    /// Sets `ef_construction`.
    pub fn ef_construction(mut self, ef: usize) -> Self {
        self.ef_construction = ef;
        self
    }

    /// Sets the level seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets whether pruned candidates fill free links.
    pub fn keep_pruned(mut self, on: bool) -> Self {
        self.keep_pruned = on;
        self
    }

    /// Links kept on layer 0.
    pub fn m0(&self) -> usize {
        2 * self.m
    }

    /// Checks the values; the error names the first bad one.
    pub fn validate(&self) -> Result<(), GraphError> {
        if !(2..=MAX_M).contains(&self.m) {
            return Err(GraphError::Config(format!(
                "m must be between 2 and {MAX_M}, got {}",
                self.m
            )));
        }
        if !(1..=MAX_EF_CONSTRUCTION).contains(&self.ef_construction) {
            return Err(GraphError::Config(format!(
                "ef_construction must be between 1 and {MAX_EF_CONSTRUCTION}, got {}",
                self.ef_construction
            )));
        }
        Ok(())
    }
}
