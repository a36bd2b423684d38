//! EDS object types: validation of the schema and of the objects it guards, collection ACLs, templates, and
//! deleting a type with its objects.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::eds::*;

impl Eds {
    pub(crate) async fn schema(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
        master_key: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .app
            .client
            .request(method, format!("{}{path}", self.app.base))
            .header("Enginio-Backend-Id", &self.backend)
            .bearer_auth(&self.account);
        if let Some(key) = master_key {
            req = req.header("Enginio-Backend-MasterKey", key);
        }
        if let Some(body) = body {
            req = req.body(body.to_owned());
        }
        let res = req.send().await.unwrap();
        (res.status(), res.json().await.unwrap())
    }
}

#[tokio::test]
async fn object_types_validate_and_guard_their_collections() {
    let eds = eds().await;
    let (_, alice) = eds.call(Method::POST, "/v1/users", None, Some(r#"{"username":"alice","password":"pw"}"#)).await;
    let alice_id = alice["id"].as_str().unwrap();
    eds.call(Method::POST, "/v1/users", None, Some(r#"{"username":"bob","password":"pw"}"#)).await;
    let token = |session: Value| session["access_token"].as_str().unwrap().to_owned();
    let alice_token = token(eds.login("alice", "pw").await.1);
    let bob_token = token(eds.login("bob", "pw").await.1);

    let schema = json!({
        "name": "diary",
        "properties": [{"name": "text", "type": "string", "indexed": true}],
        "validators": [{"property": "text", "type": "required", "options": {"message": "is required"}}],
        "accessControlList": {
            "read": [{"id": "*", "objectType": "aclSubject"}],
            "create": [{"id": alice_id, "objectType": "users"}],
        },
        "accessControlListTemplate": {
            "read": [{"id": "creator", "objectType": "aclSubject"}],
            "admin": [{"id": "creator", "objectType": "aclSubject"}],
        },
    })
    .to_string();
    assert_eq!(eds.schema(Method::POST, "/v1/object_types", Some(&schema), None).await.0, StatusCode::FORBIDDEN);
    let (status, created) = eds.schema(Method::POST, "/v1/object_types", Some(&schema), Some(&eds.master_key)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert!(!created["properties"].as_array().unwrap().is_empty());
    let (_, listed) = eds.schema(Method::GET, "/v1/object_types", None, Some(&eds.master_key)).await;
    assert_eq!(listed["results"][0]["name"], "diary");

    // Only alice may create, and `text` is required.
    let (status, _) = eds.call(Method::POST, "/v1/objects/diary", Some(&bob_token), Some(r#"{"text":"x"}"#)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        eds.call(Method::POST, "/v1/objects/diary", None, Some(r#"{"text":"x"}"#)).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, body) = eds.call(Method::POST, "/v1/objects/diary", Some(&alice_token), Some("{}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, json!({"errors": [{"message": "is required", "property": "text", "reason": "ValidationFailed"}]}));
    let (status, entry) =
        eds.call(Method::POST, "/v1/objects/diary", Some(&alice_token), Some(r#"{"text":"dear"}"#)).await;
    assert_eq!(status, StatusCode::CREATED);

    // The template makes entries private to their creator.
    let path = format!("/v1/objects/diary/{}", entry["id"].as_str().unwrap());
    assert_eq!(eds.call(Method::GET, &path, Some(&alice_token), None).await.0, StatusCode::OK);
    assert_eq!(eds.call(Method::GET, &path, Some(&bob_token), None).await.0, StatusCode::NOT_FOUND);
    let (_, count) = eds.call(Method::GET, "/v1/objects/diary?count=1", Some(&bob_token), None).await;
    assert_eq!(count, json!({"count": 0}));

    // Deleting the type deletes its objects.
    let (status, _) = eds.schema(Method::DELETE, "/v1/object_types/diary", None, Some(&eds.master_key)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(eds.call(Method::GET, &path, Some(&eds.secret), None).await.0, StatusCode::NOT_FOUND);
    let (status, _) = eds.schema(Method::GET, "/v1/object_types/diary", None, Some(&eds.master_key)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let bad = json!({"name": "x", "properties": [{"name": "a-b", "type": "string"}]}).to_string();
    let (status, body) = eds.schema(Method::POST, "/v1/object_types", Some(&bad), Some(&eds.master_key)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["property"], "properties");
}
