//! An OpenSearch k-NN test server: the subset of the REST API the backend uses, implemented as
//! the OpenSearch documentation describes it (k-NN plugin: `knn_vector` mappings, the `knn`
//! query with efficient filtering, the documented scores), not as the backend would like it.
//!
//! - `GET /`, `HEAD|PUT|DELETE /<index>`, `GET /<index>/_mapping`, `POST /<index>/_bulk` (and
//!   `/_bulk`), `POST /<index>/_refresh`, `POST|GET /<index>/_search`,
//!   `POST /<index>/_delete_by_query`.
//! - Near-real-time visibility: writes are searchable only after a refresh (`refresh=true` /
//!   `wait_for`, `_refresh`, or the 1 s periodic refresh); `_delete_by_query` works on what is
//!   searchable, like OpenSearch's.
//! - `knn`: exact search over the documents holding the field and matching the `filter` inside
//!   the clause (efficient filtering), top `k`, score `(1 + cos) / 2` for `cosinesimil`, the
//!   documented piecewise formula for `innerproduct`, `1 / (1 + d²)` for `l2`; then `size` /
//!   `from` of the hits. A `knn` clause inside `bool.must` next to a filter behaves as OpenSearch
//!   does: k nearest first, filtered afterwards (so fewer than k hits).
//! - Request bodies and query parameters are validated against the OpenAPI specification when it
//!   is available; requests the server does not implement answer 400 and are recorded as
//!   protocol violations, which every test asserts are absent ([`KnnServer::assert_clean`]).
//! - Fault injection: whole-request statuses (429, 503), per-item 429s in `_bulk`, delays,
//!   `_delete_by_query` answers that time out half way.
//! - Requests signed for `aoss` (Amazon OpenSearch Serverless) are refused what Serverless
//!   refuses ([`serverless`]); [`KnnServer::start_serverless`] starts a server that acts as a
//!   collection endpoint throughout (only `aoss`-signed requests, writes searchable after a
//!   visibility delay, nothing that forces a refresh).
//! - k-NN searches record the `ef_search` the engine would use ([`KnnServer::knn_searches`]):
//!   faiss reads `method.parameters.ef_search` of the mapping (default 100) and ignores the
//!   index setting `index.knn.algo_param.ef_search` (nmslib's); a query's
//!   `method_parameters.ef_search` (2.16+) overrides both; lucene uses `k`.
//! - The version `GET /` reports is settable ([`KnnServer::set_version`]); below 2.19 faiss
//!   refuses `cosinesimil`, below 2.16 queries refuse `method_parameters`.
#![allow(dead_code)]

pub mod serverless;
pub mod spec;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use spec::Spec;

/// One request as the server received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: String,
}

impl Recorded {
    /// The body as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// The value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Space {
    CosineSimil,
    InnerProduct,
    L2,
}

#[derive(Debug, Clone, PartialEq)]
enum FieldType {
    Knn {
        dim: usize,
        space: Space,
        engine: String,
        /// `method.parameters.ef_search` of the mapping (faiss).
        ef_search: Option<u64>,
    },
    Keyword,
    Integer {
        min: f64,
        max: f64,
    },
    Float,
    Date,
    Boolean,
    Disabled,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Dynamic {
    True,
    False,
    Strict,
}

#[derive(Debug)]
struct Doc {
    source: Value,
    /// The `knn_vector` fields, parsed once at index time, with their norms.
    vectors: HashMap<String, (Vec<f32>, f64)>,
    seq_no: u64,
    version: u64,
    /// Lucene-like internal order: ties in score are broken by it.
    order: u64,
}

struct Index {
    settings: Map<String, Value>,
    mappings: Value,
    fields: HashMap<String, FieldType>,
    dynamic: Dynamic,
    live: BTreeMap<String, Arc<Doc>>,
    searchable: Arc<BTreeMap<String, Arc<Doc>>>,
    /// Changes not searchable yet: when they become searchable, the id, the new document
    /// (`None`: deleted).
    pending: VecDeque<(Instant, String, Option<Arc<Doc>>)>,
    /// How long a change takes to become searchable without a refresh (the periodic refresh,
    /// 1 s by default; Serverless: its visibility delay).
    lag: Duration,
    next_seq: u64,
    next_order: u64,
    /// State of the generator of service-assigned ids.
    id_state: u64,
}

impl Index {
    fn refresh(&mut self) {
        self.searchable = Arc::new(self.live.clone());
        self.pending.clear();
    }

    /// Records a change of the live documents; it becomes searchable after the lag.
    fn changed(&mut self, id: &str, doc: Option<Arc<Doc>>) {
        self.pending
            .push_back((Instant::now() + self.lag, id.to_string(), doc));
    }

    /// Makes the changes whose time has come searchable (what the periodic refresh does).
    fn catch_up(&mut self) {
        let now = Instant::now();
        if self.pending.front().is_none_or(|(at, _, _)| *at > now) {
            return;
        }
        let searchable = Arc::make_mut(&mut self.searchable);
        while let Some((at, _, _)) = self.pending.front() {
            if *at > now {
                break;
            }
            let Some((_, id, doc)) = self.pending.pop_front() else {
                break;
            };
            match doc {
                Some(d) => searchable.insert(id, d),
                None => searchable.remove(&id),
            };
        }
    }

    /// A new id as a service assigns them: 20 URL-safe characters, not in any order.
    fn service_id(&mut self) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::with_capacity(20);
        loop {
            out.clear();
            for _ in 0..20 {
                // xorshift64*
                self.id_state ^= self.id_state >> 12;
                self.id_state ^= self.id_state << 25;
                self.id_state ^= self.id_state >> 27;
                let x = self.id_state.wrapping_mul(0x2545_F491_4F6C_DD1D);
                out.push(ALPHABET[(x >> 58) as usize] as char);
            }
            if !self.live.contains_key(&out) {
                return out;
            }
        }
    }
}

/// One k-NN search as the engine would run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnnSearch {
    pub index: String,
    pub field: String,
    pub engine: String,
    pub k: u64,
    /// The `ef_search` the engine uses.
    pub ef_search: u64,
    /// Where it came from: `query` (`method_parameters`), `mapping` (faiss
    /// `method.parameters`), `default` (faiss without either: 100), `k` (lucene).
    pub ef_from: &'static str,
}

#[derive(Default)]
struct Faults {
    /// Whole-request answers to give instead of handling: (status, only for paths containing).
    statuses: VecDeque<(u16, Option<String>)>,
    /// Bulk items to reject with 429 before handling the rest.
    item_429: usize,
    /// Per document id: how many more times to reject it with 429.
    item_429_ids: HashMap<String, usize>,
    /// Delays before answering.
    delays: VecDeque<Duration>,
    /// `_delete_by_query` requests to answer `timed_out: true` after deleting half.
    delete_by_query_timeouts: usize,
}

struct State {
    indices: HashMap<String, Index>,
    requests: Vec<Recorded>,
    violations: Vec<String>,
    /// Requests refused as Amazon OpenSearch Serverless refuses them.
    refusals: Vec<String>,
    knn_searches: Vec<KnnSearch>,
    faults: Faults,
    record_bodies: bool,
    /// Only `aoss`-signed requests (a collection endpoint).
    serverless_only: bool,
    /// How long writes take to become searchable without a refresh.
    visibility: Duration,
    /// The version `GET /` reports.
    version: String,
}

impl Default for State {
    fn default() -> Self {
        State {
            indices: HashMap::new(),
            requests: Vec::new(),
            violations: Vec::new(),
            refusals: Vec::new(),
            knn_searches: Vec::new(),
            faults: Faults::default(),
            record_bodies: true,
            serverless_only: false,
            visibility: Duration::from_secs(1),
            version: "3.3.0".into(),
        }
    }
}

impl State {
    fn version(&self) -> (u32, u32) {
        let mut parts = self
            .version
            .split('.')
            .map(|p| p.parse::<u32>().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
    }
}

/// Why a request failed: an OpenSearch-style error answer, and whether it reveals a request
/// the server does not implement (a protocol violation the test must see).
struct Failure {
    status: u16,
    error_type: String,
    reason: String,
    violation: bool,
    /// Answered with the status alone (Serverless's 404 for APIs it does not expose).
    bare: bool,
    /// Answered as Serverless answers requests it cannot authenticate.
    forbidden: bool,
    /// Refused because Serverless refuses it (recorded in [`KnnServer::serverless_refusals`]).
    serverless: bool,
}

fn fail(status: u16, error_type: &str, reason: impl Into<String>) -> Failure {
    Failure {
        status,
        error_type: error_type.into(),
        reason: reason.into(),
        violation: false,
        bare: false,
        forbidden: false,
        serverless: false,
    }
}

/// A request outside what the server implements (or what the specification allows).
fn unsupported(reason: impl Into<String>) -> Failure {
    Failure {
        violation: true,
        ..fail(400, "test_server_unsupported_request", reason)
    }
}

fn error_body(status: u16, error_type: &str, reason: &str) -> Value {
    json!({
        "error": {
            "root_cause": [{"type": error_type, "reason": reason}],
            "type": error_type,
            "reason": reason,
        },
        "status": status,
    })
}

fn answer(status: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=UTF-8")],
        body.to_string(),
    )
        .into_response()
}

/// A running test server on 127.0.0.1.
pub struct KnnServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    spec: Option<Arc<Spec>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for KnnServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The OpenAPI specification directory: `CROSSMODAL_OPENSEARCH_SPEC`, else
/// `<workspace>/../shared/reference/opensearch-api-specification/spec`, the workspace being
/// found from the package that includes this module (this crate, or the root package whose
/// full-stack test includes it by path).
pub fn spec_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CROSSMODAL_OPENSEARCH_SPEC") {
        return PathBuf::from(dir);
    }
    let rel = "shared/reference/opensearch-api-specification/spec";
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let default = manifest.join("../../..").join(rel);
    manifest
        .ancestors()
        .skip(1)
        .map(|dir| dir.join(rel))
        .find(|dir| dir.is_dir())
        .unwrap_or(default)
}

