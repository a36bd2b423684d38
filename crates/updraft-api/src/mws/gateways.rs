//! Gateways as tenants: the admin API that creates, lists and deletes them, and each gateway's configuration
//! endpoint. The store keeps them (`saved_gateways.rs`): each change is saved before it takes effect here.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use updraft_gateway::gateway::DEFAULT_GATEWAY;
use updraft_gateway::{Gateway, GatewayConfig};

use super::config_wire;
use super::saved_gateways::{blank, saved};
use crate::ApiState;
use crate::auth;
use crate::body::read_json;
use crate::error::{ApiError, Code};

pub(crate) fn routes() -> crate::openapi::ApiRouter {
    crate::openapi::ApiRouter::new()
        .routes(utoipa_axum::routes!(list, create))
        .routes(utoipa_axum::routes!(show, remove))
        .routes(utoipa_axum::routes!(show_configuration, set_configuration))
}

fn require_server_admin(state: &ApiState, headers: &HeaderMap) -> Result<(), ApiError> {
    let creds = auth::admin_credentials(headers);
    if state.admin_token.is_none() {
        return Err(ApiError::with_message(Code::AccessDenied, "The admin API is disabled: set UPDRAFT_ADMIN_TOKEN"));
    }
    auth::require_token(&creds, state.admin_token.as_deref())
}

/// The gateway's own security token or the server admin token.
fn require_gateway_admin(state: &ApiState, gateway: &Gateway, headers: &HeaderMap) -> Result<(), ApiError> {
    let creds = auth::admin_credentials(headers);
    if auth::is_token(&creds, state.admin_token.as_deref()) {
        return Ok(());
    }
    auth::require_token(&creds, gateway.config().security_token.as_deref())
}

/// Checks a configuration change against its binding to a backend, whose changes then reach the gateway's sockets
/// and whose users it admits:
/// - (re)binding needs proof of owning the backend: its master key (`Enginio-Backend-MasterKey`) or instance secret
///   (`Enginio-Backend-Secret`) in a header, or the server admin token; the gateway's own token is not enough;
/// - a backend hosted here is verified only in-process, so its `uri` is unset, and stays so should it go away;
/// - any other `uri` a caller sets must pass the webhook guard (a request to it carries users' tokens).
///
/// The operator's settings (`EDS_BACKEND_ID`, `EDS_URI`) are trusted as they are.
async fn bind(
    state: &ApiState,
    headers: &HeaderMap,
    current: &GatewayConfig,
    config: &mut GatewayConfig,
    uri_given: bool,
) -> Result<(), ApiError> {
    let rebinding = config.eds_backend_id != current.eds_backend_id;
    let hosted = match &config.eds_backend_id {
        Some(id) => state.tenants.backend(id).await.map_err(|err| {
            tracing::error!(%err, "looking up a backend to bind failed");
            ApiError::with_message(Code::Unavailable, "Storage failure")
        })?,
        None => None,
    };
    if rebinding && config.eds_backend_id.is_some() && !owns(state, headers, hosted.as_ref()) {
        return Err(ApiError::with_message(
            Code::AccessDenied,
            "Binding a gateway to a backend needs the backend's master key (Enginio-Backend-MasterKey) or instance \
             secret (Enginio-Backend-Secret), or the server admin token",
        ));
    }
    if hosted.is_some() {
        config.eds_uri.clear();
        return Ok(());
    }
    if rebinding && !uri_given {
        config.eds_uri = state.default_eds_uri.clone();
    }
    // Where a remote backend's tokens are verified decides who receives them: moving it is rebinding.
    if !rebinding && config.eds_backend_id.is_some() && config.eds_uri != current.eds_uri && !owns(state, headers, None)
    {
        return Err(ApiError::with_message(
            Code::AccessDenied,
            "Moving the identity provider of a gateway bound to a remote backend needs the server admin token",
        ));
    }
    let set_by_caller = !config.eds_uri.is_empty() && config.eds_uri != state.default_eds_uri;
    if config.eds_uri != current.eds_uri && set_by_caller {
        state.webhook_guard.check(&config.eds_uri).await.map_err(|why| {
            ApiError::field("identityProvider", format!("The identity provider's uri is not allowed: {why}"))
        })?;
    }
    Ok(())
}

