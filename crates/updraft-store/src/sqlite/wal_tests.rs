//! The WAL file shrinks back to `WAL_SIZE_LIMIT` once a checkpoint has emptied it, whichever writer wrote it.

use super::*;

fn wal_bytes(dir: &tempfile::TempDir) -> u64 {
    std::fs::metadata(dir.path().join("eds.sqlite3-wal")).map_or(0, |meta| meta.len())
}

#[tokio::test]
async fn a_large_write_leaves_no_large_wal_behind_once_checkpointed() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&SqliteOptions { path: dir.path().join("eds.sqlite3"), readers: 2 }).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE bulk (b BLOB);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 96)
         INSERT INTO bulk SELECT randomblob(1048576) FROM n",
    )
    .execute(&store.writer)
    .await
    .unwrap();
    let limit = u64::try_from(WAL_SIZE_LIMIT).unwrap();
    assert!(wal_bytes(&dir) > limit, "the write grew the WAL past the limit: {}", wal_bytes(&dir));
    // Checkpointed, then the next write starts the WAL over and cuts the file back.
    sqlx::raw_sql("PRAGMA wal_checkpoint(PASSIVE); DELETE FROM bulk").execute(&store.writer).await.unwrap();
    assert!(wal_bytes(&dir) <= limit, "{} bytes of WAL left", wal_bytes(&dir));

    // The group commit's writer has the same limit.
    let path = dir.path().join("eds.sqlite3");
    let writer = group_commit::open_writer(&path).unwrap();
    let set: i64 = writer.pragma_query_value(None, "journal_size_limit", |row| row.get(0)).unwrap();
    assert_eq!(set, WAL_SIZE_LIMIT);
}
