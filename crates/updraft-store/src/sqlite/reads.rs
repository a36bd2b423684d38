//! The hot reads (an object by id, a page of a list, a count) on rusqlite connections of our own.
//!
//! Why not sqlx, which serves every other statement: sqlx runs each SQLite connection on a thread of its own and
//! hands every command, row and completion across channels. Profiled on this two-core machine, those hand-offs
//! (futex waits and wakes, task switches) were half of a list request and more than the SQLite work itself.
//! Here a read by primary key runs on the calling task, since it is one B-tree lookup in the page cache. A list
//! or a count, whose cost depends on the query, starts on the calling task too but with a budget of SQLite VM
//! steps (about a millisecond); a query that runs over it is interrupted and run again on tokio's blocking pool,
//! so an indexed page costs no thread hand-off and an unindexed scan stalls no sockets.
//!
//! On the blocking pool a read gets `MAX_READ_TIME` and is then interrupted and refused as too expensive (a 400).
//! It is also interrupted as soon as its caller stops waiting (the client went away and the request's future was
//! dropped), so no thread keeps working for nobody.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use regex::Regex;
use rusqlite::functions::FunctionFlags;
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, OpenFlags};
use updraft_query::sqlite::Bind;

use super::key_indexes::KeyIndexes;
use super::search::frequencies::DocFrequencies;
use crate::StoreError;

/// Idle connections kept; more may exist while many reads run at once.
const MAX_IDLE: usize = 16;

/// SQLite VM instructions between two calls of the progress handler, and the calls a read may take on the calling
/// task before it moves to the blocking pool: 200k instructions, a millisecond or so.
const STEPS_PER_CHECK: i32 = 1000;
const CHECKS_INLINE: u32 = 200;

/// The most of the database file a connection maps (SQLite caps it at 2 GiB unless built otherwise; beyond it,
/// pages are read as usual).
pub(crate) const MMAP_SIZE: i64 = 1 << 31;

/// How an answer to a read over its time budget begins.
pub(crate) const TOO_EXPENSIVE: &str = "Query too expensive";

/// How long a read may run on the blocking pool before it is interrupted and refused.
const MAX_READ_TIME: Duration = Duration::from_secs(5);

pub(crate) struct Readers {
    path: PathBuf,
    /// What `updraft_rank` remembers, one for the store's readers.
    frequencies: Arc<DocFrequencies>,
    idle: Mutex<Vec<Connection>>,
    /// `CHECKS_INLINE`, lowered by tests to send reads to the blocking pool.
    checks_inline: AtomicU32,
    /// Reads that ran over the inline budget.
    moved: AtomicU64,
    /// `MAX_READ_TIME` in milliseconds, changed by tests.
    max_read_ms: AtomicU64,
    key_indexes: Arc<KeyIndexes>,
}

impl Readers {
    /// Opens one connection now, so that a wrong path fails at start-up rather than at the first read.
    pub(crate) fn open(path: &Path) -> Result<Arc<Readers>, StoreError> {
        let frequencies = Arc::default();
        let first = connect(path, &frequencies)?;
        Ok(Arc::new(Readers {
            path: path.to_owned(),
            frequencies,
            idle: Mutex::new(vec![first]),
            checks_inline: AtomicU32::new(CHECKS_INLINE),
            moved: AtomicU64::new(0),
            max_read_ms: AtomicU64::new(MAX_READ_TIME.as_millis() as u64),
            key_indexes: Arc::default(),
        }))
    }

    /// Which properties of a collection have a key index, shared by the readers.
    pub(crate) fn key_indexes(&self) -> &Arc<KeyIndexes> {
        &self.key_indexes
    }

    /// Runs `read` on this task. Only for reads whose cost is bounded, such as a primary key lookup.
    pub(crate) fn inline<T>(&self, read: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let conn = self.take()?;
        let result = read(&conn).map_err(database);
        self.give(conn);
        result
    }

