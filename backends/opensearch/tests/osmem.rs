//! `OpenSearchIndex` and `OpenSearchCatalog` against osmem-server, an OpenSearch-3.x-compatible
//! server (`scripts/opensearch-server.sh`): index creation and mapping checks, bulk with
//! per-item errors, delete by asset, stats, and the catalog. osmem refuses k-NN queries (that is
//! what the k-NN test server in `knn.rs` is for).
//!
//! Skipped with a message when `CROSSMODAL_OSMEM_URL` is unset; a failure under `CI=true`.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use std::time::Instant;

use crossmodal_core::{
    AssetCatalog, AssetId, AssetQuery, AssetState, AssetStatus, EmbeddingSpace, ErrorKind,
    IndexSpec, IngestStage, MediaFormat, MediaKind, VectorIndex, VectorQuery,
};
use crossmodal_opensearch::opensearch::indices::{IndicesCreateParts, IndicesGetMappingParts};
use crossmodal_opensearch::{OpenSearchCatalog, OpenSearchIndex, SpaceType, vector_field};
use serde_json::{Value, json};

fn spec(dim: usize) -> IndexSpec {
    IndexSpec::new("osmem-model", dim)
}

async fn mapping_of(index: &OpenSearchIndex) -> Value {
    let v: Value = index
        .client()
        .indices()
        .get_mapping(IndicesGetMappingParts::Index(&[index.index_name()]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v[index.index_name()]["mappings"].clone()
}

#[tokio::test]
async fn creation_is_idempotent_and_the_mapping_is_the_documented_one() {
    let url = osmem_or_skip!("creation_is_idempotent_and_the_mapping_is_the_documented_one");
    let config = common::builder(&url, "create").build().unwrap();
    let index = OpenSearchIndex::connect(config.clone(), spec(512))
        .await
        .unwrap();
    let mapping = mapping_of(&index).await;
    for space in EmbeddingSpace::ALL {
        let f = &mapping["properties"][vector_field(space)];
        assert_eq!(f["type"], "knn_vector", "{mapping}");
        assert_eq!(f["dimension"], 512);
        assert_eq!(f["method"]["space_type"], "cosinesimil");
        assert_eq!(f["method"]["engine"], "faiss");
    }
    assert_eq!(mapping["_meta"]["crossmodal"]["model_id"], "osmem-model");
    let records = vec![
        common::record(1, EmbeddingSpace::Visual, 0, vec![0.5; 512]),
        common::record(1, EmbeddingSpace::Audio, 0, vec![0.25; 512]),
    ];
    index.upsert(records).await.unwrap();
    // Connecting again (as every process start does) keeps the index and its vectors.
    let again = OpenSearchIndex::connect(config, spec(512)).await.unwrap();
    let stats = again.stats().await.unwrap();
    assert_eq!(stats.vectors(), 2);
    assert_eq!(stats.vectors_in(EmbeddingSpace::Audio), 1);
    assert_eq!(stats.assets, 1);
    assert!(again.delete_index().await.unwrap());
    assert!(!again.delete_index().await.unwrap());
}

#[tokio::test]
async fn an_existing_index_that_disagrees_is_a_conflict() {
    let url = osmem_or_skip!("an_existing_index_that_disagrees_is_a_conflict");
    let config = common::builder(&url, "conflict").build().unwrap();
    OpenSearchIndex::connect(config.clone(), spec(512))
        .await
        .unwrap();
    let wrong_dim = OpenSearchIndex::connect(config.clone(), spec(1024))
        .await
        .unwrap_err();
    assert_eq!(wrong_dim.kind(), ErrorKind::Conflict, "{wrong_dim}");
    assert!(wrong_dim.message().contains("1024"), "{wrong_dim}");
    let wrong_model = OpenSearchIndex::connect(config.clone(), IndexSpec::new("marengo-2.7", 512))
        .await
        .unwrap_err();
    assert_eq!(wrong_model.kind(), ErrorKind::Conflict, "{wrong_model}");
    let ip = common::builder(&url, "x")
        .index(config.index())
        .space_type(SpaceType::InnerProduct)
        .build()
        .unwrap();
    let wrong_space = OpenSearchIndex::connect(ip, spec(512)).await.unwrap_err();
    assert_eq!(wrong_space.kind(), ErrorKind::Conflict, "{wrong_space}");
    assert!(
        wrong_space.message().contains("space type"),
        "{wrong_space}"
    );

    // An index somebody else made, with a knn field of the right dimension but no crossmodal
    // metadata, is not taken over.
    let foreign = common::builder(&url, "foreign").build().unwrap();
    let probe = OpenSearchIndex::connect(common::builder(&url, "probe").build().unwrap(), spec(4))
        .await
        .unwrap();
    let r = probe
        .client()
        .indices()
        .create(IndicesCreateParts::Index(foreign.index()))
        .body(
            json!({"settings": {"index": {"knn": true}}, "mappings": {"properties": {
            "vector_visual": {"type": "knn_vector", "dimension": 4}}}}),
        )
        .send()
        .await
        .unwrap();
    assert!(r.status_code().is_success());
    let err = OpenSearchIndex::connect(foreign, spec(4))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(err.message().contains("not created by crossmodal"), "{err}");
}

#[tokio::test]
async fn bulk_reports_every_rejected_document_and_writes_the_rest() {
    let url = osmem_or_skip!("bulk_reports_every_rejected_document_and_writes_the_rest");
    // An index made by hand with this crate's mapping except a narrower integer type for `seq`
    // (accepted: any integer type holds the usual sequence numbers). osmem, like OpenSearch,
    // rejects the documents whose `seq` does not fit, item by item.
    let template =
        OpenSearchIndex::connect(common::builder(&url, "tmpl").build().unwrap(), spec(4))
            .await
            .unwrap();
    let mut mapping = mapping_of(&template).await;
    mapping["properties"]["seq"] = json!({"type": "byte"});
    let config = common::builder(&url, "items").build().unwrap();
    let created = template
        .client()
        .indices()
        .create(IndicesCreateParts::Index(config.index()))
        .body(json!({"settings": {"index": {"knn": true}}, "mappings": mapping}))
        .send()
        .await
        .unwrap();
    assert!(created.status_code().is_success());
    let index = OpenSearchIndex::connect(config, spec(4)).await.unwrap();
    let records: Vec<_> = (0..12u32)
        .map(|i| {
            let seq = if i % 4 == 3 { 200 + i } else { i };
            common::record(
                i,
                EmbeddingSpace::Visual,
                seq,
                vec![1.0, i as f32, 0.0, 1.0],
            )
        })
        .collect();
    let report = index.upsert_report(records.clone()).await.unwrap();
    assert_eq!(report.indexed, 9, "{report:?}");
    assert_eq!(report.failed.len(), 3);
    for (f, r) in report
        .failed
        .iter()
        .zip(records.iter().filter(|r| r.seq >= 200))
    {
        assert_eq!(f.key, r.key());
        assert_eq!(f.status, 400);
        assert_eq!(f.error_type, "mapper_parsing_exception");
        assert!(f.reason.contains("out of range"), "{}", f.reason);
    }
    assert_eq!(index.stats().await.unwrap().vectors(), 9);
    // Through the trait: an error naming the count and the documents, the others still written.
    let err = index.upsert(records).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Backend, "{err}");
    assert_eq!(err.context_value("failed"), Some("3"));
    assert!(err.message().contains("mapper_parsing_exception"), "{err}");
    assert_eq!(index.stats().await.unwrap().vectors(), 9);
}

#[tokio::test]
async fn an_index_lacking_a_space_field_gains_it() {
    // An index made before a space existed (here: without `vector_transcription`) is completed
    // with `PUT _mapping`, not refused.
    let url = osmem_or_skip!("an_index_lacking_a_space_field_gains_it");
    let template =
        OpenSearchIndex::connect(common::builder(&url, "tmpl").build().unwrap(), spec(4))
            .await
            .unwrap();
    let mut mapping = mapping_of(&template).await;
    mapping["properties"]
        .as_object_mut()
        .unwrap()
        .remove("vector_transcription");
    let config = common::builder(&url, "older").build().unwrap();
    let created = template
        .client()
        .indices()
        .create(IndicesCreateParts::Index(config.index()))
        .body(json!({"settings": {"index": {"knn": true}}, "mappings": mapping}))
        .send()
        .await
        .unwrap();
    assert!(created.status_code().is_success());
    let index = OpenSearchIndex::connect(config, spec(4)).await.unwrap();
    let mapping = mapping_of(&index).await;
    assert_eq!(
        mapping["properties"]["vector_transcription"]["type"], "knn_vector",
        "{mapping}"
    );
    assert_eq!(
        mapping["properties"]["vector_transcription"]["dimension"],
        4
    );
    index
        .upsert(vec![common::record(
            1,
            EmbeddingSpace::Transcription,
            0,
            vec![1.0; 4],
        )])
        .await
        .unwrap();
    assert_eq!(
        index
            .stats()
            .await
            .unwrap()
            .vectors_in(EmbeddingSpace::Transcription),
        1
    );
}

#[tokio::test]
async fn delete_by_asset_removes_every_space_and_stats_follow() {
    let url = osmem_or_skip!("delete_by_asset_removes_every_space_and_stats_follow");
    let index = OpenSearchIndex::connect(common::builder(&url, "delete").build().unwrap(), spec(4))
        .await
        .unwrap();
    let mut records = Vec::new();
    for a in 0..5u32 {
        for seq in 0..3 {
            records.push(common::record(
                a,
                EmbeddingSpace::Visual,
                seq,
                vec![1.0, a as f32, seq as f32, 0.5],
            ));
        }
        records.push(common::record(
            a,
            EmbeddingSpace::Audio,
            0,
            vec![0.5, 1.0, a as f32, 0.5],
        ));
    }
    index.upsert(records.clone()).await.unwrap();
    let stats = index.stats().await.unwrap();
    assert_eq!((stats.vectors(), stats.assets), (20, 5));
    assert_eq!(stats.vectors_in(EmbeddingSpace::Visual), 15);
    let victim = records[4].asset_id.clone();
    assert_eq!(index.delete_asset(&victim).await.unwrap(), 4);
    assert_eq!(index.delete_asset(&victim).await.unwrap(), 0);
    assert_eq!(
        index
            .delete_asset(&AssetId::from_content(b"never"))
            .await
            .unwrap(),
        0
    );
    let stats = index.stats().await.unwrap();
    assert_eq!((stats.vectors(), stats.assets), (16, 4));
    // Replacing by key keeps the count.
    index.upsert(records[..4].to_vec()).await.unwrap();
    assert_eq!(index.stats().await.unwrap().vectors(), 16);
}

#[tokio::test]
async fn metadata_is_stored_filtered_and_updated_in_place_on_osmem() {
    let url = osmem_or_skip!("metadata_is_stored_filtered_and_updated_in_place_on_osmem");
    let config = common::builder(&url, "meta")
        .refresh(crossmodal_opensearch::RefreshPolicy::WaitFor)
        .build()
        .unwrap();
    let index = OpenSearchIndex::connect(config, spec(4)).await.unwrap();
    let mapping = mapping_of(&index).await;
    assert_eq!(
        mapping["properties"]["name"]["fields"]["raw"]["type"], "keyword",
        "{mapping}"
    );
    assert_eq!(
        mapping["properties"]["fields"]["enabled"], false,
        "{mapping}"
    );
    let mut records = Vec::new();
    for (n, budget) in [(1u32, -2.5), (2, 0.25), (3, 7.0)] {
        let mut r = common::record(n, EmbeddingSpace::Visual, 0, vec![1.0, n as f32, 0.0, 0.5]);
        r.meta = r
            .meta
            .clone()
            .name(format!("castle_siege_v{n}.mp4"))
            .duration_ms(9_000)
            .field("budget", budget)
            .field("campaign", "summer");
        records.push(r);
    }
    index.upsert(records.clone()).await.unwrap();
    // The filter clauses the crate puts inside the knn clause, as a plain query (osmem has no
    // k-NN): the range over the order-preserving terms and `must_not`.
    let search = |query: Value| {
        let client = index.client().clone();
        let name = index.index_name().to_string();
        async move {
            let v: Value = client
                .search(crossmodal_opensearch::opensearch::SearchParts::Index(&[
                    &name,
                ]))
                .body(json!({"query": query, "size": 10, "_source": {"excludes": ["vector_*"]}}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["hits"]["hits"].as_array().cloned().unwrap_or_default()
        }
    };
    // `Range { gte: -1.0 }` on `budget`: -1.0 is 0xbff0_0000_0000_0000, negative, so its
    // order-preserving form is every bit flipped: 0x400f_ffff_ffff_ffff.
    let hits = search(json!({"range": {"field_terms": {
        "gte": "n:budget=400fffffffffffff", "lt": "n:budget>"}}}))
    .await;
    assert_eq!(hits.len(), 2, "0.25 and 7 are >= -1, -2.5 is not: {hits:?}");
    let hits =
        search(json!({"bool": {"must_not": [{"term": {"field_terms": "s:campaign=summer"}}]}}))
            .await;
    assert!(hits.is_empty());
    // In place: bulk `update` items on osmem.
    let patch = crossmodal_core::MetaPatch::default()
        .remove("budget")
        .set("campaign", "winter")
        .rename("renamed.mp4");
    assert_eq!(
        index
            .update_meta(&records[0].asset_id, &patch)
            .await
            .unwrap(),
        1
    );
    let hits = search(json!({"term": {"asset_id": records[0].asset_id.as_str()}})).await;
    let source = &hits[0]["_source"];
    assert_eq!(source["name"], "renamed.mp4");
    assert_eq!(source["field_keys"], json!(["campaign"]));
    assert_eq!(source["field_terms"], json!(["s:campaign=winter"]));
    assert_eq!(
        source["fields"],
        json!([{"name": "campaign", "value": "winter"}])
    );
    assert_eq!(source["duration_ms"], 9000);
    let hits = search(json!({"term": {"name.raw": "renamed.mp4"}})).await;
    assert_eq!(hits.len(), 1);
}

#[tokio::test]
async fn osmem_refuses_knn_queries() {
    // Why the crate carries its own k-NN test server.
    let url = osmem_or_skip!("osmem_refuses_knn_queries");
    let index = OpenSearchIndex::connect(common::builder(&url, "noknn").build().unwrap(), spec(4))
        .await
        .unwrap();
    let err = index
        .search(&VectorQuery::new(EmbeddingSpace::Visual, vec![1.0; 4], 3))
        .await
        .unwrap_err();
    assert!(!err.is_temporary(), "{err}");
    assert!(err.message().contains("knn"), "{err}");
}

#[tokio::test]
async fn bulk_throughput_on_osmem() {
    let url = osmem_or_skip!("bulk_throughput_on_osmem");
    let index = OpenSearchIndex::connect(common::builder(&url, "perf").build().unwrap(), spec(512))
        .await
        .unwrap();
    let records: Vec<_> = (0..3000u32)
        .map(|i| {
            let v: Vec<f32> = (0..512)
                .map(|j| ((i as usize * 7919 + j * 104_729) % 1009) as f32 - 504.0)
                .collect();
            common::record(i, EmbeddingSpace::Visual, 0, v)
        })
        .collect();
    let started = Instant::now();
    index.upsert(records.clone()).await.unwrap();
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(index.stats().await.unwrap().vectors(), 3000);
    eprintln!(
        "TEST-SERVER FIGURES (osmem-server, 512-d, {} docs, batches of 500): bulk {:.0} docs/s",
        records.len(),
        records.len() as f64 / secs
    );
    index.delete_index().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// The catalog.

async fn catalog(url: &str, hint: &str) -> OpenSearchCatalog {
    let config = common::builder(url, hint).build().unwrap();
    OpenSearchCatalog::connect(config)
        .await
        .expect("catalog connect")
}

#[tokio::test]
async fn catalog_round_trips_records_and_statuses() {
    let url = osmem_or_skip!("catalog_round_trips_records_and_statuses");
    let catalog = catalog(&url, "cat").await;
    assert!(catalog.index_name().ends_with("-assets"));
    let mut r = common::asset_record(1, MediaFormat::Mp4, AssetStatus::Pending, 1_700_000_000_000);
    assert_eq!(catalog.get(&r.asset_id).await.unwrap(), None);
    catalog.upsert(&r).await.unwrap();
    assert_eq!(catalog.get(&r.asset_id).await.unwrap(), Some(r.clone()));
    r.tags.push("more".into());
    catalog.upsert(&r).await.unwrap();
    assert_eq!(
        catalog.get(&r.asset_id).await.unwrap().unwrap().tags,
        r.tags
    );

    let failed = AssetStatus::Failed {
        stage: IngestStage::Embed,
        message: "model said \"no\"".into(),
    };
    catalog.set_status(&r.asset_id, &failed).await.unwrap();
    let got = catalog.get(&r.asset_id).await.unwrap().unwrap();
    assert_eq!(got.status, failed);
    assert!(got.updated_at_ms > r.updated_at_ms);
    let missing = AssetId::from_content(b"missing");
    let err = catalog
        .set_status(&missing, &AssetStatus::Indexed)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);

    assert!(catalog.remove(&r.asset_id).await.unwrap());
    assert!(!catalog.remove(&r.asset_id).await.unwrap());
    assert_eq!(catalog.get(&r.asset_id).await.unwrap(), None);
    // Reconnecting is idempotent.
    let config = common::builder(&url, "x")
        .index(catalog.index_name().trim_end_matches("-assets"))
        .build()
        .unwrap();
    OpenSearchCatalog::connect(config).await.unwrap();
    assert!(catalog.delete_index().await.unwrap());
}

#[tokio::test]
async fn catalog_pages_newest_first_with_filters_and_counts_states() {
    let url = osmem_or_skip!("catalog_pages_newest_first_with_filters_and_counts_states");
    let catalog = catalog(&url, "pages").await;
    let formats = [
        MediaFormat::Png,
        MediaFormat::Mp4,
        MediaFormat::Wav,
        MediaFormat::Mov,
    ];
    let statuses = [
        AssetStatus::Pending,
        AssetStatus::Embedding,
        AssetStatus::Indexed,
        AssetStatus::Failed {
            stage: IngestStage::Store,
            message: "disk full".into(),
        },
    ];
    let mut all = Vec::new();
    for n in 0..37u32 {
        // Several records share a creation time: ties are broken by asset id.
        let created = 1_700_000_000_000 + i64::from(n / 3) * 1000;
        let r = common::asset_record(
            n,
            formats[n as usize % 4],
            statuses[n as usize % 4 % 3 + usize::from(n % 5 == 0)].clone(),
            created,
        );
        catalog.upsert(&r).await.unwrap();
        all.push(r);
    }
    let newest_first = |v: &mut Vec<crossmodal_core::AssetRecord>| {
        v.sort_by(|a, b| {
            b.created_at_ms
                .cmp(&a.created_at_ms)
                .then(b.asset_id.as_str().cmp(a.asset_id.as_str()))
        })
    };
    let queries = [
        AssetQuery::new().limit(7),
        AssetQuery::new().kind(MediaKind::Video).limit(4),
        AssetQuery::new()
            .state(AssetState::Indexed)
            .state(AssetState::Failed)
            .limit(5),
        AssetQuery::new()
            .kind(MediaKind::Audio)
            .state(AssetState::Embedding)
            .limit(1000),
    ];
    for q in queries {
        let mut want: Vec<_> = all
            .iter()
            .filter(|r| q.kinds.is_empty() || q.kinds.contains(&r.kind()))
            .filter(|r| q.states.is_empty() || q.states.contains(&r.status.state()))
            .cloned()
            .collect();
        newest_first(&mut want);
        let mut got = Vec::new();
        let mut cursor = None;
        let mut pages = 0;
        loop {
            let mut page_query = q.clone();
            page_query.cursor = cursor.clone();
            let page = catalog.list(&page_query).await.unwrap();
            pages += 1;
            assert!(page.assets.len() <= q.limit);
            got.extend(page.assets);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(got, want, "query {q:?}");
        assert_eq!(pages, want.len().div_ceil(q.limit).max(1), "query {q:?}");
    }
    let counts = catalog.counts().await.unwrap();
    assert_eq!(counts.total(), 37);
    let count = |s: AssetState| all.iter().filter(|r| r.status.state() == s).count() as u64;
    assert_eq!(
        (
            counts.pending,
            counts.embedding,
            counts.indexed,
            counts.failed
        ),
        (
            count(AssetState::Pending),
            count(AssetState::Embedding),
            count(AssetState::Indexed),
            count(AssetState::Failed)
        )
    );
    let err = catalog
        .list(&AssetQuery::new().cursor("c1.12.nonsense"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    catalog.delete_index().await.unwrap();
}

#[tokio::test]
async fn catalog_refuses_an_index_that_is_not_a_catalog() {
    let url = osmem_or_skip!("catalog_refuses_an_index_that_is_not_a_catalog");
    // The vector index is not a catalog.
    let config = common::builder(&url, "notcat").build().unwrap();
    OpenSearchIndex::connect(config.clone(), spec(4))
        .await
        .unwrap();
    let as_catalog = common::builder(&url, "x")
        .index(format!("{}-other", config.index()))
        .catalog_index(config.index())
        .build()
        .unwrap();
    let err = OpenSearchCatalog::connect(as_catalog).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
}
