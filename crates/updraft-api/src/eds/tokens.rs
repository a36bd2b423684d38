//! EDS tokens: random, shown once, stored only as SHA-256 hashes, each naming the subject it stands for (a user of
//! one backend, its refresh grant, or the account).

use sha2::{Digest, Sha256};
use updraft_core::timestamp::now_ms;
use updraft_store::{StoreError, Tenants, TokenGrant};

use crate::ApiState;
use crate::auth::Credentials;
use crate::error::EdsError;

/// Seconds an access token lives, as EDS answered (`expires_in`).
pub(super) const TOKEN_LIFETIME_SECS: i64 = 28_799;

/// Tokens are random; only their SHA-256 is stored, so a copy of the database grants nothing.
pub(super) fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Seconds a refresh token lives.
pub(super) const REFRESH_LIFETIME_SECS: i64 = 30 * 24 * 3600;

/// Issues an access token for `subject` and returns it; the caller shows it once.
pub(super) async fn issue_token(state: &ApiState, subject: &str) -> Result<String, EdsError> {
    issue_token_for(state, subject, TOKEN_LIFETIME_SECS).await
}

pub(super) async fn issue_token_for(state: &ApiState, subject: &str, lifetime_secs: i64) -> Result<String, EdsError> {
    let token = hex::encode(rand::random::<[u8; 32]>());
    let grant = TokenGrant { subject: subject.to_owned(), expires_ms: now_ms() + lifetime_secs * 1000 };
    state.tenants.save_token(&token_hash(&token), grant).await?;
    Ok(token)
}

/// The user of `backend` whose access token this is, if it is known and unexpired.
pub(crate) async fn user_of_token(
    tenants: &dyn Tenants,
    backend: &str,
    token: &str,
) -> Result<Option<String>, StoreError> {
    let prefix = user_subject(backend, "");
    let grant = tenants.token(&token_hash(token)).await?;
    Ok(grant.and_then(|grant| grant.subject.strip_prefix(&prefix).map(str::to_owned)))
}

/// The subject behind a bearer token, if the token is known and unexpired.
pub(super) async fn token_subject(state: &ApiState, creds: &Credentials) -> Result<Option<String>, EdsError> {
    let Credentials::Bearer(token) = creds else { return Ok(None) };
    let grant = state.tenants.token(&token_hash(token)).await?;
    Ok(grant.map(|g| g.subject))
}

/// The token subject of a user's access token; tokens name their backend.
pub(super) fn user_subject(backend: &str, user_id: &str) -> String {
    format!("user:{backend}:{user_id}")
}

/// The token subject of a user's refresh token.
pub(super) fn refresh_subject(backend: &str, user_id: &str) -> String {
    format!("refresh:{backend}:{user_id}")
}
