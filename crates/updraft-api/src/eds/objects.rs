//! The data operations of every collection: custom objects (`/v1/objects/<type>`), users and usergroups, one
//! handler per operation. `CollectionPath` says which collection and document a request means and `Kind` what is
//! particular to it (`collection.rs`); what only users have (passwords, sign-up limits) is in `users.rs`.
//! Here too the checks on the bodies: typed values made plain, no ACL as data, `required` properties kept.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use updraft_core::ids::ObjectId;
use updraft_core::{atomic, nesting, typed};
use updraft_store::{Collection, NewPassword, Patch};

use super::DataRequest;
use super::collection::{CollectionPath, Kind};
use super::objects_doc::{AtomicOps, EdsObject, Empty, ListAnswer, ListParams, ObjectBody, ShowParams};
use crate::ApiState;
use crate::body::read_json;
use crate::error::{ApiError, Code, EdsError};
use crate::openapi::{ApiRouter, tag};
use crate::passwords::ClientAddress;

/// `<base>`, `<base>/{id}` and `<base>/{id}/atomic` of every kind of collection, to the same handlers.
pub(super) fn routes() -> ApiRouter {
    Kind::ALL.into_iter().fold(ApiRouter::new(), |router, kind| {
        router
            .routes(kind.document(utoipa_axum::routes!(list, create)))
            .routes(kind.document(utoipa_axum::routes!(show, update, remove)))
            .routes(kind.document(utoipa_axum::routes!(atomic)))
    })
}

/// `todos` → `objects.todos`; names are letters, digits and underscores.
pub(super) fn object_type(name: &str) -> Result<String, EdsError> {
    if !super::schemas::valid_property(name) {
        return Err(ApiError::with_message(Code::BadRequest, format!("Invalid object type name {name:?}")).into());
    }
    Ok(format!("objects.{name}"))
}

/// An id that is not 24 hex characters names no object.
pub(super) fn object_id(id: &str) -> Result<ObjectId, EdsError> {
    ObjectId::parse(id).ok_or_else(|| Kind::Objects.not_found().into())
}

/// Lists objects: a page of those the caller may read, filtered and sorted (`docs/queries.md`).
///
/// Filters and sorts on `indexed` properties run on indexes; a filter on other properties that would read too much
/// of a large collection is refused (400, naming the property to index).
#[utoipa::path(get, path = "/v1/objects/{object_type}", tag = tag::OBJECTS, security(("backendId" = []), ("backendId" = [], "userToken" = []), ("backendId" = [], "instanceSecret" = [])),
    params(("object_type" = String, Path, description = "The object type: letters, digits and `_`."), ListParams),
    responses((status = 200, description = "A page, or `{\"count\"}` with `count`.", body = ListAnswer)))]
async fn list(
    State(state): State<ApiState>,
    request: DataRequest,
    path: CollectionPath,
    uri: Uri,
) -> Result<Response, EdsError> {
    super::list::list(&state, &request, &path.object_type, &uri).await
}

/// Creates an object.
///
/// It gets the `accessControlList` it was sent with, or else its type's ACL template. A user is signed up: its
/// password hashed, the attempt counted against the client's address like a login (429 past the limit).
#[utoipa::path(post, path = "/v1/objects/{object_type}", tag = tag::OBJECTS, security(("backendId" = []), ("backendId" = [], "userToken" = []), ("backendId" = [], "instanceSecret" = [])),
    params(("object_type" = String, Path, description = "The object type.")),
    request_body = ObjectBody,
    responses((status = 201, body = EdsObject), (status = 429, body = crate::openapi::EdsErrors)))]
async fn create(
    State(state): State<ApiState>,
    client: ClientAddress,
    request: DataRequest,
    path: CollectionPath,
    body: Body,
) -> Result<Response, EdsError> {
    let mut properties = object_body(&state, body).await?;
    admit_text(&properties, path.kind, true)?;
    let attempt = match path.kind {
        Kind::Users => match super::users::sign_up_attempt(&state, client, &request, &properties) {
            Ok(attempt) => Some(attempt),
            Err(refused) => return Ok(refused.eds_response()),
        },
        Kind::Objects | Kind::Usergroups => None,
    };
    let initial = initial_acl(&mut properties)?;
    let (template, parent) = super::schemas::admit(&state, &request, &path.object_type, &properties).await?;
    let acl = initial.unwrap_or(template);
    let doc = match attempt {
        // A user's ACL is its own: an `extend` ref on the users schema is not followed.
        Some(attempt) => super::users::insert(&state, &request, properties, acl, attempt).await?,
        None => {
            let at = Collection { backend: &request.backend.id, object_type: &path.object_type };
            state.store.insert_inheriting(at, properties, request.author(), acl, parent).await?
        }
    };
    Ok((StatusCode::CREATED, Json(doc)).into_response())
}