/// Whether the request proves it may bind `backend` (`None`: not hosted here, only the server admin may).
fn owns(state: &ApiState, headers: &HeaderMap, backend: Option<&updraft_store::Backend>) -> bool {
    if auth::is_token(&auth::admin_credentials(headers), state.admin_token.as_deref()) {
        return true;
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    backend.is_some_and(|backend| {
        header("enginio-backend-masterkey").is_some_and(|key| auth::same_secret(key, &backend.master_key))
            || header("enginio-backend-secret").is_some_and(|secret| auth::same_secret(secret, &backend.secret))
    })
}

/// Whether a configuration body sets `identityProvider.uri` itself.
fn uri_given(body: &Option<Value>) -> bool {
    body.as_ref().and_then(|b| b.get("identityProvider")).and_then(|p| p.get("uri")).is_some()
}

fn find(state: &ApiState, id: &str) -> Result<std::sync::Arc<Gateway>, ApiError> {
    state.gateways.get(id).ok_or_else(|| ApiError::with_message(Code::NotFound, "Gateway not found"))
}

fn gateway_json(gateway: &std::sync::Arc<Gateway>) -> Value {
    let config = gateway.config();
    let mut body = config_wire::to_json(&config);
    body["id"] = json!(gateway.id);
    body["securityToken"] = json!(config.security_token);
    body
}

fn storage_failure(err: updraft_store::StoreError) -> ApiError {
    tracing::error!(%err, "saving a gateway failed");
    ApiError::with_message(Code::Unavailable, "Storage failure")
}

/// Saves a new gateway, then serves it here; 409 when one with this id exists, here or on any node.
async fn insert(state: &ApiState, id: &str, config: GatewayConfig) -> Result<std::sync::Arc<Gateway>, ApiError> {
    let conflict = || ApiError::with_message(Code::Conflict, "A gateway with this id exists");
    if state.gateways.get(id).is_some() {
        return Err(conflict());
    }
    if !state.saved_gateways.insert_gateway(&saved(id, &config)).await.map_err(storage_failure)? {
        return Err(conflict());
    }
    Ok(state.gateways.upsert(id, config))
}

/// Deletes a saved gateway, then here (which closes its sockets on this node; other nodes follow).
async fn delete(state: &ApiState, id: &str) -> Result<(), ApiError> {
    let deleted = state.saved_gateways.delete_gateway(id).await.map_err(storage_failure)?;
    if state.gateways.remove(id).is_none() && !deleted {
        return Err(ApiError::with_message(Code::NotFound, "Gateway not found"));
    }
    Ok(())
}

/// Creates a gateway (admin token); the answer holds its security token.
///
/// Binding it to a backend (`identityProvider.backendId`) needs proof of owning that backend: its master key
/// (`Enginio-Backend-MasterKey`) or instance secret (`Enginio-Backend-Secret`), or the admin token. The gateway
/// is saved in the store and served by every node.
#[utoipa::path(post, path = "/v1/gateways", tag = crate::openapi::tag::GATEWAYS, security(("adminToken" = [])),
    request_body = super::doc::NewGateway, responses((status = 201, body = super::doc::GatewayWire),
        (status = 409, description = "A gateway with this id exists.", body = crate::openapi::ServiceError)))]
async fn create(State(state): State<ApiState>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    require_server_admin(&state, &headers)?;
    let body = read_json(body, state.limits.max_body_bytes).await?.unwrap_or_else(|| json!({}));
    let id = match body.get("id") {
        None | Some(Value::Null) => hex24(),
        Some(Value::String(id)) if valid_id(id) => id.clone(),
        Some(_) => return Err(ApiError::field("id", "Id must be 1-64 characters of [a-zA-Z0-9_-]")),
    };
    if state.gateways.get(&id).is_some() {
        return Err(ApiError::with_message(Code::Conflict, "A gateway with this id exists"));
    }
    let body = Some(body);
    let blank = blank(&state.default_eds_uri);
    let given = uri_given(&body);
    let mut config = config_wire::apply(&blank, body)?;
    bind(&state, &headers, &blank, &mut config, given).await?;
    config.security_token = Some(hex_secret());
    let gateway = insert(&state, &id, config).await?;
    Ok((StatusCode::CREATED, Json(gateway_json(&gateway))).into_response())
}

/// A gateway made for the platform account (an `mws` instance): the blank configuration and a fresh security
/// token, as `POST /v1/gateways` with `{}` makes; its JSON.
pub(crate) async fn create_for_platform(state: &ApiState, id: &str) -> Result<Value, ApiError> {
    let mut config = blank(&state.default_eds_uri);
    config.security_token = Some(hex_secret());
    Ok(gateway_json(&insert(state, id, config).await?))
}

