//! With `UPDRAFT_TEST_POSTGRES=postgres://user@host:port` set, every test server runs on PostgreSQL: a fresh
//! database per data directory (so a restarted server finds its data again), dropped when the last server on it
//! is dropped. Servers stopped on purpose, and binaries, may be started again on the same directory, so their
//! databases stay until the end of the run (`scripts/test-all.sh` drops every `updraft_test_%` database).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sqlx::Connection;

/// The server URL of the test PostgreSQL, when the suite runs on it.
pub(crate) fn server_url() -> Option<String> {
    std::env::var("UPDRAFT_TEST_POSTGRES").ok().filter(|it| !it.is_empty())
}

/// A fresh database on the suite's PostgreSQL, or on the machine's (`postgres://postgres@127.0.0.1:5432`) when the
/// suite runs on SQLite: for the tests of a cluster on one database.
pub(crate) async fn fresh() -> Arc<TestDatabase> {
    let server = server_url().unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432".to_owned());
    create(server).await
}

async fn create(server: String) -> Arc<TestDatabase> {
    let name = format!("updraft_test_{}", hex::encode(rand::random::<[u8; 8]>()));
    let mut admin = sqlx::PgConnection::connect(&format!("{}/postgres", server.trim_end_matches('/'))).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8'")))
        .execute(&mut admin)
        .await
        .unwrap();
    Arc::new(TestDatabase { server, name })
}

/// A database made for one data directory.
#[derive(Debug)]
pub(crate) struct TestDatabase {
    server: String,
    name: String,
}

impl TestDatabase {
    pub(crate) fn url(&self) -> String {
        format!("{}/{}", self.server.trim_end_matches('/'), self.name)
    }
}

/// Databases by data directory: those in use, and those kept for a restart.
fn registry() -> &'static Mutex<HashMap<PathBuf, std::sync::Weak<TestDatabase>>> {
    static DATABASES: std::sync::OnceLock<Mutex<HashMap<PathBuf, std::sync::Weak<TestDatabase>>>> =
        std::sync::OnceLock::new();
    DATABASES.get_or_init(Default::default)
}

fn kept() -> &'static Mutex<Vec<Arc<TestDatabase>>> {
    static KEPT: std::sync::OnceLock<Mutex<Vec<Arc<TestDatabase>>>> = std::sync::OnceLock::new();
    KEPT.get_or_init(Default::default)
}

/// The database of `data_dir` (made now if it has none yet), or `None` when the suite runs on SQLite.
pub(crate) async fn for_data_dir(data_dir: &Path) -> Option<Arc<TestDatabase>> {
    let server = server_url()?;
    if let Some(database) = registry().lock().unwrap().get(data_dir).and_then(std::sync::Weak::upgrade) {
        return Some(database);
    }
    let database = create(server).await;
    registry().lock().unwrap().insert(data_dir.to_owned(), Arc::downgrade(&database));
    Some(database)
}

/// Keeps the database for the rest of the run: a server or binary may start on its directory again.
pub(crate) fn keep(database: Arc<TestDatabase>) {
    kept().lock().unwrap().push(database);
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        // Dropped from async code: the drop runs on a thread of its own, with a runtime of its own.
        let dropping = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let url = format!("{}/postgres", server.trim_end_matches('/'));
                if let Ok(mut admin) = sqlx::PgConnection::connect(&url).await {
                    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&mut admin).await;
                }
            });
        });
        let _ = dropping.join();
    }
}
