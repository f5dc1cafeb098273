//! A Bedrock Runtime protocol test server on loopback (axum), as strict as the service.
//!
//! It implements, as the AWS API model (`service-2.json`, protocol rest-json) defines them, and
//! validates every request against that model ([`api_model`]; the file is found in
//! `shared/reference/`, or named by `CROSSMODAL_BEDROCK_API_MODEL`):
//!
//! - `InvokeModel`: `POST /model/{modelId}/invoke`, the model's JSON as the payload;
//! - `StartAsyncInvoke`: `POST /async-invoke` with `modelId`, `modelInput`, `outputDataConfig`
//!   (a union with one member, `s3OutputDataConfig`), `clientRequestToken` (idempotent: the same
//!   token returns the same invocation), `tags` -> `{"invocationArn"}`;
//! - `GetAsyncInvoke`: `GET /async-invoke/{invocationArn}` -> `invocationArn`, `modelArn`,
//!   `clientRequestToken`, `status`, `failureMessage`, `submitTime`, `lastModifiedTime`, `endTime`
//!   (ISO 8601), `outputDataConfig` with the invocation id appended to `s3Uri`;
//! - errors: the HTTP status of the error shape, an `x-amzn-ErrorType` header and a
//!   `{"message": ...}` body.
//!
//! It refuses what Bedrock refuses (each refusal is a `ValidationException`, HTTP 400, and is
//! recorded as a violation so tests can assert there were none):
//!
//! - a model id the region of the request cannot use ([`regions`]): the region is the SigV4
//!   signing region, as on Bedrock's regional endpoints; `us.` profiles from us-east-1 only,
//!   `eu.` from eu-west-1 only, 2.7 `InvokeModel` through profiles only
//!   (`The provided model identifier is invalid.` / `Invocation of model ID … with on-demand
//!   throughput isn't supported…`);
//! - Marengo bodies the documented schemas refuse ([`bedrock_schema`](crate::bedrock_schema)):
//!   `Malformed input request: #/audio/segmentation/method: dynamic is not a valid enum value,
//!   please reformat your input and try again.` for dynamic audio segmentation,
//!   `…/durationSec: expected type: Integer, found: Double…` for `6.0`,
//!   `…/s3Location: required key [bucketOwner] not found…` for 3.0 S3 media without an owner,
//!   2.7 `useFixedLengthSec` below `minClipSec`;
//! - input or output buckets in another region than the request's.
//!
//! S3 media that does not exist is refused with a `ValidationException` (not a violation: it is
//! a state of the world, not a malformed request). Completed jobs write `output.json` and
//! `manifest.json` to the S3-compatible server under `<s3Uri>/<invocation id>/`.
//!
//! Vectors are deterministic: a SHA-256 stream seeded by the text, or by the media bytes' hash
//! plus option and segment, with the model's dimension. A test can supply its own instead with a
//! [`VectorSource`] ([`TestServer::set_vector_source`]). Faults can be injected: errors for the
//! next N calls of an operation, failed jobs, slow or never-ending jobs, unknown statuses,
//! malformed or unusual output.

pub mod api_model;
mod handlers;
pub mod output;
pub mod regions;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use serde_json::Value;

use crate::bedrock_schema::{Parsed, Version};

pub use output::{
    media_duration, media_items, media_vector, segments, source_items, text_image_vector,
    text_vector, vector, window_segments,
};

/// The account the server pretends to run in (moto's default account, so STS on moto agrees).
pub const ACCOUNT: &str = "123456789012";
/// The region the test clients sign for by default.
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

impl Op {
    /// The operation's name in the API model.
    pub fn name(self) -> &'static str {
        match self {
            Op::InvokeModel => "InvokeModel",
            Op::StartAsyncInvoke => "StartAsyncInvoke",
            Op::GetAsyncInvoke => "GetAsyncInvoke",
        }
    }
}

