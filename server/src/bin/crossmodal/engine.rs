//! Opening the data directory (the one place that does) and choosing the embedding provider.

use std::path::Path;
use std::sync::Arc;

use crossmodal_core::{EmbeddingProvider, Engine, Error, IngestConfig, LocalOptions};

use crate::CliError;
use crate::settings::{BedrockSettings, Common};

/// An open data directory.
pub struct DataDir {
    pub engine: Engine,
}

/// Opens the embedded default in `data_dir` with `provider`: originals in `media/`, the HNSW
/// index in `index/`, status and the embedding cache in `catalog.db`. The engine locks the
/// directory: a second process (a `serve` and an `ingest` at once) gets a clear `Conflict`
/// naming the holder's pid instead of two writers on one index.
pub async fn open_data_dir(
    data_dir: &Path,
    provider: Arc<dyn EmbeddingProvider>,
    ingest: IngestConfig,
) -> crossmodal_core::Result<DataDir> {
    let options = LocalOptions::default().ingest(ingest);
    let engine = Engine::open_local_with(data_dir, provider, options).await?;
    Ok(DataDir { engine })
}

/// The data directory of `common`, with the configured provider.
pub async fn open(common: &Common) -> Result<DataDir, CliError> {
    let provider = provider(&common.bedrock, &common.data_dir).await?;
    let ingest = IngestConfig::default().concurrency(common.ingest_concurrency);
    open_data_dir(&common.data_dir, provider, ingest)
        .await
        .map_err(CliError::from)
}

/// What to set when no provider is configured.
const NO_PROVIDER: &str = "no embedding provider configured: set CROSSMODAL_BEDROCK_BUCKET (or \
    --bedrock-bucket, or `bucket` under [bedrock] in the config file) to embed with Marengo on \
    Amazon Bedrock; AWS credentials come from the standard AWS chain";

/// Marengo on Amazon Bedrock, outputs and staging under `s3://<bucket>/crossmodal/`.
///
/// Jobs are recorded in the data directory's `catalog.db` (`SqliteJobLedger`), so a run that
/// stops while Marengo works (a timeout, Ctrl-C) is picked up by the next run instead of paying
/// for the job again.
#[cfg(feature = "bedrock")]
async fn provider(
    settings: &BedrockSettings,
    data_dir: &Path,
) -> Result<Arc<dyn EmbeddingProvider>, CliError> {
    use crossmodal_bedrock::{MarengoConfig, MarengoModel, MarengoProvider, PollPolicy};
    let Some(bucket) = settings.bucket.as_deref().filter(|b| !b.trim().is_empty()) else {
        return Err(CliError::Config(NO_PROVIDER.into()));
    };
    let region = settings
        .region
        .clone()
        .or_else(|| std::env::var("AWS_REGION").ok())
        .unwrap_or_else(|| "us-east-1".to_string());
    let model: MarengoModel = settings
        .model
        .as_deref()
        .unwrap_or("3.0")
        .parse()
        .map_err(|e: Error| CliError::Config(e.to_string()))?;
    let mut config = MarengoConfig::builder()
        .model(model)
        .region(region.clone())
        .output_s3_uri(format!("s3://{bucket}/crossmodal/marengo-output/"))
        .staging_s3_uri(format!("s3://{bucket}/crossmodal/staging/"));
    if let Some(owner) = &settings.bucket_owner {
        config = config.bucket_owner(owner.clone());
    }
    if let Some(first) = settings.poll {
        let default = PollPolicy::default();
        config = config.poll(PollPolicy {
            initial_interval: first,
            max_interval: default.max_interval.max(first),
            ..default
        });
    }
    let config = config
        .build()
        .map_err(|e| CliError::Config(format!("Marengo configuration: {e}")))?;
    std::fs::create_dir_all(data_dir).map_err(|e| {
        CliError::Config(format!(
            "cannot create the data directory {}: {e}",
            data_dir.display()
        ))
    })?;
    let ledger_path = crossmodal_core::LocalLayout::new(data_dir).catalog;
    let ledger =
        tokio::task::spawn_blocking(move || crossmodal_core::SqliteJobLedger::open(&ledger_path))
            .await
            .map_err(|e| CliError::Config(format!("opening the job ledger: {e}")))?
            .map_err(CliError::from)?;
    let provider = MarengoProvider::builder(config)
        .job_ledger(Arc::new(ledger))
        .build_from_env()
        .await
        .map_err(CliError::from)?;
    tracing::info!(
        model = model.version(),
        region = %region,
        bucket = %bucket,
        "embedding with Marengo on Amazon Bedrock"
    );
    Ok(Arc::new(provider))
}

#[cfg(not(feature = "bedrock"))]
async fn provider(
    settings: &BedrockSettings,
    data_dir: &Path,
) -> Result<Arc<dyn EmbeddingProvider>, CliError> {
    let _ = (settings, data_dir);
    Err(CliError::Config(format!(
        "{NO_PROVIDER} (and this binary was built without the `bedrock` feature: reinstall it \
         with `cargo install --path server`)"
    )))
}
