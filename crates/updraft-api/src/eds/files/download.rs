//! `GET /v1/files/{id}/download_url[?variant=…]` answers `{"expiringUrl","expiresAt"}`; that URL
//! (`/v1/files/{id}/download?backend=…&variant=…&expires=…&signature=…`) serves the bytes to anyone holding it,
//! with no header at all (QtEnginio fetches it with a bare request), until it expires (then 410). The signature
//! is an HMAC-SHA256 of backend, file, variant and expiry under the backend's instance secret: a changed part is
//! 403. One `Range` (`bytes=a-b`, `a-`, `-n`) is served as 206.
//!
//! The bytes are someone's upload served from this API's origin, so the answer cannot run as a page here: a
//! sandboxing `Content-Security-Policy`, `nosniff`, and `attachment` for anything but images and plain text.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::io::AsyncReadExt;
use updraft_blobs::{BlobKey, ORIGINAL};
use updraft_core::ids::ObjectId;
use updraft_store::{Access, FileRecord, FileStatus};
use utoipa::ToSchema;

use super::upload::internal;
use super::{file_id, not_found, plain};
use crate::ApiState;
use crate::eds::DataRequest;
use crate::error::{ApiError, Code, EdsError};
use crate::openapi::{EdsErrors, tag};

/// A download URL.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct DownloadUrl {
    /// When the URL stops working (then 410).
    expires_at: String,
    /// The absolute URL, naming this server as the client reached it; it needs no credentials.
    expiring_url: String,
}

/// A URL that downloads a complete file (or one of its image variants) without credentials, until it expires.
///
/// For a caller that may read the object that owns the file. The URL is signed with the backend's instance
/// secret (rotating the secret revokes every URL), works for an hour unless the server is set otherwise, and is
/// 403 with any part changed.
#[utoipa::path(get, path = "/v1/files/{id}/download_url", tag = tag::FILES,
    security(("backendId" = []), ("backendId" = [], "userToken" = []), ("backendId" = [], "instanceSecret" = [])),
    params(("id" = String, Path, description = "The file's id."),
        ("variant" = Option<String>, Query, description = "An image variant, once `complete`; the original if not \
            given.")),
    responses((status = 200, body = DownloadUrl)))]
pub(super) async fn url(
    State(state): State<ApiState>,
    request: DataRequest,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    parts: Parts,
) -> Result<Response, EdsError> {
    let id = file_id(&id)?;
    let file = state.files.file(&request.backend.id, id, false, request.access()).await?;
    let file = file.filter(|it| it.status == FileStatus::Complete).ok_or_else(not_found)?;
    let variant = params.get("variant").map_or(ORIGINAL, String::as_str);
    if variant != ORIGINAL && !has_variant(&file, variant) {
        return Err(ApiError::with_message(Code::NotFound, format!("The file has no variant {variant:?}")).into());
    }
    let expires = SystemTime::now() + state.file_settings.url_lifetime;
    let expires_secs = expires.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let backend = &request.backend;
    let signature = sign(&backend.secret, &backend.id, id, variant, expires_secs);
    let url = format!(
        "{}/v1/files/{id}/download?backend={}&variant={variant}&expires={expires_secs}&signature={signature}",
        state.http_origin(&parts),
        backend.id
    );
    let expires_at = updraft_core::timestamp::format(UNIX_EPOCH + Duration::from_secs(expires_secs));
    Ok(Json(DownloadUrl { expires_at, expiring_url: url }).into_response())
}

/// Downloads a file's bytes, whole or one range: the URL `download_url` answers, with no credentials.
///
/// Served with the file's `Content-Type` (a variant is PNG), its SHA-256 as `ETag`, and, since the bytes are
/// someone's upload, `Content-Security-Policy: default-src 'none'; sandbox`, `X-Content-Type-Options: nosniff`
/// and `Content-Disposition: attachment` unless it is an image (not SVG) or plain text. One `Range`
/// (`bytes=a-b`, `bytes=a-`, `bytes=-n`) is served as 206; several ranges get the whole file.
#[utoipa::path(get, path = "/v1/files/{id}/download", tag = tag::FILES, security(()),
    params(("id" = String, Path, description = "The file's id."),
        ("backend" = String, Query, description = "The backend's id."),
        ("variant" = String, Query, description = "`original`, or an image variant."),
        ("expires" = u64, Query, description = "When the URL expires, in Unix seconds."),
        ("signature" = String, Query, description = "HMAC-SHA256 of the rest, keyed with the instance secret."),
        ("Range" = Option<String>, Header, description = "One range of bytes: `bytes=a-b`, `bytes=a-` or \
            `bytes=-n`."),
        ("If-Range" = Option<String>, Header, description = "An `ETag`: the range only if the file is still that \
            one, else the whole file.")),
    responses(
        (status = 200, description = "The bytes, with the file's own `Content-Type`.",
            content_type = "application/octet-stream", body = inline(super::Bytes),
            headers(("ETag" = String, description = "The SHA-256 of the file, quoted."),
                ("Content-Disposition" = String, description = "`inline` or `attachment`, with the file's name."))),
        (status = 206, description = "The range asked for.", content_type = "application/octet-stream",
            body = inline(super::Bytes),
            headers(("Content-Range" = String, description = "`bytes <first>-<last>/<size>`."))),
        (status = 410, description = "The URL has expired.", body = EdsErrors),
        (status = 416, description = "The range starts past the end of the file.", body = EdsErrors)))]
