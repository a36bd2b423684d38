//! The account API the QtEnginio test harness drives: a token for the account, then apps.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use updraft_store::{AccessDefaults, App, Backend};
use utoipa::ToSchema;
use utoipa_axum::routes;

use super::{Form, TOKEN_LIFETIME_SECS, issue_token, token_subject};
use crate::ApiState;
use crate::auth;
use crate::body::{read_bytes, read_json};
use crate::error::{ApiError, Code, EdsError};
use crate::openapi::{ApiRouter, OAuthError, tag};
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

pub(super) fn routes() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(token))
        .routes(routes!(identity))
        .routes(routes!(list_apps, create_app))
        .routes(routes!(show_app, delete_app))
        .routes(routes!(update_environment))
}

/// An OAuth2 password grant for the account, as a form (`application/x-www-form-urlencoded`).
#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "read by hand from the form in `token`; this is its schema")]
struct AccountGrant {
    /// `password`.
    grant_type: String,
    /// The account's email (any case).
    username: String,
    password: String,
}

/// The account's token, in RFC 6749's form.
#[derive(Serialize, ToSchema)]
struct AccountTokenWire {
    /// Sent as `Authorization: Bearer <access_token>` to the account API, and with the master key to object
    /// types.
    access_token: String,
    /// Seconds the token lives.
    expires_in: i64,
    /// `bearer`.
    token_type: &'static str,
}

/// The older harness's login.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "read by hand in `identity`; this is its schema")]
struct AccountIdentity {
    email: String,
    password: String,
}

/// A session of the account: the token, sent as `Enginio-Backend-Session` (or as a bearer token).
#[derive(Serialize, ToSchema)]
struct AccountSession {
    #[serde(rename = "sessionToken")]
    session_token: String,
}

/// An app and its backends, one per environment.
#[derive(Serialize, ToSchema)]
struct AppWire {
    /// `development` and `production`.
    environments: Vec<EnvironmentWire>,
    id: String,
    name: String,
}

/// One environment of an app: a backend, named in data calls by its `id`, with its keys.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct EnvironmentWire {
    /// `open` or `locked`: what the backend allows before schemas and ACLs say more (`docs/access.md`).
    access_defaults: &'static str,
    api_keys: Vec<KeyWire>,
    app_id: String,
    /// The backend's id, sent as `Enginio-Backend-Id`.
    id: String,
    /// The backend's master key (`Enginio-Backend-MasterKey`): with the account token, it manages object types.
    master_keys: Vec<KeyWire>,
    /// `development` or `production`.
    name: String,
    /// The instance secret: as a bearer token, full access to the backend's data, ACLs bypassed.
    secret: String,
}

#[derive(Serialize, ToSchema)]
struct KeyWire {
    key: String,
}

#[derive(Serialize, ToSchema)]
struct AppsWire {
    results: Vec<AppWire>,
}

/// What a backend allows before a schema or an ACL says more.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "parsed by hand (`AccessDefaults::parse`); this is its schema")]
#[serde(rename_all = "lowercase")]
enum AccessMode {
    /// Anyone may create, read, change and delete; for development only.
    Open,
    /// Anonymous callers may only sign up and sign in; what a user creates is that user's alone.
    Locked,
}

/// One mode for both environments, or one per environment (either may be left to its default).
#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "read by hand in `requested_access`; this is its schema")]
#[serde(untagged)]
enum AccessChoice {
    Both(AccessMode),
    PerEnvironment { development: Option<AccessMode>, production: Option<AccessMode> },
}

/// A new app.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "read by hand in `create_app`, for its errors; this is its schema")]
#[serde(rename_all = "camelCase")]
struct NewApp {
    /// Not blank; leading and trailing spaces are dropped.
    name: String,
    /// Left out, `development` is `open` and `production` `locked`.
    access_defaults: Option<AccessChoice>,
}

/// A change to an environment.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "read by hand in `update_environment`; this is its schema")]
#[serde(rename_all = "camelCase")]
struct EnvironmentChange {
    /// Applies to objects created afterwards, and to member management at once.
    access_defaults: AccessMode,
}

/// Signs the account in: its token for the account API.
///
/// An OAuth2 password grant: `grant_type=password&username=<email>&password=<password>`. Failed attempts are
/// limited per email and per client address (429 with `Retry-After`).
#[utoipa::path(post, path = "/v1/account/auth/oauth2/token", tag = tag::ACCOUNT, security(()),
    request_body(content = AccountGrant, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, body = AccountTokenWire),
        (status = 400, description = "`unsupported_grant_type`, `invalid_request`, or `invalid_grant` for a wrong \
            email or password.", body = OAuthError),
        (status = 429, description = "Too many failed attempts; `Retry-After` says when to try again.",
            body = OAuthError)))]
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
        Ok(token) => {
            Json(AccountTokenWire { access_token: token, expires_in: TOKEN_LIFETIME_SECS, token_type: "bearer" })
                .into_response()
        }
        Err(err) => err.into_response(),
    }
}

