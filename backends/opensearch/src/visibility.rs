//! Waiting for writes to become searchable where the client cannot refresh (Amazon OpenSearch
//! Serverless): poll `ids` queries until the written documents are found and the deleted ones
//! are not, and the updated ones show the `written_at` their update gave them.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crossmodal_core::{Error, ErrorKind, Result};
use opensearch::SearchParts;
use serde_json::{Value, json};

use crate::client::Conn;
use crate::recent::Recent;

/// Ids per `ids` query.
const IDS_PER_QUERY: usize = 1000;
/// First pause between polls; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(50);
/// Longest pause between polls.
const MAX_PAUSE: Duration = Duration::from_secs(2);

/// Which of `ids` a search returns now.
pub(crate) async fn searchable_ids(
    conn: &Conn,
    index: &str,
    ids: &[&String],
) -> Result<HashSet<String>> {
    let mut found = HashSet::new();
    for chunk in ids.chunks(IDS_PER_QUERY) {
        let body = &json!({
            "size": chunk.len(),
            "_source": false,
            "query": {"ids": {"values": chunk}},
        });
        let value = conn
            .call("search", move || async move {
                conn.client
                    .search(SearchParts::Index(&[index]))
                    .body(body.clone())
                    .send()
                    .await
            })
            .await
            .and_then(|r| r.ok("search"))
            .map_err(|e| e.with_context("index", index))?;
        let hits = value
            .pointer("/hits/hits")
            .and_then(Value::as_array)
            .ok_or_else(|| Error::backend("OpenSearch search answer has no hits"))?;
        found.extend(
            hits.iter()
                .filter_map(|h| h.get("_id").and_then(Value::as_str))
                .map(str::to_string),
        );
    }
    Ok(found)
}

/// Polls until every id of `written` is searchable and no id of `deleted` is, telling `recent`
/// what it saw; `Timeout` (temporary) after `timeout`, naming how many are still waited for.
pub(crate) async fn wait_until_visible<V: Clone>(
    conn: &Conn,
    index: &str,
    recent: &Recent<V>,
    written: Vec<String>,
    deleted: Vec<String>,
    timeout: Duration,
) -> Result<()> {
    let started = Instant::now();
    let mut written: HashSet<String> = written.into_iter().collect();
    let mut deleted: HashSet<String> = deleted.into_iter().collect();
    let mut pause = FIRST_PAUSE;
    loop {
        if written.is_empty() && deleted.is_empty() {
            return Ok(());
        }
        let ids: Vec<&String> = written.iter().chain(deleted.iter()).collect();
        let visible = searchable_ids(conn, index, &ids).await?;
        let seen: HashSet<String> = written.intersection(&visible).cloned().collect();
        let gone: HashSet<String> = deleted.difference(&visible).cloned().collect();
        recent.confirm(&seen, &gone);
        written.retain(|id| !visible.contains(id));
        deleted.retain(|id| visible.contains(id));
        if written.is_empty() && deleted.is_empty() {
            return Ok(());
        }
        let elapsed = started.elapsed();
        if elapsed >= timeout {
            return Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "OpenSearch Serverless had not made this handle's writes searchable after \
                     {elapsed:.1?}: {} written document(s) not found yet, {} deleted one(s) \
                     still found",
                    written.len(),
                    deleted.len()
                ),
            )
            .with_context("index", index)
            .with_context("visibility_timeout", format!("{timeout:?}")));
        }
        tokio::time::sleep(pause.min(timeout.saturating_sub(elapsed))).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// Partial updates this handle made on Serverless that searches may not show yet: per document
/// id, the `written_at` the update gave it. An update keeps the document's id, so waiting for
/// the id to be searchable says nothing; waiting for the new `written_at` does. Entries go when
/// a wait has seen them, or after `keep` (the service has made them visible by then). Clones
/// share one memory.
#[derive(Debug, Clone)]
pub(crate) struct PendingUpdates {
    inner: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, (i64, Instant)>>>,
    keep: Duration,
}

