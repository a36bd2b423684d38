//! The distributed store: every node of a cluster on one PostgreSQL database (`--database-url postgres://…`).
//!
//! Each write is one transaction that also records its change (`changes.rs`); every node follows the change log
//! (LISTEN/NOTIFY wakes it, the table gives order and catch-up), so a change made through one node reaches the
//! sockets, streams and webhooks of all. Nothing is cached between requests: another node may change any row.

use std::time::Duration;

use serde_json::{Map, Value};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use updraft_core::atomic;
use updraft_core::ids::ObjectId;
pub(crate) use updraft_core::timestamp::now_ms;

use crate::document::{self, new_document};
use crate::{
    Access, Acl, AclChange, Author, BoxFuture, ChangeEvent, Collection, ListQuery, ObjectRef, Patch, Permission, Store,
    StoreError,
};

mod catalog;
mod changes;
mod deletes;
mod files;
mod gateways;
mod group_commit;
mod groups;
mod import;
mod lists;
mod migrations;
mod params;
mod schemas;
mod search;
mod statistics;
mod tenants;
#[cfg(test)]
mod test_database;
mod users;
mod webhooks;

pub use import::{Copied, import_sqlite};
use migrations::migrate;
pub use migrations::migrate_url;
use params::{Param, Params};

#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// `postgres://user:password@host:port/database`.
    pub url: String,
    /// Connections this node keeps open at most.
    pub max_connections: u32,
    /// How long a claimed webhook delivery is its worker's alone (`postgres/webhooks.rs`): longer than any attempt
    /// takes, and as short as that allows, since a node that dies mid-attempt holds its deliveries this long.
    pub webhook_lease: Duration,
}

/// Standing changes a slow session task may fall behind by before it re-checks everyone instead.
const STANDING_BACKLOG: usize = 1024;

pub struct PostgresStore {
    pub(crate) pool: PgPool,
    /// Grows as changes commit, on this node or another; see `Changes::watch_changes`.
    pub(crate) committed: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
    /// Whether the follower is listening now; see `Changes::following`.
    pub(crate) following: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Where inserts of objects with no parent queue for their batch.
    inserts: group_commit::Inserts,
    /// Backends, schemas and key indexes, kept while the follower listens (`catalog.rs`).
    pub(crate) catalog: std::sync::Arc<catalog::Catalog>,
    /// Users' standing changed by any node, as the follower hears of it (`Changes::standing_changes`).
    pub(crate) standing: tokio::sync::broadcast::Sender<crate::StandingChange>,
    /// Saved gateways changed by any node, as the follower hears of it (`SavedGateways::gateway_changes`).
    pub(crate) gateway_changes: tokio::sync::broadcast::Sender<crate::GatewayChange>,
    /// How many webhooks exist (on any node's last count), so that the worker need not poll an empty queue.
    pub(crate) webhook_count: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// [`PostgresOptions::webhook_lease`], in milliseconds.
    pub(crate) webhook_lease_ms: i64,
    /// The change follower, the webhook counter and the statistics keeper, which end with the store.
    tasks: [tokio::task::JoinHandle<()>; 3],
}

