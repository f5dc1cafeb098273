//! [`ServerConfig`]: sizes, concurrency, timeouts, authentication and thumbnails of the service.

use std::path::PathBuf;
use std::time::Duration;

use crossmodal_core::{Error, Result};

use crate::auth::AuthConfig;

/// How the service behaves: request limits, upload concurrency, timeouts, authentication and
/// thumbnails. Build it with [`ServerConfig::builder`] (checked) or start from
/// [`Default`] and set fields.
///
/// ```
/// use std::time::Duration;
/// use crossmodal_server::{AuthConfig, BearerToken, ServerConfig};
///
/// let config = ServerConfig::builder()
///     .max_upload_bytes(64 * 1024 * 1024)
///     .upload_concurrency(2)
///     .request_timeout(Duration::from_secs(120))
///     .auth(AuthConfig::tokens([BearerToken::new("a-long-random-team-token").unwrap()]))
///     .thumbnail_dir("/var/cache/crossmodal/thumbnails")
///     .build()
///     .unwrap();
/// assert_eq!(config.upload_concurrency, 2);
/// assert!(format!("{config:?}").contains("tokens: 1"), "tokens are counted, never shown");
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Largest single uploaded file (ingest or reference file), bytes (256 MiB). A larger file
    /// gets a 413 result; the rest of the request is still processed.
    pub max_upload_bytes: u64,
    /// Largest upload request body (all files and fields together), bytes (512 MiB); a larger
    /// body gets a 413 for the whole request. Uploads are held in memory: this bounds one
    /// request's memory, and [`upload_concurrency`](Self::upload_concurrency) how many such
    /// requests run at once.
    pub max_request_bytes: usize,
    /// Largest JSON request body (search, session), bytes (1 MiB).
    pub max_json_bytes: usize,
    /// Most files in one upload request (100).
    pub max_files: usize,
    /// Upload requests (ingest uploads and search-by-file) served at once (4); more wait for a
    /// free slot (within [`request_timeout`](Self::request_timeout)).
    pub upload_concurrency: usize,
    /// Longest time a request may take as a whole, from its headers to its response (10 min);
    /// then it is answered 408. An ingest it started keeps running in the background.
    pub request_timeout: Duration,
    /// Longest pause while a request body is being received (30 s): a client that stops
    /// sending in the middle of an upload is answered 408 and its slot freed.
    pub body_idle_timeout: Duration,
    /// A search that takes longer answers 504 (30 s).
    pub search_timeout: Duration,
    /// Lifetime of presigned preview URLs, for stores that give `http(s)` URLs such as S3 (1 h).
    pub preview_ttl: Duration,
    /// Who may call the API (default: bearer tokens, none configured, so every API request is
    /// refused until tokens are added).
    pub auth: AuthConfig,
    /// Where thumbnails are cached (`None`: no video thumbnails; images are shown as they are).
    pub thumbnail_dir: Option<PathBuf>,
    /// The ffmpeg program that extracts thumbnails (`ffmpeg`, looked up in `PATH`).
    pub ffmpeg: PathBuf,
    /// Width of thumbnails, pixels (320; the height keeps the aspect ratio).
    pub thumbnail_width: u32,
    /// ffmpeg processes run at once (2).
    pub thumbnail_concurrency: usize,
    /// Longest time one thumbnail extraction may take (20 s).
    pub thumbnail_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_upload_bytes: 256 * 1024 * 1024,
            max_request_bytes: 512 * 1024 * 1024,
            max_json_bytes: 1024 * 1024,
            max_files: 100,
            upload_concurrency: 4,
            request_timeout: Duration::from_secs(600),
            body_idle_timeout: Duration::from_secs(30),
            search_timeout: Duration::from_secs(30),
            preview_ttl: Duration::from_secs(3600),
            auth: AuthConfig::default(),
            thumbnail_dir: None,
            ffmpeg: PathBuf::from("ffmpeg"),
            thumbnail_width: 320,
            thumbnail_concurrency: 2,
            thumbnail_timeout: Duration::from_secs(20),
        }
    }
}

impl ServerConfig {
    /// A builder starting from [`Default`].
    pub fn builder() -> ServerConfigBuilder {
        ServerConfigBuilder {
            config: ServerConfig::default(),
        }
    }

