//! OAuth2 for a backend's users: password and refresh grants, revocation, the current user.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use updraft_core::ids::ObjectId;
use updraft_store::{Access, Collection, StoreError, USERS, Users};
use utoipa::ToSchema;
use utoipa_axum::routes;

use super::account::oauth_error;
use super::objects_doc::{EdsObject, Ref};
use super::{
    Caller, DataRequest, Form, REFRESH_LIFETIME_SECS, TOKEN_LIFETIME_SECS, backend_of, group_refs, issue_token,
    issue_token_for, refresh_subject, token_hash, user_subject,
};
use crate::ApiState;
use crate::body::{read_bytes, read_json};
use crate::error::{ApiError, Code, EdsError};
use crate::openapi::{ApiRouter, OAuthError, tag};
use crate::passwords::{ClientAddress, Passwords};

pub(super) fn routes() -> ApiRouter {
    ApiRouter::new().routes(routes!(token)).routes(routes!(identity)).routes(routes!(revoke)).routes(routes!(user))
}

/// A grant for a user of the backend, as a form (`application/x-www-form-urlencoded`).
#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "read by hand from the form in `token`; this is its schema")]
struct UserGrant {
    /// `password` (with `username` and `password`) or `refresh_token` (with `refresh_token`).
    grant_type: String,
    username: Option<String>,
    password: Option<String>,
    /// A refresh token of an earlier answer: it is used up, and the answer carries its successor.
    refresh_token: Option<String>,
}

/// A user's tokens, in RFC 6749's form, with the user and its groups.
#[derive(Serialize, ToSchema)]
struct UserTokens {
    /// Sent as `Authorization: Bearer <access_token>`, with `Enginio-Backend-Id`.
    access_token: String,
    enginio_data: SignedIn,
    /// Seconds the access token lives.
    expires_in: i64,
    /// For the `refresh_token` grant: lives 30 days, and is used once.
    refresh_token: String,
    /// `bearer`.
    token_type: &'static str,
}

/// Who signed in.
#[derive(Serialize, ToSchema)]
struct SignedIn {
    #[schema(value_type = EdsObject)]
    user: Value,
    /// The groups the user belongs to.
    #[schema(value_type = Vec<Ref>)]
    usergroups: Value,
}

/// Pre-1.0 QtEnginio's login.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "read by hand in `identity`; this is its schema")]
struct UserIdentity {
    username: String,
    password: String,
}

/// A user's session, with the user and its groups.
#[derive(Serialize, ToSchema)]
struct UserSession {
    /// Sent as `Enginio-Backend-Session` (or as a bearer token), with `Enginio-Backend-Id`.
    #[serde(rename = "sessionToken")]
    session_token: String,
    #[schema(value_type = EdsObject)]
    user: Value,
    /// The groups the user belongs to.
    #[schema(value_type = Vec<Ref>)]
    usergroups: Value,
}

/// A token to revoke, as a form (`application/x-www-form-urlencoded`).
#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "read by hand from the form in `revoke`; this is its schema")]
struct Revocation {
    /// An access token or a refresh token.
    token: String,
}

/// The signed-in user, or without `Enginio-Backend-Id` the account.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "the answers of `current_user` and `mar::platform_user`; this is their schema")]
#[serde(untagged)]
enum CurrentUser {
    User(UserWithGroups),
    Account(PlatformUser),
}

/// A user of the backend with its groups.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "written by `current_user`; this is its schema")]
struct UserWithGroups {
    #[serde(flatten)]
    user: EdsObject,
    usergroups: Vec<Ref>,
}

/// The account, as the platform API (`qtc-cli`) knows its user.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code, reason = "written by `mar::platform_user`; this is its schema")]
#[serde(deny_unknown_fields)]
struct PlatformUser {
    /// `account`.
    id: String,
    email: Option<String>,
    /// The email.
    username: Option<String>,
    name: String,
}

/// The signed-in user, with its groups.
///
/// With `Enginio-Backend-Id`, the user whose access token this is, with `usergroups` as `{id, objectType}` refs
/// (the instance secret and anonymous callers get 401). Without it, this is the platform API's call: the
/// account, for the account token (errors then in the `{"error": {...}}` form).
#[utoipa::path(get, path = "/v1/user", tag = tag::AUTH,
    security(("backendId" = [], "userToken" = []), ("accountToken" = [])),
    responses((status = 200, body = CurrentUser)))]
async fn user(State(state): State<ApiState>, request: axum::extract::Request) -> Response {
    if !request.headers().contains_key("enginio-backend-id") {
        return crate::mar::platform_user(&state, request.headers()).await.into_response();
    }
    let (mut parts, _) = request.into_parts();
    match <DataRequest as axum::extract::FromRequestParts<ApiState>>::from_request_parts(&mut parts, &state).await {
        Ok(request) => current_user(State(state), request).await.into_response(),
        Err(err) => err.into_response(),
    }
}

