//! Group commit for inserts: concurrent inserts of this node share one transaction.
//!
//! Alone, an insert is seven round trips and a commit, and it holds the change log's lock (`changes.rs`) through
//! its commit's WAL flush, so inserts committed one at a time. A batch takes its rows in one statement per table,
//! the lock once and the flush once. Each caller still hears back only after the commit, so nothing is
//! acknowledged before it is durable.
//!
//! Two committers take batches from one queue: while one holds the change lock through its commit, the other
//! writes its rows. Batches grow with the load, with no timer: a committer takes whatever queued while the
//! previous batch ran.
//!
//! A batch that fails (one insert breaking a rule the database checks, such as a taken username, or a lost
//! connection) is rolled back whole, and its inserts are then made one by one, each answered with its own result:
//! one bad insert fails alone, and none is made twice.

use std::sync::Arc;

use serde_json::{Map, Value};
use sqlx::postgres::PgPool;
use tokio::sync::{Mutex, mpsc, oneshot, watch};

use super::{acl_json, announce, changes, search};
use crate::{Acl, Author, Collection, StoreError};

/// Inserts waiting beyond this many make callers wait (backpressure), not memory grow.
const QUEUE: usize = 4096;
/// The most inserts one transaction takes.
const MAX_BATCH: usize = 256;
/// Committers taking batches from the queue, each with a transaction of its own at a time.
const COMMITTERS: usize = 2;

/// One insert waiting for its batch; the document is checked storable already.
pub(crate) struct Pending {
    pub backend: String,
    pub object_type: String,
    pub id: String,
    pub doc: Map<String, Value>,
    /// `doc` as JSON text.
    pub text: String,
    pub now_ms: i64,
    pub acl: Acl,
    pub user: Option<String>,
    pub request_id: Option<String>,
    /// Answers the change's `seq` once committed.
    pub done: oneshot::Sender<Result<i64, StoreError>>,
}

/// Where inserts queue for their batch.
#[derive(Clone)]
pub(crate) struct Inserts {
    queue: mpsc::Sender<Pending>,
}

impl Inserts {
    /// Starts the committers; they end when every `Inserts` is gone or the pool closes.
    pub(crate) fn start(pool: PgPool, committed: Arc<watch::Sender<u64>>) -> Inserts {
        let (queue, receiver) = mpsc::channel(QUEUE);
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..COMMITTERS {
            tokio::spawn(commit_batches(pool.clone(), committed.clone(), receiver.clone()));
        }
        Inserts { queue }
    }

    /// Queues `insert` and waits for its commit; answers the change's `seq`.
    pub(crate) async fn insert(
        &self,
        insert: Pending,
        done: oneshot::Receiver<Result<i64, StoreError>>,
    ) -> Result<i64, StoreError> {
        let closed = || StoreError::Database("the store is closing".into());
        self.queue.send(insert).await.map_err(|_| closed())?;
        done.await.map_err(|_| closed())?
    }
}

async fn commit_batches(
    pool: PgPool,
    committed: Arc<watch::Sender<u64>>,
    receiver: Arc<Mutex<mpsc::Receiver<Pending>>>,
) {
    loop {
        let mut batch = Vec::new();
        {
            let mut receiver = receiver.lock().await;
            if receiver.recv_many(&mut batch, MAX_BATCH).await == 0 || pool.is_closed() {
                return;
            }
        }
        match write_batch(&pool, &batch).await {
            Ok(seqs) => {
                if let Some(latest) = seqs.iter().max() {
                    announce(&committed, *latest);
                }
                for (insert, seq) in batch.into_iter().zip(seqs) {
                    let _ = insert.done.send(Ok(seq));
                }
            }
            Err(err) => {
                if batch.len() > 1 {
                    tracing::debug!(error = %err, inserts = batch.len(), "a batch of inserts failed; making them one by one");
                }
                for insert in batch {
                    let result = write_batch(&pool, std::slice::from_ref(&insert)).await;
                    if let Ok([seq]) = result.as_deref() {
                        announce(&committed, *seq);
                    }
                    let _ = insert.done.send(result.map(|seqs| seqs[0]));
                }
            }
        }
    }
}

