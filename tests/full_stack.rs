//! The production composition end to end, against local servers: `MarengoProvider` (Marengo
//! Embed 3.0) on the Bedrock-protocol test server, `S3MediaStore` on the S3-compatible server
//! (moto), `OpenSearchIndex` on the OpenSearch k-NN test server, a `MemoryEmbeddingCache`, and
//! an `OpenSearchCatalog`. It runs twice, once per OpenSearch deployment:
//!
//! - **Amazon OpenSearch Serverless** (`OpenSearchConfig` with SigV4 `aoss`): the k-NN test
//!   server acts as a vector search collection (`KnnServer::start_serverless`: only
//!   `aoss`-signed requests, no custom ids, no refresh, no `_refresh` / `_delete_by_query`,
//!   writes searchable after a delay), and the catalog lives in the same collection (osmem-server
//!   cannot act as Serverless; the k-NN test server implements the bulk and search requests
//!   the Serverless catalog sends).
//! - **An Amazon OpenSearch Service domain** (SigV4 `es`): the k-NN test server as a cluster,
//!   the catalog on osmem-server (which scripts/test.sh starts) or, without osmem, an in-memory
//!   `SqliteCatalog`.
//!
//! Each run ingests the quickstart's generated library and answers the quickstart's queries with
//! the same top results as the embedded default (`Engine::open_local` with the offline demo
//! embedder).
//!
//! To make the two stacks comparable, the Bedrock test server is given the demo embedder as its
//! vector source: for a text it returns the demo's text vector; for media (read from S3 in place,
//! as Bedrock would) it returns the demo's clips as Marengo 3.0 output items. Everything between
//! (request bodies, asynchronous jobs, `output.json` in S3, output parsing, the S3 store, bulk
//! indexing, the k-NN queries and score conversion, routing and fusion) is the production code.
//!
//! Needs `CROSSMODAL_S3_ENDPOINT` (`scripts/s3-server.sh install && eval "$(scripts/s3-server.sh
//! start)"`): skipped with a message without it, a failure under `CI=true`. Videos need ffmpeg.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossmodal::bedrock::{MarengoModel, MarengoProvider, PollPolicy, aws_sdk_s3};
use crossmodal::opensearch::{
    AwsService, Deployment, OpenSearchCatalog, OpenSearchConfig, OpenSearchIndex, aws_config,
};
use crossmodal::s3::{S3MediaStore, S3StoreConfig};
use crossmodal::{
    AssetCatalog, EmbeddingProvider, EmbeddingSpace, Engine, EngineParts, IndexSpec, IngestConfig,
    IngestItem, MediaContent, MediaInput, MediaKind, MediaLimits, MemoryEmbeddingCache, Query,
    RetryPolicy, SearchMode, SearchResults, SqliteCatalog, validate_media,
};

use crossmodal_testkit::aws as aws_helpers;
use crossmodal_testkit::bedrock_schema::Version;
use crossmodal_testkit::bedrock_server::{ACCOUNT, Op, SourceVector, TestServer, VectorSource};
use crossmodal_testkit::demo_embedder::CaptionHashEmbedder;
use crossmodal_testkit::knn_server::KnnServer;
use crossmodal_testkit::samples;

/// Environment variable naming osmem-server (`scripts/opensearch-server.sh start`).
const OSMEM_VAR: &str = "CROSSMODAL_OSMEM_URL";
/// How many top results must agree.
const TOP: usize = 3;
/// Score tolerance between the stacks.
const EPS: f32 = 1e-3;

/// The S3 endpoint; `None` after recording the skip; a panic under `CI=true`.
fn s3_endpoint(test: &str) -> Option<String> {
    crossmodal_testkit::skip::required_env("CROSSMODAL_S3_ENDPOINT", test)
}

/// Polling and retries in milliseconds, so the test is fast.
fn fast_config(model: MarengoModel) -> crossmodal::bedrock::MarengoConfigBuilder {
    crossmodal::bedrock::MarengoConfig::builder()
        .model(model)
        .region("us-east-1")
        .bucket_owner(ACCOUNT)
        .poll(PollPolicy {
            initial_interval: Duration::from_millis(5),
            max_interval: Duration::from_millis(20),
            multiplier: 1.5,
            timeout: Duration::from_secs(20),
        })
        .retry(
            RetryPolicy::default()
                .max_attempts(5)
                .initial_backoff(Duration::from_millis(2))
                .max_backoff(Duration::from_millis(10))
                .deadline(Some(Duration::from_secs(10))),
        )
}

