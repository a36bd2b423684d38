//! The floor for durable inserts: what this disk allows when a program does nothing but the SQLite work of the
//! server's group commit, back to back. Each commit inserts K small objects and records their K changes (the webhook
//! trigger runs for each) with the prepared statements of `sqlite/group_commit.rs`, then COMMITs with
//! `synchronous = FULL` (one WAL fsync). No HTTP, no channel, no async runtime, no thread hand-off in the loop.
//!
//! The database is made by `SqliteStore::open` (the same migrations: tables, indexes, trigger) and the benchmark
//! collection's schema by `put_schema` with `n` indexed, as the EDS benches declare it (`BENCH_SCHEMA` in
//! `bench/lib.sh`), so that every index a server insert maintains is maintained here too. The statements are those
//! of `sqlite/group_commit.rs`.
//!
//! Usage: `insert_floor [--seconds S] [--dir DIR] [K ...]` (K defaults to 1 8 32 64 128 256). Each K gets a fresh
//! database under DIR (default: a temp dir under /tmp, the file system of the server's --data-dir) and runs for S
//! seconds (default 3). Prints one row per K: commits, inserts/s, commit latency (mean, p50, p99, max) and the CPU
//! time per insert.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, TransactionBehavior, params};
use serde_json::json;
use updraft_core::ids::ObjectId;
use updraft_store::insert_statements::{INSERT_CHANGE, INSERT_OBJECT};
use updraft_store::{SchemaRules, Schemas, SqliteOptions, SqliteStore};

/// A backend id of the length the server makes, and the collection `bench/eds/insert.lua` posts to.
const BACKEND: &str = "0123456789abcdef01234567";
const OBJECT_TYPE: &str = "objects.bench";
/// The ACL an insert into an open development backend gets.
const ACL: &str = r#"{"read":["*"],"update":["*"],"delete":["*"],"admin":["*"]}"#;

struct Options {
    seconds: f64,
    dir: Option<PathBuf>,
    batches: Vec<usize>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = parse_args()?;
    let scratch = match &options.dir {
        Some(dir) => tempfile::Builder::new().prefix("insert-floor-").tempdir_in(dir)?,
        None => tempfile::Builder::new().prefix("insert-floor-").tempdir_in("/tmp")?,
    };
    println!("# dir {}  seconds {}  synchronous=FULL, WAL", scratch.path().display(), options.seconds);
    println!(
        "{:>6} {:>8} {:>10} {:>9} {:>9} {:>9} {:>9} {:>11}",
        "batch", "commits", "inserts/s", "mean_ms", "p50_ms", "p99_ms", "max_ms", "cpu_us/ins"
    );
    for &batch in &options.batches {
        let path = scratch.path().join(format!("floor-{batch}.db"));
        prepare(&path)?;
        let mut conn = connect(&path)?;
        let cpu_before = cpu_time();
        let mut latencies = run(&mut conn, batch, Duration::from_secs_f64(options.seconds))?;
        let cpu = cpu_time().zip(cpu_before).map(|(after, before)| after - before);
        let elapsed: Duration = latencies.iter().sum();
        latencies.sort();
        let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{:>6} {:>8} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>11}",
            batch,
            latencies.len(),
            (latencies.len() * batch) as f64 / elapsed.as_secs_f64(),
            ms(elapsed) / latencies.len() as f64,
            ms(at(0.5)),
            ms(at(0.99)),
            ms(*latencies.last().unwrap()),
            cpu.map_or("-".to_owned(), |cpu| format!(
                "{:.1}",
                cpu.as_secs_f64() * 1e6 / (latencies.len() * batch) as f64
            ))
        );
    }
    Ok(())
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options { seconds: 3.0, dir: None, batches: Vec::new() };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                options.seconds = args.next().and_then(|s| s.parse().ok()).ok_or("--seconds takes a number")?;
            }
            "--dir" => options.dir = Some(args.next().ok_or("--dir takes a path")?.into()),
            k => options.batches.push(k.parse().ok().filter(|&k| k > 0).ok_or(format!("not a batch size: {k}"))?),
        }
    }
    if options.batches.is_empty() {
        options.batches = vec![1, 8, 32, 64, 128, 256];
    }
    Ok(options)
}

/// The server's schema, through the server's own code.
fn prepare(path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let store = SqliteStore::open(&SqliteOptions { path: path.to_owned(), readers: 1 }).await?;
        let schema = json!({"name": "bench", "properties": [
            {"name": "title", "type": "string"},
            {"name": "done", "type": "boolean"},
            {"name": "n", "type": "number", "indexed": true}
        ]});
        let rules = SchemaRules { indexed: vec!["n".into()], ..SchemaRules::default() };
        store.put_schema(BACKEND, OBJECT_TYPE, schema, &rules).await?;
        store.close().await;
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}

/// The writer connection's settings (`SqliteStore::open`).
fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

/// The CPU time this thread has had (user and system), from Linux's schedstat: to set the server's CPU per insert
/// beside the floor's, a figure that a busy machine disturbs less than a rate.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok().map(Duration::from_nanos)
}

/// One insert as the server's committer gets it: a new object's id and JSON text.
struct Row {
    id: String,
    doc: String,
}

/// Commits batches of `batch` inserts back to back for `duration`; answers each commit's latency.
fn run(conn: &mut Connection, batch: usize, duration: Duration) -> rusqlite::Result<Vec<Duration>> {
    let mut latencies = Vec::new();
    let start = Instant::now();
    while start.elapsed() < duration {
        let began = Instant::now();
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as i64;
        let rows: Vec<Row> = (0..batch).map(|_| row()).collect();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut objects = tx.prepare_cached(INSERT_OBJECT)?;
        for row in &rows {
            objects.execute(params![
                BACKEND,
                OBJECT_TYPE,
                row.id,
                row.doc,
                now_ms,
                ACL,
                true,
                None::<&str>,
                None::<&str>
            ])?;
        }
        drop(objects);
        let mut changes = tx.prepare_cached(INSERT_CHANGE)?;
        for row in &rows {
            changes.insert(params![
                BACKEND,
                OBJECT_TYPE,
                row.id,
                row.doc,
                now_ms,
                ACL,
                None::<&str>,
                None::<&str>,
                None::<&str>,
                None::<&str>
            ])?;
        }
        drop(changes);
        tx.commit()?;
        latencies.push(began.elapsed());
    }
    Ok(latencies)
}

/// A small object with its reserved properties, as `bench/eds/insert.lua` makes them.
fn row() -> Row {
    let id = ObjectId::generate().to_string();
    let doc = json!({"title": "benchmark", "done": false, "n": 42, "id": id, "objectType": OBJECT_TYPE,
                     "createdAt": "2025-01-01T00:00:00.000Z", "updatedAt": "2025-01-01T00:00:00.000Z"});
    Row { id, doc: doc.to_string() }
}
