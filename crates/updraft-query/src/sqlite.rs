//! Compiles the AST to SQLite SQL over a JSON(B) document column.
//!
//! The output uses `json_type`, `->>`, `json_array_length` and `jsonb_each` (SQLite ≥ 3.45 for JSONB; the
//! bundled SQLite of sqlx 0.9 is 3.51). Array-any semantics become
//! `EXISTS (SELECT 1 FROM jsonb_each(doc, '$.tags') AS j1 WHERE ...)`; conditions on an element's properties
//! look them up in the element (`json_type(j1.value, '$.b')`), so a filter costs time linear in the document.
//!
//! Every generated predicate is 0 or 1, never NULL: type tests use `IS`, and values are compared only once
//! their type is known. That keeps `NOT` (from `$ne`, `$nin`, `$not`, `$nor`) in two-valued logic, as in the
//! evaluator.
//!
//! `$regex` compiles to `value REGEXP ?`. SQLite has no REGEXP function of its own; the connection must register
//! one built on the `regex` crate, which sqlx does safely with its `regexp` feature and
//! `SqliteConnectOptions::with_regexp()`. Without it SQLite rejects the statement ("no such function"), so a
//! misconfigured store fails loudly instead of matching differently.
//!
//! With a [`Layout`], conditions become index lookups where the store tells what it knows: reserved properties
//! read the columns that mirror them (`keys.rs`), and a top-level property with a key index compiles to its
//! (type rank, value) columns, so that an equality, a range, an `$in` or a prefix is an index range. The array
//! half of MongoDB's rule ("or an element matches") is added only for a property that may hold arrays, which
//! the store checks in the same snapshot as the query: a property that holds none has no such rows.

use crate::ast::{Clause, CmpOp, Direction, ElemMatch, Filter, Key, Literal, Op, Path, Pattern, Scalar, Sort};

mod branches;
mod keys;
mod ranges;

pub use branches::{Branch, branches};
pub use keys::{creation_ordered, index_order, literal_prefix, ordering_column};
pub use ranges::{OneRange, key_index_columns, key_terms_named, one_range};

/// A WHERE fragment with anonymous `?` placeholders, and their values in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Sql {
    pub where_clause: String,
    pub binds: Vec<Bind>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Int(i64),
    Real(f64),
    Text(String),
}

/// Compiles `filter` into a predicate over `column`, which holds one JSON object per row.
///
/// `column` is trusted SQL, such as `doc` or `o.doc`; it must be a plain (optionally qualified) identifier.
/// `{}` compiles to `1`.
pub fn compile(filter: &Filter, column: &str) -> Sql {
    compile_in(filter, &Layout::plain(column))
}

/// What the compiler may rely on beyond the JSON column.
#[derive(Debug, Clone, Copy)]
pub struct Layout<'a> {
    /// The column holding one JSON object per row: trusted SQL, a plain (optionally qualified) identifier.
    pub doc: &'a str,
    /// The rows are the store's objects: the columns `id`, `created_ms` and `updated_ms` hold the document's `id`,
    /// `createdAt` and `updatedAt` (a time spelled by this function, which must be fixed-width so that text order
    /// is time order), and `creator` is absent or `{"id": <text>, "objectType": "users"}`.
    pub reserved: Option<fn(i64) -> String>,
    /// Top-level properties with an index on [`key_index_terms`].
    pub indexed: &'a [Indexed],
}

/// A property with a key index, and whether any row may hold an array in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Indexed {
    pub property: String,
    pub arrays: bool,
}

