//! Git over SSH (`--ssh-listen`): `git push ssh://git@<server>:<port>/<app-id>` with a key registered at
//! `/v1/user/ssh_keys`. The server speaks SSH itself (russh), so keys live with the rest of the runtime's state
//! and the host's `sshd` and `authorized_keys` are never touched. A session may only exec git's own
//! `receive-pack` or `upload-pack` on an app's repository (paths `<app-id>`, `/<app-id>`, `<app-id>.git`); there
//! is no shell, no port forwarding, no other command. A push runs the same `pre-receive` hook as over HTTP.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use russh::keys::PrivateKey;
use russh::server::{Auth, Handle, Msg, Server as _, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, MethodKind, MethodSet};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::process::ChildStdin;

use crate::runtime::Runtime;

/// Serves SSH on `listener` until the task is dropped.
pub async fn serve(runtime: Arc<Runtime>, listener: TcpListener) -> std::io::Result<()> {
    let key = host_key(&runtime.settings().root)?;
    let config = russh::server::Config {
        keys: vec![key],
        methods: MethodSet::from(&[MethodKind::PublicKey][..]),
        auth_rejection_time: Duration::from_secs(1),
        auth_rejection_time_initial: Some(Duration::ZERO),
        // A push waits for its build, which sends nothing while pip or npm is quiet.
        inactivity_timeout: Some(Duration::from_secs(30 * 60)),
        ..Default::default()
    };
    let mut intake = Intake { runtime, stdin: HashMap::new() };
    intake.run_on_socket(Arc::new(config), &listener).await
}

/// The server's host key, made once (Ed25519) and kept under the runtime's directory (mode 0600).
fn host_key(root: &Path) -> std::io::Result<PrivateKey> {
    use std::os::unix::fs::PermissionsExt;
    let path = root.join("ssh_host_ed25519_key");
    if let Ok(text) = std::fs::read_to_string(&path) {
        return PrivateKey::from_openssh(text).map_err(std::io::Error::other);
    }
    let seed: [u8; 32] = rand::random();
    let key = PrivateKey::from(russh::keys::ssh_key::private::Ed25519Keypair::from_seed(&seed));
    let text = key.to_openssh(russh::keys::ssh_key::LineEnding::LF).map_err(std::io::Error::other)?;
    crate::records::write_atomically(&path, text.as_bytes())?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(key)
}

struct Intake {
    runtime: Arc<Runtime>,
    /// The git process of each channel, fed what the client sends.
    stdin: HashMap<ChannelId, ChildStdin>,
}

impl russh::server::Server for Intake {
    type Handler = Intake;

    fn new_client(&mut self, _peer: Option<std::net::SocketAddr>) -> Intake {
        Intake { runtime: self.runtime.clone(), stdin: HashMap::new() }
    }
}

impl russh::server::Handler for Intake {
    type Error = russh::Error;

    async fn auth_publickey(&mut self, _user: &str, key: VerifiedPublicKey<'_>) -> Result<Auth, Self::Error> {
        Ok(if self.runtime.ssh_keys().knows(key.public_key) { Auth::Accept } else { Auth::reject() })
    }

