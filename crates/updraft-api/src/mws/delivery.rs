//! What a node does with a publication from the bus: resolve receivers against its own sockets.
//!
//! Publications are queued for the node's sockets by a thread of their own, in the order they were published.
//! Idle plain-TCP sockets are then written directly ([`updraft_gateway::Socket::flush_direct`]) by tasks on the socket
//! runtime, 256 sockets a task, so a fan-out uses every core; a socket with bytes in flight, a full window or TLS is
//! left to its connection task. On the HTTP runtime, a broadcast to 10k sockets held a worker for its whole length
//! (API requests waited behind it), and it woke 10k tasks, which cost as much as the writes. A publication that
//! arrives while the last one's writes are queued is queued at once: a socket not yet written then gets both
//! frames in one write.
use std::collections::VecDeque;
use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use updraft_bus::{BoxFuture, Deliver, Publication};
use updraft_gateway::{Gateways, Receivers, SocketId};

/// Publications waiting for the fan-out thread; publishers wait for room beyond this.
const QUEUE: usize = 1024;
/// Publications taken from the queue at a time.
const MAX_BATCH: usize = 64;
/// Sockets one write task of the socket runtime writes.
const FLUSH_CHUNK: usize = 256;

pub fn deliver_locally(gateways: Arc<Gateways>, sockets: Handle) -> std::io::Result<Deliver> {
    let (tx, rx) = mpsc::channel::<(Publication, oneshot::Sender<()>)>(QUEUE);
    std::thread::Builder::new().name("updraft-fanout".into()).spawn(move || fan_out(&gateways, &sockets, rx))?;
    Ok(Arc::new(move |publication: Publication| -> BoxFuture<'static, ()> {
        let tx = tx.clone();
        Box::pin(async move {
            let (done, delivered) = oneshot::channel();
            // Either fails only once the fan-out thread is gone, and with it the node's sockets.
            if tx.send((publication, done)).await.is_ok() {
                let _ = delivered.await;
            }
        })
    }))
}

/// Runs until every sender (the bus) is dropped.
fn fan_out(gateways: &Gateways, sockets: &Handle, mut queue: mpsc::Receiver<(Publication, oneshot::Sender<()>)>) {
    let delivered = metrics::counter!("updraft_mws_frames_delivered_total");
    let dropped = metrics::counter!("updraft_mws_sockets_dropped_slow_total");
    let fanout_sockets = metrics::histogram!("updraft_mws_fanout_sockets");
    let fanout_batch = metrics::histogram!("updraft_mws_fanout_batch_publications");
    let mut flush = VecDeque::new();
    while let Some(first) = queue.blocking_recv() {
        let mut taken = 0;
        let mut next = Some(first);
        while let Some((publication, done)) = next {
            taken += 1;
            if let Some(gateway) = gateways.get(&publication.gateway) {
                let receivers = Receivers {
                    everyone: publication.everyone,
                    // Ids that are not 64 hex characters name no socket.
                    sockets: publication.sockets.iter().filter_map(|s| SocketId::parse(s)).collect(),
                    tags: publication.tags.clone(),
                };
                let fanout = gateway.hub.publish_deferred(&publication.data, &receivers, &mut flush);
                delivered.increment(fanout.delivered);
                fanout_sockets.record(fanout.delivered as f64);
                dropped.increment(fanout.dropped);
            }
            // Queued in every outbox: accepted for delivery.
            let _ = done.send(());
            next = if taken < MAX_BATCH { queue.try_recv().ok() } else { None };
        }
        fanout_batch.record(taken as f64);
        while !flush.is_empty() {
            let chunk: Vec<_> = flush.drain(..FLUSH_CHUNK.min(flush.len())).collect();
            sockets.spawn(async move { chunk.iter().for_each(|socket| socket.flush_direct()) });
        }
    }
}
