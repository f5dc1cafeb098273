//! The subcommands.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crossmodal_core::{
    AssetId, AssetQuery, AssetState, AssetStatus, BatchItemResult, BatchProgress, BatchReport,
    IngestItem, MediaFormat, MediaKind, Query, SearchMode,
};
use crossmodal_server::{AuthConfig, BearerToken, ServerConfig, Service};

use crate::CliError;
use crate::args::{DeleteArgs, IngestArgs, SearchArgs, StatusArgs};
use crate::engine::DataDir;
use crate::logging;
use crate::settings::{Common, Serve};

/// The tokens of the token file and `CROSSMODAL_TOKEN`; each is also blanked from the logs.
fn tokens(serve: &Serve) -> Result<Vec<BearerToken>, CliError> {
    let mut tokens = Vec::new();
    if let Some(path) = &serve.token_file {
        // Read here too, so each token's text can be blanked from the logs.
        if let Ok(text) = std::fs::read_to_string(path) {
            for line in text.lines().map(str::trim) {
                if !line.is_empty() && !line.starts_with('#') {
                    logging::add_secret(line);
                }
            }
        }
        tokens.extend(BearerToken::from_file(path).map_err(|e| CliError::Config(e.to_string()))?);
    }
    if let Ok(token) = std::env::var("CROSSMODAL_TOKEN")
        && !token.trim().is_empty()
    {
        logging::add_secret(&token);
        tokens.push(
            BearerToken::new(&token)
                .map_err(|e| CliError::Config(format!("CROSSMODAL_TOKEN: {e}")))?,
        );
    }
    Ok(tokens)
}

/// Waits for SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; Ctrl-C still stops");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The API tokens, or why `serve` cannot start without one.
pub fn serve_tokens(serve: &Serve) -> Result<Vec<BearerToken>, CliError> {
    let tokens = tokens(serve)?;
    if tokens.is_empty() && !serve.allow_loopback_without_token {
        return Err(CliError::Config(
            "no API token: set CROSSMODAL_TOKEN or --token-file FILE (one token a line), or pass \
             --allow-loopback-without-token to let loopback clients in without one"
                .into(),
        ));
    }
    Ok(tokens)
}

pub async fn serve(
    data: DataDir,
    common: &Common,
    serve: Serve,
    tokens: Vec<BearerToken>,
) -> Result<(), CliError> {
    let engine = data.engine.clone();
    let counts = engine.counts().await?;
    let interrupted = counts.pending + counts.embedding;
    tracing::info!(
        data_dir = %common.data_dir.display(),
        assets = counts.total(),
        indexed = counts.indexed,
        failed = counts.failed,
        interrupted,
        "data directory open"
    );
    let auth =
        AuthConfig::tokens(tokens).allow_loopback_without_token(serve.allow_loopback_without_token);
    let config = ServerConfig::builder()
        .auth(auth)
        .max_upload_bytes(serve.max_upload_bytes)
        .max_request_bytes(serve.max_request_bytes)
        .upload_concurrency(serve.upload_concurrency)
        .request_timeout(serve.request_timeout)
        .body_idle_timeout(serve.body_idle_timeout)
        .search_timeout(serve.search_timeout)
        .thumbnail_dir(serve.thumbnail_dir.clone())
        .ffmpeg(serve.ffmpeg.clone())
        .build()?;
    let service = Service::new(engine.clone(), config);
    if serve.resume && interrupted + counts.failed > 0 {
        let engine = engine.clone();
        tokio::spawn(async move {
            match engine.retry_failed(|_, _| {}).await {
                Ok(r) => tracing::info!(
                    indexed = r.progress.indexed,
                    failed = r.progress.failed,
                    "resume finished"
                ),
                Err(e) => tracing::error!(error = %e, "resume stopped"),
            }
        });
    } else if interrupted > 0 {
        tracing::info!(
            interrupted,
            "assets were interrupted: `crossmodal retry` (or serve --resume) finishes them"
        );
    }
    let listener = tokio::net::TcpListener::bind(serve.addr)
        .await
        .map_err(|e| CliError::Failed(format!("cannot listen on {}: {e}", serve.addr)))?;
    let local = listener
        .local_addr()
        .map_err(|e| CliError::Failed(format!("no local address: {e}")))?;
    if !local.ip().is_loopback() && serve.allow_loopback_without_token {
        tracing::info!("clients not on loopback still need a token");
    }
    tracing::info!(addr = %local, "listening");
    // The line scripts (and the tests) wait for.
    println!("listening on http://{local}/");
    let _ = std::io::stdout().flush();

    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let app = service
        .router()
        .into_make_service_with_connect_info::<SocketAddr>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = stop_rx.changed().await;
    });
    let mut server = tokio::spawn(async move { server.await });
    tokio::select! {
        finished = &mut server => {
            return match finished {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(CliError::Failed(format!("the server stopped: {e}"))),
                Err(e) => Err(CliError::Failed(format!("the server task failed: {e}"))),
            };
        }
        _ = shutdown_signal() => {}
    }
    let grace = serve.shutdown_grace;
    tracing::info!(
        grace_secs = grace.as_secs_f64(),
        "shutting down: no new connections; open requests and ingests may finish"
    );
    let _ = stop_tx.send(true);
    let deadline = tokio::time::Instant::now() + grace;
    if tokio::time::timeout_at(deadline, &mut server)
        .await
        .is_err()
    {
        tracing::warn!("open connections did not finish within the grace period: closing them");
        server.abort();
    }
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    let report = service.drain(left.max(Duration::from_millis(1))).await?;
    tracing::info!(
        unfinished_ingests = report.ingests_unfinished,
        "stopped; index flushed"
    );
    println!(
        "stopped: index flushed, {} ingest(s) left to resume",
        report.ingests_unfinished
    );
    Ok(())
}

