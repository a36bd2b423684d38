//! What every request reads and almost nothing writes, cached per node: backends, schemas, and the properties of
//! a collection that have a key index. Without it a point read is two round trips and a list nine.
//!
//! Another node may change these rows at any time. The triggers of `migrations-postgres/0005_catalog_notify.sql`
//! send `NOTIFY updraft_catalog` at the commit of any such change, and the change follower (`changes.rs`), which
//! listens on the same connection as for changes, forgets the whole cache when it arrives. So a node serves a
//! copy at most one notification's latency old. While the follower is not listening (not yet, or reconnecting),
//! notifications could be missed: the cache is then neither read nor filled, and it is emptied again once the
//! follower listens. A writer on this node forgets at its own commit, so that its next request reads its write.
//!
//! A read that began before a forget must not store what it read: each entry is stored only if the generation,
//! bumped by every forget, is the one the read started under.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use serde_json::Value;

use crate::Backend;

/// A map that would grow past this is emptied first: clients name object types freely.
const MAX_ENTRIES: usize = 10_000;

/// Collections are keyed `(backend, object type)`.
type CollectionKey = (String, String);

#[derive(Default)]
struct Entries {
    generation: u64,
    backends: HashMap<String, Backend>,
    schemas: HashMap<CollectionKey, Option<Arc<Value>>>,
    indexed: HashMap<CollectionKey, Arc<HashSet<String>>>,
}

/// The per-node cache; see the module comment.
#[derive(Default)]
pub(crate) struct Catalog {
    entries: RwLock<Entries>,
    /// Whether the follower listens now, so that a change made elsewhere reaches `forget`.
    listening: AtomicBool,
}

/// A cache read that missed: the generation it started under, to store what it then reads from the database.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Miss(Option<u64>);

