//! Plain domain types every service shares. No I/O, no HTTP, no storage.

pub mod access;
pub mod atomic;
pub mod change;
pub mod ids;
pub mod nesting;
pub mod timestamp;
pub mod typed;
