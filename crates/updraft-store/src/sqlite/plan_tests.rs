//! The plans of the query shapes users send: each walks an index (no full scan, no sort step for a sort on an
//! indexed or reserved property), for the secret, anonymous callers and users alike.

use serde_json::json;

use super::tests::indexed;
use super::*;
use crate::{Schemas, Subject};

const ALL: Access<'static> = Access::Everything;

const BENCH: Collection<'static> = Collection { backend: "5376019e698b3c6ad500095a", object_type: "objects.bench" };

/// `n` objects like the benchmark's, written straight into the table (the store's insert path is tested elsewhere;
/// the triggers keep `array_keys` as they do for it): `n` unique, `k = i % 1000`, `title = "item <i>"`, `owner` a
/// ref to one of 1000 users, `tags` an array (a common tag and a rare one), and a creator on every other one.
/// Every tenth is private to its creator.
async fn fill(store: &SqliteStore, n: u64) {
    let sql = format!(
        "WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < {n} - 1)
         INSERT INTO objects (backend, object_type, id, doc, created_ms, updated_ms, acl, public_read)
         SELECT ?, ?, printf('%024x', i), jsonb(json_object(
             'id', printf('%024x', i), 'objectType', ?, 'title', 'item ' || i, 'n', i, 'k', i % 1000,
             'owner', json_object('id', 'u' || (i % 1000), 'objectType', 'users'),
             'tags', json_array('t' || (i % 10), 'u' || (i % 5000)),
             'createdAt', strftime('%Y-%m-%dT%H:%M:%fZ', (1700000000000 + i) / 1000.0, 'unixepoch'),
             'updatedAt', strftime('%Y-%m-%dT%H:%M:%fZ', (1700000000000 + i) / 1000.0, 'unixepoch'),
             'creator', CASE WHEN i % 2 = 0 THEN json_object('id', 'u' || (i % 1000), 'objectType', 'users') END)),
             1700000000000 + i, 1700000000000 + i,
             CASE WHEN i % 10 = 0 THEN json_object('read', json_array('users.u' || (i % 1000)), 'update', json_array(),
                 'delete', json_array(), 'admin', json_array()) ELSE '{{\"read\":[\"*\"],\"update\":[],\"delete\":[],\"admin\":[]}}' END,
             i % 10 != 0
         FROM c"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(BENCH.backend)
        .bind(BENCH.object_type)
        .bind(BENCH.object_type)
        .execute(&store.writer)
        .await
        .unwrap();
    sqlx::query("UPDATE objects SET doc = jsonb_remove(doc, '$.creator') WHERE json_type(doc, '$.creator') IS 'null'")
        .execute(&store.writer)
        .await
        .unwrap();
}

async fn bench_store(dir: &tempfile::TempDir, n: u64) -> SqliteStore {
    let store = SqliteStore::open(&SqliteOptions { path: dir.path().join("eds.sqlite3"), readers: 2 }).await.unwrap();
    store
        .put_schema(BENCH.backend, BENCH.object_type, json!({}), &indexed(&["n", "k", "title", "owner", "tags"]))
        .await
        .unwrap();
    fill(&store, n).await;
    sqlx::query("PRAGMA analysis_limit = 1000; ANALYZE").execute(&store.writer).await.unwrap();
    split_tallies(&store);
    store
}

/// Splits the buckets of the key indexes, as the store does each second: `fill` writes around the group commit.
fn split_tallies(store: &SqliteStore) {
    let conn = super::group_commit::open_writer(store.writer.connect_options().get_filename()).unwrap();
    tallies::split_all(&conn).unwrap();
}

async fn plan(store: &SqliteStore, q: Value, sort: Value, offset: u32, count: bool, access: Access<'_>) -> String {
    let filter = updraft_query::Filter::parse(&q).unwrap();
    let sort = updraft_query::Sort::parse(&sort).unwrap();
    let query = ListQuery { filter: &filter, sort: &sort, page: crate::Page { limit: 20, offset } };
    store.explain(BENCH, query, count, access).await.unwrap().steps.join("\n")
}

/// (q, sort, offset, count) of each shape.
fn shapes() -> Vec<(&'static str, Value, Value, u32, bool)> {
    let asc = |key: &str| json!([{"sortBy": key, "direction": "asc"}]);
    let desc = |key: &str| json!([{"sortBy": key, "direction": "desc"}]);
    vec![
        ("selective equality", json!({"k": 5}), json!([]), 0, false),
        ("equality with no match", json!({"k": 123456}), json!([]), 0, false),
        ("range + sort on it", json!({"n": {"$gte": 500}}), asc("n"), 0, false),
        ("range + sort on another", json!({"n": {"$gte": 500, "$lt": 600}}), asc("k"), 0, false),
        ("wide range + sort on another", json!({"n": {"$gte": 500, "$lt": 15000}}), asc("k"), 0, false),
        ("wide range + sort by id", json!({"n": {"$gte": 500, "$lt": 15000}}), asc("id"), 0, false),
        ("$in of 10", json!({"k": {"$in": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}}), json!([]), 0, false),
        ("the Todo list", json!({"owner": {"id": "u5", "objectType": "users"}}), desc("createdAt"), 0, false),
        ("prefix regex", json!({"title": {"$regex": "^item 12"}}), json!([]), 0, false),
        ("count with a range", json!({"n": {"$gte": 500, "$lt": 1500}}), json!([]), 0, true),
        ("deep sort-only page", json!({}), asc("n"), 5000, false),
        ("my items, newest first", json!({"creator.id": "u4"}), desc("createdAt"), 0, false),
        ("recently updated", json!({"updatedAt": {"$gt": "2023-11-14T22:13:25.000Z"}}), desc("updatedAt"), 0, false),
        ("ids", json!({"id": {"$in": ["000000000000000000000001", "000000000000000000000002"]}}), json!([]), 0, false),
        ("$or of two indexes", json!({"$or": [{"title": "item 77"}, {"n": 5}]}), json!([]), 0, false),
        ("array contains", json!({"tags": "u123"}), json!([]), 0, false),
        ("set ref", json!({"owner": {"$ne": null}}), asc("owner"), 0, false),
        ("equality + sort on it", json!({"k": {"$in": [1, 2]}}), asc("k"), 0, false),
        ("sort by createdAt", json!({}), desc("createdAt"), 0, false),
    ]
}

/// The index each shape should walk; None for shapes no single index serves yet.
fn expected_index(name: &str) -> Option<&'static str> {
    Some(match name {
        "selective equality" | "equality with no match" | "$in of 10" | "equality + sort on it" => "objects.bench:k ",
        // More rows than a sort is worth: the sort's index, in order, checking the range on each row.
        "wide range + sort on another" => "objects.bench:k ",
        "wide range + sort by id" => "INDEX objects_by_id ",
        "range + sort on it" | "range + sort on another" | "count with a range" | "deep sort-only page" => {
            "objects.bench:n "
        }
        "the Todo list" | "set ref" => "objects.bench:owner ",
        "prefix regex" => "objects.bench:title ",
        "my items, newest first" => "INDEX objects_by_creator ",
        "recently updated" => "INDEX objects_by_update ",
        "ids" => "INDEX objects_by_id (backend=? AND object_type=? AND id=?)",
        "sort by createdAt" => "INDEX objects_by_creation ",
        // An index union: the ids of each branch (`array_keys_by_value` for elements), then the rows by id.
        "$or of two indexes" | "array contains" => "INDEX objects_by_id (backend=? AND object_type=? AND id=?)",
        _ => return None,
    })
}