impl<'a> Layout<'a> {
    /// Only the JSON column: every condition reads the document.
    pub fn plain(doc: &'a str) -> Layout<'a> {
        Layout { doc, reserved: None, indexed: &[] }
    }
}

/// Compiles `filter` into a predicate over the rows of `layout`.
pub fn compile_in(filter: &Filter, layout: &Layout<'_>) -> Sql {
    compile_with(filter, layout, None)
}

/// [`compile_in`] for rows that a walk of another index yields: its co-routine `walk` computed each indexed
/// property's key terms once a row ([`walked_key_columns`]), and the conditions read them there rather than
/// look the property up in the document again for each of them.
pub fn compile_walked(filter: &Filter, layout: &Layout<'_>, walk: &str) -> Sql {
    assert_identifier(walk);
    compile_with(filter, layout, Some(walk))
}

fn compile_with(filter: &Filter, layout: &Layout<'_>, walk: Option<&str>) -> Sql {
    assert_identifier(layout.doc);
    let mut compiler = Compiler { binds: Vec::new(), n_aliases: 0, layout: *layout, walk };
    let where_clause = compiler.filter(filter, &Target::root(layout.doc));
    Sql { where_clause, binds: compiler.binds }
}

/// The columns a walk's co-routine selects for the indexed `property` (see [`compile_walked`]).
pub fn walked_key_columns(property: &str, column: &str) -> String {
    let [rank, value] = key_terms(&property_path(property), column);
    format!("{rank} AS \"rank:{property}\", {value} AS \"value:{property}\"")
}

/// The ORDER BY terms for `sort` over `column`, then `tiebreak`, comma-separated, without the keywords.
///
/// Each key orders by type rank, then by value, matching [`Sort::compare`]. Strings compare by code point because
/// `->>` yields TEXT with the BINARY collation. `tiebreak` (trusted column names, such as the id) makes the order
/// total; it follows the direction of the first key, so that a one-key sort runs in one direction throughout and
/// an index from [`key_index_terms`] serves it, forwards or backwards, without a sort step.
pub fn order_by(sort: &Sort, column: &str, tiebreak: &[&str]) -> String {
    order_by_in(sort, &Filter { clauses: Vec::new() }, &Layout::plain(column), tiebreak)
}

/// [`order_by`] over the rows of `layout` selected by `filter`: a reserved time or the id orders by its column,
/// and a key whose type rank the filter pins orders by its value alone. (SQLite does not see that a rank fixed
/// by `=` leaves the index in value order, and would sort what the index already orders.)
pub fn order_by_in(sort: &Sort, filter: &Filter, layout: &Layout<'_>, tiebreak: &[&str]) -> String {
    order_terms(sort, filter, layout, tiebreak, |term| term)
}

/// [`order_by_in`] with every term behind SQLite's no-op unary `+`, which keeps its value and collation but
/// keeps the planner from walking an index for the order: the rows come from the filter's indexes, then a sort.
pub fn sorted_order_by_in(sort: &Sort, filter: &Filter, layout: &Layout<'_>, tiebreak: &[&str]) -> String {
    order_terms(sort, filter, layout, tiebreak, |term| format!("+({term})"))
}

fn order_terms(
    sort: &Sort,
    filter: &Filter,
    layout: &Layout<'_>,
    tiebreak: &[&str],
    wrap: impl Fn(String) -> String,
) -> String {
    let column = layout.doc;
    assert_identifier(column);
    let direction = |direction: Direction| match direction {
        Direction::Asc => "ASC",
        Direction::Desc => "DESC",
    };
    let mut terms = Vec::with_capacity(sort.keys.len() * 2 + tiebreak.len());
    for key in &sort.keys {
        let dir = direction(key.direction);
        if let Some(column) = layout.reserved.and_then(|_| keys::ordering_column(&key.path)) {
            terms.push((column.to_owned(), dir));
            continue;
        }
        let [rank, value] = key_terms(&json_path(&key.path), column);
        if keys::pinned_rank(filter, &key.path, layout).is_none() {
            terms.push((rank, dir));
        }
        if !keys::pinned_value(filter, &key.path, layout) {
            terms.push((value, dir));
        }
    }
    let dir = direction(sort.keys.first().map_or(Direction::Asc, |key| key.direction));
    for column in tiebreak {
        assert_identifier(column);
        // A sort on `createdAt` or `id` already ends in it; SQLite would not see through the repeat.
        if !terms.iter().any(|(it, _)| it == column) {
            terms.push(((*column).to_owned(), dir));
        }
    }
    terms.into_iter().map(|(term, dir)| format!("{} {dir}", wrap(term))).collect::<Vec<_>>().join(", ")
}

/// The columns of the key index of the top-level `property`: its type rank and comparable value, the same
/// expressions as [`order_by`] and [`compile_in`] use, which the planner matches structurally. A sort on the
/// property walks the index; an equality, a range or a prefix on it is a range of the index. `property` must be a
/// plain name.
pub fn key_index_terms(property: &str, column: &str) -> String {
    key_terms(&property_path(property), column).join(", ")
}

/// The condition that a row holds an array in the indexed `property`: a range of its key index, which the store
/// probes to learn whether conditions on the property need their array half (see [`Indexed::arrays`]).
pub fn holds_array(property: &str, column: &str) -> String {
    let [rank, _] = key_terms(&property_path(property), column);
    format!("{rank} = 4")
}

fn property_path(property: &str) -> String {
    assert!(crate::ast::is_segment(property), "not a plain property name: {property:?}");
    format!("$.{property}")
}

/// The type rank and the comparable value of the JSON at `path`: the number, string or boolean itself, an
/// object's `id` when it is a string (so that ref equality is an index lookup), else NULL. Keep in sync with
/// `eval::type_rank` and `eval::ref_id`.
fn key_terms(path: &str, column: &str) -> [String; 2] {
    key_terms_at(&format!("'{path}'"), &format!("'{path}.id'"), column)
}
/// [`key_terms`] with the paths given as SQL: `quoted` to the value, `id` to its `id`.
fn key_terms_at(quoted: &str, id: &str, column: &str) -> [String; 2] {
    assert_identifier(column);
    [
        format!(
            "CASE json_type({column}, {quoted}) WHEN 'integer' THEN 1 WHEN 'real' THEN 1 WHEN 'text' THEN 2 \
             WHEN 'object' THEN 3 WHEN 'array' THEN 4 WHEN 'true' THEN 5 WHEN 'false' THEN 5 ELSE 0 END"
        ),
        format!(
            "CASE json_type({column}, {quoted}) WHEN 'object' THEN (CASE WHEN json_type({column}, {id}) IS 'text' \
             THEN {column} ->> {id} END) WHEN 'array' THEN NULL ELSE {column} ->> {quoted} END"
        ),
    ]
}

/// Where a condition looks: a JSON path into the column or into an array element, or the current element of a
/// `jsonb_each`.
///
/// Paths are always known at compile time and relative to the innermost element. A run-time path from the
/// document root (`j1.fullkey || '.b'`) would walk the array from its start for every element: quadratic.
enum Target {
    /// `path` (such as `$.a.b`) into the JSON value of the SQL expression `base`.
    Path { base: String, path: String },
    /// The current row of the `jsonb_each` with this alias.
    Elem(String),
}

impl Target {
    fn root(column: &str) -> Target {
        Target::Path { base: column.to_owned(), path: "$".to_owned() }
    }

