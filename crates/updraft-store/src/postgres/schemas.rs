//! Object type schemas in PostgreSQL, and the expression indexes of their `indexed` properties and cascades.
//!
//! An index is partial on its collection (`WHERE backend = '…' AND object_type = '…'`), so that other
//! collections' rows stay out of it; PostgreSQL uses a partial index when the query's WHERE implies the index's,
//! which a bound parameter cannot show, so list queries name their collection literally (`lists.rs`). DDL takes
//! no parameters: every name spliced into it passed [`plain`].
//!
//! A schema change builds its new indexes with `CREATE INDEX CONCURRENTLY`, after the transaction that changes the
//! schema, so that writers of the collection go on while a large one is indexed (a plain `CREATE INDEX` holds
//! them for the whole build). A property's index counts (`property_indexes`) only once it is built; until then
//! filters on it run without it, as on an unindexed property. The collection's schema lock is held, by the
//! connection that changes it, from the schema's change to the end of its builds. A build a crashed node left
//! half done (an invalid index) is dropped by the next node that opens the store ([`drop_abandoned_builds`]).

use serde_json::Value;

use super::{PostgresStore, plain};
use crate::{BoxFuture, Cascade, SchemaRules, Schemas, StoreError};

/// `backend = '<b>' AND object_type = '<t>'` over `row` (an alias, or empty for the bare table), for the WHERE of a
/// partial index and of the queries that should use it.
pub(crate) fn collection_literal(row: &str, backend: &str, object_type: &str) -> Result<String, StoreError> {
    if !plain(backend) || !plain(object_type) {
        return Err(StoreError::Invalid { message: format!("invalid object type {object_type:?}"), property: None });
    }
    let row = if row.is_empty() { String::new() } else { format!("{row}.") };
    Ok(format!("{row}backend = '{backend}' AND {row}object_type = '{object_type}'"))
}

/// The SQL of the id a cascading ref property holds over the document column `doc`; the index of a cascade and
/// the lookup of the objects it deletes spell it alike.
pub(crate) fn ref_id(doc: &str, property: &str) -> Result<String, StoreError> {
    if !plain(property) || property.contains('.') {
        return Err(StoreError::Invalid { message: format!("invalid property {property:?}"), property: None });
    }
    Ok(format!("({doc} -> '{property}' ->> 'id')"))
}

fn index_name(kind: &str) -> String {
    format!("updraft_{kind}_{}", hex::encode(rand::random::<[u8; 12]>()))
}

pub(super) async fn create_key_index(
    tx: &mut sqlx::PgConnection,
    backend: &str,
    object_type: &str,
    property: &str,
) -> Result<(), StoreError> {
    let Build { name, ddl, .. } = key_index(backend, object_type, property)?;
    sqlx::query(sqlx::AssertSqlSafe(ddl)).execute(&mut *tx).await?;
    sqlx::query("INSERT INTO property_indexes (backend, object_type, property, index_name) VALUES ($1, $2, $3, $4)")
        .bind(backend)
        .bind(object_type)
        .bind(property)
        .bind(&name)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

async fn drop_named(tx: &mut sqlx::PgConnection, name: &str) -> Result<(), StoreError> {
    if !plain(name) {
        return Err(StoreError::Database(format!("invalid index name {name:?}")));
    }
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP INDEX IF EXISTS {name}"))).execute(&mut *tx).await?;
    Ok(())
}

/// An index a schema change builds once its transaction committed.
pub(super) struct Build {
    name: String,
    ddl: String,
    /// The key index of this property (recorded once built); `None` for a cascade's (recorded already).
    property: Option<String>,
}

/// The key index of `property` in a collection.
fn key_index(backend: &str, object_type: &str, property: &str) -> Result<Build, StoreError> {
    let name = index_name("key");
    let collection = collection_literal("", backend, object_type)?;
    let terms = updraft_query::postgres::key_index_terms(property, "doc");
    let ddl = format!("CREATE INDEX {name} ON objects ({terms}, created_ms, id) WHERE {collection}");
    Ok(Build { name, ddl, property: Some(property.to_owned()) })
}

/// Builds `builds` on `conn`, outside any transaction, recording each key index once built; a property whose
/// collection went meanwhile (its app deleted) has its index dropped again.
async fn build_indexes(
    conn: &mut sqlx::PgConnection,
    backend: &str,
    object_type: &str,
    builds: &[Build],
) -> Result<(), StoreError> {
    for build in builds {
        let concurrently = build.ddl.replacen("CREATE INDEX", "CREATE INDEX CONCURRENTLY", 1);
        if let Err(err) = sqlx::query(sqlx::AssertSqlSafe(concurrently)).execute(&mut *conn).await {
            // A failed concurrent build leaves an invalid index, which writes would still keep up.
            drop_concurrently(conn, &build.name).await;
            return Err(err.into());
        }
        let Some(property) = &build.property else { continue };
        let recorded = sqlx::query(
            "INSERT INTO property_indexes (backend, object_type, property, index_name)
             SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM object_types WHERE backend = $1 AND name = $2)",
        )
        .bind(backend)
        .bind(object_type)
        .bind(property)
        .bind(&build.name)
        .execute(&mut *conn)
        .await;
        if !matches!(recorded, Ok(ref done) if done.rows_affected() == 1) {
            drop_concurrently(conn, &build.name).await;
            recorded?;
        }
    }
    Ok(())
}

