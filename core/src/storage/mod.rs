//! Durable storage of the embedded default: the directory lock, the write-ahead log, checked
//! data files and the huge-page row blocks the indexes keep vectors in.
//!
//! [`DirLock`] and [`StorageConfig`] are public; the rest serves `FlatIndex` and `HnswIndex`.

pub(crate) mod blocks;
pub(crate) mod codec;
pub(crate) mod files;
pub mod lock;
pub(crate) mod mapped;
pub(crate) mod wal;

pub use lock::DirLock;

use crate::error::{Error, Result};

/// Name of the manifest file in an index directory.
pub const MANIFEST: &str = "MANIFEST";

/// How an index persists: when it checkpoints, compacts, and how far linking may lag.
///
/// ```
/// use crossmodal_core::storage::StorageConfig;
/// let config = StorageConfig::default().checkpoint_ratio(0.5).max_log_bytes(128 << 20);
/// assert!(config.validate().is_ok());
/// assert!(StorageConfig::default().checkpoint_ratio(0.0).validate().is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StorageConfig {
    /// Checkpoint when the log reaches this share of the checkpointed data (so checkpoints
    /// cost a bounded multiple of what was written). Default 0.25.
    pub checkpoint_ratio: f64,
    /// ...but not before the log holds this many bytes. Default 4 MiB.
    pub min_checkpoint_bytes: u64,
    /// ...and always once it holds this many (bounds what an open replays). Default 64 MiB.
    pub max_log_bytes: u64,
    /// Rebuild a space without its tombstones once they pass this share of its rows (in the
    /// background, beside the live space). Default 0.2; `1.0` or more: never automatically.
    pub compaction_ratio: f64,
    /// Unlinked rows per space above which an upsert waits for the graph to catch up.
    /// Default 32,768.
    pub max_pending: usize,
    /// HNSW: once linking has caught up, checkpoint if this share of the graphs' nodes (at
    /// least 1,024) was linked after the last checkpoint. An open relinks what the
    /// checkpoint's graph lacks, with searches scanning those rows exactly meanwhile, so this
    /// bounds that work to a share of the index, for one rewrite of the links per that share
    /// of growth. Default 0.02; `1.0` or more: never (only the log's size checkpoints).
    pub link_checkpoint_ratio: f64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            checkpoint_ratio: 0.25,
            min_checkpoint_bytes: 4 << 20,
            max_log_bytes: 64 << 20,
            compaction_ratio: 0.2,
            max_pending: 32_768,
            link_checkpoint_ratio: 0.02,
        }
    }
}

impl StorageConfig {
    /// Sets the log share that triggers a checkpoint.
    pub fn checkpoint_ratio(mut self, ratio: f64) -> Self {
        self.checkpoint_ratio = ratio;
        self
    }

    /// Sets the log size below which no checkpoint is written.
    pub fn min_checkpoint_bytes(mut self, bytes: u64) -> Self {
        self.min_checkpoint_bytes = bytes;
        self
    }

    /// Sets the log size that always triggers a checkpoint.
    pub fn max_log_bytes(mut self, bytes: u64) -> Self {
        self.max_log_bytes = bytes;
        self
    }

    /// Sets the tombstone share that triggers a compaction (`>= 1.0`: never automatically).
    pub fn compaction_ratio(mut self, ratio: f64) -> Self {
        self.compaction_ratio = ratio;
        self
    }

    /// Sets how many rows may wait to be linked before upserts wait.
    pub fn max_pending(mut self, rows: usize) -> Self {
        self.max_pending = rows;
        self
    }

    /// Sets the share of newly linked nodes that makes an idle linker checkpoint (`>= 1.0`:
    /// never).
    pub fn link_checkpoint_ratio(mut self, ratio: f64) -> Self {
        self.link_checkpoint_ratio = ratio;
        self
    }

    /// Checks the values; `InvalidInput` names the first bad one.
    pub fn validate(&self) -> Result<()> {
        if !(self.checkpoint_ratio.is_finite() && self.checkpoint_ratio > 0.0) {
            return Err(Error::invalid_input(format!(
                "storage checkpoint_ratio must be a positive number, got {}",
                self.checkpoint_ratio
            )));
        }
        if !(self.compaction_ratio.is_finite() && self.compaction_ratio > 0.0) {
            return Err(Error::invalid_input(format!(
                "storage compaction_ratio must be a positive number, got {}",
                self.compaction_ratio
            )));
        }
        if !(self.link_checkpoint_ratio.is_finite() && self.link_checkpoint_ratio > 0.0) {
            return Err(Error::invalid_input(format!(
                "storage link_checkpoint_ratio must be a positive number, got {}",
                self.link_checkpoint_ratio
            )));
        }
        if self.max_log_bytes == 0 {
            return Err(Error::invalid_input(
                "storage max_log_bytes must be at least 1",
            ));
        }
        if self.max_pending == 0 {
            return Err(Error::invalid_input(
                "storage max_pending must be at least 1",
            ));
        }
        Ok(())
    }
}
