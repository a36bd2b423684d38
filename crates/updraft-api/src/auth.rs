//! Who is calling: the Authorization header, the admin tokens, and EDS users verified against EDS.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};
use serde_json::Value;
use updraft_gateway::{AccessControl, GatewayConfig, Permissions};
use updraft_store::{Groups, Tenants};

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

/// Reads `Authorization`. Anything but `Bearer <token>` is kept as unusable rather than refused
/// here: the original ignored it where no authorization is required.
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
    /// The user's groups as ACL subjects, e.g. `usergroups.12345`.
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Admin,
    Anonymous,
    User(EdsUser),
}

impl Caller {
    /// Tags a socket opened by this caller carries, so EDS changes can be routed to it.
    pub fn socket_tags(&self) -> Vec<String> {
        match self {
            Caller::User(user) => {
                std::iter::once(format!("users.{}", user.id)).chain(user.groups.iter().cloned()).collect()
            }
            Caller::Admin | Caller::Anonymous => Vec::new(),
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

/// Verifies EDS user tokens: in-process when this server hosts the backend, otherwise with
/// `GET <EDS_URI>`, remembering those answers briefly.
pub struct EdsVerifier {
    client: reqwest::Client,
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
        EdsVerifier { client, cache: Mutex::default(), local: None }
    }
}

impl EdsVerifier {
    /// A verifier that answers for the backends in `tenants` itself. Those answers are not cached, so a
    /// revoked token stops working at once.
    pub fn with_local(tenants: Arc<dyn Tenants>, groups: Arc<dyn Groups>) -> EdsVerifier {
        EdsVerifier { local: Some(LocalEds { tenants, groups }), ..EdsVerifier::default() }
    }

    /// Decides whether the caller may do `need` on a gateway configured as `config`.
    pub async fn authorize(&self, config: &GatewayConfig, creds: &Credentials, need: Need) -> Result<Caller, ApiError> {
        if is_token(creds, config.security_token.as_deref()) {
            return Ok(Caller::Admin);
        }
        match config.access {
            AccessControl::None => Ok(Caller::Anonymous),
            AccessControl::Custom => Err(require_token(creds, config.security_token.as_deref()).unwrap_err()),
            AccessControl::Eds => {
                let token = match creds {
                    Credentials::Bearer(token) => token,
                    other => return Err(require_token(other, None).unwrap_err()),
                };
                let user = self.verify(config, token).await?.ok_or_else(|| ApiError::new(Code::InvalidCredentials))?;
                let subjects = match need {
                    Need::Read => &config.eds_permissions.read,
                    Need::Write => &config.eds_permissions.write,
                };
                if !Permissions::allows(subjects, &user.id, &user.groups) {
                    return Err(ApiError::new(Code::AccessDenied));
                }
                Ok(Caller::User(user))
            }
        }
    }

    /// The user behind an EDS token, `None` when EDS refuses it.
    async fn verify(&self, config: &GatewayConfig, token: &str) -> Result<Option<EdsUser>, ApiError> {
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
        let key = (config.eds_uri.clone(), backend.to_owned(), token.to_owned());
        if let Some((at, user)) = self.cache.lock().expect("cache lock").get(&key)
            && at.elapsed() < EDS_CACHE_TTL
        {
            return Ok(user.clone());
        }
        let res = self
            .client
            .get(&config.eds_uri)
            .bearer_auth(token)
            .header("Enginio-Backend-Id", backend)
            .header(header::ACCEPT, "application/json")
            .header(header::CONTENT_TYPE, "application/json")
            .send()
            .await
            .map_err(|err| {
                tracing::warn!(%err, uri = %config.eds_uri, "EDS token verification failed");
                ApiError::with_message(Code::Unavailable, "Identity provider unavailable")
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
    let subject = |kind: &str, id: &str| format!("{kind}.{id}");
    let groups = body
        .get("usergroups")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|g| match g {
            Value::String(s) if s.contains('.') => Some(s.clone()),
            Value::String(s) => Some(subject("usergroups", s)),
            Value::Object(o) => {
                let id = o.get("id")?.as_str()?;
                let kind = o.get("objectType").and_then(Value::as_str).unwrap_or("usergroups");
                Some(subject(kind, id))
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

    #[test]
    fn users_carry_their_groups_as_tags() {
        let user = parse_user(&json!({
            "id": "u1",
            "usergroups": ["g1", {"id": "g2"}, {"id": "12345", "objectType": "usergroups"}],
        }))
        .unwrap();
        assert_eq!(
            Caller::User(user).socket_tags(),
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
