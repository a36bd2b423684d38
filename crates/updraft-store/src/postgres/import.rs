//! Copies a node's SQLite database into an empty PostgreSQL database (`updraft migrate --from-sqlite`), so that
//! a one-node deployment becomes the first of several without losing data.
//!
//! Everything is copied in one PostgreSQL transaction: a failure leaves the database as empty as it was. The
//! SQLite file is only read. The indexes of `indexed` properties and of cascading refs are made anew (PostgreSQL
//! names its own), the search index is rebuilt from the copied objects, and the change log and outbox keep their
//! numbers, so that a socket or stream resuming after the move finds its place.

use rusqlite::{Connection, OpenFlags, Row};
use serde_json::Value;

use super::{now_ms, schemas};
use crate::StoreError;

/// How many rows of each table were copied, by table name.
pub type Copied = Vec<(&'static str, u64)>;

fn sqlite_error(err: rusqlite::Error) -> StoreError {
    StoreError::Database(format!("reading the SQLite database: {err}"))
}

/// Reads every row of `sql` from SQLite, each through `row`.
fn read<T>(conn: &Connection, sql: &str, row: impl Fn(&Row<'_>) -> rusqlite::Result<T>) -> Result<Vec<T>, StoreError> {
    let mut statement = conn.prepare(sql).map_err(sqlite_error)?;
    let rows = statement.query_map([], |it| row(it)).map_err(sqlite_error)?;
    rows.collect::<rusqlite::Result<Vec<T>>>().map_err(sqlite_error)
}

/// A copy of one table: the SQLite SELECT, the PostgreSQL INSERT of the same columns, and how each column
/// crosses over (text as text, integers as BIGINT, JSON text as JSONB, 0/1 as BOOLEAN).
struct Table {
    name: &'static str,
    select: &'static str,
    insert: &'static str,
    columns: &'static [Column],
}

#[derive(Clone, Copy)]
enum Column {
    Text,
    OptionalText,
    Int,
    OptionalInt,
    Json,
    OptionalJson,
    Bool,
}

const TABLES: &[Table] = &[
    Table {
        name: "apps",
        select: "SELECT id, name, created_ms FROM apps",
        insert: "INSERT INTO apps (id, name, created_ms) VALUES ($1, $2, $3)",
        columns: &[Column::Text, Column::Text, Column::Int],
    },
    Table {
        name: "backends",
        select: "SELECT id, app_id, environment, master_key, api_key, secret, access_defaults FROM backends",
        insert: "INSERT INTO backends (id, app_id, environment, master_key, api_key, secret, access_defaults)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
        columns: &[Column::Text; 7],
    },
    Table {
        name: "tokens",
        select: "SELECT hash, subject, expires_ms FROM tokens",
        insert: "INSERT INTO tokens (hash, subject, expires_ms) VALUES ($1, $2, $3)",
        columns: &[Column::Text, Column::Text, Column::Int],
    },
    Table {
        name: "objects",
        select: "SELECT backend, object_type, id, json(doc), created_ms, updated_ms, acl, public_read, parent_type,
                        parent_id FROM objects ORDER BY rowid",
        insert: "INSERT INTO objects (backend, object_type, id, doc, created_ms, updated_ms, acl, public_read,
                                      parent_type, parent_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        columns: &[
            Column::Text,
            Column::Text,
            Column::Text,
            Column::Json,
            Column::Int,
            Column::Int,
            Column::Json,
            Column::Bool,
            Column::OptionalText,
            Column::OptionalText,
        ],
    },
    Table {
        name: "passwords",
        select: "SELECT backend, user_id, hash FROM passwords",
        insert: "INSERT INTO passwords (backend, user_id, hash) VALUES ($1, $2, $3)",
        columns: &[Column::Text; 3],
    },
    Table {
        name: "members",
        select: "SELECT backend, group_id, user_id, added_ms FROM members",
        insert: "INSERT INTO members (backend, group_id, user_id, added_ms) VALUES ($1, $2, $3, $4)",
        columns: &[Column::Text, Column::Text, Column::Text, Column::Int],
    },
    Table {
        name: "member_acls",
        select: "SELECT backend, group_id, acl FROM member_acls",
        insert: "INSERT INTO member_acls (backend, group_id, acl) VALUES ($1, $2, $3)",
        columns: &[Column::Text, Column::Text, Column::Json],
    },
    Table {
        name: "object_types",
        select: "SELECT backend, name, schema FROM object_types",
        insert: "INSERT INTO object_types (backend, name, schema) VALUES ($1, $2, $3)",
        columns: &[Column::Text, Column::Text, Column::Json],
    },
    Table {
        name: "changes",
        select: "SELECT seq, backend, object_type, object_id, event, doc, acl, parent_acl, user_id, created_ms,
                        request_id FROM changes ORDER BY seq",
        insert: "INSERT INTO changes (seq, backend, object_type, object_id, event, doc, acl, parent_acl, user_id,
                                      created_ms, request_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        columns: &[
            Column::Int,
            Column::Text,
            Column::Text,
            Column::Text,
            Column::Text,
            Column::Text,
            Column::Json,
            Column::OptionalJson,
            Column::OptionalText,
            Column::Int,
            Column::OptionalText,
        ],
    },
    Table {
        name: "webhooks",
        select: "SELECT id, backend, url, object_types, events, headers, secret, created_ms, updated_ms FROM webhooks",
        insert: "INSERT INTO webhooks (id, backend, url, object_types, events, headers, secret, created_ms, updated_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        columns: &[
            Column::Text,
            Column::Text,
            Column::Text,
            Column::Json,
            Column::Json,
            Column::Json,
            Column::Text,
            Column::Int,
            Column::Int,
        ],
    },
    Table {
        name: "webhook_deliveries",
        select: "SELECT id, webhook_id, seq, object_id, status, attempts, next_ms, created_ms, finished_ms,
                        last_status, last_error FROM webhook_deliveries ORDER BY id",
        insert: "INSERT INTO webhook_deliveries (id, webhook_id, seq, object_id, status, attempts, next_ms, created_ms,
                                                 finished_ms, last_status, last_error)
                 VALUES ($1, $2, $3, $4, $5, $6::integer, $7, $8, $9, $10::integer, $11)",
        columns: &[
            Column::Int,
            Column::Text,
            Column::Int,
            Column::Text,
            Column::Text,
            Column::Int,
            Column::Int,
            Column::Int,
            Column::OptionalInt,
            Column::OptionalInt,
            Column::OptionalText,
        ],
    },
    Table {
        name: "files",
        select: "SELECT backend, id, owner_type, owner_id, property, file_name, content_type, size, received, status,
                        sha256, variants, created_ms, updated_ms FROM files",
        insert: "INSERT INTO files (backend, id, owner_type, owner_id, property, file_name, content_type, size,
                                    received, status, sha256, variants, created_ms, updated_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        columns: &[
            Column::Text,
            Column::Text,
            Column::Text,
            Column::Text,
            Column::Text,
            Column::Text,
            Column::OptionalText,
            Column::OptionalInt,
            Column::Int,
            Column::Text,
            Column::OptionalText,
            Column::OptionalJson,
            Column::Int,
            Column::Int,
        ],
    },
    Table {
        name: "gateways",
        select: "SELECT id, security_token, configuration, created_ms, updated_ms FROM gateways",
        insert: "INSERT INTO gateways (id, security_token, configuration, created_ms, updated_ms)
                 VALUES ($1, $2, $3, $4, $5)",
        columns: &[Column::Text, Column::OptionalText, Column::Json, Column::Int, Column::Int],
    },
    Table {
        name: "file_trash",
        select: "SELECT backend, id FROM file_trash",
        insert: "INSERT INTO file_trash (backend, id) VALUES ($1, $2)",
        columns: &[Column::Text; 2],
    },
];