/// The gateway's JSON (with its security token), if it exists.
pub(crate) fn platform_json(state: &ApiState, id: &str) -> Option<Value> {
    state.gateways.get(id).map(|gateway| gateway_json(&gateway))
}

/// The ids of every gateway.
pub(crate) fn ids(state: &ApiState) -> Vec<String> {
    state.gateways.list().iter().map(|g| g.id.clone()).collect()
}

/// Deletes a gateway for the platform account; the default gateway stays.
pub(crate) async fn remove_for_platform(state: &ApiState, id: &str) -> Result<(), ApiError> {
    if id == DEFAULT_GATEWAY {
        return Err(ApiError::with_message(Code::Conflict, "The default gateway cannot be deleted"));
    }
    delete(state, id).await
}

/// Lists every gateway, with its security token (admin token).
#[utoipa::path(get, path = "/v1/gateways", tag = crate::openapi::tag::GATEWAYS, security(("adminToken" = [])),
    responses((status = 200, body = super::doc::Gateways)))]
async fn list(State(state): State<ApiState>, headers: HeaderMap) -> Result<Response, ApiError> {
    require_server_admin(&state, &headers)?;
    let results: Vec<Value> = state.gateways.list().iter().map(gateway_json).collect();
    Ok(Json(json!({ "results": results })).into_response())
}

/// One gateway, with its security token (admin token).
#[utoipa::path(get, path = "/v1/gateways/{gateway_id}", tag = crate::openapi::tag::GATEWAYS, security(("adminToken" = [])),
    responses((status = 200, body = super::doc::GatewayWire)))]
async fn show(State(state): State<ApiState>, Path(id): Path<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    require_server_admin(&state, &headers)?;
    Ok(Json(gateway_json(&find(&state, &id)?)).into_response())
}

/// Deletes a gateway (admin token): its sockets close on every node (1001). The default gateway stays.
#[utoipa::path(delete, path = "/v1/gateways/{gateway_id}", tag = crate::openapi::tag::GATEWAYS, security(("adminToken" = [])),
    responses((status = 200, body = super::doc::Empty)))]
async fn remove(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_server_admin(&state, &headers)?;
    if id == DEFAULT_GATEWAY {
        return Err(ApiError::with_message(Code::BadRequest, "The default gateway cannot be deleted"));
    }
    delete(&state, &id).await?;
    Ok(Json(json!({})).into_response())
}

/// A gateway's configuration (its security token or the admin token).
#[utoipa::path(get, path = "/v1/gateways/{gateway_id}/configuration", tag = crate::openapi::tag::GATEWAYS,
    security(("gatewayToken" = []), ("adminToken" = [])), responses((status = 200, body = super::doc::Configuration)))]
async fn show_configuration(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let gateway = find(&state, &id)?;
    require_gateway_admin(&state, &gateway, &headers)?;
    Ok(Json(config_wire::to_json(&gateway.config())).into_response())
}

/// Changes a gateway's configuration: the members sent change, the others stay.
///
/// (Re)binding a backend needs proof of owning it, as at creation. The default gateway's configuration comes from
/// each node's settings: a change there lasts on the answering node until it restarts.
#[utoipa::path(put, path = "/v1/gateways/{gateway_id}/configuration", tag = crate::openapi::tag::GATEWAYS,
    security(("gatewayToken" = []), ("adminToken" = [])), request_body = super::doc::ConfigurationChange,
    responses((status = 200, body = super::doc::Configuration)))]
async fn set_configuration(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let gateway = find(&state, &id)?;
    require_gateway_admin(&state, &gateway, &headers)?;
    let body = read_json(body, state.limits.max_body_bytes).await?;
    let current = gateway.config();
    let given = uri_given(&body);
    let mut config = config_wire::apply(&current, body)?;
    bind(&state, &headers, &current, &mut config, given).await?;
    // The default gateway's configuration comes from each node's settings; a change lasts until this node stops.
    if gateway.id != DEFAULT_GATEWAY
        && !state.saved_gateways.update_gateway(&saved(&gateway.id, &config)).await.map_err(storage_failure)?
    {
        return Err(ApiError::with_message(Code::NotFound, "Gateway not found"));
    }
    gateway.set_config(config);
    Ok(Json(config_wire::to_json(&gateway.config())).into_response())
}

fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn hex24() -> String {
    hex_of(&rand::random::<[u8; 12]>())
}

fn hex_secret() -> String {
    hex_of(&rand::random::<[u8; 32]>())
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
