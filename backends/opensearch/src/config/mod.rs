//! [`OpenSearchConfig`]: where the cluster is, how to sign in, which rules it plays by, and how
//! the index is built.

mod auth;
mod kinds;

use std::time::Duration;

use crossmodal_core::{Error, ErrorKind, Result, RetryPolicy};
use url::Url;

pub use auth::{AwsService, OpenSearchAuth};
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

/// Builds an [`OpenSearchConfig`]; [`build`](Self::build) checks it.
#[derive(Debug, Clone)]
#[must_use]
pub struct OpenSearchConfigBuilder {
    url: String,
    auth: OpenSearchAuth,
    deployment: Option<Deployment>,
    index: String,
    catalog_index: Option<String>,
    engine: Engine,
    space_type: SpaceType,
    m: u32,
    ef_construction: u32,
    ef_search: Option<u32>,
    ef_search_per_query: Option<bool>,
    version: Option<OpenSearchVersion>,
    shards: Option<u32>,
    replicas: Option<u32>,
    refresh: Option<RefreshPolicy>,
    visibility_timeout: Duration,
    request_timeout: Duration,
    bulk_timeout: Duration,
    retry: RetryPolicy,
    batch_docs: usize,
    batch_bytes: usize,
    bulk_concurrency: usize,
    accept_invalid_certs: bool,
}

impl OpenSearchConfigBuilder {
    /// Authentication (default none).
    pub fn auth(mut self, auth: OpenSearchAuth) -> Self {
        self.auth = auth;
        self
    }

    /// HTTP basic authentication.
    pub fn basic_auth(self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.auth(OpenSearchAuth::Basic {
            username: username.into(),
            password: password.into(),
        })
    }

    /// SigV4 signing for `service` with the default AWS credential chain; `region` `None` takes
    /// the region from the environment or profile. Signing for [`AwsService::Serverless`] also
    /// selects [`Deployment::Serverless`]. Feature `aws-auth`.
    #[cfg(feature = "aws-auth")]
    pub fn sigv4(self, service: AwsService, region: Option<String>) -> Self {
        self.auth(OpenSearchAuth::SigV4 { service, region })
    }

    /// SigV4 signing for `service` with credentials and region from `sdk_config` (build it with
    /// the re-exported [`aws_config`](crate::aws_config)). Signing for
    /// [`AwsService::Serverless`] also selects [`Deployment::Serverless`]. Feature `aws-auth`.
    #[cfg(feature = "aws-auth")]
    pub fn sigv4_with_config(self, service: AwsService, sdk_config: aws_config::SdkConfig) -> Self {
        self.auth(OpenSearchAuth::SigV4WithConfig {
            service,
            sdk_config: Box::new(sdk_config),
        })
    }

    /// Which rules the service plays by. Default: [`Deployment::Serverless`] when requests are
    /// signed for `aoss`, [`Deployment::Cluster`] otherwise; set it for a Serverless collection
    /// reached through a signing proxy.
    pub fn deployment(mut self, deployment: Deployment) -> Self {
        self.deployment = Some(deployment);
        self
    }

    /// The vector index name (default [`OpenSearchConfig::DEFAULT_INDEX`]).
    pub fn index(mut self, name: impl Into<String>) -> Self {
        self.index = name.into();
        self
    }

    /// The catalog index name (default `<index>-assets`).
    pub fn catalog_index(mut self, name: impl Into<String>) -> Self {
        self.catalog_index = Some(name.into());
        self
    }

    /// The k-NN engine for new indexes (default faiss; Serverless takes faiss only).
    pub fn engine(mut self, engine: Engine) -> Self {
        self.engine = engine;
        self
    }

    /// The space type (default `cosinesimil`).
    pub fn space_type(mut self, space_type: SpaceType) -> Self {
        self.space_type = space_type;
        self
    }

    /// HNSW `m` (graph degree, default 16) and `ef_construction` (default 128).
    pub fn hnsw(mut self, m: u32, ef_construction: u32) -> Self {
        self.m = m;
        self.ef_construction = ef_construction;
        self
    }

    /// HNSW `ef_search` (default 100). With faiss it goes into the mapping's
    /// `method.parameters.ef_search` (faiss ignores the index setting
    /// `index.knn.algo_param.ef_search`, which is nmslib's); lucene takes no ef in its mapping.
    /// Unless turned off with [`ef_search_per_query`](Self::ef_search_per_query), every query
    /// also carries `method_parameters.ef_search` (at least `k`) on OpenSearch 2.16 or later.
    pub fn ef_search(mut self, ef_search: u32) -> Self {
        self.ef_search = Some(ef_search);
        self
    }

