//! `OpenSearchIndex` and `OpenSearchCatalog` on Amazon OpenSearch Serverless rules, against the
//! k-NN test server acting as a vector search collection (`KnnServer::start_serverless`: only
//! `aoss`-signed requests, writes searchable after a delay, Serverless's refusals).
//!
//! For every refusal: a test that sends what the crate used to send and shows the service's
//! answer, and a test that the crate's request now passes.
#![cfg(feature = "aws-auth")]
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossmodal_core::conformance::vector_index_suite;
use crossmodal_core::{
    AssetCatalog, AssetQuery, AssetState, AssetStatus, EmbeddingSpace, ErrorKind, FieldTest,
    Filter, IndexSpec, MediaFormat, MetaPatch, VectorIndex, VectorQuery,
};
use crossmodal_opensearch::opensearch::indices::IndicesCreateParts;
use crossmodal_opensearch::opensearch::params::Refresh;
use crossmodal_opensearch::opensearch::{BulkParts, DeleteByQueryParts, IndexParts};
use crossmodal_opensearch::{
    Deployment, Engine, OpenSearchCatalog, OpenSearchConfig, OpenSearchIndex, RefreshPolicy,
};
use crossmodal_testkit::knn_server::{self, KnnServer};
use serde_json::{Value, json};

/// The visibility delay of the test collection (the service: about 60 s).
const LAG: Duration = Duration::from_millis(200);

fn spec(dim: usize) -> IndexSpec {
    IndexSpec::new("test-model", dim)
}

async fn serverless_index(
    server: &KnnServer,
    hint: &str,
    refresh: RefreshPolicy,
) -> OpenSearchIndex {
    let config = common::serverless_builder(&server.url(), hint)
        .refresh(refresh)
        .build()
        .unwrap();
    assert_eq!(config.deployment(), Deployment::Serverless);
    OpenSearchIndex::connect(config, spec(4)).await.unwrap()
}

/// Every request the crate sent keeps Serverless's rules.
fn assert_within_serverless_rules(server: &KnnServer) {
    for r in server.requests() {
        let auth = r
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(
            auth.contains("/aoss/aws4_request"),
            "{} {}: {auth}",
            r.method,
            r.path
        );
        assert!(
            r.param("refresh").is_none(),
            "{} {} has refresh",
            r.method,
            r.path
        );
        assert!(
            !r.path.ends_with("/_refresh") && !r.path.ends_with("/_delete_by_query"),
            "{} {}",
            r.method,
            r.path
        );
        assert!(!r.path.contains("/_doc/"), "{} {}", r.method, r.path);
        if r.path.ends_with("/_bulk") && !r.body.starts_with('<') {
            for line in r.body.lines() {
                let v: Value = serde_json::from_str(line).unwrap();
                if let Some(meta) = v.get("index").or_else(|| v.get("create")) {
                    assert!(meta.get("_id").is_none(), "an index item with _id: {line}");
                }
            }
        }
    }
    server.assert_clean();
    server.assert_no_serverless_refusals();
}

