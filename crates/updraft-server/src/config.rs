//! Settings of `updraft serve`: command line, then environment, then a TOML file, then defaults.
//!
//! The original MWS variables (`ACCESS_CONTROL`, `SECURITY_TOKEN`, `EDS_*`, `APP_DOMAIN`) keep
//! their names so an existing deployment's environment works unchanged.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, format_err};
use clap::{Args, Parser, Subcommand};
use serde::Deserialize;
use updraft_gateway::{AccessControl, Permissions};

#[derive(Debug, Parser)]
#[command(name = "updraft", version, about = "Qt Cloud Services, self-hosted, in one binary")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start every service on one listener.
    Serve(Box<ServeArgs>),
    /// Make a local CA (once) and a server certificate for host names, for development and tests.
    Cert(CertArgs),
}

#[derive(Debug, Clone, Args)]
pub struct CertArgs {
    /// Where ca.pem, ca-key.pem, cert.pem and key.pem go; an existing CA there is reused.
    #[arg(long, default_value = "./updraft-certs")]
    pub dir: PathBuf,
    /// A host name or IP address the certificate is for (repeat for more) [default: localhost, 127.0.0.1].
    #[arg(long = "name")]
    pub names: Vec<String>,
}

#[derive(Debug, Clone, Args, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct ServeArgs {
    /// A TOML file with any of these settings (snake_case keys); flags and env win over it.
    #[arg(long, env = "UPDRAFT_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "UPDRAFT_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Where Updraft keeps its data [default: ./updraft-data].
    #[arg(long, env = "UPDRAFT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// PEM certificate chain: serve HTTPS and WSS.
    #[arg(long, env = "UPDRAFT_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "UPDRAFT_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// A second listener for HTTPS and WSS (e.g. 0.0.0.0:443), leaving --listen plain; needs --tls-cert.
    #[arg(long, env = "UPDRAFT_TLS_LISTEN")]
    pub tls_listen: Option<SocketAddr>,
    /// Email of the account that manages EDS apps (`/v1/account/*`).
    #[arg(long, env = "UPDRAFT_ADMIN_EMAIL", requires = "admin_password")]
    pub admin_email: Option<String>,
    /// Password of that account.
    #[arg(long, env = "UPDRAFT_ADMIN_PASSWORD", requires = "admin_email")]
    pub admin_password: Option<String>,
    /// Bearer token of the server admin API (`/v1/gateways`); unset disables that API.
    #[arg(long, env = "UPDRAFT_ADMIN_TOKEN")]
    pub admin_token: Option<String>,
    /// Default gateway access control: none, eds or custom [default: none].
    #[arg(long, env = "ACCESS_CONTROL")]
    pub access_control: Option<String>,
    /// Default gateway admin bearer token.
    #[arg(long, env = "SECURITY_TOKEN")]
    pub security_token: Option<String>,
    /// EDS backend whose user tokens the default gateway accepts (eds mode).
    #[arg(long, env = "EDS_BACKEND_ID")]
    pub eds_backend_id: Option<String>,
    /// JSON `{"read":[subjects],"write":[subjects]}` [default: everyone].
    #[arg(long, env = "EDS_PERMISSIONS")]
    pub eds_permissions: Option<String>,
    /// EDS endpoint that verifies user tokens of backends this server does not host [default: unset: only tokens
    /// of backends hosted here are accepted, nothing is sent elsewhere].
    #[arg(long, env = "EDS_URI")]
    pub eds_uri: Option<String>,
    /// Host (and port) put in socket URIs [default: the listen address].
    #[arg(long, env = "APP_DOMAIN")]
    pub app_domain: Option<String>,
    /// Largest request body [default: 1048576].
    #[arg(long, env = "UPDRAFT_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Seconds a request body may take to arrive whole, from its request head; later is 408 [default: 30].
    #[arg(long, env = "UPDRAFT_BODY_TIMEOUT_SECS")]
    pub body_timeout_secs: Option<u64>,
    /// Open connections (HTTP, WebSockets, streams) served at once; beyond it only /healthz is answered
    /// [default: the open-file limit minus a headroom].
    #[arg(long, env = "UPDRAFT_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// A separate plain-HTTP listener for /metrics (e.g. 127.0.0.1:9090).
    #[arg(long, env = "UPDRAFT_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Bearer token that opens /metrics on the main listener; unset, /metrics there is 404.
    #[arg(long, env = "UPDRAFT_METRICS_TOKEN")]
    pub metrics_token: Option<String>,
    /// Largest message a client may send on a socket (it is discarded) [default: 65536].
    #[arg(long, env = "UPDRAFT_MAX_CLIENT_MESSAGE_BYTES")]
    pub max_client_message_bytes: Option<u64>,
    /// Bytes queued for one socket before it is dropped as too slow [default: 4194304].
    #[arg(long, env = "UPDRAFT_SOCKET_QUEUE_BYTES")]
    pub socket_queue_bytes: Option<usize>,
    /// Frames queued for one socket before it is dropped as too slow [default: 4096].
    #[arg(long, env = "UPDRAFT_SOCKET_QUEUE_FRAMES")]
    pub socket_queue_frames: Option<usize>,
    /// Niceness (0-19) of the threads serving HTTP requests and the database, above the socket threads' own, so
    /// that a burst of EDS writes does not delay frames to sockets (while the API is the lighter work, the fan-out
    /// runs at this niceness too); 0 is the same priority [default: 10 when the server may use one CPU, else 0].
    #[arg(long, env = "UPDRAFT_API_NICE")]
    pub api_nice: Option<i32>,
    /// Scheduler time slice, in microseconds, of the threads serving HTTP requests and the database (100-100000;
    /// 0 keeps the kernel's): a short slice lets a request that wakes run sooner, at the cost of more preemptions.
    /// Linux 6.12 and later; older kernels ignore it [default: 0].
    #[arg(long, env = "UPDRAFT_API_SLICE_US")]
    pub api_slice_us: Option<u32>,
    /// Seconds between server pings; a peer silent for two intervals is dropped [default: 45].
    #[arg(long, env = "UPDRAFT_PING_INTERVAL_SECS")]
    pub ping_interval_secs: Option<u64>,
    /// Socket URIs handed out and not yet used, across gateways [default: 1000000].
    #[arg(long, env = "UPDRAFT_MAX_PENDING_SOCKETS")]
    pub max_pending_sockets: Option<usize>,
    /// Seconds a socket URI stays usable [default: 300].
    #[arg(long, env = "UPDRAFT_SOCKET_URI_TTL_SECS")]
    pub socket_uri_ttl_secs: Option<u64>,
    /// Login and sign-up attempts per minute from one client address (IPv6: its /64); 0 is no limit [default: 60].
    #[arg(long, env = "UPDRAFT_LOGIN_ATTEMPTS_PER_MINUTE")]
    pub login_attempts_per_minute: Option<u32>,
    /// Failed logins per minute for one account (a backend's username, the account email); 0 is no limit
    /// [default: 10].
    #[arg(long, env = "UPDRAFT_LOGIN_FAILURES_PER_MINUTE")]
    pub login_failures_per_minute: Option<u32>,
    /// Log format: text or json [default: text].
    #[arg(long, env = "UPDRAFT_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Let webhooks target link-local addresses and this server's own admin API [default: false].
    #[arg(long, env = "UPDRAFT_WEBHOOKS_ALLOW_UNSAFE_TARGETS")]
    pub webhooks_allow_unsafe_targets: Option<bool>,
    /// Seconds a webhook attempt may take [default: 10].
    #[arg(long, env = "UPDRAFT_WEBHOOK_TIMEOUT_SECS")]
    pub webhook_timeout_secs: Option<u64>,
    /// Milliseconds before the first retry of a failed webhook delivery; it doubles with each [default: 5000].
    #[arg(long, env = "UPDRAFT_WEBHOOK_RETRY_BASE_MS")]
    pub webhook_retry_base_ms: Option<u64>,
    /// Seconds a failing webhook delivery is retried before it is dead [default: 86400].
    #[arg(long, env = "UPDRAFT_WEBHOOK_RETRY_FOR_SECS")]
    pub webhook_retry_for_secs: Option<u64>,
}

