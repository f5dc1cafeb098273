//! `S3MediaStore` against a real S3-compatible server (`moto_server`, started by
//! `scripts/s3-server.sh start`, which exports `CROSSMODAL_S3_ENDPOINT` and `CROSSMODAL_MOTO_BIN`).
//!
//! Without `CROSSMODAL_S3_ENDPOINT` the tests print a skip message and pass, except under
//! `CI=true`, where they fail. Each test works in its own fresh bucket.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossmodal_core::{AssetId, ErrorKind, MediaFormat, MediaKey, MediaStore};
use crossmodal_s3::aws_sdk_s3::Client;
use crossmodal_s3::{PutOptions, S3MediaStore, S3StoreConfig};

fn key(s: &str) -> MediaKey {
    MediaKey::parse(s).unwrap()
}

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/media")
}

/// The media fixtures and the format each must sniff as.
const FIXTURES: [(&str, MediaFormat); 8] = [
    ("image.png", MediaFormat::Png),
    ("image.jpg", MediaFormat::Jpeg),
    ("image.webp", MediaFormat::Webp),
    ("video.mp4", MediaFormat::Mp4),
    ("video.mov", MediaFormat::Mov),
    ("audio.wav", MediaFormat::Wav),
    ("audio.mp3", MediaFormat::Mp3),
    ("audio.m4a", MediaFormat::M4a),
];

/// Multipart uploads still open in `bucket` (a failed upload must leave none behind).
async fn open_uploads(client: &Client, bucket: &str) -> usize {
    client
        .list_multipart_uploads()
        .bucket(bucket)
        .send()
        .await
        .expect("ListMultipartUploads")
        .uploads()
        .len()
}

#[tokio::test]
async fn passes_the_media_store_conformance_suite() {
    let endpoint = endpoint_or_skip!("passes_the_media_store_conformance_suite");
    let (store, client, bucket) = common::fresh_store(&endpoint, "suite").await;
    crossmodal_core::conformance::media_store_suite(&store).await;
    common::remove_bucket(&client, &bucket).await;
}

#[tokio::test]
async fn passes_the_suite_under_a_key_prefix_and_ignores_other_objects() {
    let endpoint =
        endpoint_or_skip!("passes_the_suite_under_a_key_prefix_and_ignores_other_objects");
    let client = common::test_client(&endpoint);
    let bucket = common::create_bucket(&client, "prefix").await;
    // Objects outside the prefix, and one inside it whose name is not a valid key.
    for (name, body) in [
        ("outside/x.png", "o"),
        ("tenant-a/media/bad key!", "b"),
        ("tenant-a/mediaX", "m"),
    ] {
        client
            .put_object()
            .bucket(&bucket)
            .key(name)
            .body(Bytes::from_static(body.as_bytes()).into())
            .send()
            .await
            .unwrap();
    }
    let config = common::test_config(&endpoint, &bucket).with_prefix("tenant-a/media");
    let store = S3MediaStore::new(client.clone(), config).unwrap();
    assert_eq!(store.config().prefix(), "tenant-a/media/");
    crossmodal_core::conformance::media_store_suite(&store).await;

    let k = key("ab/clip.mp4");
    let stored = store
        .put(&k, Bytes::from_static(b"clip"), MediaFormat::Mp4)
        .await
        .unwrap();
    assert_eq!(
        stored.uri.as_str(),
        format!("s3://{bucket}/tenant-a/media/ab/clip.mp4")
    );
    // The object really lives under the prefix.
    let raw = client
        .get_object()
        .bucket(&bucket)
        .key("tenant-a/media/ab/clip.mp4")
        .send()
        .await
        .unwrap();
    assert_eq!(
        raw.body.collect().await.unwrap().into_bytes(),
        Bytes::from_static(b"clip")
    );
    // Listing sees only valid keys under the prefix, without the prefix.
    let page = store.list("", None, 100).await.unwrap();
    assert_eq!(page.keys, vec![k]);
    common::remove_bucket(&client, &bucket).await;
}

