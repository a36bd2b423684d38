//! Object types (`/v1/object_types`): schemas with properties (`indexed` ones get an index),
//! `required` validators, the collection's `accessControlList` (who may list and create) and the
//! `accessControlListTemplate` of new objects. Managed with the account token and the backend's
//! master key, as QtEnginio's test harness does.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};
use updraft_store::{Acl, Backend, Permission, USERGROUPS, USERS};

use super::access::{PERMISSIONS, subject_from};
use super::{Caller, DataRequest, backend_of, storage, template, token_subject};
use crate::ApiState;
use crate::auth;
use crate::body::read_json;
use crate::error::{ApiError, Code, EdsError};

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/object_types", get(list).post(create))
        .route("/v1/object_types/{name}", get(show).put(replace).delete(remove))
}

const TYPES: [&str; 10] = ["string", "boolean", "number", "hash", "ref", "time", "objectid", "array", "geoloc", "file"];

/// The backend, for a caller with the account token and the backend's master key.
async fn managed_backend(state: &ApiState, headers: &HeaderMap) -> Result<Backend, EdsError> {
    let backend = backend_of(state, headers).await?;
    let creds = auth::credentials(headers)?;
    if token_subject(state, &creds).await?.as_deref() != Some("account") {
        return Err(auth::require_token(&creds, None).unwrap_err().into());
    }
    let key = headers.get("enginio-backend-masterkey").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !auth::same_secret(key, &backend.master_key) {
        return Err(ApiError::with_message(Code::AccessDenied, "Enginio-Backend-MasterKey is missing or wrong").into());
    }
    Ok(backend)
}

/// `todos` names `objects.todos`; `users` and `usergroups` name the built-in types.
fn object_type_of(name: &str) -> Result<String, EdsError> {
    match name {
        USERS | USERGROUPS => Ok(name.to_owned()),
        _ => super::objects::object_type(name),
    }
}

