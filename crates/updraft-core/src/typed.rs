//! Typed values some clients write (the npm SDK's `Eds.Ref`, `Eds.Time`, `Eds.Geoloc`):
//! `{"$type": "ref" | "time" | "geoloc", "$value": ...}`. They are stored as plain JSON, the way
//! they are read back: a ref as `{"id", "objectType"}`, a time as its ISO text, a geoloc as its
//! `[lat, lon]` pair.

use serde_json::Value;

/// Replaces every typed value inside `value` with its plain form.
pub fn to_plain(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let typed = map.len() == 2
                && matches!(map.get("$type").and_then(Value::as_str), Some("ref" | "time" | "geoloc"))
                && map.contains_key("$value");
            if typed {
                let mut plain = map.remove("$value").expect("checked above");
                to_plain(&mut plain);
                *value = plain;
                return;
            }
            map.values_mut().for_each(to_plain);
        }
        Value::Array(items) => items.iter_mut().for_each(to_plain),
        _ => (),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn typed_values_become_what_clients_read_back() {
        let mut doc = json!({
            "list": {"$type": "ref", "$value": {"id": "5376019e698b3c6ad500095a", "objectType": "objects.lists"}},
            "due": {"$type": "time", "$value": "2014-03-14T08:48:23.000Z"},
            "at": [{"$type": "geoloc", "$value": [60.17, 24.94]}],
            "plain": {"$type": "mine", "$value": 1},
            "extra": {"$type": "ref", "$value": {}, "other": 1},
        });
        super::to_plain(&mut doc);
        assert_eq!(
            doc,
            json!({
                "list": {"id": "5376019e698b3c6ad500095a", "objectType": "objects.lists"},
                "due": "2014-03-14T08:48:23.000Z",
                "at": [[60.17, 24.94]],
                "plain": {"$type": "mine", "$value": 1},
                "extra": {"$type": "ref", "$value": {}, "other": 1},
            })
        );
    }
}
