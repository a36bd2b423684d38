//! The load scenarios, and what they share. Each records its figures into the
//! shared report and returns whether the run was complete (every socket
//! connected, every expected message delivered). `latency` (latency.rs),
//! `eds-changes` and `creates` (realtime.rs) and `webhooks` have files of their own.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use serde_json::json;
use tokio::task::JoinHandle;

use crate::fleet::{self, ConnectOpts, RecvStats, UriSource, now_ns};
use crate::http::{self, HttpConn, Target};
use crate::proc_stats::{self, Pid};
use crate::report::{SharedReport, round};

/// Settings shared by every scenario.
#[derive(Clone)]
pub(crate) struct Common {
    pub target: Arc<Target>,
    pub server_pid: Option<u32>,
    pub http_connections: usize,
    pub handshake_concurrency: usize,
    /// Waits give up here (slightly before the hard deadline) so the
    /// scenario can still compute and record its partial figures.
    pub soft_deadline: tokio::time::Instant,
    pub report: SharedReport,
}

impl Common {
    pub(crate) fn connect_opts(&self, sockets: usize, source: UriSource) -> ConnectOpts {
        ConnectOpts {
            sockets,
            source,
            http_connections: self.http_connections,
            handshake_concurrency: self.handshake_concurrency,
        }
    }

    pub(crate) fn server_rss(&self) -> Option<u64> {
        let pid = self.server_pid?;
        proc_stats::rss_kib(Pid::Other(pid)).inspect_err(|e| eprintln!("warning: {e:#}")).ok()
    }

    pub(crate) fn server_cpu(&self) -> Option<f64> {
        let pid = self.server_pid?;
        proc_stats::cpu_seconds(Pid::Other(pid)).inspect_err(|e| eprintln!("warning: {e:#}")).ok()
    }

    pub(crate) fn record_self_rss(&self) {
        if let Ok(kib) = proc_stats::rss_kib(Pid::SelfProcess) {
            self.report.set("loadgen_rss_kib", kib);
        }
    }

    pub(crate) fn record_recv_errors(&self, stats: &RecvStats) {
        let r = &self.report;
        r.set("closed_by_server", stats.closed_by_server.load(Ordering::Relaxed));
        r.set("read_errors", stats.read_errors.load(Ordering::Relaxed));
        r.set("pings_answered", stats.pings.load(Ordering::Relaxed));
        if let Some(e) = stats.first_error.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            r.set("first_error", e.as_str());
        }
    }

    pub(crate) async fn sleep(&self, d: Duration) {
        tokio::time::sleep_until((tokio::time::Instant::now() + d).min(self.soft_deadline)).await;
    }

    /// The server's CPU time (with `--server-pid`) and this process's, now.
    pub(crate) fn cpu_times(&self) -> CpuTimes {
        CpuTimes { server: self.server_cpu(), own: proc_stats::cpu_seconds(Pid::SelfProcess).ok() }
    }
}

/// CPU seconds used so far by the server and by this process, where known.
pub(crate) struct CpuTimes {
    server: Option<f64>,
    own: Option<f64>,
}

