//! Enginio Data Storage: the account API (apps and their backends) and objects.
//!
//! Errors here take the EDS form (`EdsError`). Every data request names its backend with
//! `Enginio-Backend-Id`.

mod account;
mod objects;

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use updraft_store::{Backend, StoreError, TokenGrant};

use crate::ApiState;
use crate::auth::{self, Credentials};
use crate::error::{ApiError, Code, EdsError};

pub use account::AccountLogin;

pub fn routes() -> Router<ApiState> {
    Router::new().merge(account::routes()).merge(objects::routes())
}

/// Seconds an access token lives, as EDS answered (`expires_in`).
const TOKEN_LIFETIME_SECS: i64 = 28_799;

/// Tokens are random; only their SHA-256 is stored, so a copy of the database grants nothing.
fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Issues a token for `subject` and returns it; the caller shows it once.
async fn issue_token(state: &ApiState, subject: &str) -> Result<String, EdsError> {
    let token = hex::encode(rand::random::<[u8; 32]>());
    let grant = TokenGrant { subject: subject.to_owned(), expires_ms: now_ms() + TOKEN_LIFETIME_SECS * 1000 };
    state.tenants.save_token(&token_hash(&token), grant).await.map_err(storage)?;
    Ok(token)
}

/// The subject behind a bearer token, if the token is known and unexpired.
async fn token_subject(state: &ApiState, creds: &Credentials) -> Result<Option<String>, EdsError> {
    let Credentials::Bearer(token) = creds else { return Ok(None) };
    let grant = state.tenants.token(&token_hash(token)).await.map_err(storage)?;
    Ok(grant.map(|g| g.subject))
}

fn storage(err: StoreError) -> EdsError {
    tracing::error!(%err, "storage failed");
    EdsError(ApiError::with_message(Code::Internal, "Storage failure"))
}

/// Who calls a data endpoint, resolved once per request.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Caller {
    /// No credentials: the subject `*` (everyone).
    Anonymous,
    /// The backend's instance secret: full access, bypassing ACLs (server-side use).
    Secret,
}

/// The backend a data request names and who is calling.
struct DataRequest {
    backend: Backend,
    caller: Caller,
}

impl FromRequestParts<ApiState> for DataRequest {
    type Rejection = EdsError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<DataRequest, EdsError> {
        let id = parts
            .headers
            .get("enginio-backend-id")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::with_message(Code::BadRequest, "Enginio-Backend-Id header is required"))?;
        let backend = state
            .tenants
            .backend(id)
            .await
            .map_err(storage)?
            .ok_or_else(|| ApiError::with_message(Code::NotFound, "Unknown backend"))?;
        let caller = match auth::credentials(&parts.headers)? {
            Credentials::None => Caller::Anonymous,
            Credentials::Bearer(token) if auth::same_secret(&token, &backend.secret) => Caller::Secret,
            // User tokens come with the users API; until then, no other bearer is valid here.
            Credentials::Bearer(_) | Credentials::Unusable => {
                return Err(ApiError::with_message(Code::InvalidCredentials, "Invalid access token").into());
            }
        };
        Ok(DataRequest { backend, caller })
    }
}
