//! The bus over Redis pub/sub, in the original MWS's own terms: the default gateway's messages go on channel
//! `websocket_messages` as `{"data","receivers"}` JSON, so Updraft nodes and original Ruby MWS nodes can share
//! one Redis. Other gateways use `websocket_messages:<gateway id>`, which an original node never hears.
//!
//! A message is numbered, logged and published by one script (`redis_journal.rs`); every node, the publisher
//! included, hears it once on its one pattern subscription and delivers it then. While a node's subscription is
//! down it hears nothing, so it reports not ready until it has subscribed again, and then first delivers, for each
//! gateway it has sockets of, what the log kept after the last number it heard (or, for a gateway whose numbering
//! began after the node subscribed, the whole log). Messages an original node publishes
//! carry no number and are delivered as they come. Tickets and the socket registry are keys beside the channels
//! (`redis_registry.rs`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use redis::aio::{ConnectionManager, MultiplexedConnection};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::last_heard::LastHeard;
use crate::redis_registry::{self, CONTROL, RedisRegistry};
use crate::registry::{self, CloseRequest, Node, SocketEvent, SocketRecord};
use crate::{Bus, BusError, History, Publication, Redeemed, SharedTicket, answered, backoff, redis_journal, wire};

/// The original MWS's channel, which carries the default gateway's messages.
const CHANNEL: &str = "websocket_messages";
/// Every gateway's channel: `CHANNEL` and `CHANNEL:<gateway>`.
const PATTERN: &str = "websocket_messages*";
const DEFAULT_GATEWAY: &str = "default";
/// Where a shared ticket is kept, with the rest of its lifetime as the key's.
const TICKET_PREFIX: &str = "updraft:ticket:";

pub struct RedisBus {
    publisher: ConnectionManager,
    node: Arc<str>,
    local: Node,
    subscribed: Arc<AtomicBool>,
    events: mpsc::UnboundedSender<SocketEvent>,
    _stop: DropGuard,
}

/// The channel of a gateway's messages.
fn channel_of(gateway: &str) -> String {
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
    pub async fn start(url: &str, node: &str, local: Node) -> Result<RedisBus, BusError> {
        let client = redis::Client::open(url).map_err(unavailable)?;
        let publisher = ConnectionManager::new(client.clone()).await.map_err(unavailable)?;
        let stop = CancellationToken::new();
        let subscribed = Arc::new(AtomicBool::new(false));
        let (first, first_done) = oneshot::channel();
        let reconnected = Arc::new(tokio::sync::Notify::new());
        let listener = Listener {
            client,
            node: node.into(),
            local: local.clone(),
            subscribed: subscribed.clone(),
            reconnected: reconnected.clone(),
        };
        tokio::spawn(listener.run(stop.clone(), first));
        first_done.await.map_err(|_| BusError("the Redis subscription stopped".into()))??;
        let (events, queued) = mpsc::unbounded_channel();
        let registry = RedisRegistry::new(publisher.clone());
        tokio::spawn(registry::keep(registry, node.to_owned(), local.clone(), queued, reconnected, stop.clone()));
        Ok(RedisBus { publisher, node: node.into(), local, subscribed, events, _stop: stop.drop_guard() })
    }
}

pub(crate) fn unavailable(err: redis::RedisError) -> BusError {
    BusError::of("redis", err)
}

