//! Object type schemas in SQLite, and the expression indexes of their `indexed` properties.

use serde_json::Value;

use super::{SqliteStore, plain};
use crate::{BoxFuture, Cascade, SchemaRules, Schemas, StoreError};

/// Our indexes on `objects` are partial on one collection, so that other collections' rows stay out of them,
/// and named `<kind>:<backend>:<type>:<property>`, quoted (`:` cannot occur in a `plain` name).
struct PropertyIndex<'a> {
    kind: &'static str,
    backend: &'a str,
    object_type: &'a str,
    property: &'a str,
}

impl PropertyIndex<'_> {
    fn name(&self) -> String {
        format!("\"{}:{}:{}:{}\"", self.kind, self.backend, self.object_type, self.property)
    }

    /// The name as `sqlite_schema` holds it.
    fn bare_name(&self) -> String {
        format!("{}:{}:{}:{}", self.kind, self.backend, self.object_type, self.property)
    }

    /// The DDL of the index over `columns`, as `sqlite_schema` holds it. DDL takes no parameters; every name in it
    /// passed `plain`. Queries that should use the index name their collection literally, since SQLite uses a
    /// partial index only when it sees the query implies its WHERE.
    fn ddl(&self, columns: &str) -> String {
        format!("CREATE INDEX {} ON objects ({columns}) WHERE object_type = '{}'", self.name(), self.object_type)
    }

    async fn create(&self, tx: &mut sqlx::SqliteConnection, columns: &str) -> Result<(), StoreError> {
        let ddl = self.ddl(columns).replacen("CREATE INDEX", "CREATE INDEX IF NOT EXISTS", 1);
        sqlx::query(sqlx::AssertSqlSafe(ddl)).execute(&mut *tx).await?;
        Ok(())
    }

    async fn drop(&self, tx: &mut sqlx::SqliteConnection) -> Result<(), StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP INDEX IF EXISTS {}", self.name()))).execute(&mut *tx).await?;
        Ok(())
    }
}

/// The key index of an `indexed` property: its type rank and value (see `updraft_query::sqlite::key_index_terms`),
/// then the creation order, then (see [`MAX_COVERING`]) the type ranks and values of the collection's other
/// indexed properties. A sorted page walks it; an equality, a range or a prefix on the property is a range of it,
/// already in creation order for a sort on `createdAt`.
fn key_index<'a>(backend: &'a str, object_type: &'a str, property: &'a str) -> PropertyIndex<'a> {
    PropertyIndex { kind: "key", backend, object_type, property }
}

/// The quoted name of the key index of `property`, for `INDEXED BY`.
pub(super) fn key_index_name(backend: &str, object_type: &str, property: &str) -> String {
    key_index(backend, object_type, property).name()
}

/// A collection with at most this many indexed properties gets key indexes that also hold the key terms of all
/// its other indexed properties. A page that walks its sort's index then checks a filter on the others in the
/// index: a range on `n` sorted by `k` at 1M objects walks about 500 entries, and reading each one's row (a
/// random seek, about 1.3 µs) was most of its time. Beyond this count the entries would grow with its square,
/// and every write with them; the walk then reads rows.
const MAX_COVERING: usize = 8;

/// The columns of the key index of `property` in a collection whose indexed properties are `indexed`, sorted.
fn key_index_columns(property: &str, indexed: &[String]) -> String {
    let key_terms = updraft_query::sqlite::key_index_terms(property, "doc");
    let mut columns = format!("backend, object_type, {key_terms}, created_ms, id, public_read");
    if indexed.len() <= MAX_COVERING {
        for other in indexed.iter().filter(|other| *other != property) {
            columns.push_str(", ");
            columns.push_str(&updraft_query::sqlite::key_index_terms(other, "doc"));
        }
    }
    columns
}

/// Makes the key index of every indexed property of the collection hold [`key_index_columns`] of the properties
/// indexed now: builds those that are missing and rebuilds those that hold other columns (the set changed, or the
/// database predates covering). Answers whether it built any, as their statistics are then missing.
async fn fit_key_indexes(
    tx: &mut sqlx::SqliteConnection,
    backend: &str,
    object_type: &str,
) -> Result<bool, StoreError> {
    let mut indexed: Vec<String> = sqlx::query_scalar(
        "SELECT property FROM property_indexes WHERE backend = ? AND object_type = ? ORDER BY property",
    )
    .bind(backend)
    .bind(object_type)
    .fetch_all(&mut *tx)
    .await?;
    indexed.retain(|property| plain(property));
    let mut built = false;
    for property in &indexed {
        let index = key_index(backend, object_type, property);
        let columns = key_index_columns(property, &indexed);
        let held: Option<String> =
            sqlx::query_scalar("SELECT sql FROM sqlite_schema WHERE type = 'index' AND name = ?")
                .bind(index.bare_name())
                .fetch_optional(&mut *tx)
                .await?;
        if held.as_deref() != Some(index.ddl(&columns).as_str()) {
            index.drop(tx).await?;
            index.create(tx, &columns).await?;
            built = true;
        }
    }
    Ok(built)
}

