//! The platform API of `qtc-cli` and the npm SDK: the one cloud (account) of this server, its authorizations
//! (cloud tokens), its instances, and the datacenter that is this server. Instances of `mar` are apps, those of
//! `mdb` (or `mar` with `runtimeType: service_container`, as the npm SDK makes them) managed databases, those of
//! `eds` EDS apps and those of `mws` gateways (`instances.rs`).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use updraft_runtime::clouds::Cloud;
use updraft_runtime::names::DATACENTER;
use updraft_runtime::records::DEFAULT_CLOUD;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;

use super::databases::{database_error, databases};
use super::instances::{self, Instance, InstanceWire};
use super::{Account, LogEntries, LogEntryWire, NumberOrString, runtime, runtime_error};
use crate::ApiState;
use crate::body::read_json;
use crate::error::{ApiError, Code};
use crate::openapi::{ApiRouter, ServiceError, tag};

pub(super) fn routes() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(clouds))
        .routes(routes!(create_cloud))
        .routes(routes!(cloud, delete_cloud))
        .routes(routes!(authorizations))
        .routes(routes!(instances, create_instance))
        .routes(routes!(cloud_log))
        .routes(routes!(instance, update_instance, delete_instance))
        .routes(routes!(instance_authorizations))
        .routes(routes!(datacenters))
        .routes(routes!(ssh_keys, add_ssh_key))
        .routes(routes!(remove_ssh_key))
}

/// A cloud: what the platform calls an account, a set of instances. Every cloud is in this server's datacenter.
#[derive(Serialize, ToSchema)]
struct CloudWire {
    datacenter: DatacenterId,
    /// `default` for the cloud every server has, 24 hex digits for the others.
    id: String,
    name: String,
}

#[derive(Serialize, ToSchema)]
struct DatacenterId {
    /// `local-1`: this server.
    id: &'static str,
}

#[derive(Serialize, ToSchema)]
struct Clouds {
    results: Vec<CloudWire>,
}

/// A new cloud.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "read by hand in `create_cloud`, for its errors; this is its schema")]
struct NewCloudWire {
    /// 1 to 100 characters, unique among the clouds.
    name: String,
    /// This server's, `local-1`, if given: another is refused (422).
    datacenter: Option<String>,
    /// Accepted and ignored.
    vpc: Option<Value>,
}

/// A token of the account, which the MAR, MDB and platform calls take as Bearer.
#[derive(Serialize, ToSchema)]
struct CloudTokenWire {
    access_token: String,
    /// `bearer`.
    token_type: &'static str,
}

#[derive(Serialize, ToSchema)]
struct CloudTokens {
    /// One token, new on each call.
    results: Vec<CloudTokenWire>,
}

#[derive(Serialize, ToSchema)]
struct Instances {
    results: Vec<InstanceWire>,
}

/// A new instance: an app (`mar`), a database (`mdb`, or `mar` with `runtimeType: service_container`), an EDS
/// app (`eds`) or a gateway (`mws`).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code, reason = "read by hand in `create_instance`, for its errors; this is its schema")]
struct NewInstanceWire {
    /// For apps, databases and gateways 1 to 51 lower-case letters, digits and hyphens, starting with a letter:
    /// the id is `<provider>-local-1-<name>`.
    name: String,
    /// `mar` (the default), `mdb`, `eds` or `mws`.
    service_provider_id: Option<String>,
    config: Option<NewInstanceConfigWire>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code, reason = "read by hand in `create_instance`; this is its schema")]
struct NewInstanceConfigWire {
    /// `app` (the default of `mar`) or `service_container` (a database; the default of `mdb`).
    runtime_type: Option<String>,
    /// 1, 2, 4 or 8 (1 when not given): the share of memory, CPU and processes of an app, the connection limit
    /// of a database.
    runtime_size: Option<NumberOrString>,
    /// A database's image: a name with `postgresql`, `postgres` or `redis` in it, any tag
    /// (`qtcs/postgresql:9.3`).
    service_image: Option<String>,
}

