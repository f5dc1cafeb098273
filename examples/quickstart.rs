//! The main job on the embedded default, no cloud account needed:
//!
//! ```text
//! cargo run --release --example quickstart
//! ```
//!
//! It generates a small media library (images, sounds and, with ffmpeg, videos with sound),
//! ingests it into a data directory (originals in `media/`, vectors in `index/`, status and the
//! embedding cache in `catalog.db`), runs a text, an image, an audio and a video query in each
//! mode, and prints ranked results with scores, the matched space and segment, and the asset
//! status table. Run it twice: the second run reuses the index and the cache.
//!
//! Environment: `CROSSMODAL_DATA_DIR` (default `./media-index`).
//!
//! Embeddings: without Marengo credentials it uses the offline demo embedder from
//! `examples/support/demo_embedder.rs`, which hashes each sample's caption words: it is NOT a
//! model, and it says so when it starts.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use crossmodal_testkit::samples;
#[path = "support/setup.rs"]
mod setup;

use crossmodal::{
    AssetQuery, Engine, ErrorKind, IngestItem, IngestOutcome, Query, SearchMode, SearchResults,
};
use std::path::PathBuf;
use std::time::Instant;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let data_dir = std::env::var_os("CROSSMODAL_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("media-index"));
    let samples_dir = data_dir.join("samples");

    println!(
        "crossmodal quickstart: data directory {}",
        data_dir.display()
    );
    println!(
        "generating the sample library in {} ...",
        samples_dir.display()
    );
    let files = samples::generate(&samples_dir)?;

    let provider = setup::provider(&[&samples_dir]).await?;
    let engine = setup::open_engine(&data_dir, provider, 8).await?;

    // Ingest.
    let t = Instant::now();
    let items: Vec<IngestItem> = files.iter().map(IngestItem::file).collect();
    let report = engine
        .ingest_batch(items, |p, item| match &item.result {
            Ok(r) => println!(
                "  [{}/{}] {:<22} {:<6} {:?}{}",
                p.done,
                p.total,
                item.label.rsplit('/').next().unwrap_or(&item.label),
                r.kind.to_string(),
                r.outcome,
                if r.from_cache {
                    " (cached embeddings)"
                } else {
                    ""
                }
            ),
            Err(e) => println!("  [{}/{}] {} FAILED: {e}", p.done, p.total, item.label),
        })
        .await;
    let p = report.progress;
    println!(
        "ingested {} files in {:.2?}: {} indexed, {} already indexed, {} failed",
        p.total,
        t.elapsed(),
        p.indexed,
        p.duplicates,
        p.failed
    );

    // Queries: a text, an image, an audio and a video query, each in every search mode. A mode
    // the routing table has no route for (say, an image matched by its soundtrack) answers with
    // a typed `Unsupported` error before anything is embedded; that is printed, not fatal.
    let t = Instant::now();
    let sample = |name: &str| std::fs::read(samples_dir.join(name));
    let mut queries: Vec<(String, Query)> = vec![
        (
            "text: knights storming a castle".into(),
            Query::text("knights storming a castle"),
        ),
        (
            "image: castle_at_dusk.png".into(),
            Query::media(sample("castle_at_dusk.png")?),
        ),
        (
            "audio: war_drums.wav".into(),
            Query::media(sample("war_drums.wav")?),
        ),
    ];
    if let Ok(video) = sample("castle_siege.mp4") {
        queries.push(("video: castle_siege.mp4".into(), Query::media(video)));
    }
    for (title, query) in queries {
        for mode in SearchMode::ALL {
            show(
                &engine,
                &format!("{title} ({mode} mode)"),
                query.clone().mode(mode).k(5),
            )
            .await?;
        }
    }
    println!("queries answered in {:.2?}", t.elapsed());

    // Status table.
    let counts = engine.counts().await?;
    println!(
        "\nassets: {} indexed, {} embedding, {} pending, {} failed",
        counts.indexed, counts.embedding, counts.pending, counts.failed
    );
    let page = engine.assets(&AssetQuery::new().limit(50)).await?;
    println!(
        "  {:<22} {:<6} {:<5} {:>8}  status",
        "name", "kind", "fmt", "bytes"
    );
    for a in page.assets {
        println!(
            "  {:<22} {:<6} {:<5} {:>8}  {}",
            a.display_name.as_deref().unwrap_or("-"),
            a.kind().to_string(),
            a.format().to_string(),
            a.size_bytes,
            a.status
        );
    }
    let already = report
        .items
        .iter()
        .filter(|i| matches!(&i.result, Ok(r) if r.outcome == IngestOutcome::AlreadyIndexed))
        .count();
    println!(
        "\nrun finished in {:.2?} ({}); run it again to reuse the index and cache",
        started.elapsed(),
        if already == p.total && p.total > 0 {
            "second run: nothing re-embedded"
        } else {
            "first run"
        }
    );
    Ok(())
}

async fn show(engine: &Engine, title: &str, query: Query) -> crossmodal::Result<()> {
    let results: SearchResults = match engine.search(&query).await {
        Ok(results) => results,
        Err(e) if e.kind() == ErrorKind::Unsupported => {
            println!("\n{title}\n  not routed: {e}");
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    println!("\n{title}");
    for space in results.missing_spaces() {
        println!("  (no {space} vectors indexed: that route was skipped)");
    }
    if results.hits.is_empty() {
        println!("  no results");
    }
    for h in &results.hits {
        let segment = h.best_segment.map(|s| format!(" {s}")).unwrap_or_default();
        println!(
            "  {:>6.3}  {:<5}  {:<22} [{}{}]",
            h.score,
            h.kind().to_string(),
            h.display_name.as_deref().unwrap_or(h.asset_id.short()),
            h.space,
            segment
        );
    }
    Ok(())
}
