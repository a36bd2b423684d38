//! Object types (`/v1/object_types`): schemas with properties (`indexed` ones get an index),
//! `required` validators, the collection's `accessControlList` (who may list and create) and the
//! `accessControlListTemplate` of new objects. Managed with the account token and the backend's
//! master key, as QtEnginio's test harness does.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use updraft_core::atomic::AtomicOp;
use updraft_core::ids::ObjectId;
use updraft_store::{
    AccessDefaults, Acl, Backend, Cascade, Collection, ObjectRef, Permission, SchemaRules, USERGROUPS, USERS,
};
use utoipa::ToSchema;
use utoipa_axum::routes;

use super::access::{AclWire, PERMISSIONS, subject_from};
use super::objects_doc::Ref;
use super::{Caller, DataRequest, backend_of, template, token_subject};
use crate::ApiState;
use crate::auth;
use crate::body::read_json;
use crate::error::{ApiError, Code, EdsError};
use crate::openapi::{ApiRouter, tag};

pub(super) fn routes() -> ApiRouter {
    ApiRouter::new().routes(routes!(list, create)).routes(routes!(show, replace, remove))
}

/// An object type's schema. Members other than these are kept as sent.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "checked by hand in `validate`, for its errors; this is its schema")]
#[serde(rename_all = "camelCase")]
struct ObjectTypeSpec {
    /// `todos` for the objects of `objects.todos`, or `users` or `usergroups` for the built-in types. A `PUT` may
    /// leave it out; given, it must be the path's.
    name: String,
    /// Answered as `[]` when left out.
    properties: Option<Vec<PropertySpec>>,
    validators: Option<Vec<ValidatorSpec>>,
    /// Who may list the type's objects (`read`) and create them (`create`). Left out, the backend's access
    /// defaults say.
    access_control_list: Option<CollectionAcl>,
    /// The ACL each new object gets; it may name the creator. Left out, the backend's access defaults say.
    access_control_list_template: Option<AclWire>,
    settings: Option<TypeSettings>,
}

/// A property of an object type.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "checked by hand in `validate`; this is its schema")]
#[serde(rename_all = "camelCase")]
struct PropertySpec {
    /// Letters, digits and `_`, at most 64 characters.
    name: String,
    #[serde(rename = "type")]
    kind: PropertyType,
    /// Queries on it use an index, and a `string` one is searched by `/v1/search`. At most 16 a type and 64 a
    /// backend: each is an index on storage all tenants share.
    indexed: Option<bool>,
    /// For a `ref`: the type it refers to (`objects.todoLists` or `todoLists`, `users`, `usergroups`).
    object_type: Option<String>,
    /// For a `ref`: `{"onDelete": {"dependency": "deleteObject"}}` deletes an object when the one it refers to is
    /// deleted (its `objectType` is then required).
    target: Option<RefTarget>,
    /// For a `ref`: `{"accessControlList": "extend"}` gives a new object the ACL of the object it refers to,
    /// which the creator must be able to read.
    on_create: Option<OnCreate>,
    /// For a `ref` to files: the image variants made of each upload (`docs/files.md`).
    processors: Option<Vec<ImageProcessor>>,
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "checked by hand in `validate`; this is its schema")]
#[serde(rename_all = "lowercase")]
enum PropertyType {
    String,
    Boolean,
    Number,
    Hash,
    Ref,
    Time,
    Objectid,
    Array,
    Geoloc,
    File,
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "read by hand in `validate`; this is its schema")]
#[serde(rename_all = "camelCase")]
struct RefTarget {
    on_delete: Option<OnDelete>,
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "read by hand in `validate`; this is its schema")]
struct OnDelete {
    /// `deleteObject`: the referring object goes with the one it refers to.
    dependency: String,
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "read by hand in `extends`; this is its schema")]
#[serde(rename_all = "camelCase")]
struct OnCreate {
    /// `extend`.
    access_control_list: String,
}

/// `{"type": "image", "variants": {"thumbnail": {"crop": "20x20"}}}`.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "read by hand in `images::declared`; this is its schema")]
struct ImageProcessor {
    /// `image`.
    #[serde(rename = "type")]
    kind: String,
    /// By name: letters, digits and `_`, not `original`.
    variants: BTreeMap<String, VariantSpec>,
}

/// Exactly one of `crop`, `scale` and `resize`, as `WxH` with W and H from 1 to 4096. Variants are PNG.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "read by hand in `images::declared`; this is its schema")]
struct VariantSpec {
    /// Scaled to cover W×H, then the middle W×H of it.
    crop: Option<String>,
    /// Scaled to fit within W×H, proportions kept.
    scale: Option<String>,
    /// Scaled to exactly W×H.
    resize: Option<String>,
}

