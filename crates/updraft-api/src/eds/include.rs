//! `include={"creator":{},"file":{}}`: ref properties expanded into the objects they name, as the
//! caller may read them (a ref it may not read stays a plain ref).

use axum::http::Uri;
use serde_json::Value;
use updraft_core::ids::ObjectId;
use updraft_store::{Collection, USERGROUPS, USERS};

use super::{DataRequest, storage};
use crate::ApiState;
use crate::error::{ApiError, Code, EdsError};

/// The properties named by the `include` parameter of `uri`.
pub(super) fn requested(uri: &Uri) -> Result<Vec<String>, EdsError> {
    let params = super::list::Params::of(uri);
    let Some(raw) = params.get("include") else { return Ok(Vec::new()) };
    if raw.trim().is_empty() {
        return Ok(Vec::new());
    }
    match serde_json::from_str::<Value>(raw) {
        Ok(Value::Object(map)) => Ok(map.keys().cloned().collect()),
        _ => Err(ApiError::with_message(Code::BadRequest, "include must be a JSON object").into()),
    }
}

/// Expands the requested refs of `doc` in place.
pub(super) async fn expand(
    state: &ApiState,
    request: &DataRequest,
    doc: &mut Value,
    properties: &[String],
) -> Result<(), EdsError> {
    for property in properties {
        let Some(reference) = doc.get(property) else { continue };
        let id = reference.get("id").and_then(Value::as_str).and_then(ObjectId::parse);
        let kind = reference.get("objectType").and_then(Value::as_str);
        let (Some(id), Some(kind)) = (id, kind) else { continue };
        if !(kind == USERS || kind == USERGROUPS || kind.starts_with("objects.")) {
            continue;
        }
        let at = Collection { backend: &request.backend.id, object_type: kind };
        if let Some(target) = state.store.get(at, id, request.access()).await.map_err(storage)? {
            doc[property.as_str()] = target;
        }
    }
    Ok(())
}
