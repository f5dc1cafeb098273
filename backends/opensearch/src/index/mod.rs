//! [`OpenSearchIndex`]: a [`VectorIndex`] in one OpenSearch k-NN index.

mod keywords;
mod serverless;
mod update;

use std::collections::BTreeMap;

use async_trait::async_trait;
use crossmodal_core::index::{check_query, check_records};
use crossmodal_core::{
    AssetId, EmbeddingSpace, Error, ErrorKind, Hit, IndexCapabilities, IndexSpec, IndexStats,
    MetaPatch, Result, VectorIndex, VectorQuery, VectorRecord,
};
use futures::StreamExt;
use opensearch::indices::{
    IndicesCreateParts, IndicesDeleteParts, IndicesExistsParts, IndicesGetMappingParts,
    IndicesPutMappingParts, IndicesRefreshParts,
};
use opensearch::params::Conflicts;
use opensearch::{DeleteByQueryParts, OpenSearch, SearchParts};
use serde_json::{Value, json};

use crate::bulk::{self, BulkDoc, BulkReport, DocIds};
use crate::client::Conn;
use crate::config::{OpenSearchConfig, RefreshPolicy, SpaceType};
use crate::mapping::{add_fields_body, check_existing, index_body, mappings_of};
use crate::query::{Document, knn_search_body, parse_hit};
use crate::recent::Recent;
use crate::version::OpenSearchVersion;
use crate::visibility::PendingUpdates;

/// A [`VectorIndex`] in an OpenSearch (or Amazon OpenSearch Service / Serverless) k-NN index.
///
/// - One document per vector holding its record key `<asset>:<space>:<seq>`
///   ([`RecordKey::doc_id`]) in the `key` field. On a [`Deployment::Cluster`] the key is also
///   the `_id`, so an upsert of the same key replaces it; on [`Deployment::Serverless`] the
///   service assigns ids, so an upsert looks the key's earlier documents up (by search, and in
///   what this handle wrote recently), writes the new one and then deletes them, and searches
///   keep only the newest document of a key if racing writers left two (deleting the other).
/// - One `knn_vector` field per [`EmbeddingSpace`]
///   (`vector_visual`, `vector_audio`, ...) of the model's dimension, HNSW with the configured
///   engine and space; keyword metadata (`asset_id`, `space`, `kind`, `format`, `tags`), `seq`,
///   `start_sec` / `end_sec`, `created_at`; the model id and dimension in the mapping's `_meta`.
/// - [`connect`](Self::connect) creates the index if it is missing and refuses (`Conflict`) an
///   existing one built for another model, dimension or space type.
/// - Upserts go in `_bulk` batches; every document's result is checked, documents rejected for
///   load (429) are resent with backoff, and anything still refused is reported document by
///   document ([`upsert_report`](Self::upsert_report)); nothing is dropped silently.
/// - Searches put the [`Filter`](crossmodal_core::Filter) **inside** the `knn` clause (efficient
///   filtering: `k` matching hits when they exist), exclude vectors from `_source`, and convert
///   OpenSearch's score back to cosine similarity.
/// - Record metadata round-trips exactly: display name (`text` + `raw` keyword), duration
///   (`long`), user fields (exact JSON in `_source`, plus keyword `field_keys` and `field_terms`
///   for `Exists`, `Eq` / `In` and order-preserving `Range` filters); see the README.
///   [`update_meta`](VectorIndex::update_meta) changes it in place with bulk `update` items.
/// - It is also a [`KeywordIndex`](crossmodal_core::KeywordIndex): BM25 over the name's words,
///   the tags and the words of text fields in the same index, one hit per asset (see the
///   README's "Keyword search").
/// - 429 / 502 / 503 / 504, refused connections and time-outs are retried under the
///   configuration's [`RetryPolicy`](crossmodal_core::RetryPolicy) and surface as temporary errors
///   (`RateLimited`, `Unavailable`, `Timeout`) when the attempts run out.
///
/// [`RecordKey::doc_id`]: crossmodal_core::RecordKey::doc_id
/// [`Deployment::Cluster`]: crate::Deployment::Cluster
/// [`Deployment::Serverless`]: crate::Deployment::Serverless
///
/// ```no_run
/// # async fn demo() -> crossmodal_core::Result<()> {
/// use crossmodal_core::{EmbeddingSpace, Filter, IndexSpec, MediaKind, ModelInfo, VectorIndex, VectorQuery};
/// use crossmodal_opensearch::{OpenSearchConfig, OpenSearchIndex};
///
/// let config = OpenSearchConfig::aws("https://search-media.eu-west-1.es.amazonaws.com", "eu-west-1")?;
/// let index = OpenSearchIndex::connect(config, IndexSpec::for_model(&ModelInfo::marengo_3_0())).await?;
/// let query = VectorQuery::new(EmbeddingSpace::Visual, vec![0.1; 512], 10)
///     .filter(Filter::default().kinds([MediaKind::Video]));
/// for hit in index.search(&query).await? {
///     println!("{:.3} {} {:?}", hit.score, hit.asset_id, hit.segment);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct OpenSearchIndex {
    conn: Conn,
    config: OpenSearchConfig,
    spec: IndexSpec,
    engine: Option<String>,
    /// The version the cluster reported at connect (`None` on Serverless, or when it did not
    /// say).
    version: Option<OpenSearchVersion>,
    /// Serverless: what this handle (and its clones) wrote and deleted recently.
    recent: Recent<()>,
    /// Serverless: metadata updates this handle made that searches may not show yet.
    updates: PendingUpdates,
}

