//! [`OpenSearchConfig`]: where the cluster is, how to sign in, and how the index is built.

use std::fmt;
use std::time::Duration;

use crossmodal_core::{Error, Result, RetryPolicy};
use url::Url;

/// The k-NN library OpenSearch builds the HNSW graphs with.
///
/// `nmslib` is not offered: OpenSearch 3.0 and later refuse to create new `nmslib` indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Engine {
    /// Facebook's faiss (C++). The OpenSearch default; efficient filtering from 2.9;
    /// `cosinesimil` from 2.19 (use [`SpaceType::InnerProduct`] before that).
    #[default]
    Faiss,
    /// Lucene's own HNSW (Java). Efficient filtering from 2.4, `cosinesimil` on every version.
    Lucene,
}

impl Engine {
    /// The name OpenSearch uses in mappings (`faiss`, `lucene`).
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Faiss => "faiss",
            Engine::Lucene => "lucene",
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How OpenSearch compares vectors. Either way the index reports cosine similarity in
/// [`Hit::score`](crossmodal_core::Hit::score).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SpaceType {
    /// `cosinesimil`: score `(1 + cos) / 2` (OpenSearch >= 2.19 for every engine; lucene on
    /// every version). The safe default.
    #[default]
    CosineSimil,
    /// `innerproduct` on vectors this crate normalises to unit length, so the inner product is
    /// the cosine. For faiss on clusters older than 2.19, where faiss has no `cosinesimil`.
    /// Score `1 + ip` for `ip >= 0`, `1 / (1 - ip)` below.
    InnerProduct,
}

impl SpaceType {
    /// The name OpenSearch uses in mappings (`cosinesimil`, `innerproduct`).
    pub fn as_str(self) -> &'static str {
        match self {
            SpaceType::CosineSimil => "cosinesimil",
            SpaceType::InnerProduct => "innerproduct",
        }
    }

    /// Cosine similarity from the `_score` OpenSearch reports for this space (OpenSearch >= 2.19
    /// formulas; for unit vectors the inner product is the cosine), clamped to [-1, 1].
    ///
    /// ```
    /// use crossmodal_opensearch::SpaceType;
    /// assert_eq!(SpaceType::CosineSimil.cosine_from_score(1.0), 1.0);
    /// assert_eq!(SpaceType::CosineSimil.cosine_from_score(0.25), -0.5);
    /// assert_eq!(SpaceType::InnerProduct.cosine_from_score(1.5), 0.5);
    /// assert_eq!(SpaceType::InnerProduct.cosine_from_score(0.5), -1.0);
    /// ```
    pub fn cosine_from_score(self, score: f64) -> f32 {
        let cos = match self {
            SpaceType::CosineSimil => 2.0 * score - 1.0,
            SpaceType::InnerProduct if score >= 1.0 => score - 1.0,
            SpaceType::InnerProduct if score > 0.0 => 1.0 - 1.0 / score,
            SpaceType::InnerProduct => -1.0,
        };
        cos.clamp(-1.0, 1.0) as f32
    }

    /// The `_score` OpenSearch reports for a cosine (the inverse of
    /// [`cosine_from_score`](Self::cosine_from_score)); used for `min_score`-style thresholds.
    pub fn score_from_cosine(self, cos: f64) -> f64 {
        match self {
            SpaceType::CosineSimil => (1.0 + cos) / 2.0,
            SpaceType::InnerProduct if cos >= 0.0 => 1.0 + cos,
            SpaceType::InnerProduct => 1.0 / (1.0 - cos),
        }
    }
}

impl fmt::Display for SpaceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When writes become visible to searches (the `refresh` parameter of `_bulk`, `_doc` and
/// `_delete_by_query`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RefreshPolicy {
    /// `refresh=wait_for`: the call returns once the write is searchable (read-your-writes; the
    /// default, what the `VectorIndex` contract expects). `_delete_by_query` takes only a
    /// boolean, so deletes use `refresh=true`.
    #[default]
    WaitFor,
    /// `refresh=true`: refresh the affected shards at once. Costly under load.
    Immediate,
    /// No refresh parameter: writes become searchable at the next periodic refresh (1 s by
    /// default). Fastest bulk loading; call [`VectorIndex::flush`](crossmodal_core::VectorIndex::flush)
    /// before searching.
    None,
}

