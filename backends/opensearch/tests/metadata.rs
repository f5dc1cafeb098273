//! Record metadata on OpenSearch against the k-NN test server: names, durations and user fields
//! round-trip, field filters keep `FieldTest::passes`'s semantics, `update_meta` sends checked
//! bulk `update` items, and the test server answers partial updates, keyword ranges and `text`
//! sub-fields as OpenSearch does.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use crossmodal_core::{
    EmbeddingSpace, ErrorKind, FieldTest, FieldValue, Filter, IndexSpec, MetaPatch, VectorIndex,
    VectorQuery, VectorRecord,
};
use crossmodal_opensearch::opensearch::indices::{IndicesCreateParts, IndicesGetMappingParts};
use crossmodal_opensearch::opensearch::{BulkParts, SearchParts};
use crossmodal_opensearch::{OpenSearchIndex, RefreshPolicy};
use crossmodal_testkit::knn_server::KnnServer;
use serde_json::{Value, json};

fn spec() -> IndexSpec {
    IndexSpec::new("test-model", 4)
}

async fn index_on(server: &KnnServer, hint: &str) -> OpenSearchIndex {
    let config = common::builder(&server.url(), hint)
        .refresh(RefreshPolicy::WaitFor)
        .build()
        .unwrap();
    OpenSearchIndex::connect(config, spec()).await.unwrap()
}

/// Asset `n`'s visual record with `budget` (if any) and a name.
fn with_budget(n: u32, budget: Option<f64>) -> VectorRecord {
    let mut r = common::record(n, EmbeddingSpace::Visual, 0, vec![1.0, n as f32, 0.5, 0.0]);
    r.meta = r
        .meta
        .clone()
        .name(format!("clip-{n}.mp4"))
        .duration_ms(1000 * u64::from(n));
    if let Some(b) = budget {
        r.meta = r.meta.clone().field("budget", b);
    }
    r
}