/// The HTTP status of an error shape: from the API model when it is loaded, else the same
/// table written out.
pub fn error_status(error_type: &str) -> u16 {
    if let Some(status) = api_model::load().and_then(|m| m.error_status(error_type)) {
        return status;
    }
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
    if let Some(model) = api_model::load() {
        return model
            .operation_errors(op.name())
            .iter()
            .any(|e| e == error_type);
    }
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

/// Malformed or unusual output a job can be made to write.
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
    /// The first item only, as `{"data": {...}}` with options and scope as lists (the shape the
    /// newest AWS page prints).
    DataAsObject,
    /// Two more items: a `fused` one and one of a space nobody asked for.
    ExtraItems,
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
    /// The job never finishes (until [`TestServer::complete_jobs`]).
    pub never: bool,
    /// Write malformed or unusual output.
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

    /// The vector of a composed text + image query (3.0 `text_image`).
    fn text_image(&self, version: Version, text: &str, image: &[u8]) -> Option<Vec<f32>> {
        let _ = (version, text, image);
        None
    }
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub op: Op,
    /// The SigV4 signing region of the request.
    pub region: Option<String>,
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
    region: String,
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

/// A fault to inject: operation, remaining count, error shape, message.
type Fault = (Op, usize, String, String);

/// Shared state of a running server.
pub struct ServerState {
    s3: Option<aws_sdk_s3::Client>,
    model: Option<Arc<api_model::ApiModel>>,
    jobs: Mutex<HashMap<String, Job>>,
    tokens: Mutex<HashMap<String, String>>,
    faults: Mutex<Vec<Fault>>,
    behaviour: Mutex<JobBehaviour>,
    recorded: Mutex<Vec<Recorded>>,
    violations: Mutex<Vec<String>>,
    calls: Mutex<HashMap<Op, usize>>,
    jobs_created: AtomicUsize,
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
            model: api_model::load(),
            jobs: Mutex::default(),
            tokens: Mutex::default(),
            faults: Mutex::default(),
            behaviour: Mutex::default(),
            recorded: Mutex::default(),
            violations: Mutex::default(),
            calls: Mutex::default(),
            jobs_created: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            next_id: AtomicUsize::new(1),
            vector_source: Mutex::default(),
        });
        let app = Router::new()
            .route("/model/{model_id}/invoke", post(handlers::invoke_model))
            .route("/async-invoke", post(handlers::start_async_invoke))
            .route(
                "/async-invoke/{invocation_arn}",
                get(handlers::get_async_invoke),
            )
            .fallback(|| async {
                handlers::aws_error("ValidationException", "unknown operation (test server)")
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

    /// Finishes every job still in progress now, as a job that outlived a client's poll
    /// time-out finishes later on Bedrock: its output is written (or it fails, when its
    /// behaviour says so) before this returns, so the next `GetAsyncInvoke` sees the end
    /// whatever the machine's load. A job a poll is finishing meanwhile is waited for.
    pub async fn complete_jobs(&self) {
        loop {
            let (next, busy) = {
                let mut jobs = self.state.jobs.lock().unwrap();
                let busy = jobs.values().any(|j| j.finishing);
                let next = jobs
                    .values_mut()
                    .find(|j| j.status == "InProgress" && !j.finishing)
                    .map(|job| (job.arn.clone(), handlers::start_finishing(job)));
                (next, busy)
            };
            match next {
                Some((arn, finishing)) => {
                    handlers::finish_and_record(&self.state, &arn, finishing).await;
                }
                None if busy => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
                None => return,
            }
        }
    }

    /// Forgets every job (as Bedrock forgets invocations after a while).
    pub fn forget_jobs(&self) {
        let mut jobs = self.state.jobs.lock().unwrap();
        let running = jobs.values().filter(|j| j.status == "InProgress").count();
        jobs.clear();
        self.state.in_flight.fetch_sub(running, Ordering::SeqCst);
    }

    /// Answers text and media with `source`'s vectors from now on (where it has them).
    pub fn set_vector_source(&self, source: Arc<dyn VectorSource>) {
        *self.state.vector_source.lock().unwrap() = Some(source);
    }

    /// Whether requests are validated against the AWS API model file.
    pub fn validates_against_api_model(&self) -> bool {
        self.state.model.is_some()
    }

    /// Calls of `op` received (failed ones included).
    pub fn calls(&self, op: Op) -> usize {
        *self.state.calls.lock().unwrap().get(&op).unwrap_or(&0)
    }

    /// All calls received.
    pub fn total_calls(&self) -> usize {
        self.state.calls.lock().unwrap().values().sum()
    }

    /// Jobs created (a `StartAsyncInvoke` answered from an idempotency token creates none).
    pub fn jobs_created(&self) -> usize {
        self.state.jobs_created.load(Ordering::SeqCst)
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
