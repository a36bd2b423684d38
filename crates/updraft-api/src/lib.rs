//! The HTTP edge of Updraft: routes, wire types, the error table, authentication and CORS.
//!
//! This is the only crate that knows HTTP and JSON shapes; it turns them into the typed calls of
//! `updraft-gateway` and `updraft-bus`.

pub mod auth;
mod body;
mod cors;
pub mod eds;
pub mod error;
pub mod mws;

use std::ops::Deref;
use std::sync::Arc;

use axum::Router;
use updraft_bus::Bus;
use updraft_gateway::{ConnectionConfig, Gateways, SocketId};
use updraft_store::{Groups, Schemas, Store, Tenants, Users};

pub use mws::gateways::GatewayFile;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body_bytes: usize,
}

/// Where clients reach this server: the base of the socket URIs handed out.
#[derive(Debug, Clone)]
pub struct PublicAddress {
    /// `ws` or `wss`.
    pub ws_scheme: &'static str,
    /// Host and optional port (`APP_DOMAIN`, or the listen address).
    pub host: String,
}

pub struct ApiContext {
    pub store: Arc<dyn Store>,
    pub tenants: Arc<dyn Tenants>,
    pub users: Arc<dyn Users>,
    pub groups: Arc<dyn Groups>,
    pub schemas: Arc<dyn Schemas>,
    pub webhooks: Arc<dyn updraft_store::Webhooks>,
    pub changes: Arc<dyn updraft_store::Changes>,
    /// The EDS notification stream's pending URLs and open connections.
    pub streams: eds::Streams,
    /// Where webhooks may point.
    pub webhook_guard: updraft_webhooks::Guard,
    /// The account that manages apps (`/v1/account/*`); `None` refuses every account login.
    pub account: Option<eds::AccountLogin>,
    pub gateways: Arc<Gateways>,
    pub bus: Arc<dyn Bus>,
    pub eds: auth::EdsVerifier,
    pub public: PublicAddress,
    /// Protects the gateway admin API; `None` disables it.
    pub admin_token: Option<String>,
    pub limits: Limits,
    pub connection: ConnectionConfig,
    pub gateway_file: Option<GatewayFile>,
    /// `EDS_URI` of gateways created without one.
    pub default_eds_uri: String,
}

#[derive(Clone)]
pub struct ApiState(Arc<ApiContext>);

impl Deref for ApiState {
    type Target = ApiContext;
    fn deref(&self) -> &ApiContext {
        &self.0
    }
}

impl ApiState {
    pub fn new(context: ApiContext) -> ApiState {
        ApiState(Arc::new(context))
    }

    fn socket_uri(&self, id: &SocketId) -> String {
        format!("{}://{}/?token={id}", self.public.ws_scheme, self.public.host)
    }
}

/// Every route of the API, with WebSocket handshakes taken before routing and CORS around all.
pub fn router(state: ApiState) -> Router {
    let routes = mws::routes()
        .merge(eds::routes())
        .fallback(|| async { error::ApiError::with_message(error::Code::NotFound, "No such endpoint") })
        .with_state(state.clone());
    // Layers on a router with only a fallback see every request, before any route matches.
    Router::new()
        .fallback_service(routes)
        .layer(axum::middleware::from_fn_with_state(state, mws::upgrade::intercept))
        .layer(axum::middleware::from_fn(cors::cors))
}
