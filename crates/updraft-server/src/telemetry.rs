//! Logs (tracing) and metrics (Prometheus text at `/metrics`).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

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
