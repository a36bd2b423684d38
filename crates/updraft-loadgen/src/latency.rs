//! The `latency` scenario: messages published at a fixed rate, each stamped with its send time, to one random
//! socket, to all, or to one random tag; publish → delivery latency percentiles.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use serde_json::json;
use tokio::task::JoinHandle;

use crate::fleet::{self, RecvStats, Stamp, UriSource, now_ns};
use crate::http::{self, HttpConn, Target};
use crate::report::{SharedReport, round};
use crate::scenarios::{Common, Schedule, message_body, record_latencies};

#[derive(Debug, Args)]
pub(crate) struct LatencyArgs {
    #[arg(long, default_value_t = 1000)]
    pub sockets: usize,
    /// Messages per second, paced open-loop.
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Concurrent publishing connections, so one slow request does not
    /// delay the schedule.
    #[arg(long, default_value_t = 16)]
    pub publishers: usize,
    /// How long to wait for stragglers after the last publish.
    #[arg(long, default_value_t = 2.0)]
    pub grace_seconds: f64,
    /// Every message to every socket (`"*"`) rather than to one random socket: paced broadcasts.
    #[arg(long, conflicts_with = "tags")]
    pub everyone: bool,
    /// Sockets made with tags (socket i gets tag `t{i % tags}`, admin API), and every message to one random tag
    /// rather than to one random socket: paced tagged sends.
    #[arg(long)]
    pub tags: Option<usize>,
}