#[tokio::test]
async fn every_indexed_shape_walks_its_index_without_sorting() {
    let dir = tempfile::tempdir().unwrap();
    let store = bench_store(&dir, 20_000).await;
    let user = [Subject::Everyone, Subject::user("u4"), Subject::group("g1")];
    for (name, q, sort, offset, count) in shapes() {
        let Some(index) = expected_index(name) else { continue };
        for access in [Access::Everything, Access::Subjects(&user[..1]), Access::Subjects(&user)] {
            let plan = plan(&store, q.clone(), sort.clone(), offset, count, access).await;
            if count {
                // A count of one range of a key index sums its tallies, and counts only the range's two ends.
                let summed =
                    format!("SUM key_tallies OF \"key:{}:{}\" INSIDE THE RANGE", BENCH.backend, index.trim_end());
                assert!(plan.starts_with(&summed), "{name} {access:?}:\n{plan}");
                continue;
            }
            // A deep page skips whole buckets by the tallies (when they are all public), then walks the index.
            let plan = match plan.split_once('\n') {
                Some((first, rest)) if first.starts_with("SKIP WHOLE BUCKETS BY key_tallies") => rest.to_owned(),
                _ => plan,
            };
            // A walk of the sort's index is a co-routine (`walk`, row ids) that the page scans in order, reading
            // the rows that pass the filter by row id.
            let walk = plan.starts_with("CO-ROUTINE walk\n");
            let first = plan.lines().find(|it| !it.starts_with("CO-ROUTINE")).unwrap_or_default().trim_start();
            assert!(first.starts_with("SEARCH objects USING") && first.contains(index), "{name} {access:?}:\n{plan}");
            let scans = plan.lines().filter(|it| it.trim_start().starts_with("SCAN objects")).count();
            assert!(scans == 0 && !plan.contains("SCAN array_keys"), "{name} {access:?}:\n{plan}");
            let by_row_id = plan.contains("SCAN walk\nSEARCH objects USING INTEGER PRIMARY KEY (rowid=?)");
            assert_eq!(walk, by_row_id, "{name} {access:?}:\n{plan}");
            // A walk of a key index checks the filter's indexed properties in the index (`MAX_COVERING`), reading
            // no row it rejects; the reserved properties' indexes are shared by all collections and hold none.
            let key_walk = walk && first.contains(":objects.bench:");
            assert!(!key_walk || first.contains("USING COVERING INDEX"), "{name} {access:?}:\n{plan}");
            // A sort on another property than the range's sorts the range (SQLite's choice, by its statistics); a
            // union is sorted.
            if !["range + sort on another", "$or of two indexes", "array contains"].contains(&name) {
                assert!(!plan.contains("TEMP B-TREE"), "{name} {access:?}:\n{plan}");
            }
        }
    }
}