    async fn channel_open_session(
        &mut self,
        _channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        reply.accept().await;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let handle = session.handle();
        let command = String::from_utf8_lossy(data).into_owned();
        let Some((program, app)) = git_command(&command).filter(|(_, app)| self.runtime.app(app).is_some()) else {
            session.channel_success(channel)?;
            let message = format!("updraft: {command:?} is not a push or fetch of an app here\n");
            tokio::spawn(finish(handle, channel, 128, message));
            return Ok(());
        };
        let spawned = tokio::process::Command::new("git")
            .arg(program)
            .arg(self.runtime.repo_dir(&app))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(err) => {
                session.channel_failure(channel)?;
                tracing::error!(%err, "git could not start for an SSH push");
                return Ok(());
            }
        };
        if let Some(stdin) = child.stdin.take() {
            self.stdin.insert(channel, stdin);
        }
        session.channel_success(channel)?;
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        tokio::spawn(async move {
            let out = relay(stdout, handle.clone(), channel, None);
            let err = relay(stderr, handle.clone(), channel, Some(1));
            let (status, (), ()) = tokio::join!(child.wait(), out, err);
            let code = status.ok().and_then(|s| s.code()).unwrap_or(1);
            finish(handle, channel, u32::try_from(code).unwrap_or(1), String::new()).await;
        });
        Ok(())
    }

    async fn data(&mut self, channel: ChannelId, data: &[u8], _session: &mut Session) -> Result<(), Self::Error> {
        if let Some(stdin) = self.stdin.get_mut(&channel)
            && stdin.write_all(data).await.is_err()
        {
            self.stdin.remove(&channel);
        }
        Ok(())
    }

    async fn channel_eof(&mut self, channel: ChannelId, _session: &mut Session) -> Result<(), Self::Error> {
        // git sees the end of its input.
        self.stdin.remove(&channel);
        Ok(())
    }
}

/// Copies a stream of the git process to the channel: its data, or extended data of type `extended`.
async fn relay(stream: Option<impl AsyncRead + Unpin>, handle: Handle, channel: ChannelId, extended: Option<u32>) {
    let Some(mut stream) = stream else { return };
    let mut buffer = vec![0u8; 32 * 1024];
    while let Ok(n) = stream.read(&mut buffer).await {
        if n == 0 {
            return;
        }
        let chunk = bytes::Bytes::copy_from_slice(&buffer[..n]);
        let sent = match extended {
            Some(kind) => handle.extended_data(channel, kind, chunk).await,
            None => handle.data(channel, chunk).await,
        };
        if sent.is_err() {
            return;
        }
    }
}

/// Ends a channel: a message on stderr, the exit status, EOF, close.
async fn finish(handle: Handle, channel: ChannelId, status: u32, message: String) {
    if !message.is_empty() {
        let _ = handle.extended_data(channel, 1, bytes::Bytes::from(message)).await;
    }
    let _ = handle.exit_status_request(channel, status).await;
    let _ = handle.eof(channel).await;
    let _ = handle.close(channel).await;
}

/// `git-receive-pack '<path>'` (or `git-upload-pack`, or `git receive-pack`): git's program and the app id,
/// with the path's quotes, leading slash and `.git` taken off.
fn git_command(command: &str) -> Option<(&'static str, String)> {
    let command = command.trim();
    let (program, rest) = if let Some(rest) =
        command.strip_prefix("git-receive-pack ").or_else(|| command.strip_prefix("git receive-pack "))
    {
        ("receive-pack", rest)
    } else if let Some(rest) =
        command.strip_prefix("git-upload-pack ").or_else(|| command.strip_prefix("git upload-pack "))
    {
        ("upload-pack", rest)
    } else {
        return None;
    };
    let path = rest.trim().trim_matches('\'').trim_matches('"');
    let app = path.strip_prefix('/').unwrap_or(path);
    let app = app.strip_suffix('/').unwrap_or(app);
    let app = app.strip_suffix(".git").unwrap_or(app);
    crate::names::app_name(app).map(|_| (program, app.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::git_command;

    #[test]
    fn only_git_on_an_app_path_is_run() {
        for (command, program) in [
            ("git-receive-pack 'mar-local-1-todo'", "receive-pack"),
            ("git-receive-pack '/mar-local-1-todo.git'", "receive-pack"),
            ("git-upload-pack 'mar-local-1-todo.git'", "upload-pack"),
            ("git receive-pack '/mar-local-1-todo'", "receive-pack"),
        ] {
            assert_eq!(git_command(command), Some((program, "mar-local-1-todo".to_owned())), "{command}");
        }
        for refused in [
            "sh",
            "git-receive-pack '../etc'",
            "git-receive-pack 'mar-local-1-todo'; rm -rf /",
            "git-upload-archive 'mar-local-1-todo'",
            "git-receive-pack '/tmp/x.git'",
        ] {
            assert_eq!(git_command(refused), None, "{refused}");
        }
    }
}