/// Publish→delivery latency for messages at a fixed rate, each to one random socket, to all (`--everyone`), or to
/// one random tag (`--tags`).
pub(crate) async fn latency(c: &Common, a: &LatencyArgs) -> Result<bool> {
    anyhow::ensure!(a.rate > 0, "--rate must be positive");
    anyhow::ensure!(a.tags != Some(0), "--tags must be at least 1");
    // Tagged sends carry their send time after a marker, and the receivers count only those: in a mixed load the
    // same sockets also get another client's broadcasts, whose frames start with their (other clock's) send time.
    let stats = Arc::new(match a.tags {
        Some(_) => RecvStats { stamped_only: true, expect_size: a.size as u64, ..RecvStats::stamped(Stamp::Marked, 1) },
        None => RecvStats::new(a.size as u64, true),
    });
    let source = match a.tags {
        Some(tags) => UriSource::Tagged { tags },
        None => UriSource::Anonymous,
    };
    let fleet = fleet::connect(&c.target, &c.connect_opts(a.sockets, source), &stats, &c.report).await?;
    anyhow::ensure!(!fleet.connected.is_empty(), "no socket connected");
    let ids: Arc<Vec<String>> = Arc::new(fleet.connected.iter().map(|s| s.id.clone()).collect());
    anyhow::ensure!(
        a.tags.is_some() || ids.iter().all(|id| !id.is_empty()),
        "socket URIs carry no token= parameter to address sockets by"
    );
    // Tagged: how many connected sockets hold each tag.
    let per_tag: Arc<Vec<u64>> = Arc::new(a.tags.map_or_else(Vec::new, |tags| {
        let mut per_tag = vec![0; tags];
        fleet.connected.iter().for_each(|s| per_tag[s.index % tags] += 1);
        per_tag
    }));

    let published = publish_paced(c, a, ids, per_tag, &stats).await?;
    // Wait for stragglers.
    let grace_end = (tokio::time::Instant::now() + Duration::from_secs_f64(a.grace_seconds)).min(c.soft_deadline);
    while stats.messages.load(Ordering::Relaxed) < published.owed && tokio::time::Instant::now() < grace_end {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let received = stats.messages.load(Ordering::Relaxed);

    let lat = stats.sorted_latencies();
    published.record(&c.report, a.rate, received, &stats);
    record_latencies(&c.report, "latency", &lat);
    c.record_self_rss();
    c.record_recv_errors(&stats);
    Ok(fleet.failures == 0 && published.sent as usize == published.planned && received >= published.owed)
}

/// What the latency scenario's publishing did.
struct Published {
    planned: usize,
    /// Messages published.
    sent: u64,
    /// Frames owed: one per message, one per message and socket, or one per message and socket with its tag.
    owed: u64,
    seconds: f64,
    /// Frames received by the end of publishing.
    received: u64,
    errors: u64,
    first_error: Option<String>,
    schedule: Arc<Schedule>,
}

impl Published {
    /// Records the publishing figures, then what arrived by the end of the grace time (`received`).
    fn record(&self, r: &SharedReport, rate: u64, received: u64, stats: &RecvStats) {
        r.set("rate_target", rate);
        r.set("messages_planned", self.planned);
        r.set("messages_sent", self.sent);
        r.set("frames_owed", self.owed);
        r.set("deliveries_per_s", round(self.received as f64 / self.seconds, 1));
        r.set("rate_achieved", round(self.sent as f64 / self.seconds, 1));
        r.set("publish_errors", self.errors);
        if let Some(e) = &self.first_error {
            r.set("first_publish_error", e.as_str());
        }
        r.set("late_sends", self.schedule.late());
        r.set("max_send_lag_us", self.schedule.max_lag_us());
        r.set("received", received);
        r.set("lost", self.owed.saturating_sub(received));
        r.set("size_mismatches", stats.size_mismatches.load(Ordering::Relaxed));
    }
}

/// Publishes `--rate` messages a second for `--seconds` on `--publishers` connections, to the sockets `ids` or the
/// tags (`per_tag` counts each tag's sockets); answers once the last publisher is done.
async fn publish_paced(
    c: &Common,
    a: &LatencyArgs,
    ids: Arc<Vec<String>>,
    per_tag: Arc<Vec<u64>>,
    stats: &RecvStats,
) -> Result<Published> {
    let total = (a.rate as f64 * a.seconds).round() as usize;
    let start = tokio::time::Instant::now() + Duration::from_millis(10);
    let publisher = Publisher {
        target: c.target.clone(),
        ids,
        next: Arc::new(AtomicUsize::new(0)),
        sent_ok: Arc::new(AtomicU64::new(0)),
        errors: Arc::new(AtomicU64::new(0)),
        schedule: Arc::new(Schedule::new(start, a.rate as f64, c.soft_deadline)),
        total,
        size: a.size,
        everyone: a.everyone,
        per_tag,
        tagged_owed: Arc::new(AtomicU64::new(0)),
    };
    let mut workers: Vec<JoinHandle<Option<String>>> = Vec::new();
    for _ in 0..a.publishers.max(1) {
        workers.push(tokio::spawn(publish_stamped(publisher.clone())));
    }
    let mut first_error = None;
    for w in workers {
        if let Some(e) = w.await? {
            first_error.get_or_insert(e);
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let sent = publisher.sent_ok.load(Ordering::Relaxed);
    let received = stats.messages.load(Ordering::Relaxed);
    let owed = match (a.tags, a.everyone) {
        (Some(_), _) => publisher.tagged_owed.load(Ordering::Relaxed),
        (None, true) => sent * publisher.ids.len() as u64,
        (None, false) => sent,
    };
    let errors = publisher.errors.load(Ordering::Relaxed);
    Ok(Published { planned: total, sent, owed, seconds, received, errors, first_error, schedule: publisher.schedule })
}

/// What each latency publisher gets: where to send, and what the publishers share.
#[derive(Clone)]
struct Publisher {
    target: Arc<Target>,
    /// The connected sockets' ids.
    ids: Arc<Vec<String>>,
    /// The index of the next message to send.
    next: Arc<AtomicUsize>,
    sent_ok: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
    schedule: Arc<Schedule>,
    total: usize,
    size: usize,
    everyone: bool,
    /// Tagged: how many connected sockets hold each tag (else empty).
    per_tag: Arc<Vec<u64>>,
    /// Tagged: the frames owed for the messages sent so far.
    tagged_owed: Arc<AtomicU64>,
}

/// One keep-alive connection's share of the paced messages: each sent when due, stamped with its send time;
/// answers its first error.
async fn publish_stamped(publisher: Publisher) -> Option<String> {
    let Publisher { target, ids, next, sent_ok, errors, schedule, total, size, everyone, per_tag, tagged_owed } =
        publisher;
    let mut conn = HttpConn::new(target);
    let mut first_error = None;
    loop {
        let k = next.fetch_add(1, Ordering::Relaxed);
        if k >= total || !schedule.wait_turn(k).await {
            break;
        }
        let tag = (!per_tag.is_empty()).then(|| rand::random_range(0..per_tag.len()));
        let receivers = match tag {
            Some(tag) => json!({ "sockets": [], "tags": [fleet::tag_name(tag)] }),
            None if everyone => json!({ "sockets": ["*"], "tags": [] }),
            None => json!({ "sockets": [ids[rand::random_range(0..ids.len())]], "tags": [] }),
        };
        let mut data = match tag {
            Some(_) => format!("lg:{}", now_ns()),
            None => now_ns().to_string(),
        };
        while data.len() < size {
            data.push('x');
        }
        let body = message_body(&data, receivers);
        match http::publish(&mut conn, &body).await {
            Ok(()) => {
                sent_ok.fetch_add(1, Ordering::Relaxed);
                if let Some(tag) = tag {
                    tagged_owed.fetch_add(per_tag[tag], Ordering::Relaxed);
                }
            }
            Err(e) => {
                errors.fetch_add(1, Ordering::Relaxed);
                first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    first_error
}
