//! The rows of EDS files ([`Files`]). Each write that names an owner checks the caller's permission on it in its
//! own transaction; the triggers of migrations 0059 and 0060 move a file to `file_trash` when its owner goes or
//! stops referring to it.

use serde_json::{Map, Value, json};
use updraft_core::ids::ObjectId;

use super::{SqliteStore, announce, changeable, now_ms, update_in};
use crate::files::{FileRecord, FileStatus, Files, NewFile, StoredBytes};
use crate::{Access, Author, BoxFuture, Collection, ObjectRef, Patch, Permission, StoreError};

const COLUMNS: &str = "id, owner_type, owner_id, property, file_name, content_type, size, received, status, sha256, \
                       variants, created_ms, updated_ms";

type Row = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<i64>,
    i64,
    String,
    Option<String>,
    Option<String>,
    i64,
    i64,
);

fn record(row: Row) -> Result<FileRecord, StoreError> {
    let (id, owner_type, owner_id, property, file_name, content_type, size, received, status, sha256, variants, c, u) =
        row;
    let corrupt = || StoreError::Database("a stored file row is malformed".into());
    Ok(FileRecord {
        id: ObjectId::parse(&id).ok_or_else(corrupt)?,
        owner: ObjectRef { object_type: owner_type, id: ObjectId::parse(&owner_id).ok_or_else(corrupt)? },
        property,
        file_name,
        content_type,
        size: size.map(|it| it.max(0) as u64),
        received: received.max(0) as u64,
        status: FileStatus::parse(&status),
        sha256,
        variants: variants.and_then(|it| serde_json::from_str(&it).ok()),
        created_ms: c,
        updated_ms: u,
    })
}

async fn row_of(
    conn: &mut sqlx::SqliteConnection,
    backend: &str,
    id: ObjectId,
) -> Result<Option<FileRecord>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM files WHERE backend = ? AND id = ?");
    let row: Option<Row> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(backend).bind(id.to_string()).fetch_optional(&mut *conn).await?;
    row.map(record).transpose()
}

/// The file, if the caller may read its owner (and update it, for `upload`).
async fn visible(
    conn: &mut sqlx::SqliteConnection,
    backend: &str,
    id: ObjectId,
    upload: bool,
    access: Access<'_>,
) -> Result<Option<FileRecord>, StoreError> {
    let Some(file) = row_of(conn, backend, id).await? else { return Ok(None) };
    let at = Collection { backend, object_type: &file.owner.object_type };
    let permission = if upload { Permission::Update } else { Permission::Read };
    Ok(changeable(conn, at, file.owner.id, permission, access).await?.map(|_| file))
}

/// Inserts the file's row if the caller may update its owner; false (nothing written) when it cannot see it.
async fn insert_owned(
    tx: &mut sqlx::SqliteConnection,
    backend: &str,
    file: &NewFile<'_>,
    status: FileStatus,
    bytes: Option<StoredBytes<'_>>,
    access: Access<'_>,
) -> Result<bool, StoreError> {
    let at = Collection { backend, object_type: &file.owner.object_type };
    if changeable(tx, at, file.owner.id, Permission::Update, access).await?.is_none() {
        return Ok(false);
    }
    let now = now_ms();
    sqlx::query(
        "INSERT INTO files (backend, id, owner_type, owner_id, property, file_name, content_type, size, received,
                            status, sha256, variants, created_ms, updated_ms)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(backend)
    .bind(file.id.to_string())
    .bind(&file.owner.object_type)
    .bind(file.owner.id.to_string())
    .bind(file.property)
    .bind(file.file_name)
    .bind(file.content_type)
    .bind(bytes.map(|it| it.size as i64))
    .bind(bytes.map_or(0, |it| it.size as i64))
    .bind(status.as_str())
    .bind(bytes.map(|it| it.sha256))
    .bind(file.variants.as_ref().map(Value::to_string))
    .bind(now)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(true)
}