/// Signs the account in the older way: a session token.
///
/// The older QtEnginio harness's login: JSON `{"email", "password"}` for `{"sessionToken"}`, which it then sends
/// as `Enginio-Backend-Session`. Failed attempts are limited as for the token.
#[utoipa::path(post, path = "/v1/account/auth/identity", tag = tag::ACCOUNT, security(()),
    request_body = AccountIdentity,
    responses(
        (status = 200, body = AccountSession),
        (status = 400, description = "`invalid_request`, or `invalid_grant` for a wrong email or password (a body \
            that is not JSON gets the EDS form).", body = OAuthError),
        (status = 429, description = "Too many failed attempts; `Retry-After` says when to try again.",
            body = OAuthError)))]
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
    Ok(Json(AccountSession { session_token: issue_token(&state, ACCOUNT).await? }).into_response())
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

fn environment_json(app_id: &str, b: &Backend) -> EnvironmentWire {
    EnvironmentWire {
        access_defaults: b.access.as_str(),
        api_keys: vec![KeyWire { key: b.api_key.clone() }],
        app_id: app_id.to_owned(),
        id: b.id.clone(),
        master_keys: vec![KeyWire { key: b.master_key.clone() }],
        name: b.environment.clone(),
        secret: b.secret.clone(),
    }
}

fn app_wire(app: &App) -> AppWire {
    let environments = app.backends.iter().map(|b| environment_json(&app.id, b)).collect();
    AppWire { environments, id: app.id.clone(), name: app.name.clone() }
}

pub(crate) fn app_json(app: &App) -> Value {
    serde_json::to_value(app_wire(app)).expect("an app is JSON")
}

/// The account's apps, each with its backends and their keys.
#[utoipa::path(get, path = "/v1/account/apps", tag = tag::ACCOUNT, security(("accountToken" = [])),
    responses((status = 200, body = AppsWire)))]
async fn list_apps(State(state): State<ApiState>, headers: HeaderMap) -> Result<Response, EdsError> {
    require_account(&state, &headers).await?;
    let apps = state.tenants.apps().await?;
    Ok(Json(AppsWire { results: apps.iter().map(app_wire).collect() }).into_response())
}

/// Creates an app with its two backends, `development` and `production`.
///
/// Each backend gets its id, master key, API key and instance secret. `accessDefaults` chooses what they allow
/// (by default `development` is `open`, `production` `locked`).
#[utoipa::path(post, path = "/v1/account/apps", tag = tag::ACCOUNT, security(("accountToken" = [])),
    request_body = NewApp, responses((status = 201, body = AppWire)))]
async fn create_app(State(state): State<ApiState>, headers: HeaderMap, body: Body) -> Result<Response, EdsError> {
    require_account(&state, &headers).await?;
    let body = read_json(body, state.limits.max_body_bytes).await?;
    let name = match body.as_ref().and_then(|b| b.get("name")) {
        Some(Value::String(name)) if !name.trim().is_empty() => name.trim().to_owned(),
        _ => return Err(ApiError::field("name", "can't be blank").into()),
    };
    let access = requested_access(body.as_ref().and_then(|b| b.get("accessDefaults")))?;
    let app = state.tenants.create_app(&name, &access).await?;
    Ok((StatusCode::CREATED, Json(app_wire(&app))).into_response())
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

/// Changes what an environment's backend allows: `{"accessDefaults": "open" | "locked"}`.
///
/// The change applies to objects created afterwards (objects keep the ACL they were created with) and to member
/// management at once.
#[utoipa::path(put, path = "/v1/account/apps/{app_id}/environments/{backend_id}", tag = tag::ACCOUNT,
    security(("accountToken" = [])),
    params(("app_id" = String, Path, description = "The app's id."),
        ("backend_id" = String, Path, description = "The environment's backend id.")),
    request_body = EnvironmentChange, responses((status = 200, body = EnvironmentWire)))]
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

/// One app, with its backends and their keys.
#[utoipa::path(get, path = "/v1/account/apps/{app_id}", tag = tag::ACCOUNT, security(("accountToken" = [])),
    params(("app_id" = String, Path, description = "The app's id.")), responses((status = 200, body = AppWire)))]
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

/// Deletes an app with its backends and all their data.
#[utoipa::path(delete, path = "/v1/account/apps/{app_id}", tag = tag::ACCOUNT, security(("accountToken" = [])),
    params(("app_id" = String, Path, description = "The app's id.")),
    responses((status = 200, description = "Deleted: `{}`", body = Object)))]
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
