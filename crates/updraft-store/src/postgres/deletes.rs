//! Deleting an object in PostgreSQL with what goes with it: its rows in other tables, and the objects whose
//! cascading refs point at it, each deletion a change of its own.

use serde_json::Value;

use super::{Current, CurrentRow, changes, schemas, tenants};
use crate::{Author, ChangeEvent, Collection, StoreError, USERGROUPS, USERS};

/// What goes with a deleted object of these types: a user's password, memberships and tokens, a group's
/// memberships and member ACL.
const CASCADES: [(&str, &str); 5] = [
    (USERS, "DELETE FROM passwords WHERE backend = $1 AND user_id = $2"),
    (USERS, "DELETE FROM members WHERE backend = $1 AND user_id = $2"),
    (USERS, tenants::REVOKE_USER_TOKENS),
    (USERGROUPS, "DELETE FROM members WHERE backend = $1 AND group_id = $2"),
    (USERGROUPS, "DELETE FROM member_acls WHERE backend = $1 AND group_id = $2"),
];

/// Deletes an object with what goes with it (as the SQLite store does: `CASCADES`, then the objects whose
/// cascading refs point at it, each deletion a change of its own, each object taken once).
pub(super) async fn delete_with_dependents(
    tx: &mut sqlx::PgConnection,
    at: Collection<'_>,
    id: String,
    row: Current,
    author: Author<'_>,
) -> Result<i64, StoreError> {
    let mut gone = vec![(at.object_type.to_owned(), id, row)];
    let mut next = 0;
    while next < gone.len() {
        let (object_type, id) = (gone[next].0.clone(), gone[next].1.clone());
        next += 1;
        let rules: Vec<(String, String)> =
            sqlx::query_as("SELECT object_type, property FROM ref_cascades WHERE backend = $1 AND target_type = $2")
                .bind(at.backend)
                .bind(&object_type)
                .fetch_all(&mut *tx)
                .await?;
        for (referring_type, property) in rules {
            // The expression matches the cascade's index (`schemas::ref_id`).
            let sql = format!(
                "SELECT o.id, o.doc, o.updated_ms, o.acl, parent.acl FROM objects AS o
                 LEFT JOIN objects AS parent
                   ON parent.backend = o.backend AND parent.object_type = o.parent_type AND parent.id = o.parent_id
                 WHERE o.backend = $1 AND o.object_type = $2 AND {} = $3 FOR UPDATE OF o",
                schemas::ref_id("o.doc", &property)?
            );
            let rows: Vec<CurrentRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(at.backend)
                .bind(&referring_type)
                .bind(&id)
                .fetch_all(&mut *tx)
                .await?;
            for (child, doc, updated_ms, acl, inherited) in rows {
                if gone.iter().any(|(t, i, _)| *t == referring_type && *i == child) {
                    continue;
                }
                gone.push((referring_type.clone(), child, Current::of(doc, updated_ms, acl, inherited)?));
            }
        }
    }
    let mut latest = 0;
    for (object_type, id, row) in gone {
        sqlx::query("DELETE FROM objects WHERE backend = $1 AND object_type = $2 AND id = $3")
            .bind(at.backend)
            .bind(&object_type)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        for (cascade_type, sql) in CASCADES {
            if object_type == cascade_type {
                sqlx::query(sql).bind(at.backend).bind(&id).execute(&mut *tx).await?;
            }
        }
        let text = Value::Object(row.doc).to_string();
        let change = changes::Recorded {
            backend: at.backend,
            object_type: &object_type,
            id: &id,
            event: ChangeEvent::Delete,
            doc: &text,
            acl: &row.acl,
            inherited: row.inherited.as_ref(),
            author,
        };
        latest = latest.max(changes::record(tx, change).await?);
    }
    Ok(latest)
}
