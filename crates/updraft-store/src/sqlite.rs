//! The embedded store: one SQLite file in WAL mode, one writer connection, a few readers.
//!
//! `synchronous = FULL`: a write is acknowledged only once it is in the WAL on disk, so no
//! acknowledged write is lost to a crash or a power cut.

use std::path::PathBuf;
use std::time::Duration;

use rusqlite::OptionalExtension;
use serde_json::{Map, Value};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use updraft_core::atomic;
use updraft_core::ids::ObjectId;
pub(crate) use updraft_core::timestamp::now_ms;
use updraft_query::sqlite::Bind;

use crate::document::{self, new_document};
use crate::{
    Access, Acl, AclChange, Author, BoxFuture, ChangeEvent, Collection, ListQuery, ObjectRef, Patch, Permission, Store,
    StoreError, USERGROUPS, USERS,
};
use lists::{ListRead, Shape};

/// The rank and value of the array element `e` (a `jsonb_each` row), as `key_index_terms` gives a value.
macro_rules! element_key {
    () => {
        "CASE e.type WHEN 'integer' THEN 1 WHEN 'real' THEN 1 WHEN 'text' THEN 2 WHEN 'object' THEN 3
                     WHEN 'array' THEN 4 WHEN 'true' THEN 5 WHEN 'false' THEN 5 ELSE 0 END,
         CASE e.type WHEN 'object' THEN (CASE WHEN json_type(e.value, '$.id') IS 'text' THEN e.value ->> '$.id' END)
                     WHEN 'array' THEN NULL ELSE e.atom END"
    };
}

/// Fills `array_keys` for the indexed property `?3` of the collection `?1`, `?2` (see `schemas.rs`).
pub(crate) const ARRAY_KEYS_BACKFILL: &str = concat!(
    "INSERT INTO array_keys (backend, object_type, property, rank, value, id)
     SELECT o.backend, o.object_type, ?3, ",
    element_key!(),
    ", o.id
     FROM objects AS o, jsonb_each(o.doc, '$.' || ?3) AS e
     WHERE o.backend = ?1 AND o.object_type = ?2 AND json_type(o.doc, '$.' || ?3) IS 'array'"
);

/// The index of `objects` that orders a collection by one of its reserved columns (see
/// `updraft_query::sqlite::ordering_column`); made by the migrations below.
pub(crate) fn ordering_index(column: &str) -> &'static str {
    match column {
        "id" => "objects_by_id",
        "created_ms" => "objects_by_creation",
        "updated_ms" => "objects_by_update",
        _ => unreachable!("no reserved ordering column {column:?}"),
    }
}

#[derive(Debug, Clone)]
pub struct SqliteOptions {
    pub path: PathBuf,
    /// Connections serving reads; writes go through one connection.
    pub readers: u32,
}

pub struct SqliteStore {
    pub(crate) writer: SqlitePool,
    pub(crate) readers: SqlitePool,
    /// Point reads, list pages and counts; see `reads`.
    pub(crate) hot: std::sync::Arc<reads::Readers>,
    /// Every data request names its backend; backends change only through this store (created
    /// with their app, gone with it), so a cache of them is never stale.
    pub(crate) backends: std::sync::RwLock<std::collections::HashMap<String, crate::Backend>>,
    /// Schemas are read on every data request and change only through this store.
    pub(crate) schema_cache: std::sync::RwLock<schemas::SchemaCache>,
    inserts: tokio::sync::mpsc::Sender<group_commit::Insert>,
    /// Grows after every commit that recorded changes; see `Changes::watch_changes`.
    pub(crate) committed: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
    /// How many webhooks exist, so that the worker need not query the queue of a server that has none.
    pub(crate) webhook_count: std::sync::atomic::AtomicU64,
}

