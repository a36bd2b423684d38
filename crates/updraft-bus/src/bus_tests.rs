//! Tests of the distributed buses against the machine's Redis and NATS servers, and what they share: nodes that
//! record what reaches their sockets, tickets that subscribe a node to a gateway, and a relay that cuts a node off.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::registry::Node;
use crate::{Bus, History, NatsBus, Publication, Redeemed, RedisBus, SharedTicket};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Engine {
    Redis,
    Nats,
}

impl Engine {
    /// The machine's server (`UPDRAFT_TEST_REDIS`, `UPDRAFT_TEST_NATS`, else the usual ports on 127.0.0.1).
    fn url(self) -> String {
        let (variable, default) = match self {
            Engine::Redis => ("UPDRAFT_TEST_REDIS", "redis://127.0.0.1:6379"),
            Engine::Nats => ("UPDRAFT_TEST_NATS", "nats://127.0.0.1:4222"),
        };
        std::env::var(variable).unwrap_or_else(|_| default.into())
    }

    /// The same server's URL through a relay on `port`.
    fn relayed(self, port: u16) -> String {
        let scheme = self.url().split("://").next().unwrap_or_default().to_owned();
        format!("{scheme}://127.0.0.1:{port}")
    }
}

/// What reached a node's sockets, with the numbers the bus gave.
pub(crate) type Heard = Arc<Mutex<Vec<(String, Option<u64>)>>>;

/// A node that records what reaches its sockets.
pub(crate) fn recorder() -> (Node, Heard) {
    recorder_serving(Vec::new())
}

/// A node that records what reaches its sockets, and holds one socket of each of `gateways`.
fn recorder_serving(gateways: Vec<String>) -> (Node, Heard) {
    let heard = Arc::new(Mutex::new(Vec::new()));
    let sink = heard.clone();
    let node = Node {
        deliver: Arc::new(move |publication: Publication| {
            let text = String::from_utf8_lossy(&publication.data).into_owned();
            sink.lock().unwrap().push((text, publication.seq));
            Box::pin(std::future::ready(()))
        }),
        close: Arc::new(|_, _| false),
        sockets: Arc::new(move |_| {
            let socket = |gateway: &String| crate::registry::OpenSocket {
                gateway: gateway.clone(),
                id: format!("socket-of-{gateway}"),
                tags: Vec::new(),
                connected_ms: 0,
            };
            gateways.iter().map(socket).collect()
        }),
    };
    (node, heard)
}

pub(crate) fn unique(what: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{what}-{nanos}")
}

