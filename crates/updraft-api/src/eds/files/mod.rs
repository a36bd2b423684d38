//! EDS files (`/v1/files`): uploads in one multipart request (`upload.rs`) or in chunks (`chunks.rs`), the file
//! object, and download URLs signed for a while that need no credentials (`download.rs`).
//!
//! Who may do what: a file has the ACL of the object that owns it (the object whose property refers to it).
//! Reading the object lets a caller see the file and get a download URL; updating it lets a caller upload into
//! it (which updates that property, a change like any other). The URL alone then lets anyone holding it download
//! until it expires: it is signed with the backend's instance secret, so rotating that secret revokes every URL.

mod chunks;
mod download;
pub(super) mod images;
mod upload;

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use updraft_core::ids::ObjectId;
use updraft_store::{FileRecord, FileStatus, ObjectRef};
use utoipa::ToSchema;
use utoipa_axum::routes;

use super::DataRequest;
// Names of letters, digits and `_`, as properties are named: type names, properties, variants, backend ids.
use super::schemas::valid_property as plain;
use crate::ApiState;
use crate::error::{ApiError, Code, EdsError};
use crate::openapi::{ApiRouter, tag};

pub(super) fn routes() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(upload::create))
        .routes(routes!(show))
        .routes(routes!(chunks::chunk))
        .routes(routes!(download::url))
        .routes(routes!(download::download))
}

/// A file: its name, size and type, whether its bytes are all there, and its image variants.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct FileWire {
    /// The type the client sent with the bytes, served with the download.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    content_type: Option<String>,
    created_at: String,
    file_name: String,
    /// The bytes, once the file is complete.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    file_size: Option<u64>,
    id: String,
    /// `files`.
    object_type: &'static str,
    /// `empty` (a chunked upload begun), `incomplete` (chunks arriving) or `complete`.
    status: &'static str,
    updated_at: String,
    /// For a property with image processors, each variant by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = std::collections::BTreeMap<String, VariantStatus>)]
    variants: Option<Value>,
}

/// Bytes, as uploaded.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code, reason = "the schema of a body of raw bytes; never built")]
struct Bytes(Vec<u8>);

/// An image variant of a file.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "written by `images`; this is its schema")]
struct VariantStatus {
    /// `processing`, `complete` (it can be downloaded) or `failed` (the image did not decode).
    status: String,
}

/// Where an upload goes and what the file is called: the body that starts a chunked upload, or the `object` part
/// of a multipart one.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "read by hand in `Target::parse`, for its errors; this is its schema")]
#[serde(rename_all = "camelCase")]
struct UploadTarget {
    target_file_property: TargetFileProperty,
    /// Required to start a chunked upload; a multipart upload may name the file by its `file` part's filename or
    /// by a `filename` part instead.
    file: Option<FileNaming>,
}

/// The object and property a file is uploaded into: once complete, the property refers to the file.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "read by hand in `Target::parse`; this is its schema")]
#[serde(rename_all = "camelCase")]
struct TargetFileProperty {
    /// `objects.<type>`, `users` or `usergroups`.
    object_type: String,
    /// The object's id: the caller needs `update` on it.
    id: String,
    /// Letters, digits and `_`; not a reserved property, `username` or `password`.
    property_name: String,
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "read by hand in `Target::parse`; this is its schema")]
#[serde(rename_all = "camelCase")]
struct FileNaming {
    /// One name of at most 255 bytes, without a path or control characters.
    file_name: Option<String>,
}

/// What the operator sets for files.
#[derive(Debug, Clone, Copy)]
pub struct FileSettings {
    /// The largest file, in bytes.
    pub max_bytes: u64,
    /// How long a download URL works.
    pub url_lifetime: Duration,
}

/// Chunked uploads with a chunk being written, so that two chunks of one file are never written at once.
#[derive(Debug, Default)]
pub struct Uploads {
    busy: Mutex<HashSet<(String, ObjectId)>>,
}

/// A chunk being written; the file is free again when this is dropped.
struct Writing<'a> {
    uploads: &'a Uploads,
    key: (String, ObjectId),
}

impl Uploads {
    fn claim(&self, backend: &str, id: ObjectId) -> Option<Writing<'_>> {
        let key = (backend.to_owned(), id);
        let mut busy = self.busy.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        busy.insert(key.clone()).then_some(Writing { uploads: self, key })
    }
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        self.uploads.busy.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&self.key);
    }
}

/// A file: its name, size, type, status and image variants.
///
/// For a caller that may read the object that owns it; to others the file does not exist (404).
#[utoipa::path(get, path = "/v1/files/{id}", tag = tag::FILES,
    security(("backendId" = []), ("backendId" = [], "userToken" = []), ("backendId" = [], "instanceSecret" = [])),
    params(("id" = String, Path, description = "The file's id.")), responses((status = 200, body = FileWire)))]
