//! The MDB API (`/v1/services/:id…`) that `qtc-cli mdb …` calls with the cloud token, and attachments: an app
//! attached to an instance has its URL in `DATABASE_URL` (PostgreSQL) or `REDIS_URL` (Redis), or in a variable the
//! call names, and restarts with it (docs/databases.md).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;
use updraft_databases::{DatabaseError, Databases, ServiceRecord};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;

use super::{Account, LogEntries, LogEntryWire, runtime, runtime_error};
use crate::ApiState;
use crate::body::read_json;
use crate::error::{ApiError, Code};
use crate::openapi::{ApiRouter, ServiceError, tag};

pub(super) fn routes() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(show))
        .routes(routes!(logs))
        .routes(routes!(start))
        .routes(routes!(stop))
        .routes(routes!(attached, attach))
        .routes(routes!(detach))
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

// Members sorted by name, as `json!` wrote them (see `mar/mod.rs`).

/// A managed database instance, with what its clients need to connect: its database, credentials and URL.
#[derive(Serialize, ToSchema)]
struct ServiceWire {
    /// The apps that have its URL, each with the variable it is in (`{"<app-id>": "DATABASE_URL"}`).
    #[serde(rename = "attachedTo")]
    attached_to: BTreeMap<String, String>,
    /// The database's name (PostgreSQL), or the prefix every key must have (Redis).
    database: String,
    /// `mdb-local-1-<name>`.
    id: String,
    image: ServiceImage,
    /// The database server's host, as apps reach it.
    ip_address: String,
    name: String,
    password: String,
    port: u16,
    /// 1, 2, 4 or 8: the role's connection limit is 10 a unit.
    size: u8,
    /// `running`, or `stopped` (its clients may not log in).
    state: &'static str,
    /// `postgres://<user>:<password>@<host>:<port>/<database>` or `redis://<user>:<password>@<host>:<port>/0`.
    url: String,
    /// The role (PostgreSQL) or ACL user (Redis).
    username: String,
}

#[derive(Serialize, ToSchema)]
struct ServiceImage {
    /// The engine's image: `qtcs/postgresql:15` or `qtcs/redis:7`.
    name: &'static str,
}

/// An attachment: the instance whose URL an app has, and the variable it is in.
#[derive(Serialize, ToSchema)]
struct AttachmentWire {
    /// The database instance's id.
    id: String,
    variable: String,
}

#[derive(Serialize, ToSchema)]
struct Attachments {
    results: Vec<AttachmentWire>,
}

/// An instance to attach.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "read by hand in `attach`, for its errors; this is its schema")]
struct NewAttachmentWire {
    /// The database instance's id, `mdb-local-1-<name>`.
    id: String,
    /// The variable the URL goes in: `DATABASE_URL` (PostgreSQL) or `REDIS_URL` (Redis) if not given. Letters,
    /// digits and `_`, not starting with a digit.
    variable: Option<String>,
}

fn service_json(service: &ServiceRecord) -> ServiceWire {
    ServiceWire {
        attached_to: service.attached.clone(),
        database: service.database(),
        id: service.id.clone(),
        image: ServiceImage { name: service.engine.image() },
        ip_address: service.host.clone(),
        name: service.name.clone(),
        password: service.password.clone(),
        port: service.port,
        size: service.size,
        state: if service.running { "running" } else { "stopped" },
        url: service.url(),
        username: service.username.clone(),
    }
}

fn service_of(state: &ApiState, id: &str) -> Result<ServiceRecord, ApiError> {
    databases(state)?.get(id).ok_or_else(|| database_error(DatabaseError::NotFound))
}

/// One database instance, with its credentials and URL.
#[utoipa::path(get, path = "/v1/services/{id}", tag = tag::DATABASES, security(("accountToken" = [])),
    params(("id" = String, Path, description = "The instance's id, `mdb-local-1-<name>`.")),
    responses((status = 200, body = ServiceWire)))]
