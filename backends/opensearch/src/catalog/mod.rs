//! [`OpenSearchCatalog`]: the [`AssetCatalog`] in a second OpenSearch index.

mod serverless;

use async_trait::async_trait;
use crossmodal_core::{
    AssetCatalog, AssetId, AssetPage, AssetQuery, AssetRecord, AssetState, AssetStatus, Error,
    ErrorKind, Result, StatusCounts, now_ms,
};
use opensearch::indices::{
    IndicesCreateParts, IndicesDeleteParts, IndicesExistsParts, IndicesGetMappingParts,
    IndicesPutMappingParts, IndicesRefreshParts,
};
use opensearch::{DeleteParts, GetParts, IndexParts, OpenSearch, SearchParts};
use serde_json::{Value, json};

use crate::client::Conn;
use crate::config::OpenSearchConfig;
use crate::mapping::{LAYOUT_VERSION, META_KEY, mappings_of};
use crate::recent::Recent;

/// Largest page [`AssetCatalog::list`] returns.
const MAX_PAGE: usize = 1000;

/// How often [`AssetCatalog::set_status`] retries after a concurrent change of the same record.
const STATUS_ATTEMPTS: u32 = 8;

/// An [`AssetCatalog`] in an OpenSearch index (by default `<vector index>-assets`), so a
/// deployment on OpenSearch needs no other database.
///
/// - One document per asset: the whole [`AssetRecord`] as a stored, unindexed object
///   (`record`), next to the fields queries use (`asset_id`, `kind`, `state`, `created_at`,
///   `updated_at`, `tags`) and `written_at`; strict mapping, `_meta.crossmodal.holds = "assets"`.
/// - [`list`](AssetCatalog::list) sorts by `created_at` then `asset_id`, both descending, and
///   pages with `search_after` (the cursor is `os1.<created_at_ms>.<asset_id>`), so deep pages
///   cost the same as the first.
/// - On a [`Deployment::Cluster`](crate::Deployment::Cluster) the document id is the asset id
///   (`PUT _doc/<asset>`); [`set_status`](AssetCatalog::set_status) is a read-modify-write
///   guarded by `if_seq_no` / `if_primary_term` (optimistic concurrency), retried on
///   conflicts; writes use the configured [`RefreshPolicy`](crate::RefreshPolicy) (`wait_for` by
///   default), so a `list` right after an `upsert` sees it.
/// - On [`Deployment::Serverless`](crate::Deployment::Serverless) (no custom ids, no refresh):
///   an asset's document is found by a `term` search on `asset_id`; a write indexes a new
///   document without id, then deletes the earlier ones with bulk `delete` items. What this
///   handle wrote recently is remembered, so [`get`](AssetCatalog::get) and
///   [`set_status`](AssetCatalog::set_status) see their own writes at once; `list` and `counts`
///   see writes once the service makes them searchable (about 60 s; [`flush`](Self::flush) waits
///   for it). Two writers racing on one asset may leave two documents: reads take the newest
///   write and delete the other (last writer wins; there is no optimistic concurrency there).
#[derive(Debug, Clone)]
pub struct OpenSearchCatalog {
    conn: Conn,
    config: OpenSearchConfig,
    index: String,
    /// Serverless: what this handle (and its clones) wrote and deleted recently.
    recent: Recent<AssetRecord>,
}

fn catalog_body() -> Value {
    json!({
        "mappings": {
            "dynamic": "strict",
            "_meta": {META_KEY: {"layout": LAYOUT_VERSION, "holds": "assets"}},
            "properties": {
                "asset_id": {"type": "keyword"},
                "kind": {"type": "keyword"},
                "state": {"type": "keyword"},
                "tags": {"type": "keyword"},
                "created_at": {"type": "date", "format": "epoch_millis"},
                "updated_at": {"type": "date", "format": "epoch_millis"},
                "written_at": {"type": "date", "format": "epoch_millis"},
                "record": {"type": "object", "enabled": false},
            },
        },
    })
}

