//! Thumbnails: one JPEG still per asset moment (a matched segment's middle, a library card's
//! frame), extracted with ffmpeg on first request and cached on disk as
//! `<thumbnail_dir>/<asset id>/t<ms>.jpg` (written to a temporary name, then renamed, so a
//! reader never sees half a file). Images are their own thumbnail, downscaled by ffmpeg when it
//! is there. Without ffmpeg (or without a thumbnail directory) videos have none, and
//! `/api/stats` says why so the page can tell its user.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use bytes::Bytes;
use crossmodal_core::{AssetId, AssetRecord, Engine, ErrorKind, MediaKind};
use serde::Serialize;
use tokio::sync::{OnceCell, Semaphore};

use crate::config::ServerConfig;
use crate::error::{ApiError, ApiResult};

/// What the thumbnail endpoint sends.
pub(crate) enum Still {
    /// A JPEG made by ffmpeg.
    Jpeg(Bytes),
    /// The image itself (no ffmpeg to downscale it).
    Original(Bytes),
}

/// Whether thumbnails are made, and if not, why (shown by the page).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ThumbnailStatus {
    /// Video thumbnails are extracted.
    videos: bool,
    /// Image thumbnails are downscaled (otherwise the original is sent).
    images_downscaled: bool,
    /// The ffmpeg version in use.
    #[serde(skip_serializing_if = "Option::is_none")]
    ffmpeg: Option<String>,
    /// Why there are no video thumbnails.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

pub(crate) struct Thumbnails {
    dir: Option<PathBuf>,
    ffmpeg: PathBuf,
    width: u32,
    timeout: Duration,
    permits: Semaphore,
    probe: OnceCell<Result<String, String>>,
    locks: parking_lot::Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
}

impl Thumbnails {
    pub(crate) fn new(config: &ServerConfig) -> Self {
        Thumbnails {
            dir: config.thumbnail_dir.clone(),
            ffmpeg: config.ffmpeg.clone(),
            width: config.thumbnail_width,
            timeout: config.thumbnail_timeout,
            permits: Semaphore::new(config.thumbnail_concurrency.max(1)),
            probe: OnceCell::new(),
            locks: parking_lot::Mutex::default(),
        }
    }

    /// Runs `ffmpeg -version` once: the version line, or why ffmpeg cannot be used.
    async fn ffmpeg_version(&self) -> &Result<String, String> {
        self.probe
            .get_or_init(|| async {
                let run = tokio::process::Command::new(&self.ffmpeg)
                    .args(["-hide_banner", "-version"])
                    .stdin(Stdio::null())
                    .stderr(Stdio::null())
                    .kill_on_drop(true)
                    .output();
                let program = self.ffmpeg.display().to_string();
                match tokio::time::timeout(Duration::from_secs(10), run).await {
                    Ok(Ok(out)) if out.status.success() => {
                        let text = String::from_utf8_lossy(&out.stdout);
                        let first = text.lines().next().unwrap_or("ffmpeg");
                        let version: Vec<&str> = first.split_whitespace().take(3).collect();
                        tracing::info!(ffmpeg = %version.join(" "), "thumbnails: ffmpeg found");
                        Ok(version.join(" "))
                    }
                    // The reasons are shown to API clients: no server path in them.
                    Ok(Ok(out)) => {
                        tracing::warn!(program = %program, status = %out.status, "thumbnails: ffmpeg -version failed, videos get none");
                        Err("ffmpeg on the server does not work (`ffmpeg -version` failed)".into())
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(program = %program, error = %e, "thumbnails: no ffmpeg, videos get none");
                        Err("ffmpeg is not installed on the server".into())
                    }
                    Err(_) => {
                        tracing::warn!(program = %program, "thumbnails: ffmpeg -version did not answer");
                        Err("ffmpeg on the server does not answer".into())
                    }
                }
            })
            .await
    }

    pub(crate) async fn status(&self) -> ThumbnailStatus {
        if self.dir.is_none() {
            return ThumbnailStatus {
                videos: false,
                images_downscaled: false,
                ffmpeg: None,
                reason: Some("thumbnails are off: the service has no thumbnail directory".into()),
            };
        }
        match self.ffmpeg_version().await {
            Ok(v) => ThumbnailStatus {
                videos: true,
                images_downscaled: true,
                ffmpeg: Some(v.clone()),
                reason: None,
            },
            Err(why) => ThumbnailStatus {
                videos: false,
                images_downscaled: false,
                ffmpeg: None,
                reason: Some(why.clone()),
            },
        }
    }

    /// The directory and ffmpeg when both are there.
    async fn extractor(&self) -> Result<&Path, String> {
        let Some(dir) = &self.dir else {
            return Err("thumbnails are off: the service has no thumbnail directory".into());
        };
        self.ffmpeg_version().await.as_ref().map_err(Clone::clone)?;
        Ok(dir)
    }