/// Writes `batch` in one transaction; answers each insert's `seq`, in order.
async fn write_batch(pool: &PgPool, batch: &[Pending]) -> Result<Vec<i64>, StoreError> {
    // Columns borrow the pending inserts: a batch's documents are not copied again to be bound.
    let column = |get: fn(&Pending) -> &str| batch.iter().map(get).collect::<Vec<&str>>();
    let backends = column(|it| &it.backend);
    let types = column(|it| &it.object_type);
    let ids = column(|it| &it.id);
    let docs = column(|it| &it.text);
    let acls: Vec<String> = batch.iter().map(|it| acl_json(&it.acl).to_string()).collect();
    let times: Vec<i64> = batch.iter().map(|it| it.now_ms).collect();
    let public: Vec<bool> = batch.iter().map(|it| it.acl.is_public_read()).collect();
    let users: Vec<Option<&str>> = batch.iter().map(|it| it.user.as_deref()).collect();
    let requests: Vec<Option<&str>> = batch.iter().map(|it| it.request_id.as_deref()).collect();

    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO objects (backend, object_type, id, doc, created_ms, updated_ms, acl, public_read)
         SELECT b, t, i, d::jsonb, c, c, a::jsonb, p
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::text[], $7::bool[])
              AS u(b, t, i, d, c, a, p)",
    )
    .bind(&backends)
    .bind(&types)
    .bind(&ids)
    .bind(&docs)
    .bind(&times)
    .bind(&acls)
    .bind(&public)
    .execute(&mut *tx)
    .await
    .map_err(super::unique_violation)?;
    let mut collections: Vec<(&str, &str)> = batch.iter().map(|it| (&*it.backend, &*it.object_type)).collect();
    collections.sort_unstable();
    collections.dedup();
    for (backend, object_type) in collections {
        let at = Collection { backend, object_type };
        let rows = batch.iter().filter(|it| it.backend == backend && it.object_type == object_type);
        search::index_many(&mut tx, at, rows.map(|it| (&*it.id, &it.doc))).await?;
    }
    let seqs = changes::record_creates(
        &mut tx,
        changes::Creates {
            backends: &backends,
            object_types: &types,
            ids: &ids,
            docs: &docs,
            acls: &acls,
            users: &users,
            request_ids: &requests,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(seqs)
}

/// What `insert_inheriting` queues for an object with no parent.
pub(crate) fn pending(
    at: Collection<'_>,
    id: String,
    doc: Map<String, Value>,
    text: String,
    now_ms: i64,
    acl: Acl,
    author: Author<'_>,
) -> (Pending, oneshot::Receiver<Result<i64, StoreError>>) {
    let (done, answer) = oneshot::channel();
    let pending = Pending {
        backend: at.backend.to_owned(),
        object_type: at.object_type.to_owned(),
        id,
        doc,
        text,
        now_ms,
        acl,
        user: author.user.map(str::to_owned),
        request_id: author.request_id.map(str::to_owned),
        done,
    };
    (pending, answer)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use serde_json::{Map, json};

    use super::super::test_database::TestDatabase;
    use crate::{Acl, Author, Changes, Collection, Store, StoreError};

    const BACKEND: &str = "5376019e698b3c6ad500095a";
    const NOTES: Collection<'static> = Collection { backend: BACKEND, object_type: "objects.notes" };
    const USERS: Collection<'static> = Collection { backend: BACKEND, object_type: crate::USERS };

    #[tokio::test]
    async fn concurrent_inserts_commit_together_and_one_taken_username_fails_alone() {
        let database = TestDatabase::create().await;
        let store = Arc::new(database.open().await);
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..300 {
            let store = store.clone();
            tasks.spawn(async move {
                let (at, properties) =
                    if n % 15 == 0 { (USERS, json!({"username": "ann"})) } else { (NOTES, json!({"n": n})) };
                let properties: Map<_, _> = properties.as_object().unwrap().clone();
                (at.object_type, store.insert(at, properties, Author::default(), Acl::default()).await)
            });
        }
        let (mut notes, mut users, mut taken) = (BTreeSet::new(), 0, 0);
        while let Some(joined) = tasks.join_next().await {
            match joined.unwrap() {
                ("objects.notes", Ok(doc)) => assert!(notes.insert(doc["id"].as_str().unwrap().to_owned())),
                (_, Ok(_)) => users += 1,
                (_, Err(StoreError::Taken { property: "username" })) => taken += 1,
                (_, Err(err)) => panic!("{err}"),
            }
        }
        assert_eq!((notes.len(), users, taken), (280, 1, 19), "every note made, and one ann");
        let changes = store.changes_after(0, 1000).await.unwrap();
        assert_eq!(changes.len(), 281, "one change each, none for a refused insert");
        assert!(changes.windows(2).all(|pair| pair[0].seq < pair[1].seq));
        let changed: BTreeSet<String> =
            changes.iter().filter(|c| c.object_type == "objects.notes").map(|c| c.object_id.clone()).collect();
        assert_eq!(changed, notes);
        assert_eq!(*store.watch_changes().borrow(), changes.last().unwrap().seq as u64, "announced");
        store.close().await;
    }
}
