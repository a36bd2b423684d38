//! Opening, holding and closing many WebSocket connections.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

use crate::http::{self, HttpConn, Target};
use crate::report::{SharedReport, round};
use updraft_ws::OP_TEXT;
use updraft_ws::client::{self, Event, FrameDecoder};

use crate::ws::{self, JSON_PREFIX_LEN, PREFIX_LEN, READ_BUF, WsConn, WsUri};

mod reader;
use reader::read_loop;

/// Above this the load generator and the server would both run into the
/// 20,000 open-file hard limit of the bench machine.
pub(crate) const MAX_SOCKETS: usize = 19_000;
/// File descriptors kept free for HTTP connections, stdio and the runtime.
const FD_HEADROOM: u64 = 200;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

static START: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since process start; the latency scenario's clock.
pub(crate) fn now_ns() -> u64 {
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Counters shared by every reader task. Updated once per read batch, not per
/// message, to keep the receive path cheap.
#[derive(Debug, Default)]
pub(crate) struct RecvStats {
    pub messages: AtomicU64,
    pub payload_bytes: AtomicU64,
    /// Messages whose size differed from `expect_size` (when non-zero).
    pub size_mismatches: AtomicU64,
    pub expect_size: u64,
    pub last_delivery_ns: AtomicU64,
    pub pings: AtomicU64,
    pub open: AtomicU64,
    pub closed_by_server: AtomicU64,
    pub read_errors: AtomicU64,
    pub first_error: Mutex<Option<String>>,
    /// Publish→delivery latencies in ns; `Some` only when latency is tracked.
    pub latencies: Option<Mutex<Vec<u64>>>,
    /// Where a message carries its send time.
    pub stamp: Stamp,
    /// Latency is recorded on every `sample_every`-th socket only (by request
    /// order), so that wide fan-outs do not drown the receiver in samples.
    pub sample_every: usize,
    /// Counts only messages that carry a send time as `stamp` says: the
    /// sockets also get other clients' sends (a broadcast to everyone).
    pub stamped_only: bool,
}

impl RecvStats {
    pub(crate) fn new(expect_size: u64, track_latency: bool) -> Self {
        Self {
            expect_size,
            latencies: track_latency.then(|| Mutex::new(Vec::with_capacity(1 << 16))),
            sample_every: 1,
            ..Self::default()
        }
    }

    /// Tracks latency with send times found as `stamp` says, on every
    /// `sample_every`-th socket.
    pub(crate) fn stamped(stamp: Stamp, sample_every: usize) -> Self {
        Self { stamp, sample_every: sample_every.max(1), ..Self::new(0, true) }
    }

    /// Whether the socket with this request index records latencies.
    fn tracks(&self, index: usize) -> bool {
        self.latencies.is_some() && index.is_multiple_of(self.sample_every.max(1))
    }

    pub(crate) fn note_error(&self, e: impl std::fmt::Display) {
        let mut slot = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(e.to_string());
        }
    }

    /// Takes the latencies recorded so far, sorted. Panics unless latency is tracked.
    pub(crate) fn sorted_latencies(&self) -> Vec<u64> {
        let mut all =
            std::mem::take(&mut *self.latencies.as_ref().expect("tracking").lock().unwrap_or_else(|e| e.into_inner()));
        all.sort_unstable();
        all
    }
}

/// Marks the send time inside JSON frames: `"lg:<ns since start>:<seq>"`.
pub(crate) const STAMP_MARKER: &[u8] = b"lg:";

/// Where a message carries its send time (ns on this process's clock).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) enum Stamp {
    /// Leading ASCII digits of the payload (MWS messages we publish).
    #[default]
    Leading,
    /// Digits after the first `STAMP_MARKER` within the first
    /// `JSON_PREFIX_LEN` bytes (a title inside an EDS or LiveQuery frame).
    Marked,
}

impl Stamp {
    fn capture(self) -> usize {
        match self {
            Stamp::Leading => PREFIX_LEN,
            Stamp::Marked => JSON_PREFIX_LEN,
        }
    }

    pub(crate) fn parse(self, prefix: &[u8]) -> Option<u64> {
        match self {
            Stamp::Leading => parse_timestamp(prefix),
            Stamp::Marked => {
                let at = ws::find_subslice(prefix, STAMP_MARKER)?;
                parse_timestamp(&prefix[at + STAMP_MARKER.len()..])
            }
        }
    }
}

/// The made-up EDS user id of socket `i`: 24 hex digits, like a real one.
pub(crate) fn user_id(i: usize) -> String {
    format!("{:024x}", (0x5eed_u128 << 80) | i as u128)
}

