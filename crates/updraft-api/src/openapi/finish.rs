//! What every operation of the reference shares, added to the document as JSON once the routes are collected:
//! the path parameters that nesting leaves undeclared, unique operation ids, each service's error answers, the
//! tags in their order, and the examples recorded from real answers.

use serde_json::{Map, Value, json};

use super::tag;

/// Real answers, recorded by `tests/api/api_reference.rs` (`UPDATE_EXAMPLES=1`): `"METHOD /path"` → status →
/// body.
const EXAMPLES: &str = include_str!("../../../../docs/api/examples.json");

const TAGS: [(&str, &str); 19] = [
    (tag::SERVER, "Health, readiness and metrics of the server itself, and this reference."),
    (tag::ACCOUNT, "The account that manages apps and their backends (`/v1/account`)."),
    (tag::AUTH, "Signing users of a backend in and out (OAuth2 password grant, refresh tokens)."),
    (tag::OBJECTS, "JSON objects of a backend, by object type, with queries, `include` and atomic updates."),
    (tag::USERS, "The users of a backend: objects with a `username` and a write-only `password`."),
    (tag::USERGROUPS, "Groups of users; a group is a subject in ACLs."),
    (tag::ACCESS, "Per-object access control lists (`read`, `update`, `delete`, `admin`)."),
    (tag::SCHEMAS, "Object types: properties, `indexed`, `required`, references, ACL templates."),
    (tag::FILES, "Files owned by an object's property: uploads, chunks, download URLs, image variants."),
    (tag::SEARCH, "Full-text search over `indexed` string properties."),
    (tag::WEBHOOKS, "Webhooks of a backend and their deliveries."),
    (
        tag::STREAM,
        "The notification stream QtEnginio follows for changes: `GET /v1/stream_url` gives a single-use URL, opened \
         with a WebSocket handshake on a plain-HTTP listener (`/v1/stream?...`); see `docs/realtime.md`.",
    ),
    (tag::GATEWAYS, "Managed WebSocket gateways and their configuration (admin token)."),
    (tag::SOCKETS, "Socket URIs, messages to sockets and tags, the socket registry, the `enginio` receiver."),
    (tag::PLATFORM, "The platform API of `qtc-cli`: accounts (clouds), instances, SSH keys, data centers."),
    (
        tag::APPS,
        "Managed Application Runtime apps: status, environment, scale, logs, exec. An app is deployed by `git push` \
         to `http(s)://x:<account token>@<server>/<app id>.git` (git's smart HTTP protocol, served before every \
         other route) or over SSH (`--ssh-listen`); see `docs/runtime.md`.",
    ),
    (tag::RELEASES, "Releases and slugs of an app, rollback."),
    (tag::DOMAINS, "Custom domains of an app and its TLS certificate."),
    (tag::DATABASES, "Managed databases (MDB) and the apps they are attached to."),
];

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

pub(super) fn finish(doc: &mut Value, error_table: &str) {
    if let Some(description) = doc.pointer_mut("/info/description") {
        let text = description.as_str().unwrap_or_default().replace("{{errors}}", error_table);
        *description = Value::String(text);
    }
    doc["tags"] = TAGS.iter().map(|(name, description)| json!({"name": name, "description": description})).collect();
    let shared = shared_responses();
    let components = doc["components"].as_object_mut().expect("the base has components");
    components.insert("responses".into(), shared.clone());
    let examples: Map<String, Value> = serde_json::from_str(EXAMPLES).expect("docs/api/examples.json is JSON");
    let Some(Value::Object(paths)) = doc.get_mut("paths") else { return };
    for (path, item) in paths.iter_mut() {
        for method in METHODS {
            let Some(operation) = item.get_mut(method) else { continue };
            if method == "get" {
                // A handler of several methods declares the body of its writes on its read too.
                operation.as_object_mut().expect("an operation").remove("requestBody");
            }
            declare_path_parameters(path, operation);
            operation_id(method, path, operation);
            describe_responses(operation);
            add_errors(path, operation);
            if let Some(recorded) = examples.get(&format!("{} {path}", method.to_uppercase())) {
                add_examples(operation, recorded, &shared);
            }
        }
    }
}

