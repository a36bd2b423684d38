//! Routing by interest over NATS: a node subscribes to a gateway's subjects only while it holds, or is about to
//! open, a socket of that gateway, and of those only to the routes its sockets' tags want (`nats_routes.rs`), so
//! a node hears only what its sockets may receive.
//!
//! A socket opens only after its ticket is taken ([`crate::Bus::take_ticket`]), and taking a ticket subscribes to
//! its gateway's routes for the ticket's tags and waits for the server to confirm them (a flush) before it
//! answers: from the moment the socket opens, whatever any node publishes to it reaches this node. A socket given
//! new tags (its user joined a group) has their routes added as soon as the server confirms them. Sockets are
//! counted from the node's open and close events; a gateway whose last socket closed stays subscribed for
//! [`LINGER`] (a client that reconnects at once finds it still there) before a sweep unsubscribes it, and a tag
//! route goes the same way once no socket here has the tag. The client re-subscribes by itself after a reconnect.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::BusError;
use crate::nats_journal::{CatchUp, Journal};
use crate::nats_listener::{Change, Subscriptions, listen};
use crate::nats_registry::failed;
use crate::nats_routes::{self, MAX_TAG_ROUTES, Route};
use crate::registry::Node;

/// How long a gateway with no socket left, or a tag no socket has any more, stays subscribed.
const LINGER: Duration = Duration::from_secs(60);
/// How often gateways with no socket are looked for.
const SWEEP: Duration = Duration::from_secs(15);

struct Gateway {
    sockets: usize,
    /// The last ticket taken or socket closed: a gateway is unsubscribed only [`LINGER`] after it.
    last_wanted: Instant,
    /// The tag routes subscribed to, each with when a socket last wanted it; `None` once the whole gateway is.
    tags: Option<HashMap<Route, Instant>>,
    /// Hands the gateway's listener its new subscriptions.
    control: mpsc::UnboundedSender<Change>,
    /// Ends the gateway's listener, which unsubscribes.
    stop: CancellationToken,
}

impl Gateway {
    /// The subscriptions `tags` (distinct) need that the gateway lacks (`None`: the whole gateway); notes them
    /// wanted now.
    fn lacks(&mut self, tags: &[Route], now: Instant) -> Vec<Option<Route>> {
        self.last_wanted = now;
        let Some(subscribed) = &mut self.tags else { return Vec::new() };
        let mut lacking = Vec::new();
        for tag in tags {
            match subscribed.get_mut(tag) {
                Some(wanted) => *wanted = now,
                None => lacking.push(Some(tag.clone())),
            }
        }
        if subscribed.len() + lacking.len() > MAX_TAG_ROUTES { vec![None] } else { lacking }
    }

    /// How many subscriptions it holds: the whole gateway's, or `all`, `m` and one a tag.
    fn routes(&self) -> usize {
        self.tags.as_ref().map_or(1, |tags| tags.len() + 2)
    }
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

    /// Subscribes to what a socket of `gateway` with `tags` may receive, unless subscribed already; answers once
    /// the server has the subscriptions.
    pub(crate) async fn want(&self, gateway: &str, tags: &[String]) -> Result<(), BusError> {
        let mut tags: Vec<Route> = tags.iter().map(|tag| Route::tag(tag)).collect();
        tags.sort_unstable();
        tags.dedup();
        loop {
            let lacking = self.gateways().get_mut(gateway).map(|known| known.lacks(&tags, Instant::now()));
            let Some(lacking) = lacking else {
                if self.start_listening(gateway, &tags).await? {
                    return Ok(());
                }
                // Another taker started it meanwhile: add what it lacks.
                continue;
            };
            if lacking.is_empty() {
                return Ok(());
            }
            let subscribed = self.subscribe(gateway, lacking).await?;
            let mut gateways = self.gateways();
            // Swept meanwhile: start over.
            let Some(known) = gateways.get_mut(gateway) else { continue };
            for (route, subscriber) in subscribed {
                let now = Instant::now();
                let replaced = known.routes();
                match (&route, &mut known.tags) {
                    // The whole gateway already (another taker): this subscription ends unused.
                    (_, None) => continue,
                    (None, tags) => {
                        // The listener drops the routes the whole gateway replaces.
                        metrics::gauge!("updraft_bus_routes_subscribed").decrement(replaced as f64);
                        *tags = None;
                    }
                    (Some(tag), Some(tags)) => {
                        if tags.insert(tag.clone(), now).is_some() {
                            continue;
                        }
                    }
                }
                metrics::gauge!("updraft_bus_routes_subscribed").increment(1);
                let _ = known.control.send(Change::Add(route, subscriber));
            }
            return Ok(());
        }
    }