async fn show(
    State(state): State<ApiState>,
    request: DataRequest,
    Path(id): Path<String>,
) -> Result<Response, EdsError> {
    let id = file_id(&id)?;
    let file = state.files.file(&request.backend.id, id, false, request.access()).await?;
    Ok(Json(file_wire(&file.ok_or_else(not_found)?)).into_response())
}

/// A file as the wire shows it, without what is not known yet.
fn file_wire(file: &FileRecord) -> FileWire {
    let at = |ms: i64| updraft_core::timestamp::format(std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64));
    FileWire {
        content_type: file.content_type.clone(),
        created_at: at(file.created_ms),
        file_name: file.file_name.clone(),
        file_size: file.size.filter(|_| file.status == FileStatus::Complete),
        id: file.id.to_string(),
        object_type: "files",
        status: file.status.as_str(),
        updated_at: at(file.updated_ms),
        variants: file.variants.clone(),
    }
}

/// A file as `include` shows it in the object that refers to it.
pub(crate) fn wire(file: &FileRecord) -> Value {
    serde_json::to_value(file_wire(file)).expect("a file is JSON")
}

fn file_id(id: &str) -> Result<ObjectId, EdsError> {
    ObjectId::parse(id).ok_or_else(|| not_found().into())
}

fn not_found() -> ApiError {
    ApiError::with_message(Code::NotFound, "File not found")
}

fn bad(message: impl Into<String>) -> EdsError {
    ApiError::with_message(Code::BadRequest, message.into()).into()
}

/// Where an upload goes and what the file is called: the `object` part of a multipart upload, or the body that
/// starts a chunked one: `{"targetFileProperty":{"objectType","id","propertyName"},"file":{"fileName"}}`.
struct Target {
    owner: ObjectRef,
    property: String,
    file_name: Option<String>,
}

/// Properties a file may not go into: the reserved ones, and what a user's sign-in needs.
const NOT_FOR_FILES: &[&str] =
    &["id", "objectType", "createdAt", "updatedAt", "creator", "updater", "accessControlList", "username", "password"];

impl Target {
    fn parse(value: &Value) -> Result<Target, EdsError> {
        let target = value.get("targetFileProperty").ok_or_else(|| bad("targetFileProperty is required"))?;
        let text = |name: &str| {
            target
                .get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| bad(format!("targetFileProperty.{name} is required")))
        };
        let object_type = text("objectType")?;
        let valid_type = match object_type.strip_prefix("objects.") {
            Some(name) => plain(name),
            None => object_type == updraft_store::USERS || object_type == updraft_store::USERGROUPS,
        };
        if !valid_type {
            return Err(bad(format!("targetFileProperty.objectType {object_type:?} names no collection")));
        }
        let id = ObjectId::parse(text("id")?)
            .ok_or_else(|| EdsError::from(ApiError::with_message(Code::NotFound, "Object not found")))?;
        let property = text("propertyName")?;
        if !plain(property) || NOT_FOR_FILES.contains(&property) {
            return Err(bad(format!("A file cannot go into the property {property:?}")));
        }
        let file_name = match value.get("file").and_then(|file| file.get("fileName")) {
            None | Some(Value::Null) => None,
            Some(Value::String(name)) => Some(file_name(name)?),
            Some(_) => return Err(bad("file.fileName must be a string")),
        };
        Ok(Target {
            owner: ObjectRef { object_type: object_type.to_owned(), id },
            property: property.to_owned(),
            file_name,
        })
    }
}

/// A file name as given, when it is one name (no path, no control characters) of at most 255 bytes.
fn file_name(name: &str) -> Result<String, EdsError> {
    let fits = !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name.chars().any(|c| c == '/' || c == '\\' || c.is_control());
    if !fits {
        return Err(bad("The file name must be one name of at most 255 bytes, without a path or control characters"));
    }
    Ok(name.to_owned())
}

/// Makes the image variants a stop cut off (see `images::resume`); run once at start.
pub async fn resume_renders(state: ApiState) {
    images::resume(state).await;
}

/// The answer to an upload whose bytes are stored, once the store attached them (or not): the file, with its
/// image variants started; or the refusal, with the stored bytes removed (the owner went, or the caller lost
/// its right, while they arrived).
async fn finish_upload(
    state: &ApiState,
    request: &DataRequest,
    id: ObjectId,
    attached: Result<Option<(FileRecord, Value)>, updraft_store::StoreError>,
    variants: Vec<(String, images::Variant)>,
    status: axum::http::StatusCode,
) -> Result<Response, EdsError> {
    let backend = &request.backend.id;
    match attached {
        Ok(Some((file, _owner))) => {
            if !variants.is_empty() {
                tokio::spawn(images::render(state.clone(), backend.clone(), id, variants));
            }
            Ok((status, Json(file_wire(&file))).into_response())
        }
        other => {
            if let Err(err) = state.blobs.remove_file(backend, &id.to_string()).await {
                tracing::warn!(%err, file = %id, "removing the bytes of a refused upload failed");
            }
            Err(match other {
                Err(err) => request.refused(err),
                Ok(_) => upload::owner_not_found().into(),
            })
        }
    }
}
