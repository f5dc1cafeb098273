//! [`SqliteCatalog`]: the embedded default [`AssetCatalog`], on SQLite.

use async_trait::async_trait;
use parking_lot::Mutex;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params, params_from_iter};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::{
    AssetCatalog, AssetPage, AssetQuery, AssetRecord, AssetState, AssetStatus, StatusCounts,
};
use crate::asset::{AssetId, now_ms};
use crate::error::{Error, ErrorKind, Result};
use crate::index::MetaPatch;
use crate::keywords::{KeywordHit, KeywordIndex, KeywordQuery};
use crate::media::MediaKind;

/// The schema version this code writes, kept in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 2;

/// Largest page [`AssetCatalog::list`] returns.
const MAX_PAGE: usize = 1000;

/// Version 1: one row per asset; the record itself is JSON, the columns are what queries filter
/// and sort on. The index serves `list` for any kind/state filter (see [`list_sql`]).
pub(super) const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS assets (
    asset_id      TEXT PRIMARY KEY NOT NULL,
    kind          TEXT NOT NULL,
    state         TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    record        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS assets_kind_state_created
    ON assets (kind, state, created_at_ms, asset_id);
";

/// An [`AssetCatalog`] in a SQLite database file (or in memory).
///
/// - One table, `assets`, holding each [`AssetRecord`] as JSON next to the columns queries use,
///   with an index on `(kind, state, created_at_ms, asset_id)`: listing a hundred thousand assets
///   by kind and status, page by page, reads only the rows of each page.
/// - WAL journal, `synchronous=NORMAL`, a 5 s busy timeout; the schema version lives in
///   `PRAGMA user_version`, so the file can be shared with other tables (such as
///   [`SqliteEmbeddingCache`](crate::SqliteEmbeddingCache)'s) as long as they leave it alone.
/// - Every call runs on tokio's blocking pool; clones share one connection.
///
/// ```
/// # block_on(async {
/// use crossmodal_core::{AssetCatalog, AssetId, AssetQuery, AssetRecord, AssetState, AssetStatus,
///     MediaFormat, MediaKind, MediaProbe, SqliteCatalog};
/// let dir = tempfile::tempdir().unwrap();
/// let catalog = SqliteCatalog::open(dir.path().join("catalog.db")).unwrap();
/// let record = AssetRecord {
///     asset_id: AssetId::from_content(b"some png"),
///     probe: MediaProbe { format: MediaFormat::Png, width: Some(64), height: Some(48),
///         duration_sec: None, has_video: false, has_audio: false },
///     size_bytes: 8,
///     media: None,
///     display_name: Some("cat.png".into()),
///     source_path: None,
///     extension_mismatch: None,
///     tags: vec!["pets".into()],
///     fields: Default::default(),
///     status: AssetStatus::Pending,
///     created_at_ms: crossmodal_core::now_ms(),
///     updated_at_ms: crossmodal_core::now_ms(),
/// };
/// catalog.upsert(&record).await.unwrap();
/// catalog.set_status(&record.asset_id, &AssetStatus::Indexed).await.unwrap();
/// let page = catalog
///     .list(&AssetQuery::new().kind(MediaKind::Image).state(AssetState::Indexed))
///     .await
///     .unwrap();
/// assert_eq!(page.assets.len(), 1);
/// assert_eq!(catalog.counts().await.unwrap().indexed, 1);
/// # });
/// # fn block_on(f: impl std::future::Future<Output = ()>) {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Clone)]
pub struct SqliteCatalog {
    conn: Arc<Mutex<Connection>>,
    path: Option<PathBuf>,
}

impl fmt::Debug for SqliteCatalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteCatalog")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteCatalog {
    /// Opens (creating if needed) the catalog in the database file at `path`, and creates or
    /// migrates its schema.
    ///
    /// Blocking; call it at start-up or from `spawn_blocking`. Fails with `Unsupported` if the
    /// file was written by a newer schema version.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let ctx = |e: Error| e.with_context("path", path.display());
        let conn = Connection::open(path).map_err(|e| ctx(crate::error::sqlite_error(e)))?;
        Self::init(conn, Some(path.to_path_buf())).map_err(ctx)
    }

    /// A catalog in a private in-memory database (gone when the value is dropped).
    pub fn open_in_memory() -> Result<Self> {
        Self::init(
            Connection::open_in_memory().map_err(crate::error::sqlite_error)?,
            None,
        )
    }

    /// The database file, `None` in memory.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn init(mut conn: Connection, path: Option<PathBuf>) -> Result<Self> {
        configure(&conn)?;
        migrate(&mut conn)?;
        Ok(SqliteCatalog {
            conn: Arc::new(Mutex::new(conn)),
            path,
        })
    }

    /// Runs `f` with the connection on tokio's blocking pool.
    async fn with_conn<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || f(&mut conn.lock()))
            .await
            .map_err(crate::error::join_error)?
    }
}

