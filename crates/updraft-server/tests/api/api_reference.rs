//! The API reference (`/openapi.json`) against the real server: every documented operation is served, and real
//! answers fit the schemas of the operations that gave them. The answers recorded here are the reference's
//! examples (`docs/api/examples.json`): `UPDATE_EXAMPLES=1` rewrites that file; otherwise the test fails when
//! the scenario's answers and the file's differ in which operations and statuses they hold.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::api_reference_scenario;
use crate::eds::{Eds, eds_with};
use crate::helpers::{TestApp, open_args};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api/examples.json");

/// The server admin token of these tests' server.
pub(crate) const ROOT: &str = "reference-root";

/// A server with an account, one app, and the gateway admin API on.
async fn eds() -> Eds {
    eds_with(updraft_server::config::ServeArgs { admin_token: Some(ROOT.into()), ..open_args() }).await
}

/// What a path parameter is set to when probing: values of the right form that name nothing.
fn probe_value(name: &str) -> &'static str {
    match name {
        "object_type" => "probes",
        "gateway_id" => "default",
        "socket_id" => "00000000000000000000000000000000",
        _ => "000000000000000000000000",
    }
}

async fn reference(app: &TestApp) -> Value {
    let answer = app.client.get(format!("{}/openapi.json", app.base)).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.headers()["content-type"], "application/json");
    answer.json().await.unwrap()
}

fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "put", "post", "delete", "patch"] {
            if item.get(method).is_some() {
                found.push((method.to_owned(), path.clone()));
            }
        }
    }
    found
}

#[tokio::test]
async fn every_documented_operation_is_served() {
    let eds = eds().await;
    let doc = reference(&eds.app).await;
    let operations = operations(&doc);
    assert!(operations.len() > 80, "only {} operations documented", operations.len());
    let mut unserved = Vec::new();
    for (method, template) in &operations {
        let path: Vec<String> = template
            .split('/')
            .map(|segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => probe_value(name).to_owned(),
                None => segment.to_owned(),
            })
            .collect();
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let answer = eds
            .app
            .client
            .request(method.clone(), format!("{}{}", eds.app.base, path.join("/")))
            .header("Enginio-Backend-Id", &eds.backend)
            .send()
            .await
            .unwrap();
        let status = answer.status();
        let body = answer.text().await.unwrap();
        // The router's own answers for a path or method it does not serve.
        if status == StatusCode::METHOD_NOT_ALLOWED
            || (status == StatusCode::NOT_FOUND && body.contains("No such endpoint"))
        {
            unserved.push(format!("{method} {template}: {status} {body}"));
        }
    }
    assert!(unserved.is_empty(), "documented but not served:\n{}", unserved.join("\n"));
}

/// An undocumented path is still the router's 404, so the probe above can tell.
#[tokio::test]
async fn the_probe_tells_an_unserved_path() {
    let eds = eds().await;
    let answer = eds.app.client.get(format!("{}/v1/no_such_thing", eds.app.base)).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::NOT_FOUND);
    assert!(answer.text().await.unwrap().contains("No such endpoint"));
    let doc = reference(&eds.app).await;
    assert!(doc["paths"].get("/v1/no_such_thing").is_none());
}

/// Checks answers against the reference's schemas and keeps the first answer of each operation and status.
pub(crate) struct Recorder {
    doc: Value,
    pub(crate) recorded: BTreeMap<String, BTreeMap<String, Value>>,
    failures: Vec<String>,
}

impl Recorder {
    fn new(doc: Value) -> Recorder {
        Recorder { doc, recorded: BTreeMap::new(), failures: Vec::new() }
    }

    /// The schema of the JSON answer of `method template` with `status`, if the operation declares that status.
    fn schema(&self, method: &str, template: &str, status: u16) -> Result<Option<Value>, String> {
        let operation = self.doc["paths"]
            .get(template)
            .and_then(|item| item.get(method.to_lowercase()))
            .ok_or_else(|| format!("{method} {template} is not documented"))?;
        let mut response = operation["responses"]
            .get(status.to_string())
            .ok_or_else(|| format!("{method} {template} does not document status {status}"))?
            .clone();
        if let Some(pointer) = response.get("$ref").and_then(Value::as_str) {
            response = self.doc.pointer(pointer.trim_start_matches('#')).cloned().unwrap_or(Value::Null);
        }
        Ok(response.pointer("/content/application~1json/schema").cloned())
    }

