//! The bus over Redis pub/sub, in the original MWS's own terms: the default gateway's messages go on channel
//! `websocket_messages` as `{"data","receivers"}` JSON, so Updraft nodes and original Ruby MWS nodes can share
//! one Redis. Other gateways use `websocket_messages:<gateway id>`, which an original node never hears.
//!
//! A node delivers its own publications itself, once Redis has taken them, and skips their echo; every other
//! node hears each message once on its one pattern subscription. Pub/sub keeps nothing: while a node's
//! subscription is down it misses what is published, so it reports not ready until it has subscribed again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use redis::aio::ConnectionManager;
use tokio::sync::oneshot;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::{Bus, BusError, Deliver, Publication, backoff, wire};

/// The original MWS's channel, which carries the default gateway's messages.
pub const CHANNEL: &str = "websocket_messages";
/// Every gateway's channel: `CHANNEL` and `CHANNEL:<gateway>`.
const PATTERN: &str = "websocket_messages*";
const DEFAULT_GATEWAY: &str = "default";
/// How long a publish may wait for Redis before the publisher is told the bus is unavailable.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

pub struct RedisBus {
    publisher: ConnectionManager,
    node: Arc<str>,
    deliver: Deliver,
    subscribed: Arc<AtomicBool>,
    _stop: DropGuard,
}

/// The channel of a gateway's messages.
pub fn channel_of(gateway: &str) -> String {
    if gateway == DEFAULT_GATEWAY { CHANNEL.to_owned() } else { format!("{CHANNEL}:{gateway}") }
}

/// The gateway whose messages `channel` carries, if it is one of ours.
fn gateway_of(channel: &str) -> Option<&str> {
    match channel.strip_prefix(CHANNEL)? {
        "" => Some(DEFAULT_GATEWAY),
        rest => rest.strip_prefix(':').filter(|gateway| !gateway.is_empty()),
    }
}

impl RedisBus {
    /// Connects and subscribes before it returns, so a wrong URL fails at start-up and a message published on
    /// another node once this one is up reaches it.
    pub async fn start(url: &str, node: &str, deliver: Deliver) -> Result<RedisBus, BusError> {
        let client = redis::Client::open(url).map_err(unavailable)?;
        let publisher = ConnectionManager::new(client.clone()).await.map_err(unavailable)?;
        let stop = CancellationToken::new();
        let subscribed = Arc::new(AtomicBool::new(false));
        let (first, first_done) = oneshot::channel();
        let listener = Listener { client, node: node.into(), deliver: deliver.clone(), subscribed: subscribed.clone() };
        tokio::spawn(listener.run(stop.clone(), first));
        first_done.await.map_err(|_| BusError("the Redis subscription stopped".into()))??;
        Ok(RedisBus { publisher, node: node.into(), deliver, subscribed, _stop: stop.drop_guard() })
    }
}

fn unavailable(err: redis::RedisError) -> BusError {
    BusError(format!("redis: {err}"))
}

impl Bus for RedisBus {
    fn publish(&self, publication: Publication) -> BoxFuture<'_, Result<(), BusError>> {
        Box::pin(async move {
            let mut command = redis::cmd("PUBLISH");
            command.arg(channel_of(&publication.gateway)).arg(wire::encode(&publication, &self.node));
            let mut publisher = self.publisher.clone();
            let publish = async {
                let sent = command.query_async::<i64>(&mut publisher).await;
                // After Redis restarts, the first command finds the old connection dead (and the manager then
                // connects again); the message never left, so it is sent once more.
                match sent {
                    Err(err) if err.is_connection_dropped() || err.is_io_error() => {
                        command.query_async::<i64>(&mut publisher).await
                    }
                    sent => sent,
                }
            };
            match tokio::time::timeout(PUBLISH_TIMEOUT, publish).await {
                Ok(sent) => sent.map_err(unavailable)?,
                Err(_) => return Err(BusError("redis: no answer to PUBLISH".into())),
            };
            (self.deliver)(publication).await;
            Ok(())
        })
    }

    fn ready(&self) -> bool {
        self.subscribed.load(Ordering::Relaxed)
    }
}

/// The node's one subscription, made again with backoff whenever it drops, until the bus is dropped.
struct Listener {
    client: redis::Client,
    node: Arc<str>,
    deliver: Deliver,
    subscribed: Arc<AtomicBool>,
}

impl Listener {
    async fn run(self, stop: CancellationToken, first: oneshot::Sender<Result<(), BusError>>) {
        let mut first = Some(first);
        let mut failures = 0u32;
        loop {
            let listened = tokio::select! {
                () = stop.cancelled() => return,
                listened = self.listen(&mut first) => listened,
            };
            self.subscribed.store(false, Ordering::Relaxed);
            metrics::gauge!("updraft_bus_connected").set(0.0);
            match listened {
                // Heard messages: the connection was good, so the next attempt starts from the shortest wait.
                Ok(()) => failures = 0,
                Err(err) => {
                    if let Some(first) = first.take() {
                        let _ = first.send(Err(unavailable(err)));
                        return;
                    }
                    tracing::warn!(%err, "the Redis subscription failed");
                }
            }
            tracing::warn!("the Redis subscription dropped; subscribing again");
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(backoff(failures)) => {}
            }
            failures = failures.saturating_add(1);
        }
    }

    /// Subscribes, then delivers what it hears until the connection ends.
    async fn listen(&self, first: &mut Option<oneshot::Sender<Result<(), BusError>>>) -> redis::RedisResult<()> {
        let mut pubsub = self.client.get_async_pubsub().await?;
        pubsub.psubscribe(PATTERN).await?;
        self.subscribed.store(true, Ordering::Relaxed);
        metrics::gauge!("updraft_bus_connected").set(1.0);
        tracing::info!("subscribed to Redis channel {PATTERN}");
        if let Some(first) = first.take() {
            let _ = first.send(Ok(()));
        }
        let mut messages = pubsub.into_on_message();
        while let Some(message) = messages.next().await {
            let Some(gateway) = gateway_of(message.get_channel_name()) else { continue };
            match wire::decode(gateway, message.get_payload_bytes()) {
                Ok((_, Some(origin))) if *origin == *self.node => {}
                Ok((publication, _)) => {
                    metrics::counter!("updraft_bus_messages_received_total").increment(1);
                    (self.deliver)(publication).await;
                }
                Err(err) => {
                    metrics::counter!("updraft_bus_messages_dropped_total").increment(1);
                    tracing::warn!(%err, channel = message.get_channel_name(), "a bus message is not a publication");
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_name_their_gateway() {
        assert_eq!(channel_of("default"), "websocket_messages");
        assert_eq!(channel_of("g-1"), "websocket_messages:g-1");
        assert_eq!(gateway_of("websocket_messages"), Some("default"));
        assert_eq!(gateway_of("websocket_messages:g-1"), Some("g-1"));
        assert_eq!(gateway_of("websocket_messagesx"), None);
        assert_eq!(gateway_of("websocket_messages:"), None);
        assert_eq!(gateway_of("other"), None);
    }
}