/// Reads one object.
#[utoipa::path(get, path = "/v1/objects/{object_type}/{id}", tag = tag::OBJECTS, security(("backendId" = []), ("backendId" = [], "userToken" = []), ("backendId" = [], "instanceSecret" = [])),
    params(("object_type" = String, Path, description = "The object type."),
        ("id" = String, Path, description = "24 lowercase hex characters."), ShowParams),
    responses((status = 200, body = EdsObject)))]
async fn show(
    State(state): State<ApiState>,
    request: DataRequest,
    path: CollectionPath,
    uri: Uri,
) -> Result<Response, EdsError> {
    let at = Collection { backend: &request.backend.id, object_type: &path.object_type };
    let found = state.store.get(at, path.id()?, request.access()).await?;
    let mut doc = found.ok_or_else(|| path.kind.not_found())?;
    if path.kind.expands_includes() {
        super::include::expand(&state, &request, &mut doc, &super::include::requested(&uri)?).await?;
    }
    Ok(Json(doc).into_response())
}

/// Updates an object: merges the members sent and answers the whole object.
///
/// `null` removes a member. A user's password is hashed and changes with the document or not at all; an
/// `accessControlList` is refused (ACLs change through `/access`).
#[utoipa::path(put, path = "/v1/objects/{object_type}/{id}", tag = tag::OBJECTS, security(("backendId" = []), ("backendId" = [], "userToken" = []), ("backendId" = [], "instanceSecret" = [])),
    params(("object_type" = String, Path, description = "The object type."),
        ("id" = String, Path, description = "The object's id.")),
    request_body = ObjectBody, responses((status = 200, body = EdsObject)))]
async fn update(
    State(state): State<ApiState>,
    request: DataRequest,
    headers: HeaderMap,
    path: CollectionPath,
    body: Body,
) -> Result<Response, EdsError> {
    let id = path.id()?;
    let mut patch = object_body(&state, body).await?;
    admit_text(&patch, path.kind, false)?;
    admit_patch(&state, &request, &path.object_type, &patch).await?;
    let password = match path.kind {
        Kind::Users => super::users::password_change(&state, &request, &headers, id, &mut patch).await?,
        Kind::Objects | Kind::Usergroups => None,
    };
    let password = password.as_ref().map(super::users::PasswordChange::new_password);
    let doc = write(&state, &request, &path, id, Patch::Merge(patch), password).await?;
    if path.kind == Kind::Users {
        state.sessions.user_changed(&state, &request.backend.id, &id.to_string()).await;
    }
    Ok(Json(doc).into_response())
}

/// Updates an object with operators: `$inc $set $unset $push $pull $addToSet $pop`, all or none.
#[utoipa::path(put, path = "/v1/objects/{object_type}/{id}/atomic", tag = tag::OBJECTS, security(("backendId" = []), ("backendId" = [], "userToken" = []), ("backendId" = [], "instanceSecret" = [])),
    params(("object_type" = String, Path, description = "The object type."),
        ("id" = String, Path, description = "The object's id.")),
    request_body = AtomicOps, responses((status = 200, body = EdsObject)))]
async fn atomic(
    State(state): State<ApiState>,
    request: DataRequest,
    path: CollectionPath,
    body: Body,
) -> Result<Response, EdsError> {
    let id = path.id()?;
    let ops = atomic_ops(&state, &request, &path.object_type, body).await?;
    if path.kind == Kind::Users {
        super::users::admit_atomic(&ops)?;
    }
    let doc = write(&state, &request, &path, id, Patch::Atomic(ops), None).await?;
    Ok(Json(doc).into_response())
}

/// Deletes an object (and the files it owns).
///
/// Answers 200 `{}`: some clients treat anything but 200 on DELETE as an error.
#[utoipa::path(delete, path = "/v1/objects/{object_type}/{id}", tag = tag::OBJECTS, security(("backendId" = []), ("backendId" = [], "userToken" = []), ("backendId" = [], "instanceSecret" = [])),
    params(("object_type" = String, Path, description = "The object type."),
        ("id" = String, Path, description = "The object's id.")),
    responses((status = 200, body = Empty)))]
async fn remove(
    State(state): State<ApiState>,
    request: DataRequest,
    path: CollectionPath,
) -> Result<Response, EdsError> {
    let id = path.id()?;
    let at = Collection { backend: &request.backend.id, object_type: &path.object_type };
    let removed = state.store.delete(at, id, request.author(), request.access()).await;
    removed.map_err(|e| request.refused(e))?.ok_or_else(|| path.kind.not_found())?;
    // Open streams and sockets lose what went with a user or a group before the answer (the change log's follower
    // in `sessions` does the same for groups deleted by other paths).
    let (backend, id) = (&request.backend.id, id.to_string());
    match path.kind {
        Kind::Users => state.sessions.user_changed(&state, backend, &id).await,
        Kind::Usergroups => state.sessions.group_deleted(&state, backend, &id).await,
        Kind::Objects => {}
    }
    Ok(Json(json!({})).into_response())
}

