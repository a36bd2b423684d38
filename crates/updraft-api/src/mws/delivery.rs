//! What a node does with a publication from the bus: resolve receivers against its own sockets.
//!
//! Fan-outs run on a thread of their own, in the order they were published, and write to idle plain-TCP sockets
//! directly ([`updraft_gateway::Socket::flush_direct`]); only a socket with bytes in flight, a full window or TLS is
//! left to its connection task. On the HTTP runtime, a broadcast to 10k sockets held a worker for its whole length
//! (API requests waited behind it); as a task on the socket runtime, it queued behind the 10k socket tasks of the
//! broadcast before it. Publications waiting when the thread comes round are taken as one batch, so under a heavy
//! rate a socket gets several frames in one write.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use updraft_bus::{BoxFuture, Deliver, Publication};
use updraft_gateway::{Gateways, Receivers, SocketId};

/// Publications waiting for the fan-out thread; publishers wait for room beyond this.
const QUEUE: usize = 1024;
/// Publications fanned out before their sockets are written.
const MAX_BATCH: usize = 64;

pub fn deliver_locally(gateways: Arc<Gateways>) -> std::io::Result<Deliver> {
    let (tx, rx) = mpsc::channel::<(Publication, oneshot::Sender<()>)>(QUEUE);
    std::thread::Builder::new().name("updraft-fanout".into()).spawn(move || fan_out(&gateways, rx))?;
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
fn fan_out(gateways: &Gateways, mut queue: mpsc::Receiver<(Publication, oneshot::Sender<()>)>) {
    let delivered = metrics::counter!("updraft_mws_frames_delivered_total");
    let dropped = metrics::counter!("updraft_mws_sockets_dropped_slow_total");
    let fanout_sockets = metrics::histogram!("updraft_mws_fanout_sockets");
    let fanout_batch = metrics::histogram!("updraft_mws_fanout_batch_publications");
    // A socket may hold a whole batch before it is written: keep batches well inside its outbox.
    let limits = gateways.limits();
    let max_batch = (limits.max_frames / 4).clamp(1, MAX_BATCH);
    let max_batch_bytes = (limits.max_bytes / 4).max(1);
    let mut batch = Vec::with_capacity(max_batch);
    let mut flush = Vec::new();
    while let Some(first) = queue.blocking_recv() {
        let mut bytes = first.0.data.len();
        batch.push(first);
        while batch.len() < max_batch && bytes < max_batch_bytes {
            let Ok(next) = queue.try_recv() else { break };
            bytes += next.0.data.len();
            batch.push(next);
        }
        fanout_batch.record(batch.len() as f64);
        for (publication, _) in &batch {
            let Some(gateway) = gateways.get(&publication.gateway) else { continue };
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
        for socket in flush.drain(..) {
            socket.flush_direct();
        }
        for (_, done) in batch.drain(..) {
            let _ = done.send(());
        }
    }
}
