//! [`MarengoProvider`]: the [`EmbeddingProvider`] on Amazon Bedrock, and its builder.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_smithy_types::retry::RetryConfig;
use bytes::Bytes;
use crossmodal_core::{
    Embedding, EmbeddingProvider, EmbeddingSpace, Error, ErrorKind, JobLedger, MediaInput,
    MediaKind, MemoryJobLedger, ModelInfo, Result, check_text,
};
use serde_json::Value;
use tokio::sync::{OnceCell, Semaphore};
use tracing::{Instrument, field};

use crate::adapter::{MarengoAdapter, MediaRequest};
use crate::config::MarengoConfig;
use crate::error::map_sdk_error;
use crate::options::MediaEmbedOptions;
use crate::output::Expect;
use crate::tokens::estimate_tokens;

/// Room left in a request for everything but the base64 media (JSON keys, ids, output config).
pub(crate) const REQUEST_ENVELOPE_BYTES: usize = 16 * 1024;

/// TwelveLabs Marengo on Amazon Bedrock as an [`EmbeddingProvider`].
///
/// - Text, images and composed text+image queries go through the synchronous `InvokeModel`
///   (images can be sent as jobs instead, [`sync_images`](MarengoConfig::sync_images)).
/// - Video and audio go through `StartAsyncInvoke`; the provider records the job in its
///   [`JobLedger`] at once, polls `GetAsyncInvoke` with growing intervals until the job is
///   `Completed` or `Failed` (any other status counts as still running) or the
///   [poll time-out](crate::PollPolicy::timeout) passes, then reads `output.json` under the
///   job's output URI with S3. A job that outlives the time-out stays in the ledger: the next
///   call for the same content and options picks its output up instead of starting (and paying
///   for) another job. The default ledger is in memory; pass a
///   [`SqliteJobLedger`](crossmodal_core::SqliteJobLedger) (for example in the embedded
///   default's `catalog.db`) to [`MarengoProviderBuilder::job_ledger`] so a later run finds it.
/// - Limits are checked before any call: text tokens ([`estimate_tokens`](crate::estimate_tokens)),
///   image size (5 MB), media size and duration, the 25 MB request quota for inline media,
///   Marengo 3.0's `bucketOwner` for media in S3.
/// - Throttling, quota, 5xx, unavailable and `ModelErrorException` errors are retried with
///   jittered exponential backoff ([`MarengoConfig::retry`]); validation and access errors are
///   returned at once as [`ErrorKind::InvalidInput`] / [`ErrorKind::PermissionDenied`] with the
///   service's message.
/// - At most [`max_concurrent_jobs`](MarengoConfig::max_concurrent_jobs) asynchronous jobs run
///   at once per provider.
/// - No task is spawned: dropping a call's future stops the polling and frees its job slot (the
///   Bedrock job itself cannot be cancelled; it stays in the ledger).
/// - Each call runs in a `tracing` span (`marengo.embed_text`, `marengo.embed_media`,
///   `marengo.embed_text_image`) with the model, media kind, route, invocation ARN and latency.
pub struct MarengoProvider {
    pub(crate) bedrock: aws_sdk_bedrockruntime::Client,
    pub(crate) s3: aws_sdk_s3::Client,
    pub(crate) sts: Option<aws_sdk_sts::Client>,
    pub(crate) config: MarengoConfig,
    pub(crate) adapter: &'static dyn MarengoAdapter,
    pub(crate) info: ModelInfo,
    pub(crate) invoke_id: String,
    pub(crate) async_id: String,
    pub(crate) fingerprint: String,
    pub(crate) jobs: Semaphore,
    pub(crate) ledger: Arc<dyn JobLedger>,
    pub(crate) resolved_owner: OnceCell<String>,
    pub(crate) counters: Counters,
}

