//! The EDS notification stream as QtEnginio's `EnginioBackendConnection` uses it: its own handshake on plain TCP,
//! checked with its case-sensitive patterns; one text frame per readable change of websocket-enabled types;
//! filters; ping and close echoes; single-use URLs; and resuming from the last `seq` seen.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::eds::{Eds, eds, sign_up};
use crate::helpers::*;

/// The handshake `constructOpeningHandshake` writes, byte for byte.
const QT_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZg==";

/// Opens `expiring_url` as QtEnginio does; answers the socket, or the refusal's status line.
pub(crate) async fn open_as_qt(expiring_url: &str) -> Result<RawSocket, String> {
    let rest = expiring_url.strip_prefix("ws://").unwrap();
    let (host, path_and_query) = rest.split_once('/').unwrap();
    let (path, query) = path_and_query.split_once('?').unwrap();
    let mut stream = TcpStream::connect(host).await.unwrap();
    let request = format!(
        "GET /{path}?{query} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\
         Sec-WebSocket-Key: {QT_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        if stream.read_exact(&mut byte).await.is_err() {
            break;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    if !head.starts_with("HTTP/1.1 101 ") {
        return Err(head.lines().next().unwrap_or_default().to_owned());
    }
    // QtEnginio's checks: `Sec-WebSocket-Accept:\s(.{28})\r\n` compared as is; `Upgrade:\s(.+)\r\n` and
    // `Connection:\s(.+)\r\n` compared lower-cased. The header names are matched case-sensitively.
    let value =
        |name: &str| head.split("\r\n").find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')).map(str::to_owned);
    assert_eq!(value("Sec-WebSocket-Accept:").as_deref(), Some("BACScCJPNqyz+UBoqMH89VmURoA="), "{head}");
    assert_eq!(value("Upgrade:").map(|v| v.to_lowercase()).as_deref(), Some("websocket"), "{head}");
    assert_eq!(value("Connection:").map(|v| v.to_lowercase()).as_deref(), Some("upgrade"), "{head}");
    Ok(RawSocket { stream })
}

pub(crate) async fn stream_url(eds: &Eds, token: Option<&str>, query: &str) -> String {
    let (status, body) = eds.call(Method::GET, &format!("/v1/stream_url?{query}"), token, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["expiringUrl"].as_str().unwrap().to_owned()
}

fn filter(filter: Value) -> String {
    format!("filter={}", urlencode(&filter.to_string()))
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub(crate) async fn next_event(socket: &mut RawSocket) -> Value {
    let (opcode, payload) = socket.next_frame().await.expect("an event");
    assert_eq!(opcode, 0x1, "events are text frames");
    serde_json::from_slice(&payload).unwrap()
}

/// Declares `todos` with notifications on, and `notes` without.
pub(crate) async fn schemas(eds: &Eds) {
    let todos = json!({"name": "todos", "properties": [], "settings": {"websocket": true}}).to_string();
    let (status, body) = eds.schema(Method::POST, "/v1/object_types", Some(&todos), Some(&eds.master_key)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let notes = json!({"name": "notes", "properties": []}).to_string();
    eds.schema(Method::POST, "/v1/object_types", Some(&notes), Some(&eds.master_key)).await;
}

async fn create_traced(eds: &Eds, path: &str, body: &str, request_id: &str) -> Value {
    let res = eds
        .app
        .client
        .post(format!("{}{path}", eds.app.base))
        .header("Enginio-Backend-Id", &eds.backend)
        .header("X-Request-Id", request_id)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json().await.unwrap()
}

#[tokio::test]
async fn qtenginio_opens_the_stream_and_gets_the_changes_it_asked_for() {
    let eds = eds().await;
    schemas(&eds).await;
    let mut everything = open_as_qt(&stream_url(&eds, None, "").await).await.unwrap();
    let updates = stream_url(&eds, None, &filter(json!({"event": "update"}))).await;
    let mut updates = open_as_qt(&updates).await.unwrap();
    let todos_only = stream_url(&eds, None, &filter(json!({"data": {"objectType": "objects.todos"}}))).await;
    let mut todos_only = open_as_qt(&todos_only).await.unwrap();

    create_traced(&eds, "/v1/objects/notes", r#"{"text":"no websocket setting"}"#, "r-0").await;
    let todo = create_traced(&eds, "/v1/objects/todos", r#"{"title":"milk"}"#, "r-1").await;
    let path = format!("/v1/objects/todos/{}", todo["id"].as_str().unwrap());
    eds.call(Method::PUT, &path, None, Some(r#"{"done":true}"#)).await;

    let created = next_event(&mut everything).await;
    assert_eq!(created["event"], "create");
    assert_eq!(created["data"], todo);
    assert_eq!(created["origin"]["apiRequestId"], "r-1");
    assert!(created["seq"].as_i64().unwrap() > 0);
    let updated = next_event(&mut everything).await;
    assert_eq!((updated["event"].as_str(), updated["data"]["done"].as_bool()), (Some("update"), Some(true)));
    assert!(updated["seq"].as_i64() > created["seq"].as_i64());
    assert_eq!(next_event(&mut updates).await["event"], "update", "the create did not match the filter");
    assert_eq!(next_event(&mut todos_only).await["event"], "create");
    assert_eq!(next_event(&mut todos_only).await["event"], "update");
}

#[tokio::test]
async fn pings_and_closes_are_echoed() {
    let eds = eds().await;
    let mut socket = open_as_qt(&stream_url(&eds, None, "").await).await.unwrap();
    socket.send_frame(0x89, b"Ping.", true).await;
    assert_eq!(socket.next_frame().await, Some((0xA, b"Ping.".to_vec())));
    socket.send_frame(0x88, &1001u16.to_be_bytes(), true).await;
    assert_eq!(socket.close_code().await, 1001, "the close carries the client's code");
}

#[tokio::test]
async fn urls_are_single_use_and_streams_carry_only_what_their_user_may_read() {
    let eds = eds().await;
    schemas(&eds).await;
    let (alice, alice_id) = sign_up(&eds, "alice").await;
    let (bob, _) = sign_up(&eds, "bob").await;
    let url = stream_url(&eds, Some(&bob), "").await;
    let mut as_bob = open_as_qt(&url).await.unwrap();
    assert_eq!(open_as_qt(&url).await.err().as_deref(), Some("HTTP/1.1 401 Unauthorized"), "used already");
    let forged = url.replace("token=", "token=00");
    assert_eq!(open_as_qt(&forged).await.err().as_deref(), Some("HTTP/1.1 401 Unauthorized"));
    let mut as_alice = open_as_qt(&stream_url(&eds, Some(&alice), "").await).await.unwrap();

    let private = json!({"title": "alice's", "accessControlList": {
        "read": [{"id": alice_id, "objectType": "users"}], "admin": [{"id": alice_id, "objectType": "users"}]}});
    eds.call(Method::POST, "/v1/objects/todos", Some(&alice), Some(&private.to_string())).await;
    eds.call(Method::POST, "/v1/objects/todos", Some(&alice), Some(r#"{"title":"public"}"#)).await;
    assert_eq!(next_event(&mut as_alice).await["data"]["title"], "alice's");
    assert_eq!(next_event(&mut as_alice).await["data"]["title"], "public");
    assert_eq!(next_event(&mut as_bob).await["data"]["title"], "public", "bob never sees alice's todo");

    let (status, _) = eds.call(Method::GET, "/v1/stream_url?filter=%7Bnot", None, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_stream_resumes_after_the_last_seq_it_saw() {
    let eds = eds().await;
    schemas(&eds).await;
    let mut first = open_as_qt(&stream_url(&eds, None, "").await).await.unwrap();
    eds.call(Method::POST, "/v1/objects/todos", None, Some(r#"{"n":1}"#)).await;
    let seen = next_event(&mut first).await;
    drop(first);
    // Missed while disconnected.
    for n in 2..=4 {
        eds.call(Method::POST, "/v1/objects/todos", None, Some(&json!({"n": n}).to_string())).await;
    }
    let since = format!("since={}", seen["seq"]);
    let mut again = open_as_qt(&stream_url(&eds, None, &since).await).await.unwrap();
    eds.call(Method::POST, "/v1/objects/todos", None, Some(r#"{"n":5}"#)).await;
    let mut got = Vec::new();
    for _ in 2..=5 {
        got.push(next_event(&mut again).await["data"]["n"].as_i64().unwrap());
    }
    assert_eq!(got, [2, 3, 4, 5], "the missed ones in order, then live, none twice");
    assert_silent_raw(&mut again).await;
}

pub(crate) async fn assert_silent_raw(socket: &mut RawSocket) {
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(std::time::Duration::from_millis(300), socket.stream.read(&mut byte)).await;
    assert!(read.is_err(), "no further frame");
}
