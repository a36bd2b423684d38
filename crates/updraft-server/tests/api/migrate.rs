//! `updraft migrate --from-sqlite`: a node's SQLite data copied into PostgreSQL, where a node then serves it
//! whole: the account's app, users who sign in with their passwords, objects found through their indexes and by
//! search, and a change log that goes on from its last number.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{BINARY_EMAIL, BINARY_PASSWORD, free_port, launch};
use crate::test_database;

struct Node {
    base: String,
    client: reqwest::Client,
    backend: String,
}

impl Node {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req =
            self.client.request(method, format!("{}{path}", self.base)).header("Enginio-Backend-Id", &self.backend);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.body(body.to_string());
        }
        let res = req.send().await.unwrap();
        (res.status(), res.json().await.unwrap())
    }
}

async fn account_token(client: &reqwest::Client, base: &str) -> String {
    let login = format!("grant_type=password&username={BINARY_EMAIL}&password={BINARY_PASSWORD}");
    let token: Value = client
        .post(format!("{base}/v1/account/auth/oauth2/token"))
        .body(login)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    token["access_token"].as_str().unwrap().to_owned()
}

/// The gateway admin token of the nodes of these tests.
const ROOT: &str = "root-admin";

/// A SQLite node in `dir` with an app, a schema with indexed properties, 30 todos, a user and a gateway;
/// stopped again. Answers the backend.
async fn fill_a_sqlite_node(dir: &std::path::Path, client: &reqwest::Client) -> String {
    use reqwest::Method;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut sqlite_node = launch(dir, port, &["--admin-token", ROOT], &[], None).await;
    let account = account_token(client, &base).await;
    let app: Value = (client.post(format!("{base}/v1/account/apps")).bearer_auth(&account))
        .body(r#"{"name":"moving"}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let dev = app["environments"].as_array().unwrap().iter().find(|e| e["name"] == "development").unwrap();
    let backend = dev["id"].as_str().unwrap().to_owned();
    let schema = json!({"name": "todos", "properties": [
        {"name": "n", "type": "number", "indexed": true},
        {"name": "title", "type": "string", "indexed": true},
    ]});
    let res = (client.post(format!("{base}/v1/object_types")).header("Enginio-Backend-Id", &backend))
        .bearer_auth(&account)
        .header("Enginio-Backend-MasterKey", dev["masterKeys"][0]["key"].as_str().unwrap())
        .body(schema.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let node = Node { base, client: client.clone(), backend: backend.clone() };
    for n in 0..30 {
        let todo = json!({"n": n, "title": format!("buy item {n}")});
        assert_eq!(node.call(Method::POST, "/v1/objects/todos", None, Some(todo)).await.0, StatusCode::CREATED);
    }
    let ann = json!({"username": "ann", "password": "pw-ann"});
    assert_eq!(node.call(Method::POST, "/v1/users", None, Some(ann)).await.0, StatusCode::CREATED);
    let gateway = json!({"id": "moved", "name": "moved"});
    assert_eq!(node.call(Method::POST, "/v1/gateways", Some(ROOT), Some(gateway)).await.0, StatusCode::CREATED);
    sqlite_node.start_kill().unwrap();
    sqlite_node.wait().await.unwrap();
    backend
}

/// `updraft migrate --from-sqlite`: whether it succeeded, and what it printed (stdout, then stderr).
async fn migrate(database: &str, sqlite: &std::path::Path) -> (bool, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_updraft"))
        .args(["migrate", "--database-url", database, "--from-sqlite"])
        .arg(sqlite)
        .output()
        .await
        .unwrap();
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), printed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_node_moves_to_postgresql_whole() {
    use reqwest::Method;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (dir, client) = (tempfile::tempdir().unwrap(), reqwest::Client::new());
    let backend = fill_a_sqlite_node(dir.path(), &client).await;

    let database = test_database::fresh().await;
    let sqlite = dir.path().join("eds.sqlite3");
    let (copied, printed) = migrate(&database.url(), &sqlite).await;
    assert!(copied && printed.contains("objects: 31"), "{printed}");
    // A second copy into the same database is refused, and changes nothing.
    let (copied, printed) = migrate(&database.url(), &sqlite).await;
    assert!(!copied && printed.contains("already holds apps"), "{printed}");

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let empty_dir = tempfile::tempdir().unwrap();
    let _pg_node = launch(empty_dir.path(), port, &["--admin-token", ROOT], &[], Some(&database.url())).await;
    let node = Node { base: base.clone(), client: client.clone(), backend };
    let login = (client.post(format!("{base}/v1/auth/oauth2/token")).header("Enginio-Backend-Id", &node.backend))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("grant_type=password&username=ann&password=pw-ann")
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK, "ann signs in with her password");
    let q = "/v1/objects/todos?q=%7B%22n%22%3A%7B%22%24gte%22%3A25%7D%7D&sort=%5B%7B%22sortBy%22%3A%22n%22%2C%22direction%22%3A%22asc%22%7D%5D";
    let (status, list) = node.call(Method::GET, q, None, None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let ns: Vec<i64> = list["results"].as_array().unwrap().iter().map(|it| it["n"].as_i64().unwrap()).collect();
    assert_eq!(ns, [25, 26, 27, 28, 29]);
    let search = "/v1/search?objectTypes[]=objects.todos&search=%7B%22phrase%22%3A%22item%2017%22%7D";
    let (status, found) = node.call(Method::GET, search, None, None).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["results"][0]["n"], 17, "{found}");
    let (status, _) = node.call(Method::POST, "/v1/objects/todos", None, Some(json!({"n": 30}))).await;
    assert_eq!(status, StatusCode::CREATED, "a new change follows the copied log");
    let (status, gateway) = node.call(Method::GET, "/v1/gateways/moved", Some(ROOT), None).await;
    assert_eq!((status, gateway["name"].clone()), (StatusCode::OK, json!("moved")), "{gateway}");
}
