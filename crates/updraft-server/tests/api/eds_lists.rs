//! EDS lists over HTTP: filters, sorts, counts, the echoed query, bad queries as 400, and the typed values and
//! nulls the npm SDK sends.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::eds::*;

#[tokio::test]
async fn lists_filter_sort_count_and_echo_the_query() {
    let eds = eds().await;
    for (title, done, n) in [("b", false, 2), ("a", true, 1), ("c", true, 3)] {
        let body = json!({"title": title, "completed": done, "n": n}).to_string();
        assert_eq!(eds.call(Method::POST, "/v1/objects/todos", None, Some(&body)).await.0, StatusCode::CREATED);
    }
    let q = encode(r#"{"completed":true}"#);
    let sort = encode(r#"[{"sortBy":"title","direction":"desc"}]"#);
    let (status, list) = eds.call(Method::GET, &format!("/v1/objects/todos?q={q}&sort={sort}"), None, None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let titles: Vec<&str> = list["results"].as_array().unwrap().iter().map(|t| t["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["c", "a"]);
    assert_eq!(list["query"]["query"], json!({"completed": true}), "the filter is echoed");
    assert_eq!(list["query"]["limit"], 100);

    let (_, count) = eds.call(Method::GET, &format!("/v1/objects/todos?q={q}&count="), None, None).await;
    assert_eq!(count, json!({"count": 2}));
    let (_, page) = eds.call(Method::GET, "/v1/objects/todos?limit=1&offset=1&q=", None, None).await;
    assert_eq!(page["results"][0]["title"], "a", "creation order, second item");
    let (_, clamped) = eds.call(Method::GET, "/v1/objects/todos?limit=400000", None, None).await;
    assert_eq!(clamped["query"]["limit"], 1000);

    // By id: a list with one element, and an empty list once deleted (not 404).
    let id = page["results"][0]["id"].as_str().unwrap().to_owned();
    let by_id = format!("/v1/objects/todos?q={}", encode(&json!({"id": id}).to_string()));
    assert_eq!(eds.call(Method::GET, &by_id, None, None).await.1["results"].as_array().unwrap().len(), 1);
    eds.call(Method::DELETE, &format!("/v1/objects/todos/{id}"), None, None).await;
    let (status, gone) = eds.call(Method::GET, &by_id, None, None).await;
    assert_eq!((status, gone["results"].clone()), (StatusCode::OK, json!([])));

    let (status, none) = eds.call(Method::GET, "/v1/objects/neverdefined", None, None).await;
    assert_eq!((status, none["results"].clone()), (StatusCode::OK, json!([])), "unknown types list empty");
}

#[tokio::test]
async fn bad_queries_are_400_and_users_list_without_passwords() {
    let eds = eds().await;
    for q in [r#"{"n":{"$foo":1}}"#, r#"{"n":"#, r#"{"n":{"$in":5}}"#, r#"{"a-b":1}"#] {
        let (status, body) = eds.call(Method::GET, &format!("/v1/objects/todos?q={}", encode(q)), None, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{q}: {body}");
        assert_eds_error(&body, "BadRequest");
    }
    let (status, _) = eds.call(Method::GET, "/v1/objects/todos?limit=-1", None, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    eds.call(Method::POST, "/v1/users", None, Some(r#"{"username":"logintest","password":"x"}"#)).await;
    eds.call(Method::POST, "/v1/users", None, Some(r#"{"username":"other","password":"x"}"#)).await;
    let q = encode(r#"{"username":{"$in":["logintest"]}}"#);
    let (_, users) = eds.call(Method::GET, &format!("/v1/users?q={q}"), None, None).await;
    assert_eq!(users["results"].as_array().unwrap().len(), 1);
    assert!(users["results"][0].get("password").is_none());
    assert_eq!(users["query"]["query"]["username"], json!({"$in": ["logintest"]}));
    eds.call(Method::POST, "/v1/usergroups", None, Some(r#"{"name":"g"}"#)).await;
    assert_eq!(eds.call(Method::GET, "/v1/usergroups?count=1", None, None).await.1, json!({"count": 1}));
}

/// What the npm SDK sends for `find(null)` and for queries holding its typed values (`Eds.Ref`, `Eds.Time`).
#[tokio::test]
async fn queries_accept_the_npm_sdks_null_and_typed_values() {
    let eds = eds().await;
    let (_, list) = eds.call(Method::POST, "/v1/objects/lists", None, Some(r#"{"name":"groceries"}"#)).await;
    let list_ref = json!({"id": list["id"], "objectType": "objects.lists"});
    let todo = json!({"title": "milk", "list": list_ref, "due": "2014-03-14T08:48:23.000Z"}).to_string();
    eds.call(Method::POST, "/v1/objects/todos", None, Some(&todo)).await;
    eds.call(Method::POST, "/v1/objects/todos", None, Some(r#"{"title":"eggs"}"#)).await;

    let (status, all) = eds.call(Method::GET, "/v1/objects/todos?q=null", None, None).await;
    assert_eq!((status, all["results"].as_array().unwrap().len()), (StatusCode::OK, 2), "{all}");
    assert_eq!(all["query"]["query"], Value::Null, "the echo keeps what was sent");
    let typed = json!({
        "list": {"$type": "ref", "$value": list_ref},
        "due": {"$gt": {"$type": "time", "$value": "2014-01-01T00:00:00.000Z"}},
    });
    let path = format!("/v1/objects/todos?q={}", encode(&typed.to_string()));
    let (status, found) = eds.call(Method::GET, &path, None, None).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    let titles: Vec<&str> = found["results"].as_array().unwrap().iter().map(|t| t["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["milk"]);
}
