//! EDS files: both upload forms as QtEnginio and the npm SDK send them, the file object, signed download URLs,
//! the ACL of the owning object, and files going with their object. Also what a dishonest or broken client sends.

use std::path::Path;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use updraft_server::config::ServeArgs;

use crate::eds::*;
use crate::helpers::*;

/// The bytes of the test file: 7,679 of them, like QtEnginio's test image, and not all text.
fn payload() -> Vec<u8> {
    (0..7679u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect()
}

pub(crate) struct Files {
    pub(crate) eds: Eds,
    pub(crate) dir: tempfile::TempDir,
}

pub(crate) async fn files_with(args: ServeArgs) -> Files {
    let dir = tempfile::tempdir().unwrap();
    let eds = eds_with(ServeArgs { data_dir: Some(dir.path().to_owned()), ..args }).await;
    Files { eds, dir }
}

impl Files {
    pub(crate) fn blob_dir(&self, file: &str) -> std::path::PathBuf {
        self.dir.path().join("files/blobs").join(&self.eds.backend).join(file)
    }

    fn staged(&self) -> Vec<std::path::PathBuf> {
        let mut left = Vec::new();
        for dir in ["files/staging"] {
            for entry in std::fs::read_dir(self.dir.path().join(dir)).unwrap() {
                left.push(entry.unwrap().path());
            }
        }
        left
    }

    /// A raw request to the backend, with the given headers and body.
    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
        token: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = self.eds.app.client.request(method, format!("{}{path}", self.eds.app.base));
        req = req.header("Enginio-Backend-Id", &self.eds.backend);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let res = req.body(body).send().await.unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub(crate) async fn object(&self, token: Option<&str>) -> String {
        let (status, created) =
            self.eds.call(Method::POST, "/v1/objects/images", token, Some(r#"{"title":"logo"}"#)).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created["id"].as_str().unwrap().to_owned()
    }
}

fn object_part(object: &str, property: &str, name: Option<&str>) -> String {
    let mut part =
        json!({"targetFileProperty": {"objectType": "objects.images", "id": object, "propertyName": property}});
    if let Some(name) = name {
        part["file"] = json!({"fileName": name});
    }
    part.to_string()
}

/// The body QHttpMultiPart writes for QtEnginio's upload: an `object` part, then the `file` part with the file's
/// name and MIME type. Its Content-Type quotes the boundary.
pub(crate) fn qt_multipart(object: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = "boundary_.oOo._MjQ0NTY3ODk=MTIzNDU2Nzg5MA==";
    let mut body = Vec::new();
    body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
    body.extend_from_slice(
        b"Content-Type: application/json\r\nContent-Disposition: form-data; name=\"object\"\r\n\r\n",
    );
    body.extend_from_slice(object_part(object, "file", Some("enginio.png")).as_bytes());
    body.extend_from_slice(format!("\r\n--{boundary}\r\n").as_bytes());
    body.extend_from_slice(
        b"Content-Type: image/png\r\nContent-Disposition: form-data; name=\"file\"; filename=\"enginio.png\"\r\n\r\n",
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary=\"{boundary}\""), body)
}

/// The npm SDK's upload: parts `object` (no file name in it), `filename`, then `file`. The SDK sends it with no
/// Content-Type at all (it sets Content-Length, so its HTTP library adds no multipart header): the answer's
/// first part is an empty Content-Type, which `upload` leaves out.
fn node_multipart(object: &str, name: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = "--------------------------515890814546601021194782";
    let mut body = Vec::new();
    let mut text_part = |name: &str, value: &str| {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
        );
    };
    text_part("object", &object_part(object, "file", None));
    text_part("filename", name);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
             Content-Type: text/plain\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (String::new(), body)
}

pub(crate) async fn upload(
    files: &Files,
    content_type: &str,
    body: Vec<u8>,
    token: Option<&str>,
) -> (StatusCode, Value) {
    let headers: &[(&str, &str)] = if content_type.is_empty() { &[] } else { &[("Content-Type", content_type)] };
    files.send(Method::POST, "/v1/files", headers, body, token).await
}

/// Fetches `url` as QtEnginio does: a bare request, no backend id, no credentials.
pub(crate) async fn fetch(url: &str, headers: &[(&str, &str)]) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let mut req = reqwest::Client::new().get(url);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let res = req.send().await.unwrap();
    (res.status(), res.headers().clone(), res.bytes().await.unwrap().to_vec())
}