impl RefreshPolicy {
    /// The value of `refresh` for `_bulk` and `_doc`, if any.
    pub(crate) fn write_param(self) -> Option<opensearch::params::Refresh> {
        match self {
            RefreshPolicy::WaitFor => Some(opensearch::params::Refresh::WaitFor),
            RefreshPolicy::Immediate => Some(opensearch::params::Refresh::True),
            RefreshPolicy::None => None,
        }
    }

    /// The value of `refresh` for `_delete_by_query` (boolean only).
    pub(crate) fn delete_by_query_param(self) -> bool {
        !matches!(self, RefreshPolicy::None)
    }
}

/// Which AWS service a SigV4 signature is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AwsService {
    /// Amazon OpenSearch Service domains (service name `es`).
    OpenSearchService,
    /// Amazon OpenSearch Serverless collections (service name `aoss`).
    Serverless,
}

impl AwsService {
    /// The SigV4 service name: `es` or `aoss`.
    pub fn signing_name(self) -> &'static str {
        match self {
            AwsService::OpenSearchService => "es",
            AwsService::Serverless => "aoss",
        }
    }
}

/// How requests authenticate.
#[derive(Clone, Default)]
pub enum OpenSearchAuth {
    /// No authentication (a local cluster, a test server).
    #[default]
    None,
    /// HTTP basic authentication (the security plugin's internal users).
    Basic {
        /// User name.
        username: String,
        /// Password (never printed by `Debug`).
        password: String,
    },
    /// AWS SigV4 with credentials from the default provider chain (environment, profile, SSO,
    /// instance or task role), for Amazon OpenSearch Service or Serverless.
    SigV4 {
        /// `es` or `aoss`.
        service: AwsService,
        /// The region; `None` takes it from the environment or profile.
        region: Option<String>,
    },
    /// AWS SigV4 with an already loaded SDK configuration (credentials and region).
    SigV4WithConfig {
        /// `es` or `aoss`.
        service: AwsService,
        /// Supplies credentials and region (boxed: it is large).
        sdk_config: Box<aws_config::SdkConfig>,
    },
}

impl fmt::Debug for OpenSearchAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenSearchAuth::None => f.write_str("None"),
            OpenSearchAuth::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            OpenSearchAuth::SigV4 { service, region } => f
                .debug_struct("SigV4")
                .field("service", &service.signing_name())
                .field("region", region)
                .finish(),
            OpenSearchAuth::SigV4WithConfig {
                service,
                sdk_config,
            } => f
                .debug_struct("SigV4WithConfig")
                .field("service", &service.signing_name())
                .field("region", &sdk_config.region())
                .finish_non_exhaustive(),
        }
    }
}

/// Everything [`OpenSearchIndex`](crate::OpenSearchIndex) and
/// [`OpenSearchCatalog`](crate::OpenSearchCatalog) need: the cluster, authentication, the index
/// layout and HNSW parameters, write visibility, time-outs and retries.
///
/// Build one with [`OpenSearchConfig::builder`] (or the [`new`](Self::new),
/// [`aws`](Self::aws) and [`serverless`](Self::serverless) shortcuts):
///
/// ```
/// use std::time::Duration;
/// use crossmodal_opensearch::{Engine, OpenSearchConfig, RefreshPolicy};
///
/// let config = OpenSearchConfig::builder("https://localhost:9200")
///     .basic_auth("admin", "secret")
///     .index("media-vectors")
///     .engine(Engine::Lucene)
///     .hnsw(24, 256)
///     .ef_search(128)
///     .refresh(RefreshPolicy::WaitFor)
///     .request_timeout(Duration::from_secs(10))
///     .build()
///     .unwrap();
/// assert_eq!(config.index(), "media-vectors");
/// assert_eq!(config.catalog_index(), "media-vectors-assets");
/// assert!(!format!("{config:?}").contains("secret"));
/// ```
#[derive(Debug, Clone)]
pub struct OpenSearchConfig {
    pub(crate) url: Url,
    pub(crate) auth: OpenSearchAuth,
    pub(crate) index: String,
    pub(crate) catalog_index: Option<String>,
    pub(crate) engine: Engine,
    pub(crate) space_type: SpaceType,
    pub(crate) m: u32,
    pub(crate) ef_construction: u32,
    pub(crate) ef_search: Option<u32>,
    pub(crate) ef_search_per_query: bool,
    pub(crate) shards: Option<u32>,
    pub(crate) replicas: Option<u32>,
    pub(crate) refresh: RefreshPolicy,
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
    /// Default number of documents in one `_bulk` request.
    pub const DEFAULT_BATCH_DOCS: usize = 500;
    /// Default largest `_bulk` body, bytes (Amazon OpenSearch Serverless takes 10 MiB at most).
    pub const DEFAULT_BATCH_BYTES: usize = 8 * 1024 * 1024;

