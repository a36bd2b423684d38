//! Webhooks: managed per backend, delivered signed and in order to a real receiver on loopback, retried,
//! dead-lettered, redelivered, kept apart from each other, and refused where they could reach what they must not.

use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use updraft_server::config::ServeArgs;

use crate::eds::{Eds, assert_eds_error, eds, eds_with, sign_up};
use crate::helpers::*;

/// A webhook receiver: records what it gets, answers `status` after `delay_ms`.
#[derive(Clone)]
pub(crate) struct Receiver {
    pub(crate) url: String,
    pub(crate) received: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
    pub(crate) status: Arc<AtomicU16>,
    delay_ms: Arc<AtomicU64>,
}

impl Receiver {
    pub(crate) async fn start() -> Receiver {
        Receiver::start_on(0).await
    }

    pub(crate) async fn start_on(port: u16) -> Receiver {
        let receiver = Receiver {
            url: String::new(),
            received: Arc::default(),
            status: Arc::new(AtomicU16::new(200)),
            delay_ms: Arc::new(AtomicU64::new(0)),
        };
        let state = receiver.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let state = state.clone();
                async move {
                    let delay = state.delay_ms.load(Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    let status = state.status.load(Ordering::SeqCst);
                    if status == 200 {
                        state.received.lock().unwrap().push((headers, serde_json::from_str(&body).unwrap()));
                    }
                    axum::http::StatusCode::from_u16(status).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, ..receiver }
    }

    /// Waits until `n` deliveries have arrived; answers them.
    pub(crate) async fn wait_for(&self, n: usize, within: Duration) -> Vec<(HeaderMap, Value)> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.received.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            assert!(Instant::now() < deadline, "{} of {n} deliveries arrived: {got:?}", got.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Eds {
    /// A call with the backend's master key.
    async fn admin(&self, method: Method, path: &str, body: Option<&Value>) -> (StatusCode, Value) {
        let mut req = self
            .app
            .client
            .request(method, format!("{}{path}", self.app.base))
            .header("Enginio-Backend-Id", &self.backend)
            .header("Enginio-Backend-MasterKey", &self.master_key);
        if let Some(body) = body {
            req = req.body(body.to_string());
        }
        let res = req.send().await.unwrap();
        (res.status(), res.json().await.unwrap())
    }

    async fn create_webhook(&self, body: Value) -> Value {
        let (status, webhook) = self.admin(Method::POST, "/v1/webhooks", Some(&body)).await;
        assert_eq!(status, StatusCode::CREATED, "{webhook}");
        webhook
    }

    async fn deliveries(&self, webhook: &Value) -> Vec<Value> {
        let path = format!("/v1/webhooks/{}/deliveries", webhook["id"].as_str().unwrap());
        let (status, body) = self.admin(Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["results"].as_array().unwrap().clone()
    }

    /// Creates an object with `X-Request-Id`.
    async fn create_traced(&self, path: &str, body: &Value, request_id: &str) -> Value {
        let res = self
            .app
            .client
            .post(format!("{}{path}", self.app.base))
            .header("Enginio-Backend-Id", &self.backend)
            .header("X-Request-Id", request_id)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        res.json().await.unwrap()
    }
}

/// Verifies `X-Updraft-Signature` independently of the server's code, with ring's HMAC.
fn signed_by(headers: &HeaderMap, body: &Value, secret: &str) -> bool {
    let timestamp = headers["x-updraft-timestamp"].to_str().unwrap();
    let signature = headers["x-updraft-signature"].to_str().unwrap().strip_prefix("sha256=").unwrap();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    // The body as sent: receivers get compact JSON, which `Value`'s `to_string` reproduces key for key.
    let message = format!("{timestamp}.{body}");
    ring::hmac::verify(&key, message.as_bytes(), &hex_decode(signature)).is_ok()
}

fn hex_decode(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

#[tokio::test]
async fn webhooks_are_managed_by_the_backends_admins_only() {
    let eds = eds().await;
    let receiver = Receiver::start().await;
    let body = json!({"url": receiver.url, "objectTypes": ["todos"], "events": ["create", "update"],
                      "headers": {"Authorization": "Bearer supersecret"}});
    let webhook = eds.create_webhook(body.clone()).await;
    assert_eq!(webhook["url"], receiver.url.as_str());
    assert_eq!(webhook["objectTypes"], json!(["objects.todos"]));
    assert_eq!(webhook["events"], json!(["create", "update"]));
    assert_eq!(webhook["headers"]["Authorization"], "Bearer supersecret");
    assert_eq!(webhook["secret"].as_str().unwrap().len(), 64);
    let path = format!("/v1/webhooks/{}", webhook["id"].as_str().unwrap());

    // Users and anonymous callers can neither see nor change webhooks.
    let (alice, _) = sign_up(&eds, "alice").await;
    let (status, err) = eds.call(Method::GET, "/v1/webhooks", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eds_error(&err, "Unauthorized");
    assert_eq!(eds.call(Method::GET, "/v1/webhooks", Some(&alice), None).await.0, StatusCode::FORBIDDEN);
    assert_eq!(eds.call(Method::DELETE, &path, Some(&alice), None).await.0, StatusCode::FORBIDDEN);
    // The instance secret may, as may the master key.
    let (status, list) = eds.call(Method::GET, "/v1/webhooks", Some(&eds.secret), None).await;
    assert_eq!((status, list["results"].as_array().unwrap().len()), (StatusCode::OK, 1));

    let changed = json!({"url": receiver.url, "events": ["delete"]});
    let (status, updated) = eds.admin(Method::PUT, &path, Some(&changed)).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!((updated["events"].clone(), updated["objectTypes"].clone()), (json!(["delete"]), json!([])));
    assert_eq!(updated["secret"], webhook["secret"], "the secret survives updates");
    assert_eq!(eds.admin(Method::GET, &path, None).await.1, updated);
    assert_eq!(eds.admin(Method::DELETE, &path, None).await.0, StatusCode::OK);
    assert_eq!(eds.admin(Method::GET, &path, None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(eds.admin(Method::DELETE, &path, None).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_webhooks_are_refused_and_nothing_is_saved() {
    let eds = eds().await;
    let own = eds.app.base.clone();
    let cases = [
        (json!({"objectTypes": ["todos"]}), "url"),
        (json!({"url": "ftp://example.org/hook"}), "url"),
        (json!({"url": "http://169.254.169.254/latest/meta-data/"}), "url"),
        (json!({"url": "http://[fd00:ec2::254]/"}), "url"),
        (json!({"url": format!("{own}/v1/account/apps")}), "url"),
        (json!({"url": format!("{own}/v1/webhooks")}), "url"),
        (json!({"url": "http://127.0.0.1:9/hook", "events": ["created"]}), "events"),
        (json!({"url": "http://127.0.0.1:9/hook", "objectTypes": ["no-such type"]}), "objectTypes"),
        (json!({"url": "http://127.0.0.1:9/hook", "objectTypes": "todos"}), "objectTypes"),
        (json!({"url": "http://127.0.0.1:9/hook", "headers": {"X-Updraft-Signature": "forged"}}), "headers"),
        (json!({"url": "http://127.0.0.1:9/hook", "headers": {"Content-Type": "text/plain"}}), "headers"),
        (json!({"url": "http://127.0.0.1:9/hook", "headers": {"bad name": "x"}}), "headers"),
        (json!({"url": "http://127.0.0.1:9/hook", "headers": {"X-Token": 5}}), "headers"),
    ];
    for (body, property) in cases {
        let (status, err) = eds.admin(Method::POST, "/v1/webhooks", Some(&body)).await;
        assert!(status.is_client_error(), "{body}: {status}");
        assert_eq!(err["errors"][0]["property"], property, "{body}: {err}");
    }
    let (status, _) = eds.admin(Method::POST, "/v1/webhooks", None).await;
    assert!(status.is_client_error());
    assert_eq!(eds.admin(Method::GET, "/v1/webhooks", None).await.1["results"], json!([]));
    // This server's own MWS receiver is a fine target: it is made for EDS webhooks.
    eds.create_webhook(json!({"url": format!("{own}/v1/webhook_receivers/enginio")})).await;
}

#[tokio::test]
async fn changes_are_posted_signed_in_order_with_their_request_ids() {
    let eds = eds().await;
    let receiver = Receiver::start().await;
    let webhook = eds.create_webhook(json!({"url": receiver.url, "objectTypes": ["todos"]})).await;
    let secret = webhook["secret"].as_str().unwrap();

    let todo = eds.create_traced("/v1/objects/todos", &json!({"title": "milk"}), "req-1").await;
    eds.create_traced("/v1/objects/notes", &json!({"text": "not a todo"}), "req-x").await;
    let path = format!("/v1/objects/todos/{}", todo["id"].as_str().unwrap());
    for n in 0..5 {
        eds.call(Method::PUT, &path, None, Some(&json!({"n": n}).to_string())).await;
    }
    eds.call(Method::DELETE, &path, None, None).await;

    let got = receiver.wait_for(7, Duration::from_secs(10)).await;
    let events: Vec<&str> =
        got.iter().map(|(_, body)| body["payload"]["meta"]["eventName"].as_str().unwrap()).collect();
    assert_eq!(events, ["create", "update", "update", "update", "update", "update", "delete"]);
    let ns: Vec<Value> = got[1..6].iter().map(|(_, body)| body["payload"]["object"]["n"].clone()).collect();
    assert_eq!(ns, [json!(0), json!(1), json!(2), json!(3), json!(4)], "updates of one object arrive in order");
    let (headers, first) = &got[0];
    assert_eq!(
        first,
        &json!({"payload": {"object": todo, "meta": {"backendId": eds.backend, "eventName": "create",
                                                       "requestId": "req-1", "userId": null}},
                "receivers": [{"id": "*", "objectType": "aclSubject"}]})
    );
    for (headers, body) in &got {
        assert!(signed_by(headers, body, secret), "{headers:?}");
        assert!(!signed_by(headers, body, "another secret"));
        assert_eq!(headers["idempotency-key"], headers["x-updraft-event-id"]);
    }
    let keys: std::collections::HashSet<_> = got.iter().map(|(h, _)| h["idempotency-key"].clone()).collect();
    assert_eq!(keys.len(), 7, "one idempotency key per event");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["x-updraft-event"], "create");

    // Every delivery is listed as delivered, once.
    let deliveries = eds.deliveries(&webhook).await;
    assert_eq!(deliveries.len(), 7);
    for delivery in &deliveries {
        assert_eq!((delivery["status"].as_str(), delivery["attempts"].as_u64()), (Some("delivered"), Some(1)));
        assert_eq!(delivery["lastStatus"], 200);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received.lock().unwrap().len(), 7, "nothing is delivered twice");
}

#[tokio::test]
async fn private_objects_name_their_readers() {
    let eds = eds().await;
    let receiver = Receiver::start().await;
    eds.create_webhook(json!({"url": receiver.url, "events": ["update"]})).await;
    let (alice, alice_id) = sign_up(&eds, "alice").await;
    let (_, note) = eds.call(Method::POST, "/v1/objects/notes", Some(&alice), Some(r#"{"text":"mine"}"#)).await;
    let path = format!("/v1/objects/notes/{}", note["id"].as_str().unwrap());
    let private = json!({"read": [], "update": [], "delete": [], "admin": [{"id": alice_id, "objectType": "users"}]});
    eds.call(Method::POST, &format!("{path}/access"), Some(&alice), Some(&private.to_string())).await;
    eds.call(Method::PUT, &path, Some(&alice), Some(r#"{"text":"secret"}"#)).await;
    let got = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1, "only updates were asked for");
    assert_eq!(got[0].1["receivers"], json!([{"id": alice_id, "objectType": "users"}]));
    assert_eq!(got[0].1["payload"]["meta"]["userId"], alice_id.as_str());
}

fn retrying() -> ServeArgs {
    ServeArgs {
        webhook_retry_base_ms: Some(50),
        webhook_retry_for_secs: Some(1),
        webhook_timeout_secs: Some(1),
        ..open_args()
    }
}

#[tokio::test]
async fn failing_receivers_are_retried_then_dead_lettered_and_can_be_redelivered() {
    let eds = eds_with(retrying()).await;
    let receiver = Receiver::start().await;
    receiver.status.store(500, Ordering::SeqCst);
    let webhook = eds.create_webhook(json!({"url": receiver.url})).await;
    eds.call(Method::POST, "/v1/objects/todos", None, Some(r#"{"title":"milk"}"#)).await;

    let deadline = Instant::now() + Duration::from_secs(10);
    let dead = loop {
        let deliveries = eds.deliveries(&webhook).await;
        if deliveries.first().is_some_and(|d| d["status"] == "dead") {
            break deliveries[0].clone();
        }
        assert!(Instant::now() < deadline, "never dead-lettered: {deliveries:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(dead["attempts"].as_u64().unwrap() >= 3, "retried with backoff first: {dead}");
    assert_eq!(dead["lastStatus"], 500);
    assert!(dead["lastError"].as_str().unwrap().contains("500"), "{dead}");
    assert!(receiver.received.lock().unwrap().is_empty());

    // The receiver is fixed; the dead letter is redelivered on request.
    receiver.status.store(200, Ordering::SeqCst);
    let path = format!(
        "/v1/webhooks/{}/deliveries/{}/redeliver",
        webhook["id"].as_str().unwrap(),
        dead["id"].as_str().unwrap()
    );
    let (status, again) = eds.admin(Method::POST, &path, None).await;
    assert_eq!((status, again["status"].as_str()), (StatusCode::OK, Some("pending")), "{again}");
    let got = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].1["payload"]["object"]["title"], "milk");
    let wrong = format!("/v1/webhooks/{}/deliveries/999999/redeliver", webhook["id"].as_str().unwrap());
    assert_eq!(eds.admin(Method::POST, &wrong, None).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_hanging_receiver_holds_up_only_its_own_webhook() {
    let eds = eds_with(retrying()).await;
    let (hanging, fast) = (Receiver::start().await, Receiver::start().await);
    hanging.delay_ms.store(60_000, Ordering::SeqCst);
    eds.create_webhook(json!({"url": hanging.url})).await;
    eds.create_webhook(json!({"url": fast.url})).await;
    // And one whose receiver is down.
    eds.create_webhook(json!({"url": "http://127.0.0.1:9/hook"})).await;

    let started = Instant::now();
    for n in 0..40 {
        let (status, _) = eds.call(Method::POST, "/v1/objects/todos", None, Some(&json!({"n": n}).to_string())).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let got = fast.wait_for(40, Duration::from_secs(5)).await;
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    let mut ns: Vec<i64> = got.iter().map(|(_, body)| body["payload"]["object"]["n"].as_i64().unwrap()).collect();
    ns.sort();
    assert_eq!(ns, (0..40).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_webhook_into_this_servers_enginio_receiver_reaches_sockets() {
    let eds = eds().await;
    let own = format!("{}/v1/webhook_receivers/enginio", eds.app.base);
    eds.create_webhook(json!({"url": own, "headers": {"Authorization": format!("Bearer {ADMIN}")}})).await;
    let (_, mut ws) = eds.app.connect(&[]).await;
    eds.call(Method::POST, "/v1/objects/todos", None, Some(r#"{"title":"via webhook"}"#)).await;
    let frame: Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
    assert_eq!(frame["object"]["title"], "via webhook");
    assert_eq!(frame["meta"]["eventName"], "create");
}