async fn show(State(state): State<ApiState>, _: Account, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(service_json(&service_of(&state, &id)?)).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct Page {
    /// Skips this many lines, oldest first.
    offset: Option<usize>,
    /// At most this many lines: up to 1000, 100 if not given.
    limit: Option<usize>,
}

/// What Updraft did to the instance (created, attached, stopped…), oldest first.
///
/// The database server's own log is the operator's.
#[utoipa::path(get, path = "/v1/services/{id}/logs", tag = tag::DATABASES, security(("accountToken" = [])),
    params(("id" = String, Path, description = "The instance's id."), Page),
    responses((status = 200, body = LogEntries)))]
async fn logs(
    State(state): State<ApiState>,
    _: Account,
    Path(id): Path<String>,
    Query(page): Query<Page>,
) -> Result<Response, ApiError> {
    let service = service_of(&state, &id)?;
    let results = service
        .log
        .iter()
        .skip(page.offset.unwrap_or(0))
        .take(page.limit.unwrap_or(100).min(1000))
        .map(|line| LogEntryWire { log: line.line.clone(), time: line.time.clone() })
        .collect();
    Ok(Json(LogEntries { results }).into_response())
}

/// Lets the instance's clients log in again.
#[utoipa::path(post, path = "/v1/services/{id}/start", tag = tag::DATABASES, security(("accountToken" = [])),
    params(("id" = String, Path, description = "The instance's id.")), responses((status = 200, body = ServiceWire),
    (status = 503, description = "The database server did not do it.", body = ServiceError)))]
async fn start(State(state): State<ApiState>, _: Account, Path(id): Path<String>) -> Result<Response, ApiError> {
    set_running(state, id, true).await
}

/// Stops the instance: its clients may not log in, and their sessions are ended.
///
/// The PostgreSQL role may not log in and its sessions are ended; the Redis user is off and its connections
/// killed.
#[utoipa::path(post, path = "/v1/services/{id}/stop", tag = tag::DATABASES, security(("accountToken" = [])),
    params(("id" = String, Path, description = "The instance's id.")), responses((status = 200, body = ServiceWire),
    (status = 503, description = "The database server did not do it.", body = ServiceError)))]
async fn stop(State(state): State<ApiState>, _: Account, Path(id): Path<String>) -> Result<Response, ApiError> {
    set_running(state, id, false).await
}

async fn set_running(state: ApiState, id: String, running: bool) -> Result<Response, ApiError> {
    let service = databases(&state)?.set_running(&id, running).await.map_err(database_error)?;
    Ok(Json(service_json(&service)).into_response())
}

/// The database instances attached to the app: those whose URL it has.
#[utoipa::path(get, path = "/v1/apps/{id}/services", tag = tag::DATABASES, security(("accountToken" = [])),
    params(("id" = String, Path, description = "The app's id.")), responses((status = 200, body = Attachments)))]
async fn attached(State(state): State<ApiState>, _: Account, Path(app): Path<String>) -> Result<Response, ApiError> {
    runtime(&state)?.app(&app).ok_or_else(|| runtime_error(updraft_runtime::RuntimeError::NotFound))?;
    let results = databases(&state)?
        .all()
        .iter()
        .filter_map(|s| {
            s.attached.get(&app).map(|variable| AttachmentWire { id: s.id.clone(), variable: variable.clone() })
        })
        .collect();
    Ok(Json(Attachments { results }).into_response())
}

/// Attaches a database instance to the app: the app gets its URL in a variable and restarts with it.
///
/// The restart is health-checked like any change of variables; if it fails, nothing is attached.
#[utoipa::path(post, path = "/v1/apps/{id}/services", tag = tag::DATABASES, security(("accountToken" = [])),
    params(("id" = String, Path, description = "The app's id.")), request_body = NewAttachmentWire,
    responses((status = 201, body = AttachmentWire),
    (status = 409, description = "The app did not come up with the URL; nothing attached.", body = ServiceError),
    (status = 422, description = "No instance, or a bad variable name.", body = ServiceError)))]
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
    Ok((StatusCode::CREATED, Json(AttachmentWire { id: id.to_owned(), variable })).into_response())
}

/// Detaches a database instance from the app: the variable is unset and the app restarts without it.
#[utoipa::path(delete, path = "/v1/apps/{id}/services/{service}", tag = tag::DATABASES,
    security(("accountToken" = [])), params(("id" = String, Path, description = "The app's id."),
        ("service" = String, Path, description = "The database instance's id.")),
    responses((status = 200, description = "Detached: `{}`.", body = Object)))]
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
