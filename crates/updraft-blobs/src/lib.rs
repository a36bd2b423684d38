//! The bytes of EDS files, behind [`BlobStore`]: written whole or not at all, read from any offset, removed with
//! their file. [`DirBlobStore`] keeps them in the data directory, the embedded default.
//!
//! Uploads are staged as local files first ([`BlobStore::staging`]): the API streams a request body into one
//! (never holding it in memory), checks it, then hands it over with [`BlobStore::put`]. A chunked upload keeps
//! its staged file between requests ([`BlobStore::upload_path`]).

use std::io;
use std::path::{Path, PathBuf};

use futures_util::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncSeekExt};

/// Where a blob is: the file it belongs to (backend and file id) and which of its blobs (`original`, or an
/// image variant's name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobKey<'a> {
    pub backend: &'a str,
    pub file: &'a str,
    pub variant: &'a str,
}

impl BlobKey<'_> {
    /// Every part is a plain name: the key becomes a path.
    fn is_plain(&self) -> bool {
        [self.backend, self.file, self.variant].iter().all(|part| {
            !part.is_empty() && part.len() <= 64 && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
    }
}

/// A blob opened for reading from an offset.
pub struct Opened {
    /// The whole blob's length.
    pub len: u64,
    pub reader: Box<dyn AsyncRead + Send + Unpin>,
}

pub trait BlobStore: Send + Sync {
    /// A new local file to stage an upload in, on the store's own file system, and its path. The caller removes
    /// it when it does not [`BlobStore::put`] it.
    fn staging(&self) -> BoxFuture<'_, io::Result<(tokio::fs::File, PathBuf)>>;

    /// Where a chunked upload of `key`'s file is staged between its requests.
    fn upload_path(&self, key: BlobKey<'_>) -> io::Result<PathBuf>;

    /// Stores the staged file `staged` (written whole) as `key`, durably: once this answers, a crash keeps it.
    /// The staged file is gone afterwards.
    fn put<'a>(&'a self, key: BlobKey<'a>, staged: &'a Path) -> BoxFuture<'a, io::Result<()>>;

    /// The blob from `offset`, or `None` when there is none.
    fn open<'a>(&'a self, key: BlobKey<'a>, offset: u64) -> BoxFuture<'a, io::Result<Option<Opened>>>;

    /// Removes every blob of a file (its original and variants) and its staged upload; nothing to remove is fine.
    fn remove_file<'a>(&'a self, backend: &'a str, file: &'a str) -> BoxFuture<'a, io::Result<()>>;
}

/// Blobs as files under a directory: `blobs/<backend>/<file>/<variant>`, staged in `staging/` on the same file
/// system, so that a staged file becomes a blob by a rename, after an fsync of the file and then of its
/// directory.
pub struct DirBlobStore {
    root: PathBuf,
}

impl DirBlobStore {
    /// Opens (creating) the store under `root`, and clears what a crash left staged.
    pub fn open(root: &Path) -> io::Result<DirBlobStore> {
        for dir in ["blobs", "staging", "uploads"] {
            std::fs::create_dir_all(root.join(dir))?;
        }
        // Staged files of requests that never finished: no one will put them now.
        for entry in std::fs::read_dir(root.join("staging"))? {
            let _ = std::fs::remove_file(entry?.path());
        }
        Ok(DirBlobStore { root: root.to_owned() })
    }

    fn path(&self, key: BlobKey<'_>) -> io::Result<PathBuf> {
        if !key.is_plain() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "a blob key part is not a plain name"));
        }
        Ok(self.root.join("blobs").join(key.backend).join(key.file).join(key.variant))
    }
}

