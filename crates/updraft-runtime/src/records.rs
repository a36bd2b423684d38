//! What the runtime must remember across restarts: its apps, their settings and their releases, the desired
//! state the supervisor brings the machine back to (docs/runtime.md).
//!
//! Behind [`AppRecords`], so that a cluster keeps them in its shared database (the scale-out work); the embedded
//! [`FileRecords`] keeps one JSON file per app, written whole and renamed into place after an fsync, so a crash
//! leaves the old record or the new one. Apps are few and change on a deploy or a setting, so files are enough.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// An app, as the MAR API shows it and the supervisor runs it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AppRecord {
    pub id: String,
    pub name: String,
    /// The unprivileged user its processes and builds run as, its own.
    pub uid: u32,
    /// 1, 2, 4 or 8: the share of memory, CPU and processes its sandboxes get.
    pub size: u8,
    /// How many processes of each type run: `web` and the types the current release declares.
    pub structure: BTreeMap<String, u32>,
    /// The app's own environment variables (`env_vars`).
    pub env: BTreeMap<String, String>,
    /// Custom domains that reach the app besides `<id>.<apps-domain>`.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Kept releases, oldest first; the last is current.
    pub releases: Vec<Release>,
    pub created_ms: i64,
    /// The cloud (platform account) it belongs to.
    #[serde(default = "default_cloud")]
    pub cloud: String,
    /// Labels the platform API sets (`PUT /v1/instances/:id`).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Prebuilt slugs uploaded for it (`/v1/apps/:id/slugs`).
    #[serde(default)]
    pub slugs: Vec<Slug>,
    /// The name of its own TLS certificate, if it has one (kept apart, in `certs/`).
    #[serde(default)]
    pub ssl_certificate: Option<String>,
    /// The stack its next release is built for.
    #[serde(default = "default_stack")]
    pub stack: String,
}

/// A prebuilt slug: a gzipped tar of the app's `/app`, made elsewhere, deployed as is.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Slug {
    pub tag: String,
    /// From the client's Procfile; the slug's own Procfile when empty.
    pub process_types: BTreeMap<String, String>,
    pub created_ms: i64,
    pub uploaded_ms: Option<i64>,
    pub deployed_ms: Option<i64>,
    /// SHA-256 of the URL token that may upload it, until it is uploaded or the token expires.
    pub upload: Option<String>,
    pub upload_expires_ms: i64,
}

/// The cloud every server has, and that records written before clouds were kept belong to.
pub const DEFAULT_CLOUD: &str = "default";

pub fn default_cloud() -> String {
    DEFAULT_CLOUD.to_owned()
}

impl AppRecord {
    pub fn current(&self) -> Option<&Release> {
        self.releases.last()
    }
}

/// One immutable build of an app, numbered from 1.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Release {
    pub version: u32,
    /// The release whose build this one runs (itself, or an earlier one when only the environment changed).
    pub build: u32,
    /// The git commit built, or the slug's tag.
    pub commit: String,
    /// The buildpack that built it.
    pub buildpack: String,
    /// Procfile types and their commands.
    pub process_types: BTreeMap<String, String>,
    /// The environment it was released with: a change makes a new release of the same build.
    pub env: BTreeMap<String, String>,
    pub created_ms: i64,
    /// The stack it was built for (`STACK`).
    #[serde(default = "default_stack")]
    pub stack: String,
}

/// The stacks apps may name (`PUT /v1/apps/:id`); both build and run on the host's own tools.
pub const STACKS: [&str; 2] = ["cedar-14", "cedar"];

pub fn default_stack() -> String {
    STACKS[0].to_owned()
}

/// Where app records live.
pub trait AppRecords: Send + Sync {
    fn all(&self) -> Vec<AppRecord>;
    fn get(&self, id: &str) -> Option<AppRecord>;
    /// Stores `app` whole; durable when it returns.
    fn put(&self, app: &AppRecord) -> std::io::Result<()>;
    fn delete(&self, id: &str) -> std::io::Result<()>;
}

/// One file per app under a directory, cached in memory.
pub struct FileRecords {
    dir: PathBuf,
    apps: Mutex<HashMap<String, AppRecord>>,
}

