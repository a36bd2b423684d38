//! `POST /v1/files`: a whole file in one `multipart/form-data` request (parts `object`, `file`, and the npm
//! SDK's `filename`), or the start of a chunked upload (a JSON body, as the multipart `object` part).
//!
//! The file part streams into a staged file, hashed on the way, never held in memory; the caller's right to
//! update the owner is checked when the `object` part arrives (before the bytes) and again, in the transaction
//! that attaches the file. Whatever fails, the staged file goes.

use std::path::PathBuf;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use updraft_blobs::BlobKey;
use updraft_core::ids::ObjectId;
use updraft_store::{NewFile, StoredBytes};
use utoipa::ToSchema;

use super::{FileWire, Target, UploadTarget, bad, file_name, file_wire, finish_upload, images};
use crate::ApiState;
use crate::body::read_json;
use crate::eds::DataRequest;
use crate::error::{ApiError, Code, EdsError};
use crate::openapi::{EdsErrors, tag};

/// The largest `object` or `filename` part.
const MAX_TEXT_PART: u64 = 64 * 1024;

/// A whole file in one request; the parts may come in any order, but `object` before `file` has the caller's
/// rights checked before the bytes are taken.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "read by hand, part by part, in `multipart`; this is its schema")]
struct UploadForm {
    /// Where the file goes (JSON).
    object: UploadTarget,
    /// The bytes, with a filename and a `Content-Type` (kept, and served with the download).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// The file's name when `object` has no `file.fileName` and the `file` part no filename (the npm SDK).
    filename: Option<String>,
}

/// Uploads a file into an object's property, whole, or starts a chunked upload.
///
/// `multipart/form-data` (parts `object`, `file` and optionally `filename`) uploads the whole file: the answer is
/// the complete file, and the object's property now refers to it (`{"id", "objectType": "files"}`). A JSON body
/// (what the `object` part holds) starts a chunked upload: the answer is the `empty` file, whose chunks then go
/// to `PUT /v1/files/{id}/chunk`. A multipart body without a `Content-Type` is recognised by its opening
/// boundary. The caller needs `update` on the object; a property with image processors takes images only.
#[utoipa::path(post, path = "/v1/files", tag = tag::FILES,
    security(("backendId" = []), ("backendId" = [], "userToken" = []), ("backendId" = [], "instanceSecret" = [])),
    request_body(content((UploadForm = "multipart/form-data"), (UploadTarget = "application/json"))),
    responses(
        (status = 201, body = FileWire),
        (status = 404, description = "No such object, or one the caller may not read.", body = EdsErrors)))]
