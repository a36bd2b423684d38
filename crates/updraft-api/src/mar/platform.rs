//! The platform API of `qtc-cli` and the npm SDK: the one cloud (account) of this server, its authorizations
//! (cloud tokens), its instances, and the datacenter that is this server. Instances of `mar` are apps, those of
//! `mdb` (or `mar` with `runtimeType: service_container`, as the npm SDK makes them) managed databases, those of
//! `eds` EDS apps and those of `mws` gateways (`instances.rs`).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use updraft_runtime::clouds::Cloud;
use updraft_runtime::names::DATACENTER;
use updraft_runtime::records::DEFAULT_CLOUD;

use super::databases::{database_error, databases};
use super::instances::{self, Instance};
use super::{Account, runtime, runtime_error};
use crate::ApiState;
use crate::body::read_json;
use crate::error::{ApiError, Code};

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/user/accounts", get(clouds))
        .route("/v1/accounts", axum::routing::post(create_cloud))
        .route("/v1/accounts/{cloud}", get(cloud).delete(delete_cloud))
        .route("/v1/accounts/{cloud}/authorizations", get(authorizations).post(authorizations))
        .route("/v1/accounts/{cloud}/instances", get(instances).post(create_instance))
        .route("/v1/accounts/{cloud}/log", get(cloud_log))
        .route("/v1/instances/{id}", get(instance).put(update_instance).delete(delete_instance))
        .route("/v1/instances/{id}/authorizations", get(instance_authorizations))
        .route("/v1/datacenters", get(datacenters))
        .route("/v1/user/ssh_keys", get(ssh_keys).post(add_ssh_key))
        .route("/v1/user/ssh_keys/{id}", axum::routing::delete(remove_ssh_key))
}

fn cloud_json(cloud: &Cloud) -> Value {
    json!({"id": cloud.id, "name": cloud.name, "datacenter": {"id": DATACENTER}})
}

fn known_cloud(state: &ApiState, cloud: &str) -> Result<Cloud, ApiError> {
    runtime(state)?.clouds().get(cloud).ok_or_else(|| ApiError::with_message(Code::NotFound, "no such cloud"))
}

async fn clouds(State(state): State<ApiState>, _: Account) -> Result<Response, ApiError> {
    let clouds: Vec<Value> = runtime(&state)?.clouds().all().iter().map(cloud_json).collect();
    Ok(Json(json!({"results": clouds})).into_response())
}

async fn cloud(State(state): State<ApiState>, _: Account, Path(cloud): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(cloud_json(&known_cloud(&state, &cloud)?)).into_response())
}

/// `{"name","datacenter"?,"vpc"?}` → 201, the cloud. Every cloud is in this server's one datacenter.
async fn create_cloud(State(state): State<ApiState>, _: Account, body: axum::body::Body) -> Result<Response, ApiError> {
    let body = read_json(body, state.limits.max_body_bytes).await?.unwrap_or(Value::Null);
    let Some(name) = body["name"].as_str() else { return Err(ApiError::field("name", "can't be blank")) };
    if let Some(datacenter) = body["datacenter"].as_str().filter(|dc| *dc != DATACENTER) {
        return Err(ApiError::field("datacenter", format!("{datacenter:?}: this server is datacenter {DATACENTER}")));
    }
    let cloud = runtime(&state)?.clouds().add(name).map_err(|why| ApiError::field("name", why))?;
    Ok((StatusCode::CREATED, Json(cloud_json(&cloud))).into_response())
}

/// Deletes an empty cloud other than `default` (409 while it holds instances).
async fn delete_cloud(
    State(state): State<ApiState>,
    _: Account,
    Path(cloud): Path<String>,
) -> Result<Response, ApiError> {
    known_cloud(&state, &cloud)?;
    if cloud == DEFAULT_CLOUD {
        return Err(ApiError::with_message(Code::Conflict, "the default cloud stays"));
    }
    if !instances::in_cloud(&state, &cloud, None).await?.is_empty() {
        return Err(ApiError::with_message(Code::Conflict, "the cloud holds instances: delete them first"));
    }
    runtime(&state)?.clouds().remove(&cloud).map_err(|err| {
        tracing::error!(%err, "clouds not written");
        ApiError::new(Code::Internal)
    })?;
    Ok(Json(json!({})).into_response())
}

