//! [`OpenSearchConfig`]: where the cluster is, how to sign in, which rules it plays by, and how
//! the index is built.

mod auth;
mod builder;
mod kinds;

use std::time::Duration;

use crossmodal_core::{Error, ErrorKind, Result, RetryPolicy};
use url::Url;

pub use auth::{AwsService, OpenSearchAuth};
pub use builder::OpenSearchConfigBuilder;
pub use kinds::{Deployment, Engine, RefreshPolicy, SpaceType};

use crate::version::{OpenSearchVersion, check_engine, query_ef_search_supported};

/// Everything [`OpenSearchIndex`](crate::OpenSearchIndex) and
/// [`OpenSearchCatalog`](crate::OpenSearchCatalog) need: the cluster, authentication, the
/// [`Deployment`] rules, the index layout and HNSW parameters, write visibility, time-outs and
/// retries.
///
/// Build one with [`OpenSearchConfig::builder`] (or the [`new`](Self::new) shortcut, and with
/// feature `aws-auth` `aws` and `serverless`):
///
/// ```
/// use std::time::Duration;
/// use crossmodal_opensearch::{Deployment, Engine, OpenSearchConfig, RefreshPolicy};
///
/// let config = OpenSearchConfig::builder("https://localhost:9200")
///     .basic_auth("admin", "secret")
///     .index("media-vectors")
///     .engine(Engine::Lucene)
///     .hnsw(24, 256)
///     .ef_search(128)
///     .opensearch_version("2.11".parse().unwrap())
///     .refresh(RefreshPolicy::WaitFor)
///     .request_timeout(Duration::from_secs(10))
///     .build()
///     .unwrap();
/// assert_eq!(config.index(), "media-vectors");
/// assert_eq!(config.catalog_index(), "media-vectors-assets");
/// assert_eq!(config.deployment(), Deployment::Cluster);
/// assert!(!format!("{config:?}").contains("secret"));
/// ```
#[derive(Debug, Clone)]
pub struct OpenSearchConfig {
    pub(crate) url: Url,
    pub(crate) auth: OpenSearchAuth,
    pub(crate) deployment: Deployment,
    pub(crate) index: String,
    pub(crate) catalog_index: Option<String>,
    pub(crate) engine: Engine,
    pub(crate) space_type: SpaceType,
    pub(crate) m: u32,
    pub(crate) ef_construction: u32,
    pub(crate) ef_search: Option<u32>,
    pub(crate) ef_search_per_query: bool,
    /// Whether `ef_search_per_query` was set explicitly (then an old cluster is an error, not
    /// a reason to turn it off).
    pub(crate) ef_search_per_query_explicit: bool,
    pub(crate) version: Option<OpenSearchVersion>,
    pub(crate) shards: Option<u32>,
    pub(crate) replicas: Option<u32>,
    pub(crate) refresh: RefreshPolicy,
    pub(crate) visibility_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) bulk_timeout: Duration,
    pub(crate) retry: RetryPolicy,
    pub(crate) batch_docs: usize,
    pub(crate) batch_bytes: usize,
    pub(crate) bulk_concurrency: usize,
    pub(crate) accept_invalid_certs: bool,
}

impl OpenSearchConfig {
    /// Default index name.
    pub const DEFAULT_INDEX: &'static str = "crossmodal-vectors";
    /// Default HNSW `m` (graph degree).
    pub const DEFAULT_M: u32 = 16;
    /// Default HNSW `ef_construction`.
    pub const DEFAULT_EF_CONSTRUCTION: u32 = 128;
    /// Default HNSW `ef_search`.
    pub const DEFAULT_EF_SEARCH: u32 = 100;
    /// Default documents per `_bulk` request.
    pub const DEFAULT_BATCH_DOCS: usize = 500;
    /// Default largest `_bulk` body (OpenSearch's `http.max_content_length` is 100 MiB; Amazon
    /// OpenSearch Serverless takes 10 MiB at most).
    pub const DEFAULT_BATCH_BYTES: usize = 8 * 1024 * 1024;
    /// Default of [`OpenSearchConfigBuilder::visibility_timeout`]: twice the "about 60 s" in
    /// which Amazon OpenSearch Serverless makes writes searchable.
    pub const DEFAULT_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(120);

