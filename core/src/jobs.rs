//! The job ledger: asynchronous embedding jobs recorded with their asset, so a job that outlives
//! the call that started it is picked up later instead of being paid for again.
//!
//! A provider whose model runs as a remote job (Marengo's `StartAsyncInvoke` on Amazon Bedrock,
//! which can take hours for a 4-hour video) records each job's handle in a [`JobLedger`] as soon
//! as the job is started, and removes it once the job's output is read. When a call gives up
//! waiting (a poll time-out, a crash, a dropped future), the record stays: the next call for the
//! same content, model and request options finds it, checks the job and reads its output.
//!
//! - [`MemoryJobLedger`]: the records live as long as the value (a retry within one process).
//! - [`SqliteJobLedger`]: the records survive restarts; its table, `embedding_jobs`, can live in
//!   the `catalog.db` file of the embedded default (it leaves `PRAGMA user_version`, which
//!   belongs to the catalog, alone).
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use crossmodal_core::{AssetId, JobKey, JobLedger, JobRecord, SqliteJobLedger};
//! let dir = tempfile::tempdir().unwrap();
//! let ledger = SqliteJobLedger::open(dir.path().join("catalog.db")).unwrap();
//! let key = JobKey::new(AssetId::from_content(b"video"), "twelvelabs.marengo-embed-3-0-v1:0", "seg=default");
//! let job = JobRecord::new(key.clone(), "arn:aws:bedrock:us-east-1:123456789012:async-invoke/abcdefghijkl",
//!                          "s3://my-bucket/marengo-output");
//! ledger.record(&job).await.unwrap();
//! // A later run, after a restart:
//! let again = SqliteJobLedger::open(dir.path().join("catalog.db")).unwrap();
//! assert_eq!(again.get(&key).await.unwrap().unwrap().invocation, job.invocation);
//! assert!(again.remove(&key).await.unwrap());
//! assert!(again.list().await.unwrap().is_empty());
//! # });
//! ```

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::asset::{AssetId, now_ms};
use crate::error::{Error, Result, join_error, sqlite_error};

/// What a job computes: the content, the model and the request options that change its output.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JobKey {
    /// Content hash of the media.
    pub content: AssetId,
    /// The model id the job runs.
    pub model_id: String,
    /// Everything else the output depends on (the provider's options fingerprint, plus per-call
    /// options such as a processing window).
    pub request: String,
}

impl JobKey {
    /// A key for `content` under `model_id` with `request` options.
    pub fn new(content: AssetId, model_id: impl Into<String>, request: impl Into<String>) -> Self {
        JobKey {
            content,
            model_id: model_id.into(),
            request: request.into(),
        }
    }
}

/// One job started and not yet consumed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JobRecord {
    /// What the job computes.
    pub key: JobKey,
    /// The provider's handle of the job (an invocation ARN for Bedrock).
    pub invocation: String,
    /// Where the job writes its output, as the provider asked for it.
    pub output_uri: String,
    /// When the job was started, milliseconds since the Unix epoch.
    pub started_at_ms: i64,
    /// A copy of the input the provider made for the job (a staged upload, as a URI), to
    /// delete once the job's output is read; `None` when the job reads the original.
    pub staged_input: Option<String>,
}

impl JobRecord {
    /// A record of a job started now.
    pub fn new(key: JobKey, invocation: impl Into<String>, output_uri: impl Into<String>) -> Self {
        JobRecord {
            key,
            invocation: invocation.into(),
            output_uri: output_uri.into(),
            started_at_ms: now_ms(),
            staged_input: None,
        }
    }

    /// The same record with the staged copy of its input.
    pub fn staged_input(mut self, uri: impl Into<String>) -> Self {
        self.staged_input = Some(uri.into());
        self
    }

    /// The same record with another start time.
    pub fn started_at_ms(mut self, ms: i64) -> Self {
        self.started_at_ms = ms;
        self
    }
}

/// Durable records of the asynchronous jobs a provider started, one per [`JobKey`].
#[async_trait]
pub trait JobLedger: Send + Sync + fmt::Debug {
    /// Records a job, replacing an earlier record of the same key.
    async fn record(&self, job: &JobRecord) -> Result<()>;

    /// The job recorded for `key`, if any.
    async fn get(&self, key: &JobKey) -> Result<Option<JobRecord>>;

    /// Removes the record of `key`; `false` if there was none.
    async fn remove(&self, key: &JobKey) -> Result<bool>;

    /// Every recorded job, oldest first (for operators: what is still running or unread).
    async fn list(&self) -> Result<Vec<JobRecord>>;
}

/// A [`JobLedger`] in memory: records last as long as the value (and its clones).
#[derive(Debug, Clone, Default)]
pub struct MemoryJobLedger {
    jobs: Arc<Mutex<HashMap<JobKey, JobRecord>>>,
}