impl FileRecords {
    /// Reads every record in `dir` (made if missing). A record that does not parse stops the start: it is kept
    /// for the operator rather than overwritten.
    pub fn open(dir: &Path) -> anyhow::Result<FileRecords> {
        std::fs::create_dir_all(dir)?;
        let mut apps = HashMap::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let bytes = std::fs::read(&path)?;
                let app: AppRecord = serde_json::from_slice(&bytes)
                    .map_err(|e| anyhow::format_err!("{}: not an app record: {e}", path.display()))?;
                apps.insert(app.id.clone(), app);
            }
        }
        Ok(FileRecords { dir: dir.to_owned(), apps: Mutex::new(apps) })
    }

    fn apps(&self) -> std::sync::MutexGuard<'_, HashMap<String, AppRecord>> {
        self.apps.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl AppRecords for FileRecords {
    fn all(&self) -> Vec<AppRecord> {
        let mut all: Vec<AppRecord> = self.apps().values().cloned().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    fn get(&self, id: &str) -> Option<AppRecord> {
        self.apps().get(id).cloned()
    }

    fn put(&self, app: &AppRecord) -> std::io::Result<()> {
        let path = self.dir.join(format!("{}.json", app.id));
        write_atomically(&path, &serde_json::to_vec_pretty(app).map_err(std::io::Error::other)?)?;
        self.apps().insert(app.id.clone(), app.clone());
        Ok(())
    }

    fn delete(&self, id: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.dir.join(format!("{id}.json"))) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err),
            _ => {}
        }
        self.apps().remove(id);
        Ok(())
    }
}

/// A short list kept in one JSON file, written whole before a change is visible (SSH keys, personal tokens).
pub struct JsonList<T> {
    file: PathBuf,
    items: Mutex<Vec<T>>,
}

impl<T: Clone + Serialize + serde::de::DeserializeOwned> JsonList<T> {
    /// Reads the file; a missing one is an empty list, an unreadable one stops the start-up.
    pub fn open(file: PathBuf) -> anyhow::Result<JsonList<T>> {
        let items = match std::fs::read(&file) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| anyhow::format_err!("{}: not a list this server wrote: {e}", file.display()))?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(err) => return Err(err.into()),
        };
        Ok(JsonList { file, items: Mutex::new(items) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<T>> {
        self.items.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn all(&self) -> Vec<T> {
        self.lock().clone()
    }

    /// Adds `item` unless `refuse` finds a reason in the current list.
    pub fn add(&self, item: T, refuse: impl FnOnce(&[T]) -> Option<String>) -> Result<T, String> {
        let mut items = self.lock();
        if let Some(why) = refuse(&items) {
            return Err(why);
        }
        let mut next = items.clone();
        next.push(item.clone());
        write_atomically(&self.file, &serde_json::to_vec_pretty(&next).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        *items = next;
        Ok(item)
    }

    /// Puts `item` in place of the items `matches` picks, or adds it, in one write.
    pub fn replace(&self, item: T, matches: impl Fn(&T) -> bool) -> std::io::Result<T> {
        let mut items = self.lock();
        let mut next: Vec<T> = items.iter().filter(|kept| !matches(kept)).cloned().collect();
        next.push(item.clone());
        write_atomically(&self.file, &serde_json::to_vec_pretty(&next).map_err(std::io::Error::other)?)?;
        *items = next;
        Ok(item)
    }

    /// Removes the items `matches` picks; those removed.
    pub fn remove(&self, matches: impl Fn(&T) -> bool) -> std::io::Result<Vec<T>> {
        let mut items = self.lock();
        let (gone, next): (Vec<T>, Vec<T>) = items.iter().cloned().partition(|item| matches(item));
        if !gone.is_empty() {
            write_atomically(&self.file, &serde_json::to_vec_pretty(&next).map_err(std::io::Error::other)?)?;
            *items = next;
        }
        Ok(gone)
    }
}

/// Writes `bytes` to `path` so that a crash leaves the old file or the new one: a staged file, fsynced, renamed
/// into place, its directory fsynced.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().ok_or_else(|| std::io::Error::other("no directory"))?;
    let name = path.file_name().ok_or_else(|| std::io::Error::other("no file name"))?.to_string_lossy();
    let staged = dir.join(format!(".{name}.new"));
    let mut file = std::fs::File::create(&staged)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&staged, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_a_reopen_and_a_bad_one_stops_it() {
        let dir = tempfile::tempdir().unwrap();
        let records = FileRecords::open(dir.path()).unwrap();
        let mut app = AppRecord {
            id: "mar-local-1-a".into(),
            name: "a".into(),
            uid: 61000,
            size: 1,
            structure: BTreeMap::from([("web".into(), 1)]),
            env: BTreeMap::new(),
            domains: Vec::new(),
            releases: Vec::new(),
            created_ms: 1,
            cloud: default_cloud(),
            tags: Vec::new(),
            slugs: Vec::new(),
            ssl_certificate: None,
            stack: default_stack(),
        };
        records.put(&app).unwrap();
        app.env.insert("K".into(), "v".into());
        records.put(&app).unwrap();
        let reopened = FileRecords::open(dir.path()).unwrap();
        assert_eq!(reopened.all(), [app.clone()]);
        reopened.delete(&app.id).unwrap();
        assert!(FileRecords::open(dir.path()).unwrap().all().is_empty());
        std::fs::write(dir.path().join("x.json"), "{").unwrap();
        assert!(FileRecords::open(dir.path()).is_err());
    }
}
