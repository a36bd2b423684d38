//! Realtime scenarios over EDS objects: a todo created over REST must reach
//! the sockets of those who may read it (`eds-changes`), or a webhook
//! receiver (`webhooks`, in `webhooks.rs`).
//!
//! Both run against Updraft (EDS objects, its built-in EDS → MWS delivery and
//! its webhooks) or against Parse Server (REST classes, LiveQuery, and its
//! `afterSave` webhooks), with the same workload: every created todo carries
//! its send time in its title (`"lg:<ns>:<k>"`), and the receiving side reads
//! it back from the frame or request body it gets.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::fleet::{self, LiveQuery, RecvStats, Stamp, UriSource, now_ns, user_id};
use crate::http::{HttpConn, Response};
use crate::proc_stats::{self, Pid};
use crate::report::{SharedReport, round};
use crate::scenarios::{Common, Schedule, percentile};

/// The server under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PeerKind {
    /// Updraft: `POST /v1/objects/todos`, built-in EDS → MWS delivery, `/v1/webhooks`.
    Updraft,
    /// Parse Server: `POST <mount>/classes/Todo`, LiveQuery, `<mount>/hooks/triggers`.
    Parse,
}

/// How to reach and prepare either server.
#[derive(Debug, Args)]
pub struct EdsSetupArgs {
    /// Which server `--target` is.
    #[arg(long, value_enum, default_value_t = PeerKind::Updraft)]
    pub peer: PeerKind,
    /// Updraft's account (`updraft serve --admin-email/--admin-password`); an app is created with it.
    #[arg(long, default_value = "bench@example.com")]
    pub account_email: String,
    #[arg(long, default_value = "bench-password")]
    pub account_password: String,
    #[arg(long, default_value = "bench")]
    pub parse_app_id: String,
    #[arg(long, default_value = "bench-master")]
    pub parse_master_key: String,
    /// Where Parse Server is mounted (REST and LiveQuery).
    #[arg(long, default_value = "/parse")]
    pub parse_mount: String,
}

/// A prepared backend: where todos are created and with which headers.
pub struct Peer {
    pub kind: PeerKind,
    pub create_path: String,
    pub headers: Vec<(String, String)>,
    /// Updraft: the app's development environment.
    pub updraft: Option<UpdraftBackend>,
    pub setup: EdsSetupArgsOwned,
}

pub struct UpdraftBackend {
    pub id: String,
    pub master_key: String,
}

/// The setup arguments, kept by the peer for later admin calls.
pub struct EdsSetupArgsOwned {
    pub parse_app_id: String,
    pub parse_master_key: String,
    pub parse_mount: String,
}

/// The todo collection on both servers.
pub const UPDRAFT_TODOS: &str = "/v1/objects/todos";
pub const PARSE_CLASS: &str = "Todo";