/// The offline demo embedder as the Bedrock test server's vector source.
struct DemoVectors(Arc<CaptionHashEmbedder>);

/// Marengo 3.0's option name for a space.
fn option_name(space: EmbeddingSpace) -> &'static str {
    match space {
        EmbeddingSpace::Visual => "visual",
        EmbeddingSpace::Audio => "audio",
        EmbeddingSpace::Transcription => "transcription",
        EmbeddingSpace::VisualText => "visual-text",
    }
}

impl VectorSource for DemoVectors {
    fn text(&self, _version: Version, text: &str) -> Option<Vec<f32>> {
        // The demo embedder never waits on anything: its futures are ready at once.
        futures::executor::block_on(self.0.embed_text(text)).ok()
    }

    fn media(
        &self,
        _version: Version,
        _input_type: &str,
        bytes: &[u8],
    ) -> Option<Vec<SourceVector>> {
        // The media input exactly as the ingestor and the searcher build it (the demo cuts clips
        // by the probed duration).
        let valid = validate_media(bytes, None, &MediaLimits::default()).ok()?;
        let input = MediaInput::new(
            valid.asset_id,
            valid.probe.format,
            valid.size_bytes,
            MediaContent::Bytes(Bytes::copy_from_slice(bytes)),
        )
        .with_duration(valid.probe.duration_sec);
        let embeddings = futures::executor::block_on(self.0.embed_media(&input)).ok()?;
        Some(
            embeddings
                .into_iter()
                .map(|e| SourceVector {
                    option: option_name(e.space).to_string(),
                    clip: e.segment.map(|s| (s.start_sec, s.end_sec)),
                    vector: e.vector,
                })
                .collect(),
        )
    }
}

/// Deletes every object of `bucket`, then the bucket (best effort).
async fn remove_bucket(client: &aws_sdk_s3::Client, bucket: &str) {
    let keys = aws_helpers::list_keys(client, bucket, "").await;
    for key in keys {
        let _ = client.delete_object().bucket(bucket).key(key).send().await;
    }
    let _ = client.delete_bucket().bucket(bucket).send().await;
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy::default()
        .max_attempts(5)
        .initial_backoff(Duration::from_millis(5))
        .max_backoff(Duration::from_millis(50))
        .deadline(Some(Duration::from_secs(30)))
}

/// How long the Serverless-mode k-NN server takes to make writes searchable (the service:
/// about 60 s).
const SERVERLESS_VISIBILITY: Duration = Duration::from_millis(300);

fn opensearch_builder(url: &str, hint: &str) -> crossmodal::opensearch::OpenSearchConfigBuilder {
    OpenSearchConfig::builder(url)
        .index(aws_helpers::unique_bucket(hint))
        .retry(fast_retry())
        .request_timeout(Duration::from_secs(20))
}

fn opensearch_config(url: &str, hint: &str) -> OpenSearchConfig {
    opensearch_builder(url, hint)
        .build()
        .expect("OpenSearch configuration")
}

/// Static test credentials in us-east-1, as the SigV4 signer loads them.
async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_helpers::credentials())
        .load()
        .await
}

/// The production composition and the servers behind it.
struct FullStack {
    engine: Engine,
    bedrock: TestServer,
    knn: KnnServer,
    s3: aws_sdk_s3::Client,
    bucket: String,
    index: Arc<OpenSearchIndex>,
    os_catalog: Option<Arc<OpenSearchCatalog>>,
}

