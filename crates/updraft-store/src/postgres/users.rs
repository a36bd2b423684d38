//! Users in PostgreSQL: documents in `objects`, password hashes in `passwords`.

use serde_json::{Map, Value};
use updraft_core::ids::ObjectId;

use super::changes::{self, Recorded};
use super::tenants::revoke_user_tokens;
use super::{PostgresStore, announce, insert_doc, now_ms, parse_doc, update_in};
use crate::document::new_document;
use crate::{Access, Acl, Author, BoxFuture, ChangeEvent, Collection, NewPassword, Patch, StoreError, USERS, Users};

impl Users for PostgresStore {
    fn insert_user<'a>(
        &'a self,
        backend: &'a str,
        properties: Map<String, Value>,
        password_hash: &'a str,
        author: Author<'a>,
        acl: Acl,
    ) -> BoxFuture<'a, Result<Value, StoreError>> {
        Box::pin(async move {
            let at = Collection { backend, object_type: USERS };
            let id = ObjectId::generate();
            let now = now_ms();
            let doc = new_document(at, id, properties, author, now);
            // A user is the creator of itself, whoever signed it up.
            let acl = acl.resolve_creator(Some(&id.to_string()));
            let mut tx = self.pool.begin().await?;
            let text = insert_doc(&mut tx, at, id, &doc, now, &acl, None).await?;
            let id = id.to_string();
            sqlx::query("INSERT INTO passwords (backend, user_id, hash) VALUES ($1, $2, $3)")
                .bind(backend)
                .bind(&id)
                .bind(password_hash)
                .execute(&mut *tx)
                .await?;
            let change = Recorded {
                backend,
                object_type: USERS,
                id: &id,
                event: ChangeEvent::Create,
                doc: &text,
                acl: &acl,
                inherited: None,
                author,
            };
            let seq = changes::record(&mut tx, change).await?;
            tx.commit().await?;
            announce(&self.committed, seq);
            Ok(Value::Object(doc))
        })
    }

    fn update_user<'a>(
        &'a self,
        backend: &'a str,
        user_id: ObjectId,
        patch: Patch,
        password: Option<NewPassword<'a>>,
        author: Author<'a>,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<Option<Value>, StoreError>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            let at = Collection { backend, object_type: USERS };
            let Some((updated, seq)) = update_in(&mut tx, at, user_id, patch, author, access).await? else {
                return Ok(None);
            };
            let user = user_id.to_string();
            if let Some(password) = password {
                sqlx::query(
                    "INSERT INTO passwords (backend, user_id, hash) VALUES ($1, $2, $3)
                     ON CONFLICT (backend, user_id) DO UPDATE SET hash = EXCLUDED.hash",
                )
                .bind(backend)
                .bind(&user)
                .bind(password.hash)
                .execute(&mut *tx)
                .await?;
                // Whoever knew the old password may hold a session: they all end with it, but the caller's.
                revoke_user_tokens(&mut tx, backend, &user, password.keep_token).await?;
            }
            tx.commit().await?;
            announce(&self.committed, seq);
            Ok(Some(updated))
        })
    }

    fn login<'a>(
        &'a self,
        backend: &'a str,
        username: &'a str,
    ) -> BoxFuture<'a, Result<Option<(Value, String)>, StoreError>> {
        Box::pin(async move {
            // Uses the unique index on (backend, username).
            let row: Option<(Value, String)> = sqlx::query_as(
                "SELECT o.doc, p.hash FROM objects o
                 JOIN passwords p ON p.backend = o.backend AND p.user_id = o.id
                 WHERE o.backend = $1 AND o.object_type = 'users' AND o.doc ->> 'username' = $2",
            )
            .bind(backend)
            .bind(username)
            .fetch_optional(&self.pool)
            .await?;
            row.map(|(doc, hash)| Ok((Value::Object(parse_doc(doc)?), hash))).transpose()
        })
    }
}
