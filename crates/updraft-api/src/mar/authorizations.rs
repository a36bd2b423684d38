//! Personal access tokens (`/v1/authorizations`) and the platform user (`GET /v1/user` without a backend): what
//! `qtc-cli login --token` is given and checks.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::routes;

use super::{Account, rfc3339, runtime};
use crate::ApiState;
use crate::body::read_json;
use crate::error::{ApiError, Code};
use crate::openapi::{ApiRouter, ServiceError, tag};

pub(super) fn routes() -> ApiRouter {
    ApiRouter::new().routes(routes!(list, create)).routes(routes!(revoke))
}

// Members sorted by name, as `json!` wrote them (see `mar/mod.rs`).

/// A personal access token, without the token.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct PersonalTokenWire {
    created_at: Option<String>,
    id: String,
    name: String,
}

#[derive(Serialize, ToSchema)]
struct PersonalTokens {
    results: Vec<PersonalTokenWire>,
}

/// A new personal access token.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "read by hand in `create`, for its errors; this is its schema")]
struct NewPersonalTokenWire {
    /// What it is for; empty if not given.
    name: Option<String>,
    /// Taken as the name when `name` is not given.
    note: Option<String>,
}

/// A new personal access token, with the token, shown this once.
#[derive(Serialize, ToSchema)]
struct PersonalTokenCreated {
    /// The token, for `Authorization: Bearer` (and as git's password). It lives ten years; only its hash is kept.
    access_token: String,
    #[serde(rename = "createdAt")]
    created_at: Option<String>,
    id: String,
    name: String,
    /// `bearer`.
    token_type: &'static str,
}

/// The personal access tokens, without the tokens themselves.
#[utoipa::path(get, path = "/v1/authorizations", tag = tag::PLATFORM, security(("accountToken" = [])),
    responses((status = 200, body = PersonalTokens)))]
async fn list(State(state): State<ApiState>, _: Account) -> Result<Response, ApiError> {
    let results = runtime(&state)?
        .personal_tokens()
        .all()
        .iter()
        .map(|t| PersonalTokenWire { created_at: rfc3339(Some(t.created_ms)), id: t.id.clone(), name: t.name.clone() })
        .collect();
    Ok(Json(PersonalTokens { results }).into_response())
}

/// Makes a personal access token (what `qtc-cli login --token` takes); the answer shows it this once.
#[utoipa::path(post, path = "/v1/authorizations", tag = tag::PLATFORM, security(("accountToken" = [])),
    request_body = NewPersonalTokenWire, responses((status = 201, body = PersonalTokenCreated),
    (status = 422, description = "A name that is no string, or longer than 200 characters.", body = ServiceError)))]
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
    let answer = PersonalTokenCreated {
        access_token: token,
        created_at: rfc3339(Some(record.created_ms)),
        id: record.id,
        name: record.name,
        token_type: "bearer",
    };
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// Revokes a personal access token: it is refused at once.
#[utoipa::path(delete, path = "/v1/authorizations/{id}", tag = tag::PLATFORM, security(("accountToken" = [])),
    params(("id" = String, Path, description = "The token's id (not the token).")),
    responses((status = 200, description = "Revoked: `{}`.", body = Object)))]
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