/// Everything `Application::build` needs, resolved and validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub tls: Option<TlsFiles>,
    /// With `tls`: where HTTPS listens besides the plain `listen`; without it, `listen` itself is HTTPS.
    pub tls_listen: Option<SocketAddr>,
    pub admin_token: Option<String>,
    /// Email and password of the account that manages EDS apps.
    pub account: Option<(String, String)>,
    pub default_gateway: DefaultGateway,
    pub app_domain: Option<String>,
    pub max_body_bytes: usize,
    pub body_timeout: Duration,
    /// `None`: derived from the open-file limit at start-up.
    pub max_connections: Option<usize>,
    pub metrics_listen: Option<SocketAddr>,
    pub metrics_token: Option<String>,
    pub max_client_message_bytes: u64,
    pub socket_queue_bytes: usize,
    pub socket_queue_frames: usize,
    pub api_nice: i32,
    /// `None`: the kernel's slice.
    pub api_slice: Option<Duration>,
    pub ping_interval: Duration,
    pub max_pending_sockets: usize,
    pub socket_uri_ttl: Duration,
    pub login_limits: updraft_api::passwords::AttemptLimits,
    pub json_logs: bool,
    pub webhooks: WebhookOptions,
}

#[derive(Debug, Clone)]
pub struct WebhookOptions {
    pub allow_unsafe_targets: bool,
    pub timeout: Duration,
    pub retry_base: Duration,
    pub retry_for: Duration,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct DefaultGateway {
    pub access: AccessControl,
    pub security_token: Option<String>,
    pub eds_backend_id: Option<String>,
    pub eds_permissions: Permissions,
    pub eds_uri: String,
}

impl ServeArgs {
    /// Fills what flags and env left open from the config file, then from defaults.
    pub fn resolve(self) -> anyhow::Result<Settings> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                toml::from_str::<ServeArgs>(&text).with_context(|| format!("parsing {}", path.display()))?
            }
            None => ServeArgs::default(),
        };
        let a = self.or(file);
        let tls_given = a.tls_cert.is_some() && a.tls_key.is_some();
        let access = match a.access_control.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None | Some("none") => AccessControl::None,
            Some("eds") => AccessControl::Eds,
            Some("custom") => AccessControl::Custom,
            Some(other) => return Err(format_err!("ACCESS_CONTROL must be none, eds or custom, not {other:?}")),
        };
        let eds_permissions = match a.eds_permissions.as_deref().filter(|s| !s.trim().is_empty()) {
            None => Permissions::default(),
            Some(text) => parse_permissions(text)?,
        };
        let json_logs = match a.log_format.as_deref() {
            None | Some("text") => false,
            Some("json") => true,
            Some(other) => return Err(format_err!("log format must be text or json, not {other:?}")),
        };
        let ping_interval = Duration::from_secs(a.ping_interval_secs.unwrap_or(45));
        let body_timeout = Duration::from_secs(a.body_timeout_secs.unwrap_or(30));
        if body_timeout.is_zero() {
            return Err(format_err!("the body timeout must be at least one second"));
        }
        if a.max_connections == Some(0) {
            return Err(format_err!("--max-connections must be at least 1"));
        }
        if ping_interval.is_zero() {
            return Err(format_err!("the ping interval must be at least one second"));
        }
        let api_nice = a.api_nice.unwrap_or_else(default_api_nice);
        if !(0..=19).contains(&api_nice) {
            return Err(format_err!("--api-nice is from 0 to 19, not {api_nice}"));
        }
        let api_slice = match a.api_slice_us.unwrap_or(0) {
            0 => None,
            us @ 100..=100_000 => Some(Duration::from_micros(us.into())),
            us => return Err(format_err!("--api-slice-us is 0 or from 100 to 100000, not {us}")),
        };
        Ok(Settings {
            listen: a.listen.unwrap_or_else(|| "127.0.0.1:8080".parse().expect("valid address")),
            data_dir: a.data_dir.unwrap_or_else(|| PathBuf::from("./updraft-data")),
            tls: match (a.tls_cert, a.tls_key) {
                (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
                (None, None) => None,
                _ => return Err(format_err!("--tls-cert and --tls-key go together")),
            },
            tls_listen: match (a.tls_listen, tls_given) {
                (Some(_), false) => return Err(format_err!("--tls-listen needs --tls-cert and --tls-key")),
                (listen, _) => listen,
            },
            admin_token: a.admin_token.filter(|t| !t.is_empty()),
            account: match (a.admin_email, a.admin_password) {
                (Some(email), Some(password)) if !email.is_empty() && !password.is_empty() => Some((email, password)),
                (None, None) => None,
                _ => return Err(format_err!("--admin-email and --admin-password go together and must not be empty")),
            },
            default_gateway: DefaultGateway {
                access,
                // An empty token must never match an empty bearer.
                security_token: a.security_token.filter(|t| !t.is_empty()),
                eds_backend_id: a.eds_backend_id.filter(|t| !t.is_empty()),
                eds_permissions,
                // Unset by default: the hosted service it once named (api.engin.io) is gone, and whoever answers
                // there would get users' tokens and decide who is signed in.
                eds_uri: a.eds_uri.map(|t| t.trim().to_owned()).unwrap_or_default(),
            },
            app_domain: a.app_domain.filter(|t| !t.is_empty()),
            max_body_bytes: a.max_body_bytes.unwrap_or(1 << 20),
            body_timeout,
            max_connections: a.max_connections,
            metrics_listen: a.metrics_listen,
            metrics_token: a.metrics_token.filter(|t| !t.is_empty()),
            max_client_message_bytes: a.max_client_message_bytes.unwrap_or(64 * 1024),
            socket_queue_bytes: a.socket_queue_bytes.unwrap_or(4 << 20),
            socket_queue_frames: a.socket_queue_frames.unwrap_or(4096),
            api_nice,
            api_slice,
            ping_interval,
            max_pending_sockets: a.max_pending_sockets.unwrap_or(1_000_000),
            socket_uri_ttl: Duration::from_secs(a.socket_uri_ttl_secs.unwrap_or(300)),
            login_limits: {
                let defaults = updraft_api::passwords::AttemptLimits::default();
                updraft_api::passwords::AttemptLimits {
                    per_address_per_minute: a.login_attempts_per_minute.unwrap_or(defaults.per_address_per_minute),
                    failures_per_account_per_minute: a
                        .login_failures_per_minute
                        .unwrap_or(defaults.failures_per_account_per_minute),
                }
            },
            json_logs,
            webhooks: WebhookOptions {
                allow_unsafe_targets: a.webhooks_allow_unsafe_targets.unwrap_or(false),
                timeout: Duration::from_secs(a.webhook_timeout_secs.unwrap_or(10).max(1)),
                retry_base: Duration::from_millis(a.webhook_retry_base_ms.unwrap_or(5000).max(1)),
                retry_for: Duration::from_secs(a.webhook_retry_for_secs.unwrap_or(24 * 3600)),
            },
        })
    }

    fn or(self, file: ServeArgs) -> ServeArgs {
        ServeArgs {
            config: self.config,
            listen: self.listen.or(file.listen),
            data_dir: self.data_dir.or(file.data_dir),
            tls_cert: self.tls_cert.or(file.tls_cert),
            tls_key: self.tls_key.or(file.tls_key),
            tls_listen: self.tls_listen.or(file.tls_listen),
            admin_token: self.admin_token.or(file.admin_token),
            admin_email: self.admin_email.or(file.admin_email),
            admin_password: self.admin_password.or(file.admin_password),
            access_control: self.access_control.or(file.access_control),
            security_token: self.security_token.or(file.security_token),
            eds_backend_id: self.eds_backend_id.or(file.eds_backend_id),
            eds_permissions: self.eds_permissions.or(file.eds_permissions),
            eds_uri: self.eds_uri.or(file.eds_uri),
            app_domain: self.app_domain.or(file.app_domain),
            max_body_bytes: self.max_body_bytes.or(file.max_body_bytes),
            body_timeout_secs: self.body_timeout_secs.or(file.body_timeout_secs),
            max_connections: self.max_connections.or(file.max_connections),
            metrics_listen: self.metrics_listen.or(file.metrics_listen),
            metrics_token: self.metrics_token.or(file.metrics_token),
            max_client_message_bytes: self.max_client_message_bytes.or(file.max_client_message_bytes),
            socket_queue_bytes: self.socket_queue_bytes.or(file.socket_queue_bytes),
            socket_queue_frames: self.socket_queue_frames.or(file.socket_queue_frames),
            api_nice: self.api_nice.or(file.api_nice),
            api_slice_us: self.api_slice_us.or(file.api_slice_us),
            ping_interval_secs: self.ping_interval_secs.or(file.ping_interval_secs),
            max_pending_sockets: self.max_pending_sockets.or(file.max_pending_sockets),
            socket_uri_ttl_secs: self.socket_uri_ttl_secs.or(file.socket_uri_ttl_secs),
            login_attempts_per_minute: self.login_attempts_per_minute.or(file.login_attempts_per_minute),
            login_failures_per_minute: self.login_failures_per_minute.or(file.login_failures_per_minute),
            log_format: self.log_format.or(file.log_format),
            webhooks_allow_unsafe_targets: self.webhooks_allow_unsafe_targets.or(file.webhooks_allow_unsafe_targets),
            webhook_timeout_secs: self.webhook_timeout_secs.or(file.webhook_timeout_secs),
            webhook_retry_base_ms: self.webhook_retry_base_ms.or(file.webhook_retry_base_ms),
            webhook_retry_for_secs: self.webhook_retry_for_secs.or(file.webhook_retry_for_secs),
        }
    }
}

