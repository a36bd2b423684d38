//! Full-text search in PostgreSQL (docs/search.md), on the tables of `migrations-postgres/0002_search.sql` and
//! `0004_search_terms.sql`.
//!
//! The store writes an object's search row in the transaction of every write of its document ([`index`]), folding
//! its searched properties in Rust exactly as the reference evaluator (`updraft_query::search::Expr::matches`)
//! folds them, so that the SQL answer is the evaluator's: a word or words in a row are a substring of a slot's
//! `words` (each word wrapped in spaces), a prefix the same without the last space, text inside words a substring
//! of the slot's `raw` text. Every object of a searched collection has a row, so `NOT` and `*` find objects whose
//! properties are empty too, as the evaluator does. Those checks read rows; the row's `terms` (a tsvector of
//! `<slot>/<word>` lexemes, migration 0004) let a GIN index find the rows that hold a phrase's words first
//! ([`narrowing`]), so a search for words reads the rows holding them, not the collection. Text inside words,
//! `*` and a negation alone narrow nothing: they read the collection's rows (at about 0.4 µs a row).
//!
//! A writer reads its collection's searched properties `FOR SHARE`, and a schema change updates that row in
//! place: a write concurrent with a change of the searched properties either commits before the change reads the
//! objects, or waits for the change and indexes with the new properties. (The row is made with the collection's
//! first schema; a write racing that very first schema may go unindexed until its next update.)
//!
//! Relevance is BM25 as the embedded store computes it (`sqlite/search/rank.rs`: k1 1.2, b 0.75, each phrase
//! weighed by its rarity when there are several), with these differences: the rows counted for rarity and mean
//! length are those of the collections searched (SQLite counts its whole index, every backend's), a row's length
//! is its exact count of words (SQLite: of space-separated words, in buckets), and a phrase's occurrences are
//! counted without overlaps. As there, the newest come first among equals, and a phrase FTS5 cannot say alone
//! (text inside words, `*`, a negation without a positive term beside it) has no relevance: newest first.

use serde_json::{Map, Value};
use updraft_query::Filter;
use updraft_query::search::{Expr, folded, folded_words, fts5};

use super::params::{Param, Params};
use super::{PostgresStore, parse_doc, plain, readable};
use crate::document::format_ms;
use crate::{Access, BoxFuture, MAX_SEARCHED_PER_TYPE, Page, Search, SearchQuery, StoreError};

/// How long a search may run before it is refused, as a list.
const MAX_READ_MS: u32 = 5_000;

/// The searched properties of a collection, in slot order; `None` when it has none. `lock`: the row is held
/// (`FOR SHARE`) until the transaction ends, so that a change of them waits for the writer, or the writer for it.
async fn searched(
    conn: &mut sqlx::PgConnection,
    backend: &str,
    object_type: &str,
    lock: bool,
) -> Result<Option<Vec<String>>, StoreError> {
    let lock = if lock { " FOR SHARE" } else { "" };
    let sql = format!("SELECT properties FROM search_collections WHERE backend = $1 AND object_type = $2{lock}");
    let row: Option<(Value,)> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(backend).bind(object_type).fetch_optional(&mut *conn).await?;
    let properties: Vec<String> = row.and_then(|(it,)| serde_json::from_value(it).ok()).unwrap_or_default();
    Ok((!properties.is_empty()).then_some(properties))
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
    index_many(tx, crate::Collection { backend, object_type }, std::iter::once((id, doc))).await
}

/// `index` for several new objects of one collection (`group_commit.rs`), reading its properties once.
pub(super) async fn index_many<'d>(
    tx: &mut sqlx::PgConnection,
    at: crate::Collection<'_>,
    rows: impl Iterator<Item = (&'d str, &'d Map<String, Value>)>,
) -> Result<(), StoreError> {
    let Some(properties) = searched(tx, at.backend, at.object_type, true).await? else { return Ok(()) };
    for (id, doc) in rows {
        write_row(tx, at.backend, at.object_type, id, doc, &properties).await?;
    }
    Ok(())
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
        "INSERT INTO search_texts (backend, object_type, id, raw, words, length, terms)
         VALUES ($1, $2, $3, $4, $5, $6, array_to_tsvector($7::text[]))
         ON CONFLICT (backend, object_type, id) DO UPDATE SET raw = EXCLUDED.raw, words = EXCLUDED.words,
                                                              length = EXCLUDED.length, terms = EXCLUDED.terms",
    )
    .bind(backend)
    .bind(object_type)
    .bind(id)
    .bind(&raw)
    .bind(&wrapped)
    .bind(i32::try_from(length).unwrap_or(i32::MAX))
    .bind(terms(&words))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The longest word, in bytes, that is a lexeme of `terms`, and the most bytes of lexemes in a row: well within
