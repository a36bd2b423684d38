//! [`S3BlobStore`] against a real S3-compatible server: `s3s-fs` ([`S3sServer`]).

use std::path::{Path, PathBuf};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use updraft_blobs::s3s_server::{S3sServer, SECRET_KEY};
use updraft_blobs::{BlobKey, BlobStore, S3BlobStore};

const KEY: BlobKey<'static> = BlobKey { backend: "b1", file: "f1", variant: "original" };

/// A running `s3s-fs` with one bucket, `blobs`.
struct S3Server(S3sServer);

impl S3Server {
    async fn start() -> S3Server {
        S3Server(S3sServer::start("blobs").await)
    }

    fn store(&self, url: &str, secret: &str, local: &Path) -> S3BlobStore {
        let lowercase = self.0.settings().map(|(name, value)| (name.to_ascii_lowercase(), value));
        let mut options: Vec<(&str, &str)> = lowercase.iter().map(|(name, value)| (name.as_str(), *value)).collect();
        options.retain(|(name, _)| *name != "aws_secret_access_key");
        options.push(("aws_secret_access_key", secret));
        S3BlobStore::open(url, &options, local).unwrap()
    }

    /// Every object the server holds, as paths under its root.
    fn objects(&self) -> Vec<String> {
        fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, root, out);
                } else if !path.file_name().unwrap().to_string_lossy().starts_with('.') {
                    // s3s-fs keeps its own metadata in dot files beside the objects.
                    out.push(path.strip_prefix(root).unwrap().to_string_lossy().into_owned());
                }
            }
        }
        let mut out = Vec::new();
        walk(self.0.root.path(), self.0.root.path(), &mut out);
        out.sort();
        out
    }
}

async fn stage(store: &S3BlobStore, bytes: &[u8]) -> PathBuf {
    let (mut file, path) = store.staging().await.unwrap();
    file.write_all(bytes).await.unwrap();
    file.flush().await.unwrap();
    path
}

async fn read_all(store: &S3BlobStore, key: BlobKey<'_>, offset: u64) -> (u64, Vec<u8>) {
    let mut opened = store.open(key, offset).await.unwrap().expect("the blob exists");
    let mut bytes = Vec::new();
    opened.reader.read_to_end(&mut bytes).await.unwrap();
    (opened.len, bytes)
}

#[tokio::test]
async fn small_and_multipart_blobs_round_trip_read_from_offsets_and_go_with_their_file() {
    let server = S3Server::start().await;
    let local = tempfile::tempdir().unwrap();
    let store = server.store("s3://blobs/some/prefix", SECRET_KEY, local.path());
    store.check().await.unwrap();

    let small = b"hello, bucket".to_vec();
    let path = stage(&store, &small).await;
    store.put(KEY, &path).await.unwrap();
    assert!(!path.exists(), "the staged file is gone once stored");
    assert_eq!(read_all(&store, KEY, 0).await, (13, small.clone()));
    assert_eq!(read_all(&store, KEY, 7).await, (13, b"bucket".to_vec()));
    assert_eq!(read_all(&store, KEY, 13).await, (13, Vec::new()), "an offset at the end reads nothing");

    // Larger than one part: sent as a multipart upload, in parts that are not all the same size.
    let large: Vec<u8> =
        (0..40 * 1024 * 1024 + 12_345u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let thumb = BlobKey { variant: "thumbnail", ..KEY };
    let path = stage(&store, &large).await;
    store.put(thumb, &path).await.unwrap();
    let (len, read) = read_all(&store, thumb, 0).await;
    assert_eq!(len, large.len() as u64);
    assert!(read == large, "the multipart blob reads back byte for byte");
    let offset = 17 * 1024 * 1024 + 3;
    let (_, tail) = read_all(&store, thumb, offset).await;
    assert!(tail == large[offset as usize..], "a read from inside the second part");

    let other = BlobKey { file: "f2", ..KEY };
    let path = stage(&store, b"another file").await;
    store.put(other, &path).await.unwrap();
    assert_eq!(
        server.objects(),
        ["blobs/some/prefix/b1/f1/original", "blobs/some/prefix/b1/f1/thumbnail", "blobs/some/prefix/b1/f2/original"]
    );

    store.remove_file("b1", "f1").await.unwrap();
    assert!(store.open(KEY, 0).await.unwrap().is_none());
    assert!(store.open(thumb, 5).await.unwrap().is_none());
    assert_eq!(server.objects(), ["blobs/some/prefix/b1/f2/original"], "only the other file's blob is left");
    store.remove_file("b1", "f1").await.unwrap();
    assert_eq!(read_all(&store, other, 0).await.1, b"another file");
}

#[tokio::test]
async fn a_chunked_upload_is_staged_locally_and_removed_with_its_file() {
    let server = S3Server::start().await;
    let local = tempfile::tempdir().unwrap();
    let store = server.store("s3://blobs", SECRET_KEY, local.path());
    let upload = store.upload_path(KEY).unwrap();
    assert!(upload.starts_with(local.path()));
    std::fs::write(&upload, b"first chunk").unwrap();
    store.remove_file("b1", "f1").await.unwrap();
    assert!(!upload.exists());
}

#[tokio::test]
async fn wrong_credentials_a_missing_bucket_and_bad_keys_are_errors() {
    let server = S3Server::start().await;
    let local = tempfile::tempdir().unwrap();
    assert!(server.store("s3://blobs", "not-the-secret", local.path()).check().await.is_err());
    assert!(server.store("s3://no-such-bucket", SECRET_KEY, local.path()).check().await.is_err());
    for url in ["blobs", "s3://", "file:///tmp/x"] {
        assert!(S3BlobStore::open(url, &[], local.path()).is_err(), "{url}");
    }
    let store = server.store("s3://blobs", SECRET_KEY, local.path());
    for key in [BlobKey { file: "..", ..KEY }, BlobKey { variant: "a/b", ..KEY }, BlobKey { backend: "", ..KEY }] {
        assert!(store.open(key, 0).await.is_err(), "{key:?}");
        let path = stage(&store, b"x").await;
        assert!(store.put(key, &path).await.is_err(), "{key:?}");
    }
    assert!(store.remove_file("..", "f1").await.is_err());
    assert!(server.objects().is_empty(), "nothing was stored under a bad key");
}

#[tokio::test]
async fn a_missing_blob_is_none() {
    let server = S3Server::start().await;
    let local = tempfile::tempdir().unwrap();
    let store = server.store("s3://blobs", SECRET_KEY, local.path());
    assert!(store.open(KEY, 0).await.unwrap().is_none());
    assert!(store.open(KEY, 10).await.unwrap().is_none());
}
