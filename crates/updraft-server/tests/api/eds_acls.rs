//! EDS ACLs over HTTP: who reads and changes an object, the matrix of callers against explicit ACLs and the access
//! defaults, and an ACL sent with a new object.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::eds::*;

#[tokio::test]
async fn acls_decide_who_reads_and_changes_objects() {
    let eds = eds().await;
    for name in ["alice", "bob"] {
        let body = json!({"username": name, "password": "pw"}).to_string();
        eds.call(Method::POST, "/v1/users", None, Some(&body)).await;
    }
    let token = |session: Value| session["access_token"].as_str().unwrap().to_owned();
    let alice = token(eds.login("alice", "pw").await.1);
    let bob = token(eds.login("bob", "pw").await.1);
    let (_, me) = eds.call(Method::GET, "/v1/user", Some(&bob), None).await;
    let bob_id = me["id"].as_str().unwrap().to_owned();

    let (_, note) = eds.call(Method::POST, "/v1/objects/notes", Some(&alice), Some(r#"{"text":"mine"}"#)).await;
    let path = format!("/v1/objects/notes/{}", note["id"].as_str().unwrap());
    let (status, acl) = eds.call(Method::GET, &format!("{path}/access"), None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(acl["read"], json!([{"id": "*", "objectType": "aclSubject"}]));
    assert_eq!(acl["admin"], json!([{"id": note["creator"]["id"], "objectType": "users"}]));
    assert_eq!(acl.as_object().unwrap().len(), 4, "all four lists, always");

    // Alice makes it private to herself: replace the ACL.
    let private = json!({"admin": [{"id": note["creator"]["id"], "objectType": "users"}]}).to_string();
    let (status, _) = eds.call(Method::POST, &format!("{path}/access"), Some(&bob), Some(&private)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "bob is no admin");
    let (status, acl) = eds.call(Method::POST, &format!("{path}/access"), Some(&alice), Some(&private)).await;
    assert_eq!((status, acl["read"].clone()), (StatusCode::OK, json!([])));

    assert_eq!(eds.call(Method::GET, &path, Some(&bob), None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(eds.call(Method::GET, &path, None, None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(eds.call(Method::GET, &path, Some(&alice), None).await.0, StatusCode::OK);
    assert_eq!(eds.call(Method::GET, &path, Some(&eds.secret), None).await.0, StatusCode::OK);
    for (token, seen) in [(None, 0), (Some(&bob), 0), (Some(&alice), 1)] {
        let (_, count) = eds.call(Method::GET, "/v1/objects/notes?count=1", token.map(String::as_str), None).await;
        assert_eq!(count, json!({"count": seen}), "lists are filtered by ACL in the query");
    }

    // Then grants bob read: he sees it but cannot change it.
    let grant = json!({"read": [{"id": bob_id, "objectType": "users"}]}).to_string();
    let (status, acl) = eds.call(Method::PUT, &format!("{path}/access"), Some(&alice), Some(&grant)).await;
    assert_eq!((status, acl["read"].as_array().unwrap().len()), (StatusCode::OK, 1));
    assert_eq!(eds.call(Method::GET, &path, Some(&bob), None).await.0, StatusCode::OK);
    assert_eq!(eds.call(Method::PUT, &path, Some(&bob), Some("{}")).await.0, StatusCode::FORBIDDEN);
    assert_eq!(eds.call(Method::DELETE, &path, Some(&bob), None).await.0, StatusCode::FORBIDDEN);
    let (status, acl) = eds.call(Method::DELETE, &format!("{path}/access"), Some(&alice), Some(&grant)).await;
    assert_eq!((status, acl["read"].clone()), (StatusCode::OK, json!([])));
    assert_eq!(eds.call(Method::GET, &path, Some(&bob), None).await.0, StatusCode::NOT_FOUND);

    let bad = json!({"read": [{"id": "x", "objectType": "robots"}]}).to_string();
    let (status, body) = eds.call(Method::PUT, &format!("{path}/access"), Some(&alice), Some(&bad)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["property"], "read");
    assert_eq!(
        eds.call(Method::DELETE, &format!("{path}/access"), Some(&alice), None).await.0,
        StatusCode::BAD_REQUEST
    );
}

/// The ACL matrix: anonymous, owner, member of a permitted group, another user and the instance
/// secret against read, update, delete, admin and list on one object, in both access defaults: an explicit ACL
/// decides alike in both.
#[tokio::test]
async fn acl_matrix() {
    for eds in [eds().await, eds_locked().await] {
        acl_matrix_in(&eds, true, EXPLICIT_ACL).await;
    }
}

/// The same callers against an object with the template's ACL: everyone but admin in an open backend, the
/// creator alone in a locked one.
#[tokio::test]
async fn acl_matrix_of_the_defaults() {
    use StatusCode as S;
    let open = [
        (S::OK, S::OK, S::OK, S::UNAUTHORIZED, 1),
        (S::OK, S::OK, S::OK, S::OK, 1),
        (S::OK, S::OK, S::OK, S::FORBIDDEN, 1),
        (S::OK, S::OK, S::OK, S::FORBIDDEN, 1),
        (S::OK, S::OK, S::OK, S::OK, 1),
    ];
    acl_matrix_in(&eds().await, false, open).await;
    let locked = [
        (S::NOT_FOUND, S::NOT_FOUND, S::NOT_FOUND, S::NOT_FOUND, 0),
        (S::OK, S::OK, S::OK, S::OK, 1),
        (S::NOT_FOUND, S::NOT_FOUND, S::NOT_FOUND, S::NOT_FOUND, 0),
        (S::NOT_FOUND, S::NOT_FOUND, S::NOT_FOUND, S::NOT_FOUND, 0),
        (S::OK, S::OK, S::OK, S::OK, 1),
    ];
    acl_matrix_in(&eds_locked().await, false, locked).await;
}

/// read, update, delete, admin (add to the ACL), count in a list; for anonymous, owner, member, other, secret.
type Matrix = [(StatusCode, StatusCode, StatusCode, StatusCode, u64); 5];

const EXPLICIT_ACL: Matrix = {
    use StatusCode as S;
    [
        (S::NOT_FOUND, S::NOT_FOUND, S::NOT_FOUND, S::NOT_FOUND, 0),
        (S::OK, S::OK, S::OK, S::OK, 1),
        (S::OK, S::FORBIDDEN, S::FORBIDDEN, S::FORBIDDEN, 1),
        (S::NOT_FOUND, S::NOT_FOUND, S::NOT_FOUND, S::NOT_FOUND, 0),
        (S::OK, S::OK, S::OK, S::OK, 1),
    ]
};

async fn acl_matrix_in(eds: &Eds, explicit: bool, expected: Matrix) {
    let mut tokens = std::collections::HashMap::new();
    let mut ids = std::collections::HashMap::new();
    for name in ["owner", "member", "other"] {
        let body = json!({"username": name, "password": "pw"}).to_string();
        let (_, user) = eds.call(Method::POST, "/v1/users", None, Some(&body)).await;
        ids.insert(name, user["id"].as_str().unwrap().to_owned());
        tokens.insert(name, eds.login(name, "pw").await.1["access_token"].as_str().unwrap().to_owned());
    }
    let (_, group) = eds.call(Method::POST, "/v1/usergroups", Some(&eds.secret), Some(r#"{"name":"readers"}"#)).await;
    let gid = group["id"].as_str().unwrap();
    let member = json!({"id": ids["member"], "objectType": "users"}).to_string();
    let (status, _) =
        eds.call(Method::POST, &format!("/v1/usergroups/{gid}/members"), Some(&eds.secret), Some(&member)).await;
    assert_eq!(status, StatusCode::CREATED);
    // Group membership is read at each request, so the member's existing token carries it.

    let fresh = || async {
        let (_, doc) = eds.call(Method::POST, "/v1/objects/matrix", Some(&tokens["owner"]), Some(r#"{"v":1}"#)).await;
        let path = format!("/v1/objects/matrix/{}", doc["id"].as_str().unwrap());
        if explicit {
            let owner = json!({"id": ids["owner"], "objectType": "users"});
            let acl = json!({
                "read": [{"id": gid, "objectType": "usergroups"}],
                "update": [owner.clone()],
                "delete": [owner.clone()],
                "admin": [owner],
            })
            .to_string();
            let (status, _) =
                eds.call(Method::POST, &format!("{path}/access"), Some(&tokens["owner"]), Some(&acl)).await;
            assert_eq!(status, StatusCode::OK);
        }
        path
    };

    let who: [(&str, Option<String>); 5] = [
        ("anonymous", None),
        ("owner", Some(tokens["owner"].clone())),
        ("member", Some(tokens["member"].clone())),
        ("other", Some(tokens["other"].clone())),
        ("secret", Some(eds.secret.clone())),
    ];
    for ((name, token), (read, update, delete, admin, listed)) in who.iter().zip(expected) {
        let token = token.as_deref();
        let path = fresh().await;
        let (_, count) = eds.call(Method::GET, "/v1/objects/matrix?count=1", token, None).await;
        assert_eq!(count["count"], listed, "{name} list");
        assert_eq!(eds.call(Method::GET, &path, token, None).await.0, read, "{name} read");
        assert_eq!(eds.call(Method::PUT, &path, token, Some(r#"{"v":2}"#)).await.0, update, "{name} update");
        let acl = r#"{"read":[{"id":"*","objectType":"aclSubject"}]}"#;
        assert_eq!(eds.call(Method::PUT, &format!("{path}/access"), token, Some(acl)).await.0, admin, "{name} admin");
        assert_eq!(eds.call(Method::DELETE, &path, token, None).await.0, delete, "{name} delete");
        // Clean up for the next subject's count.
        eds.call(Method::DELETE, &path, Some(&eds.secret), None).await;
    }
}

#[tokio::test]
async fn an_acl_sent_with_a_new_object_is_its_acl_not_a_property() {
    let eds = eds().await;
    let (alice, alice_id) = sign_up(&eds, "alice").await;
    let (bob, _) = sign_up(&eds, "bob").await;
    let only_alice = json!({"read": [{"id": alice_id, "objectType": "users"}], "update": [], "delete": [],
                            "admin": [{"id": alice_id, "objectType": "users"}]});
    let body = json!({"title": "secret", "accessControlList": only_alice}).to_string();
    let (status, created) = eds.call(Method::POST, "/v1/objects/todos", Some(&bob), Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert!(created.get("accessControlList").is_none(), "{created}");
    let path = format!("/v1/objects/todos/{}", created["id"].as_str().unwrap());
    assert_eq!(eds.call(Method::GET, &path, Some(&alice), None).await.0, StatusCode::OK);
    assert_eq!(eds.call(Method::GET, &path, Some(&bob), None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(eds.call(Method::GET, &path, None, None).await.0, StatusCode::NOT_FOUND);

    // A malformed one is refused, and nothing is created.
    let bad = json!({"title": "x", "accessControlList": {"read": "everyone"}}).to_string();
    assert_eq!(eds.call(Method::POST, "/v1/objects/todos", Some(&bob), Some(&bad)).await.0, StatusCode::BAD_REQUEST);
    let bad = json!({"title": "x", "accessControlList": {"own": []}}).to_string();
    assert!(eds.call(Method::POST, "/v1/objects/todos", Some(&bob), Some(&bad)).await.0.is_client_error());
    let (_, all) = eds.call(Method::GET, "/v1/objects/todos?count=1", None, Some("")).await;
    assert_eq!(all["count"], 0, "{all}");
}
