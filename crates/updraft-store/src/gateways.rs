//! MWS gateways made through the API, kept by the store so that every node of a cluster serves the same ones
//! (`docs/scale-out.md`). The store holds each configuration in the wire form of
//! `GET /v1/gateways/:gid/configuration`; what it means is the gateway crate's business.

use serde_json::Value;

use crate::{BoxFuture, StoreError};

/// A saved gateway.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedGateway {
    pub id: String,
    /// The gateway admin's bearer token.
    pub security_token: Option<String>,
    /// `{"name", "identityProvider", "permissions"}`.
    pub configuration: Value,
}

/// A change of the saved gateways, made by any node ([`SavedGateways::gateway_changes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayChange {
    /// The gateway with this id was made, changed or deleted: read it again.
    One(String),
    /// Changes may have been missed (the node stopped hearing of them for a while): read them all again.
    Any,
}

pub trait SavedGateways: Send + Sync {
    fn saved_gateways(&self) -> BoxFuture<'_, Result<Vec<SavedGateway>, StoreError>>;
    fn saved_gateway<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<SavedGateway>, StoreError>>;
    /// Saves a new gateway; `false` (and nothing saved) when one with this id exists.
    fn insert_gateway<'a>(&'a self, gateway: &'a SavedGateway) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Replaces a saved gateway's token and configuration; `false` when there is none with this id.
    fn update_gateway<'a>(&'a self, gateway: &'a SavedGateway) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// `false` when there was none with this id.
    fn delete_gateway<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Gateways saved, changed or deleted by any node, as those changes commit. `None` for an embedded store: its
    /// one node made every change itself.
    fn gateway_changes(&self) -> Option<tokio::sync::broadcast::Receiver<GatewayChange>> {
        None
    }
}

/// What either engine must do with saved gateways; each engine's tests run it.
#[cfg(test)]
pub(crate) async fn check_saved_gateways(store: &dyn SavedGateways) {
    use serde_json::json;
    let kept = |id: &str, name: &str| SavedGateway {
        id: id.into(),
        security_token: Some(format!("{id}-token")),
        configuration: json!({"name": name, "identityProvider": {"type": "none"}, "permissions": {"read": ["*"]}}),
    };
    assert_eq!(store.saved_gateways().await.unwrap(), vec![]);
    assert!(store.insert_gateway(&kept("b", "bee")).await.unwrap());
    assert!(store.insert_gateway(&kept("a", "ay")).await.unwrap());
    assert!(!store.insert_gateway(&kept("a", "again")).await.unwrap(), "an id is taken once");
    assert_eq!(store.saved_gateway("a").await.unwrap(), Some(kept("a", "ay")), "the first stays");
    assert_eq!(store.saved_gateways().await.unwrap(), vec![kept("a", "ay"), kept("b", "bee")], "ordered by id");

    let renamed = SavedGateway { security_token: None, ..kept("a", "renamed") };
    assert!(store.update_gateway(&renamed).await.unwrap());
    assert_eq!(store.saved_gateway("a").await.unwrap(), Some(renamed));
    assert!(!store.update_gateway(&kept("c", "sea")).await.unwrap(), "an update makes none");
    assert_eq!(store.saved_gateway("c").await.unwrap(), None);

    assert!(store.delete_gateway("b").await.unwrap());
    assert!(!store.delete_gateway("b").await.unwrap());
    assert_eq!(store.saved_gateways().await.unwrap().len(), 1);
}
