//! `OpenSearchIndex` against the OpenSearch k-NN test server (started inside each test): the core
//! conformance suite, the request shapes the backend sends, score conversion, retries and
//! transport failures.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;
use crossmodal_testkit::knn_server;

use std::sync::Arc;
use std::time::{Duration, Instant};

#[cfg(feature = "aws-auth")]
use aws_credential_types::Credentials as AwsCredentials;
#[cfg(feature = "aws-auth")]
use aws_credential_types::provider::SharedCredentialsProvider;
use crossmodal_core::conformance::{self, clustered_records, vector_index_suite};
use crossmodal_core::{
    EmbeddingSpace, ErrorKind, Filter, IndexSpec, MediaFormat, MediaKind, RetryPolicy, VectorIndex,
    VectorQuery,
};
#[cfg(feature = "aws-auth")]
use crossmodal_opensearch::AwsService;
#[cfg(feature = "aws-auth")]
use crossmodal_opensearch::aws_config;
use crossmodal_opensearch::opensearch::{BulkParts, SearchParts};
use crossmodal_opensearch::{
    Engine, OpenSearchConfig, OpenSearchIndex, RefreshPolicy, SpaceType, vector_field,
};
use serde_json::{Value, json};

use knn_server::KnnServer;

fn spec(dim: usize) -> IndexSpec {
    IndexSpec::new("test-model", dim)
}

async fn index_on(server: &KnnServer, hint: &str, dim: usize) -> OpenSearchIndex {
    let config = common::builder(&server.url(), hint).build().unwrap();
    OpenSearchIndex::connect(config, spec(dim))
        .await
        .expect("connect")
}

/// The `_search` requests the server received.
fn searches(server: &KnnServer) -> Vec<knn_server::Recorded> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/_search"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_passes_against_the_knn_server() {
    let server = Arc::new(KnnServer::start().await);
    server.record_bodies(false);
    let url = server.url();
    vector_index_suite(|spec| {
        let url = url.clone();
        async move {
            let config = common::builder(&url, "conf").build().unwrap();
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
            let config = common::builder(&url, "srch").build().unwrap();
            Box::new(
                OpenSearchIndex::connect(config, spec)
                    .await
                    .expect("connect"),
            ) as Box<dyn VectorIndex>
        }
    })
    .await;
    server.assert_clean();
    assert!(
        server.validates() || !common::under_ci(),
        "requests were not validated against the specification"
    );
}

#[tokio::test]
async fn index_is_created_as_documented_and_reconnect_is_idempotent() {
    let server = KnnServer::start().await;
    let config = common::builder(&server.url(), "create").build().unwrap();
    let index = OpenSearchIndex::connect(config.clone(), spec(8))
        .await
        .unwrap();
    let create = server
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT")
        .expect("a PUT /<index>");
    let body = create.json();
    assert_eq!(body["settings"]["index"]["knn"], json!(true));
    for space in EmbeddingSpace::ALL {
        let f = &body["mappings"]["properties"][vector_field(space)];
        assert_eq!(f["type"], "knn_vector");
        assert_eq!(f["dimension"], 8);
        assert_eq!(f["method"]["name"], "hnsw");
        assert_eq!(f["method"]["engine"], "faiss");
        assert_eq!(f["method"]["space_type"], "cosinesimil");
    }
    for f in ["asset_id", "kind", "format", "space", "tags"] {
        assert_eq!(body["mappings"]["properties"][f]["type"], "keyword", "{f}");
    }
    assert_eq!(body["mappings"]["properties"]["start_sec"]["type"], "float");
    assert_eq!(body["mappings"]["properties"]["created_at"]["type"], "date");
    assert_eq!(
        body["mappings"]["_meta"]["crossmodal"]["model_id"],
        "test-model"
    );
    assert_eq!(body["mappings"]["_meta"]["crossmodal"]["dimension"], 8);

    index
        .upsert(vec![common::record(
            1,
            EmbeddingSpace::Visual,
            0,
            vec![1.0; 8],
        )])
        .await
        .unwrap();
    // Connecting again finds the index and keeps its documents; no second create.
    let again = OpenSearchIndex::connect(config.clone(), spec(8))
        .await
        .unwrap();
    assert_eq!(again.stats().await.unwrap().vectors(), 1);
    assert_eq!(
        server
            .requests()
            .iter()
            .filter(|r| r.method == "PUT")
            .count(),
        1
    );
    // Another model or dimension, or another space type, is refused.
    for (cfg, s) in [
        (config.clone(), spec(16)),
        (config.clone(), IndexSpec::new("other-model", 8)),
        (
            OpenSearchConfig::builder(server.url())
                .index(config.index())
                .space_type(SpaceType::InnerProduct)
                .build()
                .unwrap(),
            spec(8),
        ),
    ] {
        let err = OpenSearchIndex::connect(cfg, s).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    }
    server.assert_clean();
}

