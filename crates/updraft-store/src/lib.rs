//! Durable storage of EDS objects behind one trait, [`Store`], chosen once at start-up.
//! [`SqliteStore`] is the embedded default; [`PostgresStore`] serves a cluster of nodes on one PostgreSQL database.
//!
//! A stored object is its whole JSON document, reserved properties included (`id`,
//! `objectType`, `createdAt`, `updatedAt`, `creator`, `updater`), so that filters and sorts treat
//! every property alike. The store sets the reserved ones; callers never do.
//!
//! This crate knows SQL and JSON documents, and nothing of HTTP.

mod backends;
mod document;
mod files;
mod gateways;
mod postgres;
mod search;
mod sqlite;
mod stored_acl;
mod webhooks;

use serde_json::{Map, Value};
pub use updraft_core::access::{Acl, Permission, Subject, USERGROUPS, USERS};
use updraft_core::atomic::AtomicOp;
pub use updraft_core::change::{Change, ChangeEvent};
use updraft_core::ids::ObjectId;
use updraft_query::{Filter, Sort};

pub use files::{FileRecord, FileStatus, Files, NewFile, StoredBytes};
pub use gateways::{GatewayChange, SavedGateway, SavedGateways};
pub use postgres::{Copied, PostgresOptions, PostgresStore, import_sqlite, migrate_url as migrate_postgres};
pub use search::{MAX_SEARCHED_PER_TYPE, Search, SearchQuery, searched_properties};
pub use sqlite::{SqliteOptions, SqliteStore};
/// The group commit's statements, per insert, for `examples/insert_floor.rs`, which measures them on their own.
#[doc(hidden)]
pub mod insert_statements {
    pub use crate::sqlite::{INSERT_CHANGE, INSERT_OBJECT};
}
pub use webhooks::{Delivery, DeliveryStatus, DueDelivery, Outcome, Webhook, WebhookSpec, Webhooks};

/// Users are documents of type `users` plus a password hash kept apart, never in the document.
pub trait Users: Send + Sync {
    /// Creates a user document and its password in one transaction. In `acl`, `creator` is the
    /// new user itself.
    fn insert_user<'a>(
        &'a self,
        backend: &'a str,
        properties: Map<String, Value>,
        password_hash: &'a str,
        author: Author<'a>,
        acl: Acl,
    ) -> BoxFuture<'a, Result<Value, StoreError>>;

    /// Updates a user document (as [`Store::update`]) and, when given, its password, in one transaction. A new
    /// password revokes the user's tokens but `keep_token`.
    fn update_user<'a>(
        &'a self,
        backend: &'a str,
        user_id: ObjectId,
        patch: Patch,
        password: Option<NewPassword<'a>>,
        author: Author<'a>,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<Option<Value>, StoreError>>;

    /// The user with this username and its password hash.
    fn login<'a>(
        &'a self,
        backend: &'a str,
        username: &'a str,
    ) -> BoxFuture<'a, Result<Option<(Value, String)>, StoreError>>;
}

/// A user's new password (its hash), and the token that outlives the change: the caller's own, when the caller is
/// the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewPassword<'a> {
    pub hash: &'a str,
    pub keep_token: Option<&'a str>,
}

/// An object of the same backend, named by its type and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub object_type: String,
    pub id: ObjectId,
}

/// What a schema asks of the store beyond keeping it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaRules {
    /// Properties (letters, digits and `_`) that get an index.
    pub indexed: Vec<String>,
    /// Ref properties whose target's deletion deletes the referring object
    /// (`target.onDelete.dependency = "deleteObject"`).
    pub cascades: Vec<Cascade>,
    /// The indexed properties of type string, which full-text search reads (at most [`MAX_SEARCHED_PER_TYPE`]).
    pub searched: Vec<String>,
}

/// Objects of the schema's type whose `property` refs an object of `target_type` go when it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cascade {
    pub property: String,
    pub target_type: String,
}

/// Object type schemas (`/v1/object_types`), kept as the JSON the API validated.
pub trait Schemas: Send + Sync {
    /// Creates or replaces the schema of `object_type`, with its `rules` replacing the previous ones.
    fn put_schema<'a>(
        &'a self,
        backend: &'a str,
        object_type: &'a str,
        schema: Value,
        rules: &'a SchemaRules,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// A type's schema, shared: every list and write reads it, and a copy of a large schema each time would cost.
    fn schema<'a>(
        &'a self,
        backend: &'a str,
        object_type: &'a str,
    ) -> BoxFuture<'a, Result<Option<std::sync::Arc<Value>>, StoreError>>;
    fn schemas<'a>(&'a self, backend: &'a str) -> BoxFuture<'a, Result<Vec<Value>, StoreError>>;
    /// Deletes the schema and the type's objects; false when there was no schema.
    fn delete_schema<'a>(&'a self, backend: &'a str, object_type: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;
}

