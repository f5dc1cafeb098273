//! [`OpenSearchConfigBuilder`]: every setting, and the checks of [`build`](OpenSearchConfigBuilder::build).

use super::*;

/// Builds an [`OpenSearchConfig`]; [`build`](Self::build) checks it.
#[derive(Debug, Clone)]
#[must_use]
pub struct OpenSearchConfigBuilder {
    pub(super) url: String,
    pub(super) auth: OpenSearchAuth,
    pub(super) deployment: Option<Deployment>,
    pub(super) index: String,
    pub(super) catalog_index: Option<String>,
    pub(super) engine: Engine,
    pub(super) space_type: SpaceType,
    pub(super) m: u32,
    pub(super) ef_construction: u32,
    pub(super) ef_search: Option<u32>,
    pub(super) ef_search_per_query: Option<bool>,
    pub(super) version: Option<OpenSearchVersion>,
    pub(super) shards: Option<u32>,
    pub(super) replicas: Option<u32>,
    pub(super) refresh: Option<RefreshPolicy>,
    pub(super) visibility_timeout: Duration,
    pub(super) request_timeout: Duration,
    pub(super) bulk_timeout: Duration,
    pub(super) retry: RetryPolicy,
    pub(super) batch_docs: usize,
    pub(super) batch_bytes: usize,
    pub(super) bulk_concurrency: usize,
    pub(super) accept_invalid_certs: bool,
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
