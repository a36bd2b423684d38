//! EDS: the account API (token, apps) and objects, as QtEnginio's test harness and clients use them.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use updraft_server::config::ServeArgs;

use crate::helpers::*;

pub(crate) const EMAIL: &str = "admin@example.com";
pub(crate) const PASSWORD: &str = "correct horse";

pub(crate) struct Eds {
    pub(crate) app: TestApp,
    pub(crate) backend: String,
    pub(crate) secret: String,
    pub(crate) master_key: String,
    pub(crate) account: String,
}

async fn account_token(app: &TestApp, password: &str) -> (StatusCode, Value) {
    let res = app
        .client
        .post(format!("{}/v1/account/auth/oauth2/token", app.base))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("grant_type=password&username={EMAIL}&password={}", password.replace(' ', "+")))
        .send()
        .await
        .unwrap();
    (res.status(), res.json().await.unwrap())
}

/// A server with an account and one app; the development backend is used.
pub(crate) async fn eds() -> Eds {
    eds_with(open_args()).await
}

/// [`eds`] with other settings.
pub(crate) async fn eds_with(args: ServeArgs) -> Eds {
    eds_in(args, "development").await
}

/// A server with an account and one app; the production backend (`locked` by default) is used.
pub(crate) async fn eds_locked() -> Eds {
    eds_in(open_args(), "production").await
}

