//! Group commit for inserts: concurrent inserts share one transaction, so one WAL fsync makes a
//! whole batch durable instead of one insert each. Each caller still hears back only after the
//! commit, so nothing is acknowledged before it is on disk.
//!
//! A batch is written on a rusqlite connection of its own, on a thread of its own. Through sqlx every statement,
//! and every row it answers, is a hand-off to the connection's thread and back; under 32 concurrent writers on
//! one core those hand-offs cost about as much as the SQLite work. Here a batch costs one hand-off each way, and
//! with none per statement, one prepared INSERT per row is cheaper than one statement over a JSON array of the
//! rows (no JSON to build, parse and take apart again).
//!
//! The sqlx writer stays the one other writer, and a batch holds it (taken from its pool, unused) while it writes,
//! so that the two never contend for SQLite's write lock: nobody sleeps in a busy handler, and no deferred
//! transaction of the sqlx side finds that a batch committed between its read and its write. Changes are thus
//! recorded (`seq`) in the order their transactions commit, and a batch records its own in its inserts' order.
//!
//! Batches grow with the load, with no timer: before a batch closes, the committer lets the tasks that are ready
//! to run go first, so the inserts they are about to make join it instead of waiting through its commit.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, TransactionBehavior, params};
use sqlx::SqlitePool;
use tokio::sync::{mpsc, oneshot, watch};
use updraft_core::ids::ObjectId;

use super::{acl_json, announce};
use crate::{Acl, ObjectRef, StoreError, USERS};

/// Inserts waiting beyond this many make callers wait (backpressure), not memory grow.
const QUEUE: usize = 4096;
/// The most inserts one transaction takes.
const MAX_BATCH: usize = 512;

/// The statements of a batch, per insert. `examples/insert_floor.rs` measures the same ones on their own.
pub const INSERT_OBJECT: &str = "INSERT INTO objects (backend, object_type, id, doc, created_ms, updated_ms, acl,
                                                  public_read, parent_type, parent_id)
     VALUES (?1, ?2, ?3, jsonb(?4), ?5, ?5, ?6, ?7, ?8, ?9)";
/// With the parent's ACL as it is in this transaction.
pub const INSERT_CHANGE: &str = "INSERT INTO changes (backend, object_type, object_id, event, doc, acl, parent_acl,
                                                  user_id, created_ms, request_id)
     VALUES (?1, ?2, ?3, 'create', ?4, ?6,
             (SELECT parent.acl FROM objects AS parent
              WHERE parent.backend = ?1 AND parent.object_type = ?7 AND parent.id = ?8),
             ?9, ?5, ?10)";

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

/// A batch for the writing thread, which answers its callers and then says it is done.
struct Job {
    batch: Vec<Insert>,
    written: oneshot::Sender<()>,
}

/// Starts the committer; it stops when the returned sender is dropped.
pub(crate) fn start(writer: SqlitePool, committed: Arc<watch::Sender<u64>>) -> mpsc::Sender<Insert> {
    let (tx, rx) = mpsc::channel(QUEUE);
    let (jobs, to_write) = std::sync::mpsc::channel();
    let path = writer.connect_options().get_filename().to_owned();
    std::thread::Builder::new()
        .name("updraft-inserts".into())
        .spawn(move || write_batches(&path, to_write, &committed))
        .expect("the insert thread starts");
    tokio::spawn(run(writer, rx, jobs));
    tx
}

async fn run(writer: SqlitePool, mut rx: mpsc::Receiver<Insert>, jobs: std::sync::mpsc::Sender<Job>) {
    loop {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        gather(&mut rx, &mut batch).await;
        let held = match writer.acquire().await {
            Ok(held) => held,
            Err(err) => {
                let message = err.to_string();
                for insert in batch {
                    let _ = insert.done.send(Err(StoreError::Database(message.clone())));
                }
                if writer.is_closed() {
                    return;
                }
                continue;
            }
        };
        let (written, done) = oneshot::channel();
        // Gone only if the thread panicked: the callers of this batch and the next then hear the store closed.
        if jobs.send(Job { batch, written }).is_err() {
            return;
        }
        let _ = done.await;
        drop(held);
    }
}

