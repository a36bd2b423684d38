//! Webhooks of a backend (`/v1/webhooks`): `{url, objectTypes, events, headers}`, their deliveries and
//! redelivery. Managed with the backend's master key, its instance secret or the account token; the worker that
//! delivers is `updraft-realtime`'s `webhooks`.

use std::time::{Duration, UNIX_EPOCH};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use updraft_core::timestamp;
use updraft_store::{Backend, ChangeEvent, Delivery, USERGROUPS, USERS, Webhook, WebhookSpec};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;

use super::{backend_of, token_subject};
use crate::ApiState;
use crate::auth::{self, Credentials};
use crate::body::read_json;
use crate::error::{ApiError, Code, EdsError};
use crate::openapi::{ApiRouter, tag};

pub(super) fn routes() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, replace, remove))
        .routes(routes!(deliveries))
        .routes(routes!(redeliver))
}

/// A webhook as sent: `url` and what it fires on.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "read by hand in `spec_from`, for its errors; this is its schema")]
struct WebhookSpecWire {
    /// Where deliveries are POSTed: `http` or `https`, checked against the outbound rules (no private
    /// addresses unless allowed).
    #[schema(max_length = 2048)]
    url: String,
    /// Object types it fires on (`todos` or `objects.todos`, `users`, `usergroups`); none or empty is all.
    #[serde(rename = "objectTypes")]
    object_types: Option<Vec<String>>,
    /// Of `create`, `update`, `delete`; none or empty is all.
    events: Option<Vec<String>>,
    /// Extra headers each delivery carries, at most 32; not `X-Updraft-*` nor the framing headers.
    headers: Option<std::collections::BTreeMap<String, String>>,
}

/// A webhook: its spec, and the secret that signs its deliveries (`X-Updraft-Signature`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct WebhookWire {
    // Members in alphabetical order, the order the answer had when built as a `json!` map.
    created_at: String,
    events: Vec<&'static str>,
    headers: Map<String, Value>,
    id: String,
    object_types: Vec<String>,
    /// The HMAC-SHA256 key of the `X-Updraft-Signature` header of each delivery.
    secret: String,
    updated_at: String,
    url: String,
}

/// One delivery of one change to one webhook.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct DeliveryWire {
    // Members in alphabetical order, as for `WebhookWire`.
    attempts: u32,
    created_at: String,
    /// The change's number in the backend's change log.
    event_id: String,
    finished_at: Option<String>,
    id: String,
    /// Why the last attempt failed, when it did without a status.
    last_error: Option<String>,
    /// The HTTP status of the last attempt.
    last_status: Option<u16>,
    /// When a pending delivery is tried next.
    next_attempt_at: Option<String>,
    object_id: String,
    /// `pending`, `delivered` or `failed` (given up after the last retry).
    status: &'static str,
    webhook_id: String,
}

#[derive(Serialize, ToSchema)]
struct Webhooks {
    results: Vec<WebhookWire>,
}

#[derive(Serialize, ToSchema)]
struct Deliveries {
    results: Vec<DeliveryWire>,
}

/// Headers a webhook may not set: they frame or sign the delivery.
fn reserved_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.starts_with("x-updraft-")
        || ["content-type", "content-length", "host", "transfer-encoding", "connection", "idempotency-key"]
            .contains(&name.as_str())
}

const MAX_HEADERS: usize = 32;
const MAX_URL: usize = 2048;

/// The backend, for its master key, its instance secret or the account token.
async fn managed_backend(state: &ApiState, headers: &HeaderMap) -> Result<Backend, EdsError> {
    let backend = backend_of(state, headers).await?;
    let key = headers.get("enginio-backend-masterkey").and_then(|v| v.to_str().ok());
    if key.is_some_and(|key| auth::same_secret(key, &backend.master_key)) {
        return Ok(backend);
    }
    let creds = auth::credentials(headers)?;
    if let Credentials::Bearer(token) = &creds
        && auth::same_secret(token, &backend.secret)
    {
        return Ok(backend);
    }
    if token_subject(state, &creds).await?.as_deref() == Some("account") {
        return Ok(backend);
    }
    if key.is_some() || creds != Credentials::None {
        return Err(ApiError::with_message(Code::AccessDenied, "Webhooks need the master key or the account").into());
    }
    Err(ApiError::new(Code::AuthorizationRequired).into())
}

