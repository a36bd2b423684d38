//! `/access` of objects, users and usergroups: read an object's ACL, add to it (PUT), replace it
//! (POST), remove from it (DELETE with a body). Answers always carry all four lists.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use updraft_store::{Acl, AclChange, Collection, Permission, Subject, USERGROUPS, USERS};

use super::DataRequest;
use super::objects::object_id;
use crate::ApiState;
use crate::body::read_json;
use crate::error::{ApiError, Code, EdsError};
use crate::openapi::{ApiRouter, tag};

pub(super) fn routes() -> ApiRouter {
    ApiRouter::new()
        .routes(utoipa_axum::routes!(object_access))
        .routes(utoipa_axum::routes!(user_access))
        .routes(utoipa_axum::routes!(group_access))
}

/// An ACL: for each permission, the subjects that hold it. A subject is a user (`{"id", "objectType": "users"}`),
/// a group (`usergroups`), everyone (`{"id": "*", "objectType": "aclSubject"}`) or, in templates, the creator
/// (`{"id": "creator", "objectType": "aclSubject"}`). A list left out of a body is empty.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code, reason = "written and read by hand (`acl_json`, `acl_from`); this is its schema")]
pub(super) struct AclWire {
    read: Option<Vec<super::objects_doc::Ref>>,
    update: Option<Vec<super::objects_doc::Ref>>,
    delete: Option<Vec<super::objects_doc::Ref>>,
    admin: Option<Vec<super::objects_doc::Ref>>,
}

pub(super) const PERMISSIONS: [(&str, Permission); 4] = [
    ("read", Permission::Read),
    ("update", Permission::Update),
    ("delete", Permission::Delete),
    ("admin", Permission::Admin),
];

/// An object's access control list.
///
/// `GET` reads it; `PUT` adds the subjects sent, `POST` replaces the lists sent, `DELETE` removes the subjects
/// sent (a body on DELETE). Reading and changing need the `admin` permission on the object; the answer is always
/// the whole ACL.
#[utoipa::path(method(get, put, post, delete), path = "/v1/objects/{object_type}/{id}/access", tag = tag::ACCESS,
    security(("backendId" = []), ("backendId" = [], "userToken" = []), ("backendId" = [], "instanceSecret" = [])), request_body(content = AclWire, description = "With PUT, POST and DELETE."),
    responses((status = 200, body = AclWire)))]
async fn object_access(
    State(state): State<ApiState>,
    request: DataRequest,
    method: Method,
    Path((name, id)): Path<(String, String)>,
    body: Body,
) -> Result<Response, EdsError> {
    let object_type = super::objects::object_type(&name)?;
    access(&state, &request, &object_type, &id, method, body).await
}

/// A user's access control list.
///
/// `GET` reads it; `PUT` adds the subjects sent, `POST` replaces the lists sent, `DELETE` removes the subjects
/// sent (a body on DELETE). Reading and changing need the `admin` permission on the object; the answer is always
/// the whole ACL.
#[utoipa::path(method(get, put, post, delete), path = "/v1/users/{id}/access", tag = tag::ACCESS, security(("backendId" = []), ("backendId" = [], "userToken" = []), ("backendId" = [], "instanceSecret" = [])),
    request_body(content = AclWire, description = "With PUT, POST and DELETE."),
    responses((status = 200, body = AclWire)))]
async fn user_access(
    State(state): State<ApiState>,
    request: DataRequest,
    method: Method,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, EdsError> {
    access(&state, &request, USERS, &id, method, body).await
}

/// A usergroup's access control list.
///
/// `GET` reads it; `PUT` adds the subjects sent, `POST` replaces the lists sent, `DELETE` removes the subjects
/// sent (a body on DELETE). Reading and changing need the `admin` permission on the object; the answer is always
/// the whole ACL.
#[utoipa::path(method(get, put, post, delete), path = "/v1/usergroups/{id}/access", tag = tag::ACCESS, security(("backendId" = []), ("backendId" = [], "userToken" = []), ("backendId" = [], "instanceSecret" = [])),
    request_body(content = AclWire, description = "With PUT, POST and DELETE."),
    responses((status = 200, body = AclWire)))]