impl BlobStore for DirBlobStore {
    fn staging(&self) -> BoxFuture<'_, io::Result<(tokio::fs::File, PathBuf)>> {
        Box::pin(async move {
            let name = format!("{}.tmp", hex::encode(rand::random::<[u8; 16]>()));
            let path = self.root.join("staging").join(name);
            let file = tokio::fs::OpenOptions::new().write(true).read(true).create_new(true).open(&path).await?;
            Ok((file, path))
        })
    }

    fn upload_path(&self, key: BlobKey<'_>) -> io::Result<PathBuf> {
        if !key.is_plain() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "a blob key part is not a plain name"));
        }
        Ok(self.root.join("uploads").join(format!("{}-{}.part", key.backend, key.file)))
    }

    fn put<'a>(&'a self, key: BlobKey<'a>, staged: &'a Path) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move {
            let target = self.path(key)?;
            let dir = target.parent().expect("a blob path has a directory").to_owned();
            let staged = staged.to_owned();
            tokio::task::spawn_blocking(move || {
                std::fs::File::open(&staged)?.sync_all()?;
                std::fs::create_dir_all(&dir)?;
                std::fs::rename(&staged, &target)?;
                // The rename is durable once the directory is.
                std::fs::File::open(&dir)?.sync_all()
            })
            .await
            .map_err(io::Error::other)?
        })
    }

    fn open<'a>(&'a self, key: BlobKey<'a>, offset: u64) -> BoxFuture<'a, io::Result<Option<Opened>>> {
        Box::pin(async move {
            let mut file = match tokio::fs::File::open(self.path(key)?).await {
                Ok(file) => file,
                Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(err) => return Err(err),
            };
            let len = file.metadata().await?.len();
            if offset > 0 {
                file.seek(io::SeekFrom::Start(offset.min(len))).await?;
            }
            Ok(Some(Opened { len, reader: Box::new(file) }))
        })
    }

    fn remove_file<'a>(&'a self, backend: &'a str, file: &'a str) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move {
            let key = BlobKey { backend, file, variant: "original" };
            let dir = self.path(key)?.parent().expect("a blob path has a directory").to_owned();
            let upload = self.upload_path(key)?;
            for result in [tokio::fs::remove_dir_all(&dir).await, tokio::fs::remove_file(&upload).await] {
                match result {
                    Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
                    _ => {}
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    const KEY: BlobKey<'static> = BlobKey { backend: "b1", file: "f1", variant: "original" };

    #[tokio::test]
    async fn a_staged_file_becomes_a_blob_read_from_any_offset_and_removed_with_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirBlobStore::open(dir.path()).unwrap();
        let (mut file, path) = store.staging().await.unwrap();
        file.write_all(b"hello, blobs").await.unwrap();
        drop(file);
        store.put(KEY, &path).await.unwrap();
        assert!(!path.exists(), "the staged file became the blob");
        let mut opened = store.open(KEY, 7).await.unwrap().unwrap();
        assert_eq!(opened.len, 12);
        let mut rest = String::new();
        opened.reader.read_to_string(&mut rest).await.unwrap();
        assert_eq!(rest, "blobs");
        store.remove_file("b1", "f1").await.unwrap();
        assert!(store.open(KEY, 0).await.unwrap().is_none());
        store.remove_file("b1", "f1").await.unwrap();
    }

    #[tokio::test]
    async fn keys_that_are_not_plain_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirBlobStore::open(dir.path()).unwrap();
        for key in [
            BlobKey { file: "..", ..KEY },
            BlobKey { variant: "a/b", ..KEY },
            BlobKey { backend: "", ..KEY },
            BlobKey { variant: "x\0", ..KEY },
        ] {
            assert!(store.open(key, 0).await.is_err(), "{key:?}");
            assert!(store.upload_path(key).is_err(), "{key:?}");
        }
    }

    #[tokio::test]
    async fn what_a_crash_left_staged_is_cleared_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirBlobStore::open(dir.path()).unwrap();
        let (_, path) = store.staging().await.unwrap();
        drop(store);
        DirBlobStore::open(dir.path()).unwrap();
        assert!(!path.exists());
    }
}
