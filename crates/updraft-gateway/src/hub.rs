//! The sockets connected to one gateway on this node, indexed by id and by tag, and the fan-out.

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;

use crate::journal::{self, Journal, JournalLimits, Kept};
use crate::socket::{Enqueued, IdBuildHasher, QueueLimits, Socket, SocketId, Tag};
use updraft_ws as ws;

/// Shards of the registry: fewer lock collisions, and the heartbeat's unit of work.
pub const N_SHARDS: usize = 16;

/// Who a message is for. A socket matching several receivers gets the message once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Receivers {
    /// Every socket of the gateway (`"*"` in the wire format).
    pub everyone: bool,
    pub sockets: Vec<SocketId>,
    pub tags: Vec<String>,
}

/// What one fan-out did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fanout {
    pub delivered: u64,
    /// Sockets dropped because their outbox overflowed.
    pub dropped: u64,
}

pub struct Hub {
    shards: Box<[RwLock<Shard>]>,
    limits: QueueLimits,
    /// Held while a message is numbered and fanned out, and while a resuming socket joins, so that the socket
    /// gets each message once: from the replay or live.
    journal: Mutex<Journal>,
}

#[derive(Default)]
struct Shard {
    sockets: HashSet<ById, IdBuildHasher>,
    by_tag: HashMap<Tag, HashSet<ById, IdBuildHasher>>,
}

impl Shard {
    fn add_to_tags(&mut self, socket: &Arc<Socket>, tags: &[Tag]) {
        for tag in tags {
            self.by_tag.entry(tag.clone()).or_default().replace(ById(socket.clone()));
        }
    }

    fn remove_from_tags(&mut self, id: &SocketId, tags: &[Tag]) {
        for tag in tags {
            if let Some(members) = self.by_tag.get_mut(tag) {
                members.remove(id);
                if members.is_empty() {
                    self.by_tag.remove(tag);
                }
            }
        }
    }
}

/// A socket in a set, found by its id: an entry is one pointer, not an id and a pointer.
#[derive(Clone)]
struct ById(Arc<Socket>);

impl PartialEq for ById {
    fn eq(&self, other: &ById) -> bool {
        self.0.id == other.0.id
    }
}

impl Eq for ById {}

impl Hash for ById {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.id.hash(state);
    }
}

impl Borrow<SocketId> for ById {
    fn borrow(&self) -> &SocketId {
        &self.0.id
    }
}

impl Hub {
    pub fn new(limits: QueueLimits) -> Hub {
        Hub::with_journal(limits, JournalLimits::default())
    }

    pub fn with_journal(limits: QueueLimits, journal: JournalLimits) -> Hub {
        Hub {
            shards: (0..N_SHARDS).map(|_| RwLock::default()).collect(),
            limits,
            journal: Mutex::new(Journal::new(journal)),
        }
    }

    /// Registers a socket opened with `since` (its `resumable` set): it first gets what it missed, then live frames.
    pub fn insert_resuming(&self, socket: Arc<Socket>, since: u64) -> Fanout {
        self.insert_replaying(socket, |journal, socket| journal.replay(since, socket))
    }

    /// [`Hub::insert_resuming`] on a bus that numbers messages across the cluster: the socket gets what the bus
    /// `kept` after `since`, then what this node heard since, then live frames.
    pub fn insert_resumed(&self, socket: Arc<Socket>, since: u64, kept: Kept) -> Fanout {
        self.insert_replaying(socket, move |journal, socket| journal.resume(since, kept, socket))
    }

    /// Registers `socket` with the journal held, so that no message falls between its replay and its live frames.
    fn insert_replaying(
        &self,
        socket: Arc<Socket>,
        replay: impl FnOnce(&mut Journal, &Socket) -> Vec<Bytes>,
    ) -> Fanout {
        let mut journal = self.journal.lock().expect("journal lock");
        self.insert(socket.clone());
        let mut res = Fanout::default();
        let mut flush = VecDeque::new();
        let mut outlet = Outlet { flush: &mut flush, behind: None };
        for frame in replay(&mut journal, &socket) {
            self.deliver(&socket, &frame, &mut res, &mut outlet);
        }
        flush.iter().for_each(|s| s.flush_direct());
        res
    }

    pub fn limits(&self) -> QueueLimits {
        self.limits
    }

    pub fn insert(&self, socket: Arc<Socket>) {
        let mut shard = self.shard(&socket.id).write().expect("hub lock");
        socket.with_tags(|tags| shard.add_to_tags(&socket, tags));
        shard.sockets.replace(ById(socket));
    }

