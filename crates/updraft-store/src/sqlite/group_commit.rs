//! Group commit for inserts: concurrent inserts share one transaction, so one WAL fsync makes a
//! whole batch durable instead of one insert each. Each caller still hears back only after the
//! commit, so nothing is acknowledged before it is on disk.

use std::sync::Arc;

use sqlx::SqlitePool;
use tokio::sync::{mpsc, oneshot, watch};
use updraft_core::ids::ObjectId;

use super::changes::{self, Recorded};
use super::{acl_json, announce, insert_doc, parse_acl};
use crate::{Acl, Author, ChangeEvent, Collection, ObjectRef, StoreError, USERS};

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
    pub parent: Option<ObjectRef>,
    pub author: Option<String>,
    pub request_id: Option<String>,
    pub done: oneshot::Sender<Result<(), StoreError>>,
}

/// Starts the committer; it stops when the returned sender is dropped.
pub(crate) fn start(writer: SqlitePool, committed: Arc<watch::Sender<u64>>) -> mpsc::Sender<Insert> {
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(run(writer, rx, committed));
    tx
}

async fn run(writer: SqlitePool, mut rx: mpsc::Receiver<Insert>, committed: Arc<watch::Sender<u64>>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let results = commit(&writer, &batch).await;
        let latest = results.iter().filter_map(|result| result.as_ref().ok()).max();
        if let Some(&seq) = latest {
            announce(&committed, seq);
        }
        for (insert, result) in batch.drain(..).zip(results) {
            let _ = insert.done.send(result.map(|_| ()));
        }
    }
}

/// One transaction for the batch; an insert that fails (a taken username) fails alone. Each insert that went in
/// answers the `seq` of its change (those of a batch statement, the batch's latest).
async fn commit(writer: &SqlitePool, batch: &[Insert]) -> Vec<Result<i64, StoreError>> {
    let fail_all = |err: sqlx::Error| {
        let message = err.to_string();
        batch.iter().map(|_| Err(StoreError::Database(message.clone()))).collect::<Vec<_>>()
    };
    let mut tx = match writer.begin().await {
        Ok(tx) => tx,
        Err(err) => return fail_all(err),
    };
    let results = if batch.len() > 1 && batch.iter().all(|insert| insert.object_type != USERS) {
        // No unique constraint can fail: the batch goes in as one statement, since each statement costs sqlx
        // a hand-off to its SQLite thread and back.
        match insert_many(&mut tx, batch).await {
            Ok(latest) => batch.iter().map(|_| Ok(latest)).collect(),
            Err(err) => return fail_all(err),
        }
    } else {
        let mut results = Vec::with_capacity(batch.len());
        for insert in batch {
            results.push(insert_one(&mut tx, insert).await);
        }
        results
    };
    match tx.commit().await {
        Ok(()) => results,
        Err(err) => fail_all(err),
    }
}

/// One insert and its change, or neither: a savepoint undoes the insert when recording fails.
async fn insert_one(tx: &mut sqlx::SqliteConnection, insert: &Insert) -> Result<i64, StoreError> {
    let at = Collection { backend: &insert.backend, object_type: &insert.object_type };
    let mut one = sqlx::Connection::begin(&mut *tx).await?;
    insert_doc(&mut one, at, insert.id, &insert.doc, insert.now_ms, &insert.acl, insert.parent.as_ref()).await?;
    let inherited = match &insert.parent {
        Some(parent) => parent_acl(&mut one, &insert.backend, parent).await?,
        None => None,
    };
    let id = insert.id.to_string();
    let change = Recorded {
        backend: &insert.backend,
        object_type: &insert.object_type,
        id: &id,
        event: ChangeEvent::Create,
        doc: &insert.doc,
        acl: &insert.acl,
        inherited: inherited.as_ref(),
        author: Author { user: insert.author.as_deref(), request_id: insert.request_id.as_deref() },
    };
    let seq = changes::record(&mut one, change).await?;
    one.commit().await?;
    Ok(seq)
}

async fn parent_acl(
    tx: &mut sqlx::SqliteConnection,
    backend: &str,
    parent: &ObjectRef,
) -> Result<Option<Acl>, StoreError> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT acl FROM objects WHERE backend = ? AND object_type = ? AND id = ?")
            .bind(backend)
            .bind(&parent.object_type)
            .bind(parent.id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
    Ok(row.map(|(text,)| parse_acl(&text)))
}

/// Inserts the whole batch, and its changes, with one statement each over a JSON array of rows.
async fn insert_many(tx: &mut sqlx::SqliteConnection, batch: &[Insert]) -> Result<i64, sqlx::Error> {
    let rows: Vec<serde_json::Value> = batch
        .iter()
        .map(|it| {
            let acl = acl_json(&it.acl);
            serde_json::json!([
                it.backend,
                it.object_type,
                it.id.to_string(),
                it.doc,
                it.now_ms,
                acl,
                it.acl.is_public_read(),
                it.parent.as_ref().map(|parent| parent.object_type.as_str()),
                it.parent.as_ref().map(|parent| parent.id.to_string()),
                it.author,
                it.request_id
            ])
        })
        .collect();
    let rows = serde_json::Value::Array(rows).to_string();
    sqlx::query(
        "INSERT INTO objects (backend, object_type, id, doc, created_ms, updated_ms, acl, public_read, parent_type,
                              parent_id)
         SELECT value ->> 0, value ->> 1, value ->> 2, jsonb(value ->> 3), value ->> 4, value ->> 4, value ->> 5,
                value ->> 6, value ->> 7, value ->> 8
         FROM json_each(?)",
    )
    .bind(&rows)
    .execute(&mut *tx)
    .await?;
    // The same rows, with the parent's ACL as it is in this transaction.
    let seqs: Vec<(i64,)> = sqlx::query_as(
        "INSERT INTO changes (backend, object_type, object_id, event, doc, acl, parent_acl, user_id, created_ms,
                              request_id)
         SELECT value ->> 0, value ->> 1, value ->> 2, 'create', value ->> 3, value ->> 5,
                (SELECT parent.acl FROM objects AS parent
                 WHERE parent.backend = value ->> 0 AND parent.object_type = value ->> 7 AND parent.id = value ->> 8),
                value ->> 9, value ->> 4, value ->> 10
         FROM json_each(?)
         RETURNING seq",
    )
    .bind(&rows)
    .fetch_all(&mut *tx)
    .await?;
    Ok(seqs.iter().map(|(seq,)| *seq).max().unwrap_or(0))
}