    /// A builder for a cluster at `url` (`http://` or `https://`, with an optional path prefix).
    pub fn builder(url: impl Into<String>) -> OpenSearchConfigBuilder {
        OpenSearchConfigBuilder {
            url: url.into(),
            config: OpenSearchConfig {
                url: Url::parse("http://localhost:9200").expect("static URL parses"),
                auth: OpenSearchAuth::None,
                index: Self::DEFAULT_INDEX.to_string(),
                catalog_index: None,
                engine: Engine::default(),
                space_type: SpaceType::default(),
                m: Self::DEFAULT_M,
                ef_construction: Self::DEFAULT_EF_CONSTRUCTION,
                ef_search: Some(Self::DEFAULT_EF_SEARCH),
                ef_search_per_query: true,
                shards: None,
                replicas: None,
                refresh: RefreshPolicy::default(),
                request_timeout: Duration::from_secs(30),
                bulk_timeout: Duration::from_secs(120),
                retry: RetryPolicy::default(),
                batch_docs: Self::DEFAULT_BATCH_DOCS,
                batch_bytes: Self::DEFAULT_BATCH_BYTES,
                bulk_concurrency: 2,
                accept_invalid_certs: false,
            },
        }
    }

    /// Defaults for a cluster at `url` without authentication.
    pub fn new(url: impl Into<String>) -> Result<Self> {
        Self::builder(url).build()
    }

    /// Defaults for an Amazon OpenSearch Service domain endpoint, signed with SigV4 (`es`)
    /// using the default AWS credential chain.
    pub fn aws(url: impl Into<String>, region: impl Into<String>) -> Result<Self> {
        Self::builder(url)
            .sigv4(AwsService::OpenSearchService, Some(region.into()))
            .build()
    }

    /// Defaults for an Amazon OpenSearch Serverless collection endpoint, signed with SigV4
    /// (`aoss`) using the default AWS credential chain.
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

    /// Write visibility.
    pub fn refresh(&self) -> RefreshPolicy {
        self.refresh
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
}

/// Builds an [`OpenSearchConfig`]; [`build`](Self::build) checks it.
#[derive(Debug, Clone)]
#[must_use]
pub struct OpenSearchConfigBuilder {
    url: String,
    config: OpenSearchConfig,
}

impl OpenSearchConfigBuilder {
    /// Authentication (default none).
    pub fn auth(mut self, auth: OpenSearchAuth) -> Self {
        self.config.auth = auth;
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
    /// the region from the environment or profile.
    pub fn sigv4(self, service: AwsService, region: Option<String>) -> Self {
        self.auth(OpenSearchAuth::SigV4 { service, region })
    }

    /// SigV4 signing for `service` with credentials and region from `sdk_config`.
    pub fn sigv4_with_config(self, service: AwsService, sdk_config: aws_config::SdkConfig) -> Self {
        self.auth(OpenSearchAuth::SigV4WithConfig {
            service,
            sdk_config: Box::new(sdk_config),
        })
    }

    /// The vector index name (default [`OpenSearchConfig::DEFAULT_INDEX`]).
    pub fn index(mut self, name: impl Into<String>) -> Self {
        self.config.index = name.into();
        self
    }

    /// The catalog index name (default `<index>-assets`).
    pub fn catalog_index(mut self, name: impl Into<String>) -> Self {
        self.config.catalog_index = Some(name.into());
        self
    }

    /// The k-NN engine for new indexes (default faiss).
    pub fn engine(mut self, engine: Engine) -> Self {
        self.config.engine = engine;
        self
    }

    /// The space type (default `cosinesimil`).
    pub fn space_type(mut self, space_type: SpaceType) -> Self {
        self.config.space_type = space_type;
        self
    }

    /// HNSW `m` (graph degree, default 16) and `ef_construction` (default 128).
    pub fn hnsw(mut self, m: u32, ef_construction: u32) -> Self {
        self.config.m = m;
        self.config.ef_construction = ef_construction;
        self
    }

    /// HNSW `ef_search` (default 100): the `index.knn.algo_param.ef_search` setting of new
    /// indexes and, unless turned off with [`ef_search_per_query`](Self::ef_search_per_query),
    /// `method_parameters.ef_search` of every query (at least `k`).
    pub fn ef_search(mut self, ef_search: u32) -> Self {
        self.config.ef_search = Some(ef_search);
        self
    }

    /// Leaves `ef_search` to the cluster's defaults.
    pub fn no_ef_search(mut self) -> Self {
        self.config.ef_search = None;
        self
    }

    /// Whether queries carry `method_parameters.ef_search` (default true; needs OpenSearch
    /// 2.16 or later, so turn it off for older clusters).
    pub fn ef_search_per_query(mut self, on: bool) -> Self {
        self.config.ef_search_per_query = on;
        self
    }

    /// Primary shards and replicas of new indexes (default: the cluster's; leave unset for
    /// Amazon OpenSearch Serverless, which manages them).
    pub fn shards(mut self, shards: Option<u32>, replicas: Option<u32>) -> Self {
        self.config.shards = shards;
        self.config.replicas = replicas;
        self
    }

    /// Write visibility (default [`RefreshPolicy::WaitFor`]).
    pub fn refresh(mut self, refresh: RefreshPolicy) -> Self {
        self.config.refresh = refresh;
        self
    }

    /// Time-out of one ordinary request, from connecting to the end of the body (default 30 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.config.request_timeout = timeout;
        self
    }

