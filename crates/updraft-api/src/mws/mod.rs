//! Managed WebSocket: both URL layouts (the single-gateway OSS paths and `/v1/gateways/:gid/...`).

mod config_wire;
mod doc;
pub mod gateways;
pub mod saved_gateways;
pub mod upgrade;
mod wire;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use updraft_bus::{Follows, Publication, Redeemed, SharedTicket};
use updraft_core::access::{USERGROUPS, USERS};
use updraft_core::timestamp;
use updraft_gateway::gateway::DEFAULT_GATEWAY;
use updraft_gateway::{Gateway, Refusal, Requester, SocketId, Tag};

use crate::ApiState;
use crate::auth::{self, Credentials, GatewayCaller, Need};
use crate::body::read_json;
use crate::eds::Sessions;
use crate::error::{ApiError, Code};
use crate::openapi::{ApiRouter, tag};

/// Each gateway's routes twice: under `/v1` for the default gateway (the single-gateway paths of the original),
/// and under `/v1/gateways/{gateway_id}`.
pub(crate) fn routes() -> ApiRouter {
    let per_gateway = || {
        ApiRouter::new()
            .routes(utoipa_axum::routes!(websocket_uri))
            .routes(utoipa_axum::routes!(send_message))
            .routes(utoipa_axum::routes!(create_socket, list_sockets))
            .routes(utoipa_axum::routes!(get_socket, delete_socket))
            .routes(utoipa_axum::routes!(enginio_webhook))
    };
    ApiRouter::new()
        .routes(utoipa_axum::routes!(service_info))
        .merge(gateways::routes())
        .nest("/v1", per_gateway())
        .nest("/v1/gateways/{gateway_id}", per_gateway())
}

/// Names the service (MWS) and when it started answering here; also where sockets open.
///
/// A socket URI (`ws[s]://<host>/?token=<socket id>`, from `websocket_uri` or `POST /sockets`) is opened here
/// with a WebSocket handshake (`Upgrade: websocket`): 101 and the socket, or 1008 right after the handshake for
/// a token that is invalid, expired or used. `&since=<number>` resumes a socket (`docs/realtime.md`).
#[utoipa::path(get, path = "/", tag = tag::SOCKETS, security(()),
    params(("token" = Option<String>, Query, description = "With a WebSocket handshake: the socket URI's token."),
        ("since" = Option<String>, Query, description = "With `token`: resume after this message number.")),
    responses((status = 200, body = doc::ServiceInfo),
        (status = 101, description = "With `Upgrade: websocket` and a valid `token`: the socket.")))]
async fn service_info() -> Json<Value> {
    Json(json!({"name": "MWS", "deployedAt": timestamp::format(SystemTime::now())}))
}

/// What every gateway call starts from: the gateway the path names (or the default one) and the
/// caller's credentials.
struct Target {
    gateway: Arc<Gateway>,
    /// An admin token, read strictly.
    admin: Credentials,
    /// A user's token, read as leniently as old clients send it.
    creds: Credentials,
    params: HashMap<String, String>,
    /// `ws[s]://host` the caller reached us at, for the socket URIs it gets.
    origin: String,
}

impl FromRequestParts<ApiState> for Target {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Target, ApiError> {
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::with_message(Code::NotFound, "No such endpoint"))?;
        let id = params.get("gateway_id").map(String::as_str).unwrap_or(DEFAULT_GATEWAY);
        let gateway =
            state.gateways.get(id).ok_or_else(|| ApiError::with_message(Code::NotFound, "Gateway not found"))?;
        let admin = auth::admin_credentials(&parts.headers);
        let creds = auth::credentials(&parts.headers)?;
        Ok(Target { gateway, admin, creds, params, origin: state.ws_origin(parts) })
    }
}

impl Target {
    /// Calls only the gateway's security token may make.
    fn require_admin(&self) -> Result<(), ApiError> {
        auth::require_token(&self.admin, self.gateway.config().security_token.as_deref())
    }

    async fn authorize(&self, state: &ApiState, need: Need) -> Result<GatewayCaller, ApiError> {
        let remote = auth::Remote { operator_uri: &state.default_eds_uri, guard: &state.webhook_guard };
        state.eds.authorize(&self.gateway.config(), &self.admin, &self.creds, need, remote).await
    }

    fn socket_id(&self) -> Option<SocketId> {
        SocketId::parse(self.params.get("socket_id")?)
    }
}

/// Gets a socket URI to open a WebSocket at.
///
/// Who may is the gateway's configuration: anyone (`none`), the gateway token (`custom`), or users of the bound
/// EDS backend whom its `permissions.read` names (`enginio`), whose socket then holds their tags and follows their
/// access. The URI is single use, opens on any node, and expires unused.
#[utoipa::path(get, path = "/websocket_uri", tag = tag::SOCKETS,
    security((), ("gatewayToken" = []), ("backendId" = [], "userToken" = [])),
    responses((status = 200, body = doc::SocketUri),
        (status = 503, description = "Too many URIs outstanding; try again.", body = crate::openapi::ServiceError)))]