impl FullStack {
    async fn start(
        endpoint: &str,
        demo: Arc<CaptionHashEmbedder>,
        deployment: Deployment,
    ) -> FullStack {
        let s3 = aws_helpers::s3_client(endpoint);
        let bucket = aws_helpers::create_bucket(&s3, "fullstack").await;

        // Marengo 3.0 on the Bedrock-protocol test server, reading media from S3 in place and
        // writing job output to the same bucket.
        let bedrock = TestServer::start(Some(s3.clone())).await;
        bedrock.set_vector_source(Arc::new(DemoVectors(demo)));
        let config = fast_config(MarengoModel::V3_0)
            .output_s3_uri(format!("s3://{bucket}/marengo-output/"))
            .build()
            .expect("Marengo configuration");
        let provider = MarengoProvider::new(
            aws_helpers::bedrock_client(&bedrock.url),
            s3.clone(),
            config,
        )
        .expect("provider");
        let provider: Arc<dyn EmbeddingProvider> = Arc::new(provider);

        // Originals in S3.
        let store = S3MediaStore::new(
            s3.clone(),
            S3StoreConfig::new(&bucket)
                .with_prefix("originals/")
                .with_endpoint(endpoint)
                .with_path_style(true)
                .with_max_attempts(8),
        )
        .expect("S3 store");

        // Vectors in OpenSearch (the k-NN test server), signed as the service wants.
        let (knn, service) = match deployment {
            Deployment::Serverless => (
                KnnServer::start_serverless(SERVERLESS_VISIBILITY).await,
                AwsService::Serverless,
            ),
            _ => (KnnServer::start().await, AwsService::OpenSearchService),
        };
        let index_config = opensearch_builder(&knn.url(), "fullstack")
            .sigv4_with_config(service, sdk_config().await)
            .visibility_timeout(Duration::from_secs(30))
            .build()
            .expect("OpenSearch configuration");
        assert_eq!(index_config.deployment(), deployment);
        let index = Arc::new(
            OpenSearchIndex::connect(index_config.clone(), IndexSpec::for_model(provider.model()))
                .await
                .expect("OpenSearch index"),
        );

        // The catalog: on Serverless in the same collection; on a domain in OpenSearch on
        // osmem-server when it runs, SQLite otherwise.
        let osmem = std::env::var(OSMEM_VAR)
            .ok()
            .map(|v| v.trim().trim_end_matches('/').to_string())
            .filter(|v| !v.is_empty());
        let (catalog, os_catalog): (Arc<dyn AssetCatalog>, _) = match (deployment, osmem) {
            (Deployment::Serverless, _) => {
                let catalog = Arc::new(
                    OpenSearchCatalog::connect(index_config)
                        .await
                        .expect("OpenSearch catalog on the Serverless-mode k-NN server"),
                );
                eprintln!(
                    "full stack (serverless): catalog = OpenSearchCatalog in the collection \
                     (index {}; osmem-server cannot act as Serverless)",
                    catalog.index_name()
                );
                (catalog.clone(), Some(catalog))
            }
            (_, Some(url)) => {
                let catalog = Arc::new(
                    OpenSearchCatalog::connect(opensearch_config(&url, "fullstack"))
                        .await
                        .expect("OpenSearch catalog on osmem-server"),
                );
                eprintln!(
                    "full stack: catalog = OpenSearchCatalog on osmem-server ({url}, index {})",
                    catalog.index_name()
                );
                (catalog.clone(), Some(catalog))
            }
            (_, None) => {
                assert!(
                    !crossmodal_testkit::skip::under_ci(),
                    "{OSMEM_VAR} is not set under CI=true: scripts/test.sh starts osmem-server"
                );
                eprintln!(
                    "full stack: catalog = SqliteCatalog in memory ({OSMEM_VAR} is not set; the \
                     k-NN test server implements only the index's API)"
                );
                (Arc::new(SqliteCatalog::open_in_memory().unwrap()), None)
            }
        };

        let engine = Engine::from_parts(
            EngineParts::new(provider, Arc::new(store), index.clone(), catalog)
                // Keywords (BM25) in the same OpenSearch index as the vectors.
                .keyword_index(index.clone())
                .cache(Arc::new(MemoryEmbeddingCache::new(None)))
                .ingest_config(IngestConfig::default().concurrency(4)),
        )
        .expect("full-stack engine");
        FullStack {
            engine,
            bedrock,
            knn,
            s3,
            bucket,
            index,
            os_catalog,
        }
    }

