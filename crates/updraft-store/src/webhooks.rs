//! Webhooks: URLs a backend's changes are POSTed to, and the durable queue of those deliveries.
//!
//! The transaction that records a change also queues one delivery per matching webhook (the outbox), so a
//! change is queued exactly once, if and only if it committed, however the process stops. Deliveries of one
//! object to one webhook go out in order: a delivery waits while an earlier one of the same object is pending.

use crate::{BoxFuture, Change, ChangeEvent, StoreError};

/// What a webhook asks for; empty `object_types`/`events` mean all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSpec {
    pub url: String,
    /// Internal type names: `objects.todos`, `users`, `usergroups`.
    pub object_types: Vec<String>,
    pub events: Vec<ChangeEvent>,
    /// Sent with every delivery, e.g. `Authorization` for an MWS receiver.
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub id: String,
    pub backend: String,
    pub spec: WebhookSpec,
    /// The HMAC-SHA256 key deliveries are signed with.
    pub secret: String,
    pub created_ms: i64,
    pub updated_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Not yet accepted by the receiver; tried again at `next_ms`.
    Pending,
    Delivered,
    /// Given up on after the retry window; kept, and can be redelivered.
    Dead,
}

impl DeliveryStatus {
    pub fn name(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Dead => "dead",
        }
    }

    pub fn parse(name: &str) -> Option<DeliveryStatus> {
        [DeliveryStatus::Pending, DeliveryStatus::Delivered, DeliveryStatus::Dead]
            .into_iter()
            .find(|status| status.name() == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: i64,
    pub webhook_id: String,
    /// The change delivered (`Change::seq`), also the event's idempotency key.
    pub seq: i64,
    pub object_id: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_ms: i64,
    pub created_ms: i64,
    pub finished_ms: Option<i64>,
    /// The receiver's HTTP status on the last attempt, if it answered.
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
}

/// A delivery to attempt now, with what it delivers.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub delivery: Delivery,
    pub webhook: Webhook,
    pub change: Change,
}

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered { status: u16 },
    Retry { next_ms: i64, status: Option<u16>, error: String },
    Dead { status: Option<u16>, error: String },
}

pub trait Webhooks: Send + Sync {
    /// A new webhook; it hears of changes committed from now on.
    fn create_webhook<'a>(
        &'a self,
        backend: &'a str,
        spec: WebhookSpec,
        secret: String,
    ) -> BoxFuture<'a, Result<Webhook, StoreError>>;
    fn webhooks<'a>(&'a self, backend: &'a str) -> BoxFuture<'a, Result<Vec<Webhook>, StoreError>>;
    fn webhook<'a>(&'a self, backend: &'a str, id: &'a str) -> BoxFuture<'a, Result<Option<Webhook>, StoreError>>;
    fn update_webhook<'a>(
        &'a self,
        backend: &'a str,
        id: &'a str,
        spec: WebhookSpec,
    ) -> BoxFuture<'a, Result<Option<Webhook>, StoreError>>;
    /// Deletes the webhook and its deliveries, pending ones included.
    fn delete_webhook<'a>(&'a self, backend: &'a str, id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// A webhook's deliveries, newest first.
    fn deliveries<'a>(
        &'a self,
        backend: &'a str,
        webhook: &'a str,
        limit: u32,
        offset: u32,
    ) -> BoxFuture<'a, Result<Vec<Delivery>, StoreError>>;
    /// Queues a delivery again, at once and with a fresh retry window; `None` when there is no such delivery.
    fn redeliver<'a>(
        &'a self,
        backend: &'a str,
        webhook: &'a str,
        delivery: i64,
    ) -> BoxFuture<'a, Result<Option<Delivery>, StoreError>>;
    /// Whether any backend has a webhook (answered from memory).
    fn has_webhooks(&self) -> bool;
    /// Up to `limit` pending deliveries due at `now_ms`, oldest first, none of them in `busy` and none waiting
    /// behind an earlier pending delivery of the same object to the same webhook.
    fn due_deliveries<'a>(
        &'a self,
        now_ms: i64,
        limit: u32,
        busy: &'a [i64],
    ) -> BoxFuture<'a, Result<Vec<DueDelivery>, StoreError>>;
    /// The earliest `next_ms` of a pending delivery, if any.
    fn next_due(&self) -> BoxFuture<'_, Result<Option<i64>, StoreError>>;
    /// Records attempts, all in one transaction.
    fn record_outcomes<'a>(&'a self, outcomes: &'a [(i64, Outcome)]) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Gives back deliveries [`Webhooks::due_deliveries`] answered that the worker will not attempt now (over its
    /// webhook's limit): a store shared by several workers claims what it answers.
    fn release<'a>(&'a self, ids: &'a [i64]) -> BoxFuture<'a, Result<(), StoreError>> {
        let _ = ids;
        Box::pin(async { Ok(()) })
    }
    /// Forgets finished deliveries (delivered or dead) that finished before `before_ms`.
    fn prune_deliveries(&self, before_ms: i64) -> BoxFuture<'_, Result<u64, StoreError>>;
}
