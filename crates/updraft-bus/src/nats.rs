//! The bus over NATS: a gateway's publications go through a JetStream stream that numbers them and puts them on
//! subject `updraft.mws.<gateway id>` (`nats_journal.rs`), in the same JSON as over Redis ([`crate::wire`]); a
//! node subscribes to the subjects of the gateways it holds sockets of (`nats_interest.rs`).
//!
//! A publish is acknowledged once the stream holds the message. Every node, the publisher included, delivers it
//! when it hears it back, so each node's sockets get a gateway's messages in the stream's order and numbering.
//! The client reconnects (with backoff) and subscribes again by itself; while it is away the node reports not
//! ready, publishing is refused, and what others publish meanwhile does not reach its sockets live (a socket that
//! resumes with `since` gets it from the stream).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use tokio_util::sync::{CancellationToken, DropGuard};

use async_nats::jetstream::kv;
use tokio::sync::mpsc;

use crate::nats_interest::Interest;
use crate::nats_journal::Journal;
use crate::nats_registry::{Bucket, CONTROL, NatsRegistry, failed};
use crate::registry::{self, CloseRequest, Node, SocketEvent, SocketRecord};
use crate::{Bus, BusError, History, Publication, Redeemed, SharedTicket, answered, backoff, wire};

/// The JetStream key-value bucket of shared tickets. Each value says when it expires; the bucket's own age
/// limit only clears what nobody took.
const TICKETS: &str = "updraft_tickets";
const TICKETS_KEPT: Duration = Duration::from_secs(3600);

pub struct NatsBus {
    client: async_nats::Client,
    journal: Arc<Journal>,
    tickets: Bucket,
    /// The tickets this node shared, with the revision their creation got, until taken or expired: taking one of
    /// them here (the common case behind a load balancer that keeps a client on one node) needs no read.
    /// Each holds the bytes the bucket got (no copy), and the map shrinks as it empties, so a burst of tickets
    /// leaves no table behind.
    issued: std::sync::Mutex<std::collections::HashMap<String, (u64, bytes::Bytes)>>,
    registry: NatsRegistry,
    pub(crate) interest: Interest,
    node: String,
    local: Node,
    events: mpsc::UnboundedSender<SocketEvent>,
    _stop: DropGuard,
}

impl NatsBus {
    /// Connects and subscribes before it returns, so a wrong URL fails at start-up and a message published on
    /// another node once this one is up reaches it.
    pub async fn start(url: &str, node: &str, local: Node) -> Result<NatsBus, BusError> {
        let reconnected = Arc::new(tokio::sync::Notify::new());
        let told = reconnected.clone();
        // Counts connections, so that each gateway's listener catches up after a reconnect (`nats_journal.rs`).
        let (counted, connections) = tokio::sync::watch::channel(0u64);
        let counted = Arc::new(counted);
        let client = async_nats::ConnectOptions::new()
            .name(format!("updraft {node}"))
            .reconnect_delay_callback(|attempts| backoff(u32::try_from(attempts).unwrap_or(u32::MAX)))
            .event_callback(move |event| {
                let (told, counted) = (told.clone(), counted.clone());
                async move {
                    let connected = matches!(event, async_nats::Event::Connected);
                    metrics::gauge!("updraft_bus_connected").set(if connected { 1.0 } else { 0.0 });
                    if connected {
                        told.notify_one();
                        counted.send_modify(|count| *count += 1);
                    }
                    tracing::info!(%event, "NATS");
                }
            })
            .connect(url)
            .await
            .map_err(failed)?;
        let control = client.subscribe(CONTROL).await.map_err(failed)?;
        client.flush().await.map_err(failed)?;
        let journal = Arc::new(Journal::open(&client).await?);
        let tickets = Bucket::open(&client, TICKETS, TICKETS_KEPT).await?;
        let registry = NatsRegistry::open(&client).await?;
        metrics::gauge!("updraft_bus_connected").set(1.0);
        let stop = CancellationToken::new();
        tokio::spawn(listen(control, node.to_owned(), local.clone(), stop.clone()));
        let interest = Interest::start(client.clone(), local.clone(), (journal.clone(), connections), stop.clone());
        let (events, queued) = mpsc::unbounded_channel();
        tokio::spawn(registry::keep(
            registry.clone(),
            node.to_owned(),
            local.clone(),
            queued,
            reconnected,
            stop.clone(),
        ));
        let node = node.to_owned();
        Ok(NatsBus {
            client,
            journal,
            tickets,
            issued: std::sync::Mutex::default(),
            registry,
            interest,
            node,
            local,
            events,
            _stop: stop.drop_guard(),
        })
    }
}

