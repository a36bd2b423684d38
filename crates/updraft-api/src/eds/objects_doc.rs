//! The API reference's side of the data operations (`objects.rs`): the shapes of objects, lists and queries, and
//! one entry per collection: the handlers are written once for `/v1/objects/{object_type}` and served for users
//! and usergroups too, so `Kind::document` copies their entries under those bases.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use utoipa::openapi::RefOr;
use utoipa::openapi::path::{Operation, Parameter, PathItem};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::UtoipaMethodRouter;

use super::collection::Kind;
use crate::ApiState;
use crate::openapi::tag;

/// `{"id", "objectType"}`: a reference to an object, a user (`users`), a group (`usergroups`) or a file (`files`).
#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "the schema of refs the store writes")]
pub(super) struct Ref {
    id: String,
    /// `users`, `usergroups`, `files` or `objects.<type>`.
    #[serde(rename = "objectType")]
    object_type: String,
}

/// An EDS object (a user and a usergroup are objects too): the reserved members below, and the properties it was
/// given. Dates are ISO 8601 text; a user's `password` is never answered.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "the schema of the documents the store writes")]
#[serde(rename_all = "camelCase")]
pub(super) struct EdsObject {
    /// 24 lowercase hex characters.
    id: String,
    /// `objects.<type>`, `users` or `usergroups`.
    object_type: String,
    created_at: String,
    updated_at: String,
    /// Who created it (absent when the instance secret did).
    creator: Option<Ref>,
    /// Who changed it last.
    updater: Option<Ref>,
    /// The object's own properties: any JSON; refs as `{"id", "objectType"}`.
    #[serde(flatten)]
    properties: BTreeMap<String, Value>,
}

/// The properties of a new object, or the members a merge changes (`null` removes one). A user needs `username`
/// and `password`, a usergroup `name`. `accessControlList` is taken on create only, as the new object's ACL.
/// Typed values (`{"$type": "date", "$value": …}`, refs) are stored plain.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "read by hand in `object_body`, for its errors; this is its schema")]
#[serde(rename_all = "camelCase")]
pub(super) struct ObjectBody {
    #[serde(flatten)]
    properties: BTreeMap<String, Value>,
}

/// MongoDB-style operators, applied all or none: `$inc`, `$set`, `$unset`, `$push`, `$pull`, `$addToSet`,
/// `$pop`, each an object of property → operand.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "read by hand in `atomic_ops`, for its errors; this is its schema")]
pub(super) struct AtomicOps {
    #[serde(flatten)]
    operators: BTreeMap<String, BTreeMap<String, Value>>,
}

/// A page of a collection, and the query it answers (QtEnginio reads it back).
#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "the schema of the list answer, written by `list.rs`")]
pub(super) struct ObjectList {
    results: Vec<EdsObject>,
    query: QueryEcho,
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "the schema of the list answer's echo")]
pub(super) struct QueryEcho {
    /// The `q` sent, as sent.
    query: Value,
    limit: u32,
    offset: u32,
    sort: Value,
}

/// A page, or with `count` the number of matches.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code, reason = "the schema of the list answer")]
pub(super) enum ListAnswer {
    Page(ObjectList),
    Count(Count),
}

/// With `count`: the number of objects that match and the caller may read.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "the schema of the count answer")]
pub(super) struct Count {
    count: u64,
}

/// The parameters of a list (`docs/queries.md`).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, reason = "read by hand in `list.rs`, for its errors; these are its parameters")]
pub(super) struct ListParams {
    /// A JSON filter: `{"done": false}`, `{"n": {"$gte": 3}}`, operators `$eq $ne $gt $gte $lt $lte $in $nin
    /// $exists $regex $and $or $not`, refs by `{"id", "objectType"}`.
    q: Option<String>,
    /// A JSON array of `{"sortBy": property, "direction": "asc" | "desc"}`.
    sort: Option<String>,
    /// At most this many, 100 if not given, 1000 at most.
    limit: Option<u32>,
    offset: Option<u32>,
    /// Present (any value, even empty): answer `{"count"}` instead of a page.
    count: Option<String>,
    /// A JSON object of ref properties to expand into the objects they name: `{"creator": {}, "file": {}}`.
    include: Option<String>,
    /// With the instance secret: answer the query plan instead of the page (which index it walks).
    explain: Option<String>,
}

/// `include` on one object.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, reason = "read by hand in `include.rs`")]
pub(super) struct ShowParams {
    /// A JSON object of ref properties to expand: `{"creator": {}}`.
    include: Option<String>,
}

/// `{}`: some clients treat anything but 200 with a body on DELETE as an error.
#[derive(Deserialize, ToSchema)]
pub(super) struct Empty {}

impl Kind {
    /// The documented routes of `objects.rs` for this kind: the objects' entries as they are, or copied under the
    /// kind's base with its tag and without the `object_type` parameter.
    pub(super) fn document(self, routes: UtoipaMethodRouter<ApiState>) -> UtoipaMethodRouter<ApiState> {
        let (schemas, mut paths, method_router) = routes;
        if self == Kind::Objects {
            return (schemas, paths, method_router);
        }
        let objects = Kind::Objects.base();
        let moved = std::mem::take(&mut paths.paths);
        for (path, mut item) in moved {
            let path = path.replacen(objects, self.base(), 1);
            for operation in operations(&mut item) {
                self.retag(operation);
            }
            paths.paths.insert(path, item);
        }
        (schemas, paths, method_router)
    }

    fn retag(self, operation: &mut Operation) {
        let (tag, what) = match self {
            Kind::Users => (tag::USERS, "users"),
            _ => (tag::USERGROUPS, "usergroups"),
        };
        operation.tags = Some(vec![tag.to_owned()]);
        if let Some(parameters) = &mut operation.parameters {
            parameters
                .retain(|parameter| !matches!(parameter, RefOr::T(Parameter { name, .. }) if name == "object_type"));
        }
        let note = match self {
            Kind::Users => {
                "Users are objects with a unique `username` and a `password` that is hashed and never answered; \
                 signing up is `POST /v1/users`, limited per client address like a login."
            }
            _ => "Usergroups are objects with a `name`; their members are managed at `/v1/usergroups/{id}/members`.",
        };
        operation.description = Some(format!("{note}\n\n{}", operation.description.take().unwrap_or_default()));
        operation.summary = operation.summary.take().map(|summary| summary.replace("objects", what));
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [&mut item.get, &mut item.put, &mut item.post, &mut item.delete].into_iter().filter_map(Option::as_mut)
}
