//! Settings of `updraft serve`: command line, then environment, then a TOML file, then defaults.
//!
//! Each setting is one line of `serve_settings!` below (see `declare.rs`): its flag, env var, TOML key, default
//! and help all come from there, and `resolve` turns them into the validated `Settings` the server runs on.
//! The original MWS variables (`ACCESS_CONTROL`, `SECURITY_TOKEN`, `EDS_*`, `APP_DOMAIN`) keep
//! their names so an existing deployment's environment works unchanged.

#[macro_use]
mod declare;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, format_err};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;
use updraft_gateway::{AccessControl, Permissions};

use self::declare::parse_choice;

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
    /// Bring a PostgreSQL database's tables up to date (and copy a SQLite database into it), then exit.
    Migrate(MigrateArgs),
    /// Git's pre-receive hook of an app's repository (written there by the runtime; not for people).
    #[command(hide = true)]
    Hook(HookArgs),
}

#[derive(Debug, Clone, Args)]
pub struct HookArgs {
    /// The runtime's directory.
    #[arg(long)]
    pub root: PathBuf,
    /// The app whose repository runs the hook.
    #[arg(long)]
    pub app: String,
}

#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    /// `postgres://user:password@host:port/database`.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    /// Also copy this node's SQLite database (`<data-dir>/eds.sqlite3`, with the node stopped) into the
    /// PostgreSQL database, which must hold no app yet: the way from one node to several (docs/deploy.md).
    #[arg(long)]
    pub from_sqlite: Option<PathBuf>,
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