impl MemoryJobLedger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl JobLedger for MemoryJobLedger {
    async fn record(&self, job: &JobRecord) -> Result<()> {
        self.jobs.lock().insert(job.key.clone(), job.clone());
        Ok(())
    }

    async fn get(&self, key: &JobKey) -> Result<Option<JobRecord>> {
        Ok(self.jobs.lock().get(key).cloned())
    }

    async fn remove(&self, key: &JobKey) -> Result<bool> {
        Ok(self.jobs.lock().remove(key).is_some())
    }

    async fn list(&self) -> Result<Vec<JobRecord>> {
        let mut all: Vec<JobRecord> = self.jobs.lock().values().cloned().collect();
        all.sort_by(|a, b| {
            a.started_at_ms
                .cmp(&b.started_at_ms)
                .then_with(|| a.key.cmp(&b.key))
        });
        Ok(all)
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS embedding_jobs (
    content       TEXT NOT NULL,
    model_id      TEXT NOT NULL,
    request       TEXT NOT NULL,
    invocation    TEXT NOT NULL,
    output_uri    TEXT NOT NULL,
    started_at_ms INTEGER NOT NULL,
    staged_input  TEXT,
    PRIMARY KEY (content, model_id, request)
);
";

/// A [`JobLedger`] in a SQLite database file (or in memory).
///
/// One table, `embedding_jobs`, which may share the file with
/// [`SqliteCatalog`](crate::SqliteCatalog) and
/// [`SqliteEmbeddingCache`](crate::SqliteEmbeddingCache) (each opens its own connection; WAL
/// makes that safe). Every write is committed before the call returns, so a job recorded right
/// after it was started survives a crash a moment later. Calls run on tokio's blocking pool;
/// clones share one connection.
#[derive(Clone)]
pub struct SqliteJobLedger {
    conn: Arc<Mutex<Connection>>,
    path: Option<PathBuf>,
}

impl fmt::Debug for SqliteJobLedger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteJobLedger")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteJobLedger {
    /// Opens (creating if needed) the ledger in the database file at `path`. Blocking; call it
    /// at start-up or from `spawn_blocking`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let ctx = |e: Error| e.with_context("path", path.display());
        let conn = Connection::open(path).map_err(|e| ctx(sqlite_error(e)))?;
        Self::init(conn, Some(path.to_path_buf())).map_err(ctx)
    }

    /// A ledger in a private in-memory database (gone when the value is dropped).
    pub fn open_in_memory() -> Result<Self> {
        Self::init(Connection::open_in_memory().map_err(sqlite_error)?, None)
    }

    /// The database file, `None` in memory.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn init(conn: Connection, path: Option<PathBuf>) -> Result<Self> {
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(sqlite_error)?;
        let _mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(sqlite_error)?;
        // FULL: a job's record is the only trace of a paid job; it must survive a power loss.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sqlite_error)?;
        conn.execute_batch(SCHEMA).map_err(sqlite_error)?;
        Ok(SqliteJobLedger {
            conn: Arc::new(Mutex::new(conn)),
            path,
        })
    }

    async fn with_conn<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || f(&mut conn.lock()))
            .await
            .map_err(join_error)?
    }
}

fn row_to_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<(String, JobRecord)> {
    let content: String = row.get(0)?;
    let record = JobRecord {
        key: JobKey {
            // Replaced below once the id is parsed (rusqlite's closure cannot return our error).
            content: AssetId::from_content(b""),
            model_id: row.get(1)?,
            request: row.get(2)?,
        },
        invocation: row.get(3)?,
        output_uri: row.get(4)?,
        started_at_ms: row.get(5)?,
        staged_input: row.get(6)?,
    };
    Ok((content, record))
}

fn finish_record((content, mut record): (String, JobRecord)) -> Result<JobRecord> {
    record.key.content = AssetId::parse(&content).map_err(|e| {
        Error::corrupt(format!(
            "job ledger row has a bad asset id: {}",
            e.message()
        ))
        .with_context("invocation", &record.invocation)
    })?;
    Ok(record)
}

