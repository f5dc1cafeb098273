//! Fuzz target of the multipart uploads (`POST /api/assets`, `POST /api/search/upload`): valid
//! forms carrying the fixtures, their tags and search options, mutated as bytes (boundaries,
//! part headers, file names, contents and all), sent to the router in-process. Every answer
//! must be a 2xx or a 4xx with the JSON error envelope naming the problem (never a 5xx or a
//! panic), no request may hang, and afterwards the service still serves and holds no asset
//! half-ingested. `CROSSMODAL_FUZZ_CASES` raises the case count.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use crossmodal_core::Engine;
use crossmodal_core::fuzz::{self, LIVENESS};
use crossmodal_server::Service;
use proptest::prelude::*;
use serde_json::Value;
use support::{TOKEN, TopicProvider, fixture, mime};
use tower::ServiceExt;

const BOUNDARY: &str = "XfuzzBoundaryX";

/// One part: `(field, file name, content type, bytes)`.
type Part<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Vec<u8>);

/// A multipart body by hand.
fn body(parts: &[Part<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (field, file, ty, bytes) in parts {
        out.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let disposition = match file {
            Some(f) => {
                format!("Content-Disposition: form-data; name=\"{field}\"; filename=\"{f}\"\r\n")
            }
            None => format!("Content-Disposition: form-data; name=\"{field}\"\r\n"),
        };
        out.extend_from_slice(disposition.as_bytes());
        if let Some(t) = ty {
            out.extend_from_slice(format!("Content-Type: {t}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(bytes);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    out
}

fn file_part(
    name: &'static str,
) -> (
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    Vec<u8>,
) {
    ("file", Some(name), Some(mime(name)), fixture(name))
}

/// (path, body) seeds.
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "/api/assets",
            body(&[
                file_part("image.png"),
                ("tags", None, None, b"sunset, beach".to_vec()),
            ]),
        ),
        (
            "/api/assets",
            body(&[file_part("image.jpg"), file_part("image.webp")]),
        ),
        ("/api/assets?wait=true", body(&[file_part("video.mp4")])),
        (
            "/api/assets",
            body(&[file_part("audio.mp3"), ("tags", None, None, b"x".to_vec())]),
        ),
        (
            "/api/search/upload",
            body(&[
                file_part("image.jpg"),
                ("mode", None, None, b"visual".to_vec()),
                ("kinds", None, None, b"image,video".to_vec()),
                ("k", None, None, b"5".to_vec()),
                ("min_score", None, None, b"0.1".to_vec()),
            ]),
        ),
        (
            "/api/search/upload",
            body(&[
                file_part("image.png"),
                ("mode", None, None, b"auto".to_vec()),
            ]),
        ),
    ]
}

#[test]
fn fuzz_multipart_uploads() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let provider = Arc::new(TopicProvider::new());
    let engine: Engine = rt
        .block_on(Engine::open_local(dir.path().join("data"), provider))
        .unwrap();
    let service = Service::new(
        engine.clone(),
        support::config(&dir.path().join("thumbnails")),
    );
    let router = service.router();
    let seeds = seeds();
    let paths: Vec<&'static str> = seeds.iter().map(|s| s.0).collect();
    let bodies: Vec<Vec<u8>> = seeds.iter().map(|s| s.1.clone()).collect();
    let handle = rt.handle().clone();

    // The seeds themselves are accepted.
    for (path, bytes) in &seeds {
        let (status, _) = handle.block_on(send(&router, path, bytes.clone()));
        assert!(status.is_success(), "seed {path}: {status}");
    }

    fuzz::run(
        "multipart uploads",
        fuzz::cases(600),
        fuzz::mutated(bodies),
        |(seed, bytes)| {
            let path = paths.get(seed).copied().unwrap_or("/api/assets");
            let router = router.clone();
            let handle = handle.clone();
            let (status, answer) = fuzz::within(LIVENESS, move || {
                handle.block_on(send(&router, path, bytes))
            })?;
            prop_assert!(
                !status.is_server_error(),
                "{} answered {}: {}",
                path,
                status,
                answer
            );
            if status.is_client_error() {
                let kind = answer["error"]["kind"].as_str().unwrap_or_default();
                let message = answer["error"]["message"].as_str().unwrap_or_default();
                prop_assert!(
                    !kind.is_empty() && !message.is_empty(),
                    "{} {}: no error envelope: {}",
                    path,
                    status,
                    answer
                );
                Ok(format!(
                    "{} {} {kind}",
                    path.split('?').next().unwrap_or(path),
                    status.as_u16()
                ))
            } else {
                prop_assert!(answer.is_object(), "{}: {}", path, answer);
                Ok(format!(
                    "{} {}",
                    path.split('?').next().unwrap_or(path),
                    status.as_u16()
                ))
            }
        },
    );

    // Still serving, and every asset it took in is finished (indexed or failed), none left
    // pending or embedding.
    let (status, stats) = handle.block_on(get(&router, "/api/stats"));
    assert_eq!(status, StatusCode::OK, "{stats}");
    let counts = handle.block_on(engine.counts()).unwrap();
    assert_eq!(
        (counts.pending, counts.embedding),
        (0, 0),
        "no upload is left half-ingested: {counts:?}"
    );
    assert!(counts.indexed >= 5, "the fixtures are indexed: {counts:?}");
    eprintln!("fuzz multipart uploads: afterwards {counts:?}");
}

async fn send(router: &axum::Router, path: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
    let request = Request::post(path)
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::from(bytes))
        .unwrap();
    answer(router, request).await
}

async fn get(router: &axum::Router, path: &str) -> (StatusCode, Value) {
    let request = Request::get(path)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    answer(router, request).await
}

async fn answer(router: &axum::Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 64 << 20)
        .await
        .unwrap();
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            Value::String(format!("not JSON: {}", String::from_utf8_lossy(&bytes)))
        })
    };
    (status, value)
}
