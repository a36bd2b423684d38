//! Push fan-out beside API requests: paced broadcasts to thousands of sockets must not queue EDS requests
//! behind them. Bounds are ratios to the same requests' delay without the fan-out, measured in the same test, so
//! that they hold on slow machines.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::{Method, StatusCode};

use crate::eds::eds;
use crate::helpers::*;

const SOCKETS: usize = 2_000;
const BROADCASTS_PER_SECOND: u64 = 20;
const CALLS: usize = 100;
const CALL_EVERY: Duration = Duration::from_millis(15);
/// How much slower the loaded calls' 90th percentile may be than the unloaded one's. Measured on 2 cores: 2–3.2×
/// with the sockets on a runtime of their own, 11–65× with them on the HTTP runtime (before issue 18; their median
/// did not move: the creates that meet a fan-out wait for all of it).
const MAX_RATIO: f64 = 8.0;
/// Tries of the loaded measurement: a noisy neighbour may slow one of them, the fan-out slows all.
const TRIES: usize = 2;

/// The clients of the fan-out: their sockets and the broadcaster run on a runtime of their own, so that reading
/// what the server sends does not compete with the calls this test times.
struct FanoutClients {
    runtime: Option<tokio::runtime::Runtime>,
    frames: Arc<AtomicU64>,
    broadcasting: Arc<AtomicBool>,
}

