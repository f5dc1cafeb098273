//! The conformance suite and a catalog round trip against a real OpenSearch cluster, when
//! `CROSSMODAL_OPENSEARCH_URL` names one (skipped with a message otherwise, CI included: no
//! cluster is reachable there). Indexes are created with unique `cm-live-*` names and deleted
//! afterwards.
//!
//! | variable | meaning |
//! |---|---|
//! | `CROSSMODAL_OPENSEARCH_URL` | the cluster, e.g. `https://localhost:9200` (required) |
//! | `CROSSMODAL_OPENSEARCH_USER`, `CROSSMODAL_OPENSEARCH_PASSWORD` | basic authentication |
//! | `CROSSMODAL_OPENSEARCH_SIGV4` | `es` (Amazon OpenSearch Service) or `aoss` (a Serverless vector search collection: Serverless rules, the client waits up to 3 minutes per write for visibility); credentials from the default AWS chain |
//! | `CROSSMODAL_OPENSEARCH_REGION` | SigV4 region (default: `AWS_REGION` / the profile's) |
//! | `CROSSMODAL_OPENSEARCH_ENGINE` | `faiss` (default) or `lucene` |
//! | `CROSSMODAL_OPENSEARCH_SPACE` | `cosinesimil` (default) or `innerproduct` |
//! | `CROSSMODAL_OPENSEARCH_REFRESH` | `wait_for` (default), `true` or `none` |
//! | `CROSSMODAL_OPENSEARCH_INSECURE` | `1` accepts a self-signed certificate (local demo cluster) |
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use std::sync::{Arc, Mutex};

use crossmodal_core::conformance::vector_index_suite;
use crossmodal_core::{AssetCatalog, AssetQuery, AssetStatus, MediaFormat, VectorIndex};
#[cfg(feature = "aws-auth")]
use crossmodal_opensearch::AwsService;
use crossmodal_opensearch::{
    Engine, OpenSearchCatalog, OpenSearchConfig, OpenSearchConfigBuilder, OpenSearchIndex,
    RefreshPolicy, SpaceType,
};

fn live_builder(hint: &str) -> Option<OpenSearchConfigBuilder> {
    let Ok(url) = std::env::var("CROSSMODAL_OPENSEARCH_URL") else {
        crossmodal_testkit::skip::not_opted_in(
            &format!("live OpenSearch test {hint}"),
            "set CROSSMODAL_OPENSEARCH_URL (and optionally CROSSMODAL_OPENSEARCH_USER/PASSWORD or \
             CROSSMODAL_OPENSEARCH_SIGV4=es|aoss) to run it against a real cluster",
        );
        return None;
    };
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let mut b = OpenSearchConfig::builder(url).index(common::unique_index(&format!("live-{hint}")));
    if let (Some(user), Some(password)) = (
        var("CROSSMODAL_OPENSEARCH_USER"),
        var("CROSSMODAL_OPENSEARCH_PASSWORD"),
    ) {
        b = b.basic_auth(user, password);
    }
    #[cfg(feature = "aws-auth")]
    match var("CROSSMODAL_OPENSEARCH_SIGV4").as_deref() {
        None => {}
        Some("es") => {
            b = b.sigv4(
                AwsService::OpenSearchService,
                var("CROSSMODAL_OPENSEARCH_REGION"),
            )
        }
        Some("aoss") => {
            // The suite expects read-your-writes: the client waits for the service.
            b = b
                .sigv4(AwsService::Serverless, var("CROSSMODAL_OPENSEARCH_REGION"))
                .refresh(RefreshPolicy::WaitFor)
                .visibility_timeout(std::time::Duration::from_secs(180))
        }
        Some(other) => panic!("CROSSMODAL_OPENSEARCH_SIGV4 must be es or aoss, not {other}"),
    }
    #[cfg(not(feature = "aws-auth"))]
    if let Some(v) = var("CROSSMODAL_OPENSEARCH_SIGV4") {
        panic!("CROSSMODAL_OPENSEARCH_SIGV4={v} needs the aws-auth feature");
    }
    match var("CROSSMODAL_OPENSEARCH_ENGINE").as_deref() {
        None | Some("faiss") => {}
        Some("lucene") => b = b.engine(Engine::Lucene),
        Some(other) => panic!("CROSSMODAL_OPENSEARCH_ENGINE must be faiss or lucene, not {other}"),
    }
    match var("CROSSMODAL_OPENSEARCH_SPACE").as_deref() {
        None | Some("cosinesimil") => {}
        Some("innerproduct") => b = b.space_type(SpaceType::InnerProduct),
        Some(other) => {
            panic!("CROSSMODAL_OPENSEARCH_SPACE must be cosinesimil or innerproduct, not {other}")
        }
    }
    match var("CROSSMODAL_OPENSEARCH_REFRESH").as_deref() {
        None | Some("wait_for") => {}
        Some("true") => b = b.refresh(RefreshPolicy::Immediate),
        Some("none") => b = b.refresh(RefreshPolicy::None),
        Some(other) => {
            panic!("CROSSMODAL_OPENSEARCH_REFRESH must be wait_for, true or none, not {other}")
        }
    }
    if var("CROSSMODAL_OPENSEARCH_INSECURE").as_deref() == Some("1") {
        b = b.danger_accept_invalid_certs(true);
    }
    Some(b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_cluster_passes_the_conformance_suite() {
    let Some(template) = live_builder("conf") else {
        return;
    };
    let created: Arc<Mutex<Vec<OpenSearchIndex>>> = Arc::default();
    let keep = created.clone();
    vector_index_suite(move |spec| {
        let config = template
            .clone()
            .index(common::unique_index("live-conf"))
            .build()
            .unwrap();
        let keep = keep.clone();
        async move {
            let index = OpenSearchIndex::connect(config, spec)
                .await
                .expect("connect");
            keep.lock().unwrap().push(index.clone());
            Box::new(index) as Box<dyn VectorIndex>
        }
    })
    .await;
    let indexes = std::mem::take(&mut *created.lock().unwrap());
    for index in indexes {
        index.delete_index().await.expect("delete test index");
    }
}

#[tokio::test]
async fn live_cluster_catalog_round_trip() {
    let Some(builder) = live_builder("cat") else {
        return;
    };
    let catalog = OpenSearchCatalog::connect(builder.build().unwrap())
        .await
        .unwrap();
    let records: Vec<_> = (0..5)
        .map(|n| {
            common::asset_record(
                n,
                MediaFormat::Jpeg,
                AssetStatus::Pending,
                1_700_000_000_000 + i64::from(n),
            )
        })
        .collect();
    for r in &records {
        catalog.upsert(r).await.unwrap();
    }
    catalog
        .set_status(&records[2].asset_id, &AssetStatus::Indexed)
        .await
        .unwrap();
    // Serverless: list and counts see writes once the service makes them searchable.
    catalog.flush().await.unwrap();
    let page = catalog.list(&AssetQuery::new().limit(3)).await.unwrap();
    assert_eq!(page.assets.len(), 3);
    assert_eq!(page.assets[0].asset_id, records[4].asset_id);
    let rest = catalog
        .list(&AssetQuery::new().limit(3).cursor(page.next_cursor.unwrap()))
        .await
        .unwrap();
    assert_eq!(rest.assets.len(), 2);
    assert_eq!(catalog.counts().await.unwrap().indexed, 1);
    catalog.delete_index().await.unwrap();
}