impl SqliteStore {
    /// Opens (creating if needed) the database and brings its schema up to date.
    pub async fn open(options: &SqliteOptions) -> Result<SqliteStore, StoreError> {
        let connect = SqliteConnectOptions::new()
            .filename(&options.path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true)
            .pragma("mmap_size", reads::MMAP_SIZE.to_string())
            .pragma("journal_size_limit", WAL_SIZE_LIMIT.to_string())
            // `$regex` filters compile to REGEXP, which SQLite leaves to the application.
            .with_regexp();
        // No ping before each use: the connection is in this process, and a ping is a round trip to its thread.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(connect.clone())
            .await?;
        migrate(&writer).await?;
        let readers = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(options.readers.max(1))
            .connect_with(connect.read_only(true))
            .await?;
        let hot = reads::Readers::open(&options.path)?;
        let (latest,): (i64,) = sqlx::query_as("SELECT coalesce(max(seq), 0) FROM changes").fetch_one(&writer).await?;
        let committed = std::sync::Arc::new(tokio::sync::watch::Sender::new(latest.max(0) as u64));
        let inserts = group_commit::start(writer.clone(), committed.clone());
        let (webhook_count,): (i64,) = sqlx::query_as("SELECT count(*) FROM webhooks").fetch_one(&writer).await?;
        // 0x10002: analyze now every table that has indexes and no statistics yet.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("{ANALYSIS_LIMIT}; PRAGMA optimize = 0x10002")))
            .execute(&writer)
            .await?;
        tokio::spawn(keep_statistics(writer.clone()));
        tokio::spawn(search::keep_merged(writer.clone()));
        tokio::spawn(tallies::keep_split(writer.clone(), options.path.clone()));
        Ok(SqliteStore {
            writer,
            readers,
            hot,
            backends: Default::default(),
            schema_cache: Default::default(),
            inserts,
            committed,
            webhook_count: std::sync::atomic::AtomicU64::new(webhook_count as u64),
        })
    }

    pub async fn close(&self) {
        self.readers.close().await;
        self.writer.close().await;
    }
}

/// ANALYZE reads about this many rows of each index: a few milliseconds, whatever the table's size.
const ANALYSIS_LIMIT: &str = "PRAGMA analysis_limit = 1000";

/// What the WAL file is cut back to once a checkpoint has emptied it. SQLite otherwise keeps it at its largest:
/// one index rebuilt over a million objects left 532 MB of WAL on disk for good.
pub(crate) const WAL_SIZE_LIMIT: i64 = 64 << 20;

/// Keeps the planner's statistics current as collections grow: without them SQLite guesses how many rows an
/// index range holds, and may walk a whole collection in creation order rather than read the few rows of an
/// index. `PRAGMA optimize` analyzes only the tables that changed enough since their last analysis. Ends with
/// the store (its writer pool closed).
async fn keep_statistics(writer: SqlitePool) {
    const EVERY: Duration = Duration::from_secs(60);
    loop {
        tokio::time::sleep(EVERY).await;
        if writer.is_closed() {
            return;
        }
        let optimize = format!("{ANALYSIS_LIMIT}; PRAGMA optimize");
        if let Err(err) = sqlx::raw_sql(sqlx::AssertSqlSafe(optimize)).execute(&writer).await {
            if writer.is_closed() {
                return;
            }
            tracing::warn!(error = %err, "updating the query planner's statistics failed");
        }
    }
}

