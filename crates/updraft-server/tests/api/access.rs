//! Access modes of a gateway: eds (tokens verified at EDS_URI), custom, none.

use reqwest::StatusCode;
use serde_json::json;
use updraft_server::config::{AccessMode, ServeArgs};

use crate::eds_stub;
use crate::helpers::*;

#[tokio::test]
async fn eds_users_get_sockets_tagged_with_their_user_and_groups() {
    let eds = eds_stub::start().await;
    let app = spawn_app(ServeArgs { eds_uri: Some(eds.uri.clone()), ..spec_args() }).await;
    let (status, body) = app.get("/v1/websocket_uri", Some("joe-token")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["tags"], json!(["users.joe", "usergroups.12345"]));
    let (mut ws, _) = tokio_tungstenite::connect_async(body["uri"].as_str().unwrap()).await.unwrap();
    // An EDS change for joe's group reaches him through the enginio receiver.
    let hook = json!({"payload": {"object": {"id": "t1"}, "meta": {"eventName": "create"}},
                      "receivers": [{"id": "12345", "objectType": "usergroups"}]});
    let mut delivered = false;
    for _ in 0..100 {
        let (status, _) = app.post("/v1/webhook_receivers/enginio", Some(ADMIN), &hook.to_string()).await;
        assert_eq!(status, StatusCode::CREATED);
        let got = tokio::time::timeout(std::time::Duration::from_millis(50), next_text(&mut ws)).await;
        if let Ok(text) = got {
            let frame: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(frame["meta"]["eventName"], "create");
            delivered = true;
            break;
        }
    }
    assert!(delivered, "the webhook message never arrived");
}

#[tokio::test]
async fn eds_read_permission_gates_socket_uris() {
    let eds = eds_stub::start().await;
    let args = ServeArgs {
        eds_uri: Some(eds.uri.clone()),
        eds_permissions: Some(r#"{"read":["usergroups.6789"],"write":["*"]}"#.into()),
        ..spec_args()
    };
    let app = spawn_app(args).await;
    assert_eq!(app.get("/v1/websocket_uri", Some("david-token")).await.0, StatusCode::OK);
    let (status, body) = app.get("/v1/websocket_uri", Some("joe-token")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["reason"], "AccessDenied");
    assert_eq!(app.get("/v1/websocket_uri", Some("nobody")).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn eds_answers_are_cached_briefly() {
    let eds = eds_stub::start().await;
    let app = spawn_app(ServeArgs { eds_uri: Some(eds.uri.clone()), ..spec_args() }).await;
    for _ in 0..3 {
        assert_eq!(app.get("/v1/websocket_uri", Some("joe-token")).await.0, StatusCode::OK);
    }
    assert_eq!(eds.calls(), 1);
}

#[tokio::test]
async fn an_unreachable_eds_is_a_503_not_a_401() {
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let uri = format!("http://{}/v1/user", unused.local_addr().unwrap());
    drop(unused);
    let app = spawn_app(ServeArgs { eds_uri: Some(uri), ..spec_args() }).await;
    let (status, body) = app.get("/v1/websocket_uri", Some("joe-token")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["reason"], "ServiceUnavailable");
}

#[tokio::test]
async fn eds_tokens_are_refused_without_a_backend_id() {
    let eds = eds_stub::start().await;
    let app = spawn_app(ServeArgs { eds_uri: Some(eds.uri.clone()), eds_backend_id: None, ..spec_args() }).await;
    assert_eq!(app.get("/v1/websocket_uri", Some("joe-token")).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(eds.calls(), 0);
}

#[tokio::test]
async fn custom_mode_admits_only_the_security_token() {
    let app = spawn_app(ServeArgs { access_control: Some(AccessMode::Custom), ..spec_args() }).await;
    assert_eq!(app.get("/v1/websocket_uri", Some("joe-token")).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(app.post("/v1/messages", None, r#"{"data":"x","receivers":{}}"#).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(app.post("/v1/messages", Some(ADMIN), r#"{"data":"x","receivers":{}}"#).await.0, StatusCode::CREATED);
}