/// WAL journal, `synchronous=NORMAL`, 5 s busy timeout.
fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(crate::error::sqlite_error)?;
    // In-memory databases answer "memory"; either is fine.
    let _mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(crate::error::sqlite_error)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(crate::error::sqlite_error)?;
    Ok(())
}

/// Brings the schema to [`SCHEMA_VERSION`].
fn migrate(conn: &mut Connection) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(crate::error::sqlite_error)?;
    let version: i64 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(crate::error::sqlite_error)?;
    if version > SCHEMA_VERSION {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "catalog schema version {version} is newer than this library supports \
                 ({SCHEMA_VERSION}); upgrade crossmodal"
            ),
        ));
    }
    if version < 1 {
        tx.execute_batch(SCHEMA_V1)
            .map_err(crate::error::sqlite_error)?;
    }
    if version < 2 {
        tx.execute_batch(super::fts::SCHEMA_V2)
            .map_err(crate::error::sqlite_error)?;
        super::fts::backfill(&tx)?;
    }
    if version < SCHEMA_VERSION {
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(crate::error::sqlite_error)?;
    }
    tx.commit().map_err(crate::error::sqlite_error)?;
    Ok(())
}

fn parse_state(s: &str) -> Option<AssetState> {
    AssetState::ALL.into_iter().find(|st| st.as_str() == s)
}

pub(super) fn decode_record(asset_id: &str, json: &str) -> Result<AssetRecord> {
    serde_json::from_str(json).map_err(|e| {
        Error::corrupt(format!("catalog record does not parse: {e}"))
            .with_context("asset", asset_id)
            .with_source(e)
    })
}

/// Encodes the position after `record` as an opaque cursor.
fn encode_cursor(created_at_ms: i64, asset_id: &str) -> String {
    format!("c1.{created_at_ms}.{asset_id}")
}

/// Decodes a cursor from [`encode_cursor`]; anything else is `InvalidInput`.
fn decode_cursor(cursor: &str) -> Result<(i64, AssetId)> {
    let bad = || Error::invalid_input("malformed catalog cursor").with_context("cursor", cursor);
    let rest = cursor.strip_prefix("c1.").ok_or_else(bad)?;
    let (ms, id) = rest.split_once('.').ok_or_else(bad)?;
    let ms: i64 = ms.parse().map_err(|_| bad())?;
    let id = AssetId::parse(id).map_err(|_| bad())?;
    Ok((ms, id))
}

/// The SQL of one `list` page, and its parameters.
///
/// Each (kind, state) pair is a separate index range already in `(created_at_ms, asset_id)`
/// order, so each subquery reads at most `fetch` index entries; the outer query merges at most
/// 3 × 4 such runs. No filter combination scans the table.
fn list_sql(
    kinds: &[MediaKind],
    states: &[AssetState],
    cursor: Option<&(i64, AssetId)>,
    fetch: usize,
) -> (String, Vec<Value>) {
    // ?1, ?2: cursor; ?3: rows to fetch; then kinds, then states.
    let mut params: Vec<Value> = vec![
        Value::Integer(cursor.map_or(0, |c| c.0)),
        Value::Text(cursor.map_or_else(String::new, |c| c.1.as_str().to_string())),
        Value::Integer(i64::try_from(fetch).unwrap_or(i64::MAX)),
    ];
    let keyset = if cursor.is_some() {
        " AND (created_at_ms, asset_id) < (?1, ?2)"
    } else {
        ""
    };
    let kind_base = params.len() + 1;
    params.extend(kinds.iter().map(|k| Value::Text(k.as_str().into())));
    let state_base = params.len() + 1;
    params.extend(states.iter().map(|s| Value::Text(s.as_str().into())));
    let mut parts = Vec::with_capacity(kinds.len() * states.len());
    for k in 0..kinds.len() {
        for s in 0..states.len() {
            parts.push(format!(
                "SELECT * FROM (SELECT created_at_ms, asset_id, record FROM assets \
                 WHERE kind = ?{} AND state = ?{}{keyset} \
                 ORDER BY created_at_ms DESC, asset_id DESC LIMIT ?3)",
                kind_base + k,
                state_base + s
            ));
        }
    }
    let sql = format!(
        "SELECT created_at_ms, asset_id, record FROM ({}) \
         ORDER BY created_at_ms DESC, asset_id DESC LIMIT ?3",
        parts.join(" UNION ALL ")
    );
    (sql, params)
}

