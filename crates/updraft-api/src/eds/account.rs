//! The account API the QtEnginio test harness drives: a token for the account, then apps.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use updraft_store::{AccessDefaults, App, Backend};

use super::{Form, TOKEN_LIFETIME_SECS, issue_token, token_subject};
use crate::ApiState;
use crate::auth;
use crate::body::{read_bytes, read_json};
use crate::error::{ApiError, Code, EdsError};
use crate::passwords::{ClientAddress, Passwords};

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

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/account/auth/oauth2/token", post(token))
        .route("/v1/account/auth/identity", post(identity))
        .route("/v1/account/apps", get(list_apps).post(create_app))
        .route("/v1/account/apps/{app_id}", get(show_app).delete(delete_app))
        .route("/v1/account/apps/{app_id}/environments/{backend_id}", axum::routing::put(update_environment))
}

/// OAuth2 password grant for the account: `grant_type=password&username=<email>&password=<pw>`.
async fn token(State(state): State<ApiState>, client: ClientAddress, body: Body) -> Response {
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
    match account_login(&state, client, username, password).await {
        Ok(true) => {}
        Ok(false) => return oauth_error("invalid_grant", "invalid username or password"),
        Err(refused) => return refused,
    }
    match issue_token(&state, ACCOUNT).await {
        Ok(token) => Json(json!({"access_token": token, "token_type": "bearer", "expires_in": TOKEN_LIFETIME_SECS}))
            .into_response(),
        Err(err) => err.into_response(),
    }
}

/// The older QtEnginio harness's login: JSON `{"email", "password"}` for `{"sessionToken"}`, which it then sends
/// as `Enginio-Backend-Session`.
async fn identity(State(state): State<ApiState>, client: ClientAddress, body: Body) -> Result<Response, EdsError> {
    let body = read_json(body, state.limits.max_body_bytes).await?;
    let field = |name: &str| body.as_ref().and_then(|b| b.get(name)).and_then(Value::as_str);
    let (Some(email), Some(password)) = (field("email"), field("password")) else {
        return Ok(oauth_error("invalid_request", "email and password are required"));
    };
    match account_login(&state, client, email, password).await {
        Ok(true) => {}
        Ok(false) => return Ok(oauth_error("invalid_grant", "invalid email or password")),
        Err(refused) => return Ok(refused),
    }
    Ok(Json(json!({"sessionToken": issue_token(&state, ACCOUNT).await?})).into_response())
}

/// Whether these are the account's email and password, if the attempt limits let the attempt through; else the
/// answer to give (429).
async fn account_login(state: &ApiState, client: ClientAddress, email: &str, password: &str) -> Result<bool, Response> {
    let key = format!("account\n{}", email.to_lowercase());
    let attempt = state.passwords.attempt(client.0, &key).map_err(|t| t.oauth_response())?;
    let ok = is_account(&state.passwords, state.account.as_ref(), email, password).await;
    if !ok {
        attempt.failed();
    }
    Ok(ok)
}

/// A wrong email costs the same argon2 run as a wrong password, so the answer's timing does not tell the
/// account's email.
async fn is_account(passwords: &Passwords, login: Option<&AccountLogin>, email: &str, password: &str) -> bool {
    let Some(login) = login else { return false };
    let known = email.eq_ignore_ascii_case(&login.email);
    let matches = passwords.verify(known.then(|| login.password_hash.clone()), password.to_owned()).await;
    known && matches
}

/// Logs a warning naming each `open` backend, so an operator sees at start-up what anyone may change.
pub async fn warn_open_backends(tenants: &dyn updraft_store::Tenants) -> Result<(), updraft_store::StoreError> {
    for app in tenants.apps().await? {
        for backend in app.backends.iter().filter(|b| b.access == AccessDefaults::Open) {
            tracing::warn!(
                app = %app.name, backend = %backend.id, environment = %backend.environment,
                "backend is open: anyone may create, change and delete its users and usergroups and manage members; \
                 lock it before it holds real data (PUT /v1/account/apps/<app>/environments/<backend>)"
            );
        }
    }
    Ok(())
}

/// A bad OAuth2 request (400) in RFC 6749's form plus the EDS `errors` array, so either kind of client
/// understands it.
pub(super) fn oauth_error(error: &str, description: &str) -> Response {
    EdsError(ApiError::with_message(Code::BadRequest, description.to_owned())).oauth(error)
}

/// Whether `token` is a live token of the account (the platform's personal access and cloud tokens are these).
pub(crate) async fn is_account_token(state: &ApiState, token: &str) -> Result<bool, updraft_store::StoreError> {
    let grant = state.tenants.token(&super::tokens::token_hash(token)).await?;
    Ok(grant.is_some_and(|g| g.subject == ACCOUNT))
}

/// A new token of the account.
pub(crate) async fn account_token(state: &ApiState) -> Result<String, EdsError> {
    issue_token(state, ACCOUNT).await
}

/// How long a personal access token lives: ten years, until it is revoked.
const PERSONAL_TOKEN_LIFETIME_SECS: i64 = 10 * 365 * 86_400;

