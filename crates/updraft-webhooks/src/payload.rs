//! What a delivery sends: the body of shared/spec/qtc-api.md §1.1.9 and its signature.

use ring::hmac;
use serde_json::{Value, json};
use updraft_store::Change;

/// `{"payload": {"object", "meta": {"backendId", "eventName", "requestId", "userId"}}, "receivers": [...]}`, where
/// receivers are the subjects that may read the object: `{"id", "objectType": "users" | "usergroups"}`, or
/// `{"id": "*", "objectType": "aclSubject"}` when everyone may.
pub fn body(change: &Change) -> String {
    let receivers: Vec<Value> = change
        .readers
        .iter()
        .map(|subject| {
            let (id, kind) = subject.wire_id_and_type();
            json!({"id": id, "objectType": kind})
        })
        .collect();
    json!({
        "payload": {
            "object": change.object,
            "meta": {
                "backendId": change.backend,
                "eventName": change.event.name(),
                "requestId": change.request_id,
                "userId": change.user_id,
            },
        },
        "receivers": receivers,
    })
    .to_string()
}

/// `sha256=<hex>` of HMAC-SHA256 over `"<timestamp>.<body>"`: the timestamp is signed too, so a captured
/// delivery cannot be replayed later under a fresh one.
pub fn signature(secret: &str, timestamp: u64, body: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut context = hmac::Context::with_key(&key);
    context.update(timestamp.to_string().as_bytes());
    context.update(b".");
    context.update(body.as_bytes());
    format!("sha256={}", hex::encode(context.sign().as_ref()))
}

#[cfg(test)]
mod tests {
    use updraft_store::{ChangeEvent, Subject};

    use super::*;

    #[test]
    fn the_body_names_readers_as_enginio_did() {
        let change = Change {
            seq: 7,
            backend: "b1".into(),
            object_type: "objects.todos".into(),
            object_id: "o1".into(),
            event: ChangeEvent::Update,
            object: json!({"id": "o1", "title": "milk"}),
            readers: vec![Subject::user("u1"), Subject::group("g1")],
            user_id: Some("u1".into()),
            request_id: Some("r-42".into()),
        };
        let body: Value = serde_json::from_str(&body(&change)).unwrap();
        assert_eq!(
            body,
            json!({
                "payload": {"object": {"id": "o1", "title": "milk"},
                            "meta": {"backendId": "b1", "eventName": "update", "requestId": "r-42", "userId": "u1"}},
                "receivers": [{"id": "u1", "objectType": "users"}, {"id": "g1", "objectType": "usergroups"}],
            })
        );
        let public = Change { readers: vec![Subject::Everyone], ..change };
        let body: Value = serde_json::from_str(&super::body(&public)).unwrap();
        assert_eq!(body["receivers"], json!([{"id": "*", "objectType": "aclSubject"}]));
    }

    #[test]
    fn signatures_are_hmac_sha256_of_timestamp_and_body() {
        // Computed independently with Python: hmac.new(b"key", b"1.{}", hashlib.sha256).hexdigest()
        let sig = signature("key", 1, "{}");
        assert_eq!(sig, "sha256=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224");
        assert_ne!(sig, signature("key", 2, "{}"), "the timestamp is signed");
        assert_ne!(sig, signature("other", 1, "{}"));
    }
}
