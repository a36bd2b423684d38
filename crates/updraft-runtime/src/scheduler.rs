//! Where app processes run (docs/runtime.md, "Beyond one machine"). The runtime decides what should run (each
//! app's current release × its structure) and a [`Scheduler`] makes it run: [`LocalProcesses`] supervises
//! sandboxed processes on this host. An orchestrator takes the same role: a Nomad job per app whose task groups
//! are the process types (`count` = the scale, the `exec` driver for the sandbox, `PORT` from its network
//! stanza), or a Kubernetes Deployment per process type with the release as an image or volume.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::logs::AppLogs;
use crate::processes::{Process, Spec};

/// Starts supervised processes: kept running, started again when they exit, until stopped.
pub trait Scheduler: Send + Sync {
    fn start(&self, spec: Spec, logs: Arc<AppLogs>) -> Box<dyn Placed>;
}

/// One started process, wherever it runs.
pub trait Placed: Send + Sync {
    fn spec(&self) -> &Spec;
    /// Where the router reaches it: its `PORT` on the host that runs it.
    fn address(&self) -> SocketAddr;
    /// How often it has exited and been started again.
    fn restarts(&self) -> u32;
    /// The pid of the app's own process on this host, while it runs here.
    fn pid(&self) -> Option<i32>;
    /// Stops it (SIGTERM, then SIGKILL after a grace period); resolves once it is gone.
    fn stop(self: Box<Self>) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// Processes on this host, each in its bubblewrap sandbox and control groups.
pub struct LocalProcesses;

impl Scheduler for LocalProcesses {
    fn start(&self, spec: Spec, logs: Arc<AppLogs>) -> Box<dyn Placed> {
        Box::new(Process::start(spec, logs))
    }
}

impl Placed for Process {
    fn spec(&self) -> &Spec {
        &self.spec
    }

    fn address(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.spec.port))
    }

    fn restarts(&self) -> u32 {
        self.restarts.load(Ordering::Relaxed)
    }

    fn pid(&self) -> Option<i32> {
        self.app_pid()
    }

    fn stop(self: Box<Self>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(Process::stop(*self))
    }
}
