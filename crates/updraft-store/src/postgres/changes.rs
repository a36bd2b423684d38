//! The change log in PostgreSQL: written by the transaction that makes each change, followed by every node.
//!
//! `seq` comes from a sequence, whose values are handed out at insert, not at commit: two transactions could
//! commit out of `seq` order, and a follower that had read up to the later one would skip the earlier one for
//! good. So a writing transaction takes `CHANGE_LOCK` (a transaction-scoped advisory lock) just before it
//! records its change; the lock is held from there to the commit, so changes commit in `seq` order. The
//! transaction's other work happens before the lock, so writers of different rows still overlap.
//!
//! Each recorded change also sends `NOTIFY updraft_changes` (delivered at commit); every node LISTENs and wakes
//! its watchers, and reads the log table from where it was, so a missed notification costs latency, never a
//! change.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;
use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::{broadcast, watch};

use super::catalog::Catalog;
use super::{PostgresStore, acl_json, announce, now_ms, parse_acl};
use crate::{Acl, Author, BoxFuture, Change, ChangeEvent, Changes, GatewayChange, StandingChange, StoreError};

/// The advisory lock key of change recording (any constant; "updraft" in ASCII).
const CHANGE_LOCK: i64 = 0x0075_7064_7261_6674;
/// The notification channel of committed changes; the payload is the `seq`.
const CHANNEL: &str = "updraft_changes";
/// The notification channel of catalog changes (`catalog.rs`).
const CATALOG: &str = "updraft_catalog";
/// The notification channel of users' standing (`migrations-postgres/0006_standing_notify.sql`): `<backend> <user>`.
const STANDING: &str = "updraft_standing";
/// The notification channel of saved gateways (`migrations-postgres/0008_gateways.sql`): the gateway's id.
const GATEWAYS: &str = "updraft_gateways";

/// What the follower tells as it hears it.
pub(crate) struct Heard {
    pub committed: Arc<watch::Sender<u64>>,
    pub following: Arc<AtomicBool>,
    pub catalog: Arc<Catalog>,
    pub standing: broadcast::Sender<StandingChange>,
    pub gateways: broadcast::Sender<GatewayChange>,
}

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

/// Records a change; answers its `seq`. Holds `CHANGE_LOCK` until the transaction ends.
pub(crate) async fn record(tx: &mut sqlx::PgConnection, change: Recorded<'_>) -> Result<i64, StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(CHANGE_LOCK).execute(&mut *tx).await?;
    let (seq,): (i64,) = sqlx::query_as(
        "INSERT INTO changes (backend, object_type, object_id, event, doc, acl, parent_acl, user_id, created_ms,
                              request_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING seq",
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
    sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(seq.to_string()).execute(&mut *tx).await?;
    Ok(seq)
}

/// The creations of a batch (`group_commit.rs`), column by column; documents and ACLs as JSON text.
pub(crate) struct Creates<'a> {
    pub backends: &'a [&'a str],
    pub object_types: &'a [&'a str],
    pub ids: &'a [&'a str],
    pub docs: &'a [&'a str],
    pub acls: &'a [String],
    pub users: &'a [Option<&'a str>],
    pub request_ids: &'a [Option<&'a str>],
}

/// Records a batch's creations in its order, under `CHANGE_LOCK` as `record` does; answers their `seq`s.
pub(crate) async fn record_creates(tx: &mut sqlx::PgConnection, creates: Creates<'_>) -> Result<Vec<i64>, StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(CHANGE_LOCK).execute(&mut *tx).await?;
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "INSERT INTO changes (backend, object_type, object_id, event, doc, acl, user_id, created_ms, request_id)
         SELECT b, t, i, 'create', d, a::jsonb, usr, $8, req
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
              WITH ORDINALITY AS u(b, t, i, d, a, usr, req, n)
         ORDER BY n
         RETURNING seq, object_id",
    )
    .bind(creates.backends)
    .bind(creates.object_types)
    .bind(creates.ids)
    .bind(creates.docs)
    .bind(creates.acls)
    .bind(creates.users)
    .bind(creates.request_ids)
    .bind(now_ms())
    .fetch_all(&mut *tx)
    .await?;
    // RETURNING's order is not promised: each id finds its own `seq` (ids are unique within a batch).
    let by_id: std::collections::HashMap<&str, i64> = rows.iter().map(|(seq, id)| (id.as_str(), *seq)).collect();
    let seqs: Vec<i64> = creates
        .ids
        .iter()
        .map(|id| by_id.get(id).copied())
        .collect::<Option<_>>()
        .ok_or_else(|| StoreError::Database("a created object's change was not recorded".into()))?;
    let latest = seqs.iter().max().copied().unwrap_or(0);
    sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(latest.to_string()).execute(&mut *tx).await?;
    Ok(seqs)
}