    /// Subscribes to `gateway`'s broadcasts, mixed messages and `tags` (distinct), then starts its listener; false
    /// when another taker started it first (these subscriptions then end unused).
    async fn start_listening(&self, gateway: &str, tags: &[Route]) -> Result<bool, BusError> {
        // Read before subscribing: what comes after it is heard, or caught up on after a reconnect.
        let latest = self.journal.latest().await?;
        let whole = tags.len() > MAX_TAG_ROUTES;
        let routes: Vec<Option<Route>> = if whole { vec![None] } else { Route::wanted(tags).map(Some).collect() };
        let subscribed = self.subscribe(gateway, routes).await?;
        let (control, changes) = mpsc::unbounded_channel();
        let stop = self.stop.child_token();
        {
            let mut gateways = self.gateways();
            if gateways.contains_key(gateway) {
                return Ok(false);
            }
            let now = Instant::now();
            let tags = (!whole).then(|| tags.iter().map(|tag| (tag.clone(), now)).collect());
            let entry = Gateway { sockets: 0, last_wanted: now, tags, control, stop: stop.clone() };
            gateways.insert(gateway.to_owned(), entry);
        }
        metrics::gauge!("updraft_bus_gateways_subscribed").increment(1);
        metrics::gauge!("updraft_bus_routes_subscribed").increment(subscribed.len() as f64);
        let catch_up = CatchUp::new(self.journal.clone(), self.connections.clone(), Some(latest));
        let hearing = (gateway.to_owned(), self.local.clone());
        tokio::spawn(listen(Subscriptions::new(subscribed), changes, hearing, catch_up, stop));
        Ok(true)
    }

