//! The runtime as the API and the router see it: apps, their deploys, what runs and where requests go.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::certificates::Certificates;
use crate::cgroups::{Cgroups, Limits};
use crate::clouds::{Clouds, Placements};
use crate::keys::SshKeys;
use crate::logs::AppLogs;
use crate::names;
use crate::processes::Spec;
use crate::records::{AppRecord, AppRecords};
use crate::scheduler::{LocalProcesses, Placed, Scheduler};
use crate::tokens::PersonalTokens;

/// Apps' users: one uid each from this range, never shared.
const FIRST_UID: u32 = 61_000;
const LAST_UID: u32 = 64_999;
/// Ports app processes listen on.
const PORTS: std::ops::Range<u16> = 20_000..30_000;
/// How long replaced processes keep serving the requests they have before they are stopped.
const DRAIN: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct Settings {
    /// Where repositories, releases, caches, logs and records live.
    pub root: PathBuf,
    /// `<app-id>.<apps_domain>` reaches an app.
    pub apps_domain: String,
    /// How long a new release's web process has to answer on `PORT`.
    pub health_timeout: Duration,
    /// This binary, which git runs as each repository's pre-receive hook.
    pub exe: PathBuf,
    /// The operator's Heroku-style buildpacks, one directory each, tried before the built-in ones.
    pub buildpacks_dir: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("no such app")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Where a request for a host goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Not an app's host: the API's.
    NotAnApp,
    /// Under the apps domain, but no app's.
    Unknown,
    /// An app with no web process up.
    Down,
    Backend(SocketAddr),
}

pub(crate) struct Running {
    pub(crate) processes: Vec<Box<dyn Placed>>,
}

pub struct Runtime {
    pub(crate) settings: Settings,
    /// Who may push over SSH.
    ssh_keys: SshKeys,
    /// The account's personal access tokens, by hash.
    personal_tokens: PersonalTokens,
    clouds: Clouds,
    placements: Placements,
    /// Apps' own TLS certificates, by app id.
    pub(crate) certificates: Certificates,
    /// How sandboxes get their limits on this host.
    pub(crate) cgroups: Cgroups,
    pub(crate) records: Arc<dyn AppRecords>,
    pub(crate) running: tokio::sync::Mutex<HashMap<String, Running>>,
    /// Addresses of each app's current web processes, read by every routed request.
    routes: RwLock<HashMap<String, Vec<SocketAddr>>>,
    /// Where processes run.
    pub(crate) scheduler: Arc<dyn Scheduler>,
    /// Custom domains and the app each reaches.
    pub(crate) domains: RwLock<HashMap<String, String>>,
    round_robin: AtomicUsize,
    /// One deploy of an app at a time.
    pub(crate) deploys: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    logs: Mutex<HashMap<String, Arc<AppLogs>>>,
    ports: Arc<Mutex<BTreeSet<u16>>>,
    next_port: AtomicUsize,
    /// Names this server's control groups apart from another's on the same host.
    pub(crate) instance: String,
}

impl Runtime {
    pub fn open(settings: Settings, records: Arc<dyn AppRecords>) -> anyhow::Result<Arc<Runtime>> {
        for dir in ["repos", "releases", "cache", "logs", "incoming"] {
            std::fs::create_dir_all(settings.root.join(dir))?;
        }
        let domains = records
            .all()
            .into_iter()
            .flat_map(|app| app.domains.into_iter().map(move |d| (d, app.id.clone())))
            .collect();
        let cgroups = Cgroups::detect();
        if cgroups == Cgroups::Unavailable {
            tracing::warn!(
                "control groups cannot be written here: app processes run without memory, CPU and process limits"
            );
        }
        let ssh_keys = SshKeys::open(settings.root.join("ssh_keys.json"))?;
        let personal_tokens = PersonalTokens::open(settings.root.join("personal_tokens.json"))?;
        let clouds = Clouds::open(settings.root.join("clouds.json"))?;
        let placements = Placements::open(settings.root.join("placements.json"))?;
        let with_certificate: Vec<String> =
            records.all().into_iter().filter(|a| a.ssl_certificate.is_some()).map(|a| a.id).collect();
        let certificates = Certificates::open(settings.root.join("certs"), &with_certificate)?;
        Ok(Arc::new(Runtime {
            ssh_keys,
            personal_tokens,
            clouds,
            placements,
            certificates,
            settings,
            cgroups,
            records,
            running: tokio::sync::Mutex::default(),
            domains: RwLock::new(domains),
            routes: RwLock::default(),
            scheduler: Arc::new(LocalProcesses),
            round_robin: AtomicUsize::new(0),
            deploys: Mutex::default(),
            logs: Mutex::default(),
            ports: Arc::default(),
            // Servers sharing a host (several nodes, tests) start their searches apart.
            next_port: AtomicUsize::new(usize::from(rand::random::<u16>())),
            instance: hex::encode(rand::random::<[u8; 4]>()),
        }))
    }

