//! # crossmodal-server
//!
//! The crossmodal HTTP service: a JSON API to upload, list, search (by text or by an uploaded
//! file, in any mode), play results from the matched segment, show thumbnails and delete, plus
//! one page that uses it — as a library ([`router`], nestable in an axum app under a prefix) and
//! as the `crossmodal` binary (feature `cli`, on by default).
//!
//! | method and path | what it does |
//! |---|---|
//! | `GET /` | the HTML page (no token needed: it asks for one) |
//! | `POST /api/session` | `{"token": ".."}`: a session cookie for the page (204) |
//! | `DELETE /api/session` | ends it |
//! | `GET /api/stats` | status counts, index statistics, limits, thumbnail support |
//! | `POST /api/assets` | multipart upload of one or more files (`file`), optional `tags`; `?wait=false` answers 202 after validation and ingests in the background |
//! | `GET /api/assets` | one page of assets: `?kind=video&status=indexed&cursor=..&limit=..` (comma lists or repeated keys) |
//! | `GET /api/assets/{id}` | one asset |
//! | `DELETE /api/assets/{id}` | removes an asset everywhere (204) |
//! | `GET /api/assets/{id}/media` | the original with its content type; honours `Range` (206) |
//! | `GET /api/assets/{id}/thumbnail?t=..` | a JPEG still (videos at `t` seconds; images downscaled or as they are) |
//! | `POST /api/search` | JSON `{text | asset_id, mode, kinds, k, min_score, fusion, tags}` |
//! | `POST /api/search/upload` | multipart: `file` (the reference), `mode`, `kinds`, `k`, `min_score` |
//!
//! Every error is `{"error": {"kind": "<ErrorKind in snake_case>", "message": "..."}}` with the
//! status of [`status_for`] (401 for a missing or wrong token, 408 for a timed-out request, 413
//! for a body over the limit).
//!
//! ```no_run
//! # async fn demo(engine: crossmodal_core::Engine) -> Result<(), Box<dyn std::error::Error>> {
//! use crossmodal_server::{AuthConfig, BearerToken, ServerConfig};
//!
//! let config = ServerConfig::builder()
//!     .auth(AuthConfig::tokens(BearerToken::from_file("/etc/crossmodal/tokens")?))
//!     .thumbnail_dir("/var/cache/crossmodal/thumbnails")
//!     .build()?;
//! // Nested in an app of your own, under a prefix.
//! let app = axum::Router::new().nest("/media-search", crossmodal_server::router(engine, config));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(
//!     listener,
//!     app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
//! )
//! .await?;
//! # Ok(()) }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

mod api;
mod auth;
mod config;
mod error;
mod page;
mod thumbnails;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef, Request};
use axum::http::{Method, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use crossmodal_core::{Engine, ErrorKind};
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};
use tower_http::trace::TraceLayer;
use tracing::Span;

/// The axum the router is built with (serve it, nest it, add layers with the same version).
pub use axum;

pub use auth::{AuthConfig, BearerToken, MAX_TOKEN_CHARS, MIN_TOKEN_CHARS, SESSION_COOKIE};
pub use config::{ServerConfig, ServerConfigBuilder};
pub use error::status_for;

use api::{App, InFlight};
use auth::{AuthState, Sessions};
use error::{ApiError, LayerLimits};

impl FromRef<App> for AuthState {
    fn from_ref(app: &App) -> AuthState {
        AuthState {
            config: Arc::new(app.config.auth.clone()),
            sessions: app.sessions.clone(),
        }
    }
}

/// The service over an engine: its [`router`](Service::router) and the ingests it runs in the
/// background, which [`drain`](Service::drain) waits for at shutdown. It does not listen on
/// anything itself.
#[derive(Clone)]
pub struct Service {
    app: App,
    upload_slots: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("config", &self.app.config)
            .field("ingests_in_flight", &self.app.ingests.count())
            .finish_non_exhaustive()
    }
}

/// What [`Service::drain`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DrainReport {
    /// Ingests still running when the grace period ended (their assets stay `Pending` or
    /// `Embedding` and are resumed by `retry_failed`).
    pub ingests_unfinished: usize,
}

impl Service {
    /// A service over `engine`. A configuration that fails [`ServerConfig::validate`] is used
    /// with its zero values raised to one (use [`ServerConfig::builder`] to be told instead).
    pub fn new(engine: Engine, config: ServerConfig) -> Service {
        let mut config = config;
        config.upload_concurrency = config.upload_concurrency.max(1);
        config.max_files = config.max_files.max(1);
        let auth = &config.auth;
        if !auth.disabled && auth.tokens.is_empty() && !auth.allow_loopback_without_token {
            tracing::warn!(
                "the service has no API tokens: every API request will be refused with 401"
            );
        }
        let thumbnails = Arc::new(thumbnails::Thumbnails::new(&config));
        let upload_slots = Arc::new(tokio::sync::Semaphore::new(config.upload_concurrency));
        let app = App {
            media_limits: Arc::new(engine.ingestor().config().limits.clone()),
            engine,
            config: Arc::new(config),
            ingests: Arc::new(InFlight::default()),
            thumbnails,
            sessions: Arc::new(Sessions::default()),
        };
        Service { app, upload_slots }
    }