fn document(record: &AssetRecord) -> Result<Value> {
    Ok(json!({
        "asset_id": record.asset_id.as_str(),
        "kind": record.kind().as_str(),
        "state": record.status.state().as_str(),
        "tags": record.tags,
        "created_at": record.created_at_ms,
        "updated_at": record.updated_at_ms,
        "written_at": now_ms(),
        "record": serde_json::to_value(record).map_err(crate::error::json_error)?,
    }))
}

fn record_of(source: Option<&Value>, id: &str) -> Result<AssetRecord> {
    let record = source.and_then(|s| s.get("record")).ok_or_else(|| {
        Error::corrupt("catalog document has no record").with_context("asset", id)
    })?;
    serde_json::from_value(record.clone()).map_err(|e| {
        Error::corrupt(format!("catalog record does not parse: {e}"))
            .with_context("asset", id)
            .with_source(e)
    })
}

/// Encodes the position after a record as an opaque cursor.
fn encode_cursor(created_at_ms: i64, asset_id: &AssetId) -> String {
    format!("os1.{created_at_ms}.{asset_id}")
}

/// Decodes a cursor from [`encode_cursor`]; anything else is `InvalidInput`.
fn decode_cursor(cursor: &str) -> Result<(i64, AssetId)> {
    let bad = || Error::invalid_input("malformed catalog cursor").with_context("cursor", cursor);
    let rest = cursor.strip_prefix("os1.").ok_or_else(bad)?;
    let (ms, id) = rest.rsplit_once('.').ok_or_else(bad)?;
    let ms: i64 = ms.parse().map_err(|_| bad())?;
    let id = AssetId::parse(id).map_err(|_| bad())?;
    Ok((ms, id))
}

impl OpenSearchCatalog {
    /// Connects and makes sure the catalog index ([`OpenSearchConfig::catalog_index`]) exists:
    /// creates it when missing, accepts an existing one only if it is a crossmodal asset
    /// catalog of a layout this version reads (`Conflict` otherwise).
    pub async fn connect(config: OpenSearchConfig) -> Result<Self> {
        let conn = Conn::new(&config).await?;
        let index = config.catalog_index();
        let ctx = |e: Error| e.with_context("index", &index);
        let (client, idx) = (&conn.client, index.as_str());
        let exists = conn
            .call("indices.exists", move || async move {
                client
                    .indices()
                    .exists(IndicesExistsParts::Index(&[idx]))
                    .send()
                    .await
            })
            .await
            .map_err(ctx)?;
        match exists.status {
            200 => {}
            404 => {
                let body = &catalog_body();
                let created = conn
                    .call("indices.create", move || async move {
                        client
                            .indices()
                            .create(IndicesCreateParts::Index(idx))
                            .body(body.clone())
                            .send()
                            .await
                    })
                    .await
                    .map_err(ctx)?;
                if !created.is_success() {
                    let err = created.error("indices.create");
                    if err.kind() != ErrorKind::Conflict {
                        return Err(ctx(err));
                    }
                }
            }
            _ => return Err(ctx(exists.error("indices.exists"))),
        }
        let mapping = conn
            .call("indices.get_mapping", move || async move {
                client
                    .indices()
                    .get_mapping(IndicesGetMappingParts::Index(&[idx]))
                    .send()
                    .await
            })
            .await
            .and_then(|r| r.ok("indices.get_mapping"))
            .map_err(ctx)?;
        let mappings = mappings_of(&mapping);
        check_catalog_mapping(&index, mappings)?;
        let has_written_at = mappings
            .and_then(|m| m.pointer("/properties/written_at/type"))
            .is_some();
        if !has_written_at {
            // A catalog of layout 1: add the field this version writes.
            let body = &json!({"properties": {
                "written_at": {"type": "date", "format": "epoch_millis"}}});
            conn.call("indices.put_mapping", move || async move {
                client
                    .indices()
                    .put_mapping(IndicesPutMappingParts::Index(&[idx]))
                    .body(body.clone())
                    .send()
                    .await
            })
            .await
            .and_then(|r| r.ok("indices.put_mapping"))
            .map_err(ctx)?;
        }
        let recent = Recent::new(config.visibility_timeout);
        Ok(OpenSearchCatalog {
            conn,
            config,
            index,
            recent,
        })
    }