impl Catalog {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Entries> {
        self.entries.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Entries> {
        self.entries.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Forgets every entry; called for every catalog notification and every commit of this node that changed one.
    pub(crate) fn forget(&self) {
        let mut entries = self.write();
        entries.generation += 1;
        entries.backends.clear();
        entries.schemas.clear();
        entries.indexed.clear();
    }

    /// The follower listens (`true`, after a forget: what changed while it did not is unknown) or stopped.
    pub(crate) fn set_listening(&self, listening: bool) {
        if listening {
            self.forget();
        }
        self.listening.store(listening, Ordering::Release);
        if !listening {
            self.forget();
        }
    }

    /// Looks `lookup` up; on a miss answers what `store` needs to keep the database's answer.
    fn find<T>(&self, lookup: impl FnOnce(&Entries) -> Option<T>) -> Result<T, Miss> {
        if !self.listening.load(Ordering::Acquire) {
            return Err(Miss(None));
        }
        let entries = self.read();
        lookup(&entries).ok_or(Miss(Some(entries.generation)))
    }

    /// Keeps what a missed read found, unless a forget came in between or the follower stopped listening.
    fn store(&self, miss: Miss, keep: impl FnOnce(&mut Entries)) {
        let Miss(Some(generation)) = miss else { return };
        let mut entries = self.write();
        if entries.generation == generation && self.listening.load(Ordering::Acquire) {
            keep(&mut entries);
        }
    }

    pub(crate) fn backend(&self, id: &str) -> Result<Backend, Miss> {
        self.find(|entries| entries.backends.get(id).cloned())
    }

    /// Only found backends are kept: unknown ids from clients must not grow the cache.
    pub(crate) fn keep_backend(&self, miss: Miss, backend: &Backend) {
        self.store(miss, |entries| {
            bounded(&mut entries.backends).insert(backend.id.clone(), backend.clone());
        });
    }

    pub(crate) fn schema(&self, backend: &str, object_type: &str) -> Result<Option<Arc<Value>>, Miss> {
        self.find(|entries| entries.schemas.get(&key(backend, object_type)).cloned())
    }

    /// Absent schemas too (a collection used without one is common), but only of backends that exist.
    pub(crate) fn keep_schema(&self, miss: Miss, backend: &str, object_type: &str, schema: Option<&Arc<Value>>) {
        self.store(miss, |entries| {
            if entries.backends.contains_key(backend) {
                bounded(&mut entries.schemas).insert(key(backend, object_type), schema.cloned());
            }
        });
    }

    /// The properties of the collection with a key index.
    pub(crate) fn indexed(&self, backend: &str, object_type: &str) -> Result<Arc<HashSet<String>>, Miss> {
        self.find(|entries| entries.indexed.get(&key(backend, object_type)).cloned())
    }

    pub(crate) fn keep_indexed(&self, miss: Miss, backend: &str, object_type: &str, indexed: &Arc<HashSet<String>>) {
        self.store(miss, |entries| {
            if entries.backends.contains_key(backend) {
                bounded(&mut entries.indexed).insert(key(backend, object_type), indexed.clone());
            }
        });
    }
}

fn bounded<K, V>(map: &mut HashMap<K, V>) -> &mut HashMap<K, V> {
    if map.len() >= MAX_ENTRIES {
        map.clear();
    }
    map
}

fn key(backend: &str, object_type: &str) -> CollectionKey {
    (backend.to_owned(), object_type.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AccessDefaults;

    fn backend(id: &str) -> Backend {
        Backend {
            id: id.into(),
            app_id: "app".into(),
            environment: "development".into(),
            master_key: "m".into(),
            api_key: "a".into(),
            secret: "s".into(),
            access: AccessDefaults::Open,
        }
    }

    #[test]
    fn nothing_is_cached_while_the_follower_does_not_listen() {
        let catalog = Catalog::default();
        let miss = catalog.backend("b").unwrap_err();
        catalog.keep_backend(miss, &backend("b"));
        assert!(catalog.backend("b").is_err());
        catalog.set_listening(true);
        let miss = catalog.backend("b").unwrap_err();
        catalog.keep_backend(miss, &backend("b"));
        assert_eq!(catalog.backend("b").unwrap().id, "b");
        catalog.set_listening(false);
        assert!(catalog.backend("b").is_err(), "a follower that stops listening may miss changes: forget");
    }

    #[test]
    fn a_read_that_began_before_a_forget_is_not_kept() {
        let catalog = Catalog::default();
        catalog.set_listening(true);
        let miss = catalog.backend("b").unwrap_err();
        catalog.forget();
        catalog.keep_backend(miss, &backend("b"));
        assert!(catalog.backend("b").is_err());
    }

    #[test]
    fn schemas_and_indexes_are_kept_only_for_known_backends_and_forgotten_together() {
        let catalog = Catalog::default();
        catalog.set_listening(true);
        let miss = catalog.schema("b", "objects.todo").unwrap_err();
        catalog.keep_schema(miss, "b", "objects.todo", None);
        assert!(catalog.schema("b", "objects.todo").is_err(), "no backend b known: unknown ids do not grow it");
        let miss = catalog.backend("b").unwrap_err();
        catalog.keep_backend(miss, &backend("b"));
        let miss = catalog.schema("b", "objects.todo").unwrap_err();
        catalog.keep_schema(miss, "b", "objects.todo", None);
        assert_eq!(catalog.schema("b", "objects.todo").unwrap(), None);
        let miss = catalog.indexed("b", "objects.todo").unwrap_err();
        catalog.keep_indexed(miss, "b", "objects.todo", &Arc::new(HashSet::from(["n".to_owned()])));
        assert!(catalog.indexed("b", "objects.todo").unwrap().contains("n"));
        catalog.forget();
        assert!(catalog.schema("b", "objects.todo").is_err());
        assert!(catalog.indexed("b", "objects.todo").is_err());
        assert!(catalog.backend("b").is_err());
    }

    /// Waits until `check` holds of `store`, for up to 5 s: another node hears of a change at its notification.
    async fn eventually<F: AsyncFn() -> bool>(check: F) -> bool {
        for _ in 0..500 {
            if check().await {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        false
    }

    #[tokio::test]
    async fn a_change_made_on_another_node_reaches_this_nodes_cache() {
        use crate::{Schemas, Tenants};
        let database = super::super::test_database::TestDatabase::create().await;
        let (a, b) = (database.open().await, database.open().await);
        assert!(eventually(async || a.catalog.listening.load(Ordering::Acquire)).await);
        let app = b.create_app("notes", &|_| AccessDefaults::Open).await.unwrap();
        let id = &app.backends[0].id;
        let rules = crate::SchemaRules { indexed: vec!["n".into()], cascades: Vec::new(), searched: Vec::new() };
        b.put_schema(id, "objects.notes", serde_json::json!({"name": "notes"}), &rules).await.unwrap();
        // Node a reads (and keeps) all three.
        assert_eq!(a.backend(id).await.unwrap().unwrap().access, AccessDefaults::Open);
        assert!(a.schema(id, "objects.notes").await.unwrap().is_some());
        assert!(a.schema(id, "objects.other").await.unwrap().is_none());
        let notes = crate::Collection { backend: id, object_type: "objects.notes" };
        assert!(a.keyed(notes).await.unwrap().contains("n"));
        // Kept once b's own notifications have come and gone (they may arrive after a read, and empty the cache).
        let kept = async || {
            a.backend(id).await.unwrap();
            a.schema(id, "objects.other").await.unwrap();
            a.catalog.backend(id).is_ok() && a.catalog.schema(id, "objects.other").is_ok()
        };
        assert!(eventually(kept).await, "kept");
        // Node b changes each; node a sees every change without asking twice.
        b.set_access_defaults(id, AccessDefaults::Locked).await.unwrap();
        assert!(eventually(async || a.backend(id).await.unwrap().unwrap().access == AccessDefaults::Locked).await);
        b.put_schema(id, "objects.other", serde_json::json!({"name": "other"}), &crate::SchemaRules::default())
            .await
            .unwrap();
        assert!(eventually(async || a.schema(id, "objects.other").await.unwrap().is_some()).await);
        b.put_schema(id, "objects.notes", serde_json::json!({"name": "notes"}), &crate::SchemaRules::default())
            .await
            .unwrap();
        assert!(eventually(async || !a.keyed(notes).await.unwrap().contains("n")).await);
        b.delete_app(&app.id).await.unwrap();
        assert!(eventually(async || a.backend(id).await.unwrap().is_none()).await, "a deleted backend is gone");
        // And on the writing node at once, without waiting for its own notification.
        let app = a.create_app("todo", &|_| AccessDefaults::Open).await.unwrap();
        let id = &app.backends[0].id;
        assert!(a.schema(id, "objects.todo").await.unwrap().is_none());
        a.put_schema(id, "objects.todo", serde_json::json!({"name": "todo"}), &crate::SchemaRules::default())
            .await
            .unwrap();
        assert!(a.schema(id, "objects.todo").await.unwrap().is_some());
        a.close().await;
        b.close().await;
    }
}