/// SQLite VM steps of one read, as the store runs it (compiled in its snapshot).
fn vm_steps(
    store: &SqliteStore,
    q: &Value,
    sort: &Value,
    offset: u32,
    count: bool,
    access: Access<'_>,
) -> (i32, usize) {
    let filter = updraft_query::Filter::parse(q).unwrap();
    let sort = updraft_query::Sort::parse(sort).unwrap();
    let shape = if count { lists::Shape::Count } else { lists::Shape::Page(crate::Page { limit: 20, offset }) };
    let read = ListRead::new(BENCH, &filter, &sort, shape, access, store.hot.key_indexes()).unwrap();
    // Over every statement the read runs (a walk of the sort's index may be followed by the filter's rows).
    let steps = std::cell::Cell::new(0);
    let rows = store
        .hot
        .inline(|conn| {
            read.read(conn, |conn, sql, binds| {
                let mut statement = conn.prepare(sql)?;
                let mut rows = statement.query(rusqlite::params_from_iter(reads::values(binds)))?;
                let mut n = 0;
                while rows.next()?.is_some() {
                    n += 1;
                }
                drop(rows);
                steps.set(steps.get() + statement.get_status(rusqlite::StatementStatus::VmStep));
                Ok((n, n))
            })
        })
        .unwrap();
    (steps.get(), rows)
}

