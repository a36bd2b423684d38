//! Full-text search in PostgreSQL (docs/search.md), on the tables of `migrations-postgres/0002_search.sql`.
//!
//! The store writes an object's search row in the transaction of every write of its document ([`index`]), folding
//! its searched properties in Rust exactly as the reference evaluator (`updraft_query::search::Expr::matches`)
//! folds them, so that the SQL answer is the evaluator's: a word or words in a row are a substring of a slot's
//! `words` (each word wrapped in spaces), a prefix the same without the last space, text inside words a substring
//! of the slot's `raw` text. Every object of a searched collection has a row, so `NOT` and `*` find objects whose
//! properties are empty too, as the evaluator does.
//!
//! Relevance is a BM25-like score without the rarity of words (term frequency, saturated, against the object's
//! length), the newest first among equals; phrases the SQLite store cannot rank (text inside words, a lone `*` or
//! negation) come newest first here too.

use serde_json::{Map, Value};
use updraft_query::Filter;
use updraft_query::search::{Expr, folded, folded_words};

use super::params::{Param, Params};
use super::{PostgresStore, parse_doc, plain, readable};
use crate::document::format_ms;
use crate::{Access, BoxFuture, MAX_SEARCHED_PER_TYPE, Page, Search, SearchQuery, StoreError};

/// How long a search may run before it is refused, as a list.
const MAX_READ_MS: u32 = 5_000;

/// The searched properties of a collection, in slot order; `None` when it has none.
async fn searched(
    conn: &mut sqlx::PgConnection,
    backend: &str,
    object_type: &str,
) -> Result<Option<Vec<String>>, StoreError> {
    let row: Option<(Value,)> =
        sqlx::query_as("SELECT properties FROM search_collections WHERE backend = $1 AND object_type = $2")
            .bind(backend)
            .bind(object_type)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(row.map(|(properties,)| serde_json::from_value(properties).unwrap_or_default()))
}

/// A slot's text: a string, or the strings of an array joined by spaces; nothing else is searched.
fn slot_text(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "),
        _ => String::new(),
    }
}

/// Writes the object's search row, if its collection is searched (every write of a document calls this).
pub(super) async fn index(
    tx: &mut sqlx::PgConnection,
    backend: &str,
    object_type: &str,
    id: &str,
    doc: &Map<String, Value>,
) -> Result<(), StoreError> {
    let Some(properties) = searched(tx, backend, object_type).await? else { return Ok(()) };
    write_row(tx, backend, object_type, id, doc, &properties).await
}

