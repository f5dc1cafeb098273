//! [`MarengoProvider`]: the [`EmbeddingProvider`] on Amazon Bedrock.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_bedrockruntime::operation::get_async_invoke::GetAsyncInvokeOutput;
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::{
    AsyncInvokeOutputDataConfig, AsyncInvokeS3OutputDataConfig, AsyncInvokeStatus,
};
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_types::retry::RetryConfig;
use bytes::Bytes;
use crossmodal_core::{
    Embedding, EmbeddingProvider, EmbeddingSpace, Error, ErrorKind, MediaInput, MediaKind,
    ModelInfo, Result, check_text,
};
use serde_json::Value;
use tokio::sync::Semaphore;
use tracing::{Instrument, field};

use crate::adapter::{MarengoAdapter, MediaRequest, MediaSource};
use crate::config::{MarengoConfig, MediaSourcePolicy, S3Prefix};
use crate::document::to_document;
use crate::error::map_sdk_error;
use crate::output::Expect;
use crate::tokens::estimate_tokens;

/// Room left in a request for everything but the base64 media (JSON keys, ids, output config).
const REQUEST_ENVELOPE_BYTES: usize = 16 * 1024;

/// TwelveLabs Marengo on Amazon Bedrock as an [`EmbeddingProvider`].
///
/// - Text (and, by default, images) go through the synchronous `InvokeModel`.
/// - Video and audio (and images when [`sync_images`](MarengoConfig::sync_images) is off) go
///   through `StartAsyncInvoke`; the provider polls `GetAsyncInvoke` with growing intervals
///   until the job is `Completed` or `Failed` (any other status counts as still running) or the
///   [poll time-out](crate::PollPolicy::timeout) passes, then reads `output.json` under the
///   job's resolved output URI with S3.
/// - Limits are checked before any call: text tokens ([`estimate_tokens`](crate::estimate_tokens)),
///   image size (5 MB), media size and duration, the 25 MB request quota for inline media.
/// - Throttling, quota, 5xx and unavailable errors are retried with jittered exponential backoff
///   ([`MarengoConfig::retry`]); validation and access errors are returned at once as
///   [`ErrorKind::InvalidInput`] / [`ErrorKind::PermissionDenied`] with the service's message.
/// - At most [`max_concurrent_jobs`](MarengoConfig::max_concurrent_jobs) asynchronous jobs run
///   at once per provider.
/// - No task is spawned: dropping a call's future stops the polling and frees its job slot (the
///   Bedrock job itself cannot be cancelled and finishes on its own).
/// - Each call runs in a `tracing` span (`marengo.embed_text`, `marengo.embed_media`) with the
///   model, media kind, route, invocation ARN and latency.
pub struct MarengoProvider {
    bedrock: aws_sdk_bedrockruntime::Client,
    s3: aws_sdk_s3::Client,
    config: MarengoConfig,
    adapter: &'static dyn MarengoAdapter,
    info: ModelInfo,
    invoke_id: String,
    async_id: String,
    fingerprint: String,
    jobs: Semaphore,
}

impl std::fmt::Debug for MarengoProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MarengoProvider")
            .field("model", &self.config.model)
            .field("invoke_model_id", &self.invoke_id)
            .field("async_model_id", &self.async_id)
            .field("region", &self.config.region)
            .field("output", &self.config.output)
            .field("max_concurrent_jobs", &self.config.max_concurrent_jobs)
            .finish_non_exhaustive()
    }
}

/// A media source ready to send, and the staged object to delete afterwards.
struct Prepared {
    source: MediaSource,
    staged: Option<(String, String)>,
}

