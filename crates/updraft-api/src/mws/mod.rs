//! Managed WebSocket: both URL layouts (the single-gateway OSS paths and `/v1/gateways/:gid/...`).

mod config_wire;
pub mod delivery;
pub mod gateways;
pub mod upgrade;
mod wire;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use updraft_bus::Publication;
use updraft_gateway::gateway::DEFAULT_GATEWAY;
use updraft_gateway::{Gateway, SocketId, Tag};

use crate::auth::{self, Need};
use crate::body::read_json;
use crate::error::{ApiError, Code};
use crate::{ApiState, timestamp};

pub fn routes() -> Router<ApiState> {
    let per_gateway = Router::new()
        .route("/websocket_uri", get(websocket_uri))
        .route("/messages", post(send_message))
        .route("/sockets", post(create_socket).get(list_sockets))
        .route("/sockets/{socket_id}", get(get_socket).delete(delete_socket))
        .route("/webhook_receivers/enginio", post(enginio_webhook));
    Router::new()
        .route(
            "/",
            get(|| async {
                Json(json!({"name": "MWS", "deployedAt": timestamp::format(std::time::SystemTime::now())}))
            }),
        )
        .merge(gateways::routes())
        .nest("/v1", per_gateway.clone())
        .nest("/v1/gateways/{gateway_id}", per_gateway)
}

/// The gateway a request addresses: named in the path, or the default one.
fn gateway(state: &ApiState, params: &std::collections::HashMap<String, String>) -> Result<Arc<Gateway>, ApiError> {
    let id = params.get("gateway_id").map(String::as_str).unwrap_or(DEFAULT_GATEWAY);
    state.gateways.get(id).ok_or_else(|| ApiError::with_message(Code::NotFound, "Gateway not found"))
}

type Params = Path<std::collections::HashMap<String, String>>;

async fn websocket_uri(
    State(state): State<ApiState>,
    Path(params): Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let gateway = gateway(&state, &params)?;
    let creds = auth::credentials(&headers)?;
    let caller = state.eds.authorize(&gateway.config(), &creds, Need::Read).await?;
    let tags = caller.socket_tags();
    let (id, expires_at) = issue(&state, &gateway, &tags)?;
    let body = json!({"uri": state.socket_uri(&id), "expiresAt": timestamp::format(expires_at), "tags": tags});
    Ok(Json(body).into_response())
}

async fn create_socket(
    State(state): State<ApiState>,
    Path(params): Params,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let gateway = gateway(&state, &params)?;
    require_admin(&gateway, &headers)?;
    let tags = wire::socket_tags(read_json(body, state.limits.max_body_bytes).await?)?;
    let (id, expires_at) = issue(&state, &gateway, &tags)?;
    let body = json!({
        "id": id.to_string(),
        "uri": state.socket_uri(&id),
        "expiresAt": timestamp::format(expires_at),
        "tags": tags,
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

fn issue(
    state: &ApiState,
    gateway: &Arc<Gateway>,
    tags: &[String],
) -> Result<(SocketId, std::time::SystemTime), ApiError> {
    let tags: Box<[Tag]> = tags.iter().map(|t| Tag::from(t.as_str())).collect();
    state
        .gateways
        .issue_ticket(gateway, tags)
        .ok_or_else(|| ApiError::with_message(Code::Unavailable, "Too many sockets waiting to connect"))
}

async fn send_message(
    State(state): State<ApiState>,
    Path(params): Params,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let gateway = gateway(&state, &params)?;
    let creds = auth::credentials(&headers)?;
    state.eds.authorize(&gateway.config(), &creds, Need::Write).await?;
    let message = wire::Message::parse(read_json(body, state.limits.max_body_bytes).await?)?;
    publish(&state, &gateway, &message).await?;
    Ok((StatusCode::CREATED, Json(message.echo())).into_response())
}

async fn enginio_webhook(
    State(state): State<ApiState>,
    Path(params): Params,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let gateway = gateway(&state, &params)?;
    require_admin(&gateway, &headers)?;
    let message = wire::enginio_message(read_json(body, state.limits.max_body_bytes).await?)?;
    publish(&state, &gateway, &message).await?;
    Ok((StatusCode::CREATED, Json(message.echo())).into_response())
}

async fn publish(state: &ApiState, gateway: &Gateway, message: &wire::Message) -> Result<(), ApiError> {
    let sockets = message.sockets.clone().unwrap_or_default();
    let everyone = sockets.iter().any(|s| s == "*");
    let publication = Publication {
        gateway: gateway.id.clone(),
        data: message.data.clone().into(),
        everyone,
        sockets: if everyone { Vec::new() } else { sockets },
        tags: if everyone { Vec::new() } else { message.tags.clone().unwrap_or_default() },
    };
    metrics::counter!("updraft_mws_messages_published_total").increment(1);
    state.bus.publish(publication).await.map_err(|err| {
        tracing::error!(%err, "publish failed");
        ApiError::with_message(Code::Unavailable, "Message bus unavailable")
    })
}

async fn list_sockets(
    State(state): State<ApiState>,
    Path(params): Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let gateway = gateway(&state, &params)?;
    require_admin(&gateway, &headers)?;
    let mut sockets = gateway.hub.list();
    sockets.sort_by_key(|s| s.connected_at);
    let results: Vec<Value> = sockets.iter().map(|s| wire::socket_json(s)).collect();
    Ok(Json(json!({ "results": results })).into_response())
}

async fn get_socket(
    State(state): State<ApiState>,
    Path(params): Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let gateway = gateway(&state, &params)?;
    require_admin(&gateway, &headers)?;
    let socket = socket_id(&params).and_then(|id| gateway.hub.get(&id)).ok_or_else(socket_not_found)?;
    Ok(Json(wire::socket_json(&socket)).into_response())
}

/// Closes the live connection (the original only forgot the record) or withdraws an unused URI.
async fn delete_socket(
    State(state): State<ApiState>,
    Path(params): Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let gateway = gateway(&state, &params)?;
    require_admin(&gateway, &headers)?;
    let id = socket_id(&params).ok_or_else(socket_not_found)?;
    if let Some(socket) = gateway.hub.get(&id) {
        gateway.hub.remove(&socket);
        socket.request_close(updraft_gateway::ws::close_code::NORMAL, "socket deleted");
    } else if !state.gateways.cancel_ticket(&gateway, &id) {
        return Err(socket_not_found());
    }
    Ok(Json(json!({})).into_response())
}

fn socket_id(params: &std::collections::HashMap<String, String>) -> Option<SocketId> {
    SocketId::parse(params.get("socket_id")?)
}

fn socket_not_found() -> ApiError {
    ApiError::with_message(Code::NotFound, "Socket not found")
}

fn require_admin(gateway: &Gateway, headers: &HeaderMap) -> Result<(), ApiError> {
    let creds = auth::credentials(headers)?;
    auth::require_token(&creds, gateway.config().security_token.as_deref())
}