    /// Runs `read` on the blocking pool within `MAX_READ_TIME`; interrupts it once this future is dropped.
    pub(crate) async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let readers = Arc::clone(self);
        let limit = Duration::from_millis(self.max_read_ms.load(Ordering::Relaxed));
        let cancel = Cancel(Arc::new(AtomicBool::new(false)));
        let cancelled = Arc::clone(&cancel.0);
        tokio::task::spawn_blocking(move || {
            let conn = readers.take()?;
            let started = Instant::now();
            let stop = Arc::clone(&cancelled);
            let result = match conn.progress_handler(
                STEPS_PER_CHECK,
                Some(move || stop.load(Ordering::Relaxed) || started.elapsed() > limit),
            ) {
                Ok(()) => read(&conn),
                Err(err) => Err(err),
            };
            if conn.progress_handler(0, None::<fn() -> bool>).is_ok() {
                readers.give(conn);
            }
            match result {
                Err(err) if interrupted(&err) && cancelled.load(Ordering::Relaxed) => {
                    Err(StoreError::Database("the read was cancelled: nobody waits for it".into()))
                }
                Err(err) if interrupted(&err) => Err(StoreError::Invalid {
                    message: format!("{TOO_EXPENSIVE}: it ran over the {} ms limit", limit.as_millis()),
                    property: None,
                }),
                other => other.map_err(database),
            }
        })
        .await
        .map_err(|err| StoreError::Database(format!("a read failed: {err}")))?
    }

    /// Runs `read` on this task while it stays within the inline budget, else again on the blocking pool.
    pub(crate) async fn bounded<T, R>(self: &Arc<Self>, read: R) -> Result<T, StoreError>
    where
        T: Send + 'static,
        R: Fn(&Connection) -> rusqlite::Result<T> + Send + Sync + 'static,
    {
        let conn = self.take()?;
        let (mut checks, budget) = (0, self.checks_inline.load(Ordering::Relaxed));
        let over_budget = move || {
            checks += 1;
            checks > budget
        };
        if conn.progress_handler(STEPS_PER_CHECK, Some(over_budget)).is_err() {
            self.give(conn);
            return self.blocking(move |conn| read(conn)).await;
        }
        let result = read(&conn);
        // A connection that kept its budget would interrupt later reads: keep it only once cleared.
        if conn.progress_handler(0, None::<fn() -> bool>).is_ok() {
            self.give(conn);
        }
        match result {
            Err(err) if interrupted(&err) => {
                self.moved.fetch_add(1, Ordering::Relaxed);
                self.blocking(move |conn| read(conn)).await
            }
            other => other.map_err(database),
        }
    }

    #[cfg(test)]
    pub(crate) fn moved_to_blocking_pool(&self) -> u64 {
        self.moved.load(Ordering::Relaxed)
    }

    #[cfg(test)]
    pub(crate) fn set_checks_inline(&self, checks: u32) {
        self.checks_inline.store(checks, Ordering::Relaxed);
    }

    #[cfg(test)]
    pub(crate) fn set_max_read_time(&self, limit: Duration) {
        self.max_read_ms.store(limit.as_millis() as u64, Ordering::Relaxed);
    }

    #[cfg(test)]
    pub(crate) fn frequencies(&self) -> &DocFrequencies {
        &self.frequencies
    }

    #[cfg(test)]
    fn idle_connections(&self) -> usize {
        self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).len()
    }

    fn take(&self) -> Result<Connection, StoreError> {
        let idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).pop();
        match idle {
            Some(conn) => Ok(conn),
            None => connect(&self.path, &self.frequencies),
        }
    }

    fn give(&self, conn: Connection) {
        // A read interrupted inside its snapshot (`lists::snapshot`) may have left it open; a connection that
        // cannot end it is dropped rather than reused.
        if !conn.is_autocommit() && (conn.execute_batch("ROLLBACK").is_err() || !conn.is_autocommit()) {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }
}

/// Tells a read on the blocking pool to stop when dropped, that is when its caller stops waiting.
struct Cancel(Arc<AtomicBool>);