serve_settings! {
    /// A TOML file with any of these settings (snake_case keys); flags and env win over it.
    #[serde(skip)]
    config: PathBuf, env "UPDRAFT_CONFIG";
    /// Address to listen on.
    listen: SocketAddr, env "UPDRAFT_LISTEN", default("127.0.0.1:8080");
    /// Where Updraft keeps its data.
    data_dir: PathBuf, env "UPDRAFT_DATA_DIR", default("./updraft-data");
    // Pairs (--tls-cert and --tls-key, --admin-email and --admin-password) are checked once flags, env and the
    // file are merged (`tls`, `account`), not by clap: each half may come from a different one.
    /// PEM certificate chain: serve HTTPS and WSS.
    tls_cert: PathBuf, env "UPDRAFT_TLS_CERT";
    /// PEM private key for --tls-cert.
    tls_key: PathBuf, env "UPDRAFT_TLS_KEY";
    /// A second listener for HTTPS and WSS (e.g. 0.0.0.0:443), leaving --listen plain; needs --tls-cert.
    tls_listen: SocketAddr, env "UPDRAFT_TLS_LISTEN";
    /// Email of the account that manages EDS apps (`/v1/account/*`).
    admin_email: String, env "UPDRAFT_ADMIN_EMAIL";
    /// Password of that account.
    admin_password: String, env "UPDRAFT_ADMIN_PASSWORD";
    /// Bearer token of the server admin API (`/v1/gateways`); unset disables that API.
    admin_token: String, env "UPDRAFT_ADMIN_TOKEN";
    /// Default gateway access control: none, eds or custom.
    #[arg(value_parser = str::parse::<AccessMode>)]
    access_control: AccessMode, env "ACCESS_CONTROL", default("none");
    /// Default gateway admin bearer token.
    security_token: String, env "SECURITY_TOKEN";
    /// EDS backend whose user tokens the default gateway accepts (eds mode).
    eds_backend_id: String, env "EDS_BACKEND_ID";
    /// JSON `{"read":[subjects],"write":[subjects]}`.
    eds_permissions: String, env "EDS_PERMISSIONS", unset("everyone");
    /// EDS endpoint that verifies user tokens of backends this server does not host.
    eds_uri: String, env "EDS_URI",
        unset("unset: only tokens of backends hosted here are accepted, nothing is sent elsewhere");
    /// Host (and port) put in socket URIs.
    app_domain: String, env "APP_DOMAIN", unset("the listen address");
    /// Largest request body.
    max_body_bytes: usize, env "UPDRAFT_MAX_BODY_BYTES", default("1048576");
    /// Seconds a request body may take to arrive whole, from its request head; later is 408.
    body_timeout_secs: u64, env "UPDRAFT_BODY_TIMEOUT_SECS", default("30");
    /// Where the bytes of EDS files go: `s3://bucket[/prefix]` for S3-compatible storage, configured by the usual
    /// `AWS_*` variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT`,
    /// `AWS_ALLOW_HTTP`); uploads are still staged under the data directory.
    blob_store: String, env "UPDRAFT_BLOB_STORE", unset("the data directory");
    /// The bus that carries messages between nodes: `redis://host:port[/db]` (the original MWS channel
    /// `websocket_messages`) or `nats://host:port` (docs/scale-out.md).
    bus: String, env "UPDRAFT_BUS", unset("in-process: one node");
    /// The EDS database: `postgres://user:password@host:port/database`, shared by every node of a cluster
    /// (docs/scale-out.md); the database must exist, and its tables are made or upgraded at start.
    database_url: String, env "DATABASE_URL", unset("SQLite in the data directory");
    /// Connections this node keeps open to the `--database-url` database at most. Few is faster: each is a
    /// PostgreSQL process, and more of them than the database's cores only take turns.
    database_connections: u32, env "UPDRAFT_DATABASE_CONNECTIONS", default("8");
    /// Largest EDS file, in bytes (a multipart upload, or the total of a chunked one).
    max_file_bytes: u64, env "UPDRAFT_MAX_FILE_BYTES", default("1073741824");
    /// Seconds a file upload's body may take to arrive whole.
    file_body_timeout_secs: u64, env "UPDRAFT_FILE_BODY_TIMEOUT_SECS", default("3600");
    /// Seconds after its last chunk that a chunked upload not finished expires, with its staged bytes (0: never).
    upload_expiry_secs: u64, env "UPDRAFT_UPLOAD_EXPIRY_SECS", default("86400");
    /// Seconds a file's download URL works.
    file_url_lifetime_secs: u64, env "UPDRAFT_FILE_URL_LIFETIME_SECS", default("3600");
    /// Open connections (HTTP, WebSockets, streams) served at once; beyond it only /healthz is answered.
    max_connections: usize, env "UPDRAFT_MAX_CONNECTIONS", unset("the open-file limit minus a headroom");
    /// A separate plain-HTTP listener for /metrics (e.g. 127.0.0.1:9090).
    metrics_listen: SocketAddr, env "UPDRAFT_METRICS_LISTEN";
    /// Bearer token that opens /metrics on the main listener; unset, /metrics there is 404.
    metrics_token: String, env "UPDRAFT_METRICS_TOKEN";
    /// Largest message a client may send on a socket (it is discarded).
    max_client_message_bytes: u64, env "UPDRAFT_MAX_CLIENT_MESSAGE_BYTES", default("65536");
    /// Bytes queued for one socket before it is dropped as too slow.
    socket_queue_bytes: usize, env "UPDRAFT_SOCKET_QUEUE_BYTES", default("4194304");
    /// Frames queued for one socket before it is dropped as too slow.
    socket_queue_frames: usize, env "UPDRAFT_SOCKET_QUEUE_FRAMES", default("4096");
    /// Niceness (0-19) of the threads serving HTTP requests and the database, above the socket threads' own, so
    /// that a burst of EDS writes does not delay frames to sockets (while the API is the lighter work, the fan-out
    /// runs at this niceness too); 0 is the same priority.
    api_nice: i32, env "UPDRAFT_API_NICE", default(default_api_nice(), "10 when the server may use one CPU, else 0");
    /// Niceness (-20-0) of the fan-out's threads writing frames to sockets, added to the server's own: below 0, a
    /// burst of EDS writes, or another process, does not delay frames (while the API is the lighter work, the
    /// fan-out runs at the API's niceness instead). Raising a priority needs CAP_SYS_NICE; without it the threads
    /// keep the server's own.
    #[arg(allow_negative_numbers = true)]
    frames_nice: i32, env "UPDRAFT_FRAMES_NICE", default(default_frames_nice(), "-10 when the server may use more than one CPU, else 0");
    /// Scheduler time slice, in microseconds, of the threads serving HTTP requests and the database (100-100000;
    /// 0 keeps the kernel's): a short slice lets a request that wakes run sooner, at the cost of more preemptions.
    /// Linux 6.12 and later; older kernels ignore it.
    api_slice_us: u32, env "UPDRAFT_API_SLICE_US", default("0");
    /// Seconds between server pings; a peer silent for two intervals is dropped.
    ping_interval_secs: u64, env "UPDRAFT_PING_INTERVAL_SECS", default("45");
    /// Socket URIs handed out and not yet used, across gateways.
    max_pending_sockets: usize, env "UPDRAFT_MAX_PENDING_SOCKETS", default("1000000");
    /// Seconds a socket URI stays usable.
    socket_uri_ttl_secs: u64, env "UPDRAFT_SOCKET_URI_TTL_SECS", default("300");
    /// Login and sign-up attempts per minute from one client address (IPv6: its /64); 0 is no limit.
    login_attempts_per_minute: u32, env "UPDRAFT_LOGIN_ATTEMPTS_PER_MINUTE", default("60");
    /// Reverse proxies and load balancers (addresses and networks, comma-separated: `10.0.0.0/8,127.0.0.1`) whose
    /// `X-Forwarded-For` and `X-Forwarded-Proto` name the client and its scheme (docs/operations.md).
    trusted_proxies: String, env "UPDRAFT_TRUSTED_PROXIES", unset("none: the TCP peer is the client");
    /// Failed logins per minute for one account (a backend's username, the account email); 0 is no limit.
    login_failures_per_minute: u32, env "UPDRAFT_LOGIN_FAILURES_PER_MINUTE", default("10");
    /// Apps deployed by `git push` answer at `<app-id>.<apps-domain>` on this listener.
    apps_domain: String, env "UPDRAFT_APPS_DOMAIN", default("apps.localhost");
    /// Address for git pushes over SSH (e.g. 0.0.0.0:2222), with keys from `/v1/user/ssh_keys`; unset, no SSH.
    ssh_listen: SocketAddr, env "UPDRAFT_SSH_LISTEN";
    /// Seconds a new release's web process has to answer HTTP on `PORT` before its push is rejected.
    app_health_timeout_secs: u64, env "UPDRAFT_APP_HEALTH_TIMEOUT_SECS", default("30");
    /// Directory of Heroku-style buildpacks (one directory each, with bin/detect, bin/compile, bin/release), tried
    /// in name order before the built-in ones; it must be readable by every user.
    buildpacks_dir: PathBuf, env "UPDRAFT_BUILDPACKS_DIR";
    /// PostgreSQL server on which `mdb` instances get a database and a role each (its role needs CREATEROLE and
    /// CREATEDB), e.g. postgres://updraft@127.0.0.1/postgres.
    mdb_postgres_url: String, env "UPDRAFT_MDB_POSTGRES_URL";
    /// Redis server (6 or later) on which `mdb` instances get an ACL user and a key prefix each.
    mdb_redis_url: String, env "UPDRAFT_MDB_REDIS_URL";
    /// Log format: text or json.
    #[arg(value_parser = str::parse::<LogFormat>)]
    log_format: LogFormat, env "UPDRAFT_LOG_FORMAT", default("text");
    /// Let webhooks target link-local addresses and this server's own admin API.
    webhooks_allow_unsafe_targets: bool, env "UPDRAFT_WEBHOOKS_ALLOW_UNSAFE_TARGETS", default("false");
    /// Seconds a webhook attempt may take (at most 240).
    webhook_timeout_secs: u64, env "UPDRAFT_WEBHOOK_TIMEOUT_SECS", default("10");
    /// Milliseconds before the first retry of a failed webhook delivery; it doubles with each.
    webhook_retry_base_ms: u64, env "UPDRAFT_WEBHOOK_RETRY_BASE_MS", default("5000");
    /// Seconds a failing webhook delivery is retried before it is dead.
    webhook_retry_for_secs: u64, env "UPDRAFT_WEBHOOK_RETRY_FOR_SECS", default("86400");
}

