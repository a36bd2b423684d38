//! OAuth2 for a backend's users: password and refresh grants, revocation, the current user.

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use updraft_core::ids::ObjectId;
use updraft_store::{Access, Collection, USERS};

use super::account::oauth_error;
use super::{
    Caller, DataRequest, Form, REFRESH_LIFETIME_SECS, TOKEN_LIFETIME_SECS, backend_of, group_refs, issue_token,
    issue_token_for, refresh_subject, storage, token_hash, user_subject,
};
use crate::ApiState;
use crate::auth;
use crate::body::{read_bytes, read_json};
use crate::error::{ApiError, Code, EdsError};

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/auth/oauth2/token", post(token))
        .route("/v1/auth/identity", post(identity))
        .route("/v1/auth/oauth2/revoke", post(revoke))
        .route("/v1/user", get(current_user))
}

/// The user whose username and password these are.
async fn verified_user(
    state: &ApiState,
    backend: &str,
    username: &str,
    password: &str,
) -> Result<Option<Value>, EdsError> {
    let Some((user, hash)) = state.users.login(backend, username).await.map_err(storage)? else { return Ok(None) };
    let password = password.to_owned();
    // Argon2 takes tens of milliseconds: on the blocking pool, not on a task.
    let ok = tokio::task::spawn_blocking(move || auth::password_matches(&hash, &password)).await.unwrap_or(false);
    Ok(ok.then_some(user))
}

/// Pre-1.0 QtEnginio's login: JSON `{"username", "password"}` for `{"sessionToken", "user", "usergroups"}`; the
/// session then travels as `Enginio-Backend-Session`.
async fn identity(State(state): State<ApiState>, headers: HeaderMap, body: Body) -> Result<Response, EdsError> {
    let backend = backend_of(&state, &headers).await?;
    let body = read_json(body, state.limits.max_body_bytes).await?;
    let field = |name: &str| body.as_ref().and_then(|b| b.get(name)).and_then(Value::as_str);
    let (Some(username), Some(password)) = (field("username"), field("password")) else {
        return Ok(oauth_error("invalid_request", "username and password are required"));
    };
    let Some(user) = verified_user(&state, &backend.id, username, password).await? else {
        return Ok(oauth_error("invalid_grant", "invalid username or password"));
    };
    let id = user["id"].as_str().unwrap_or_default().to_owned();
    let usergroups = group_refs(&state, &backend.id, &id).await?;
    let session = issue_token(&state, &user_subject(&backend.id, &id)).await?;
    Ok(Json(json!({ "sessionToken": session, "user": user, "usergroups": usergroups })).into_response())
}

async fn token(State(state): State<ApiState>, headers: HeaderMap, body: Body) -> Result<Response, EdsError> {
    let backend = backend_of(&state, &headers).await?;
    let form = Form::parse(&read_bytes(body, state.limits.max_body_bytes).await?);
    let user = match form.get("grant_type") {
        Some("password") => {
            let (Some(username), Some(password)) = (form.get("username"), form.get("password")) else {
                return Ok(oauth_error("invalid_request", "username and password are required"));
            };
            match verified_user(&state, &backend.id, username, password).await? {
                Some(user) => user,
                None => return Ok(oauth_error("invalid_grant", "invalid username or password")),
            }
        }
        Some("refresh_token") => {
            let Some(refresh) = form.get("refresh_token") else {
                return Ok(oauth_error("invalid_request", "refresh_token is required"));
            };
            let prefix = refresh_subject(&backend.id, "");
            let grant = state.tenants.token(&token_hash(refresh)).await.map_err(storage)?;
            let user_id = grant.and_then(|g| g.subject.strip_prefix(&prefix).map(str::to_owned));
            let user = match user_id.as_deref().and_then(ObjectId::parse) {
                Some(id) => state
                    .store
                    .get(Collection { backend: &backend.id, object_type: USERS }, id, Access::Everything)
                    .await
                    .map_err(storage)?,
                None => None,
            };
            let Some(user) = user else {
                return Ok(oauth_error("invalid_grant", "invalid or expired refresh token"));
            };
            // A refresh token is used once: the answer carries its successor.
            state.tenants.revoke_token(&token_hash(refresh)).await.map_err(storage)?;
            user
        }
        _ => return Ok(oauth_error("unsupported_grant_type", "grant_type must be password or refresh_token")),
    };
    let id = user["id"].as_str().unwrap_or_default().to_owned();
    let usergroups = group_refs(&state, &backend.id, &id).await?;
    let access = issue_token(&state, &user_subject(&backend.id, &id)).await?;
    let refresh = issue_token_for(&state, &refresh_subject(&backend.id, &id), REFRESH_LIFETIME_SECS).await?;
    Ok(Json(json!({
        "access_token": access,
        "refresh_token": refresh,
        "token_type": "bearer",
        "expires_in": TOKEN_LIFETIME_SECS,
        "enginio_data": { "user": user, "usergroups": usergroups },
    }))
    .into_response())
}

/// `token=<access or refresh token>`; answers 200 `{}` whether or not the token was known.
async fn revoke(State(state): State<ApiState>, headers: HeaderMap, body: Body) -> Result<Response, EdsError> {
    backend_of(&state, &headers).await?;
    let form = Form::parse(&read_bytes(body, state.limits.max_body_bytes).await?);
    let Some(token) = form.get("token") else {
        return Ok(oauth_error("invalid_request", "token is required"));
    };
    state.tenants.revoke_token(&token_hash(token)).await.map_err(storage)?;
    state.sessions.token_revoked(&state, token).await;
    Ok(Json(json!({})).into_response())
}

/// The signed-in user with its groups (`usergroups` as `{id, objectType}` refs).
async fn current_user(State(state): State<ApiState>, request: DataRequest) -> Result<Response, EdsError> {
    let Caller::User(id) = &request.caller else {
        return Err(ApiError::with_message(Code::AuthorizationRequired, "A user access token is required").into());
    };
    let at = Collection { backend: &request.backend.id, object_type: USERS };
    let user = match ObjectId::parse(id) {
        Some(id) => state.store.get(at, id, Access::Everything).await.map_err(storage)?,
        None => None,
    };
    let Some(Value::Object(mut user)) = user else {
        return Err(ApiError::with_message(Code::InvalidCredentials, "The user no longer exists").into());
    };
    user.insert("usergroups".into(), group_refs(&state, &request.backend.id, id).await?);
    Ok(Json(user).into_response())
}
