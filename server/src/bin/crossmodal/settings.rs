//! The optional TOML config file and the resolution of every setting: flag, then environment
//! (both through clap), then the file, then the default. Paths in the file are relative to the
//! file's directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::CliError;
use crate::args::{Cli, ServeArgs};

/// The config file. Unknown keys are an error (a typo must not be silently ignored).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub ingest: IngestSection,
    #[serde(default)]
    pub bedrock: BedrockSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    pub addr: Option<SocketAddr>,
    pub token_file: Option<PathBuf>,
    pub allow_loopback_without_token: Option<bool>,
    pub max_upload_mib: Option<u64>,
    pub max_request_mib: Option<usize>,
    pub upload_concurrency: Option<usize>,
    pub request_timeout_secs: Option<u64>,
    pub body_idle_timeout_secs: Option<u64>,
    pub search_timeout_secs: Option<u64>,
    pub shutdown_grace_secs: Option<u64>,
    pub thumbnail_dir: Option<PathBuf>,
    pub ffmpeg: Option<PathBuf>,
    pub resume: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestSection {
    pub concurrency: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BedrockSection {
    pub bucket: Option<String>,
    pub region: Option<String>,
    pub bucket_owner: Option<String>,
    pub model: Option<String>,
    pub poll_ms: Option<u64>,
}

impl FileConfig {
    /// Reads and parses `path`; relative paths inside become relative to its directory.
    pub fn load(path: &Path) -> Result<FileConfig, CliError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            CliError::Config(format!(
                "cannot read the config file {}: {e}",
                path.display()
            ))
        })?;
        let mut config: FileConfig = toml::from_str(&text).map_err(|e| {
            CliError::Config(format!(
                "config file {}: {}",
                path.display(),
                e.to_string().trim()
            ))
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let rebase = |p: &mut Option<PathBuf>| {
            if let Some(p) = p
                && p.is_relative()
            {
                *p = dir.join(&*p);
            }
        };
        rebase(&mut config.data_dir);
        rebase(&mut config.server.token_file);
        rebase(&mut config.server.thumbnail_dir);
        Ok(config)
    }
}

/// Settings every subcommand uses.
#[derive(Debug, Clone)]
pub struct Common {
    pub data_dir: PathBuf,
    pub ingest_concurrency: usize,
    pub bedrock: BedrockSettings,
}

/// The embedding provider's settings.
#[derive(Debug, Clone)]
pub struct BedrockSettings {
    pub bucket: Option<String>,
    pub region: Option<String>,
    pub bucket_owner: Option<String>,
    pub model: Option<String>,
    pub poll: Option<Duration>,
}

/// What `serve` runs with.
#[derive(Debug, Clone)]
pub struct Serve {
    pub addr: SocketAddr,
    pub token_file: Option<PathBuf>,
    pub allow_loopback_without_token: bool,
    pub max_upload_bytes: u64,
    pub max_request_bytes: usize,
    pub upload_concurrency: usize,
    pub request_timeout: Duration,
    pub body_idle_timeout: Duration,
    pub search_timeout: Duration,
    pub shutdown_grace: Duration,
    pub thumbnail_dir: PathBuf,
    pub ffmpeg: PathBuf,
    pub resume: bool,
}

pub fn common(cli: &Cli, file: &FileConfig) -> Common {
    let b = &cli.bedrock;
    let f = &file.bedrock;
    Common {
        data_dir: cli
            .data_dir
            .clone()
            .or_else(|| file.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from("media-index")),
        ingest_concurrency: cli
            .ingest_concurrency
            .or(file.ingest.concurrency)
            .unwrap_or(4)
            .max(1),
        bedrock: BedrockSettings {
            bucket: b.bedrock_bucket.clone().or_else(|| f.bucket.clone()),
            region: b.bedrock_region.clone().or_else(|| f.region.clone()),
            bucket_owner: b
                .bedrock_bucket_owner
                .clone()
                .or_else(|| f.bucket_owner.clone()),
            model: b.marengo_model.clone().or_else(|| f.model.clone()),
            poll: b.bedrock_poll_ms.or(f.poll_ms).map(Duration::from_millis),
        },
    }
}

const MIB: u64 = 1024 * 1024;

pub fn serve(args: &ServeArgs, file: &FileConfig, common: &Common) -> Result<Serve, CliError> {
    let s = &file.server;
    let secs = |flag: Option<u64>, file: Option<u64>, default: u64, name: &str| {
        let v = flag.or(file).unwrap_or(default);
        if v == 0 {
            Err(CliError::Config(format!(
                "{name} must be at least 1 second"
            )))
        } else {
            Ok(Duration::from_secs(v))
        }
    };
    let max_upload_mib = args.max_upload_mib.or(s.max_upload_mib).unwrap_or(256);
    let max_request_mib = args.max_request_mib.or(s.max_request_mib).unwrap_or(512);
    if max_upload_mib == 0 || max_request_mib == 0 {
        return Err(CliError::Config(
            "max_upload_mib and max_request_mib must be at least 1".into(),
        ));
    }
    Ok(Serve {
        addr: args
            .addr
            .or(s.addr)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
        token_file: args.token_file.clone().or_else(|| s.token_file.clone()),
        allow_loopback_without_token: args.allow_loopback_without_token
            || s.allow_loopback_without_token.unwrap_or(false),
        max_upload_bytes: max_upload_mib.saturating_mul(MIB),
        max_request_bytes: usize::try_from((max_request_mib as u64).saturating_mul(MIB))
            .unwrap_or(usize::MAX),
        upload_concurrency: args
            .upload_concurrency
            .or(s.upload_concurrency)
            .unwrap_or(4)
            .max(1),
        request_timeout: secs(
            args.request_timeout_secs,
            s.request_timeout_secs,
            600,
            "request_timeout_secs",
        )?,
        body_idle_timeout: secs(
            args.body_idle_timeout_secs,
            s.body_idle_timeout_secs,
            30,
            "body_idle_timeout_secs",
        )?,
        search_timeout: secs(
            args.search_timeout_secs,
            s.search_timeout_secs,
            30,
            "search_timeout_secs",
        )?,
        shutdown_grace: Duration::from_secs(
            args.shutdown_grace_secs
                .or(s.shutdown_grace_secs)
                .unwrap_or(30),
        ),
        thumbnail_dir: args
            .thumbnail_dir
            .clone()
            .or_else(|| s.thumbnail_dir.clone())
            .unwrap_or_else(|| common.data_dir.join("thumbnails")),
        ffmpeg: args
            .ffmpeg
            .clone()
            .or_else(|| s.ffmpeg.clone())
            .unwrap_or_else(|| PathBuf::from("ffmpeg")),
        resume: args.resume || s.resume.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_parses_and_refuses_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crossmodal.toml");
        std::fs::write(
            &path,
            "data_dir = \"data\"\n[server]\naddr = \"127.0.0.1:9000\"\nupload_concurrency = 2\n\
             [bedrock]\nbucket = \"b\"\n",
        )
        .unwrap();
        let c = FileConfig::load(&path).unwrap();
        assert_eq!(c.data_dir.unwrap(), dir.path().join("data"));
        assert_eq!(c.server.upload_concurrency, Some(2));
        assert_eq!(c.bedrock.bucket.as_deref(), Some("b"));
        std::fs::write(&path, "[server]\nuplod_concurrency = 2\n").unwrap();
        let err = FileConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("uplod_concurrency"), "{err}");
    }
}