impl Drop for Cancel {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn interrupted(err: &rusqlite::Error) -> bool {
    matches!(err, rusqlite::Error::SqliteFailure(err, _) if err.code == rusqlite::ErrorCode::OperationInterrupted)
}

fn connect(path: &Path, frequencies: &Arc<DocFrequencies>) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(database)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(database)?;
    // The database file mapped into memory, shared by every connection and the OS page cache: a page a read
    // visits costs a memory access, not a `pread` into each connection's own small cache (2 MiB by default),
    // which was most of the time of a read visiting thousands of rows.
    conn.pragma_update(None, "mmap_size", MMAP_SIZE).map_err(database)?;
    conn.set_prepared_statement_cache_capacity(128);
    register_regexp(&conn).map_err(database)?;
    super::search::rank::register(&conn, frequencies).map_err(database)?;
    Ok(conn)
}

/// `x REGEXP p` calls `regexp(p, x)`; `$regex` filters compile to it (see `updraft_query::sqlite`). Same
/// semantics as the sqlx connections' function: the `regex` crate, a match anywhere, false for non-text.
fn register_regexp(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function("regexp", 2, flags, |ctx| {
        // Compiled once per statement execution, not once per row.
        let regex: Arc<Regex> =
            ctx.get_or_create_aux(0, |pattern| -> Result<Regex, rusqlite::types::FromSqlError> {
                Regex::new(pattern.as_str()?).map_err(|err| rusqlite::types::FromSqlError::Other(Box::new(err)))
            })?;
        Ok(match ctx.get_raw(1) {
            ValueRef::Text(text) => std::str::from_utf8(text).is_ok_and(|text| regex.is_match(text)),
            _ => false,
        })
    })
}

/// The compiled filter's binds, and our own, as rusqlite values.
pub(crate) fn values(binds: &[Bind]) -> Vec<SqlValue> {
    binds
        .iter()
        .map(|bind| match bind {
            Bind::Int(n) => SqlValue::Integer(*n),
            Bind::Real(x) => SqlValue::Real(*x),
            Bind::Text(text) => SqlValue::Text(text.clone()),
        })
        .collect()
}

fn database(err: rusqlite::Error) -> StoreError {
    StoreError::Database(err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read that runs for half a minute or so: SQLite counts to a hundred million.
    fn endless(conn: &Connection) -> rusqlite::Result<i64> {
        conn.query_row(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000000) \
             SELECT count(*) FROM c",
            [],
            |row| row.get(0),
        )
    }

    fn readers(dir: &tempfile::TempDir) -> Arc<Readers> {
        let path = dir.path().join("reads.sqlite3");
        Connection::open(&path).unwrap().execute_batch("CREATE TABLE t (x)").unwrap();
        Readers::open(&path).unwrap()
    }

    #[tokio::test]
    async fn finding_10_a_read_over_its_time_budget_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let readers = readers(&dir);
        readers.set_max_read_time(Duration::from_millis(100));
        let err = readers.bounded(endless).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Invalid { message, .. } if message.starts_with("Query too expensive")),
            "{err:?}"
        );
        assert_eq!(readers.moved_to_blocking_pool(), 1);
        // The connection is clean again: a cheap read on it runs to the end.
        assert_eq!(readers.idle_connections(), 1);
        let one = readers.bounded(|conn| conn.query_row("SELECT 1", [], |row| row.get::<_, i64>(0))).await;
        assert_eq!(one.unwrap(), 1);
    }

    #[tokio::test]
    async fn finding_10_a_read_stops_when_its_caller_stops_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let readers = readers(&dir);
        readers.set_max_read_time(Duration::from_secs(600));
        let read = readers.bounded(endless);
        assert!(tokio::time::timeout(Duration::from_millis(200), read).await.is_err(), "it runs on");
        assert_eq!(readers.moved_to_blocking_pool(), 1);
        // The future is gone: its read is interrupted and its connection comes back at once.
        let deadline = Instant::now() + Duration::from_secs(5);
        while readers.idle_connections() == 0 {
            assert!(Instant::now() < deadline, "the read still runs after its caller left");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
