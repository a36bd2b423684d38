//! The bytes of files whose rows went. The store moves a file's row to its trash in the transaction that
//! removes it (its object deleted, by any path, or its property pointed elsewhere); this removes the bytes from
//! the blob store, then the trash row, so a crash in between leaves the work to the next pass, never bytes no
//! one owns. [`expire_uploads`] puts uploads begun and abandoned there too.

use std::sync::Arc;
use std::time::Duration;

use updraft_blobs::BlobStore;
use updraft_core::timestamp::now_ms;
use updraft_store::Files;

/// Trashed files read at a time.
const BATCH: u32 = 100;
/// At most one pass a second, however many commits wake it.
const PAUSE: Duration = Duration::from_secs(1);
/// A pass at least this often, for what a failed pass left.
const RETRY: Duration = Duration::from_secs(60);

/// Removes trashed files' bytes after commits (`changes` is the store's commit watch), until the watch closes.
pub async fn sweep(files: Arc<dyn Files>, blobs: Arc<dyn BlobStore>, mut changes: tokio::sync::watch::Receiver<u64>) {
    loop {
        drain(files.as_ref(), blobs.as_ref()).await;
        tokio::time::sleep(PAUSE).await;
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(RETRY) => {}
        }
    }
}

/// Expires uploads begun and not finished whose last chunk is older than `after`, and removes their staged
/// bytes; checks every quarter of `after` (at most hourly). Runs until cancelled.
pub async fn expire_uploads(files: Arc<dyn Files>, blobs: Arc<dyn BlobStore>, after: Duration) {
    let every = (after / 4).clamp(Duration::from_millis(250), Duration::from_secs(3600));
    loop {
        tokio::time::sleep(every).await;
        let cutoff_ms = now_ms().saturating_sub(i64::try_from(after.as_millis()).unwrap_or(i64::MAX));
        let mut expired = 0;
        loop {
            match files.expire_uploads(cutoff_ms, BATCH).await {
                Ok(0) => break,
                Ok(count) => expired += count,
                Err(err) => {
                    tracing::warn!(%err, "expiring abandoned uploads failed");
                    break;
                }
            }
        }
        if expired > 0 {
            tracing::info!(expired, "abandoned uploads expired");
            drain(files.as_ref(), blobs.as_ref()).await;
        }
    }
}

/// Removes the bytes of every trashed file; answers how many. Stops at the first failure (the next pass retries).
pub async fn drain(files: &dyn Files, blobs: &dyn BlobStore) -> usize {
    let mut removed = 0;
    loop {
        let batch = match files.trashed_files(BATCH).await {
            Ok(batch) => batch,
            Err(err) => {
                tracing::warn!(%err, "reading the file trash failed");
                return removed;
            }
        };
        if batch.is_empty() {
            return removed;
        }
        for (backend, id) in batch {
            if let Err(err) = blobs.remove_file(&backend, &id.to_string()).await {
                tracing::warn!(%err, %backend, file = %id, "removing a deleted file's bytes failed");
                return removed;
            }
            if let Err(err) = files.forget_trashed(&backend, id).await {
                tracing::warn!(%err, "emptying the file trash failed");
                return removed;
            }
            removed += 1;
        }
    }
}
