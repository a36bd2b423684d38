//! Apps, backends and tokens in PostgreSQL.

use updraft_core::ids::ObjectId;

use super::{PostgresStore, now_ms};
use crate::backends::{BACKEND_COLUMNS, BackendRow, ENVIRONMENTS, backend_from, new_backend};
use crate::{AccessDefaults, App, Backend, BoxFuture, StoreError, Tenants, TokenGrant};

impl PostgresStore {
    async fn load_app(&self, id: &str, name: String) -> Result<App, StoreError> {
        let rows: Vec<BackendRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {BACKEND_COLUMNS} FROM backends WHERE app_id = $1 ORDER BY environment"
        )))
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(App { id: id.to_owned(), name, backends: rows.into_iter().map(backend_from).collect() })
    }
}

impl Tenants for PostgresStore {
    fn create_app<'a>(
        &'a self,
        name: &'a str,
        access: &'a (dyn Fn(&str) -> AccessDefaults + Sync),
    ) -> BoxFuture<'a, Result<App, StoreError>> {
        Box::pin(async move {
            let app = App { id: ObjectId::generate().to_string(), name: name.to_owned(), backends: Vec::new() };
            let mut tx = self.pool.begin().await?;
            sqlx::query("INSERT INTO apps (id, name, created_ms) VALUES ($1, $2, $3)")
                .bind(&app.id)
                .bind(&app.name)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
            let mut backends = Vec::new();
            for environment in ENVIRONMENTS {
                let backend = new_backend(&app.id, environment, access(environment));
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO backends ({BACKEND_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                )))
                .bind(&backend.id)
                .bind(&backend.app_id)
                .bind(&backend.environment)
                .bind(&backend.master_key)
                .bind(&backend.api_key)
                .bind(&backend.secret)
                .bind(backend.access.as_str())
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
                sqlx::query_as("SELECT id, name FROM apps ORDER BY created_ms, id").fetch_all(&self.pool).await?;
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
                sqlx::query_as("SELECT name FROM apps WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
            match row {
                Some((name,)) => Ok(Some(self.load_app(id, name).await?)),
                None => Ok(None),
            }
        })
    }

    fn delete_app<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            let backends: Vec<(String,)> =
                sqlx::query_as("SELECT id FROM backends WHERE app_id = $1").bind(id).fetch_all(&mut *tx).await?;
            for (backend,) in &backends {
                super::schemas::forget_backend(&mut tx, backend).await?;
                revoke_backend_tokens(&mut tx, backend).await?;
            }
            sqlx::query("DELETE FROM backends WHERE app_id = $1").bind(id).execute(&mut *tx).await?;
            let deleted = sqlx::query("DELETE FROM apps WHERE id = $1").bind(id).execute(&mut *tx).await?;
            tx.commit().await?;
            self.catalog.forget();
            Ok(deleted.rows_affected() == 1)
        })
    }

    fn backend<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Backend>, StoreError>> {
        Box::pin(async move {
            let miss = match self.catalog.backend(id) {
                Ok(backend) => return Ok(Some(backend)),
                Err(miss) => miss,
            };
            let row: Option<BackendRow> =
                sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {BACKEND_COLUMNS} FROM backends WHERE id = $1")))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
            let backend = row.map(backend_from);
            if let Some(backend) = &backend {
                self.catalog.keep_backend(miss, backend);
            }
            Ok(backend)
        })
    }

    fn set_access_defaults<'a>(
        &'a self,
        backend: &'a str,
        access: AccessDefaults,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let changed = sqlx::query("UPDATE backends SET access_defaults = $1 WHERE id = $2")
                .bind(access.as_str())
                .bind(backend)
                .execute(&self.pool)
                .await?;
            self.catalog.forget();
            Ok(changed.rows_affected() == 1)
        })
    }

    fn save_token<'a>(&'a self, hash: &'a str, grant: TokenGrant) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            // Expired tokens go when new ones come, so the table stays small.
            sqlx::query("DELETE FROM tokens WHERE expires_ms <= $1").bind(now_ms()).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO tokens (hash, subject, expires_ms) VALUES ($1, $2, $3)")
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
                sqlx::query_as("SELECT subject, expires_ms FROM tokens WHERE hash = $1 AND expires_ms > $2")
                    .bind(hash)
                    .bind(now_ms())
                    .fetch_optional(&self.pool)
                    .await?;
            Ok(row.map(|(subject, expires_ms)| TokenGrant { subject, expires_ms }))
        })
    }

    fn revoke_token<'a>(&'a self, hash: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            // The row count is the arbiter between concurrent uses, on any node: only one DELETE finds the row.
            let deleted = sqlx::query("DELETE FROM tokens WHERE hash = $1").bind(hash).execute(&self.pool).await?;
            Ok(deleted.rows_affected() == 1)
        })
    }
}

/// Deletes the tokens of user `$2` of backend `$1` (subjects as `TokenGrant` says); one of `CASCADES`.
pub(super) const REVOKE_USER_TOKENS: &str =
    "DELETE FROM tokens WHERE subject IN ('user:' || $1 || ':' || $2, 'refresh:' || $1 || ':' || $2)";

/// Deletes a user's tokens but `keep` (a hash), within the transaction that changes its password.
pub(super) async fn revoke_user_tokens(
    tx: &mut sqlx::PgConnection,
    backend: &str,
    user_id: &str,
    keep: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "DELETE FROM tokens WHERE subject IN ('user:' || $1 || ':' || $2, 'refresh:' || $1 || ':' || $2)
         AND hash IS DISTINCT FROM $3",
    )
    .bind(backend)
    .bind(user_id)
    .bind(keep)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Deletes the tokens of every user of `backend` (the backend goes, or all its users do).
pub(super) async fn revoke_backend_tokens(tx: &mut sqlx::PgConnection, backend: &str) -> Result<(), StoreError> {
    for kind in ["user", "refresh"] {
        // A range on the subject index (byte order): `;` follows `:`.
        sqlx::query("DELETE FROM tokens WHERE subject COLLATE \"C\" > $1 AND subject COLLATE \"C\" < $2")
            .bind(format!("{kind}:{backend}:"))
            .bind(format!("{kind}:{backend};"))
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}