#[async_trait]
impl JobLedger for SqliteJobLedger {
    async fn record(&self, job: &JobRecord) -> Result<()> {
        let job = job.clone();
        self.with_conn(move |conn| {
            conn.execute(
                "INSERT OR REPLACE INTO embedding_jobs
                     (content, model_id, request, invocation, output_uri, started_at_ms,
                      staged_input)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    job.key.content.as_str(),
                    job.key.model_id,
                    job.key.request,
                    job.invocation,
                    job.output_uri,
                    job.started_at_ms,
                    job.staged_input
                ],
            )
            .map_err(sqlite_error)?;
            Ok(())
        })
        .await
    }

    async fn get(&self, key: &JobKey) -> Result<Option<JobRecord>> {
        let key = key.clone();
        self.with_conn(move |conn| {
            let row = conn
                .query_row(
                    "SELECT content, model_id, request, invocation, output_uri, started_at_ms,
                            staged_input
                     FROM embedding_jobs WHERE content = ?1 AND model_id = ?2 AND request = ?3",
                    params![key.content.as_str(), key.model_id, key.request],
                    row_to_record,
                )
                .optional()
                .map_err(sqlite_error)?;
            row.map(finish_record).transpose()
        })
        .await
    }

    async fn remove(&self, key: &JobKey) -> Result<bool> {
        let key = key.clone();
        self.with_conn(move |conn| {
            let n = conn.execute(
                "DELETE FROM embedding_jobs WHERE content = ?1 AND model_id = ?2 AND request = ?3",
                params![key.content.as_str(), key.model_id, key.request],
            )
            .map_err(sqlite_error)?;
            Ok(n > 0)
        })
        .await
    }

    async fn list(&self) -> Result<Vec<JobRecord>> {
        self.with_conn(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT content, model_id, request, invocation, output_uri, started_at_ms,
                        staged_input
                 FROM embedding_jobs ORDER BY started_at_ms, content, model_id, request",
                )
                .map_err(sqlite_error)?;
            let rows = stmt.query_map([], row_to_record).map_err(sqlite_error)?;
            let mut out = Vec::new();
            for row in rows {
                out.push(finish_record(row.map_err(sqlite_error)?)?);
            }
            Ok(out)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8, request: &str) -> JobKey {
        JobKey::new(AssetId::from_content(&[n]), "model-a", request)
    }

    async fn behaves_as_a_ledger(ledger: &dyn JobLedger) {
        assert!(ledger.list().await.unwrap().is_empty());
        assert!(ledger.get(&key(1, "x")).await.unwrap().is_none());
        let a = JobRecord::new(key(1, "x"), "arn:a", "s3://b/out").started_at_ms(20);
        let b = JobRecord::new(key(2, "x"), "arn:b", "s3://b/out")
            .started_at_ms(10)
            .staged_input("s3://b/staging/x.mp4");
        ledger.record(&a).await.unwrap();
        ledger.record(&b).await.unwrap();
        assert_eq!(ledger.get(&key(1, "x")).await.unwrap(), Some(a.clone()));
        // Other request options are another job.
        assert!(ledger.get(&key(1, "y")).await.unwrap().is_none());
        // Oldest first.
        let all = ledger.list().await.unwrap();
        assert_eq!(all, vec![b.clone(), a.clone()]);
        // Recording the same key again replaces the record.
        let a2 = JobRecord::new(key(1, "x"), "arn:a2", "s3://b/out").started_at_ms(30);
        ledger.record(&a2).await.unwrap();
        assert_eq!(ledger.get(&key(1, "x")).await.unwrap(), Some(a2));
        assert_eq!(ledger.list().await.unwrap().len(), 2);
        assert!(ledger.remove(&key(1, "x")).await.unwrap());
        assert!(!ledger.remove(&key(1, "x")).await.unwrap());
        assert_eq!(ledger.list().await.unwrap(), vec![b]);
    }

    #[tokio::test]
    async fn memory_ledger_behaves_as_a_ledger() {
        behaves_as_a_ledger(&MemoryJobLedger::new()).await;
    }

    #[tokio::test]
    async fn sqlite_ledger_behaves_as_a_ledger() {
        behaves_as_a_ledger(&SqliteJobLedger::open_in_memory().unwrap()).await;
    }

    #[tokio::test]
    async fn sqlite_ledger_survives_reopening_and_shares_the_catalog_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.db");
        let user_version = || -> i64 {
            Connection::open(&path)
                .unwrap()
                .pragma_query_value(None, "user_version", |row| row.get(0))
                .unwrap()
        };
        let catalog = crate::SqliteCatalog::open(&path).unwrap();
        let catalog_version = user_version();
        let job = JobRecord::new(key(7, "seg=default"), "arn:x", "s3://b/out");
        {
            let ledger = SqliteJobLedger::open(&path).unwrap();
            ledger.record(&job).await.unwrap();
        }
        let ledger = SqliteJobLedger::open(&path).unwrap();
        assert_eq!(ledger.get(&job.key).await.unwrap(), Some(job));
        // The catalog's schema version is untouched and the catalog still opens.
        drop(catalog);
        assert_eq!(user_version(), catalog_version);
        crate::SqliteCatalog::open(&path).unwrap();
    }

    #[tokio::test]
    async fn a_damaged_row_is_reported_as_corrupt() {
        let ledger = SqliteJobLedger::open_in_memory().unwrap();
        ledger
            .conn
            .lock()
            .execute(
                "INSERT INTO embedding_jobs VALUES ('not-a-hash', 'm', 'r', 'arn:z', 's3://b', 0, NULL)",
                [],
            )
            .unwrap();
        let err = ledger.list().await.unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Corrupt);
        assert!(err.to_string().contains("arn:z"), "{err}");
    }
}
