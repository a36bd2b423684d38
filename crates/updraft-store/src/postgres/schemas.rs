//! Object type schemas in PostgreSQL, and the expression indexes of their `indexed` properties and cascades.
//!
//! An index is partial on its collection (`WHERE backend = '…' AND object_type = '…'`), so that other
//! collections' rows stay out of it; PostgreSQL uses a partial index when the query's WHERE implies the index's,
//! which a bound parameter cannot show, so list queries name their collection literally (`lists.rs`). DDL takes
//! no parameters: every name spliced into it passed [`plain`].

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
    let name = index_name("key");
    let collection = collection_literal("", backend, object_type)?;
    let terms = updraft_query::postgres::key_index_terms(property, "doc");
    let ddl = format!("CREATE INDEX {name} ON objects ({terms}, created_ms, id) WHERE {collection}");
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
    let name = index_name("ref");
    let collection = collection_literal("", backend, object_type)?;
    let ddl = format!("CREATE INDEX {name} ON objects ({}) WHERE {collection}", ref_id("doc", &cascade.property)?);
    sqlx::query(sqlx::AssertSqlSafe(ddl)).execute(&mut *tx).await?;
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
    Ok(())
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

/// Schema DDL of one collection, made by any node, takes turns with the others'.
async fn lock_collection(tx: &mut sqlx::PgConnection, backend: &str, object_type: &str) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('schema:' || $1 || ':' || $2, 0))")
        .bind(backend)
        .bind(object_type)
        .execute(&mut *tx)
        .await?;
    Ok(())
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
            let mut tx = self.pool.begin().await?;
            lock_collection(&mut tx, backend, object_type).await?;
            sqlx::query(
                "INSERT INTO object_types (backend, name, schema) VALUES ($1, $2, $3)
                 ON CONFLICT (backend, name) DO UPDATE SET schema = EXCLUDED.schema",
            )
            .bind(backend)
            .bind(object_type)
            .bind(&schema)
            .execute(&mut *tx)
            .await?;
            let had: Vec<(String,)> =
                sqlx::query_as("SELECT property FROM property_indexes WHERE backend = $1 AND object_type = $2")
                    .bind(backend)
                    .bind(object_type)
                    .fetch_all(&mut *tx)
                    .await?;
            drop_key_indexes(&mut tx, backend, object_type, indexed).await?;
            let added: Vec<&String> = indexed.iter().filter(|p| !had.iter().any(|(h,)| h == *p)).collect();
            for property in &added {
                create_key_index(&mut tx, backend, object_type, property).await?;
            }
            drop_cascades(&mut tx, backend, object_type).await?;
            for cascade in &rules.cascades {
                create_cascade(&mut tx, backend, object_type, cascade).await?;
            }
            // After every index DDL: DDL on `objects` waits for the writers in flight, which may be waiting on the
            // row of searched properties this takes (`search::index`).
            super::search::reindex(&mut tx, backend, object_type, &rules.searched).await?;
            tx.commit().await?;
            self.catalog.forget();
            if !added.is_empty() {
                // Statistics for the new indexes' expressions, so that the planner weighs them from the first query.
                sqlx::query("ANALYZE objects").execute(&self.pool).await?;
            }
            Ok(())
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
