//! [`DirBlobStore`]: blobs as files in the data directory, the embedded default.

use std::io;
use std::path::{Path, PathBuf};

use futures_util::future::BoxFuture;
use tokio::io::AsyncSeekExt;

use crate::{BlobKey, BlobStore, ORIGINAL, Opened, StagedFile, Staging};

/// Blobs as files under a directory: `blobs/<backend>/<file>/<variant>`, staged in `staging/` on the same file
/// system, so that a staged file becomes a blob by a rename, after an fsync of the file and then of its
/// directory.
pub struct DirBlobStore {
    root: PathBuf,
    staging: Staging,
}

impl DirBlobStore {
    /// Opens (creating) the store under `root`, and clears what a crash left staged.
    pub fn open(root: &Path) -> io::Result<DirBlobStore> {
        std::fs::create_dir_all(root.join("blobs"))?;
        Ok(DirBlobStore { root: root.to_owned(), staging: Staging::open(root, true)? })
    }

    fn path(&self, key: BlobKey<'_>) -> io::Result<PathBuf> {
        key.check()?;
        Ok(self.root.join("blobs").join(key.backend).join(key.file).join(key.variant))
    }
}

impl BlobStore for DirBlobStore {
    fn staging(&self) -> BoxFuture<'_, io::Result<(StagedFile, PathBuf)>> {
        Box::pin(self.staging.new_file())
    }

    fn upload_path(&self, key: BlobKey<'_>) -> io::Result<PathBuf> {
        self.staging.upload_path(key)
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
            let key = BlobKey { backend, file, variant: ORIGINAL };
            let dir = self.path(key)?.parent().expect("a blob path has a directory").to_owned();
            match tokio::fs::remove_dir_all(&dir).await {
                Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
                _ => {}
            }
            self.staging.remove_upload(backend, file).await
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
        file.flush().await.unwrap();
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_large_upload_written_while_its_writeback_runs_is_stored_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirBlobStore::open(dir.path()).unwrap();
        let (mut file, path) = store.staging().await.unwrap();
        let bytes: Vec<u8> = (0..100 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
        // In the odd frame sizes a request body comes in, past several writeback starts.
        for piece in bytes.chunks(65_521) {
            file.write_all(piece).await.unwrap();
        }
        file.flush().await.unwrap();
        drop(file);
        store.put(KEY, &path).await.unwrap();
        let mut opened = store.open(KEY, 0).await.unwrap().unwrap();
        let mut read = Vec::new();
        opened.reader.read_to_end(&mut read).await.unwrap();
        assert!(read == bytes, "the blob is the bytes written, whole and in order");
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
