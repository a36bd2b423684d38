//! The HTTP edge under the security review (issue 10): body read deadline and connection cap (finding 12),
//! `/metrics` access (finding 21), title-case header names, request logs, and one error form per service.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use updraft_server::Application;
use updraft_server::config::ServeArgs;

use crate::eds::eds_with;
use crate::helpers::*;

/// Sends `head` (a request without its body), then a byte of body every 200 ms until the server answers.
/// Returns what the server sent (up to its close) and how long it took.
async fn slow_body(addr: SocketAddr, head: &str) -> (String, Duration) {
    let started = Instant::now();
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(head.as_bytes()).await.unwrap();
    let (mut read, mut write) = tcp.into_split();
    let trickle = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if write.write_all(b" ").await.is_err() {
                return;
            }
        }
    });
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(6), read.read_to_end(&mut answer)).await;
    trickle.abort();
    (String::from_utf8_lossy(&answer).into_owned(), started.elapsed())
}

/// The JSON body of a raw HTTP/1.1 answer (the server sends Content-Length, never chunks, for errors).
fn json_body(answer: &str) -> Value {
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    serde_json::from_str(body).unwrap_or(Value::Null)
}

#[tokio::test]
async fn finding_12_a_slow_body_gets_408_within_the_deadline_in_each_services_error_form() {
    let eds = eds_with(ServeArgs { body_timeout_secs: Some(1), ..open_args() }).await;
    let addr = eds.app.addr;

    // MWS: the `{"error":{…}}` form.
    let head = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\nContent-Length: 100000\r\n\r\n"
    );
    let (answer, took) = slow_body(addr, &head).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?} after {took:?}");
    assert!(took < Duration::from_secs(3), "answered after {took:?}");
    assert_eq!(json_body(&answer)["error"]["reason"], "RequestTimeout", "{answer}");

    // EDS: the `{"errors":[…]}` form; and the connection is closed, not kept for the rest of the body.
    let head = format!(
        "POST /v1/auth/oauth2/token HTTP/1.1\r\nHost: x\r\nEnginio-Backend-Id: {}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\n",
        eds.backend
    );
    let (answer, took) = slow_body(addr, &head).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?} after {took:?}");
    assert!(took < Duration::from_secs(3), "answered and closed after {took:?}");
    assert_eq!(json_body(&answer)["errors"][0]["reason"], "RequestTimeout", "{answer}");
}

