//! A small search CLI over a data directory made by `quickstart` or `ingest_dir`.
//!
//! ```text
//! cargo run --release --example search -- --text "knights storming a castle" -k 5
//! cargo run --release --example search -- --video clip.mp4 --mode audio --kind video --json
//! ```
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

#[path = "support/setup.rs"]
mod setup;

use clap::{ArgGroup, Parser};
use crossmodal::{AssetId, Fusion, MediaKind, Query, SearchMode};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(about = "Search a crossmodal data directory by text, image, video, audio or asset id")]
#[command(group(ArgGroup::new("input").required(true).args(["text", "image", "video", "audio", "asset"])))]
struct Args {
    /// The data directory.
    #[arg(long, default_value = "media-index")]
    data_dir: PathBuf,
    /// Search by a text description.
    #[arg(long)]
    text: Option<String>,
    /// Search by a reference image file.
    #[arg(long)]
    image: Option<PathBuf>,
    /// Search by a reference video file.
    #[arg(long)]
    video: Option<PathBuf>,
    /// Search by a reference audio file.
    #[arg(long)]
    audio: Option<PathBuf>,
    /// Search by an asset already in the library (its id).
    #[arg(long)]
    asset: Option<String>,
    /// auto, visual, semantic, audio or transcription.
    #[arg(long, default_value = "auto")]
    mode: SearchMode,
    /// Only return these kinds (image, video, audio); repeatable.
    #[arg(long = "kind")]
    kinds: Vec<MediaKind>,
    /// Number of results.
    #[arg(short, default_value_t = 10)]
    k: usize,
    /// Drop results below this cosine similarity.
    #[arg(long)]
    min_score: Option<f32>,
    /// Merge routes by reciprocal-rank fusion instead of raw cosine.
    #[arg(long)]
    rrf: bool,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let file = args
        .image
        .as_ref()
        .or(args.video.as_ref())
        .or(args.audio.as_ref());
    let mut caption_dirs = vec![args.data_dir.join("samples")];
    if let Some(parent) = file.and_then(|f| f.parent()) {
        caption_dirs.push(parent.to_path_buf());
    }
    let dirs: Vec<&std::path::Path> = caption_dirs.iter().map(PathBuf::as_path).collect();
    let provider = setup::provider(&dirs).await?;
    let engine = setup::open_engine(&args.data_dir, provider, 1).await?;

    let mut query = match (&args.text, file, &args.asset) {
        (Some(text), _, _) => Query::text(text.clone()),
        (_, Some(path), _) => {
            Query::media(std::fs::read(path)?).file_name(path.display().to_string())
        }
        (_, _, Some(id)) => Query::asset(AssetId::parse(id)?),
        _ => unreachable!("clap requires one input"),
    };
    query = query.mode(args.mode).kinds(args.kinds.clone()).k(args.k);
    if let Some(min) = args.min_score {
        query = query.min_score(min);
    }
    if args.rrf {
        query = query.fusion(Fusion::ReciprocalRank { k0: 60.0 });
    }
    let results = engine.search(&query).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
        return Ok(());
    }
    for space in results.missing_spaces() {
        println!("(no {space} vectors indexed: that route was skipped)");
    }
    if results.hits.is_empty() {
        println!("no results");
    }
    for (rank, h) in results.hits.iter().enumerate() {
        let segment = h.best_segment.map(|s| format!(" {s}")).unwrap_or_default();
        println!(
            "{:>2}. {:>6.3}  {:<5}  {:<28} [{}{}]  {}",
            rank + 1,
            h.score,
            h.kind().to_string(),
            h.display_name.as_deref().unwrap_or("-"),
            h.space,
            segment,
            h.uri().map(|u| u.to_string()).unwrap_or_default()
        );
    }
    Ok(())
}