async fn download_url(files: &Files, file: &str, token: Option<&str>) -> (StatusCode, Value) {
    files.eds.call(Method::GET, &format!("/v1/files/{file}/download_url"), token, None).await
}

async fn gone_from_disk(path: &Path) -> bool {
    for _ in 0..100 {
        if !path.exists() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn a_qt_multipart_upload_round_trips_byte_for_byte() {
    let files = files_with(open_args()).await;
    let object = files.object(None).await;
    let bytes = payload();
    let (content_type, body) = qt_multipart(&object, &bytes);
    let (status, file) = upload(&files, &content_type, body, None).await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    let id = file["id"].as_str().unwrap();
    assert_eq!(id.len(), 24);
    assert_eq!(file["objectType"], "files");
    assert_eq!(file["fileName"], "enginio.png");
    assert_eq!(file["fileSize"], 7679);
    assert_eq!(file["contentType"], "image/png");
    assert_eq!(file["status"], "complete");

    // The object's property is the ref, and `include` expands it.
    let (_, image) = files.eds.call(Method::GET, &format!("/v1/objects/images/{object}"), None, None).await;
    assert_eq!(image["file"], json!({"id": id, "objectType": "files"}));
    let path = format!("/v1/objects/images/{object}?include=%7B%22file%22%3A%7B%7D%7D");
    let (_, image) = files.eds.call(Method::GET, &path, None, None).await;
    assert_eq!(
        (image["file"]["fileName"].clone(), image["file"]["fileSize"].clone()),
        (json!("enginio.png"), json!(7679))
    );
    let (_, shown) = files.eds.call(Method::GET, &format!("/v1/files/{id}"), None, None).await;
    assert_eq!(shown, file);

    let (status, url) = download_url(&files, id, None).await;
    assert_eq!(status, StatusCode::OK, "{url}");
    assert!(url["expiresAt"].as_str().unwrap().ends_with('Z'), "{url}");
    let url = url["expiringUrl"].as_str().unwrap();
    assert!(url.starts_with(&files.eds.app.base), "{url}");
    let (status, headers, got) = fetch(url, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, bytes);
    assert_eq!(headers["content-type"], "image/png");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    // One range, as a player or a resumed download asks.
    let (status, headers, got) = fetch(url, &[("Range", "bytes=100-199")]).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(headers["content-range"], "bytes 100-199/7679");
    assert_eq!(got, bytes[100..200]);
    let (status, _, _) = fetch(url, &[("Range", "bytes=7679-")]).await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert!(files.staged().is_empty(), "{:?}", files.staged());
}

#[tokio::test]
async fn a_node_multipart_upload_takes_the_filename_part() {
    let files = files_with(open_args()).await;
    let object = files.object(None).await;
    let (content_type, body) = node_multipart(&object, "hello.txt", b"hello, files");
    let (status, file) = upload(&files, &content_type, body, None).await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    assert_eq!((file["fileName"].clone(), file["fileSize"].clone()), (json!("hello.txt"), json!(12)));
    let (_, url) = download_url(&files, file["id"].as_str().unwrap(), None).await;
    let (status, headers, got) = fetch(url["expiringUrl"].as_str().unwrap(), &[]).await;
    assert_eq!((status, got.as_slice()), (StatusCode::OK, &b"hello, files"[..]));
    assert!(headers["content-disposition"].to_str().unwrap().contains("hello.txt"));
}

async fn start_chunked(files: &Files, object: &str, token: Option<&str>) -> String {
    let body = object_part(object, "file", Some("chunked.bin"));
    let (status, file) =
        files.send(Method::POST, "/v1/files", &[("Content-Type", "application/json")], body.into(), token).await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    assert_eq!((file["objectType"].clone(), file["status"].clone()), (json!("files"), json!("empty")));
    file["id"].as_str().unwrap().to_owned()
}

async fn chunk(files: &Files, id: &str, range: &str, bytes: &[u8]) -> (StatusCode, Value) {
    let headers = [("Content-Type", "application/octet-stream"), ("Content-Range", range)];
    files.send(Method::PUT, &format!("/v1/files/{id}/chunk"), &headers, bytes.to_vec(), None).await
}

#[tokio::test]
async fn a_chunked_upload_takes_its_chunks_in_order_and_refuses_the_rest() {
    let files = files_with(open_args()).await;
    let object = files.object(None).await;
    let id = start_chunked(&files, &object, None).await;
    let bytes = payload();
    let (status, answer) = chunk(&files, &id, "0-1024/7679", &bytes[..1024]).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        (answer["id"].as_str(), answer["objectType"].clone(), answer["status"].clone()),
        (Some(id.as_str()), json!("files"), json!("incomplete"))
    );
    // A resend of a chunk already received is answered again, and changes nothing.
    let (status, again) = chunk(&files, &id, "0-1024/7679", &bytes[..1024]).await;
    assert_eq!((status, again["status"].clone()), (StatusCode::OK, json!("incomplete")));
    for (range, body, why) in [
        ("2048-3072/7679", &bytes[2048..3072], "a gap"),
        ("512-2048/7679", &bytes[512..2048], "an overlap"),
        ("1024-2048/9000", &bytes[1024..2048], "another total"),
        ("1024-8000/7679", &bytes[1024..2048], "past the end"),
        ("1024-2048/7679", &bytes[1024..2000], "a body shorter than its range"),
        ("1024-2048/7679", &bytes[1024..2100], "a body longer than its range"),
        ("1024-2048", &bytes[1024..2048], "no total"),
        ("bytes 1024-2047/7679", &bytes[1024..2048], "an inclusive range with a unit"),
    ] {
        let (status, body) = chunk(&files, &id, range, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}: {body}");
        assert_eds_error(&body, "BadRequest");
    }
    // Nothing of those stayed: the upload goes on from byte 1,024.
    let mut at = 1024;
    while at < bytes.len() {
        let end = (at + 1024).min(bytes.len());
        let (status, answer) = chunk(&files, &id, &format!("{at}-{end}/7679"), &bytes[at..end]).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let expected = if end == bytes.len() { "complete" } else { "incomplete" };
        assert_eq!(answer["status"], expected, "{answer}");
        at = end;
    }
    let (status, body) = chunk(&files, &id, "7168-7679/7679", &bytes[7168..]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a chunk to a complete file: {body}");
    let (_, image) = files.eds.call(Method::GET, &format!("/v1/objects/images/{object}"), None, None).await;
    assert_eq!(image["file"], json!({"id": id, "objectType": "files"}));
    let (_, url) = download_url(&files, &id, None).await;
    let (status, _, got) = fetch(url["expiringUrl"].as_str().unwrap(), &[]).await;
    assert_eq!((status, got == bytes), (StatusCode::OK, true));
}

#[tokio::test]
async fn an_abandoned_chunked_upload_expires_with_its_bytes_and_a_complete_file_stays() {
    let files = files_with(ServeArgs { upload_expiry_secs: Some(1), ..open_args() }).await;
    let object = files.object(None).await;
    let (content_type, body) = qt_multipart(&object, &payload());
    let (status, complete) = upload(&files, &content_type, body, None).await;
    assert_eq!(status, StatusCode::CREATED, "{complete}");
    let other = files.object(None).await;
    let id = start_chunked(&files, &other, None).await;
    let (status, answer) = chunk(&files, &id, "0-1024/7679", &payload()[..1024]).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let staged = files.dir.path().join("files/uploads").join(format!("{}-{id}.part", files.eds.backend));
    assert!(staged.exists());

    assert!(gone_from_disk(&staged).await, "the abandoned upload's bytes went");
    let (status, _) = files.eds.call(Method::GET, &format!("/v1/files/{id}"), None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = chunk(&files, &id, "1024-2048/7679", &payload()[1024..2048]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a late chunk finds no upload");
    let complete = complete["id"].as_str().unwrap();
    let (status, shown) = files.eds.call(Method::GET, &format!("/v1/files/{complete}"), None, None).await;
    assert_eq!((status, &shown["status"]), (StatusCode::OK, &json!("complete")), "{shown}");
    assert!(files.blob_dir(complete).join("original").exists());
    let (status, _) = files.eds.call(Method::GET, &format!("/v1/objects/images/{other}"), None, None).await;
    assert_eq!(status, StatusCode::OK, "the upload's object stays");
}

#[tokio::test]
async fn a_file_has_the_acl_of_its_object() {
    let files = Files { eds: eds_locked().await, dir: tempfile::tempdir().unwrap() };
    let (ann, _) = sign_up(&files.eds, "ann").await;
    let (bob, bob_id) = sign_up(&files.eds, "bob").await;
    let object = files.object(Some(&ann)).await;
    let (content_type, body) = node_multipart(&object, "secret.txt", b"for ann");
    // Bob cannot see ann's object: as if it did not exist. The anonymous caller is told to sign in.
    let (status, _) = upload(&files, &content_type, body.clone(), Some(&bob)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = upload(&files, &content_type, body.clone(), None).await;
    assert!(status == StatusCode::NOT_FOUND || status == StatusCode::UNAUTHORIZED, "{status}");
    let (status, file) = upload(&files, &content_type, body, Some(&ann)).await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    let id = file["id"].as_str().unwrap();
    for token in [Some(bob.as_str()), None] {
        let (status, _) = files.eds.call(Method::GET, &format!("/v1/files/{id}"), token, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{token:?}");
        let (status, _) = download_url(&files, id, token).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{token:?}");
        let (status, _) = chunk(&files, id, "0-1/1", b"x").await;
        assert!(status == StatusCode::NOT_FOUND || status == StatusCode::BAD_REQUEST, "{status}");
    }
    // Bob may read once ann lets him, but not upload into her object.
    let grant = json!({"read": [{"id": bob_id, "objectType": "users"}]}).to_string();
    let (status, body) =
        files.eds.call(Method::PUT, &format!("/v1/objects/images/{object}/access"), Some(&ann), Some(&grant)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = download_url(&files, id, Some(&bob)).await;
    assert_eq!(status, StatusCode::OK);
    let (content_type, body) = node_multipart(&object, "mine.txt", b"bob's");
    let (status, body) = upload(&files, &content_type, body, Some(&bob)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = files.eds.call(Method::GET, &format!("/v1/files/{id}"), Some(&files.eds.secret), None).await;
    assert_eq!(status, StatusCode::OK, "the instance secret sees every file");
}

#[tokio::test]
async fn a_download_url_is_refused_once_changed_or_expired() {
    let files = files_with(ServeArgs { file_url_lifetime_secs: Some(1), ..open_args() }).await;
    let object = files.object(None).await;
    let (content_type, body) = node_multipart(&object, "a.txt", b"abc");
    let (_, file) = upload(&files, &content_type, body, None).await;
    let (_, url) = download_url(&files, file["id"].as_str().unwrap(), None).await;
    let url = url["expiringUrl"].as_str().unwrap().to_owned();
    let (signature_at, expires_at) = (url.find("signature=").unwrap() + 10, url.find("expires=").unwrap() + 8);
    let mut tampered = url.clone().into_bytes();
    tampered[signature_at] = if tampered[signature_at] == b'0' { b'1' } else { b'0' };
    let mut later = url.clone().into_bytes();
    later[expires_at] = b'9';
    for changed in [tampered, later] {
        let (status, _, _) = fetch(&String::from_utf8(changed).unwrap(), &[]).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let other_variant = url.replace("variant=original", "variant=thumbnail");
    assert_eq!(fetch(&other_variant, &[]).await.0, StatusCode::FORBIDDEN);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, _, body) = fetch(&url, &[]).await;
    assert_eq!(status, StatusCode::GONE, "{}", String::from_utf8_lossy(&body));
}

#[tokio::test]
async fn files_go_with_their_object_and_when_replaced() {
    let files = files_with(open_args()).await;
    let object = files.object(None).await;
    let (content_type, body) = node_multipart(&object, "one.txt", b"one");
    let (_, first) = upload(&files, &content_type, body, None).await;
    let first = first["id"].as_str().unwrap().to_owned();
    assert!(files.blob_dir(&first).exists());
    let (content_type, body) = node_multipart(&object, "two.txt", b"two");
    let (_, second) = upload(&files, &content_type, body, None).await;
    let second = second["id"].as_str().unwrap().to_owned();
    assert!(gone_from_disk(&files.blob_dir(&first)).await, "the replaced file's bytes stayed");
    let (status, _) = files.eds.call(Method::GET, &format!("/v1/files/{first}"), None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A chunked upload begun, never finished, goes with the object too.
    let pending = start_chunked(&files, &object, None).await;
    assert_eq!(chunk(&files, &pending, "0-3/10", b"abc").await.0, StatusCode::OK);
    let (status, _) = files.eds.call(Method::DELETE, &format!("/v1/objects/images/{object}"), None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(gone_from_disk(&files.blob_dir(&second)).await, "the deleted object's file stayed");
    let upload_part = files.dir.path().join("files/uploads").join(format!("{}-{pending}.part", files.eds.backend));
    assert!(gone_from_disk(&upload_part).await, "the unfinished upload stayed");
    for id in [&second, &pending] {
        let (status, _) = files.eds.call(Method::GET, &format!("/v1/files/{id}"), None, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn broken_and_dishonest_uploads_are_refused_and_leave_nothing() {
    let files = files_with(ServeArgs { max_file_bytes: Some(10_000), ..open_args() }).await;
    let object = files.object(None).await;
    let bytes = payload();
    let (content_type, whole) = qt_multipart(&object, &bytes);
    let truncated = whole[..whole.len() - 40].to_vec();
    let (_, only_object) = {
        let boundary = "b";
        let body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"object\"\r\n\r\n{}\r\n--{boundary}--\r\n",
            object_part(&object, "file", Some("x.bin"))
        );
        ("", body.into_bytes())
    };
    let two_files = {
        let (_, body) = qt_multipart(&object, b"one");
        let text = String::from_utf8_lossy(&body).into_owned();
        let (head, tail) = text.rsplit_once("--boundary_").unwrap();
        let file_part = head
            [head.find("\r\n--boundary_.oOo._MjQ0NTY3ODk=MTIzNDU2Nzg5MA==\r\nContent-Type: image/png").unwrap()..]
            .to_owned();
        format!("{head}{file_part}--boundary_{tail}").into_bytes()
    };
    let named = |name: &str| {
        let (content_type, body) = node_multipart(&object, name, b"x");
        (content_type, body)
    };
    let long_name = "n".repeat(4096);
    let cases: Vec<(String, Vec<u8>, StatusCode, &str)> = vec![
        (content_type.clone(), truncated, StatusCode::BAD_REQUEST, "a truncated body"),
        ("multipart/form-data; boundary=b".into(), only_object, StatusCode::BAD_REQUEST, "no file part"),
        (content_type.clone(), two_files, StatusCode::BAD_REQUEST, "two files"),
        (named("../../etc/passwd").0, named("../../etc/passwd").1, StatusCode::BAD_REQUEST, "a path"),
        (named("a\0b").0, named("a\0b").1, StatusCode::BAD_REQUEST, "a NUL"),
        (named(&long_name).0, named(&long_name).1, StatusCode::BAD_REQUEST, "a 4 KiB name"),
        ("multipart/form-data".into(), whole.clone(), StatusCode::BAD_REQUEST, "no boundary"),
    ];
    for (content_type, body, expected, why) in cases {
        let (status, answer) = upload(&files, &content_type, body, None).await;
        assert_eq!(status, expected, "{why}: {answer}");
        assert!(answer["errors"][0]["message"].is_string(), "{why}: {answer}");
    }
    let big = vec![7u8; 20_000];
    let (content_type, body) = qt_multipart(&object, &big);
    let (status, answer) = upload(&files, &content_type, body, None).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    // An upload into an object that does not exist, or a property that is not one.
    let (content_type, body) = node_multipart("0123456789abcdef01234567", "x.txt", b"x");
    assert_eq!(upload(&files, &content_type, body, None).await.0, StatusCode::NOT_FOUND);
    let (_, image) = files.eds.call(Method::GET, &format!("/v1/objects/images/{object}"), None, None).await;
    assert!(image.get("file").is_none(), "nothing was attached: {image}");
    assert!(files.staged().is_empty(), "{:?}", files.staged());
    let blobs = files.dir.path().join("files/blobs");
    assert!(
        !blobs.join(&files.eds.backend).exists()
            || std::fs::read_dir(blobs.join(&files.eds.backend)).unwrap().next().is_none()
    );
}

/// A PNG of `width`×`height` with a gradient.
pub(crate) fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x * 255 / width) as u8, (y * 255 / height) as u8, 90])
    });
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
    bytes.into_inner()
}

/// A PNG signature and a valid IHDR chunk that claims `width`×`height`, and nothing after it.
fn png_header(width: u32, height: u32) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }
    let mut chunk = b"IHDR".to_vec();
    chunk.extend_from_slice(&width.to_be_bytes());
    chunk.extend_from_slice(&height.to_be_bytes());
    chunk.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend_from_slice(&13u32.to_be_bytes());
    bytes.extend_from_slice(&chunk);
    bytes.extend_from_slice(&crc32(&chunk).to_be_bytes());
    bytes
}

/// `images.file` declared with a 20×20 `thumbnail` variant, and a 181×54 PNG uploaded into a new object: the
/// object's id and the file once its thumbnail is no longer `processing`.
pub(crate) async fn thumbnailed_upload(files: &Files) -> (String, Value) {
    let schema = json!({"name": "images", "properties": [{"name": "file", "type": "ref", "objectType": "files",
        "processors": [{"type": "image", "variants": {"thumbnail": {"crop": "20x20"}}}]}]})
    .to_string();
    let (status, body) =
        files.eds.schema(Method::POST, "/v1/object_types", Some(&schema), Some(&files.eds.master_key)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let object = files.object(None).await;
    let (content_type, body) = qt_multipart(&object, &png(181, 54));
    let (status, file) = upload(files, &content_type, body, None).await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    let id = file["id"].as_str().unwrap();
    let mut shown = Value::Null;
    for _ in 0..400 {
        shown = files.eds.call(Method::GET, &format!("/v1/files/{id}"), None, None).await.1;
        if shown["variants"]["thumbnail"]["status"] != "processing" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (object, shown)
}

#[tokio::test]
async fn an_image_property_gets_its_thumbnail_and_takes_only_images() {
    let files = files_with(open_args()).await;
    let (object, shown) = thumbnailed_upload(&files).await;
    let id = shown["id"].as_str().unwrap();
    assert_eq!(shown["variants"]["thumbnail"]["status"], "complete", "{shown}");
    let (status, url) =
        files.eds.call(Method::GET, &format!("/v1/files/{id}/download_url?variant=thumbnail"), None, None).await;
    assert_eq!(status, StatusCode::OK, "{url}");
    let (status, headers, bytes) = fetch(url["expiringUrl"].as_str().unwrap(), &[]).await;
    assert_eq!((status, headers["content-type"].to_str().unwrap()), (StatusCode::OK, "image/png"));
    let thumbnail = image::load_from_memory(&bytes).unwrap();
    assert_eq!((thumbnail.width(), thumbnail.height()), (20, 20));
    let (status, _) =
        files.eds.call(Method::GET, &format!("/v1/files/{id}/download_url?variant=poster"), None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    for (bytes, why) in [(b"just text".to_vec(), "not an image"), (png_header(60_000, 60_000), "a 60000x60000 header")]
    {
        let (content_type, body) = qt_multipart(&object, &bytes);
        let (status, answer) = upload(&files, &content_type, body, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}: {answer}");
    }
    let (_, image) = files.eds.call(Method::GET, &format!("/v1/objects/images/{object}"), None, None).await;
    assert_eq!(image["file"]["id"], id, "the refused uploads changed nothing");
    assert!(files.staged().is_empty(), "{:?}", files.staged());
    let bad_schema = json!({"name": "images", "properties": [{"name": "file", "type": "ref",
        "processors": [{"type": "image", "variants": {"thumbnail": {"crop": "0x20"}}}]}]})
    .to_string();
    let (status, _) =
        files.eds.schema(Method::PUT, "/v1/object_types/images", Some(&bad_schema), Some(&files.eds.master_key)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