    /// Leaves `ef_search` to the cluster's defaults.
    pub fn no_ef_search(mut self) -> Self {
        self.ef_search = None;
        self
    }

    /// Whether queries carry `method_parameters.ef_search` (needs OpenSearch 2.16 or later).
    /// Default: on, except on a cluster known (declared with
    /// [`opensearch_version`](Self::opensearch_version) or reported at connect) to be older.
    pub fn ef_search_per_query(mut self, on: bool) -> Self {
        self.ef_search_per_query = Some(on);
        self
    }

    /// The OpenSearch version of the cluster. [`build`](Self::build) then refuses engines and
    /// space types that do not work there (efficient filtering: lucene 2.4, faiss 2.9; lucene
    /// `innerproduct` 2.13; faiss `innerproduct` 2.13; faiss `cosinesimil` 2.19) and per-query
    /// `ef_search` before 2.16. Without it, [`OpenSearchIndex::connect`](crate::OpenSearchIndex::connect)
    /// checks the version the cluster reports (`GET /`) the same way.
    pub fn opensearch_version(mut self, version: OpenSearchVersion) -> Self {
        self.version = Some(version);
        self
    }

    /// Primary shards and replicas of new indexes (default: the cluster's). Not for
    /// Serverless, which manages them.
    pub fn shards(mut self, shards: Option<u32>, replicas: Option<u32>) -> Self {
        self.shards = shards;
        self.replicas = replicas;
        self
    }

    /// Write visibility (default [`RefreshPolicy::WaitFor`] on a cluster,
    /// [`RefreshPolicy::None`] on Serverless).
    pub fn refresh(mut self, refresh: RefreshPolicy) -> Self {
        self.refresh = Some(refresh);
        self
    }

    /// Serverless: how long [`flush`](crossmodal_core::VectorIndex::flush) and
    /// [`RefreshPolicy::WaitFor`] wait for this handle's writes to become searchable before
    /// failing with `Timeout`, and how long a handle remembers its own recent writes (so it can
    /// replace and delete documents the service does not show yet). Default 120 s.
    pub fn visibility_timeout(mut self, timeout: Duration) -> Self {
        self.visibility_timeout = timeout;
        self
    }

    /// Time-out of one ordinary request, from connecting to the end of the body (default 30 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Time-out of one `_bulk` or `_delete_by_query` request (default 120 s).
    pub fn bulk_timeout(mut self, timeout: Duration) -> Self {
        self.bulk_timeout = timeout;
        self
    }

    /// Retry policy for temporary failures (default [`RetryPolicy::default`]).
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Most documents (default 500) and bytes (default 8 MiB) in one `_bulk` request.
    pub fn batch(mut self, docs: usize, bytes: usize) -> Self {
        self.batch_docs = docs;
        self.batch_bytes = bytes;
        self
    }

    /// `_bulk` requests one upsert keeps in flight (default 2; at least 1). With
    /// [`RefreshPolicy::WaitFor`] each request waits for a refresh, so overlapping them keeps a
    /// large upsert from waiting once per batch.
    pub fn bulk_concurrency(mut self, n: usize) -> Self {
        self.bulk_concurrency = n.max(1);
        self
    }

    /// Accepts any TLS certificate (a local cluster with the demo's self-signed certificate).
    /// Never for a cluster reached over a network you do not control.
    pub fn danger_accept_invalid_certs(mut self, on: bool) -> Self {
        self.accept_invalid_certs = on;
        self
    }

