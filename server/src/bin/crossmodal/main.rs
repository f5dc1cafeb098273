//! `crossmodal`: the service a team runs over a crossmodal data directory.
//!
//! ```text
//! crossmodal serve --data-dir ./media-index --token-file ./tokens
//! crossmodal ingest ./clips --tag archive
//! crossmodal search "knights storming a castle" -k 5
//! crossmodal status --failed
//! crossmodal retry
//! crossmodal delete <asset id>
//! ```
//!
//! Settings come from flags, the environment (`CROSSMODAL_*`) and an optional TOML config file
//! (`--config`), in that order of precedence; see the crate README.

mod args;
mod commands;
mod engine;
mod logging;
mod settings;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};
use settings::FileConfig;

/// Why the binary stops.
#[derive(Debug)]
pub enum CliError {
    /// A setting is missing or wrong (exit status 2).
    Config(String),
    /// The command failed (exit status 1).
    Failed(String),
    /// Stopped by a signal after flushing (exit status 130).
    Interrupted,
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Config(m) | CliError::Failed(m) => f.write_str(m),
            CliError::Interrupted => f.write_str(
                "interrupted: statuses are in the catalog; run the same command again to resume",
            ),
        }
    }
}

impl From<crossmodal_core::Error> for CliError {
    fn from(e: crossmodal_core::Error) -> Self {
        CliError::Failed(e.to_string())
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let file = match &cli.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let common = settings::common(&cli, &file);
    match cli.command {
        Command::Serve(args) => {
            let serve = settings::serve(&args, &file, &common)?;
            let tokens = commands::serve_tokens(&serve)?;
            let data = engine::open(&common).await?;
            commands::serve(data, &common, serve, tokens).await
        }
        Command::Ingest(args) => commands::ingest(engine::open(&common).await?, args).await,
        Command::Search(args) => commands::search(engine::open(&common).await?, args).await,
        Command::Status(args) => commands::status(engine::open(&common).await?, args).await,
        Command::Retry => commands::retry(engine::open(&common).await?).await,
        Command::Delete(args) => commands::delete(engine::open(&common).await?, args).await,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            logging::say(&format!("cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            logging::say(&e.to_string());
            match e {
                CliError::Config(_) => ExitCode::from(2),
                CliError::Failed(_) => ExitCode::FAILURE,
                CliError::Interrupted => ExitCode::from(130),
            }
        }
    }
}
