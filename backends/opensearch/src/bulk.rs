//! Bulk writes: batching, per-item results, per-item retries of rejected-for-load documents;
//! `index` items with the record key as `_id` (clusters) or without (Serverless, where the
//! service assigns ids), `update` items (partial documents) and `delete` items by id.

use std::fmt;
use std::time::Duration;

use crossmodal_core::{Error, ErrorKind, RecordKey, Result};
use opensearch::BulkParts;
use opensearch::params::Refresh;
use serde_json::Value;

use crate::client::Conn;
use crate::error::{error_type_reason, kind_of_status, status_is_temporary};

/// One document OpenSearch refused in a `_bulk` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkItemError {
    /// The record key as a document id (`<asset>:<space>:<seq>`): the `_id` on a cluster, the
    /// `key` field on Serverless (where the service assigns the `_id`).
    pub doc_id: String,
    /// The record the document holds.
    pub key: RecordKey,
    /// The item's HTTP status (400 for a mapping error, 429 when still throttled after the
    /// last retry, ...).
    pub status: u16,
    /// OpenSearch's error type (`mapper_parsing_exception`, ...).
    pub error_type: String,
    /// OpenSearch's reason, with its causes.
    pub reason: String,
}

impl fmt::Display for BulkItemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (HTTP {} {}: {})",
            self.doc_id, self.status, self.error_type, self.reason
        )
    }
}

/// What a bulk upsert did, document by document: nothing is dropped silently.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BulkReport {
    /// Documents written (created or replaced).
    pub indexed: usize,
    /// Documents OpenSearch refused, each with its reason.
    pub failed: Vec<BulkItemError>,
    /// `_bulk` requests sent (retries of whole requests not counted).
    pub requests: usize,
    /// Document sends repeated because OpenSearch rejected them for load (item status 429).
    pub retried_items: usize,
    /// Serverless: earlier documents of the same keys deleted after the new ones were written
    /// (a cluster replaces by `_id` and reports 0).
    pub replaced: usize,
    /// Serverless: earlier documents of the same keys that could not be deleted. Searches hide
    /// them (the newest document of a key wins) and delete them when they see them.
    pub stale: usize,
}

impl BulkReport {
    /// Whether every document was written.
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty()
    }

    /// `Ok` when every document was written; otherwise one error naming how many were refused
    /// and why (the first few in the message), of the kind of the first permanent failure
    /// (`RateLimited` / `Unavailable` when only load rejections remain).
    pub fn into_result(self) -> Result<()> {
        let Some(first) = self.failed.first() else {
            return Ok(());
        };
        let total = self.failed.len() + self.indexed;
        let permanent = self.failed.iter().find(|f| !status_is_temporary(f.status));
        let kind = match permanent {
            Some(p) => match kind_of_status(p.status, Some(&p.error_type)) {
                // Records were validated before sending: a document the index refuses means
                // the index disagrees with this crate's layout, not bad input.
                ErrorKind::InvalidInput => ErrorKind::Backend,
                k => k,
            },
            None => kind_of_status(first.status, Some(&first.error_type)),
        };
        const SHOWN: usize = 5;
        let mut list: Vec<String> = self
            .failed
            .iter()
            .take(SHOWN)
            .map(|f| f.to_string())
            .collect();
        if self.failed.len() > SHOWN {
            list.push(format!("and {} more", self.failed.len() - SHOWN));
        }
        let err = Error::new(
            kind,
            format!(
                "OpenSearch refused {} of {total} documents ({} written): {}",
                self.failed.len(),
                self.indexed,
                list.join("; ")
            ),
        )
        .with_context("failed", self.failed.len())
        .with_context("indexed", self.indexed)
        .with_context("first_doc", &first.doc_id);
        // Items refused for load were already retried round after round (the report is
        // built after the last one): the error keeps its kind but is persistent, so the
        // ingestor's retry does not multiply the rounds.
        Err(if permanent.is_none() {
            err.set_persistent()
        } else {
            err
        })
    }

    pub(crate) fn merge(&mut self, other: BulkReport) {
        self.indexed += other.indexed;
        self.failed.extend(other.failed);
        self.requests += other.requests;
        self.retried_items += other.retried_items;
        self.replaced += other.replaced;
        self.stale += other.stale;
    }
}

