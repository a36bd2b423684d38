//! The platform API of `qtc-cli` and the npm SDK: the one cloud (account) of this server, its authorizations
//! (cloud tokens), its instances, and the datacenter that is this server. Instances of `mar` are apps, those of
//! `mdb` (or `mar` with `runtimeType: service_container`, as the npm SDK makes them) managed databases.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use updraft_runtime::clouds::Cloud;
use updraft_runtime::names::DATACENTER;
use updraft_runtime::records::{AppRecord, DEFAULT_CLOUD};

use super::databases::{database_error, databases, delete_service, forget_app};
use super::{require_account, runtime, runtime_error};
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
        .route("/v1/instances/{id}", get(instance).put(update_instance).delete(delete_instance))
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

fn instance_json(app: &AppRecord) -> Value {
    json!({
        "id": app.id,
        "name": app.name,
        "serviceProviderId": "mar",
        "datacenterId": DATACENTER,
        "accountId": app.cloud,
        "tags": app.tags,
        "config": {"runtimeSize": app.size, "runtimeType": "app"},
    })
}

fn service_instance_json(service: &updraft_databases::ServiceRecord) -> Value {
    json!({
        "id": service.id,
        "name": service.name,
        "serviceProviderId": "mdb",
        "datacenterId": DATACENTER,
        "accountId": service.cloud,
        "tags": service.tags,
        "config": {"runtimeSize": service.size, "serviceImage": service.engine.image()},
    })
}

async fn clouds(State(state): State<ApiState>, headers: HeaderMap) -> Result<Response, ApiError> {
    require_account(&state, &headers).await?;
    let clouds: Vec<Value> = runtime(&state)?.clouds().all().iter().map(cloud_json).collect();
    Ok(Json(json!({"results": clouds})).into_response())
}

async fn cloud(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(cloud): Path<String>,
) -> Result<Response, ApiError> {
    require_account(&state, &headers).await?;
    Ok(Json(cloud_json(&known_cloud(&state, &cloud)?)).into_response())
}

/// `{"name","datacenter"?,"vpc"?}` → 201, the cloud. Every cloud is in this server's one datacenter.
async fn create_cloud(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    require_account(&state, &headers).await?;
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
    headers: HeaderMap,
    Path(cloud): Path<String>,
) -> Result<Response, ApiError> {
    require_account(&state, &headers).await?;
    known_cloud(&state, &cloud)?;
    if cloud == DEFAULT_CLOUD {
        return Err(ApiError::with_message(Code::Conflict, "the default cloud stays"));
    }
    if !cloud_instances(&state, &cloud, None).is_empty() {
        return Err(ApiError::with_message(Code::Conflict, "the cloud holds instances: delete them first"));
    }
    runtime(&state)?.clouds().remove(&cloud).map_err(|err| {
        tracing::error!(%err, "clouds not written");
        ApiError::new(Code::Internal)
    })?;
    Ok(Json(json!({})).into_response())
}

/// The cloud's instances of `provider` (`mar`, `mdb`; all when `None`), apps first.
fn cloud_instances(state: &ApiState, cloud: &str, provider: Option<&str>) -> Vec<Value> {
    let mut results = Vec::new();
    if let (None | Some("mar"), Some(runtime)) = (provider, &state.runtime) {
        results.extend(runtime.apps().iter().filter(|a| a.cloud == cloud).map(instance_json));
    }
    if let (None | Some("mdb"), Some(databases)) = (provider, &state.databases) {
        results.extend(databases.all().iter().filter(|s| s.cloud == cloud).map(service_instance_json));
    }
    results
}

/// The cloud token the MAR API takes: a token of the account, a new one on each call (every cloud's is the
/// account's: one account holds them all).
async fn authorizations(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(cloud): Path<String>,
) -> Result<Response, ApiError> {
    require_account(&state, &headers).await?;
    known_cloud(&state, &cloud)?;
    let token = crate::eds::account_token(&state).await.map_err(|e| e.0)?;
    Ok(Json(json!({"results": [{"access_token": token, "token_type": "bearer"}]})).into_response())
}

#[derive(Deserialize)]
struct Provider {
    provider: Option<String>,
}

async fn instances(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(cloud): Path<String>,
    Query(query): Query<Provider>,
) -> Result<Response, ApiError> {
    require_account(&state, &headers).await?;
    known_cloud(&state, &cloud)?;
    Ok(Json(json!({"results": cloud_instances(&state, &cloud, query.provider.as_deref())})).into_response())
}

