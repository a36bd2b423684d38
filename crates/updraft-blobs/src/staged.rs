//! Upload bytes on local disk before a store takes them: [`Staging`]'s directories, and [`StagedFile`], which
//! starts the disk's writeback of a large upload while the rest of it is still arriving.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncWrite, BufWriter};
use tokio::task::JoinHandle;

use crate::{BlobKey, ORIGINAL};

/// Bytes gathered before one write to the file: fewer trips to the blocking pool than one per body frame.
const WRITE_BYTES: usize = 256 * 1024;
/// Bytes written between two starts of the writeback.
const WRITEBACK_BYTES: u64 = 32 * 1024 * 1024;

/// A staged upload being written (flush it before handing it to [`crate::BlobStore::put`]).
///
/// Where the blob will live on this disk, every [`WRITEBACK_BYTES`] an `fdatasync` of what is written so far runs
/// on the blocking pool while the next bytes arrive. The fsync that makes the blob durable then has only the tail
/// left, so a large upload takes about as long as the disk needs to write it, not that plus the network's time.
pub struct StagedFile {
    writer: BufWriter<tokio::fs::File>,
    writeback: Option<Writeback>,
}

struct Writeback {
    file: Arc<std::fs::File>,
    unsynced: u64,
    running: Option<JoinHandle<io::Result<()>>>,
}

impl Writeback {
    fn wrote(&mut self, bytes: usize) {
        self.unsynced += bytes as u64;
        if self.unsynced < WRITEBACK_BYTES || self.running.as_ref().is_some_and(|it| !it.is_finished()) {
            return;
        }
        self.unsynced = 0;
        let file = self.file.clone();
        // Its result does not matter: the fsync of `put` is the one that answers for durability.
        self.running = Some(tokio::task::spawn_blocking(move || file.sync_data()));
    }
}

impl AsyncWrite for StagedFile {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = ready!(Pin::new(&mut this.writer).poll_write(cx, buf))?;
        if let Some(writeback) = &mut this.writeback {
            writeback.wrote(written);
        }
        Poll::Ready(Ok(written))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().writer).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().writer).poll_shutdown(cx)
    }
}

/// Upload bytes on local disk before they are handed to a store: `staging/` holds one request's body, `uploads/`
/// a chunked upload between its requests. Both live under the store's local root.
pub(crate) struct Staging {
    root: PathBuf,
    /// Whether staged files start their writeback as they grow: only where they become blobs on this disk.
    writeback: bool,
}

impl Staging {
    /// Creates the directories, and clears what a crash left staged: no one will put those files now.
    pub(crate) fn open(root: &Path, writeback: bool) -> io::Result<Staging> {
        for dir in ["staging", "uploads"] {
            std::fs::create_dir_all(root.join(dir))?;
        }
        for entry in std::fs::read_dir(root.join("staging"))? {
            let _ = std::fs::remove_file(entry?.path());
        }
        Ok(Staging { root: root.to_owned(), writeback })
    }

    pub(crate) async fn new_file(&self) -> io::Result<(StagedFile, PathBuf)> {
        let name = format!("{}.tmp", hex::encode(rand::random::<[u8; 16]>()));
        let path = self.root.join("staging").join(name);
        let file = tokio::fs::OpenOptions::new().write(true).read(true).create_new(true).open(&path).await?;
        let writeback = match self.writeback {
            true => {
                Some(Writeback { file: Arc::new(file.try_clone().await?.into_std().await), unsynced: 0, running: None })
            }
            false => None,
        };
        Ok((StagedFile { writer: BufWriter::with_capacity(WRITE_BYTES, file), writeback }, path))
    }

    pub(crate) fn upload_path(&self, key: BlobKey<'_>) -> io::Result<PathBuf> {
        key.check()?;
        Ok(self.root.join("uploads").join(format!("{}-{}.part", key.backend, key.file)))
    }

    /// Removes a file's unfinished chunked upload; none is fine.
    pub(crate) async fn remove_upload(&self, backend: &str, file: &str) -> io::Result<()> {
        let path = self.upload_path(BlobKey { backend, file, variant: ORIGINAL })?;
        match tokio::fs::remove_file(&path).await {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
            _ => Ok(()),
        }
    }
}