#[tokio::test]
async fn filters_go_inside_the_knn_clause_and_vectors_stay_out_of_results() {
    let server = KnnServer::start().await;
    let index = index_on(&server, "filter", conformance::DIM).await;
    let records = clustered_records(200, 11);
    index.upsert(records.clone()).await.unwrap();
    let ids: Vec<_> = records
        .iter()
        .step_by(17)
        .map(|r| r.asset_id.clone())
        .take(4)
        .collect();
    let filter = Filter::default()
        .kinds([MediaKind::Video, MediaKind::Image])
        .formats([MediaFormat::Mp4, MediaFormat::Png])
        .asset_ids(ids)
        .tag("tag1")
        .tag("tag2")
        .created_between(Some(1_000_000), Some(1_000_000 + 150 * 1000));
    let q = VectorQuery::new(EmbeddingSpace::Visual, records[0].vector.clone(), 5)
        .filter(filter.clone());
    server.clear_requests();
    let hits = index.search(&q).await.unwrap();
    let matching = records
        .iter()
        .filter(|r| r.space == EmbeddingSpace::Visual && filter.matches(&r.asset_id, &r.meta))
        .count();
    assert_eq!(hits.len(), matching.min(5));
    assert!(hits.iter().all(|h| filter.matches(&h.asset_id, &h.meta)));

    let sent = searches(&server);
    assert_eq!(sent.len(), 1);
    let body = sent[0].json();
    let query = body["query"].as_object().unwrap();
    assert_eq!(
        query.keys().collect::<Vec<_>>(),
        vec!["knn"],
        "only a knn clause at the top: {body}"
    );
    let knn = &body["query"]["knn"]["vector_visual"];
    assert_eq!(knn["k"], 5);
    assert_eq!(
        body["size"], 5,
        "size = k, else OpenSearch returns 10 at most"
    );
    assert_eq!(knn["vector"].as_array().unwrap().len(), conformance::DIM);
    let clauses = knn["filter"]["bool"]["filter"]
        .as_array()
        .expect("bool.filter inside knn");
    let kinds: Vec<String> = clauses
        .iter()
        .map(|c| c.as_object().unwrap().keys().next().unwrap().clone())
        .collect();
    assert_eq!(kinds, ["terms", "terms", "terms", "terms", "range"]);
    assert_eq!(clauses[0], json!({"terms": {"kind": ["video", "image"]}}));
    assert_eq!(clauses[1], json!({"terms": {"format": ["mp4", "png"]}}));
    assert_eq!(clauses[3], json!({"terms": {"tags": ["tag1", "tag2"]}}));
    assert_eq!(
        clauses[4],
        json!({"range": {"created_at": {"gte": 1_000_000, "lt": 1_150_000}}})
    );
    assert_eq!(body["_source"], json!({"excludes": ["vector_*"]}));
    server.assert_clean();
}

#[tokio::test]
async fn a_post_filter_would_return_fewer_than_k_hits() {
    // Why the filter goes inside the knn clause: OpenSearch's `bool.must[knn, term]` takes the k
    // nearest first and filters them afterwards. The test server models that, and the backend's
    // query shape gets all k.
    let server = KnnServer::start().await;
    let index = index_on(&server, "postfilter", conformance::DIM).await;
    let records = clustered_records(400, 12);
    index.upsert(records.clone()).await.unwrap();
    let q = records
        .iter()
        .find(|r| r.meta.kind == MediaKind::Video)
        .unwrap()
        .vector
        .clone();
    let body = json!({
        "size": 10,
        "_source": false,
        "query": {"bool": {"must": [
            {"knn": {"vector_visual": {"vector": q, "k": 10}}},
            {"term": {"kind": "image"}},
        ]}},
    });
    let response = index
        .client()
        .search(SearchParts::Index(&[index.index_name()]))
        .body(body)
        .send()
        .await
        .unwrap();
    let value: Value = response.json().await.unwrap();
    let post_filtered = value["hits"]["hits"].as_array().unwrap().len();
    let pushed_down = index
        .search(
            &VectorQuery::new(EmbeddingSpace::Visual, q, 10)
                .filter(Filter::default().kinds([MediaKind::Image])),
        )
        .await
        .unwrap();
    assert_eq!(pushed_down.len(), 10);
    assert!(post_filtered < 10, "post-filter kept {post_filtered} of 10");
    server.assert_clean();
}

