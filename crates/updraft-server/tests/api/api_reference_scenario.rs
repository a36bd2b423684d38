//! The calls whose answers become the API reference's examples (`api_reference.rs`): a day in the life of one
//! backend and one gateway, each answer checked against the reference as it comes.

use reqwest::Method;
use serde_json::{Value, json};

use crate::api_reference::{ROOT, Recorder};
use crate::eds::{EMAIL, Eds, PASSWORD};
use crate::helpers::{ADMIN, METRICS_TOKEN};

/// Who calls.
#[derive(Clone, Copy)]
enum As<'a> {
    /// The backend header alone (EDS) or nothing (MWS).
    Anonymous,
    User(&'a str),
    Secret,
    /// The account token with the backend's master key.
    Operator,
    Account,
    /// The server admin token.
    Admin,
    /// The default gateway's security token.
    Gateway,
    Bearer(&'a str),
}

enum Body {
    None,
    Json(Value),
    Form(String),
    Raw(String, Vec<u8>, Vec<(&'static str, String)>),
}

struct Scenario<'a> {
    eds: &'a Eds,
    recorder: &'a mut Recorder,
}

impl Scenario<'_> {
    /// Sends one call, records its answer under `template` and answers its body (`null` when not JSON).
    async fn call(&mut self, method: Method, template: &str, path: &str, who: As<'_>, body: Body) -> Value {
        let eds = self.eds;
        let mut req = eds.app.client.request(method.clone(), format!("{}{path}", eds.app.base));
        if names_a_backend(path) {
            req = req.header("Enginio-Backend-Id", &eds.backend);
        }
        req = match who {
            As::Anonymous => req,
            As::User(token) | As::Bearer(token) => req.bearer_auth(token),
            As::Secret => req.bearer_auth(&eds.secret),
            As::Operator => req.bearer_auth(&eds.account).header("Enginio-Backend-MasterKey", &eds.master_key),
            As::Account => req.bearer_auth(&eds.account),
            As::Admin => req.bearer_auth(ROOT),
            As::Gateway => req.bearer_auth(ADMIN),
        };
        req = match body {
            Body::None => req,
            Body::Json(value) => req.json(&value),
            Body::Form(form) => req.header("Content-Type", "application/x-www-form-urlencoded").body(form),
            Body::Raw(kind, bytes, headers) => {
                headers.into_iter().fold(req.header("Content-Type", kind).body(bytes), |req, (k, v)| req.header(k, v))
            }
        };
        let answer = req.send().await.unwrap();
        let status = answer.status().as_u16();
        let json = answer.headers().get("content-type").is_some_and(|t| t.as_bytes().starts_with(b"application/json"));
        let text = answer.text().await.unwrap();
        let value = if json { serde_json::from_str(&text).unwrap() } else { Value::Null };
        self.recorder.record(method.as_str(), template, status, &value);
        value
    }
}

/// EDS calls name their backend; the account's, MWS's and the platform's do not.
fn names_a_backend(path: &str) -> bool {
    let first = path.strip_prefix("/v1/").map(|rest| rest.split(['/', '?']).next().unwrap_or_default());
    let eds = ["objects", "users", "usergroups", "object_types", "auth", "webhooks", "files", "search", "stream_url"];
    first.is_some_and(|first| eds.contains(&first) || (first == "user" && path.split('?').next() == Some("/v1/user")))
}

pub(crate) async fn run(eds: &Eds, recorder: &mut Recorder) {
    let mut s = Scenario { eds, recorder };
    server(&mut s).await;
    account(&mut s).await;
    let (token, user) = users(&mut s).await;
    schemas(&mut s).await;
    let webhook = webhook(&mut s).await;
    objects(&mut s, &token, &user).await;
    webhook_log(&mut s, &webhook).await;
    gateways(&mut s).await;
    platform(&mut s).await;
}

async fn server(s: &mut Scenario<'_>) {
    s.call(Method::GET, "/healthz", "/healthz", As::Anonymous, Body::None).await;
    s.call(Method::GET, "/readyz", "/readyz", As::Anonymous, Body::None).await;
    s.call(Method::GET, "/metrics", "/metrics", As::Bearer(METRICS_TOKEN), Body::None).await;
    s.call(Method::GET, "/metrics", "/metrics", As::Anonymous, Body::None).await;
    s.call(Method::GET, "/", "/", As::Anonymous, Body::None).await;
}

async fn account(s: &mut Scenario<'_>) {
    let form = format!("grant_type=password&username={EMAIL}&password={}", PASSWORD.replace(' ', "+"));
    let path = "/v1/account/auth/oauth2/token";
    s.call(Method::POST, path, path, As::Anonymous, Body::Form(form)).await;
    s.call(Method::POST, path, path, As::Anonymous, Body::Form("grant_type=password&username=x&password=y".into()))
        .await;
    let path = "/v1/account/auth/identity";
    s.call(Method::POST, path, path, As::Anonymous, Body::Json(json!({"email": EMAIL, "password": PASSWORD}))).await;
    let apps = s.call(Method::GET, "/v1/account/apps", "/v1/account/apps", As::Account, Body::None).await;
    let app = text(&apps["results"][0]["id"], &apps);
    s.call(Method::GET, "/v1/account/apps/{app_id}", &format!("/v1/account/apps/{app}"), As::Account, Body::None).await;
    s.call(Method::GET, "/v1/account/apps", "/v1/account/apps", As::Anonymous, Body::None).await;
    let created = s
        .call(Method::POST, "/v1/account/apps", "/v1/account/apps", As::Account, Body::Json(json!({"name": "notes"})))
        .await;
    let other = id_of(&created);
    let backend = text(&created["environments"][0]["id"], &created);
    let template = "/v1/account/apps/{app_id}/environments/{backend_id}";
    let path = format!("/v1/account/apps/{other}/environments/{backend}");
    s.call(Method::PUT, template, &path, As::Account, Body::Json(json!({"accessDefaults": "locked"}))).await;
    s.call(Method::DELETE, "/v1/account/apps/{app_id}", &format!("/v1/account/apps/{other}"), As::Account, Body::None)
        .await;
}

/// Signs a user up and in; answers its token and id.
async fn users(s: &mut Scenario<'_>) -> (String, String) {
    let user = json!({"username": "ann", "password": "pw-of-ann", "email": "ann@example.com"});
    let created = s.call(Method::POST, "/v1/users", "/v1/users", As::Anonymous, Body::Json(user)).await;
    let id = id_of(&created);
    s.call(Method::POST, "/v1/users", "/v1/users", As::Anonymous, Body::Json(json!({"username": "ann"}))).await;
    let path = "/v1/auth/oauth2/token";
    let session = s
        .call(
            Method::POST,
            path,
            path,
            As::Anonymous,
            Body::Form("grant_type=password&username=ann&password=pw-of-ann".into()),
        )
        .await;
    s.call(Method::POST, path, path, As::Anonymous, Body::Form("grant_type=password&username=ann&password=no".into()))
        .await;
    let token = text(&session["access_token"], &session);
    let refresh = text(&session["refresh_token"], &session);
    s.call(
        Method::POST,
        path,
        path,
        As::Anonymous,
        Body::Form(format!("grant_type=refresh_token&refresh_token={refresh}")),
    )
    .await;
    let path = "/v1/auth/identity";
    s.call(Method::POST, path, path, As::Anonymous, Body::Json(json!({"username": "ann", "password": "pw-of-ann"})))
        .await;
    s.call(Method::GET, "/v1/user", "/v1/user", As::User(&token), Body::None).await;
    s.call(Method::GET, "/v1/users", "/v1/users", As::User(&token), Body::None).await;
    let one = format!("/v1/users/{id}");
    s.call(Method::GET, "/v1/users/{id}", &one, As::User(&token), Body::None).await;
    s.call(Method::PUT, "/v1/users/{id}", &one, As::User(&token), Body::Json(json!({"email": "ann@example.org"})))
        .await;
    user_access(s, &token, &id).await;
    // A second session, revoked.
    let other = s
        .call(
            Method::POST,
            "/v1/auth/oauth2/token",
            "/v1/auth/oauth2/token",
            As::Anonymous,
            Body::Form("grant_type=password&username=ann&password=pw-of-ann".into()),
        )
        .await;
    let other = text(&other["access_token"], &other);
    let path = "/v1/auth/oauth2/revoke";
    s.call(Method::POST, path, path, As::User(&other), Body::Form(format!("token={other}"))).await;

    let group = s
        .call(
            Method::POST,
            "/v1/usergroups",
            "/v1/usergroups",
            As::User(&token),
            Body::Json(json!({"name": "editors"})),
        )
        .await;
    let group = id_of(&group);
    let members = format!("/v1/usergroups/{group}/members");
    let member = json!({"id": id, "objectType": "users"});
    s.call(Method::POST, "/v1/usergroups/{id}/members", &members, As::User(&token), Body::Json(member.clone())).await;
    s.call(Method::GET, "/v1/usergroups/{id}/members", &members, As::User(&token), Body::None).await;
    s.call(
        Method::GET,
        "/v1/usergroups/{id}/members/access",
        &format!("{members}/access"),
        As::User(&token),
        Body::None,
    )
    .await;
    s.call(Method::DELETE, "/v1/usergroups/{id}/members", &members, As::User(&token), Body::Json(member)).await;
    let one_group = format!("/v1/usergroups/{group}");
    s.call(Method::GET, "/v1/usergroups/{id}", &one_group, As::User(&token), Body::None).await;
    s.call(Method::GET, "/v1/usergroups", "/v1/usergroups", As::User(&token), Body::None).await;
    groups_access(s, &token, &one_group).await;
    (token, id)
}

/// A user's atomic update, and its ACL read and changed every way.
async fn user_access(s: &mut Scenario<'_>, token: &str, id: &str) {
    let one = format!("/v1/users/{id}");
    let user = As::User(token);
    let atomic = json!({"$set": {"nickname": "annie"}});
    s.call(Method::PUT, "/v1/users/{id}/atomic", &format!("{one}/atomic"), user, Body::Json(atomic)).await;
    let everyone = json!({"read": [{"id": "*", "objectType": "aclSubject"}]});
    acl_every_way(s, "/v1/users/{id}/access", &format!("{one}/access"), user, everyone).await;
}

/// An ACL read, granted `grant` and had it withdrawn, then read again and set whole (GET, PUT, DELETE, GET, POST).
async fn acl_every_way(s: &mut Scenario<'_>, template: &str, path: &str, who: As<'_>, grant: Value) {
    s.call(Method::GET, template, path, who, Body::None).await;
    s.call(Method::PUT, template, path, who, Body::Json(grant.clone())).await;
    s.call(Method::DELETE, template, path, who, Body::Json(grant)).await;
    let acl = s.call(Method::GET, template, path, who, Body::None).await;
    s.call(Method::POST, template, path, who, Body::Json(acl)).await;
}

/// A group renamed, its ACL and its member rules changed, and the group deleted.
async fn groups_access(s: &mut Scenario<'_>, token: &str, group: &str) {
    let user = As::User(token);
    s.call(Method::PUT, "/v1/usergroups/{id}", group, user, Body::Json(json!({"name": "authors"}))).await;
    let atomic = json!({"$set": {"description": "people who write"}});
    s.call(Method::PUT, "/v1/usergroups/{id}/atomic", &format!("{group}/atomic"), user, Body::Json(atomic)).await;
    let everyone = json!({"read": [{"id": "*", "objectType": "aclSubject"}]});
    acl_every_way(s, "/v1/usergroups/{id}/access", &format!("{group}/access"), user, everyone).await;
    let rules = format!("{group}/members/access");
    let template = "/v1/usergroups/{id}/members/access";
    let anyone = |permission: &str| json!({permission: [{"id": "*", "objectType": "aclSubject"}]});
    for (method, rule) in
        [(Method::PUT, anyone("create")), (Method::DELETE, anyone("create")), (Method::POST, anyone("read"))]
    {
        s.call(method, template, &rules, user, Body::Json(rule)).await;
    }
    s.call(Method::DELETE, "/v1/usergroups/{id}", group, user, Body::None).await;
}

async fn schemas(s: &mut Scenario<'_>) {
    let todos = json!({"name": "todos", "properties": [
        {"name": "title", "type": "string", "indexed": true},
        {"name": "done", "type": "boolean", "indexed": true},
        {"name": "image", "type": "ref", "objectTypes": ["files"]},
    ]});
    s.call(Method::POST, "/v1/object_types", "/v1/object_types", As::Operator, Body::Json(todos.clone())).await;
    s.call(Method::POST, "/v1/object_types", "/v1/object_types", As::Anonymous, Body::Json(todos.clone())).await;
    s.call(Method::GET, "/v1/object_types", "/v1/object_types", As::Operator, Body::None).await;
    let one = "/v1/object_types/{name}";
    s.call(Method::GET, one, "/v1/object_types/todos", As::Operator, Body::None).await;
    s.call(Method::PUT, one, "/v1/object_types/todos", As::Operator, Body::Json(todos)).await;
    let diary = json!({"name": "diary", "properties": [{"name": "text", "type": "string"}]});
    s.call(Method::POST, "/v1/object_types", "/v1/object_types", As::Operator, Body::Json(diary)).await;
    s.call(Method::DELETE, one, "/v1/object_types/diary", As::Operator, Body::None).await;
}

async fn objects(s: &mut Scenario<'_>, token: &str, user: &str) {
    let base = "/v1/objects/{object_type}";
    let todo = json!({"title": "buy milk", "done": false});
    let created = s.call(Method::POST, base, "/v1/objects/todos", As::User(token), Body::Json(todo)).await;
    let id = id_of(&created);
    let one = format!("/v1/objects/todos/{id}");
    let q = crate::eds::encode(r#"{"done":false}"#);
    let sort = crate::eds::encode(r#"[{"sortBy":"createdAt","direction":"desc"}]"#);
    s.call(Method::GET, base, &format!("/v1/objects/todos?q={q}&sort={sort}&limit=10"), As::User(token), Body::None)
        .await;
    s.call(Method::GET, base, &format!("/v1/objects/todos?q={q}&count=1"), As::User(token), Body::None).await;
    s.call(
        Method::GET,
        base,
        "/v1/objects/todos?q=%7B%22done%22%3A%7B%22%24near%22%3A1%7D%7D",
        As::User(token),
        Body::None,
    )
    .await;
    let doc = format!("{base}/{{id}}");
    s.call(Method::GET, &doc, &one, As::User(token), Body::None).await;
    s.call(Method::GET, &doc, "/v1/objects/todos/000000000000000000000000", As::User(token), Body::None).await;
    s.call(Method::PUT, &doc, &one, As::User(token), Body::Json(json!({"done": true}))).await;
    let atomic = json!({"$set": {"title": "buy oat milk"}});
    s.call(Method::PUT, &format!("{doc}/atomic"), &format!("{one}/atomic"), As::User(token), Body::Json(atomic)).await;
    let reader = json!({"read": [{"id": user, "objectType": "users"}]});
    acl_every_way(s, &format!("{doc}/access"), &format!("{one}/access"), As::User(token), reader).await;
    s.call(Method::GET, "/v1/stream_url", "/v1/stream_url", As::User(token), Body::None).await;
    let search = format!(
        "/v1/search?objectTypes[]=objects.todos&search={}",
        crate::eds::encode(r#"{"phrase":"milk","properties":["title"]}"#)
    );
    s.call(Method::GET, "/v1/search", &search, As::User(token), Body::None).await;
    files(s, token, &id).await;
    s.call(Method::DELETE, &doc, &one, As::User(token), Body::None).await;
}

async fn files(s: &mut Scenario<'_>, token: &str, todo: &str) {
    let target = json!({"objectType": "objects.todos", "id": todo, "propertyName": "image"});
    let (kind, body) = multipart(&json!({"targetFileProperty": target, "file": {"fileName": "milk.txt"}}), b"1 litre");
    let file = s.call(Method::POST, "/v1/files", "/v1/files", As::User(token), Body::Raw(kind, body, vec![])).await;
    let id = file["id"].as_str().unwrap_or_else(|| panic!("{file}")).to_owned();
    s.call(Method::GET, "/v1/files/{id}", &format!("/v1/files/{id}"), As::User(token), Body::None).await;
    let url = s
        .call(
            Method::GET,
            "/v1/files/{id}/download_url",
            &format!("/v1/files/{id}/download_url"),
            As::User(token),
            Body::None,
        )
        .await;
    let expiring = url["expiringUrl"].as_str().unwrap();
    let download = expiring.split_once("/v1/").map(|(_, rest)| format!("/v1/{rest}")).unwrap();
    s.call(Method::GET, "/v1/files/{id}/download", &download, As::Anonymous, Body::None).await;
    // A chunked upload: its start, then one chunk.
    let chunked = json!({"targetFileProperty": {"objectType": "objects.todos", "id": todo, "propertyName": "image"},
        "file": {"fileName": "notes.txt"}});
    let started = s.call(Method::POST, "/v1/files", "/v1/files", As::User(token), Body::Json(chunked)).await;
    let id = id_of(&started);
    let range = vec![("Content-Range", "0-5/5".to_owned())];
    let raw = Body::Raw("application/octet-stream".into(), b"hello".to_vec(), range);
    s.call(Method::PUT, "/v1/files/{id}/chunk", &format!("/v1/files/{id}/chunk"), As::User(token), raw).await;
}

/// A webhook on todos, before any is made; answers its id.
async fn webhook(s: &mut Scenario<'_>) -> String {
    // Port 9 (discard) on loopback: deliveries are attempted and fail, which is what the log then shows.
    let hook = json!({"url": "http://127.0.0.1:9/hook", "objectTypes": ["todos"], "events": ["create"]});
    let created = s.call(Method::POST, "/v1/webhooks", "/v1/webhooks", As::Operator, Body::Json(hook.clone())).await;
    let id = id_of(&created);
    s.call(Method::GET, "/v1/webhooks", "/v1/webhooks", As::Operator, Body::None).await;
    let one = format!("/v1/webhooks/{id}");
    s.call(Method::GET, "/v1/webhooks/{id}", &one, As::Secret, Body::None).await;
    s.call(Method::PUT, "/v1/webhooks/{id}", &one, As::Operator, Body::Json(hook)).await;
    id
}

/// The webhook's deliveries of the todo made meanwhile, one delivered again, and the webhook gone.
async fn webhook_log(s: &mut Scenario<'_>, id: &str) {
    let one = format!("/v1/webhooks/{id}");
    let deliveries = format!("{one}/deliveries");
    let log = s.call(Method::GET, "/v1/webhooks/{id}/deliveries", &deliveries, As::Operator, Body::None).await;
    let delivery = log["results"][0]["id"].as_str().unwrap_or_else(|| panic!("no delivery: {log}")).to_owned();
    let template = "/v1/webhooks/{id}/deliveries/{delivery}/redeliver";
    s.call(Method::POST, template, &format!("{deliveries}/{delivery}/redeliver"), As::Operator, Body::None).await;
    s.call(Method::DELETE, "/v1/webhooks/{id}", &one, As::Operator, Body::None).await;
    s.call(Method::GET, "/v1/webhooks/{id}", &one, As::Operator, Body::None).await;
}

async fn gateways(s: &mut Scenario<'_>) {
    s.call(Method::GET, "/v1/websocket_uri", "/v1/websocket_uri", As::Anonymous, Body::None).await;
    let message = json!({"data": "hello", "receivers": {"sockets": ["*"], "tags": ["news"]}});
    s.call(Method::POST, "/v1/messages", "/v1/messages", As::Anonymous, Body::Json(message.clone())).await;
    s.call(Method::POST, "/v1/messages", "/v1/messages", As::Anonymous, Body::Json(json!({"data": "x"}))).await;
    let socket =
        s.call(Method::POST, "/v1/sockets", "/v1/sockets", As::Gateway, Body::Json(json!({"tags": ["news"]}))).await;
    let socket = id_of(&socket);
    s.call(Method::GET, "/v1/sockets", "/v1/sockets", As::Gateway, Body::None).await;
    s.call(Method::GET, "/v1/sockets", "/v1/sockets", As::Anonymous, Body::None).await;
    s.call(Method::GET, "/v1/sockets/{socket_id}", &format!("/v1/sockets/{socket}"), As::Gateway, Body::None).await;
    s.call(Method::DELETE, "/v1/sockets/{socket_id}", &format!("/v1/sockets/{socket}"), As::Gateway, Body::None).await;
    let hook = json!({"payload": "{\"id\":\"1\"}", "receivers": [{"id": "*", "objectType": "aclSubject"}]});
    let path = "/v1/webhook_receivers/enginio";
    s.call(Method::POST, path, path, As::Gateway, Body::Json(hook)).await;

    let made = s
        .call(
            Method::POST,
            "/v1/gateways",
            "/v1/gateways",
            As::Admin,
            Body::Json(json!({"id": "chat", "name": "Chat"})),
        )
        .await;
    let token = text(&made["securityToken"], &made);
    s.call(Method::POST, "/v1/gateways", "/v1/gateways", As::Admin, Body::Json(json!({"id": "chat"}))).await;
    s.call(Method::GET, "/v1/gateways", "/v1/gateways", As::Admin, Body::None).await;
    s.call(Method::GET, "/v1/gateways/{gateway_id}", "/v1/gateways/chat", As::Admin, Body::None).await;
    let config = "/v1/gateways/{gateway_id}/configuration";
    s.call(Method::GET, config, "/v1/gateways/chat/configuration", As::Bearer(&token), Body::None).await;
    let change = json!({"name": "Team chat", "permissions": {"read": ["*"], "write": ["*"]}});
    s.call(Method::PUT, config, "/v1/gateways/chat/configuration", As::Bearer(&token), Body::Json(change)).await;
    let uri = "/v1/gateways/{gateway_id}/websocket_uri";
    s.call(Method::GET, uri, "/v1/gateways/chat/websocket_uri", As::Anonymous, Body::None).await;
    let sockets = "/v1/gateways/{gateway_id}/sockets";
    let made = s
        .call(
            Method::POST,
            sockets,
            "/v1/gateways/chat/sockets",
            As::Bearer(&token),
            Body::Json(json!({"tags": ["ops"]})),
        )
        .await;
    s.call(Method::GET, sockets, "/v1/gateways/chat/sockets", As::Bearer(&token), Body::None).await;
    let one = format!("/v1/gateways/chat/sockets/{}", id_of(&made));
    s.call(Method::GET, "/v1/gateways/{gateway_id}/sockets/{socket_id}", &one, As::Bearer(&token), Body::None).await;
    s.call(Method::DELETE, "/v1/gateways/{gateway_id}/sockets/{socket_id}", &one, As::Bearer(&token), Body::None).await;
    let receiver = "/v1/gateways/{gateway_id}/webhook_receivers/enginio";
    let hook = json!({"payload": "{\"id\":\"2\"}", "receivers": [{"id": "ann", "objectType": "users"}]});
    s.call(Method::POST, receiver, "/v1/gateways/chat/webhook_receivers/enginio", As::Bearer(&token), Body::Json(hook))
        .await;
    let messages = "/v1/gateways/{gateway_id}/messages";
    s.call(Method::POST, messages, "/v1/gateways/chat/messages", As::Bearer(&token), Body::Json(message)).await;
    s.call(Method::DELETE, "/v1/gateways/{gateway_id}", "/v1/gateways/chat", As::Admin, Body::None).await;
}

/// The platform API of `qtc-cli` and the npm SDK: a personal token, a cloud, an app instance and its MAR calls
/// short of a push (the runtime's own tests push), a domain; then all of it removed.
async fn platform(s: &mut Scenario<'_>) {
    let token = s
        .call(
            Method::POST,
            "/v1/authorizations",
            "/v1/authorizations",
            As::Account,
            Body::Json(json!({"note": "deploys"})),
        )
        .await;
    s.call(Method::GET, "/v1/authorizations", "/v1/authorizations", As::Account, Body::None).await;
    s.call(Method::GET, "/v1/datacenters", "/v1/datacenters", As::Account, Body::None).await;
    s.call(Method::GET, "/v1/user/accounts", "/v1/user/accounts", As::Account, Body::None).await;
    s.call(Method::GET, "/v1/user/ssh_keys", "/v1/user/ssh_keys", As::Account, Body::None).await;
    let cloud = s
        .call(Method::POST, "/v1/accounts", "/v1/accounts", As::Account, Body::Json(json!({"name": "reference"})))
        .await;
    let cloud = format!("/v1/accounts/{}", id_of(&cloud));
    s.call(Method::GET, "/v1/accounts/{cloud}", &cloud, As::Account, Body::None).await;
    let app = json!({"name": "web", "serviceProviderId": "mar", "config": {"runtimeType": "app", "runtimeSize": 1}});
    let instances = format!("{cloud}/instances");
    let app = s.call(Method::POST, "/v1/accounts/{cloud}/instances", &instances, As::Account, Body::Json(app)).await;
    let id = id_of(&app);
    s.call(Method::GET, "/v1/accounts/{cloud}/instances", &instances, As::Account, Body::None).await;
    let instance = format!("/v1/instances/{id}");
    s.call(Method::GET, "/v1/instances/{id}", &instance, As::Account, Body::None).await;
    let tags = json!({"name": "web", "tags": ["frontend"]});
    s.call(Method::PUT, "/v1/instances/{id}", &instance, As::Account, Body::Json(tags)).await;
    let template = "/v1/instances/{id}/authorizations";
    s.call(Method::GET, template, &format!("{instance}/authorizations"), As::Account, Body::None).await;
    s.call(Method::GET, "/v1/accounts/{cloud}/log", &format!("{cloud}/log"), As::Account, Body::None).await;

    let app = format!("/v1/apps/{id}");
    s.call(Method::GET, "/v1/apps/{id}", &app, As::Account, Body::None).await;
    s.call(Method::GET, "/v1/apps/{id}/status", &format!("{app}/status"), As::Account, Body::None).await;
    let vars = json!({"GREETING": "hello"});
    s.call(Method::PUT, "/v1/apps/{id}/env_vars", &format!("{app}/env_vars"), As::Account, Body::Json(vars)).await;
    s.call(Method::GET, "/v1/apps/{id}/env_vars", &format!("{app}/env_vars"), As::Account, Body::None).await;
    s.call(Method::GET, "/v1/apps/{id}/logs", &format!("{app}/logs"), As::Account, Body::None).await;
    s.call(Method::GET, "/v1/apps/{id}/releases", &format!("{app}/releases"), As::Account, Body::None).await;
    s.call(Method::GET, "/v1/apps/{id}/slugs", &format!("{app}/slugs"), As::Account, Body::None).await;
    let domains = format!("{app}/domains");
    let domain = json!({"name": "www.example.com"});
    s.call(Method::POST, "/v1/apps/{id}/domains", &domains, As::Account, Body::Json(domain)).await;
    s.call(Method::GET, "/v1/apps/{id}/domains", &domains, As::Account, Body::None).await;
    let one = format!("{domains}/www.example.com");
    s.call(Method::DELETE, "/v1/apps/{id}/domains/{name}", &one, As::Account, Body::None).await;

    s.call(Method::DELETE, "/v1/instances/{id}", &instance, As::Account, Body::None).await;
    s.call(Method::DELETE, "/v1/accounts/{cloud}", &cloud, As::Account, Body::None).await;
    let personal = format!("/v1/authorizations/{}", id_of(&token));
    s.call(Method::DELETE, "/v1/authorizations/{id}", &personal, As::Account, Body::None).await;
}

/// The body QtEnginio's upload sends: an `object` part, then the `file` part.
fn multipart(object: &Value, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = "boundary_.oOo._reference";
    let mut body = format!(
        "--{boundary}\r\nContent-Type: application/json\r\nContent-Disposition: form-data; name=\"object\"\r\n\r\n\
         {object}\r\n--{boundary}\r\nContent-Type: text/plain\r\n\
         Content-Disposition: form-data; name=\"file\"; filename=\"milk.txt\"\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary=\"{boundary}\""), body)
}

/// The `id` of an answer, which must have one.
fn id_of(answer: &Value) -> String {
    answer["id"].as_str().unwrap_or_else(|| panic!("no id in {answer}")).to_owned()
}

/// A text member of an answer, which must have it.
fn text(member: &Value, answer: &Value) -> String {
    member.as_str().unwrap_or_else(|| panic!("a member missing in {answer}")).to_owned()
}