async fn migrate(writer: &SqlitePool) -> Result<(), StoreError> {
    let mut tx = writer.begin().await?;
    let (version,): (i64,) = sqlx::query_as("PRAGMA user_version").fetch_one(&mut *tx).await?;
    for (step, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
        sqlx::query(*sql).execute(&mut *tx).await?;
        // PRAGMA takes no bound parameters; the value is our own integer.
        let set_version = format!("PRAGMA user_version = {}", step + 1);
        sqlx::query(sqlx::AssertSqlSafe(set_version)).execute(&mut *tx).await?;
    }
    schemas::upgrade_indexes(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

fn parse_doc(text: &str) -> Result<Map<String, Value>, StoreError> {
    match serde_json::from_str(text) {
        Ok(Value::Object(doc)) => Ok(doc),
        _ => Err(StoreError::Database("a stored document is not a JSON object".into())),
    }
}

async fn insert_doc(
    tx: &mut sqlx::SqliteConnection,
    at: Collection<'_>,
    id: ObjectId,
    text: &str,
    now: i64,
    acl: &Acl,
    parent: Option<&ObjectRef>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO objects (backend, object_type, id, doc, created_ms, updated_ms, acl, public_read, parent_type,
                              parent_id)
         VALUES (?, ?, ?, jsonb(?), ?, ?, ?, ?, ?, ?)",
    )
    .bind(at.backend)
    .bind(at.object_type)
    .bind(id.to_string())
    .bind(text)
    .bind(now)
    .bind(now)
    .bind(acl_json(acl))
    .bind(acl.is_public_read())
    .bind(parent.map(|p| p.object_type.as_str()))
    .bind(parent.map(|p| p.id.to_string()))
    .execute(&mut *tx)
    .await
    .map_err(unique_violation)?;
    Ok(())
}

/// The only unique constraint on documents is the username of users.
fn unique_violation(err: sqlx::Error) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Taken { property: "username" },
        _ => err.into(),
    }
}

/// Tells change watchers that changes up to `seq` committed (0: something else worth a look did). The watched
/// value is the latest `seq`, so a watcher with nobody to serve can keep up without reading the log.
pub(crate) fn announce(committed: &tokio::sync::watch::Sender<u64>, seq: i64) {
    committed.send_modify(|latest| *latest = (*latest).max(seq.max(0) as u64));
}