/// Lets the tasks that are ready to run go first, and takes the inserts they made; again while that brings more.
/// No timer: a lone insert waits one turn of the scheduler.
async fn gather(rx: &mut mpsc::Receiver<Insert>, batch: &mut Vec<Insert>) {
    while batch.len() < MAX_BATCH {
        let before = batch.len();
        tokio::task::yield_now().await;
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(insert) => batch.push(insert),
                Err(_) => break,
            }
        }
        if batch.len() == before {
            return;
        }
    }
}

/// The writing thread: commits each batch, then answers its callers.
fn write_batches(path: &Path, jobs: std::sync::mpsc::Receiver<Job>, committed: &watch::Sender<u64>) {
    let mut conn = None;
    for Job { batch, written } in jobs {
        let started = Instant::now();
        let results = match open(&mut conn, path) {
            Ok(conn) => commit(conn, &batch),
            Err(err) => fail_all(&batch, &err),
        };
        tracing::debug!(inserts = batch.len(), commit_us = started.elapsed().as_micros() as u64, "group commit");
        if let Some(&seq) = results.iter().filter_map(|result| result.as_ref().ok()).max() {
            announce(committed, seq);
        }
        for (insert, result) in batch.into_iter().zip(results) {
            let _ = insert.done.send(result.map(|_| ()));
        }
        let _ = written.send(());
    }
}

/// The connection, opened on first use (and again after a failure to open): settings as the sqlx writer's.
fn open<'a>(conn: &'a mut Option<Connection>, path: &Path) -> rusqlite::Result<&'a mut Connection> {
    if conn.is_none() {
        *conn = Some(open_writer(path)?);
    }
    Ok(conn.as_mut().expect("opened above"))
}

/// A rusqlite connection that writes with the sqlx writer's settings.
pub(super) fn open_writer(path: &Path) -> rusqlite::Result<Connection> {
    let opened =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    // A commit returns once its WAL frames are on disk.
    opened.pragma_update(None, "journal_mode", "WAL")?;
    opened.pragma_update(None, "synchronous", "FULL")?;
    opened.pragma_update(None, "journal_size_limit", super::WAL_SIZE_LIMIT)?;
    opened.pragma_update(None, "foreign_keys", "ON")?;
    opened.busy_timeout(Duration::from_secs(5))?;
    Ok(opened)
}

fn fail_all(batch: &[Insert], err: &impl ToString) -> Vec<Result<i64, StoreError>> {
    let message = err.to_string();
    batch.iter().map(|_| Err(StoreError::Database(message.clone()))).collect()
}

/// One transaction for the batch; each insert that went in answers the `seq` of its change. Users go in alone, in
/// a savepoint, so that a taken username undoes and fails only its own insert; the inserts between them, which no
/// unique constraint can fail, go in together.
fn commit(conn: &mut Connection, batch: &[Insert]) -> Vec<Result<i64, StoreError>> {
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(err) => return fail_all(batch, &err),
    };
    // The batch's search rows are written at its end, in one statement a table (migration 0064).
    if let Err(err) = tx.execute("INSERT INTO search_batch (open) VALUES (1)", []) {
        return fail_all(batch, &err);
    }
    let mut results = Vec::with_capacity(batch.len());
    let mut searched = SearchBatch::default();
    for run in batch.chunk_by(|a, b| a.object_type != USERS && b.object_type != USERS) {
        if run.len() == 1 {
            let alone = tx.savepoint().map_err(database).and_then(|savepoint| {
                let seqs = insert_run(&savepoint, run, &mut searched)?;
                savepoint.commit().map_err(database)?;
                Ok(seqs[0])
            });
            results.push(alone);
        } else {
            match insert_run(&tx, run, &mut searched) {
                Ok(seqs) => results.extend(seqs.into_iter().map(Ok)),
                Err(err) => return fail_all(batch, &err),
            }
        }
    }
    if let Err(err) = searched.index(&tx) {
        return fail_all(batch, &err);
    }
    match tx.commit() {
        Ok(()) => results,
        Err(err) => fail_all(batch, &err),
    }
}

