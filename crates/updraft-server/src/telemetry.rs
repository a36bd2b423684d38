//! Logs (tracing, with one line per request) and metrics (Prometheus text at `/metrics`).

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;
use updraft_api::error::{ApiError, Code};

/// Logs go to stderr; `RUST_LOG` filters (default `info`). Keep the guard until exit: dropping it writes what
/// is still buffered.
pub fn init_logs(json: bool) -> LogGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: in a log file they are noise.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let batch = Arc::new(Batch::default());
    let flusher = Arc::downgrade(&batch);
    std::thread::Builder::new()
        .name("updraft-logs".into())
        .spawn(move || {
            while let Some(batch) = flusher.upgrade() {
                drop(batch);
                std::thread::sleep(FLUSH_EVERY);
                match flusher.upgrade() {
                    Some(batch) => batch.flush(),
                    None => return,
                }
            }
        })
        .expect("a thread for the logs");
    let writer = BatchedStderr(batch.clone());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_ansi(ansi);
    // A second initialisation (several applications in one test process) is harmless.
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
    LogGuard(batch)
}

/// Writes what is left of the logs when dropped.
pub struct LogGuard(Arc<Batch>);

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.0.flush();
    }
}

/// Log lines gather here and go to stderr together: when `FLUSH_AT` bytes are waiting, every `FLUSH_EVERY`, and
/// at once for a warning or an error. With a line per request, a `write` per line costs a system call each, and
/// tracing-appender's writer thread is woken for each line (a context switch when the server has one core).
#[derive(Default)]
struct Batch {
    lines: Mutex<Vec<u8>>,
}

const FLUSH_AT: usize = 32 * 1024;
const FLUSH_EVERY: Duration = Duration::from_millis(100);

impl Batch {
    fn flush(&self) {
        let mut lines = self.lines.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Batch::write_out(&mut lines);
    }

    /// Written under the lock, so that lines keep their order.
    fn write_out(lines: &mut Vec<u8>) {
        if !lines.is_empty() {
            let _ = std::io::stderr().lock().write_all(lines);
            lines.clear();
        }
    }
}

#[derive(Clone)]
struct BatchedStderr(Arc<Batch>);

/// One event's line, appended to the batch.
struct LineWriter<'a> {
    batch: &'a Batch,
    urgent: bool,
}

impl std::io::Write for LineWriter<'_> {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let mut lines = self.batch.lines.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        lines.extend_from_slice(line);
        if self.urgent || lines.len() >= FLUSH_AT {
            Batch::write_out(&mut lines);
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BatchedStderr {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> LineWriter<'a> {
        LineWriter { batch: &self.0, urgent: false }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> LineWriter<'a> {
        LineWriter { batch: &self.0, urgent: *meta.level() <= tracing::Level::WARN }
    }
}

/// The process-wide metrics recorder; installed once, shared by every application in the process.
pub fn metrics() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            .and_then(|builder| builder.set_buckets_for_metric(Matcher::Full(FANOUT_SOCKETS.into()), SOCKETS_BUCKETS))
            .expect("buckets are not empty")
            .install_recorder()
            .expect("the only metrics recorder");
        describe();
        handle
    })
}

/// Histogram buckets of durations: a request's 100 µs to a stalled fan-out's seconds.
const SECONDS_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
const FANOUT_SOCKETS: &str = "updraft_mws_fanout_sockets";
const SOCKETS_BUCKETS: &[f64] = &[1.0, 10.0, 100.0, 1_000.0, 10_000.0, 100_000.0];

