//! Webhooks and their delivery queue in PostgreSQL; see `crate::webhooks` for the guarantees. Deliveries are
//! queued by the trigger `changes_to_webhook_deliveries` (`migrations-postgres/`), in the transaction that records
//! the change.
//!
//! The queue is shared by the workers of every node. [`Webhooks::due_deliveries`] claims what it answers: it
//! locks the due rows it can (`FOR UPDATE SKIP LOCKED`, so workers never wait on each other) and moves their
//! `next_ms` a lease ahead (`claimed_until` too, migration 0003), so that no other worker takes them until the
//! lease runs out, which only happens when the claiming node died mid-attempt: attempts end within it
//! ([`crate::PostgresOptions::webhook_lease`]); then any worker retries them. The outcome, or a release, ends the claim and sets the delivery's
//! real state. A delivery still waits while an earlier one of its object to its webhook is pending, claimed or
//! not, so order per object holds across nodes. A redelivery asked for during a claim leaves the lease: the
//! attempt out then answers for it, as the embedded store's worker does with a delivery in flight.

use std::sync::atomic::Ordering;

use serde_json::Value;
use sqlx::Row;
use sqlx::postgres::PgRow;
use updraft_core::ids::ObjectId;

use super::{PostgresStore, announce, now_ms};
use crate::{
    BoxFuture, ChangeEvent, Delivery, DeliveryStatus, DueDelivery, Outcome, StoreError, Webhook, WebhookSpec, Webhooks,
};

const WEBHOOK_COLUMNS: &str = "id, backend, url, object_types, events, headers, secret, created_ms, updated_ms";
const DELIVERY_COLUMNS: &str =
    "id, webhook_id, seq, object_id, status, attempts, next_ms, created_ms, finished_ms, last_status, last_error";

fn broken(what: &str) -> StoreError {
    StoreError::Database(format!("a stored {what} is malformed"))
}

fn prefixed(columns: &str, alias: &str) -> String {
    columns.split(", ").map(|c| format!("{alias}.{c}")).collect::<Vec<_>>().join(", ")
}