/// Fits the key indexes of every collection (see [`fit_key_indexes`]) and makes the index of every cascading ref
/// that is missing (after a migration that rebuilt `objects`, all of them), and drops the `sort` indexes that
/// preceded key indexes (their value column did not hold a ref's id). Runs at every start; it does nothing once
/// done.
pub(super) async fn upgrade_indexes(tx: &mut sqlx::SqliteConnection) -> Result<(), StoreError> {
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT backend, object_type, property FROM property_indexes").fetch_all(&mut *tx).await?;
    for (backend, object_type, property) in &rows {
        if plain(backend) && plain(object_type) && plain(property) {
            PropertyIndex { kind: "sort", backend, object_type, property }.drop(tx).await?;
        }
    }
    let collections: Vec<(String, String)> =
        sqlx::query_as("SELECT DISTINCT backend, object_type FROM property_indexes").fetch_all(&mut *tx).await?;
    let mut built = false;
    for (backend, object_type) in &collections {
        if plain(backend) && plain(object_type) {
            built |= fit_key_indexes(tx, backend, object_type).await?;
        }
    }
    if built {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("{}; ANALYZE objects", super::ANALYSIS_LIMIT)))
            .execute(&mut *tx)
            .await?;
    }
    upgrade_search(tx).await?;
    let cascades: Vec<(String, String, String)> =
        sqlx::query_as("SELECT backend, object_type, property FROM ref_cascades").fetch_all(&mut *tx).await?;
    for (backend, object_type, property) in &cascades {
        if plain(backend) && plain(object_type) && plain(property) {
            create_ref_index(tx, backend, object_type, property).await?;
        }
    }
    Ok(())
}

/// Indexes for search the collections of a database that predates it: those whose schema has searched
/// properties (`crate::searched_properties`) and no slots yet.
async fn upgrade_search(tx: &mut sqlx::SqliteConnection) -> Result<(), StoreError> {
    let schemas: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT backend, name, schema FROM object_types AS t WHERE NOT EXISTS (SELECT 1 FROM property_indexes AS p \
         WHERE p.backend = t.backend AND p.object_type = t.name AND p.search_slot IS NOT NULL)",
    )
    .fetch_all(&mut *tx)
    .await?;
    for (backend, object_type, schema) in schemas {
        let Ok(schema) = serde_json::from_str::<Value>(&schema) else { continue };
        let searched = crate::searched_properties(&schema);
        let indexed: Vec<(String,)> =
            sqlx::query_as("SELECT property FROM property_indexes WHERE backend = ? AND object_type = ?")
                .bind(&backend)
                .bind(&object_type)
                .fetch_all(&mut *tx)
                .await?;
        if !searched.is_empty() && searched.iter().all(|p| indexed.iter().any(|(i,)| i == p)) {
            super::search::reslot(tx, &backend, &object_type, &searched).await?;
        }
    }
    Ok(())
}

/// Fills what goes with the key index of a newly indexed property (its row of `property_indexes` is written and
/// its key index built already): the elements of its arrays and its first cut.
async fn fill_index(
    tx: &mut sqlx::SqliteConnection,
    backend: &str,
    object_type: &str,
    property: &str,
) -> Result<(), StoreError> {
    let property_of = [backend, object_type, property];
    on_property(tx, FORGET_ELEMENTS, property_of).await?;
    on_property(tx, super::ARRAY_KEYS_BACKFILL, property_of).await?;
    // The index's first cut, holding all its entries until the next split (`tallies.rs`); kept as it is when the
    // index was there already.
    let first_cut = super::tallies::first_cuts("p.backend = ? AND p.object_type = ? AND p.property = ?");
    on_property(tx, &first_cut, property_of).await
}

const ADD_PROPERTY_INDEX: &str =
    "INSERT OR IGNORE INTO property_indexes (backend, object_type, property) VALUES (?, ?, ?)";

/// Deletes the `array_keys` rows of one indexed property.
const FORGET_ELEMENTS: &str = "DELETE FROM array_keys WHERE backend = ? AND object_type = ? AND property = ?";

