//! Asset metadata and processing status: the [`AssetCatalog`] trait and its SQLite default.

mod fts;
mod sqlite;

pub use sqlite::SqliteCatalog;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

use crate::asset::AssetId;
use crate::error::{Error, Result};
use crate::index::{FieldValue, MetaPatch, RecordMeta};
use crate::media::{MediaFormat, MediaKind, MediaProbe};
use crate::store::MediaRef;

/// The step of the ingest pipeline an asset failed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IngestStage {
    /// Size, format and header checks.
    Validate,
    /// Writing the original to the media store.
    Store,
    /// Calling the embedding provider.
    Embed,
    /// Writing vectors to the index.
    Index,
    /// Being deleted: the deletion started and is finished by the next
    /// [`reconcile`](crate::Ingestor::reconcile) or `retry_failed` if it was interrupted.
    Delete,
}

impl IngestStage {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            IngestStage::Validate => "validate",
            IngestStage::Store => "store",
            IngestStage::Embed => "embed",
            IngestStage::Index => "index",
            IngestStage::Delete => "delete",
        }
    }
}

impl fmt::Display for IngestStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an asset is in the ingest pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AssetStatus {
    /// Validated and recorded; the original is stored or about to be.
    Pending,
    /// The original is stored and the provider is embedding it.
    Embedding,
    /// Vectors are in the index: the asset is searchable.
    Indexed,
    /// A stage failed; the original (if stored) is kept and `retry_failed` resumes.
    Failed {
        /// The stage that failed.
        stage: IngestStage,
        /// What went wrong.
        message: String,
    },
}

impl AssetStatus {
    /// The status without its details, for filtering.
    pub fn state(&self) -> AssetState {
        match self {
            AssetStatus::Pending => AssetState::Pending,
            AssetStatus::Embedding => AssetState::Embedding,
            AssetStatus::Indexed => AssetState::Indexed,
            AssetStatus::Failed { .. } => AssetState::Failed,
        }
    }
}

impl fmt::Display for AssetStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AssetStatus::Failed { stage, message } => write!(f, "failed at {stage}: {message}"),
            other => f.write_str(other.state().as_str()),
        }
    }
}

/// [`AssetStatus`] without details, for filters and counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssetState {
    /// See [`AssetStatus::Pending`].
    Pending,
    /// See [`AssetStatus::Embedding`].
    Embedding,
    /// See [`AssetStatus::Indexed`].
    Indexed,
    /// See [`AssetStatus::Failed`].
    Failed,
}

impl AssetState {
    /// All states, in pipeline order.
    pub const ALL: [AssetState; 4] = [
        AssetState::Pending,
        AssetState::Embedding,
        AssetState::Indexed,
        AssetState::Failed,
    ];

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            AssetState::Pending => "pending",
            AssetState::Embedding => "embedding",
            AssetState::Indexed => "indexed",
            AssetState::Failed => "failed",
        }
    }
}

impl std::str::FromStr for AssetState {
    type Err = crate::Error;
    /// Parses `pending`, `embedding`, `indexed` or `failed` (case-insensitive).
    fn from_str(s: &str) -> Result<Self> {
        AssetState::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                crate::Error::invalid_input(format!(
                    "unknown asset status {s:?} (pending, embedding, indexed, failed)"
                ))
            })
    }
}

impl fmt::Display for AssetState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything the catalog knows about one asset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssetRecord {
    /// Content hash.
    pub asset_id: AssetId,
    /// What the header says (format, dimensions, duration).
    pub probe: MediaProbe,
    /// Size of the original in bytes.
    pub size_bytes: u64,
    /// Where the original is stored, once it is.
    pub media: Option<MediaRef>,
    /// The name the user gave the file (shown, never used as a path).
    pub display_name: Option<String>,
    /// The file the asset was ingested from, if any: lets `retry_failed` resume an asset whose
    /// original never reached the store.
    #[serde(default)]
    pub source_path: Option<std::path::PathBuf>,
    /// The extension the name claimed when it disagrees with the content (accepted by content).
    pub extension_mismatch: Option<String>,
    /// Free-form tags, filterable in searches.
    pub tags: Vec<String>,
    /// The user's own fields, filterable in searches and matched by keyword search.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, FieldValue>,
    /// Pipeline status.
    pub status: AssetStatus,
    /// When the asset was first recorded, ms since the Unix epoch.
    pub created_at_ms: i64,
    /// When the record last changed, ms since the Unix epoch.
    pub updated_at_ms: i64,
}

