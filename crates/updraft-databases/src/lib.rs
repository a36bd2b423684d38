//! Managed databases, the MDB service (docs/databases.md): an instance is a PostgreSQL database with a role of
//! its own on the server `--mdb-postgres-url` names, or a Redis ACL user confined to a key prefix of its own on
//! `--mdb-redis-url`. Updraft runs no database servers itself: it provisions tenants on the ones operators run.
//!
//! Who may do what: only the account (through the API) creates, stops, starts, deletes and attaches instances. An
//! instance's credentials reach its owner through `/v1/services/:id` and an attached app through `DATABASE_URL` or
//! `REDIS_URL`. A role reaches only its own database (`CONNECT` is revoked from `PUBLIC`), a Redis user only its
//! own keys and channels, without admin or dangerous commands; a stopped instance's role cannot log in and its
//! sessions are ended.

mod postgres;
mod records;
mod redis;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use updraft_runtime::names;

pub use records::{LogLine, ServiceRecord};

/// The longest instance name: the id stays within a DNS label, and role names within PostgreSQL's 63 bytes.
const MAX_NAME: usize = 40;

#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Where the instances' records live.
    pub root: PathBuf,
    /// A PostgreSQL connection whose role may create roles and databases.
    pub postgres_url: Option<String>,
    /// A Redis connection whose user may manage ACLs.
    pub redis_url: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error("no such database instance")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    /// The database server refused or could not be reached.
    #[error("the database server: {0}")]
    Server(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl From<sqlx::Error> for DatabaseError {
    fn from(err: sqlx::Error) -> Self {
        DatabaseError::Server(err.to_string())
    }
}

impl From<::redis::RedisError> for DatabaseError {
    fn from(err: ::redis::RedisError) -> Self {
        DatabaseError::Server(err.to_string())
    }
}

/// What an instance is a tenant of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Postgresql,
    Redis,
}

impl Engine {
    /// The engine a `serviceImage` names: `qtcs/postgresql:9.3`, `postgresql`, `postgres`, `qtcs/redis:2.8`, `redis`.
    pub fn of_image(image: &str) -> Option<Engine> {
        let name = image.rsplit('/').next().unwrap_or(image);
        let name = name.split(':').next().unwrap_or(name);
        match name.to_ascii_lowercase().as_str() {
            "postgresql" | "postgres" => Some(Engine::Postgresql),
            "redis" => Some(Engine::Redis),
            _ => None,
        }
    }

    /// The image name the API shows.
    pub fn image(self) -> &'static str {
        match self {
            Engine::Postgresql => "qtcs/postgresql:15",
            Engine::Redis => "qtcs/redis:7",
        }
    }

    /// The variable an attached app finds the instance's URL in.
    pub fn url_variable(self) -> &'static str {
        match self {
            Engine::Postgresql => "DATABASE_URL",
            Engine::Redis => "REDIS_URL",
        }
    }
}

/// The instances of this server and the servers they live on.
pub struct Databases {
    records: records::Records,
    postgres: Option<postgres::Provisioner>,
    redis: Option<redis::Provisioner>,
    /// One change at a time: creates, deletes, starts and stops are rare, and each is a few statements.
    changes: tokio::sync::Mutex<()>,
}

impl Databases {
    /// Opens the records and reaches each configured server once, so that a wrong URL stops the start-up; Redis
    /// users are set again (a Redis without an ACL file forgets them when it restarts).
    pub async fn open(settings: Settings) -> anyhow::Result<Arc<Databases>> {
        std::fs::create_dir_all(&settings.root)?;
        let records = records::Records::open(settings.root.join("services.json"))?;
        let postgres = match &settings.postgres_url {
            Some(url) => Some(postgres::Provisioner::connect(url).await?),
            None => None,
        };
        let redis = match &settings.redis_url {
            Some(url) => Some(redis::Provisioner::connect(url).await?),
            None => None,
        };
        if let Some(redis) = &redis {
            for service in records.all().iter().filter(|s| s.engine == Engine::Redis) {
                redis.apply(service).await?;
            }
        }
        Ok(Arc::new(Databases { records, postgres, redis, changes: tokio::sync::Mutex::default() }))
    }

    /// The engines instances can be made on.
    pub fn offered(&self) -> Vec<Engine> {
        [(Engine::Postgresql, self.postgres.is_some()), (Engine::Redis, self.redis.is_some())]
            .into_iter()
            .filter_map(|(engine, on)| on.then_some(engine))
            .collect()
    }

    pub fn all(&self) -> Vec<ServiceRecord> {
        self.records.all()
    }

    pub fn get(&self, id: &str) -> Option<ServiceRecord> {
        self.records.get(id)
    }