/// Applies a patch the caller may make and answers the whole document. Users are written through the user store,
/// which keeps usernames unique and changes the password with the document.
async fn write(
    state: &ApiState,
    request: &DataRequest,
    path: &CollectionPath,
    id: ObjectId,
    patch: Patch,
    password: Option<NewPassword<'_>>,
) -> Result<Value, EdsError> {
    let (backend, author, access) = (&request.backend.id, request.author(), request.access());
    let written = match path.kind {
        Kind::Users => state.users.update_user(backend, id, patch, password, author, access).await,
        Kind::Objects | Kind::Usergroups => {
            let at = Collection { backend, object_type: &path.object_type };
            state.store.update(at, id, patch, author, access).await
        }
    };
    Ok(written.map_err(|e| request.refused(e))?.ok_or_else(|| path.kind.not_found())?)
}

/// The properties a create or update body carries, typed values (`{"$type", "$value"}`) made plain.
async fn object_body(state: &ApiState, body: Body) -> Result<Map<String, Value>, EdsError> {
    match read_json(body, state.limits.max_body_bytes).await? {
        Some(Value::Object(mut properties)) => {
            properties.values_mut().for_each(typed::to_plain);
            // The object is one level more than its deepest property (see `nesting`).
            if properties.values().any(|value| nesting::depth(value) >= nesting::MAX_DEPTH) {
                let message = format!("An object nests at most {} levels of objects and arrays", nesting::MAX_DEPTH);
                return Err(ApiError::with_message(Code::BadRequest, message).into());
            }
            Ok(properties)
        }
        None => Ok(Map::new()),
        Some(_) => Err(ApiError::with_message(Code::BadRequest, "The body must be a JSON object").into()),
    }
}

/// The kind's text properties (`Kind::text_properties`) are non-blank text, and on a new document present.
fn admit_text(properties: &Map<String, Value>, kind: Kind, new: bool) -> Result<(), EdsError> {
    for &property in kind.text_properties() {
        match properties.get(property) {
            None if !new => {}
            Some(Value::String(text)) if !text.trim().is_empty() => {}
            _ => return Err(ApiError::field(property, "can't be blank").into()),
        }
    }
    Ok(())
}

/// The operators of an `/atomic` body, refusing those the store must not apply: the ACL (changed through
/// `/access`) and anything that would blank a `required` property.
async fn atomic_ops(
    state: &ApiState,
    request: &DataRequest,
    object_type: &str,
    body: Body,
) -> Result<Vec<atomic::AtomicOp>, EdsError> {
    let body = read_json(body, state.limits.max_body_bytes).await?.unwrap_or(Value::Null);
    let ops = atomic::parse(&body).map_err(|err| ApiError::with_message(Code::BadRequest, err.message))?;
    if ops.iter().any(|op| op.property() == ACL_PROPERTY) {
        return Err(acl_is_not_data());
    }
    super::schemas::admit_edit(state, request, object_type, super::schemas::Edit::Atomic(&ops)).await?;
    Ok(ops)
}

/// The property name an object's ACL travels under on create; never stored as data.
const ACL_PROPERTY: &str = "accessControlList";

/// An update carrying `accessControlList` is refused rather than stored as data: a client could believe the
/// object private when it is not. ACLs change through `/access`.
fn acl_is_not_data() -> EdsError {
    EdsError(ApiError::field(ACL_PROPERTY, "changes through the object's /access endpoint, not an update"))
}

/// The `accessControlList` sent with a new object (or user): its initial ACL in place of the type's template, never
/// a property, since storing it as data would let a client believe the object private when it is not.
fn initial_acl(properties: &mut Map<String, Value>) -> Result<Option<updraft_store::Acl>, EdsError> {
    match properties.remove(ACL_PROPERTY) {
        Some(acl) => Ok(Some(super::access::acl_from(Some(acl), &super::access::PERMISSIONS, true)?)),
        None => Ok(None),
    }
}

/// Checks a merge patch before it is applied: no ACL in it, no required property blanked.
async fn admit_patch(
    state: &ApiState,
    request: &DataRequest,
    object_type: &str,
    patch: &Map<String, Value>,
) -> Result<(), EdsError> {
    if patch.contains_key(ACL_PROPERTY) {
        return Err(acl_is_not_data());
    }
    super::schemas::admit_edit(state, request, object_type, super::schemas::Edit::Merge(patch)).await
}
