//! Finding 11: pending socket URIs and stream URLs are bounded per gateway or backend and per client address,
//! so that one tenant (or a flood against it) cannot get another tenant a 503, and the server stays healthy.

use std::net::{IpAddr, Ipv4Addr};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use updraft_server::config::ServeArgs;

use crate::eds::eds;
use crate::helpers::*;

const ROOT: &str = "root-admin";

/// A client whose requests come from `127.0.0.<last>` (all of 127/8 is loopback on Linux).
pub(crate) fn client_from(last: u8) -> reqwest::Client {
    let addr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, last));
    reqwest::Client::builder().local_address(addr).build().unwrap()
}

async fn status_of(req: reqwest::RequestBuilder) -> StatusCode {
    req.send().await.unwrap().status()
}

/// A GET of `url` by `client` with `headers`.
pub(crate) fn get_with(client: &reqwest::Client, url: &str, headers: &[(&str, &str)]) -> reqwest::RequestBuilder {
    headers.iter().fold(client.get(url), |req, (name, value)| req.header(*name, *value))
}

/// Asks `url` for tickets until refused (503); answers how many were handed out.
pub(crate) async fn take_until_refused(
    client: &reqwest::Client,
    url: &str,
    headers: &[(&str, &str)],
    max: usize,
) -> usize {
    for n in 0..max {
        let res = get_with(client, url, headers).send().await.unwrap();
        match res.status() {
            StatusCode::OK => continue,
            StatusCode::SERVICE_UNAVAILABLE => return n,
            other => panic!("unexpected {other}: {}", res.text().await.unwrap()),
        }
    }
    max
}

#[tokio::test]
async fn finding_11_one_gateways_flood_of_socket_uris_refuses_no_one_else() {
    // 512 in all: 64 per gateway (public), 16 per client address.
    let args = ServeArgs { max_pending_sockets: Some(512), admin_token: Some(ROOT.into()), ..open_args() };
    let app = spawn_app(args).await;
    let (status, other) = app.post("/v1/gateways", Some(ROOT), &json!({"name": "b"}).to_string()).await;
    assert_eq!(status, StatusCode::CREATED, "{other}");
    let other_uri = format!("{}/v1/gateways/{}/websocket_uri", app.base, other["id"].as_str().unwrap());
    let default_uri = format!("{}/v1/websocket_uri", app.base);

    // One address gets its share, not the gateway's; the next address still gets URIs.
    assert_eq!(take_until_refused(&client_from(2), &default_uri, &[], 1000).await, 16);
    for last in 3..=5 {
        assert_eq!(take_until_refused(&client_from(last), &default_uri, &[], 1000).await, 16);
    }
    // The default gateway's public share is used up, by four addresses.
    let newcomer = client_from(6);
    let res = newcomer.get(&default_uri).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["reason"], "ServiceUnavailable");

    // Another gateway's clients, and the flooded gateway's own server, are not refused.
    assert_eq!(status_of(newcomer.get(&other_uri)).await, StatusCode::OK);
    let (status, body) = app.post("/v1/sockets", Some(ADMIN), r#"{"tags":["t"]}"#).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(app.get("/healthz", None).await.0, StatusCode::OK);
}

#[tokio::test]
async fn finding_11_one_backends_flood_of_stream_urls_refuses_no_one_else() {
    let eds = eds().await;
    let (_, apps) = eds.app.get("/v1/account/apps", Some(&eds.account)).await;
    let environments = apps["results"][0]["environments"].as_array().unwrap();
    let other = environments.iter().find(|e| e["id"] != eds.backend.as_str()).unwrap()["id"].as_str().unwrap();
    let url = format!("{}/v1/stream_url", eds.app.base);
    let flooded = [("Enginio-Backend-Id", eds.backend.as_str())];

    // 100,000 in all: 12,500 per backend (public), 3,125 per client address. Four addresses fill the backend.
    let floods: Vec<_> = (2..=5u8)
        .map(|last| {
            let url = url.clone();
            let backend = eds.backend.clone();
            tokio::spawn(async move {
                let headers = [("Enginio-Backend-Id", backend.as_str())];
                take_until_refused(&client_from(last), &url, &headers, 20_000).await
            })
        })
        .collect();
    for flood in floods {
        assert_eq!(flood.await.unwrap(), 3_125, "one address gets its share");
    }
    let newcomer = client_from(6);
    assert_eq!(take_until_refused(&newcomer, &url, &flooded, 1).await, 0, "the backend's public share is used");

    // Another backend's clients, and the flooded backend's own server, are not refused.
    assert_eq!(status_of(newcomer.get(&url).header("Enginio-Backend-Id", other)).await, StatusCode::OK);
    let (status, body) = eds.call(Method::GET, "/v1/stream_url", Some(&eds.secret), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// A bounded flood of socket URIs and stream URLs from several addresses, at and past every cap: health checks
/// keep answering 200 throughout.
#[tokio::test]
async fn finding_11_health_stays_green_under_a_flood_of_tickets() {
    let eds = crate::eds::eds_with(ServeArgs { max_pending_sockets: Some(2048), ..open_args() }).await;
    let base = eds.app.base.clone();
    let floods: Vec<_> = (2..=5u8)
        .map(|last| {
            let (base, backend) = (base.clone(), eds.backend.clone());
            tokio::spawn(async move {
                let client = client_from(last);
                for _ in 0..1_000 {
                    let sockets = client.get(format!("{base}/v1/websocket_uri")).send().await.unwrap();
                    assert!(matches!(sockets.status(), StatusCode::OK | StatusCode::SERVICE_UNAVAILABLE));
                    let streams =
                        client.get(format!("{base}/v1/stream_url")).header("Enginio-Backend-Id", &backend).send();
                    assert_eq!(streams.await.unwrap().status(), StatusCode::OK);
                }
            })
        })
        .collect();
    let health = client_from(9);
    while !floods.iter().all(|f| f.is_finished()) {
        assert_eq!(status_of(health.get(format!("{base}/healthz"))).await, StatusCode::OK);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for flood in floods {
        flood.await.unwrap();
    }
    assert_eq!(status_of(health.get(format!("{base}/healthz"))).await, StatusCode::OK);
}
