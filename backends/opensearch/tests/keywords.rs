//! Keyword search (BM25) on OpenSearch against the k-NN test server, as a cluster and as a
//! Serverless collection: `KeywordIndex::keyword_search` and a `CrossModalSearcher` with the
//! index as its keyword index find `castle_siege_v3.mp4` by "castle siege", filters apply, a
//! renamed asset is found by its new name; the test server's `standard` analyzer and BM25 are
//! checked on a hand-computed case, and what it answers as OpenSearch does (a `match` on `name`
//! keeps `castle_siege_v3` whole; `should` next to a filter without `minimum_should_match`
//! matches everything the filter passes).
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use crossmodal_core::{
    AssetId, CrossModalSearcher, EmbeddingSpace, ErrorKind, FieldTest, Filter, IndexSpec,
    KeywordIndex, KeywordQuery, MediaFormat, MediaKind, MetaPatch, Query, RecordMeta, Segment,
    VectorIndex, VectorRecord,
};
use crossmodal_opensearch::opensearch::SearchParts;
use crossmodal_opensearch::opensearch::indices::IndicesCreateParts;
use crossmodal_opensearch::opensearch::params::Refresh;
use crossmodal_opensearch::{OpenSearchIndex, RefreshPolicy};
use crossmodal_testkit::demo_embedder::CaptionHashEmbedder;
use crossmodal_testkit::knn_server::KnnServer;
use serde_json::{Value, json};

fn spec() -> IndexSpec {
    IndexSpec::for_model(&CaptionHashEmbedder::model_info())
}

fn asset(n: u32) -> AssetId {
    AssetId::from_content(format!("kw-asset-{n}").as_bytes())
}

/// The records of asset `n` (`docs` of them: visual segments, so one asset has several
/// documents) named `name`, with `tags` and a text field `brief`.
fn records(n: u32, name: &str, tags: &[&str], brief: Option<&str>, docs: u32) -> Vec<VectorRecord> {
    let mut meta = RecordMeta::new(MediaKind::Video, MediaFormat::Mp4)
        .name(name)
        .tags(tags.iter().copied())
        .created_at_ms(1_700_000_000_000 + i64::from(n))
        .duration_ms(30_000)
        .field("budget", f64::from(n));
    if let Some(b) = brief {
        meta = meta.field("brief", b);
    }
    (0..docs)
        .map(|seq| VectorRecord {
            asset_id: asset(n),
            space: EmbeddingSpace::Visual,
            seq,
            segment: Some(Segment::new(f64::from(seq) * 6.0, f64::from(seq) * 6.0 + 6.0).unwrap()),
            vector: CaptionHashEmbedder::hash_words(&format!("{name} scene {seq}")),
            meta: meta.clone(),
        })
        .collect()
}

/// A library: the castle siege clip (3 documents), a picnic tagged `castle`, a beach clip whose
/// brief mentions a castle, a dog clip, and filler clips.
fn library() -> Vec<VectorRecord> {
    let mut out = records(1, "castle_siege_v3.mp4", &["medieval"], None, 3);
    out.extend(records(2, "picnic.mp4", &["castle"], None, 1));
    out.extend(records(
        3,
        "beach_day.mp4",
        &[],
        Some("a castle at dawn"),
        2,
    ));
    out.extend(records(4, "dog.mp4", &["pets"], Some("good dog"), 1));
    for n in 10..16 {
        out.extend(records(n, &format!("filler_{n}.mov"), &[], None, 1));
    }
    out
}

async fn cluster_index(server: &KnnServer, hint: &str) -> Arc<OpenSearchIndex> {
    let config = common::builder(&server.url(), hint)
        .refresh(RefreshPolicy::WaitFor)
        .build()
        .unwrap();
    Arc::new(OpenSearchIndex::connect(config, spec()).await.unwrap())
}

async fn serverless_index(server: &KnnServer, hint: &str) -> Arc<OpenSearchIndex> {
    let config = common::serverless_builder(&server.url(), hint)
        .refresh(RefreshPolicy::WaitFor)
        .build()
        .unwrap();
    Arc::new(OpenSearchIndex::connect(config, spec()).await.unwrap())
}

async fn found(index: &OpenSearchIndex, q: KeywordQuery) -> Vec<AssetId> {
    index
        .keyword_search(&q)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.asset_id)
        .collect()
}

