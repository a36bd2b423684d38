//! How deep a stored document may nest. JSON parsers bound their recursion (serde_json stops at 128 levels), and
//! a document travels inside other JSON (a list page, an `include`, a change frame, a webhook body), so documents
//! keep well below that: a document the server accepted must never be one that it, or a client, cannot read.

use serde_json::Value;

/// Levels of objects and arrays in a document, the document itself included. MongoDB's limit too.
pub const MAX_DEPTH: usize = 100;

/// The levels of objects and arrays in `value`: 0 for a scalar, 1 for `{}` or `[1]`.
pub fn depth(value: &Value) -> usize {
    // Iterative, so that no value is too deep to measure.
    let mut deepest = 0;
    let mut pending = vec![(value, 1)];
    while let Some((value, level)) = pending.pop() {
        match value {
            Value::Array(items) => pending.extend(items.iter().map(|item| (item, level + 1))),
            Value::Object(map) => pending.extend(map.values().map(|item| (item, level + 1))),
            _ => continue,
        }
        deepest = deepest.max(level);
    }
    deepest
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn depth_counts_containers() {
        assert_eq!(depth(&json!(1)), 0);
        assert_eq!(depth(&json!({})), 1);
        assert_eq!(depth(&json!([1, {"a": [2]}, "x"])), 3);
        let mut deep = json!(1);
        for _ in 0..1000 {
            deep = json!({ "a": deep });
        }
        assert_eq!(depth(&deep), 1000);
    }
}
