//! How the examples choose their embedding provider and open the engine.

use super::demo_embedder::CaptionHashEmbedder;
use crossmodal::{EmbeddingProvider, Engine, IngestConfig, LocalOptions};
use std::path::Path;
use std::sync::Arc;

/// The provider the examples use: Marengo on Bedrock when configured, otherwise the offline demo
/// embedder, announced in one line. `caption_dirs` are searched for the demo's sidecar captions.
pub fn provider(caption_dirs: &[&Path]) -> std::io::Result<Arc<dyn EmbeddingProvider>> {
    if std::env::var_os("CROSSMODAL_BEDROCK_BUCKET").is_some() {
        eprintln!(
            "note: CROSSMODAL_BEDROCK_BUCKET is set, but this build of the examples has no Bedrock backend yet"
        );
    }
    eprintln!(
        "embedder: OFFLINE DEMO (no Marengo credentials) - vectors are hashed caption words, not a \
         multimodal model; matches are lexical, not semantic"
    );
    let mut demo = CaptionHashEmbedder::new();
    for dir in caption_dirs {
        if dir.is_dir() {
            demo.add_dir(dir)?;
        }
    }
    Ok(Arc::new(demo))
}

/// Opens the embedded default in `data_dir` with `provider`, ingesting `concurrency` files at once.
pub async fn open_engine(
    data_dir: &Path,
    provider: Arc<dyn EmbeddingProvider>,
    concurrency: usize,
) -> crossmodal::Result<Engine> {
    let options = LocalOptions::default().ingest(IngestConfig::default().concurrency(concurrency));
    Engine::open_local_with(data_dir, provider, options).await
}
