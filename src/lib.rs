//! # crossmodal
//!
//! Cross-modal media search: find images, video clips and sounds by a text description, or by a
//! reference image, video or audio snippet.
//!
//! This is the crate to depend on. It re-exports [`crossmodal-core`](crossmodal_core) (the
//! vocabulary, the traits, routing, search, ingest, the exact `FlatIndex`, the local stores and
//! the SQLite catalog) and, behind features, the backends:
//!
//! | feature | what it adds |
//! |---|---|
//! | `hnsw` (default) | [`hnsw`]: the HNSW index of the embedded default |
//! | `bedrock` | [`bedrock`]: TwelveLabs Marengo on Amazon Bedrock |
//! | `s3` | [`s3`]: the Amazon S3 media store |
//! | `opensearch` | [`opensearch`]: the OpenSearch k-NN index and catalog for a self-managed cluster (no authentication, basic authentication or a signing proxy); no AWS crate |
//! | `opensearch-aws` | `opensearch` plus SigV4 for Amazon OpenSearch Service and Serverless (`OpenSearchConfig::aws`, `::serverless`; credentials from the AWS default chain) |
//! | `server` | [`server`]: the HTTP service as a library (`router(engine, config)`) |
//! | `hnsw-rs` | lets the raw graph be built with hnsw_rs too, for comparison |
//! | `conformance` | [`conformance`]: the behaviour suite every backend runs |
//!
//! Enable only what your application uses: a service on the embedded default never compiles
//! an AWS SDK, one on a self-managed OpenSearch cluster compiles none either, one on Amazon
//! OpenSearch Service never compiles the Bedrock SDK.
//!
//! ```toml
//! [dependencies]
//! crossmodal = "0.1"                                                  # the embedded default
//! # crossmodal = { version = "0.1", features = ["opensearch"] }       # self-managed OpenSearch
//! # crossmodal = { version = "0.1", features = ["bedrock", "s3", "opensearch-aws"] }   # on AWS
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
// The table links to modules that exist only with their feature; without it, to the crate.
#![cfg_attr(
    not(feature = "bedrock"),
    doc = "[`bedrock`]: https://docs.rs/crossmodal-bedrock"
)]
#![cfg_attr(not(feature = "s3"), doc = "[`s3`]: https://docs.rs/crossmodal-s3")]
#![cfg_attr(
    not(feature = "opensearch"),
    doc = "[`opensearch`]: https://docs.rs/crossmodal-opensearch"
)]
#![cfg_attr(
    not(feature = "server"),
    doc = "[`server`]: https://docs.rs/crossmodal-server"
)]
#![cfg_attr(
    not(feature = "conformance"),
    doc = "[`conformance`]: https://docs.rs/crossmodal-core/latest/crossmodal_core/conformance/"
)]
#![cfg_attr(
    not(feature = "hnsw"),
    doc = "[`hnsw`]: https://docs.rs/crossmodal-hnsw"
)]
#![warn(missing_docs)]

pub use crossmodal_core::*;

/// The HNSW index of the embedded default (`crossmodal-hnsw`).
#[cfg(feature = "hnsw")]
pub use crossmodal_hnsw as hnsw;

/// TwelveLabs Marengo on Amazon Bedrock (`crossmodal-bedrock`).
#[cfg(feature = "bedrock")]
pub use crossmodal_bedrock as bedrock;

/// The Amazon S3 media store (`crossmodal-s3`).
#[cfg(feature = "s3")]
pub use crossmodal_s3 as s3;

/// The OpenSearch k-NN index and catalog (`crossmodal-opensearch`).
#[cfg(feature = "opensearch")]
pub use crossmodal_opensearch as opensearch;

/// The HTTP service (`crossmodal-server`).
#[cfg(feature = "server")]
pub use crossmodal_server as server;

/// The README's Rust examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
