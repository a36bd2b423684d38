//! A push's way into a deploy. Git runs `updraft hook` as the repository's `pre-receive` hook (see
//! [`crate::git`]); the hook unpacks the pushed commit of the deploy branch (with `git archive`, which sees the
//! push's quarantined objects) under `incoming/`, hands it to the server over the runtime's Unix socket, and
//! prints the deploy's transcript, which git relays to the pusher as `remote:` lines. The hook's exit status is
//! the verdict: non-zero rejects the push, and the ref stays where it was.
//!
//! The socket is the server's only door for it: mode 0600 in the runtime's directory, which no sandbox sees.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::build::Transcript;
use crate::git::DEPLOY_REFS;
use crate::runtime::Runtime;

const OK: &str = "updraft-hook: ok";
const FAILED: &str = "updraft-hook: failed";

#[derive(Serialize, Deserialize)]
struct Push {
    app: String,
    commit: String,
    source: PathBuf,
}

pub fn socket_path(root: &Path) -> PathBuf {
    root.join("hook.sock")
}

/// `updraft hook --root <root> --app <id>`: the pre-receive hook; returns its exit status.
pub fn run_hook(root: &Path, app: &str) -> i32 {
    match hook(root, app) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("-----> Push rejected: {err}");
            1
        }
    }
}

fn hook(root: &Path, app: &str) -> std::io::Result<i32> {
    let mut deploy = None;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let mut parts = line.split_whitespace();
        let (Some(_old), Some(new), Some(name)) = (parts.next(), parts.next(), parts.next()) else { continue };
        if DEPLOY_REFS.contains(&name) && new.bytes().any(|b| b != b'0') {
            deploy = Some(new.to_owned());
        }
    }
    let Some(commit) = deploy else {
        println!("-----> No deploy branch pushed (master or main): stored without a deploy");
        return Ok(0);
    };
    let source = root.join("incoming").join(hex::encode(rand::random::<[u8; 12]>()));
    std::fs::create_dir_all(&source)?;
    let unpacked = unpack(&commit, &source);
    if let Err(err) = unpacked {
        let _ = std::fs::remove_dir_all(&source);
        return Err(err);
    }
    let mut stream = std::os::unix::net::UnixStream::connect(socket_path(root))
        .map_err(|e| std::io::Error::other(format!("the runtime is not reachable: {e}")))?;
    let push = Push { app: app.to_owned(), commit, source };
    stream.write_all(&serde_json::to_vec(&push).map_err(std::io::Error::other)?)?;
    stream.write_all(b"\n")?;
    let mut out = std::io::stdout().lock();
    for line in BufReader::new(stream).lines() {
        let line = line?;
        match line.as_str() {
            OK => return Ok(0),
            FAILED => return Ok(1),
            _ => {
                writeln!(out, "{line}")?;
                out.flush()?;
            }
        }
    }
    eprintln!("-----> Push rejected: the deploy was cut off");
    Ok(1)
}

/// `git archive <commit> | tar -x -C <dir>`.
fn unpack(commit: &str, dir: &Path) -> std::io::Result<()> {
    use std::process::{Command, Stdio};
    let mut archive = Command::new("git").args(["archive", "--format=tar", commit]).stdout(Stdio::piped()).spawn()?;
    let tar = Command::new("tar")
        .args(["-x", "--no-same-owner", "-C"])
        .arg(dir)
        .stdin(archive.stdout.take().ok_or_else(|| std::io::Error::other("no archive output"))?)
        .status()?;
    let archived = archive.wait()?;
    if archived.success() && tar.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!("the pushed tree could not be unpacked ({archived}, {tar})")))
    }
}

/// Serves hooks on the runtime's socket until the task is dropped.
pub async fn serve(runtime: Arc<Runtime>) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let path = socket_path(&runtime.settings().root);
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(answer(runtime.clone(), stream));
    }
}

async fn answer(runtime: Arc<Runtime>, stream: UnixStream) {
    let (read, mut write) = stream.into_split();
    let mut first = String::new();
    if tokio::io::BufReader::new(read).read_line(&mut first).await.is_err() {
        return;
    }
    let (lines, mut transcript_lines) = tokio::sync::mpsc::unbounded_channel();
    let deploy = {
        let runtime = runtime.clone();
        async move {
            let transcript = Transcript(lines);
            // The transcript ends with the deploy, and with it the relay below.
            deploy_push(&runtime, &first, &transcript).await
        }
    };
    let relay = async {
        while let Some(line) = transcript_lines.recv().await {
            // A pusher who hung up no longer reads; the deploy goes on, and its log keeps the transcript.
            let _ = write.write_all(format!("{line}\n").as_bytes()).await;
        }
    };
    let (outcome, ()) = tokio::join!(deploy, relay);
    let verdict = match outcome {
        Ok(_) => format!("{OK}\n"),
        Err(err) => format!("-----> Push rejected: {err}\n{FAILED}\n"),
    };
    let _ = write.write_all(verdict.as_bytes()).await;
}

async fn deploy_push(runtime: &Runtime, first: &str, transcript: &Transcript) -> Result<u32, String> {
    let push: Push = serde_json::from_str(first).map_err(|e| format!("a hook said {e}"))?;
    let incoming = runtime.settings().root.join("incoming");
    let source = push.source.canonicalize().map_err(|e| format!("the pushed tree is gone: {e}"))?;
    if source.parent() != Some(incoming.canonicalize().map_err(|e| e.to_string())?.as_path()) {
        return Err("the pushed tree is not the runtime's".to_owned());
    }
    let deployed = runtime.deploy(&push.app, &source, &push.commit, transcript).await;
    if deployed.is_err() {
        let _ = tokio::fs::remove_dir_all(&source).await;
    }
    deployed
}