impl AssetRecord {
    /// The asset's media kind.
    pub fn kind(&self) -> MediaKind {
        self.probe.format.kind()
    }

    /// The asset's format.
    pub fn format(&self) -> MediaFormat {
        self.probe.format
    }

    /// The metadata the asset's vectors carry in the index.
    pub fn index_meta(&self) -> RecordMeta {
        let mut meta = RecordMeta::new(self.kind(), self.format())
            .tags(self.tags.iter().cloned())
            .created_at_ms(self.created_at_ms);
        meta.name = self.display_name.clone();
        meta.duration_ms = self
            .probe
            .duration_sec
            .filter(|d| d.is_finite() && *d >= 0.0)
            .map(|d| (d * 1000.0).round() as u64);
        meta.fields = self.fields.clone();
        meta
    }

    /// Applies `patch` to the record's tags, fields and display name (validated first).
    pub fn apply_patch(&mut self, patch: &MetaPatch) -> Result<()> {
        patch.validate()?;
        let mut meta = self.index_meta();
        patch.apply_to(&mut meta)?;
        self.tags = meta.tags;
        self.fields = meta.fields;
        self.display_name = meta.name;
        Ok(())
    }
}

/// Which assets to list, and which page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetQuery {
    /// Only these kinds (empty: all).
    pub kinds: Vec<MediaKind>,
    /// Only these states (empty: all).
    pub states: Vec<AssetState>,
    /// Opaque cursor from the previous page's [`AssetPage::next_cursor`].
    pub cursor: Option<String>,
    /// Page size (1..=1000; larger values are clamped).
    pub limit: usize,
}

impl Default for AssetQuery {
    fn default() -> Self {
        AssetQuery {
            kinds: Vec::new(),
            states: Vec::new(),
            cursor: None,
            limit: 100,
        }
    }
}

impl AssetQuery {
    /// All assets, 100 a page.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only assets of `kind` (may be called several times).
    pub fn kind(mut self, kind: MediaKind) -> Self {
        self.kinds.push(kind);
        self
    }

    /// Only assets in `state` (may be called several times).
    pub fn state(mut self, state: AssetState) -> Self {
        self.states.push(state);
        self
    }

    /// Page size.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Continue after a previous page.
    pub fn cursor(mut self, cursor: impl Into<String>) -> Self {
        self.cursor = Some(cursor.into());
        self
    }
}

/// One page of assets, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct AssetPage {
    /// The assets on this page.
    pub assets: Vec<AssetRecord>,
    /// Cursor for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Number of assets in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCounts {
    /// Pending assets.
    pub pending: u64,
    /// Assets being embedded.
    pub embedding: u64,
    /// Searchable assets.
    pub indexed: u64,
    /// Failed assets.
    pub failed: u64,
}

impl StatusCounts {
    /// Total of all states.
    pub fn total(&self) -> u64 {
        self.pending + self.embedding + self.indexed + self.failed
    }
}

/// Asset metadata and status.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait AssetCatalog: Send + Sync {
    /// Inserts or replaces the record of `record.asset_id`.
    async fn upsert(&self, record: &AssetRecord) -> Result<()>;

    /// The record of `asset`, if there is one.
    async fn get(&self, asset: &AssetId) -> Result<Option<AssetRecord>>;

    /// Sets the status (and `updated_at_ms`) of an existing record. `NotFound` if there is none.
    async fn set_status(&self, asset: &AssetId, status: &AssetStatus) -> Result<()>;

    /// Lists assets, newest first, filtered and paginated by `query`.
    async fn list(&self, query: &AssetQuery) -> Result<AssetPage>;

    /// Applies `patch` to the record of `asset` (tags, fields, display name) and returns the
    /// new record; `NotFound` if there is none, `InvalidInput` (nothing changed) for a bad
    /// patch. The default reads, patches and writes back; catalogs with transactions override
    /// it to do so atomically.
    async fn update_meta(&self, asset: &AssetId, patch: &MetaPatch) -> Result<AssetRecord> {
        let mut record = self.get(asset).await?.ok_or_else(|| {
            Error::not_found("no such asset in the catalog").with_context("asset", asset.short())
        })?;
        record.apply_patch(patch)?;
        record.updated_at_ms = crate::asset::now_ms();
        self.upsert(&record).await?;
        Ok(record)
    }

    /// Removes a record; `false` if there was none.
    async fn remove(&self, asset: &AssetId) -> Result<bool>;

    /// Number of assets in each state.
    async fn counts(&self) -> Result<StatusCounts>;
}
