//! Usergroup membership in SQLite.

use serde_json::Value;
use updraft_core::ids::ObjectId;

use super::{SqliteStore, acl_json, now_ms, parse_acl, parse_doc, readable};
use crate::{Access, Acl, AclChange, BoxFuture, Groups, Page, StoreError};

impl Groups for SqliteStore {
    fn add_member<'a>(
        &'a self,
        backend: &'a str,
        group: ObjectId,
        user: ObjectId,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let res =
                sqlx::query("INSERT OR IGNORE INTO members (backend, group_id, user_id, added_ms) VALUES (?, ?, ?, ?)")
                    .bind(backend)
                    .bind(group.to_string())
                    .bind(user.to_string())
                    .bind(now_ms())
                    .execute(&self.writer)
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
            let res = sqlx::query("DELETE FROM members WHERE backend = ? AND group_id = ? AND user_id = ?")
                .bind(backend)
                .bind(group.to_string())
                .bind(user.to_string())
                .execute(&self.writer)
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
            let (visible, binds) = readable(access);
            let sql = format!(
                "SELECT json(objects.doc) FROM members m
                 JOIN objects ON objects.backend = m.backend AND objects.object_type = 'users' AND objects.id = m.user_id
                 WHERE m.backend = ? AND m.group_id = ? AND {visible}
                 ORDER BY m.added_ms, m.user_id LIMIT ? OFFSET ?"
            );
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(backend).bind(group.to_string());
            for subject in &binds {
                query = query.bind(subject);
            }
            let rows: Vec<(String,)> = query.bind(page.limit).bind(page.offset).fetch_all(&self.readers).await?;
            rows.iter().map(|(text,)| parse_doc(text).map(Value::Object)).collect()
        })
    }

    fn count_members<'a>(
        &'a self,
        backend: &'a str,
        group: ObjectId,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let (visible, binds) = readable(access);
            let sql = format!(
                "SELECT count(*) FROM members m
                 JOIN objects ON objects.backend = m.backend AND objects.object_type = 'users' AND objects.id = m.user_id
                 WHERE m.backend = ? AND m.group_id = ? AND {visible}"
            );
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(backend).bind(group.to_string());
            for subject in &binds {
                query = query.bind(subject);
            }
            let (n,): (i64,) = query.fetch_one(&self.readers).await?;
            Ok(n as u64)
        })
    }

    fn groups_of<'a>(&'a self, backend: &'a str, user: &'a str) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        Box::pin(async move {
            // Every signed-in request asks: one range of `members_by_user`, run on this task (see `reads`).
            self.hot.inline(|conn| {
                let mut statement = conn.prepare_cached(
                    "SELECT group_id FROM members WHERE backend = ? AND user_id = ? ORDER BY group_id",
                )?;
                let rows = statement.query_map([backend, user], |row| row.get(0))?;
                rows.collect()
            })
        })
    }

    fn member_acl<'a>(&'a self, backend: &'a str, group: ObjectId) -> BoxFuture<'a, Result<Option<Acl>, StoreError>> {
        Box::pin(async move {
            let row: Option<(String,)> =
                sqlx::query_as("SELECT acl FROM member_acls WHERE backend = ? AND group_id = ?")
                    .bind(backend)
                    .bind(group.to_string())
                    .fetch_optional(&self.readers)
                    .await?;
            Ok(row.map(|(text,)| parse_acl(&text)))
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
            // On the writer: no other change slips between the read and the write.
            let mut tx = self.writer.begin().await?;
            let row: Option<(String,)> =
                sqlx::query_as("SELECT acl FROM member_acls WHERE backend = ? AND group_id = ?")
                    .bind(backend)
                    .bind(group.to_string())
                    .fetch_optional(&mut *tx)
                    .await?;
            let mut acl = row.map_or(default, |(text,)| parse_acl(&text));
            change.apply(&mut acl);
            sqlx::query("INSERT OR REPLACE INTO member_acls (backend, group_id, acl) VALUES (?, ?, ?)")
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
