//! Pushes over SSH with a registered key, refused with any other.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Server, Tree, eventually, free_port};

/// A new Ed25519 key pair made by `ssh-keygen`: the private key's path and the public line.
async fn key(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, String) {
    let path = dir.join(name);
    let status = tokio::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .status()
        .await
        .unwrap();
    assert!(status.success());
    (path.clone(), std::fs::read_to_string(path.with_extension("pub")).unwrap())
}

fn ssh_command(key: &std::path::Path, port: u16) -> String {
    format!(
        "ssh -i {} -p {port} -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes",
        key.display()
    )
}

#[tokio::test]
async fn a_registered_key_pushes_over_ssh_and_an_unknown_one_is_refused() {
    let port = free_port();
    let server = Server::start_with(&["--ssh-listen", &format!("127.0.0.1:{port}")]).await;
    let app = server.create_app("viassh").await;
    let keys = tempfile::tempdir().unwrap();
    let (known, public) = key(keys.path(), "known").await;
    let (unknown, _) = key(keys.path(), "unknown").await;

    let (status, added) =
        server.call(Method::POST, "/v1/user/ssh_keys", Some(json!({"name": "laptop", "key": public}))).await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    let (status, twice) =
        server.call(Method::POST, "/v1/user/ssh_keys", Some(json!({"name": "again", "key": public}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{twice}");
    let (status, bad) =
        server.call(Method::POST, "/v1/user/ssh_keys", Some(json!({"name": "x", "key": "ssh-rsa nope"}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    let (_, listed) = server.call(Method::GET, "/v1/user/ssh_keys", None).await;
    assert_eq!(listed["results"][0]["name"], "laptop");

    let tree = Tree::of_example("mar-python").await;
    let refused = [("GIT_SSH_COMMAND", ssh_command(&unknown, port))];
    let (pushed, output) = tree.push_with(&format!("git@127.0.0.1:{app}"), &refused).await;
    assert!(!pushed && output.contains("Permission denied"), "{output}");

    let known_env = [("GIT_SSH_COMMAND", ssh_command(&known, port))];
    let (pushed, output) = tree.push_with(&format!("git@127.0.0.1:{app}"), &known_env).await;
    assert!(pushed, "{output}");
    assert!(output.contains("-----> Python app detected"), "{output}");
    eventually(&server, &app, 5, |body| body.contains("Hello from mar-local-1-viassh")).await;

    // The other path forms, and a path that is no app's.
    tree.write("Procfile", "web: GREETING=Again python app.py\n");
    tree.commit("again").await;
    let (pushed, output) = tree.push_with(&format!("ssh://git@127.0.0.1:{port}/{app}.git"), &known_env).await;
    assert!(pushed, "{output}");
    eventually(&server, &app, 5, |body| body.contains("Again from")).await;
    let (pushed, output) = tree.push_with("git@127.0.0.1:/etc/passwd", &known_env).await;
    assert!(!pushed && output.contains("is not a push or fetch of an app here"), "{output}");

    // A key removed no longer pushes.
    let id = added["id"].as_str().unwrap();
    assert_eq!(server.call(Method::DELETE, &format!("/v1/user/ssh_keys/{id}"), None).await.0, StatusCode::OK);
    let (pushed, output) = tree.push_with(&format!("git@127.0.0.1:{app}"), &known_env).await;
    assert!(!pushed && output.contains("Permission denied"), "{output}");
}