impl PostgresStore {
    /// Connects, brings the schema up to date (one node at a time), and starts following the change log.
    pub async fn open(options: &PostgresOptions) -> Result<PostgresStore, StoreError> {
        let connect: PgConnectOptions =
            options.url.parse().map_err(|err| StoreError::Database(format!("invalid database URL: {err}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(2))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(connect)
            .await?;
        migrate(&pool).await?;
        schemas::drop_abandoned_builds(&pool).await?;
        let (latest,): (i64,) = sqlx::query_as("SELECT coalesce(max(seq), 0) FROM changes").fetch_one(&pool).await?;
        let committed = std::sync::Arc::new(tokio::sync::watch::Sender::new(latest.max(0) as u64));
        let following = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let webhook_count = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let catalog = std::sync::Arc::new(catalog::Catalog::default());
        let standing = tokio::sync::broadcast::Sender::new(STANDING_BACKLOG);
        let gateway_changes = tokio::sync::broadcast::Sender::new(STANDING_BACKLOG);
        let heard = changes::Heard {
            committed: committed.clone(),
            following: following.clone(),
            catalog: catalog.clone(),
            standing: standing.clone(),
            gateways: gateway_changes.clone(),
        };
        let tasks = [
            tokio::spawn(changes::follow(pool.clone(), heard)),
            tokio::spawn(webhooks::count_webhooks_now_and_then(pool.clone(), webhook_count.clone(), committed.clone())),
            tokio::spawn(statistics::keep_statistics(pool.clone())),
        ];
        let inserts = group_commit::Inserts::start(pool.clone(), committed.clone());
        let store = PostgresStore {
            pool,
            committed,
            following,
            webhook_count,
            inserts,
            catalog,
            standing,
            gateway_changes,
            webhook_lease_ms: i64::try_from(options.webhook_lease.as_millis()).unwrap_or(i64::MAX),
            tasks,
        };
        store.count_webhooks().await?;
        Ok(store)
    }

    pub async fn close(&self) {
        self.tasks.iter().for_each(tokio::task::JoinHandle::abort);
        self.pool.close().await;
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.tasks.iter().for_each(tokio::task::JoinHandle::abort);
    }
}

/// Names that reach SQL text (DDL): checked here again, whatever the caller validated.
pub(crate) fn plain(text: &str) -> bool {
    crate::sqlite::plain(text)
}

pub(crate) use crate::stored_acl::{from_value as parse_acl, to_value as acl_json};

fn parse_doc(value: Value) -> Result<Map<String, Value>, StoreError> {
    match value {
        Value::Object(doc) => Ok(doc),
        _ => Err(StoreError::Database("a stored document is not a JSON object".into())),
    }
}

/// A SQL condition over the row `objects` (so named in the query) that the caller may read it, with its one
/// bind (the subjects as `text[]`) pushed onto `params`. `admin` implies `read`, and an object that extends its
/// parent's ACL is readable by whoever may read the parent.
pub(crate) fn readable(access: Access<'_>, params: &mut Params) -> String {
    let Access::Subjects(subjects) = access else { return "true".to_owned() };
    if subjects.is_empty() {
        return "false".to_owned();
    }
    let mine = params.push(Param::Texts(subjects.iter().map(ToString::to_string).collect()));
    let listed = |row: &str| {
        format!("({row}.public_read OR ({row}.acl -> 'read') ?| {mine} OR ({row}.acl -> 'admin') ?| {mine})")
    };
    format!(
        "({} OR (objects.parent_id IS NOT NULL AND EXISTS (SELECT 1 FROM objects AS parent \
         WHERE parent.backend = objects.backend AND parent.object_type = objects.parent_type \
         AND parent.id = objects.parent_id AND {})))",
        listed("objects"),
        listed("parent")
    )
}

/// The only unique constraint on documents is the username of users.
fn unique_violation(err: sqlx::Error) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Taken { property: "username" },
        _ => err.into(),
    }
}

/// Tells this node's change watchers that changes up to `seq` committed.
pub(crate) fn announce(committed: &tokio::sync::watch::Sender<u64>, seq: i64) {
    committed.send_modify(|latest| *latest = (*latest).max(seq.max(0) as u64));
}

/// PostgreSQL text and JSONB cannot hold U+0000, which JSON allows: such a document is refused, not mangled.
fn storable(text: &str) -> Result<(), StoreError> {
    if text.contains("\\u0000") {
        return Err(StoreError::Invalid { message: "strings must not contain U+0000".into(), property: None });
    }
    Ok(())
}

/// Stores a new object's document, with its search row; answers the JSON text stored, for its change.
async fn insert_doc(
    tx: &mut sqlx::PgConnection,
    at: Collection<'_>,
    id: ObjectId,
    doc: &Map<String, Value>,
    now: i64,
    acl: &Acl,
    parent: Option<&ObjectRef>,
) -> Result<String, StoreError> {
    let text = serde_json::to_string(doc).map_err(|err| StoreError::Database(err.to_string()))?;
    storable(&text)?;
    sqlx::query(
        "INSERT INTO objects (backend, object_type, id, doc, created_ms, updated_ms, acl, public_read, parent_type,
                              parent_id)
         VALUES ($1, $2, $3, $4::jsonb, $5, $5, $6, $7, $8, $9)",
    )
    .bind(at.backend)
    .bind(at.object_type)
    .bind(id.to_string())
    .bind(&text)
    .bind(now)
    .bind(acl_json(acl))
    .bind(acl.is_public_read())
    .bind(parent.map(|p| p.object_type.as_str()))
    .bind(parent.map(|p| p.id.to_string()))
    .execute(&mut *tx)
    .await
    .map_err(unique_violation)?;
    search::index(tx, at.backend, at.object_type, &id.to_string(), doc).await?;
    Ok(text)
}

