//! Passwords: argon2 runs behind a semaphore sized to the cores, and login and sign-up attempts are limited per
//! account and per client address.
//!
//! Argon2 takes about 19 MiB and tens of milliseconds per run, on purpose: unbounded, a burst of logins took
//! gigabytes and every core. A check for an unknown account runs against a fixed dummy hash, so that it takes as
//! long as one for a known account and the answer's timing does not tell which exist.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::error::{ApiError, Code, EdsError};
use crate::{Transport, auth};

/// How many login and sign-up attempts the limits let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptLimits {
    /// Attempts per minute from one client address (an IPv6 client by its /64), in bursts of as many; 0 is
    /// no limit.
    pub per_address_per_minute: u32,
    /// Failed attempts per minute for one account (a username of a backend, the account's email), in bursts
    /// of as many; 0 is no limit.
    pub failures_per_account_per_minute: u32,
}

impl Default for AttemptLimits {
    /// Far above what a person or the SDK test suites need, far below what guessing needs.
    fn default() -> AttemptLimits {
        AttemptLimits { per_address_per_minute: 60, failures_per_account_per_minute: 10 }
    }
}

/// Hashes and checks passwords, and admits attempts.
pub struct Passwords {
    /// One argon2 run per core at a time; the others wait their turn.
    permits: Arc<Semaphore>,
    /// Argon2 runs so far (hashes and checks), which tests count instead of timing them.
    runs: AtomicU64,
    limits: AttemptLimits,
    by_address: Mutex<Buckets<IpAddr>>,
    /// By a hash of the account's key: keys come from clients and may be long.
    by_account: Mutex<Buckets<[u8; 32]>>,
}

impl Default for Passwords {
    fn default() -> Passwords {
        Passwords::new(AttemptLimits::default())
    }
}

/// What unknown accounts are checked against. Made with the same parameters as every stored hash, so a check
/// takes the same time.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| auth::hash_password("no account has this password").expect("argon2 hashes"));

impl Passwords {
    pub fn new(limits: AttemptLimits) -> Passwords {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Passwords {
            permits: Arc::new(Semaphore::new(cores)),
            runs: AtomicU64::new(0),
            limits,
            by_address: Mutex::default(),
            by_account: Mutex::default(),
        }
    }

    /// Runs `work` on the blocking pool once a permit is free; the permit is held until `work` ends, even if the
    /// request that wanted it has gone.
    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let permit = self.permits.clone().acquire_owned().await.ok()?;
        self.runs.fetch_add(1, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .ok()
    }

    /// An argon2 hash of `password`, with a fresh salt.
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        match self.run(move || auth::hash_password(&password)).await {
            Some(Ok(hash)) => Ok(hash),
            Some(Err(err)) => {
                tracing::error!(%err, "password hashing failed");
                Err(ApiError::new(Code::Internal))
            }
            None => Err(ApiError::new(Code::Internal)),
        }
    }

    /// Whether `password` matches `hash`. Without a hash (no such account) it checks against a dummy and
    /// answers `false`, in the time a real check takes.
    pub async fn verify(&self, hash: Option<String>, password: String) -> bool {
        self.run(move || {
            let matches = auth::password_matches(hash.as_deref().unwrap_or(&DUMMY_HASH), &password);
            matches && hash.is_some()
        })
        .await
        .unwrap_or(false)
    }

    /// Argon2 runs so far.
    pub fn runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }

    /// Admits an attempt on `account` (a key naming it: backend and username, or the account's email) from
    /// `client`, or says when to come back. Every attempt counts against the address; only failures, reported
    /// through [`Attempt::failed`], against the account.
    pub fn attempt(&self, client: Option<IpAddr>, account: &str) -> Result<Attempt<'_>, TooManyAttempts> {
        let account: [u8; 32] = Sha256::digest(account.as_bytes()).into();
        let now = Instant::now();
        let failures = Rate::per_minute(self.limits.failures_per_account_per_minute);
        if let Some(rate) = failures {
            self.by_account.lock().expect("attempts lock").ready(&account, rate, now)?;
        }
        if let (Some(rate), Some(client)) = (Rate::per_minute(self.limits.per_address_per_minute), client) {
            self.by_address.lock().expect("attempts lock").take(&address_key(client), rate, now)?;
        }
        Ok(Attempt { passwords: self, account })
    }
}