/// The objects of a batch to index for search.
#[derive(Default)]
struct SearchBatch {
    /// Of objects of collections with searched properties only.
    rowids: Vec<i64>,
    /// Whether each collection of the batch has searched properties, asked once a collection.
    collections: Vec<(String, String, bool)>,
}

impl SearchBatch {
    /// Keeps the rowid of the object `insert` just inserted if its collection is searched.
    fn note(&mut self, conn: &Connection, insert: &Insert) -> rusqlite::Result<()> {
        let known = self.collections.iter().find(|(b, t, _)| *b == insert.backend && *t == insert.object_type);
        let searched = match known {
            Some((_, _, searched)) => *searched,
            None => {
                let searched = conn
                    .prepare_cached(super::search::COLLECTION_SEARCHED)?
                    .query_row([&insert.backend, &insert.object_type], |row| row.get(0))?;
                self.collections.push((insert.backend.clone(), insert.object_type.clone(), searched));
                searched
            }
        };
        if searched {
            self.rowids.push(conn.last_insert_rowid());
        }
        Ok(())
    }

    /// Writes the search rows of the batch's objects (a rowid of an insert that its savepoint undid names no row,
    /// or a later one of the batch), and closes the batch for the insert trigger.
    fn index(&self, conn: &Connection) -> rusqlite::Result<()> {
        if !self.rowids.is_empty() {
            let rowids = serde_json::to_string(&self.rowids).unwrap_or_else(|_| "[]".to_owned());
            for statement in super::search::batch_statements() {
                conn.prepare_cached(&statement)?.execute([&rowids])?;
            }
        }
        conn.execute("DELETE FROM search_batch", [])?;
        Ok(())
    }
}

/// The run's objects, then their changes, in the run's order; answers each change's `seq` and adds the rowid of
/// each object of a searched collection to `searched`.
fn insert_run(conn: &Connection, run: &[Insert], searched: &mut SearchBatch) -> Result<Vec<i64>, StoreError> {
    let mut objects = conn.prepare_cached(INSERT_OBJECT).map_err(database)?;
    for it in run {
        let parent = it.parent.as_ref();
        objects
            .execute(params![
                it.backend,
                it.object_type,
                it.id.to_string(),
                it.doc,
                it.now_ms,
                acl_json(&it.acl),
                it.acl.is_public_read(),
                parent.map(|parent| parent.object_type.as_str()),
                parent.map(|parent| parent.id.to_string()),
            ])
            .map_err(unique_violation)?;
        searched.note(conn, it).map_err(database)?;
    }
    let mut changes = conn.prepare_cached(INSERT_CHANGE).map_err(database)?;
    let mut seqs = Vec::with_capacity(run.len());
    for it in run {
        let parent = it.parent.as_ref();
        let seq = changes
            .insert(params![
                it.backend,
                it.object_type,
                it.id.to_string(),
                it.doc,
                it.now_ms,
                acl_json(&it.acl),
                parent.map(|parent| parent.object_type.as_str()),
                parent.map(|parent| parent.id.to_string()),
                it.author,
                it.request_id,
            ])
            .map_err(database)?;
        seqs.push(seq);
    }
    Ok(seqs)
}

fn database(err: rusqlite::Error) -> StoreError {
    StoreError::Database(err.to_string())
}

