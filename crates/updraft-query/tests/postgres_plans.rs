//! PostgreSQL must serve conditions and sorts on an indexed property from its key index on its own (no
//! `enable_seqscan = off`): the per-collection index of `postgres::key_index_terms`, created as its doc comment
//! tells the store to, on 20 000 rows of one collection next to another collection's rows.

mod pg;

use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, postgres::PgConnection};
use updraft_query::{
    Filter, Sort,
    postgres::{self, Bind, Indexed, Layout},
};

const ROWS: i64 = 20_000;
const INDEXED: &[&str] = &["n", "s", "owner"];

fn format_ms(ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    updraft_core::timestamp::format(at)
}

async fn fill(conn: &mut PgConnection) {
    // The collection under test, and as many rows of another one, which its partial indexes leave out.
    for (object_type, rows) in [("things", ROWS), ("others", ROWS)] {
        sqlx::query(
            "INSERT INTO objects (backend, object_type, id, doc, created_ms, updated_ms, acl, n) \
             SELECT 'b', $1, 'o' || i, jsonb_build_object('n', i, 's', 'str' || lpad(i::text, 5, '0'), \
                 'owner', jsonb_build_object('id', 'u' || (i % 1000), 'objectType', 'users')), i, i, '{}', i \
             FROM generate_series(0, $2 - 1) AS i",
        )
        .bind(object_type)
        .bind(rows)
        .execute(&mut *conn)
        .await
        .unwrap();
    }
    for property in INDEXED {
        let ddl = format!(
            "CREATE INDEX key_things_{property} ON objects ({}, created_ms, id) \
             WHERE backend = 'b' AND object_type = 'things'",
            postgres::key_index_terms(property, "doc")
        );
        sqlx::query(AssertSqlSafe(ddl)).execute(&mut *conn).await.unwrap();
    }
    sqlx::query("ANALYZE objects").execute(&mut *conn).await.unwrap();
}

/// The plan of a page of the rows matching `q`, sorted by `sort`, as the store would ask for it.
async fn plan(conn: &mut PgConnection, q: &Value, sort: &Value) -> Value {
    let indexed: Vec<Indexed> =
        INDEXED.iter().map(|property| Indexed { property: property.to_string(), arrays: false }).collect();
    let layout = Layout { doc: "doc", reserved: Some(format_ms), indexed: &indexed };
    let filter = Filter::parse(q).unwrap();
    let compiled = postgres::compile_in(&filter, &layout, 3).unwrap();
    let order = postgres::order_by_in(&Sort::parse(sort).unwrap(), &filter, &layout, &["created_ms", "id"]);
    let text = format!(
        "EXPLAIN (FORMAT JSON) SELECT doc FROM objects WHERE backend = $1 AND object_type = $2 AND {} \
         ORDER BY {order} LIMIT 50",
        compiled.where_clause
    );
    let mut query = sqlx::query_scalar(AssertSqlSafe(text)).bind("b").bind("things");
    for bind in compiled.binds {
        query = match bind {
            Bind::Int(it) => query.bind(it),
            Bind::Real(it) => query.bind(it),
            Bind::Text(it) => query.bind(it),
        };
    }
    let plan: Value = query.fetch_one(conn).await.unwrap();
    plan[0]["Plan"].clone()
}

/// Every node of `plan`, as (node type, index name).
fn nodes(plan: &Value, out: &mut Vec<(String, String)>) {
    let field = |key: &str| plan[key].as_str().unwrap_or_default().to_owned();
    out.push((field("Node Type"), field("Index Name")));
    for child in plan["Plans"].as_array().into_iter().flatten() {
        nodes(child, out);
    }
}

#[test]
fn key_indexes_serve_conditions_and_sorts() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let db = runtime.block_on(pg::TestDb::create());
    runtime.block_on(async {
        let mut conn = db.connect().await;
        fill(&mut conn).await;
        let cases = [
            ("n", json!({"n": 12345}), json!([]), false),
            ("n", json!({"n": {"$gte": 100, "$lt": 150}}), json!([]), false),
            ("n", json!({"n": {"$gt": 10.5, "$lte": 40}}), json!([]), false),
            ("n", json!({"n": {"$in": [5, 17, 999]}}), json!([]), false),
            ("n", json!({"n": 9_007_199_254_740_993_i64}), json!([]), false),
            ("s", json!({"s": "str00042"}), json!([]), false),
            ("s", json!({"s": {"$regex": "^str0012"}}), json!([]), false),
            ("s", json!({"s": {"$regex": "^str001.7$"}}), json!([]), false),
            ("s", json!({"s": {"$in": ["str00001", "str19999"]}}), json!([]), false),
            ("owner", json!({"owner": {"id": "u7", "objectType": "users"}}), json!([]), false),
            // A range and a sort on the property: the index yields the page in order, no sort step.
            ("n", json!({"n": {"$gte": 19000}}), json!([{"sortBy": "n", "direction": "desc"}]), true),
            ("n", json!({"n": {"$lt": 500}}), json!([{"sortBy": "n"}]), true),
            ("s", json!({"s": {"$gt": "str1"}}), json!([{"sortBy": "s"}]), true),
            // A sort alone walks the index.
            ("s", json!({}), json!([{"sortBy": "s", "direction": "desc"}]), true),
        ];
        for (property, q, sort, ordered) in cases {
            let plan = plan(&mut conn, &q, &sort).await;
            let mut all = Vec::new();
            nodes(&plan, &mut all);
            let index = format!("key_things_{property}");
            let scans = ["Index Scan", "Index Only Scan", "Bitmap Index Scan"];
            assert!(all.iter().any(|(node, name)| scans.contains(&node.as_str()) && *name == index), "{q}: {plan:#}");
            assert!(!all.iter().any(|(node, _)| node == "Seq Scan"), "{q}: {plan:#}");
            if ordered {
                assert!(!all.iter().any(|(node, _)| node.contains("Sort")), "{q}, {sort}: {plan:#}");
            }
        }
    });
    drop(db);
}