    /// The still of `record` at `at_sec` (videos; images ignore it).
    pub(crate) async fn still(
        &self,
        engine: &Engine,
        record: &AssetRecord,
        at_sec: Option<f64>,
    ) -> ApiResult<Still> {
        let Some(stored) = &record.media else {
            return Err(ApiError::not_found(format!(
                "the original of asset {} is not stored (yet)",
                record.asset_id
            )));
        };
        let kind = record.kind();
        if kind == MediaKind::Audio {
            return Err(ApiError::not_found(format!(
                "asset {} is audio: it has no thumbnail",
                record.asset_id
            )));
        }
        let dir = match self.extractor().await {
            Ok(dir) => dir,
            Err(why) if kind == MediaKind::Image => {
                tracing::trace!(reason = %why, "image thumbnail: the original");
                return Ok(Still::Original(engine.store().get(&stored.key).await?));
            }
            Err(why) => {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorKind::Unavailable,
                    format!("no video thumbnails: {why}"),
                ));
            }
        };
        let at = match kind {
            MediaKind::Image => 0.0,
            _ => {
                let t = at_sec.unwrap_or(0.0).max(0.0);
                match record.probe.duration_sec {
                    Some(d) if d > 0.0 => t.min((d - 0.1).max(0.0)),
                    _ => t,
                }
            }
        };
        let millis = (at * 1000.0).round() as u64;
        let asset_dir = dir.join(record.asset_id.as_str());
        let file = asset_dir.join(if kind == MediaKind::Image {
            "image.jpg".to_string()
        } else {
            format!("t{millis}.jpg")
        });
        if let Ok(bytes) = tokio::fs::read(&file).await {
            return Ok(Still::Jpeg(Bytes::from(bytes)));
        }
        // One extraction per file at a time; the others wait and read its result.
        let lock = self.locks.lock().entry(file.clone()).or_default().clone();
        let made = {
            let _guard = lock.lock().await;
            match tokio::fs::read(&file).await {
                Ok(bytes) => Ok(Bytes::from(bytes)),
                Err(_) => self.extract(engine, record, &asset_dir, &file, at).await,
            }
        };
        {
            let mut locks = self.locks.lock();
            if Arc::strong_count(&lock) <= 2 {
                locks.remove(&file);
            }
        }
        match made {
            Ok(bytes) => Ok(Still::Jpeg(bytes)),
            Err(_) if kind == MediaKind::Image => {
                Ok(Still::Original(engine.store().get(&stored.key).await?))
            }
            Err(e) => Err(e),
        }
    }

    async fn extract(
        &self,
        engine: &Engine,
        record: &AssetRecord,
        asset_dir: &Path,
        file: &Path,
        at: f64,
    ) -> ApiResult<Bytes> {
        let Some(stored) = &record.media else {
            return Err(ApiError::not_found("the original is not stored"));
        };
        let _permit = self.permits.acquire().await.map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorKind::Unavailable,
                "shutting down",
            )
        })?;
        tokio::fs::create_dir_all(asset_dir)
            .await
            .map_err(io_error)?;
        let nonce = hex::encode(rand::random::<[u8; 8]>());
        // A local store's file is read in place; any other store's bytes go to a temporary file.
        let uri = engine.store().media_ref(&stored.key).uri;
        let (input, temporary_input) = match uri.to_file_path() {
            Ok(path) if uri.scheme() == "file" => (path, None),
            _ => {
                let bytes = engine.store().get(&stored.key).await?;
                let path = asset_dir.join(format!(".src-{nonce}"));
                tokio::fs::write(&path, &bytes).await.map_err(io_error)?;
                (path.clone(), Some(path))
            }
        };
        let partial = asset_dir.join(format!(".tmp-{nonce}.jpg"));
        let mut result = self.run_ffmpeg(&input, &partial, at).await;
        if result.is_err() && at > 0.0 {
            // Past the last frame (durations in headers are approximate): the first frame.
            result = self.run_ffmpeg(&input, &partial, 0.0).await;
        }
        if let Some(path) = temporary_input {
            let _ = tokio::fs::remove_file(path).await;
        }
        if let Err(e) = result {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(e);
        }
        let bytes = tokio::fs::read(&partial).await.map_err(io_error)?;
        tokio::fs::rename(&partial, file).await.map_err(io_error)?;
        tracing::debug!(asset = %record.asset_id.short(), at_sec = at, bytes = bytes.len(), "thumbnail made");
        Ok(Bytes::from(bytes))
    }

    async fn run_ffmpeg(&self, input: &Path, output: &Path, at: f64) -> ApiResult<()> {
        let scale = format!("scale='min({},iw)':-2", self.width);
        let run = tokio::process::Command::new(&self.ffmpeg)
            .args([
                "-nostdin",
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-ss",
            ])
            .arg(format!("{at:.3}"))
            .arg("-i")
            .arg(input)
            .args(["-frames:v", "1", "-vf", &scale, "-q:v", "5", "-f", "image2"])
            .arg(output)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output();
        let out = match tokio::time::timeout(self.timeout, run).await {
            Err(_) => {
                return Err(ApiError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    ErrorKind::Timeout,
                    format!(
                        "ffmpeg did not make the thumbnail within {} s",
                        self.timeout.as_secs_f64()
                    ),
                ));
            }
            Ok(Err(e)) => return Err(io_error(e)),
            Ok(Ok(out)) => out,
        };
        let made = tokio::fs::metadata(output).await.is_ok_and(|m| m.len() > 0);
        if out.status.success() && made {
            return Ok(());
        }
        // ffmpeg's message names server paths: logged, not sent.
        let stderr = String::from_utf8_lossy(&out.stderr);
        tracing::warn!(status = %out.status, stderr = %stderr.trim(), at_sec = at, "ffmpeg made no thumbnail");
        Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::Corrupt,
            format!("ffmpeg could not extract a frame at {at:.3} s of this video"),
        ))
    }

    /// Removes an asset's cached thumbnails.
    pub(crate) async fn forget(&self, asset: &AssetId) {
        if let Some(dir) = &self.dir {
            match tokio::fs::remove_dir_all(dir.join(asset.as_str())).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(asset = %asset.short(), error = %e, "could not remove thumbnails")
                }
            }
        }
    }
}

fn io_error(e: std::io::Error) -> ApiError {
    tracing::error!(error = %e, "thumbnail cache");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        ErrorKind::Backend,
        "the thumbnail cache could not be written",
    )
}
