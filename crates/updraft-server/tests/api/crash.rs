//! Killing the real binary (SIGKILL) while writes are in flight loses none that were acknowledged.
//! (A power cut is not testable here; `synchronous = FULL` is what covers it.)

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{BINARY_EMAIL, BINARY_PASSWORD, free_port, start_binary};

async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_kill() {
    // reqwest's TLS needs a provider even for plain HTTP; in-process tests get it from `Application`.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = start_binary(dir.path(), port, &[]).await;
    let client = reqwest::Client::new();
    let login = format!("grant_type=password&username={BINARY_EMAIL}&password={BINARY_PASSWORD}");
    let token = json_of(client.post(format!("{base}/v1/account/auth/oauth2/token")).body(login)).await;
    let access = token["access_token"].as_str().unwrap();
    let app =
        json_of(client.post(format!("{base}/v1/account/apps")).bearer_auth(access).body(r#"{"name":"crash"}"#)).await;
    let backend = app["environments"][0]["id"].as_str().unwrap().to_owned();

    // Writers keep creating objects; each records the ids the server acknowledged.
    let acknowledged = Arc::new(Mutex::new(HashSet::new()));
    let writers: Vec<_> = (0..16)
        .map(|writer| {
            let (client, base, backend, acknowledged) =
                (client.clone(), base.clone(), backend.clone(), acknowledged.clone());
            tokio::spawn(async move {
                for n in 0.. {
                    let body = json!({"writer": writer, "n": n}).to_string();
                    let sent = client
                        .post(format!("{base}/v1/objects/notes"))
                        .header("Enginio-Backend-Id", &backend)
                        .body(body)
                        .send()
                        .await;
                    let Ok(res) = sent else { return };
                    if res.status() != StatusCode::CREATED {
                        return;
                    }
                    let Ok(doc) = res.json::<Value>().await else { return };
                    acknowledged.lock().unwrap().insert(doc["id"].as_str().unwrap().to_owned());
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    server.start_kill().unwrap();
    server.wait().await.unwrap();
    for writer in writers {
        writer.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() > 100, "the writers got going: {}", acknowledged.len());

    let _server = start_binary(dir.path(), port, &[]).await;
    let mut stored = HashSet::new();
    for offset in (0..).step_by(1000) {
        let url = format!("{base}/v1/objects/notes?limit=1000&offset={offset}");
        let page = json_of(client.get(url).header("Enginio-Backend-Id", &backend)).await;
        let results = page["results"].as_array().unwrap();
        stored.extend(results.iter().map(|doc| doc["id"].as_str().unwrap().to_owned()));
        if results.len() < 1000 {
            break;
        }
    }
    let lost: Vec<_> = acknowledged.difference(&stored).collect();
    assert!(lost.is_empty(), "{} of {} acknowledged writes lost: {lost:?}", lost.len(), acknowledged.len());
}

/// An app made through the account API of the binary at `base`, with a webhook to `receiver_port` on its
/// development backend; answers that backend.
async fn app_with_webhook(client: &reqwest::Client, base: &str, receiver_port: u16) -> String {
    let login = format!("grant_type=password&username={BINARY_EMAIL}&password={BINARY_PASSWORD}");
    let token = json_of(client.post(format!("{base}/v1/account/auth/oauth2/token")).body(login)).await;
    let access = token["access_token"].as_str().unwrap();
    let app =
        json_of(client.post(format!("{base}/v1/account/apps")).bearer_auth(access).body(r#"{"name":"hooks"}"#)).await;
    let (backend, key) = (&app["environments"][0]["id"], &app["environments"][0]["masterKeys"][0]["key"]);
    let (backend, key) = (backend.as_str().unwrap().to_owned(), key.as_str().unwrap());
    let hook = json!({"url": format!("http://127.0.0.1:{receiver_port}/hook")}).to_string();
    let res = (client.post(format!("{base}/v1/webhooks")).header("Enginio-Backend-Id", &backend))
        .header("Enginio-Backend-MasterKey", key)
        .body(hook)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    backend
}

/// Webhook deliveries of acknowledged writes survive a receiver outage and a kill: the receiver, down while
/// the writes happen and the server is killed, gets every one once both are back. On PostgreSQL the killed
/// node's claims hold their deliveries for the lease (`claim_lease`: the 1 s timeout plus 20 s), then the new
/// node takes them over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_deliveries_survive_an_outage_and_a_kill() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let (port, receiver_port) = (free_port(), free_port());
    let base = format!("http://127.0.0.1:{port}");
    let fast_retries = ["--webhook-retry-base-ms", "100", "--webhook-timeout-secs", "1"];
    let mut server = start_binary(dir.path(), port, &fast_retries).await;
    let client = reqwest::Client::new();
    let backend = app_with_webhook(&client, &base, receiver_port).await;

    let mut acknowledged = HashSet::new();
    for n in 0..60 {
        let res = client
            .post(format!("{base}/v1/objects/todos"))
            .header("Enginio-Backend-Id", &backend)
            .body(json!({"n": n}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        acknowledged.insert(res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned());
    }
    // Let a few attempts fail against the closed port, then kill the server mid-retry.
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.start_kill().unwrap();
    server.wait().await.unwrap();

    let receiver = crate::webhooks::Receiver::start_on(receiver_port).await;
    let _server = start_binary(dir.path(), port, &fast_retries).await;
    let got = receiver.wait_for(acknowledged.len(), Duration::from_secs(45)).await;
    let delivered: HashSet<String> =
        got.iter().map(|(_, body)| body["payload"]["object"]["id"].as_str().unwrap().to_owned()).collect();
    let lost: Vec<_> = acknowledged.difference(&delivered).collect();
    assert!(lost.is_empty(), "{} of {} acknowledged changes never delivered", lost.len(), acknowledged.len());
}

/// A delivery whose attempt is in flight when its node is killed is attempted again, once, by the node that
/// comes next. On PostgreSQL it waits out the killed node's claim: the lease is the attempt timeout plus 20 s
/// (25 s here), where it was 5 minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_in_flight_at_a_kill_is_attempted_again() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let (port, receiver_port) = (free_port(), free_port());
    let base = format!("http://127.0.0.1:{port}");
    // A receiver that takes the connection and never answers.
    let hanging = tokio::net::TcpListener::bind(("127.0.0.1", receiver_port)).await.unwrap();
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hanging.accept().await {
            held.push(socket);
            if held.len() == 1 {
                return held;
            }
        }
        held
    });
    let settings = ["--webhook-timeout-secs", "5", "--webhook-retry-base-ms", "100"];
    let mut server = start_binary(dir.path(), port, &settings).await;
    let client = reqwest::Client::new();
    let backend = app_with_webhook(&client, &base, receiver_port).await;
    let res = (client.post(format!("{base}/v1/objects/todos")).header("Enginio-Backend-Id", &backend))
        .body(r#"{"title":"in flight"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let id = res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();

    // The attempt has reached the receiver, which holds it: kill the node now.
    let held = tokio::time::timeout(Duration::from_secs(5), held).await.expect("an attempt within 5 s").unwrap();
    server.start_kill().unwrap();
    server.wait().await.unwrap();
    drop(held);

    let receiver = crate::webhooks::Receiver::start_on(receiver_port).await;
    let started = std::time::Instant::now();
    let _server = start_binary(dir.path(), port, &settings).await;
    let got = receiver.wait_for(1, Duration::from_secs(45)).await;
    assert_eq!(got[0].1["payload"]["object"]["id"], id.as_str());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received.lock().unwrap().len(), 1, "attempted again once");
    eprintln!("delivered {:?} after the restart", started.elapsed());
}