static SPEC: std::sync::OnceLock<Option<Arc<Spec>>> = std::sync::OnceLock::new();

fn load_spec() -> Option<Arc<Spec>> {
    SPEC.get_or_init(|| {
        let dir = spec_dir();
        match Spec::load(&dir) {
            Some(s) => Some(Arc::new(s)),
            None if std::env::var("CI").is_ok_and(|v| v == "true") => panic!(
                "the OpenSearch OpenAPI specification is not at {} but CI=true: the k-NN test \
                 server validates requests against it (set CROSSMODAL_OPENSEARCH_SPEC)",
                dir.display()
            ),
            None => {
                eprintln!(
                    "NOTE: OpenSearch OpenAPI specification not found at {}; the k-NN test \
                     server runs without schema validation (set CROSSMODAL_OPENSEARCH_SPEC)",
                    dir.display()
                );
                None
            }
        }
    })
    .clone()
}

impl KnnServer {
    /// Starts a server on a free loopback port: an OpenSearch cluster (or Amazon OpenSearch
    /// Service domain) for unsigned and `es`-signed requests, with Serverless's refusals for
    /// `aoss`-signed ones; writes become searchable after a refresh or within 1 s.
    pub async fn start() -> KnnServer {
        Self::start_with(State::default()).await
    }

    /// Starts a server that acts as an Amazon OpenSearch Serverless vector collection: every
    /// request must be signed for `aoss` (403 otherwise), Serverless's refusals apply
    /// ([`serverless`]), and writes become searchable `visibility` after they are made (the
    /// service documents about 60 s; tests pass less).
    pub async fn start_serverless(visibility: Duration) -> KnnServer {
        Self::start_with(State {
            serverless_only: true,
            visibility,
            ..State::default()
        })
        .await
    }

