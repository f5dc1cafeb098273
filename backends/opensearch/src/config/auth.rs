//! How requests authenticate: none, basic, or (feature `aws-auth`) AWS SigV4.

use std::fmt;

/// Which AWS service a SigV4 signature is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
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
#[non_exhaustive]
pub enum OpenSearchAuth {
    /// No authentication (a local cluster, a test server, a signing proxy).
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
    /// instance or task role), for Amazon OpenSearch Service or Serverless. Feature `aws-auth`.
    #[cfg(feature = "aws-auth")]
    SigV4 {
        /// `es` or `aoss`.
        service: AwsService,
        /// The region; `None` takes it from the environment or profile.
        region: Option<String>,
    },
    /// AWS SigV4 with an already loaded SDK configuration (credentials and region). Feature
    /// `aws-auth`; build the configuration with the re-exported [`aws_config`](crate::aws_config).
    #[cfg(feature = "aws-auth")]
    SigV4WithConfig {
        /// `es` or `aoss`.
        service: AwsService,
        /// Supplies credentials and region (boxed: it is large).
        sdk_config: Box<aws_config::SdkConfig>,
    },
}

impl OpenSearchAuth {
    /// The AWS service requests are signed for, if they are signed with SigV4.
    pub fn aws_service(&self) -> Option<AwsService> {
        match self {
            OpenSearchAuth::None | OpenSearchAuth::Basic { .. } => None,
            #[cfg(feature = "aws-auth")]
            OpenSearchAuth::SigV4 { service, .. }
            | OpenSearchAuth::SigV4WithConfig { service, .. } => Some(*service),
        }
    }
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
            #[cfg(feature = "aws-auth")]
            OpenSearchAuth::SigV4 { service, region } => f
                .debug_struct("SigV4")
                .field("service", &service.signing_name())
                .field("region", region)
                .finish(),
            #[cfg(feature = "aws-auth")]
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
