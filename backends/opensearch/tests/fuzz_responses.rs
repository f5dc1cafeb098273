//! Fuzz target of the crate's parsers of OpenSearch answers: a proxy in front of the k-NN test
//! server forwards every request and mutates the answers a case picks (the JSON body's values
//! replaced by hostile ones, items removed or repeated, bytes changed, the body cut or emptied,
//! the status replaced), so every parser sees mutations of real answers: cluster info, index
//! existence and mappings, bulk items, search hits, counts, and the Serverless catalog's
//! documents. Each case runs a small scenario through the public API (connect, upsert, search,
//! stats, delete; for the catalog: upsert, get, set status, list, counts, remove) and asserts
//! that every call returns a typed error or a sane answer, never panics and never hangs.
//! `CROSSMODAL_FUZZ_CASES` raises the case count.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use crossmodal_core::fuzz::{self, JsonMutation, LIVENESS, Mutation};
use crossmodal_core::{
    AssetCatalog, AssetId, AssetQuery, AssetState, AssetStatus, EmbeddingSpace, ErrorKind, Filter,
    IndexSpec, MediaFormat, MediaKind, RetryPolicy, VectorIndex, VectorQuery,
};
use crossmodal_opensearch::{OpenSearchCatalog, OpenSearchConfigBuilder, OpenSearchIndex};
use crossmodal_testkit::knn_server::KnnServer;
use proptest::prelude::*;

/// How one answer is changed.
#[derive(Debug, Clone)]
enum AnswerMutation {
    Json(Vec<JsonMutation>),
    Bytes(Vec<Mutation>),
    Status(u16),
    Empty,
    Cut(u64),
}

fn answer_mutation() -> impl Strategy<Value = AnswerMutation> {
    prop_oneof![
        6 => proptest::collection::vec(fuzz::json_mutation(), 1..4).prop_map(AnswerMutation::Json),
        2 => proptest::collection::vec(fuzz::mutation(), 1..4).prop_map(AnswerMutation::Bytes),
        1 => prop::sample::select(vec![200u16, 201, 204, 301, 400, 401, 403, 404, 409, 413, 500])
            .prop_map(AnswerMutation::Status),
        1 => Just(AnswerMutation::Empty),
        1 => any::<u64>().prop_map(AnswerMutation::Cut),
    ]
}

/// The answers of a case to change: `(answer number, how)`.
type Plan = Vec<(usize, AnswerMutation)>;

fn plan(answers: usize) -> impl Strategy<Value = Plan> {
    proptest::collection::vec((0..answers, answer_mutation()), 1..4)
}

#[derive(Default)]
struct ProxyState {
    plan: Plan,
    answered: usize,
    mutated: usize,
}

/// A proxy on 127.0.0.1 that forwards to `upstream` and mutates answers per the current plan.
struct Proxy {
    addr: SocketAddr,
    state: Arc<Mutex<ProxyState>>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let state = Arc::new(Mutex::new(ProxyState::default()));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let shared = state.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let (client, upstream, state) = (client.clone(), upstream.clone(), shared.clone());
                async move { forward(client, upstream, state, method, uri, headers, body).await }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Proxy { addr, state }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn begin(&self, plan: Plan) {
        let mut st = self.state.lock().unwrap();
        *st = ProxyState {
            plan,
            ..ProxyState::default()
        };
    }

    fn answered(&self) -> (usize, usize) {
        let st = self.state.lock().unwrap();
        (st.answered, st.mutated)
    }
}

async fn forward(
    client: reqwest::Client,
    upstream: String,
    state: Arc<Mutex<ProxyState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut request = client.request(method, format!("{upstream}{path}"));
    for (name, value) in &headers {
        if name != "content-length" {
            request = request.header(name, value);
        }
    }
    let (status, content_type, bytes) = match request.body(body).send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let ty = r
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/json")
                .to_string();
            (status, ty, r.bytes().await.unwrap_or_default().to_vec())
        }
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let change = {
        let mut st = state.lock().unwrap();
        let n = st.answered;
        st.answered += 1;
        let change = st
            .plan
            .iter()
            .find(|(i, _)| *i == n)
            .map(|(_, m)| m.clone());
        if change.is_some() {
            st.mutated += 1;
        }
        change
    };
    let (status, bytes) = match change {
        None => (status, bytes),
        Some(AnswerMutation::Json(muts)) => match serde_json::from_slice(&bytes) {
            Ok(doc) => (status, fuzz::apply_json(&doc, &muts)),
            Err(_) => (status, bytes),
        },
        Some(AnswerMutation::Bytes(muts)) => (status, fuzz::apply(&bytes, &muts)),
        Some(AnswerMutation::Status(s)) => (s, bytes),
        Some(AnswerMutation::Empty) => (status, Vec::new()),
        Some(AnswerMutation::Cut(at)) => {
            let keep = fuzz::Pos(at).index(bytes.len());
            (status, bytes[..keep].to_vec())
        }
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    (status, [("content-type", content_type)], bytes).into_response()
}

