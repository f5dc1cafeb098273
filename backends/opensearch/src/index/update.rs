//! [`VectorIndex::update_meta`](crossmodal_core::VectorIndex::update_meta) on OpenSearch: the
//! metadata of every document of an asset changed in place, without re-embedding.
//!
//! 1. The patch is validated ([`MetaPatch::validate`]) before any request.
//! 2. The asset's documents are found with a `term` query on `asset_id`, paged with
//!    `search_after` (vectors left out of `_source`). On a cluster without automatic refresh the
//!    index is refreshed first (a search sees only refreshed documents). On Serverless, this
//!    handle's own writes of the asset that are not searchable yet are waited for, and documents
//!    it knows are outdated (replaced or deleted) are skipped.
//! 3. The patch is applied to each document's current metadata ([`MetaPatch::apply_to`]); if it
//!    cannot apply to one (too many fields), nothing is sent.
//! 4. The changed fields (`tags`, `name`, `fields`, `field_keys`, `field_terms`, and a new
//!    `written_at`) go in bulk `update` items (`{"update":{"_id"}}` + `{"doc":{..}}`), every
//!    item's result checked; a document deleted in the meantime (404
//!    `document_missing_exception`) is not counted, any other refusal is an error. On a cluster
//!    the items carry the configured refresh; on Serverless (no refresh) a
//!    [`RefreshPolicy::WaitFor`] handle waits until searches show the new `written_at`, and
//!    [`flush`](crossmodal_core::VectorIndex::flush) waits for every update not seen yet.
//!
//! The count returned is the number of records (distinct record keys) updated.

use std::collections::{HashMap, HashSet};

use crossmodal_core::{AssetId, Error, MetaPatch, Result};
use futures::StreamExt;
use serde_json::{Value, json};

use super::{OpenSearchIndex, hits_of};
use crate::bulk::{self, BulkDoc, BulkReport, DocIds};
use crate::config::RefreshPolicy;
use crate::mapping::VECTOR_FIELDS_PATTERN;
use crate::meta::patchable_fields;
use crate::query::{HitIdentity, StoredRecord};
use crate::visibility::wait_until_updated;

/// Documents per page of the search for an asset's documents (OpenSearch's default
/// `index.max_result_window`).
const PAGE: usize = 10_000;

/// One stored document of an asset.
struct AssetDoc {
    who: HitIdentity,
    record: StoredRecord,
}

