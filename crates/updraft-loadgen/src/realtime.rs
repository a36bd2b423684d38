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
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use serde_json::{Value, json};

use crate::fleet::{self, Fleet, LiveQuery, RecvStats, Stamp, UriSource, now_ns, user_id};
use crate::http::{HttpConn, Response};
use crate::report::round;
use crate::scenarios::{Common, record_latencies};

mod create_phase;
pub(crate) use create_phase::{CreateOutcome, CreatePlan, Mix, TodoBody, run_creates};

/// The server under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum PeerKind {
    /// Updraft: `POST /v1/objects/todos`, built-in EDS → MWS delivery, `/v1/webhooks`.
    Updraft,
    /// Parse Server: `POST <mount>/classes/Todo`, LiveQuery, `<mount>/hooks/triggers`.
    Parse,
}

/// How to reach and prepare either server.
#[derive(Debug, Args)]
pub(crate) struct EdsSetupArgs {
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
pub(crate) struct Peer {
    pub kind: PeerKind,
    pub create_path: String,
    pub headers: Vec<(String, String)>,
    /// Updraft: the app's development environment.
    pub updraft: Option<UpdraftBackend>,
    pub setup: EdsSetupArgsOwned,
}

pub(crate) struct UpdraftBackend {
    pub id: String,
    pub master_key: String,
}

/// The setup arguments, kept by the peer for later admin calls.
pub(crate) struct EdsSetupArgsOwned {
    pub parse_app_id: String,
    pub parse_master_key: String,
    pub parse_mount: String,
}

/// The todo collection on both servers.
pub(crate) const UPDRAFT_TODOS: &str = "/v1/objects/todos";
pub(crate) const PARSE_CLASS: &str = "Todo";

impl Peer {
    /// Updraft: an account token, then a new app (its development environment is the backend).
    /// Parse: the `Todo` class with `title` and `owner`, so that the first creates do not race to make it.
    pub(crate) async fn setup(c: &Common, a: &EdsSetupArgs) -> Result<Peer> {
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
    pub(crate) async fn parse_admin(
        &self,
        conn: &mut HttpConn,
        method: &str,
        path: &str,
        body: &Value,
    ) -> Result<Response> {
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
    pub(crate) fn todo_body(&self, k: usize, reader: Option<&str>) -> Vec<u8> {
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

/// Who may read each created todo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Routing {
    /// Each todo readable by one user, whose socket alone gets it (random among the connected sockets).
    Unicast,
    /// Each todo public: every socket gets it.
    Public,
}

#[derive(Debug, Args)]
pub(crate) struct EdsChangesArgs {
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
pub(crate) async fn eds_changes(c: &Common, a: &EdsChangesArgs) -> Result<bool> {
    anyhow::ensure!(a.rate > 0, "--rate must be positive");
    let peer = Arc::new(Peer::setup(c, &a.setup).await?);
    let r = &c.report;
    r.set("peer", format!("{:?}", a.setup.peer).to_lowercase());
    r.set("routing", format!("{:?}", a.routing).to_lowercase());
    let stats = Arc::new(RecvStats::stamped(Stamp::Marked, a.sample_every));
    let fleet = connect_readers(c, a, &peer, &stats).await?;
    let receivers: Arc<Vec<String>> = Arc::new(fleet.connected.iter().map(|s| user_id(s.index)).collect());
    let tracked = fleet.connected.iter().filter(|s| s.index.is_multiple_of(a.sample_every.max(1))).count();
    r.set("sockets_tracked", tracked);

    let plan = CreatePlan { rate: a.rate, seconds: a.seconds, creators: a.creators, mix: Mix::CREATES };
    let body: TodoBody = {
        let (peer, receivers, routing) = (peer.clone(), receivers.clone(), a.routing);
        Arc::new(move |k| match routing {
            Routing::Unicast => peer.todo_body(k, Some(&receivers[rand::random_range(0..receivers.len())])),
            Routing::Public => peer.todo_body(k, None),
        })
    };
    let cpu_before = c.cpu_times();
    let base = stats.messages.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let t0_ns = now_ns();
    let (creates, steady_per_s) = create_and_count(c, a, &peer, plan, body, &stats).await?;

    let expected = match a.routing {
        Routing::Unicast => creates.sent_ok,
        Routing::Public => creates.sent_ok * fleet.connected.len() as u64,
    };
    let (grace, drain) = (Duration::from_secs_f64(a.grace_seconds), Duration::from_secs_f64(a.drain_seconds));
    wait_for_arrivals(c, &stats.messages, base, stats.messages.load(Ordering::Relaxed), expected, grace, drain).await;
    let cpu_after = c.cpu_times();
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
    r.set("deliveries_per_s", steady_per_s);
    let last_ns = stats.last_delivery_ns.load(Ordering::Relaxed);
    let overall_s = if received > 0 { last_ns.saturating_sub(t0_ns) as f64 / 1e9 } else { drained_s };
    r.set("deliveries_per_s_overall", round(received as f64 / overall_s.max(1e-9), 0));
    record_latencies(r, "latency", &stats.sorted_latencies());
    cpu_after.record_since(&cpu_before, r, received, 3);
    c.record_self_rss();
    c.record_recv_errors(&stats);
    let on_schedule = creates.planned.is_none_or(|p| creates.sent_ok as usize == p);
    Ok(fleet.failures == 0 && creates.errors == 0 && on_schedule && received >= expected)
}

/// Opens the readers' sockets: Updraft's, tagged with their users once its default gateway is bound to the
/// backend; Parse's, subscribed over LiveQuery. Then waits for the last ones to settle.
async fn connect_readers(c: &Common, a: &EdsChangesArgs, peer: &Peer, stats: &Arc<RecvStats>) -> Result<Fleet> {
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
    let fleet = fleet::connect(&c.target, &c.connect_opts(a.sockets, source), stats, &c.report).await?;
    anyhow::ensure!(!fleet.connected.is_empty(), "no socket connected");
    // A socket joins its hub just after the handshake; let the last ones settle.
    c.sleep(Duration::from_millis(500)).await;
    Ok(fleet)
}

/// Runs the create phase in a task of its own while counting deliveries over its steady window: from the end of
/// the warm-up to the end of the phase. Answers the phase's outcome and the window's deliveries/s.
async fn create_and_count(
    c: &Common,
    a: &EdsChangesArgs,
    peer: &Arc<Peer>,
    plan: CreatePlan,
    body: TodoBody,
    stats: &RecvStats,
) -> Result<(CreateOutcome, f64)> {
    let creating = {
        let (c2, peer) = (c.clone(), peer.clone());
        tokio::spawn(async move { run_creates(&c2, &peer, plan, body).await })
    };
    c.sleep(Duration::from_secs_f64(a.warmup_seconds.min(a.seconds / 2.0))).await;
    let (w_start, w_start_count) = (Instant::now(), stats.messages.load(Ordering::Relaxed));
    let creates = creating.await?;
    let (w_end, w_end_count) = (Instant::now(), stats.messages.load(Ordering::Relaxed));
    let window = w_end.duration_since(w_start).as_secs_f64();
    Ok((creates, round(w_end_count.saturating_sub(w_start_count) as f64 / window.max(1e-9), 0)))
}

/// After a create phase: waits until `counter` has grown by `expected` past `base`, until nothing more arrived
/// for `quiet` (counted from now, `last_seen` being the count last looked at), or for `longest` in all, or until
/// the soft deadline. Polls every 5 ms.
pub(crate) async fn wait_for_arrivals(
    c: &Common,
    counter: &AtomicU64,
    base: u64,
    last_seen: u64,
    expected: u64,
    quiet: Duration,
    longest: Duration,
) {
    let mut last = (last_seen, Instant::now());
    let drain_end = (tokio::time::Instant::now() + longest).min(c.soft_deadline);
    loop {
        let count = counter.load(Ordering::Relaxed);
        if count - base >= expected || tokio::time::Instant::now() >= drain_end {
            break;
        }
        if count != last.0 {
            last = (count, Instant::now());
        } else if last.1.elapsed() >= quiet {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[derive(Debug, Args)]
pub(crate) struct CreatesArgs {
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
pub(crate) async fn creates(c: &Common, a: &CreatesArgs) -> Result<bool> {
    anyhow::ensure!(a.rate > 0, "--rate must be positive");
    let peer = Arc::new(Peer::setup(c, &a.setup).await?);
    let plan = CreatePlan { rate: a.rate, seconds: a.seconds, creators: a.creators, mix: a.mix };
    let body = {
        let peer = peer.clone();
        Arc::new(move |k: usize| peer.todo_body(k, None)) as TodoBody
    };
    let outcome = run_creates(c, &peer, plan, body).await;
    outcome.record(&c.report, &plan);
    let answered = outcome.sent_ok as usize + outcome.read_round_trips_us.len() + outcome.list_round_trips_us.len();
    Ok(outcome.errors == 0 && outcome.planned.is_some_and(|planned| answered == planned))
}
