//! Routing by interest over NATS: a node subscribes to a gateway's subject (`updraft.mws.<gateway id>`) only while
//! it holds, or is about to open, a socket of that gateway, so a node hears only the gateways its sockets want.
//!
//! A socket opens only after its ticket is taken ([`crate::Bus::take_ticket`]), and taking a ticket subscribes to
//! its gateway and waits for the server to confirm it (a flush) before it answers: from the moment the socket
//! opens, whatever any node publishes to its gateway reaches this node. Sockets are counted from the node's
//! open and close events; a gateway whose last socket closed stays subscribed for [`LINGER`] (a client that
//! reconnects at once finds it still there) before a sweep unsubscribes it. The client re-subscribes by itself
//! after a reconnect.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::nats_journal::{CatchUp, Journal};
use crate::nats_registry::failed;
use crate::registry::Node;
use crate::{BusError, wire};

/// Subjects of every gateway's publications: `updraft.mws.<gateway id>` (ids are `[A-Za-z0-9_-]`, valid tokens).
pub(crate) const PREFIX: &str = "updraft.mws.";
/// How long a gateway with no socket left stays subscribed.
const LINGER: Duration = Duration::from_secs(60);
/// How often gateways with no socket are looked for.
const SWEEP: Duration = Duration::from_secs(15);

struct Gateway {
    sockets: usize,
    /// The last ticket taken or socket closed: a gateway is unsubscribed only [`LINGER`] after it.
    last_wanted: Instant,
    /// Ends the gateway's subscription task, which unsubscribes.
    stop: CancellationToken,
}

/// The gateways this node is subscribed to.
#[derive(Clone)]
pub(crate) struct Interest {
    client: async_nats::Client,
    node: String,
    local: Node,
    journal: Arc<Journal>,
    /// Counts the client's connections, for each gateway's catch-up after a reconnect.
    connections: tokio::sync::watch::Receiver<u64>,
    gateways: Arc<Mutex<HashMap<String, Gateway>>>,
    stop: CancellationToken,
}

impl Interest {
    /// Starts the sweep; everything stops with `stop`.
    pub(crate) fn start(
        client: async_nats::Client,
        (node, local): (&str, Node),
        (journal, connections): (Arc<Journal>, tokio::sync::watch::Receiver<u64>),
        stop: CancellationToken,
    ) -> Interest {
        let (node, gateways) = (node.to_owned(), Arc::default());
        let interest = Interest { client, node, local, journal, connections, gateways, stop: stop.clone() };
        let sweeping = interest.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = tick.tick() => sweeping.sweep(Instant::now()),
                }
            }
        });
        interest
    }

    fn gateways(&self) -> std::sync::MutexGuard<'_, HashMap<String, Gateway>> {
        self.gateways.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Subscribes to `gateway` unless subscribed already; answers once the server has the subscription.
    pub(crate) async fn want(&self, gateway: &str) -> Result<(), BusError> {
        if let Some(known) = self.gateways().get_mut(gateway) {
            known.last_wanted = Instant::now();
            return Ok(());
        }
        let subscriber = self.client.subscribe(format!("{PREFIX}{gateway}")).await.map_err(failed)?;
        self.client.flush().await.map_err(failed)?;
        let stop = self.stop.child_token();
        {
            let mut gateways = self.gateways();
            if let Some(known) = gateways.get_mut(gateway) {
                // Another taker subscribed meanwhile: keep one subscription (this one ends unused).
                known.last_wanted = Instant::now();
                return Ok(());
            }
            let entry = Gateway { sockets: 0, last_wanted: Instant::now(), stop: stop.clone() };
            gateways.insert(gateway.to_owned(), entry);
        }
        metrics::gauge!("updraft_bus_gateways_subscribed").increment(1);
        let catch_up = CatchUp::new(self.journal.clone(), self.connections.clone());
        let hearing = (gateway.to_owned(), self.node.clone(), self.local.clone());
        tokio::spawn(listen(subscriber, hearing, catch_up, stop));
        Ok(())
    }

    /// A socket of `gateway` opened (`true`) or closed on this node.
    pub(crate) fn counted(&self, gateway: &str, opened: bool) {
        let mut gateways = self.gateways();
        let Some(known) = gateways.get_mut(gateway) else { return };
        if opened {
            known.sockets += 1;
        } else {
            known.sockets = known.sockets.saturating_sub(1);
            known.last_wanted = Instant::now();
        }
    }

    /// Unsubscribes from gateways with no socket, unwanted for [`LINGER`] as of `now`.
    fn sweep(&self, now: Instant) {
        self.gateways().retain(|_, known| {
            let keep = known.sockets > 0 || now.duration_since(known.last_wanted) < LINGER;
            if !keep {
                known.stop.cancel();
                metrics::gauge!("updraft_bus_gateways_subscribed").decrement(1);
            }
            keep
        });
    }

    /// Whether this node is subscribed to `gateway` now.
    #[cfg(test)]
    pub(crate) fn subscribed(&self, gateway: &str) -> bool {
        self.gateways().contains_key(gateway)
    }
}

