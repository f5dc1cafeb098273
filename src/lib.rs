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
//! | `opensearch` | [`opensearch`]: the OpenSearch k-NN index and catalog (managed and Serverless) |
//! | `server` | [`server`]: the HTTP service as a library (`router(engine, config)`) |
//! | `conformance` | [`conformance`]: the behaviour suite every backend runs |
//!
//! Enable only what your application uses: a service on the embedded default never compiles
//! an AWS SDK, one on OpenSearch never compiles the Bedrock SDK.
//!
//! ```toml
//! [dependencies]
//! crossmodal = "0.1"                                            # the embedded default
//! # crossmodal = { version = "0.1", features = ["bedrock", "s3", "opensearch"] }   # production
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
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