/// Names that reach SQL text (DDL, and the collection of a list query): checked here again, whatever the
/// caller validated.
pub(crate) fn plain(text: &str) -> bool {
    !text.is_empty() && text.len() <= 64 && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

/// `object_type = '<name>'` as literal SQL: the partial indexes of `indexed` properties name their collection
/// literally, and SQLite uses a partial index only when the query's WHERE implies the index's, which a bound
/// parameter cannot show.
fn collection_literal(object_type: &str) -> Result<String, StoreError> {
    if !plain(object_type) {
        return Err(StoreError::Invalid { message: format!("invalid object type {object_type:?}"), property: None });
    }
    Ok(format!("object_type = '{object_type}'"))
}

/// The stored form of an ACL (`stored_acl`), as text.
pub(crate) fn acl_json(acl: &Acl) -> String {
    crate::stored_acl::to_value(acl).to_string()
}

pub(crate) fn parse_acl(text: &str) -> Acl {
    crate::stored_acl::from_value(&serde_json::from_str(text).unwrap_or(Value::Null))
}

/// A SQL condition, over a row of `objects`, that the caller may read it; with its binds. `admin` implies
/// `read`, and an object that extends its parent's ACL is readable by whoever may read the parent.
/// Subjects are bound, never spliced.
pub(crate) fn readable(access: Access<'_>) -> (String, Vec<String>) {
    let Access::Subjects(subjects) = access else { return ("1".to_owned(), Vec::new()) };
    if subjects.is_empty() {
        return ("0".to_owned(), Vec::new());
    }
    let marks = vec!["?"; subjects.len()].join(", ");
    let listed = |row: &str| {
        format!(
            "{row}public_read = 1 \
             OR EXISTS (SELECT 1 FROM json_each({row}acl, '$.read') WHERE value IN ({marks})) \
             OR EXISTS (SELECT 1 FROM json_each({row}acl, '$.admin') WHERE value IN ({marks}))"
        )
    };
    // `public_read` first: SQLite stops at the first true term, and most objects are public.
    let sql = format!(
        "({} OR (objects.parent_id IS NOT NULL AND EXISTS (SELECT 1 FROM objects AS parent \
         WHERE parent.backend = objects.backend AND parent.object_type = objects.parent_type \
         AND parent.id = objects.parent_id AND ({}))))",
        listed("objects."),
        listed("parent.")
    );
    let binds = std::iter::repeat_n(subjects, 4).flatten().map(ToString::to_string).collect();
    (sql, binds)
}

/// What goes with a deleted object of these types: a user's password, memberships and tokens, a group's
/// memberships and member ACL.
const CASCADES: [(&str, &str); 5] = [
    (USERS, "DELETE FROM passwords WHERE backend = ? AND user_id = ?"),
    (USERS, "DELETE FROM members WHERE backend = ? AND user_id = ?"),
    (USERS, tenants::REVOKE_USER_TOKENS),
    (USERGROUPS, "DELETE FROM members WHERE backend = ? AND group_id = ?"),
    (USERGROUPS, "DELETE FROM member_acls WHERE backend = ? AND group_id = ?"),
];

/// Applies `patch` to the object within `tx`; `None` when the caller cannot see it. Answers the object and the
/// `seq` of its change.
pub(crate) async fn update_in(
    tx: &mut sqlx::SqliteConnection,
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
    let id = id.to_string();
    sqlx::query("UPDATE objects SET doc = jsonb(?), updated_ms = ? WHERE backend = ? AND object_type = ? AND id = ?")
        .bind(&text)
        .bind(updated)
        .bind(at.backend)
        .bind(at.object_type)
        .bind(&id)
        .execute(&mut *tx)
        .await
        .map_err(unique_violation)?;
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

/// Deletes an object with what goes with it: its rows in `CASCADES`, and the objects whose cascading ref
/// properties (`SchemaRules::cascades`) point at it, with what goes with them in turn. Each deletion is a
/// change of its own. Everything is found before anything goes, so that each object's change carries the ACL of
/// the parent it extends; each object is taken once, so cycles of refs end.
async fn delete_with_dependents(
    tx: &mut sqlx::SqliteConnection,
    at: Collection<'_>,
    id: String,
    row: Current,
    author: Author<'_>,
) -> Result<i64, StoreError> {
    let mut gone = vec![(at.object_type.to_owned(), id, row)];
    let mut next = 0;
    let mut latest = 0;
    while next < gone.len() {
        let (object_type, id) = (gone[next].0.clone(), gone[next].1.clone());
        next += 1;
        let rules: Vec<(String, String)> =
            sqlx::query_as("SELECT object_type, property FROM ref_cascades WHERE backend = ? AND target_type = ?")
                .bind(at.backend)
                .bind(&object_type)
                .fetch_all(&mut *tx)
                .await?;
        for (referring_type, property) in rules {
            // Names were checked when the rule was stored; the expression matches the rule's index.
            let (collection, ref_id) = (collection_literal(&referring_type)?, schemas::ref_id(&property));
            let sql = format!(
                "SELECT o.id, json(o.doc), o.updated_ms, o.acl, parent.acl FROM objects AS o
                 LEFT JOIN objects AS parent
                   ON parent.backend = o.backend AND parent.object_type = o.parent_type AND parent.id = o.parent_id
                 WHERE o.backend = ? AND o.{collection} AND o.{ref_id} = ?"
            );
            let rows: Vec<(String, String, i64, String, Option<String>)> =
                sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(at.backend).bind(&id).fetch_all(&mut *tx).await?;
            for (child, text, updated_ms, acl, inherited) in rows {
                if gone.iter().any(|(t, i, _)| *t == referring_type && *i == child) {
                    continue;
                }
                let row = Current {
                    doc: parse_doc(&text)?,
                    updated_ms,
                    acl: parse_acl(&acl),
                    inherited: inherited.as_deref().map(parse_acl),
                };
                gone.push((referring_type.clone(), child, row));
            }
        }
    }
    for (object_type, id, row) in gone {
        sqlx::query("DELETE FROM objects WHERE backend = ? AND object_type = ? AND id = ?")
            .bind(at.backend)
            .bind(&object_type)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        for (cascade_type, sql) in CASCADES {
            if object_type == cascade_type {
                sqlx::query(sql).bind(at.backend).bind(&id).execute(&mut *tx).await?;
            }
        }
        let text = Value::Object(row.doc).to_string();
        let change = changes::Recorded {
            backend: at.backend,
            object_type: &object_type,
            id: &id,
            event: ChangeEvent::Delete,
            doc: &text,
            acl: &row.acl,
            inherited: row.inherited.as_ref(),
            author,
        };
        latest = latest.max(changes::record(tx, change).await?);
    }
    Ok(latest)
}

/// One row as the writer sees it before changing it.
struct Current {
    doc: Map<String, Value>,
    updated_ms: i64,
    acl: Acl,
    /// The parent's ACL, for an object that extends it.
    inherited: Option<Acl>,
}

impl Current {
    fn allows(&self, permission: Permission, access: Access<'_>) -> bool {
        access.permits(&self.acl, permission)
            || self.inherited.as_ref().is_some_and(|acl| access.permits(acl, permission))
    }
}

async fn current(
    tx: &mut sqlx::SqliteConnection,
    at: Collection<'_>,
    id: ObjectId,
) -> Result<Option<Current>, StoreError> {
    let row: Option<(String, i64, String, Option<String>)> = sqlx::query_as(
        "SELECT json(o.doc), o.updated_ms, o.acl, parent.acl FROM objects AS o
         LEFT JOIN objects AS parent
           ON parent.backend = o.backend AND parent.object_type = o.parent_type AND parent.id = o.parent_id
         WHERE o.backend = ? AND o.object_type = ? AND o.id = ?",
    )
    .bind(at.backend)
    .bind(at.object_type)
    .bind(id.to_string())
    .fetch_optional(&mut *tx)
    .await?;
    row.map(|(text, updated_ms, acl, inherited)| {
        Ok(Current {
            doc: parse_doc(&text)?,
            updated_ms,
            acl: parse_acl(&acl),
            inherited: inherited.as_deref().map(parse_acl),
        })
    })
    .transpose()
}

/// The row a change is about, if the caller may make it: `None` for an object the caller cannot
/// see (as if it did not exist), `Forbidden` for one it sees without `permission`.
async fn changeable(
    tx: &mut sqlx::SqliteConnection,
    at: Collection<'_>,
    id: ObjectId,
    permission: Permission,
    access: Access<'_>,
) -> Result<Option<Current>, StoreError> {
    let Some(row) = current(tx, at, id).await? else { return Ok(None) };
    if !row.allows(Permission::Read, access) {
        return Ok(None);
    }
    if !row.allows(permission, access) {
        return Err(StoreError::Forbidden);
    }
    Ok(Some(row))
}

impl Store for SqliteStore {
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
            let doc = Value::Object(new_document(at, id, properties, author, now));
            let text = doc.to_string();
            let acl = acl.resolve_creator(author.user);
            let (done, committed) = tokio::sync::oneshot::channel();
            let insert = group_commit::Insert {
                backend: at.backend.to_owned(),
                object_type: at.object_type.to_owned(),
                id,
                doc: text,
                now_ms: now,
                acl,
                parent,
                author: author.user.map(str::to_owned),
                request_id: author.request_id.map(str::to_owned),
                done,
            };
            let closed = || StoreError::Database("the store is closed".into());
            self.inserts.send(insert).await.map_err(|_| closed())?;
            // Hand back the document only once it is committed.
            committed.await.map_err(|_| closed())??;
            Ok(doc)
        })
    }

    fn get<'a>(
        &'a self,
        at: Collection<'a>,
        id: ObjectId,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<Option<Value>, StoreError>> {
        Box::pin(async move {
            let (allowed, subjects) = readable(access);
            let collection = collection_literal(at.object_type)?;
            let sql =
                format!("SELECT json(doc) FROM objects WHERE backend = ? AND {collection} AND id = ? AND {allowed}");
            let mut params = vec![Bind::Text(at.backend.to_owned()), Bind::Text(id.to_string())];
            params.extend(subjects.into_iter().map(Bind::Text));
            let text: Option<String> = self.hot.inline(|conn| {
                let mut statement = conn.prepare_cached(&sql)?;
                statement.query_row(rusqlite::params_from_iter(reads::values(&params)), |row| row.get(0)).optional()
            })?;
            text.map(|text| parse_doc(&text).map(Value::Object)).transpose()
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
            let (allowed, subjects) = readable(access);
            let pair = |it: &ObjectRef| Value::from(vec![it.object_type.clone(), it.id.to_string()]);
            let wanted = Value::Array(refs.iter().map(pair).collect()).to_string();
            let sql = get_many_statement(&allowed);
            let mut params = vec![Bind::Text(wanted), Bind::Text(backend.to_owned())];
            params.extend(subjects.into_iter().map(Bind::Text));
            let texts = self.hot.bounded(move |conn| rows(conn, &sql, &params)).await?;
            texts.iter().map(|text| parse_doc(text).map(Value::Object)).collect()
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
            // Read and write on the single writer connection: no other write can slip between.
            let mut tx = self.writer.begin().await?;
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
            let mut tx = self.writer.begin().await?;
            let Some(row) = changeable(&mut tx, at, id, Permission::Delete, access).await? else { return Ok(None) };
            let doc = row.doc.clone();
            let seq = delete_with_dependents(&mut tx, at, id.to_string(), row, author).await?;
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
            let mut conn = self.readers.acquire().await?;
            let row = current(&mut conn, at, id).await?;
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
            let mut tx = self.writer.begin().await?;
            let Some(row) = changeable(&mut tx, at, id, Permission::Admin, access).await? else { return Ok(None) };
            let mut acl = row.acl;
            change.apply(&mut acl);
            sqlx::query("UPDATE objects SET acl = ?, public_read = ? WHERE backend = ? AND object_type = ? AND id = ?")
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
        Box::pin(async move {
            let read =
                ListRead::new(at, query.filter, query.sort, Shape::Page(query.page), access, self.hot.key_indexes())?;
            // Each document parsed on its own: parsing the page as one array would add a level of nesting, and
            // fail on a document as deep as the parser allows.
            let texts = self
                .run_list(read, |read, conn| {
                    read.read(conn, |conn, sql, binds| {
                        let texts = rows(conn, &format!("SELECT json(doc) FROM ({sql})"), binds)?;
                        let n = texts.len();
                        Ok((texts, n))
                    })
                })
                .await?;
            texts.iter().map(|text| parse_doc(text).map(Value::Object)).collect()
        })
    }

    fn list_json<'a>(
        &'a self,
        at: Collection<'a>,
        query: ListQuery<'a>,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<String, StoreError>> {
        Box::pin(async move {
            let read =
                ListRead::new(at, query.filter, query.sort, Shape::Page(query.page), access, self.hot.key_indexes())?;
            // One row holding the page as a JSON array, so that the documents come out as one string.
            self.run_list(read, |read, conn| {
                read.read(conn, |conn, sql, binds| {
                    let mut statement =
                        conn.prepare_cached(&format!("SELECT json_group_array(json(doc)), count(*) FROM ({sql})"))?;
                    statement.query_row(rusqlite::params_from_iter(reads::values(binds)), |row| {
                        Ok((row.get(0)?, row.get::<_, u32>(1)? as usize))
                    })
                })
            })
            .await
        })
    }

    fn count<'a>(
        &'a self,
        at: Collection<'a>,
        filter: &'a updraft_query::Filter,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let sort = updraft_query::Sort { keys: Vec::new() };
            let read = ListRead::new(at, filter, &sort, Shape::Count, access, self.hot.key_indexes())?;
            let n = self.run_list(read, |read, conn| read.count(conn)).await?;
            Ok(n.max(0) as u64)
        })
    }

    fn explain<'a>(
        &'a self,
        at: Collection<'a>,
        query: ListQuery<'a>,
        count: bool,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<crate::QueryPlan, StoreError>> {
        Box::pin(async move {
            let shape = if count { Shape::Count } else { Shape::Page(query.page) };
            let read = ListRead::new(at, query.filter, query.sort, shape, access, self.hot.key_indexes())?;
            let (steps, indexed) = self.hot.inline(|conn| read.explain(conn))?;
            let indexed = indexed.into_iter().map(|it| (it.property, it.arrays)).collect();
            Ok(crate::QueryPlan { steps, indexed })
        })
    }
}