/// A `required` property: a new object must set it, and no change may blank it (`null`, `""`, `$unset`).
#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "read by hand in `validate` and `admit`; this is its schema")]
struct ValidatorSpec {
    property: String,
    /// `required`.
    #[serde(rename = "type")]
    kind: String,
    options: Option<ValidatorOptions>,
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "read by hand in `admit`; this is its schema")]
struct ValidatorOptions {
    /// The error's message when the property is missing (`is required` by default).
    message: Option<String>,
}

/// Who may list and create a type's objects: subjects as in ACLs.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "read by hand in `acl_of`; this is its schema")]
struct CollectionAcl {
    read: Option<Vec<Ref>>,
    create: Option<Vec<Ref>>,
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "read by the notification streams (`stream_hub`); this is its schema")]
struct TypeSettings {
    /// The type's changes reach notification streams (`/v1/stream_url`).
    websocket: Option<bool>,
}

#[derive(Serialize, ToSchema)]
struct ObjectTypes {
    #[schema(value_type = Vec<ObjectTypeSpec>)]
    results: Vec<Value>,
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

pub(super) fn valid_property(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Every indexed property is an index on the table all tenants share and slows every insert into it, so a type
/// and a backend get a bounded number of them.
const MAX_INDEXED_PER_TYPE: usize = 16;
const MAX_INDEXED_PER_BACKEND: usize = 64;

/// Refuses a schema whose indexes would take the backend past its share.
async fn check_index_budget(
    state: &ApiState,
    backend: &Backend,
    object_type: &str,
    rules: &SchemaRules,
) -> Result<(), EdsError> {
    let schemas = state.schemas.schemas(&backend.id).await?;
    let others: usize = schemas
        .iter()
        .filter(|schema| {
            schema["name"].as_str().and_then(|name| object_type_of(name).ok()).as_deref() != Some(object_type)
        })
        .flat_map(|schema| schema["properties"].as_array().into_iter().flatten())
        .filter(|property| property["indexed"] == json!(true))
        .count();
    if others + rules.indexed.len() > MAX_INDEXED_PER_BACKEND {
        let message = format!("at most {MAX_INDEXED_PER_BACKEND} indexed properties per backend");
        return Err(ApiError::field("properties", message).into());
    }
    Ok(())
}

/// Checks a schema body; answers the schema to store and its indexed properties.
fn validate(body: Option<Value>, name: Option<&str>) -> Result<(String, Value, SchemaRules), EdsError> {
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
    let mut rules = SchemaRules::default();
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
            rules.indexed.push(prop_name.to_owned());
            if rules.indexed.len() > MAX_INDEXED_PER_TYPE {
                let message = format!("at most {MAX_INDEXED_PER_TYPE} indexed properties per object type");
                return Err(ApiError::field("properties", message).into());
            }
        }
        let target = ref_target(property)?;
        if property["target"]["onDelete"]["dependency"] == "deleteObject" {
            let Some(target_type) = target else {
                return Err(ApiError::field("properties", "a cascading ref property needs its objectType").into());
            };
            rules.cascades.push(Cascade { property: prop_name.to_owned(), target_type });
        }
        let variants = super::files::images::declared(property).map_err(|m| ApiError::field("properties", m))?;
        if !variants.is_empty() && kind != "ref" {
            return Err(ApiError::field("properties", "only ref properties (to files) have image processors").into());
        }
        if extends(property) && kind != "ref" {
            return Err(ApiError::field("properties", "only ref properties extend an ACL").into());
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
    let schema = Value::Object(schema);
    rules.searched = updraft_store::searched_properties(&schema);
    Ok((object_type, schema, rules))
}

/// The type a ref property points at, from its `objectType` (`objects.todoLists`, or `todoLists`).
fn ref_target(property: &Value) -> Result<Option<String>, EdsError> {
    match property.get("objectType") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(name)) => {
            let bare = name.strip_prefix("objects.").unwrap_or(name);
            Ok(Some(object_type_of(bare)?))
        }
        Some(_) => Err(ApiError::field("properties", "objectType is the name of a type").into()),
    }
}

/// Whether objects created with this property take on the ACL of the object it refs.
fn extends(property: &Value) -> bool {
    property["onCreate"]["accessControlList"] == "extend"
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

/// The backend's object types.
#[utoipa::path(get, path = "/v1/object_types", tag = tag::SCHEMAS,
    security(("backendId" = [], "accountToken" = [], "masterKey" = [])),
    responses((status = 200, body = ObjectTypes)))]