fn describe() {
    metrics::describe_histogram!(
        HTTP_DURATION,
        metrics::Unit::Seconds,
        "HTTP requests from their arrival to their response head, by route group"
    );
    metrics::describe_histogram!(
        "updraft_mws_scheduling_delay_seconds",
        metrics::Unit::Seconds,
        "How long a task spawned on the socket runtime waits to run (sampled 4 times a second)"
    );
    metrics::describe_gauge!(
        "updraft_mws_run_queue_depth",
        "Tasks queued on the socket runtime, not yet taken by a worker"
    );
    metrics::describe_histogram!(FANOUT_SOCKETS, "Sockets one published message was queued to");
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

const HTTP_DURATION: &str = "updraft_http_request_duration_seconds";

/// The service a path belongs to: few values, so that the histogram stays small whatever paths clients send.
fn route_group(path: &str) -> &'static str {
    let Some(rest) = path.strip_prefix("/v1/") else {
        return match path {
            "/healthz" | "/metrics" => "operations",
            _ => "other",
        };
    };
    match rest.split('/').next().unwrap_or_default() {
        "objects" | "users" | "user" | "usergroups" | "object_types" | "auth" | "files" | "search" | "webhooks"
        | "stream_url" => "eds",
        "messages" | "sockets" | "websocket_uri" | "gateways" | "webhook_receivers" => "mws",
        "account" => "account",
        _ => "other",
    }
}

/// The target of the request lines: `RUST_LOG=info,updraft::requests=off` keeps every other line.
pub const REQUESTS: &str = "updraft::requests";

/// Times every request, when its response head is ready, into `updraft_http_request_duration_seconds{group}`,
/// and logs it unless request lines are off: one info line with method, path (never the query: socket URIs and
/// stream URLs carry their tokens there), status, latency, and the `Enginio-Backend-Id` and `X-Request-Id` the
/// client sent. No other header is read, so no credential reaches the log.
///
/// One event rather than tower-http's `TraceLayer` and its span per request (allocated, its fields formatted,
/// entered and left on every poll): the line alone costs a few microseconds (BENCHMARKS.md).
pub async fn observe_request(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = std::time::Instant::now();
    // A WebSocket handshake comes to a socket URI's path, whatever the gateway made it.
    let upgrade = request.headers().contains_key(axum::http::header::UPGRADE);
    let group = if upgrade { "mws" } else { route_group(request.uri().path()) };
    if !tracing::enabled!(target: REQUESTS, tracing::Level::INFO) {
        let response = next.run(request).await;
        metrics::histogram!(HTTP_DURATION, "group" => group).record(started.elapsed().as_secs_f64());
        return response;
    }
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let backend_id = header_field(&request, "enginio-backend-id").map(str::to_owned);
    let request_id = header_field(&request, "x-request-id").map(str::to_owned);
    let response = next.run(request).await;
    let latency = started.elapsed().as_secs_f64();
    metrics::histogram!(HTTP_DURATION, "group" => group).record(latency);
    let latency_ms = latency * 1000.0;
    tracing::info!(
        target: REQUESTS,
        method = method.as_str(),
        path,
        status = response.status().as_u16(),
        latency_ms,
        backend_id,
        request_id,
        "request served"
    );
    response
}

/// A header fit for a log line: printable ASCII without spaces or quotes, at most 64 bytes; anything else is
/// left out rather than let a client forge log lines.
fn header_field<'a>(request: &'a axum::extract::Request, name: &str) -> Option<&'a str> {
    let value = request.headers().get(name)?.to_str().ok()?;
    let fits = value.len() <= 64 && value.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
    fits.then_some(value)
}

#[cfg(test)]
mod tests {
    use super::route_group;

    #[test]
    fn paths_fall_into_few_route_groups() {
        for (path, group) in [
            ("/v1/objects/todos", "eds"),
            ("/v1/users", "eds"),
            ("/v1/user", "eds"),
            ("/v1/messages", "mws"),
            ("/v1/gateways/default/messages", "mws"),
            ("/v1/websocket_uri", "mws"),
            ("/v1/account/apps", "account"),
            ("/healthz", "operations"),
            ("/v1/anything-else", "other"),
            ("/favicon.ico", "other"),
        ] {
            assert_eq!(route_group(path), group, "{path}");
        }
    }
}
