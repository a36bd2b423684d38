//! Apps, backends and tokens in SQLite.

use updraft_core::ids::ObjectId;

use super::{SqliteStore, now_ms};
use crate::{App, Backend, BoxFuture, StoreError, Tenants, TokenGrant};

const ENVIRONMENTS: [&str; 2] = ["development", "production"];

fn secret() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

type BackendRow = (String, String, String, String, String, String);

fn backend_from(row: BackendRow) -> Backend {
    let (id, app_id, environment, master_key, api_key, secret) = row;
    Backend { id, app_id, environment, master_key, api_key, secret }
}

const BACKEND_COLUMNS: &str = "id, app_id, environment, master_key, api_key, secret";

impl SqliteStore {
    async fn load_app(&self, id: &str, name: String) -> Result<App, StoreError> {
        let rows: Vec<BackendRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {BACKEND_COLUMNS} FROM backends WHERE app_id = ? ORDER BY environment"
        )))
        .bind(id)
        .fetch_all(&self.readers)
        .await?;
        Ok(App { id: id.to_owned(), name, backends: rows.into_iter().map(backend_from).collect() })
    }
}

impl Tenants for SqliteStore {
    fn create_app<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<App, StoreError>> {
        Box::pin(async move {
            let app = App { id: ObjectId::generate().to_string(), name: name.to_owned(), backends: Vec::new() };
            let mut tx = self.writer.begin().await?;
            sqlx::query("INSERT INTO apps (id, name, created_ms) VALUES (?, ?, ?)")
                .bind(&app.id)
                .bind(&app.name)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
            let mut backends = Vec::new();
            for environment in ENVIRONMENTS {
                let backend = Backend {
                    id: ObjectId::generate().to_string(),
                    app_id: app.id.clone(),
                    environment: environment.to_owned(),
                    master_key: secret(),
                    api_key: secret(),
                    secret: secret(),
                };
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO backends ({BACKEND_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
                )))
                .bind(&backend.id)
                .bind(&backend.app_id)
                .bind(&backend.environment)
                .bind(&backend.master_key)
                .bind(&backend.api_key)
                .bind(&backend.secret)
                .execute(&mut *tx)
                .await?;
                backends.push(backend);
            }
            tx.commit().await?;
            Ok(App { backends, ..app })
        })
    }

    fn apps(&self) -> BoxFuture<'_, Result<Vec<App>, StoreError>> {
        Box::pin(async move {
            let rows: Vec<(String, String)> =
                sqlx::query_as("SELECT id, name FROM apps ORDER BY created_ms, id").fetch_all(&self.readers).await?;
            let mut apps = Vec::with_capacity(rows.len());
            for (id, name) in rows {
                apps.push(self.load_app(&id, name).await?);
            }
            Ok(apps)
        })
    }

    fn app<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<App>, StoreError>> {
        Box::pin(async move {
            let row: Option<(String,)> =
                sqlx::query_as("SELECT name FROM apps WHERE id = ?").bind(id).fetch_optional(&self.readers).await?;
            match row {
                Some((name,)) => Ok(Some(self.load_app(id, name).await?)),
                None => Ok(None),
            }
        })
    }

    fn delete_app<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut tx = self.writer.begin().await?;
            sqlx::query("DELETE FROM objects WHERE backend IN (SELECT id FROM backends WHERE app_id = ?)")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            // Everything else kept per backend: schemas with their indexes, passwords, memberships.
            let indexes: Vec<(String, String, String)> = sqlx::query_as(
                "SELECT backend, object_type, property FROM property_indexes
                 WHERE backend IN (SELECT id FROM backends WHERE app_id = ?)",
            )
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
            for (backend, object_type, property) in &indexes {
                super::schemas::drop_index(&mut tx, backend, object_type, property).await?;
            }
            let cascading: Vec<(String, String)> = sqlx::query_as(
                "SELECT DISTINCT backend, object_type FROM ref_cascades
                 WHERE backend IN (SELECT id FROM backends WHERE app_id = ?)",
            )
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
            for (backend, object_type) in &cascading {
                super::schemas::drop_cascades(&mut tx, backend, object_type).await?;
            }
            sqlx::query(
                "DELETE FROM webhook_deliveries WHERE webhook_id IN
                 (SELECT id FROM webhooks WHERE backend IN (SELECT id FROM backends WHERE app_id = ?))",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
            for table in ["object_types", "passwords", "members", "member_acls", "webhooks"] {
                let sql = format!("DELETE FROM {table} WHERE backend IN (SELECT id FROM backends WHERE app_id = ?)");
                sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).execute(&mut *tx).await?;
            }
            sqlx::query("DELETE FROM backends WHERE app_id = ?").bind(id).execute(&mut *tx).await?;
            let deleted = sqlx::query("DELETE FROM apps WHERE id = ?").bind(id).execute(&mut *tx).await?;
            tx.commit().await?;
            self.count_webhooks().await?;
            self.forget_schemas();
            self.backends.write().expect("backend cache").retain(|_, backend| backend.app_id != id);
            Ok(deleted.rows_affected() == 1)
        })
    }

    fn backend<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Backend>, StoreError>> {
        Box::pin(async move {
            if let Some(backend) = self.backends.read().expect("backend cache").get(id) {
                return Ok(Some(backend.clone()));
            }
            let row: Option<BackendRow> =
                sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {BACKEND_COLUMNS} FROM backends WHERE id = ?")))
                    .bind(id)
                    .fetch_optional(&self.readers)
                    .await?;
            let backend = row.map(backend_from);
            // Only found backends are cached: unknown ids from clients must not grow the cache.
            if let Some(backend) = &backend {
                self.backends.write().expect("backend cache").insert(id.to_owned(), backend.clone());
            }
            Ok(backend)
        })
    }

    fn save_token<'a>(&'a self, hash: &'a str, grant: TokenGrant) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut tx = self.writer.begin().await?;
            // Expired tokens go when new ones come, so the table stays small.
            sqlx::query("DELETE FROM tokens WHERE expires_ms <= ?").bind(now_ms()).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO tokens (hash, subject, expires_ms) VALUES (?, ?, ?)")
                .bind(hash)
                .bind(&grant.subject)
                .bind(grant.expires_ms)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn token<'a>(&'a self, hash: &'a str) -> BoxFuture<'a, Result<Option<TokenGrant>, StoreError>> {
        Box::pin(async move {
            let row: Option<(String, i64)> =
                sqlx::query_as("SELECT subject, expires_ms FROM tokens WHERE hash = ? AND expires_ms > ?")
                    .bind(hash)
                    .bind(now_ms())
                    .fetch_optional(&self.readers)
                    .await?;
            Ok(row.map(|(subject, expires_ms)| TokenGrant { subject, expires_ms }))
        })
    }

    fn revoke_token<'a>(&'a self, hash: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            sqlx::query("DELETE FROM tokens WHERE hash = ?").bind(hash).execute(&self.writer).await?;
            Ok(())
        })
    }
}
