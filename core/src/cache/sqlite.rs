//! [`SqliteEmbeddingCache`]: a persistent [`EmbeddingCache`] on SQLite.

use async_trait::async_trait;
use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, params};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::{CacheKey, EmbeddingCache};
use crate::asset::now_ms;
use crate::embedding::{Embedding, EmbeddingSpace, Segment};
use crate::error::{Error, Result};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS embedding_cache (
    content       TEXT NOT NULL,
    model_id      TEXT NOT NULL,
    options       TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    payload       BLOB NOT NULL,
    PRIMARY KEY (content, model_id, options)
);
";

/// An [`EmbeddingCache`] in a SQLite database file (or in memory); entries older than the TTL
/// read as misses (and are deleted when read).
///
/// The table, `embedding_cache`, may live in the same file as
/// [`SqliteCatalog`](crate::SqliteCatalog)'s (each opens its own connection; WAL makes that
/// safe). It does not touch `PRAGMA user_version`, which belongs to the catalog.
///
/// Payloads are a compact binary encoding of the embeddings (format version 1):
///
/// ```text
/// u8 version = 1, u32 count, then per embedding:
///   u8 space (0 visual, 1 visual_text, 2 audio, 3 transcription),
///   u8 has_segment (0 or 1), [f64 start_sec, f64 end_sec if has_segment],
///   u32 dimension, dimension × f32
/// ```
///
/// all little-endian. A payload that does not decode is reported as `ErrorKind::Corrupt`.
///
/// Every call runs on tokio's blocking pool; clones share one connection.
#[derive(Clone)]
pub struct SqliteEmbeddingCache {
    conn: Arc<Mutex<Connection>>,
    ttl: Option<Duration>,
    path: Option<PathBuf>,
}

