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
//! status table; then one of each way designers search: every matching clip, pages, metadata
//! edited and filtered, keywords with vectors, less-like-that, near-duplicates. Run it twice:
//! the second run reuses the index and the cache.
//!
//! Environment: `CROSSMODAL_DATA_DIR` (default `./media-index`).
//!
//! Embeddings: without Marengo credentials it uses the offline demo embedder of
//! `crossmodal-testkit` (`testkit/src/demo_embedder.rs`), which hashes each sample's caption
//! words: it is NOT a model, and it says so when it starts.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use crossmodal_testkit::samples;
#[path = "support/setup.rs"]
mod setup;

use crossmodal::{
    AssetId, AssetQuery, BatchReport, DuplicateQuery, Engine, ErrorKind, FieldTest, Filter,
    Grouping, IngestItem, IngestOutcome, MetaPatch, Query, ResultOrder, SearchMode, SearchResults,
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

    designers(&engine, &report).await?;

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

/// The asset ingested from the sample named `name`.
fn asset_of(report: &BatchReport, name: &str) -> Option<AssetId> {
    report.items.iter().find_map(|i| match &i.result {
        Ok(r) if i.label.ends_with(name) => Some(r.asset_id.clone()),
        _ => None,
    })
}

/// One of each way of searching designers use: every matching clip, pages, keywords with
/// vectors, their own metadata edited and filtered, less like that, near-duplicates.
async fn designers(engine: &Engine, report: &BatchReport) -> crossmodal::Result<()> {
    println!("\n--- searching the way designers work ---");
    // Every matching clip of each asset, adjacent clips merged, most matching moments first.
    let q = Query::text("knights storming a castle")
        .grouping(Grouping::merged_clips(5))
        .order(ResultOrder::ClipCount)
        .k(3);
    println!("\nevery matching clip: \"knights storming a castle\"");
    for h in engine.search(&q).await?.hits {
        let clips: Vec<String> = h
            .clips
            .iter()
            .map(|c| match c.segment {
                Some(s) => format!("{s} ({:.3})", c.cosine),
                None => format!("whole ({:.3})", c.cosine),
            })
            .collect();
        println!(
            "  {:<22} {} clip(s): {}",
            h.display_name.as_deref().unwrap_or(h.asset_id.short()),
            h.clip_count,
            clips.join(", ")
        );
    }
    // Pages: the second page continues the first, no repeats.
    let q = Query::text("sounds of a battle").k(3);
    let first = engine.search(&q).await?;
    println!("\npages of \"sounds of a battle\", 3 per page");
    print_names("  page 1:", &first);
    if let Some(cursor) = first.next_cursor.clone() {
        let second = engine.search(&q.clone().cursor(cursor)).await?;
        print_names("  page 2:", &second);
    }
    // Their own metadata, changed after ingest without embedding again, filtered in the search.
    if let Some(id) = asset_of(report, "castle_at_dusk.png") {
        let patch = MetaPatch::default()
            .set("campaign", "autumn-2026")
            .set("budget", 12_000.0)
            .add_tag("approved");
        engine.update_asset(&id, &patch).await?;
        let filter = Filter::default().field("campaign", FieldTest::Eq("autumn-2026".into()));
        let found = engine
            .search(&Query::text("a castle").filter(filter).k(5))
            .await?;
        print_names("\nfield campaign = autumn-2026:", &found);
    }
    // Keywords with vectors: the words of names, tags and fields, fused with the vectors.
    let found = engine
        .search(&Query::text("castle approved").keywords(true).k(3))
        .await?;
    println!("\nkeywords \"castle approved\"");
    for h in &found.hits {
        let words: Vec<String> = h
            .keywords
            .iter()
            .flat_map(|k| k.matches.iter())
            .map(|m| format!("{}: {}", m.field, m.text))
            .collect();
        println!(
            "  {:>6.3}  {:<22} {}",
            h.score,
            h.display_name.as_deref().unwrap_or(h.asset_id.short()),
            if words.is_empty() {
                "(by vector)".to_string()
            } else {
                format!("matched {}", words.join("; "))
            }
        );
    }
    // More like this, less like that.
    let found = engine
        .search(
            &Query::text("a castle")
                .negative_text("drums and thunder")
                .k(3),
        )
        .await?;
    print_names("\n\"a castle\", less like \"drums and thunder\":", &found);
    // Near-duplicates, segment by segment.
    if let Some(id) = asset_of(report, "castle_at_dusk.png") {
        let dups = engine
            .near_duplicates(&id, &DuplicateQuery::default().min_cosine(0.8))
            .await?;
        println!(
            "\nnear-duplicates of castle_at_dusk.png (cosine >= 0.8): {}",
            dups.len()
        );
        for d in dups.iter().take(3) {
            let name = engine
                .asset(&d.asset_id)
                .await?
                .and_then(|r| r.display_name)
                .unwrap_or_else(|| d.asset_id.short().to_string());
            println!(
                "  {:<22} {:?}, {} pair(s), best {:.3}",
                name,
                d.kind,
                d.pairs.len(),
                d.best_cosine
            );
        }
    }
    Ok(())
}

fn print_names(title: &str, results: &SearchResults) {
    let names: Vec<&str> = results
        .hits
        .iter()
        .map(|h| h.display_name.as_deref().unwrap_or(h.asset_id.short()))
        .collect();
    println!("{title} {}", names.join(", "));
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
