//! Gateway configuration on the wire: `{"name","identityProvider","permissions"}` as the hosted
//! service and the npm SDK's `getConfiguration`/`setConfiguration` use it.

use serde_json::{Map, Value, json};
use updraft_core::access::Subject;
use updraft_gateway::{AccessControl, GatewayConfig, Permissions};

use crate::error::ApiError;

/// The binding to a backend shows in every mode, not only `enginio`: it decides whose changes reach the sockets.
/// An unset `uri` (`null`) means tokens are verified only in-process, for a backend hosted here.
pub(super) fn to_json(config: &GatewayConfig) -> Value {
    let kind = match config.access {
        AccessControl::None => "none",
        AccessControl::Custom => "custom",
        AccessControl::Eds => "enginio",
    };
    let mut identity_provider = json!({"type": kind});
    if config.access == AccessControl::Eds || config.eds_backend_id.is_some() {
        identity_provider["backendId"] = json!(config.eds_backend_id);
        identity_provider["uri"] = json!((!config.eds_uri.is_empty()).then_some(&config.eds_uri));
    }
    json!({
        "name": config.name,
        "identityProvider": identity_provider,
        "permissions": { "read": config.eds_permissions.read, "write": config.eds_permissions.write },
    })
}

/// Applies a (partial) configuration body over `current`.
/// `identityProvider` is `null`, a type name (`"none"`, `"custom"`, `"eds"`/`"enginio"`), or
/// `{"type", "backendId", "uri"}`. Who may bind which backend, and where `uri` may point, is the caller's
/// business (`gateways::bind`): this is only the wire.
pub(super) fn apply(current: &GatewayConfig, body: Option<Value>) -> Result<GatewayConfig, ApiError> {
    let Some(Value::Object(body)) = body else {
        return Err(ApiError::field("name", "Configuration must be an object"));
    };
    let mut config = current.clone();
    if let Some(name) = body.get("name") {
        config.name = name.as_str().ok_or_else(|| ApiError::field("name", "Name isn't a string"))?.to_owned();
    }
    match body.get("identityProvider") {
        None => (),
        Some(Value::Null) => config.access = AccessControl::None,
        Some(Value::String(kind)) => config.access = access(kind)?,
        Some(Value::Object(provider)) => {
            let kind = provider.get("type").and_then(Value::as_str).unwrap_or("enginio");
            config.access = access(kind)?;
            if let Some(id) = provider.get("backendId") {
                config.eds_backend_id = id.as_str().filter(|id| !id.is_empty()).map(str::to_owned);
            }
            match provider.get("uri") {
                None => (),
                Some(Value::Null) => config.eds_uri.clear(),
                Some(Value::String(uri)) => config.eds_uri = uri.trim().to_owned(),
                Some(_) => return Err(ApiError::field("identityProvider", "uri isn't a string")),
            }
        }
        Some(_) => return Err(ApiError::field("identityProvider", "IdentityProvider isn't valid")),
    }
    if let Some(permissions) = body.get("permissions") {
        config.eds_permissions = permissions_from(permissions)?;
    }
    Ok(config)
}

fn access(kind: &str) -> Result<AccessControl, ApiError> {
    match kind {
        "none" => Ok(AccessControl::None),
        "custom" => Ok(AccessControl::Custom),
        "eds" | "enginio" => Ok(AccessControl::Eds),
        _ => Err(ApiError::field("identityProvider", "IdentityProvider must be none, custom or eds")),
    }
}

/// `{"read":[...],"write":[...]}`, the form of `EDS_PERMISSIONS`; a missing list allows everyone.
pub(super) fn permissions_from(value: &Value) -> Result<Permissions, ApiError> {
    let bad = || ApiError::field("permissions", "Permissions must be {\"read\":[...],\"write\":[...]}");
    let map: &Map<String, Value> = value.as_object().ok_or_else(bad)?;
    let list = |key: &str| -> Result<Vec<String>, ApiError> {
        match map.get(key) {
            None => Ok(vec![Subject::Everyone.to_string()]),
            Some(Value::Array(items)) => items.iter().map(|i| i.as_str().map(str::to_owned).ok_or_else(bad)).collect(),
            Some(_) => Err(bad()),
        }
    };
    Ok(Permissions { read: list("read")?, write: list("write")? })
}
