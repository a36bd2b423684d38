//! Pre-1.0 QtEnginio: `/identity` logins answer a `sessionToken`, which later calls send as
//! `Enginio-Backend-Session` instead of a bearer.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::eds::{EMAIL, Eds, PASSWORD, eds};

async fn post_json(eds: &Eds, path: &str, headers: &[(&str, &str)], body: &Value) -> (StatusCode, Value) {
    let mut req = eds.app.client.post(format!("{}{path}", eds.app.base)).body(body.to_string());
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let res = req.send().await.unwrap();
    (res.status(), res.json().await.unwrap())
}

#[tokio::test]
async fn the_account_and_users_sign_in_with_sessions() {
    let eds = eds().await;
    let (status, body) =
        post_json(&eds, "/v1/account/auth/identity", &[], &json!({"email": EMAIL, "password": "wrong"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) =
        post_json(&eds, "/v1/account/auth/identity", &[], &json!({"email": EMAIL, "password": PASSWORD})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let session = body["sessionToken"].as_str().unwrap();
    let res = eds
        .app
        .client
        .get(format!("{}/v1/account/apps", eds.app.base))
        .header("Enginio-Backend-Session", session)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["results"].as_array().unwrap().len(), 1);

    let signup = json!({"username": "ann", "password": "pw"}).to_string();
    let (status, user) = eds.call(Method::POST, "/v1/users", None, Some(&signup)).await;
    assert_eq!(status, StatusCode::CREATED);
    let backend = [("Enginio-Backend-Id", eds.backend.as_str())];
    let (status, body) =
        post_json(&eds, "/v1/auth/identity", &backend, &json!({"username": "ann", "password": "nope"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) =
        post_json(&eds, "/v1/auth/identity", &backend, &json!({"username": "ann", "password": "pw"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["user"]["id"].clone(), body["usergroups"].clone()), (user["id"].clone(), json!([])));
    let session = body["sessionToken"].as_str().unwrap();
    let res = eds
        .app
        .client
        .get(format!("{}/v1/user", eds.app.base))
        .header("Enginio-Backend-Id", &eds.backend)
        .header("Enginio-Backend-Session", session)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["username"], "ann");
}