impl PendingUpdates {
    /// A memory that forgets entries after `keep`.
    pub(crate) fn new(keep: Duration) -> Self {
        PendingUpdates {
            inner: Default::default(),
            keep,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (i64, Instant)>> {
        // Nothing panics while holding the lock; a poisoned one still holds a consistent map.
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let keep = self.keep;
        inner.retain(|_, (_, at)| at.elapsed() < keep);
        inner
    }

    /// Records that documents were updated to these `written_at` values.
    pub(crate) fn note(&self, items: impl IntoIterator<Item = (String, i64)>) {
        let mut inner = self.lock();
        let now = Instant::now();
        for (id, written_at) in items {
            inner.insert(id, (written_at, now));
        }
    }

    /// Every update not seen yet.
    pub(crate) fn pending(&self) -> Vec<(String, i64)> {
        self.lock()
            .iter()
            .map(|(id, (w, _))| (id.clone(), *w))
            .collect()
    }

    /// Forgets the updates of `seen` (id and the `written_at` a search showed) that are at
    /// least as new as the one remembered.
    fn confirm(&self, seen: &[(String, i64)]) {
        let mut inner = self.lock();
        for (id, shown) in seen {
            if inner.get(id).is_some_and(|(w, _)| shown >= w) {
                inner.remove(id);
            }
        }
    }
}

/// For each of `items` (id, `written_at` of an update) whether searches show the update: the
/// document with at least that `written_at`, or no document (deleted since). Returns what a
/// search showed for the ids it found.
async fn shown_updates(
    conn: &Conn,
    index: &str,
    items: &[(String, i64)],
) -> Result<(Vec<(String, i64)>, HashSet<String>)> {
    let mut shown = Vec::new();
    let mut found = HashSet::new();
    for chunk in items.chunks(IDS_PER_QUERY) {
        let ids: Vec<&String> = chunk.iter().map(|(id, _)| id).collect();
        let body = &json!({
            "size": chunk.len(),
            "_source": ["written_at"],
            "query": {"ids": {"values": ids}},
        });
        let value = conn
            .call("search", move || async move {
                conn.client
                    .search(SearchParts::Index(&[index]))
                    .body(body.clone())
                    .send()
                    .await
            })
            .await
            .and_then(|r| r.ok("search"))
            .map_err(|e| e.with_context("index", index))?;
        let hits = value
            .pointer("/hits/hits")
            .and_then(Value::as_array)
            .ok_or_else(|| Error::backend("OpenSearch search answer has no hits"))?;
        for h in hits {
            let Some(id) = h.get("_id").and_then(Value::as_str) else {
                continue;
            };
            let written_at = h
                .pointer("/_source/written_at")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            found.insert(id.to_string());
            shown.push((id.to_string(), written_at));
        }
    }
    Ok((shown, found))
}

/// Polls until searches show every update of `items` (or its document is gone), telling
/// `pending` what it saw; `Timeout` (temporary) after `timeout`.
pub(crate) async fn wait_until_updated(
    conn: &Conn,
    index: &str,
    pending: &PendingUpdates,
    items: Vec<(String, i64)>,
    timeout: Duration,
) -> Result<()> {
    let started = Instant::now();
    let mut waiting = items;
    let mut pause = FIRST_PAUSE;
    loop {
        if waiting.is_empty() {
            return Ok(());
        }
        let (shown, found) = shown_updates(conn, index, &waiting).await?;
        pending.confirm(&shown);
        let now: std::collections::HashMap<&String, i64> =
            shown.iter().map(|(id, w)| (id, *w)).collect();
        waiting.retain(|(id, w)| found.contains(id) && now.get(id).is_some_and(|s| s < w));
        if waiting.is_empty() {
            return Ok(());
        }
        let elapsed = started.elapsed();
        if elapsed >= timeout {
            return Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "OpenSearch Serverless had not made this handle's metadata updates \
                     searchable after {elapsed:.1?}: {} document(s) still show their earlier \
                     metadata",
                    waiting.len()
                ),
            )
            .with_context("index", index)
            .with_context("visibility_timeout", format!("{timeout:?}")));
        }
        tokio::time::sleep(pause.min(timeout.saturating_sub(elapsed))).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}