/// Drops index `name` without holding writers; a failure is only logged (the next start sweeps what is left).
async fn drop_concurrently(conn: &mut sqlx::PgConnection, name: &str) {
    if !plain(name) {
        return;
    }
    let ddl = format!("DROP INDEX CONCURRENTLY IF EXISTS {name}");
    if let Err(err) = sqlx::query(sqlx::AssertSqlSafe(ddl)).execute(&mut *conn).await {
        tracing::warn!(%err, index = name, "dropping an index failed");
    }
}

/// Drops the indexes of schema changes whose node died mid-build: invalid, ours, and not being built now.
pub(super) async fn drop_abandoned_builds(pool: &sqlx::PgPool) -> Result<(), StoreError> {
    let abandoned: Vec<(String,)> = sqlx::query_as(
        r"SELECT c.relname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
          WHERE NOT i.indisvalid AND c.relname LIKE 'updraft\_%'
            AND i.indexrelid NOT IN (SELECT index_relid FROM pg_stat_progress_create_index
                                     WHERE datid = (SELECT oid FROM pg_database WHERE datname = current_database()))",
    )
    .fetch_all(pool)
    .await?;
    if abandoned.is_empty() {
        return Ok(());
    }
    let mut conn = pool.acquire().await?;
    for (name,) in &abandoned {
        tracing::warn!(index = name, "dropping an index whose build was abandoned");
        drop_concurrently(&mut conn, name).await;
    }
    Ok(())
}

