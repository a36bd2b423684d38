//! What an operator does with a running app: redeploy it under traffic, give it a domain, run a command in
//! it, follow its log; and the limits its size sets.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Server, Tree, eventually};

#[tokio::test]
async fn a_redeploy_under_traffic_fails_no_request() {
    let server = Arc::new(Server::start().await);
    let app = server.create_app("live").await;
    let tree = Tree::of_example("mar-python").await;
    let (pushed, output) = tree.push(&server.git_url(&app, &server.token)).await;
    assert!(pushed, "{output}");
    assert!(!output.contains("cached virtualenv") && output.contains("pip install"), "{output}");
    eventually(&server, &app, 5, |body| body.contains("Hello")).await;

    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let (server, app, sent, failed, stop) =
            (server.clone(), app.clone(), sent.clone(), failed.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let (status, body) = server.visit(&app, "/").await;
                sent.fetch_add(1, Ordering::Relaxed);
                if status != StatusCode::OK {
                    failed.fetch_add(1, Ordering::Relaxed);
                    eprintln!("{status}: {body}");
                }
            }
        })
    };
    tree.write("Procfile", "web: GREETING=Redeployed python app.py\n");
    tree.commit("v2").await;
    let (pushed, output) = tree.push(&server.git_url(&app, &server.token)).await;
    assert!(pushed, "{output}");
    // The requirements did not change: the venv the first push built is copied, not built again.
    assert!(output.contains("-----> Using the cached virtualenv"), "{output}");
    assert!(!output.contains("pip install"), "{output}");
    eventually(&server, &app, 5, |body| body.contains("Redeployed")).await;
    // Past the drain of the old processes.
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    stop.store(true, Ordering::Relaxed);
    traffic.await.unwrap();
    assert!(sent.load(Ordering::Relaxed) > 50, "requests kept going");
    assert_eq!(failed.load(Ordering::Relaxed), 0, "of {} requests", sent.load(Ordering::Relaxed));
}

#[tokio::test]
async fn domains_commands_logs_and_the_memory_limit() {
    let server = Server::start().await;
    let app = server.create_app("ops").await;
    let other = server.create_app("other").await;
    let (pushed, output) = Tree::of_example("mar-python").await.push(&server.git_url(&app, &server.token)).await;
    assert!(pushed, "{output}");
    eventually(&server, &app, 5, |body| body.contains("Hello")).await;

    // A custom domain reaches the app; another app cannot claim it; a bad name changes nothing.
    let domains = format!("/v1/apps/{app}/domains");
    let (status, _) = server.call(Method::POST, &domains, Some(json!({"name": "www.Example.test"}))).await;
    assert_eq!(status, StatusCode::CREATED);
    let response =
        server.client.get(format!("{}/", server.base)).header("Host", "www.example.test").send().await.unwrap();
    let text = response.text().await.unwrap();
    assert!(text.contains("Hello from mar-local-1-ops"), "{text}");
    let claimed = format!("/v1/apps/{other}/domains");
    let claim = server.call(Method::POST, &claimed, Some(json!({"name": "www.example.test"}))).await;
    assert_eq!(claim.0, StatusCode::CONFLICT);
    let bad = server.call(Method::POST, &domains, Some(json!({"name": "x.apps.test"}))).await;
    assert_eq!(bad.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(server.call(Method::GET, &domains, None).await.1, json!({"results": [{"name": "www.example.test"}]}));
    let (status, _) = server.call(Method::DELETE, &format!("{domains}/www.example.test"), None).await;
    assert_eq!(status, StatusCode::OK);
    let response =
        server.client.get(format!("{}/", server.base)).header("Host", "www.example.test").send().await.unwrap();
    let text = response.text().await.unwrap();
    assert!(!text.contains("Hello from"), "the API's, no longer the app's: {text}");

    // A one-off command runs in the app's sandbox, as its user, with its variables.
    let (status, ran) = server
        .call(Method::POST, &format!("/v1/apps/{app}/exec"), Some(json!({"cmd": "echo $MAR_APP_ID; id -u; ls /"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{ran}");
    let stdout = ran["stdout"].as_str().unwrap();
    assert!(stdout.starts_with("mar-local-1-ops\n6"), "{ran}");
    assert!(!stdout.contains("root") && !stdout.contains("work"), "{ran}");
    assert_eq!(ran["exitCode"], 0);
    // Its /tmp is its own to write, but the release at /app is not.
    let cmd = "echo x > /tmp/scratch && cat /tmp/scratch && python3 -c 'import tempfile; print(tempfile.mkstemp()[1])'; touch /app/x";
    let (_, ran) = server.call(Method::POST, &format!("/v1/apps/{app}/exec"), Some(json!({"cmd": cmd}))).await;
    assert!(
        ran["stdout"].as_str().unwrap().starts_with(
            "x
/tmp/"
        ),
        "{ran}"
    );
    assert!(ran["stderr"].as_str().unwrap().contains("Read-only file system"), "{ran}");

    // Following the log: the kept lines, then new ones as they come.
    let mut follow = server
        .client
        .get(format!("{}/v1/apps/{app}/logs?follow=true&limit=1", server.base))
        .bearer_auth(&server.token)
        .send()
        .await
        .unwrap();
    assert_eq!(follow.status(), StatusCode::OK);
    assert!(follow.chunk().await.unwrap().is_some());

    // Size 1 is 256 MiB: a process holding 400 MiB is ended by the kernel and started again.
    let (status, _) = server.visit(&app, "/eat?mb=400").await;
    assert_ne!(status, StatusCode::OK);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let (_, status) = server.call(Method::GET, &format!("/v1/apps/{app}/status"), None).await;
        if status["processes"][0]["restarts"] == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{status}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let mut logged = String::new();
    while !logged.contains("exited") {
        let next = tokio::time::timeout(std::time::Duration::from_secs(10), follow.chunk());
        logged.push_str(&String::from_utf8_lossy(&next.await.expect("a line in time").unwrap().unwrap()));
    }
    eventually(&server, &app, 10, |body| body.contains("Hello")).await;
    assert_eq!(server.visit(&app, "/eat?mb=100").await.0, StatusCode::OK, "under the limit");
}
