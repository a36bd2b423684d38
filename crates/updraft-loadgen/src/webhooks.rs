//! `webhooks`: todos created over REST, each POSTed by the server to a
//! receiver running inside this process; deliveries/s and create → delivery
//! lag.
//!
//! Updraft: a webhook made with `POST /v1/webhooks` (signed deliveries, whose
//! `X-Updraft-Signature` the receiver checks). Parse Server: an `afterSave`
//! trigger hook made with `POST <mount>/hooks/triggers` (its own webhooks,
//! authenticated by the `X-Parse-Webhook-Key` header, which the receiver
//! checks when `--parse-webhook-key` is given).
//!
//! The receiver is a minimal HTTP/1.1 server (keep-alive, Content-Length or
//! chunked bodies) answering every POST with 200 `{"success":true}`, which
//! both servers take as success.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::fleet::{STAMP_MARKER, now_ns, parse_timestamp};
use crate::http::HttpConn;
use crate::proc_stats::{self, Pid};
use crate::realtime::{CreatePlan, EdsSetupArgs, Mix, PARSE_CLASS, Peer, PeerKind, record_latencies, run_creates};
use crate::report::round;
use crate::scenarios::Common;
use crate::ws::find_subslice;

#[derive(Debug, Args)]
pub struct WebhooksArgs {
    #[command(flatten)]
    pub setup: EdsSetupArgs,
    /// Creates per second, paced; 0: as fast as `--creators` connections allow.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// How long creates go on.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    #[arg(long, default_value_t = 32)]
    pub creators: usize,
    /// After the last create, stop waiting once no delivery has arrived for this long.
    #[arg(long, default_value_t = 5.0)]
    pub stall_seconds: f64,
    /// After the last create, stop waiting after this long in any case (what has not arrived is missing).
    #[arg(long, default_value_t = 60.0)]
    pub drain_seconds: f64,
    /// Where the receiver listens (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub sink_listen: String,
    /// The `webhookKey` Parse Server was started with; checked on each delivery when given.
    #[arg(long)]
    pub parse_webhook_key: Option<String>,
}

/// How a delivery proves it comes from the server.
#[derive(Debug)]
enum Proof {
    /// `X-Updraft-Signature: sha256=<hex HMAC-SHA256(secret, "<X-Updraft-Timestamp>.<body>")>`.
    Hmac(String),
    /// `X-Parse-Webhook-Key: <key>`.
    Key(String),
    None,
}

/// What the receiver saw.
#[derive(Debug, Default)]
struct SinkStats {
    deliveries: AtomicU64,
    first_ns: AtomicU64,
    last_ns: AtomicU64,
    bad_proof: AtomicU64,
    unstamped: AtomicU64,
    duplicates: AtomicU64,
    connections: AtomicU64,
    bytes: AtomicU64,
    /// Create sent → delivery arrived, ns.
    lags: Mutex<Vec<u64>>,
    seen: Mutex<HashSet<u64>>,
    proof: OnceLock<Proof>,
    first_error: Mutex<Option<String>>,
}

impl SinkStats {
    fn note_error(&self, e: impl std::fmt::Display) {
        let mut slot = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert_with(|| e.to_string());
    }