    async fn start_with(state: State) -> KnnServer {
        let state = Arc::new(Mutex::new(state));
        let spec = load_spec();
        let app_state = (state.clone(), spec.clone());
        let app = Router::new()
            .fallback(
                move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                    let (state, spec) = app_state.clone();
                    async move { handle(state, spec, method, uri, headers, body).await }
                },
            )
            // OpenSearch's default `http.max_content_length`.
            .layer(DefaultBodyLimit::max(100 * 1024 * 1024));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .expect("test server");
        });
        KnnServer {
            addr,
            state,
            spec,
            shutdown: Some(tx),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Whether request bodies are validated against the specification.
    pub fn validates(&self) -> bool {
        self.spec.is_some()
    }

    /// Answers the next `count` requests (whose path contains `path_part`, if given) with
    /// `status` and an OpenSearch error body instead of handling them.
    pub fn inject_status(&self, status: u16, count: usize, path_part: Option<&str>) {
        let mut st = self.state.lock().unwrap();
        for _ in 0..count {
            st.faults
                .statuses
                .push_back((status, path_part.map(str::to_string)));
        }
    }

    /// Rejects the next `count` bulk items with a per-item 429 (`es_rejected_execution_exception`).
    pub fn inject_item_429(&self, count: usize) {
        self.state.lock().unwrap().faults.item_429 += count;
    }

    /// Rejects the document `id` with a per-item 429 the next `count` times it is written.
    pub fn inject_item_429_for(&self, id: &str, count: usize) {
        self.state
            .lock()
            .unwrap()
            .faults
            .item_429_ids
            .insert(id.to_string(), count);
    }

    /// Delays the next request's answer by `delay`.
    pub fn inject_delay(&self, delay: Duration) {
        self.state.lock().unwrap().faults.delays.push_back(delay);
    }

    /// Makes the next `count` `_delete_by_query` requests delete only half of what they match
    /// and answer `timed_out: true`, as OpenSearch does when the request's time runs out.
    pub fn inject_delete_by_query_timeout(&self, count: usize) {
        self.state.lock().unwrap().faults.delete_by_query_timeouts += count;
    }

    /// The version `GET /` reports from now on (default 3.3.0); indexes and queries follow its
    /// floors (faiss `cosinesimil` 2.19, `method_parameters` 2.16).
    pub fn set_version(&self, version: &str) {
        self.state.lock().unwrap().version = version.to_string();
    }

    /// Requests refused as Amazon OpenSearch Serverless refuses them (`aoss`-signed).
    pub fn serverless_refusals(&self) -> Vec<String> {
        self.state.lock().unwrap().refusals.clone()
    }

    /// Panics listing every request refused as Serverless refuses it.
    pub fn assert_no_serverless_refusals(&self) {
        let r = self.serverless_refusals();
        assert!(
            r.is_empty(),
            "{} request(s) were refused as Amazon OpenSearch Serverless refuses them:\n{}",
            r.len(),
            r.join("\n")
        );
    }

    /// Every k-NN search so far, with the `ef_search` the engine would use.
    pub fn knn_searches(&self) -> Vec<KnnSearch> {
        self.state.lock().unwrap().knn_searches.clone()
    }

    /// Searchable documents in `index`.
    pub fn searchable_count(&self, index: &str) -> usize {
        let mut st = self.state.lock().unwrap();
        st.indices.get_mut(index).map_or(0, |i| {
            i.catch_up();
            i.searchable.len()
        })
    }

    /// The live documents of `index` whose field `field` is `value`, with their ids.
    pub fn docs_where(&self, index: &str, field: &str, value: &str) -> Vec<(String, Value)> {
        self.state
            .lock()
            .unwrap()
            .indices
            .get(index)
            .map(|i| {
                i.live
                    .iter()
                    .filter(|(_, d)| d.source.get(field).and_then(Value::as_str) == Some(value))
                    .map(|(id, d)| (id.clone(), d.source.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether request bodies are kept in [`requests`](Self::requests) (large bulk loads can
    /// turn it off).
    pub fn record_bodies(&self, on: bool) {
        self.state.lock().unwrap().record_bodies = on;
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.state.lock().unwrap().requests.clear();
    }

    /// Requests the server did not understand or the specification does not allow.
    pub fn violations(&self) -> Vec<String> {
        self.state.lock().unwrap().violations.clone()
    }

    /// Panics listing every protocol violation seen so far.
    pub fn assert_clean(&self) {
        let v = self.violations();
        assert!(
            v.is_empty(),
            "the k-NN test server saw {} request(s) it does not understand or the OpenSearch \
             specification does not allow:\n{}",
            v.len(),
            v.join("\n")
        );
    }

    /// Live (not necessarily searchable) documents in `index`.
    pub fn doc_count(&self, index: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .indices
            .get(index)
            .map_or(0, |i| i.live.len())
    }

    /// The `_source` of a live document.
    pub fn doc(&self, index: &str, id: &str) -> Option<Value> {
        self.state
            .lock()
            .unwrap()
            .indices
            .get(index)
            .and_then(|i| i.live.get(id))
            .map(|d| d.source.clone())
    }
}

async fn handle(
    state: Arc<Mutex<State>>,
    spec: Option<Arc<Spec>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query: Vec<(String, String)> = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body).into_owned();
    let (delay, injected) = {
        let mut st = state.lock().unwrap();
        let recorded_body = if st.record_bodies || text.len() < 64 * 1024 {
            text.clone()
        } else {
            format!("<{} bytes not recorded>", text.len())
        };
        st.requests.push(Recorded {
            method: method.to_string(),
            path: path.clone(),
            query: query.clone(),
            headers: headers.clone(),
            body: recorded_body,
        });
        let delay = st.faults.delays.pop_front();
        let pos = st
            .faults
            .statuses
            .iter()
            .position(|(_, part)| part.as_deref().is_none_or(|p| path.contains(p)));
        let injected = pos.and_then(|p| st.faults.statuses.remove(p));
        (delay, injected)
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    if let Some((status, _)) = injected {
        let (ty, reason) = match status {
            429 => (
                "es_rejected_execution_exception",
                "rejected execution of coordinating operation [test server injected 429]",
            ),
            503 => ("unavailable_shards_exception", "test server injected 503"),
            _ => ("test_server_injected", "test server injected failure"),
        };
        return answer(status, error_body(status, ty, reason));
    }
    let service = serverless::signing_service(&headers);
    let aoss = service.as_deref() == Some("aoss");
    let serverless_only = state.lock().unwrap().serverless_only;
    let refused = if serverless_only && !aoss {
        Some(serverless::forbidden(&format!(
            "a collection endpoint takes requests signed for aoss (this one: {})",
            service.as_deref().unwrap_or("unsigned")
        )))
    } else if aoss {
        let segments: Vec<&str> = path
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        serverless::check_request(method.as_str(), &segments, &query, &headers).err()
    } else {
        None
    };
    let result = match refused {
        Some(mut f) => {
            f.serverless = true;
            Err(f)
        }
        None => route(&state, spec.as_deref(), &method, &path, &query, &text, aoss),
    };
    if let Err(f) = &result
        && f.serverless
    {
        state.lock().unwrap().refusals.push(format!(
            "{method} {path}?{}: {} {}",
            query
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&"),
            f.status,
            if f.reason.is_empty() {
                "(no body)"
            } else {
                &f.reason
            }
        ));
    }
    match result {
        Ok((status, body)) => {
            if method == Method::HEAD {
                let status = StatusCode::from_u16(status).unwrap();
                return (
                    status,
                    [(header::CONTENT_TYPE, "application/json; charset=UTF-8")],
                )
                    .into_response();
            }
            answer(status, body)
        }
        Err(f) => {
            if f.violation {
                let short: String = text.chars().take(400).collect();
                state.lock().unwrap().violations.push(format!(
                    "{method} {path}?{}: {} (body: {short})",
                    query
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join("&"),
                    f.reason
                ));
            }
            if method == Method::HEAD || f.bare {
                let status = StatusCode::from_u16(f.status).unwrap();
                return status.into_response();
            }
            if f.forbidden {
                // How a collection endpoint answers what it cannot authenticate.
                return answer(
                    f.status,
                    json!({"status": 403, "request-id": "knn-test-server",
                        "error": {"reason": format!("403 Forbidden: {}", f.reason), "type": "Forbidden"}}),
                );
            }
            answer(f.status, error_body(f.status, &f.error_type, &f.reason))
        }
    }
}

type Answer = Result<(u16, Value), Failure>;

fn parse_json_body(text: &str) -> Result<Value, Failure> {
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(text).map_err(|e| {
        let mut f = fail(
            400,
            "parse_exception",
            format!("request body is not JSON: {e}"),
        );
        f.violation = true;
        f
    })
}

/// Validates a JSON body against a request body schema of `namespace_file`.
fn validate_body(
    spec: Option<&Spec>,
    namespace_file: &str,
    request_body: &str,
    body: &Value,
) -> Result<(), Failure> {
    let Some(spec) = spec else { return Ok(()) };
    let pointer =
        format!("/components/requestBodies/{request_body}/content/application~1json/schema");
    let errors = spec.validate(namespace_file, &pointer, body);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(unsupported(format!(
            "{request_body} body does not fit the OpenSearch specification: {}",
            errors.join("; ")
        )))
    }
}

fn validate_params(
    spec: Option<&Spec>,
    namespace_file: &str,
    group: &str,
    query: &[(String, String)],
) -> Result<(), Failure> {
    let Some(spec) = spec else { return Ok(()) };
    let errors = spec.validate_query(namespace_file, group, query);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(unsupported(errors.join("; ")))
    }
}

fn route(
    state: &Mutex<State>,
    spec: Option<&Spec>,
    method: &Method,
    path: &str,
    query: &[(String, String)],
    text: &str,
    aoss: bool,
) -> Answer {
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let core = "namespaces/_core.yaml";
    let indices = "namespaces/indices.yaml";
    let mut st = state.lock().unwrap();
    match (method.as_str(), segments.as_slice()) {
        ("GET", []) => {
            validate_params(spec, "namespaces/_core.yaml", "info", query)?;
            Ok((
                200,
                json!({
                    "name": "knn-test-node",
                    "cluster_name": "knn-test",
                    "version": {"distribution": "opensearch", "number": st.version},
                    "tagline": "The OpenSearch Project: https://opensearch.org/",
                }),
            ))
        }
        ("POST" | "PUT", ["_bulk"]) => {
            validate_params(spec, core, "bulk", query)?;
            bulk(&mut st, spec, None, query, text, aoss)
        }
        ("HEAD", [index]) => {
            validate_params(spec, indices, "indices.exists", query)?;
            Ok((
                if st.indices.contains_key(*index) {
                    200
                } else {
                    404
                },
                Value::Null,
            ))
        }
        ("PUT", [index]) => {
            validate_params(spec, indices, "indices.create", query)?;
            let body = parse_json_body(text)?;
            validate_body(spec, indices, "indices.create", &body)?;
            create_index(&mut st, index, &body, aoss)
        }
        ("DELETE", [index]) => {
            validate_params(spec, indices, "indices.delete", query)?;
            match st.indices.remove(*index) {
                Some(_) => Ok((200, json!({"acknowledged": true}))),
                None => Err(index_not_found(index)),
            }
        }
        ("GET", [index, "_mapping"]) => {
            validate_params(spec, indices, "indices.get_mapping", query)?;
            let idx = st
                .indices
                .get(*index)
                .ok_or_else(|| index_not_found(index))?;
            Ok((200, json!({ *index: {"mappings": idx.mappings} })))
        }
        ("PUT" | "POST", [index, "_mapping"]) => {
            validate_params(spec, indices, "indices.put_mapping", query)?;
            let body = parse_json_body(text)?;
            validate_body(spec, indices, "indices.put_mapping", &body)?;
            let version = st.version();
            let idx = st
                .indices
                .get_mut(*index)
                .ok_or_else(|| index_not_found(index))?;
            put_mapping(idx, &body, aoss, version)
        }
        ("POST" | "GET", [index, "_refresh"]) => {
            validate_params(spec, indices, "indices.refresh", query)?;
            let idx = st
                .indices
                .get_mut(*index)
                .ok_or_else(|| index_not_found(index))?;
            idx.refresh();
            Ok((
                200,
                json!({"_shards": {"total": 2, "successful": 1, "failed": 0}}),
            ))
        }
        ("POST" | "PUT", [index, "_bulk"]) => {
            validate_params(spec, core, "bulk", query)?;
            bulk(&mut st, spec, Some(index), query, text, aoss)
        }
        ("POST" | "GET", [index, "_search"]) => {
            validate_params(spec, core, "search", query)?;
            if !query.is_empty() {
                return Err(unsupported(
                    "search query parameters are not implemented by the test server",
                ));
            }
            let body = parse_json_body(text)?;
            validate_body(spec, core, "search", &body)?;
            let version = st.version();
            let idx = st
                .indices
                .get_mut(*index)
                .ok_or_else(|| index_not_found(index))?;
            idx.catch_up();
            let mut knn = Vec::new();
            let ctx = QueryCtx {
                index,
                version,
                knn: &mut knn,
            };
            let result = search(idx, &body, ctx);
            st.knn_searches.extend(knn);
            result
        }
        ("POST", [index, "_delete_by_query"]) => {
            validate_params(spec, core, "delete_by_query", query)?;
            let body = parse_json_body(text)?;
            validate_body(spec, core, "delete_by_query", &body)?;
            let timeout = st.faults.delete_by_query_timeouts > 0;
            if timeout {
                st.faults.delete_by_query_timeouts -= 1;
            }
            let version = st.version();
            let idx = st
                .indices
                .get_mut(*index)
                .ok_or_else(|| index_not_found(index))?;
            idx.catch_up();
            delete_by_query(index, idx, &body, query, timeout, version)
        }
        _ => Err(unsupported(format!(
            "{method} {path} is not implemented by the k-NN test server"
        ))),
    }
}

fn index_not_found(index: &str) -> Failure {
    fail(
        404,
        "index_not_found_exception",
        format!("no such index [{index}]"),
    )
}

// ---------------------------------------------------------------------------------------------
// Index creation.

fn flatten_settings(prefix: &str, v: &Value, out: &mut Map<String, Value>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten_settings(&key, v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

fn truthy(v: &Value) -> bool {
    matches!(v, Value::Bool(true)) || v.as_str() == Some("true")
}

fn create_index(st: &mut State, name: &str, body: &Value, aoss: bool) -> Answer {
    if st.indices.contains_key(name) {
        return Err(fail(
            400,
            "resource_already_exists_exception",
            format!("index [{name}/test-uuid] already exists"),
        ));
    }
    if name.chars().any(|c| c.is_uppercase()) || name.starts_with(['_', '-', '+']) {
        return Err(fail(
            400,
            "invalid_index_name_exception",
            format!("Invalid index name [{name}]"),
        ));
    }
    if let Some(k) = body
        .as_object()
        .and_then(|o| o.keys().find(|k| *k != "settings" && *k != "mappings"))
    {
        return Err(unsupported(format!(
            "index creation with {k:?} is not implemented"
        )));
    }
    let mut settings = Map::new();
    if let Some(s) = body.get("settings") {
        flatten_settings("", s, &mut settings);
    }
    // `knn` and `index.knn` name the same setting.
    let settings: Map<String, Value> = settings
        .into_iter()
        .map(|(k, v)| {
            if k.starts_with("index.") {
                (k, v)
            } else {
                (format!("index.{k}"), v)
            }
        })
        .collect();
    for k in settings.keys() {
        if !matches!(
            k.as_str(),
            "index.knn"
                | "index.knn.algo_param.ef_search"
                | "index.number_of_shards"
                | "index.number_of_replicas"
                | "index.refresh_interval"
        ) {
            return Err(unsupported(format!(
                "index setting {k} is not implemented by the test server"
            )));
        }
    }
    let mappings = body.get("mappings").cloned().unwrap_or_else(|| json!({}));
    let dynamic = match mappings.get("dynamic") {
        None => Dynamic::True,
        Some(v) if truthy(v) => Dynamic::True,
        Some(v) if v == "strict" => Dynamic::Strict,
        Some(v) if v == false || v == "false" => Dynamic::False,
        Some(v) => return Err(unsupported(format!("dynamic {v} is not implemented"))),
    };
    if let Some(k) = mappings.as_object().and_then(|o| {
        o.keys()
            .find(|k| !matches!(k.as_str(), "dynamic" | "_meta" | "properties"))
    }) {
        return Err(unsupported(format!(
            "mapping parameter {k:?} is not implemented"
        )));
    }
    let mut fields = HashMap::new();
    let version = st.version();
    if let Some(props) = mappings.get("properties").and_then(Value::as_object) {
        for (name, def) in props {
            fields.insert(name.clone(), field_type(name, def, aoss, version)?);
        }
    }
    let seed = name.bytes().fold(0x9E37_79B9_7F4A_7C15u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3)
    }) | 1;
    st.indices.insert(
        name.to_string(),
        Index {
            settings,
            mappings,
            fields,
            dynamic,
            live: BTreeMap::new(),
            searchable: Arc::new(BTreeMap::new()),
            pending: VecDeque::new(),
            lag: st.visibility,
            next_seq: 0,
            next_order: 0,
            id_state: seed,
        },
    );
    Ok((
        200,
        json!({"acknowledged": true, "shards_acknowledged": true, "index": name}),
    ))
}

fn field_type(
    name: &str,
    def: &Value,
    aoss: bool,
    version: (u32, u32),
) -> Result<FieldType, Failure> {
    let ty = def.get("type").and_then(Value::as_str).unwrap_or("object");
    let allowed_keys: &[&str] = match ty {
        "knn_vector" => &[
            "type",
            "dimension",
            "method",
            "space_type",
            "data_type",
            "doc_values",
        ],
        "date" => &["type", "format"],
        "object" => &["type", "enabled"],
        _ => &["type"],
    };
    if let Some(k) = def
        .as_object()
        .and_then(|o| o.keys().find(|k| !allowed_keys.contains(&k.as_str())))
    {
        return Err(unsupported(format!(
            "field [{name}] parameter {k:?} is not implemented"
        )));
    }
    Ok(match ty {
        "knn_vector" => {
            let dim = def
                .get("dimension")
                .and_then(Value::as_u64)
                .ok_or_else(|| {
                    fail(
                        400,
                        "mapper_parsing_exception",
                        format!("Dimension value missing for vector: {name}"),
                    )
                })?;
            if dim == 0 || dim > 16_000 {
                return Err(fail(
                    400,
                    "mapper_parsing_exception",
                    format!(
                        "Dimension value cannot be greater than 16000 or less than 1 for vector: {name}"
                    ),
                ));
            }
            if let Some(dt) = def.get("data_type").and_then(Value::as_str)
                && dt != "float"
            {
                return Err(unsupported(format!("data_type {dt} is not implemented")));
            }
            let method = def.get("method");
            let engine = method
                .and_then(|m| m.get("engine"))
                .and_then(Value::as_str)
                .unwrap_or("faiss");
            let space = method
                .and_then(|m| m.get("space_type"))
                .or_else(|| def.get("space_type"))
                .and_then(Value::as_str)
                .unwrap_or("l2");
            if aoss {
                let method_name = method.and_then(|m| m.get("name")).and_then(Value::as_str);
                serverless::check_knn_method(name, engine, method_name).map_err(|mut f| {
                    f.serverless = true;
                    f
                })?;
            }
            if let Some(m) = method {
                if let Some(k) = m.as_object().and_then(|o| {
                    o.keys().find(|k| {
                        !matches!(k.as_str(), "name" | "engine" | "space_type" | "parameters")
                    })
                }) {
                    return Err(unsupported(format!(
                        "knn method parameter {k:?} is not implemented"
                    )));
                }
                if m.get("name").and_then(Value::as_str) != Some("hnsw") {
                    return Err(unsupported(
                        "knn methods other than hnsw are not implemented",
                    ));
                }
                if let Some(k) = m
                    .get("parameters")
                    .and_then(Value::as_object)
                    .and_then(|o| {
                        o.keys()
                            .find(|k| !matches!(k.as_str(), "m" | "ef_construction" | "ef_search"))
                    })
                {
                    return Err(unsupported(format!(
                        "hnsw parameter {k:?} is not implemented"
                    )));
                }
                if engine == "lucene"
                    && m.get("parameters")
                        .and_then(|p| p.get("ef_search"))
                        .is_some()
                {
                    // Lucene's HNSW takes m and ef_construction; ef_search is faiss's (and
                    // nmslib's index setting).
                    return Err(fail(
                        400,
                        "mapper_parsing_exception",
                        format!(
                            "Validation Failed: 1: Unknown parameter 'ef_search' for method 'hnsw' \
                             of engine 'lucene' in field [{name}];"
                        ),
                    ));
                }
            }
            let ef_search = method
                .and_then(|m| m.get("parameters"))
                .and_then(|p| p.get("ef_search"))
                .and_then(Value::as_u64);
            if engine == "faiss" && space == "cosinesimil" && version < (2, 19) {
                return Err(fail(
                    400,
                    "mapper_parsing_exception",
                    format!(
                        "Validation Failed: 1: space type [cosinesimil] is not supported with \
                         [faiss] engine in field [{name}];"
                    ),
                ));
            }
            match engine {
                "faiss" | "lucene" => {}
                "nmslib" => {
                    return Err(fail(
                        400,
                        "mapper_parsing_exception",
                        "nmslib engine is deprecated in OpenSearch and cannot be used for new index creation starting from version 3.0.0.",
                    ));
                }
                other => {
                    return Err(fail(
                        400,
                        "mapper_parsing_exception",
                        format!("Invalid engine type: {other}"),
                    ));
                }
            }
            let space = match space {
                "cosinesimil" => Space::CosineSimil,
                "innerproduct" => Space::InnerProduct,
                "l2" => Space::L2,
                other => {
                    return Err(unsupported(format!(
                        "space type {other} is not implemented"
                    )));
                }
            };
            FieldType::Knn {
                dim: dim as usize,
                space,
                engine: engine.to_string(),
                ef_search,
            }
        }
        "keyword" => FieldType::Keyword,
        "byte" => FieldType::Integer {
            min: -128.0,
            max: 127.0,
        },
        "short" => FieldType::Integer {
            min: -32768.0,
            max: 32767.0,
        },
        "integer" => FieldType::Integer {
            min: f64::from(i32::MIN),
            max: f64::from(i32::MAX),
        },
        "long" => FieldType::Integer {
            min: -9.2e18,
            max: 9.2e18,
        },
        "float" | "double" | "half_float" => FieldType::Float,
        "date" => {
            if let Some(f) = def.get("format").and_then(Value::as_str)
                && f != "epoch_millis"
            {
                return Err(unsupported(format!("date format {f} is not implemented")));
            }
            FieldType::Date
        }
        "boolean" => FieldType::Boolean,
        "object" if def.get("enabled") == Some(&Value::Bool(false)) => FieldType::Disabled,
        other => {
            return Err(unsupported(format!(
                "field type {other} is not implemented"
            )));
        }
    })
}

/// `PUT /<index>/_mapping`: new fields are added; an existing field cannot change type.
fn put_mapping(idx: &mut Index, body: &Value, aoss: bool, version: (u32, u32)) -> Answer {
    if let Some(k) = body
        .as_object()
        .and_then(|o| o.keys().find(|k| *k != "properties"))
    {
        return Err(unsupported(format!(
            "put mapping with {k:?} is not implemented"
        )));
    }
    let props = body
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut added = Vec::new();
    for (name, def) in &props {
        let ft = field_type(name, def, aoss, version)?;
        match idx.fields.get(name) {
            Some(old) if *old != ft => {
                return Err(fail(
                    400,
                    "illegal_argument_exception",
                    format!("mapper [{name}] cannot be changed from type [{old:?}] to [{ft:?}]"),
                ));
            }
            Some(_) => {}
            None => added.push((name.clone(), ft, def.clone())),
        }
    }
    for (name, ft, def) in added {
        idx.fields.insert(name.clone(), ft);
        if !idx.mappings.get("properties").is_some_and(Value::is_object) {
            idx.mappings["properties"] = json!({});
        }
        idx.mappings["properties"][name] = def;
    }
    Ok((200, json!({"acknowledged": true})))
}

// ---------------------------------------------------------------------------------------------
// Bulk.

fn item_error(index: &str, id: &str, action: &str, status: u16, error: Value) -> Value {
    json!({ action: {"_index": index, "_id": id, "status": status, "error": error} })
}

fn parsing_error(
    field: &str,
    ty: &str,
    id: &str,
    preview: &Value,
    cause_type: &str,
    cause: &str,
) -> Value {
    json!({
        "type": "mapper_parsing_exception",
        "reason": format!("failed to parse field [{field}] of type [{ty}] in document with id '{id}'. Preview of field's value: '{preview}'"),
        "caused_by": {"type": cause_type, "reason": cause},
    })
}

/// Checks a document against the mapping; the error object of a rejected one.
fn check_document(idx: &Index, id: &str, source: &Value) -> Result<(), Value> {
    let Some(obj) = source.as_object() else {
        return Err(
            json!({"type": "mapper_parsing_exception", "reason": "failed to parse, document is empty"}),
        );
    };
    for (name, value) in obj {
        let Some(ft) = idx.fields.get(name) else {
            if idx.dynamic == Dynamic::Strict {
                return Err(json!({
                    "type": "strict_dynamic_mapping_exception",
                    "reason": format!("mapping set to strict, dynamic introduction of [{name}] within [_doc] is not allowed"),
                }));
            }
            continue;
        };
        if value.is_null() {
            continue;
        }
        let values: Vec<&Value> = match (ft, value) {
            (FieldType::Knn { .. } | FieldType::Disabled, v) => vec![v],
            (_, Value::Array(a)) => a.iter().collect(),
            (_, v) => vec![v],
        };
        for v in values {
            match ft {
                FieldType::Knn { dim, space, .. } => {
                    let Some(arr) = v.as_array() else {
                        return Err(parsing_error(
                            name,
                            "knn_vector",
                            id,
                            v,
                            "illegal_argument_exception",
                            "Vector must be an array of numbers",
                        ));
                    };
                    let nums: Vec<f64> = arr.iter().filter_map(Value::as_f64).collect();
                    if nums.len() != arr.len() || nums.iter().any(|x| !x.is_finite()) {
                        return Err(parsing_error(
                            name,
                            "knn_vector",
                            id,
                            v,
                            "illegal_argument_exception",
                            "KNN vector values must be finite numbers",
                        ));
                    }
                    if nums.len() != *dim {
                        return Err(parsing_error(
                            name,
                            "knn_vector",
                            id,
                            &Value::Null,
                            "illegal_argument_exception",
                            &format!(
                                "Vector dimension mismatch. Expected: {dim}, Given: {}",
                                nums.len()
                            ),
                        ));
                    }
                    if *space == Space::CosineSimil && nums.iter().all(|x| *x == 0.0) {
                        return Err(parsing_error(
                            name,
                            "knn_vector",
                            id,
                            &Value::Null,
                            "illegal_argument_exception",
                            "zero vector is not supported when space type is [cosinesimil]",
                        ));
                    }
                }
                FieldType::Keyword => {
                    if v.is_object() || v.is_array() {
                        return Err(parsing_error(
                            name,
                            "keyword",
                            id,
                            v,
                            "illegal_state_exception",
                            "Can't get text on a START_OBJECT",
                        ));
                    }
                }
                FieldType::Integer { min, max } => {
                    let x = number_of(v).ok_or_else(|| {
                        parsing_error(
                            name,
                            "integer",
                            id,
                            v,
                            "number_format_exception",
                            &format!("For input string: \"{v}\""),
                        )
                    })?;
                    if x < *min || x > *max {
                        return Err(parsing_error(
                            name,
                            "integer",
                            id,
                            v,
                            "illegal_argument_exception",
                            &format!("Value [{v}] is out of range"),
                        ));
                    }
                }
                FieldType::Float | FieldType::Date => {
                    if number_of(v).is_none() {
                        return Err(parsing_error(
                            name,
                            "number",
                            id,
                            v,
                            "number_format_exception",
                            &format!("For input string: \"{v}\""),
                        ));
                    }
                }
                FieldType::Boolean => {
                    if !v.is_boolean() && v.as_str() != Some("true") && v.as_str() != Some("false")
                    {
                        return Err(parsing_error(
                            name,
                            "boolean",
                            id,
                            v,
                            "illegal_argument_exception",
                            "Failed to parse value as boolean",
                        ));
                    }
                }
                FieldType::Disabled => {}
            }
        }
    }
    Ok(())
}

fn number_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn bulk(
    st: &mut State,
    spec: Option<&Spec>,
    path_index: Option<&&str>,
    query: &[(String, String)],
    text: &str,
    aoss: bool,
) -> Answer {
    let refresh = query
        .iter()
        .find(|(k, _)| k == "refresh")
        .map(|(_, v)| v.as_str());
    let mut lines = text.split('\n').filter(|l| !l.trim().is_empty()).peekable();
    if lines.peek().is_none() {
        return Err(fail(
            400,
            "action_request_validation_exception",
            "Validation Failed: 1: no requests added;",
        ));
    }
    let mut items = Vec::new();
    let mut errors = false;
    let mut touched = Vec::new();
    while let Some(line) = lines.next() {
        let action: Value = serde_json::from_str(line).map_err(|e| {
            let mut f = fail(
                400,
                "illegal_argument_exception",
                format!("Malformed action/metadata line: {e}"),
            );
            f.violation = true;
            f
        })?;
        if let Some(spec) = spec {
            let errs = spec.validate(
                "schemas/_core.bulk.yaml",
                "/components/schemas/OperationContainer",
                &action,
            );
            if !errs.is_empty() {
                return Err(unsupported(format!(
                    "bulk action line does not fit OperationContainer: {}",
                    errs.join("; ")
                )));
            }
        }
        let obj = action
            .as_object()
            .filter(|o| o.len() == 1)
            .ok_or_else(|| unsupported("a bulk action line must hold exactly one action"))?;
        let (op, meta) = obj.iter().next().unwrap();
        if !matches!(op.as_str(), "index" | "create" | "delete") {
            return Err(unsupported(format!(
                "bulk action {op} is not implemented by the test server"
            )));
        }
        if let Some(k) = meta
            .as_object()
            .and_then(|m| m.keys().find(|k| !matches!(k.as_str(), "_index" | "_id")))
        {
            return Err(unsupported(format!(
                "bulk action parameter {k} is not implemented by the test server"
            )));
        }
        let index = meta
            .get("_index")
            .and_then(Value::as_str)
            .or(path_index.map(|s| &**s))
            .ok_or_else(|| {
                fail(
                    400,
                    "action_request_validation_exception",
                    "Validation Failed: 1: index is missing;",
                )
            })?
            .to_string();
        let id = meta.get("_id").and_then(Value::as_str).map(str::to_string);
        if aoss && op != "delete" && id.is_some() {
            // Serverless names documents itself; the item fails, the others go on. Its
            // source line is consumed like any other.
            let _ = lines.next();
            errors = true;
            st.refusals.push(format!(
                "bulk {op} item with _id {}: 400 {}",
                id.as_deref().unwrap_or_default(),
                serverless::DOCUMENT_ID_NOT_SUPPORTED
            ));
            items.push(item_error(
                &index,
                id.as_deref().unwrap_or_default(),
                op,
                400,
                json!({
                    "type": "illegal_argument_exception",
                    "reason": serverless::DOCUMENT_ID_NOT_SUPPORTED,
                }),
            ));
            continue;
        }
        let source = if op == "delete" {
            None
        } else {
            let line = lines.next().ok_or_else(|| {
                fail(
                    400,
                    "illegal_argument_exception",
                    "The bulk request must be terminated by a newline [\\n]",
                )
            })?;
            Some(serde_json::from_str::<Value>(line).map_err(|e| {
                let mut f = fail(
                    400,
                    "mapper_parsing_exception",
                    format!("failed to parse: {e}"),
                );
                f.violation = true;
                f
            })?)
        };
        let by_id = id
            .as_ref()
            .and_then(|i| st.faults.item_429_ids.get_mut(i))
            .filter(|n| **n > 0)
            .map(|n| *n -= 1)
            .is_some();
        if by_id || st.faults.item_429 > 0 {
            if !by_id {
                st.faults.item_429 -= 1;
            }
            errors = true;
            items.push(item_error(
                &index,
                id.as_deref().unwrap_or(""),
                op,
                429,
                json!({
                    "type": "es_rejected_execution_exception",
                    "reason": "rejected execution of primary operation [test server injected 429]",
                }),
            ));
            continue;
        }
        let Some(idx) = st.indices.get_mut(&index) else {
            // OpenSearch would create the index with dynamic mappings (no knn_vector field):
            // never what the backend wants.
            return Err(unsupported(format!(
                "bulk write to missing index {index} (would auto-create it)"
            )));
        };
        let id = match id {
            Some(id) => id,
            None if op == "delete" => {
                return Err(fail(
                    400,
                    "action_request_validation_exception",
                    "Validation Failed: 1: id is missing;",
                ));
            }
            None => idx.service_id(),
        };
        match source {
            None => {
                let found = idx.live.remove(&id);
                idx.next_seq += 1;
                if found.is_some() {
                    idx.changed(&id, None);
                }
                let (status, result) = if found.is_some() {
                    (200, "deleted")
                } else {
                    (404, "not_found")
                };
                items.push(json!({op: {"_index": index, "_id": id, "_version": found.map_or(1, |d| d.version + 1),
                    "result": result, "status": status, "_seq_no": idx.next_seq - 1, "_primary_term": 1,
                    "_shards": {"total": 2, "successful": 1, "failed": 0}}}));
            }
            Some(source) => {
                if let Err(e) = check_document(idx, &id, &source) {
                    errors = true;
                    items.push(item_error(&index, &id, op, 400, e));
                    continue;
                }
                let existing = idx.live.get(&id).cloned();
                if op == "create" && existing.is_some() {
                    errors = true;
                    items.push(item_error(
                        &index,
                        &id,
                        op,
                        409,
                        json!({
                            "type": "version_conflict_engine_exception",
                            "reason": format!("[{id}]: version conflict, document already exists"),
                        }),
                    ));
                    continue;
                }
                let version = existing.as_ref().map_or(1, |d| d.version + 1);
                let order = match &existing {
                    Some(d) => d.order,
                    None => {
                        idx.next_order += 1;
                        idx.next_order
                    }
                };
                let seq_no = idx.next_seq;
                idx.next_seq += 1;
                let vectors = idx
                    .fields
                    .iter()
                    .filter(|(_, t)| matches!(t, FieldType::Knn { .. }))
                    .filter_map(|(f, _)| {
                        let v = source.get(f)?.as_array()?;
                        let v: Vec<f32> = v
                            .iter()
                            .filter_map(Value::as_f64)
                            .map(|x| x as f32)
                            .collect();
                        let norm = v
                            .iter()
                            .map(|x| f64::from(*x) * f64::from(*x))
                            .sum::<f64>()
                            .sqrt();
                        Some((f.clone(), (v, norm)))
                    })
                    .collect();
                let doc = Arc::new(Doc {
                    source,
                    vectors,
                    seq_no,
                    version,
                    order,
                });
                idx.live.insert(id.clone(), doc.clone());
                idx.changed(&id, Some(doc));
                let (status, result) = if existing.is_some() {
                    (200, "updated")
                } else {
                    (201, "created")
                };
                items.push(
                    json!({op: {"_index": index, "_id": id, "_version": version, "result": result,
                    "_shards": {"total": 2, "successful": 1, "failed": 0}, "_seq_no": seq_no,
                    "_primary_term": 1, "status": status}}),
                );
            }
        }
        if !touched.contains(&index) {
            touched.push(index);
        }
    }
    if matches!(refresh, Some("true" | "" | "wait_for")) {
        for name in &touched {
            if let Some(idx) = st.indices.get_mut(name) {
                idx.refresh();
            }
        }
    } else if let Some(r) = refresh
        && r != "false"
    {
        return Err(unsupported(format!("refresh={r}")));
    }
    Ok((200, json!({"took": 1, "errors": errors, "items": items})))
}

// ---------------------------------------------------------------------------------------------
// Queries.

type Scored = Vec<(String, f64)>;

fn field_values<'a>(doc: &'a Value, field: &str) -> Vec<&'a Value> {
    match doc.get(field) {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(a)) => a.iter().filter(|v| !v.is_null()).collect(),
        Some(v) => vec![v],
    }
}

fn values_equal(a: &Value, b: &Value) -> bool {
    match (number_of(a), number_of(b)) {
        (Some(x), Some(y)) if a.is_number() || b.is_number() => x == y,
        _ => match (a, b) {
            (Value::String(x), Value::String(y)) => x == y,
            (Value::Bool(x), Value::Bool(y)) => x == y,
            (Value::Bool(x), Value::String(y)) | (Value::String(y), Value::Bool(x)) => {
                &x.to_string() == y
            }
            _ => false,
        },
    }
}

fn single_field<'a>(q: &'a Value, kind: &str) -> Result<(&'a String, &'a Value), Failure> {
    let obj = q.as_object().ok_or_else(|| {
        fail(
            400,
            "parsing_exception",
            format!("[{kind}] query malformed"),
        )
    })?;
    let mut fields = obj
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "boost" | "_name"));
    let first = fields.next().ok_or_else(|| {
        fail(
            400,
            "parsing_exception",
            format!("[{kind}] query has no field"),
        )
    })?;
    if fields.next().is_some() {
        return Err(fail(
            400,
            "parsing_exception",
            format!("[{kind}] query doesn't support multiple fields"),
        ));
    }
    Ok(first)
}

