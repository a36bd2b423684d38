//! Security review 2026-12, findings 14, 15 and 18: `include` fan-out, documents nested too deep for a list, and
//! `$inc` overflow.

use reqwest::{Method, StatusCode};
use serde_json::json;

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