    /// Checks that every size, count and duration is usable (non-zero, the file limit within
    /// the request limit).
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("max_upload_bytes", self.max_upload_bytes == 0),
            ("max_request_bytes", self.max_request_bytes == 0),
            ("max_json_bytes", self.max_json_bytes == 0),
            ("max_files", self.max_files == 0),
            ("upload_concurrency", self.upload_concurrency == 0),
            ("request_timeout", self.request_timeout.is_zero()),
            ("body_idle_timeout", self.body_idle_timeout.is_zero()),
            ("search_timeout", self.search_timeout.is_zero()),
            ("thumbnail_width", self.thumbnail_width == 0),
            ("thumbnail_concurrency", self.thumbnail_concurrency == 0),
            ("thumbnail_timeout", self.thumbnail_timeout.is_zero()),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, zero)| *zero) {
            return Err(Error::invalid_input(format!(
                "server configuration: {name} must be greater than zero"
            )));
        }
        if self.thumbnail_width > 4096 {
            return Err(Error::invalid_input(
                "server configuration: thumbnail_width is at most 4096 pixels",
            ));
        }
        Ok(())
    }
}

/// Builds a [`ServerConfig`]; [`build`](Self::build) checks it.
#[derive(Debug, Clone)]
pub struct ServerConfigBuilder {
    config: ServerConfig,
}

impl ServerConfigBuilder {
    /// See [`ServerConfig::max_upload_bytes`].
    pub fn max_upload_bytes(mut self, bytes: u64) -> Self {
        self.config.max_upload_bytes = bytes;
        self
    }

    /// See [`ServerConfig::max_request_bytes`].
    pub fn max_request_bytes(mut self, bytes: usize) -> Self {
        self.config.max_request_bytes = bytes;
        self
    }

    /// See [`ServerConfig::max_json_bytes`].
    pub fn max_json_bytes(mut self, bytes: usize) -> Self {
        self.config.max_json_bytes = bytes;
        self
    }

    /// See [`ServerConfig::max_files`].
    pub fn max_files(mut self, n: usize) -> Self {
        self.config.max_files = n;
        self
    }

    /// See [`ServerConfig::upload_concurrency`].
    pub fn upload_concurrency(mut self, n: usize) -> Self {
        self.config.upload_concurrency = n;
        self
    }

    /// See [`ServerConfig::request_timeout`].
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.config.request_timeout = timeout;
        self
    }

    /// See [`ServerConfig::body_idle_timeout`].
    pub fn body_idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.body_idle_timeout = timeout;
        self
    }

    /// See [`ServerConfig::search_timeout`].
    pub fn search_timeout(mut self, timeout: Duration) -> Self {
        self.config.search_timeout = timeout;
        self
    }

    /// See [`ServerConfig::preview_ttl`].
    pub fn preview_ttl(mut self, ttl: Duration) -> Self {
        self.config.preview_ttl = ttl;
        self
    }

    /// See [`ServerConfig::auth`].
    pub fn auth(mut self, auth: AuthConfig) -> Self {
        self.config.auth = auth;
        self
    }

    /// See [`ServerConfig::thumbnail_dir`].
    pub fn thumbnail_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.thumbnail_dir = Some(dir.into());
        self
    }

    /// See [`ServerConfig::ffmpeg`].
    pub fn ffmpeg(mut self, program: impl Into<PathBuf>) -> Self {
        self.config.ffmpeg = program.into();
        self
    }

    /// See [`ServerConfig::thumbnail_width`].
    pub fn thumbnail_width(mut self, pixels: u32) -> Self {
        self.config.thumbnail_width = pixels;
        self
    }

    /// See [`ServerConfig::thumbnail_concurrency`].
    pub fn thumbnail_concurrency(mut self, n: usize) -> Self {
        self.config.thumbnail_concurrency = n;
        self
    }

    /// See [`ServerConfig::thumbnail_timeout`].
    pub fn thumbnail_timeout(mut self, timeout: Duration) -> Self {
        self.config.thumbnail_timeout = timeout;
        self
    }

    /// The configuration, checked ([`ServerConfig::validate`]).
    pub fn build(self) -> Result<ServerConfig> {
        self.config.validate()?;
        Ok(self.config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_limits_are_refused_by_name() {
        let err = ServerConfig::builder()
            .upload_concurrency(0)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("upload_concurrency"), "{err}");
        let err = ServerConfig::builder()
            .body_idle_timeout(Duration::ZERO)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("body_idle_timeout"), "{err}");
        assert!(ServerConfig::builder().build().is_ok());
    }
}
