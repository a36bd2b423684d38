//! `/v1/apps/:id/domains`: the custom domains that reach an app besides `<app-id>.<apps-domain>`. A domain is
//! one app's: claiming another app's is 409, and nothing changes. `/v1/apps/:id/ssl_certificate`: the app's own
//! certificate, which the TLS listeners present to clients naming those hosts.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::routes;

use super::{Account, runtime, runtime_error};
use crate::ApiState;
use crate::body::read_json;
use crate::error::{ApiError, Code};
use crate::openapi::{ApiRouter, ServiceError, tag};

pub(super) fn routes() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(list, add))
        .routes(routes!(remove))
        .routes(routes!(set_certificate, remove_certificate))
}

/// A TLS certificate of an app, served to clients whose SNI names the app's host or one of its domains.
#[derive(Serialize, ToSchema)]
pub(super) struct CertificateWire {
    /// Its name: the one given, or the app's id.
    pub(super) name: String,
}

/// A certificate and its key, in PEM.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code, reason = "read by hand in `set_certificate`, for its errors; this is its schema")]
struct NewCertificateWire {
    /// The app's id if not given.
    name: Option<String>,
    /// The private key, which must sign for the certificate. Kept apart and never shown.
    private_key: String,
    /// The certificate.
    certificate_body: String,
    /// The intermediate certificates, if any.
    certificate_chain: Option<String>,
}

/// A custom domain of an app.
#[derive(Serialize, Deserialize, ToSchema)]
struct DomainWire {
    /// A host name (`www.example.com`), not under the apps domain; kept lower-cased, without a trailing dot.
    name: String,
}

#[derive(Serialize, ToSchema)]
struct Domains {
    results: Vec<DomainWire>,
}

/// Sets the app's own TLS certificate; checked, kept and served at once by every TLS listener.
#[utoipa::path(post, path = "/v1/apps/{id}/ssl_certificate", tag = tag::DOMAINS, security(("accountToken" = [])),
    params(("id" = String, Path, description = "The app's id.")), request_body = NewCertificateWire,
    responses((status = 200, body = CertificateWire),
    (status = 422, description = "Not PEM, or a key that does not sign for the certificate; nothing changed.",
        body = ServiceError)))]
async fn set_certificate(
    State(state): State<ApiState>,
    _: Account,
    Path(id): Path<String>,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let body = read_json(body, state.limits.max_body_bytes).await?.unwrap_or(Value::Null);
    let text = |field: &'static str| body[field].as_str().ok_or_else(|| ApiError::field(field, "a PEM text"));
    let (key, certificate) = (text("privateKey")?, text("certificateBody")?);
    let chain = body["certificateChain"].as_str();
    let name = body["name"].as_str().unwrap_or_default();
    runtime(&state)?.set_certificate(&id, name, key, certificate, chain).await.map_err(runtime_error)?;
    let name = if name.is_empty() { id } else { name.to_owned() };
    Ok(Json(CertificateWire { name }).into_response())
}

/// Removes the app's own TLS certificate: its hosts get the server's again.
#[utoipa::path(delete, path = "/v1/apps/{id}/ssl_certificate", tag = tag::DOMAINS, security(("accountToken" = [])),
    params(("id" = String, Path, description = "The app's id.")),
    responses((status = 200, description = "Removed: `{}`.", body = Object),
    (status = 422, description = "The app has no certificate of its own.", body = ServiceError)))]
async fn remove_certificate(
    State(state): State<ApiState>,
    _: Account,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    runtime(&state)?.remove_certificate(&id).await.map_err(runtime_error)?;
    Ok(Json(json!({})).into_response())
}

/// The app's custom domains.
#[utoipa::path(get, path = "/v1/apps/{id}/domains", tag = tag::DOMAINS, security(("accountToken" = [])),
    params(("id" = String, Path, description = "The app's id.")), responses((status = 200, body = Domains)))]
async fn list(State(state): State<ApiState>, _: Account, Path(id): Path<String>) -> Result<Response, ApiError> {
    let app = runtime(&state)?.app(&id).ok_or_else(|| ApiError::with_message(Code::NotFound, "no such app"))?;
    let results = app.domains.into_iter().map(|name| DomainWire { name }).collect();
    Ok(Json(Domains { results }).into_response())
}

/// Adds a custom domain to the app: requests for that host reach it.
#[utoipa::path(post, path = "/v1/apps/{id}/domains", tag = tag::DOMAINS, security(("accountToken" = [])),
    params(("id" = String, Path, description = "The app's id.")), request_body = DomainWire,
    responses((status = 201, body = DomainWire),
    (status = 409, description = "The domain is another app's.", body = ServiceError),
    (status = 422, description = "No name, a malformed one, an address, or a name under the apps domain.",
        body = ServiceError)))]
async fn add(
    State(state): State<ApiState>,
    _: Account,
    Path(id): Path<String>,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let body = read_json(body, state.limits.max_body_bytes).await?;
    let Some(name) = body.as_ref().and_then(|b| b.get("name")).and_then(Value::as_str) else {
        return Err(ApiError::field("name", "can't be blank"));
    };
    runtime(&state)?.add_domain(&id, name).await.map_err(runtime_error)?;
    let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
    Ok((StatusCode::CREATED, Json(DomainWire { name })).into_response())
}

/// Removes a custom domain from the app.
#[utoipa::path(delete, path = "/v1/apps/{id}/domains/{name}", tag = tag::DOMAINS, security(("accountToken" = [])),
    params(("id" = String, Path, description = "The app's id."),
        ("name" = String, Path, description = "The domain, as the list shows it.")),
    responses((status = 200, description = "Removed: `{}`.", body = Object)))]
async fn remove(
    State(state): State<ApiState>,
    _: Account,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let runtime = runtime(&state)?;
    runtime.app(&id).ok_or_else(|| ApiError::with_message(Code::NotFound, "no such app"))?;
    match runtime.remove_domain(&id, &name).await {
        Ok(()) => Ok(Json(json!({})).into_response()),
        Err(updraft_runtime::RuntimeError::NotFound) => {
            Err(ApiError::with_message(Code::NotFound, "the app has no such domain"))
        }
        Err(err) => Err(runtime_error(err)),
    }
}
