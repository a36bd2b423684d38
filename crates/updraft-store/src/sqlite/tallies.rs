//! Tallies of the key indexes: each key index is cut into buckets of about a hundred entries, and `key_tallies`
//! holds, per bucket, how many entries it has and how many of them are public. A count of a range then sums the
//! buckets inside the range and counts entries only in the two at its ends, instead of counting every entry
//! (SQLite's B-trees keep no counts; a count read about 100 ns an entry, 1 ms for 10,000) (`counts.rs`); a page
//! deep in an index starts past the whole buckets before it (`offsets.rs`).
//!
//! A cut is a (type rank, value) key: a bucket holds the entries from its cut up to the next cut, so equal values
//! stay in one bucket. Within ranks 1, 2 and 5 (numbers, strings, booleans) a cut may fall at any value; ranks 0,
//! 3 and 4 hold NULL values, which no bound compares, so their cuts are only at the start of the rank, spelled
//! with the value -Inf (below every number and every string; no JSON number is infinite). Every index has a first
//! cut at rank -1.
//!
//! The counts are kept by triggers on `objects` (migrations 0085–0087), in the transaction of every write,
//! whatever path makes it; the cuts are placed by [`split_oversized`], which only moves where buckets end, so a
//! late split makes counts slower, never wrong. A bucket is read as known only when all its entries are public
//! (or the reader is the instance secret); otherwise its entries are counted with the reader's ACL.

mod counts;
mod offsets;

use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params_from_iter};
use updraft_query::sqlite as query_sql;

pub(super) use counts::{RangeCount, count, count_all, holds_more_than};
pub(super) use offsets::{SKIP_FROM, Skip, skip};

/// A bucket with more entries than this is split by [`split_oversized`].
pub(super) const SPLIT_ABOVE: i64 = 128;
/// The entries a split leaves in each bucket, at least (a bucket ends only where the key changes).
const PIECE: i64 = 64;
/// The cut value of the start of a rank, as SQL.
const START: &str = "-9e999";

/// A cut: a bucket's first key.
#[derive(Debug, Clone)]
pub(super) struct Cut {
    rank: i64,
    value: Value,
}

/// Keys are equal as SQLite compares them, where an integer equals the real of the same value (`5 = 5.0`): the
/// index orders them as one value, so a cut between them would split it.
impl PartialEq for Cut {
    fn eq(&self, other: &Cut) -> bool {
        let exact = |int: i64, real: f64| {
            real.fract() == 0.0 && real >= -(2f64.powi(63)) && real < 2f64.powi(63) && real as i64 == int
        };
        self.rank == other.rank
            && match (&self.value, &other.value) {
                (Value::Integer(int), Value::Real(real)) | (Value::Real(real), Value::Integer(int)) => {
                    exact(*int, *real)
                }
                (a, b) => a == b,
            }
    }
}

impl Cut {
    fn starts_rank(&self) -> bool {
        matches!(self.value, Value::Real(x) if x == f64::NEG_INFINITY)
    }

    fn read(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Cut> {
        Ok(Cut { rank: row.get(at)?, value: row.get(at + 1)? })
    }
}

/// The key index of one property of one collection, and the SQL of its two key terms.
pub(super) struct KeyIndex<'a> {
    pub backend: &'a str,
    pub object_type: &'a str,
    /// `object_type = '<type>'`, for the partial index.
    pub collection: &'a str,
    pub property: &'a str,
    rank: String,
    value: String,
    name: String,
}

impl<'a> KeyIndex<'a> {
    pub(super) fn new(backend: &'a str, object_type: &'a str, collection: &'a str, property: &'a str) -> Self {
        let [rank, value] = query_sql::key_index_columns(property, "doc");
        let name = super::schemas::key_index_name(backend, object_type, property);
        KeyIndex { backend, object_type, collection, property, rank, value, name }
    }

