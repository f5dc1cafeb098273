//! [`MarengoConfig`]: which Marengo model to run, where, and how to wait for it.

use std::time::Duration;

use crossmodal_core::{EmbeddingSpace, Error, MediaKind, Result, RetryPolicy};

use crate::model::MarengoModel;
use crate::s3_prefix::S3Prefix;
use crate::segmentation::{self, AudioSegmentation, VideoSegmentation};

/// How to wait for an asynchronous job: exponential intervals between `GetAsyncInvoke` calls and
/// an overall time-out.
///
/// ```
/// use std::time::Duration;
/// use crossmodal_bedrock::PollPolicy;
/// let p = PollPolicy::default();
/// assert_eq!(p.initial_interval, Duration::from_secs(1));
/// assert_eq!(p.interval(0), Duration::from_secs(1));
/// assert_eq!(p.interval(10), Duration::from_secs(15));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PollPolicy {
    /// Wait before the first status check (1 s).
    pub initial_interval: Duration,
    /// Longest wait between two status checks (15 s).
    pub max_interval: Duration,
    /// Growth of the interval after each check (1.5).
    pub multiplier: f64,
    /// Give up on a job (with [`ErrorKind::Timeout`](crossmodal_core::ErrorKind::Timeout)) once this
    /// much time has passed since it was started (1 hour). The job itself keeps running on
    /// Bedrock; there is no cancel operation.
    pub timeout: Duration,
}

impl Default for PollPolicy {
    fn default() -> Self {
        PollPolicy {
            initial_interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(15),
            multiplier: 1.5,
            timeout: Duration::from_secs(3600),
        }
    }
}

impl PollPolicy {
    /// The wait before status check number `n` (0-based).
    pub fn interval(&self, n: u32) -> Duration {
        let factor = self.multiplier.max(1.0).powi(n.min(64) as i32);
        let secs =
            (self.initial_interval.as_secs_f64() * factor).min(self.max_interval.as_secs_f64());
        Duration::from_secs_f64(secs.max(0.0))
    }

    fn validate(&self) -> Result<()> {
        if self.initial_interval.is_zero() || self.max_interval < self.initial_interval {
            return Err(Error::invalid_input(
                "poll policy: initial_interval must be > 0 and <= max_interval",
            ));
        }
        if !self.multiplier.is_finite() || self.multiplier < 1.0 {
            return Err(Error::invalid_input("poll policy: multiplier must be >= 1"));
        }
        if self.timeout.is_zero() {
            return Err(Error::invalid_input("poll policy: timeout must be > 0"));
        }
        Ok(())
    }
}

/// What Marengo 2.7 does with text over its 77-token limit (`textTruncate`). Marengo 3.0 has no
/// such option and always rejects over-long text.
///
/// The provider estimates tokens before calling and rejects text it thinks is too long whatever
/// this says; the setting decides what the model does with text the estimate let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TextTruncate {
    /// Return an error (`"none"`): a query is never silently shortened. The default.
    #[default]
    Error,
    /// Cut the end of the text (`"end"`, the model's own default).
    End,
}

impl TextTruncate {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            TextTruncate::Error => "none",
            TextTruncate::End => "end",
        }
    }
}

/// Where the model reads media from when it is not text.
///
/// Bedrock takes media either inline (`mediaSource.base64String`, the whole request within the
/// 25 MB invocation quota) or by S3 location (`mediaSource.s3Location`, in the model's region).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum MediaSourcePolicy {
    /// The S3 location when the original is stored in S3 (`s3://` [`MediaRef`](crossmodal_core::MediaRef));
    /// otherwise inline when the request fits the quota; otherwise uploaded to the staging
    /// prefix (an error when none is configured). The default.
    #[default]
    Auto,
    /// Never inline: the stored S3 location, or an upload to the staging prefix.
    S3Only,
    /// Always inline; media whose request would exceed the quota is rejected.
    InlineOnly,
}

