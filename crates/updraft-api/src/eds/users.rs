//! What only users have among the collections `objects.rs` serves: sign-ups count against the client's address
//! like logins, passwords are argon2-hashed and never part of a user document, and neither a password nor a
//! username changes in a way that would leave the user unable to sign in.

use axum::http::HeaderMap;
use serde_json::{Map, Value};
use updraft_core::atomic::AtomicOp;
use updraft_core::ids::ObjectId;
use updraft_store::{Acl, NewPassword, StoreError};

use super::{Caller, DataRequest, token_hash};
use crate::ApiState;
use crate::auth::{self, Credentials};
use crate::error::{ApiError, EdsError};
use crate::passwords::{Attempt, ClientAddress, TooManyAttempts};

/// A sign-up of the (checked) username, admitted or refused like a login from the same client.
pub(super) fn sign_up_attempt<'a>(
    state: &'a ApiState,
    client: ClientAddress,
    request: &DataRequest,
    properties: &Map<String, Value>,
) -> Result<Attempt<'a>, TooManyAttempts> {
    let username = properties.get("username").and_then(Value::as_str).unwrap_or_default();
    let account = format!("{}\n{username}", request.backend.id);
    state.passwords.attempt(client.0, &account)
}

/// Inserts the new user with its password hashed, not stored as data; a taken username counts as a failed login.
pub(super) async fn insert(
    state: &ApiState,
    request: &DataRequest,
    mut properties: Map<String, Value>,
    acl: Acl,
    attempt: Attempt<'_>,
) -> Result<Value, EdsError> {
    let Some(Value::String(password)) = properties.remove("password") else {
        return Err(blank_password());
    };
    let password_hash = state.passwords.hash(password).await?;
    let backend = &request.backend.id;
    state.users.insert_user(backend, properties, &password_hash, request.author(), acl).await.map_err(|err| {
        if matches!(err, StoreError::Taken { .. }) {
            attempt.failed();
        }
        EdsError::from(err)
    })
}

/// A new password from an update, hashed, and the token its sessions keep.
pub(super) struct PasswordChange {
    hash: String,
    keep_token: Option<String>,
}

impl PasswordChange {
    pub(super) fn new_password(&self) -> NewPassword<'_> {
        NewPassword { hash: &self.hash, keep_token: self.keep_token.as_deref() }
    }
}

/// Takes the password out of an update to `user`, hashed. A new password ends the user's other sessions; a user
/// changing its own keeps the token it called with. The user's ACL decides who may: by default only the user
/// itself (its admin).
pub(super) async fn password_change(
    state: &ApiState,
    request: &DataRequest,
    headers: &HeaderMap,
    user: ObjectId,
    patch: &mut Map<String, Value>,
) -> Result<Option<PasswordChange>, EdsError> {
    let password = match patch.remove("password") {
        None => return Ok(None),
        Some(Value::String(password)) if !password.trim().is_empty() => password,
        Some(_) => return Err(blank_password()),
    };
    let hash = state.passwords.hash(password).await?;
    let keep_token = match (&request.caller, auth::credentials(headers)?) {
        (Caller::User(caller), Credentials::Bearer(token)) if *caller == user.to_string() => Some(token_hash(&token)),
        _ => None,
    };
    Ok(Some(PasswordChange { hash, keep_token }))
}

fn blank_password() -> EdsError {
    ApiError::field("password", "can't be blank").into()
}

/// Atomic operators on a user's document, as on objects, but the password changes only through a plain update,
/// where it is hashed, and the username only by being set to a name.
pub(super) fn admit_atomic(ops: &[AtomicOp]) -> Result<(), EdsError> {
    if ops.iter().any(|op| op.property() == "password") {
        return Err(ApiError::field("password", "changes only through PUT /v1/users/<id>").into());
    }
    if let Some(bad) = ops.iter().find(|op| match op {
        AtomicOp::Set(name, value) => name == "username" && !value.is_string(),
        other => other.property() == "username" && !matches!(other, AtomicOp::Set(..)),
    }) {
        return Err(ApiError::field(bad.property().to_owned(), "can only be set to a name").into());
    }
    Ok(())
}
