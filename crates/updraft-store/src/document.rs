//! The reserved properties of a stored document, set by the store alone.

use serde_json::{Map, Value, json};
use updraft_core::ids::ObjectId;
use updraft_core::timestamp;

use crate::{Author, Collection};

/// Properties only the store writes; a client's values for them are dropped.
pub(crate) const RESERVED: [&str; 6] = ["id", "objectType", "createdAt", "updatedAt", "creator", "updater"];

pub(crate) fn strip_reserved(properties: &mut Map<String, Value>) {
    for key in RESERVED {
        properties.remove(key);
    }
}

/// `creator`/`updater` are present only when a user made the write.
fn set_user_ref(doc: &mut Map<String, Value>, key: &str, author: Author<'_>) {
    match author.user {
        Some(id) => doc.insert(key.to_owned(), json!({"id": id, "objectType": "users"})),
        None => doc.remove(key),
    };
}

/// A new document with its reserved properties.
pub(crate) fn new_document(
    at: Collection<'_>,
    id: ObjectId,
    mut properties: Map<String, Value>,
    author: Author<'_>,
    now_ms: i64,
) -> Map<String, Value> {
    strip_reserved(&mut properties);
    let at_text = format_ms(now_ms);
    properties.insert("id".into(), Value::String(id.to_string()));
    properties.insert("objectType".into(), Value::String(at.object_type.to_owned()));
    properties.insert("createdAt".into(), Value::String(at_text.clone()));
    properties.insert("updatedAt".into(), Value::String(at_text));
    set_user_ref(&mut properties, "creator", author);
    set_user_ref(&mut properties, "updater", author);
    properties
}

/// Applies an update: top-level keys of `patch` replace the document's; reserved keys are kept.
pub(crate) fn merge(doc: &mut Map<String, Value>, mut patch: Map<String, Value>, author: Author<'_>, updated_ms: i64) {
    strip_reserved(&mut patch);
    doc.extend(patch);
    touch(doc, author, updated_ms);
}

/// Records who changed the document, and when.
pub(crate) fn touch(doc: &mut Map<String, Value>, author: Author<'_>, updated_ms: i64) {
    doc.insert("updatedAt".into(), Value::String(format_ms(updated_ms)));
    set_user_ref(doc, "updater", author);
}

pub(crate) fn format_ms(ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    timestamp::format(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_properties_come_from_the_store_only() {
        let at = Collection { backend: "b", object_type: "objects.todos" };
        let id = ObjectId::generate();
        let client = json!({"title": "x", "id": "forged", "createdAt": "1999", "creator": {"id": "eve"}});
        let doc = new_document(at, id, client.as_object().unwrap().clone(), Author::user("u1"), 1_372_437_512_369);
        assert_eq!(doc["id"], id.to_string());
        assert_eq!(doc["objectType"], "objects.todos");
        assert_eq!(doc["createdAt"], "2013-06-28T16:38:32.369Z");
        assert_eq!(doc["creator"], json!({"id": "u1", "objectType": "users"}));
        assert_eq!(doc["title"], "x");

        let mut doc = doc;
        let patch = json!({"title": "y", "updatedAt": "2099", "objectType": "users"});
        merge(&mut doc, patch.as_object().unwrap().clone(), Author::default(), 1_372_437_512_370);
        assert_eq!(doc["title"], "y");
        assert_eq!(doc["objectType"], "objects.todos");
        assert_eq!(doc["updatedAt"], "2013-06-28T16:38:32.370Z");
        assert!(!doc.contains_key("updater"), "an anonymous write leaves no updater");
        assert_eq!(doc["creator"], json!({"id": "u1", "objectType": "users"}));
    }
}
