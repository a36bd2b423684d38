//! Counts of a range of a key index from its tallies (see `tallies.rs`).

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params_from_iter};
use updraft_query::Filter;
use updraft_query::sqlite::{self as query_sql, Layout};

use super::{Cut, KeyIndex};

/// What a tallied count needs of its read.
pub(in crate::sqlite) struct RangeCount<'a> {
    pub index: KeyIndex<'a>,
    pub filter: &'a Filter,
    pub range: query_sql::OneRange<'a>,
    pub layout: Layout<'a>,
    /// The reader's condition on `objects` and its binds; None for the instance secret, which reads everything.
    pub reader: Option<(&'a str, &'a [String])>,
}

impl RangeCount<'_> {
    /// Whether `all` entries of which `public` are public count as they are for the reader: all of them for the
    /// instance secret, and for anyone else only when all are public.
    pub(super) fn known(&self, all: i64, public: i64) -> bool {
        self.reader.is_none() || public == all
    }
}

/// The count of the rows of a filter that is one range of `index` ([`query_sql::one_range`]), from its tallies:
/// the buckets inside the range by their tallies (or, where some entries are not public, by counting them), and
/// the entries at its two ends, each within one bucket. None when no cut lies inside the range, which then lies
/// within one bucket, and the caller counts it. Runs in the caller's snapshot.
pub(in crate::sqlite) fn count(conn: &Connection, read: &RangeCount<'_>) -> rusqlite::Result<Option<i64>> {
    let inside = Inside::of(read, None);
    let Some(first) = inside.end(conn, "ASC")? else { return Ok(None) };
    let last = inside.end(conn, "DESC")?.expect("a first cut, so a last");
    let (all, public): (f64, f64) = conn
        .prepare_cached(&format!("SELECT total(n_all), total(n_public) FROM {}", inside.tallies))?
        .query_row(params_from_iter(inside.binds()), |row| Ok((row.get(0)?, row.get(1)?)))?;
    // The buckets from `first` up to `last` lie inside the range; `last`'s own may reach beyond it.
    let (inner_all, inner_public) = (all as i64 - last.all, public as i64 - last.public);
    let inner = if read.known(inner_all, inner_public) {
        inner_all
    } else {
        let sql = format!("SELECT {} FROM {} ORDER BY 1, 2", inside.columns, inside.tallies);
        let cuts: Vec<Tally> = conn
            .prepare_cached(&sql)?
            .query_map(params_from_iter(inside.binds()), Tally::read)?
            .collect::<Result<_, _>>()?;
        count_mixed(conn, read, &cuts)?
    };
    Ok(Some(below(conn, read, &first.cut)? + inner + from_last(conn, read, &last)?))
}

/// The count of every row of the collection the reader may read, from the tallies of one of its key indexes (each
/// holds every row, a row without the property at rank 0): every bucket lies inside, so nothing is counted but
/// the buckets that are not all public.
pub(in crate::sqlite) fn count_all(conn: &Connection, read: &RangeCount<'_>) -> rusqlite::Result<i64> {
    let index = &read.index;
    let tallies = "FROM key_tallies WHERE backend = ? AND object_type = ? AND property = ?";
    let (all, public): (f64, f64) = conn
        .prepare_cached(&format!("SELECT total(n_all), total(n_public) {tallies}"))?
        .query_row(params_from_iter(index.own()), |row| Ok((row.get(0)?, row.get(1)?)))?;
    if read.known(all as i64, public as i64) {
        return Ok(all as i64);
    }
    let cuts: Vec<Tally> = conn
        .prepare_cached(&format!("SELECT rank, value, n_all, n_public {tallies} ORDER BY rank, value"))?
        .query_map(params_from_iter(index.own()), Tally::read)?
        .collect::<Result<_, _>>()?;
    let mut n = 0;
    let mut counting: Option<&Cut> = None;
    for at in &cuts {
        if read.known(at.all, at.public) {
            n += at.all;
            if let Some(from) = counting.take() {
                n += count_span(conn, read, from, Some(&at.cut))?;
            }
        } else {
            counting.get_or_insert(&at.cut);
        }
    }
    if let Some(from) = counting {
        n += count_span(conn, read, from, None)?;
    }
    Ok(n)
}