impl Bus for RedisBus {
    fn publish(&self, publication: Publication) -> BoxFuture<'_, Result<(), BusError>> {
        Box::pin(async move {
            let message = wire::encode(&publication, &self.node);
            let command = redis_journal::publish(&channel_of(&publication.gateway), &publication, &message);
            self.query::<i64>(command).await.map(drop)
        })
    }

    fn history(&self, gateway: &str, since: u64) -> BoxFuture<'_, Result<Option<History>, BusError>> {
        let gateway = gateway.to_owned();
        Box::pin(async move {
            let mut connection = self.publisher.clone();
            let history = timed(redis_journal::history(&mut connection, &gateway, since)).await?;
            history.map(Some).map_err(unavailable)
        })
    }

    fn ready(&self) -> bool {
        self.subscribed.load(Ordering::Relaxed)
    }

    fn share_ticket(&self, id: &str, ticket: &SharedTicket) -> BoxFuture<'_, Result<(), BusError>> {
        let key = format!("{TICKET_PREFIX}{id}");
        let value = serde_json::to_vec(ticket).expect("a ticket serializes");
        let lifetime = u64::try_from(ticket.time_left().as_millis()).unwrap_or(u64::MAX).max(1);
        Box::pin(async move {
            let mut command = redis::cmd("SET");
            command.arg(key).arg(value).arg("PX").arg(lifetime).arg("NX");
            self.query::<Option<String>>(command).await.map(drop)
        })
    }

    fn take_ticket(&self, id: &str) -> BoxFuture<'_, Result<Redeemed, BusError>> {
        let key = format!("{TICKET_PREFIX}{id}");
        Box::pin(async move {
            let mut command = redis::cmd("GETDEL");
            command.arg(key);
            let value = self.query::<Option<Vec<u8>>>(command).await?;
            Ok(Redeemed::Taken(value.and_then(|value| SharedTicket::usable(&value))))
        })
    }

    fn announce(&self, event: SocketEvent) {
        // Fails only once the registry's task has stopped with the bus.
        let _ = self.events.send(event);
    }

    fn sockets(&self, gateway: &str) -> BoxFuture<'_, Result<Option<Vec<SocketRecord>>, BusError>> {
        let gateway = gateway.to_owned();
        Box::pin(async move {
            let mut connection = self.publisher.clone();
            let records = timed(redis_registry::sockets(&mut connection, &gateway)).await?.map_err(unavailable)?;
            Ok(Some(registry::merge(records, &self.node, &self.local, &gateway)))
        })
    }

    fn socket(&self, gateway: &str, id: &str) -> BoxFuture<'_, Result<Option<SocketRecord>, BusError>> {
        let (gateway, id) = (gateway.to_owned(), id.to_owned());
        Box::pin(async move {
            let mut connection = self.publisher.clone();
            let record =
                timed(redis_registry::record_of(&mut connection, &gateway, &id)).await?.map_err(unavailable)?;
            Ok(record.filter(|record| registry::elsewhere(record, &self.node)))
        })
    }

    fn close_socket(&self, gateway: &str, id: &str) -> BoxFuture<'_, Result<bool, BusError>> {
        let (gateway, id) = (gateway.to_owned(), id.to_owned());
        Box::pin(async move {
            let Some(record) = self.socket(&gateway, &id).await? else { return Ok(false) };
            let request = CloseRequest { gateway, socket: id, node: record.node };
            let mut command = redis::cmd("PUBLISH");
            command.arg(CONTROL).arg(serde_json::to_vec(&request).expect("a request serializes"));
            self.query::<i64>(command).await.map(|_| true)
        })
    }
}

async fn timed<T>(work: impl std::future::Future<Output = T>) -> Result<T, BusError> {
    answered("redis", work).await
}

impl RedisBus {
    /// One command. After Redis restarts, the first command finds the old connection dead (the manager then
    /// connects again) and never left, so it is sent once more.
    async fn query<T: redis::FromRedisValue>(&self, command: redis::Cmd) -> Result<T, BusError> {
        let mut publisher = self.publisher.clone();
        let query = async {
            match command.query_async::<T>(&mut publisher).await {
                Err(err) if err.is_connection_dropped() || err.is_io_error() => {
                    command.query_async(&mut publisher).await
                }
                done => done,
            }
        };
        timed(query).await?.map_err(unavailable)
    }
}

/// The node's one subscription, made again with backoff whenever it drops, until the bus is dropped.
struct Listener {
    client: redis::Client,
    node: Arc<str>,
    local: Node,
    subscribed: Arc<AtomicBool>,
    /// Told after every subscription but the first.
    reconnected: Arc<tokio::sync::Notify>,
}

