//! Ingests a directory recursively into a data directory, with a progress bar, bounded
//! concurrency and a summary. Resumable: statuses live in the catalog, so after Ctrl-C or a crash
//! a second run skips what is indexed and resumes the rest without re-embedding cached content.
//!
//! ```text
//! cargo run --release --example ingest_dir -- ./clips --data-dir ./media-index --concurrency 8
//! ```
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

#[path = "support/setup.rs"]
mod setup;

use clap::Parser;
use crossmodal::{BatchReport, IngestItem, MediaFormat};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};

#[derive(Parser, Debug)]
#[command(
    about = "Ingest a directory of images, videos and sounds into a crossmodal data directory"
)]
struct Args {
    /// The directory to ingest (recursively).
    dir: PathBuf,
    /// The data directory (media, index, catalog).
    #[arg(long, default_value = "media-index")]
    data_dir: PathBuf,
    /// Files processed at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Also retry assets that failed in earlier runs.
    #[arg(long)]
    retry_failed: bool,
    /// Tags stored with every file.
    #[arg(long = "tag")]
    tags: Vec<String>,
}

/// Media files under `dir` by extension (the content is checked at ingest), sorted.
fn media_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            media_files(&path, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| MediaFormat::from_extension(e).is_some())
        {
            out.push(path);
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut files = Vec::new();
    media_files(&args.dir, &mut files)?;
    files.sort();
    let provider = setup::provider(&[&args.dir]).await?;
    let engine = setup::open_engine(&args.data_dir, provider, args.concurrency).await?;

    let bar = ProgressBar::new(files.len() as u64);
    bar.set_style(ProgressStyle::with_template(
        "{bar:40} {pos}/{len} {elapsed_precise} eta {eta} {msg}",
    )?);
    let progress = |p: &crossmodal::BatchProgress, item: &crossmodal::BatchItemResult| {
        bar.set_position(p.done as u64);
        bar.set_message(format!(
            "indexed {} dup {} failed {}",
            p.indexed, p.duplicates, p.failed
        ));
        if let Err(e) = &item.result {
            bar.println(format!("failed: {}: {e}", item.label));
        }
    };

    let items: Vec<IngestItem> = files
        .iter()
        .map(|p| IngestItem::file(p).tags(args.tags.clone()))
        .collect();
    let ingestor = engine.ingestor().clone();
    let batch = async {
        let mut report = engine.ingest_batch(items, progress).await;
        if args.retry_failed {
            match ingestor.retry_failed(|_, _| {}).await {
                Ok(r) => merge(&mut report, r),
                Err(e) => eprintln!("retry of failed assets stopped: {e}"),
            }
        }
        report
    };
    let report = tokio::select! {
        r = batch => r,
        _ = tokio::signal::ctrl_c() => {
            bar.abandon_with_message("interrupted");
            engine.flush().await?;
            eprintln!("interrupted: statuses are in the catalog; run the same command again to resume");
            return Ok(());
        }
    };
    bar.finish();
    let p = report.progress;
    println!(
        "{} files: {} indexed, {} skipped as duplicates, {} failed",
        p.total, p.indexed, p.duplicates, p.failed
    );
    for (label, err) in report.failures() {
        println!("  failed: {label}: {err}");
    }
    let counts = engine.counts().await?;
    println!(
        "library: {} indexed, {} failed, {} in progress",
        counts.indexed,
        counts.failed,
        counts.pending + counts.embedding
    );
    Ok(())
}

fn merge(into: &mut BatchReport, other: BatchReport) {
    into.progress.total += other.progress.total;
    into.progress.done += other.progress.done;
    into.progress.indexed += other.progress.indexed;
    into.progress.duplicates += other.progress.duplicates;
    into.progress.failed += other.progress.failed;
    into.items.extend(other.items);
}
