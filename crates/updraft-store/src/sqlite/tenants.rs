//! Apps, backends and tokens in SQLite.

use updraft_core::ids::ObjectId;

use super::{SqliteStore, now_ms};
use crate::backends::{BACKEND_COLUMNS, BackendRow, ENVIRONMENTS, backend_from, new_backend};
use crate::{AccessDefaults, App, Backend, BoxFuture, StoreError, Tenants, TokenGrant};

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
    fn create_app<'a>(
        &'a self,
        name: &'a str,
        access: &'a (dyn Fn(&str) -> AccessDefaults + Sync),
    ) -> BoxFuture<'a, Result<App, StoreError>> {
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
                let backend = new_backend(&app.id, environment, access(environment));
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO backends ({BACKEND_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
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
            let backends: Vec<(String,)> =
                sqlx::query_as("SELECT id FROM backends WHERE app_id = ?").bind(id).fetch_all(&mut *tx).await?;
            for (backend,) in &backends {
                revoke_backend_tokens(&mut tx, backend).await?;
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

    fn set_access_defaults<'a>(
        &'a self,
        backend: &'a str,
        access: AccessDefaults,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let changed = sqlx::query("UPDATE backends SET access_defaults = ? WHERE id = ?")
                .bind(access.as_str())
                .bind(backend)
                .execute(&self.writer)
                .await?;
            if let Some(cached) = self.backends.write().expect("backend cache").get_mut(backend) {
                cached.access = access;
            }
            Ok(changed.rows_affected() == 1)
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
            // Every signed-in request asks: a primary key lookup, run on this task (see `reads`).
            let now = now_ms();
            self.hot.inline(|conn| {
                let mut statement =
                    conn.prepare_cached("SELECT subject, expires_ms FROM tokens WHERE hash = ? AND expires_ms > ?")?;
                let mut rows = statement.query(rusqlite::params![hash, now])?;
                match rows.next()? {
                    Some(row) => Ok(Some(TokenGrant { subject: row.get(0)?, expires_ms: row.get(1)? })),
                    None => Ok(None),
                }
            })
        })
    }

    fn revoke_token<'a>(&'a self, hash: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            // The row count is the arbiter between concurrent uses: only one DELETE finds the row.
            let deleted = sqlx::query("DELETE FROM tokens WHERE hash = ?").bind(hash).execute(&self.writer).await?;
            Ok(deleted.rows_affected() == 1)
        })
    }
}

/// Deletes the tokens of user `?2` of backend `?1` (subjects as `TokenGrant` says); one of `CASCADES`.
pub(super) const REVOKE_USER_TOKENS: &str =
    "DELETE FROM tokens WHERE subject IN ('user:' || ?1 || ':' || ?2, 'refresh:' || ?1 || ':' || ?2)";

/// Deletes a user's tokens but `keep` (a hash), within the transaction that changes its password.
pub(super) async fn revoke_user_tokens(
    tx: &mut sqlx::SqliteConnection,
    backend: &str,
    user_id: &str,
    keep: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "DELETE FROM tokens WHERE subject IN ('user:' || ?1 || ':' || ?2, 'refresh:' || ?1 || ':' || ?2)
         AND hash IS NOT ?3",
    )
    .bind(backend)
    .bind(user_id)
    .bind(keep)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Deletes the tokens of every user of `backend` (the backend goes, or all its users do).