    /// Gives an open socket new tags (its user's groups changed); false when it is not here.
    pub fn retag(&self, id: &SocketId, tags: Box<[Tag]>) -> bool {
        let mut shard = self.shard(id).write().expect("hub lock");
        let Some(socket) = shard.sockets.get(id).map(|s| s.0.clone()) else { return false };
        let old = socket.replace_tags(tags);
        shard.remove_from_tags(id, &old);
        socket.with_tags(|tags| shard.add_to_tags(&socket, tags));
        true
    }

    /// Removes the socket if it is still the one registered under its id.
    pub fn remove(&self, socket: &Arc<Socket>) -> bool {
        let mut shard = self.shard(&socket.id).write().expect("hub lock");
        match shard.sockets.get(&socket.id) {
            Some(current) if Arc::ptr_eq(&current.0, socket) => (),
            _ => return false,
        }
        shard.sockets.remove(&socket.id);
        socket.with_tags(|tags| shard.remove_from_tags(&socket.id, tags));
        true
    }

    pub fn get(&self, id: &SocketId) -> Option<Arc<Socket>> {
        self.shard(id).read().expect("hub lock").sockets.get(id).map(|s| s.0.clone())
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().expect("hub lock").sockets.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn list(&self) -> Vec<Arc<Socket>> {
        let mut res = Vec::new();
        for shard in self.shards.iter() {
            res.extend(shard.read().expect("hub lock").sockets.iter().map(|s| s.0.clone()));
        }
        res
    }

    /// Flags every socket of one shard as due for a ping; shards take turns so pings spread out.
    pub fn heartbeat(&self, shard: usize) {
        for socket in self.shards[shard % N_SHARDS].read().expect("hub lock").sockets.iter() {
            socket.0.heartbeat();
        }
    }

    /// Asks every socket to close, e.g. on shutdown.
    pub fn close_all(&self, code: u16, reason: &'static str) {
        for socket in self.list() {
            socket.request_close(code, reason);
        }
    }

    /// Delivers a text message to every matching socket on this node.
    /// The frame is encoded once and the same bytes are queued for every receiver.
    pub fn publish(&self, data: &[u8], receivers: &Receivers) -> Fanout {
        let mut flush = VecDeque::new();
        let res = self.publish_deferred(data, receivers, None, &mut flush, None);
        flush.iter().for_each(|s| s.flush_direct());
        res
    }

    /// [`Hub::publish`], leaving in `flush` the sockets whose frames the caller writes ([`Socket::flush_direct`])
    /// once it has published the rest of its batch: a socket then gets the whole batch in one write. `behind`, when
    /// given, gets the receivers that were in `flush` already (an earlier frame of theirs is still to be written),
    /// so that a caller may write a small fan-out at once without waiting for their turn. `seq` is the message's
    /// number when the bus gave it one.
    pub fn publish_deferred(
        &self,
        data: &[u8],
        receivers: &Receivers,
        seq: Option<u64>,
        flush: &mut VecDeque<Arc<Socket>>,
        behind: Option<&mut Vec<Arc<Socket>>>,
    ) -> Fanout {
        let mut journal = self.journal.lock().expect("journal lock");
        let seq = journal.record(data, receivers, seq);
        let bare = ws::encode_frame(ws::OP_TEXT, data);
        let frame = Frames { bare, seq, data, numbered: Default::default(), replayed: &journal.replayed };
        let mut outlet = Outlet { flush, behind };
        let res = self.fan_out(&frame, receivers, &mut outlet);
        drop(journal);
        res
    }

    fn fan_out(&self, frame: &Frames<'_>, receivers: &Receivers, outlet: &mut Outlet<'_>) -> Fanout {
        let mut res = Fanout::default();
        if receivers.everyone {
            for shard in self.shards.iter() {
                let shard = shard.read().expect("hub lock");
                for socket in shard.sockets.iter() {
                    self.deliver_frame(&socket.0, frame, &mut res, outlet);
                }
            }
            return res;
        }
        let single_source = receivers.sockets.len() + receivers.tags.len() == 1;
        if single_source {
            // One receiver cannot match a socket twice: deliver without collecting.
            if let Some(id) = receivers.sockets.first() {
                if let Some(socket) = self.get(id) {
                    self.deliver_frame(&socket, frame, &mut res, outlet);
                }
            } else {
                let tag = receivers.tags[0].as_str();
                for shard in self.shards.iter() {
                    let shard = shard.read().expect("hub lock");
                    for socket in shard.by_tag.get(tag).into_iter().flatten() {
                        self.deliver_frame(&socket.0, frame, &mut res, outlet);
                    }
                }
            }
            return res;
        }
        let mut targets: Vec<Arc<Socket>> = Vec::new();
        for id in &receivers.sockets {
            targets.extend(self.get(id));
        }
        for shard in self.shards.iter() {
            let shard = shard.read().expect("hub lock");
            for tag in &receivers.tags {
                targets.extend(shard.by_tag.get(tag.as_str()).into_iter().flatten().map(|s| s.0.clone()));
            }
        }
        targets.sort_unstable_by_key(|s| s.id);
        targets.dedup_by_key(|s| s.id);
        for socket in &targets {
            self.deliver_frame(socket, frame, &mut res, outlet);
        }
        res
    }

    fn deliver_frame(&self, socket: &Arc<Socket>, frame: &Frames<'_>, res: &mut Fanout, outlet: &mut Outlet<'_>) {
        if let Some(bytes) = frame.for_socket(socket) {
            self.deliver(socket, bytes, res, outlet);
        }
    }

    fn deliver(&self, socket: &Arc<Socket>, frame: &Bytes, res: &mut Fanout, outlet: &mut Outlet<'_>) {
        match socket.enqueue(frame, self.limits) {
            Enqueued::Queued => res.delivered += 1,
            Enqueued::QueuedForFlush => {
                res.delivered += 1;
                outlet.flush.push_back(socket.clone());
            }
            Enqueued::QueuedBehind => {
                res.delivered += 1;
                if let Some(behind) = outlet.behind.as_deref_mut() {
                    behind.push(socket.clone());
                }
            }
            Enqueued::Overflowed => res.dropped += 1,
            Enqueued::Closed => (),
        }
    }

    fn shard(&self, id: &SocketId) -> &RwLock<Shard> {
        &self.shards[id.shard(self.shards.len())]
    }
}

/// Where a fan-out leaves the sockets it queued frames on for the caller to write (see [`Hub::publish_deferred`]).
struct Outlet<'a> {
    flush: &'a mut VecDeque<Arc<Socket>>,
    behind: Option<&'a mut Vec<Arc<Socket>>>,
}

