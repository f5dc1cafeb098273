//! The JSON API under `/api`: shared state, the request's base path, and the handlers by area
//! ([`assets`] upload/list/get/delete, [`media`] originals and thumbnails, [`search`], [`stats`]).

pub(crate) mod assets;
pub(crate) mod forms;
pub(crate) mod media;
pub(crate) mod search;
pub(crate) mod stats;
pub(crate) mod views;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::{FromRequestParts, OriginalUri};
use axum::http::request::Parts;
use crossmodal_core::{Engine, IngestItem, IngestReport, MediaLimits};

use crate::config::ServerConfig;
use crate::thumbnails::Thumbnails;

/// Shared state of the handlers.
#[derive(Clone)]
pub(crate) struct App {
    pub(crate) engine: Engine,
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) media_limits: Arc<MediaLimits>,
    /// Ingests running now (waited for at shutdown).
    pub(crate) ingests: Arc<InFlight>,
    pub(crate) thumbnails: Arc<Thumbnails>,
    /// The page's sessions.
    pub(crate) sessions: Arc<crate::auth::Sessions>,
}

impl App {
    /// Runs one ingest as a task of its own, counted in [`App::ingests`]: a request that is
    /// dropped (client gone, request timeout) does not cut the ingest off half-way, and shutdown
    /// waits for it. It starts at once, so the asset is recorded (and its original stored)
    /// right away; the provider bounds the embedding calls that run at once.
    pub(crate) fn spawn_ingest(
        &self,
        item: IngestItem,
    ) -> tokio::task::JoinHandle<crossmodal_core::Result<IngestReport>> {
        let guard = self.ingests.enter();
        let engine = self.engine.clone();
        tokio::spawn(async move {
            let _guard = guard;
            let label = item.label();
            let result = engine.ingest(item).await;
            if let Err(e) = &result {
                tracing::warn!(file = %label, error = %e, "ingest failed");
            }
            result
        })
    }
}

/// A count of running tasks that can be waited on until it reaches zero.
#[derive(Default)]
pub(crate) struct InFlight {
    count: AtomicUsize,
    idle: tokio::sync::Notify,
}

/// Held while a task runs.
pub(crate) struct InFlightGuard(Arc<InFlight>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl InFlight {
    pub(crate) fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.count.fetch_add(1, Ordering::AcqRel);
        InFlightGuard(self.clone())
    }

    pub(crate) fn count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Waits until no task runs, at most `limit`; whether that happened.
    pub(crate) async fn wait_idle(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.count() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.count() == 0;
            }
        }
    }
}

/// The path the service is mounted under (`""` at the root, `/media-search` when nested there),
/// so the URLs it hands out work in a user's app.
pub(crate) struct Base(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for Base {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        let inner = parts.uri.path();
        let base = match parts.extensions.get::<OriginalUri>() {
            Some(OriginalUri(full)) => {
                let full = full.path();
                match full.strip_suffix(inner) {
                    Some(prefix) => prefix.trim_end_matches('/').to_string(),
                    None if inner == "/" => full.trim_end_matches('/').to_string(),
                    None => String::new(),
                }
            }
            None => String::new(),
        };
        Ok(Base(base))
    }
}

/// `{base}/api/assets/{id}`.
pub(crate) fn asset_path(base: &str, asset: &crossmodal_core::AssetId) -> String {
    format!("{base}/api/assets/{}", asset.as_str())
}
