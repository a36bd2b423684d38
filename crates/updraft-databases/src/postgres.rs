//! PostgreSQL instances: a role that can log in and owns one database nobody else may connect to.
//!
//! Names are `mdb_<name>` with `[a-z0-9_]` only and passwords are hex, so the statements (DDL takes no bind
//! parameters) are built from nothing a caller could break out of.

use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::DatabaseError;
use crate::records::ServiceRecord;

/// Connections each size unit allows the instance's role.
const CONNECTIONS_PER_SIZE: u32 = 10;

pub(crate) struct Provisioner {
    pool: PgPool,
    host: String,
    port: u16,
}

impl Provisioner {
    /// Connects once (the start-up fails on a wrong URL or a role that may not create roles and databases).
    pub(crate) async fn connect(url: &str) -> anyhow::Result<Provisioner> {
        let parsed = url::Url::parse(url).map_err(|err| anyhow::anyhow!("--mdb-postgres-url: {err}"))?;
        let host = parsed.host_str().unwrap_or("127.0.0.1").trim_matches(['[', ']']).to_owned();
        let port = parsed.port().unwrap_or(5432);
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect(url)
            .await
            .map_err(|err| anyhow::anyhow!("reaching the MDB PostgreSQL server: {err}"))?;
        let (create_role, create_db): (bool, bool) = sqlx::query_as(
            "SELECT rolcreaterole OR rolsuper, rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user",
        )
        .fetch_one(&pool)
        .await?;
        if !(create_role && create_db) {
            anyhow::bail!("the role of --mdb-postgres-url may not create roles and databases (CREATEROLE, CREATEDB)");
        }
        Ok(Provisioner { pool, host, port })
    }

    /// Runs a statement built from checked names (see the module's comment): they are `[a-z0-9_]`, the
    /// passwords hex.
    async fn ddl(&self, statement: String) -> Result<(), sqlx::Error> {
        if !statement.bytes().all(|b| b.is_ascii_alphanumeric() || b" _\"'()".contains(&b)) {
            return Err(sqlx::Error::Protocol(format!("refused to run {statement:?}")));
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement)).execute(&self.pool).await.map(drop)
    }

    pub(crate) async fn create(&self, service: &mut ServiceRecord) -> Result<(), DatabaseError> {
        let role = &service.username;
        let taken: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM pg_roles WHERE rolname = $1 UNION ALL SELECT 1 FROM pg_database WHERE datname = $1",
        )
        .bind(role)
        .fetch_optional(&self.pool)
        .await?;
        if taken.is_some() {
            return Err(DatabaseError::Conflict(format!(
                "the PostgreSQL server already has a role or database {role}"
            )));
        }
        let limit = CONNECTIONS_PER_SIZE * u32::from(service.size);
        let password = &service.password;
        self.ddl(format!(r#"CREATE ROLE "{role}" LOGIN PASSWORD '{password}' CONNECTION LIMIT {limit}"#)).await?;
        // CREATE DATABASE cannot run in a transaction: on a failure the role made above is dropped again.
        let made = async {
            self.ddl(format!(r#"CREATE DATABASE "{role}" OWNER "{role}""#)).await?;
            self.ddl(format!(r#"REVOKE ALL ON DATABASE "{role}" FROM PUBLIC"#)).await
        }
        .await;
        if let Err(err) = made {
            let _ = self.drop(service).await;
            return Err(err.into());
        }
        service.host = self.host.clone();
        service.port = self.port;
        Ok(())
    }

    /// Lets the role log in, or not; a stop also ends its sessions.
    pub(crate) async fn set_login(&self, service: &ServiceRecord) -> Result<(), DatabaseError> {
        let role = &service.username;
        let login = if service.running { "LOGIN" } else { "NOLOGIN" };
        self.ddl(format!(r#"ALTER ROLE "{role}" {login}"#)).await?;
        if !service.running {
            self.end_sessions(role).await?;
        }
        Ok(())
    }

    async fn end_sessions(&self, role: &str) -> Result<(), DatabaseError> {
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1")
            .bind(role)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Drops the database (ending its sessions) and the role; what is already gone is not an error.
    pub(crate) async fn drop(&self, service: &ServiceRecord) -> Result<(), DatabaseError> {
        let role = &service.username;
        let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_roles WHERE rolname = $1")
            .bind(role)
            .fetch_optional(&self.pool)
            .await?;
        if exists.is_some() {
            self.ddl(format!(r#"ALTER ROLE "{role}" NOLOGIN"#)).await?;
            self.end_sessions(role).await?;
        }
        self.ddl(format!(r#"DROP DATABASE IF EXISTS "{role}" WITH (FORCE)"#)).await?;
        self.ddl(format!(r#"DROP ROLE IF EXISTS "{role}""#)).await?;
        Ok(())
    }
}
