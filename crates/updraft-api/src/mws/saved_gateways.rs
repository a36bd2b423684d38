//! Gateways made through the API live in the store (`updraft_store::SavedGateways`), so that every node of a
//! cluster serves the same ones: loaded at start (with, once, those of a former `gateways.json`), saved before
//! each change takes effect here, and followed as other nodes change them.

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;
use updraft_gateway::gateway::DEFAULT_GATEWAY;
use updraft_gateway::{AccessControl, GatewayConfig, Gateways, Permissions};
use updraft_store::{GatewayChange, SavedGateway, SavedGateways};

use super::config_wire;

/// What `EDS_URI` defaulted to until the default became unset.
const FORMER_DEFAULT_EDS_URI: &str = "https://api.engin.io/v1/user";

/// A gateway's configuration before its creation body applies.
pub(crate) fn blank(eds_uri: &str) -> GatewayConfig {
    GatewayConfig {
        name: String::new(),
        access: AccessControl::None,
        security_token: None,
        eds_backend_id: None,
        eds_permissions: Permissions::default(),
        eds_uri: eds_uri.to_owned(),
    }
}

/// The stored form of gateway `id` with `config`.
pub(crate) fn saved(id: &str, config: &GatewayConfig) -> SavedGateway {
    SavedGateway {
        id: id.to_owned(),
        security_token: config.security_token.clone(),
        configuration: config_wire::to_json(config),
    }
}

/// The configuration a stored gateway has.
fn config_of(saved: &SavedGateway, default_eds_uri: &str) -> Result<GatewayConfig, String> {
    let mut config = config_wire::apply(&blank(default_eds_uri), Some(saved.configuration.clone()))
        .map_err(|err| format!("gateway {}: {}", saved.id, err.message))?;
    // Saved while `EDS_URI` defaulted to the long-gone hosted service: read as the default it was, so that no
    // token goes there unless the operator names it.
    if config.eds_uri == FORMER_DEFAULT_EDS_URI {
        config.eds_uri = default_eds_uri.to_owned();
    }
    Ok(GatewayConfig { security_token: saved.security_token.clone(), ..config })
}

/// Serves the saved gateways; answers how many. A `gateways.json` left by an earlier release is saved first
/// (what it holds that the store lacks), then renamed `gateways.json.imported`, so that it is read once.
pub async fn load(
    store: &dyn SavedGateways,
    gateways: &Gateways,
    default_eds_uri: &str,
    former_file: &Path,
) -> anyhow::Result<usize> {
    import_file(store, former_file).await?;
    let saved = store.saved_gateways().await?;
    for gateway in saved.iter().filter(|g| g.id != DEFAULT_GATEWAY) {
        apply(gateways, gateway, default_eds_uri)?;
    }
    Ok(saved.len())
}

async fn import_file(store: &dyn SavedGateways, file: &Path) -> anyhow::Result<()> {
    use anyhow::Context;
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err).with_context(|| format!("reading {}", file.display())),
    };
    let entries: Vec<Value> = serde_json::from_str(&text).with_context(|| format!("reading {}", file.display()))?;
    let mut imported = 0;
    for entry in &entries {
        let id = entry["id"].as_str().with_context(|| format!("a gateway without id in {}", file.display()))?;
        let gateway = SavedGateway {
            id: id.to_owned(),
            security_token: entry["securityToken"].as_str().map(str::to_owned),
            configuration: entry["configuration"].clone(),
        };
        // Checked before anything is saved, as a start would read it.
        config_of(&gateway, "").map_err(anyhow::Error::msg)?;
        if gateway.id != DEFAULT_GATEWAY && store.insert_gateway(&gateway).await? {
            imported += 1;
        }
    }
    let done = file.with_extension("json.imported");
    std::fs::rename(file, &done).with_context(|| format!("renaming {}", file.display()))?;
    tracing::info!(imported, file = %done.display(), "imported the gateways of a former gateways file");
    Ok(())
}

/// Follows the changes other nodes make to saved gateways (`changes`, taken from the store before [`load`], so
/// that none made between the two is missed), until the store stops telling them. A gateway
/// deleted elsewhere is deleted here too, which closes its sockets on this node. Each reload reads what is
/// stored after the commit that notified it, so whatever the interleaving with this node's own requests, the
/// node ends up serving what the last change stored.
pub async fn follow(
    mut changes: tokio::sync::broadcast::Receiver<GatewayChange>,
    store: Arc<dyn SavedGateways>,
    gateways: Arc<Gateways>,
    default_eds_uri: String,
) {
    loop {
        let result = match changes.recv().await {
            Ok(GatewayChange::One(id)) => reload_one(&*store, &gateways, &default_eds_uri, &id).await,
            Ok(GatewayChange::Any) | Err(RecvError::Lagged(_)) => {
                reload_all(&*store, &gateways, &default_eds_uri).await
            }
            Err(RecvError::Closed) => return,
        };
        if let Err(err) = result {
            // The next change, or the next reconnection of the follower (`Any`), reads again.
            tracing::warn!(%err, "reading a saved gateway another node changed failed");
        }
    }
}

async fn reload_one(
    store: &dyn SavedGateways,
    gateways: &Gateways,
    default_eds_uri: &str,
    id: &str,
) -> anyhow::Result<()> {
    if id == DEFAULT_GATEWAY {
        return Ok(());
    }
    match store.saved_gateway(id).await? {
        Some(saved) => apply(gateways, &saved, default_eds_uri)?,
        None => {
            gateways.remove(id);
        }
    }
    Ok(())
}

async fn reload_all(store: &dyn SavedGateways, gateways: &Gateways, default_eds_uri: &str) -> anyhow::Result<()> {
    let saved = store.saved_gateways().await?;
    for gateway in saved.iter().filter(|g| g.id != DEFAULT_GATEWAY) {
        apply(gateways, gateway, default_eds_uri)?;
    }
    for gateway in gateways.list() {
        if gateway.id != DEFAULT_GATEWAY && !saved.iter().any(|g| g.id == gateway.id) {
            gateways.remove(&gateway.id);
        }
    }
    Ok(())
}

/// Serves `saved` here as it is stored (most often already so: this node made the change).
fn apply(gateways: &Gateways, saved: &SavedGateway, default_eds_uri: &str) -> anyhow::Result<()> {
    gateways.upsert(&saved.id, config_of(saved, default_eds_uri).map_err(anyhow::Error::msg)?);
    Ok(())
}