/// Fast retries (one retry) and short time-outs: the fuzz case count matters more here.
fn tuned(builder: OpenSearchConfigBuilder) -> OpenSearchConfigBuilder {
    builder
        .retry(
            RetryPolicy::default()
                .max_attempts(2)
                .initial_backoff(Duration::from_millis(1))
                .max_backoff(Duration::from_millis(2))
                .jitter(false)
                .deadline(Some(Duration::from_secs(10))),
        )
        .request_timeout(Duration::from_secs(10))
        .visibility_timeout(Duration::from_millis(250))
}

fn label(op: &str, e: &crossmodal_core::Error) -> String {
    format!("{op}: {:?}", e.kind())
}

/// An error must be one of the kinds a backend answers with, and say something.
fn check_error(op: &str, e: &crossmodal_core::Error) -> Result<(), TestCaseError> {
    prop_assert!(!e.message().is_empty(), "{}: an empty message", op);
    prop_assert!(
        !matches!(e.kind(), ErrorKind::InvalidInput),
        "{}: the crate's own request was called invalid input: {}",
        op,
        e
    );
    Ok(())
}

fn check_hits(hits: &[crossmodal_core::Hit], k: usize) -> Result<(), TestCaseError> {
    prop_assert!(hits.len() <= k, "{} hits for k = {}", hits.len(), k);
    for h in hits {
        prop_assert!(
            h.score.is_finite() && (-1.0..=1.0).contains(&h.score),
            "score {}",
            h.score
        );
    }
    Ok(())
}

/// connect, upsert, search (two spaces, one filtered), stats, delete, search.
async fn index_scenario(url: String, n: u64) -> Result<String, TestCaseError> {
    let config = tuned(common::builder(&url, &format!("fz{n}")))
        .build()
        .unwrap();
    let index = match OpenSearchIndex::connect(config, IndexSpec::new("fuzz-model", 4)).await {
        Ok(i) => i,
        Err(e) => {
            check_error("connect", &e)?;
            return Ok(label("connect", &e));
        }
    };
    let records: Vec<_> = (0..4)
        .map(|i| {
            let space = if i % 2 == 0 {
                EmbeddingSpace::Visual
            } else {
                EmbeddingSpace::Audio
            };
            common::record(i, space, i, vec![1.0 + i as f32, 0.5, -0.25, 0.125])
        })
        .collect();
    let mut outcome = Vec::new();
    match index.upsert(records.clone()).await {
        Ok(()) => outcome.push("upsert ok".to_string()),
        Err(e) => {
            check_error("upsert", &e)?;
            outcome.push(label("upsert", &e));
        }
    }
    for (space, filter) in [
        (EmbeddingSpace::Visual, None),
        (
            EmbeddingSpace::Audio,
            Some(Filter {
                kinds: vec![MediaKind::Audio],
                ..Filter::default()
            }),
        ),
    ] {
        let mut q = VectorQuery::new(space, vec![1.0, 0.4, -0.2, 0.1], 3);
        if let Some(f) = filter {
            q = q.filter(f);
        }
        match index.search(&q).await {
            Ok(hits) => check_hits(&hits, 3)?,
            Err(e) => {
                check_error("search", &e)?;
                outcome.push(label("search", &e));
            }
        }
    }
    match index.stats().await {
        Ok(s) => prop_assert!(s.vectors() <= 1_000_000, "{:?}", s),
        Err(e) => {
            check_error("stats", &e)?;
            outcome.push(label("stats", &e));
        }
    }
    if let Err(e) = index.delete_asset(&records[0].asset_id).await {
        check_error("delete", &e)?;
        outcome.push(label("delete", &e));
    }
    let _ = index.delete_index().await;
    Ok(outcome.join(", "))
}

fn asset(n: u32, status: AssetStatus) -> crossmodal_core::AssetRecord {
    common::asset_record(
        n,
        MediaFormat::Png,
        status,
        1_700_000_000_000 + i64::from(n),
    )
}

