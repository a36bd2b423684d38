//! Background work of the server, started and stopped in one place.
//!
//! Each worker (the change follower that feeds bound gateways, the notification stream's follower, the webhook
//! worker, the log pruner, the ticket sweeper, the heartbeat) runs as a named task under one `TaskTracker`, in a
//! span with its name, counted by `updraft_workers_running{worker}` while it runs. Shutdown cancels them all and
//! waits until each has stopped, so nothing of ours outlives `Application::run_until_stopped`. Every worker may
//! be stopped at any await: what they work from is durable (the change log, the webhook outbox, the tickets) and
//! is picked up again at the next start. A worker that ends while the server runs is logged: it is the sign of a
//! bug, since each of them loops until cancelled or until the state it serves is gone.

use std::future::Future;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

#[derive(Default)]
pub(crate) struct Workers {
    tracker: TaskTracker,
    cancel: CancellationToken,
}

/// Counts a worker as running from its start until its task ends, however it ends.
struct Running(&'static str);

impl Running {
    fn start(name: &'static str) -> Running {
        metrics::gauge!("updraft_workers_running", "worker" => name).increment(1.0);
        Running(name)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        metrics::gauge!("updraft_workers_running", "worker" => self.0).decrement(1.0);
    }
}

impl Workers {
    /// Runs `work` as the worker `name` until it ends or the workers are shut down.
    pub(crate) fn spawn(&self, name: &'static str, work: impl Future<Output = ()> + Send + 'static) {
        let cancel = self.cancel.clone();
        let running = Running::start(name);
        let span = tracing::info_span!("worker", name);
        self.tracker.spawn(
            async move {
                let _running = running;
                tokio::select! {
                    () = cancel.cancelled() => {}
                    () = work => tracing::warn!("worker stopped on its own"),
                }
            }
            .instrument(span),
        );
    }

    /// How many workers run now.
    #[cfg(test)]
    fn running(&self) -> usize {
        self.tracker.len()
    }

    /// Cancels every worker and waits until all have stopped.
    pub(crate) async fn shut_down(&self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[tokio::test]
    async fn shutting_down_stops_every_worker_and_drops_its_state() {
        let workers = Workers::default();
        let dropped = Arc::new(AtomicBool::new(false));
        struct Flag(Arc<AtomicBool>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let flag = Flag(dropped.clone());
        workers.spawn("forever", async move {
            let _flag = flag;
            std::future::pending::<()>().await;
        });
        workers.spawn("done", async {});
        tokio::task::yield_now().await;
        assert!(workers.running() >= 1);
        tokio::time::timeout(std::time::Duration::from_secs(5), workers.shut_down()).await.expect("stopped");
        assert_eq!(workers.running(), 0);
        assert!(dropped.load(Ordering::SeqCst), "the cancelled worker's future was dropped");
    }
}
