//! The HTTP edge of Updraft: routes, wire types, the error table, authentication and CORS.
//!
//! This is the only crate that knows HTTP, and the JSON shapes of requests and answers; it turns them into the
//! typed calls of `updraft-store`, `updraft-gateway` and `updraft-bus`. What happens after a commit is
//! `updraft-realtime`'s.

pub mod auth;
mod body;
mod cors;
pub mod eds;
pub mod error;
mod mar;
pub mod mws;
pub mod openapi;
pub mod passwords;

use std::ops::Deref;
use std::sync::Arc;

use axum::Router;
use updraft_bus::Bus;
use updraft_gateway::{ConnectionConfig, Gateways, SocketId};
use updraft_store::{Groups, Schemas, Store, Tenants, Users};

pub use mar::serve_app;
pub use openapi::ApiRouter;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body_bytes: usize,
    /// How long a request body may take to arrive whole, counted from its request head; later is 408.
    pub body_timeout: std::time::Duration,
    /// The same for a file upload (`/v1/files`), whose bodies are far larger.
    pub file_body_timeout: std::time::Duration,
}

/// Where clients reach this server: the base of the socket URIs handed out.
#[derive(Debug, Clone)]
pub struct PublicAddress {
    /// `APP_DOMAIN`: when set, socket URIs always name it, with `ws_scheme`.
    pub app_domain: Option<String>,
    /// `ws` or `wss`: the scheme of the main listener.
    pub ws_scheme: &'static str,
    /// The main listener's address, for requests without a usable `Host`.
    pub host: String,
    /// The plain listener's address, if there is one: the notification stream is plain TCP.
    pub plain_host: Option<String>,
}

/// How a request reached the server; the accept loop sets it on every request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Transport {
    pub tls: bool,
    /// The client's address (the TCP peer), for limits per client.
    pub peer: Option<std::net::SocketAddr>,
}

/// A `Host` header fit to put in a URI: a name or address and an optional port, nothing else.
fn usable_host(parts: &axum::http::request::Parts) -> Option<&str> {
    let host = parts.headers.get(axum::http::header::HOST)?.to_str().ok()?;
    let fits = !host.is_empty()
        && host.len() <= 255
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b));
    fits.then_some(host)
}

pub struct ApiContext {
    pub store: Arc<dyn Store>,
    pub tenants: Arc<dyn Tenants>,
    pub users: Arc<dyn Users>,
    pub groups: Arc<dyn Groups>,
    pub schemas: Arc<dyn Schemas>,
    pub webhooks: Arc<dyn updraft_store::Webhooks>,
    /// The rows of EDS files, and their bytes.
    pub files: Arc<dyn updraft_store::Files>,
    pub blobs: Arc<dyn updraft_blobs::BlobStore>,
    /// Full-text search over the objects of `store`.
    pub search: Arc<dyn updraft_store::Search>,
    pub file_settings: eds::FileSettings,
    /// Chunked uploads with a chunk arriving.
    pub uploads: eds::Uploads,
    pub changes: Arc<dyn updraft_store::Changes>,
    /// The EDS notification stream's pending URLs and open connections.
    pub streams: eds::Streams,
    /// Open streams and `eds`-mode sockets that follow their users' access.
    pub sessions: eds::Sessions,
    /// Where webhooks may point.
    pub webhook_guard: updraft_realtime::outbound::Guard,
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
    /// The gateways made through the API (`mws/saved_gateways.rs`).
    pub saved_gateways: Arc<dyn updraft_store::SavedGateways>,
    /// `EDS_URI` of gateways created without one.
    pub default_eds_uri: String,
    /// Password hashing and the limits on login and sign-up attempts.
    pub passwords: passwords::Passwords,
    /// The application runtime (MAR): apps, their pushes and their traffic; `None` where this server runs none.
    pub runtime: Option<Arc<updraft_runtime::Runtime>>,
    /// Managed databases (MDB) on the servers the operator named.
    pub databases: Option<Arc<updraft_databases::Databases>>,
    /// Where an open socket's connection loop runs: apart from HTTP requests, so that a fan-out to many sockets
    /// does not queue requests behind it (see `updraft-server`'s `runtimes.rs`).
    pub socket_runtime: tokio::runtime::Handle,
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

    /// `ws://host` or `wss://host` as the client reached us (the name it used, the scheme of the listener), so
    /// that a socket URI works for it whichever listener and host name it came through; `APP_DOMAIN` wins.
    fn ws_origin(&self, parts: &axum::http::request::Parts) -> String {
        if let Some(domain) = &self.public.app_domain {
            return format!("{}://{domain}", self.public.ws_scheme);
        }
        let scheme = if self.reached_over_tls(parts) { "wss" } else { "ws" };
        format!("{scheme}://{}", usable_host(parts).unwrap_or(&self.public.host))
    }

    /// Whether the request came through a TLS listener (without that record, whether the main listener is TLS).
    fn reached_over_tls(&self, parts: &axum::http::request::Parts) -> bool {
        match parts.extensions.get::<Transport>() {
            Some(transport) => transport.tls,
            None => self.public.ws_scheme == "wss",
        }
    }