/// Media files under `dir` by extension (the content is checked at ingest), sorted.
fn media_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            media_files(&path, out)?;
        } else if kind.is_file()
            && path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| MediaFormat::from_extension(e).is_some())
        {
            out.push(path);
        }
    }
    Ok(())
}

fn progress_printer() -> impl FnMut(&BatchProgress, &BatchItemResult) + Send {
    |p: &BatchProgress, item: &BatchItemResult| match &item.result {
        Ok(r) => println!(
            "[{}/{}] {} {}: {}",
            p.done,
            p.total,
            r.outcome.as_str().replace('_', " "),
            item.label,
            r.asset_id.short()
        ),
        Err(e) => println!("[{}/{}] FAILED {}: {e}", p.done, p.total, item.label),
    }
}

fn summary(report: &BatchReport) -> String {
    let p = report.progress;
    format!(
        "{} files: {} indexed, {} already indexed, {} failed",
        p.total, p.indexed, p.duplicates, p.failed
    )
}

pub async fn ingest(data: DataDir, args: IngestArgs) -> Result<(), CliError> {
    let engine = data.engine;
    let mut files = Vec::new();
    media_files(&args.dir, &mut files).map_err(|e| {
        CliError::Failed(format!(
            "cannot read the directory {}: {e}",
            args.dir.display()
        ))
    })?;
    files.sort();
    tracing::info!(files = files.len(), dir = %args.dir.display(), "ingesting");
    let items: Vec<IngestItem> = files
        .iter()
        .map(|p| IngestItem::file(p).tags(args.tags.clone()))
        .collect();
    let batch = async {
        let mut report = engine.ingest_batch(items, progress_printer()).await;
        if args.retry_failed {
            match engine.retry_failed(progress_printer()).await {
                Ok(r) => {
                    report.progress.failed = r.progress.failed
                        + report.progress.failed.saturating_sub(r.progress.indexed);
                    report.progress.indexed += r.progress.indexed;
                }
                Err(e) => tracing::error!(error = %e, "retry of failed assets stopped"),
            }
        }
        report
    };
    let report = tokio::select! {
        r = batch => r,
        _ = shutdown_signal() => {
            engine.flush().await?;
            return Err(CliError::Interrupted);
        }
    };
    println!("{}", summary(&report));
    if report.progress.failed > 0 {
        return Err(CliError::Failed(format!(
            "{} file(s) failed (`crossmodal status --failed` lists them, `crossmodal retry` resumes)",
            report.progress.failed
        )));
    }
    Ok(())
}

pub async fn retry(data: DataDir) -> Result<(), CliError> {
    let engine = data.engine;
    let report = tokio::select! {
        r = engine.retry_failed(progress_printer()) => r?,
        _ = shutdown_signal() => {
            engine.flush().await?;
            return Err(CliError::Interrupted);
        }
    };
    println!("retried {}", summary(&report));
    if report.progress.failed > 0 {
        return Err(CliError::Failed(format!(
            "{} asset(s) still failed",
            report.progress.failed
        )));
    }
    Ok(())
}