pub(crate) async fn heard_within(heard: &Heard, count: usize) -> Vec<(String, Option<u64>)> {
    for _ in 0..200 {
        if heard.lock().unwrap().len() >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    heard.lock().unwrap().clone()
}

/// A ticket for a socket of `gateway` with `tags`, good for a minute.
fn ticket(gateway: &str, tags: Vec<String>) -> SharedTicket {
    let now_ms = u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap();
    SharedTicket { gateway: gateway.into(), tags, expires_ms: now_ms + 60_000, follows: None }
}

/// Subscribes `bus` to `gateway`, as taking a socket's ticket does; answers the ticket's id.
pub(crate) async fn hold(issuer: &dyn Bus, bus: &dyn Bus, gateway: &str) -> String {
    hold_tagged(issuer, bus, gateway, &[]).await
}

/// [`hold`] for a socket with `tags`.
pub(crate) async fn hold_tagged(issuer: &dyn Bus, bus: &dyn Bus, gateway: &str, tags: &[&str]) -> String {
    let ticket = ticket(gateway, tags.iter().map(|tag| (*tag).to_owned()).collect());
    let id = unique("ticket");
    issuer.share_ticket(&id, &ticket).await.unwrap();
    assert_eq!(bus.take_ticket(&id).await.unwrap(), Redeemed::Taken(Some(ticket)));
    id
}

/// The machine's NATS server with JetStream.
pub(crate) fn nats_url() -> String {
    Engine::Nats.url()
}

/// A node on the NATS server at `url`, and what reaches its sockets.
pub(crate) async fn nats_node(url: &str, name: &str) -> (NatsBus, Heard) {
    let (recording, heard) = recorder();
    (NatsBus::start(url, &unique(name), recording).await.unwrap(), heard)
}

/// A node on `engine`'s server at `url`, and what reaches its sockets.
async fn node(engine: Engine, url: &str, name: &str) -> (Box<dyn Bus>, Heard) {
    node_serving(engine, url, name, Vec::new()).await
}

/// [`node`], holding a socket of each of `gateways`.
async fn node_serving(engine: Engine, url: &str, name: &str, gateways: Vec<String>) -> (Box<dyn Bus>, Heard) {
    let (recording, heard) = recorder_serving(gateways);
    let bus: Box<dyn Bus> = match engine {
        Engine::Redis => Box::new(RedisBus::start(url, &unique(name), recording).await.unwrap()),
        Engine::Nats => Box::new(NatsBus::start(url, &unique(name), recording).await.unwrap()),
    };
    (bus, heard)
}

/// `text` for every socket of `gateway`.
pub(crate) fn to_everyone(gateway: &str, text: &'static str) -> Publication {
    Publication {
        gateway: gateway.to_owned(),
        data: Bytes::from_static(text.as_bytes()),
        everyone: true,
        ..Publication::default()
    }
}

/// The texts heard, in order.
pub(crate) fn texts(heard: &[(String, Option<u64>)]) -> Vec<String> {
    heard.iter().map(|(text, _)| text.clone()).collect()
}

#[tokio::test]
async fn nats_numbers_each_message_once_for_every_node_and_keeps_what_a_socket_missed() {
    numbers_each_message_once_for_every_node_and_keeps_what_a_socket_missed(Engine::Nats).await;
}

#[tokio::test]
async fn redis_numbers_each_message_once_for_every_node_and_keeps_what_a_socket_missed() {
    numbers_each_message_once_for_every_node_and_keeps_what_a_socket_missed(Engine::Redis).await;
}

async fn numbers_each_message_once_for_every_node_and_keeps_what_a_socket_missed(engine: Engine) {
    let url = engine.url();
    let gateway = unique("journal");
    let ((a, a_heard), (b, b_heard)) = (node(engine, &url, "a").await, node(engine, &url, "b").await);
    hold_tagged(a.as_ref(), a.as_ref(), &gateway, &["red"]).await;
    hold_tagged(a.as_ref(), b.as_ref(), &gateway, &["red"]).await;
    let publication = |text: &'static str, once: Option<&str>| Publication {
        gateway: gateway.clone(),
        data: Bytes::from_static(text.as_bytes()),
        tags: vec!["red".into()],
        once: once.map(str::to_owned),
        ..Publication::default()
    };
    a.publish(publication("one", None)).await.unwrap();
    // Two nodes publishing one change under one name: kept and delivered once.
    b.publish(publication("change", Some(&gateway))).await.unwrap();
    a.publish(publication("change", Some(&gateway))).await.unwrap();
    b.publish(publication("three", None)).await.unwrap();

    let heard = heard_within(&a_heard, 3).await;
    let texts: Vec<&str> = heard.iter().map(|(text, _)| text.as_str()).collect();
    assert_eq!(texts, ["one", "change", "three"], "the publisher hears its own, numbered");
    let seqs: Vec<u64> = heard.iter().map(|(_, seq)| seq.unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert_eq!(heard_within(&b_heard, 3).await, heard, "every node hears the same numbers");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(a_heard.lock().unwrap().len(), 3, "the named message once");

    let Some(History::Kept { latest, missed }) = b.history(&gateway, seqs[0]).await.unwrap() else { panic!("kept") };
    assert!(latest >= seqs[2]);
    let missed: Vec<(&[u8], Option<u64>, &[String])> =
        missed.iter().map(|p| (&p.data[..], p.seq, &p.tags[..])).collect();
    let red = ["red".to_string()];
    assert_eq!(missed, [(&b"change"[..], Some(seqs[1]), &red[..]), (&b"three"[..], Some(seqs[2]), &red[..])]);
    assert_eq!(b.history(&gateway, 0).await.unwrap(), Some(History::Kept { latest, missed: Vec::new() }));
    let future = b.history(&gateway, latest + 10).await.unwrap();
    assert!(matches!(future, Some(History::Gap { latest: gap }) if gap >= latest), "{future:?}");
    // NATS numbers all gateways in one sequence, Redis each gateway from 1: a number another gateway gave is
    // nothing missed on NATS and from the future on Redis.
    let other = b.history(&unique("other"), seqs[0]).await.unwrap();
    match engine {
        Engine::Nats => assert!(matches!(other, Some(History::Kept { missed, .. }) if missed.is_empty())),
        Engine::Redis => assert_eq!(other, Some(History::Gap { latest: 0 })),
    }
}

/// A TCP relay to a bus server that can be cut: while cut, it has dropped its connections and drops new ones.
struct Relay {
    port: u16,
    cut: Arc<std::sync::atomic::AtomicBool>,
    links: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Relay {
    async fn start(upstream: String) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, links) = (Arc::new(std::sync::atomic::AtomicBool::new(false)), Arc::new(Mutex::new(Vec::new())));
        let (is_cut, linked) = (cut.clone(), links.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if is_cut.load(std::sync::atomic::Ordering::SeqCst) {
                    continue;
                }
                let upstream = upstream.clone();
                let link = tokio::spawn(async move {
                    let mut server = tokio::net::TcpStream::connect(upstream).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
                linked.lock().unwrap().push(link.abort_handle());
            }
        });
        Relay { port, cut, links }
    }

    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        self.links.lock().unwrap().drain(..).for_each(|link| link.abort());
    }

    fn mend(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

async fn until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} within 10 s");
}

