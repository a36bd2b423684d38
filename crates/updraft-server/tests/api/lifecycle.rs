//! A socket's life: pings, ignored client data, slow readers, shutdown, metrics.

use std::time::{Duration, Instant};

use futures_util::SinkExt;
use reqwest::StatusCode;
use tokio_tungstenite::tungstenite::Message;
use updraft_server::config::ServeArgs;

use crate::helpers::*;

#[tokio::test]
async fn the_server_pings_and_drops_a_peer_that_stops_answering() {
    let app = spawn_app(ServeArgs { ping_interval_secs: Some(1), ..open_args() }).await;
    let (id, uri) = app.socket_uri(&[]).await;
    let mut raw = RawSocket::open(&uri).await;
    // The first ping comes within one interval; it is not answered.
    let (opcode, _) = raw.next_frame().await.expect("a ping");
    assert_eq!(opcode, 0x9);
    let started = Instant::now();
    // Unanswered, the connection is dropped at the next ping time.
    loop {
        match raw.next_frame().await {
            None => break,
            Some((0x9, _)) => panic!("pinged again instead of dropping"),
            Some(_) => (),
        }
    }
    assert!(started.elapsed() < Duration::from_millis(2500), "{:?}", started.elapsed());
    let (status, _) = app.get(&format!("/v1/sockets/{id}"), Some(ADMIN)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_peer_that_answers_pings_stays_connected() {
    let app = spawn_app(ServeArgs { ping_interval_secs: Some(1), ..open_args() }).await;
    let (id, mut ws) = app.connect(&[]).await;
    // tungstenite answers pings while it is being read.
    assert_silent(&mut ws, 3200).await;
    app.send("still here", &[&id], &[]).await;
    assert_eq!(next_text(&mut ws).await, "still here");
}

#[tokio::test]
async fn client_data_frames_are_ignored_and_pings_answered() {
    let app = spawn_app(open_args()).await;
    let (id, mut ws) = app.connect(&[]).await;
    ws.send(Message::text("hello server")).await.unwrap();
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    ws.send(Message::Ping(b"p".to_vec().into())).await.unwrap();
    use futures_util::StreamExt;
    let pong = tokio::time::timeout(Duration::from_secs(2), ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(pong, Message::Pong(b"p".to_vec().into()));
    app.send("push", &[&id], &[]).await;
    assert_eq!(next_text(&mut ws).await, "push");
}

#[tokio::test]
async fn a_slow_reader_is_dropped_without_slowing_the_others() {
    let args = ServeArgs { socket_queue_bytes: Some(256 * 1024), socket_queue_frames: Some(64), ..open_args() };
    let app = spawn_app(args).await;
    let (slow_id, slow_uri) = app.socket_uri(&["all"]).await;
    // Never reads: its kernel buffers fill, then its outbox.
    let _slow = RawSocket::open(&slow_uri).await;
    app.wait_connected(&slow_id).await;
    let (_, mut fast) = app.connect(&["all"]).await;
    let dropped_before = app.metric("updraft_mws_sockets_dropped_slow_total").await;

    let data = "x".repeat(32 * 1024);
    let reader = tokio::spawn(async move {
        for _ in 0..200 {
            assert_eq!(next_text(&mut fast).await.len(), 32 * 1024);
        }
        fast
    });
    for _ in 0..200 {
        app.send(&data, &[], &["all"]).await;
    }
    let _fast = tokio::time::timeout(Duration::from_secs(10), reader).await.expect("fast reader got all").unwrap();
    let mut gone = false;
    for _ in 0..200 {
        if app.get(&format!("/v1/sockets/{slow_id}"), Some(ADMIN)).await.0 == StatusCode::NOT_FOUND {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(gone, "the slow socket is still registered");
    assert!(app.metric("updraft_mws_sockets_dropped_slow_total").await > dropped_before);
}

#[tokio::test]
async fn shutdown_closes_sockets_with_1001() {
    let app = spawn_app(open_args()).await;
    let (_, mut ws) = app.connect(&[]).await;
    let closing = tokio::spawn(async move { close_code(&mut ws).await });
    app.stop().await;
    assert_eq!(closing.await.unwrap(), 1001);
}

#[tokio::test]
async fn metrics_count_sockets_messages_and_deliveries() {
    let app = spawn_app(open_args()).await;
    let delivered = app.metric("updraft_mws_frames_delivered_total").await;
    let published = app.metric("updraft_mws_messages_published_total").await;
    let (_, mut a) = app.connect(&[]).await;
    let (_, mut b) = app.connect(&[]).await;
    assert!(app.metric("updraft_mws_sockets_connected").await >= 2.0);
    app.send("m", &["*"], &[]).await;
    next_text(&mut a).await;
    next_text(&mut b).await;
    // Other tests in this process share the recorder, so counts only ever grow by at least ours.
    assert!(app.metric("updraft_mws_frames_delivered_total").await >= delivered + 2.0);
    assert!(app.metric("updraft_mws_messages_published_total").await >= published + 1.0);
    let (status, body) = app.get("/healthz", None).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("ok")));
}