/// The rows the reader may read with keys from cut `lo` up to cut `hi` (the index's end for None), in any rank.
fn count_span(conn: &Connection, read: &RangeCount<'_>, lo: &Cut, hi: Option<&Cut>) -> rusqlite::Result<i64> {
    let mut n = 0;
    for (piece, binds) in read.index.span(lo, hi) {
        n += count_where(conn, read, &piece, binds)?;
    }
    Ok(n)
}

/// Whether the range holds more than `n` entries, readable or not, by the buckets inside it; false when they do
/// not tell (the last bucket inside, which may reach beyond the range, is not counted).
pub(in crate::sqlite) fn holds_more_than(conn: &Connection, read: &RangeCount<'_>, n: i64) -> rusqlite::Result<bool> {
    let (mut held, mut pending) = (0, None);
    Inside::of(read, None).walk(conn, "ASC", |tally| {
        held += pending.replace(tally.all).unwrap_or(0);
        held <= n
    })?;
    Ok(held > n)
}

/// The cuts inside a range, as SQL over `key_tallies` with their binds.
pub(super) struct Inside {
    /// `(SELECT ... FROM key_tallies ...) AS walk WHERE <the filter on the cut>`.
    tallies: String,
    columns: String,
    binds: Vec<Value>,
}

impl Inside {
    /// The cuts that satisfy the filter, and are in `rank` if given.
    pub(super) fn of(read: &RangeCount<'_>, rank: Option<i64>) -> Inside {
        let p = read.index.property;
        let inside = query_sql::compile_walked(read.filter, &read.layout, "walk");
        let in_rank = rank.map(|rank| format!(" AND \"rank:{p}\" = {rank}")).unwrap_or_default();
        let tallies = format!(
            "(SELECT rank AS \"rank:{p}\", value AS \"value:{p}\", n_all, n_public FROM key_tallies \
             WHERE backend = ? AND object_type = ? AND property = ?) AS walk WHERE {}{in_rank}",
            inside.where_clause
        );
        let columns = format!("\"rank:{p}\", \"value:{p}\", n_all, n_public");
        let binds = read.index.own().into_iter().chain(super::super::reads::values(&inside.binds)).collect();
        Inside { tallies, columns, binds }
    }

    fn binds(&self) -> impl Iterator<Item = &Value> {
        self.binds.iter()
    }

    /// The first (`ASC`) or last (`DESC`) cut inside.
    pub(super) fn end(&self, conn: &Connection, dir: &str) -> rusqlite::Result<Option<Tally>> {
        let sql = format!("SELECT {} FROM {} ORDER BY 1 {dir}, 2 {dir} LIMIT 1", self.columns, self.tallies);
        conn.prepare_cached(&sql)?.query_row(params_from_iter(self.binds()), Tally::read).optional()
    }

    /// Runs `each` over the cuts inside in key order (`ASC` or `DESC`) while it answers true.
    pub(super) fn walk(
        &self,
        conn: &Connection,
        dir: &str,
        mut each: impl FnMut(Tally) -> bool,
    ) -> rusqlite::Result<()> {
        let sql = format!("SELECT {} FROM {} ORDER BY 1 {dir}, 2 {dir}", self.columns, self.tallies);
        let mut statement = conn.prepare_cached(&sql)?;
        let mut rows = statement.query(params_from_iter(self.binds()))?;
        while let Some(row) = rows.next()? {
            if !each(Tally::read(row)?) {
                break;
            }
        }
        Ok(())
    }
}