/// Each indexed shape reads about its own rows at a million objects: a bound on SQLite's VM steps (counted, not
/// timed) that a walk of the collection would exceed a thousandfold.
#[tokio::test]
async fn a_million_objects_answer_each_indexed_shape_within_a_step_bound() {
    let dir = tempfile::tempdir().unwrap();
    let store = bench_store(&dir, 1_000_000).await;
    let user = [Subject::Everyone, Subject::user("u4")];
    for (name, q, sort, offset, count) in shapes() {
        if expected_index(name).is_none() {
            continue;
        }
        for access in [Access::Everything, Access::Subjects(&user)] {
            let (steps, rows) = vm_steps(&store, &q, &sort, offset, count, access);
            // Measured: 20 to 13,000 steps, 65,000 for the page at offset 5,000 (which steps over its rows).
            // Walking the collection takes tens of millions.
            assert!(steps < 100_000, "{name} {access:?}: {steps} steps");
            let expected_rows = match name {
                "equality with no match" => 0,
                "count with a range" => 1,
                "ids" | "$or of two indexes" => 2,
                _ => 20,
            };
            assert_eq!(rows, expected_rows, "{name} {access:?}");
        }
    }
}

/// A filter no index serves scans the collection; one that runs over the read budget is refused with the
/// property to index, and an indexed one of the same collection still answers.
#[tokio::test]
async fn an_unindexed_filter_over_the_budget_names_the_property_to_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = bench_store(&dir, 50_000).await;
    store.hot.set_checks_inline(1);
    store.hot.set_max_read_time(std::time::Duration::from_millis(1));
    let list = |q: Value| {
        let store = &store;
        async move {
            let filter = updraft_query::Filter::parse(&q).unwrap();
            let sort = updraft_query::Sort { keys: Vec::new() };
            let query = ListQuery { filter: &filter, sort: &sort, page: crate::Page { limit: 20, offset: 0 } };
            store.list(BENCH, query, ALL).await
        }
    };
    match list(json!({"note": "x", "k": {"$exists": true}})).await {
        Err(StoreError::Invalid { message, property }) => {
            assert_eq!(property.as_deref(), Some("note"));
            assert!(message.starts_with("Query too expensive") && message.contains("`note`"), "{message}");
            assert!(message.contains("indexed") && message.contains("objects.bench"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    store.hot.set_max_read_time(std::time::Duration::from_secs(5));
    assert_eq!(list(json!({"k": 7})).await.unwrap().len(), 20);
}

/// The element table follows every change: filled when a property becomes indexed, kept by inserts, updates and
/// deletes, emptied when the property stops being indexed; and "an element matches" reads it.
#[tokio::test]
async fn array_elements_of_indexed_properties_are_kept_and_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&SqliteOptions { path: dir.path().join("eds.sqlite3"), readers: 2 }).await.unwrap();
    let template = Acl { read: vec![Subject::Everyone], ..Acl::default() };
    let insert = |tags: Value| {
        let (store, template) = (&store, template.clone());
        async move {
            let doc =
                store.insert(BENCH, json!({"tags": tags}).as_object().unwrap().clone(), Author::default(), template);
            ObjectId::parse(doc.await.unwrap()["id"].as_str().unwrap()).unwrap()
        }
    };
    let before = insert(json!(["red", "green"])).await;
    let elements = || async {
        let rows: Vec<(String, i64, String)> =
            sqlx::query_as("SELECT property, rank, value FROM array_keys ORDER BY property, rank, value")
                .fetch_all(&store.readers)
                .await
                .unwrap();
        rows
    };
    assert!(elements().await.is_empty(), "no index, no elements");
    store.put_schema(BENCH.backend, BENCH.object_type, json!({}), &indexed(&["tags"])).await.unwrap();
    assert_eq!(elements().await, [("tags".into(), 2, "green".into()), ("tags".into(), 2, "red".into())]);

    let after = insert(json!(["blue", {"id": "u1", "objectType": "users"}])).await;
    insert(json!("red")).await;
    let ids = |q: Value| {
        let store = &store;
        async move {
            let filter = updraft_query::Filter::parse(&q).unwrap();
            let sort = updraft_query::Sort::parse(&json!([{"sortBy": "createdAt"}])).unwrap();
            let query = ListQuery { filter: &filter, sort: &sort, page: crate::Page { limit: 20, offset: 0 } };
            let plan = store.explain(BENCH, query, false, ALL).await.unwrap().steps.join("\n");
            let docs = store.list(BENCH, query, ALL).await.unwrap();
            (docs.iter().map(|it| it["tags"].clone()).collect::<Vec<_>>(), plan)
        }
    };
    let (found, plan) = ids(json!({"tags": "red"})).await;
    assert_eq!(found, [json!(["red", "green"]), json!("red")]);
    assert!(plan.contains("array_keys_by_value"), "{plan}");
    assert_eq!(
        ids(json!({"tags": {"id": "u1", "objectType": "users"}})).await.0,
        [json!(["blue", {"id": "u1", "objectType": "users"}])]
    );
    assert_eq!(ids(json!({"tags": {"$gte": "gr", "$lt": "re"}})).await.0, [json!(["red", "green"])]);

    let patch = crate::Patch::Merge(json!({"tags": ["green", "gold"]}).as_object().unwrap().clone());
    store.update(BENCH, before, patch, Author::default(), ALL).await.unwrap().unwrap();
    assert_eq!(ids(json!({"tags": "red"})).await.0, [json!("red")]);
    assert_eq!(ids(json!({"tags": {"$regex": "^go"}})).await.0, [json!(["green", "gold"])]);
    store.delete(BENCH, after, Author::default(), ALL).await.unwrap().unwrap();
    assert_eq!(ids(json!({"tags": "blue"})).await.0, Vec::<Value>::new());
    assert_eq!(elements().await.len(), 2, "{:?}", elements().await);

    store.put_schema(BENCH.backend, BENCH.object_type, json!({}), &crate::SchemaRules::default()).await.unwrap();
    assert!(elements().await.is_empty());
    assert_eq!(ids(json!({"tags": "gold"})).await.0, [json!(["green", "gold"])]);
}

/// A wide range whose rows all sit at the far end of the sort's order (a date range sorted by `createdAt` is
/// the usual case) walks a bounded part of the sort's index, then reads the range's rows and sorts them, rather
/// than walking the collection.
#[tokio::test]
async fn a_walk_of_the_sorts_index_is_bounded_when_the_rows_sit_at_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let store = bench_store(&dir, 100_000).await;
    let q = json!({"n": {"$gte": 98_500}});
    let sort = json!([{"sortBy": "createdAt", "direction": "asc"}]);
    let user = [Subject::Everyone, Subject::user("u4")];
    for access in [ALL, Access::Subjects(&user)] {
        let plan = plan(&store, q.clone(), sort.clone(), 0, false, access).await;
        assert!(plan.contains("INDEX objects_by_creation"), "{access:?}:\n{plan}");
        let fallback = plan.split_once("THEN, NO PAGE WITHIN").unwrap_or_else(|| panic!("{access:?}:\n{plan}")).1;
        assert!(fallback.contains("objects.bench:n "), "{access:?}:\n{plan}");
        // Measured: 152,000 steps, about half the bounded walk, half the range's 1,500 rows and their sort. An
        // unbounded walk would read 98,500 entries before the range's first row.
        let (steps, rows) = vm_steps(&store, &q, &sort, 0, false, access);
        assert!(steps < 300_000, "{access:?}: {steps} steps");
        assert_eq!(rows, 20, "{access:?}");
    }
    let filter = updraft_query::Filter::parse(&q).unwrap();
    let sort = updraft_query::Sort::parse(&sort).unwrap();
    let page = |offset| crate::Page { limit: 20, offset };
    let ns = |docs: Vec<Value>| docs.iter().map(|it| it["n"].as_u64().unwrap()).collect::<Vec<_>>();
    let query = ListQuery { filter: &filter, sort: &sort, page: page(0) };
    assert_eq!(ns(store.list(BENCH, query, ALL).await.unwrap()), (98_500..98_520).collect::<Vec<_>>());
    // Every tenth object is readable by one user alone: u500 reads n = 98,500 and 99,500 among them.
    let mine = [Subject::Everyone, Subject::user("u500")];
    let expected: Vec<u64> = (98_500..).filter(|n| n % 10 != 0 || n % 1000 == 500).take(20).collect();
    assert_eq!(ns(store.list(BENCH, query, Access::Subjects(&mine)).await.unwrap()), expected);
    let query = ListQuery { filter: &filter, sort: &sort, page: page(1_490) };
    assert_eq!(ns(store.list(BENCH, query, ALL).await.unwrap()), (99_990..100_000).collect::<Vec<_>>());

    // A walk that finds its page answers the rows in the sort's order, at any offset, for any reader.
    let filter = updraft_query::Filter::parse(&json!({"n": {"$gte": 500, "$lt": 15_000}})).unwrap();
    let sort = updraft_query::Sort::parse(&json!([{"sortBy": "k", "direction": "asc"}])).unwrap();
    for (access, readable) in [(ALL, None), (Access::Subjects(&mine), Some(500))] {
        let mut expected: Vec<u64> =
            (500..15_000).filter(|n| n % 10 != 0 || readable.is_none_or(|it| n % 1000 == it)).collect();
        expected.sort_by_key(|n| (n % 1000, *n));
        for offset in [0, 7, 30] {
            let query = ListQuery { filter: &filter, sort: &sort, page: page(offset) };
            let plan = store.explain(BENCH, query, false, access).await.unwrap().steps.join("\n");
            assert!(plan.starts_with("CO-ROUTINE walk") && !plan.contains("THEN"), "{access:?}:\n{plan}");
            let offset = offset as usize;
            assert_eq!(
                ns(store.list(BENCH, query, access).await.unwrap()),
                expected[offset..offset + 20],
                "{access:?}"
            );
        }
    }
}