fn valid_property(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Checks a schema body; answers the schema to store and its indexed properties.
fn validate(body: Option<Value>, name: Option<&str>) -> Result<(String, Value, Vec<String>), EdsError> {
    let Some(Value::Object(mut schema)) = body else {
        return Err(ApiError::with_message(Code::BadRequest, "A schema is a JSON object").into());
    };
    let name = match (name, schema.get("name").and_then(Value::as_str)) {
        (Some(path), Some(body)) if path != body => {
            return Err(ApiError::field("name", "does not match the path").into());
        }
        (Some(path), _) => path.to_owned(),
        (None, Some(body)) => body.to_owned(),
        (None, None) => return Err(ApiError::field("name", "can't be blank").into()),
    };
    let object_type = object_type_of(&name)?;
    schema.insert("name".into(), json!(name));
    let mut indexed = Vec::new();
    for property in schema.get("properties").and_then(Value::as_array).into_iter().flatten() {
        let prop_name = property.get("name").and_then(Value::as_str).unwrap_or("");
        if !valid_property(prop_name) {
            return Err(ApiError::field("properties", "each property needs a name of letters, digits and _").into());
        }
        let kind = property.get("type").and_then(Value::as_str).unwrap_or("");
        if !TYPES.contains(&kind) {
            return Err(ApiError::field("properties", format!("unknown property type {kind:?}")).into());
        }
        if property.get("indexed").and_then(Value::as_bool) == Some(true) {
            indexed.push(prop_name.to_owned());
        }
    }
    for validator in schema.get("validators").and_then(Value::as_array).into_iter().flatten() {
        let property = validator.get("property").and_then(Value::as_str).unwrap_or("");
        if validator.get("type").and_then(Value::as_str) != Some("required") || !valid_property(property) {
            return Err(ApiError::field("validators", "validators are {\"property\", \"type\": \"required\"}").into());
        }
    }
    // Parse both ACLs now, so a stored schema always converts.
    acl_of(&schema, "accessControlList", false)?;
    acl_of(&schema, "accessControlListTemplate", true)?;
    schema.entry("properties").or_insert(json!([]));
    Ok((object_type, Value::Object(schema), indexed))
}

/// An ACL member of a schema (`None` when absent).
fn acl_of(schema: &Map<String, Value>, key: &'static str, template: bool) -> Result<Option<Acl>, EdsError> {
    let Some(value) = schema.get(key) else { return Ok(None) };
    let Value::Object(lists) = value else {
        return Err(ApiError::field(key, "must be an object of subject lists").into());
    };
    let mut acl = Acl::default();
    for (name, permission) in PERMISSIONS.iter().copied().chain([("create", Permission::Update)]) {
        // A collection ACL has `read` and `create`; `create` is kept in the `update` slot.
        let Some(list) = lists.get(name) else { continue };
        let Value::Array(list) = list else { return Err(ApiError::field(key, "lists subjects in arrays").into()) };
        for subject in list {
            acl.subjects_mut(permission).push(subject_from(subject, key, template)?);
        }
    }
    Ok(Some(acl))
}

async fn list(State(state): State<ApiState>, headers: HeaderMap) -> Result<Response, EdsError> {
    let backend = managed_backend(&state, &headers).await?;
    let results = state.schemas.schemas(&backend.id).await.map_err(storage)?;
    Ok(Json(json!({ "results": results })).into_response())
}

async fn create(State(state): State<ApiState>, headers: HeaderMap, body: Body) -> Result<Response, EdsError> {
    let backend = managed_backend(&state, &headers).await?;
    let (object_type, schema, indexed) = validate(read_json(body, state.limits.max_body_bytes).await?, None)?;
    state.schemas.put_schema(&backend.id, &object_type, schema.clone(), &indexed).await.map_err(storage)?;
    Ok((StatusCode::CREATED, Json(schema)).into_response())
}

async fn show(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, EdsError> {
    let backend = managed_backend(&state, &headers).await?;
    let schema = state.schemas.schema(&backend.id, &object_type_of(&name)?).await.map_err(storage)?;
    Ok(Json(schema.ok_or_else(|| ApiError::with_message(Code::NotFound, "Object type not found"))?).into_response())
}

async fn replace(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Body,
) -> Result<Response, EdsError> {
    let backend = managed_backend(&state, &headers).await?;
    let (object_type, schema, indexed) = validate(read_json(body, state.limits.max_body_bytes).await?, Some(&name))?;
    state.schemas.put_schema(&backend.id, &object_type, schema.clone(), &indexed).await.map_err(storage)?;
    Ok(Json(schema).into_response())
}

async fn remove(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, EdsError> {
    let backend = managed_backend(&state, &headers).await?;
    if !state.schemas.delete_schema(&backend.id, &object_type_of(&name)?).await.map_err(storage)? {
        return Err(ApiError::with_message(Code::NotFound, "Object type not found").into());
    }
    Ok(Json(json!({})).into_response())
}

/// What a schema asks of a new object before it is stored: the collection's `create`
/// permission and the `required` properties. Answers the ACL template for the new object.
pub(super) async fn admit(
    state: &ApiState,
    request: &DataRequest,
    object_type: &str,
    properties: &Map<String, Value>,
) -> Result<Acl, EdsError> {
    let Some(Value::Object(schema)) = state.schemas.schema(&request.backend.id, object_type).await.map_err(storage)?
    else {
        return Ok(template(object_type));
    };
    if let Some(collection) = acl_of(&schema, "accessControlList", false)? {
        collection_allows(request, &collection, Permission::Update)?;
    }
    for validator in schema.get("validators").and_then(Value::as_array).into_iter().flatten() {
        let property = validator["property"].as_str().unwrap_or_default();
        let present = matches!(properties.get(property), Some(v) if !v.is_null() && v.as_str() != Some(""));
        if !present {
            let message = validator["options"]["message"].as_str().unwrap_or("is required").to_owned();
            return Err(required(property, message));
        }
    }
    Ok(acl_of(&schema, "accessControlListTemplate", true)?.unwrap_or_else(|| template(object_type)))
}

/// Listing needs the collection's `read` permission when its schema sets one.
pub(super) async fn may_list(state: &ApiState, request: &DataRequest, object_type: &str) -> Result<(), EdsError> {
    let Some(Value::Object(schema)) = state.schemas.schema(&request.backend.id, object_type).await.map_err(storage)?
    else {
        return Ok(());
    };
    match acl_of(&schema, "accessControlList", false)? {
        Some(collection) => collection_allows(request, &collection, Permission::Read),
        None => Ok(()),
    }
}

fn collection_allows(request: &DataRequest, collection: &Acl, permission: Permission) -> Result<(), EdsError> {
    if matches!(request.caller, Caller::Secret)
        || collection.subjects(permission).iter().any(|s| request.subjects.contains(s))
    {
        return Ok(());
    }
    Err(request.denied(EdsError(ApiError::new(Code::AccessDenied))))
}

/// QtEnginio compares validation errors whole: `{"message", "property", "reason"}`.
fn required(property: &str, message: String) -> EdsError {
    EdsError(ApiError::field(property.to_owned(), message))
}