/// A change of an instance.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "read by hand in `update_instance`, for its errors; this is its schema")]
struct InstanceChangeWire {
    /// The instance's name, which is in its id: it may be repeated, not changed (422).
    name: Option<String>,
    /// The new tags: at most 50 strings of 1 to 100 characters.
    tags: Option<Vec<String>>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct Provider {
    /// Only the instances of this service: `mar`, `mdb`, `eds` or `mws`.
    provider: Option<String>,
}

/// A datacenter: this server, whose every service is on the listener called.
#[derive(Serialize, ToSchema)]
struct DatacenterWire {
    description: &'static str,
    /// `local-1`.
    id: &'static str,
    services: Vec<DatacenterService>,
}

#[derive(Serialize, ToSchema)]
struct DatacenterService {
    /// `mar`, `mdb`, `eds` or `mws`.
    id: &'static str,
    /// Where the service answers: this server's origin.
    url: String,
}

#[derive(Serialize, ToSchema)]
struct Datacenters {
    results: Vec<DatacenterWire>,
}

/// An SSH key that may push to the apps' repositories.
#[derive(Serialize, ToSchema)]
struct SshKeyWire {
    id: String,
    name: String,
}

#[derive(Serialize, ToSchema)]
struct SshKeys {
    results: Vec<SshKeyWire>,
}

/// A new SSH key.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "read by hand in `add_ssh_key`, for its errors; this is its schema")]
struct NewSshKeyWire {
    name: String,
    /// An OpenSSH public key line (`ssh-ed25519 AAAA… comment`), not registered yet.
    key: String,
}

fn cloud_json(cloud: &Cloud) -> CloudWire {
    CloudWire { datacenter: DatacenterId { id: DATACENTER }, id: cloud.id.clone(), name: cloud.name.clone() }
}

fn known_cloud(state: &ApiState, cloud: &str) -> Result<Cloud, ApiError> {
    runtime(state)?.clouds().get(cloud).ok_or_else(|| ApiError::with_message(Code::NotFound, "no such cloud"))
}

/// The clouds, `default` first.
#[utoipa::path(get, path = "/v1/user/accounts", tag = tag::PLATFORM, security(("accountToken" = [])),
    responses((status = 200, body = Clouds)))]
async fn clouds(State(state): State<ApiState>, _: Account) -> Result<Response, ApiError> {
    let clouds: Vec<CloudWire> = runtime(&state)?.clouds().all().iter().map(cloud_json).collect();
    Ok(Json(Clouds { results: clouds }).into_response())
}

/// One cloud.
#[utoipa::path(get, path = "/v1/accounts/{cloud}", tag = tag::PLATFORM, security(("accountToken" = [])),
    params(("cloud" = String, Path, description = "The cloud's id (`default`, or 24 hex digits).")),
    responses((status = 200, body = CloudWire)))]
async fn cloud(State(state): State<ApiState>, _: Account, Path(cloud): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(cloud_json(&known_cloud(&state, &cloud)?)).into_response())
}

/// Creates a cloud, in this server's one datacenter.
#[utoipa::path(post, path = "/v1/accounts", tag = tag::PLATFORM, security(("accountToken" = [])),
    request_body = NewCloudWire, responses((status = 201, body = CloudWire),
    (status = 422, description = "No name, a taken one, or another datacenter.", body = ServiceError)))]
async fn create_cloud(State(state): State<ApiState>, _: Account, body: axum::body::Body) -> Result<Response, ApiError> {
    let body = read_json(body, state.limits.max_body_bytes).await?.unwrap_or(Value::Null);
    let Some(name) = body["name"].as_str() else { return Err(ApiError::field("name", "can't be blank")) };
    if let Some(datacenter) = body["datacenter"].as_str().filter(|dc| *dc != DATACENTER) {
        return Err(ApiError::field("datacenter", format!("{datacenter:?}: this server is datacenter {DATACENTER}")));
    }
    let cloud = runtime(&state)?.clouds().add(name).map_err(|why| ApiError::field("name", why))?;
    Ok((StatusCode::CREATED, Json(cloud_json(&cloud))).into_response())
}