/// Applies `patch` to the object within `tx`; `None` when the caller cannot see it. Answers the object and the
/// `seq` of its change.
pub(crate) async fn update_in(
    tx: &mut sqlx::PgConnection,
    at: Collection<'_>,
    id: ObjectId,
    patch: Patch,
    author: Author<'_>,
    access: Access<'_>,
) -> Result<Option<(Value, i64)>, StoreError> {
    let Some(mut row) = changeable(tx, at, id, Permission::Update, access).await? else { return Ok(None) };
    // Clients drop notifications older than their copy: updatedAt must only grow.
    let updated = now_ms().max(row.updated_ms + 1);
    match patch {
        Patch::Merge(properties) => document::merge(&mut row.doc, properties, author, updated),
        Patch::Atomic(ops) => {
            atomic::apply(&mut row.doc, &ops)
                .map_err(|err| StoreError::Invalid { message: err.message, property: err.property })?;
            document::touch(&mut row.doc, author, updated);
        }
    }
    let doc = Value::Object(row.doc);
    let text = doc.to_string();
    storable(&text)?;
    let id = id.to_string();
    sqlx::query(
        "UPDATE objects SET doc = $1::jsonb, updated_ms = $2 WHERE backend = $3 AND object_type = $4 AND id = $5",
    )
    .bind(&text)
    .bind(updated)
    .bind(at.backend)
    .bind(at.object_type)
    .bind(&id)
    .execute(&mut *tx)
    .await
    .map_err(unique_violation)?;
    if let Value::Object(doc) = &doc {
        search::index(tx, at.backend, at.object_type, &id, doc).await?;
    }
    let change = changes::Recorded {
        backend: at.backend,
        object_type: at.object_type,
        id: &id,
        event: ChangeEvent::Update,
        doc: &text,
        acl: &row.acl,
        inherited: row.inherited.as_ref(),
        author,
    };
    let seq = changes::record(tx, change).await?;
    Ok(Some((doc, seq)))
}

type CurrentRow = (String, Value, i64, Value, Option<Value>);

/// One row as the writer sees it before changing it (locked by the writer's transaction).
pub(crate) struct Current {
    doc: Map<String, Value>,
    updated_ms: i64,
    acl: Acl,
    /// The parent's ACL, for an object that extends it.
    inherited: Option<Acl>,
}

impl Current {
    fn of(doc: Value, updated_ms: i64, acl: Value, inherited: Option<Value>) -> Result<Current, StoreError> {
        Ok(Current {
            doc: parse_doc(doc)?,
            updated_ms,
            acl: parse_acl(&acl),
            inherited: inherited.as_ref().map(parse_acl),
        })
    }

    pub(crate) fn allows(&self, permission: Permission, access: Access<'_>) -> bool {
        access.permits(&self.acl, permission)
            || self.inherited.as_ref().is_some_and(|acl| access.permits(acl, permission))
    }
}