/// The user whose username and password these are, if the attempt limits let the attempt through; else the
/// answer to give (429, or a storage failure).
async fn verified_user(
    state: &ApiState,
    client: ClientAddress,
    backend: &str,
    username: &str,
    password: &str,
) -> Result<Option<Value>, Response> {
    let attempt =
        state.passwords.attempt(client.0, &format!("{backend}\n{username}")).map_err(|t| t.oauth_response())?;
    let user = password_check(state.users.as_ref(), &state.passwords, backend, username, password)
        .await
        .map_err(|err| EdsError::from(err).into_response())?;
    if user.is_none() {
        attempt.failed();
    }
    Ok(user)
}

/// The user if the password is its own. An unknown username costs the same argon2 run as a known one, so the
/// answer's timing does not tell which usernames exist.
async fn password_check(
    users: &dyn Users,
    passwords: &Passwords,
    backend: &str,
    username: &str,
    password: &str,
) -> Result<Option<Value>, StoreError> {
    let (user, hash) = users.login(backend, username).await?.unzip();
    let matches = passwords.verify(hash, password.to_owned()).await;
    Ok(user.filter(|_| matches))
}

/// Signs a user in the pre-1.0 way: a session token.
///
/// Pre-1.0 QtEnginio's login: JSON `{"username", "password"}` for `{"sessionToken", "user", "usergroups"}`; the
/// session then travels as `Enginio-Backend-Session`. Failed attempts are limited per username and per client
/// address (429 with `Retry-After`).
#[utoipa::path(post, path = "/v1/auth/identity", tag = tag::AUTH, security(("backendId" = [])),
    request_body = UserIdentity,
    responses(
        (status = 200, body = UserSession),
        (status = 400, description = "`invalid_request`, or `invalid_grant` for a wrong username or password (no \
            `Enginio-Backend-Id`, or a body that is not JSON, gets the EDS form).", body = OAuthError),
        (status = 429, description = "Too many failed attempts; `Retry-After` says when to try again.",
            body = OAuthError)))]
async fn identity(
    State(state): State<ApiState>,
    client: ClientAddress,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, EdsError> {
    let backend = backend_of(&state, &headers).await?;
    let body = read_json(body, state.limits.max_body_bytes).await?;
    let field = |name: &str| body.as_ref().and_then(|b| b.get(name)).and_then(Value::as_str);
    let (Some(username), Some(password)) = (field("username"), field("password")) else {
        return Ok(oauth_error("invalid_request", "username and password are required"));
    };
    let user = match verified_user(&state, client, &backend.id, username, password).await {
        Ok(Some(user)) => user,
        Ok(None) => return Ok(oauth_error("invalid_grant", "invalid username or password")),
        Err(refused) => return Ok(refused),
    };
    let id = user["id"].as_str().unwrap_or_default().to_owned();
    let usergroups = group_refs(&state, &backend.id, &id).await?;
    let session = issue_token(&state, &user_subject(&backend.id, &id)).await?;
    Ok(Json(UserSession { session_token: session, user, usergroups }).into_response())
}

/// Signs a user in: an access token and a refresh token.
///
/// An OAuth2 grant of the backend named by `Enginio-Backend-Id`: `grant_type=password&username=…&password=…`,
/// or `grant_type=refresh_token&refresh_token=…` (the refresh token is used up: the answer carries its
/// successor). `enginio_data` holds the user and its groups. Failed password attempts are limited per username
/// and per client address (429 with `Retry-After`).
#[utoipa::path(post, path = "/v1/auth/oauth2/token", tag = tag::AUTH, security(("backendId" = [])),
    request_body(content = UserGrant, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, body = UserTokens),
        (status = 400, description = "`unsupported_grant_type`, `invalid_request`, or `invalid_grant` for a wrong \
            username or password or an unknown, expired or used refresh token (no `Enginio-Backend-Id` gets the \
            EDS form).", body = OAuthError),
        (status = 429, description = "Too many failed attempts; `Retry-After` says when to try again.",
            body = OAuthError)))]