/// Runs `sql`, whose parameters are a backend, an object type and a property, in that order.
async fn on_property(
    tx: &mut sqlx::SqliteConnection,
    sql: &str,
    [backend, object_type, property]: [&str; 3],
) -> Result<(), StoreError> {
    // Every caller's SQL is a constant, or the first cuts of `tallies.rs` for one `property_indexes` row.
    sqlx::query(sqlx::AssertSqlSafe(sql)).bind(backend).bind(object_type).bind(property).execute(&mut *tx).await?;
    Ok(())
}

pub(super) async fn drop_index(
    tx: &mut sqlx::SqliteConnection,
    backend: &str,
    object_type: &str,
    property: &str,
) -> Result<(), StoreError> {
    key_index(backend, object_type, property).drop(tx).await?;
    let property_of = [backend, object_type, property];
    on_property(tx, FORGET_ELEMENTS, property_of).await?;
    on_property(tx, "DELETE FROM key_tallies WHERE backend = ? AND object_type = ? AND property = ?", property_of)
        .await?;
    on_property(tx, "DELETE FROM property_indexes WHERE backend = ? AND object_type = ? AND property = ?", property_of)
        .await
}

/// The SQL of the id a cascading ref property holds; the index of a cascade and the lookup of the objects
/// it deletes must spell it alike.
pub(super) fn ref_id(property: &str) -> String {
    format!("doc ->> '$.{property}.id'")
}

fn ref_index<'a>(backend: &'a str, object_type: &'a str, property: &'a str) -> PropertyIndex<'a> {
    PropertyIndex { kind: "ref", backend, object_type, property }
}

async fn create_ref_index(
    tx: &mut sqlx::SqliteConnection,
    backend: &str,
    object_type: &str,
    property: &str,
) -> Result<(), StoreError> {
    ref_index(backend, object_type, property).create(tx, &format!("backend, {}", ref_id(property))).await
}