    /// Points every repository's hook at this binary, which may have moved since the repository was made.
    pub fn refresh_hooks(&self) -> std::io::Result<()> {
        for app in self.records.all() {
            crate::git::write_hook(&self.settings, &self.repo_dir(&app.id), &app.id)?;
        }
        Ok(())
    }

    pub fn ssh_keys(&self) -> &SshKeys {
        &self.ssh_keys
    }

    pub fn personal_tokens(&self) -> &PersonalTokens {
        &self.personal_tokens
    }

    pub fn clouds(&self) -> &Clouds {
        &self.clouds
    }

    /// The clouds and tags of EDS apps and gateways made through the platform API.
    pub fn placements(&self) -> &Placements {
        &self.placements
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn apps(&self) -> Vec<AppRecord> {
        self.records.all()
    }

    pub fn app(&self, id: &str) -> Option<AppRecord> {
        self.records.get(id)
    }

    /// A new app named `name` in `cloud`, with its empty repository.
    pub async fn create_app(&self, name: &str, size: u8, cloud: &str) -> Result<AppRecord, RuntimeError> {
        if let Some(why) = names::name_error(name) {
            return Err(RuntimeError::Invalid(why.to_owned()));
        }
        if ![1, 2, 4, 8].contains(&size) {
            return Err(RuntimeError::Invalid("runtimeSize is 1, 2, 4 or 8".to_owned()));
        }
        let id = names::app_id(name);
        let all = self.records.all();
        if all.iter().any(|a| a.id == id) {
            return Err(RuntimeError::Conflict(format!("an app named {name} exists")));
        }
        let taken: BTreeSet<u32> = all.iter().map(|a| a.uid).collect();
        let uid = (FIRST_UID..=LAST_UID)
            .find(|uid| !taken.contains(uid))
            .ok_or_else(|| RuntimeError::Conflict("no app user left".to_owned()))?;
        let app = AppRecord {
            id: id.clone(),
            name: name.to_owned(),
            uid,
            size,
            structure: BTreeMap::new(),
            env: BTreeMap::new(),
            domains: Vec::new(),
            releases: Vec::new(),
            created_ms: now_ms(),
            cloud: cloud.to_owned(),
            tags: Vec::new(),
            slugs: Vec::new(),
            ssl_certificate: None,
            stack: crate::records::default_stack(),
        };
        crate::git::create_repo(&self.settings, &id).await?;
        self.put(app.clone()).await?;
        Ok(app)
    }

    /// Sets the app's tags.
    pub async fn set_tags(&self, id: &str, tags: Vec<String>) -> Result<AppRecord, RuntimeError> {
        let lock = self.app_lock(id);
        let _guard = lock.lock().await;
        let mut app = self.app(id).ok_or(RuntimeError::NotFound)?;
        app.tags = tags;
        self.put(app.clone()).await?;
        Ok(app)
    }

    /// Stops the app and forgets it: its record, repository, releases, cache and logs.
    pub async fn delete_app(&self, id: &str) -> Result<(), RuntimeError> {
        self.records.get(id).ok_or(RuntimeError::NotFound)?;
        self.stop_app(id).await;
        self.domains.write().unwrap_or_else(|poisoned| poisoned.into_inner()).retain(|_, app| app != id);
        let records = self.records.clone();
        let owned = id.to_owned();
        tokio::task::spawn_blocking(move || records.delete(&owned)).await.map_err(std::io::Error::other)??;
        let (cache, slugs) = (self.settings.root.join("cache").join(id), self.settings.root.join("slugs").join(id));
        for dir in [self.repo_dir(id), self.releases_dir(id), cache, slugs] {
            let _ = tokio::fs::remove_dir_all(dir).await;
        }
        let _ = tokio::fs::remove_file(self.log_file(id)).await;
        self.lock_logs().remove(id);
        self.forget_certificate(id).await;
        Ok(())
    }

    pub(crate) async fn put(&self, app: AppRecord) -> Result<(), RuntimeError> {
        let records = self.records.clone();
        tokio::task::spawn_blocking(move || records.put(&app)).await.map_err(std::io::Error::other)??;
        Ok(())
    }

    pub fn repo_dir(&self, id: &str) -> PathBuf {
        self.settings.root.join("repos").join(format!("{id}.git"))
    }

    pub(crate) fn releases_dir(&self, id: &str) -> PathBuf {
        self.settings.root.join("releases").join(id)
    }

    fn log_file(&self, id: &str) -> PathBuf {
        self.settings.root.join("logs").join(format!("{id}.log"))
    }

    fn lock_logs(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<AppLogs>>> {
        self.logs.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The app's log (its processes' lines and the runtime's notes on them).
    pub fn logs(&self, id: &str) -> Arc<AppLogs> {
        self.lock_logs().entry(id.to_owned()).or_insert_with(|| Arc::new(AppLogs::open(self.log_file(id)))).clone()
    }

    /// The app label of a host under the apps domain (`<label>.<apps-domain>[:port]`), lower-cased. Cheap for the
    /// API's own hosts: a suffix compared, nothing allocated.
    pub fn app_label(&self, host: &str) -> Option<String> {
        let host = without_port(host);
        let domain = &self.settings.apps_domain;
        let label_end = host.len().checked_sub(domain.len() + 1)?;
        let under_domain = label_end > 0
            && host.is_char_boundary(label_end)
            && host.as_bytes()[label_end] == b'.'
            && host[label_end + 1..].eq_ignore_ascii_case(domain);
        under_domain.then(|| host[..label_end].to_ascii_lowercase())
    }

    /// The app a custom domain (with or without a port) reaches.
    pub(crate) fn domain_app(&self, host: &str) -> Option<String> {
        let domains = self.domains.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        if domains.is_empty() {
            return None;
        }
        domains.get(&without_port(host).to_ascii_lowercase()).cloned()
    }

    /// Where a request naming `host` goes; each call takes the next web process of the app.
    pub fn route(&self, host: &str) -> Target {
        let Some(label) = self.app_label(host).or_else(|| self.domain_app(host)) else { return Target::NotAnApp };
        let routes = self.routes.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        match routes.get(&label) {
            Some(addresses) if !addresses.is_empty() => {
                Target::Backend(addresses[self.round_robin.fetch_add(1, Ordering::Relaxed) % addresses.len()])
            }
            _ if self.records.get(&label).is_some() => Target::Down,
            _ => Target::Unknown,
        }
    }

    pub(crate) fn set_route(&self, id: &str, addresses: Vec<SocketAddr>) {
        let mut routes = self.routes.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if addresses.is_empty() {
            routes.remove(id)
        } else {
            routes.insert(id.to_owned(), addresses)
        };
    }

    /// A free port for a process, probed by binding it.
    pub(crate) fn take_port(&self) -> std::io::Result<u16> {
        let mut used = self.ports.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let span = usize::from(PORTS.end - PORTS.start);
        for _ in 0..span {
            let port = PORTS.start + (self.next_port.fetch_add(1, Ordering::Relaxed) % span) as u16;
            if !used.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
                used.insert(port);
                return Ok(port);
            }
        }
        Err(std::io::Error::other("no free port for an app process"))
    }

    /// Stops every process of the app.
    pub async fn stop_app(&self, id: &str) {
        self.set_route(id, Vec::new());
        let running = self.running.lock().await.remove(id);
        if let Some(running) = running {
            stop_processes(&self.ports, running.processes).await;
        }
    }

    pub(crate) async fn stop_processes(&self, processes: Vec<Box<dyn Placed>>) {
        stop_processes(&self.ports, processes).await;
    }

    /// Stops every app's processes (at shutdown).
    pub async fn stop_all(&self) {
        let ids: Vec<String> = self.running.lock().await.keys().cloned().collect();
        for id in ids {
            self.stop_app(&id).await;
        }
    }

    /// The specs of an app's processes for a release and a structure.
    pub(crate) fn specs(
        &self,
        app: &AppRecord,
        release: &crate::records::Release,
        structure: &BTreeMap<String, u32>,
    ) -> std::io::Result<Vec<Spec>> {
        let release_dir = self.releases_dir(&app.id).join(format!("v{}", release.build));
        let mut specs = Vec::new();
        for (process_type, count) in structure {
            let Some(command) = release.process_types.get(process_type) else { continue };
            for index in 1..=*count {
                let port = self.take_port()?;
                let mut env = release.env.clone();
                env.extend(
                    [
                        ("PORT", port.to_string()),
                        ("STACK", release.stack.clone()),
                        ("MAR_APP_ID", app.id.clone()),
                        ("HOME", "/app".to_owned()),
                        ("PATH", crate::sandbox::PATH.to_owned()),
                        ("DYNO", format!("{process_type}.{index}")),
                        ("PYTHONUNBUFFERED", "1".to_owned()),
                        ("npm_config_cache", "/tmp/npm".to_owned()),
                    ]
                    .map(|(k, v)| (k.to_owned(), v)),
                );
                specs.push(Spec {
                    app_id: app.id.clone(),
                    process_type: process_type.clone(),
                    index,
                    command: command.clone(),
                    release_dir: release_dir.clone(),
                    uid: app.uid,
                    env,
                    port,
                    limits: Limits::of_size(app.size),
                    group: format!("{}.{}.{process_type}.{index}.{port}", self.instance, app.id),
                    cgroups: self.cgroups.clone(),
                });
            }
        }
        Ok(specs)
    }

    /// Starts what every app's current release should run, after a start of Updraft.
    pub async fn reconcile(&self) {
        for app in self.records.all() {
            let Some(release) = app.current().cloned() else { continue };
            match self.specs(&app, &release, &app.structure) {
                Ok(specs) => self.run(&app.id, specs).await,
                Err(err) => tracing::warn!(app = %app.id, %err, "app not started"),
            }
        }
    }

    /// Starts `specs` as the app's processes, routes its web ones and stops what ran before.
    pub(crate) async fn run(&self, id: &str, specs: Vec<Spec>) {
        let logs = self.logs(id);
        let processes = specs.into_iter().map(|spec| self.scheduler.start(spec, logs.clone())).collect();
        self.switch(id, processes).await;
    }

    /// Makes `processes` the app's, routed; the old ones are stopped after the drain.
    pub(crate) async fn switch(&self, id: &str, processes: Vec<Box<dyn Placed>>) {
        self.install(id, processes, |_| false).await;
    }

    /// Starts `add` beside the app's processes that `keep` holds, routes the web ones of both, and stops the
    /// others after the drain (a scale: processes of unchanged types keep running).
    pub(crate) async fn rescale(&self, id: &str, add: Vec<Spec>, keep: impl Fn(&Spec) -> bool) {
        let logs = self.logs(id);
        let started = add.into_iter().map(|spec| self.scheduler.start(spec, logs.clone())).collect();
        self.install(id, started, keep).await;
    }

    /// Makes `started`, with the running processes `keep` holds, the app's and routes their web ones. The
    /// others keep serving the requests already sent to them for `DRAIN`, then stop.
    async fn install(&self, id: &str, started: Vec<Box<dyn Placed>>, keep: impl Fn(&Spec) -> bool) {
        let mut running = self.running.lock().await;
        let old = running.remove(id).map(|r| r.processes).unwrap_or_default();
        let (kept, gone): (Vec<_>, Vec<_>) = old.into_iter().partition(|p| keep(p.spec()));
        let mut processes: Vec<Box<dyn Placed>> = kept.into_iter().chain(started).collect();
        processes
            .sort_by(|a, b| (&a.spec().process_type, a.spec().index).cmp(&(&b.spec().process_type, b.spec().index)));
        let web = web_addresses(&processes);
        running.insert(id.to_owned(), Running { processes });
        drop(running);
        self.set_route(id, web);
        if !gone.is_empty() {
            let ports = self.ports.clone();
            tokio::spawn(async move {
                tokio::time::sleep(DRAIN).await;
                stop_processes(&ports, gone).await;
            });
        }
    }

    /// The `(type, index)` of each process the app runs.
    pub(crate) async fn running_names(&self, id: &str) -> BTreeSet<(String, u32)> {
        let running = self.running.lock().await;
        running.get(id).map_or_else(BTreeSet::new, |r| {
            r.processes.iter().map(|p| (p.spec().process_type.clone(), p.spec().index)).collect()
        })
    }

    /// Gives back the ports of specs that will not run.
    pub(crate) fn give_back(&self, specs: &[Spec]) {
        let mut used = self.ports.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for spec in specs {
            used.remove(&spec.port);
        }
    }

    /// How each of the app's processes is doing: `(name, app pid, restarts)`.
    pub async fn processes(&self, id: &str) -> Vec<(String, Option<i32>, u32)> {
        let running = self.running.lock().await;
        let Some(running) = running.get(id) else { return Vec::new() };
        running.processes.iter().map(|p| (p.spec().name(), p.pid(), p.restarts())).collect()
    }
}

/// `host` without its `:port`, if it has one.
fn without_port(host: &str) -> &str {
    host.rsplit_once(':').filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit())).map_or(host, |(h, _)| h)
}

/// The addresses of the web processes among `processes`.
fn web_addresses(processes: &[Box<dyn Placed>]) -> Vec<SocketAddr> {
    processes.iter().filter(|p| p.spec().process_type == "web").map(|p| p.address()).collect()
}

/// Stops `processes` at once (each may take its grace period) and gives their ports back.
async fn stop_processes(ports: &Mutex<BTreeSet<u16>>, processes: Vec<Box<dyn Placed>>) {
    let given: Vec<u16> = processes.iter().map(|p| p.spec().port).collect();
    let stops: Vec<_> = processes.into_iter().map(|p| tokio::spawn(p.stop())).collect();
    for stop in stops {
        let _ = stop.await;
    }
    let mut used = ports.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for port in given {
        used.remove(&port);
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

pub(crate) fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => dir_size(&entry.path()),
            Ok(kind) if kind.is_file() => entry.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}
