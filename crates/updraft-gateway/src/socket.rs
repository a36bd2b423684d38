//! One connected socket as the rest of the gateway sees it: identity, tags and a bounded outbox.

use std::collections::VecDeque;
use std::fmt;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
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
    /// The plain TCP socket's descriptor, -1 when there is none (TLS). Set once, before the connection task runs.
    fd: AtomicI32,
    /// Written only with the outbox locked. While set, the fan-out writes this socket's frames itself
    /// ([`Socket::flush_direct`]) and the connection task writes nothing: it has nothing in flight, and clears the flag
    /// (taking the outbox over) before it writes again, and before its stream closes.
    direct: AtomicBool,
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
    /// Queued for the fan-out to write itself: the caller calls [`Socket::flush_direct`] once it has queued the
    /// rest of its batch.
    QueuedForFlush,
    /// Queued behind frames the fan-out has yet to write: the socket is in the fan-out's queue already, and an
    /// early [`Socket::flush_direct`] writes all of them, in order.
    QueuedBehind,
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
            fd: AtomicI32::new(-1),
            direct: AtomicBool::new(false),
        }
    }

    /// Lets the fan-out write to this plain TCP socket while its connection task has nothing in flight. The
    /// descriptor must stay open until the connection task, holding the outbox lock, revokes it ([`Socket::revoke_direct`]).
    pub fn allow_direct_writes(&self, fd: std::os::fd::RawFd) {
        self.fd.store(fd, Ordering::Relaxed);
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
            self.direct.store(false, Ordering::Relaxed);
            outbox.close = Some(CloseRequest {
                code: updraft_ws::close_code::TRY_AGAIN_LATER,
                reason: "slow consumer: send queue overflow",
            });
            drop(outbox);
            self.waker.wake();
            return Enqueued::Overflowed;
        }
        let was_empty = outbox.frames.is_empty();
        outbox.frames.push_back(frame.clone());
        outbox.bytes += frame.len();
        if self.direct.load(Ordering::Relaxed) {
            // The first frame since the last flush makes the socket the flusher's; later ones ride along.
            return if was_empty { Enqueued::QueuedForFlush } else { Enqueued::QueuedBehind };
        }
        drop(outbox);
        // A non-empty outbox means the task is already due to run; no second wake needed.
        if was_empty {
            self.waker.wake();
        }
        Enqueued::Queued
    }

    /// Writes the queued frames straight to the socket, when the connection task has left writing to the fan-out.
    /// What the socket does not take now (it is full, or failed) stays queued and goes back to the task.
    ///
    /// A fan-out to 10k sockets that wakes 10k tasks spends as much on the wakes, polls and write buffers of
    /// those tasks as on the writes themselves; tokio has no vectored write across sockets, so the writes are made
    /// here, one `sendmsg` a socket.
    pub fn flush_direct(&self) {
        let mut outbox = self.outbox.lock().expect("outbox lock");
        if !self.direct.load(Ordering::Relaxed) || outbox.frames.is_empty() {
            return;
        }
        let mut written = send_frames(self.fd.load(Ordering::Relaxed), &outbox.frames);
        while written > 0 {
            let Some(frame) = outbox.frames.front_mut() else { break };
            let n = written.min(frame.len());
            if n == frame.len() {
                outbox.frames.pop_front();
            } else {
                // The peer's window cut a frame: the task writes the rest, before anything of its own.
                *frame = frame.slice(n..);
            }
            outbox.bytes -= n;
            written -= n;
        }
        if outbox.frames.is_empty() {
            return;
        }
        self.direct.store(false, Ordering::Relaxed);
        drop(outbox);
        self.waker.wake();
    }

    /// Called by the connection task with nothing in flight: from now on the fan-out writes (see `direct`). Not
    /// when there is no descriptor, or something is queued or a close is pending (the task was woken for it).
    pub(crate) fn offer_direct(&self) {
        let outbox = self.outbox.lock().expect("outbox lock");
        let offered = self.fd.load(Ordering::Relaxed) >= 0 && outbox.frames.is_empty() && outbox.close.is_none();
        self.direct.store(offered, Ordering::Relaxed);
    }

    /// The connection task takes writing back; once this returns, the fan-out does not touch the descriptor.
    pub(crate) fn revoke_direct(&self) {
        let _outbox = self.outbox.lock().expect("outbox lock");
        self.direct.store(false, Ordering::Relaxed);
    }

    /// Asks the connection task to close the socket with `code`; queued frames are dropped.
    pub fn request_close(&self, code: u16, reason: &'static str) {
        let mut outbox = self.outbox.lock().expect("outbox lock");
        self.direct.store(false, Ordering::Relaxed);
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

    /// Moves queued frames into `buf` until it holds about `max` bytes; the task writes from now on.
    /// Returns a close request when one is pending (frames queued before it are still moved).
    pub(crate) fn drain_into(&self, buf: &mut Vec<u8>, max: usize) -> Option<CloseRequest> {
        let mut outbox = self.outbox.lock().expect("outbox lock");
        self.direct.store(false, Ordering::Relaxed);
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

/// How many frames one `sendmsg` carries at most.
const MAX_IOVECS: usize = 64;

/// Writes `frames` in order to the non-blocking socket `fd`, without waiting; answers how many bytes it took.
/// 0 when it took none (full, closed or failed: the connection task finds out which on its own write).
#[allow(unsafe_code)]
fn send_frames(fd: std::os::fd::RawFd, frames: &VecDeque<Bytes>) -> usize {
    let mut iov = [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; MAX_IOVECS];
    let mut n_iov = 0;
    for (slot, frame) in iov.iter_mut().zip(frames) {
        *slot = libc::iovec { iov_base: frame.as_ptr() as *mut libc::c_void, iov_len: frame.len() };
        n_iov += 1;
    }
    // SAFETY: `msghdr` is plain data, zero is a valid value for every field.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = n_iov as _;
    // SAFETY: the iovecs point into `frames`, alive and unchanged for the call (the outbox lock is held), and
    // the kernel only reads them. `fd` is open: callers hold the outbox lock with `direct` set, and the
    // connection task clears `direct` under that lock before its stream (and so the descriptor) is dropped.
    let sent = unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
    usize::try_from(sent).unwrap_or(0)
}
