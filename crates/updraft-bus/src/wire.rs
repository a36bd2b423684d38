//! A publication as it crosses the bus: the original MWS's message, `{"data","receivers":{"sockets","tags"}}`
//! in JSON (docs/scale-out.md), which an Updraft node and an original Ruby MWS node both read. Updraft adds
//! `origin`, the publishing node, for whoever reads the bus, and (on Redis) `seq`, the message's number.
//! Decoding follows the original's leniency: a missing or `null` list matches nothing, and a `data` that is not
//! a string is delivered as its JSON text.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Publication;

/// The original's broadcast receiver.
const EVERYONE: &str = "*";

#[derive(Serialize)]
struct Outgoing<'a> {
    data: std::borrow::Cow<'a, str>,
    receivers: OutgoingReceivers<'a>,
    origin: &'a str,
}

#[derive(Serialize)]
struct OutgoingReceivers<'a> {
    sockets: Vec<&'a str>,
    tags: &'a [String],
}

#[derive(Deserialize)]
struct Incoming {
    /// The message's number, when the bus numbers them (Redis: `redis_journal.rs`).
    #[serde(default)]
    seq: Option<u64>,
    data: Value,
    #[serde(default)]
    receivers: Option<IncomingReceivers>,
    #[serde(default)]
    origin: Option<String>,
}

#[derive(Deserialize, Default)]
struct IncomingReceivers {
    #[serde(default)]
    sockets: Option<Vec<String>>,
    #[serde(default)]
    tags: Option<Vec<String>>,
}

/// Hands a message heard on the bus for `gateway` to the node's sockets ([`hand_over`]), numbered `seq` when the
/// bus gave it a number beside its payload. Answers why a message that is not a publication was dropped.
pub(crate) async fn receive(
    local: &crate::Node,
    gateway: &str,
    payload: &[u8],
    seq: Option<u64>,
) -> Result<(), serde_json::Error> {
    let (mut publication, _) = decode_counted(gateway, payload)?;
    publication.seq = seq.or(publication.seq);
    hand_over(local, publication).await;
    Ok(())
}

/// Hands a publication heard on the bus to the node's sockets, and counts it. Every node, the publisher included,
/// delivers what it hears: the bus numbers each message on its way, and only what comes back carries the number.
pub(crate) async fn hand_over(local: &crate::Node, publication: Publication) {
    metrics::counter!("updraft_bus_messages_received_total").increment(1);
    (local.deliver)(publication).await;
}

/// [`decode`], counting what is dropped.
pub(crate) fn decode_counted(
    gateway: &str,
    payload: &[u8],
) -> Result<(Publication, Option<String>), serde_json::Error> {
    decode(gateway, payload).inspect_err(|_| metrics::counter!("updraft_bus_messages_dropped_total").increment(1))
}

/// The message for `publication`, sent by node `origin`.
pub(crate) fn encode(publication: &Publication, origin: &str) -> Vec<u8> {
    let sockets =
        if publication.everyone { vec![EVERYONE] } else { publication.sockets.iter().map(String::as_str).collect() };
    let message = Outgoing {
        // Frames are text, so the data is UTF-8; lossy only guards a caller that broke that.
        data: String::from_utf8_lossy(&publication.data),
        receivers: OutgoingReceivers { sockets, tags: &publication.tags },
        origin,
    };
    serde_json::to_vec(&message).expect("a publication serializes")
}

/// A message read from the bus for `gateway`, with the node that sent it when it says (an original MWS does not).
pub(crate) fn decode(gateway: &str, payload: &[u8]) -> Result<(Publication, Option<String>), serde_json::Error> {
    let message: Incoming = serde_json::from_slice(payload)?;
    let data = match message.data {
        Value::String(text) => Bytes::from(text),
        other => Bytes::from(other.to_string()),
    };
    let receivers = message.receivers.unwrap_or_default();
    let sockets = receivers.sockets.unwrap_or_default();
    let everyone = sockets.iter().any(|socket| socket == EVERYONE);
    let publication = Publication {
        gateway: gateway.to_owned(),
        data,
        everyone,
        sockets: if everyone { Vec::new() } else { sockets },
        tags: if everyone { Vec::new() } else { receivers.tags.unwrap_or_default() },
        seq: message.seq,
        ..Publication::default()
    };
    Ok((publication, message.origin))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publication(everyone: bool) -> Publication {
        Publication {
            gateway: "default".into(),
            data: Bytes::from_static("héllo \"x\"".as_bytes()),
            everyone,
            sockets: if everyone { vec![] } else { vec!["abc".into()] },
            tags: if everyone { vec![] } else { vec!["users.1".into()] },
            ..Publication::default()
        }
    }

    #[test]
    fn a_publication_survives_the_round_trip() {
        for everyone in [true, false] {
            let sent = publication(everyone);
            let (read, origin) = decode("default", &encode(&sent, "node-a")).unwrap();
            assert_eq!(read, sent);
            assert_eq!(origin.as_deref(), Some("node-a"));
        }
    }

    #[test]
    fn the_original_format_is_what_goes_out() {
        let sent: Value = serde_json::from_slice(&encode(&publication(true), "n")).unwrap();
        assert_eq!(sent["data"], "héllo \"x\"");
        assert_eq!(sent["receivers"]["sockets"], serde_json::json!(["*"]));
        assert_eq!(sent["receivers"]["tags"], serde_json::json!([]));
    }

    #[test]
    fn an_original_message_is_read_leniently() {
        let raw = br#"{"data":{"a":1},"receivers":{"sockets":null,"tags":["t"]}}"#;
        let (read, origin) = decode("default", raw).unwrap();
        assert_eq!(read.data, Bytes::from_static(br#"{"a":1}"#));
        assert!(!read.everyone && read.sockets.is_empty());
        assert_eq!(read.tags, vec!["t".to_string()]);
        assert_eq!(origin, None);
        let (nobody, _) = decode("default", br#"{"data":"x"}"#).unwrap();
        assert!(!nobody.everyone && nobody.sockets.is_empty() && nobody.tags.is_empty());
        assert!(decode("default", b"not json").is_err());
        assert!(decode("default", br#"{"receivers":{}}"#).is_err());
    }
}