    /// The entries from cut `lo` up to cut `hi` (the index's end for None), as at most three index ranges in key
    /// order: the conditions and their binds.
    fn span(&self, lo: &Cut, hi: Option<&Cut>) -> Vec<(String, Vec<Value>)> {
        let (rank, value) = (&self.rank, &self.value);
        let from = |cut: &Cut| (!cut.starts_rank()).then(|| (format!(" AND {value} >= ?"), vec![cut.value.clone()]));
        let mut pieces = Vec::new();
        if let Some(hi) = hi.filter(|hi| hi.rank == lo.rank) {
            // Same rank: `hi` has a value, as a rank's start comes before all of them.
            let (lower, mut binds) = from(lo).unwrap_or_default();
            binds.push(hi.value.clone());
            pieces.push((format!("{rank} = {}{lower} AND {value} < ?", lo.rank), binds));
            return pieces;
        }
        if lo.rank >= 0 {
            let (lower, binds) = from(lo).unwrap_or_default();
            pieces.push((format!("{rank} = {}{lower}", lo.rank), binds));
        }
        match hi {
            None => pieces.push((format!("{rank} > {}", lo.rank), Vec::new())),
            Some(hi) => {
                if hi.rank > lo.rank + 1 {
                    pieces.push((format!("{rank} > {} AND {rank} < {}", lo.rank, hi.rank), Vec::new()));
                }
                if !hi.starts_rank() {
                    pieces.push((format!("{rank} = {} AND {value} < ?", hi.rank), vec![hi.value.clone()]));
                }
            }
        }
        pieces
    }

    /// The statement over the index's entries that satisfy `piece` (one of [`KeyIndex::span`]), selecting
    /// `columns` and adding `more` to the condition.
    fn over(&self, columns: &str, piece: &str, more: &str) -> String {
        format!(
            "SELECT {columns} FROM objects INDEXED BY {} WHERE backend = ? AND {} AND {piece}{more}",
            self.name, self.collection
        )
    }

    /// The cut next to `cut`, after it (`after`) or before it.
    fn neighbour(&self, conn: &Connection, cut: &Cut, after: bool) -> rusqlite::Result<Option<Cut>> {
        let (op, dir) = if after { (">", "ASC") } else { ("<", "DESC") };
        let sql = format!(
            "SELECT rank, value FROM key_tallies WHERE backend = ? AND object_type = ? AND property = ? \
             AND (rank, value) {op} (?, ?) ORDER BY rank {dir}, value {dir} LIMIT 1"
        );
        let binds = self.own().into_iter().chain([Value::Integer(cut.rank), cut.value.clone()]);
        conn.prepare_cached(&sql)?.query_row(params_from_iter(binds), |row| Cut::read(row, 0)).optional()
    }

    fn own(&self) -> [Value; 3] {
        [self.backend, self.object_type, self.property].map(|it| Value::Text(it.to_owned()))
    }
}

/// Splits the buckets that grew beyond [`SPLIT_ABOVE`] (a few at a time) in the caller's write transaction, so
/// that each holds about [`PIECE`] entries. A bucket of one value cannot split; it is tried again once it has
/// doubled. Answers how many buckets it looked at.
pub(super) fn split_oversized(conn: &Connection) -> rusqlite::Result<usize> {
    let oversized: Vec<(String, String, String, Cut, i64)> = conn
        .prepare_cached(&format!(
            "SELECT backend, object_type, property, rank, value, n_all FROM key_tallies \
             INDEXED BY key_tallies_oversized WHERE n_all > {SPLIT_ABOVE} AND n_all > 2 * settled LIMIT 16"
        ))?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, Cut::read(row, 3)?, row.get(5)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (backend, object_type, property, cut, n_all) in &oversized {
        let Ok(collection) = super::collection_literal(object_type) else { continue };
        split(conn, &KeyIndex::new(backend, object_type, &collection, property), cut, *n_all)?;
    }
    Ok(oversized.len())
}

