//! `/docs/`: a small viewer of the reference, embedded in the binary, that runs under a strict
//! Content-Security-Policy (its own script and style only, nothing from elsewhere).

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::ApiState;

const INDEX: &str = include_str!("viewer/index.html");
const SCRIPT: &str = include_str!("viewer/viewer.js");
const STYLE: &str = include_str!("viewer/viewer.css");

const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                      img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(kind: &'static str, body: &'static str) -> Response {
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(kind)),
        (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY)),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    (headers, body).into_response()
}

pub(super) fn routes() -> axum::Router<ApiState> {
    axum::Router::new()
        // `/docs/` arrives as `/docs`: the server trims trailing slashes before routing.
        .route("/docs", get(|| async { asset("text/html; charset=utf-8", INDEX) }))
        .route("/docs/viewer.js", get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }))
        .route("/docs/viewer.css", get(|| async { asset("text/css; charset=utf-8", STYLE) }))
}
