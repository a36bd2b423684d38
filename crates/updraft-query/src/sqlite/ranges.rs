//! What the store's tallies of key indexes need from the compiler: whether a filter selects one contiguous range
//! of one key index, and the key terms of a property named at run time (for the triggers that keep the tallies).

use super::{Bind, Layout, key_terms, key_terms_at, keys, number_bind, property_path};
use crate::ast::{Clause, CmpOp, Filter, Literal, Op, Path, Scalar};

/// A filter that selects one contiguous range of one key index, within one type rank: every condition is an
/// equality to a number, a string or a boolean, or a comparison, all on one property that holds no arrays. Such a
/// range holds every entry between two of its members, so a bucket of the index whose two ends satisfy the filter
/// lies inside it.
#[derive(Debug)]
pub struct OneRange<'f> {
    pub property: &'f str,
    /// The range's lowest value is the greatest of these (SQL `max`), when there are any; as are the highest and
    /// the least of `upper`. The bounds may include values the filter excludes (`$gt`): a test of the filter itself
    /// must follow.
    pub lower: Vec<Bind>,
    pub upper: Vec<Bind>,
    /// Whether the highest value may itself be outside the range (`$lt`).
    pub upper_exclusive: bool,
}

impl<'f> OneRange<'f> {
    /// The whole index of `property`: no bound.
    pub fn whole(property: &'f str) -> OneRange<'f> {
        OneRange { property, lower: Vec::new(), upper: Vec::new(), upper_exclusive: false }
    }
}

/// The range of [`OneRange`] that `filter` selects, if it is one.
pub fn one_range<'f>(filter: &'f Filter, layout: &Layout<'_>) -> Option<OneRange<'f>> {
    let mut range: Option<(OneRange<'f>, &Path)> = None;
    for clause in &filter.clauses {
        let Clause::Field { path, ops } = clause else { return None };
        let [name] = path.segments() else { return None };
        let (range, _) = range.get_or_insert_with(|| (OneRange::whole(name), path));
        if range.property != name || ops.is_empty() {
            return None;
        }
        for op in ops {
            let (bind, lower, upper) = match op {
                Op::Eq(Literal::Number(n)) => (number_bind(n), true, true),
                Op::Eq(Literal::String(s)) => (Bind::Text(s.clone()), true, true),
                Op::Eq(Literal::Bool(b)) => (Bind::Int(i64::from(*b)), true, true),
                Op::Cmp(op, scalar) => {
                    let bind = match scalar {
                        Scalar::Number(n) => number_bind(n),
                        Scalar::String(s) => Bind::Text(s.clone()),
                    };
                    let below = matches!(op, CmpOp::Lt | CmpOp::Lte);
                    range.upper_exclusive |= matches!(op, CmpOp::Lt);
                    (bind, !below, below)
                }
                _ => return None,
            };
            if lower {
                range.lower.push(bind.clone());
            }
            if upper {
                range.upper.push(bind);
            }
        }
    }
    let (range, path) = range?;
    // Ranks 1, 2 and 5 (numbers, strings, booleans) never hold a NULL value, which a bound could not compare.
    matches!(keys::pinned_rank(filter, path, layout), Some(1 | 2 | 5)).then_some(range)
}

/// The two columns of [`super::key_index_terms`], apart: the type rank and the comparable value.
pub fn key_index_columns(property: &str, column: &str) -> [String; 2] {
    key_terms(&property_path(property), column)
}

/// The type rank and comparable value of [`super::key_index_terms`] for a property whose name the SQL expression
/// `property` yields (such as `p.property`), over the JSON `column`. The same expressions with the path built at
/// run time; a test checks that both agree on every kind of value.
pub fn key_terms_named(property: &str, column: &str) -> [String; 2] {
    key_terms_at(&format!("('$.' || {property})"), &format!("('$.' || {property} || '.id')"), column)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::sqlite::{Indexed, key_index_terms};

    fn filter(value: serde_json::Value) -> Filter {
        Filter::parse(&value).unwrap()
    }

    #[test]
    fn a_range_equality_or_both_bounds_on_one_property_is_one_range() {
        let indexed = [
            Indexed { property: "n".into(), arrays: false },
            Indexed { property: "tags".into(), arrays: true },
            Indexed { property: "k".into(), arrays: false },
        ];
        let layout = Layout { doc: "doc", reserved: None, indexed: &indexed };
        for (q, expected) in [
            (json!({"n": 5}), Some("n")),
            (json!({"n": "five"}), Some("n")),
            (json!({"n": true}), Some("n")),
            (json!({"n": {"$gte": 5, "$lt": 9}}), Some("n")),
            (json!({"n": {"$gt": "a"}}), Some("n")),
            (json!({"$and": [{"n": {"$gte": 5}}]}), None),
            (json!({"n": {"$gte": 5}, "k": 1}), None),
            (json!({"n": {"$in": [1, 2]}}), None),
            (json!({"n": {"$ne": 1}}), None),
            (json!({"n": null}), None),
            (json!({"n": {"id": "x", "objectType": "users"}}), None),
            (json!({"n": {"$exists": true}}), None),
            (json!({"tags": "a"}), None),
            (json!({"note": 1}), None),
            (json!({"n.m": 1}), None),
            (json!({}), None),
        ] {
            assert_eq!(one_range(&filter(q.clone()), &layout).map(|it| it.property), expected, "{q}");
        }
    }

    #[test]
    fn a_range_has_the_bounds_its_conditions_give() {
        let indexed = [Indexed { property: "n".into(), arrays: false }];
        let layout = Layout { doc: "doc", reserved: None, indexed: &indexed };
        let q = filter(json!({"n": {"$gt": 1, "$gte": 2.5, "$lte": 9}}));
        let range = one_range(&q, &layout).unwrap();
        assert_eq!(
            (range.lower, range.upper, range.upper_exclusive),
            (vec![Bind::Int(1), Bind::Real(2.5)], vec![Bind::Int(9)], false)
        );
        let q = filter(json!({"n": {"$lt": "m"}}));
        let range = one_range(&q, &layout).unwrap();
        assert_eq!((range.lower, range.upper, range.upper_exclusive), (vec![], vec![Bind::Text("m".into())], true));
        let q = filter(json!({"n": true}));
        let range = one_range(&q, &layout).unwrap();
        assert_eq!((range.lower, range.upper), (vec![Bind::Int(1)], vec![Bind::Int(1)]));
    }

    #[test]
    fn named_key_terms_agree_with_the_index_terms_on_every_kind_of_value() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let [rank, value] = key_terms_named("p.property", "d.doc");
        let sql = format!(
            "SELECT {}, {rank}, {value} FROM (SELECT jsonb(?) AS doc) AS d, (SELECT 'x' AS property) AS p",
            key_index_terms("x", "doc").replace("doc", "d.doc")
        );
        for doc in [
            json!({}),
            json!({"x": null}),
            json!({"x": 1}),
            json!({"x": -2.5}),
            json!({"x": "text"}),
            json!({"x": true}),
            json!({"x": false}),
            json!({"x": [1, 2]}),
            json!({"x": {"id": "u1", "objectType": "users"}}),
            json!({"x": {"id": 7}}),
            json!({"x": {}}),
        ] {
            let row: [rusqlite::types::Value; 4] = conn
                .query_row(&sql, [doc.to_string()], |row| Ok([row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?]))
                .unwrap();
            assert_eq!((&row[0], &row[1]), (&row[2], &row[3]), "{doc}");
        }
    }
}