    /// Makes every write so far visible to [`list`](AssetCatalog::list) and
    /// [`counts`](AssetCatalog::counts): `_refresh` on a cluster; on Serverless it waits
    /// (polling, up to the [visibility time-out](crate::OpenSearchConfigBuilder::visibility_timeout))
    /// until this handle's writes are searchable and its deletes gone.
    pub async fn flush(&self) -> Result<()> {
        if self.config.is_serverless() {
            return self.wait_for_own_writes().await;
        }
        let index = self.index.as_str();
        self.conn
            .call("indices.refresh", move || async move {
                self.conn
                    .client
                    .indices()
                    .refresh(IndicesRefreshParts::Index(&[index]))
                    .send()
                    .await
            })
            .await
            .and_then(|r| r.ok("indices.refresh"))
            .map_err(|e| self.ctx(e))?;
        Ok(())
    }

    /// The catalog index name.
    pub fn index_name(&self) -> &str {
        &self.index
    }

    /// The underlying `opensearch` client.
    pub fn client(&self) -> &OpenSearch {
        &self.conn.client
    }

    /// Deletes the catalog index (every record); `false` if it did not exist.
    pub async fn delete_index(&self) -> Result<bool> {
        let index = self.index.as_str();
        let reply = self
            .conn
            .call("indices.delete", move || async move {
                self.conn
                    .client
                    .indices()
                    .delete(IndicesDeleteParts::Index(&[index]))
                    .send()
                    .await
            })
            .await
            .map_err(|e| self.ctx(e))?;
        match reply.status {
            404 => Ok(false),
            _ => reply
                .ok("indices.delete")
                .map(|_| true)
                .map_err(|e| self.ctx(e)),
        }
    }

    fn ctx(&self, e: Error) -> Error {
        e.with_context("index", &self.index)
    }

    /// The document of `asset` with its sequence number and primary term, if it exists.
    async fn get_doc(&self, asset: &AssetId) -> Result<Option<(AssetRecord, i64, i64)>> {
        let index = self.index.as_str();
        let reply = self
            .conn
            .call("get", move || async move {
                self.conn
                    .client
                    .get(GetParts::IndexId(index, asset.as_str()))
                    .send()
                    .await
            })
            .await
            .map_err(|e| self.ctx(e))?;
        if reply.status == 404 {
            // A missing document (found: false); a missing index is an error.
            let missing_index = reply
                .body
                .as_ref()
                .and_then(|b| b.pointer("/error/type"))
                .and_then(Value::as_str)
                == Some("index_not_found_exception");
            if missing_index {
                return Err(self.ctx(reply.error("get")));
            }
            return Ok(None);
        }
        let value = reply.ok("get").map_err(|e| self.ctx(e))?;
        if value.get("found").and_then(Value::as_bool) != Some(true) {
            return Ok(None);
        }
        let record = record_of(value.get("_source"), asset.as_str())?;
        let seq_no = value.get("_seq_no").and_then(Value::as_i64).unwrap_or(-1);
        let term = value
            .get("_primary_term")
            .and_then(Value::as_i64)
            .unwrap_or(-1);
        Ok(Some((record, seq_no, term)))
    }

    /// Writes `record`, guarded by `(seq_no, primary_term)` when given. `Ok(false)` on a
    /// version conflict.
    async fn put(&self, record: &AssetRecord, guard: Option<(i64, i64)>) -> Result<bool> {
        let index = self.index.as_str();
        let id = record.asset_id.as_str();
        let doc = &document(record)?;
        let refresh = self.config.refresh.write_param();
        let reply = self
            .conn
            .call("index", move || async move {
                let mut request = self
                    .conn
                    .client
                    .index(IndexParts::IndexId(index, id))
                    .body(doc.clone());
                if let Some((seq_no, term)) = guard {
                    request = request.if_seq_no(seq_no).if_primary_term(term);
                }
                if let Some(r) = refresh {
                    request = request.refresh(r);
                }
                request.send().await
            })
            .await
            .map_err(|e| self.ctx(e).with_context("asset", record.asset_id.short()))?;
        if reply.status == 409 && guard.is_some() {
            return Ok(false);
        }
        reply
            .ok("index")
            .map_err(|e| self.ctx(e).with_context("asset", record.asset_id.short()))?;
        Ok(true)
    }
}

