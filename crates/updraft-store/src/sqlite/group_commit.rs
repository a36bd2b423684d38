//! Group commit for inserts: concurrent inserts share one transaction, so one WAL fsync makes a
//! whole batch durable instead of one insert each. Each caller still hears back only after the
//! commit, so nothing is acknowledged before it is on disk.

use sqlx::SqlitePool;
use tokio::sync::{mpsc, oneshot};
use updraft_core::ids::ObjectId;

use super::insert_doc;
use crate::{Acl, Collection, StoreError};

/// Inserts waiting beyond this many make callers wait (backpressure), not memory grow.
const QUEUE: usize = 4096;
/// The most inserts one transaction takes.
const MAX_BATCH: usize = 512;

pub(crate) struct Insert {
    pub backend: String,
    pub object_type: String,
    pub id: ObjectId,
    pub doc: String,
    pub now_ms: i64,
    pub acl: Acl,
    pub done: oneshot::Sender<Result<(), StoreError>>,
}

/// Starts the committer; it stops when the returned sender is dropped.
pub(crate) fn start(writer: SqlitePool) -> mpsc::Sender<Insert> {
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(run(writer, rx));
    tx
}

async fn run(writer: SqlitePool, mut rx: mpsc::Receiver<Insert>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let results = commit(&writer, &batch).await;
        for (insert, result) in batch.drain(..).zip(results) {
            let _ = insert.done.send(result);
        }
    }
}

/// One transaction for the batch; an insert that fails (a taken username) fails alone.
async fn commit(writer: &SqlitePool, batch: &[Insert]) -> Vec<Result<(), StoreError>> {
    let fail_all = |err: sqlx::Error| {
        let message = err.to_string();
        batch.iter().map(|_| Err(StoreError::Database(message.clone()))).collect::<Vec<_>>()
    };
    let mut tx = match writer.begin().await {
        Ok(tx) => tx,
        Err(err) => return fail_all(err),
    };
    let mut results = Vec::with_capacity(batch.len());
    for insert in batch {
        let at = Collection { backend: &insert.backend, object_type: &insert.object_type };
        results.push(insert_doc(&mut tx, at, insert.id, &insert.doc, insert.now_ms, &insert.acl).await);
    }
    match tx.commit().await {
        Ok(()) => results,
        Err(err) => fail_all(err),
    }
}