pub(super) async fn revoke_backend_tokens(tx: &mut sqlx::SqliteConnection, backend: &str) -> Result<(), StoreError> {
    for kind in ["user", "refresh"] {
        // A range on the subject index: `;` follows `:`.
        sqlx::query("DELETE FROM tokens WHERE subject > ? AND subject < ?")
            .bind(format!("{kind}:{backend}:"))
            .bind(format!("{kind}:{backend};"))
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::{Value, json};

    use super::*;
    use crate::{Access, Acl, Author, Cascade, Collection, NewPassword, Patch, SchemaRules, Schemas, Store, Users};

    const ALL: Access<'static> = Access::Everything;

    async fn open(dir: &tempfile::TempDir) -> SqliteStore {
        let options = super::super::SqliteOptions { path: dir.path().join("eds.sqlite3"), readers: 2 };
        SqliteStore::open(&options).await.unwrap()
    }

    async fn user(store: &SqliteStore, backend: &str, properties: Value) -> String {
        let properties = properties.as_object().unwrap().clone();
        let user = store.insert_user(backend, properties, "hash", Author::default(), Acl::default()).await.unwrap();
        user["id"].as_str().unwrap().to_owned()
    }

    /// Gives the user an access and a refresh token, named `<name>-access` and `<name>-refresh`.
    async fn sign_in(store: &SqliteStore, backend: &str, user: &str, name: &str) {
        for kind in ["user", "refresh"] {
            let grant = TokenGrant { subject: format!("{kind}:{backend}:{user}"), expires_ms: now_ms() + 60_000 };
            let hash = format!("{name}-{}", if kind == "user" { "access" } else { "refresh" });
            store.save_token(&hash, grant).await.unwrap();
        }
    }

    async fn live(store: &SqliteStore, hashes: &[&str]) -> Vec<bool> {
        let mut live = Vec::new();
        for hash in hashes {
            live.push(store.token(hash).await.unwrap().is_some());
        }
        live
    }

    #[tokio::test]
    async fn finding_6_of_concurrent_revocations_exactly_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(open(&dir).await);
        store
            .save_token("h", TokenGrant { subject: "refresh:b:u".into(), expires_ms: now_ms() + 60_000 })
            .await
            .unwrap();
        let racers: Vec<_> = (0..16)
            .map(|_| {
                tokio::spawn({
                    let store = store.clone();
                    async move { store.revoke_token("h").await.unwrap() }
                })
            })
            .collect();
        let mut won = 0;
        for racer in racers {
            won += usize::from(racer.await.unwrap());
        }
        assert_eq!(won, 1);
        assert!(!store.revoke_token("h").await.unwrap(), "gone");
    }

    #[tokio::test]
    async fn finding_4_a_deleted_user_takes_its_tokens_along_cascades_included() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir).await;
        let (b, other_backend) = ("b1", "b2");
        let ann = user(&store, b, json!({"username": "ann"})).await;
        let bob = user(&store, b, json!({"username": "bob"})).await;
        // The same id in another backend is another user.
        store
            .save_token(
                "elsewhere",
                TokenGrant { subject: format!("user:{other_backend}:{ann}"), expires_ms: now_ms() + 60_000 },
            )
            .await
            .unwrap();
        store
            .save_token("account", TokenGrant { subject: "account".into(), expires_ms: now_ms() + 60_000 })
            .await
            .unwrap();
        sign_in(&store, b, &ann, "ann").await;
        sign_in(&store, b, &bob, "bob").await;

        let users = Collection { backend: b, object_type: crate::USERS };
        store.delete(users, ObjectId::parse(&ann).unwrap(), Author::default(), ALL).await.unwrap().unwrap();
        let hashes = ["ann-access", "ann-refresh", "bob-access", "bob-refresh", "elsewhere", "account"];
        assert_eq!(live(&store, &hashes).await, [false, false, true, true, true, true]);

        // A user that goes because a ref says so (a users schema with `onDelete: deleteObject`).
        let rules = SchemaRules {
            indexed: Vec::new(),
            cascades: vec![Cascade { property: "team".into(), target_type: "objects.teams".into() }],
            searched: Vec::new(),
        };
        store.put_schema(b, crate::USERS, json!({"name": "users"}), &rules).await.unwrap();
        let teams = Collection { backend: b, object_type: "objects.teams" };
        let team = store.insert(teams, Default::default(), Author::default(), Acl::default()).await.unwrap();
        let team_id = team["id"].as_str().unwrap();
        let cid =
            user(&store, b, json!({"username": "cid", "team": {"id": team_id, "objectType": "objects.teams"}})).await;
        sign_in(&store, b, &cid, "cid").await;
        store.delete(teams, ObjectId::parse(team_id).unwrap(), Author::default(), ALL).await.unwrap().unwrap();
        assert_eq!(live(&store, &["cid-access", "cid-refresh", "bob-access"]).await, [false, false, true]);

        // All users go with the users schema.
        assert!(store.delete_schema(b, crate::USERS).await.unwrap());
        assert_eq!(
            live(&store, &["bob-access", "bob-refresh", "elsewhere", "account"]).await,
            [false, false, true, true]
        );
    }

    #[tokio::test]
    async fn finding_4_a_new_password_ends_every_session_but_the_callers() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir).await;
        let ann = user(&store, "b1", json!({"username": "ann"})).await;
        sign_in(&store, "b1", &ann, "laptop").await;
        sign_in(&store, "b1", &ann, "phone").await;
        let id = ObjectId::parse(&ann).unwrap();
        let untouched = Patch::Merge(Default::default());
        store.update_user("b1", id, untouched.clone(), None, Author::default(), ALL).await.unwrap().unwrap();
        assert_eq!(live(&store, &["laptop-access", "phone-access"]).await, [true, true], "no new password, no change");

        let password = NewPassword { hash: "new", keep_token: Some("laptop-access") };
        store.update_user("b1", id, untouched, Some(password), Author::default(), ALL).await.unwrap().unwrap();
        let hashes = ["laptop-access", "laptop-refresh", "phone-access", "phone-refresh"];
        assert_eq!(live(&store, &hashes).await, [true, false, false, false]);
    }

    #[tokio::test]
    async fn a_deleted_app_takes_its_users_tokens_along() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir).await;
        let app = store.create_app("todos", &crate::AccessDefaults::for_environment).await.unwrap();
        let backend = &app.backends[0].id;
        let ann = user(&store, backend, json!({"username": "ann"})).await;
        sign_in(&store, backend, &ann, "ann").await;
        store
            .save_token("account", TokenGrant { subject: "account".into(), expires_ms: now_ms() + 60_000 })
            .await
            .unwrap();
        assert!(store.delete_app(&app.id).await.unwrap());
        assert_eq!(live(&store, &["ann-access", "ann-refresh", "account"]).await, [false, false, true]);
    }
}
