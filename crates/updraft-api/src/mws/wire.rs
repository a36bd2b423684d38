//! Wire shapes of the MWS API and their validation, with the original server's tolerances.

use serde_json::{Map, Value, json};
use updraft_core::timestamp;
use updraft_gateway::Socket;

use crate::error::ApiError;

/// A validated `POST /v1/messages` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Message {
    pub data: String,
    pub sockets: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
}

impl Message {
    /// Accepts what the original accepted (strings; numbers and booleans stringified) plus the
    /// recommended relaxations: `receivers` keys may be missing, object `data` is sent as JSON text.
    pub(super) fn parse(body: Option<Value>) -> Result<Message, ApiError> {
        let Some(Value::Object(mut body)) = body else {
            return Err(ApiError::field("data", "Data is required"));
        };
        let data = match body.remove("data") {
            None | Some(Value::Null) => return Err(ApiError::field("data", "Data is required")),
            Some(Value::String(s)) if s.trim().is_empty() => {
                return Err(ApiError::field("data", "Data can't be blank"));
            }
            Some(Value::String(s)) => s,
            Some(other) => other.to_string(),
        };
        let mut receivers = match body.remove("receivers") {
            Some(Value::Object(receivers)) => receivers,
            None | Some(Value::Null) => return Err(ApiError::field("receivers", "Receivers is required")),
            Some(_) => return Err(ApiError::field("receivers", "Receivers isn't a hash")),
        };
        let sockets = string_list(&mut receivers, "sockets")?;
        let tags = string_list(&mut receivers, "tags")?;
        Ok(Message { data, sockets, tags })
    }

    /// The 201 answer: the message as accepted.
    pub(super) fn echo(&self) -> Value {
        json!({
            "data": self.data,
            "receivers": { "sockets": self.sockets, "tags": self.tags },
        })
    }
}

/// A list of strings under `key`; absent or null is `None`, scalars are stringified.
fn string_list(map: &mut Map<String, Value>, key: &'static str) -> Result<Option<Vec<String>>, ApiError> {
    let items = match map.remove(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(ApiError::field(key, format!("{} isn't an array", capitalized(key)))),
    };
    items
        .into_iter()
        .map(|item| match item {
            Value::String(s) => Ok(s),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            _ => Err(ApiError::field(key, format!("{} must contain only strings", capitalized(key)))),
        })
        .collect::<Result<_, _>>()
        .map(Some)
}

fn capitalized(key: &str) -> String {
    let mut chars = key.chars();
    chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
}

/// `POST /v1/sockets` body: optional `{"tags": [...]}`.
pub(super) fn socket_tags(body: Option<Value>) -> Result<Vec<String>, ApiError> {
    match body {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(mut map)) => Ok(string_list(&mut map, "tags")?.unwrap_or_default()),
        Some(_) => Err(ApiError::field("tags", "Tags isn't an array")),
    }
}

