//! A throwaway PostgreSQL database for one test, and the store's `objects` table in it.
//!
//! The server is `UPDRAFT_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/postgres`, trust auth). The
//! database gets a random name, an ICU collation that does not order by code point when the server has ICU (so
//! that a comparison missing `COLLATE "C"` shows), and is dropped when the guard is, also when the test panics.

use sqlx::{AssertSqlSafe, Connection, postgres::PgConnection};

/// The store's table, plus `n`: the generator's row number, which the tests order ties by.
pub(crate) const OBJECTS: &str = "CREATE TABLE objects (
    backend TEXT NOT NULL, object_type TEXT NOT NULL, id TEXT NOT NULL,
    doc JSONB NOT NULL,
    created_ms BIGINT NOT NULL, updated_ms BIGINT NOT NULL,
    acl JSONB NOT NULL, public_read BOOLEAN NOT NULL DEFAULT false,
    parent_type TEXT, parent_id TEXT,
    n BIGINT NOT NULL,
    PRIMARY KEY (backend, object_type, id))";

fn server_url() -> String {
    std::env::var("UPDRAFT_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Drops the database when dropped.
pub(crate) struct TestDb {
    name: String,
    pub(crate) url: String,
}

impl TestDb {
    pub(crate) async fn create() -> TestDb {
        let server = server_url();
        let mut admin = PgConnection::connect(&server).await.expect("PostgreSQL must run for these tests");
        let name = format!("updraft_query_test_{:016x}", rand_u64());
        let icu =
            format!("CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER icu ICU_LOCALE 'en-US'");
        if sqlx::query(AssertSqlSafe(icu)).execute(&mut admin).await.is_err() {
            let plain = format!("CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8'");
            sqlx::query(AssertSqlSafe(plain)).execute(&mut admin).await.unwrap();
        }
        let (base, _) = server.rsplit_once('/').expect("the URL names a database");
        TestDb { url: format!("{base}/{name}"), name }
    }

    pub(crate) async fn connect(&self) -> PgConnection {
        let mut conn = PgConnection::connect(&self.url).await.unwrap();
        sqlx::query(OBJECTS).execute(&mut conn).await.unwrap();
        conn
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Its own thread and runtime: the guard may drop inside another runtime, or while unwinding from a panic.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&server_url()).await?;
                let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                sqlx::query(AssertSqlSafe(drop)).execute(&mut admin).await.map(|_| ())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop the test database {}: {dropped:?}", self.name);
        }
    }
}

/// Random enough for a database name, without a dependency: the std hasher's random keys.
fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}