    /// Checks the settings and returns the configuration. `InvalidInput` for a URL that does
    /// not parse or is not http(s), an index name OpenSearch would refuse, HNSW parameters out
    /// of range, an empty batch, an engine or space type the declared version lacks, and for
    /// Serverless: lucene, `RefreshPolicy::Immediate`, shard counts, or `es` signing.
    pub fn build(self) -> Result<OpenSearchConfig> {
        let url = Url::parse(self.url.trim()).map_err(|e| {
            Error::invalid_input(format!("OpenSearch URL does not parse: {e}"))
                .with_context("url", &self.url)
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(
                Error::invalid_input("OpenSearch URL must start with http:// or https://")
                    .with_context("url", &self.url),
            );
        }
        let signed_for = self.auth.aws_service();
        let deployment = match (self.deployment, signed_for) {
            (Some(d), _) => d,
            (None, Some(AwsService::Serverless)) => Deployment::Serverless,
            (None, _) => Deployment::Cluster,
        };
        match (deployment, signed_for) {
            (Deployment::Cluster, Some(AwsService::Serverless)) => {
                return Err(Error::invalid_input(
                    "requests signed for aoss go to an Amazon OpenSearch Serverless collection, \
                     which plays by Deployment::Serverless rules",
                ));
            }
            (Deployment::Serverless, Some(AwsService::OpenSearchService)) => {
                return Err(Error::invalid_input(
                    "Amazon OpenSearch Serverless collections are signed for aoss, not es",
                ));
            }
            _ => {}
        }
        let serverless = deployment == Deployment::Serverless;
        let refresh = self.refresh.unwrap_or(if serverless {
            RefreshPolicy::None
        } else {
            RefreshPolicy::WaitFor
        });
        let config = OpenSearchConfig {
            url,
            auth: self.auth,
            deployment,
            index: self.index,
            catalog_index: self.catalog_index,
            engine: self.engine,
            space_type: self.space_type,
            m: self.m,
            ef_construction: self.ef_construction,
            ef_search: self.ef_search,
            ef_search_per_query: self
                .ef_search_per_query
                .unwrap_or_else(|| self.version.is_none_or(query_ef_search_supported)),
            ef_search_per_query_explicit: self.ef_search_per_query.is_some(),
            version: self.version,
            shards: self.shards,
            replicas: self.replicas,
            refresh,
            visibility_timeout: self.visibility_timeout,
            request_timeout: self.request_timeout,
            bulk_timeout: self.bulk_timeout,
            retry: self.retry,
            batch_docs: self.batch_docs,
            batch_bytes: self.batch_bytes,
            bulk_concurrency: self.bulk_concurrency,
            accept_invalid_certs: self.accept_invalid_certs,
        };
        check_index_name(&config.index)?;
        check_index_name(&config.catalog_index())?;
        if config.catalog_index() == config.index {
            return Err(Error::invalid_input(
                "the catalog index must differ from the vector index",
            ));
        }
        if !(2..=100).contains(&config.m) {
            return Err(Error::invalid_input(format!(
                "HNSW m must be between 2 and 100, got {}",
                config.m
            )));
        }
        if config.ef_construction < 2 {
            return Err(Error::invalid_input(format!(
                "HNSW ef_construction must be at least 2, got {}",
                config.ef_construction
            )));
        }
        if config.ef_search == Some(0) {
            return Err(Error::invalid_input("HNSW ef_search must be at least 1"));
        }
        if config.batch_docs == 0 || config.batch_bytes < 1024 {
            return Err(Error::invalid_input(
                "a bulk batch must hold at least one document and 1 KiB",
            ));
        }
        if config.request_timeout.is_zero()
            || config.bulk_timeout.is_zero()
            || config.visibility_timeout.is_zero()
        {
            return Err(Error::invalid_input("time-outs must be positive"));
        }
        if let Some(version) = config.version {
            check_engine(
                version,
                config.engine,
                config.space_type,
                ErrorKind::InvalidInput,
            )?;
            if config.ef_search_per_query && !query_ef_search_supported(version) {
                return Err(Error::invalid_input(format!(
                    "OpenSearch {version} does not take method_parameters.ef_search in queries \
                     (2.16 or later): turn ef_search_per_query off"
                ))
                .with_context("opensearch_version", version));
            }
        }
        if serverless {
            if config.engine != Engine::Faiss {
                return Err(Error::invalid_input(format!(
                    "Amazon OpenSearch Serverless vector collections take the faiss engine only \
                     ({} is refused there)",
                    config.engine
                )));
            }
            if config.refresh == RefreshPolicy::Immediate {
                return Err(Error::invalid_input(
                    "Amazon OpenSearch Serverless has no refresh: use RefreshPolicy::WaitFor \
                     (the client waits until writes are searchable) or RefreshPolicy::None",
                ));
            }
            if config.shards.is_some() || config.replicas.is_some() {
                return Err(Error::invalid_input(
                    "Amazon OpenSearch Serverless manages shards and replicas itself",
                ));
            }
        }
        Ok(config)
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