    /// A builder for a cluster at `url` (`http://` or `https://`, with an optional path prefix).
    pub fn builder(url: impl Into<String>) -> OpenSearchConfigBuilder {
        OpenSearchConfigBuilder {
            url: url.into(),
            auth: OpenSearchAuth::None,
            deployment: None,
            index: Self::DEFAULT_INDEX.to_string(),
            catalog_index: None,
            engine: Engine::default(),
            space_type: SpaceType::default(),
            m: Self::DEFAULT_M,
            ef_construction: Self::DEFAULT_EF_CONSTRUCTION,
            ef_search: Some(Self::DEFAULT_EF_SEARCH),
            ef_search_per_query: None,
            version: None,
            shards: None,
            replicas: None,
            refresh: None,
            visibility_timeout: Self::DEFAULT_VISIBILITY_TIMEOUT,
            request_timeout: Duration::from_secs(30),
            bulk_timeout: Duration::from_secs(120),
            retry: RetryPolicy::default(),
            batch_docs: Self::DEFAULT_BATCH_DOCS,
            batch_bytes: Self::DEFAULT_BATCH_BYTES,
            bulk_concurrency: 2,
            accept_invalid_certs: false,
        }
    }

    /// Defaults for a cluster at `url` without authentication.
    pub fn new(url: impl Into<String>) -> Result<Self> {
        Self::builder(url).build()
    }

    /// Defaults for an Amazon OpenSearch Service domain endpoint, signed with SigV4 (`es`)
    /// using the default AWS credential chain. Feature `aws-auth`.
    #[cfg(feature = "aws-auth")]
    pub fn aws(url: impl Into<String>, region: impl Into<String>) -> Result<Self> {
        Self::builder(url)
            .sigv4(AwsService::OpenSearchService, Some(region.into()))
            .build()
    }

    /// Defaults for an Amazon OpenSearch Serverless vector search collection endpoint
    /// (`https://<id>.<region>.aoss.amazonaws.com`): SigV4 `aoss` with the default AWS credential
    /// chain, [`Deployment::Serverless`] rules, faiss, and [`RefreshPolicy::None`] (writes become
    /// searchable within about a minute; [`flush`](crossmodal_core::VectorIndex::flush) waits for
    /// them). Feature `aws-auth`.
    #[cfg(feature = "aws-auth")]
    pub fn serverless(url: impl Into<String>, region: impl Into<String>) -> Result<Self> {
        Self::builder(url)
            .sigv4(AwsService::Serverless, Some(region.into()))
            .build()
    }

    /// The cluster URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// How requests authenticate.
    pub fn auth(&self) -> &OpenSearchAuth {
        &self.auth
    }

    /// Which rules the service plays by.
    pub fn deployment(&self) -> Deployment {
        self.deployment
    }

    /// Whether this is an Amazon OpenSearch Serverless collection.
    pub fn is_serverless(&self) -> bool {
        self.deployment == Deployment::Serverless
    }

    /// The vector index name.
    pub fn index(&self) -> &str {
        &self.index
    }

    /// The catalog index name (default `<index>-assets`).
    pub fn catalog_index(&self) -> String {
        self.catalog_index
            .clone()
            .unwrap_or_else(|| format!("{}-assets", self.index))
    }

    /// The k-NN engine new indexes are created with.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The space type new indexes are created with (and existing ones must have).
    pub fn space_type(&self) -> SpaceType {
        self.space_type
    }

    /// HNSW `m`.
    pub fn m(&self) -> u32 {
        self.m
    }

    /// HNSW `ef_construction`.
    pub fn ef_construction(&self) -> u32 {
        self.ef_construction
    }

    /// HNSW `ef_search`, if set.
    pub fn ef_search(&self) -> Option<u32> {
        self.ef_search
    }

    /// Whether queries carry `method_parameters.ef_search`.
    pub fn ef_search_per_query(&self) -> bool {
        self.ef_search_per_query
    }

    /// The OpenSearch version the configuration was declared for, if any.
    pub fn opensearch_version(&self) -> Option<OpenSearchVersion> {
        self.version
    }

    /// Write visibility.
    pub fn refresh(&self) -> RefreshPolicy {
        self.refresh
    }

    /// Serverless: how long `flush` and [`RefreshPolicy::WaitFor`] wait for writes to become
    /// searchable, and how long a handle remembers its own recent writes.
    pub fn visibility_timeout(&self) -> Duration {
        self.visibility_timeout
    }

