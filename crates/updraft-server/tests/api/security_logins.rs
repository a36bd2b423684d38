//! Findings 4, 6 and 13: a deleted user's tokens and a changed password's other sessions stop working, a refresh
//! token works once however many use it at the same time, and login and sign-up attempts are limited per account
//! and per client address (429 with `Retry-After`).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use updraft_server::config::ServeArgs;

use crate::eds::{Eds, assert_eds_error, eds, eds_with, sign_up};
use crate::helpers::*;

/// A password-grant session of `name` (password `pw`): its access and refresh tokens.
async fn session(eds: &Eds, name: &str, password: &str) -> (String, String) {
    let (status, session) = eds.login(name, password).await;
    assert_eq!(status, StatusCode::OK, "{session}");
    let token = |key: &str| session[key].as_str().unwrap().to_owned();
    (token("access_token"), token("refresh_token"))
}

async fn refresh(eds: &Eds, refresh_token: &str) -> (StatusCode, Value) {
    eds.form("/v1/auth/oauth2/token", &format!("grant_type=refresh_token&refresh_token={refresh_token}"), None).await
}

async fn me(eds: &Eds, token: &str) -> StatusCode {
    eds.call(Method::GET, "/v1/user", Some(token), None).await.0
}

#[tokio::test]
async fn finding_4_a_deleted_users_token_is_refused_everywhere() {
    let eds = eds().await;
    let (token, id) = sign_up(&eds, "ann").await;
    let (_, refresh_token) = session(&eds, "ann", "pw").await;
    let private = json!({"title": "mine", "accessControlList": {"read": [{"id": id, "objectType": "users"}]}});
    let (status, note) = eds.call(Method::POST, "/v1/objects/notes", Some(&token), Some(&private.to_string())).await;
    assert_eq!(status, StatusCode::CREATED, "{note}");
    let note = format!("/v1/objects/notes/{}", note["id"].as_str().unwrap());
    assert_eq!(eds.call(Method::GET, &note, Some(&token), None).await.0, StatusCode::OK);

    let (status, body) = eds.call(Method::DELETE, &format!("/v1/users/{id}"), Some(&eds.secret), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    assert_eq!(me(&eds, &token).await, StatusCode::UNAUTHORIZED);
    let (status, body) = eds.call(Method::GET, &note, Some(&token), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the private object stays closed: {body}");
    assert_eds_error(&body, "Unauthorized");
    let (status, body) = eds.call(Method::POST, "/v1/objects/notes", Some(&token), Some(r#"{"title":"ghost"}"#)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no object is created in a deleted user's name: {body}");
    assert_eq!(refresh(&eds, &refresh_token).await.0, StatusCode::BAD_REQUEST);
    let (status, list) = eds.call(Method::GET, "/v1/objects/notes", Some(&eds.secret), None).await;
    assert_eq!((status, list["results"].as_array().unwrap().len()), (StatusCode::OK, 1), "{list}");
}

#[tokio::test]
async fn finding_4_a_new_password_ends_the_users_other_sessions() {
    let eds = eds().await;
    let (_, id) = sign_up(&eds, "ann").await;
    let (laptop, laptop_refresh) = session(&eds, "ann", "pw").await;
    let (phone, phone_refresh) = session(&eds, "ann", "pw").await;

    let path = format!("/v1/users/{id}");
    let (status, body) = eds.call(Method::PUT, &path, Some(&laptop), Some(r#"{"password":"new pw"}"#)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(me(&eds, &laptop).await, StatusCode::OK, "the session that changed it goes on");
    assert_eq!(me(&eds, &phone).await, StatusCode::UNAUTHORIZED, "another session ends");
    assert_eq!(refresh(&eds, &phone_refresh).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(refresh(&eds, &laptop_refresh).await.0, StatusCode::BAD_REQUEST, "refresh tokens all end");
    assert_eq!(eds.login("ann", "pw").await.0, StatusCode::BAD_REQUEST);
    let (fresh, _) = session(&eds, "ann", "new+pw").await;

    // Changes other than the password end nothing.
    let (status, _) = eds.call(Method::PUT, &path, Some(&laptop), Some(r#"{"firstName":"Ann"}"#)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((me(&eds, &laptop).await, me(&eds, &fresh).await), (StatusCode::OK, StatusCode::OK));

    // The instance secret keeps no session of the user's.
    let (status, _) = eds.call(Method::PUT, &path, Some(&eds.secret), Some(r#"{"password":"third"}"#)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((me(&eds, &laptop).await, me(&eds, &fresh).await), (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED));
}

#[tokio::test]
async fn finding_6_a_refresh_token_works_once_under_concurrent_use() {
    let eds = eds().await;
    sign_up(&eds, "ann").await;
    for round in 0..3 {
        let (_, refresh_token) = session(&eds, "ann", "pw").await;
        let tries = (0..16).map(|_| refresh(&eds, &refresh_token));
        let answers = futures_util::future::join_all(tries).await;
        let won: Vec<_> = answers.iter().filter(|(status, _)| *status == StatusCode::OK).collect();
        assert_eq!(won.len(), 1, "round {round}: exactly one use succeeds: {answers:?}");
        for (status, body) in &answers {
            if *status != StatusCode::OK {
                assert_eq!((*status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
            }
        }
        let successor = won[0].1["refresh_token"].as_str().unwrap();
        assert_eq!(refresh(&eds, successor).await.0, StatusCode::OK, "the one successor works");
    }
}

/// A login's raw answer: status, `Retry-After`, body.
async fn raw_login(eds: &Eds, path: &str, form: &str) -> (StatusCode, Option<u64>, Value) {
    let res = eds
        .app
        .client
        .post(format!("{}{path}", eds.app.base))
        .header("Enginio-Backend-Id", &eds.backend)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form.to_owned())
        .send()
        .await
        .unwrap();
    let retry_after = res.headers().get("retry-after").map(|v| v.to_str().unwrap().parse().unwrap());
    (res.status(), retry_after, res.json().await.unwrap())
}

fn assert_too_many(status: StatusCode, retry_after: Option<u64>, body: &Value) {
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(retry_after.is_some_and(|secs| (1..=60).contains(&secs)), "Retry-After: {retry_after:?}");
    assert_eds_error(body, "TooManyRequests");
}

#[tokio::test]
async fn finding_13_failed_logins_are_limited_per_account() {
    let args = ServeArgs { login_failures_per_minute: Some(3), ..open_args() };
    let eds = eds_with(args).await;
    sign_up(&eds, "ann").await;
    sign_up(&eds, "bob").await;
    let guess = "grant_type=password&username=ann&password=guess";
    for _ in 0..3 {
        let (status, _, body) = raw_login(&eds, "/v1/auth/oauth2/token", guess).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    }
    let (status, retry_after, body) = raw_login(&eds, "/v1/auth/oauth2/token", guess).await;
    assert_too_many(status, retry_after, &body);
    assert_eq!(body["error"], "too_many_requests", "OAuth2 clients read `error`: {body}");
    let (status, retry_after, body) =
        raw_login(&eds, "/v1/auth/oauth2/token", "grant_type=password&username=ann&password=pw").await;
    assert_too_many(status, retry_after, &body);
    assert_eq!(eds.login("bob", "pw").await.0, StatusCode::OK, "other accounts sign in");

    // The account's own login, by its email whatever its case.
    let guess = "grant_type=password&username=ADMIN@example.com&password=guess";
    for _ in 0..3 {
        assert_eq!(raw_login(&eds, "/v1/account/auth/oauth2/token", guess).await.0, StatusCode::BAD_REQUEST);
    }
    let (status, retry_after, body) = raw_login(&eds, "/v1/account/auth/oauth2/token", guess).await;
    assert_too_many(status, retry_after, &body);
}

#[tokio::test]
async fn finding_13_logins_and_sign_ups_are_limited_per_address() {
    // The fixture's account login is the first of four.
    let args = ServeArgs { login_attempts_per_minute: Some(4), ..open_args() };
    let eds = eds_with(args).await;
    let (status, body) = eds.call(Method::POST, "/v1/users", None, Some(r#"{"username":"ann","password":"pw"}"#)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(eds.login("ann", "pw").await.0, StatusCode::OK);
    assert_eq!(eds.login("ann", "pw").await.0, StatusCode::OK);

    let (status, retry_after, body) =
        raw_login(&eds, "/v1/auth/oauth2/token", "grant_type=password&username=ann&password=pw").await;
    assert_too_many(status, retry_after, &body);
    let res = eds
        .app
        .client
        .post(format!("{}/v1/users", eds.app.base))
        .header("Enginio-Backend-Id", &eds.backend)
        .body(r#"{"username":"bob","password":"pw"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().contains_key("retry-after"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body,
        json!({"errors": [{"message": "Too many attempts, try again later", "reason": "TooManyRequests"}]})
    );
    // Signed-in work goes on.
    assert_eq!(eds.call(Method::GET, "/v1/objects/todos", None, None).await.0, StatusCode::OK);
}

/// Finding 13 under load (bounded, loopback): 32 wrong-password logins at once, limits off so that every one
/// runs argon2. The hashing waits its turn behind the semaphore; health checks keep answering quickly meanwhile,
/// and every login gets its answer.
#[tokio::test]
async fn finding_13_health_stays_green_under_a_flood_of_logins() {
    let args = ServeArgs { login_attempts_per_minute: Some(0), login_failures_per_minute: Some(0), ..open_args() };
    let eds = eds_with(args).await;
    sign_up(&eds, "ann").await;
    let logins: Vec<_> = (0..32)
        .map(|_| {
            let (client, base, backend) = (eds.app.client.clone(), eds.app.base.clone(), eds.backend.clone());
            tokio::spawn(async move {
                let res = client
                    .post(format!("{base}/v1/auth/oauth2/token"))
                    .header("Enginio-Backend-Id", backend)
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body("grant_type=password&username=ann&password=wrong")
                    .send()
                    .await
                    .unwrap();
                res.status()
            })
        })
        .collect();
    let mut slowest = std::time::Duration::ZERO;
    while !logins.iter().all(|login| login.is_finished()) {
        let started = std::time::Instant::now();
        assert_eq!(eds.app.get("/healthz", None).await.0, StatusCode::OK);
        slowest = slowest.max(started.elapsed());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(slowest < std::time::Duration::from_secs(1), "a health check took {slowest:?} during the flood");
    for login in logins {
        assert_eq!(login.await.unwrap(), StatusCode::BAD_REQUEST, "each wrong login is answered");
    }
}