async fn group_access(
    State(state): State<ApiState>,
    request: DataRequest,
    method: Method,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, EdsError> {
    access(&state, &request, USERGROUPS, &id, method, body).await
}

async fn access(
    state: &ApiState,
    request: &DataRequest,
    object_type: &str,
    id: &str,
    method: Method,
    body: Body,
) -> Result<Response, EdsError> {
    let at = Collection { backend: &request.backend.id, object_type };
    let id = object_id(id)?;
    let not_found = || EdsError(ApiError::with_message(Code::NotFound, "Object not found"));
    let acl = if method == Method::GET {
        state.store.acl(at, id, request.access()).await?
    } else {
        let given = acl_from(read_json(body, state.limits.max_body_bytes).await?, &PERMISSIONS, false)?;
        let change = match method {
            Method::PUT => AclChange::Add(given),
            Method::POST => AclChange::Replace(given),
            _ => AclChange::Remove(given),
        };
        state.store.change_acl(at, id, change, request.access()).await.map_err(|e| request.refused(e))?
    };
    Ok(Json(acl_json(&acl.ok_or_else(not_found)?, &PERMISSIONS)).into_response())
}

/// A wire subject as a store subject; `creator` only where `templates` allows it.
pub(super) fn subject_from(value: &Value, permission: &'static str, template: bool) -> Result<Subject, EdsError> {
    let id = value.get("id").and_then(Value::as_str);
    let kind = value.get("objectType").and_then(Value::as_str);
    match (kind, id) {
        (Some(USERS), Some(id)) if object_id(id).is_ok() => Ok(Subject::user(id)),
        (Some(USERGROUPS), Some(id)) if object_id(id).is_ok() => Ok(Subject::group(id)),
        (Some("aclSubject"), Some("*")) => Ok(Subject::Everyone),
        (Some("aclSubject"), Some("creator")) if template => Ok(Subject::Creator),
        _ => Err(ApiError::field(permission, "Subjects are {\"id\", \"objectType\": \"users\" | \"usergroups\"} or {\"id\": \"*\", \"objectType\": \"aclSubject\"}").into()),
    }
}

/// An ACL on the wire: one list of subjects per name in `names`.
pub(super) fn acl_json(acl: &Acl, names: &[(&'static str, Permission)]) -> Value {
    let mut body = Map::new();
    for &(key, permission) in names {
        body.insert(
            key.to_owned(),
            acl.subjects(permission).iter().map(updraft_realtime::frames::subject_json).collect(),
        );
    }
    Value::Object(body)
}

/// A (partial) ACL body with the lists in `names`; a missing list is empty. Other keys are an error when
/// `strict`, and ignored otherwise (object ACL bodies of clients may carry more).
pub(super) fn acl_from(
    body: Option<Value>,
    names: &[(&'static str, Permission)],
    strict: bool,
) -> Result<Acl, EdsError> {
    let Some(Value::Object(body)) = body else {
        return Err(ApiError::with_message(Code::BadRequest, "The body must be an object of subject lists").into());
    };
    if let Some(key) = body.keys().find(|key| strict && !names.iter().any(|(name, _)| name == key)) {
        let known: Vec<&str> = names.iter().map(|(name, _)| *name).collect();
        return Err(ApiError::field(key.clone(), format!("the lists are {}", known.join(", "))).into());
    }
    let mut acl = Acl::default();
    for &(key, permission) in names {
        let list = match body.get(key) {
            None | Some(Value::Null) => continue,
            Some(Value::Array(list)) => list,
            Some(_) => return Err(ApiError::field(key, "must be a list of subjects").into()),
        };
        for subject in list {
            acl.subjects_mut(permission).push(subject_from(subject, key, false)?);
        }
    }
    Ok(acl)
}