impl Peer {
    /// Updraft: an account token, then a new app (its development environment is the backend).
    /// Parse: the `Todo` class with `title` and `owner`, so that the first creates do not race to make it.
    pub async fn setup(c: &Common, a: &EdsSetupArgs) -> Result<Peer> {
        let mut conn = HttpConn::new(c.target.clone());
        let setup = EdsSetupArgsOwned {
            parse_app_id: a.parse_app_id.clone(),
            parse_master_key: a.parse_master_key.clone(),
            parse_mount: a.parse_mount.trim_end_matches('/').to_string(),
        };
        match a.peer {
            PeerKind::Updraft => {
                let form = format!(
                    "grant_type=password&username={}&password={}",
                    form_escape(&a.account_email),
                    form_escape(&a.account_password)
                );
                let token: Value = conn
                    .send(
                        "POST",
                        "/v1/account/auth/oauth2/token",
                        &[],
                        Some(("application/x-www-form-urlencoded", form.as_bytes())),
                    )
                    .await?
                    .expect_status(200, "account token")?
                    .json()?;
                let token = token["access_token"].as_str().context("no access_token")?;
                let auth = format!("Bearer {token}");
                let app: Value = conn
                    .send(
                        "POST",
                        "/v1/account/apps",
                        &[("Authorization", &auth)],
                        Some(("application/json", br#"{"name":"realtime-bench"}"#)),
                    )
                    .await?
                    .expect_status(201, "POST /v1/account/apps")?
                    .json()?;
                let env = &app["environments"][0];
                let field =
                    |v: &Value, what: &str| v.as_str().map(str::to_string).with_context(|| format!("no {what}"));
                let backend = UpdraftBackend {
                    id: field(&env["id"], "environment id")?,
                    master_key: field(&env["masterKeys"][0]["key"], "master key")?,
                };
                c.report.set("backend", backend.id.as_str());
                Ok(Peer {
                    kind: a.peer,
                    create_path: UPDRAFT_TODOS.to_string(),
                    headers: vec![("Enginio-Backend-Id".into(), backend.id.clone())],
                    updraft: Some(backend),
                    setup,
                })
            }
            PeerKind::Parse => {
                let peer = Peer {
                    kind: a.peer,
                    create_path: format!("{}/classes/{PARSE_CLASS}", setup.parse_mount),
                    headers: vec![("X-Parse-Application-Id".into(), setup.parse_app_id.clone())],
                    updraft: None,
                    setup,
                };
                let schema = json!({
                    "className": PARSE_CLASS,
                    "fields": { "title": { "type": "String" }, "owner": { "type": "String" } },
                });
                let path = format!("{}/schemas/{PARSE_CLASS}", peer.setup.parse_mount);
                let resp = peer.parse_admin(&mut conn, "POST", &path, &schema).await?;
                // A class left by an earlier run (code 103) is fine too.
                if resp.status != 200 && !String::from_utf8_lossy(&resp.body).contains("103") {
                    anyhow::bail!(
                        "creating the Parse class: HTTP {}: {}",
                        resp.status,
                        String::from_utf8_lossy(&resp.body)
                    );
                }
                Ok(peer)
            }
        }
    }

    /// A Parse call with the master key.
    pub async fn parse_admin(&self, conn: &mut HttpConn, method: &str, path: &str, body: &Value) -> Result<Response> {
        let body = body.to_string();
        conn.send(
            method,
            path,
            &[
                ("X-Parse-Application-Id", &self.setup.parse_app_id),
                ("X-Parse-Master-Key", &self.setup.parse_master_key),
            ],
            Some(("application/json", body.as_bytes())),
        )
        .await
    }

    /// Binds Updraft's default gateway to the backend, so that its changes reach the gateway's sockets.
    async fn bind_default_gateway(&self, c: &Common) -> Result<()> {
        let backend = self.updraft.as_ref().context("not an Updraft backend")?;
        let body = json!({ "identityProvider": { "type": "none", "backendId": backend.id } }).to_string();
        let mut conn = HttpConn::new(c.target.clone());
        // The gateway's token, and the backend's master key as proof that the backend is ours to bind.
        let auth = format!("Bearer {}", c.target.admin_token.as_deref().context("no admin token")?);
        let headers = [("Authorization", auth.as_str()), ("Enginio-Backend-MasterKey", backend.master_key.as_str())];
        conn.send("PUT", "/v1/gateways/default/configuration", &headers, Some(("application/json", body.as_bytes())))
            .await?
            .expect_status(200, "PUT /v1/gateways/default/configuration")?;
        Ok(())
    }

    /// A todo stamped with its send time; readable by `reader` only (Updraft: an ACL naming that user; Parse: an
    /// `owner` field its LiveQuery subscription filters on), or public.
    pub fn todo_body(&self, k: usize, reader: Option<&str>) -> Vec<u8> {
        let title = format!("lg:{}:{k}", now_ns());
        let body = match (self.kind, reader) {
            (_, None) => json!({ "title": title }),
            (PeerKind::Updraft, Some(user)) => json!({
                "title": title,
                "accessControlList": {
                    "read": [{ "id": user, "objectType": "users" }],
                    "update": [], "delete": [], "admin": [],
                },
            }),
            (PeerKind::Parse, Some(user)) => json!({ "title": title, "owner": user }),
        };
        serde_json::to_vec(&body).expect("JSON of strings")
    }

    /// The 20 newest todos.
    fn list_path(&self) -> String {
        match self.kind {
            // sort=[{"sortBy":"createdAt","direction":"desc"}]
            PeerKind::Updraft => format!(
                "{}?limit=20&sort=%5B%7B%22sortBy%22%3A%22createdAt%22%2C%22direction%22%3A%22desc%22%7D%5D",
                self.create_path
            ),
            PeerKind::Parse => format!("{}?limit=20&order=-createdAt", self.create_path),
        }
    }

    /// The id a create answered with.
    fn created_id(&self, response: &Response) -> Option<String> {
        let key = match self.kind {
            PeerKind::Updraft => "id",
            PeerKind::Parse => "objectId",
        };
        response.json::<Value>().ok()?.get(key)?.as_str().map(str::to_owned)
    }
}

fn form_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// How creates are paced.
#[derive(Debug, Clone, Copy)]
pub struct CreatePlan {
    /// Requests per second, open loop; 0: back to back on every connection (closed loop).
    pub rate: u64,
    pub seconds: f64,
    /// Concurrent keep-alive connections.
    pub creators: usize,
    pub mix: Mix,
}

/// The requests of a create phase, as weights: of every `creates + reads + lists` requests, `creates` are creates,
/// `reads` read one object created before (by id, at random) and `lists` list the 20 newest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    pub creates: u32,
    pub reads: u32,
    pub lists: u32,
}

impl Mix {
    pub const CREATES: Mix = Mix { creates: 1, reads: 0, lists: 0 };

