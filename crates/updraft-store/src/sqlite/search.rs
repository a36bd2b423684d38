//! Full-text search in SQLite FTS5 (docs/search.md).
//!
//! Two contentless FTS5 tables hold one row per object of a collection with searched properties, keyed by the
//! object's rowid: `search_words` (words, folded, ranked by bm25) and `search_grams` (trigrams, for text inside
//! words). Triggers on `objects` (migrations 0065–0067) keep them in the transaction of every write, but for the
//! group commit's inserts, which it indexes a batch at a time ([`batch_statements`]); a schema change that moves
//! the searched properties to other columns rebuilds the collection's rows here.
//!
//! A phrase FTS5 can say alone is one match of `search_words` a collection, which drives the query and ranks it
//! (bm25); one with text inside words or a lone negation is a compound of sets of rowids. Either way the objects
//! are joined by rowid and filtered by collection and ACL in the same statement.

use rusqlite::Connection;
use serde_json::Value;
use updraft_query::search::Expr;
use updraft_query::search::fts5::{self, Rows, Scope};
use updraft_query::sqlite::{self as query_sql, Bind, Layout};
use updraft_query::{Filter, Sort};

use super::lists::{Reader, Shape};
use super::{SqliteStore, parse_doc, reads, rows};
use crate::document;
use crate::{Access, BoxFuture, MAX_SEARCHED_PER_TYPE, Page, Search, SearchQuery, StoreError};

/// The searched properties of a collection and their slots.
pub(super) async fn slots(
    tx: &mut sqlx::SqliteConnection,
    backend: &str,
    object_type: &str,
) -> Result<Vec<(String, i64)>, StoreError> {
    let mut slots: Vec<(String, i64)> = sqlx::query_as(
        "SELECT property, search_slot FROM property_indexes \
         WHERE backend = ? AND object_type = ? AND search_slot IS NOT NULL",
    )
    .bind(backend)
    .bind(object_type)
    .fetch_all(&mut *tx)
    .await?;
    slots.sort();
    Ok(slots)
}

/// The slots `searched` get: the order of the list.
pub(super) fn slots_of(searched: &[String]) -> Vec<(String, i64)> {
    let mut slots: Vec<(String, i64)> = searched.iter().cloned().zip(0..).collect();
    slots.sort();
    slots
}

/// Gives `searched` (indexed properties, already in `property_indexes`) their slots and fills the search tables
/// for the collection, whose rows [`forget`] deleted.
pub(super) async fn reslot(
    tx: &mut sqlx::SqliteConnection,
    backend: &str,
    object_type: &str,
    searched: &[String],
) -> Result<(), StoreError> {
    if searched.len() > MAX_SEARCHED_PER_TYPE {
        let message = format!("at most {MAX_SEARCHED_PER_TYPE} searched properties per object type");
        return Err(StoreError::Invalid { message, property: None });
    }
    sqlx::query("UPDATE property_indexes SET search_slot = NULL WHERE backend = ? AND object_type = ?")
        .bind(backend)
        .bind(object_type)
        .execute(&mut *tx)
        .await?;
    for (property, slot) in slots_of(searched) {
        let updated = sqlx::query(
            "UPDATE property_indexes SET search_slot = ? WHERE backend = ? AND object_type = ? AND property = ?",
        )
        .bind(slot)
        .bind(backend)
        .bind(object_type)
        .bind(&property)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            let message = format!("the searched property {property} is not indexed");
            return Err(StoreError::Invalid { message, property: Some(property) });
        }
    }
    if !searched.is_empty() {
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO search_collections (backend, object_type) VALUES (?, ?) \
             ON CONFLICT (backend, object_type) DO UPDATE SET backend = excluded.backend RETURNING id",
        )
        .bind(backend)
        .bind(object_type)
        .fetch_one(&mut *tx)
        .await?;
        if id > rowids::MAX_COLLECTION {
            let message = format!("at most {} collections with searched properties", rowids::MAX_COLLECTION);
            return Err(StoreError::Invalid { message, property: None });
        }
        let collection = "o.backend = ?1 AND o.object_type = ?2";
        for table in ["search_words", "search_grams"] {
            let fill = rowids::fill(table, collection, MAX_SEARCHED_PER_TYPE);
            sqlx::query(sqlx::AssertSqlSafe(fill)).bind(backend).bind(object_type).execute(&mut *tx).await?;
        }
    }
    Ok(())
}

