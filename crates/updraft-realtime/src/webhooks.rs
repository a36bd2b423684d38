//! EDS webhooks: every committed change of a backend's objects is POSTed to the URLs its admins configured.
//!
//! The store keeps the queue (`updraft_store::Webhooks`): the transaction of each change queues one delivery per
//! matching webhook, and a delivery stays pending until its receiver answers 2xx.
//! This module is the worker that drains the queue:
//!
//! - **At least once, in order per object.** An outcome is recorded only after the attempt, so a crash between the
//!   two repeats the attempt; `Idempotency-Key` lets receivers drop the repeat. A delivery waits while an earlier
//!   one of the same object to the same webhook is pending.
//! - **Backoff, then dead letters.** Failed attempts are retried with exponential backoff and jitter until the
//!   retry window (24 h by default) has passed since the change; then the delivery is dead, kept for
//!   inspection and redelivery.
//! - **Isolation.** A global and a per-webhook limit on attempts in flight, and a timeout on each, so a slow or
//!   hanging receiver holds up only its own webhook.
//! - **Signed.** `X-Updraft-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">` with the webhook's secret,
//!   `X-Updraft-Timestamp` the Unix seconds it was signed at.

mod signature;
mod worker;

pub use signature::signature;
pub use worker::{Settings, claim_lease, run};