async fn matching(index: &OpenSearchIndex, filter: Filter) -> Vec<u32> {
    let hits = index
        .search(
            &VectorQuery::new(EmbeddingSpace::Visual, vec![1.0, 1.0, 1.0, 1.0], 50).filter(filter),
        )
        .await
        .unwrap();
    let mut out: Vec<u32> = hits
        .iter()
        .map(|h| {
            h.meta
                .name
                .as_deref()
                .and_then(|n| n.strip_prefix("clip-"))
                .and_then(|n| n.strip_suffix(".mp4"))
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn ranges_over_negative_and_fractional_numbers_and_not_keep_the_core_semantics() {
    let server = KnnServer::start().await;
    let index = index_on(&server, "ranges").await;
    let budgets = [
        (1, Some(-2.5)),
        (2, Some(-1.0)),
        (3, Some(-0.0)),
        (4, Some(0.5)),
        (5, Some(3.0)),
        (6, Some(1e-9)),
        (7, None),
        (8, Some(-1e12)),
    ];
    let records: Vec<VectorRecord> = budgets.iter().map(|(n, b)| with_budget(*n, *b)).collect();
    index.upsert(records.clone()).await.unwrap();
    let range = |gte: Option<f64>, lt: Option<f64>| {
        Filter::default().field(
            "budget",
            FieldTest::Range {
                gte: gte.map(FieldValue::Number),
                lt: lt.map(FieldValue::Number),
            },
        )
    };
    let filters = [
        range(Some(-1.0), Some(0.5)),
        range(None, Some(0.0)),
        range(Some(0.0), None),
        range(Some(-3.0), Some(-2.5)),
        Filter::default().field("budget", FieldTest::Eq(FieldValue::Number(0.0))),
        Filter::default().field(
            "budget",
            FieldTest::Not(Box::new(FieldTest::Eq(FieldValue::Number(0.5)))),
        ),
        Filter::default().field("budget", FieldTest::Not(Box::new(FieldTest::Exists))),
        Filter::default().field(
            "budget",
            FieldTest::Not(Box::new(FieldTest::Not(Box::new(FieldTest::Range {
                gte: Some(0.5.into()),
                lt: None,
            })))),
        ),
        Filter::default().field("budget", FieldTest::Eq("0.5".into())),
        Filter::default().duration_between(Some(3000), Some(6000)),
    ];
    for filter in filters {
        let want: Vec<u32> = records
            .iter()
            .zip(&budgets)
            .filter(|(r, _)| filter.matches(&r.asset_id, &r.meta))
            .map(|(_, (n, _))| *n)
            .collect();
        assert_eq!(matching(&index, filter.clone()).await, want, "{filter:?}");
    }
    // Spot checks of what the core semantics say.
    assert_eq!(
        matching(&index, range(Some(-1.0), Some(0.5))).await,
        vec![2, 3, 6]
    );
    assert_eq!(
        matching(
            &index,
            Filter::default().field(
                "budget",
                FieldTest::Not(Box::new(FieldTest::Eq(FieldValue::Number(0.5))))
            )
        )
        .await,
        vec![1, 2, 3, 5, 6, 7, 8],
        "Not(Eq) also matches the record lacking the field"
    );
    // Hits carry the metadata exactly as written.
    let hits = index
        .search(&VectorQuery::new(
            EmbeddingSpace::Visual,
            records[5].vector.clone(),
            1,
        ))
        .await
        .unwrap();
    assert_eq!(hits[0].meta, records[5].meta);
    server.assert_clean();
}

#[tokio::test]
async fn update_meta_sends_checked_bulk_update_items_and_leaves_the_vectors() {
    let server = KnnServer::start().await;
    let index = index_on(&server, "update").await;
    let mut a = common::record(1, EmbeddingSpace::Visual, 0, vec![1.0, 0.0, 0.0, 0.0]);
    a.meta = a
        .meta
        .clone()
        .field("campaign", "summer")
        .field("budget", 10.0);
    let mut a2 = common::record(1, EmbeddingSpace::Audio, 0, vec![0.0, 1.0, 0.0, 0.0]);
    a2.meta = a.meta.clone();
    let b = common::record(2, EmbeddingSpace::Visual, 0, vec![0.0, 0.0, 1.0, 0.0]);
    index
        .upsert(vec![a.clone(), a2.clone(), b.clone()])
        .await
        .unwrap();
    let before = server.doc(index.index_name(), &a.key().doc_id()).unwrap();
    server.clear_requests();
    let patch = MetaPatch::default()
        .remove("budget")
        .set("reviewer", "ana")
        .add_tag("approved")
        .rename("siege.mp4");
    assert_eq!(index.update_meta(&a.asset_id, &patch).await.unwrap(), 2);
    let requests = server.requests();
    let search = requests
        .iter()
        .find(|r| r.path.ends_with("/_search"))
        .unwrap();
    assert_eq!(
        search.json()["query"],
        json!({"term": {"asset_id": a.asset_id.as_str()}})
    );
    let bulk = requests
        .iter()
        .find(|r| r.path.ends_with("/_bulk"))
        .unwrap();
    assert_eq!(bulk.param("refresh"), Some("wait_for"));
    let lines: Vec<Value> = bulk
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "two update items");
    for pair in lines.chunks(2) {
        assert!(pair[0]["update"]["_id"].is_string(), "{}", pair[0]);
        let doc = pair[1]["doc"].as_object().unwrap();
        assert!(
            !doc.keys().any(|k| k.starts_with("vector_")),
            "no vectors re-sent"
        );
        assert_eq!(doc["name"], "siege.mp4");
    }
    let after = server.doc(index.index_name(), &a.key().doc_id()).unwrap();
    assert_eq!(after["vector_visual"], before["vector_visual"]);
    assert_eq!(after["field_keys"], json!(["campaign", "reviewer"]));
    assert!(
        !after["fields"].to_string().contains("budget"),
        "a removed field is gone from _source: {}",
        after["fields"]
    );
    let mut want = a.meta.clone();
    patch.apply_to(&mut want).unwrap();
    let hits = index
        .search(&VectorQuery::new(
            EmbeddingSpace::Audio,
            a2.vector.clone(),
            1,
        ))
        .await
        .unwrap();
    assert_eq!(hits[0].meta, want);
    let other = server.doc(index.index_name(), &b.key().doc_id()).unwrap();
    assert_eq!(other["tags"], json!(b.meta.tags));
    // A patch that cannot apply sends nothing.
    server.clear_requests();
    let e = index
        .update_meta(&a.asset_id, &MetaPatch::default().set("bad name", 1.0))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(server.requests().is_empty(), "refused before any request");
    server.assert_clean();
}

#[tokio::test]
async fn partial_updates_merge_objects_replace_arrays_and_miss_unknown_ids() {
    let server = KnnServer::start().await;
    let index = index_on(&server, "merge").await;
    let client = index.client();
    let name = index.index_name();
    let r = common::record(3, EmbeddingSpace::Visual, 0, vec![1.0, 0.0, 0.0, 0.0]);
    index.upsert(vec![r.clone()]).await.unwrap();
    let id = r.key().doc_id();
    // Merging: objects key by key, arrays whole (why the crate keeps user fields in a list).
    let body = format!(
        "{}\n{}\n{}\n{}\n",
        json!({"update": {"_id": id}}),
        json!({"doc": {"tags": ["x"], "fields": [{"name": "a", "value": 1}]}}),
        json!({"update": {"_id": "no-such-doc"}}),
        json!({"doc": {"tags": ["y"]}}),
    );
    let v: Value = client
        .bulk(BulkParts::Index(name))
        .body(vec![body])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["errors"], true);
    assert_eq!(v["items"][0]["update"]["status"], 200);
    assert_eq!(v["items"][0]["update"]["result"], "updated");
    let missing = &v["items"][1]["update"];
    assert_eq!(missing["status"], 404);
    assert_eq!(missing["error"]["type"], "document_missing_exception");
    assert_eq!(
        missing["error"]["reason"],
        "[no-such-doc]: document missing"
    );
    let doc = server.doc(name, &id).unwrap();
    assert_eq!(doc["tags"], json!(["x"]));
    assert_eq!(doc["asset_id"], r.asset_id.as_str(), "other fields kept");
    // The same update again changes nothing: `noop`.
    let body = format!(
        "{}\n{}\n",
        json!({"update": {"_id": id}}),
        json!({"doc": {"tags": ["x"]}})
    );
    let v: Value = client
        .bulk(BulkParts::Index(name))
        .body(vec![body])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["items"][0]["update"]["result"], "noop");
    // Under the strict mapping an unknown field in `doc` is refused item by item.
    let body = format!(
        "{}\n{}\n",
        json!({"update": {"_id": id}}),
        json!({"doc": {"colour": "red"}})
    );
    let v: Value = client
        .bulk(BulkParts::Index(name))
        .body(vec![body])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["items"][0]["update"]["error"]["type"],
        "strict_dynamic_mapping_exception"
    );
    // An update item without `doc` (or `script`) fails the whole request, as OpenSearch's
    // validation does.
    let body = format!("{}\n{}\n", json!({"update": {"_id": id}}), json!({}));
    let r = client
        .bulk(BulkParts::Index(name))
        .body(vec![body])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status_code().as_u16(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "action_request_validation_exception");
    assert_eq!(
        v["error"]["reason"],
        "Validation Failed: 1: script or doc is missing;"
    );
    server.assert_clean();
}

