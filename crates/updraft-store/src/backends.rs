//! The rows of apps' backends as both engines keep them (`sqlite/tenants.rs`, `postgres/tenants.rs`): the
//! columns, how a row reads back, and how a new app's backends are made.

use updraft_core::ids::ObjectId;

use crate::{AccessDefaults, Backend};

/// Every app has one backend per environment.
pub(crate) const ENVIRONMENTS: [&str; 2] = ["development", "production"];

/// The columns of `backends`, in the order of [`BackendRow`].
pub(crate) const BACKEND_COLUMNS: &str = "id, app_id, environment, master_key, api_key, secret, access_defaults";

pub(crate) type BackendRow = (String, String, String, String, String, String, String);

pub(crate) fn backend_from(row: BackendRow) -> Backend {
    let (id, app_id, environment, master_key, api_key, secret, access) = row;
    // The column is written only from `AccessDefaults::as_str`; anything else is read as the safer one.
    let access = AccessDefaults::parse(&access).unwrap_or(AccessDefaults::Locked);
    Backend { id, app_id, environment, master_key, api_key, secret, access }
}

/// A new backend of app `app_id`, with fresh keys and secret.
pub(crate) fn new_backend(app_id: &str, environment: &str, access: AccessDefaults) -> Backend {
    let secret = || hex::encode(rand::random::<[u8; 32]>());
    Backend {
        id: ObjectId::generate().to_string(),
        app_id: app_id.to_owned(),
        environment: environment.to_owned(),
        master_key: secret(),
        api_key: secret(),
        secret: secret(),
        access,
    }
}