/// Which properties have a key index is remembered per schema version (`key_indexes.rs`): a property that stops
/// or starts being indexed is planned as the schema now says at the next read, on every reader connection, and
/// a walk of a sort's index never names an index that is gone.
#[tokio::test]
async fn a_property_indexed_or_no_longer_indexed_is_planned_as_the_schema_now_says() {
    let dir = tempfile::tempdir().unwrap();
    let store = bench_store(&dir, 5_000).await;
    let sorted_by_k = || async {
        let filter = updraft_query::Filter::parse(&json!({"n": {"$gte": 100}})).unwrap();
        let sort = updraft_query::Sort::parse(&json!([{"sortBy": "k", "direction": "asc"}])).unwrap();
        let query = ListQuery { filter: &filter, sort: &sort, page: crate::Page { limit: 20, offset: 0 } };
        let page = store.list(BENCH, query, ALL).await.unwrap();
        page.iter().map(|doc| doc["k"].as_i64().unwrap()).collect::<Vec<_>>()
    };
    // k = i % 1000 over 5,000 objects, n = i >= 100: four rows of each k.
    let expected: Vec<i64> = (0..20).map(|i| i / 4).collect();
    let k_index = "USING COVERING INDEX key:5376019e698b3c6ad500095a:objects.bench:k";
    for _ in 0..2 {
        assert!(plan(&store, json!({"k": 7}), json!([]), 0, true, ALL).await.contains(k_index));
        assert!(
            plan(&store, json!({"n": {"$gte": 100}}), json!([{"sortBy": "k"}]), 0, false, ALL)
                .await
                .contains("key:5376019e698b3c6ad500095a:objects.bench:k")
        );
        assert_eq!(sorted_by_k().await, expected);

        store.put_schema(BENCH.backend, BENCH.object_type, json!({}), &indexed(&["n", "title"])).await.unwrap();
        for _ in 0..3 {
            // Several reads, so that each reader connection has read the new schema.
            let counted = plan(&store, json!({"k": 7}), json!([]), 0, true, ALL).await;
            assert!(!counted.contains(":objects.bench:k"), "{counted}");
            assert_eq!(sorted_by_k().await, expected);
        }
        let all = indexed(&["n", "k", "title", "owner", "tags"]);
        store.put_schema(BENCH.backend, BENCH.object_type, json!({}), &all).await.unwrap();
    }
}

