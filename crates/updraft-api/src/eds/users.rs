//! Users: sign-up, read, update (password included), delete. Passwords are argon2-hashed and
//! never part of a user document.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};
use updraft_core::ids::ObjectId;
use updraft_store::{Collection, NewPassword, Patch, StoreError, USERS};

use super::objects::object_body;
use super::{Caller, DataRequest, token_hash};
use crate::ApiState;
use crate::auth::{self, Credentials};
use crate::error::{ApiError, Code, EdsError};
use crate::passwords::ClientAddress;

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/users", get(list).post(create))
        .route("/v1/users/{id}", get(show).put(update).delete(remove))
        .route("/v1/users/{id}/atomic", axum::routing::put(atomic))
}

/// A present, non-blank string property; QtEnginio compares these error objects whole.
fn required_text(properties: &Map<String, Value>, property: &'static str) -> Result<String, EdsError> {
    match properties.get(property) {
        Some(Value::String(text)) if !text.trim().is_empty() => Ok(text.clone()),
        _ => Err(ApiError::field(property, "can't be blank").into()),
    }
}

async fn list(State(state): State<ApiState>, request: DataRequest, uri: Uri) -> Result<Response, EdsError> {
    super::list::list(&state, &request, USERS, &uri).await
}

async fn create(
    State(state): State<ApiState>,
    client: ClientAddress,
    request: DataRequest,
    body: Body,
) -> Result<Response, EdsError> {
    let mut properties = object_body(&state, body).await?;
    let username = required_text(&properties, "username")?;
    let password = required_text(&properties, "password")?;
    // Sign-ups count against the client's address like logins; a taken username as a failed login.
    let attempt = match state.passwords.attempt(client.0, &format!("{}\n{username}", request.backend.id)) {
        Ok(attempt) => attempt,
        Err(refused) => return Ok(refused.eds_response()),
    };
    let initial = super::objects::initial_acl(&mut properties)?;
    // A user's ACL is its own: an `extend` ref on the users schema is not followed.
    let (template, _parent) = super::schemas::admit(&state, &request, USERS, &properties).await?;
    let acl = initial.unwrap_or(template);
    properties.remove("password");
    let password_hash = state.passwords.hash(password).await?;
    let user =
        state.users.insert_user(&request.backend.id, properties, &password_hash, request.author(), acl).await.map_err(
            |err| {
                if matches!(err, StoreError::Taken { .. }) {
                    attempt.failed();
                }
                EdsError::from(err)
            },
        )?;
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
    let user = state.store.get(at, user_id(&id)?, request.access()).await?.ok_or_else(not_found)?;
    Ok(Json(user).into_response())
}

async fn update(
    State(state): State<ApiState>,
    request: DataRequest,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, EdsError> {
    let user = user_id(&id)?;
    let mut patch = object_body(&state, body).await?;
    if patch.contains_key("username") {
        required_text(&patch, "username")?;
    }
    super::objects::admit_patch(&state, &request, USERS, &patch).await?;
    let password = match patch.remove("password") {
        None => None,
        Some(Value::String(password)) if !password.trim().is_empty() => Some(state.passwords.hash(password).await?),
        Some(_) => return Err(ApiError::field("password", "can't be blank").into()),
    };
    // A new password ends the user's other sessions; a user changing its own keeps the token it called with.
    let own_token = match (&request.caller, auth::credentials(&headers)?) {
        (Caller::User(caller), Credentials::Bearer(token)) if *caller == id => Some(token_hash(&token)),
        _ => None,
    };
    let password = password.as_deref().map(|hash| NewPassword { hash, keep_token: own_token.as_deref() });
    // The user's ACL decides: by default only the user itself (its admin) may change it. The document and the
    // password change together or not at all.
    let updated = state
        .users
        .update_user(&request.backend.id, user, Patch::Merge(patch), password, request.author(), request.access())
        .await
        .map_err(|e| request.refused(e))?
        .ok_or_else(not_found)?;
    state.sessions.user_changed(&state, &request.backend.id, &id).await;
    Ok(Json(updated).into_response())
}

/// Atomic operators on a user's document, as on objects; the password changes only through a plain update,
/// where it is hashed.
async fn atomic(
    State(state): State<ApiState>,
    request: DataRequest,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, EdsError> {
    let user = user_id(&id)?;
    let ops = super::objects::atomic_ops(&state, &request, USERS, body).await?;
    if ops.iter().any(|op| op.property() == "password") {
        return Err(ApiError::field("password", "changes only through PUT /v1/users/<id>").into());
    }
    if let Some(bad) = ops.iter().find(|op| match op {
        updraft_core::atomic::AtomicOp::Set(name, value) => name == "username" && !value.is_string(),
        other => other.property() == "username" && !matches!(other, updraft_core::atomic::AtomicOp::Set(..)),
    }) {
        return Err(ApiError::field(bad.property().to_owned(), "can only be set to a name").into());
    }
    let updated = state
        .users
        .update_user(&request.backend.id, user, Patch::Atomic(ops), None, request.author(), request.access())
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
    state.sessions.user_changed(&state, &request.backend.id, &id).await;
    Ok(Json(json!({})).into_response())
}
