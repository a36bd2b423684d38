//! One app process under supervision: started in its sandbox, its output logged, restarted with backoff when it
//! exits, and stopped gracefully: SIGTERM to the app (not to bubblewrap, whose exit would SIGKILL the whole PID
//! namespace without running the app's handler), then SIGKILL after the grace period.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cgroups::{Cgroups, Limits};
use crate::logs::AppLogs;
use crate::sandbox::Sandbox;

/// Restart backoff: from 1 s, doubling to 32 s; back to 1 s after a minute up.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(32);
const STABLE_AFTER: Duration = Duration::from_secs(60);
/// How long a stopping process has between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// What one process runs.
#[derive(Clone)]
pub struct Spec {
    pub app_id: String,
    pub process_type: String,
    /// 1-based, as `web.1`.
    pub index: u32,
    pub command: String,
    pub release_dir: PathBuf,
    pub uid: u32,
    /// Its whole environment, `PORT` included.
    pub env: BTreeMap<String, String>,
    pub port: u16,
    pub limits: Limits,
    pub cgroups: Cgroups,
    /// The name of its control groups, unique among the processes on the host.
    pub group: String,
}

impl Spec {
    pub fn name(&self) -> String {
        format!("{}.{}", self.process_type, self.index)
    }
}

/// A supervised process; dropping it does not stop it: [`Process::stop`] does.
pub struct Process {
    pub spec: Spec,
    /// How often it has exited and been started again.
    pub restarts: Arc<AtomicU32>,
    /// The bubblewrap pid of the running attempt, 0 between attempts.
    pid: Arc<AtomicU32>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Process {
    pub fn start(spec: Spec, logs: Arc<AppLogs>) -> Process {
        let (stop, stopping) = watch::channel(false);
        let restarts = Arc::new(AtomicU32::new(0));
        let pid = Arc::new(AtomicU32::new(0));
        let task = tokio::spawn(supervise(spec.clone(), logs, stopping, restarts.clone(), pid.clone()));
        Process { spec, restarts, pid, stop, task }
    }

    /// The host pid of the app's own process (under bubblewrap), if it runs.
    pub fn app_pid(&self) -> Option<i32> {
        let outer = self.pid.load(Ordering::Relaxed);
        (outer != 0).then(|| app_pids(outer as i32).into_iter().next()).flatten()
    }

    /// Stops it: SIGTERM, then SIGKILL after [`STOP_GRACE`]; returns once it is gone.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn supervise(
    spec: Spec,
    logs: Arc<AppLogs>,
    mut stopping: watch::Receiver<bool>,
    restarts: Arc<AtomicU32>,
    pid: Arc<AtomicU32>,
) {
    let name = spec.name();
    // One set of groups for every attempt.
    let cgroups = match spec.cgroups.make(&spec.group, spec.limits) {
        Ok(dirs) => dirs,
        Err(err) => {
            logs.push("mar", &format!("{name}: limits not set ({err}); running without them"));
            Vec::new()
        }
    };
    supervise_in(&spec, &logs, &mut stopping, &restarts, &pid, &cgroups).await;
    let _ = tokio::task::spawn_blocking(move || crate::cgroups::remove(&cgroups)).await;
}

async fn supervise_in(
    spec: &Spec,
    logs: &Arc<AppLogs>,
    stopping: &mut watch::Receiver<bool>,
    restarts: &AtomicU32,
    pid: &AtomicU32,
    cgroups: &[PathBuf],
) {
    let name = spec.name();
    let mut backoff = FIRST_BACKOFF;
    loop {
        let sandbox = Sandbox {
            app_dir: &spec.release_dir,
            writable: false,
            cache_dir: None,
            buildpacks_dir: None,
            uid: spec.uid,
            env: &spec.env,
            cgroups,
        };
        let spawned = sandbox
            .command(&["/bin/bash", "-c", &spec.command])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let started = Instant::now();
        let mut child = match spawned {
            Ok(child) => child,
            Err(err) => {
                logs.push(&name, &format!("could not start: {err}"));
                if wait_or_stop(stopping, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        pid.store(child.id().unwrap_or(0), Ordering::Relaxed);
        logs.push("mar", &format!("{name} started: {}", spec.command));
        tokio::spawn(relay(child.stdout.take(), logs.clone(), name.clone()));
        tokio::spawn(relay(child.stderr.take(), logs.clone(), name.clone()));
        let exited = tokio::select! {
            status = child.wait() => Some(status),
            _ = stopping.wait_for(|stop| *stop) => None,
        };
        pid.store(0, Ordering::Relaxed);
        let Some(status) = exited else {
            if let Some(outer) = child.id() {
                signal_app(outer as i32, rustix::process::Signal::TERM);
            }
            if tokio::time::timeout(STOP_GRACE, child.wait()).await.is_err() {
                let _ = child.kill().await;
            }
            logs.push("mar", &format!("{name} stopped"));
            return;
        };
        let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
        if started.elapsed() >= STABLE_AFTER {
            backoff = FIRST_BACKOFF;
        }
        logs.push("mar", &format!("{name} exited ({status}); starting again in {} s", backoff.as_secs()));
        restarts.fetch_add(1, Ordering::Relaxed);
        if wait_or_stop(stopping, backoff).await {
            return;
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Sleeps `delay` unless told to stop first; whether it was.
async fn wait_or_stop(stopping: &mut watch::Receiver<bool>, delay: Duration) -> bool {
    let stopped = tokio::select! {
        () = tokio::time::sleep(delay) => false,
        _ = stopping.wait_for(|stop| *stop) => true,
    };
    stopped || *stopping.borrow()
}

async fn relay(stream: Option<impl AsyncRead + Unpin>, logs: Arc<AppLogs>, name: String) {
    let Some(stream) = stream else { return };
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        logs.push(&name, &line);
    }
}

/// The processes under bubblewrap `outer`, bubblewrap's own left out: the app and what it started.
fn app_pids(outer: i32) -> Vec<i32> {
    let mut found = Vec::new();
    let mut queue = vec![outer];
    while let Some(pid) = queue.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { continue };
        for task in tasks.flatten() {
            let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            for child in children.split_whitespace().filter_map(|c| c.parse::<i32>().ok()) {
                let comm = std::fs::read_to_string(format!("/proc/{child}/comm")).unwrap_or_default();
                if comm.trim() != "bwrap" {
                    found.push(child);
                }
                queue.push(child);
            }
        }
    }
    found
}

fn signal_app(outer: i32, signal: rustix::process::Signal) {
    for pid in app_pids(outer) {
        if let Some(pid) = rustix::process::Pid::from_raw(pid) {
            let _ = rustix::process::kill_process(pid, signal);
        }
    }
}
