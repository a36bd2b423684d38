//! Which properties of a collection have a key index, remembered per version of the database schema.
//!
//! Every list and count needs this set in its snapshot, and reading `property_indexes` was a statement of its
//! own on the hot path. A key index and its `property_indexes` row are made and dropped in one transaction,
//! which changes SQLite's schema cookie, so the set read at one cookie holds for every snapshot at that cookie:
//! a read checks the cookie (`PRAGMA schema_version`, a header field) in its snapshot and reads the table only
//! when the remembered set is of another cookie.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

/// The most collections remembered; beyond it the map starts again empty (clients name collections freely).
const MAX_COLLECTIONS: usize = 10_000;

#[derive(Default)]
pub(crate) struct KeyIndexes(Mutex<Known>);

/// The indexed properties of a collection, and the schema cookie they were read at.
type Remembered = (i64, Arc<[String]>);

#[derive(Default)]
struct Known {
    /// backend → object type → what was read.
    sets: HashMap<String, HashMap<String, Remembered>>,
    collections: usize,
}

impl KeyIndexes {
    /// The properties of the collection with a key index, as of `conn`'s snapshot (or, outside a transaction,
    /// as of now).
    pub(crate) fn of(&self, conn: &Connection, backend: &str, object_type: &str) -> rusqlite::Result<Arc<[String]>> {
        let cookie: i64 = conn.prepare_cached("PRAGMA schema_version")?.query_row([], |row| row.get(0))?;
        let remembered = self.lock().sets.get(backend).and_then(|types| types.get(object_type)).cloned();
        if let Some((at, properties)) = remembered
            && at == cookie
        {
            return Ok(properties);
        }
        let mut statement =
            conn.prepare_cached("SELECT property FROM property_indexes WHERE backend = ? AND object_type = ?")?;
        let properties: Arc<[String]> =
            statement.query_map([backend, object_type], |row| row.get(0))?.collect::<rusqlite::Result<_>>()?;
        let mut known = self.lock();
        if known.collections >= MAX_COLLECTIONS {
            *known = Known::default();
        }
        let set = (cookie, Arc::clone(&properties));
        if known.sets.entry(backend.to_owned()).or_default().insert(object_type.to_owned(), set).is_none() {
            known.collections += 1;
        }
        Ok(properties)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Known> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
