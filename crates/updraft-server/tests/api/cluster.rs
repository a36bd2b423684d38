//! Several nodes on one bus (`--bus`): a message published on any node reaches every matching socket on every
//! node exactly once, an original MWS message published raw on Redis is delivered, and a node whose bus goes
//! away reports not ready, refuses to publish, and comes back by itself.
//!
//! Each test runs its own `redis-server` or `nats-server` on a free port: pub/sub channels are global to a
//! Redis server (not per database), so tests sharing the machine's server would hear each other, and the
//! restart tests stop their server.

use std::time::Duration;

use reqwest::StatusCode;
use updraft_server::config::ServeArgs;

use crate::helpers::{ADMIN, TestApp, Ws, assert_silent, free_port, next_text, open_args, spawn_app};

#[derive(Clone, Copy, Debug)]
pub(crate) enum Engine {
    Redis,
    Nats,
}

/// A bus server of our own, killed when dropped.
pub(crate) struct BusServer {
    engine: Engine,
    port: u16,
    child: tokio::process::Child,
    /// NATS keeps its JetStream files here.
    _store: Option<tempfile::TempDir>,
}

impl BusServer {
    pub(crate) async fn start(engine: Engine) -> BusServer {
        BusServer::start_on(engine, free_port()).await
    }

    pub(crate) async fn start_on(engine: Engine, port: u16) -> BusServer {
        let port_arg = port.to_string();
        let store = matches!(engine, Engine::Nats).then(|| tempfile::tempdir().unwrap());
        let mut command = match engine {
            Engine::Redis => {
                let mut c = tokio::process::Command::new("redis-server");
                c.args(["--port", &port_arg, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
                c
            }
            Engine::Nats => {
                let mut c = tokio::process::Command::new(nats_server());
                c.args(["-a", "127.0.0.1", "-p", &port_arg, "-js", "-sd"]);
                c.arg(store.as_ref().unwrap().path());
                c
            }
        };
        let child = command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the bus server starts");
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return BusServer { engine, port, child, _store: store };
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{engine:?} did not start on {port}");
    }

    pub(crate) fn url(&self) -> String {
        match self.engine {
            Engine::Redis => format!("redis://127.0.0.1:{}", self.port),
            Engine::Nats => format!("nats://127.0.0.1:{}", self.port),
        }
    }

    /// Stops the server; a restart on the same port starts empty (tickets in memory are gone).
    pub(crate) async fn stop(mut self) -> (Engine, u16) {
        self.child.kill().await.unwrap();
        (self.engine, self.port)
    }
}

fn nats_server() -> &'static str {
    if std::path::Path::new("/usr/sbin/nats-server").exists() { "/usr/sbin/nats-server" } else { "nats-server" }
}

pub(crate) async fn nodes(bus: &BusServer, count: usize) -> Vec<TestApp> {
    let mut nodes = Vec::new();
    for _ in 0..count {
        nodes.push(spawn_app(ServeArgs { bus: Some(bus.url()), ..open_args() }).await);
    }
    nodes
}

/// Two sockets a node: one tagged `blue`, one with no tag.
async fn sockets(nodes: &[TestApp]) -> Vec<[(String, Ws); 2]> {
    let mut all = Vec::new();
    for node in nodes {
        all.push([node.connect(&["blue"]).await, node.connect(&[]).await]);
    }
    all
}

async fn publishes_reach_every_node_once(engine: Engine) {
    let bus = BusServer::start(engine).await;
    let nodes = nodes(&bus, 3).await;
    let mut sockets = sockets(&nodes).await;
    let plain_on_first = sockets[0][1].0.clone();

    nodes[0].send("to everyone", &["*"], &[]).await;
    nodes[1].send("to blue", &[], &["blue"]).await;
    nodes[2].send("to one socket", &[plain_on_first.as_str()], &["nobody"]).await;

    for (node, [(_, blue), (id, plain)]) in sockets.iter_mut().enumerate() {
        assert_eq!(next_text(blue).await, "to everyone", "{engine:?} node {node}");
        assert_eq!(next_text(blue).await, "to blue", "{engine:?} node {node}");
        assert_eq!(next_text(plain).await, "to everyone", "{engine:?} node {node}");
        if *id == plain_on_first {
            assert_eq!(next_text(plain).await, "to one socket", "{engine:?}");
        }
    }
    for [(_, blue), (_, plain)] in &mut sockets {
        assert_silent(blue, 300).await;
        assert_silent(plain, 50).await;
    }
}

/// Interest routing itself (a node without sockets of a gateway hears none of its messages) is tested in
/// `updraft-bus` (`nats_interest.rs`), where each node has a recorder of its own: these nodes share one process's
/// metrics.
#[tokio::test]
async fn over_nats_a_socket_opened_on_a_node_with_no_interest_yet_hears_the_next_message() {
    let bus = BusServer::start(Engine::Nats).await;
    let nodes = nodes(&bus, 3).await;
    let (_, mut on_1) = nodes[1].connect(&[]).await;
    nodes[0].send("for node 1", &["*"], &[]).await;
    assert_eq!(next_text(&mut on_1).await, "for node 1");
    // Node 2 subscribes when the socket's ticket is taken, before the socket opens.
    let (_, mut on_2) = nodes[2].connect(&[]).await;
    nodes[0].send("for both", &["*"], &[]).await;
    assert_eq!(next_text(&mut on_2).await, "for both");
    assert_eq!(next_text(&mut on_1).await, "for both");
    assert_silent(&mut on_2, 200).await;
}

#[tokio::test]
async fn publishes_reach_every_node_once_over_redis() {
    publishes_reach_every_node_once(Engine::Redis).await;
}

#[tokio::test]
async fn publishes_reach_every_node_once_over_nats() {
    publishes_reach_every_node_once(Engine::Nats).await;
}

async fn a_uri_opens_once_on_any_node(engine: Engine) {
    let bus = BusServer::start(engine).await;
    let nodes = nodes(&bus, 3).await;
    let (id, uri) = nodes[0].socket_uri(&["blue"]).await;
    let port_of = |node: &TestApp| node.addr.port().to_string();
    let on_second = uri.replace(&port_of(&nodes[0]), &port_of(&nodes[1]));
    let on_third = uri.replace(&port_of(&nodes[0]), &port_of(&nodes[2]));

    let (mut ws, _) = tokio_tungstenite::connect_async(on_second.as_str()).await.expect("opens on another node");
    nodes[1].wait_connected(&id).await;
    nodes[2].send("blue news", &[], &["blue"]).await;
    assert_eq!(next_text(&mut ws).await, "blue news", "{engine:?}: the ticket's tags came along");

    for again in [on_third.as_str(), uri.as_str()] {
        let (mut second, _) = tokio_tungstenite::connect_async(again).await.unwrap();
        assert_eq!(crate::helpers::close_code(&mut second).await, 1008, "{engine:?}: a URI opens once");
    }

    // A URI withdrawn on the node that issued it opens nowhere.
    let (withdrawn, uri) = nodes[2].socket_uri(&[]).await;
    let (status, _) =
        nodes[2].call(reqwest::Method::DELETE, &format!("/v1/sockets/{withdrawn}"), Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::OK);
    let elsewhere = uri.replace(&port_of(&nodes[2]), &port_of(&nodes[0]));
    let (mut refused, _) = tokio_tungstenite::connect_async(elsewhere.as_str()).await.unwrap();
    assert_eq!(crate::helpers::close_code(&mut refused).await, 1008, "{engine:?}");
}

#[tokio::test]
async fn a_uri_opens_once_on_any_node_over_redis() {
    a_uri_opens_once_on_any_node(Engine::Redis).await;
}

#[tokio::test]
async fn a_uri_opens_once_on_any_node_over_nats() {
    a_uri_opens_once_on_any_node(Engine::Nats).await;
}

/// An original MWS node publishes `{"data","receivers"}` on `websocket_messages`; `redis-cli` stands in for it.
#[tokio::test]
async fn an_original_mws_message_on_redis_is_delivered_on_every_node() {
    let bus = BusServer::start(Engine::Redis).await;
    let nodes = nodes(&bus, 2).await;
    let mut sockets = sockets(&nodes).await;
    let raw = r#"{"data":"from ruby","receivers":{"sockets":null,"tags":["blue"]}}"#;
    let published = tokio::process::Command::new("redis-cli")
        .args(["-p", &bus.port.to_string(), "PUBLISH", "websocket_messages", raw])
        .output()
        .await
        .unwrap();
    assert!(published.status.success());
    // Both nodes are subscribed.
    assert_eq!(String::from_utf8_lossy(&published.stdout).trim(), "2");
    for [(_, blue), (_, plain)] in &mut sockets {
        assert_eq!(next_text(blue).await, "from ruby");
        assert_silent(plain, 200).await;
    }
}

async fn a_node_recovers_from_a_bus_restart(engine: Engine) {
    let bus = BusServer::start(engine).await;
    let nodes = nodes(&bus, 2).await;
    let mut sockets = sockets(&nodes).await;
    for node in &nodes {
        assert_eq!(node.get("/readyz", None).await.0, StatusCode::OK);
    }

    let (engine, port) = bus.stop().await;
    wait_for_readiness(&nodes[0], StatusCode::SERVICE_UNAVAILABLE).await;
    let body = r#"{"data":"lost?","receivers":{"sockets":["*"],"tags":[]}}"#;
    let (status, res) = nodes[0].post("/v1/messages", Some(ADMIN), body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{engine:?}: {res}");
    assert_eq!(nodes[0].get("/healthz", None).await.0, StatusCode::OK, "alive, only not ready");

    let _bus = BusServer::start_on(engine, port).await;
    for node in &nodes {
        wait_for_readiness(node, StatusCode::OK).await;
    }
    nodes[1].send("after the restart", &["*"], &[]).await;
    for [(_, blue), (_, plain)] in &mut sockets {
        assert_eq!(next_text(blue).await, "after the restart", "{engine:?}");
        assert_eq!(next_text(plain).await, "after the restart", "{engine:?}");
        assert_silent(blue, 100).await;
    }
    // The restarted server holds nothing: each node finds its lease gone at its next renewal (every 10 s) and
    // records its sockets again.
    listed_within(&nodes[0], 4, Duration::from_secs(15)).await;
}

async fn wait_for_readiness(node: &TestApp, wanted: StatusCode) {
    for _ in 0..400 {
        if node.get("/readyz", None).await.0 == wanted {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("/readyz never answered {wanted}");
}

#[tokio::test]
async fn a_node_recovers_from_a_redis_restart() {
    a_node_recovers_from_a_bus_restart(Engine::Redis).await;
}

#[tokio::test]
async fn a_node_recovers_from_a_nats_restart() {
    a_node_recovers_from_a_bus_restart(Engine::Nats).await;
}

#[tokio::test]
async fn a_bus_that_cannot_be_reached_stops_the_start() {
    let port = free_port();
    for url in [format!("redis://127.0.0.1:{port}"), format!("nats://127.0.0.1:{port}")] {
        let settings = ServeArgs { bus: Some(url.clone()), ..open_args() }.resolve().unwrap();
        let data = tempfile::tempdir().unwrap();
        let settings = updraft_server::config::Settings { data_dir: data.path().to_owned(), ..settings };
        let failed = updraft_server::Application::build(settings).await;
        assert!(failed.is_err(), "{url}");
    }
    let wrong = ServeArgs { bus: Some("kafka://x".into()), ..open_args() }.resolve();
    assert!(wrong.unwrap_err().to_string().contains("redis://"));
}

/// The ids `GET /v1/sockets` lists on `node`, once there are `count` of them (the registry is written a moment
/// after a socket opens or closes).
async fn listed(node: &TestApp, count: usize) -> Vec<serde_json::Value> {
    listed_within(node, count, Duration::from_secs(5)).await
}

async fn listed_within(node: &TestApp, count: usize, within: Duration) -> Vec<serde_json::Value> {
    let mut last = Vec::new();
    for _ in 0..within.as_millis() / 25 {
        // A bus server that just restarted may answer 503 for a moment (JetStream starting, buckets made again).
        let (status, body) = node.get("/v1/sockets", Some(ADMIN)).await;
        if status == StatusCode::OK {
            last = body["results"].as_array().unwrap().clone();
            if last.len() == count {
                return last;
            }
        } else {
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("expected {count} sockets, the last listing had {}: {last:?}", last.len());
}

async fn every_node_lists_and_closes_every_socket(engine: Engine) {
    let bus = BusServer::start(engine).await;
    let nodes = nodes(&bus, 3).await;
    let mut sockets = sockets(&nodes).await;
    for node in &nodes {
        let all = listed(node, 6).await;
        let blue = all.iter().filter(|socket| socket["tags"] == serde_json::json!(["blue"])).count();
        assert_eq!(blue, 3, "{engine:?}");
    }
    let on_third = sockets[2][0].0.clone();
    let (status, socket) = nodes[0].get(&format!("/v1/sockets/{on_third}"), Some(ADMIN)).await;
    assert_eq!((status, socket["tags"].clone()), (StatusCode::OK, serde_json::json!(["blue"])), "{engine:?}");

    // Deleted through the first node, closed by the second, which holds it.
    let on_second = sockets[1][1].0.clone();
    let path = format!("/v1/sockets/{on_second}");
    assert_eq!(nodes[0].call(reqwest::Method::DELETE, &path, Some(ADMIN), None).await.0, StatusCode::OK);
    assert_eq!(crate::helpers::close_code(&mut sockets[1][1].1).await, 1000, "{engine:?}");
    listed(&nodes[2], 5).await;
    assert_eq!(nodes[2].get(&path, Some(ADMIN)).await.0, StatusCode::NOT_FOUND);
    assert_eq!(nodes[0].call(reqwest::Method::DELETE, &path, Some(ADMIN), None).await.0, StatusCode::NOT_FOUND);

    // A client that leaves leaves every listing.
    sockets[2][0].1.close(None).await.unwrap();
    listed(&nodes[0], 4).await;
}

#[tokio::test]
async fn every_node_lists_and_closes_every_socket_over_redis() {
    every_node_lists_and_closes_every_socket(Engine::Redis).await;
}

#[tokio::test]
async fn every_node_lists_and_closes_every_socket_over_nats() {
    every_node_lists_and_closes_every_socket(Engine::Nats).await;
}

/// A node killed with SIGKILL says nothing; its lease lapses and its sockets leave the listing within 30 s.
async fn a_killed_nodes_sockets_leave_the_listing(engine: Engine) {
    let bus = BusServer::start(engine).await;
    let survivor = spawn_app(ServeArgs { bus: Some(bus.url()), ..open_args() }).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = bus.url();
    let args = ["--bus", url.as_str(), "--security-token", ADMIN, "--access-control", "none"];
    let mut doomed = crate::helpers::start_binary(dir.path(), port, &args).await;
    let client = reqwest::Client::new();
    let created: serde_json::Value = client
        .post(format!("http://127.0.0.1:{port}/v1/sockets"))
        .bearer_auth(ADMIN)
        .body(r#"{"tags":["doomed"]}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (_ws, _) = tokio_tungstenite::connect_async(created["uri"].as_str().unwrap()).await.unwrap();
    let (_own, _kept) = survivor.connect(&[]).await;
    listed(&survivor, 2).await;

    doomed.start_kill().unwrap();
    doomed.wait().await.unwrap();
    let killed = std::time::Instant::now();
    listed_within(&survivor, 1, Duration::from_secs(35)).await;
    assert!(killed.elapsed() <= Duration::from_secs(31), "{engine:?}: took {:?}", killed.elapsed());
}

#[tokio::test]
async fn a_killed_nodes_sockets_leave_the_listing_over_redis() {
    a_killed_nodes_sockets_leave_the_listing(Engine::Redis).await;
}

#[tokio::test]
async fn a_killed_nodes_sockets_leave_the_listing_over_nats() {
    a_killed_nodes_sockets_leave_the_listing(Engine::Nats).await;
}

/// Another gateway's admin, on another node, neither sees nor closes a socket it does not own: every registry
/// key names its gateway.
#[tokio::test]
async fn a_gateways_sockets_stay_its_own_across_nodes() {
    let bus = BusServer::start(Engine::Redis).await;
    let root = "gateway-root";
    let args = || ServeArgs { bus: Some(bus.url()), admin_token: Some(root.into()), ..open_args() };
    let (first, second) = (spawn_app(args()).await, spawn_app(args()).await);
    let (status, gateway) = second.post("/v1/gateways", Some(root), r#"{"name":"private"}"#).await;
    assert_eq!(status, StatusCode::CREATED, "{gateway}");
    let (gid, token) = (gateway["id"].as_str().unwrap(), gateway["securityToken"].as_str().unwrap());
    let (status, socket) = second.post(&format!("/v1/gateways/{gid}/sockets"), Some(token), "{}").await;
    assert_eq!(status, StatusCode::CREATED, "{socket}");
    let (mut ws, _) = tokio_tungstenite::connect_async(socket["uri"].as_str().unwrap()).await.unwrap();
    let id = socket["id"].as_str().unwrap();
    let (_, _mine) = first.connect(&[]).await;

    // The default gateway's admin, on the other node: its listing, a read and a delete all miss it.
    listed(&first, 1).await;
    let path = format!("/v1/sockets/{id}");
    assert_eq!(first.get(&path, Some(ADMIN)).await.0, StatusCode::NOT_FOUND);
    assert_eq!(first.call(reqwest::Method::DELETE, &path, Some(ADMIN), None).await.0, StatusCode::NOT_FOUND);
    // Still open and still its gateway's: a close would have taken it out of its hub at once.
    assert_silent(&mut ws, 300).await;
    assert_eq!(second.get(&format!("/v1/gateways/{gid}/sockets/{id}"), Some(token)).await.0, StatusCode::OK);
}
