//! Lists, counts and their plans in PostgreSQL: one statement each, compiled by `updraft_query::postgres`.
//!
//! Filter, sort and permissions all run in the database. The collection is named literally so that the planner
//! may use the partial key indexes of `schemas.rs`. Which properties have one comes from the node's catalog
//! (`catalog.rs`), and may be a notification's latency old; that only decides whether the statement is written in
//! index terms, which mean the same with or without the index. Whether any row holds an array in them, which
//! changes what those terms mean, is read in the same snapshot (a `REPEATABLE READ` transaction) as the query
//! itself, so a write landing between the two cannot make the answer wrong. A read runs under a statement
//! timeout and is refused past it, as the SQLite store refuses an over-budget read.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::Value;
use updraft_query::postgres::{self as query_sql, Indexed, Layout};
use updraft_query::{Filter, Sort};

use super::params::{Param, Params};
use super::schemas::collection_literal;
use super::{PostgresStore, parse_doc, readable};
use crate::document::{self, RESERVED};
use crate::{Access, Collection, ListQuery, Page, QueryPlan, StoreError};

/// How long a list or a count may run before it is refused.
const MAX_READ_MS: u32 = 5_000;
/// The message of a refused read: the SQLite store's, so clients see one error whatever the engine.
const TOO_EXPENSIVE: &str = "Query too expensive";

#[derive(Debug, Clone, Copy)]
enum Shape {
    Page(Page),
    Count,
}

struct ListRead<'a> {
    at: Collection<'a>,
    filter: &'a Filter,
    sort: &'a Sort,
    shape: Shape,
    access: Access<'a>,
}

impl ListRead<'_> {
    /// The statement over `objects`, with the key indexes `indexed`.
    fn statement(&self, indexed: &[Indexed]) -> Result<(String, Params), StoreError> {
        let collection = collection_literal("objects", self.at.backend, self.at.object_type)?;
        let layout = Layout { doc: "objects.doc", reserved: Some(document::format_ms), indexed };
        let mut params = Params::default();
        let compiled = query_sql::compile_in(self.filter, &layout, params.next())
            .map_err(|err| StoreError::Invalid { message: err.message, property: err.property })?;
        params.extend(compiled.binds.into_iter().map(param));
        let allowed = readable(self.access, &mut params);
        let selection = format!("{collection} AND ({}) AND {allowed}", compiled.where_clause);
        let sql = match self.shape {
            Shape::Count => format!("SELECT count(*) FROM objects WHERE {selection}"),
            Shape::Page(Page { limit, offset }) => {
                // Ties in creation order; a key index (which ends in `created_ms, id`) then serves a one-key sort.
                let unsorted = if self.sort.keys.is_empty() { index_order(self.filter, indexed) } else { None };
                let sort = unsorted.as_ref().unwrap_or(self.sort);
                let order = query_sql::order_by_in(sort, self.filter, &layout, &["objects.created_ms", "objects.id"]);
                format!(
                    "SELECT objects.doc FROM objects WHERE {selection} ORDER BY {order} LIMIT {limit} OFFSET {offset}"
                )
            }
        };
        Ok((sql, params))
    }

    /// The filtered properties among `keyed` (those with a key index), and whether any object of the collection
    /// holds an array there.
    async fn indexed(&self, tx: &mut sqlx::PgConnection, keyed: &HashSet<String>) -> Result<Vec<Indexed>, StoreError> {
        let mut have: Vec<&str> =
            self.filter.properties().into_iter().filter(|p| !RESERVED.contains(p) && keyed.contains(*p)).collect();
        have.sort_unstable();
        have.dedup();
        if have.is_empty() {
            return Ok(Vec::new());
        }
        let collection = collection_literal("objects", self.at.backend, self.at.object_type)?;
        let mut indexed = Vec::with_capacity(have.len());
        for property in have {
            let property = property.to_owned();
            // One probe of the key index: arrays rank apart from every other type (`key_index_terms`).
            let probe = format!(
                "SELECT EXISTS (SELECT 1 FROM objects WHERE {collection} AND {})",
                query_sql::holds_array(&property, "objects.doc")
            );
            let (arrays,): (bool,) = sqlx::query_as(sqlx::AssertSqlSafe(probe)).fetch_one(&mut *tx).await?;
            indexed.push(Indexed { property, arrays });
        }
        Ok(indexed)
    }
}

/// The order of a list that asks for none: that of the index serving its first condition an index can serve,
/// as on SQLite (`updraft_query::sqlite::index_order`, which decides from the layout alone), so that both engines
/// answer one list alike.
fn index_order(filter: &Filter, indexed: &[Indexed]) -> Option<Sort> {
    let indexed: Vec<updraft_query::sqlite::Indexed> = indexed
        .iter()
        .map(|it| updraft_query::sqlite::Indexed { property: it.property.clone(), arrays: it.arrays })
        .collect();
    let layout = updraft_query::sqlite::Layout { doc: "doc", reserved: Some(document::format_ms), indexed: &indexed };
    updraft_query::sqlite::index_order(filter, &layout)
}