/// `items` sorted and deduplicated, or `all` when empty.
fn or_all<T: Ord + Copy>(items: &[T], all: &[T]) -> Vec<T> {
    let mut v = if items.is_empty() {
        all.to_vec()
    } else {
        items.to_vec()
    };
    v.sort_unstable();
    v.dedup();
    v
}

/// Writes an asset's row and its searchable text (inside `tx`).
fn write_row(tx: &rusqlite::Transaction<'_>, record: &AssetRecord, json: &str) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO assets (asset_id, kind, state, created_at_ms, updated_at_ms, record)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (asset_id) DO UPDATE SET
             kind = excluded.kind,
             state = excluded.state,
             created_at_ms = excluded.created_at_ms,
             updated_at_ms = excluded.updated_at_ms,
             record = excluded.record",
    )
    .map_err(crate::error::sqlite_error)?
    .execute(params![
        record.asset_id.as_str(),
        record.kind().as_str(),
        record.status.state().as_str(),
        record.created_at_ms,
        record.updated_at_ms,
        json
    ])
    .map_err(crate::error::sqlite_error)?;
    super::fts::write_text(tx, record)
}

/// Keyword search over display names, tags and fields with SQLite FTS5 (BM25; name matches
/// weigh 10, tags 5, fields 2), only `Indexed` assets, filtered by the query's filter.
#[async_trait]
impl KeywordIndex for SqliteCatalog {
    async fn keyword_search(&self, query: &KeywordQuery) -> Result<Vec<KeywordHit>> {
        let terms = query.check()?;
        let (k, filter) = (query.k, query.filter.clone());
        self.with_conn(move |conn| {
            super::fts::search(conn, &terms, k, |r| {
                filter.matches(&r.asset_id, &r.index_meta())
            })
        })
        .await
    }
}