/// Deletes the search rows of a collection's objects; called before its searched properties go (a schema
/// deleted, or changed), since the triggers delete an object's rows only while its collection has them.
pub(super) async fn forget(
    tx: &mut sqlx::SqliteConnection,
    backend: &str,
    object_type: &str,
) -> Result<(), StoreError> {
    let (searched,): (bool,) =
        sqlx::query_as(COLLECTION_SEARCHED).bind(backend).bind(object_type).fetch_one(&mut *tx).await?;
    if !searched {
        return Ok(());
    }
    // FTS5 looks each rowid of the list up (a contentless table finds rows only by rowid).
    for table in ["search_words", "search_grams"] {
        let delete = format!(
            "DELETE FROM {table} WHERE rowid IN (SELECT {} FROM objects AS o WHERE o.backend = ? AND o.object_type = ?)",
            rowids::of_row("o")
        );
        sqlx::query(sqlx::AssertSqlSafe(delete)).bind(backend).bind(object_type).execute(&mut *tx).await?;
    }
    Ok(())
}

/// Whether the collection `?1`, `?2` has searched properties.
pub(super) const COLLECTION_SEARCHED: &str =
    "SELECT EXISTS (SELECT 1 FROM property_indexes WHERE backend = ? AND object_type = ? AND search_slot IS NOT NULL)";

/// The statements that index the objects whose rowids are the JSON array `?1`, as the insert trigger indexes one:
/// the group commit runs them once at the end of each batch (see migration 0064).
pub(crate) fn batch_statements() -> [String; 2] {
    let rows = "o.rowid IN (SELECT value FROM json_each(?1))";
    ["search_words", "search_grams"].map(|table| rowids::fill(table, rows, MAX_SEARCHED_PER_TYPE))
}

/// Keeps each full-text table in few FTS5 segments. Every batch of inserts writes a segment, and FTS5's own
/// merging at insert time leaves a dozen or more after a large load; a search opens every segment for every
/// word, which was most of a two-word search at a million objects (14 segments: 1,870–2,090 searches/s; merged
/// to 4: 2,840–3,000). Every minute, merge steps of about 200 pages each (a few milliseconds of the writer)
/// until FTS5 finds nothing to merge or a second has passed; `usermerge` 2 (migration 0081) lets two segments
/// of a level merge. Ends with the store (its writer pool closed).
pub(super) async fn keep_merged(writer: sqlx::SqlitePool) {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(60);
    loop {
        tokio::time::sleep(EVERY).await;
        if writer.is_closed() {
            return;
        }
        if let Err(err) = merge(&writer, std::time::Duration::from_secs(1)).await {
            if writer.is_closed() {
                return;
            }
            tracing::warn!(error = %err, "merging the full-text segments failed");
        }
    }
}

/// Runs merge steps on both tables until FTS5 has none to do or `budget` has passed; answers the steps that
/// merged something.
pub(super) async fn merge(writer: &sqlx::SqlitePool, budget: std::time::Duration) -> Result<u32, StoreError> {
    let started = std::time::Instant::now();
    let mut merged = 0;
    for table in ["search_words", "search_grams"] {
        let step = format!("INSERT INTO {table} ({table}, rank) VALUES ('merge', 200)");
        while started.elapsed() < budget {
            // The pool's one connection is taken for a step at a time, so the writes waiting for it go between
            // steps rather than after the whole budget.
            let mut conn = writer.acquire().await?;
            // FTS5's documented test: a step that did work changed two rows or more of its shadow tables.
            let (before,): (i64,) = sqlx::query_as("SELECT total_changes()").fetch_one(&mut *conn).await?;
            sqlx::query(sqlx::AssertSqlSafe(step.clone())).execute(&mut *conn).await?;
            let (after,): (i64,) = sqlx::query_as("SELECT total_changes()").fetch_one(&mut *conn).await?;
            if after - before < 2 {
                break;
            }
            merged += 1;
        }
    }
    Ok(merged)
}

