//! A Bedrock Runtime protocol test server on loopback (axum).
//!
//! It implements, as the AWS API model (`service-2.json`, protocol rest-json) defines them:
//!
//! - `InvokeModel`: `POST /model/{modelId}/invoke`, the model's JSON as the payload, the
//!   response's `Content-Type` header;
//! - `StartAsyncInvoke`: `POST /async-invoke` with `modelId`, `modelInput`, `outputDataConfig`
//!   (a union with one member, `s3OutputDataConfig`), `clientRequestToken` (idempotent: the same
//!   token returns the same invocation), `tags` -> `{"invocationArn"}`;
//! - `GetAsyncInvoke`: `GET /async-invoke/{invocationArn}` -> `invocationArn`, `modelArn`,
//!   `clientRequestToken`, `status`, `failureMessage`, `submitTime`, `lastModifiedTime`, `endTime`
//!   (ISO 8601), `outputDataConfig` with the invocation id appended to `s3Uri`;
//! - errors: the HTTP status of the error shape, an `x-amzn-ErrorType` header and a
//!   `{"message": ...}` body.
//!
//! Model ids follow the user guide: 2.7 `InvokeModel` takes inference profiles only, 3.0 takes
//! the base id or a profile; `StartAsyncInvoke` takes base ids. Marengo bodies are checked with
//! [`schema`](crate::bedrock_schema); a violation is answered with a `ValidationException` *and*
//! recorded, so tests can assert there were none. Completed jobs write `output.json` to the
//! S3-compatible server under `<s3Uri>/<invocation id>/`, reading S3 media from it too.
//!
//! Vectors are deterministic: a SHA-256 stream seeded by the text, or by the media bytes' hash
//! plus option and segment, with the model's dimension. A test can supply its own instead with a
//! [`VectorSource`] ([`TestServer::set_vector_source`]), e.g. the vectors another provider
//! computes for the same text and content, so a stack on this server can be compared with a
//! stack on that provider. Faults can be injected: errors for the next N calls of an operation,
//! failed jobs, slow or never-ending jobs, unknown statuses, malformed output.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use aws_smithy_types::date_time::Format;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::bedrock_schema::{self as schema, Parsed, Seg, Src, Version};

/// The account the server pretends to run in.
pub const ACCOUNT: &str = "123456789012";
/// The region the server pretends to run in.
pub const REGION: &str = "us-east-1";
/// Bedrock's request payload limit (`Body` shape `max`).
const MAX_BODY: usize = 25_000_000;

/// The three operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    InvokeModel,
    StartAsyncInvoke,
    GetAsyncInvoke,
}

/// An error shape of the API model: name and HTTP status.
pub fn error_status(error_type: &str) -> u16 {
    match error_type {
        "ThrottlingException" | "ModelNotReadyException" => 429,
        "ValidationException" | "ServiceQuotaExceededException" | "ConflictException" => 400,
        "ServiceUnavailableException" => 503,
        "AccessDeniedException" => 403,
        "InternalServerException" => 500,
        "ResourceNotFoundException" => 404,
        "ModelErrorException" => 424,
        "ModelTimeoutException" => 408,
        other => panic!("{other} is not an error shape of Bedrock Runtime"),
    }
}

/// Which operations may raise which errors (service-2.json `errors` lists).
fn op_may_raise(op: Op, error_type: &str) -> bool {
    let list: &[&str] = match op {
        Op::InvokeModel => &[
            "AccessDeniedException",
            "ResourceNotFoundException",
            "ThrottlingException",
            "ModelTimeoutException",
            "InternalServerException",
            "ServiceUnavailableException",
            "ValidationException",
            "ServiceQuotaExceededException",
            "ModelNotReadyException",
            "ModelErrorException",
        ],
        Op::StartAsyncInvoke => &[
            "AccessDeniedException",
            "ThrottlingException",
            "ResourceNotFoundException",
            "InternalServerException",
            "ServiceUnavailableException",
            "ValidationException",
            "ServiceQuotaExceededException",
            "ConflictException",
        ],
        Op::GetAsyncInvoke => &[
            "AccessDeniedException",
            "ThrottlingException",
            "InternalServerException",
            "ValidationException",
        ],
    };
    list.contains(&error_type)
}

/// Malformed output a job can be made to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// A `NaN` literal in the first vector (what Python's `json.dumps` writes).
    NaN,
    /// The first vector one component short.
    WrongDimension,
    /// `{"data": []}`.
    EmptyData,
    /// The first item without `embedding`.
    MissingEmbedding,
    /// The first item without `startSec`.
    MissingStartSec,
    /// Not JSON at all.
    NotJson,
}

