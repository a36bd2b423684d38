//! The EDS store this node runs on: SQLite in the data directory (one node), or PostgreSQL shared by a cluster
//! (`--database-url`). The engine is chosen here and nowhere else; every service gets the traits it uses.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use updraft_store::{Database, PostgresOptions, PostgresStore, SqliteOptions, SqliteStore};

use crate::config::Settings;

/// Opened from a worker, so that the threads it starts share the HTTP runtime's priority (see `runtimes`).
pub(crate) async fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn Database>> {
    let store: Arc<dyn Database> = match &settings.database_url {
        Some(url) => {
            let options = PostgresOptions {
                url: url.clone(),
                max_connections: settings.database_connections,
                webhook_lease: updraft_realtime::webhooks::claim_lease(settings.webhooks.timeout),
            };
            let store = tokio::spawn(async move { PostgresStore::open(&options).await })
                .await
                .context("opening the EDS database (PostgreSQL)")?
                .context("opening the EDS database (PostgreSQL)")?;
            Arc::new(store)
        }
        None => {
            let options = SqliteOptions { path: settings.data_dir.join("eds.sqlite3"), readers: 4 };
            let store = tokio::spawn(async move { SqliteStore::open(&options).await })
                .await
                .context("opening the EDS database")?
                .context("opening the EDS database")?;
            Arc::new(store)
        }
    };
    updraft_api::eds::warn_open_backends(store.as_ref()).await.context("listing backends")?;
    Ok(store)
}

/// `updraft migrate`: brings the PostgreSQL database up to date and, with `--from-sqlite`, copies a SQLite
/// database into it. Answers what it did, for the operator.
pub async fn migrate(args: &crate::config::MigrateArgs) -> anyhow::Result<String> {
    let url = crate::config::database_url(&args.database_url)?;
    let Some(sqlite) = &args.from_sqlite else {
        let ran = updraft_store::migrate_postgres(&url).await.context("migrating the database")?;
        return Ok(format!("the database is up to date ({ran} migration steps ran)"));
    };
    let copied = updraft_store::import_sqlite(sqlite, &url)
        .await
        .with_context(|| format!("copying {} into the database", sqlite.display()))?;
    let rows: Vec<String> = copied.iter().map(|(table, n)| format!("{table}: {n}")).collect();
    Ok(format!("copied {} into the database ({})", sqlite.display(), rows.join(", ")))
}

/// How long the change log keeps what no webhook still owes (the MWS and stream resume from memory).
const CHANGE_RETENTION: Duration = Duration::from_secs(24 * 3600);
const DELIVERY_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Forgets changes and finished deliveries past their retention, every ten minutes.
pub(crate) async fn prune_logs(store: std::sync::Weak<dyn Database>) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tick.tick().await;
        let Some(store) = store.upgrade() else { return };
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let before_ms = now.saturating_sub(CHANGE_RETENTION).as_millis() as i64;
        if let Err(err) = store.prune_changes(before_ms).await {
            tracing::warn!(%err, "pruning the change log failed");
        }
        let before_ms = now.saturating_sub(DELIVERY_RETENTION).as_millis() as i64;
        if let Err(err) = store.prune_deliveries(before_ms).await {
            tracing::warn!(%err, "pruning webhook deliveries failed");
        }
    }
}
