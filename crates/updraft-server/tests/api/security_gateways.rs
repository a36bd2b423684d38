//! Security review 2026-12, findings 1, 7, 8, 9 and 21 (SECURITY.md): who may bind a gateway to a
//! backend, who may send to the tags of its change frames, where a gateway may verify tokens and where webhooks
//! may point, and how admin tokens are read.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::http::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use updraft_server::config::ServeArgs;

use crate::eds::{EMAIL, Eds, PASSWORD, eds, eds_with, sign_up};
use crate::helpers::*;

const ROOT: &str = "root-admin-token";

/// `PUT /v1/gateways/<gid>/configuration` with a bearer and extra headers.
pub(crate) async fn configure(
    app: &TestApp,
    gateway: &str,
    token: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> (StatusCode, Value) {
    let mut req = app
        .client
        .put(format!("{}/v1/gateways/{gateway}/configuration", app.base))
        .bearer_auth(token)
        .body(body.to_string());
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let res = req.send().await.unwrap();
    (res.status(), res.json().await.unwrap())
}

/// Binds the default gateway to the app's backend as its owner does: the gateway's token and the master key.
pub(crate) async fn bind_default(eds: &Eds, identity_provider: Value) {
    let body = json!({ "identityProvider": identity_provider });
    let headers = [("Enginio-Backend-MasterKey", eds.master_key.as_str())];
    let (status, res) = configure(&eds.app, "default", ADMIN, &headers, &body).await;
    assert_eq!(status, StatusCode::OK, "{res}");
}

/// A gateway created with the server admin token: its id and security token.
async fn new_gateway(app: &TestApp, body: Value) -> (String, String) {
    let (status, gateway) = app.post("/v1/gateways", Some(ROOT), &body.to_string()).await;
    assert_eq!(status, StatusCode::CREATED, "{gateway}");
    (gateway["id"].as_str().unwrap().to_owned(), gateway["securityToken"].as_str().unwrap().to_owned())
}

/// A loopback HTTP server that counts the requests it gets and vouches for every token as user `captured`.
struct Capture {
    uri: String,
    calls: Arc<AtomicUsize>,
}

impl Capture {
    async fn start() -> Capture {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let app = Router::new().fallback(move |_: HeaderMap| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                axum::Json(json!({"id": "captured", "usergroups": ["g-from-capture"]}))
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Capture { uri: format!("http://{addr}/internal/admin?x=1"), calls }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

/// The review's attack: with only its own gateway's token, the attacker binds the gateway to the victim's backend
/// and listens on the victim's tag. Binding needs proof of owning the backend, and the binding always shows.
#[tokio::test]
async fn finding_1_a_gateway_token_alone_cannot_bind_a_backend() {
    let eds = eds_with(ServeArgs { admin_token: Some(ROOT.into()), ..open_args() }).await;
    let (victim, victim_id) = sign_up(&eds, "victim").await;
    let (gid, attacker) = new_gateway(&eds.app, json!({"name": "attacker"})).await;

    let steal = json!({"identityProvider": {"type": "none", "backendId": eds.backend}});
    let (status, res) = configure(&eds.app, &gid, &attacker, &[], &steal).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{res}");
    let enginio = json!({"identityProvider": {"type": "enginio", "backendId": eds.backend}});
    assert_eq!(configure(&eds.app, &gid, &attacker, &[], &enginio).await.0, StatusCode::FORBIDDEN);
    // Nor with a wrong key, another backend's proof headers, or the default gateway's SECURITY_TOKEN.
    let wrong = [("Enginio-Backend-MasterKey", "wrong"), ("Enginio-Backend-Secret", "wrong")];
    assert_eq!(configure(&eds.app, &gid, &attacker, &wrong, &steal).await.0, StatusCode::FORBIDDEN);
    assert_eq!(configure(&eds.app, "default", ADMIN, &[], &steal).await.0, StatusCode::FORBIDDEN);
    let elsewhere = json!({"identityProvider": {"type": "none", "backendId": "0123456789abcdef01234567"}});
    assert_eq!(configure(&eds.app, &gid, &attacker, &[], &elsewhere).await.0, StatusCode::FORBIDDEN);

    // The attacker's socket on the victim's tag hears nothing of the victim's private object.
    let path = format!("/v1/gateways/{gid}/sockets");
    let tags = json!({"tags": [format!("users.{victim_id}")]}).to_string();
    let (status, socket) = eds.app.post(&path, Some(&attacker), &tags).await;
    assert_eq!(status, StatusCode::CREATED, "{socket}");
    let (mut ws, _) = tokio_tungstenite::connect_async(socket["uri"].as_str().unwrap()).await.unwrap();
    let only_victim = json!({"read": [{"id": victim_id, "objectType": "users"}], "update": [], "delete": [],
                             "admin": [{"id": victim_id, "objectType": "users"}]});
    let diary = json!({"text": "victim private diary entry", "accessControlList": only_victim}).to_string();
    let (status, note) = eds.call(Method::POST, "/v1/objects/notes", Some(&victim), Some(&diary)).await;
    assert_eq!(status, StatusCode::CREATED, "{note}");
    assert_silent(&mut ws, 500).await;
    let (_, config) = eds.app.get(&format!("/v1/gateways/{gid}/configuration"), Some(&attacker)).await;
    assert_eq!(config["identityProvider"], json!({"type": "none"}));

    // The owner binds with the master key or the instance secret, the server admin with its token; the binding
    // shows in every mode.
    let headers = [("Enginio-Backend-MasterKey", eds.master_key.as_str())];
    let (status, config) = configure(&eds.app, &gid, &attacker, &headers, &steal).await;
    assert_eq!(status, StatusCode::OK, "{config}");
    let bound = json!({"type": "none", "backendId": eds.backend, "uri": null});
    assert_eq!(config["identityProvider"], bound);
    let (_, config) = eds.app.get(&format!("/v1/gateways/{gid}/configuration"), Some(&attacker)).await;
    assert_eq!(config["identityProvider"], bound);
    // Sending the configuration back unchanged needs no proof; unbinding neither.
    assert_eq!(configure(&eds.app, &gid, &attacker, &[], &config).await.0, StatusCode::OK);
    let unbind = json!({"identityProvider": {"type": "none", "backendId": null}});
    assert_eq!(configure(&eds.app, &gid, &attacker, &[], &unbind).await.0, StatusCode::OK);
    let headers = [("Enginio-Backend-Secret", eds.secret.as_str())];
    assert_eq!(configure(&eds.app, &gid, &attacker, &headers, &steal).await.0, StatusCode::OK);
    assert_eq!(configure(&eds.app, &gid, &attacker, &[], &unbind).await.0, StatusCode::OK);
    assert_eq!(configure(&eds.app, &gid, ROOT, &[], &steal).await.0, StatusCode::OK);
}

/// A bound gateway's `users.*` / `usergroups.*` tags carry its backend's changes: no user or anonymous sender may
/// address them, so a frame there is the server's (or the security token holder's).
#[tokio::test]
async fn finding_8_change_tags_are_reserved_on_a_bound_gateway() {
    let eds = eds().await;
    let (mal, _) = sign_up(&eds, "mal").await;
    let (victim, victim_id) = sign_up(&eds, "victim").await;
    let forged = |tag: &str| {
        json!({"data": {"object": {"title": "FORGED by mal"}, "meta": {"eventName": "update"}},
               "receivers": {"tags": [tag]}})
        .to_string()
    };
    let user_tag = format!("users.{victim_id}");

    // Unbound, tags are the sender's business, as in the original MWS.
    assert_eq!(eds.app.post("/v1/messages", None, &forged(&user_tag)).await.0, StatusCode::CREATED);

    // Bound, in `none` mode: anonymous senders may not use them; other tags and the security token may.
    bind_default(&eds, json!({"type": "none", "backendId": eds.backend})).await;
    for tag in [user_tag.as_str(), "usergroups.0123456789abcdef01234567"] {
        let (status, res) = eds.app.post("/v1/messages", None, &forged(tag)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{tag}: {res}");
    }
    assert_eq!(eds.app.post("/v1/messages", None, &forged("room")).await.0, StatusCode::CREATED);
    assert_eq!(eds.app.post("/v1/messages", Some(ADMIN), &forged(&user_tag)).await.0, StatusCode::CREATED);

    // In `eds` mode a user's token may not either; the victim's socket gets only the server's frame.
    bind_default(&eds, json!({"type": "enginio", "backendId": eds.backend})).await;
    let (status, body) = eds.app.get("/v1/websocket_uri", Some(&victim)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["tags"].as_array().unwrap().contains(&json!(user_tag)), "{body}");
    let (mut ws, _) = tokio_tungstenite::connect_async(body["uri"].as_str().unwrap()).await.unwrap();
    for _ in 0..200 {
        if eds.app.get("/v1/sockets", Some(ADMIN)).await.1["results"].as_array().is_some_and(|s| !s.is_empty()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let (status, res) = eds.app.post("/v1/messages", Some(&mal), &forged(&user_tag)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{res}");
    assert_eq!(eds.app.post("/v1/messages", Some(&mal), &forged("room")).await.0, StatusCode::CREATED);
    let (status, _) = eds.call(Method::POST, "/v1/objects/todos", Some(&victim), Some(r#"{"title":"real"}"#)).await;
    assert_eq!(status, StatusCode::CREATED);
    let frame: Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
    assert_eq!(frame["object"]["title"], "real");
    assert_silent(&mut ws, 300).await;
}

/// `identityProvider.uri` is checked like a webhook target, a backend bound as local is never verified remotely,
/// and with `EDS_URI` unset (the default) tokens of unknown backends are refused without any request.
#[tokio::test]
async fn finding_9_identity_provider_uris_are_guarded_and_local_backends_stay_local() {
    let capture = Capture::start().await;
    let eds = eds_with(ServeArgs { admin_token: Some(ROOT.into()), ..open_args() }).await;
    let (gid, token) = new_gateway(&eds.app, json!({"name": "g"})).await;

    // The review's reproduction, with the gateway token only: refused, and nothing reaches the capture server.
    let probe = json!({"identityProvider": {"type": "enginio", "backendId": "whatever", "uri": capture.uri}});
    assert_eq!(configure(&eds.app, &gid, &token, &[], &probe).await.0, StatusCode::FORBIDDEN);
    let uri = format!("/v1/gateways/{gid}/websocket_uri");
    assert_eq!(eds.app.get(&uri, Some("anything")).await.0, StatusCode::OK, "still in none mode");
    assert_eq!(capture.calls(), 0);

    // A remote backend, bound by the server admin; its uri must pass the webhook guard, whoever sets it.
    let own = eds.app.addr;
    for bad in [
        "file:///etc/passwd".to_owned(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://[::ffff:169.254.169.254]/".to_owned(),
        format!("http://[::ffff:127.0.0.1]:{}/v1/gateways", own.port()),
        format!("http://{own}/v1/account/apps"),
    ] {
        let body = json!({"identityProvider": {"type": "enginio", "backendId": "remote-1", "uri": bad}});
        let (status, res) = configure(&eds.app, &gid, ROOT, &[], &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {res}");
        assert_eq!(res["errors"][0]["property"], "identityProvider", "{res}");
    }
    let remote = json!({"identityProvider": {"type": "enginio", "backendId": "remote-1", "uri": capture.uri}});
    assert_eq!(configure(&eds.app, &gid, ROOT, &[], &remote).await.0, StatusCode::OK);
    let (status, body) = eds.app.get(&uri, Some("anything")).await;
    assert_eq!((status, body["tags"][0].clone()), (StatusCode::OK, json!("users.captured")), "{body}");
    assert_eq!(capture.calls(), 1);
    // The gateway's own token may not move a remote backend's identity provider at all.
    let file = json!({"identityProvider": {"uri": "file:///etc/passwd"}});
    assert_eq!(configure(&eds.app, &gid, &token, &[], &file).await.0, StatusCode::FORBIDDEN);

    // A backend hosted here: its tokens are checked in-process, the uri given is dropped, and once the app is
    // gone its tokens are refused rather than asked about elsewhere.
    let (user, _) = sign_up(&eds, "user").await;
    let local = json!({"identityProvider": {"type": "enginio", "backendId": eds.backend, "uri": capture.uri}});
    let headers = [("Enginio-Backend-MasterKey", eds.master_key.as_str())];
    let (status, config) = configure(&eds.app, &gid, &token, &headers, &local).await;
    assert_eq!(status, StatusCode::OK, "{config}");
    assert_eq!(config["identityProvider"]["uri"], Value::Null);
    assert_eq!(eds.app.get(&uri, Some(&user)).await.0, StatusCode::OK);
    delete_app(&eds).await;
    assert_eq!(eds.app.get(&uri, Some(&user)).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(capture.calls(), 1, "no request for a backend bound as local");
}

/// With `EDS_URI` unset, the default no longer sends tokens to api.engin.io: an unknown backend is refused (401)
/// at once instead of waiting for a third-party host (503 when it cannot be reached).
#[tokio::test]
async fn finding_9_no_default_identity_provider() {
    let app = spawn_app(ServeArgs { eds_uri: None, ..spec_args() }).await;
    let (status, body) = app.get("/v1/websocket_uri", Some("joe-token")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // The operator's EDS_URI is trusted as it is, loopback included.
    let capture = Capture::start().await;
    let app = spawn_app(ServeArgs { eds_uri: Some(capture.uri.clone()), ..spec_args() }).await;
    let (status, body) = app.get("/v1/websocket_uri", Some("joe-token")).await;
    assert_eq!((status, body["tags"][0].clone()), (StatusCode::OK, json!("users.captured")), "{body}");
    assert_eq!(capture.calls(), 1);
}

async fn delete_app(eds: &Eds) {
    let form = format!("grant_type=password&username={EMAIL}&password={}", PASSWORD.replace(' ', "+"));
    let res = eds
        .app
        .client
        .post(format!("{}/v1/account/auth/oauth2/token", eds.app.base))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    let account = res.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned();
    let (_, apps) = eds.app.get("/v1/account/apps", Some(&account)).await;
    let app = apps["results"].as_array().unwrap()[0]["id"].as_str().unwrap().to_owned();
    let (status, res) = eds.app.call(Method::DELETE, &format!("/v1/account/apps/{app}"), Some(&account), None).await;
    assert_eq!(status, StatusCode::OK, "{res}");
}

/// The review's self-loop: webhooks into this server's own object API through IPv4-mapped IPv6, and a receiver
/// path only containing `/messages`, are refused when saved.
#[tokio::test]
async fn finding_7_webhooks_cannot_loop_into_this_server() {
    let eds = eds().await;
    let port = eds.app.addr.port();
    for url in [
        format!("http://[::ffff:127.0.0.1]:{port}/v1/objects/loop"),
        format!("http://[::ffff:7f00:1]:{port}/v1/account/apps"),
        format!("http://[::127.0.0.1]:{port}/v1/gateways"),
        format!("http://127.0.0.1:{port}/v1/account/apps/messages"),
        "http://[::a9fe:a9fe]/".to_owned(),
        "http://[64:ff9b::a9fe:a9fe]/".to_owned(),
    ] {
        let body = json!({"url": url, "headers": {"Enginio-Backend-Id": eds.backend}}).to_string();
        let res = eds
            .app
            .client
            .post(format!("{}/v1/webhooks", eds.app.base))
            .header("Enginio-Backend-Id", &eds.backend)
            .header("Enginio-Backend-MasterKey", &eds.master_key)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = res.status();
        let err: Value = res.json().await.unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {err}");
        assert_eq!(err["errors"][0]["property"], "url", "{url}: {err}");
    }
}

/// Admin tokens count only as `Authorization: Bearer <token>`, exactly.
#[tokio::test]
async fn finding_21_admin_tokens_only_as_an_exact_bearer() {
    let app = spawn_app(ServeArgs { admin_token: Some(ROOT.into()), ..open_args() }).await;
    let send = |path: &'static str, header: (&'static str, String)| {
        let req = app.client.get(format!("{}{path}", app.base)).header(header.0, header.1);
        async move { req.send().await.unwrap().status() }
    };
    for (path, token) in [("/v1/sockets", ADMIN), ("/v1/gateways", ROOT), ("/v1/gateways/default/configuration", ROOT)]
    {
        assert_eq!(send(path, ("Authorization", format!("Bearer {token}"))).await, StatusCode::OK, "{path}");
        for header in [
            ("Enginio-Backend-Session", token.to_owned()),
            ("Authorization", format!("Bearer {token} extra")),
            ("Authorization", format!("bearer {token}")),
            ("Authorization", format!("Bearer  {token}")),
        ] {
            assert_eq!(send(path, header.clone()).await, StatusCode::UNAUTHORIZED, "{path} {header:?}");
        }
    }
}

/// A gateways file from when `EDS_URI` defaulted to api.engin.io carries that default: it is read as unset, so
/// nothing goes there; a binding saved in `none` mode (formerly not saved at all) survives too.
#[tokio::test]
async fn finding_9_a_saved_former_default_is_not_asked() {
    let dir = tempfile::tempdir().unwrap();
    let saved = json!([
        {"id": "old", "securityToken": "old-token", "configuration": {"name": "old", "identityProvider":
            {"type": "enginio", "backendId": "0123456789abcdef01234567", "uri": "https://api.engin.io/v1/user"}}},
        {"id": "bound", "securityToken": "bound-token", "configuration": {"name": "bound", "identityProvider":
            {"type": "none", "backendId": "0123456789abcdef01234567", "uri": null}}},
    ]);
    std::fs::write(dir.path().join("gateways.json"), saved.to_string()).unwrap();
    let app = spawn_in(ServeArgs { data_dir: Some(dir.path().to_owned()), ..open_args() }).await;
    let (_, config) = app.get("/v1/gateways/old/configuration", Some("old-token")).await;
    assert_eq!(config["identityProvider"]["uri"], Value::Null, "{config}");
    let (status, body) = app.get("/v1/gateways/old/websocket_uri", Some("user-token")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (_, config) = app.get("/v1/gateways/bound/configuration", Some("bound-token")).await;
    assert_eq!(config["identityProvider"]["backendId"], "0123456789abcdef01234567", "{config}");
}

/// Where a remote backend's tokens are verified decides who receives them: moving it is rebinding, which the
/// gateway's own token cannot do.
#[tokio::test]
async fn finding_9_a_gateway_token_cannot_move_a_remote_identity_provider() {
    let app = spawn_app(ServeArgs { admin_token: Some(ROOT.into()), ..open_args() }).await;
    let provider = |host: &str| json!({"identityProvider": {"type": "enginio", "backendId": "remote-backend", "uri": format!("https://{host}/v1/user")}});
    let (gid, token) = new_gateway(&app, provider("192.0.2.10")).await;
    let (status, body) = configure(&app, &gid, &token, &[], &provider("192.0.2.99")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (_, shown) = app.get(&format!("/v1/gateways/{gid}/configuration"), Some(&token)).await;
    assert_eq!(shown["identityProvider"]["uri"], "https://192.0.2.10/v1/user");
    let (status, body) = configure(&app, &gid, &token, &[], &provider("192.0.2.10")).await;
    assert_eq!(status, StatusCode::OK, "the same configuration sent back is no move: {body}");
    let (status, body) = configure(&app, &gid, ROOT, &[], &provider("192.0.2.99")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