fn boost_of(q: &Value) -> f64 {
    q.get("boost").and_then(Value::as_f64).unwrap_or(1.0)
}

/// Documents matching `query` with their scores.
/// What a query evaluation needs beyond the documents: the index name, the server's version,
/// and where k-NN searches are recorded.
struct QueryCtx<'a> {
    index: &'a str,
    version: (u32, u32),
    knn: &'a mut Vec<KnnSearch>,
}

fn eval(
    idx: &Index,
    docs: &BTreeMap<String, Arc<Doc>>,
    ctx: &mut QueryCtx<'_>,
    query: &Value,
) -> Result<Scored, Failure> {
    let obj = query.as_object().ok_or_else(|| {
        fail(
            400,
            "parsing_exception",
            "query malformed, must start with start_object",
        )
    })?;
    if obj.len() != 1 {
        return Err(fail(
            400,
            "parsing_exception",
            "[_na] query malformed, no start_object after query name",
        ));
    }
    let (kind, body) = obj.iter().next().unwrap();
    let all = || docs.iter();
    let mut out = Vec::new();
    match kind.as_str() {
        "match_all" => {
            let b = boost_of(body);
            out.extend(all().map(|(id, _)| (id.clone(), b)));
        }
        "term" => {
            let (field, v) = single_field(body, "term")?;
            let (value, b) = match v {
                Value::Object(o) => (
                    o.get("value")
                        .ok_or_else(|| unsupported("term query without value"))?,
                    v.get("boost").and_then(Value::as_f64).unwrap_or(1.0),
                ),
                other => (other, 1.0),
            };
            if let Value::Object(o) = v
                && let Some(k) = o.keys().find(|k| !matches!(k.as_str(), "value" | "boost"))
            {
                return Err(unsupported(format!(
                    "term parameter {k} is not implemented"
                )));
            }
            for (id, d) in all() {
                if field_values(&d.source, field)
                    .iter()
                    .any(|x| values_equal(x, value))
                {
                    out.push((id.clone(), b));
                }
            }
        }
        "terms" => {
            let (field, v) = single_field(body, "terms")?;
            let wanted = v
                .as_array()
                .ok_or_else(|| unsupported("terms lookup is not implemented"))?;
            let b = boost_of(body);
            for (id, d) in all() {
                if field_values(&d.source, field)
                    .iter()
                    .any(|x| wanted.iter().any(|w| values_equal(x, w)))
                {
                    out.push((id.clone(), b));
                }
            }
        }
        "range" => {
            let (field, v) = single_field(body, "range")?;
            let ro = v
                .as_object()
                .ok_or_else(|| fail(400, "parsing_exception", "[range] query malformed"))?;
            let mut bounds = Vec::new();
            for (k, bound) in ro {
                match k.as_str() {
                    "gt" | "gte" | "lt" | "lte" => {
                        let x = number_of(bound).ok_or_else(|| {
                            unsupported(format!(
                                "range bound {bound} (date math) is not implemented"
                            ))
                        })?;
                        bounds.push((k.clone(), x));
                    }
                    "format" if bound == "epoch_millis" => {}
                    "boost" => {}
                    other => {
                        return Err(unsupported(format!(
                            "range parameter {other} is not implemented"
                        )));
                    }
                }
            }
            if !matches!(
                idx.fields.get(field),
                Some(FieldType::Date | FieldType::Float | FieldType::Integer { .. })
            ) {
                return Err(unsupported(format!(
                    "range on non-numeric field {field} is not implemented"
                )));
            }
            let b = boost_of(v);
            for (id, d) in all() {
                let ok = field_values(&d.source, field)
                    .iter()
                    .filter_map(|x| number_of(x))
                    .any(|x| {
                        bounds.iter().all(|(op, y)| match op.as_str() {
                            "gt" => x > *y,
                            "gte" => x >= *y,
                            "lt" => x < *y,
                            _ => x <= *y,
                        })
                    });
                if ok {
                    out.push((id.clone(), b));
                }
            }
        }
        "exists" => {
            let field = body
                .get("field")
                .and_then(Value::as_str)
                .ok_or_else(|| unsupported("exists without field"))?;
            for (id, d) in all() {
                if !field_values(&d.source, field).is_empty() {
                    out.push((id.clone(), 1.0));
                }
            }
        }
        "ids" => {
            let values = body
                .get("values")
                .and_then(Value::as_array)
                .ok_or_else(|| unsupported("ids without values"))?;
            for (id, _) in all() {
                if values.iter().any(|v| v.as_str() == Some(id)) {
                    out.push((id.clone(), 1.0));
                }
            }
        }
        "bool" => out = eval_bool(idx, docs, ctx, body)?,
        "knn" => out = eval_knn(idx, docs, ctx, body)?,
        other => {
            return Err(unsupported(format!(
                "query type [{other}] is not implemented by the test server"
            )));
        }
    }
    Ok(out)
}