impl CpuTimes {
    /// Records the CPU time used since `before`: `server_cpu_s`, `server_cpu_us_per_delivery` (rounded to
    /// `decimals`, when there were deliveries) and `loadgen_cpu_s`.
    pub(crate) fn record_since(&self, before: &CpuTimes, r: &SharedReport, deliveries: u64, decimals: i32) {
        if let (Some(b), Some(a)) = (before.server, self.server) {
            r.set("server_cpu_s", round(a - b, 2));
            if deliveries > 0 {
                r.set("server_cpu_us_per_delivery", round((a - b) * 1e6 / deliveries as f64, decimals));
            }
        }
        if let (Some(b), Some(a)) = (before.own, self.own) {
            r.set("loadgen_cpu_s", round(a - b, 2));
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct IdleArgs {
    #[arg(long, default_value_t = 1000)]
    pub sockets: usize,
    /// Time to let the server settle before the second RSS reading.
    #[arg(long, default_value_t = 3.0)]
    pub settle_seconds: f64,
}

/// Memory cost of idle connections on the server.
pub(crate) async fn idle(c: &Common, a: &IdleArgs) -> Result<bool> {
    let stats = Arc::new(RecvStats::new(0, false));
    let before = c.server_rss();
    let fleet = fleet::connect(&c.target, &c.connect_opts(a.sockets, UriSource::Anonymous), &stats, &c.report).await?;
    c.sleep(Duration::from_secs_f64(a.settle_seconds)).await;
    let after = c.server_rss();
    if let (Some(before), Some(after)) = (before, after) {
        c.report.set("rss_before_kib", before);
        c.report.set("rss_after_kib", after);
        // Per connected socket, so failures do not inflate the figure.
        let delta = after.saturating_sub(before) as f64 * 1024.0;
        if !fleet.connected.is_empty() {
            c.report.set("rss_per_socket_bytes", round(delta / fleet.connected.len() as f64, 0));
        }
    } else {
        c.report.set("rss_note", "pass --server-pid for server memory figures");
    }
    c.record_self_rss();
    c.report.set("open_at_end", stats.open.load(Ordering::Relaxed));
    c.record_recv_errors(&stats);
    Ok(fleet.failures == 0 && stats.open.load(Ordering::Relaxed) as usize == a.sockets)
}

#[derive(Debug, Args)]
pub(crate) struct ConnectRateArgs {
    #[arg(long, default_value_t = 1000)]
    pub sockets: usize,
}

/// Connection establishment throughput, then an orderly close of everything.
pub(crate) async fn connect_rate(c: &Common, a: &ConnectRateArgs) -> Result<bool> {
    let stats = Arc::new(RecvStats::new(0, false));
    let fleet = fleet::connect(&c.target, &c.connect_opts(a.sockets, UriSource::Anonymous), &stats, &c.report).await?;
    let failures = fleet.failures;
    if let Some(kib) = c.server_rss() {
        c.report.set("server_rss_kib", kib);
    }
    c.record_self_rss();
    let left = c.soft_deadline.saturating_duration_since(tokio::time::Instant::now());
    let closing = fleet.close_all(left).await;
    c.report.set("close_s", round(closing.as_secs_f64(), 4));
    c.report.set("open_after_close", stats.open.load(Ordering::Relaxed));
    c.record_recv_errors(&stats);
    Ok(failures == 0 && stats.open.load(Ordering::Relaxed) == 0)
}

#[derive(Debug, Args)]
pub(crate) struct BroadcastArgs {
    #[arg(long, default_value_t = 1000)]
    pub sockets: usize,
    #[arg(long, default_value_t = 100)]
    pub messages: usize,
    /// Bytes of `data` per message.
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Concurrent keep-alive publishing connections.
    #[arg(long, default_value_t = 4)]
    pub publishers: usize,
    /// Give up once nothing has arrived for this long after publishing ended.
    #[arg(long, default_value_t = 5.0)]
    pub stall_seconds: f64,
    /// Publish on this node instead of `--target` (sockets still open on `--target`): delivery across a `--bus`.
    #[arg(long)]
    pub publish_target: Option<String>,
    /// Publish nothing: wait for `--messages` broadcasts that another load generator publishes (several
    /// processes, one per node, hold more sockets than one process may; `bench/run-cluster.sh`). Give it a
    /// `--stall-seconds` long enough for the others to connect.
    #[arg(long)]
    pub listen_only: bool,
}

/// The wall-clock time (ms since the Unix epoch) of `now_ns()`'s reading `at`, comparable across processes.
fn unix_ms_at(at: u64) -> u64 {
    let now_unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let ago = Duration::from_nanos(now_ns().saturating_sub(at));
    u64::try_from(now_unix.saturating_sub(ago).as_millis()).unwrap_or(u64::MAX)
}

/// Fan-out throughput: every message to every socket.
pub(crate) async fn broadcast(c: &Common, a: &BroadcastArgs) -> Result<bool> {
    let stats = Arc::new(RecvStats::new(a.size as u64, false));
    let fleet = fleet::connect(&c.target, &c.connect_opts(a.sockets, UriSource::Anonymous), &stats, &c.report).await?;
    let body = message_body(&"x".repeat(a.size), json!({ "sockets": ["*"], "tags": [] }));
    let expected = (fleet.connected.len() * a.messages) as u64;
    let mut phase = Phase::new(vec![body], a.messages, a.publishers, expected, a.stall_seconds);
    phase.publish_on(c, a.publish_target.as_deref()).await?;
    phase.listen_only = a.listen_only;
    Ok(phase.run_and_record(c, &stats, fleet.failures).await)
}

#[derive(Debug, Args)]
pub(crate) struct TaggedArgs {
    #[arg(long, default_value_t = 1000)]
    pub sockets: usize,
    /// Number of distinct tags; socket i gets tag `t{i % tags}`.
    #[arg(long, default_value_t = 100)]
    pub tags: usize,
    #[arg(long, default_value_t = 1000)]
    pub messages: usize,
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    #[arg(long, default_value_t = 4)]
    pub publishers: usize,
    #[arg(long, default_value_t = 5.0)]
    pub stall_seconds: f64,
    /// Publish on this node instead of `--target` (sockets still open on `--target`): delivery across a `--bus`.
    #[arg(long)]
    pub publish_target: Option<String>,
}

/// Tag-routed fan-out: each message to one random tag's sockets.
pub(crate) async fn tagged(c: &Common, a: &TaggedArgs) -> Result<bool> {
    anyhow::ensure!(a.tags > 0, "--tags must be at least 1");
    let stats = Arc::new(RecvStats::new(a.size as u64, false));
    let source = UriSource::Tagged { tags: a.tags };
    let fleet = fleet::connect(&c.target, &c.connect_opts(a.sockets, source), &stats, &c.report).await?;

    // Expected deliveries only count sockets that actually connected.
    let mut per_tag = vec![0u64; a.tags];
    for s in &fleet.connected {
        per_tag[s.index % a.tags] += 1;
    }
    let data = "x".repeat(a.size);
    let mut expected = 0;
    let bodies: Vec<Vec<u8>> = (0..a.messages)
        .map(|_| {
            let tag = rand::random_range(0..a.tags);
            expected += per_tag[tag];
            message_body(&data, json!({ "sockets": [], "tags": [fleet::tag_name(tag)] }))
        })
        .collect();
    c.report.set("tags", a.tags);
    let mut phase = Phase::new(bodies, a.messages, a.publishers, expected, a.stall_seconds);
    phase.publish_on(c, a.publish_target.as_deref()).await?;
    Ok(phase.run_and_record(c, &stats, fleet.failures).await)
}

/// A send this much behind its schedule counts as late. Tokio timers round up to the next millisecond.
const LATE_SEND_US: u64 = 2000;

/// Sends paced at a fixed rate: the k-th is due at `start + k / rate`. How late each actually leaves is recorded,
/// since a message's timestamp is its actual send time and a stalled sender hides part of a stall from the
/// percentiles.
pub(crate) struct Schedule {
    start: tokio::time::Instant,
    interval_ns: f64,
    end: tokio::time::Instant,
    late: AtomicU64,
    max_lag_us: AtomicU64,
}

impl Schedule {
    pub(crate) fn new(start: tokio::time::Instant, rate: f64, end: tokio::time::Instant) -> Schedule {
        Schedule { start, interval_ns: 1e9 / rate, end, late: AtomicU64::new(0), max_lag_us: AtomicU64::new(0) }
    }

    /// Waits until the k-th send is due; false when it would fall at or after the end.
    pub(crate) async fn wait_turn(&self, k: usize) -> bool {
        let due = self.start + Duration::from_nanos((k as f64 * self.interval_ns) as u64);
        if due >= self.end {
            return false;
        }
        tokio::time::sleep_until(due).await;
        let lag = tokio::time::Instant::now().saturating_duration_since(due).as_micros() as u64;
        self.max_lag_us.fetch_max(lag, Ordering::Relaxed);
        if lag > LATE_SEND_US {
            self.late.fetch_add(1, Ordering::Relaxed);
        }
        true
    }

    pub(crate) fn late(&self) -> u64 {
        self.late.load(Ordering::Relaxed)
    }

    pub(crate) fn max_lag_us(&self) -> u64 {
        self.max_lag_us.load(Ordering::Relaxed)
    }
}

/// Nearest-rank percentile of sorted samples.
pub(crate) fn percentile(sorted: &[u64], q: f64) -> u64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// `<name>_count`, `_mean_us`, `_p50_us` … `_max_us` of sorted ns samples.
pub(crate) fn record_latencies(r: &SharedReport, name: &str, sorted_ns: &[u64]) {
    r.set(&format!("{name}_count"), sorted_ns.len());
    if sorted_ns.is_empty() {
        return;
    }
    let mean = sorted_ns.iter().sum::<u64>() as f64 / sorted_ns.len() as f64;
    r.set(&format!("{name}_mean_us"), round(mean / 1e3, 1));
    for (q_name, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)] {
        r.set(&format!("{name}_{q_name}_us"), round(percentile(sorted_ns, q) as f64 / 1e3, 1));
    }
    r.set(&format!("{name}_max_us"), round(sorted_ns[sorted_ns.len() - 1] as f64 / 1e3, 1));
}

pub(crate) fn message_body(data: &str, receivers: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&json!({ "data": data, "receivers": receivers })).expect("JSON of strings")
}

/// A publish-as-fast-as-possible phase with delivery counting, shared by
/// broadcast and tagged.
struct Phase {
    /// Message `i` uses `bodies[i % bodies.len()]`.
    bodies: Arc<Vec<Vec<u8>>>,
    messages: usize,
    publishers: usize,
    expected: u64,
    stall: Duration,
    /// Where messages are published, when not `Common::target`.
    publish_to: Option<Arc<Target>>,
    /// Another process publishes.
    listen_only: bool,
}

impl Phase {
    fn new(bodies: Vec<Vec<u8>>, messages: usize, publishers: usize, expected: u64, stall_seconds: f64) -> Phase {
        Phase {
            bodies: Arc::new(bodies),
            messages,
            publishers,
            expected,
            stall: Duration::from_secs_f64(stall_seconds),
            publish_to: None,
            listen_only: false,
        }
    }