/// Which users belong to which usergroups of a backend.
pub trait Groups: Send + Sync {
    /// Adds a member; false when it already was one.
    fn add_member<'a>(
        &'a self,
        backend: &'a str,
        group: ObjectId,
        user: ObjectId,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Removes a member; false when it was none.
    fn remove_member<'a>(
        &'a self,
        backend: &'a str,
        group: ObjectId,
        user: ObjectId,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// The member users' documents that `access` may read, in the order they joined.
    fn members<'a>(
        &'a self,
        backend: &'a str,
        group: ObjectId,
        page: Page,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<Vec<Value>, StoreError>>;
    /// How many members `access` may read.
    fn count_members<'a>(
        &'a self,
        backend: &'a str,
        group: ObjectId,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<u64, StoreError>>;
    /// Ids of the groups a user belongs to.
    fn groups_of<'a>(&'a self, backend: &'a str, user: &'a str) -> BoxFuture<'a, Result<Vec<String>, StoreError>>;
    /// Who may manage the group's members: `read` lists them, `update` adds (the wire's `create`), `delete`
    /// removes. `None` while the group has none of its own.
    fn member_acl<'a>(&'a self, backend: &'a str, group: ObjectId) -> BoxFuture<'a, Result<Option<Acl>, StoreError>>;
    /// Changes the group's member ACL, starting from `default` if it has none; answers the new one.
    fn change_member_acl<'a>(
        &'a self,
        backend: &'a str,
        group: ObjectId,
        change: AclChange,
        default: Acl,
    ) -> BoxFuture<'a, Result<Acl, StoreError>>;
}

/// The committed changes of objects, in order.
pub trait Changes: Send + Sync {
    /// Up to `limit` changes with `seq` above `after`.
    fn changes_after<'a>(&'a self, after: i64, limit: u32) -> BoxFuture<'a, Result<Vec<Change>, StoreError>>;
    /// The `seq` of the latest change, 0 before the first.
    fn latest_change(&self) -> BoxFuture<'_, Result<i64, StoreError>>;
    /// The `seq` of the latest committed change, announced after each commit (and at times with no new change):
    /// wait on it, then ask for what came after.
    fn watch_changes(&self) -> tokio::sync::watch::Receiver<u64>;
    /// Forgets changes recorded before `before_ms` (Unix milliseconds); answers how many.
    fn prune_changes(&self, before_ms: i64) -> BoxFuture<'_, Result<u64, StoreError>>;
    /// Whether this node hears of changes as they commit: false while a shared database is out of reach (the
    /// node then reports not ready). An embedded store always does.
    fn following(&self) -> bool {
        true
    }
    /// Users whose standing (tokens, group memberships) changed on any node, as those changes commit, for the
    /// node's sessions to look at them again. `None` for an embedded store: its one node made every change and
    /// told its sessions itself.
    fn standing_changes(&self) -> Option<tokio::sync::broadcast::Receiver<StandingChange>> {
        None
    }
}

/// A change of a user's standing, made by any node of a cluster ([`Changes::standing_changes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StandingChange {
    /// A token of the user was revoked, or it joined or left a group.
    User { backend: String, user: String },
    /// Changes may have been missed (the node stopped hearing of them for a while): anyone's may have changed.
    Anyone,
}

/// A window of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: u32,
    pub offset: u32,
}

/// An application of the account, with one backend per environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    pub id: String,
    pub name: String,
    pub backends: Vec<Backend>,
}

/// One environment of an app: the unit every data request names with `Enginio-Backend-Id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub id: String,
    pub app_id: String,
    /// `development` or `production`.
    pub environment: String,
    pub master_key: String,
    pub api_key: String,
    /// The instance secret: a bearer with full access to this backend's data.
    pub secret: String,
    pub access: AccessDefaults,
}

/// What a backend allows before a schema or an ACL says more (SECURITY.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessDefaults {
    /// The hosted service's fresh backend, which QtEnginio's own tests rely on: everyone reads, changes and
    /// deletes objects, users and usergroups, and manages any group's members.
    Open,
    /// Anonymous callers only sign up and sign in; what a user creates (itself included) is its own; a group's
    /// members are managed by the group's administrators.
    Locked,
}

impl AccessDefaults {
    pub fn as_str(self) -> &'static str {
        match self {
            AccessDefaults::Open => "open",
            AccessDefaults::Locked => "locked",
        }
    }

    pub fn parse(text: &str) -> Option<AccessDefaults> {
        match text {
            "open" => Some(AccessDefaults::Open),
            "locked" => Some(AccessDefaults::Locked),
            _ => None,
        }
    }

    /// A new app's backend: development is open (for trying things out), production locked.
    pub fn for_environment(environment: &str) -> AccessDefaults {
        if environment == "development" { AccessDefaults::Open } else { AccessDefaults::Locked }
    }
}

