//! The connection cap: how many connections are served at once, kept below the open-file limit.
//!
//! Without a cap, slow clients can take every file descriptor; accept then fails with EMFILE and the
//! server stops answering anyone, health checks included. With it:
//! - up to `cap` connections are served normally. Open WebSockets count against the cap too: they leave the
//!   HTTP stack at the upgrade (the gateway owns the bare stream), so they are counted from the gateways.
//! - past the cap, up to [`OVERFLOW_SLOTS`] more are accepted and live at most [`OVERFLOW_LIFETIME`]: they
//!   get `/healthz` as usual and a quick 503 for anything else, then are closed. A load balancer thus sees a
//!   full node as healthy but busy, rather than as dead.
//! - past that, a connection is accepted and closed at once, so it costs no descriptor and the listener's
//!   backlog never fills with clients waiting for nothing.
//!
//! Metrics, labelled by `listeners` (`main`, `metrics`): the gauges `updraft_connections_max` and
//! `updraft_connections_open` (held by the HTTP stack and the notification stream; open WebSockets are
//! `updraft_mws_sockets_connected`), and the counter `updraft_connections_past_cap_total{outcome}`, `overflow` for a
//! connection served only `/healthz`, `closed` for one closed at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Connections served past the cap, for health checks (and a quick 503 for the rest).
pub(crate) const OVERFLOW_SLOTS: usize = 32;
/// How long a connection past the cap may live, TLS handshake included: health checks are quick.
pub(crate) const OVERFLOW_LIFETIME: Duration = Duration::from_secs(2);

/// Counts open connections against the cap. Shared by every listener of the main service.
pub(crate) struct Connections {
    cap: usize,
    /// Its metrics, registered once rather than looked up at every accept.
    open_gauge: metrics::Gauge,
    past_cap: [metrics::Counter; 2],
    /// Connections held by the HTTP stack or the notification stream.
    open: AtomicUsize,
    overflow: AtomicUsize,
    /// WebSockets open now (they hold a descriptor outside the HTTP stack).
    sockets: Box<dyn Fn() -> usize + Send + Sync>,
}

/// Where an accepted connection stands; dropping it frees its place.
pub(crate) struct Slot {
    connections: Arc<Connections>,
    overflow: bool,
}

impl Slot {
    /// Whether this connection came past the cap and gets only `/healthz`.
    pub(crate) fn is_overflow(&self) -> bool {
        self.overflow
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let counter = if self.overflow { &self.connections.overflow } else { &self.connections.open };
        counter.fetch_sub(1, Ordering::AcqRel);
        if !self.overflow {
            self.connections.open_gauge.decrement(1);
        }
    }
}

impl Connections {
    pub(crate) fn new(
        listeners: &'static str,
        cap: usize,
        sockets: impl Fn() -> usize + Send + Sync + 'static,
    ) -> Arc<Connections> {
        metrics::gauge!("updraft_connections_max", "listeners" => listeners).set(cap as f64);
        let past_cap = |outcome: &'static str| metrics::counter!("updraft_connections_past_cap_total", "listeners" => listeners, "outcome" => outcome);
        Arc::new(Connections {
            cap,
            open_gauge: metrics::gauge!("updraft_connections_open", "listeners" => listeners),
            past_cap: [past_cap("overflow"), past_cap("closed")],
            open: AtomicUsize::new(0),
            overflow: AtomicUsize::new(0),
            sockets: Box::new(sockets),
        })
    }

    /// A place for a connection just accepted, or `None`: close it at once.
    pub(crate) fn admit(self: &Arc<Connections>) -> Option<Slot> {
        let open = self.open.fetch_add(1, Ordering::AcqRel) + 1;
        if open + (self.sockets)() <= self.cap {
            self.open_gauge.increment(1);
            return Some(Slot { connections: self.clone(), overflow: false });
        }
        self.open.fetch_sub(1, Ordering::AcqRel);
        let [overflowed, closed] = &self.past_cap;
        if self.overflow.fetch_add(1, Ordering::AcqRel) < OVERFLOW_SLOTS {
            overflowed.increment(1);
            return Some(Slot { connections: self.clone(), overflow: true });
        }
        self.overflow.fetch_sub(1, Ordering::AcqRel);
        closed.increment(1);
        None
    }
}

/// The default cap: the soft open-file limit less a headroom for what else holds descriptors (the database
/// files, webhook and identity-provider clients, the overflow slots, logs). With the 20,000 of the MWS
/// benchmarks this is 19,488, above the 19,000 sockets they open.
pub(crate) fn default_cap() -> usize {
    let limit = open_file_limit().unwrap_or(1024);
    let headroom = (limit / 4).clamp(64, 512);
    limit.saturating_sub(headroom).max(1)
}

/// The soft `RLIMIT_NOFILE`, from `/proc/self/limits` (Linux; the workspace forbids the `unsafe` a libc
/// call needs). `None` elsewhere.
fn open_file_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_open_file_limit(&text)
}

fn parse_open_file_limit(limits: &str) -> Option<usize> {
    let line = limits.lines().find(|line| line.starts_with("Max open files"))?;
    match line["Max open files".len()..].split_whitespace().next()? {
        "unlimited" => Some(1 << 20),
        soft => soft.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_counts_sockets_and_keeps_overflow_slots() {
        let sockets = Arc::new(AtomicUsize::new(0));
        let seen = sockets.clone();
        let conns = Connections::new("main", 3, move || seen.load(Ordering::Relaxed));
        let a = conns.admit().unwrap();
        let _b = conns.admit().unwrap();
        sockets.store(1, Ordering::Relaxed);
        let overflow: Vec<_> = (0..OVERFLOW_SLOTS).map(|_| conns.admit().unwrap()).collect();
        assert!(!a.is_overflow() && overflow.iter().all(Slot::is_overflow));
        assert!(conns.admit().is_none(), "past the overflow slots a connection is closed");
        drop(overflow);
        assert!(conns.admit().unwrap().is_overflow());
        drop(a);
        assert!(!conns.admit().unwrap().is_overflow());
    }

    #[test]
    fn the_default_cap_leaves_headroom_below_the_file_limit() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max open files            20000                20000                files     \n";
        assert_eq!(parse_open_file_limit(limits), Some(20000));
        assert_eq!(parse_open_file_limit("Max open files  unlimited unlimited files"), Some(1 << 20));
        assert!(default_cap() < open_file_limit().unwrap_or(usize::MAX));
    }
}