/// The catalog (on Serverless when `serverless`, else on a cluster): connect, upsert, get,
/// set status, list, counts, remove.
async fn catalog_scenario(url: String, n: u64, serverless: bool) -> Result<String, TestCaseError> {
    let builder = if serverless {
        #[cfg(feature = "aws-auth")]
        {
            common::serverless_builder(&url, &format!("fc{n}"))
        }
        #[cfg(not(feature = "aws-auth"))]
        {
            unreachable!("Serverless needs the aws-auth feature")
        }
    } else {
        common::builder(&url, &format!("fm{n}"))
    };
    let config = tuned(builder).build().unwrap();
    let catalog = match OpenSearchCatalog::connect(config).await {
        Ok(c) => c,
        Err(e) => {
            check_error("connect", &e)?;
            return Ok(label("catalog connect", &e));
        }
    };
    let mut outcome = Vec::new();
    let first = asset(1, AssetStatus::Pending);
    let id: AssetId = first.asset_id.clone();
    for r in [first, asset(2, AssetStatus::Indexed)] {
        if let Err(e) = catalog.upsert(&r).await {
            check_error("upsert", &e)?;
            outcome.push(label("upsert", &e));
        }
    }
    match catalog.get(&id).await {
        Ok(Some(r)) => prop_assert_eq!(&r.asset_id, &id),
        Ok(None) => outcome.push("get: none".into()),
        Err(e) => {
            check_error("get", &e)?;
            outcome.push(label("get", &e));
        }
    }
    if let Err(e) = catalog.set_status(&id, &AssetStatus::Indexed).await {
        check_error("set_status", &e)?;
        outcome.push(label("set_status", &e));
    }
    match catalog
        .list(&AssetQuery::new().state(AssetState::Indexed).limit(10))
        .await
    {
        Ok(page) => prop_assert!(page.assets.len() <= 10),
        Err(e) => {
            check_error("list", &e)?;
            outcome.push(label("list", &e));
        }
    }
    if let Err(e) = catalog.counts().await {
        check_error("counts", &e)?;
        outcome.push(label("counts", &e));
    }
    if let Err(e) = catalog.remove(&id).await {
        check_error("remove", &e)?;
        outcome.push(label("remove", &e));
    }
    let _ = catalog.delete_index().await;
    Ok(outcome.join(", "))
}

/// What the proxy forwards to.
enum Upstream {
    Knn(KnnServer),
    Url(String),
}

fn run_target(
    name: &str,
    cases: u32,
    answers: usize,
    upstream: Upstream,
    scenario: fn(String, u64) -> futures::future::BoxFuture<'static, Result<String, TestCaseError>>,
) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let target = match &upstream {
        Upstream::Knn(server) => server.url(),
        Upstream::Url(url) => url.clone(),
    };
    let proxy = rt.block_on(Proxy::start(target));
    let url = proxy.url();
    // Unchanged answers pass: the scenario is sound against the real test server.
    proxy.begin(Vec::new());
    let clean = rt.block_on(scenario(url.clone(), 0)).unwrap();
    assert!(
        !clean.contains(':'),
        "{name}: the unmutated scenario failed: {clean}"
    );
    let (answered, _) = proxy.answered();
    eprintln!("fuzz {name}: the scenario makes {answered} requests");
    let counter = std::sync::atomic::AtomicU64::new(1);
    let handle = rt.handle().clone();
    let mutated_total = std::sync::atomic::AtomicUsize::new(0);
    fuzz::run(name, cases, plan(answers), |plan| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        proxy.begin(plan);
        let url = url.clone();
        let handle = handle.clone();
        let outcome = fuzz::within(LIVENESS, move || handle.block_on(scenario(url, n)))??;
        mutated_total.fetch_add(proxy.answered().1, std::sync::atomic::Ordering::Relaxed);
        Ok(if outcome.is_empty() {
            "all ok".into()
        } else {
            outcome
        })
    });
    eprintln!(
        "fuzz {name}: {} answers mutated in all",
        mutated_total.load(std::sync::atomic::Ordering::Relaxed)
    );
    drop(upstream);
}

#[test]
fn fuzz_index_answers() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(KnnServer::start());
    server.record_bodies(false);
    run_target(
        "OpenSearch index answers",
        fuzz::cases(150),
        11,
        Upstream::Knn(server),
        |url, n| Box::pin(index_scenario(url, n)),
    );
}

#[cfg(feature = "aws-auth")]
#[test]
fn fuzz_serverless_catalog_answers() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(KnnServer::start_serverless(Duration::from_millis(20)));
    server.record_bodies(false);
    run_target(
        "OpenSearch Serverless catalog answers",
        fuzz::cases(100),
        17,
        Upstream::Knn(server),
        |url, n| Box::pin(catalog_scenario(url, n, true)),
    );
}

#[test]
fn fuzz_cluster_catalog_answers() {
    // The catalog on a cluster needs osmem-server (the k-NN test server implements only what
    // the index and the Serverless catalog send).
    let Some(url) = common::osmem_url("fuzz_cluster_catalog_answers") else {
        return;
    };
    run_target(
        "OpenSearch cluster catalog answers (osmem-server)",
        fuzz::cases(100),
        14,
        Upstream::Url(url),
        |url, n| Box::pin(catalog_scenario(url, n, false)),
    );
}