    /// Time-out of one ordinary request.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// Time-out of one `_bulk` or `_delete_by_query` request.
    pub fn bulk_timeout(&self) -> Duration {
        self.bulk_timeout
    }

    /// Retry policy for temporary failures (429, 502-504, connection errors, time-outs).
    pub fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    /// Most documents in one `_bulk` request.
    pub fn batch_docs(&self) -> usize {
        self.batch_docs
    }

    /// Largest `_bulk` body in bytes.
    pub fn batch_bytes(&self) -> usize {
        self.batch_bytes
    }

    /// `_bulk` requests one upsert keeps in flight.
    pub fn bulk_concurrency(&self) -> usize {
        self.bulk_concurrency
    }

    /// Checks the engine and space type against a version the cluster reports (`Unsupported`
    /// when they do not work there), and turns the per-query `ef_search` off below 2.16 unless
    /// it was asked for explicitly (then `Unsupported` too).
    pub(crate) fn adapt_to(&mut self, version: OpenSearchVersion) -> Result<()> {
        check_engine(
            version,
            self.engine,
            self.space_type,
            ErrorKind::Unsupported,
        )?;
        if self.ef_search_per_query && !query_ef_search_supported(version) {
            if self.ef_search_per_query_explicit {
                return Err(Error::unsupported(format!(
                    "OpenSearch {version} does not take method_parameters.ef_search in queries \
                     (2.16 or later): turn ef_search_per_query off"
                ))
                .with_context("opensearch_version", version));
            }
            self.ef_search_per_query = false;
        }
        Ok(())
    }
}

