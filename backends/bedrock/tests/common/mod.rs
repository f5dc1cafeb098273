//! Helpers of the integration tests: the S3-compatible server's endpoint (skip or fail when it is
//! absent), clients, buckets, media and a provider wired to the Bedrock-protocol test server.
#![allow(dead_code, unused_imports)]

pub use crossmodal_testkit::bedrock_schema as schema;
pub use crossmodal_testkit::bedrock_server as server;

use std::time::Duration;

use bytes::Bytes;
use crossmodal_bedrock::{
    MarengoConfigBuilder, MarengoModel, MarengoProvider, PollPolicy, aws_sdk_s3,
};
use crossmodal_core::{AssetId, MediaFormat, MediaInput, MediaKey, MediaRef, RetryPolicy};

pub use server::{ACCOUNT, JobBehaviour, Malformed, Op, TestServer};

/// Environment variable naming the S3-compatible server (`scripts/s3-server.sh start`).
pub const ENDPOINT_VAR: &str = "CROSSMODAL_S3_ENDPOINT";

/// The S3 endpoint; `None` (after printing why the test is skipped) when it is unset outside
/// CI; a panic when it is unset under `CI=true`.
pub fn s3_endpoint(test: &str) -> Option<String> {
    match std::env::var(ENDPOINT_VAR) {
        Ok(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
        _ => {
            crossmodal_testkit::skip::skip(
                test,
                &format!(
                    "{ENDPOINT_VAR} is not set. Run `scripts/s3-server.sh install && \
                 eval \"$(scripts/s3-server.sh start)\"` to run the asynchronous Bedrock tests \
                 against a local S3-compatible server."
                ),
            );
            None
        }
    }
}

/// The endpoint, or return from the test (skip) when it is absent outside CI.
#[macro_export]
macro_rules! s3_or_skip {
    ($test:expr) => {
        match common::s3_endpoint($test) {
            Some(endpoint) => endpoint,
            None => return,
        }
    };
}

pub use crossmodal_testkit::aws::{
    bedrock_client, create_bucket, list_keys, object_exists, s3_client, unique_bucket,
};
pub use crossmodal_testkit::skip::under_ci;

/// Polling and retries in milliseconds, so the suite is fast.
pub fn fast_poll() -> PollPolicy {
    PollPolicy {
        initial_interval: Duration::from_millis(5),
        max_interval: Duration::from_millis(20),
        multiplier: 1.5,
        timeout: Duration::from_secs(20),
    }
}

/// Quick retries.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy::default()
        .max_attempts(5)
        .initial_backoff(Duration::from_millis(2))
        .max_backoff(Duration::from_millis(10))
        .deadline(Some(Duration::from_secs(10)))
}

/// A configuration builder with test timings.
pub fn fast_config(model: MarengoModel) -> MarengoConfigBuilder {
    crossmodal_bedrock::MarengoConfig::builder()
        .model(model)
        .region("us-east-1")
        .bucket_owner(ACCOUNT)
        .poll(fast_poll())
        .retry(fast_retry())
}

/// Deterministic pseudo-random bytes (xorshift), `len` of them, starting with a magic number of
/// `format` so they look like the format to a sniffer. Seeds `2n` and `2n + 1` give the same
/// bytes.
pub fn fake_media(format: MediaFormat, len: usize, seed: u64) -> Bytes {
    let magic: &[u8] = match format {
        MediaFormat::Png => b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR",
        MediaFormat::Jpeg => b"\xff\xd8\xff\xe0",
        MediaFormat::Mp4 => b"\0\0\0\x18ftypmp42",
        MediaFormat::Wav => b"RIFF\0\0\0\0WAVEfmt ",
        MediaFormat::Mp3 => b"ID3\x03\0",
        _ => b"",
    };
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&magic[..magic.len().min(len)]);
    let mut x = seed | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes()[..(len - out.len()).min(8)]);
    }
    Bytes::from(out)
}

/// A media input of `format` with `bytes`, stored at `stored` (an `s3://` or `file://` URI).
pub fn media(format: MediaFormat, bytes: Bytes, stored: Option<&str>) -> MediaInput {
    let asset_id = AssetId::from_content(&bytes);
    let stored = stored.map(|uri| MediaRef {
        key: MediaKey::for_asset(&asset_id, format),
        uri: url::Url::parse(uri).expect("a valid URI"),
    });
    MediaInput {
        asset_id,
        format,
        duration_sec: Some((bytes.len() as f64 / 1000.0).clamp(1.0, 600.0)),
        bytes,
        stored,
    }
}

/// Puts `bytes` at `s3://bucket/key` and returns the URI.
pub async fn put_s3(client: &aws_sdk_s3::Client, bucket: &str, key: &str, bytes: Bytes) -> String {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(bytes.into())
        .send()
        .await
        .expect("put object");
    format!("s3://{bucket}/{key}")
}

/// A test environment: the S3-compatible server (optional), a bucket, the protocol server.
pub struct Env {
    pub server: TestServer,
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
}

impl Env {
    /// With the S3-compatible server at `endpoint`: a fresh bucket, a protocol server that
    /// writes job output there.
    pub async fn with_s3(endpoint: &str, hint: &str) -> Env {
        let s3 = s3_client(endpoint);
        let bucket = create_bucket(&s3, hint).await;
        let server = TestServer::start(Some(s3.clone())).await;
        Env { server, s3, bucket }
    }

    /// Without S3 (synchronous calls only).
    pub async fn sync_only() -> Env {
        let s3 = s3_client("http://127.0.0.1:9");
        let server = TestServer::start(None).await;
        Env {
            server,
            s3,
            bucket: "no-bucket".into(),
        }
    }

    /// `s3://bucket/<name>`.
    pub fn uri(&self, name: &str) -> String {
        format!("s3://{}/{name}", self.bucket)
    }

    /// A provider for the configuration in `builder` (output under `out/` of the bucket).
    pub fn provider(&self, builder: MarengoConfigBuilder) -> MarengoProvider {
        let config = builder
            .output_s3_uri(self.uri("out/"))
            .build()
            .expect("valid test configuration");
        MarengoProvider::new(bedrock_client(&self.server.url), self.s3.clone(), config)
            .expect("provider")
    }
}