/// The `bool.filter` clauses of a list query.
fn list_filter(query: &AssetQuery) -> Vec<Value> {
    let mut filter = Vec::new();
    if !query.kinds.is_empty() {
        let kinds: Vec<&str> = query.kinds.iter().map(|k| k.as_str()).collect();
        filter.push(json!({"terms": {"kind": kinds}}));
    }
    if !query.states.is_empty() {
        let states: Vec<&str> = query.states.iter().map(|s| s.as_str()).collect();
        filter.push(json!({"terms": {"state": states}}));
    }
    filter
}

fn check_catalog_mapping(index: &str, mappings: Option<&Value>) -> Result<()> {
    let conflict = |why: &str| {
        Error::new(
            ErrorKind::Conflict,
            format!("existing OpenSearch index {index:?} is not a crossmodal asset catalog: {why}"),
        )
        .with_context("index", index)
    };
    let meta = mappings
        .and_then(|m| m.get("_meta"))
        .and_then(|m| m.get(META_KEY))
        .ok_or_else(|| conflict("no `_meta.crossmodal` in its mapping"))?;
    if meta.get("holds").and_then(Value::as_str) != Some("assets") {
        return Err(conflict("it holds something else"));
    }
    let layout = meta.get("layout").and_then(Value::as_u64).unwrap_or(0);
    if layout > LAYOUT_VERSION {
        return Err(Error::unsupported(format!(
            "catalog index {index:?} uses layout {layout}, newer than this library's \
             ({LAYOUT_VERSION}); upgrade crossmodal-opensearch"
        )));
    }
    let properties = mappings.and_then(|m| m.get("properties"));
    for (field, ty) in [
        ("asset_id", "keyword"),
        ("kind", "keyword"),
        ("state", "keyword"),
        ("created_at", "date"),
    ] {
        let got = properties
            .and_then(|p| p.get(field))
            .and_then(|f| f.get("type"))
            .and_then(Value::as_str);
        if got != Some(ty) {
            return Err(conflict(&format!("field {field} is not a {ty}")));
        }
    }
    Ok(())
}

#[async_trait]
impl AssetCatalog for OpenSearchCatalog {
    async fn upsert(&self, record: &AssetRecord) -> Result<()> {
        if self.config.is_serverless() {
            return self.upsert_serverless(record).await;
        }
        self.put(record, None).await.map(|_| ())
    }

    async fn get(&self, asset: &AssetId) -> Result<Option<AssetRecord>> {
        if self.config.is_serverless() {
            return self.get_serverless(asset).await;
        }
        Ok(self.get_doc(asset).await?.map(|(r, _, _)| r))
    }

    async fn set_status(&self, asset: &AssetId, status: &AssetStatus) -> Result<()> {
        if self.config.is_serverless() {
            return self.set_status_serverless(asset, status).await;
        }
        for _ in 0..STATUS_ATTEMPTS {
            let Some((mut record, seq_no, term)) = self.get_doc(asset).await? else {
                return Err(Error::not_found("no such asset in the catalog")
                    .with_context("asset", asset.as_str()));
            };
            record.status = status.clone();
            record.updated_at_ms = now_ms();
            if self.put(&record, Some((seq_no, term))).await? {
                return Ok(());
            }
            tracing::debug!(
                asset = asset.short(),
                "catalog record changed concurrently; retrying"
            );
        }
        Err(self
            .ctx(Error::new(
                ErrorKind::Conflict,
                format!("catalog record kept changing during {STATUS_ATTEMPTS} status updates"),
            ))
            .with_context("asset", asset.short()))
    }