/// How each socket's connect URI is obtained.
#[derive(Debug, Clone)]
pub(crate) enum UriSource {
    /// `GET /v1/websocket_uri` (anonymous, no tags).
    Anonymous,
    /// `POST /v1/sockets` with tag `t{i % tags}` for socket `i`.
    Tagged { tags: usize },
    /// `POST /v1/sockets` with tag `users.<user_id(i)>` for socket `i`: the
    /// tag built-in EDS → MWS delivery addresses a change readable by that user.
    UserTags,
    /// Parse LiveQuery: every socket opens `url`, connects and subscribes.
    LiveQuery(Arc<LiveQuery>),
}

/// A Parse LiveQuery subscription per socket.
#[derive(Debug)]
pub(crate) struct LiveQuery {
    /// `ws://host:port/path`
    pub url: String,
    pub app_id: String,
    pub class: String,
    /// Socket `i` subscribes to `{"owner": user_id(i)}` (else to the whole class).
    pub by_owner: bool,
}

pub(crate) struct ConnectOpts {
    pub sockets: usize,
    pub source: UriSource,
    pub http_connections: usize,
    pub handshake_concurrency: usize,
}

/// A connected socket: its index in the request order and its MWS id.
#[derive(Debug, Clone)]
pub(crate) struct SocketInfo {
    pub index: usize,
    pub id: String,
}

pub(crate) struct Fleet {
    pub connected: Vec<SocketInfo>,
    pub failures: usize,
    readers: Vec<JoinHandle<()>>,
    shutdown: watch::Sender<bool>,
}

/// Refuses socket counts this process cannot hold.
pub(crate) fn check_capacity(sockets: usize) -> Result<()> {
    anyhow::ensure!(
        sockets <= MAX_SOCKETS,
        "refusing {sockets} sockets: at most {MAX_SOCKETS} per process (open-file hard limit is 20,000); \
         run several load generators instead"
    );
    if let Some(limit) = crate::proc_stats::max_open_files() {
        anyhow::ensure!(
            sockets as u64 + FD_HEADROOM <= limit,
            "{sockets} sockets need ~{} open files but the soft limit is {limit}; run `ulimit -n 20000` first",
            sockets as u64 + FD_HEADROOM
        );
    }
    Ok(())
}

/// Fetches every URI, then opens every socket; both phases are timed and
/// recorded in `report`. Each socket then stays open in its own reader task.
pub(crate) async fn connect(
    target: &Arc<Target>,
    opts: &ConnectOpts,
    stats: &Arc<RecvStats>,
    report: &SharedReport,
) -> Result<Fleet> {
    check_capacity(opts.sockets)?;
    report.set("sockets_requested", opts.sockets);
    let started = Instant::now();

    let uris = fetch_uris(target, opts).await?;
    let fetch_failures = record_uri_fetch(started, &uris, stats, report);

    let (shutdown, shutdown_rx) = watch::channel(false);
    let opening = open_sockets(target, opts, stats, uris, &shutdown_rx).await;
    let (connected, failures) = gather_opened(opening.done, opening.pending, fetch_failures, stats).await;
    let handshake_s = opening.started.elapsed().as_secs_f64();
    let total_s = started.elapsed().as_secs_f64();
    report.set("sockets_connected", connected.len());
    report.set("connect_failures", failures);
    report.set("handshake_s", round(handshake_s, 4));
    report.set("connect_s", round(total_s, 4));
    report.set("connect_per_s", round(opts.sockets as f64 / total_s, 1));
    report.set("handshake_per_s", round(connected.len() as f64 / handshake_s, 1));
    Ok(Fleet { connected, failures, readers: opening.readers, shutdown })
}

/// Records how long fetching the URIs (begun at `started`) took and how many failed; answers the failures.
fn record_uri_fetch(started: Instant, uris: &[Result<String>], stats: &RecvStats, report: &SharedReport) -> usize {
    let fetch_s = started.elapsed().as_secs_f64();
    let fetch_failures = uris.iter().filter(|u| u.is_err()).count();
    report.set("uri_fetch_s", round(fetch_s, 4));
    report.set("uri_fetch_failures", fetch_failures);
    if let Some(Err(e)) = uris.iter().find(|u| u.is_err()) {
        stats.note_error(format!("{e:#}"));
    }
    fetch_failures
}

/// A socket's index in the request order, and its MWS id or why it did not open.
type Opened = (usize, Result<String>);

/// The handshakes under way: one task per socket, each reporting on `done` once its socket opened or failed.
struct Opening {
    readers: Vec<JoinHandle<()>>,
    done: mpsc::UnboundedReceiver<Opened>,
    /// Tasks started, i.e. at most how many sockets connect.
    pending: usize,
    /// When the first handshake was started.
    started: Instant,
}