async fn websocket_uri(
    State(state): State<ApiState>,
    target: Target,
    transport: Option<axum::Extension<crate::Transport>>,
) -> Result<Response, ApiError> {
    let caller = target.authorize(&state, Need::Read).await?;
    let tags = caller.socket_tags();
    let requester = match caller {
        GatewayCaller::Admin => Requester::Privileged,
        _ => Requester::Public(transport.and_then(|t| t.peer).map(|peer| peer.ip())),
    };
    // The socket follows its user: closed or re-tagged when the user's access changes (`eds::Sessions`).
    let follows = Sessions::follows_of(&state, &target.gateway, &caller, &target.creds).await;
    let (id, expires_at) = issue(&state, &target.gateway, &tags, requester, follows.clone()).await?;
    if let (Some(follows), GatewayCaller::User(user)) = (&follows, &caller) {
        state.sessions.follow_socket(&state, &target.gateway, id, follows, Some(user.groups.clone()));
    }
    let body = json!({"uri": ApiState::socket_uri(&target.origin, &id), "expiresAt": timestamp::format(expires_at), "tags": tags});
    Ok(Json(body).into_response())
}

/// Makes a socket URI with the tags given (gateway token).
#[utoipa::path(post, path = "/sockets", tag = tag::SOCKETS, security(("gatewayToken" = [])),
    request_body = doc::SocketTags, responses((status = 201, body = doc::CreatedSocket)))]
async fn create_socket(State(state): State<ApiState>, target: Target, body: Body) -> Result<Response, ApiError> {
    target.require_admin()?;
    let tags = wire::socket_tags(read_json(body, state.limits.max_body_bytes).await?)?;
    let (id, expires_at) = issue(&state, &target.gateway, &tags, Requester::Privileged, None).await?;
    let body = json!({
        "id": id.to_string(),
        "uri": ApiState::socket_uri(&target.origin, &id),
        "expiresAt": timestamp::format(expires_at),
        "tags": tags,
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// A ticket for a socket, counted against this node's quotas and shared with the other nodes (`--bus`), so the
/// URI opens on whichever node the client reaches.
async fn issue(
    state: &ApiState,
    gateway: &Arc<Gateway>,
    tags: &[String],
    requester: Requester,
    follows: Option<Follows>,
) -> Result<(SocketId, SystemTime), ApiError> {
    let local: Box<[Tag]> = tags.iter().map(|t| Tag::from(t.as_str())).collect();
    let (id, expires_at) = state.gateways.issue_ticket(gateway, local, requester).map_err(|refusal| {
        let message = match refusal {
            Refusal::Full => "Too many sockets waiting to connect",
            Refusal::Tenant => "Too many sockets waiting to connect to this gateway",
            Refusal::Client => "Too many sockets waiting to connect from this address",
        };
        ApiError::with_message(Code::Unavailable, message)
    })?;
    let expires_ms = timestamp::unix_ms(expires_at);
    let shared = SharedTicket { gateway: gateway.id.clone(), tags: tags.to_vec(), expires_ms, follows };
    if let Err(err) = state.bus.share_ticket(&id.to_string(), &shared).await {
        state.gateways.cancel_ticket(gateway, &id);
        return Err(bus_unavailable(err));
    }
    Ok((id, expires_at))
}

/// Sends a message to sockets and tags, on every node.
///
/// Who may is the gateway's configuration, as for socket URIs (`permissions.write` for users). Answers the
/// message as accepted; the tags an EDS-bound gateway uses for its backend's changes are refused to others.
#[utoipa::path(post, path = "/messages", tag = tag::SOCKETS,
    security((), ("gatewayToken" = []), ("backendId" = [], "userToken" = [])),
    request_body = doc::MessageWire, responses((status = 201, body = doc::MessageWire)))]
async fn send_message(State(state): State<ApiState>, target: Target, body: Body) -> Result<Response, ApiError> {
    let caller = target.authorize(&state, Need::Write).await?;
    let message = wire::Message::parse(read_json(body, state.limits.max_body_bytes).await?)?;
    if caller != GatewayCaller::Admin
        && target.gateway.config().eds_backend_id.is_some()
        && message.tags.iter().flatten().any(|tag| reserved_tag(tag))
    {
        return Err(ApiError::with_message(
            Code::AccessDenied,
            "On a gateway bound to a backend, the users.* and usergroups.* tags carry that backend's changes: only \
             the server and the gateway's security token may send to them",
        ));
    }
    publish(&state, &target.gateway, message).await
}

/// Tags under which a bound gateway's sockets get their backend's changes (`updraft_realtime::sockets`): a frame sent there by
/// anyone else could pass for one.
fn reserved_tag(tag: &str) -> bool {
    tag.split_once('.').is_some_and(|(kind, _)| kind == USERS || kind == USERGROUPS)
}

/// Receives an EDS webhook of type `enginio` and sends its payload to the sockets its receivers name.
#[utoipa::path(post, path = "/webhook_receivers/enginio", tag = tag::SOCKETS, security(("gatewayToken" = [])),
    request_body = doc::EnginioDelivery, responses((status = 201, body = doc::MessageWire)))]
