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
mod security_access;
mod security_edge;
mod security_gateways;
mod security_logins;
mod security_reads;
mod security_sessions;
mod security_tickets;
mod tls;
mod webhooks;
