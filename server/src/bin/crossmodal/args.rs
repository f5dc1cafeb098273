//! The command line: global options, then a subcommand. Every option can also come from the
//! environment (`CROSSMODAL_*`) or the config file; flags win over the environment, which wins
//! over the file.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Cross-modal media search over a data directory: serve the API and page, ingest files,
/// search, inspect, retry and delete.
#[derive(Debug, Parser)]
#[command(name = "crossmodal", version, propagate_version = true)]
pub struct Cli {
    /// A TOML config file (see the crossmodal-server README).
    #[arg(long, global = true, env = "CROSSMODAL_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The data directory: originals in media/, the HNSW index in index/, catalog.db
    /// [default: media-index].
    #[arg(long, global = true, env = "CROSSMODAL_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub bedrock: BedrockArgs,
    /// Files ingested at once [default: 4].
    #[arg(
        long,
        global = true,
        env = "CROSSMODAL_INGEST_CONCURRENCY",
        value_name = "N"
    )]
    pub ingest_concurrency: Option<usize>,
    #[command(subcommand)]
    pub command: Command,
}

/// Marengo on Amazon Bedrock (credentials from the standard AWS chain).
#[derive(Debug, Args)]
pub struct BedrockArgs {
    /// S3 bucket for Marengo's outputs and staged media (`s3://<bucket>/crossmodal/...`).
    #[arg(
        long,
        global = true,
        env = "CROSSMODAL_BEDROCK_BUCKET",
        value_name = "BUCKET"
    )]
    pub bedrock_bucket: Option<String>,
    /// AWS region of the model and the bucket [default: AWS_REGION, then us-east-1].
    #[arg(
        long,
        global = true,
        env = "CROSSMODAL_BEDROCK_REGION",
        value_name = "REGION"
    )]
    pub bedrock_region: Option<String>,
    /// Account id (12 digits) owning the bucket, sent as `bucketOwner`.
    #[arg(
        long,
        global = true,
        env = "CROSSMODAL_BEDROCK_BUCKET_OWNER",
        value_name = "ACCOUNT"
    )]
    pub bedrock_bucket_owner: Option<String>,
    /// Marengo version: 3.0 or 2.7 [default: 3.0].
    #[arg(
        long,
        global = true,
        env = "CROSSMODAL_MARENGO_MODEL",
        value_name = "VERSION"
    )]
    pub marengo_model: Option<String>,
    /// First wait before polling an asynchronous job, milliseconds [default: 1000].
    #[arg(
        long,
        global = true,
        env = "CROSSMODAL_BEDROCK_POLL_MS",
        value_name = "MS"
    )]
    pub bedrock_poll_ms: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the JSON API and the page.
    Serve(ServeArgs),
    /// Ingest a directory of images, videos and sounds (recursively).
    Ingest(IngestArgs),
    /// Search by text, by a file or by an asset in the library.
    Search(SearchArgs),
    /// Asset counts, index statistics, failures.
    Status(StatusArgs),
    /// Resume assets that failed or were interrupted.
    Retry,
    /// Remove assets everywhere (original, vectors, record).
    Delete(DeleteArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "CROSSMODAL_ADDR", value_name = "ADDR")]
    pub addr: Option<SocketAddr>,
    /// File of API tokens, one a line (`#` comments). CROSSMODAL_TOKEN adds one more.
    #[arg(long, env = "CROSSMODAL_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Let clients on a loopback address use the API without a token.
    #[arg(long, env = "CROSSMODAL_ALLOW_LOOPBACK_WITHOUT_TOKEN")]
    pub allow_loopback_without_token: bool,
    /// Largest uploaded file, MiB [default: 256].
    #[arg(long, env = "CROSSMODAL_MAX_UPLOAD_MIB", value_name = "MIB")]
    pub max_upload_mib: Option<u64>,
    /// Largest upload request, MiB [default: 512].
    #[arg(long, env = "CROSSMODAL_MAX_REQUEST_MIB", value_name = "MIB")]
    pub max_request_mib: Option<usize>,
    /// Upload requests served at once [default: 4].
    #[arg(long, env = "CROSSMODAL_UPLOAD_CONCURRENCY", value_name = "N")]
    pub upload_concurrency: Option<usize>,
    /// Longest a request may take, seconds [default: 600].
    #[arg(long, env = "CROSSMODAL_REQUEST_TIMEOUT_SECS", value_name = "SECS")]
    pub request_timeout_secs: Option<u64>,
    /// Longest pause inside a request body, seconds [default: 30].
    #[arg(long, env = "CROSSMODAL_BODY_IDLE_TIMEOUT_SECS", value_name = "SECS")]
    pub body_idle_timeout_secs: Option<u64>,
    /// Search time limit, seconds [default: 30].
    #[arg(long, env = "CROSSMODAL_SEARCH_TIMEOUT_SECS", value_name = "SECS")]
    pub search_timeout_secs: Option<u64>,
    /// At shutdown, how long open requests and ingests may still run, seconds [default: 30].
    #[arg(long, env = "CROSSMODAL_SHUTDOWN_GRACE_SECS", value_name = "SECS")]
    pub shutdown_grace_secs: Option<u64>,
    /// Thumbnail cache [default: DATA_DIR/thumbnails].
    #[arg(long, env = "CROSSMODAL_THUMBNAIL_DIR", value_name = "DIR")]
    pub thumbnail_dir: Option<PathBuf>,
    /// The ffmpeg program for thumbnails [default: ffmpeg].
    #[arg(long, env = "CROSSMODAL_FFMPEG", value_name = "PROGRAM")]
    pub ffmpeg: Option<PathBuf>,
    /// At start, resume assets that failed or were interrupted (in the background).
    #[arg(long, env = "CROSSMODAL_RESUME")]
    pub resume: bool,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// The directory to ingest.
    pub dir: PathBuf,
    /// Tags stored with every file (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Also retry assets that failed in earlier runs.
    #[arg(long)]
    pub retry_failed: bool,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// A text description to search for.
    #[arg(conflicts_with_all = ["file", "asset"], required_unless_present_any = ["file", "asset"])]
    pub text: Option<String>,
    /// Search by this reference file.
    #[arg(long, value_name = "PATH", conflicts_with = "asset")]
    pub file: Option<PathBuf>,
    /// Search by this asset of the library (its id).
    #[arg(long, value_name = "ID")]
    pub asset: Option<String>,
    /// auto, visual, semantic, audio or transcription [default: auto].
    #[arg(long)]
    pub mode: Option<String>,
    /// Only this kind: image, video or audio (repeatable).
    #[arg(long = "kind", value_name = "KIND")]
    pub kinds: Vec<String>,
    /// Number of results.
    #[arg(short, long, default_value_t = 10)]
    pub k: usize,
    /// Drop results whose cosine is below this.
    #[arg(long, value_name = "COSINE")]
    pub min_score: Option<f32>,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// List the failed assets with their reasons.
    #[arg(long)]
    pub failed: bool,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Asset ids (64 hex characters).
    #[arg(required = true, value_name = "ID")]
    pub ids: Vec<String>,
}
