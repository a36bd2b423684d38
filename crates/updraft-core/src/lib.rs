//! Plain domain types every service shares. No I/O, no HTTP, no storage.

pub mod atomic;
pub mod ids;
pub mod timestamp;
pub mod typed;
