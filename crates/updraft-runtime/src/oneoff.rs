//! One-off commands (`POST /v1/apps/:id/exec`): run once in a sandbox of the app's current release, with its
//! environment and its limits, and answered with what they printed.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::cgroups::Limits;
use crate::runtime::{Runtime, RuntimeError};
use crate::sandbox::Sandbox;

/// The longest a one-off command runs.
const RUN_TIME: Duration = Duration::from_secs(60);
/// The most of each stream kept.
const MAX_OUTPUT: usize = 1 << 20;

/// What a one-off command printed, and how it ended.
#[derive(Debug, Clone)]
pub struct Ran {
    pub stdout: String,
    pub stderr: String,
    /// `None` when it was killed (by the time limit or a signal).
    pub exit_code: Option<i32>,
}

impl Runtime {
    /// Runs `command` (with `bash -c`) in the app's current release.
    pub async fn exec(&self, id: &str, command: &str) -> Result<Ran, RuntimeError> {
        let app = self.app(id).ok_or(RuntimeError::NotFound)?;
        let release = app.current().ok_or_else(|| RuntimeError::Invalid("the app has no release yet".into()))?;
        let release_dir = self.releases_dir(id).join(format!("v{}", release.build));
        let mut env = release.env.clone();
        env.extend(
            [("STACK", release.stack.as_str()), ("HOME", "/app"), ("PATH", crate::sandbox::PATH), ("MAR_APP_ID", id)]
                .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        let group = format!("{}.{id}.exec.{}", self.instance, hex::encode(rand::random::<[u8; 6]>()));
        let cgroups = self.cgroups.make(&group, Limits::of_size(app.size))?;
        let sandbox = Sandbox {
            app_dir: &release_dir,
            writable: false,
            cache_dir: None,
            buildpacks_dir: None,
            uid: app.uid,
            env: &env,
            cgroups: &cgroups,
        };
        let spawned = sandbox
            .command(&["/bin/bash", "-c", command])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let ran = match spawned {
            Ok(mut child) => {
                let out = read_capped(child.stdout.take());
                let err = read_capped(child.stderr.take());
                let waited = tokio::time::timeout(RUN_TIME, async {
                    let (status, stdout, stderr) = tokio::join!(child.wait(), out, err);
                    (status, stdout, stderr)
                })
                .await;
                match waited {
                    Ok((status, stdout, stderr)) => Ok(Ran { stdout, stderr, exit_code: status?.code() }),
                    Err(_) => {
                        let _ = child.kill().await;
                        let stderr = format!("killed after {} s", RUN_TIME.as_secs());
                        Ok(Ran { stdout: String::new(), stderr, exit_code: None })
                    }
                }
            }
            Err(err) => Err(RuntimeError::Io(err)),
        };
        let _ = tokio::task::spawn_blocking(move || crate::cgroups::remove(&cgroups)).await;
        ran
    }
}

/// Reads a stream to its end, keeping its first [`MAX_OUTPUT`] bytes.
async fn read_capped(stream: Option<impl AsyncRead + Unpin>) -> String {
    let Some(mut stream) = stream else { return String::new() };
    let mut kept = Vec::new();
    let mut buffer = [0u8; 8192];
    while let Ok(n) = stream.read(&mut buffer).await {
        if n == 0 {
            break;
        }
        let room = MAX_OUTPUT.saturating_sub(kept.len());
        kept.extend_from_slice(&buffer[..n.min(room)]);
    }
    String::from_utf8_lossy(&kept).into_owned()
}