#[tokio::test]
async fn scores_are_cosine_similarity_not_the_opensearch_score() {
    let server = KnnServer::start().await;
    for space_type in [SpaceType::CosineSimil, SpaceType::InnerProduct] {
        let config = common::builder(&server.url(), "score")
            .space_type(space_type)
            .build()
            .unwrap();
        let index = OpenSearchIndex::connect(config, spec(4)).await.unwrap();
        let s = EmbeddingSpace::Visual;
        let vectors = [
            vec![2.0, 0.0, 0.0, 0.0],  // cos 1
            vec![1.0, 1.0, 0.0, 0.0],  // cos 0.7071
            vec![0.0, 3.0, 0.0, 0.0],  // cos 0
            vec![-1.0, 1.0, 0.0, 0.0], // cos -0.7071
            vec![-5.0, 0.0, 0.0, 0.0], // cos -1
        ];
        let records: Vec<_> = vectors
            .iter()
            .enumerate()
            .map(|(i, v)| common::record(i as u32, s, 0, v.clone()))
            .collect();
        index.upsert(records).await.unwrap();
        let hits = index
            .search(&VectorQuery::new(s, vec![0.5, 0.0, 0.0, 0.0], 5))
            .await
            .unwrap();
        let scores: Vec<f32> = hits.iter().map(|h| h.score).collect();
        let want = [
            1.0,
            std::f32::consts::FRAC_1_SQRT_2,
            0.0,
            -std::f32::consts::FRAC_1_SQRT_2,
            -1.0,
        ];
        for (g, w) in scores.iter().zip(want) {
            assert!(
                (g - w).abs() < 1e-5,
                "{space_type}: scores {scores:?}, want {want:?}"
            );
        }
        // What the server itself reported: OpenSearch's documented scores.
        let raw = index
            .client()
            .search(SearchParts::Index(&[index.index_name()]))
            .body(json!({"size": 5, "_source": false,
                "query": {"knn": {"vector_visual": {"vector": [1.0, 0.0, 0.0, 0.0], "k": 5}}}}))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
        let raw: Vec<f64> = raw["hits"]["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["_score"].as_f64().unwrap())
            .collect();
        let want_raw: Vec<f64> = want
            .iter()
            .map(|c| space_type.score_from_cosine(f64::from(*c)))
            .collect();
        for (g, w) in raw.iter().zip(&want_raw) {
            assert!(
                (g - w).abs() < 1e-5,
                "{space_type}: raw scores {raw:?}, want {want_raw:?}"
            );
        }
    }
    server.assert_clean();
}

#[tokio::test]
async fn bulk_items_rejected_for_load_are_retried_and_the_rest_reported() {
    let server = KnnServer::start().await;
    let index = index_on(&server, "items", 4).await;
    let records: Vec<_> = (0..10)
        .map(|i| common::record(i, EmbeddingSpace::Audio, 0, vec![1.0, i as f32, 0.5, 0.0]))
        .collect();
    server.inject_item_429(3);
    let report = index.upsert_report(records.clone()).await.unwrap();
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(report.indexed, 10);
    assert_eq!(report.retried_items, 3);
    assert_eq!(server.doc_count(index.index_name()), 10);
    // The resend held only the rejected documents.
    let bulks: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/_bulk"))
        .collect();
    assert_eq!(bulks.len(), 2);
    assert_eq!(bulks[1].body.lines().count(), 6);

    // Rejections that outlast the attempts (4) are reported per document; the others are written.
    let more: Vec<_> = (10..20)
        .map(|i| common::record(i, EmbeddingSpace::Audio, 0, vec![1.0, i as f32, 0.5, 0.0]))
        .collect();
    let unlucky = more[3].key().doc_id();
    server.inject_item_429_for(&unlucky, 4);
    let report = index.upsert_report(more.clone()).await.unwrap();
    assert_eq!(report.indexed, 9, "{report:?}");
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].status, 429);
    assert_eq!(report.failed[0].doc_id, unlucky);
    assert_eq!(report.failed[0].key, more[3].key());
    assert_eq!(
        report.failed[0].error_type,
        "es_rejected_execution_exception"
    );
    server.inject_item_429_for(&unlucky, 4);
    let err = index.upsert(more).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited, "{err}");
    // The retries are spent: persistent, so no layer above retries it again.
    assert!(err.is_persistent() && !err.is_temporary(), "{err}");
    assert!(err.message().contains("refused 1 of 10"), "{err}");
    server.assert_clean();
}