/// How jobs started from now on behave.
#[derive(Debug, Clone)]
pub struct JobBehaviour {
    /// `GetAsyncInvoke` calls answered `InProgress` before the job finishes.
    pub polls_before_done: usize,
    /// Polls answered with a status the API model does not list (before `InProgress`).
    pub unknown_status_polls: usize,
    /// `Some(message)`: the job fails with this `failureMessage`.
    pub fail: Option<String>,
    /// The job never finishes.
    pub never: bool,
    /// Write malformed output.
    pub malformed: Option<Malformed>,
}

impl Default for JobBehaviour {
    fn default() -> Self {
        JobBehaviour {
            polls_before_done: 1,
            unknown_status_polls: 0,
            fail: None,
            never: false,
            malformed: None,
        }
    }
}

/// One media vector a [`VectorSource`] supplies.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceVector {
    /// The Marengo option it belongs to (3.0: `visual`, `audio`, `transcription`; 2.7:
    /// `visual-image`, `visual-text`, `audio`); ignored for images.
    pub option: String,
    /// The clip (`startSec`, `endSec`); `None` for an image, or for a whole-asset vector of
    /// video or audio (returned only when the request asks for the `asset` scope).
    pub clip: Option<(f64, f64)>,
    /// The vector (the model's dimension).
    pub vector: Vec<f32>,
}

/// Replaces the server's hash-derived vectors; see [`TestServer::set_vector_source`]. A method
/// answering `None` leaves that request to the default vectors.
pub trait VectorSource: Send + Sync {
    /// The vector of a text query.
    fn text(&self, version: Version, text: &str) -> Option<Vec<f32>>;

    /// The vectors of media content (`input_type` `image`, `video` or `audio`), however the
    /// request carried it (inline or in S3). The server renders them as the version's output
    /// items, keeping only the options the request asked for.
    fn media(&self, version: Version, input_type: &str, bytes: &[u8]) -> Option<Vec<SourceVector>>;
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub op: Op,
    pub model_id: Option<String>,
    /// The Marengo body (`InvokeModel` payload or `modelInput`).
    pub model_input: Option<Value>,
    pub client_request_token: Option<String>,
    pub output_s3_uri: Option<String>,
    pub output_bucket_owner: Option<String>,
}

#[derive(Debug)]
struct Job {
    arn: String,
    model_id: String,
    version: Version,
    token: Option<String>,
    parsed: Parsed,
    output_uri: String,
    output_owner: Option<String>,
    behaviour: JobBehaviour,
    polls: usize,
    submit: SystemTime,
    status: &'static str,
    failure: Option<String>,
    end: Option<SystemTime>,
    finishing: bool,
}

/// Shared state of a running server.
pub struct ServerState {
    s3: Option<aws_sdk_s3::Client>,
    jobs: Mutex<HashMap<String, Job>>,
    tokens: Mutex<HashMap<String, String>>,
    faults: Mutex<Vec<(Op, usize, String, String)>>,
    behaviour: Mutex<JobBehaviour>,
    recorded: Mutex<Vec<Recorded>>,
    violations: Mutex<Vec<String>>,
    calls: Mutex<HashMap<Op, usize>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    next_id: AtomicUsize,
    vector_source: Mutex<Option<Arc<dyn VectorSource>>>,
}

