//! Who calls a data endpoint and for which backend, resolved once per request (`DataRequest`), and what a refusal
//! says to that caller.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use updraft_store::{Access, Author, Backend, Groups, StoreError, Subject};

use super::tokens::user_of_token;
use crate::ApiState;
use crate::auth::{self, Credentials};
use crate::error::{ApiError, Code, EdsError};

/// Who calls a data endpoint, resolved once per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Caller {
    /// No credentials: the subject `*` (everyone).
    Anonymous,
    /// The backend's instance secret: full access, bypassing ACLs (server-side use).
    Secret,
    /// A user of this backend, by id, signed in with an access token.
    User(String),
}

impl Caller {
    /// The author recorded as `creator`/`updater`: users only.
    pub(super) fn author(&self) -> Option<&str> {
        match self {
            Caller::User(id) => Some(id),
            Caller::Anonymous | Caller::Secret => None,
        }
    }
}

/// A user's groups as ACL subjects.
pub(crate) async fn group_subjects(groups: &dyn Groups, backend: &str, user: &str) -> Result<Vec<Subject>, StoreError> {
    let ids = groups.groups_of(backend, user).await?;
    Ok(ids.into_iter().map(Subject::Group).collect())
}

/// The backend named by `Enginio-Backend-Id`: 400 without one, 404 for an unknown one.
pub(super) async fn backend_of(state: &ApiState, headers: &HeaderMap) -> Result<Backend, EdsError> {
    let id = headers
        .get("enginio-backend-id")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::with_message(Code::BadRequest, "Enginio-Backend-Id header is required"))?;
    let backend = state.tenants.backend(id).await?;
    Ok(backend.ok_or_else(|| ApiError::with_message(Code::NotFound, "Unknown backend"))?)
}

/// The backend a data request names and who is calling.
pub(super) struct DataRequest {
    pub(super) backend: Backend,
    pub(super) caller: Caller,
    /// The caller's ACL subjects: everyone, and for a user the user and its groups.
    pub(super) subjects: Vec<Subject>,
    /// `X-Request-Id`, reported with the changes this request makes.
    pub(super) request_id: Option<String>,
}

impl DataRequest {
    /// Who makes this request's changes.
    pub(super) fn author(&self) -> Author<'_> {
        Author { user: self.caller.author(), request_id: self.request_id.as_deref() }
    }

    pub(super) fn access(&self) -> Access<'_> {
        match self.caller {
            Caller::Secret => Access::Everything,
            Caller::Anonymous | Caller::User(_) => Access::Subjects(&self.subjects),
        }
    }

    /// A store failure for this caller: a refusal says "sign in" to the anonymous and "access
    /// denied" to the others.
    pub(super) fn refused(&self, err: StoreError) -> EdsError {
        self.denied(EdsError::from(err))
    }

    /// A refusal says "sign in" to the anonymous, "access denied" to the others.
    pub(super) fn denied(&self, err: EdsError) -> EdsError {
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
