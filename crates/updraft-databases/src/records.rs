//! The instances this server made, kept in one JSON file written whole (`write_atomically`): they are few and
//! change on an API call, and a crash leaves the old file or the new one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use updraft_runtime::records::write_atomically;

use crate::Engine;

/// How many log lines an instance keeps.
const LOG_LINES: usize = 200;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServiceRecord {
    pub id: String,
    pub name: String,
    pub engine: Engine,
    /// 1, 2, 4 or 8 (× 256 MB in the original); here it scales the connection limit.
    pub size: u8,
    /// Stopped instances cannot log in.
    pub running: bool,
    /// The role (PostgreSQL) or ACL user (Redis); also the database name and the key prefix.
    pub username: String,
    pub password: String,
    /// Where apps reach the server.
    pub host: String,
    pub port: u16,
    pub created_ms: i64,
    /// Apps that have the URL, and the variable it is in.
    pub attached: BTreeMap<String, String>,
    pub log: Vec<LogLine>,
    /// The cloud (platform account) it belongs to.
    #[serde(default = "updraft_runtime::records::default_cloud")]
    pub cloud: String,
    /// Labels the platform API sets (`PUT /v1/instances/:id`).
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LogLine {
    /// RFC 3339, as apps' log lines.
    pub time: String,
    pub line: String,
}

impl ServiceRecord {
    /// The PostgreSQL database, or the Redis key prefix (`<username>:`).
    pub fn database(&self) -> String {
        match self.engine {
            Engine::Postgresql => self.username.clone(),
            Engine::Redis => format!("{}:", self.username),
        }
    }

    /// A URL with everything a client needs. The password is hex and the names `[a-z0-9_]`: nothing to escape.
    pub fn url(&self) -> String {
        let Self { username, password, host, port, .. } = self;
        let host = if host.contains(':') { format!("[{host}]") } else { host.clone() };
        match self.engine {
            Engine::Postgresql => format!("postgres://{username}:{password}@{host}:{port}/{username}"),
            Engine::Redis => format!("redis://{username}:{password}@{host}:{port}/0"),
        }
    }

    pub(crate) fn note(&mut self, line: &str) {
        let time = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339);
        self.log.push(LogLine { time: time.unwrap_or_default(), line: line.to_owned() });
        let over = self.log.len().saturating_sub(LOG_LINES);
        self.log.drain(..over);
    }
}

pub(crate) struct Records {
    path: PathBuf,
    services: Mutex<BTreeMap<String, ServiceRecord>>,
}

impl Records {
    /// Reads the file; a missing one is no instances, an unreadable one stops the start-up.
    pub(crate) fn open(path: PathBuf) -> anyhow::Result<Records> {
        let services = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<Vec<ServiceRecord>>(&bytes)
                .map_err(|err| anyhow::anyhow!("reading {}: {err}", path.display()))?
                .into_iter()
                .map(|s| (s.id.clone(), s))
                .collect(),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(err) => return Err(err.into()),
        };
        Ok(Records { path, services: Mutex::new(services) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ServiceRecord>> {
        self.services.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn all(&self) -> Vec<ServiceRecord> {
        self.lock().values().cloned().collect()
    }

    pub(crate) fn get(&self, id: &str) -> Option<ServiceRecord> {
        self.lock().get(id).cloned()
    }

    /// Writes the file with `service` in it before the change is visible.
    pub(crate) fn put(&self, service: &ServiceRecord) -> std::io::Result<()> {
        self.write(|services| {
            services.insert(service.id.clone(), service.clone());
        })
    }

    pub(crate) fn delete(&self, id: &str) -> std::io::Result<()> {
        self.write(|services| {
            services.remove(id);
        })
    }

    fn write(&self, change: impl FnOnce(&mut BTreeMap<String, ServiceRecord>)) -> std::io::Result<()> {
        let mut services = self.lock();
        let mut changed = services.clone();
        change(&mut changed);
        let bytes = serde_json::to_vec_pretty(&changed.values().collect::<Vec<_>>()).map_err(std::io::Error::other)?;
        write_atomically(&self.path, &bytes)?;
        *services = changed;
        Ok(())
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("services.json");
        let records = Records::open(path.clone()).unwrap();
        let mut service = ServiceRecord {
            id: "mdb-local-1-a".into(),
            name: "a".into(),
            engine: Engine::Redis,
            size: 1,
            running: true,
            username: "mdb_a".into(),
            password: "ab".into(),
            host: "127.0.0.1".into(),
            port: 6379,
            created_ms: 1,
            attached: BTreeMap::new(),
            log: Vec::new(),
            cloud: "default".into(),
            tags: Vec::new(),
        };
        for n in 0..LOG_LINES + 5 {
            service.note(&format!("line {n}"));
        }
        assert_eq!(service.log.len(), LOG_LINES);
        assert_eq!(service.log[0].line, "line 5");
        records.put(&service).unwrap();
        assert_eq!(Records::open(path.clone()).unwrap().all(), [service.clone()]);
        assert_eq!(service.url(), "redis://mdb_a:ab@127.0.0.1:6379/0");
        records.delete(&service.id).unwrap();
        assert!(Records::open(path.clone()).unwrap().all().is_empty());
        std::fs::write(&path, "[").unwrap();
        assert!(Records::open(path).is_err());
    }
}
