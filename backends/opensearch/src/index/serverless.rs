//! [`OpenSearchIndex`] on Amazon OpenSearch Serverless: service-assigned ids, no refresh, no
//! `_delete_by_query`, eventual visibility.
//!
//! - **Upsert**: per batch, find the keys' earlier documents (what this handle wrote last, and a
//!   `terms` search on `key`), write the new documents with `index` items without `_id`, then
//!   delete the earlier ones with bulk `delete` items. A key is never left without a document
//!   (the new one is written before the old one goes); a failure between the two leaves a
//!   duplicate, which searches hide and delete.
//! - **Search**: hits this handle knows are outdated (deleted, or replaced by a newer write)
//!   are dropped; of two documents of one key (two writers raced within the visibility window)
//!   the newest write wins and the other is deleted; when that left fewer than `k` hits the
//!   query is asked once more for as many more as were dropped.
//! - **Delete by asset**: the asset's ids (a `term` search on `asset_id`, paged with
//!   `search_after`, plus what this handle wrote recently) deleted with bulk `delete` items.
//! - **Flush**: waits until everything this handle wrote is searchable, what it deleted is
//!   gone, and what it updated in place (`update_meta`) shows its new metadata.

use std::collections::{HashMap, HashSet};

use crossmodal_core::{AssetId, Error, ErrorKind, Hit, Result, VectorQuery, VectorRecord};
use futures::StreamExt;
use serde_json::{Value, json};

use super::{OpenSearchIndex, hits_of};
use crate::bulk::{self, BulkDoc, BulkReport, DocIds};
use crate::config::RefreshPolicy;
use crate::query::{Document, HitIdentity, knn_search_body, parse_hit};
use crate::visibility::wait_until_visible;

/// Largest page of a search for ids (OpenSearch's default `index.max_result_window`).
const ID_PAGE: usize = 10_000;
/// Largest `k` OpenSearch takes.
const MAX_K: usize = 10_000;

/// What one upserted batch did.
struct BatchDone {
    report: BulkReport,
    written: Vec<String>,
    deleted: Vec<String>,
}

impl OpenSearchIndex {
    pub(super) async fn upsert_serverless(&self, records: Vec<VectorRecord>) -> Result<BulkReport> {
        // Two records of one key in one call: the last wins (writing both would leave two
        // documents for the key).
        let mut last: HashMap<String, usize> = HashMap::new();
        for (i, r) in records.iter().enumerate() {
            last.insert(r.key().doc_id(), i);
        }
        let docs = records
            .iter()
            .enumerate()
            .filter(|(i, r)| last.get(&r.key().doc_id()) == Some(i))
            .map(|(_, r)| BulkDoc::new(r.key(), &Document::of(r), DocIds::Service))
            .collect::<Result<Vec<_>>>()?;
        let batches = bulk::batches(docs, self.config.batch_docs, self.config.batch_bytes);
        let results: Vec<Result<BatchDone>> = futures::stream::iter(batches)
            .map(|batch| self.upsert_batch(batch))
            .buffer_unordered(self.config.bulk_concurrency)
            .collect()
            .await;
        let mut report = BulkReport::default();
        let (mut written, mut deleted) = (Vec::new(), Vec::new());
        for r in results {
            let done = r?;
            report.merge(done.report);
            written.extend(done.written);
            deleted.extend(done.deleted);
        }
        if self.config.refresh == RefreshPolicy::WaitFor {
            self.wait_for(written, deleted).await?;
        }
        Ok(report)
    }

