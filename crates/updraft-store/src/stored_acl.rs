//! An ACL as both engines store it: a JSON object of four arrays of subjects (`{"read":[…],"update":[…],…}`).

use serde_json::Value;

use crate::{Acl, Subject};

pub(crate) fn to_value(acl: &Acl) -> Value {
    let list = |subjects: &[Subject]| subjects.iter().map(ToString::to_string).collect::<Vec<_>>();
    serde_json::json!({
        "read": list(&acl.read), "update": list(&acl.update), "delete": list(&acl.delete), "admin": list(&acl.admin)
    })
}

/// The ACL of a stored value; subjects that do not parse, and a value that is not such an object, grant nothing.
pub(crate) fn from_value(value: &Value) -> Acl {
    let list = |key: &str| -> Vec<Subject> {
        value[key].as_array().into_iter().flatten().filter_map(|s| s.as_str()?.parse().ok()).collect()
    };
    Acl { read: list("read"), update: list("update"), delete: list("delete"), admin: list("admin") }
}
