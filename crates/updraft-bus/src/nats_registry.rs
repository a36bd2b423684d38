//! The socket registry in NATS JetStream key-value buckets: `updraft_sockets`, whose keys are
//! `<gateway>.<socket id>` and whose values are [`SocketRecord`]s, and `updraft_nodes`, one key per node,
//! whose entries age out after [`LEASE`]. A listing leaves out (and removes) the records of nodes whose lease
//! is gone. All buckets are in memory: what they hold lives no longer than the sockets.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
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
    BusError::of("nats", err)
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

/// A bucket that is made again when an operation on it fails: a NATS server that restarted has lost its
/// in-memory buckets, and every node must go on without an operator's help.
pub(crate) struct Bucket {
    client: async_nats::Client,
    name: &'static str,
    max_age: Duration,
    store: RwLock<kv::Store>,
}

impl Bucket {
    pub(crate) async fn open(
        client: &async_nats::Client,
        name: &'static str,
        max_age: Duration,
    ) -> Result<Bucket, BusError> {
        let store = RwLock::new(bucket(client, name, max_age).await?);
        Ok(Bucket { client: client.clone(), name, max_age, store })
    }

    /// Runs `op`; if it fails, makes the bucket again (or finds it again) and runs it once more.
    pub(crate) async fn run<T, E, F, Fut>(&self, op: F) -> Result<T, BusError>
    where
        F: Fn(kv::Store) -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        let current = self.store.read().expect("bucket lock").clone();
        if let Ok(done) = op(current).await {
            return Ok(done);
        }
        let again = bucket(&self.client, self.name, self.max_age).await?;
        *self.store.write().expect("bucket lock") = again.clone();
        op(again).await.map_err(failed)
    }
}

#[derive(Clone)]
pub(crate) struct NatsRegistry {
    sockets: Arc<Bucket>,
    nodes: Arc<Bucket>,
}

impl NatsRegistry {
    pub(crate) async fn open(client: &async_nats::Client) -> Result<NatsRegistry, BusError> {
        let sockets = Arc::new(Bucket::open(client, SOCKETS, Duration::ZERO).await?);
        Ok(NatsRegistry { sockets, nodes: Arc::new(Bucket::open(client, NODES, LEASE).await?) })
    }

    /// The records of `gateway`'s sockets on live nodes; those of nodes without a lease are removed.
    pub(crate) async fn list(&self, gateway: &str) -> Result<Vec<SocketRecord>, BusError> {
        let prefix = format!("{gateway}.");
        let keys: Vec<String> = self
            .sockets
            .run(|store| async move {
                let keys = store.keys().await.map_err(failed)?;
                keys.try_collect::<Vec<String>>().await.map_err(failed)
            })
            .await?;
        let mut records = Vec::new();
        let mut live: HashMap<String, bool> = HashMap::new();
        for key in keys.into_iter().filter(|key| key.starts_with(&prefix)) {
            let Some(value) = self.sockets.run(|store| get(store, key.clone())).await? else { continue };
            let Ok(record) = serde_json::from_slice::<SocketRecord>(&value) else { continue };
            if self.is_live(&record.node, &mut live).await? {
                records.push(record);
            } else {
                self.sockets.run(|store| delete(store, key.clone())).await?;
            }
        }
        Ok(records)
    }

    /// The record of socket `id` of `gateway`, if the node that holds it is live.
    pub(crate) async fn record_of(&self, gateway: &str, id: &str) -> Result<Option<SocketRecord>, BusError> {
        let key = format!("{gateway}.{id}");
        let Some(value) = self.sockets.run(|store| get(store, key.clone())).await? else { return Ok(None) };
        let Ok(record) = serde_json::from_slice::<SocketRecord>(&value) else { return Ok(None) };
        Ok(self.is_live(&record.node, &mut HashMap::new()).await?.then_some(record))
    }

    async fn is_live(&self, node: &str, known: &mut HashMap<String, bool>) -> Result<bool, BusError> {
        if let Some(live) = known.get(node) {
            return Ok(*live);
        }
        let live = self.nodes.run(|store| get(store, node.to_owned())).await?.is_some();
        known.insert(node.to_owned(), live);
        Ok(live)
    }
}

impl Registry for NatsRegistry {
    fn apply<'a>(&'a self, node: &'a str, events: &'a [SocketEvent]) -> BoxFuture<'a, Result<(), BusError>> {
        Box::pin(async move {
            // Only each socket's last event of the batch counts. Those are written all at once (one round trip
            // for the batch, as Redis pipelines them), each key once, so their order does not matter.
            let mut last: HashMap<String, Option<bytes::Bytes>> = HashMap::with_capacity(events.len());
            for event in events {
                match event {
                    SocketEvent::Opened(socket) | SocketEvent::Retagged(socket) => {
                        let value = serde_json::to_vec(&record(socket, node)).expect("a record serializes");
                        last.insert(format!("{}.{}", socket.gateway, socket.id), Some(value.into()));
                    }
                    SocketEvent::Closed { gateway, id } => {
                        last.insert(format!("{gateway}.{id}"), None);
                    }
                }
            }
            let writes = last.into_iter().map(|(key, value)| async move {
                match value {
                    Some(value) => self.sockets.run(|store| put(store, key.clone(), value.clone())).await.map(drop),
                    None => self.sockets.run(|store| delete(store, key.clone())).await,
                }
            });
            futures_util::future::try_join_all(writes).await?;
            Ok(())
        })
    }

    fn renew<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<bool, BusError>> {
        Box::pin(async move {
            let lapsed = self.nodes.run(|store| get(store, node.to_owned())).await?.is_none();
            self.nodes.run(|store| async move { store.put(node, "1".into()).await }).await?;
            Ok(lapsed)
        })
    }

    fn leave<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<(), BusError>> {
        Box::pin(async move { self.nodes.run(|store| async move { store.purge(node).await }).await })
    }
}

async fn get(store: kv::Store, key: String) -> Result<Option<bytes::Bytes>, kv::EntryError> {
    store.get(key).await
}

async fn delete(store: kv::Store, key: String) -> Result<(), kv::DeleteError> {
    store.delete(key).await
}

async fn put(store: kv::Store, key: String, value: bytes::Bytes) -> Result<u64, kv::PutError> {
    store.put(key, value).await
}
