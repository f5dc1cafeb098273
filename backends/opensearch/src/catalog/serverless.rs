//! [`OpenSearchCatalog`] on Amazon OpenSearch Serverless: no `PUT _doc/<id>`, no `GET
//! _doc/<id>`, no refresh. An asset's document is found by searching `asset_id`; a write
//! indexes a new document (the service names it) and then deletes the earlier ones; reads take
//! the newest write of an asset and delete older copies racing writers left.

use std::collections::HashSet;

use crossmodal_core::{
    AssetId, AssetPage, AssetQuery, AssetRecord, AssetStatus, Error, ErrorKind, Result, now_ms,
};
use opensearch::{BulkParts, SearchParts};
use serde_json::{Value, json};

use super::{
    MAX_PAGE, OpenSearchCatalog, decode_cursor, document, encode_cursor, list_filter, record_of,
};
use crate::bulk;
use crate::config::RefreshPolicy;
use crate::error::error_type_reason;
use crate::query::HitIdentity;
use crate::visibility::wait_until_visible;

/// Most copies of one asset's document a read looks at (more only if writers keep racing).
const COPIES: usize = 100;

/// An asset's current document: its id (if the service has named one this handle knows), the
/// record, and the ids of older copies.
struct Current {
    id: String,
    record: AssetRecord,
    older: Vec<String>,
}

impl OpenSearchCatalog {
    async fn search_json(&self, body: &Value) -> Result<Value> {
        let index = self.index.as_str();
        self.conn
            .call("search", move || async move {
                self.conn
                    .client
                    .search(SearchParts::Index(&[index]))
                    .body(body.clone())
                    .send()
                    .await
            })
            .await
            .and_then(|r| r.ok("search"))
            .map_err(|e| self.ctx(e))
    }

    /// The searchable copies of `asset`'s document this handle has not deleted, newest first.
    async fn copies(&self, asset: &AssetId) -> Result<Vec<(HitIdentity, AssetRecord)>> {
        let body = json!({
            "size": COPIES,
            "_source": ["record", "written_at"],
            "query": {"term": {"asset_id": asset.as_str()}},
        });
        let value = self.search_json(&body).await?;
        let hits = value
            .pointer("/hits/hits")
            .and_then(Value::as_array)
            .ok_or_else(|| self.ctx(Error::backend("catalog search answer has no hits")))?;
        let mut out = Vec::new();
        for h in hits {
            let who = HitIdentity::of(h).map_err(|e| self.ctx(e))?;
            if self.recent.is_deleted(&who.id) {
                continue;
            }
            let record = record_of(h.get("_source"), &who.id)?;
            if record.asset_id != *asset {
                continue;
            }
            out.push((who, record));
        }
        // Newest write first (ties by id, as `HitIdentity::newer_than` orders them).
        out.sort_by(|a, b| (b.0.written_at, &b.0.id).cmp(&(a.0.written_at, &a.0.id)));
        Ok(out)
    }

    /// The asset's current document: this handle's last write if it remembers one, else the
    /// newest searchable copy.
    async fn current(&self, asset: &AssetId) -> Result<Option<Current>> {
        let remembered = self.recent.latest(asset.as_str(), asset.as_str());
        if remembered.is_none() && self.recent.is_removed(asset.as_str()) {
            return Ok(None);
        }
        let mut copies = self.copies(asset).await?.into_iter();
        let (id, record) = match remembered {
            Some(w) => (w.id, w.value),
            None => match copies.next() {
                Some((who, record)) => (who.id, record),
                None => return Ok(None),
            },
        };
        let older = copies.map(|(who, _)| who.id).filter(|o| *o != id).collect();
        Ok(Some(Current { id, record, older }))
    }

