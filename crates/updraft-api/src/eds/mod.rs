//! Enginio Data Storage: the account API (apps and their backends) and objects.
//!
//! Errors here take the EDS form (`EdsError`). Every data request names its backend with
//! `Enginio-Backend-Id`.

mod access;
mod account;
mod include;
mod list;
mod oauth;
mod objects;
mod schemas;
mod sessions;
pub mod stream;
mod usergroups;
mod users;
mod webhooks;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use updraft_core::timestamp::now_ms;
use updraft_store::{Access, AccessDefaults, Acl, Author, Backend, Groups, StoreError, Subject, Tenants, TokenGrant};

use crate::ApiState;
use crate::auth::{self, Credentials};
use crate::error::{ApiError, Code, EdsError};

pub use account::{AccountLogin, warn_open_backends};
pub use sessions::Sessions;
pub use stream::Streams;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .merge(account::routes())
        .merge(oauth::routes())
        .merge(objects::routes())
        .merge(users::routes())
        .merge(access::routes())
        .merge(schemas::routes())
        .merge(usergroups::routes())
        .merge(webhooks::routes())
        .merge(stream::routes())
}

/// Seconds an access token lives, as EDS answered (`expires_in`).
const TOKEN_LIFETIME_SECS: i64 = 28_799;

/// Tokens are random; only their SHA-256 is stored, so a copy of the database grants nothing.
fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Seconds a refresh token lives.
const REFRESH_LIFETIME_SECS: i64 = 30 * 24 * 3600;

/// Issues an access token for `subject` and returns it; the caller shows it once.
async fn issue_token(state: &ApiState, subject: &str) -> Result<String, EdsError> {
    issue_token_for(state, subject, TOKEN_LIFETIME_SECS).await
}

async fn issue_token_for(state: &ApiState, subject: &str, lifetime_secs: i64) -> Result<String, EdsError> {
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
async fn token_subject(state: &ApiState, creds: &Credentials) -> Result<Option<String>, EdsError> {
    let Credentials::Bearer(token) = creds else { return Ok(None) };
    let grant = state.tenants.token(&token_hash(token)).await?;
    Ok(grant.map(|g| g.subject))
}

/// The ACL template of new objects, users and usergroups of a type without a schema template: in an `open`
/// backend everyone reads, updates and deletes them and the creator (a user itself) administers; in a `locked`
/// one all of it is the creator's alone.
fn template(defaults: AccessDefaults) -> Acl {
    let everyone = || vec![Subject::Everyone];
    let creator = || vec![Subject::Creator];
    match defaults {
        AccessDefaults::Open => Acl { read: everyone(), update: everyone(), delete: everyone(), admin: creator() },
        AccessDefaults::Locked => Acl { read: creator(), update: creator(), delete: creator(), admin: creator() },
    }
}

/// Who calls a data endpoint, resolved once per request.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Caller {
    /// No credentials: the subject `*` (everyone).
    Anonymous,
    /// The backend's instance secret: full access, bypassing ACLs (server-side use).
    Secret,
    /// A user of this backend, by id, signed in with an access token.
    User(String),
}

impl Caller {
    /// The author recorded as `creator`/`updater`: users only.
    fn author(&self) -> Option<&str> {
        match self {
            Caller::User(id) => Some(id),
            Caller::Anonymous | Caller::Secret => None,
        }
    }
}

/// The token subject of a user's access token; tokens name their backend.
fn user_subject(backend: &str, user_id: &str) -> String {
    format!("user:{backend}:{user_id}")
}

/// A user's groups as ACL subjects.
pub(crate) async fn group_subjects(groups: &dyn Groups, backend: &str, user: &str) -> Result<Vec<Subject>, StoreError> {
    let ids = groups.groups_of(backend, user).await?;
    Ok(ids.into_iter().map(Subject::Group).collect())
}

/// The token subject of a user's refresh token.
fn refresh_subject(backend: &str, user_id: &str) -> String {
    format!("refresh:{backend}:{user_id}")
}

