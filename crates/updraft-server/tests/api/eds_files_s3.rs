//! EDS files in S3-compatible storage, end to end: the real binary started with `--blob-store s3://…` and the
//! `AWS_*` variables, against a real `s3s-fs` server (`updraft_blobs::s3s_server`). Uploads of both kinds, variants, ranged downloads, and deletion reach the
//! bucket; a server whose bucket is unreachable refuses to start.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use updraft_blobs::s3s_server::{S3sServer, SECRET_KEY};

use crate::eds_files::{fetch, png, qt_multipart};
use crate::helpers::{BINARY_EMAIL, BINARY_PASSWORD, free_port, start_binary_with_env};

/// `s3s-fs` serving the bucket `files`.
struct Bucket(S3sServer);

impl Bucket {
    async fn start() -> Bucket {
        Bucket(S3sServer::start("files").await)
    }

    fn env(&self) -> [(&'static str, &str); 5] {
        self.0.settings()
    }

    /// The objects stored under `files/<prefix>/<backend>/<file>/`: their variant names.
    fn variants(&self, prefix: &str, backend: &str, file: &str) -> Vec<String> {
        let dir = self.0.root.path().join("files").join(prefix).join(backend).join(file);
        let mut names: Vec<String> = match std::fs::read_dir(dir) {
            Ok(entries) => entries.map(|it| it.unwrap().file_name().to_string_lossy().into_owned()).collect(),
            Err(_) => Vec::new(),
        };
        names.retain(|name| !name.starts_with('.'));
        names.sort();
        names
    }
}

/// The binary on the bucket, with one app; its development backend.
struct Server {
    _process: tokio::process::Child,
    base: String,
    backend: String,
    /// The schema calls' headers: the account's bearer token and the backend's master key.
    schema_auth: [(&'static str, String); 2],
    client: reqwest::Client,
    data: tempfile::TempDir,
}

impl Server {
    async fn start(bucket: &Bucket) -> Server {
        let data = tempfile::tempdir().unwrap();
        let port = free_port();
        let process =
            start_binary_with_env(data.path(), port, &["--blob-store", "s3://files/tenant-a"], &bucket.env()).await;
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let login = format!("grant_type=password&username={BINARY_EMAIL}&password={BINARY_PASSWORD}");
        let post = |path: &str, body: String, token: Option<&str>| {
            let request = client.post(format!("{base}{path}")).body(body);
            let request = if let Some(token) = token { request.bearer_auth(token) } else { request };
            async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
        };
        let token = post("/v1/account/auth/oauth2/token", login, None).await;
        let access = token["access_token"].as_str().unwrap();
        let app = post("/v1/account/apps", r#"{"name":"s3"}"#.into(), Some(access)).await;
        let dev = app["environments"].as_array().unwrap().iter().find(|e| e["name"] == "development").unwrap();
        let server = Server {
            _process: process,
            base,
            backend: dev["id"].as_str().unwrap().into(),
            schema_auth: [
                ("Authorization", format!("Bearer {access}")),
                ("Enginio-Backend-MasterKey", dev["masterKeys"][0]["key"].as_str().unwrap().into()),
            ],
            client,
            data,
        };
        let schema = json!({"name": "images", "properties": [{"name": "file", "type": "ref", "objectType": "files",
            "processors": [{"type": "image", "variants": {"thumbnail": {"crop": "20x20"}}}]}]});
        server.schema(&schema).await;
        server
    }

    async fn schema(&self, schema: &Value) {
        let auth = self.schema_auth.each_ref().map(|(name, value)| (*name, value.as_str()));
        let (status, body) =
            self.call(reqwest::Method::POST, "/v1/object_types", &auth, schema.to_string().into_bytes()).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let mut req =
            self.client.request(method, format!("{}{path}", self.base)).header("Enginio-Backend-Id", &self.backend);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let res = req.body(body).send().await.unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn object(&self) -> String {
        let (status, created) =
            self.call(reqwest::Method::POST, "/v1/objects/images", &[], br#"{"title":"logo"}"#.to_vec()).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created["id"].as_str().unwrap().to_owned()
    }

    async fn download(&self, file: &str, variant: &str, headers: &[(&str, &str)]) -> (StatusCode, Vec<u8>) {
        let path = format!("/v1/files/{file}/download_url?variant={variant}");
        let (status, url) = self.call(reqwest::Method::GET, &path, &[], Vec::new()).await;
        assert_eq!(status, StatusCode::OK, "{url}");
        let (status, _, bytes) = fetch(url["expiringUrl"].as_str().unwrap(), headers).await;
        (status, bytes)
    }

    /// The file once its variants are made.
    async fn settled(&self, file: &str) -> Value {
        for _ in 0..400 {
            let (_, shown) = self.call(reqwest::Method::GET, &format!("/v1/files/{file}"), &[], Vec::new()).await;
            if shown["variants"]["thumbnail"]["status"] != "processing" {
                return shown;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the thumbnail was not made");
    }

    fn staged(&self) -> usize {
        std::fs::read_dir(self.data.path().join("files/staging")).unwrap().count()
    }
    /// A chunked upload of `bytes` into `type`'s `file` property of `object`, in two chunks: the last answer.
    async fn chunked(&self, object_type: &str, object: &str, bytes: &[u8]) -> (String, StatusCode, Value) {
        let start = json!({"targetFileProperty": {"objectType": format!("objects.{object_type}"), "id": object,
            "propertyName": "file"}, "file": {"fileName": "big.bin"}});
        let json = [("Content-Type", "application/json")];
        let (status, started) =
            self.call(reqwest::Method::POST, "/v1/files", &json, start.to_string().into_bytes()).await;
        assert_eq!(status, StatusCode::CREATED, "{started}");
        let id = started["id"].as_str().unwrap().to_owned();
        let (total, half) = (bytes.len(), bytes.len() / 2);
        let chunk = format!("/v1/files/{id}/chunk");
        let range = format!("0-{half}/{total}");
        let (status, answer) =
            self.call(reqwest::Method::PUT, &chunk, &[("Content-Range", &range)], bytes[..half].to_vec()).await;
        assert_eq!((status, &answer["status"]), (StatusCode::OK, &json!("incomplete")), "{answer}");
        let range = format!("{half}-{total}/{total}");
        let (status, answer) =
            self.call(reqwest::Method::PUT, &chunk, &[("Content-Range", &range)], bytes[half..].to_vec()).await;
        (id, status, answer)
    }
}

async fn until(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..100 {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_and_its_thumbnail_live_in_the_bucket_until_their_object_goes() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let bucket = Bucket::start().await;
    let server = Server::start(&bucket).await;
    let object = server.object().await;
    let image = png(181, 54);
    let (content_type, body) = qt_multipart(&object, &image);
    let (status, file) =
        server.call(reqwest::Method::POST, "/v1/files", &[("Content-Type", &content_type)], body).await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    let id = file["id"].as_str().unwrap().to_owned();
    assert_eq!(server.settled(&id).await["variants"]["thumbnail"]["status"], "complete");
    assert_eq!(bucket.variants("tenant-a", &server.backend, &id), ["original", "thumbnail"]);
    assert!(!server.data.path().join("files/blobs").join(&server.backend).exists(), "nothing in the data dir");
    assert_eq!(server.staged(), 0);

    let (status, bytes) = server.download(&id, "original", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(bytes == image, "the original reads back from the bucket byte for byte");
    let (status, bytes) = server.download(&id, "original", &[("Range", "bytes=100-199")]).await;
    assert_eq!((status, bytes.as_slice()), (StatusCode::PARTIAL_CONTENT, &image[100..200]));
    let (status, bytes) = server.download(&id, "thumbnail", &[]).await;
    assert_eq!(status, StatusCode::OK);
    let thumbnail = image::load_from_memory(&bytes).unwrap();
    assert_eq!((thumbnail.width(), thumbnail.height()), (20, 20));

    let path = format!("/v1/objects/images/{object}");
    let (status, body) = server.call(reqwest::Method::DELETE, &path, &[], Vec::new()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let backend = server.backend.clone();
    assert!(until(|| bucket.variants("tenant-a", &backend, &id).is_empty()).await, "the image's blobs are gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_upload_larger_than_a_part_reaches_the_bucket_whole() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let bucket = Bucket::start().await;
    let server = Server::start(&bucket).await;
    let big: Vec<u8> = (0..20 * 1024 * 1024 + 777u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();

    // Not an image: the property's processors refuse it at the last chunk, and nothing reaches the bucket.
    let image = server.object().await;
    let (refused, status, answer) = server.chunked("images", &image, &big).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "not an image: {answer}");
    assert!(bucket.variants("tenant-a", &server.backend, &refused).is_empty());

    // A property without processors takes it.
    server
        .schema(&json!({"name": "docs", "properties": [{"name": "file", "type": "ref", "objectType": "files"}]}))
        .await;
    let (_, doc) = server.call(reqwest::Method::POST, "/v1/objects/docs", &[], b"{}".to_vec()).await;
    let doc = doc["id"].as_str().unwrap().to_owned();
    let (id, status, answer) = server.chunked("docs", &doc, &big).await;
    assert_eq!((status, &answer["status"]), (StatusCode::OK, &json!("complete")), "{answer}");
    assert_eq!(bucket.variants("tenant-a", &server.backend, &id), ["original"]);
    let (status, bytes) = server.download(&id, "original", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(bytes == big, "the chunked upload reads back from the bucket byte for byte");
    let from = 17 * 1024 * 1024;
    let (status, tail) = server.download(&id, "original", &[("Range", &format!("bytes={from}-"))]).await;
    assert!(status == StatusCode::PARTIAL_CONTENT && tail == big[from..], "a range inside the second part");

    let (status, body) =
        server.call(reqwest::Method::DELETE, &format!("/v1/objects/docs/{doc}"), &[], Vec::new()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let backend = server.backend.clone();
    assert!(until(|| bucket.variants("tenant-a", &backend, &id).is_empty()).await, "the upload's blob is gone");
    assert_eq!(server.staged(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_whose_bucket_cannot_be_reached_does_not_start() {
    let bucket = Bucket::start().await;
    let data = tempfile::tempdir().unwrap();
    for (store, secret) in [("s3://no-such-bucket", SECRET_KEY), ("s3://files", "a-wrong-secret")] {
        let env = bucket.env();
        let output = tokio::time::timeout(
            Duration::from_secs(30),
            tokio::process::Command::new(env!("CARGO_BIN_EXE_updraft"))
                .args(["serve", "--listen", &format!("127.0.0.1:{}", free_port()), "--blob-store", store])
                .arg("--data-dir")
                .arg(data.path())
                .envs(env.iter().filter(|(name, _)| *name != "AWS_SECRET_ACCESS_KEY").copied())
                .env("AWS_SECRET_ACCESS_KEY", secret)
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("the server stops by itself")
        .unwrap();
        assert!(!output.status.success(), "{store}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("reaching the blob store"), "{store}: {stderr}");
    }
}
