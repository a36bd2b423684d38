//! What a node last delivered of one gateway on a bus that numbers: after a reconnect it delivers what the bus kept
//! since ([`LastHeard::catch_up`]), then lets each live message through once ([`LastHeard::fresh`]). The NATS and
//! Redis listeners share it.

use crate::registry::Node;
use crate::{BusError, History};

#[derive(Debug, Default)]
pub(crate) struct LastHeard(Option<u64>);

impl LastHeard {
    pub(crate) fn new(last: Option<u64>) -> LastHeard {
        LastHeard(last)
    }

    /// The number of the last message delivered, if one was (or numbers may have started over since).
    pub(crate) fn get(&self) -> Option<u64> {
        self.0
    }

    /// Whether a message numbered `seq` is new (a catch-up may have delivered it already); remembers it.
    pub(crate) fn fresh(&mut self, seq: Option<u64>) -> bool {
        match (seq, self.0) {
            (Some(seq), Some(last)) if seq <= last => false,
            (Some(_), _) => {
                self.0 = seq;
                true
            }
            (None, _) => true,
        }
    }

    /// Delivers to `local` what `read`, the bus's history of `gateway` after [`LastHeard::get`], kept. A gap or a
    /// read that failed may mean the bus's numbers started over: then whatever comes next is heard, rather than
    /// skipped as heard already. `engine` names the bus in the log.
    pub(crate) async fn catch_up(
        &mut self,
        read: Result<History, BusError>,
        engine: &str,
        gateway: &str,
        local: &Node,
    ) {
        match read {
            Ok(History::Kept { missed, .. }) => {
                metrics::counter!("updraft_bus_messages_caught_up_total").increment(missed.len() as u64);
                for publication in missed {
                    self.0 = publication.seq.max(self.0);
                    (local.deliver)(publication).await;
                }
            }
            Ok(History::Gap { latest }) => {
                tracing::warn!(
                    engine,
                    gateway,
                    last = self.0,
                    latest,
                    "messages published while the bus was away are gone"
                );
                // A number past the latest: the bus lost its numbers, which start over.
                if self.0.is_some_and(|last| last > latest) {
                    self.0 = None;
                }
            }
            Err(err) => {
                tracing::warn!(engine, %err, gateway, "what was published while the bus was away is not readable");
                self.0 = None;
            }
        }
    }
}
