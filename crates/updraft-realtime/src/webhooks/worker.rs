//! The delivery worker: attempts due deliveries with bounded concurrency, and records their outcomes in batches
//! (one transaction each, since every commit costs an fsync). It wakes when changes commit.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{Notify, mpsc, watch};
use updraft_core::timestamp::now_ms;
use updraft_store::{DueDelivery, Outcome, Webhooks};

use super::signature::signature;
use crate::frames;
use crate::outbound::{self, Guard, Recheck};

#[derive(Debug, Clone)]
pub struct Settings {
    /// Attempts in flight at once, across all webhooks.
    pub concurrency: usize,
    /// Attempts in flight at once to one webhook, so that a slow receiver cannot take every slot.
    pub per_webhook: usize,
    /// How long an attempt may take, connecting included.
    pub timeout: Duration,
    /// The delay after the first failure; it doubles after each further one, up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// How long after its change a delivery is retried before it is dead.
    pub retry_for: Duration,
    pub guard: Guard,
}

impl Settings {
    pub fn new(guard: Guard) -> Settings {
        Settings {
            concurrency: 128,
            per_webhook: 32,
            timeout: Duration::from_secs(10),
            retry_base: Duration::from_secs(5),
            retry_max: Duration::from_secs(3600),
            retry_for: Duration::from_secs(24 * 3600),
            guard,
        }
    }
}

/// What an attempt may take beyond its request's timeout (checking the target's addresses), at most: past
/// `timeout + ATTEMPT_SLACK` it is given up.
const ATTEMPT_SLACK: Duration = Duration::from_secs(5);

/// How long a store shared by several nodes should leave a delivery to the worker that claimed it: its whole
/// attempt, bounded to `timeout + ATTEMPT_SLACK`, plus a margin for the time between claim and start, for
/// recording the outcome and for nodes' clocks apart. A node killed mid-attempt holds its deliveries this long,
/// 30 s with the default 10 s timeout.
pub fn claim_lease(timeout: Duration) -> Duration {
    timeout + ATTEMPT_SLACK + Duration::from_secs(15)
}

/// Outcomes recorded per transaction, at most.
const RECORD_BATCH: usize = 512;
/// Response bodies are read (so the connection can be reused) up to this much, then dropped.
const MAX_RESPONSE: usize = 64 * 1024;

/// Deliveries in flight, by id, with their webhook.
type InFlight = Arc<Mutex<HashMap<i64, String>>>;

