//! The `updraft` binary's library half: settings, start-up, TLS (and `updraft cert`) and telemetry.
//! Integration tests drive [`Application`] exactly as `main` does.

pub mod cert;
pub mod config;
mod conns;
mod serve;
mod socket_runtime;
mod startup;
pub mod telemetry;
mod tls;

pub use startup::Application;
