//! The API reference: one OpenAPI 3.1 document of every route, served at `/openapi.json` and read at `/docs/`.
//!
//! Each operation is declared on its handler (`#[utoipa::path]`) and routed by `utoipa_axum`'s `OpenApiRouter`
//! from that same declaration, so no route is served without its entry; `tests/api/api_reference.rs` checks the
//! other way round (every entry is served) and that real answers fit the schemas. This module adds what all
//! operations share: the security schemes, each service's error answers, the path parameters of nested routes,
//! and the examples recorded from real answers (`docs/api/examples.json`).

mod errors;
mod finish;
mod viewer;

use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use bytes::Bytes;
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};

pub use errors::{EdsErrors, OAuthError, ServiceError};

use crate::ApiState;

/// A router that documents what it routes.
pub type ApiRouter = utoipa_axum::router::OpenApiRouter<ApiState>;

/// The security schemes operations name in `security(...)`.
pub mod scheme {
    /// `Enginio-Backend-Id`: which backend an EDS call is for. Not a secret.
    pub const BACKEND: &str = "backendId";
    /// A user's access token from `/v1/auth/oauth2/token`.
    pub const USER: &str = "userToken";
    /// `Enginio-Backend-MasterKey`: the backend's master key.
    pub const MASTER_KEY: &str = "masterKey";
    /// The backend's instance secret, as a bearer token.
    pub const SECRET: &str = "instanceSecret";
    /// The account's token from `/v1/account/auth/oauth2/token` (also the personal access token of MAR).
    pub const ACCOUNT: &str = "accountToken";
    /// A gateway's security token.
    pub const GATEWAY: &str = "gatewayToken";
    /// The server's admin token (`UPDRAFT_ADMIN_TOKEN`).
    pub const ADMIN: &str = "adminToken";
    /// The metrics token (`--metrics-token`).
    pub const METRICS: &str = "metricsToken";
}

/// The tags of the reference, one per resource, in the order the viewer shows them.
pub mod tag {
    pub const SERVER: &str = "Server";
    pub const ACCOUNT: &str = "EDS account";
    pub const AUTH: &str = "EDS authentication";
    pub const OBJECTS: &str = "EDS objects";
    pub const USERS: &str = "EDS users";
    pub const USERGROUPS: &str = "EDS usergroups";
    pub const ACCESS: &str = "EDS access control";
    pub const SCHEMAS: &str = "EDS object types";
    pub const FILES: &str = "EDS files";
    pub const SEARCH: &str = "EDS search";
    pub const WEBHOOKS: &str = "EDS webhooks";
    pub const STREAM: &str = "EDS notification stream";
    pub const GATEWAYS: &str = "MWS gateways";
    pub const SOCKETS: &str = "MWS sockets and messages";
    pub const PLATFORM: &str = "Platform";
    pub const APPS: &str = "MAR apps";
    pub const RELEASES: &str = "MAR releases";
    pub const DOMAINS: &str = "MAR domains";
    pub const DATABASES: &str = "MDB databases";
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Updraft",
        description = include_str!("introduction.md"),
        license(name = "MIT OR Apache-2.0"),
    ),
    components(schemas(EdsErrors, OAuthError, ServiceError)),
    modifiers(&Schemes),
)]
struct Base;

struct Schemes;

impl utoipa::Modify for Schemes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        let header =
            |name: &str, what: &str| SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(name, what)));
        let bearer = |what: &str| {
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some(what)).build())
        };
        for (name, security) in [
            (scheme::BACKEND, header("Enginio-Backend-Id", "The backend an EDS call is for (not a secret).")),
            (scheme::USER, bearer("A user's access token, from `POST /v1/auth/oauth2/token`.")),
            (scheme::MASTER_KEY, header("Enginio-Backend-MasterKey", "The backend's master key.")),
            (scheme::SECRET, bearer("The backend's instance secret.")),
            (scheme::ACCOUNT, bearer("The account's token, from `POST /v1/account/auth/oauth2/token`.")),
            (scheme::GATEWAY, bearer("A gateway's security token, exactly `Bearer <token>`.")),
            (scheme::ADMIN, bearer("The server's admin token (`UPDRAFT_ADMIN_TOKEN`), exactly `Bearer <token>`.")),
            (scheme::METRICS, bearer("The metrics token (`--metrics-token`).")),
        ] {
            components.add_security_scheme(name, security);
        }
    }
}

/// The document of `router`'s routes, finished, as the bytes `/openapi.json` answers.
pub(crate) fn document(routes: utoipa::openapi::OpenApi) -> Bytes {
    let mut doc = Base::openapi();
    doc.merge(routes);
    let mut value = serde_json::to_value(&doc).expect("the reference is JSON");
    finish::finish(&mut value, &errors::table());
    Bytes::from(serde_json::to_vec(&value).expect("the reference is JSON"))
}

/// `/openapi.json`, and the viewer at `/docs/`.
pub(crate) fn routes(document: Bytes) -> axum::Router<ApiState> {
    let json = move || {
        let document = document.clone();
        async move {
            let kind = HeaderValue::from_static("application/json");
            ([(header::CONTENT_TYPE, kind)], document).into_response()
        }
    };
    axum::Router::new().route("/openapi.json", axum::routing::get(json)).merge(viewer::routes())
}
