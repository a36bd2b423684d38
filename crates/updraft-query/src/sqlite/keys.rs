//! Conditions that an index can serve: on a property with a key index (its type rank and value columns), and on
//! the reserved properties, which read the columns that mirror them.
//!
//! Each form selects exactly what the generic form selects (the property test runs both against the evaluator);
//! only its shape changes, so that SQLite sees `rank = 1 AND value >= ?` instead of a type test and a JSON lookup.
//! Every predicate stays 0 or 1, never NULL, so that `NOT` keeps two-valued logic: a comparison with a value that
//! may be NULL is joined with a test that is false then (`NULL AND 0` is 0).

use super::{Bind, Compiler, Layout, Pred, Target, join, literal_ref_id, number_bind, sql_op};
use crate::ast::{Clause, CmpOp, Direction, Filter, Literal, Op, Path, Pattern, Scalar, Sort, SortKey};

/// The latest time a document can spell in the fixed-width format, 9999-12-31T23:59:59.999Z.
const MAX_MS: i64 = 253_402_300_799_999;

/// A reserved property and the column (or indexed expression) holding it.
#[derive(Clone, Copy)]
enum Reserved {
    /// Always a string: the id.
    Text(&'static str),
    /// A string, or missing: the creator's id (absent from anonymous writes).
    OptionalText(&'static str),
    /// Always a time, spelled in the layout's fixed-width format; the column holds its milliseconds.
    Time(&'static str),
    /// The creator ref: absent, or an object whose `id` is the column.
    Creator(&'static str),
}

/// The indexed expression of the creator's id; `objects_by_creator` spells the same.
const CREATOR_ID: &str = "doc ->> '$.creator.id'";

fn reserved(path: &Path) -> Option<Reserved> {
    let segments: Vec<&str> = path.segments().iter().map(String::as_str).collect();
    Some(match segments.as_slice() {
        ["id"] => Reserved::Text("id"),
        ["createdAt"] => Reserved::Time("created_ms"),
        ["updatedAt"] => Reserved::Time("updated_ms"),
        ["creator", "id"] => Reserved::OptionalText(CREATOR_ID),
        ["creator"] => Reserved::Creator(CREATOR_ID),
        _ => return None,
    })
}

/// The column a sort on a reserved property orders by (in a store layout): the same order as the property's text.
pub fn ordering_column(path: &Path) -> Option<&'static str> {
    match reserved(path)? {
        Reserved::Text(column) | Reserved::Time(column) => Some(column),
        Reserved::OptionalText(_) | Reserved::Creator(_) => None,
    }
}

/// The type rank every row `filter` selects has in the top-level `path`, when a condition of its top level pins
/// it (and the property holds no arrays, whose rank differs from their elements').
pub(super) fn pinned_rank(filter: &Filter, path: &Path, layout: &Layout<'_>) -> Option<u8> {
    let [property] = path.segments() else { return None };
    if layout.indexed.iter().find(|it| it.property == *property)?.arrays {
        return None;
    }
    filter.clauses.iter().find_map(|clause| match clause {
        Clause::Field { path: at, ops } if at == path => ops.iter().find_map(op_rank),
        _ => None,
    })
}

/// Whether a condition of `filter`'s top level pins the top-level `path` to one value (an equality), so that
/// ordering by it is ordering by nothing.
pub(super) fn pinned_value(filter: &Filter, path: &Path, layout: &Layout<'_>) -> bool {
    let constant = |literal: &Literal| match literal {
        Literal::Object(fields) => literal_ref_id(fields).is_some(),
        literal => literal_rank(literal).is_some(),
    };
    pinned_rank(filter, path, layout).is_some()
        && filter.clauses.iter().any(|clause| match clause {
            Clause::Field { path: at, ops } if at == path => ops.iter().any(|op| match op {
                Op::Eq(literal) => constant(literal),
                Op::In(literals) => matches!(literals.as_slice(), [literal] if constant(literal)),
                _ => false,
            }),
            _ => false,
        })
}

fn op_rank(op: &Op) -> Option<u8> {
    match op {
        Op::Eq(literal) => literal_rank(literal),
        Op::In(literals) => {
            let first = literal_rank(literals.first()?)?;
            literals.iter().all(|it| literal_rank(it) == Some(first)).then_some(first)
        }
        Op::Cmp(_, Scalar::Number(_)) => Some(1),
        Op::Cmp(_, Scalar::String(_)) | Op::Regex(_) => Some(2),
        _ => None,
    }
}

fn literal_rank(literal: &Literal) -> Option<u8> {
    match literal {
        Literal::Null => Some(0),
        Literal::Number(_) => Some(1),
        Literal::String(_) => Some(2),
        Literal::Object(_) => Some(3),
        Literal::Bool(_) => Some(5),
        Literal::Array(_) => None,
    }
}

/// Whether an index range holds the rows `op` selects at `path` (one condition of `filter`'s top level).
pub(super) fn index_serves(path: &Path, op: &Op, filter: &Filter, layout: &Layout<'_>) -> bool {
    let prefix = |op: &Op| matches!(op, Op::Regex(pattern) if literal_prefix(pattern.source()).is_some());
    match reserved(path) {
        Some(_) if layout.reserved.is_none() => false,
        Some(Reserved::Text(_) | Reserved::Time(_)) => {
            matches!(op, Op::Eq(Literal::String(_)) | Op::In(_) | Op::Cmp(..)) || prefix(op)
        }
        Some(Reserved::OptionalText(_)) => matches!(op, Op::Eq(Literal::String(_)) | Op::In(_)),
        Some(Reserved::Creator(_)) => matches!(op, Op::Eq(Literal::Object(fields)) if literal_ref_id(fields).is_some()),
        None => {
            pinned_rank(filter, path, layout).is_some()
                && (matches!(op, Op::Eq(_) | Op::In(_) | Op::Cmp(..)) || prefix(op))
                && op_rank(op).is_some()
        }
    }
}

/// Whether an index serving a condition of `filter`'s top level yields its rows in creation order: an equality on
/// an indexed property (whose key index ends in the creation time) or on `creator.id`.
pub fn creation_ordered(filter: &Filter, layout: &Layout<'_>) -> bool {
    filter.clauses.iter().any(|clause| match clause {
        Clause::Field { path, ops } => match reserved(path) {
            Some(Reserved::OptionalText(_)) => {
                layout.reserved.is_some() && ops.iter().any(|op| matches!(op, Op::Eq(Literal::String(_))))
            }
            Some(_) => false,
            None => pinned_value(filter, path, layout),
        },
        _ => false,
    })
}

/// The order of a list that asks for none: that of the index serving its first top-level condition an index
/// can serve (as MongoDB, which Enginio ran on, returned them), so that a page of a large match is its first
/// rows rather than a sort of all of them. None: creation order.
pub fn index_order(filter: &Filter, layout: &Layout<'_>) -> Option<Sort> {
    let path = filter.clauses.iter().find_map(|clause| {
        let Clause::Field { path, ops } = clause else { return None };
        let served = match reserved(path) {
            Some(Reserved::Text(_) | Reserved::Time(_)) if layout.reserved.is_some() => {
                ops.iter().any(|op| matches!(op, Op::Eq(_) | Op::In(_) | Op::Cmp(..) | Op::Regex(_)))
            }
            Some(_) => false,
            None => pinned_rank(filter, path, layout).is_some(),
        };
        served.then_some(path)
    })?;
    Some(Sort { keys: vec![SortKey { path: path.clone(), direction: Direction::Asc }] })
}

/// The literal text every match of `pattern` starts with, as a range `[low, high)` of strings (no `high` when
/// nothing bounds it above), or None when the pattern is not anchored to a literal prefix.
///
/// Conservative: flags, alternation or anything unusual gives None, and the range only narrows what the
/// pattern itself then checks.
pub fn literal_prefix(pattern: &str) -> Option<(String, Option<String>)> {
    let rest = pattern.strip_prefix('^')?;
    // `a|b` is `(^a)|(b)`; inline flags (`(?i)`) come first in the source, so the `^` test above already
    // refused them at the start, and a group below ends the prefix.
    if pattern.contains('|') {
        return None;
    }
    let mut prefix: Vec<char> = Vec::new();
    let mut chars = rest.chars().peekable();
    while let Some(&c) = chars.peek() {
        let literal = match c {
            '\\' => {
                chars.next();
                match chars.peek() {
                    Some(&escaped) if escaped.is_ascii_punctuation() => escaped,
                    // `\d`, `\w`, `\b`...: a class or an assertion, not a character.
                    _ => return finish(prefix, false),
                }
            }
            '.' | '*' | '+' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '^' | '$' => break,
            c if c.is_whitespace() && c != ' ' => break,
            c => c,
        };
        chars.next();
        prefix.push(literal);
    }
    // A quantifier after the last character may repeat it zero times: it is not part of the prefix.
    let optional = matches!(chars.peek(), Some('*' | '?' | '{'));
    finish(prefix, optional)
}

fn finish(mut prefix: Vec<char>, drop_last: bool) -> Option<(String, Option<String>)> {
    if drop_last {
        prefix.pop();
    }
    if prefix.is_empty() {
        return None;
    }
    let low: String = prefix.iter().collect();
    // The least string above every string starting with `low`: its last character that can grow, grown.
    // SQLite compares text as UTF-8 bytes, which is code point order.
    let mut high = prefix;
    let high = loop {
        let Some(last) = high.pop() else { break None };
        if let Some(next) = next_char(last) {
            high.push(next);
            break Some(high.into_iter().collect());
        }
    };
    Some((low, high))
}

fn next_char(c: char) -> Option<char> {
    match c as u32 + 1 {
        0xD800 => Some('\u{E000}'),
        next => char::from_u32(next),
    }
}

impl Compiler<'_> {
    /// The condition on a reserved property as its column, when the layout has them and the op reads them.
    pub(super) fn reserved_field(&mut self, path: &Path, ops: &[Op], target: &Target) -> Option<String> {
        let format_ms = self.layout.reserved?;
        let column = reserved(path)?;
        Some(self.reserved_ops(ops, column, format_ms, target))
    }

    fn reserved_ops(&mut self, ops: &[Op], column: Reserved, format_ms: fn(i64) -> String, target: &Target) -> String {
        let parts = ops.iter().map(|op| self.reserved_op(op, column, format_ms, target)).collect();
        join(parts, "AND", "1")
    }

    fn reserved_op(&mut self, op: &Op, column: Reserved, format_ms: fn(i64) -> String, target: &Target) -> String {
        if let Op::Not(ops) = op {
            return format!("(NOT {})", self.reserved_ops(ops, column, format_ms, target));
        }
        if let Op::All(literals) = op {
            if literals.is_empty() {
                return "0".to_owned();
            }
            let parts = literals.iter().map(|it| self.reserved_op(&Op::Eq(it.clone()), column, format_ms, target));
            return join(parts.collect(), "AND", "0");
        }
        match column {
            Reserved::Text(column) => self.text_op(op, column, false).unwrap_or_else(|| self.op(op, target)),
            Reserved::OptionalText(column) => self.text_op(op, column, true).unwrap_or_else(|| self.op(op, target)),
            Reserved::Time(column) => self.time_op(op, column, format_ms).unwrap_or_else(|| self.op(op, target)),
            Reserved::Creator(id) => match op {
                Op::Eq(Literal::Null) | Op::Exists(false) => format!("({id} IS NULL)"),
                Op::Exists(true) => format!("({id} IS NOT NULL)"),
                Op::Eq(Literal::Object(fields)) => {
                    let mut parts = vec![format!("({id} IS NOT NULL)")];
                    for (key, value) in fields {
                        let part = match key.as_str() {
                            "id" => self.text_op(&Op::Eq(value.clone()), id, true),
                            _ => None,
                        };
                        let part =
                            part.unwrap_or_else(|| self.strict_eq(value, &target.child(&format!(".{}", key.as_str()))));
                        parts.push(part);
                    }
                    join(parts, "AND", "1")
                }
                _ => self.op(op, target),
            },
        }
    }

    /// An op on a text column (`optional`: or NULL, for a missing property); None for ops read from the document.
    fn text_op(&mut self, op: &Op, column: &str, optional: bool) -> Option<String> {
        // A comparison with NULL is NULL; joined with this it is 0.
        let present = if optional { format!(" AND {column} IS NOT NULL") } else { String::new() };
        Some(match op {
            Op::Eq(Literal::String(s)) => {
                self.binds.push(Bind::Text(s.clone()));
                format!("({column} = ?{present})")
            }
            Op::Eq(Literal::Null) if optional => format!("({column} IS NULL)"),
            Op::Eq(_) => "0".to_owned(),
            Op::In(literals) => {
                let mut parts = Vec::new();
                let strings = string_binds(literals);
                if !strings.is_empty() {
                    parts.push(format!("({column} IN ({}){present})", marks(strings.len())));
                    self.binds.extend(strings);
                }
                if optional && literals.contains(&Literal::Null) {
                    parts.push(format!("({column} IS NULL)"));
                }
                join(parts, "OR", "0")
            }
            Op::Cmp(op, Scalar::String(s)) => {
                self.binds.push(Bind::Text(s.clone()));
                format!("({column} {} ?{present})", sql_op(*op))
            }
            Op::Cmp(_, Scalar::Number(_)) => "0".to_owned(),
            Op::Exists(exists) if optional => format!("({column} IS {}NULL)", if *exists { "NOT " } else { "" }),
            Op::Exists(exists) => if *exists { "1" } else { "0" }.to_owned(),
            Op::Regex(pattern) => {
                let mut parts = Vec::new();
                if self.prefix_range(pattern, column, &mut parts) {
                    if optional {
                        parts.push(format!("{column} IS NOT NULL"));
                    }
                } else {
                    self.binds.push(Bind::Text(pattern.source().to_owned()));
                    parts.push(format!("{column} REGEXP ?{present}"));
                }
                format!("({})", parts.join(" AND "))
            }
            Op::Size(_) | Op::ElemMatch(_) => "0".to_owned(),
            Op::All(_) | Op::Not(_) => return None,
        })
    }

    /// An op on a time column, whose document text is `format_ms(column)`; None for ops read from the document.
    fn time_op(&mut self, op: &Op, column: &str, format_ms: fn(i64) -> String) -> Option<String> {
        // The first time whose text passes `test`: texts grow with times, so the passing times are a suffix.
        let first = |test: &dyn Fn(&str) -> bool| -> Option<i64> {
            if !test(&format_ms(MAX_MS)) {
                return None;
            }
            let (mut low, mut high) = (0, MAX_MS);
            while low < high {
                let mid = low + (high - low) / 2;
                if test(&format_ms(mid)) {
                    high = mid;
                } else {
                    low = mid + 1;
                }
            }
            Some(low)
        };
        let exact = |s: &str| first(&|text| text >= s).filter(|ms| format_ms(*ms) == s);
        Some(match op {
            Op::Eq(Literal::String(s)) => match exact(s) {
                Some(ms) => {
                    self.binds.push(Bind::Int(ms));
                    format!("({column} = ?)")
                }
                None => "0".to_owned(),
            },
            Op::Eq(_) => "0".to_owned(),
            Op::In(literals) => {
                let times: Vec<Bind> = literals
                    .iter()
                    .filter_map(|it| match it {
                        Literal::String(s) => exact(s).map(Bind::Int),
                        _ => None,
                    })
                    .collect();
                if times.is_empty() {
                    return Some("0".to_owned());
                }
                let sql = format!("({column} IN ({}))", marks(times.len()));
                self.binds.extend(times);
                sql
            }
            Op::Cmp(op, Scalar::String(s)) => {
                let s = s.as_str();
                let (bound, above) = match op {
                    CmpOp::Gte => (first(&|text| text >= s), true),
                    CmpOp::Gt => (first(&|text| text > s), true),
                    CmpOp::Lt => (first(&|text| text >= s), false),
                    CmpOp::Lte => (first(&|text| text > s), false),
                };
                match (bound, above) {
                    (Some(ms), true) => {
                        self.binds.push(Bind::Int(ms));
                        format!("({column} >= ?)")
                    }
                    (Some(ms), false) => {
                        self.binds.push(Bind::Int(ms));
                        format!("({column} < ?)")
                    }
                    (None, true) => "0".to_owned(),
                    (None, false) => "1".to_owned(),
                }
            }
            Op::Cmp(_, Scalar::Number(_)) => "0".to_owned(),
            Op::Exists(exists) => if *exists { "1" } else { "0" }.to_owned(),
            Op::Size(_) | Op::ElemMatch(_) => "0".to_owned(),
            Op::Regex(_) | Op::All(_) | Op::Not(_) => return None,
        })
    }

    /// Conditions on a top-level property with a key index (`key` is its rank and value); `arrays` tells whether
    /// any row may hold an array there, which alone needs the element half of MongoDB's array rule.
    pub(super) fn key_ops(&mut self, ops: &[Op], key: &[String; 2], arrays: bool, target: &Target) -> String {
        let parts = ops.iter().map(|op| self.key_op(op, key, arrays, target)).collect();
        join(parts, "AND", "1")
    }

    fn key_op(&mut self, op: &Op, key: &[String; 2], arrays: bool, target: &Target) -> String {
        let [rank, value] = key;
        match op {
            Op::Eq(literal) => self.key_in(std::slice::from_ref(literal), key, arrays, target),
            Op::In(literals) => self.key_in(literals, key, arrays, target),
            Op::All(literals) => {
                let parts =
                    literals.iter().map(|it| self.key_in(std::slice::from_ref(it), key, arrays, target)).collect();
                join(parts, "AND", "0")
            }
            Op::Cmp(op, scalar) => {
                let (n, bind) = match scalar {
                    Scalar::Number(n) => (1, number_bind(n)),
                    Scalar::String(s) => (2, Bind::Text(s.clone())),
                };
                self.binds.push(bind);
                let itself = format!("({rank} = {n} AND {value} {} ?)", sql_op(*op));
                self.or_elements(itself, rank, arrays, target, &|c, t| c.compare(*op, scalar, t))
            }
            // Rank 0 is a missing value or `null`.
            Op::Exists(true) => format!("({rank} > 0 OR ({rank} = 0 AND {} IS 'null'))", self.ty(target)),
            Op::Exists(false) => format!("({rank} = 0 AND {} IS NULL)", self.ty(target)),
            Op::Regex(pattern) => {
                let mut parts = vec![format!("{rank} = 2")];
                if !self.prefix_range(pattern, value, &mut parts) {
                    self.binds.push(Bind::Text(pattern.source().to_owned()));
                    parts.push(format!("{value} REGEXP ?"));
                }
                let itself = format!("({})", parts.join(" AND "));
                self.or_elements(itself, rank, arrays, target, &|c, t| c.regex(pattern, t))
            }
            // Only an array matches these.
            Op::Size(_) | Op::ElemMatch(_) if !arrays => "0".to_owned(),
            Op::Size(_) | Op::ElemMatch(_) => format!("({rank} = 4 AND {})", self.op(op, target)),
            // `{"$ne": null}`: any rank but 0, a range of the index.
            Op::Not(ops) if !arrays && matches!(ops.as_slice(), [Op::Eq(Literal::Null)]) => format!("({rank} > 0)"),
            Op::Not(ops) => format!("(NOT {})", self.key_ops(ops, key, arrays, target)),
        }
    }

    /// Some literal matches (`Eq`, `$in`): scalars of a type as one `IN` list each, objects by their id.
    fn key_in(&mut self, literals: &[Literal], key: &[String; 2], arrays: bool, target: &Target) -> String {
        let [rank, value] = key;
        let mut parts = Vec::new();
        if literals.contains(&Literal::Null) {
            parts.push(format!("({rank} = 0)"));
        }
        let numbers: Vec<Bind> = literals
            .iter()
            .filter_map(|it| match it {
                Literal::Number(n) => Some(number_bind(n)),
                _ => None,
            })
            .collect();
        for (n, binds) in [(1, numbers), (2, string_binds(literals))] {
            if !binds.is_empty() {
                parts.push(format!("({rank} = {n} AND {value} IN ({}))", marks(binds.len())));
                self.binds.extend(binds);
            }
        }
        let booleans: Vec<&str> = literals
            .iter()
            .filter_map(|it| match it {
                Literal::Bool(true) => Some("1"),
                Literal::Bool(false) => Some("0"),
                _ => None,
            })
            .collect();
        if !booleans.is_empty() {
            parts.push(format!("({rank} = 5 AND {value} IN ({}))", booleans.join(", ")));
        }
        for literal in literals {
            if let Literal::Object(fields) = literal {
                let mut object = vec![format!("{rank} = 3")];
                let id = literal_ref_id(fields);
                if let Some(id) = id {
                    self.binds.push(Bind::Text(id.to_owned()));
                    object.push(format!("{value} = ?"));
                }
                // The rank says the value is an object, and the value that its `id` is that text: only the other
                // fields are looked up in the document (a ref's `objectType`).
                for (key, field) in fields {
                    if !(id.is_some() && key.as_str() == "id") {
                        object.push(self.strict_eq(field, &target.child(&format!(".{}", key.as_str()))));
                    }
                }
                parts.push(format!("({})", object.join(" AND ")));
            }
        }
        if arrays {
            // The value is an array equal to an array literal, or with an element equal to a literal.
            let mut elements = Vec::new();
            for literal in literals.iter().filter(|it| matches!(it, Literal::Array(_))) {
                elements.push(self.strict_eq(literal, target));
            }
            elements.push(self.each(target, &|c, t| {
                let parts = literals.iter().map(|it| c.strict_eq(it, t)).collect();
                join(parts, "OR", "0")
            }));
            parts.push(format!("({rank} = 4 AND {})", join(elements, "OR", "0")));
        }
        join(parts, "OR", "0")
    }

    /// `itself`, or, when the property may hold arrays, an array with an element satisfying `pred`.
    fn or_elements(&mut self, itself: String, rank: &str, arrays: bool, target: &Target, pred: Pred<'_>) -> String {
        if !arrays {
            return itself;
        }
        let any = self.each(target, pred);
        format!("({itself} OR ({rank} = 4 AND {any}))")
    }

    /// Narrows `value` to the strings starting with the pattern's literal prefix, if it has one; true when the
    /// pattern is that prefix alone, so that the range is the whole condition (no regex to run on each row).
    fn prefix_range(&mut self, pattern: &Pattern, value: &str, parts: &mut Vec<String>) -> bool {
        let Some((low, high)) = literal_prefix(pattern.source()) else { return false };
        self.binds.push(Bind::Text(low));
        parts.push(format!("{value} >= ?"));
        if let Some(high) = high {
            self.binds.push(Bind::Text(high));
            parts.push(format!("{value} < ?"));
        }
        pattern.whole_prefix().is_some()
    }
}

/// The string literals among `literals`, as binds.
fn string_binds(literals: &[Literal]) -> Vec<Bind> {
    literals
        .iter()
        .filter_map(|it| match it {
            Literal::String(s) => Some(Bind::Text(s.clone())),
            _ => None,
        })
        .collect()
}

fn marks(n: usize) -> String {
    vec!["?"; n].join(", ")
}

#[cfg(test)]
mod tests {
    use super::literal_prefix;

    fn prefix(pattern: &str) -> Option<(String, Option<String>)> {
        literal_prefix(pattern)
    }

    #[test]
    fn anchored_literals_give_a_range() {
        assert_eq!(prefix("^abc"), Some(("abc".into(), Some("abd".into()))));
        assert_eq!(prefix("^item 12"), Some(("item 12".into(), Some("item 13".into()))));
        assert_eq!(prefix("^a\\.b.*"), Some(("a.b".into(), Some("a.c".into()))));
        assert_eq!(prefix("^é"), Some(("é".into(), Some("ê".into()))));
        assert_eq!(prefix("^ab+c"), Some(("ab".into(), Some("ac".into()))));
        assert_eq!(prefix("^a\u{10FFFF}"), Some(("a\u{10FFFF}".into(), Some("b".into()))));
        assert_eq!(prefix("^\u{10FFFF}"), Some(("\u{10FFFF}".into(), None)));
        assert_eq!(prefix("^\u{D7FF}"), Some(("\u{D7FF}".into(), Some("\u{E000}".into()))));
    }

    #[test]
    fn a_pattern_of_literals_alone_is_its_range() {
        for (whole, literal) in [("^abc", "abc"), ("^item 12", "item 12"), ("^a\\.b", "a.b"), ("^é", "é")] {
            let pattern = crate::ast::Pattern::new(whole.to_owned()).unwrap();
            assert_eq!(pattern.whole_prefix(), Some(literal), "{whole}");
            // Matched without a regex, it matches what the regex does.
            let regex = regex::Regex::new(whole).unwrap();
            for text in [literal, &format!("{literal}\nx"), &format!("x{literal}"), "", "a", "item 1", "a\\.b", "É"] {
                assert_eq!(pattern.is_match(text), regex.is_match(text), "{whole} on {text:?}");
            }
        }
        for partial in ["^", "abc", "^abc$", "^ab*", "^a.b", "^a\\d", "^a|b", "(?i)^a", "^a\tb"] {
            assert_eq!(crate::ast::Pattern::new(partial.to_owned()).unwrap().whole_prefix(), None, "{partial}");
        }
    }

    #[test]
    fn optional_or_unanchored_parts_are_not_a_prefix() {
        assert_eq!(prefix("abc"), None);
        assert_eq!(prefix("(?i)^abc"), None);
        assert_eq!(prefix("^abc|x"), None);
        assert_eq!(prefix("^a?"), None);
        assert_eq!(prefix("^ab*"), Some(("a".into(), Some("b".into()))));
        assert_eq!(prefix("^ab{0,2}"), Some(("a".into(), Some("b".into()))));
        assert_eq!(prefix("^\\d"), None);
        assert_eq!(prefix("^ab\\d"), Some(("ab".into(), Some("ac".into()))));
        assert_eq!(prefix("^[ab]"), None);
        assert_eq!(prefix("^"), None);
    }
}
