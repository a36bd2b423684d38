//! The MAR app API (`/v1/apps/:id…`) that `qtc-cli mar …` and the npm SDK call with the cloud token.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Account, runtime, runtime_error};
use crate::ApiState;
use crate::body::read_json;
use crate::error::{ApiError, Code};

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/apps/{id}", get(show).put(update))
        .route("/v1/apps/{id}/status", get(status))
        .route("/v1/apps/{id}/restart", post(restart))
        .route("/v1/apps/{id}/logs", get(logs))
        .route("/v1/apps/{id}/scale", post(scale))
        .route("/v1/apps/{id}/env_vars", get(env_vars).put(set_env_vars))
        .route("/v1/apps/{id}/exec", post(exec))
        .route("/v1/apps/{id}/build_cache", axum::routing::delete(clear_build_cache))
        .route("/v1/apps/{id}/repository", axum::routing::delete(reset_repository))
}

fn app_of(state: &ApiState, id: &str) -> Result<updraft_runtime::records::AppRecord, ApiError> {
    runtime(state)?.app(id).ok_or_else(|| ApiError::with_message(Code::NotFound, "no such app"))
}

async fn show(State(state): State<ApiState>, _: Account, Path(id): Path<String>) -> Result<Response, ApiError> {
    let app = app_of(&state, &id)?;
    let processes = runtime(&state)?.processes(&id).await;
    let state_name = match (app.current(), processes.iter().any(|(_, pid, _)| pid.is_some())) {
        (None, _) => "created",
        (Some(_), true) => "running",
        (Some(_), false) => "stopped",
    };
    let release = app.current().map(|r| json!({"version": r.version, "commit": r.commit, "buildpack": r.buildpack}));
    Ok(Json(json!({
        "id": app.id,
        "name": app.name,
        "size": app.size,
        "state": state_name,
        "sslCertificate": app.ssl_certificate.as_ref().map(|name| json!({"name": name})),
        "structure": app.structure,
        "stack": app.stack,
        "release": release,
    }))
    .into_response())
}

/// `{"stack":"cedar-14"}`: the stack the next release is built for (`qtc-cli mar stack:set`).
async fn update(
    State(state): State<ApiState>,
    account: Account,
    Path(id): Path<String>,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let body = read_json(body, state.limits.max_body_bytes).await?.unwrap_or(Value::Null);
    if let Some(stack) = body.get("stack") {
        let stack = stack.as_str().ok_or_else(|| ApiError::field("stack", "a stack's name"))?;
        runtime(&state)?.set_stack(&id, stack).await.map_err(runtime_error)?;
    }
    show(State(state), account, Path(id)).await
}

async fn status(State(state): State<ApiState>, _: Account, Path(id): Path<String>) -> Result<Response, ApiError> {
    app_of(&state, &id)?;
    let processes: Vec<Value> = runtime(&state)?
        .processes(&id)
        .await
        .into_iter()
        .map(|(name, pid, restarts)| {
            json!({"id": name, "state": if pid.is_some() { "up" } else { "starting" }, "restarts": restarts})
        })
        .collect();
    Ok(Json(json!({"processes": processes})).into_response())
}

async fn restart(State(state): State<ApiState>, _: Account, Path(id): Path<String>) -> Result<Response, ApiError> {
    runtime(&state)?.restart(&id).await.map_err(runtime_error)?;
    Ok(Json(json!({})).into_response())
}

#[derive(Deserialize)]
struct Page {
    offset: Option<usize>,
    limit: Option<usize>,
    follow: Option<bool>,
}

/// `{"results":[{"time","log"}]}`, the oldest kept line first; `limit` at most 1,000 (100 by default).
async fn logs(
    State(state): State<ApiState>,
    _: Account,
    Path(id): Path<String>,
    Query(page): Query<Page>,
) -> Result<Response, ApiError> {
    app_of(&state, &id)?;
    let limit = page.limit.unwrap_or(100).min(1000);
    if page.follow == Some(true) {
        return Ok(follow(&runtime(&state)?.logs(&id), limit));
    }
    let lines = runtime(&state)?.logs(&id).page(page.offset.unwrap_or(0), limit);
    let results: Vec<Value> = lines
        .into_iter()
        .map(|line| json!({"time": line.time, "log": format!("{}: {}", line.source, line.log), "source": line.source}))
        .collect();
    Ok(Json(json!({"results": results})).into_response())
}

