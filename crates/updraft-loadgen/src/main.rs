//! `updraft-loadgen`: drives an MWS-compatible WebSocket gateway through its
//! real HTTP API and reports memory, fan-out throughput, latency and connect
//! rate; and EDS → socket and EDS → webhook delivery (against Updraft or Parse
//! Server). Every run is bounded by `--max-seconds`.

mod fleet;
mod http;
mod latency;
mod proc_stats;
mod realtime;
mod report;
mod scenarios;
mod webhooks;
mod ws;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

use crate::latency::LatencyArgs;
use crate::realtime::{CreatesArgs, EdsChangesArgs};
use crate::report::{SharedReport, round};
use crate::scenarios::{BroadcastArgs, Common, ConnectRateArgs, IdleArgs, TaggedArgs};
use crate::webhooks::WebhooksArgs;

#[derive(Debug, Parser)]
#[command(name = "updraft-loadgen", version, about)]
struct Cli {
    /// Base URL of the gateway's HTTP API.
    #[arg(long, global = true, default_value = "http://127.0.0.1:8080")]
    target: String,
    /// Sent as `Authorization: Bearer` on API calls (required by `tagged`).
    #[arg(long, global = true)]
    admin_token: Option<String>,
    /// Hard limit on the whole run; figures gathered so far are printed and
    /// the exit code is 2 when it is hit.
    #[arg(long, global = true, default_value_t = 120.0)]
    max_seconds: f64,
    /// Also print one JSON object line with every figure.
    #[arg(long, global = true)]
    json: bool,
    /// Concurrent WebSocket handshakes in flight.
    #[arg(long, global = true, default_value_t = 256)]
    handshake_concurrency: usize,
    /// Keep-alive HTTP connections used to fetch connect URIs.
    #[arg(long, global = true, default_value_t = 16)]
    http_connections: usize,
    /// Server process to read RSS and CPU time from (/proc/<pid>).
    #[arg(long, global = true)]
    server_pid: Option<u32>,
    /// Free-form name carried into the output (e.g. `updraft`, `node-ws`).
    #[arg(long, global = true)]
    label: Option<String>,
    /// Runtime worker threads; defaults to the CPUs this process may use
    /// (one under `taskset -c 1`, which selects a single-threaded runtime).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Server memory per idle connection.
    Idle(IdleArgs),
    /// Every message to every socket, published as fast as possible.
    Broadcast(BroadcastArgs),
    /// Every message to one random tag (sockets created via POST /v1/sockets).
    Tagged(TaggedArgs),
    /// Paced unicast messages; publish→delivery latency percentiles.
    Latency(LatencyArgs),
    /// Connections per second, then an orderly close of all of them.
    ConnectRate(ConnectRateArgs),
    /// Todos created over REST at a fixed rate; create → socket frame latency and deliveries/s
    /// (Updraft: built-in EDS → MWS delivery; Parse: LiveQuery).
    EdsChanges(EdsChangesArgs),
    /// Todos created over REST; webhook deliveries/s and create → delivery lag at a receiver in this process.
    Webhooks(WebhooksArgs),
    /// Todos created over REST at a fixed rate, alone: create round trips (beside another load, see `bench/run-mixed.sh`).
    Creates(CreatesArgs),
}

impl Scenario {
    fn name(&self) -> &'static str {
        match self {
            Scenario::Idle(_) => "idle",
            Scenario::Broadcast(_) => "broadcast",
            Scenario::Tagged(_) => "tagged",
            Scenario::Latency(_) => "latency",
            Scenario::ConnectRate(_) => "connect-rate",
            Scenario::EdsChanges(_) => "eds-changes",
            Scenario::Webhooks(_) => "webhooks",
            Scenario::Creates(_) => "creates",
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    fleet::now_ns(); // pin the latency clock's origin at process start

    let threads = cli.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let runtime = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(run(cli));
    // Thousands of reader tasks may still be parked; do not wait on them.
    runtime.shutdown_timeout(Duration::from_millis(200));
    code
}

async fn run(cli: Cli) -> ExitCode {
    let started = Instant::now();
    let report = SharedReport::default();
    report.set("scenario", cli.scenario.name());
    report.set("target", cli.target.as_str());
    if let Some(label) = &cli.label {
        report.set("label", label.as_str());
    }

    let max = Duration::from_secs_f64(cli.max_seconds.max(1.0));
    let deadline = tokio::time::Instant::now() + max;
    // Leave time to compute and print figures before the hard stop.
    let soft_deadline = deadline - (max / 20).min(Duration::from_secs(2));

    let outcome = tokio::time::timeout_at(deadline, async {
        let target = Arc::new(http::Target::resolve(&cli.target, cli.admin_token.clone()).await?);
        let common = Common {
            target,
            server_pid: cli.server_pid,
            http_connections: cli.http_connections,
            handshake_concurrency: cli.handshake_concurrency,
            soft_deadline,
            report: report.clone(),
        };
        match &cli.scenario {
            Scenario::Idle(a) => scenarios::idle(&common, a).await,
            Scenario::Broadcast(a) => scenarios::broadcast(&common, a).await,
            Scenario::Tagged(a) => scenarios::tagged(&common, a).await,
            Scenario::Latency(a) => latency::latency(&common, a).await,
            Scenario::ConnectRate(a) => scenarios::connect_rate(&common, a).await,
            Scenario::EdsChanges(a) => realtime::eds_changes(&common, a).await,
            Scenario::Webhooks(a) => webhooks::webhooks(&common, a).await,
            Scenario::Creates(a) => realtime::creates(&common, a).await,
        }
    })
    .await;

    let code = match outcome {
        Ok(Ok(true)) => {
            report.set("complete", true);
            ExitCode::SUCCESS
        }
        Ok(Ok(false)) if tokio::time::Instant::now() >= soft_deadline => {
            // The scenario gave up at the soft deadline with partial figures.
            report.set("complete", false);
            report.set("error", format!("--max-seconds {} reached", cli.max_seconds));
            ExitCode::from(2)
        }
        Ok(Ok(false)) => {
            report.set("complete", false);
            ExitCode::FAILURE
        }
        Ok(Err(e)) => {
            report.set("complete", false);
            report.set("error", format!("{e:#}"));
            ExitCode::FAILURE
        }
        Err(_) => {
            report.set("complete", false);
            report.set("error", format!("--max-seconds {} reached", cli.max_seconds));
            ExitCode::from(2)
        }
    };
    report.set("elapsed_s", round(started.elapsed().as_secs_f64(), 3));

    let r = report.lock();
    let label = cli.label.as_deref().map(|l| format!(" [{l}]")).unwrap_or_default();
    println!("updraft-loadgen {} -> {}{label}", cli.scenario.name(), cli.target);
    print!("{}", r.to_human());
    if cli.json {
        println!("{}", r.to_json_line());
    }
    if let Some(e) = r.get("error") {
        eprintln!("error: {}", e.as_str().unwrap_or_default());
    }
    code
}
