//! What a committed change looks like to each audience, in one place (docs/realtime.md):
//!
//! - **sockets** of a gateway bound to the backend get the frame an `enginio` webhook receiver sends:
//!   `{"object", "meta": {"backendId", "eventName", "userId", "seq"}}`;
//! - **the notification stream** (QtEnginio's `EnginioModel`) gets
//!   `{"event", "data", "origin": {"apiRequestId"}, "seq"}`, or `{"event": "gap", ...}` when a resume reaches
//!   past the log;
//! - **webhooks** get the original Enginio body `{"payload": {"object", "meta"}, "receivers"}`.
//!
//! ACL subjects have one wire form, used here and by the API's `/access` bodies: `{"id", "objectType": "users" |
//! "usergroups"}`, or `{"id": "*", "objectType": "aclSubject"}` for everyone.

use bytes::Bytes;
use serde_json::{Value, json};
use updraft_store::{Change, Subject};

/// A subject as the wire names it.
pub fn subject_json(subject: &Subject) -> Value {
    let (id, kind) = subject.wire_id_and_type();
    json!({"id": id, "objectType": kind})
}

/// The frame bound gateways' sockets get.
pub fn socket_frame(change: &Change) -> Bytes {
    let frame = json!({
        "object": change.object,
        "meta": {
            "backendId": change.backend,
            "eventName": change.event.name(),
            "userId": change.user_id,
            "seq": change.seq,
        },
    });
    Bytes::from(frame.to_string())
}

/// The notification stream's event, as a value: a stream's filter is matched against it before it is written.
pub fn stream_event(change: &Change) -> Value {
    json!({
        "event": change.event.name(),
        "data": change.object,
        "origin": {"apiRequestId": change.request_id},
        "seq": change.seq,
    })
}

/// The stream's first frame when a resume from `since` reaches past what the log keeps.
pub fn stream_gap(since: i64) -> Bytes {
    Bytes::from(json!({"event": "gap", "seq": since, "origin": {"apiRequestId": null}}).to_string())
}

/// `{"payload": {"object", "meta": {"backendId", "eventName", "requestId", "userId"}}, "receivers": [...]}`, where
/// receivers are the subjects that may read the object.
pub fn webhook_body(change: &Change) -> String {
    let receivers: Vec<Value> = change.readers.iter().map(subject_json).collect();
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

#[cfg(test)]
mod tests {
    use updraft_store::ChangeEvent;

    use super::*;

    fn change() -> Change {
        Change {
            seq: 7,
            backend: "b1".into(),
            object_type: "objects.todos".into(),
            object_id: "o1".into(),
            event: ChangeEvent::Update,
            object: json!({"id": "o1", "title": "milk"}),
            readers: vec![Subject::user("u1"), Subject::group("g1")],
            user_id: Some("u1".into()),
            request_id: Some("r-42".into()),
        }
    }

    #[test]
    fn the_webhook_body_names_readers_as_enginio_did() {
        let body: Value = serde_json::from_str(&webhook_body(&change())).unwrap();
        assert_eq!(
            body,
            json!({
                "payload": {"object": {"id": "o1", "title": "milk"},
                            "meta": {"backendId": "b1", "eventName": "update", "requestId": "r-42", "userId": "u1"}},
                "receivers": [{"id": "u1", "objectType": "users"}, {"id": "g1", "objectType": "usergroups"}],
            })
        );
        let public = Change { readers: vec![Subject::Everyone], ..change() };
        let body: Value = serde_json::from_str(&webhook_body(&public)).unwrap();
        assert_eq!(body["receivers"], json!([{"id": "*", "objectType": "aclSubject"}]));
    }

    #[test]
    fn sockets_and_streams_get_their_own_shapes() {
        let frame: Value = serde_json::from_slice(&socket_frame(&change())).unwrap();
        assert_eq!(
            frame,
            json!({"object": {"id": "o1", "title": "milk"},
                   "meta": {"backendId": "b1", "eventName": "update", "userId": "u1", "seq": 7}})
        );
        assert_eq!(
            stream_event(&change()),
            json!({"event": "update", "data": {"id": "o1", "title": "milk"},
                   "origin": {"apiRequestId": "r-42"}, "seq": 7})
        );
        let gap: Value = serde_json::from_slice(&stream_gap(5)).unwrap();
        assert_eq!(gap, json!({"event": "gap", "seq": 5, "origin": {"apiRequestId": null}}));
    }
}
