//! Who receives a message: `*`, socket ids, tags, each socket at most once; both URL layouts.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn broadcast_ids_and_tags_reach_exactly_the_matching_sockets_once() {
    let app = spawn_app(open_args()).await;
    let (a_id, mut a) = app.connect(&["red", "blue"]).await;
    let (_, mut b) = app.connect(&["blue"]).await;
    let (c_id, mut c) = app.connect(&[]).await;

    app.send("to all", &["*"], &[]).await;
    for ws in [&mut a, &mut b, &mut c] {
        assert_eq!(next_text(ws).await, "to all");
    }

    // a matches by id and by two tags, yet gets one copy.
    app.send("red or blue", &[&a_id], &["red", "blue"]).await;
    assert_eq!(next_text(&mut a).await, "red or blue");
    assert_eq!(next_text(&mut b).await, "red or blue");

    app.send("just c", &[&c_id], &[]).await;
    assert_eq!(next_text(&mut c).await, "just c");

    app.send("nobody", &["0000"], &["green"]).await;
    for ws in [&mut a, &mut b, &mut c] {
        assert_silent(ws, 100).await;
    }
}

#[tokio::test]
async fn frames_arrive_in_publish_order() {
    let app = spawn_app(open_args()).await;
    let (_, mut ws) = app.connect(&["t"]).await;
    for i in 0..50 {
        app.send(&format!("m{i}"), &[], &["t"]).await;
    }
    for i in 0..50 {
        assert_eq!(next_text(&mut ws).await, format!("m{i}"));
    }
}

#[tokio::test]
async fn relaxed_bodies_are_accepted() {
    let app = spawn_app(open_args()).await;
    let (_, mut ws) = app.connect(&["t"]).await;
    // Missing `sockets`, object data sent as its JSON text.
    let (status, body) = app.post("/v1/messages", None, r#"{"data":{"n":1},"receivers":{"tags":["t"]}}"#).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body, json!({"data": "{\"n\":1}", "receivers": {"sockets": null, "tags": ["t"]}}));
    assert_eq!(next_text(&mut ws).await, r#"{"n":1}"#);
    // Numbers are stringified, as the original did.
    let (status, _) = app.post("/v1/messages", None, r#"{"data":42,"receivers":{"sockets":null,"tags":["t"]}}"#).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(next_text(&mut ws).await, "42");
}

#[tokio::test]
async fn websocket_uri_tickets_are_single_use() {
    let app = spawn_app(open_args()).await;
    let (status, body) = app.get("/v1/websocket_uri", None).await;
    assert_eq!(status, StatusCode::OK);
    let uri = body["uri"].as_str().unwrap();
    assert!(uri.starts_with(&format!("ws://{}/?token=", app.addr)), "{uri}");
    let (_first, _) = tokio_tungstenite::connect_async(uri).await.unwrap();
    let (mut second, _) = tokio_tungstenite::connect_async(uri).await.unwrap();
    assert_eq!(close_code(&mut second).await, 1008);
}

#[tokio::test]
async fn expired_socket_uris_are_refused() {
    let app = spawn_app(updraft_server::config::ServeArgs { socket_uri_ttl_secs: Some(0), ..open_args() }).await;
    let (_, uri) = app.socket_uri(&[]).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(uri.as_str()).await.unwrap();
    assert_eq!(close_code(&mut ws).await, 1008);
}

#[tokio::test]
async fn deleting_a_socket_closes_the_live_connection() {
    let app = spawn_app(open_args()).await;
    let (id, mut ws) = app.connect(&[]).await;
    let (status, body) = app.call(reqwest::Method::DELETE, &format!("/v1/sockets/{id}"), Some(ADMIN), None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    assert_eq!(close_code(&mut ws).await, 1000);
    let (status, _) = app.call(reqwest::Method::DELETE, &format!("/v1/sockets/{id}"), Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn deleting_an_unused_socket_withdraws_its_uri() {
    let app = spawn_app(open_args()).await;
    let (id, uri) = app.socket_uri(&[]).await;
    let (status, _) = app.call(reqwest::Method::DELETE, &format!("/v1/sockets/{id}"), Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::OK);
    let (mut ws, _) = tokio_tungstenite::connect_async(uri.as_str()).await.unwrap();
    assert_eq!(close_code(&mut ws).await, 1008);
}

#[tokio::test]
async fn trailing_slashes_and_empty_query_strings_are_ignored() {
    let app = spawn_app(open_args()).await;
    assert_eq!(app.get("/v1/websocket_uri/", None).await.0, StatusCode::OK);
    assert_eq!(app.get("/v1/websocket_uri?", None).await.0, StatusCode::OK);
    assert_eq!(app.get("/v1/sockets/?", Some(ADMIN)).await.0, StatusCode::OK);
}

#[tokio::test]
async fn the_saas_layout_reaches_the_default_gateway() {
    let app = spawn_app(open_args()).await;
    let (status, body) = app.get("/v1/gateways/default/websocket_uri", None).await;
    assert_eq!(status, StatusCode::OK);
    let (mut ws, _) = tokio_tungstenite::connect_async(body["uri"].as_str().unwrap()).await.unwrap();
    // The socket registers asynchronously after the handshake.
    for _ in 0..100 {
        let (_, list) = app.get("/v1/gateways/default/sockets", Some(ADMIN)).await;
        if list["results"].as_array().unwrap().len() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let body = r#"{"data":"saas","receivers":{"sockets":["*"],"tags":[]}}"#;
    let (status, _) = app.post("/v1/gateways/default/messages", None, body).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(next_text(&mut ws).await, "saas");
    assert_eq!(app.get("/v1/gateways/nope/websocket_uri", None).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn cors_preflight_is_answered_and_absent_without_origin() {
    let app = spawn_app(open_args()).await;
    let res = app
        .client
        .request(reqwest::Method::OPTIONS, format!("{}/v1/messages", app.base))
        .header("Origin", "http://other.example")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "authorization,content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["access-control-allow-origin"], "http://other.example");
    assert_eq!(res.headers()["access-control-allow-methods"], "GET, POST, PUT, DELETE, OPTIONS");
    assert_eq!(res.headers()["access-control-allow-headers"], "authorization,content-type");
    let res = app.client.get(format!("{}/v1/websocket_uri", app.base)).send().await.unwrap();
    assert!(res.headers().keys().all(|k| !k.as_str().starts_with("access-control-")));
}