    fn request(&self, k: usize) -> Request {
        let turn = (k % (self.creates + self.reads + self.lists) as usize) as u32;
        if turn < self.creates {
            Request::Create
        } else if turn < self.creates + self.reads {
            Request::Read
        } else {
            Request::List
        }
    }
}

impl std::str::FromStr for Mix {
    type Err = String;

    /// `creates:reads:lists`, e.g. `2:1:1`.
    fn from_str(text: &str) -> Result<Mix, String> {
        let parts: Vec<u32> = text.split(':').map(str::parse).collect::<Result<_, _>>().map_err(|e| format!("{e}"))?;
        match parts[..] {
            [creates, reads, lists] if creates > 0 => Ok(Mix { creates, reads, lists }),
            _ => Err("a mix is creates:reads:lists, with at least one create".into()),
        }
    }
}

/// A worker's round trips, µs: of creates, reads and lists.
type RoundTrips = [Vec<u64>; 3];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    Create,
    Read,
    List,
}

/// What a create phase did.
pub struct CreateOutcome {
    pub planned: Option<usize>,
    pub sent_ok: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub late: u64,
    pub max_lag_us: u64,
    pub seconds: f64,
    /// Round trips of successful creates, µs, sorted.
    pub round_trips_us: Vec<u64>,
    /// Of successful reads and lists (`Mix`), µs, sorted.
    pub read_round_trips_us: Vec<u64>,
    pub list_round_trips_us: Vec<u64>,
}

