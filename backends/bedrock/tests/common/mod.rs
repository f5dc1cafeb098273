//! Helpers of the integration tests: the S3-compatible server's endpoint (skip or fail when it is
//! absent), clients, buckets, media and a provider wired to the Bedrock-protocol test server.
#![allow(dead_code, unused_imports)]

pub use crossmodal_testkit::bedrock_schema as schema;
pub use crossmodal_testkit::bedrock_server as server;

use std::time::Duration;

use bytes::Bytes;
use crossmodal_bedrock::{
    MarengoConfigBuilder, MarengoModel, MarengoProvider, MarengoProviderBuilder, PollPolicy,
    aws_sdk_bedrockruntime, aws_sdk_s3,
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
    bedrock_client, bedrock_client_in, create_bucket, create_bucket_in, list_keys, object_exists,
    s3_client, sts_client, unique_bucket,
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
    let duration = Some((bytes.len() as f64 / 1000.0).clamp(1.0, 600.0));
    let input = MediaInput::from_bytes(format, bytes).with_duration(duration);
    match stored {
        Some(uri) => input.with_stored(
            MediaRef {
                key: MediaKey::for_asset(&asset_id, format),
                uri: url::Url::parse(uri).expect("a valid URI"),
            },
            None,
        ),
        None => input,
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
        self.provider_builder(builder).build().expect("provider")
    }

    /// A provider builder (clients of this environment, signing for the configuration's
    /// region) for the configuration in `builder` (output under `out/` of the bucket).
    pub fn provider_builder(&self, builder: MarengoConfigBuilder) -> MarengoProviderBuilder {
        let config = builder
            .output_s3_uri(self.uri("out/"))
            .build()
            .expect("valid test configuration");
        let bedrock = bedrock_client_in(&self.server.url, &config.region);
        MarengoProvider::builder(config).clients(bedrock, self.s3.clone())
    }

    /// A raw Bedrock client signing for `region`, to send requests by hand.
    pub fn raw(&self, region: &str) -> aws_sdk_bedrockruntime::Client {
        bedrock_client_in(&self.server.url, region)
    }
}

/// What the service answered a refused request: error type, HTTP status, message.
#[derive(Debug)]
pub struct Refusal {
    pub code: String,
    pub status: u16,
    pub message: String,
}

impl Refusal {
    /// Asserts a `ValidationException` (HTTP 400) whose message contains `needle`.
    pub fn assert_validation(&self, needle: &str) {
        assert_eq!(self.code, "ValidationException", "{self:?}");
        assert_eq!(self.status, 400, "{self:?}");
        assert!(self.message.contains(needle), "{self:?} lacks {needle:?}");
    }
}

fn refusal<E>(
    err: aws_sdk_bedrockruntime::error::SdkError<
        E,
        aws_sdk_bedrockruntime::config::http::HttpResponse,
    >,
) -> Refusal
where
    E: aws_sdk_bedrockruntime::error::ProvideErrorMetadata + std::fmt::Debug,
{
    use aws_sdk_bedrockruntime::error::ProvideErrorMetadata;
    let status = err
        .raw_response()
        .map(|r| r.status().as_u16())
        .unwrap_or_else(|| panic!("no response: {err:?}"));
    let (code, message) = match err.as_service_error() {
        Some(e) => (
            e.code().unwrap_or_default().to_string(),
            e.message().unwrap_or_default().to_string(),
        ),
        None => panic!("not a service error: {err:?}"),
    };
    Refusal {
        code,
        status,
        message,
    }
}

/// `InvokeModel` with `body` as `model_id`, by hand.
pub async fn invoke_raw(
    client: &aws_sdk_bedrockruntime::Client,
    model_id: &str,
    body: &serde_json::Value,
) -> Result<serde_json::Value, Refusal> {
    let out = client
        .invoke_model()
        .model_id(model_id)
        .content_type("application/json")
        .accept("application/json")
        .body(serde_json::to_vec(body).unwrap().into())
        .send()
        .await
        .map_err(refusal)?;
    Ok(serde_json::from_slice(out.body.as_ref()).unwrap())
}

/// `StartAsyncInvoke` with `model_input` as `model_id`, output to `output_uri`, by hand; the
/// invocation ARN.
pub async fn start_raw(
    client: &aws_sdk_bedrockruntime::Client,
    model_id: &str,
    model_input: &serde_json::Value,
    output_uri: &str,
    output_owner: Option<&str>,
) -> Result<String, Refusal> {
    use aws_sdk_bedrockruntime::types::{
        AsyncInvokeOutputDataConfig, AsyncInvokeS3OutputDataConfig,
    };
    let mut s3 = AsyncInvokeS3OutputDataConfig::builder().s3_uri(output_uri);
    if let Some(o) = output_owner {
        s3 = s3.bucket_owner(o);
    }
    let out = client
        .start_async_invoke()
        .model_id(model_id)
        .model_input(to_document(model_input))
        .output_data_config(AsyncInvokeOutputDataConfig::S3OutputDataConfig(
            s3.build().unwrap(),
        ))
        .send()
        .await
        .map_err(refusal)?;
    Ok(out.invocation_arn().to_string())
}

/// `serde_json::Value` to the SDK's document type.
pub fn to_document(v: &serde_json::Value) -> aws_smithy_types::Document {
    use aws_smithy_types::{Document, Number};
    use serde_json::Value;
    match v {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => Document::Number(if let Some(u) = n.as_u64() {
            Number::PosInt(u)
        } else if let Some(i) = n.as_i64() {
            Number::NegInt(i)
        } else {
            Number::Float(n.as_f64().unwrap())
        }),
        Value::String(s) => Document::String(s.clone()),
        Value::Array(items) => Document::Array(items.iter().map(to_document).collect()),
        Value::Object(m) => {
            Document::Object(m.iter().map(|(k, v)| (k.clone(), to_document(v))).collect())
        }
    }
}
