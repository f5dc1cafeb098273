//! The HTTP API, exercised with real HTTP requests (reqwest) against the router on
//! 127.0.0.1:0, over the embedded default in a temporary directory and a deterministic test
//! provider that knows the fixtures in `tests/fixtures/media`.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use crossmodal_core::{AssetId, ErrorKind};
use crossmodal_server::status_for;
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::json;
use std::collections::HashSet;
use std::time::Duration;
use support::*;

fn library() -> Vec<(&'static str, usize)> {
    LIBRARY.to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_list_search_play_and_delete() {
    let s = Server::start(|_| {}).await;

    // The page and the stats.
    let page = s.http.get(s.url("/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text().await.unwrap().contains("id=\"search-text\""));

    // Upload all fixtures in one request, with tags.
    let body = s.upload_all().await;
    let files = body["files"].as_array().unwrap();
    assert_eq!(files.len(), 8);
    for (f, (name, _)) in files.iter().zip(library()) {
        assert_eq!(f["file_name"], name, "{f:#}");
        assert_eq!(f["outcome"], "indexed", "{f:#}");
        assert_eq!(f["status"], 200);
        assert_eq!(f["asset_id"], asset_of(name).as_str());
        let kind = name.split('.').next().unwrap();
        assert_eq!(f["kind"], kind);
    }
    assert_eq!(body["summary"]["indexed"], 8);

    // The same bytes again: nothing to do.
    let (status, body) = s
        .upload("/api/assets", &[("again.png", fixture("image.png"))], None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["files"][0]["outcome"], "already_indexed");

    // List with filters.
    let (status, body) = s.get("/api/assets?kind=video&status=indexed").await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    let videos = body["assets"].as_array().unwrap();
    assert_eq!(videos.len(), 2);
    assert!(
        videos
            .iter()
            .all(|a| a["kind"] == "video" && a["state"] == "indexed")
    );
    assert_eq!(body["counts"]["indexed"], 8);
    let (_, body) = s.get("/api/assets?kind=image,audio").await;
    assert_eq!(body["assets"].as_array().unwrap().len(), 6);
    let (_, body) = s.get("/api/assets?kind=image&kind=video").await;
    assert_eq!(body["assets"].as_array().unwrap().len(), 5);
    let (_, body) = s.get("/api/assets?status=failed").await;
    assert!(body["assets"].as_array().unwrap().is_empty());

    // Pagination: 3 a page, every asset once.
    let mut seen = HashSet::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/assets?limit=3&cursor={}", urlencode(c)),
            None => "/api/assets?limit=3".to_string(),
        };
        let (status, body) = s.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{body:#}");
        let assets = body["assets"].as_array().unwrap();
        assert!(assets.len() <= 3);
        for a in assets {
            assert!(seen.insert(a["asset_id"].as_str().unwrap().to_string()));
        }
        pages += 1;
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(seen.len(), 8);
    assert_eq!(pages, 3);

    // One asset; no server paths leak.
    let video = asset_of("video.mp4");
    let (status, body) = s.get(&format!("/api/assets/{video}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["name"], "video.mp4");
    assert_eq!(body["format"], "mp4");
    assert_eq!(body["tags"], json!(["fixtures", "test"]));
    assert_eq!(body["media_url"], format!("/api/assets/{video}/media"));
    assert!(!body.to_string().contains("file://"), "{body:#}");

    // Search by text: images and videos through visual; the video's best clip and a preview URL
    // that opens it there.
    let (status, body) = s.search(json!({ "text": "a castle", "k": 3 })).await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    let top = names(&body["hits"]);
    assert!(
        top[..2].contains(&"image.webp".to_string()) && top[..2].contains(&"video.mp4".to_string()),
        "{top:?}"
    );
    let hit = body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "video.mp4")
        .unwrap();
    assert_eq!(hit["space"], "visual");
    assert_eq!(hit["segment"], json!({ "start_sec": 1.0, "end_sec": 2.0 }));
    assert_eq!(
        hit["preview_url"],
        format!("/api/assets/{video}/media#t=1,2")
    );
    assert!(hit["score"].as_f64().unwrap() > 0.9);
    assert_eq!(body["query_kind"], "text");
    assert!(!body.to_string().contains("file://"));

    // Audio mode: audio and videos only, through the audio space.
    let (status, body) = s
        .search(json!({ "text": "drums", "mode": "audio", "k": 3 }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    assert_eq!(body["hits"][0]["name"], "audio.wav");
    assert_eq!(body["mode"], "audio");
    for h in body["hits"].as_array().unwrap() {
        assert_eq!(h["space"], "audio");
        assert_ne!(h["kind"], "image");
    }

    // Kinds and tags.
    let (_, body) = s
        .search(json!({ "text": "castle", "kinds": ["video"], "tags": ["fixtures"] }))
        .await;
    assert!(!body["hits"].as_array().unwrap().is_empty());
    assert!(
        body["hits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["kind"] == "video")
    );
    let (_, body) = s
        .search(json!({ "text": "castle", "tags": ["nope"] }))
        .await;
    assert!(body["hits"].as_array().unwrap().is_empty(), "{body:#}");

    // By an asset in the library, and by an uploaded file: the castle image finds the castle
    // video, not itself.
    let webp = asset_of("image.webp");
    let (status, body) = s.search(json!({ "asset_id": webp.as_str(), "k": 2 })).await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    assert_eq!(body["hits"][0]["name"], "video.mp4");
    let form = Form::new()
        .part(
            "file",
            Part::bytes(fixture("image.webp"))
                .file_name("reference.webp")
                .mime_str("image/webp")
                .unwrap(),
        )
        .text("mode", "visual")
        .text("k", "2");
    let r = s
        .http
        .post(s.url("/api/search/upload"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(r).await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    assert_eq!(body["query_kind"], "image");
    assert_eq!(body["mode"], "visual");
    assert_eq!(body["hits"][0]["name"], "video.mp4");
    assert!(names(&body["hits"]).iter().all(|n| n != "image.webp"));

    // The original: whole, then a byte range, then a range past the end.
    let original = fixture("video.mp4");
    let media = format!("/api/assets/{video}/media");
    let r = s.http.get(s.url(&media)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "video/mp4");
    assert_eq!(r.headers()["accept-ranges"], "bytes");
    assert_eq!(r.bytes().await.unwrap().as_ref(), original.as_slice());
    let r = s
        .http
        .get(s.url(&media))
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes 100-199/{}", original.len()).as_str()
    );
    assert_eq!(r.headers()["content-type"], "video/mp4");
    assert_eq!(r.bytes().await.unwrap().as_ref(), &original[100..200]);
    let r = s
        .http
        .get(s.url(&media))
        .header("range", "bytes=-10")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        r.bytes().await.unwrap().as_ref(),
        &original[original.len() - 10..]
    );
    let r = s
        .http
        .get(s.url(&media))
        .header("range", format!("bytes={}-", original.len()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes */{}", original.len()).as_str()
    );
    // A conditional request with the content hash as ETag.
    let r = s
        .http
        .get(s.url(&media))
        .header("if-none-match", format!("\"{video}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);

    // Delete: gone from the API, the media and the results.
    let r = s
        .http
        .delete(s.url(&format!("/api/assets/{video}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (status, body) = s.get(&format!("/api/assets/{video}")).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let r = s.http.get(s.url(&media)).send().await.unwrap();
    let (status, body) = json_of(r).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let r = s
        .http
        .delete(s.url(&format!("/api/assets/{video}")))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(r).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (_, body) = s.search(json!({ "text": "castle" })).await;
    assert!(!names(&body["hits"]).contains(&"video.mp4".to_string()));
    let (_, body) = s.get("/api/stats").await;
    assert_eq!(body["counts"]["total"], 7, "{body:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_errors_are_typed_and_sized() {
    let s = Server::start(|c| {
        c.max_upload_bytes = 20_000;
        c.max_request_bytes = 200_000;
    })
    .await;

    // Over the per-file limit: 413, alone; beside a good file the request still succeeds in part.
    let (status, body) = s
        .upload("/api/assets", &[("audio.wav", fixture("audio.wav"))], None)
        .await;
    assert_error(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "invalid_input",
    );
    assert!(
        body["error"]["message"].as_str().unwrap().contains("20000"),
        "{body:#}"
    );
    let (status, body) = s
        .upload(
            "/api/assets",
            &[
                ("image.png", fixture("image.png")),
                ("audio.wav", fixture("audio.wav")),
            ],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body:#}");
    assert_eq!(body["files"][0]["outcome"], "indexed");
    assert_eq!(body["files"][1]["status"], 413);
    assert_eq!(body["files"][1]["error"]["kind"], "invalid_input");
    assert_eq!(body["summary"]["failed"], 1);

    // Over the request limit: 413 for the whole request.
    let big = vec![0u8; 300_000];
    let (status, body) = s.upload("/api/assets", &[("big.png", big)], None).await;
    assert_error(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "invalid_input",
    );

    // Corrupt (a truncated video), unknown format, empty file: typed errors.
    let mp4 = fixture("video.mp4");
    let (status, body) = s
        .upload(
            "/api/assets",
            &[("broken.mp4", mp4[..mp4.len() / 2].to_vec())],
            None,
        )
        .await;
    assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "corrupt");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("broken.mp4"),
        "{body:#}"
    );
    let (status, body) = s
        .upload(
            "/api/assets",
            &[("notes.txt", b"just some text".to_vec())],
            None,
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported",
    );
    let (status, body) = s
        .upload("/api/assets", &[("empty.png", Vec::new())], None)
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_input");

    // A valid file the provider cannot embed: 422, and listed as failed at the embed stage.
    let (status, body) = s
        .upload(
            "/api/assets",
            &[("stranger.png", a_png_nobody_knows())],
            None,
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unsupported",
    );
    let (_, body) = s.get("/api/assets?status=failed").await;
    let failed = body["assets"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{body:#}");
    assert_eq!(failed[0]["name"], "stranger.png");
    assert_eq!(failed[0]["status"]["stage"], "embed");
    assert_eq!(body["counts"]["failed"], 1);

    // No file, unknown field, bad tags, unknown query parameter, not multipart.
    let r = s
        .http
        .post(s.url("/api/assets"))
        .multipart(Form::new().text("tags", "x"))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(r).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_input");
    let r = s
        .http
        .post(s.url("/api/assets"))
        .multipart(Form::new().text("colour", "red"))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(r).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_input");
    let long_tag = "t".repeat(100);
    let (status, body) = s
        .upload(
            "/api/assets",
            &[("image.jpg", fixture("image.jpg"))],
            Some(&long_tag),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_input");
    let (status, body) = s
        .upload(
            "/api/assets?hurry=1",
            &[("image.jpg", fixture("image.jpg"))],
            None,
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_input");
    let r = s
        .http
        .post(s.url("/api/assets"))
        .body("hello")
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(r).await;
    assert!(status.is_client_error(), "{status} {body:#}");
    assert!(body["error"]["kind"].is_string(), "{body:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_and_list_errors_are_typed() {
    let s = Server::start(|c| c.search_timeout = Duration::from_millis(300)).await;
    s.upload_all().await;

    // Unknown mode: 400, on both search endpoints.
    let (status, body) = s.search(json!({ "text": "castle", "mode": "smell" })).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_input");
    assert!(body["error"]["message"].as_str().unwrap().contains("smell"));
    let form = Form::new()
        .part(
            "file",
            Part::bytes(fixture("image.png")).file_name("image.png"),
        )
        .text("mode", "smell");
    let r = s
        .http
        .post(s.url("/api/search/upload"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(r).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_input");

    // A mode the routing table lacks for the query kind: 422.
    let form = Form::new()
        .part(
            "file",
            Part::bytes(fixture("image.png")).file_name("image.png"),
        )
        .text("mode", "transcription");
    let r = s
        .http
        .post(s.url("/api/search/upload"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(r).await;
    assert!(
        status == StatusCode::UNPROCESSABLE_ENTITY || status == StatusCode::BAD_REQUEST,
        "{status} {body:#}"
    );
    assert!(body["error"]["kind"].is_string());

    // Bad bodies.
    for bad in [
        json!({}),
        json!({ "text": "castle", "asset_id": "00" }),
        json!({ "text": "" }),
        json!({ "text": "castle", "k": 0 }),
        json!({ "text": "castle", "k": 5000 }),
        json!({ "text": "castle", "k": -1 }),
        json!({ "text": "castle", "min_score": 3.0 }),
        json!({ "text": "castle", "kinds": ["smell"] }),
        json!({ "text": "castle", "fusion": "magic" }),
        json!({ "txt": "castle" }),
        json!({ "asset_id": "not-an-id" }),
    ] {
        let (status, body) = s.search(bad.clone()).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_input");
        let _ = bad;
    }
    let r = s
        .http
        .post(s.url("/api/search"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(r).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_input");
    let r = s
        .http
        .post(s.url("/api/search"))
        .body("castle")
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

    // Unknown asset: 404; a reference file the provider does not know: 422; a search that takes
    // too long: 504.
    let unknown = AssetId::from_content(b"nothing");
    let (status, body) = s.search(json!({ "asset_id": unknown.as_str() })).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let form = Form::new().part("file", Part::bytes(a_png_nobody_knows()).file_name("x.png"));
    let r = s
        .http
        .post(s.url("/api/search/upload"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(r).await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unsupported",
    );
    let form = Form::new().text("mode", "auto");
    let r = s
        .http
        .post(s.url("/api/search/upload"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(r).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_input");
    let (status, body) = s.search(json!({ "text": "castle, slowly" })).await;
    assert_error(status, &body, StatusCode::GATEWAY_TIMEOUT, "timeout");

    // List and asset errors.
    for path in [
        "/api/assets?status=sleeping",
        "/api/assets?kind=smell",
        "/api/assets?limit=0",
        "/api/assets?limit=many",
        "/api/assets?colour=red",
        "/api/assets/not-an-id",
        "/api/assets/not-an-id/media",
    ] {
        let (status, body) = s.get(path).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_input");
    }
    let (status, body) = s.get(&format!("/api/assets/{unknown}")).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = s.get("/api/nothing-here").await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let r = s.http.put(s.url("/api/search")).send().await.unwrap();
    let (status, body) = json_of(r).await;
    assert_error(status, &body, StatusCode::METHOD_NOT_ALLOWED, "unsupported");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_uploads_are_processing_then_indexed() {
    let s = Server::start(|_| {}).await;
    let (status, body) = s
        .upload(
            "/api/assets?wait=false",
            &[
                ("video.mov", fixture("video.mov")),
                ("broken.png", b"\x89PNG\r\n\x1a\nxx".to_vec()),
            ],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body:#}");
    assert_eq!(body["files"][0]["status"], 202);
    assert_eq!(body["files"][0]["outcome"], "processing");
    assert!(body["files"][1]["error"]["kind"].is_string(), "{body:#}");
    let id = asset_of("video.mov");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = s.get(&format!("/api/assets/{id}")).await;
        if status == StatusCode::OK && body["state"] == "indexed" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never indexed: {body:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = s
        .upload(
            "/api/assets?wait=false",
            &[("video.mov", fixture("video.mov"))],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    assert_eq!(body["files"][0]["outcome"], "already_indexed");
    let (_, body) = s.search(json!({ "text": "city" })).await;
    assert_eq!(body["hits"][0]["name"], "video.mov");
}

#[test]
fn error_kinds_map_to_statuses() {
    for (kind, status) in [
        (ErrorKind::InvalidInput, 400),
        (ErrorKind::Unsupported, 422),
        (ErrorKind::NotFound, 404),
        (ErrorKind::Conflict, 409),
        (ErrorKind::RateLimited, 429),
        (ErrorKind::Timeout, 504),
        (ErrorKind::Unavailable, 503),
        (ErrorKind::PermissionDenied, 500),
        (ErrorKind::ModelFailed, 500),
        (ErrorKind::Corrupt, 500),
        (ErrorKind::Backend, 500),
    ] {
        assert_eq!(status_for(kind).as_u16(), status, "{kind:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_gate_the_api_and_the_page_signs_in_for_a_cookie() {
    let s = Server::start(|_| {}).await;
    s.upload_all().await;
    let anon = anonymous();
    let video = asset_of("video.mp4");

    // The page itself needs no token.
    let r = anon.get(s.url("/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Every API route: 401 with a JSON error and a Bearer challenge, without or with a wrong
    // token.
    let wrong = format!("Bearer {}x", TOKEN);
    for (method, path) in [
        ("GET", "/api/stats".to_string()),
        ("GET", "/api/assets".to_string()),
        ("GET", format!("/api/assets/{video}")),
        ("GET", format!("/api/assets/{video}/media")),
        ("GET", format!("/api/assets/{video}/thumbnail?t=1")),
        ("DELETE", format!("/api/assets/{video}")),
        ("POST", "/api/search".to_string()),
        ("POST", "/api/search/upload".to_string()),
        ("POST", "/api/assets".to_string()),
    ] {
        let m: reqwest::Method = method.parse().unwrap();
        for auth in [
            None,
            Some(wrong.as_str()),
            Some("Basic dXNlcjpwYXNz"),
            Some("Bearer "),
        ] {
            let mut req = anon.request(m.clone(), s.url(&path));
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let r = req.send().await.unwrap();
            assert!(
                r.headers()["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .starts_with("Bearer"),
                "{method} {path}"
            );
            let (status, body) = json_of(r).await;
            assert_error(status, &body, StatusCode::UNAUTHORIZED, "permission_denied");
        }
    }
    // Nothing was deleted by the refused DELETEs.
    let (status, _) = s.get(&format!("/api/assets/{video}")).await;
    assert_eq!(status, StatusCode::OK);

    // A wrong token gets no session; the right one gets an HttpOnly SameSite cookie that then
    // opens the API, the media and the thumbnails (what <video> and <img> need).
    let r = anon
        .post(s.url("/api/session"))
        .json(&json!({ "token": "not-the-token-at-all" }))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(r).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "permission_denied");
    let r = anon
        .post(s.url("/api/session"))
        .json(&json!({ "token": TOKEN }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains(TOKEN),
        "the cookie is not the token: {cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_string();
    let r = anon
        .get(s.url(&format!("/api/assets/{video}/media")))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = anon
        .get(s.url("/api/stats"))
        .header("cookie", "crossmodal_session=0000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Signing out ends the session.
    let r = anon
        .delete(s.url("/api/session"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = anon
        .get(s.url("/api/stats"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_without_a_token_only_when_asked() {
    // No tokens and no exception: refused, and the message says why.
    let s = Server::start(|c| c.auth = crossmodal_server::AuthConfig::default()).await;
    let (status, body) = json_of(anonymous().get(s.url("/api/stats")).send().await.unwrap()).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "permission_denied");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no API tokens configured"),
        "{body:#}"
    );
    // Asked: loopback clients need none (the tests connect from 127.0.0.1), a wrong one still
    // fails.
    let s = Server::start(|c| c.auth = c.auth.clone().allow_loopback_without_token(true)).await;
    let r = anonymous().get(s.url("/api/stats")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = anonymous()
        .get(s.url("/api/stats"))
        .header("authorization", "Bearer wrong-token-wrong-token")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "loopback is let in whatever it sends"
    );
    // Disabled: for an app that authenticates in front.
    let s = Server::start(|c| c.auth = crossmodal_server::AuthConfig::disabled()).await;
    let r = anonymous().get(s.url("/api/stats")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_under_a_prefix_the_urls_carry_it() {
    let dir = tempfile::tempdir().unwrap();
    let engine = crossmodal_core::Engine::open_local(
        dir.path().join("data"),
        std::sync::Arc::new(TopicProvider::new()),
    )
    .await
    .unwrap();
    let service = crossmodal_server::router(engine, config(&dir.path().join("thumbs")));
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "the user's own app" }))
        .nest("/media-search", service);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let http = client();
    let base = format!("http://{addr}/media-search");
    let r = http.get(format!("http://{addr}/")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "the user's own app");
    // The page at the prefix itself (axum 0.8 routes `/media-search`, not `/media-search/`,
    // into a nested router; the page finds the API from its own address either way).
    let r = http.get(&base).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "page at {base}");
    assert!(r.text().await.unwrap().contains("id=\"search-text\""));
    let r = http
        .post(format!("{base}/api/assets"))
        .multipart(form(&[("video.mp4", fixture("video.mp4"))], None))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(r).await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    let video = asset_of("video.mp4");
    assert_eq!(
        body["files"][0]["media_url"],
        format!("/media-search/api/assets/{video}/media")
    );
    let r = http
        .post(format!("{base}/api/search"))
        .json(&json!({ "text": "castle" }))
        .send()
        .await
        .unwrap();
    let (_, body) = json_of(r).await;
    let hit = &body["hits"][0];
    assert_eq!(
        hit["preview_url"],
        format!("/media-search/api/assets/{video}/media#t=1,2")
    );
    assert_eq!(
        hit["thumbnail_url"],
        format!("/media-search/api/assets/{video}/thumbnail?t=1.5")
    );
    // The URLs it hands out work.
    let media = http
        .get(format!(
            "http://{addr}/media-search/api/assets/{video}/media"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(media.status(), StatusCode::OK);
    // The session cookie is scoped to the prefix.
    let r = anonymous()
        .post(format!("{base}/api/session"))
        .json(&json!({ "token": TOKEN }))
        .send()
        .await
        .unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("Path=/media-search/"), "{cookie}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thumbnails_per_segment_are_extracted_once_and_cached() {
    if !ffmpeg_present() {
        crossmodal_testkit::skip::skip(
            "thumbnails_per_segment_are_extracted_once_and_cached",
            "ffmpeg is not installed (Debian package `ffmpeg`)",
        );
        return;
    }
    let s = Server::start(|c| c.thumbnail_width = 64).await;
    s.upload_all().await;
    let (_, stats) = s.get("/api/stats").await;
    assert_eq!(stats["thumbnails"]["videos"], true, "{stats:#}");

    // Each hit names the still of its matched segment (the middle of 1 s to 2 s).
    let (_, body) = s
        .search(json!({ "text": "castle", "kinds": ["video"] }))
        .await;
    let hit = &body["hits"][0];
    let video = asset_of("video.mp4");
    assert_eq!(
        hit["thumbnail_url"],
        format!("/api/assets/{video}/thumbnail?t=1.5")
    );
    let r = s
        .http
        .get(s.url(hit["thumbnail_url"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    let jpeg = r.bytes().await.unwrap();
    assert_eq!(&jpeg[..3], &[0xFF, 0xD8, 0xFF], "a JPEG");
    let decoded = image::load_from_memory(&jpeg).unwrap();
    assert_eq!(decoded.width(), 64, "scaled to the configured width");

    // Cached on disk under the asset, whole (no temporary file left).
    let cached = s
        .dir
        .path()
        .join("thumbnails")
        .join(video.as_str())
        .join("t1500.jpg");
    assert_eq!(std::fs::read(&cached).unwrap(), jpeg.as_ref());
    let names: Vec<String> = std::fs::read_dir(cached.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["t1500.jpg".to_string()]);
    // A second request reads the cache: replace it and see the replacement served.
    std::fs::write(&cached, b"\xFF\xD8\xFFcached").unwrap();
    let again = s
        .http
        .get(s.url(hit["thumbnail_url"].as_str().unwrap()))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(again.as_ref(), b"\xFF\xD8\xFFcached");

    // Another moment is another still; past the end it is clamped, not an error.
    let (status, _) = (
        s.http
            .get(s.url(&format!("/api/assets/{video}/thumbnail?t=999")))
            .send()
            .await
            .unwrap()
            .status(),
        (),
    );
    assert_eq!(status, StatusCode::OK);
    // Library cards carry a still too; images are downscaled; audio has none.
    let (_, list) = s.get("/api/assets?kind=image").await;
    let png = list["assets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "image.png")
        .unwrap()
        .clone();
    let r = s
        .http
        .get(s.url(png["thumbnail_url"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    let audio = asset_of("audio.wav");
    let (_, a) = s.get(&format!("/api/assets/{audio}")).await;
    assert!(a["thumbnail_url"].is_null(), "{a:#}");
    let (status, body) = s.get(&format!("/api/assets/{audio}/thumbnail")).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    for bad in ["t=-1", "t=NaN", "t=inf", "t=1e9", "t=abc", "size=9"] {
        let (status, body) = s.get(&format!("/api/assets/{video}/thumbnail?{bad}")).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_input");
    }

    // Deleting the asset removes its stills.
    let r = s
        .http
        .delete(s.url(&format!("/api/assets/{video}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(!cached.parent().unwrap().exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_ffmpeg_videos_have_no_thumbnails_and_stats_say_why() {
    let s = Server::start(|c| c.ffmpeg = "/nonexistent/ffmpeg".into()).await;
    s.upload_all().await;
    let (_, stats) = s.get("/api/stats").await;
    assert_eq!(stats["thumbnails"]["videos"], false);
    assert!(
        stats["thumbnails"]["reason"]
            .as_str()
            .unwrap()
            .contains("ffmpeg is not installed"),
        "{stats:#}"
    );
    let video = asset_of("video.mp4");
    let (status, body) = s.get(&format!("/api/assets/{video}/thumbnail?t=1")).await;
    assert_error(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
    );
    assert!(
        !body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/nonexistent"),
        "no server path in the API: {body:#}"
    );
    // An image is its own thumbnail.
    let png = asset_of("image.png");
    let r = s
        .http
        .get(s.url(&format!("/api/assets/{png}/thumbnail")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(
        r.bytes().await.unwrap().as_ref(),
        fixture("image.png").as_slice()
    );
    assert!(!s.dir.path().join("thumbnails").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_waits_for_background_ingests_then_flushes() {
    let provider = std::sync::Arc::new(TopicProvider::with_delay(Duration::from_millis(700)));
    let s = Server::start_with(provider, |_| {}).await;
    let (status, body) = s
        .upload(
            "/api/assets?wait=false",
            &[
                ("video.mov", fixture("video.mov")),
                ("image.png", fixture("image.png")),
            ],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body:#}");
    assert!(s.service.ingests_in_flight() > 0);
    let report = s.service.drain(Duration::from_secs(30)).await.unwrap();
    assert_eq!(report.ingests_unfinished, 0);
    assert_eq!(s.service.ingests_in_flight(), 0);
    for name in ["video.mov", "image.png"] {
        let (_, a) = s.get(&format!("/api/assets/{}", asset_of(name))).await;
        assert_eq!(a["state"], "indexed", "{a:#}");
    }
    // A grace period too short reports what is left.
    let (status, _) = s
        .upload(
            "/api/assets?wait=false",
            &[("audio.wav", fixture("audio.wav"))],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let report = s.service.drain(Duration::from_millis(1)).await.unwrap();
    assert_eq!(report.ingests_unfinished, 1);
}

#[test]
fn config_debug_shows_no_token() {
    let c = config(std::path::Path::new("/tmp/thumbs"));
    let shown = format!("{c:?}");
    assert!(!shown.contains(TOKEN), "{shown}");
    assert!(shown.contains("tokens: 1"), "{shown}");
}