impl MarengoProvider {
    /// A provider on AWS's standard configuration chain (environment, shared config and
    /// credentials files, SSO, container and instance roles), in the configured region.
    ///
    /// `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` and `AWS_ENDPOINT_URL_S3` are honoured. For a custom
    /// client (endpoint, credentials, HTTP settings) use [`new`](Self::new).
    pub async fn from_env(config: MarengoConfig) -> Result<Self> {
        config.validate()?;
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(config.region.clone()))
            .load()
            .await;
        let bedrock = aws_sdk_bedrockruntime::Client::new(&sdk);
        let s3 = aws_sdk_s3::Client::new(&sdk);
        Self::new(bedrock, s3, config)
    }

    /// A provider on the given clients (a test endpoint, custom credentials).
    ///
    /// The Bedrock client's own retries are turned off ([`MarengoConfig::retry`] is the one
    /// retry policy, so attempts do not multiply); the S3 client is used as given.
    pub fn new(
        bedrock: aws_sdk_bedrockruntime::Client,
        s3: aws_sdk_s3::Client,
        config: MarengoConfig,
    ) -> Result<Self> {
        config.validate()?;
        let bedrock = aws_sdk_bedrockruntime::Client::from_conf(
            bedrock
                .config()
                .to_builder()
                .retry_config(RetryConfig::disabled())
                .build(),
        );
        let adapter = config.model.adapter();
        let mut info = adapter.model_info();
        info.video_spaces = config.spaces_for(MediaKind::Video);
        info.audio_spaces = config.spaces_for(MediaKind::Audio);
        Ok(MarengoProvider {
            invoke_id: config.invoke_model_id(),
            async_id: config.async_model_id(),
            fingerprint: config.fingerprint(),
            jobs: Semaphore::new(config.max_concurrent_jobs),
            bedrock,
            s3,
            adapter,
            info,
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &MarengoConfig {
        &self.config
    }

    /// The id `InvokeModel` is called with.
    pub fn invoke_model_id(&self) -> &str {
        &self.invoke_id
    }

    /// The id `StartAsyncInvoke` is called with.
    pub fn async_model_id(&self) -> &str {
        &self.async_id
    }

    /// Asynchronous job slots free right now (out of
    /// [`max_concurrent_jobs`](MarengoConfig::max_concurrent_jobs)).
    pub fn available_job_slots(&self) -> usize {
        self.jobs.available_permits()
    }

    /// The Bedrock Runtime client (with its retries turned off).
    pub fn bedrock_client(&self) -> &aws_sdk_bedrockruntime::Client {
        &self.bedrock
    }

    /// The S3 client.
    pub fn s3_client(&self) -> &aws_sdk_s3::Client {
        &self.s3
    }

    fn check_media(&self, media: &MediaInput) -> Result<Vec<EmbeddingSpace>> {
        let kind = media.kind();
        let size = media.bytes.len() as u64;
        if size == 0 {
            return Err(Error::invalid_input(format!("the {kind} is empty")));
        }
        match kind {
            MediaKind::Image => {
                if size > MarengoConfig::MAX_IMAGE_BYTES {
                    return Err(Error::invalid_input(format!(
                        "the image is {size} bytes; {} takes images of at most {} bytes (5 MB)",
                        self.config.model,
                        MarengoConfig::MAX_IMAGE_BYTES
                    )));
                }
            }
            MediaKind::Video | MediaKind::Audio => {
                let max = self.adapter.max_media_bytes();
                if size > max {
                    return Err(Error::invalid_input(format!(
                        "the {kind} is {size} bytes; {} takes at most {max} bytes",
                        self.config.model
                    )));
                }
                if let Some(d) = media.duration_sec {
                    let max = self.adapter.max_media_duration_sec();
                    if d > max {
                        return Err(Error::invalid_input(format!(
                            "the {kind} lasts {d:.0} s; {} takes at most {max:.0} s",
                            self.config.model
                        )));
                    }
                }
            }
        }
        let spaces = self.info.spaces_for(kind).to_vec();
        if spaces.is_empty() {
            return Err(Error::unsupported(format!(
                "the configured spaces leave nothing to ask {} for from {kind}",
                self.config.model
            )));
        }
        Ok(spaces)
    }

    fn fits_inline(&self, bytes: usize) -> bool {
        base64_len(bytes) + REQUEST_ENVELOPE_BYTES <= self.config.max_inline_request_bytes
    }

    /// Chooses where the model reads the media from, uploading it to the staging prefix when
    /// needed.
    async fn prepare_source(&self, media: &MediaInput) -> Result<Prepared> {
        let stored_s3 = media
            .stored
            .as_ref()
            .filter(|r| r.uri.scheme() == "s3")
            .map(|r| r.uri.to_string());
        let s3 = |uri: String| MediaSource::S3 {
            uri,
            bucket_owner: self.config.bucket_owner.clone(),
        };
        let inline = || MediaSource::Base64(aws_smithy_types::base64::encode(&media.bytes));
        let fits = self.fits_inline(media.bytes.len());
        let source = match (self.config.media_source, stored_s3) {
            (MediaSourcePolicy::Auto | MediaSourcePolicy::S3Only, Some(uri)) => s3(uri),
            (MediaSourcePolicy::Auto | MediaSourcePolicy::InlineOnly, None) if fits => inline(),
            (MediaSourcePolicy::InlineOnly, Some(_)) if fits => inline(),
            (MediaSourcePolicy::InlineOnly, _) => {
                return Err(self.too_large_inline(media, "media_source is InlineOnly"));
            }
            (MediaSourcePolicy::Auto | MediaSourcePolicy::S3Only, None) => {
                return self.stage(media).await;
            }
        };
        Ok(Prepared {
            source,
            staged: None,
        })
    }

    fn too_large_inline(&self, media: &MediaInput, why: &str) -> Error {
        Error::invalid_input(format!(
            "the {} of {} bytes cannot be sent inline: the request would be about {} bytes, over \
             the {} byte limit ({why}); store originals in S3 or configure a staging prefix \
             (staging_s3_uri)",
            media.kind(),
            media.bytes.len(),
            base64_len(media.bytes.len()) + REQUEST_ENVELOPE_BYTES,
            self.config.max_inline_request_bytes,
        ))
    }

    async fn stage(&self, media: &MediaInput) -> Result<Prepared> {
        let Some(staging) = &self.config.staging else {
            let why = if self.config.media_source == MediaSourcePolicy::S3Only {
                "media_source is S3Only and the media is not stored in S3"
            } else {
                "the media is not stored in S3 and no staging prefix is configured"
            };
            return Err(self.too_large_inline(media, why));
        };
        let key = staging.key(&format!(
            "{}-{}.{}",
            media.asset_id.as_str(),
            random_token(),
            media.format.extension()
        ));
        let bucket = staging.bucket().to_string();
        self.config
            .retry
            .run("PutObject", || async {
                self.s3
                    .put_object()
                    .bucket(&bucket)
                    .key(&key)
                    .content_type(media.format.mime_type())
                    .body(ByteStream::from(media.bytes.clone()))
                    .send()
                    .await
                    .map_err(|e| {
                        map_sdk_error("PutObject", e)
                            .with_context("staging", format!("s3://{bucket}/{key}"))
                    })
            })
            .await?;
        tracing::debug!(bucket = %bucket, key = %key, "staged media in S3");
        Ok(Prepared {
            source: MediaSource::S3 {
                uri: format!("s3://{bucket}/{key}"),
                bucket_owner: self.config.bucket_owner.clone(),
            },
            staged: Some((bucket, key)),
        })
    }

    async fn unstage(&self, staged: Option<(String, String)>) {
        let Some((bucket, key)) = staged else {
            return;
        };
        if !self.config.delete_staged {
            return;
        }
        if let Err(e) = self
            .s3
            .delete_object()
            .bucket(&bucket)
            .key(&key)
            .send()
            .await
        {
            tracing::warn!(
                bucket = %bucket, key = %key,
                error = %map_sdk_error("DeleteObject", e),
                "could not delete staged media"
            );
        }
    }

    /// `InvokeModel` with retries; returns the response body.
    async fn invoke_model(&self, body: &Value) -> Result<Bytes> {
        let payload = serde_json::to_vec(body).map_err(crate::error::json_error)?;
        if payload.len() > MarengoConfig::MAX_REQUEST_BYTES {
            return Err(Error::invalid_input(format!(
                "the request is {} bytes, over Bedrock's {} byte quota",
                payload.len(),
                MarengoConfig::MAX_REQUEST_BYTES
            )));
        }
        let payload = Blob::new(payload);
        let out = self
            .config
            .retry
            .run("InvokeModel", || async {
                self.bedrock
                    .invoke_model()
                    .model_id(&self.invoke_id)
                    .content_type("application/json")
                    .accept("application/json")
                    .body(payload.clone())
                    .send()
                    .await
                    .map_err(|e| {
                        map_sdk_error("InvokeModel", e).with_context("model", &self.invoke_id)
                    })
            })
            .await?;
        Ok(Bytes::from(out.body.into_inner()))
    }

    async fn embed_image_sync(
        &self,
        media: &MediaInput,
        spaces: &[EmbeddingSpace],
    ) -> Result<Vec<Embedding>> {
        let prepared = self.prepare_source(media).await?;
        tracing::Span::current().record("source", prepared.source.describe());
        let body = self.adapter.media_body(&MediaRequest {
            kind: MediaKind::Image,
            source: &prepared.source,
            spaces,
            segmentation: self.config.segmentation,
            asset_embeddings: false,
        });
        let result = self.invoke_model(&body).await;
        self.unstage(prepared.staged).await;
        let invocation = format!("InvokeModel {}", self.invoke_id);
        let embeddings = self
            .expect_for(&invocation)
            .media(&result?, MediaKind::Image, spaces)?;
        if embeddings.len() != 1 {
            return Err(Error::new(
                ErrorKind::ModelFailed,
                format!(
                    "unusable output from {invocation}: expected one image embedding, got {}",
                    embeddings.len()
                ),
            ));
        }
        Ok(embeddings)
    }

    async fn embed_async(
        &self,
        media: &MediaInput,
        spaces: &[EmbeddingSpace],
    ) -> Result<Vec<Embedding>> {
        let kind = media.kind();
        let output = self.config.output.as_ref().ok_or_else(|| {
            Error::invalid_input(format!(
                "{kind} is embedded by an asynchronous Bedrock job, which needs an output \
                 location: set output_s3_uri in the MarengoConfig"
            ))
        })?;
        // Inline media that cannot fit is rejected before waiting for a job slot.
        if self.config.media_source == MediaSourcePolicy::InlineOnly
            && !self.fits_inline(media.bytes.len())
        {
            return Err(self.too_large_inline(media, "media_source is InlineOnly"));
        }
        let _slot = self
            .jobs
            .acquire()
            .await
            .map_err(|_| Error::backend("the provider's job semaphore is closed"))?;
        let prepared = self.prepare_source(media).await?;
        tracing::Span::current().record("source", prepared.source.describe());
        let result = self.run_job(kind, &prepared.source, spaces, output).await;
        self.unstage(prepared.staged).await;
        result
    }

    async fn run_job(
        &self,
        kind: MediaKind,
        source: &MediaSource,
        spaces: &[EmbeddingSpace],
        output: &S3Prefix,
    ) -> Result<Vec<Embedding>> {
        let body = self.adapter.media_body(&MediaRequest {
            kind,
            source,
            spaces,
            segmentation: self.config.segmentation,
            asset_embeddings: self.config.asset_embeddings,
        });
        if matches!(source, MediaSource::Base64(_)) {
            let size = serde_json::to_vec(&body)
                .map_err(crate::error::json_error)?
                .len()
                + REQUEST_ENVELOPE_BYTES;
            if size > MarengoConfig::MAX_REQUEST_BYTES {
                return Err(Error::invalid_input(format!(
                    "the request would be about {size} bytes, over Bedrock's {} byte quota",
                    MarengoConfig::MAX_REQUEST_BYTES
                )));
            }
        }
        let model_input = to_document(&body);
        let mut s3_out = AsyncInvokeS3OutputDataConfig::builder().s3_uri(output.uri());
        if let Some(owner) = &self.config.bucket_owner {
            s3_out = s3_out.bucket_owner(owner);
        }
        if let Some(kms) = &self.config.output_kms_key_id {
            s3_out = s3_out.kms_key_id(kms);
        }
        let output_config = AsyncInvokeOutputDataConfig::S3OutputDataConfig(
            s3_out
                .build()
                .map_err(|e| Error::invalid_input(format!("output location: {e}")))?,
        );
        // One token for every attempt: a Start retried after a lost response does not start a
        // second job.
        let token = random_token();
        let started = self
            .config
            .retry
            .run("StartAsyncInvoke", || async {
                self.bedrock
                    .start_async_invoke()
                    .model_id(&self.async_id)
                    .model_input(model_input.clone())
                    .output_data_config(output_config.clone())
                    .client_request_token(&token)
                    .send()
                    .await
                    .map_err(|e| {
                        map_sdk_error("StartAsyncInvoke", e).with_context("model", &self.async_id)
                    })
            })
            .await?;
        let arn = started.invocation_arn().to_string();
        tracing::Span::current().record("invocation_arn", arn.as_str());
        tracing::debug!(invocation_arn = %arn, "started Marengo job");

        let timeout = self.config.poll.timeout;
        let resolved = match tokio::time::timeout(timeout, self.wait(&arn, output)).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "Marengo job {arn} did not finish within {timeout:?} (it may still be \
                         running on Bedrock)"
                    ),
                )
                .with_context("invocation", &arn)
                .set_temporary(false));
            }
        };
        let body = self.read_output(&resolved, &arn).await?;
        let expect = self.expect_for(&arn);
        let embeddings = expect.media(&body, kind, spaces)?;
        self.info.check_embeddings(kind, &embeddings).map_err(|e| {
            Error::new(
                ErrorKind::ModelFailed,
                format!("unusable output from {arn}: {}", e.message()),
            )
            .with_context("invocation", &arn)
        })?;
        Ok(embeddings)
    }

    fn expect_for<'a>(&self, invocation: &'a str) -> Expect<'a> {
        Expect {
            adapter: self.adapter,
            dimension: self.info.dimension,
            invocation,
        }
    }

    /// Polls until the job completes (its resolved output URI) or fails.
    async fn wait(&self, arn: &str, output: &S3Prefix) -> Result<String> {
        let mut n = 0u32;
        loop {
            tokio::time::sleep(self.config.poll.interval(n)).await;
            n += 1;
            let job = self.get_job(arn).await?;
            match job.status() {
                AsyncInvokeStatus::Completed => {
                    let uri = job
                        .output_data_config()
                        .and_then(|c| c.as_s3_output_data_config().ok())
                        .map(|c| c.s3_uri().to_string())
                        .unwrap_or_else(|| output.uri());
                    return Ok(resolve_output_uri(&uri, arn));
                }
                AsyncInvokeStatus::Failed => {
                    let why = job.failure_message().unwrap_or("no failure message");
                    return Err(Error::new(
                        ErrorKind::ModelFailed,
                        format!("Marengo job {arn} failed: {why}"),
                    )
                    .with_context("invocation", arn));
                }
                AsyncInvokeStatus::InProgress => {
                    tracing::trace!(invocation_arn = %arn, polls = n, "job in progress");
                }
                other => {
                    tracing::debug!(
                        invocation_arn = %arn, status = other.as_str(),
                        "unknown job status; waiting as if in progress"
                    );
                }
            }
        }
    }

    async fn get_job(&self, arn: &str) -> Result<GetAsyncInvokeOutput> {
        self.config
            .retry
            .run("GetAsyncInvoke", || async {
                self.bedrock
                    .get_async_invoke()
                    .invocation_arn(arn)
                    .send()
                    .await
                    .map_err(|e| map_sdk_error("GetAsyncInvoke", e).with_context("invocation", arn))
            })
            .await
    }

    async fn read_output(&self, resolved: &str, arn: &str) -> Result<Bytes> {
        let location = S3Prefix::parse(resolved).map_err(|e| {
            Error::new(
                ErrorKind::ModelFailed,
                format!(
                    "job {arn} reported an unusable output location: {}",
                    e.message()
                ),
            )
            .with_context("invocation", arn)
        })?;
        let key = location.key("output.json");
        let bucket = location.bucket();
        let read = self
            .config
            .retry
            .run("GetObject", || async {
                let out = self
                    .s3
                    .get_object()
                    .bucket(bucket)
                    .key(&key)
                    .send()
                    .await
                    .map_err(|e| map_sdk_error("GetObject", e))?;
                let data = out.body.collect().await.map_err(|e| {
                    Error::new(ErrorKind::Unavailable, format!("reading output.json: {e}"))
                        .with_source(e)
                })?;
                Ok(data.into_bytes())
            })
            .await;
        read.map_err(|e| {
            let uri = format!("s3://{bucket}/{key}");
            if e.kind() == ErrorKind::NotFound {
                Error::new(
                    ErrorKind::ModelFailed,
                    format!("job {arn} completed but wrote no {uri}"),
                )
                .with_context("invocation", arn)
                .with_source(e)
            } else {
                e.with_context("invocation", arn)
                    .with_context("output", uri)
            }
        })
    }
}