    /// The router: the page at `/`, the JSON API under `/api`, behind the auth check, the size,
    /// concurrency and time limits (tower layers) and request spans.
    pub fn router(&self) -> Router {
        let config = &self.app.config;
        let uploads = ServiceBuilder::new()
            .layer(GlobalConcurrencyLimitLayer::with_semaphore(
                self.upload_slots.clone(),
            ))
            .layer(DefaultBodyLimit::disable())
            .layer(RequestBodyLimitLayer::new(config.max_request_bytes));
        let auth_state = AuthState::from_ref(&self.app);
        let protected = Router::new()
            .route("/api/stats", get(api::stats::stats))
            .route(
                "/api/assets",
                post(api::assets::upload)
                    .layer(uploads.clone())
                    .get(api::assets::list_assets),
            )
            .route(
                "/api/assets/{id}",
                get(api::assets::get_asset)
                    .delete(api::assets::delete_asset)
                    .patch(api::assets::patch_asset),
            )
            .route(
                "/api/assets/{id}/duplicates",
                get(api::assets::asset_duplicates),
            )
            .route("/api/duplicates", get(api::assets::library_duplicates))
            .route("/api/assets/{id}/media", get(api::media::media))
            .route("/api/assets/{id}/thumbnail", get(api::media::thumbnail))
            .route("/api/search", post(api::search::search))
            .route(
                "/api/search/upload",
                post(api::search::search_upload).layer(uploads),
            )
            .route_layer(axum::middleware::from_fn_with_state(
                auth_state,
                auth::require_auth,
            ));
        let open = Router::new().route("/", get(page::page)).route(
            "/api/session",
            post(auth::create_session).delete(auth::delete_session),
        );
        let limits = LayerLimits {
            max_request_bytes: config.max_request_bytes,
            max_json_bytes: config.max_json_bytes,
            request_timeout: config.request_timeout,
        };
        let outer = ServiceBuilder::new()
            .layer(SetSensitiveRequestHeadersLayer::new([
                header::AUTHORIZATION,
                header::COOKIE,
            ]))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(|req: &Request| {
                        tracing::info_span!(
                            "request",
                            method = %req.method(),
                            path = %req.uri().path(),
                            status = tracing::field::Empty,
                            latency_ms = tracing::field::Empty,
                        )
                    })
                    .on_response(|res: &Response, latency: Duration, span: &Span| {
                        span.record("status", res.status().as_u16());
                        span.record("latency_ms", latency.as_secs_f64() * 1000.0);
                        tracing::info!("response");
                    }),
            )
            .layer(axum::middleware::map_response_with_state(
                limits,
                error::json_errors,
            ))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                config.request_timeout,
            ))
            .layer(RequestBodyTimeoutLayer::new(config.body_idle_timeout));
        Router::new()
            .merge(protected)
            .merge(open)
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .layer(DefaultBodyLimit::max(config.max_json_bytes))
            .layer(outer)
            .with_state(self.app.clone())
    }

    /// Ingests running now.
    pub fn ingests_in_flight(&self) -> usize {
        self.app.ingests.count()
    }

    /// For shutdown, once the listener no longer accepts: waits up to `grace` for the ingests
    /// in flight, then flushes the engine (the index made durable, finished assets `Indexed`).
    pub async fn drain(&self, grace: Duration) -> crossmodal_core::Result<DrainReport> {
        if !self.app.ingests.wait_idle(grace).await {
            tracing::warn!(
                unfinished = self.app.ingests.count(),
                "grace period over with ingests still running: they resume with `crossmodal retry`"
            );
        }
        let ingests_unfinished = self.app.ingests.count();
        self.app.engine.flush().await?;
        Ok(DrainReport { ingests_unfinished })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.app.engine
    }
}

/// The service over `engine`: the page at `/` and the JSON API under `/api` (see the crate
/// docs). Nest it under a prefix in an app of your own with [`Router::nest`]; the URLs it hands
/// out carry the prefix. Use [`Service`] to wait for background ingests at shutdown.
pub fn router(engine: Engine, config: ServerConfig) -> Router {
    Service::new(engine, config).router()
}

async fn not_found(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorKind::NotFound,
        format!(
            "no route for {method} {}",
            api::forms::truncated(uri.path())
        ),
    )
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorKind::Unsupported,
        format!(
            "{method} is not allowed on {}",
            api::forms::truncated(uri.path())
        ),
    )
}
