//! Atomic updates (`PUT .../<id>/atomic`): MongoDB-style operators applied to one document.

use serde_json::{Map, Value};

use crate::nesting;

/// One operation on one top-level property.
#[derive(Debug, Clone, PartialEq)]
pub enum AtomicOp {
    Inc(String, serde_json::Number),
    Set(String, Value),
    Unset(String),
    Push(String, Value),
    Pull(String, Value),
    AddToSet(String, Value),
    /// Removes the last element (`1`) or the first (`-1`).
    Pop(String, bool),
}

impl AtomicOp {
    /// The top-level property the operation changes.
    pub fn property(&self) -> &str {
        match self {
            AtomicOp::Inc(name, _)
            | AtomicOp::Set(name, _)
            | AtomicOp::Unset(name)
            | AtomicOp::Push(name, _)
            | AtomicOp::Pull(name, _)
            | AtomicOp::AddToSet(name, _)
            | AtomicOp::Pop(name, _) => name,
        }
    }
}

/// Why an atomic update was refused; nothing was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtomicError {
    pub message: String,
    pub property: Option<String>,
}

fn error(message: impl Into<String>, property: Option<&str>) -> AtomicError {
    AtomicError { message: message.into(), property: property.map(str::to_owned) }
}

/// Properties no operator may touch: the store sets them.
const RESERVED: [&str; 6] = ["id", "objectType", "createdAt", "updatedAt", "creator", "updater"];

/// Parses `{"$inc": {"n": 1}, "$push": {"tags": "x"}, ...}`.
pub fn parse(body: &Value) -> Result<Vec<AtomicOp>, AtomicError> {
    let Value::Object(body) = body else { return Err(error("An atomic update is a JSON object of operators", None)) };
    if body.is_empty() {
        return Err(error("An atomic update needs at least one operator", None));
    }
    let mut ops = Vec::new();
    for (operator, fields) in body {
        let Value::Object(fields) = fields else {
            return Err(error(format!("{operator} takes an object of properties"), None));
        };
        for (field, value) in fields {
            if RESERVED.contains(&field.as_str()) || field.is_empty() || field.contains('.') || field.starts_with('$') {
                return Err(error(format!("{field:?} cannot be changed atomically"), Some(field)));
            }
            let name = field.clone();
            ops.push(match operator.as_str() {
                "$inc" => match value {
                    Value::Number(n) => AtomicOp::Inc(name, n.clone()),
                    _ => return Err(error("$inc takes a number", Some(field))),
                },
                // The document holds a value one level down, an element two.
                "$set" => AtomicOp::Set(name, shallow(value, 1, field)?),
                "$unset" => AtomicOp::Unset(name),
                "$push" => AtomicOp::Push(name, shallow(value, 2, field)?),
                "$pull" => AtomicOp::Pull(name, value.clone()),
                "$addToSet" => AtomicOp::AddToSet(name, shallow(value, 2, field)?),
                "$pop" => match value.as_i64() {
                    Some(1) => AtomicOp::Pop(name, true),
                    Some(-1) => AtomicOp::Pop(name, false),
                    _ => return Err(error("$pop takes 1 (last) or -1 (first)", Some(field))),
                },
                other => return Err(error(format!("unknown operator {other}"), None)),
            });
        }
    }
    Ok(ops)
}

/// `value`, if the document stays within `nesting::MAX_DEPTH` with `value` this many levels down.
fn shallow(value: &Value, levels_down: usize, field: &str) -> Result<Value, AtomicError> {
    if levels_down + nesting::depth(value) > nesting::MAX_DEPTH {
        let message = format!("A document nests at most {} levels of objects and arrays", nesting::MAX_DEPTH);
        return Err(error(message, Some(field)));
    }
    Ok(value.clone())
}

/// Applies every operation or none.
pub fn apply(doc: &mut Map<String, Value>, ops: &[AtomicOp]) -> Result<(), AtomicError> {
    let mut next = doc.clone();
    for op in ops {
        match op {
            AtomicOp::Inc(field, by) => {
                let sum = match next.get(field) {
                    None | Some(Value::Null) => Value::Number(by.clone()),
                    Some(Value::Number(have)) => add(have, by).ok_or_else(|| {
                        error("$inc overflows: the result is out of the range of numbers kept", Some(field))
                    })?,
                    Some(_) => return Err(error("$inc needs a number", Some(field))),
                };
                next.insert(field.clone(), sum);
            }
            AtomicOp::Set(field, value) => {
                next.insert(field.clone(), value.clone());
            }
            AtomicOp::Unset(field) => {
                next.remove(field);
            }
            AtomicOp::Push(field, value) | AtomicOp::AddToSet(field, value) => {
                let list = array(&mut next, field)?;
                if matches!(op, AtomicOp::Push(..)) || !list.contains(value) {
                    list.push(value.clone());
                }
            }
            AtomicOp::Pull(field, value) => array(&mut next, field)?.retain(|item| item != value),
            AtomicOp::Pop(field, last) => {
                let list = array(&mut next, field)?;
                if !list.is_empty() {
                    if *last {
                        list.pop();
                    } else {
                        list.remove(0);
                    }
                }
            }
        }
    }
    *doc = next;
    Ok(())
}

/// The array under `field`, created empty when missing.
fn array<'a>(doc: &'a mut Map<String, Value>, field: &str) -> Result<&'a mut Vec<Value>, AtomicError> {
    let slot = doc.entry(field.to_owned()).or_insert_with(|| Value::Array(Vec::new()));
    if slot.is_null() {
        *slot = Value::Array(Vec::new());
    }
    slot.as_array_mut().ok_or_else(|| error("needs an array", Some(field)))
}

