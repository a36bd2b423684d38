//! The Managed WebSocket gateway, below HTTP: who is connected, who a message is for, and the
//! task that writes frames to each socket.
//!
//! This crate speaks the WebSocket wire format (framed by `updraft_ws`) and knows nothing of HTTP routing or JSON
//! bodies (save the numbered frames of resumable delivery, see `journal`).

pub mod connection;
pub mod gateway;
pub mod hub;
pub mod journal;
pub mod pending;
pub mod socket;

pub use connection::{Connection, ConnectionConfig, Ended};
pub use gateway::{AccessControl, Gateway, GatewayConfig, Gateways, Membership, MembershipHook, Permissions, Ticket};
pub use hub::{Fanout, Hub, Receivers};
pub use journal::{JournalLimits, Kept};
pub use pending::{Refusal, Requester};
pub use socket::{QueueLimits, Socket, SocketId, Tag};