/// The default gateway's `ACCESS_CONTROL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(try_from = "String")]
pub enum AccessMode {
    None,
    Eds,
    Custom,
}

impl FromStr for AccessMode {
    type Err = String;

    /// As the original read `ACCESS_CONTROL`: blanks around it ignored, and empty is `none`.
    fn from_str(text: &str) -> Result<AccessMode, String> {
        match text.trim() {
            "" => Ok(AccessMode::None),
            text => parse_choice(text),
        }
    }
}

impl TryFrom<String> for AccessMode {
    type Error = String;

    fn try_from(text: String) -> Result<AccessMode, String> {
        text.parse()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(try_from = "String")]
pub enum LogFormat {
    Text,
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<LogFormat, String> {
        parse_choice(text)
    }
}

impl TryFrom<String> for LogFormat {
    type Error = String;

    fn try_from(text: String) -> Result<LogFormat, String> {
        text.parse()
    }
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
    /// `--blob-store`: S3-compatible storage for EDS files, instead of the data directory.
    pub blob_store: Option<String>,
    /// `--bus`: Redis or NATS between nodes, instead of the in-process bus.
    pub bus: Option<BusUrl>,
    /// `--database-url`: PostgreSQL instead of the embedded SQLite.
    pub database_url: Option<String>,
    pub database_connections: u32,
    pub max_file_bytes: u64,
    pub file_body_timeout: Duration,
    pub file_url_lifetime: Duration,
    /// `--upload-expiry-secs`; `None` keeps unfinished uploads.
    pub upload_expiry: Option<Duration>,
    /// `None`: derived from the open-file limit at start-up.
    pub max_connections: Option<usize>,
    pub metrics_listen: Option<SocketAddr>,
    pub metrics_token: Option<String>,
    pub max_client_message_bytes: u64,
    pub socket_queue_bytes: usize,
    pub socket_queue_frames: usize,
    pub api_nice: i32,
    pub frames_nice: i32,
    /// `None`: the kernel's slice.
    pub api_slice: Option<Duration>,
    pub ping_interval: Duration,
    pub max_pending_sockets: usize,
    pub socket_uri_ttl: Duration,
    pub login_limits: updraft_api::passwords::AttemptLimits,
    pub trusted_proxies: crate::forwarded::TrustedProxies,
    pub json_logs: bool,
    pub webhooks: WebhookOptions,
    pub apps_domain: String,
    pub app_health_timeout: Duration,
    pub ssh_listen: Option<SocketAddr>,
    pub buildpacks_dir: Option<PathBuf>,
    pub mdb_postgres_url: Option<String>,
    pub mdb_redis_url: Option<String>,
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

/// Which bus `--bus` names; the URL is passed to its client as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusUrl {
    Redis(String),
    Nats(String),
}

impl BusUrl {
    fn parse(url: &str) -> anyhow::Result<BusUrl> {
        match url.split_once("://").map(|(scheme, _)| scheme) {
            Some("redis" | "rediss" | "redis+unix" | "unix") => Ok(BusUrl::Redis(url.to_owned())),
            Some("nats" | "tls") => Ok(BusUrl::Nats(url.to_owned())),
            _ => Err(format_err!("--bus {url:?}: expected redis://host:port or nats://host:port")),
        }
    }
}

/// The longest webhook attempt; see `check_ranges`.
const MAX_WEBHOOK_TIMEOUT_SECS: u64 = 240;

/// `url` if it names PostgreSQL.
pub fn database_url(url: &str) -> anyhow::Result<String> {
    match url.split_once("://").map(|(scheme, _)| scheme) {
        Some("postgres" | "postgresql") => Ok(url.to_owned()),
        _ => Err(format_err!("--database-url: expected postgres://user:password@host:port/database")),
    }
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
    /// Fills what flags and env left open from the config file, then from defaults, and validates the result.
    pub fn resolve(self) -> anyhow::Result<Settings> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                toml::from_str::<ServeArgs>(&text).with_context(|| format!("parsing {}", path.display()))?
            }
            None => ServeArgs::default(),
        };
        let a = self.over(file);
        a.check_ranges()?;
        let (tls, tls_listen) = a.tls()?;
        Ok(Settings {
            listen: a.listen,
            data_dir: a.data_dir.clone(),
            tls,
            tls_listen,
            admin_token: a.admin_token.clone().filter(|t| !t.is_empty()),
            account: a.account()?,
            default_gateway: a.default_gateway()?,
            app_domain: a.app_domain.clone().filter(|t| !t.is_empty()),
            max_body_bytes: a.max_body_bytes,
            body_timeout: Duration::from_secs(a.body_timeout_secs),
            blob_store: a.blob_store.clone().filter(|it| !it.is_empty()),
            bus: a.bus.as_deref().filter(|it| !it.is_empty()).map(BusUrl::parse).transpose()?,
            database_url: a.database_url.as_deref().filter(|it| !it.is_empty()).map(database_url).transpose()?,
            database_connections: a.database_connections,
            max_file_bytes: a.max_file_bytes,
            file_body_timeout: Duration::from_secs(a.file_body_timeout_secs),
            file_url_lifetime: Duration::from_secs(a.file_url_lifetime_secs),
            upload_expiry: (a.upload_expiry_secs > 0).then(|| Duration::from_secs(a.upload_expiry_secs)),
            max_connections: a.max_connections,
            metrics_listen: a.metrics_listen,
            metrics_token: a.metrics_token.clone().filter(|t| !t.is_empty()),
            max_client_message_bytes: a.max_client_message_bytes,
            socket_queue_bytes: a.socket_queue_bytes,
            socket_queue_frames: a.socket_queue_frames,
            api_nice: a.api_nice,
            frames_nice: a.frames_nice,
            api_slice: a.api_slice()?,
            ping_interval: Duration::from_secs(a.ping_interval_secs),
            max_pending_sockets: a.max_pending_sockets,
            socket_uri_ttl: Duration::from_secs(a.socket_uri_ttl_secs),
            apps_domain: a.apps_domain.trim_matches('.').to_ascii_lowercase(),
            app_health_timeout: Duration::from_secs(a.app_health_timeout_secs.max(1)),
            ssh_listen: a.ssh_listen,
            buildpacks_dir: a.buildpacks_dir.clone(),
            mdb_postgres_url: a.mdb_postgres_url.clone().filter(|it| !it.is_empty()),
            mdb_redis_url: a.mdb_redis_url.clone().filter(|it| !it.is_empty()),
            login_limits: updraft_api::passwords::AttemptLimits {
                per_address_per_minute: a.login_attempts_per_minute,
                failures_per_account_per_minute: a.login_failures_per_minute,
            },
            trusted_proxies: crate::forwarded::TrustedProxies::parse(a.trusted_proxies.as_deref().unwrap_or_default())?,
            json_logs: a.log_format == LogFormat::Json,
            webhooks: WebhookOptions {
                allow_unsafe_targets: a.webhooks_allow_unsafe_targets,
                timeout: Duration::from_secs(a.webhook_timeout_secs.max(1)),
                retry_base: Duration::from_millis(a.webhook_retry_base_ms.max(1)),
                retry_for: Duration::from_secs(a.webhook_retry_for_secs),
            },
        })
    }
}

