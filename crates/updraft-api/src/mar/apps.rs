//! The MAR app API (`/v1/apps/:id…`) that `qtc-cli mar …` and the npm SDK call with the cloud token.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;

use super::domains::CertificateWire;
use super::{Account, NumberOrString, runtime, runtime_error};
use crate::ApiState;
use crate::body::read_json;
use crate::error::{ApiError, Code};
use crate::openapi::{ApiRouter, ServiceError, tag};

pub(super) fn routes() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(show, update))
        .routes(routes!(status))
        .routes(routes!(restart))
        .routes(routes!(logs))
        .routes(routes!(scale))
        .routes(routes!(env_vars, set_env_vars))
        .routes(routes!(exec))
        .routes(routes!(clear_build_cache))
        .routes(routes!(reset_repository))
}

// Members sorted by name, as `json!` wrote them (see `mar/mod.rs`).

/// An app.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct MarAppWire {
    /// `mar-local-1-<name>`.
    id: String,
    name: String,
    /// The current release; null before the first deploy.
    release: Option<CurrentRelease>,
    /// 1, 2, 4 or 8: each process gets 256 MiB of memory, a quarter of a core and 128 processes a unit.
    size: u8,
    /// The app's own TLS certificate (`/v1/apps/{id}/ssl_certificate`); null when it has none.
    ssl_certificate: Option<CertificateWire>,
    /// The stack the next release is built for: `cedar-14` or `cedar`.
    stack: String,
    /// `created` (never deployed), `running` (a process is up) or `stopped`.
    state: &'static str,
    /// How many processes of each type run: `web` and the types the current release declares.
    structure: BTreeMap<String, u32>,
}

#[derive(Serialize, ToSchema)]
struct CurrentRelease {
    buildpack: String,
    /// The git commit built, or the slug's tag.
    commit: String,
    version: u32,
}

/// A change of an app.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "read by hand in `update`, for its errors; this is its schema")]
struct AppChangeWire {
    /// The stack the next release is built for: `cedar-14` or `cedar` (both use the host's tools).
    stack: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct AppStatusWire {
    processes: Vec<ProcessWire>,
}

/// One process of the app.
#[derive(Serialize, ToSchema)]
struct ProcessWire {
    /// The process type and number: `web.1`.
    id: String,
    /// How often it was started again after it exited.
    restarts: u32,
    /// `up` or `starting`.
    state: &'static str,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct Page {
    /// Skips this many of the kept lines, oldest first.
    offset: Option<usize>,
    /// At most this many lines: up to 1000, 100 if not given.
    limit: Option<usize>,
    /// `true`: the last `limit` lines, then each new one as it comes, one JSON object a line
    /// (`application/x-ndjson`), until the client goes.
    follow: Option<bool>,
}

/// A line of the app's log.
#[derive(Serialize, ToSchema)]
struct AppLogLineWire {
    /// `<source>: <text>`.
    log: String,
    /// The process that wrote it (`web.1`), or `mar` for the runtime's notes.
    source: String,
    /// RFC 3339.
    time: String,
}

#[derive(Serialize, ToSchema)]
struct AppLogs {
    results: Vec<AppLogLineWire>,
}

/// A command to run once.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "read by hand in `exec`, for its errors; this is its schema")]
struct ExecWire {
    /// Run with `bash -c`.
    cmd: String,
}

/// What a command printed, and how it ended.
#[derive(Serialize, ToSchema)]
struct ExecResultWire {
    /// Its exit status; null when it was killed (by the time limit or a signal).
    #[serde(rename = "exitCode")]
    exit_code: Option<i32>,
    /// The first MiB of its standard error.
    stderr: String,
    /// The first MiB of its standard output.
    stdout: String,
}

/// How many processes of each type run: a count as a number or a string (`{"web": "2", "worker": 1}`), at most
/// 16, of the types the current release declares.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "read by hand in `scale`, for its errors; this is its schema")]
struct ScaleWire(BTreeMap<String, NumberOrString>);

/// The app's variables, name to value.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "written by hand in `env_vars`; this is its schema")]
struct EnvVarsWire(BTreeMap<String, String>);

/// Variables to set, name to value (`{"KEY": "value", "OLD": null}`): null or empty unsets; numbers and booleans
/// are taken as their text. A name is letters, digits and `_`, not starting with a digit.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "read by hand in `set_env_vars`, for its errors; this is its schema")]
struct EnvChangesWire(BTreeMap<String, Option<String>>);

fn app_of(state: &ApiState, id: &str) -> Result<updraft_runtime::records::AppRecord, ApiError> {
    runtime(state)?.app(id).ok_or_else(|| ApiError::with_message(Code::NotFound, "no such app"))
}

/// One app: its state, size, process structure and current release.
#[utoipa::path(get, path = "/v1/apps/{id}", tag = tag::APPS, security(("accountToken" = [])),
    params(("id" = String, Path, description = "The app's id, `mar-local-1-<name>`.")),
    responses((status = 200, body = MarAppWire)))]