/// a tsvector's limits (2 kB a lexeme, 1 MB in all).
const MAX_TERM_BYTES: usize = 256;
const MAX_TERMS_BYTES: usize = 256 * 1024;

/// The lexemes of a row's `terms`: `<slot>/<word>` for each word of each slot (1-based), or `!` alone (looked up
/// by every search, so the row is checked exactly) when they do not all fit.
fn terms(words: &[Vec<String>]) -> Vec<String> {
    let mut terms = std::collections::BTreeSet::new();
    for (slot, words) in words.iter().enumerate() {
        for word in words {
            if word.len() > MAX_TERM_BYTES {
                return vec![EVERY_ROW.to_owned()];
            }
            terms.insert(format!("{}/{word}", slot + 1));
        }
    }
    if terms.iter().map(String::len).sum::<usize>() > MAX_TERMS_BYTES {
        return vec![EVERY_ROW.to_owned()];
    }
    terms.into_iter().collect()
}

/// The lexeme of rows every search checks exactly (see `migrations-postgres/0004_search_terms.sql`).
const EVERY_ROW: &str = "!";

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
    // Updated in place (an empty list when not searched), never deleted and made again: a writer waiting on the
    // row then reads the new properties.
    let (had,): (Option<Value>,) = sqlx::query_as(
        "WITH had AS (SELECT properties FROM search_collections WHERE backend = $1 AND object_type = $2 FOR UPDATE),
              put AS (INSERT INTO search_collections (backend, object_type, properties) VALUES ($1, $2, $3)
                      ON CONFLICT (backend, object_type) DO UPDATE SET properties = EXCLUDED.properties)
         SELECT (SELECT properties FROM had)",
    )
    .bind(backend)
    .bind(object_type)
    .bind(Value::from(searched_now.to_vec()))
    .fetch_one(&mut *tx)
    .await?;
    let had: Vec<String> = had.and_then(|it| serde_json::from_value(it).ok()).unwrap_or_default();
    if had == searched_now {
        return Ok(());
    }
    sqlx::query("DELETE FROM search_texts WHERE backend = $1 AND object_type = $2")
        .bind(backend)
        .bind(object_type)
        .execute(&mut *tx)
        .await?;
    if searched_now.is_empty() {
        return Ok(());
    }
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

/// `OR` over `slots` of `pattern` being in the slot's `column` (`words` or `raw`) of the row `s`.
fn in_slots(column: &str, slots: &[usize], pattern: &str) -> String {
    if slots.is_empty() {
        return "false".to_owned();
    }
    let each: Vec<String> =
        slots.iter().map(|i| format!("coalesce(strpos(s.{column}[{i}], {pattern}::text), 0) > 0")).collect();
    format!("({})", each.join(" OR "))
}

/// The SQL condition, over the row `s` of `search_texts`, that `expr` holds in one of `slots`.
fn condition(expr: &Expr, slots: &[usize], params: &mut Params) -> String {
    let joined = |list: &[Expr], op: &str, params: &mut Params| {
        let parts: Vec<String> = list.iter().map(|e| condition(e, slots, params)).collect();
        format!("({})", parts.join(op))
    };
    match expr {
        Expr::Everything => "true".to_owned(),
        Expr::Words { words, prefix } => match words_pattern(words, *prefix) {
            Some(pattern) => in_slots("words", slots, &params.push(Param::Text(pattern))),
            None => "false".to_owned(),
        },
        Expr::Inside(text) => in_slots("raw", slots, &params.push(Param::Text(folded(text)))),
        Expr::All(all) => joined(all, " AND ", params),
        Expr::Any(any) => joined(any, " OR ", params),
        Expr::Not(not) => format!("(NOT {})", condition(not, slots, params)),
    }
}

/// A phrase's words, folded as the rows' words are.
struct Phrase {
    words: Vec<String>,
    prefix: bool,
}

impl Phrase {
    /// `None` when a word folds to something that is not one word (a lower case with a combining mark, such as
    /// `İ`'s): the reference compares the folded word whole, so it is in no text.
    fn of(words: &[String], prefix: bool) -> Option<Phrase> {
        let words: Vec<String> = words.iter().map(|word| folded(word)).collect();
        let whole = |word: &String| !word.is_empty() && word.chars().all(char::is_alphanumeric);
        (!words.is_empty() && words.iter().all(whole)).then_some(Phrase { words, prefix })
    }