/// One raw `GET` on a fresh connection; the whole answer, or what came before the server closed.
async fn raw_get(addr: SocketAddr, path: &str, headers: &str) -> String {
    let exchange = async {
        let mut tcp = TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n");
        tcp.write_all(request.as_bytes()).await.ok()?;
        let mut answer = Vec::new();
        let _ = tcp.read_to_end(&mut answer).await;
        Some(String::from_utf8_lossy(&answer).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(3), exchange).await.ok().flatten().unwrap_or_default()
}

#[tokio::test]
async fn finding_12_health_stays_200_at_the_connection_cap_and_the_rest_is_bounded() {
    const CAP: usize = 40;
    let app = spawn_app(ServeArgs { max_connections: Some(CAP), ..open_args() }).await;

    // Two WebSockets count against the cap like any connection.
    let (_, _ws1) = app.connect(&[]).await;
    let (_, _ws2) = app.connect(&[]).await;

    // A few hundred slow-body clients: each sends a request head and then nothing.
    let mut held = Vec::new();
    for _ in 0..300 {
        let mut tcp = TcpStream::connect(app.addr).await.unwrap();
        let head = "POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n";
        let _ = tcp.write_all(head.as_bytes()).await;
        held.push(tcp);
    }

    // The server holds at most the cap (less the sockets) of them; the others are answered 503 or closed.
    let outcomes = futures_util::future::join_all(held.into_iter().map(|mut tcp| async move {
        let mut buf = [0u8; 512];
        let closed = match tokio::time::timeout(Duration::from_secs(3), tcp.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => true,
            Ok(Ok(n)) => {
                let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
                assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
                true
            }
            Err(_) => false,
        };
        (tcp, closed)
    }))
    .await;
    let still_held = outcomes.iter().filter(|(_, closed)| !closed).count();
    // The test's own HTTP client may keep an idle connection or two of the cap.
    assert!((CAP - 2 - 2..=CAP - 2).contains(&still_held), "{still_held} clients held at a cap of {CAP}");
    let held: Vec<_> = outcomes.into_iter().map(|(tcp, _)| tcp).collect();

    // At the cap, health checks still pass, and other requests get a quick 503 in their service's form.
    for _ in 0..20 {
        let answer = raw_get(app.addr, "/healthz", "").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    }
    let answer = raw_get(app.addr, "/v1/objects/todos", "Enginio-Backend-Id: 0123\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    assert_eq!(json_body(&answer)["errors"][0]["reason"], "ServiceUnavailable", "{answer}");
    let answer = raw_get(app.addr, "/v1/sockets", "").await;
    assert_eq!(json_body(&answer)["error"]["reason"], "ServiceUnavailable", "{answer}");

    // Once the held clients leave, the server serves everything again.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let answer = raw_get(app.addr, "/", "").await;
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "still refused: {answer:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // An operator sees the cap and what came past it.
    assert_eq!(app.metric("updraft_connections_max").await, CAP as f64);
    let past = app.metric("updraft_connections_past_cap_total").await;
    assert!(past >= 300.0 - CAP as f64, "{past} connections counted past the cap");
}

#[tokio::test]
async fn responses_name_headers_in_title_case_for_case_sensitive_clients() {
    let app = spawn_app(open_args()).await;
    for (path, headers) in [
        ("/healthz", String::new()),
        ("/", String::new()),
        ("/v1/sockets", format!("Authorization: Bearer {ADMIN}\r\n")),
        ("/v1/no/such/endpoint", String::new()),
    ] {
        let answer = raw_get(app.addr, path, &headers).await;
        let head = answer.split("\r\n\r\n").next().unwrap();
        assert!(head.contains("\r\nContent-Type: application/json"), "{path}: {head}");
        assert!(head.contains("\r\nContent-Length: "), "{path}: {head}");
    }
}

#[tokio::test]
async fn responses_over_tls_name_headers_in_title_case_too() {
    let server = spawn_tls_app(open_args()).await;
    let mut tls = server.connect().await;
    tls.write_all(b"GET /v1/sockets HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), tls.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    let head = answer.split("\r\n\r\n").next().unwrap();
    assert!(head.contains("\r\nContent-Type: application/json"), "{head}");
}

#[tokio::test]
async fn unknown_paths_answer_in_the_error_form_of_their_service() {
    let eds = eds_with(open_args()).await;
    let app = &eds.app;
    // EDS, by path.
    let (status, body) = app.get("/v1/objects/todos/0123/no/such", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["errors"][0]["reason"], "NotFound", "{body}");
    assert!(body["errors"][0]["message"].is_string(), "{body}");
    assert!(body.get("error").is_none(), "{body}");
    // EDS, by its backend header.
    let res = app.client.get(format!("{}/v1/nothing", app.base)).header("Enginio-Backend-Id", &eds.backend);
    let body: Value = res.send().await.unwrap().json().await.unwrap();
    assert_eq!(body["errors"][0]["reason"], "NotFound", "{body}");
    // MWS keeps its form.
    for path in ["/v1/sockets/x/y", "/v1/gateways/default/nothing", "/v1/nothing"] {
        let (status, body) = app.get(path, Some(ADMIN)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["error"]["reason"], "NotFound", "{path}: {body}");
    }
    // A known path with a method it lacks: 405 with a body, in its service's form.
    let res = app.client.patch(format!("{}/v1/objects/todos", app.base)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["errors"][0]["reason"], "MethodNotAllowed", "{body}");
    let res = app.client.delete(format!("{}/v1/messages", app.base)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["reason"], "MethodNotAllowed", "{body}");
}

/// Builds and runs an application outside `spawn_app`, to reach its metrics listener.
async fn start(
    args: ServeArgs,
) -> (SocketAddr, Option<SocketAddr>, tempfile::TempDir, tokio::sync::oneshot::Sender<()>) {
    let dir = tempfile::tempdir().unwrap();
    let args = ServeArgs { data_dir: Some(dir.path().to_owned()), ..args };
    let app = Application::build(args.resolve().unwrap()).await.unwrap();
    let (addr, metrics) = (app.local_addr(), app.metrics_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    (addr, metrics, dir, stop)
}

/// `GET url` with this `Authorization`; the client is made after a server started (it installs the TLS provider).
async fn get(url: String, auth: Option<&str>) -> (StatusCode, String) {
    let mut req = reqwest::Client::new().get(url);
    if let Some(auth) = auth {
        req = req.header("Authorization", auth);
    }
    let res = req.send().await.unwrap();
    (res.status(), res.text().await.unwrap())
}

#[tokio::test]
async fn finding_21_metrics_need_their_token_or_their_own_listener() {
    // No token set: /metrics does not exist on the main listener.
    let plain = ServeArgs { metrics_token: None, ..open_args() };
    let (addr, metrics, _dir, _stop) = start(plain).await;
    assert_eq!(metrics, None);
    assert_eq!(get(format!("http://{addr}/metrics"), None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(get(format!("http://{addr}/metrics"), Some("Bearer x")).await.0, StatusCode::NOT_FOUND);

    // A token opens it, given exactly as `Bearer <token>`.
    let with_token = ServeArgs { metrics_token: Some("scrape-me".into()), ..open_args() };
    let (addr, _, _dir, _stop) = start(with_token).await;
    let url = format!("http://{addr}/metrics");
    assert_eq!(get(url.clone(), None).await.0, StatusCode::UNAUTHORIZED);
    for wrong in ["Bearer nope", "bearer scrape-me", "Bearer scrape-me extra", "Basic scrape-me", ADMIN] {
        assert_eq!(get(url.clone(), Some(wrong)).await.0, StatusCode::UNAUTHORIZED, "{wrong}");
    }
    let (status, text) = get(url, Some("Bearer scrape-me")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("updraft_"), "{text}");

    // Or a listener of its own, with nothing else on it.
    let separate =
        ServeArgs { metrics_token: None, metrics_listen: Some("127.0.0.1:0".parse().unwrap()), ..open_args() };
    let (addr, metrics, _dir, _stop) = start(separate).await;
    let metrics = metrics.expect("a metrics listener");
    assert_ne!(metrics, addr);
    let (status, text) = get(format!("http://{metrics}/metrics"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("updraft_"), "{text}");
    assert_eq!(get(format!("http://{metrics}/healthz"), None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(get(format!("http://{addr}/metrics"), None).await.0, StatusCode::NOT_FOUND);
}

/// Collects what the logs say, for this test's thread (its runtime is single-threaded).
#[derive(Clone, Default)]
pub(crate) struct Captured(pub(crate) Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn requests_are_logged_without_their_query_or_credentials() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = spawn_app(open_args()).await;
    let res = app
        .client
        .get(format!("{}/v1/websocket_uri?token=query-secret", app.base))
        .header("Authorization", format!("Bearer {ADMIN}"))
        .header("Enginio-Backend-Id", "backend-7")
        .header("X-Request-Id", "req-42")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let _ = res.text().await;

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let line = text.lines().find(|l| l.contains("req-42")).unwrap_or_else(|| panic!("no request line in {text}"));
    let entry: Value = serde_json::from_str(line).unwrap();
    assert_eq!(entry["level"], "INFO", "{line}");
    assert_eq!(entry["fields"]["status"], 200, "{line}");
    assert!(entry["fields"]["latency_ms"].is_number(), "{line}");
    assert_eq!(entry["fields"]["method"], "GET", "{line}");
    assert_eq!(entry["fields"]["path"], "/v1/websocket_uri", "{line}");
    assert_eq!(entry["fields"]["backend_id"], "backend-7", "{line}");
    assert_eq!(entry["fields"]["request_id"], "req-42", "{line}");
    assert!(!text.contains("query-secret") && !text.contains(ADMIN), "{text}");
}