#[tokio::test]
async fn the_test_server_rejects_bad_documents_item_by_item() {
    // The per-item error format the backend parses, as OpenSearch documents it: one bad
    // document (wrong dimension, zero vector for cosine, unmapped field) does not fail the
    // others.
    let server = KnnServer::start().await;
    let index = index_on(&server, "baddocs", 3).await;
    let body = [
        r#"{"index":{"_id":"good"}}"#,
        r#"{"asset_id":"a","vector_visual":[1,2,3]}"#,
        r#"{"index":{"_id":"short"}}"#,
        r#"{"asset_id":"b","vector_visual":[1,2]}"#,
        r#"{"index":{"_id":"zero"}}"#,
        r#"{"asset_id":"c","vector_visual":[0,0,0]}"#,
        r#"{"index":{"_id":"unmapped"}}"#,
        r#"{"asset_id":"d","colour":"red"}"#,
    ]
    .join("\n")
        + "\n";
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
    let items = value["items"].as_array().unwrap();
    assert_eq!(items[0]["index"]["status"], 201);
    assert_eq!(
        items[1]["index"]["error"]["type"],
        "mapper_parsing_exception"
    );
    assert!(
        items[1]["index"]["error"]["caused_by"]["reason"]
            .as_str()
            .unwrap()
            .contains("Vector dimension mismatch. Expected: 3, Given: 2")
    );
    assert_eq!(items[2]["index"]["status"], 400);
    assert_eq!(
        items[3]["index"]["error"]["type"],
        "strict_dynamic_mapping_exception"
    );
    assert_eq!(server.doc_count(index.index_name()), 1);
    server.assert_clean();
}

#[tokio::test]
async fn throttled_and_unavailable_requests_are_retried() {
    let server = KnnServer::start().await;
    let index = index_on(&server, "retry", 4).await;
    let r = common::record(1, EmbeddingSpace::Visual, 0, vec![1.0, 0.0, 0.0, 0.0]);
    server.inject_status(503, 1, Some("/_bulk"));
    server.inject_status(429, 1, Some("/_bulk"));
    index.upsert(vec![r.clone()]).await.unwrap();
    server.inject_status(429, 2, Some("/_search"));
    let hits = index
        .search(&VectorQuery::new(r.space, r.vector.clone(), 1))
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    let paths: Vec<String> = server.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths.iter().filter(|p| p.ends_with("/_bulk")).count(), 3);
    assert_eq!(paths.iter().filter(|p| p.ends_with("/_search")).count(), 3);

    // When the attempts run out the error is of the matching (temporary) kind, and persistent:
    // its retries are spent, so a layer above does not multiply them.
    server.inject_status(429, 10, Some("/_search"));
    let err = index
        .search(&VectorQuery::new(r.space, r.vector.clone(), 1))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited, "{err}");
    assert!(err.kind().is_temporary() && err.is_persistent(), "{err:?}");
    assert_eq!(err.context_value("attempts"), Some("4"));
    server.inject_status(503, 10, Some("/_delete_by_query"));
    let err = index.delete_asset(&r.asset_id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    server.assert_clean();
}

#[tokio::test]
async fn refused_connections_fail_fast_as_unavailable() {
    // A port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let config = OpenSearchConfig::builder(format!("http://127.0.0.1:{port}"))
        .retry(
            RetryPolicy::default()
                .max_attempts(3)
                .initial_backoff(Duration::from_millis(10))
                .jitter(false),
        )
        .build()
        .unwrap();
    let started = Instant::now();
    let err = OpenSearchIndex::connect(config, spec(4)).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.kind().is_temporary() && err.is_persistent(), "{err:?}");
    assert_eq!(err.context_value("attempts"), Some("3"));
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(
        err.to_string().to_lowercase().contains("refused"),
        "the root cause is kept: {err}"
    );
}

