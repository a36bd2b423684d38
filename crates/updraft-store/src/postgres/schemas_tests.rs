//! Schema changes on PostgreSQL build their indexes concurrently: writers of the collection go on meanwhile, the
//! index counts once built, and a build a dead node left half done is dropped by the next node that opens.

use std::time::Duration;

use serde_json::{Map, json};
use sqlx::Connection;

use super::super::test_database::TestDatabase;
use crate::{Acl, Author, Cascade, Collection, SchemaRules, Schemas, Store};

const BACKEND: &str = "5376019e698b3c6ad500095b";
const NOTES: Collection<'static> = Collection { backend: BACKEND, object_type: "objects.notes" };

fn indexed(property: &str) -> SchemaRules {
    SchemaRules { indexed: vec![property.into()], ..SchemaRules::default() }
}

async fn key_indexes(database: &TestDatabase) -> Vec<String> {
    let mut conn = sqlx::PgConnection::connect(&database.url()).await.unwrap();
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT property FROM property_indexes ORDER BY property").fetch_all(&mut conn).await.unwrap();
    rows.into_iter().map(|(p,)| p).collect()
}

#[tokio::test]
async fn writers_go_on_while_a_new_index_is_built() {
    let database = TestDatabase::create().await;
    let (store, other_node) = (database.open().await, database.open().await);
    let doc = |n: i64| json!({ "n": n }).as_object().unwrap().clone();
    store.insert(NOTES, doc(1), Author::default(), Acl::default()).await.unwrap();
    // A write in flight on another connection: the build waits for it to end.
    let mut writer = sqlx::PgConnection::connect(&database.url()).await.unwrap();
    let mut in_flight = writer.begin().await.unwrap();
    sqlx::query("UPDATE objects SET updated_ms = updated_ms").execute(&mut *in_flight).await.unwrap();

    let schema = json!({"name": "notes", "properties": [{"name": "n", "type": "number", "indexed": true}]});
    let building = tokio::spawn(async move {
        other_node.put_schema(BACKEND, "objects.notes", schema, &indexed("n")).await.map(|()| other_node)
    });
    let mut watcher = sqlx::PgConnection::connect(&database.url()).await.unwrap();
    for _ in 0..500 {
        let (builds,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM pg_stat_progress_create_index").fetch_one(&mut watcher).await.unwrap();
        if builds > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // With a plain CREATE INDEX this write would queue behind the build's lock, itself behind the open write.
    let written =
        tokio::time::timeout(Duration::from_secs(3), store.insert(NOTES, doc(2), Author::default(), Acl::default()));
    written.await.expect("a new write is not held by the build").unwrap();
    assert!(!building.is_finished(), "the build waits for the write in flight");
    assert_eq!(key_indexes(&database).await, Vec::<String>::new(), "not counted before it is built");

    in_flight.commit().await.unwrap();
    let other_node = building.await.unwrap().unwrap();
    assert_eq!(key_indexes(&database).await, ["n"]);
    other_node.close().await;
    store.close().await;
}

#[tokio::test]
async fn a_cascade_keeps_its_index_while_it_stays() {
    let database = TestDatabase::create().await;
    let store = database.open().await;
    let cascade = |target: &str| SchemaRules {
        cascades: vec![Cascade { property: "owner".into(), target_type: target.into() }],
        ..SchemaRules::default()
    };
    let names = async || {
        let mut conn = sqlx::PgConnection::connect(&database.url()).await.unwrap();
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT target_type, index_name FROM ref_cascades").fetch_all(&mut conn).await.unwrap();
        rows
    };
    store.put_schema(BACKEND, "objects.notes", json!({"name": "notes"}), &cascade("users")).await.unwrap();
    let first = names().await;
    assert_eq!(first.len(), 1);
    store.put_schema(BACKEND, "objects.notes", json!({"name": "notes"}), &cascade("objects.people")).await.unwrap();
    let second = names().await;
    assert_eq!((second[0].0.as_str(), &second[0].1), ("objects.people", &first[0].1), "the same index");
    store.put_schema(BACKEND, "objects.notes", json!({"name": "notes"}), &SchemaRules::default()).await.unwrap();
    assert!(names().await.is_empty());
    let mut conn = sqlx::PgConnection::connect(&database.url()).await.unwrap();
    let (left,): (i64,) = sqlx::query_as("SELECT count(*) FROM pg_class WHERE relname = $1")
        .bind(&first[0].1)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, 0, "its index went with it");
    store.close().await;
}

#[tokio::test]
async fn a_build_a_dead_node_left_is_dropped_by_the_next_to_open() {
    let database = TestDatabase::create().await;
    let store = database.open().await;
    for _ in 0..2 {
        store.insert(NOTES, Map::new(), Author::default(), Acl::default()).await.unwrap();
    }
    // A concurrent build that fails (two rows share the key) leaves an invalid index, as a node killed mid-build does.
    let mut conn = sqlx::PgConnection::connect(&database.url()).await.unwrap();
    let failed = sqlx::query("CREATE UNIQUE INDEX CONCURRENTLY updraft_key_abandoned ON objects (backend)")
        .execute(&mut conn)
        .await;
    assert!(failed.is_err());
    let count = async |conn: &mut sqlx::PgConnection| {
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM pg_class WHERE relname = 'updraft_key_abandoned'")
            .fetch_one(conn)
            .await
            .unwrap();
        n
    };
    assert_eq!(count(&mut conn).await, 1);
    let next = database.open().await;
    assert_eq!(count(&mut conn).await, 0);
    next.close().await;
    store.close().await;
}