    /// Publishes on the node at `url` (`--publish-target`), if given, rather than on `--target`.
    async fn publish_on(&mut self, c: &Common, url: Option<&str>) -> Result<()> {
        if let Some(url) = url {
            self.publish_to = Some(Arc::new(Target::resolve(url, c.target.admin_token.clone()).await?));
        }
        Ok(())
    }

    /// Runs the phase and records the load generator's own figures; true when the whole run
    /// (connects and deliveries) was complete.
    async fn run_and_record(self, c: &Common, stats: &Arc<RecvStats>, connect_failures: usize) -> bool {
        let complete = self.run(c, stats).await;
        c.record_self_rss();
        c.record_recv_errors(stats);
        complete && connect_failures == 0
    }

    async fn run(self, c: &Common, stats: &Arc<RecvStats>) -> bool {
        let r = &c.report;
        r.set("messages", self.messages);
        r.set("expected", self.expected);
        let cpu_before = c.cpu_times();
        let base = stats.messages.load(Ordering::Relaxed);
        let t0 = Instant::now();
        let t0_ns = now_ns();
        r.set("t0_unix_ms", unix_ms_at(t0_ns));

        let errors = Arc::new(AtomicU64::new(0));
        let workers = self.spawn_publishers(c, &errors);
        let (publish_s, deadline_hit) = self.wait_for_deliveries(c, stats, base, t0, &workers).await;
        let cpu_after = c.cpu_times();

        let mut first_error = None;
        for w in workers {
            if w.is_finished()
                && let Ok(Some(e)) = w.await
            {
                first_error.get_or_insert(e);
            }
        }
        let deliveries = stats.messages.load(Ordering::Relaxed) - base;
        let last_ns = stats.last_delivery_ns.load(Ordering::Relaxed);
        let seconds =
            if deliveries > 0 { last_ns.saturating_sub(t0_ns) as f64 / 1e9 } else { t0.elapsed().as_secs_f64() };
        if let Some(p) = publish_s {
            r.set("publish_s", round(p, 4));
            r.set("publish_per_s", round(self.messages as f64 / p, 1));
        }
        r.set("publish_errors", errors.load(Ordering::Relaxed));
        if let Some(e) = first_error {
            r.set("first_publish_error", e);
        }
        r.set("deliveries", deliveries);
        if last_ns > 0 {
            r.set("last_delivery_unix_ms", unix_ms_at(last_ns));
        }
        r.set("missing", self.expected.saturating_sub(deliveries));
        r.set("size_mismatches", stats.size_mismatches.load(Ordering::Relaxed));
        r.set("seconds", round(seconds, 4));
        r.set("deliveries_per_s", round(deliveries as f64 / seconds.max(1e-9), 0));
        cpu_after.record_since(&cpu_before, r, deliveries, 4);
        !deadline_hit
            && deliveries == self.expected
            && errors.load(Ordering::Relaxed) == 0
            && stats.size_mismatches.load(Ordering::Relaxed) == 0
    }

