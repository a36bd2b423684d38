//! The notification stream's side of a commit: which open stream gets which change (docs/realtime.md).
//!
//! A stream gets one event per change of its backend that it may read, of a type whose schema sets
//! `settings.websocket`, and that its filter (a subset of the event) matches. Live events are queued per stream
//! by [`run`]; a resuming stream first reads what it missed through [`Replay`]. The stream's URL, handshake and
//! connection loop are the API's (`updraft-api` `eds/stream.rs`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use updraft_store::{Change, Changes, Schemas, Subject};

use crate::frames;

/// Events queued for one stream; a stream that falls this far behind is dropped from the hub (its connection
/// closes with 1013, to resume later).
const QUEUE: usize = 4096;
/// Changes read from the log at a time by a replay.
const BATCH: u32 = 512;

/// Who a stream is for and what it wants.
#[derive(Clone)]
pub struct Interest {
    pub backend: String,
    /// The reader's ACL subjects; `None` reads everything (the instance secret).
    pub subjects: Option<Vec<Subject>>,
    pub filter: Map<String, Value>,
}

impl Interest {
    /// Whether this stream gets `change`, whose event is `event`: its backend, readable by its user, and
    /// matching its filter. (Whether the type notifies at all is the caller's to know.)
    fn wants(&self, change: &Change, event: &Value) -> bool {
        let may_read = match &self.subjects {
            None => true,
            Some(subjects) => change.readable_by(subjects),
        };
        self.backend == change.backend && may_read && contains(event, &self.filter)
    }
}

/// An event on its way to one stream.
pub struct Frame {
    pub seq: i64,
    pub text: Bytes,
}

/// The open streams of this server.
#[derive(Default)]
pub struct StreamHub {
    open: Mutex<HashMap<u64, OpenStream>>,
    next_id: AtomicU64,
}

struct OpenStream {
    interest: Interest,
    frames: mpsc::Sender<Frame>,
    /// Set before `frames` is dropped when the stream's user lost its access: the stream closes with 1008.
    revoked: Arc<AtomicBool>,
}

/// A stream's end of the hub: its queued events, until it is closed.
pub struct Subscription {
    pub id: u64,
    pub frames: mpsc::Receiver<Frame>,
    revoked: Arc<AtomicBool>,
}

impl Subscription {
    /// Whether the queue ended because the stream's user lost its access (rather than because it fell behind).
    pub fn revoked(&self) -> bool {
        self.revoked.load(Ordering::Acquire)
    }
}

impl StreamHub {
    /// Registers a stream; its events queue from now on.
    pub fn open(&self, interest: Interest) -> Subscription {
        let (frames, queued) = mpsc::channel(QUEUE);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let revoked = Arc::new(AtomicBool::new(false));
        let open = OpenStream { interest, frames, revoked: revoked.clone() };
        self.lock().insert(id, open);
        Subscription { id, frames: queued, revoked }
    }

