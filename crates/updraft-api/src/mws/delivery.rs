//! What a node does with a publication from the bus: resolve receivers against its own sockets.

use std::sync::Arc;

use updraft_bus::{Deliver, Publication};
use updraft_gateway::{Gateways, Receivers, SocketId};

pub fn deliver_locally(gateways: Arc<Gateways>) -> Deliver {
    let delivered = metrics::counter!("updraft_mws_frames_delivered_total");
    let dropped = metrics::counter!("updraft_mws_sockets_dropped_slow_total");
    let fanout_sockets = metrics::histogram!("updraft_mws_fanout_sockets");
    Arc::new(move |publication: &Publication| {
        let Some(gateway) = gateways.get(&publication.gateway) else { return };
        let receivers = Receivers {
            everyone: publication.everyone,
            // Ids that are not 64 hex characters name no socket.
            sockets: publication.sockets.iter().filter_map(|s| SocketId::parse(s)).collect(),
            tags: publication.tags.clone(),
        };
        let fanout = gateway.hub.publish(&publication.data, &receivers);
        delivered.increment(fanout.delivered);
        fanout_sockets.record(fanout.delivered as f64);
        dropped.increment(fanout.dropped);
    })
}