/// A running server; stopped when dropped.
pub struct TestServer {
    pub url: String,
    pub state: Arc<ServerState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    /// Starts a server on 127.0.0.1:0. `s3` is the S3-compatible server's client (needed for
    /// asynchronous jobs and S3 media).
    pub async fn start(s3: Option<aws_sdk_s3::Client>) -> TestServer {
        let state = Arc::new(ServerState {
            s3,
            jobs: Mutex::default(),
            tokens: Mutex::default(),
            faults: Mutex::default(),
            behaviour: Mutex::default(),
            recorded: Mutex::default(),
            violations: Mutex::default(),
            calls: Mutex::default(),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            next_id: AtomicUsize::new(1),
            vector_source: Mutex::default(),
        });
        let app = Router::new()
            .route("/model/{model_id}/invoke", post(invoke_model))
            .route("/async-invoke", post(start_async_invoke))
            .route("/async-invoke/{invocation_arn}", get(get_async_invoke))
            .fallback(|| async {
                aws_error("ValidationException", "unknown operation (test server)")
            })
            .layer(DefaultBodyLimit::max(64 * 1024 * 1024))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind the test server");
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("test server");
        });
        TestServer {
            url: format!("http://{addr}"),
            state,
            task,
        }
    }

    /// The next `times` calls of `op` fail with `error_type` (an error shape of the model).
    pub fn inject(&self, op: Op, times: usize, error_type: &str, message: &str) {
        assert!(
            op_may_raise(op, error_type),
            "{op:?} cannot raise {error_type} according to service-2.json"
        );
        self.state.faults.lock().unwrap().push((
            op,
            times,
            error_type.to_string(),
            message.to_string(),
        ));
    }

    /// How jobs started from now on behave.
    pub fn set_jobs(&self, behaviour: JobBehaviour) {
        *self.state.behaviour.lock().unwrap() = behaviour;
    }

    /// Answers text and media with `source`'s vectors from now on (where it has them).
    pub fn set_vector_source(&self, source: Arc<dyn VectorSource>) {
        *self.state.vector_source.lock().unwrap() = Some(source);
    }

    /// Calls of `op` received (failed ones included).
    pub fn calls(&self, op: Op) -> usize {
        *self.state.calls.lock().unwrap().get(&op).unwrap_or(&0)
    }

    /// All calls received.
    pub fn total_calls(&self) -> usize {
        self.state.calls.lock().unwrap().values().sum()
    }

    /// Requests recorded so far.
    pub fn recorded(&self) -> Vec<Recorded> {
        self.state.recorded.lock().unwrap().clone()
    }

    /// The Marengo bodies received for `op`.
    pub fn bodies(&self, op: Op) -> Vec<Value> {
        self.recorded()
            .into_iter()
            .filter(|r| r.op == op)
            .filter_map(|r| r.model_input)
            .collect()
    }

    /// Protocol or schema violations seen.
    pub fn violations(&self) -> Vec<String> {
        self.state.violations.lock().unwrap().clone()
    }

    /// Panics if any request broke the protocol or the Marengo schema.
    pub fn assert_no_violations(&self) {
        let v = self.violations();
        assert!(
            v.is_empty(),
            "the test server saw malformed requests: {v:#?}"
        );
    }

    /// Most jobs in progress at once.
    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }

    /// Jobs in progress now.
    pub fn in_flight(&self) -> usize {
        self.state.in_flight.load(Ordering::SeqCst)
    }

    /// Forgets recorded calls and violations.
    pub fn reset_counters(&self) {
        self.state.calls.lock().unwrap().clear();
        self.state.recorded.lock().unwrap().clear();
        self.state.violations.lock().unwrap().clear();
    }
}

// ---------------------------------------------------------------------------------------------
// Vectors and output

/// The deterministic vector for `seed` parts.
pub fn vector(dim: usize, parts: &[&[u8]]) -> Vec<f32> {
    let mut base = Sha256::new();
    for p in parts {
        base.update((p.len() as u64).to_le_bytes());
        base.update(p);
    }
    let base = base.finalize();
    let mut out = Vec::with_capacity(dim);
    let mut counter = 0u64;
    while out.len() < dim {
        let mut h = Sha256::new();
        h.update(base);
        h.update(counter.to_le_bytes());
        counter += 1;
        for chunk in h.finalize().chunks_exact(4) {
            if out.len() == dim {
                break;
            }
            let u = u32::from_le_bytes(chunk.try_into().unwrap());
            out.push((u as f64 / u32::MAX as f64 * 2.0 - 1.0) as f32);
        }
    }
    out
}

/// The vector the server returns for a text.
pub fn text_vector(version: Version, text: &str) -> Vec<f32> {
    vector(version.dimension(), &[b"text", text.as_bytes()])
}

/// The vector the server returns for media content, option and segment.
pub fn media_vector(version: Version, bytes: &[u8], option: &str, segment: usize) -> Vec<f32> {
    media_vector_of_digest(version, &Sha256::digest(bytes), option, segment)
}

fn media_vector_of_digest(
    version: Version,
    digest: &[u8],
    option: &str,
    segment: usize,
) -> Vec<f32> {
    vector(
        version.dimension(),
        &[b"media", digest, option.as_bytes(), &segment.to_le_bytes()],
    )
}

/// Duration the server assumes for media: one second per 1000 bytes, 1..=600 s.
pub fn media_duration(bytes: &[u8]) -> f64 {
    (bytes.len() as f64 / 1000.0).clamp(1.0, 600.0)
}