async fn list(State(state): State<ApiState>, headers: HeaderMap) -> Result<Response, EdsError> {
    let backend = managed_backend(&state, &headers).await?;
    let results = state.schemas.schemas(&backend.id).await?;
    Ok(Json(ObjectTypes { results }).into_response())
}

/// Creates an object type's schema (or replaces the one of that name).
///
/// Indexed properties get an index; `required` validators, the collection ACL and the ACL template apply to
/// objects created from now on.
#[utoipa::path(post, path = "/v1/object_types", tag = tag::SCHEMAS,
    security(("backendId" = [], "accountToken" = [], "masterKey" = [])),
    request_body = ObjectTypeSpec, responses((status = 201, body = ObjectTypeSpec)))]
async fn create(State(state): State<ApiState>, headers: HeaderMap, body: Body) -> Result<Response, EdsError> {
    let backend = managed_backend(&state, &headers).await?;
    let (object_type, schema, rules) = validate(read_json(body, state.limits.max_body_bytes).await?, None)?;
    check_index_budget(&state, &backend, &object_type, &rules).await?;
    state.schemas.put_schema(&backend.id, &object_type, schema.clone(), &rules).await?;
    Ok((StatusCode::CREATED, Json(schema)).into_response())
}

/// One object type's schema.
#[utoipa::path(get, path = "/v1/object_types/{name}", tag = tag::SCHEMAS,
    security(("backendId" = [], "accountToken" = [], "masterKey" = [])),
    params(("name" = String, Path, description = "`todos` (for `objects.todos`), `users` or `usergroups`.")),
    responses((status = 200, body = ObjectTypeSpec)))]
async fn show(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, EdsError> {
    let backend = managed_backend(&state, &headers).await?;
    let schema = state.schemas.schema(&backend.id, &object_type_of(&name)?).await?;
    let schema = schema.ok_or_else(|| ApiError::with_message(Code::NotFound, "Object type not found"))?;
    Ok(Json(&*schema).into_response())
}

/// Replaces an object type's schema.
#[utoipa::path(put, path = "/v1/object_types/{name}", tag = tag::SCHEMAS,
    security(("backendId" = [], "accountToken" = [], "masterKey" = [])),
    params(("name" = String, Path, description = "`todos` (for `objects.todos`), `users` or `usergroups`.")),
    request_body = ObjectTypeSpec, responses((status = 200, body = ObjectTypeSpec)))]
async fn replace(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Body,
) -> Result<Response, EdsError> {
    let backend = managed_backend(&state, &headers).await?;
    let (object_type, schema, rules) = validate(read_json(body, state.limits.max_body_bytes).await?, Some(&name))?;
    check_index_budget(&state, &backend, &object_type, &rules).await?;
    state.schemas.put_schema(&backend.id, &object_type, schema.clone(), &rules).await?;
    Ok(Json(schema).into_response())
}

/// Deletes an object type: its schema and all its objects.
#[utoipa::path(delete, path = "/v1/object_types/{name}", tag = tag::SCHEMAS,
    security(("backendId" = [], "accountToken" = [], "masterKey" = [])),
    params(("name" = String, Path, description = "`todos` (for `objects.todos`), `users` or `usergroups`.")),
    responses((status = 200, description = "Deleted: `{}`", body = Object)))]