/// Wakes this node's watchers as changes of any node commit; reconnects with backoff, and on each (re)connect
/// reads the latest `seq`, so that what committed while it was away is announced too. Ends when the pool closes.
pub(crate) async fn follow(pool: PgPool, heard: Heard) {
    let mut pause = Duration::from_millis(100);
    while !pool.is_closed() {
        let err = listen(&pool, &heard, &mut pause).await;
        heard.following.store(false, Ordering::Release);
        heard.catalog.set_listening(false);
        if pool.is_closed() {
            return;
        }
        tracing::warn!(error = %err, "following the change log failed; retrying");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// Listens until the connection fails; answers why.
async fn listen(pool: &PgPool, heard: &Heard, pause: &mut Duration) -> sqlx::Error {
    let mut listener = match PgListener::connect_with(pool).await {
        Ok(listener) => listener,
        Err(err) => return err,
    };
    // Without this, a lost connection would be re-established silently, and what was notified meanwhile lost.
    listener.ignore_pool_close_event(false);
    if let Err(err) = listener.listen_all([CHANNEL, CATALOG, STANDING, GATEWAYS]).await {
        return err;
    }
    heard.catalog.set_listening(true);
    match sqlx::query_as::<_, (i64,)>("SELECT coalesce(max(seq), 0) FROM changes").fetch_one(pool).await {
        Ok((latest,)) => announce(&heard.committed, latest),
        Err(err) => return err,
    }
    // What changed while nobody listened is unknown.
    let _ = heard.standing.send(StandingChange::Anyone);
    let _ = heard.gateways.send(GatewayChange::Any);
    heard.following.store(true, Ordering::Release);
    *pause = Duration::from_millis(100);
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => match notification.channel() {
                CATALOG => heard.catalog.forget(),
                GATEWAYS => {
                    let _ = heard.gateways.send(GatewayChange::One(notification.payload().to_owned()));
                }
                STANDING => {
                    if let Some((backend, user)) = notification.payload().split_once(' ') {
                        let change = StandingChange::User { backend: backend.to_owned(), user: user.to_owned() };
                        let _ = heard.standing.send(change);
                    }
                }
                _ => {
                    if let Ok(seq) = notification.payload().parse::<i64>() {
                        announce(&heard.committed, seq);
                    }
                }
            },
            Ok(None) => return sqlx::Error::Protocol("the notification connection was lost".into()),
            Err(err) => return err,
        }
    }
}

/// The columns a `Change` is read from, in this order.
pub(crate) const CHANGE_COLUMNS: &str =
    "seq, backend, object_type, object_id, event, doc, acl, parent_acl, user_id, request_id";

pub(crate) type ChangeRow =
    (i64, String, String, String, String, String, Value, Option<Value>, Option<String>, Option<String>);

pub(crate) fn change_from(row: ChangeRow) -> Result<Change, StoreError> {
    let (seq, backend, object_type, object_id, event, doc, acl, parent_acl, user_id, request_id) = row;
    let broken = || StoreError::Database(format!("change {seq} is malformed"));
    let object: Value = serde_json::from_str(&doc).map_err(|_| broken())?;
    let inherited = parent_acl.as_ref().map(parse_acl);
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

/// Reads a change from `row`, its columns starting at `at` in `CHANGE_COLUMNS` order.
pub(crate) fn change_row(row: &sqlx::postgres::PgRow, at: usize) -> Result<ChangeRow, StoreError> {
    use sqlx::Row;
    Ok((
        row.try_get(at)?,
        row.try_get(at + 1)?,
        row.try_get(at + 2)?,
        row.try_get(at + 3)?,
        row.try_get(at + 4)?,
        row.try_get(at + 5)?,
        row.try_get(at + 6)?,
        row.try_get(at + 7)?,
        row.try_get(at + 8)?,
        row.try_get(at + 9)?,
    ))
}

impl Changes for PostgresStore {
    fn changes_after<'a>(&'a self, after: i64, limit: u32) -> BoxFuture<'a, Result<Vec<Change>, StoreError>> {
        Box::pin(async move {
            let rows: Vec<ChangeRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {CHANGE_COLUMNS} FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2"
            )))
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
            rows.into_iter().map(change_from).collect()
        })
    }

    fn latest_change(&self) -> BoxFuture<'_, Result<i64, StoreError>> {
        Box::pin(async move {
            let (seq,): (Option<i64>,) = sqlx::query_as("SELECT max(seq) FROM changes").fetch_one(&self.pool).await?;
            Ok(seq.unwrap_or(0))
        })
    }

    fn watch_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.committed.subscribe()
    }

    fn following(&self) -> bool {
        self.following.load(Ordering::Acquire)
    }

    fn standing_changes(&self) -> Option<broadcast::Receiver<StandingChange>> {
        Some(self.standing.subscribe())
    }

    fn prune_changes(&self, before_ms: i64) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            // Changes still owed to a webhook stay, and so do those of dead letters, which may be redelivered.
            let done = sqlx::query(
                "DELETE FROM changes WHERE created_ms < $1
                 AND seq NOT IN (SELECT seq FROM webhook_deliveries WHERE status <> 'delivered')",
            )
            .bind(before_ms)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected())
        })
    }
}