/// A search with everything it needs, owned, so that it can move to the blocking pool.
struct SearchRead {
    backend: String,
    object_types: Vec<String>,
    phrase: Expr,
    properties: Option<Vec<String>>,
    sort: Sort,
    shape: Shape,
    reader: Reader,
}

/// A collection's searched columns, as the search reads them, and its id in the tables' rowids.
struct Collection {
    object_type: String,
    id: i64,
    columns: Vec<String>,
}

impl SearchRead {
    fn new(backend: &str, query: SearchQuery<'_>, shape: Shape, access: Access<'_>) -> SearchRead {
        SearchRead {
            backend: backend.to_owned(),
            object_types: query.object_types.to_vec(),
            phrase: query.phrase.clone(),
            properties: query.properties.map(<[String]>::to_vec),
            sort: query.sort.clone(),
            shape,
            reader: Reader::of(access),
        }
    }

    /// Runs `run` on the statement, in one snapshot with the slots it was compiled against; `Err` (inner) when no
    /// type has a searched property of those asked for.
    fn read<T>(
        &self,
        conn: &Connection,
        run: impl Fn(&Connection, &str, &[Bind]) -> rusqlite::Result<(T, usize)>,
    ) -> rusqlite::Result<Result<T, String>> {
        super::lists::snapshot(conn, |conn| {
            let collections = self.collections(conn)?;
            if collections.is_empty() {
                return Ok(Err(self.nothing_searched()));
            }
            let (sql, binds) = self.statement(&collections);
            run(conn, &sql, &binds).map(|(value, _)| Ok(value))
        })
    }

    fn nothing_searched(&self) -> String {
        let asked = match &self.properties {
            Some(properties) => format!("the properties {}", properties.join(", ")),
            None => "any property".to_owned(),
        };
        format!(
            "{} search {asked}: a search reads properties of type string declared `indexed` in the schema",
            if self.object_types.len() == 1 { "the object type does not" } else { "none of the object types does" },
        )
    }

