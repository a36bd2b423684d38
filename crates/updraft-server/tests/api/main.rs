//! Integration tests: a real server on loopback, driven over HTTP and WebSocket like a client.

mod access;
mod bad_input;
mod crash;
mod eds;
mod eds_bad_input;
mod eds_legacy;
mod eds_members;
mod eds_realtime;
mod eds_refs;
mod eds_stream;
mod eds_stub;
mod gateways;
mod helpers;
mod lifecycle;
mod original_spec;
mod resume;
mod routing;
mod tls;
mod webhooks;