/// The row, locked (`FOR UPDATE`) when `lock`: two nodes updating one object take turns, each reading what the
/// other wrote.
pub(crate) async fn current(
    conn: &mut sqlx::PgConnection,
    at: Collection<'_>,
    id: ObjectId,
    lock: bool,
) -> Result<Option<Current>, StoreError> {
    let sql = format!(
        "SELECT o.id, o.doc, o.updated_ms, o.acl, parent.acl FROM objects AS o
         LEFT JOIN objects AS parent
           ON parent.backend = o.backend AND parent.object_type = o.parent_type AND parent.id = o.parent_id
         WHERE o.backend = $1 AND o.object_type = $2 AND o.id = $3{}",
        if lock { " FOR UPDATE OF o" } else { "" }
    );
    let row: Option<CurrentRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(at.backend)
        .bind(at.object_type)
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|(_, doc, updated_ms, acl, inherited)| Current::of(doc, updated_ms, acl, inherited)).transpose()
}

/// The row a change is about, if the caller may make it: `None` for an object the caller cannot see,
/// `Forbidden` for one it sees without `permission`.
pub(crate) async fn changeable(
    tx: &mut sqlx::PgConnection,
    at: Collection<'_>,
    id: ObjectId,
    permission: Permission,
    access: Access<'_>,
) -> Result<Option<Current>, StoreError> {
    let Some(row) = current(tx, at, id, true).await? else { return Ok(None) };
    if !row.allows(Permission::Read, access) {
        return Ok(None);
    }
    if !row.allows(permission, access) {
        return Err(StoreError::Forbidden);
    }
    Ok(Some(row))
}

