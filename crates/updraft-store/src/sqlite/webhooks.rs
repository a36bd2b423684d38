//! Webhooks and their delivery queue in SQLite; see `crate::webhooks` for the guarantees. Deliveries are queued by
//! the trigger `changes_to_webhook_deliveries` (see `MIGRATIONS`), in the transaction that records the change.

use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use updraft_core::ids::ObjectId;

use super::changes::{CHANGE_COLUMNS, ChangeRow, change_from};
use super::{SqliteStore, now_ms};

use crate::{
    BoxFuture, ChangeEvent, Delivery, DeliveryStatus, DueDelivery, Outcome, StoreError, Webhook, WebhookSpec, Webhooks,
};

const WEBHOOK_COLUMNS: &str = "id, backend, url, object_types, events, headers, secret, created_ms, updated_ms";
const DELIVERY_COLUMNS: &str =
    "id, webhook_id, seq, object_id, status, attempts, next_ms, created_ms, finished_ms, last_status, last_error";

fn json_list<T: serde::Serialize>(items: &[T]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

fn broken(what: &str) -> StoreError {
    StoreError::Database(format!("a stored {what} is malformed"))
}

/// Reads a webhook from `row`, its columns starting at `at` in `WEBHOOK_COLUMNS` order.
fn webhook_from(row: &SqliteRow, at: usize) -> Result<Webhook, StoreError> {
    let list = |index: usize| -> Result<Vec<String>, StoreError> {
        serde_json::from_str(row.try_get::<&str, _>(at + index)?).map_err(|_| broken("webhook"))
    };
    let events = list(4)?
        .iter()
        .map(|name| ChangeEvent::parse(name).ok_or_else(|| broken("webhook")))
        .collect::<Result<_, _>>()?;
    let headers: Vec<(String, String)> =
        serde_json::from_str(row.try_get::<&str, _>(at + 5)?).map_err(|_| broken("webhook"))?;
    Ok(Webhook {
        id: row.try_get(at)?,
        backend: row.try_get(at + 1)?,
        spec: WebhookSpec { url: row.try_get(at + 2)?, object_types: list(3)?, events, headers },
        secret: row.try_get(at + 6)?,
        created_ms: row.try_get(at + 7)?,
        updated_ms: row.try_get(at + 8)?,
    })
}

/// Reads a delivery from `row`, its columns starting at `at` in `DELIVERY_COLUMNS` order.
fn delivery_from(row: &SqliteRow, at: usize) -> Result<Delivery, StoreError> {
    let status: &str = row.try_get(at + 4)?;
    Ok(Delivery {
        id: row.try_get(at)?,
        webhook_id: row.try_get(at + 1)?,
        seq: row.try_get(at + 2)?,
        object_id: row.try_get(at + 3)?,
        status: DeliveryStatus::parse(status).ok_or_else(|| broken("delivery"))?,
        attempts: row.try_get::<i64, _>(at + 5)?.max(0) as u32,
        next_ms: row.try_get(at + 6)?,
        created_ms: row.try_get(at + 7)?,
        finished_ms: row.try_get(at + 8)?,
        last_status: row.try_get::<Option<i64>, _>(at + 9)?.map(|status| status as u16),
        last_error: row.try_get(at + 10)?,
    })
}

fn change_row(row: &SqliteRow, at: usize) -> Result<ChangeRow, StoreError> {
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

impl SqliteStore {
    /// Recounts webhooks after a change to them.
    pub(crate) async fn count_webhooks(&self) -> Result<(), StoreError> {
        let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM webhooks").fetch_one(&self.writer).await?;
        self.webhook_count.store(count as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

fn event_names(events: &[ChangeEvent]) -> String {
    json_list(&events.iter().map(|event| event.name()).collect::<Vec<_>>())
}

impl Webhooks for SqliteStore {
    fn create_webhook<'a>(
        &'a self,
        backend: &'a str,
        spec: WebhookSpec,
        secret: String,
    ) -> BoxFuture<'a, Result<Webhook, StoreError>> {
        Box::pin(async move {
            let id = ObjectId::generate().to_string();
            let now = now_ms();
            sqlx::query(
                "INSERT INTO webhooks (id, backend, url, object_types, events, headers, secret, created_ms, updated_ms)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&id)
            .bind(backend)
            .bind(&spec.url)
            .bind(json_list(&spec.object_types))
            .bind(event_names(&spec.events))
            .bind(json_list(&spec.headers))
            .bind(&secret)
            .bind(now)
            .bind(now)
            .execute(&self.writer)
            .await?;
            self.count_webhooks().await?;
            Ok(Webhook { id, backend: backend.to_owned(), spec, secret, created_ms: now, updated_ms: now })
        })
    }

    fn webhooks<'a>(&'a self, backend: &'a str) -> BoxFuture<'a, Result<Vec<Webhook>, StoreError>> {
        Box::pin(async move {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE backend = ? ORDER BY created_ms, id"
            )))
            .bind(backend)
            .fetch_all(&self.writer)
            .await?;
            rows.iter().map(|row| webhook_from(row, 0)).collect()
        })
    }

    fn webhook<'a>(&'a self, backend: &'a str, id: &'a str) -> BoxFuture<'a, Result<Option<Webhook>, StoreError>> {
        Box::pin(async move {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE backend = ? AND id = ?"
            )))
            .bind(backend)
            .bind(id)
            .fetch_optional(&self.writer)
            .await?;
            row.map(|row| webhook_from(&row, 0)).transpose()
        })
    }

    fn update_webhook<'a>(
        &'a self,
        backend: &'a str,
        id: &'a str,
        spec: WebhookSpec,
    ) -> BoxFuture<'a, Result<Option<Webhook>, StoreError>> {
        Box::pin(async move {
            let done = sqlx::query(
                "UPDATE webhooks SET url = ?, object_types = ?, events = ?, headers = ?, updated_ms = ?
                 WHERE backend = ? AND id = ?",
            )
            .bind(&spec.url)
            .bind(json_list(&spec.object_types))
            .bind(event_names(&spec.events))
            .bind(json_list(&spec.headers))
            .bind(now_ms())
            .bind(backend)
            .bind(id)
            .execute(&self.writer)
            .await?;
            if done.rows_affected() == 0 {
                return Ok(None);
            }
            self.webhook(backend, id).await
        })
    }

    fn delete_webhook<'a>(&'a self, backend: &'a str, id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut tx = self.writer.begin().await?;
            let done = sqlx::query("DELETE FROM webhooks WHERE backend = ? AND id = ?")
                .bind(backend)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM webhook_deliveries WHERE webhook_id = ?").bind(id).execute(&mut *tx).await?;
            tx.commit().await?;
            self.count_webhooks().await?;
            Ok(done.rows_affected() > 0)
        })
    }

    fn deliveries<'a>(
        &'a self,
        backend: &'a str,
        webhook: &'a str,
        limit: u32,
        offset: u32,
    ) -> BoxFuture<'a, Result<Vec<Delivery>, StoreError>> {
        Box::pin(async move {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries
                 WHERE webhook_id = (SELECT id FROM webhooks WHERE backend = ? AND id = ?)
                 ORDER BY id DESC LIMIT ? OFFSET ?"
            )))
            .bind(backend)
            .bind(webhook)
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.readers)
            .await?;
            rows.iter().map(|row| delivery_from(row, 0)).collect()
        })
    }

    fn redeliver<'a>(
        &'a self,
        backend: &'a str,
        webhook: &'a str,
        delivery: i64,
    ) -> BoxFuture<'a, Result<Option<Delivery>, StoreError>> {
        Box::pin(async move {
            let mut tx = self.writer.begin().await?;
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {DELIVERY_COLUMNS}, (SELECT 1 FROM changes c WHERE c.seq = d.seq) FROM webhook_deliveries d
                 WHERE d.id = ? AND d.webhook_id = (SELECT id FROM webhooks WHERE backend = ? AND id = ?)"
            )))
            .bind(delivery)
            .bind(backend)
            .bind(webhook)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else { return Ok(None) };
            if row.try_get::<Option<i64>, _>(11)?.is_none() {
                // A delivered change is forgotten with the rest of the change log; only pending and dead ones keep it.
                return Err(StoreError::Invalid {
                    message: "the change of this delivery is no longer kept".into(),
                    property: None,
                });
            }
            let now = now_ms();
            sqlx::query(
                "UPDATE webhook_deliveries
                 SET status = 'pending', attempts = 0, next_ms = ?, created_ms = ?, finished_ms = NULL WHERE id = ?",
            )
            .bind(now)
            .bind(now)
            .bind(delivery)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            // Wakes the worker, which waits for commits.
            super::announce(&self.committed, 0);
            let mut redelivered = delivery_from(&row, 0)?;
            redelivered.status = DeliveryStatus::Pending;
            (redelivered.attempts, redelivered.next_ms, redelivered.created_ms, redelivered.finished_ms) =
                (0, now, now, None);
            Ok(Some(redelivered))
        })
    }

    fn has_webhooks(&self) -> bool {
        self.webhook_count.load(std::sync::atomic::Ordering::Relaxed) > 0
    }

    fn due_deliveries<'a>(
        &'a self,
        now_ms: i64,
        limit: u32,
        busy: &'a [i64],
    ) -> BoxFuture<'a, Result<Vec<DueDelivery>, StoreError>> {
        Box::pin(async move {
            let delivery = DELIVERY_COLUMNS.split(", ").map(|c| format!("d.{c}")).collect::<Vec<_>>().join(", ");
            let webhook = WEBHOOK_COLUMNS.split(", ").map(|c| format!("w.{c}")).collect::<Vec<_>>().join(", ");
            let change = CHANGE_COLUMNS.split(", ").map(|c| format!("c.{c}")).collect::<Vec<_>>().join(", ");
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {delivery}, {webhook}, {change}
                 FROM webhook_deliveries AS d
                 JOIN webhooks AS w ON w.id = d.webhook_id
                 JOIN changes AS c ON c.seq = d.seq
                 WHERE d.status = 'pending' AND d.next_ms <= ?
                   AND d.id NOT IN (SELECT value FROM json_each(?))
                   AND NOT EXISTS (SELECT 1 FROM webhook_deliveries AS e
                                   WHERE e.status = 'pending' AND e.webhook_id = d.webhook_id
                                     AND e.object_id = d.object_id AND e.id < d.id)
                 ORDER BY d.next_ms, d.id LIMIT ?"
            )))
            .bind(now_ms)
            .bind(json_list(busy))
            .bind(limit)
            .fetch_all(&self.readers)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(DueDelivery {
                        delivery: delivery_from(row, 0)?,
                        webhook: webhook_from(row, 11)?,
                        change: change_from(change_row(row, 20)?)?,
                    })
                })
                .collect()
        })
    }

    fn next_due(&self) -> BoxFuture<'_, Result<Option<i64>, StoreError>> {
        Box::pin(async move {
            let (next,): (Option<i64>,) =
                sqlx::query_as("SELECT min(next_ms) FROM webhook_deliveries WHERE status = 'pending'")
                    .fetch_one(&self.readers)
                    .await?;
            Ok(next)
        })
    }

    fn record_outcomes<'a>(&'a self, outcomes: &'a [(i64, Outcome)]) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let now = now_ms();
            let mut tx = self.writer.begin().await?;
            for (id, outcome) in outcomes {
                let (status, next_ms, finished_ms, last_status, last_error) = match outcome {
                    Outcome::Delivered { status } => ("delivered", None, Some(now), Some(*status), None),
                    Outcome::Retry { next_ms, status, error } => {
                        ("pending", Some(*next_ms), None, *status, Some(error))
                    }
                    Outcome::Dead { status, error } => ("dead", None, Some(now), *status, Some(error)),
                };
                // Only a pending delivery takes an outcome: one redelivered or deleted meanwhile keeps its new state.
                sqlx::query(
                    "UPDATE webhook_deliveries
                     SET status = ?, attempts = attempts + 1, next_ms = coalesce(?, next_ms), finished_ms = ?,
                         last_status = ?, last_error = ?
                     WHERE id = ? AND status = 'pending'",
                )
                .bind(status)
                .bind(next_ms)
                .bind(finished_ms)
                .bind(last_status.map(i64::from))
                .bind(last_error)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn prune_deliveries(&self, before_ms: i64) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let done = sqlx::query("DELETE FROM webhook_deliveries WHERE status != 'pending' AND finished_ms < ?")
                .bind(before_ms)
                .execute(&self.writer)
                .await?;
            Ok(done.rows_affected())
        })
    }
}