    /// Subscribes to `routes` of `gateway` (`None`: all of it); answers once the server has them.
    async fn subscribe(
        &self,
        gateway: &str,
        routes: Vec<Option<Route>>,
    ) -> Result<Vec<(Option<Route>, async_nats::Subscriber)>, BusError> {
        let mut subscribed = Vec::with_capacity(routes.len());
        for route in routes {
            let subject = nats_routes::heard(gateway, route.as_ref());
            subscribed.push((route, self.client.subscribe(subject).await.map_err(failed)?));
        }
        self.client.flush().await.map_err(failed)?;
        Ok(subscribed)
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

    /// Unsubscribes from gateways with no socket, and from tags no socket has, unwanted for [`LINGER`] as of `now`.
    fn sweep(&self, now: Instant) {
        let mut tagged = Vec::new();
        self.gateways().retain(|gateway, known| {
            let keep = known.sockets > 0 || now.duration_since(known.last_wanted) < LINGER;
            if !keep {
                known.stop.cancel();
                metrics::gauge!("updraft_bus_gateways_subscribed").decrement(1);
                metrics::gauge!("updraft_bus_routes_subscribed").decrement(known.routes() as f64);
            } else if known.tags.as_ref().is_some_and(|tags| tags.values().any(|at| now.duration_since(*at) >= LINGER))
            {
                tagged.push(gateway.clone());
            }
            keep
        });
        // The tags in use, read from the hub without the lock held.
        for gateway in tagged {
            let in_use: HashSet<Route> = (self.local.sockets)(Some(&gateway))
                .iter()
                .flat_map(|socket| socket.tags.iter().map(|tag| Route::tag(tag)))
                .collect();
            let mut gateways = self.gateways();
            let Some(known) = gateways.get_mut(&gateway) else { continue };
            let Some(tags) = &mut known.tags else { continue };
            tags.retain(|tag, at| {
                // A tag in use is looked at again only a [`LINGER`] later.
                if in_use.contains(tag) {
                    *at = now;
                }
                let keep = now.duration_since(*at) < LINGER;
                if !keep {
                    metrics::gauge!("updraft_bus_routes_subscribed").decrement(1);
                    let _ = known.control.send(Change::Drop(tag.clone()));
                }
                keep
            });
        }
    }

    /// Whether this node is subscribed to `gateway` now, and to which tags (`None`: all of it).
    #[cfg(test)]
    pub(crate) fn subscribed(&self, gateway: &str) -> Option<Option<usize>> {
        self.gateways().get(gateway).map(|known| known.tags.as_ref().map(HashMap::len))
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use bytes::Bytes;

    use super::LINGER;
    use crate::bus_tests::{heard_within, hold, hold_tagged, nats_node, nats_url, texts, to_everyone, unique};
    use crate::nats_routes::MAX_TAG_ROUTES;
    use crate::registry::{OpenSocket, SocketEvent};
    use crate::{Bus, Publication};

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
        assert!(b.interest.subscribed(&gateway).is_some());
        a.publish(publication("after")).await.unwrap();
        assert_eq!(texts(&heard_within(&heard, 1).await), ["after"]);

        // The socket opens and closes: the subscription outlives it by a minute, then a sweep drops it.
        let socket = OpenSocket { gateway: gateway.clone(), id: id.clone(), tags: Vec::new(), connected_ms: 0 };
        b.announce(SocketEvent::Opened(socket));
        b.interest.sweep(Instant::now() + LINGER * 2);
        assert!(b.interest.subscribed(&gateway).is_some(), "a gateway with a socket stays");
        b.announce(SocketEvent::Closed { gateway: gateway.clone(), id });
        b.interest.sweep(Instant::now());
        assert!(b.interest.subscribed(&gateway).is_some(), "lingers");
        b.interest.sweep(Instant::now() + LINGER * 2);
        assert!(b.interest.subscribed(&gateway).is_none());
        tokio::time::sleep(Duration::from_millis(100)).await;
        a.publish(publication("gone")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(texts(&heard.lock().unwrap()), ["after"], "unsubscribed");
    }

    fn to(gateway: &str, text: &'static str, sockets: &[&str], tags: &[&str]) -> Publication {
        Publication {
            gateway: gateway.to_owned(),
            data: Bytes::from_static(text.as_bytes()),
            everyone: sockets == ["*"],
            sockets: sockets.iter().filter(|s| **s != "*").map(|s| (*s).to_owned()).collect(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            ..Publication::default()
        }
    }

    /// Publishes on `a`, then `marker` to everyone, and answers what `heard` got up to the marker.
    async fn heard_of(a: &impl Bus, heard: &crate::bus_tests::Heard, sent: Vec<Publication>) -> Vec<String> {
        let gateway = sent[0].gateway.clone();
        heard.lock().unwrap().clear();
        for publication in sent {
            a.publish(publication).await.unwrap();
        }
        a.publish(to_everyone(&gateway, "marker")).await.unwrap();
        for _ in 0..200 {
            if texts(&heard.lock().unwrap()).contains(&"marker".to_owned()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut got = texts(&heard.lock().unwrap());
        assert_eq!(got.pop().as_deref(), Some("marker"));
        got
    }

    #[tokio::test]
    async fn a_node_hears_only_the_tags_its_sockets_have_and_those_they_are_given() {
        let url = nats_url();
        let gateway = unique("tags");
        let ((a, _), (b, heard)) = (nats_node(&url, "a").await, nats_node(&url, "b").await);
        let id = hold_tagged(&a, &b, &gateway, &["users.x"]).await;
        let socket = OpenSocket { gateway: gateway.clone(), id, tags: vec!["users.x".into()], connected_ms: 0 };
        b.announce(SocketEvent::Opened(socket.clone()));
        assert_eq!(b.interest.subscribed(&gateway), Some(Some(1)));
        let sent = vec![
            to(&gateway, "to y", &[], &["users.y"]),
            to(&gateway, "to x", &[], &["users.x"]),
            to(&gateway, "to all", &["*"], &[]),
            to(&gateway, "to a socket", &["some-socket"], &[]),
            to(&gateway, "to y and z", &[], &["users.y", "users.z"]),
        ];
        // Messages that take the `m` route reach every node of the gateway; the node's hub filters them.
        assert_eq!(heard_of(&a, &heard, sent.clone()).await, ["to x", "to all", "to a socket", "to y and z"]);

        // The socket's user joins a group: the node hears its tag from the moment the server confirms it.
        b.announce(SocketEvent::Retagged(OpenSocket { tags: vec!["users.y".into()], ..socket }));
        for _ in 0..200 {
            if b.interest.subscribed(&gateway) == Some(Some(2)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(b.interest.subscribed(&gateway), Some(Some(2)));
        let all = ["to y", "to x", "to all", "to a socket", "to y and z"];
        assert_eq!(heard_of(&a, &heard, sent.clone()).await, all, "both tags while x lingers");

        // The tags no socket here has go a minute after they were last wanted (the node's sockets have none).
        b.interest.sweep(Instant::now() + LINGER * 2);
        assert_eq!(b.interest.subscribed(&gateway), Some(Some(0)));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(heard_of(&a, &heard, sent).await, ["to all", "to a socket", "to y and z"]);
    }

    #[tokio::test]
    async fn a_node_whose_sockets_have_many_tags_hears_the_whole_gateway() {
        let url = nats_url();
        let gateway = unique("many");
        let ((a, _), (b, heard)) = (nats_node(&url, "a").await, nats_node(&url, "b").await);
        let tags: Vec<String> = (0..=MAX_TAG_ROUTES).map(|i| format!("users.{i}")).collect();
        for tag in &tags[..MAX_TAG_ROUTES] {
            hold_tagged(&a, &b, &gateway, &[tag]).await;
        }
        assert_eq!(b.interest.subscribed(&gateway), Some(Some(MAX_TAG_ROUTES)));
        hold_tagged(&a, &b, &gateway, &[&tags[MAX_TAG_ROUTES]]).await;
        assert_eq!(b.interest.subscribed(&gateway), Some(None));
        let sent = vec![to(&gateway, "to 0", &[], &["users.0"]), to(&gateway, "to another", &[], &["other"])];
        assert_eq!(heard_of(&a, &heard, sent).await, ["to 0", "to another"]);
    }

    #[tokio::test]
    async fn messages_heard_on_several_routes_arrive_in_the_stream_s_order_each_once() {
        let url = nats_url();
        let gateway = unique("order");
        let ((a, _), (b, heard)) = (nats_node(&url, "a").await, nats_node(&url, "b").await);
        hold_tagged(&a, &b, &gateway, &["x", "y"]).await;
        let (a, kinds) =
            (std::sync::Arc::new(a), [(&["*"][..], &[][..]), (&[], &["x"]), (&[], &["y"]), (&[], &["x", "y"])]);
        let publishers = (0..4).map(|publisher| {
            let (a, gateway) = (a.clone(), gateway.clone());
            tokio::spawn(async move {
                for i in 0..100 {
                    let (sockets, tags) = kinds[(publisher + i) % kinds.len()];
                    a.publish(to(&gateway, "m", sockets, tags)).await.unwrap();
                }
            })
        });
        for publisher in futures_util::future::join_all(publishers).await {
            publisher.unwrap();
        }
        let heard = heard_within(&heard, 400).await;
        let seqs: Vec<u64> = heard.iter().map(|(_, seq)| seq.unwrap()).collect();
        assert_eq!(seqs.len(), 400);
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    }
}
