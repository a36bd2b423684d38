//! Access defaults per backend (`open`, `locked`) and the review's findings about who may do what with users,
//! usergroups, members, ACLs in update bodies, `required` on update and index budgets (findings 2, 3, 16, 17, 20).
//! The `open` half replays what QtEnginio's own autotests do against a fresh hosted backend.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::eds::{Eds, eds, eds_in, eds_locked, sign_up};
use crate::helpers::{open_args, spawn_in};
use crate::security_edge::Captured;

fn member(id: &str) -> String {
    json!({"id": id, "objectType": "users"}).to_string()
}

fn id(doc: &Value) -> String {
    doc["id"].as_str().unwrap_or_else(|| panic!("no id in {doc}")).to_owned()
}

async fn create(eds: &Eds, path: &str, token: Option<&str>, body: Value) -> Value {
    let (status, doc) = eds.call(Method::POST, path, token, Some(&body.to_string())).await;
    assert_eq!(status, StatusCode::CREATED, "{path}: {doc}");
    doc
}

// -- open: what QtEnginio's autotests expect of a fresh backend --

/// `users_crud`, `deleteTwiceTheSame`: a user created, read, updated and deleted with no credentials at all.
#[tokio::test]
async fn open_backend_lets_anyone_crud_users_as_qtenginio_tests_expect() {
    let eds = eds().await;
    let user = create(&eds, "/v1/users", None, json!({"username": "qt_user", "password": "pw", "age": 1})).await;
    let path = format!("/v1/users/{}", id(&user));
    assert_eq!(eds.call(Method::GET, &path, None, None).await.0, StatusCode::OK);
    let (status, updated) = eds.call(Method::PUT, &path, None, Some(r#"{"age": 2}"#)).await;
    assert_eq!((status, updated["age"].clone()), (StatusCode::OK, json!(2)), "{updated}");
    let (status, updated) =
        eds.call(Method::PUT, &format!("{path}/atomic"), None, Some(r#"{"$inc": {"age": 3}}"#)).await;
    assert_eq!((status, updated["age"].clone()), (StatusCode::OK, json!(5)), "{updated}");
    assert_eq!(eds.call(Method::DELETE, &path, None, None).await.0, StatusCode::OK);
    assert_eq!(eds.call(Method::DELETE, &path, None, None).await.0, StatusCode::NOT_FOUND, "deleted twice");
}

/// `query_usersgroup_crud`, `updateReordered`, `updateAndDeleteReordered`: groups and their members, anonymously.
#[tokio::test]
async fn open_backend_lets_anyone_crud_usergroups_and_members() {
    let eds = eds().await;
    let user = create(&eds, "/v1/users", None, json!({"username": "member", "password": "pw"})).await;
    let group = create(&eds, "/v1/usergroups", None, json!({"name": "qt_group"})).await;
    let path = format!("/v1/usergroups/{}", id(&group));
    let (status, listed) = eds.call(Method::GET, "/v1/usergroups", None, None).await;
    assert_eq!((status, listed["results"].as_array().unwrap().len()), (StatusCode::OK, 1));
    let (status, renamed) = eds.call(Method::PUT, &path, None, Some(r#"{"name": "renamed"}"#)).await;
    assert_eq!((status, renamed["name"].clone()), (StatusCode::OK, json!("renamed")));
    let (status, _) = eds.call(Method::PUT, &format!("{path}/atomic"), None, Some(r#"{"$set": {"n": 1}}"#)).await;
    assert_eq!(status, StatusCode::OK);
    let members = format!("{path}/members");
    assert_eq!(eds.call(Method::POST, &members, None, Some(&member(&id(&user)))).await.0, StatusCode::CREATED);
    let (_, listed) = eds.call(Method::GET, &members, None, None).await;
    assert_eq!(listed["results"][0]["id"], user["id"]);
    assert_eq!(eds.call(Method::DELETE, &members, None, Some(&member(&id(&user)))).await.0, StatusCode::OK);
    assert_eq!(eds.call(Method::DELETE, &path, None, None).await.0, StatusCode::OK);
    assert_eq!(eds.call(Method::DELETE, &path, None, None).await.0, StatusCode::NOT_FOUND);
}

// -- locked --

#[tokio::test]
async fn locked_backend_lets_the_anonymous_only_sign_up_and_sign_in() {
    let eds = eds_locked().await;
    let (alice, alice_id) = sign_up(&eds, "alice").await;
    let (bob, _) = sign_up(&eds, "bob").await;
    let alice_path = format!("/v1/users/{alice_id}");
    for (method, path, body, refused) in [
        (Method::POST, "/v1/objects/todos", r#"{"title": "x"}"#, StatusCode::UNAUTHORIZED),
        (Method::POST, "/v1/usergroups", r#"{"name": "g"}"#, StatusCode::UNAUTHORIZED),
        // Another user is not even there for them.
        (Method::PUT, alice_path.as_str(), r#"{"email": "x@example.com"}"#, StatusCode::NOT_FOUND),
        (Method::DELETE, alice_path.as_str(), "", StatusCode::NOT_FOUND),
    ] {
        let (status, body) = eds.call(method.clone(), path, None, Some(body)).await;
        assert_eq!(status, refused, "{method} {path}: {body}");
    }
    // Users see themselves only; nobody else sees their email.
    let (status, _) = eds.call(Method::PUT, &alice_path, Some(&alice), Some(r#"{"email": "a@example.com"}"#)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(eds.call(Method::GET, &alice_path, Some(&alice), None).await.0, StatusCode::OK);
    assert_eq!(eds.call(Method::GET, &alice_path, Some(&bob), None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(eds.call(Method::GET, &alice_path, None, None).await.0, StatusCode::NOT_FOUND);
    let (_, listed) = eds.call(Method::GET, "/v1/users", None, None).await;
    assert_eq!(listed["results"], json!([]), "the anonymous list no users");
    let (_, listed) = eds.call(Method::GET, "/v1/users", Some(&bob), None).await;
    assert_eq!(listed["results"].as_array().unwrap().len(), 1, "bob lists himself only: {listed}");
    assert_eq!(eds.call(Method::PUT, &alice_path, Some(&bob), Some(r#"{"x": 1}"#)).await.0, StatusCode::NOT_FOUND);
    // What a user creates is its own.
    let todo = create(&eds, "/v1/objects/todos", Some(&alice), json!({"title": "mine"})).await;
    let todo_path = format!("/v1/objects/todos/{}", id(&todo));
    assert_eq!(eds.call(Method::GET, &todo_path, Some(&alice), None).await.0, StatusCode::OK);
    assert_eq!(eds.call(Method::GET, &todo_path, Some(&bob), None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(eds.call(Method::GET, &todo_path, None, None).await.0, StatusCode::NOT_FOUND);
}

/// Finding 2: in a locked backend nobody joins a group, or adds others to it, but its administrators.
#[tokio::test]
async fn finding_2_nobody_joins_a_group_of_a_locked_backend_by_himself() {
    let eds = eds_locked().await;
    let (bob, _) = sign_up(&eds, "bob").await;
    let (eve, eve_id) = sign_up(&eds, "eve").await;
    let staff = create(&eds, "/v1/usergroups", Some(&bob), json!({"name": "staff"})).await;
    let shared =
        json!({"text": "staff only", "accessControlList": {"read": [{"id": id(&staff), "objectType": "usergroups"}]}});
    let secret = create(&eds, "/v1/objects/notes", Some(&bob), shared).await;
    let secret_path = format!("/v1/objects/notes/{}", id(&secret));
    assert_eq!(eds.call(Method::GET, &secret_path, Some(&eve), None).await.0, StatusCode::NOT_FOUND);

    let members = format!("/v1/usergroups/{}/members", id(&staff));
    let (status, _) = eds.call(Method::POST, &members, Some(&eve), Some(&member(&eve_id))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "eve may not even see bob's group");
    let (status, _) = eds.call(Method::POST, &members, None, Some(&member(&eve_id))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(eds.call(Method::GET, &secret_path, Some(&eve), None).await.0, StatusCode::NOT_FOUND);
    let (_, rules) = eds.call(Method::GET, &format!("{members}/access"), Some(&bob), None).await;
    assert_eq!(rules, json!({"create": [], "read": [], "delete": []}));

    // Bob, who created the group, administers it.
    let (status, added) = eds.call(Method::POST, &members, Some(&bob), Some(&member(&eve_id))).await;
    assert_eq!(
        (status, added),
        (StatusCode::CREATED, json!({"id": eve_id, "objectType": "users"})),
        "a ref, not her document"
    );
    assert_eq!(eds.call(Method::GET, &secret_path, Some(&eve), None).await.0, StatusCode::OK);
    let (status, _) = eds.call(Method::DELETE, &members, Some(&eve), Some(&member(&eve_id))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "members do not manage members: the group is bob's");
}

/// Finding 3: a member list shows only the users the caller may read, in both modes.
#[tokio::test]
async fn finding_3_member_lists_hide_users_the_caller_may_not_read() {
    let eds = eds().await;
    let alice = create(
        &eds,
        "/v1/users",
        None,
        json!({"username": "alice", "password": "pw", "email": "alice@secret.example"}),
    )
    .await;
    let (alice_token, _) = {
        let (_, session) = eds.login("alice", "pw").await;
        (session["access_token"].as_str().unwrap().to_owned(), ())
    };
    let only_alice =
        json!({"read": [{"id": id(&alice), "objectType": "users"}], "update": [], "delete": []}).to_string();
    let access = format!("/v1/users/{}/access", id(&alice));
    assert_eq!(eds.call(Method::POST, &access, Some(&alice_token), Some(&only_alice)).await.0, StatusCode::OK);
    assert_eq!(eds.call(Method::GET, &format!("/v1/users/{}", id(&alice)), None, None).await.0, StatusCode::NOT_FOUND);

    let (_, visible) = sign_up(&eds, "visible").await;
    let group = create(&eds, "/v1/usergroups", None, json!({"name": "g"})).await;
    let members = format!("/v1/usergroups/{}/members", id(&group));
    for user in [id(&alice), visible] {
        assert_eq!(
            eds.call(Method::POST, &members, Some(&eds.secret), Some(&member(&user))).await.0,
            StatusCode::CREATED
        );
    }
    let (status, listed) = eds.call(Method::GET, &members, None, None).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&Value> = listed["results"].as_array().unwrap().iter().map(|u| &u["username"]).collect();
    assert_eq!(names, [&json!("visible")], "{listed}");
    assert!(!listed.to_string().contains("alice@secret.example"));
    let (_, count) = eds.call(Method::GET, &format!("{members}?count=1"), None, None).await;
    assert_eq!(count, json!({"count": 1}));
    let (_, listed) = eds.call(Method::GET, &members, Some(&alice_token), None).await;
    assert_eq!(listed["results"].as_array().unwrap().len(), 2, "alice sees herself");
}

/// Finding 16: `accessControlList` in an update is refused, never stored as data; the ACL is unchanged.
#[tokio::test]
async fn finding_16_an_acl_in_an_update_body_is_refused() {
    let eds = eds().await;
    let (alice, alice_id) = sign_up(&eds, "alice").await;
    let todo = create(&eds, "/v1/objects/todos", Some(&alice), json!({"title": "t"})).await;
    let path = format!("/v1/objects/todos/{}", id(&todo));
    let acl = json!({"accessControlList": {"read": [{"id": alice_id, "objectType": "users"}]}}).to_string();
    let (status, body) = eds.call(Method::PUT, &path, Some(&alice), Some(&acl)).await;
    assert_eq!((status, body["errors"][0]["property"].clone()), (StatusCode::BAD_REQUEST, json!("accessControlList")));
    let atomic = json!({"$set": {"accessControlList": {"read": []}}}).to_string();
    let (status, _) = eds.call(Method::PUT, &format!("{path}/atomic"), Some(&alice), Some(&atomic)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, doc) = eds.call(Method::GET, &path, None, None).await;
    assert_eq!(status, StatusCode::OK, "still public, as /access says");
    assert!(doc.get("accessControlList").is_none(), "{doc}");
    let (status, body) = eds.call(Method::PUT, &format!("/v1/users/{alice_id}"), Some(&alice), Some(&acl)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // On sign-up it is the user's ACL, as on objects.
    let private = json!({"username": "p", "password": "pw", "accessControlList": {"read": []}}).to_string();
    let (status, user) = eds.call(Method::POST, "/v1/users", None, Some(&private)).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(user.get("accessControlList").is_none(), "{user}");
    assert_eq!(eds.call(Method::GET, &format!("/v1/users/{}", id(&user)), None, None).await.0, StatusCode::NOT_FOUND);
}

/// Finding 17: `required` holds on update, merge and atomic alike; nothing changes when refused.
#[tokio::test]
async fn finding_17_required_properties_hold_on_update() {
    let eds = eds().await;
    let schema = json!({"name": "tasks", "properties": [{"name": "title", "type": "string"}],
        "validators": [{"property": "title", "type": "required"}]});
    let (status, _) =
        eds.schema(Method::POST, "/v1/object_types", Some(&schema.to_string()), Some(&eds.master_key)).await;
    assert_eq!(status, StatusCode::CREATED);
    let task = create(&eds, "/v1/objects/tasks", None, json!({"title": "t"})).await;
    let path = format!("/v1/objects/tasks/{}", id(&task));
    for (at, body) in [
        (path.clone(), r#"{"title": null}"#),
        (path.clone(), r#"{"title": ""}"#),
        (format!("{path}/atomic"), r#"{"$unset": {"title": ""}}"#),
        (format!("{path}/atomic"), r#"{"$set": {"title": null}}"#),
    ] {
        let (status, body) = eds.call(Method::PUT, &at, None, Some(body)).await;
        assert_eq!(
            (status, body["errors"][0]["property"].clone()),
            (StatusCode::BAD_REQUEST, json!("title")),
            "{body}"
        );
    }
    assert_eq!(eds.call(Method::GET, &path, None, None).await.1["title"], "t");
    assert_eq!(eds.call(Method::PUT, &path, None, Some(r#"{"title": "u"}"#)).await.0, StatusCode::OK);

    let user = create(&eds, "/v1/users", None, json!({"username": "u", "password": "pw"})).await;
    let atomic = format!("/v1/users/{}/atomic", id(&user));
    for body in [r#"{"$unset": {"username": ""}}"#, r#"{"$set": {"password": "x"}}"#, r#"{"$inc": {"username": 1}}"#] {
        assert_eq!(eds.call(Method::PUT, &atomic, None, Some(body)).await.0, StatusCode::BAD_REQUEST, "{body}");
    }
    let (_, login) = eds.login("u", "pw").await;
    assert!(login["access_token"].is_string(), "the password is unchanged");
}

/// Finding 20: indexed properties are bounded per type and per backend.
#[tokio::test]
async fn finding_20_indexes_are_bounded_per_type_and_backend() {
    let eds = eds().await;
    let schema = |name: &str, n: usize| {
        let properties: Vec<Value> =
            (0..n).map(|i| json!({"name": format!("p{i}"), "type": "number", "indexed": true})).collect();
        json!({"name": name, "properties": properties}).to_string()
    };
    let key = Some(eds.master_key.as_str());
    let (status, body) = eds.schema(Method::POST, "/v1/object_types", Some(&schema("wide", 17)), key).await;
    assert_eq!((status, body["errors"][0]["property"].clone()), (StatusCode::BAD_REQUEST, json!("properties")));
    for i in 0..4 {
        let (status, body) =
            eds.schema(Method::POST, "/v1/object_types", Some(&schema(&format!("t{i}"), 16)), key).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, _) = eds.schema(Method::POST, "/v1/object_types", Some(&schema("t4", 1)), key).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the backend's share is used up");
    let (status, _) = eds.schema(Method::PUT, "/v1/object_types/t0", Some(&schema("t0", 16)), key).await;
    assert_eq!(status, StatusCode::OK, "replacing a type counts its own indexes once");
}

/// The account API shows each backend's defaults, takes them at creation, and changes them later.
#[tokio::test]
async fn access_defaults_are_chosen_per_backend_through_the_account_api() {
    let eds = eds().await;
    let app = &eds.app;
    let (_, apps) = app.get("/v1/account/apps", Some(&eds.account)).await;
    let modes: Vec<(&Value, &Value)> = apps["results"][0]["environments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (&e["name"], &e["accessDefaults"]))
        .collect();
    assert_eq!(modes, [(&json!("development"), &json!("open")), (&json!("production"), &json!("locked"))]);

    let body = r#"{"name": "strict", "accessDefaults": {"development": "locked"}}"#;
    let (status, strict) = app.post("/v1/account/apps", Some(&eds.account), body).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(strict["environments"][0]["accessDefaults"], "locked");
    for bad in [r#"{"name": "x", "accessDefaults": "wide"}"#, r#"{"name": "x", "accessDefaults": {"staging": "open"}}"#]
    {
        assert_eq!(app.post("/v1/account/apps", Some(&eds.account), bad).await.0, StatusCode::BAD_REQUEST, "{bad}");
    }

    // Locking the development backend of the first app takes effect at once.
    let environment =
        format!("/v1/account/apps/{}/environments/{}", apps["results"][0]["id"].as_str().unwrap(), eds.backend);
    let put = |token: Option<&str>, body: &'static str| {
        let mut req = app.client.put(format!("{}{environment}", app.base)).body(body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        async move {
            let res = req.send().await.unwrap();
            (res.status(), res.json::<Value>().await.unwrap())
        }
    };
    assert_eq!(put(None, r#"{"accessDefaults": "locked"}"#).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(put(Some(&eds.account), r#"{"accessDefaults": "ajar"}"#).await.0, StatusCode::BAD_REQUEST);
    let (status, changed) = put(Some(&eds.account), r#"{"accessDefaults": "locked"}"#).await;
    assert_eq!((status, changed["accessDefaults"].clone()), (StatusCode::OK, json!("locked")));
    let (status, _) = eds.call(Method::POST, "/v1/usergroups", None, Some(r#"{"name": "g"}"#)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let other = format!("/v1/account/apps/{}/environments/{}", strict["id"].as_str().unwrap(), eds.backend);
    let res = app
        .client
        .put(format!("{}{other}", app.base))
        .bearer_auth(&eds.account)
        .body(r#"{"accessDefaults": "open"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND, "a backend is changed only under its own app");
}

/// A schema overrides either default: a locked backend's `guestbook` lets everyone sign it and read it, while
/// its other types stay locked; and an open backend's `diary` template keeps new entries to their author.
#[tokio::test]
async fn schemas_override_the_access_defaults() {
    let everyone = json!({"id": "*", "objectType": "aclSubject"});
    let creator = json!({"id": "creator", "objectType": "aclSubject"});
    let locked = eds_locked().await;
    let guestbook = json!({"name": "guestbook", "properties": [{"name": "text", "type": "string"}],
        "accessControlList": {"create": [everyone], "read": [everyone]},
        "accessControlListTemplate": {"read": [everyone], "admin": [creator]}});
    let key = Some(locked.master_key.as_str());
    assert_eq!(
        locked.schema(Method::POST, "/v1/object_types", Some(&guestbook.to_string()), key).await.0,
        StatusCode::CREATED
    );
    let entry = create(&locked, "/v1/objects/guestbook", None, json!({"text": "hello"})).await;
    let (status, read) = locked.call(Method::GET, &format!("/v1/objects/guestbook/{}", id(&entry)), None, None).await;
    assert_eq!((status, read["text"].clone()), (StatusCode::OK, json!("hello")));
    assert_eq!(locked.call(Method::POST, "/v1/objects/todos", None, Some("{}")).await.0, StatusCode::UNAUTHORIZED);

    let eds = eds().await;
    let diary = json!({"name": "diary", "properties": [{"name": "text", "type": "string"}],
        "accessControlListTemplate": {"read": [creator], "update": [creator], "delete": [creator], "admin": [creator]}});
    let key = Some(eds.master_key.as_str());
    assert_eq!(
        eds.schema(Method::POST, "/v1/object_types", Some(&diary.to_string()), key).await.0,
        StatusCode::CREATED
    );
    let (alice, _) = sign_up(&eds, "alice").await;
    let page = create(&eds, "/v1/objects/diary", Some(&alice), json!({"text": "dear diary"})).await;
    let path = format!("/v1/objects/diary/{}", id(&page));
    assert_eq!(eds.call(Method::GET, &path, None, None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(eds.call(Method::GET, &path, Some(&alice), None).await.0, StatusCode::OK);
}

/// The operator hears of every open backend when the server starts.
#[tokio::test]
async fn open_backends_are_named_in_a_warning_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let args = || updraft_server::config::ServeArgs { data_dir: Some(dir.path().to_owned()), ..open_args() };
    let eds = eds_in(args(), "development").await;
    let open_backend = eds.backend.clone();
    eds.app.stop().await;

    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt().json().with_writer(move || writer.clone()).finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let args = updraft_server::config::ServeArgs {
        admin_email: Some(crate::eds::EMAIL.into()),
        admin_password: Some(crate::eds::PASSWORD.into()),
        ..args()
    };
    let app = spawn_in(args).await;
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let warning = text.lines().find(|line| line.contains(&open_backend)).unwrap_or_else(|| panic!("{text}"));
    let entry: Value = serde_json::from_str(warning).unwrap();
    assert_eq!(entry["level"], "WARN", "{warning}");
    assert_eq!(entry["fields"]["environment"], "development", "{warning}");
    assert_eq!(text.lines().filter(|line| line.contains("backend is open")).count(), 1, "only the open one: {text}");
    app.stop().await;
}