    /// The words in a row as they stand in a `words` slot; without the last space for a prefix.
    fn pattern(&self) -> String {
        let mut pattern: String = self.words.iter().map(|word| format!(" {word} ")).collect();
        if self.prefix {
            pattern.pop();
        }
        pattern
    }

    /// A tsquery of rows whose `terms` hold the words in one of `slots` (in a row or not: `condition` checks).
    fn lexemes(&self, slots: &[usize]) -> String {
        let last = self.words.len() - 1;
        let per_slot: Vec<String> = slots
            .iter()
            .map(|slot| {
                let each: Vec<String> = self
                    .words
                    .iter()
                    .enumerate()
                    .map(|(i, word)| {
                        let star = if self.prefix && i == last { ":*" } else { "" };
                        format!("{}{star}", lexeme(&format!("{slot}/{word}")))
                    })
                    .collect();
                format!("({})", each.join(" & "))
            })
            .collect();
        if per_slot.is_empty() { lexeme(NO_ROW) } else { format!("({})", per_slot.join(" | ")) }
    }
}

/// A lexeme in tsquery text: quoted, so that nothing in it is an operator.
fn lexeme(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

/// A lexeme in no row's `terms`.
const NO_ROW: &str = "!none";

fn words_pattern(words: &[String], prefix: bool) -> Option<String> {
    Phrase::of(words, prefix).map(|phrase| phrase.pattern())
}

/// A tsquery over `terms` that every row where `expr` holds in `slots` matches: the GIN index narrows the rows,
/// `condition` decides. `None` when the phrase cannot narrow them (text inside words, `*`, a negation alone).
fn narrowing(expr: &Expr, slots: &[usize]) -> Option<String> {
    match expr {
        Expr::Words { words, prefix } => {
            Some(Phrase::of(words, *prefix).map_or_else(|| lexeme(NO_ROW), |phrase| phrase.lexemes(slots)))
        }
        Expr::Everything | Expr::Inside(_) | Expr::Not(_) => None,
        Expr::All(all) => {
            let parts: Vec<String> = all.iter().filter_map(|e| narrowing(e, slots)).collect();
            (!parts.is_empty()).then(|| format!("({})", parts.join(" & ")))
        }
        Expr::Any(any) => {
            let parts: Option<Vec<String>> = any.iter().map(|e| narrowing(e, slots)).collect();
            parts.map(|parts| format!("({})", parts.join(" | ")))
        }
    }
}

/// ` AND ` the row's `terms` match `expr`'s narrowing in `slots` (or are `EVERY_ROW`'s), or nothing.
fn narrowed(expr: &Expr, slots: &[usize], params: &mut Params) -> String {
    match narrowing(expr, slots) {
        Some(query) => {
            let query = params.push(Param::Text(format!("{query} | {}", lexeme(EVERY_ROW))));
            format!(" AND s.terms @@ {query}::tsquery")
        }
        None => String::new(),
    }
}

/// The phrases relevance weighs, in FTS5's order, when the phrase has a relevance: when FTS5 can say it alone, as
/// the embedded store ranks (negated phrases, which no match holds, left out).
fn ranked_phrases(expr: &Expr) -> Option<Vec<(&Expr, Phrase)>> {
    fn walk<'e>(expr: &'e Expr, phrases: &mut Vec<(&'e Expr, Phrase)>) {
        match expr {
            Expr::Words { words, prefix } => phrases.extend(Phrase::of(words, *prefix).map(|p| (expr, p))),
            Expr::All(list) | Expr::Any(list) => list.iter().for_each(|e| walk(e, phrases)),
            Expr::Everything | Expr::Inside(_) | Expr::Not(_) => {}
        }
    }
    fts5::words_match(expr, &["p0".to_owned()])?;
    let mut phrases = Vec::new();
    walk(expr, &mut phrases);
    Some(phrases)
}

/// Per type, `each` of its slots, as a `CASE` on the row's type (`$t` placeholders in `types`).
fn per_type(searched: &[Searched], types: &[String], each: impl Fn(&[usize]) -> String) -> String {
    let arms: Vec<String> = searched
        .iter()
        .zip(types)
        .map(|(it, t)| format!("WHEN s.object_type = {t} THEN {}", each(&it.slots)))
        .collect();
    format!("(CASE {} END)", arms.join(" "))
}

/// The statistics BM25 weighs with, over the rows of the types searched: `n` rows and their mean length
/// `avgdl` (from the index `search_lengths` alone), and per phrase, when there are several, `df<i>`: the rows
/// holding it (narrowed by the GIN index).
fn stats(
    phrases: &[(&Expr, Phrase)],
    searched: &[Searched],
    types: &[String],
    placeholders: &[String],
    params: &mut Params,
) -> String {
    let mut frequencies = String::new();
    for (i, ((expr, _), p)) in phrases.iter().zip(placeholders).enumerate().filter(|_| phrases.len() > 1) {
        let holds: Vec<String> = searched
            .iter()
            .zip(types)
            .map(|(it, t)| {
                let narrowed = narrowed(expr, &it.slots, params);
                format!("(s.object_type = {t}{narrowed} AND {})", in_slots("words", &it.slots, p))
            })
            .collect();
        frequencies.push_str(&format!(
            ", (SELECT count(*) FROM search_texts AS s WHERE s.backend = $1 AND ({}))::float8 AS df{i}",
            holds.join(" OR ")
        ));
    }
    let types = types.join(", ");
    format!(
        "stats AS (SELECT count(*)::float8 AS n, greatest(avg(s.length), 1)::float8 AS avgdl{frequencies} \
         FROM search_texts AS s WHERE s.backend = $1 AND s.object_type IN ({types}))"
    )
}

/// BM25 of the row `s` (higher is better), with `stats`.
fn score(phrases: usize, searched: &[Searched], types: &[String], placeholders: &[String]) -> String {
    let terms: Vec<String> = placeholders
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let occurrences = |slots: &[usize]| {
                let counts: Vec<String> = slots
                    .iter()
                    .map(|k| {
                        format!(
                            "coalesce((length(s.words[{k}]) - length(replace(s.words[{k}], {p}::text, ''))) \
                             / length({p}::text), 0)"
                        )
                    })
                    .collect();
                format!("({})", counts.join(" + "))
            };
            let tf = format!("{}::float8", per_type(searched, types, occurrences));
            // As FTS5's bm25: a phrase in more than half the rows weighs almost nothing, never less.
            let idf = if phrases > 1 {
                format!("greatest(ln((stats.n - stats.df{i} + 0.5) / (stats.df{i} + 0.5)), 1e-6)")
            } else {
                "1".to_owned()
            };
            let norm = "1.2 * (0.25 + 0.75 * greatest(s.length, 1) / stats.avgdl)";
            format!("({idf} * {tf} * 2.2 / ({tf} + {norm}))")
        })
        .collect();
    if terms.is_empty() { "0".to_owned() } else { terms.join(" + ") }
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
            let Some(properties) = searched(conn, backend, object_type, false).await? else { continue };
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
    let types: Vec<String> = searched.iter().map(|it| params.push(Param::Text(it.object_type.clone()))).collect();
    let per_type: Vec<String> = searched
        .iter()
        .zip(&types)
        .map(|(it, t)| {
            let narrowed = narrowed(query.phrase, &it.slots, &mut params);
            format!("(s.object_type = {t}{narrowed} AND {})", condition(query.phrase, &it.slots, &mut params))
        })
        .collect();
    let allowed = readable(access, &mut params);
    let mut from = format!(
        "FROM search_texts AS s JOIN objects ON objects.backend = s.backend AND objects.object_type = s.object_type \
         AND objects.id = s.id WHERE s.backend = $1 AND ({}) AND {allowed}",
        per_type.join(" OR ")
    );
    let Shape::Page(Page { limit, offset }) = shape else { return (format!("SELECT count(*) {from}"), params) };
    let mut with = String::new();
    let order = match ranked_phrases(query.phrase) {
        _ if !query.sort.keys.is_empty() => {
            let layout =
                updraft_query::postgres::Layout { doc: "objects.doc", reserved: Some(format_ms), indexed: &[] };
            let no_filter = Filter { clauses: Vec::new() };
            updraft_query::postgres::order_by_in(query.sort, &no_filter, &layout, &["objects.created_ms", "objects.id"])
        }
        Some(phrases) if !phrases.is_empty() => {
            let placeholders: Vec<String> =
                phrases.iter().map(|(_, phrase)| params.push(Param::Text(phrase.pattern()))).collect();
            with = format!("WITH {} ", stats(&phrases, searched, &types, &placeholders, &mut params));
            from = from.replacen("JOIN objects", "CROSS JOIN stats JOIN objects", 1);
            let score = score(phrases.len(), searched, &types, &placeholders);
            format!("{score} DESC, objects.created_ms DESC, objects.id")
        }
        _ => "objects.created_ms DESC, objects.id".to_owned(),
    };
    (format!("{with}SELECT objects.doc {from} ORDER BY {order} LIMIT {limit} OFFSET {offset}"), params)
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

#[cfg(test)]
#[path = "search_tests.rs"]
mod tests;