/// What both deployments must do.
async fn keyword_scenario(server: &KnnServer, index: Arc<OpenSearchIndex>) {
    index.upsert(library()).await.unwrap();
    index.flush().await.unwrap();

    // Name (both words) before tag before field text; the dog clip and the fillers are not
    // found; the three documents of the castle clip are one hit.
    let hits = index
        .keyword_search(&KeywordQuery::new("castle siege", 10))
        .await
        .unwrap();
    let ids: Vec<AssetId> = hits.iter().map(|h| h.asset_id.clone()).collect();
    assert_eq!(ids, vec![asset(1), asset(2), asset(3)], "{hits:#?}");
    assert_eq!(hits[0].meta.name.as_deref(), Some("castle_siege_v3.mp4"));
    assert_eq!(hits[0].matches[0].field, "name");
    assert_eq!(hits[0].matches[0].terms, vec!["castle", "siege"]);
    assert!(hits[0].score > hits[1].score && hits[1].score > hits[2].score);
    assert_eq!(hits[1].score, 5.0, "a tag scores its constant boost");
    assert_eq!(hits[1].matches[0].field, "tag");
    assert_eq!(hits[2].matches[0].field, "fields.brief");
    assert!(
        hits[0].meta.fields.contains_key("budget"),
        "hits carry the asset's metadata"
    );
    // `k` counts assets, not documents.
    assert_eq!(
        found(&index, KeywordQuery::new("castle siege", 2)).await,
        vec![asset(1), asset(2)]
    );

    // Filters apply (the same filter as the vector routes).
    let q = |f: Filter| KeywordQuery::new("castle", 10).filter(f);
    assert_eq!(
        found(&index, q(Filter::default().tag("castle"))).await,
        vec![asset(2)]
    );
    assert_eq!(
        found(
            &index,
            q(Filter::default().field(
                "budget",
                FieldTest::Range {
                    gte: Some(2.0.into()),
                    lt: None
                }
            ))
        )
        .await,
        vec![asset(2), asset(3)]
    );
    assert!(
        found(&index, q(Filter::default().kinds([MediaKind::Audio])))
            .await
            .is_empty()
    );

    // A renamed asset is found by its new name, not by its old one.
    let changed = index
        .update_meta(
            &asset(4),
            &MetaPatch::default().rename("Castle Tour (final).mp4"),
        )
        .await
        .unwrap();
    assert_eq!(changed, 1);
    index.flush().await.unwrap();
    let hits = index
        .keyword_search(&KeywordQuery::new("castle tour", 10))
        .await
        .unwrap();
    assert_eq!(hits[0].asset_id, asset(4), "{hits:#?}");
    assert_eq!(
        hits[0].meta.name.as_deref(),
        Some("Castle Tour (final).mp4")
    );
    assert!(
        found(&index, KeywordQuery::new("dog", 10))
            .await
            .contains(&asset(4)),
        "the brief still says dog"
    );
    // A field's text changed in place is searched by its new words.
    index
        .update_meta(
            &asset(4),
            &MetaPatch::default().set("brief", "sunset parade"),
        )
        .await
        .unwrap();
    index.flush().await.unwrap();
    assert_eq!(
        found(&index, KeywordQuery::new("parade", 10)).await,
        vec![asset(4)]
    );
    assert!(found(&index, KeywordQuery::new("dog", 10)).await.is_empty());

    // Through a searcher with the index as its keyword index.
    let searcher = CrossModalSearcher::new(Arc::new(CaptionHashEmbedder::new()), index.clone())
        .keyword_index(index.clone());
    let results = searcher
        .search(&Query::text("castle siege").keywords(true).k(5))
        .await
        .unwrap();
    let hit = results
        .hits
        .iter()
        .find(|h| h.asset_id == asset(1))
        .expect("the castle siege clip is found");
    let keywords = hit.keywords.as_ref().expect("matched by keywords");
    assert_eq!(keywords.rank, 0);
    assert_eq!(keywords.matches[0].field, "name");
    assert_eq!(keywords.matches[0].text, "castle_siege_v3.mp4");
    // Without the keyword index the searcher refuses keywords.
    let plain = CrossModalSearcher::new(Arc::new(CaptionHashEmbedder::new()), index.clone());
    let e = plain
        .search(&Query::text("castle siege").keywords(true))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);

    // Invalid queries are refused before any request.
    server.clear_requests();
    for bad in [KeywordQuery::new(" -- ", 5), KeywordQuery::new("castle", 0)] {
        let e = index.keyword_search(&bad).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    }
    assert!(server.requests().is_empty());
    server.assert_clean();
}

#[tokio::test]
async fn castle_siege_is_found_by_its_words_on_a_cluster() {
    let server = KnnServer::start().await;
    let index = cluster_index(&server, "kw").await;
    keyword_scenario(&server, index).await;
}