/// The error answers operations share by reference (`add_errors`).
fn shared_responses() -> Value {
    let answer = |description: &str, schema: &str| {
        json!({
            "description": description,
            "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}},
        })
    };
    json!({
        "EdsError": answer("An EDS error (see the table of reasons).", "EdsErrors"),
        "ServiceError": answer("An error (see the table of reasons).", "ServiceError"),
    })
}

/// Nested routers (a gateway's routes under `/v1/gateways/{gateway_id}`) name parameters their handlers do not.
fn declare_path_parameters(path: &str, operation: &mut Value) {
    let parameters = operation.as_object_mut().expect("an operation").entry("parameters").or_insert(json!([]));
    let Value::Array(parameters) = parameters else { return };
    for name in path.split('/').filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}')) {
        let declared = parameters.iter().any(|p| p["in"] == "path" && p["name"] == name);
        if !declared {
            parameters.push(json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}));
        }
    }
}

/// Ids from the method and the path (`get_webhooks_id_deliveries`): unique, and stable when a handler is renamed
/// or served at two paths (a gateway's routes, with and without the gateway in the path).
fn operation_id(method: &str, path: &str, operation: &mut Value) {
    let words: Vec<&str> =
        path.split(|c: char| !c.is_ascii_alphanumeric()).filter(|word| !word.is_empty() && *word != "v1").collect();
    operation["operationId"] = Value::String(format!("{method}_{}", words.join("_")));
}

/// OpenAPI wants a description on every response; the status's name where the handler gives none.
fn describe_responses(operation: &mut Value) {
    let Some(responses) = operation["responses"].as_object_mut() else { return };
    for (status, response) in responses.iter_mut() {
        if response.get("$ref").is_none() && response.get("description").is_none_or(|d| d == "") {
            let name = status.parse().ok().and_then(|code| axum::http::StatusCode::from_u16(code).ok());
            let name = name.and_then(|code| code.canonical_reason()).unwrap_or("Answer");
            response["description"] = Value::String(name.to_owned());
        }
    }
}

/// The answers every call of a service may get: bad input, no or wrong credentials, no permission, an unknown
/// id, a body too large or too slow, a server fault. An operation's own declaration of a status wins.
fn add_errors(path: &str, operation: &mut Value) {
    if !path.starts_with("/v1/") {
        return;
    }
    let eds = crate::is_eds_request(path, &axum::http::HeaderMap::new());
    let response = if eds { "#/components/responses/EdsError" } else { "#/components/responses/ServiceError" };
    let has_body = operation.get("requestBody").is_some();
    let mut statuses = vec!["400", "401", "403", "500"];
    if path.contains('{') {
        statuses.push("404");
    }
    if has_body {
        statuses.extend(["408", "413"]);
        if !eds {
            // Outside EDS, a body that is not JSON or lacks a field is 422.
            statuses.push("422");
        }
    }
    let responses = operation["responses"].as_object_mut().expect("an operation has responses");
    for status in statuses {
        responses.entry(status).or_insert_with(|| json!({"$ref": response}));
    }
}

/// Recorded answers as the examples of the responses they answer; a status the operation does not declare is
/// left out (the reference test fails on it).
fn add_examples(operation: &mut Value, recorded: &Value, shared: &Value) {
    let Some(recorded) = recorded.as_object() else { return };
    let responses = operation["responses"].as_object_mut().expect("an operation has responses");
    for (status, body) in recorded {
        let Some(response) = responses.get_mut(status) else { continue };
        // A shared error answer: this operation gets its own copy, to hold its example.
        let shared_name = response["$ref"].as_str().and_then(|r| r.strip_prefix("#/components/responses/"));
        if let Some(copy) = shared_name.and_then(|name| shared.get(name)) {
            *response = copy.clone();
        }
        if let Some(json) = response.pointer_mut("/content/application~1json") {
            json["example"] = body.clone();
        }
    }
}