/// OpenSearch's index name rules: lower case; none of `\ / * ? " < > | , # :` or space; not
/// starting with `-`, `_` or `+`; not `.` or `..`; at most 255 bytes.
pub(crate) fn check_index_name(name: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(
            Error::invalid_input(format!("invalid OpenSearch index name: {why}"))
                .with_context("index", name),
        )
    };
    if name.is_empty() || name.len() > 255 {
        return bad("must be 1 to 255 bytes");
    }
    if name == "." || name == ".." {
        return bad("cannot be . or ..");
    }
    if name.starts_with(['-', '_', '+']) {
        return bad("cannot start with -, _ or +");
    }
    if name.chars().any(|c| c.is_uppercase()) {
        return bad("must be lower case");
    }
    if name.chars().any(|c| {
        matches!(
            c,
            '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ',' | '#' | ':' | ' '
        )
    }) {
        return bad("cannot contain \\ / * ? \" < > | , # : or spaces");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_safe() {
        let c = OpenSearchConfig::new("http://127.0.0.1:9200").unwrap();
        assert_eq!(c.engine(), Engine::Faiss);
        assert_eq!(c.space_type(), SpaceType::CosineSimil);
        assert_eq!(c.refresh(), RefreshPolicy::WaitFor);
        assert_eq!(c.deployment(), Deployment::Cluster);
        assert!(c.ef_search_per_query());
        assert_eq!(c.index(), OpenSearchConfig::DEFAULT_INDEX);
        assert!(matches!(c.auth(), OpenSearchAuth::None));
    }

    #[cfg(feature = "aws-auth")]
    #[test]
    fn aws_shortcuts_sign_for_the_right_service_and_pick_the_rules() {
        let es = OpenSearchConfig::aws("https://search-x.eu-west-1.es.amazonaws.com", "eu-west-1")
            .unwrap();
        assert!(matches!(
            es.auth(),
            OpenSearchAuth::SigV4 { service: AwsService::OpenSearchService, region: Some(r) } if r == "eu-west-1"
        ));
        assert_eq!(es.deployment(), Deployment::Cluster);
        let aoss =
            OpenSearchConfig::serverless("https://x.us-east-1.aoss.amazonaws.com", "us-east-1")
                .unwrap();
        assert!(matches!(
            aoss.auth(),
            OpenSearchAuth::SigV4 {
                service: AwsService::Serverless,
                ..
            }
        ));
        assert_eq!(aoss.deployment(), Deployment::Serverless);
        assert_eq!(aoss.refresh(), RefreshPolicy::None);
        assert_eq!(aoss.engine(), Engine::Faiss);
        assert_eq!(AwsService::Serverless.signing_name(), "aoss");
        assert_eq!(AwsService::OpenSearchService.signing_name(), "es");
    }

    #[cfg(feature = "aws-auth")]
    #[test]
    fn serverless_rules_are_checked_when_building() {
        let base = || {
            OpenSearchConfig::builder("https://x.us-east-1.aoss.amazonaws.com")
                .sigv4(AwsService::Serverless, Some("us-east-1".into()))
        };
        for (b, why) in [
            (base().engine(Engine::Lucene), "faiss engine only"),
            (base().refresh(RefreshPolicy::Immediate), "no refresh"),
            (base().shards(Some(2), None), "shards"),
            (
                base().deployment(Deployment::Cluster),
                "Deployment::Serverless",
            ),
            (
                OpenSearchConfig::builder("https://x")
                    .sigv4(AwsService::OpenSearchService, None)
                    .deployment(Deployment::Serverless),
                "signed for aoss",
            ),
        ] {
            let e = b.build().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
            assert!(e.message().contains(why), "{e}");
        }
        // What Serverless does take: client-side waiting, faiss, innerproduct.
        let c = base()
            .refresh(RefreshPolicy::WaitFor)
            .space_type(SpaceType::InnerProduct)
            .build()
            .unwrap();
        assert_eq!(c.refresh(), RefreshPolicy::WaitFor);
        // A signing proxy in front of a collection: Serverless rules without SigV4.
        let proxied = OpenSearchConfig::builder("http://127.0.0.1:8080")
            .deployment(Deployment::Serverless)
            .build()
            .unwrap();
        assert!(proxied.is_serverless());
    }

    #[test]
    fn a_declared_version_is_checked_against_the_floors() {
        let at =
            |v: &str| OpenSearchConfig::builder("http://h").opensearch_version(v.parse().unwrap());
        // The defaults (faiss + cosinesimil + per-query ef) need 2.19.
        assert!(at("2.19").build().is_ok());
        let e = at("2.17").build().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.message().contains("2.19"), "{e}");
        // 2.13-2.18: faiss innerproduct; the per-query ef from 2.16 only.
        assert!(
            at("2.17")
                .space_type(SpaceType::InnerProduct)
                .build()
                .is_ok()
        );
        let c = at("2.14")
            .space_type(SpaceType::InnerProduct)
            .build()
            .unwrap();
        assert!(!c.ef_search_per_query(), "turned off below 2.16");
        let e = at("2.14")
            .space_type(SpaceType::InnerProduct)
            .ef_search_per_query(true)
            .build()
            .unwrap_err();
        assert!(e.message().contains("2.16"), "{e}");
        // Before 2.13: lucene with cosinesimil; lucene needs 2.4 for efficient filtering.
        assert!(
            at("2.12")
                .space_type(SpaceType::InnerProduct)
                .build()
                .is_err()
        );
        assert!(at("2.11").engine(Engine::Lucene).build().is_ok());
        assert!(
            at("2.12")
                .engine(Engine::Lucene)
                .space_type(SpaceType::InnerProduct)
                .build()
                .is_err()
        );
        assert!(at("2.3").engine(Engine::Lucene).build().is_err());
    }

    #[test]
    fn bad_settings_are_invalid_input() {
        for b in [
            OpenSearchConfig::builder("not a url"),
            OpenSearchConfig::builder("ftp://host"),
            OpenSearchConfig::builder("http://h").index("Upper"),
            OpenSearchConfig::builder("http://h").index("_x"),
            OpenSearchConfig::builder("http://h").index("a b"),
            OpenSearchConfig::builder("http://h")
                .index("a")
                .catalog_index("a"),
            OpenSearchConfig::builder("http://h").hnsw(1, 100),
            OpenSearchConfig::builder("http://h").ef_search(0),
            OpenSearchConfig::builder("http://h").batch(0, 1 << 20),
            OpenSearchConfig::builder("http://h").visibility_timeout(Duration::ZERO),
        ] {
            assert_eq!(b.build().unwrap_err().kind(), ErrorKind::InvalidInput);
        }
    }

    #[test]
    fn score_conversions_round_trip() {
        for space in [SpaceType::CosineSimil, SpaceType::InnerProduct] {
            for cos in [-1.0, -0.7, -0.1, 0.0, 0.3, 0.99, 1.0] {
                let s = space.score_from_cosine(cos);
                assert!((f64::from(space.cosine_from_score(s)) - cos).abs() < 1e-6);
            }
        }
        assert_eq!(SpaceType::CosineSimil.cosine_from_score(1.2), 1.0);
    }
}