impl Store for PostgresStore {
    fn insert_inheriting<'a>(
        &'a self,
        at: Collection<'a>,
        properties: Map<String, Value>,
        author: Author<'a>,
        acl: Acl,
        parent: Option<ObjectRef>,
    ) -> BoxFuture<'a, Result<Value, StoreError>> {
        Box::pin(async move {
            let id = ObjectId::generate();
            let now = now_ms();
            let doc = new_document(at, id, properties, author, now);
            let acl = acl.resolve_creator(author.user);
            if parent.is_none() {
                let text = serde_json::to_string(&doc).map_err(|err| StoreError::Database(err.to_string()))?;
                storable(&text)?;
                let (pending, answer) = group_commit::pending(at, id.to_string(), doc, text, now, acl, author);
                // The document comes back from the queue only as the caller's answer: keep a copy to answer with.
                let doc = pending.doc.clone();
                self.inserts.insert(pending, answer).await?;
                return Ok(Value::Object(doc));
            }
            let mut tx = self.pool.begin().await?;
            let text = insert_doc(&mut tx, at, id, &doc, now, &acl, parent.as_ref()).await?;
            let inherited = match &parent {
                Some(parent) => {
                    let at = Collection { backend: at.backend, object_type: &parent.object_type };
                    current(&mut tx, at, parent.id, false).await?.map(|row| row.acl)
                }
                None => None,
            };
            let id = id.to_string();
            let change = changes::Recorded {
                backend: at.backend,
                object_type: at.object_type,
                id: &id,
                event: ChangeEvent::Create,
                doc: &text,
                acl: &acl,
                inherited: inherited.as_ref(),
                author,
            };
            let seq = changes::record(&mut tx, change).await?;
            tx.commit().await?;
            announce(&self.committed, seq);
            Ok(Value::Object(doc))
        })
    }

    fn get<'a>(
        &'a self,
        at: Collection<'a>,
        id: ObjectId,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<Option<Value>, StoreError>> {
        Box::pin(async move {
            let mut params = Params::new(vec![
                Param::Text(at.backend.to_owned()),
                Param::Text(at.object_type.to_owned()),
                Param::Text(id.to_string()),
            ]);
            let allowed = readable(access, &mut params);
            let sql =
                format!("SELECT doc FROM objects WHERE backend = $1 AND object_type = $2 AND id = $3 AND {allowed}");
            let row: Option<(Value,)> = params.query_as(&sql).fetch_optional(&self.pool).await?;
            row.map(|(doc,)| parse_doc(doc).map(Value::Object)).transpose()
        })
    }

    fn get_many<'a>(
        &'a self,
        backend: &'a str,
        refs: &'a [ObjectRef],
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<Vec<Value>, StoreError>> {
        Box::pin(async move {
            if refs.is_empty() {
                return Ok(Vec::new());
            }
            let mut params = Params::new(vec![
                Param::Text(backend.to_owned()),
                Param::Texts(refs.iter().map(|it| it.object_type.clone()).collect()),
                Param::Texts(refs.iter().map(|it| it.id.to_string()).collect()),
            ]);
            let allowed = readable(access, &mut params);
            // Each ref is a primary key lookup.
            let sql = format!(
                "SELECT objects.doc FROM (SELECT DISTINCT * FROM unnest($2::text[], $3::text[]) AS w (object_type, id))
                 AS wanted JOIN objects ON objects.backend = $1 AND objects.object_type = wanted.object_type
                 AND objects.id = wanted.id WHERE {allowed}"
            );
            let rows: Vec<(Value,)> = params.query_as(&sql).fetch_all(&self.pool).await?;
            rows.into_iter().map(|(doc,)| parse_doc(doc).map(Value::Object)).collect()
        })
    }

    fn update<'a>(
        &'a self,
        at: Collection<'a>,
        id: ObjectId,
        patch: Patch,
        author: Author<'a>,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<Option<Value>, StoreError>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            let updated = update_in(&mut tx, at, id, patch, author, access).await?;
            tx.commit().await?;
            Ok(updated.map(|(doc, seq)| {
                announce(&self.committed, seq);
                doc
            }))
        })
    }

    fn delete<'a>(
        &'a self,
        at: Collection<'a>,
        id: ObjectId,
        author: Author<'a>,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<Option<Value>, StoreError>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            let Some(row) = changeable(&mut tx, at, id, Permission::Delete, access).await? else { return Ok(None) };
            let doc = row.doc.clone();
            let seq = deletes::delete_with_dependents(&mut tx, at, id.to_string(), row, author).await?;
            tx.commit().await?;
            announce(&self.committed, seq);
            Ok(Some(Value::Object(doc)))
        })
    }

    fn acl<'a>(
        &'a self,
        at: Collection<'a>,
        id: ObjectId,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<Option<Acl>, StoreError>> {
        Box::pin(async move {
            let mut conn = self.pool.acquire().await?;
            let row = current(&mut conn, at, id, false).await?;
            Ok(row.filter(|row| row.allows(Permission::Read, access)).map(|row| row.acl))
        })
    }

    fn change_acl<'a>(
        &'a self,
        at: Collection<'a>,
        id: ObjectId,
        change: AclChange,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<Option<Acl>, StoreError>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            let Some(row) = changeable(&mut tx, at, id, Permission::Admin, access).await? else { return Ok(None) };
            let mut acl = row.acl;
            change.apply(&mut acl);
            sqlx::query(
                "UPDATE objects SET acl = $1, public_read = $2 WHERE backend = $3 AND object_type = $4 AND id = $5",
            )
            .bind(acl_json(&acl))
            .bind(acl.is_public_read())
            .bind(at.backend)
            .bind(at.object_type)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(Some(acl))
        })
    }

    fn list<'a>(
        &'a self,
        at: Collection<'a>,
        query: ListQuery<'a>,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<Vec<Value>, StoreError>> {
        Box::pin(async move { self.list_page(at, query, access).await })
    }

    fn count<'a>(
        &'a self,
        at: Collection<'a>,
        filter: &'a updraft_query::Filter,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move { self.count_rows(at, filter, access).await })
    }

    fn explain<'a>(
        &'a self,
        at: Collection<'a>,
        query: ListQuery<'a>,
        count: bool,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<crate::QueryPlan, StoreError>> {
        Box::pin(async move { self.explain_plan(at, query, count, access).await })
    }
}
