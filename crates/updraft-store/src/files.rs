//! EDS files: the rows that describe uploaded files. Their bytes live in a blob store the API holds; a row names
//! the object that owns the file, whose ACL is the file's.

use serde_json::Value;
use updraft_core::ids::ObjectId;

use crate::{Access, Author, BoxFuture, ObjectRef, StoreError};

/// How far an upload got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileStatus {
    /// A chunked upload began; no byte arrived.
    Empty,
    /// Chunks arrived up to [`FileRecord::received`].
    Incomplete,
    /// The bytes are stored and the owner's property refers to the file.
    Complete,
}

impl FileStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FileStatus::Empty => "empty",
            FileStatus::Incomplete => "incomplete",
            FileStatus::Complete => "complete",
        }
    }

    pub(crate) fn parse(text: &str) -> FileStatus {
        match text {
            "complete" => FileStatus::Complete,
            "incomplete" => FileStatus::Incomplete,
            _ => FileStatus::Empty,
        }
    }
}

/// A file as the store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct FileRecord {
    pub id: ObjectId,
    /// The object whose `property` refers to the file (once complete).
    pub owner: ObjectRef,
    pub property: String,
    pub file_name: String,
    pub content_type: Option<String>,
    /// The whole file's bytes: known once complete, or from the first chunk's total.
    pub size: Option<u64>,
    /// Bytes received so far by a chunked upload.
    pub received: u64,
    pub status: FileStatus,
    /// Hex SHA-256 of the bytes, once complete.
    pub sha256: Option<String>,
    /// `{"<variant>": {"status": …}}` for a property with image processors.
    pub variants: Option<Value>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// A new file: where it goes and what it is called.
#[derive(Debug, Clone)]
pub struct NewFile<'a> {
    pub id: ObjectId,
    pub owner: &'a ObjectRef,
    pub property: &'a str,
    pub file_name: &'a str,
    pub content_type: Option<&'a str>,
    pub variants: Option<Value>,
}

/// The bytes of a whole file, stored.
#[derive(Debug, Clone, Copy)]
pub struct StoredBytes<'a> {
    pub size: u64,
    pub sha256: &'a str,
}

/// The rows of files. Every call that names an owner checks the caller's permission on it in the same
/// transaction as its write: read to see a file, update to upload into one.
pub trait Files: Send + Sync {
    /// Whether the caller may upload into `owner`: `None` when it cannot see the object, `Forbidden` when it
    /// sees it without update. Checked before the bytes are accepted, and again when they are attached.
    fn may_upload<'a>(
        &'a self,
        backend: &'a str,
        owner: &'a ObjectRef,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<Option<()>, StoreError>>;

    /// Records a complete file whose bytes are stored, and points its owner's property at it, in one transaction
    /// (an update of the owner, with its change). Answers the file and the owner's new document.
    fn attach_file<'a>(
        &'a self,
        backend: &'a str,
        file: NewFile<'a>,
        bytes: StoredBytes<'a>,
        author: Author<'a>,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<Option<(FileRecord, Value)>, StoreError>>;

    /// Records the start of a chunked upload (`empty`).
    fn begin_file<'a>(
        &'a self,
        backend: &'a str,
        file: NewFile<'a>,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<Option<FileRecord>, StoreError>>;

    /// Records that a chunked upload now holds `received` of `total` bytes, if it held `from` (a compare and set,
    /// so that two writers of one file cannot both win).
    fn record_chunk<'a>(
        &'a self,
        backend: &'a str,
        id: ObjectId,
        from: u64,
        received: u64,
        total: u64,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Completes a chunked upload whose bytes are now stored: as [`Files::attach_file`] for a file already
    /// recorded.
    fn complete_file<'a>(
        &'a self,
        backend: &'a str,
        id: ObjectId,
        bytes: StoredBytes<'a>,
        author: Author<'a>,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<Option<(FileRecord, Value)>, StoreError>>;

    /// The file, when the caller may read its owner (`upload`: update it too; `Forbidden` when it may only
    /// read it).
    fn file<'a>(
        &'a self,
        backend: &'a str,
        id: ObjectId,
        upload: bool,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<Option<FileRecord>, StoreError>>;

    /// The complete files among `ids` whose owners the caller may read, in no particular order (`include`).
    fn files<'a>(
        &'a self,
        backend: &'a str,
        ids: &'a [ObjectId],
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<Vec<FileRecord>, StoreError>>;

    /// Sets the status of a variant of a complete file (image processing).
    fn set_variant_status<'a>(
        &'a self,
        backend: &'a str,
        id: ObjectId,
        variant: &'a str,
        status: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Files whose rows went but whose bytes may still be stored: `(backend, id)`, oldest first.
    fn trashed_files(&self, limit: u32) -> BoxFuture<'_, Result<Vec<(String, ObjectId)>, StoreError>>;

    /// Complete files with a variant still `processing`: `(backend, id)`. After a restart, those whose render
    /// was cut off.
    fn unrendered_files(&self, limit: u32) -> BoxFuture<'_, Result<Vec<(String, ObjectId)>, StoreError>>;

    /// Moves uploads begun and not finished (`empty` or `incomplete`) whose last chunk came before
    /// `untouched_since_ms` to the trash, at most `limit` of them; answers how many. A chunk that comes for one
    /// afterwards finds no file.
    fn expire_uploads(&self, untouched_since_ms: i64, limit: u32) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// Forgets a trashed file once its bytes are gone.
    fn forget_trashed<'a>(&'a self, backend: &'a str, id: ObjectId) -> BoxFuture<'a, Result<(), StoreError>>;
}
