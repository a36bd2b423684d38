//! Conditions that an index can serve: on a property with a key index (spelled on its terms: type rank,
//! `float8`, `numeric`, text) and on the reserved properties, which read the columns that mirror them.
//!
//! Each form selects exactly what the generic form selects (the property test runs both against the evaluator);
//! only its shape changes, so that PostgreSQL sees `rank = 1 AND f8 >= $1` instead of a type test and a JSON
//! lookup. Every predicate stays TRUE or FALSE: a comparison with a term that may be NULL is joined with a test
//! that is FALSE then (`NULL AND FALSE` is FALSE).

use super::{Bind, Compiler, Pred, join, literal_ref_id};
use crate::ast::{CmpOp, Literal, Op, Path, Pattern, Scalar};
use crate::sqlite::literal_prefix;

/// The latest time a document can spell in the fixed-width format, 9999-12-31T23:59:59.999Z.
const MAX_MS: i64 = 253_402_300_799_999;

/// A reserved property and the column (or indexed expression) holding it.
#[derive(Clone, Copy)]
enum Reserved {
    /// Always a string: the id.
    Text,
    /// A string, or missing: the creator's id (absent from anonymous writes).
    OptionalText,
    /// Always a time, spelled in the layout's fixed-width format; the column holds its milliseconds.
    Time(&'static str),
    /// The creator ref: absent, or an object whose `id` is the creator id.
    Creator,
}

fn reserved(path: &Path) -> Option<Reserved> {
    let segments: Vec<&str> = path.segments().iter().map(String::as_str).collect();
    Some(match segments.as_slice() {
        ["id"] => Reserved::Text,
        ["createdAt"] => Reserved::Time("created_ms"),
        ["updatedAt"] => Reserved::Time("updated_ms"),
        ["creator", "id"] => Reserved::OptionalText,
        ["creator"] => Reserved::Creator,
        _ => return None,
    })
}

/// The column a sort on a reserved property orders by (in a store layout): the same order as the property's text.
pub(super) fn ordering_column(path: &Path) -> Option<&'static str> {
    match reserved(path)? {
        Reserved::Text => Some("id COLLATE \"C\""),
        Reserved::Time(column) => Some(column),
        Reserved::OptionalText | Reserved::Creator => None,
    }
}

/// The key-index terms: rank, `float8`, `numeric`, text.
type Terms = [String; 4];