/// The cloud token the MAR API takes: a token of the account, a new one on each call (every cloud's is the
/// account's: one account holds them all).
async fn authorizations(
    State(state): State<ApiState>,
    _: Account,
    Path(cloud): Path<String>,
) -> Result<Response, ApiError> {
    known_cloud(&state, &cloud)?;
    cloud_token(&state).await
}

/// `{"results":[{"access_token","token_type"}]}` with a new token of the account.
async fn cloud_token(state: &ApiState) -> Result<Response, ApiError> {
    let token = crate::eds::account_token(state).await.map_err(|e| e.0)?;
    Ok(Json(json!({"results": [{"access_token": token, "token_type": "bearer"}]})).into_response())
}

/// The legacy CLI's way to a cloud token (`GET /v1/instances/:id/authorizations`): the same token.
async fn instance_authorizations(
    State(state): State<ApiState>,
    _: Account,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    found(&state, &id).await?;
    cloud_token(&state).await
}

/// `{"results":[{"time","log"}]}`, newest first: what the records say happened to the cloud's apps (made,
/// released) and databases (their own log).
async fn cloud_log(State(state): State<ApiState>, _: Account, Path(cloud): Path<String>) -> Result<Response, ApiError> {
    known_cloud(&state, &cloud)?;
    let mut events: Vec<(String, String)> = Vec::new();
    for app in runtime(&state)?.apps().iter().filter(|a| a.cloud == cloud) {
        events.push((super::rfc3339(Some(app.created_ms)).unwrap_or_default(), format!("{}: created", app.id)));
        for r in &app.releases {
            let line = format!("{}: release v{} of {} ({}) deployed", app.id, r.version, r.commit, r.buildpack);
            events.push((super::rfc3339(Some(r.created_ms)).unwrap_or_default(), line));
        }
    }
    for service in state.databases.iter().flat_map(|d| d.all()).filter(|s| s.cloud == cloud) {
        events.extend(service.log.iter().map(|l| (l.time.clone(), format!("{}: {}", service.id, l.line))));
    }
    events.sort_by(|a, b| b.0.cmp(&a.0));
    let results: Vec<Value> = events.into_iter().map(|(time, log)| json!({"time": time, "log": log})).collect();
    Ok(Json(json!({"results": results})).into_response())
}

#[derive(Deserialize)]
struct Provider {
    provider: Option<String>,
}

async fn instances(
    State(state): State<ApiState>,
    _: Account,
    Path(cloud): Path<String>,
    Query(query): Query<Provider>,
) -> Result<Response, ApiError> {
    known_cloud(&state, &cloud)?;
    let results = instances::in_cloud(&state, &cloud, query.provider.as_deref()).await?;
    Ok(Json(json!({"results": results})).into_response())
}

async fn create_instance(
    State(state): State<ApiState>,
    _: Account,
    Path(cloud): Path<String>,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    known_cloud(&state, &cloud)?;
    let body = read_json(body, state.limits.max_body_bytes).await?.unwrap_or(Value::Null);
    let field = |name: &str| body.get(name).and_then(Value::as_str);
    let Some(name) = field("name") else { return Err(ApiError::field("name", "can't be blank")) };
    let provider = field("serviceProviderId").unwrap_or("mar");
    let config = &body["config"];
    let runtime_type =
        config["runtimeType"].as_str().unwrap_or(if provider == "mdb" { "service_container" } else { "app" });
    let size = match &config["runtimeSize"] {
        Value::Null => 1,
        Value::Number(n) => n.as_u64().and_then(|n| u8::try_from(n).ok()).unwrap_or(0),
        Value::String(s) => s.parse().unwrap_or(0),
        _ => 0,
    };
    let made = match (provider, runtime_type) {
        ("mar", "app") => Instance::App(runtime(&state)?.create_app(name, size, &cloud).await.map_err(runtime_error)?),
        ("mdb" | "mar", "service_container") => {
            let image = config["serviceImage"].as_str().unwrap_or_default();
            Instance::Database(databases(&state)?.create(name, image, size, &cloud).await.map_err(database_error)?)
        }
        ("eds" | "mws", _) => instances::create_other(&state, provider, name, &cloud).await?,
        _ => {
            let why = format!("{provider:?} ({runtime_type}): the providers are mar, mdb, eds and mws");
            return Err(ApiError::field("serviceProviderId", why));
        }
    };
    Ok((StatusCode::CREATED, Json(made.json(&state))).into_response())
}