/// An admitted attempt.
pub struct Attempt<'a> {
    passwords: &'a Passwords,
    account: [u8; 32],
}

impl Attempt<'_> {
    /// The attempt failed (a wrong password, a taken username): it counts against the account.
    pub fn failed(self) {
        if let Some(rate) = Rate::per_minute(self.passwords.limits.failures_per_account_per_minute) {
            let mut accounts = self.passwords.by_account.lock().expect("attempts lock");
            let _ = accounts.take(&self.account, rate, Instant::now());
        }
    }
}

/// A refused attempt: 429 with `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyAttempts {
    pub retry_after: Duration,
}

impl TooManyAttempts {
    fn error() -> EdsError {
        EdsError(ApiError::new(Code::TooManyRequests))
    }

    /// Whole seconds to wait, at least one.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs_f64().ceil().max(1.0) as u64
    }

    fn with_retry_after(&self, mut response: Response) -> Response {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(self.retry_after_secs()));
        response
    }

    /// The EDS form (sign-up).
    pub fn eds_response(&self) -> Response {
        self.with_retry_after(TooManyAttempts::error().into_response())
    }

    /// The OAuth2 form with the EDS `errors` array (logins).
    pub fn oauth_response(&self) -> Response {
        self.with_retry_after(TooManyAttempts::error().oauth("too_many_requests"))
    }
}

/// The client's address, when the server knows it (`Transport::peer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<ClientAddress, Self::Rejection> {
        Ok(ClientAddress(parts.extensions.get::<Transport>().and_then(|t| t.peer).map(|peer| peer.ip())))
    }
}

