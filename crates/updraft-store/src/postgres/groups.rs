//! Usergroup membership in PostgreSQL.

use serde_json::Value;
use updraft_core::ids::ObjectId;

use super::params::{Param, Params};
use super::{PostgresStore, acl_json, now_ms, parse_acl, parse_doc, readable};
use crate::{Access, Acl, AclChange, BoxFuture, Groups, Page, StoreError};

impl Groups for PostgresStore {
    fn add_member<'a>(
        &'a self,
        backend: &'a str,
        group: ObjectId,
        user: ObjectId,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let res = sqlx::query(
                "INSERT INTO members (backend, group_id, user_id, added_ms) VALUES ($1, $2, $3, $4)
                 ON CONFLICT DO NOTHING",
            )
            .bind(backend)
            .bind(group.to_string())
            .bind(user.to_string())
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
            Ok(res.rows_affected() == 1)
        })
    }

    fn remove_member<'a>(
        &'a self,
        backend: &'a str,
        group: ObjectId,
        user: ObjectId,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let res = sqlx::query("DELETE FROM members WHERE backend = $1 AND group_id = $2 AND user_id = $3")
                .bind(backend)
                .bind(group.to_string())
                .bind(user.to_string())
                .execute(&self.pool)
                .await?;
            Ok(res.rows_affected() == 1)
        })
    }

    fn members<'a>(
        &'a self,
        backend: &'a str,
        group: ObjectId,
        page: Page,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<Vec<Value>, StoreError>> {
        Box::pin(async move {
            // A member list is a list of users: each one only if the caller may read it, like any list.
            let mut params = Params::new(vec![
                Param::Text(backend.to_owned()),
                Param::Text(group.to_string()),
                Param::Int(i64::from(page.limit)),
                Param::Int(i64::from(page.offset)),
            ]);
            let visible = readable(access, &mut params);
            let sql = format!(
                "SELECT objects.doc FROM members m
                 JOIN objects ON objects.backend = m.backend AND objects.object_type = 'users' AND objects.id = m.user_id
                 WHERE m.backend = $1 AND m.group_id = $2 AND {visible}
                 ORDER BY m.added_ms, m.user_id LIMIT $3 OFFSET $4"
            );
            let rows: Vec<(Value,)> = params.query_as(&sql).fetch_all(&self.pool).await?;
            rows.into_iter().map(|(doc,)| parse_doc(doc).map(Value::Object)).collect()
        })
    }

    fn count_members<'a>(
        &'a self,
        backend: &'a str,
        group: ObjectId,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let mut params = Params::new(vec![Param::Text(backend.to_owned()), Param::Text(group.to_string())]);
            let visible = readable(access, &mut params);
            let sql = format!(
                "SELECT count(*) FROM members m
                 JOIN objects ON objects.backend = m.backend AND objects.object_type = 'users' AND objects.id = m.user_id
                 WHERE m.backend = $1 AND m.group_id = $2 AND {visible}"
            );
            let (n,): (i64,) = params.query_as(&sql).fetch_one(&self.pool).await?;
            Ok(n as u64)
        })
    }

    fn groups_of<'a>(&'a self, backend: &'a str, user: &'a str) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        Box::pin(async move {
            let rows: Vec<(String,)> =
                sqlx::query_as("SELECT group_id FROM members WHERE backend = $1 AND user_id = $2 ORDER BY group_id")
                    .bind(backend)
                    .bind(user)
                    .fetch_all(&self.pool)
                    .await?;
            Ok(rows.into_iter().map(|(id,)| id).collect())
        })
    }

    fn member_acl<'a>(&'a self, backend: &'a str, group: ObjectId) -> BoxFuture<'a, Result<Option<Acl>, StoreError>> {
        Box::pin(async move {
            let row: Option<(Value,)> =
                sqlx::query_as("SELECT acl FROM member_acls WHERE backend = $1 AND group_id = $2")
                    .bind(backend)
                    .bind(group.to_string())
                    .fetch_optional(&self.pool)
                    .await?;
            Ok(row.map(|(acl,)| parse_acl(&acl)))
        })
    }

    fn change_member_acl<'a>(
        &'a self,
        backend: &'a str,
        group: ObjectId,
        change: AclChange,
        default: Acl,
    ) -> BoxFuture<'a, Result<Acl, StoreError>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            // Nodes changing one group's rules take turns, even while it has none (no row to lock yet).
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('member_acl:' || $1 || ':' || $2, 0))")
                .bind(backend)
                .bind(group.to_string())
                .execute(&mut *tx)
                .await?;
            let row: Option<(Value,)> =
                sqlx::query_as("SELECT acl FROM member_acls WHERE backend = $1 AND group_id = $2")
                    .bind(backend)
                    .bind(group.to_string())
                    .fetch_optional(&mut *tx)
                    .await?;
            let mut acl = row.map_or(default, |(acl,)| parse_acl(&acl));
            change.apply(&mut acl);
            sqlx::query(
                "INSERT INTO member_acls (backend, group_id, acl) VALUES ($1, $2, $3)
                 ON CONFLICT (backend, group_id) DO UPDATE SET acl = EXCLUDED.acl",
            )
            .bind(backend)
            .bind(group.to_string())
            .bind(acl_json(&acl))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(acl)
        })
    }
}