    /// Time-out of one `_bulk` or `_delete_by_query` request (default 120 s).
    pub fn bulk_timeout(mut self, timeout: Duration) -> Self {
        self.config.bulk_timeout = timeout;
        self
    }

    /// Retry policy for temporary failures (default [`RetryPolicy::default`]).
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.config.retry = retry;
        self
    }

    /// Most documents (default 500) and bytes (default 8 MiB) in one `_bulk` request.
    pub fn batch(mut self, docs: usize, bytes: usize) -> Self {
        self.config.batch_docs = docs;
        self.config.batch_bytes = bytes;
        self
    }

    /// `_bulk` requests one upsert keeps in flight (default 2; at least 1). With
    /// [`RefreshPolicy::WaitFor`] each request waits for a refresh, so overlapping them keeps a
    /// large upsert from waiting once per batch.
    pub fn bulk_concurrency(mut self, n: usize) -> Self {
        self.config.bulk_concurrency = n.max(1);
        self
    }

    /// Accepts any TLS certificate (a local cluster with the demo's self-signed certificate).
    /// Never for a cluster reached over a network you do not control.
    pub fn danger_accept_invalid_certs(mut self, on: bool) -> Self {
        self.config.accept_invalid_certs = on;
        self
    }

    /// Checks the settings and returns the configuration. `InvalidInput` for a URL that does
    /// not parse or is not http(s), an index name OpenSearch would refuse, HNSW parameters out
    /// of range or an empty batch.
    pub fn build(self) -> Result<OpenSearchConfig> {
        let mut config = self.config;
        config.url = Url::parse(self.url.trim()).map_err(|e| {
            Error::invalid_input(format!("OpenSearch URL does not parse: {e}"))
                .with_context("url", &self.url)
        })?;
        if !matches!(config.url.scheme(), "http" | "https") {
            return Err(
                Error::invalid_input("OpenSearch URL must start with http:// or https://")
                    .with_context("url", &self.url),
            );
        }
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
        if config.request_timeout.is_zero() || config.bulk_timeout.is_zero() {
            return Err(Error::invalid_input("time-outs must be positive"));
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
    use crossmodal_core::ErrorKind;

    #[test]
    fn defaults_are_safe() {
        let c = OpenSearchConfig::new("http://127.0.0.1:9200").unwrap();
        assert_eq!(c.engine(), Engine::Faiss);
        assert_eq!(c.space_type(), SpaceType::CosineSimil);
        assert_eq!(c.refresh(), RefreshPolicy::WaitFor);
        assert_eq!(c.index(), OpenSearchConfig::DEFAULT_INDEX);
        assert!(matches!(c.auth(), OpenSearchAuth::None));
    }

    #[test]
    fn aws_shortcuts_sign_for_the_right_service() {
        let es = OpenSearchConfig::aws("https://search-x.eu-west-1.es.amazonaws.com", "eu-west-1")
            .unwrap();
        assert!(matches!(
            es.auth(),
            OpenSearchAuth::SigV4 { service: AwsService::OpenSearchService, region: Some(r) } if r == "eu-west-1"
        ));
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
        assert_eq!(AwsService::Serverless.signing_name(), "aoss");
        assert_eq!(AwsService::OpenSearchService.signing_name(), "es");
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
