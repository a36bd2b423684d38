//! Resumable delivery: a gateway numbers its messages and keeps the recent ones, so that a socket reconnecting with
//! the last number it saw gets what it missed, or is told plainly that it is too late.
//!
//! Sockets opt in by opening their URI with `&since=<seq>` (`0` on a first connect). Their frames then carry the
//! number, as `{"seq": N, "data": "<the message as others get it>"}`; right after any replay comes
//! `{"seq": N, "resumed": true}` (N is the latest number, the one to resume from if nothing else arrives), or,
//! when the journal no longer reaches back to `since`, `{"seq": N, "gap": true}` instead of the replay: the client
//! should refetch its state. Sockets that do not opt in get the original bare frames.
//!
//! Numbers start at the gateway's creation time in microseconds, so they keep growing across restarts and a
//! number from before one is recognised as too old rather than confused with a new one.
//!
//! On a bus that numbers messages across the cluster (NATS), the bus's numbers are used instead, and a resuming
//! socket gets what the bus kept ([`Kept`]) together with what this node heard since.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::hub::Receivers;
use crate::socket::{Socket, SocketId};
use updraft_ws as ws;

/// How much a gateway keeps: messages younger than `age`, at most `messages` of them and `bytes` of data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalLimits {
    pub age: Duration,
    pub messages: usize,
    pub bytes: usize,
}

impl Default for JournalLimits {
    fn default() -> JournalLimits {
        JournalLimits { age: Duration::from_secs(120), messages: 10_000, bytes: 16 << 20 }
    }
}

struct Entry {
    seq: u64,
    at: Instant,
    data: Bytes,
    receivers: Receivers,
}

/// What a cluster-wide numbering kept after a resuming socket's number, for [`Journal::resume`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kept {
    /// Every message after it (number, data, receivers), oldest first; `latest` is the latest number given.
    Missed { latest: u64, missed: Vec<(u64, Bytes, Receivers)> },
    /// Some are gone: the socket should refetch its state.
    Gap { latest: u64 },
}

pub(crate) struct Journal {
    limits: JournalLimits,
    /// The number of the latest message (none yet: one below the first).
    latest: u64,
    /// Whether `latest` is a number the bus gave (then its own numbering is not used).
    numbered_by_bus: bool,
    entries: VecDeque<Entry>,
    bytes: usize,
    /// Sockets whose resume replayed, from what the bus kept, messages this node had not heard yet, and the last
    /// of them: when the node hears those, the socket has them already.
    pub(crate) replayed: HashMap<SocketId, u64>,
}

impl Journal {
    pub(crate) fn new(limits: JournalLimits) -> Journal {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
        let (entries, replayed) = (VecDeque::new(), HashMap::new());
        Journal { limits, latest: now, numbered_by_bus: false, entries, bytes: 0, replayed }
    }

    /// Records a message, numbered by the bus (`seq`) or else by the journal; answers its number.
    pub(crate) fn record(&mut self, data: &[u8], receivers: &Receivers, seq: Option<u64>) -> u64 {
        match seq {
            Some(seq) => {
                if seq <= self.latest {
                    // The bus's numbers started over (its server lost its stream), or this is the first number
                    // it gave: what is kept is in another numbering.
                    self.entries.clear();
                    self.bytes = 0;
                    self.replayed.clear();
                }
                // A socket replayed through an earlier number has had everything up to it.
                self.replayed.retain(|_, through| *through >= seq);
                (self.latest, self.numbered_by_bus) = (seq, true);
            }
            // A message the bus did not number (an original MWS node published it on Redis) among numbered ones:
            // delivered under the latest number, and not kept, since no number names it.
            None if self.numbered_by_bus => return self.latest,
            None => self.latest += 1,
        }
        let now = Instant::now();
        if self.limits.messages > 0 && data.len() <= self.limits.bytes {
            self.bytes += data.len();
            let entry =
                Entry { seq: self.latest, at: now, data: Bytes::copy_from_slice(data), receivers: receivers.clone() };
            self.entries.push_back(entry);
        }
        while let Some(oldest) = self.entries.front() {
            let expired = now.duration_since(oldest.at) > self.limits.age;
            if !expired && self.entries.len() <= self.limits.messages && self.bytes <= self.limits.bytes {
                break;
            }
            self.bytes -= oldest.data.len();
            self.entries.pop_front();
        }
        self.latest
    }