#[async_trait]
impl AssetCatalog for SqliteCatalog {
    async fn upsert(&self, record: &AssetRecord) -> Result<()> {
        let json = serde_json::to_string(record).map_err(crate::error::json_error)?;
        let id = record.asset_id.as_str().to_string();
        let record = record.clone();
        self.with_conn(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(crate::error::sqlite_error)?;
            write_row(&tx, &record, &json).map_err(|e| e.with_context("asset", &id))?;
            tx.commit().map_err(crate::error::sqlite_error)
        })
        .await
    }

    async fn update_meta(&self, asset: &AssetId, patch: &MetaPatch) -> Result<AssetRecord> {
        patch.validate()?;
        let id = asset.as_str().to_string();
        let patch = patch.clone();
        self.with_conn(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(crate::error::sqlite_error)?;
            let json: Option<String> = tx
                .prepare_cached("SELECT record FROM assets WHERE asset_id = ?1")
                .map_err(crate::error::sqlite_error)?
                .query_row([&id], |row| row.get(0))
                .optional()
                .map_err(crate::error::sqlite_error)?;
            let Some(json) = json else {
                return Err(
                    Error::not_found("no such asset in the catalog").with_context("asset", &id)
                );
            };
            let mut record = decode_record(&id, &json)?;
            record.apply_patch(&patch)?;
            record.updated_at_ms = now_ms();
            let json = serde_json::to_string(&record).map_err(crate::error::json_error)?;
            write_row(&tx, &record, &json)?;
            tx.commit().map_err(crate::error::sqlite_error)?;
            Ok(record)
        })
        .await
    }

    async fn get(&self, asset: &AssetId) -> Result<Option<AssetRecord>> {
        let id = asset.as_str().to_string();
        self.with_conn(move |conn| {
            let json: Option<String> = conn
                .prepare_cached("SELECT record FROM assets WHERE asset_id = ?1")
                .map_err(crate::error::sqlite_error)?
                .query_row([&id], |row| row.get(0))
                .optional()
                .map_err(crate::error::sqlite_error)?;
            json.map(|j| decode_record(&id, &j)).transpose()
        })
        .await
    }

    async fn set_status(&self, asset: &AssetId, status: &AssetStatus) -> Result<()> {
        let id = asset.as_str().to_string();
        let status = status.clone();
        self.with_conn(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(crate::error::sqlite_error)?;
            let json: Option<String> = tx
                .prepare_cached("SELECT record FROM assets WHERE asset_id = ?1")
                .map_err(crate::error::sqlite_error)?
                .query_row([&id], |row| row.get(0))
                .optional()
                .map_err(crate::error::sqlite_error)?;
            let Some(json) = json else {
                return Err(
                    Error::not_found("no such asset in the catalog").with_context("asset", &id)
                );
            };
            let mut record = decode_record(&id, &json)?;
            record.status = status;
            record.updated_at_ms = now_ms();
            let json = serde_json::to_string(&record).map_err(crate::error::json_error)?;
            tx.prepare_cached(
                "UPDATE assets SET state = ?2, updated_at_ms = ?3, record = ?4 WHERE asset_id = ?1",
            )
            .map_err(crate::error::sqlite_error)?
            .execute(params![
                id,
                record.status.state().as_str(),
                record.updated_at_ms,
                json
            ])
            .map_err(crate::error::sqlite_error)?;
            tx.commit().map_err(crate::error::sqlite_error)?;
            Ok(())
        })
        .await
    }

    async fn list(&self, query: &AssetQuery) -> Result<AssetPage> {
        let cursor = query.cursor.as_deref().map(decode_cursor).transpose()?;
        let limit = query.limit.clamp(1, MAX_PAGE);
        let kinds = or_all(&query.kinds, &MediaKind::ALL);
        let states = or_all(&query.states, &AssetState::ALL);
        let (sql, params) = list_sql(&kinds, &states, cursor.as_ref(), limit + 1);
        self.with_conn(move |conn| {
            let mut stmt = conn
                .prepare_cached(&sql)
                .map_err(crate::error::sqlite_error)?;
            let mut rows = stmt
                .query(params_from_iter(params))
                .map_err(crate::error::sqlite_error)?;
            let mut page: Vec<(i64, String, String)> = Vec::with_capacity(limit + 1);
            while let Some(row) = rows.next().map_err(crate::error::sqlite_error)? {
                page.push((
                    row.get(0).map_err(crate::error::sqlite_error)?,
                    row.get(1).map_err(crate::error::sqlite_error)?,
                    row.get(2).map_err(crate::error::sqlite_error)?,
                ));
            }
            let next_cursor = if page.len() > limit {
                page.truncate(limit);
                page.last().map(|(ms, id, _)| encode_cursor(*ms, id))
            } else {
                None
            };
            let assets = page
                .iter()
                .map(|(_, id, json)| decode_record(id, json))
                .collect::<Result<Vec<_>>>()?;
            Ok(AssetPage {
                assets,
                next_cursor,
            })
        })
        .await
    }

    async fn remove(&self, asset: &AssetId) -> Result<bool> {
        let id = asset.as_str().to_string();
        self.with_conn(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(crate::error::sqlite_error)?;
            super::fts::delete_text(&tx, &id)?;
            let n = tx
                .prepare_cached("DELETE FROM assets WHERE asset_id = ?1")
                .map_err(crate::error::sqlite_error)?
                .execute([&id])
                .map_err(crate::error::sqlite_error)?;
            tx.commit().map_err(crate::error::sqlite_error)?;
            Ok(n > 0)
        })
        .await
    }

    async fn counts(&self) -> Result<StatusCounts> {
        self.with_conn(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT state, COUNT(*) FROM assets GROUP BY state")
                .map_err(crate::error::sqlite_error)?;
            let mut rows = stmt.query([]).map_err(crate::error::sqlite_error)?;
            let mut counts = StatusCounts::default();
            while let Some(row) = rows.next().map_err(crate::error::sqlite_error)? {
                let state: String = row.get(0).map_err(crate::error::sqlite_error)?;
                let n: i64 = row.get(1).map_err(crate::error::sqlite_error)?;
                let n = u64::try_from(n).unwrap_or(0);
                match parse_state(&state) {
                    Some(AssetState::Pending) => counts.pending += n,
                    Some(AssetState::Embedding) => counts.embedding += n,
                    Some(AssetState::Indexed) => counts.indexed += n,
                    Some(AssetState::Failed) => counts.failed += n,
                    None => tracing::warn!(state, rows = n, "catalog rows with an unknown state"),
                }
            }
            Ok(counts)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::IngestStage;
    use crate::media::{MediaFormat, MediaProbe};
    use crate::store::{MediaKey, MediaRef};
    use std::collections::HashSet;

    fn record(n: u32, format: MediaFormat, status: AssetStatus, created_at_ms: i64) -> AssetRecord {
        let id = AssetId::from_content(&n.to_le_bytes());
        let key = MediaKey::for_asset(&id, format);
        AssetRecord {
            probe: MediaProbe {
                format,
                width: Some(640),
                height: Some(480),
                duration_sec: (format.kind() != MediaKind::Image).then_some(12.5),
                has_video: format.kind() == MediaKind::Video,
                has_audio: format.kind() != MediaKind::Image,
            },
            size_bytes: 1234 + u64::from(n),
            media: Some(MediaRef {
                uri: url::Url::parse(&format!("memory:///{key}")).unwrap(),
                key,
            }),
            display_name: Some(format!("file {n}.{}", format.extension())),
            source_path: n.is_multiple_of(3).then(|| format!("/incoming/{n}").into()),
            extension_mismatch: n
                .is_multiple_of(2)
                .then(|| "name says .png, content is jpg".into()),
            tags: vec!["a".into(), format!("t{n}")],
            fields: Default::default(),
            status,
            created_at_ms,
            updated_at_ms: created_at_ms + 5,
            asset_id: id,
        }
    }

    fn all_statuses() -> Vec<AssetStatus> {
        vec![
            AssetStatus::Pending,
            AssetStatus::Embedding,
            AssetStatus::Indexed,
            AssetStatus::Failed {
                stage: IngestStage::Embed,
                message: "model said no: \"quota\"".into(),
            },
        ]
    }

    #[tokio::test]
    async fn upsert_get_round_trip() {
        let catalog = SqliteCatalog::open_in_memory().unwrap();
        let r = record(1, MediaFormat::Mp4, AssetStatus::Pending, 1_700_000_000_000);
        assert_eq!(catalog.get(&r.asset_id).await.unwrap(), None);
        catalog.upsert(&r).await.unwrap();
        assert_eq!(catalog.get(&r.asset_id).await.unwrap(), Some(r.clone()));
        // Upsert replaces.
        let mut r2 = r.clone();
        r2.tags = vec!["replaced".into()];
        r2.media = None;
        catalog.upsert(&r2).await.unwrap();
        assert_eq!(catalog.get(&r.asset_id).await.unwrap(), Some(r2));
        assert_eq!(catalog.counts().await.unwrap().total(), 1);
    }

    #[tokio::test]
    async fn set_status_to_every_state() {
        let catalog = SqliteCatalog::open_in_memory().unwrap();
        let r = record(2, MediaFormat::Wav, AssetStatus::Pending, 1000);
        catalog.upsert(&r).await.unwrap();
        for status in all_statuses() {
            let before = now_ms();
            catalog.set_status(&r.asset_id, &status).await.unwrap();
            let got = catalog.get(&r.asset_id).await.unwrap().unwrap();
            assert_eq!(got.status, status);
            assert!(got.updated_at_ms >= before);
            assert_eq!(got.created_at_ms, 1000);
            assert_eq!(got.tags, r.tags);
            let page = catalog
                .list(&AssetQuery::new().state(status.state()))
                .await
                .unwrap();
            assert_eq!(page.assets, vec![got]);
            let counts = catalog.counts().await.unwrap();
            assert_eq!(counts.total(), 1);
        }
        let failed = all_statuses().pop().unwrap();
        let got = catalog.get(&r.asset_id).await.unwrap().unwrap();
        assert_eq!(got.status, failed);
        assert_eq!(catalog.counts().await.unwrap().failed, 1);
    }

    #[tokio::test]
    async fn set_status_of_a_missing_asset_is_not_found() {
        let catalog = SqliteCatalog::open_in_memory().unwrap();
        let id = AssetId::from_content(b"nope");
        let err = catalog
            .set_status(&id, &AssetStatus::Indexed)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(err.context_value("asset"), Some(id.as_str()));
    }

    /// 250 records over every format and state, with creation times that tie in threes.
    async fn fill(catalog: &SqliteCatalog) -> Vec<AssetRecord> {
        let statuses = all_statuses();
        let mut records = Vec::new();
        for n in 0..250u32 {
            let format = MediaFormat::ALL[n as usize % MediaFormat::ALL.len()];
            let status = statuses[(n as usize / 8 + n as usize) % statuses.len()].clone();
            let r = record(n, format, status, 1_000_000 + i64::from(n / 3));
            catalog.upsert(&r).await.unwrap();
            records.push(r);
        }
        records.sort_by(|a, b| {
            (b.created_at_ms, b.asset_id.as_str()).cmp(&(a.created_at_ms, a.asset_id.as_str()))
        });
        records
    }

    async fn all_pages(catalog: &SqliteCatalog, query: AssetQuery) -> Vec<Vec<AssetRecord>> {
        let mut pages = Vec::new();
        let mut query = query;
        loop {
            let page = catalog.list(&query).await.unwrap();
            pages.push(page.assets);
            match page.next_cursor {
                Some(c) => query.cursor = Some(c),
                None => return pages,
            }
            assert!(pages.len() < 1000, "pagination does not end");
        }
    }

    #[tokio::test]
    async fn list_paginates_newest_first() {
        let catalog = SqliteCatalog::open_in_memory().unwrap();
        let expected = fill(&catalog).await;
        let pages = all_pages(&catalog, AssetQuery::new().limit(100)).await;
        assert_eq!(
            pages.iter().map(Vec::len).collect::<Vec<_>>(),
            [100, 100, 50]
        );
        let flat: Vec<AssetRecord> = pages.into_iter().flatten().collect();
        let ids: HashSet<&AssetId> = flat.iter().map(|r| &r.asset_id).collect();
        assert_eq!(ids.len(), 250, "no duplicates");
        assert_eq!(flat, expected, "every record once, newest first");

        // Exactly a page's worth left: the last full page has no cursor.
        let pages = all_pages(&catalog, AssetQuery::new().limit(125)).await;
        assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [125, 125]);
    }

    #[tokio::test]
    async fn list_filters_by_kind_and_state_across_pages() {
        let catalog = SqliteCatalog::open_in_memory().unwrap();
        let all = fill(&catalog).await;
        let cases: Vec<(Vec<MediaKind>, Vec<AssetState>)> = vec![
            (vec![MediaKind::Image], vec![]),
            (vec![], vec![AssetState::Failed]),
            (vec![MediaKind::Video], vec![AssetState::Indexed]),
            (
                vec![MediaKind::Audio, MediaKind::Image, MediaKind::Audio],
                vec![AssetState::Pending, AssetState::Failed],
            ),
        ];
        for (kinds, states) in cases {
            let expected: Vec<AssetRecord> = all
                .iter()
                .filter(|r| kinds.is_empty() || kinds.contains(&r.kind()))
                .filter(|r| states.is_empty() || states.contains(&r.status.state()))
                .cloned()
                .collect();
            assert!(!expected.is_empty());
            let query = AssetQuery {
                kinds: kinds.clone(),
                states: states.clone(),
                cursor: None,
                limit: 7,
            };
            let pages = all_pages(&catalog, query).await;
            assert_eq!(
                pages.len(),
                expected.len().div_ceil(7),
                "{kinds:?} {states:?}"
            );
            let flat: Vec<AssetRecord> = pages.into_iter().flatten().collect();
            assert_eq!(flat, expected, "{kinds:?} {states:?}");
        }
    }

    #[tokio::test]
    async fn list_clamps_the_limit() {
        let catalog = SqliteCatalog::open_in_memory().unwrap();
        fill(&catalog).await;
        let page = catalog.list(&AssetQuery::new().limit(0)).await.unwrap();
        assert_eq!(page.assets.len(), 1);
        assert!(page.next_cursor.is_some());
        let page = catalog
            .list(&AssetQuery::new().limit(usize::MAX))
            .await
            .unwrap();
        assert_eq!(page.assets.len(), 250);
        assert!(page.next_cursor.is_none());
    }

    #[tokio::test]
    async fn malformed_cursor_is_invalid_input() {
        let catalog = SqliteCatalog::open_in_memory().unwrap();
        let id = AssetId::from_content(b"x");
        for bad in [
            "".to_string(),
            "garbage".into(),
            "c1.".into(),
            "c1.12".into(),
            format!("c1.notanumber.{id}"),
            "c1.12.not-a-hash".into(),
            format!("c2.12.{id}"),
            "c1.99999999999999999999999.x".into(),
        ] {
            let err = catalog
                .list(&AssetQuery::new().cursor(bad.clone()))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad:?}");
        }
        // A well-formed cursor past everything is an empty last page.
        let page = catalog
            .list(&AssetQuery::new().cursor(encode_cursor(i64::MIN, id.as_str())))
            .await
            .unwrap();
        assert!(page.assets.is_empty() && page.next_cursor.is_none());
    }

    #[tokio::test]
    async fn counts_and_remove() {
        let catalog = SqliteCatalog::open_in_memory().unwrap();
        assert_eq!(catalog.counts().await.unwrap(), StatusCounts::default());
        let records = fill(&catalog).await;
        let counts = catalog.counts().await.unwrap();
        // 250 records spread over 4 states.
        assert_eq!(
            (
                counts.pending,
                counts.embedding,
                counts.indexed,
                counts.failed
            ),
            (63, 62, 62, 63)
        );
        let victim = &records[0].asset_id;
        assert!(catalog.remove(victim).await.unwrap());
        assert!(!catalog.remove(victim).await.unwrap());
        assert_eq!(catalog.get(victim).await.unwrap(), None);
        assert_eq!(catalog.counts().await.unwrap().total(), 249);
    }

    #[tokio::test]
    async fn data_survives_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.db");
        let r = record(7, MediaFormat::Jpeg, AssetStatus::Pending, 42);
        {
            let catalog = SqliteCatalog::open(&path).unwrap();
            assert_eq!(catalog.path(), Some(path.as_path()));
            catalog.upsert(&r).await.unwrap();
            catalog
                .set_status(&r.asset_id, &AssetStatus::Indexed)
                .await
                .unwrap();
        }
        let catalog = SqliteCatalog::open(&path).unwrap();
        let got = catalog.get(&r.asset_id).await.unwrap().unwrap();
        assert_eq!(got.status, AssetStatus::Indexed);
        assert_eq!(got.display_name, r.display_name);
        assert_eq!(catalog.counts().await.unwrap().indexed, 1);

        let conn = Connection::open(&path).unwrap();
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
    }

    #[tokio::test]
    async fn refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.db");
        drop(SqliteCatalog::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(conn);
        let err = SqliteCatalog::open(&path).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported);
    }

    #[tokio::test]
    async fn corrupt_record_json_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.db");
        let catalog = SqliteCatalog::open(&path).unwrap();
        let r = record(9, MediaFormat::Png, AssetStatus::Pending, 1);
        catalog.upsert(&r).await.unwrap();
        Connection::open(&path)
            .unwrap()
            .execute("UPDATE assets SET record = '{not json'", [])
            .unwrap();
        let err = catalog.get(&r.asset_id).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt);
        let err = catalog.list(&AssetQuery::new()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt);
    }

    /// Every filter combination is answered from the index, never by scanning the table.
    #[test]
    fn list_queries_use_the_index() {
        let catalog = SqliteCatalog::open_in_memory().unwrap();
        let conn = catalog.conn.lock();
        let id = AssetId::from_content(b"c");
        for (kinds, states) in [
            (vec![MediaKind::Image], vec![AssetState::Indexed]),
            (MediaKind::ALL.to_vec(), AssetState::ALL.to_vec()),
        ] {
            for cursor in [None, Some((5, id.clone()))] {
                let (sql, params) = list_sql(&kinds, &states, cursor.as_ref(), 101);
                let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
                let details: Vec<String> = stmt
                    .query_map(params_from_iter(params), |row| row.get::<_, String>(3))
                    .unwrap()
                    .collect::<rusqlite::Result<_>>()
                    .unwrap();
                let on_assets: Vec<&String> =
                    details.iter().filter(|d| d.contains("assets")).collect();
                assert_eq!(on_assets.len(), kinds.len() * states.len(), "{details:#?}");
                for d in on_assets {
                    assert!(
                        d.starts_with("SEARCH assets USING INDEX assets_kind_state_created"),
                        "{d}\n{details:#?}"
                    );
                }
                // Sorting happens only on a subquery's output (at most `fetch` rows), never on
                // the table.
                for (i, d) in details.iter().enumerate() {
                    if d.contains("TEMP B-TREE") {
                        assert!(
                            i > 0 && details[i - 1].starts_with("SCAN (subquery"),
                            "{details:#?}"
                        );
                    }
                }
            }
        }
    }
}