/// A user's groups as EDS lists them: `[{"id", "objectType": "usergroups"}]`.
async fn group_refs(state: &ApiState, backend: &str, user: &str) -> Result<serde_json::Value, EdsError> {
    let ids = state.groups.groups_of(backend, user).await?;
    Ok(ids.iter().map(|id| serde_json::json!({"id": id, "objectType": "usergroups"})).collect())
}

/// A form-urlencoded body (OAuth2 requests).
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(bytes: &[u8]) -> Form {
        Form(serde_urlencoded::from_bytes(bytes).unwrap_or_default())
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// The backend named by `Enginio-Backend-Id`: 400 without one, 404 for an unknown one.
async fn backend_of(state: &ApiState, headers: &HeaderMap) -> Result<Backend, EdsError> {
    let id = headers
        .get("enginio-backend-id")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::with_message(Code::BadRequest, "Enginio-Backend-Id header is required"))?;
    let backend = state.tenants.backend(id).await?;
    Ok(backend.ok_or_else(|| ApiError::with_message(Code::NotFound, "Unknown backend"))?)
}

/// The backend a data request names and who is calling.
struct DataRequest {
    backend: Backend,
    caller: Caller,
    /// The caller's ACL subjects: everyone, and for a user the user and its groups.
    subjects: Vec<Subject>,
    /// `X-Request-Id`, reported with the changes this request makes.
    request_id: Option<String>,
}

impl DataRequest {
    /// Who makes this request's changes.
    fn author(&self) -> Author<'_> {
        Author { user: self.caller.author(), request_id: self.request_id.as_deref() }
    }

    fn access(&self) -> Access<'_> {
        match self.caller {
            Caller::Secret => Access::Everything,
            Caller::Anonymous | Caller::User(_) => Access::Subjects(&self.subjects),
        }
    }

    /// A store failure for this caller: a refusal says "sign in" to the anonymous and "access
    /// denied" to the others.
    fn refused(&self, err: StoreError) -> EdsError {
        self.denied(EdsError::from(err))
    }

    /// A refusal says "sign in" to the anonymous, "access denied" to the others.
    fn denied(&self, err: EdsError) -> EdsError {
        match (&self.caller, err.0.code) {
            (Caller::Anonymous, Code::AccessDenied) => {
                EdsError(ApiError::with_message(Code::AuthorizationRequired, "Sign in to do this"))
            }
            _ => err,
        }
    }
}

impl FromRequestParts<ApiState> for DataRequest {
    type Rejection = EdsError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<DataRequest, EdsError> {
        let backend = backend_of(state, &parts.headers).await?;
        let creds = auth::credentials(&parts.headers)?;
        let caller = match &creds {
            Credentials::None => Caller::Anonymous,
            Credentials::Bearer(token) if auth::same_secret(token, &backend.secret) => Caller::Secret,
            Credentials::Bearer(token) => match user_of_token(state.tenants.as_ref(), &backend.id, token).await {
                Ok(Some(user)) => Caller::User(user),
                Ok(None) => return Err(ApiError::with_message(Code::InvalidCredentials, "Invalid access token").into()),
                Err(err) => return Err(EdsError::from(err)),
            },
            Credentials::Unusable => {
                return Err(ApiError::with_message(Code::InvalidCredentials, "Invalid access token").into());
            }
        };
        let mut subjects = vec![Subject::Everyone];
        if let Caller::User(id) = &caller {
            subjects.push(Subject::user(id));
            subjects.extend(group_subjects(state.groups.as_ref(), &backend.id, id).await?);
        }
        let request_id = parts
            .headers
            .get("x-request-id")
            .and_then(|value| value.to_str().ok())
            .filter(|id| !id.is_empty() && id.len() <= 200)
            .map(str::to_owned);
        Ok(DataRequest { backend, caller, subjects, request_id })
    }
}
