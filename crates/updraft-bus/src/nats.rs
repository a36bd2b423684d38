//! The bus over NATS: a gateway's publications go on subject `updraft.mws.<gateway id>` in the same JSON as
//! over Redis ([`crate::wire`]), and every node subscribes to `updraft.mws.>`.
//!
//! A publish is acknowledged once the server has answered a flush after it, so an accepted message is on the
//! server, not in a client buffer; the node then delivers it itself and skips its echo. The client reconnects
//! (with backoff) and subscribes again by itself; while it is away the node reports not ready, publishing is
//! refused, and what others publish meanwhile does not reach it (core NATS keeps nothing).

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::{Bus, BusError, Deliver, Publication, backoff, wire};

/// Subjects of every gateway's publications: `updraft.mws.<gateway id>` (ids are `[A-Za-z0-9_-]`, valid tokens).
const PREFIX: &str = "updraft.mws.";
const EVERY_GATEWAY: &str = "updraft.mws.*";
/// How long a publish may wait for the server's answer before the publisher is told the bus is unavailable.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

pub struct NatsBus {
    client: async_nats::Client,
    node: String,
    deliver: Deliver,
    _stop: DropGuard,
}

impl NatsBus {
    /// Connects and subscribes before it returns, so a wrong URL fails at start-up and a message published on
    /// another node once this one is up reaches it.
    pub async fn start(url: &str, node: &str, deliver: Deliver) -> Result<NatsBus, BusError> {
        let client = async_nats::ConnectOptions::new()
            .name(format!("updraft {node}"))
            .reconnect_delay_callback(|attempts| backoff(u32::try_from(attempts).unwrap_or(u32::MAX)))
            .event_callback(|event| async move {
                let connected = matches!(event, async_nats::Event::Connected);
                metrics::gauge!("updraft_bus_connected").set(if connected { 1.0 } else { 0.0 });
                tracing::info!(%event, "NATS");
            })
            .connect(url)
            .await
            .map_err(|err| BusError(format!("nats: {err}")))?;
        let subscriber = client.subscribe(EVERY_GATEWAY).await.map_err(|err| BusError(format!("nats: {err}")))?;
        client.flush().await.map_err(|err| BusError(format!("nats: {err}")))?;
        metrics::gauge!("updraft_bus_connected").set(1.0);
        let stop = CancellationToken::new();
        tokio::spawn(listen(subscriber, node.to_owned(), deliver.clone(), stop.clone()));
        Ok(NatsBus { client, node: node.to_owned(), deliver, _stop: stop.drop_guard() })
    }
}

impl Bus for NatsBus {
    fn publish(&self, publication: Publication) -> BoxFuture<'_, Result<(), BusError>> {
        Box::pin(async move {
            // A client that is away would buffer the message and acknowledge nothing the server holds.
            if !self.ready() {
                return Err(BusError("nats: not connected".into()));
            }
            let payload = wire::encode(&publication, &self.node);
            let subject = format!("{PREFIX}{}", publication.gateway);
            let sent = async {
                self.client.publish(subject, payload.into()).await.map_err(|err| err.to_string())?;
                self.client.flush().await.map_err(|err| err.to_string())
            };
            match tokio::time::timeout(PUBLISH_TIMEOUT, sent).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => return Err(BusError(format!("nats: {err}"))),
                Err(_) => return Err(BusError("nats: no answer to the flush".into())),
            }
            (self.deliver)(publication).await;
            Ok(())
        })
    }

    fn ready(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }
}

/// Delivers what the subscription hears until the bus is dropped.
async fn listen(mut subscriber: async_nats::Subscriber, node: String, deliver: Deliver, stop: CancellationToken) {
    loop {
        let message = tokio::select! {
            () = stop.cancelled() => return,
            message = subscriber.next() => match message {
                Some(message) => message,
                None => return,
            },
        };
        let Some(gateway) = message.subject.strip_prefix(PREFIX) else { continue };
        match wire::decode(gateway, &message.payload) {
            Ok((_, Some(origin))) if origin == node => {}
            Ok((publication, _)) => {
                metrics::counter!("updraft_bus_messages_received_total").increment(1);
                deliver(publication).await;
            }
            Err(err) => {
                metrics::counter!("updraft_bus_messages_dropped_total").increment(1);
                tracing::warn!(%err, subject = %message.subject, "a bus message is not a publication");
            }
        }
    }
}