async fn instance(State(state): State<ApiState>, _: Account, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(found(&state, &id).await?.json(&state)).into_response())
}

/// `{"name"?,"tags"?}`: tags change; the name is part of the id, so it may only be repeated.
async fn update_instance(
    State(state): State<ApiState>,
    _: Account,
    Path(id): Path<String>,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let body = read_json(body, state.limits.max_body_bytes).await?.unwrap_or(Value::Null);
    let tags = match &body["tags"] {
        Value::Null => None,
        Value::Array(tags) if tags.len() <= 50 => Some(
            tags.iter()
                .map(|t| t.as_str().filter(|t| !t.is_empty() && t.len() <= 100).map(str::to_owned))
                .collect::<Option<Vec<String>>>()
                .ok_or_else(|| ApiError::field("tags", "tags are strings of 1 to 100 characters"))?,
        ),
        _ => return Err(ApiError::field("tags", "tags are a list of at most 50 strings")),
    };
    let instance = found(&state, &id).await?;
    same_name(&body, &instance.name())?;
    let instance = match tags {
        Some(tags) => instance.set_tags(&state, tags).await?,
        None => instance,
    };
    Ok(Json(instance.json(&state)).into_response())
}

async fn found(state: &ApiState, id: &str) -> Result<Instance, ApiError> {
    instances::find(state, id).await?.ok_or_else(|| ApiError::with_message(Code::NotFound, "no such instance"))
}

fn same_name(body: &Value, name: &str) -> Result<(), ApiError> {
    match body["name"].as_str() {
        Some(given) if !name.is_empty() && given != name => {
            Err(ApiError::field("name", "an instance keeps its name (it is in its id)"))
        }
        _ => Ok(()),
    }
}

async fn delete_instance(
    State(state): State<ApiState>,
    _: Account,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    instances::delete(&state, found(&state, &id).await?).await?;
    Ok(Json(json!({})).into_response())
}

/// One datacenter, this server, whose every service is on this listener.
async fn datacenters(
    State(state): State<ApiState>,
    _: Account,
    request: axum::http::Request<axum::body::Body>,
) -> Result<Response, ApiError> {
    let (parts, _) = request.into_parts();
    let origin = state.http_origin(&parts);
    let services: Vec<Value> =
        ["mar", "mdb", "eds", "mws"].iter().map(|id| json!({"id": id, "url": format!("{origin}")})).collect();
    Ok(Json(json!({"results": [{"id": DATACENTER, "description": "This Updraft server", "services": services}]}))
        .into_response())
}

/// `{"results":[{"id","name"}]}`: the keys that may push over SSH.
async fn ssh_keys(State(state): State<ApiState>, _: Account) -> Result<Response, ApiError> {
    let keys = runtime(&state)?.ssh_keys().all();
    let results: Vec<Value> = keys.iter().map(|k| json!({"id": k.id, "name": k.name})).collect();
    Ok(Json(json!({"results": results})).into_response())
}

/// `{"name","key":"ssh-ed25519 AAAA…"}` → 201 `{"id","name"}`.
async fn add_ssh_key(State(state): State<ApiState>, _: Account, body: axum::body::Body) -> Result<Response, ApiError> {
    let body = read_json(body, state.limits.max_body_bytes).await?.unwrap_or(Value::Null);
    let (Some(name), Some(key)) = (body["name"].as_str(), body["key"].as_str()) else {
        return Err(ApiError::field("key", "name and key are required"));
    };
    let added = runtime(&state)?.ssh_keys().add(name, key).map_err(|why| ApiError::field("key", why))?;
    Ok((StatusCode::CREATED, Json(json!({"id": added.id, "name": added.name}))).into_response())
}

async fn remove_ssh_key(
    State(state): State<ApiState>,
    _: Account,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    match runtime(&state)?.ssh_keys().remove(&id) {
        Ok(true) => Ok(Json(json!({})).into_response()),
        Ok(false) => Err(ApiError::with_message(Code::NotFound, "no such key")),
        Err(err) => {
            tracing::error!(%err, "SSH keys not written");
            Err(ApiError::new(Code::Internal))
        }
    }
}