impl Layered {
    /// Refuses numbers that would make the server misbehave rather than fail to start.
    fn check_ranges(&self) -> anyhow::Result<()> {
        if self.body_timeout_secs == 0 || self.file_body_timeout_secs == 0 {
            return Err(format_err!("the body timeouts must be at least one second"));
        }
        if self.file_url_lifetime_secs == 0 {
            return Err(format_err!("a file's download URL must work for at least one second"));
        }
        if !(2..=1000).contains(&self.database_connections) {
            return Err(format_err!("--database-connections is from 2 to 1000, not {}", self.database_connections));
        }
        if self.max_connections == Some(0) {
            return Err(format_err!("--max-connections must be at least 1"));
        }
        if self.ping_interval_secs == 0 {
            return Err(format_err!("the ping interval must be at least one second"));
        }
        if !(0..=19).contains(&self.api_nice) {
            return Err(format_err!("--api-nice is from 0 to 19, not {}", self.api_nice));
        }
        if !(-20..=0).contains(&self.frames_nice) {
            return Err(format_err!("--frames-nice is from -20 to 0, not {}", self.frames_nice));
        }
        // A shared store leases a claimed delivery to its worker for about the attempt's timeout
        // (`updraft_realtime::webhooks::claim_lease`), and a node killed mid-attempt holds its deliveries that long.
        if self.webhook_timeout_secs > MAX_WEBHOOK_TIMEOUT_SECS {
            return Err(format_err!("--webhook-timeout-secs is at most {MAX_WEBHOOK_TIMEOUT_SECS}"));
        }
        Ok(())
    }