impl OpenSearchIndex {
    pub(super) async fn update_meta_impl(
        &self,
        asset: &AssetId,
        patch: &MetaPatch,
    ) -> Result<usize> {
        patch
            .validate()
            .map_err(|e| e.with_context("asset", asset.short()))?;
        let serverless = self.config.is_serverless();
        let docs = if serverless {
            self.serverless_asset_docs(asset).await?
        } else {
            if self.config.refresh == RefreshPolicy::None {
                self.refresh().await?;
            }
            self.asset_docs(asset).await?
        };
        let records = docs
            .iter()
            .map(|d| d.who.key.as_str())
            .collect::<HashSet<_>>()
            .len();
        if docs.is_empty() || patch.is_empty() {
            return Ok(records);
        }
        // The patch applies to every document before anything is sent: one that cannot apply
        // (too many fields) changes nothing.
        let now = crossmodal_core::now_ms();
        let mut items = Vec::with_capacity(docs.len());
        let mut written_at_of: HashMap<String, i64> = HashMap::new();
        let mut key_of: HashMap<String, String> = HashMap::new();
        for d in &docs {
            let mut meta = d.record.meta.clone();
            patch
                .apply_to(&mut meta)
                .map_err(|e| self.ctx(e).with_context("asset", asset.short()))?;
            let mut doc = patchable_fields(&meta);
            // Newer than what the document holds, so a reader (and a wait for visibility) can
            // tell the updated document from the earlier one.
            let written_at = now.max(d.who.written_at.saturating_add(1));
            doc.insert("written_at".into(), json!(written_at));
            items.push(BulkDoc::update(
                &d.who.id,
                d.record.key(),
                &Value::Object(doc),
            )?);
            written_at_of.insert(d.who.id.clone(), written_at);
            key_of.insert(d.who.id.clone(), d.who.key.clone());
        }
        let index = self.config.index.as_str();
        let refresh = if serverless {
            None
        } else {
            self.config.refresh.write_param()
        };
        let batches = bulk::batches(items, self.config.batch_docs, self.config.batch_bytes);
        let results: Vec<Result<bulk::BatchOutcome>> = futures::stream::iter(batches)
            .map(|batch| bulk::send_batch(&self.conn, index, refresh, DocIds::RecordKey, batch))
            .buffer_unordered(self.config.bulk_concurrency)
            .collect()
            .await;
        let mut updated: Vec<String> = Vec::new();
        let mut refused = BulkReport::default();
        let mut first_error = None;
        for r in results {
            match r {
                Ok(outcome) => {
                    updated.extend(outcome.written.into_iter().map(|(id, _)| id));
                    refused.requests += outcome.report.requests;
                    for f in outcome.report.failed {
                        if f.status == 404 {
                            // Deleted since it was found: nothing left to update.
                            tracing::debug!(index, doc = %f.doc_id, "document gone before its update");
                        } else {
                            refused.failed.push(f);
                        }
                    }
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if serverless {
            let seen: Vec<(String, i64)> = updated
                .iter()
                .filter_map(|id| written_at_of.get(id).map(|w| (id.clone(), *w)))
                .collect();
            self.updates.note(seen.iter().cloned());
            if self.config.refresh == RefreshPolicy::WaitFor && first_error.is_none() {
                wait_until_updated(
                    &self.conn,
                    index,
                    &self.updates,
                    seen,
                    self.config.visibility_timeout,
                )
                .await?;
            }
        }
        if let Some(e) = first_error {
            return Err(self
                .ctx(e)
                .with_context("asset", asset.short())
                .with_context("updated", updated.len()));
        }
        refused.indexed = updated.len();
        refused
            .into_result()
            .map_err(|e| self.ctx(e).with_context("asset", asset.short()))?;
        Ok(updated
            .iter()
            .filter_map(|id| key_of.get(id))
            .collect::<HashSet<_>>()
            .len())
    }

    /// Every searchable document of `asset`, with its metadata.
    async fn asset_docs(&self, asset: &AssetId) -> Result<Vec<AssetDoc>> {
        // A sort that orders the asset's documents totally: on a cluster (space, seq) is the
        // record key (documents of layout 1 have no `key` field); on Serverless two documents
        // of one key differ in `written_at`.
        let sort = if self.config.is_serverless() {
            json!([{"key": "asc"}, {"written_at": "asc"}])
        } else {
            json!([{"space": "asc"}, {"seq": "asc"}])
        };
        let mut out = Vec::new();
        let mut after: Option<Value> = None;
        loop {
            let mut body = json!({
                "size": PAGE,
                "_source": {"excludes": [VECTOR_FIELDS_PATTERN]},
                "query": {"term": {"asset_id": asset.as_str()}},
                "sort": sort,
            });
            if let (Some(a), Some(map)) = (&after, body.as_object_mut()) {
                map.insert("search_after".into(), a.clone());
            }
            let value = self.search_raw("search", &body).await?;
            let hits = hits_of(&value).map_err(|e| self.ctx(e))?;
            for h in hits {
                let who = HitIdentity::of(h).map_err(|e| self.ctx(e))?;
                let record = StoredRecord::of(h).map_err(|e| self.ctx(e))?;
                if record.asset_id != *asset {
                    return Err(self.ctx(Error::corrupt(format!(
                        "a search for asset {} returned a document of {}",
                        asset.short(),
                        record.asset_id.short()
                    ))));
                }
                out.push(AssetDoc { who, record });
            }
            if hits.len() < PAGE {
                return Ok(out);
            }
            after = hits.last().and_then(|h| h.get("sort")).cloned();
            if after.is_none() {
                return Ok(out);
            }
        }
    }

    /// Serverless: the asset's current documents. This handle's own writes of the asset that
    /// searches do not show yet are waited for first; documents it replaced or deleted are left
    /// out.
    async fn serverless_asset_docs(&self, asset: &AssetId) -> Result<Vec<AssetDoc>> {
        let mut docs = self.asset_docs(asset).await?;
        let found: HashSet<&str> = docs.iter().map(|d| d.who.id.as_str()).collect();
        let unseen: Vec<String> = self
            .recent
            .ids_of_group(asset.as_str())
            .into_iter()
            .filter(|id| !found.contains(id.as_str()))
            .collect();
        if !unseen.is_empty() {
            self.wait_for(unseen, Vec::new()).await?;
            docs = self.asset_docs(asset).await?;
        }
        docs.retain(|d| {
            !self
                .recent
                .is_outdated(asset.as_str(), &d.who.key, &d.who.id)
        });
        Ok(docs)
    }
}
