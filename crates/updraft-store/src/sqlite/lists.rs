//! Lists and counts: each compiled in the snapshot it runs in, against what that snapshot holds.
//!
//! The compiler turns a condition on a property with a key index into an index range, and adds the array half
//! of MongoDB's rule ("or an element matches", which no index range serves) only for a property that holds
//! arrays. Whether it does is one probe of the index, in the same read transaction as the query, so a write
//! landing between the two cannot make the answer wrong. Which properties have an index is read in that
//! transaction too (remembered per schema cookie, `key_indexes.rs`), so a schema change between them cannot
//! either.

use std::sync::Arc;

use rusqlite::Connection;
use updraft_query::sqlite::{self as query_sql, Bind, Branch, Indexed, Layout};
use updraft_query::{Filter, Sort};

use super::key_indexes::KeyIndexes;
use super::tallies;
use super::{collection_literal, readable};
use crate::document::{self, RESERVED};
use crate::{Access, Collection, Page, StoreError, Subject};

/// What a read answers.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Shape {
    Page(Page),
    Count,
}

/// The most rows a page sorts: an index union or a filter's rows beyond this are not read whole, as walking an
/// index in order then finds a page within about 20 × collection / 1,000 rows. Counting them reads at most this
/// many index entries, a fraction of a millisecond.
const MAX_SORTED: i64 = 1000;

/// How many entries of its sort's index a page walks, at most, before it reads the filter's rows instead: a few
/// times what sorting is worth. Correlated data can put every row of a wide range at the far end of another
/// property's order (a range on a date sorted by `createdAt`), and an unbounded walk would then read the
/// collection.
fn walk_bound(page: Page) -> u64 {
    4 * (MAX_SORTED as u64 + u64::from(page.offset) + u64::from(page.limit))
}

/// How a read reaches its rows.
enum Route {
    /// The filter's index ranges, as SQLite plans them.
    Filter,
    /// The ids of an index union (SQL and binds), then the rows by id.
    Union(String, Vec<Bind>),
    /// The first [`walk_bound`] entries of the index of the sort (`INDEXED BY` it), in order, checking the filter
    /// on each row; a walk that finds no whole page there is followed by [`Route::SortedFilter`].
    SortIndex(String),
    /// The filter's index ranges, then a sort, whatever SQLite's statistics say of walking the sort's index.
    SortedFilter,
    /// The sort's index from where the page starts, past the buckets before it that its tallies skip.
    Skip(tallies::Skip),
}

/// A list or count request with everything it needs, owned, so that it can move to the blocking pool.
pub(crate) struct ListRead {
    backend: String,
    object_type: String,
    /// `object_type = '<type>'`: spelled out, since SQLite uses a partial index only for a literal.
    collection: String,
    filter: Filter,
    sort: Sort,
    shape: Shape,
    reader: Reader,
    key_indexes: Arc<KeyIndexes>,
}

/// Who reads, owned, so that a read can move to the blocking pool.
pub(super) struct Reader {
    /// None: everything (the instance secret).
    subjects: Option<Vec<Subject>>,
}

impl Reader {
    pub(super) fn of(access: Access<'_>) -> Reader {
        let subjects = match access {
            Access::Everything => None,
            Access::Subjects(subjects) => Some(subjects.to_vec()),
        };
        Reader { subjects }
    }

    /// The SQL condition on `objects` of what the reader may read, and its binds ([`readable`]).
    pub(super) fn readable(&self) -> (String, Vec<String>) {
        readable(match &self.subjects {
            None => Access::Everything,
            Some(subjects) => Access::Subjects(subjects),
        })
    }
}

impl ListRead {
    pub(crate) fn new(
        at: Collection<'_>,
        filter: &Filter,
        sort: &Sort,
        shape: Shape,
        access: Access<'_>,
        key_indexes: &Arc<KeyIndexes>,
    ) -> Result<ListRead, StoreError> {
        Ok(ListRead {
            backend: at.backend.to_owned(),
            object_type: at.object_type.to_owned(),
            collection: collection_literal(at.object_type)?,
            filter: filter.clone(),
            sort: sort.clone(),
            shape,
            reader: Reader::of(access),
            key_indexes: Arc::clone(key_indexes),
        })
    }

