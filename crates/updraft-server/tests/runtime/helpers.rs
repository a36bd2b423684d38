//! A server for runtime tests, pushes with real git, and requests by Host header.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

pub(crate) const EMAIL: &str = "runtime@example.com";
pub(crate) const PASSWORD: &str = "runtime-password";
pub(crate) const APPS_DOMAIN: &str = "apps.test";

pub(crate) struct Server {
    pub(crate) base: String,
    pub(crate) token: String,
    pub(crate) data: tempfile::TempDir,
    pub(crate) client: reqwest::Client,
    _child: tokio::process::Child,
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Server {
    pub(crate) async fn start() -> Server {
        Server::start_with(&[]).await
    }

    /// A server with these `serve` arguments too.
    pub(crate) async fn start_with(extra: &[&str]) -> Server {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let data = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_updraft"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(data.path())
            .args(["--admin-email", EMAIL, "--admin-password", PASSWORD, "--apps-domain", APPS_DOMAIN])
            .args(["--app-health-timeout-secs", "8"])
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        for _ in 0..400 {
            if client.get(format!("{base}/healthz")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let login = format!("grant_type=password&username={EMAIL}&password={PASSWORD}");
        let token = client.post(format!("{base}/v1/account/auth/oauth2/token")).body(login).send().await.unwrap();
        let token: Value = token.json().await.unwrap();
        let token = token["access_token"].as_str().unwrap().to_owned();
        Server { base, token, data, client, _child: child }
    }

    /// A platform or MAR API call with the account token.
    pub(crate) async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Makes an app through the platform API; its id.
    pub(crate) async fn create_app(&self, name: &str) -> String {
        let body = serde_json::json!({"name": name, "serviceProviderId": "mar", "config": {"runtimeSize": 1}});
        let (status, app) = self.call(reqwest::Method::POST, "/v1/accounts/default/instances", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{app}");
        app["id"].as_str().unwrap().to_owned()
    }

    /// `GET path` on the app's host: its status and body.
    pub(crate) async fn visit(&self, app: &str, path: &str) -> (StatusCode, String) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .header("Host", format!("{app}.{APPS_DOMAIN}"))
            .send()
            .await
            .unwrap();
        (response.status(), response.text().await.unwrap())
    }

    pub(crate) fn git_url(&self, app: &str, password: &str) -> String {
        format!("{}/{app}.git", self.base.replacen("http://", &format!("http://x:{password}@"), 1))
    }
}

/// A git work tree holding a copy of `examples/<example>` (or nothing), committed.
pub(crate) struct Tree {
    pub(crate) dir: tempfile::TempDir,
}

impl Tree {
    pub(crate) async fn of_example(example: &str) -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(example);
        copy_dir(&source, dir.path());
        let tree = Tree { dir };
        tree.git(&["init", "-q", "-b", "master"]).await;
        tree.commit("app").await;
        tree
    }

    /// A tree of these files (paths with `/` make their directories), committed.
    pub(crate) async fn of_files(files: &[(&str, &str)]) -> Tree {
        let tree = Tree { dir: tempfile::tempdir().unwrap() };
        for (file, text) in files {
            tree.write(file, text);
        }
        tree.git(&["init", "-q", "-b", "master"]).await;
        tree.commit("app").await;
        tree
    }

    pub(crate) fn write(&self, file: &str, text: &str) {
        let path = self.dir.path().join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    pub(crate) async fn commit(&self, message: &str) {
        self.git(&["add", "-A"]).await;
        self.git(&[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            message,
        ])
        .await;
    }

    pub(crate) async fn git(&self, args: &[&str]) {
        let status =
            tokio::process::Command::new("git").args(args).current_dir(self.dir.path()).status().await.unwrap();
        assert!(status.success(), "git {args:?}");
    }

    /// `git push <url> master`: whether it succeeded, and what git printed.
    pub(crate) async fn push(&self, url: &str) -> (bool, String) {
        self.push_with(url, &[]).await
    }

    /// [`Tree::push`] with these environment variables.
    pub(crate) async fn push_with(&self, url: &str, env: &[(&str, String)]) -> (bool, String) {
        let output = tokio::process::Command::new("git")
            .args(["push", url, "master"])
            .env("GIT_TERMINAL_PROMPT", "0")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .current_dir(self.dir.path())
            .output()
            .await
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        (output.status.success(), text)
    }
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target: PathBuf = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// `GET /` on the app until `check` holds of its body, for up to `seconds`.
pub(crate) async fn eventually(server: &Server, app: &str, seconds: u64, check: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
    loop {
        let (status, body) = server.visit(app, "/").await;
        if status == StatusCode::OK && check(&body) {
            return body;
        }
        assert!(std::time::Instant::now() < deadline, "the app never answered as expected: {status} {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
