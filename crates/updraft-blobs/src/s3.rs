//! [`S3BlobStore`]: blobs as objects in a bucket of S3-compatible storage, through `object_store`, for servers
//! that share their files. Uploads are still staged on local disk first (the API checks a body whole before it
//! is stored), then sent in parts; reads stream ranged GETs.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::BytesMut;
use futures_util::future::BoxFuture;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use tokio::io::AsyncReadExt;

use crate::{BlobKey, BlobStore, Opened, StagedFile, Staging};

/// Blobs up to this size go in one PUT; larger ones as a multipart upload of parts this size.
const PART_BYTES: usize = 16 * 1024 * 1024;
/// Parts in flight at once: the memory an upload holds is about this many parts.
const PARTS_IN_FLIGHT: usize = 4;

/// `object_store`'s name of the per-request timeout (`AWS_TIMEOUT` sets it; 10 minutes here by default).
const TIMEOUT: &str = "aws_timeout";

/// Blobs as `<prefix>/<backend>/<file>/<variant>` in one bucket. Credentials, region and endpoint come from the
/// usual `AWS_*` variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT` and
/// `AWS_ALLOW_HTTP` for a server that is not AWS).
pub struct S3BlobStore {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    staging: Staging,
}

impl S3BlobStore {
    /// The store at `url` (`s3://bucket` or `s3://bucket/prefix`), staging under the local directory `local`.
    /// `options` (`object_store`'s names, such as `aws_endpoint`) win over the environment. Nothing is sent yet:
    /// [`S3BlobStore::check`] does.
    pub fn open(url: &str, options: &[(&str, &str)], local: &Path) -> io::Result<S3BlobStore> {
        let bad = |why: String| io::Error::new(io::ErrorKind::InvalidInput, format!("blob store {url:?}: {why}"));
        let rest = url.strip_prefix("s3://").ok_or_else(|| bad("expected s3://bucket[/prefix]".into()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("no bucket".into()));
        }
        let prefix = ObjectPath::parse(prefix.trim_end_matches('/')).map_err(|err| bad(err.to_string()))?;
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        if std::env::var_os("AWS_TIMEOUT").is_none() {
            // A download streams for as long as its client reads. object_store's default, 30 s for a whole request
            // body included, would cut a slow client's download (after its few retries from where it stopped).
            builder =
                builder.with_config(TIMEOUT.parse().map_err(|err: object_store::Error| bad(err.to_string()))?, "10m");
        }
        for (key, value) in options {
            builder =
                builder.with_config(key.parse().map_err(|err: object_store::Error| bad(err.to_string()))?, *value);
        }
        let store = builder.build().map_err(|err| bad(err.to_string()))?;
        Ok(S3BlobStore { store: Arc::new(store), prefix, staging: Staging::open(local, false)? })
    }

    /// Lists the prefix once, so that a wrong endpoint, bucket or credential fails at start rather than at the
    /// first upload.
    pub async fn check(&self) -> io::Result<()> {
        self.store.list_with_delimiter(Some(&self.prefix)).await.map(drop).map_err(io::Error::from)
    }

    fn file_path(&self, backend: &str, file: &str) -> ObjectPath {
        self.prefix.clone().join(backend).join(file)
    }

    fn path(&self, key: BlobKey<'_>) -> io::Result<ObjectPath> {
        key.check()?;
        Ok(self.file_path(key.backend, key.file).join(key.variant))
    }

    async fn send(&self, target: &ObjectPath, staged: &Path) -> io::Result<()> {
        let mut file = tokio::fs::File::open(staged).await?;
        let len = file.metadata().await?.len();
        if len <= PART_BYTES as u64 {
            let mut bytes = Vec::with_capacity(len as usize);
            file.read_to_end(&mut bytes).await?;
            self.store.put(target, PutPayload::from(bytes)).await?;
            return Ok(());
        }
        let mut upload = WriteMultipart::new_with_chunk_size(self.store.put_multipart(target).await?, PART_BYTES);
        let sent = async {
            loop {
                upload.wait_for_capacity(PARTS_IN_FLIGHT).await?;
                let mut part = BytesMut::with_capacity(PART_BYTES);
                while part.len() < PART_BYTES {
                    if file.read_buf(&mut part).await? == 0 {
                        break;
                    }
                }
                if part.is_empty() {
                    return Ok::<_, io::Error>(());
                }
                upload.put(part.freeze());
            }
        }
        .await;
        match sent {
            Ok(()) => upload.finish().await.map(drop).map_err(io::Error::from),
            Err(err) => {
                // An abandoned multipart upload keeps its parts (and their cost) until it is aborted.
                let _ = upload.abort().await;
                Err(err)
            }
        }
    }
}

impl BlobStore for S3BlobStore {
    fn staging(&self) -> BoxFuture<'_, io::Result<(StagedFile, PathBuf)>> {
        Box::pin(self.staging.new_file())
    }

    fn upload_path(&self, key: BlobKey<'_>) -> io::Result<PathBuf> {
        self.staging.upload_path(key)
    }

    fn put<'a>(&'a self, key: BlobKey<'a>, staged: &'a Path) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move {
            let target = self.path(key)?;
            // S3 answers a PUT once the object is stored durably.
            self.send(&target, staged).await?;
            tokio::fs::remove_file(staged).await
        })
    }

    fn open<'a>(&'a self, key: BlobKey<'a>, offset: u64) -> BoxFuture<'a, io::Result<Option<Opened>>> {
        Box::pin(async move {
            let path = self.path(key)?;
            let range = (offset > 0).then_some(GetRange::Offset(offset));
            let got = match self.store.get_opts(&path, GetOptions { range, ..GetOptions::default() }).await {
                Ok(got) => got,
                Err(object_store::Error::NotFound { .. }) => return Ok(None),
                // A range at or past the end is refused by S3; the blob is then read as empty from there.
                Err(err) if offset > 0 => match self.store.head(&path).await {
                    Ok(meta) if meta.size <= offset => {
                        return Ok(Some(Opened { len: meta.size, reader: Box::new(tokio::io::empty()) }));
                    }
                    Err(object_store::Error::NotFound { .. }) => return Ok(None),
                    _ => return Err(err.into()),
                },
                Err(err) => return Err(err.into()),
            };
            let len = got.meta.size;
            let stream = got.into_stream().map_err(io::Error::from);
            Ok(Some(Opened { len, reader: Box::new(tokio_util::io::StreamReader::new(stream)) }))
        })
    }

    fn remove_file<'a>(&'a self, backend: &'a str, file: &'a str) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move {
            BlobKey { backend, file, variant: crate::ORIGINAL }.check()?;
            let listed = self.store.list(Some(&self.file_path(backend, file))).map_ok(|meta| meta.location).boxed();
            let mut deleted = self.store.delete_stream(listed);
            while let Some(result) = deleted.next().await {
                match result {
                    Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(err) => return Err(err.into()),
                }
            }
            self.staging.remove_upload(backend, file).await
        })
    }
}
