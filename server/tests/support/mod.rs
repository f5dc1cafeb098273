//! What the server's integration tests share: a deterministic test provider that knows the
//! fixtures (and counts its calls), a running service on 127.0.0.1:0 over the embedded default
//! in a temporary directory, and small HTTP helpers.
#![allow(dead_code, clippy::unwrap_used, clippy::indexing_slicing)]

use async_trait::async_trait;
use crossmodal_core::{
    AssetId, Embedding, EmbeddingProvider, Engine, MediaInput, MediaKind, ModelInfo, Result,
    Segment,
};
use crossmodal_server::{AuthConfig, BearerToken, ServerConfig, Service};
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The token the test services accept.
pub const TOKEN: &str = "test-token-0123456789abcdef";

pub const DIM: usize = 8;
pub const TOPIC_WORDS: [&str; 8] = [
    "sunset", "forest", "castle", "drums", "rain", "cheer", "city", "ocean",
];

/// The eight fixtures with a topic each (0 sunset, 1 forest, 2 castle, 3 drums, ...).
pub const LIBRARY: [(&str, usize); 8] = [
    ("image.png", 0),
    ("image.jpg", 1),
    ("image.webp", 2),
    ("video.mp4", 2),
    ("video.mov", 6),
    ("audio.wav", 3),
    ("audio.mp3", 4),
    ("audio.m4a", 5),
];

pub fn topic_vector(topic: usize, jitter: f32) -> Vec<f32> {
    let mut v = vec![0.05; DIM];
    v[topic % DIM] = 1.0;
    v[(topic + 1) % DIM] += jitter;
    v
}

/// A test provider: each fixture gets a fixed "topic" direction; a text naming a topic word maps
/// to it. Deterministic, and obviously not a model. Text containing "slowly" takes 5 s; media
/// takes `media_delay`. Counts its media calls.
pub struct TopicProvider {
    model: ModelInfo,
    topics: HashMap<String, usize>,
    pub media_calls: AtomicUsize,
    pub media_delay: Duration,
}

impl TopicProvider {
    pub fn new() -> Self {
        Self::with_delay(Duration::ZERO)
    }

    pub fn with_delay(media_delay: Duration) -> Self {
        let topics = LIBRARY
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
            media_calls: AtomicUsize::new(0),
            media_delay,
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
        self.media_calls.fetch_add(1, Ordering::SeqCst);
        if !self.media_delay.is_zero() {
            tokio::time::sleep(self.media_delay).await;
        }
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

pub fn fixtures() -> PathBuf {
    crossmodal_testkit::fixtures::dir()
}

pub fn fixture(name: &str) -> Vec<u8> {
    crossmodal_testkit::fixtures::read(name)
}

pub fn asset_of(name: &str) -> AssetId {
    AssetId::from_content(&fixture(name))
}

pub fn mime(name: &str) -> &'static str {
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

/// The configuration the tests start from: the test token, thumbnails in `thumbs`.
pub fn config(thumbs: &Path) -> ServerConfig {
    ServerConfig::builder()
        .auth(AuthConfig::tokens([BearerToken::new(TOKEN).unwrap()]))
        .thumbnail_dir(thumbs)
        .build()
        .unwrap()
}

/// A client that sends the test token.
pub fn client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {TOKEN}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// A client without a token.
pub fn anonymous() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// A running service.
pub struct Server {
    pub base: String,
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub service: Service,
    pub provider: Arc<TopicProvider>,
    pub dir: tempfile::TempDir,
}

impl Server {
    /// The service with [`config`] changed by `tune`.
    pub async fn start(tune: impl FnOnce(&mut ServerConfig)) -> Server {
        Self::start_with(Arc::new(TopicProvider::new()), tune).await
    }

    pub async fn start_with(
        provider: Arc<TopicProvider>,
        tune: impl FnOnce(&mut ServerConfig),
    ) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open_local(dir.path().join("data"), provider.clone())
            .await
            .unwrap();
        let mut config = config(&dir.path().join("thumbnails"));
        tune(&mut config);
        let service = Service::new(engine, config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = service
            .router()
            .into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Server {
            base: format!("http://{addr}"),
            addr,
            http: client(),
            service,
            provider,
            dir,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self.http.get(self.url(path)).send().await.unwrap();
        json_of(r).await
    }

    pub async fn search(&self, body: Value) -> (StatusCode, Value) {
        let r = self
            .http
            .post(self.url("/api/search"))
            .json(&body)
            .send()
            .await
            .unwrap();
        json_of(r).await
    }

    pub async fn upload(
        &self,
        path: &str,
        files: &[(&str, Vec<u8>)],
        tags: Option<&str>,
    ) -> (StatusCode, Value) {
        // An upload refused part-way (a file over the limit) is answered while the client may
        // still be sending: the client then sometimes sees the connection close instead of the
        // answer. Uploads are idempotent (content-addressed), so it is sent again.
        for _ in 0..10 {
            match self
                .http
                .post(self.url(path))
                .multipart(form(files, tags))
                .send()
                .await
            {
                Ok(r) => return json_of(r).await,
                Err(e) if e.is_request() => continue,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("the answer was never read: the connection closed every time");
    }

    pub async fn upload_all(&self) -> Value {
        let files: Vec<(&str, Vec<u8>)> = LIBRARY.iter().map(|(n, _)| (*n, fixture(n))).collect();
        let (status, body) = self
            .upload("/api/assets", &files, Some("fixtures, test"))
            .await;
        assert_eq!(status, StatusCode::OK, "{body:#}");
        body
    }

    /// Asserts the service still answers.
    pub async fn assert_serving(&self) {
        let (status, body) = self.get("/api/stats").await;
        assert_eq!(
            status,
            StatusCode::OK,
            "the service stopped serving: {body:#}"
        );
    }
}

pub fn form(files: &[(&str, Vec<u8>)], tags: Option<&str>) -> Form {
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
    form
}

pub async fn json_of(r: reqwest::Response) -> (StatusCode, Value) {
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
pub fn assert_error(status: StatusCode, body: &Value, want: StatusCode, kind: &str) {
    assert_eq!(status, want, "{body:#}");
    assert_eq!(body["error"]["kind"], kind, "{body:#}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body:#}"
    );
}

pub fn names(hits: &Value) -> Vec<String> {
    hits.as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap_or("?").to_string())
        .collect()
}

pub fn a_png_nobody_knows() -> Vec<u8> {
    let img = image::RgbImage::from_pixel(4, 4, image::Rgb([1, 2, 3]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Whether ffmpeg runs here.
pub fn ffmpeg_present() -> bool {
    std::process::Command::new("ffmpeg")
        .arg("-version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Every file under `dir`, relative.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}
