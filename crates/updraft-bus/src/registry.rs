//! The cluster's list of open sockets, kept in the bus's own store (docs/scale-out.md): each node records its
//! sockets as they open and close, holds a lease that it renews, and closes a socket of its own when another
//! node asks. A node killed without a word loses its lease within [`LEASE`], and its sockets drop out of every
//! listing then.
//!
//! One task per node writes the node's events in the order they happened, in batches, retrying while the store
//! is away; when it finds its lease had lapsed (the store restarted, or the node was cut off for too long), it
//! records every socket the node holds again.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::{BusError, Deliver, backoff};

/// How long a node's sockets stay listed after its last renewal.
pub(crate) const LEASE: Duration = Duration::from_secs(30);
/// How often a node renews its lease.
const RENEW: Duration = Duration::from_secs(10);
/// Events written in one round trip at most.
const BATCH: usize = 512;

/// A socket open on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSocket {
    pub gateway: String,
    pub id: String,
    pub tags: Vec<String>,
    /// Milliseconds since the Unix epoch.
    pub connected_ms: u64,
}

/// An open socket as the cluster lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketRecord {
    pub id: String,
    pub tags: Vec<String>,
    pub connected_ms: u64,
    /// The node that holds it.
    pub node: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketEvent {
    Opened(OpenSocket),
    Closed {
        gateway: String,
        id: String,
    },
    /// An open socket was given new tags (its user's groups changed).
    Retagged(OpenSocket),
}

/// What the bus may ask of this node's own gateways.
#[derive(Clone)]
pub struct Node {
    /// Hands a publication to this node's sockets.
    pub deliver: Deliver,
    pub close: CloseSocket,
    pub sockets: ListSockets,
}

/// Every socket this node holds, of one gateway or (`None`) of all.
pub type ListSockets = Arc<dyn Fn(Option<&str>) -> Vec<OpenSocket> + Send + Sync>;

/// Closes socket `id` (second) of a gateway (first) if this node holds it; answers whether it did.
pub type CloseSocket = Arc<dyn Fn(&str, &str) -> bool + Send + Sync>;

/// A node's request that the holder of a socket close it, on the bus's control channel.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct CloseRequest {
    pub gateway: String,
    pub socket: String,
    /// The node that holds it; the others ignore the request.
    pub node: String,
}

impl CloseRequest {
    /// Carries the request out if it is for `node`.
    pub(crate) fn handle(payload: &[u8], node: &str, local: &Node) {
        match serde_json::from_slice::<CloseRequest>(payload) {
            Ok(request) if request.node == node => {
                (local.close)(&request.gateway, &request.socket);
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(%err, "a control message is not a close request"),
        }
    }
}

/// Where an engine keeps the registry.
pub(crate) trait Registry: Send + Sync + 'static {
    fn apply<'a>(&'a self, node: &'a str, events: &'a [SocketEvent]) -> BoxFuture<'a, Result<(), BusError>>;
    /// Renews the node's lease; answers whether it had lapsed, so the registry may have lost the node's sockets.
    fn renew<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<bool, BusError>>;
    /// Gives the lease up and forgets the node's sockets, at a graceful shutdown.
    fn leave<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<(), BusError>>;
}

/// Writes the node's events and renews its lease until `stop`, then leaves.
/// `reconnected` is signalled when the bus connects again: the store may have restarted empty, so the lease is
/// renewed (and the node's sockets recorded again) at once rather than at the next tick.
pub(crate) async fn keep(
    registry: impl Registry,
    node: String,
    local: Node,
    mut events: mpsc::UnboundedReceiver<SocketEvent>,
    reconnected: Arc<Notify>,
    stop: CancellationToken,
) {
    let mut renewal = tokio::time::interval(RENEW);
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            () = reconnected.notified() => renewal.reset_immediately(),
            _ = renewal.tick() => match registry.renew(&node).await {
                Ok(true) => {
                    let all = (local.sockets)(None).into_iter().map(SocketEvent::Opened).collect::<Vec<_>>();
                    write(&registry, &node, &all, &stop).await;
                }
                Ok(false) => {}
                Err(err) => {
                    tracing::warn!(%err, "the node's lease could not be renewed");
                    // The store is away: try again soon, so that the node is listed again soon after it is back.
                    renewal.reset_after(Duration::from_secs(1));
                }
            },
            received = events.recv_many(&mut batch, BATCH) => {
                if received == 0 {
                    break;
                }
                write(&registry, &node, &batch, &stop).await;
                batch.clear();
            }
        }
    }
    // Sockets close as the node stops: their events are written if the store answers at once.
    events.close();
    while events.recv_many(&mut batch, BATCH).await > 0 {
        let _ = tokio::time::timeout(Duration::from_secs(1), registry.apply(&node, &batch)).await;
        batch.clear();
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), registry.leave(&node)).await;
}

/// Writes `events`, retrying with backoff until the store takes them or the node stops.
async fn write(registry: &impl Registry, node: &str, events: &[SocketEvent], stop: &CancellationToken) {
    if events.is_empty() {
        return;
    }
    let mut failures = 0;
    while let Err(err) = registry.apply(node, events).await {
        tracing::warn!(%err, events = events.len(), "socket registry unavailable; retrying");
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(backoff(failures)) => {}
        }
        failures += 1;
    }
}

/// The record of `socket` held by `node`.
pub(crate) fn record(socket: &OpenSocket, node: &str) -> SocketRecord {
    SocketRecord {
        id: socket.id.clone(),
        tags: socket.tags.clone(),
        connected_ms: socket.connected_ms,
        node: node.into(),
    }
}

/// Whether `record` is of a socket on another node than `node`. This node's own sockets are answered by its hub:
/// its records may lag behind by the writes still queued.
pub(crate) fn elsewhere(record: &SocketRecord, node: &str) -> bool {
    record.node != node
}

/// A listing of `gateway`: the other nodes' records, and this node's own sockets as its hub has them now.
pub(crate) fn merge(records: Vec<SocketRecord>, node: &str, local: &Node, gateway: &str) -> Vec<SocketRecord> {
    let mine = (local.sockets)(Some(gateway)).into_iter().map(|socket| record(&socket, node));
    records.into_iter().filter(|record| elsewhere(record, node)).chain(mine).collect()
}