    /// Indexes `record` as a new document (the service names it) and returns its id.
    async fn index_new(&self, record: &AssetRecord) -> Result<String> {
        let mut body =
            serde_json::to_vec(&json!({"index": {}})).map_err(crate::error::json_error)?;
        body.push(b'\n');
        serde_json::to_writer(&mut body, &document(record)?).map_err(crate::error::json_error)?;
        body.push(b'\n');
        let body = &bytes::Bytes::from(body);
        let index = self.index.as_str();
        let ctx = |e: Error| self.ctx(e).with_context("asset", record.asset_id.short());
        let value = self
            .conn
            .call("bulk", move || async move {
                self.conn
                    .client
                    .bulk(BulkParts::Index(index))
                    .body(vec![body.clone()])
                    .send()
                    .await
            })
            .await
            .and_then(|r| r.ok("bulk"))
            .map_err(ctx)?;
        let item = value
            .pointer("/items/0/index")
            .ok_or_else(|| ctx(Error::backend("OpenSearch bulk answer has no item")))?;
        let status = item.get("status").and_then(Value::as_u64).unwrap_or(0);
        match item.get("_id").and_then(Value::as_str) {
            Some(id) if (200..300).contains(&status) && item.get("error").is_none() => {
                Ok(id.to_string())
            }
            _ => {
                let (ty, reason) = error_type_reason(item);
                let kind =
                    crate::error::kind_of_status(u16::try_from(status).unwrap_or(0), ty.as_deref());
                Err(ctx(Error::new(
                    kind,
                    format!(
                        "OpenSearch refused the catalog document (HTTP {status} {}: {})",
                        ty.unwrap_or_else(|| "unknown".into()),
                        reason.unwrap_or_else(|| "no reason given".into())
                    ),
                )))
            }
        }
    }

    /// Writes `record` as the asset's document, then deletes `older` (best effort: a copy
    /// left behind is older, so reads ignore and delete it).
    async fn replace(&self, record: &AssetRecord, older: Vec<String>) -> Result<()> {
        let asset = record.asset_id.as_str();
        let id = self.index_new(record).await?;
        self.recent.wrote(asset, asset, id.clone(), record.clone());
        let older: Vec<String> = older.into_iter().filter(|o| *o != id).collect();
        let mut deleted = Vec::new();
        if !older.is_empty() {
            match bulk::send_deletes(&self.conn, &self.index, older, self.config.batch_docs).await {
                Ok(done) => {
                    if let Some((old, why)) = done.failed.first() {
                        tracing::warn!(index = %self.index, asset = record.asset_id.short(), old = %old,
                            why = %why, "an older catalog document was not deleted; reads ignore it");
                    }
                    self.recent
                        .deleted(done.deleted.iter().chain(done.not_found.iter()));
                    deleted = done.deleted;
                }
                Err(e) => tracing::warn!(index = %self.index, asset = record.asset_id.short(),
                    error = %e, "older catalog documents were not deleted; reads ignore them"),
            }
        }
        if self.config.refresh == RefreshPolicy::WaitFor {
            self.wait_for(vec![id], deleted).await?;
        }
        Ok(())
    }

    async fn wait_for(&self, written: Vec<String>, deleted: Vec<String>) -> Result<()> {
        wait_until_visible(
            &self.conn,
            &self.index,
            &self.recent,
            written,
            deleted,
            self.config.visibility_timeout,
        )
        .await
    }

    /// What `flush` does on Serverless.
    pub(super) async fn wait_for_own_writes(&self) -> Result<()> {
        let (written, deleted) = self.recent.pending();
        self.wait_for(written, deleted).await
    }

    /// Deletes older copies a read came across (best effort).
    async fn repair(&self, asset: &AssetId, older: Vec<String>) {
        if older.is_empty() {
            return;
        }
        match bulk::send_deletes(&self.conn, &self.index, older, self.config.batch_docs).await {
            Ok(done) => {
                tracing::info!(index = %self.index, asset = asset.short(), deleted = done.deleted.len(),
                    "deleted older copies of a catalog record");
                self.recent
                    .deleted(done.deleted.iter().chain(done.not_found.iter()));
            }
            Err(e) => tracing::warn!(index = %self.index, asset = asset.short(), error = %e,
                "could not delete older copies of a catalog record"),
        }
    }

    pub(super) async fn upsert_serverless(&self, record: &AssetRecord) -> Result<()> {
        let older = match self.current(&record.asset_id).await? {
            Some(c) => {
                let mut ids = c.older;
                ids.push(c.id);
                ids
            }
            None => Vec::new(),
        };
        self.replace(record, older).await
    }

    pub(super) async fn get_serverless(&self, asset: &AssetId) -> Result<Option<AssetRecord>> {
        let Some(current) = self.current(asset).await? else {
            return Ok(None);
        };
        self.repair(asset, current.older).await;
        Ok(Some(current.record))
    }