#[tokio::test]
async fn slow_answers_time_out_as_temporary_errors() {
    let server = KnnServer::start().await;
    let config = common::builder(&server.url(), "slow")
        .request_timeout(Duration::from_millis(300))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let index = OpenSearchIndex::connect(config, spec(4)).await.unwrap();
    server.inject_delay(Duration::from_secs(3));
    let started = Instant::now();
    let err = index
        .search(&VectorQuery::new(EmbeddingSpace::Visual, vec![1.0; 4], 3))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.is_temporary());
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn delete_by_asset_uses_delete_by_query_on_the_asset_id() {
    let server = KnnServer::start().await;
    let index = index_on(&server, "delete", 4).await;
    let target = common::record(7, EmbeddingSpace::Visual, 0, vec![1.0, 0.0, 0.0, 0.0]);
    let mut records = vec![
        target.clone(),
        common::record(7, EmbeddingSpace::Visual, 1, vec![0.0, 1.0, 0.0, 0.0]),
        common::record(7, EmbeddingSpace::Audio, 0, vec![0.0, 0.0, 1.0, 0.0]),
    ];
    records.push(common::record(
        8,
        EmbeddingSpace::Visual,
        0,
        vec![1.0, 1.0, 0.0, 0.0],
    ));
    index.upsert(records).await.unwrap();
    server.clear_requests();
    assert_eq!(index.delete_asset(&target.asset_id).await.unwrap(), 3);
    let sent = server.requests();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].path.ends_with("/_delete_by_query"));
    assert_eq!(sent[0].param("refresh"), Some("true"));
    assert_eq!(sent[0].param("conflicts"), Some("proceed"));
    assert_eq!(
        sent[0].json(),
        json!({"query": {"term": {"asset_id": target.asset_id.as_str()}}})
    );
    let stats = index.stats().await.unwrap();
    assert_eq!((stats.vectors(), stats.assets), (1, 1));
    server.assert_clean();
}

#[tokio::test]
async fn without_refresh_writes_become_visible_on_flush() {
    let server = KnnServer::start().await;
    let config = common::builder(&server.url(), "norefresh")
        .refresh(RefreshPolicy::None)
        .build()
        .unwrap();
    let index = OpenSearchIndex::connect(config, spec(4)).await.unwrap();
    let r = common::record(1, EmbeddingSpace::Visual, 0, vec![1.0, 0.0, 0.0, 0.0]);
    index.upsert(vec![r.clone()]).await.unwrap();
    let bulk = server
        .requests()
        .into_iter()
        .find(|q| q.path.ends_with("/_bulk"))
        .unwrap();
    assert_eq!(bulk.param("refresh"), None);
    // Not searchable yet (near-real-time), searchable after flush.
    let q = VectorQuery::new(r.space, r.vector.clone(), 1);
    assert!(index.search(&q).await.unwrap().is_empty());
    index.flush().await.unwrap();
    assert_eq!(index.search(&q).await.unwrap().len(), 1);
    // delete_asset refreshes first so nothing written before it survives.
    let r2 = common::record(1, EmbeddingSpace::Audio, 0, vec![0.0, 1.0, 0.0, 0.0]);
    index.upsert(vec![r2]).await.unwrap();
    assert_eq!(index.delete_asset(&r.asset_id).await.unwrap(), 2);
    server.assert_clean();
}

