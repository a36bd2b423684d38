//! Redis instances: an ACL user whose keys and channels all start with `<user>:`, with neither admin nor
//! dangerous commands (`FLUSHALL`, `KEYS`, `CONFIG`, `DEBUG`…) nor `SELECT`, so it stays in database 0 and
//! within its prefix. Deleting an instance removes its user and its keys.

use redis::aio::MultiplexedConnection;

use crate::DatabaseError;
use crate::records::ServiceRecord;

/// Keys unlinked per `SCAN` step when an instance goes.
const SCAN_COUNT: usize = 1000;

pub(crate) struct Provisioner {
    connection: MultiplexedConnection,
    host: String,
    port: u16,
}

impl Provisioner {
    /// Connects once and checks that this user may manage ACLs (the start-up fails otherwise).
    pub(crate) async fn connect(url: &str) -> anyhow::Result<Provisioner> {
        let parsed = url::Url::parse(url).map_err(|err| anyhow::anyhow!("--mdb-redis-url: {err}"))?;
        let host = parsed.host_str().unwrap_or("127.0.0.1").trim_matches(['[', ']']).to_owned();
        let port = parsed.port().unwrap_or(6379);
        // Instances live in database 0 (their users may not SELECT another), where deletes look for their keys.
        if !matches!(parsed.path(), "" | "/" | "/0") {
            anyhow::bail!("--mdb-redis-url names database 0 or none");
        }
        let client = redis::Client::open(url).map_err(|err| anyhow::anyhow!("--mdb-redis-url: {err}"))?;
        let mut connection = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|err| anyhow::anyhow!("reaching the MDB Redis server: {err}"))?;
        let _: Vec<String> = redis::cmd("ACL")
            .arg("USERS")
            .query_async(&mut connection)
            .await
            .map_err(|err| anyhow::anyhow!("the user of --mdb-redis-url may not manage ACLs: {err}"))?;
        Ok(Provisioner { connection, host, port })
    }

    pub(crate) async fn create(&self, service: &mut ServiceRecord) -> Result<(), DatabaseError> {
        let mut connection = self.connection.clone();
        let users: Vec<String> = redis::cmd("ACL").arg("USERS").query_async(&mut connection).await?;
        if users.contains(&service.username) {
            return Err(DatabaseError::Conflict(format!("the Redis server already has a user {}", service.username)));
        }
        service.host = self.host.clone();
        service.port = self.port;
        self.apply(service).await
    }

    /// Sets the user as the record says (on or off), and ends its connections when it is off. Also run at start:
    /// a Redis without an ACL file forgets its users when it restarts.
    pub(crate) async fn apply(&self, service: &ServiceRecord) -> Result<(), DatabaseError> {
        let mut connection = self.connection.clone();
        let prefix = service.database();
        let () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg(&service.username)
            .arg("reset")
            .arg(if service.running { "on" } else { "off" })
            .arg(format!(">{}", service.password))
            .arg(format!("~{prefix}*"))
            .arg(format!("&{prefix}*"))
            .arg("+@all")
            .arg("-@admin")
            .arg("-@dangerous")
            .arg("-select")
            .query_async(&mut connection)
            .await?;
        if !service.running {
            self.end_sessions(&service.username).await?;
        }
        self.save().await;
        Ok(())
    }

    async fn end_sessions(&self, user: &str) -> Result<(), DatabaseError> {
        let mut connection = self.connection.clone();
        let _: i64 = redis::cmd("CLIENT").arg("KILL").arg("USER").arg(user).query_async(&mut connection).await?;
        Ok(())
    }

    /// Writes the ACL file where the server has one; without one the start-up's `apply` restores users.
    async fn save(&self) {
        let mut connection = self.connection.clone();
        let saved: redis::RedisResult<()> = redis::cmd("ACL").arg("SAVE").query_async(&mut connection).await;
        if let Err(err) = saved {
            tracing::debug!(%err, "ACL SAVE (no ACL file on this Redis)");
        }
    }

    /// Removes the user (ending its connections) and every key under its prefix.
    pub(crate) async fn drop(&self, service: &ServiceRecord) -> Result<(), DatabaseError> {
        let mut connection = self.connection.clone();
        let users: Vec<String> = redis::cmd("ACL").arg("USERS").query_async(&mut connection).await?;
        if users.contains(&service.username) {
            // Off first, so that nothing logs in between the kill and the delete.
            let () =
                redis::cmd("ACL").arg("SETUSER").arg(&service.username).arg("off").query_async(&mut connection).await?;
            self.end_sessions(&service.username).await?;
            let _: i64 = redis::cmd("ACL").arg("DELUSER").arg(&service.username).query_async(&mut connection).await?;
            self.save().await;
        }
        let pattern = format!("{}*", service.database());
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .query_async(&mut connection)
                .await?;
            if !keys.is_empty() {
                let _: i64 = redis::cmd("UNLINK").arg(&keys).query_async(&mut connection).await?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}