    /// Checks and counts one delivery.
    fn delivered(&self, headers: &Headers, body: &[u8], arrived: u64) {
        match self.proof.get() {
            Some(Proof::Hmac(secret)) => {
                let expected = headers.timestamp.as_deref().map(|ts| signature(secret, ts, body));
                if expected.is_none() || expected != headers.signature {
                    self.bad_proof.fetch_add(1, Ordering::Relaxed);
                }
            }
            Some(Proof::Key(key)) if headers.parse_key.as_deref() != Some(key.as_str()) => {
                self.bad_proof.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        match stamp_of(body) {
            Some((sent, k)) => {
                self.lags.lock().unwrap_or_else(|e| e.into_inner()).push(arrived.saturating_sub(sent));
                if !self.seen.lock().unwrap_or_else(|e| e.into_inner()).insert(k) {
                    self.duplicates.fetch_add(1, Ordering::Relaxed);
                }
            }
            None => {
                self.unstamped.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
        let _ = self.first_ns.compare_exchange(0, arrived, Ordering::Relaxed, Ordering::Relaxed);
        self.last_ns.fetch_max(arrived, Ordering::Relaxed);
        self.deliveries.fetch_add(1, Ordering::Relaxed);
    }
}

/// `"lg:<ns>:<k>"` in a delivery body: the create's send time and index.
fn stamp_of(body: &[u8]) -> Option<(u64, u64)> {
    let at = find_subslice(body, STAMP_MARKER)? + STAMP_MARKER.len();
    let sent = parse_timestamp(&body[at..])?;
    let rest = &body[at..];
    let colon = rest.iter().position(|b| *b == b':')?;
    Some((sent, parse_timestamp(&rest[colon + 1..])?))
}

/// `sha256=<hex>` of HMAC-SHA256 over `"<timestamp>.<body>"` (RFC 2104).
fn signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    const BLOCK: usize = 64;
    let mut key = [0u8; BLOCK];
    if secret.len() > BLOCK {
        key[..32].copy_from_slice(&Sha256::digest(secret.as_bytes()));
    } else {
        key[..secret.len()].copy_from_slice(secret.as_bytes());
    }
    let pad = |byte: u8| key.map(|k| k ^ byte);
    let inner =
        Sha256::new().chain_update(pad(0x36)).chain_update(timestamp).chain_update(b".").chain_update(body).finalize();
    let outer = Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize();
    let hex: String = outer.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// The request headers the receiver looks at.
#[derive(Debug, Default)]
struct Headers {
    content_length: Option<usize>,
    chunked: bool,
    close: bool,
    signature: Option<String>,
    timestamp: Option<String>,
    parse_key: Option<String>,
}

fn parse_head(head: &str) -> Result<Headers> {
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    ensure!(request_line.starts_with("POST "), "not a POST: {request_line:?}");
    let mut h = Headers::default();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => h.content_length = Some(value.parse().context("bad Content-Length")?),
            "transfer-encoding" => h.chunked = value.to_ascii_lowercase().contains("chunked"),
            "connection" => h.close = value.eq_ignore_ascii_case("close"),
            "x-updraft-signature" => h.signature = Some(value.to_string()),
            "x-updraft-timestamp" => h.timestamp = Some(value.to_string()),
            "x-parse-webhook-key" => h.parse_key = Some(value.to_string()),
            _ => {}
        }
    }
    Ok(h)
}

const ANSWER: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{\"success\":true}";

/// Serves one keep-alive connection of the server's webhook client.
async fn serve(mut stream: TcpStream, stats: Arc<SinkStats>) -> Result<()> {
    let _ = stream.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    loop {
        let head_end = loop {
            if let Some(i) = find_subslice(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            if stream.read_buf(&mut buf).await? == 0 {
                return Ok(()); // the client closed between requests
            }
        };
        let headers = parse_head(std::str::from_utf8(&buf[..head_end]).context("head not UTF-8")?)?;
        let (body, used) = if headers.chunked {
            read_chunked(&mut stream, &mut buf, head_end).await?
        } else {
            let len = headers.content_length.unwrap_or(0);
            while buf.len() < head_end + len {
                ensure!(stream.read_buf(&mut buf).await? > 0, "closed inside a body");
            }
            (buf[head_end..head_end + len].to_vec(), head_end + len)
        };
        stats.delivered(&headers, &body, now_ns());
        buf.drain(..used);
        stream.write_all(ANSWER).await?;
        if headers.close {
            return Ok(());
        }
    }
}

/// Reads a chunked body starting at `pos`; answers it and where the request ends.
async fn read_chunked(stream: &mut TcpStream, buf: &mut Vec<u8>, mut pos: usize) -> Result<(Vec<u8>, usize)> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(i) = find_subslice(&buf[pos..], b"\r\n") {
                break pos + i;
            }
            ensure!(stream.read_buf(buf).await? > 0, "closed inside a chunked body");
        };
        let size_text = std::str::from_utf8(&buf[pos..line_end])?.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).with_context(|| format!("bad chunk size {size_text:?}"))?;
        pos = line_end + 2;
        if size == 0 {
            // No trailers expected: the empty line ends the body.
            while buf.len() < pos + 2 {
                ensure!(stream.read_buf(buf).await? > 0, "closed inside a chunked body");
            }
            return Ok((body, pos + 2));
        }
        while buf.len() < pos + size + 2 {
            ensure!(stream.read_buf(buf).await? > 0, "closed inside a chunked body");
        }
        body.extend_from_slice(&buf[pos..pos + size]);
        pos += size + 2;
    }
}

