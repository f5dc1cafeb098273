//! An OpenSearch k-NN test server: the subset of the REST API the backend uses, implemented as
//! the OpenSearch documentation describes it (k-NN plugin: `knn_vector` mappings, the `knn`
//! query with efficient filtering, the documented scores), not as the backend would like it.
//!
//! - `GET /`, `HEAD|PUT|DELETE /<index>`, `GET /<index>/_mapping`, `POST /<index>/_bulk` (and
//!   `/_bulk`: `index`, `create`, `delete`, and `update` with a partial `doc` merged into
//!   `_source` as OpenSearch merges it), `POST /<index>/_refresh`, `POST|GET /<index>/_search`,
//!   `POST /<index>/_delete_by_query`.
//! - Mappings: `keyword`, numbers, `date`, `boolean`, `knn_vector`, `text` with `keyword`
//!   sub-fields, `object` with `"enabled": false` (kept in `_source`, never searchable).
//! - Queries: `term`, `terms`, `range` (numeric, date, and keyword ranges compared byte-wise as
//!   Lucene compares terms), `exists`, `ids`, `bool` (`must`, `filter`, `should`, `must_not`),
//!   `match_all`, `knn`, and `match` on `text` fields: the `standard` analyzer and BM25
//!   ([`text`]), `boost` on every query, `bool.should` scores summed, `minimum_should_match`;
//!   `terms` scores a constant `boost`. `term` / `terms` / `range` on a `text` field stay refused
//!   (not implemented), as does `collapse`.
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

mod bulk;
mod mapping;
mod query;
mod search;
pub mod serverless;
pub mod spec;
pub mod text;

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

use bulk::*;
use mapping::*;
use query::*;
use search::*;
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
    /// `text` (analysed by the `standard` analyzer for `match`; term-level queries refused),
    /// with its `fields` sub-fields (`keyword` only), searchable as `<field>.<sub-field>`.
    Text {
        fields: BTreeMap<String, FieldType>,
    },
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