#[async_trait]
impl EmbeddingProvider for MarengoProvider {
    fn model(&self) -> &ModelInfo {
        &self.info
    }

    fn options_fingerprint(&self) -> String {
        self.fingerprint.clone()
    }

    /// Throttling and 5xx are retried inside with the configured `RetryPolicy`.
    fn retries_internally(&self) -> bool {
        true
    }

    async fn embed_text(&self, text: &str) -> Result<Vec<f32>> {
        let text = check_text(text, self.info.max_text_chars)?;
        let tokens = estimate_tokens(text);
        let max = self.adapter.max_text_tokens();
        if tokens > max {
            return Err(Error::invalid_input(format!(
                "the query text is about {tokens} tokens (a conservative estimate); {} takes at \
                 most {max}",
                self.config.model
            )));
        }
        let span = tracing::info_span!(
            "marengo.embed_text",
            model = %self.invoke_id,
            kind = "text",
            route = "invoke_model",
            latency_ms = field::Empty,
        );
        let started = Instant::now();
        async {
            let body = self.adapter.text_body(text, self.config.text_truncate);
            let result = match self.invoke_model(&body).await {
                Ok(bytes) => {
                    let invocation = format!("InvokeModel {}", self.invoke_id);
                    self.expect_for(&invocation).single_vector(&bytes)
                }
                Err(e) => Err(e),
            };
            tracing::Span::current().record("latency_ms", millis(started.elapsed()));
            if let Err(e) = &result {
                tracing::debug!(error = %e, "embedding text failed");
            }
            result
        }
        .instrument(span)
        .await
    }