/// Starts the receiver; answers its URL.
async fn start_sink(listen: &str, stats: Arc<SinkStats>) -> Result<String> {
    let listener = TcpListener::bind(listen).await.with_context(|| format!("bind {listen}"))?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    stats.connections.fetch_add(1, Ordering::Relaxed);
                    let stats = stats.clone();
                    tokio::spawn(async move {
                        if let Err(e) = serve(stream, stats.clone()).await {
                            stats.note_error(format!("receiver: {e:#}"));
                        }
                    });
                }
                Err(e) => {
                    stats.note_error(format!("accept: {e}"));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    });
    Ok(url)
}

/// Registers the receiver with the server; answers how deliveries prove themselves.
async fn register(c: &Common, peer: &Peer, url: &str, parse_key: Option<&str>) -> Result<Proof> {
    let mut conn = HttpConn::new(c.target.clone());
    match peer.kind {
        PeerKind::Updraft => {
            let backend = peer.updraft.as_ref().context("no backend")?;
            let body = json!({ "url": url, "objectTypes": ["objects.todos"], "events": ["create"] }).to_string();
            let created: Value = conn
                .send(
                    "POST",
                    "/v1/webhooks",
                    &[("Enginio-Backend-Id", &backend.id), ("Enginio-Backend-MasterKey", &backend.master_key)],
                    Some(("application/json", body.as_bytes())),
                )
                .await?
                .expect_status(201, "POST /v1/webhooks")?
                .json()?;
            let secret = created["secret"].as_str().context("no webhook secret")?;
            Ok(Proof::Hmac(secret.to_string()))
        }
        PeerKind::Parse => {
            let hook = json!({ "className": PARSE_CLASS, "triggerName": "afterSave", "url": url });
            let path = format!("{}/hooks/triggers", peer.setup.parse_mount);
            let resp = peer.parse_admin(&mut conn, "POST", &path, &hook).await?;
            if !(200..300).contains(&resp.status) {
                bail!("POST {path}: HTTP {}: {}", resp.status, String::from_utf8_lossy(&resp.body));
            }
            Ok(parse_key.map_or(Proof::None, |k| Proof::Key(k.to_string())))
        }
    }
}

