//! Three nodes on one PostgreSQL database (`--database-url`) and one bus, Redis or NATS: a change made through
//! any node reaches the sockets of every node exactly once, and a webhook exactly once, whichever node's worker
//! takes it; an `eds`-mode socket opened on another node than the one that issued its URI follows its user, and
//! hears at once of a sign-out or a group left through another node.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use updraft_server::config::ServeArgs;

use crate::cluster::{BusServer, Engine};
use crate::eds::sign_up;
use crate::eds::{EMAIL, Eds, PASSWORD, eds_in};
use crate::helpers::{ADMIN, assert_silent, close_code, next_text, open_args, spawn_app};
use crate::security_gateways::bind_default;
use crate::security_sessions::{
    bind_eds_gateway, delete_user, join, leave, object_title, public_todo, revoke, team_todo, team_with,
};
use crate::test_database;
use crate::webhooks::Receiver;

/// Three nodes on one fresh database and `bus`; the first made the account's app. The database is dropped with
/// the last reference to it.
pub(crate) async fn three_nodes(bus: &BusServer) -> ([Eds; 3], std::sync::Arc<test_database::TestDatabase>) {
    let database = test_database::fresh().await;
    let args = || ServeArgs {
        bus: Some(bus.url()),
        database_url: Some(database.url()),
        admin_email: Some(EMAIL.into()),
        admin_password: Some(PASSWORD.into()),
        ..open_args()
    };
    let first = eds_in(args(), "development").await;
    let another = || async {
        Eds {
            app: spawn_app(args()).await,
            backend: first.backend.clone(),
            secret: first.secret.clone(),
            master_key: first.master_key.clone(),
            account: first.account.clone(),
        }
    };
    let (second, third) = (another().await, another().await);
    let nodes = [first, second, third];
    for node in &nodes {
        bind_default(node, json!({"type": "none", "backendId": nodes[0].backend})).await;
    }
    (nodes, database)
}