impl CreateOutcome {
    pub fn record(&self, r: &SharedReport, plan: &CreatePlan) {
        r.set("rate_target", plan.rate);
        if let Some(planned) = self.planned {
            r.set(if plan.mix == Mix::CREATES { "creates_planned" } else { "requests_planned" }, planned);
        }
        r.set("creators", plan.creators);
        r.set("creates_sent", self.sent_ok);
        r.set("create_s", round(self.seconds, 3));
        r.set("creates_per_s", round(self.sent_ok as f64 / self.seconds.max(1e-9), 1));
        r.set("create_errors", self.errors);
        if let Some(e) = &self.first_error {
            r.set("first_create_error", e.as_str());
        }
        if plan.rate > 0 {
            r.set("late_sends", self.late);
            r.set("max_send_lag_us", self.max_lag_us);
        }
        for (name, rt) in
            [("create", &self.round_trips_us), ("read", &self.read_round_trips_us), ("list", &self.list_round_trips_us)]
        {
            if !rt.is_empty() {
                r.set(&format!("{name}s_done"), rt.len());
                r.set(&format!("{name}_rtt_p50_us"), percentile(rt, 0.5));
                r.set(&format!("{name}_rtt_p99_us"), percentile(rt, 0.99));
            }
        }
    }
}

/// How long after the create phase an unanswered create is waited for.
const CREATE_OVERRUN: Duration = Duration::from_secs(15);

/// Creates todos as `plan` says until its time is up (or the soft deadline); `body(k)` makes the k-th.
pub async fn run_creates(
    c: &Common,
    peer: &Arc<Peer>,
    plan: CreatePlan,
    body: Arc<dyn Fn(usize) -> Vec<u8> + Send + Sync>,
) -> CreateOutcome {
    let planned = (plan.rate > 0).then(|| (plan.rate as f64 * plan.seconds).round() as usize);
    let start = tokio::time::Instant::now() + Duration::from_millis(10);
    let end = (start + Duration::from_secs_f64(plan.seconds)).min(c.soft_deadline);
    // A server that falls far behind would hold creates open past any deadline, and with them every figure:
    // a create unanswered this long after the phase is given up (and counted as an error).
    let hard_end = (end + CREATE_OVERRUN).min(c.soft_deadline - Duration::from_secs(2)).max(end);
    let next = Arc::new(AtomicUsize::new(0));
    let (sent_ok, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    // Consulted only when paced (rate > 0); unpaced creators go as fast as they can until `end`.
    let schedule = Arc::new(Schedule::new(start, plan.rate.max(1) as f64, end));
    // Ids of created objects, for reads to pick from (only when the mix has reads).
    let created: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let list_path = peer.list_path();
    let mut workers: Vec<JoinHandle<(RoundTrips, Option<String>)>> = Vec::new();
    for _ in 0..plan.creators.max(1) {
        let (target, peer, next, body) = (c.target.clone(), peer.clone(), next.clone(), body.clone());
        let (sent_ok, errors, schedule) = (sent_ok.clone(), errors.clone(), schedule.clone());
        let (created, list_path) = (created.clone(), list_path.clone());
        workers.push(tokio::spawn(async move {
            let mut conn = HttpConn::new(target);
            let headers: Vec<(&str, &str)> = peer.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let (mut rtts, mut first_error) = ([Vec::new(), Vec::new(), Vec::new()], None);
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if let Some(planned) = planned {
                    if k >= planned || !schedule.wait_turn(k).await {
                        break;
                    }
                } else if tokio::time::Instant::now() >= end {
                    break;
                }
                let read_id = match plan.mix.request(k) {
                    Request::Read => {
                        let ids = created.lock().unwrap_or_else(|e| e.into_inner());
                        // Before the first create is answered, a read becomes a create.
                        (!ids.is_empty()).then(|| ids[rand::random_range(0..ids.len())].clone())
                    }
                    _ => None,
                };
                let kind = match (plan.mix.request(k), &read_id) {
                    (Request::List, _) => Request::List,
                    (Request::Read, Some(_)) => Request::Read,
                    _ => Request::Create,
                };
                let payload = if kind == Request::Create { body(k) } else { Vec::new() };
                let read_path = read_id.map(|id| format!("{}/{id}", peer.create_path));
                let sent = Instant::now();
                let request = match kind {
                    Request::Create => {
                        conn.send("POST", &peer.create_path, &headers, Some(("application/json", &payload)))
                    }
                    Request::Read => conn.send("GET", read_path.as_deref().unwrap_or_default(), &headers, None),
                    Request::List => conn.send("GET", &list_path, &headers, None),
                };
                let Ok(outcome) = tokio::time::timeout_at(hard_end, request).await else {
                    errors.fetch_add(1, Ordering::Relaxed);
                    first_error.get_or_insert_with(|| {
                        format!("a create was still unanswered {}s after the create phase", CREATE_OVERRUN.as_secs())
                    });
                    break;
                };
                let (want, what) = match kind {
                    Request::Create => (201, "create"),
                    Request::Read => (200, "read"),
                    Request::List => (200, "list"),
                };
                match outcome.and_then(|r| r.expect_status(want, what)) {
                    Ok(response) => {
                        let rtt = sent.elapsed().as_micros() as u64;
                        match kind {
                            Request::Create => {
                                rtts[0].push(rtt);
                                sent_ok.fetch_add(1, Ordering::Relaxed);
                                if plan.mix.reads > 0
                                    && let Some(id) = peer.created_id(&response)
                                {
                                    created.lock().unwrap_or_else(|e| e.into_inner()).push(id);
                                }
                            }
                            Request::Read => rtts[1].push(rtt),
                            Request::List => rtts[2].push(rtt),
                        }
                    }
                    Err(e) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        first_error.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
            }
            (rtts, first_error)
        }));
    }
    let mut outcome = CreateOutcome {
        planned,
        sent_ok: 0,
        errors: 0,
        first_error: None,
        late: 0,
        max_lag_us: 0,
        seconds: 0.0,
        round_trips_us: Vec::new(),
        read_round_trips_us: Vec::new(),
        list_round_trips_us: Vec::new(),
    };
    for w in workers {
        if let Ok(([creates, reads, lists], e)) = w.await {
            outcome.round_trips_us.extend(creates);
            outcome.read_round_trips_us.extend(reads);
            outcome.list_round_trips_us.extend(lists);
            if let Some(e) = e {
                outcome.first_error.get_or_insert(e);
            }
        }
    }
    outcome.seconds = start.elapsed().as_secs_f64();
    outcome.sent_ok = sent_ok.load(Ordering::Relaxed);
    outcome.errors = errors.load(Ordering::Relaxed);
    outcome.late = schedule.late();
    outcome.max_lag_us = schedule.max_lag_us();
    outcome.round_trips_us.sort_unstable();
    outcome.read_round_trips_us.sort_unstable();
    outcome.list_round_trips_us.sort_unstable();
    outcome
}

/// Who may read each created todo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Routing {
    /// Each todo readable by one user, whose socket alone gets it (random among the connected sockets).
    Unicast,
    /// Each todo public: every socket gets it.
    Public,
}

