//! The HTTP service over a data directory, for trying it out without an AWS account: the JSON
//! API and the page of `crossmodal-server`, with the offline demo embedder when no Marengo
//! configuration is set (see `examples/support/setup.rs`).
//!
//! ```text
//! cargo run --release --example serve --features server -- --data-dir ./media-index
//! ```
//!
//! Then open <http://127.0.0.1:8080/>. This example lets loopback clients in without a token
//! and binds loopback only. The service a team runs is the `crossmodal` binary
//! (`cargo install --path server`, then `crossmodal serve`), which needs a token and has no demo
//! embedder.
//!
//! Embeddings: without Marengo credentials it uses the offline demo embedder, which only knows
//! files that carry a sidecar caption (`<file>.caption.txt`, as the quickstart's samples in
//! `<data-dir>/samples` do); other uploads are stored and then fail at the embed stage with a
//! clear message. Pass `--captions DIR` to teach it more files.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

#[path = "support/setup.rs"]
mod setup;

use clap::Parser;
use crossmodal::server::{AuthConfig, ServerConfig, Service};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    about = "Serve a crossmodal data directory over HTTP (loopback, no token): JSON API and a search page"
)]
struct Args {
    /// The data directory (media, index, catalog).
    #[arg(long, default_value = "media-index")]
    data_dir: PathBuf,
    /// Port on 127.0.0.1.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// More directories of captioned files for the offline demo embedder (repeatable);
    /// `<data-dir>/samples` is always read.
    #[arg(long = "captions")]
    caption_dirs: Vec<PathBuf>,
    /// Files ingested at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
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
    println!(
        "data directory {}: {} assets ({} indexed, {} failed)",
        args.data_dir.display(),
        counts.total(),
        counts.indexed,
        counts.failed
    );

    let config = ServerConfig::builder()
        .auth(AuthConfig::default().allow_loopback_without_token(true))
        .thumbnail_dir(args.data_dir.join("thumbnails"))
        .build()?;
    let service = Service::new(engine, config);
    let listener =
        tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], args.port))).await?;
    println!(
        "serving on http://{}/ (Ctrl-C to stop)",
        listener.local_addr()?
    );
    let app = service
        .router()
        .into_make_service_with_connect_info::<SocketAddr>();
    crossmodal::server::axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    let report = service.drain(Duration::from_secs(30)).await?;
    println!(
        "stopped; index flushed ({} ingests left to resume)",
        report.ingests_unfinished
    );
    Ok(())
}
