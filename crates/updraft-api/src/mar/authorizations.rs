//! Personal access tokens (`/v1/authorizations`) and the platform user (`GET /v1/user` without a backend): what
//! `qtc-cli login --token` is given and checks.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::{Account, rfc3339, runtime};
use crate::ApiState;
use crate::body::read_json;
use crate::error::{ApiError, Code};

pub(super) fn routes() -> Router<ApiState> {
    Router::new().route("/v1/authorizations", get(list).post(create)).route("/v1/authorizations/{id}", delete(revoke))
}

async fn list(State(state): State<ApiState>, _: Account) -> Result<Response, ApiError> {
    let results: Vec<Value> = runtime(&state)?
        .personal_tokens()
        .all()
        .iter()
        .map(|t| json!({"id": t.id, "name": t.name, "createdAt": rfc3339(Some(t.created_ms))}))
        .collect();
    Ok(Json(json!({"results": results})).into_response())
}

/// `{"name"?}` → 201 with `access_token`, shown this once.
async fn create(State(state): State<ApiState>, _: Account, body: axum::body::Body) -> Result<Response, ApiError> {
    let body = read_json(body, state.limits.max_body_bytes).await?.unwrap_or(Value::Null);
    let name = match (&body["name"], &body["note"]) {
        (Value::String(name), _) | (Value::Null, Value::String(name)) => name.clone(),
        (Value::Null, Value::Null) => String::new(),
        _ => return Err(ApiError::field("name", "a token's name is a string")),
    };
    let tokens = runtime(&state)?.personal_tokens();
    let (token, hash) = crate::eds::personal_token(&state).await.map_err(|e| e.0)?;
    let record = match tokens.add(&name, hash.clone()) {
        Ok(record) => record,
        Err(why) => {
            // Not listed, so not left usable.
            let _ = state.tenants.revoke_token(&hash).await;
            return Err(ApiError::field("name", why));
        }
    };
    let answer = json!({
        "id": record.id,
        "name": record.name,
        "access_token": token,
        "token_type": "bearer",
        "createdAt": rfc3339(Some(record.created_ms)),
    });
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

async fn revoke(State(state): State<ApiState>, _: Account, Path(id): Path<String>) -> Result<Response, ApiError> {
    let removed = runtime(&state)?.personal_tokens().remove(&id).map_err(|err| {
        tracing::error!(%err, "personal tokens not written");
        ApiError::new(Code::Internal)
    })?;
    let Some(removed) = removed else { return Err(ApiError::with_message(Code::NotFound, "no such token")) };
    state.tenants.revoke_token(&removed.hash).await.map_err(|err| {
        tracing::error!(%err, "a listed-as-revoked token stays usable");
        ApiError::new(Code::Internal)
    })?;
    Ok(Json(json!({})).into_response())
}

/// `GET /v1/user` without `Enginio-Backend-Id`: the platform's user, the account.
pub(crate) async fn platform_user(state: &ApiState, headers: &HeaderMap) -> Result<Response, ApiError> {
    super::require_account(state, headers).await?;
    let email = state.account.as_ref().map(|a| a.email.clone());
    Ok(Json(json!({"id": "account", "email": email, "username": email, "name": "Updraft account"})).into_response())
}