async fn searchable(index: &OpenSearchIndex, q: &VectorQuery) -> usize {
    index.search(q).await.unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conformance_suite_passes_on_serverless_rules() {
    let server = Arc::new(KnnServer::start_serverless(LAG).await);
    server.record_bodies(false);
    let url = server.url();
    vector_index_suite(|spec| {
        let url = url.clone();
        async move {
            // The suite expects read-your-writes: the client waits for visibility.
            let config = common::serverless_builder(&url, "conf")
                .refresh(RefreshPolicy::WaitFor)
                .build()
                .unwrap();
            Box::new(
                OpenSearchIndex::connect(config, spec)
                    .await
                    .expect("connect"),
            ) as Box<dyn VectorIndex>
        }
    })
    .await;
    // Grouping, paging, keywords and negatives above the index behave as on the embedded one.
    crossmodal_core::conformance::search_suite(|spec| {
        let url = url.clone();
        async move {
            let config = common::serverless_builder(&url, "srch")
                .refresh(RefreshPolicy::WaitFor)
                .build()
                .unwrap();
            Box::new(
                OpenSearchIndex::connect(config, spec)
                    .await
                    .expect("connect"),
            ) as Box<dyn VectorIndex>
        }
    })
    .await;
    assert_within_serverless_rules(&server);
    assert!(server.validates() || !common::under_ci());
}

#[tokio::test]
async fn bulk_items_with_ids_are_refused_and_the_crate_sends_none() {
    let server = KnnServer::start_serverless(LAG).await;
    let index = serverless_index(&server, "ids", RefreshPolicy::None).await;
    let r = common::record(1, EmbeddingSpace::Visual, 0, vec![1.0, 0.0, 0.0, 0.0]);
    // What the old code sent: the record key as `_id`.
    let body = format!(
        "{}\n{}\n",
        json!({"index": {"_id": r.key().doc_id()}}),
        json!({"asset_id": r.asset_id.as_str(), "space": "visual", "vector_visual": [1, 0, 0, 0]})
    );
    let value: Value = index
        .client()
        .bulk(BulkParts::Index(index.index_name()))
        .body(vec![body])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(value["errors"], true);
    let item = &value["items"][0]["index"];
    assert_eq!(item["status"], 400);
    assert_eq!(
        item["error"]["reason"],
        knn_server::serverless::DOCUMENT_ID_NOT_SUPPORTED
    );
    assert_eq!(server.doc_count(index.index_name()), 0);
    assert_eq!(server.serverless_refusals().len(), 1);

    // The crate: no `_id`; the service's id, the key in a field.
    let probe = KnnServer::start_serverless(LAG).await;
    let index = serverless_index(&probe, "ids2", RefreshPolicy::None).await;
    let report = index.upsert_report(vec![r.clone()]).await.unwrap();
    assert_eq!((report.indexed, report.failed.len()), (1, 0));
    let docs = probe.docs_where(index.index_name(), "key", &r.key().doc_id());
    assert_eq!(docs.len(), 1);
    assert_ne!(docs[0].0, r.key().doc_id(), "the service named it");
    assert_within_serverless_rules(&probe);
}

#[tokio::test]
async fn refresh_parameters_are_refused_and_the_crate_waits_itself() {
    let server = KnnServer::start_serverless(LAG).await;
    let index = serverless_index(&server, "refresh", RefreshPolicy::None).await;
    let body = format!("{}\n{}\n", json!({"index": {}}), json!({"asset_id": "a"}));
    // What the old code sent: `refresh=wait_for` on every write (and `true` for some).
    for (refresh, value) in [(Refresh::WaitFor, "wait_for"), (Refresh::True, "true")] {
        let r = index
            .client()
            .bulk(BulkParts::Index(index.index_name()))
            .body(vec![body.clone()])
            .refresh(refresh)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status_code().as_u16(), 400);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["type"], "status_exception");
        assert_eq!(
            v["error"]["reason"],
            format!("{value} refresh policy is not supported.")
        );
    }
    assert_eq!(server.doc_count(index.index_name()), 0);

    // The crate with RefreshPolicy::WaitFor: no parameter, and the call returns once the
    // write is searchable.
    server.clear_requests();
    let fresh = KnnServer::start_serverless(LAG).await;
    let index = serverless_index(&fresh, "refresh2", RefreshPolicy::WaitFor).await;
    let r = common::record(2, EmbeddingSpace::Audio, 0, vec![0.0, 1.0, 0.0, 0.0]);
    let started = Instant::now();
    index.upsert(vec![r.clone()]).await.unwrap();
    assert!(started.elapsed() >= LAG, "it waited for the service");
    assert_eq!(fresh.searchable_count(index.index_name()), 1);
    assert_eq!(
        searchable(&index, &VectorQuery::new(r.space, r.vector.clone(), 5)).await,
        1
    );
    assert_within_serverless_rules(&fresh);
}