/// Webhook throughput and lag.
pub async fn webhooks(c: &Common, a: &WebhooksArgs) -> Result<bool> {
    let stats = Arc::new(SinkStats::default());
    let url = start_sink(&a.sink_listen, stats.clone()).await?;
    let peer = Arc::new(Peer::setup(c, &a.setup).await?);
    let r = &c.report;
    r.set("peer", format!("{:?}", a.setup.peer).to_lowercase());
    r.set("receiver", url.as_str());
    let proof = register(c, &peer, &url, a.parse_webhook_key.as_deref()).await?;
    r.set(
        "proof",
        match &proof {
            Proof::Hmac(_) => "X-Updraft-Signature (HMAC-SHA256)",
            Proof::Key(_) => "X-Parse-Webhook-Key",
            Proof::None => "none",
        },
    );
    let _ = stats.proof.set(proof);

    let plan = CreatePlan { rate: a.rate, seconds: a.seconds, creators: a.creators, mix: Mix::CREATES };
    let body: Arc<dyn Fn(usize) -> Vec<u8> + Send + Sync> = {
        let peer = peer.clone();
        Arc::new(move |k| peer.todo_body(k, None))
    };
    let cpu_before = c.server_cpu();
    let self_cpu_before = proc_stats::cpu_seconds(Pid::SelfProcess).ok();
    let t0 = Instant::now();
    let t0_ns = now_ns();
    let creates = run_creates(c, &peer, plan, body).await;
    let during = stats.deliveries.load(Ordering::Relaxed);
    let create_s = t0.elapsed().as_secs_f64();

    let mut last = (during, Instant::now());
    let drain_end = (tokio::time::Instant::now() + Duration::from_secs_f64(a.drain_seconds)).min(c.soft_deadline);
    loop {
        let got = stats.deliveries.load(Ordering::Relaxed);
        if got >= creates.sent_ok || tokio::time::Instant::now() >= drain_end {
            break;
        }
        if got != last.0 {
            last = (got, Instant::now());
        } else if last.1.elapsed() >= Duration::from_secs_f64(a.stall_seconds) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let cpu_after = c.server_cpu();
    let self_cpu_after = proc_stats::cpu_seconds(Pid::SelfProcess).ok();
    r.set("drain_s", round(t0.elapsed().as_secs_f64() - create_s, 2));

    creates.record(r, &plan);
    let deliveries = stats.deliveries.load(Ordering::Relaxed);
    let (first, last_ns) = (stats.first_ns.load(Ordering::Relaxed), stats.last_ns.load(Ordering::Relaxed));
    r.set("deliveries", deliveries);
    r.set("missing", creates.sent_ok.saturating_sub(deliveries));
    r.set("duplicates", stats.duplicates.load(Ordering::Relaxed));
    r.set("bad_proof", stats.bad_proof.load(Ordering::Relaxed));
    r.set("unstamped", stats.unstamped.load(Ordering::Relaxed));
    r.set("receiver_connections", stats.connections.load(Ordering::Relaxed));
    if let Some(mean) = stats.bytes.load(Ordering::Relaxed).checked_div(deliveries) {
        r.set("mean_body_bytes", mean);
    }
    // Deliveries over the time they took (first to last), over the whole run (first create to last delivery),
    // and while creates were going on.
    if deliveries > 1 {
        r.set("deliveries_per_s", round(deliveries as f64 / (last_ns.saturating_sub(first) as f64 / 1e9).max(1e-9), 0));
        r.set("end_to_end_per_s", round(deliveries as f64 / (last_ns.saturating_sub(t0_ns) as f64 / 1e9).max(1e-9), 0));
    }
    r.set("deliveries_during_creates_per_s", round(during as f64 / create_s.max(1e-9), 0));
    let mut lags = std::mem::take(&mut *stats.lags.lock().unwrap_or_else(|e| e.into_inner()));
    lags.sort_unstable();
    record_latencies(r, "lag", &lags);
    if let (Some(b), Some(a)) = (cpu_before, cpu_after) {
        r.set("server_cpu_s", round(a - b, 2));
        if deliveries > 0 {
            r.set("server_cpu_us_per_delivery", round((a - b) * 1e6 / deliveries as f64, 2));
        }
    }
    if let (Some(b), Some(a)) = (self_cpu_before, self_cpu_after) {
        r.set("loadgen_cpu_s", round(a - b, 2));
    }
    if let Some(e) = stats.first_error.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        r.set("first_receiver_error", e.as_str());
    }
    c.record_self_rss();
    Ok(creates.errors == 0
        && deliveries >= creates.sent_ok
        && stats.bad_proof.load(Ordering::Relaxed) == 0
        && stats.unstamped.load(Ordering::Relaxed) == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_servers() {
        // The vector of updraft-webhooks' payload test (computed there independently with Python).
        assert_eq!(
            signature("key", "1", b"{}"),
            "sha256=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224"
        );
        let long = "k".repeat(100);
        assert_ne!(signature(&long, "1", b"{}"), signature(&long[..64], "1", b"{}"));
    }

    #[test]
    fn stamps_and_heads() {
        let body = br#"{"payload":{"object":{"title":"lg:12345:67"}}}"#;
        assert_eq!(stamp_of(body), Some((12345, 67)));
        assert_eq!(stamp_of(b"{}"), None);
        let h = parse_head("POST /hook HTTP/1.1\r\nContent-Length: 12\r\nX-Updraft-Timestamp: 9\r\n\r\n").unwrap();
        assert_eq!((h.content_length, h.timestamp.as_deref(), h.chunked), (Some(12), Some("9"), false));
        assert!(parse_head("GET / HTTP/1.1\r\n\r\n").is_err());
    }
}
