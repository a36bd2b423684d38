//! Exact wire answers of representative EDS calls, pinned as `insta` snapshots (`snapshots/`): status, content
//! type and body with its members in the order sent, so that a change to any of them shows up as a diff to review
//! rather than slipping past assertions on single fields. Ids, tokens and times differ from run to run and are
//! redacted. `INSTA_UPDATE=always` rewrites the snapshots after an intended change; CI (`CI=true`) fails on a
//! missing one.

use std::fmt;

use reqwest::{Method, RequestBuilder};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Serialize, Serializer};

use crate::eds::{Eds, eds, encode, sign_up};

/// A JSON value as it came over the wire: object members stay in the order sent (`serde_json::Value` sorts them).
enum Wire {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Text(String),
    List(Vec<Wire>),
    Object(Vec<(String, Wire)>),
}

impl Wire {
    /// The text member `key` of an object.
    fn text(&self, key: &str) -> &str {
        match self {
            Wire::Object(members) => match members.iter().find(|(name, _)| name == key) {
                Some((_, Wire::Text(text))) => text,
                _ => panic!("no text member {key:?}"),
            },
            _ => panic!("not an object"),
        }
    }
}

impl Serialize for Wire {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Wire::Null => serializer.serialize_unit(),
            Wire::Bool(value) => serializer.serialize_bool(*value),
            Wire::Int(value) => serializer.serialize_i64(*value),
            Wire::Uint(value) => serializer.serialize_u64(*value),
            Wire::Float(value) => serializer.serialize_f64(*value),
            Wire::Text(value) => serializer.serialize_str(value),
            Wire::List(items) => serializer.collect_seq(items),
            Wire::Object(members) => serializer.collect_map(members.iter().map(|(name, value)| (name, value))),
        }
    }
}

impl<'de> Deserialize<'de> for Wire {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Wire, D::Error> {
        deserializer.deserialize_any(WireVisitor)
    }
}

struct WireVisitor;

impl<'de> Visitor<'de> for WireVisitor {
    type Value = Wire;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Wire, E> {
        Ok(Wire::Null)
    }
    fn visit_bool<E>(self, value: bool) -> Result<Wire, E> {
        Ok(Wire::Bool(value))
    }
    fn visit_i64<E>(self, value: i64) -> Result<Wire, E> {
        Ok(Wire::Int(value))
    }
    fn visit_u64<E>(self, value: u64) -> Result<Wire, E> {
        Ok(Wire::Uint(value))
    }
    fn visit_f64<E>(self, value: f64) -> Result<Wire, E> {
        Ok(Wire::Float(value))
    }
    fn visit_str<E>(self, value: &str) -> Result<Wire, E> {
        Ok(Wire::Text(value.to_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Wire, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Wire::List(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Wire, A::Error> {
        let mut members = Vec::new();
        while let Some(member) = map.next_entry()? {
            members.push(member);
        }
        Ok(Wire::Object(members))
    }
}

/// One answer as the client saw it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    status: u16,
    content_type: String,
    body: Wire,
}

async fn answer(request: RequestBuilder) -> Answer {
    let res = request.send().await.expect("request sent");
    let status = res.status().as_u16();
    let content_type = res.headers().get("content-type").map_or("", |v| v.to_str().unwrap()).to_owned();
    let text = res.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|err| panic!("{err}: {text}"));
    Answer { status, content_type, body }
}

/// A data call to the test backend, with a JSON body sent raw as QtEnginio does.
async fn call(eds: &Eds, method: Method, path: &str, token: Option<&str>, body: Option<&str>) -> Answer {
    let mut request =
        eds.app.client.request(method, format!("{}{path}", eds.app.base)).header("Enginio-Backend-Id", &eds.backend);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.body(body.to_owned());
    }
    answer(request).await
}

/// An OAuth2 password grant for a user of the test backend.
async fn login(eds: &Eds, username: &str, password: &str) -> Answer {
    let request = eds
        .app
        .client
        .post(format!("{}/v1/auth/oauth2/token", eds.app.base))
        .header("Enginio-Backend-Id", &eds.backend)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("grant_type=password&username={username}&password={password}"));
    answer(request).await
}