#[tokio::test]
async fn the_refresh_api_is_404_and_flush_waits_for_visibility() {
    let server = KnnServer::start_serverless(LAG).await;
    let index = serverless_index(&server, "flush", RefreshPolicy::None).await;
    // What the old `flush` sent.
    let r = index
        .client()
        .indices()
        .refresh(
            crossmodal_opensearch::opensearch::indices::IndicesRefreshParts::Index(&[
                index.index_name()
            ]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status_code().as_u16(), 404);
    assert!(r.text().await.unwrap().is_empty());
    // The crate's `refresh()` says why instead of sending it.
    server.clear_requests();
    let err = index.refresh().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(server.requests().is_empty());

    // `flush` waits until the writes are searchable.
    let fresh = KnnServer::start_serverless(LAG).await;
    let index = serverless_index(&fresh, "flush2", RefreshPolicy::None).await;
    let records: Vec<_> = (0..5)
        .map(|i| common::record(i, EmbeddingSpace::Visual, 0, vec![1.0, i as f32, 0.0, 0.0]))
        .collect();
    index.upsert(records.clone()).await.unwrap();
    let q = VectorQuery::new(EmbeddingSpace::Visual, vec![1.0, 0.0, 0.0, 0.0], 10);
    assert_eq!(searchable(&index, &q).await, 0, "not searchable yet");
    index.flush().await.unwrap();
    assert_eq!(searchable(&index, &q).await, 5);
    assert_eq!(index.stats().await.unwrap().vectors(), 5);
    assert_within_serverless_rules(&fresh);
}

#[tokio::test]
async fn flush_fails_as_a_timeout_when_the_service_is_slower_than_allowed() {
    let server = KnnServer::start_serverless(Duration::from_secs(5)).await;
    let config = common::serverless_builder(&server.url(), "slow")
        .visibility_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let index = OpenSearchIndex::connect(config, spec(4)).await.unwrap();
    index
        .upsert(vec![common::record(
            1,
            EmbeddingSpace::Visual,
            0,
            vec![1.0; 4],
        )])
        .await
        .unwrap();
    let err = index.flush().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.is_temporary());
    assert!(
        err.message()
            .contains("1 written document(s) not found yet"),
        "{err}"
    );
    assert_within_serverless_rules(&server);
}

