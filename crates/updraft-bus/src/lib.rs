//! The bus that carries a published message to every node that may hold a receiver.
//!
//! One implementation per deployment, chosen at start-up: [`LocalBus`] on a single node;
//! distributed ones (Redis, NATS) carry one copy per node, never one per socket.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

#[cfg(test)]
mod bus_tests;
mod last_heard;
mod nats;
mod nats_interest;
mod nats_journal;
mod nats_listener;
mod nats_registry;
mod nats_routes;
mod redis;
mod redis_journal;
mod redis_registry;
mod registry;
mod wire;

pub use registry::{CloseSocket, ListSockets, Node, OpenSocket, SocketEvent, SocketRecord};

pub use nats::NatsBus;
pub use redis::RedisBus;

/// A message for the sockets of one gateway. Receivers are kept as given: each node
/// resolves them against its own sockets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Publication {
    pub gateway: String,
    pub data: Bytes,
    pub everyone: bool,
    pub sockets: Vec<String>,
    pub tags: Vec<String>,
    /// Its number across the cluster, given by a bus that numbers ([`Bus::history`]) as it carries it; `None`
    /// when each node numbers what it delivers.
    pub seq: Option<u64>,
    /// Names the message for a numbering bus, which keeps one of those published under the same name by several
    /// nodes (each node follows a shared change log and publishes each change): numbered and delivered once.
    pub once: Option<String>,
}

/// What a numbering bus kept of a gateway's messages after the number a socket resumes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum History {
    /// Every message after it, oldest first (each with its `seq`); `latest` is the bus's latest number.
    Kept { latest: u64, missed: Vec<Publication> },
    /// Some of them are gone (or the number is not one the bus gave): the socket should refetch its state.
    Gap { latest: u64 },
}

#[derive(Debug, thiserror::Error)]
#[error("bus unavailable: {0}")]
pub struct BusError(pub String);

impl BusError {
    fn of(engine: &str, err: impl std::fmt::Display) -> BusError {
        BusError(format!("{engine}: {err}"))
    }
}

/// How long the bus may take to answer before the caller is told it is unavailable.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// `work`'s outcome, or a `BusError` naming `engine` once it has taken longer than [`ANSWER_TIMEOUT`].
async fn answered<T>(engine: &str, work: impl std::future::Future<Output = T>) -> Result<T, BusError> {
    tokio::time::timeout(ANSWER_TIMEOUT, work).await.map_err(|_| BusError::of(engine, "no answer"))
}

pub use futures_util::future::BoxFuture;

/// What a node does with a publication that reached it; resolves once the publication is queued for the node's
/// sockets.
pub type Deliver = Arc<dyn Fn(Publication) -> BoxFuture<'static, ()> + Send + Sync>;

pub trait Bus: Send + Sync {
    /// Resolves once the publication is accepted for delivery on every node.
    fn publish(&self, publication: Publication) -> BoxFuture<'_, Result<(), BusError>>;

    /// What the bus kept of `gateway`'s messages after number `since` (0: a first connect, nothing missed), when it
    /// numbers messages across the cluster; `None` when each node numbers its own (its gateway journal answers).
    fn history(&self, _gateway: &str, _since: u64) -> BoxFuture<'_, Result<Option<History>, BusError>> {
        Box::pin(std::future::ready(Ok(None)))
    }

    /// Whether this node hears what other nodes publish right now: `/readyz` answers 503 while it does not.
    fn ready(&self) -> bool {
        true
    }

    /// Makes a socket ticket this node issued redeemable on every node, once. A single node has nothing to share.
    fn share_ticket(&self, _id: &str, _ticket: &SharedTicket) -> BoxFuture<'_, Result<(), BusError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Takes a shared ticket wherever it was issued: the first taker on any node gets it, everyone after gets
    /// `Taken(None)`, as does anyone after it expired.
    fn take_ticket(&self, _id: &str) -> BoxFuture<'_, Result<Redeemed, BusError>> {
        Box::pin(std::future::ready(Ok(Redeemed::NotShared)))
    }

    /// Records that a socket opened or closed on this node. Never waits: the events are written in order by a
    /// task of the bus. A single node's own gateways are the whole list.
    fn announce(&self, _event: SocketEvent) {}

    /// The open sockets of `gateway` on every live node; `None` when this node's own are all there are.
    fn sockets(&self, _gateway: &str) -> BoxFuture<'_, Result<Option<Vec<SocketRecord>>, BusError>> {
        Box::pin(std::future::ready(Ok(None)))
    }

    /// Socket `id` of `gateway` open on another live node.
    fn socket(&self, _gateway: &str, _id: &str) -> BoxFuture<'_, Result<Option<SocketRecord>, BusError>> {
        Box::pin(std::future::ready(Ok(None)))
    }

    /// Asks the other live node that holds socket `id` of `gateway` to close it; false when none does.
    fn close_socket(&self, _gateway: &str, _id: &str) -> BoxFuture<'_, Result<bool, BusError>> {
        Box::pin(std::future::ready(Ok(false)))
    }
}

/// A socket ticket as the nodes share it: the gateway it opens, the socket's tags and when it expires.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SharedTicket {
    pub gateway: String,
    pub tags: Vec<String>,
    /// Milliseconds since the Unix epoch.
    pub expires_ms: u64,
    /// The EDS user an `eds`-mode socket follows (closed or re-tagged as its access changes), so that the node
    /// that opens the socket follows it as the issuing node would.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follows: Option<Follows>,
}

/// Whom a socket follows: a user of a backend, and the SHA-256 (hex) of the token its URI was asked with.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Follows {
    pub backend: String,
    pub user: String,
    pub token_sha256: String,
}

impl SharedTicket {
    /// The rest of its lifetime; zero once expired.
    fn time_left(&self) -> Duration {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Duration::from_millis(self.expires_ms).saturating_sub(now)
    }

    /// What a taker found stored: the ticket, unless it is unreadable or expired.
    fn usable(stored: &[u8]) -> Option<SharedTicket> {
        serde_json::from_slice::<SharedTicket>(stored).ok().filter(|ticket| !ticket.time_left().is_zero())
    }
}

/// What taking a ticket found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redeemed {
    /// Tickets are not shared (one node): the node's own tickets decide.
    NotShared,
    /// The shared ticket, if this caller is the first to take it and it has not expired.
    Taken(Option<SharedTicket>),
}

/// The wait before reconnecting after `failures` failed attempts: 100 ms, doubling, at most 5 s.
fn backoff(failures: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << failures.min(6))).min(Duration::from_secs(5))
}

/// The single-node bus: publishing is delivering, with no copy.
pub struct LocalBus {
    deliver: Deliver,
}

impl LocalBus {
    pub fn new(deliver: Deliver) -> LocalBus {
        LocalBus { deliver }
    }
}

impl Bus for LocalBus {
    fn publish(&self, publication: Publication) -> BoxFuture<'_, Result<(), BusError>> {
        let delivered = (self.deliver)(publication);
        Box::pin(async move {
            delivered.await;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[tokio::test]
    async fn local_bus_delivers_before_publish_resolves() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let bus = LocalBus::new(Arc::new(move |p: Publication| {
            sink.lock().unwrap().push(p);
            Box::pin(std::future::ready(())) as BoxFuture<'static, ()>
        }));
        let publication = Publication {
            gateway: "default".into(),
            data: Bytes::from_static(b"hi"),
            everyone: true,
            ..Publication::default()
        };
        bus.publish(publication.clone()).await.unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![publication]);
    }
}
