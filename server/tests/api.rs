//! The `serve` example's HTTP API, exercised with real HTTP requests (reqwest) against the router
//! on 127.0.0.1:0, over the embedded default in a temporary directory and a deterministic test
//! provider that knows the fixtures in `tests/fixtures/media`.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use async_trait::async_trait;
use crossmodal_core::{
    AssetId, Embedding, EmbeddingProvider, Engine, ErrorKind, MediaInput, MediaKind, ModelInfo,
    Result, Segment,
};
use crossmodal_server::{ServeLimits, router, status_for};
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

/// A test provider: each fixture gets a fixed "topic" direction; a text naming a topic word maps
/// to it. Deterministic, and obviously not a model. Text containing "slowly" takes 5 s.
struct TopicProvider {
    model: ModelInfo,
    topics: HashMap<String, usize>,
}

const DIM: usize = 8;
const TOPIC_WORDS: [&str; 8] = [
    "sunset", "forest", "castle", "drums", "rain", "cheer", "city", "ocean",
];

fn topic_vector(topic: usize, jitter: f32) -> Vec<f32> {
    let mut v = vec![0.05; DIM];
    v[topic % DIM] = 1.0;
    v[(topic + 1) % DIM] += jitter;
    v
}

impl TopicProvider {
    fn new() -> Self {
        let topics = library()
            .iter()
            .map(|(name, t)| (asset_of(name).to_string(), *t))
            .collect();
        TopicProvider {
            model: ModelInfo {
                id: "test/topic-provider".into(),
                dimension: DIM,
                ..ModelInfo::marengo_3_0()
            },
            topics,
        }
    }
}

#[async_trait]
impl EmbeddingProvider for TopicProvider {
    fn model(&self) -> &ModelInfo {
        &self.model
    }

    async fn embed_text(&self, text: &str) -> Result<Vec<f32>> {
        if text.contains("slowly") {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        let topic = TOPIC_WORDS
            .iter()
            .position(|w| text.contains(w))
            .unwrap_or(0);
        Ok(topic_vector(topic, 0.0))
    }

    async fn embed_media(&self, media: &MediaInput) -> Result<Vec<Embedding>> {
        let topic = *self.topics.get(media.asset_id.as_str()).ok_or_else(|| {
            crossmodal_core::Error::unsupported("the test provider knows only the fixtures")
        })?;
        let n = match media.kind() {
            MediaKind::Image => 1,
            _ => 2,
        };
        let mut out = Vec::new();
        for space in self.model.spaces_for(media.kind()) {
            for i in 0..n {
                out.push(Embedding {
                    space: *space,
                    segment: (n > 1).then(|| Segment::new(i as f64, i as f64 + 1.0).unwrap()),
                    // Segment 1 (1 s to 2 s) matches its topic best.
                    vector: topic_vector(topic, if i == 1 { 0.0 } else { 0.6 }),
                });
            }
        }
        Ok(out)
    }
}

fn fixtures() -> PathBuf {
    crossmodal_testkit::fixtures::dir()
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(name)).unwrap()
}

fn asset_of(name: &str) -> AssetId {
    AssetId::from_content(&fixture(name))
}

/// The eight fixtures with a topic each (0 sunset, 1 forest, 2 castle, 3 drums, ...).
fn library() -> Vec<(&'static str, usize)> {
    vec![
        ("image.png", 0),
        ("image.jpg", 1),
        ("image.webp", 2),
        ("video.mp4", 2),
        ("video.mov", 6),
        ("audio.wav", 3),
        ("audio.mp3", 4),
        ("audio.m4a", 5),
    ]
}

fn mime(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("png") => "image/png",
        Some("jpg") => "image/jpeg",
        Some("webp") => "image/webp",
        Some("mp4") => "video/mp4",
        Some("mov") => "video/quicktime",
        Some("wav") => "audio/wav",
        Some("mp3") => "audio/mpeg",
        Some("m4a") => "audio/mp4",
        _ => "application/octet-stream",
    }
}

/// A running service.
struct Server {
    base: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(limits: ServeLimits) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open_local(dir.path(), std::sync::Arc::new(TopicProvider::new()))
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = router(engine, limits);
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Server {
            base: format!("http://{addr}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self.http.get(self.url(path)).send().await.unwrap();
        json_of(r).await
    }

    async fn search(&self, body: Value) -> (StatusCode, Value) {
        let r = self
            .http
            .post(self.url("/api/search"))
            .json(&body)
            .send()
            .await
            .unwrap();
        json_of(r).await
    }

    async fn upload(
        &self,
        path: &str,
        files: &[(&str, Vec<u8>)],
        tags: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut form = Form::new();
        for (name, bytes) in files {
            let part = Part::bytes(bytes.clone())
                .file_name(name.to_string())
                .mime_str(mime(name))
                .unwrap();
            form = form.part("file", part);
        }
        if let Some(tags) = tags {
            form = form.text("tags", tags.to_string());
        }
        let r = self
            .http
            .post(self.url(path))
            .multipart(form)
            .send()
            .await
            .unwrap();
        json_of(r).await
    }

    async fn upload_all(&self) -> Value {
        let files: Vec<(&str, Vec<u8>)> = library()
            .into_iter()
            .map(|(n, _)| (n, fixture(n)))
            .collect();
        let (status, body) = self
            .upload("/api/assets", &files, Some("fixtures, test"))
            .await;
        assert_eq!(status, StatusCode::OK, "{body:#}");
        body
    }
}

async fn json_of(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    let text = r.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    };
    (status, body)
}

/// Asserts the error envelope: `{"error": {"kind": kind, "message": ...}}`.
fn assert_error(status: StatusCode, body: &Value, want: StatusCode, kind: &str) {
    assert_eq!(status, want, "{body:#}");
    assert_eq!(body["error"]["kind"], kind, "{body:#}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body:#}"
    );
}

fn names(hits: &Value) -> Vec<String> {
    hits.as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap_or("?").to_string())
        .collect()
}

fn a_png_nobody_knows() -> Vec<u8> {
    let img = image::RgbImage::from_pixel(4, 4, image::Rgb([1, 2, 3]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_list_search_play_and_delete() {
    let s = Server::start(ServeLimits::default()).await;

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

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_errors_are_typed_and_sized() {
    let limits = ServeLimits {
        max_upload_bytes: 20_000,
        max_request_bytes: 200_000,
        ..ServeLimits::default()
    };
    let s = Server::start(limits).await;

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
    let s = Server::start(ServeLimits {
        search_timeout: Duration::from_millis(300),
        ..ServeLimits::default()
    })
    .await;
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
    let s = Server::start(ServeLimits::default()).await;
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
