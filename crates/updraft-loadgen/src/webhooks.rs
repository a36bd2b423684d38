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
//! The receiver is a small hyper HTTP/1.1 server answering every POST with 200
//! `{"success":true}`, which both servers take as success. It checks and counts
//! a few thousand deliveries/s on one core: one HMAC per delivery, with the key
//! prepared once.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderMap};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use ring::hmac;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::fleet::{STAMP_MARKER, now_ns, parse_timestamp};
use crate::http::HttpConn;
use crate::realtime::{
    CreatePlan, EdsSetupArgs, Mix, PARSE_CLASS, Peer, PeerKind, TodoBody, run_creates, wait_for_arrivals,
};
use crate::report::round;
use crate::scenarios::{Common, record_latencies};
use crate::ws::find_subslice;

#[derive(Debug, Args)]
pub(crate) struct WebhooksArgs {
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
    /// `X-Updraft-Signature: sha256=<hex HMAC-SHA256(secret, "<X-Updraft-Timestamp>.<body>")>`; the secret's key.
    Hmac(hmac::Key),
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
    fn delivered(&self, headers: &HeaderMap, body: &[u8], arrived: u64) {
        let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
        match self.proof.get() {
            Some(Proof::Hmac(key)) => {
                let signed = match (header("x-updraft-timestamp"), header("x-updraft-signature")) {
                    (Some(timestamp), Some(given)) => given.as_bytes() == signature(key, timestamp, body),
                    _ => false,
                };
                if !signed {
                    self.bad_proof.fetch_add(1, Ordering::Relaxed);
                }
            }
            Some(Proof::Key(key)) if header("x-parse-webhook-key") != Some(key.as_str()) => {
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

/// The key a webhook's secret signs with.
fn hmac_key(secret: &str) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes())
}

const SIGNATURE_PREFIX: &[u8] = b"sha256=";
/// `sha256=` and 64 hex digits.
const SIGNATURE_LEN: usize = SIGNATURE_PREFIX.len() + 64;

/// `sha256=<hex>` of HMAC-SHA256 over `"<timestamp>.<body>"`, as the server writes it (lowercase hex).
fn signature(key: &hmac::Key, timestamp: &str, body: &[u8]) -> [u8; SIGNATURE_LEN] {
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(timestamp.as_bytes());
    ctx.update(b".");
    ctx.update(body);
    let mut out = [0u8; SIGNATURE_LEN];
    out[..SIGNATURE_PREFIX.len()].copy_from_slice(SIGNATURE_PREFIX);
    hex::encode_to_slice(ctx.sign(), &mut out[SIGNATURE_PREFIX.len()..]).expect("64 hex digits for 32 bytes");
    out
}

const ANSWER: &[u8] = b"{\"success\":true}";

/// Answers one request: a POST is a delivery, checked and counted.
async fn receive(request: Request<Incoming>, stats: Arc<SinkStats>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    if request.method() != Method::POST {
        stats.note_error(format!("receiver: not a POST: {} {}", request.method(), request.uri()));
        let mut refused = Response::new(Full::default());
        *refused.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        return Ok(refused);
    }
    let (head, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    stats.delivered(&head.headers, &body, now_ns());
    let mut answer = Response::new(Full::new(Bytes::from_static(ANSWER)));
    answer.headers_mut().insert(CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    Ok(answer)
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
                    let _ = stream.set_nodelay(true);
                    let stats = stats.clone();
                    tokio::spawn(async move {
                        let service = service_fn(|request| receive(request, stats.clone()));
                        // Keep-alive by default; no timer, so no header timeout: the server's client decides.
                        if let Err(e) = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await {
                            stats.note_error(format!("receiver: {e}"));
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
            Ok(Proof::Hmac(hmac_key(secret)))
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
pub(crate) async fn webhooks(c: &Common, a: &WebhooksArgs) -> Result<bool> {
    let stats = Arc::new(SinkStats::default());
    let peer = Arc::new(set_up_receiver(c, a, &stats).await?);
    let r = &c.report;

    let plan = CreatePlan { rate: a.rate, seconds: a.seconds, creators: a.creators, mix: Mix::CREATES };
    let body: TodoBody = {
        let peer = peer.clone();
        Arc::new(move |k| peer.todo_body(k, None))
    };
    let cpu_before = c.cpu_times();
    let t0 = Instant::now();
    let t0_ns = now_ns();
    let creates = run_creates(c, &peer, plan, body).await;
    let during = stats.deliveries.load(Ordering::Relaxed);
    let create_s = t0.elapsed().as_secs_f64();

    let (stall, drain) = (Duration::from_secs_f64(a.stall_seconds), Duration::from_secs_f64(a.drain_seconds));
    wait_for_arrivals(c, &stats.deliveries, 0, during, creates.sent_ok, stall, drain).await;
    let cpu_after = c.cpu_times();
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
    cpu_after.record_since(&cpu_before, r, deliveries, 2);
    if let Some(e) = stats.first_error.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        r.set("first_receiver_error", e.as_str());
    }
    c.record_self_rss();
    Ok(creates.errors == 0
        && deliveries >= creates.sent_ok
        && stats.bad_proof.load(Ordering::Relaxed) == 0
        && stats.unstamped.load(Ordering::Relaxed) == 0)
}

/// Starts the receiver, prepares the server and registers the receiver with it; the receiver then checks
/// deliveries as the server proves them.
async fn set_up_receiver(c: &Common, a: &WebhooksArgs, stats: &Arc<SinkStats>) -> Result<Peer> {
    let url = start_sink(&a.sink_listen, stats.clone()).await?;
    let peer = Peer::setup(c, &a.setup).await?;
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
    Ok(peer)
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    fn signed(secret: &str, timestamp: &str, body: &[u8]) -> String {
        String::from_utf8(signature(&hmac_key(secret), timestamp, body).to_vec()).unwrap()
    }

    #[test]
    fn signature_matches_the_servers() {
        // The vector of updraft-realtime's webhook signature test (computed there independently with Python).
        assert_eq!(
            signed("key", "1", b"{}"),
            "sha256=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224"
        );
        let long = "k".repeat(100);
        assert_ne!(signed(&long, "1", b"{}"), signed(&long[..64], "1", b"{}"));
    }

    #[test]
    fn stamps() {
        let body = br#"{"payload":{"object":{"title":"lg:12345:67"}}}"#;
        assert_eq!(stamp_of(body), Some((12345, 67)));
        assert_eq!(stamp_of(b"{}"), None);
    }

    /// Two deliveries on one keep-alive connection, the way the server's client sends them: one signed with the
    /// webhook's secret (Content-Length), one signed with another (chunked). Both are answered and counted; the
    /// second counts as badly signed.
    #[tokio::test]
    async fn receiver_answers_counts_and_checks_signatures() {
        let stats = Arc::new(SinkStats::default());
        stats.proof.set(Proof::Hmac(hmac_key("secret"))).unwrap();
        let url = start_sink("127.0.0.1:0", stats.clone()).await.unwrap();
        let addr = url.strip_prefix("http://").and_then(|rest| rest.strip_suffix("/hook")).unwrap();

        let good = br#"{"payload":{"object":{"title":"lg:100:1"}}}"#;
        let bad = br#"{"payload":{"object":{"title":"lg:100:2"}}}"#;
        let mut requests = format!(
            "POST /hook HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             X-Updraft-Timestamp: 1700000000\r\nX-Updraft-Signature: {}\r\n\r\n",
            good.len(),
            signed("secret", "1700000000", good),
        )
        .into_bytes();
        requests.extend_from_slice(good);
        requests.extend_from_slice(
            format!(
                "POST /hook HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\n\
                 X-Updraft-Timestamp: 1700000000\r\nX-Updraft-Signature: {}\r\n\r\n{:x}\r\n",
                signed("another secret", "1700000000", bad),
                bad.len(),
            )
            .as_bytes(),
        );
        requests.extend_from_slice(bad);
        requests.extend_from_slice(b"\r\n0\r\n\r\n");

        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(&requests).await.unwrap();
        let mut answers = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), async {
            while answers.windows(ANSWER.len()).filter(|w| *w == ANSWER).count() < 2 {
                assert!(stream.read_buf(&mut answers).await.unwrap() > 0, "the receiver closed");
            }
        })
        .await
        .expect("both answers within 10 s");
        let answers = String::from_utf8(answers).unwrap();
        assert!(answers.starts_with("HTTP/1.1 200 OK\r\n"), "{answers}");
        assert_eq!(answers.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{answers}");
        assert!(answers.to_ascii_lowercase().contains("content-type: application/json"), "{answers}");

        assert_eq!(stats.deliveries.load(Ordering::Relaxed), 2);
        assert_eq!(stats.bad_proof.load(Ordering::Relaxed), 1);
        assert_eq!(stats.connections.load(Ordering::Relaxed), 1);
        assert_eq!(stats.unstamped.load(Ordering::Relaxed), 0);
        assert_eq!(stats.bytes.load(Ordering::Relaxed), (good.len() + bad.len()) as u64);
        assert!(stats.first_error.lock().unwrap().is_none());
    }
}