#[cfg(feature = "aws-auth")]
#[tokio::test]
async fn basic_auth_and_sigv4_sign_requests() {
    let server = KnnServer::start().await;
    let config = common::builder(&server.url(), "auth")
        .basic_auth("admin", "s3cret")
        .build()
        .unwrap();
    OpenSearchIndex::connect(config, spec(4)).await.unwrap();
    let auth = server.requests()[0]
        .headers
        .get("authorization")
        .cloned()
        .unwrap();
    // base64("admin:s3cret")
    assert_eq!(auth, "Basic YWRtaW46czNjcmV0");

    for (service, name) in [
        (AwsService::Serverless, "aoss"),
        (AwsService::OpenSearchService, "es"),
    ] {
        server.clear_requests();
        let sdk_config = aws_config::SdkConfig::builder()
            .region(aws_config::Region::new("eu-west-1"))
            .credentials_provider(SharedCredentialsProvider::new(AwsCredentials::new(
                "AKIDEXAMPLE",
                "secret",
                None,
                None,
                "test",
            )))
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let config = common::builder(&server.url(), "sigv4")
            .sigv4_with_config(service, sdk_config)
            .build()
            .unwrap();
        OpenSearchIndex::connect(config, spec(4)).await.unwrap();
        for r in server.requests() {
            let auth = r
                .headers
                .get("authorization")
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            assert!(
                auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
                "{auth}"
            );
            assert!(
                auth.contains(&format!("/eu-west-1/{name}/aws4_request")),
                "{auth}"
            );
            assert!(r.headers.contains_key("x-amz-date"));
            assert!(
                r.headers.contains_key("x-amz-content-sha256"),
                "Serverless needs the payload hash"
            );
        }
    }
    server.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_and_latency_on_the_test_server() {
    // Test-server figures (exact search in a debug-built in-process server), printed for the
    // record; they say nothing about a real cluster.
    let server = KnnServer::start().await;
    server.record_bodies(false);
    let dim = 512;
    let index = index_on(&server, "perf", dim).await;
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(5);
    let records: Vec<_> = (0..4000u32)
        .map(|i| {
            common::record(
                i,
                EmbeddingSpace::Visual,
                0,
                conformance::random_vector(&mut rng, dim),
            )
        })
        .collect();
    let started = Instant::now();
    index.upsert(records.clone()).await.unwrap();
    let secs = started.elapsed().as_secs_f64();
    let mut latencies = Vec::new();
    for r in records.iter().step_by(80) {
        let t = Instant::now();
        let hits = index
            .search(
                &VectorQuery::new(EmbeddingSpace::Visual, r.vector.clone(), 10)
                    .filter(Filter::default().kinds([MediaKind::Video])),
            )
            .await
            .unwrap();
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(hits[0].asset_id, r.asset_id);
    }
    latencies.sort_by(f64::total_cmp);
    eprintln!(
        "TEST-SERVER FIGURES (k-NN test server, {dim}-d, {} docs): bulk {:.0} docs/s; k-NN k=10 \
         filtered p50 {:.1} ms, p95 {:.1} ms",
        records.len(),
        records.len() as f64 / secs,
        latencies[latencies.len() / 2],
        latencies[latencies.len() * 95 / 100]
    );
    server.assert_clean();
}

#[tokio::test]
async fn the_test_server_fails_loudly_on_what_it_does_not_understand() {
    let server = KnnServer::start().await;
    let index = index_on(&server, "loud", 3).await;
    let client = index.client();
    let name = index.index_name();
    // A query type the server does not implement.
    let r = client
        .search(SearchParts::Index(&[name]))
        .body(json!({"query": {"match": {"kind": "video"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status_code().as_u16(), 400);
    // A parameter the knn query does not take in this server.
    let r = client
        .search(SearchParts::Index(&[name]))
        .body(json!({"query": {"knn": {"vector_visual": {"vector": [1, 0, 0], "k": 2, "min_score": 0.5}}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status_code().as_u16(), 400);
    // An unknown endpoint.
    let r = client
        .send::<(), ()>(
            crossmodal_opensearch::opensearch::http::Method::Get,
            &format!("/{name}/_stats"),
            Default::default(),
            None,
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(r.status_code().as_u16(), 400);
    let mut expected = 3;
    if server.validates() {
        // Bodies and parameters the OpenSearch specification does not allow.
        let r = client
            .search(SearchParts::Index(&[name]))
            .body(json!({"query": {"knn": {"vector_visual": {"vector": [1, 0, 0], "k": "two"}}}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status_code().as_u16(), 400);
        let r = client
            .bulk(BulkParts::Index(name))
            .body(vec![
                r#"{"index":{"_id":"x","colour":"red"}}"#.to_string(),
                "{}".to_string(),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status_code().as_u16(), 400);
        let r = client
            .send::<(), [(&str, &str); 1]>(
                crossmodal_opensearch::opensearch::http::Method::Post,
                &format!("/{name}/_refresh"),
                Default::default(),
                Some(&[("colour", "red")]),
                None,
                None,
            )
            .await
            .unwrap();
        assert_eq!(r.status_code().as_u16(), 400);
        expected += 3;
    }
    let v = server.violations();
    assert_eq!(v.len(), expected, "{v:#?}");
    if server.validates() {
        assert!(v[3].contains("expected integer"), "{}", v[3]);
        assert!(v[5].contains("colour"), "{}", v[5]);
    }
}

#[tokio::test]
async fn a_missing_space_field_is_added_not_refused() {
    let server = KnnServer::start().await;
    let template = index_on(&server, "tmpl", 4).await;
    let create = server
        .requests()
        .into_iter()
        .find(|r| r.method == "PUT")
        .unwrap();
    let mut body = create.json();
    body["mappings"]["properties"]
        .as_object_mut()
        .unwrap()
        .remove("vector_visual_text");
    let config = common::builder(&server.url(), "older").build().unwrap();
    let r = template
        .client()
        .indices()
        .create(
            crossmodal_opensearch::opensearch::indices::IndicesCreateParts::Index(config.index()),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(r.status_code().is_success());
    server.clear_requests();
    let index = OpenSearchIndex::connect(config, spec(4)).await.unwrap();
    let put = server
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/_mapping") && r.method == "PUT")
        .expect("PUT _mapping");
    let added = put.json();
    assert_eq!(added["properties"].as_object().unwrap().len(), 1);
    assert_eq!(added["properties"]["vector_visual_text"]["dimension"], 4);
    let r = common::record(3, EmbeddingSpace::VisualText, 0, vec![0.0, 1.0, 0.0, 0.0]);
    index.upsert(vec![r.clone()]).await.unwrap();
    let hits = index
        .search(&VectorQuery::new(r.space, r.vector.clone(), 1))
        .await
        .unwrap();
    assert_eq!(hits[0].asset_id, r.asset_id);
    server.assert_clean();
}

#[tokio::test]
async fn faiss_takes_ef_search_from_the_mapping_not_the_index_setting() {
    let server = KnnServer::start().await;
    let probe = index_on(&server, "efprobe", 4).await;
    let client = probe.client();
    // What the old code created: ef_search as the index setting, which faiss ignores.
    let old = common::unique_index("efold");
    let r = client
        .indices()
        .create(crossmodal_opensearch::opensearch::indices::IndicesCreateParts::Index(&old))
        .body(json!({
            "settings": {"index": {"knn": true, "knn.algo_param.ef_search": 128}},
            "mappings": {"properties": {"vector_visual": {"type": "knn_vector", "dimension": 4,
                "method": {"name": "hnsw", "engine": "faiss", "space_type": "cosinesimil",
                    "parameters": {"m": 16, "ef_construction": 128}}}}},
        }))
        .send()
        .await
        .unwrap();
    assert!(r.status_code().is_success());
    let q =
        json!({"size": 3, "query": {"knn": {"vector_visual": {"vector": [1, 0, 0, 0], "k": 3}}}});
    client
        .search(SearchParts::Index(&[&old]))
        .body(q)
        .send()
        .await
        .unwrap();
    let searched = server.knn_searches();
    let last = searched.last().unwrap();
    assert_eq!(
        (last.ef_search, last.ef_from),
        (100, "default"),
        "faiss ignored the index setting: {last:?}"
    );

    // The crate's mapping: ef_search in method.parameters, no index setting.
    let config = common::builder(&server.url(), "efnew")
        .ef_search(128)
        .ef_search_per_query(false)
        .build()
        .unwrap();
    let index = OpenSearchIndex::connect(config, spec(4)).await.unwrap();
    let create = server
        .requests()
        .into_iter()
        .rfind(|r| r.method == "PUT" && r.path.ends_with(index.index_name()))
        .unwrap()
        .json();
    assert!(
        create["settings"]["index"]
            .get("knn.algo_param.ef_search")
            .is_none()
    );
    assert_eq!(
        create["mappings"]["properties"]["vector_visual"]["method"]["parameters"]["ef_search"],
        128
    );
    let r = common::record(1, EmbeddingSpace::Visual, 0, vec![1.0, 0.0, 0.0, 0.0]);
    index.upsert(vec![r.clone()]).await.unwrap();
    index
        .search(&VectorQuery::new(r.space, r.vector.clone(), 3))
        .await
        .unwrap();
    let last = server.knn_searches().last().cloned().unwrap();
    assert_eq!((last.ef_search, last.ef_from), (128, "mapping"), "{last:?}");

    // Per query (2.16+): method_parameters.ef_search, at least k.
    let config = common::builder(&server.url(), "efquery")
        .ef_search(64)
        .build()
        .unwrap();
    let index = OpenSearchIndex::connect(config, spec(4)).await.unwrap();
    index.upsert(vec![r.clone()]).await.unwrap();
    index
        .search(&VectorQuery::new(r.space, r.vector.clone(), 80))
        .await
        .unwrap();
    let last = server.knn_searches().last().cloned().unwrap();
    assert_eq!((last.ef_search, last.ef_from), (80, "query"), "{last:?}");

    // lucene takes no ef_search in its mapping (the server refuses one, as OpenSearch does).
    let lucene = common::builder(&server.url(), "eflucene")
        .engine(Engine::Lucene)
        .build()
        .unwrap();
    OpenSearchIndex::connect(lucene, spec(4)).await.unwrap();
    server.assert_clean();
}

#[tokio::test]
async fn a_delete_by_query_that_times_out_is_an_error_not_a_partial_success() {
    let server = KnnServer::start().await;
    let index = index_on(&server, "dbqtimeout", 4).await;
    let records: Vec<_> = (0..6)
        .map(|seq| {
            common::record(
                9,
                EmbeddingSpace::Audio,
                seq,
                vec![1.0, seq as f32, 0.0, 0.5],
            )
        })
        .collect();
    let asset = records[0].asset_id.clone();
    index.upsert(records.clone()).await.unwrap();

    // What the old code saw: HTTP 200, `deleted: 3`, `timed_out: true`; it reported 3 deleted.
    server.inject_delete_by_query_timeout(1);
    let raw: Value = index
        .client()
        .delete_by_query(
            crossmodal_opensearch::opensearch::DeleteByQueryParts::Index(&[index.index_name()]),
        )
        .body(json!({"query": {"term": {"asset_id": asset.as_str()}}}))
        .refresh(true)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (raw["timed_out"].as_bool(), raw["deleted"].as_u64()),
        (Some(true), Some(3))
    );

    // Now: a Timeout error (temporary), nothing claimed deleted; repeating finishes it.
    index.upsert(records.clone()).await.unwrap();
    server.inject_delete_by_query_timeout(1);
    let err = index.delete_asset(&asset).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.is_temporary());
    assert!(
        err.message().contains("timed out after deleting 3 of 6"),
        "{err}"
    );
    assert_eq!(index.delete_asset(&asset).await.unwrap(), 3);
    assert_eq!(index.stats().await.unwrap().vectors(), 0);
    server.assert_clean();
}

#[tokio::test]
async fn connect_checks_the_version_the_cluster_reports() {
    let server = KnnServer::start().await;
    server.set_version("2.11.1");
    // What the old code did on 2.11: create faiss + cosinesimil, which OpenSearch refuses
    // with a mapping error that does not say what to do.
    let config = common::builder(&server.url(), "v211").build().unwrap();
    let err = OpenSearchIndex::connect(config, spec(4)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    assert!(
        err.message().contains("2.19") && err.message().contains("Lucene"),
        "{err}"
    );
    assert!(
        !server.requests().iter().any(|r| r.method == "PUT"),
        "refused before creating anything"
    );
    // lucene works on 2.11; the per-query ef_search (2.16+) is left out of queries.
    let config = common::builder(&server.url(), "v211l")
        .engine(Engine::Lucene)
        .build()
        .unwrap();
    let index = OpenSearchIndex::connect(config, spec(4)).await.unwrap();
    assert_eq!(index.opensearch_version().unwrap().to_string(), "2.11");
    let r = common::record(1, EmbeddingSpace::Visual, 0, vec![1.0, 0.0, 0.0, 0.0]);
    index.upsert(vec![r.clone()]).await.unwrap();
    server.clear_requests();
    let hits = index
        .search(&VectorQuery::new(r.space, r.vector.clone(), 1))
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    let body = searches(&server)[0].json();
    assert!(
        body["query"]["knn"]["vector_visual"]
            .get("method_parameters")
            .is_none(),
        "{body}"
    );
    // Asking for it explicitly on 2.11 is refused with the floor named.
    let config = common::builder(&server.url(), "v211e")
        .engine(Engine::Lucene)
        .ef_search_per_query(true)
        .build()
        .unwrap();
    let err = OpenSearchIndex::connect(config, spec(4)).await.unwrap_err();
    assert!(err.message().contains("2.16"), "{err}");
    // 2.15: faiss innerproduct is the fallback.
    server.set_version("2.15.0");
    let config = common::builder(&server.url(), "v215")
        .space_type(SpaceType::InnerProduct)
        .build()
        .unwrap();
    OpenSearchIndex::connect(config, spec(4)).await.unwrap();
    server.assert_clean();
}

#[tokio::test]
async fn field_sorts_fit_the_specification_and_bad_ones_do_not() {
    // The description's `SortCombinations` is a oneOf whose `SortOptions` branch leaves
    // `additionalProperties` unsaid; a field sort must still count as exactly one branch (the
    // catalog's `list` sorts by fields), while a bad order is refused.
    let server = KnnServer::start().await;
    if !server.validates() {
        assert!(!common::under_ci());
        return;
    }
    let index = index_on(&server, "sorts", 4).await;
    for sort in [
        json!([{"created_at": {"order": "desc"}}, {"asset_id": "asc"}]),
        json!(["_score", {"seq": "desc"}]),
    ] {
        let r = index
            .client()
            .search(SearchParts::Index(&[index.index_name()]))
            .body(json!({"size": 1, "sort": sort}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status_code().as_u16(), 200, "{sort}");
    }
    server.assert_clean();
    let r = index
        .client()
        .search(SearchParts::Index(&[index.index_name()]))
        .body(json!({"size": 1, "sort": [{"seq": "sideways"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status_code().as_u16(), 400);
    assert_eq!(server.violations().len(), 1);
}
