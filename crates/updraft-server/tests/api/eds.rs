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

pub(crate) fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

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

#[tokio::test]
async fn acls_decide_who_reads_and_changes_objects() {
    let eds = eds().await;
    for name in ["alice", "bob"] {
        let body = json!({"username": name, "password": "pw"}).to_string();
        eds.call(Method::POST, "/v1/users", None, Some(&body)).await;
    }
    let token = |session: Value| session["access_token"].as_str().unwrap().to_owned();
    let alice = token(eds.login("alice", "pw").await.1);
    let bob = token(eds.login("bob", "pw").await.1);
    let (_, me) = eds.call(Method::GET, "/v1/user", Some(&bob), None).await;
    let bob_id = me["id"].as_str().unwrap().to_owned();

    let (_, note) = eds.call(Method::POST, "/v1/objects/notes", Some(&alice), Some(r#"{"text":"mine"}"#)).await;
    let path = format!("/v1/objects/notes/{}", note["id"].as_str().unwrap());
    let (status, acl) = eds.call(Method::GET, &format!("{path}/access"), None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(acl["read"], json!([{"id": "*", "objectType": "aclSubject"}]));
    assert_eq!(acl["admin"], json!([{"id": note["creator"]["id"], "objectType": "users"}]));
    assert_eq!(acl.as_object().unwrap().len(), 4, "all four lists, always");

    // Alice makes it private to herself: replace the ACL.
    let private = json!({"admin": [{"id": note["creator"]["id"], "objectType": "users"}]}).to_string();
    let (status, _) = eds.call(Method::POST, &format!("{path}/access"), Some(&bob), Some(&private)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "bob is no admin");
    let (status, acl) = eds.call(Method::POST, &format!("{path}/access"), Some(&alice), Some(&private)).await;
    assert_eq!((status, acl["read"].clone()), (StatusCode::OK, json!([])));

    assert_eq!(eds.call(Method::GET, &path, Some(&bob), None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(eds.call(Method::GET, &path, None, None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(eds.call(Method::GET, &path, Some(&alice), None).await.0, StatusCode::OK);
    assert_eq!(eds.call(Method::GET, &path, Some(&eds.secret), None).await.0, StatusCode::OK);
    for (token, seen) in [(None, 0), (Some(&bob), 0), (Some(&alice), 1)] {
        let (_, count) = eds.call(Method::GET, "/v1/objects/notes?count=1", token.map(String::as_str), None).await;
        assert_eq!(count, json!({"count": seen}), "lists are filtered by ACL in the query");
    }

    // Then grants bob read: he sees it but cannot change it.
    let grant = json!({"read": [{"id": bob_id, "objectType": "users"}]}).to_string();
    let (status, acl) = eds.call(Method::PUT, &format!("{path}/access"), Some(&alice), Some(&grant)).await;
    assert_eq!((status, acl["read"].as_array().unwrap().len()), (StatusCode::OK, 1));
    assert_eq!(eds.call(Method::GET, &path, Some(&bob), None).await.0, StatusCode::OK);
    assert_eq!(eds.call(Method::PUT, &path, Some(&bob), Some("{}")).await.0, StatusCode::FORBIDDEN);
    assert_eq!(eds.call(Method::DELETE, &path, Some(&bob), None).await.0, StatusCode::FORBIDDEN);
    let (status, acl) = eds.call(Method::DELETE, &format!("{path}/access"), Some(&alice), Some(&grant)).await;
    assert_eq!((status, acl["read"].clone()), (StatusCode::OK, json!([])));
    assert_eq!(eds.call(Method::GET, &path, Some(&bob), None).await.0, StatusCode::NOT_FOUND);

    let bad = json!({"read": [{"id": "x", "objectType": "robots"}]}).to_string();
    let (status, body) = eds.call(Method::PUT, &format!("{path}/access"), Some(&alice), Some(&bad)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["property"], "read");
    assert_eq!(
        eds.call(Method::DELETE, &format!("{path}/access"), Some(&alice), None).await.0,
        StatusCode::BAD_REQUEST
    );
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

impl Eds {
    pub(crate) async fn schema(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
        master_key: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .app
            .client
            .request(method, format!("{}{path}", self.app.base))
            .header("Enginio-Backend-Id", &self.backend)
            .bearer_auth(&self.account);
        if let Some(key) = master_key {
            req = req.header("Enginio-Backend-MasterKey", key);
        }
        if let Some(body) = body {
            req = req.body(body.to_owned());
        }
        let res = req.send().await.unwrap();
        (res.status(), res.json().await.unwrap())
    }
}

#[tokio::test]
async fn object_types_validate_and_guard_their_collections() {
    let eds = eds().await;
    let (_, alice) = eds.call(Method::POST, "/v1/users", None, Some(r#"{"username":"alice","password":"pw"}"#)).await;
    let alice_id = alice["id"].as_str().unwrap();
    eds.call(Method::POST, "/v1/users", None, Some(r#"{"username":"bob","password":"pw"}"#)).await;
    let token = |session: Value| session["access_token"].as_str().unwrap().to_owned();
    let alice_token = token(eds.login("alice", "pw").await.1);
    let bob_token = token(eds.login("bob", "pw").await.1);

    let schema = json!({
        "name": "diary",
        "properties": [{"name": "text", "type": "string", "indexed": true}],
        "validators": [{"property": "text", "type": "required", "options": {"message": "is required"}}],
        "accessControlList": {
            "read": [{"id": "*", "objectType": "aclSubject"}],
            "create": [{"id": alice_id, "objectType": "users"}],
        },
        "accessControlListTemplate": {
            "read": [{"id": "creator", "objectType": "aclSubject"}],
            "admin": [{"id": "creator", "objectType": "aclSubject"}],
        },
    })
    .to_string();
    assert_eq!(eds.schema(Method::POST, "/v1/object_types", Some(&schema), None).await.0, StatusCode::FORBIDDEN);
    let (status, created) = eds.schema(Method::POST, "/v1/object_types", Some(&schema), Some(&eds.master_key)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert!(!created["properties"].as_array().unwrap().is_empty());
    let (_, listed) = eds.schema(Method::GET, "/v1/object_types", None, Some(&eds.master_key)).await;
    assert_eq!(listed["results"][0]["name"], "diary");

    // Only alice may create, and `text` is required.
    let (status, _) = eds.call(Method::POST, "/v1/objects/diary", Some(&bob_token), Some(r#"{"text":"x"}"#)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        eds.call(Method::POST, "/v1/objects/diary", None, Some(r#"{"text":"x"}"#)).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, body) = eds.call(Method::POST, "/v1/objects/diary", Some(&alice_token), Some("{}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, json!({"errors": [{"message": "is required", "property": "text", "reason": "ValidationFailed"}]}));
    let (status, entry) =
        eds.call(Method::POST, "/v1/objects/diary", Some(&alice_token), Some(r#"{"text":"dear"}"#)).await;
    assert_eq!(status, StatusCode::CREATED);

    // The template makes entries private to their creator.
    let path = format!("/v1/objects/diary/{}", entry["id"].as_str().unwrap());
    assert_eq!(eds.call(Method::GET, &path, Some(&alice_token), None).await.0, StatusCode::OK);
    assert_eq!(eds.call(Method::GET, &path, Some(&bob_token), None).await.0, StatusCode::NOT_FOUND);
    let (_, count) = eds.call(Method::GET, "/v1/objects/diary?count=1", Some(&bob_token), None).await;
    assert_eq!(count, json!({"count": 0}));

    // Deleting the type deletes its objects.
    let (status, _) = eds.schema(Method::DELETE, "/v1/object_types/diary", None, Some(&eds.master_key)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(eds.call(Method::GET, &path, Some(&eds.secret), None).await.0, StatusCode::NOT_FOUND);
    let (status, _) = eds.schema(Method::GET, "/v1/object_types/diary", None, Some(&eds.master_key)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let bad = json!({"name": "x", "properties": [{"name": "a-b", "type": "string"}]}).to_string();
    let (status, body) = eds.schema(Method::POST, "/v1/object_types", Some(&bad), Some(&eds.master_key)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["property"], "properties");
}

/// The ACL matrix: anonymous, owner, member of a permitted group, another user and the instance
/// secret against read, update, delete, admin and list on one object, in both access defaults: an explicit ACL
/// decides alike in both.
#[tokio::test]
async fn acl_matrix() {
    for eds in [eds().await, eds_locked().await] {
        acl_matrix_in(&eds, true, EXPLICIT_ACL).await;
    }
}

/// The same callers against an object with the template's ACL: everyone but admin in an open backend, the
/// creator alone in a locked one.
#[tokio::test]
async fn acl_matrix_of_the_defaults() {
    use StatusCode as S;
    let open = [
        (S::OK, S::OK, S::OK, S::UNAUTHORIZED, 1),
        (S::OK, S::OK, S::OK, S::OK, 1),
        (S::OK, S::OK, S::OK, S::FORBIDDEN, 1),
        (S::OK, S::OK, S::OK, S::FORBIDDEN, 1),
        (S::OK, S::OK, S::OK, S::OK, 1),
    ];
    acl_matrix_in(&eds().await, false, open).await;
    let locked = [
        (S::NOT_FOUND, S::NOT_FOUND, S::NOT_FOUND, S::NOT_FOUND, 0),
        (S::OK, S::OK, S::OK, S::OK, 1),
        (S::NOT_FOUND, S::NOT_FOUND, S::NOT_FOUND, S::NOT_FOUND, 0),
        (S::NOT_FOUND, S::NOT_FOUND, S::NOT_FOUND, S::NOT_FOUND, 0),
        (S::OK, S::OK, S::OK, S::OK, 1),
    ];
    acl_matrix_in(&eds_locked().await, false, locked).await;
}

/// read, update, delete, admin (add to the ACL), count in a list; for anonymous, owner, member, other, secret.
type Matrix = [(StatusCode, StatusCode, StatusCode, StatusCode, u64); 5];

const EXPLICIT_ACL: Matrix = {
    use StatusCode as S;
    [
        (S::NOT_FOUND, S::NOT_FOUND, S::NOT_FOUND, S::NOT_FOUND, 0),
        (S::OK, S::OK, S::OK, S::OK, 1),
        (S::OK, S::FORBIDDEN, S::FORBIDDEN, S::FORBIDDEN, 1),
        (S::NOT_FOUND, S::NOT_FOUND, S::NOT_FOUND, S::NOT_FOUND, 0),
        (S::OK, S::OK, S::OK, S::OK, 1),
    ]
};

async fn acl_matrix_in(eds: &Eds, explicit: bool, expected: Matrix) {
    let mut tokens = std::collections::HashMap::new();
    let mut ids = std::collections::HashMap::new();
    for name in ["owner", "member", "other"] {
        let body = json!({"username": name, "password": "pw"}).to_string();
        let (_, user) = eds.call(Method::POST, "/v1/users", None, Some(&body)).await;
        ids.insert(name, user["id"].as_str().unwrap().to_owned());
        tokens.insert(name, eds.login(name, "pw").await.1["access_token"].as_str().unwrap().to_owned());
    }
    let (_, group) = eds.call(Method::POST, "/v1/usergroups", Some(&eds.secret), Some(r#"{"name":"readers"}"#)).await;
    let gid = group["id"].as_str().unwrap();
    let member = json!({"id": ids["member"], "objectType": "users"}).to_string();
    let (status, _) =
        eds.call(Method::POST, &format!("/v1/usergroups/{gid}/members"), Some(&eds.secret), Some(&member)).await;
    assert_eq!(status, StatusCode::CREATED);
    // Group membership is read at each request, so the member's existing token carries it.

    let fresh = || async {
        let (_, doc) = eds.call(Method::POST, "/v1/objects/matrix", Some(&tokens["owner"]), Some(r#"{"v":1}"#)).await;
        let path = format!("/v1/objects/matrix/{}", doc["id"].as_str().unwrap());
        if explicit {
            let owner = json!({"id": ids["owner"], "objectType": "users"});
            let acl = json!({
                "read": [{"id": gid, "objectType": "usergroups"}],
                "update": [owner.clone()],
                "delete": [owner.clone()],
                "admin": [owner],
            })
            .to_string();
            let (status, _) =
                eds.call(Method::POST, &format!("{path}/access"), Some(&tokens["owner"]), Some(&acl)).await;
            assert_eq!(status, StatusCode::OK);
        }
        path
    };

    let who: [(&str, Option<String>); 5] = [
        ("anonymous", None),
        ("owner", Some(tokens["owner"].clone())),
        ("member", Some(tokens["member"].clone())),
        ("other", Some(tokens["other"].clone())),
        ("secret", Some(eds.secret.clone())),
    ];
    for ((name, token), (read, update, delete, admin, listed)) in who.iter().zip(expected) {
        let token = token.as_deref();
        let path = fresh().await;
        let (_, count) = eds.call(Method::GET, "/v1/objects/matrix?count=1", token, None).await;
        assert_eq!(count["count"], listed, "{name} list");
        assert_eq!(eds.call(Method::GET, &path, token, None).await.0, read, "{name} read");
        assert_eq!(eds.call(Method::PUT, &path, token, Some(r#"{"v":2}"#)).await.0, update, "{name} update");
        let acl = r#"{"read":[{"id":"*","objectType":"aclSubject"}]}"#;
        assert_eq!(eds.call(Method::PUT, &format!("{path}/access"), token, Some(acl)).await.0, admin, "{name} admin");
        assert_eq!(eds.call(Method::DELETE, &path, token, None).await.0, delete, "{name} delete");
        // Clean up for the next subject's count.
        eds.call(Method::DELETE, &path, Some(&eds.secret), None).await;
    }
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

#[tokio::test]
async fn an_acl_sent_with_a_new_object_is_its_acl_not_a_property() {
    let eds = eds().await;
    let (alice, alice_id) = sign_up(&eds, "alice").await;
    let (bob, _) = sign_up(&eds, "bob").await;
    let only_alice = json!({"read": [{"id": alice_id, "objectType": "users"}], "update": [], "delete": [],
                            "admin": [{"id": alice_id, "objectType": "users"}]});
    let body = json!({"title": "secret", "accessControlList": only_alice}).to_string();
    let (status, created) = eds.call(Method::POST, "/v1/objects/todos", Some(&bob), Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert!(created.get("accessControlList").is_none(), "{created}");
    let path = format!("/v1/objects/todos/{}", created["id"].as_str().unwrap());
    assert_eq!(eds.call(Method::GET, &path, Some(&alice), None).await.0, StatusCode::OK);
    assert_eq!(eds.call(Method::GET, &path, Some(&bob), None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(eds.call(Method::GET, &path, None, None).await.0, StatusCode::NOT_FOUND);

    // A malformed one is refused, and nothing is created.
    let bad = json!({"title": "x", "accessControlList": {"read": "everyone"}}).to_string();
    assert_eq!(eds.call(Method::POST, "/v1/objects/todos", Some(&bob), Some(&bad)).await.0, StatusCode::BAD_REQUEST);
    let bad = json!({"title": "x", "accessControlList": {"own": []}}).to_string();
    assert!(eds.call(Method::POST, "/v1/objects/todos", Some(&bob), Some(&bad)).await.0.is_client_error());
    let (_, all) = eds.call(Method::GET, "/v1/objects/todos?count=1", None, Some("")).await;
    assert_eq!(all["count"], 0, "{all}");
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