/// Settings of a [`MarengoProvider`](crate::MarengoProvider).
///
/// Build one with [`MarengoConfig::builder`]; [`Default`] is Marengo 3.0 in `us-east-1` with no
/// output location (enough for text and image queries, which are synchronous).
///
/// ```
/// use std::time::Duration;
/// use crossmodal_core::EmbeddingSpace;
/// use crossmodal_bedrock::{AudioSegmentation, MarengoConfig, MarengoModel, VideoSegmentation};
///
/// let config = MarengoConfig::builder()
///     .model(MarengoModel::V3_0)
///     .region("us-east-1")
///     .output_s3_uri("s3://my-bucket/marengo-out/")
///     .bucket_owner("123456789012")
///     .staging_s3_uri("s3://my-bucket/marengo-staging/")
///     .video_segmentation(VideoSegmentation::Dynamic { min_duration_sec: 4 })
///     .audio_segmentation(AudioSegmentation::Fixed { duration_sec: 6 })
///     .spaces([EmbeddingSpace::Visual, EmbeddingSpace::Audio])
///     .max_concurrent_jobs(8)
///     .build()
///     .unwrap();
/// assert_eq!(config.invoke_model_id(), "twelvelabs.marengo-embed-3-0-v1:0");
/// assert_eq!(config.async_model_id(), "twelvelabs.marengo-embed-3-0-v1:0");
///
/// // A region Marengo does not run in is refused, naming the ones it does.
/// let err = MarengoConfig::builder().region("us-west-2").build().unwrap_err();
/// assert!(err.to_string().contains("us-east-1, eu-west-1, ap-northeast-2"));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct MarengoConfig {
    /// The model version.
    pub model: MarengoModel,
    /// Model or inference profile id for `InvokeModel` (text and image); `None` takes the
    /// region's default from [`MARENGO_REGIONS`](crate::MARENGO_REGIONS).
    pub invoke_model_id: Option<String>,
    /// Model id for `StartAsyncInvoke` (video, audio); `None` is the base model id.
    pub async_model_id: Option<String>,
    /// AWS region of the model, the input media and the output bucket (`us-east-1`). Marengo
    /// 3.0 runs in us-east-1, eu-west-1 and ap-northeast-2, Marengo 2.7 in us-east-1 and
    /// eu-west-1; another region needs an explicit [`invoke_model_id`](Self::invoke_model_id).
    pub region: String,
    /// Where asynchronous jobs write their output (`outputDataConfig.s3OutputDataConfig.s3Uri`);
    /// required for video and audio.
    pub output: Option<S3Prefix>,
    /// Account id (12 digits) owning the input and output buckets, sent as `bucketOwner`.
    /// Marengo 3.0 requires it for media in S3; without it the provider resolves the caller's
    /// account with STS `GetCallerIdentity` when it has an STS client
    /// ([`MarengoProvider::from_env`](crate::MarengoProvider::from_env) has one), and otherwise
    /// refuses S3 media with a clear error before any call.
    pub bucket_owner: Option<String>,
    /// KMS key for the job output (`kmsKeyId`).
    pub output_kms_key_id: Option<String>,
    /// Where media that is not already in S3 is uploaded when it cannot go inline.
    pub staging: Option<S3Prefix>,
    /// Delete a staged upload once its job has finished (true). A job abandoned by dropping its
    /// future leaves its staged object: give the staging prefix an S3 lifecycle rule.
    pub delete_staged: bool,
    /// Delete a job's `output.json` and `manifest.json` once its output has been read and
    /// parsed (false: keep them, for audits or re-reads).
    pub delete_output_after_read: bool,
    /// Where the model reads media from.
    pub media_source: MediaSourcePolicy,
    /// Embed images with the synchronous `InvokeModel` (true); false sends them as asynchronous
    /// jobs like video and audio (bulk ingestion that should not use the synchronous quota).
    pub sync_images: bool,
    /// Largest request sent with inline media, bytes (at most Bedrock's 25 MB quota, the
    /// default); media whose request would be larger goes by S3 location.
    pub max_inline_request_bytes: usize,
    /// How to wait for asynchronous jobs.
    pub poll: PollPolicy,
    /// Most asynchronous jobs this provider runs at once (Bedrock has a per-account quota).
    pub max_concurrent_jobs: usize,
    /// Retries of throttled and temporarily failing calls (the SDK's own retries are turned off
    /// so this is the only policy).
    pub retry: RetryPolicy,
    /// How video is segmented.
    pub video_segmentation: VideoSegmentation,
    /// How audio is segmented (fixed or the model's default; never dynamic).
    pub audio_segmentation: AudioSegmentation,
    /// Spaces to ask for from video and audio (`embeddingOption`); `None` asks for every space
    /// the model yields.
    pub spaces: Option<Vec<EmbeddingSpace>>,
    /// Also ask Marengo 3.0 for one whole-asset vector per space (`embeddingScope` `asset`),
    /// returned with `segment: None`.
    pub asset_embeddings: bool,
    /// What Marengo 2.7 does with over-long text.
    pub text_truncate: TextTruncate,
}