/// Walks the bucket at `lo` and cuts it into pieces of at least [`PIECE`] entries where the key changes; a run of
/// [`PIECE`] equal keys or more gets a piece of its own, so that an equality on a common value finds a cut at it.
fn split(conn: &Connection, index: &KeyIndex<'_>, lo: &Cut, n_all: i64) -> rusqlite::Result<()> {
    let hi = index.neighbour(conn, lo, true)?;
    let mut pieces = Pieces { done: Vec::new(), open: Some((lo.clone(), 0, 0)), run: None };
    for (piece, binds) in index.span(lo, hi.as_ref()) {
        let sql = index.over(
            &format!("{}, {}, public_read", index.rank, index.value),
            &piece,
            &format!(" ORDER BY {}, {}", index.rank, index.value),
        );
        let mut statement = conn.prepare_cached(&sql)?;
        let binds = std::iter::once(Value::Text(index.backend.to_owned())).chain(binds);
        let mut rows = statement.query(params_from_iter(binds))?;
        while let Some(row) = rows.next()? {
            let rank: i64 = row.get(0)?;
            // Ranks 0, 3 and 4 are cut only where they start.
            let value = if matches!(rank, 1 | 2 | 5) { row.get(1)? } else { Value::Real(f64::NEG_INFINITY) };
            pieces.add(Cut { rank, value }, row.get(2)?);
        }
    }
    let pieces = pieces.finish();
    let walked: i64 = pieces.iter().map(|(_, n, _)| n).sum();
    if walked != n_all {
        tracing::warn!(index = index.name, walked, tallied = n_all, "key tally differed from its index; recounted");
    }
    let settled = if pieces.len() == 1 { walked } else { 0 };
    let mut update = conn.prepare_cached(
        "UPDATE key_tallies SET n_all = ?, n_public = ?, settled = ? \
         WHERE backend = ? AND object_type = ? AND property = ? AND rank = ? AND value = ?",
    )?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO key_tallies (backend, object_type, property, rank, value, n_all, n_public, settled) \
         VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
    )?;
    for (i, (cut, n, public)) in pieces.into_iter().enumerate() {
        let [backend, object_type, property] = index.own();
        let key = [backend, object_type, property, Value::Integer(cut.rank), cut.value];
        if i == 0 {
            let counts = [n, public, settled].map(Value::Integer);
            update.execute(params_from_iter(counts.into_iter().chain(key)))?;
        } else {
            insert.execute(params_from_iter(key.into_iter().chain([n, public].map(Value::Integer))))?;
        }
    }
    Ok(())
}

/// The pieces of a bucket being split: (cut, entries, public entries) each, in key order, the first at the
/// bucket's own cut.
struct Pieces {
    done: Vec<(Cut, i64, i64)>,
    /// The piece that takes the next run, if one is open.
    open: Option<(Cut, i64, i64)>,
    /// The entries of one key so far.
    run: Option<(Cut, i64, i64)>,
}

impl Pieces {
    fn add(&mut self, key: Cut, public: i64) {
        match &mut self.run {
            Some((at, n, p)) if *at == key => {
                *n += 1;
                *p += public;
            }
            _ => {
                self.end_run();
                self.run = Some((key, 1, public));
            }
        }
    }

    fn end_run(&mut self) {
        let Some(run) = self.run.take() else { return };
        let heavy = run.1 >= PIECE;
        match self.open.take() {
            Some(open) if heavy && (open.1 > 0 || open.0 != run.0) => {
                self.done.push(open);
                self.done.push(run);
            }
            Some(mut open) => {
                open.1 += run.1;
                open.2 += run.2;
                if open.1 >= PIECE {
                    self.done.push(open);
                } else {
                    self.open = Some(open);
                }
            }
            None if heavy => self.done.push(run),
            None => self.open = Some(run),
        }
    }

    fn finish(mut self) -> Vec<(Cut, i64, i64)> {
        self.end_run();
        self.done.extend(self.open);
        self.done
    }
}

/// Splits until no bucket is due, a few buckets a transaction.
pub(super) fn split_all(conn: &Connection) -> rusqlite::Result<()> {
    loop {
        let tx = conn.unchecked_transaction()?;
        let looked = split_oversized(&tx)?;
        tx.commit()?;
        if looked == 0 {
            return Ok(());
        }
    }
}

/// Keeps the buckets of every key index split as writes grow them, each second; ends with the store.
pub(super) async fn keep_split(writer: sqlx::SqlitePool, path: std::path::PathBuf) {
    let mut conn: Option<Connection> = None;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if writer.is_closed() {
            return;
        }
        // Held, unused, so that the split does not contend with the sqlx writer or a group commit (which holds
        // it too) for SQLite's write lock.
        let Ok(held) = writer.acquire().await else { return };
        let opened = conn.take();
        let path = path.clone();
        let outcome = tokio::task::spawn_blocking(move || -> rusqlite::Result<Connection> {
            let conn = match opened {
                Some(conn) => conn,
                None => super::group_commit::open_writer(&path)?,
            };
            split_all(&conn)?;
            Ok(conn)
        })
        .await;
        drop(held);
        match outcome {
            Ok(Ok(kept)) => conn = Some(kept),
            Ok(Err(err)) => tracing::warn!(%err, "splitting key tallies"),
            Err(err) => tracing::warn!(%err, "splitting key tallies"),
        }
    }
}

