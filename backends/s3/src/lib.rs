//! # crossmodal-s3
//!
//! [`S3MediaStore`]: a [`crossmodal_core::MediaStore`] keeping original media files in Amazon S3 or an
//! S3-compatible server (MinIO, Ceph, moto, ...), on `aws-sdk-s3`.
//!
//! - Keys come from asset ids ([`crossmodal_core::MediaKey::for_asset`]), never from user paths; a
//!   user-facing name is stored as escaped metadata ([`PutOptions::with_display_name`]).
//! - Content type from the media format, SHA-256 of the content as `x-amz-meta-sha256`.
//! - Multipart uploads above a threshold (16 MiB by default), streamed from disk a part at a
//!   time, so a multi-GB video is never held in memory; failed uploads are aborted.
//! - [`MediaRef::uri`](crossmodal_core::MediaRef) is `s3://bucket/key`, what Bedrock Marengo's
//!   `s3Location.uri` takes; [`preview_url`](crossmodal_core::MediaStore::preview_url) is a presigned
//!   `GET` with the caller's lifetime.
//! - SDK errors become [`crossmodal_core::Error`]s with the right [`crossmodal_core::ErrorKind`], the S3
//!   request id as context and the SDK error as source; connect and per-attempt time-outs are
//!   set so an unreachable server fails fast instead of hanging.
//!
//! ```no_run
//! # async fn demo() -> crossmodal_core::Result<()> {
//! use std::time::Duration;
//! use crossmodal_core::{AssetId, MediaFormat, MediaKey, MediaStore};
//! use crossmodal_s3::{PutOptions, S3MediaStore, S3StoreConfig};
//!
//! // A local S3-compatible server; for AWS leave out the endpoint and path style.
//! let config = S3StoreConfig::new("media")
//!     .with_prefix("originals/")
//!     .with_endpoint("http://127.0.0.1:9000")
//!     .with_path_style(true)
//!     .with_region("us-east-1");
//! let store = S3MediaStore::from_env(config).await?;
//!
//! let path = std::path::Path::new("castle_siege.mp4");
//! let id = AssetId::from_content(&std::fs::read(path)?);
//! let key = MediaKey::for_asset(&id, MediaFormat::Mp4);
//! let options = PutOptions::new().with_display_name("Castle siege.mp4").with_asset(&id);
//! let stored = store.put_file_with(&key, path, MediaFormat::Mp4, &options).await?;
//! assert!(stored.uri.as_str().starts_with("s3://media/originals/"));
//! let url = store.preview_url(&key, Duration::from_secs(900)).await?;
//! # let _ = url; Ok(()) }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

mod config;
mod error;
mod meta;
mod multipart;
mod store;

pub use config::S3StoreConfig;
pub use meta::{
    DISPLAY_NAME_METADATA, MAX_DISPLAY_NAME_LEN, ObjectInfo, PutOptions, SHA256_METADATA,
};
pub use store::S3MediaStore;

/// The `aws-sdk-s3` crate this store is built on, so callers can name its types (`Client`,
/// `primitives::ByteStream`, ...) without a separate, possibly different, dependency.
pub use aws_sdk_s3;
