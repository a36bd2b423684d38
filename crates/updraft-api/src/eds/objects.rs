//! Objects of custom collections: `/v1/objects/<type>[/<id>]`, type `objects.<type>`.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};
use updraft_core::ids::ObjectId;
use updraft_core::{atomic, nesting, typed};
use updraft_store::{Collection, Patch};

use super::DataRequest;
use crate::ApiState;
use crate::body::read_json;
use crate::error::{ApiError, Code, EdsError};

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/objects/{object_type}", get(list).post(create))
        .route("/v1/objects/{object_type}/{id}", get(show).put(update).delete(remove))
        .route("/v1/objects/{object_type}/{id}/atomic", axum::routing::put(atomic))
}

/// `todos` → `objects.todos`; names are letters, digits and underscores.
pub(super) fn object_type(name: &str) -> Result<String, EdsError> {
    let valid = !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid {
        return Err(ApiError::with_message(Code::BadRequest, format!("Invalid object type name {name:?}")).into());
    }
    Ok(format!("objects.{name}"))
}

/// An id that is not 24 hex characters names no object.
pub(super) fn object_id(id: &str) -> Result<ObjectId, EdsError> {
    ObjectId::parse(id).ok_or_else(|| not_found().into())
}

fn not_found() -> ApiError {
    ApiError::with_message(Code::NotFound, "Object not found")
}

/// The properties a create or update body carries, typed values (`{"$type", "$value"}`) made plain.
pub(super) async fn object_body(state: &ApiState, body: Body) -> Result<Map<String, Value>, EdsError> {
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

async fn list(
    State(state): State<ApiState>,
    request: DataRequest,
    Path(name): Path<String>,
    uri: Uri,
) -> Result<Response, EdsError> {
    super::list::list(&state, &request, &object_type(&name)?, &uri).await
}

async fn create(
    State(state): State<ApiState>,
    request: DataRequest,
    Path(name): Path<String>,
    body: Body,
) -> Result<Response, EdsError> {
    let properties = object_body(&state, body).await?;
    create_in(&state, &request, &object_type(&name)?, properties).await
}

async fn show(
    State(state): State<ApiState>,
    request: DataRequest,
    Path((name, id)): Path<(String, String)>,
    uri: Uri,
) -> Result<Response, EdsError> {
    show_in(&state, &request, &object_type(&name)?, &id, &uri).await
}

async fn update(
    State(state): State<ApiState>,
    request: DataRequest,
    Path((name, id)): Path<(String, String)>,
    body: Body,
) -> Result<Response, EdsError> {
    let object_type = object_type(&name)?;
    let patch = object_body(&state, body).await?;
    update_in(&state, &request, &object_type, &id, patch).await
}

/// MongoDB-style operators (`$inc $set $unset $push $pull $addToSet $pop`), all or none.
async fn atomic(
    State(state): State<ApiState>,
    request: DataRequest,
    Path((name, id)): Path<(String, String)>,
    body: Body,
) -> Result<Response, EdsError> {
    atomic_in(&state, &request, &object_type(&name)?, &id, body).await
}

/// The operators of an `/atomic` body, refusing those the store must not apply: the ACL (changed through
/// `/access`) and anything that would blank a `required` property.
pub(super) async fn atomic_ops(
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

pub(super) async fn atomic_in(
    state: &ApiState,
    request: &DataRequest,
    object_type: &str,
    id: &str,
    body: Body,
) -> Result<Response, EdsError> {
    let id = object_id(id)?;
    let ops = atomic_ops(state, request, object_type, body).await?;
    let at = Collection { backend: &request.backend.id, object_type };
    let doc = state
        .store
        .update(at, id, Patch::Atomic(ops), request.author(), request.access())
        .await
        .map_err(|e| request.refused(e))?;
    Ok(Json(doc.ok_or_else(not_found)?).into_response())
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
pub(super) fn initial_acl(properties: &mut Map<String, Value>) -> Result<Option<updraft_store::Acl>, EdsError> {
    match properties.remove(ACL_PROPERTY) {
        Some(acl) => Ok(Some(super::access::acl_from(Some(acl), &super::access::PERMISSIONS, true)?)),
        None => Ok(None),
    }
}

/// Checks a merge patch before it is applied: no ACL in it, no required property blanked.
pub(super) async fn admit_patch(
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

async fn remove(
    State(state): State<ApiState>,
    request: DataRequest,
    Path((name, id)): Path<(String, String)>,
) -> Result<Response, EdsError> {
    remove_in(&state, &request, &object_type(&name)?, &id).await
}

// The operations themselves, shared by every collection with plain object semantics.

pub(super) async fn create_in(
    state: &ApiState,
    request: &DataRequest,
    object_type: &str,
    mut properties: Map<String, Value>,
) -> Result<Response, EdsError> {
    let initial = initial_acl(&mut properties)?;
    let (template, parent) = super::schemas::admit(state, request, object_type, &properties).await?;
    let acl = initial.unwrap_or(template);
    let at = Collection { backend: &request.backend.id, object_type };
    let doc = state.store.insert_inheriting(at, properties, request.author(), acl, parent).await?;
    Ok((StatusCode::CREATED, Json(doc)).into_response())
}

pub(super) async fn show_in(
    state: &ApiState,
    request: &DataRequest,
    object_type: &str,
    id: &str,
    uri: &Uri,
) -> Result<Response, EdsError> {
    let at = Collection { backend: &request.backend.id, object_type };
    let mut doc = state.store.get(at, object_id(id)?, request.access()).await?.ok_or_else(not_found)?;
    super::include::expand(state, request, &mut doc, &super::include::requested(uri)?).await?;
    Ok(Json(doc).into_response())
}

/// Merges the patch into the object and answers the whole merged object.
pub(super) async fn update_in(
    state: &ApiState,
    request: &DataRequest,
    object_type: &str,
    id: &str,
    patch: Map<String, Value>,
) -> Result<Response, EdsError> {
    let id = object_id(id)?;
    admit_patch(state, request, object_type, &patch).await?;
    let at = Collection { backend: &request.backend.id, object_type };
    let doc = state
        .store
        .update(at, id, Patch::Merge(patch), request.author(), request.access())
        .await
        .map_err(|e| request.refused(e))?;
    Ok(Json(doc.ok_or_else(not_found)?).into_response())
}

/// Answers 200 `{}`: some clients treat anything but 200 on DELETE as an error.
pub(super) async fn remove_in(
    state: &ApiState,
    request: &DataRequest,
    object_type: &str,
    id: &str,
) -> Result<Response, EdsError> {
    let at = Collection { backend: &request.backend.id, object_type };
    state
        .store
        .delete(at, object_id(id)?, request.author(), request.access())
        .await
        .map_err(|e| request.refused(e))?
        .ok_or_else(not_found)?;
    Ok(Json(json!({})).into_response())
}
