//! An HTTP service in front of the library: a JSON API to upload, list, search (by text or by an
//! uploaded file, in any mode), play results from the matched segment and delete, plus one
//! static page that uses it.
//!
//! ```text
//! cargo run --release --example serve -- --data-dir ./media-index --addr 127.0.0.1:8080
//! ```
//!
//! Then open <http://127.0.0.1:8080/>. The API is described in `examples/support/serve_app.rs`.
//! It has no authentication: it binds loopback by default; put it behind something that
//! authenticates before binding another address.
//!
//! Embeddings: without Marengo credentials it uses the offline demo embedder, which only knows
//! files that carry a sidecar caption (`<file>.caption.txt`, as the quickstart's samples in
//! `<data-dir>/samples` do); other uploads are stored and then fail at the embed stage with a
//! clear message. Pass `--captions DIR` to teach it more files.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

#[path = "support/setup.rs"]
mod setup;

use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(about = "Serve a crossmodal data directory over HTTP: JSON API and a search page")]
struct Args {
    /// The data directory (media, index, catalog).
    #[arg(long, default_value = "media-index")]
    data_dir: PathBuf,
    /// Address to listen on. Anything but loopback exposes an unauthenticated API.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// More directories of captioned files for the offline demo embedder (repeatable);
    /// `<data-dir>/samples` is always read.
    #[arg(long = "captions")]
    caption_dirs: Vec<PathBuf>,
    /// Largest uploaded file, MiB.
    #[arg(long, default_value_t = 256)]
    max_upload_mib: u64,
    /// Largest upload request (all files together), MiB.
    #[arg(long, default_value_t = 512)]
    max_request_mib: usize,
    /// Files ingested at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Search time limit, seconds.
    #[arg(long, default_value_t = 30)]
    search_timeout_secs: u64,
    /// At start, resume assets that failed or were interrupted (in the background).
    #[arg(long)]
    resume: bool,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut dirs = vec![args.data_dir.join("samples")];
    dirs.extend(args.caption_dirs.iter().cloned());
    let dir_refs: Vec<&std::path::Path> = dirs.iter().map(PathBuf::as_path).collect();
    let provider = setup::provider(&dir_refs).await?;
    let engine = setup::open_engine(&args.data_dir, provider, args.concurrency.max(1)).await?;

    let counts = engine.counts().await?;
    let interrupted = counts.pending + counts.embedding;
    println!(
        "data directory {}: {} assets ({} indexed, {} failed, {} interrupted)",
        args.data_dir.display(),
        counts.total(),
        counts.indexed,
        counts.failed,
        interrupted
    );
    if args.resume && interrupted + counts.failed > 0 {
        let engine = engine.clone();
        tokio::spawn(async move {
            match engine.retry_failed(|_, _| {}).await {
                Ok(r) => println!(
                    "resume: {} indexed, {} failed again",
                    r.progress.indexed, r.progress.failed
                ),
                Err(e) => eprintln!("resume failed: {e}"),
            }
        });
    } else if interrupted > 0 {
        println!("  {interrupted} interrupted assets: restart with --resume to finish them");
    }

    let limits = crossmodal::server::ServeLimits {
        max_upload_bytes: args.max_upload_mib * 1024 * 1024,
        max_request_bytes: args.max_request_mib * 1024 * 1024,
        search_timeout: Duration::from_secs(args.search_timeout_secs.max(1)),
        ..crossmodal::server::ServeLimits::default()
    };
    let app = crossmodal::server::router(engine.clone(), limits);
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    let local = listener.local_addr()?;
    if !local.ip().is_loopback() {
        eprintln!(
            "WARNING: listening on {local}, not a loopback address: the API has no \
             authentication, anyone who can reach it can upload and delete"
        );
    }
    println!("serving on http://{local}/ (Ctrl-C to stop)");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            if let Err(e) = tokio::signal::ctrl_c().await {
                eprintln!("cannot listen for Ctrl-C: {e}");
                std::future::pending::<()>().await;
            }
            println!("shutting down: finishing open requests");
        })
        .await?;
    engine.flush().await?;
    println!("stopped; index flushed");
    Ok(())
}