/// Delivers what one gateway's subscription hears until it is stopped, then unsubscribes; after a reconnect, what
/// it missed first.
async fn listen(
    mut messages: async_nats::Subscriber,
    (gateway, node, local): (String, String, Node),
    mut catch_up: CatchUp,
    stop: CancellationToken,
) {
    loop {
        let message = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            () = catch_up.reconnected() => {
                catch_up.catch_up(&gateway, &local).await;
                continue;
            }
            message = messages.next() => match message {
                Some(message) => message,
                None => return,
            },
        };
        // A message heard after a reconnect that was not seen yet comes after what was missed.
        catch_up.catch_up(&gateway, &local).await;
        let seq = crate::nats_journal::number(&message);
        if !catch_up.fresh(seq) {
            continue;
        }
        if let Err(err) = wire::receive(&local, &node, &gateway, &message.payload, seq).await {
            tracing::warn!(%err, subject = %message.subject, "a bus message is not a publication");
        }
    }
    let _ = messages.unsubscribe().await;
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    use bytes::Bytes;

    use super::LINGER;
    use crate::registry::{Node, OpenSocket, SocketEvent};
    use crate::{Bus, NatsBus, Publication, Redeemed, SharedTicket};

    /// A node that records what reaches its sockets.
    fn recorder() -> (Node, Arc<Mutex<Vec<String>>>) {
        let heard = Arc::new(Mutex::new(Vec::new()));
        let sink = heard.clone();
        let node = Node {
            deliver: Arc::new(move |publication: Publication| {
                sink.lock().unwrap().push(String::from_utf8_lossy(&publication.data).into_owned());
                Box::pin(std::future::ready(()))
            }),
            close: Arc::new(|_, _| false),
            sockets: Arc::new(|_| Vec::new()),
        };
        (node, heard)
    }

    fn unique(what: &str) -> String {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
        format!("{what}-{nanos}")
    }

    async fn heard_within(heard: &Mutex<Vec<String>>, wanted: &[&str]) {
        for _ in 0..200 {
            if *heard.lock().unwrap() == wanted {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(*heard.lock().unwrap(), wanted);
    }

    /// On the machine's NATS server with JetStream (`UPDRAFT_TEST_NATS`, else 127.0.0.1:4222).
    #[tokio::test]
    async fn a_node_hears_a_gateway_only_from_its_first_ticket_until_a_minute_after_its_last_socket() {
        let url = std::env::var("UPDRAFT_TEST_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
        let gateway = unique("interest");
        let (publishing, _) = recorder();
        let (holding, heard) = recorder();
        let a = NatsBus::start(&url, &unique("a"), publishing).await.unwrap();
        let b = NatsBus::start(&url, &unique("b"), holding).await.unwrap();
        let publication = |text: &'static str| Publication {
            gateway: gateway.clone(),
            data: Bytes::from_static(text.as_bytes()),
            everyone: true,
            ..Publication::default()
        };
        a.publish(publication("before")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(heard.lock().unwrap().is_empty(), "b holds no socket of the gateway: it is not subscribed");

        // A socket about to open on b takes its ticket: b is subscribed once that answers.
        let expires_ms = u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap();
        let ticket =
            SharedTicket { gateway: gateway.clone(), tags: Vec::new(), expires_ms: expires_ms + 60_000, follows: None };
        let id = unique("ticket");
        a.share_ticket(&id, &ticket).await.unwrap();
        assert_eq!(b.take_ticket(&id).await.unwrap(), Redeemed::Taken(Some(ticket)));
        assert!(b.interest.subscribed(&gateway));
        a.publish(publication("after")).await.unwrap();
        heard_within(&heard, &["after"]).await;

        // The socket opens and closes: the subscription outlives it by a minute, then a sweep drops it.
        let socket =
            OpenSocket { gateway: gateway.clone(), id: id.clone(), tags: Vec::new(), connected_ms: expires_ms };
        b.announce(SocketEvent::Opened(socket));
        b.interest.sweep(Instant::now() + LINGER * 2);
        assert!(b.interest.subscribed(&gateway), "a gateway with a socket stays");
        b.announce(SocketEvent::Closed { gateway: gateway.clone(), id });
        b.interest.sweep(Instant::now());
        assert!(b.interest.subscribed(&gateway), "lingers");
        b.interest.sweep(Instant::now() + LINGER * 2);
        assert!(!b.interest.subscribed(&gateway));
        tokio::time::sleep(Duration::from_millis(100)).await;
        a.publish(publication("gone")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(*heard.lock().unwrap(), ["after"], "unsubscribed");
    }
}