/// Starts a task per fetched URI, with at most `handshake_concurrency` handshakes in flight: returns once the
/// last one started (not finished).
async fn open_sockets(
    target: &Target,
    opts: &ConnectOpts,
    stats: &Arc<RecvStats>,
    uris: Vec<Result<String>>,
    shutdown_rx: &watch::Receiver<bool>,
) -> Opening {
    let permits = Arc::new(Semaphore::new(opts.handshake_concurrency.max(1)));
    let (done_tx, done) = mpsc::unbounded_channel::<Opened>();
    let mut readers = Vec::with_capacity(opts.sockets);
    let started = Instant::now();
    let mut pending = 0usize;
    for (index, uri) in uris.into_iter().enumerate() {
        let Ok(uri) = uri else { continue };
        let permit = permits.clone().acquire_owned().await.expect("semaphore never closed");
        let live_query = match &opts.source {
            UriSource::LiveQuery(lq) => Some(lq.clone()),
            _ => None,
        };
        let dial = Dial { index, uri, fallback: target.addr, live_query };
        pending += 1;
        readers.push(tokio::spawn(open_and_read(dial, permit, done_tx.clone(), stats.clone(), shutdown_rx.clone())));
    }
    Opening { readers, done, pending, started }
}

/// Where one socket connects and how it opens.
struct Dial {
    index: usize,
    uri: String,
    /// Where to connect when the URI's host is not an address.
    fallback: SocketAddr,
    /// Parse LiveQuery: the subscription to make once connected.
    live_query: Option<Arc<LiveQuery>>,
}

/// One socket's task: opens it (handshake within `HANDSHAKE_TIMEOUT`, then any LiveQuery subscription), gives
/// its handshake slot back, reports on `done_tx`, then reads until shutdown or the end of the connection.
async fn open_and_read(
    dial: Dial,
    permit: OwnedSemaphorePermit,
    done_tx: mpsc::UnboundedSender<Opened>,
    stats: Arc<RecvStats>,
    shutdown_rx: watch::Receiver<bool>,
) {
    let Dial { index, uri, fallback, live_query } = dial;
    let parsed = match WsUri::parse(&uri) {
        Ok(p) => p,
        Err(e) => {
            let _ = done_tx.send((index, Err(e)));
            return;
        }
    };
    let id = parsed.token().unwrap_or_default().to_string();
    let opening = async {
        let mut conn = ws::handshake(&parsed, fallback).await?;
        if let Some(lq) = &live_query {
            live_query_subscribe(&mut conn, lq, index).await?;
        }
        Ok::<_, anyhow::Error>(conn)
    };
    let conn = tokio::time::timeout(HANDSHAKE_TIMEOUT, opening).await.context("handshake timed out").and_then(|r| r);
    drop(permit);
    match conn {
        Ok(conn) => {
            stats.open.fetch_add(1, Ordering::Relaxed);
            let _ = done_tx.send((index, Ok(id)));
            drop(done_tx);
            let track = stats.tracks(index);
            read_loop(conn, &stats, shutdown_rx, track).await;
            stats.open.fetch_sub(1, Ordering::Relaxed);
        }
        Err(e) => {
            let _ = done_tx.send((index, Err(e)));
        }
    }
}

/// Waits for every socket task's report; answers the connected sockets in request order and the failures
/// (`fetch_failures` included), noting the first error.
async fn gather_opened(
    mut done: mpsc::UnboundedReceiver<Opened>,
    pending: usize,
    fetch_failures: usize,
    stats: &RecvStats,
) -> (Vec<SocketInfo>, usize) {
    let mut connected = Vec::with_capacity(pending);
    let mut failures = fetch_failures;
    while let Some((index, result)) = done.recv().await {
        match result {
            Ok(id) => connected.push(SocketInfo { index, id }),
            Err(e) => {
                failures += 1;
                stats.note_error(format!("{e:#}"));
            }
        }
    }
    connected.sort_by_key(|s| s.index);
    (connected, failures)
}

