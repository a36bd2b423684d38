//! Compiles the AST to PostgreSQL SQL over a JSONB document column: the PostgreSQL counterpart of `sqlite`.
//!
//! Values are read with `->` (a text key reads an object's property only, so a path never walks into an array,
//! as in the evaluator) and typed with `jsonb_typeof`. Every cast sits behind a `CASE` on the type, so no
//! evaluation order can make `(x)::numeric` see a string. Array-any semantics become
//! `EXISTS (SELECT 1 FROM jsonb_array_elements(...) AS e1(v) WHERE ...)`, conditions on an element reading the
//! element itself (`e1.v -> 'b'`).
//!
//! Every generated predicate is TRUE or FALSE, never NULL (`… IS TRUE`, or a type test that is false exactly when
//! the value it guards is NULL), so `NOT` (from `$ne`, `$nin`, `$not`, `$nor`) keeps the evaluator's two-valued
//! logic.
//!
//! Strings compare by code point, as in the evaluator: every text comparison and ordering is `COLLATE "C"`, which
//! compares UTF-8 bytes, whatever the database's collation. Numbers follow `eval::compare_numbers`: two integers
//! (a JSONB number of scale 0 within i64, which serde_json reads back as one) compare exactly, anything else as
//! `float8` (`numeric` to `float8` is correctly rounded). `$regex` is translated to an equivalent ARE (`regex.rs`).
//!
//! Placeholders are numbered (`$3::text`) and cast, so that the SQL does not depend on the types a client
//! declares for its binds: `Bind::Int` is a `bigint`, `Bind::Real` a `float8` and `Bind::Text` a `text`.
//!
//! With a [`Layout`], conditions on reserved properties read the columns that mirror them, and conditions on a
//! top-level property with a key index are spelled on [`key_index_terms`] (`keys.rs`).
//!
//! Limits, where the SQL agrees with the evaluator on the document as PostgreSQL keeps it rather than as written:
//! - JSONB numbers are `numeric`: serde_json writes a float of 1e16 or more with an exponent (`1e+17`), which
//!   PostgreSQL keeps (and hands back) as the integer `100000000000000000`.
//! - A float and an integer beyond 2^53 that round to the same `float8` are equal to the evaluator, whose order
//!   is then not transitive; here they sort by exact value.
//! - No stored string holds U+0000 (PostgreSQL text cannot); a literal holding it equals none and compares as the
//!   text before it.
//! - A `$regex` whose translation exceeds 256 KiB (Unicode classes and word boundaries spell out thousands of
//!   ranges: `\w` is 12 KB, `\b` 49 KB) is refused by [`compile_in`]; PostgreSQL may still refuse a translated
//!   pattern as too complex when it runs, an error rather than a different answer.

use crate::QueryError;
use crate::ast::{Clause, CmpOp, Direction, ElemMatch, Filter, Key, Literal, Op, Path, Pattern, Scalar, Sort};

mod keys;
mod regex;

/// A WHERE fragment with numbered, cast placeholders (`$n::bigint`, `$n::float8`, `$n::text`), and their values:
/// `binds[i]` is placeholder `first + i`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sql {
    pub where_clause: String,
    pub binds: Vec<Bind>,
}

/// A bind value. Bind `Int` as an `i64` (INT8), `Real` as an `f64` (FLOAT8) and `Text` as a `String` (TEXT); the
/// SQL casts each placeholder to that type anyway.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Int(i64),
    Real(f64),
    Text(String),
}

/// What the compiler may rely on beyond the JSONB column.
#[derive(Debug, Clone, Copy)]
pub struct Layout<'a> {
    /// The JSONB column holding one object per row: trusted SQL, a plain (optionally qualified) identifier.
    pub doc: &'a str,
    /// The rows are the store's objects: the columns `id` (TEXT), `created_ms` and `updated_ms` (BIGINT) hold the
    /// document's `id`, `createdAt` and `updatedAt` (a time spelled by this function, which must be fixed-width
    /// so that text order is time order, as `updraft_core::timestamp::format` is), and `creator` is absent or
    /// `{"id": <text>, "objectType": "users"}`, read as `doc -> 'creator' ->> 'id'`.
    pub reserved: Option<fn(i64) -> String>,
    /// Top-level properties with an index on [`key_index_terms`].
    pub indexed: &'a [Indexed],
}

/// A property with a key index, and whether any row may hold an array in it (see [`holds_array`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Indexed {
    pub property: String,
    pub arrays: bool,
}