/// Reads a webhook from `row`, its columns starting at `at` in `WEBHOOK_COLUMNS` order.
fn webhook_from(row: &PgRow, at: usize) -> Result<Webhook, StoreError> {
    let list = |index: usize| -> Result<Vec<String>, StoreError> {
        serde_json::from_value(row.try_get::<Value, _>(at + index)?).map_err(|_| broken("webhook"))
    };
    let events = list(4)?
        .iter()
        .map(|name| ChangeEvent::parse(name).ok_or_else(|| broken("webhook")))
        .collect::<Result<_, _>>()?;
    let headers: Vec<(String, String)> =
        serde_json::from_value(row.try_get::<Value, _>(at + 5)?).map_err(|_| broken("webhook"))?;
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
fn delivery_from(row: &PgRow, at: usize) -> Result<Delivery, StoreError> {
    let status: &str = row.try_get(at + 4)?;
    Ok(Delivery {
        id: row.try_get(at)?,
        webhook_id: row.try_get(at + 1)?,
        seq: row.try_get(at + 2)?,
        object_id: row.try_get(at + 3)?,
        status: DeliveryStatus::parse(status).ok_or_else(|| broken("delivery"))?,
        attempts: row.try_get::<i32, _>(at + 5)?.max(0) as u32,
        next_ms: row.try_get(at + 6)?,
        created_ms: row.try_get(at + 7)?,
        finished_ms: row.try_get(at + 8)?,
        last_status: row.try_get::<Option<i32>, _>(at + 9)?.map(|status| status as u16),
        last_error: row.try_get(at + 10)?,
    })
}

fn event_names(events: &[ChangeEvent]) -> Value {
    Value::from(events.iter().map(|event| event.name()).collect::<Vec<_>>())
}

fn headers_json(headers: &[(String, String)]) -> Value {
    serde_json::to_value(headers).unwrap_or_else(|_| Value::Array(Vec::new()))
}

impl PostgresStore {
    /// Recounts webhooks, for `has_webhooks`; also every few seconds (`count_webhooks_now_and_then`), since another
    /// node may make the first one.
    pub(crate) async fn count_webhooks(&self) -> Result<(), StoreError> {
        let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM webhooks").fetch_one(&self.pool).await?;
        self.webhook_count.store(count.max(0) as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// Keeps the count of webhooks current while the store is open.
pub(crate) async fn count_webhooks_now_and_then(
    pool: sqlx::PgPool,
    count: std::sync::Arc<std::sync::atomic::AtomicU64>,
    committed: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
    while !pool.is_closed() {
        tick.tick().await;
        if let Ok((n,)) = sqlx::query_as::<_, (i64,)>("SELECT count(*) FROM webhooks").fetch_one(&pool).await {
            let had = count.swap(n.max(0) as u64, Ordering::Relaxed);
            if had == 0 && n > 0 {
                // The worker sleeps until a commit while there is none: this is news to it.
                announce(&committed, 0);
            }
        }
    }
}

impl Webhooks for PostgresStore {
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
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
            )
            .bind(&id)
            .bind(backend)
            .bind(&spec.url)
            .bind(Value::from(spec.object_types.clone()))
            .bind(event_names(&spec.events))
            .bind(headers_json(&spec.headers))
            .bind(&secret)
            .bind(now)
            .execute(&self.pool)
            .await?;
            self.count_webhooks().await?;
            Ok(Webhook { id, backend: backend.to_owned(), spec, secret, created_ms: now, updated_ms: now })
        })
    }

    fn webhooks<'a>(&'a self, backend: &'a str) -> BoxFuture<'a, Result<Vec<Webhook>, StoreError>> {
        Box::pin(async move {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE backend = $1 ORDER BY created_ms, id"
            )))
            .bind(backend)
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(|row| webhook_from(row, 0)).collect()
        })
    }

    fn webhook<'a>(&'a self, backend: &'a str, id: &'a str) -> BoxFuture<'a, Result<Option<Webhook>, StoreError>> {
        Box::pin(async move {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE backend = $1 AND id = $2"
            )))
            .bind(backend)
            .bind(id)
            .fetch_optional(&self.pool)
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
                "UPDATE webhooks SET url = $1, object_types = $2, events = $3, headers = $4, updated_ms = $5
                 WHERE backend = $6 AND id = $7",
            )
            .bind(&spec.url)
            .bind(Value::from(spec.object_types.clone()))
            .bind(event_names(&spec.events))
            .bind(headers_json(&spec.headers))
            .bind(now_ms())
            .bind(backend)
            .bind(id)
            .execute(&self.pool)
            .await?;
            if done.rows_affected() == 0 {
                return Ok(None);
            }
            self.webhook(backend, id).await
        })
    }

    fn delete_webhook<'a>(&'a self, backend: &'a str, id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            let done = sqlx::query("DELETE FROM webhooks WHERE backend = $1 AND id = $2")
                .bind(backend)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() > 0 {
                sqlx::query("DELETE FROM webhook_deliveries WHERE webhook_id = $1").bind(id).execute(&mut *tx).await?;
            }
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
                 WHERE webhook_id = (SELECT id FROM webhooks WHERE backend = $1 AND id = $2)
                 ORDER BY id DESC LIMIT $3 OFFSET $4"
            )))
            .bind(backend)
            .bind(webhook)
            .bind(i64::from(limit))
            .bind(i64::from(offset))
            .fetch_all(&self.pool)
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
        Box::pin(async move { redeliver(self, backend, webhook, delivery).await })
    }

    fn has_webhooks(&self) -> bool {
        self.webhook_count.load(Ordering::Relaxed) > 0
    }

    fn due_deliveries<'a>(
        &'a self,
        now_ms: i64,
        limit: u32,
        busy: &'a [i64],
    ) -> BoxFuture<'a, Result<Vec<DueDelivery>, StoreError>> {
        Box::pin(async move { claim_due(self, now_ms, limit, busy).await })
    }

    fn next_due(&self) -> BoxFuture<'_, Result<Option<i64>, StoreError>> {
        Box::pin(async move {
            let (next,): (Option<i64>,) =
                sqlx::query_as("SELECT min(next_ms) FROM webhook_deliveries WHERE status = 'pending'")
                    .fetch_one(&self.pool)
                    .await?;
            Ok(next)
        })
    }

    fn record_outcomes<'a>(&'a self, outcomes: &'a [(i64, Outcome)]) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let now = now_ms();
            let mut tx = self.pool.begin().await?;
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
                     SET status = $1, attempts = attempts + 1, next_ms = coalesce($2, next_ms), finished_ms = $3,
                         last_status = $4, last_error = $5, claimed_until = NULL
                     WHERE id = $6 AND status = 'pending'",
                )
                .bind(status)
                .bind(next_ms)
                .bind(finished_ms)
                .bind(last_status.map(i32::from))
                .bind(last_error)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            // Another node's worker may hold the next delivery of an object whose earlier one just finished.
            announce(&self.committed, 0);
            Ok(())
        })
    }

    fn release<'a>(&'a self, ids: &'a [i64]) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            if ids.is_empty() {
                return Ok(());
            }
            // Claimed but not attempted: due again now, for any worker.
            sqlx::query(
                "UPDATE webhook_deliveries SET next_ms = $1, claimed_until = NULL
                 WHERE id = ANY($2) AND status = 'pending' AND claimed_until IS NOT NULL",
            )
            .bind(now_ms())
            .bind(ids)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
    }

    fn prune_deliveries(&self, before_ms: i64) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let done = sqlx::query("DELETE FROM webhook_deliveries WHERE status <> 'pending' AND finished_ms < $1")
                .bind(before_ms)
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected())
        })
    }
}

