//! Users: sign-up, read, update (password included), delete. Passwords are argon2-hashed and
//! never part of a user document.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};
use updraft_core::ids::ObjectId;
use updraft_store::{Collection, Patch, USERS};

use super::objects::object_body;
use super::{DataRequest, storage};
use crate::ApiState;
use crate::auth;
use crate::error::{ApiError, Code, EdsError};

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/users", get(list).post(create))
        .route("/v1/users/{id}", get(show).put(update).delete(remove))
}

/// A present, non-blank string property; QtEnginio compares these error objects whole.
fn required_text(properties: &Map<String, Value>, property: &'static str) -> Result<String, EdsError> {
    match properties.get(property) {
        Some(Value::String(text)) if !text.trim().is_empty() => Ok(text.clone()),
        _ => Err(ApiError::field(property, "can't be blank").into()),
    }
}

/// Argon2 is slow on purpose; keep it off the async workers.
async fn hash(password: String) -> Result<String, EdsError> {
    tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(|_| EdsError(ApiError::new(Code::Internal)))?
        .map_err(|err| {
            tracing::error!(%err, "password hashing failed");
            EdsError(ApiError::new(Code::Internal))
        })
}

async fn list(State(state): State<ApiState>, request: DataRequest, uri: Uri) -> Result<Response, EdsError> {
    super::list::list(&state, &request, USERS, &uri).await
}

async fn create(State(state): State<ApiState>, request: DataRequest, body: Body) -> Result<Response, EdsError> {
    let mut properties = object_body(&state, body).await?;
    required_text(&properties, "username")?;
    let password = required_text(&properties, "password")?;
    // A user's ACL is its own: an `extend` ref on the users schema is not followed.
    let (acl, _parent) = super::schemas::admit(&state, &request, USERS, &properties).await?;
    properties.remove("password");
    let password_hash = hash(password).await?;
    let user = state
        .users
        .insert_user(&request.backend.id, properties, &password_hash, request.author(), acl)
        .await
        .map_err(storage)?;
    Ok((StatusCode::CREATED, Json(user)).into_response())
}

fn user_id(id: &str) -> Result<ObjectId, EdsError> {
    ObjectId::parse(id).ok_or_else(|| not_found().into())
}

fn not_found() -> ApiError {
    ApiError::with_message(Code::NotFound, "User not found")
}

async fn show(
    State(state): State<ApiState>,
    request: DataRequest,
    Path(id): Path<String>,
) -> Result<Response, EdsError> {
    let at = Collection { backend: &request.backend.id, object_type: USERS };
    let user = state.store.get(at, user_id(&id)?, request.access()).await.map_err(storage)?.ok_or_else(not_found)?;
    Ok(Json(user).into_response())
}

async fn update(
    State(state): State<ApiState>,
    request: DataRequest,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, EdsError> {
    let user = user_id(&id)?;
    let mut patch = object_body(&state, body).await?;
    if patch.contains_key("username") {
        required_text(&patch, "username")?;
    }
    let password = match patch.remove("password") {
        None => None,
        Some(Value::String(password)) if !password.trim().is_empty() => Some(hash(password).await?),
        Some(_) => return Err(ApiError::field("password", "can't be blank").into()),
    };
    // The user's ACL decides: by default only the user itself (its admin) may change it. The document and the
    // password change together or not at all.
    let updated = state
        .users
        .update_user(
            &request.backend.id,
            user,
            Patch::Merge(patch),
            password.as_deref(),
            request.author(),
            request.access(),
        )
        .await
        .map_err(|e| request.refused(e))?
        .ok_or_else(not_found)?;
    Ok(Json(updated).into_response())
}

async fn remove(
    State(state): State<ApiState>,
    request: DataRequest,
    Path(id): Path<String>,
) -> Result<Response, EdsError> {
    let at = Collection { backend: &request.backend.id, object_type: USERS };
    state
        .store
        .delete(at, user_id(&id)?, request.author(), request.access())
        .await
        .map_err(|e| request.refused(e))?
        .ok_or_else(not_found)?;
    Ok(Json(json!({})).into_response())
}
