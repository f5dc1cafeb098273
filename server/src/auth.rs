//! Bearer-token authentication: [`BearerToken`] (kept as a SHA-256 digest, compared in constant
//! time), [`AuthConfig`], the check every `/api` request passes, and the page's session cookie.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use crossmodal_core::{Error, ErrorKind, Result};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// Shortest token accepted (characters).
pub const MIN_TOKEN_CHARS: usize = 16;
/// Longest token accepted (characters).
pub const MAX_TOKEN_CHARS: usize = 512;
/// Name of the page's session cookie.
pub const SESSION_COOKIE: &str = "crossmodal_session";
/// How long a page session lasts.
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Most page sessions kept at once (the oldest goes first).
const MAX_SESSIONS: usize = 1024;

/// A bearer token the service accepts. Only its SHA-256 digest is kept: the token itself is
/// never stored, logged or shown (`Debug` prints `BearerToken(..)`).
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken {
    digest: [u8; 32],
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(..)")
    }
}

impl BearerToken {
    /// A token from its text: 16 to 512 visible ASCII characters (what an `Authorization:
    /// Bearer` header can carry), surrounding whitespace ignored.
    pub fn new(token: impl AsRef<str>) -> Result<BearerToken> {
        let token = token.as_ref().trim();
        let chars = token.chars().count();
        if !(MIN_TOKEN_CHARS..=MAX_TOKEN_CHARS).contains(&chars) {
            return Err(Error::invalid_input(format!(
                "a bearer token has {MIN_TOKEN_CHARS} to {MAX_TOKEN_CHARS} characters, this one has {chars}"
            )));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::invalid_input(
                "a bearer token is visible ASCII characters only (no spaces or control characters)",
            ));
        }
        Ok(BearerToken {
            digest: Sha256::digest(token.as_bytes()).into(),
        })
    }

    /// The tokens in a token file: one a line; blank lines and lines starting with `#` are
    /// ignored. The file must hold at least one token.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Vec<BearerToken>> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::from(e)
                .with_context("token file", path.display())
                .set_temporary(false)
        })?;
        let mut tokens = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let token = BearerToken::new(line).map_err(|e| {
                e.with_context("token file", path.display())
                    .with_context("line", n + 1)
            })?;
            tokens.push(token);
        }
        if tokens.is_empty() {
            return Err(Error::invalid_input("the token file holds no token")
                .with_context("token file", path.display()));
        }
        Ok(tokens)
    }

    /// Whether `presented` is this token, in time independent of where they differ.
    pub fn matches(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        bool::from(self.digest.ct_eq(&digest))
    }
}

/// Who may call the API.
///
/// - With tokens, a request must carry `Authorization: Bearer <token>` (or the session cookie
///   the page gets from `POST /api/session`); anything else is answered 401 with a JSON error.
/// - [`allow_loopback_without_token`](Self::allow_loopback_without_token) also lets clients on
///   a loopback address in without a token. The peer address comes from axum's
///   `ConnectInfo<SocketAddr>` (serve with `into_make_service_with_connect_info`); without it
///   no client counts as loopback. Do not turn it on behind a reverse proxy on the same host:
///   every request would come from loopback.
/// - [`disabled`](Self::disabled) turns authentication off, for an application that
///   authenticates before the router.
///
/// The default has no tokens and no loopback exception: every API request is refused until
/// tokens are configured.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct AuthConfig {
    /// The accepted tokens.
    pub tokens: Vec<BearerToken>,
    /// Let loopback clients in without a token.
    pub allow_loopback_without_token: bool,
    /// No authentication at all.
    pub disabled: bool,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "AuthConfig {{ tokens: {}, allow_loopback_without_token: {}, disabled: {} }}",
            self.tokens.len(),
            self.allow_loopback_without_token,
            self.disabled
        )
    }
}

