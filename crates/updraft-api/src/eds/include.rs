//! `include={"creator":{},"file":{}}`: ref properties expanded into the objects they name, as the
//! caller may read them (a ref it may not read stays a plain ref).
//!
//! An answer expands at most `MAX_REFS` refs of at most `MAX_PROPERTIES` properties, read in one store call
//! that checks each target's ACL; more is refused (400) rather than served by thousands of reads.

use std::collections::HashMap;

use axum::http::Uri;
use serde_json::Value;
use updraft_core::ids::ObjectId;
use updraft_store::{ObjectRef, USERGROUPS, USERS};

use super::DataRequest;
use crate::ApiState;
use crate::error::{ApiError, Code, EdsError};

/// Properties one `include` may name.
const MAX_PROPERTIES: usize = 16;
/// Refs one answer may expand: a page of the largest size with one ref each.
const MAX_REFS: usize = 1000;

/// The properties named by the `include` parameter of `uri`.
pub(super) fn requested(uri: &Uri) -> Result<Vec<String>, EdsError> {
    let params = super::list::Params::of(uri);
    let Some(raw) = params.get("include") else { return Ok(Vec::new()) };
    if raw.trim().is_empty() {
        return Ok(Vec::new());
    }
    match serde_json::from_str::<Value>(raw) {
        Ok(Value::Object(map)) if map.len() > MAX_PROPERTIES => {
            Err(ApiError::with_message(Code::BadRequest, format!("include names at most {MAX_PROPERTIES} properties"))
                .into())
        }
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
    expand_all(state, request, std::slice::from_mut(doc), properties).await
}

/// Expands the requested refs of every document of a page in place, with one read.
pub(super) async fn expand_all(
    state: &ApiState,
    request: &DataRequest,
    docs: &mut [Value],
    properties: &[String],
) -> Result<(), EdsError> {
    // Each ref to expand: the document and property holding it, and what it names; files apart, as their
    // rows are not objects.
    let (mut slots, mut file_slots) = (Vec::new(), Vec::new());
    for (at, doc) in docs.iter().enumerate() {
        for property in properties {
            let Some(value) = doc.get(property) else { continue };
            if let Some(file) = file_target(value) {
                file_slots.push((at, property.as_str(), file));
            } else if let Some(target) = target(value) {
                slots.push((at, property.as_str(), target));
            }
        }
    }
    if slots.len() + file_slots.len() > MAX_REFS {
        let message = format!(
            "include would expand {} refs, and an answer expands at most {MAX_REFS}: ask for a smaller page or \
             fewer properties",
            slots.len() + file_slots.len()
        );
        return Err(ApiError::with_message(Code::BadRequest, message).into());
    }
    if !slots.is_empty() {
        let refs: Vec<ObjectRef> = slots.iter().map(|(_, _, target)| target.clone()).collect();
        let found = state.store.get_many(&request.backend.id, &refs, request.access()).await?;
        let found: HashMap<(&str, &str), &Value> = found
            .iter()
            .filter_map(|doc| Some(((doc.get("objectType")?.as_str()?, doc.get("id")?.as_str()?), doc)))
            .collect();
        for (at, property, target) in slots {
            let id = target.id.to_string();
            if let Some(&object) = found.get(&(target.object_type.as_str(), id.as_str())) {
                docs[at][property] = object.clone();
            }
        }
    }
    if !file_slots.is_empty() {
        let ids: Vec<ObjectId> = file_slots.iter().map(|(_, _, id)| *id).collect();
        let found = state.files.files(&request.backend.id, &ids, request.access()).await?;
        let found: HashMap<ObjectId, &updraft_store::FileRecord> = found.iter().map(|file| (file.id, file)).collect();
        for (at, property, id) in file_slots {
            if let Some(file) = found.get(&id) {
                docs[at][property] = super::files::wire(file);
            }
        }
    }
    Ok(())
}

/// The file a ref names: `{"id", "objectType": "files"}`.
fn file_target(reference: &Value) -> Option<ObjectId> {
    (reference.get("objectType").and_then(Value::as_str) == Some("files"))
        .then(|| reference.get("id").and_then(Value::as_str).and_then(ObjectId::parse))
        .flatten()
}

/// The object a ref names, when it is a ref to an object, user or usergroup.
fn target(reference: &Value) -> Option<ObjectRef> {
    let id = reference.get("id").and_then(Value::as_str).and_then(ObjectId::parse)?;
    let kind = reference.get("objectType").and_then(Value::as_str)?;
    (kind == USERS || kind == USERGROUPS || kind.starts_with("objects."))
        .then(|| ObjectRef { object_type: kind.to_owned(), id })
}