    /// The JSON value holding the target, as an SQL expression, and the target's path in it.
    fn located(&self) -> (String, String) {
        match self {
            Target::Path { base, path } => (base.clone(), path.clone()),
            // Only a container's value is JSON(B): a text element such as "{}" must not be parsed as JSON.
            // `CASE` (unlike `AND`) is sure to evaluate lazily. NULL has no paths, like a scalar.
            Target::Elem(alias) => {
                (format!("(CASE WHEN {alias}.type IN ('object', 'array') THEN {alias}.value END)"), "$".to_owned())
            }
        }
    }

    /// The JSON value holding the target, as an SQL expression, and the path as an SQL literal.
    fn sql(&self) -> (String, String) {
        let (base, path) = self.located();
        (base, format!("'{path}'"))
    }

    /// `suffix` is built from validated segments or integers, e.g. `.id` or `[2]`.
    fn child(&self, suffix: &str) -> Target {
        let (base, path) = self.located();
        Target::Path { base, path: format!("{path}{suffix}") }
    }
}

struct Compiler<'a> {
    binds: Vec<Bind>,
    n_aliases: usize,
    layout: Layout<'a>,
    /// The co-routine whose columns hold the key terms, for [`compile_walked`].
    walk: Option<&'a str>,
}

/// Builds an SQL condition on a target. Binds must be pushed in the order their `?` appear in the text.
type Pred<'p> = &'p dyn Fn(&mut Compiler<'_>, &Target) -> String;

impl Compiler<'_> {
    fn filter(&mut self, filter: &Filter, root: &Target) -> String {
        let parts = filter.clauses.iter().map(|it| self.clause(it, root)).collect();
        join(parts, "AND", "1")
    }

    fn clause(&mut self, clause: &Clause, root: &Target) -> String {
        match clause {
            Clause::Field { path, ops } => {
                let target = root.child(&format!(".{path}"));
                if self.at_document(root) {
                    if let Some(sql) = self.reserved_field(path, ops, &target) {
                        return sql;
                    }
                    if let Some(arrays) = self.key_indexed(path) {
                        let key = match self.walk {
                            Some(walk) => [format!("{walk}.\"rank:{path}\""), format!("{walk}.\"value:{path}\"")],
                            None => key_terms(&json_path(path), self.layout.doc),
                        };
                        return self.key_ops(ops, &key, arrays, &target);
                    }
                }
                self.ops(ops, &target)
            }
            Clause::And(filters) => {
                let parts = filters.iter().map(|it| self.filter(it, root)).collect();
                join(parts, "AND", "1")
            }
            Clause::Or(filters) => {
                let parts = filters.iter().map(|it| self.filter(it, root)).collect();
                join(parts, "OR", "0")
            }
            Clause::Nor(filters) => {
                let parts = filters.iter().map(|it| self.filter(it, root)).collect();
                format!("(NOT {})", join(parts, "OR", "0"))
            }
        }
    }

    fn ops(&mut self, ops: &[Op], target: &Target) -> String {
        let parts = ops.iter().map(|it| self.op(it, target)).collect();
        join(parts, "AND", "1")
    }

    fn op(&mut self, op: &Op, target: &Target) -> String {
        match op {
            Op::Eq(literal) => self.eq(literal, target),
            Op::In(literals) => {
                let parts = literals.iter().map(|it| self.eq(it, target)).collect();
                join(parts, "OR", "0")
            }
            Op::All(literals) => {
                let parts = literals.iter().map(|it| self.eq(it, target)).collect();
                join(parts, "AND", "0")
            }
            Op::Cmp(op, scalar) => self.self_or_any(target, &|c, t| c.compare(*op, scalar, t)),
            Op::Exists(true) => format!("({} IS NOT NULL)", self.ty(target)),
            Op::Exists(false) => format!("({} IS NULL)", self.ty(target)),
            Op::Regex(pattern) => self.self_or_any(target, &|c, t| c.regex(pattern, t)),
            Op::Size(n) => match i64::try_from(*n) {
                Ok(n) => {
                    self.binds.push(Bind::Int(n));
                    let (base, path) = target.sql();
                    format!("({} IS 'array' AND json_array_length({base}, {path}) = ?)", self.ty(target))
                }
                Err(_) => "0".to_owned(),
            },
            Op::ElemMatch(ElemMatch::Ops(ops)) => self.each(target, &|c, elem| c.ops(ops, elem)),
            Op::ElemMatch(ElemMatch::Filter(filter)) => self.each(target, &|c, elem| {
                let ty = c.ty(elem);
                format!("({ty} IS 'object' AND {})", c.filter(filter, elem))
            }),
            Op::Not(ops) => format!("(NOT {})", self.ops(ops, target)),
        }
    }

    fn eq(&mut self, literal: &Literal, target: &Target) -> String {
        let any = self.self_or_any(target, &|c, t| c.strict_eq(literal, t));
        match literal {
            Literal::Null => format!("({} IS NULL OR {any})", self.ty(target)),
            _ => any,
        }
    }

    fn strict_eq(&mut self, literal: &Literal, target: &Target) -> String {
        let ty = self.ty(target);
        match literal {
            Literal::Null => format!("({ty} IS 'null')"),
            Literal::Bool(true) => format!("({ty} IS 'true')"),
            Literal::Bool(false) => format!("({ty} IS 'false')"),
            Literal::Number(n) => {
                self.binds.push(number_bind(n));
                format!("(({ty} IS 'integer' OR {ty} IS 'real') AND {} = ?)", self.val(target))
            }
            Literal::String(s) => {
                self.binds.push(Bind::Text(s.clone()));
                format!("({ty} IS 'text' AND {} = ?)", self.val(target))
            }
            Literal::Array(items) => {
                let (base, path) = target.sql();
                let mut parts = vec![
                    format!("({ty} IS 'array')"),
                    format!("(json_array_length({base}, {path}) = {})", items.len()),
                ];
                for (idx, item) in items.iter().enumerate() {
                    parts.push(self.strict_eq(item, &target.child(&format!("[{idx}]"))));
                }
                join(parts, "AND", "1")
            }
            Literal::Object(fields) => {
                let mut parts = vec![format!("({ty} IS 'object')")];
                for (key, value) in fields {
                    parts.push(self.strict_eq(value, &target.child(&format!(".{}", key.as_str()))));
                }
                join(parts, "AND", "1")
            }
        }
    }

    fn compare(&mut self, op: CmpOp, scalar: &Scalar, target: &Target) -> String {
        let (ty, val) = (self.ty(target), self.val(target));
        let sql_op = sql_op(op);
        match scalar {
            Scalar::Number(n) => {
                self.binds.push(number_bind(n));
                format!("(({ty} IS 'integer' OR {ty} IS 'real') AND {val} {sql_op} ?)")
            }
            Scalar::String(s) => {
                self.binds.push(Bind::Text(s.clone()));
                format!("({ty} IS 'text' AND {val} {sql_op} ?)")
            }
        }
    }

    fn regex(&mut self, pattern: &Pattern, target: &Target) -> String {
        self.binds.push(Bind::Text(pattern.source().to_owned()));
        format!("({} IS 'text' AND {} REGEXP ?)", self.ty(target), self.val(target))
    }

    /// Whether `root` is the document itself, where the layout's columns and indexes apply (not an element).
    fn at_document(&self, root: &Target) -> bool {
        matches!(root, Target::Path { base, path } if base == self.layout.doc && path == "$")
    }

    /// Whether `path` is a property with a key index, and if so whether it may hold arrays.
    fn key_indexed(&self, path: &Path) -> Option<bool> {
        let [property] = path.segments() else { return None };
        self.layout.indexed.iter().find(|it| it.property == *property).map(|it| it.arrays)
    }

    /// MongoDB's array rule: `pred` holds for the value itself or for one of its elements.
    fn self_or_any(&mut self, target: &Target, pred: Pred<'_>) -> String {
        let itself = pred(self, target);
        let any = self.each(target, pred);
        format!("({itself} OR {any})")
    }

    /// Whether the target is an array with an element satisfying `pred`.
    fn each(&mut self, target: &Target, pred: Pred<'_>) -> String {
        self.n_aliases += 1;
        let alias = format!("j{}", self.n_aliases);
        let ty = self.ty(target);
        let (base, path) = target.sql();
        let cond = pred(self, &Target::Elem(alias.clone()));
        // `jsonb_each`: a container element's `value` is then JSONB, which lookups in it read without parsing.
        format!("({ty} IS 'array' AND EXISTS (SELECT 1 FROM jsonb_each({base}, {path}) AS {alias} WHERE {cond}))")
    }

    fn ty(&self, target: &Target) -> String {
        match target {
            Target::Elem(alias) => format!("{alias}.type"),
            Target::Path { .. } => {
                let (base, path) = target.sql();
                format!("json_type({base}, {path})")
            }
        }
    }

    fn val(&self, target: &Target) -> String {
        match target {
            Target::Elem(alias) => format!("{alias}.value"),
            Target::Path { .. } => {
                let (base, path) = target.sql();
                format!("({base} ->> {path})")
            }
        }
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

/// The `id` of an object literal when it is a string: the value a key index holds for a ref (see `key_terms`).
fn literal_ref_id(fields: &[(Key, Literal)]) -> Option<&str> {
    fields.iter().find_map(|(key, value)| match value {
        Literal::String(id) if key.as_str() == "id" => Some(id.as_str()),
        _ => None,
    })
}

fn number_bind(n: &serde_json::Number) -> Bind {
    match n.as_i64() {
        Some(it) => Bind::Int(it),
        None => Bind::Real(n.as_f64().unwrap_or(f64::NAN)),
    }
}

fn json_path(path: &Path) -> String {
    format!("$.{path}")
}

/// Joins as a balanced tree, so long `$in` lists stay far below SQLite's expression depth limit of 1000.
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
mod tests {
    use serde_json::json;

    use super::*;

    fn sql(q: serde_json::Value) -> Sql {
        compile(&Filter::parse(&q).unwrap(), "doc")
    }

    #[test]
    fn empty_filter_is_true() {
        assert_eq!(sql(json!({})), Sql { where_clause: "1".to_owned(), binds: vec![] });
    }

    #[test]
    fn string_equality() {
        let res = sql(json!({"username": "john"}));
        assert_eq!(
            res.where_clause,
            "((json_type(doc, '$.username') IS 'text' AND (doc ->> '$.username') = ?) OR \
             (json_type(doc, '$.username') IS 'array' AND EXISTS (SELECT 1 FROM jsonb_each(doc, '$.username') AS j1 \
             WHERE (j1.type IS 'text' AND j1.value = ?))))"
        );
        assert_eq!(res.binds, [Bind::Text("john".into()), Bind::Text("john".into())]);
    }

    #[test]
    fn values_are_bound_never_spliced() {
        let evil = "x' OR 1=1 --";
        let res = sql(json!({"a": evil, "b": {"$regex": evil}, "c": {"$gt": evil}, "d": {"e": evil}}));
        assert!(!res.where_clause.contains("OR 1=1"), "{}", res.where_clause);
        assert_eq!(res.binds.iter().filter(|it| **it == Bind::Text(evil.into())).count(), 8);
    }

    #[test]
    fn numbers_bind_as_int_or_real() {
        assert_eq!(sql(json!({"n": {"$gt": 2}})).binds, [Bind::Int(2), Bind::Int(2)]);
        assert_eq!(sql(json!({"n": {"$lt": 2.5}})).binds, [Bind::Real(2.5), Bind::Real(2.5)]);
        assert_eq!(sql(json!({"n": {"$size": 3}})).binds, [Bind::Int(3)]);
    }

    #[test]
    fn empty_lists() {
        assert_eq!(sql(json!({"a": {"$in": []}})).where_clause, "0");
        assert_eq!(sql(json!({"a": {"$nin": []}})).where_clause, "(NOT 0)");
        assert_eq!(sql(json!({"a": {"$all": []}})).where_clause, "0");
    }

    #[test]
    fn long_in_lists_are_balanced() {
        let values: Vec<i64> = (0..512).collect();
        let res = sql(json!({"a": {"$in": values}}));
        let mut depth = 0usize;
        let mut max_depth = 0usize;
        for c in res.where_clause.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => (),
            }
            max_depth = max_depth.max(depth);
        }
        assert!(max_depth < 40, "{max_depth}");
        assert_eq!(res.binds.len(), 1024);
    }

    #[test]
    fn elem_match_paths_are_relative_to_the_element() {
        let res = sql(json!({"items": {"$elemMatch": {"ref.id": "X"}}}));
        assert!(res.where_clause.contains("jsonb_each(doc, '$.items') AS j1"), "{}", res.where_clause);
        let element = "(CASE WHEN j1.type IN ('object', 'array') THEN j1.value END)";
        assert!(res.where_clause.contains(&format!("json_type({element}, '$.ref.id')")), "{}", res.where_clause);
        assert!(!res.where_clause.contains("fullkey"), "{}", res.where_clause);
    }

    #[test]
    fn order_by_terms() {
        let sort = Sort::parse(&json!([{"sortBy": "title", "direction": "desc"}])).unwrap();
        let terms = order_by(&sort, "o.doc", &["o.id"]);
        assert!(terms.starts_with("CASE json_type(o.doc, '$.title') WHEN 'integer' THEN 1"), "{terms}");
        assert!(terms.ends_with("ELSE o.doc ->> '$.title' END DESC, o.id DESC"), "{terms}");
        assert_eq!(order_by(&Sort { keys: vec![] }, "doc", &[]), "");
        assert_eq!(order_by(&Sort { keys: vec![] }, "doc", &["created", "id"]), "created ASC, id ASC");
    }

    #[test]
    fn key_index_terms_are_the_order_by_expressions() {
        let sort = Sort::parse(&json!([{"sortBy": "n", "direction": "asc"}])).unwrap();
        let index = key_index_terms("n", "doc");
        let order = order_by(&sort, "doc", &[]);
        assert_eq!(order, index.split(", CASE").collect::<Vec<_>>().join(" ASC, CASE") + " ASC");
    }

    #[test]
    fn column_must_be_an_identifier() {
        let res = std::panic::catch_unwind(|| compile(&Filter { clauses: vec![] }, "doc; DROP TABLE x"));
        assert!(res.is_err());
    }
}
