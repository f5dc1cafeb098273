//! [`MarengoConfig`]: which Marengo model to run, where, and how to wait for it.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crossmodal_core::{EmbeddingSpace, Error, ModelInfo, Result, RetryPolicy};

use crate::adapter::{self, MarengoAdapter};

/// The Marengo model versions this crate speaks.
///
/// Marengo Embed 2.7 reaches end of life on 2026-11-30; 3.0 is the default. Vectors of the two
/// never mix (2.7 has 1024 dimensions, 3.0 has 512), so an index built with 2.7 keeps using 2.7
/// until it is rebuilt.
///
/// ```
/// use crossmodal_bedrock::MarengoModel;
/// let m: MarengoModel = "us.twelvelabs.marengo-embed-2-7-v1:0".parse().unwrap();
/// assert_eq!(m, MarengoModel::V2_7);
/// assert_eq!(MarengoModel::default().base_id(), "twelvelabs.marengo-embed-3-0-v1:0");
/// assert_eq!(MarengoModel::V3_0.dimension(), 512);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MarengoModel {
    /// TwelveLabs Marengo Embed 3.0 (`twelvelabs.marengo-embed-3-0-v1:0`, 512 dimensions,
    /// nested request body, spaces `visual`, `audio`, `transcription`).
    #[default]
    V3_0,
    /// TwelveLabs Marengo Embed 2.7 (`twelvelabs.marengo-embed-2-7-v1:0`, 1024 dimensions, flat
    /// request body, spaces `visual-image`, `visual-text`, `audio`). End of life 2026-11-30.
    V2_7,
}

impl MarengoModel {
    /// The base model id (what `StartAsyncInvoke` takes).
    pub fn base_id(self) -> &'static str {
        match self {
            MarengoModel::V3_0 => ModelInfo::MARENGO_3_0_ID,
            MarengoModel::V2_7 => ModelInfo::MARENGO_2_7_ID,
        }
    }

    /// Vector dimension of the model.
    pub fn dimension(self) -> usize {
        self.adapter().model_info().dimension
    }

    /// The model's description as the core sees it (all spaces it can yield).
    pub fn model_info(self) -> ModelInfo {
        self.adapter().model_info()
    }

    /// The model id `InvokeModel` takes in `region` when none is configured:
    ///
    /// - 3.0: the base id in `us-east-1` and `ap-northeast-2` (in-region), the `eu.` inference
    ///   profile in `eu-*` regions;
    /// - 2.7: inference profiles only (`us.` in `us-*`, `eu.` in `eu-*`).
    ///
    /// `None` where no default is known: configure
    /// [`invoke_model_id`](MarengoConfigBuilder::invoke_model_id) explicitly.
    pub fn default_invoke_id(self, region: &str) -> Option<String> {
        let base = self.base_id();
        match self {
            MarengoModel::V3_0 => match region {
                "us-east-1" | "ap-northeast-2" => Some(base.to_string()),
                r if r.starts_with("eu-") => Some(format!("eu.{base}")),
                r if r.starts_with("us-") => Some(format!("us.{base}")),
                _ => None,
            },
            MarengoModel::V2_7 => match region {
                r if r.starts_with("us-") => Some(format!("us.{base}")),
                r if r.starts_with("eu-") => Some(format!("eu.{base}")),
                _ => None,
            },
        }
    }

    /// Short version name (`3.0`, `2.7`).
    pub fn version(self) -> &'static str {
        match self {
            MarengoModel::V3_0 => "3.0",
            MarengoModel::V2_7 => "2.7",
        }
    }

    pub(crate) fn adapter(self) -> &'static dyn MarengoAdapter {
        match self {
            MarengoModel::V3_0 => &adapter::Marengo30,
            MarengoModel::V2_7 => &adapter::Marengo27,
        }
    }
}

impl fmt::Display for MarengoModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Marengo Embed {}", self.version())
    }
}

impl FromStr for MarengoModel {
    type Err = Error;