/// Deletes an empty cloud other than `default`.
#[utoipa::path(delete, path = "/v1/accounts/{cloud}", tag = tag::PLATFORM, security(("accountToken" = [])),
    params(("cloud" = String, Path, description = "The cloud's id.")),
    responses((status = 200, description = "Deleted: `{}`.", body = Object),
    (status = 409, description = "The cloud is `default`, or holds instances.", body = ServiceError)))]
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

/// A cloud token for the MAR and MDB calls: a new token of the account, on each call.
///
/// One account holds every cloud, so every cloud's token is the account's. `GET` and `POST` do the same.
#[utoipa::path(method(get, post), path = "/v1/accounts/{cloud}/authorizations", tag = tag::PLATFORM,
    security(("accountToken" = [])), params(("cloud" = String, Path, description = "The cloud's id.")),
    responses((status = 200, body = CloudTokens)))]
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
    let token = CloudTokenWire { access_token: token, token_type: "bearer" };
    Ok(Json(CloudTokens { results: vec![token] }).into_response())
}

/// A cloud token, the older CLI's way: the same token as `/v1/accounts/{cloud}/authorizations`.
#[utoipa::path(get, path = "/v1/instances/{id}/authorizations", tag = tag::PLATFORM,
    security(("accountToken" = [])), params(("id" = String, Path, description = "An instance's id, of any service.")),
    responses((status = 200, body = CloudTokens)))]
async fn instance_authorizations(
    State(state): State<ApiState>,
    _: Account,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    found(&state, &id).await?;
    cloud_token(&state).await
}

/// What happened in a cloud, newest first.
///
/// What the records say happened to the cloud's apps (created, each release deployed) and databases (their own
/// log), one line each, prefixed with the instance's id.
#[utoipa::path(get, path = "/v1/accounts/{cloud}/log", tag = tag::PLATFORM, security(("accountToken" = [])),
    params(("cloud" = String, Path, description = "The cloud's id.")), responses((status = 200, body = LogEntries)))]
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
    let results = events.into_iter().map(|(time, log)| LogEntryWire { log, time }).collect();
    Ok(Json(LogEntries { results }).into_response())
}

/// The cloud's instances: apps, databases, EDS apps and gateways.
#[utoipa::path(get, path = "/v1/accounts/{cloud}/instances", tag = tag::PLATFORM, security(("accountToken" = [])),
    params(("cloud" = String, Path, description = "The cloud's id."), Provider),
    responses((status = 200, body = Instances)))]
async fn instances(
    State(state): State<ApiState>,
    _: Account,
    Path(cloud): Path<String>,
    Query(query): Query<Provider>,
) -> Result<Response, ApiError> {
    known_cloud(&state, &cloud)?;
    let results = instances::in_cloud(&state, &cloud, query.provider.as_deref()).await?;
    Ok(Json(Instances { results }).into_response())
}

/// Creates an instance in the cloud: an app, a database, an EDS app or a gateway.
///
/// `mdb` makes a database (`docs/databases.md`); `eds` an EDS app, as `POST /v1/account/apps` does (`config`
/// holds its development and production backends with their keys); `mws` a gateway `mws-local-1-<name>`, as
/// `POST /v1/gateways` does (`config` holds its configuration and `securityToken`).
#[utoipa::path(post, path = "/v1/accounts/{cloud}/instances", tag = tag::PLATFORM, security(("accountToken" = [])),
    params(("cloud" = String, Path, description = "The cloud's id.")), request_body = NewInstanceWire,
    responses((status = 201, body = InstanceWire),
    (status = 409, description = "An instance of that name exists.", body = ServiceError),
    (status = 422, description = "No name, a bad one, an unknown provider, size or image.", body = ServiceError),
    (status = 503, description = "The database server, or the gateways' storage, did not make it.", body = ServiceError)))]
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

/// One instance, of any service.
#[utoipa::path(get, path = "/v1/instances/{id}", tag = tag::PLATFORM, security(("accountToken" = [])),
    params(("id" = String, Path, description = "The instance's id.")), responses((status = 200, body = InstanceWire)))]
async fn instance(State(state): State<ApiState>, _: Account, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(found(&state, &id).await?.json(&state)).into_response())
}

