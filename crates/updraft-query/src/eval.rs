//! The in-memory evaluator: the reference semantics that every SQL compiler must agree with.

use std::cmp::Ordering;

use serde_json::{Number, Value};

use crate::ast::{Clause, CmpOp, Direction, ElemMatch, Filter, Literal, Op, Path, Scalar, Sort};

impl Filter {
    /// Whether `doc` (normally a JSON object) satisfies the filter.
    pub fn matches(&self, doc: &Value) -> bool {
        self.clauses.iter().all(|it| clause_matches(it, doc))
    }
}

impl Sort {
    /// Orders two documents by the sort keys.
    ///
    /// Within a key, values order by type first (missing and `null` < numbers < strings < objects < arrays <
    /// booleans), then numbers numerically, strings by code point and `false` before `true`. Objects order by
    /// their `id` when it is a string (a ref's target, so that an index on a ref property serves ref equality),
    /// after objects without one; arrays tie with each other. Callers wanting a total order add a tie-breaker
    /// such as the id.
    pub fn compare(&self, a: &Value, b: &Value) -> Ordering {
        for key in &self.keys {
            let ord = compare_values(lookup(a, &key.path), lookup(b, &key.path));
            let ord = match key.direction {
                Direction::Asc => ord,
                Direction::Desc => ord.reverse(),
            };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        Ordering::Equal
    }
}

/// The rank of a value's type in the sort order; `sqlite::order_by` spells out the same table.
pub(crate) fn type_rank(value: Option<&Value>) -> u8 {
    match value {
        None | Some(Value::Null) => 0,
        Some(Value::Number(_)) => 1,
        Some(Value::String(_)) => 2,
        Some(Value::Object(_)) => 3,
        Some(Value::Array(_)) => 4,
        Some(Value::Bool(_)) => 5,
    }
}

fn compare_values(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    let by_value = match (a, b) {
        (Some(Value::Number(a)), Some(Value::Number(b))) => compare_numbers(a, b),
        (Some(Value::String(a)), Some(Value::String(b))) => a.cmp(b),
        (Some(Value::Bool(a)), Some(Value::Bool(b))) => a.cmp(b),
        (Some(Value::Object(a)), Some(Value::Object(b))) => ref_id(a).cmp(&ref_id(b)),
        _ => Ordering::Equal,
    };
    type_rank(a).cmp(&type_rank(b)).then(by_value)
}

/// The `id` an object is ordered by; `sqlite::key_terms` spells out the same.
fn ref_id(object: &serde_json::Map<String, Value>) -> Option<&str> {
    object.get("id").and_then(Value::as_str)
}

fn clause_matches(clause: &Clause, doc: &Value) -> bool {
    match clause {
        Clause::Field { path, ops } => {
            let value = lookup(doc, path);
            ops.iter().all(|it| op_matches(it, value))
        }
        Clause::And(filters) => filters.iter().all(|it| it.matches(doc)),
        Clause::Or(filters) => filters.iter().any(|it| it.matches(doc)),
        Clause::Nor(filters) => !filters.iter().any(|it| it.matches(doc)),
    }
}

fn lookup<'a>(doc: &'a Value, path: &Path) -> Option<&'a Value> {
    path.segments().iter().try_fold(doc, |value, segment| value.as_object()?.get(segment))
}

/// `value` is `None` when the path leads nowhere.
fn op_matches(op: &Op, value: Option<&Value>) -> bool {
    match op {
        Op::Eq(literal) => eq(literal, value),
        Op::In(literals) => literals.iter().any(|it| eq(it, value)),
        Op::All(literals) => !literals.is_empty() && literals.iter().all(|it| eq(it, value)),
        Op::Cmp(op, scalar) => value.is_some_and(|v| self_or_any(v, |it| compare(*op, scalar, it))),
        Op::Exists(expected) => value.is_some() == *expected,
        Op::Regex(pattern) => {
            value.is_some_and(|v| self_or_any(v, |it| it.as_str().is_some_and(|s| pattern.is_match(s))))
        }
        Op::Size(n) => value.and_then(Value::as_array).is_some_and(|it| it.len() as u64 == *n),
        Op::ElemMatch(elem_match) => {
            let Some(items) = value.and_then(Value::as_array) else { return false };
            match elem_match {
                ElemMatch::Ops(ops) => items.iter().any(|item| ops.iter().all(|op| op_matches(op, Some(item)))),
                ElemMatch::Filter(filter) => items.iter().any(|item| item.is_object() && filter.matches(item)),
            }
        }
        Op::Not(ops) => !ops.iter().all(|it| op_matches(it, value)),
    }
}

