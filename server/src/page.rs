//! The HTML page served at `/`: upload, the library as a grid of thumbnail cards, and search
//! results as clips. It finds the API relative to its own address, so it works nested under a
//! prefix.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// The page.
const PAGE: &str = include_str!("page.html");

pub(crate) async fn page() -> Response {
    let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' \
             'unsafe-inline'; img-src 'self' https: http: data: blob:; media-src 'self' https: \
             http: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
