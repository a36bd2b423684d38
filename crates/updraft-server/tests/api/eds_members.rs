//! Usergroup member management: open to everyone on a group without rules of its own (a fresh backend, as
//! QtEnginio's helpers and Social Todos need), narrowed per group by its admins through `/members/access`.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::eds::{eds, sign_up};

fn member(id: &str) -> String {
    json!({"id": id, "objectType": "users"}).to_string()
}

#[tokio::test]
async fn group_admins_decide_who_manages_members() {
    let eds = eds().await;
    let (alice, alice_id) = sign_up(&eds, "alice").await;
    let (bob, bob_id) = sign_up(&eds, "bob").await;
    let (_, carol_id) = sign_up(&eds, "carol").await;
    let (_, team) = eds.call(Method::POST, "/v1/usergroups", Some(&alice), Some(r#"{"name":"team"}"#)).await;
    let members = format!("/v1/usergroups/{}/members", team["id"].as_str().unwrap());
    let access = format!("{members}/access");

    // No rules yet: anyone manages the members, Bob joins by himself.
    let (_, rules) = eds.call(Method::GET, &access, None, None).await;
    let everyone = json!([{"id": "*", "objectType": "aclSubject"}]);
    assert_eq!(rules, json!({"create": everyone, "read": everyone, "delete": everyone}));
    assert_eq!(eds.call(Method::POST, &members, Some(&bob), Some(&member(&bob_id))).await.0, StatusCode::CREATED);
    assert_eq!(eds.call(Method::GET, &members, None, None).await.0, StatusCode::OK);

    // Alice, the group's admin, keeps adding and removing to herself and lets Bob see who is in.
    let rules = json!({"read": [{"id": bob_id, "objectType": "users"}]}).to_string();
    let (status, _) = eds.call(Method::POST, &access, Some(&bob), Some(&rules)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "only admins change the rules");
    let (status, set) = eds.call(Method::POST, &access, Some(&alice), Some(&rules)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(set, json!({"create": [], "read": [{"id": bob_id, "objectType": "users"}], "delete": []}));

    let (status, _) = eds.call(Method::POST, &members, Some(&bob), Some(&member(&carol_id))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = eds.call(Method::POST, &members, None, Some(&member(&carol_id))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the anonymous are asked to sign in");
    let (status, listed) = eds.call(Method::GET, &members, Some(&bob), None).await;
    assert_eq!((status, listed["results"].as_array().unwrap().len()), (StatusCode::OK, 1));
    assert_eq!(eds.call(Method::GET, &members, None, None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(eds.call(Method::DELETE, &members, Some(&bob), Some(&member(&bob_id))).await.0, StatusCode::FORBIDDEN);
    assert_eq!(eds.call(Method::POST, &members, Some(&alice), Some(&member(&carol_id))).await.0, StatusCode::CREATED);
    assert_eq!(
        eds.call(Method::POST, &members, Some(&eds.secret), Some(&member(&alice_id))).await.0,
        StatusCode::CREATED
    );
    let (_, count) = eds.call(Method::GET, &format!("{members}?count=1"), Some(&bob), None).await;
    assert_eq!(count, json!({"count": 3}));

    // Bad rules change nothing.
    let (status, body) = eds.call(Method::PUT, &access, Some(&alice), Some(r#"{"admin": []}"#)).await;
    assert_eq!((status, body["errors"][0]["property"].clone()), (StatusCode::BAD_REQUEST, json!("admin")));
    let (_, rules) = eds.call(Method::GET, &access, Some(&alice), None).await;
    assert_eq!(rules["read"], json!([{"id": bob_id, "objectType": "users"}]));
}