/// An IPv6 client controls its whole /64, so that is what is counted; a v4-mapped address is the IPv4 one.
fn address_key(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

/// A token bucket: at most `burst` tokens, `per_sec` come back each second.
#[derive(Debug, Clone, Copy)]
struct Rate {
    burst: f64,
    per_sec: f64,
}

impl Rate {
    fn per_minute(n: u32) -> Option<Rate> {
        (n > 0).then(|| Rate { burst: f64::from(n), per_sec: f64::from(n) / 60.0 })
    }

    /// A bucket's tokens `now`, from what it had at some earlier time.
    fn refilled(self, (tokens, at): (f64, Instant), now: Instant) -> f64 {
        (tokens + now.saturating_duration_since(at).as_secs_f64() * self.per_sec).min(self.burst)
    }
}

/// Most keys an attempt table holds before it forgets the ones that are back to a full bucket.
const MAX_KEYS: usize = 100_000;

/// Token buckets by key: tokens left, and when that was.
struct Buckets<K>(HashMap<K, (f64, Instant)>);

impl<K> Default for Buckets<K> {
    fn default() -> Buckets<K> {
        Buckets(HashMap::new())
    }
}

impl<K: std::hash::Hash + Eq + Clone> Buckets<K> {
    /// The key's tokens now.
    fn level(&self, key: &K, rate: Rate, now: Instant) -> f64 {
        self.0.get(key).map_or(rate.burst, |&bucket| rate.refilled(bucket, now))
    }

    /// Whether the key has a token left, without taking it.
    fn ready(&self, key: &K, rate: Rate, now: Instant) -> Result<(), TooManyAttempts> {
        let level = self.level(key, rate, now);
        if level >= 1.0 {
            return Ok(());
        }
        Err(TooManyAttempts { retry_after: Duration::from_secs_f64((1.0 - level) / rate.per_sec) })
    }

    /// Takes a token of the key, or says when there will be one.
    fn take(&mut self, key: &K, rate: Rate, now: Instant) -> Result<(), TooManyAttempts> {
        self.ready(key, rate, now)?;
        let level = self.level(key, rate, now);
        if self.0.len() >= MAX_KEYS && !self.0.contains_key(key) {
            // Keys back to a full bucket are as good as absent.
            self.0.retain(|_, bucket| rate.refilled(*bucket, now) < rate.burst);
            if self.0.len() >= MAX_KEYS {
                // Only a flood of distinct keys gets here; forgetting beats growing without end.
                self.0.clear();
            }
        }
        self.0.insert(key.clone(), (level - 1.0, now));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    #[test]
    fn buckets_refill_and_say_when() {
        let rate = Rate::per_minute(2).unwrap();
        let mut buckets = Buckets::<String>::default();
        let t0 = Instant::now();
        let key = "k".to_owned();
        assert!(buckets.take(&key, rate, t0).is_ok());
        assert!(buckets.take(&key, rate, t0).is_ok());
        let refused = buckets.take(&key, rate, t0).unwrap_err();
        assert_eq!(refused.retry_after.as_secs(), 30, "one token back every 30 s");
        assert!(buckets.ready(&key, rate, t0 + Duration::from_secs(30)).is_ok());
        assert!(buckets.take(&"other".to_owned(), rate, t0).is_ok(), "keys are apart");
    }

    #[test]
    fn ipv6_clients_count_by_their_64_and_mapped_ones_as_ipv4() {
        let a: Ipv6Addr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        assert_eq!(address_key(a.into()), address_key(b.into()));
        assert_ne!(address_key(a.into()), address_key("2001:db8:1:3::1".parse::<Ipv6Addr>().unwrap().into()));
        let mapped = Ipv4Addr::new(10, 0, 0, 7).to_ipv6_mapped();
        assert_eq!(address_key(mapped.into()), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)));
    }

    #[test]
    fn failures_count_against_the_account_and_attempts_against_the_address() {
        let passwords = Passwords::new(AttemptLimits { per_address_per_minute: 3, failures_per_account_per_minute: 2 });
        let client = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let account = || "backend\nann";
        passwords.attempt(None, account()).unwrap().failed();
        passwords.attempt(None, account()).unwrap().failed();
        assert!(passwords.attempt(None, account()).is_err(), "two failures spend the account's minute");
        assert!(passwords.attempt(None, "backend\nbob").is_ok(), "other accounts are not affected");
        for _ in 0..3 {
            let _ = passwords.attempt(client, "backend\ncid").unwrap();
        }
        let Err(refused) = passwords.attempt(client, "backend\ndan") else { panic!("the address's minute is spent") };
        assert_eq!(refused.retry_after_secs(), 20);
    }

    #[tokio::test]
    async fn finding_13_argon2_runs_one_per_core_at_a_time() {
        let passwords = Arc::new(Passwords::default());
        let cores = std::thread::available_parallelism().unwrap().get();
        assert_eq!(passwords.permits.available_permits(), cores);
        let busy = passwords.permits.clone().acquire_many_owned(cores as u32).await.unwrap();
        let waiting = tokio::spawn({
            let passwords = passwords.clone();
            async move { passwords.hash("pw".into()).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(passwords.runs(), 0, "no run starts while every core is taken");
        drop(busy);
        waiting.await.unwrap().unwrap();
        assert_eq!(passwords.runs(), 1);
    }

    #[tokio::test]
    async fn unknown_accounts_run_argon2_too() {
        let passwords = Passwords::default();
        let hash = passwords.hash("pw".into()).await.unwrap();
        assert_eq!(passwords.runs(), 1);
        assert!(passwords.verify(Some(hash.clone()), "pw".into()).await);
        assert!(!passwords.verify(Some(hash), "wrong".into()).await);
        assert!(!passwords.verify(None, "no account has this password".into()).await, "the dummy matches nothing");
        assert_eq!(passwords.runs(), 4, "the unknown account's check ran argon2 as well");
    }
}