    /// Accepts `3.0`/`2.7`, a base model id, an inference profile id (`us.…`, `eu.…`) or an ARN
    /// that names one of them.
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        match s {
            "3.0" | "3" | "v3" | "marengo-3.0" => return Ok(MarengoModel::V3_0),
            "2.7" | "v2.7" | "marengo-2.7" => return Ok(MarengoModel::V2_7),
            _ => {}
        }
        if s.contains("twelvelabs.marengo-embed-3-0-") {
            Ok(MarengoModel::V3_0)
        } else if s.contains("twelvelabs.marengo-embed-2-7-") {
            Ok(MarengoModel::V2_7)
        } else {
            Err(Error::invalid_input(format!(
                "{s:?} names no Marengo model this crate knows (expected 3.0, 2.7, \
                 twelvelabs.marengo-embed-3-0-v1:0, twelvelabs.marengo-embed-2-7-v1:0 or an \
                 inference profile of them)"
            )))
        }
    }
}

/// A bucket and key prefix in S3 (`s3://bucket/prefix`).
///
/// ```
/// use crossmodal_bedrock::S3Prefix;
/// let p = S3Prefix::parse("s3://my-bucket/marengo/out/").unwrap();
/// assert_eq!(p.bucket(), "my-bucket");
/// assert_eq!(p.prefix(), "marengo/out");
/// assert_eq!(p.uri(), "s3://my-bucket/marengo/out");
/// assert_eq!(p.key("x.json"), "marengo/out/x.json");
/// assert!(S3Prefix::parse("https://example.com/b").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct S3Prefix {
    bucket: String,
    prefix: String,
}

impl S3Prefix {
    /// A prefix in `bucket` (leading and trailing `/` are dropped; empty for the bucket root).
    pub fn new(bucket: impl Into<String>, prefix: impl Into<String>) -> Result<Self> {
        let bucket = bucket.into();
        let prefix = prefix.into().trim_matches('/').to_string();
        check_bucket(&bucket)?;
        if prefix.contains("//") {
            return Err(Error::invalid_input(format!(
                "S3 prefix {prefix:?} has an empty path segment"
            )));
        }
        Ok(S3Prefix { bucket, prefix })
    }

    /// Parses `s3://bucket` or `s3://bucket/prefix`.
    pub fn parse(uri: &str) -> Result<Self> {
        let rest = uri
            .strip_prefix("s3://")
            .ok_or_else(|| Error::invalid_input(format!("{uri:?} is not an s3:// URI")))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        S3Prefix::new(bucket, prefix)
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key prefix, without leading or trailing `/` (may be empty).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `s3://bucket/prefix` (no trailing `/`).
    pub fn uri(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    /// The key of `name` under the prefix.
    pub fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{}", self.prefix, name)
        }
    }
}

impl fmt::Display for S3Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri())
    }
}

fn check_bucket(bucket: &str) -> Result<()> {
    let ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && bucket
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && bucket
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_input(format!(
            "{bucket:?} is not a valid S3 bucket name (3-63 of a-z, 0-9, '-', '.')"
        )))
    }
}

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

/// How video and audio are cut into segments (one vector per segment per space).
///
/// The values are in seconds and checked against the model's ranges when the configuration is
/// built: Marengo 3.0 takes fixed segments of 1-10 s and a dynamic minimum of 1-5 s; Marengo 2.7
/// takes fixed segments of 2-10 s (`useFixedLengthSec`) and a dynamic minimum clip of 1-5 whole
/// seconds (`minClipSec`, video only; 2.7 splits audio evenly into segments near 10 s).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Segmentation {
    /// Leave segmentation to the model (shot boundaries for video).
    #[default]
    ModelDefault,
    /// Segments of a fixed duration.
    Fixed {
        /// Segment length, seconds.
        duration_sec: f64,
    },
    /// Segments cut at shot boundaries, each at least this long.
    Dynamic {
        /// Shortest segment, seconds.
        min_duration_sec: f64,
    },
}

