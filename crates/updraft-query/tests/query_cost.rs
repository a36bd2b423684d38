//! A compiled filter costs work linear in the size of the document (finding 10 of the 2026-12 security review).
//!
//! VM steps alone do not show the cost of a JSON lookup, which runs inside one function call: looking up
//! `$.a[i].b` from the document root walks `i` array elements in C. So the work counted here is VM steps plus the
//! bytes of every whole document handed to a JSON function (the table is a view whose `doc` counts them).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::Connection;
use rusqlite::functions::FunctionFlags;
use serde_json::{Value, json};
use updraft_query::{
    Filter,
    sqlite::{self, Bind},
};

/// The work to count the documents matching `q`, and the count.
fn work(doc: &Value, q: &Value) -> (u64, i64) {
    let conn = Connection::open_in_memory().unwrap();
    let bytes = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&bytes);
    // Not deterministic, so that SQLite calls it for each use of `doc` rather than once.
    conn.create_scalar_function("counted", 1, FunctionFlags::SQLITE_UTF8, move |ctx| {
        let blob: Vec<u8> = ctx.get(0)?;
        counter.fetch_add(blob.len() as u64, Ordering::Relaxed);
        Ok(blob)
    })
    .unwrap();
    conn.execute_batch(
        "CREATE TABLE raw (id INTEGER PRIMARY KEY, doc BLOB NOT NULL);
         CREATE VIEW obj AS SELECT id, counted(doc) AS doc FROM raw;",
    )
    .unwrap();
    conn.execute("INSERT INTO raw (doc) VALUES (jsonb(?))", [doc.to_string()]).unwrap();
    let compiled = sqlite::compile(&Filter::parse(q).unwrap(), "doc");
    let sql = format!("SELECT count(*) FROM obj WHERE {}", compiled.where_clause);
    let binds = compiled.binds.into_iter().map(|bind| match bind {
        Bind::Int(n) => rusqlite::types::Value::Integer(n),
        Bind::Real(x) => rusqlite::types::Value::Real(x),
        Bind::Text(text) => rusqlite::types::Value::Text(text),
    });
    let mut statement = conn.prepare(&sql).unwrap();
    let n = statement.query_row(rusqlite::params_from_iter(binds), |row| row.get(0)).unwrap();
    let steps = statement.get_status(rusqlite::StatementStatus::VmStep) as u64;
    (steps + bytes.load(Ordering::Relaxed), n)
}

#[test]
fn finding_10_conditions_on_array_elements_cost_linear_work() {
    let queries = [
        json!({"a": {"$elemMatch": {"b": 1}}}),
        json!({"a": {"b": 1}}),
        json!({"a": {"$in": [{"b": 1}]}}),
        json!({"a": {"$elemMatch": {"b": {"$elemMatch": {"c": 1}}}}}),
        json!({"a": {"$elemMatch": {"$elemMatch": {"$eq": [1]}}}}),
        json!({"a": [[1, 2]]}),
        json!({"a": {"$elemMatch": {"b": {"$size": 2}, "c": {"$exists": true}}}}),
    ];
    let elements = [json!({}), json!({"b": [{}], "c": [0]}), json!([[0], 1])];
    for q in &queries {
        for element in &elements {
            let (small, hits) = work(&json!({"a": vec![element; 1000]}), q);
            let (large, _) = work(&json!({"a": vec![element; 4000]}), q);
            assert_eq!(hits, 0, "{q} on {element}");
            // Linear: 4 times the work. Quadratic: 16 times.
            assert!(large < 6 * small, "{q} on {element}: work {small} for 1000 elements, {large} for 4000");
        }
    }
}
