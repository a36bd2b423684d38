//! EDS lists served by indexes: the answers of the indexed shapes, the order of a list without a sort, and
//! `explain`, which only the instance secret may ask for.

use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::eds::*;

fn url(q: Value, sort: Value, extra: &str) -> String {
    let q = urlencoding(&q.to_string());
    let sort = urlencoding(&sort.to_string());
    format!("/v1/objects/items?q={q}&sort={sort}&limit=5{extra}")
}

fn urlencoding(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn ns(list: &Value) -> Vec<i64> {
    list["results"].as_array().unwrap_or_else(|| panic!("{list}")).iter().map(|it| it["n"].as_i64().unwrap()).collect()
}

/// Twelve items: `n` 0..12 in reverse creation order, `k = n % 3`, `owner` a ref to one of two users.
async fn items(eds: &Eds) {
    let schema = json!({"name": "items", "properties": [
        {"name": "n", "type": "number", "indexed": true},
        {"name": "k", "type": "number", "indexed": true},
        {"name": "owner", "type": "ref", "indexed": true},
        {"name": "title", "type": "string", "indexed": true},
    ]})
    .to_string();
    let (status, body) = eds.schema(Method::POST, "/v1/object_types", Some(&schema), Some(&eds.master_key)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for n in (0..12).rev() {
        let owner = json!({"id": format!("u{}", n % 2), "objectType": "users"});
        let body = json!({"n": n, "k": n % 3, "owner": owner, "title": format!("item {n}")}).to_string();
        let (status, created) = eds.call(Method::POST, "/v1/objects/items", None, Some(&body)).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
    }
}

#[tokio::test]
async fn indexed_shapes_answer_like_the_query_language_says() {
    let eds = eds().await;
    items(&eds).await;
    let get = |path: String| {
        let eds = &eds;
        async move {
            let (status, body) = eds.call(Method::GET, &path, None, None).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            body
        }
    };
    let asc = |key: &str| json!([{"sortBy": key, "direction": "asc"}]);
    let desc = |key: &str| json!([{"sortBy": key, "direction": "desc"}]);

    assert_eq!(ns(&get(url(json!({"n": {"$gte": 7}}), asc("n"), "")).await), [7, 8, 9, 10, 11]);
    assert_eq!(ns(&get(url(json!({"n": {"$gt": 2, "$lte": 5}}), desc("n"), "")).await), [5, 4, 3]);
    assert_eq!(ns(&get(url(json!({"k": {"$in": [1, 2]}, "n": {"$lt": 6}}), asc("n"), "")).await), [1, 2, 4, 5]);
    // The Todo list: ref equality, newest first (n was created in descending order).
    let owner = json!({"owner": {"id": "u1", "objectType": "users"}});
    assert_eq!(ns(&get(url(owner.clone(), desc("createdAt"), "")).await), [1, 3, 5, 7, 9]);
    assert_eq!(ns(&get(url(json!({"title": {"$regex": "^item 1"}}), asc("n"), "")).await), [1, 10, 11]);
    let (_, count) =
        eds.call(Method::GET, &url(json!({"n": {"$gte": 3, "$lt": 9}}), json!([]), "&count=1"), None, None).await;
    assert_eq!(count, json!({"count": 6}));
    assert_eq!(ns(&get(url(json!({"k": 99}), json!([]), "")).await), Vec::<i64>::new());

    // Without a sort, a list comes in the order of the index serving its filter (as Enginio's MongoDB did), so
    // that a page of a large match is its first rows: here by `n`, and within one value by creation.
    assert_eq!(ns(&get(url(json!({"n": {"$lt": 4}}), json!([]), "")).await), [0, 1, 2, 3]);
    assert_eq!(ns(&get(url(json!({"k": 0}), json!([]), "")).await), [9, 6, 3, 0]);
    // With no such condition, in creation order.
    assert_eq!(ns(&get(url(json!({}), json!([]), "")).await), [11, 10, 9, 8, 7]);

    // An array in an indexed property: conditions on it also look into arrays, still right.
    let (status, _) = eds.call(Method::POST, "/v1/objects/items", None, Some(r#"{"n":[100,3]}"#)).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(ns(&get(url(json!({"n": 3, "k": {"$exists": true}}), json!([]), "")).await), [3]);
    let (_, list) = eds.call(Method::GET, &url(json!({"n": {"$gte": 99}}), asc("n"), ""), None, None).await;
    assert_eq!(list["results"][0]["n"], json!([100, 3]), "{list}");
}

#[tokio::test]
async fn explain_shows_the_plan_to_the_instance_secret_only() {
    let eds = eds().await;
    let postgres = crate::test_database::server_url().is_some();
    if postgres {
        // PostgreSQL keeps every collection in one table and weighs the whole of it: with a dozen rows in all, a
        // scan is the right plan. Other collections' rows make the collection's partial index the cheaper read.
        let eds = &eds;
        let fill = (0..1500).map(|n| async move {
            let body = json!({"n": n}).to_string();
            eds.call(Method::POST, "/v1/objects/filler", None, Some(&body)).await.0
        });
        let created = futures_util::stream::iter(fill).buffer_unordered(16).collect::<Vec<_>>().await;
        assert!(created.iter().all(|status| *status == StatusCode::CREATED));
    }
    items(&eds).await;
    let path = url(json!({"n": {"$gte": 5}}), json!([{"sortBy": "n", "direction": "asc"}]), "&explain=1");
    let (status, body) = eds.call(Method::GET, &path, Some(&eds.secret), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let plan: Vec<&str> = body["plan"].as_array().unwrap().iter().map(|it| it.as_str().unwrap()).collect();
    if postgres {
        // PostgreSQL's EXPLAIN: the collection read through an index, never a scan of the table. (Which index
        // is the planner's call by cost: for a dozen rows, a sort of the collection's rows is as good as a walk of
        // the key index; crates/updraft-query/tests/pg checks the key index's use at 20,000 rows.)
        assert!(plan.iter().any(|it| it.contains("Index Scan using")), "{body}");
        assert!(!plan.iter().any(|it| it.contains("Seq Scan")), "{body}");
    } else {
        assert!(plan[0].starts_with("SEARCH objects USING INDEX") && plan[0].contains(":objects.items:n "), "{body}");
        assert!(!plan.iter().any(|it| it.contains("TEMP B-TREE") || it.starts_with("SCAN objects")), "{body}");
    }
    assert_eq!(body["indexed"], json!([{"property": "n", "holdsArrays": false}]));
    let (status, body) = eds.call(Method::GET, &format!("{path}&count=1"), Some(&eds.secret), None).await;
    assert_eq!(status, StatusCode::OK);
    if postgres {
        assert!(body["plan"].as_array().unwrap().iter().any(|it| it.as_str().unwrap().contains("Index")), "{body}");
        assert!(!body["plan"].to_string().contains("Seq Scan"), "{body}");
    } else {
        assert!(body["plan"][0].as_str().unwrap().contains("COVERING INDEX"), "{body}");
    }

    // The plan names the backend's indexes: not for users, nor for anonymous callers.
    let (token, _) = sign_up(&eds, "alice").await;
    let (status, body) = eds.call(Method::GET, &path, Some(&token), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eds_error(&body, "AccessDenied");
    let (status, body) = eds.call(Method::GET, &path, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}