async fn write_row(
    tx: &mut sqlx::PgConnection,
    backend: &str,
    object_type: &str,
    id: &str,
    doc: &Map<String, Value>,
    properties: &[String],
) -> Result<(), StoreError> {
    let texts: Vec<String> = properties.iter().map(|p| slot_text(doc.get(p))).collect();
    let raw: Vec<String> = texts.iter().map(|text| folded(text)).collect();
    let words: Vec<Vec<String>> = texts.iter().map(|text| folded_words(text)).collect();
    let length: usize = words.iter().map(Vec::len).sum();
    let wrapped: Vec<String> = words.iter().map(|words| words.iter().map(|w| format!(" {w} ")).collect()).collect();
    sqlx::query(
        "INSERT INTO search_texts (backend, object_type, id, raw, words, length) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (backend, object_type, id) DO UPDATE SET raw = EXCLUDED.raw, words = EXCLUDED.words,
                                                              length = EXCLUDED.length",
    )
    .bind(backend)
    .bind(object_type)
    .bind(id)
    .bind(&raw)
    .bind(&wrapped)
    .bind(i32::try_from(length).unwrap_or(i32::MAX))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The collection's searched properties are now `searched` (none: it is not searched); rebuilds its rows when
/// they moved.
pub(super) async fn reindex(
    tx: &mut sqlx::PgConnection,
    backend: &str,
    object_type: &str,
    searched_now: &[String],
) -> Result<(), StoreError> {
    if searched_now.len() > MAX_SEARCHED_PER_TYPE {
        let message = format!("at most {MAX_SEARCHED_PER_TYPE} searched properties per object type");
        return Err(StoreError::Invalid { message, property: None });
    }
    let had = searched(tx, backend, object_type).await?;
    if had.as_deref().unwrap_or_default() == searched_now {
        return Ok(());
    }
    forget(tx, backend, object_type).await?;
    if searched_now.is_empty() {
        return Ok(());
    }
    sqlx::query("INSERT INTO search_collections (backend, object_type, properties) VALUES ($1, $2, $3)")
        .bind(backend)
        .bind(object_type)
        .bind(Value::from(searched_now.to_vec()))
        .execute(&mut *tx)
        .await?;
    // A page of objects at a time, by id, so that a large collection is never in memory at once.
    let mut after = String::new();
    loop {
        let page: Vec<(String, Value)> = sqlx::query_as(
            "SELECT id, doc FROM objects WHERE backend = $1 AND object_type = $2 AND id > $3 ORDER BY id LIMIT 500",
        )
        .bind(backend)
        .bind(object_type)
        .bind(&after)
        .fetch_all(&mut *tx)
        .await?;
        let Some((last, _)) = page.last() else { return Ok(()) };
        after = last.clone();
        for (id, doc) in page {
            write_row(tx, backend, object_type, &id, &parse_doc(doc)?, searched_now).await?;
        }
    }
}

/// The collection is no longer searched (its schema went, or its searched properties moved).
pub(super) async fn forget(tx: &mut sqlx::PgConnection, backend: &str, object_type: &str) -> Result<(), StoreError> {
    for table in ["search_texts", "search_collections"] {
        let sql = format!("DELETE FROM {table} WHERE backend = $1 AND object_type = $2");
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(backend).bind(object_type).execute(&mut *tx).await?;
    }
    Ok(())
}

/// The backend's app went.
pub(super) async fn forget_backend(tx: &mut sqlx::PgConnection, backend: &str) -> Result<(), StoreError> {
    for table in ["search_texts", "search_collections"] {
        let sql = format!("DELETE FROM {table} WHERE backend = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(backend).execute(&mut *tx).await?;
    }
    Ok(())
}

/// One searched type of a search: its name and the slots (1-based) of the properties asked for.
struct Searched {
    object_type: String,
    slots: Vec<usize>,
}

/// The SQL condition, over the row `s` of `search_texts`, that `expr` holds in one of `slots`.
fn condition(expr: &Expr, slots: &[usize], params: &mut Params) -> String {
    let any_slot = |column: &str, pattern: String, params: &mut Params| {
        if slots.is_empty() {
            return "false".to_owned();
        }
        let p = params.push(Param::Text(pattern));
        let each: Vec<String> =
            slots.iter().map(|i| format!("coalesce(strpos(s.{column}[{i}], {p}::text), 0) > 0")).collect();
        format!("({})", each.join(" OR "))
    };
    match expr {
        Expr::Everything => "true".to_owned(),
        Expr::Words { words, prefix } => any_slot("words", words_pattern(words, *prefix), params),
        Expr::Inside(text) => any_slot("raw", folded(text), params),
        Expr::All(all) => {
            format!("({})", all.iter().map(|e| condition(e, slots, params)).collect::<Vec<_>>().join(" AND "))
        }
        Expr::Any(any) => {
            format!("({})", any.iter().map(|e| condition(e, slots, params)).collect::<Vec<_>>().join(" OR "))
        }
        Expr::Not(not) => format!("(NOT {})", condition(not, slots, params)),
    }
}

/// Words in a row as they stand in a `words` slot; without the last space for a prefix.
fn words_pattern(words: &[String], prefix: bool) -> String {
    let mut pattern: String = words.iter().flat_map(|w| folded_words(w)).map(|w| format!(" {w} ")).collect();
    if prefix {
        pattern.pop();
    }
    pattern
}

/// The patterns of the words `expr` asks for (not under a negation), which relevance counts; `None` when the
/// phrase has no relevance (text inside words, or nothing but `*` and negations).
fn ranked_patterns(expr: &Expr) -> Option<Vec<String>> {
    fn walk(expr: &Expr, patterns: &mut Vec<String>) -> bool {
        match expr {
            Expr::Everything | Expr::Not(_) => true,
            Expr::Inside(_) => false,
            Expr::Words { words, prefix } => {
                patterns.push(words_pattern(words, *prefix));
                true
            }
            Expr::All(list) | Expr::Any(list) => list.iter().all(|e| walk(e, patterns)),
        }
    }
    let mut patterns = Vec::new();
    (walk(expr, &mut patterns) && !patterns.is_empty()).then_some(patterns)
}

/// Relevance: per word pattern, its occurrences in the slots searched, saturated and weighed against length.
fn score(patterns: &[String], searched: &[Searched], params: &mut Params) -> String {
    let slots: Vec<usize> = searched
        .iter()
        .flat_map(|it| it.slots.iter().copied())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let terms: Vec<String> = patterns
        .iter()
        .map(|pattern| {
            let p = params.push(Param::Text(pattern.clone()));
            let counts: Vec<String> = slots
                .iter()
                .map(|i| {
                    format!(
                        "coalesce((length(s.words[{i}]) - length(replace(s.words[{i}], {p}::text, ''))) \
                         / greatest(length({p}::text), 1), 0)"
                    )
                })
                .collect();
            let tf = format!("({})::float8", counts.join(" + "));
            format!("({tf} / ({tf} + 1.2 * (0.25 + 0.75 * s.length / 8.0)))")
        })
        .collect();
    terms.join(" + ")
}

#[derive(Clone, Copy)]
enum Shape {
    Page(Page),
    Count,
}

impl PostgresStore {
    /// The types of `query` that search any of the properties asked for, with their slots.
    async fn searched_types(
        &self,
        conn: &mut sqlx::PgConnection,
        backend: &str,
        query: &SearchQuery<'_>,
    ) -> Result<Vec<Searched>, StoreError> {
        let mut found = Vec::new();
        for object_type in query.object_types {
            let Some(properties) = searched(conn, backend, object_type).await? else { continue };
            let slots: Vec<usize> = properties
                .iter()
                .enumerate()
                .filter(|(_, p)| query.properties.is_none_or(|asked| asked.contains(p)))
                .map(|(i, _)| i + 1)
                .collect();
            if !slots.is_empty() && plain(object_type) {
                found.push(Searched { object_type: object_type.clone(), slots });
            }
        }
        Ok(found)
    }

    async fn run_search<T>(
        &self,
        backend: &str,
        query: SearchQuery<'_>,
        shape: Shape,
        access: Access<'_>,
        run: impl AsyncFnOnce(&mut sqlx::PgConnection, &str, &Params) -> Result<T, sqlx::Error>,
    ) -> Result<T, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("SET LOCAL statement_timeout = {MAX_READ_MS}")))
            .execute(&mut *tx)
            .await?;
        let searched = self.searched_types(&mut tx, backend, &query).await?;
        if searched.is_empty() {
            return Err(StoreError::Invalid { message: nothing_searched(&query), property: Some("properties".into()) });
        }
        let (sql, params) = statement(backend, &query, &searched, shape, access);
        let answer = run(&mut tx, &sql, &params).await.map_err(super::lists::refused)?;
        tx.commit().await?;
        Ok(answer)
    }
}