    /// A new instance: its role and database, or its ACL user, made on the server before it is recorded.
    pub async fn create(&self, name: &str, image: &str, size: u8, cloud: &str) -> Result<ServiceRecord, DatabaseError> {
        if name.len() > MAX_NAME {
            return Err(DatabaseError::Invalid(format!("a database name has 1 to {MAX_NAME} characters")));
        }
        if let Some(why) = names::name_error(name) {
            return Err(DatabaseError::Invalid(why.replace("an app", "a database")));
        }
        let engine = Engine::of_image(image).ok_or_else(|| {
            DatabaseError::Invalid(format!("serviceImage {image:?}: this server offers postgresql and redis"))
        })?;
        if !(1..=8).contains(&size) {
            return Err(DatabaseError::Invalid("size is 1 to 8 (× 256 MB in the original)".into()));
        }
        let _change = self.changes.lock().await;
        let id = format!("mdb-{}-{name}", names::DATACENTER);
        if self.records.get(&id).is_some() {
            return Err(DatabaseError::Conflict(format!("a database named {name} exists")));
        }
        let mut service = ServiceRecord {
            id,
            name: name.to_owned(),
            engine,
            size,
            running: true,
            // Server-side names: `mdb_<name>`, hyphens made underscores so no identifier needs quoting rules.
            username: format!("mdb_{}", name.replace('-', "_")),
            password: hex::encode(rand::random::<[u8; 24]>()),
            host: String::new(),
            port: 0,
            created_ms: records::now_ms(),
            attached: BTreeMap::new(),
            log: Vec::new(),
            cloud: cloud.to_owned(),
            tags: Vec::new(),
        };
        match engine {
            Engine::Postgresql => self.postgres()?.create(&mut service).await?,
            Engine::Redis => self.redis()?.create(&mut service).await?,
        }
        service.note("created");
        if let Err(err) = self.records.put(&service) {
            // Not recorded, so not kept: the server side goes too.
            let _ = self.drop_on_server(&service).await;
            return Err(err.into());
        }
        Ok(service)
    }

    /// Ends the instance's sessions, then its database and role, or its keys and user; then its record.
    pub async fn delete(&self, id: &str) -> Result<ServiceRecord, DatabaseError> {
        let _change = self.changes.lock().await;
        let service = self.records.get(id).ok_or(DatabaseError::NotFound)?;
        self.drop_on_server(&service).await?;
        self.records.delete(id)?;
        Ok(service)
    }

    async fn drop_on_server(&self, service: &ServiceRecord) -> Result<(), DatabaseError> {
        match service.engine {
            Engine::Postgresql => self.postgres()?.drop(service).await,
            Engine::Redis => self.redis()?.drop(service).await,
        }
    }

    /// Stops (`running: false`: no log-ins, sessions ended) or starts an instance.
    pub async fn set_running(&self, id: &str, running: bool) -> Result<ServiceRecord, DatabaseError> {
        let _change = self.changes.lock().await;
        let mut service = self.records.get(id).ok_or(DatabaseError::NotFound)?;
        service.running = running;
        match service.engine {
            Engine::Postgresql => self.postgres()?.set_login(&service).await?,
            Engine::Redis => self.redis()?.apply(&service).await?,
        }
        service.note(if running { "started" } else { "stopped" });
        self.records.put(&service)?;
        Ok(service)
    }

    pub async fn set_tags(&self, id: &str, tags: Vec<String>) -> Result<ServiceRecord, DatabaseError> {
        let _change = self.changes.lock().await;
        let mut service = self.records.get(id).ok_or(DatabaseError::NotFound)?;
        service.tags = tags;
        self.records.put(&service)?;
        Ok(service)
    }

    /// Records that `app` has the instance's URL in `variable` (or forgets it, `None`); the caller sets the app's
    /// environment.
    pub async fn set_attached(
        &self,
        id: &str,
        app: &str,
        variable: Option<&str>,
    ) -> Result<ServiceRecord, DatabaseError> {
        let _change = self.changes.lock().await;
        let mut service = self.records.get(id).ok_or(DatabaseError::NotFound)?;
        match variable {
            Some(variable) => {
                service.attached.insert(app.to_owned(), variable.to_owned());
                service.note(&format!("attached to {app} as {variable}"));
            }
            None => {
                service.attached.remove(app);
                service.note(&format!("detached from {app}"));
            }
        }
        self.records.put(&service)?;
        Ok(service)
    }

    fn postgres(&self) -> Result<&postgres::Provisioner, DatabaseError> {
        self.postgres.as_ref().ok_or_else(|| DatabaseError::Invalid("this server has no --mdb-postgres-url".into()))
    }

    fn redis(&self) -> Result<&redis::Provisioner, DatabaseError> {
        self.redis.as_ref().ok_or_else(|| DatabaseError::Invalid("this server has no --mdb-redis-url".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_name_their_engine() {
        assert_eq!(Engine::of_image("qtcs/postgresql:9.3"), Some(Engine::Postgresql));
        assert_eq!(Engine::of_image("postgres"), Some(Engine::Postgresql));
        assert_eq!(Engine::of_image("qtcs/redis:2.8"), Some(Engine::Redis));
        assert_eq!(Engine::of_image("qtcs/mysql:5.6"), None);
        assert_eq!(Engine::of_image(""), None);
    }
}
