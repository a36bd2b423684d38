//! The server's own routes: `/healthz`, `/readyz`, and `/metrics` on the main listener for the holder of the
//! metrics token. Documented in the API reference with the rest.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use updraft_api::openapi::tag;
use updraft_api::{ApiRouter, ApiState};
use utoipa::ToSchema;
use utoipa_axum::routes;

use crate::telemetry;

/// Who may read `/metrics` on the main listener, and what it reads.
#[derive(Clone)]
struct MetricsAccess {
    token: Arc<str>,
    handle: &'static PrometheusHandle,
}

/// The routes; `/metrics` only with a metrics token: without one it is an unknown path (404) like any other, so
/// it tells an anonymous caller nothing.
pub(crate) fn routes(metrics_token: Option<String>, handle: &'static PrometheusHandle) -> ApiRouter {
    let health = ApiRouter::new().routes(routes!(healthz)).routes(routes!(readyz));
    match metrics_token {
        Some(token) => {
            let access = MetricsAccess { token: token.into(), handle };
            health.merge(ApiRouter::new().routes(routes!(metrics)).layer(Extension(access)))
        }
        None => health,
    }
}

#[derive(Serialize, ToSchema)]
struct Health {
    /// `connected` or `disconnected`, when not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    bus: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    database: Option<&'static str>,
    /// `ok`, or `unavailable` while the bus or the shared database is away.
    status: &'static str,
}

/// The process answers: for a liveness probe.
#[utoipa::path(get, path = "/healthz", tag = tag::SERVER, security(()), responses((status = 200, body = Health)))]
async fn healthz() -> Response {
    axum::Json(Health { status: "ok", bus: None, database: None }).into_response()
}

/// Ready while the node hears the other nodes and the shared database: a load balancer stops sending it clients
/// while either is away.
#[utoipa::path(get, path = "/readyz", tag = tag::SERVER, security(()), responses(
    (status = 200, body = Health), (status = 503, description = "The bus or the database is away.", body = Health)))]
async fn readyz(State(state): State<ApiState>) -> Response {
    let connected = |up: bool| if up { "connected" } else { "disconnected" };
    let (bus, database) = (state.bus.ready(), state.changes.following());
    if bus && database {
        axum::Json(Health { status: "ok", bus: None, database: None }).into_response()
    } else {
        let body = Health { status: "unavailable", bus: Some(connected(bus)), database: Some(connected(database)) };
        (axum::http::StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
    }
}

/// Prometheus metrics, in its text format; also on `--metrics-listen` without a token.
#[utoipa::path(get, path = "/metrics", tag = tag::SERVER, security(("metricsToken" = [])), responses(
    (status = 200, description = "Prometheus text exposition format.", body = String, content_type = "text/plain"),
    (status = 401, description = "No token, or another one.", body = updraft_api::openapi::ServiceError)))]
async fn metrics(Extension(access): Extension<MetricsAccess>, headers: HeaderMap) -> Response {
    match telemetry::metrics_token_error(&headers, &access.token) {
        Some(err) => err.into_response(),
        None => telemetry::render(access.handle).into_response(),
    }
}
