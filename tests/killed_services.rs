//! Killed processes and failing backends on the production composition: Marengo Embed 3.0 on
//! the Bedrock-protocol test server, originals in S3 (moto), vectors in OpenSearch (the k-NN test
//! server), the catalog in OpenSearch (osmem-server; an on-disk `SqliteCatalog` without it) and
//! an on-disk `SqliteEmbeddingCache`.
//!
//! - `kill_nine_on_s3_and_opensearch_loses_nothing`: a child process (this test binary run again,
//!   `CROSSMODAL_SERVICES_CHILD` naming its configuration) ingests a batch and is killed with
//!   `kill -9` at random points; after every kill the services must hold no vector twice, no
//!   vector of an unknown asset, and every asset the catalog calls `Indexed` with all its
//!   vectors; a last run that is not killed, then `retry_failed`, must leave every asset
//!   indexed exactly, none `Embedding` or `Pending`, every original in S3. The Bedrock and
//!   k-NN test servers live in this (the parent) process, so they outlive every child; moto
//!   and osmem are processes of their own.
//! - `s3_server_stopped_mid_batch_then_retry_completes` and
//!   `opensearch_stopped_mid_batch_then_retry_completes`: S3 (for the store and for the Bedrock
//!   test server, which reads the originals) or the k-NN server goes away mid-batch (its
//!   listener closed and every open connection cut, as when the process dies, by a loopback
//!   proxy in front of it; its data kept, as a restarted S3 keeps its objects and a restarted
//!   cluster its indexes) and comes back on the same port: the batch reports the failures,
//!   `retry_failed` completes it. (Killing moto itself and replaying its request recorder was
//!   tried: the recorder's appends from concurrent requests interleave, so the replay fails.)
//!
//! Needs `CROSSMODAL_S3_ENDPOINT` (`scripts/s3-server.sh install && eval
//! "$(scripts/s3-server.sh start)"`); skipped with a message without it, a failure under
//! `CI=true`. `CROSSMODAL_CRASH_ITERATIONS` and `CROSSMODAL_CRASH_SEED` change the kill loop.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossmodal::bedrock::{MarengoModel, MarengoProvider, PollPolicy};
use crossmodal::opensearch::{OpenSearchCatalog, OpenSearchConfig, OpenSearchIndex};
use crossmodal::s3::{S3MediaStore, S3StoreConfig};
use crossmodal::{
    AssetCatalog, AssetId, AssetQuery, AssetState, EmbeddingProvider, Engine, EngineParts,
    IndexSpec, IngestConfig, IngestItem, MediaKind, MediaLimits, RetryPolicy, SqliteCatalog,
    SqliteEmbeddingCache, validate_media,
};
use crossmodal_testkit::aws as aws_helpers;
use crossmodal_testkit::bedrock_schema::Version;
use crossmodal_testkit::bedrock_server::{ACCOUNT, SourceVector, TestServer, VectorSource};
use crossmodal_testkit::knn_server::KnnServer;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

const FILES: usize = 24;
const CHILD_VAR: &str = "CROSSMODAL_SERVICES_CHILD";
const OSMEM_VAR: &str = "CROSSMODAL_OSMEM_URL";
const DIM: usize = 512;

// ---------------------------------------------------------------------------------------------
// The batch and the vectors the Bedrock test server answers with
// ---------------------------------------------------------------------------------------------

/// WAV files of 1-3 s and small PNGs, each with distinct content.
fn make_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    (0..FILES)
        .map(|i| {
            if i % 3 == 0 {
                let p = dir.join(format!("image-{i}.png"));
                image::RgbImage::from_fn(8, 8, |x, y| {
                    image::Rgb([i as u8, x as u8 * 9, y as u8 * 7])
                })
                .save(&p)
                .unwrap();
                p
            } else {
                let p = dir.join(format!("sound-{i}.wav"));
                let spec = hound::WavSpec {
                    channels: 1,
                    sample_rate: 8000,
                    bits_per_sample: 16,
                    sample_format: hound::SampleFormat::Int,
                };
                let mut w = hound::WavWriter::create(&p, spec).unwrap();
                for s in 0..8000 * (1 + i % 3) {
                    w.write_sample(((s as f32 * (0.01 + i as f32 * 0.001)).sin() * 9000.0) as i16)
                        .unwrap();
                }
                w.finalize().unwrap();
                p
            }
        })
        .collect()
}

