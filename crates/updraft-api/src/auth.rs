//! Who is calling: the Authorization header, the admin tokens, and EDS users verified against EDS.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};
use serde_json::Value;
use updraft_gateway::{AccessControl, GatewayConfig, Permissions};
use updraft_store::{Groups, Subject, Tenants, USERGROUPS};

use crate::error::{ApiError, Code};

/// How long a verified (or refused) EDS token is trusted without asking EDS again.
const EDS_CACHE_TTL: Duration = Duration::from_secs(30);
const EDS_CACHE_MAX: usize = 10_000;
const EDS_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    None,
    Bearer(String),
    /// A scheme other than Bearer, or no token: never grants anything.
    Unusable,
}

/// Reads an admin token (a gateway's security token, `UPDRAFT_ADMIN_TOKEN`): only `Authorization: Bearer <token>`
/// exactly, one space and nothing after the token. The leniencies of [`credentials`] humour old EDS clients'
/// user tokens; admin tokens have no such clients, so they count in one place and one shape only.
pub fn admin_credentials(headers: &HeaderMap) -> Credentials {
    let Some(value) = headers.get(header::AUTHORIZATION) else { return Credentials::None };
    match value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")) {
        Some(token) if !token.is_empty() && !token.contains(|c: char| c.is_ascii_whitespace()) => {
            Credentials::Bearer(token.to_owned())
        }
        _ => Credentials::Unusable,
    }
}

/// Reads a user's token from `Authorization`. Anything but `Bearer <token>` is kept as unusable rather than
/// refused here: the original ignored it where no authorization is required. Admin tokens are read by
/// [`admin_credentials`].
pub fn credentials(headers: &HeaderMap) -> Result<Credentials, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        // Pre-1.0 QtEnginio sends the session from `/v1/auth/identity` in its own header; it is one of our
        // tokens like any bearer.
        return Ok(match headers.get("enginio-backend-session").map(|v| v.to_str()) {
            None => Credentials::None,
            Some(Ok(token)) if !token.trim().is_empty() => Credentials::Bearer(token.trim().to_owned()),
            Some(_) => Credentials::Unusable,
        });
    };
    let Ok(value) = value.to_str() else { return Ok(Credentials::Unusable) };
    let mut parts = value.split_ascii_whitespace();
    match (parts.next(), parts.next()) {
        (Some(scheme), Some(token)) if scheme.eq_ignore_ascii_case("bearer") => {
            Ok(Credentials::Bearer(token.to_owned()))
        }
        _ => Ok(Credentials::Unusable),
    }
}

/// An argon2 hash (PHC string) of a password, with a fresh salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::PasswordHasher;
    use argon2::password_hash::phc::PasswordHash;
    let hash: PasswordHash = argon2::Argon2::default().hash_password(password.as_bytes()).map_err(|e| e.to_string())?;
    Ok(hash.to_string())
}

pub fn password_matches(hash: &str, password: &str) -> bool {
    use argon2::password_hash::PasswordVerifier;
    use argon2::password_hash::phc::PasswordHash;
    PasswordHash::new(hash)
        .is_ok_and(|hash| argon2::Argon2::default().verify_password(password.as_bytes(), &hash).is_ok())
}