    /// Frames for a socket resuming after `since`: the messages it missed and may see, then `resumed`; or `gap`.
    pub(crate) fn replay(&self, since: u64, socket: &Socket) -> Vec<Bytes> {
        let now = Instant::now();
        let kept_from = self
            .entries
            .iter()
            .find(|entry| now.duration_since(entry.at) <= self.limits.age)
            .map_or(self.latest + 1, |entry| entry.seq);
        // `since` 0 is a first connect: nothing was missed.
        let first_connect = since == 0;
        if !first_connect && (since > self.latest || since + 1 < kept_from) {
            return vec![marker(self.latest, "gap")];
        }
        let mut frames: Vec<Bytes> = self
            .entries
            .iter()
            .filter(|entry| !first_connect && entry.seq > since && entry.seq >= kept_from)
            .filter(|entry| reaches(&entry.receivers, socket))
            .map(|entry| numbered(entry.seq, &entry.data))
            .collect();
        frames.push(marker(self.latest, "resumed"));
        frames
    }

    /// Frames for a socket resuming after `since` on a bus that numbers: what the bus `kept`, then what this node
    /// heard after it (heard before the socket was registered, so not delivered to it live), then `resumed`; or
    /// `gap`.
    pub(crate) fn resume(&mut self, since: u64, kept: Kept, socket: &Socket) -> Vec<Bytes> {
        let heard = if self.numbered_by_bus { self.latest } else { 0 };
        let (latest, missed) = match kept {
            Kept::Gap { latest } => return vec![marker(latest.max(heard), "gap")],
            Kept::Missed { latest, missed } => (latest, missed),
        };
        let mut frames: Vec<Bytes> = Vec::new();
        if since != 0 {
            let missed = missed.iter().filter(|(seq, _, to)| *seq > since && reaches(to, socket));
            frames.extend(missed.clone().map(|(seq, data, _)| numbered(*seq, data)));
            // Kept by the bus but not heard here yet: heard later, they are not the socket's again.
            if let Some(through) = missed.map(|(seq, _, _)| *seq).filter(|seq| *seq > heard).max() {
                self.replayed.insert(socket.id, through);
            }
            let after = self.entries.iter().filter(|entry| entry.seq > since.max(latest) && self.numbered_by_bus);
            frames.extend(after.filter(|entry| reaches(&entry.receivers, socket)).map(|e| numbered(e.seq, &e.data)));
        }
        frames.push(marker(latest.max(heard), "resumed"));
        frames
    }
}

fn reaches(receivers: &Receivers, socket: &Socket) -> bool {
    receivers.everyone || receivers.sockets.contains(&socket.id) || receivers.tags.iter().any(|t| socket.has_tag(t))
}