impl fmt::Display for Segmentation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Segmentation::ModelDefault => f.write_str("default"),
            Segmentation::Fixed { duration_sec } => write!(f, "fixed:{duration_sec}"),
            Segmentation::Dynamic { min_duration_sec } => write!(f, "dynamic:{min_duration_sec}"),
        }
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
/// use crossmodal_bedrock::{MarengoConfig, MarengoModel, Segmentation};
///
/// let config = MarengoConfig::builder()
///     .model(MarengoModel::V3_0)
///     .region("us-east-1")
///     .output_s3_uri("s3://my-bucket/marengo-out/")
///     .bucket_owner("123456789012")
///     .staging_s3_uri("s3://my-bucket/marengo-staging/")
///     .segmentation(Segmentation::Fixed { duration_sec: 6.0 })
///     .spaces([EmbeddingSpace::Visual, EmbeddingSpace::Audio])
///     .max_concurrent_jobs(8)
///     .build()
///     .unwrap();
/// assert_eq!(config.invoke_model_id(), "twelvelabs.marengo-embed-3-0-v1:0");
/// assert_eq!(config.async_model_id(), "twelvelabs.marengo-embed-3-0-v1:0");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct MarengoConfig {
    /// The model version.
    pub model: MarengoModel,
    /// Model or inference profile id for `InvokeModel` (text and image); `None` derives it from
    /// the model and region ([`MarengoModel::default_invoke_id`]).
    pub invoke_model_id: Option<String>,
    /// Model id for `StartAsyncInvoke` (video, audio); `None` is the base model id.
    pub async_model_id: Option<String>,
    /// AWS region of the model, the input media and the output bucket (`us-east-1`).
    pub region: String,
    /// Where asynchronous jobs write their output (`outputDataConfig.s3OutputDataConfig.s3Uri`);
    /// required for video and audio.
    pub output: Option<S3Prefix>,
    /// Account id (12 digits) owning the input and output buckets, sent as `bucketOwner`.
    pub bucket_owner: Option<String>,
    /// KMS key for the job output (`kmsKeyId`).
    pub output_kms_key_id: Option<String>,
    /// Where media that is not already in S3 is uploaded when it cannot go inline.
    pub staging: Option<S3Prefix>,
    /// Delete a staged upload once its job has finished (true). A job abandoned by dropping its
    /// future leaves its staged object: give the staging prefix an S3 lifecycle rule.
    pub delete_staged: bool,
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
    /// How video and audio are segmented.
    pub segmentation: Segmentation,
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
            media_source: MediaSourcePolicy::Auto,
            sync_images: true,
            max_inline_request_bytes: MarengoConfig::MAX_REQUEST_BYTES,
            poll: PollPolicy::default(),
            max_concurrent_jobs: MarengoConfig::DEFAULT_MAX_CONCURRENT_JOBS,
            retry: RetryPolicy::default(),
            segmentation: Segmentation::ModelDefault,
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

    /// The id `InvokeModel` is called with.
    ///
    /// # Panics
    /// Never for a configuration that passed [`validate`](Self::validate).
    pub fn invoke_model_id(&self) -> String {
        self.invoke_model_id
            .clone()
            .or_else(|| self.model.default_invoke_id(&self.region))
            .expect("validated configuration has an invoke model id")
    }

    /// The id `StartAsyncInvoke` is called with.
    pub fn async_model_id(&self) -> String {
        self.async_model_id
            .clone()
            .unwrap_or_else(|| self.model.base_id().to_string())
    }

    /// The spaces requested from media of `kind` (what the model yields for it, narrowed by
    /// [`spaces`](Self::spaces)).
    pub fn spaces_for(&self, kind: crossmodal_core::MediaKind) -> Vec<EmbeddingSpace> {
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
        if self.invoke_model_id.is_none() && self.model.default_invoke_id(&self.region).is_none() {
            return Err(Error::invalid_input(format!(
                "no default InvokeModel id for {} in {}: set invoke_model_id to a model or \
                 inference profile id available there",
                self.model, self.region
            )));
        }
        for (what, id) in [
            ("invoke_model_id", &self.invoke_model_id),
            ("async_model_id", &self.async_model_id),
        ] {
            if let Some(id) = id {
                let named: MarengoModel = id.parse()?;
                if named != self.model {
                    return Err(Error::invalid_input(format!(
                        "{what} {id:?} names {named}, but the configured model is {}",
                        self.model
                    )));
                }
            }
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
            let info = adapter.model_info();
            let all = info.all_spaces();
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
            if self
                .spaces_for(crossmodal_core::MediaKind::Video)
                .is_empty()
            {
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
        adapter.check_segmentation(self.segmentation)?;
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
            self.segmentation,
            spaces(crossmodal_core::MediaKind::Video),
            spaces(crossmodal_core::MediaKind::Audio),
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

    /// Segmentation of video and audio.
    pub fn segmentation(mut self, segmentation: Segmentation) -> Self {
        self.config.segmentation = segmentation;
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
    use crossmodal_core::{ErrorKind, MediaKind};

    #[test]
    fn default_invoke_ids_follow_the_documented_regions() {
        let m3 = MarengoModel::V3_0;
        assert_eq!(m3.default_invoke_id("us-east-1").unwrap(), m3.base_id());
        assert_eq!(
            m3.default_invoke_id("eu-west-1").unwrap(),
            "eu.twelvelabs.marengo-embed-3-0-v1:0"
        );
        assert_eq!(
            m3.default_invoke_id("ap-northeast-2").unwrap(),
            m3.base_id()
        );
        assert!(m3.default_invoke_id("sa-east-1").is_none());
        let m2 = MarengoModel::V2_7;
        assert_eq!(
            m2.default_invoke_id("us-east-1").unwrap(),
            "us.twelvelabs.marengo-embed-2-7-v1:0"
        );
        assert!(m2.default_invoke_id("ap-northeast-2").is_none());
    }

    #[test]
    fn model_ids_parse() {
        for (s, m) in [
            ("twelvelabs.marengo-embed-3-0-v1:0", MarengoModel::V3_0),
            ("eu.twelvelabs.marengo-embed-3-0-v1:0", MarengoModel::V3_0),
            (
                "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.twelvelabs.marengo-embed-2-7-v1:0",
                MarengoModel::V2_7,
            ),
            ("2.7", MarengoModel::V2_7),
        ] {
            assert_eq!(s.parse::<MarengoModel>().unwrap(), m, "{s}");
        }
        assert!(
            "amazon.titan-embed-text-v2:0"
                .parse::<MarengoModel>()
                .is_err()
        );
    }

    #[test]
    fn builder_validates() {
        let err = MarengoConfig::builder()
            .bucket_owner("12345")
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(
            MarengoConfig::builder()
                .region("sa-east-1")
                .build()
                .is_err()
        );
        assert!(
            MarengoConfig::builder()
                .region("sa-east-1")
                .invoke_model_id("arn:aws:bedrock:sa-east-1:123456789012:inference-profile/global.twelvelabs.marengo-embed-3-0-v1:0")
                .build()
                .is_ok()
        );
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
    fn segmentation_ranges_per_model() {
        let b = |m, s| MarengoConfig::builder().model(m).segmentation(s).build();
        use MarengoModel::*;
        assert!(b(V3_0, Segmentation::Fixed { duration_sec: 1.0 }).is_ok());
        assert!(b(V3_0, Segmentation::Fixed { duration_sec: 10.5 }).is_err());
        assert!(b(V2_7, Segmentation::Fixed { duration_sec: 1.0 }).is_err());
        assert!(b(V2_7, Segmentation::Fixed { duration_sec: 2.0 }).is_ok());
        assert!(
            b(
                V3_0,
                Segmentation::Dynamic {
                    min_duration_sec: 5.0
                }
            )
            .is_ok()
        );
        assert!(
            b(
                V3_0,
                Segmentation::Dynamic {
                    min_duration_sec: 0.5
                }
            )
            .is_err()
        );
        assert!(
            b(
                V2_7,
                Segmentation::Dynamic {
                    min_duration_sec: 2.5
                }
            )
            .is_err()
        );
        assert!(
            b(
                V2_7,
                Segmentation::Dynamic {
                    min_duration_sec: 3.0
                }
            )
            .is_ok()
        );
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
            .segmentation(Segmentation::Fixed { duration_sec: 6.0 })
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
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
        assert_eq!(a.fingerprint(), d.fingerprint());
        assert_eq!(c.spaces_for(MediaKind::Audio), Vec::<EmbeddingSpace>::new());
        assert!(
            a.fingerprint()
                .contains("twelvelabs.marengo-embed-3-0-v1:0")
        );
    }
}