    pub(super) async fn set_status_serverless(
        &self,
        asset: &AssetId,
        status: &AssetStatus,
    ) -> Result<()> {
        let Some(current) = self.current(asset).await? else {
            return Err(Error::not_found("no such asset in the catalog")
                .with_context("asset", asset.as_str()));
        };
        let mut record = current.record;
        record.status = status.clone();
        record.updated_at_ms = now_ms();
        let mut older = current.older;
        older.push(current.id);
        self.replace(&record, older).await
    }

    pub(super) async fn remove_serverless(&self, asset: &AssetId) -> Result<bool> {
        let mut ids: HashSet<String> = self
            .recent
            .ids_of_group(asset.as_str())
            .into_iter()
            .collect();
        ids.extend(self.copies(asset).await?.into_iter().map(|(who, _)| who.id));
        if ids.is_empty() {
            return Ok(false);
        }
        let done = bulk::send_deletes(
            &self.conn,
            &self.index,
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
                    format!("OpenSearch refused to delete catalog document {id}: {why}"),
                ))
                .with_context("asset", asset.short()));
        }
        if self.config.refresh == RefreshPolicy::WaitFor {
            self.wait_for(Vec::new(), done.deleted.clone()).await?;
        }
        Ok(!done.deleted.is_empty())
    }

    /// `list` on Serverless: like a cluster's, plus a third sort key (`written_at`, newest
    /// first) so copies of one asset come newest first; copies this handle deleted or replaced
    /// are skipped (a replaced one is shown as this handle's newer record when that still
    /// matches the query), and an asset appears once per page.
    pub(super) async fn list_serverless(&self, query: &AssetQuery) -> Result<AssetPage> {
        let cursor = query.cursor.as_deref().map(decode_cursor).transpose()?;
        let limit = query.limit.clamp(1, MAX_PAGE);
        // Room for copies that are skipped.
        let size = limit + 1 + limit.min(100);
        let mut body = json!({
            "size": size,
            "track_total_hits": false,
            "_source": ["record", "written_at"],
            "query": {"bool": {"filter": list_filter(query)}},
            "sort": [
                {"created_at": {"order": "desc"}},
                {"asset_id": {"order": "desc"}},
                {"written_at": {"order": "desc"}},
            ],
        });
        if let (Some((ms, id)), Some(map)) = (&cursor, body.as_object_mut()) {
            // Past every copy of the cursor's asset (written_at is never negative).
            map.insert("search_after".into(), json!([ms, id.as_str(), -1]));
        }
        let value = self.search_json(&body).await?;
        let hits = value
            .pointer("/hits/hits")
            .and_then(Value::as_array)
            .ok_or_else(|| self.ctx(Error::backend("catalog search answer has no hits")))?;
        let matches = |r: &AssetRecord| {
            (query.kinds.is_empty() || query.kinds.contains(&r.kind()))
                && (query.states.is_empty() || query.states.contains(&r.status.state()))
        };
        let mut assets: Vec<AssetRecord> = Vec::new();
        let mut seen: HashSet<AssetId> = HashSet::new();
        let mut last_examined: Option<(i64, AssetId)> = None;
        for h in hits {
            let who = HitIdentity::of(h).map_err(|e| self.ctx(e))?;
            let record = record_of(h.get("_source"), &who.id)?;
            last_examined = Some((record.created_at_ms, record.asset_id.clone()));
            let asset = record.asset_id.as_str().to_string();
            if self.recent.is_removed(&asset) || seen.contains(&record.asset_id) {
                continue;
            }
            // This handle's own last write of the asset is its current record, whichever copy
            // the service shows; a copy it deleted otherwise is gone.
            let shown = match self.recent.latest(&asset, &asset) {
                Some(w) => w.value,
                None if self.recent.is_deleted(&who.id) => continue,
                None => record,
            };
            seen.insert(shown.asset_id.clone());
            if !matches(&shown) {
                continue;
            }
            assets.push(shown);
            if assets.len() > limit {
                break;
            }
        }
        let next_cursor = if assets.len() > limit {
            assets.truncate(limit);
            assets
                .last()
                .map(|r| encode_cursor(r.created_at_ms, &r.asset_id))
        } else if hits.len() >= size {
            // A full page of which copies were skipped: go on after the last one looked at.
            last_examined.map(|(ms, id)| encode_cursor(ms, &id))
        } else {
            None
        };
        Ok(AssetPage {
            assets,
            next_cursor,
        })
    }
}