impl SqliteStore {
    /// Runs a list or a count within the read budget; one that runs over it is refused with the properties it
    /// filters on that have no index, the usual reason.
    async fn run_list<T: Send + 'static>(
        &self,
        read: ListRead,
        run: impl Fn(&ListRead, &rusqlite::Connection) -> rusqlite::Result<T> + Send + Sync + 'static,
    ) -> Result<T, StoreError> {
        let read = std::sync::Arc::new(read);
        let reading = std::sync::Arc::clone(&read);
        match self.hot.bounded(move |conn| run(&reading, conn)).await {
            Err(StoreError::Invalid { message, property: None }) if message.starts_with(reads::TOO_EXPENSIVE) => {
                let unindexed = self.hot.inline(|conn| read.unindexed(conn)).unwrap_or_default();
                let Some(first) = unindexed.first() else {
                    return Err(StoreError::Invalid { message, property: None });
                };
                let names = unindexed.iter().map(|it| format!("`{it}`")).collect::<Vec<_>>().join(", ");
                Err(StoreError::Invalid {
                    message: format!(
                        "{message}. The filter reads {names}, which no index serves, so it scans the collection: \
                         declare {} `indexed` in the schema of {}",
                        if unindexed.len() == 1 { "it" } else { "them" },
                        read.object_type()
                    ),
                    property: Some(first.clone()),
                })
            }
            other => other,
        }
    }
}

