//! How the examples choose their embedding provider and open the engine.
//!
//! - Marengo on Amazon Bedrock when `CROSSMODAL_BEDROCK_BUCKET` is set and the examples are
//!   built with `--features bedrock` (credentials come from the standard AWS chain; nothing AWS
//!   is compiled or touched otherwise). Optional:
//!   `CROSSMODAL_BEDROCK_REGION` (default `AWS_REGION`, then `us-east-1`),
//!   `CROSSMODAL_BEDROCK_BUCKET_OWNER` (account id), `CROSSMODAL_MARENGO_MODEL` (`3.0` default,
//!   or `2.7`).
//! - Otherwise the offline demo embedder, announced in one line.

use crossmodal::{EmbeddingProvider, Engine, IngestConfig, LocalOptions};
use crossmodal_testkit::demo_embedder::CaptionHashEmbedder;
use std::path::Path;
use std::sync::Arc;

/// The provider the examples use; `caption_dirs` are searched for the demo's sidecar captions.
pub async fn provider(
    caption_dirs: &[&Path],
) -> Result<Arc<dyn EmbeddingProvider>, Box<dyn std::error::Error>> {
    if let Ok(bucket) = std::env::var("CROSSMODAL_BEDROCK_BUCKET") {
        return marengo(&bucket).await;
    }
    eprintln!(
        "embedder: OFFLINE DEMO (no Marengo credentials: set CROSSMODAL_BEDROCK_BUCKET to use Bedrock) - \
         vectors are hashed caption words, not a multimodal model; matches are lexical, not semantic"
    );
    let mut demo = CaptionHashEmbedder::new();
    for dir in caption_dirs {
        if dir.is_dir() {
            demo.add_dir(dir)?;
        }
    }
    Ok(Arc::new(demo))
}

/// Marengo on Amazon Bedrock, outputs and staging under `s3://<bucket>/crossmodal/`.
#[cfg(feature = "bedrock")]
async fn marengo(bucket: &str) -> Result<Arc<dyn EmbeddingProvider>, Box<dyn std::error::Error>> {
    use crossmodal::bedrock::{MarengoConfig, MarengoModel, MarengoProvider};
    let region = std::env::var("CROSSMODAL_BEDROCK_REGION")
        .or_else(|_| std::env::var("AWS_REGION"))
        .unwrap_or_else(|_| "us-east-1".to_string());
    let model: MarengoModel = std::env::var("CROSSMODAL_MARENGO_MODEL")
        .unwrap_or_else(|_| "3.0".to_string())
        .parse()?;
    let mut config = MarengoConfig::builder()
        .model(model)
        .region(region.clone())
        .output_s3_uri(format!("s3://{bucket}/crossmodal/marengo-output/"))
        .staging_s3_uri(format!("s3://{bucket}/crossmodal/staging/"));
    if let Ok(owner) = std::env::var("CROSSMODAL_BEDROCK_BUCKET_OWNER") {
        config = config.bucket_owner(owner);
    }
    let provider = MarengoProvider::from_env(config.build()?).await?;
    eprintln!(
        "embedder: Marengo {} on Amazon Bedrock ({region}), outputs in s3://{bucket}/crossmodal/",
        model.version()
    );
    Ok(Arc::new(provider))
}

#[cfg(not(feature = "bedrock"))]
async fn marengo(_bucket: &str) -> Result<Arc<dyn EmbeddingProvider>, Box<dyn std::error::Error>> {
    Err(
        "CROSSMODAL_BEDROCK_BUCKET is set, but the examples were built without Bedrock: \
         add `--features bedrock` to the cargo command"
            .into(),
    )
}

/// Opens the embedded default in `data_dir` with `provider` (originals in `media/`, an
/// `HnswIndex` in `index/`, status and the embedding cache in `catalog.db`); `concurrency`
/// files are ingested at once.
pub async fn open_engine(
    data_dir: &Path,
    provider: Arc<dyn EmbeddingProvider>,
    concurrency: usize,
) -> crossmodal::Result<Engine> {
    let options = LocalOptions::default().ingest(IngestConfig::default().concurrency(concurrency));
    Engine::open_local_with(data_dir, provider, options).await
}
