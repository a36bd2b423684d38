//! A committed change of an object, as the store's change log records it and every audience (sockets, the
//! notification stream, webhooks) reads it.

use serde_json::Value;

use crate::access::{Subject, among};

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeEvent {
    Create,
    Update,
    Delete,
}

impl ChangeEvent {
    pub fn parse(name: &str) -> Option<ChangeEvent> {
        [ChangeEvent::Create, ChangeEvent::Update, ChangeEvent::Delete].into_iter().find(|event| event.name() == name)
    }

    /// The `eventName` of webhooks and notifications.
    pub fn name(self) -> &'static str {
        match self {
            ChangeEvent::Create => "create",
            ChangeEvent::Update => "update",
            ChangeEvent::Delete => "delete",
        }
    }
}

/// One committed change of an object, recorded in the same transaction as the change itself; `seq` grows with
/// commit order. Deletions carried by a cascade are changes of their own.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub seq: i64,
    pub backend: String,
    pub object_type: String,
    pub object_id: String,
    pub event: ChangeEvent,
    /// The object after the change; for a deletion, as it was.
    pub object: Value,
    /// Who may read the object, as of the change: its own `read` and `admin` lists and those of the parent it
    /// extends (`Acl::readers`); just `*` when everyone may.
    pub readers: Vec<Subject>,
    /// The user who made the change.
    pub user_id: Option<String>,
    /// The `X-Request-Id` of the request that made it.
    pub request_id: Option<String>,
}

impl Change {
    /// Whether a caller holding `mine` may hear of this change.
    pub fn readable_by(&self, mine: &[Subject]) -> bool {
        among(&self.readers, mine)
    }

    /// Whether everyone may hear of it.
    pub fn is_public(&self) -> bool {
        self.readers.contains(&Subject::Everyone)
    }
}
