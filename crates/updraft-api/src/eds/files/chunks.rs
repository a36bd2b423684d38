//! `PUT /v1/files/{id}/chunk` with `Content-Range: <start>-<end>/<total>`: the end is exclusive and there is no
//! unit (`0-1024/7679`), as QtEnginio sends it. Chunks come in order: each starts where the received bytes end.
//! A chunk already received is answered again (a client retrying after a lost answer); a gap, an overlap, a
//! total that changes, a range past the total or a body of another length than the range is 400, and the staged
//! bytes are as before it. Each chunk is on disk (fsynced) before it is acknowledged; the last one puts the file
//! into the blob store and points its owner at it.

use std::io::SeekFrom;

use axum::Json;
use axum::body::{Body, HttpBody};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use updraft_blobs::BlobKey;
use updraft_store::{FileStatus, StoredBytes};

use super::upload::internal;
use super::{FileWire, bad, file_id, file_wire, finish_upload, images, not_found};
use crate::ApiState;
use crate::eds::DataRequest;
use crate::error::{ApiError, Code, EdsError};
use crate::openapi::{EdsErrors, tag};

/// `start-end/total`, end exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ChunkRange {
    start: u64,
    end: u64,
    total: u64,
}

fn parse_range(headers: &HeaderMap) -> Result<ChunkRange, EdsError> {
    let text = headers
        .get("content-range")
        .and_then(|it| it.to_str().ok())
        .ok_or_else(|| bad("Content-Range: <start>-<end>/<total> is required"))?;
    let number = |text: &str| {
        (!text.is_empty() && text.len() <= 19 && text.bytes().all(|b| b.is_ascii_digit()))
            .then(|| text.parse::<u64>().ok())
            .flatten()
    };
    let parsed = text.trim().split_once('/').and_then(|(span, total)| {
        let (start, end) = span.split_once('-')?;
        Some(ChunkRange { start: number(start)?, end: number(end)?, total: number(total)? })
    });
    let range = parsed.ok_or_else(|| bad(format!("Content-Range {text:?} is not <start>-<end>/<total>")))?;
    if range.start >= range.end || range.end > range.total {
        return Err(bad(format!("Content-Range {text:?} is empty or ends past its total")));
    }
    Ok(range)
}

/// Uploads the next chunk of a file.
///
/// The body is the chunk's bytes; `Content-Range: <start>-<end>/<total>` says where they go, with `<end>`
/// exclusive and no unit (`0-1024/7679`, then `1024-2048/7679`, …), as QtEnginio sends it. Chunks come in order,
/// each starting where the received bytes end; one already received is answered again and changes nothing. The
/// answer is the file: `incomplete` until the last chunk makes it `complete` and points the object's property at
/// it. The caller needs `update` on the object.
#[utoipa::path(put, path = "/v1/files/{id}/chunk", tag = tag::FILES,
    security(("backendId" = []), ("backendId" = [], "userToken" = []), ("backendId" = [], "instanceSecret" = [])),
    params(("id" = String, Path, description = "The file's id, from the answer that started the upload."),
        ("Content-Range" = String, Header, description = "`<start>-<end>/<total>`: end exclusive, no unit.")),
    request_body(content = inline(super::Bytes), content_type = "application/octet-stream",
        description = "Exactly the range's bytes."),
    responses(
        (status = 200, body = FileWire),
        (status = 409, description = "Another chunk of the file is arriving or arrived first, or the upload's \
            earlier chunks are gone.", body = EdsErrors)))]
