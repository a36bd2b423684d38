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
        local: Node,
        (journal, connections): (Arc<Journal>, tokio::sync::watch::Receiver<u64>),
        stop: CancellationToken,
    ) -> Interest {
        let interest = Interest { client, local, journal, connections, gateways: Arc::default(), stop: stop.clone() };
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
        // Read before subscribing: what comes after it is heard, or caught up on after a reconnect.
        let latest = self.journal.latest().await?;
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
        let catch_up = CatchUp::new(self.journal.clone(), self.connections.clone(), Some(latest));
        let hearing = (gateway.to_owned(), self.local.clone());
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
    (gateway, local): (String, Node),
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
        if let Err(err) = wire::receive(&local, &gateway, &message.payload, seq).await {
            tracing::warn!(%err, subject = %message.subject, "a bus message is not a publication");
        }
    }
    let _ = messages.unsubscribe().await;
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::LINGER;
    use crate::Bus;
    use crate::bus_tests::{heard_within, hold, nats_node, nats_url, texts, to_everyone, unique};
    use crate::registry::{OpenSocket, SocketEvent};

    #[tokio::test]
    async fn a_node_hears_a_gateway_only_from_its_first_ticket_until_a_minute_after_its_last_socket() {
        let url = nats_url();
        let gateway = unique("interest");
        let ((a, _), (b, heard)) = (nats_node(&url, "a").await, nats_node(&url, "b").await);
        let publication = |text: &'static str| to_everyone(&gateway, text);
        a.publish(publication("before")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(heard.lock().unwrap().is_empty(), "b holds no socket of the gateway: it is not subscribed");

        // A socket about to open on b takes its ticket: b is subscribed once that answers.
        let id = hold(&a, &b, &gateway).await;
        assert!(b.interest.subscribed(&gateway));
        a.publish(publication("after")).await.unwrap();
        assert_eq!(texts(&heard_within(&heard, 1).await), ["after"]);

        // The socket opens and closes: the subscription outlives it by a minute, then a sweep drops it.
        let socket = OpenSocket { gateway: gateway.clone(), id: id.clone(), tags: Vec::new(), connected_ms: 0 };
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
        assert_eq!(texts(&heard.lock().unwrap()), ["after"], "unsubscribed");
    }
}
