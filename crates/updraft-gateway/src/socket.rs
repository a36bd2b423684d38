//! One connected socket as the rest of the gateway sees it: identity, tags and a bounded outbox.

use std::collections::VecDeque;
use std::fmt;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use atomic_waker::AtomicWaker;
use bytes::Bytes;

/// 32 random bytes, shown as 64 lower-case hex characters; also the single-use connect token.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SocketId([u8; 32]);

/// Ids are random and made by the server, so their first eight bytes are already a good hash;
/// no one can choose ids that collide.
impl Hash for SocketId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(u64::from_le_bytes(self.0[..8].try_into().expect("8 bytes")));
    }
}

/// Passes a `SocketId`'s hash through unchanged (see its `Hash`).
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Not used by `SocketId`; kept correct for any other key.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

pub type IdBuildHasher = BuildHasherDefault<IdHasher>;

impl SocketId {
    pub fn random() -> SocketId {
        SocketId(rand::random())
    }

    pub fn parse(text: &str) -> Option<SocketId> {
        let mut raw = [0u8; 32];
        hex::decode_to_slice(text, &mut raw).ok()?;
        // Only the canonical lower-case spelling names a socket.
        if text.bytes().any(|b| b.is_ascii_uppercase()) {
            return None;
        }
        Some(SocketId(raw))
    }

    /// Which shard of the registry holds this socket.
    pub(crate) fn shard(&self, n_shards: usize) -> usize {
        self.0[0] as usize % n_shards
    }
}

impl fmt::Display for SocketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 64];
        hex::encode_to_slice(self.0, &mut buf).expect("64 bytes");
        f.write_str(std::str::from_utf8(&buf).expect("hex is ASCII"))
    }
}

impl fmt::Debug for SocketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Tags are shared between sockets and the tag index.
pub type Tag = Arc<str>;

/// Bounds of one socket's outbox: a reader that falls further behind is dropped.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    pub max_bytes: usize,
    pub max_frames: usize,
}

/// Why the connection task should close the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseRequest {
    pub code: u16,
    pub reason: &'static str,
}

pub struct Socket {
    pub id: SocketId,
    pub connected_at: SystemTime,
    outbox: Mutex<Outbox>,
    waker: AtomicWaker,
    /// Set by the hub's heartbeat: the connection task owes the peer a ping.
    ping_due: AtomicBool,
    /// Opened with `since`: gets numbered frames (see `journal`).
    pub resumable: bool,
}

#[derive(Default)]
struct Outbox {
    frames: VecDeque<Bytes>,
    bytes: usize,
    close: Option<CloseRequest>,
    /// Here rather than in a lock of their own: tags change rarely (a user's groups changed), and this lock is
    /// already paid for.
    tags: Box<[Tag]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    Queued,
    /// The socket is closing; the frame was not queued.
    Closed,
    /// The outbox overflowed: the frame and everything queued were dropped and the socket closes.
    Overflowed,
}

impl Socket {
    pub fn new(id: SocketId, tags: Box<[Tag]>) -> Socket {
        Socket {
            id,
            connected_at: SystemTime::now(),
            outbox: Mutex::new(Outbox { tags, ..Outbox::default() }),
            waker: AtomicWaker::new(),
            ping_due: AtomicBool::new(false),
            resumable: false,
        }
    }

    pub fn has_tag(&self, tag: &str) -> bool {
        self.with_tags(|tags| tags.iter().any(|t| &**t == tag))
    }

    /// The socket's tags now.
    pub fn tags(&self) -> Box<[Tag]> {
        self.with_tags(|tags| tags.into())
    }

    pub(crate) fn with_tags<R>(&self, f: impl FnOnce(&[Tag]) -> R) -> R {
        f(&self.outbox.lock().expect("outbox lock").tags)
    }

    /// Replaces the tags; answers the old ones. Only the hub calls this, with the tag index locked.
    pub(crate) fn replace_tags(&self, tags: Box<[Tag]>) -> Box<[Tag]> {
        std::mem::replace(&mut self.outbox.lock().expect("outbox lock").tags, tags)
    }

    /// Queues an encoded frame for the connection task to write.
    pub fn enqueue(&self, frame: &Bytes, limits: QueueLimits) -> Enqueued {
        let mut outbox = self.outbox.lock().expect("outbox lock");
        if outbox.close.is_some() {
            return Enqueued::Closed;
        }
        if outbox.frames.len() >= limits.max_frames || outbox.bytes + frame.len() > limits.max_bytes {
            outbox.frames = VecDeque::new();
            outbox.bytes = 0;
            outbox.close = Some(CloseRequest {
                code: crate::ws::close_code::TRY_AGAIN_LATER,
                reason: "slow consumer: send queue overflow",
            });
            drop(outbox);
            self.waker.wake();
            return Enqueued::Overflowed;
        }
        let was_empty = outbox.frames.is_empty();
        outbox.frames.push_back(frame.clone());
        outbox.bytes += frame.len();
        drop(outbox);
        // A non-empty outbox means the task is already due to run; no second wake needed.
        if was_empty {
            self.waker.wake();
        }
        Enqueued::Queued
    }

    /// Asks the connection task to close the socket with `code`; queued frames are dropped.
    pub fn request_close(&self, code: u16, reason: &'static str) {
        let mut outbox = self.outbox.lock().expect("outbox lock");
        if outbox.close.is_none() {
            outbox.close = Some(CloseRequest { code, reason });
            outbox.frames = VecDeque::new();
            outbox.bytes = 0;
        }
        drop(outbox);
        self.waker.wake();
    }

    /// Asks the connection task to ping the peer (and to drop it if the last ping went unanswered).
    pub fn heartbeat(&self) {
        self.ping_due.store(true, Ordering::Release);
        self.waker.wake();
    }

    pub(crate) fn take_heartbeat(&self) -> bool {
        self.ping_due.load(Ordering::Acquire) && self.ping_due.swap(false, Ordering::AcqRel)
    }

    /// Registers the connection task's waker before it looks at the outbox.
    pub(crate) fn register(&self, waker: &std::task::Waker) {
        self.waker.register(waker);
    }

    pub(crate) fn close_requested(&self) -> Option<CloseRequest> {
        self.outbox.lock().expect("outbox lock").close.clone()
    }

    /// Moves queued frames into `buf` until it holds about `max` bytes.
    /// Returns a close request when one is pending (frames queued before it are still moved).
    pub(crate) fn drain_into(&self, buf: &mut Vec<u8>, max: usize) -> Option<CloseRequest> {
        let mut outbox = self.outbox.lock().expect("outbox lock");
        while buf.len() < max {
            let Some(frame) = outbox.frames.pop_front() else { break };
            outbox.bytes -= frame.len();
            buf.extend_from_slice(&frame);
        }
        if outbox.frames.is_empty() && outbox.frames.capacity() > 64 {
            // Give a burst's queue memory back; idle sockets must stay small.
            outbox.frames = VecDeque::new();
        }
        outbox.close.clone()
    }
}
