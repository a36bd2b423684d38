//! EDS users and usergroups: sign-up with exact validation errors, sign-in, refresh and revoke, a user changing
//! itself, groups and their members.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::eds::*;

impl Eds {
    pub(crate) async fn form(&self, path: &str, body: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut req = self
            .app
            .client
            .post(format!("{}{path}", self.app.base))
            .header("Enginio-Backend-Id", &self.backend)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body.to_owned());
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let res = req.send().await.unwrap();
        (res.status(), res.json().await.unwrap())
    }

    pub(crate) async fn login(&self, username: &str, password: &str) -> (StatusCode, Value) {
        self.form(
            "/v1/auth/oauth2/token",
            &format!("grant_type=password&username={username}&password={password}"),
            None,
        )
        .await
    }
}

#[tokio::test]
async fn users_sign_up_with_exact_validation_errors() {
    let eds = eds().await;
    let (status, body) = eds.call(Method::POST, "/v1/users", None, Some(r#"{"username":"john"}"#)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"errors": [{"message": "can't be blank", "property": "password", "reason": "ValidationFailed"}]})
    );

    let (status, john) =
        eds.call(Method::POST, "/v1/users", None, Some(r#"{"username":"john","password":"pw","email":"j@x"}"#)).await;
    assert_eq!(status, StatusCode::CREATED, "{john}");
    assert_eq!(john["objectType"], "users");
    assert_eq!(john["username"], "john");
    assert!(john.get("password").is_none(), "passwords are never returned");

    let (status, body) =
        eds.call(Method::POST, "/v1/users", None, Some(r#"{"username":"john","password":"other"}"#)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"errors": [{"message": "has already been taken", "property": "username", "reason": "ValidationFailed"}]})
    );
    let (status, shown) =
        eds.call(Method::GET, &format!("/v1/users/{}", john["id"].as_str().unwrap()), None, None).await;
    assert_eq!((status, shown), (StatusCode::OK, john));
}

#[tokio::test]
async fn users_sign_in_refresh_and_revoke() {
    let eds = eds().await;
    let (_, john) = eds.call(Method::POST, "/v1/users", None, Some(r#"{"username":"john","password":"s3cret"}"#)).await;
    let john_id = john["id"].as_str().unwrap();

    let (status, body) = eds.login("john", "wrong").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    let (status, body) = eds.login("nobody", "s3cret").await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));

    let (status, session) = eds.login("john", "s3cret").await;
    assert_eq!(status, StatusCode::OK, "{session}");
    assert_eq!(session["token_type"], "bearer");
    assert_eq!(session["expires_in"], 28799);
    assert_eq!(session["enginio_data"]["user"]["username"], "john");
    assert_eq!(session["enginio_data"]["usergroups"], json!([]));
    let access = session["access_token"].as_str().unwrap();

    let (status, me) = eds.call(Method::GET, "/v1/user", Some(access), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((me["id"].as_str(), me["usergroups"].clone()), (Some(john_id), json!([])));
    assert_eq!(eds.call(Method::GET, "/v1/user", None, None).await.0, StatusCode::UNAUTHORIZED);

    // A user's writes carry it as creator and updater.
    let (_, todo) = eds.call(Method::POST, "/v1/objects/todos", Some(access), Some(r#"{"title":"t"}"#)).await;
    assert_eq!(todo["creator"], json!({"id": john_id, "objectType": "users"}));

    let refresh = session["refresh_token"].as_str().unwrap();
    let (status, renewed) =
        eds.form("/v1/auth/oauth2/token", &format!("grant_type=refresh_token&refresh_token={refresh}"), None).await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    let (status, _) =
        eds.form("/v1/auth/oauth2/token", &format!("grant_type=refresh_token&refresh_token={refresh}"), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a refresh token works once");

    let (status, _) = eds.form("/v1/auth/oauth2/revoke", &format!("token={access}"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = eds.call(Method::GET, "/v1/user", Some(access), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a revoked token is refused");
    assert_eds_error(&body, "Unauthorized");
    let newer = renewed["access_token"].as_str().unwrap();
    assert_eq!(eds.call(Method::GET, "/v1/user", Some(newer), None).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_user_changes_only_itself_and_can_change_its_password() {
    // Locked: other users do not even see john; open backends let anyone change users (security_access.rs).
    let eds = eds_locked().await;
    let (_, john) = eds.call(Method::POST, "/v1/users", None, Some(r#"{"username":"john","password":"a"}"#)).await;
    eds.call(Method::POST, "/v1/users", None, Some(r#"{"username":"jane","password":"b"}"#)).await;
    let path = format!("/v1/users/{}", john["id"].as_str().unwrap());
    let (_, session) = eds.login("jane", "b").await;
    let jane = session["access_token"].as_str().unwrap();
    assert_eq!(eds.call(Method::PUT, &path, None, Some(r#"{"firstName":"X"}"#)).await.0, StatusCode::NOT_FOUND);
    assert_eq!(eds.call(Method::PUT, &path, Some(jane), Some(r#"{"firstName":"X"}"#)).await.0, StatusCode::NOT_FOUND);
    assert_eq!(eds.call(Method::DELETE, &path, Some(jane), None).await.0, StatusCode::NOT_FOUND);

    let (_, session) = eds.login("john", "a").await;
    let me = session["access_token"].as_str().unwrap();
    let (status, body) = eds.call(Method::PUT, &path, Some(me), Some(r#"{"username":"jane"}"#)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["message"], "has already been taken");
    let (status, changed) =
        eds.call(Method::PUT, &path, Some(me), Some(r#"{"firstName":"John","password":"new"}"#)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((changed["username"].as_str(), changed["firstName"].as_str()), (Some("john"), Some("John")));
    assert!(changed.get("password").is_none());
    assert_eq!(eds.login("john", "a").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(eds.login("john", "new").await.0, StatusCode::OK);

    assert_eq!(eds.call(Method::DELETE, &path, Some(&eds.secret), None).await.0, StatusCode::OK);
    assert_eq!(eds.login("john", "new").await.0, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn usergroups_hold_members_that_sign_in_with_their_groups() {
    let eds = eds().await;
    let (status, body) = eds.call(Method::POST, "/v1/usergroups", None, Some(r#"{"description":"x"}"#)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"errors": [{"message": "can't be blank", "property": "name", "reason": "ValidationFailed"}]})
    );
    let (status, group) = eds.call(Method::POST, "/v1/usergroups", None, Some(r#"{"name":"admins"}"#)).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(group["objectType"], "usergroups");
    let gid = group["id"].as_str().unwrap();
    // An open backend's usergroup template lets everyone change it, as the hosted service's did.
    let group_path = format!("/v1/usergroups/{gid}");
    let change = Some(r#"{"description":"d"}"#);
    let (status, merged) = eds.call(Method::PUT, &group_path, Some(&eds.secret), change).await;
    assert_eq!((status, merged["name"].as_str()), (StatusCode::OK, Some("admins")));

    let (_, john) = eds.call(Method::POST, "/v1/users", None, Some(r#"{"username":"john","password":"pw"}"#)).await;
    let uid = john["id"].as_str().unwrap();
    let members = format!("/v1/usergroups/{gid}/members");
    let body = json!({"id": uid, "objectType": "users"}).to_string();
    let (status, added) = eds.call(Method::POST, &members, None, Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(added["id"], uid, "the answer is the user object");
    assert_eq!(eds.call(Method::POST, &members, None, Some(&body)).await.0, StatusCode::OK);
    let (_, list) = eds.call(Method::GET, &members, None, None).await;
    assert_eq!(list["results"][0]["username"], "john");
    assert_eq!(eds.call(Method::GET, &format!("{members}?count="), None, None).await.1, json!({"count": 1}));
    let (status, body) = eds.call(Method::GET, &format!("{members}?limit=abc"), None, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eds_error(&body, "BadRequest");

    let refs = json!([{"id": gid, "objectType": "usergroups"}]);
    let (_, session) = eds.login("john", "pw").await;
    assert_eq!(session["enginio_data"]["usergroups"], refs);
    let (_, me) = eds.call(Method::GET, "/v1/user", Some(session["access_token"].as_str().unwrap()), None).await;
    assert_eq!(me["usergroups"], refs);

    let (status, body) = eds.call(Method::DELETE, &members, None, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no body never means every member");
    assert_eq!(body["errors"][0]["property"], "id");
    let unknown = json!({"id": "0123456789abcdef01234567", "objectType": "users"}).to_string();
    assert_eq!(eds.call(Method::POST, &members, None, Some(&unknown)).await.0, StatusCode::NOT_FOUND);
    assert_eq!(eds.call(Method::DELETE, &members, None, Some(&body_of(uid))).await.0, StatusCode::OK);
    assert_eq!(eds.call(Method::DELETE, &members, None, Some(&body_of(uid))).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        eds.call(Method::GET, "/v1/usergroups/0123456789abcdef01234567/members", None, None).await.0,
        StatusCode::NOT_FOUND
    );
}

fn body_of(user: &str) -> String {
    json!({"id": user, "objectType": "users"}).to_string()
}