/// The exact sum of two integers, else the `f64` sum; `None` when it does not fit: an integer sum out of the
/// `i64` range (which SQLite compares exactly) would otherwise turn into an approximate float, and a float sum
/// into infinity, which JSON cannot hold (it was stored as null).
fn add(a: &serde_json::Number, b: &serde_json::Number) -> Option<Value> {
    let integer = |n: &serde_json::Number| n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from));
    if let (Some(x), Some(y)) = (integer(a), integer(b)) {
        let sum = x + y;
        return i64::try_from(sum).ok().map(Value::from);
    }
    serde_json::Number::from_f64(a.as_f64()? + b.as_f64()?).map(Value::Number)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn run(doc: Value, update: Value) -> Result<Value, AtomicError> {
        let mut doc = doc.as_object().unwrap().clone();
        apply(&mut doc, &parse(&update)?)?;
        Ok(Value::Object(doc))
    }

    #[test]
    fn every_operator_does_what_mongodb_does() {
        let doc = json!({"n": 1, "tags": ["a", "b", "a"], "gone": true});
        let update = json!({
            "$inc": {"n": 2, "fresh": 5},
            "$set": {"title": "t"},
            "$unset": {"gone": ""},
            "$pull": {"tags": "a"},
            "$push": {"log": "x"},
            "$addToSet": {"set": 1},
        });
        assert_eq!(
            run(doc, update).unwrap(),
            json!({"n": 3, "fresh": 5, "title": "t", "tags": ["b"], "log": ["x"], "set": [1]})
        );
        assert_eq!(run(json!({"s": [1]}), json!({"$addToSet": {"s": 1}})).unwrap(), json!({"s": [1]}));
        assert_eq!(run(json!({"l": [1, 2, 3]}), json!({"$pop": {"l": 1}})).unwrap(), json!({"l": [1, 2]}));
        assert_eq!(run(json!({"l": [1, 2, 3]}), json!({"$pop": {"l": -1}})).unwrap(), json!({"l": [2, 3]}));
        assert_eq!(run(json!({"x": 1.5}), json!({"$inc": {"x": 1}})).unwrap(), json!({"x": 2.5}));
    }

    #[test]
    fn bad_updates_are_refused_whole() {
        let cases = [
            json!({"$rename": {"a": "b"}}),
            json!({"$inc": {"n": "1"}}),
            json!({"$set": {"id": "x"}}),
            json!({"$set": {"a.b": 1}}),
            json!({"$pop": {"l": 2}}),
            json!({}),
            json!([1]),
        ];
        for update in cases {
            assert!(parse(&update).is_err(), "{update}");
        }
        // Type errors surface when applied, and leave the document as it was.
        let mut doc = json!({"n": "text", "m": 1}).as_object().unwrap().clone();
        let ops = parse(&json!({"$inc": {"m": 1, "n": 1}})).unwrap();
        assert!(apply(&mut doc, &ops).is_err());
        assert_eq!(Value::Object(doc), json!({"n": "text", "m": 1}));
    }

    #[test]
    fn finding_15_values_keep_the_document_within_its_depth() {
        let nested = |levels: usize| (0..levels).fold(json!(1), |inner, _| json!({ "a": inner }));
        let fits = nested(nesting::MAX_DEPTH - 1);
        let doc = run(json!({}), json!({"$set": {"x": fits}})).unwrap();
        assert_eq!(nesting::depth(&doc), nesting::MAX_DEPTH);
        assert!(parse(&json!({"$set": {"x": nested(nesting::MAX_DEPTH)}})).is_err());
        let doc = run(json!({}), json!({"$push": {"x": nested(nesting::MAX_DEPTH - 2)}})).unwrap();
        assert_eq!(nesting::depth(&doc), nesting::MAX_DEPTH);
        for op in ["$push", "$addToSet"] {
            let err = parse(&json!({ op: {"x": nested(nesting::MAX_DEPTH - 1)} })).unwrap_err();
            assert_eq!(err.property.as_deref(), Some("x"), "{op}");
        }
    }

    #[test]
    fn finding_18_inc_refuses_to_overflow() {
        let max = i64::MAX;
        for (doc, update) in [
            (json!({"f": 1.7e308, "m": 1}), json!({"$inc": {"m": 1, "f": 1.7e308}})),
            (json!({"f": -1.7e308}), json!({"$inc": {"f": -1.7e308}})),
            (json!({"n": max, "m": 1}), json!({"$inc": {"m": 1, "n": 1}})),
            (json!({"n": 1}), json!({"$inc": {"n": max}})),
            (json!({"n": i64::MIN}), json!({"$inc": {"n": -1}})),
            (json!({"n": u64::MAX}), json!({"$inc": {"n": 1}})),
        ] {
            let mut stored = doc.as_object().unwrap().clone();
            let err = apply(&mut stored, &parse(&update).unwrap()).unwrap_err();
            assert!(err.message.contains("overflows"), "{update}: {err:?}");
            assert_eq!(Value::Object(stored), doc, "{update} changed nothing");
        }
        // Integers stay exact up to the edges; one stored above i64 comes back into it.
        assert_eq!(run(json!({"n": max - 1}), json!({"$inc": {"n": 1}})).unwrap(), json!({"n": max}));
        assert_eq!(run(json!({"n": max as u64 + 1}), json!({"$inc": {"n": -1}})).unwrap(), json!({"n": max}));
        assert_eq!(run(json!({"n": i64::MIN}), json!({"$inc": {"n": max}})).unwrap()["n"], json!(-1));
        assert_eq!(run(json!({"f": 1.5e308}), json!({"$inc": {"f": -1.5e308}})).unwrap()["f"], json!(0.0));
    }
}
