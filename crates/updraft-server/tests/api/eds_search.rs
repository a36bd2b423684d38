//! EDS full-text search over HTTP: both clients' request forms, the phrase syntax, relevance, sort, count,
//! include, a schema change re-indexing, and the attacker's paths (another user's objects, an anonymous caller
//! in a locked backend, a collection the caller may not list, a bad phrase).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::eds::*;

async fn define(eds: &Eds, schema: Value) {
    let body = schema.to_string();
    let (status, created) = eds.schema(Method::POST, "/v1/object_types", Some(&body), Some(&eds.master_key)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
}

async fn create(eds: &Eds, path: &str, token: Option<&str>, doc: Value) -> String {
    let (status, created) = eds.call(Method::POST, path, token, Some(&doc.to_string())).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

/// `GET /v1/search?<query>`, the query already encoded.
async fn search(eds: &Eds, query: &str, token: Option<&str>) -> (StatusCode, Value) {
    eds.call(Method::GET, &format!("/v1/search?{query}"), token, None).await
}

fn qt(types: &[&str], search: Value) -> String {
    let types: Vec<String> = types.iter().map(|t| format!("objectTypes[]={}", encode(t))).collect();
    format!("{}&search={}", types.join("&"), encode(&search.to_string()))
}

fn ids(body: &Value) -> Vec<&str> {
    body["results"].as_array().unwrap_or_else(|| panic!("{body}")).iter().map(|o| o["id"].as_str().unwrap()).collect()
}

async fn pets_and_toys(eds: &Eds) -> (String, String, String) {
    let string = |name: &str| json!({"name": name, "type": "string", "indexed": true});
    define(eds, json!({"name": "pets", "properties": [string("name"), string("note"), {"name": "age", "type": "number", "indexed": true}]})).await;
    define(eds, json!({"name": "toys", "properties": [string("label")]})).await;
    let cat = create(eds, "/v1/objects/pets", None, json!({"name": "Tom", "note": "a grey cat", "age": 3})).await;
    let dog = create(eds, "/v1/objects/pets", None, json!({"name": "Rex", "note": "a loud dog"})).await;
    let toy = create(eds, "/v1/objects/toys", None, json!({"label": "Catapult for the café"})).await;
    (cat, dog, toy)
}

#[tokio::test]
async fn both_request_forms_find_words_across_types() {
    let eds = eds().await;
    let (cat, dog, toy) = pets_and_toys(&eds).await;
    let both = ["objects.pets", "objects.toys"];

    let (status, body) =
        search(&eds, &qt(&both, json!({"phrase": "cat", "properties": ["note", "label"]})), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ids(&body), [cat.as_str()]);
    let (_, body) = search(&eds, &qt(&both, json!({"phrase": "cat OR dog"})), None).await;
    let mut found = ids(&body);
    found.sort();
    let mut expected = vec![cat.as_str(), dog.as_str()];
    expected.sort();
    assert_eq!(found, expected);
    // The Node SDK's form: comma lists and a default operator.
    let node = format!(
        "objectTypes={}&search={}",
        encode("objects.pets,objects.toys"),
        encode(&json!({"phrase": "cat* cafe", "properties": "note,label", "defaultOperator": "and"}).to_string())
    );
    let (status, body) = search(&eds, &node, None).await;
    assert_eq!((status, ids(&body)), (StatusCode::OK, vec![toy.as_str()]), "{body}");
    // Text inside words, accents, and the address book's `*PHRASE*`.
    let (_, body) = search(&eds, &qt(&both, json!({"phrase": "*APUL*"})), None).await;
    assert_eq!(ids(&body), [toy.as_str()]);
    let (_, body) = search(&eds, &qt(&both, json!({"phrase": "*Tom*"})), None).await;
    assert_eq!(ids(&body), [cat.as_str()]);
    // count, and a number property is not searched.
    let (_, body) = search(&eds, &format!("{}&count=", qt(&both, json!({"phrase": "a"}))), None).await;
    assert_eq!(body, json!({"count": 2}));
    let (_, body) = search(&eds, &qt(&both, json!({"phrase": "3"})), None).await;
    assert_eq!(ids(&body), Vec::<&str>::new());
}

#[tokio::test]
async fn relevance_orders_unless_a_sort_is_given_and_pages_and_include_work() {
    let eds = eds().await;
    define(&eds, json!({"name": "notes", "properties": [{"name": "text", "type": "string", "indexed": true}]})).await;
    let once =
        create(&eds, "/v1/objects/notes", None, json!({"text": "fox and many other words besides it", "n": 1})).await;
    let thrice = create(&eds, "/v1/objects/notes", None, json!({"text": "fox fox fox", "n": 2})).await;
    let types = ["objects.notes"];
    let (_, body) = search(&eds, &qt(&types, json!({"phrase": "fox"})), None).await;
    assert_eq!(ids(&body), [thrice.as_str(), once.as_str()]);
    let sort = encode(r#"[{"sortBy":"n","direction":"asc"}]"#);
    let (_, body) =
        search(&eds, &format!("{}&sort={sort}&limit=1&offset=1", qt(&types, json!({"phrase": "fox"}))), None).await;
    assert_eq!(ids(&body), [thrice.as_str()]);

    let (token, user) = sign_up(&eds, "ann").await;
    create(&eds, "/v1/objects/notes", Some(&token), json!({"text": "ann writes"})).await;
    let include = encode(r#"{"creator":{}}"#);
    let (_, body) =
        search(&eds, &format!("{}&include={include}", qt(&types, json!({"phrase": "writes"}))), Some(&token)).await;
    assert_eq!(body["results"][0]["creator"]["id"], user.as_str());
    assert_eq!(body["results"][0]["creator"]["username"], "ann", "{body}");
}

#[tokio::test]
async fn a_type_becoming_searched_is_indexed_and_no_longer_searched_is_refused() {
    let eds = eds().await;
    define(&eds, json!({"name": "notes", "properties": [{"name": "text", "type": "string"}]})).await;
    let id = create(&eds, "/v1/objects/notes", None, json!({"text": "written before the index"})).await;
    let types = ["objects.notes"];
    let (status, body) = search(&eds, &qt(&types, json!({"phrase": "written"})), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eds_error(&body, "BadRequest");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("indexed"), "{body}");

    let indexed = json!({"name": "notes", "properties": [{"name": "text", "type": "string", "indexed": true}]});
    let (status, body) =
        eds.schema(Method::PUT, "/v1/object_types/notes", Some(&indexed.to_string()), Some(&eds.master_key)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = search(&eds, &qt(&types, json!({"phrase": "written"})), None).await;
    assert_eq!(ids(&body), [id.as_str()]);
}

#[tokio::test]
async fn results_are_what_the_caller_may_read() {
    let eds = eds_locked().await;
    let string = json!({"name": "text", "type": "string", "indexed": true});
    define(&eds, json!({"name": "diary", "properties": [string]})).await;
    let (ann, _) = sign_up(&eds, "ann").await;
    let (bob, _) = sign_up(&eds, "bob").await;
    let anns = create(&eds, "/v1/objects/diary", Some(&ann), json!({"text": "my secret plan"})).await;
    let bobs = create(&eds, "/v1/objects/diary", Some(&bob), json!({"text": "bob's plan"})).await;
    let types = ["objects.diary"];
    for (token, expected) in [(&ann, &anns), (&bob, &bobs)] {
        let (_, body) = search(&eds, &qt(&types, json!({"phrase": "plan"})), Some(token)).await;
        assert_eq!(ids(&body), [expected.as_str()], "{body}");
        let (_, body) = search(&eds, &format!("{}&count=1", qt(&types, json!({"phrase": "*pla*"}))), Some(token)).await;
        assert_eq!(body["count"], 1);
    }
    // Anonymous: nothing of theirs.
    let (status, body) = search(&eds, &qt(&types, json!({"phrase": "plan"})), None).await;
    assert_eq!((status, ids(&body).len()), (StatusCode::OK, 0), "{body}");
    // Another backend's objects are not found by a search of this one.
    let other = eds_locked().await;
    define(&other, json!({"name": "diary", "properties": [{"name": "text", "type": "string", "indexed": true}]})).await;
    let (_, body) = other
        .call(Method::GET, &format!("/v1/search?{}", qt(&types, json!({"phrase": "plan"}))), Some(&other.secret), None)
        .await;
    assert_eq!(ids(&body).len(), 0, "{body}");

    // A collection whose ACL denies listing denies searching it.
    let closed = json!({"name": "vault", "properties": [{"name": "text", "type": "string", "indexed": true}],
                        "accessControlList": {"read": [], "create": [{"id": "*", "objectType": "aclSubject"}]}});
    define(&eds, closed).await;
    let (status, body) = search(&eds, &qt(&["objects.vault"], json!({"phrase": "plan"})), Some(&ann)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}

#[tokio::test]
async fn bad_searches_are_refused_with_the_eds_error_body() {
    let eds = eds().await;
    pets_and_toys(&eds).await;
    let good = json!({"phrase": "cat"}).to_string();
    for query in [
        format!("search={}", encode(&good)),
        "objectTypes[]=objects.pets".to_owned(),
        format!("objectTypes[]=objects.pets&search={}", encode("not json")),
        format!("objectTypes[]=objects.pets&search={}", encode(r#"{"phrase": 7}"#)),
        format!("objectTypes[]=objects.pets&search={}", encode(r#"{"phrase": "\"open"}"#)),
        format!("objectTypes[]=objects.pets&search={}", encode(r#"{"phrase": "cat AND"}"#)),
        format!("objectTypes[]=objects.pets&search={}", encode(r#"{"phrase": "c*t"}"#)),
        format!("objectTypes[]=objects.pets&search={}", encode(r#"{"phrase": "cat", "defaultOperator": "XOR"}"#)),
        format!(
            "objectTypes[]=objects.pets&search={}",
            encode(r#"{"phrase": "cat", "near": {"loc": {"$near": [1, 2]}}}"#)
        ),
        format!("objectTypes[]=objects.pets&search={}", encode(r#"{"phrase": "cat", "properties": ["no.such"]}"#)),
        format!("objectTypes[]=objects.pets&search={}", encode(r#"{"phrase": "cat", "properties": ["age"]}"#)),
        format!("objectTypes[]=todos&search={}", encode(&good)),
        format!("objectTypes[]=objects.nothing&search={}", encode(&good)),
        format!("objectTypes[]=objects.pets&search={}&sort=nope", encode(&good)),
        format!("objectTypes[]=objects.pets&search={}&limit=-1", encode(&good)),
    ] {
        let (status, body) = search(&eds, &query, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eds_error(&body, "BadRequest");
    }
}
