//! A real S3-compatible server for tests (feature `test-server`): the `s3s-fs` binary on a free loopback port,
//! its data in a temporary directory. `scripts/test-all.sh` installs it under `target/tools`; `UPDRAFT_S3S_FS`
//! names another.

use std::path::{Path, PathBuf};
use std::time::Duration;

pub const ACCESS_KEY: &str = "AKIDUPDRAFTTEST";
pub const SECRET_KEY: &str = "updraft-s3-secret";

/// `s3s-fs` serving one bucket; killed when dropped.
pub struct S3sServer {
    _child: tokio::process::Child,
    pub endpoint: String,
    /// The server's data: a bucket is a directory here, an object a file under it.
    pub root: tempfile::TempDir,
}

fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("UPDRAFT_S3S_FS") {
        return path.into();
    }
    let installed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/tools/bin/s3s-fs");
    assert!(
        installed.exists(),
        "no s3s-fs at {}: `cargo install s3s-fs@0.14.1 --locked --features binary --root target/tools` \
         (scripts/test-all.sh does), or set UPDRAFT_S3S_FS",
        installed.display()
    );
    installed
}

impl S3sServer {
    /// Starts the server with `bucket` created, and waits until it listens.
    pub async fn start(bucket: &str) -> S3sServer {
        let root = tempfile::tempdir().expect("a temporary directory");
        std::fs::create_dir(root.path().join(bucket)).expect("the bucket's directory");
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|it| it.local_addr()).expect("a port").port();
        let child = tokio::process::Command::new(binary())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(root.path())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("s3s-fs starts");
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return S3sServer { _child: child, endpoint: format!("http://127.0.0.1:{port}"), root };
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("s3s-fs did not start");
    }

    /// The `AWS_*` settings that reach it (as `object_store` options, lowercase, or environment variables).
    pub fn settings(&self) -> [(&'static str, &str); 5] {
        [
            ("AWS_ENDPOINT", &self.endpoint),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ]
    }
}