impl AuthConfig {
    /// Requests need one of `tokens`.
    pub fn tokens(tokens: impl IntoIterator<Item = BearerToken>) -> Self {
        AuthConfig {
            tokens: tokens.into_iter().collect(),
            ..AuthConfig::default()
        }
    }

    /// No authentication: for a router nested in an application that authenticates first.
    pub fn disabled() -> Self {
        AuthConfig {
            disabled: true,
            ..AuthConfig::default()
        }
    }

    /// Sets whether loopback clients need no token.
    pub fn allow_loopback_without_token(mut self, allow: bool) -> Self {
        self.allow_loopback_without_token = allow;
        self
    }

    fn accepts(&self, presented: &str) -> bool {
        // Every token is compared, so the time does not tell which one (if any) matched.
        self.tokens
            .iter()
            .fold(subtle::Choice::from(0), |acc, t| {
                let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
                acc | t.digest.ct_eq(&digest)
            })
            .into()
    }
}

/// Page sessions: random ids (kept as digests) with an expiry.
#[derive(Default)]
pub(crate) struct Sessions {
    by_digest: parking_lot::Mutex<HashMap<[u8; 32], Instant>>,
}

impl Sessions {
    fn create(&self) -> String {
        let id: [u8; 32] = rand::random();
        let id = hex::encode(id);
        let digest: [u8; 32] = Sha256::digest(id.as_bytes()).into();
        let now = Instant::now();
        let mut map = self.by_digest.lock();
        map.retain(|_, expiry| *expiry > now);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map.iter().min_by_key(|(_, e)| **e).map(|(k, _)| *k)
        {
            map.remove(&oldest);
        }
        map.insert(digest, now + SESSION_TTL);
        id
    }

    fn valid(&self, id: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(id.as_bytes()).into();
        let map = self.by_digest.lock();
        map.get(&digest).is_some_and(|e| *e > Instant::now())
    }

    fn remove(&self, id: &str) {
        let digest: [u8; 32] = Sha256::digest(id.as_bytes()).into();
        self.by_digest.lock().remove(&digest);
    }
}

/// What the auth check needs.
#[derive(Clone)]
pub(crate) struct AuthState {
    pub(crate) config: Arc<AuthConfig>,
    pub(crate) sessions: Arc<Sessions>,
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim().to_string())
}

fn is_loopback(req: &Request) -> bool {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|ConnectInfo(addr)| addr.ip().is_loopback())
}

fn unauthorized(message: &str, invalid: bool) -> Response {
    let mut response = ApiError::new(
        StatusCode::UNAUTHORIZED,
        ErrorKind::PermissionDenied,
        message,
    )
    .into_response();
    let challenge = if invalid {
        "Bearer realm=\"crossmodal\", error=\"invalid_token\""
    } else {
        "Bearer realm=\"crossmodal\""
    };
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    response
}

/// Why a request may not pass, or `None` when it may.
fn refusal(auth: &AuthState, req: &Request) -> Option<Response> {
    let config = &auth.config;
    if config.disabled || (config.allow_loopback_without_token && is_loopback(req)) {
        return None;
    }
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or(""));
    if let Some(value) = bearer {
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "));
        return match token {
            Some(t) if config.accepts(t.trim()) => None,
            Some(_) => Some(unauthorized("the bearer token is not valid", true)),
            None => Some(unauthorized(
                "the Authorization header must be `Bearer <token>`",
                true,
            )),
        };
    }
    if let Some(id) = session_cookie(req.headers()) {
        return if auth.sessions.valid(&id) {
            None
        } else {
            Some(unauthorized(
                "the session has expired: sign in again with a token",
                true,
            ))
        };
    }
    if config.tokens.is_empty() {
        return Some(unauthorized(
            "this service has no API tokens configured: give it tokens (or allow loopback \
             clients without one) to use the API",
            false,
        ));
    }
    Some(unauthorized(
        "missing bearer token: send `Authorization: Bearer <token>`",
        false,
    ))
}