    /// Runs `run` with the statement (a `SELECT doc ...` for a page, a `SELECT count(*) ...` for a count) in one
    /// snapshot with what it was compiled against. `run` answers its value and the rows the statement yielded.
    pub(crate) fn read<T>(
        &self,
        conn: &Connection,
        run: impl Fn(&Connection, &str, &[Bind]) -> rusqlite::Result<(T, usize)>,
    ) -> rusqlite::Result<T> {
        if self.unreserved_properties().next().is_none() && self.deep_sort().is_none() {
            // Nothing to learn first: the statement is its own snapshot.
            let (sql, binds) = self.statement(&[], Route::Filter);
            return Ok(run(conn, &sql, &binds)?.0);
        }
        snapshot(conn, |conn| {
            let (have, indexed) = self.indexed_now(conn)?;
            if let Some(skip) = self.skip(conn, &have, &indexed)? {
                return self.read_routed(conn, &indexed, Route::Skip(skip), run);
            }
            let route = self.route(conn, &have, &indexed)?;
            self.read_routed(conn, &indexed, route, &run)
        })
    }

    /// The count: from the tallies of a key index when the filter is one range of it (`tallies.rs`), else as
    /// [`ListRead::read`] counts.
    pub(crate) fn count(&self, conn: &Connection) -> rusqlite::Result<i64> {
        let run = |conn: &Connection, sql: &str, binds: &[Bind]| {
            let mut statement = conn.prepare_cached(sql)?;
            statement.query_row(rusqlite::params_from_iter(super::reads::values(binds)), |row| Ok((row.get(0)?, 1)))
        };
        // A count of the whole collection reads the tallies of a key index, if it has one.
        if self.unreserved_properties().next().is_none() && !self.filter.clauses.is_empty() {
            return self.read(conn, run);
        }
        snapshot(conn, |conn| {
            let (have, indexed) = self.indexed_now(conn)?;
            if let Some(n) = self.tallied(conn, &have, &indexed)? {
                return Ok(n);
            }
            let route = self.route(conn, &have, &indexed)?;
            self.read_routed(conn, &indexed, route, run)
        })
    }

    /// [`ListRead::tallied`] in a snapshot of its own.
    #[cfg(test)]
    pub(crate) fn tallied_count(&self, conn: &Connection) -> rusqlite::Result<Option<i64>> {
        snapshot(conn, |conn| {
            let (have, indexed) = self.indexed_now(conn)?;
            self.tallied(conn, &have, &indexed)
        })
    }

    /// Whether the page skips buckets by their tallies ([`ListRead::skip`]), in a snapshot of its own.
    #[cfg(test)]
    pub(crate) fn skips(&self, conn: &Connection) -> rusqlite::Result<bool> {
        snapshot(conn, |conn| {
            let (have, indexed) = self.indexed_now(conn)?;
            Ok(self.skip(conn, &have, &indexed)?.is_some())
        })
    }

    /// The count of a filter that is one range of a key index, or of no filter (by the first key index, which
    /// holds every row), from the index's tallies; None when they cannot answer it.
    fn tallied(&self, conn: &Connection, have: &[String], indexed: &[Indexed]) -> rusqlite::Result<Option<i64>> {
        let layout = layout(indexed);
        let Some((range, whole)) = self.tallied_range(have, &layout) else { return Ok(None) };
        self.with_tallies(range, layout, |read| {
            if whole { tallies::count_all(conn, read).map(Some) } else { tallies::count(conn, read) }
        })
        .map(Option::flatten)
    }