pub(super) async fn chunk(
    State(state): State<ApiState>,
    request: DataRequest,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, EdsError> {
    let id = file_id(&id)?;
    let range = parse_range(&headers)?;
    if range.total > state.file_settings.max_bytes {
        return Err(ApiError::with_message(Code::PayloadTooLarge, "The file is larger than this server takes").into());
    }
    let backend = &request.backend.id;
    let _writing = state.uploads.claim(backend, id).ok_or_else(|| {
        EdsError::from(ApiError::with_message(Code::Conflict, "Another chunk of this file is arriving"))
    })?;
    let file = state.files.file(backend, id, true, request.access()).await.map_err(|err| request.refused(err))?;
    let file = file.ok_or_else(not_found)?;
    if file.status == FileStatus::Complete {
        return Err(bad("The file is complete: start a new upload to replace it"));
    }
    if file.size.is_some_and(|size| size != range.total) {
        return Err(bad(format!("The file's total is {}, not {}", file.size.unwrap_or(0), range.total)));
    }
    if range.end <= file.received {
        // Received before: the same answer again.
        return Ok(Json(file_wire(&file)).into_response());
    }
    if range.start != file.received {
        return Err(bad(format!("The next chunk starts at byte {}, not {}", file.received, range.start)));
    }
    let id_text = id.to_string();
    let key = BlobKey { backend, file: &id_text, variant: updraft_blobs::ORIGINAL };
    let path = state.blobs.upload_path(key).map_err(|err| internal("staging a chunk", &err))?;
    write_chunk(&path, file.received, range, body).await?;
    if range.end < range.total {
        if !state.files.record_chunk(backend, id, file.received, range.end, range.total).await? {
            if state.files.file(backend, id, false, updraft_store::Access::Everything).await?.is_none() {
                // The file went (its object deleted) while the chunk arrived: nothing will complete it now.
                let _ = tokio::fs::remove_file(&path).await;
                return Err(not_found().into());
            }
            return Err(ApiError::with_message(Code::Conflict, "Another chunk of this file arrived first").into());
        }
        let file = state.files.file(backend, id, false, updraft_store::Access::Everything).await?;
        return Ok(Json(file_wire(&file.ok_or_else(not_found)?)).into_response());
    }
    let variants = images::for_property(&state, backend, &file.owner.object_type, &file.property).await?;
    if !variants.is_empty()
        && let Err(refused) = images::check(&path).await
    {
        // Not an image: the upload cannot complete; its bytes go back to what they were.
        if let Ok(staged) = tokio::fs::OpenOptions::new().write(true).open(&path).await {
            let _ = staged.set_len(file.received).await;
        }
        return Err(refused);
    }
    let sha256 = hash(&path).await.map_err(|err| internal("hashing an upload", &err))?;
    state.blobs.put(key, &path).await.map_err(|err| internal("storing an upload", &err))?;
    let bytes = StoredBytes { size: range.total, sha256: &sha256 };
    let completed = state.files.complete_file(backend, id, bytes, request.author(), request.access()).await;
    finish_upload(&state, &request, id, completed, variants, StatusCode::OK).await
}

/// Writes the chunk's bytes at its start and syncs them; a body of another length than the range leaves the
/// staged file as it was (`received` bytes).
async fn write_chunk(path: &std::path::Path, received: u64, range: ChunkRange, body: Body) -> Result<(), EdsError> {
    let io = |err: std::io::Error| internal("staging a chunk", &err);
    let mut file =
        tokio::fs::OpenOptions::new().create(true).write(true).truncate(false).open(path).await.map_err(io)?;
    if file.metadata().await.map_err(io)?.len() < received {
        return Err(
            ApiError::with_message(Code::Conflict, "The upload's earlier chunks are gone: start a new upload").into()
        );
    }
    file.seek(SeekFrom::Start(range.start)).await.map_err(io)?;
    let expected = range.end - range.start;
    let written = copy_exactly(body, &mut file, expected).await;
    if let Err(err) = written {
        // Nothing of a refused chunk stays.
        file.set_len(received).await.map_err(io)?;
        return Err(err);
    }
    file.set_len(range.end).await.map_err(io)?;
    file.sync_all().await.map_err(io)
}

/// Copies the body into `file`: exactly `expected` bytes, else 400.
async fn copy_exactly(mut body: Body, file: &mut tokio::fs::File, expected: u64) -> Result<(), EdsError> {
    let mut copied = 0u64;
    while let Some(frame) = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|err| {
            if crate::body::missed_deadline(&err) {
                EdsError::from(ApiError::new(Code::RequestTimeout))
            } else {
                bad("Could not read the chunk")
            }
        })?;
        let Ok(data) = frame.into_data() else { continue };
        copied += data.len() as u64;
        if copied > expected {
            return Err(bad(format!("The chunk holds more than the {expected} bytes its Content-Range says")));
        }
        file.write_all(&data).await.map_err(|err| internal("staging a chunk", &err))?;
    }
    if copied != expected {
        return Err(bad(format!("The chunk holds {copied} bytes, not the {expected} its Content-Range says")));
    }
    Ok(())
}

async fn hash(path: &std::path::Path) -> std::io::Result<String> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buffer).await?;
        if n == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buffer[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(text: &str) -> Result<ChunkRange, String> {
        let mut headers = HeaderMap::new();
        headers.insert("content-range", text.parse().unwrap());
        parse_range(&headers).map_err(|err| err.0.message.to_string())
    }

    #[test]
    fn content_range_is_start_exclusive_end_and_total() {
        assert_eq!(range("0-1024/7679"), Ok(ChunkRange { start: 0, end: 1024, total: 7679 }));
        assert_eq!(range("7168-7679/7679"), Ok(ChunkRange { start: 7168, end: 7679, total: 7679 }));
        for wrong in ["bytes 0-1023/7679", "0-0/10", "5-4/10", "0-11/10", "-1-5/10", "0-5", "a-b/c", "0-5/+10", ""] {
            assert!(range(wrong).is_err(), "{wrong:?}");
        }
    }
}