/// The condition on `key_tallies` of the buckets that hold the row `row` (NEW or OLD) in each key index of its
/// collection: for each indexed property, the last cut at or before the row's key.
#[cfg(test)]
fn buckets_of(row: &str) -> String {
    let [rank, value] = query_sql::key_terms_named("p.property", &format!("{row}.doc"));
    let cut = |column: &str| {
        format!(
            "(SELECT c.{column} FROM key_tallies AS c WHERE c.backend = p.backend AND c.object_type = p.object_type \
             AND c.property = p.property AND (c.rank, c.value) <= ({rank}, coalesce({value}, {START})) \
             ORDER BY c.rank DESC, c.value DESC LIMIT 1)"
        )
    };
    format!(
        "(backend, object_type, property, rank, value) IN (SELECT p.backend, p.object_type, p.property, {}, {} \
         FROM property_indexes AS p WHERE p.backend = {row}.backend AND p.object_type = {row}.object_type)",
        cut("rank"),
        cut("value")
    )
}

/// The statements of migrations 0084–0088, which a test checks the files against, comments aside.
#[cfg(test)]
pub(crate) fn migrations() -> Vec<(&'static str, String)> {
    let indexed = |row: &str| {
        format!(
            "EXISTS (SELECT 1 FROM property_indexes WHERE backend = {row}.backend AND object_type = {row}.object_type)"
        )
    };
    let add = |row: &str, sign: &str| {
        format!(
            "    UPDATE key_tallies SET n_all = n_all {sign} 1, n_public = n_public {sign} {row}.public_read\n    \
             WHERE {};\n",
            buckets_of(row)
        )
    };
    let forget_empty =
        format!("    DELETE FROM key_tallies WHERE n_all = 0 AND rank >= 0 AND {};\n", buckets_of("OLD"));
    vec![
        (
            "0084_create_index_key_tallies_oversized.sql",
            format!(
                "CREATE INDEX key_tallies_oversized ON key_tallies (backend, object_type, property) \
                 WHERE n_all > {SPLIT_ABOVE}\n"
            ),
        ),
        (
            "0085_create_trigger_objects_tallies_on_insert.sql",
            format!(
                "CREATE TRIGGER objects_tallies_on_insert AFTER INSERT ON objects\nWHEN {}\nBEGIN\n{}END\n",
                indexed("NEW"),
                add("NEW", "+")
            ),
        ),
        (
            "0086_create_trigger_objects_tallies_on_update.sql",
            format!(
                "CREATE TRIGGER objects_tallies_on_update AFTER UPDATE OF doc, public_read ON objects\nWHEN {}\n\
                 BEGIN\n{}{}END\n",
                indexed("NEW"),
                add("OLD", "-"),
                add("NEW", "+")
            ),
        ),
        (
            "0087_create_trigger_objects_tallies_on_delete.sql",
            format!(
                "CREATE TRIGGER objects_tallies_on_delete AFTER DELETE ON objects\nWHEN {}\n\
                 BEGIN\n{}{forget_empty}END\n",
                indexed("OLD"),
                add("OLD", "-")
            ),
        ),
        ("0088_fill_key_tallies.sql", format!("{}\n", first_cuts("1"))),
    ]
}

/// The first cut of each key index whose row `property_indexes AS p` satisfies `which`, holding every entry.
pub(super) fn first_cuts(which: &str) -> String {
    format!(
        "INSERT OR IGNORE INTO key_tallies (backend, object_type, property, rank, value, n_all, n_public) \
         SELECT p.backend, p.object_type, p.property, -1, {START}, count(o.rowid), coalesce(sum(o.public_read), 0) \
         FROM property_indexes AS p LEFT JOIN objects AS o ON o.backend = p.backend AND o.object_type = p.object_type \
         WHERE {which} GROUP BY p.backend, p.object_type, p.property"
    )
}