async fn create_instance(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(cloud): Path<String>,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    require_account(&state, &headers).await?;
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
    match (provider, runtime_type) {
        ("mar", "app") => {
            let app = runtime(&state)?.create_app(name, size, &cloud).await.map_err(runtime_error)?;
            Ok((StatusCode::CREATED, Json(instance_json(&app))).into_response())
        }
        ("mdb" | "mar", "service_container") => {
            let image = config["serviceImage"].as_str().unwrap_or_default();
            let service = databases(&state)?.create(name, image, size, &cloud).await.map_err(database_error)?;
            Ok((StatusCode::CREATED, Json(service_instance_json(&service))).into_response())
        }
        _ => {
            let why = format!("{provider:?} ({runtime_type}): this server makes mar apps and mdb databases here");
            Err(ApiError::field("serviceProviderId", why))
        }
    }
}

async fn instance(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require_account(&state, &headers).await?;
    if let Some(service) = state.databases.as_ref().and_then(|d| d.get(&id)) {
        return Ok(Json(service_instance_json(&service)).into_response());
    }
    let app = runtime(&state)?.app(&id).ok_or_else(|| ApiError::with_message(Code::NotFound, "no such instance"))?;
    Ok(Json(instance_json(&app)).into_response())
}

/// `{"name"?,"tags"?}`: tags change; the name is part of the id, so it may only be repeated.
async fn update_instance(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    require_account(&state, &headers).await?;
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
    if let Some(service) = state.databases.as_ref().and_then(|d| d.get(&id)) {
        same_name(&body, &service.name)?;
        let service = match tags {
            Some(tags) => databases(&state)?.set_tags(&id, tags).await.map_err(database_error)?,
            None => service,
        };
        return Ok(Json(service_instance_json(&service)).into_response());
    }
    let runtime = runtime(&state)?;
    let app = runtime.app(&id).ok_or_else(|| ApiError::with_message(Code::NotFound, "no such instance"))?;
    same_name(&body, &app.name)?;
    let app = match tags {
        Some(tags) => runtime.set_tags(&id, tags).await.map_err(runtime_error)?,
        None => app,
    };
    Ok(Json(instance_json(&app)).into_response())
}

fn same_name(body: &Value, name: &str) -> Result<(), ApiError> {
    match body["name"].as_str() {
        Some(given) if given != name => Err(ApiError::field("name", "an instance keeps its name (it is in its id)")),
        _ => Ok(()),
    }
}

async fn delete_instance(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require_account(&state, &headers).await?;
    if state.databases.as_ref().is_some_and(|d| d.get(&id).is_some()) {
        delete_service(&state, &id).await?;
    } else {
        runtime(&state)?.delete_app(&id).await.map_err(runtime_error)?;
        forget_app(&state, &id).await;
    }
    Ok(Json(json!({})).into_response())
}

/// One datacenter, this server, whose every service is on this listener.
async fn datacenters(
    State(state): State<ApiState>,
    headers: HeaderMap,
    request: axum::http::Request<axum::body::Body>,
) -> Result<Response, ApiError> {
    require_account(&state, &headers).await?;
    let (parts, _) = request.into_parts();
    let origin = state.http_origin(&parts);
    let services: Vec<Value> =
        ["mar", "mdb", "eds", "mws"].iter().map(|id| json!({"id": id, "url": format!("{origin}")})).collect();
    Ok(Json(json!({"results": [{"id": DATACENTER, "description": "This Updraft server", "services": services}]}))
        .into_response())
}

/// `{"results":[{"id","name"}]}`: the keys that may push over SSH.
async fn ssh_keys(State(state): State<ApiState>, headers: HeaderMap) -> Result<Response, ApiError> {
    require_account(&state, &headers).await?;
    let keys = runtime(&state)?.ssh_keys().all();
    let results: Vec<Value> = keys.iter().map(|k| json!({"id": k.id, "name": k.name})).collect();
    Ok(Json(json!({"results": results})).into_response())
}

/// `{"name","key":"ssh-ed25519 AAAA…"}` → 201 `{"id","name"}`.
async fn add_ssh_key(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    require_account(&state, &headers).await?;
    let body = read_json(body, state.limits.max_body_bytes).await?.unwrap_or(Value::Null);
    let (Some(name), Some(key)) = (body["name"].as_str(), body["key"].as_str()) else {
        return Err(ApiError::field("key", "name and key are required"));
    };
    let added = runtime(&state)?.ssh_keys().add(name, key).map_err(|why| ApiError::field("key", why))?;
    Ok((StatusCode::CREATED, Json(json!({"id": added.id, "name": added.name}))).into_response())
}

async fn remove_ssh_key(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require_account(&state, &headers).await?;
    match runtime(&state)?.ssh_keys().remove(&id) {
        Ok(true) => Ok(Json(json!({})).into_response()),
        Ok(false) => Err(ApiError::with_message(Code::NotFound, "no such key")),
        Err(err) => {
            tracing::error!(%err, "SSH keys not written");
            Err(ApiError::new(Code::Internal))
        }
    }
}
