//! What a node does with a publication from the bus: resolve receivers against its own sockets.
//!
//! Fan-outs run on a thread of their own, in the order they were published, and write to idle plain-TCP sockets
//! directly ([`updraft_gateway::Socket::flush_direct`]); only a socket with bytes in flight, a full window or TLS is
//! left to its connection task. On the HTTP runtime, a broadcast to 10k sockets held a worker for its whole length
//! (API requests waited behind it); as a task on the socket runtime, it queued behind the 10k socket tasks of the
//! broadcast before it. The thread looks for new publications every few hundred sockets it writes, so a socket not
//! yet written gets the frames of both in one write, and a small fan-out (a tag, a few sockets) is written as soon
//! as it is taken, ahead of the rest of a broadcast.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use updraft_bus::{BoxFuture, Deliver, Publication};
use updraft_gateway::{Gateways, Receivers, SocketId};

/// Publications waiting for the fan-out thread; publishers wait for room beyond this.
const QUEUE: usize = 1024;
/// Publications taken from the queue at a time.
const MAX_BATCH: usize = 64;
/// Sockets written between two looks at the queue.
const FLUSH_CHUNK: usize = 256;
/// A fan-out that adds at most this many sockets to the queue of sockets to write is written at once, ahead of a
/// broadcast's backlog: a tagged send or a unicast should not wait the length of someone else's broadcast.
const SMALL_FANOUT: usize = FLUSH_CHUNK;

pub fn deliver_locally(gateways: Arc<Gateways>) -> std::io::Result<Deliver> {
    let (tx, rx) = mpsc::channel::<Queued>(QUEUE);
    std::thread::Builder::new().name("updraft-fanout".into()).spawn(move || fan_out(&gateways, rx))?;
    Ok(Arc::new(move |publication: Publication| -> BoxFuture<'static, ()> {
        let tx = tx.clone();
        Box::pin(async move {
            let (done, delivered) = oneshot::channel();
            // Either fails only once the fan-out thread is gone, and with it the node's sockets.
            if tx.send((publication, Instant::now(), done)).await.is_ok() {
                let _ = delivered.await;
            }
        })
    }))
}

/// A publication, when it was queued, and whom to tell once it is in every outbox.
type Queued = (Publication, Instant, oneshot::Sender<()>);

/// Runs until every sender (the bus) is dropped.
fn fan_out(gateways: &Gateways, mut queue: mpsc::Receiver<Queued>) {
    let delivered = metrics::counter!("updraft_mws_frames_delivered_total");
    let dropped = metrics::counter!("updraft_mws_sockets_dropped_slow_total");
    let fanout_sockets = metrics::histogram!("updraft_mws_fanout_sockets");
    let fanout_batch = metrics::histogram!("updraft_mws_fanout_batch_publications");
    // How long a publication waited for this thread: a fan-out that outgrows its core shows here first.
    let waited = metrics::histogram!("updraft_mws_fanout_queue_seconds");
    // Sockets with frames queued for this thread to write, in the order they got their first one.
    let mut flush = VecDeque::new();
    loop {
        // Wait for work only with nothing left to write.
        let mut next = if flush.is_empty() {
            let Some(first) = queue.blocking_recv() else { return };
            Some(first)
        } else {
            queue.try_recv().ok()
        };
        let mut taken = 0;
        while let Some((publication, queued_at, done)) = next {
            taken += 1;
            waited.record(queued_at.elapsed().as_secs_f64());
            if let Some(gateway) = gateways.get(&publication.gateway) {
                let receivers = Receivers {
                    everyone: publication.everyone,
                    // Ids that are not 64 hex characters name no socket.
                    sockets: publication.sockets.iter().filter_map(|s| SocketId::parse(s)).collect(),
                    tags: publication.tags.clone(),
                };
                let queued = flush.len();
                let fanout = gateway.hub.publish_deferred(&publication.data, &receivers, &mut flush);
                // Only sockets with nothing queued before are added, so writing them now keeps every socket's
                // frames in order; the ones already waiting get this frame with their turn.
                if flush.len() - queued <= SMALL_FANOUT {
                    for socket in flush.drain(queued..) {
                        socket.flush_direct();
                    }
                }
                delivered.increment(fanout.delivered);
                fanout_sockets.record(fanout.delivered as f64);
                dropped.increment(fanout.dropped);
            }
            // Queued in every outbox: accepted for delivery.
            let _ = done.send(());
            next = if taken < MAX_BATCH { queue.try_recv().ok() } else { None };
        }
        if taken > 0 {
            fanout_batch.record(taken as f64);
        }
        // A publication that arrives meanwhile is queued right after this chunk: the sockets not yet written then
        // get both frames in one write, the ones written already go to the back of the line.
        for socket in flush.drain(..FLUSH_CHUNK.min(flush.len())) {
            socket.flush_direct();
        }
    }
}