/// What a provider has done since it was built (see [`MarengoProvider::stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ProviderStats {
    /// `StartAsyncInvoke` calls that started a job.
    pub jobs_started: u64,
    /// Jobs found in the ledger and picked up (no new job started).
    pub jobs_resumed: u64,
    /// Output items skipped because they were not understood (a `fused` option, a space not
    /// asked for, an unknown scope).
    pub output_items_skipped: u64,
    /// `output.json`/`manifest.json` objects deleted after a successful read.
    pub output_objects_deleted: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub jobs_started: AtomicU64,
    pub jobs_resumed: AtomicU64,
    pub output_items_skipped: AtomicU64,
    pub output_objects_deleted: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for MarengoProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only settings: never the SDK clients (their credentials providers).
        f.debug_struct("MarengoProvider")
            .field("model", &self.config.model)
            .field("invoke_model_id", &self.invoke_id)
            .field("async_model_id", &self.async_id)
            .field("region", &self.config.region)
            .field("output", &self.config.output)
            .field("max_concurrent_jobs", &self.config.max_concurrent_jobs)
            .field("ledger", &self.ledger)
            .field("sts", &self.sts.is_some())
            .finish_non_exhaustive()
    }
}

/// Builds a [`MarengoProvider`]: the configuration, then the clients (or the standard AWS
/// configuration chain), an STS client to resolve `bucketOwner`, and the job ledger.
///
/// ```no_run
/// # async fn demo() -> crossmodal_core::Result<()> {
/// use std::sync::Arc;
/// use crossmodal_bedrock::{MarengoConfig, MarengoProvider};
/// use crossmodal_core::SqliteJobLedger;
///
/// let config = MarengoConfig::builder().output_s3_uri("s3://my-bucket/marengo-output/").build()?;
/// let ledger = Arc::new(SqliteJobLedger::open("./media-index/catalog.db")?);
/// let provider = MarengoProvider::builder(config).job_ledger(ledger).build_from_env().await?;
/// # Ok(()) }
/// ```
pub struct MarengoProviderBuilder {
    config: MarengoConfig,
    bedrock: Option<aws_sdk_bedrockruntime::Client>,
    s3: Option<aws_sdk_s3::Client>,
    sts: Option<aws_sdk_sts::Client>,
    ledger: Option<Arc<dyn JobLedger>>,
}

impl std::fmt::Debug for MarengoProviderBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MarengoProviderBuilder")
            .field("config", &self.config)
            .field("bedrock", &self.bedrock.is_some())
            .field("s3", &self.s3.is_some())
            .field("sts", &self.sts.is_some())
            .field("ledger", &self.ledger)
            .finish()
    }
}

impl MarengoProviderBuilder {
    /// Uses these clients (a test endpoint, custom credentials or HTTP settings).
    pub fn clients(
        mut self,
        bedrock: aws_sdk_bedrockruntime::Client,
        s3: aws_sdk_s3::Client,
    ) -> Self {
        self.bedrock = Some(bedrock);
        self.s3 = Some(s3);
        self
    }

    /// An STS client to resolve the bucket owner (`GetCallerIdentity`, once, on the first
    /// media in S3) when [`bucket_owner`](MarengoConfig::bucket_owner) is not configured.
    pub fn sts_client(mut self, sts: aws_sdk_sts::Client) -> Self {
        self.sts = Some(sts);
        self
    }

    /// Where jobs are recorded (default: a [`MemoryJobLedger`] of this provider).
    pub fn job_ledger(mut self, ledger: Arc<dyn JobLedger>) -> Self {
        self.ledger = Some(ledger);
        self
    }

    /// The provider on the given clients ([`clients`](Self::clients) is required).
    ///
    /// The Bedrock client's own retries are turned off ([`MarengoConfig::retry`] is the one
    /// retry policy, so attempts do not multiply); the S3 and STS clients are used as given.
    pub fn build(self) -> Result<MarengoProvider> {
        let (Some(bedrock), Some(s3)) = (self.bedrock, self.s3) else {
            return Err(Error::invalid_input(
                "MarengoProviderBuilder::build needs clients(bedrock, s3); use build_from_env \
                 for the standard AWS configuration chain",
            ));
        };
        let config = self.config;
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
            ledger: self
                .ledger
                .unwrap_or_else(|| Arc::new(MemoryJobLedger::new())),
            resolved_owner: OnceCell::new(),
            counters: Counters::default(),
            sts: self.sts,
            bedrock,
            s3,
            adapter,
            info,
            config,
        })
    }

    /// The provider on AWS's standard configuration chain (environment, shared config and
    /// credentials files, SSO, container and instance roles) in the configured region, for the
    /// clients not given. An STS client is added when none is given and no bucket owner is
    /// configured. `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`, `AWS_ENDPOINT_URL_S3` and
    /// `AWS_ENDPOINT_URL_STS` are honoured.
    pub async fn build_from_env(mut self) -> Result<MarengoProvider> {
        self.config.validate()?;
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(self.config.region.clone()))
            .load()
            .await;
        if self.bedrock.is_none() {
            self.bedrock = Some(aws_sdk_bedrockruntime::Client::new(&sdk));
        }
        if self.s3.is_none() {
            self.s3 = Some(aws_sdk_s3::Client::new(&sdk));
        }
        if self.sts.is_none() && self.config.bucket_owner.is_none() {
            self.sts = Some(aws_sdk_sts::Client::new(&sdk));
        }
        self.build()
    }
}

