//! The `crossmodal` binary, spawned as a user runs it: configuration errors stop it with one
//! line; against the Bedrock-protocol test server (with the moto S3 server for its asynchronous
//! jobs) it ingests the fixtures, reports status, searches, serves the API behind a token, keeps
//! a second process out of the data directory, shuts down gracefully on SIGTERM (finishing the
//! ingest in flight), deletes and retries. Every run has AWS credentials in its environment and
//! `RUST_LOG=trace`: none of them, nor the API token, nor a SigV4 signature appears in its
//! output (issue 15, point 4).
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use crossmodal_testkit::bedrock_server::{ACCOUNT, TestServer};
use serde_json::Value;

const ACCESS_KEY_ID: &str = "AKIAQSECRETTESTID042";
const SECRET_KEY: &str = "wJalrXUtnSecretTestKey/K7MDENG/bPxRfiCYzz";
const SESSION_TOKEN: &str = "FQoGZXIvYXdzSessionTokenTestValue0123456789";
const API_TOKEN: &str = "cli-test-token-0123456789abcdef";

/// The binary with no `CROSSMODAL_*` or `AWS_*` setting inherited.
fn crossmodal() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_crossmodal"));
    for (k, _) in std::env::vars() {
        if k.starts_with("CROSSMODAL_") || k.starts_with("AWS_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.stdin(Stdio::null());
    cmd
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn configuration_errors_stop_it_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    // No provider.
    let out = crossmodal()
        .args(["status", "--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("set CROSSMODAL_BEDROCK_BUCKET"), "{stderr}");
    assert!(
        !dir.path().join("data").exists(),
        "nothing opened without a provider"
    );
    // serve without a token.
    let out = crossmodal()
        .arg("serve")
        .env("CROSSMODAL_BEDROCK_BUCKET", "some-bucket")
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no API token"), "{stderr}");
    // A short token is refused without being shown.
    let out = crossmodal()
        .arg("serve")
        .env("CROSSMODAL_TOKEN", "short-secret")
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("CROSSMODAL_TOKEN"), "{stderr}");
    assert!(!stderr.contains("short-secret"), "{stderr}");
    // A typo in the config file names the key.
    let config = dir.path().join("crossmodal.toml");
    std::fs::write(&config, "[server]\nupload_concurency = 2\n").unwrap();
    let out = crossmodal()
        .args(["status", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("upload_concurency"), "{stderr}");
}

/// The S3 and Bedrock test servers and the environment the binary runs with.
struct Stack {
    bedrock: TestServer,
    env: Vec<(String, String)>,
    dir: tempfile::TempDir,
    outputs: std::sync::Mutex<String>,
}

impl Stack {
    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self) -> Command {
        let mut cmd = crossmodal();
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd
    }

    /// Runs a subcommand to its end; its output is kept for the secrets check.
    fn run(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let out = self.command().args(args).output().unwrap();
        let (stdout, stderr) = text(&out);
        self.outputs
            .lock()
            .unwrap()
            .push_str(&format!("{stdout}\n{stderr}\n"));
        (out.status.code(), stdout, stderr)
    }
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn png(seed: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(16, 16, |x, y| {
        image::Rgb([seed, (x * 16) as u8, (y * 16) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_ingests_searches_serves_and_stops_gracefully_without_leaking_secrets() {
    let Some(s3_endpoint) = crossmodal_testkit::skip::required_env(
        "CROSSMODAL_S3_ENDPOINT",
        "the_binary_ingests_searches_serves_and_stops_gracefully_without_leaking_secrets",
    ) else {
        return;
    };
    let s3 = crossmodal_testkit::aws::s3_client(&s3_endpoint);
    let bucket = crossmodal_testkit::aws::create_bucket(&s3, "cli").await;
    let bedrock = TestServer::start(Some(s3)).await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("# the team\n{API_TOKEN}\n")).unwrap();
    let env: Vec<(String, String)> = [
        ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", bedrock.url.as_str()),
        ("AWS_ENDPOINT_URL_S3", s3_endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("AWS_SESSION_TOKEN", SESSION_TOKEN),
        ("AWS_REGION", "us-east-1"),
        ("AWS_CONFIG_FILE", "/nonexistent/aws-config"),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials",
        ),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("CROSSMODAL_BEDROCK_BUCKET", bucket.as_str()),
        ("CROSSMODAL_BEDROCK_BUCKET_OWNER", ACCOUNT),
        ("CROSSMODAL_BEDROCK_POLL_MS", "20"),
        (
            "CROSSMODAL_DATA_DIR",
            dir.path().join("data").to_str().unwrap(),
        ),
        ("CROSSMODAL_TOKEN_FILE", tokens.to_str().unwrap()),
        ("RUST_LOG", "trace"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let stack = Stack {
        bedrock,
        env,
        dir,
        outputs: std::sync::Mutex::default(),
    };
    // Everything below runs the binary synchronously: keep it off the async workers that serve
    // the Bedrock test server.
    let stack = std::sync::Arc::new(stack);
    let st = stack.clone();
    tokio::task::spawn_blocking(move || drive(&st))
        .await
        .unwrap();

    stack.bedrock.assert_no_violations();
    let all = stack.outputs.lock().unwrap().clone();
    // The check can fail: trace output of the AWS SDK was there to leak, and was redacted.
    assert!(
        all.contains("aws_smithy") || all.contains("aws_sdk"),
        "no SDK trace output"
    );
    for secret in [SECRET_KEY, SESSION_TOKEN, ACCESS_KEY_ID, API_TOKEN] {
        assert!(!all.contains(secret), "{secret} leaked into the output");
    }
    for marker in ["Signature=", "X-Amz-Signature=", "x-amz-security-token:"] {
        let lower = all.to_lowercase();
        let m = marker.to_lowercase();
        let mut from = 0;
        while let Some(i) = lower[from..].find(&m) {
            let at = from + i + m.len();
            let next = &all[at..(at + 10).min(all.len())];
            assert!(
                next.starts_with("[redacted]")
                    || !next.starts_with(|c: char| c.is_ascii_alphanumeric()),
                "a {marker} value leaked: ...{}...",
                &all[from + i..(at + 40).min(all.len())]
            );
            from = at;
        }
    }
    assert!(all.contains("[redacted]"), "nothing needed redacting?");
    println!(
        "figure: {} bytes of trace output checked, {} redactions",
        all.len(),
        all.matches("[redacted]").count()
    );
}

fn drive(stack: &Stack) {
    let fixtures = crossmodal_testkit::fixtures::dir();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // ingest DIR: every fixture, through Marengo's synchronous and asynchronous paths.
    let (code, stdout, stderr) = stack.run(&["ingest", fixtures.to_str().unwrap(), "--tag", "fx"]);
    assert_eq!(code, Some(0), "{stdout}\n{}", tail(&stderr));
    assert!(stdout.contains("8 files: 8 indexed"), "{stdout}");
    let (code, stdout, _) = stack.run(&["ingest", fixtures.to_str().unwrap()]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("8 already indexed"), "{stdout}");

    // status
    let (code, stdout, stderr) = stack.run(&["status", "--json", "--failed"]);
    assert_eq!(code, Some(0), "{}", tail(&stderr));
    let status: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(status["counts"]["indexed"], 8, "{status:#}");
    assert_eq!(status["model"], "twelvelabs.marengo-embed-3-0-v1:0");

    // search: by text, by a file, by an asset.
    let (code, stdout, stderr) = stack.run(&["search", "a castle at night", "-k", "3", "--json"]);
    assert_eq!(code, Some(0), "{}", tail(&stderr));
    let found: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(found["hits"].as_array().unwrap().len(), 3, "{found:#}");
    let png_path = fixtures.join("image.png");
    let (code, stdout, stderr) = stack.run(&[
        "search",
        "--file",
        png_path.to_str().unwrap(),
        "--kind",
        "image",
        "--json",
    ]);
    assert_eq!(code, Some(0), "{}", tail(&stderr));
    let found: Value = serde_json::from_str(stdout.trim()).unwrap();
    let png_id = crossmodal_core::AssetId::from_content(&std::fs::read(&png_path).unwrap());
    let hits = found["hits"].as_array().unwrap();
    assert!(!hits.is_empty(), "{found:#}");
    assert!(hits.iter().all(|h| h["kind"] == "image"), "{found:#}");
    assert!(
        hits.iter().all(|h| h["asset_id"] != png_id.as_str()),
        "not itself: {found:#}"
    );
    assert_eq!(found["query_kind"], "image");
    let (code, stdout, _) = stack.run(&["search", "x", "--mode", "smell"]);
    assert_eq!(code, Some(1));
    assert!(stdout.is_empty());

    // serve: on a free port, behind the token file.
    let thumbs = stack.dir.path().join("thumbs");
    let mut server = stack
        .command()
        .args(["serve", "--addr", "127.0.0.1:0", "--thumbnail-dir"])
        .arg(&thumbs)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = server.stderr.take().unwrap();
    let stderr_reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines() {
            all.push_str(&line.unwrap_or_default());
            all.push('\n');
        }
        all
    });
    let mut stdout = BufReader::new(server.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("no listening line: {line:?}"))
        .trim_end_matches('/')
        .to_string();

    // A second process on the same data directory is kept out.
    let (code, _, stderr) = stack.run(&["status"]);
    assert_eq!(code, Some(1), "{}", tail(&stderr));
    assert!(
        stderr.contains("is in use by process") && stderr.contains("upload them through its API"),
        "{}",
        tail(&stderr)
    );

    let http = reqwest::Client::new();
    rt.block_on(async {
        let r = http.get(format!("{base}/api/stats")).send().await.unwrap();
        assert_eq!(r.status(), 401);
        let r = http
            .get(format!("{base}/api/stats"))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let stats: Value = r.json().await.unwrap();
        assert_eq!(stats["counts"]["indexed"], 8, "{stats:#}");
        assert_eq!(stats["thumbnails"]["videos"], ffmpeg_here(), "{stats:#}");
        // An upload accepted in the background, then SIGTERM at once: the ingest in flight is
        // finished before the process exits.
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(png(42))
                .file_name("late.png")
                .mime_str("image/png")
                .unwrap(),
        );
        let r = http
            .post(format!("{base}/api/assets?wait=false"))
            .bearer_auth(API_TOKEN)
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    });
    sigterm(&server);
    let status = server.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let serve_stderr = stderr_reader.join().unwrap();
    stack
        .outputs
        .lock()
        .unwrap()
        .push_str(&format!("{line}{rest}\n{serve_stderr}\n"));
    assert!(status.success(), "{status}: {}", tail(&serve_stderr));
    assert!(
        rest.contains("stopped: index flushed, 0 ingest(s) left"),
        "{rest}\n{}",
        tail(&serve_stderr)
    );
    assert!(serve_stderr.contains("request"), "request spans are logged");
    let (_, stdout, _) = stack.run(&["status", "--json"]);
    let status: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        status["counts"]["indexed"], 9,
        "the late upload was finished: {status:#}"
    );

    // delete, and retry (nothing to do).
    let (code, stdout, _) = stack.run(&["delete", png_id.as_str()]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("deleted"), "{stdout}");
    let (code, stdout, _) = stack.run(&["delete", png_id.as_str()]);
    assert_eq!(code, Some(1));
    assert!(stdout.contains("no asset"), "{stdout}");
    let (code, _, stderr) = stack.run(&["delete", "../../etc/passwd"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("asset id"), "{}", tail(&stderr));
    let (code, stdout, stderr) = stack.run(&["retry"]);
    assert_eq!(code, Some(0), "{}", tail(&stderr));
    assert!(stdout.contains("retried 0 files"), "{stdout}");
    let (_, stdout, _) = stack.run(&["status", "--json"]);
    let status: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(status["counts"]["total"], 8, "{status:#}");
    assert!(Path::new(&stack.data_dir()).join("catalog.db").is_file());
}

fn ffmpeg_here() -> bool {
    Command::new("ffmpeg")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The last lines of a long log.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}
