//! The account API the QtEnginio test harness drives: a token for the account, then apps.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use updraft_store::App;

use super::{Form, TOKEN_LIFETIME_SECS, issue_token, storage, token_subject};
use crate::ApiState;
use crate::auth;
use crate::body::{read_bytes, read_json};
use crate::error::{ApiError, Code, EdsError};

/// The account's login: its email and an argon2 hash (PHC string) of its password.
#[derive(Debug, Clone)]
pub struct AccountLogin {
    pub email: String,
    pub password_hash: String,
}

impl AccountLogin {
    /// Keeps only an argon2 hash of the password.
    pub fn new(email: &str, password: &str) -> Result<AccountLogin, String> {
        Ok(AccountLogin { email: email.to_owned(), password_hash: auth::hash_password(password)? })
    }
}

const ACCOUNT: &str = "account";

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/account/auth/oauth2/token", post(token))
        .route("/v1/account/auth/identity", post(identity))
        .route("/v1/account/apps", get(list_apps).post(create_app))
        .route("/v1/account/apps/{app_id}", get(show_app).delete(delete_app))
}

/// OAuth2 password grant for the account: `grant_type=password&username=<email>&password=<pw>`.
async fn token(State(state): State<ApiState>, body: Body) -> Response {
    let bytes = match read_bytes(body, state.limits.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(err) => return EdsError(err).into_response(),
    };
    let form = Form::parse(&bytes);
    let field = |name: &str| form.get(name);
    if field("grant_type") != Some("password") {
        return oauth_error("unsupported_grant_type", "grant_type must be password");
    }
    let (Some(username), Some(password)) = (field("username"), field("password")) else {
        return oauth_error("invalid_request", "username and password are required");
    };
    if !is_account(&state, username, password).await {
        return oauth_error("invalid_grant", "invalid username or password");
    }
    match issue_token(&state, ACCOUNT).await {
        Ok(token) => Json(json!({"access_token": token, "token_type": "bearer", "expires_in": TOKEN_LIFETIME_SECS}))
            .into_response(),
        Err(err) => err.into_response(),
    }
}

/// The older QtEnginio harness's login: JSON `{"email", "password"}` for `{"sessionToken"}`, which it then sends
/// as `Enginio-Backend-Session`.
async fn identity(State(state): State<ApiState>, body: Body) -> Result<Response, EdsError> {
    let body = read_json(body, state.limits.max_body_bytes).await?;
    let field = |name: &str| body.as_ref().and_then(|b| b.get(name)).and_then(Value::as_str);
    let (Some(email), Some(password)) = (field("email"), field("password")) else {
        return Ok(oauth_error("invalid_request", "email and password are required"));
    };
    if !is_account(&state, email, password).await {
        return Ok(oauth_error("invalid_grant", "invalid email or password"));
    }
    Ok(Json(json!({"sessionToken": issue_token(&state, ACCOUNT).await?})).into_response())
}

/// Argon2 takes tens of milliseconds: it runs on the blocking pool, not on a task.
async fn is_account(state: &ApiState, email: &str, password: &str) -> bool {
    let Some(login) = state.account.clone() else { return false };
    if !email.eq_ignore_ascii_case(&login.email) {
        return false;
    }
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || auth::password_matches(&login.password_hash, &password)).await.unwrap_or(false)
}

/// RFC 6749's error form plus the EDS `errors` array, so either kind of client understands it.
pub(super) fn oauth_error(error: &str, description: &str) -> Response {
    let body = json!({
        "error": error,
        "error_description": description,
        "errors": [{"message": description, "reason": "BadRequest"}],
    });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

async fn require_account(state: &ApiState, headers: &HeaderMap) -> Result<(), EdsError> {
    let creds = auth::credentials(headers)?;
    match token_subject(state, &creds).await? {
        Some(subject) if subject == ACCOUNT => Ok(()),
        _ => Err(auth::require_token(&creds, None).unwrap_err().into()),
    }
}

fn app_json(app: &App) -> Value {
    let environments: Vec<Value> = app
        .backends
        .iter()
        .map(|b| {
            json!({
                "id": b.id,
                "name": b.environment,
                "appId": app.id,
                "masterKeys": [{"key": b.master_key}],
                "apiKeys": [{"key": b.api_key}],
                "secret": b.secret,
            })
        })
        .collect();
    json!({"id": app.id, "name": app.name, "environments": environments})
}

async fn list_apps(State(state): State<ApiState>, headers: HeaderMap) -> Result<Response, EdsError> {
    require_account(&state, &headers).await?;
    let apps = state.tenants.apps().await.map_err(storage)?;
    let results: Vec<Value> = apps.iter().map(app_json).collect();
    Ok(Json(json!({ "results": results })).into_response())
}

async fn create_app(State(state): State<ApiState>, headers: HeaderMap, body: Body) -> Result<Response, EdsError> {
    require_account(&state, &headers).await?;
    let body = read_json(body, state.limits.max_body_bytes).await?;
    let name = match body.as_ref().and_then(|b| b.get("name")) {
        Some(Value::String(name)) if !name.trim().is_empty() => name.trim().to_owned(),
        _ => return Err(ApiError::field("name", "can't be blank").into()),
    };
    let app = state.tenants.create_app(&name).await.map_err(storage)?;
    Ok((StatusCode::CREATED, Json(app_json(&app))).into_response())
}

async fn show_app(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, EdsError> {
    require_account(&state, &headers).await?;
    let app = state.tenants.app(&id).await.map_err(storage)?;
    let app = app.ok_or_else(|| ApiError::with_message(Code::NotFound, "App not found"))?;
    Ok(Json(app_json(&app)).into_response())
}

async fn delete_app(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, EdsError> {
    require_account(&state, &headers).await?;
    if !state.tenants.delete_app(&id).await.map_err(storage)? {
        return Err(ApiError::with_message(Code::NotFound, "App not found").into());
    }
    Ok(Json(json!({})).into_response())
}