/// The read of [`Store::get_many`], binding the refs as one JSON array of `[type, id]`, then the backend, then
/// the subjects of `allowed`: each ref is looked up by primary key.
fn get_many_statement(allowed: &str) -> String {
    format!(
        "SELECT json(objects.doc) FROM (SELECT DISTINCT value ->> 0 AS object_type, value ->> 1 AS id \
         FROM json_each(?)) AS wanted CROSS JOIN objects ON objects.backend = ? \
         AND objects.object_type = wanted.object_type AND objects.id = wanted.id WHERE {allowed}"
    )
}

/// The text of the first column of every row of a read.
fn rows(conn: &rusqlite::Connection, sql: &str, binds: &[Bind]) -> rusqlite::Result<Vec<String>> {
    let mut statement = conn.prepare_cached(sql)?;
    let rows = statement.query_map(rusqlite::params_from_iter(reads::values(binds)), |row| row.get(0))?;
    rows.collect()
}

mod changes;
mod group_commit;
pub use group_commit::{INSERT_CHANGE, INSERT_OBJECT};
mod files;
mod gateways;
mod groups;
mod key_indexes;
mod lists;
mod migrations;
pub(crate) use migrations::MIGRATIONS;
#[cfg(test)]
mod migration_tests;
#[cfg(test)]
mod plan_tests;
mod reads;
mod schemas;
mod search;
mod tallies;
#[cfg(test)]
mod tally_tests;
mod tenants;
#[cfg(test)]
mod tests;
mod users;
#[cfg(test)]
mod wal_tests;
mod webhooks;