/// Equality with MongoDB's array rule: a value matches if it, or one of its elements, equals the literal.
fn eq(literal: &Literal, value: Option<&Value>) -> bool {
    match (literal, value) {
        (Literal::Null, None) => true,
        (_, None) => false,
        (_, Some(value)) => self_or_any(value, |it| strict_eq(literal, it)),
    }
}

fn self_or_any(value: &Value, pred: impl Fn(&Value) -> bool) -> bool {
    pred(value) || value.as_array().is_some_and(|items| items.iter().any(pred))
}

fn strict_eq(literal: &Literal, value: &Value) -> bool {
    match (literal, value) {
        (Literal::Null, Value::Null) => true,
        (Literal::Bool(a), Value::Bool(b)) => a == b,
        (Literal::Number(a), Value::Number(b)) => compare_numbers(a, b) == Ordering::Equal,
        (Literal::String(a), Value::String(b)) => a == b,
        (Literal::Array(items), Value::Array(values)) => {
            items.len() == values.len() && items.iter().zip(values).all(|(l, v)| strict_eq(l, v))
        }
        (Literal::Object(fields), Value::Object(map)) => {
            fields.iter().all(|(key, l)| map.get(key.as_str()).is_some_and(|v| strict_eq(l, v)))
        }
        _ => false,
    }
}

fn compare(op: CmpOp, operand: &Scalar, value: &Value) -> bool {
    let ord = match (operand, value) {
        (Scalar::Number(operand), Value::Number(value)) => compare_numbers(value, operand),
        (Scalar::String(operand), Value::String(value)) => value.as_str().cmp(operand.as_str()),
        _ => return false,
    };
    match op {
        CmpOp::Gt => ord.is_gt(),
        CmpOp::Gte => ord.is_ge(),
        CmpOp::Lt => ord.is_lt(),
        CmpOp::Lte => ord.is_le(),
    }
}