pub(super) async fn create(
    State(state): State<ApiState>,
    request: DataRequest,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, EdsError> {
    let (boundary, body) = match headers.get(header::CONTENT_TYPE).and_then(|it| it.to_str().ok()) {
        Some(declared) if declared.trim_start().to_ascii_lowercase().starts_with("multipart/form-data") => {
            let boundary = multer::parse_boundary(declared).map_err(|_| bad("The multipart body has no boundary"))?;
            (Some(boundary), body)
        }
        Some(_) => (None, body),
        None => sniff(body).await?,
    };
    if let Some(boundary) = boundary {
        return multipart(&state, &request, body, boundary).await;
    }
    let value = read_json(body, state.limits.max_body_bytes).await?.ok_or_else(|| bad("A body is required"))?;
    let target = Target::parse(&value)?;
    let file_name = target.file_name.clone().ok_or_else(|| bad("file.fileName is required"))?;
    let backend = &request.backend.id;
    let variants = images::for_property(&state, backend, &target.owner.object_type, &target.property).await?;
    let file = NewFile {
        id: ObjectId::generate(),
        owner: &target.owner,
        property: &target.property,
        file_name: &file_name,
        content_type: None,
        variants: images::processing(&variants),
    };
    let begun = state.files.begin_file(&request.backend.id, file, request.access()).await;
    let begun = begun.map_err(|err| request.refused(err))?.ok_or_else(owner_not_found)?;
    Ok((StatusCode::CREATED, Json(file_wire(&begun))).into_response())
}

/// A body without a Content-Type that starts with `--<boundary>\r\n` is multipart, with that boundary: the npm
/// SDK sends its upload so (it sets Content-Length itself, which keeps its HTTP library from adding the
/// multipart Content-Type). Answers the boundary, if any, and the body whole again.
async fn sniff(body: Body) -> Result<(Option<String>, Body), EdsError> {
    let mut stream = body.into_data_stream();
    let mut head = Vec::new();
    while head.len() < 80 && !head.windows(2).any(|pair| pair == b"\r\n") {
        match stream.next().await {
            Some(Ok(chunk)) => head.extend_from_slice(&chunk),
            Some(Err(_)) => return Err(bad("Could not read the request body")),
            None => break,
        }
    }
    let boundary = head.strip_prefix(b"--").and_then(|rest| {
        let line = &rest[..rest.windows(2).position(|pair| pair == b"\r\n")?];
        // RFC 2046: 1 to 70 characters, no trailing space.
        let fits = (1..=70).contains(&line.len()) && line.iter().all(|b| b.is_ascii_graphic() || *b == b' ');
        (fits && !line.ends_with(b" ")).then(|| String::from_utf8_lossy(line).into_owned())
    });
    let head = futures_util::stream::once(std::future::ready(Ok::<_, axum::Error>(bytes::Bytes::from(head))));
    Ok((boundary, Body::from_stream(head.chain(stream))))
}

async fn multipart(
    state: &ApiState,
    request: &DataRequest,
    body: Body,
    boundary: String,
) -> Result<Response, EdsError> {
    let max = state.file_settings.max_bytes;
    let limits = multer::SizeLimit::new()
        .whole_stream(max.saturating_add(4 * MAX_TEXT_PART))
        .per_field(max)
        .for_field("object", MAX_TEXT_PART)
        .for_field("filename", MAX_TEXT_PART);
    let mut parts = multer::Multipart::with_constraints(
        body.into_data_stream(),
        boundary,
        multer::Constraints::new().size_limit(limits),
    );
    let (mut target, mut staged, mut named) = (None::<Target>, None::<Staged>, None::<String>);
    while let Some(field) = parts.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some("object") if target.is_none() => {
                let text = field.text().await.map_err(multipart_error)?;
                let value = serde_json::from_str(&text).map_err(|_| bad("The object part is not JSON"))?;
                let parsed = Target::parse(&value)?;
                let may = state.files.may_upload(&request.backend.id, &parsed.owner, request.access()).await;
                may.map_err(|err| request.refused(err))?.ok_or_else(owner_not_found)?;
                target = Some(parsed);
            }
            Some("filename") if named.is_none() => named = Some(field.text().await.map_err(multipart_error)?),
            Some("file") if staged.is_none() => staged = Some(stage(state, field).await?),
            Some(name @ ("object" | "filename" | "file")) => {
                return Err(bad(format!("Two {name} parts in one upload")));
            }
            other => return Err(bad(format!("Unexpected part {:?}: expected object, file and filename", other))),
        }
    }
    let target = target.ok_or_else(|| bad("The object part is missing"))?;
    let staged = staged.ok_or_else(|| bad("The file part is missing"))?;
    let name = match (&target.file_name, &staged.part_name, &named) {
        (Some(name), _, _) => name.clone(),
        (None, Some(name), _) | (None, None, Some(name)) => file_name(name)?,
        (None, None, None) => return Err(bad("The file has no name: give file.fileName")),
    };
    let id = ObjectId::generate();
    let backend = &request.backend.id;
    let variants = images::for_property(state, backend, &target.owner.object_type, &target.property).await?;
    if !variants.is_empty() {
        images::check(staged.path()).await?;
    }
    let id_text = id.to_string();
    let key = BlobKey { backend, file: &id_text, variant: updraft_blobs::ORIGINAL };
    let (content_type, size, sha256) = (staged.content_type.clone(), staged.size, staged.sha256.clone());
    staged.put(state, key).await?;
    let file = NewFile {
        id,
        owner: &target.owner,
        property: &target.property,
        file_name: &name,
        content_type: content_type.as_deref(),
        variants: images::processing(&variants),
    };
    let bytes = StoredBytes { size, sha256: &sha256 };
    let attached = state.files.attach_file(backend, file, bytes, request.author(), request.access()).await;
    finish_upload(state, request, id, attached, variants, StatusCode::CREATED).await
}

/// A file part streamed to a staged file: removed when dropped, unless put into the blob store.
struct Staged {
    path: Option<PathBuf>,
    size: u64,
    sha256: String,
    content_type: Option<String>,
    part_name: Option<String>,
}

impl Staged {
    fn path(&self) -> &std::path::Path {
        self.path.as_deref().expect("a staged file is there until put")
    }

    async fn put(mut self, state: &ApiState, key: BlobKey<'_>) -> Result<(), EdsError> {
        let path = self.path.take().expect("a staged file is put once");
        let put = state.blobs.put(key, &path).await;
        put.map_err(|err| {
            let _ = std::fs::remove_file(&path);
            internal("storing an upload", &err)
        })
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

async fn stage(state: &ApiState, mut field: multer::Field<'static>) -> Result<Staged, EdsError> {
    let part_name = field.file_name().map(str::to_owned);
    // What the client says the bytes are, when it says something sensible; kept for the download.
    let content_type = field.content_type().map(ToString::to_string).filter(|it| it.len() <= 255);
    let (mut file, path) = state.blobs.staging().await.map_err(|err| internal("staging an upload", &err))?;
    let mut staged = Staged { path: Some(path), size: 0, sha256: String::new(), content_type, part_name };
    let mut hasher = Sha256::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        hasher.update(&chunk);
        staged.size += chunk.len() as u64;
        file.write_all(&chunk).await.map_err(|err| internal("staging an upload", &err))?;
    }
    file.flush().await.map_err(|err| internal("staging an upload", &err))?;
    staged.sha256 = hex::encode(hasher.finalize());
    Ok(staged)
}

fn multipart_error(err: multer::Error) -> EdsError {
    match err {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            ApiError::with_message(Code::PayloadTooLarge, "The file is larger than this server takes").into()
        }
        multer::Error::StreamReadFailed(source) if crate::body::missed_deadline(source.as_ref()) => {
            ApiError::new(Code::RequestTimeout).into()
        }
        other => bad(format!("Malformed multipart body: {other}")),
    }
}

pub(super) fn owner_not_found() -> ApiError {
    ApiError::with_message(Code::NotFound, "Object not found")
}

pub(super) fn internal(doing: &str, err: &std::io::Error) -> EdsError {
    tracing::error!(%err, "{doing} failed");
    ApiError::new(Code::Internal).into()
}
