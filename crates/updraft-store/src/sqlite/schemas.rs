//! Object type schemas in SQLite, and the expression indexes of their `indexed` properties.

use serde_json::Value;

use super::SqliteStore;
use crate::{BoxFuture, Schemas, StoreError};

/// Names that reach DDL text: checked here again, whatever the caller validated.
fn plain(text: &str) -> bool {
    !text.is_empty() && text.len() <= 64 && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

impl Schemas for SqliteStore {
    fn put_schema<'a>(
        &'a self,
        backend: &'a str,
        object_type: &'a str,
        schema: Value,
        indexed: &'a [String],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            if !plain(backend) || !plain(object_type) || indexed.iter().any(|p| !plain(p) || p.contains('.')) {
                return Err(StoreError::Invalid { message: "invalid name in schema".into(), property: None });
            }
            let mut tx = self.writer.begin().await?;
            sqlx::query("INSERT OR REPLACE INTO object_types (backend, name, schema) VALUES (?, ?, ?)")
                .bind(backend)
                .bind(object_type)
                .bind(schema.to_string())
                .execute(&mut *tx)
                .await?;
            for property in indexed {
                // DDL takes no parameters; every name in it passed `plain` above. The leading
                // columns narrow to the collection, the expression matches filters on the property.
                let index = format!("ix_{}_{}_{}", backend, object_type.replace('.', "_"), property);
                let ddl = format!(
                    "CREATE INDEX IF NOT EXISTS \"{index}\" ON objects (backend, object_type, doc ->> '$.{property}')"
                );
                sqlx::query(sqlx::AssertSqlSafe(ddl)).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn schema<'a>(
        &'a self,
        backend: &'a str,
        object_type: &'a str,
    ) -> BoxFuture<'a, Result<Option<Value>, StoreError>> {
        Box::pin(async move {
            let row: Option<(String,)> =
                sqlx::query_as("SELECT schema FROM object_types WHERE backend = ? AND name = ?")
                    .bind(backend)
                    .bind(object_type)
                    .fetch_optional(&self.readers)
                    .await?;
            Ok(row.and_then(|(text,)| serde_json::from_str(&text).ok()))
        })
    }

    fn schemas<'a>(&'a self, backend: &'a str) -> BoxFuture<'a, Result<Vec<Value>, StoreError>> {
        Box::pin(async move {
            let rows: Vec<(String,)> =
                sqlx::query_as("SELECT schema FROM object_types WHERE backend = ? ORDER BY name")
                    .bind(backend)
                    .fetch_all(&self.readers)
                    .await?;
            Ok(rows.iter().filter_map(|(text,)| serde_json::from_str(text).ok()).collect())
        })
    }

    fn delete_schema<'a>(&'a self, backend: &'a str, object_type: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut tx = self.writer.begin().await?;
            let deleted = sqlx::query("DELETE FROM object_types WHERE backend = ? AND name = ?")
                .bind(backend)
                .bind(object_type)
                .execute(&mut *tx)
                .await?;
            if deleted.rows_affected() == 1 {
                sqlx::query("DELETE FROM objects WHERE backend = ? AND object_type = ?")
                    .bind(backend)
                    .bind(object_type)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(deleted.rows_affected() == 1)
        })
    }
}
