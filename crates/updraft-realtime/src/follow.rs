//! Following the change log: the one loop behind each in-process consumer of committed changes (the sockets of
//! bound gateways, the notification stream, the API's sessions that watch for deleted users and groups).

use std::sync::Arc;
use std::time::Duration;

use updraft_store::{Change, Changes};

/// Changes read from the log at a time.
const BATCH: u32 = 512;

/// Hands every change committed from now on to `each`, in order, while `listening()` holds. While it does not,
/// keeps up with the log without reading it: every commit wakes the follower, and an idle one must cost nothing.
/// Returns when the store goes away.
pub async fn follow<F: Future<Output = ()>>(
    changes: Arc<dyn Changes>,
    listening: impl Fn() -> bool,
    mut each: impl FnMut(Change) -> F,
) {
    let mut watch = changes.watch_changes();
    let mut last = loop {
        match changes.latest_change().await {
            Ok(seq) => break seq,
            Err(err) => retry(&err).await,
        }
    };
    loop {
        let latest = *watch.borrow_and_update() as i64;
        if !listening() {
            last = last.max(latest);
        } else {
            loop {
                let batch = match changes.changes_after(last, BATCH).await {
                    Ok(batch) => batch,
                    Err(err) => {
                        retry(&err).await;
                        continue;
                    }
                };
                let Some(newest) = batch.last().map(|change| change.seq) else { break };
                for change in batch {
                    each(change).await;
                }
                last = newest;
            }
        }
        if watch.changed().await.is_err() {
            return;
        }
    }
}

async fn retry(err: &updraft_store::StoreError) {
    tracing::warn!(%err, "reading the change log failed; retrying");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
