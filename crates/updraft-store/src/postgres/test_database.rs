//! A database of its own for each test of the PostgreSQL store, on the test PostgreSQL (`UPDRAFT_TEST_POSTGRES`,
//! else the machine's at 127.0.0.1:5432), dropped when the guard goes, whatever the test came to.

use crate::{PostgresOptions, PostgresStore};

pub(crate) struct TestDatabase {
    server: String,
    name: String,
}

impl TestDatabase {
    pub(crate) async fn create() -> TestDatabase {
        let server = std::env::var("UPDRAFT_TEST_POSTGRES")
            .ok()
            .filter(|it| !it.is_empty())
            .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432".to_owned());
        let server = server.trim_end_matches('/').to_owned();
        let name = format!("updraft_store_test_{}", hex::encode(rand::random::<[u8; 8]>()));
        let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&format!("{server}/postgres")).await.unwrap();
        let create = format!("CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8'");
        sqlx::query(sqlx::AssertSqlSafe(create)).execute(&mut admin).await.unwrap();
        TestDatabase { server, name }
    }

    pub(crate) fn url(&self) -> String {
        format!("{}/{}", self.server, self.name)
    }

    /// A store on this database: one node of a cluster.
    pub(crate) async fn open(&self) -> PostgresStore {
        let webhook_lease = std::time::Duration::from_secs(30);
        PostgresStore::open(&PostgresOptions { url: self.url(), max_connections: 4, webhook_lease }).await.unwrap()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        // Dropped from async code too: the drop runs on a thread of its own, with a runtime of its own.
        let dropping = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                if let Ok(mut admin) =
                    <sqlx::PgConnection as sqlx::Connection>::connect(&format!("{server}/postgres")).await
                {
                    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&mut admin).await;
                }
            });
        });
        let _ = dropping.join();
    }
}
