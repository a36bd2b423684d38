//! The hot reads (an object by id, a page of a list, a count) on rusqlite connections of our own.
//!
//! Why not sqlx, which serves every other statement: sqlx runs each SQLite connection on a thread of its own and
//! hands every command, row and completion across channels. Profiled on this two-core machine, those hand-offs
//! (futex waits and wakes, task switches) were half of a list request and more than the SQLite work itself.
//! Here a read by primary key runs on the calling task, since it is one B-tree lookup in the page cache. A list
//! or a count, whose cost depends on the query, starts on the calling task too but with a budget of SQLite VM
//! steps (about a millisecond); a query that runs over it is interrupted and run again on tokio's blocking pool,
//! so an indexed page costs no thread hand-off and an unindexed scan stalls no sockets.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use regex::Regex;
use rusqlite::functions::FunctionFlags;
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, OpenFlags};
use updraft_query::sqlite::Bind;

use crate::StoreError;

/// Idle connections kept; more may exist while many reads run at once.
const MAX_IDLE: usize = 16;

/// SQLite VM instructions between two calls of the progress handler, and the calls a read may take on the calling
/// task before it moves to the blocking pool: 200k instructions, a millisecond or so.
const STEPS_PER_CHECK: i32 = 1000;
const CHECKS_INLINE: u32 = 200;

pub(crate) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// `CHECKS_INLINE`, lowered by tests to send reads to the blocking pool.
    checks_inline: AtomicU32,
    /// Reads that ran over the inline budget.
    moved: AtomicU64,
}

impl Readers {
    /// Opens one connection now, so that a wrong path fails at start-up rather than at the first read.
    pub(crate) fn open(path: &Path) -> Result<Arc<Readers>, StoreError> {
        let first = connect(path)?;
        Ok(Arc::new(Readers {
            path: path.to_owned(),
            idle: Mutex::new(vec![first]),
            checks_inline: AtomicU32::new(CHECKS_INLINE),
            moved: AtomicU64::new(0),
        }))
    }

    /// Runs `read` on this task. Only for reads whose cost is bounded, such as a primary key lookup.
    pub(crate) fn inline<T>(&self, read: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let conn = self.take()?;
        let result = read(&conn).map_err(database);
        self.give(conn);
        result
    }

    /// Runs `read` on the blocking pool.
    pub(crate) async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let readers = Arc::clone(self);
        tokio::task::spawn_blocking(move || readers.inline(read))
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
            Err(rusqlite::Error::SqliteFailure(err, _)) if err.code == rusqlite::ErrorCode::OperationInterrupted => {
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

    fn take(&self) -> Result<Connection, StoreError> {
        let idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).pop();
        match idle {
            Some(conn) => Ok(conn),
            None => connect(&self.path),
        }
    }

    fn give(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }
}

fn connect(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(database)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(database)?;
    conn.set_prepared_statement_cache_capacity(128);
    register_regexp(&conn).map_err(database)?;
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
