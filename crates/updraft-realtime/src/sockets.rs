//! Built-in EDS → MWS: changes of a backend's objects reach the sockets of every gateway bound to that backend
//! (`EDS_BACKEND_ID`, or `identityProvider.backendId` in a gateway's configuration), with no webhook in between.
//! Each change becomes the frame an `enginio` webhook receiver sends ([`frames::socket_frame`]), addressed to the
//! tags of the subjects that may read the object (`users.<id>`, `usergroups.<id>`), or to everyone when `*` may.
//! Who may read is decided once per change, in the transaction that made it, never per socket.

use std::sync::Arc;

use updraft_bus::{Bus, Publication};
use updraft_gateway::Gateways;
use updraft_store::{Change, Changes};

use crate::frames;

/// Delivers changes as they commit, until the store goes away. Sockets are live connections: changes from before
/// this start have nobody to reach, so it begins at the latest.
pub async fn deliver(changes: Arc<dyn Changes>, gateways: Arc<Gateways>, bus: Arc<dyn Bus>) {
    let bound = || any_bound(&gateways);
    let each = |change: Change| {
        let (gateways, bus) = (gateways.clone(), bus.clone());
        async move { publish(&change, &gateways, bus.as_ref()).await }
    };
    crate::follow(changes, bound, each).await;
}

fn any_bound(gateways: &Gateways) -> bool {
    gateways.list().iter().any(|gateway| gateway.config().eds_backend_id.is_some())
}

async fn publish(change: &Change, gateways: &Gateways, bus: &dyn Bus) {
    let bound: Vec<String> = gateways
        .list()
        .into_iter()
        .filter(|gateway| gateway.config().eds_backend_id.as_deref() == Some(change.backend.as_str()))
        .map(|gateway| gateway.id.clone())
        .collect();
    if bound.is_empty() || change.readers.is_empty() {
        return;
    }
    let data = frames::socket_frame(change);
    let everyone = change.is_public();
    for gateway in bound {
        let publication = Publication {
            gateway: gateway.clone(),
            data: data.clone(),
            everyone,
            sockets: Vec::new(),
            tags: if everyone { Vec::new() } else { change.readers.iter().map(ToString::to_string).collect() },
            // With a shared change log every node publishes each change; a bus that numbers keeps one.
            once: Some(format!("{}:{}:{}", change.backend, change.seq, gateway)),
            ..Publication::default()
        };
        metrics::counter!("updraft_eds_changes_delivered_total").increment(1);
        if let Err(err) = bus.publish(publication).await {
            tracing::warn!(%err, seq = change.seq, "a change could not be published");
        }
    }
}