async fn show(State(state): State<ApiState>, _: Account, Path(id): Path<String>) -> Result<Response, ApiError> {
    let app = app_of(&state, &id)?;
    let processes = runtime(&state)?.processes(&id).await;
    let state_name = match (app.current(), processes.iter().any(|(_, pid, _)| pid.is_some())) {
        (None, _) => "created",
        (Some(_), true) => "running",
        (Some(_), false) => "stopped",
    };
    let release = app.current().map(|r| CurrentRelease {
        buildpack: r.buildpack.clone(),
        commit: r.commit.clone(),
        version: r.version,
    });
    Ok(Json(MarAppWire {
        id: app.id,
        name: app.name,
        release,
        size: app.size,
        ssl_certificate: app.ssl_certificate.map(|name| CertificateWire { name }),
        stack: app.stack,
        state: state_name,
        structure: app.structure,
    })
    .into_response())
}

/// Sets the stack the app's next release is built for (`qtc-cli mar stack:set`); answers the app.
#[utoipa::path(put, path = "/v1/apps/{id}", tag = tag::APPS, security(("accountToken" = [])),
    params(("id" = String, Path, description = "The app's id.")), request_body = AppChangeWire,
    responses((status = 200, body = MarAppWire),
    (status = 422, description = "A stack other than `cedar-14` and `cedar`.", body = ServiceError)))]
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

/// The app's processes and whether each is up.
#[utoipa::path(get, path = "/v1/apps/{id}/status", tag = tag::APPS, security(("accountToken" = [])),
    params(("id" = String, Path, description = "The app's id.")), responses((status = 200, body = AppStatusWire)))]
async fn status(State(state): State<ApiState>, _: Account, Path(id): Path<String>) -> Result<Response, ApiError> {
    app_of(&state, &id)?;
    let processes = runtime(&state)?
        .processes(&id)
        .await
        .into_iter()
        .map(|(name, pid, restarts)| ProcessWire {
            id: name,
            restarts,
            state: if pid.is_some() { "up" } else { "starting" },
        })
        .collect();
    Ok(Json(AppStatusWire { processes }).into_response())
}

/// Starts the current release's processes again.
#[utoipa::path(post, path = "/v1/apps/{id}/restart", tag = tag::APPS, security(("accountToken" = [])),
    params(("id" = String, Path, description = "The app's id.")),
    responses((status = 200, description = "Restarted: `{}`.", body = Object)))]
async fn restart(State(state): State<ApiState>, _: Account, Path(id): Path<String>) -> Result<Response, ApiError> {
    runtime(&state)?.restart(&id).await.map_err(runtime_error)?;
    Ok(Json(json!({})).into_response())
}

/// The app's log: its processes' output and the runtime's notes, the oldest kept line first.
///
/// The last 5,000 lines are kept. With `follow=true` the answer is a stream: the last `limit` lines, then each
/// new one as it comes, one JSON object a line, until the client goes.
#[utoipa::path(get, path = "/v1/apps/{id}/logs", tag = tag::APPS, security(("accountToken" = [])),
    params(("id" = String, Path, description = "The app's id."), Page),
    responses((status = 200, description = "The lines; with `follow=true`, a stream of them.",
        content((AppLogs = "application/json"), (AppLogLineWire = "application/x-ndjson")))))]
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
    let results = lines.iter().map(log_line).collect();
    Ok(Json(AppLogs { results }).into_response())
}

