//! Resumable delivery across nodes, on Redis and on NATS: the bus numbers each message once for the whole cluster
//! and keeps the recent ones, so a socket that reconnects to another node with the last number it saw gets what it
//! missed there, once each, and every node's sockets see the same numbers. On a shared store every node publishes
//! each EDS change, and the bus keeps it once.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::cluster::{BusServer, Engine, nodes};
use crate::cluster_store::three_nodes;
use crate::helpers::{assert_silent, next_text};
use crate::resume::{connect_since, next_json};

#[tokio::test]
async fn over_nats_a_socket_resumes_on_another_node_with_what_it_missed() {
    a_socket_resumes_on_another_node_with_what_it_missed(Engine::Nats).await;
}

#[tokio::test]
async fn over_redis_a_socket_resumes_on_another_node_with_what_it_missed() {
    a_socket_resumes_on_another_node_with_what_it_missed(Engine::Redis).await;
}

async fn a_socket_resumes_on_another_node_with_what_it_missed(engine: Engine) {
    let bus = BusServer::start(engine).await;
    let nodes = nodes(&bus, 3).await;
    let mut on_first = connect_since(&nodes[0], &["red"], 0).await;
    let mut on_third = connect_since(&nodes[2], &["red"], 0).await;
    let start = next_json(&mut on_first).await;
    assert_eq!(start["resumed"], true);
    assert_eq!(next_json(&mut on_third).await["resumed"], true);

    nodes[1].send("one", &[], &["red"]).await;
    let one = next_json(&mut on_first).await;
    assert_eq!(one["data"], "one");
    let seq = one["seq"].as_u64().unwrap();
    assert_eq!(next_json(&mut on_third).await, one, "every node numbers a message the same way");
    drop(on_first);

    // Missed while away: two for it, one for others; the socket comes back on the second node, which holds no
    // socket of the gateway (on NATS it heard none of them).
    nodes[2].send("two", &[], &["red"]).await;
    nodes[2].send("not for red", &[], &["blue"]).await;
    nodes[0].send("three", &["*"], &[]).await;
    for wanted in ["two", "three"] {
        assert_eq!(next_json(&mut on_third).await["data"], wanted);
    }
    let mut on_second = connect_since(&nodes[1], &["red"], seq).await;
    assert_eq!(next_json(&mut on_second).await, json!({"seq": seq + 1, "data": "two"}));
    assert_eq!(next_json(&mut on_second).await, json!({"seq": seq + 3, "data": "three"}));
    assert_eq!(next_json(&mut on_second).await, json!({"seq": seq + 3, "resumed": true}));
    nodes[0].send("live", &[], &["red"]).await;
    assert_eq!(next_json(&mut on_second).await, json!({"seq": seq + 4, "data": "live"}));
    assert_silent(&mut on_second, 200).await;

    // On the third node, which heard all of it too, what the stream kept and what the node heard make one replay.
    let mut again_on_third = connect_since(&nodes[2], &["red"], seq).await;
    for (n, data) in [(1, "two"), (3, "three"), (4, "live")] {
        assert_eq!(next_json(&mut again_on_third).await, json!({"seq": seq + n, "data": data}));
    }
    assert_eq!(next_json(&mut again_on_third).await, json!({"seq": seq + 4, "resumed": true}));
    assert_silent(&mut again_on_third, 200).await;

    // A number the stream never gave is a gap, on any node; the socket then gets live frames.
    let mut from_the_future = connect_since(&nodes[1], &["red"], seq + 100).await;
    assert_eq!(next_json(&mut from_the_future).await, json!({"seq": seq + 4, "gap": true}));
    nodes[1].send("after the gap", &[], &["red"]).await;
    assert_eq!(next_json(&mut from_the_future).await, json!({"seq": seq + 5, "data": "after the gap"}));

    // Sockets that did not ask for numbers get bare frames, as on one node.
    let (_, mut bare) = nodes[0].connect(&["red"]).await;
    nodes[2].send("bare", &[], &["red"]).await;
    assert_eq!(next_text(&mut bare).await, "bare");
}

#[tokio::test]
async fn over_nats_on_a_shared_store_a_socket_resumes_on_another_node_with_the_changes_it_missed_once() {
    on_a_shared_store_a_socket_resumes_on_another_node_with_the_changes_it_missed_once(Engine::Nats).await;
}

#[tokio::test]
async fn over_redis_on_a_shared_store_a_socket_resumes_on_another_node_with_the_changes_it_missed_once() {
    on_a_shared_store_a_socket_resumes_on_another_node_with_the_changes_it_missed_once(Engine::Redis).await;
}

async fn on_a_shared_store_a_socket_resumes_on_another_node_with_the_changes_it_missed_once(engine: Engine) {
    let bus = BusServer::start(engine).await;
    let ([a, b, c], _database) = three_nodes(&bus).await;
    let mut on_a = connect_since(&a.app, &[], 0).await;
    let mut on_c = connect_since(&c.app, &[], 0).await;
    assert_eq!(next_json(&mut on_a).await["resumed"], true);
    assert_eq!(next_json(&mut on_c).await["resumed"], true);
    let (status, todo) = b.call(Method::POST, "/v1/objects/todos", None, Some(r#"{"title":"milk"}"#)).await;
    assert_eq!(status, StatusCode::CREATED, "{todo}");
    let created = next_json(&mut on_a).await;
    let seq = created["seq"].as_u64().unwrap();
    let frame: Value = serde_json::from_str(created["data"].as_str().unwrap()).unwrap();
    assert_eq!((&frame["object"], &frame["meta"]["eventName"]), (&todo, &json!("create")));
    assert_eq!(next_json(&mut on_c).await, created, "one number for the change on every node");
    drop(on_a);

    let path = format!("/v1/objects/todos/{}", todo["id"].as_str().unwrap());
    let (status, _) = c.call(Method::PUT, &path, None, Some(r#"{"title":"oat milk"}"#)).await;
    assert_eq!(status, StatusCode::OK);
    let updated = next_json(&mut on_c).await;
    assert_eq!(updated["seq"], seq + 1, "three nodes published the change, the bus kept it once");
    let mut on_b = connect_since(&b.app, &[], seq).await;
    assert_eq!(next_json(&mut on_b).await, updated);
    assert_eq!(next_json(&mut on_b).await, json!({"seq": seq + 1, "resumed": true}));
    for ws in [&mut on_b, &mut on_c] {
        assert_silent(ws, 300).await;
    }
}