/// Who an issued token stands for, until when. A user's tokens have the subjects `user:<backend>:<id>` (access)
/// and `refresh:<backend>:<id>`: the store revokes them when the user is deleted (in the deleting transaction,
/// cascades included) or changes its password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    pub subject: String,
    pub expires_ms: i64,
}

/// Apps, their backends, and issued tokens (kept only as hashes by the caller).
pub trait Tenants: Send + Sync {
    /// Creates an app with a `development` and a `production` backend, with the access defaults `access` gives
    /// each environment.
    fn create_app<'a>(
        &'a self,
        name: &'a str,
        access: &'a (dyn Fn(&str) -> AccessDefaults + Sync),
    ) -> BoxFuture<'a, Result<App, StoreError>>;
    /// Changes a backend's access defaults; `false` for an unknown backend.
    fn set_access_defaults<'a>(
        &'a self,
        backend: &'a str,
        access: AccessDefaults,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    fn apps(&self) -> BoxFuture<'_, Result<Vec<App>, StoreError>>;
    fn app<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<App>, StoreError>>;
    /// Deletes the app, its backends and all their data.
    fn delete_app<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;
    fn backend<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Backend>, StoreError>>;
    fn save_token<'a>(&'a self, hash: &'a str, grant: TokenGrant) -> BoxFuture<'a, Result<(), StoreError>>;
    /// The grant of an unexpired token.
    fn token<'a>(&'a self, hash: &'a str) -> BoxFuture<'a, Result<Option<TokenGrant>, StoreError>>;
    /// Removes the token; `true` when this call removed it, so that of concurrent uses of a single-use token
    /// (a refresh token) exactly one wins.
    fn revoke_token<'a>(&'a self, hash: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;
}

/// Everything a store engine provides. The server holds its engine as one `Arc<dyn Database>` and hands each
/// service the part it uses.
pub trait Database:
    Store + Tenants + Users + Groups + Schemas + Webhooks + Changes + Files + Search + SavedGateways + Send + Sync
{
}

impl<T> Database for T where
    T: Store
        + Tenants
        + Users
        + Groups
        + Schemas
        + Webhooks
        + Changes
        + Files
        + Search
        + SavedGateways
        + Send
        + Sync
        + ?Sized
{
}

pub use futures_util::future::BoxFuture;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The caller may see the object but lacks the permission the operation needs.
    #[error("access denied")]
    Forbidden,
    /// The change cannot apply to this document (an atomic operator on the wrong type).
    #[error("{message}")]
    Invalid { message: String, property: Option<String> },
    /// A unique property (a user's `username`) already has this value.
    #[error("{property} has already been taken")]
    Taken { property: &'static str },
    /// The database failed; the operation changed nothing.
    #[error("storage failure: {0}")]
    Database(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> StoreError {
        StoreError::Database(err.to_string())
    }
}

/// One collection of one backend: `("5376019e698b3c6ad500095a", "objects.todos")`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Collection<'a> {
    pub backend: &'a str,
    /// The object type as the API names it: `objects.<name>`, `users`, `usergroups`.
    pub object_type: &'a str,
}

/// Who asks the store.
#[derive(Debug, Clone, Copy)]
pub enum Access<'a> {
    /// The instance secret: every object, every permission.
    Everything,
    /// The caller's subjects, `*` included.
    Subjects(&'a [Subject]),
}

impl Access<'_> {
    /// Whether this caller has `permission` on an object with `acl`.
    pub fn permits(self, acl: &Acl, permission: Permission) -> bool {
        match self {
            Access::Everything => true,
            Access::Subjects(mine) => acl.allows(permission, mine),
        }
    }
}

/// A change to an object's ACL (the `/access` endpoints).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AclChange {
    Add(Acl),
    Remove(Acl),
    Replace(Acl),
}

impl AclChange {
    /// Applies the change to `acl`; lists keep their order and hold each subject once.
    pub fn apply(&self, acl: &mut Acl) {
        for permission in Permission::ALL {
            let list = acl.subjects_mut(permission);
            match self {
                AclChange::Add(more) => {
                    for subject in more.subjects(permission) {
                        if !list.contains(subject) {
                            list.push(subject.clone());
                        }
                    }
                }
                AclChange::Remove(less) => list.retain(|s| !less.subjects(permission).contains(s)),
                AclChange::Replace(new) => *list = new.subjects(permission).to_vec(),
            }
        }
    }
}

/// How an update changes a document.
#[derive(Debug, Clone, PartialEq)]
pub enum Patch {
    /// Top-level properties replace the document's.
    Merge(Map<String, Value>),
    /// MongoDB-style operators, all applied or none.
    Atomic(Vec<AtomicOp>),
}