impl fmt::Debug for SqliteEmbeddingCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteEmbeddingCache")
            .field("path", &self.path)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl SqliteEmbeddingCache {
    /// Opens (creating if needed) the cache in the database file at `path`; entries expire after
    /// `ttl` (`None`: never). Blocking; call it at start-up or from `spawn_blocking`.
    pub fn open(path: impl AsRef<Path>, ttl: Option<Duration>) -> Result<Self> {
        let path = path.as_ref();
        let ctx = |e: Error| e.with_context("path", path.display());
        let conn = Connection::open(path).map_err(|e| ctx(crate::error::sqlite_error(e)))?;
        Self::init(conn, ttl, Some(path.to_path_buf())).map_err(ctx)
    }

    /// A cache in a private in-memory database (gone when the value is dropped).
    pub fn open_in_memory(ttl: Option<Duration>) -> Result<Self> {
        Self::init(
            Connection::open_in_memory().map_err(crate::error::sqlite_error)?,
            ttl,
            None,
        )
    }

    fn init(conn: Connection, ttl: Option<Duration>, path: Option<PathBuf>) -> Result<Self> {
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(crate::error::sqlite_error)?;
        let _mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(crate::error::sqlite_error)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(crate::error::sqlite_error)?;
        conn.execute_batch(SCHEMA)
            .map_err(crate::error::sqlite_error)?;
        Ok(SqliteEmbeddingCache {
            conn: Arc::new(Mutex::new(conn)),
            ttl,
            path,
        })
    }

    /// The time-to-live of entries, `None` if they never expire.
    pub fn ttl(&self) -> Option<Duration> {
        self.ttl
    }

    /// Number of rows stored, expired ones included until they are read. Blocking.
    pub fn len(&self) -> Result<u64> {
        let n: i64 = self
            .conn
            .lock()
            .query_row("SELECT COUNT(*) FROM embedding_cache", [], |row| row.get(0))
            .map_err(crate::error::sqlite_error)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Whether no rows are stored. Blocking.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
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

const PAYLOAD_VERSION: u8 = 1;

fn space_code(space: EmbeddingSpace) -> u8 {
    match space {
        EmbeddingSpace::Visual => 0,
        EmbeddingSpace::VisualText => 1,
        EmbeddingSpace::Audio => 2,
        EmbeddingSpace::Transcription => 3,
    }
}

fn space_from_code(code: u8) -> Option<EmbeddingSpace> {
    Some(match code {
        0 => EmbeddingSpace::Visual,
        1 => EmbeddingSpace::VisualText,
        2 => EmbeddingSpace::Audio,
        3 => EmbeddingSpace::Transcription,
        _ => return None,
    })
}

/// Encodes embeddings in the payload format described on [`SqliteEmbeddingCache`].
pub(crate) fn encode(embeddings: &[Embedding]) -> Result<Vec<u8>> {
    let too_many = |what: &str| Error::invalid_input(format!("too many {what} to cache"));
    let size = 5 + embeddings
        .iter()
        .map(|e| 2 + 16 + 4 + 4 * e.vector.len())
        .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.push(PAYLOAD_VERSION);
    let count = u32::try_from(embeddings.len()).map_err(|_| too_many("embeddings"))?;
    out.extend_from_slice(&count.to_le_bytes());
    for e in embeddings {
        out.push(space_code(e.space));
        match e.segment {
            Some(s) => {
                out.push(1);
                out.extend_from_slice(&s.start_sec.to_le_bytes());
                out.extend_from_slice(&s.end_sec.to_le_bytes());
            }
            None => out.push(0),
        }
        let dim = u32::try_from(e.vector.len()).map_err(|_| too_many("dimensions"))?;
        out.extend_from_slice(&dim.to_le_bytes());
        for x in &e.vector {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    Ok(out)
}

/// A bounds-checked little-endian reader.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        if self.bytes.len() < n {
            return Err(format!(
                "truncated: needed {n} more bytes, {} left",
                self.bytes.len()
            ));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> std::result::Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> std::result::Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn f64(&mut self) -> std::result::Result<f64, String> {
        Ok(f64::from_le_bytes(self.array()?))
    }
}

/// Decodes a payload from [`encode`]; the error says what is wrong with it.
pub(crate) fn decode(payload: &[u8]) -> std::result::Result<Vec<Embedding>, String> {
    let mut r = Reader { bytes: payload };
    let version = r.u8()?;
    if version != PAYLOAD_VERSION {
        return Err(format!("unknown payload version {version}"));
    }
    let count = r.u32()? as usize;
    // Each embedding takes at least 6 bytes; never trust `count` for the allocation.
    let mut out = Vec::with_capacity(count.min(r.bytes.len() / 6));
    for i in 0..count {
        let code = r.u8()?;
        let space = space_from_code(code)
            .ok_or_else(|| format!("embedding {i}: unknown space code {code}"))?;
        let segment = match r.u8()? {
            0 => None,
            1 => Some(Segment {
                start_sec: r.f64()?,
                end_sec: r.f64()?,
            }),
            other => return Err(format!("embedding {i}: bad segment flag {other}")),
        };
        let dim = r.u32()? as usize;
        let raw = r.take(dim.checked_mul(4).ok_or("dimension overflows")?)?;
        let vector = raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect();
        out.push(Embedding {
            space,
            segment,
            vector,
        });
    }
    if !r.bytes.is_empty() {
        return Err(format!("{} trailing bytes", r.bytes.len()));
    }
    Ok(out)
}

#[async_trait]
impl EmbeddingCache for SqliteEmbeddingCache {
    async fn get(&self, key: &CacheKey) -> Result<Option<Vec<Embedding>>> {
        let key = key.clone();
        let ttl_ms = self
            .ttl
            .map(|t| i64::try_from(t.as_millis()).unwrap_or(i64::MAX));
        self.with_conn(move |conn| {
            let row: Option<(i64, Vec<u8>)> = conn
                .prepare_cached(
                    "SELECT created_at_ms, payload FROM embedding_cache
                     WHERE content = ?1 AND model_id = ?2 AND options = ?3",
                )
                .map_err(crate::error::sqlite_error)?
                .query_row(
                    params![key.content.as_str(), key.model_id, key.options],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
                .map_err(crate::error::sqlite_error)?;
            let Some((created, payload)) = row else {
                return Ok(None);
            };
            if let Some(ttl) = ttl_ms
                && now_ms().saturating_sub(created) > ttl
            {
                conn.prepare_cached(
                    "DELETE FROM embedding_cache
                     WHERE content = ?1 AND model_id = ?2 AND options = ?3 AND created_at_ms = ?4",
                )
                .map_err(crate::error::sqlite_error)?
                .execute(params![
                    key.content.as_str(),
                    key.model_id,
                    key.options,
                    created
                ])
                .map_err(crate::error::sqlite_error)?;
                return Ok(None);
            }
            decode(&payload).map(Some).map_err(|why| {
                Error::corrupt(format!("cached embeddings do not decode: {why}"))
                    .with_context("content", &key.content)
                    .with_context("model", &key.model_id)
            })
        })
        .await
    }

    async fn put(&self, key: &CacheKey, embeddings: &[Embedding]) -> Result<()> {
        let payload = encode(embeddings)?;
        let key = key.clone();
        self.with_conn(move |conn| {
            conn.prepare_cached(
                "INSERT INTO embedding_cache (content, model_id, options, created_at_ms, payload)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (content, model_id, options) DO UPDATE SET
                     created_at_ms = excluded.created_at_ms,
                     payload = excluded.payload",
            )
            .map_err(crate::error::sqlite_error)?
            .execute(params![
                key.content.as_str(),
                key.model_id,
                key.options,
                now_ms(),
                payload
            ])
            .map_err(crate::error::sqlite_error)?;
            Ok(())
        })
        .await
    }

    async fn remove(&self, key: &CacheKey) -> Result<bool> {
        let key = key.clone();
        self.with_conn(move |conn| {
            let n = conn
                .prepare_cached(
                    "DELETE FROM embedding_cache
                     WHERE content = ?1 AND model_id = ?2 AND options = ?3",
                )
                .map_err(crate::error::sqlite_error)?
                .execute(params![key.content.as_str(), key.model_id, key.options])
                .map_err(crate::error::sqlite_error)?;
            Ok(n > 0)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asset::AssetId;
    use crate::error::ErrorKind;

    fn key(content: &[u8], model: &str, options: &str) -> CacheKey {
        CacheKey {
            content: AssetId::from_content(content),
            model_id: model.into(),
            options: options.into(),
        }
    }

    fn sample() -> Vec<Embedding> {
        vec![
            Embedding {
                space: EmbeddingSpace::Visual,
                segment: None,
                vector: vec![0.1, -0.2, f32::MIN_POSITIVE, f32::MAX, -0.0, 1.0e-42],
            },
            Embedding {
                space: EmbeddingSpace::VisualText,
                segment: Some(Segment {
                    start_sec: 0.0,
                    end_sec: 6.000_000_000_1,
                }),
                vector: (0..512).map(|i| (i as f32 * 0.37).sin()).collect(),
            },
            Embedding {
                space: EmbeddingSpace::Audio,
                segment: Some(Segment {
                    start_sec: 1.0 / 3.0,
                    end_sec: 7200.5,
                }),
                vector: vec![],
            },
            Embedding {
                space: EmbeddingSpace::Transcription,
                segment: Some(Segment {
                    start_sec: 12.0,
                    end_sec: 18.0,
                }),
                vector: vec![std::f32::consts::PI],
            },
        ]
    }

    fn bits(e: &[Embedding]) -> Vec<Vec<u32>> {
        e.iter()
            .map(|e| e.vector.iter().map(|x| x.to_bits()).collect())
            .collect()
    }

    #[tokio::test]
    async fn round_trip_is_exact() {
        let cache = SqliteEmbeddingCache::open_in_memory(None).unwrap();
        let k = key(b"clip", "marengo", "");
        assert_eq!(cache.get(&k).await.unwrap(), None);
        cache.put(&k, &sample()).await.unwrap();
        let got = cache.get(&k).await.unwrap().unwrap();
        assert_eq!(got, sample());
        // Bit-exact, including -0.0 and subnormals.
        assert_eq!(bits(&got), bits(&sample()));
        assert_eq!(cache.len().unwrap(), 1);

        // Empty results are cached too, and put replaces.
        cache.put(&k, &[]).await.unwrap();
        assert_eq!(cache.get(&k).await.unwrap(), Some(vec![]));
        assert_eq!(cache.len().unwrap(), 1);

        assert!(cache.remove(&k).await.unwrap());
        assert!(!cache.remove(&k).await.unwrap());
        assert!(cache.is_empty().unwrap());
    }

    #[tokio::test]
    async fn other_model_or_options_miss() {
        let cache = SqliteEmbeddingCache::open_in_memory(None).unwrap();
        cache.put(&key(b"a", "m1", "o1"), &sample()).await.unwrap();
        assert!(cache.get(&key(b"a", "m1", "o1")).await.unwrap().is_some());
        assert_eq!(cache.get(&key(b"a", "m2", "o1")).await.unwrap(), None);
        assert_eq!(cache.get(&key(b"a", "m1", "o2")).await.unwrap(), None);
        assert_eq!(cache.get(&key(b"b", "m1", "o1")).await.unwrap(), None);
    }

    #[tokio::test]
    async fn entries_expire_after_the_ttl() {
        let cache = SqliteEmbeddingCache::open_in_memory(Some(Duration::from_millis(50))).unwrap();
        let k = key(b"a", "m", "");
        cache.put(&k, &sample()).await.unwrap();
        assert!(cache.get(&k).await.unwrap().is_some());
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(cache.get(&k).await.unwrap(), None);
        // Expired rows are dropped when read.
        assert_eq!(cache.len().unwrap(), 0);
        // A fresh put is a hit again.
        cache.put(&k, &sample()).await.unwrap();
        assert!(cache.get(&k).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn corrupted_payload_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared.db");
        let cache = SqliteEmbeddingCache::open(&path, None).unwrap();
        let k = key(b"a", "m", "");
        cache.put(&k, &sample()).await.unwrap();
        let other = Connection::open(&path).unwrap();
        other
            .execute(
                "UPDATE embedding_cache SET payload = X'01FFFFFFFF00DEADBEEF'",
                [],
            )
            .unwrap();
        let err = cache.get(&k).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
        assert_eq!(err.context_value("model"), Some("m"));
    }

    #[tokio::test]
    async fn shares_a_file_with_the_catalog_and_survives_reopening() {
        use crate::catalog::{AssetCatalog, SqliteCatalog};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crossmodal.db");
        let k = key(b"a", "m", "o");
        {
            let catalog = SqliteCatalog::open(&path).unwrap();
            let cache = SqliteEmbeddingCache::open(&path, Some(Duration::from_secs(3600))).unwrap();
            cache.put(&k, &sample()).await.unwrap();
            assert_eq!(catalog.counts().await.unwrap().total(), 0);
        }
        let cache = SqliteEmbeddingCache::open(&path, None).unwrap();
        let catalog = SqliteCatalog::open(&path).unwrap();
        assert_eq!(cache.get(&k).await.unwrap(), Some(sample()));
        assert_eq!(catalog.counts().await.unwrap().total(), 0);
    }

    #[test]
    fn decode_rejects_damage_without_panicking() {
        let good = encode(&sample()).unwrap();
        assert_eq!(decode(&good).unwrap(), sample());
        // Every truncation fails.
        for n in 0..good.len() {
            assert!(decode(&good[..n]).is_err(), "prefix of {n} bytes decoded");
        }
        // Trailing garbage fails.
        let mut long = good.clone();
        long.push(0);
        assert!(decode(&long).is_err());
        // Wrong version, space or flag fails.
        for (at, value) in [(0, 2u8), (5, 9), (6, 7)] {
            let mut bad = good.clone();
            bad[at] = value;
            assert!(decode(&bad).is_err(), "byte {at} = {value} decoded");
        }
        // A huge count or dimension does not allocate or panic.
        assert!(decode(&[1, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(decode(&[1, 1, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]).is_err());
        // JSON text is not a payload.
        assert!(decode(b"[{\"space\":\"visual\"}]").is_err());
    }
}