impl Default for MarengoConfig {
    fn default() -> Self {
        MarengoConfig {
            model: MarengoModel::V3_0,
            invoke_model_id: None,
            async_model_id: None,
            region: "us-east-1".to_string(),
            output: None,
            bucket_owner: None,
            output_kms_key_id: None,
            staging: None,
            delete_staged: true,
            delete_output_after_read: false,
            media_source: MediaSourcePolicy::Auto,
            sync_images: true,
            max_inline_request_bytes: MarengoConfig::MAX_REQUEST_BYTES,
            poll: PollPolicy::default(),
            max_concurrent_jobs: MarengoConfig::DEFAULT_MAX_CONCURRENT_JOBS,
            retry: RetryPolicy::default(),
            video_segmentation: VideoSegmentation::ModelDefault,
            audio_segmentation: AudioSegmentation::ModelDefault,
            spaces: None,
            asset_embeddings: false,
            text_truncate: TextTruncate::Error,
        }
    }
}

impl MarengoConfig {
    /// Bedrock's model invocation payload quota: 25 MB.
    pub const MAX_REQUEST_BYTES: usize = 25_000_000;
    /// Largest image either model takes: 5 MB (checked as 5,000,000 bytes).
    pub const MAX_IMAGE_BYTES: u64 = 5_000_000;
    /// Default bound on concurrent asynchronous jobs (10).
    pub const DEFAULT_MAX_CONCURRENT_JOBS: usize = 10;

    /// A builder starting from [`Default`].
    pub fn builder() -> MarengoConfigBuilder {
        MarengoConfigBuilder {
            config: MarengoConfig::default(),
            model_id: None,
            output_uri: None,
            staging_uri: None,
        }
    }

    /// The id `InvokeModel` is called with: the configured one, else the region's default
    /// (empty for a configuration that did not pass [`validate`](Self::validate)).
    pub fn invoke_model_id(&self) -> String {
        self.invoke_model_id
            .clone()
            .or_else(|| self.model.default_invoke_id(&self.region))
            .unwrap_or_default()
    }

    /// The id `StartAsyncInvoke` is called with.
    pub fn async_model_id(&self) -> String {
        self.async_model_id
            .clone()
            .or_else(|| {
                self.model
                    .in_region(&self.region)
                    .map(|r| r.async_id.to_string())
            })
            .unwrap_or_else(|| self.model.base_id().to_string())
    }

    /// The spaces requested from media of `kind` (what the model yields for it, narrowed by
    /// [`spaces`](Self::spaces)).
    pub fn spaces_for(&self, kind: MediaKind) -> Vec<EmbeddingSpace> {
        let all = self.model.adapter().model_info().spaces_for(kind).to_vec();
        match &self.spaces {
            None => all,
            Some(wanted) => all.into_iter().filter(|s| wanted.contains(s)).collect(),
        }
    }