impl Compiler<'_> {
    /// The condition on a reserved property as its column, when the layout has them and the op reads them.
    pub(super) fn reserved_field(&mut self, path: &Path, ops: &[Op], x: &str) -> Option<String> {
        let format_ms = self.layout.reserved?;
        let column = reserved(path)?;
        let parts = ops.iter().map(|op| self.reserved_op(op, column, format_ms, x)).collect();
        Some(join(parts, "AND", "TRUE"))
    }

    fn reserved_op(&mut self, op: &Op, column: Reserved, format_ms: fn(i64) -> String, x: &str) -> String {
        if let Op::Not(ops) = op {
            let parts = ops.iter().map(|op| self.reserved_op(op, column, format_ms, x)).collect();
            return format!("(NOT {})", join(parts, "AND", "TRUE"));
        }
        if let Op::All(literals) = op {
            let parts = literals.iter().map(|it| self.reserved_op(&Op::Eq(it.clone()), column, format_ms, x));
            return join(parts.collect(), "AND", "FALSE");
        }
        // The indexed expression of the creator's id; the store's `objects_by_creator` spells the same.
        let creator_id = format!("({} -> 'creator' ->> 'id')", self.layout.doc);
        match column {
            Reserved::Text => self.text_op(op, "id", false).unwrap_or_else(|| self.op(op, x)),
            Reserved::OptionalText => self.text_op(op, &creator_id, true).unwrap_or_else(|| self.op(op, x)),
            Reserved::Time(column) => self.time_op(op, column, format_ms).unwrap_or_else(|| self.op(op, x)),
            Reserved::Creator => match op {
                Op::Eq(Literal::Null) | Op::Exists(false) => format!("({creator_id} IS NULL)"),
                Op::Exists(true) => format!("({creator_id} IS NOT NULL)"),
                Op::Eq(Literal::Object(fields)) => {
                    let mut parts = vec![format!("({creator_id} IS NOT NULL)")];
                    for (key, value) in fields {
                        let part = match key.as_str() {
                            "id" => self.text_op(&Op::Eq(value.clone()), &creator_id, true),
                            _ => None,
                        };
                        let part = part.unwrap_or_else(|| self.strict_eq(value, &super::child(x, key.as_str())));
                        parts.push(part);
                    }
                    join(parts, "AND", "TRUE")
                }
                _ => self.op(op, x),
            },
        }
    }

    /// An op on a text column (`optional`: or NULL, for a missing property); None for ops read from the document.
    /// Equality is spelled without a collation, so that an index in the default collation serves it (a database's
    /// default collation is deterministic: equal means byte-equal); an order compares `COLLATE "C"`.
    fn text_op(&mut self, op: &Op, column: &str, optional: bool) -> Option<String> {
        // A comparison with NULL is NULL; joined with this it is FALSE.
        let present = if optional { format!(" AND {column} IS NOT NULL") } else { String::new() };
        let ordered = format!("({column} COLLATE \"C\")");
        Some(match op {
            Op::Eq(Literal::String(s)) => match self.text(s) {
                Some(s) => format!("({column} = {s}{present})"),
                None => "FALSE".to_owned(),
            },
            Op::Eq(Literal::Null) if optional => format!("({column} IS NULL)"),
            Op::Eq(_) => "FALSE".to_owned(),
            Op::In(literals) => {
                let mut parts = Vec::new();
                let strings = self.strings(literals);
                if !strings.is_empty() {
                    parts.push(format!("({column} IN ({}){present})", strings.join(", ")));
                }
                if optional && literals.contains(&Literal::Null) {
                    parts.push(format!("({column} IS NULL)"));
                }
                join(parts, "OR", "FALSE")
            }
            Op::Cmp(op, Scalar::String(s)) => format!("({}{present})", self.text_cmp(*op, s, &ordered)),
            Op::Cmp(_, Scalar::Number(_)) => "FALSE".to_owned(),
            Op::Exists(exists) if optional => format!("({column} IS {}NULL)", if *exists { "NOT " } else { "" }),
            Op::Exists(exists) => if *exists { "TRUE" } else { "FALSE" }.to_owned(),
            Op::Regex(pattern) => {
                let mut parts = Vec::new();
                if !self.prefix_range(pattern, &ordered, &mut parts) {
                    parts.push(self.regex_on(pattern, &ordered));
                }
                if optional {
                    parts.push(format!("{column} IS NOT NULL"));
                }
                format!("({})", parts.join(" AND "))
            }
            Op::Size(_) | Op::ElemMatch(_) => "FALSE".to_owned(),
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
                Some(ms) => format!("({column} = {})", self.bind(Bind::Int(ms))),
                None => "FALSE".to_owned(),
            },
            Op::Eq(_) => "FALSE".to_owned(),
            Op::In(literals) => {
                let times: Vec<String> = literals
                    .iter()
                    .filter_map(|it| match it {
                        Literal::String(s) => exact(s),
                        _ => None,
                    })
                    .collect::<Vec<i64>>()
                    .into_iter()
                    .map(|ms| self.bind(Bind::Int(ms)))
                    .collect();
                if times.is_empty() {
                    return Some("FALSE".to_owned());
                }
                format!("({column} IN ({}))", times.join(", "))
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
                    (Some(ms), true) => format!("({column} >= {})", self.bind(Bind::Int(ms))),
                    (Some(ms), false) => format!("({column} < {})", self.bind(Bind::Int(ms))),
                    (None, true) => "FALSE".to_owned(),
                    (None, false) => "TRUE".to_owned(),
                }
            }
            Op::Cmp(_, Scalar::Number(_)) => "FALSE".to_owned(),
            Op::Exists(exists) => if *exists { "TRUE" } else { "FALSE" }.to_owned(),
            Op::Size(_) | Op::ElemMatch(_) => "FALSE".to_owned(),
            Op::Regex(_) | Op::All(_) | Op::Not(_) => return None,
        })
    }

    /// Conditions on a top-level property with a key index (`terms` are its key terms, `x` its value); `arrays`
    /// tells whether any row may hold an array there, which alone needs the element half of MongoDB's array rule.
    pub(super) fn key_ops(&mut self, ops: &[Op], terms: &Terms, arrays: bool, x: &str) -> String {
        let parts = ops.iter().map(|op| self.key_op(op, terms, arrays, x)).collect();
        join(parts, "AND", "TRUE")
    }

    fn key_op(&mut self, op: &Op, terms: &Terms, arrays: bool, x: &str) -> String {
        let [rank, f8, num, text] = terms;
        match op {
            Op::Eq(literal) => self.key_in(std::slice::from_ref(literal), terms, arrays, x),
            Op::In(literals) => self.key_in(literals, terms, arrays, x),
            Op::All(literals) => {
                let parts = literals.iter().map(|it| self.key_in(std::slice::from_ref(it), terms, arrays, x)).collect();
                join(parts, "AND", "FALSE")
            }
            Op::Cmp(op, scalar) => {
                let itself = match scalar {
                    Scalar::Number(n) => format!("({rank} = 1 AND {})", self.number_cmp(Some(*op), n, f8, num)),
                    Scalar::String(s) => format!("({rank} = 2 AND {})", self.text_cmp(*op, s, text)),
                };
                self.or_elements(itself, rank, arrays, x, &|c, x| c.compare(*op, scalar, x))
            }
            // Rank 0 is a missing value or `null`.
            Op::Exists(true) => format!("({rank} > 0 OR ({rank} = 0 AND {x} IS NOT NULL))"),
            Op::Exists(false) => format!("({rank} = 0 AND {x} IS NULL)"),
            Op::Regex(pattern) => {
                let mut parts = vec![format!("{rank} = 2")];
                if !self.prefix_range(pattern, text, &mut parts) {
                    parts.push(self.regex_on(pattern, text));
                }
                let itself = format!("({})", parts.join(" AND "));
                self.or_elements(itself, rank, arrays, x, &|c, x| c.regex(pattern, x))
            }
            // Only an array matches these.
            Op::Size(_) | Op::ElemMatch(_) if !arrays => "FALSE".to_owned(),
            Op::Size(_) | Op::ElemMatch(_) => format!("({rank} = 4 AND {})", self.op(op, x)),
            // `{"$ne": null}`: any rank but 0, a range of the index.
            Op::Not(ops) if !arrays && matches!(ops.as_slice(), [Op::Eq(Literal::Null)]) => format!("({rank} > 0)"),
            Op::Not(ops) => format!("(NOT {})", self.key_ops(ops, terms, arrays, x)),
        }
    }

    /// Some literal matches (`Eq`, `$in`): numbers, strings and booleans of a type as one `IN` list each (a large
    /// integer by itself), objects by their id.
    fn key_in(&mut self, literals: &[Literal], terms: &Terms, arrays: bool, x: &str) -> String {
        let [rank, f8, num, text] = terms;
        let mut parts = Vec::new();
        if literals.contains(&Literal::Null) {
            parts.push(format!("({rank} = 0)"));
        }
        let mut floats = Vec::new();
        for literal in literals {
            let Literal::Number(n) = literal else { continue };
            match n.as_i64() {
                Some(int) if int.unsigned_abs() >= 1 << 53 => {
                    parts.push(format!("({rank} = 1 AND {})", self.number_cmp(None, n, f8, num)));
                }
                _ => floats.push(self.bind(Bind::Real(n.as_f64().unwrap_or(f64::NAN)))),
            }
        }
        if !floats.is_empty() {
            parts.push(format!("({rank} = 1 AND {f8} IN ({}))", floats.join(", ")));
        }
        let strings = self.strings(literals);
        if !strings.is_empty() {
            parts.push(format!("({rank} = 2 AND {text} IN ({}))", strings.join(", ")));
        }
        let booleans: Vec<&str> = literals
            .iter()
            .filter_map(|it| match it {
                Literal::Bool(true) => Some("'true'"),
                Literal::Bool(false) => Some("'false'"),
                _ => None,
            })
            .collect();
        if !booleans.is_empty() {
            parts.push(format!("({rank} = 5 AND {text} IN ({}))", booleans.join(", ")));
        }
        for literal in literals {
            if let Literal::Object(fields) = literal {
                let mut object = vec![format!("{rank} = 3")];
                if let Some(id) = literal_ref_id(fields) {
                    object.push(match self.text(id) {
                        Some(id) => format!("{text} = {id}"),
                        None => "FALSE".to_owned(),
                    });
                }
                object.push(self.strict_eq(literal, x));
                parts.push(format!("({})", object.join(" AND ")));
            }
        }
        if arrays {
            // The value is an array equal to an array literal, or with an element equal to a literal.
            let mut elements = Vec::new();
            for literal in literals.iter().filter(|it| matches!(it, Literal::Array(_))) {
                elements.push(self.strict_eq(literal, x));
            }
            elements.push(self.each(x, &|c, elem| {
                let parts = literals.iter().map(|it| c.strict_eq(it, elem)).collect();
                join(parts, "OR", "FALSE")
            }));
            parts.push(format!("({rank} = 4 AND {})", join(elements, "OR", "FALSE")));
        }
        join(parts, "OR", "FALSE")
    }

    /// The string literals among `literals` as placeholders (those holding U+0000 equal no stored string).
    fn strings(&mut self, literals: &[Literal]) -> Vec<String> {
        literals
            .iter()
            .filter_map(|it| match it {
                Literal::String(s) => self.text(s),
                _ => None,
            })
            .collect()
    }

    /// `itself`, or, when the property may hold arrays, an array with an element satisfying `pred`.
    fn or_elements(&mut self, itself: String, rank: &str, arrays: bool, x: &str, pred: Pred<'_>) -> String {
        if !arrays {
            return itself;
        }
        let any = self.each(x, pred);
        format!("({itself} OR ({rank} = 4 AND {any}))")
    }

    /// Narrows `value` (text `COLLATE "C"`) to the strings starting with the pattern's literal prefix, if it has
    /// one; true when the pattern is that prefix alone, so that the range is the whole condition.
    fn prefix_range(&mut self, pattern: &Pattern, value: &str, parts: &mut Vec<String>) -> bool {
        let Some((low, high)) = literal_prefix(pattern.source()) else { return false };
        // No stored string holds U+0000; the regex itself then decides (it matches none of them).
        if low.contains('\0') {
            return false;
        }
        parts.push(format!("{value} >= {}", self.bind(Bind::Text(low))));
        if let Some(high) = high {
            parts.push(format!("{value} < {}", self.bind(Bind::Text(high))));
        }
        pattern.whole_prefix().is_some()
    }
}