    fn collections(&self, conn: &Connection) -> rusqlite::Result<Vec<Collection>> {
        let mut statement = conn.prepare_cached(
            "SELECT p.property, p.search_slot, c.id FROM property_indexes AS p \
             JOIN search_collections AS c ON c.backend = p.backend AND c.object_type = p.object_type \
             WHERE p.backend = ? AND p.object_type = ? AND p.search_slot IS NOT NULL ORDER BY p.search_slot",
        )?;
        let mut collections = Vec::new();
        for object_type in &self.object_types {
            let slots = statement.query_map([&self.backend, object_type], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
            })?;
            let (mut columns, mut id) = (Vec::new(), None);
            for slot in slots {
                let (property, slot, collection) = slot?;
                id = Some(collection);
                if self.properties.as_ref().is_none_or(|wanted| wanted.contains(&property)) {
                    columns.push(format!("p{slot}"));
                }
            }
            if let Some(id) = id.filter(|_| !columns.is_empty()) {
                collections.push(Collection { object_type: object_type.clone(), id, columns });
            }
        }
        Ok(collections)
    }

    /// The statement and its binds.
    fn statement(&self, collections: &[Collection]) -> (String, Vec<Bind>) {
        let mut binds = Vec::new();
        let matches: Option<Vec<String>> =
            collections.iter().map(|c| fts5::words_match(&self.phrase, &c.columns)).collect();
        let ranked = matches.is_some();
        // Each collection's matches as `(object, public, score)`: its rowid range of the doclists, which FTS5 seeks
        // to.
        let object = rowids::OBJECT_ROWID;
        let found: Vec<String> = match matches {
            Some(matches) => collections
                .iter()
                .zip(matches)
                .map(|(collection, text)| {
                    let phrases = fts5::phrases(&self.phrase, &collection.columns).unwrap_or_default();
                    binds.extend([Bind::Text(phrases.join("\n")), Bind::Text(text)]);
                    format!(
                        "SELECT {object} AS object, rowid & 1 AS public, updraft_rank(search_words, ?) AS score \
                         FROM search_words WHERE search_words MATCH ? AND {}",
                        rowids::collection_range(collection.id)
                    )
                })
                .collect(),
            None => collections
                .iter()
                .map(|collection| {
                    let range = rowids::collection_range(collection.id);
                    let scope = Scope { object_rowid: object, condition: &range };
                    let rows =
                        Rows::of(&self.phrase, &collection.columns, &self.backend, &collection.object_type, scope);
                    binds.extend(rows.binds.into_iter().map(Bind::Text));
                    format!("SELECT rowid AS object, 0 AS public, 0 AS score FROM ({})", rows.sql)
                })
                .collect(),
        };
        let found = found.join(" UNION ALL ");
        // A public object is everyone's to read (but for a caller who may read nothing): its match needs no object
        // read to be counted or ranked. CROSS JOIN keeps the matches the outer loop, each object read by rowid: the
        // planner would otherwise walk the collection and probe the matches.
        let (allowed, subjects) = self.reader.readable();
        let (visible, joined) = match allowed.as_str() {
            "0" | "1" => (allowed.clone(), allowed),
            _ => (
                format!(
                    "(found.public = 1 OR EXISTS (SELECT 1 FROM objects WHERE objects.rowid = found.object AND {allowed}))"
                ),
                format!("(found.public = 1 OR {allowed})"),
            ),
        };
        binds.extend(subjects.into_iter().map(Bind::Text));
        let sql = match self.shape {
            Shape::Count => format!("SELECT count(*) FROM ({found}) AS found WHERE {visible}"),
            // Relevance (lower is better), the newest first among equals; only the page's objects are read.
            Shape::Page(Page { limit, offset }) if ranked && self.sort.keys.is_empty() => format!(
                "SELECT objects.doc FROM (SELECT * FROM ({found}) AS found WHERE {visible} \
                 ORDER BY found.score, found.object DESC LIMIT {limit} OFFSET {offset}) AS top \
                 CROSS JOIN objects ON objects.rowid = top.object ORDER BY top.score, top.object DESC"
            ),
            Shape::Page(Page { limit, offset }) => {
                let order = if self.sort.keys.is_empty() {
                    "objects.created_ms DESC, objects.id".to_owned()
                } else {
                    let layout = Layout { doc: "doc", reserved: Some(document::format_ms), indexed: &[] };
                    query_sql::order_by_in(&self.sort, &Filter { clauses: Vec::new() }, &layout, &["created_ms", "id"])
                };
                format!(
                    "SELECT objects.doc FROM ({found}) AS found CROSS JOIN objects ON objects.rowid = found.object \
                     WHERE {joined} ORDER BY {order} LIMIT {limit} OFFSET {offset}"
                )
            }
        };
        (sql, binds)
    }
}

impl SqliteStore {
    async fn run_search<T: Send + 'static>(
        &self,
        read: SearchRead,
        run: impl Fn(&Connection, &str, &[Bind]) -> rusqlite::Result<(T, usize)> + Send + Sync + 'static,
    ) -> Result<T, StoreError> {
        match self.hot.bounded(move |conn| read.read(conn, &run)).await? {
            Ok(value) => Ok(value),
            Err(message) => Err(StoreError::Invalid { message, property: Some("properties".into()) }),
        }
    }
}

impl Search for SqliteStore {
    fn search<'a>(
        &'a self,
        backend: &'a str,
        query: SearchQuery<'a>,
        page: Page,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<Vec<Value>, StoreError>> {
        Box::pin(async move {
            let read = SearchRead::new(backend, query, Shape::Page(page), access);
            let texts = self
                .run_search(read, |conn, sql, binds| {
                    let texts = rows(conn, &format!("SELECT json(doc) FROM ({sql})"), binds)?;
                    let n = texts.len();
                    Ok((texts, n))
                })
                .await?;
            texts.iter().map(|text| parse_doc(text).map(Value::Object)).collect()
        })
    }

    fn search_count<'a>(
        &'a self,
        backend: &'a str,
        query: SearchQuery<'a>,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let read = SearchRead::new(backend, query, Shape::Count, access);
            let n: i64 = self
                .run_search(read, |conn, sql, binds| {
                    let mut statement = conn.prepare_cached(sql)?;
                    statement.query_row(rusqlite::params_from_iter(reads::values(binds)), |row| Ok((row.get(0)?, 1)))
                })
                .await?;
            Ok(n.max(0) as u64)
        })
    }
}

pub(crate) mod frequencies;
pub(crate) mod rank;
pub(crate) mod rowids;
#[cfg(test)]
mod tests;