fn clauses(v: Option<&Value>) -> Vec<&Value> {
    match v {
        None => vec![],
        Some(Value::Array(a)) => a.iter().collect(),
        Some(v) => vec![v],
    }
}

fn eval_bool(
    idx: &Index,
    docs: &BTreeMap<String, Arc<Doc>>,
    ctx: &mut QueryCtx<'_>,
    body: &Value,
) -> Result<Scored, Failure> {
    if let Some(k) = body.as_object().and_then(|o| {
        o.keys().find(|k| {
            !matches!(
                k.as_str(),
                "must" | "filter" | "should" | "must_not" | "boost" | "minimum_should_match"
            )
        })
    }) {
        return Err(unsupported(format!(
            "bool parameter {k} is not implemented"
        )));
    }
    let must = clauses(body.get("must"));
    let filter = clauses(body.get("filter"));
    let should = clauses(body.get("should"));
    let must_not = clauses(body.get("must_not"));
    let mut scores: HashMap<String, f64> = docs.keys().map(|k| (k.clone(), 0.0)).collect();
    let mut keep: Option<std::collections::HashSet<String>> = None;
    let mut intersect = |set: std::collections::HashSet<String>| {
        keep = Some(match keep.take() {
            None => set,
            Some(k) => k.intersection(&set).cloned().collect(),
        });
    };
    for q in &must {
        let r = eval(idx, docs, ctx, q)?;
        for (id, s) in &r {
            *scores.get_mut(id).unwrap() += s;
        }
        intersect(r.into_iter().map(|(id, _)| id).collect());
    }
    for q in &filter {
        intersect(
            eval(idx, docs, ctx, q)?
                .into_iter()
                .map(|(id, _)| id)
                .collect(),
        );
    }
    let mut should_hits: HashMap<String, usize> = HashMap::new();
    for q in &should {
        for (id, s) in eval(idx, docs, ctx, q)? {
            *scores.get_mut(&id).unwrap() += s;
            *should_hits.entry(id).or_default() += 1;
        }
    }
    let min_should = match body.get("minimum_should_match") {
        Some(v) => v
            .as_u64()
            .map(|n| n as usize)
            .ok_or_else(|| unsupported("minimum_should_match other than an integer"))?,
        None if must.is_empty() && filter.is_empty() && !should.is_empty() => 1,
        None => 0,
    };
    let mut excluded = std::collections::HashSet::new();
    for q in &must_not {
        excluded.extend(eval(idx, docs, ctx, q)?.into_iter().map(|(id, _)| id));
    }
    let boost = boost_of(body);
    let mut out = Vec::new();
    for id in docs.keys() {
        if keep.as_ref().is_some_and(|k| !k.contains(id)) || excluded.contains(id) {
            continue;
        }
        if should_hits.get(id).copied().unwrap_or(0) < min_should {
            continue;
        }
        out.push((id.clone(), scores[id] * boost));
    }
    Ok(out)
}