/// `{"seq": N, "data": "<data>"}`: the message as a JSON string, so that `data` is exactly the bare frame's text.
pub(crate) fn numbered(seq: u64, data: &[u8]) -> Bytes {
    let text = String::from_utf8_lossy(data);
    let json = format!(r#"{{"seq":{seq},"data":{}}}"#, serde_json::Value::String(text.into_owned()));
    ws::encode_frame(ws::OP_TEXT, json.as_bytes())
}

fn marker(seq: u64, what: &str) -> Bytes {
    ws::encode_frame(ws::OP_TEXT, format!(r#"{{"seq":{seq},"{what}":true}}"#).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::socket::{SocketId, Tag};

    fn text(frame: &Bytes) -> serde_json::Value {
        // Server frames shorter than 126 bytes: two header bytes.
        let len = (frame[1] & 0x7F) as usize;
        assert!(len < 126);
        serde_json::from_slice(&frame[2..2 + len]).unwrap()
    }

    impl Journal {
        fn record_here(&mut self, data: &[u8], receivers: &Receivers) -> u64 {
            self.record(data, receivers, None)
        }
    }

    fn tagged(tag: &str) -> Receivers {
        Receivers { tags: vec![tag.into()], ..Receivers::default() }
    }

    #[test]
    fn a_resuming_socket_gets_what_it_missed_and_may_see() {
        let mut journal = Journal::new(JournalLimits::default());
        let socket = Socket::new(SocketId::random(), vec![Tag::from("red")].into_boxed_slice());
        let first = journal.record_here(b"one", &tagged("red"));
        journal.record_here(b"blue only", &tagged("blue"));
        let third = journal.record_here(b"three \"quoted\"", &Receivers { everyone: true, ..Receivers::default() });
        let frames: Vec<_> = journal.replay(first, &socket).iter().map(text).collect();
        assert_eq!(
            frames,
            [
                serde_json::json!({"seq": third, "data": "three \"quoted\""}),
                serde_json::json!({"seq": third, "resumed": true})
            ]
        );
        assert_eq!(
            journal.replay(0, &socket).iter().map(text).collect::<Vec<_>>(),
            [serde_json::json!({"seq": third, "resumed": true})]
        );
        assert_eq!(journal.replay(third, &socket).len(), 1, "nothing missed");
        assert_eq!(text(&journal.replay(third + 5, &socket)[0])["gap"], true, "a number from the future");
    }

    #[test]
    fn too_old_a_number_gets_a_gap() {
        let limits = JournalLimits { messages: 2, ..JournalLimits::default() };
        let mut journal = Journal::new(limits);
        let socket = Socket::new(SocketId::random(), Box::new([]));
        let everyone = Receivers { everyone: true, ..Receivers::default() };
        let first = journal.record_here(b"1", &everyone);
        for _ in 0..3 {
            journal.record_here(b"n", &everyone);
        }
        let frames = journal.replay(first, &socket);
        assert_eq!(frames.len(), 1);
        assert_eq!(text(&frames[0]), serde_json::json!({"seq": first + 3, "gap": true}));
        assert_eq!(journal.replay(first + 1, &socket).len(), 3, "the two kept, then resumed");
    }

    #[test]
    fn a_socket_resuming_on_a_numbering_bus_gets_what_it_kept_then_what_this_node_heard_once_each() {
        let mut journal = Journal::new(JournalLimits::default());
        let socket = Socket::new(SocketId::random(), vec![Tag::from("red")].into_boxed_slice());
        // This node heard 11 and 12 (its journal had its own numbers before: they give way).
        journal.record_here(b"own numbering", &tagged("red"));
        journal.record(b"eleven", &tagged("red"), Some(11));
        journal.record(b"twelve", &tagged("red"), Some(12));
        // The bus kept 10 and 11 after 9, up to 11 when asked.
        let kept = Kept::Missed {
            latest: 11,
            missed: vec![
                (10, Bytes::from_static(b"ten"), tagged("red")),
                (11, Bytes::from_static(b"eleven"), tagged("red")),
            ],
        };
        let frames: Vec<_> = journal.resume(9, kept.clone(), &socket).iter().map(text).collect();
        assert_eq!(
            frames,
            [
                serde_json::json!({"seq": 10, "data": "ten"}),
                serde_json::json!({"seq": 11, "data": "eleven"}),
                serde_json::json!({"seq": 12, "data": "twelve"}),
                serde_json::json!({"seq": 12, "resumed": true}),
            ]
        );
        let blue = Socket::new(SocketId::random(), vec![Tag::from("blue")].into_boxed_slice());
        assert_eq!(
            journal.resume(9, kept.clone(), &blue).iter().map(text).collect::<Vec<_>>(),
            [serde_json::json!({"seq": 12, "resumed": true})]
        );
        assert_eq!(
            journal.resume(0, kept, &socket).iter().map(text).collect::<Vec<_>>(),
            [serde_json::json!({"seq": 12, "resumed": true})],
            "a first connect gets no replay"
        );
        assert_eq!(
            journal.resume(3, Kept::Gap { latest: 11 }, &socket).iter().map(text).collect::<Vec<_>>(),
            [serde_json::json!({"seq": 12, "gap": true})]
        );
        // The bus's numbers started over: what the journal kept is dropped.
        journal.record(b"one", &tagged("red"), Some(1));
        let kept = Kept::Missed { latest: 1, missed: vec![(1, Bytes::from_static(b"one"), tagged("red"))] };
        assert_eq!(
            journal.resume(0, kept.clone(), &socket).iter().map(text).collect::<Vec<_>>(),
            [serde_json::json!({"seq": 1, "resumed": true})]
        );
        assert_eq!(journal.entries.len(), 1);
    }
}