/// Points the owner's property at the file: an update of the owner, with its change.
async fn refer(
    tx: &mut sqlx::SqliteConnection,
    backend: &str,
    file: &FileRecord,
    author: Author<'_>,
    access: Access<'_>,
) -> Result<Option<(Value, i64)>, StoreError> {
    let at = Collection { backend, object_type: &file.owner.object_type };
    let mut properties = Map::new();
    properties.insert(file.property.clone(), json!({"id": file.id.to_string(), "objectType": "files"}));
    update_in(tx, at, file.owner.id, Patch::Merge(properties), author, access).await
}

impl SqliteStore {
    /// Points the complete file's owner at it and commits; answers the file and the owner's document.
    async fn refer_and_commit(
        &self,
        mut tx: sqlx::Transaction<'_, sqlx::Sqlite>,
        backend: &str,
        id: ObjectId,
        author: Author<'_>,
        access: Access<'_>,
    ) -> Result<Option<(FileRecord, Value)>, StoreError> {
        let record = row_of(&mut tx, backend, id).await?.ok_or_else(vanished)?;
        let Some((owner, seq)) = refer(&mut tx, backend, &record, author, access).await? else { return Ok(None) };
        tx.commit().await?;
        announce(&self.committed, seq);
        Ok(Some((record, owner)))
    }
}