fn score_of(space: Space, q: &[f64], nq: f64, v: &[f32], nv: f64) -> f64 {
    let mut dot = 0.0;
    for i in 0..q.len().min(v.len()) {
        dot += q[i] * f64::from(v[i]);
    }
    match space {
        Space::CosineSimil => {
            let cos = dot / (nq * nv);
            // Documented: d = 1 - cos, score = (2 - d) / 2 = (1 + cos) / 2.
            (2.0 - (1.0 - cos)) / 2.0
        }
        Space::InnerProduct => {
            // Documented for faiss: d = -dot; d >= 0 -> 1 / (1 + d), else -d + 1.
            let d = -dot;
            if d >= 0.0 { 1.0 / (1.0 + d) } else { -d + 1.0 }
        }
        Space::L2 => {
            let d: f64 = q
                .iter()
                .zip(v)
                .map(|(a, b)| (a - f64::from(*b)) * (a - f64::from(*b)))
                .sum();
            1.0 / (1.0 + d)
        }
    }
}

fn eval_knn(
    idx: &Index,
    docs: &BTreeMap<String, Arc<Doc>>,
    ctx: &mut QueryCtx<'_>,
    body: &Value,
) -> Result<Scored, Failure> {
    let (field, params) = single_field(body, "knn")?;
    let p = params
        .as_object()
        .ok_or_else(|| fail(400, "parsing_exception", "[knn] malformed"))?;
    for k in p.keys() {
        match k.as_str() {
            "vector" | "k" | "filter" | "boost" => {}
            "method_parameters" => {
                if ctx.version < (2, 16) {
                    // Introduced in 2.16: older versions do not know the key.
                    return Err(fail(
                        400,
                        "parsing_exception",
                        "[knn] unknown token [START_OBJECT] after [method_parameters]",
                    ));
                }
                let mp = p[k].as_object().ok_or_else(|| {
                    fail(
                        400,
                        "parsing_exception",
                        "method_parameters must be an object",
                    )
                })?;
                for (name, v) in mp {
                    if name != "ef_search" || v.as_u64().is_none_or(|x| x < 1) {
                        return Err(unsupported(format!(
                            "method_parameters.{name}={v} is not implemented"
                        )));
                    }
                }
            }
            other => {
                return Err(unsupported(format!(
                    "knn parameter {other} is not implemented by the test server"
                )));
            }
        }
    }
    let Some(FieldType::Knn {
        dim,
        space,
        engine,
        ef_search: mapping_ef,
    }) = idx.fields.get(field.as_str())
    else {
        return Err(fail(
            400,
            "query_shard_exception",
            format!("Field '{field}' is not knn_vector type."),
        ));
    };
    let vector: Vec<f64> = p
        .get("vector")
        .and_then(Value::as_array)
        .ok_or_else(|| fail(400, "parsing_exception", "[knn] requires vector"))?
        .iter()
        .map(|x| {
            x.as_f64()
                .ok_or_else(|| fail(400, "parsing_exception", "[knn] vector must hold numbers"))
        })
        .collect::<Result<_, _>>()?;
    if vector.len() != *dim {
        return Err(fail(
            400,
            "illegal_argument_exception",
            format!(
                "Query vector has invalid dimension: {}. Dimension should be: {dim}",
                vector.len()
            ),
        ));
    }
    if *space == Space::CosineSimil && vector.iter().all(|x| *x == 0.0) {
        return Err(fail(
            400,
            "illegal_argument_exception",
            "zero vector is not supported when space type is [cosinesimil]",
        ));
    }
    let k = p
        .get("k")
        .and_then(Value::as_u64)
        .ok_or_else(|| fail(400, "parsing_exception", "[knn] requires k"))? as usize;
    if k == 0 || k > 10_000 {
        return Err(fail(
            400,
            "illegal_argument_exception",
            format!("[knn] requires 0 < k <= 10000, got {k}"),
        ));
    }
    // The ef the engine searches with, as the k-NN documentation describes it: a query's
    // `method_parameters.ef_search` first; faiss then reads its mapping's method parameter
    // (default 100) and never the index setting `index.knn.algo_param.ef_search`; lucene
    // searches with k.
    let query_ef = p
        .get("method_parameters")
        .and_then(|m| m.get("ef_search"))
        .and_then(Value::as_u64);
    let (ef_search, ef_from) = match (query_ef, engine.as_str(), mapping_ef) {
        (Some(ef), _, _) => (ef, "query"),
        (None, "faiss", Some(ef)) => (*ef, "mapping"),
        (None, "faiss", None) => (100, "default"),
        _ => (k as u64, "k"),
    };
    ctx.knn.push(KnnSearch {
        index: ctx.index.to_string(),
        field: field.clone(),
        engine: engine.clone(),
        k: k as u64,
        ef_search,
        ef_from,
    });
    let allowed: Option<std::collections::HashSet<String>> = match p.get("filter") {
        Some(f) => Some(
            eval(idx, docs, ctx, f)?
                .into_iter()
                .map(|(id, _)| id)
                .collect(),
        ),
        None => None,
    };
    let boost = boost_of(params);
    let nq = vector.iter().map(|x| x * x).sum::<f64>().sqrt();
    let mut scored: Vec<(u64, String, f64)> = Vec::new();
    for (id, d) in docs {
        if allowed.as_ref().is_some_and(|a| !a.contains(id)) {
            continue;
        }
        let Some((v, nv)) = d.vectors.get(field.as_str()) else {
            continue;
        };
        // Scores are single-precision floats in OpenSearch.
        let s = score_of(*space, &vector, nq, v, *nv) as f32;
        scored.push((d.order, id.clone(), f64::from(s) * boost));
    }
    scored.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)));
    scored.truncate(k);
    Ok(scored.into_iter().map(|(_, id, s)| (id, s)).collect())
}