async fn remove(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, EdsError> {
    let backend = managed_backend(&state, &headers).await?;
    if !state.schemas.delete_schema(&backend.id, &object_type_of(&name)?).await? {
        return Err(ApiError::with_message(Code::NotFound, "Object type not found").into());
    }
    Ok(Json(json!({})).into_response())
}

/// What a schema asks of a new object before it is stored: the collection's `create`
/// permission and the `required` properties. Answers the ACL template for the new object, and the object
/// whose ACL it extends, if a ref property says so.
pub(super) async fn admit(
    state: &ApiState,
    request: &DataRequest,
    object_type: &str,
    properties: &Map<String, Value>,
) -> Result<(Acl, Option<ObjectRef>), EdsError> {
    let defaults = request.backend.access;
    let schema = state.schemas.schema(&request.backend.id, object_type).await?;
    let Some(Value::Object(schema)) = schema.as_deref() else {
        may_create_by_default(request, object_type)?;
        return Ok((template(defaults), None));
    };
    match acl_of(schema, "accessControlList", false)? {
        Some(collection) => collection_allows(request, &collection, Permission::Update)?,
        None => may_create_by_default(request, object_type)?,
    }
    for validator in schema.get("validators").and_then(Value::as_array).into_iter().flatten() {
        let property = validator["property"].as_str().unwrap_or_default();
        let present = matches!(properties.get(property), Some(v) if !v.is_null() && v.as_str() != Some(""));
        if !present {
            let message = validator["options"]["message"].as_str().unwrap_or("is required").to_owned();
            return Err(required(property, message));
        }
    }
    let acl = acl_of(schema, "accessControlListTemplate", true)?.unwrap_or_else(|| template(defaults));
    Ok((acl, parent(state, request, schema, properties).await?))
}

/// The object a new one extends the ACL of: the first extending ref property it sets. The caller must be able
/// to read that object, or anyone could attach objects to, say, a todo list they cannot see.
async fn parent(
    state: &ApiState,
    request: &DataRequest,
    schema: &Map<String, Value>,
    properties: &Map<String, Value>,
) -> Result<Option<ObjectRef>, EdsError> {
    for property in schema.get("properties").and_then(Value::as_array).into_iter().flatten() {
        let name = property["name"].as_str().unwrap_or_default();
        let Some(value) = properties.get(name).filter(|_| extends(property)) else { continue };
        let invalid = |message: &str| EdsError(ApiError::field(name.to_owned(), message.to_owned()));
        let declared = ref_target(property)?;
        let (Some(id), Some(kind)) = (value["id"].as_str(), value["objectType"].as_str()) else {
            return Err(invalid("must be a ref {\"id\", \"objectType\"}"));
        };
        let kind =
            object_type_of(kind.strip_prefix("objects.").unwrap_or(kind)).map_err(|_| invalid("names no type"))?;
        if declared.as_ref().is_some_and(|declared| *declared != kind) {
            return Err(invalid("refs an object of another type"));
        }
        let Some(id) = ObjectId::parse(id) else { return Err(invalid("refs no object you may read")) };
        let at = Collection { backend: &request.backend.id, object_type: &kind };
        if state.store.get(at, id, request.access()).await?.is_none() {
            return Err(invalid("refs no object you may read"));
        }
        return Ok(Some(ObjectRef { object_type: kind, id }));
    }
    Ok(None)
}

/// A change to a stored object, as its `required` validators see it.
pub(super) enum Edit<'a> {
    Merge(&'a Map<String, Value>),
    Atomic(&'a [AtomicOp]),
}

/// `required` holds after updates too: a change may not blank a required property (`null`, `""`, `$unset`).
/// A user's `username` and a group's `name` are always required.
pub(super) async fn admit_edit(
    state: &ApiState,
    request: &DataRequest,
    object_type: &str,
    edit: Edit<'_>,
) -> Result<(), EdsError> {
    let mut required_properties: Vec<(String, String)> = match object_type {
        USERS => vec![("username".into(), "can't be blank".into())],
        USERGROUPS => vec![("name".into(), "can't be blank".into())],
        _ => Vec::new(),
    };
    if let Some(Value::Object(schema)) = state.schemas.schema(&request.backend.id, object_type).await?.as_deref() {
        for validator in schema.get("validators").and_then(Value::as_array).into_iter().flatten() {
            let property = validator["property"].as_str().unwrap_or_default().to_owned();
            let message = validator["options"]["message"].as_str().unwrap_or("is required").to_owned();
            required_properties.push((property, message));
        }
    }
    let blank = |value: &Value| value.is_null() || value.as_str() == Some("");
    for (property, message) in required_properties {
        let blanked = match edit {
            Edit::Merge(patch) => patch.get(&property).is_some_and(blank),
            Edit::Atomic(ops) => ops.iter().any(|op| match op {
                AtomicOp::Unset(name) => *name == property,
                AtomicOp::Set(name, value) => *name == property && blank(value),
                _ => false,
            }),
        };
        if blanked {
            return Err(required(&property, message));
        }
    }
    Ok(())
}

/// Without a collection ACL, a `locked` backend lets anonymous callers create only users (sign-up).
fn may_create_by_default(request: &DataRequest, object_type: &str) -> Result<(), EdsError> {
    match (request.backend.access, &request.caller) {
        (AccessDefaults::Locked, Caller::Anonymous) if object_type != USERS => {
            Err(request.denied(EdsError(ApiError::new(Code::AccessDenied))))
        }
        _ => Ok(()),
    }
}

/// Listing needs the collection's `read` permission when its schema sets one.
pub(super) async fn may_list(state: &ApiState, request: &DataRequest, object_type: &str) -> Result<(), EdsError> {
    let schema = state.schemas.schema(&request.backend.id, object_type).await?;
    let Some(Value::Object(schema)) = schema.as_deref() else {
        return Ok(());
    };
    match acl_of(schema, "accessControlList", false)? {
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