#[tokio::test]
async fn a_node_cut_off_from_nats_gets_what_was_published_meanwhile_once_it_is_back() {
    gets_what_was_published_meanwhile_once_it_is_back(Engine::Nats).await;
}

#[tokio::test]
async fn a_node_cut_off_from_redis_gets_what_was_published_meanwhile_once_it_is_back() {
    gets_what_was_published_meanwhile_once_it_is_back(Engine::Redis).await;
}

async fn gets_what_was_published_meanwhile_once_it_is_back(engine: Engine) {
    let url = engine.url();
    let relay = Relay::start(url.split("://").nth(1).unwrap().trim_end_matches('/').to_owned()).await;
    let (gateway, quiet, fresh) = (unique("away"), unique("quiet"), unique("quiet-fresh"));
    let (a, _) = node(engine, &url, "a").await;
    // Published before b starts: not b's to deliver, even in a catch-up.
    a.publish(to_everyone(&quiet, "quiet before b")).await.unwrap();
    let b_url = engine.relayed(relay.port);
    let served = vec![gateway.clone(), quiet.clone(), fresh.clone()];
    let (b, b_heard) = node_serving(engine, &b_url, "b", served).await;
    hold(a.as_ref(), b.as_ref(), &gateway).await;
    // A gateway b had heard nothing of before it was cut off is caught up too: on NATS b's subscription to it
    // remembers the stream's number then, on Redis b read every gateway's number before it first subscribed.
    // And one that had published nothing at all (on Redis: its whole log was missed).
    hold(a.as_ref(), b.as_ref(), &quiet).await;
    hold(a.as_ref(), b.as_ref(), &fresh).await;
    let publication = |text: &'static str| to_everyone(&gateway, text);
    a.publish(publication("before")).await.unwrap();
    assert_eq!(heard_within(&b_heard, 1).await.len(), 1);

    relay.cut();
    until("b notices", || !b.ready()).await;
    a.publish(publication("while away 1")).await.unwrap();
    a.publish(to_everyone(&quiet, "quiet while away")).await.unwrap();
    a.publish(to_everyone(&fresh, "quiet and fresh while away")).await.unwrap();
    a.publish(publication("while away 2")).await.unwrap();
    relay.mend();
    until("b is back", || b.ready()).await;
    // Caught up at the reconnect, with no new message to wake it; in order within each gateway.
    let caught_up = 5;
    let heard = texts(&heard_within(&b_heard, caught_up).await);
    let away: Vec<&String> = heard.iter().filter(|text| !text.starts_with("quiet")).collect();
    assert_eq!(away, ["before", "while away 1", "while away 2"]);
    assert!(heard.contains(&"quiet while away".to_string()), "{heard:?}");
    assert!(heard.contains(&"quiet and fresh while away".to_string()), "{heard:?}");
    a.publish(publication("after")).await.unwrap();
    let heard = heard_within(&b_heard, caught_up + 1).await;
    assert_eq!(texts(&heard).last().map(String::as_str), Some("after"));
    let away: Vec<_> = heard.iter().filter(|(text, _)| !text.starts_with("quiet")).collect();
    assert!(away.windows(2).all(|w| w[0].1 < w[1].1), "{heard:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(b_heard.lock().unwrap().len(), caught_up + 1, "nothing twice");
}

#[tokio::test]
async fn a_ticket_is_taken_once_on_nats_whichever_node_takes_it() {
    a_ticket_is_taken_once_whichever_node_takes_it(Engine::Nats).await;
}

#[tokio::test]
async fn a_ticket_is_taken_once_on_redis_whichever_node_takes_it() {
    a_ticket_is_taken_once_whichever_node_takes_it(Engine::Redis).await;
}

/// The issuing node may take its own ticket without reading it back (NATS); it still races the others fairly.
async fn a_ticket_is_taken_once_whichever_node_takes_it(engine: Engine) {
    let url = engine.url();
    let ((a, _), (b, _)) = (node(engine, &url, "a").await, node(engine, &url, "b").await);
    for _ in 0..20 {
        let ticket = ticket(&unique("raced"), vec!["t".into()]);
        let id = unique("ticket");
        a.share_ticket(&id, &ticket).await.unwrap();
        let (here, there) = tokio::join!(a.take_ticket(&id), b.take_ticket(&id));
        let mut taken = [here.unwrap(), there.unwrap()];
        taken.sort_by_key(|taken| *taken == Redeemed::Taken(None));
        assert_eq!(taken, [Redeemed::Taken(Some(ticket)), Redeemed::Taken(None)]);
        assert_eq!(a.take_ticket(&id).await.unwrap(), Redeemed::Taken(None), "once");
    }
}