/// `POST /v1/webhook_receivers/enginio`: an EDS webhook turned into a message.
/// Receivers `[{"id","objectType"}]` become tags `"<objectType>.<id>"`; `aclSubject.*` broadcasts.
pub(super) fn enginio_message(body: Option<Value>) -> Result<Message, ApiError> {
    let Some(Value::Object(mut body)) = body else {
        return Err(ApiError::field("payload", "Payload is required"));
    };
    let data = match body.remove("payload") {
        None | Some(Value::Null) => return Err(ApiError::field("payload", "Payload is required")),
        Some(Value::String(s)) => s,
        Some(other) => other.to_string(),
    };
    let receivers = match body.remove("receivers") {
        Some(Value::Array(receivers)) => receivers,
        None | Some(Value::Null) => return Err(ApiError::field("receivers", "Receivers is required")),
        Some(_) => return Err(ApiError::field("receivers", "Receivers isn't an array")),
    };
    let mut tags = Vec::with_capacity(receivers.len());
    for receiver in &receivers {
        let id = receiver.get("id").and_then(scalar);
        let kind = receiver.get("objectType").and_then(scalar);
        match (kind, id) {
            (Some(kind), Some(id)) => tags.push(format!("{kind}.{id}")),
            _ => return Err(ApiError::field("receivers", "Receivers must have id and objectType")),
        }
    }
    let everyone = tags.iter().any(|t| t == "aclSubject.*");
    let sockets = if everyone { vec!["*".to_owned()] } else { Vec::new() };
    Ok(Message { data, sockets: Some(sockets), tags: Some(tags) })
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A connected socket as `GET /v1/sockets` shows it. The docs say `connectedAt`,
/// the original server sent `createdAt`: both are present.
pub(super) fn socket_json(socket: &Socket) -> Value {
    let at = timestamp::format(socket.connected_at);
    json!({ "id": socket.id.to_string(), "connectedAt": at, "createdAt": at, "tags": socket.tags().iter().map(|t| &**t).collect::<Vec<&str>>() })
}

/// A socket open on another node, as `socket_json` shows one of this node's.
pub(super) fn record_json(record: &updraft_bus::SocketRecord) -> Value {
    let at = timestamp::format(std::time::UNIX_EPOCH + std::time::Duration::from_millis(record.connected_ms));
    json!({ "id": record.id, "connectedAt": at, "createdAt": at, "tags": record.tags })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_accept_the_original_forms_and_the_relaxations() {
        let m = Message::parse(Some(json!({"data": "hi", "receivers": {"sockets": ["*"], "tags": null}}))).unwrap();
        assert_eq!(m.echo(), json!({"data": "hi", "receivers": {"sockets": ["*"], "tags": null}}));
        let m = Message::parse(Some(json!({"data": 12, "receivers": {}}))).unwrap();
        assert_eq!((m.data.as_str(), m.sockets, m.tags), ("12", None, None));
        let m = Message::parse(Some(json!({"data": {"a": 1}, "receivers": {"tags": ["t", 5]}}))).unwrap();
        assert_eq!((m.data.as_str(), m.tags), (r#"{"a":1}"#, Some(vec!["t".to_owned(), "5".to_owned()])));
    }

    #[test]
    fn bad_messages_name_the_field() {
        let cases = [
            (json!({"receivers": {}}), "data"),
            (json!({"data": null, "receivers": {}}), "data"),
            (json!({"data": "  ", "receivers": {}}), "data"),
            (json!({"data": "x"}), "receivers"),
            (json!({"data": "x", "receivers": []}), "receivers"),
            (json!({"data": "x", "receivers": {"sockets": "*"}}), "sockets"),
            (json!({"data": "x", "receivers": {"tags": [{"a": 1}]}}), "tags"),
            (json!([1, 2]), "data"),
        ];
        for (body, property) in cases {
            let err = Message::parse(Some(body.clone())).unwrap_err();
            assert_eq!(err.property.as_deref(), Some(property), "{body}");
        }
    }

    #[test]
    fn enginio_receivers_become_tags() {
        let body = json!({
            "payload": {"object": {"id": "1"}, "meta": {"eventName": "create"}},
            "receivers": [{"id": "john", "objectType": "users"}, {"id": "admins", "objectType": "usergroups"}],
        });
        let m = enginio_message(Some(body)).unwrap();
        assert_eq!(m.tags, Some(vec!["users.john".to_owned(), "usergroups.admins".to_owned()]));
        assert_eq!(m.sockets, Some(vec![]));
        let payload: Value = serde_json::from_str(&m.data).unwrap();
        assert_eq!(payload["meta"]["eventName"], "create");

        let everyone = json!({"payload": "{}", "receivers": [{"id": "*", "objectType": "aclSubject"}]});
        assert_eq!(enginio_message(Some(everyone)).unwrap().sockets, Some(vec!["*".to_owned()]));
        assert_eq!(enginio_message(Some(json!({"receivers": []}))).unwrap_err().property.as_deref(), Some("payload"));
        assert_eq!(enginio_message(Some(json!({"payload": "x"}))).unwrap_err().property.as_deref(), Some("receivers"));
    }
}