/// Integers compare exactly, anything involving a float as `f64`, like SQLite.
fn compare_numbers(a: &Number, b: &Number) -> Ordering {
    if let (Some(a), Some(b)) = (a.as_i64(), b.as_i64()) {
        return a.cmp(&b);
    }
    let (a, b) = (a.as_f64().unwrap_or(f64::NAN), b.as_f64().unwrap_or(f64::NAN));
    // JSON has no NaN, so this never falls back.
    a.partial_cmp(&b).unwrap_or(Ordering::Equal)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[track_caller]
    fn check(q: Value, matching: &[Value], not_matching: &[Value]) {
        let filter = Filter::parse(&q).unwrap();
        for doc in matching {
            assert!(filter.matches(doc), "{q} should match {doc}");
        }
        for doc in not_matching {
            assert!(!filter.matches(doc), "{q} should not match {doc}");
        }
    }

    #[test]
    fn empty_filter_matches_everything() {
        check(json!({}), &[json!({}), json!({"a": 1})], &[]);
    }

    #[test]
    fn eq_scalar() {
        check(
            json!({"completed": true}),
            &[json!({"completed": true}), json!({"completed": [false, true]})],
            &[json!({"completed": false}), json!({"completed": 1}), json!({}), json!({"completed": "true"})],
        );
        check(
            json!({"n": 1}),
            &[json!({"n": 1}), json!({"n": 1.0}), json!({"n": [0, 1]})],
            &[json!({"n": "1"}), json!({"n": true}), json!({"n": [[1]]}), json!({"n": {"x": 1}})],
        );
        check(json!({"username": {"$eq": "john"}}), &[json!({"username": "john"})], &[json!({"username": "John"})]);
    }

    #[test]
    fn eq_null_matches_missing() {
        check(
            json!({"file": null}),
            &[json!({}), json!({"file": null}), json!({"file": [1, null]})],
            &[json!({"file": 0}), json!({"file": {}}), json!({"file": []})],
        );
    }

    #[test]
    fn ne_null_matches_present_non_null() {
        check(
            json!({"file": {"$ne": null}}),
            &[json!({"file": {"id": "f"}}), json!({"file": 0}), json!({"file": []})],
            &[json!({}), json!({"file": null}), json!({"file": [null]})],
        );
    }

    #[test]
    fn ne_scalar_with_arrays() {
        check(
            json!({"tags": {"$ne": "a"}}),
            &[json!({}), json!({"tags": "b"}), json!({"tags": ["b", "c"]})],
            &[json!({"tags": "a"}), json!({"tags": ["b", "a"]})],
        );
    }

    #[test]
    fn object_equality_is_a_subset_match() {
        let q = json!({"todoList": {"id": "X", "objectType": "objects.todoLists"}});
        check(
            q,
            &[
                json!({"todoList": {"id": "X", "objectType": "objects.todoLists"}}),
                json!({"todoList": {"objectType": "objects.todoLists", "id": "X", "extra": 1}}),
                json!({"todoList": [{"id": "Y", "objectType": "objects.todoLists"}, {"id": "X", "objectType": "objects.todoLists"}]}),
            ],
            &[
                json!({"todoList": {"id": "X"}}),
                json!({"todoList": {"id": "Y", "objectType": "objects.todoLists"}}),
                json!({"todoList": "X"}),
                json!({}),
            ],
        );
        check(
            json!({"a": {"b": null}}),
            &[json!({"a": {"b": null}})],
            &[json!({"a": {}}), json!({"a": {"b": [null]}})],
        );
    }

    #[test]
    fn array_literal_equality() {
        check(
            json!({"a": [1, "x"]}),
            &[json!({"a": [1, "x"]}), json!({"a": [[1, "x"], 2]})],
            &[json!({"a": ["x", 1]}), json!({"a": [1, "x", 2]}), json!({"a": 1})],
        );
    }

    #[test]
    fn dotted_paths_walk_objects_only() {
        check(
            json!({"track.id": "t"}),
            &[json!({"track": {"id": "t"}}), json!({"track": {"id": ["t"]}})],
            &[json!({"track": [{"id": "t"}]}), json!({"track.id": "t"}), json!({"track": "t"})],
        );
    }

    #[test]
    fn comparisons_stay_within_a_type() {
        check(
            json!({"n": {"$gt": 2}}),
            &[json!({"n": 3}), json!({"n": 2.5}), json!({"n": [1, 3]})],
            &[json!({"n": 2}), json!({"n": "3"}), json!({"n": true}), json!({}), json!({"n": null})],
        );
        check(json!({"n": {"$gte": 2, "$lt": 3}}), &[json!({"n": 2}), json!({"n": 2.9})], &[json!({"n": 3})]);
        check(json!({"n": {"$lte": -1}}), &[json!({"n": -1.0})], &[json!({"n": -0.5})]);
        check(
            json!({"s": {"$gt": "b"}}),
            &[json!({"s": "ba"}), json!({"s": "c"}), json!({"s": "é"})],
            &[json!({"s": "b"}), json!({"s": "B"}), json!({"s": 5})],
        );
    }

    #[test]
    fn in_and_nin() {
        check(
            json!({"count": {"$in": [0, 5, null]}}),
            &[json!({"count": 5}), json!({}), json!({"count": [9, 0]})],
            &[json!({"count": 1}), json!({"count": "5"})],
        );
        check(json!({"a": {"$in": []}}), &[], &[json!({}), json!({"a": 1})]);
        check(
            json!({"a": {"$nin": ["x", "y"]}}),
            &[json!({}), json!({"a": "z"}), json!({"a": ["z"]})],
            &[json!({"a": "x"}), json!({"a": ["z", "y"]})],
        );
    }

    #[test]
    fn exists() {
        check(json!({"a": {"$exists": true}}), &[json!({"a": null}), json!({"a": 0})], &[json!({}), json!({"b": 1})]);
        check(
            json!({"a.b": {"$exists": false}}),
            &[json!({"a": 1}), json!({"a": [{"b": 1}]})],
            &[json!({"a": {"b": 1}})],
        );
    }

    #[test]
    fn regex() {
        check(
            json!({"title": {"$regex": "^to", "$options": "i"}}),
            &[json!({"title": "Todo"}), json!({"title": ["x", "TOP"]})],
            &[json!({"title": "a todo"}), json!({"title": 10}), json!({})],
        );
        check(json!({"n": {"$regex": "1"}}), &[], &[json!({"n": 1}), json!({"n": [1]})]);
    }

    #[test]
    fn size() {
        check(
            json!({"a": {"$size": 2}}),
            &[json!({"a": [1, [2, 3]]})],
            &[json!({"a": [1]}), json!({"a": "ab"}), json!({})],
        );
        check(json!({"a": {"$size": 0}}), &[json!({"a": []})], &[json!({}), json!({"a": {}})]);
    }

    #[test]
    fn all() {
        check(
            json!({"tags": {"$all": ["a", "b"]}}),
            &[json!({"tags": ["b", "c", "a"]})],
            &[json!({"tags": ["a"]}), json!({"tags": "a"}), json!({})],
        );
        check(json!({"tags": {"$all": ["a"]}}), &[json!({"tags": "a"})], &[]);
        check(json!({"tags": {"$all": []}}), &[], &[json!({"tags": []}), json!({"tags": ["a"]})]);
    }

    #[test]
    fn elem_match() {
        check(
            json!({"a": {"$elemMatch": {"$gte": 2, "$lt": 4}}}),
            &[json!({"a": [1, 3]})],
            &[json!({"a": [1, 5]}), json!({"a": 3}), json!({})],
        );
        check(
            json!({"items": {"$elemMatch": {"id": "X", "n": {"$gt": 1}}}}),
            &[json!({"items": [{"id": "Y", "n": 5}, {"id": "X", "n": 2}]})],
            &[json!({"items": [{"id": "X", "n": 1}, {"id": "Y", "n": 2}]}), json!({"items": {"id": "X", "n": 2}})],
        );
        // Only objects are documents: `{"id": null}` does not match scalar elements.
        check(json!({"a": {"$elemMatch": {"id": null}}}), &[json!({"a": [{}]})], &[json!({"a": [1]})]);
    }

    #[test]
    fn not() {
        check(
            json!({"n": {"$not": {"$gt": 2}}}),
            &[json!({"n": 1}), json!({}), json!({"n": "x"})],
            &[json!({"n": 3}), json!({"n": [1, 3]})],
        );
    }

    #[test]
    fn logical() {
        check(json!({"$or": [{"a": 1}, {"b": 1}]}), &[json!({"a": 1}), json!({"b": 1})], &[json!({})]);
        check(json!({"$and": [{"a": 1}, {"b": 1}]}), &[json!({"a": 1, "b": 1})], &[json!({"a": 1})]);
        check(json!({"$nor": [{"a": 1}, {"b": 1}]}), &[json!({}), json!({"a": 2})], &[json!({"b": 1})]);
        check(json!({"a": 1, "b": {"$exists": false}}), &[json!({"a": 1})], &[json!({"a": 1, "b": 1})]);
    }

    #[test]
    fn sort_orders_types_then_values() {
        let sort = Sort::parse(&json!([{"sortBy": "v", "direction": "asc"}])).unwrap();
        let mut docs = vec![
            json!({"v": true}),
            json!({"v": [1]}),
            json!({"v": {"a": 1}}),
            json!({"v": "b"}),
            json!({"v": "B"}),
            json!({"v": 2.5}),
            json!({"v": -1}),
            json!({"v": null}),
            json!({"v": false}),
        ];
        docs.sort_by(|a, b| sort.compare(a, b));
        let values: Vec<&Value> = docs.iter().map(|it| &it["v"]).collect();
        assert_eq!(
            values,
            [
                &json!(null),
                &json!(-1),
                &json!(2.5),
                &json!("B"),
                &json!("b"),
                &json!({"a": 1}),
                &json!([1]),
                &json!(false),
                &json!(true)
            ]
        );
        let sort = Sort::parse(&json!([{"sortBy": "a", "direction": "desc"}, {"sortBy": "b"}])).unwrap();
        assert_eq!(sort.compare(&json!({"a": 1, "b": 2}), &json!({"a": 2, "b": 1})), Ordering::Greater);
        assert_eq!(sort.compare(&json!({"a": 1, "b": 1}), &json!({"a": 1.0, "b": 2})), Ordering::Less);
        assert_eq!(sort.compare(&json!({}), &json!({"a": null})), Ordering::Equal);
    }
}
