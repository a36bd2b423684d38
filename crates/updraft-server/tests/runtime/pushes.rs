//! Push, build, run, route; settings and scale; crashes; refused pushes; what a sandbox cannot see.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Server, Tree, eventually};

/// How often the app's log shows process `name` starting.
async fn starts_of(server: &Server, app: &str, name: &str) -> usize {
    let (_, logs) = server.call(Method::GET, &format!("/v1/apps/{app}/logs?limit=1000"), None).await;
    let lines = logs["results"].as_array().unwrap().iter();
    lines.filter(|l| l["source"] == name && l["log"].as_str().unwrap().contains("starting on port")).count()
}

#[tokio::test]
async fn a_python_app_is_pushed_served_configured_scaled_and_restarted() {
    let server = Server::start().await;
    let app = server.create_app("py").await;
    assert_eq!(app, "mar-local-1-py");
    let tree = Tree::of_example("mar-python").await;

    let (pushed, output) = tree.push(&server.git_url(&app, &server.token)).await;
    assert!(pushed, "{output}");
    for line in ["-----> Python app detected", "Procfile declares types -> web", "-----> Compiled slug size is"] {
        assert!(output.contains(line), "{line:?} in {output}");
    }
    assert!(output.contains(&format!("{app} deployed to http://{app}.apps.test")), "{output}");
    let body = eventually(&server, &app, 5, |body| body.contains("Hello from mar-local-1-py")).await;
    let served: Value = serde_json::from_str(&body).unwrap();
    assert_ne!(served["uid"], 0, "the app runs as its own user, not root");

    // A variable set is served by the next release; the app's record and info say so.
    let (status, _) =
        server.call(Method::PUT, &format!("/v1/apps/{app}/env_vars"), Some(json!({"GREETING": "Bonjour"}))).await;
    assert_eq!(status, StatusCode::OK);
    eventually(&server, &app, 10, |body| body.contains("Bonjour from")).await;
    let (_, env) = server.call(Method::GET, &format!("/v1/apps/{app}/env_vars"), None).await;
    assert_eq!(env, json!({"GREETING": "Bonjour", "STACK": "cedar-14"}));
    let (status, refused) =
        server.call(Method::PUT, &format!("/v1/apps/{app}/env_vars"), Some(json!({"NOT-OK": "x"}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");

    // Two web processes: requests reach both, and web.1 is not started again for it.
    let web1_starts = starts_of(&server, &app, "web.1").await;
    assert!(web1_starts >= 1, "the log shows web.1 starting");
    let (status, _) = server.call(Method::POST, &format!("/v1/apps/{app}/scale"), Some(json!({"web": "2"}))).await;
    assert_eq!(status, StatusCode::OK);
    let mut dynos = std::collections::BTreeSet::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while dynos.len() < 2 && std::time::Instant::now() < deadline {
        let (status, body) = server.visit(&app, "/").await;
        if status == StatusCode::OK {
            // Each process is pid 2 of its own PID namespace: the process name tells them apart.
            dynos.insert(serde_json::from_str::<Value>(&body).unwrap()["dyno"].as_str().unwrap().to_owned());
        }
    }
    let (_, logs) = server.call(Method::GET, &format!("/v1/apps/{app}/logs?limit=1000"), None).await;
    assert_eq!(dynos.len(), 2, "two processes answer: {logs}");
    assert_eq!(starts_of(&server, &app, "web.1").await, web1_starts, "{logs}");
    let (_, info) = server.call(Method::GET, &format!("/v1/apps/{app}"), None).await;
    assert_eq!(info["structure"], json!({"web": 2}));
    assert_eq!(info["state"], "running");

    // A process that dies is started again.
    let _ = server.visit(&app, "/crash").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let (_, status) = server.call(Method::GET, &format!("/v1/apps/{app}/status"), None).await;
        let processes = status["processes"].as_array().unwrap().clone();
        let restarted = processes.iter().any(|p| p["restarts"] == 1);
        if restarted && processes.iter().all(|p| p["state"] == "up") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not restarted: {status}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    eventually(&server, &app, 5, |body| body.contains("Bonjour")).await;

    // The log has the app's own lines and the runtime's.
    let (_, logs) = server.call(Method::GET, &format!("/v1/apps/{app}/logs?limit=1000"), None).await;
    let text =
        logs["results"].as_array().unwrap().iter().map(|l| l["log"].as_str().unwrap()).collect::<Vec<_>>().join("\n");
    assert!(text.contains("web.1: starting on port"), "{text}");
    assert!(text.contains("exited"), "{text}");
}

#[tokio::test]
async fn refused_pushes_leave_the_running_release_serving() {
    let server = Server::start().await;
    let app = server.create_app("steady").await;
    let tree = Tree::of_example("mar-python").await;
    let (pushed, output) = tree.push(&server.git_url(&app, &server.token)).await;
    assert!(pushed, "{output}");
    eventually(&server, &app, 5, |body| body.contains("Hello")).await;

    // A web process that never listens on PORT: refused after the health window, the old release serving.
    tree.write("Procfile", "web: sleep 600\n");
    tree.commit("never listens").await;
    let (pushed, output) = tree.push(&server.git_url(&app, &server.token)).await;
    assert!(!pushed, "{output}");
    assert!(output.contains("did not answer HTTP on $PORT"), "{output}");
    assert!(output.contains("pre-receive hook declined"), "{output}");
    eventually(&server, &app, 1, |body| body.contains("Hello")).await;

    // Nothing to build: refused with the reason.
    for file in ["Procfile", "requirements.txt", "app.py", "README.md"] {
        std::fs::remove_file(tree.dir.path().join(file)).unwrap();
    }
    tree.write("notes.txt", "nothing to run");
    tree.commit("nothing").await;
    let (pushed, output) = tree.push(&server.git_url(&app, &server.token)).await;
    assert!(!pushed && output.contains("no buildpack recognizes this app"), "{output}");

    // A wrong token, and an app that does not exist.
    let (pushed, output) = tree.push(&server.git_url(&app, "not-a-token")).await;
    assert!(!pushed, "{output}");
    let (pushed, output) = tree.push(&server.git_url("mar-local-1-nothere", &server.token)).await;
    assert!(!pushed && output.contains("no app mar-local-1-nothere"), "{output}");
    eventually(&server, &app, 1, |body| body.contains("Hello")).await;

    // Hosts under the apps domain that are no app's; names that are no app name.
    assert_eq!(server.visit("mar-local-1-nothere", "/").await.0, StatusCode::NOT_FOUND);
    let (status, refused) = server
        .call(Method::POST, "/v1/accounts/default/instances", Some(json!({"name": "../x", "serviceProviderId": "mar"})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");

    // Emptying the build cache and the repository leaves the running release serving; the next push starts a
    // new history.
    for reset in ["build_cache", "repository"] {
        assert_eq!(server.call(Method::DELETE, &format!("/v1/apps/{app}/{reset}"), None).await.0, StatusCode::OK);
    }
    eventually(&server, &app, 1, |body| body.contains("Hello")).await;
    let fresh = Tree::of_example("mar-python").await;
    fresh.write("Procfile", "web: GREETING=Fresh python app.py\n");
    fresh.commit("a new history").await;
    let (pushed, output) = fresh.push(&server.git_url(&app, &server.token)).await;
    assert!(pushed, "{output}");
    eventually(&server, &app, 5, |body| body.contains("Fresh from")).await;
}

#[tokio::test]
async fn a_node_app_is_built_with_npm_and_sandboxes_see_no_other_files() {
    let server = Server::start().await;
    let node = server.create_app("node").await;
    let python = server.create_app("reader").await;
    let (pushed, output) = Tree::of_example("mar-node").await.push(&server.git_url(&node, &server.token)).await;
    assert!(pushed, "{output}");
    assert!(output.contains("-----> Node.js app detected"), "{output}");
    assert!(output.contains("Default types for Node.js -> web"), "{output}");
    let body = eventually(&server, &node, 5, |body| body.contains("Hello from mar-local-1-node")).await;
    assert!(body.contains("86400000"), "the dependency is installed: {body}");

    let (pushed, output) = Tree::of_example("mar-python").await.push(&server.git_url(&python, &server.token)).await;
    assert!(pushed, "{output}");
    let data = server.data.path();
    for path in [
        data.join("runtime/apps/mar-local-1-reader.json"),
        data.join("runtime/releases/mar-local-1-node/v1/server.js"),
        data.join("eds.sqlite3"),
        "/etc/shadow".into(),
        "/root/.bashrc".into(),
    ] {
        let (status, body) = server.visit(&python, &format!("/read?path={}", path.display())).await;
        assert_eq!(status, StatusCode::OK);
        let answer: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(answer["readable"], false, "{}: {body}", path.display());
    }
    // Its own files it reads.
    let (_, body) = server.visit(&python, "/read?path=/app/app.py").await;
    assert!(body.contains("\"readable\": true"), "{body}");
}