/// Who names the documents a bulk request writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DocIds {
    /// The record key is the `_id` (a cluster): an index item replaces the key's document.
    RecordKey,
    /// The service assigns the `_id` (Serverless, which refuses `_id` in index items).
    Service,
}

/// One document ready to send: its record key, and the two NDJSON lines.
#[derive(Debug, Clone)]
pub(crate) struct BulkDoc {
    /// The record key as a string (`<asset>:<space>:<seq>`).
    pub(crate) doc_id: String,
    pub(crate) key: RecordKey,
    /// `{"index":{"_id":..}}\n{source}\n` (no `_id` when the service assigns it).
    pub(crate) lines: Vec<u8>,
}

impl BulkDoc {
    pub(crate) fn new(
        key: RecordKey,
        source: &impl serde::Serialize,
        ids: DocIds,
    ) -> Result<BulkDoc> {
        let doc_id = key.doc_id();
        let action = match ids {
            DocIds::RecordKey => serde_json::json!({"index": {"_id": doc_id}}),
            DocIds::Service => serde_json::json!({"index": {}}),
        };
        let mut lines = serde_json::to_vec(&action).map_err(crate::error::json_error)?;
        lines.push(b'\n');
        serde_json::to_writer(&mut lines, source).map_err(crate::error::json_error)?;
        lines.push(b'\n');
        Ok(BulkDoc { doc_id, key, lines })
    }

    /// A partial update of the document `id` holding `key`: `{"update":{"_id":..}}` and
    /// `{"doc":{..}}` (the service merges `doc` into the stored `_source`). Sent with
    /// [`DocIds::RecordKey`] semantics, the answer must name `id`; `doc_id` is `id` (on a
    /// cluster the record key, on Serverless the service's id).
    pub(crate) fn update(id: &str, key: RecordKey, doc: &serde_json::Value) -> Result<BulkDoc> {
        let action = serde_json::json!({"update": {"_id": id}});
        let mut lines = serde_json::to_vec(&action).map_err(crate::error::json_error)?;
        lines.push(b'\n');
        serde_json::to_writer(&mut lines, &serde_json::json!({ "doc": doc }))
            .map_err(crate::error::json_error)?;
        lines.push(b'\n');
        Ok(BulkDoc {
            doc_id: id.to_string(),
            key,
            lines,
        })
    }
}

/// What one batch did: the report, and for every document written its record key and the
/// `_id` it got.
#[derive(Debug, Default)]
pub(crate) struct BatchOutcome {
    pub(crate) report: BulkReport,
    pub(crate) written: Vec<(String, String)>,
}