impl OpenSearchIndex {
    /// Connects to the cluster and makes sure the index exists for `spec`: creates it (settings
    /// and mapping as described on the type) when missing; accepts an existing one only if its
    /// mapping records the same model and dimension and every vector field has that dimension
    /// and the configured space type (`Conflict` otherwise). Vector fields of spaces the index
    /// lacks (it was made before they existed), and fields of a newer layout, are added with
    /// `PUT _mapping`. Creating is idempotent: a concurrent creator is tolerated.
    ///
    /// On a cluster it first reads the version (`GET /`) and refuses (`Unsupported`) an engine
    /// or space type that does not work there (see
    /// [`opensearch_version`](crate::OpenSearchConfigBuilder::opensearch_version)); below 2.16 it
    /// leaves `ef_search` out of queries unless that was asked for explicitly. Serverless
    /// answers no `GET /`, so there it is not asked.
    pub async fn connect(mut config: OpenSearchConfig, spec: IndexSpec) -> Result<Self> {
        if spec.dimension == 0 || spec.dimension > 16_000 {
            return Err(Error::invalid_input(format!(
                "OpenSearch knn_vector fields take 1 to 16000 dimensions, the model has {}",
                spec.dimension
            )));
        }
        let conn = Conn::new(&config).await?;
        let version = if config.is_serverless() {
            None
        } else {
            cluster_version(&conn).await?
        };
        if let Some(v) = version {
            config
                .adapt_to(v)
                .map_err(|e| e.with_context("url", &config.url))?;
        }
        let name = config.index.clone();
        let ctx = |e: Error| e.with_context("index", &name);
        let (client, idx) = (&conn.client, name.as_str());
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
                let body = &index_body(&config, &spec);
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
                if created.is_success() {
                    tracing::info!(index = %name, model = %spec.model_id, dimension = spec.dimension,
                        engine = %config.engine, space_type = %config.space_type, "created OpenSearch k-NN index");
                } else {
                    let err = created.error("indices.create");
                    // Someone else created it first: check theirs like any existing index.
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
        let mappings = mappings_of(&mapping).ok_or_else(|| {
            ctx(Error::backend(
                "OpenSearch answered GET _mapping without a mapping",
            ))
        })?;
        let existing = check_existing(&name, mappings, &config, &spec)?;
        if !existing.missing.is_empty() {
            // Adding fields to a mapping is allowed; changing them is not.
            let body = &add_fields_body(&config, &spec, &existing.missing);
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
            tracing::info!(index = %name, spaces = ?existing.missing.spaces,
                fields = ?existing.missing.fields, "added fields to the index");
        }
        let recent = Recent::new(config.visibility_timeout);
        let updates = PendingUpdates::new(config.visibility_timeout);
        Ok(OpenSearchIndex {
            conn,
            config,
            spec,
            engine: existing.engine,
            version,
            recent,
            updates,
        })
    }

    /// The index name.
    pub fn index_name(&self) -> &str {
        &self.config.index
    }

    /// The configuration the index was connected with.
    pub fn config(&self) -> &OpenSearchConfig {
        &self.config
    }

    /// The k-NN engine of the index's vector fields, as its mapping says.
    pub fn engine(&self) -> Option<&str> {
        self.engine.as_deref()
    }

    /// The OpenSearch version the cluster reported at connect (`None` on Serverless, which does
    /// not answer `GET /`, or when the cluster did not say).
    pub fn opensearch_version(&self) -> Option<OpenSearchVersion> {
        self.version
    }

    /// The underlying `opensearch` client (authenticated, with the configured time-out), for
    /// operations this type does not offer.
    pub fn client(&self) -> &OpenSearch {
        &self.conn.client
    }

    fn space_type(&self) -> SpaceType {
        self.config.space_type
    }

    /// The `method_parameters.ef_search` queries carry, if any.
    fn query_ef(&self) -> Option<u32> {
        self.config
            .ef_search
            .filter(|_| self.config.ef_search_per_query)
    }

    fn ctx(&self, e: Error) -> Error {
        e.with_context("index", &self.config.index)
    }

    /// Upserts `records` and reports the outcome document by document instead of failing on
    /// the first refused one. Validation is all-or-nothing and happens before anything is sent
    /// (`InvalidInput`); request-level failures that outlast the retries are errors; documents
    /// OpenSearch refuses individually are listed in [`BulkReport::failed`] (their batch-mates
    /// are written).
    ///
    /// On Serverless each batch is a search for the keys' earlier documents, a `_bulk` of
    /// `index` items without `_id`, and a `_bulk` of `delete` items for the earlier documents
    /// ([`BulkReport::replaced`], [`BulkReport::stale`]); with [`RefreshPolicy::WaitFor`] the
    /// call then waits until the new documents are searchable.
    pub async fn upsert_report(&self, records: Vec<VectorRecord>) -> Result<BulkReport> {
        check_records(&self.spec, &records)?;
        if self.config.is_serverless() {
            return self.upsert_serverless(records).await;
        }
        let docs = records
            .iter()
            .map(|r| BulkDoc::new(r.key(), &Document::of(r), DocIds::RecordKey))
            .collect::<Result<Vec<_>>>()?;
        let batches = bulk::batches(docs, self.config.batch_docs, self.config.batch_bytes);
        let index = self.config.index.as_str();
        let refresh = self.config.refresh.write_param();
        let results: Vec<Result<bulk::BatchOutcome>> = futures::stream::iter(batches)
            .map(|batch| bulk::send_batch(&self.conn, index, refresh, DocIds::RecordKey, batch))
            .buffer_unordered(self.config.bulk_concurrency)
            .collect()
            .await;
        let mut report = BulkReport::default();
        for r in results {
            report.merge(r?.report);
        }
        Ok(report)
    }

    /// Makes every write so far searchable (`POST /<index>/_refresh`). Amazon OpenSearch
    /// Serverless has no `_refresh` (`Unsupported`): use [`flush`](VectorIndex::flush), which
    /// waits there until this handle's writes are searchable.
    pub async fn refresh(&self) -> Result<()> {
        if self.config.is_serverless() {
            return Err(self.ctx(Error::unsupported(
                "Amazon OpenSearch Serverless has no _refresh; flush() waits until this \
                 handle's writes are searchable",
            )));
        }
        let index = self.config.index.as_str();
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

    /// Deletes the whole index (every vector); `false` if it did not exist. The value must not
    /// be used afterwards (a new [`connect`](Self::connect) recreates the index).
    pub async fn delete_index(&self) -> Result<bool> {
        let index = self.config.index.as_str();
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

    /// Runs a `_search` and checks the answer is complete (no failed shards, not timed out).
    async fn search_raw(&self, op: &'static str, body: &Value) -> Result<Value> {
        let index = self.config.index.as_str();
        let value = self
            .conn
            .call(op, move || async move {
                self.conn
                    .client
                    .search(SearchParts::Index(&[index]))
                    .body(body.clone())
                    .send()
                    .await
            })
            .await
            .and_then(|r| r.ok(op))
            .map_err(|e| self.ctx(e))?;
        check_complete(op, &value).map_err(|e| self.ctx(e))?;
        Ok(value)
    }
}

/// An answer with failed shards or a time-out is incomplete: results would silently miss
/// vectors, so it is a (temporary) error instead.
fn check_complete(op: &'static str, value: &Value) -> Result<()> {
    let failed = value
        .pointer("/_shards/failed")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    if failed > 0 {
        let reason = value
            .pointer("/_shards/failures/0/reason/reason")
            .and_then(Value::as_str)
            .unwrap_or("no reason given");
        return Err(Error::new(
            ErrorKind::Unavailable,
            format!("OpenSearch {op}: {failed} shard(s) failed: {reason}"),
        ));
    }
    if value.get("timed_out").and_then(Value::as_bool) == Some(true) {
        return Err(Error::new(
            ErrorKind::Timeout,
            format!("OpenSearch {op} timed out with partial results"),
        ));
    }
    Ok(())
}

#[async_trait]
impl VectorIndex for OpenSearchIndex {
    fn spec(&self) -> &IndexSpec {
        &self.spec
    }

    fn capabilities(&self) -> IndexCapabilities {
        IndexCapabilities {
            filter_push_down: true,
            // HNSW in OpenSearch is approximate (recall is tuned with m / ef_*).
            exact: false,
            persistent: true,
            max_batch: 10_000,
        }
    }

    async fn upsert(&self, records: Vec<VectorRecord>) -> Result<()> {
        self.upsert_report(records)
            .await?
            .into_result()
            .map_err(|e| self.ctx(e))
    }

    async fn search(&self, query: &VectorQuery) -> Result<Vec<Hit>> {
        check_query(&self.spec, query)?;
        let mut out = if self.config.is_serverless() {
            self.search_serverless(query).await?
        } else {
            let value = self
                .search_raw("search", &knn_search_body(query, self.query_ef()))
                .await?;
            hits_of(&value)
                .map_err(|e| self.ctx(e))?
                .iter()
                .map(|h| parse_hit(h, self.space_type()))
                .collect::<Result<Vec<Hit>>>()
                .map_err(|e| self.ctx(e))?
        };
        if let Some(h) = out.iter().find(|h| h.space != query.space) {
            return Err(self.ctx(Error::corrupt(format!(
                "a {} search returned a {} document",
                query.space, h.space
            ))));
        }
        out.sort_by(|a, b| b.score.total_cmp(&a.score));
        out.truncate(query.k);
        Ok(out)
    }

    async fn delete_asset(&self, asset: &AssetId) -> Result<usize> {
        if self.config.is_serverless() {
            return self.delete_asset_serverless(asset).await;
        }
        // `_delete_by_query` only sees refreshed documents: without automatic visibility, make
        // recent writes visible first so none of the asset's vectors survive.
        if self.config.refresh == RefreshPolicy::None {
            self.refresh().await?;
        }
        let index = self.config.index.as_str();
        let body = &json!({"query": {"term": {"asset_id": asset.as_str()}}});
        let refresh = self.config.refresh.delete_by_query_param();
        let mut deleted = 0u64;
        // Version conflicts (a concurrent write to one of the documents) leave that document
        // in place with `conflicts=proceed`; go again until none remain.
        for round in 1..=5 {
            let value = self
                .conn
                .call("delete_by_query", move || async move {
                    self.conn
                        .client
                        .delete_by_query(DeleteByQueryParts::Index(&[index]))
                        .body(body.clone())
                        .conflicts(Conflicts::Proceed)
                        .refresh(refresh)
                        .request_timeout(self.conn.bulk_timeout)
                        .send()
                        .await
                })
                .await
                .and_then(|r| r.ok("delete_by_query"))
                .map_err(|e| self.ctx(e).with_context("asset", asset.short()))?;
            let this_round = value.get("deleted").and_then(Value::as_u64).unwrap_or(0);
            if value.get("timed_out").and_then(Value::as_bool) == Some(true) {
                // Part of the asset may be gone, part not: not a success, and no count to
                // claim. The call is safe to repeat.
                return Err(self
                    .ctx(Error::new(
                        ErrorKind::Timeout,
                        format!(
                            "OpenSearch delete_by_query timed out after deleting {} of {} \
                             matching documents; the others remain (deleting again finishes it)",
                            deleted + this_round,
                            deleted + value.get("total").and_then(Value::as_u64).unwrap_or(0)
                        ),
                    ))
                    .with_context("asset", asset.short()));
            }
            deleted += this_round;
            if let Some(f) = value
                .get("failures")
                .and_then(Value::as_array)
                .and_then(|f| f.first())
            {
                return Err(self
                    .ctx(Error::backend(format!(
                        "OpenSearch delete_by_query failed for some documents: {f}"
                    )))
                    .with_context("asset", asset.short()));
            }
            let conflicts = value
                .get("version_conflicts")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            if conflicts == 0 {
                break;
            }
            if round == 5 {
                return Err(self
                    .ctx(Error::new(
                        ErrorKind::Conflict,
                        format!("{conflicts} documents kept changing while being deleted"),
                    ))
                    .with_context("asset", asset.short()));
            }
        }
        Ok(usize::try_from(deleted).unwrap_or(usize::MAX))
    }

    /// Changes the metadata of every document of `asset` in place with bulk `update` items
    /// (see the `update` module: documents found by a `term` query on `asset_id`, the patch
    /// applied to each one's current metadata, every item checked). Returns how many records
    /// changed (0 for an asset the index does not hold); `InvalidInput` before any request for
    /// a patch that is not valid or would leave a record with too many fields.
    async fn update_meta(&self, asset: &AssetId, patch: &MetaPatch) -> Result<usize> {
        self.update_meta_impl(asset, patch).await
    }

    async fn stats(&self) -> Result<IndexStats> {
        let body = json!({
            "size": 0,
            "track_total_hits": true,
            "aggs": {
                "spaces": {"terms": {"field": "space", "size": 16}},
                // Exact below the threshold; HyperLogLog++ estimate above it.
                "assets": {"cardinality": {"field": "asset_id", "precision_threshold": 40000}},
            },
        });
        let value = self.search_raw("stats", &body).await?;
        let mut vectors_per_space = BTreeMap::new();
        let buckets = value
            .pointer("/aggregations/spaces/buckets")
            .and_then(Value::as_array)
            .ok_or_else(|| self.ctx(Error::backend("stats answer has no spaces aggregation")))?;
        for b in buckets {
            let key = b.get("key").and_then(Value::as_str).unwrap_or_default();
            let count = b.get("doc_count").and_then(Value::as_u64).unwrap_or(0);
            match key.parse::<EmbeddingSpace>() {
                Ok(space) => {
                    vectors_per_space.insert(space, count);
                }
                Err(_) => tracing::warn!(space = key, count, "vectors in an unknown space"),
            }
        }
        let assets = value
            .pointer("/aggregations/assets/value")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        Ok(IndexStats {
            vectors_per_space,
            tombstones: 0,
            assets,
            memory_bytes: 0,
        })
    }

    async fn flush(&self) -> Result<()> {
        if self.config.is_serverless() {
            return self.wait_for_own_writes().await;
        }
        self.refresh().await
    }
}

/// The `hits.hits` array of a search answer.
fn hits_of(value: &Value) -> Result<&Vec<Value>> {
    value
        .pointer("/hits/hits")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::backend("OpenSearch search answer has no hits"))
}

/// The version `GET /` reports, when the cluster answers it and says it is OpenSearch (an
/// Amazon OpenSearch Service domain in Elasticsearch-compatibility mode reports 7.10: no
/// floor is checked then).
async fn cluster_version(conn: &Conn) -> Result<Option<OpenSearchVersion>> {
    let client = &conn.client;
    let reply = conn
        .call("info", move || async move { client.info().send().await })
        .await?;
    if !reply.is_success() {
        tracing::warn!(
            status = reply.status,
            "GET / did not answer; the OpenSearch version is not checked"
        );
        return Ok(None);
    }
    let body = reply.body.unwrap_or(Value::Null);
    let distribution = body
        .pointer("/version/distribution")
        .and_then(Value::as_str)
        .unwrap_or("elasticsearch");
    let number = body.pointer("/version/number").and_then(Value::as_str);
    match (distribution, number) {
        ("opensearch", Some(n)) => match n.parse() {
            Ok(v) => Ok(Some(v)),
            Err(_) => {
                tracing::warn!(version = n, "unreadable OpenSearch version; not checked");
                Ok(None)
            }
        },
        _ => {
            tracing::info!(
                distribution,
                version = number,
                "the cluster does not report an OpenSearch version; not checked"
            );
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incomplete_answers_are_errors() {
        assert!(
            check_complete("s", &json!({"_shards": {"failed": 0}, "timed_out": false})).is_ok()
        );
        let e = check_complete(
            "s",
            &json!({"_shards": {"failed": 1, "failures": [
            {"reason": {"reason": "node left"}}]}}),
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.message().contains("node left"));
        let e = check_complete("s", &json!({"timed_out": true})).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout);
    }
}
