//! The MDB API (`/v1/services/:id…`) that `qtc-cli mdb …` calls with the cloud token, and attachments: an app
//! attached to an instance has its URL in `DATABASE_URL` (PostgreSQL) or `REDIS_URL` (Redis), or in a variable the
//! call names, and restarts with it (docs/databases.md).

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use updraft_databases::{DatabaseError, Databases, ServiceRecord};

use super::{Account, runtime, runtime_error};
use crate::ApiState;
use crate::body::read_json;
use crate::error::{ApiError, Code};

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/services/{id}", get(show))
        .route("/v1/services/{id}/logs", get(logs))
        .route("/v1/services/{id}/start", post(start))
        .route("/v1/services/{id}/stop", post(stop))
        .route("/v1/apps/{id}/services", get(attached).post(attach))
        .route("/v1/apps/{id}/services/{service}", delete(detach))
}

pub(super) fn databases(state: &ApiState) -> Result<&Arc<Databases>, ApiError> {
    state
        .databases
        .as_ref()
        .ok_or_else(|| ApiError::with_message(Code::NotFound, "this server runs no managed databases"))
}

pub(super) fn database_error(err: DatabaseError) -> ApiError {
    match err {
        DatabaseError::NotFound => ApiError::with_message(Code::NotFound, "no such database instance"),
        DatabaseError::Conflict(why) => ApiError::with_message(Code::Conflict, why),
        DatabaseError::Invalid(why) => ApiError::with_message(Code::ValidationFailed, why),
        DatabaseError::Server(why) => {
            tracing::error!(%why, "the MDB database server failed");
            ApiError::with_message(Code::Unavailable, "the database server did not do it; see the server's log")
        }
        DatabaseError::Io(err) => {
            tracing::error!(%err, "MDB records not written");
            ApiError::new(Code::Internal)
        }
    }
}

/// The §1.3.3 fields, plus `database` and a ready `url`.
pub(super) fn service_json(service: &ServiceRecord) -> Value {
    json!({
        "id": service.id,
        "name": service.name,
        "image": {"name": service.engine.image()},
        "size": service.size,
        "state": if service.running { "running" } else { "stopped" },
        "ip_address": service.host,
        "port": service.port,
        "username": service.username,
        "password": service.password,
        "database": service.database(),
        "url": service.url(),
        "attachedTo": service.attached,
    })
}

fn service_of(state: &ApiState, id: &str) -> Result<ServiceRecord, ApiError> {
    databases(state)?.get(id).ok_or_else(|| database_error(DatabaseError::NotFound))
}

async fn show(State(state): State<ApiState>, _: Account, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(service_json(&service_of(&state, &id)?)).into_response())
}

#[derive(Deserialize)]
struct Page {
    offset: Option<usize>,
    limit: Option<usize>,
}

/// `{"results":[{"time","log"}]}`: what Updraft did to the instance (the server's own log is the operator's).
async fn logs(
    State(state): State<ApiState>,
    _: Account,
    Path(id): Path<String>,
    Query(page): Query<Page>,
) -> Result<Response, ApiError> {
    let service = service_of(&state, &id)?;
    let results: Vec<Value> = service
        .log
        .iter()
        .skip(page.offset.unwrap_or(0))
        .take(page.limit.unwrap_or(100).min(1000))
        .map(|line| json!({"time": line.time, "log": line.line}))
        .collect();
    Ok(Json(json!({"results": results})).into_response())
}

async fn start(State(state): State<ApiState>, _: Account, Path(id): Path<String>) -> Result<Response, ApiError> {
    set_running(state, id, true).await
}

async fn stop(State(state): State<ApiState>, _: Account, Path(id): Path<String>) -> Result<Response, ApiError> {
    set_running(state, id, false).await
}

async fn set_running(state: ApiState, id: String, running: bool) -> Result<Response, ApiError> {
    let service = databases(&state)?.set_running(&id, running).await.map_err(database_error)?;
    Ok(Json(service_json(&service)).into_response())
}

/// `{"results":[{"id","variable"}]}`: the instances whose URL the app has.
async fn attached(State(state): State<ApiState>, _: Account, Path(app): Path<String>) -> Result<Response, ApiError> {
    runtime(&state)?.app(&app).ok_or_else(|| runtime_error(updraft_runtime::RuntimeError::NotFound))?;
    let results: Vec<Value> = databases(&state)?
        .all()
        .iter()
        .filter_map(|s| s.attached.get(&app).map(|variable| json!({"id": s.id, "variable": variable})))
        .collect();
    Ok(Json(json!({"results": results})).into_response())
}

/// `{"id":"mdb-…","variable"?:"OTHER_URL"}`: the app gets the instance's URL and restarts with it.
async fn attach(
    State(state): State<ApiState>,
    _: Account,
    Path(app): Path<String>,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let body = read_json(body, state.limits.max_body_bytes).await?.unwrap_or(Value::Null);
    let Some(id) = body["id"].as_str() else { return Err(ApiError::field("id", "the instance to attach")) };
    let service = service_of(&state, id)?;
    let variable = body["variable"].as_str().unwrap_or(service.engine.url_variable()).to_owned();
    if !updraft_runtime::names::env_name_ok(&variable) {
        return Err(ApiError::field("variable", "a variable name is letters, digits and _"));
    }
    let runtime = runtime(&state)?;
    runtime.app(&app).ok_or_else(|| runtime_error(updraft_runtime::RuntimeError::NotFound))?;
    let databases = databases(&state)?;
    databases.set_attached(id, &app, Some(&variable)).await.map_err(database_error)?;
    let changes = BTreeMap::from([(variable.clone(), Some(service.url()))]);
    if let Err(err) = runtime.set_env(&app, changes).await {
        // The app did not take the URL: not attached either.
        let _ = databases.set_attached(id, &app, None).await;
        return Err(runtime_error(err));
    }
    Ok((StatusCode::CREATED, Json(json!({"id": id, "variable": variable}))).into_response())
}

async fn detach(
    State(state): State<ApiState>,
    _: Account,
    Path((app, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let service = service_of(&state, &id)?;
    let Some(variable) = service.attached.get(&app) else {
        return Err(ApiError::with_message(Code::NotFound, "the app is not attached to this instance"));
    };
    runtime(&state)?.set_env(&app, BTreeMap::from([(variable.clone(), None)])).await.map_err(runtime_error)?;
    databases(&state)?.set_attached(&id, &app, None).await.map_err(database_error)?;
    Ok(Json(json!({})).into_response())
}

/// Deletes an instance after taking its URL from the apps that have it.
pub(super) async fn delete_service(state: &ApiState, id: &str) -> Result<(), ApiError> {
    let service = service_of(state, id)?;
    if let Ok(runtime) = runtime(state) {
        for (app, variable) in &service.attached {
            if let Err(err) = runtime.set_env(app, BTreeMap::from([(variable.clone(), None)])).await {
                tracing::warn!(%app, %err, "the deleted instance's URL stays in the app's environment");
            }
        }
    }
    databases(state)?.delete(id).await.map_err(database_error)?;
    Ok(())
}

/// Forgets a deleted app's attachments.
pub(super) async fn forget_app(state: &ApiState, app: &str) {
    let Ok(databases) = databases(state) else { return };
    for service in databases.all().iter().filter(|s| s.attached.contains_key(app)) {
        if let Err(err) = databases.set_attached(&service.id, app, None).await {
            tracing::warn!(%app, service = %service.id, %err, "attachment not forgotten");
        }
    }
}
