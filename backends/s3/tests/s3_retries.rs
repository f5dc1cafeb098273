//! Retries counted once, end to end, and ranged reads, against a failing fake S3 endpoint on
//! loopback that counts what it receives (no S3-compatible server needed).
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Response, StatusCode, Uri};
use crossmodal_core::{
    CachedEmbedder, Embedding, EmbeddingProvider, ErrorKind, FlatIndex, IndexSpec, IngestConfig,
    Ingestor, MediaInput, MediaKey, MediaStore, ModelInfo, Result, RetryPolicy, SqliteCatalog,
};
use crossmodal_s3::aws_sdk_s3::config::retry::RetryConfig;
use crossmodal_s3::aws_sdk_s3::{self, Client};
use crossmodal_s3::{S3MediaStore, S3StoreConfig};

/// What the fake endpoint saw.
#[derive(Default)]
struct Seen {
    puts: AtomicUsize,
    heads: AtomicUsize,
    ranges: std::sync::Mutex<Vec<String>>,
}

/// The body of every object the fake serves.
fn object_body() -> Vec<u8> {
    (0..100u8).collect()
}

async fn fake_s3(seen: Arc<Seen>, method: Method, uri: Uri, headers: HeaderMap) -> Response<Body> {
    let path: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    let is_bucket = path.len() == 1;
    let reply = |status: StatusCode, body: Vec<u8>| {
        Response::builder()
            .status(status)
            .header("x-amz-request-id", "FAKE")
            .body(Body::from(body))
            .unwrap()
    };
    match method {
        Method::HEAD if is_bucket => reply(StatusCode::OK, Vec::new()),
        Method::HEAD => {
            seen.heads.fetch_add(1, Ordering::SeqCst);
            reply(StatusCode::NOT_FOUND, Vec::new())
        }
        Method::PUT => {
            seen.puts.fetch_add(1, Ordering::SeqCst);
            reply(
                StatusCode::SERVICE_UNAVAILABLE,
                b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>\
                  <Message>Please reduce your request rate.</Message><RequestId>FAKE</RequestId>\
                  </Error>"
                    .to_vec(),
            )
        }
        Method::GET => {
            let range = headers
                .get("range")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            seen.ranges.lock().unwrap().push(range.clone());
            let body = object_body();
            let Some((a, b)) = range
                .strip_prefix("bytes=")
                .and_then(|r| r.split_once('-'))
                .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)))
            else {
                return reply(StatusCode::OK, body);
            };
            if a >= body.len() {
                return reply(StatusCode::RANGE_NOT_SATISFIABLE, Vec::new());
            }
            let b = b.min(body.len() - 1);
            Response::builder()
                .status(StatusCode::PARTIAL_CONTENT)
                .header("content-range", format!("bytes {a}-{b}/{}", body.len()))
                .header("x-amz-request-id", "FAKE")
                .body(Body::from(body[a..=b].to_vec()))
                .unwrap()
        }
        _ => reply(StatusCode::NOT_IMPLEMENTED, Vec::new()),
    }
}

/// Starts the fake on a free loopback port; returns its URL and what it saw.
async fn start_fake() -> (String, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let state = seen.clone();
    let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap| {
        let seen = state.clone();
        async move { fake_s3(seen, method, uri, headers).await }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

/// A client for the fake: the SDK's standard retry with millisecond backoff.
fn client(endpoint: &str) -> Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .credentials_provider(crossmodal_testkit::aws::credentials())
        .endpoint_url(endpoint)
        .force_path_style(true)
        .retry_config(RetryConfig::standard().with_initial_backoff(Duration::from_millis(2)))
        .build();
    Client::from_conf(config)
}

/// A provider the test never reaches (the store fails first).
struct Unreached(ModelInfo);

#[async_trait]
impl EmbeddingProvider for Unreached {
    fn model(&self) -> &ModelInfo {
        &self.0
    }
    async fn embed_text(&self, _: &str) -> Result<Vec<f32>> {
        panic!("no text is embedded")
    }
    async fn embed_media(&self, _: &MediaInput) -> Result<Vec<Embedding>> {
        panic!("the store failed, nothing is embedded")
    }
}

#[tokio::test]
async fn an_exhausted_s3_retry_is_attempted_max_attempts_times_behind_the_ingestor() {
    let (endpoint, seen) = start_fake().await;
    let store = S3MediaStore::new(
        client(&endpoint),
        S3StoreConfig::new("media").with_max_attempts(3),
    )
    .unwrap();
    let model = ModelInfo {
        id: "test".into(),
        dimension: 4,
        ..ModelInfo::marengo_3_0()
    };
    let provider: Arc<dyn EmbeddingProvider> = Arc::new(Unreached(model.clone()));
    // The Ingestor retries store calls too (4 attempts): it must not start the SDK's over.
    let retry = RetryPolicy::default()
        .max_attempts(4)
        .initial_backoff(Duration::from_millis(1))
        .max_backoff(Duration::from_millis(2));
    let ingestor = Ingestor::new(
        CachedEmbedder::new(provider, None, RetryPolicy::none()),
        Arc::new(store),
        Arc::new(FlatIndex::new(IndexSpec::for_model(&model))),
        Arc::new(SqliteCatalog::open_in_memory().unwrap()),
        IngestConfig::default().retry(retry),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("photo.png");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/media/image.png"
        ),
        &path,
    )
    .unwrap();

    let err = ingestor.ingest_file(&path).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited, "{err}");
    assert_eq!(err.context_value("stage"), Some("store"), "{err}");
    assert!(err.is_persistent(), "{err}");
    assert_eq!(
        seen.puts.load(Ordering::SeqCst),
        3,
        "PutObject is attempted the SDK's 3 times in all, not 3 per Ingestor attempt"
    );
    assert_eq!(seen.heads.load(Ordering::SeqCst), 1, "one existence check");
}

#[tokio::test]
async fn get_range_asks_the_server_for_the_range_only() {
    let (endpoint, seen) = start_fake().await;
    let store = S3MediaStore::new(client(&endpoint), S3StoreConfig::new("media")).unwrap();
    let key = MediaKey::parse("ab/clip.mp4").unwrap();
    let part = store.get_range(&key, 10..20).await.unwrap();
    assert_eq!(part.as_ref(), &object_body()[10..20]);
    // The end is clamped to the object; a range past the end is refused.
    let tail = store.get_range(&key, 95..1000).await.unwrap();
    assert_eq!(tail.as_ref(), &object_body()[95..]);
    let ranges = seen.ranges.lock().unwrap().clone();
    assert_eq!(ranges, vec!["bytes=10-19", "bytes=95-999"]);
    // The fake answers HEAD of an object 404: past the end of a missing object is NotFound.
    let err = store.get_range(&key, 200..300).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    #[allow(clippy::reversed_empty_ranges)] // the point: a reversed range is refused
    let err = store.get_range(&key, 5..1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(store.region().as_deref(), Some("us-east-1"));
}