// ---------------------------------------------------------------------------------------------
// Search.

fn pattern_matches(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((pre, post)) => {
            if post.contains('*') {
                // Not needed by any request so far.
                return false;
            }
            name.len() >= pre.len() + post.len() && name.starts_with(pre) && name.ends_with(post)
        }
    }
}

fn string_list(v: &Value) -> Result<Vec<String>, Failure> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(a) => a
            .iter()
            .map(|x| {
                x.as_str().map(str::to_string).ok_or_else(|| {
                    fail(400, "parsing_exception", "_source patterns must be strings")
                })
            })
            .collect(),
        _ => Err(fail(
            400,
            "parsing_exception",
            "_source patterns must be strings",
        )),
    }
}

/// `_source` filtering: `true`/`false`, patterns, or `{includes, excludes}` (top-level fields).
fn filter_source(source: &Value, spec: Option<&Value>) -> Result<Option<Value>, Failure> {
    let (includes, excludes) = match spec {
        None | Some(Value::Bool(true)) => return Ok(Some(source.clone())),
        Some(Value::Bool(false)) => return Ok(None),
        Some(v @ (Value::String(_) | Value::Array(_))) => (string_list(v)?, vec![]),
        Some(Value::Object(o)) => {
            if let Some(k) = o
                .keys()
                .find(|k| !matches!(k.as_str(), "includes" | "excludes"))
            {
                return Err(unsupported(format!("_source.{k} is not implemented")));
            }
            (
                o.get("includes")
                    .map(string_list)
                    .transpose()?
                    .unwrap_or_default(),
                o.get("excludes")
                    .map(string_list)
                    .transpose()?
                    .unwrap_or_default(),
            )
        }
        Some(other) => {
            return Err(fail(
                400,
                "parsing_exception",
                format!("bad _source {other}"),
            ));
        }
    };
    if includes.iter().chain(&excludes).any(|p| p.contains('.')) {
        return Err(unsupported(
            "_source patterns on nested paths are not implemented",
        ));
    }
    let obj = source.as_object().cloned().unwrap_or_default();
    let kept: Map<String, Value> = obj
        .into_iter()
        .filter(|(k, _)| includes.is_empty() || includes.iter().any(|p| pattern_matches(p, k)))
        .filter(|(k, _)| !excludes.iter().any(|p| pattern_matches(p, k)))
        .collect();
    Ok(Some(Value::Object(kept)))
}

#[derive(Clone)]
struct SortKey {
    field: String,
    desc: bool,
}

fn parse_sort(v: &Value) -> Result<Vec<SortKey>, Failure> {
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    items
        .into_iter()
        .map(|item| match item {
            Value::String(f) => Ok(SortKey {
                field: f.clone(),
                desc: f == "_score",
            }),
            Value::Object(o) if o.len() == 1 => {
                let (f, spec) = o.iter().next().unwrap();
                let order = match spec {
                    Value::String(s) => s.as_str(),
                    Value::Object(so) => {
                        if let Some(k) = so.keys().find(|k| *k != "order") {
                            return Err(unsupported(format!("sort option {k} is not implemented")));
                        }
                        so.get("order").and_then(Value::as_str).unwrap_or("asc")
                    }
                    _ => return Err(fail(400, "parsing_exception", "bad sort")),
                };
                Ok(SortKey {
                    field: f.clone(),
                    desc: order == "desc",
                })
            }
            _ => Err(fail(400, "parsing_exception", "bad sort")),
        })
        .collect()
}

fn sort_value(doc: &Doc, id: &str, score: f64, key: &SortKey) -> Value {
    match key.field.as_str() {
        "_score" => json!(score),
        "_id" => json!(id),
        f => {
            let vals = field_values(&doc.source, f);
            // Multi-valued fields sort by their min (asc) or max (desc); missing sorts last.
            let mut best: Option<&Value> = None;
            for v in vals {
                best = Some(match best {
                    None => v,
                    Some(b) => {
                        let better = cmp_values(v, b);
                        if (key.desc && better.is_gt()) || (!key.desc && better.is_lt()) {
                            v
                        } else {
                            b
                        }
                    }
                });
            }
            best.cloned().unwrap_or(Value::Null)
        }
    }
}

fn cmp_values(a: &Value, b: &Value) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Greater,
        (_, Value::Null) => Ordering::Less,
        _ => match (number_of(a), number_of(b)) {
            (Some(x), Some(y)) if a.is_number() && b.is_number() => x.total_cmp(&y),
            _ => a
                .as_str()
                .unwrap_or_default()
                .cmp(b.as_str().unwrap_or_default()),
        },
    }
}

/// Compares two sort tuples in the requested order (missing values last either way).
fn cmp_tuples(a: &[Value], b: &[Value], keys: &[SortKey]) -> std::cmp::Ordering {
    for ((x, y), k) in a.iter().zip(b).zip(keys) {
        let mut o = cmp_values(x, y);
        if k.desc && !x.is_null() && !y.is_null() {
            o = o.reverse();
        }
        if o.is_ne() {
            return o;
        }
    }
    std::cmp::Ordering::Equal
}

