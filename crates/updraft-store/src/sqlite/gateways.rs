//! Saved MWS gateways in SQLite (`crate::gateways`).

use serde_json::Value;

use super::{SqliteStore, now_ms};
use crate::{BoxFuture, SavedGateway, SavedGateways, StoreError};

type GatewayRow = (String, Option<String>, String);

fn gateway_from((id, security_token, configuration): GatewayRow) -> Result<SavedGateway, StoreError> {
    let configuration: Value = serde_json::from_str(&configuration)
        .map_err(|_| StoreError::Database(format!("the configuration of gateway {id} is malformed")))?;
    Ok(SavedGateway { id, security_token, configuration })
}

impl SavedGateways for SqliteStore {
    fn saved_gateways(&self) -> BoxFuture<'_, Result<Vec<SavedGateway>, StoreError>> {
        Box::pin(async move {
            let rows: Vec<GatewayRow> =
                sqlx::query_as("SELECT id, security_token, configuration FROM gateways ORDER BY id")
                    .fetch_all(&self.readers)
                    .await?;
            rows.into_iter().map(gateway_from).collect()
        })
    }

    fn saved_gateway<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<SavedGateway>, StoreError>> {
        Box::pin(async move {
            let row: Option<GatewayRow> =
                sqlx::query_as("SELECT id, security_token, configuration FROM gateways WHERE id = ?")
                    .bind(id)
                    .fetch_optional(&self.readers)
                    .await?;
            row.map(gateway_from).transpose()
        })
    }

    fn insert_gateway<'a>(&'a self, gateway: &'a SavedGateway) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let now = now_ms();
            let done = sqlx::query(
                "INSERT INTO gateways (id, security_token, configuration, created_ms, updated_ms)
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            )
            .bind(&gateway.id)
            .bind(&gateway.security_token)
            .bind(gateway.configuration.to_string())
            .bind(now)
            .bind(now)
            .execute(&self.writer)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    fn update_gateway<'a>(&'a self, gateway: &'a SavedGateway) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let done =
                sqlx::query("UPDATE gateways SET security_token = ?, configuration = ?, updated_ms = ? WHERE id = ?")
                    .bind(&gateway.security_token)
                    .bind(gateway.configuration.to_string())
                    .bind(now_ms())
                    .bind(&gateway.id)
                    .execute(&self.writer)
                    .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    fn delete_gateway<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let done = sqlx::query("DELETE FROM gateways WHERE id = ?").bind(id).execute(&self.writer).await?;
            Ok(done.rows_affected() == 1)
        })
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn saved_gateways_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::super::tests::open(&dir).await;
        crate::gateways::check_saved_gateways(&store).await;
    }
}