fn param(bind: query_sql::Bind) -> Param {
    match bind {
        query_sql::Bind::Int(it) => Param::Int(it),
        query_sql::Bind::Real(it) => Param::Real(it),
        query_sql::Bind::Text(it) => Param::Text(it),
    }
}

/// A read that ran past `MAX_READ_MS` (PostgreSQL's `query_canceled`) is refused, not failed.
pub(super) fn refused(err: sqlx::Error) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("57014") => StoreError::Invalid {
            message: format!("{TOO_EXPENSIVE}: it ran over the {MAX_READ_MS} ms limit"),
            property: None,
        },
        _ => err.into(),
    }
}

impl PostgresStore {
    /// The properties of the collection with a key index, from the catalog.
    pub(super) async fn keyed(&self, at: Collection<'_>) -> Result<Arc<HashSet<String>>, StoreError> {
        let miss = match self.catalog.indexed(at.backend, at.object_type) {
            Ok(keyed) => return Ok(keyed),
            Err(miss) => miss,
        };
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT property FROM property_indexes WHERE backend = $1 AND object_type = $2")
                .bind(at.backend)
                .bind(at.object_type)
                .fetch_all(&self.pool)
                .await?;
        let keyed = Arc::new(rows.into_iter().map(|(property,)| property).collect());
        self.catalog.keep_indexed(miss, at.backend, at.object_type, &keyed);
        Ok(keyed)
    }

    /// Runs `read` in one snapshot under the read time limit: `run` gets the statement and its parameters.
    async fn read<T>(
        &self,
        read: &ListRead<'_>,
        run: impl AsyncFnOnce(&mut sqlx::PgConnection, &str, &Params) -> Result<T, sqlx::Error>,
    ) -> Result<T, StoreError> {
        let keyed = self.keyed(read.at).await?;
        // One round trip for both: a custom BEGIN goes as a simple query, which may hold several statements.
        let mut tx = self
            .pool
            .begin_with(sqlx::AssertSqlSafe(format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET LOCAL statement_timeout = {MAX_READ_MS}"
            )))
            .await?;
        let indexed = read.indexed(&mut tx, &keyed).await?;
        let (sql, params) = read.statement(&indexed)?;
        let answer = run(&mut tx, &sql, &params).await.map_err(refused)?;
        tx.commit().await?;
        Ok(answer)
    }

    pub(super) async fn list_page(
        &self,
        at: Collection<'_>,
        query: ListQuery<'_>,
        access: Access<'_>,
    ) -> Result<Vec<Value>, StoreError> {
        let read = ListRead { at, filter: query.filter, sort: query.sort, shape: Shape::Page(query.page), access };
        let rows: Vec<(Value,)> =
            self.read(&read, async |conn, sql, params| params.query_as(sql).fetch_all(conn).await).await?;
        rows.into_iter().map(|(doc,)| parse_doc(doc).map(Value::Object)).collect()
    }

    pub(super) async fn count_rows(
        &self,
        at: Collection<'_>,
        filter: &Filter,
        access: Access<'_>,
    ) -> Result<u64, StoreError> {
        let sort = Sort { keys: Vec::new() };
        let read = ListRead { at, filter, sort: &sort, shape: Shape::Count, access };
        let (n,): (i64,) =
            self.read(&read, async |conn, sql, params| params.query_as(sql).fetch_one(conn).await).await?;
        Ok(n.max(0) as u64)
    }

    pub(super) async fn explain_plan(
        &self,
        at: Collection<'_>,
        query: ListQuery<'_>,
        count: bool,
        access: Access<'_>,
    ) -> Result<QueryPlan, StoreError> {
        let shape = if count { Shape::Count } else { Shape::Page(query.page) };
        let read = ListRead { at, filter: query.filter, sort: query.sort, shape, access };
        let keyed = self.keyed(at).await?;
        let mut tx = self.pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY").await?;
        let indexed = read.indexed(&mut tx, &keyed).await?;
        let (sql, params) = read.statement(&indexed)?;
        let rows: Vec<(String,)> = params.query_as(&format!("EXPLAIN {sql}")).fetch_all(&mut *tx).await?;
        // Index names are made up (`schemas.rs`): the plan names each key index by what it indexes instead.
        let names: Vec<(String, String, String)> =
            sqlx::query_as("SELECT index_name, object_type, property FROM property_indexes WHERE backend = $1")
                .bind(at.backend)
                .fetch_all(&mut *tx)
                .await?;
        tx.commit().await?;
        let readable = |line: String| {
            names.iter().fold(line, |line, (name, object_type, property)| {
                line.replace(name, &format!("key:{}:{object_type}:{property}", at.backend))
            })
        };
        Ok(QueryPlan {
            steps: rows.into_iter().map(|(line,)| readable(line)).collect(),
            indexed: indexed.into_iter().map(|it| (it.property, it.arrays)).collect(),
        })
    }
}