/// `?follow=true`: the last `limit` lines, then each new one as it comes, one JSON object a line, until the
/// client goes.
fn follow(logs: &updraft_runtime::logs::AppLogs, limit: usize) -> Response {
    let (kept, live) = logs.follow(limit);
    let line = |l: &updraft_runtime::logs::LogLine| {
        let mut text =
            json!({"time": l.time, "log": format!("{}: {}", l.source, l.log), "source": l.source}).to_string();
        text.push('\n');
        Ok::<_, std::convert::Infallible>(bytes::Bytes::from(text))
    };
    let first: Vec<_> = kept.iter().map(line).collect();
    let rest = futures_util::stream::unfold(live, move |mut live| async move {
        loop {
            match live.recv().await {
                Ok(next) => return Some((line(&next), live)),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    let body = axum::body::Body::from_stream(futures_util::StreamExt::chain(futures_util::stream::iter(first), rest));
    ([(axum::http::header::CONTENT_TYPE, "application/x-ndjson")], body).into_response()
}

/// `{"cmd":"<command>"}`: run once in the app's sandbox; `{"stdout","stderr","exitCode"}`.
async fn exec(
    State(state): State<ApiState>,
    _: Account,
    Path(id): Path<String>,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let body = read_json(body, state.limits.max_body_bytes).await?;
    let Some(cmd) = body.as_ref().and_then(|b| b.get("cmd")).and_then(Value::as_str).filter(|c| !c.trim().is_empty())
    else {
        return Err(ApiError::field("cmd", "can't be blank"));
    };
    let ran = runtime(&state)?.exec(&id, cmd).await.map_err(runtime_error)?;
    Ok(Json(json!({"stdout": ran.stdout, "stderr": ran.stderr, "exitCode": ran.exit_code})).into_response())
}

async fn clear_build_cache(
    State(state): State<ApiState>,
    _: Account,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    runtime(&state)?.clear_build_cache(&id).await.map_err(runtime_error)?;
    Ok(Json(json!({})).into_response())
}

async fn reset_repository(
    State(state): State<ApiState>,
    _: Account,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    runtime(&state)?.reset_repository(&id).await.map_err(runtime_error)?;
    Ok(Json(json!({})).into_response())
}

/// `{"web":"2","worker":1}`: counts as numbers or strings.
async fn scale(
    State(state): State<ApiState>,
    _: Account,
    Path(id): Path<String>,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let body = read_json(body, state.limits.max_body_bytes).await?;
    let Some(Value::Object(fields)) = body else {
        return Err(ApiError::with_message(Code::BadRequest, "a JSON object of counts"));
    };
    let mut counts = BTreeMap::new();
    for (name, count) in fields {
        let parsed = match &count {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        let count = parsed
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| ApiError::field(name.clone(), "is not a count"))?;
        counts.insert(name, count);
    }
    runtime(&state)?.scale(&id, counts).await.map_err(runtime_error)?;
    Ok(Json(json!({})).into_response())
}

/// The app's variables, `STACK` among them.
async fn env_vars(State(state): State<ApiState>, _: Account, Path(id): Path<String>) -> Result<Response, ApiError> {
    let app = app_of(&state, &id)?;
    let mut env: serde_json::Map<String, Value> = app.env.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
    env.entry("STACK").or_insert_with(|| Value::String(app.stack.clone()));
    Ok(Json(Value::Object(env)).into_response())
}

/// `{"KEY":"value","OLD":null}`: null or empty unsets.
async fn set_env_vars(
    State(state): State<ApiState>,
    _: Account,
    Path(id): Path<String>,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let body = read_json(body, state.limits.max_body_bytes).await?;
    let Some(Value::Object(fields)) = body else {
        return Err(ApiError::with_message(Code::BadRequest, "a JSON object of variables"));
    };
    let mut changes = BTreeMap::new();
    for (name, value) in fields {
        let value = match value {
            Value::Null => None,
            Value::String(s) => Some(s),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => return Err(ApiError::field(name, "is not a string")),
        };
        changes.insert(name, value);
    }
    runtime(&state)?.set_env(&id, changes).await.map_err(runtime_error)?;
    Ok(Json(json!({})).into_response())
}
