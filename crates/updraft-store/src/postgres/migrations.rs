//! The steps that bring a PostgreSQL database's schema up to date, in order (`migrations-postgres/`).
//!
//! Each step runs once, recorded in `updraft_migrations`; steps are only ever appended, and a released step never
//! changes. Nodes starting together take turns on an advisory lock, so that exactly one runs each step.

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::StoreError;

pub(crate) const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations-postgres/0001_initial.sql"),
    include_str!("../../migrations-postgres/0002_search.sql"),
    include_str!("../../migrations-postgres/0003_webhook_claims.sql"),
    include_str!("../../migrations-postgres/0004_search_terms.sql"),
    include_str!("../../migrations-postgres/0005_catalog_notify.sql"),
    include_str!("../../migrations-postgres/0006_standing_notify.sql"),
    include_str!("../../migrations-postgres/0007_webhook_outbox_per_statement.sql"),
    include_str!("../../migrations-postgres/0008_gateways.sql"),
];

/// The advisory lock key of migrations.
const MIGRATION_LOCK: i64 = 0x7570_6d69_6772_6174;

/// Runs the steps this database has not run yet; answers how many ran.
pub(crate) async fn migrate(pool: &PgPool) -> Result<usize, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(MIGRATION_LOCK).execute(&mut *tx).await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS updraft_migrations (version INTEGER PRIMARY KEY, applied_ms BIGINT NOT NULL)",
    )
    .execute(&mut *tx)
    .await?;
    let (done,): (i64,) =
        sqlx::query_as("SELECT coalesce(max(version), 0)::bigint FROM updraft_migrations").fetch_one(&mut *tx).await?;
    if done as usize > MIGRATIONS.len() {
        return Err(StoreError::Database(format!(
            "the database is at schema version {done}, newer than this Updraft knows ({}): run a newer release",
            MIGRATIONS.len()
        )));
    }
    let mut ran = 0;
    for (step, sql) in MIGRATIONS.iter().enumerate().skip(done.max(0) as usize) {
        // A step is several statements (its functions and triggers with it): the simple query protocol runs them.
        sqlx::raw_sql(sqlx::AssertSqlSafe(*sql)).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO updraft_migrations (version, applied_ms) VALUES ($1, $2)")
            .bind(step as i32 + 1)
            .bind(super::now_ms())
            .execute(&mut *tx)
            .await?;
        ran += 1;
    }
    tx.commit().await?;
    Ok(ran)
}

/// Connects to `url` and runs the migrations it lacks (`updraft migrate`); answers how many ran.
pub async fn migrate_url(url: &str) -> Result<usize, StoreError> {
    let connect: PgConnectOptions =
        url.parse().map_err(|err| StoreError::Database(format!("invalid database URL: {err}")))?;
    let pool = PgPoolOptions::new().max_connections(1).connect_with(connect).await?;
    let ran = migrate(&pool).await;
    pool.close().await;
    ran
}