    async fn embed_media(&self, media: &MediaInput) -> Result<Vec<Embedding>> {
        let kind = media.kind();
        let spaces = self.check_media(media)?;
        let sync = kind == MediaKind::Image && self.config.sync_images;
        let span = tracing::info_span!(
            "marengo.embed_media",
            model = %if sync { &self.invoke_id } else { &self.async_id },
            kind = %kind,
            asset = %media.asset_id.short(),
            route = if sync { "invoke_model" } else { "async_invoke" },
            source = field::Empty,
            invocation_arn = field::Empty,
            latency_ms = field::Empty,
            embeddings = field::Empty,
        );
        let started = Instant::now();
        async {
            let result = if sync {
                self.embed_image_sync(media, &spaces).await
            } else {
                self.embed_async(media, &spaces).await
            };
            let span = tracing::Span::current();
            span.record("latency_ms", millis(started.elapsed()));
            match &result {
                Ok(e) => {
                    span.record("embeddings", e.len());
                    tracing::debug!(embeddings = e.len(), "embedded {kind}");
                }
                Err(e) => tracing::debug!(error = %e, "embedding {kind} failed"),
            }
            result
        }
        .instrument(span)
        .await
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Length of the base64 encoding of `n` bytes.
fn base64_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

/// A random idempotency token (32 hex characters).
fn random_token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// `<s3Uri>/<invocation id>`: Bedrock writes a job's files under its output URI plus the id (the
/// ARN's last segment); `GetAsyncInvoke` normally reports the URI with the id already appended.
fn resolve_output_uri(uri: &str, arn: &str) -> String {
    let uri = uri.trim_end_matches('/');
    let id = arn.rsplit('/').next().unwrap_or_default();
    if id.is_empty() || uri.ends_with(&format!("/{id}")) {
        uri.to_string()
    } else {
        format!("{uri}/{id}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_uri_resolution() {
        let arn = "arn:aws:bedrock:us-east-1:123456789012:async-invoke/abcdefghijkl";
        assert_eq!(
            resolve_output_uri("s3://b/out/abcdefghijkl", arn),
            "s3://b/out/abcdefghijkl"
        );
        assert_eq!(
            resolve_output_uri("s3://b/out/", arn),
            "s3://b/out/abcdefghijkl"
        );
        assert_eq!(resolve_output_uri("s3://b", arn), "s3://b/abcdefghijkl");
    }

    #[test]
    fn base64_lengths() {
        assert_eq!(base64_len(0), 0);
        assert_eq!(base64_len(1), 4);
        assert_eq!(base64_len(3), 4);
        assert_eq!(base64_len(4), 8);
        assert_eq!(
            base64_len(1000),
            aws_smithy_types::base64::encode(vec![0u8; 1000]).len()
        );
    }

    #[test]
    fn tokens_are_unique_and_valid() {
        let a = random_token();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| (b'!'..=b'~').contains(&b)));
        assert_ne!(a, random_token());
    }
}