    async fn cleanup(self) {
        let _ = self.index.delete_index().await;
        if let Some(catalog) = &self.os_catalog {
            let _ = catalog.delete_index().await;
        }
        remove_bucket(&self.s3, &self.bucket).await;
    }
}

/// Ingests `files`, asserting every one is indexed; returns the time taken.
async fn ingest_all(engine: &Engine, files: &[std::path::PathBuf], stack: &str) -> Duration {
    let started = Instant::now();
    let items: Vec<IngestItem> = files.iter().map(IngestItem::file).collect();
    let report = engine.ingest_batch(items, |_, _| {}).await;
    let failures: Vec<String> = report
        .items
        .iter()
        .filter_map(|i| i.result.as_ref().err().map(|e| format!("{}: {e}", i.label)))
        .collect();
    assert!(
        failures.is_empty(),
        "{stack}: ingest failures: {failures:#?}"
    );
    assert_eq!(
        report.progress.indexed,
        files.len(),
        "{stack}: {:?}",
        report.progress
    );
    started.elapsed()
}

fn describe(results: &SearchResults) -> String {
    results
        .hits
        .iter()
        .map(|h| {
            format!(
                "{:.6}/{:.6} {} [{}{}]",
                h.score,
                h.cosine,
                h.display_name.as_deref().unwrap_or("?"),
                h.space,
                h.best_segment.map(|s| format!(" {s}")).unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The full stack's answer must match the embedded default's: the same top assets in the same
/// order, scores within [`EPS`], the same matched space and clip; and every hit lives in S3.
fn assert_same(title: &str, local: &SearchResults, full: &SearchResults, bucket: &str) {
    eprintln!(
        "{title}\n  embedded:   {}\n  full stack: {}",
        describe(local),
        describe(full)
    );
    assert!(
        !local.hits.is_empty(),
        "{title}: the embedded default found nothing"
    );
    assert_eq!(
        local.hits.len(),
        full.hits.len(),
        "{title}: different numbers of hits"
    );
    assert_eq!(
        local.missing_spaces(),
        full.missing_spaces(),
        "{title}: different skipped routes"
    );
    for (rank, (l, f)) in local.hits.iter().zip(&full.hits).take(TOP).enumerate() {
        assert_eq!(
            l.display_name,
            f.display_name,
            "{title}: rank {} differs",
            rank + 1
        );
        assert!(
            (l.score - f.score).abs() <= EPS && (l.cosine - f.cosine).abs() <= EPS,
            "{title}: rank {} scores differ: {}/{} vs {}/{}",
            rank + 1,
            l.score,
            l.cosine,
            f.score,
            f.cosine
        );
        assert_eq!(l.space, f.space, "{title}: rank {} space", rank + 1);
        match (l.best_segment, f.best_segment) {
            (None, None) => {}
            (Some(a), Some(b)) => assert!(
                (a.start_sec - b.start_sec).abs() < 1e-6 && (a.end_sec - b.end_sec).abs() < 1e-6,
                "{title}: rank {} clip {a} vs {b}",
                rank + 1
            ),
            (a, b) => panic!("{title}: rank {} clip {a:?} vs {b:?}", rank + 1),
        }
        assert_eq!(l.kind(), f.kind());
    }
    for h in &full.hits {
        let uri = h
            .uri()
            .unwrap_or_else(|| panic!("{title}: a full-stack hit without a URI"));
        assert_eq!(uri.scheme(), "s3", "{title}: {uri}");
        assert_eq!(uri.host_str(), Some(bucket), "{title}: {uri}");
    }
    for h in &local.hits {
        assert_eq!(h.uri().map(|u| u.scheme()), Some("file"), "{title}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_stack_on_opensearch_serverless_answers_like_the_embedded_default() {
    let test = "full_stack_on_opensearch_serverless_answers_like_the_embedded_default";
    let Some(endpoint) = s3_endpoint(test) else {
        return;
    };
    full_stack_run(&endpoint, Deployment::Serverless).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_stack_on_an_opensearch_service_domain_answers_like_the_embedded_default() {
    let test = "full_stack_on_an_opensearch_service_domain_answers_like_the_embedded_default";
    let Some(endpoint) = s3_endpoint(test) else {
        return;
    };
    full_stack_run(&endpoint, Deployment::Cluster).await;
}

/// Ingests the quickstart library into the embedded default and into the production
/// composition on `deployment`, and checks both answer the quickstart's queries alike.
async fn full_stack_run(endpoint: &str, deployment: Deployment) {
    let dir = tempfile::tempdir().unwrap();
    let samples_dir = dir.path().join("samples");
    let files = samples::generate(&samples_dir).expect("generate the sample library");
    let have_videos = samples_dir.join("castle_siege.mp4").exists();
    if !have_videos {
        assert!(
            !crossmodal_testkit::skip::under_ci(),
            "ffmpeg is missing under CI=true: the video samples were not generated"
        );
        eprintln!("NOTE: ffmpeg not found: the video queries are skipped");
    }
    let mut demo = CaptionHashEmbedder::new();
    demo.add_dir(&samples_dir).unwrap();
    let demo = Arc::new(demo);

    let local = Engine::open_local(dir.path().join("embedded"), demo.clone())
        .await
        .expect("embedded default");
    let full = FullStack::start(endpoint, demo, deployment).await;

    let local_secs = ingest_all(&local, &files, "embedded default").await;
    let full_secs = ingest_all(&full.engine, &files, "full stack").await;
    eprintln!(
        "ingested {} files: embedded default {local_secs:.2?}, full stack ({deployment}) \
         {full_secs:.2?}",
        files.len()
    );
    // The catalog's last writes (the `Indexed` marks) are searchable once the service makes
    // them so: on Serverless that takes a while, and `flush` waits for it.
    if let Some(catalog) = &full.os_catalog {
        catalog.flush().await.expect("catalog flush");
    }

    // What the provider sent: every media file read in place from the store's bucket, each
    // embedded once (queries by known bytes come from the cache).
    let media_files = files
        .iter()
        .filter(|f| {
            let bytes = std::fs::read(f).unwrap();
            validate_media(&bytes, None, &MediaLimits::default())
                .unwrap()
                .probe
                .format
                .kind()
                != MediaKind::Image
        })
        .count();
    let images = files.len() - media_files;
    let async_bodies = full.bedrock.bodies(Op::StartAsyncInvoke);
    assert_eq!(
        async_bodies.len(),
        media_files,
        "one job per video and audio file"
    );
    let image_bodies: Vec<_> = full
        .bedrock
        .bodies(Op::InvokeModel)
        .into_iter()
        .filter(|b| b["inputType"] == "image")
        .collect();
    assert_eq!(image_bodies.len(), images, "one InvokeModel per image");
    for body in async_bodies.iter().chain(&image_bodies) {
        let kind = body["inputType"].as_str().unwrap();
        let uri = body[kind]["mediaSource"]["s3Location"]["uri"]
            .as_str()
            .unwrap_or_else(|| panic!("media not read from S3 in place: {body}"));
        assert!(
            uri.starts_with(&format!("s3://{}/originals/", full.bucket)),
            "{uri}"
        );
    }
    let outputs = aws_helpers::list_keys(&full.s3, &full.bucket, "marengo-output/").await;
    assert_eq!(
        outputs
            .iter()
            .filter(|k| k.ends_with("/output.json"))
            .count(),
        media_files,
        "{outputs:?}"
    );

    // The quickstart's queries, on both stacks.
    let sample = |name: &str| std::fs::read(samples_dir.join(name)).unwrap();
    let mut queries: Vec<(String, Query)> = vec![
        (
            "text: knights storming a castle".into(),
            Query::text("knights storming a castle").k(5),
        ),
        (
            "text (audio mode): engine roar".into(),
            Query::text("engine roar").mode(SearchMode::Audio).k(5),
        ),
        (
            "image: castle_at_dusk.png".into(),
            Query::media(sample("castle_at_dusk.png")).k(5),
        ),
        (
            "audio: war_drums.wav".into(),
            Query::media(sample("war_drums.wav")).k(5),
        ),
    ];
    if have_videos {
        let video = sample("castle_siege.mp4");
        for mode in [SearchMode::Visual, SearchMode::Semantic, SearchMode::Audio] {
            queries.push((
                format!("video ({mode} mode): castle_siege.mp4"),
                Query::media(video.clone()).mode(mode).k(5),
            ));
        }
        queries.push((
            "text (transcription mode): charge the gates".into(),
            Query::text("charge the gates")
                .mode(SearchMode::Transcription)
                .k(5),
        ));
    }
    let jobs_before = full.bedrock.calls(Op::StartAsyncInvoke);
    for (title, query) in &queries {
        let l = local
            .search(query)
            .await
            .unwrap_or_else(|e| panic!("{title}: {e}"));
        let f = full
            .engine
            .search(query)
            .await
            .unwrap_or_else(|e| panic!("{title}: {e}"));
        assert_same(title, &l, &f, &full.bucket);
    }
    assert_eq!(
        full.bedrock.calls(Op::StartAsyncInvoke),
        jobs_before,
        "queries by known media must come from the embedding cache"
    );

    // Sanity of the comparison itself: the top hits are the ones the captions say.
    let top = |r: SearchResults| r.hits[0].display_name.clone().unwrap();
    let castle = full
        .engine
        .search(&Query::text("knights storming a castle").k(5))
        .await
        .unwrap();
    let expected = if have_videos {
        "castle_siege.mp4"
    } else {
        "castle_at_dusk.png"
    };
    assert_eq!(top(castle), expected);
    let engine_roar = full
        .engine
        .search(&Query::text("engine roar").mode(SearchMode::Audio).k(5))
        .await
        .unwrap();
    assert_eq!(top(engine_roar), "engine_roar.wav");

    // Keywords with vectors: the file named `castle_at_dusk.png` (and `castle_siege.mp4`) is
    // found by its name's words on both stacks, the match marked on the name.
    let keyword_query = Query::text("castle dusk").keywords(true).k(5);
    for (stack, results) in [
        (
            "embedded default",
            local.search(&keyword_query).await.unwrap(),
        ),
        (
            "full stack",
            full.engine.search(&keyword_query).await.unwrap(),
        ),
    ] {
        let by_name: Vec<&str> = results
            .hits
            .iter()
            .filter(|h| {
                h.keywords
                    .as_ref()
                    .is_some_and(|k| k.matches.iter().any(|m| m.field == "name"))
            })
            .filter_map(|h| h.display_name.as_deref())
            .collect();
        assert!(
            by_name.contains(&"castle_at_dusk.png"),
            "{stack}: {by_name:?}"
        );
        if have_videos {
            assert!(
                by_name.contains(&"castle_siege.mp4"),
                "{stack}: {by_name:?}"
            );
        }
        let best = results
            .hits
            .iter()
            .find(|h| h.keywords.as_ref().is_some_and(|k| k.rank == 0))
            .unwrap();
        assert_eq!(
            best.display_name.as_deref(),
            Some("castle_at_dusk.png"),
            "{stack}: both words of the query are in its name"
        );
    }

    // The status table agrees.
    let (lc, fc) = (
        local.counts().await.unwrap(),
        full.engine.counts().await.unwrap(),
    );
    assert_eq!(lc, fc);
    assert_eq!(fc.indexed as usize, files.len());
    let stats = full.engine.index_stats().await.unwrap();
    assert_eq!(
        stats.vectors(),
        local.index_stats().await.unwrap().vectors(),
        "the same number of vectors in both indexes"
    );

    full.bedrock.assert_no_violations();
    full.knn.assert_clean();
    full.knn.assert_no_serverless_refusals();
    if deployment == Deployment::Serverless {
        let requests = full.knn.requests();
        assert!(
            requests.iter().all(|r| r.param("refresh").is_none()
                && !r.path.ends_with("/_refresh")
                && !r.path.ends_with("/_delete_by_query")),
            "a request Serverless refuses"
        );
        assert!(
            requests
                .iter()
                .any(|r| r.path.ends_with("/_bulk") && r.body.contains(r#"{"index":{}}"#)),
            "the documents were written without ids"
        );
    }
    assert!(
        full.knn.validates() || !crossmodal_testkit::skip::under_ci(),
        "the k-NN test server did not validate requests against the OpenSearch specification"
    );
    full.cleanup().await;
}
