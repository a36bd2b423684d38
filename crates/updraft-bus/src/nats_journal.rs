//! Numbered delivery over NATS: every publication goes into the JetStream stream `UPDRAFT_MWS` (subjects
//! `updraft.mwsj.<gateway id>.<route>`, `nats_routes.rs`), which gives it its number (the stream sequence) and
//! republishes it, with that number in the `Nats-Sequence` header, on `updraft.mws.<gateway id>.<route>`, the
//! subjects nodes subscribe to (`nats_interest.rs`). Every node thus hears a gateway's messages in one order under
//! one numbering, its own included, and a socket that reconnects to any node with `since` gets what it missed from
//! the stream ([`Journal::history`]).
//!
//! A node whose connection dropped hears nothing meanwhile; once it is back, each gateway it listens to first gets
//! what the stream numbered after the last message it heard ([`CatchUp`]), so nothing the stream acknowledged is
//! lost to its sockets.
//!
//! The stream keeps what a gateway's journal keeps on one node: messages of the last two minutes, and at most
//! [`MAX_BYTES`] in all, oldest first out. As the stream drops its oldest first, a `since` at or after its first
//! number has lost nothing. It is kept in the server's files, so it outlives a NATS restart; a server that lost
//! it has it made again by the next publish (numbers start over, so an older `since` is a gap).

use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer, stream};
use futures_util::StreamExt;

use crate::last_heard::LastHeard;
use crate::nats_registry::failed;
use crate::nats_routes::{self, HEARD, WRITTEN};
use crate::registry::Node;
use crate::{BusError, History, Publication, backoff, wire};

const STREAM: &str = "UPDRAFT_MWS";
/// What the stream keeps, as a gateway's journal does on one node (`updraft_gateway::JournalLimits`).
const MAX_AGE: Duration = Duration::from_secs(120);
const MAX_BYTES: i64 = 256 << 20;
/// Messages read from the stream at a time while a socket resumes.
const BATCH: usize = 256;

pub(crate) struct Journal {
    jetstream: jetstream::Context,
}

impl Journal {
    /// Makes the stream unless it is there, so that a server without JetStream fails at start-up.
    pub(crate) async fn open(client: &async_nats::Client) -> Result<Journal, BusError> {
        let journal = Journal { jetstream: jetstream::new(client.clone()) };
        journal.stream().await?;
        Ok(journal)
    }

    async fn stream(&self) -> Result<stream::Stream, BusError> {
        let config = stream::Config {
            name: STREAM.into(),
            subjects: vec![format!("{WRITTEN}>")],
            max_age: MAX_AGE,
            max_bytes: MAX_BYTES,
            discard: stream::DiscardPolicy::Old,
            // In files: NATS 2.9's memory store finds a subject's last number (which republishing sends) by a
            // walk of the whole stream, so a publish there slowed to a millisecond at 40,000 messages kept; the
            // file store indexes subjects and stays at about 150 µs.
            storage: stream::StorageType::File,
            // Nodes that follow a shared change log publish each change within moments of each other.
            duplicate_window: MAX_AGE,
            republish: Some(stream::Republish {
                source: format!("{WRITTEN}>"),
                destination: format!("{HEARD}>"),
                headers_only: false,
            }),
            ..Default::default()
        };
        self.jetstream
            .get_or_create_stream(config)
            .await
            .map_err(|err| failed(format!("stream {STREAM} (is JetStream on?): {err}")))
    }

    /// Writes `payload`, the wire form of `publication`, into the stream on its route's subject (named as the
    /// publication's `once` says, if it does); answers once the server has it.
    pub(crate) async fn publish(&self, publication: &Publication, payload: Vec<u8>) -> Result<(), BusError> {
        let (subject, once) = (nats_routes::written(publication), publication.once.as_deref());
        let payload = bytes::Bytes::from(payload);
        let write = || async {
            let mut headers = HeaderMap::new();
            if let Some(name) = once {
                headers.insert(async_nats::header::NATS_MESSAGE_ID, name);
            }
            self.jetstream.publish_with_headers(subject.clone(), headers, payload.clone()).await?.await
        };
        match write().await {
            Ok(_) => Ok(()),
            // A server that lost the stream (its files gone): make it again, then try once more. Only then: after
            // any other failure the message may be stored, and a second copy would reach every socket twice.
            Err(err) if err.kind() == jetstream::context::PublishErrorKind::StreamNotFound => {
                self.stream().await?;
                write().await.map(drop).map_err(failed)
            }
            Err(err) => Err(failed(err)),
        }
    }

    /// The stream's latest number.
    pub(crate) async fn latest(&self) -> Result<u64, BusError> {
        // `stream` answers with the state `STREAM.INFO` just read: no second request.
        Ok(self.stream().await?.cached_info().state.last_sequence)
    }