    /// `http://host` or `https://host` as the client reached us, for URLs handed back (file downloads).
    fn http_origin(&self, parts: &axum::http::request::Parts) -> String {
        let scheme = if self.reached_over_tls(parts) { "https" } else { "http" };
        format!("{scheme}://{}", usable_host(parts).unwrap_or(&self.public.host))
    }

    /// Where the plain-TCP notification stream is reached, for a request that came in as `parts`.
    fn stream_host(&self, parts: &axum::http::request::Parts) -> String {
        if let Some(domain) = &self.public.app_domain {
            return domain.clone();
        }
        let plain = parts.extensions.get::<Transport>().is_none_or(|transport| !transport.tls);
        match (plain, usable_host(parts), &self.public.plain_host) {
            (true, Some(host), _) => host.to_owned(),
            (_, _, Some(plain_host)) => plain_host.clone(),
            _ => self.public.host.clone(),
        }
    }

    fn socket_uri(origin: &str, id: &SocketId) -> String {
        format!("{origin}/?token={id}")
    }
}

/// Every route of the API, with WebSocket handshakes taken before routing and CORS around all, behind the
/// server's own routes (`server`: health and metrics, matched first whatever the host); `/openapi.json` documents
/// them all.
pub fn router(state: ApiState, server: ApiRouter) -> Router {
    let intercepted = state.clone();
    let (server, server_reference) = server.split_for_parts();
    let (routes, mut reference) = mws::routes().merge(eds::routes()).merge(mar::routes()).split_for_parts();
    reference.merge(server_reference);
    let routes = routes
        .merge(openapi::routes(openapi::document(reference)))
        .fallback(|req: axum::extract::Request| async move { not_found(&req) })
        .method_not_allowed_fallback(|req: axum::extract::Request| async move {
            let err = error::ApiError::new(error::Code::MethodNotAllowed);
            error_response(req.uri().path(), req.headers(), err)
        })
        .with_state(state.clone());
    // Layers on a router with only a fallback see every request, before any route matches.
    let api = Router::new()
        .fallback_service(routes)
        .layer(axum::middleware::from_fn_with_state(state.clone(), mws::upgrade::intercept))
        .layer(axum::middleware::map_request(move |req: axum::extract::Request| {
            let path = req.uri().path();
            let files = path.starts_with("/v1/files") || path.starts_with("/v1/slug_uploads/");
            let timeout = if files { state.limits.file_body_timeout } else { state.limits.body_timeout };
            let deadline = tokio::time::Instant::now() + timeout;
            std::future::ready(body::with_deadline(req, deadline))
        }))
        .layer(axum::middleware::from_fn(cors::cors))
        .layer(axum::middleware::from_fn_with_state(intercepted.clone(), mar::intercept));
    server.with_state(intercepted).fallback_service(api)
}

/// An unknown path, answered in the error form of the service it would belong to.
fn not_found(req: &axum::extract::Request) -> axum::response::Response {
    let err = error::ApiError::with_message(error::Code::NotFound, "No such endpoint");
    error_response(req.uri().path(), req.headers(), err)
}

/// `err` in the form of the service a request is addressed to: EDS (`{"errors":[…]}`) or MWS (`{"error":{…}}`).
pub fn error_response(path: &str, headers: &axum::http::HeaderMap, err: error::ApiError) -> axum::response::Response {
    use axum::response::IntoResponse;
    if is_eds_request(path, headers) { error::EdsError(err).into_response() } else { err.into_response() }
}

/// First path segments under `/v1/` that belong to EDS; everything MWS serves (`messages`, `sockets`,
/// `websocket_uri`, `gateways`, `webhook_receivers`, ...) is outside this list.
const EDS_SEGMENTS: &[&str] = &[
    "objects",
    "users",
    "usergroups",
    "object_types",
    "auth",
    "account",
    "webhooks",
    "files",
    "search",
    "stream_url",
    "stream",
    "user",
    "session",
];

/// Whether a request is addressed to EDS: by its path, or else by the `Enginio-Backend-Id` every EDS client sends.
fn is_eds_request(path: &str, headers: &axum::http::HeaderMap) -> bool {
    let first = path.strip_prefix("/v1/").map(|rest| rest.split('/').next().unwrap_or(""));
    match first {
        Some(segment) if EDS_SEGMENTS.contains(&segment) => true,
        Some("messages" | "sockets" | "websocket_uri" | "gateways" | "webhook_receivers") => false,
        _ => headers.contains_key("enginio-backend-id"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_belong_to_eds_by_path_or_backend_header() {
        let none = axum::http::HeaderMap::new();
        let mut backend = axum::http::HeaderMap::new();
        backend.insert("Enginio-Backend-Id", "abc".parse().unwrap());
        assert!(is_eds_request("/v1/objects/todos/x/y", &none));
        assert!(is_eds_request("/v1/usergroups", &none));
        assert!(is_eds_request("/v1/files/123", &none));
        assert!(!is_eds_request("/v1/objectsx", &none));
        assert!(!is_eds_request("/v1/nothing", &none));
        assert!(is_eds_request("/v1/nothing", &backend));
        assert!(!is_eds_request("/v1/gateways/g1/nothing", &backend));
        assert!(!is_eds_request("/v1/messages/x", &none));
    }
}