    /// The range whose tallies [`ListRead::tallied`] reads, and whether it is the whole index.
    fn tallied_range<'s>(&'s self, have: &'s [String], layout: &Layout<'_>) -> Option<(query_sql::OneRange<'s>, bool)> {
        match query_sql::one_range(&self.filter, layout) {
            Some(range) => Some((range, false)),
            None if self.filter.clauses.is_empty() => Some((query_sql::OneRange::whole(have.first()?), true)),
            None => None,
        }
    }

    /// The key index whose tallies [`ListRead::tallied`] reads.
    fn tallied_index(&self, have: &[String], indexed: &[Indexed]) -> Option<String> {
        let (range, _) = self.tallied_range(have, &layout(indexed))?;
        Some(super::schemas::key_index_name(&self.backend, &self.object_type, range.property))
    }

    /// The property of a one-key sort, unreserved, for a page deep enough that skipping buckets may pay.
    fn deep_sort(&self) -> Option<&str> {
        let Shape::Page(page) = self.shape else { return None };
        let [key] = self.sort.keys.as_slice() else { return None };
        let [property] = key.path.segments() else { return None };
        (page.offset >= tallies::SKIP_FROM && !RESERVED.contains(&property.as_str())).then_some(property)
    }

    /// Where a deep page sorted on an indexed property starts, past the buckets of its index that the tallies
    /// skip: for no filter, or a filter that is one range of the same index.
    fn skip(&self, conn: &Connection, have: &[String], indexed: &[Indexed]) -> rusqlite::Result<Option<tallies::Skip>> {
        let (Some(property), Shape::Page(page)) = (self.deep_sort(), self.shape) else { return Ok(None) };
        if !have.iter().any(|it| it == property) {
            return Ok(None);
        }
        let layout = layout(indexed);
        let whole = self.filter.clauses.is_empty();
        let range = if whole {
            query_sql::OneRange::whole(property)
        } else {
            match query_sql::one_range(&self.filter, &layout) {
                Some(range) if range.property == property => range,
                _ => return Ok(None),
            }
        };
        let descending = matches!(self.sort.keys[0].direction, updraft_query::Direction::Desc);
        self.with_tallies(range, layout, |read| tallies::skip(conn, read, whole, descending, page.offset))
            .map(Option::flatten)
    }

    /// Runs `use_tallies` with what the tallies of `range`'s index need; None for a reader with no subject, who
    /// reads nothing, not even what is public.
    fn with_tallies<T>(
        &self,
        range: query_sql::OneRange<'_>,
        layout: Layout<'_>,
        use_tallies: impl FnOnce(&tallies::RangeCount<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<Option<T>> {
        let (allowed, subjects) = self.reader.readable();
        let reader = match &self.reader.subjects {
            None => None,
            Some(none) if none.is_empty() => return Ok(None),
            Some(_) => Some((allowed.as_str(), subjects.as_slice())),
        };
        let index = tallies::KeyIndex::new(&self.backend, &self.object_type, &self.collection, range.property);
        use_tallies(&tallies::RangeCount { index, filter: &self.filter, range, layout, reader }).map(Some)
    }

    fn read_routed<T>(
        &self,
        conn: &Connection,
        indexed: &[Indexed],
        route: Route,
        run: impl Fn(&Connection, &str, &[Bind]) -> rusqlite::Result<(T, usize)>,
    ) -> rusqlite::Result<T> {
        let walks = matches!(route, Route::SortIndex(_));
        let (sql, binds) = self.statement(indexed, route);
        let (value, rows) = run(conn, &sql, &binds)?;
        match self.shape {
            Shape::Page(page) if walks && rows < page.limit as usize => {
                // The walk may have stopped at its bound: the filter's rows, sorted, are the answer.
                let (sql, binds) = self.statement(indexed, Route::SortedFilter);
                Ok(run(conn, &sql, &binds)?.0)
            }
            _ => Ok(value),
        }
    }

    /// Which filtered properties have a key index in this snapshot, and what they hold.
    fn indexed_now(&self, conn: &Connection) -> rusqlite::Result<(Arc<[String]>, Vec<Indexed>)> {
        let have = self.key_indexes(conn)?;
        let indexed = self.indexed(conn, &have)?;
        Ok((have, indexed))
    }

    /// How to reach the rows.
    fn route(&self, conn: &Connection, have: &[String], indexed: &[Indexed]) -> rusqlite::Result<Route> {
        if self.unreserved_properties().next().is_none() {
            // Reserved columns only: SQLite's plan of the statement is the route.
            return Ok(Route::Filter);
        }
        if let Some((union, binds)) = self.union(conn, indexed)? {
            return Ok(Route::Union(union, binds));
        }
        Ok(match self.walks_sort_index(conn, have, indexed)? {
            Some(index) => Route::SortIndex(index),
            None => Route::Filter,
        })
    }

    /// Whether the page should walk the index of its sort and check the filter on each row, rather than read the
    /// filter's rows and sort them: when the sort is on an indexed property the filter does not constrain, and the
    /// filter holds more rows than sorting is worth. (SQLite's statistics do not tell how many rows a range holds;
    /// counting them up to a bound does.) Answers the name of the sort's index.
    fn walks_sort_index(
        &self,
        conn: &Connection,
        have: &[String],
        indexed: &[Indexed],
    ) -> rusqlite::Result<Option<String>> {
        let (Shape::Page(_), Some(first)) = (self.shape, self.sort.keys.first()) else { return Ok(None) };
        let [sorted] = first.path.segments() else { return Ok(None) };
        let index = match query_sql::ordering_column(&first.path) {
            Some(column) => super::ordering_index(column).to_owned(),
            None if have.contains(sorted) => super::schemas::key_index_name(&self.backend, &self.object_type, sorted),
            None => return Ok(None),
        };
        if self.filter.properties().contains(&sorted.as_str()) {
            return Ok(None);
        }
        let layout = layout(indexed);
        if sorted == "createdAt" && query_sql::creation_ordered(&self.filter, &layout) {
            // The filter's index already yields its rows in the sort's order.
            return Ok(None);
        }
        // The tallies of a range tell it from the buckets inside, about 20 rows of `key_tallies`, where counting
        // reads a thousand index entries.
        if let Some(range) = query_sql::one_range(&self.filter, &layout) {
            let held = self.with_tallies(range, layout, |read| tallies::holds_more_than(conn, read, MAX_SORTED))?;
            if held == Some(true) {
                return Ok(Some(index));
            }
        }
        let filter = query_sql::compile_in(&self.filter, &layout);
        let rows =
            format!("SELECT 1 FROM objects WHERE backend = ? AND {} AND {}", self.collection, filter.where_clause);
        let mut binds = vec![Bind::Text(self.backend.clone())];
        binds.extend(filter.binds);
        Ok(more_than_sorted(conn, &rows, &binds)?.then_some(index))
    }

    /// The ids of the branches of an index union ([`query_sql::branches`]), as an SQL compound and its binds,
    /// when the filter needs one and it holds few enough rows to sort: beyond that, walking an index in the
    /// list's order and checking each row finds a page sooner.
    fn union(&self, conn: &Connection, indexed: &[Indexed]) -> rusqlite::Result<Option<(String, Vec<Bind>)>> {
        let Some(branches) = query_sql::branches(&self.filter, &layout(indexed)) else { return Ok(None) };
        let mut selects = Vec::with_capacity(branches.len());
        let mut binds = Vec::new();
        for branch in branches {
            binds.push(Bind::Text(self.backend.clone()));
            match branch {
                Branch::Rows(rows) => {
                    selects.push(format!(
                        "SELECT id FROM objects WHERE backend = ? AND {} AND {}",
                        self.collection, rows.where_clause
                    ));
                    binds.extend(rows.binds);
                }
                Branch::Elements { property, condition } => {
                    // `property` is a validated name; the element table's columns are `rank` and `value`.
                    binds.push(Bind::Text(self.object_type.clone()));
                    selects.push(format!(
                        "SELECT id FROM array_keys WHERE backend = ? AND object_type = ? AND property = '{property}' \
                         AND {}",
                        condition.where_clause
                    ));
                    binds.extend(condition.binds);
                }
            }
        }
        let union = selects.join(" UNION ALL ");
        Ok((!more_than_sorted(conn, &union, &binds)?).then_some((union, binds)))
    }

    /// How SQLite runs the read (`EXPLAIN QUERY PLAN`, one line per step), and what it was compiled against. A
    /// walk of the sort's index is run, to tell whether the filter's rows follow it.
    pub(crate) fn explain(&self, conn: &Connection) -> rusqlite::Result<(Vec<String>, Vec<Indexed>)> {
        snapshot(conn, |conn| {
            let (have, indexed) = self.indexed_now(conn)?;
            if let (Shape::Count, Some(_)) = (self.shape, self.tallied(conn, &have, &indexed)?) {
                let index = self.tallied_index(&have, &indexed).expect("tallied, so an index");
                let step = if self.filter.clauses.is_empty() {
                    format!("SUM key_tallies OF {index}, COUNTING THE BUCKETS NOT ALL PUBLIC IN {index}")
                } else {
                    format!("SUM key_tallies OF {index} INSIDE THE RANGE, THEN COUNT ITS TWO ENDS IN {index}")
                };
                return Ok((vec![step], indexed));
            }
            if let Some(skip) = self.skip(conn, &have, &indexed)? {
                let mut steps = vec![format!("SKIP WHOLE BUCKETS BY key_tallies, THEN OFFSET {}:", skip.offset)];
                let (sql, binds) = self.statement(&indexed, Route::Skip(skip));
                steps.extend(plan_of(conn, &sql, &binds)?);
                return Ok((steps, indexed));
            }
            let route = self.route(conn, &have, &indexed)?;
            let walks = matches!(route, Route::SortIndex(_));
            let (sql, binds) = self.statement(&indexed, route);
            let mut steps = plan_of(conn, &sql, &binds)?;
            if let (true, Shape::Page(page)) = (walks, self.shape) {
                let rows = conn
                    .prepare(&format!("SELECT count(*) FROM ({sql})"))?
                    .query_row(rusqlite::params_from_iter(super::reads::values(&binds)), |row| row.get::<_, i64>(0))?;
                if rows < i64::from(page.limit) {
                    steps.push(format!("THEN, NO PAGE WITHIN {} ENTRIES OF THE SORT'S INDEX:", walk_bound(page)));
                    let (sql, binds) = self.statement(&indexed, Route::SortedFilter);
                    steps.extend(plan_of(conn, &sql, &binds)?);
                }
            }
            Ok((steps, indexed))
        })
    }

    pub(crate) fn object_type(&self) -> &str {
        &self.object_type
    }

    /// The properties the filter reads that have no key index, for the error of a read that ran too long.
    pub(crate) fn unindexed(&self, conn: &Connection) -> rusqlite::Result<Vec<String>> {
        let have = self.key_indexes(conn)?;
        Ok(self.unreserved_properties().filter(|it| !have.iter().any(|have| have == it)).map(str::to_owned).collect())
    }

    fn unreserved_properties(&self) -> impl Iterator<Item = &str> {
        self.filter.properties().into_iter().filter(|property| !RESERVED.contains(property))
    }

    fn key_indexes(&self, conn: &Connection) -> rusqlite::Result<Arc<[String]>> {
        self.key_indexes.of(conn, &self.backend, &self.object_type)
    }

    /// The filtered properties with a key index (of those in `have`), and whether each holds an array anywhere
    /// in the collection.
    fn indexed(&self, conn: &Connection, have: &[String]) -> rusqlite::Result<Vec<Indexed>> {
        let mut indexed = Vec::new();
        for property in self.unreserved_properties().filter(|it| have.iter().any(|have| have == it)) {
            let holds_array = query_sql::holds_array(property, "doc");
            let probe = format!(
                "SELECT EXISTS (SELECT 1 FROM objects WHERE backend = ? AND {} AND {holds_array})",
                self.collection
            );
            let arrays = conn.prepare_cached(&probe)?.query_row([&self.backend], |row| row.get(0))?;
            indexed.push(Indexed { property: property.to_owned(), arrays });
        }
        Ok(indexed)
    }

    /// The statement and its binds, compiled against `indexed`, taking `route` to the rows.
    fn statement(&self, indexed: &[Indexed], route: Route) -> (String, Vec<Bind>) {
        let layout = layout(indexed);
        let mut filter = match route {
            Route::SortIndex(_) => query_sql::compile_walked(&self.filter, &layout, "walk"),
            _ => query_sql::compile_in(&self.filter, &layout),
        };
        let mut offset_left = None;
        let (allowed, subjects) = self.reader.readable();
        let mut binds = Vec::with_capacity(1 + filter.binds.len() + subjects.len());
        binds.push(Bind::Text(self.backend.clone()));
        let sorted = matches!(route, Route::SortedFilter);
        let order = || {
            // Ties in creation order; a key index (which ends in `created_ms`) then serves a one-key sort.
            let index_order =
                if self.sort.keys.is_empty() { query_sql::index_order(&self.filter, &layout) } else { None };
            let sort = index_order.as_ref().unwrap_or(&self.sort);
            let order_by = if sorted { query_sql::sorted_order_by_in } else { query_sql::order_by_in };
            order_by(sort, &self.filter, &layout, &["created_ms", "id"])
        };
        let (table, ids, page_order) = match route {
            Route::SortIndex(index) => {
                let Shape::Page(page) = self.shape else { unreachable!("only a page walks its sort's index") };
                // The walk yields each entry's row id and the key terms of the filter's indexed properties,
                // computed once a row; only the rows that pass the filter are read again, for the ACL and the page.
                let keys: String = indexed
                    .iter()
                    .map(|it| format!(", {}", query_sql::walked_key_columns(&it.property, "doc")))
                    .collect();
                let table = format!(
                    "(SELECT rowid AS walked{keys} FROM objects INDEXED BY {index} WHERE backend = ? AND {} \
                     ORDER BY {} LIMIT {}) AS walk CROSS JOIN objects ON objects.rowid = walk.walked",
                    self.collection,
                    order(),
                    walk_bound(page)
                );
                binds.push(Bind::Text(self.backend.clone()));
                // No ORDER BY: the walk yields its rows in order, and a sort would read all of them.
                (table, String::new(), String::new())
            }
            Route::Union(union, union_binds) => {
                binds.extend(union_binds);
                ("objects".to_owned(), format!("id IN ({union}) AND "), format!(" ORDER BY {}", order()))
            }
            Route::Filter | Route::SortedFilter => {
                ("objects".to_owned(), String::new(), format!(" ORDER BY {}", order()))
            }
            Route::Skip(skip) => {
                binds.extend(skip.binds);
                offset_left = Some(skip.offset);
                // `+` keeps the filter's bounds from competing with the start's for the index range.
                filter.where_clause = format!("+({})", filter.where_clause);
                let [key] = self.sort.keys.as_slice() else { unreachable!("a skip sorts on one key") };
                let property = key.path.to_string();
                let index = super::schemas::key_index_name(&self.backend, &self.object_type, &property);
                // The start pins the rank: ordering by it too would have SQLite sort what the index orders.
                let [_, value] = query_sql::key_index_columns(&property, "doc");
                let dir = if matches!(key.direction, updraft_query::Direction::Desc) { "DESC" } else { "ASC" };
                let order = format!(" ORDER BY {value} {dir}, created_ms {dir}, id {dir}");
                (format!("objects INDEXED BY {index}"), format!("{} AND ", skip.piece), order)
            }
        };
        let selection = format!("backend = ? AND {} AND {ids}({}) AND {allowed}", self.collection, filter.where_clause);
        binds.extend(filter.binds);
        binds.extend(subjects.into_iter().map(Bind::Text));
        let sql = match self.shape {
            Shape::Count => format!("SELECT count(*) FROM {table} WHERE {selection}"),
            // The page is spelled out, not bound: SQLite re-prepares a statement whose LIMIT is bound anew, which
            // was a fifth of a list request's time.
            Shape::Page(Page { limit, offset }) => {
                let offset = offset_left.unwrap_or(i64::from(offset));
                format!("SELECT doc FROM {table} WHERE {selection}{page_order} LIMIT {limit} OFFSET {offset}")
            }
        };
        (sql, binds)
    }
}

/// The layout of the `objects` table, with key indexes on `indexed`.
fn layout(indexed: &[Indexed]) -> Layout<'_> {
    Layout { doc: "doc", reserved: Some(document::format_ms), indexed }
}

