//! Plain domain types every service shares. No I/O, no HTTP, no storage.

pub mod atomic;
pub mod ids;
pub mod nesting;
pub mod timestamp;
pub mod typed;
