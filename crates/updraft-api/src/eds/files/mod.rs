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
use axum::routing::{get, post, put};
use serde_json::{Value, json};
use updraft_core::ids::ObjectId;
use updraft_store::{FileRecord, FileStatus, ObjectRef};

use super::DataRequest;
// Names of letters, digits and `_`, as properties are named: type names, properties, variants, backend ids.
use super::schemas::valid_property as plain;
use crate::ApiState;
use crate::error::{ApiError, Code, EdsError};

pub(super) fn routes() -> axum::Router<ApiState> {
    axum::Router::new()
        .route("/v1/files", post(upload::create))
        .route("/v1/files/{id}", get(show))
        .route("/v1/files/{id}/chunk", put(chunks::chunk))
        .route("/v1/files/{id}/download_url", get(download::url))
        .route("/v1/files/{id}/download", get(download::download))
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

/// `GET /v1/files/{id}`: the file, for a caller that may read its object.
async fn show(
    State(state): State<ApiState>,
    request: DataRequest,
    Path(id): Path<String>,
) -> Result<Response, EdsError> {
    let id = file_id(&id)?;
    let file = state.files.file(&request.backend.id, id, false, request.access()).await?;
    Ok(Json(wire(&file.ok_or_else(not_found)?)).into_response())
}

/// A file as the wire shows it: `{"id","objectType":"files","fileName","fileSize","contentType","status",
/// "createdAt","updatedAt","variants"}`, without what is not known yet.
pub(crate) fn wire(file: &FileRecord) -> Value {
    let at = |ms: i64| updraft_core::timestamp::format(std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64));
    let mut out = json!({
        "id": file.id.to_string(),
        "objectType": "files",
        "fileName": file.file_name,
        "status": file.status.as_str(),
        "createdAt": at(file.created_ms),
        "updatedAt": at(file.updated_ms),
    });
    if let (Some(size), FileStatus::Complete) = (file.size, file.status) {
        out["fileSize"] = size.into();
    }
    if let Some(content_type) = &file.content_type {
        out["contentType"] = content_type.as_str().into();
    }
    if let Some(variants) = &file.variants {
        out["variants"] = variants.clone();
    }
    out
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
            Ok((status, Json(wire(&file))).into_response())
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
