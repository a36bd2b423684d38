//! Numbered delivery over Redis: one script numbers a gateway's message (a counter per gateway), keeps it in the
//! gateway's log (a Redis stream whose entry ids are the numbers) and publishes it on the gateway's channel with
//! its number as `seq`. Redis runs a script alone, so the channel's order is the numbers' order, on every node.
//! A socket that reconnects to any node with `since` gets what it missed from the log ([`history`]), and a node
//! whose subscription dropped catches each gateway it heard up from it once it is back.
//!
//! The log keeps the last [`MAX_KEPT`] messages of a gateway, and goes after [`KEPT`] without a message. Numbers
//! are contiguous per gateway, so a log that no longer starts right after `since` has lost something: a gap. The
//! message stays the original MWS's JSON with `seq` added, which an original node ignores.

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::ConnectionLike;

use crate::{History, Publication, wire};

const SEQ_PREFIX: &str = "updraft:mws:seq:";
const LOG_PREFIX: &str = "updraft:mws:log:";
/// A message published under a name (`Publication::once`) by several nodes: kept once for [`KEPT`].
const ONCE_PREFIX: &str = "updraft:mws:once:";
/// As a gateway's journal keeps on one node (`updraft_gateway::JournalLimits`).
const KEPT: Duration = Duration::from_secs(120);
const MAX_KEPT: u64 = 10_000;

/// KEYS: the counter, the log, the name (or ""). ARGV: the channel, the message's JSON after its opening brace,
/// how long to keep (ms), how many to keep. Answers the number, or 0 for a name already published.
const PUBLISH: &str = r#"
if KEYS[3] ~= '' and not redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[3]) then
  return 0
end
local seq = redis.call('INCR', KEYS[1])
local payload = '{"seq":' .. seq .. ',' .. ARGV[2]
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], seq .. '-1', 'm', payload)
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PUBLISH', ARGV[1], payload)
return seq
"#;

/// The script that publishes `publication` (encoded as `message`) on `channel`.
pub(crate) fn publish(channel: &str, publication: &Publication, message: &[u8]) -> redis::Cmd {
    let once = publication.once.as_ref().map_or_else(String::new, |name| format!("{ONCE_PREFIX}{name}"));
    let mut command = redis::cmd("EVAL");
    command
        .arg(PUBLISH)
        .arg(3)
        .arg(format!("{SEQ_PREFIX}{}", publication.gateway))
        .arg(format!("{LOG_PREFIX}{}", publication.gateway))
        .arg(once)
        .arg(channel)
        .arg(message.strip_prefix(b"{").unwrap_or(message))
        .arg(KEPT.as_millis() as u64)
        .arg(MAX_KEPT);
    command
}

/// `gateway`'s messages after `since` that its log still holds, up to the latest number, or a gap.
pub(crate) async fn history(
    connection: &mut (impl ConnectionLike + Send),
    gateway: &str,
    since: u64,
) -> redis::RedisResult<History> {
    let latest: Option<u64> = redis::cmd("GET").arg(format!("{SEQ_PREFIX}{gateway}")).query_async(connection).await?;
    let latest = latest.unwrap_or(0);
    if since == 0 {
        return Ok(History::Kept { latest, missed: Vec::new() });
    }
    read_log(connection, gateway, since, latest).await
}

/// `gateway`'s messages after `since` (0: all of them) that its log still holds, up to `latest`, or a gap.
async fn read_log(
    connection: &mut (impl ConnectionLike + Send),
    gateway: &str,
    since: u64,
    latest: u64,
) -> redis::RedisResult<History> {
    if since == latest {
        return Ok(History::Kept { latest, missed: Vec::new() });
    }
    if since > latest {
        return Ok(History::Gap { latest });
    }
    let entries: Vec<(String, Vec<Vec<u8>>)> = redis::cmd("XRANGE")
        .arg(format!("{LOG_PREFIX}{gateway}"))
        .arg(format!("{}-0", since + 1))
        .arg(format!("{latest}-1"))
        .query_async(connection)
        .await?;
    let number = |id: &str| id.split('-').next().and_then(|n| n.parse::<u64>().ok());
    if entries.first().and_then(|(id, _)| number(id)) != Some(since + 1) {
        return Ok(History::Gap { latest });
    }
    let mut missed = Vec::with_capacity(entries.len());
    for (id, fields) in entries {
        let Some(payload) = fields.get(1) else { continue };
        match wire::decode(gateway, payload) {
            Ok((mut publication, _)) => {
                publication.seq = number(&id);
                missed.push(publication);
            }
            Err(err) => tracing::warn!(%err, id, "a logged message is not a publication"),
        }
    }
    Ok(History::Kept { latest, missed })
}

/// Every gateway's latest number, for the gateways that have published on this Redis.
pub(crate) async fn latest_numbers(
    connection: &mut (impl ConnectionLike + Send),
) -> redis::RedisResult<HashMap<String, u64>> {
    let mut keys = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{SEQ_PREFIX}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(connection)
            .await?;
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let mut numbers = HashMap::with_capacity(keys.len());
    for chunk in keys.chunks(1000) {
        let values: Vec<Option<u64>> = redis::cmd("MGET").arg(chunk).query_async(connection).await?;
        for (key, value) in chunk.iter().zip(values) {
            if let (Some(gateway), Some(value)) = (key.strip_prefix(SEQ_PREFIX), value) {
                numbers.insert(gateway.to_owned(), value);
            }
        }
    }
    Ok(numbers)
}

/// What a node that had heard nothing of `gateway` (its numbering began after the node last subscribed) missed:
/// everything its log holds, up to `latest`.
pub(crate) async fn whole_log(
    connection: &mut (impl ConnectionLike + Send),
    gateway: &str,
    latest: u64,
) -> redis::RedisResult<History> {
    read_log(connection, gateway, 0, latest).await
}
