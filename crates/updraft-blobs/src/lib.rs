//! The bytes of EDS files, behind [`BlobStore`]: written whole or not at all, read from any offset, removed with
//! their file. [`DirBlobStore`] keeps them in the data directory, the embedded default; [`S3BlobStore`] in a
//! bucket of S3-compatible object storage, for servers that share their files.
//!
//! Uploads are staged as local files first ([`BlobStore::staging`]): the API streams a request body into one
//! (never holding it in memory), checks it, then hands it over with [`BlobStore::put`]. A chunked upload keeps
//! its staged file between requests ([`BlobStore::upload_path`]).

use std::io;
use std::path::{Path, PathBuf};

use futures_util::future::BoxFuture;
use tokio::io::AsyncRead;

mod dir;
mod s3;
#[cfg(feature = "test-server")]
pub mod s3s_server;
mod staged;

pub use dir::DirBlobStore;
pub use s3::S3BlobStore;
pub use staged::StagedFile;
use staged::Staging;

/// Where a blob is: the file it belongs to (backend and file id) and which of its blobs (`original`, or an
/// image variant's name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobKey<'a> {
    pub backend: &'a str,
    pub file: &'a str,
    pub variant: &'a str,
}

impl BlobKey<'_> {
    /// Every part is a plain name: the key becomes a path or an object name.
    fn check(&self) -> io::Result<()> {
        let plain = [self.backend, self.file, self.variant].iter().all(|part| {
            !part.is_empty() && part.len() <= 64 && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        });
        if plain {
            Ok(())
        } else {
            Err(io::Error::new(io::ErrorKind::InvalidInput, "a blob key part is not a plain name"))
        }
    }
}

/// The variant name of a file's own bytes.
pub const ORIGINAL: &str = "original";

/// A blob opened for reading from an offset.
pub struct Opened {
    /// The whole blob's length.
    pub len: u64,
    pub reader: Box<dyn AsyncRead + Send + Unpin>,
}

pub trait BlobStore: Send + Sync {
    /// A new local file to stage an upload in, on the store's own file system, and its path. The caller removes
    /// it when it does not [`BlobStore::put`] it.
    fn staging(&self) -> BoxFuture<'_, io::Result<(StagedFile, PathBuf)>>;

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