    /// `gateway`'s messages after `since` that the stream still holds, or a gap.
    pub(crate) async fn history(&self, gateway: &str, since: u64) -> Result<History, BusError> {
        let stream = self.stream().await?;
        let state = &stream.cached_info().state;
        let (first, latest) = (state.first_sequence, state.last_sequence);
        if since == 0 || since == latest {
            return Ok(History::Kept { latest, missed: Vec::new() });
        }
        if since > latest || since + 1 < first {
            return Ok(History::Gap { latest });
        }
        let config = consumer::pull::Config {
            filter_subject: nats_routes::written_in(gateway),
            deliver_policy: consumer::DeliverPolicy::ByStartSequence { start_sequence: since + 1 },
            ack_policy: consumer::AckPolicy::None,
            inactive_threshold: Duration::from_secs(10),
            memory_storage: true,
            ..Default::default()
        };
        let consumer: consumer::PullConsumer = stream.create_consumer(config).await.map_err(failed)?;
        let name = consumer.cached_info().name.clone();
        let read = read_until(&consumer, gateway, latest).await;
        // Ephemeral: the server removes it after `inactive_threshold` if this fails.
        let _ = stream.delete_consumer(&name).await;
        Ok(History::Kept { latest, missed: read? })
    }
}

/// The consumer's messages numbered up to `latest`, as publications of `gateway` carrying their numbers.
async fn read_until(
    consumer: &consumer::PullConsumer,
    gateway: &str,
    latest: u64,
) -> Result<Vec<Publication>, BusError> {
    let mut missed = Vec::new();
    // Matching messages from the start to the stream's end when the consumer was made.
    let mut pending = consumer.cached_info().num_pending;
    while pending > 0 {
        let wanted = usize::try_from(pending).unwrap_or(BATCH).min(BATCH);
        let mut batch =
            consumer.batch().max_messages(wanted).expires(Duration::from_secs(1)).messages().await.map_err(failed)?;
        let mut got = 0;
        while let Some(message) = batch.next().await {
            let message = message.map_err(failed)?;
            got += 1;
            let seq = message.info().map_err(failed)?.stream_sequence;
            if seq > latest {
                return Ok(missed);
            }
            match wire::decode(gateway, &message.payload) {
                Ok((mut publication, _)) => {
                    publication.seq = Some(seq);
                    missed.push(publication);
                }
                Err(err) => tracing::warn!(%err, seq, "a stream message is not a publication"),
            }
        }
        if got == 0 {
            return Err(failed("the stream did not answer a resuming socket's read"));
        }
        pending = pending.saturating_sub(got);
    }
    Ok(missed)
}

/// After a reconnect, what one gateway's listener missed first ([`LastHeard`]), read from the stream.
pub(crate) struct CatchUp {
    journal: Arc<Journal>,
    /// Counts the client's connections: a change is a reconnect.
    connections: tokio::sync::watch::Receiver<u64>,
    /// A reconnect was seen and not caught up on yet.
    behind: bool,
    heard: LastHeard,
}

impl CatchUp {
    /// `last`: the stream's latest number before the listener subscribed, so that a reconnect before its first
    /// message still catches up.
    pub(crate) fn new(
        journal: Arc<Journal>,
        mut connections: tokio::sync::watch::Receiver<u64>,
        last: Option<u64>,
    ) -> CatchUp {
        connections.borrow_and_update();
        CatchUp { journal, connections, behind: false, heard: LastHeard::new(last) }
    }

    /// Resolves at the next reconnect; never once the client is gone.
    pub(crate) async fn reconnected(&mut self) {
        if self.connections.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
        self.behind = true;
    }

    /// After a reconnect (seen now or before), delivers to `local` what the stream numbered for `gateway` since
    /// the last message delivered.
    pub(crate) async fn catch_up(&mut self, gateway: &str, local: &Node) {
        if self.connections.has_changed().unwrap_or(false) {
            self.connections.borrow_and_update();
            self.behind = true;
        }
        if !std::mem::take(&mut self.behind) {
            return;
        }
        let Some(after) = self.heard.get() else { return };
        let mut read = self.journal.history(gateway, after).await;
        for attempt in 0..5 {
            let Err(err) = &read else { break };
            tracing::warn!(%err, gateway, "what was published while NATS was away could not be read yet");
            tokio::time::sleep(backoff(attempt)).await;
            read = self.journal.history(gateway, after).await;
        }
        self.heard.catch_up(read, "nats", gateway, local).await;
    }

    /// Whether a message numbered `seq` is new; see [`LastHeard::fresh`].
    pub(crate) fn fresh(&mut self, seq: Option<u64>) -> bool {
        self.heard.fresh(seq)
    }
}

/// The number the stream gave a message heard on a gateway's subject, from its `Nats-Sequence` header.
pub(crate) fn number(message: &async_nats::Message) -> Option<u64> {
    message.headers.as_ref()?.get(async_nats::header::NATS_SEQUENCE)?.as_str().parse().ok()
}