/// Obtains one URI per socket over a few keep-alive connections in parallel.
async fn fetch_uris(target: &Arc<Target>, opts: &ConnectOpts) -> Result<Vec<Result<String>>> {
    match &opts.source {
        UriSource::Tagged { .. } | UriSource::UserTags => {
            anyhow::ensure!(target.admin_token.is_some(), "POST /v1/sockets needs --admin-token");
        }
        // Every LiveQuery socket opens the same URL; nothing to fetch.
        UriSource::LiveQuery(lq) => return Ok((0..opts.sockets).map(|_| Ok(lq.url.clone())).collect()),
        UriSource::Anonymous => {}
    }
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..opts.http_connections.clamp(1, opts.sockets.max(1)) {
        let (target, next, source, total) = (target.clone(), next.clone(), opts.source.clone(), opts.sockets);
        workers.push(tokio::spawn(async move {
            let mut conn = HttpConn::new(target);
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let uri = match &source {
                    UriSource::Anonymous => http::fetch_websocket_uri(&mut conn).await,
                    UriSource::Tagged { tags } => http::create_socket(&mut conn, &[tag_name(i % tags)]).await,
                    UriSource::UserTags => http::create_socket(&mut conn, &[format!("users.{}", user_id(i))]).await,
                    UriSource::LiveQuery(_) => unreachable!("LiveQuery URLs are not fetched"),
                };
                out.push((i, uri));
            }
            out
        }));
    }
    let mut uris: Vec<Option<Result<String>>> = (0..opts.sockets).map(|_| None).collect();
    for w in workers {
        for (i, uri) in w.await? {
            uris[i] = Some(uri);
        }
    }
    Ok(uris.into_iter().map(|u| u.unwrap_or_else(|| Err(anyhow::anyhow!("URI never fetched")))).collect())
}

pub(crate) fn tag_name(i: usize) -> String {
    format!("t{i}")
}

impl Fleet {
    /// Sends a close frame on every socket and waits (bounded) for the
    /// readers to finish; returns how long that took.
    pub(crate) async fn close_all(self, limit: Duration) -> Duration {
        let started = Instant::now();
        let _ = self.shutdown.send(true);
        let all = async {
            for r in self.readers {
                let _ = r.await;
            }
        };
        let _ = tokio::time::timeout(limit, all).await;
        started.elapsed()
    }
}

/// LiveQuery's opening: `connect`, then one `subscribe`; returns once the
/// server confirmed the subscription (its answers are not counted as messages).
async fn live_query_subscribe(conn: &mut WsConn, lq: &LiveQuery, index: usize) -> Result<()> {
    let filter = if lq.by_owner { serde_json::json!({ "owner": user_id(index) }) } else { serde_json::json!({}) };
    let connect = serde_json::json!({ "op": "connect", "applicationId": lq.app_id });
    let subscribe =
        serde_json::json!({ "op": "subscribe", "requestId": 1, "query": { "className": lq.class, "where": filter } });
    let mut out = client::masked_frame(OP_TEXT, connect.to_string().as_bytes());
    out.extend(client::masked_frame(OP_TEXT, subscribe.to_string().as_bytes()));
    conn.stream.write_all(&out).await?;

    let mut decoder = FrameDecoder::new(256);
    loop {
        let (mut subscribed, mut failure) = (false, None);
        let used = decoder.decode(&conn.buf[..conn.filled], |event| {
            if let Event::Message { prefix, .. } = event {
                if ws::find_subslice(prefix, b"\"op\":\"subscribed\"").is_some() {
                    subscribed = true;
                } else if ws::find_subslice(prefix, b"\"op\":\"error\"").is_some() {
                    failure = Some(String::from_utf8_lossy(prefix).into_owned());
                }
            }
        })?;
        conn.buf.copy_within(used..conn.filled, 0);
        conn.filled -= used;
        if let Some(failure) = failure {
            anyhow::bail!("LiveQuery refused the subscription: {failure}");
        }
        if subscribed {
            anyhow::ensure!(decoder.at_boundary(), "an event arrived with the subscription");
            return Ok(());
        }
        anyhow::ensure!(conn.filled < READ_BUF, "LiveQuery answer does not fit the read buffer");
        let n = conn.stream.read(&mut conn.buf[conn.filled..]).await?;
        anyhow::ensure!(n > 0, "connection closed before the subscription was confirmed");
        conn.filled += n;
    }
}

/// Leading ASCII digits of a latency payload: the send time in ns.
pub(crate) fn parse_timestamp(prefix: &[u8]) -> Option<u64> {
    let digits = prefix.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&prefix[..digits]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_prefix() {
        assert_eq!(parse_timestamp(b"12345 xxxx"), Some(12345));
        assert_eq!(parse_timestamp(b"xx"), None);
    }

    #[test]
    fn stamps_inside_json_frames() {
        let frame = br#"{"meta":{"seq":3},"object":{"id":"x","title":"lg:987654:12"}}"#;
        assert_eq!(Stamp::Marked.parse(frame), Some(987_654));
        assert_eq!(Stamp::Marked.parse(b"{\"title\":\"milk\"}"), None);
        assert_eq!(Stamp::Leading.parse(b"42xxx"), Some(42));
    }

    #[test]
    fn user_ids_look_like_object_ids() {
        let id = user_id(7);
        assert_eq!(id.len(), 24);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(id, user_id(8));
    }

    #[test]
    fn refuses_too_many_sockets() {
        assert!(check_capacity(MAX_SOCKETS + 1).is_err());
    }
}