    /// Checks every setting; [`MarengoProvider::new`](crate::MarengoProvider::new) calls it.
    pub fn validate(&self) -> Result<()> {
        let adapter = self.model.adapter();
        if self.region.trim().is_empty() {
            return Err(Error::invalid_input("region is empty"));
        }
        match &self.invoke_model_id {
            None if self.model.in_region(&self.region).is_none() => {
                return Err(Error::invalid_input(format!(
                    "{} is not offered in {}: it runs in {} (set region to one of them, or set \
                     invoke_model_id and async_model_id to ids you know work in {})",
                    self.model,
                    self.region,
                    self.model.region_list(),
                    self.region
                )));
            }
            None => {}
            Some(id) => {
                self.check_names_model("invoke_model_id", id)?;
                self.model
                    .check_id_in_region("invoke_model_id", id, &self.region, true)?;
            }
        }
        if let Some(id) = &self.async_model_id {
            self.check_names_model("async_model_id", id)?;
            self.model
                .check_id_in_region("async_model_id", id, &self.region, false)?;
        }
        if let Some(owner) = &self.bucket_owner
            && !(owner.len() == 12 && owner.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(Error::invalid_input(format!(
                "bucket owner {owner:?} is not a 12-digit AWS account id"
            )));
        }
        if self.max_concurrent_jobs == 0 {
            return Err(Error::invalid_input(
                "max_concurrent_jobs must be at least 1",
            ));
        }
        if self.max_inline_request_bytes > Self::MAX_REQUEST_BYTES {
            return Err(Error::invalid_input(format!(
                "max_inline_request_bytes {} is above Bedrock's {} byte quota",
                self.max_inline_request_bytes,
                Self::MAX_REQUEST_BYTES
            )));
        }
        self.poll.validate()?;
        if let Some(spaces) = &self.spaces {
            if spaces.is_empty() {
                return Err(Error::invalid_input(
                    "spaces is empty: ask for at least one",
                ));
            }
            let all = adapter.model_info().all_spaces();
            for s in spaces {
                if !all.contains(s) {
                    return Err(Error::unsupported(format!(
                        "{} does not yield the {s} space (it yields {})",
                        self.model,
                        all.iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            }
            if self.spaces_for(MediaKind::Video).is_empty() {
                return Err(Error::invalid_input(
                    "spaces leaves nothing to ask for from video",
                ));
            }
        }
        if self.asset_embeddings && !adapter.supports_asset_scope() {
            return Err(Error::unsupported(format!(
                "{} has no whole-asset embeddings (embeddingScope); use Marengo 3.0",
                self.model
            )));
        }
        adapter.check_video_segmentation(self.video_segmentation)?;
        adapter.check_audio_segmentation(self.audio_segmentation)?;
        Ok(())
    }

    fn check_names_model(&self, what: &str, id: &str) -> Result<()> {
        let named: MarengoModel = id.parse()?;
        if named != self.model {
            return Err(Error::invalid_input(format!(
                "{what} {id:?} names {named}, but the configured model is {}",
                self.model
            )));
        }
        Ok(())
    }

    /// The options that change the vectors, as one stable string (part of the embedding-cache
    /// key): model, segmentation, spaces asked for, whole-asset vectors, truncation.
    pub fn fingerprint(&self) -> String {
        let spaces = |k| {
            self.spaces_for(k)
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("+")
        };
        let mut f = format!(
            "model={};seg={};video={};audio={}",
            self.model.base_id(),
            segmentation::fingerprint(self.video_segmentation, self.audio_segmentation),
            spaces(MediaKind::Video),
            spaces(MediaKind::Audio),
        );
        if self.asset_embeddings {
            f.push_str(";scope=clip+asset");
        }
        if self.model == MarengoModel::V2_7 {
            f.push_str(";truncate=");
            f.push_str(self.text_truncate.as_str());
        }
        f
    }
}

/// Builds a [`MarengoConfig`]; [`build`](Self::build) validates it.
#[derive(Debug, Clone)]
pub struct MarengoConfigBuilder {
    config: MarengoConfig,
    model_id: Option<String>,
    output_uri: Option<String>,
    staging_uri: Option<String>,
}

impl MarengoConfigBuilder {
    /// The model version (default 3.0).
    pub fn model(mut self, model: MarengoModel) -> Self {
        self.config.model = model;
        self
    }

    /// The model by id: a base id, an inference profile id or ARN (used for `InvokeModel`; the
    /// version is recognised from it).
    pub fn model_id(mut self, id: impl Into<String>) -> Self {
        self.model_id = Some(id.into());
        self
    }

    /// The id `InvokeModel` is called with (an inference profile id or ARN).
    pub fn invoke_model_id(mut self, id: impl Into<String>) -> Self {
        self.config.invoke_model_id = Some(id.into());
        self
    }

    /// The id `StartAsyncInvoke` is called with (default: the base model id).
    pub fn async_model_id(mut self, id: impl Into<String>) -> Self {
        self.config.async_model_id = Some(id.into());
        self
    }

    /// The AWS region (default `us-east-1`).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.config.region = region.into();
        self
    }

    /// Where asynchronous jobs write their output, `s3://bucket/prefix`.
    pub fn output_s3_uri(mut self, uri: impl Into<String>) -> Self {
        self.output_uri = Some(uri.into());
        self
    }

    /// The account id owning the buckets (`bucketOwner`).
    pub fn bucket_owner(mut self, account_id: impl Into<String>) -> Self {
        self.config.bucket_owner = Some(account_id.into());
        self
    }

    /// A KMS key for job output.
    pub fn output_kms_key_id(mut self, key: impl Into<String>) -> Self {
        self.config.output_kms_key_id = Some(key.into());
        self
    }

    /// Where media not already in S3 is uploaded when it cannot go inline, `s3://bucket/prefix`.
    pub fn staging_s3_uri(mut self, uri: impl Into<String>) -> Self {
        self.staging_uri = Some(uri.into());
        self
    }

    /// Whether staged uploads are deleted after their job (default true).
    pub fn delete_staged(mut self, delete: bool) -> Self {
        self.config.delete_staged = delete;
        self
    }

    /// Whether a job's `output.json` and `manifest.json` are deleted once read (default false).
    pub fn delete_output_after_read(mut self, delete: bool) -> Self {
        self.config.delete_output_after_read = delete;
        self
    }

    /// Where the model reads media from (default [`MediaSourcePolicy::Auto`]).
    pub fn media_source(mut self, policy: MediaSourcePolicy) -> Self {
        self.config.media_source = policy;
        self
    }

    /// Synchronous `InvokeModel` for images (default true) or asynchronous jobs (false).
    pub fn sync_images(mut self, sync: bool) -> Self {
        self.config.sync_images = sync;
        self
    }

    /// Largest request with inline media, bytes (default and maximum 25,000,000).
    pub fn max_inline_request_bytes(mut self, bytes: usize) -> Self {
        self.config.max_inline_request_bytes = bytes;
        self
    }

    /// How to wait for asynchronous jobs.
    pub fn poll(mut self, poll: PollPolicy) -> Self {
        self.config.poll = poll;
        self
    }

    /// The overall time-out of one asynchronous job (shorthand for the poll policy's).
    pub fn job_timeout(mut self, timeout: Duration) -> Self {
        self.config.poll.timeout = timeout;
        self
    }

    /// Most asynchronous jobs at once (default 10).
    pub fn max_concurrent_jobs(mut self, n: usize) -> Self {
        self.config.max_concurrent_jobs = n;
        self
    }

    /// Retries of throttled and temporarily failing calls.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.config.retry = retry;
        self
    }

    /// Segmentation of video.
    pub fn video_segmentation(mut self, segmentation: VideoSegmentation) -> Self {
        self.config.video_segmentation = segmentation;
        self
    }

    /// Segmentation of audio.
    pub fn audio_segmentation(mut self, segmentation: AudioSegmentation) -> Self {
        self.config.audio_segmentation = segmentation;
        self
    }

    /// Spaces to ask for from video and audio (default: all the model yields).
    pub fn spaces(mut self, spaces: impl IntoIterator<Item = EmbeddingSpace>) -> Self {
        self.config.spaces = Some(spaces.into_iter().collect());
        self
    }

    /// Also ask Marengo 3.0 for whole-asset vectors.
    pub fn asset_embeddings(mut self, on: bool) -> Self {
        self.config.asset_embeddings = on;
        self
    }

    /// What Marengo 2.7 does with over-long text.
    pub fn text_truncate(mut self, truncate: TextTruncate) -> Self {
        self.config.text_truncate = truncate;
        self
    }

    /// The validated configuration.
    pub fn build(self) -> Result<MarengoConfig> {
        let mut config = self.config;
        if let Some(id) = self.model_id {
            config.model = id.parse()?;
            if id != config.model.base_id() {
                config.invoke_model_id = Some(id);
            }
        }
        if let Some(uri) = self.output_uri {
            config.output = Some(S3Prefix::parse(&uri)?);
        }
        if let Some(uri) = self.staging_uri {
            config.staging = Some(S3Prefix::parse(&uri)?);
        }
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossmodal_core::ErrorKind;

    #[test]
    fn regions_outside_the_table_are_refused_naming_the_supported_ones() {
        for (model, region, listed) in [
            (
                MarengoModel::V3_0,
                "us-west-2",
                "us-east-1, eu-west-1, ap-northeast-2",
            ),
            (
                MarengoModel::V3_0,
                "eu-central-1",
                "us-east-1, eu-west-1, ap-northeast-2",
            ),
            (MarengoModel::V2_7, "ap-northeast-2", "us-east-1, eu-west-1"),
        ] {
            let err = MarengoConfig::builder()
                .model(model)
                .region(region)
                .build()
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput);
            assert!(err.to_string().contains(listed), "{err}");
            assert!(err.to_string().contains(region), "{err}");
        }
        // Every region of the table builds, with the table's ids.
        for row in crate::MARENGO_REGIONS {
            let c = MarengoConfig::builder()
                .model(row.model)
                .region(row.region)
                .build()
                .unwrap();
            assert_eq!(c.invoke_model_id(), row.invoke_ids[0]);
            assert_eq!(c.async_model_id(), row.async_id);
        }
        // An explicit id stays possible outside the table.
        assert!(
            MarengoConfig::builder()
                .region("sa-east-1")
                .invoke_model_id("arn:aws:bedrock:sa-east-1:123456789012:inference-profile/global.twelvelabs.marengo-embed-3-0-v1:0")
                .build()
                .is_ok()
        );
        // A profile that cannot be called from the configured region is refused.
        let err = MarengoConfig::builder()
            .region("eu-west-1")
            .invoke_model_id("us.twelvelabs.marengo-embed-3-0-v1:0")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("eu.twelvelabs"), "{err}");
    }

    #[test]
    fn builder_validates() {
        let err = MarengoConfig::builder()
            .bucket_owner("12345")
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        // The profile of another version.
        assert!(
            MarengoConfig::builder()
                .invoke_model_id("us.twelvelabs.marengo-embed-2-7-v1:0")
                .build()
                .is_err()
        );
        assert!(
            MarengoConfig::builder()
                .output_s3_uri("bucket/x")
                .build()
                .is_err()
        );
        assert!(
            MarengoConfig::builder()
                .max_concurrent_jobs(0)
                .build()
                .is_err()
        );
        assert!(
            MarengoConfig::builder()
                .max_inline_request_bytes(30_000_000)
                .build()
                .is_err()
        );
        let err = MarengoConfig::builder()
            .model(MarengoModel::V2_7)
            .spaces([EmbeddingSpace::Transcription])
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        assert!(
            MarengoConfig::builder()
                .model(MarengoModel::V2_7)
                .asset_embeddings(true)
                .build()
                .is_err()
        );
    }

    #[test]
    fn segmentation_ranges_per_model_and_kind() {
        use AudioSegmentation as A;
        use MarengoModel::*;
        use VideoSegmentation as V;
        let video = |m, s| {
            MarengoConfig::builder()
                .model(m)
                .video_segmentation(s)
                .build()
        };
        let audio = |m, s| {
            MarengoConfig::builder()
                .model(m)
                .audio_segmentation(s)
                .build()
        };
        assert!(video(V3_0, V::Fixed { duration_sec: 1 }).is_ok());
        assert!(video(V3_0, V::Fixed { duration_sec: 11 }).is_err());
        assert!(video(V2_7, V::Fixed { duration_sec: 1 }).is_err());
        assert!(video(V2_7, V::Fixed { duration_sec: 2 }).is_ok());
        assert!(
            video(
                V3_0,
                V::Dynamic {
                    min_duration_sec: 5
                }
            )
            .is_ok()
        );
        assert!(
            video(
                V3_0,
                V::Dynamic {
                    min_duration_sec: 0
                }
            )
            .is_err()
        );
        assert!(
            video(
                V2_7,
                V::Dynamic {
                    min_duration_sec: 6
                }
            )
            .is_err()
        );
        assert!(audio(V3_0, A::Fixed { duration_sec: 1 }).is_ok());
        assert!(audio(V3_0, A::Fixed { duration_sec: 0 }).is_err());
        assert!(audio(V2_7, A::Fixed { duration_sec: 1 }).is_err());
        assert!(audio(V2_7, A::Fixed { duration_sec: 10 }).is_ok());
    }

    #[test]
    fn model_id_sets_version_and_invoke_id() {
        let c = MarengoConfig::builder()
            .model_id("us.twelvelabs.marengo-embed-2-7-v1:0")
            .build()
            .unwrap();
        assert_eq!(c.model, MarengoModel::V2_7);
        assert_eq!(c.invoke_model_id(), "us.twelvelabs.marengo-embed-2-7-v1:0");
        assert_eq!(c.async_model_id(), "twelvelabs.marengo-embed-2-7-v1:0");
    }

    #[test]
    fn fingerprint_changes_with_vector_options() {
        let a = MarengoConfig::default();
        let b = MarengoConfig::builder()
            .video_segmentation(VideoSegmentation::Fixed { duration_sec: 6 })
            .audio_segmentation(AudioSegmentation::Fixed { duration_sec: 6 })
            .build()
            .unwrap();
        let c = MarengoConfig::builder()
            .spaces([EmbeddingSpace::Visual])
            .build()
            .unwrap();
        let d = MarengoConfig::builder()
            .max_concurrent_jobs(3)
            .build()
            .unwrap();
        let e = MarengoConfig::builder()
            .audio_segmentation(AudioSegmentation::Fixed { duration_sec: 6 })
            .build()
            .unwrap();
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
        assert_ne!(a.fingerprint(), e.fingerprint());
        assert_ne!(b.fingerprint(), e.fingerprint());
        assert_eq!(a.fingerprint(), d.fingerprint());
        assert_eq!(c.spaces_for(MediaKind::Audio), Vec::<EmbeddingSpace>::new());
        // The keys a single `Segmentation` setting produced are kept (no re-embedding).
        assert_eq!(
            a.fingerprint(),
            "model=twelvelabs.marengo-embed-3-0-v1:0;seg=default;video=visual+audio+transcription;audio=audio+transcription"
        );
        assert!(
            b.fingerprint().contains(";seg=fixed:6;"),
            "{}",
            b.fingerprint()
        );
    }
}