    async fn upsert_batch(&self, batch: Vec<BulkDoc>) -> Result<BatchDone> {
        let asset_of: HashMap<String, String> = batch
            .iter()
            .map(|d| (d.doc_id.clone(), d.key.asset_id.as_str().to_string()))
            .collect();
        // The keys' earlier documents: what this handle wrote last (perhaps not searchable
        // yet), and what a search finds (written by anyone, long enough ago).
        let mut earlier: HashMap<String, HashSet<String>> = HashMap::new();
        for (key, asset) in &asset_of {
            if let Some(w) = self.recent.latest(asset, key) {
                earlier.entry(key.clone()).or_default().insert(w.id);
            }
        }
        let keys: Vec<&str> = asset_of.keys().map(String::as_str).collect();
        for who in self.find_by_keys(&keys).await? {
            if !self.recent.is_deleted(&who.id) {
                earlier.entry(who.key).or_default().insert(who.id);
            }
        }
        let index = self.config.index.as_str();
        let outcome = bulk::send_batch(&self.conn, index, None, DocIds::Service, batch)
            .await
            .map_err(|e| self.ctx(e))?;
        let mut report = outcome.report;
        let mut old = Vec::new();
        let mut written = Vec::with_capacity(outcome.written.len());
        for (key, id) in outcome.written {
            if let Some(asset) = asset_of.get(&key) {
                self.recent.wrote(asset, &key, id.clone(), ());
            }
            if let Some(ids) = earlier.remove(&key) {
                old.extend(ids.into_iter().filter(|o| *o != id));
            }
            written.push(id);
        }
        let mut deleted = Vec::new();
        if !old.is_empty() {
            let count = old.len();
            match bulk::send_deletes(&self.conn, index, old, self.config.batch_docs).await {
                Ok(done) => {
                    report.replaced += done.deleted.len();
                    report.stale += done.failed.len();
                    if let Some((id, why)) = done.failed.first() {
                        tracing::warn!(index, stale = done.failed.len(), first = %id, why = %why,
                            "earlier documents of upserted keys were not deleted; searches hide them");
                    }
                    self.recent
                        .deleted(done.deleted.iter().chain(done.not_found.iter()));
                    deleted = done.deleted;
                }
                Err(e) => {
                    report.stale += count;
                    tracing::warn!(index, stale = count, error = %e,
                        "could not delete the earlier documents of upserted keys; searches hide them");
                }
            }
        }
        Ok(BatchDone {
            report,
            written,
            deleted,
        })
    }