async fn a_change_through_one_node_reaches_every_nodes_sockets_once(engine: Engine) {
    let bus = BusServer::start(engine).await;
    let ([a, b, c], _database) = three_nodes(&bus).await;
    let mut sockets = Vec::new();
    for node in [&a, &b, &c] {
        sockets.push(node.app.connect(&[]).await.1);
    }

    let (status, todo) = a.call(Method::POST, "/v1/objects/todos", None, Some(r#"{"title":"milk"}"#)).await;
    assert_eq!(status, StatusCode::CREATED, "{todo}");
    for ws in &mut sockets {
        let frame: Value = serde_json::from_str(&next_text(ws).await).unwrap();
        assert_eq!((frame["object"].clone(), frame["meta"]["eventName"].clone()), (todo.clone(), json!("create")));
    }
    // Read back through another node: one database.
    let path = format!("/v1/objects/todos/{}", todo["id"].as_str().unwrap());
    let (status, read) = c.call(Method::GET, &path, None, None).await;
    assert_eq!((status, read), (StatusCode::OK, todo.clone()));
    b.call(Method::PUT, &path, None, Some(r#"{"title":"oat milk"}"#)).await;
    for ws in &mut sockets {
        let frame: Value = serde_json::from_str(&next_text(ws).await).unwrap();
        assert_eq!(frame["object"]["title"], "oat milk");
    }
    // Once each: no node also published what the others deliver themselves.
    for ws in &mut sockets {
        assert_silent(ws, 300).await;
    }
}

#[tokio::test]
async fn a_change_through_one_node_reaches_every_nodes_sockets_once_with_redis() {
    a_change_through_one_node_reaches_every_nodes_sockets_once(Engine::Redis).await;
}

#[tokio::test]
async fn a_change_through_one_node_reaches_every_nodes_sockets_once_with_nats() {
    a_change_through_one_node_reaches_every_nodes_sockets_once(Engine::Nats).await;
}

async fn a_webhook_hears_each_change_once_whichever_node_made_it(engine: Engine) {
    let bus = BusServer::start(engine).await;
    let ([a, b, c], _database) = three_nodes(&bus).await;
    let receiver = Receiver::start().await;
    let hook = json!({"url": receiver.url, "events": ["create"]});
    let res = (a.app.client.post(format!("{}/v1/webhooks", a.app.base)))
        .header("Enginio-Backend-Id", &a.backend)
        .header("Enginio-Backend-MasterKey", &a.master_key)
        .body(hook.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);

    let mut ids = Vec::new();
    for (i, node) in [&a, &b, &c, &a, &b, &c].into_iter().enumerate() {
        let body = json!({"title": format!("t{i}")}).to_string();
        let (status, todo) = node.call(Method::POST, "/v1/objects/todos", None, Some(&body)).await;
        assert_eq!(status, StatusCode::CREATED);
        ids.push(todo["id"].clone());
    }
    receiver.wait_for(ids.len(), Duration::from_secs(15)).await;
    // Three workers polled meanwhile; none delivered a change another had taken.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got = receiver.received.lock().unwrap().clone();
    let mut delivered: Vec<String> = got.iter().map(|(_, body)| body["payload"]["object"]["id"].to_string()).collect();
    delivered.sort();
    let mut ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
    ids.sort();
    assert_eq!(delivered, ids, "each change delivered once");
}

#[tokio::test]
async fn a_webhook_hears_each_change_once_whichever_node_made_it_with_redis() {
    a_webhook_hears_each_change_once_whichever_node_made_it(Engine::Redis).await;
}

#[tokio::test]
async fn a_webhook_hears_each_change_once_whichever_node_made_it_with_nats() {
    a_webhook_hears_each_change_once_whichever_node_made_it(Engine::Nats).await;
}

/// A socket URI asked for on `issuer`, opened on `opener`.
async fn socket_elsewhere(issuer: &Eds, opener: &Eds, token: &str) -> crate::helpers::Ws {
    let (status, body) = issuer.app.get("/v1/websocket_uri", Some(token)).await;
    assert!(status.is_success(), "{status} {body}");
    let uri = body["uri"].as_str().unwrap().replace(&issuer.app.addr.to_string(), &opener.app.addr.to_string());
    let (ws, _) = tokio_tungstenite::connect_async(uri).await.unwrap();
    ws
}

#[tokio::test]
async fn an_eds_socket_opened_on_another_node_follows_its_user() {
    let bus = BusServer::start(Engine::Nats).await;
    let ([a, b, _], _database) = three_nodes(&bus).await;
    bind_eds_gateway(&a).await;
    bind_eds_gateway(&b).await;

    // Signed out through the node that holds the socket, which learned whom it follows from the ticket.
    let (alice, _) = sign_up(&a, "alice").await;
    let mut ws = socket_elsewhere(&a, &b, &alice).await;
    public_todo(&a, "hello").await;
    assert_eq!(object_title(&next_text(&mut ws).await), "hello");
    revoke(&b, &alice).await;
    assert_eq!(close_code(&mut ws).await, 1008);

    // Deleted through the issuing node: the other node hears of it from the shared change log.
    let (bob, bob_id) = sign_up(&a, "bob").await;
    let mut ws = socket_elsewhere(&a, &b, &bob).await;
    public_todo(&b, "hello bob").await;
    assert_eq!(object_title(&next_text(&mut ws).await), "hello bob");
    delete_user(&a, &bob_id).await;
    assert_eq!(close_code(&mut ws).await, 1008);
}

#[tokio::test]
async fn a_sign_out_or_a_group_left_through_one_node_reaches_the_users_socket_on_another() {
    let bus = BusServer::start(Engine::Redis).await;
    let ([a, b, _], _database) = three_nodes(&bus).await;
    bind_eds_gateway(&a).await;
    bind_eds_gateway(&b).await;
    let (carol, carol_id) = sign_up(&a, "carol").await;
    let team = team_with(&a, &carol_id).await;
    let mut ws = socket_elsewhere(&a, &b, &carol).await;
    team_todo(&a, &team, "for the team").await;
    assert_eq!(object_title(&next_text(&mut ws).await), "for the team");

    // Carol leaves the team through node A; node B, which holds her socket, hears of it from the database and
    // re-scopes the socket long before its periodic re-check (a minute).
    leave(&a, &team, &carol_id).await;
    let started = std::time::Instant::now();
    let mut n = 0;
    loop {
        n += 1;
        team_todo(&a, &team, &format!("team {n}")).await;
        public_todo(&a, &format!("public {n}")).await;
        let mut team_frame = false;
        loop {
            let title = object_title(&next_text(&mut ws).await);
            let title = title.as_str().unwrap_or_default();
            if title == format!("public {n}") {
                break;
            }
            team_frame |= title.starts_with("team ");
        }
        if !team_frame {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still in the team {:?} after leaving it",
            started.elapsed()
        );
    }

    // Signed out through node A: node B closes her socket (within `close_code`'s 3 s).
    revoke(&a, &carol).await;
    assert_eq!(close_code(&mut ws).await, 1008);
}

/// Over NATS a node hears a tag only while one of its sockets has it (`nats_routes.rs`): a socket given a group's
/// tag must have the node subscribe to it, or the group's messages published elsewhere never reach the node.
#[tokio::test]
async fn over_nats_a_group_joined_through_one_node_reaches_the_users_socket_on_another() {
    let bus = BusServer::start(Engine::Nats).await;
    let ([a, b, _], _database) = three_nodes(&bus).await;
    bind_eds_gateway(&a).await;
    bind_eds_gateway(&b).await;
    let ((dave, dave_id), (_, erin_id)) = (sign_up(&a, "dave").await, sign_up(&a, "erin").await);
    let team = team_with(&a, &erin_id).await;
    let mut ws = socket_elsewhere(&a, &b, &dave).await;
    team_todo(&a, &team, "not yet").await;
    public_todo(&a, "public 0").await;
    assert_eq!(object_title(&next_text(&mut ws).await), "public 0", "not in the team yet");

    join(&a, &team, &dave_id).await;
    let started = std::time::Instant::now();
    for n in 1.. {
        team_todo(&a, &team, &format!("team {n}")).await;
        public_todo(&a, &format!("public {n}")).await;
        let first = object_title(&next_text(&mut ws).await);
        if first == format!("team {n}").as_str() {
            assert_eq!(object_title(&next_text(&mut ws).await), format!("public {n}").as_str());
            break;
        }
        assert_eq!(first, format!("public {n}").as_str());
        assert!(started.elapsed() < Duration::from_secs(5), "not in the team {:?} after joining", started.elapsed());
    }
}

/// A PostgreSQL server of our own (the machine's binaries, run as `postgres`), for the tests that stop it.
struct PgServer {
    dir: tempfile::TempDir,
    port: u16,
}

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

fn as_postgres(program: &str, args: &[&str]) -> std::process::Output {
    let output = std::process::Command::new("runuser")
        .args(["-u", "postgres", "--", &format!("{PG_BIN}/{program}")])
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "{program}: {}", String::from_utf8_lossy(&output.stderr));
    output
}

impl PgServer {
    async fn start() -> PgServer {
        let dir = tempfile::tempdir().unwrap();
        std::process::Command::new("chown").arg("postgres").arg(dir.path()).status().unwrap();
        let data = dir.path().join("data");
        as_postgres("initdb", &["-D", data.to_str().unwrap(), "-A", "trust", "-U", "postgres", "-E", "UTF8"]);
        let server = PgServer { dir, port: crate::helpers::free_port() };
        server.run();
        let admin = format!("postgres://postgres@127.0.0.1:{}/postgres", server.port);
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin).await.unwrap();
        sqlx::query("CREATE DATABASE updraft").execute(&mut conn).await.unwrap();
        server
    }

    fn run(&self) {
        let data = self.dir.path().join("data");
        let options = format!("-p {} -c listen_addresses=127.0.0.1 -k {}", self.port, self.dir.path().display());
        let log = self.dir.path().join("log");
        as_postgres(
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-o", &options, "-l", log.to_str().unwrap(), "-w", "start"],
        );
    }

    /// Stops the server as a crash would (no shutdown checkpoint); committed work is in its WAL.
    fn crash(&self) {
        let data = self.dir.path().join("data");
        as_postgres("pg_ctl", &["-D", data.to_str().unwrap(), "-m", "immediate", "-w", "stop"]);
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/updraft", self.port)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = std::process::Command::new("runuser")
            .args([
                "-u",
                "postgres",
                "--",
                &format!("{PG_BIN}/pg_ctl"),
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "stop",
            ])
            .output();
    }
}

async fn ready(node: &Eds) -> bool {
    let res = node.app.client.get(format!("{}/readyz", node.app.base)).send().await.unwrap();
    res.status() == StatusCode::OK
}

async fn ready_within(node: &Eds, wanted: bool, within: Duration) {
    let deadline = std::time::Instant::now() + within;
    while ready(node).await != wanted {
        assert!(std::time::Instant::now() < deadline, "/readyz did not become {wanted}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Writers creating todos through both nodes until told to stop; each keeps the ids the server acknowledged.
fn writers(
    nodes: [&Eds; 2],
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Vec<String>>> {
    (0..4)
        .map(|writer| {
            let node = nodes[writer % 2];
            let (client, base, backend) = (node.app.client.clone(), node.app.base.clone(), node.backend.clone());
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let sent = (client.post(format!("{base}/v1/objects/todos")).header("Enginio-Backend-Id", &backend))
                        .body(json!({"writer": writer}).to_string())
                        .send()
                        .await;
                    match sent {
                        Ok(res) if res.status() == StatusCode::CREATED => {
                            let todo: Value = res.json().await.unwrap();
                            acknowledged.push(todo["id"].as_str().unwrap().to_owned());
                        }
                        _ => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
                acknowledged
            })
        })
        .collect()
}

/// A publisher of MWS messages `msg <n>` to everyone through `node` until told to stop; keeps those acknowledged,
/// with when.
fn publisher(
    node: &Eds,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<Vec<(String, Instant)>> {
    let (client, base) = (node.app.client.clone(), node.app.base.clone());
    let stop = stop.clone();
    tokio::spawn(async move {
        let mut acknowledged = Vec::new();
        let mut n = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            n += 1;
            let data = format!("msg {n}");
            let body = json!({"data": data, "receivers": {"sockets": ["*"], "tags": []}});
            let sent =
                client.post(format!("{base}/v1/messages")).bearer_auth(ADMIN).body(body.to_string()).send().await;
            match sent {
                Ok(res) if res.status().is_success() => acknowledged.push((data, Instant::now())),
                _ => {}
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        acknowledged
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_recover_from_a_postgresql_crash_and_a_bus_restart_and_lose_nothing_acknowledged() {
    let pg = PgServer::start().await;
    let bus = BusServer::start(Engine::Redis).await;
    let bus_url = bus.url();
    let args = || ServeArgs {
        bus: Some(bus_url.clone()),
        database_url: Some(pg.url()),
        admin_email: Some(EMAIL.into()),
        admin_password: Some(PASSWORD.into()),
        ..open_args()
    };
    let a = eds_in(args(), "development").await;
    let b = Eds {
        app: spawn_app(args()).await,
        backend: a.backend.clone(),
        secret: a.secret.clone(),
        master_key: a.master_key.clone(),
        account: a.account.clone(),
    };
    bind_default(&b, json!({"type": "none", "backendId": a.backend})).await;
    let (_, mut on_b) = b.app.connect(&[]).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let running = writers([&a, &b], &stop);
    let publishing = publisher(&a, &stop);

    // PostgreSQL crashes and Redis restarts (empty) while clients write and publish through both nodes.
    tokio::time::sleep(Duration::from_millis(800)).await;
    pg.crash();
    let bus_down = Instant::now();
    let (engine, port) = bus.stop().await;
    ready_within(&a, false, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    pg.run();
    let _bus = BusServer::start_on(engine, port).await;
    ready_within(&a, true, Duration::from_secs(20)).await;
    ready_within(&b, true, Duration::from_secs(20)).await;
    let bus_up = Instant::now();
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acknowledged = Vec::new();
    for writer in running {
        acknowledged.extend(writer.await.unwrap());
    }
    let published = publishing.await.unwrap();
    // Redis pub/sub keeps nothing: while node B is re-subscribing (and not ready) it misses what node A may
    // already publish again (docs/scale-out.md). What was acknowledged while both were ready must all arrive.
    let owed: Vec<String> =
        published.iter().filter(|(_, at)| *at < bus_down || *at > bus_up).map(|(data, _)| data.clone()).collect();
    assert!(acknowledged.len() > 20, "writes went on around the crash: {}", acknowledged.len());
    assert!(published.len() > 20, "messages went on around the restart: {}", published.len());
    for id in &acknowledged {
        let (status, _) = b.call(Method::GET, &format!("/v1/objects/todos/{id}"), None, None).await;
        assert_eq!(status, StatusCode::OK, "acknowledged {id} is there");
    }

    // Node B follows the change log and the bus again: a change made through A after the crash reaches B's
    // socket, and so did every message A acknowledged while both nodes were ready. The writers' own changes may still
    // be arriving under load: skip them, in order, until that change (each wait bounded by `next_text`'s timeout,
    // so a change or message that never comes fails the test).
    let (status, todo) = a.call(Method::POST, "/v1/objects/todos", None, Some(r#"{"title":"after"}"#)).await;
    assert_eq!(status, StatusCode::CREATED);
    let mut unheard: std::collections::BTreeSet<String> = owed.into_iter().collect();
    let mut after_seen = false;
    while !after_seen || !unheard.is_empty() {
        let text = next_text(&mut on_b).await;
        if text.starts_with("msg ") {
            unheard.remove(&text);
            continue;
        }
        let frame: Value = serde_json::from_str(&text).unwrap();
        after_seen |= frame["object"]["id"] == todo["id"];
    }
}
