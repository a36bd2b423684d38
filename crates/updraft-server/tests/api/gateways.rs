//! Gateways as tenants: the admin API, isolation between gateways, configuration, persistence.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use updraft_server::config::ServeArgs;

use crate::helpers::*;

const ROOT: &str = "root-admin";

fn admin_args() -> ServeArgs {
    ServeArgs { admin_token: Some(ROOT.into()), ..open_args() }
}

async fn create(app: &TestApp, body: Value) -> Value {
    let (status, gateway) = app.post("/v1/gateways", Some(ROOT), &body.to_string()).await;
    assert_eq!(status, StatusCode::CREATED, "{gateway}");
    gateway
}

#[tokio::test]
async fn the_admin_api_creates_lists_shows_and_deletes_gateways() {
    let app = spawn_app(admin_args()).await;
    let gateway = create(&app, json!({"name": "chat", "identityProvider": "custom"})).await;
    let id = gateway["id"].as_str().unwrap();
    assert_eq!(id.len(), 24);
    assert_eq!(gateway["securityToken"].as_str().unwrap().len(), 64);
    assert_eq!(gateway["identityProvider"], json!({"type": "custom"}));

    let (status, list) = app.get("/v1/gateways", Some(ROOT)).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = list["results"].as_array().unwrap().iter().map(|g| g["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&id) && ids.contains(&"default"), "{ids:?}");
    assert_eq!(app.get(&format!("/v1/gateways/{id}"), Some(ROOT)).await.1["name"], "chat");

    let (status, _) = app.call(Method::DELETE, &format!("/v1/gateways/{id}"), Some(ROOT), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.get(&format!("/v1/gateways/{id}"), Some(ROOT)).await.0, StatusCode::NOT_FOUND);
    let (status, _) = app.call(Method::DELETE, "/v1/gateways/default", Some(ROOT), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_admin_api_needs_its_token_and_is_off_without_one() {
    let app = spawn_app(admin_args()).await;
    assert_eq!(app.get("/v1/gateways", None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get("/v1/gateways", Some(ADMIN)).await.0, StatusCode::UNAUTHORIZED);
    let (status, _) = app.post("/v1/gateways", Some("wrong"), "{}").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let off = spawn_app(open_args()).await;
    assert_eq!(off.get("/v1/gateways", Some(ROOT)).await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn gateways_are_isolated_from_each_other() {
    let app = spawn_app(admin_args()).await;
    let gateway = create(&app, json!({"name": "a"})).await;
    let (gid, token) = (gateway["id"].as_str().unwrap(), gateway["securityToken"].as_str().unwrap());

    let (status, socket) = app.post(&format!("/v1/gateways/{gid}/sockets"), Some(token), r#"{"tags":["t"]}"#).await;
    assert_eq!(status, StatusCode::CREATED);
    let (mut in_gateway, _) = tokio_tungstenite::connect_async(socket["uri"].as_str().unwrap()).await.unwrap();
    let (_, mut in_default) = app.connect(&["t"]).await;
    // The default gateway's token is no admin of the other gateway.
    let (status, _) = app.get(&format!("/v1/gateways/{gid}/sockets"), Some(ADMIN)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    for _ in 0..100 {
        let (_, list) = app.get(&format!("/v1/gateways/{gid}/sockets"), Some(token)).await;
        if list["results"].as_array().unwrap().len() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    let body = r#"{"data":"only a","receivers":{"sockets":["*"],"tags":["t"]}}"#;
    let (status, _) = app.post(&format!("/v1/gateways/{gid}/messages"), Some(token), body).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(next_text(&mut in_gateway).await, "only a");
    assert_silent(&mut in_default, 150).await;

    // Deleting the gateway closes its sockets.
    let (status, _) = app.call(Method::DELETE, &format!("/v1/gateways/{gid}"), Some(ROOT), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(close_code(&mut in_gateway).await, 1001);
}

#[tokio::test]
async fn configuration_is_read_and_changed_by_the_gateway_admin() {
    let app = spawn_app(admin_args()).await;
    let gateway = create(&app, json!({"name": "cfg"})).await;
    let (gid, token) = (gateway["id"].as_str().unwrap(), gateway["securityToken"].as_str().unwrap());
    let path = format!("/v1/gateways/{gid}/configuration");
    let (status, config) = app.get(&path, Some(token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        config,
        json!({"name": "cfg", "identityProvider": {"type": "none"}, "permissions": {"read": ["*"], "write": ["*"]}})
    );
    // Open gateway: anyone gets a socket.
    assert_eq!(app.get(&format!("/v1/gateways/{gid}/websocket_uri"), None).await.0, StatusCode::OK);

    let change = json!({"name": "renamed", "identityProvider": "custom", "permissions": {"read": ["*"], "write": []}});
    let (status, config) = app.call(Method::PUT, &path, Some(token), Some(&change.to_string())).await;
    assert_eq!(status, StatusCode::OK, "{config}");
    assert_eq!(config["name"], "renamed");
    assert_eq!(app.get(&format!("/v1/gateways/{gid}/websocket_uri"), None).await.0, StatusCode::UNAUTHORIZED);

    let (status, res) = app.call(Method::PUT, &path, Some(token), Some(r#"{"identityProvider":"ldap"}"#)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(res["errors"][0]["property"], "identityProvider");
    assert_eq!(app.get(&path, Some(token)).await.1["name"], "renamed", "a refused change changes nothing");
    assert_eq!(app.get(&path, None).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn created_gateways_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let args = || ServeArgs { data_dir: Some(dir.path().to_owned()), ..admin_args() };
    let app = spawn_in(args()).await;
    let gateway = create(&app, json!({"id": "kept", "name": "kept", "identityProvider": "custom"})).await;
    app.stop().await;

    let app = spawn_in(args()).await;
    let (status, again) = app.get("/v1/gateways/kept", Some(ROOT)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["securityToken"], gateway["securityToken"]);
    assert_eq!(again["identityProvider"], json!({"type": "custom"}));
    let (status, _) = app.post("/v1/gateways", Some(ROOT), r#"{"id":"kept"}"#).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = app.post("/v1/gateways", Some(ROOT), r#"{"id":"no spaces"}"#).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

/// A gateway file of an earlier release is imported once: what was deleted after the import stays deleted.
#[tokio::test]
async fn a_former_gateways_file_is_imported_once() {
    let dir = tempfile::tempdir().unwrap();
    let saved = json!([{"id": "old", "securityToken": "old-token", "configuration": {"name": "old"}}]);
    std::fs::write(dir.path().join("gateways.json"), saved.to_string()).unwrap();
    let args = || ServeArgs { data_dir: Some(dir.path().to_owned()), ..admin_args() };
    let app = spawn_in(args()).await;
    let (status, old) = app.get("/v1/gateways/old/configuration", Some("old-token")).await;
    assert_eq!((status, old["name"].clone()), (StatusCode::OK, json!("old")));
    assert!(!dir.path().join("gateways.json").exists());
    assert!(dir.path().join("gateways.json.imported").exists());
    assert_eq!(app.call(Method::DELETE, "/v1/gateways/old", Some(ROOT), None).await.0, StatusCode::OK);
    app.stop().await;

    let app = spawn_in(args()).await;
    assert_eq!(app.get("/v1/gateways/old", Some(ROOT)).await.0, StatusCode::NOT_FOUND);
}

/// A file that cannot be read stops the start, and nothing of it is imported.
#[tokio::test]
async fn a_broken_former_gateways_file_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let saved =
        json!([{"id": "good", "configuration": {}}, {"id": "bad", "configuration": {"identityProvider": "ldap"}}]);
    std::fs::write(dir.path().join("gateways.json"), saved.to_string()).unwrap();
    let args = ServeArgs { data_dir: Some(dir.path().to_owned()), ..admin_args() };
    let err = updraft_server::Application::build(args.resolve().unwrap()).await.err().expect("the start fails");
    assert!(format!("{err:#}").contains("ldap") || format!("{err:#}").contains("bad"), "{err:#}");
    assert!(dir.path().join("gateways.json").exists(), "the file stays for the operator to mend");
}

/// With a shared store (`--database-url`), a gateway made, changed or deleted through one node is so on every
/// node: its socket URIs open anywhere, and deleting it closes its sockets on every node.
#[tokio::test]
async fn gateways_made_through_one_node_are_served_by_every_node() {
    use crate::cluster::{BusServer, Engine};
    let bus = BusServer::start(Engine::Redis).await;
    let database = crate::test_database::fresh().await;
    let args = || ServeArgs { bus: Some(bus.url()), database_url: Some(database.url()), ..admin_args() };
    let (a, b, c) = (spawn_app(args()).await, spawn_app(args()).await, spawn_app(args()).await);

    let gateway = create(&a, json!({"id": "shared", "name": "shared"})).await;
    let token = gateway["securityToken"].as_str().unwrap();
    let (status, _) = b.post("/v1/gateways", Some(ROOT), r#"{"id":"shared"}"#).await;
    assert_eq!(status, StatusCode::CONFLICT, "one id in the cluster");
    let config = "/v1/gateways/shared/configuration";
    let name_on = async |node: &TestApp| node.get(config, Some(token)).await.1["name"].clone();
    eventually(|| async { name_on(&b).await == "shared" && name_on(&c).await == "shared" }).await;

    let (status, body) = b.call(Method::PUT, config, Some(token), Some(r#"{"name":"renamed"}"#)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    eventually(|| async { name_on(&a).await == "renamed" && name_on(&c).await == "renamed" }).await;

    let (status, uri) = a.get("/v1/gateways/shared/websocket_uri", None).await;
    assert_eq!(status, StatusCode::OK, "{uri}");
    let (mut ws, _) = tokio_tungstenite::connect_async(uri["uri"].as_str().unwrap()).await.unwrap();
    let (status, _) =
        b.post("/v1/gateways/shared/messages", None, r#"{"data":"hi","receivers":{"sockets":["*"]}}"#).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(next_text(&mut ws).await, "hi");

    assert_eq!(c.call(Method::DELETE, "/v1/gateways/shared", Some(ROOT), None).await.0, StatusCode::OK);
    assert_eq!(close_code(&mut ws).await, 1001, "deleted on another node, the socket closes here");
    // Each node drops it once it hears of the deletion (`a` has: its socket closed).
    for node in [&a, &b, &c] {
        eventually(|| async { node.get("/v1/gateways/shared", Some(ROOT)).await.0 == StatusCode::NOT_FOUND }).await;
    }
    let (status, _) = a.call(Method::DELETE, "/v1/gateways/shared", Some(ROOT), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Polls `check` for up to 5 s.
async fn eventually<F: std::future::Future<Output = bool>>(check: impl Fn() -> F) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "not within 5 s");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