    /// The visible documents holding any of `keys`.
    async fn find_by_keys(&self, keys: &[&str]) -> Result<Vec<HitIdentity>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let body = json!({
            "size": ID_PAGE,
            "_source": ["key", "written_at"],
            "query": {"terms": {"key": keys}},
        });
        let value = self.search_raw("search", &body).await?;
        let hits = hits_of(&value).map_err(|e| self.ctx(e))?;
        if value
            .pointer("/hits/total/value")
            .and_then(Value::as_u64)
            .is_some_and(|total| total > hits.len() as u64)
        {
            tracing::warn!(
                index = %self.config.index,
                "more than {ID_PAGE} documents for {} keys; the rest stay as duplicates that \
                 searches hide",
                keys.len()
            );
        }
        hits.iter()
            .map(HitIdentity::of)
            .collect::<Result<Vec<_>>>()
            .map_err(|e| self.ctx(e))
    }

    pub(super) async fn search_serverless(&self, query: &VectorQuery) -> Result<Vec<Hit>> {
        let mut ask = query.k;
        loop {
            let mut q = query.clone();
            q.k = ask;
            let value = self
                .search_raw("search", &knn_search_body(&q, self.query_ef()))
                .await?;
            let hits = hits_of(&value).map_err(|e| self.ctx(e))?;
            let mut best: HashMap<String, (HitIdentity, Hit)> = HashMap::new();
            let mut duplicates = Vec::new();
            let mut dropped = 0usize;
            for h in hits {
                let who = HitIdentity::of(h).map_err(|e| self.ctx(e))?;
                let hit = parse_hit(h, self.space_type()).map_err(|e| self.ctx(e))?;
                if self
                    .recent
                    .is_outdated(hit.asset_id.as_str(), &who.key, &who.id)
                {
                    dropped += 1;
                    continue;
                }
                match best.get(&who.key) {
                    Some((kept, _)) if !who.newer_than(kept) => {
                        dropped += 1;
                        duplicates.push(who.id);
                    }
                    Some(_) => {
                        dropped += 1;
                        if let Some((older, _)) = best.insert(who.key.clone(), (who, hit)) {
                            duplicates.push(older.id);
                        }
                    }
                    None => {
                        best.insert(who.key.clone(), (who, hit));
                    }
                }
            }
            // Fewer than k left although the index may hold more: ask once more for as many
            // more as were dropped.
            if dropped > 0 && hits.len() == ask && ask == query.k && ask < MAX_K {
                ask = (query.k + dropped).min(MAX_K);
                continue;
            }
            if !duplicates.is_empty() {
                self.repair(duplicates).await;
            }
            return Ok(best.into_values().map(|(_, hit)| hit).collect());
        }
    }

    /// Deletes the older copies of keys that racing writers left (best effort: a failure only
    /// means a later search tries again).
    async fn repair(&self, ids: Vec<String>) {
        let count = ids.len();
        let index = self.config.index.as_str();
        match bulk::send_deletes(&self.conn, index, ids, self.config.batch_docs).await {
            Ok(done) => {
                tracing::info!(
                    index,
                    duplicates = count,
                    deleted = done.deleted.len(),
                    "deleted older copies of record keys"
                );
                self.recent
                    .deleted(done.deleted.iter().chain(done.not_found.iter()));
            }
            Err(e) => tracing::warn!(index, duplicates = count, error = %e,
                "could not delete older copies of record keys"),
        }
    }

    pub(super) async fn delete_asset_serverless(&self, asset: &AssetId) -> Result<usize> {
        let mut ids: HashSet<String> = self
            .recent
            .ids_of_group(asset.as_str())
            .into_iter()
            .collect();
        let mut after: Option<Value> = None;
        loop {
            let mut body = json!({
                "size": ID_PAGE,
                "_source": ["key", "written_at"],
                "query": {"term": {"asset_id": asset.as_str()}},
                "sort": [{"key": "asc"}, {"written_at": "asc"}],
            });
            if let (Some(a), Some(map)) = (&after, body.as_object_mut()) {
                map.insert("search_after".into(), a.clone());
            }
            let value = self.search_raw("search", &body).await?;
            let hits = hits_of(&value).map_err(|e| self.ctx(e))?;
            for h in hits {
                let who = HitIdentity::of(h).map_err(|e| self.ctx(e))?;
                if !self.recent.is_deleted(&who.id) {
                    ids.insert(who.id);
                }
            }
            if hits.len() < ID_PAGE {
                break;
            }
            after = hits.last().and_then(|h| h.get("sort")).cloned();
            if after.is_none() {
                break;
            }
        }
        if ids.is_empty() {
            return Ok(0);
        }
        let index = self.config.index.as_str();
        let done = bulk::send_deletes(
            &self.conn,
            index,
            ids.into_iter().collect(),
            self.config.batch_docs,
        )
        .await
        .map_err(|e| self.ctx(e).with_context("asset", asset.short()))?;
        self.recent.removed(asset.as_str());
        self.recent
            .deleted(done.deleted.iter().chain(done.not_found.iter()));
        if let Some((id, why)) = done.failed.first() {
            return Err(self
                .ctx(Error::new(
                    ErrorKind::Backend,
                    format!(
                        "OpenSearch refused to delete {} of the asset's documents (deleted {}): \
                         {id}: {why}",
                        done.failed.len(),
                        done.deleted.len()
                    ),
                ))
                .with_context("asset", asset.short()));
        }
        if self.config.refresh == RefreshPolicy::WaitFor {
            self.wait_for(Vec::new(), done.deleted.clone()).await?;
        }
        Ok(done.deleted.len())
    }

    /// Waits until `written` are searchable and `deleted` are not.
    pub(super) async fn wait_for(&self, written: Vec<String>, deleted: Vec<String>) -> Result<()> {
        wait_until_visible(
            &self.conn,
            &self.config.index,
            &self.recent,
            written,
            deleted,
            self.config.visibility_timeout,
        )
        .await
    }

    /// What `flush` does on Serverless: waits for everything this handle wrote, deleted and
    /// updated.
    pub(super) async fn wait_for_own_writes(&self) -> Result<()> {
        let (written, deleted) = self.recent.pending();
        self.wait_for(written, deleted).await?;
        let updated = self.updates.pending();
        crate::visibility::wait_until_updated(
            &self.conn,
            &self.config.index,
            &self.updates,
            updated,
            self.config.visibility_timeout,
        )
        .await
    }
}