/// Drops the key indexes of a collection: those of `keep` stay.
async fn drop_key_indexes(
    tx: &mut sqlx::PgConnection,
    backend: &str,
    object_type: &str,
    keep: &[String],
) -> Result<(), StoreError> {
    let had: Vec<(String, String)> =
        sqlx::query_as("SELECT property, index_name FROM property_indexes WHERE backend = $1 AND object_type = $2")
            .bind(backend)
            .bind(object_type)
            .fetch_all(&mut *tx)
            .await?;
    for (property, name) in had.iter().filter(|(p, _)| !keep.contains(p)) {
        drop_named(tx, name).await?;
        sqlx::query("DELETE FROM property_indexes WHERE backend = $1 AND object_type = $2 AND property = $3")
            .bind(backend)
            .bind(object_type)
            .bind(property)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// Records a cascade with an index on the ref's id, so that deleting a target finds what refers to it without
/// scanning the collection.
pub(super) async fn create_cascade(
    tx: &mut sqlx::PgConnection,
    backend: &str,
    object_type: &str,
    cascade: &Cascade,
) -> Result<(), StoreError> {
    let build = record_cascade(tx, backend, object_type, cascade).await?;
    sqlx::query(sqlx::AssertSqlSafe(build.ddl)).execute(&mut *tx).await?;
    Ok(())
}

/// Records a cascade (its rule applies from the commit); answers its index, to build.
async fn record_cascade(
    tx: &mut sqlx::PgConnection,
    backend: &str,
    object_type: &str,
    cascade: &Cascade,
) -> Result<Build, StoreError> {
    let name = index_name("ref");
    let collection = collection_literal("", backend, object_type)?;
    let ddl = format!("CREATE INDEX {name} ON objects ({}) WHERE {collection}", ref_id("doc", &cascade.property)?);
    sqlx::query(
        "INSERT INTO ref_cascades (backend, object_type, property, target_type, index_name) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(backend)
    .bind(object_type)
    .bind(&cascade.property)
    .bind(&cascade.target_type)
    .bind(&name)
    .execute(&mut *tx)
    .await?;
    Ok(Build { name, ddl, property: None })
}

async fn drop_cascades(tx: &mut sqlx::PgConnection, backend: &str, object_type: &str) -> Result<(), StoreError> {
    let had: Vec<(String,)> =
        sqlx::query_as("SELECT index_name FROM ref_cascades WHERE backend = $1 AND object_type = $2")
            .bind(backend)
            .bind(object_type)
            .fetch_all(&mut *tx)
            .await?;
    for (name,) in &had {
        drop_named(tx, name).await?;
    }
    sqlx::query("DELETE FROM ref_cascades WHERE backend = $1 AND object_type = $2")
        .bind(backend)
        .bind(object_type)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// What goes with every object of a type whose schema is deleted, as `CASCADES` says for one object.
const TYPE_CASCADES: [(&str, &str); 4] = [
    (crate::USERS, "DELETE FROM passwords WHERE backend = $1"),
    (crate::USERS, "DELETE FROM members WHERE backend = $1"),
    (crate::USERGROUPS, "DELETE FROM members WHERE backend = $1"),
    (crate::USERGROUPS, "DELETE FROM member_acls WHERE backend = $1"),
];

/// Deletes everything a backend holds (its app goes), indexes included; tokens are the caller's.
pub(super) async fn forget_backend(tx: &mut sqlx::PgConnection, backend: &str) -> Result<(), StoreError> {
    let types: Vec<(String,)> = sqlx::query_as(
        "SELECT object_type FROM property_indexes WHERE backend = $1
         UNION SELECT object_type FROM ref_cascades WHERE backend = $1",
    )
    .bind(backend)
    .fetch_all(&mut *tx)
    .await?;
    for (object_type,) in &types {
        drop_key_indexes(tx, backend, object_type, &[]).await?;
        drop_cascades(tx, backend, object_type).await?;
    }
    sqlx::query("DELETE FROM webhook_deliveries WHERE webhook_id IN (SELECT id FROM webhooks WHERE backend = $1)")
        .bind(backend)
        .execute(&mut *tx)
        .await?;
    for table in ["objects", "object_types", "passwords", "members", "member_acls", "webhooks"] {
        let sql = format!("DELETE FROM {table} WHERE backend = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(backend).execute(&mut *tx).await?;
    }
    // Last, as in `put_schema`.
    super::search::forget_backend(tx, backend).await
}

/// The advisory lock key of one collection's schema ($1 backend, $2 object type): schema DDL made by any node
/// takes turns with the others', whether it holds the lock for a transaction or for a session.
const SCHEMA_LOCK: &str = "hashtextextended('schema:' || $1 || ':' || $2, 0)";

/// Schema DDL of one collection, made by any node, takes turns with the others'.
async fn lock_collection(tx: &mut sqlx::PgConnection, backend: &str, object_type: &str) -> Result<(), StoreError> {
    sqlx::query(sqlx::AssertSqlSafe(format!("SELECT pg_advisory_xact_lock({SCHEMA_LOCK})")))
        .bind(backend)
        .bind(object_type)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// A schema change whole: its transaction, then its index builds, under the collection's schema lock.
async fn change_and_build(
    pool: &sqlx::PgPool,
    catalog: &super::catalog::Catalog,
    backend: &str,
    object_type: &str,
    schema: &Value,
    rules: &SchemaRules,
) -> Result<(), StoreError> {
    let mut conn = pool.acquire().await?;
    let lock = format!("SELECT pg_advisory_lock({SCHEMA_LOCK})");
    sqlx::query(sqlx::AssertSqlSafe(lock)).bind(backend).bind(object_type).execute(&mut *conn).await?;
    let changed = change_schema(&mut conn, backend, object_type, schema, rules).await;
    catalog.forget();
    let built = match &changed {
        Ok(builds) => build_indexes(&mut conn, backend, object_type, builds).await,
        Err(_) => Ok(()),
    };
    let unlock = format!("SELECT pg_advisory_unlock({SCHEMA_LOCK})");
    if sqlx::query(sqlx::AssertSqlSafe(unlock)).bind(backend).bind(object_type).execute(&mut *conn).await.is_err() {
        // The lock is the session's: the session must end rather than go back to the pool holding it.
        conn.close_on_drop();
    }
    let builds = changed?;
    built?;
    catalog.forget();
    if builds.iter().any(|build| build.property.is_some()) {
        // Statistics for the new indexes' expressions, so that the planner weighs them from the first query.
        sqlx::query("ANALYZE objects").execute(pool).await?;
    }
    Ok(())
}

/// The transaction of a schema change: the schema, the key indexes and cascades that go, the cascades' rules
/// and the search rows. Answers the indexes to build once it committed.
async fn change_schema(
    conn: &mut sqlx::PgConnection,
    backend: &str,
    object_type: &str,
    schema: &Value,
    rules: &SchemaRules,
) -> Result<Vec<Build>, StoreError> {
    let indexed = &rules.indexed;
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    sqlx::query(
        "INSERT INTO object_types (backend, name, schema) VALUES ($1, $2, $3)
         ON CONFLICT (backend, name) DO UPDATE SET schema = EXCLUDED.schema",
    )
    .bind(backend)
    .bind(object_type)
    .bind(schema)
    .execute(&mut *tx)
    .await?;
    let had: Vec<(String,)> =
        sqlx::query_as("SELECT property FROM property_indexes WHERE backend = $1 AND object_type = $2")
            .bind(backend)
            .bind(object_type)
            .fetch_all(&mut *tx)
            .await?;
    drop_key_indexes(&mut tx, backend, object_type, indexed).await?;
    let mut builds = Vec::new();
    for property in indexed.iter().filter(|p| !had.iter().any(|(h,)| h == *p)) {
        builds.push(key_index(backend, object_type, property)?);
    }
    builds.extend(change_cascades(&mut tx, backend, object_type, &rules.cascades).await?);
    // After every index DDL: DDL on `objects` waits for the writers in flight, which may be waiting on the row of
    // searched properties this takes (`search::index`).
    super::search::reindex(&mut tx, backend, object_type, &rules.searched).await?;
    tx.commit().await?;
    Ok(builds)
}

/// Makes a collection's cascades `wanted`: a cascade's rule applies from the commit, its index (on the ref's id,
/// so that deleting a target finds what refers to it without scanning the collection) is answered to build. A
/// property that stays keeps its index.
async fn change_cascades(
    tx: &mut sqlx::PgConnection,
    backend: &str,
    object_type: &str,
    wanted: &[Cascade],
) -> Result<Vec<Build>, StoreError> {
    let had: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT property, target_type, index_name FROM ref_cascades WHERE backend = $1 AND object_type = $2",
    )
    .bind(backend)
    .bind(object_type)
    .fetch_all(&mut *tx)
    .await?;
    for (property, _, name) in had.iter().filter(|(p, _, _)| !wanted.iter().any(|c| &c.property == p)) {
        drop_named(tx, name).await?;
        sqlx::query("DELETE FROM ref_cascades WHERE backend = $1 AND object_type = $2 AND property = $3")
            .bind(backend)
            .bind(object_type)
            .bind(property)
            .execute(&mut *tx)
            .await?;
    }
    let mut builds = Vec::new();
    for cascade in wanted {
        match had.iter().find(|(p, _, _)| *p == cascade.property) {
            Some((_, target, _)) if *target == cascade.target_type => {}
            Some(_) => {
                sqlx::query(
                    "UPDATE ref_cascades SET target_type = $4 WHERE backend = $1 AND object_type = $2 AND property = $3",
                )
                .bind(backend)
                .bind(object_type)
                .bind(&cascade.property)
                .bind(&cascade.target_type)
                .execute(&mut *tx)
                .await?;
            }
            None => builds.push(record_cascade(tx, backend, object_type, cascade).await?),
        }
    }
    Ok(builds)
}

impl Schemas for PostgresStore {
    fn put_schema<'a>(
        &'a self,
        backend: &'a str,
        object_type: &'a str,
        schema: Value,
        rules: &'a SchemaRules,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let indexed = &rules.indexed;
            let property = |p: &String| plain(p) && !p.contains('.');
            if !plain(backend)
                || !plain(object_type)
                || !indexed.iter().all(property)
                || !rules.cascades.iter().all(|c| property(&c.property) && plain(&c.target_type))
            {
                return Err(StoreError::Invalid { message: "invalid name in schema".into(), property: None });
            }
            // Its own task: a caller that goes away (a client that hangs up) must not leave the session's lock held
            // by a pooled connection, nor a build half done.
            let (pool, catalog) = (self.pool.clone(), self.catalog.clone());
            let (backend, object_type, rules) = (backend.to_owned(), object_type.to_owned(), rules.clone());
            let changing = tokio::spawn(async move {
                change_and_build(&pool, &catalog, &backend, &object_type, &schema, &rules).await
            });
            changing.await.map_err(|err| StoreError::Database(format!("a schema change failed: {err}")))?
        })
    }

    fn schema<'a>(
        &'a self,
        backend: &'a str,
        object_type: &'a str,
    ) -> BoxFuture<'a, Result<Option<std::sync::Arc<Value>>, StoreError>> {
        Box::pin(async move {
            let miss = match self.catalog.schema(backend, object_type) {
                Ok(schema) => return Ok(schema),
                Err(miss) => miss,
            };
            let row: Option<(Value,)> =
                sqlx::query_as("SELECT schema FROM object_types WHERE backend = $1 AND name = $2")
                    .bind(backend)
                    .bind(object_type)
                    .fetch_optional(&self.pool)
                    .await?;
            let schema = row.map(|(schema,)| std::sync::Arc::new(schema));
            self.catalog.keep_schema(miss, backend, object_type, schema.as_ref());
            Ok(schema)
        })
    }

    fn schemas<'a>(&'a self, backend: &'a str) -> BoxFuture<'a, Result<Vec<Value>, StoreError>> {
        Box::pin(async move {
            let rows: Vec<(Value,)> =
                sqlx::query_as("SELECT schema FROM object_types WHERE backend = $1 ORDER BY name COLLATE \"C\"")
                    .bind(backend)
                    .fetch_all(&self.pool)
                    .await?;
            Ok(rows.into_iter().map(|(schema,)| schema).collect())
        })
    }

    fn delete_schema<'a>(&'a self, backend: &'a str, object_type: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            lock_collection(&mut tx, backend, object_type).await?;
            let deleted = sqlx::query("DELETE FROM object_types WHERE backend = $1 AND name = $2")
                .bind(backend)
                .bind(object_type)
                .execute(&mut *tx)
                .await?;
            if deleted.rows_affected() == 1 {
                drop_key_indexes(&mut tx, backend, object_type, &[]).await?;
                drop_cascades(&mut tx, backend, object_type).await?;
                sqlx::query("DELETE FROM objects WHERE backend = $1 AND object_type = $2")
                    .bind(backend)
                    .bind(object_type)
                    .execute(&mut *tx)
                    .await?;
                // Last, as in `put_schema`: after the DDL and the rows, which wait for writers in flight.
                super::search::forget(&mut tx, backend, object_type).await?;
                if object_type == crate::USERS {
                    // The users went with their schema, and so do their tokens.
                    super::tenants::revoke_backend_tokens(&mut tx, backend).await?;
                }
                for (kind, sql) in TYPE_CASCADES {
                    if kind == object_type {
                        sqlx::query(sql).bind(backend).execute(&mut *tx).await?;
                    }
                }
            }
            tx.commit().await?;
            self.catalog.forget();
            Ok(deleted.rows_affected() == 1)
        })
    }
}

#[cfg(test)]
#[path = "schemas_tests.rs"]
mod tests;