impl<'a> Layout<'a> {
    /// Only the JSONB column: every condition reads the document.
    pub fn plain(doc: &'a str) -> Layout<'a> {
        Layout { doc, reserved: None, indexed: &[] }
    }
}

/// Compiles `filter` into a predicate over the rows of `layout`; placeholders are `$first`, `$first + 1`, … so
/// that the caller's own binds can come before them. `{}` compiles to `TRUE`.
///
/// Fails only for a `$regex` that PostgreSQL cannot run as translated (its spelled-out classes are too large).
pub fn compile_in(filter: &Filter, layout: &Layout<'_>, first: usize) -> Result<Sql, QueryError> {
    assert_identifier(layout.doc);
    assert!(first >= 1, "placeholders start at $1");
    let mut compiler = Compiler { binds: Vec::new(), first, n_aliases: 0, layout: *layout, error: None };
    let where_clause = compiler.filter(filter, layout.doc);
    match compiler.error {
        Some(e) => Err(e),
        None => Ok(Sql { where_clause, binds: compiler.binds }),
    }
}

/// The ORDER BY terms for `sort` over the rows of `layout`, then `tiebreak`, comma-separated, without the
/// keywords; the same order as [`Sort::compare`].
///
/// A key orders by [`key_index_terms`] (type rank, then the value: numbers, strings by code point, objects by
/// their string `id` after those without one, `false` before `true`), a reserved time or the id by its column.
/// `tiebreak` (trusted names of NOT NULL columns, such as `created_ms, id`) makes the order total; it follows
/// the direction of the first key, so that a one-key sort runs in one direction throughout and a key index serves it, forwards
/// or backwards. `filter` is not needed: PostgreSQL sees by itself that a rank fixed by `=` leaves the index in
/// value order.
pub fn order_by_in(sort: &Sort, filter: &Filter, layout: &Layout<'_>, tiebreak: &[&str]) -> String {
    let _ = filter;
    assert_identifier(layout.doc);
    // Key terms may be NULL (see `key_index_terms`); columns (reserved ones, the tiebreak) must not be, and keep
    // the default NULL order of an index on them.
    let direction = |direction: Direction, nullable: bool| match (direction, nullable) {
        (Direction::Asc, true) => "ASC NULLS FIRST",
        (Direction::Desc, true) => "DESC NULLS LAST",
        (Direction::Asc, false) => "ASC",
        (Direction::Desc, false) => "DESC",
    };
    let mut terms: Vec<(String, &str)> = Vec::with_capacity(sort.keys.len() * 4 + tiebreak.len());
    for key in &sort.keys {
        if let Some(column) = layout.reserved.and_then(|_| keys::ordering_column(&key.path)) {
            terms.push((column.to_owned(), direction(key.direction, false)));
            continue;
        }
        let dir = direction(key.direction, true);
        terms.extend(key_terms(&path_value(layout.doc, &key.path)).into_iter().map(|term| (term, dir)));
    }
    let dir = direction(sort.keys.first().map_or(Direction::Asc, |key| key.direction), false);
    for column in tiebreak {
        assert_identifier(column);
        if !terms.iter().any(|(it, _)| it == column) {
            terms.push(((*column).to_owned(), dir));
        }
    }
    terms.into_iter().map(|(term, dir)| format!("{term} {dir}")).collect::<Vec<_>>().join(", ")
}

/// The columns of the key index of the top-level `property` over the JSONB `column`: its type rank, its number
/// as `float8` and as `numeric`, and its text (a string, a ref's `id`, `false`/`true`) `COLLATE "C"`, each
/// `NULLS FIRST`: the terms [`compile_in`] and [`order_by_in`] use, which the planner matches structurally.
///
/// The store creates one per collection and indexed property, ending in its tiebreak:
///
/// ```sql
/// CREATE INDEX "<name>" ON objects (<key_index_terms(property, "doc")>, created_ms, id)
///     WHERE backend = '<backend>' AND object_type = '<object type>'
/// ```
///
/// A query then spells `backend = … AND object_type = …` with constants or binds (a custom plan sees the bind
/// values; a generic plan cannot use a partial index). An equality, a range, an `$in`, an anchored prefix or
/// ref equality on the property is a range of the index, and a sort on it (with that tiebreak) walks it.
/// `property` must be a plain name.
pub fn key_index_terms(property: &str, column: &str) -> String {
    key_terms(&property_value(property, column)).map(|term| format!("({term}) NULLS FIRST")).join(", ")
}

/// The condition that a row holds an array in the indexed `property`: a range of its key index, which the store
/// probes to learn whether conditions on the property need their array half (see [`Indexed::arrays`]).
pub fn holds_array(property: &str, column: &str) -> String {
    let [rank, ..] = key_terms(&property_value(property, column));
    format!("{rank} = 4")
}

fn property_value(property: &str, column: &str) -> String {
    assert!(crate::ast::is_segment(property), "not a plain property name: {property:?}");
    assert_identifier(column);
    child(column, property)
}

/// The JSONB value at `path` in the document `column` (NULL when missing).
fn path_value(column: &str, path: &Path) -> String {
    path.segments().iter().fold(column.to_owned(), |value, segment| child(&value, segment))
}

/// The property `key` of the JSONB value `value`: `key` is a validated segment, safe between quotes.
fn child(value: &str, key: &str) -> String {
    debug_assert!(crate::ast::is_segment(key));
    format!("({value} -> '{key}')")
}

/// The type rank, `float8`, `numeric` and text terms of the JSONB value `x` (see [`key_index_terms`]). Keep in
/// sync with `eval::type_rank` and `eval::ref_id`.
fn key_terms(x: &str) -> [String; 4] {
    [
        format!(
            "(CASE jsonb_typeof({x}) WHEN 'number' THEN 1 WHEN 'string' THEN 2 WHEN 'object' THEN 3 \
             WHEN 'array' THEN 4 WHEN 'boolean' THEN 5 ELSE 0 END)"
        ),
        float8(x),
        numeric(x),
        format!(
            "((CASE jsonb_typeof({x}) WHEN 'string' THEN {x} #>> '{{}}' WHEN 'boolean' THEN {x} #>> '{{}}' \
             WHEN 'object' THEN (CASE WHEN jsonb_typeof({x} -> 'id') = 'string' THEN {x} ->> 'id' END) END) \
             COLLATE \"C\")"
        ),
    ]
}

fn float8(x: &str) -> String {
    format!("(CASE WHEN jsonb_typeof({x}) = 'number' THEN ({x})::float8 END)")
}

fn numeric(x: &str) -> String {
    format!("(CASE WHEN jsonb_typeof({x}) = 'number' THEN ({x})::numeric END)")
}

/// The string `x` holds, or NULL.
fn string(x: &str) -> String {
    format!("((CASE WHEN jsonb_typeof({x}) = 'string' THEN {x} #>> '{{}}' END) COLLATE \"C\")")
}

/// The length of the array `x`, or NULL.
fn length(x: &str) -> String {
    format!("(CASE WHEN jsonb_typeof({x}) = 'array' THEN jsonb_array_length({x}) END)")
}

/// `cond`, with NULL as FALSE.
fn truth(cond: &str) -> String {
    format!("(({cond}) IS TRUE)")
}

struct Compiler<'a> {
    binds: Vec<Bind>,
    first: usize,
    n_aliases: usize,
    layout: Layout<'a>,
    /// The first `$regex` that could not be translated; the SQL is then discarded.
    error: Option<QueryError>,
}

