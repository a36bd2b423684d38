//! RFC 6455 framing, sans I/O: the server's frame reader and writer (gateway sockets and the EDS
//! stream), the client-side frame decoder of the load generator, and the text of the opening handshake.
//!
//! Why not a library: the gateway must hold an idle socket in ≤ 4 KiB of user space.
//! tokio-websockets, the leanest library measured before this crate was written, costs 5.5 KiB per idle socket
//! because it owns eager read and write buffers.
//! Clients only send control frames to a push gateway (their data frames are ignored),
//! so the server's reader ([`FrameReader`]) is a byte-at-a-time state machine with no payload buffer:
//! it unmasks and UTF-8-checks data frames as they stream past and keeps only control payloads (≤ 125 bytes).
//! Outgoing frames are unmasked, so one encoded frame serves every receiver.
//! The other side has the same need in reverse: the load generator must count ~1M frames/s on one core
//! while holding ~19k sockets, so its decoder ([`client::FrameDecoder`]) skips payloads straight out of a
//! small read buffer instead of assembling messages as a general-purpose client would.
//!
//! This crate reads no socket and starts no task: callers hand it bytes and write what it encodes.

pub mod client;
pub mod handshake;
mod reader;
mod writer;

pub use handshake::{accept_key, is_valid_client_key};
pub use reader::{Event, FrameReader, Violation};
pub use writer::{encode_frame, put_close_frame, put_frame};

pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Close codes this server sends (RFC 6455 §7.4.1, and 1013 from the IANA registry).
pub mod close_code {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const INVALID_DATA: u16 = 1007;
    pub const POLICY_VIOLATION: u16 = 1008;
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// Sent to a reader too slow to keep its queue bounded: it may reconnect later.
    pub const TRY_AGAIN_LATER: u16 = 1013;
}