/// Runs until `changes` closes (the store is gone). `changes` grows whenever changes commit.
pub async fn run(store: Arc<dyn Webhooks>, mut changes: watch::Receiver<u64>, settings: Settings) {
    let client = delivery_client(&settings, None).expect("the webhook HTTP client");
    let in_flight: InFlight = Arc::default();
    let wake = Arc::new(Notify::new());
    let (outcomes, recorded) = mpsc::unbounded_channel();
    tokio::spawn(record(store.clone(), recorded, in_flight.clone(), wake.clone()));
    let settings = Arc::new(settings);
    loop {
        changes.mark_unchanged();
        if !store.has_webhooks() {
            // Nothing can be due: wait for the next commit (a new webhook is one) without touching the queue.
            if changes.changed().await.is_err() {
                return;
            }
            continue;
        }
        let started = start_due(&store, &client, &settings, &in_flight, &outcomes).await;
        let pause = match store.next_due().await {
            Ok(Some(next)) if next > now_ms() => Duration::from_millis((next - now_ms()) as u64),
            // Due but in flight, waiting behind an earlier delivery of its object, or over its webhook's limit:
            // an outcome wakes us; the pause only bounds how long a missed wake-up could last.
            Ok(Some(_)) if started == 0 => Duration::from_secs(1),
            Ok(Some(_)) => Duration::ZERO,
            Ok(None) => Duration::from_secs(30),
            Err(err) => {
                tracing::warn!(%err, "reading the webhook queue failed");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            closed = changes.changed() => if closed.is_err() { return },
            () = wake.notified() => (),
            () = tokio::time::sleep(pause.min(Duration::from_secs(30))) => (),
        }
    }
}

/// Starts the due deliveries there is room for; answers how many it started.
async fn start_due(
    store: &Arc<dyn Webhooks>,
    client: &reqwest::Client,
    settings: &Arc<Settings>,
    in_flight: &InFlight,
    outcomes: &mpsc::UnboundedSender<(i64, Outcome)>,
) -> usize {
    let (room, busy) = {
        let in_flight = in_flight.lock().expect("in-flight lock");
        (settings.concurrency.saturating_sub(in_flight.len()), in_flight.keys().copied().collect::<Vec<_>>())
    };
    if room == 0 {
        return 0;
    }
    let due = match store.due_deliveries(now_ms(), room as u32, &busy).await {
        Ok(due) => due,
        Err(err) => {
            tracing::warn!(%err, "reading due webhook deliveries failed");
            return 0;
        }
    };
    let mut started = 0;
    let mut released = Vec::new();
    for due in due {
        {
            let mut in_flight = in_flight.lock().expect("in-flight lock");
            let to_webhook = in_flight.values().filter(|webhook| **webhook == due.webhook.id).count();
            if to_webhook >= settings.per_webhook {
                released.push(due.delivery.id);
                continue;
            }
            in_flight.insert(due.delivery.id, due.webhook.id.clone());
        }
        started += 1;
        let (client, settings, outcomes) = (client.clone(), settings.clone(), outcomes.clone());
        tokio::spawn(async move {
            let bounded = tokio::time::timeout(settings.timeout + ATTEMPT_SLACK, attempt(&client, &settings, &due));
            let outcome = match bounded.await {
                Ok(outcome) => outcome,
                Err(_) => {
                    metrics::counter!("updraft_webhook_attempts_total", "outcome" => "failed").increment(1);
                    after_failure(&settings, &due, None, "timed out".to_owned())
                }
            };
            let _ = outcomes.send((due.delivery.id, outcome));
        });
    }
    if let Err(err) = store.release(&released).await {
        tracing::warn!(%err, "giving back webhook deliveries failed; they are due again when their claim ends");
    }
    started
}

/// Records outcomes as they come, many per transaction; only then are their deliveries out of flight.
async fn record(
    store: Arc<dyn Webhooks>,
    mut recorded: mpsc::UnboundedReceiver<(i64, Outcome)>,
    in_flight: InFlight,
    wake: Arc<Notify>,
) {
    let mut batch = Vec::with_capacity(RECORD_BATCH);
    while recorded.recv_many(&mut batch, RECORD_BATCH).await > 0 {
        while let Err(err) = store.record_outcomes(&batch).await {
            tracing::warn!(%err, "recording webhook outcomes failed; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        {
            let mut in_flight = in_flight.lock().expect("in-flight lock");
            for (id, _) in &batch {
                in_flight.remove(id);
            }
        }
        batch.clear();
        wake.notify_one();
    }
}

/// The client deliveries go through; `pinned` sends a name to the addresses the guard just checked.
fn delivery_client(
    settings: &Settings,
    pinned: Option<&(String, Vec<SocketAddr>)>,
) -> reqwest::Result<reqwest::Client> {
    outbound::client_builder(pinned)
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
        .pool_max_idle_per_host(settings.per_webhook)
        .user_agent(concat!("Updraft-Webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// One attempt of one delivery.
async fn attempt(client: &reqwest::Client, settings: &Settings, due: &DueDelivery) -> Outcome {
    let webhook = &due.webhook;
    let refused = |refusal: String| {
        metrics::counter!("updraft_webhook_attempts_total", "outcome" => "refused").increment(1);
        Outcome::Dead { status: None, error: format!("refused: {refusal}") }
    };
    // A name on one of our ports is resolved and checked now, and the request goes to exactly those addresses
    // (a client of its own: the shared one could reuse a connection or resolve anew).
    let pinned_client;
    let client = match settings.guard.recheck(&webhook.spec.url).await {
        Err(Recheck::Refused(refusal)) => return refused(refusal),
        Err(Recheck::Unresolved(error)) => {
            metrics::counter!("updraft_webhook_attempts_total", "outcome" => "failed").increment(1);
            return after_failure(settings, due, None, error);
        }
        Ok(None) => client,
        Ok(Some(pinned)) => match delivery_client(settings, Some(&pinned)) {
            Ok(pinned) => {
                pinned_client = pinned;
                &pinned_client
            }
            Err(err) => return after_failure(settings, due, None, describe(&err)),
        },
    };
    let body = frames::webhook_body(&due.change);
    let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut request = client.post(&webhook.spec.url);
    // Custom headers first: the ones below describe and sign the delivery and must not be overridden.
    for (name, value) in &webhook.spec.headers {
        request = request.header(name, value);
    }
    let event_id = due.change.seq.to_string();
    let request = request
        .header("Content-Type", "application/json")
        .header("X-Updraft-Event", due.change.event.name())
        .header("X-Updraft-Event-Id", &event_id)
        .header("Idempotency-Key", &event_id)
        .header("X-Updraft-Delivery", due.delivery.id.to_string())
        .header("X-Updraft-Webhook", &webhook.id)
        .header("X-Updraft-Attempt", (due.delivery.attempts + 1).to_string())
        .header("X-Updraft-Timestamp", timestamp.to_string())
        .header("X-Updraft-Signature", signature(&webhook.secret, timestamp, &body))
        .body(body);
    let failure = match request.send().await {
        Ok(mut response) => {
            let status = response.status();
            let mut read = 0;
            while let Ok(Some(chunk)) = response.chunk().await {
                read += chunk.len();
                if read > MAX_RESPONSE {
                    break;
                }
            }
            if status.is_success() {
                metrics::counter!("updraft_webhook_attempts_total", "outcome" => "delivered").increment(1);
                return Outcome::Delivered { status: status.as_u16() };
            }
            (Some(status.as_u16()), format!("the receiver answered {status}"))
        }
        Err(err) => (None, describe(&err)),
    };
    metrics::counter!("updraft_webhook_attempts_total", "outcome" => "failed").increment(1);
    after_failure(settings, due, failure.0, failure.1)
}

/// Retry with exponential backoff and jitter, at the latest at the end of the retry window; after it, dead.
fn after_failure(settings: &Settings, due: &DueDelivery, status: Option<u16>, error: String) -> Outcome {
    let now = now_ms();
    let give_up_at = due.delivery.created_ms + settings.retry_for.as_millis() as i64;
    if now >= give_up_at {
        metrics::counter!("updraft_webhook_dead_letters_total").increment(1);
        return Outcome::Dead { status, error };
    }
    let doublings = due.delivery.attempts.min(30);
    let delay = settings.retry_base.saturating_mul(1 << doublings.min(20)).min(settings.retry_max);
    // ±20 % so that deliveries failing together do not all come back together.
    let jitter = 0.8 + rand::random::<f64>() * 0.4;
    let next_ms = now + (delay.as_millis() as f64 * jitter) as i64;
    Outcome::Retry { next_ms: next_ms.min(give_up_at), status, error }
}

/// An error with its causes: reqwest's own message alone says little ("error sending request").
fn describe(err: &reqwest::Error) -> String {
    let mut text = if err.is_timeout() { "timed out".to_owned() } else { err.to_string() };
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