    /// Starts the publishers, each on a keep-alive connection of its own, taking the next message until all are
    /// sent; each answers its first error.
    fn spawn_publishers(&self, c: &Common, errors: &Arc<AtomicU64>) -> Vec<JoinHandle<Option<String>>> {
        if self.listen_only {
            return Vec::new();
        }
        let next = Arc::new(AtomicUsize::new(0));
        let mut workers: Vec<JoinHandle<Option<String>>> = Vec::new();
        for _ in 0..self.publishers.clamp(1, self.messages.max(1)) {
            let target = self.publish_to.clone().unwrap_or_else(|| c.target.clone());
            let (next, errors, bodies) = (next.clone(), errors.clone(), self.bodies.clone());
            let messages = self.messages;
            workers.push(tokio::spawn(async move {
                let mut conn = HttpConn::new(target);
                let mut first_error = None;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= messages {
                        break;
                    }
                    if let Err(e) = http::publish(&mut conn, &bodies[i % bodies.len()]).await {
                        errors.fetch_add(1, Ordering::Relaxed);
                        first_error.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
                first_error
            }));
        }
        workers
    }

    /// Polls the shared counter (from `base`); stops when everything arrived, when nothing more arrives after
    /// publishing ended, or at the deadline. Answers how long publishing took (from `t0`; `None` if it did not
    /// end) and whether the deadline was hit.
    async fn wait_for_deliveries(
        &self,
        c: &Common,
        stats: &RecvStats,
        base: u64,
        t0: Instant,
        workers: &[JoinHandle<Option<String>>],
    ) -> (Option<f64>, bool) {
        let mut publish_s = None;
        let mut last_count = 0;
        let mut last_progress = Instant::now();
        let mut deadline_hit = false;
        loop {
            let got = stats.messages.load(Ordering::Relaxed) - base;
            if got != last_count {
                last_count = got;
                last_progress = Instant::now();
            }
            if publish_s.is_none() && workers.iter().all(|w| w.is_finished()) {
                publish_s = Some(t0.elapsed().as_secs_f64());
                last_progress = last_progress.max(Instant::now());
            }
            if got >= self.expected && publish_s.is_some() {
                break;
            }
            if publish_s.is_some() && last_progress.elapsed() >= self.stall {
                break;
            }
            if tokio::time::Instant::now() >= c.soft_deadline {
                deadline_hit = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        (publish_s, deadline_hit)
    }
}
