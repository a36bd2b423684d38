//! Releases and prebuilt slugs of an app (`/v1/apps/:id/releases…`, `/v1/apps/:id/slugs…`), and the upload URL a
//! slug's bytes are `PUT` to (`/v1/slug_uploads/:token`): the token in the path is the only credential it takes,
//! as the original's storage URL was, and it works for one upload within the hour.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use utoipa::ToSchema;
use utoipa_axum::routes;

use super::{Account, rfc3339, runtime, runtime_error};
use crate::ApiState;
use crate::body::read_json;
use crate::error::{ApiError, Code};
use crate::openapi::{ApiRouter, ServiceError, tag};

pub(super) fn routes() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(releases))
        .routes(routes!(rollback))
        .routes(routes!(slugs, create_slug))
        .routes(routes!(remove_slug))
        .routes(routes!(deploy_slug))
        .routes(routes!(upload))
}

// Members sorted by name, as `json!` wrote them (see `mar/mod.rs`).

/// A release: one immutable build of the app, numbered from 1.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ReleaseWire {
    /// The release whose build this one runs: itself, or an earlier one when only the variables changed.
    build: u32,
    /// The buildpack that built it.
    buildpack: String,
    /// The git commit built, or the slug's tag.
    commit: String,
    created_at: Option<String>,
    /// Whether it is the one running.
    current: bool,
    /// Procfile types and their commands.
    process_types: BTreeMap<String, String>,
    version: u32,
}

#[derive(Serialize, ToSchema)]
struct Releases {
    /// The kept five, oldest first.
    results: Vec<ReleaseWire>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct RollbackWire {
    /// The release asked for.
    rolled_back_to: u32,
    /// The new release, which runs its build.
    version: u32,
}

/// A prebuilt slug of the app.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SlugWire {
    created_at: Option<String>,
    /// When it was last deployed; null if never.
    deployed_at: Option<String>,
    /// From the announcement; the slug's own Procfile's when empty.
    process_types: BTreeMap<String, String>,
    tag: String,
    /// Null until its bytes are uploaded.
    uploaded_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct Slugs {
    results: Vec<SlugWire>,
}

/// A slug announced, before its bytes are uploaded.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "read by hand in `create_slug`, for its errors; this is its schema")]
struct NewSlugWire {
    /// 1 to 64 letters, digits, `.`, `_` and `-`.
    tag: String,
    /// Process types and their commands (`{"web": "python app.py"}`); without them, the slug's Procfile.
    process_types: Option<BTreeMap<String, String>>,
}

#[derive(Serialize, ToSchema)]
struct NewSlugAnswer {
    blob: SlugBlob,
    tag: String,
}

#[derive(Serialize, ToSchema)]
struct SlugBlob {
    /// Where to `PUT` the slug's bytes, with no other credential: once, within the hour.
    url: String,
}

/// The slug's bytes: a gzipped tar of the app's files (or of `./app/…`).
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code, reason = "streamed by hand in `upload`; this is its schema")]
struct SlugBytes(Vec<u8>);

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct UploadedSlug {
    tag: String,
    uploaded_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct DeployedSlug {
    /// The transcript of the deploy, a line each.
    output: Vec<String>,
    /// The new release's version.
    release: u32,
    tag: String,
}

/// The app's releases, oldest first: the last five are kept.
#[utoipa::path(get, path = "/v1/apps/{id}/releases", tag = tag::RELEASES, security(("accountToken" = [])),
    params(("id" = String, Path, description = "The app's id.")), responses((status = 200, body = Releases)))]
async fn releases(State(state): State<ApiState>, _: Account, Path(id): Path<String>) -> Result<Response, ApiError> {
    let app = runtime(&state)?.app(&id).ok_or_else(|| runtime_error(updraft_runtime::RuntimeError::NotFound))?;
    let current = app.current().map(|r| r.version);
    let results = app
        .releases
        .iter()
        .map(|r| ReleaseWire {
            build: r.build,
            buildpack: r.buildpack.clone(),
            commit: r.commit.clone(),
            created_at: rfc3339(Some(r.created_ms)),
            current: Some(r.version) == current,
            process_types: r.process_types.clone(),
            version: r.version,
        })
        .collect();
    Ok(Json(Releases { results }).into_response())
}

/// Runs a kept release's build again as a new release, health-checked like a push.
///
/// The new release has that release's process types and the app's variables of now.
#[utoipa::path(post, path = "/v1/apps/{id}/releases/{version}/rollback", tag = tag::RELEASES,
    security(("accountToken" = [])), params(("id" = String, Path, description = "The app's id."),
        ("version" = String, Path, description = "The release to return to: `3` or `v3`.")),
    responses((status = 200, body = RollbackWire),
    (status = 409, description = "The new release failed its health check; the old one keeps serving.",
        body = ServiceError),
    (status = 422, description = "Not a version, or a release no longer kept.", body = ServiceError)))]
