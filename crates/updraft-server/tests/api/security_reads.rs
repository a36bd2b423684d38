//! Security review 2026-12, findings 14, 15 and 18: `include` fan-out, documents nested too deep for a list, and
//! `$inc` overflow.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::eds::*;

#[tokio::test]
async fn finding_18_inc_overflow_is_refused_and_changes_nothing() {
    let eds = eds().await;
    let body = r#"{"f": 1.7e308, "n": 1}"#;
    let (status, created) = eds.call(Method::POST, "/v1/objects/counters", None, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let path = format!("/v1/objects/counters/{}", created["id"].as_str().unwrap());
    for update in [json!({"$inc": {"n": 1, "f": 1.7e308}}), json!({"$inc": {"n": i64::MAX}})] {
        let (status, body) = eds.call(Method::PUT, &format!("{path}/atomic"), None, Some(&update.to_string())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{update}: {body}");
        assert_eds_error(&body, "BadRequest");
        assert!(body["errors"][0]["message"].as_str().unwrap().contains("overflows"), "{body}");
    }
    let (_, stored) = eds.call(Method::GET, &path, None, None).await;
    assert_eq!((stored["f"].clone(), stored["n"].clone()), (json!(1.7e308), json!(1)), "{stored}");
}

/// `levels` objects nested in one another, around `1`.
fn nested(levels: usize) -> Value {
    (0..levels).fold(json!(1), |inner, _| json!({ "a": inner }))
}

#[tokio::test]
async fn finding_15_too_deep_a_document_is_refused_and_lists_with_include_keep_working() {
    let eds = eds().await;
    // The review's poison document: 127 levels, accepted before, then every list with `include` failed.
    let poison = "{\"a\":".repeat(127) + "1" + &"}".repeat(127);
    let (status, body) = eds.call(Method::POST, "/v1/objects/deep", None, Some(&poison)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("at most 100 levels"), "{body}");
    let (_, count) = eds.call(Method::GET, "/v1/objects/deep?count=1", None, None).await;
    assert_eq!(count["count"], 0, "nothing stored");

    // The deepest document allowed, then an update that would make it deeper.
    let deepest = json!({ "a": nested(99) }).to_string();
    let (status, created) = eds.call(Method::POST, "/v1/objects/deep", None, Some(&deepest)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let path = format!("/v1/objects/deep/{}", created["id"].as_str().unwrap());
    let too_deep = json!({"a": nested(100)}).to_string();
    let (status, body) = eds.call(Method::PUT, &path, None, Some(&too_deep)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let push = json!({"$push": {"list": nested(99)}}).to_string();
    let (status, body) = eds.call(Method::PUT, &format!("{path}/atomic"), None, Some(&push)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let include = encode(r#"{"x":{}}"#);
    let (status, list) = eds.call(Method::GET, &format!("/v1/objects/deep?include={include}"), None, None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["results"][0]["a"], nested(99));
}

#[tokio::test]
async fn finding_14_include_names_at_most_16_properties() {
    let eds = eds().await;
    let keys = |n: usize| {
        let map: serde_json::Map<String, Value> = (0..n).map(|i| (format!("r{i}"), json!({}))).collect();
        encode(&Value::Object(map).to_string())
    };
    let (status, body) = eds.call(Method::GET, &format!("/v1/objects/many?include={}", keys(17)), None, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eds_error(&body, "BadRequest");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("at most 16 properties"), "{body}");
    let (status, body) = eds.call(Method::GET, &format!("/v1/objects/many?include={}", keys(16)), None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn finding_14_include_expands_at_most_1000_refs_per_answer_and_keeps_its_meaning() {
    let eds = eds().await;
    let (alice, alice_id) = sign_up(&eds, "alice").await;
    let (_, public) = eds.call(Method::POST, "/v1/objects/targets", None, Some(r#"{"t":"public"}"#)).await;
    let only_alice = json!({"read": [{"id": alice_id, "objectType": "users"}], "update": [], "delete": [],
                            "admin": [{"id": alice_id, "objectType": "users"}]});
    let body = json!({"t": "private", "accessControlList": only_alice}).to_string();
    let (status, private) = eds.call(Method::POST, "/v1/objects/targets", Some(&alice), Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{private}");
    let as_ref = |doc: &Value| json!({"id": doc["id"], "objectType": "objects.targets"});
    let missing = json!({"id": "0123456789abcdef01234567", "objectType": "objects.targets"});
    // 63 objects with 16 refs each: 1008 refs.
    let mut refs = serde_json::Map::new();
    refs.insert("r0".into(), as_ref(&public));
    refs.insert("r1".into(), as_ref(&private));
    refs.insert("r2".into(), missing.clone());
    for i in 3..16 {
        refs.insert(format!("r{i}"), as_ref(&public));
    }
    let body = Value::Object(refs).to_string();
    for _ in 0..63 {
        let (status, created) = eds.call(Method::POST, "/v1/objects/many", None, Some(&body)).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
    }
    let include: serde_json::Map<String, Value> = (0..16).map(|i| (format!("r{i}"), json!({}))).collect();
    let include = encode(&Value::Object(include).to_string());

    let (status, body) = eds.call(Method::GET, &format!("/v1/objects/many?include={include}"), None, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("at most 1000"), "{body}");

    // 62 of them: 992 refs. A ref the caller may not read, or to nothing, stays a plain ref.
    let page = format!("/v1/objects/many?limit=62&include={include}");
    let (status, anonymous) = eds.call(Method::GET, &page, None, None).await;
    assert_eq!(status, StatusCode::OK, "{anonymous}");
    let results = anonymous["results"].as_array().unwrap();
    assert_eq!(results.len(), 62);
    for doc in results {
        assert_eq!(doc["r0"]["t"], "public");
        assert_eq!(doc["r15"]["t"], "public");
        assert_eq!(doc["r1"], as_ref(&private));
        assert_eq!(doc["r2"], missing);
    }
    let (status, as_alice) = eds.call(Method::GET, &page, Some(&alice), None).await;
    assert_eq!(status, StatusCode::OK, "{as_alice}");
    assert_eq!(as_alice["results"][61]["r1"]["t"], "private");
    assert_eq!(as_alice["results"][61]["r2"], missing);

    // One object: the same expansion.
    let id = results[0]["id"].as_str().unwrap();
    let (status, one) =
        eds.call(Method::GET, &format!("/v1/objects/many/{id}?include={include}"), Some(&alice), None).await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!((one["r0"]["t"].clone(), one["r1"]["t"].clone()), (json!("public"), json!("private")));
}
