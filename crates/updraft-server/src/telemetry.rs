//! Logs (tracing, with one line per request) and metrics (Prometheus text at `/metrics`).

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::TraceLayer;
use tracing::Span;
use tracing_subscriber::EnvFilter;
use updraft_api::error::{ApiError, Code};

/// Logs go to stderr; `RUST_LOG` filters (default `info`).
pub fn init_logs(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: in a log file they are noise.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    // A second initialisation (several applications in one test process) is harmless.
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}

/// The process-wide metrics recorder; installed once, shared by every application in the process.
pub fn metrics() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let handle = PrometheusBuilder::new().install_recorder().expect("the only metrics recorder");
        describe();
        handle
    })
}

fn describe() {
    metrics::describe_gauge!("updraft_mws_sockets_connected", "WebSockets open now");
    metrics::describe_counter!("updraft_mws_messages_published_total", "Messages accepted for delivery");
    metrics::describe_counter!("updraft_mws_frames_delivered_total", "Frames queued to sockets");
    metrics::describe_counter!(
        "updraft_mws_sockets_dropped_slow_total",
        "Sockets closed because their send queue overflowed"
    );
    metrics::describe_counter!(
        "updraft_mws_connections_rejected_total",
        "Upgrades refused for an unknown, expired or used token"
    );
    metrics::describe_counter!("updraft_webhook_attempts_total", "Webhook delivery attempts, by outcome");
    metrics::describe_counter!(
        "updraft_webhook_dead_letters_total",
        "Webhook deliveries given up after the retry window"
    );
    metrics::describe_gauge!("updraft_eds_streams_open", "EDS notification streams open now");
    metrics::describe_counter!("updraft_eds_changes_delivered_total", "EDS changes published to bound gateways");
}

/// The Prometheus text of `/metrics`.
pub fn render(handle: &PrometheusHandle) -> impl axum::response::IntoResponse + use<> {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render())
}

/// Why a request may not read `/metrics` on the main listener: it must carry exactly `Bearer <token>`.
pub fn metrics_token_error(headers: &axum::http::HeaderMap, token: &str) -> Option<ApiError> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Some(ApiError::new(Code::AuthorizationRequired));
    };
    let given = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(given) if updraft_api::auth::same_secret(given, token) => None,
        _ => Some(ApiError::new(Code::InvalidCredentials)),
    }
}

pub type RequestLogs = TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    fn(&axum::extract::Request) -> Span,
    (),
    fn(&axum::response::Response, Duration, &Span),
    (),
    (),
    (),
>;

/// One info line per request, when its response head is ready: method, path (never the query: socket URIs
/// and stream URLs carry their tokens there), status, latency, and the `Enginio-Backend-Id` and
/// `X-Request-Id` the client sent. No other header is read, so no credential reaches the log.
pub fn request_logs() -> RequestLogs {
    TraceLayer::new_for_http()
        .make_span_with(request_span as fn(&axum::extract::Request) -> Span)
        .on_request(())
        .on_response(log_response as fn(&axum::response::Response, Duration, &Span))
        .on_body_chunk(())
        .on_eos(())
        .on_failure(())
}

fn request_span(request: &axum::extract::Request) -> Span {
    let method = request.method().as_str();
    let path = request.uri().path();
    let backend_id = header_field(request, "enginio-backend-id");
    let request_id = header_field(request, "x-request-id");
    tracing::info_span!("request", method, path, backend_id, request_id)
}

fn log_response(response: &axum::response::Response, latency: Duration, _span: &Span) {
    let latency_ms = latency.as_secs_f64() * 1000.0;
    tracing::info!(status = response.status().as_u16(), latency_ms, "request served");
}

/// A header fit for a log line: printable ASCII without spaces or quotes, at most 64 bytes; anything else is
/// left out rather than let a client forge log lines.
fn header_field<'a>(request: &'a axum::extract::Request, name: &str) -> Option<&'a str> {
    let value = request.headers().get(name)?.to_str().ok()?;
    let fits = value.len() <= 64 && value.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
    fits.then_some(value)
}