/// Records a cascade with an index on the ref's id, so that deleting a target finds what refers to it without
/// scanning the collection.
async fn create_cascade(
    tx: &mut sqlx::SqliteConnection,
    backend: &str,
    object_type: &str,
    cascade: &Cascade,
) -> Result<(), StoreError> {
    create_ref_index(tx, backend, object_type, &cascade.property).await?;
    sqlx::query("INSERT INTO ref_cascades (backend, object_type, property, target_type) VALUES (?, ?, ?, ?)")
        .bind(backend)
        .bind(object_type)
        .bind(&cascade.property)
        .bind(&cascade.target_type)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

pub(super) async fn drop_cascades(
    tx: &mut sqlx::SqliteConnection,
    backend: &str,
    object_type: &str,
) -> Result<(), StoreError> {
    let had: Vec<(String,)> = sqlx::query_as("SELECT property FROM ref_cascades WHERE backend = ? AND object_type = ?")
        .bind(backend)
        .bind(object_type)
        .fetch_all(&mut *tx)
        .await?;
    for (property,) in &had {
        ref_index(backend, object_type, property).drop(tx).await?;
    }
    sqlx::query("DELETE FROM ref_cascades WHERE backend = ? AND object_type = ?")
        .bind(backend)
        .bind(object_type)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Emptied when full, since the names of types without a schema come from requests.
const SCHEMA_CACHE_LIMIT: usize = 10_000;

/// What goes with every object of a type whose schema is deleted, as `CASCADES` says for one object: the users'
/// passwords and memberships, the groups' memberships and member rules.
const TYPE_CASCADES: [(&str, &str); 4] = [
    (crate::USERS, "DELETE FROM passwords WHERE backend = ?"),
    (crate::USERS, "DELETE FROM members WHERE backend = ?"),
    (crate::USERGROUPS, "DELETE FROM members WHERE backend = ?"),
    (crate::USERGROUPS, "DELETE FROM member_acls WHERE backend = ?"),
];

/// Schemas by (backend, object type), `None` for a type without one.
#[derive(Default)]
pub(crate) struct SchemaCache {
    schemas: std::collections::HashMap<(String, String), Option<std::sync::Arc<Value>>>,
    /// Bumped by every committed change, so that a read that began before it does not cache what it read.
    generation: u64,
}

impl SqliteStore {
    /// Forgets cached schemas; called once a change to them has committed.
    pub(crate) fn forget_schemas(&self) {
        let mut cache = self.schema_cache.write().unwrap_or_else(|p| p.into_inner());
        cache.generation += 1;
        cache.schemas.clear();
    }
}

impl Schemas for SqliteStore {
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
            let mut tx = self.writer.begin().await?;
            sqlx::query("INSERT OR REPLACE INTO object_types (backend, name, schema) VALUES (?, ?, ?)")
                .bind(backend)
                .bind(object_type)
                .bind(schema.to_string())
                .execute(&mut *tx)
                .await?;
            let had: Vec<(String,)> =
                sqlx::query_as("SELECT property FROM property_indexes WHERE backend = ? AND object_type = ?")
                    .bind(backend)
                    .bind(object_type)
                    .fetch_all(&mut *tx)
                    .await?;
            // The search rows go first if the searched properties move: their slots may go with a dropped index.
            let reslotted =
                super::search::slots(&mut tx, backend, object_type).await? != super::search::slots_of(&rules.searched);
            if reslotted {
                super::search::forget(&mut tx, backend, object_type).await?;
            }
            for (property,) in had.iter().filter(|(p,)| !indexed.contains(p)) {
                drop_index(&mut tx, backend, object_type, property).await?;
            }
            let added: Vec<&String> = indexed.iter().filter(|p| !had.iter().any(|(h,)| h == *p)).collect();
            for property in &added {
                on_property(&mut tx, ADD_PROPERTY_INDEX, [backend, object_type, property]).await?;
            }
            let built = fit_key_indexes(&mut tx, backend, object_type).await?;
            for property in &added {
                fill_index(&mut tx, backend, object_type, property).await?;
            }
            if reslotted {
                super::search::reslot(&mut tx, backend, object_type, &rules.searched).await?;
            }
            drop_cascades(&mut tx, backend, object_type).await?;
            for cascade in &rules.cascades {
                create_cascade(&mut tx, backend, object_type, cascade).await?;
            }
            tx.commit().await?;
            self.forget_schemas();
            let (populated,): (bool,) =
                sqlx::query_as("SELECT EXISTS (SELECT 1 FROM objects WHERE backend = ? AND object_type = ?)")
                    .bind(backend)
                    .bind(object_type)
                    .fetch_one(&self.writer)
                    .await?;
            if populated && built {
                // Statistics for the new indexes of a collection that has objects, so that the planner weighs
                // them from the first query on (`keep_statistics` follows its growth).
                let analyze = format!("{}; ANALYZE objects", super::ANALYSIS_LIMIT);
                sqlx::raw_sql(sqlx::AssertSqlSafe(analyze)).execute(&self.writer).await?;
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
            let key = (backend.to_owned(), object_type.to_owned());
            let generation = {
                let cache = self.schema_cache.read().unwrap_or_else(|p| p.into_inner());
                if let Some(cached) = cache.schemas.get(&key) {
                    return Ok(cached.clone());
                }
                cache.generation
            };
            let row: Option<(String,)> =
                sqlx::query_as("SELECT schema FROM object_types WHERE backend = ? AND name = ?")
                    .bind(backend)
                    .bind(object_type)
                    .fetch_optional(&self.readers)
                    .await?;
            let schema = row.and_then(|(text,)| serde_json::from_str(&text).ok()).map(std::sync::Arc::new);
            let mut cache = self.schema_cache.write().unwrap_or_else(|p| p.into_inner());
            // A change committed since our read would make what we read stale.
            if cache.generation == generation {
                if cache.schemas.len() >= SCHEMA_CACHE_LIMIT {
                    cache.schemas.clear();
                }
                cache.schemas.insert(key, schema.clone());
            }
            Ok(schema)
        })
    }

    fn schemas<'a>(&'a self, backend: &'a str) -> BoxFuture<'a, Result<Vec<Value>, StoreError>> {
        Box::pin(async move {
            let rows: Vec<(String,)> =
                sqlx::query_as("SELECT schema FROM object_types WHERE backend = ? ORDER BY name")
                    .bind(backend)
                    .fetch_all(&self.readers)
                    .await?;
            Ok(rows.iter().filter_map(|(text,)| serde_json::from_str(text).ok()).collect())
        })
    }

    fn delete_schema<'a>(&'a self, backend: &'a str, object_type: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut tx = self.writer.begin().await?;
            let deleted = sqlx::query("DELETE FROM object_types WHERE backend = ? AND name = ?")
                .bind(backend)
                .bind(object_type)
                .execute(&mut *tx)
                .await?;
            if deleted.rows_affected() == 1 {
                super::search::forget(&mut tx, backend, object_type).await?;
                let had: Vec<(String,)> =
                    sqlx::query_as("SELECT property FROM property_indexes WHERE backend = ? AND object_type = ?")
                        .bind(backend)
                        .bind(object_type)
                        .fetch_all(&mut *tx)
                        .await?;
                for (property,) in &had {
                    drop_index(&mut tx, backend, object_type, property).await?;
                }
                drop_cascades(&mut tx, backend, object_type).await?;
                sqlx::query("DELETE FROM objects WHERE backend = ? AND object_type = ?")
                    .bind(backend)
                    .bind(object_type)
                    .execute(&mut *tx)
                    .await?;
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
            self.forget_schemas();
            Ok(deleted.rows_affected() == 1)
        })
    }
}
