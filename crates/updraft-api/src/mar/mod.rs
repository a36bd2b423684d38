//! The platform and MAR APIs (docs/runtime.md): clouds, instances and datacenters as `qtc-cli` and the npm SDK
//! call them, the MAR app API, git over HTTP, and the Host router in front of everything.
//!
//! Who may do what: every call needs a token of the account (`/v1/account/auth/oauth2/token`), which serves as
//! the personal access token and, handed out by `/v1/accounts/:id/authorizations`, as the cloud token; git
//! takes it as the Basic password. An app's own traffic (its host under the apps domain) carries no Updraft
//! credentials and reaches only that app's processes.

mod apps;
mod authorizations;
mod databases;
mod domains;
mod git;
mod instances;
mod platform;
mod releases;
pub(crate) mod router;

use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use updraft_runtime::Runtime;
use utoipa::ToSchema;

use crate::ApiState;
use crate::auth::{Credentials, credentials};
use crate::error::{ApiError, Code};

pub(crate) use authorizations::platform_user;
pub(crate) use router::intercept;
pub use router::serve_app;

pub(crate) fn routes() -> crate::openapi::ApiRouter {
    platform::routes()
        .merge(apps::routes())
        .merge(domains::routes())
        .merge(databases::routes())
        .merge(authorizations::routes())
        .merge(releases::routes())
}

// The wire structs of this module write their members in the order `json!` wrote them before: sorted by name
// (serde_json keeps no insertion order here), so the answers stay byte for byte the same.

/// A line of a log the records keep: a cloud's or a database instance's.
#[derive(Serialize, ToSchema)]
struct LogEntryWire {
    log: String,
    /// RFC 3339.
    time: String,
}

#[derive(Serialize, ToSchema)]
struct LogEntries {
    results: Vec<LogEntryWire>,
}

/// A count or a size, as a number or as a string of digits (`2` or `"2"`).
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code, reason = "read by hand, as numbers or strings; this is its schema")]
enum NumberOrString {
    Number(u32),
    String(String),
}

/// The runtime, or 404 where this server runs none.
fn runtime(state: &ApiState) -> Result<&Arc<Runtime>, ApiError> {
    state.runtime.as_ref().ok_or_else(|| ApiError::with_message(Code::NotFound, "this server runs no applications"))
}

/// A request with a live account token (or personal token): its handler runs only then, others get 401.
pub(super) struct Account;

impl axum::extract::FromRequestParts<ApiState> for Account {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &ApiState) -> Result<Account, ApiError> {
        require_account(state, &parts.headers).await.map(|()| Account)
    }
}

/// Refuses a request without a live account token.
async fn require_account(state: &ApiState, headers: &HeaderMap) -> Result<(), ApiError> {
    match credentials(headers)? {
        Credentials::Bearer(token) => account_token_ok(state, &token).await,
        Credentials::None => Err(ApiError::new(Code::AuthorizationRequired)),
        Credentials::Unusable => Err(ApiError::new(Code::InvalidCredentials)),
    }
}

async fn account_token_ok(state: &ApiState, token: &str) -> Result<(), ApiError> {
    match crate::eds::is_account_token(state, token).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(ApiError::new(Code::InvalidCredentials)),
        Err(err) => {
            tracing::error!(%err, "token lookup failed");
            Err(ApiError::new(Code::Internal))
        }
    }
}

/// A time the records keep in milliseconds, as the API shows times (RFC 3339).
fn rfc3339(ms: Option<i64>) -> Option<String> {
    let time = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms?) * 1_000_000).ok()?;
    time.format(&time::format_description::well_known::Rfc3339).ok()
}

fn runtime_error(err: updraft_runtime::RuntimeError) -> ApiError {
    use updraft_runtime::RuntimeError;
    match err {
        RuntimeError::NotFound => ApiError::with_message(Code::NotFound, "no such app"),
        RuntimeError::Conflict(why) => ApiError::with_message(Code::Conflict, why),
        RuntimeError::Invalid(why) => ApiError::with_message(Code::ValidationFailed, why),
        RuntimeError::Io(err) => {
            tracing::error!(%err, "runtime failure");
            ApiError::new(Code::Internal)
        }
    }
}