    fn api_slice(&self) -> anyhow::Result<Option<Duration>> {
        match self.api_slice_us {
            0 => Ok(None),
            us @ 100..=100_000 => Ok(Some(Duration::from_micros(us.into()))),
            us => Err(format_err!("--api-slice-us is 0 or from 100 to 100000, not {us}")),
        }
    }

    /// The certificate files and the second listener's address, which needs them.
    fn tls(&self) -> anyhow::Result<(Option<TlsFiles>, Option<SocketAddr>)> {
        let files = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert: cert.clone(), key: key.clone() }),
            (None, None) => None,
            _ => return Err(format_err!("--tls-cert and --tls-key go together")),
        };
        if self.tls_listen.is_some() && files.is_none() {
            return Err(format_err!("--tls-listen needs --tls-cert and --tls-key"));
        }
        Ok((files, self.tls_listen))
    }

    fn account(&self) -> anyhow::Result<Option<(String, String)>> {
        match (&self.admin_email, &self.admin_password) {
            (Some(email), Some(password)) if !email.is_empty() && !password.is_empty() => {
                Ok(Some((email.clone(), password.clone())))
            }
            (None, None) => Ok(None),
            _ => Err(format_err!("--admin-email and --admin-password go together and must not be empty")),
        }
    }

    fn default_gateway(&self) -> anyhow::Result<DefaultGateway> {
        let access = match self.access_control {
            AccessMode::None => AccessControl::None,
            AccessMode::Eds => AccessControl::Eds,
            AccessMode::Custom => AccessControl::Custom,
        };
        let eds_permissions = match self.eds_permissions.as_deref().filter(|s| !s.trim().is_empty()) {
            None => Permissions::default(),
            Some(text) => parse_permissions(text)?,
        };
        Ok(DefaultGateway {
            access,
            // An empty token must never match an empty bearer.
            security_token: self.security_token.clone().filter(|t| !t.is_empty()),
            eds_backend_id: self.eds_backend_id.clone().filter(|t| !t.is_empty()),
            eds_permissions,
            // Unset by default: the hosted service it once named (api.engin.io) is gone, and whoever answers there
            // would get users' tokens and decide who is signed in.
            eds_uri: self.eds_uri.as_deref().map(|t| t.trim().to_owned()).unwrap_or_default(),
        })
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

/// One CPU: the API's niceness (10) already puts frames first when both are busy, and a wider gap made creates
/// wait for a whole fan-out (docs/realtime.md, BENCHMARKS.md).
fn default_frames_nice() -> i32 {
    if std::thread::available_parallelism().is_ok_and(|n| n.get() == 1) { 0 } else { -10 }
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
mod tests;
