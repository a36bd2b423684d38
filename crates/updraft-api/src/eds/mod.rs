//! Enginio Data Storage: the account API (apps and their backends) and objects.
//!
//! Errors here take the EDS form (`EdsError`). Every data request names its backend with
//! `Enginio-Backend-Id`.

mod access;
mod account;
mod collection;
mod files;
mod include;
mod list;
mod oauth;
mod objects;
mod objects_doc;
mod request;
mod schemas;
mod search;
mod sessions;
pub mod stream;
mod tokens;
mod usergroups;
mod users;
mod webhooks;

use updraft_store::{AccessDefaults, Acl, Subject};

use crate::ApiState;
use crate::error::EdsError;
use crate::openapi::ApiRouter;

pub use account::{AccountLogin, warn_open_backends};
pub(crate) use account::{account_token, app_json, is_account_token, personal_token};
pub use files::{FileSettings, Uploads, resume_renders};
pub(crate) use request::group_subjects;
use request::{Caller, DataRequest, backend_of};
pub use sessions::Sessions;
pub use stream::Streams;
pub(crate) use tokens::user_of_token;
use tokens::{
    REFRESH_LIFETIME_SECS, TOKEN_LIFETIME_SECS, issue_token, issue_token_for, refresh_subject, token_hash,
    token_subject, user_subject,
};

pub(crate) fn routes() -> ApiRouter {
    ApiRouter::new()
        .merge(account::routes())
        .merge(oauth::routes())
        .merge(objects::routes())
        .merge(files::routes())
        .merge(access::routes())
        .merge(schemas::routes())
        .merge(search::routes())
        .merge(usergroups::routes())
        .merge(webhooks::routes())
        .merge(stream::routes())
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
