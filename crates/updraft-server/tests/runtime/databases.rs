//! Managed databases (MDB) end to end: made through the platform API on the machine's PostgreSQL and Redis,
//! attached to a pushed app that then reads and writes its own database, stopped, started and deleted.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{APPS_DOMAIN, Server, Tree, eventually};

const MDB: [&str; 4] =
    ["--mdb-postgres-url", "postgres://postgres@127.0.0.1:5432/postgres", "--mdb-redis-url", "redis://127.0.0.1:6379"];

/// A request to the app's host with a JSON body.
async fn app_call(server: &Server, app: &str, method: Method, path: &str, body: Option<Value>) -> (StatusCode, String) {
    let mut request =
        server.client.request(method, format!("{}{path}", server.base)).header("Host", format!("{app}.{APPS_DOMAIN}"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

/// A name no other run uses: instances live on servers shared by every test and every run.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{prefix}-{:x}{nanos:x}", std::process::id())
}

async fn env_vars(server: &Server, app: &str) -> Value {
    let (status, vars) = server.call(Method::GET, &format!("/v1/apps/{app}/env_vars"), None).await;
    assert_eq!(status, StatusCode::OK, "{vars}");
    vars
}

#[tokio::test]
async fn a_pushed_app_uses_the_postgres_database_attached_to_it() {
    let server = Server::start_with(&MDB).await;
    let app = server.create_app("todos").await;
    let (pushed, output) = Tree::of_example("mar-python").await.push(&server.git_url(&app, &server.token)).await;
    assert!(pushed, "{output}");
    eventually(&server, &app, 5, |body| body.contains("Hello")).await;

    let name = unique("todo-db");
    let body = json!({"name": name, "serviceProviderId": "mdb", "config": {"serviceImage": "qtcs/postgresql:9.3"}});
    let (status, instance) = server.call(Method::POST, "/v1/accounts/default/instances", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{instance}");
    let id = instance["id"].as_str().unwrap().to_owned();
    assert_eq!(id, format!("mdb-local-1-{name}"));
    let (_, listed) = server.call(Method::GET, "/v1/accounts/default/instances?provider=mdb", None).await;
    assert_eq!(listed["results"][0]["id"], id.as_str(), "{listed}");
    let (_, apps) = server.call(Method::GET, "/v1/accounts/default/instances?provider=mar", None).await;
    assert_eq!(apps["results"].as_array().unwrap().len(), 1, "{apps}");

    let (status, service) = server.call(Method::GET, &format!("/v1/services/{id}"), None).await;
    assert_eq!(status, StatusCode::OK, "{service}");
    assert_eq!(service["state"], "running");
    assert_eq!((service["ip_address"].as_str(), service["port"].as_u64()), (Some("127.0.0.1"), Some(5432)));
    let role = service["username"].as_str().unwrap().to_owned();
    assert!(!service["password"].as_str().unwrap().is_empty());

    // Attached, the app restarts with DATABASE_URL and keeps its rows in its own database, as its own role.
    let (status, attached) =
        server.call(Method::POST, &format!("/v1/apps/{app}/services"), Some(json!({"id": id}))).await;
    assert_eq!(status, StatusCode::CREATED, "{attached}");
    assert_eq!(env_vars(&server, &app).await["DATABASE_URL"], service["url"]);
    let (status, todos) = app_call(&server, &app, Method::POST, "/todos", Some(json!({"title": "milk"}))).await;
    assert_eq!(status, StatusCode::OK, "{todos}");
    let todos: Value = serde_json::from_str(&todos).unwrap();
    assert_eq!(todos, json!({"todos": ["milk"], "user": role}));

    // Stopped, the database refuses the app; started, the rows are there.
    let (status, _) = server.call(Method::POST, &format!("/v1/services/{id}/stop"), Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app_call(&server, &app, Method::GET, "/todos", None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let (_, service) = server.call(Method::POST, &format!("/v1/services/{id}/start"), Some(json!({}))).await;
    assert_eq!(service["state"], "running");
    let (status, todos) = app_call(&server, &app, Method::GET, "/todos", None).await;
    assert_eq!((status, todos.contains("milk")), (StatusCode::OK, true), "{todos}");
    let (_, logs) = server.call(Method::GET, &format!("/v1/services/{id}/logs"), None).await;
    let lines: Vec<&str> = logs["results"].as_array().unwrap().iter().map(|l| l["log"].as_str().unwrap()).collect();
    assert_eq!(lines, ["created", &format!("attached to {app} as DATABASE_URL"), "stopped", "started"]);

    // Without the account's token, nothing is shown or changed.
    let anonymous = server.client.get(format!("{}/v1/services/{id}", server.base)).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let forged = server.client.post(format!("{}/v1/services/{id}/stop", server.base)).bearer_auth("forged");
    assert_eq!(forged.send().await.unwrap().status(), StatusCode::UNAUTHORIZED);

    // Deleted, the app loses the URL and the server the role.
    let (status, _) = server.call(Method::DELETE, &format!("/v1/instances/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(env_vars(&server, &app).await.get("DATABASE_URL").is_none());
    let (status, _) = server.call(Method::GET, &format!("/v1/services/{id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let roles = tokio::process::Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-tAc"])
        .arg(format!("SELECT count(*) FROM pg_roles WHERE rolname = '{role}'"))
        .output()
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&roles.stdout).trim(), "0");
}

#[tokio::test]
async fn redis_instances_the_npm_way_and_bad_requests() {
    let server = Server::start_with(&MDB).await;
    let app = server.create_app("cache").await;
    let name = unique("cache");
    // The npm SDK makes databases as `mar` instances of type `service_container`.
    let body = json!({"name": name, "serviceProviderId": "mar",
        "config": {"runtimeType": "service_container", "serviceImage": "qtcs/redis:2.8", "runtimeSize": 2}});
    let (status, instance) = server.call(Method::POST, "/v1/accounts/default/instances", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{instance}");
    let id = instance["id"].as_str().unwrap().to_owned();
    let (_, service) = server.call(Method::GET, &format!("/v1/services/{id}"), None).await;
    assert!(service["url"].as_str().unwrap().starts_with("redis://mdb_cache_"), "{service}");
    assert_eq!(service["database"], format!("{}:", service["username"].as_str().unwrap()));

    // An app with no release yet takes the variable for its first one.
    let attach = json!({"id": id, "variable": "CACHE_URL"});
    let (status, _) = server.call(Method::POST, &format!("/v1/apps/{app}/services"), Some(attach)).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(env_vars(&server, &app).await["CACHE_URL"], service["url"]);
    let (_, attached) = server.call(Method::GET, &format!("/v1/apps/{app}/services"), None).await;
    assert_eq!(attached, json!({"results": [{"id": id, "variable": "CACHE_URL"}]}));
    let (status, _) = server.call(Method::DELETE, &format!("/v1/apps/{app}/services/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(env_vars(&server, &app).await.get("CACHE_URL").is_none());

    for (body, expected) in [
        (json!({"name": "x", "serviceProviderId": "mdb", "config": {"serviceImage": "qtcs/mysql:5.6"}}), 422),
        (json!({"name": "../x", "serviceProviderId": "mdb", "config": {"serviceImage": "redis"}}), 422),
        (json!({"name": name, "serviceProviderId": "mdb", "config": {"serviceImage": "redis"}}), 409),
        (json!({"name": "x", "serviceProviderId": "nope"}), 422),
    ] {
        let (status, answer) = server.call(Method::POST, "/v1/accounts/default/instances", Some(body.clone())).await;
        assert_eq!(status.as_u16(), expected, "{body}: {answer}");
    }
    let bad = json!({"id": id, "variable": "NOT-A-NAME"});
    let (status, _) = server.call(Method::POST, &format!("/v1/apps/{app}/services"), Some(bad)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = server.call(Method::POST, "/v1/apps/mar-local-1-nope/services", Some(json!({"id": id}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, _) = server.call(Method::DELETE, &format!("/v1/instances/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (_, listed) = server.call(Method::GET, "/v1/accounts/default/instances?provider=mdb", None).await;
    assert_eq!(listed["results"], json!([]));
}