fn nothing_searched(query: &SearchQuery<'_>) -> String {
    let asked = match query.properties {
        Some(properties) => format!("the properties {}", properties.join(", ")),
        None => "any property".to_owned(),
    };
    format!(
        "{} search {asked}: a search reads properties of type string declared `indexed` in the schema",
        if query.object_types.len() == 1 { "the object type does not" } else { "none of the object types does" },
    )
}

fn statement(
    backend: &str,
    query: &SearchQuery<'_>,
    searched: &[Searched],
    shape: Shape,
    access: Access<'_>,
) -> (String, Params) {
    let mut params = Params::new(vec![Param::Text(backend.to_owned())]);
    let per_type: Vec<String> = searched
        .iter()
        .map(|it| {
            let t = params.push(Param::Text(it.object_type.clone()));
            format!("(s.object_type = {t} AND {})", condition(query.phrase, &it.slots, &mut params))
        })
        .collect();
    let allowed = readable(access, &mut params);
    let from = format!(
        "FROM search_texts AS s JOIN objects ON objects.backend = s.backend AND objects.object_type = s.object_type \
         AND objects.id = s.id WHERE s.backend = $1 AND ({}) AND {allowed}",
        per_type.join(" OR ")
    );
    let Shape::Page(Page { limit, offset }) = shape else { return (format!("SELECT count(*) {from}"), params) };
    let order = match ranked_patterns(query.phrase) {
        _ if !query.sort.keys.is_empty() => {
            let layout =
                updraft_query::postgres::Layout { doc: "objects.doc", reserved: Some(format_ms), indexed: &[] };
            let no_filter = Filter { clauses: Vec::new() };
            updraft_query::postgres::order_by_in(query.sort, &no_filter, &layout, &["objects.created_ms", "objects.id"])
        }
        Some(patterns) => {
            format!("{} DESC, objects.created_ms DESC, objects.id", score(&patterns, searched, &mut params))
        }
        None => "objects.created_ms DESC, objects.id".to_owned(),
    };
    (format!("SELECT objects.doc {from} ORDER BY {order} LIMIT {limit} OFFSET {offset}"), params)
}

impl Search for PostgresStore {
    fn search<'a>(
        &'a self,
        backend: &'a str,
        query: SearchQuery<'a>,
        page: Page,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<Vec<Value>, StoreError>> {
        Box::pin(async move {
            let rows: Vec<(Value,)> = self
                .run_search(backend, query, Shape::Page(page), access, async |conn, sql, params| {
                    params.query_as(sql).fetch_all(conn).await
                })
                .await?;
            rows.into_iter().map(|(doc,)| parse_doc(doc).map(Value::Object)).collect()
        })
    }

    fn search_count<'a>(
        &'a self,
        backend: &'a str,
        query: SearchQuery<'a>,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let (n,): (i64,) = self
                .run_search(backend, query, Shape::Count, access, async |conn, sql, params| {
                    params.query_as(sql).fetch_one(conn).await
                })
                .await?;
            Ok(n.max(0) as u64)
        })
    }
}