/// A server with an account and one app, using the backend of `environment`.
pub(crate) async fn eds_in(args: ServeArgs, environment: &str) -> Eds {
    let args = ServeArgs { admin_email: Some(EMAIL.into()), admin_password: Some(PASSWORD.into()), ..args };
    let app = spawn_app(args).await;
    let (status, token) = account_token(&app, PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{token}");
    let token = token["access_token"].as_str().unwrap().to_owned();
    let (status, created) = app.post("/v1/account/apps", Some(&token), r#"{"name":"todos"}"#).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let dev = created["environments"].as_array().unwrap().iter().find(|e| e["name"] == environment).unwrap();
    Eds {
        backend: dev["id"].as_str().unwrap().into(),
        secret: dev["secret"].as_str().unwrap().into(),
        master_key: dev["masterKeys"][0]["key"].as_str().unwrap().into(),
        account: token,
        app,
    }
}

impl Eds {
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = self.app.client.request(method, format!("{}{path}", self.app.base));
        req = req.header("Enginio-Backend-Id", &self.backend);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.body(body.to_owned());
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        assert_eq!(res.headers()["content-type"], "application/json", "{path}");
        (status, res.json().await.unwrap())
    }
}

/// Signs a user up with password `pw` and in; answers its access token and id.
pub(crate) async fn sign_up(eds: &Eds, name: &str) -> (String, String) {
    let body = json!({"username": name, "password": "pw"}).to_string();
    let (status, user) = eds.call(Method::POST, "/v1/users", None, Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    let (_, session) = eds.login(name, "pw").await;
    (session["access_token"].as_str().unwrap().to_owned(), user["id"].as_str().unwrap().to_owned())
}

pub(crate) fn assert_eds_error(body: &Value, reason: &str) {
    let errors = body["errors"].as_array().unwrap_or_else(|| panic!("no errors array in {body}"));
    assert_eq!(errors[0]["reason"], reason, "{body}");
    assert!(!errors[0]["message"].as_str().unwrap().is_empty());
}

#[tokio::test]
async fn the_account_logs_in_and_manages_apps() {
    let eds = eds().await;
    let app = &eds.app;
    let (status, body) = account_token(app, "wrong").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert_eds_error(&body, "BadRequest");

    let (_, token) = account_token(app, PASSWORD).await;
    let token = token["access_token"].as_str().unwrap();
    assert_eq!(app.get("/v1/account/apps", None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get("/v1/account/apps", Some("forged")).await.0, StatusCode::UNAUTHORIZED);
    let (status, list) = app.get("/v1/account/apps", Some(token)).await;
    assert_eq!(status, StatusCode::OK);
    let first = &list["results"][0];
    assert_eq!(first["name"], "todos");
    let environments = first["environments"].as_array().unwrap();
    assert_eq!(environments.len(), 2);
    for env in environments {
        assert_eq!(env["id"].as_str().unwrap().len(), 24);
        assert_eq!(env["appId"], first["id"]);
        assert!(!env["masterKeys"][0]["key"].as_str().unwrap().is_empty());
    }
    let app_id = first["id"].as_str().unwrap();
    assert_eq!(app.get(&format!("/v1/account/apps/{app_id}"), Some(token)).await.1["name"], "todos");
    let (status, body) = app.post("/v1/account/apps", Some(token), r#"{"name":"  "}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["errors"][0],
        json!({"message": "can't be blank", "property": "name", "reason": "ValidationFailed"})
    );

    let (status, _) = app.call(Method::DELETE, &format!("/v1/account/apps/{app_id}"), Some(token), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.get(&format!("/v1/account/apps/{app_id}"), Some(token)).await.0, StatusCode::NOT_FOUND);
    // The app's backends are gone with it.
    let (status, body) = eds.call(Method::POST, "/v1/objects/todos", None, Some("{}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eds_error(&body, "NotFound");
}

#[tokio::test]
async fn objects_are_created_read_merged_and_deleted() {
    let eds = eds().await;
    let (status, todo) = eds.call(Method::POST, "/v1/objects/todos", None, Some(r#"{"title":"milk","id":"x"}"#)).await;
    assert_eq!(status, StatusCode::CREATED);
    let id = todo["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 24);
    assert_eq!(todo["objectType"], "objects.todos");
    assert_eq!(todo["title"], "milk");
    let created = todo["createdAt"].as_str().unwrap();
    assert_eq!(created.len(), "2013-06-28T16:38:32.369Z".len());
    assert!(todo.get("creator").is_none(), "anonymous writes have no creator");

    let path = format!("/v1/objects/todos/{id}");
    assert_eq!(eds.call(Method::GET, &path, None, None).await, (StatusCode::OK, todo.clone()));

    let (status, merged) = eds.call(Method::PUT, &path, None, Some(r#"{"completed":true,"createdAt":"1999"}"#)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((merged["title"].clone(), merged["completed"].clone()), (json!("milk"), json!(true)));
    assert_eq!(merged["createdAt"], todo["createdAt"]);
    assert!(merged["updatedAt"].as_str().unwrap() > todo["updatedAt"].as_str().unwrap());

    assert_eq!(eds.call(Method::DELETE, &path, None, None).await, (StatusCode::OK, json!({})));
    let (status, body) = eds.call(Method::GET, &path, None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eds_error(&body, "NotFound");
    let (status, body) = eds.call(Method::PUT, &path, None, Some("{}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eds_error(&body, "NotFound");
}

#[tokio::test]
async fn the_instance_secret_is_accepted_and_other_bearers_refused() {
    let eds = eds().await;
    let (status, _) = eds.call(Method::POST, "/v1/objects/todos", Some(&eds.secret), Some("{}")).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = eds.call(Method::POST, "/v1/objects/todos", Some("not-a-token"), Some("{}")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eds_error(&body, "Unauthorized");
}

#[tokio::test]
async fn bad_requests_get_eds_errors_and_change_nothing() {
    let eds = eds().await;
    let cases: [(&str, &str, StatusCode, &str); 5] = [
        ("/v1/objects/todos", "{\"title\":", StatusCode::BAD_REQUEST, "BadRequest"),
        ("/v1/objects/todos", "[1,2]", StatusCode::BAD_REQUEST, "BadRequest"),
        ("/v1/objects/no-dashes", "{}", StatusCode::BAD_REQUEST, "BadRequest"),
        ("/v1/objects/todos/not-an-id", "{}", StatusCode::NOT_FOUND, "NotFound"),
        ("/v1/objects/todos/0123456789abcdef01234567", "{}", StatusCode::NOT_FOUND, "NotFound"),
    ];
    for (path, body, status, reason) in cases {
        let method = if path.matches('/').count() > 3 { Method::PUT } else { Method::POST };
        let (got, res) = eds.call(method, path, None, Some(body)).await;
        assert_eq!(got, status, "{path} {body}: {res}");
        assert_eds_error(&res, reason);
    }
    let res = eds.app.client.post(format!("{}/v1/objects/todos", eds.app.base)).body("{}").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST, "no Enginio-Backend-Id");
    let res = eds
        .app
        .client
        .post(format!("{}/v1/objects/todos", eds.app.base))
        .header("Enginio-Backend-Id", "0123456789abcdef01234567")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND, "unknown backend");
}

#[tokio::test]
async fn objects_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let args = || ServeArgs {
        data_dir: Some(dir.path().to_owned()),
        admin_email: Some(EMAIL.into()),
        admin_password: Some(PASSWORD.into()),
        ..open_args()
    };
    let app = spawn_in(args()).await;
    let (_, token) = account_token(&app, PASSWORD).await;
    let token = token["access_token"].as_str().unwrap().to_owned();
    let (_, created) = app.post("/v1/account/apps", Some(&token), r#"{"name":"kept"}"#).await;
    let backend = created["environments"][0]["id"].as_str().unwrap().to_owned();
    let res = app
        .client
        .post(format!("{}/v1/objects/notes", app.base))
        .header("Enginio-Backend-Id", &backend)
        .body(r#"{"text":"remember"}"#)
        .send()
        .await
        .unwrap();
    let note: Value = res.json().await.unwrap();
    app.stop().await;

    let app = spawn_in(args()).await;
    // The account token was stored (as a hash) and still works.
    assert_eq!(app.get("/v1/account/apps", Some(&token)).await.0, StatusCode::OK);
    let res = app
        .client
        .get(format!("{}/v1/objects/notes/{}", app.base, note["id"].as_str().unwrap()))
        .header("Enginio-Backend-Id", &backend)
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap(), note);
}

pub(crate) fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

#[tokio::test]
async fn atomic_updates_apply_all_operators_or_none() {
    let eds = eds().await;
    let (_, item) = eds.call(Method::POST, "/v1/objects/carts", None, Some(r#"{"n":1,"tags":["a","b"]}"#)).await;
    let path = format!("/v1/objects/carts/{}/atomic", item["id"].as_str().unwrap());
    let update = r#"{"$inc":{"n":2},"$push":{"tags":"c"},"$pull":{"tags":"a"},"$set":{"title":"t"}}"#;
    let (status, updated) = eds.call(Method::PUT, &path, None, Some(update)).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!((updated["n"].clone(), updated["tags"].clone()), (json!(3), json!(["b", "c"])));
    assert!(updated["updatedAt"].as_str().unwrap() > item["updatedAt"].as_str().unwrap());

    for bad in [r#"{"$rename":{"n":"m"}}"#, r#"{"$inc":{"tags":1}}"#, r#"{"$set":{"id":"x"}}"#, "[]"] {
        let (status, body) = eds.call(Method::PUT, &path, None, Some(bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eds_error(&body, "BadRequest");
    }
    let (_, unchanged) =
        eds.call(Method::GET, &format!("/v1/objects/carts/{}", item["id"].as_str().unwrap()), None, None).await;
    assert_eq!(unchanged, updated, "refused updates changed nothing");
    let missing = "/v1/objects/carts/0123456789abcdef01234567/atomic";
    assert_eq!(eds.call(Method::PUT, missing, None, Some(r#"{"$inc":{"n":1}}"#)).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn typed_values_are_stored_plain() {
    let eds = eds().await;
    let (_, list) = eds.call(Method::POST, "/v1/objects/lists", None, Some(r#"{"name":"l"}"#)).await;
    let list_ref = json!({"id": list["id"], "objectType": "objects.lists"});
    let body = json!({
        "list": {"$type": "ref", "$value": list_ref},
        "due": {"$type": "time", "$value": "2014-03-14T08:48:23.000Z"},
    })
    .to_string();
    let (status, todo) = eds.call(Method::POST, "/v1/objects/todos", None, Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!((todo["list"].clone(), todo["due"].clone()), (list_ref.clone(), json!("2014-03-14T08:48:23.000Z")));
    // Ref equality works on the stored form.
    let q = encode(&json!({"list": list_ref}).to_string());
    let (_, found) = eds.call(Method::GET, &format!("/v1/objects/todos?q={q}"), None, None).await;
    assert_eq!(found["results"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn include_expands_refs_the_caller_may_read() {
    let eds = eds().await;
    eds.call(Method::POST, "/v1/users", None, Some(r#"{"username":"ann","password":"pw"}"#)).await;
    let token = eds.login("ann", "pw").await.1["access_token"].as_str().unwrap().to_owned();
    let (_, todo) = eds.call(Method::POST, "/v1/objects/todos", Some(&token), Some(r#"{"title":"t"}"#)).await;
    let include = encode(r#"{"creator":{}}"#);
    let (_, shown) = eds
        .call(Method::GET, &format!("/v1/objects/todos/{}?include={include}", todo["id"].as_str().unwrap()), None, None)
        .await;
    assert_eq!(shown["creator"]["username"], "ann", "{shown}");
    let (_, list) = eds.call(Method::GET, &format!("/v1/objects/todos?include={include}"), None, None).await;
    assert_eq!(list["results"][0]["creator"]["username"], "ann");
    let (_, plain) = eds.call(Method::GET, "/v1/objects/todos", None, None).await;
    assert!(plain["results"][0]["creator"].get("username").is_none(), "no include, no expansion");
    let (status, _) = eds.call(Method::GET, "/v1/objects/todos?include=%5B1%5D", None, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