/// Whether the rows `select` (with its binds) yields are more than a page sorts; reads at most one more.
fn more_than_sorted(conn: &Connection, select: &str, binds: &[Bind]) -> rusqlite::Result<bool> {
    let probe = format!("SELECT count(*) FROM ({select} LIMIT {})", MAX_SORTED + 1);
    let rows: i64 = conn
        .prepare_cached(&probe)?
        .query_row(rusqlite::params_from_iter(super::reads::values(binds)), |row| row.get(0))?;
    Ok(rows > MAX_SORTED)
}

/// Runs `read` in one read transaction, and ends it whatever happens, so that the connection goes back clean.
pub(super) fn snapshot<T>(
    conn: &Connection,
    read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    // Prepared once per connection: parsing these was a few per cent of a cheap page.
    conn.prepare_cached("BEGIN")?.execute([])?;
    let result = read(conn);
    let end = conn.prepare_cached(if result.is_ok() { "COMMIT" } else { "ROLLBACK" }).and_then(|mut it| it.execute([]));
    let value = result?;
    end?;
    Ok(value)
}

/// SQLite's plan of `sql`, as [`indent_plan`] prints it.
fn plan_of(conn: &Connection, sql: &str, binds: &[Bind]) -> rusqlite::Result<Vec<String>> {
    let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
    let rows = statement.query_map(rusqlite::params_from_iter(super::reads::values(binds)), |row| {
        Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, row.get::<_, String>(3)?))
    })?;
    Ok(indent_plan(&rows.collect::<rusqlite::Result<Vec<_>>>()?))
}

/// `EXPLAIN QUERY PLAN` rows (id, parent, detail) as lines indented by depth, as SQLite's shell prints them.
fn indent_plan(rows: &[(i64, i64, String)]) -> Vec<String> {
    let mut depth: Vec<(i64, usize)> = Vec::new();
    rows.iter()
        .map(|(id, parent, detail)| {
            let level = depth.iter().find(|(node, _)| node == parent).map_or(0, |(_, level)| level + 1);
            depth.push((*id, level));
            format!("{}{detail}", "  ".repeat(level))
        })
        .collect()
}
