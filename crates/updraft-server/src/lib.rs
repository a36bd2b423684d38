//! The `updraft` binary's library half: settings, start-up, TLS and telemetry.
//! Integration tests drive [`Application`] exactly as `main` does.

pub mod config;
mod startup;
mod tls;
pub mod telemetry;

pub use startup::Application;