    /// Validates `body` against `schema`, resolved inside the whole reference.
    fn check(&self, schema: &Value, body: &Value) -> Vec<String> {
        let mut root = self.doc.clone();
        let root_object = root.as_object_mut().unwrap();
        for (key, value) in schema.as_object().unwrap() {
            root_object.insert(key.clone(), value.clone());
        }
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(&root)
            .expect("the reference's schemas compile");
        validator.iter_errors(body).map(|err| format!("{err} at {}", err.instance_path())).collect()
    }

    pub(crate) fn record(&mut self, method: &str, template: &str, status: u16, body: &Value) {
        match self.schema(method, template, status) {
            Err(failure) => self.failures.push(failure),
            Ok(None) if !body.is_null() => {
                self.failures.push(format!("{method} {template} {status}: a JSON answer without a schema: {body}"))
            }
            Ok(None) => {}
            Ok(Some(schema)) => {
                for err in self.check(&schema, body) {
                    self.failures.push(format!("{method} {template} {status}: {err}\n  in {body}"));
                }
            }
        }
        if !body.is_null() {
            let key = format!("{method} {template}");
            self.recorded.entry(key).or_default().entry(status.to_string()).or_insert_with(|| body.clone());
        }
    }
}

#[tokio::test]
async fn real_answers_fit_the_reference_and_are_its_examples() {
    let eds = eds().await;
    let doc = reference(&eds.app).await;
    let mut recorder = Recorder::new(doc.clone());
    api_reference_scenario::run(&eds, &mut recorder).await;
    assert!(recorder.failures.is_empty(), "answers that do not fit the reference:\n{}", recorder.failures.join("\n"));

    let shapes = |examples: &BTreeMap<String, BTreeMap<String, Value>>| -> Vec<String> {
        examples.iter().flat_map(|(op, statuses)| statuses.keys().map(move |status| format!("{op} {status}"))).collect()
    };
    if std::env::var_os("UPDATE_EXAMPLES").is_some() {
        let text = serde_json::to_string_pretty(&recorder.recorded).unwrap();
        std::fs::write(EXAMPLES, text + "\n").unwrap();
        return;
    }
    let committed: BTreeMap<String, BTreeMap<String, Value>> =
        serde_json::from_str(&std::fs::read_to_string(EXAMPLES).unwrap()).unwrap();
    assert_eq!(
        shapes(&committed),
        shapes(&recorder.recorded),
        "docs/api/examples.json is not what the scenario records: run it with UPDATE_EXAMPLES=1"
    );
    // The committed examples fit the schemas as they are now, and the served reference carries them.
    let mut check = Recorder::new(doc.clone());
    for (operation, statuses) in &committed {
        let (method, template) = operation.split_once(' ').unwrap();
        for (status, body) in statuses {
            check.record(method, template, status.parse().unwrap(), body);
            let served = doc["paths"][template][method.to_lowercase()]["responses"][status]
                .pointer("/content/application~1json/example");
            assert!(body.is_null() || served.is_some(), "{operation} {status}: the example is not served");
        }
    }
    assert!(check.failures.is_empty(), "examples that do not fit the reference:\n{}", check.failures.join("\n"));
}

#[tokio::test]
async fn the_reference_names_its_security_and_errors() {
    let eds = eds().await;
    let doc = reference(&eds.app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    for scheme in
        ["backendId", "userToken", "masterKey", "instanceSecret", "accountToken", "gatewayToken", "adminToken"]
    {
        assert!(schemes.contains_key(scheme), "no security scheme {scheme}");
    }
    let description = doc["info"]["description"].as_str().unwrap();
    assert!(description.contains("| 401 | `Unauthorized` |"), "the error table is missing");
    // Every operation says who may call it, with schemes that exist.
    for (method, path) in operations(&doc) {
        let security = doc["paths"][&path][&method]["security"].as_array();
        let security = security.unwrap_or_else(|| panic!("{method} {path} names no security"));
        for requirement in security {
            for scheme in requirement.as_object().unwrap().keys() {
                assert!(schemes.contains_key(scheme), "{method} {path}: unknown scheme {scheme}");
            }
        }
    }
}