/// One message's frames: bare for most sockets, numbered (encoded on first need) for resumable ones.
struct Frames<'a> {
    bare: Bytes,
    seq: u64,
    data: &'a [u8],
    numbered: std::cell::OnceCell<Bytes>,
    /// Resuming sockets that have this message already ([`Journal::replayed`]).
    replayed: &'a std::collections::HashMap<SocketId, u64>,
}

impl Frames<'_> {
    /// The frame for `socket`, or none when its resume replayed the message already.
    fn for_socket(&self, socket: &Socket) -> Option<&Bytes> {
        if !socket.resumable {
            return Some(&self.bare);
        }
        // Almost always empty: no hash of the id then.
        if !self.replayed.is_empty() && self.replayed.get(&socket.id).is_some_and(|through| *through >= self.seq) {
            return None;
        }
        Some(self.numbered.get_or_init(|| journal::numbered(self.seq, self.data)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub() -> Hub {
        Hub::new(QueueLimits { max_bytes: 1 << 20, max_frames: 3 })
    }

    fn socket(tags: &[&str]) -> Arc<Socket> {
        Arc::new(Socket::new(SocketId::random(), tags.iter().map(|t| Tag::from(*t)).collect()))
    }

    fn queued(socket: &Socket) -> usize {
        let mut buf = Vec::new();
        socket.drain_into(&mut buf, usize::MAX);
        let frame_len = ws::encode_frame(ws::OP_TEXT, b"m").len();
        buf.len() / frame_len
    }

    #[test]
    fn a_socket_matching_twice_gets_one_copy() {
        let hub = hub();
        let a = socket(&["red", "blue"]);
        let b = socket(&["blue"]);
        let c = socket(&[]);
        for s in [&a, &b, &c] {
            hub.insert(s.clone());
        }
        let to = Receivers { everyone: false, sockets: vec![a.id], tags: vec!["red".into(), "blue".into()] };
        assert_eq!(hub.publish(b"m", &to), Fanout { delivered: 2, dropped: 0 });
        assert_eq!((queued(&a), queued(&b), queued(&c)), (1, 1, 0));

        let all = Receivers { everyone: true, ..Receivers::default() };
        assert_eq!(hub.publish(b"m", &all).delivered, 3);
        let nobody = Receivers::default();
        assert_eq!(hub.publish(b"m", &nobody).delivered, 0);
    }

    #[test]
    fn removal_clears_the_tag_index() {
        let hub = hub();
        let a = socket(&["red"]);
        hub.insert(a.clone());
        assert!(hub.remove(&a));
        assert!(!hub.remove(&a));
        let to = Receivers { tags: vec!["red".into()], ..Receivers::default() };
        assert_eq!(hub.publish(b"m", &to).delivered, 0);
        assert!(hub.is_empty());
    }

    #[test]
    fn a_retagged_socket_leaves_its_old_tags() {
        let hub = hub();
        let a = socket(&["users.u", "usergroups.team"]);
        hub.insert(a.clone());
        assert!(hub.retag(&a.id, Box::new(["users.u".into(), "usergroups.other".into()])));
        let to = |tag: &str| Receivers { tags: vec![tag.into()], ..Receivers::default() };
        assert_eq!(hub.publish(b"m", &to("usergroups.team")).delivered, 0);
        assert_eq!(hub.publish(b"m", &to("usergroups.other")).delivered, 1);
        assert_eq!(hub.publish(b"m", &to("users.u")).delivered, 1);
        assert!(a.has_tag("usergroups.other") && !a.has_tag("usergroups.team"));
        assert!(hub.remove(&a));
        assert!(hub.shards.iter().all(|s| s.read().unwrap().by_tag.is_empty()));
        assert!(!hub.retag(&a.id, Box::new([])));
    }

    #[test]
    fn receivers_queued_already_are_handed_back_as_behind() {
        use std::io::Read;
        use std::os::fd::AsRawFd;
        let hub = hub();
        let (tagged, untagged) = (socket(&["t"]), socket(&[]));
        let (mut tagged_peer, tagged_end) = std::os::unix::net::UnixStream::pair().unwrap();
        let (_untagged_peer, untagged_end) = std::os::unix::net::UnixStream::pair().unwrap();
        for (s, end) in [(&tagged, &tagged_end), (&untagged, &untagged_end)] {
            end.set_nonblocking(true).unwrap();
            s.allow_direct_writes(end.as_raw_fd());
            s.offer_direct();
            hub.insert(s.clone());
        }
        let (mut flush, mut behind) = (VecDeque::new(), Vec::new());
        let all = Receivers { everyone: true, ..Receivers::default() };
        hub.publish_deferred(b"1", &all, None, &mut flush, Some(&mut behind));
        assert_eq!((flush.len(), behind.len()), (2, 0));
        let to_t = Receivers { tags: vec!["t".into()], ..Receivers::default() };
        assert_eq!(hub.publish_deferred(b"2", &to_t, None, &mut flush, Some(&mut behind)).delivered, 1);
        assert_eq!(flush.len(), 2, "a socket with frames queued is not queued twice");
        assert!(behind.len() == 1 && Arc::ptr_eq(&behind[0], &tagged));

        // Written early, both frames leave in order; its turn in the queue later finds nothing left.
        behind[0].flush_direct();
        flush.iter().for_each(|s| s.flush_direct());
        let mut got = [0u8; 6];
        tagged_peer.read_exact(&mut got).unwrap();
        let expected = [ws::encode_frame(ws::OP_TEXT, b"1"), ws::encode_frame(ws::OP_TEXT, b"2")].concat();
        assert_eq!(&got[..], &expected[..]);
        tagged_peer.set_nonblocking(true).unwrap();
        assert!(tagged_peer.read(&mut got).is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock));
    }

    #[test]
    fn an_overflowing_outbox_drops_only_that_socket() {
        let hub = hub();
        let slow = socket(&[]);
        let fast = socket(&[]);
        hub.insert(slow.clone());
        hub.insert(fast.clone());
        let all = Receivers { everyone: true, ..Receivers::default() };
        for _ in 0..3 {
            hub.publish(b"m", &all);
            queued(&fast);
        }
        assert_eq!(hub.publish(b"m", &all), Fanout { delivered: 1, dropped: 1 });
        let mut buf = Vec::new();
        let close = slow.drain_into(&mut buf, usize::MAX).expect("close requested");
        assert_eq!(close.code, ws::close_code::TRY_AGAIN_LATER);
        assert!(buf.is_empty());
        assert_eq!(hub.publish(b"m", &all).delivered, 1);
    }

    #[test]
    fn a_resumed_socket_does_not_get_again_what_its_replay_gave_before_this_node_heard_it() {
        let hub = Hub::new(QueueLimits { max_bytes: 1 << 20, max_frames: 16 });
        let everyone = Receivers { everyone: true, ..Receivers::default() };
        let publish = |data: &[u8], seq: u64| {
            let mut flush = VecDeque::new();
            hub.publish_deferred(data, &everyone, Some(seq), &mut flush, None).delivered
        };
        assert_eq!(publish(b"twelve", 12), 0);
        // The bus kept 13 already; this node has heard up to 12.
        let mut resumed = Socket::new(SocketId::random(), Box::new([]));
        resumed.resumable = true;
        let resumed = Arc::new(resumed);
        let kept = Kept::Missed {
            latest: 13,
            missed: vec![
                (12, Bytes::from_static(b"twelve"), everyone.clone()),
                (13, Bytes::from_static(b"13"), everyone.clone()),
            ],
        };
        assert_eq!(hub.insert_resumed(resumed.clone(), 11, kept).delivered, 3, "12, 13, then resumed");
        let other = socket(&[]);
        hub.insert(other.clone());
        assert_eq!(publish(b"13", 13), 1, "heard now: only the other socket gets it");
        assert_eq!(publish(b"14", 14), 2);
        assert_eq!(publish(b"15", 15), 2);
    }
}
