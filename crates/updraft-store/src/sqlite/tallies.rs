//! Tallies of the key indexes: each key index is cut into buckets of about a hundred entries, and `key_tallies`
//! holds, per bucket, how many entries it has and how many of them are public. A count of a range then sums the
//! buckets inside the range and counts entries only in the two at its ends, instead of counting every entry
//! (SQLite's B-trees keep no counts; a count read about 100 ns an entry, 1 ms for 10,000).
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

use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params_from_iter};
use updraft_query::Filter;
use updraft_query::sqlite::{self as query_sql, Layout};

/// A bucket with more entries than this is split by [`split_oversized`].
pub(super) const SPLIT_ABOVE: i64 = 128;
/// The entries a split leaves in each bucket, at least (a bucket ends only where the key changes).
const PIECE: i64 = 64;
/// The cut value of the start of a rank, as SQL.
const START: &str = "-9e999";

/// A cut: a bucket's first key.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Cut {
    rank: i64,
    value: Value,
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
            loop {
                let tx = conn.unchecked_transaction()?;
                let looked = split_oversized(&tx)?;
                tx.commit()?;
                if looked == 0 {
                    return Ok(conn);
                }
            }
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

/// What a tallied count needs of its read.
pub(super) struct RangeCount<'a> {
    pub index: KeyIndex<'a>,
    pub filter: &'a Filter,
    pub range: query_sql::OneRange<'a>,
    pub layout: Layout<'a>,
    /// The reader's condition on `objects` and its binds; None for the instance secret, which reads everything.
    pub reader: Option<(&'a str, &'a [String])>,
}

/// The count of the rows of a filter that is one range of `index` ([`query_sql::one_range`]), from its tallies:
/// the buckets inside the range by their tallies (or, where some entries are not public, by counting them), and
/// the entries at its two ends, each within one bucket. None when no cut lies inside the range, which then lies
/// within one bucket, and the caller counts it. Runs in the caller's snapshot.
pub(super) fn count(conn: &Connection, read: &RangeCount<'_>) -> rusqlite::Result<Option<i64>> {
    let index = &read.index;
    let p = index.property;
    let inside = query_sql::compile_walked(read.filter, &read.layout, "walk");
    let tallies = format!(
        "(SELECT rank AS \"rank:{p}\", value AS \"value:{p}\", n_all, n_public FROM key_tallies \
         WHERE backend = ? AND object_type = ? AND property = ?) AS walk WHERE {}",
        inside.where_clause
    );
    let binds = || index.own().into_iter().chain(super::reads::values(&inside.binds));
    let columns = format!("\"rank:{p}\", \"value:{p}\", n_all, n_public");
    let end = |dir: &str| -> rusqlite::Result<Option<Tally>> {
        let sql = format!("SELECT {columns} FROM {tallies} ORDER BY 1 {dir}, 2 {dir} LIMIT 1");
        conn.prepare_cached(&sql)?.query_row(params_from_iter(binds()), Tally::read).optional()
    };
    let Some(first) = end("ASC")? else { return Ok(None) };
    let last = end("DESC")?.expect("a first cut, so a last");
    let (all, public): (f64, f64) = conn
        .prepare_cached(&format!("SELECT total(n_all), total(n_public) FROM {tallies}"))?
        .query_row(params_from_iter(binds()), |row| Ok((row.get(0)?, row.get(1)?)))?;
    // The buckets from `first` up to `last` lie inside the range; `last`'s own may reach beyond it.
    let (inner_all, inner_public) = (all as i64 - last.all, public as i64 - last.public);
    let mut n = if read.reader.is_none() || inner_public == inner_all {
        inner_all
    } else {
        let sql = format!("SELECT {columns} FROM {tallies} ORDER BY 1, 2");
        let cuts: Vec<Tally> =
            conn.prepare_cached(&sql)?.query_map(params_from_iter(binds()), Tally::read)?.collect::<Result<_, _>>()?;
        count_mixed(conn, read, &cuts)?
    };
    let rank = first.cut.rank;
    let (value, r) = (&index.value, &index.rank);
    // Below `first`: from the range's lowest value (or the start of its rank, when it has none).
    if !first.cut.starts_rank() {
        let (lowest, mut binds) = extreme("max", &read.range.lower);
        let from = if binds.is_empty() { String::new() } else { format!(" AND {value} >= {lowest}") };
        binds.push(first.cut.value.clone());
        n += count_where(conn, read, &format!("{r} = {rank}{from} AND {value} < ?"), binds)?;
    }
    // From `last`: its whole bucket, when the next cut is in the range's rank and nothing between lies beyond the
    // range's highest value; else up to that value (or the end of the rank).
    let next = index.neighbour(conn, &last.cut, true)?.filter(|it| it.rank == rank);
    let from = if last.cut.starts_rank() { String::new() } else { format!(" AND {value} >= ?") };
    let from_binds = || if last.cut.starts_rank() { Vec::new() } else { vec![last.cut.value.clone()] };
    if read.range.upper.is_empty() {
        return Ok(Some(n + count_where(conn, read, &format!("{r} = {rank}{from}"), from_binds())?));
    }
    let (highest, highest_binds) = extreme("min", &read.range.upper);
    let known = read.reader.is_none() || last.public == last.all;
    if let (Some(next), true) = (&next, known) {
        let beyond = if read.range.upper_exclusive { ">=" } else { ">" };
        let sql = index.over(
            "EXISTS (SELECT 1",
            &format!("{r} = {rank} AND {value} {beyond} {highest} AND {value} < ?"),
            " LIMIT 1)",
        );
        let binds = std::iter::once(Value::Text(index.backend.to_owned()))
            .chain(highest_binds.iter().cloned())
            .chain([next.value.clone()]);
        let spills: bool = conn.prepare_cached(&sql)?.query_row(params_from_iter(binds), |row| row.get(0))?;
        if !spills {
            return Ok(Some(n + last.all));
        }
    }
    let mut binds = from_binds();
    binds.extend(highest_binds);
    Ok(Some(n + count_where(conn, read, &format!("{r} = {rank}{from} AND {value} <= {highest}"), binds)?))
}