#[tokio::test]
async fn delete_by_query_is_404_and_the_crate_deletes_by_searched_ids() {
    let server = KnnServer::start_serverless(LAG).await;
    let index = serverless_index(&server, "delete", RefreshPolicy::None).await;
    let target = common::record(7, EmbeddingSpace::Visual, 0, vec![1.0, 0.0, 0.0, 0.0]);
    let records = vec![
        target.clone(),
        common::record(7, EmbeddingSpace::Visual, 1, vec![0.0, 1.0, 0.0, 0.0]),
        common::record(7, EmbeddingSpace::Audio, 0, vec![0.0, 0.0, 1.0, 0.0]),
        common::record(8, EmbeddingSpace::Visual, 0, vec![1.0, 1.0, 0.0, 0.0]),
    ];
    index.upsert(records.clone()).await.unwrap();
    index.flush().await.unwrap();
    // What the old code sent.
    let r = index
        .client()
        .delete_by_query(DeleteByQueryParts::Index(&[index.index_name()]))
        .body(json!({"query": {"term": {"asset_id": target.asset_id.as_str()}}}))
        .refresh(true)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status_code().as_u16(),
        400,
        "refresh=true is refused first"
    );
    let r = index
        .client()
        .delete_by_query(DeleteByQueryParts::Index(&[index.index_name()]))
        .body(json!({"query": {"term": {"asset_id": target.asset_id.as_str()}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status_code().as_u16(), 404);
    assert_eq!(server.doc_count(index.index_name()), 4);

    // The crate: a term search for the asset's ids, then bulk delete items.
    let fresh = KnnServer::start_serverless(LAG).await;
    let index = serverless_index(&fresh, "delete2", RefreshPolicy::None).await;
    index.upsert(records.clone()).await.unwrap();
    index.flush().await.unwrap();
    fresh.clear_requests();
    assert_eq!(index.delete_asset(&target.asset_id).await.unwrap(), 3);
    let sent = fresh.requests();
    assert_eq!(
        sent.len(),
        2,
        "{:?}",
        sent.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    assert!(sent[0].path.ends_with("/_search"));
    assert_eq!(
        sent[0].json()["query"],
        json!({"term": {"asset_id": target.asset_id.as_str()}})
    );
    assert!(sent[1].path.ends_with("/_bulk"));
    assert_eq!(sent[1].body.lines().count(), 3);
    assert!(
        sent[1]
            .body
            .lines()
            .all(|l| l.starts_with(r#"{"delete":{"_id":"#))
    );
    assert_eq!(fresh.doc_count(index.index_name()), 1);
    // Deleted documents stay searchable on the service for a while: this handle hides them.
    let q = VectorQuery::new(EmbeddingSpace::Visual, vec![1.0, 0.0, 0.0, 0.0], 10);
    assert_eq!(fresh.searchable_count(index.index_name()), 4);
    assert_eq!(searchable(&index, &q).await, 1);
    assert_eq!(index.delete_asset(&target.asset_id).await.unwrap(), 0);
    index.flush().await.unwrap();
    assert_eq!(fresh.searchable_count(index.index_name()), 1);
    assert_within_serverless_rules(&fresh);
}

#[tokio::test]
async fn writes_not_yet_visible_are_still_replaced_and_deleted() {
    let server = KnnServer::start_serverless(Duration::from_secs(2)).await;
    let index = serverless_index(&server, "recent", RefreshPolicy::None).await;
    let name = index.index_name().to_string();
    let r = common::record(3, EmbeddingSpace::Visual, 0, vec![1.0, 0.0, 0.0, 0.0]);
    index.upsert(vec![r.clone()]).await.unwrap();
    // An upsert of the same key at once (the first is not searchable yet) replaces it.
    let mut changed = r.clone();
    changed.vector = vec![0.0, 1.0, 0.0, 0.0];
    let report = index.upsert_report(vec![changed.clone()]).await.unwrap();
    assert_eq!((report.indexed, report.replaced), (1, 1), "{report:?}");
    assert_eq!(server.docs_where(&name, "key", &r.key().doc_id()).len(), 1);
    // Two records of one key in one call: the last wins.
    let mut last = changed.clone();
    last.vector = vec![0.0, 0.0, 1.0, 0.0];
    index
        .upsert(vec![changed.clone(), last.clone()])
        .await
        .unwrap();
    let docs = server.docs_where(&name, "key", &r.key().doc_id());
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].1["vector_visual"], json!([0.0, 0.0, 1.0, 0.0]));
    // A delete at once finds what the service does not show yet.
    assert_eq!(server.searchable_count(&name), 0);
    assert_eq!(index.delete_asset(&r.asset_id).await.unwrap(), 1);
    assert_eq!(server.doc_count(&name), 0);
    index.flush().await.unwrap();
    assert_within_serverless_rules(&server);
}

#[tokio::test]
async fn duplicates_left_by_racing_writers_are_hidden_and_repaired() {
    let server = KnnServer::start_serverless(Duration::from_millis(500)).await;
    let config = common::serverless_builder(&server.url(), "race")
        .build()
        .unwrap();
    // Two processes: two handles that do not share what they wrote.
    let a = OpenSearchIndex::connect(config.clone(), spec(4))
        .await
        .unwrap();
    let b = OpenSearchIndex::connect(config, spec(4)).await.unwrap();
    let name = a.index_name().to_string();
    let r = common::record(5, EmbeddingSpace::Visual, 0, vec![1.0, 0.0, 0.0, 0.0]);
    let other = common::record(6, EmbeddingSpace::Visual, 0, vec![0.9, 0.1, 0.0, 0.0]);
    a.upsert(vec![r.clone(), other.clone()]).await.unwrap();
    let mut newer = r.clone();
    newer.meta.tags = vec!["newer".into()];
    tokio::time::sleep(Duration::from_millis(5)).await;
    // B cannot see A's document yet: its lookup finds nothing, so the key has two.
    b.upsert(vec![newer.clone()]).await.unwrap();
    assert_eq!(server.docs_where(&name, "key", &r.key().doc_id()).len(), 2);
    a.flush().await.unwrap();
    b.flush().await.unwrap();
    // A third handle sees both copies: one hit for the key, the newest write, and the older
    // copy is deleted.
    let c = OpenSearchIndex::connect(
        common::serverless_builder(&server.url(), "x")
            .index(&name)
            .build()
            .unwrap(),
        spec(4),
    )
    .await
    .unwrap();
    let hits = c
        .search(&VectorQuery::new(
            EmbeddingSpace::Visual,
            vec![1.0, 0.0, 0.0, 0.0],
            2,
        ))
        .await
        .unwrap();
    assert_eq!(
        hits.len(),
        2,
        "k unique hits although a duplicate took a place: {hits:?}"
    );
    assert_eq!(hits[0].asset_id, r.asset_id);
    assert_eq!(hits[0].meta.tags, vec!["newer".to_string()]);
    assert_eq!(hits[1].asset_id, other.asset_id);
    assert_eq!(server.docs_where(&name, "key", &r.key().doc_id()).len(), 1);
    let filtered = c
        .search(
            &VectorQuery::new(EmbeddingSpace::Visual, vec![1.0, 0.0, 0.0, 0.0], 5)
                .filter(Filter::default().tag("newer")),
        )
        .await
        .unwrap();
    assert_eq!(filtered.len(), 1);
    assert_within_serverless_rules(&server);
}

#[tokio::test]
async fn lucene_is_refused_and_the_crate_only_builds_faiss() {
    let server = KnnServer::start_serverless(LAG).await;
    let probe = serverless_index(&server, "lucene", RefreshPolicy::None).await;
    // What a lucene configuration used to create.
    let r = probe
        .client()
        .indices()
        .create(IndicesCreateParts::Index(&common::unique_index("luc")))
        .body(
            json!({"settings": {"index": {"knn": true}}, "mappings": {"properties": {
            "vector_visual": {"type": "knn_vector", "dimension": 4, "method": {
                "name": "hnsw", "engine": "lucene", "space_type": "cosinesimil"}}}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status_code().as_u16(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "mapper_parsing_exception");
    assert!(v["error"]["reason"].as_str().unwrap().contains("lucene"));
    // The crate refuses the configuration before sending anything.
    let err = common::serverless_builder(&server.url(), "luc2")
        .engine(Engine::Lucene)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.message().contains("faiss"), "{err}");
    let create = server
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT" && r.path.ends_with(probe.index_name()))
        .unwrap()
        .json();
    for space in EmbeddingSpace::ALL {
        let f = &create["mappings"]["properties"][crossmodal_opensearch::vector_field(space)];
        assert_eq!(f["method"]["engine"], "faiss");
    }
}

#[tokio::test]
async fn requests_not_signed_for_aoss_are_forbidden() {
    let server = KnnServer::start_serverless(LAG).await;
    for config in [
        OpenSearchConfig::builder(server.url())
            .index(common::unique_index("unsigned"))
            .build()
            .unwrap(),
        common::builder(&server.url(), "es")
            .sigv4_with_config(
                crossmodal_opensearch::AwsService::OpenSearchService,
                common::static_sdk_config(),
            )
            .build()
            .unwrap(),
    ] {
        let err = OpenSearchIndex::connect(config, spec(4)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    }
    // An aoss signature without the payload hash, and `GET /`, which collections do not
    // answer.
    let client = reqwest::Client::new();
    let auth = "AWS4-HMAC-SHA256 Credential=AKIDTEST/20261201/us-east-1/aoss/aws4_request, \
                SignedHeaders=host;x-amz-date, Signature=0";
    let r = client
        .head(format!("{}/some-index", server.url()))
        .header("authorization", auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let r = client
        .get(format!("{}/", server.url()))
        .header("authorization", auth)
        .header("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    server.assert_clean();
}

#[tokio::test]
async fn the_catalog_writes_without_ids_and_reads_its_own_writes() {
    let server = KnnServer::start_serverless(Duration::from_secs(1)).await;
    let config = common::serverless_builder(&server.url(), "cat")
        .build()
        .unwrap();
    let catalog = OpenSearchCatalog::connect(config.clone()).await.unwrap();
    let name = catalog.index_name().to_string();
    let r = common::asset_record(1, MediaFormat::Mp4, AssetStatus::Pending, 1_700_000_000_000);
    // What the old catalog sent: `PUT _doc/<asset>?refresh=wait_for`, and without the
    // parameter still a custom id.
    let refused = catalog
        .client()
        .index(IndexParts::IndexId(&name, r.asset_id.as_str()))
        .body(json!({"asset_id": r.asset_id.as_str()}))
        .refresh(Refresh::WaitFor)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status_code().as_u16(), 400);
    let refused: Value = catalog
        .client()
        .index(IndexParts::IndexId(&name, r.asset_id.as_str()))
        .body(json!({"asset_id": r.asset_id.as_str()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        refused["error"]["reason"],
        knn_server::serverless::DOCUMENT_ID_NOT_SUPPORTED
    );
    assert_eq!(server.doc_count(&name), 0);

    // The crate's catalog (a fresh server, so no refusal is on record).
    let server = KnnServer::start_serverless(Duration::from_secs(1)).await;
    let config = common::serverless_builder(&server.url(), "cat2")
        .build()
        .unwrap();
    let catalog = OpenSearchCatalog::connect(config.clone()).await.unwrap();
    let name = catalog.index_name().to_string();
    catalog.upsert(&r).await.unwrap();
    // Nothing is searchable yet, but this handle reads and updates its own write at once, as
    // the ingest pipeline does (upsert, upsert, set_status within a second).
    assert_eq!(server.searchable_count(&name), 0);
    assert_eq!(catalog.get(&r.asset_id).await.unwrap(), Some(r.clone()));
    let mut embedding = r.clone();
    embedding.status = AssetStatus::Embedding;
    catalog.upsert(&embedding).await.unwrap();
    catalog
        .set_status(&r.asset_id, &AssetStatus::Indexed)
        .await
        .unwrap();
    let got = catalog.get(&r.asset_id).await.unwrap().unwrap();
    assert_eq!(got.status, AssetStatus::Indexed);
    assert_eq!(server.doc_count(&name), 1, "one document per asset");
    let missing = crossmodal_core::AssetId::from_content(b"nope");
    assert_eq!(
        catalog
            .set_status(&missing, &AssetStatus::Indexed)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    // list and counts see it once the service does; flush waits for that.
    let others: Vec<_> = (2..6)
        .map(|n| {
            common::asset_record(
                n,
                MediaFormat::Png,
                AssetStatus::Pending,
                1_700_000_000_000 + i64::from(n),
            )
        })
        .collect();
    for o in &others {
        catalog.upsert(o).await.unwrap();
    }
    catalog.flush().await.unwrap();
    let counts = catalog.counts().await.unwrap();
    assert_eq!((counts.indexed, counts.pending), (1, 4));
    let page = catalog.list(&AssetQuery::new().limit(3)).await.unwrap();
    assert_eq!(page.assets.len(), 3);
    assert_eq!(page.assets[0].asset_id, others[3].asset_id);
    let rest = catalog
        .list(&AssetQuery::new().limit(3).cursor(page.next_cursor.unwrap()))
        .await
        .unwrap();
    assert_eq!(rest.assets.len(), 2);
    assert_eq!(rest.assets[1].asset_id, r.asset_id);
    assert!(rest.next_cursor.is_none());
    // A status change: this handle lists its newer record in place of the one the service
    // still shows, and never the outdated state; a filter on the new state matches once the
    // service shows the new document.
    catalog
        .set_status(&others[0].asset_id, &AssetStatus::Indexed)
        .await
        .unwrap();
    let all = catalog.list(&AssetQuery::new()).await.unwrap();
    assert_eq!(all.assets.len(), 5);
    let shown = all
        .assets
        .iter()
        .find(|a| a.asset_id == others[0].asset_id)
        .unwrap();
    assert_eq!(shown.status, AssetStatus::Indexed);
    let pending = catalog
        .list(&AssetQuery::new().state(AssetState::Pending))
        .await
        .unwrap();
    assert_eq!(pending.assets.len(), 3, "{:?}", pending.assets);
    catalog.flush().await.unwrap();
    let indexed = catalog
        .list(&AssetQuery::new().state(AssetState::Indexed))
        .await
        .unwrap();
    assert_eq!(indexed.assets.len(), 2, "{:?}", indexed.assets);
    // remove: gone for this handle at once, for everyone after the delay.
    assert!(catalog.remove(&r.asset_id).await.unwrap());
    assert_eq!(catalog.get(&r.asset_id).await.unwrap(), None);
    assert!(!catalog.remove(&r.asset_id).await.unwrap());
    catalog.flush().await.unwrap();
    assert_eq!(catalog.counts().await.unwrap().total(), 4);
    assert_within_serverless_rules(&server);
}

#[tokio::test]
async fn catalog_copies_left_by_racing_writers_resolve_to_the_newest() {
    let server = KnnServer::start_serverless(Duration::from_millis(300)).await;
    let config = common::serverless_builder(&server.url(), "catrace")
        .build()
        .unwrap();
    let a = OpenSearchCatalog::connect(config.clone()).await.unwrap();
    let b = OpenSearchCatalog::connect(config.clone()).await.unwrap();
    let name = a.index_name().to_string();
    let r = common::asset_record(9, MediaFormat::Wav, AssetStatus::Pending, 1_700_000_000_000);
    a.upsert(&r).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut failed = r.clone();
    failed.status = AssetStatus::Failed {
        stage: crossmodal_core::IngestStage::Embed,
        message: "boom".into(),
    };
    b.upsert(&failed).await.unwrap();
    assert_eq!(
        server
            .docs_where(&name, "asset_id", r.asset_id.as_str())
            .len(),
        2
    );
    a.flush().await.unwrap();
    b.flush().await.unwrap();
    let c = OpenSearchCatalog::connect(config).await.unwrap();
    assert_eq!(c.get(&r.asset_id).await.unwrap(), Some(failed.clone()));
    assert_eq!(
        server
            .docs_where(&name, "asset_id", r.asset_id.as_str())
            .len(),
        1,
        "the older copy was deleted"
    );
    c.flush().await.unwrap();
    let page = c.list(&AssetQuery::new()).await.unwrap();
    assert_eq!(page.assets, vec![failed]);
    assert_within_serverless_rules(&server);
}

#[tokio::test]
async fn updates_in_place_name_the_service_ids_and_flush_waits_for_them() {
    let server = KnnServer::start_serverless(LAG).await;
    let index = serverless_index(&server, "update", RefreshPolicy::None).await;
    let mut visual = common::record(1, EmbeddingSpace::Visual, 0, vec![1.0, 0.0, 0.0, 0.0]);
    visual.meta = visual.meta.clone().field("campaign", "summer");
    let mut audio = common::record(1, EmbeddingSpace::Audio, 0, vec![0.0, 1.0, 0.0, 0.0]);
    audio.meta = visual.meta.clone();
    let other = common::record(2, EmbeddingSpace::Visual, 0, vec![0.0, 0.0, 1.0, 0.0]);
    index
        .upsert(vec![visual.clone(), audio.clone(), other])
        .await
        .unwrap();
    // Not searchable yet: the update waits for this handle's own writes of the asset first.
    server.clear_requests();
    let patch = MetaPatch::default()
        .set("campaign", "autumn")
        .add_tag("cut");
    assert_eq!(
        index.update_meta(&visual.asset_id, &patch).await.unwrap(),
        2
    );
    let bulk = server
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/_bulk"))
        .expect("a bulk request");
    let ids: Vec<String> = bulk
        .body
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["update"]["_id"].as_str().map(str::to_string))
        .collect();
    assert_eq!(ids.len(), 2);
    for id in &ids {
        assert!(
            server.doc(index.index_name(), id).is_some(),
            "update items name the service's ids"
        );
        assert_ne!(id, &visual.key().doc_id());
    }
    let autumn = |space| {
        VectorQuery::new(space, vec![1.0, 1.0, 0.0, 0.0], 5)
            .filter(Filter::default().field("campaign", FieldTest::Eq("autumn".into())))
    };
    assert_eq!(
        searchable(&index, &autumn(EmbeddingSpace::Visual)).await,
        0,
        "the update is not searchable yet"
    );
    index.flush().await.unwrap();
    let mut want = visual.meta.clone();
    patch.apply_to(&mut want).unwrap();
    for space in [EmbeddingSpace::Visual, EmbeddingSpace::Audio] {
        let hits = index.search(&autumn(space)).await.unwrap();
        assert_eq!(hits.len(), 1, "{space}");
        assert_eq!(hits[0].meta, want);
    }
    assert_within_serverless_rules(&server);
}
