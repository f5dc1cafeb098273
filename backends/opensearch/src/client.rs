//! The connection both the index and the catalog use: an `opensearch` client plus the retry
//! policy and time-outs, and one way of sending a request and reading its answer.

use std::future::Future;
use std::time::Duration;

use crossmodal_core::{Error, Result, RetryPolicy};
use opensearch::OpenSearch;
use opensearch::auth::Credentials;
use opensearch::cert::CertificateValidation;
use opensearch::http::response::Response;
use opensearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use serde_json::Value;

use crate::config::{OpenSearchAuth, OpenSearchConfig};
use crate::error::{http_error, status_is_temporary, transport_error};

/// A client with the configuration's authentication, time-outs and retry policy.
#[derive(Debug, Clone)]
pub(crate) struct Conn {
    pub(crate) client: OpenSearch,
    pub(crate) retry: RetryPolicy,
    pub(crate) bulk_timeout: Duration,
}

/// A response that is not a temporary failure: its status and body.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    /// The body parsed as JSON (`Null` when empty; `None` when it is not JSON).
    pub(crate) body: Option<Value>,
    pub(crate) text: String,
}

impl Reply {
    /// Whether the status is 2xx.
    pub(crate) fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The JSON body of a 2xx response; any other status becomes an error of the right kind.
    pub(crate) fn ok(self, op: &'static str) -> Result<Value> {
        if !self.is_success() {
            return Err(http_error(op, self.status, &self.text));
        }
        self.body.ok_or_else(|| {
            Error::backend(format!(
                "OpenSearch {op} answered HTTP {} with a body that is not JSON",
                self.status
            ))
            .with_context("operation", op)
        })
    }

    /// The error this (failed) response stands for.
    pub(crate) fn error(&self, op: &'static str) -> Error {
        http_error(op, self.status, &self.text)
    }
}

impl Conn {
    /// Builds the client: single node, the configured authentication (loading AWS credentials
    /// for SigV4), the request time-out.
    pub(crate) async fn new(config: &OpenSearchConfig) -> Result<Conn> {
        let pool = SingleNodeConnectionPool::new(config.url.clone());
        let mut builder = TransportBuilder::new(pool).timeout(config.request_timeout);
        if config.accept_invalid_certs {
            builder = builder.cert_validation(CertificateValidation::None);
        }
        match &config.auth {
            OpenSearchAuth::None => {}
            OpenSearchAuth::Basic { username, password } => {
                builder = builder.auth(Credentials::Basic(username.clone(), password.clone()));
            }
            #[cfg(feature = "aws-auth")]
            OpenSearchAuth::SigV4 { service, region } => {
                let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
                if let Some(r) = region {
                    loader = loader.region(aws_config::Region::new(r.clone()));
                }
                let sdk_config = loader.load().await;
                builder = builder
                    .auth(sigv4_credentials(&sdk_config)?)
                    .service_name(service.signing_name());
            }
            #[cfg(feature = "aws-auth")]
            OpenSearchAuth::SigV4WithConfig {
                service,
                sdk_config,
            } => {
                builder = builder
                    .auth(sigv4_credentials(sdk_config)?)
                    .service_name(service.signing_name());
            }
        }
        let transport = builder.build().map_err(|e| {
            Error::backend(format!("could not build the OpenSearch HTTP client: {e}"))
                .with_source(e)
        })?;
        Ok(Conn {
            client: OpenSearch::new(transport),
            retry: config.retry.clone(),
            bulk_timeout: config.bulk_timeout,
        })
    }

    /// Sends the request `send` builds, retrying connection failures, time-outs and 429 / 502 /
    /// 503 / 504 answers under the retry policy; any other answer is returned as a [`Reply`].
    pub(crate) async fn call<F, Fut>(&self, op: &'static str, send: F) -> Result<Reply>
    where
        F: Fn() -> Fut + Send + Sync,
        Fut: Future<Output = std::result::Result<Response, opensearch::Error>> + Send,
    {
        self.retry
            .run(op, || async {
                let response = send().await.map_err(|e| transport_error(op, e))?;
                read_reply(op, response).await
            })
            .await
    }
}

/// Reads a response; temporary statuses become (retryable) errors.
pub(crate) async fn read_reply(op: &'static str, response: Response) -> Result<Reply> {
    let status = response.status_code().as_u16();
    let text = response.text().await.map_err(|e| transport_error(op, e))?;
    if status_is_temporary(status) {
        return Err(http_error(op, status, &text));
    }
    let body = if text.trim().is_empty() {
        Some(Value::Null)
    } else {
        serde_json::from_str(&text).ok()
    };
    Ok(Reply { status, body, text })
}

#[cfg(feature = "aws-auth")]
fn sigv4_credentials(sdk_config: &aws_config::SdkConfig) -> Result<Credentials> {
    Credentials::try_from(sdk_config).map_err(|e| {
        Error::new(
            crossmodal_core::ErrorKind::PermissionDenied,
            format!(
                "SigV4 needs AWS credentials and a region: {e} (set AWS_REGION or pass a region, \
                 and make credentials available to the default chain)"
            ),
        )
        .with_source(e)
    })
}