impl Listener {
    async fn run(self, stop: CancellationToken, first: oneshot::Sender<Result<(), BusError>>) {
        let mut first = Some(first);
        let mut failures = 0u32;
        // The last number heard of each gateway.
        let mut heard = HashMap::new();
        loop {
            let listened = tokio::select! {
                () = stop.cancelled() => return,
                listened = self.listen(&mut first, &mut heard) => listened,
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

    /// Subscribes, catches up after a reconnect, then delivers what it hears until the connection ends.
    async fn listen(
        &self,
        first: &mut Option<oneshot::Sender<Result<(), BusError>>>,
        heard: &mut HashMap<String, LastHeard>,
    ) -> redis::RedisResult<()> {
        if first.is_some() {
            self.remember_numbers(heard).await;
        }
        let mut pubsub = self.client.get_async_pubsub().await?;
        pubsub.psubscribe(PATTERN).await?;
        pubsub.subscribe(CONTROL).await?;
        self.subscribed.store(true, Ordering::Relaxed);
        metrics::gauge!("updraft_bus_connected").set(1.0);
        tracing::info!("subscribed to Redis channel {PATTERN}");
        match first.take() {
            Some(first) => drop(first.send(Ok(()))),
            None => {
                self.reconnected.notify_one();
                // What is published from now on is heard: first what was missed, then that.
                self.catch_up(heard).await;
            }
        }
        let mut messages = pubsub.into_on_message();
        while let Some(message) = messages.next().await {
            if message.get_channel_name() == CONTROL {
                CloseRequest::handle(message.get_payload_bytes(), &self.node, &self.local);
                continue;
            }
            let Some(gateway) = gateway_of(message.get_channel_name()) else { continue };
            let (publication, _) = match wire::decode_counted(gateway, message.get_payload_bytes()) {
                Ok(decoded) => decoded,
                Err(err) => {
                    tracing::warn!(%err, channel = message.get_channel_name(), "a bus message is not a publication");
                    continue;
                }
            };
            if publication.seq.is_some() && !heard.entry(gateway.to_owned()).or_default().fresh(publication.seq) {
                continue;
            }
            wire::hand_over(&self.local, publication).await;
        }
        Ok(())
    }

    /// A connection of its own for reading the gateways' numbers and logs around a subscription: the shared
    /// one may still be the one Redis dropped, and a command on it can wait for its reconnection.
    async fn reader(&self) -> Result<MultiplexedConnection, BusError> {
        timed(self.client.get_multiplexed_async_connection()).await?.map_err(unavailable)
    }

    /// Every gateway's latest number, within the bus's time bound, read on a new [`Listener::reader`], which is
    /// answered too for the reads that follow.
    async fn latest_numbers(&self) -> Result<(MultiplexedConnection, HashMap<String, u64>), BusError> {
        let mut reader = self.reader().await?;
        let numbers = timed(redis_journal::latest_numbers(&mut reader)).await?.map_err(unavailable)?;
        Ok((reader, numbers))
    }

    /// Before the first subscription: what each gateway has published so far came before this node, which a
    /// catch-up must not deliver.
    async fn remember_numbers(&self, heard: &mut HashMap<String, LastHeard>) {
        match self.latest_numbers().await {
            Ok((_, numbers)) => {
                for (gateway, latest) in numbers {
                    heard.entry(gateway).or_insert_with(|| LastHeard::new(Some(latest)));
                }
            }
            Err(err) => tracing::warn!(%err, "reading the gateways' numbers failed; a catch-up may repeat messages"),
        }
    }

    /// After a reconnect: delivers, for each gateway this node has sockets of, what its log kept after the last
    /// number heard; a gateway never heard had no number when the node first subscribed (`remember_numbers`),
    /// so all it published was missed. Of the other gateways it only notes the latest number: they have no one
    /// here to deliver to.
    async fn catch_up(&self, heard: &mut HashMap<String, LastHeard>) {
        let (mut reader, numbers) = match self.latest_numbers().await {
            Ok(read) => read,
            Err(err) => {
                tracing::warn!(%err, "reading the gateways' numbers failed: nothing is caught up");
                return;
            }
        };
        let served: HashSet<String> = (self.local.sockets)(None).into_iter().map(|socket| socket.gateway).collect();
        // A gateway heard but numbered no more: Redis lost its numbers (a restart without persistence), which
        // start over.
        let gone: Vec<String> = heard.keys().filter(|gateway| !numbers.contains_key(*gateway)).cloned().collect();
        for (gateway, latest) in numbers.into_iter().chain(gone.into_iter().map(|gateway| (gateway, 0))) {
            let last = heard.entry(gateway.clone()).or_default();
            if !served.contains(&gateway) {
                *last = LastHeard::new(Some(latest));
                continue;
            }
            let read = match last.get() {
                Some(after) => timed(redis_journal::history(&mut reader, &gateway, after)).await,
                None => timed(redis_journal::whole_log(&mut reader, &gateway, latest)).await,
            };
            last.catch_up(read.and_then(|read| read.map_err(unavailable)), "redis", &gateway, &self.local).await;
        }
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