    /// Forgets a stream whose connection ended.
    pub fn close(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// An open stream's interest as it stands; `None` once it is closed or revoked.
    pub fn interest(&self, id: u64) -> Option<Interest> {
        self.lock().get(&id).map(|open| open.interest.clone())
    }

    /// Gives an open stream its user's new subjects; false when it is closed.
    pub fn rescope(&self, id: u64, subjects: Vec<Subject>) -> bool {
        match self.lock().get_mut(&id) {
            Some(open) => {
                open.interest.subjects = Some(subjects);
                true
            }
            None => false,
        }
    }

    /// Closes an open stream whose user lost its access (1008).
    pub fn revoke(&self, id: u64) {
        if let Some(open) = self.lock().remove(&id) {
            open.revoked.store(true, Ordering::Release);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, OpenStream>> {
        self.open.lock().expect("streams lock")
    }

    fn is_idle(&self) -> bool {
        self.lock().is_empty()
    }

    fn serves(&self, backend: &str) -> bool {
        self.lock().values().any(|open| open.interest.backend == backend)
    }

    /// Queues `change` for every open stream that may read it and wants it.
    fn publish(&self, change: &Change, event: &Value) {
        let mut text = None;
        self.lock().retain(|_, open| {
            if !open.interest.wants(change, event) {
                return true;
            }
            let text = text.get_or_insert_with(|| Bytes::from(event.to_string())).clone();
            // A full queue drops the stream from the list; its connection notices the closed channel.
            open.frames.try_send(Frame { seq: change.seq, text }).is_ok()
        });
    }
}

/// Turns committed changes into stream events, until the store goes away. With no stream open it reads nothing:
/// a stream that opens later and wants the past asks for it with `since`.
pub async fn run(changes: Arc<dyn Changes>, schemas: Arc<dyn Schemas>, hub: Arc<StreamHub>) {
    let open = || !hub.is_idle();
    let each = |change: Change| {
        let (hub, schemas) = (hub.clone(), schemas.clone());
        async move {
            if hub.serves(&change.backend) && notifies(schemas.as_ref(), &change).await {
                hub.publish(&change, &frames::stream_event(&change));
            }
        }
    };
    crate::follow(changes, open, each).await;
}

/// Streams carry a type's changes when its schema sets `settings.websocket`.
async fn notifies(schemas: &dyn Schemas, change: &Change) -> bool {
    match schemas.schema(&change.backend, &change.object_type).await {
        Ok(Some(schema)) => schema.pointer("/settings/websocket") == Some(&Value::Bool(true)),
        Ok(None) => false,
        Err(err) => {
            tracing::warn!(%err, "reading a schema failed");
            false
        }
    }
}

/// Whether `filter` is a subset of `event`: every key present, objects compared the same way, other values equal.
fn contains(event: &Value, filter: &Map<String, Value>) -> bool {
    let Value::Object(event) = event else { return false };
    filter.iter().all(|(key, wanted)| match (event.get(key), wanted) {
        (Some(value @ Value::Object(_)), Value::Object(wanted)) => contains(value, wanted),
        (Some(value), wanted) => value == wanted,
        (None, _) => false,
    })
}

/// The events after `since` that the log still has and a stream wants, read batch by batch.
pub struct Replay<'a> {
    changes: &'a dyn Changes,
    schemas: &'a dyn Schemas,
    interest: &'a Interest,
    last: i64,
}

impl<'a> Replay<'a> {
    /// Starts after `since`; answers, beside it, the gap event when the log no longer reaches back that far.
    pub async fn start(
        changes: &'a dyn Changes,
        schemas: &'a dyn Schemas,
        interest: &'a Interest,
        since: i64,
    ) -> (Replay<'a>, Option<Bytes>) {
        let mut gap = None;
        match changes.changes_after(since, 1).await {
            Ok(first) => {
                let oldest_kept = first.first().map(|change| change.seq);
                let latest = changes.latest_change().await.unwrap_or(since);
                // Change numbers are consecutive, so a missing one between `since` and the oldest kept was pruned.
                if oldest_kept.is_some_and(|oldest| oldest > since + 1) || (oldest_kept.is_none() && latest > since) {
                    gap = Some(frames::stream_gap(since));
                }
            }
            Err(err) => tracing::warn!(%err, "reading the change log failed"),
        }
        (Replay { changes, schemas, interest, last: since }, gap)
    }

    /// The wanted events of the next batch of the log (possibly none); `None` once the log is read to its end.
    pub async fn next_batch(&mut self) -> Option<Vec<Bytes>> {
        let batch = match self.changes.changes_after(self.last, BATCH).await {
            Ok(batch) if !batch.is_empty() => batch,
            _ => return None,
        };
        let mut events = Vec::new();
        for change in &batch {
            self.last = change.seq;
            let event = frames::stream_event(change);
            if self.interest.wants(change, &event) && notifies(self.schemas, change).await {
                events.push(Bytes::from(event.to_string()));
            }
        }
        Some(events)
    }

    /// The `seq` of the last change looked at: live events up to it were replayed already.
    pub fn last(&self) -> i64 {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn filters_match_subsets_of_the_event() {
        let event = json!({"event": "create", "data": {"objectType": "objects.todos", "title": "milk"}});
        let filter = |value: Value| value.as_object().unwrap().clone();
        assert!(contains(&event, &filter(json!({}))));
        assert!(contains(&event, &filter(json!({"event": "create"}))));
        assert!(contains(&event, &filter(json!({"data": {"objectType": "objects.todos"}}))));
        assert!(!contains(&event, &filter(json!({"event": "update"}))));
        assert!(!contains(&event, &filter(json!({"data": {"objectType": "objects.notes"}}))));
        assert!(!contains(&event, &filter(json!({"data": "objects.todos"}))));
        assert!(!contains(&event, &filter(json!({"origin": {}}))));
    }
}