async fn enginio_webhook(State(state): State<ApiState>, target: Target, body: Body) -> Result<Response, ApiError> {
    target.require_admin()?;
    let message = wire::enginio_message(read_json(body, state.limits.max_body_bytes).await?)?;
    publish(&state, &target.gateway, message).await
}

/// Hands a validated message to the bus and answers 201 with the message as accepted.
async fn publish(state: &ApiState, gateway: &Gateway, message: wire::Message) -> Result<Response, ApiError> {
    let sockets = message.sockets.clone().unwrap_or_default();
    let everyone = sockets.iter().any(|s| s == "*");
    let publication = Publication {
        gateway: gateway.id.clone(),
        data: message.data.clone().into(),
        everyone,
        sockets: if everyone { Vec::new() } else { sockets },
        tags: if everyone { Vec::new() } else { message.tags.clone().unwrap_or_default() },
        ..Publication::default()
    };
    metrics::counter!("updraft_mws_messages_published_total").increment(1);
    state.bus.publish(publication).await.map_err(bus_unavailable)?;
    Ok((StatusCode::CREATED, Json(message.echo())).into_response())
}

/// Lists the open sockets, of every node (`--bus`) or of this one.
#[utoipa::path(get, path = "/sockets", tag = tag::SOCKETS, security(("gatewayToken" = [])),
    responses((status = 200, body = doc::Sockets)))]
async fn list_sockets(State(state): State<ApiState>, target: Target) -> Result<Response, ApiError> {
    target.require_admin()?;
    let results: Vec<Value> = match state.bus.sockets(&target.gateway.id).await.map_err(bus_unavailable)? {
        Some(mut records) => {
            records.sort_by_key(|record| record.connected_ms);
            records.iter().map(wire::record_json).collect()
        }
        None => {
            let mut sockets = target.gateway.hub.list();
            sockets.sort_by_key(|s| s.connected_at);
            sockets.iter().map(|s| wire::socket_json(s)).collect()
        }
    };
    Ok(Json(json!({ "results": results })).into_response())
}

/// One open socket, wherever it lives.
#[utoipa::path(get, path = "/sockets/{socket_id}", tag = tag::SOCKETS, security(("gatewayToken" = [])),
    responses((status = 200, body = doc::SocketWire)))]
async fn get_socket(State(state): State<ApiState>, target: Target) -> Result<Response, ApiError> {
    target.require_admin()?;
    let id = target.socket_id().ok_or_else(socket_not_found)?;
    if let Some(socket) = target.gateway.hub.get(&id) {
        return Ok(Json(wire::socket_json(&socket)).into_response());
    }
    let record = state.bus.socket(&target.gateway.id, &id.to_string()).await.map_err(bus_unavailable)?;
    Ok(Json(wire::record_json(&record.ok_or_else(socket_not_found)?)).into_response())
}

fn bus_unavailable(err: updraft_bus::BusError) -> ApiError {
    tracing::error!(%err, "the bus did not answer");
    ApiError::with_message(Code::Unavailable, "Message bus unavailable")
}

/// Closes a socket, on whichever node holds it, or withdraws an unused URI.
///
/// The original only forgot the record; here the connection closes.
#[utoipa::path(delete, path = "/sockets/{socket_id}", tag = tag::SOCKETS, security(("gatewayToken" = [])),
    responses((status = 200, body = doc::Empty)))]
async fn delete_socket(State(state): State<ApiState>, target: Target) -> Result<Response, ApiError> {
    target.require_admin()?;
    let id = target.socket_id().ok_or_else(socket_not_found)?;
    let done = target.gateway.close_socket(&id, updraft_ws::close_code::NORMAL, SOCKET_DELETED)
        || state.bus.close_socket(&target.gateway.id, &id.to_string()).await.map_err(bus_unavailable)?
        || withdraw_uri(&state, &target.gateway, &id).await?;
    if !done {
        return Err(socket_not_found());
    }
    Ok(Json(json!({})).into_response())
}

/// Withdraws the unused URI of socket `id` of `gateway`, here and (`--bus`) on every node; false when there is none.
async fn withdraw_uri(state: &ApiState, gateway: &Arc<Gateway>, id: &SocketId) -> Result<bool, ApiError> {
    let here = state.gateways.cancel_ticket(gateway, id);
    Ok(match state.bus.take_ticket(&id.to_string()).await.map_err(bus_unavailable)? {
        Redeemed::NotShared => here,
        Redeemed::Taken(None) => false,
        Redeemed::Taken(Some(ticket)) if ticket.gateway == gateway.id => true,
        // Another gateway's ticket: its admin did not ask, so it goes back.
        Redeemed::Taken(Some(ticket)) => {
            let _ = state.bus.share_ticket(&id.to_string(), &ticket).await;
            false
        }
    })
}

/// The close reason of a socket deleted through the API, on whichever node holds it.
pub const SOCKET_DELETED: &str = "socket deleted";

fn socket_not_found() -> ApiError {
    ApiError::with_message(Code::NotFound, "Socket not found")
}
