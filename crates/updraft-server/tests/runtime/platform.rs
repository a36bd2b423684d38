//! The platform API around the runtime: personal access tokens, the platform user, clouds and instance tags,
//! as `qtc-cli` calls them.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{EMAIL, Server};

/// `GET path` with `token` as Bearer: its status and body.
async fn get_as(server: &Server, path: &str, token: &str) -> (StatusCode, Value) {
    let response = server.client.get(format!("{}{path}", server.base)).bearer_auth(token).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn personal_access_tokens_work_until_revoked_and_the_platform_user_is_the_account() {
    let server = Server::start().await;
    let (status, user) = server.call(Method::GET, "/v1/user", None).await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(user["email"], EMAIL);
    let anonymous = server.client.get(format!("{}/v1/user", server.base)).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    let (status, created) = server.call(Method::POST, "/v1/authorizations", Some(json!({"name": "ci"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let pat = created["access_token"].as_str().unwrap().to_owned();
    let (status, clouds) = get_as(&server, "/v1/user/accounts", &pat).await;
    assert_eq!(status, StatusCode::OK, "{clouds}");
    assert_eq!(clouds["results"][0]["id"], "default");
    // A personal token makes cloud tokens, and cloud tokens drive the MAR API.
    let (_, cloud_tokens) = get_as(&server, "/v1/accounts/default/authorizations", &pat).await;
    let cloud_token = cloud_tokens["results"][0]["access_token"].as_str().unwrap();
    assert_eq!(get_as(&server, "/v1/accounts/default/instances", cloud_token).await.0, StatusCode::OK);

    let (_, listed) = server.call(Method::GET, "/v1/authorizations", None).await;
    let listed = listed["results"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["name"], "ci");
    assert!(listed[0].get("access_token").is_none() && listed[0].get("hash").is_none(), "{listed:?}");
    let id = created["id"].as_str().unwrap();
    assert_eq!(listed[0]["id"], id);

    let (status, _) = server.call(Method::DELETE, &format!("/v1/authorizations/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(get_as(&server, "/v1/user/accounts", &pat).await.0, StatusCode::UNAUTHORIZED);
    let (status, _) = server.call(Method::DELETE, &format!("/v1/authorizations/{id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = server.call(Method::POST, "/v1/authorizations", Some(json!({"name": 5}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, listed) = server.call(Method::GET, "/v1/authorizations", None).await;
    assert_eq!(listed["results"], json!([]));
}

#[tokio::test]
async fn clouds_hold_their_own_instances_and_instances_keep_tags() {
    let server = Server::start().await;
    let body = json!({"name": "staging", "datacenter": "local-1", "vpc": false});
    let (status, staging) = server.call(Method::POST, "/v1/accounts", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{staging}");
    let staging_id = staging["id"].as_str().unwrap().to_owned();
    assert_eq!(staging["datacenter"]["id"], "local-1");
    let (_, clouds) = server.call(Method::GET, "/v1/user/accounts", None).await;
    assert_eq!(clouds["results"].as_array().unwrap().len(), 2, "{clouds}");
    for (body, expected) in [
        (json!({"name": "staging"}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({"name": "x", "datacenter": "eu-1"}), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({}), StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        assert_eq!(server.call(Method::POST, "/v1/accounts", Some(body.clone())).await.0, expected, "{body}");
    }

    let instances = format!("/v1/accounts/{staging_id}/instances");
    let body = json!({"name": "tagged", "serviceProviderId": "mar", "config": {"runtimeSize": 1}});
    let (status, app) = server.call(Method::POST, &instances, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    let app = app["id"].as_str().unwrap().to_owned();
    let (_, in_staging) = server.call(Method::GET, &instances, None).await;
    assert_eq!(in_staging["results"][0]["id"], app.as_str());
    let (_, in_default) = server.call(Method::GET, "/v1/accounts/default/instances?provider=mar", None).await;
    assert_eq!(in_default["results"], json!([]));

    let path = format!("/v1/instances/{app}");
    let (status, tagged) =
        server.call(Method::PUT, &path, Some(json!({"name": "tagged", "tags": ["web", "eu"]}))).await;
    assert_eq!(status, StatusCode::OK, "{tagged}");
    assert_eq!(server.call(Method::GET, &path, None).await.1["tags"], json!(["web", "eu"]));
    for bad in [json!({"name": "renamed"}), json!({"tags": "web"}), json!({"tags": [""]}), json!({"tags": [1]})] {
        assert_eq!(
            server.call(Method::PUT, &path, Some(bad.clone())).await.0,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}"
        );
    }
    assert_eq!(server.call(Method::GET, &path, None).await.1["tags"], json!(["web", "eu"]));

    // The stack the next release is built for: the two the original offered.
    let app_path = format!("/v1/apps/{app}");
    let (status, info) = server.call(Method::PUT, &app_path, Some(json!({"stack": "cedar"}))).await;
    assert_eq!((status, &info["stack"]), (StatusCode::OK, &json!("cedar")), "{info}");
    assert_eq!(server.call(Method::GET, &format!("{app_path}/env_vars"), None).await.1["STACK"], "cedar");
    for bad in [json!({"stack": "heroku-22"}), json!({"stack": 14})] {
        assert_eq!(server.call(Method::PUT, &app_path, Some(bad)).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    }
    assert_eq!(server.call(Method::GET, &app_path, None).await.1["stack"], "cedar");

    let cloud = format!("/v1/accounts/{staging_id}");
    assert_eq!(server.call(Method::DELETE, &cloud, None).await.0, StatusCode::CONFLICT);
    assert_eq!(server.call(Method::DELETE, &path, None).await.0, StatusCode::OK);
    assert_eq!(server.call(Method::DELETE, &cloud, None).await.0, StatusCode::OK);
    assert_eq!(server.call(Method::GET, &cloud, None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(server.call(Method::DELETE, "/v1/accounts/default", None).await.0, StatusCode::CONFLICT);
    let unknown = server.call(Method::POST, "/v1/accounts/nope/instances", Some(json!({"name": "x"}))).await;
    assert_eq!(unknown.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn eds_apps_and_gateways_are_instances_too() {
    let server = Server::start().await;
    let (_, staging) = server.call(Method::POST, "/v1/accounts", Some(json!({"name": "staging"}))).await;
    let staging = staging["id"].as_str().unwrap().to_owned();
    let instances = format!("/v1/accounts/{staging}/instances");

    // An EDS app, as `qtc-cli eds create` makes it: its two backends, with their keys, for the account only.
    let body = json!({"name": "todos", "serviceProviderId": "eds", "datacenterId": "eu-1"});
    let (status, eds) = server.call(Method::POST, &instances, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{eds}");
    let eds_id = eds["id"].as_str().unwrap().to_owned();
    let environments = eds["config"]["environments"].as_array().unwrap();
    assert_eq!(environments.len(), 2, "{eds}");
    let backend = environments[0]["id"].as_str().unwrap().to_owned();
    // The backend serves EDS at once.
    let objects = server.client.get(format!("{}/v1/objects/todos", server.base)).header("Enginio-Backend-Id", &backend);
    assert_eq!(objects.send().await.unwrap().status(), StatusCode::OK);
    let (_, account_apps) = server.call(Method::GET, "/v1/account/apps", None).await;
    assert_eq!(account_apps["results"][0]["id"], eds_id.as_str(), "the account API sees it");

    // A gateway: its id keeps the original form, its security token is the account's to see.
    let (status, mws) =
        server.call(Method::POST, &instances, Some(json!({"name": "chat", "serviceProviderId": "mws"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{mws}");
    assert_eq!(mws["id"], "mws-local-1-chat");
    assert!(mws["config"]["securityToken"].as_str().is_some_and(|t| t.len() >= 32), "{mws}");
    let uri = server.client.get(format!("{}/v1/gateways/mws-local-1-chat/websocket_uri", server.base));
    let uri = uri.header("Authorization", format!("Bearer {}", mws["config"]["securityToken"].as_str().unwrap()));
    let answered = uri.send().await.unwrap();
    assert_eq!(answered.status(), StatusCode::OK, "the gateway hands out socket URIs");
    let taken = json!({"name": "chat", "serviceProviderId": "mws"});
    assert_eq!(server.call(Method::POST, &instances, Some(taken)).await.0, StatusCode::CONFLICT);
    let bad = json!({"name": "../chat", "serviceProviderId": "mws"});
    assert_eq!(server.call(Method::POST, &instances, Some(bad)).await.0, StatusCode::UNPROCESSABLE_ENTITY);

    let listed = |provider: &'static str| {
        let path = format!("{instances}?provider={provider}");
        let server = &server;
        async move {
            let (_, listed) = server.call(Method::GET, &path, None).await;
            listed["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(listed("eds").await, [eds_id.as_str()]);
    assert_eq!(listed("mws").await, ["mws-local-1-chat"]);
    let (_, in_default) = server.call(Method::GET, "/v1/accounts/default/instances?provider=mws", None).await;
    assert_eq!(in_default["results"][0]["id"], "default", "the default gateway is the default cloud's");

    let tags = json!({"tags": ["prod"]});
    let (status, tagged) = server.call(Method::PUT, "/v1/instances/mws-local-1-chat", Some(tags)).await;
    assert_eq!((status, &tagged["tags"]), (StatusCode::OK, &json!(["prod"])));
    assert_eq!(server.call(Method::GET, &format!("/v1/instances/{eds_id}"), None).await.1["serviceProviderId"], "eds");

    assert_eq!(server.call(Method::DELETE, "/v1/instances/default", None).await.0, StatusCode::CONFLICT);
    assert_eq!(server.call(Method::DELETE, &format!("/v1/accounts/{staging}"), None).await.0, StatusCode::CONFLICT);
    for id in [eds_id.as_str(), "mws-local-1-chat"] {
        assert_eq!(server.call(Method::DELETE, &format!("/v1/instances/{id}"), None).await.0, StatusCode::OK, "{id}");
        assert_eq!(server.call(Method::GET, &format!("/v1/instances/{id}"), None).await.0, StatusCode::NOT_FOUND);
    }
    assert_eq!(server.call(Method::DELETE, &format!("/v1/accounts/{staging}"), None).await.0, StatusCode::OK);
}