#[tokio::test]
async fn keyword_ranges_compare_bytes_and_text_sub_fields_are_exact() {
    let server = KnnServer::start().await;
    let index = index_on(&server, "keyword").await;
    let client = index.client();
    let name = index.index_name();
    let mut records = Vec::new();
    for (n, tag) in [(1, "apple"), (2, "banana"), (3, "Zebra"), (4, "cherry")] {
        let mut r = common::record(n, EmbeddingSpace::Visual, 0, vec![1.0, 0.0, 0.0, 0.0]);
        r.meta = r
            .meta
            .clone()
            .tags([tag])
            .name(format!("Castle Siege {n}.mp4"));
        records.push(r);
    }
    index.upsert(records).await.unwrap();
    let search = |query: Value| async move {
        let r = client
            .search(SearchParts::Index(&[name]))
            .body(json!({"query": query, "_source": ["tags"], "size": 10}))
            .send()
            .await
            .unwrap();
        let status = r.status_code().as_u16();
        let v: Value = r.json().await.unwrap();
        let mut tags: Vec<String> = v["hits"]["hits"]
            .as_array()
            .map(|h| {
                h.iter()
                    .map(|h| h["_source"]["tags"][0].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default();
        tags.sort();
        (status, tags)
    };
    // Byte order: upper case before lower case.
    let (status, tags) = search(json!({"range": {"tags": {"gte": "B", "lt": "c"}}})).await;
    assert_eq!(status, 200);
    assert_eq!(tags, vec!["Zebra", "apple", "banana"]);
    let (_, tags) = search(json!({"bool": {"must_not": [{"range": {"tags": {"lt": "b"}}}]}})).await;
    assert_eq!(tags, vec!["banana", "cherry"]);
    let (_, tags) = search(json!({"term": {"name.raw": "Castle Siege 3.mp4"}})).await;
    assert_eq!(tags, vec!["Zebra"]);
    let (_, tags) = search(json!({"exists": {"field": "fields"}})).await;
    assert!(
        tags.is_empty(),
        "an object with enabled: false is not searchable"
    );
    assert!(server.violations().is_empty());
    // A term query on the analysed field is not something this server answers.
    let (status, _) = search(json!({"term": {"name": "castle"}})).await;
    assert_eq!(status, 400);
    let v = server.violations();
    assert_eq!(v.len(), 1);
    assert!(v[0].contains("text field [name]"), "{}", v[0]);
}

#[tokio::test]
async fn an_index_of_the_earlier_layout_gains_the_metadata_fields_and_its_documents_parse() {
    let server = KnnServer::start().await;
    let config = common::builder(&server.url(), "earlier")
        .refresh(RefreshPolicy::WaitFor)
        .build()
        .unwrap();
    let name = config.index().to_string();
    // Make the index as a previous release did: the same mapping without the metadata fields.
    let current = OpenSearchIndex::connect(config.clone(), spec())
        .await
        .unwrap();
    let mapping: Value = current
        .client()
        .indices()
        .get_mapping(IndicesGetMappingParts::Index(&[&name]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    current.delete_index().await.unwrap();
    let mut mappings = mapping[&name]["mappings"].clone();
    for f in ["name", "duration_ms", "fields", "field_keys", "field_terms"] {
        mappings["properties"].as_object_mut().unwrap().remove(f);
    }
    let client = current.client();
    let r = client
        .indices()
        .create(IndicesCreateParts::Index(&name))
        .body(json!({"settings": {"index": {"knn": true}}, "mappings": mappings}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status_code().as_u16(), 200);
    let old = common::record(9, EmbeddingSpace::Visual, 0, vec![0.0, 0.0, 0.0, 1.0]);
    let source = json!({"key": old.key().doc_id(), "written_at": 1, "asset_id": old.asset_id.as_str(),
        "space": "visual", "seq": 0, "kind": "video", "format": "mp4", "tags": ["t0"],
        "created_at": old.meta.created_at_ms, "vector_visual": [0.0, 0.0, 0.0, 1.0]});
    let body = format!(
        "{}\n{}\n",
        json!({"index": {"_id": old.key().doc_id()}}),
        source
    );
    let v: Value = client
        .bulk(BulkParts::Index(&name))
        .body(vec![body])
        .refresh(crossmodal_opensearch::opensearch::params::Refresh::True)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["errors"], false, "{v}");
    // Writing the new fields into that index is what a strict mapping refuses...
    let body = format!(
        "{}\n{}\n",
        json!({"update": {"_id": old.key().doc_id()}}),
        json!({"doc": {"field_keys": ["a"]}})
    );
    let v: Value = client
        .bulk(BulkParts::Index(&name))
        .body(vec![body])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["items"][0]["update"]["error"]["type"],
        "strict_dynamic_mapping_exception"
    );
    // ... so connect adds them (PUT _mapping), and the old document reads back without them.
    server.clear_requests();
    let index = OpenSearchIndex::connect(config, spec()).await.unwrap();
    let put = server
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/_mapping") && r.method == "PUT")
        .expect("PUT _mapping");
    let added: Vec<String> = put.json()["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        added,
        vec!["duration_ms", "field_keys", "field_terms", "fields", "name"]
    );
    let hits = index
        .search(&VectorQuery::new(
            EmbeddingSpace::Visual,
            old.vector.clone(),
            1,
        ))
        .await
        .unwrap();
    assert_eq!(hits[0].meta, old.meta.clone().tags(["t0"]));
    assert_eq!(
        index
            .update_meta(&old.asset_id, &MetaPatch::default().set("campaign", "x"))
            .await
            .unwrap(),
        1
    );
    let f = Filter::default().field("campaign", FieldTest::Eq("x".into()));
    assert_eq!(
        index
            .search(&VectorQuery::new(EmbeddingSpace::Visual, old.vector.clone(), 1).filter(f))
            .await
            .unwrap()
            .len(),
        1
    );
    server.assert_clean();
}
