//! # crossmodal-testkit
//!
//! What the crossmodal workspace's tests, examples and benches share, in one crate that is never
//! published (so no backend needs another backend's test files by `#[path]`):
//!
//! - [`demo_embedder`]: the **offline demo embedder** of the examples. It is not a model: it
//!   hashes each generated sample's caption words into vectors, and says so.
//! - [`samples`]: the small media library the quickstart generates (images, WAV, and with ffmpeg
//!   videos, MP3 and M4A), each file with its caption.
//! - [`fixtures`]: the tiny media files in `tests/fixtures/media`.
//! - [`skip`]: how a test that cannot run here (no local server, no browser) reports itself:
//!   a skip is recorded for the test command's summary, never shown as a pass, and is a failure
//!   under `CI=true`.
//! - `aws` (feature `aws`): SDK clients and bucket helpers for the local S3 and Bedrock servers.
//! - `bedrock_server` (feature `bedrock-server`): the Bedrock Runtime protocol test server.
//! - `knn_server` (feature `knn-server`): the OpenSearch k-NN test server.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

pub mod demo_embedder;
pub mod fixtures;
pub mod samples;
pub mod skip;

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "bedrock-server")]
pub mod bedrock_schema;
#[cfg(feature = "bedrock-server")]
pub mod bedrock_server;
#[cfg(feature = "knn-server")]
pub mod knn_server;