/// Redacts what differs from run to run in the documents at `at` (`.body`, `.body.results[]`): their ids, times
/// and the users who created and last changed them.
fn documents(at: &str) -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    let varying = [("id", "[id]"), ("createdAt", "[time]"), ("updatedAt", "[time]")];
    let authors = [("creator.id", "[user id]"), ("updater.id", "[user id]")];
    for (field, redacted) in varying.into_iter().chain(authors) {
        settings.add_redaction(&format!("{at}.{field}"), redacted);
    }
    settings
}

#[tokio::test]
async fn an_object_created_shown_changed_and_listed() {
    let eds = eds().await;
    let (token, _) = sign_up(&eds, "john").await;
    let due = r#"{"$type":"time","$value":"2014-01-01T00:00:00Z"}"#;
    let todo = format!(r#"{{"title":"milk","done":false,"count":2,"tags":["shop"],"due":{due}}}"#);
    let created = call(&eds, Method::POST, "/v1/objects/todos", Some(&token), Some(&todo)).await;
    documents(".body").bind(|| insta::assert_json_snapshot!("object_created", created));
    let path = format!("/v1/objects/todos/{}", created.body.text("id"));

    let shown = call(&eds, Method::GET, &path, Some(&token), None).await;
    documents(".body").bind(|| insta::assert_json_snapshot!("object_shown", shown));

    let changed = call(&eds, Method::PUT, &path, Some(&token), Some(r#"{"done":true}"#)).await;
    documents(".body").bind(|| insta::assert_json_snapshot!("object_changed", changed));

    let query = encode(r#"{"done":true}"#);
    let listed = call(&eds, Method::GET, &format!("/v1/objects/todos?q={query}&limit=10"), Some(&token), None).await;
    documents(".body.results[]").bind(|| insta::assert_json_snapshot!("objects_listed", listed));

    let acl = call(&eds, Method::GET, &format!("{path}/access"), Some(&token), None).await;
    insta::assert_json_snapshot!("object_acl", acl, { ".body.admin[0].id" => "[user id]" });
}

#[tokio::test]
async fn a_user_signs_up_and_in_and_a_usergroup_is_created() {
    let eds = eds().await;
    let body = r#"{"username":"john","password":"pw","email":"john@example.com"}"#;
    let user = call(&eds, Method::POST, "/v1/users", None, Some(body)).await;
    documents(".body").bind(|| insta::assert_json_snapshot!("user_created", user));

    let session = login(&eds, "john", "pw").await;
    documents(".body.enginio_data.user").bind(|| {
        insta::assert_json_snapshot!("user_signed_in", session, {
            ".body.access_token" => "[token]", ".body.refresh_token" => "[token]",
        })
    });
    insta::assert_json_snapshot!("oauth_wrong_password", login(&eds, "john", "wrong").await);

    let group = call(&eds, Method::POST, "/v1/usergroups", None, Some(r#"{"name":"admins"}"#)).await;
    documents(".body").bind(|| insta::assert_json_snapshot!("usergroup_created", group));
}

#[tokio::test]
async fn error_bodies() {
    let eds = eds().await;
    let bad_query = format!("/v1/objects/todos?q={}", encode(r#"{"n":{"$where":"1"}}"#));
    insta::assert_json_snapshot!("error_bad_query", call(&eds, Method::GET, &bad_query, None, None).await);
    let unknown = "/v1/objects/todos/0123456789abcdef01234567";
    insta::assert_json_snapshot!("error_object_not_found", call(&eds, Method::GET, unknown, None, None).await);
    let unknown = "/v1/users/0123456789abcdef01234567";
    insta::assert_json_snapshot!("error_user_not_found", call(&eds, Method::GET, unknown, None, None).await);
    let bad_type = call(&eds, Method::POST, "/v1/objects/to-dos", None, Some("{}")).await;
    insta::assert_json_snapshot!("error_bad_type_name", bad_type);
    let blank = call(&eds, Method::POST, "/v1/users", None, Some(r#"{"username":"john"}"#)).await;
    insta::assert_json_snapshot!("error_blank_password", blank);
    let no_backend = answer(eds.app.client.get(format!("{}/v1/objects/todos", eds.app.base))).await;
    insta::assert_json_snapshot!("error_no_backend", no_backend);
}
