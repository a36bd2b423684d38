//! The change log: every committed create, update and delete of an object, written by the transaction that makes
//! the change, so that notifications and webhooks miss nothing a client was told happened and report nothing that
//! was rolled back.

use serde_json::Value;

use super::{SqliteStore, acl_json, now_ms, parse_acl};
use crate::{Acl, Author, BoxFuture, Change, ChangeEvent, Changes, StoreError};

/// One change as the writer knows it.
pub(crate) struct Recorded<'a> {
    pub backend: &'a str,
    pub object_type: &'a str,
    pub id: &'a str,
    pub event: ChangeEvent,
    /// The object's JSON text.
    pub doc: &'a str,
    pub acl: &'a Acl,
    /// The parent's ACL, for an object that extends it.
    pub inherited: Option<&'a Acl>,
    pub author: Author<'a>,
}

/// Records a change; answers its `seq`.
pub(crate) async fn record(tx: &mut sqlx::SqliteConnection, change: Recorded<'_>) -> Result<i64, StoreError> {
    let (seq,): (i64,) = sqlx::query_as(
        "INSERT INTO changes (backend, object_type, object_id, event, doc, acl, parent_acl, user_id, created_ms,
                              request_id)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
    )
    .bind(change.backend)
    .bind(change.object_type)
    .bind(change.id)
    .bind(change.event.name())
    .bind(change.doc)
    .bind(acl_json(change.acl))
    .bind(change.inherited.map(acl_json))
    .bind(change.author.user)
    .bind(now_ms())
    .bind(change.author.request_id)
    .fetch_one(&mut *tx)
    .await?;
    Ok(seq)
}

/// The columns a `Change` is read from, in this order.
pub(crate) const CHANGE_COLUMNS: &str =
    "seq, backend, object_type, object_id, event, doc, acl, parent_acl, user_id, request_id";

pub(crate) type ChangeRow =
    (i64, String, String, String, String, String, String, Option<String>, Option<String>, Option<String>);

pub(crate) fn change_from(row: ChangeRow) -> Result<Change, StoreError> {
    let (seq, backend, object_type, object_id, event, doc, acl, parent_acl, user_id, request_id) = row;
    let broken = || StoreError::Database(format!("change {seq} is malformed"));
    let object: Value = serde_json::from_str(&doc).map_err(|_| broken())?;
    let inherited = parent_acl.as_deref().map(parse_acl);
    Ok(Change {
        seq,
        backend,
        object_type,
        object_id,
        event: ChangeEvent::parse(&event).ok_or_else(broken)?,
        object,
        readers: parse_acl(&acl).readers(inherited.as_ref()),
        user_id,
        request_id,
    })
}

impl Changes for SqliteStore {
    fn changes_after<'a>(&'a self, after: i64, limit: u32) -> BoxFuture<'a, Result<Vec<Change>, StoreError>> {
        Box::pin(async move {
            let rows: Vec<ChangeRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {CHANGE_COLUMNS} FROM changes WHERE seq > ? ORDER BY seq LIMIT ?"
            )))
            .bind(after)
            .bind(limit)
            .fetch_all(&self.readers)
            .await?;
            rows.into_iter().map(change_from).collect()
        })
    }

    fn latest_change(&self) -> BoxFuture<'_, Result<i64, StoreError>> {
        Box::pin(async move {
            let (seq,): (Option<i64>,) =
                sqlx::query_as("SELECT max(seq) FROM changes").fetch_one(&self.readers).await?;
            Ok(seq.unwrap_or(0))
        })
    }

    fn watch_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.committed.subscribe()
    }

    fn prune_changes(&self, before_ms: i64) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            // Changes still owed to a webhook stay, and so do those of dead letters, which may be redelivered.
            let done = sqlx::query(
                "DELETE FROM changes WHERE created_ms < ?
                 AND seq NOT IN (SELECT seq FROM webhook_deliveries WHERE status != 'delivered')",
            )
            .bind(before_ms)
            .execute(&self.writer)
            .await?;
            Ok(done.rows_affected())
        })
    }
}