/// The check in front of every `/api` route but `POST /api/session`.
pub(crate) async fn require_auth(
    State(auth): State<AuthState>,
    req: Request,
    next: Next,
) -> Response {
    match refusal(&auth, &req) {
        Some(response) => response,
        None => next.run(req).await,
    }
}

/// The body of `POST /api/session`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SessionBody {
    token: String,
}

/// `POST /api/session`: exchanges a valid token for an HttpOnly, SameSite=Strict session cookie
/// (the page's `<img>` and `<video>` elements cannot send an `Authorization` header).
pub(crate) async fn create_session(
    State(auth): State<AuthState>,
    base: crate::api::Base,
    body: std::result::Result<axum::Json<SessionBody>, axum::extract::rejection::JsonRejection>,
) -> std::result::Result<Response, ApiError> {
    let axum::Json(body) = body?;
    if auth.config.disabled {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    if !auth.config.accepts(body.token.trim()) {
        return Ok(unauthorized("the token is not valid", true));
    }
    let id = auth.sessions.create();
    let cookie = format!(
        "{SESSION_COOKIE}={id}; Path={}/; HttpOnly; SameSite=Strict; Max-Age={}",
        base.0,
        SESSION_TTL.as_secs()
    );
    let mut response = StatusCode::NO_CONTENT.into_response();
    let value = HeaderValue::from_str(&cookie).map_err(crate::error::internal)?;
    response.headers_mut().insert(header::SET_COOKIE, value);
    Ok(response)
}

/// `DELETE /api/session`: ends the page's session.
pub(crate) async fn delete_session(
    State(auth): State<AuthState>,
    base: crate::api::Base,
    headers: HeaderMap,
) -> std::result::Result<Response, ApiError> {
    if let Some(id) = session_cookie(&headers) {
        auth.sessions.remove(&id);
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    let cookie = format!(
        "{SESSION_COOKIE}=; Path={}/; HttpOnly; SameSite=Strict; Max-Age=0",
        base.0
    );
    let value = HeaderValue::from_str(&cookie).map_err(crate::error::internal)?;
    response.headers_mut().insert(header::SET_COOKIE, value);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_and_never_shown() {
        let t = BearerToken::new("0123456789abcdef-secret").unwrap();
        assert!(t.matches("0123456789abcdef-secret"));
        assert!(!t.matches("0123456789abcdef-secreT"));
        assert!(!t.matches(""));
        assert_eq!(format!("{t:?}"), "BearerToken(..)");
        let auth = AuthConfig::tokens([t, BearerToken::new("another-token-of-16").unwrap()]);
        assert!(auth.accepts("another-token-of-16"));
        assert!(!auth.accepts("another-token-of-17"));
        assert!(!format!("{auth:?}").contains("secret"));
        assert!(BearerToken::new("short").is_err());
        assert!(BearerToken::new("has a space inside it").is_err());
        assert!(BearerToken::new("control\u{7}characters!!").is_err());
    }

    #[test]
    fn token_files_skip_comments_and_name_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(
            &path,
            "# team tokens\n\nfirst-token-0123456789\n  second-token-0123456789  \n",
        )
        .unwrap();
        let tokens = BearerToken::from_file(&path).unwrap();
        assert_eq!(tokens.len(), 2);
        assert!(tokens[1].matches("second-token-0123456789"));
        std::fs::write(&path, "first-token-0123456789\nshort\n").unwrap();
        let err = BearerToken::from_file(&path).unwrap_err();
        assert!(err.to_string().contains("line: 2"), "{err}");
        assert!(!err.to_string().contains("first-token"), "{err}");
        std::fs::write(&path, "# nothing\n").unwrap();
        assert!(BearerToken::from_file(&path).is_err());
    }

    #[test]
    fn sessions_expire_on_removal() {
        let s = Sessions::default();
        let id = s.create();
        assert!(s.valid(&id));
        assert!(!s.valid("nope"));
        s.remove(&id);
        assert!(!s.valid(&id));
    }
}