impl Files for SqliteStore {
    fn may_upload<'a>(
        &'a self,
        backend: &'a str,
        owner: &'a ObjectRef,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<Option<()>, StoreError>> {
        Box::pin(async move {
            let mut conn = self.readers.acquire().await?;
            let at = Collection { backend, object_type: &owner.object_type };
            Ok(changeable(&mut conn, at, owner.id, Permission::Update, access).await?.map(|_| ()))
        })
    }

    fn attach_file<'a>(
        &'a self,
        backend: &'a str,
        file: NewFile<'a>,
        bytes: StoredBytes<'a>,
        author: Author<'a>,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<Option<(FileRecord, Value)>, StoreError>> {
        Box::pin(async move {
            let mut tx = self.writer.begin().await?;
            if !insert_owned(&mut tx, backend, &file, FileStatus::Complete, Some(bytes), access).await? {
                return Ok(None);
            }
            self.refer_and_commit(tx, backend, file.id, author, access).await
        })
    }

    fn begin_file<'a>(
        &'a self,
        backend: &'a str,
        file: NewFile<'a>,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<Option<FileRecord>, StoreError>> {
        Box::pin(async move {
            let mut tx = self.writer.begin().await?;
            if !insert_owned(&mut tx, backend, &file, FileStatus::Empty, None, access).await? {
                return Ok(None);
            }
            let record = row_of(&mut tx, backend, file.id).await?.ok_or_else(vanished)?;
            tx.commit().await?;
            Ok(Some(record))
        })
    }

    fn record_chunk<'a>(
        &'a self,
        backend: &'a str,
        id: ObjectId,
        from: u64,
        received: u64,
        total: u64,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let done = sqlx::query(
                "UPDATE files SET received = ?, size = ?, status = 'incomplete', updated_ms = ?
                 WHERE backend = ? AND id = ? AND received = ? AND status != 'complete' AND (size IS NULL OR size = ?)",
            )
            .bind(received as i64)
            .bind(total as i64)
            .bind(now_ms())
            .bind(backend)
            .bind(id.to_string())
            .bind(from as i64)
            .bind(total as i64)
            .execute(&self.writer)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    fn complete_file<'a>(
        &'a self,
        backend: &'a str,
        id: ObjectId,
        bytes: StoredBytes<'a>,
        author: Author<'a>,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<Option<(FileRecord, Value)>, StoreError>> {
        Box::pin(async move {
            let mut tx = self.writer.begin().await?;
            let Some(file) = visible(&mut tx, backend, id, true, access).await? else { return Ok(None) };
            if file.status == FileStatus::Complete {
                return Err(StoreError::Invalid { message: "The file is already complete".into(), property: None });
            }
            sqlx::query(
                "UPDATE files SET status = 'complete', size = ?, received = ?, sha256 = ?, updated_ms = ?
                 WHERE backend = ? AND id = ?",
            )
            .bind(bytes.size as i64)
            .bind(bytes.size as i64)
            .bind(bytes.sha256)
            .bind(now_ms())
            .bind(backend)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
            self.refer_and_commit(tx, backend, id, author, access).await
        })
    }

    fn file<'a>(
        &'a self,
        backend: &'a str,
        id: ObjectId,
        upload: bool,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<Option<FileRecord>, StoreError>> {
        Box::pin(async move {
            let mut conn = self.readers.acquire().await?;
            visible(&mut conn, backend, id, upload, access).await
        })
    }

    fn files<'a>(
        &'a self,
        backend: &'a str,
        ids: &'a [ObjectId],
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<Vec<FileRecord>, StoreError>> {
        Box::pin(async move {
            let mut conn = self.readers.acquire().await?;
            let mut found = Vec::new();
            for id in ids {
                if let Some(file) = visible(&mut conn, backend, *id, false, access).await?
                    && file.status == FileStatus::Complete
                {
                    found.push(file);
                }
            }
            Ok(found)
        })
    }

    fn set_variant_status<'a>(
        &'a self,
        backend: &'a str,
        id: ObjectId,
        variant: &'a str,
        status: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let path = format!("$.{variant}.status");
            sqlx::query(
                "UPDATE files SET variants = json_set(coalesce(variants, '{}'), ?, ?), updated_ms = ?
                 WHERE backend = ? AND id = ?",
            )
            .bind(path)
            .bind(status)
            .bind(now_ms())
            .bind(backend)
            .bind(id.to_string())
            .execute(&self.writer)
            .await?;
            Ok(())
        })
    }

    fn trashed_files(&self, limit: u32) -> BoxFuture<'_, Result<Vec<(String, ObjectId)>, StoreError>> {
        Box::pin(async move {
            let rows: Vec<(String, String)> = sqlx::query_as("SELECT backend, id FROM file_trash LIMIT ?")
                .bind(i64::from(limit))
                .fetch_all(&self.readers)
                .await?;
            Ok(rows.into_iter().filter_map(|(backend, id)| Some((backend, ObjectId::parse(&id)?))).collect())
        })
    }

    fn unrendered_files(&self, limit: u32) -> BoxFuture<'_, Result<Vec<(String, ObjectId)>, StoreError>> {
        Box::pin(async move {
            let rows: Vec<(String, String)> = sqlx::query_as(
                "SELECT backend, id FROM files WHERE status = 'complete' AND variants IS NOT NULL
                   AND EXISTS (SELECT 1 FROM json_each(variants) WHERE value ->> '$.status' = 'processing')
                 LIMIT ?",
            )
            .bind(i64::from(limit))
            .fetch_all(&self.readers)
            .await?;
            Ok(rows.into_iter().filter_map(|(backend, id)| Some((backend, ObjectId::parse(&id)?))).collect())
        })
    }

    fn expire_uploads(&self, untouched_since_ms: i64, limit: u32) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let mut tx = self.writer.begin().await?;
            // The same rows twice (one order, one limit), in one transaction.
            sqlx::query(
                "INSERT OR IGNORE INTO file_trash (backend, id) SELECT backend, id FROM files
                 WHERE status != 'complete' AND updated_ms < ? ORDER BY updated_ms, backend, id LIMIT ?",
            )
            .bind(untouched_since_ms)
            .bind(i64::from(limit))
            .execute(&mut *tx)
            .await?;
            let done = sqlx::query(
                "DELETE FROM files WHERE (backend, id) IN (SELECT backend, id FROM files
                 WHERE status != 'complete' AND updated_ms < ? ORDER BY updated_ms, backend, id LIMIT ?)",
            )
            .bind(untouched_since_ms)
            .bind(i64::from(limit))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(done.rows_affected())
        })
    }

    fn forget_trashed<'a>(&'a self, backend: &'a str, id: ObjectId) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            sqlx::query("DELETE FROM file_trash WHERE backend = ? AND id = ?")
                .bind(backend)
                .bind(id.to_string())
                .execute(&self.writer)
                .await?;
            Ok(())
        })
    }
}

