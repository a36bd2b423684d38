//! Keeps the planner's statistics of the store's busy tables current, whatever the server's autovacuum does.
//!
//! Without statistics PostgreSQL guesses the size of a collection, and may read an object by id through another
//! index of its collection (every one starts with backend and object type) instead of the primary key: a point
//! read over 9,000 objects went from 8,100 to 1,900 per second that way. Autovacuum analyzes a table after enough
//! changes, but it may be off (it is on the test machine), and it runs at most once a minute. So the store analyzes
//! each table that changed by a tenth since its last analysis (at least 200 rows), every few seconds; `ANALYZE`
//! reads a fixed-size sample, a few milliseconds.

use std::time::Duration;

use sqlx::postgres::PgPool;

/// The tables that grow with use; the fixed names below are the only ones spliced into `ANALYZE`.
const TABLES: [&str; 5] = ["objects", "changes", "webhook_deliveries", "search_texts", "files"];

pub(crate) async fn keep_statistics(pool: PgPool) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !pool.is_closed() {
        tick.tick().await;
        let stale: Result<Vec<(String,)>, sqlx::Error> = sqlx::query_as(
            "SELECT relname::text FROM pg_stat_user_tables
             WHERE relname = ANY($1) AND n_mod_since_analyze > greatest(200, n_live_tup / 10)",
        )
        .bind(&TABLES[..])
        .fetch_all(&pool)
        .await;
        for (table,) in stale.unwrap_or_default() {
            let Some(table) = TABLES.iter().find(|it| **it == table) else { continue };
            if let Err(err) = sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE {table}"))).execute(&pool).await {
                tracing::debug!(%err, table, "analyzing a table failed");
            }
        }
    }
}
