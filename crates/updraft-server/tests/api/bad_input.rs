//! Bad input gets a clear error or close code, changes nothing, and leaves other sockets alone.

use reqwest::StatusCode;
use serde_json::json;
use updraft_server::config::ServeArgs;

use crate::helpers::*;

#[tokio::test]
async fn oversized_bodies_are_refused_and_nothing_is_sent() {
    let app = spawn_app(ServeArgs { max_body_bytes: Some(1024), ..open_args() }).await;
    let (_, mut ws) = app.connect(&[]).await;
    let body = json!({"data": "x".repeat(2048), "receivers": {"sockets": ["*"], "tags": []}}).to_string();
    let (status, res) = app.post("/v1/messages", None, &body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(res["error"]["reason"], "PayloadTooLarge");
    assert_silent(&mut ws, 100).await;
}

#[tokio::test]
async fn malformed_and_mistyped_messages_get_422_and_send_nothing() {
    let app = spawn_app(open_args()).await;
    let (_, mut ws) = app.connect(&[]).await;
    let cases = [
        ("", "data"),
        ("{\"data\":\"x\",", ""),
        ("[\"data\"]", "data"),
        (r#"{"data":"x"}"#, "receivers"),
        (r#"{"data":"x","receivers":{"sockets":"*"}}"#, "sockets"),
        (r#"{"data":"x","receivers":{"sockets":[{"id":1}]}}"#, "sockets"),
        (r#"{"data":[1],"receivers":{"sockets":["*"]}}"#, ""),
        (&format!("{}1{}", "[".repeat(200), "]".repeat(200)), ""),
    ];
    for (body, property) in cases {
        let (status, res) = app.post("/v1/messages", None, body).await;
        if property.is_empty() && status == StatusCode::CREATED {
            // Array data is stringified like object data.
            assert_eq!(res["data"], "[1]");
            assert_eq!(next_text(&mut ws).await, "[1]");
            continue;
        }
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {res}");
        if !property.is_empty() {
            assert_eq!(res["errors"][0]["property"], property, "{body}");
            assert_eq!(res["errors"][0]["reason"], "ValidationFailed");
        }
    }
    assert_silent(&mut ws, 100).await;
}

#[tokio::test]
async fn non_bearer_schemes_are_refused_where_authorization_is_required() {
    let app = spawn_app(spec_args()).await;
    for header in ["Basic c3VwZXJzZWNyZXQ=", "supersecret", "Token supersecret"] {
        let res =
            app.client.get(format!("{}/v1/sockets", app.base)).header("Authorization", header).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{header}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"]["reason"], "Unauthorized");
    }
}

#[tokio::test]
async fn protocol_violations_close_with_their_codes_and_spare_other_sockets() {
    let app = spawn_app(ServeArgs { max_client_message_bytes: Some(1000), ..open_args() }).await;
    let (bystander_id, mut bystander) = app.connect(&[]).await;
    let cases: [(u8, Vec<u8>, bool, u16); 6] = [
        (0x81, b"unmasked".to_vec(), false, 1002),
        (0x81, vec![0xC3, 0x28], true, 1007),
        (0x82, vec![0; 2000], true, 1009),
        (0xC1, b"rsv".to_vec(), true, 1002),
        (0x83, vec![], true, 1002),
        (0x89, vec![0; 126], true, 1002),
    ];
    for (first, payload, masked, code) in cases {
        let (_, uri) = app.socket_uri(&[]).await;
        let mut raw = RawSocket::open(&uri).await;
        raw.send_frame(first, &payload, masked).await;
        assert_eq!(raw.close_code().await, code, "frame {first:#x} of {} bytes", payload.len());
    }
    app.send("still fine", &[&bystander_id], &[]).await;
    assert_eq!(next_text(&mut bystander).await, "still fine");
}

#[tokio::test]
async fn a_close_from_the_client_is_echoed() {
    let app = spawn_app(open_args()).await;
    let (_, uri) = app.socket_uri(&[]).await;
    let mut raw = RawSocket::open(&uri).await;
    raw.send_frame(0x88, &[0x0F, 0xA0, b'b', b'y', b'e'], true).await;
    assert_eq!(raw.close_code().await, 4000);
    assert!(raw.next_frame().await.is_none(), "the server closes TCP after the handshake");
}

#[tokio::test]
async fn bad_handshakes_get_http_errors() {
    let app = spawn_app(open_args()).await;
    let (_, uri) = app.socket_uri(&[]).await;
    let url = uri.replace("ws://", "http://");
    let res = app
        .client
        .get(&url)
        .header("Upgrade", "websocket")
        .header("Connection", "Upgrade")
        .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("Sec-WebSocket-Version", "8")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UPGRADE_REQUIRED);
    assert_eq!(res.headers()["sec-websocket-version"], "13");
    let res = app
        .client
        .get(&url)
        .header("Upgrade", "websocket")
        .header("Connection", "Upgrade")
        .header("Sec-WebSocket-Version", "13")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    // A refused handshake does not use up the token.
    let (mut ws, _) = tokio_tungstenite::connect_async(uri.as_str()).await.unwrap();
    app.send("ok", &["*"], &[]).await;
    assert_eq!(next_text(&mut ws).await, "ok");
}

#[tokio::test]
async fn a_flood_of_socket_uris_is_bounded() {
    let app = spawn_app(ServeArgs { max_pending_sockets: Some(5), ..open_args() }).await;
    for _ in 0..5 {
        assert_eq!(app.get("/v1/websocket_uri", None).await.0, StatusCode::OK);
    }
    let (status, body) = app.get("/v1/websocket_uri", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["reason"], "ServiceUnavailable");
}

#[tokio::test]
async fn unknown_endpoints_answer_json_404() {
    let app = spawn_app(open_args()).await;
    let (status, body) = app.get("/v1/nothing", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["reason"], "NotFound");
}
