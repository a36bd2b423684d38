//! Hostile and broken EDS requests: each gets a 4xx in the EDS error form, and nothing is written.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::eds::{Eds, assert_eds_error, eds, encode};

async fn count(eds: &Eds) -> Value {
    eds.call(Method::GET, "/v1/objects/todos?count=1", Some(&eds.secret), None).await.1["count"].clone()
}

#[tokio::test]
async fn bombs_and_wrong_types_change_nothing() {
    let eds = eds().await;
    let (_, todo) = eds.call(Method::POST, "/v1/objects/todos", None, Some(r#"{"title":"milk","n":1}"#)).await;
    let path = format!("/v1/objects/todos/{}", todo["id"].as_str().unwrap());

    let deep = format!("{{\"a\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
    let oversized = json!({"blob": "x".repeat(2 << 20)}).to_string();
    for (method, target, body, status) in [
        (Method::POST, "/v1/objects/todos", deep.as_str(), StatusCode::BAD_REQUEST),
        (Method::PUT, path.as_str(), deep.as_str(), StatusCode::BAD_REQUEST),
        (Method::POST, "/v1/objects/todos", oversized.as_str(), StatusCode::PAYLOAD_TOO_LARGE),
        (Method::PUT, path.as_str(), r#"{"title": "#, StatusCode::BAD_REQUEST),
        (Method::POST, "/v1/objects/todos", r#""just a string""#, StatusCode::BAD_REQUEST),
    ] {
        let (got, body) = eds.call(method, target, None, Some(body)).await;
        assert_eq!(got, status, "{target}: {body}");
        assert!(body["errors"][0]["message"].is_string(), "{body}");
    }

    // Atomic operators are all applied or none: a wrong type anywhere leaves the object as it was.
    let atomic = format!("{path}/atomic");
    for ops in [
        json!({"$inc": {"title": 1}}),
        json!({"$inc": {"n": 1}, "$push": {"title": "x"}}),
        json!({"$frobnicate": {"n": 1}}),
        json!({"$inc": {"n": "one"}}),
    ] {
        let (status, body) = eds.call(Method::PUT, &atomic, None, Some(&ops.to_string())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{ops}: {body}");
        assert_eds_error(&body, "BadRequest");
    }

    // Queries: nesting bombs, unknown operators, bad sorts and includes are refused before any SQL runs.
    let nested = format!("{}{{\"n\":1}}{}", "{\"$and\":[".repeat(500), "]}".repeat(500));
    for (name, value) in [
        ("q", nested.as_str()),
        ("q", r#"{"n":{"$where":"1"}}"#),
        ("q", r#"{"$or":{}}"#),
        ("sort", r#"[{"sortBy":"n","direction":"sideways"}]"#),
        ("sort", r#"{"sortBy":"n"}"#),
        ("include", r#"{"creator":"#),
        ("limit", "1e9"),
        ("offset", "-5"),
    ] {
        let (status, body) =
            eds.call(Method::GET, &format!("/v1/objects/todos?{name}={}", encode(value)), None, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}={value}: {body}");
        assert_eds_error(&body, "BadRequest");
    }

    // Tokens that are not ours, and backends that do not exist.
    let (status, body) = eds.call(Method::GET, "/v1/objects/todos", Some(&"f".repeat(64)), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let res = eds
        .app
        .client
        .get(format!("{}/v1/objects/todos", eds.app.base))
        .header("Enginio-Backend-Id", "../../etc/passwd")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error(), "{}", res.status());

    let (_, unchanged) = eds.call(Method::GET, &path, None, None).await;
    assert_eq!(unchanged, todo, "the object is as it was created");
    assert_eq!(count(&eds).await, json!(1), "and nothing else was written");
}