    async fn list(&self, query: &AssetQuery) -> Result<AssetPage> {
        if self.config.is_serverless() {
            return self.list_serverless(query).await;
        }
        let cursor = query.cursor.as_deref().map(decode_cursor).transpose()?;
        let limit = query.limit.clamp(1, MAX_PAGE);
        let filter = list_filter(query);
        let mut body = json!({
            "size": limit + 1,
            "track_total_hits": false,
            "_source": ["record"],
            "query": {"bool": {"filter": filter}},
            "sort": [{"created_at": {"order": "desc"}}, {"asset_id": {"order": "desc"}}],
        });
        if let (Some((ms, id)), Some(map)) = (&cursor, body.as_object_mut()) {
            map.insert("search_after".into(), json!([ms, id.as_str()]));
        }
        let index = self.index.as_str();
        let body = &body;
        let value = self
            .conn
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
            .map_err(|e| self.ctx(e))?;
        let hits = value
            .pointer("/hits/hits")
            .and_then(Value::as_array)
            .ok_or_else(|| self.ctx(Error::backend("catalog search answer has no hits")))?;
        let mut assets = hits
            .iter()
            .map(|h| {
                let id = h.get("_id").and_then(Value::as_str).unwrap_or("?");
                record_of(h.get("_source"), id)
            })
            .collect::<Result<Vec<_>>>()?;
        let next_cursor = if assets.len() > limit {
            assets.truncate(limit);
            assets
                .last()
                .map(|r| encode_cursor(r.created_at_ms, &r.asset_id))
        } else {
            None
        };
        Ok(AssetPage {
            assets,
            next_cursor,
        })
    }

    async fn remove(&self, asset: &AssetId) -> Result<bool> {
        if self.config.is_serverless() {
            return self.remove_serverless(asset).await;
        }
        let index = self.index.as_str();
        let refresh = self.config.refresh.write_param();
        let reply = self
            .conn
            .call("delete", move || async move {
                let mut request = self
                    .conn
                    .client
                    .delete(DeleteParts::IndexId(index, asset.as_str()));
                if let Some(r) = refresh {
                    request = request.refresh(r);
                }
                request.send().await
            })
            .await
            .map_err(|e| self.ctx(e))?;
        if reply.status == 404
            && reply
                .body
                .as_ref()
                .and_then(|b| b.get("result"))
                .and_then(Value::as_str)
                == Some("not_found")
        {
            return Ok(false);
        }
        let value = reply.ok("delete").map_err(|e| self.ctx(e))?;
        Ok(value.get("result").and_then(Value::as_str) == Some("deleted"))
    }

    async fn counts(&self) -> Result<StatusCounts> {
        let body = json!({
            "size": 0,
            "track_total_hits": true,
            "aggs": {"states": {"terms": {"field": "state", "size": 16}}},
        });
        let index = self.index.as_str();
        let body = &body;
        let value = self
            .conn
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
            .map_err(|e| self.ctx(e))?;
        let buckets = value
            .pointer("/aggregations/states/buckets")
            .and_then(Value::as_array)
            .ok_or_else(|| self.ctx(Error::backend("counts answer has no states aggregation")))?;
        let mut counts = StatusCounts::default();
        for b in buckets {
            let n = b.get("doc_count").and_then(Value::as_u64).unwrap_or(0);
            let key = b.get("key").and_then(Value::as_str).unwrap_or_default();
            match AssetState::ALL.into_iter().find(|s| s.as_str() == key) {
                Some(AssetState::Pending) => counts.pending += n,
                Some(AssetState::Embedding) => counts.embedding += n,
                Some(AssetState::Indexed) => counts.indexed += n,
                Some(AssetState::Failed) => counts.failed += n,
                None => tracing::warn!(state = key, n, "catalog documents in an unknown state"),
            }
        }
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let id = AssetId::from_content(b"x");
        let c = encode_cursor(1_700_000_000_123, &id);
        assert_eq!(decode_cursor(&c).unwrap(), (1_700_000_000_123, id));
        for bad in ["", "os1.", "os1.12", "c1.1.abc", "os1.x.abc"] {
            assert_eq!(
                decode_cursor(bad).unwrap_err().kind(),
                ErrorKind::InvalidInput
            );
        }
    }

    #[test]
    fn catalog_mapping_is_checked() {
        let body = catalog_body();
        check_catalog_mapping("c", Some(&body["mappings"])).unwrap();
        let e = check_catalog_mapping("c", Some(&json!({"properties": {}}))).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict);
    }
}