/// Splits documents into batches of at most `max_docs` documents and (unless one document is
/// larger) `max_bytes` bytes.
pub(crate) fn batches(docs: Vec<BulkDoc>, max_docs: usize, max_bytes: usize) -> Vec<Vec<BulkDoc>> {
    let mut out = Vec::new();
    let mut current: Vec<BulkDoc> = Vec::new();
    let mut bytes = 0usize;
    for doc in docs {
        if !current.is_empty() && (current.len() >= max_docs || bytes + doc.lines.len() > max_bytes)
        {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += doc.lines.len();
        current.push(doc);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Sends one batch to `index`, retrying whole requests on temporary failures (through
/// [`Conn::call`]) and items rejected for load (status 429 / 503) with backoff, up to the retry
/// policy's attempts. Every document ends up in `indexed` (and `written`) or `failed`.
pub(crate) async fn send_batch(
    conn: &Conn,
    index: &str,
    refresh: Option<Refresh>,
    ids: DocIds,
    batch: Vec<BulkDoc>,
) -> Result<BatchOutcome> {
    let mut report = BulkReport::default();
    let mut written = Vec::new();
    let mut pending = batch;
    let mut round = 0u32;
    loop {
        round += 1;
        let body: Vec<u8> = pending
            .iter()
            .flat_map(|d| d.lines.iter().copied())
            .collect();
        // `Bytes` is what the client's `Body` takes without copying, and cheap to clone for
        // each attempt.
        let body = &bytes::Bytes::from(body);
        report.requests += 1;
        let reply = conn
            .call("bulk", move || async move {
                let mut request = conn
                    .client
                    .bulk(BulkParts::Index(index))
                    .body(vec![body.clone()])
                    .request_timeout(conn.bulk_timeout);
                if let Some(r) = refresh {
                    request = request.refresh(r);
                }
                request.send().await
            })
            .await
            .map_err(|e| e.with_context("index", index))?;
        let value = reply
            .ok("bulk")
            .map_err(|e| e.with_context("index", index))?;
        let items = value
            .get("items")
            .and_then(Value::as_array)
            .ok_or_else(|| Error::backend("OpenSearch bulk answer has no items"))?;
        if items.len() != pending.len() {
            return Err(Error::backend(format!(
                "OpenSearch answered {} bulk items for {} documents",
                items.len(),
                pending.len()
            ))
            .with_context("index", index));
        }
        let mut again = Vec::new();
        for (doc, item) in pending.into_iter().zip(items) {
            let result = item
                .get("index")
                .or_else(|| item.as_object().and_then(|m| m.values().next()))
                .unwrap_or(&Value::Null);
            let status = result
                .get("status")
                .and_then(Value::as_u64)
                .and_then(|s| u16::try_from(s).ok())
                .unwrap_or(0);
            let returned_id = result.get("_id").and_then(Value::as_str);
            let id_matches = match ids {
                DocIds::RecordKey => returned_id == Some(&doc.doc_id),
                DocIds::Service => returned_id.is_some_and(|id| !id.is_empty()),
            };
            if (200..300).contains(&status) && result.get("error").is_none() && id_matches {
                report.indexed += 1;
                written.push((doc.doc_id, returned_id.unwrap_or_default().to_string()));
            } else if status_is_temporary(status) && round < conn.retry.max_attempts {
                again.push(doc);
            } else {
                let (ty, reason) = error_type_reason(result);
                let (ty, reason) = if !id_matches && (200..300).contains(&status) {
                    (
                        Some("id_mismatch".to_string()),
                        Some(
                            "the bulk answer names another document (or none) at this position"
                                .into(),
                        ),
                    )
                } else {
                    (ty, reason)
                };
                report.failed.push(BulkItemError {
                    doc_id: doc.doc_id,
                    key: doc.key,
                    status,
                    error_type: ty.unwrap_or_else(|| "unknown".into()),
                    reason: reason.unwrap_or_else(|| "no reason given".into()),
                });
            }
        }
        if again.is_empty() {
            return Ok(BatchOutcome { report, written });
        }
        report.retried_items += again.len();
        let wait = item_backoff(conn, round);
        tracing::debug!(
            index,
            documents = again.len(),
            ?wait,
            "retrying documents OpenSearch rejected for load"
        );
        tokio::time::sleep(wait).await;
        pending = again;
    }
}

fn item_backoff(conn: &Conn, round: u32) -> Duration {
    conn.retry.wait(round.saturating_sub(1))
}

/// What deleting documents by id did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct DeleteOutcome {
    /// Ids deleted (item result `deleted`).
    pub(crate) deleted: Vec<String>,
    /// Ids that were already gone (item status 404).
    pub(crate) not_found: Vec<String>,
    /// Ids OpenSearch refused to delete, with why.
    pub(crate) failed: Vec<(String, String)>,
}

/// Deletes documents by id with bulk `delete` items (what Serverless offers instead of
/// `_delete_by_query`), `batch_docs` per request, retrying items rejected for load.
pub(crate) async fn send_deletes(
    conn: &Conn,
    index: &str,
    ids: Vec<String>,
    batch_docs: usize,
) -> Result<DeleteOutcome> {
    let mut outcome = DeleteOutcome::default();
    let mut queue: Vec<String> = ids;
    queue.sort();
    queue.dedup();
    for chunk in queue.chunks(batch_docs.max(1)) {
        let mut pending: Vec<String> = chunk.to_vec();
        let mut round = 0u32;
        while !pending.is_empty() {
            round += 1;
            let mut body = Vec::new();
            for id in &pending {
                serde_json::to_writer(&mut body, &serde_json::json!({"delete": {"_id": id}}))
                    .map_err(crate::error::json_error)?;
                body.push(b'\n');
            }
            let body = &bytes::Bytes::from(body);
            let value = conn
                .call("bulk", move || async move {
                    conn.client
                        .bulk(BulkParts::Index(index))
                        .body(vec![body.clone()])
                        .request_timeout(conn.bulk_timeout)
                        .send()
                        .await
                })
                .await
                .and_then(|r| r.ok("bulk"))
                .map_err(|e| e.with_context("index", index))?;
            let items = value
                .get("items")
                .and_then(Value::as_array)
                .filter(|items| items.len() == pending.len())
                .ok_or_else(|| {
                    Error::backend("OpenSearch bulk delete answer does not list every item")
                        .with_context("index", index)
                })?;
            let mut again = Vec::new();
            for (id, item) in pending.into_iter().zip(items) {
                let result = item.get("delete").unwrap_or(&Value::Null);
                let status = result.get("status").and_then(Value::as_u64).unwrap_or(0);
                match status {
                    200..=299 => outcome.deleted.push(id),
                    404 => outcome.not_found.push(id),
                    s if status_is_temporary(u16::try_from(s).unwrap_or(0))
                        && round < conn.retry.max_attempts =>
                    {
                        again.push(id)
                    }
                    _ => {
                        let (ty, reason) = error_type_reason(result);
                        outcome.failed.push((
                            id,
                            format!(
                                "HTTP {status} {}: {}",
                                ty.unwrap_or_else(|| "unknown".into()),
                                reason.unwrap_or_else(|| "no reason given".into())
                            ),
                        ));
                    }
                }
            }
            if !again.is_empty() {
                tokio::time::sleep(item_backoff(conn, round)).await;
            }
            pending = again;
        }
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossmodal_core::{AssetId, EmbeddingSpace};

    fn doc(n: usize, size: usize) -> BulkDoc {
        BulkDoc {
            doc_id: n.to_string(),
            key: RecordKey {
                asset_id: AssetId::from_content(&n.to_le_bytes()),
                space: EmbeddingSpace::Visual,
                seq: 0,
            },
            lines: vec![b'x'; size],
        }
    }

    #[test]
    fn batches_respect_counts_and_bytes() {
        let docs: Vec<BulkDoc> = (0..10).map(|n| doc(n, 100)).collect();
        let b = batches(docs.clone(), 4, 1 << 20);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![4, 4, 2]);
        let b = batches(docs, 100, 250);
        assert!(b.iter().all(|x| x.len() == 2));
        // A single oversized document still goes, alone.
        let b = batches(vec![doc(0, 10), doc(1, 1000), doc(2, 10)], 10, 100);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![1, 1, 1]);
    }

    #[test]
    fn reports_name_every_failure() {
        let key = doc(0, 1).key;
        let mut r = BulkReport {
            indexed: 8,
            ..BulkReport::default()
        };
        assert!(r.clone().into_result().is_ok());
        for n in 0..7 {
            r.failed.push(BulkItemError {
                doc_id: format!("d{n}"),
                key: key.clone(),
                status: 400,
                error_type: "mapper_parsing_exception".into(),
                reason: "bad".into(),
            });
        }
        let e = r.into_result().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Backend);
        assert!(!e.is_persistent(), "a refusal, not spent retries");
        assert_eq!(e.context_value("failed"), Some("7"));
        assert!(e.message().contains("refused 7 of 15"), "{e}");
        assert!(e.message().contains("and 2 more"), "{e}");
    }

    #[test]
    fn items_refused_for_load_after_the_last_round_are_persistent() {
        let key = doc(0, 1).key;
        let r = BulkReport {
            indexed: 3,
            failed: vec![BulkItemError {
                doc_id: "d0".into(),
                key,
                status: 429,
                error_type: "es_rejected_execution_exception".into(),
                reason: "queue full".into(),
            }],
            ..BulkReport::default()
        };
        let e = r.into_result().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
        assert!(e.is_persistent() && !e.is_temporary(), "{e:?}");
    }
}
