//! What happens after a commit, in one place. The flow runs one way:
//!
//! ```text
//! api ──► store (the change and its readers, one transaction) ──► realtime ──► bus ──► fan-out ──► gateway sockets
//!                                                                  ├─► stream hub ──► the API's stream connections
//!                                                                  ├─► webhook worker ──► signed POSTs
//!                                                                  └─► file trash ──► blob store
//! ```
//!
//! - [`follow`] is the one loop that reads the change log for every in-process consumer.
//! - [`sockets`] publishes a backend's changes to the gateways bound to it; [`fanout`] is the bus's local
//!   subscriber, writing each publication to this node's sockets.
//! - [`stream_hub`] queues changes for the open notification streams, and replays what a resuming one missed.
//! - [`webhooks`] drains the store's delivery queue; [`outbound`] guards every URL a tenant makes the server call.
//! - [`frames`] is where a change becomes bytes, for each audience.
//! - [`file_trash`] removes the bytes of files whose rows a commit removed (with their object, or replaced).
//!
//! Who may read a change is decided in the transaction that made it (`Change::readers`) and checked here with
//! `Change::readable_by`, the same rule lists use.

pub mod fanout;
pub mod file_trash;
mod follow;
pub mod frames;
pub mod outbound;
pub mod sockets;
pub mod stream_hub;
pub mod webhooks;

pub use follow::follow;