/// A cut inside a range, with its bucket's counts.
struct Tally {
    cut: Cut,
    all: i64,
    public: i64,
}

impl Tally {
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<Tally> {
        Ok(Tally { cut: Cut::read(row, 0)?, all: row.get(2)?, public: row.get(3)? })
    }
}

/// The rows the reader may read in the buckets of `cuts` but the last: by the tallies of the buckets whose entries
/// are all public, and by counting the others, each run of them in one statement.
fn count_mixed(conn: &Connection, read: &RangeCount<'_>, cuts: &[Tally]) -> rusqlite::Result<i64> {
    let mut n = 0;
    let mut counting: Option<&Cut> = None;
    for (at, next) in cuts.iter().zip(cuts.iter().skip(1)) {
        if at.public == at.all {
            n += at.all;
            if let Some(from) = counting.take() {
                n += count_between(conn, read, from, &at.cut)?;
            }
        } else {
            counting.get_or_insert(&at.cut);
        }
        if let (Some(from), true) = (counting, std::ptr::eq(next, cuts.last().expect("two cuts or more"))) {
            n += count_between(conn, read, from, &next.cut)?;
        }
    }
    Ok(n)
}

/// The rows the reader may read with keys from cut `lo` up to cut `hi`, both in the range's rank.
fn count_between(conn: &Connection, read: &RangeCount<'_>, lo: &Cut, hi: &Cut) -> rusqlite::Result<i64> {
    let [(piece, binds)]: [_; 1] = read.index.span(lo, Some(hi)).try_into().expect("one rank, one range");
    count_where(conn, read, &piece, binds)
}

/// The rows of the filter the reader may read within `piece`, a range of the index (with its binds).
fn count_where(
    conn: &Connection,
    read: &RangeCount<'_>,
    piece: &str,
    piece_binds: Vec<Value>,
) -> rusqlite::Result<i64> {
    let filter = query_sql::compile_in(read.filter, &read.layout);
    let (allowed, subjects) = read.reader.unwrap_or(("1", &[]));
    // `+` keeps the filter's own bounds from competing with the piece's for the index range.
    let sql = read.index.over("count(*)", piece, &format!(" AND +({}) AND {allowed}", filter.where_clause));
    let binds = std::iter::once(Value::Text(read.index.backend.to_owned()))
        .chain(piece_binds)
        .chain(super::reads::values(&filter.binds))
        .chain(subjects.iter().map(|it| Value::Text(it.clone())));
    conn.prepare_cached(&sql)?.query_row(params_from_iter(binds), |row| row.get(0))
}

/// The greatest (`max`) or least (`min`) of `binds` as SQL, and its binds; nothing for no binds.
fn extreme(function: &str, binds: &[query_sql::Bind]) -> (String, Vec<Value>) {
    let marks = vec!["?"; binds.len()].join(", ");
    let sql = if binds.len() > 1 { format!("{function}({marks})") } else { marks };
    (sql, super::reads::values(binds))
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
                "CREATE TRIGGER objects_tallies_on_delete AFTER DELETE ON objects\nWHEN {}\nBEGIN\n{}{forget_empty}END\n",
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
