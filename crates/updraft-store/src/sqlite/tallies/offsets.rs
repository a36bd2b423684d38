//! Pages deep in a range of a key index, sorted on it: the buckets before the page are skipped by their tallies,
//! and only the entries of the bucket the page starts in are walked, instead of every entry before it.

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params_from_iter};

use super::counts::{Inside, RangeCount, Tally, below, from_last};
use updraft_query::sqlite::Bind;

use super::SPLIT_ABOVE;

/// An offset below this is walked as before: the buckets it could skip hold about as many entries.
pub(in crate::sqlite) const SKIP_FROM: u32 = 2 * SPLIT_ABOVE as u32;

/// Where a page sorted on the key of `read.index` starts: a range of the index, within one rank, that leaves out
/// whole buckets before the page, and the offset left within it.
pub(in crate::sqlite) struct Skip {
    /// The condition on the index's key terms, with its binds.
    pub piece: String,
    pub binds: Vec<Bind>,
    pub offset: i64,
}

/// The start of the page at `offset` of the rows of `read` (a range of its index, or the whole index when every
/// entry is in one rank) in the index's order, or its reverse for `descending`. None when no bucket can be skipped
/// whole. Buckets are skipped only whole and all public (or for the instance secret), so the offset left is exact.
pub(in crate::sqlite) fn skip(
    conn: &Connection,
    read: &RangeCount<'_>,
    whole_index: bool,
    descending: bool,
    offset: u32,
) -> rusqlite::Result<Option<Skip>> {
    let (index, offset) = (&read.index, i64::from(offset));
    let rank = match (whole_index, whole_index.then(|| one_rank(conn, read)).transpose()?.flatten()) {
        (true, None) => return Ok(None),
        (_, rank) => rank,
    };
    let inside = Inside::of(read, rank);
    let known = |tally: &Tally| read.known(tally.all, tally.public);
    let (value, r) = (&index.value, &index.rank);
    if !descending {
        let Some(first) = inside.end(conn, "ASC")? else { return Ok(None) };
        let mut skipped = below(conn, read, &first.cut)?;
        let mut start = first.cut.clone();
        // Each bucket but the last, whose end the next cut tells.
        let mut previous: Option<Tally> = None;
        let mut buckets = 0;
        inside.walk(conn, "ASC", |tally| {
            if let Some(bucket) = previous.take() {
                if !known(&bucket) || skipped + bucket.all > offset {
                    return false;
                }
                skipped += bucket.all;
                buckets += 1;
                start = tally.cut.clone();
            }
            previous = Some(tally);
            true
        })?;
        if buckets == 0 || skipped > offset {
            return Ok(None);
        }
        let (piece, binds) = if start.starts_rank() {
            (format!("{r} = {}", start.rank), Vec::new())
        } else {
            (format!("{r} = {} AND {value} >= ?", start.rank), vec![bind(start.value)])
        };
        return Ok(Some(Skip { piece, binds, offset: offset - skipped }));
    }
    let Some(last) = inside.end(conn, "DESC")? else { return Ok(None) };
    let mut skipped = from_last(conn, read, &last)?;
    let mut end = last.cut.clone();
    // Each bucket below `last`, from the top: it ends where the cut above it starts.
    let (mut buckets, mut first_seen) = (0, true);
    inside.walk(conn, "DESC", |tally| {
        if std::mem::take(&mut first_seen) {
            return true;
        }
        if !known(&tally) || skipped + tally.all > offset {
            return false;
        }
        skipped += tally.all;
        buckets += 1;
        end = tally.cut.clone();
        true
    })?;
    if buckets == 0 || skipped > offset {
        return Ok(None);
    }
    let rank = end.rank;
    Ok(Some(Skip {
        piece: format!("{r} = {rank} AND {value} < ?"),
        binds: vec![bind(end.value)],
        offset: offset - skipped,
    }))
}

/// The one rank every entry of the index has, if they all have one of the ranks a cut may split (1, 2, 5).
fn one_rank(conn: &Connection, read: &RangeCount<'_>) -> rusqlite::Result<Option<i64>> {
    let index = &read.index;
    let mut ends = [None, None];
    for (at, dir) in ends.iter_mut().zip(["ASC", "DESC"]) {
        let sql = index.over(&index.rank, "1", &format!(" ORDER BY {} {dir} LIMIT 1", index.rank));
        *at = conn
            .prepare_cached(&sql)?
            .query_row(params_from_iter([Value::Text(index.backend.to_owned())]), |row| row.get::<_, i64>(0))
            .optional()?;
    }
    Ok(match ends {
        [Some(low), Some(high)] if low == high && matches!(low, 1 | 2 | 5) => Some(low),
        _ => None,
    })
}

/// A cut's value as a bind of the page's statement: cuts hold numbers and strings (and -Inf) only.
fn bind(value: Value) -> Bind {
    match value {
        Value::Integer(n) => Bind::Int(n),
        Value::Real(x) => Bind::Real(x),
        Value::Text(text) => Bind::Text(text),
        Value::Null | Value::Blob(_) => unreachable!("a cut is a number or a string"),
    }
}