impl Bus for NatsBus {
    fn publish(&self, publication: Publication) -> BoxFuture<'_, Result<(), BusError>> {
        Box::pin(async move {
            // A client that is away would buffer the message and acknowledge nothing the server holds.
            if !self.ready() {
                return Err(failed("not connected"));
            }
            let payload = wire::encode(&publication, &self.node);
            timed(self.journal.publish(&publication, payload)).await?
        })
    }

    fn history(&self, gateway: &str, since: u64) -> BoxFuture<'_, Result<Option<History>, BusError>> {
        let gateway = gateway.to_owned();
        Box::pin(async move { timed(self.journal.history(&gateway, since)).await?.map(Some) })
    }

    fn ready(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    fn share_ticket(&self, id: &str, ticket: &SharedTicket) -> BoxFuture<'_, Result<(), BusError>> {
        let key = id.to_owned();
        let value = bytes::Bytes::from(serde_json::to_vec(ticket).expect("a ticket serializes"));
        Box::pin(async move {
            let create = |store: kv::Store| {
                let (key, value) = (key.clone(), value.clone());
                async move { store.create(key, value).await }
            };
            let revision = timed(self.tickets.run(create)).await??;
            let mut issued = self.issued.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            // Those nobody took go now and then (at most one pass per 256 tickets).
            if issued.len() % 256 == 255 {
                issued.retain(|_, (_, value)| SharedTicket::usable(value).is_some());
            }
            issued.insert(key, (revision, value));
            Ok(())
        })
    }

    fn take_ticket(&self, id: &str) -> BoxFuture<'_, Result<Redeemed, BusError>> {
        let key = id.to_owned();
        Box::pin(async move {
            let mine = {
                let mut issued = self.issued.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let mine = issued.remove(&key);
                let left = issued.len();
                if issued.capacity() > 64 && left < issued.capacity() / 4 {
                    issued.shrink_to(left * 2);
                }
                mine
            };
            if let Some((revision, value)) = mine {
                return self.claim(&key, revision, SharedTicket::usable(&value)).await;
            }
            let read = |store: kv::Store| {
                let key = key.clone();
                async move { store.entry(key).await }
            };
            let entry = timed(self.tickets.run(read)).await??;
            let Some(entry) = entry.filter(|entry| entry.operation == kv::Operation::Put) else {
                return Ok(Redeemed::Taken(None));
            };
            self.claim(&key, entry.revision, SharedTicket::usable(&entry.value)).await
        })
    }

    fn announce(&self, event: SocketEvent) {
        match &event {
            SocketEvent::Opened(socket) => self.interest.counted(&socket.gateway, true),
            SocketEvent::Closed { gateway, .. } => self.interest.counted(gateway, false),
            // Its new tags' messages reach this node once the server confirms their routes.
            SocketEvent::Retagged(socket) => {
                let (interest, socket) = (self.interest.clone(), socket.clone());
                tokio::spawn(async move {
                    if let Err(err) = timed(interest.want(&socket.gateway, &socket.tags)).await.and_then(|r| r) {
                        tracing::warn!(%err, gateway = socket.gateway, "a re-tagged socket's routes are not subscribed");
                    }
                });
            }
        }
        // Fails only once the registry's task has stopped with the bus.
        let _ = self.events.send(event);
    }

    fn sockets(&self, gateway: &str) -> BoxFuture<'_, Result<Option<Vec<SocketRecord>>, BusError>> {
        let gateway = gateway.to_owned();
        Box::pin(async move {
            let records = timed(self.registry.list(&gateway)).await??;
            Ok(Some(registry::merge(records, &self.node, &self.local, &gateway)))
        })
    }

    fn socket(&self, gateway: &str, id: &str) -> BoxFuture<'_, Result<Option<SocketRecord>, BusError>> {
        let (gateway, id) = (gateway.to_owned(), id.to_owned());
        Box::pin(async move {
            let record = timed(self.registry.record_of(&gateway, &id)).await??;
            Ok(record.filter(|record| registry::elsewhere(record, &self.node)))
        })
    }

    fn close_socket(&self, gateway: &str, id: &str) -> BoxFuture<'_, Result<bool, BusError>> {
        let (gateway, id) = (gateway.to_owned(), id.to_owned());
        Box::pin(async move {
            let Some(record) = self.socket(&gateway, &id).await? else { return Ok(false) };
            let request = CloseRequest { gateway, socket: id, node: record.node };
            let request = serde_json::to_vec(&request).expect("a request serializes");
            timed(async {
                self.client.publish(CONTROL, request.into()).await.map_err(failed)?;
                self.client.flush().await.map_err(failed)
            })
            .await??;
            Ok(true)
        })
    }
}

impl NatsBus {
    /// Spends ticket `key` at `revision` (`ticket` is what it holds, if still usable), subscribed to its gateway
    /// first: before the socket opens, and before the ticket is spent, so that a failure there leaves it to be
    /// taken again. Only the taker whose delete names the revision succeeds: a ticket is taken once.
    async fn claim(&self, key: &str, revision: u64, ticket: Option<SharedTicket>) -> Result<Redeemed, BusError> {
        if let Some(ticket) = &ticket {
            timed(self.interest.want(&ticket.gateway, &ticket.tags)).await??;
        }
        let claim = |store: kv::Store| {
            let key = key.to_owned();
            async move { store.delete_expect_revision(key, Some(revision)).await }
        };
        if timed(self.tickets.run(claim)).await?.is_err() {
            return Ok(Redeemed::Taken(None));
        }
        Ok(Redeemed::Taken(ticket))
    }
}

async fn timed<T>(work: impl std::future::Future<Output = T>) -> Result<T, BusError> {
    answered("nats", work).await
}

/// Carries out the close requests of other nodes until the bus is dropped.
async fn listen(mut control: async_nats::Subscriber, node: String, local: Node, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            request = control.next() => match request {
                Some(request) => CloseRequest::handle(&request.payload, &node, &local),
                None => return,
            },
        }
    }
}