/// The only unique constraint on documents is the username of users.
fn unique_violation(err: rusqlite::Error) -> StoreError {
    let unique = [rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE, rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY];
    match &err {
        rusqlite::Error::SqliteFailure(failure, _) if unique.contains(&failure.extended_code) => {
            StoreError::Taken { property: "username" }
        }
        _ => database(err),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::{Map, Value, json};

    use super::super::{SqliteOptions, SqliteStore};
    use crate::{Acl, Author, Changes, Collection, Store, StoreError, USERS};

    const TODOS: Collection<'static> = Collection { backend: "b", object_type: "objects.todos" };
    const USERS_OF_B: Collection<'static> = Collection { backend: "b", object_type: USERS };

    async fn open(dir: &tempfile::TempDir) -> Arc<SqliteStore> {
        let options = SqliteOptions { path: dir.path().join("eds.sqlite3"), readers: 2 };
        Arc::new(SqliteStore::open(&options).await.unwrap())
    }

    fn props(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    /// On this single-threaded runtime the inserts are all queued before the committer runs: one batch, which
    /// records its changes in the order the inserts came, fails only the insert whose username is taken, and
    /// answers each only once its object is committed (another connection sees it).
    #[tokio::test]
    async fn a_batch_keeps_its_order_fails_alone_and_answers_after_its_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir).await;
        store.insert(USERS_OF_B, props(json!({"username": "john"})), Author::default(), Acl::default()).await.unwrap();
        let after = store.latest_change().await.unwrap();
        let inserts = [
            (TODOS, json!({"n": 0})),
            (USERS_OF_B, json!({"username": "jane", "n": 1})),
            (USERS_OF_B, json!({"username": "john", "n": 2})),
            (TODOS, json!({"n": 3})),
            (TODOS, json!({"n": 4})),
            (USERS_OF_B, json!({"username": "jack", "n": 5})),
            (TODOS, json!({"n": 6})),
        ];
        let tasks: Vec<_> = inserts
            .into_iter()
            .map(|(at, body)| {
                let store = store.clone();
                tokio::spawn(async move { store.insert(at, props(body), Author::default(), Acl::default()).await })
            })
            .collect();
        let elsewhere = rusqlite::Connection::open(dir.path().join("eds.sqlite3")).unwrap();
        for (n, task) in tasks.into_iter().enumerate() {
            match task.await.unwrap() {
                Ok(doc) => {
                    let committed: i64 = elsewhere
                        .query_row("SELECT count(*) FROM objects WHERE id = ?", [doc["id"].as_str()], |row| row.get(0))
                        .unwrap();
                    assert_eq!(committed, 1, "insert {n} was answered before its commit");
                }
                Err(err) => {
                    assert_eq!(n, 2, "only the taken username fails, not {n}: {err:?}");
                    assert!(matches!(err, StoreError::Taken { property: "username" }), "{err:?}");
                }
            }
        }
        let changes = store.changes_after(after, 100).await.unwrap();
        let order: Vec<i64> = changes.iter().map(|change| change.object["n"].as_i64().unwrap()).collect();
        assert_eq!(order, [0, 1, 3, 4, 5, 6]);
        let johns: i64 = elsewhere
            .query_row("SELECT count(*) FROM objects WHERE doc ->> '$.username' = 'john'", [], |row| row.get(0))
            .unwrap();
        assert_eq!(johns, 1);
    }

    /// Batches hold the sqlx writer while they write: a transaction of its that reads and then writes never finds
    /// that a batch committed in between (SQLite would refuse its write, busy handler or not).
    #[tokio::test]
    async fn a_batch_waits_for_a_transaction_of_the_sqlx_writer() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir).await;
        let mut tx = store.writer.begin().await.unwrap();
        let (before,): (i64,) = sqlx::query_as("SELECT count(*) FROM objects").fetch_one(&mut *tx).await.unwrap();
        let insert = tokio::spawn({
            let store = store.clone();
            async move { store.insert(TODOS, Map::new(), Author::default(), Acl::default()).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(!insert.is_finished(), "the batch waits for the writer");
        sqlx::query("INSERT INTO tokens (hash, subject, expires_ms) VALUES ('h', 's', 0)")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        insert.await.unwrap().unwrap();
        let (after,): (i64,) = sqlx::query_as("SELECT count(*) FROM objects").fetch_one(&store.writer).await.unwrap();
        assert_eq!(after, before + 1);
    }
}
