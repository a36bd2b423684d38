//! The `updraft` binary's library half: settings, start-up, TLS (and `updraft cert`) and telemetry.
//! Integration tests drive [`Application`] exactly as `main` does.

pub mod cert;
pub mod config;
mod conns;
pub mod database;
pub mod forwarded;
mod health;
pub mod runtimes;
mod serve;
mod startup;
pub mod telemetry;
mod tls;
mod workers;

pub use startup::Application;