async fn rollback(
    State(state): State<ApiState>,
    _: Account,
    Path((id, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let version = version.trim_start_matches('v').parse().map_err(|_| ApiError::field("version", "a number"))?;
    let release = runtime(&state)?.rollback(&id, version).await.map_err(runtime_error)?;
    Ok(Json(RollbackWire { rolled_back_to: version, version: release }).into_response())
}

/// The app's prebuilt slugs.
#[utoipa::path(get, path = "/v1/apps/{id}/slugs", tag = tag::RELEASES, security(("accountToken" = [])),
    params(("id" = String, Path, description = "The app's id.")), responses((status = 200, body = Slugs)))]
async fn slugs(State(state): State<ApiState>, _: Account, Path(id): Path<String>) -> Result<Response, ApiError> {
    let app = runtime(&state)?.app(&id).ok_or_else(|| runtime_error(updraft_runtime::RuntimeError::NotFound))?;
    let results = app
        .slugs
        .iter()
        .map(|s| SlugWire {
            created_at: rfc3339(Some(s.created_ms)),
            deployed_at: rfc3339(s.deployed_ms),
            process_types: s.process_types.clone(),
            tag: s.tag.clone(),
            uploaded_at: rfc3339(s.uploaded_ms),
        })
        .collect();
    Ok(Json(Slugs { results }).into_response())
}

/// Announces a prebuilt slug; answers the URL its bytes are then `PUT` to.
///
/// A slug is a gzipped tar of the app's files (or of `./app/…`, as Heroku makes them). An app keeps 20 slugs.
#[utoipa::path(post, path = "/v1/apps/{id}/slugs", tag = tag::RELEASES, security(("accountToken" = [])),
    params(("id" = String, Path, description = "The app's id.")), request_body = NewSlugWire,
    responses((status = 201, body = NewSlugAnswer),
    (status = 409, description = "An uploaded slug has this tag, or the app keeps 20 slugs.", body = ServiceError),
    (status = 422, description = "No tag, a bad one, or bad process types.", body = ServiceError)))]
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
    Ok((StatusCode::CREATED, Json(NewSlugAnswer { blob: SlugBlob { url }, tag: tag.to_owned() })).into_response())
}

/// Uploads a slug's bytes, to the URL its announcement answered.
///
/// The token in the path is the only credential: it takes one upload, within the hour, of at most the largest
/// file size (`--max-file-bytes`). The slug is checked before it is kept.
#[utoipa::path(put, path = "/v1/slug_uploads/{token}", tag = tag::RELEASES, security(()),
    params(("token" = String, Path, description = "The upload's token, from the slug's `blob.url`.")),
    request_body(content = SlugBytes, content_type = "application/octet-stream"),
    responses((status = 200, body = UploadedSlug),
    (status = 422, description = "Not a gzipped tar, or members outside the app.", body = ServiceError)))]
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
    Ok(Json(UploadedSlug { tag: slug.tag, uploaded_at: rfc3339(slug.uploaded_ms) }).into_response())
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

/// Deploys an uploaded slug as a new release, like a push.
///
/// The slug is unpacked as the app's user; its process types are the announcement's, else its Procfile's.
#[utoipa::path(post, path = "/v1/apps/{id}/slugs/{tag}/deploy", tag = tag::RELEASES, security(("accountToken" = [])),
    params(("id" = String, Path, description = "The app's id."), ("tag" = String, Path, description = "The slug's tag.")),
    responses((status = 200, body = DeployedSlug),
    (status = 409, description = "The new release failed its health check; the old one keeps serving.",
        body = ServiceError),
    (status = 422, description = "Not uploaded, not a gzipped tar, members outside the app, or no process type; \
        nothing changed.", body = ServiceError)))]
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
    Ok(Json(DeployedSlug { output, release: version, tag }).into_response())
}

/// Forgets a slug and its file; releases made from it keep running.
#[utoipa::path(delete, path = "/v1/apps/{id}/slugs/{tag}", tag = tag::RELEASES, security(("accountToken" = [])),
    params(("id" = String, Path, description = "The app's id."), ("tag" = String, Path, description = "The slug's tag.")),
    responses((status = 200, description = "Removed: `{}`.", body = Object)))]
async fn remove_slug(
    State(state): State<ApiState>,
    _: Account,
    Path((id, tag)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    runtime(&state)?.remove_slug(&id, &tag).await.map_err(runtime_error)?;
    Ok(Json(json!({})).into_response())
}