fn search(idx: &Index, body: &Value, mut ctx: QueryCtx<'_>) -> Answer {
    let index = ctx.index;
    let body = if body.is_null() {
        json!({})
    } else {
        body.clone()
    };
    let obj = body
        .as_object()
        .ok_or_else(|| fail(400, "parsing_exception", "search body must be an object"))?;
    for k in obj.keys() {
        if !matches!(
            k.as_str(),
            "query"
                | "size"
                | "from"
                | "_source"
                | "track_total_hits"
                | "aggs"
                | "aggregations"
                | "sort"
                | "search_after"
        ) {
            return Err(unsupported(format!(
                "search body key {k:?} is not implemented by the test server"
            )));
        }
    }
    let docs = idx.searchable.clone();
    let matched = match obj.get("query") {
        Some(q) => eval(idx, &docs, &mut ctx, q)?,
        None => docs.keys().map(|k| (k.clone(), 1.0)).collect(),
    };
    let size = obj
        .get("size")
        .map_or(Some(10), Value::as_u64)
        .ok_or_else(|| fail(400, "parsing_exception", "size must be a number"))?
        as usize;
    let from = obj
        .get("from")
        .map_or(Some(0), Value::as_u64)
        .ok_or_else(|| fail(400, "parsing_exception", "from must be a number"))?
        as usize;
    if from + size > 10_000 {
        return Err(fail(
            400,
            "illegal_argument_exception",
            format!(
                "Result window is too large, from + size must be less than or equal to: [10000] but was [{}]",
                from + size
            ),
        ));
    }
    let sort = obj.get("sort").map(parse_sort).transpose()?;
    let mut rows: Vec<(String, f64, Arc<Doc>, Vec<Value>)> = matched
        .iter()
        .map(|(id, s)| {
            let d = docs[id].clone();
            let sv = sort
                .as_ref()
                .map(|keys| keys.iter().map(|k| sort_value(&d, id, *s, k)).collect())
                .unwrap_or_default();
            (id.clone(), *s, d, sv)
        })
        .collect();
    match &sort {
        Some(keys) => {
            rows.sort_by(|a, b| cmp_tuples(&a.3, &b.3, keys).then(a.2.order.cmp(&b.2.order)))
        }
        None => rows.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.order.cmp(&b.2.order))),
    }
    if let Some(after) = obj.get("search_after") {
        let keys = sort.as_ref().ok_or_else(|| {
            fail(
                400,
                "illegal_argument_exception",
                "Sort must contain at least one field.",
            )
        })?;
        let after = after
            .as_array()
            .filter(|a| a.len() == keys.len())
            .ok_or_else(|| {
                fail(
                    400,
                    "illegal_argument_exception",
                    "search_after has a different number of values than the sort",
                )
            })?;
        rows.retain(|r| cmp_tuples(&r.3, after, keys).is_gt());
    }
    let total = matched.len();
    let track = obj.get("track_total_hits");
    let total_json = match track {
        Some(Value::Bool(false)) => None,
        Some(Value::Bool(true)) => Some(json!({"value": total, "relation": "eq"})),
        Some(Value::Number(n)) => {
            let cap = n.as_u64().unwrap_or(10_000) as usize;
            Some(if total > cap {
                json!({"value": cap, "relation": "gte"})
            } else {
                json!({"value": total, "relation": "eq"})
            })
        }
        None => Some(if total > 10_000 {
            json!({"value": 10_000, "relation": "gte"})
        } else {
            json!({"value": total, "relation": "eq"})
        }),
        Some(other) => {
            return Err(fail(
                400,
                "parsing_exception",
                format!("bad track_total_hits {other}"),
            ));
        }
    };
    let sorted_by_field = sort
        .as_ref()
        .is_some_and(|k| k.iter().all(|k| k.field != "_score"));
    let mut hits = Vec::new();
    let mut max_score: Option<f64> = None;
    for (id, score, d, sv) in rows.iter().skip(from).take(size) {
        let mut h = Map::new();
        h.insert("_index".into(), json!(index));
        h.insert("_id".into(), json!(id));
        if sorted_by_field {
            h.insert("_score".into(), Value::Null);
        } else {
            h.insert("_score".into(), json!(*score as f32));
            max_score = Some(max_score.map_or(*score, |m: f64| m.max(*score)));
        }
        if let Some(src) = filter_source(&d.source, obj.get("_source"))? {
            h.insert("_source".into(), src);
        }
        if sort.is_some() {
            h.insert("sort".into(), Value::Array(sv.clone()));
        }
        hits.push(Value::Object(h));
    }
    let mut hits_obj = Map::new();
    if let Some(t) = total_json {
        hits_obj.insert("total".into(), t);
    }
    hits_obj.insert(
        "max_score".into(),
        max_score.map_or(Value::Null, |m| json!(m as f32)),
    );
    hits_obj.insert("hits".into(), Value::Array(hits));
    let mut out = json!({
        "took": 1,
        "timed_out": false,
        "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
        "hits": Value::Object(hits_obj),
    });
    if let Some(aggs) = obj.get("aggs").or_else(|| obj.get("aggregations")) {
        out["aggregations"] = aggregations(idx, &docs, &matched, aggs)?;
    }
    Ok((200, out))
}

fn aggregations(
    idx: &Index,
    docs: &BTreeMap<String, Arc<Doc>>,
    matched: &Scored,
    aggs: &Value,
) -> Result<Value, Failure> {
    let mut out = Map::new();
    for (name, def) in aggs
        .as_object()
        .ok_or_else(|| fail(400, "parsing_exception", "aggs must be an object"))?
    {
        let o = def
            .as_object()
            .filter(|o| o.len() == 1)
            .ok_or_else(|| unsupported("sub-aggregations and meta are not implemented"))?;
        let (kind, params) = o.iter().next().unwrap();
        let field = params
            .get("field")
            .and_then(Value::as_str)
            .ok_or_else(|| unsupported(format!("{kind} aggregation without field")))?;
        if !idx.fields.contains_key(field) {
            return Err(unsupported(format!(
                "aggregation on unmapped field {field}"
            )));
        }
        let mut counts: BTreeMap<String, (Value, u64)> = BTreeMap::new();
        for (id, _) in matched {
            let mut seen = std::collections::HashSet::new();
            for v in field_values(&docs[id].source, field) {
                let key = v
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string());
                if seen.insert(key.clone()) {
                    counts.entry(key).or_insert_with(|| (v.clone(), 0)).1 += 1;
                }
            }
        }
        match kind.as_str() {
            "terms" => {
                if let Some(k) = params
                    .as_object()
                    .and_then(|p| p.keys().find(|k| !matches!(k.as_str(), "field" | "size")))
                {
                    return Err(unsupported(format!(
                        "terms aggregation parameter {k} is not implemented"
                    )));
                }
                let size = params.get("size").and_then(Value::as_u64).unwrap_or(10) as usize;
                let mut buckets: Vec<(Value, u64)> = counts.into_values().collect();
                buckets.sort_by(|a, b| b.1.cmp(&a.1).then(cmp_values(&a.0, &b.0)));
                let other: u64 = buckets.iter().skip(size).map(|b| b.1).sum();
                buckets.truncate(size);
                out.insert(name.clone(), json!({
                    "doc_count_error_upper_bound": 0,
                    "sum_other_doc_count": other,
                    "buckets": buckets.into_iter().map(|(k, n)| json!({"key": k, "doc_count": n})).collect::<Vec<_>>(),
                }));
            }
            "cardinality" => {
                if let Some(k) = params.as_object().and_then(|p| {
                    p.keys()
                        .find(|k| !matches!(k.as_str(), "field" | "precision_threshold"))
                }) {
                    return Err(unsupported(format!(
                        "cardinality parameter {k} is not implemented"
                    )));
                }
                out.insert(name.clone(), json!({"value": counts.len()}));
            }
            other => {
                return Err(unsupported(format!(
                    "aggregation {other} is not implemented by the test server"
                )));
            }
        }
    }
    Ok(Value::Object(out))
}

fn delete_by_query(
    index: &str,
    idx: &mut Index,
    body: &Value,
    query: &[(String, String)],
    time_out: bool,
    version: (u32, u32),
) -> Answer {
    let obj = body.as_object().ok_or_else(|| {
        fail(
            400,
            "action_request_validation_exception",
            "query is missing",
        )
    })?;
    if let Some(k) = obj.keys().find(|k| *k != "query") {
        return Err(unsupported(format!(
            "delete_by_query body key {k} is not implemented"
        )));
    }
    let q = obj.get("query").ok_or_else(|| {
        fail(
            400,
            "action_request_validation_exception",
            "Validation Failed: 1: query is missing;",
        )
    })?;
    let mut refresh = false;
    let mut proceed = false;
    for (k, v) in query {
        match (k.as_str(), v.as_str()) {
            ("refresh", "true" | "") => refresh = true,
            ("refresh", "false") => {}
            ("conflicts", "proceed") => proceed = true,
            ("conflicts", "abort") => {}
            _ => {
                return Err(unsupported(format!(
                    "delete_by_query parameter {k}={v} is not implemented"
                )));
            }
        }
    }
    // Works on a point-in-time view of what is searchable, like OpenSearch's scroll.
    let snapshot = idx.searchable.clone();
    let mut knn = Vec::new();
    let mut ctx = QueryCtx {
        index,
        version,
        knn: &mut knn,
    };
    let matched = eval(idx, &snapshot, &mut ctx, q)?;
    let mut deleted = 0u64;
    let mut conflicts = 0u64;
    // A request whose time runs out stops part way: what it deleted stays deleted.
    let stop_after = if time_out {
        matched.len() / 2
    } else {
        matched.len()
    };
    for (id, _) in matched.iter().take(stop_after) {
        let seen = &snapshot[id];
        match idx.live.get(id) {
            Some(cur) if cur.seq_no == seen.seq_no => {
                idx.live.remove(id);
                idx.next_seq += 1;
                idx.changed(id, None);
                deleted += 1;
            }
            _ => {
                conflicts += 1;
                if !proceed {
                    return Err(fail(
                        409,
                        "version_conflict_engine_exception",
                        format!("[{id}]: version conflict"),
                    ));
                }
            }
        }
    }
    if refresh {
        idx.refresh();
    }
    Ok((
        200,
        json!({
            "took": 1, "timed_out": time_out, "total": matched.len(), "deleted": deleted, "batches": 1,
            "version_conflicts": conflicts, "noops": 0, "retries": {"bulk": 0, "search": 0},
            "throttled_millis": 0, "requests_per_second": -1.0, "throttled_until_millis": 0, "failures": [],
        }),
    ))
}