impl FanoutClients {
    async fn open(app: &TestApp) -> FanoutClients {
        let mut uris = Vec::with_capacity(SOCKETS);
        for _ in 0..SOCKETS {
            uris.push(app.socket_uri(&[]).await.1);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let frames = Arc::new(AtomicU64::new(0));
        let opened = runtime.spawn({
            let frames = frames.clone();
            async move {
                let connects = futures_util::stream::iter(uris)
                    .map(|uri| async move { tokio_tungstenite::connect_async(uri.as_str()).await.expect("opens").0 })
                    .buffer_unordered(64);
                let sockets: Vec<_> = connects.collect().await;
                for mut socket in sockets {
                    let frames = frames.clone();
                    tokio::spawn(async move {
                        while let Some(Ok(_)) = socket.next().await {
                            frames.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                }
            }
        });
        opened.await.unwrap();
        let clients = FanoutClients { runtime: Some(runtime), frames, broadcasting: Arc::new(AtomicBool::new(false)) };
        for _ in 0..500 {
            if app.metric("updraft_mws_sockets_connected").await >= SOCKETS as f64 {
                return clients;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the sockets never all registered");
    }

    /// Broadcasts to every socket at a fixed pace until [`FanoutClients::stop`].
    fn broadcast(&self, base: String) {
        self.broadcasting.store(true, Ordering::Relaxed);
        let broadcasting = self.broadcasting.clone();
        self.runtime.as_ref().unwrap().spawn(async move {
            let client = reqwest::Client::new();
            let body = serde_json::json!({"data": "x".repeat(100), "receivers": {"sockets": ["*"], "tags": []}});
            let mut tick = tokio::time::interval(Duration::from_millis(1000 / BROADCASTS_PER_SECOND));
            while broadcasting.load(Ordering::Relaxed) {
                tick.tick().await;
                let sent = client.post(format!("{base}/v1/messages")).bearer_auth(ADMIN).json(&body).send().await;
                assert_eq!(sent.unwrap().status(), StatusCode::CREATED);
            }
        });
    }

    fn stop(&self) {
        self.broadcasting.store(false, Ordering::Relaxed);
    }
}

impl Drop for FanoutClients {
    fn drop(&mut self) {
        self.runtime.take().unwrap().shutdown_background();
    }
}

/// Times `CALLS` EDS creates, one every `CALL_EVERY` (over a second: many broadcasts); answers their 90th
/// percentile.
async fn creates_p90(eds: &crate::eds::Eds) -> Duration {
    let mut took = Vec::with_capacity(CALLS);
    let mut tick = tokio::time::interval(CALL_EVERY);
    for i in 0..CALLS {
        tick.tick().await;
        let started = Instant::now();
        let body = format!(r#"{{"title":"todo {i}"}}"#);
        let (status, created) = eds.call(Method::POST, "/v1/objects/todos", None, Some(&body)).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        took.push(started.elapsed());
    }
    took.sort();
    took[CALLS * 9 / 10]
}

/// Run alone by `scripts/test-all.sh`: beside other tests (cargo test runs them in parallel) the cores it times are
/// shared with them.
#[tokio::test]
#[ignore = "a timing ratio: scripts/test-all.sh runs it alone"]
async fn eds_creates_stay_fast_while_broadcasts_go_to_thousands_of_sockets() {
    let eds = eds().await;
    let clients = FanoutClients::open(&eds.app).await;
    creates_p90(&eds).await; // warm: statements prepared, the first pages read
    let unloaded = creates_p90(&eds).await;

    clients.broadcast(eds.app.base.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut tries = Vec::new();
    for _ in 0..TRIES {
        let frames_before = clients.frames.load(Ordering::Relaxed);
        let loaded = creates_p90(&eds).await;
        let frames_during = clients.frames.load(Ordering::Relaxed) - frames_before;
        // The fan-out really ran beside the creates: many broadcasts reached every socket meanwhile.
        assert!(frames_during >= 10 * SOCKETS as u64, "only {frames_during} frames arrived during the loaded creates");
        let ratio = loaded.as_secs_f64() / unloaded.as_secs_f64();
        eprintln!("creates p90: {unloaded:?} alone, {loaded:?} beside {frames_during} frames ({ratio:.1}×)");
        tries.push(ratio);
        if ratio <= MAX_RATIO {
            break;
        }
    }
    clients.stop();
    assert_eq!(eds.app.metric("updraft_mws_sockets_dropped_slow_total").await, 0.0);
    let best = tries.iter().copied().fold(f64::INFINITY, f64::min);
    assert!(
        best <= MAX_RATIO,
        "creates p90 {unloaded:?} alone; beside the fan-out {tries:.1?} times that (at most {MAX_RATIO}×)"
    );
}

/// The reverse (an EDS write burst must not delay frames) rests on thread priorities: the real binary runs every
/// thread of the HTTP runtime, and every thread those start (SQLite's, the insert thread, blocking tasks), at
/// `--api-nice` above its own and with the `--api-slice-us` time slice, while the socket runtime keeps its own
/// niceness and slice and the fan-out thread runs `--frames-nice` below it (when the kernel allows it:
/// CAP_SYS_NICE; the fan-out's second thread takes the API's).
#[tokio::test]
async fn request_and_database_threads_yield_to_socket_threads() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server =
        start_binary(dir.path(), port, &["--api-nice", "7", "--api-slice-us", "250", "--frames-nice", "-3"]).await;
    // Work that starts threads after start-up: a password check (a blocking task) and writes (SQLite's).
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let login = format!("grant_type=password&username={BINARY_EMAIL}&password={BINARY_PASSWORD}");
    let answer = |request: reqwest::RequestBuilder| async move {
        request.send().await.unwrap().json::<serde_json::Value>().await.unwrap()
    };
    let token = answer(client.post(format!("{base}/v1/account/auth/oauth2/token")).body(login)).await;
    let app = answer(
        client
            .post(format!("{base}/v1/account/apps"))
            .bearer_auth(token["access_token"].as_str().unwrap())
            .body(r#"{"name":"priorities"}"#),
    )
    .await;
    let backend = app["environments"][0]["id"].as_str().unwrap();
    let created = client
        .post(format!("{base}/v1/objects/todos"))
        .header("Enginio-Backend-Id", backend)
        .body(r#"{"title":"t"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);

    let own = scheduling(std::path::Path::new("/proc/thread-self"));
    let tasks = std::fs::read_dir(format!("/proc/{}/task", server.id().unwrap())).unwrap();
    let threads: Vec<(String, Scheduling)> = tasks
        .map(|task| {
            let task = task.unwrap().path();
            (std::fs::read_to_string(task.join("comm")).unwrap().trim().to_owned(), scheduling(&task))
        })
        .collect();
    let niced = Scheduling { nice: (own.nice + 7).min(19), slice_ns: own.slice_ns.map(|_| 250_000) };
    let favoured = if may_raise_priority() { Scheduling { nice: (own.nice - 3).max(-20), ..own } } else { own };
    // SQLite's threads exist only on the embedded store; on PostgreSQL the database is another process.
    let sqlite = crate::test_database::server_url().is_none();
    let sqlite_threads = [("sqlx-sqlite", niced), ("updraft-inserts", niced)];
    for (prefix, want) in [
        ("tokio-r", niced),
        ("updraft-sockets", own),
        ("updraft-fanout", favoured),
        // The fan-out's other thread, which writes while the API is the lighter work (see `updraft_realtime::fanout`).
        ("updraft-fan-api", niced),
    ]
    .into_iter()
    .chain(sqlite_threads.into_iter().filter(|_| sqlite))
    // The fan-out's helper exists with more than one CPU (`comm` keeps 15 bytes of its name).
    .chain(
        [("updraft-fan-hel", favoured)].into_iter().filter(|_| std::thread::available_parallelism().unwrap().get() > 1),
    ) {
        let found: Vec<Scheduling> =
            threads.iter().filter(|(name, _)| name.starts_with(prefix)).map(|&(_, found)| found).collect();
        assert!(!found.is_empty() && found.iter().all(|&found| found == want), "{prefix}: {found:?}; {threads:?}");
    }
}

/// Whether this process holds CAP_SYS_NICE (bit 23 of its effective capabilities), as the server it starts will.
fn may_raise_priority() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let effective = status.lines().find_map(|line| line.strip_prefix("CapEff:")).unwrap();
    u64::from_str_radix(effective.trim(), 16).unwrap() & (1 << 23) != 0
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Scheduling {
    nice: i64,
    /// `None` on kernels without EEVDF's per-thread slice.
    slice_ns: Option<u64>,
}

/// A thread's niceness, from its `stat`, and time slice, from its `sched`.
fn scheduling(task: &std::path::Path) -> Scheduling {
    let stat = std::fs::read_to_string(task.join("stat")).unwrap();
    // After the name in parentheses: field 3 (state) onwards; the niceness is field 19.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let sched = std::fs::read_to_string(task.join("sched")).unwrap_or_default();
    let slice_ns = sched
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(key, _)| key.trim() == "se.slice")
        .map(|(_, value)| value.trim().parse().unwrap());
    Scheduling { nice: fields[19 - 3].parse().unwrap(), slice_ns }
}
