//! Waiting for writes to become searchable where the client cannot refresh (Amazon OpenSearch
//! Serverless): poll `ids` queries until the written documents are found and the deleted ones
//! are not.

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
