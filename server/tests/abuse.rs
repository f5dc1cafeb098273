//! Issue 15, point 2: the API under abuse, against the running service. Malformed and truncated
//! multipart, bodies over the limit, a client that stalls or trickles its upload, 50 concurrent
//! uploads of one file, 50 searches during a batch ingest, path traversal and control
//! characters in names and ids, non-UTF-8 and 100 kB queries, `k` of 0 and 10^9, unknown ids, a
//! missing or wrong token. Every refusal is a 4xx/5xx with a JSON error naming the problem; the
//! service keeps serving; the data directory holds whole originals only.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Reads one HTTP response from `stream`: its status and JSON body.
async fn read_response(stream: &mut (impl AsyncReadExt + Unpin)) -> (u16, Value) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = tokio::time::timeout_at(deadline.into(), stream.read(&mut chunk))
                    .await
                    .expect("the response body in time")
                    .unwrap();
                assert!(n > 0, "connection closed inside the body: {head}");
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = &buf[end + 4..end + 4 + len];
            let json: Value = serde_json::from_slice(body).unwrap_or_else(|e| {
                panic!("not JSON ({e}): {head}\n{}", String::from_utf8_lossy(body))
            });
            return (status, json);
        }
        let n = tokio::time::timeout_at(deadline.into(), stream.read(&mut chunk))
            .await
            .expect("a response in time")
            .unwrap();
        assert!(n > 0, "connection closed without a response");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Sends `head` (request line and headers, without the blank line) and `body` on a new
/// connection, and reads the answer.
async fn raw(addr: SocketAddr, head: &str, body: &[u8]) -> (u16, Value) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request =
        format!("{head}\r\nhost: test\r\nauthorization: Bearer {TOKEN}\r\n\r\n").into_bytes();
    request.extend_from_slice(body);
    stream.write_all(&request).await.unwrap();
    read_response(&mut stream).await
}

/// A JSON error naming the problem, with the expected status.
fn refused(got: (u16, Value), status: u16, kind: &str, mentions: &str) {
    let (s, body) = got;
    assert_eq!(s, status, "{body:#}");
    assert_eq!(body["error"]["kind"], kind, "{body:#}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.to_lowercase().contains(&mentions.to_lowercase()),
        "the message should name {mentions:?}: {message}"
    );
}

fn multipart_head(path: &str, boundary: &str, len: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\ncontent-type: multipart/form-data; boundary={boundary}\r\n\
         content-length: {len}"
    )
}

fn part(boundary: &str, disposition: &str, bytes: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "--{boundary}\r\ncontent-disposition: form-data; {disposition}\r\n\
         content-type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
    out
}