/// One visual vector per image, one audio clip per second of audio: an asset's vector count is
/// known from its bytes.
fn expected_vectors(kind: MediaKind, duration: Option<f64>) -> usize {
    match kind {
        MediaKind::Audio => duration.unwrap_or(1.0).ceil().max(1.0) as usize,
        _ => 1,
    }
}

fn hash_vector(bytes: &[u8], salt: u32) -> Vec<f32> {
    let digest = AssetId::from_content(&[bytes, &salt.to_le_bytes()].concat());
    let raw = digest.as_str().as_bytes();
    (0..DIM)
        .map(|i| f32::from(raw[i % raw.len()]) - 80.0 + (i as f32) * 0.01)
        .collect()
}

/// The Bedrock test server's vectors: deterministic, counted as [`expected_vectors`] says.
struct CountedVectors;

impl VectorSource for CountedVectors {
    fn text(&self, _version: Version, text: &str) -> Option<Vec<f32>> {
        Some(hash_vector(text.as_bytes(), 0))
    }

    fn media(
        &self,
        _version: Version,
        _input_type: &str,
        bytes: &[u8],
    ) -> Option<Vec<SourceVector>> {
        let valid = validate_media(bytes, None, &MediaLimits::default()).ok()?;
        let kind = valid.probe.kind();
        let n = expected_vectors(kind, valid.probe.duration_sec);
        Some(
            (0..n)
                .map(|i| SourceVector {
                    option: if kind == MediaKind::Audio {
                        "audio"
                    } else {
                        "visual"
                    }
                    .into(),
                    clip: (kind == MediaKind::Audio).then_some((i as f64, i as f64 + 1.0)),
                    vector: hash_vector(bytes, i as u32 + 1),
                })
                .collect(),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The composition
// ---------------------------------------------------------------------------------------------

/// Where the parts live; written to a file for the child.
#[derive(Clone, Debug)]
struct StackConfig {
    s3_endpoint: String,
    bucket: String,
    bedrock_url: String,
    knn_url: String,
    index: String,
    /// osmem-server's URL and the catalog index, or `None` for an on-disk SQLite catalog.
    catalog: Option<(String, String)>,
    dir: PathBuf,
}

impl StackConfig {
    fn to_json(&self) -> Value {
        json!({
            "s3_endpoint": self.s3_endpoint, "bucket": self.bucket,
            "bedrock_url": self.bedrock_url, "knn_url": self.knn_url, "index": self.index,
            "catalog": self.catalog.as_ref().map(|(u, i)| json!([u, i])),
            "dir": self.dir,
        })
    }

    fn from_json(v: &Value) -> StackConfig {
        let s = |k: &str| v[k].as_str().unwrap().to_string();
        StackConfig {
            s3_endpoint: s("s3_endpoint"),
            bucket: s("bucket"),
            bedrock_url: s("bedrock_url"),
            knn_url: s("knn_url"),
            index: s("index"),
            catalog: v["catalog"].as_array().map(|a| {
                (
                    a[0].as_str().unwrap().to_string(),
                    a[1].as_str().unwrap().to_string(),
                )
            }),
            dir: PathBuf::from(s("dir")),
        }
    }
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy::default()
        .max_attempts(3)
        .initial_backoff(Duration::from_millis(5))
        .max_backoff(Duration::from_millis(50))
        .deadline(Some(Duration::from_secs(20)))
}

fn opensearch_config(url: &str, index: &str) -> OpenSearchConfig {
    OpenSearchConfig::builder(url)
        .index(index)
        .retry(fast_retry())
        .request_timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The engine over the configured parts (what the child and the parent's checks both use).
async fn stack(cfg: &StackConfig) -> crossmodal::Result<(Engine, Arc<OpenSearchIndex>)> {
    let s3 = aws_helpers::s3_client(&cfg.s3_endpoint);
    let config = crossmodal::bedrock::MarengoConfig::builder()
        .model(MarengoModel::V3_0)
        .region("us-east-1")
        .bucket_owner(ACCOUNT)
        .output_s3_uri(format!("s3://{}/marengo-output/", cfg.bucket))
        .poll(PollPolicy {
            initial_interval: Duration::from_millis(5),
            max_interval: Duration::from_millis(20),
            multiplier: 1.5,
            timeout: Duration::from_secs(20),
        })
        .retry(fast_retry())
        .build()?;
    let provider: Arc<dyn EmbeddingProvider> = Arc::new(MarengoProvider::new(
        aws_helpers::bedrock_client(&cfg.bedrock_url),
        s3.clone(),
        config,
    )?);
    let store = S3MediaStore::new(
        s3,
        S3StoreConfig::new(&cfg.bucket)
            .with_prefix("originals/")
            .with_endpoint(&cfg.s3_endpoint)
            .with_path_style(true)
            .with_max_attempts(3),
    )?;
    let index = Arc::new(
        OpenSearchIndex::connect(
            opensearch_config(&cfg.knn_url, &cfg.index),
            IndexSpec::for_model(provider.model()),
        )
        .await?,
    );
    let catalog: Arc<dyn AssetCatalog> = match &cfg.catalog {
        Some((url, name)) => {
            Arc::new(OpenSearchCatalog::connect(opensearch_config(url, name)).await?)
        }
        None => Arc::new(SqliteCatalog::open(cfg.dir.join("catalog.db"))?),
    };
    let cache = Arc::new(SqliteEmbeddingCache::open(cfg.dir.join("cache.db"), None)?);
    let engine = Engine::from_parts(
        EngineParts::new(provider, Arc::new(store), index.clone(), catalog)
            .cache(cache)
            .ingest_config(IngestConfig::default().concurrency(3)),
    )?;
    Ok((engine, index))
}

/// The parent's servers: the Bedrock test server reading and writing S3, the k-NN server.
struct Services {
    bedrock: TestServer,
    knn: KnnServer,
    cfg: StackConfig,
    files: Vec<PathBuf>,
    _root: tempfile::TempDir,
}

async fn services(s3_endpoint: &str, hint: &str) -> Services {
    let root = tempfile::tempdir().unwrap();
    let s3 = aws_helpers::s3_client(s3_endpoint);
    let bucket = aws_helpers::create_bucket(&s3, hint).await;
    let bedrock = TestServer::start(Some(s3)).await;
    bedrock.set_vector_source(Arc::new(CountedVectors));
    let knn = KnnServer::start().await;
    knn.record_bodies(false);
    let catalog = std::env::var(OSMEM_VAR)
        .ok()
        .map(|v| v.trim().trim_end_matches('/').to_string())
        .filter(|v| !v.is_empty())
        .map(|url| (url, aws_helpers::unique_bucket(&format!("{hint}-catalog"))));
    if catalog.is_none() {
        assert!(
            !crossmodal_testkit::skip::under_ci(),
            "{OSMEM_VAR} is not set under CI=true: scripts/test.sh starts osmem-server"
        );
        eprintln!("{hint}: catalog = SqliteCatalog on disk ({OSMEM_VAR} is not set)");
    }
    let dir = root.path().join("engine");
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = StackConfig {
        s3_endpoint: s3_endpoint.to_string(),
        bucket,
        bedrock_url: bedrock.url.clone(),
        knn_url: knn.url(),
        index: aws_helpers::unique_bucket(hint),
        catalog,
        dir,
    };
    let files = make_files(&root.path().join("files"));
    Services {
        bedrock,
        knn,
        cfg,
        files,
        _root: root,
    }
}

/// Each file's asset and vector count.
fn expected(files: &[PathBuf]) -> BTreeMap<AssetId, usize> {
    files
        .iter()
        .map(|p| {
            let v =
                validate_media(&std::fs::read(p).unwrap(), None, &MediaLimits::default()).unwrap();
            (
                v.asset_id,
                expected_vectors(v.probe.kind(), v.probe.duration_sec),
            )
        })
        .collect()
}

/// What the services hold after any interruption: no vector twice or of an unknown asset,
/// every `Indexed` asset complete. With `finished`, every asset is indexed exactly and its
/// original is in S3. Returns the number of indexed assets.
async fn check(s: &Services, engine: &Engine, finished: bool) -> usize {
    let want = expected(&s.files);
    let mut docs_of_known = 0usize;
    let mut indexed = 0usize;
    let mut query = AssetQuery::new().limit(1000);
    let mut seen = Vec::new();
    loop {
        let page = engine.assets(&query).await.unwrap();
        for record in &page.assets {
            let n = s
                .knn
                .docs_where(&s.cfg.index, "asset_id", record.asset_id.as_str())
                .len();
            let w = want[&record.asset_id];
            assert!(
                n <= w,
                "asset {} has {n} vectors, at most {w} expected (a duplicate)",
                record.asset_id
            );
            docs_of_known += n;
            let state = record.status.state();
            if state == AssetState::Indexed {
                indexed += 1;
                assert_eq!(
                    n, w,
                    "an Indexed asset has all its vectors: {}",
                    record.asset_id
                );
            }
            if finished {
                assert_eq!(state, AssetState::Indexed, "{:?}", record.status);
                let media = record.media.as_ref().expect("the original is stored");
                let bytes = engine.store().get(&media.key).await.unwrap();
                assert_eq!(AssetId::from_content(&bytes), record.asset_id);
            }
            seen.push(record.asset_id.clone());
        }
        match page.next_cursor {
            Some(c) => query = query.cursor(c),
            None => break,
        }
    }
    assert_eq!(
        s.knn.doc_count(&s.cfg.index),
        docs_of_known,
        "no vector of an asset the catalog does not know"
    );
    if finished {
        assert_eq!(seen.len(), FILES, "every file is an asset");
        let counts = engine.counts().await.unwrap();
        assert_eq!(
            (counts.pending, counts.embedding, counts.failed),
            (0, 0, 0),
            "{counts:?}"
        );
        assert_eq!(docs_of_known, want.values().sum::<usize>());
    }
    indexed
}

fn s3_or_skip(test: &str) -> Option<String> {
    crossmodal_testkit::skip::required_env("CROSSMODAL_S3_ENDPOINT", test)
}

// ---------------------------------------------------------------------------------------------
// kill -9
// ---------------------------------------------------------------------------------------------

/// The child: finish what a killed run left, ingest the batch, say how far it got.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by kill_nine_on_s3_and_opensearch_loses_nothing as its child process"]
async fn services_child() {
    let Some(path) = std::env::var_os(CHILD_VAR).map(PathBuf::from) else {
        return;
    };
    let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let cfg = StackConfig::from_json(&v["stack"]);
    let files: Vec<PathBuf> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| PathBuf::from(f.as_str().unwrap()))
        .collect();
    let (engine, _) = stack(&cfg).await.unwrap();
    println!();
    println!("open");
    engine
        .retry_failed(|p, _| println!("progress {}", p.done))
        .await
        .unwrap();
    let items: Vec<IngestItem> = files.iter().map(IngestItem::file).collect();
    let report = engine
        .ingest_batch(items, |p, _| println!("progress {}", p.done))
        .await;
    assert_eq!(
        report.progress.failed,
        0,
        "{:?}",
        report.failures().collect::<Vec<_>>()
    );
    println!("done");
}

fn spawn_child(config: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "services_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_VAR, config)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_on_s3_and_opensearch_loses_nothing() {
    let test = "kill_nine_on_s3_and_opensearch_loses_nothing";
    let Some(endpoint) = s3_or_skip(test) else {
        return;
    };
    let s = services(&endpoint, "killed").await;
    let config_path = s.cfg.dir.join("child.json");
    std::fs::write(
        &config_path,
        serde_json::to_vec(&json!({"stack": s.cfg.to_json(), "files": s.files})).unwrap(),
    )
    .unwrap();
    let mut rng = StdRng::seed_from_u64(
        std::env::var("CROSSMODAL_CRASH_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(7),
    );
    let iterations: usize = std::env::var("CROSSMODAL_CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let (mut kills, mut finished) = (0, 0);
    for _ in 0..iterations {
        let mut child = spawn_child(&config_path);
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Kill after a random number of finished files (0: right after the engine opened),
        // then a few milliseconds more: kills land in S3 puts, Bedrock jobs, bulk requests,
        // catalog writes.
        let after = rng.random_range(0..FILES);
        let mut seen = 0;
        let mut done = false;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if line == "done" {
                done = true;
                break;
            }
            if line == "open" && after == 0 {
                break;
            }
            if line.starts_with("progress") {
                seen += 1;
                if seen >= after {
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..40))).await;
        if done {
            finished += 1;
        } else {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
        let (engine, _) = stack(&s.cfg).await.unwrap();
        check(&s, &engine, false).await;
    }
    // A last run that is not killed finishes the batch; retry_failed leaves nothing behind.
    let mut child = spawn_child(&config_path);
    assert!(child.wait().unwrap().success(), "the final run completes");
    let (engine, index) = stack(&s.cfg).await.unwrap();
    let retried = engine.retry_failed(|_, _| {}).await.unwrap();
    assert_eq!(retried.progress.failed, 0);
    let indexed = check(&s, &engine, true).await;
    assert_eq!(indexed, FILES);
    s.bedrock.assert_no_violations();
    s.knn.assert_clean();
    eprintln!(
        "{test}: {kills} kills survived, {finished} runs finished before their kill point, \
         {} Bedrock jobs started, 0 assets lost, 0 duplicate vectors",
        s.bedrock.jobs_created()
    );
    assert!(
        kills >= iterations / 2,
        "most runs were killed mid-batch ({kills})"
    );
    let _ = index.delete_index().await;
}

// ---------------------------------------------------------------------------------------------
// A backend stopped mid-batch
// ---------------------------------------------------------------------------------------------

/// Runs the batch, calling `outage` once `at` files are done (from inside the progress
/// callback's task, so the batch goes on while the backend is down); returns the report.
async fn batch_with_outage(
    engine: &Engine,
    files: &[PathBuf],
    at: usize,
    outage: impl FnOnce() + Send,
) -> crossmodal::BatchReport {
    let mut outage = Some(outage);
    let items: Vec<IngestItem> = files.iter().map(IngestItem::file).collect();
    engine
        .ingest_batch(items, move |p, _| {
            if p.done >= at
                && let Some(stop) = outage.take()
            {
                stop();
            }
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_server_stopped_mid_batch_then_retry_completes() {
    let test = "s3_server_stopped_mid_batch_then_retry_completes";
    let Some(endpoint) = s3_or_skip(test) else {
        return;
    };
    // S3 behind the outage proxy: the store and the Bedrock test server (which reads the
    // originals) both reach it there, so stopping it takes S3 away from both.
    let moto_addr: SocketAddr = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let outage = Arc::new(Outage::start(moto_addr).await);
    let s = services(&outage.url(), "s3-outage").await;
    let (engine, index) = stack(&s.cfg).await.unwrap();
    let stopped = Arc::new(Mutex::new(None::<Instant>));
    let (o, st) = (outage.clone(), stopped.clone());
    let report = batch_with_outage(&engine, &s.files, FILES / 3, move || {
        o.stop();
        *st.lock().unwrap() = Some(Instant::now());
    })
    .await;
    assert!(stopped.lock().unwrap().is_some(), "the server was stopped");
    let failures: Vec<String> = report
        .failures()
        .map(|(l, e)| format!("{l}: {e}"))
        .collect();
    eprintln!(
        "{test}: the batch while S3 was down: {:?}; {} failures, e.g. {:?}",
        report.progress,
        failures.len(),
        failures.first()
    );
    assert!(
        report.progress.failed > 0,
        "the batch reports the files it could not finish"
    );
    assert_eq!(
        report.progress.indexed + report.progress.failed + report.progress.duplicates,
        FILES
    );
    for (_, e) in report.failures() {
        // The files are fine: what failed is the storage (or the model, which reads from it;
        // Bedrock answers a ValidationException, `InvalidInput`, when it cannot reach an S3
        // object or bucket, as the service does).
        let message = e.to_string();
        let storage_unreachable = e.kind() == crossmodal::ErrorKind::InvalidInput
            && (message.contains("Unable to access the S3 object")
                || message.contains("does not exist or is not accessible"));
        assert!(
            storage_unreachable
                || !matches!(
                    e.kind(),
                    crossmodal::ErrorKind::InvalidInput
                        | crossmodal::ErrorKind::Corrupt
                        | crossmodal::ErrorKind::Unsupported
                ),
            "{e}"
        );
    }
    // Nothing is left in between: every asset is indexed or failed.
    let counts = engine.counts().await.unwrap();
    assert_eq!((counts.pending, counts.embedding), (0, 0), "{counts:?}");
    let down_for = stopped.lock().unwrap().map(|t| t.elapsed());
    outage.restart().await;
    eprintln!("{test}: S3 was down for {down_for:?}; back on the same port with its objects");
    let retried = engine.retry_failed(|_, _| {}).await.unwrap();
    assert_eq!(
        retried.progress.failed,
        0,
        "{:?}",
        retried.failures().collect::<Vec<_>>()
    );
    assert_eq!(check(&s, &engine, true).await, FILES);
    eprintln!(
        "{test}: retry_failed: {:?}; all {FILES} indexed, 0 lost",
        retried.progress
    );
    let _ = index.delete_index().await;
}

/// A loopback TCP forwarder that can go away (listener closed, every open connection cut) and
/// come back on the same port.
struct Outage {
    addr: SocketAddr,
    upstream: SocketAddr,
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Outage {
    async fn start(upstream: SocketAddr) -> Outage {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let o = Outage {
            addr,
            upstream,
            tasks: Arc::new(Mutex::new(Vec::new())),
        };
        o.serve(listener);
        o
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let (upstream, tasks) = (self.upstream, self.tasks.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let pipe = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().unwrap().push(pipe);
            }
        });
        self.tasks.lock().unwrap().push(accept);
    }

    /// The server is gone: no listener, every connection reset.
    fn stop(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    /// Back on the same port.
    async fn restart(&self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opensearch_stopped_mid_batch_then_retry_completes() {
    let test = "opensearch_stopped_mid_batch_then_retry_completes";
    let Some(endpoint) = s3_or_skip(test) else {
        return;
    };
    let mut s = services(&endpoint, "os-outage").await;
    let knn_addr: SocketAddr = s.knn.url().trim_start_matches("http://").parse().unwrap();
    let outage = Arc::new(Outage::start(knn_addr).await);
    s.cfg.knn_url = outage.url();
    let (engine, index) = stack(&s.cfg).await.unwrap();
    let o = outage.clone();
    let report = batch_with_outage(&engine, &s.files, FILES / 3, move || o.stop()).await;
    let failures: Vec<String> = report
        .failures()
        .map(|(l, e)| format!("{l}: {e}"))
        .collect();
    eprintln!(
        "{test}: the batch while OpenSearch was down: {:?}; {} failures, e.g. {:?}",
        report.progress,
        failures.len(),
        failures.first()
    );
    assert!(
        report.progress.failed > 0,
        "the batch reports the files it could not index"
    );
    for (_, e) in report.failures() {
        assert!(e.kind().is_temporary(), "{e}");
    }
    let counts = engine.counts().await.unwrap();
    assert_eq!((counts.pending, counts.embedding), (0, 0), "{counts:?}");
    outage.restart().await;
    let retried = engine.retry_failed(|_, _| {}).await.unwrap();
    assert_eq!(
        retried.progress.failed,
        0,
        "{:?}",
        retried.failures().collect::<Vec<_>>()
    );
    assert_eq!(check(&s, &engine, true).await, FILES);
    eprintln!(
        "{test}: retry_failed: {:?}; all {FILES} indexed, 0 lost",
        retried.progress
    );
    let _ = index.delete_index().await;
}
