//! The rows of EDS files ([`Files`]) in PostgreSQL. Each write that names an owner checks the caller's permission
//! on it in its own transaction, holding the owner's row (`FOR UPDATE`) so that a concurrent change on another node
//! waits; the triggers of `migrations-postgres/0001_initial.sql` move a file to `file_trash` when its owner goes or
//! stops referring to it.

use serde_json::{Map, Value, json};
use updraft_core::ids::ObjectId;

use super::{PostgresStore, announce, changeable, current, now_ms, update_in};
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
    Option<Value>,
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
        variants,
        created_ms: c,
        updated_ms: u,
    })
}

/// The file's row; locked (`FOR UPDATE`) when `lock`, so that two nodes completing one upload take turns, the
/// second one reading what the first wrote.
async fn row_of(
    conn: &mut sqlx::PgConnection,
    backend: &str,
    id: ObjectId,
    lock: bool,
) -> Result<Option<FileRecord>, StoreError> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT {COLUMNS} FROM files WHERE backend = $1 AND id = $2{lock}");
    let row: Option<Row> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(backend).bind(id.to_string()).fetch_optional(&mut *conn).await?;
    row.map(record).transpose()
}

/// The file, if the caller may read its owner (and update it, for `upload`: `Forbidden` when it may only read
/// it). With `lock` (in a writing transaction), the owner's row and then the file's are locked, in the order of
/// the owner's deletion (whose trigger deletes its files), so that the two cannot deadlock; the file is read again
/// under its lock, as another node may have completed or expired it meanwhile.
async fn visible(
    conn: &mut sqlx::PgConnection,
    backend: &str,
    id: ObjectId,
    upload: bool,
    lock: bool,
    access: Access<'_>,
) -> Result<Option<FileRecord>, StoreError> {
    let Some(file) = row_of(conn, backend, id, false).await? else { return Ok(None) };
    let at = Collection { backend, object_type: &file.owner.object_type };
    let permission = if upload { Permission::Update } else { Permission::Read };
    if allowed(conn, at, file.owner.id, permission, lock, access).await?.is_none() {
        return Ok(None);
    }
    if lock { row_of(conn, backend, id, true).await } else { Ok(Some(file)) }
}

/// Whether the caller may do `permission` on the object: `None` when it cannot see it, `Forbidden` when it sees
/// it without `permission`. Locks the object's row when `lock`.
async fn allowed(
    conn: &mut sqlx::PgConnection,
    at: Collection<'_>,
    id: ObjectId,
    permission: Permission,
    lock: bool,
    access: Access<'_>,
) -> Result<Option<()>, StoreError> {
    if lock {
        return Ok(changeable(conn, at, id, permission, access).await?.map(|_| ()));
    }
    let Some(owner) = current(conn, at, id, false).await? else { return Ok(None) };
    if !owner.allows(Permission::Read, access) {
        return Ok(None);
    }
    if !owner.allows(permission, access) {
        return Err(StoreError::Forbidden);
    }
    Ok(Some(()))
}

/// Inserts the file's row if the caller may update its owner; false (nothing written) when it cannot see it.
async fn insert_owned(
    tx: &mut sqlx::PgConnection,
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
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
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
    .bind(file.variants.as_ref())
    .bind(now)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(true)
}