impl MarengoProvider {
    /// A builder for `config` (clients, STS client, job ledger).
    pub fn builder(config: MarengoConfig) -> MarengoProviderBuilder {
        MarengoProviderBuilder {
            config,
            bedrock: None,
            s3: None,
            sts: None,
            ledger: None,
        }
    }

    /// A provider on AWS's standard configuration chain in the configured region, resolving
    /// the bucket owner with STS when none is configured
    /// ([`MarengoProviderBuilder::build_from_env`]).
    pub async fn from_env(config: MarengoConfig) -> Result<Self> {
        Self::builder(config).build_from_env().await
    }

    /// A provider on the given clients, with an in-memory job ledger and no STS client
    /// ([`MarengoProviderBuilder::build`]).
    pub fn new(
        bedrock: aws_sdk_bedrockruntime::Client,
        s3: aws_sdk_s3::Client,
        config: MarengoConfig,
    ) -> Result<Self> {
        Self::builder(config).clients(bedrock, s3).build()
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

    /// The job ledger.
    pub fn job_ledger(&self) -> &Arc<dyn JobLedger> {
        &self.ledger
    }

    /// Counts of what the provider did since it was built.
    pub fn stats(&self) -> ProviderStats {
        let c = &self.counters;
        ProviderStats {
            jobs_started: c.jobs_started.load(Ordering::Relaxed),
            jobs_resumed: c.jobs_resumed.load(Ordering::Relaxed),
            output_items_skipped: c.output_items_skipped.load(Ordering::Relaxed),
            output_objects_deleted: c.output_objects_deleted.load(Ordering::Relaxed),
        }
    }

    /// The Bedrock Runtime client (with its retries turned off).
    pub fn bedrock_client(&self) -> &aws_sdk_bedrockruntime::Client {
        &self.bedrock
    }

    /// The S3 client.
    pub fn s3_client(&self) -> &aws_sdk_s3::Client {
        &self.s3
    }

    /// Embeds media with per-call options (a [`ProcessingWindow`](crate::ProcessingWindow)
    /// to embed part of a long file); [`EmbeddingProvider::embed_media`] is this with the
    /// defaults. A window applies to video and audio and is refused for images.
    pub async fn embed_media_with(
        &self,
        media: &MediaInput,
        options: &MediaEmbedOptions,
    ) -> Result<Vec<Embedding>> {
        let kind = media.kind();
        let spaces = self.check_media(media, options)?;
        let sync = kind == MediaKind::Image && self.config.sync_images;
        let span = tracing::info_span!(
            "marengo.embed_media",
            model = %if sync { &self.invoke_id } else { &self.async_id },
            kind = %kind,
            asset = %media.asset_id.short(),
            route = if sync { "invoke_model" } else { "async_invoke" },
            window = field::Empty,
            source = field::Empty,
            invocation_arn = field::Empty,
            resumed = field::Empty,
            latency_ms = field::Empty,
            embeddings = field::Empty,
            skipped = field::Empty,
        );
        if let Some(w) = options.window {
            span.record("window", field::display(w));
        }
        let started = Instant::now();
        async {
            let result = if sync {
                self.embed_image_sync(media, &spaces).await
            } else {
                self.embed_async(media, &spaces, options).await
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

    fn check_text_tokens<'t>(&self, text: &'t str) -> Result<&'t str> {
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
        Ok(text)
    }

    fn check_image_size(&self, size: u64) -> Result<()> {
        if size > MarengoConfig::MAX_IMAGE_BYTES {
            return Err(Error::invalid_input(format!(
                "the image is {size} bytes; {} takes images of at most {} bytes (5 MB)",
                self.config.model,
                MarengoConfig::MAX_IMAGE_BYTES
            )));
        }
        Ok(())
    }

    fn check_media(
        &self,
        media: &MediaInput,
        options: &MediaEmbedOptions,
    ) -> Result<Vec<EmbeddingSpace>> {
        let kind = media.kind();
        let size = media.size_bytes;
        if size == 0 {
            return Err(Error::invalid_input(format!("the {kind} is empty")));
        }
        match kind {
            MediaKind::Image => {
                self.check_image_size(size)?;
                if let Some(w) = options.window {
                    return Err(Error::invalid_input(format!(
                        "a processing window ({w}) applies to video and audio, not to an image"
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
                if let Some(w) = options.window {
                    w.check_within(media.duration_sec)?;
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

    /// `InvokeModel` with retries; returns the response body.
    pub(crate) async fn invoke_model(&self, body: &Value) -> Result<Bytes> {
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

    pub(crate) fn expect_for<'a>(
        &self,
        invocation: &'a str,
        output: Option<&'a str>,
    ) -> Expect<'a> {
        Expect {
            adapter: self.adapter,
            dimension: self.info.dimension,
            invocation,
            output,
        }
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
            video_segmentation: self.config.video_segmentation,
            audio_segmentation: self.config.audio_segmentation,
            asset_embeddings: false,
            window: None,
        });
        let result = self.invoke_model(&body).await;
        self.unstage(prepared.staged.as_deref()).await;
        let invocation = format!("InvokeModel {}", self.invoke_id);
        let parsed =
            self.expect_for(&invocation, None)
                .media(&result?, MediaKind::Image, spaces)?;
        self.count_skipped(&parsed.skipped, &invocation, None);
        let embeddings = parsed.embeddings;
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

    /// Counts and logs output items that were skipped.
    pub(crate) fn count_skipped(&self, skipped: &[String], invocation: &str, output: Option<&str>) {
        if skipped.is_empty() {
            return;
        }
        Counters::add(&self.counters.output_items_skipped, skipped.len() as u64);
        tracing::Span::current().record("skipped", skipped.len());
        tracing::warn!(
            invocation = %invocation,
            output = output.unwrap_or("-"),
            skipped = skipped.len(),
            reasons = %skipped.join("; "),
            "skipped Marengo output items this crate does not understand"
        );
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

    /// Throttling, 5xx and `ModelErrorException` are retried inside with the configured
    /// `RetryPolicy`.
    fn retries_internally(&self) -> bool {
        true
    }

    async fn embed_text(&self, text: &str) -> Result<Vec<f32>> {
        let text = self.check_text_tokens(text)?;
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
                    self.expect_for(&invocation, None).single_vector(&bytes)
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
        self.embed_media_with(media, &MediaEmbedOptions::default())
            .await
    }

    /// Marengo 3.0's `text_image` through `InvokeModel`: one vector in the visual space.
    /// Marengo 2.7 has no composed input (`Unsupported`, before any call).
    async fn embed_text_image(&self, text: &str, image: &MediaInput) -> Result<Vec<f32>> {
        let text = self.check_text_tokens(text)?;
        if image.kind() != MediaKind::Image {
            return Err(Error::invalid_input(format!(
                "a text+image query takes an image, not {}",
                image.kind()
            )));
        }
        if image.size_bytes == 0 {
            return Err(Error::invalid_input("the image is empty"));
        }
        self.check_image_size(image.size_bytes)?;
        // Refuses a version without composed input before anything is uploaded.
        self.adapter
            .text_image_body(text, &crate::adapter::MediaSource::Base64(String::new()))?;
        let span = tracing::info_span!(
            "marengo.embed_text_image",
            model = %self.invoke_id,
            kind = "text_image",
            route = "invoke_model",
            source = field::Empty,
            latency_ms = field::Empty,
        );
        let started = Instant::now();
        async {
            let prepared = self.prepare_source(image).await?;
            tracing::Span::current().record("source", prepared.source.describe());
            let body = self.adapter.text_image_body(text, &prepared.source)?;
            let result = self.invoke_model(&body).await;
            self.unstage(prepared.staged.as_deref()).await;
            let invocation = format!("InvokeModel {}", self.invoke_id);
            let result =
                result.and_then(|bytes| self.expect_for(&invocation, None).single_vector(&bytes));
            tracing::Span::current().record("latency_ms", millis(started.elapsed()));
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
pub(crate) fn base64_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

/// A random idempotency token (32 hex characters).
pub(crate) fn random_token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

#[cfg(test)]
mod tests {
    use super::*;

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
