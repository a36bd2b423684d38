//! `/v1/apps/:id/domains`: the custom domains that reach an app besides `<app-id>.<apps-domain>`. A domain is
//! one app's: claiming another app's is 409, and nothing changes. `/v1/apps/:id/ssl_certificate`: the app's own
//! certificate, which the TLS listeners present to clients naming those hosts.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::{Account, runtime, runtime_error};
use crate::ApiState;
use crate::body::read_json;
use crate::error::{ApiError, Code};

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/apps/{id}/domains", get(list).post(add))
        .route("/v1/apps/{id}/domains/{name}", delete(remove))
        .route("/v1/apps/{id}/ssl_certificate", axum::routing::post(set_certificate).delete(remove_certificate))
}

/// `{"name","privateKey","certificateBody","certificateChain"?}` (PEM): checked, kept, served at once.
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
    Ok(Json(json!({"name": if name.is_empty() { &id } else { name }})).into_response())
}

async fn remove_certificate(
    State(state): State<ApiState>,
    _: Account,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    runtime(&state)?.remove_certificate(&id).await.map_err(runtime_error)?;
    Ok(Json(json!({})).into_response())
}

async fn list(State(state): State<ApiState>, _: Account, Path(id): Path<String>) -> Result<Response, ApiError> {
    let app = runtime(&state)?.app(&id).ok_or_else(|| ApiError::with_message(Code::NotFound, "no such app"))?;
    let results: Vec<Value> = app.domains.iter().map(|name| json!({"name": name})).collect();
    Ok(Json(json!({"results": results})).into_response())
}

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
    Ok((StatusCode::CREATED, Json(json!({"name": name}))).into_response())
}

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