/// The DDL of the key index of `property` in the bench collection.
async fn key_index_ddl(store: &SqliteStore, property: &str) -> Option<String> {
    let name = format!("key:{}:{}:{property}", BENCH.backend, BENCH.object_type);
    sqlx::query_scalar("SELECT sql FROM sqlite_schema WHERE name = ?")
        .bind(name)
        .fetch_optional(&store.writer)
        .await
        .unwrap()
}

/// Each key index holds the key terms of the collection's other indexed properties, as the schema says now: a
/// property indexed or no longer indexed rebuilds the others, a database whose key indexes predate this gets them
/// rebuilt at its next start, and a collection with more than `MAX_COVERING` indexed properties covers none.
#[tokio::test]
async fn key_indexes_cover_the_other_indexed_properties_as_the_schema_says() {
    let dir = tempfile::tempdir().unwrap();
    let store = bench_store(&dir, 2_000).await;
    let n_index = key_index_ddl(&store, "n").await.unwrap();
    assert!(["'$.k'", "'$.title'", "'$.owner.id'", "'$.tags'"].iter().all(|it| n_index.contains(it)), "{n_index}");

    store.put_schema(BENCH.backend, BENCH.object_type, json!({}), &indexed(&["n", "title"])).await.unwrap();
    let n_index = key_index_ddl(&store, "n").await.unwrap();
    assert!(n_index.contains("'$.title'") && !n_index.contains("'$.k'"), "{n_index}");
    assert!(key_index_ddl(&store, "k").await.is_none());

    // An index as an earlier release made it, without the other properties' terms.
    let old_columns = format!(
        "backend, object_type, {}, created_ms, id, public_read",
        updraft_query::sqlite::key_index_terms("n", "doc")
    );
    let name = format!("\"key:{}:{}:n\"", BENCH.backend, BENCH.object_type);
    let rebuild = format!(
        "DROP INDEX {name}; CREATE INDEX {name} ON objects ({old_columns}) WHERE object_type = '{}'",
        BENCH.object_type
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(rebuild)).execute(&store.writer).await.unwrap();
    store.close().await;
    let store = SqliteStore::open(&SqliteOptions { path: dir.path().join("eds.sqlite3"), readers: 2 }).await.unwrap();
    let n_index = key_index_ddl(&store, "n").await.unwrap();
    assert!(n_index.contains("'$.title'"), "{n_index}");
    let range =
        plan(&store, json!({"n": {"$gte": 100, "$lt": 1900}}), json!([{"sortBy": "title"}]), 0, false, ALL).await;
    assert!(range.starts_with("CO-ROUTINE walk\n") && range.contains("USING COVERING INDEX"), "{range}");

    let many: Vec<String> = (0..9).map(|i| format!("p{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).chain(["n"]).collect();
    store.put_schema(BENCH.backend, BENCH.object_type, json!({}), &indexed(&many)).await.unwrap();
    let n_index = key_index_ddl(&store, "n").await.unwrap();
    assert!(!n_index.contains("'$.p0'"), "{n_index}");
    assert!(!key_index_ddl(&store, "p0").await.unwrap().contains("'$.n'"));
}