async fn token(
    State(state): State<ApiState>,
    client: ClientAddress,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, EdsError> {
    let backend = backend_of(&state, &headers).await?;
    let form = Form::parse(&read_bytes(body, state.limits.max_body_bytes).await?);
    let user = match form.get("grant_type") {
        Some("password") => {
            let (Some(username), Some(password)) = (form.get("username"), form.get("password")) else {
                return Ok(oauth_error("invalid_request", "username and password are required"));
            };
            match verified_user(&state, client, &backend.id, username, password).await {
                Ok(Some(user)) => user,
                Ok(None) => return Ok(oauth_error("invalid_grant", "invalid username or password")),
                Err(refused) => return Ok(refused),
            }
        }
        Some("refresh_token") => {
            let Some(refresh) = form.get("refresh_token") else {
                return Ok(oauth_error("invalid_request", "refresh_token is required"));
            };
            let prefix = refresh_subject(&backend.id, "");
            let hash = token_hash(refresh);
            let grant = state.tenants.token(&hash).await?;
            let user_id = grant.and_then(|g| g.subject.strip_prefix(&prefix).map(str::to_owned));
            let user = match user_id.as_deref().and_then(ObjectId::parse) {
                Some(id) => {
                    state
                        .store
                        .get(Collection { backend: &backend.id, object_type: USERS }, id, Access::Everything)
                        .await?
                }
                None => None,
            };
            let Some(user) = user else {
                return Ok(oauth_error("invalid_grant", "invalid or expired refresh token"));
            };
            // A refresh token is used once: the answer carries its successor. Of concurrent uses, only the one
            // whose delete removed it goes on; the token family never forks.
            if !state.tenants.revoke_token(&hash).await? {
                return Ok(oauth_error("invalid_grant", "invalid or expired refresh token"));
            }
            user
        }
        _ => return Ok(oauth_error("unsupported_grant_type", "grant_type must be password or refresh_token")),
    };
    let id = user["id"].as_str().unwrap_or_default().to_owned();
    let usergroups = group_refs(&state, &backend.id, &id).await?;
    let access = issue_token(&state, &user_subject(&backend.id, &id)).await?;
    let refresh = issue_token_for(&state, &refresh_subject(&backend.id, &id), REFRESH_LIFETIME_SECS).await?;
    Ok(Json(UserTokens {
        access_token: access,
        enginio_data: SignedIn { user, usergroups },
        expires_in: TOKEN_LIFETIME_SECS,
        refresh_token: refresh,
        token_type: "bearer",
    })
    .into_response())
}

/// Revokes an access or refresh token: signs out.
///
/// `token=<access or refresh token>`; answers `{}` whether or not the token was known. Notification streams
/// and sockets opened with the token are closed.
#[utoipa::path(post, path = "/v1/auth/oauth2/revoke", tag = tag::AUTH, security(("backendId" = [])),
    request_body(content = Revocation, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "`{}`", body = Object),
        (status = 400, description = "`invalid_request`: no `token` (no `Enginio-Backend-Id` gets the EDS form).",
            body = OAuthError)))]
async fn revoke(State(state): State<ApiState>, headers: HeaderMap, body: Body) -> Result<Response, EdsError> {
    backend_of(&state, &headers).await?;
    let form = Form::parse(&read_bytes(body, state.limits.max_body_bytes).await?);
    let Some(token) = form.get("token") else {
        return Ok(oauth_error("invalid_request", "token is required"));
    };
    state.tenants.revoke_token(&token_hash(token)).await?;
    state.sessions.token_revoked(&state, token).await;
    Ok(Json(json!({})).into_response())
}

/// The signed-in user with its groups (`usergroups` as `{id, objectType}` refs).
async fn current_user(State(state): State<ApiState>, request: DataRequest) -> Result<Response, EdsError> {
    let Caller::User(id) = &request.caller else {
        return Err(ApiError::with_message(Code::AuthorizationRequired, "A user access token is required").into());
    };
    let at = Collection { backend: &request.backend.id, object_type: USERS };
    let user = match ObjectId::parse(id) {
        Some(id) => state.store.get(at, id, Access::Everything).await?,
        None => None,
    };
    let Some(Value::Object(mut user)) = user else {
        return Err(ApiError::with_message(Code::InvalidCredentials, "The user no longer exists").into());
    };
    user.insert("usergroups".into(), group_refs(&state, &request.backend.id, id).await?);
    Ok(Json(user).into_response())
}

#[cfg(test)]
mod tests {
    use serde_json::Map;
    use updraft_store::{Acl, Author, BoxFuture, NewPassword, Patch};

    use super::*;

    /// A backend with one user, `ann`.
    struct OneUser(String);

    impl Users for OneUser {
        fn insert_user<'a>(
            &'a self,
            _: &'a str,
            _: Map<String, Value>,
            _: &'a str,
            _: Author<'a>,
            _: Acl,
        ) -> BoxFuture<'a, Result<Value, StoreError>> {
            unimplemented!()
        }

        fn update_user<'a>(
            &'a self,
            _: &'a str,
            _: ObjectId,
            _: Patch,
            _: Option<NewPassword<'a>>,
            _: Author<'a>,
            _: Access<'a>,
        ) -> BoxFuture<'a, Result<Option<Value>, StoreError>> {
            unimplemented!()
        }

        fn login<'a>(
            &'a self,
            _: &'a str,
            name: &'a str,
        ) -> BoxFuture<'a, Result<Option<(Value, String)>, StoreError>> {
            let found = (name == "ann").then(|| (json!({"username": "ann"}), self.0.clone()));
            Box::pin(async move { Ok(found) })
        }
    }

    #[tokio::test]
    async fn finding_19_an_unknown_username_costs_an_argon2_run_too() {
        let passwords = Passwords::default();
        let users = OneUser(passwords.hash("pw".into()).await.unwrap());
        let check = |name, password| password_check(&users, &passwords, "b", name, password);
        assert!(check("ann", "pw").await.unwrap().is_some());
        assert_eq!(passwords.runs(), 2);
        assert!(check("ann", "wrong").await.unwrap().is_none());
        assert_eq!(passwords.runs(), 3);
        assert!(check("nobody", "pw").await.unwrap().is_none());
        assert_eq!(passwords.runs(), 4, "an unknown username is checked like a known one");
    }
}