#[tokio::test]
async fn media_fixtures_round_trip_with_their_content_type_and_hash() {
    let endpoint = endpoint_or_skip!("media_fixtures_round_trip_with_their_content_type_and_hash");
    let (store, client, bucket) = common::fresh_store(&endpoint, "fixtures").await;
    for (name, expected) in FIXTURES {
        let path = fixtures_dir().join(name);
        let bytes = Bytes::from(
            std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display())),
        );
        let format = MediaFormat::sniff(&bytes)
            .unwrap_or_else(|| panic!("fixture {name} does not sniff as a media format"));
        assert_eq!(format, expected, "fixture {name}");
        let id = AssetId::from_content(&bytes);
        let k = MediaKey::for_asset(&id, format);

        // put, get, and HEAD behind the store's back.
        let stored = store.put(&k, bytes.clone(), format).await.unwrap();
        assert_eq!(stored.uri.as_str(), format!("s3://{bucket}/{k}"), "{name}");
        assert_eq!(store.get(&k).await.unwrap(), bytes, "{name}: get");
        let head = client
            .head_object()
            .bucket(&bucket)
            .key(k.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(
            head.content_type(),
            Some(format.mime_type()),
            "{name}: content type"
        );
        assert_eq!(
            head.content_length(),
            Some(bytes.len() as i64),
            "{name}: size"
        );
        assert_eq!(
            head.metadata()
                .and_then(|m| m.get("sha256"))
                .map(String::as_str),
            Some(id.as_str()),
            "{name}: x-amz-meta-sha256"
        );

        // put_file of the same fixture under another key, read back as a stream.
        let k2 = key(&format!("from-file/{name}"));
        store.put_file(&k2, &path, format).await.unwrap();
        let streamed = store
            .get_stream(&k2)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap()
            .into_bytes();
        assert_eq!(streamed, bytes, "{name}: put_file + get_stream");
        let info = store.head(&k2).await.unwrap();
        assert_eq!(info.content_type.as_deref(), Some(format.mime_type()));
        assert_eq!(info.sha256.as_deref(), Some(id.as_str()));
        assert_eq!(info.size, bytes.len() as u64);
    }
    common::remove_bucket(&client, &bucket).await;
}

#[tokio::test]
async fn missing_key_is_not_found_with_context() {
    let endpoint = endpoint_or_skip!("missing_key_is_not_found_with_context");
    let (store, client, bucket) = common::fresh_store(&endpoint, "missing").await;
    let k = key("zz/never-written.mp4");

    let err = store.get(&k).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(!err.is_temporary());
    assert_eq!(err.context_value("key"), Some(k.as_str()), "{err}");
    assert_eq!(err.context_value("bucket"), Some(bucket.as_str()), "{err}");
    assert!(
        err.context_value("request_id").is_some(),
        "request id kept: {err}"
    );
    assert!(
        std::error::Error::source(&err).is_some(),
        "SDK error kept as source"
    );

    assert_eq!(
        store.get_stream(&k).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        store.head(&k).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(!store.exists(&k).await.unwrap());
    assert!(!store.delete(&k).await.unwrap());
    let err = store
        .preview_url(&k, Duration::from_secs(60))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    common::remove_bucket(&client, &bucket).await;
}

#[tokio::test]
async fn wrong_bucket_is_not_found_naming_the_bucket() {
    let endpoint = endpoint_or_skip!("wrong_bucket_is_not_found_naming_the_bucket");
    let client = common::test_client(&endpoint);
    let bucket = common::unique_bucket("absent");
    let store = S3MediaStore::new(client, common::test_config(&endpoint, &bucket)).unwrap();
    let k = key("ab/x.png");

    let err = store.get(&k).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "get: {err}");
    assert_eq!(err.context_value("bucket"), Some(bucket.as_str()), "{err}");
    assert!(err.message().contains("no such bucket"), "{err}");

    let err = store.exists(&k).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "exists: {err}");
    assert_eq!(err.context_value("bucket"), Some(bucket.as_str()), "{err}");
    assert!(err.message().contains("no such bucket"), "{err}");

    let err = store.delete(&k).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "delete: {err}");

    let err = store
        .put(&k, Bytes::from_static(b"x"), MediaFormat::Png)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "put: {err}");
    assert_eq!(err.context_value("bucket"), Some(bucket.as_str()), "{err}");

    let err = store.list("", None, 10).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "list: {err}");
    assert_eq!(err.context_value("bucket"), Some(bucket.as_str()), "{err}");
}

