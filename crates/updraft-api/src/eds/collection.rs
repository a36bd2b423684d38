//! Which collection a data path names, and how the three kinds of collection differ.
//!
//! `/v1/objects/<type>`, `/v1/users` and `/v1/usergroups` (each with `/<id>` and `/<id>/atomic`) are served by
//! the same handlers (`objects.rs`); `CollectionPath` turns the path into the collection and the document it
//! names, and `Kind` holds what is particular to users and usergroups, so that the handlers say it once.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use updraft_core::ids::ObjectId;
use updraft_store::{USERGROUPS, USERS};

use super::objects::object_type;
use crate::ApiState;
use crate::error::{ApiError, Code, EdsError};

/// The kinds of collection a data path can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A custom collection, `objects.<type>`.
    Objects,
    /// Users: a username and a password, which is hashed and never stored as data.
    Users,
    /// Usergroups: a name; their members are served apart (`usergroups.rs`).
    Usergroups,
}

impl Kind {
    pub(super) const ALL: [Kind; 3] = [Kind::Objects, Kind::Users, Kind::Usergroups];

    /// The route of the collection; its documents are `<base>/{id}`.
    pub(super) fn base(self) -> &'static str {
        match self {
            Kind::Objects => "/v1/objects/{object_type}",
            Kind::Users => "/v1/users",
            Kind::Usergroups => "/v1/usergroups",
        }
    }

    /// The kind a request path under one of the bases belongs to.
    fn of_path(path: &str) -> Option<Kind> {
        match path.strip_prefix("/v1/")?.split('/').next()? {
            "objects" => Some(Kind::Objects),
            "users" => Some(Kind::Users),
            "usergroups" => Some(Kind::Usergroups),
            _ => None,
        }
    }

    /// Properties a new document must carry as non-blank text, and which an update may leave out but not blank.
    /// QtEnginio compares these error objects whole.
    pub(super) fn text_properties(self) -> &'static [&'static str] {
        match self {
            Kind::Objects => &[],
            Kind::Users => &["username", "password"],
            Kind::Usergroups => &["name"],
        }
    }

    /// Whether `include` expands references in a shown document (users are shown as they are).
    pub(super) fn expands_includes(self) -> bool {
        self != Kind::Users
    }

    /// The answer for a document that does not exist or that the caller may not see.
    pub(super) fn not_found(self) -> ApiError {
        let message = if self == Kind::Users { "User not found" } else { "Object not found" };
        ApiError::with_message(Code::NotFound, message)
    }
}

/// A path of one of the collections, resolved: its kind, its object type and the document it names, if any.
pub(super) struct CollectionPath {
    pub(super) kind: Kind,
    /// `objects.<type>`, `users` or `usergroups`.
    pub(super) object_type: String,
    id: Option<ObjectId>,
}

impl CollectionPath {
    /// The document the path names; a path without one names none.
    pub(super) fn id(&self) -> Result<ObjectId, EdsError> {
        self.id.ok_or_else(|| self.kind.not_found().into())
    }
}

/// The captures of the routes of `Kind::base`.
#[derive(Deserialize)]
struct Captures {
    object_type: Option<String>,
    id: Option<String>,
}

/// An invalid type name is a 400, an id that is not 24 lowercase hex characters names no document (404); an
/// undecodable capture gets axum's own answer, as it always has.
impl FromRequestParts<ApiState> for CollectionPath {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<CollectionPath, Response> {
        let Path(captures) = Path::<Captures>::from_request_parts(parts, state).await.map_err(|e| e.into_response())?;
        let kind = Kind::of_path(parts.uri.path()).ok_or_else(no_such_endpoint)?;
        let object_type = match (kind, &captures.object_type) {
            (Kind::Objects, Some(name)) => object_type(name).map_err(|e| e.into_response())?,
            (Kind::Objects, None) => return Err(no_such_endpoint()),
            (Kind::Users, _) => USERS.to_owned(),
            (Kind::Usergroups, _) => USERGROUPS.to_owned(),
        };
        let id = match &captures.id {
            Some(id) => Some(ObjectId::parse(id).ok_or_else(|| EdsError(kind.not_found()).into_response())?),
            None => None,
        };
        Ok(CollectionPath { kind, object_type, id })
    }
}

/// Only a route outside `Kind::base` could get here.
fn no_such_endpoint() -> Response {
    EdsError(ApiError::with_message(Code::NotFound, "No such endpoint")).into_response()
}

#[cfg(test)]
mod tests {
    use super::Kind;

    #[test]
    fn every_base_names_its_own_kind() {
        for kind in Kind::ALL {
            assert_eq!(Kind::of_path(&kind.base().replace("{object_type}", "todos")), Some(kind));
            assert_eq!(Kind::of_path(&format!("{}/0123/atomic", kind.base())), Some(kind));
        }
        assert_eq!(Kind::of_path("/v1/user"), None);
        assert_eq!(Kind::of_path("/v2/users"), None);
    }
}
