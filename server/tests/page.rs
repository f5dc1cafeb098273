//! The page in headless Chromium, driven through chromedriver's W3C WebDriver API: sign in
//! with a token, upload the fixtures with the page's file input, see them as thumbnail cards
//! with colour-coded status, filter by kind and status, page through the library, search by
//! text and by an uploaded file, and play a video result from its matched segment; without
//! ffmpeg the page says there are no video thumbnails. Takes a screenshot (path printed;
//! `SERVE_PAGE_SCREENSHOT` picks it).
//!
//! Needs Debian's `chromium` and `chromium-driver`. Without them the test is skipped with a
//! message, except under `CI=true`, where it fails.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// The browser and driver binaries, or why they are missing.
fn browser() -> std::result::Result<(PathBuf, PathBuf), String> {
    let find = |env: &str, names: &[&str]| -> Option<PathBuf> {
        if let Some(p) = std::env::var_os(env) {
            let p = PathBuf::from(p);
            return p.is_file().then_some(p);
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        for dir in std::env::split_paths(&path).chain([PathBuf::from("/usr/bin")]) {
            for n in names {
                let p = dir.join(n);
                if p.is_file() {
                    return Some(p);
                }
            }
        }
        None
    };
    let chromium = find("CHROMIUM", &["chromium", "chromium-browser"]);
    let driver = find("CHROMEDRIVER", &["chromedriver"]);
    match (chromium, driver) {
        (Some(c), Some(d)) => Ok((c, d)),
        (c, d) => Err(format!(
            "missing {}{}(Debian packages `chromium` and `chromium-driver`)",
            if c.is_none() { "chromium " } else { "" },
            if d.is_none() { "chromedriver " } else { "" },
        )),
    }
}

/// Kills the chromedriver we started (by its own handle) when the test ends.
struct DriverProcess(Child);

impl Drop for DriverProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A minimal W3C WebDriver client.
struct WebDriver {
    http: reqwest::Client,
    base: String,
    session: String,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl WebDriver {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {v:#}");
        v["value"].clone()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .post("/element", json!({ "using": "css selector", "value": css }))
            .await;
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v:#}"))
            .to_string()
    }

    async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.post(&format!("/element/{id}/click"), json!({})).await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.post(&format!("/element/{id}/value"), json!({ "text": text }))
            .await;
    }

    async fn js(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({ "script": script, "args": [] }))
            .await
    }

    /// Polls `script` (which returns a value) until `done` accepts it.
    async fn wait_for(&self, what: &str, script: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self.js(script).await;
            if done(&v) {
                return v;
            }
            if Instant::now() > deadline {
                let page = self.js("return document.body.innerText").await;
                panic!("timed out waiting for {what}: last value {v:#}\npage text:\n{page}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn screenshot(&self) -> Vec<u8> {
        let v = self.call(reqwest::Method::GET, "/screenshot", None).await;
        base64_decode(v.as_str().unwrap())
    }

    async fn quit(&self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send()
            .await;
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let clean: Vec<u8> = s
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= val(*c) << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

async fn start_driver(
    chromium: &Path,
    driver: &Path,
    profile: &Path,
) -> (DriverProcess, WebDriver) {
    let port = free_port();
    let log = std::fs::File::create(profile.with_extension("chromedriver.log")).unwrap();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start chromedriver");
    let process = DriverProcess(child);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(format!("{base}/status")).send().await
            && let Ok(v) = r.json::<Value>().await
            && v["value"]["ready"] == true
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "chromedriver did not start on port {port}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let caps = json!({
        "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.to_string_lossy(),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1400,1100",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        }}
    });
    let r = http
        .post(format!("{base}/session"))
        .json(&caps)
        .send()
        .await
        .expect("new WebDriver session");
    let v: Value = r.json().await.unwrap();
    let session = v["value"]["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no session: {v:#}"))
        .to_string();
    (
        process,
        WebDriver {
            http,
            base,
            session,
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_signs_in_uploads_lists_searches_and_plays_the_matched_segment() {
    let (chromium, driver) = match browser() {
        Ok(found) => found,
        Err(why) => {
            crossmodal_testkit::skip::skip(
                "the_page_signs_in_uploads_lists_searches_and_plays_the_matched_segment",
                &why,
            );
            return;
        }
    };
    let ffmpeg = ffmpeg_present();
    let s = Server::start(|_| {}).await;
    let bare = Server::start(|c| c.ffmpeg = "/nonexistent/ffmpeg".into()).await;
    let profile = tempfile::tempdir().unwrap();
    let (_process, wd) = start_driver(&chromium, &driver, &profile.path().join("profile")).await;
    // Close the browser (through its session) even when a check fails, then report.
    let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(drive(
        &wd, &s, &bare, ffmpeg,
    )))
    .await;
    wd.quit().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

const CARDS: &str = "[...document.querySelectorAll('#assets .card')]";

async fn sign_in(wd: &WebDriver, url: &str) {
    wd.goto(url).await;
    wd.wait_for(
        "the sign-in box",
        "return !document.getElementById('signin').classList.contains('hidden')",
        |v| v == true,
    )
    .await;
    wd.type_into("#token", "not-the-right-token").await;
    wd.click("#signin-button").await;
    let error = wd
        .wait_for(
            "the refusal of a wrong token",
            "return document.getElementById('error').textContent",
            |v| v.as_str().is_some_and(|t| !t.is_empty()),
        )
        .await;
    assert!(error.as_str().unwrap().contains("not valid"), "{error}");
    wd.js("document.getElementById('token').value = ''; return null")
        .await;
    wd.type_into("#token", TOKEN).await;
    wd.click("#signin-button").await;
    wd.wait_for(
        "the signed-in page",
        "return !document.getElementById('app').classList.contains('hidden')",
        |v| v == true,
    )
    .await;
}

async fn drive(wd: &WebDriver, s: &Server, bare: &Server, ffmpeg: bool) {
    sign_in(wd, &s.url("/")).await;
    wd.wait_for(
        "the empty library",
        "return !document.getElementById('assets-empty').classList.contains('hidden')",
        |v| v == true,
    )
    .await;

    // Upload every fixture through the page's file input.
    let paths: Vec<String> = LIBRARY
        .iter()
        .map(|(n, _)| fixtures().join(n).display().to_string())
        .collect();
    wd.type_into("#upload-files", &paths.join("\n")).await;
    wd.type_into("#upload-tags", "fixtures").await;
    wd.click("#upload-button").await;
    let results = wd
        .wait_for(
            "the upload results",
            "return [...document.querySelectorAll('#upload-results li[data-status]')].map(li => li.textContent)",
            |v| v.as_array().is_some_and(|a| a.len() == 8),
        )
        .await;
    assert!(
        results
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t.as_str().unwrap().starts_with('✓')),
        "{results:#}"
    );

    // The library: eight cards, indexed (green), each image and video with its thumbnail
    // loaded (through the session cookie), audio marked as such.
    let cards = wd
        .wait_for(
            "eight indexed cards with their thumbnails",
            &format!(
                "return {CARDS}.map(c => {{ const img = c.querySelector('.thumb img'); \
                 return [c.querySelector('.name').textContent, c.dataset.state, c.dataset.kind, \
                   c.querySelector('.badge').textContent, getComputedStyle(c.querySelector('.badge')).color, \
                   img ? img.complete && img.naturalWidth : null, c.querySelector('.thumb').textContent]; }})"
            ),
            |v| {
                v.as_array().is_some_and(|a| {
                    a.len() == 8
                        && a.iter().all(|r| r[1] == "indexed")
                        && a.iter().all(|r| r[2] == "audio" || r[5].as_u64().unwrap_or(0) > 0)
                })
            },
        )
        .await;
    let names: Vec<&str> = cards
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[0].as_str().unwrap())
        .collect();
    for (n, _) in LIBRARY {
        assert!(names.contains(&n), "{n} not listed: {names:?}");
    }
    for r in cards.as_array().unwrap() {
        assert_eq!(r[3], "indexed");
        assert_eq!(r[4], "rgb(30, 142, 78)", "the indexed badge is green");
        if r[2] == "audio" {
            assert!(r[6].as_str().unwrap().contains("audio"), "{r}");
        }
    }
    let stats = wd
        .js("return document.getElementById('stats').textContent")
        .await;
    assert!(stats.as_str().unwrap().contains("8 indexed"), "{stats}");
    if ffmpeg {
        let note = wd
            .js("return document.getElementById('thumb-note').classList.contains('hidden')")
            .await;
        assert_eq!(note, true, "no thumbnail warning with ffmpeg");
    }

    // A file the provider cannot embed: a red card with the reason; the status filter finds it.
    let stranger =
        std::env::temp_dir().join(format!("crossmodal-stranger-{}.png", std::process::id()));
    image::RgbImage::from_pixel(4, 4, image::Rgb([9, 9, 9]))
        .save(&stranger)
        .unwrap();
    wd.type_into("#upload-files", &stranger.display().to_string())
        .await;
    wd.click("#upload-button").await;
    let failed = wd
        .wait_for(
            "a failed card",
            "const c = document.querySelector('#assets .card[data-state=failed]'); \
             return c ? [c.querySelector('.badge').textContent, \
               getComputedStyle(c.querySelector('.badge')).color, c.querySelector('.why').textContent, \
               getComputedStyle(c).borderTopColor] : null",
            |v| v.is_array(),
        )
        .await;
    let _ = std::fs::remove_file(&stranger);
    assert_eq!(failed[0], "failed");
    assert_eq!(failed[1], "rgb(192, 38, 45)", "the failed badge is red");
    assert!(
        failed[2].as_str().unwrap().starts_with("embed: "),
        "{failed}"
    );
    assert_eq!(
        failed[3], "rgb(192, 38, 45)",
        "the failed card is marked red"
    );
    let select = |id: &str, value: &str| {
        format!(
            "const s = document.getElementById('{id}'); s.value = '{value}'; \
             s.dispatchEvent(new Event('change')); return null"
        )
    };
    wd.js(&select("filter-status", "failed")).await;
    wd.wait_for(
        "only the failed card",
        &format!("return {CARDS}.map(c => c.dataset.state)"),
        |v| {
            v.as_array()
                .is_some_and(|a| a.len() == 1 && a[0] == "failed")
        },
    )
    .await;
    wd.js(&select("filter-status", "")).await;
    wd.js(&select("filter-kind", "video")).await;
    wd.wait_for(
        "two video cards",
        &format!("return {CARDS}.map(c => c.querySelector('.kind').textContent)"),
        |v| {
            v.as_array()
                .is_some_and(|a| a.len() == 2 && a.iter().all(|k| k == "video"))
        },
    )
    .await;
    wd.js(&select("filter-kind", "")).await;

    // Paged, not loaded whole: 20 more (unembeddable) images make 29 assets, 24 a page.
    for i in 0..20u8 {
        let img = image::RgbImage::from_pixel(4, 4, image::Rgb([i, 200, 7]));
        let mut png = std::io::Cursor::new(Vec::new());
        img.write_to(&mut png, image::ImageFormat::Png).unwrap();
        let (status, _) = s
            .upload(
                "/api/assets",
                &[(format!("extra-{i}.png").as_str(), png.into_inner())],
                None,
            )
            .await;
        assert!(status.is_client_error() || status.is_success());
    }
    wd.click("#refresh").await;
    wd.wait_for(
        "the first page and a Load more button",
        &format!(
            "return [{CARDS}.length, !document.getElementById('more').classList.contains('hidden')]"
        ),
        |v| v[0] == 24 && v[1] == true,
    )
    .await;
    wd.click("#more").await;
    wd.wait_for(
        "all 29 cards",
        &format!(
            "return [{CARDS}.length, document.getElementById('more').classList.contains('hidden')]"
        ),
        |v| v[0] == 29 && v[1] == true,
    )
    .await;

    // Search by text: clips with score, matched space, time range and a still.
    wd.type_into("#search-text", "a castle at night").await;
    wd.click("#search-button").await;
    let hits = wd
        .wait_for(
            "text search results",
            "return [...document.querySelectorAll('#results li.hit')].map(li => [ \
               li.querySelector('.title').textContent, li.querySelector('.score').textContent, \
               li.querySelector('.space').textContent, li.querySelector('.segment').textContent])",
            |v| v.as_array().is_some_and(|a| !a.is_empty()),
        )
        .await;
    let hits = hits.as_array().unwrap();
    let top: Vec<&str> = hits
        .iter()
        .take(2)
        .map(|h| h[0].as_str().unwrap())
        .collect();
    assert!(
        top.iter().any(|t| t.ends_with("video.mp4"))
            && top.iter().any(|t| t.ends_with("image.webp")),
        "{hits:?}"
    );
    let video = hits
        .iter()
        .find(|h| h[0].as_str().unwrap().ends_with("video.mp4"))
        .unwrap();
    assert_eq!(video[2], "visual");
    assert_eq!(video[3], "1.0–2.0 s");
    assert!(video[1].as_str().unwrap().parse::<f32>().unwrap() > 0.9);

    // The video clip: its still is the matched segment's middle, the range is shown on it, and
    // play starts at the segment.
    let mp4_card = "[...document.querySelectorAll('#results li.hit')].find(li => \
                    li.querySelector('.title').textContent.endsWith('video.mp4'))";
    let clip = wd
        .js(&format!(
            "const c = {mp4_card}; const v = c.querySelector('video'); \
             return [v.getAttribute('src'), v.getAttribute('poster'), c.querySelector('.range').textContent]"
        ))
        .await;
    assert!(
        clip[0].as_str().unwrap().ends_with("/media#t=1,2"),
        "{clip}"
    );
    assert!(
        clip[1].as_str().unwrap().ends_with("/thumbnail?t=1.5"),
        "{clip}"
    );
    assert_eq!(clip[2], "1.0–2.0 s");
    wd.js(&format!(
        "{mp4_card}.querySelector('button.play').click(); return null"
    ))
    .await;
    let seek = wd
        .wait_for(
            "the video to reach its matched segment",
            &format!(
                "const v = {mp4_card}.querySelector('video'); \
                 return {{ready: v.readyState, t: v.currentTime, err: v.error && v.error.code}}"
            ),
            |v| v["err"].is_number() || v["t"].as_f64().is_some_and(|t| t >= 0.99),
        )
        .await;
    assert!(
        seek["err"].is_null(),
        "the browser could not load the video: {seek:#}"
    );

    // Every matching clip: the video lists its clips (adjacent ones merged: its two clips,
    // 0-1 s and 1-2 s, are one range), each a button that plays it.
    wd.click("#search-clips").await;
    wd.click("#search-keywords").await;
    wd.click("#search-button").await;
    let clips = wd
        .wait_for(
            "the clip view",
            &format!(
                "const c = {mp4_card};                  return c ? [...c.querySelectorAll('button.clip-button')].map(b => b.textContent) : []"
            ),
            |v| v.as_array().is_some_and(|a| !a.is_empty()),
        )
        .await;
    assert!(
        clips[0].as_str().unwrap().starts_with("▶ 0.0–2.0 s"),
        "the merged clip: {clips}"
    );
    wd.click("#search-clips").await;
    wd.click("#search-keywords").await;

    let shot = std::env::var_os("SERVE_PAGE_SCREENSHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("crossmodal-serve-page.png"));
    std::fs::write(&shot, wd.screenshot().await).unwrap();
    println!("screenshot of the page: {}", shot.display());

    // Search by an uploaded file: the castle image finds the castle video first.
    wd.click("#by-file").await;
    wd.type_into(
        "#search-file",
        &fixtures().join("image.webp").display().to_string(),
    )
    .await;
    wd.click("#search-button").await;
    let first = wd
        .wait_for(
            "file search results",
            "const s = document.getElementById('search-status').textContent; \
             const li = document.querySelector('#results li.hit .title'); \
             return s.includes('file image.webp') && li ? li.textContent : null",
            |v| v.is_string(),
        )
        .await;
    assert_eq!(first, "1. video.mp4");
    let error = wd
        .js("return document.getElementById('error').textContent")
        .await;
    assert_eq!(error, "", "no error shown");

    // Signing out brings the sign-in box back; the cookie no longer opens the API.
    wd.click("#signout").await;
    wd.wait_for(
        "the sign-in box again",
        "return !document.getElementById('signin').classList.contains('hidden')",
        |v| v == true,
    )
    .await;

    // A service without ffmpeg: the page says there are no video thumbnails, and why.
    bare.upload_all().await;
    sign_in(wd, &bare.url("/")).await;
    let note = wd
        .wait_for(
            "the no-thumbnails note",
            "const n = document.getElementById('thumb-note'); \
             return n.classList.contains('hidden') ? null : n.textContent",
            |v| v.is_string(),
        )
        .await;
    assert!(
        note.as_str().unwrap().contains("ffmpeg is not installed"),
        "{note}"
    );
    let video_card = wd
        .wait_for(
            "the video cards without a still",
            &format!(
                "return {CARDS}.filter(c => c.dataset.kind === 'video').map(c => [!!c.querySelector('.thumb img'), c.querySelector('.thumb .no-thumb') && c.querySelector('.thumb .no-thumb').textContent])"
            ),
            |v| v.as_array().is_some_and(|a| a.len() == 2),
        )
        .await;
    assert!(
        video_card
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t[0] == false && t[1] == "no thumbnail"),
        "{video_card}"
    );
}