#[tokio::test]
async fn get_detects_content_that_does_not_match_the_recorded_hash() {
    let endpoint = endpoint_or_skip!("get_detects_content_that_does_not_match_the_recorded_hash");
    let (store, client, bucket) = common::fresh_store(&endpoint, "corrupt").await;
    let k = key("ab/tampered.jpg");
    // Written behind the store's back with a hash of other content.
    client
        .put_object()
        .bucket(&bucket)
        .key(k.as_str())
        .metadata("sha256", AssetId::from_content(b"original").as_str())
        .body(Bytes::from_static(b"tampered").into())
        .send()
        .await
        .unwrap();
    let err = store.get(&k).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert_eq!(err.context_value("key"), Some(k.as_str()));
    // An object with no recorded hash (written by another tool) is returned as it is.
    let foreign = key("ab/foreign.jpg");
    client
        .put_object()
        .bucket(&bucket)
        .key(foreign.as_str())
        .body(Bytes::from_static(b"foreign").into())
        .send()
        .await
        .unwrap();
    assert_eq!(
        store.get(&foreign).await.unwrap(),
        Bytes::from_static(b"foreign")
    );
    common::remove_bucket(&client, &bucket).await;
}

#[tokio::test]
async fn presigned_preview_url_serves_the_bytes_over_plain_http() {
    let endpoint = endpoint_or_skip!("presigned_preview_url_serves_the_bytes_over_plain_http");
    let (store, client, bucket) = common::fresh_store(&endpoint, "presign").await;
    let bytes = Bytes::from(std::fs::read(fixtures_dir().join("image.png")).unwrap());
    let k = MediaKey::for_asset(&AssetId::from_content(&bytes), MediaFormat::Png);
    store
        .put(&k, bytes.clone(), MediaFormat::Png)
        .await
        .unwrap();

    let url = store
        .preview_url(&k, Duration::from_secs(120))
        .await
        .unwrap();
    // Loopback only: the URL must point at the local test server.
    assert_eq!(url.host_str(), Some("127.0.0.1"), "{url}");
    assert!(url.path().ends_with(&format!("/{bucket}/{k}")), "{url}");
    let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(param("X-Amz-Expires").as_deref(), Some("120"), "{url}");
    assert!(param("X-Amz-Signature").is_some(), "{url}");

    let response = reqwest::get(url.as_str()).await.unwrap();
    assert_eq!(response.status(), 200, "GET {url}");
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("image/png")
    );
    assert_eq!(response.bytes().await.unwrap(), bytes);

    // A lifetime over S3's one-week maximum is refused up front.
    let err = store
        .preview_url(&k, Duration::from_secs(8 * 24 * 3600))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    common::remove_bucket(&client, &bucket).await;
}

