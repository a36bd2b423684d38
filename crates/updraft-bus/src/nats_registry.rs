//! The socket registry in NATS JetStream key-value buckets: `updraft_sockets`, whose keys are
//! `<gateway>.<socket id>` and whose values are [`SocketRecord`]s, and `updraft_nodes`, one key per node,
//! whose entries age out after [`LEASE`]. A listing leaves out (and removes) the records of nodes whose lease
//! is gone. All buckets are in memory: what they hold lives no longer than the sockets.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures_util::TryStreamExt;
use futures_util::future::BoxFuture;

use crate::BusError;
use crate::registry::{LEASE, Registry, SocketEvent, SocketRecord, record};

/// The subject of close requests.
pub(crate) const CONTROL: &str = "updraft.control";
const SOCKETS: &str = "updraft_sockets";
const NODES: &str = "updraft_nodes";

pub(crate) fn failed(err: impl std::fmt::Display) -> BusError {
    BusError(format!("nats: {err}"))
}

/// The in-memory bucket `name`, made by the first node that needs it; entries older than `max_age` go.
pub(crate) async fn bucket(client: &async_nats::Client, name: &str, max_age: Duration) -> Result<kv::Store, BusError> {
    let jetstream = jetstream::new(client.clone());
    if let Ok(store) = jetstream.get_key_value(name).await {
        return Ok(store);
    }
    let config = kv::Config {
        bucket: name.into(),
        history: 1,
        max_age,
        storage: jetstream::stream::StorageType::Memory,
        ..Default::default()
    };
    jetstream.create_key_value(config).await.map_err(|err| failed(format!("bucket {name} (is JetStream on?): {err}")))
}

#[derive(Clone)]
pub(crate) struct NatsRegistry {
    sockets: kv::Store,
    nodes: kv::Store,
}

impl NatsRegistry {
    pub(crate) async fn open(client: &async_nats::Client) -> Result<NatsRegistry, BusError> {
        Ok(NatsRegistry {
            sockets: bucket(client, SOCKETS, Duration::ZERO).await?,
            nodes: bucket(client, NODES, LEASE).await?,
        })
    }

    /// The records of `gateway`'s sockets on live nodes; those of nodes without a lease are removed.
    pub(crate) async fn list(&self, gateway: &str) -> Result<Vec<SocketRecord>, BusError> {
        let prefix = format!("{gateway}.");
        let keys: Vec<String> = self.sockets.keys().await.map_err(failed)?.try_collect().await.map_err(failed)?;
        let mut records = Vec::new();
        let mut live: HashMap<String, bool> = HashMap::new();
        for key in keys.into_iter().filter(|key| key.starts_with(&prefix)) {
            let Some(value) = self.sockets.get(&key).await.map_err(failed)? else { continue };
            let Ok(record) = serde_json::from_slice::<SocketRecord>(&value) else { continue };
            if self.is_live(&record.node, &mut live).await? {
                records.push(record);
            } else {
                self.sockets.delete(&key).await.map_err(failed)?;
            }
        }
        Ok(records)
    }

    /// The live node that holds socket `id` of `gateway`.
    pub(crate) async fn holder(&self, gateway: &str, id: &str) -> Result<Option<String>, BusError> {
        let Some(value) = self.sockets.get(format!("{gateway}.{id}")).await.map_err(failed)? else { return Ok(None) };
        let Ok(record) = serde_json::from_slice::<SocketRecord>(&value) else { return Ok(None) };
        Ok(self.is_live(&record.node, &mut HashMap::new()).await?.then_some(record.node))
    }

    async fn is_live(&self, node: &str, known: &mut HashMap<String, bool>) -> Result<bool, BusError> {
        if let Some(live) = known.get(node) {
            return Ok(*live);
        }
        let live = self.nodes.get(node).await.map_err(failed)?.is_some();
        known.insert(node.to_owned(), live);
        Ok(live)
    }
}

impl Registry for NatsRegistry {
    fn apply<'a>(&'a self, node: &'a str, events: &'a [SocketEvent]) -> BoxFuture<'a, Result<(), BusError>> {
        Box::pin(async move {
            for event in events {
                match event {
                    SocketEvent::Opened(socket) => {
                        let value = serde_json::to_vec(&record(socket, node)).expect("a record serializes");
                        self.sockets
                            .put(format!("{}.{}", socket.gateway, socket.id), value.into())
                            .await
                            .map_err(failed)?;
                    }
                    SocketEvent::Closed { gateway, id } => {
                        self.sockets.delete(format!("{gateway}.{id}")).await.map_err(failed)?;
                    }
                }
            }
            Ok(())
        })
    }

    fn renew<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<bool, BusError>> {
        Box::pin(async move {
            let lapsed = self.nodes.get(node).await.map_err(failed)?.is_none();
            self.nodes.put(node, "1".into()).await.map_err(failed)?;
            Ok(lapsed)
        })
    }

    fn leave<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<(), BusError>> {
        Box::pin(async move { self.nodes.purge(node).await.map_err(failed) })
    }
}