/// One value read from SQLite, ready to bind.
enum Cell {
    Text(Option<String>),
    Int(Option<i64>),
    Json(Option<Value>),
    Bool(bool),
}

fn cells(row: &Row<'_>, columns: &[Column]) -> rusqlite::Result<Vec<Cell>> {
    // A malformed JSON value stops the copy: nothing is copied half.
    let json_of = |i: usize, text: Option<String>| {
        text.map(|text| serde_json::from_str::<Value>(&text))
            .transpose()
            .map_err(|err| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(err)))
    };
    columns
        .iter()
        .enumerate()
        .map(|(i, column)| {
            Ok(match column {
                Column::Text | Column::OptionalText => Cell::Text(row.get(i)?),
                Column::Int | Column::OptionalInt => Cell::Int(row.get(i)?),
                Column::Json | Column::OptionalJson => Cell::Json(json_of(i, row.get(i)?)?),
                Column::Bool => Cell::Bool(row.get::<_, i64>(i)? != 0),
            })
        })
        .collect()
}

async fn copy_table(conn: &Connection, tx: &mut sqlx::PgConnection, table: &Table) -> Result<u64, StoreError> {
    let rows = read(conn, table.select, |row| cells(row, table.columns))?;
    for row in &rows {
        let mut query = sqlx::query(table.insert);
        for cell in row {
            query = match cell {
                Cell::Text(it) => query.bind(it),
                Cell::Int(it) => query.bind(it),
                Cell::Json(it) => query.bind(it),
                Cell::Bool(it) => query.bind(it),
            };
        }
        query.execute(&mut *tx).await?;
    }
    Ok(rows.len() as u64)
}

