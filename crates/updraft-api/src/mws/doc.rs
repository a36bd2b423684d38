//! The API reference's side of MWS: the shapes of messages, socket URIs, sockets and gateway configurations,
//! written by hand in `wire.rs`, `config_wire.rs` and `gateways.rs` (for their exact forms and errors).

#![allow(dead_code, reason = "schemas of bodies read and written by hand")]

use serde::Deserialize;
use utoipa::ToSchema;

/// A message: `data` (text; other JSON is sent as its text) to the sockets and tags named. `"sockets": ["*"]` is
/// every socket of the gateway.
#[derive(Deserialize, ToSchema)]
pub(super) struct MessageWire {
    data: String,
    receivers: Receivers,
}

#[derive(Deserialize, ToSchema)]
pub(super) struct Receivers {
    /// Socket ids, or `*` for all.
    sockets: Option<Vec<String>>,
    /// Sockets holding any of these tags.
    tags: Option<Vec<String>>,
}

/// A URI to open a socket at with a WebSocket handshake: single use, and void after `expiresAt`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct SocketUri {
    /// `ws[s]://<host>/?token=<socket id>`.
    uri: String,
    expires_at: String,
    /// The tags the socket will hold (a user's `users.<id>` and `usergroups.<id>` on an EDS-bound gateway).
    tags: Vec<String>,
}

/// A socket URI made by the gateway admin, with its id.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct CreatedSocket {
    id: String,
    uri: String,
    expires_at: String,
    tags: Vec<String>,
}

/// The tags of a socket made by the gateway admin.
#[derive(Deserialize, ToSchema)]
pub(super) struct SocketTags {
    tags: Option<Vec<String>>,
}

/// An open socket.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct SocketWire {
    id: String,
    connected_at: String,
    /// The same as `connectedAt` (the original's name).
    created_at: String,
    tags: Vec<String>,
}

#[derive(Deserialize, ToSchema)]
pub(super) struct Sockets {
    results: Vec<SocketWire>,
}

/// What EDS sends a webhook of type `enginio`: the change as `payload`, and the ACL subjects that may read it as
/// `receivers` (each becomes the tag `<objectType>.<id>`; `aclSubject.*` is every socket).
#[derive(Deserialize, ToSchema)]
pub(super) struct EnginioDelivery {
    payload: serde_json::Value,
    receivers: Vec<EnginioReceiver>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct EnginioReceiver {
    id: String,
    object_type: String,
}

/// A gateway's configuration, as the hosted service and the npm SDK's `getConfiguration` use it.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct Configuration {
    name: String,
    identity_provider: IdentityProvider,
    permissions: Permissions,
}

/// Who may get socket URIs and send messages: `none` (anyone), `custom` (the gateway token only) or `enginio`
/// (users of an EDS backend, by the `permissions`). In a change, also `null` or the type name alone.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct IdentityProvider {
    /// `none`, `custom` or `enginio` (`eds` is taken for it).
    #[serde(rename = "type")]
    kind: String,
    /// The bound backend, whose changes reach the sockets and whose users are admitted. Binding needs proof of
    /// owning it: its master key or instance secret in a header, or the admin token.
    backend_id: Option<String>,
    /// Where users' tokens are verified; `null` for a backend hosted here (verified in-process).
    uri: Option<String>,
}

/// The ACL subjects (`*`, `users.<id>`, `usergroups.<id>`) that may get URIs (`read`) and send (`write`).
#[derive(Deserialize, ToSchema)]
pub(super) struct Permissions {
    read: Vec<String>,
    write: Vec<String>,
}

/// A change of configuration: any of the members, the others stay.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct ConfigurationChange {
    name: Option<String>,
    identity_provider: Option<serde_json::Value>,
    permissions: Option<Permissions>,
}

/// A gateway: its configuration, its id and its security token.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct GatewayWire {
    name: String,
    identity_provider: IdentityProvider,
    permissions: Permissions,
    id: String,
    security_token: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub(super) struct Gateways {
    results: Vec<GatewayWire>,
}

/// A new gateway: an id (1–64 of `[a-zA-Z0-9_-]`, made if not given) and any configuration members.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct NewGateway {
    id: Option<String>,
    name: Option<String>,
    identity_provider: Option<serde_json::Value>,
    permissions: Option<Permissions>,
}

/// What answers at `/`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct ServiceInfo {
    /// `MWS`.
    name: String,
    deployed_at: String,
}

#[derive(Deserialize, ToSchema)]
pub(super) struct Empty {}