/// Builds an SQL condition on a JSONB value.
type Pred<'p> = &'p dyn Fn(&mut Compiler<'_>, &str) -> String;

impl Compiler<'_> {
    /// A placeholder for `bind`, cast to its type.
    fn bind(&mut self, bind: Bind) -> String {
        let ty = match bind {
            Bind::Int(_) => "bigint",
            Bind::Real(_) => "float8",
            Bind::Text(_) => "text",
        };
        self.binds.push(bind);
        format!("${}::{ty}", self.first + self.binds.len() - 1)
    }

    fn filter(&mut self, filter: &Filter, root: &str) -> String {
        let parts = filter.clauses.iter().map(|it| self.clause(it, root)).collect();
        join(parts, "AND", "TRUE")
    }

    fn clause(&mut self, clause: &Clause, root: &str) -> String {
        match clause {
            Clause::Field { path, ops } => {
                let target = path_value(root, path);
                if root == self.layout.doc {
                    if let Some(sql) = self.reserved_field(path, ops, &target) {
                        return sql;
                    }
                    if let Some(arrays) = self.key_indexed(path) {
                        return self.key_ops(ops, &key_terms(&target), arrays, &target);
                    }
                }
                self.ops(ops, &target)
            }
            Clause::And(filters) => {
                let parts = filters.iter().map(|it| self.filter(it, root)).collect();
                join(parts, "AND", "TRUE")
            }
            Clause::Or(filters) => {
                let parts = filters.iter().map(|it| self.filter(it, root)).collect();
                join(parts, "OR", "FALSE")
            }
            Clause::Nor(filters) => {
                let parts = filters.iter().map(|it| self.filter(it, root)).collect();
                format!("(NOT {})", join(parts, "OR", "FALSE"))
            }
        }
    }

    fn ops(&mut self, ops: &[Op], x: &str) -> String {
        let parts = ops.iter().map(|it| self.op(it, x)).collect();
        join(parts, "AND", "TRUE")
    }

    fn op(&mut self, op: &Op, x: &str) -> String {
        match op {
            Op::Eq(literal) => self.eq(literal, x),
            Op::In(literals) => {
                let parts = literals.iter().map(|it| self.eq(it, x)).collect();
                join(parts, "OR", "FALSE")
            }
            Op::All(literals) => {
                let parts = literals.iter().map(|it| self.eq(it, x)).collect();
                join(parts, "AND", "FALSE")
            }
            Op::Cmp(op, scalar) => self.self_or_any(x, &|c, x| c.compare(*op, scalar, x)),
            Op::Exists(true) => format!("({x} IS NOT NULL)"),
            Op::Exists(false) => format!("({x} IS NULL)"),
            Op::Regex(pattern) => self.self_or_any(x, &|c, x| c.regex(pattern, x)),
            Op::Size(n) => match i64::try_from(*n) {
                Ok(n) => {
                    let n = self.bind(Bind::Int(n));
                    truth(&format!("{} = {n}", length(x)))
                }
                Err(_) => "FALSE".to_owned(),
            },
            Op::ElemMatch(ElemMatch::Ops(ops)) => self.each(x, &|c, elem| c.ops(ops, elem)),
            Op::ElemMatch(ElemMatch::Filter(filter)) => {
                self.each(x, &|c, elem| format!("((jsonb_typeof({elem}) = 'object') AND {})", c.filter(filter, elem)))
            }
            Op::Not(ops) => format!("(NOT {})", self.ops(ops, x)),
        }
    }

    fn eq(&mut self, literal: &Literal, x: &str) -> String {
        let any = self.self_or_any(x, &|c, x| c.strict_eq(literal, x));
        match literal {
            Literal::Null => format!("({x} IS NULL OR {any})"),
            _ => any,
        }
    }

    fn strict_eq(&mut self, literal: &Literal, x: &str) -> String {
        match literal {
            Literal::Null => truth(&format!("jsonb_typeof({x}) = 'null'")),
            Literal::Bool(b) => truth(&format!("{x} = '{b}'::jsonb")),
            Literal::Number(n) => truth(&self.number_cmp(None, n, &float8(x), &numeric(x))),
            Literal::String(s) => match self.text(s) {
                Some(s) => truth(&format!("{} = {s}", string(x))),
                None => "FALSE".to_owned(),
            },
            Literal::Array(items) => {
                let mut parts = vec![truth(&format!("{} = {}", length(x), items.len()))];
                for (idx, item) in items.iter().enumerate() {
                    parts.push(self.strict_eq(item, &format!("({x} -> {idx})")));
                }
                join(parts, "AND", "TRUE")
            }
            Literal::Object(fields) => {
                let mut parts = vec![truth(&format!("jsonb_typeof({x}) = 'object'"))];
                for (key, value) in fields {
                    parts.push(self.strict_eq(value, &child(x, key.as_str())));
                }
                join(parts, "AND", "TRUE")
            }
        }
    }

    fn compare(&mut self, op: CmpOp, scalar: &Scalar, x: &str) -> String {
        match scalar {
            Scalar::Number(n) => truth(&self.number_cmp(Some(op), n, &float8(x), &numeric(x))),
            Scalar::String(s) => truth(&self.text_cmp(op, s, &string(x))),
        }
    }

    /// A number (its `float8` and `numeric` terms, NULL for anything else) compared with `n` as
    /// `eval::compare_numbers` does; `op` None is equality. Both integers (within i64) compare exactly, otherwise
    /// as `float8`. An integer literal below 2^53 in magnitude compares the same both ways (a larger integer
    /// value rounds to a float beyond it), so only a larger one needs the exact test, after an index-friendly
    /// range on the `float8` term that holds every match.
    fn number_cmp(&mut self, op: Option<CmpOp>, n: &serde_json::Number, f8: &str, num: &str) -> String {
        let sql_op = op.map_or("=", sql_op);
        let real = n.as_f64().unwrap_or(f64::NAN);
        let f = self.bind(Bind::Real(real));
        match n.as_i64() {
            Some(int) if int.unsigned_abs() >= 1 << 53 => {
                let loose = match op {
                    None => "=",
                    Some(CmpOp::Gt | CmpOp::Gte) => ">=",
                    Some(CmpOp::Lt | CmpOp::Lte) => "<=",
                };
                let exact = self.bind(Bind::Int(int));
                format!(
                    "({f8} {loose} {f} AND (CASE WHEN scale({num}) = 0 AND {num} BETWEEN -9223372036854775808 \
                     AND 9223372036854775807 THEN {num} {sql_op} {exact} ELSE {f8} {sql_op} {f} END))"
                )
            }
            _ => format!("{f8} {sql_op} {f}"),
        }
    }

    /// `text` as a text placeholder, or None when it holds U+0000, which no PostgreSQL text (so no stored string)
    /// holds: it then equals nothing.
    fn text(&mut self, text: &str) -> Option<String> {
        (!text.contains('\0')).then(|| self.bind(Bind::Text(text.to_owned())))
    }

    /// `value` (text `COLLATE "C"`) compared with `s` by code point. A string holding U+0000 compares with stored
    /// strings (which cannot hold it) as the text before it does, counted as smaller than them.
    fn text_cmp(&mut self, op: CmpOp, s: &str, value: &str) -> String {
        match s.split_once('\0') {
            None => {
                let s = self.bind(Bind::Text(s.to_owned()));
                format!("{value} {} {s}", sql_op(op))
            }
            Some((before, _)) => {
                let before = self.bind(Bind::Text(before.to_owned()));
                match op {
                    CmpOp::Gt | CmpOp::Gte => format!("{value} > {before}"),
                    CmpOp::Lt | CmpOp::Lte => format!("{value} <= {before}"),
                }
            }
        }
    }

    /// `value ~ <pattern as an ARE>`; `value` must be text `COLLATE "C"` (or NULL).
    fn regex_on(&mut self, pattern: &Pattern, value: &str) -> String {
        match regex::translate(pattern.source()) {
            Ok(are) => {
                let are = self.bind(Bind::Text(are));
                format!("{value} ~ {are}")
            }
            Err(e) => {
                self.error.get_or_insert(e);
                "FALSE".to_owned()
            }
        }
    }

    fn regex(&mut self, pattern: &Pattern, x: &str) -> String {
        truth(&self.regex_on(pattern, &string(x)))
    }

    /// Whether `path` is a property with a key index, and if so whether it may hold arrays.
    fn key_indexed(&self, path: &Path) -> Option<bool> {
        let [property] = path.segments() else { return None };
        self.layout.indexed.iter().find(|it| it.property == *property).map(|it| it.arrays)
    }

    /// MongoDB's array rule: `pred` holds for the value itself or for one of its elements.
    fn self_or_any(&mut self, x: &str, pred: Pred<'_>) -> String {
        let itself = pred(self, x);
        let any = self.each(x, pred);
        format!("({itself} OR {any})")
    }

    /// Whether `x` is an array with an element satisfying `pred`.
    fn each(&mut self, x: &str, pred: Pred<'_>) -> String {
        self.n_aliases += 1;
        let alias = format!("e{}", self.n_aliases);
        let cond = pred(self, &format!("{alias}.v"));
        format!(
            "EXISTS (SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof({x}) = 'array' THEN {x} END) \
             AS {alias}(v) WHERE {cond})"
        )
    }
}

fn sql_op(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Gt => ">",
        CmpOp::Gte => ">=",
        CmpOp::Lt => "<",
        CmpOp::Lte => "<=",
    }
}

/// The `id` of an object literal when it is a string: the text a key index holds for a ref (see `key_terms`).
fn literal_ref_id(fields: &[(Key, Literal)]) -> Option<&str> {
    fields.iter().find_map(|(key, value)| match value {
        Literal::String(id) if key.as_str() == "id" => Some(id.as_str()),
        _ => None,
    })
}

/// Joins as a balanced tree, so long `$in` lists stay shallow.
fn join(mut parts: Vec<String>, op: &str, empty: &str) -> String {
    match parts.len() {
        0 => empty.to_owned(),
        1 => parts.pop().unwrap_or_default(),
        n => {
            let right = parts.split_off(n / 2);
            format!("({} {op} {})", join(parts, op, empty), join(right, op, empty))
        }
    }
}

fn assert_identifier(column: &str) {
    let ok = column.split('.').all(|part| {
        part.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    });
    assert!(ok, "column must be an SQL identifier, got {column:?}");
}

#[cfg(test)]
mod tests;