#[tokio::test]
async fn castle_siege_is_found_by_its_words_on_serverless() {
    let server = KnnServer::start_serverless(Duration::from_millis(200)).await;
    let index = serverless_index(&server, "kw").await;
    keyword_scenario(&server, index).await;
    server.assert_no_serverless_refusals();
}

#[tokio::test]
async fn an_asset_with_more_documents_than_asked_for_still_counts_once() {
    let server = KnnServer::start().await;
    let index = cluster_index(&server, "kwmany").await;
    // 40 documents of one castle asset, then two more castle assets: the first 16 documents
    // asked for (k = 1 .. 16 per asset) hold one asset only, so the crate asks again.
    // (The shortest name scores highest: the 40 documents come first.)
    let mut recs = records(1, "castle", &[], None, 40);
    recs.extend(records(2, "castle_two.mp4", &[], None, 1));
    recs.extend(records(3, "castle number three.mp4", &[], None, 1));
    index.upsert(recs).await.unwrap();
    server.clear_requests();
    let mut got = found(&index, KeywordQuery::new("castle", 2)).await;
    got.sort();
    let mut want = vec![asset(1), asset(2)];
    want.sort();
    assert_eq!(got, want);
    let searches: Vec<Value> = server
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/_search"))
        .map(|r| r.json())
        .collect();
    assert_eq!(searches.len(), 2, "asked once more");
    assert_eq!(searches[0]["size"], 32);
    assert_eq!(searches[1]["size"], 128);
    server.assert_clean();
}

