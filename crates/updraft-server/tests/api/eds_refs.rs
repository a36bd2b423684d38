//! Ref properties of schemas, as the Social Todos example uses them: todos extend the ACL of their list
//! (`onCreate: {"accessControlList": "extend"}`) and go when it goes (`target.onDelete.dependency`).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::eds::{eds, sign_up};

fn ids(list: &Value) -> Vec<&str> {
    list["results"].as_array().unwrap().iter().map(|doc| doc["id"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn todos_extend_their_list_acl_and_go_with_the_list() {
    let eds = eds().await;
    let private =
        json!({"read": [], "update": [], "delete": [], "admin": [{"id": "creator", "objectType": "aclSubject"}]});
    for schema in [
        json!({"name": "todoLists", "properties": [{"name": "name", "type": "string"}], "accessControlListTemplate": private}),
        json!({"name": "todos", "accessControlListTemplate": private, "properties": [
            {"name": "title", "type": "string"},
            {"name": "list", "type": "ref", "objectType": "objects.todoLists",
             "onCreate": {"accessControlList": "extend"}, "target": {"onDelete": {"dependency": "deleteObject"}}}
        ]}),
    ] {
        let (status, body) =
            eds.schema(Method::POST, "/v1/object_types", Some(&schema.to_string()), Some(&eds.master_key)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (alice, _) = sign_up(&eds, "alice").await;
    let (bob, bob_id) = sign_up(&eds, "bob").await;
    let (carol, _) = sign_up(&eds, "carol").await;

    let (_, list) = eds.call(Method::POST, "/v1/objects/todoLists", Some(&alice), Some(r#"{"name":"shopping"}"#)).await;
    let list_id = list["id"].as_str().unwrap();
    let list_ref = json!({"id": list_id, "objectType": "objects.todoLists"});
    let body = json!({"title": "milk", "list": list_ref}).to_string();
    let (status, todo) = eds.call(Method::POST, "/v1/objects/todos", Some(&alice), Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{todo}");
    let todo_path = format!("/v1/objects/todos/{}", todo["id"].as_str().unwrap());

    // Bob cannot see the list, so he can neither see its todos nor add to it.
    assert_eq!(eds.call(Method::GET, &todo_path, Some(&bob), None).await.0, StatusCode::NOT_FOUND);
    let (status, error) = eds.call(Method::POST, "/v1/objects/todos", Some(&bob), Some(&body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert_eq!(error["errors"][0]["property"], "list");

    // Alice shares the list with Bob: its todos follow, the list's ACL as it is now.
    let share =
        json!({"read": [{"id": bob_id, "objectType": "users"}], "update": [{"id": bob_id, "objectType": "users"}]});
    let access = format!("/v1/objects/todoLists/{list_id}/access");
    assert_eq!(eds.call(Method::PUT, &access, Some(&alice), Some(&share.to_string())).await.0, StatusCode::OK);
    assert_eq!(eds.call(Method::GET, &todo_path, Some(&bob), None).await.0, StatusCode::OK);
    let (_, seen) = eds.call(Method::GET, "/v1/objects/todos", Some(&bob), None).await;
    assert_eq!(ids(&seen), [todo["id"].as_str().unwrap()]);
    let (status, _) = eds.call(Method::PUT, &todo_path, Some(&bob), Some(r#"{"done":true}"#)).await;
    assert_eq!(status, StatusCode::OK, "update on the list grants update on its todos");
    let body = json!({"title": "eggs", "list": list_ref}).to_string();
    let (status, eggs) = eds.call(Method::POST, "/v1/objects/todos", Some(&bob), Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{eggs}");
    let (_, seen) = eds.call(Method::GET, "/v1/objects/todos?count=1", Some(&carol), None).await;
    assert_eq!(seen, json!({"count": 0}), "carol sees none of it");

    // Unsharing takes it back at once.
    assert_eq!(eds.call(Method::DELETE, &access, Some(&alice), Some(&share.to_string())).await.0, StatusCode::OK);
    assert_eq!(eds.call(Method::GET, &todo_path, Some(&bob), None).await.0, StatusCode::NOT_FOUND);

    // Deleting the list deletes both todos.
    let (_, other) = eds.call(Method::POST, "/v1/objects/todos", Some(&alice), Some(r#"{"title":"loose"}"#)).await;
    let (status, _) = eds.call(Method::DELETE, &format!("/v1/objects/todoLists/{list_id}"), Some(&alice), None).await;
    assert_eq!(status, StatusCode::OK);
    let (_, left) = eds.call(Method::GET, "/v1/objects/todos", Some(&eds.secret), None).await;
    assert_eq!(ids(&left), [other["id"].as_str().unwrap()]);
}

#[tokio::test]
async fn ref_rules_in_schemas_are_checked() {
    let eds = eds().await;
    for (schema, property) in [
        (
            json!({"name": "a", "properties": [{"name": "p", "type": "ref", "target": {"onDelete": {"dependency": "deleteObject"}}}]}),
            "properties",
        ),
        (
            json!({"name": "a", "properties": [{"name": "p", "type": "string", "onCreate": {"accessControlList": "extend"}}]}),
            "properties",
        ),
        (json!({"name": "a", "properties": [{"name": "p", "type": "ref", "objectType": "no such!"}]}), "properties"),
    ] {
        let (status, body) =
            eds.schema(Method::POST, "/v1/object_types", Some(&schema.to_string()), Some(&eds.master_key)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{schema}: {body}");
        if body["errors"][0]["property"] != property {
            // An invalid type name is reported as a bad request without a property.
            assert_eq!(body["errors"][0]["reason"], "BadRequest", "{body}");
        }
    }
    let (_, listed) = eds.schema(Method::GET, "/v1/object_types", None, Some(&eds.master_key)).await;
    assert_eq!(listed["results"], json!([]), "nothing was stored");
}