fn log_line(line: &updraft_runtime::logs::LogLine) -> AppLogLineWire {
    AppLogLineWire {
        log: format!("{}: {}", line.source, line.log),
        source: line.source.clone(),
        time: line.time.clone(),
    }
}

/// `?follow=true`: the last `limit` lines, then each new one as it comes, one JSON object a line, until the
/// client goes.
fn follow(logs: &updraft_runtime::logs::AppLogs, limit: usize) -> Response {
    let (kept, live) = logs.follow(limit);
    let line = |l: &updraft_runtime::logs::LogLine| {
        let mut text = serde_json::to_string(&log_line(l)).expect("a log line is JSON");
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

/// Runs a command once in a sandbox of the app's current release, and answers what it printed.
///
/// The command runs with `bash -c`, with the release's variables, user and limits, for at most 60 s.
#[utoipa::path(post, path = "/v1/apps/{id}/exec", tag = tag::APPS, security(("accountToken" = [])),
    params(("id" = String, Path, description = "The app's id.")), request_body = ExecWire,
    responses((status = 200, body = ExecResultWire),
    (status = 422, description = "No command, or the app has no release yet.", body = ServiceError)))]
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
    Ok(Json(ExecResultWire { exit_code: ran.exit_code, stderr: ran.stderr, stdout: ran.stdout }).into_response())
}

/// Empties the app's build cache.
#[utoipa::path(delete, path = "/v1/apps/{id}/build_cache", tag = tag::APPS, security(("accountToken" = [])),
    params(("id" = String, Path, description = "The app's id.")),
    responses((status = 200, description = "Emptied: `{}`.", body = Object)))]
async fn clear_build_cache(
    State(state): State<ApiState>,
    _: Account,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    runtime(&state)?.clear_build_cache(&id).await.map_err(runtime_error)?;
    Ok(Json(json!({})).into_response())
}

/// Empties the app's repository: the next push starts a new history; what runs keeps running.
#[utoipa::path(delete, path = "/v1/apps/{id}/repository", tag = tag::APPS, security(("accountToken" = [])),
    params(("id" = String, Path, description = "The app's id.")),
    responses((status = 200, description = "Emptied: `{}`.", body = Object)))]
async fn reset_repository(
    State(state): State<ApiState>,
    _: Account,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    runtime(&state)?.reset_repository(&id).await.map_err(runtime_error)?;
    Ok(Json(json!({})).into_response())
}

/// Sets how many processes of each type run.
#[utoipa::path(post, path = "/v1/apps/{id}/scale", tag = tag::APPS, security(("accountToken" = [])),
    params(("id" = String, Path, description = "The app's id.")), request_body = ScaleWire,
    responses((status = 200, description = "Scaled: `{}`.", body = Object),
    (status = 422, description = "Not a count, more than 16, a type the release does not declare, or no release yet.",
        body = ServiceError)))]
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
#[utoipa::path(get, path = "/v1/apps/{id}/env_vars", tag = tag::APPS, security(("accountToken" = [])),
    params(("id" = String, Path, description = "The app's id.")), responses((status = 200, body = EnvVarsWire)))]
async fn env_vars(State(state): State<ApiState>, _: Account, Path(id): Path<String>) -> Result<Response, ApiError> {
    let app = app_of(&state, &id)?;
    let mut env: serde_json::Map<String, Value> = app.env.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
    env.entry("STACK").or_insert_with(|| Value::String(app.stack.clone()));
    Ok(Json(Value::Object(env)).into_response())
}

/// Sets or unsets variables of the app.
///
/// A deployed app restarts with them as a new release, health-checked like a push: if its processes do not come
/// up, nothing changes (409).
#[utoipa::path(put, path = "/v1/apps/{id}/env_vars", tag = tag::APPS, security(("accountToken" = [])),
    params(("id" = String, Path, description = "The app's id.")), request_body = EnvChangesWire,
    responses((status = 200, description = "Set: `{}`.", body = Object),
    (status = 409, description = "The new release failed its health check.", body = ServiceError),
    (status = 422, description = "A bad name or value; nothing changed.", body = ServiceError)))]
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