#[tokio::test]
async fn display_name_is_stored_escaped_and_read_back() {
    let endpoint = endpoint_or_skip!("display_name_is_stored_escaped_and_read_back");
    let (store, client, bucket) = common::fresh_store(&endpoint, "names").await;
    let bytes = Bytes::from_static(b"pretend mov");
    let id = AssetId::from_content(&bytes);
    let k = MediaKey::for_asset(&id, MediaFormat::Mov);
    let name = "Château «siege» 日本 100% ../../etc/passwd\\x.mov";
    let options = PutOptions::new().with_display_name(name).with_asset(&id);
    let stored = store
        .put_with(&k, bytes.clone(), MediaFormat::Mov, &options)
        .await
        .unwrap();
    // The key comes from the asset id, never from the name.
    assert_eq!(stored.key, k);
    let info = store.head(&k).await.unwrap();
    assert_eq!(info.display_name.as_deref(), Some(name));
    let raw = client
        .head_object()
        .bucket(&bucket)
        .key(k.as_str())
        .send()
        .await
        .unwrap();
    let header = raw.metadata().unwrap().get("display-name").unwrap();
    assert!(header.is_ascii() && !header.contains(' '), "{header}");

    // A caller-given hash that does not match is refused and nothing is written.
    let other = key("ab/other.mov");
    let err = store
        .put_with(
            &other,
            Bytes::from_static(b"different"),
            MediaFormat::Mov,
            &options,
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(!store.exists(&other).await.unwrap());
    // So is a display name with control characters.
    let err = store
        .put_with(
            &other,
            bytes,
            MediaFormat::Mov,
            &PutOptions::new().with_display_name("a\r\nx-amz-acl: public-read"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    common::remove_bucket(&client, &bucket).await;
}

#[tokio::test]
async fn multipart_failure_aborts_the_upload() {
    let endpoint = endpoint_or_skip!("multipart_failure_aborts_the_upload");
    let (store, client, bucket) = common::fresh_store(&endpoint, "abort").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip.mp4");
    let mut data = vec![0u8; 12 * 1024 * 1024];
    common::Noise::new(7).fill(&mut data);
    std::fs::write(&path, &data).unwrap();
    let small = S3MediaStore::new(
        client.clone(),
        common::test_config(&endpoint, &bucket).with_multipart_threshold(6 * 1024 * 1024),
    )
    .unwrap();
    let k = key("ab/clip.mp4");

    // The caller claims another hash: the parts go up, the check fails, the upload is aborted.
    let wrong = PutOptions::new().with_sha256([0u8; 32]);
    let err = small
        .put_file_with(&k, &path, MediaFormat::Mp4, &wrong)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.context_value("upload_id").is_some(), "{err}");
    assert!(!store.exists(&k).await.unwrap(), "nothing stored");
    assert_eq!(
        open_uploads(&client, &bucket).await,
        0,
        "the upload was aborted"
    );

    // With the right hash (or none), it completes: 12 MiB in 5 MiB parts.
    let id = AssetId::from_content(&data);
    small
        .put_file_with(
            &k,
            &path,
            MediaFormat::Mp4,
            &PutOptions::new().with_asset(&id),
        )
        .await
        .unwrap();
    assert_eq!(store.get(&k).await.unwrap(), Bytes::from(data));
    assert_eq!(
        store.head(&k).await.unwrap().sha256.as_deref(),
        Some(id.as_str())
    );
    assert_eq!(open_uploads(&client, &bucket).await, 0);
    common::remove_bucket(&client, &bucket).await;
}

#[tokio::test]
async fn concurrent_puts_of_the_same_asset_leave_one_whole_object() {
    let endpoint = endpoint_or_skip!("concurrent_puts_of_the_same_asset_leave_one_whole_object");
    let (store, client, bucket) = common::fresh_store(&endpoint, "race").await;
    // 16 single-request puts of one asset.
    let mut data = vec![0u8; 1024 * 1024 + 17];
    common::Noise::new(16).fill(&mut data);
    let bytes = Bytes::from(data);
    let id = AssetId::from_content(&bytes);
    let k = MediaKey::for_asset(&id, MediaFormat::Wav);
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (store, k, bytes) = (store.clone(), k.clone(), bytes.clone());
            tokio::spawn(async move { store.put(&k, bytes, MediaFormat::Wav).await })
        })
        .collect();
    for t in tasks {
        let stored = t.await.unwrap().unwrap();
        assert_eq!(stored, store.media_ref(&k));
    }
    assert_eq!(store.get(&k).await.unwrap(), bytes);
    assert_eq!(
        store.head(&k).await.unwrap().sha256.as_deref(),
        Some(id.as_str())
    );

    // 16 multipart uploads of one file to one key at once (small parts to keep memory modest).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.mp4");
    let mut data = vec![0u8; 11 * 1024 * 1024];
    common::Noise::new(61).fill(&mut data);
    std::fs::write(&path, &data).unwrap();
    let id = AssetId::from_content(&data);
    let k = MediaKey::for_asset(&id, MediaFormat::Mp4);
    let multi = S3MediaStore::new(
        client.clone(),
        common::test_config(&endpoint, &bucket)
            .with_multipart_threshold(5 * 1024 * 1024)
            .with_part_size(5 * 1024 * 1024)
            .with_upload_concurrency(2),
    )
    .unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (store, k, path) = (multi.clone(), k.clone(), path.clone());
            tokio::spawn(async move { store.put_file(&k, &path, MediaFormat::Mp4).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let got = store.get(&k).await.unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "the object is one whole copy of the file");
    assert_eq!(open_uploads(&client, &bucket).await, 0);
    common::remove_bucket(&client, &bucket).await;
}

#[tokio::test]
async fn list_pages_past_the_1000_key_server_page() {
    let endpoint = endpoint_or_skip!("list_pages_past_the_1000_key_server_page");
    let (store, client, bucket) = common::fresh_store(&endpoint, "list").await;
    let keys: Vec<MediaKey> = (0..1105).map(|i| key(&format!("many/k{i:05}"))).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in keys.chunks(140) {
        let (store, chunk) = (store.clone(), chunk.to_vec());
        tasks.spawn(async move {
            for k in chunk {
                store.put(&k, Bytes::new(), MediaFormat::Png).await.unwrap();
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    // One call asking for more keys than a ListObjectsV2 page holds.
    let page = store.list("many/", None, 1100).await.unwrap();
    assert_eq!(page.keys, keys[..1100].to_vec());
    assert_eq!(page.next_after.as_ref(), Some(&keys[1099]));
    let rest = store.list("many/", page.next_after, 1100).await.unwrap();
    assert_eq!(rest.keys, keys[1100..].to_vec());
    assert_eq!(rest.next_after, None);
    // A page ending exactly at the last key says so.
    let exact = store
        .list("many/", Some(keys[1094].clone()), 10)
        .await
        .unwrap();
    assert_eq!(exact.keys, keys[1095..].to_vec());
    assert_eq!(exact.next_after, None);
    common::remove_bucket(&client, &bucket).await;
}

/// A `moto_server` this test owns, on its own port; killed on drop.
struct OwnServer {
    child: tokio::process::Child,
    endpoint: String,
}

impl OwnServer {
    async fn start(bin: &str) -> OwnServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = tokio::process::Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {bin}: {e}"));
        let endpoint = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            if reqwest::get(&endpoint).await.is_ok() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{bin} did not answer on {endpoint} within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!(
            "own moto_server ready on {endpoint} after {:?}",
            started.elapsed()
        );
        OwnServer { child, endpoint }
    }
}

#[tokio::test]
async fn stopped_server_fails_fast_with_an_error_retried_once() {
    let Some(bin) = common::required_env(
        common::MOTO_BIN_VAR,
        "stopped_server_fails_fast_with_an_error_retried_once",
    ) else {
        return;
    };
    let mut server = OwnServer::start(&bin).await;
    let client = common::test_client(&server.endpoint);
    let bucket = common::create_bucket(&client, "stopped").await;
    // The SDK's default 3 attempts, as a user would have them.
    let config = common::test_config(&server.endpoint, &bucket).with_max_attempts(3);
    let store = S3MediaStore::new(client, config).unwrap();
    let k = key("ab/alive.png");
    store
        .put(&k, Bytes::from_static(b"alive"), MediaFormat::Png)
        .await
        .unwrap();
    assert_eq!(store.get(&k).await.unwrap(), Bytes::from_static(b"alive"));

    server.child.kill().await.unwrap();

    for op in ["get", "exists", "put", "list"] {
        let started = Instant::now();
        let call = async {
            match op {
                "get" => store.get(&k).await.map(drop),
                "exists" => store.exists(&k).await.map(drop),
                "put" => store
                    .put(&k, Bytes::from_static(b"x"), MediaFormat::Png)
                    .await
                    .map(drop),
                _ => store.list("", None, 10).await.map(drop),
            }
        };
        let result = tokio::time::timeout(Duration::from_secs(30), call)
            .await
            .unwrap_or_else(|_| panic!("{op} against a stopped server hung for 30 s"));
        let elapsed = started.elapsed();
        let err = result.expect_err("the server is gone");
        eprintln!("{op} after the server stopped: {elapsed:?}: {err}");
        assert!(
            matches!(err.kind(), ErrorKind::Unavailable | ErrorKind::Timeout),
            "{op}: {err}"
        );
        // Temporary, and already retried by the SDK's 3 attempts: persistent, so a caller's
        // retry loop (the Ingestor's) does not multiply the attempts.
        assert!(err.is_persistent(), "{op}: {err}");
        assert!(!err.is_temporary(), "{op}: {err}");
        assert_eq!(err.context_value("attempts"), Some("3"), "{op}: {err}");
        assert!(elapsed < Duration::from_secs(10), "{op} took {elapsed:?}");
    }
}

/// Sends `signal` (`STOP`, `CONT`) to a process with the `kill` command.
fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid}");
}

#[tokio::test]
async fn frozen_server_times_out_instead_of_hanging() {
    let Some(bin) = common::required_env(
        common::MOTO_BIN_VAR,
        "frozen_server_times_out_instead_of_hanging",
    ) else {
        return;
    };
    let mut server = OwnServer::start(&bin).await;
    let pid = server.child.id().expect("server running");
    let client = common::test_client(&server.endpoint);
    let bucket = common::create_bucket(&client, "frozen").await;
    let config = common::test_config(&server.endpoint, &bucket)
        .with_attempt_timeout(Duration::from_secs(2))
        .with_max_attempts(2);
    let store = S3MediaStore::new(client, config).unwrap();
    let k = key("ab/frozen.png");
    store
        .put(&k, Bytes::from_static(b"before"), MediaFormat::Png)
        .await
        .unwrap();

    // A stopped (SIGSTOP) server still accepts connections in the kernel but never answers.
    signal(pid, "STOP");
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(30), store.get(&k)).await;
    let elapsed = started.elapsed();
    signal(pid, "CONT");
    let err = result
        .expect("get against a frozen server hung for 30 s")
        .expect_err("the server never answered");
    eprintln!("get against a frozen server: {elapsed:?}: {err}");
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    // Both attempts timed out: the SDK's retry is spent.
    assert!(err.is_persistent() && !err.is_temporary(), "{err}");
    assert!(elapsed < Duration::from_secs(12), "took {elapsed:?}");
    server.child.kill().await.unwrap();
}

#[tokio::test]
async fn store_settings_reach_the_client() {
    // No server needed: only the client configuration is inspected.
    let client = common::test_client("http://127.0.0.1:9");
    let config = S3StoreConfig::new("b")
        .with_endpoint("http://127.0.0.1:1")
        .with_connect_timeout(Duration::from_millis(1500))
        .with_attempt_timeout(Duration::from_secs(7))
        .with_max_attempts(5);
    let store = S3MediaStore::new(client, config).unwrap();
    let conf = store.client().config();
    let timeouts = conf.timeout_config().unwrap();
    assert_eq!(
        timeouts.connect_timeout(),
        Some(Duration::from_millis(1500))
    );
    assert_eq!(
        timeouts.operation_attempt_timeout(),
        Some(Duration::from_secs(7))
    );
    assert_eq!(
        timeouts.read_timeout(),
        Some(S3StoreConfig::DEFAULT_READ_TIMEOUT)
    );
    assert_eq!(conf.retry_config().unwrap().max_attempts(), 5);
    assert_eq!(
        store.media_ref(&key("ab/c.png")).uri.as_str(),
        "s3://b/ab/c.png"
    );
    assert!(
        S3MediaStore::new(
            common::test_client("http://127.0.0.1:9"),
            S3StoreConfig::new("a/b")
        )
        .is_err()
    );
}