/// Compares secrets in time independent of where they differ.
pub fn same_secret(given: &str, expected: &str) -> bool {
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether the credentials are `expected` (an admin token); absent `expected` admits nobody.
pub fn is_token(creds: &Credentials, expected: Option<&str>) -> bool {
    match (creds, expected) {
        (Credentials::Bearer(given), Some(expected)) => same_secret(given, expected),
        _ => false,
    }
}

/// Requires the given admin token.
pub fn require_token(creds: &Credentials, expected: Option<&str>) -> Result<(), ApiError> {
    if is_token(creds, expected) {
        return Ok(());
    }
    Err(match creds {
        Credentials::None => ApiError::new(Code::AuthorizationRequired),
        Credentials::Bearer(_) => ApiError::new(Code::InvalidCredentials),
        Credentials::Unusable => {
            ApiError::with_message(Code::InvalidCredentials, "Access denied: only Bearer tokens are accepted")
        }
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdsUser {
    pub id: String,
    /// The user's groups as ACL subjects.
    pub groups: Vec<Subject>,
}

impl EdsUser {
    /// The user and its groups, as ACL subjects (and socket tags).
    pub fn subjects(&self) -> Vec<Subject> {
        std::iter::once(Subject::user(&self.id)).chain(self.groups.iter().cloned()).collect()
    }
}

/// Who asks a gateway for a socket URI or sends a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayCaller {
    Admin,
    Anonymous,
    User(EdsUser),
}

impl GatewayCaller {
    /// Tags a socket opened by this caller carries, so EDS changes can be routed to it.
    pub fn socket_tags(&self) -> Vec<String> {
        match self {
            GatewayCaller::User(user) => user.subjects().iter().map(ToString::to_string).collect(),
            GatewayCaller::Admin | GatewayCaller::Anonymous => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Getting a socket URI (`EDS_PERMISSIONS.read`).
    Read,
    /// Sending a message (`EDS_PERMISSIONS.write`).
    Write,
}

/// EDS URI, backend id, token.
type CacheKey = (String, String, String);

/// How far a gateway's `EDS_URI` is trusted, by where it came from.
#[derive(Clone, Copy)]
pub struct Remote<'a> {
    /// `EDS_URI` of the settings: the operator's choice, asked as it is.
    pub operator_uri: &'a str,
    /// Any other URI was set through the API by a gateway admin and must pass the webhook guard, again at each
    /// request: it receives users' tokens.
    pub guard: &'a updraft_realtime::outbound::Guard,
}

/// Verifies EDS user tokens: in-process when this server hosts the backend, otherwise with
/// `GET <EDS_URI>`, remembering those answers briefly. With no `EDS_URI` (the default), only tokens of backends
/// hosted here are accepted: nothing is sent anywhere.
pub struct EdsVerifier {
    client: reqwest::Client,
    /// For URIs set through the API: the webhook guard's resolver, no redirects, no proxy.
    guarded: reqwest::Client,
    cache: Mutex<HashMap<CacheKey, (Instant, Option<EdsUser>)>>,
    local: Option<LocalEds>,
}

/// The backends this server hosts, for verifying their tokens without an HTTP round trip.
struct LocalEds {
    tenants: Arc<dyn Tenants>,
    groups: Arc<dyn Groups>,
}

impl Default for EdsVerifier {
    fn default() -> EdsVerifier {
        let client = reqwest::Client::builder().timeout(EDS_TIMEOUT).build().expect("HTTP client");
        let guarded =
            updraft_realtime::outbound::client_builder(None).timeout(EDS_TIMEOUT).build().expect("HTTP client");
        EdsVerifier { client, guarded, cache: Mutex::default(), local: None }
    }
}

impl EdsVerifier {
    /// A verifier that answers for the backends in `tenants` itself. Those answers are not cached, so a
    /// revoked token stops working at once.
    pub fn with_local(tenants: Arc<dyn Tenants>, groups: Arc<dyn Groups>) -> EdsVerifier {
        EdsVerifier { local: Some(LocalEds { tenants, groups }), ..EdsVerifier::default() }
    }

    /// Decides whether the caller may do `need` on a gateway configured as `config`. `admin` is read with
    /// [`admin_credentials`], `creds` (a user's token) with [`credentials`].
    pub async fn authorize(
        &self,
        config: &GatewayConfig,
        admin: &Credentials,
        creds: &Credentials,
        need: Need,
        remote: Remote<'_>,
    ) -> Result<GatewayCaller, ApiError> {
        if is_token(admin, config.security_token.as_deref()) {
            return Ok(GatewayCaller::Admin);
        }
        match config.access {
            AccessControl::None => Ok(GatewayCaller::Anonymous),
            AccessControl::Custom => Err(require_token(admin, config.security_token.as_deref()).unwrap_err()),
            AccessControl::Eds => {
                let token = match creds {
                    Credentials::Bearer(token) => token,
                    other => return Err(require_token(other, None).unwrap_err()),
                };
                let user =
                    self.verify(config, token, remote).await?.ok_or_else(|| ApiError::new(Code::InvalidCredentials))?;
                let subjects = match need {
                    Need::Read => &config.eds_permissions.read,
                    Need::Write => &config.eds_permissions.write,
                };
                if !Permissions::allows(subjects, &user.subjects()) {
                    return Err(ApiError::new(Code::AccessDenied));
                }
                Ok(GatewayCaller::User(user))
            }
        }
    }

    /// The user behind an EDS token, `None` when EDS refuses it.
    async fn verify(
        &self,
        config: &GatewayConfig,
        token: &str,
        remote: Remote<'_>,
    ) -> Result<Option<EdsUser>, ApiError> {
        let Some(backend) = config.eds_backend_id.as_deref().filter(|b| !b.is_empty()) else {
            return Ok(None);
        };
        if let Some(local) = &self.local {
            let hosted = local.tenants.backend(backend).await.map_err(unavailable)?;
            if hosted.is_some() {
                let user =
                    crate::eds::user_of_token(local.tenants.as_ref(), backend, token).await.map_err(unavailable)?;
                let Some(id) = user else { return Ok(None) };
                let groups =
                    crate::eds::group_subjects(local.groups.as_ref(), backend, &id).await.map_err(unavailable)?;
                return Ok(Some(EdsUser { id, groups }));
            }
        }
        // Not hosted here (never, or no longer): only an EDS_URI can vouch for the token. Unset, as for a gateway
        // bound to a backend of this server, nobody can.
        if config.eds_uri.is_empty() {
            return Ok(None);
        }
        let key = (config.eds_uri.clone(), backend.to_owned(), token.to_owned());
        if let Some((at, user)) = self.cache.lock().expect("cache lock").get(&key)
            && at.elapsed() < EDS_CACHE_TTL
        {
            return Ok(user.clone());
        }
        let unavailable = || ApiError::with_message(Code::Unavailable, "Identity provider unavailable");
        let pinned_client;
        let client = if config.eds_uri == remote.operator_uri {
            &self.client
        } else {
            match remote.guard.recheck(&config.eds_uri).await {
                Ok(None) => &self.guarded,
                // A name on one of our ports goes to exactly the addresses just checked.
                Ok(Some(pinned)) => {
                    let client = updraft_realtime::outbound::client_builder(Some(&pinned)).timeout(EDS_TIMEOUT).build();
                    pinned_client = client.map_err(|_| unavailable())?;
                    &pinned_client
                }
                Err(refusal) => {
                    tracing::warn!(?refusal, uri = %config.eds_uri, "EDS token verification refused");
                    return Err(unavailable());
                }
            }
        };
        let res = client
            .get(&config.eds_uri)
            .bearer_auth(token)
            .header("Enginio-Backend-Id", backend)
            .header(header::ACCEPT, "application/json")
            .header(header::CONTENT_TYPE, "application/json")
            .send()
            .await
            .map_err(|err| {
                tracing::warn!(%err, uri = %config.eds_uri, "EDS token verification failed");
                unavailable()
            })?;
        let user = if res.status() == reqwest::StatusCode::OK {
            let body: Value = res.json().await.unwrap_or(Value::Null);
            parse_user(&body)
        } else {
            None
        };
        let mut cache = self.cache.lock().expect("cache lock");
        if cache.len() >= EDS_CACHE_MAX {
            cache.retain(|_, (at, _)| at.elapsed() < EDS_CACHE_TTL);
            if cache.len() >= EDS_CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(key, (Instant::now(), user.clone()));
        Ok(user)
    }
}

fn unavailable(err: updraft_store::StoreError) -> ApiError {
    tracing::error!(%err, "local EDS token verification failed");
    ApiError::with_message(Code::Unavailable, "Identity provider unavailable")
}

/// An EDS user object: `id` and its `usergroups`, each `{"id","objectType"}` (as EDS sends
/// them), a bare `{"id"}` or an id string; each becomes a subject like `usergroups.<id>`.
fn parse_user(body: &Value) -> Option<EdsUser> {
    let id = body.get("id")?.as_str()?.to_owned();
    let subject = |kind: &str, id: &str| format!("{kind}.{id}").parse::<Subject>().ok();
    let groups = body
        .get("usergroups")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|g| match g {
            Value::String(s) if s.contains('.') => s.parse().ok(),
            Value::String(s) => subject(USERGROUPS, s),
            Value::Object(o) => {
                let id = o.get("id")?.as_str()?;
                let kind = o.get("objectType").and_then(Value::as_str).unwrap_or(USERGROUPS);
                subject(kind, id)
            }
            _ => None,
        })
        .collect();
    Some(EdsUser { id, groups })
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use serde_json::json;

    use super::*;

    #[test]
    fn only_bearer_is_accepted() {
        let mut headers = HeaderMap::new();
        assert_eq!(credentials(&headers), Ok(Credentials::None));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert_eq!(credentials(&headers), Ok(Credentials::Bearer("abc".into())));
        for unusable in ["Basic YTpi", "Bearer ", "dummy", ""] {
            headers.insert(header::AUTHORIZATION, HeaderValue::from_static(unusable));
            assert_eq!(credentials(&headers), Ok(Credentials::Unusable), "{unusable}");
            assert_eq!(require_token(&Credentials::Unusable, Some("x")).unwrap_err().code, Code::InvalidCredentials);
        }
    }

    /// Admin tokens only as `Authorization: Bearer <token>`; user tokens keep the leniencies of old clients.
    #[test]
    fn finding_21_admin_tokens_only_as_an_exact_bearer() {
        let with = |name: &'static str, value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(name, HeaderValue::from_static(value));
            headers
        };
        let exact = with("authorization", "Bearer sekrit");
        assert_eq!(admin_credentials(&exact), Credentials::Bearer("sekrit".into()));
        assert_eq!(admin_credentials(&HeaderMap::new()), Credentials::None);
        for (name, value) in [
            ("authorization", "bearer sekrit"),
            ("authorization", "BEARER sekrit"),
            ("authorization", "Bearer sekrit extra"),
            ("authorization", "Bearer  sekrit"),
            ("authorization", "Bearer sekrit "),
            ("authorization", "Bearer\tsekrit"),
            ("authorization", "Bearer "),
            ("authorization", "Basic c2Vrcml0"),
        ] {
            let headers = with(name, value);
            assert_eq!(admin_credentials(&headers), Credentials::Unusable, "{value}");
            assert!(!is_token(&admin_credentials(&headers), Some("sekrit")), "{value}");
        }
        let session = with("enginio-backend-session", "sekrit");
        assert_eq!(admin_credentials(&session), Credentials::None);
        // The same headers still carry a user's token.
        assert_eq!(credentials(&session), Ok(Credentials::Bearer("sekrit".into())));
        assert_eq!(credentials(&with("authorization", "bearer sekrit")), Ok(Credentials::Bearer("sekrit".into())));
    }

    #[test]
    fn users_carry_their_groups_as_tags() {
        let user = parse_user(&json!({
            "id": "u1",
            "usergroups": ["g1", {"id": "g2"}, {"id": "12345", "objectType": "usergroups"}],
        }))
        .unwrap();
        assert_eq!(
            GatewayCaller::User(user).socket_tags(),
            ["users.u1", "usergroups.g1", "usergroups.g2", "usergroups.12345"]
        );
        assert_eq!(parse_user(&json!({"username": "x"})), None);
    }

    #[test]
    fn secrets_compare_exactly() {
        assert!(same_secret("supersecret", "supersecret"));
        assert!(!same_secret("supersecret", "supersecreT"));
        assert!(!same_secret("super", "supersecret"));
    }
}