/// Who made a change, and in answer to which request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Author<'a> {
    /// The user, or nobody for anonymous and server-side calls.
    pub user: Option<&'a str>,
    /// The `X-Request-Id` of the request that made it, reported by notifications and webhooks.
    pub request_id: Option<&'a str>,
}

impl<'a> Author<'a> {
    pub fn user(id: &'a str) -> Author<'a> {
        Author { user: Some(id), request_id: None }
    }
}

pub trait Store: Send + Sync {
    /// Stores a new object made of `properties` (reserved properties in it are ignored).
    /// `acl` is the type's template; its `creator` is resolved to `author`.
    fn insert<'a>(
        &'a self,
        at: Collection<'a>,
        properties: Map<String, Value>,
        author: Author<'a>,
        acl: Acl,
    ) -> BoxFuture<'a, Result<Value, StoreError>> {
        self.insert_inheriting(at, properties, author, acl, None)
    }

    /// [`Store::insert`], and the new object's permissions also include, for as long as it lives, those of
    /// `parent` as they are at each check (a ref property with `onCreate: {"accessControlList": "extend"}`).
    fn insert_inheriting<'a>(
        &'a self,
        at: Collection<'a>,
        properties: Map<String, Value>,
        author: Author<'a>,
        acl: Acl,
        parent: Option<ObjectRef>,
    ) -> BoxFuture<'a, Result<Value, StoreError>>;

    /// The object, `None` when it does not exist or the caller may not read it.
    fn get<'a>(
        &'a self,
        at: Collection<'a>,
        id: ObjectId,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<Option<Value>, StoreError>>;

    /// The objects named by `refs` (in `backend`) that exist and that the caller may read, as [`Store::get`]
    /// answers them, once each and in no particular order: one read for the many refs of a page.
    fn get_many<'a>(
        &'a self,
        backend: &'a str,
        refs: &'a [ObjectRef],
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<Vec<Value>, StoreError>>;

    /// Applies `patch` to the object (reserved properties are never changed) and
    /// refreshes `updatedAt`, which only ever grows; `None` when there is no such object for the
    /// caller, `Forbidden` when it may read but not update it.
    fn update<'a>(
        &'a self,
        at: Collection<'a>,
        id: ObjectId,
        patch: Patch,
        author: Author<'a>,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<Option<Value>, StoreError>>;

    /// The deleted object; `None` and `Forbidden` as for `update`.
    fn delete<'a>(
        &'a self,
        at: Collection<'a>,
        id: ObjectId,
        author: Author<'a>,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<Option<Value>, StoreError>>;

    /// The object's ACL, for a caller that may read the object.
    fn acl<'a>(
        &'a self,
        at: Collection<'a>,
        id: ObjectId,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<Option<Acl>, StoreError>>;

    /// Changes the ACL (admin permission needed) and answers the result.
    fn change_acl<'a>(
        &'a self,
        at: Collection<'a>,
        id: ObjectId,
        change: AclChange,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<Option<Acl>, StoreError>>;

    /// The objects matching `query.filter` that the caller may read, in `query.sort` order then by
    /// creation, one page of them. Filter and permissions run in the database, never in memory.
    fn list<'a>(
        &'a self,
        at: Collection<'a>,
        query: ListQuery<'a>,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<Vec<Value>, StoreError>>;

    /// [`Store::list`] as the text of a JSON array, for answers that pass the documents on unchanged: a store
    /// that holds JSON text can skip parsing and re-serializing every document.
    fn list_json<'a>(
        &'a self,
        at: Collection<'a>,
        query: ListQuery<'a>,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<String, StoreError>> {
        Box::pin(async move { Ok(Value::Array(self.list(at, query, access).await?).to_string()) })
    }

    fn count<'a>(
        &'a self,
        at: Collection<'a>,
        filter: &'a Filter,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<u64, StoreError>>;

    /// How the store would run [`Store::list`] (or [`Store::count`]), for a caller checking that its query uses
    /// an index.
    fn explain<'a>(
        &'a self,
        at: Collection<'a>,
        query: ListQuery<'a>,
        count: bool,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<QueryPlan, StoreError>>;
}

/// The plan of a list or a count, as the database describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryPlan {
    /// One line per step, indented under its parent (SQLite's `EXPLAIN QUERY PLAN`).
    pub steps: Vec<String>,
    /// The filtered properties with an index, and whether each holds arrays anywhere (conditions on those also
    /// look into the arrays, outside the index).
    pub indexed: Vec<(String, bool)>,
}

/// A list request, parsed and validated.
#[derive(Debug, Clone, Copy)]
pub struct ListQuery<'a> {
    pub filter: &'a Filter,
    pub sort: &'a Sort,
    pub page: Page,
}