/// Creates index `name` with one `text` field `t` and a keyword `k`, and writes `docs`.
async fn text_index(index: &OpenSearchIndex, name: &str, docs: &[Value]) {
    let client = index.client();
    let r = client
        .indices()
        .create(IndicesCreateParts::Index(name))
        .body(json!({"mappings": {"dynamic": "strict", "properties": {
            "t": {"type": "text"}, "k": {"type": "keyword"}}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status_code().as_u16(), 200);
    let mut body = String::new();
    for (i, d) in docs.iter().enumerate() {
        body.push_str(&format!(
            "{}\n{d}\n",
            json!({"index": {"_id": format!("d{i}")}})
        ));
    }
    let r = client
        .bulk(crossmodal_opensearch::opensearch::BulkParts::Index(name))
        .refresh(Refresh::True)
        .body(vec![body])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status_code().as_u16(), 200);
}

async fn search(index: &OpenSearchIndex, name: &str, body: Value) -> (u16, Value) {
    let r = index
        .client()
        .search(SearchParts::Index(&[name]))
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status_code().as_u16(), r.json().await.unwrap())
}

fn scores(v: &Value) -> Vec<(String, f64)> {
    v["hits"]["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["_id"].as_str().unwrap().to_string(),
                h["_score"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// Lucene's BM25 of one term: `idf * tf * weight / (tf + k1 * (1 - b + b * dl / avgdl))`.
fn bm25(n_docs: f64, df: f64, tf: f64, dl: f64, avgdl: f64, weight: f64) -> f64 {
    let idf = (1.0 + (n_docs - df + 0.5) / (df + 0.5)).ln();
    idf * tf * weight / (tf + 1.2 * (1.0 - 0.75 + 0.75 * dl / avgdl))
}

#[tokio::test]
async fn the_test_server_scores_bm25_as_opensearch_does() {
    let server = KnnServer::start().await;
    let index = cluster_index(&server, "bm25").await;
    let name = "bm25-hand";
    // Tokens: d0 [castle, siege] (2), d1 [castle, castle, tour, by, night] (5), d2 [dog] (1),
    // d3 has no text (not counted in N nor avgdl). N = 3, avgdl = 8 / 3.
    text_index(
        &index,
        name,
        &[
            json!({"t": "Castle siege", "k": "a"}),
            json!({"t": "castle, CASTLE: tour-by-night!", "k": "b"}),
            json!({"t": "dog", "k": "castle"}),
            json!({"k": "c"}),
        ],
    )
    .await;
    let avgdl = 8.0 / 3.0;
    let (status, v) = search(
        &index,
        name,
        json!({"query": {"match": {"t": {"query": "castle siege", "boost": 2.0}}}}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let got = scores(&v);
    // OpenSearch 3.x: Lucene's BM25Similarity (no k1 + 1 factor).
    let d0 = 2.0 * (bm25(3.0, 2.0, 1.0, 2.0, avgdl, 1.0) + bm25(3.0, 1.0, 1.0, 2.0, avgdl, 1.0));
    let d1 = 2.0 * bm25(3.0, 2.0, 2.0, 5.0, avgdl, 1.0);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].0, "d0");
    assert_eq!(got[1].0, "d1");
    assert!((got[0].1 - d0).abs() < 1e-5, "{} vs {d0}", got[0].1);
    assert!((got[1].1 - d1).abs() < 1e-5, "{} vs {d1}", got[1].1);
    // Hand figures (so the formula above is not only checked against itself).
    assert!((d0 - 1.469_198).abs() < 1e-5, "{d0}");

    // `should` clauses add up; `terms` on a keyword adds its boost; `minimum_should_match`
    // drops documents that only pass the filter.
    let (_, v) = search(
        &index,
        name,
        json!({"query": {"bool": {
            "should": [
                {"match": {"t": "castle"}},
                {"terms": {"k": ["castle", "b"], "boost": 3.0}}
            ],
            "minimum_should_match": 1,
            "filter": [{"terms": {"k": ["a", "b", "castle"]}}]
        }}}),
    )
    .await;
    let got = scores(&v);
    let castle = |tf: f64, dl: f64| bm25(3.0, 2.0, tf, dl, avgdl, 1.0);
    let want = [
        ("d1", castle(2.0, 5.0) + 3.0),
        ("d2", 3.0),
        ("d0", castle(1.0, 2.0)),
    ];
    assert_eq!(got.len(), 3, "{got:?}");
    for ((id, s), (wid, ws)) in got.iter().zip(want) {
        assert_eq!(id, wid);
        assert!((s - ws).abs() < 1e-5, "{id}: {s} vs {ws}");
    }
    // What the request would match without `minimum_should_match`: a `should` next to a
    // filter is optional, so every document the filter passes (the crate sends 1).
    let (_, v) = search(
        &index,
        name,
        json!({"query": {"bool": {
            "should": [{"match": {"t": "siege"}}],
            "filter": [{"terms": {"k": ["a", "b", "c"]}}]
        }}}),
    )
    .await;
    assert_eq!(scores(&v).len(), 3, "{v}");
    // `operator: and` needs every term.
    let (_, v) = search(
        &index,
        name,
        json!({"query": {"match": {"t": {"query": "castle night", "operator": "and"}}}}),
    )
    .await;
    assert_eq!(
        scores(&v).iter().map(|s| s.0.as_str()).collect::<Vec<_>>(),
        ["d1"]
    );

    // Before 3.0 (LegacyBM25Similarity) each term's score carries k1 + 1.
    server.set_version("2.19.0");
    let (_, v) = search(&index, name, json!({"query": {"match": {"t": "siege"}}})).await;
    let legacy = bm25(3.0, 1.0, 1.0, 2.0, avgdl, 2.2);
    assert!((scores(&v)[0].1 - legacy).abs() < 1e-5, "{v}");
    server.assert_clean();
}

#[tokio::test]
async fn a_match_on_the_name_keeps_underscored_words_whole_and_name_words_splits_them() {
    let server = KnnServer::start().await;
    let index = cluster_index(&server, "kwname").await;
    index.upsert(library()).await.unwrap();
    let name = index.index_name().to_string();
    // What a crate matching the `name` field (standard analyzer) would send: nothing found,
    // as OpenSearch keeps `castle_siege_v3` as one token.
    let (status, v) = search(
        &index,
        &name,
        json!({"query": {"match": {"name": "castle siege"}}}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert!(scores(&v).is_empty(), "{v}");
    let (_, v) = search(
        &index,
        &name,
        json!({"query": {"match": {"name": "castle_siege_v3"}}}),
    )
    .await;
    assert_eq!(
        scores(&v).len(),
        3,
        "one token, in the asset's three documents"
    );
    // The words the crate writes are found by each word.
    let (_, v) = search(
        &index,
        &name,
        json!({"query": {"match": {"name_words": "siege"}}}),
    )
    .await;
    assert_eq!(scores(&v).len(), 3);
    let doc = server.doc(&name, &library()[0].key().doc_id()).unwrap();
    assert_eq!(doc["name_words"], "castle siege v3 mp4");
    // Term-level queries on text fields stay refused; `match` on a keyword is not implemented.
    for body in [
        json!({"query": {"term": {"name_words": "siege"}}}),
        json!({"query": {"match": {"tags": "castle"}}}),
        json!({"query": {"match": {"name_words": {"query": "x", "fuzziness": 1}}}}),
    ] {
        let (status, _) = search(&index, &name, body).await;
        assert_eq!(status, 400);
    }
    assert_eq!(server.violations().len(), 3, "{:?}", server.violations());
}