/// Checks a webhook body, including where its URL leads.
async fn spec_from(state: &ApiState, body: Option<Value>) -> Result<WebhookSpec, EdsError> {
    let Some(Value::Object(body)) = body else {
        return Err(ApiError::with_message(Code::BadRequest, "A webhook is a JSON object").into());
    };
    let url = match body.get("url") {
        Some(Value::String(url)) if url.len() <= MAX_URL => url.clone(),
        Some(Value::String(_)) => return Err(ApiError::field("url", "url is too long").into()),
        _ => return Err(ApiError::field("url", "url is required").into()),
    };
    if let Err(refusal) = state.webhook_guard.check(&url).await {
        return Err(ApiError::field("url", format!("url is refused: {refusal}")).into());
    }
    let names = |key: &'static str| -> Result<Vec<String>, EdsError> {
        match body.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| item.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| ApiError::field(key, format!("{key} must be an array of strings")).into()),
            Some(_) => Err(ApiError::field(key, format!("{key} must be an array of strings")).into()),
        }
    };
    let mut object_types = Vec::new();
    for name in names("objectTypes")? {
        let internal = match name.as_str() {
            USERS | USERGROUPS => name.clone(),
            _ => super::objects::object_type(name.strip_prefix("objects.").unwrap_or(&name))
                .map_err(|_| ApiError::field("objectTypes", format!("{name} is not an object type")))?,
        };
        if !object_types.contains(&internal) {
            object_types.push(internal);
        }
    }
    let mut events = Vec::new();
    for name in names("events")? {
        let event = ChangeEvent::parse(&name)
            .ok_or_else(|| ApiError::field("events", format!("{name} is not one of create, update, delete")))?;
        if !events.contains(&event) {
            events.push(event);
        }
    }
    let headers = match body.get("headers") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(headers)) if headers.len() <= MAX_HEADERS => headers_from(headers)?,
        Some(_) => {
            return Err(ApiError::field(
                "headers",
                format!("headers must be an object of at most {MAX_HEADERS} strings"),
            )
            .into());
        }
    };
    Ok(WebhookSpec { url, object_types, events, headers })
}

fn headers_from(headers: &Map<String, Value>) -> Result<Vec<(String, String)>, EdsError> {
    headers
        .iter()
        .map(|(name, value)| {
            let invalid = || ApiError::field("headers", format!("{name} is not a header a webhook may send"));
            let Value::String(value) = value else { return Err(invalid().into()) };
            if HeaderName::from_bytes(name.as_bytes()).is_err()
                || HeaderValue::from_str(value).is_err()
                || reserved_header(name)
            {
                return Err(invalid().into());
            }
            Ok((name.clone(), value.clone()))
        })
        .collect()
}

fn time(ms: i64) -> String {
    timestamp::format(UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64))
}

fn webhook_json(webhook: &Webhook) -> WebhookWire {
    WebhookWire {
        id: webhook.id.clone(),
        url: webhook.spec.url.clone(),
        object_types: webhook.spec.object_types.clone(),
        events: webhook.spec.events.iter().map(|event| event.name()).collect(),
        headers: webhook
            .spec
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), Value::String(value.clone())))
            .collect(),
        secret: webhook.secret.clone(),
        created_at: time(webhook.created_ms),
        updated_at: time(webhook.updated_ms),
    }
}

fn delivery_json(delivery: &Delivery) -> DeliveryWire {
    DeliveryWire {
        id: delivery.id.to_string(),
        webhook_id: delivery.webhook_id.clone(),
        event_id: delivery.seq.to_string(),
        object_id: delivery.object_id.clone(),
        status: delivery.status.name(),
        attempts: delivery.attempts,
        next_attempt_at: (delivery.status == updraft_store::DeliveryStatus::Pending).then(|| time(delivery.next_ms)),
        created_at: time(delivery.created_ms),
        finished_at: delivery.finished_ms.map(time),
        last_status: delivery.last_status,
        last_error: delivery.last_error.clone(),
    }
}

fn not_found() -> EdsError {
    ApiError::with_message(Code::NotFound, "Webhook not found").into()
}

/// The backend's webhooks.
#[utoipa::path(get, path = "/v1/webhooks", tag = tag::WEBHOOKS, security(("backendId" = [], "masterKey" = []), ("backendId" = [], "instanceSecret" = []), ("backendId" = [], "accountToken" = [])),
    responses((status = 200, body = Webhooks)))]
async fn list(State(state): State<ApiState>, headers: HeaderMap) -> Result<Response, EdsError> {
    let backend = managed_backend(&state, &headers).await?;
    let webhooks = state.webhooks.webhooks(&backend.id).await?;
    Ok(Json(Webhooks { results: webhooks.iter().map(webhook_json).collect() }).into_response())
}

