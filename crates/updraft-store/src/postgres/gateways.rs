//! Saved MWS gateways in PostgreSQL (`crate::gateways`), shared by every node: each change notifies
//! `updraft_gateways` at its commit (`migrations-postgres/0008_gateways.sql`), and the change follower
//! (`changes.rs`) relays it to [`SavedGateways::gateway_changes`].

use serde_json::Value;
use tokio::sync::broadcast;

use super::{PostgresStore, now_ms};
use crate::{BoxFuture, GatewayChange, SavedGateway, SavedGateways, StoreError};

type GatewayRow = (String, Option<String>, Value);

fn gateway_from((id, security_token, configuration): GatewayRow) -> SavedGateway {
    SavedGateway { id, security_token, configuration }
}

impl SavedGateways for PostgresStore {
    fn saved_gateways(&self) -> BoxFuture<'_, Result<Vec<SavedGateway>, StoreError>> {
        Box::pin(async move {
            let rows: Vec<GatewayRow> =
                sqlx::query_as("SELECT id, security_token, configuration FROM gateways ORDER BY id")
                    .fetch_all(&self.pool)
                    .await?;
            Ok(rows.into_iter().map(gateway_from).collect())
        })
    }

    fn saved_gateway<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<SavedGateway>, StoreError>> {
        Box::pin(async move {
            let row: Option<GatewayRow> =
                sqlx::query_as("SELECT id, security_token, configuration FROM gateways WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
            Ok(row.map(gateway_from))
        })
    }

    fn insert_gateway<'a>(&'a self, gateway: &'a SavedGateway) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let now = now_ms();
            let done = sqlx::query(
                "INSERT INTO gateways (id, security_token, configuration, created_ms, updated_ms)
                 VALUES ($1, $2, $3, $4, $4) ON CONFLICT (id) DO NOTHING",
            )
            .bind(&gateway.id)
            .bind(&gateway.security_token)
            .bind(&gateway.configuration)
            .bind(now)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    fn update_gateway<'a>(&'a self, gateway: &'a SavedGateway) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let done = sqlx::query(
                "UPDATE gateways SET security_token = $1, configuration = $2, updated_ms = $3 WHERE id = $4",
            )
            .bind(&gateway.security_token)
            .bind(&gateway.configuration)
            .bind(now_ms())
            .bind(&gateway.id)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    fn delete_gateway<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let done = sqlx::query("DELETE FROM gateways WHERE id = $1").bind(id).execute(&self.pool).await?;
            Ok(done.rows_affected() == 1)
        })
    }

    fn gateway_changes(&self) -> Option<broadcast::Receiver<GatewayChange>> {
        Some(self.gateway_changes.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::test_database::TestDatabase;
    use crate::{GatewayChange, SavedGateway, SavedGateways};

    #[tokio::test]
    async fn saved_gateways_are_kept() {
        let database = TestDatabase::create().await;
        crate::gateways::check_saved_gateways(&database.open().await).await;
    }

    /// A node hears of the gateways another node saves, changes and deletes.
    #[tokio::test]
    async fn another_node_hears_of_each_change() {
        let database = TestDatabase::create().await;
        let (one, other) = (database.open().await, database.open().await);
        let mut heard = other.gateway_changes().unwrap();
        // The follower tells `Any` as it starts listening, before it says it follows.
        for _ in 0..1000 {
            if crate::Changes::following(&other) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let gateway = SavedGateway { id: "g1".into(), security_token: None, configuration: serde_json::json!({}) };
        one.insert_gateway(&gateway).await.unwrap();
        one.update_gateway(&gateway).await.unwrap();
        one.delete_gateway("g1").await.unwrap();
        let mut changes = Vec::new();
        while changes.len() < 3 {
            match tokio::time::timeout(Duration::from_secs(10), heard.recv()).await.unwrap().unwrap() {
                GatewayChange::Any => continue,
                change => changes.push(change),
            }
        }
        assert_eq!(changes, vec![GatewayChange::One("g1".into()); 3]);
        one.close().await;
        other.close().await;
    }
}