/// The segments the server cuts media into.
pub fn segments(version: Version, input_type: &str, seg: Seg, duration: f64) -> Vec<(f64, f64)> {
    let step = match (version, input_type, seg) {
        (_, _, Seg::Fixed(d)) => d,
        (Version::V27, "audio", _) => {
            let n = (duration / 10.0).round().max(1.0);
            duration / n
        }
        (_, "audio", _) => 10.0,
        (_, _, Seg::Dynamic(m)) => m + 1.5,
        (Version::V27, _, Seg::Default) => 6.0,
        (Version::V30, _, Seg::Default) => 5.5,
    };
    let mut out = Vec::new();
    let mut t = 0.0;
    while t < duration - 1e-9 {
        let end = (t + step).min(duration);
        out.push((round3(t), round3(end)));
        t += step;
    }
    out
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The output items of a media request.
pub fn media_items(version: Version, parsed: &Parsed, bytes: &[u8]) -> Vec<Value> {
    let digest = Sha256::digest(bytes);
    let vec =
        |option: &str, seg: usize| json!(media_vector_of_digest(version, &digest, option, seg));
    match parsed.input_type.as_str() {
        "image" => vec![json!({ "embedding": vec("image", 0) })],
        kind => {
            let duration = media_duration(bytes);
            let segs = segments(version, kind, parsed.seg, duration);
            let mut items = Vec::new();
            for (i, (start, end)) in segs.iter().enumerate() {
                for option in &parsed.options {
                    let mut item = json!({
                        "embedding": vec(option, i),
                        "startSec": start,
                        "endSec": end,
                    });
                    match version {
                        // 2.7 names the option of video items; audio has only one.
                        Version::V27 if kind == "video" => {
                            item["embeddingOption"] = json!(option);
                        }
                        Version::V27 => {}
                        Version::V30 => {
                            item["embeddingOption"] = json!(option);
                            item["embeddingScope"] = json!("clip");
                        }
                    }
                    items.push(item);
                }
            }
            if parsed.asset_scope {
                for option in &parsed.options {
                    items.push(json!({
                        "embedding": vec(option, usize::MAX),
                        "embeddingOption": option,
                        "embeddingScope": "asset",
                        "startSec": 0.0,
                        "endSec": round3(duration),
                    }));
                }
            }
            items
        }
    }
}

/// The output items of a media request, from a [`VectorSource`]'s vectors: the same shapes as
/// [`media_items`].
pub fn source_items(version: Version, parsed: &Parsed, vectors: &[SourceVector]) -> Vec<Value> {
    if parsed.input_type == "image" {
        return vectors
            .iter()
            .take(1)
            .map(|v| json!({ "embedding": v.vector }))
            .collect();
    }
    let kind = parsed.input_type.as_str();
    let asked = |v: &&SourceVector| {
        // 2.7 audio takes no option and yields `audio` only.
        parsed.options.contains(&v.option)
            || (version == Version::V27 && kind == "audio" && v.option == "audio")
    };
    let duration = vectors
        .iter()
        .filter_map(|v| v.clip.map(|c| c.1))
        .fold(0.0, f64::max);
    let mut items = Vec::new();
    for v in vectors.iter().filter(asked) {
        let mut item = json!({ "embedding": v.vector });
        match v.clip {
            Some((start, end)) => {
                item["startSec"] = json!(start);
                item["endSec"] = json!(end);
                match version {
                    Version::V27 if kind == "video" => item["embeddingOption"] = json!(v.option),
                    Version::V27 => {}
                    Version::V30 => {
                        item["embeddingOption"] = json!(v.option);
                        item["embeddingScope"] = json!("clip");
                    }
                }
            }
            None if parsed.asset_scope => {
                item["embeddingOption"] = json!(v.option);
                item["embeddingScope"] = json!("asset");
                item["startSec"] = json!(0.0);
                item["endSec"] = json!(duration);
            }
            None => continue,
        }
        items.push(item);
    }
    items
}

fn render_output(items: Vec<Value>, malformed: Option<Malformed>) -> Vec<u8> {
    let mut items = items;
    match malformed {
        None => {}
        Some(Malformed::EmptyData) => items.clear(),
        Some(Malformed::NotJson) => return b"this is not json {".to_vec(),
        Some(Malformed::WrongDimension) => {
            items[0]["embedding"].as_array_mut().unwrap().pop();
        }
        Some(Malformed::MissingEmbedding) => {
            items[0].as_object_mut().unwrap().remove("embedding");
        }
        Some(Malformed::MissingStartSec) => {
            items[0].as_object_mut().unwrap().remove("startSec");
        }
        Some(Malformed::NaN) => {
            items[0]["embedding"][0] = json!("__NAN__");
        }
    }
    let text = json!({ "data": items }).to_string();
    text.replace("\"__NAN__\"", "NaN").into_bytes()
}

// ---------------------------------------------------------------------------------------------
// HTTP

fn aws_error(error_type: &str, message: &str) -> Response {
    let status = StatusCode::from_u16(error_status(error_type)).unwrap();
    (
        status,
        [
            ("x-amzn-ErrorType", error_type.to_string()),
            ("content-type", "application/json".to_string()),
            ("x-amzn-RequestId", request_id()),
        ],
        json!({ "message": message }).to_string(),
    )
        .into_response()
}

fn json_response(body: Value) -> Response {
    (
        StatusCode::OK,
        [
            ("content-type", "application/json".to_string()),
            ("x-amzn-RequestId", request_id()),
        ],
        body.to_string(),
    )
        .into_response()
}

fn request_id() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "00000000-0000-4000-8000-{:012x}",
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn timestamp(t: SystemTime) -> String {
    aws_smithy_types::DateTime::from(t)
        .fmt(Format::DateTime)
        .unwrap()
}

impl ServerState {
    fn count(&self, op: Op) {
        *self.calls.lock().unwrap().entry(op).or_default() += 1;
    }

    fn vector_source(&self) -> Option<Arc<dyn VectorSource>> {
        self.vector_source.lock().unwrap().clone()
    }

    /// The vector of a text: the vector source's, else the default.
    fn text_vector(&self, version: Version, text: &str) -> Vec<f32> {
        self.vector_source()
            .and_then(|s| s.text(version, text))
            .unwrap_or_else(|| text_vector(version, text))
    }

    /// The output items of media: from the vector source's vectors, else the default ones.
    fn media_items(&self, version: Version, parsed: &Parsed, bytes: &[u8]) -> Vec<Value> {
        match self
            .vector_source()
            .and_then(|s| s.media(version, &parsed.input_type, bytes))
        {
            Some(vectors) => source_items(version, parsed, &vectors),
            None => media_items(version, parsed, bytes),
        }
    }

    fn violation(&self, op: Op, what: String) -> Response {
        self.violations
            .lock()
            .unwrap()
            .push(format!("{op:?}: {what}"));
        aws_error("ValidationException", &what)
    }

    /// An injected fault for this call, if any.
    fn fault(&self, op: Op) -> Option<Response> {
        let mut faults = self.faults.lock().unwrap();
        let f = faults.iter_mut().find(|f| f.0 == op && f.1 > 0)?;
        f.1 -= 1;
        Some(aws_error(&f.2, &f.3))
    }

    /// Checks the SigV4 signature's scope (the signature itself is not verified).
    fn check_auth(&self, op: Op, headers: &HeaderMap) -> Option<Response> {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let scope = format!("/{REGION}/bedrock/aws4_request");
        if !auth.starts_with("AWS4-HMAC-SHA256 Credential=") || !auth.contains(&scope) {
            return Some(self.violation(
                op,
                format!("request not signed with SigV4 for service bedrock in {REGION}: {auth:?}"),
            ));
        }
        None
    }

    async fn read_s3(&self, uri: &str) -> Result<Vec<u8>, String> {
        let s3 = self
            .s3
            .as_ref()
            .ok_or("this test server has no S3 server to read media from")?;
        let rest = uri.strip_prefix("s3://").ok_or("not an s3:// uri")?;
        let (bucket, key) = rest.split_once('/').ok_or("no key")?;
        let out = s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| format!("Unable to access the S3 object {uri}: {e}"))?;
        let bytes = out.body.collect().await.map_err(|e| e.to_string())?;
        Ok(bytes.into_bytes().to_vec())
    }

    async fn media_bytes(&self, src: &Src) -> Result<Vec<u8>, String> {
        match src {
            Src::Base64(b) => Ok(b.clone()),
            Src::S3 { uri, owner } => {
                if let Some(o) = owner
                    && o != ACCOUNT
                {
                    return Err(format!("bucket owner {o} does not own the bucket of {uri}"));
                }
                self.read_s3(uri).await
            }
        }
    }
}