/// Claims up to `limit` due deliveries (none of `busy`, none behind an earlier pending one of its object to its
/// webhook) for this worker; see the module's comment.
async fn claim_due(store: &PostgresStore, now: i64, limit: u32, busy: &[i64]) -> Result<Vec<DueDelivery>, StoreError> {
    let delivery = prefixed(DELIVERY_COLUMNS, "d");
    let webhook = prefixed(WEBHOOK_COLUMNS, "w");
    let change = prefixed(super::changes::CHANGE_COLUMNS, "c");
    let mut tx = store.pool.begin().await?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {delivery}, {webhook}, {change}
         FROM webhook_deliveries AS d
         JOIN webhooks AS w ON w.id = d.webhook_id
         JOIN changes AS c ON c.seq = d.seq
         WHERE d.status = 'pending' AND d.next_ms <= $1 AND d.id <> ALL($2)
           AND NOT EXISTS (SELECT 1 FROM webhook_deliveries AS e
                           WHERE e.status = 'pending' AND e.webhook_id = d.webhook_id
                             AND e.object_id = d.object_id AND e.id < d.id)
         ORDER BY d.next_ms, d.id LIMIT $3
         FOR UPDATE OF d SKIP LOCKED"
    )))
    .bind(now)
    .bind(busy)
    .bind(i64::from(limit))
    .fetch_all(&mut *tx)
    .await?;
    let due = rows
        .iter()
        .map(|row| {
            Ok(DueDelivery {
                delivery: delivery_from(row, 0)?,
                webhook: webhook_from(row, 11)?,
                change: super::changes::change_from(super::changes::change_row(row, 20)?)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let ids: Vec<i64> = due.iter().map(|it| it.delivery.id).collect();
    sqlx::query("UPDATE webhook_deliveries SET next_ms = $1, claimed_until = $1 WHERE id = ANY($2)")
        .bind(now.saturating_add(store.webhook_lease_ms))
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(due)
}

async fn redeliver(
    store: &PostgresStore,
    backend: &str,
    webhook: &str,
    delivery: i64,
) -> Result<Option<Delivery>, StoreError> {
    let mut tx = store.pool.begin().await?;
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {}, EXISTS (SELECT 1 FROM changes c WHERE c.seq = d.seq) FROM webhook_deliveries d
         WHERE d.id = $1 AND d.webhook_id = (SELECT id FROM webhooks WHERE backend = $2 AND id = $3)
         FOR UPDATE OF d",
        prefixed(DELIVERY_COLUMNS, "d")
    )))
    .bind(delivery)
    .bind(backend)
    .bind(webhook)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    if !row.try_get::<bool, _>(11)? {
        // A delivered change is forgotten with the rest of the change log; only pending and dead ones keep it.
        return Err(StoreError::Invalid {
            message: "the change of this delivery is no longer kept".into(),
            property: None,
        });
    }
    // A delivery claimed by a worker keeps its lease: a second worker must not attempt it meanwhile.
    let updated = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE webhook_deliveries
         SET status = 'pending', attempts = 0, created_ms = $1, finished_ms = NULL,
             next_ms = CASE WHEN claimed_until > $1 THEN next_ms ELSE $1 END
         WHERE id = $2 RETURNING {DELIVERY_COLUMNS}"
    )))
    .bind(now_ms())
    .bind(delivery)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    // Wakes the workers, which wait for commits.
    announce(&store.committed, 0);
    delivery_from(&updated, 0).map(Some)
}

#[cfg(test)]
#[path = "webhooks_tests.rs"]
mod tests;