/// On one CPU the kernel must choose between requests and frames, and niceness says which yields (measured: a
/// write burst beside broadcasts took frames from 142 to 312 ms at 0). With more, both run at once, and a niced API
/// only loses to whatever else runs on the machine: beside 100k deliveries/s on two cores, creates' p99 was 34–41 ms
/// at 10 and 10 ms at 0, while frames through a write burst went 1.07× → 1.2× of their latency alone
/// (BENCHMARKS.md). `available_parallelism` counts the CPUs this process may use (affinity, cgroup quota).
fn default_api_nice() -> i32 {
    if std::thread::available_parallelism().is_ok_and(|n| n.get() == 1) { 10 } else { 0 }
}

fn parse_permissions(text: &str) -> anyhow::Result<Permissions> {
    let value: serde_json::Value = serde_json::from_str(text).context("EDS_PERMISSIONS is not JSON")?;
    let list = |key: &str| -> anyhow::Result<Vec<String>> {
        match value.get(key) {
            // The original denies a permission that is not listed.
            None => Ok(Vec::new()),
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .map(|i| {
                    i.as_str().map(str::to_owned).ok_or_else(|| format_err!("EDS_PERMISSIONS.{key} must list strings"))
                })
                .collect(),
            Some(_) => Err(format_err!("EDS_PERMISSIONS.{key} must be an array")),
        }
    };
    if !value.is_object() {
        return Err(format_err!("EDS_PERMISSIONS must be an object"));
    }
    Ok(Permissions { read: list("read")?, write: list("write")? })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> anyhow::Result<Settings> {
        let cli = Cli::try_parse_from(
            std::iter::once("updraft").chain(std::iter::once("serve")).chain(args.iter().copied()),
        )?;
        let Command::Serve(args) = cli.command else { panic!("not serve") };
        (*args).resolve()
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let dir = std::env::temp_dir().join(format!("updraft-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("updraft.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9999\"\naccess_control = \"custom\"\nping_interval_secs = 10\n")
            .unwrap();
        let s = parse(&["--config", file.to_str().unwrap(), "--listen", "127.0.0.1:7000"]).unwrap();
        assert_eq!(s.listen, "127.0.0.1:7000".parse().unwrap());
        assert_eq!(s.default_gateway.access, AccessControl::Custom);
        assert_eq!(s.ping_interval, Duration::from_secs(10));
        assert_eq!(s.max_body_bytes, 1 << 20);
        std::fs::write(&file, "no_such_setting = 1\n").unwrap();
        assert!(parse(&["--config", file.to_str().unwrap()]).is_err());
    }

    #[test]
    fn bad_values_are_refused_with_a_reason() {
        let err = parse(&["--access-control", "open"]).unwrap_err().to_string();
        assert!(err.contains("none, eds or custom"), "{err}");
        assert!(parse(&["--eds-permissions", "{not json"]).is_err());
        assert!(parse(&["--eds-permissions", r#"{"read":"*"}"#]).is_err());
        let s = parse(&["--eds-permissions", r#"{"read":["*"],"write":["usergroups.12345"]}"#]).unwrap();
        assert_eq!(s.default_gateway.eds_permissions.write, ["usergroups.12345"]);
        assert!(parse(&["--ping-interval-secs", "0"]).is_err());
        let err = parse(&["--api-nice", "20"]).unwrap_err().to_string();
        assert!(err.contains("0 to 19"), "{err}");
        assert!(parse(&["--api-nice", "-1"]).is_err());
        assert_eq!(parse(&[]).unwrap().api_nice, default_api_nice());
        let err = parse(&["--api-slice-us", "50"]).unwrap_err().to_string();
        assert!(err.contains("100 to 100000"), "{err}");
        assert_eq!(parse(&["--api-slice-us", "100"]).unwrap().api_slice, Some(Duration::from_micros(100)));
        assert_eq!(parse(&[]).unwrap().api_slice, None);
    }
}