pub(super) async fn download(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, EdsError> {
    let id = file_id(&id)?;
    let param = |name: &str| params.get(name).map(String::as_str).unwrap_or("");
    let (backend_id, variant, expires, signature) =
        (param("backend"), param("variant"), param("expires"), param("signature"));
    let forged = || EdsError::from(ApiError::with_message(Code::AccessDenied, "The URL's signature does not hold"));
    if !plain(backend_id) || !plain(variant) {
        return Err(forged());
    }
    let backend = state.tenants.backend(backend_id).await?.ok_or_else(forged)?;
    let expires_secs: u64 = expires.parse().map_err(|_| forged())?;
    if !verify(&backend.secret, &backend.id, id, variant, expires_secs, signature) {
        return Err(forged());
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    if now >= expires_secs {
        return Err(ApiError::new(Code::Gone).into());
    }
    let file = state.files.file(&backend.id, id, false, Access::Everything).await?;
    let file = file.filter(|it| it.status == FileStatus::Complete).ok_or_else(not_found)?;
    if variant != ORIGINAL && !has_variant(&file, variant) {
        return Err(not_found().into());
    }
    let id_text = id.to_string();
    let key = BlobKey { backend: &backend.id, file: &id_text, variant };
    let len = match variant {
        ORIGINAL => file.size.unwrap_or(0),
        _ => state.blobs.open(key, 0).await.map_err(|err| internal("opening a file", &err))?.map_or(0, |it| it.len),
    };
    let etag =
        format!("\"{}{}\"", file.sha256.as_deref().unwrap_or(""), if variant == ORIGINAL { "" } else { variant });
    let wanted = requested_range(&headers, &etag, len)?;
    let (start, count) = wanted.unwrap_or((0, len));
    let opened = state.blobs.open(key, start).await.map_err(|err| internal("opening a file", &err))?;
    let opened = opened.ok_or_else(not_found)?;
    let stream = tokio_util::io::ReaderStream::with_capacity(opened.reader.take(count), 256 * 1024);
    let mut response = Response::new(Body::from_stream(stream));
    let out = response.headers_mut();
    let content_type = match variant {
        ORIGINAL => file.content_type.clone().unwrap_or_else(|| "application/octet-stream".into()),
        _ => "image/png".into(),
    };
    let inline = (content_type.starts_with("image/") && !content_type.contains("svg")) || content_type == "text/plain";
    out.insert(header::CONTENT_TYPE, header_value(&content_type, "application/octet-stream"));
    out.insert(header::CONTENT_LENGTH, count.into());
    out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    out.insert(header::ETAG, header_value(&etag, "\"\""));
    out.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    out.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; sandbox"));
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-transform"));
    out.insert(header::CONTENT_DISPOSITION, disposition(&file.file_name, inline));
    if let Some((start, count)) = wanted {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        let range = format!("bytes {start}-{}/{len}", start + count - 1);
        response.headers_mut().insert(header::CONTENT_RANGE, header_value(&range, ""));
    }
    Ok(response)
}

fn has_variant(file: &FileRecord, variant: &str) -> bool {
    file.variants.as_ref().and_then(|it| it.get(variant)).and_then(|it| it.get("status")).and_then(|it| it.as_str())
        == Some("complete")
}

/// The one range a `Range` header asks for, as (start, length); `None` for the whole file (no header, a header
/// this does not serve, or an `If-Range` for another version); 416 for a range outside the file.
fn requested_range(headers: &HeaderMap, etag: &str, len: u64) -> Result<Option<(u64, u64)>, EdsError> {
    let Some(text) = headers.get(header::RANGE).and_then(|it| it.to_str().ok()) else { return Ok(None) };
    if headers.get(header::IF_RANGE).is_some_and(|it| it.as_bytes() != etag.as_bytes()) {
        return Ok(None);
    }
    let Some(spec) = text.trim().strip_prefix("bytes=") else { return Ok(None) };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.trim().split_once('-') else { return Ok(None) };
    let number = |text: &str| text.parse::<u64>().ok();
    let unsatisfiable =
        || EdsError::from(ApiError::with_message(Code::RangeNotSatisfiable, format!("The file holds {len} bytes")));
    let (start, end) = match (first.is_empty(), last.is_empty()) {
        // The last n bytes.
        (true, false) => {
            let Some(n) = number(last) else { return Ok(None) };
            if n == 0 || len == 0 {
                return Err(unsatisfiable());
            }
            (len.saturating_sub(n), len - 1)
        }
        (false, true) => match number(first) {
            Some(start) => (start, len.saturating_sub(1)),
            None => return Ok(None),
        },
        (false, false) => match (number(first), number(last)) {
            (Some(start), Some(end)) if start <= end => (start, end.min(len.saturating_sub(1))),
            _ => return Ok(None),
        },
        (true, true) => return Ok(None),
    };
    if start >= len {
        return Err(unsatisfiable());
    }
    Ok(Some((start, end - start + 1)))
}

fn sign(secret: &str, backend: &str, file: ObjectId, variant: &str, expires: u64) -> String {
    hex::encode(ring::hmac::sign(&key(secret), message(backend, file, variant, expires).as_bytes()))
}

fn verify(secret: &str, backend: &str, file: ObjectId, variant: &str, expires: u64, signature: &str) -> bool {
    let Ok(tag) = hex::decode(signature) else { return false };
    ring::hmac::verify(&key(secret), message(backend, file, variant, expires).as_bytes(), &tag).is_ok()
}

fn key(secret: &str) -> ring::hmac::Key {
    ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes())
}

/// What a download URL's signature covers; the first line keeps it from standing for another kind of message
/// signed with the same secret.
fn message(backend: &str, file: ObjectId, variant: &str, expires: u64) -> String {
    format!("updraft file download\n{backend}\n{file}\n{variant}\n{expires}")
}

fn header_value(text: &str, fallback: &'static str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(fallback))
}

/// `Content-Disposition` with the file's name, in ASCII and (RFC 6266) UTF-8.
fn disposition(name: &str, inline: bool) -> HeaderValue {
    let ascii: String =
        name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let kind = if inline { "inline" } else { "attachment" };
    header_value(&format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"), "attachment")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(value: &str, len: u64) -> Result<Option<(u64, u64)>, u16> {
        let mut headers = HeaderMap::new();
        headers.insert(header::RANGE, value.parse().unwrap());
        requested_range(&headers, "\"e\"", len).map_err(|err| match err.0.code {
            Code::RangeNotSatisfiable => 416,
            _ => 0,
        })
    }

    #[test]
    fn one_byte_range_is_served_and_others_are_the_whole_file() {
        assert_eq!(range("bytes=0-99", 1000), Ok(Some((0, 100))));
        assert_eq!(range("bytes=990-", 1000), Ok(Some((990, 10))));
        assert_eq!(range("bytes=-10", 1000), Ok(Some((990, 10))));
        assert_eq!(range("bytes=-5000", 1000), Ok(Some((0, 1000))));
        assert_eq!(range("bytes=900-5000", 1000), Ok(Some((900, 100))));
        assert_eq!(range("bytes=1000-", 1000), Err(416));
        assert_eq!(range("bytes=-0", 1000), Err(416));
        for whole in ["bytes=0-1,5-6", "items=0-5", "bytes=5-1", "bytes=x-", "bytes=-"] {
            assert_eq!(range(whole, 1000), Ok(None), "{whole}");
        }
    }

    #[test]
    fn a_signature_holds_for_exactly_what_it_signed() {
        let file = ObjectId::generate();
        let signature = sign("secret", "b1", file, ORIGINAL, 100);
        assert!(verify("secret", "b1", file, ORIGINAL, 100, &signature));
        assert!(!verify("secret", "b1", file, ORIGINAL, 101, &signature));
        assert!(!verify("secret", "b1", file, "thumbnail", 100, &signature));
        assert!(!verify("secret", "b2", file, ORIGINAL, 100, &signature));
        assert!(!verify("other", "b1", file, ORIGINAL, 100, &signature));
        assert!(!verify("secret", "b1", ObjectId::generate(), ORIGINAL, 100, &signature));
        assert!(!verify("secret", "b1", file, ORIGINAL, 100, "zz"));
    }
}