#[derive(Debug, Args)]
pub struct EdsChangesArgs {
    #[command(flatten)]
    pub setup: EdsSetupArgs,
    #[arg(long, default_value_t = 1000)]
    pub sockets: usize,
    #[arg(long, value_enum, default_value_t = Routing::Unicast)]
    pub routing: Routing,
    /// Creates per second, paced open loop.
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Concurrent create connections, so that a slow commit does not hold up the schedule.
    #[arg(long, default_value_t = 64)]
    pub creators: usize,
    /// Record latency on every Nth socket only (1: all of them).
    #[arg(long, default_value_t = 1)]
    pub sample_every: usize,
    /// Left out of the steady deliveries/s window at the start of the create phase.
    #[arg(long, default_value_t = 1.0)]
    pub warmup_seconds: f64,
    /// After the last create, stop waiting once nothing has arrived for this long.
    #[arg(long, default_value_t = 5.0)]
    pub grace_seconds: f64,
    /// After the last create, stop waiting after this long in any case (what has not arrived is missing).
    #[arg(long, default_value_t = 30.0)]
    pub drain_seconds: f64,
}

/// Create → socket frame: todos created over REST at a fixed rate, received as change frames (Updraft) or
/// LiveQuery events (Parse) on sockets of the readers; latency from sending the create to the frame's arrival,
/// and deliveries/s.
pub async fn eds_changes(c: &Common, a: &EdsChangesArgs) -> Result<bool> {
    anyhow::ensure!(a.rate > 0, "--rate must be positive");
    let peer = Arc::new(Peer::setup(c, &a.setup).await?);
    let r = &c.report;
    r.set("peer", format!("{:?}", a.setup.peer).to_lowercase());
    r.set("routing", format!("{:?}", a.routing).to_lowercase());
    let source = match peer.kind {
        PeerKind::Updraft => {
            peer.bind_default_gateway(c).await?;
            UriSource::UserTags
        }
        PeerKind::Parse => UriSource::LiveQuery(Arc::new(LiveQuery {
            url: format!("ws://{}{}", c.target.host_header, peer.setup.parse_mount),
            app_id: peer.setup.parse_app_id.clone(),
            class: PARSE_CLASS.to_string(),
            by_owner: a.routing == Routing::Unicast,
        })),
    };
    let stats = Arc::new(RecvStats::stamped(Stamp::Marked, a.sample_every));
    let fleet = fleet::connect(&c.target, &c.connect_opts(a.sockets, source), &stats, r).await?;
    anyhow::ensure!(!fleet.connected.is_empty(), "no socket connected");
    // A socket joins its hub just after the handshake; let the last ones settle.
    c.sleep(Duration::from_millis(500)).await;
    let receivers: Arc<Vec<String>> = Arc::new(fleet.connected.iter().map(|s| user_id(s.index)).collect());
    let tracked = fleet.connected.iter().filter(|s| s.index.is_multiple_of(a.sample_every.max(1))).count();
    r.set("sockets_tracked", tracked);

    let plan = CreatePlan { rate: a.rate, seconds: a.seconds, creators: a.creators, mix: Mix::CREATES };
    let body: Arc<dyn Fn(usize) -> Vec<u8> + Send + Sync> = {
        let (peer, receivers, routing) = (peer.clone(), receivers.clone(), a.routing);
        Arc::new(move |k| match routing {
            Routing::Unicast => peer.todo_body(k, Some(&receivers[rand::random_range(0..receivers.len())])),
            Routing::Public => peer.todo_body(k, None),
        })
    };
    let cpu_before = c.server_cpu();
    let self_cpu_before = proc_stats::cpu_seconds(Pid::SelfProcess).ok();
    let base = stats.messages.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let t0_ns = now_ns();
    let creating = {
        let (c2, peer) = (c.clone(), peer.clone());
        tokio::spawn(async move { run_creates(&c2, &peer, plan, body).await })
    };
    // The steady window: from the end of the warm-up to the end of the create phase.
    c.sleep(Duration::from_secs_f64(a.warmup_seconds.min(a.seconds / 2.0))).await;
    let (w_start, w_start_count) = (Instant::now(), stats.messages.load(Ordering::Relaxed));
    let creates = creating.await?;
    let (w_end, w_end_count) = (Instant::now(), stats.messages.load(Ordering::Relaxed));

    let expected = match a.routing {
        Routing::Unicast => creates.sent_ok,
        Routing::Public => creates.sent_ok * fleet.connected.len() as u64,
    };
    let mut last = (stats.messages.load(Ordering::Relaxed), Instant::now());
    let drain_end = (tokio::time::Instant::now() + Duration::from_secs_f64(a.drain_seconds)).min(c.soft_deadline);
    loop {
        let got = stats.messages.load(Ordering::Relaxed) - base;
        if got >= expected || tokio::time::Instant::now() >= drain_end {
            break;
        }
        if got + base != last.0 {
            last = (got + base, Instant::now());
        } else if last.1.elapsed() >= Duration::from_secs_f64(a.grace_seconds) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let cpu_after = c.server_cpu();
    let self_cpu_after = proc_stats::cpu_seconds(Pid::SelfProcess).ok();
    let received = stats.messages.load(Ordering::Relaxed) - base;
    let drained_s = t0.elapsed().as_secs_f64();
    r.set("drain_s", round(drained_s - creates.seconds, 2));

    creates.record(r, &plan);
    r.set("receivers", fleet.connected.len());
    r.set("expected", expected);
    r.set("received", received);
    r.set("missing", expected.saturating_sub(received));
    r.set("extra", received.saturating_sub(expected));
    r.set("offered_deliveries_per_s", round(expected as f64 / creates.seconds.max(1e-9), 0));
    let window = w_end.duration_since(w_start).as_secs_f64();
    r.set("deliveries_per_s", round(w_end_count.saturating_sub(w_start_count) as f64 / window.max(1e-9), 0));
    let last_ns = stats.last_delivery_ns.load(Ordering::Relaxed);
    let overall_s = if received > 0 { last_ns.saturating_sub(t0_ns) as f64 / 1e9 } else { drained_s };
    r.set("deliveries_per_s_overall", round(received as f64 / overall_s.max(1e-9), 0));
    let mut lat =
        std::mem::take(&mut *stats.latencies.as_ref().expect("tracking").lock().unwrap_or_else(|e| e.into_inner()));
    lat.sort_unstable();
    record_latencies(r, "latency", &lat);
    if let (Some(b), Some(a)) = (cpu_before, cpu_after) {
        r.set("server_cpu_s", round(a - b, 2));
        if received > 0 {
            r.set("server_cpu_us_per_delivery", round((a - b) * 1e6 / received as f64, 3));
        }
    }
    if let (Some(b), Some(a)) = (self_cpu_before, self_cpu_after) {
        r.set("loadgen_cpu_s", round(a - b, 2));
    }
    c.record_self_rss();
    c.record_recv_errors(&stats);
    let on_schedule = creates.planned.is_none_or(|p| creates.sent_ok as usize == p);
    Ok(fleet.failures == 0 && creates.errors == 0 && on_schedule && received >= expected)
}

/// `<name>_count`, `_mean_us`, `_p50_us` … `_max_us` of sorted ns samples.
pub fn record_latencies(r: &SharedReport, name: &str, sorted_ns: &[u64]) {
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

#[derive(Debug, Args)]
pub struct CreatesArgs {
    #[command(flatten)]
    pub setup: EdsSetupArgs,
    /// Creates per second, paced open loop.
    #[arg(long, default_value_t = 200)]
    pub rate: u64,
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Concurrent create connections.
    #[arg(long, default_value_t = 4)]
    pub creators: usize,
    /// Requests as `creates:reads:lists` weights (`--rate` counts all of them); `1:0:0` is creates alone.
    #[arg(long, default_value = "1:0:0")]
    pub mix: Mix,
}

/// EDS creates alone, at a fixed rate: their round trips as the client sees them. Run beside another load (the
/// `latency` scenario's broadcasts, say) in a process of its own, at a higher scheduling priority, so that only
/// the server's delay is measured.
pub async fn creates(c: &Common, a: &CreatesArgs) -> Result<bool> {
    anyhow::ensure!(a.rate > 0, "--rate must be positive");
    let peer = Arc::new(Peer::setup(c, &a.setup).await?);
    let plan = CreatePlan { rate: a.rate, seconds: a.seconds, creators: a.creators, mix: a.mix };
    let body = {
        let peer = peer.clone();
        Arc::new(move |k: usize| peer.todo_body(k, None)) as Arc<dyn Fn(usize) -> Vec<u8> + Send + Sync>
    };
    let outcome = run_creates(c, &peer, plan, body).await;
    outcome.record(&c.report, &plan);
    let answered = outcome.sent_ok as usize + outcome.read_round_trips_us.len() + outcome.list_round_trips_us.len();
    Ok(outcome.errors == 0 && outcome.planned.is_some_and(|planned| answered == planned))
}