/// Points the owner's property at the file: an update of the owner, with its change.
async fn refer(
    tx: &mut sqlx::PgConnection,
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

impl PostgresStore {
    /// Points the complete file's owner at it and commits; answers the file and the owner's document.
    async fn refer_and_commit(
        &self,
        mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
        backend: &str,
        id: ObjectId,
        author: Author<'_>,
        access: Access<'_>,
    ) -> Result<Option<(FileRecord, Value)>, StoreError> {
        let record = row_of(&mut tx, backend, id, false).await?.ok_or_else(vanished)?;
        let Some((owner, seq)) = refer(&mut tx, backend, &record, author, access).await? else { return Ok(None) };
        tx.commit().await?;
        announce(&self.committed, seq);
        Ok(Some((record, owner)))
    }
}

impl Files for PostgresStore {
    fn may_upload<'a>(
        &'a self,
        backend: &'a str,
        owner: &'a ObjectRef,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<Option<()>, StoreError>> {
        Box::pin(async move {
            let mut conn = self.pool.acquire().await?;
            let at = Collection { backend, object_type: &owner.object_type };
            allowed(&mut conn, at, owner.id, Permission::Update, false, access).await
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
            let mut tx = self.pool.begin().await?;
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
            let mut tx = self.pool.begin().await?;
            if !insert_owned(&mut tx, backend, &file, FileStatus::Empty, None, access).await? {
                return Ok(None);
            }
            let record = row_of(&mut tx, backend, file.id, false).await?.ok_or_else(vanished)?;
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
                "UPDATE files SET received = $1, size = $2, status = 'incomplete', updated_ms = $3
                 WHERE backend = $4 AND id = $5 AND received = $6 AND status <> 'complete' AND (size IS NULL OR size = $2)",
            )
            .bind(received as i64)
            .bind(total as i64)
            .bind(now_ms())
            .bind(backend)
            .bind(id.to_string())
            .bind(from as i64)
            .execute(&self.pool)
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
            let mut tx = self.pool.begin().await?;
            let Some(file) = visible(&mut tx, backend, id, true, true, access).await? else { return Ok(None) };
            if file.status == FileStatus::Complete {
                return Err(StoreError::Invalid { message: "The file is already complete".into(), property: None });
            }
            sqlx::query(
                "UPDATE files SET status = 'complete', size = $1, received = $1, sha256 = $2, updated_ms = $3
                 WHERE backend = $4 AND id = $5",
            )
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
            let mut conn = self.pool.acquire().await?;
            visible(&mut conn, backend, id, upload, false, access).await
        })
    }

    fn files<'a>(
        &'a self,
        backend: &'a str,
        ids: &'a [ObjectId],
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<Vec<FileRecord>, StoreError>> {
        Box::pin(async move {
            let mut conn = self.pool.acquire().await?;
            let mut found = Vec::new();
            for id in ids {
                if let Some(file) = visible(&mut conn, backend, *id, false, false, access).await?
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
            sqlx::query(
                // As SQLite's json_set: the variant's object is made when missing (jsonb_set makes the last key
                // of a path only).
                "UPDATE files
                 SET variants = jsonb_set(coalesce(variants, '{}'::jsonb), ARRAY[$1::text],
                                          CASE WHEN jsonb_typeof(variants -> $1::text) = 'object' THEN variants -> $1::text
                                               ELSE '{}'::jsonb END || jsonb_build_object('status', $2::text)),
                     updated_ms = $3
                 WHERE backend = $4 AND id = $5",
            )
            .bind(variant)
            .bind(status)
            .bind(now_ms())
            .bind(backend)
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
            Ok(())
        })
    }

    fn trashed_files(&self, limit: u32) -> BoxFuture<'_, Result<Vec<(String, ObjectId)>, StoreError>> {
        Box::pin(async move {
            let rows: Vec<(String, String)> = sqlx::query_as("SELECT backend, id FROM file_trash LIMIT $1")
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
            Ok(rows.into_iter().filter_map(|(backend, id)| Some((backend, ObjectId::parse(&id)?))).collect())
        })
    }

    fn unrendered_files(&self, limit: u32) -> BoxFuture<'_, Result<Vec<(String, ObjectId)>, StoreError>> {
        Box::pin(async move {
            let rows: Vec<(String, String)> = sqlx::query_as(
                "SELECT backend, id FROM files WHERE status = 'complete' AND variants IS NOT NULL
                   AND EXISTS (SELECT 1 FROM jsonb_each(variants) AS v WHERE v.value ->> 'status' = 'processing')
                 LIMIT $1",
            )
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
            Ok(rows.into_iter().filter_map(|(backend, id)| Some((backend, ObjectId::parse(&id)?))).collect())
        })
    }

    fn expire_uploads(&self, untouched_since_ms: i64, limit: u32) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            // Deleted and trashed in one statement; rows another node is expiring now are skipped.
            let (n,): (i64,) = sqlx::query_as(
                "WITH gone AS (
                     DELETE FROM files WHERE (backend, id) IN (
                         SELECT backend, id FROM files WHERE status <> 'complete' AND updated_ms < $1
                         ORDER BY updated_ms, backend, id LIMIT $2 FOR UPDATE SKIP LOCKED)
                     RETURNING backend, id),
                 trashed AS (INSERT INTO file_trash (backend, id) SELECT backend, id FROM gone ON CONFLICT DO NOTHING)
                 SELECT count(*) FROM gone",
            )
            .bind(untouched_since_ms)
            .bind(i64::from(limit))
            .fetch_one(&self.pool)
            .await?;
            Ok(n.max(0) as u64)
        })
    }

    fn forget_trashed<'a>(&'a self, backend: &'a str, id: ObjectId) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            sqlx::query("DELETE FROM file_trash WHERE backend = $1 AND id = $2")
                .bind(backend)
                .bind(id.to_string())
                .execute(&self.pool)
                .await?;
            Ok(())
        })
    }
}

fn vanished() -> StoreError {
    StoreError::Database("a file row written in this transaction is gone".into())
}

#[cfg(test)]
#[path = "files_tests.rs"]
mod tests;