/// The rows of the range the reader may read below the cut `first` (in the range's rank): from the range's
/// lowest value, or the start of the rank when it has none. Within the bucket before `first`.
pub(super) fn below(conn: &Connection, read: &RangeCount<'_>, first: &Cut) -> rusqlite::Result<i64> {
    if first.starts_rank() {
        return Ok(0);
    }
    let (value, r) = (&read.index.value, &read.index.rank);
    let (lowest, mut binds) = extreme("max", &read.range.lower);
    let from = if binds.is_empty() { String::new() } else { format!(" AND {value} >= {lowest}") };
    binds.push(first.value.clone());
    count_where(conn, read, &format!("{r} = {}{from} AND {value} < ?", first.rank), binds)
}

/// The rows of the range the reader may read from the cut `last` on (in the range's rank): its whole bucket, when
/// the next cut is in the range's rank and nothing between lies beyond the range's highest value; else up to that
/// value (or the end of the rank, when it has none).
pub(super) fn from_last(conn: &Connection, read: &RangeCount<'_>, last: &Tally) -> rusqlite::Result<i64> {
    let (index, rank) = (&read.index, last.cut.rank);
    let (value, r) = (&index.value, &index.rank);
    let from = if last.cut.starts_rank() { String::new() } else { format!(" AND {value} >= ?") };
    let mut binds = if last.cut.starts_rank() { Vec::new() } else { vec![last.cut.value.clone()] };
    if read.range.upper.is_empty() {
        return count_where(conn, read, &format!("{r} = {rank}{from}"), binds);
    }
    let (highest, highest_binds) = extreme("min", &read.range.upper);
    let next = index.neighbour(conn, &last.cut, true)?.filter(|it| it.rank == rank);
    if let (Some(next), true) = (&next, read.known(last.all, last.public)) {
        let beyond = if read.range.upper_exclusive { ">=" } else { ">" };
        let sql = index.over(
            "EXISTS (SELECT 1",
            &format!("{r} = {rank} AND {value} {beyond} {highest} AND {value} < ?"),
            " LIMIT 1)",
        );
        let spill_binds = std::iter::once(Value::Text(index.backend.to_owned()))
            .chain(highest_binds.iter().cloned())
            .chain([next.value.clone()]);
        let spills: bool = conn.prepare_cached(&sql)?.query_row(params_from_iter(spill_binds), |row| row.get(0))?;
        if !spills {
            return Ok(last.all);
        }
    }
    binds.extend(highest_binds);
    count_where(conn, read, &format!("{r} = {rank}{from} AND {value} <= {highest}"), binds)
}

/// A cut inside a range, with its bucket's counts.
pub(super) struct Tally {
    pub cut: Cut,
    pub all: i64,
    pub public: i64,
}

impl Tally {
    pub(super) fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<Tally> {
        Ok(Tally { cut: Cut::read(row, 0)?, all: row.get(2)?, public: row.get(3)? })
    }
}

/// The rows the reader may read in the buckets of `cuts` but the last: by the tallies of the buckets whose entries
/// are all public, and by counting the others, each run of them in one statement.
fn count_mixed(conn: &Connection, read: &RangeCount<'_>, cuts: &[Tally]) -> rusqlite::Result<i64> {
    let mut n = 0;
    let mut counting: Option<&Cut> = None;
    for (at, next) in cuts.iter().zip(cuts.iter().skip(1)) {
        if read.known(at.all, at.public) {
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
pub(super) fn count_where(
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
        .chain(super::super::reads::values(&filter.binds))
        .chain(subjects.iter().map(|it| Value::Text(it.clone())));
    conn.prepare_cached(&sql)?.query_row(params_from_iter(binds), |row| row.get(0))
}

/// The greatest (`max`) or least (`min`) of `binds` as SQL, and its binds; nothing for no binds.
fn extreme(function: &str, binds: &[query_sql::Bind]) -> (String, Vec<Value>) {
    let marks = vec!["?"; binds.len()].join(", ");
    let sql = if binds.len() > 1 { format!("{function}({marks})") } else { marks };
    (sql, super::super::reads::values(binds))
}
