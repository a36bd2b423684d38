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
