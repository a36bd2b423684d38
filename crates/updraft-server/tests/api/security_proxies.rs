//! `--trusted-proxies`: the client's address and scheme come from `X-Forwarded-For` and `X-Forwarded-Proto` only
//! on connections from the proxies named. A client elsewhere that writes those headers neither escapes the limits
//! per client address nor changes the scheme of the URLs it is handed.

use reqwest::StatusCode;
use serde_json::Value;
use updraft_server::config::ServeArgs;

use crate::helpers::*;
use crate::security_tickets::{client_from, get_with, take_until_refused};

/// The socket URI `client` is handed with `headers`.
async fn socket_uri(client: &reqwest::Client, app: &TestApp, headers: &[(&str, &str)]) -> String {
    let response = get_with(client, &format!("{}/v1/websocket_uri", app.base), headers).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json::<Value>().await.unwrap()["uri"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_trusted_proxy_names_the_client_and_its_scheme_and_no_one_else_does() {
    // 512 pending URIs in all: 16 per client address. 127.0.0.1 is the proxy; 127.0.0.2 is a client.
    let args = ServeArgs { max_pending_sockets: Some(512), trusted_proxies: Some("127.0.0.1".into()), ..open_args() };
    let app = spawn_app(args).await;
    let (proxy, client) = (client_from(1), client_from(2));
    let url = format!("{}/v1/websocket_uri", app.base);

    let https = [("x-forwarded-proto", "https"), ("x-forwarded-for", "203.0.113.9")];
    assert!(socket_uri(&proxy, &app, &https).await.starts_with("wss://"), "the proxy ended TLS");
    assert!(socket_uri(&client, &app, &https).await.starts_with("ws://"), "a client's own header is ignored");

    // Through the proxy, each client has its own share.
    let first = take_until_refused(&proxy, &url, &[("x-forwarded-for", "203.0.113.1")], 64).await;
    assert_eq!(first, 16);
    let second = take_until_refused(&proxy, &url, &[("x-forwarded-for", "198.51.100.7, 203.0.113.2")], 64).await;
    assert_eq!(second, 16, "the address the proxy appended, not what the client wrote before it");
    let spoofed = [("x-forwarded-for", "203.0.113.3, 203.0.113.1")];
    assert_eq!(take_until_refused(&proxy, &url, &spoofed, 64).await, 0, "203.0.113.1 is out of its share");

    // A client that is not a proxy counts as itself, whatever it writes.
    let own = take_until_refused(&client, &url, &[("x-forwarded-for", "203.0.113.4")], 64).await;
    assert_eq!(own, 15, "one URI above already counted against 127.0.0.2");
    assert_eq!(take_until_refused(&client, &url, &[("x-forwarded-for", "203.0.113.5")], 64).await, 0);
}

#[tokio::test]
async fn without_trusted_proxies_forwarding_headers_change_nothing() {
    let app = spawn_app(ServeArgs { max_pending_sockets: Some(512), ..open_args() }).await;
    let client = client_from(1);
    let https = [("x-forwarded-proto", "https"), ("x-forwarded-for", "203.0.113.9")];
    assert!(socket_uri(&client, &app, &https).await.starts_with("ws://"));
    let url = format!("{}/v1/websocket_uri", app.base);
    assert_eq!(take_until_refused(&client, &url, &[("x-forwarded-for", "203.0.113.1")], 64).await, 15);
    assert_eq!(take_until_refused(&client, &url, &[("x-forwarded-for", "203.0.113.2")], 64).await, 0);
}