/// Creates a webhook; its answer holds the secret that signs its deliveries.
#[utoipa::path(post, path = "/v1/webhooks", tag = tag::WEBHOOKS, security(("backendId" = [], "masterKey" = []), ("backendId" = [], "instanceSecret" = []), ("backendId" = [], "accountToken" = [])),
    request_body = WebhookSpecWire, responses((status = 201, body = WebhookWire)))]
async fn create(State(state): State<ApiState>, headers: HeaderMap, body: Body) -> Result<Response, EdsError> {
    let backend = managed_backend(&state, &headers).await?;
    let spec = spec_from(&state, read_json(body, state.limits.max_body_bytes).await?).await?;
    let secret = hex::encode(rand::random::<[u8; 32]>());
    let webhook = state.webhooks.create_webhook(&backend.id, spec, secret).await?;
    Ok((StatusCode::CREATED, Json(webhook_json(&webhook))).into_response())
}

/// One webhook.
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = tag::WEBHOOKS, security(("backendId" = [], "masterKey" = []), ("backendId" = [], "instanceSecret" = []), ("backendId" = [], "accountToken" = [])),
    responses((status = 200, body = WebhookWire)))]
async fn show(State(state): State<ApiState>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, EdsError> {
    let backend = managed_backend(&state, &headers).await?;
    let webhook = state.webhooks.webhook(&backend.id, &id).await?.ok_or_else(not_found)?;
    Ok(Json(webhook_json(&webhook)).into_response())
}

/// Replaces a webhook's spec (its secret stays).
#[utoipa::path(put, path = "/v1/webhooks/{id}", tag = tag::WEBHOOKS, security(("backendId" = [], "masterKey" = []), ("backendId" = [], "instanceSecret" = []), ("backendId" = [], "accountToken" = [])),
    request_body = WebhookSpecWire, responses((status = 200, body = WebhookWire)))]
async fn replace(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, EdsError> {
    let backend = managed_backend(&state, &headers).await?;
    let spec = spec_from(&state, read_json(body, state.limits.max_body_bytes).await?).await?;
    let webhook = state.webhooks.update_webhook(&backend.id, &id, spec).await?.ok_or_else(not_found)?;
    Ok(Json(webhook_json(&webhook)).into_response())
}

/// Deletes a webhook and its pending deliveries.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = tag::WEBHOOKS, security(("backendId" = [], "masterKey" = []), ("backendId" = [], "instanceSecret" = []), ("backendId" = [], "accountToken" = [])),
    responses((status = 200, description = "Deleted: `{}`", body = Object)))]
async fn remove(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, EdsError> {
    let backend = managed_backend(&state, &headers).await?;
    if !state.webhooks.delete_webhook(&backend.id, &id).await? {
        return Err(not_found());
    }
    Ok(Json(json!({})).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct Window {
    /// At most this many, newest first: 1 to 1000, 100 if not given.
    limit: Option<u32>,
    offset: Option<u32>,
}

/// A webhook's deliveries, newest first, with their attempts and when the next one is due.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = tag::WEBHOOKS, security(("backendId" = [], "masterKey" = []), ("backendId" = [], "instanceSecret" = []), ("backendId" = [], "accountToken" = [])),
    params(Window), responses((status = 200, body = Deliveries)))]
async fn deliveries(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(window): Query<Window>,
) -> Result<Response, EdsError> {
    let backend = managed_backend(&state, &headers).await?;
    state.webhooks.webhook(&backend.id, &id).await?.ok_or_else(not_found)?;
    let limit = window.limit.unwrap_or(100).clamp(1, 1000);
    let found = state.webhooks.deliveries(&backend.id, &id, limit, window.offset.unwrap_or(0)).await?;
    Ok(Json(Deliveries { results: found.iter().map(delivery_json).collect() }).into_response())
}

/// Delivers a change to a webhook again, as a new delivery.
#[utoipa::path(post, path = "/v1/webhooks/{id}/deliveries/{delivery}/redeliver", tag = tag::WEBHOOKS,
    security(("backendId" = [], "masterKey" = []), ("backendId" = [], "instanceSecret" = []), ("backendId" = [], "accountToken" = [])), responses((status = 200, body = DeliveryWire)))]
async fn redeliver(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path((id, delivery)): Path<(String, String)>,
) -> Result<Response, EdsError> {
    let backend = managed_backend(&state, &headers).await?;
    let missing = || ApiError::with_message(Code::NotFound, "Delivery not found");
    let delivery: i64 = delivery.parse().map_err(|_| missing())?;
    let redelivered = state.webhooks.redeliver(&backend.id, &id, delivery).await?.ok_or_else(missing)?;
    Ok(Json(delivery_json(&redelivered)).into_response())
}
