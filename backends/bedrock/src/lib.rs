//! # crossmodal-bedrock
//!
//! [`MarengoProvider`]: TwelveLabs Marengo Embed on Amazon Bedrock as a
//! [`crossmodal_core::EmbeddingProvider`], on `aws-sdk-bedrockruntime`, reading asynchronous results
//! with `aws-sdk-s3`.
//!
//! - **Marengo Embed 3.0** (`twelvelabs.marengo-embed-3-0-v1:0`, 512 dimensions, spaces
//!   `visual`, `audio`, `transcription`) is the default. **Marengo Embed 2.7**
//!   (`twelvelabs.marengo-embed-2-7-v1:0`, 1024 dimensions, spaces `visual-image`,
//!   `visual-text`, `audio`) reaches end of life on 2026-11-30 and stays supported for indexes
//!   built with it. The two request formats differ; each version is one small adapter (request
//!   bodies, option names, limits), chosen by [`MarengoModel`].
//! - Text and image queries use the synchronous `InvokeModel` (3.0: the base id in `us-east-1`
//!   or an inference profile; 2.7: inference profiles only). Video and audio use
//!   `StartAsyncInvoke`, poll `GetAsyncInvoke` and read `<output uri>/<job id>/output.json`.
//! - Media already in S3 (an `s3://` [`MediaRef`](crossmodal_core::MediaRef)) is read in place;
//!   other media goes inline (base64) when the request fits Bedrock's 25 MB quota, or is
//!   uploaded to a configured staging prefix ([`MediaSourcePolicy`]).
//! - Limits are checked before any call, temporary errors retried with jittered backoff,
//!   concurrent jobs bounded and recorded in a [`JobLedger`](crossmodal_core::JobLedger) (a
//!   job that outlives the poll time-out is picked up later, not paid for twice), output
//!   parsed leniently where the documentation differs and strictly where it matters; see
//!   [`MarengoProvider`].
//! - Composed queries (`text_image`) and processing windows ([`ProcessingWindow`]) are
//!   Marengo 3.0 inputs the provider sends.
//!
//! ```no_run
//! # async fn demo() -> crossmodal_core::Result<()> {
//! use crossmodal_core::EmbeddingProvider;
//! use crossmodal_bedrock::{
//!     AudioSegmentation, MarengoConfig, MarengoModel, MarengoProvider, VideoSegmentation,
//! };
//!
//! let config = MarengoConfig::builder()
//!     .model(MarengoModel::V3_0)
//!     .region("us-east-1") // 3.0: us-east-1, eu-west-1, ap-northeast-2
//!     .output_s3_uri("s3://my-media-bucket/marengo-output/")
//!     .bucket_owner("123456789012") // or resolved with STS by from_env
//!     .staging_s3_uri("s3://my-media-bucket/marengo-staging/")
//!     .video_segmentation(VideoSegmentation::Dynamic { min_duration_sec: 4 })
//!     .audio_segmentation(AudioSegmentation::Fixed { duration_sec: 6 })
//!     .build()?;
//! let provider = MarengoProvider::from_env(config).await?;
//! let query = provider.embed_text("a castle at sunset").await?;
//! assert_eq!(query.len(), 512);
//! # Ok(()) }
//! ```
//!
//! The IAM permissions the provider needs are listed in the crate's README.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

mod adapter;
mod config;
mod document;
mod error;
mod job;
mod model;
mod options;
mod output;
#[cfg(test)]
mod output_fuzz;
mod provider;
mod s3_prefix;
mod segmentation;
mod source;
mod tokens;

pub use config::{
    MarengoConfig, MarengoConfigBuilder, MediaSourcePolicy, PollPolicy, TextTruncate,
};
pub use error::{error_kind_for, is_transient_model_error};
pub use model::{MARENGO_REGIONS, MarengoModel, RegionSupport};
pub use options::{MediaEmbedOptions, ProcessingWindow};
pub use provider::{MarengoProvider, MarengoProviderBuilder, ProviderStats};
pub use s3_prefix::S3Prefix;
pub use segmentation::{AudioSegmentation, VideoSegmentation};
pub use tokens::{SPECIAL_TOKENS, estimate_tokens};

/// The `aws-sdk-bedrockruntime` crate the provider is built on, so callers can build a client
/// without a separate, possibly different, dependency.
pub use aws_sdk_bedrockruntime;
/// The `aws-sdk-s3` crate the provider reads job output with.
pub use aws_sdk_s3;
/// The `aws-sdk-sts` crate the provider resolves the bucket owner with.
pub use aws_sdk_sts;