pub async fn search(data: DataDir, args: SearchArgs) -> Result<(), CliError> {
    let engine = data.engine;
    let mut query = match (&args.text, &args.file, &args.asset) {
        (Some(text), _, _) => Query::text(text.clone()),
        (None, Some(path), _) => {
            let bytes = tokio::fs::read(path)
                .await
                .map_err(|e| CliError::Failed(format!("cannot read {}: {e}", path.display())))?;
            let mut q = Query::media(bytes);
            if let Some(name) = path.file_name() {
                q = q.file_name(name.to_string_lossy().into_owned());
            }
            q
        }
        (None, None, Some(id)) => Query::asset(AssetId::parse(id)?),
        (None, None, None) => {
            return Err(CliError::Config(
                "give a text, --file PATH or --asset ID".into(),
            ));
        }
    };
    if let Some(mode) = &args.mode {
        query = query.mode(mode.parse::<SearchMode>()?);
    }
    let mut kinds = Vec::new();
    for k in &args.kinds {
        kinds.push(k.parse::<MediaKind>()?);
    }
    query = query.kinds(kinds).k(args.k);
    if let Some(min) = args.min_score {
        query = query.min_score(min);
    }
    let results = engine.search(&query).await?;
    if args.json {
        let hits: Vec<serde_json::Value> = results
            .hits
            .iter()
            .enumerate()
            .map(|(i, h)| {
                serde_json::json!({
                    "rank": i + 1,
                    "asset_id": h.asset_id,
                    "name": h.display_name,
                    "kind": h.meta.kind,
                    "score": h.score,
                    "cosine": h.cosine,
                    "space": h.space,
                    "segment": h.best_segment,
                })
            })
            .collect();
        let out = serde_json::json!({
            "query_kind": results.query_kind,
            "mode": results.mode,
            "missing_spaces": results.missing_spaces(),
            "hits": hits,
        });
        println!("{out}");
        return Ok(());
    }
    if results.hits.is_empty() {
        println!("no match");
    }
    for (i, h) in results.hits.iter().enumerate() {
        let segment = h
            .best_segment
            .map(|s| format!("{:.1}-{:.1} s", s.start_sec, s.end_sec))
            .unwrap_or_else(|| "whole file".into());
        println!(
            "{:>3}. {:.3}  {:<5}  {}  {}  ({})  {}",
            i + 1,
            h.score,
            h.meta.kind,
            h.display_name.as_deref().unwrap_or("(unnamed)"),
            segment,
            h.space,
            h.asset_id
        );
    }
    for space in results.missing_spaces() {
        println!("note: the index holds no {space} vectors yet");
    }
    Ok(())
}

pub async fn status(data: DataDir, args: StatusArgs) -> Result<(), CliError> {
    let engine = data.engine;
    let counts = engine.counts().await?;
    let index = engine.index_stats().await?;
    let mut failed = Vec::new();
    if args.failed {
        let mut query = AssetQuery::new().state(AssetState::Failed).limit(1000);
        loop {
            let page = engine.assets(&query).await?;
            failed.extend(page.assets);
            match page.next_cursor {
                Some(c) => query = query.cursor(c),
                None => break,
            }
        }
    }
    if args.json {
        let failures: Vec<serde_json::Value> = failed
            .iter()
            .map(|r| {
                serde_json::json!({
                    "asset_id": r.asset_id,
                    "name": r.display_name,
                    "status": r.status,
                })
            })
            .collect();
        let out = serde_json::json!({
            "model": engine.model().id,
            "counts": {
                "pending": counts.pending,
                "embedding": counts.embedding,
                "indexed": counts.indexed,
                "failed": counts.failed,
                "total": counts.total(),
            },
            "index": index,
            "failed": failures,
        });
        println!("{out}");
        return Ok(());
    }
    println!(
        "{} assets: {} indexed, {} embedding, {} pending, {} failed",
        counts.total(),
        counts.indexed,
        counts.embedding,
        counts.pending,
        counts.failed
    );
    println!("model: {}", engine.model().id);
    println!(
        "index: {}",
        serde_json::to_string(&index).unwrap_or_else(|_| "?".into())
    );
    for r in &failed {
        if let AssetStatus::Failed { stage, message } = &r.status {
            println!(
                "failed {} {}: {stage}: {message}",
                r.asset_id.short(),
                r.display_name.as_deref().unwrap_or("(unnamed)")
            );
        }
    }
    Ok(())
}

pub async fn delete(data: DataDir, args: DeleteArgs) -> Result<(), CliError> {
    let engine = data.engine;
    let mut missing = 0;
    for id in &args.ids {
        let asset = AssetId::parse(id.trim())?;
        if engine.delete(&asset).await? {
            println!("deleted {asset}");
        } else {
            println!("no asset {asset}");
            missing += 1;
        }
    }
    if missing > 0 {
        return Err(CliError::Failed(format!("{missing} asset(s) not found")));
    }
    Ok(())
}