async fn invoke_model(
    State(st): State<Arc<ServerState>>,
    Path(model_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let op = Op::InvokeModel;
    st.count(op);
    if let Some(r) = st.check_auth(op, &headers) {
        return r;
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    if header("content-type") != "application/json" || header("accept") != "application/json" {
        return st.violation(
            op,
            format!(
                "InvokeModel needs Content-Type and Accept application/json, got {:?} / {:?}",
                header("content-type"),
                header("accept")
            ),
        );
    }
    let parsed_body: Option<Value> = serde_json::from_slice(&body).ok();
    st.recorded.lock().unwrap().push(Recorded {
        op,
        model_id: Some(model_id.clone()),
        model_input: parsed_body.clone(),
        client_request_token: None,
        output_s3_uri: None,
        output_bucket_owner: None,
    });
    if let Some(r) = st.fault(op) {
        return r;
    }
    if body.len() > MAX_BODY {
        return st.violation(
            op,
            format!("body of {} bytes is over {MAX_BODY}", body.len()),
        );
    }
    let Some((version, is_profile)) = Version::of_model_id(&model_id) else {
        return aws_error(
            "ValidationException",
            "The provided model identifier is invalid.",
        );
    };
    if version == Version::V27 && !is_profile {
        return st.violation(
            op,
            format!(
                "Invocation of model ID {model_id} with on-demand throughput isn't supported. \
                 Retry your request with the ID or ARN of an inference profile that contains \
                 this model."
            ),
        );
    }
    let Some(value) = parsed_body else {
        return st.violation(op, "the body is not JSON".into());
    };
    let parsed = match schema::validate(version, &value, true) {
        Ok(p) => p,
        Err(e) => return st.violation(op, format!("Malformed input request: {e}")),
    };
    let vector = match (&parsed.text, &parsed.media) {
        (Some(t), _) => json!(st.text_vector(version, t)),
        (None, Some(src)) => match st.media_bytes(src).await {
            Ok(bytes) => match st.media_items(version, &parsed, &bytes).first() {
                Some(item) => item["embedding"].clone(),
                None => return aws_error("ModelErrorException", "no embedding for this image"),
            },
            Err(e) => return aws_error("ValidationException", &e),
        },
        (None, None) => unreachable!("validated"),
    };
    json_response(json!({ "data": [ { "embedding": vector } ] }))
}

/// The checked members of a `StartAsyncInvoke` request.
struct StartEnvelope {
    model_id: String,
    input: Value,
    output_uri: String,
    output_owner: Option<String>,
    token: Option<String>,
}

fn check_start_envelope(body: &Value) -> Result<StartEnvelope, String> {
    let m = body.as_object().ok_or("the body is not a JSON object")?;
    for k in m.keys() {
        if ![
            "clientRequestToken",
            "modelId",
            "modelInput",
            "outputDataConfig",
            "tags",
        ]
        .contains(&k.as_str())
        {
            return Err(format!("unexpected member {k:?}"));
        }
    }
    let model_id = m
        .get("modelId")
        .and_then(Value::as_str)
        .ok_or("modelId (string) is required")?;
    if model_id.is_empty()
        || model_id.len() > 256
        || !model_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-/:".contains(&b))
    {
        return Err(format!(
            "modelId {model_id:?} does not match the AsyncInvokeIdentifier pattern"
        ));
    }
    let input = m.get("modelInput").ok_or("modelInput is required")?;
    if !input.is_object() {
        return Err("modelInput must be a JSON object".into());
    }
    let out = m
        .get("outputDataConfig")
        .and_then(Value::as_object)
        .ok_or("outputDataConfig (object) is required")?;
    if out.len() != 1 || !out.contains_key("s3OutputDataConfig") {
        return Err("outputDataConfig is a union: exactly one member, s3OutputDataConfig".into());
    }
    let s3 = out["s3OutputDataConfig"]
        .as_object()
        .ok_or("s3OutputDataConfig must be an object")?;
    for k in s3.keys() {
        if !["s3Uri", "kmsKeyId", "bucketOwner"].contains(&k.as_str()) {
            return Err(format!("unexpected member s3OutputDataConfig.{k}"));
        }
    }
    let uri = s3
        .get("s3Uri")
        .and_then(Value::as_str)
        .ok_or("s3OutputDataConfig.s3Uri is required")?;
    let rest = uri
        .strip_prefix("s3://")
        .ok_or("s3Uri must start with s3://")?;
    let bucket = rest.split('/').next().unwrap_or_default();
    if !(3..=63).contains(&bucket.len())
        || !bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        || uri.len() > 1024
    {
        return Err(format!("s3Uri {uri:?} does not match the S3Uri pattern"));
    }
    let owner = match s3.get("bucketOwner") {
        None => None,
        Some(Value::String(o)) if o.len() == 12 && o.bytes().all(|b| b.is_ascii_digit()) => {
            Some(o.clone())
        }
        Some(o) => return Err(format!("bucketOwner {o} is not a 12-digit account id")),
    };
    let token = match m.get("clientRequestToken") {
        None => None,
        Some(Value::String(t))
            if (1..=256).contains(&t.len()) && t.bytes().all(|b| (b'!'..=b'~').contains(&b)) =>
        {
            Some(t.clone())
        }
        Some(t) => return Err(format!("clientRequestToken {t} is not a valid token")),
    };
    if let Some(tags) = m.get("tags")
        && !tags.is_array()
    {
        return Err("tags must be a list".into());
    }
    Ok(StartEnvelope {
        model_id: model_id.to_string(),
        input: input.clone(),
        output_uri: uri.to_string(),
        output_owner: owner,
        token,
    })
}

async fn start_async_invoke(
    State(st): State<Arc<ServerState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let op = Op::StartAsyncInvoke;
    st.count(op);
    if let Some(r) = st.check_auth(op, &headers) {
        return r;
    }
    let Ok(value) = serde_json::from_slice::<Value>(&body) else {
        return st.violation(op, "the body is not JSON".into());
    };
    let envelope = check_start_envelope(&value);
    st.recorded.lock().unwrap().push(Recorded {
        op,
        model_id: value
            .get("modelId")
            .and_then(Value::as_str)
            .map(str::to_string),
        model_input: value.get("modelInput").cloned(),
        client_request_token: value
            .get("clientRequestToken")
            .and_then(Value::as_str)
            .map(str::to_string),
        output_s3_uri: value
            .pointer("/outputDataConfig/s3OutputDataConfig/s3Uri")
            .and_then(Value::as_str)
            .map(str::to_string),
        output_bucket_owner: value
            .pointer("/outputDataConfig/s3OutputDataConfig/bucketOwner")
            .and_then(Value::as_str)
            .map(str::to_string),
    });
    if let Some(r) = st.fault(op) {
        return r;
    }
    if body.len() > MAX_BODY {
        return st.violation(
            op,
            format!("body of {} bytes is over {MAX_BODY}", body.len()),
        );
    }
    let StartEnvelope {
        model_id,
        input,
        output_uri,
        output_owner,
        token,
    } = match envelope {
        Ok(e) => e,
        Err(e) => return st.violation(op, e),
    };
    if let Some(t) = &token
        && let Some(arn) = st.tokens.lock().unwrap().get(t)
    {
        return json_response(json!({ "invocationArn": arn }));
    }
    let Some((version, is_profile)) = Version::of_model_id(&model_id) else {
        return aws_error(
            "ValidationException",
            "The provided model identifier is invalid.",
        );
    };
    if is_profile {
        return st.violation(
            op,
            format!(
                "StartAsyncInvoke takes the base model id, not the inference profile {model_id}"
            ),
        );
    }
    let parsed = match schema::validate(version, &input, false) {
        Ok(p) => p,
        Err(e) => return st.violation(op, format!("Malformed input request: {e}")),
    };
    // The output bucket must exist (and, on AWS, be in the model's region).
    if let Some(s3) = &st.s3 {
        let bucket = output_uri["s3://".len()..]
            .split('/')
            .next()
            .unwrap()
            .to_string();
        if s3.head_bucket().bucket(&bucket).send().await.is_err() {
            return aws_error(
                "ValidationException",
                &format!("The output S3 bucket {bucket} does not exist or is not accessible"),
            );
        }
    } else {
        return aws_error(
            "ValidationException",
            "this test server has no S3 server for output",
        );
    }
    let n = st.next_id.fetch_add(1, Ordering::SeqCst);
    let id = format!("{:012x}", n as u64 * 0x9e37_79b9 % 0xffff_ffff_ffff);
    let arn = format!("arn:aws:bedrock:{REGION}:{ACCOUNT}:async-invoke/{id}");
    let job = Job {
        arn: arn.clone(),
        model_id,
        version,
        token: token.clone(),
        parsed,
        output_uri: format!("{}/{id}", output_uri.trim_end_matches('/')),
        output_owner,
        behaviour: st.behaviour.lock().unwrap().clone(),
        polls: 0,
        submit: SystemTime::now(),
        status: "InProgress",
        failure: None,
        end: None,
        finishing: false,
    };
    if let Some(t) = token {
        st.tokens.lock().unwrap().insert(t, arn.clone());
    }
    st.jobs.lock().unwrap().insert(arn.clone(), job);
    let now = st.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    st.max_in_flight.fetch_max(now, Ordering::SeqCst);
    json_response(json!({ "invocationArn": arn }))
}

fn valid_invocation_arn(arn: &str) -> bool {
    let Some(rest) = arn.strip_prefix("arn:aws:bedrock:") else {
        return false;
    };
    let parts: Vec<&str> = rest.splitn(3, ':').collect();
    if parts.len() != 3 {
        return false;
    }
    let (region, account, resource) = (parts[0], parts[1], parts[2]);
    let id = resource.strip_prefix("async-invoke/").unwrap_or("");
    (1..=20).contains(&region.len())
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && id.len() == 12
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

async fn get_async_invoke(
    State(st): State<Arc<ServerState>>,
    Path(arn): Path<String>,
    headers: HeaderMap,
) -> Response {
    let op = Op::GetAsyncInvoke;
    st.count(op);
    if let Some(r) = st.check_auth(op, &headers) {
        return r;
    }
    st.recorded.lock().unwrap().push(Recorded {
        op,
        model_id: None,
        model_input: None,
        client_request_token: None,
        output_s3_uri: None,
        output_bucket_owner: None,
    });
    if let Some(r) = st.fault(op) {
        return r;
    }
    if !valid_invocation_arn(&arn) {
        return st.violation(
            op,
            format!("{arn:?} does not match the InvocationArn pattern"),
        );
    }
    // Advance the job; finishing it (writing output.json) happens outside the lock.
    let finish = {
        let mut jobs = st.jobs.lock().unwrap();
        let Some(job) = jobs.get_mut(&arn) else {
            return aws_error(
                "ValidationException",
                &format!("Invocation {arn} not found"),
            );
        };
        let mut finish = None;
        if job.status == "InProgress" && !job.finishing {
            job.polls += 1;
            let b = &job.behaviour;
            if job.polls <= b.unknown_status_polls {
                let r = job_json(job, "Scheduled");
                return json_response(r);
            }
            if !b.never && job.polls > b.unknown_status_polls + b.polls_before_done {
                job.finishing = true;
                finish = Some((
                    job.parsed.clone(),
                    job.version,
                    job.output_uri.clone(),
                    b.clone(),
                ));
            }
        }
        finish
    };
    if let Some((parsed, version, output_uri, behaviour)) = finish {
        let result = finish_job(&st, &parsed, version, &output_uri, &behaviour).await;
        let mut jobs = st.jobs.lock().unwrap();
        let job = jobs.get_mut(&arn).unwrap();
        job.end = Some(SystemTime::now());
        job.finishing = false;
        match result {
            Ok(()) => job.status = "Completed",
            Err(message) => {
                job.status = "Failed";
                job.failure = Some(message);
            }
        }
        st.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
    let jobs = st.jobs.lock().unwrap();
    let job = &jobs[&arn];
    json_response(job_json(job, job.status))
}

async fn finish_job(
    st: &ServerState,
    parsed: &Parsed,
    version: Version,
    output_uri: &str,
    behaviour: &JobBehaviour,
) -> Result<(), String> {
    if let Some(msg) = &behaviour.fail {
        return Err(msg.clone());
    }
    let bytes = st
        .media_bytes(parsed.media.as_ref().expect("media job"))
        .await?;
    let items = st.media_items(version, parsed, &bytes);
    if items.is_empty() {
        return Err("the vector source has no embedding for this media".into());
    }
    let body = render_output(items, behaviour.malformed);
    let rest = &output_uri["s3://".len()..];
    let (bucket, prefix) = rest.split_once('/').unwrap();
    let s3 = st.s3.as_ref().unwrap();
    s3.put_object()
        .bucket(bucket)
        .key(format!("{prefix}/output.json"))
        .content_type("application/json")
        .body(body.into())
        .send()
        .await
        .map_err(|e| format!("could not write the output: {e}"))?;
    Ok(())
}

fn job_json(job: &Job, status: &str) -> Value {
    let mut s3 = json!({ "s3Uri": job.output_uri });
    if let Some(o) = &job.output_owner {
        s3["bucketOwner"] = json!(o);
    }
    let mut v = json!({
        "invocationArn": job.arn,
        "modelArn": format!("arn:aws:bedrock:{REGION}::foundation-model/{}", job.model_id),
        "status": status,
        "submitTime": timestamp(job.submit),
        "lastModifiedTime": timestamp(job.end.unwrap_or_else(SystemTime::now)),
        "outputDataConfig": { "s3OutputDataConfig": s3 },
    });
    if let Some(t) = &job.token {
        v["clientRequestToken"] = json!(t);
    }
    if let Some(f) = &job.failure {
        v["failureMessage"] = json!(f);
    }
    if let Some(e) = job.end {
        v["endTime"] = json!(timestamp(e));
    }
    v
}