/// What the abuse leaves behind: whole originals only, every asset finished.
async fn assert_directory_whole(s: &Server) {
    s.assert_serving().await;
    let (_, stats) = s.get("/api/stats").await;
    let c = &stats["counts"];
    assert_eq!(c["pending"], 0, "{stats:#}");
    assert_eq!(c["embedding"], 0, "{stats:#}");
    let (_, list) = s.get("/api/assets?limit=1000").await;
    let assets = list["assets"].as_array().unwrap();
    for a in assets {
        if a["media_url"].is_null() {
            continue;
        }
        let bytes = s
            .http
            .get(s.url(a["media_url"].as_str().unwrap()))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(
            crossmodal_core::AssetId::from_content(&bytes).as_str(),
            a["asset_id"],
            "a stored original is not whole"
        );
    }
    let media: Vec<_> = files_under(&s.data_dir().join("media"));
    assert_eq!(
        media.len(),
        assets.iter().filter(|a| !a["media_url"].is_null()).count(),
        "stored files and assets disagree: {media:?}"
    );
    for f in &media {
        let name = f.file_name().unwrap().to_string_lossy();
        assert!(
            !name.starts_with('.') && !name.contains("tmp"),
            "a temporary file was left: {f:?}"
        );
    }
    // Nothing was written outside the service's directories.
    let top: Vec<String> = std::fs::read_dir(s.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        top.iter().all(|n| n == "data" || n == "thumbnails"),
        "{top:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_truncated_multipart_get_json_errors() {
    let s = Server::start(|_| {}).await;
    let b = "XyZboundary";
    let png = fixture("image.png");

    // Not multipart at all behind a multipart content type.
    let body = b"this is not multipart at all";
    refused(
        raw(s.addr, &multipart_head("/api/assets", b, body.len()), body).await,
        400,
        "invalid_input",
        "multipart",
    );
    // No boundary.
    let body = part(b, "name=\"file\"; filename=\"a.png\"", &png);
    let head = format!(
        "POST /api/assets HTTP/1.1\r\ncontent-type: multipart/form-data\r\ncontent-length: {}",
        body.len()
    );
    refused(
        raw(s.addr, &head, &body).await,
        400,
        "invalid_input",
        "boundary",
    );
    // Truncated: the file part is cut off half-way, no closing boundary.
    let mut body = part(b, "name=\"file\"; filename=\"a.png\"", &png);
    body.truncate(body.len() / 2);
    for path in ["/api/assets", "/api/search/upload"] {
        refused(
            raw(s.addr, &multipart_head(path, b, body.len()), &body).await,
            400,
            "invalid_input",
            "multipart",
        );
    }
    // A part whose headers are broken.
    let body = format!("--{b}\r\ncontent-disposition form-data\r\n\r\nxx\r\n--{b}--\r\n");
    refused(
        raw(
            s.addr,
            &multipart_head("/api/assets", b, body.len()),
            body.as_bytes(),
        )
        .await,
        400,
        "invalid_input",
        "multipart",
    );
    // A part without a name, and one whose name is a path with control characters.
    let mut body = part(b, "filename=\"a.png\"", &png);
    body.extend_from_slice(format!("--{b}--\r\n").as_bytes());
    refused(
        raw(s.addr, &multipart_head("/api/assets", b, body.len()), &body).await,
        400,
        "invalid_input",
        "form field",
    );
    let mut body = part(b, "name=\"../fi\u{7}le\"; filename=\"a.png\"", &png);
    body.extend_from_slice(format!("--{b}--\r\n").as_bytes());
    let (status, answer) = raw(s.addr, &multipart_head("/api/assets", b, body.len()), &body).await;
    assert_eq!(status, 400, "{answer:#}");
    assert_eq!(answer["error"]["kind"], "invalid_input");
    // A JSON body on the upload route, and multipart on the JSON route.
    let r = s
        .http
        .post(s.url("/api/assets"))
        .json(&json!({ "file": "x" }))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(r).await;
    assert!(status.is_client_error(), "{status}");
    assert!(body["error"]["message"].is_string());
    let r = s
        .http
        .post(s.url("/api/search"))
        .multipart(form(&[("image.png", png.clone())], None))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(r).await;
    assert_error(
        status,
        &body,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported",
    );
    assert_directory_whole(&s).await;
    assert_eq!(
        s.provider
            .media_calls
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_are_refused_before_they_are_read() {
    let s = Server::start(|c| {
        c.max_request_bytes = 100_000;
        c.max_json_bytes = 10_000;
    })
    .await;
    // Declared too large: answered at once, without the body being sent.
    let head = multipart_head("/api/assets", "b", 50_000_000);
    refused(
        raw(s.addr, &head, b"").await,
        413,
        "invalid_input",
        "too large",
    );
    // Sent chunked without a length: cut off at the limit.
    let mut stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let mut req = format!(
        "POST /api/assets HTTP/1.1\r\nhost: t\r\nauthorization: Bearer {TOKEN}\r\n\
         content-type: multipart/form-data; boundary=b\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    let mut body = part(
        "b",
        "name=\"file\"; filename=\"big.png\"",
        &vec![7u8; 300_000],
    );
    body.extend_from_slice(b"--b--\r\n");
    for chunk in body.chunks(16_384) {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(chunk);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    // The server may answer before it has read everything: write what it takes.
    let _ = stream.write_all(&req).await;
    refused(
        read_response(&mut stream).await,
        413,
        "invalid_input",
        "too large",
    );
    // An upload under the upload limit but over the JSON limit is fine.
    let (status, body) = s
        .upload("/api/assets", &[("audio.wav", fixture("audio.wav"))], None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    // A JSON body over its own limit.
    let big = json!({ "text": "x".repeat(20_000) });
    let r = s
        .http
        .post(s.url("/api/search"))
        .json(&big)
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(r).await;
    assert_error(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "invalid_input",
    );
    assert_directory_whole(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stalls_its_upload_is_timed_out_and_frees_its_slot() {
    let s = Server::start(|c| {
        c.upload_concurrency = 1;
        c.body_idle_timeout = Duration::from_millis(500);
        c.request_timeout = Duration::from_secs(3);
    })
    .await;
    // The only upload slot: a client sends half its file, then nothing.
    let png = fixture("image.png");
    let mut upload = part("b", "name=\"file\"; filename=\"slow.png\"", &png);
    upload.extend_from_slice(b"--b--\r\n");
    let mut stalled = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let head = format!(
        "{}\r\nhost: t\r\nauthorization: Bearer {TOKEN}\r\n\r\n",
        multipart_head("/api/assets", "b", upload.len())
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    stalled
        .write_all(&upload[..upload.len() / 2])
        .await
        .unwrap();
    // An honest upload queued behind it.
    let waited = Instant::now();
    let honest = {
        let http = s.http.clone();
        let url = s.url("/api/assets");
        tokio::spawn(async move {
            let r = http
                .post(url)
                .multipart(form(&[("image.jpg", fixture("image.jpg"))], None))
                .send()
                .await
                .unwrap();
            json_of(r).await
        })
    };
    // Searches are not uploads: they are answered while the slot is taken.
    let (status, _) = s.search(json!({ "text": "forest" })).await;
    assert_eq!(status, StatusCode::OK);
    refused(
        read_response(&mut stalled).await,
        408,
        "timeout",
        "stopped arriving",
    );
    let (status, body) = honest.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body:#}");
    assert_eq!(body["files"][0]["outcome"], "indexed");
    println!(
        "figure: the queued upload waited {:.0} ms behind the stalled one (idle timeout 500 ms)",
        waited.elapsed().as_secs_f64() * 1000.0
    );

    // A client that trickles a byte at a time never pauses long, but the request as a whole
    // has a time limit.
    let stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let head = format!(
        "{}\r\nhost: t\r\nauthorization: Bearer {TOKEN}\r\n\r\n",
        multipart_head("/api/assets", "b", upload.len())
    );
    write.write_all(head.as_bytes()).await.unwrap();
    let trickle = {
        let upload = upload.clone();
        tokio::spawn(async move {
            for byte in upload {
                if write.write_all(&[byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    refused(
        read_response(&mut read).await,
        408,
        "timeout",
        "did not complete",
    );
    trickle.abort();
    // The slot is free again.
    let (status, body) = s
        .upload(
            "/api/assets",
            &[("image.webp", fixture("image.webp"))],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    assert_directory_whole(&s).await;
    let (_, list) = s.get("/api/assets").await;
    let names: HashSet<&str> = list["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        HashSet::from(["image.jpg", "image.webp"]),
        "no half upload recorded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_uploads_of_one_file_make_one_asset_and_one_embedding() {
    let provider = Arc::new(TopicProvider::with_delay(Duration::from_millis(200)));
    let s = Server::start_with(provider.clone(), |_| {}).await;
    let mp4 = fixture("video.mp4");
    let uploads: Vec<_> = (0..50)
        .map(|i| {
            let http = s.http.clone();
            let url = s.url(if i % 2 == 0 {
                "/api/assets"
            } else {
                "/api/assets?wait=false"
            });
            let mp4 = mp4.clone();
            tokio::spawn(async move {
                let name = format!("copy-{i}.mp4");
                let r = http
                    .post(url)
                    .multipart(form(&[(name.as_str(), mp4)], None))
                    .send()
                    .await
                    .unwrap();
                json_of(r).await
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for u in uploads {
        let (status, body) = u.await.unwrap();
        assert!(
            status == StatusCode::OK || status == StatusCode::ACCEPTED,
            "{status} {body:#}"
        );
        outcomes.push(body["files"][0]["outcome"].as_str().unwrap().to_string());
    }
    assert!(
        outcomes.iter().filter(|o| *o == "indexed").count() <= 1,
        "{outcomes:?}"
    );
    s.service.drain(Duration::from_secs(30)).await.unwrap();
    let (_, list) = s.get("/api/assets").await;
    let assets = list["assets"].as_array().unwrap();
    assert_eq!(assets.len(), 1, "{list:#}");
    assert_eq!(assets[0]["state"], "indexed");
    assert_eq!(
        provider
            .media_calls
            .load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the file was embedded more than once"
    );
    let (_, stats) = s.get("/api/stats").await;
    // One video: two segments in each of the model's video spaces, once (no duplicate vectors).
    assert_eq!(stats["index"]["assets"], 1, "{stats:#}");
    for (space, n) in stats["index"]["vectors_per_space"].as_object().unwrap() {
        assert_eq!(n, 2, "{space}: {stats:#}");
    }
    assert_directory_whole(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_searches_during_a_batch_ingest_are_all_answered_and_right() {
    let provider = Arc::new(TopicProvider::with_delay(Duration::from_millis(600)));
    let s = Server::start_with(provider, |_| {}).await;
    let (status, _) = s
        .upload(
            "/api/assets",
            &[
                ("image.webp", fixture("image.webp")),
                ("image.png", fixture("image.png")),
            ],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let batch = {
        let http = s.http.clone();
        let url = s.url("/api/assets");
        tokio::spawn(async move {
            let files: Vec<(&str, Vec<u8>)> = LIBRARY
                .iter()
                .filter(|(n, _)| *n != "image.webp" && *n != "image.png")
                .map(|(n, _)| (*n, fixture(n)))
                .collect();
            let r = http
                .post(url)
                .multipart(form(&files, None))
                .send()
                .await
                .unwrap();
            json_of(r).await
        })
    };
    let started = Instant::now();
    let searches: Vec<_> = (0..50)
        .map(|i| {
            let http = s.http.clone();
            let url = s.url("/api/search");
            tokio::spawn(async move {
                let t = Instant::now();
                let text = if i % 2 == 0 { "a castle" } else { "a sunset" };
                let r = http
                    .post(url)
                    .json(&json!({ "text": text, "k": 3 }))
                    .send()
                    .await
                    .unwrap();
                let (status, body) = json_of(r).await;
                (i, status, body, t.elapsed())
            })
        })
        .collect();
    let mut longest = Duration::ZERO;
    let mut during_batch = 0;
    for search in searches {
        let (i, status, body, took) = search.await.unwrap();
        if !batch.is_finished() {
            during_batch += 1;
        }
        longest = longest.max(took);
        assert_eq!(status, StatusCode::OK, "{body:#}");
        let hits = body["hits"].as_array().unwrap();
        assert!(!hits.is_empty() && hits.len() <= 3, "{body:#}");
        let ids: HashSet<&str> = hits
            .iter()
            .map(|h| h["asset_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), hits.len(), "an asset twice: {body:#}");
        // The best match is always of the asked topic, whatever the batch has added so far.
        let want: &[&str] = if i % 2 == 0 {
            &["image.webp", "video.mp4"]
        } else {
            &["image.png"]
        };
        assert!(
            want.contains(&hits[0]["name"].as_str().unwrap()),
            "search {i}: {body:#}"
        );
        for h in hits {
            let score = h["score"].as_f64().unwrap();
            assert!((-1.0..=1.0001).contains(&score), "{h:#}");
        }
    }
    assert!(during_batch > 0, "the searches did not overlap the batch");
    println!(
        "figure: 50 searches during a batch ingest ({during_batch} answered while it ran), longest answer {:.0} ms, all within {:.0} ms",
        longest.as_secs_f64() * 1000.0,
        started.elapsed().as_secs_f64() * 1000.0
    );
    let (status, body) = batch.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body:#}");
    assert_eq!(body["summary"]["indexed"], 6);
    let (_, body) = s
        .search(json!({ "text": "castle", "kinds": ["video"] }))
        .await;
    assert_eq!(body["hits"][0]["name"], "video.mp4");
    assert_directory_whole(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traversal_and_control_characters_in_names_and_ids_go_nowhere() {
    let s = Server::start(|_| {}).await;
    // File names: the last component, control characters dropped; never a path.
    let (status, body) = s
        .upload(
            "/api/assets",
            &[("../../../../../tmp/evil.png", fixture("image.png"))],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    assert_eq!(body["files"][0]["file_name"], "evil.png");
    let b = "bb";
    let mut raw_body = part(
        b,
        "name=\"file\"; filename=\"..\\\\..\\\\w\u{7}in\u{1b}[31m.jpg\"",
        &fixture("image.jpg"),
    );
    raw_body.extend_from_slice(format!("--{b}--\r\n").as_bytes());
    let (status, body) = raw(
        s.addr,
        &multipart_head("/api/assets", b, raw_body.len()),
        &raw_body,
    )
    .await;
    if status == 200 {
        let name = body["files"][0]["file_name"].as_str().unwrap();
        assert!(!name.chars().any(char::is_control), "{name:?}");
        assert!(!name.contains(['/', '\\']), "{name:?}");
    } else {
        assert_eq!(status, 400, "{body:#}");
        assert_eq!(body["error"]["kind"], "invalid_input");
    }
    // Ids: only 64 hex characters are ids.
    let dotted = "..%2F..%2Fcatalog.db";
    let nul = "%00";
    let newline = format!("{}%0A", "a".repeat(63));
    let long = "f".repeat(10_000);
    for id in [dotted, nul, newline.as_str(), "%2e%2e", long.as_str()] {
        for path in [
            format!("/api/assets/{id}"),
            format!("/api/assets/{id}/media"),
            format!("/api/assets/{id}/thumbnail"),
        ] {
            refused(
                raw(s.addr, &format!("GET {path} HTTP/1.1"), b"").await,
                400,
                "invalid_input",
                "asset id",
            );
        }
        refused(
            raw(s.addr, &format!("DELETE /api/assets/{id} HTTP/1.1"), b"").await,
            400,
            "invalid_input",
            "asset id",
        );
    }
    // A path that climbs out matches no route.
    let (status, body) = raw(s.addr, "GET /api/assets/../../catalog.db HTTP/1.1", b"").await;
    assert_eq!(status, 404, "{body:#}");
    assert_eq!(body["error"]["kind"], "not_found");
    let (status, body) = s.search(json!({ "asset_id": "../../catalog.db" })).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_input");
    let (status, body) = s
        .upload(
            "/api/assets",
            &[("x.png", fixture("image.png"))],
            Some("ok,bad\u{7}tag"),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_input");
    assert_directory_whole(&s).await;
    let catalog = s.data_dir().join("catalog.db");
    assert!(catalog.is_file(), "the catalog is where it was");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_queries_and_k_are_refused_by_name() {
    let s = Server::start(|_| {}).await;
    s.upload_all().await;
    // Not UTF-8, in JSON and in a form field.
    let body = b"{\"text\": \"\xff\xfe castle\"}";
    let head = format!(
        "POST /api/search HTTP/1.1\r\ncontent-type: application/json\r\ncontent-length: {}",
        body.len()
    );
    refused(
        raw(s.addr, &head, body).await,
        400,
        "invalid_input",
        "invalid unicode",
    );
    let b = "bb";
    let mut form_body = part(
        b,
        "name=\"file\"; filename=\"q.png\"",
        &fixture("image.png"),
    );
    form_body.extend_from_slice(&part(b, "name=\"mode\"", b"\xff\xfevisual"));
    form_body.extend_from_slice(format!("--{b}--\r\n").as_bytes());
    refused(
        raw(
            s.addr,
            &multipart_head("/api/search/upload", b, form_body.len()),
            &form_body,
        )
        .await,
        400,
        "invalid_input",
        "not UTF-8",
    );
    // 100 kB of text.
    let (status, body) = s.search(json!({ "text": "castle ".repeat(14_300) })).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_input");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("characters")
    );
    // k.
    for (k, mentions) in [
        (json!(0), "k must be"),
        (json!(1_000_000_000u64), "k must be"),
        (json!(-1), "k"),
        (json!(1e30), "k"),
        (json!("5"), "k"),
    ] {
        let (status, body) = s.search(json!({ "text": "castle", "k": k })).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_input");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(mentions),
            "{body:#}"
        );
    }
    for k in ["0", "1000000000", "99999999999999999999999", "ten"] {
        let mut form_body = part(
            b,
            "name=\"file\"; filename=\"q.png\"",
            &fixture("image.png"),
        );
        form_body.extend_from_slice(&part(b, "name=\"k\"", k.as_bytes()));
        form_body.extend_from_slice(format!("--{b}--\r\n").as_bytes());
        refused(
            raw(
                s.addr,
                &multipart_head("/api/search/upload", b, form_body.len()),
                &form_body,
            )
            .await,
            400,
            "invalid_input",
            "k",
        );
    }
    // Unknown ids: 404 everywhere.
    let unknown = crossmodal_core::AssetId::from_content(b"never uploaded");
    for path in [
        format!("/api/assets/{unknown}"),
        format!("/api/assets/{unknown}/media"),
        format!("/api/assets/{unknown}/thumbnail"),
    ] {
        let (status, body) = s.get(&path).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    }
    let r = s
        .http
        .delete(s.url(&format!("/api/assets/{unknown}")))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(r).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = s.search(json!({ "asset_id": unknown.as_str() })).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    // No token, a wrong one.
    for auth in [None, Some("Bearer wrong-wrong-wrong-wrong")] {
        let mut req = anonymous()
            .post(s.url("/api/search"))
            .json(&json!({ "text": "castle" }));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let (status, body) = json_of(req.send().await.unwrap()).await;
        assert_error(status, &body, StatusCode::UNAUTHORIZED, "permission_denied");
    }
    assert_directory_whole(&s).await;
    let (_, stats) = s.get("/api/stats").await;
    assert_eq!(stats["counts"]["indexed"], 8);
}