/// Copies the SQLite database at `sqlite` into the PostgreSQL database at `url` (made or upgraded first), which
/// must hold no app yet. Answers the rows copied per table.
pub async fn import_sqlite(sqlite: &std::path::Path, url: &str) -> Result<Copied, StoreError> {
    let conn = Connection::open_with_flags(sqlite, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sqlite_error)?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0)).map_err(sqlite_error)?;
    if version as usize != crate::sqlite::MIGRATIONS.len() {
        return Err(StoreError::Database(format!(
            "the SQLite database is at schema version {version}, not {}: start this release on it once, then copy it",
            crate::sqlite::MIGRATIONS.len()
        )));
    }
    super::migrate_url(url).await?;
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(url).await?;
    let mut tx = pool.begin().await?;
    let (apps,): (i64,) = sqlx::query_as("SELECT count(*) FROM apps").fetch_one(&mut *tx).await?;
    if apps > 0 {
        return Err(StoreError::Invalid {
            message: "the PostgreSQL database already holds apps: copy into an empty one".into(),
            property: None,
        });
    }
    let mut copied = Vec::new();
    for table in TABLES {
        copied.push((table.name, copy_table(&conn, &mut tx, table).await?));
    }
    // Numbers go on from where SQLite left them.
    for (table, column) in [("changes", "seq"), ("webhook_deliveries", "id")] {
        let sql = format!(
            "SELECT setval(pg_get_serial_sequence('{table}', '{column}'), \
             greatest((SELECT coalesce(max({column}), 0) FROM {table}), 1), \
             (SELECT count(*) > 0 FROM {table}))"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut *tx).await?;
    }
    copied.push(("indexes", rebuild_indexes(&conn, &mut tx).await?));
    tx.commit().await?;
    pool.close().await;
    tracing::info!(at_ms = now_ms(), ?copied, "copied the SQLite database into PostgreSQL");
    Ok(copied)
}

/// Makes the key indexes, cascade indexes and search index the SQLite database had; answers how many.
async fn rebuild_indexes(conn: &Connection, tx: &mut sqlx::PgConnection) -> Result<u64, StoreError> {
    let triple = |row: &Row<'_>| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, String>(2)?));
    let keys = read(conn, "SELECT backend, object_type, property FROM property_indexes", triple)?;
    for (backend, object_type, property) in &keys {
        schemas::create_key_index(tx, backend, object_type, property).await?;
    }
    let cascades = read(conn, "SELECT backend, object_type, property, target_type FROM ref_cascades", |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get(2)?, row.get(3)?))
    })?;
    for (backend, object_type, property, target_type) in &cascades {
        let cascade = crate::Cascade { property: String::clone(property), target_type: String::clone(target_type) };
        schemas::create_cascade(tx, backend, object_type, &cascade).await?;
    }
    let searched = read(
        conn,
        "SELECT backend, object_type, property FROM property_indexes WHERE search_slot IS NOT NULL
         ORDER BY backend, object_type, search_slot",
        triple,
    )?;
    let mut collections: Vec<(String, String, Vec<String>)> = Vec::new();
    for (backend, object_type, property) in searched {
        match collections.last_mut() {
            Some((b, t, properties)) if *b == backend && *t == object_type => properties.push(property),
            _ => collections.push((backend, object_type, vec![property])),
        }
    }
    for (backend, object_type, properties) in &collections {
        super::search::reindex(tx, backend, object_type, properties).await?;
    }
    Ok((keys.len() + cascades.len() + collections.len()) as u64)
}
