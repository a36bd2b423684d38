//! Releases and prebuilt slugs of an app (`/v1/apps/:id/releases…`, `/v1/apps/:id/slugs…`), and the upload URL a
//! slug's bytes are `PUT` to (`/v1/slug_uploads/:token`): the token in the path is the only credential it takes,
//! as the original's storage URL was, and it works for one upload within the hour.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::{Account, rfc3339, runtime, runtime_error};
use crate::ApiState;
use crate::body::read_json;
use crate::error::{ApiError, Code};

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/apps/{id}/releases", get(releases))
        .route("/v1/apps/{id}/releases/{version}/rollback", post(rollback))
        .route("/v1/apps/{id}/slugs", get(slugs).post(create_slug))
        .route("/v1/apps/{id}/slugs/{tag}", delete(remove_slug))
        .route("/v1/apps/{id}/slugs/{tag}/deploy", post(deploy_slug))
        .route("/v1/slug_uploads/{token}", put(upload))
}

/// `{"results":[{"version","build","commit","buildpack","createdAt","current"}]}`, oldest first.
async fn releases(State(state): State<ApiState>, _: Account, Path(id): Path<String>) -> Result<Response, ApiError> {
    let app = runtime(&state)?.app(&id).ok_or_else(|| runtime_error(updraft_runtime::RuntimeError::NotFound))?;
    let current = app.current().map(|r| r.version);
    let results: Vec<Value> = app
        .releases
        .iter()
        .map(|r| {
            json!({"version": r.version, "build": r.build, "commit": r.commit, "buildpack": r.buildpack,
                "processTypes": r.process_types, "createdAt": rfc3339(Some(r.created_ms)),
                "current": Some(r.version) == current})
        })
        .collect();
    Ok(Json(json!({"results": results})).into_response())
}

/// Runs release `version`'s build again as a new release, health-checked like a push.
async fn rollback(
    State(state): State<ApiState>,
    _: Account,
    Path((id, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let version = version.trim_start_matches('v').parse().map_err(|_| ApiError::field("version", "a number"))?;
    let release = runtime(&state)?.rollback(&id, version).await.map_err(runtime_error)?;
    Ok(Json(json!({"version": release, "rolledBackTo": version})).into_response())
}

/// `{"results":[{"tag","createdAt","uploadedAt","deployedAt","processTypes"}]}`
async fn slugs(State(state): State<ApiState>, _: Account, Path(id): Path<String>) -> Result<Response, ApiError> {
    let app = runtime(&state)?.app(&id).ok_or_else(|| runtime_error(updraft_runtime::RuntimeError::NotFound))?;
    let results: Vec<Value> = app
        .slugs
        .iter()
        .map(|s| {
            json!({"tag": s.tag, "createdAt": rfc3339(Some(s.created_ms)), "uploadedAt": rfc3339(s.uploaded_ms),
                "deployedAt": rfc3339(s.deployed_ms), "processTypes": s.process_types})
        })
        .collect();
    Ok(Json(json!({"results": results})).into_response())
}

/// `{"tag","process_types":{"web":"cmd"}}` → 201 `{"tag","blob":{"url"}}`, where the slug is then `PUT`.
async fn create_slug(
    State(state): State<ApiState>,
    _: Account,
    Path(id): Path<String>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let body = read_json(body, state.limits.max_body_bytes).await?.unwrap_or(Value::Null);
    let Some(tag) = body["tag"].as_str() else { return Err(ApiError::field("tag", "can't be blank")) };
    let process_types: BTreeMap<String, String> = match &body["process_types"] {
        Value::Null => BTreeMap::new(),
        types => serde_json::from_value(types.clone())
            .map_err(|_| ApiError::field("process_types", "a map of process type to command"))?,
    };
    let token = runtime(&state)?.create_slug(&id, tag, process_types).await.map_err(runtime_error)?;
    let url = format!("{}/v1/slug_uploads/{token}", state.http_origin(&parts));
    Ok((StatusCode::CREATED, Json(json!({"tag": tag, "blob": {"url": url}}))).into_response())
}

/// The slug's bytes, streamed to a staged file (at most the largest file size) and checked before they are kept.
async fn upload(
    State(state): State<ApiState>,
    Path(token): Path<String>,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let runtime = runtime(&state)?;
    if runtime.slug_upload(&token).is_none() {
        return Err(ApiError::with_message(Code::NotFound, "no upload is expected at this URL (or it expired)"));
    }
    let staged = runtime.slug_staging();
    if let Err(err) = stage(body, &staged, state.file_settings.max_bytes).await {
        let _ = tokio::fs::remove_file(&staged).await;
        return Err(err);
    }
    let slug = runtime.accept_slug(&token, &staged).await.map_err(runtime_error)?;
    Ok(Json(json!({"tag": slug.tag, "uploadedAt": rfc3339(slug.uploaded_ms)})).into_response())
}

async fn stage(mut body: axum::body::Body, staged: &std::path::Path, limit: u64) -> Result<(), ApiError> {
    let io = |err: std::io::Error| {
        tracing::error!(%err, "a slug upload could not be staged");
        ApiError::new(Code::Internal)
    };
    let mut file = tokio::fs::File::create(staged).await.map_err(io)?;
    let mut written = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| ApiError::with_message(Code::BadRequest, "the upload was cut off"))?;
        let Ok(data) = frame.into_data() else { continue };
        written += data.len() as u64;
        if written > limit {
            return Err(ApiError::with_message(Code::PayloadTooLarge, format!("a slug has at most {limit} bytes")));
        }
        file.write_all(&data).await.map_err(io)?;
    }
    file.sync_all().await.map_err(io)
}

async fn deploy_slug(
    State(state): State<ApiState>,
    _: Account,
    Path((id, tag)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (lines, mut transcript) = tokio::sync::mpsc::unbounded_channel();
    let deployed = runtime(&state)?
        .deploy_slug(&id, &tag, &updraft_runtime::build::Transcript(lines))
        .await
        .map_err(runtime_error);
    let mut output = Vec::new();
    while let Ok(line) = transcript.try_recv() {
        output.push(line);
    }
    let version = deployed?;
    Ok(Json(json!({"tag": tag, "release": version, "output": output})).into_response())
}

async fn remove_slug(
    State(state): State<ApiState>,
    _: Account,
    Path((id, tag)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    runtime(&state)?.remove_slug(&id, &tag).await.map_err(runtime_error)?;
    Ok(Json(json!({})).into_response())
}