/// A new personal access token of the account, and the hash that revokes it.
pub(crate) async fn personal_token(state: &ApiState) -> Result<(String, String), EdsError> {
    let token = super::tokens::issue_token_for(state, ACCOUNT, PERSONAL_TOKEN_LIFETIME_SECS).await?;
    let hash = super::tokens::token_hash(&token);
    Ok((token, hash))
}

async fn require_account(state: &ApiState, headers: &HeaderMap) -> Result<(), EdsError> {
    let creds = auth::credentials(headers)?;
    match token_subject(state, &creds).await? {
        Some(subject) if subject == ACCOUNT => Ok(()),
        _ => Err(auth::require_token(&creds, None).unwrap_err().into()),
    }
}

fn environment_json(app_id: &str, b: &Backend) -> Value {
    json!({
        "id": b.id,
        "name": b.environment,
        "appId": app_id,
        "masterKeys": [{"key": b.master_key}],
        "apiKeys": [{"key": b.api_key}],
        "secret": b.secret,
        "accessDefaults": b.access.as_str(),
    })
}

pub(crate) fn app_json(app: &App) -> Value {
    let environments: Vec<Value> = app.backends.iter().map(|b| environment_json(&app.id, b)).collect();
    json!({"id": app.id, "name": app.name, "environments": environments})
}

async fn list_apps(State(state): State<ApiState>, headers: HeaderMap) -> Result<Response, EdsError> {
    require_account(&state, &headers).await?;
    let apps = state.tenants.apps().await?;
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
    let access = requested_access(body.as_ref().and_then(|b| b.get("accessDefaults")))?;
    let app = state.tenants.create_app(&name, &access).await?;
    Ok((StatusCode::CREATED, Json(app_json(&app))).into_response())
}

/// `accessDefaults` of a new app: absent (development `open`, production `locked`), one mode for both, or
/// `{"development": …, "production": …}` with either left to its default.
fn requested_access(value: Option<&Value>) -> Result<impl Fn(&str) -> AccessDefaults + Sync, EdsError> {
    let bad =
        || EdsError(ApiError::field("accessDefaults", "must be \"open\", \"locked\" or one of them per environment"));
    let mode = |value: Option<&Value>| match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => AccessDefaults::parse(text).map(Some).ok_or_else(bad),
        Some(_) => Err(bad()),
    };
    let (development, production) = match value {
        Some(Value::Object(per_environment)) => {
            if per_environment.keys().any(|k| k != "development" && k != "production") {
                return Err(bad());
            }
            (mode(per_environment.get("development"))?, mode(per_environment.get("production"))?)
        }
        other => {
            let both = mode(other)?;
            (both, both)
        }
    };
    Ok(move |environment: &str| {
        let chosen = if environment == "development" { development } else { production };
        chosen.unwrap_or_else(|| AccessDefaults::for_environment(environment))
    })
}

/// `PUT …/environments/<backend id>` with `{"accessDefaults": "open" | "locked"}`.
async fn update_environment(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path((app_id, backend_id)): Path<(String, String)>,
    body: Body,
) -> Result<Response, EdsError> {
    require_account(&state, &headers).await?;
    let body = read_json(body, state.limits.max_body_bytes).await?;
    let not_found = || EdsError(ApiError::with_message(Code::NotFound, "Environment not found"));
    let backend = state.tenants.backend(&backend_id).await?.filter(|b| b.app_id == app_id);
    let backend = backend.ok_or_else(not_found)?;
    let access = match body.as_ref().and_then(|b| b.get("accessDefaults")).and_then(Value::as_str) {
        Some(text) => AccessDefaults::parse(text),
        None => None,
    };
    let access = access.ok_or_else(|| ApiError::field("accessDefaults", "must be \"open\" or \"locked\""))?;
    if !state.tenants.set_access_defaults(&backend.id, access).await? {
        return Err(not_found());
    }
    if access == AccessDefaults::Open {
        tracing::warn!(backend = %backend.id, environment = %backend.environment, "backend is now open: anyone may change its users, usergroups and members");
    }
    Ok(Json(environment_json(&app_id, &Backend { access, ..backend })).into_response())
}

async fn show_app(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, EdsError> {
    require_account(&state, &headers).await?;
    let app = state.tenants.app(&id).await?;
    let app = app.ok_or_else(|| ApiError::with_message(Code::NotFound, "App not found"))?;
    Ok(Json(app_json(&app)).into_response())
}

async fn delete_app(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, EdsError> {
    require_account(&state, &headers).await?;
    if !state.tenants.delete_app(&id).await? {
        return Err(ApiError::with_message(Code::NotFound, "App not found").into());
    }
    Ok(Json(json!({})).into_response())
}

#[cfg(test)]
mod login_tests {
    use super::*;

    #[tokio::test]
    async fn finding_19_a_wrong_email_costs_an_argon2_run_too() {
        let passwords = Passwords::default();
        let login = AccountLogin::new("admin@example.com", "pw").unwrap();
        assert!(is_account(&passwords, Some(&login), "ADMIN@example.com", "pw").await);
        assert_eq!(passwords.runs(), 1);
        assert!(!is_account(&passwords, Some(&login), "admin@example.com", "wrong").await);
        assert_eq!(passwords.runs(), 2);
        assert!(!is_account(&passwords, Some(&login), "someone@example.com", "pw").await);
        assert_eq!(passwords.runs(), 3, "an unknown email is checked like a known one");
    }
}