fn vanished() -> StoreError {
    StoreError::Database("a file row written in this transaction is gone".into())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{Acl, Schemas, Store, Subject};

    const IMAGES: Collection<'static> =
        Collection { backend: "5376019e698b3c6ad500095a", object_type: "objects.images" };

    fn everyone() -> Acl {
        let all = vec![Subject::Everyone];
        Acl { read: all.clone(), update: all.clone(), delete: all, admin: Vec::new() }
    }

    async fn open(dir: &tempfile::TempDir) -> SqliteStore {
        SqliteStore::open(&super::super::SqliteOptions { path: dir.path().join("eds.sqlite3"), readers: 2 })
            .await
            .unwrap()
    }

    async fn attach(store: &SqliteStore, owner: &ObjectRef, property: &str) -> ObjectId {
        let id = ObjectId::generate();
        let file = NewFile { id, owner, property, file_name: "a.png", content_type: None, variants: None };
        let bytes = StoredBytes { size: 3, sha256: "abc" };
        store.attach_file(IMAGES.backend, file, bytes, Author::default(), Access::Everything).await.unwrap().unwrap();
        id
    }

    async fn trash(store: &SqliteStore) -> Vec<ObjectId> {
        let mut ids: Vec<ObjectId> = store.trashed_files(100).await.unwrap().into_iter().map(|(_, id)| id).collect();
        ids.sort_by_key(ToString::to_string);
        ids
    }

    fn sorted(mut ids: Vec<ObjectId>) -> Vec<ObjectId> {
        ids.sort_by_key(ToString::to_string);
        ids
    }

    #[tokio::test]
    async fn files_go_to_the_trash_with_their_object_or_when_their_property_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir).await;
        let new_object = || async {
            let doc = store.insert(IMAGES, Map::new(), Author::default(), everyone()).await.unwrap();
            ObjectRef {
                object_type: IMAGES.object_type.to_owned(),
                id: ObjectId::parse(doc["id"].as_str().unwrap()).unwrap(),
            }
        };
        let owner = new_object().await;
        let first = attach(&store, &owner, "photo").await;
        let other = attach(&store, &owner, "cover").await;
        let doc = store.get(IMAGES, owner.id, Access::Everything).await.unwrap().unwrap();
        assert_eq!(doc["photo"], json!({"id": first.to_string(), "objectType": "files"}));
        assert!(trash(&store).await.is_empty(), "both files are referred to");

        // Another file into the same property replaces the first; an unrelated update keeps both.
        let second = attach(&store, &owner, "photo").await;
        assert_eq!(trash(&store).await, vec![first]);
        let patch = Patch::Merge(json!({"title": "x"}).as_object().unwrap().clone());
        store.update(IMAGES, owner.id, patch, Author::default(), Access::Everything).await.unwrap();
        assert_eq!(trash(&store).await, vec![first]);
        assert!(store.file(IMAGES.backend, first, false, Access::Everything).await.unwrap().is_none());
        // Setting the property to something else lets the file go.
        let patch = Patch::Merge(json!({"cover": null}).as_object().unwrap().clone());
        store.update(IMAGES, owner.id, patch, Author::default(), Access::Everything).await.unwrap();
        assert_eq!(trash(&store).await, sorted(vec![first, other]));
        store.forget_trashed(IMAGES.backend, first).await.unwrap();
        store.forget_trashed(IMAGES.backend, other).await.unwrap();

        // A chunked upload begun on the object, then the object deleted: both its files go.
        let pending = ObjectId::generate();
        let file = NewFile {
            id: pending,
            owner: &owner,
            property: "video",
            file_name: "v",
            content_type: None,
            variants: None,
        };
        store.begin_file(IMAGES.backend, file, Access::Everything).await.unwrap().unwrap();
        assert!(store.record_chunk(IMAGES.backend, pending, 0, 10, 100).await.unwrap());
        assert!(!store.record_chunk(IMAGES.backend, pending, 0, 20, 100).await.unwrap(), "from 0 no more");
        assert!(!store.record_chunk(IMAGES.backend, pending, 10, 20, 99).await.unwrap(), "another total");
        store.delete(IMAGES, owner.id, Author::default(), Access::Everything).await.unwrap().unwrap();
        assert_eq!(trash(&store).await, sorted(vec![second, pending]));
        for id in [second, pending] {
            store.forget_trashed(IMAGES.backend, id).await.unwrap();
        }

        // Deleting the type's schema deletes its objects, and their files.
        let owner = new_object().await;
        let last = attach(&store, &owner, "photo").await;
        store.put_schema(IMAGES.backend, IMAGES.object_type, json!({}), &crate::SchemaRules::default()).await.unwrap();
        assert!(store.delete_schema(IMAGES.backend, IMAGES.object_type).await.unwrap());
        assert_eq!(trash(&store).await, vec![last]);
    }

    #[tokio::test]
    async fn uploads_untouched_since_the_cutoff_expire_and_the_rest_stay() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir).await;
        let doc = store.insert(IMAGES, Map::new(), Author::default(), everyone()).await.unwrap();
        let owner = ObjectRef {
            object_type: IMAGES.object_type.to_owned(),
            id: ObjectId::parse(doc["id"].as_str().unwrap()).unwrap(),
        };
        let complete = attach(&store, &owner, "photo").await;
        let begin = |property: &'static str| {
            let owner = &owner;
            let store = &store;
            async move {
                let id = ObjectId::generate();
                let file = NewFile { id, owner, property, file_name: "v", content_type: None, variants: None };
                store.begin_file(IMAGES.backend, file, Access::Everything).await.unwrap().unwrap();
                id
            }
        };
        let (empty, incomplete) = (begin("video").await, begin("audio").await);
        assert!(store.record_chunk(IMAGES.backend, incomplete, 0, 10, 100).await.unwrap());
        let cutoff = now_ms() + 1;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let recent = begin("poster").await;

        assert_eq!(store.expire_uploads(cutoff, 1).await.unwrap(), 1, "at most the limit");
        assert_eq!(store.expire_uploads(cutoff, 100).await.unwrap(), 1);
        assert_eq!(store.expire_uploads(cutoff, 100).await.unwrap(), 0);
        assert_eq!(trash(&store).await, sorted(vec![empty, incomplete]));
        for (id, kept) in [(complete, true), (recent, true), (empty, false), (incomplete, false)] {
            assert_eq!(store.file(IMAGES.backend, id, false, Access::Everything).await.unwrap().is_some(), kept);
        }
        assert!(!store.record_chunk(IMAGES.backend, incomplete, 10, 20, 100).await.unwrap(), "no file to add to");
        let doc = store.get(IMAGES, owner.id, Access::Everything).await.unwrap().unwrap();
        assert_eq!(doc["photo"]["id"], complete.to_string(), "the object is as it was");
    }

    #[tokio::test]
    async fn a_file_is_seen_by_who_reads_its_object_and_uploaded_into_by_who_updates_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir).await;
        let (reader, nobody) = ([Subject::Everyone, Subject::user("r")], [Subject::Everyone]);
        let acl = Acl { read: vec![Subject::user("r")], ..Acl::default() };
        let doc = store.insert(IMAGES, Map::new(), Author::default(), acl).await.unwrap();
        let owner = ObjectRef {
            object_type: IMAGES.object_type.to_owned(),
            id: ObjectId::parse(doc["id"].as_str().unwrap()).unwrap(),
        };
        let file = attach(&store, &owner, "photo").await;
        let b = IMAGES.backend;
        assert!(store.file(b, file, false, Access::Subjects(&reader)).await.unwrap().is_some());
        assert!(store.file(b, file, false, Access::Subjects(&nobody)).await.unwrap().is_none());
        assert!(matches!(store.file(b, file, true, Access::Subjects(&reader)).await, Err(StoreError::Forbidden)));
        assert!(matches!(store.may_upload(b, &owner, Access::Subjects(&reader)).await, Err(StoreError::Forbidden)));
        assert!(store.may_upload(b, &owner, Access::Subjects(&nobody)).await.unwrap().is_none());
        let id = ObjectId::generate();
        let new = NewFile { id, owner: &owner, property: "photo", file_name: "b", content_type: None, variants: None };
        let bytes = StoredBytes { size: 1, sha256: "x" };
        let refused = store.attach_file(b, new, bytes, Author::default(), Access::Subjects(&reader)).await;
        assert!(matches!(refused, Err(StoreError::Forbidden)));
        assert!(store.file(b, id, false, Access::Everything).await.unwrap().is_none(), "nothing was written");
        assert_eq!(store.files(b, &[file, id], Access::Subjects(&reader)).await.unwrap().len(), 1);
    }
}