/// Sets an instance's tags; its name is part of its id, so it may only be repeated.
#[utoipa::path(put, path = "/v1/instances/{id}", tag = tag::PLATFORM, security(("accountToken" = [])),
    params(("id" = String, Path, description = "The instance's id.")), request_body = InstanceChangeWire,
    responses((status = 200, body = InstanceWire),
    (status = 422, description = "Bad tags, or another name.", body = ServiceError)))]
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

/// Deletes an instance and what hangs on it.
///
/// An app is stopped and its repository, releases, cache and logs removed; a database's URL is taken out of the
/// apps it is attached to, and its database and role (or keys and user) dropped. The default gateway stays.
#[utoipa::path(delete, path = "/v1/instances/{id}", tag = tag::PLATFORM, security(("accountToken" = [])),
    params(("id" = String, Path, description = "The instance's id.")),
    responses((status = 200, description = "Deleted: `{}`.", body = Object),
    (status = 409, description = "The default gateway.", body = ServiceError),
    (status = 503, description = "The database server, or the gateways' storage, did not delete it.", body = ServiceError)))]
async fn delete_instance(
    State(state): State<ApiState>,
    _: Account,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    instances::delete(&state, found(&state, &id).await?).await?;
    Ok(Json(json!({})).into_response())
}

/// The datacenters: one, this server, whose every service is on this listener.
#[utoipa::path(get, path = "/v1/datacenters", tag = tag::PLATFORM, security(("accountToken" = [])),
    responses((status = 200, body = Datacenters)))]
async fn datacenters(
    State(state): State<ApiState>,
    _: Account,
    request: axum::http::Request<axum::body::Body>,
) -> Result<Response, ApiError> {
    let (parts, _) = request.into_parts();
    let origin = state.http_origin(&parts);
    let services =
        ["mar", "mdb", "eds", "mws"].into_iter().map(|id| DatacenterService { id, url: origin.clone() }).collect();
    let datacenter = DatacenterWire { description: "This Updraft server", id: DATACENTER, services };
    Ok(Json(Datacenters { results: vec![datacenter] }).into_response())
}

/// The SSH keys that may push to the apps' repositories.
#[utoipa::path(get, path = "/v1/user/ssh_keys", tag = tag::PLATFORM, security(("accountToken" = [])),
    responses((status = 200, body = SshKeys)))]
async fn ssh_keys(State(state): State<ApiState>, _: Account) -> Result<Response, ApiError> {
    let keys = runtime(&state)?.ssh_keys().all();
    let results = keys.iter().map(|k| SshKeyWire { id: k.id.clone(), name: k.name.clone() }).collect();
    Ok(Json(SshKeys { results }).into_response())
}

/// Registers an SSH key that may push to the apps' repositories (with `--ssh-listen`).
#[utoipa::path(post, path = "/v1/user/ssh_keys", tag = tag::PLATFORM, security(("accountToken" = [])),
    request_body = NewSshKeyWire, responses((status = 201, body = SshKeyWire),
    (status = 422, description = "No name or key, a line that is no public key, or a key registered already.",
        body = ServiceError)))]
async fn add_ssh_key(State(state): State<ApiState>, _: Account, body: axum::body::Body) -> Result<Response, ApiError> {
    let body = read_json(body, state.limits.max_body_bytes).await?.unwrap_or(Value::Null);
    let (Some(name), Some(key)) = (body["name"].as_str(), body["key"].as_str()) else {
        return Err(ApiError::field("key", "name and key are required"));
    };
    let added = runtime(&state)?.ssh_keys().add(name, key).map_err(|why| ApiError::field("key", why))?;
    Ok((StatusCode::CREATED, Json(SshKeyWire { id: added.id, name: added.name })).into_response())
}

/// Removes an SSH key.
#[utoipa::path(delete, path = "/v1/user/ssh_keys/{id}", tag = tag::PLATFORM, security(("accountToken" = [])),
    params(("id" = String, Path, description = "The key's id.")),
    responses((status = 200, description = "Removed: `{}`.", body = Object)))]
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
