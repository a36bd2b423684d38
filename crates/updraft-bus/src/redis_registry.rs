//! The socket registry in Redis: a hash per gateway, `updraft:sockets:<gateway>`, whose fields are socket ids
//! and whose values are [`SocketRecord`]s, and a lease per node, `updraft:node:<node>`, that expires after
//! [`LEASE`]. A listing leaves out (and removes) the records of nodes whose lease is gone.

use std::collections::HashSet;

use futures_util::future::BoxFuture;
use redis::aio::ConnectionManager;

use crate::BusError;
use crate::redis::unavailable;
use crate::registry::{LEASE, Registry, SocketEvent, SocketRecord, record};

/// The channel of close requests.
pub(crate) const CONTROL: &str = "updraft:control";

fn sockets_key(gateway: &str) -> String {
    format!("updraft:sockets:{gateway}")
}

fn lease_key(node: &str) -> String {
    format!("updraft:node:{node}")
}

pub(crate) struct RedisRegistry {
    connection: ConnectionManager,
}

impl RedisRegistry {
    pub(crate) fn new(connection: ConnectionManager) -> RedisRegistry {
        RedisRegistry { connection }
    }
}

impl Registry for RedisRegistry {
    fn apply<'a>(&'a self, node: &'a str, events: &'a [SocketEvent]) -> BoxFuture<'a, Result<(), BusError>> {
        Box::pin(async move {
            let mut pipe = redis::pipe();
            for event in events {
                match event {
                    SocketEvent::Opened(socket) | SocketEvent::Retagged(socket) => {
                        let value = serde_json::to_vec(&record(socket, node)).expect("a record serializes");
                        pipe.hset(sockets_key(&socket.gateway), &socket.id, value).ignore();
                    }
                    SocketEvent::Closed { gateway, id } => {
                        pipe.hdel(sockets_key(gateway), id).ignore();
                    }
                }
            }
            let mut connection = self.connection.clone();
            pipe.query_async::<()>(&mut connection).await.map_err(unavailable)
        })
    }

    fn renew<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<bool, BusError>> {
        Box::pin(async move {
            let mut command = redis::cmd("SET");
            let lease_ms = u64::try_from(LEASE.as_millis()).unwrap_or(u64::MAX);
            command.arg(lease_key(node)).arg(1).arg("PX").arg(lease_ms).arg("GET");
            let mut connection = self.connection.clone();
            let before: Option<String> = command.query_async(&mut connection).await.map_err(unavailable)?;
            Ok(before.is_none())
        })
    }

    fn leave<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<(), BusError>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            redis::cmd("DEL").arg(lease_key(node)).query_async::<()>(&mut connection).await.map_err(unavailable)
        })
    }
}

/// The records of `gateway`'s sockets on live nodes; those of nodes without a lease are removed.
pub(crate) async fn sockets(
    connection: &mut ConnectionManager,
    gateway: &str,
) -> redis::RedisResult<Vec<SocketRecord>> {
    let key = sockets_key(gateway);
    let all: Vec<(String, Vec<u8>)> = redis::cmd("HGETALL").arg(&key).query_async(connection).await?;
    let records: Vec<SocketRecord> =
        all.iter().filter_map(|(_, value)| serde_json::from_slice::<SocketRecord>(value).ok()).collect();
    let live = live_nodes(connection, records.iter().map(|record| record.node.as_str())).await?;
    let (kept, stale): (Vec<_>, Vec<_>) = records.into_iter().partition(|record| live.contains(&record.node));
    if !stale.is_empty() {
        let ids: Vec<&str> = stale.iter().map(|record| record.id.as_str()).collect();
        redis::cmd("HDEL").arg(&key).arg(ids).query_async::<()>(connection).await?;
    }
    Ok(kept)
}

/// The record of socket `id` of `gateway`, if the node that holds it is live.
pub(crate) async fn record_of(
    connection: &mut ConnectionManager,
    gateway: &str,
    id: &str,
) -> redis::RedisResult<Option<SocketRecord>> {
    let value: Option<Vec<u8>> = redis::cmd("HGET").arg(sockets_key(gateway)).arg(id).query_async(connection).await?;
    let Some(record) = value.and_then(|value| serde_json::from_slice::<SocketRecord>(&value).ok()) else {
        return Ok(None);
    };
    let live = live_nodes(connection, std::iter::once(record.node.as_str())).await?;
    Ok(live.contains(&record.node).then_some(record))
}

async fn live_nodes<'a>(
    connection: &mut ConnectionManager,
    nodes: impl Iterator<Item = &'a str>,
) -> redis::RedisResult<HashSet<String>> {
    let nodes: Vec<&str> = nodes.collect::<HashSet<_>>().into_iter().collect();
    if nodes.is_empty() {
        return Ok(HashSet::new());
    }
    let keys: Vec<String> = nodes.iter().map(|node| lease_key(node)).collect();
    let leases: Vec<Option<String>> = redis::cmd("MGET").arg(keys).query_async(connection).await?;
    Ok(nodes.into_iter().zip(leases).filter(|(_, lease)| lease.is_some()).map(|(node, _)| node.to_owned()).collect())
}
