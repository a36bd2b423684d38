//! The tallies of key indexes against counting every row: random writes through the store (inserts, updates,
//! ACL changes, deletes), splits between them, and counts of random ranges for the secret, anonymous callers and a
//! user with private objects of her own.

use serde_json::json;

use super::*;
use crate::{AclChange, Author, Patch, Schemas, Subject};

const ALL: Access<'static> = Access::Everything;

fn props(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

const ITEMS: Collection<'static> = Collection { backend: "5376019e698b3c6ad500095a", object_type: "objects.items" };

/// xorshift64*: reproducible draws without a dependency.
struct Draw(u64);

impl Draw {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }

    /// A value of `n`: mostly numbers (few distinct ones, so that equal values share buckets), some strings,
    /// booleans, nulls, refs, or nothing.
    fn value(&mut self) -> Option<Value> {
        Some(match self.below(20) {
            0 => return None,
            1 => Value::Null,
            2 => json!(self.below(2) == 0),
            3 => json!({"id": format!("u{}", self.below(5)), "objectType": "users"}),
            4..=6 => json!(format!("s{:02}", self.below(40))),
            7 => json!(self.below(600) as f64 / 2.0),
            _ => json!(self.below(300)),
        })
    }

    fn bound(&mut self) -> Value {
        if self.below(4) == 0 { json!(format!("s{:02}", self.below(45))) } else { json!(self.below(320) as i64 - 10) }
    }

    /// A filter that is one range of `n`'s key index.
    fn range(&mut self) -> Value {
        let ops = ["$gt", "$gte", "$lt", "$lte"];
        match self.below(5) {
            0 => json!({"n": self.bound()}),
            1 => json!({"n": self.below(2) == 0}),
            2 => json!({"n": {ops[self.below(4) as usize]: self.bound()}}),
            _ => {
                let (lo, hi) = (self.bound(), self.bound());
                json!({"n": {ops[self.below(2) as usize]: lo, ops[2 + self.below(2) as usize]: hi}})
            }
        }
    }

    fn acl(&mut self) -> Acl {
        let read = match self.below(6) {
            0 => vec![Subject::user("alice")],
            1 => vec![Subject::user("bob")],
            _ => vec![Subject::Everyone],
        };
        Acl { read, update: vec![Subject::Everyone], delete: vec![Subject::Everyone], admin: Vec::new() }
    }
}

fn rules() -> crate::SchemaRules {
    crate::SchemaRules { indexed: vec!["n".into(), "tags".into()], cascades: Vec::new(), searched: Vec::new() }
}

/// Splits every bucket that is due, as the store's background task does.
fn split_all(path: &std::path::Path) {
    tallies::split_all(&super::group_commit::open_writer(path).unwrap()).unwrap();
}

/// The count from the tallies (None when they cannot answer), and the count of every row, for one reader.
async fn both_counts(store: &SqliteStore, q: &Value, access: Access<'_>) -> (Option<i64>, u64) {
    let filter = updraft_query::Filter::parse(q).unwrap();
    let read = ListRead::new(ITEMS, &filter, &updraft_query::Sort { keys: Vec::new() }, lists::Shape::Count, access, {
        store.hot.key_indexes()
    })
    .unwrap();
    let tallied = store.hot.inline(|conn| read.tallied_count(conn)).unwrap();
    // `$and` of the one filter is the same filter, which the tallies do not take: every row is counted.
    let counted =
        store.count(ITEMS, &updraft_query::Filter::parse(&json!({"$and": [q]})).unwrap(), access).await.unwrap();
    (tallied, counted)
}

/// One random write: an insert (most often), an update of `n`, an ACL change or a delete.
async fn write_one(store: &SqliteStore, draw: &mut Draw, ids: &mut Vec<ObjectId>) {
    match draw.below(10) {
        0..=5 => ids.push(insert(store, draw).await),
        6 | 7 => {
            let id = ids[draw.below(ids.len() as u64) as usize];
            let patch = Patch::Merge(props(json!({"n": draw.value().unwrap_or(Value::Null)})));
            store.update(ITEMS, id, patch, Author::default(), ALL).await.unwrap();
        }
        8 => {
            let id = ids[draw.below(ids.len() as u64) as usize];
            store.change_acl(ITEMS, id, AclChange::Replace(draw.acl()), ALL).await.unwrap();
        }
        _ => {
            let id = ids.swap_remove(draw.below(ids.len() as u64) as usize);
            store.delete(ITEMS, id, Author::default(), ALL).await.unwrap();
        }
    }
}

async fn insert(store: &SqliteStore, draw: &mut Draw) -> ObjectId {
    let mut doc = json!({"tags": ["a", "b"]});
    if let Some(value) = draw.value() {
        doc["n"] = value;
    }
    let acl = draw.acl();
    let created = store.insert(ITEMS, props(doc), Author::default(), acl).await.unwrap();
    ObjectId::parse(created["id"].as_str().unwrap()).unwrap()
}

/// Every key index's tallies hold every row of the collection, and its public ones.
async fn check_totals(store: &SqliteStore, round: usize) {
    let count = async |sql: &'static str| -> i64 {
        let (n,): (i64,) = sqlx::query_as(sql).bind(ITEMS.object_type).fetch_one(&store.writer).await.unwrap();
        n
    };
    let whole = count("SELECT count(*) FROM objects WHERE object_type = ?").await;
    let publicly = count("SELECT count(*) FROM objects WHERE object_type = ? AND public_read = 1").await;
    for property in ["n", "tags"] {
        let (all, public): (i64, i64) =
            sqlx::query_as("SELECT sum(n_all), sum(n_public) FROM key_tallies WHERE property = ?")
                .bind(property)
                .fetch_one(&store.writer)
                .await
                .unwrap();
        assert_eq!((all, public), (whole, publicly), "round {round}: the tallies of {property} hold every row");
    }
}

#[tokio::test]
async fn tallied_counts_equal_counted_ones_through_writes_and_splits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("eds.sqlite3");
    let store = SqliteStore::open(&SqliteOptions { path: path.clone(), readers: 2 }).await.unwrap();
    let mut draw = Draw(0x9e37_79b9_7f4a_7c15);
    let mut ids = Vec::new();
    // Objects before the index, which its first cut counts, then the schema.
    for _ in 0..150 {
        ids.push(insert(&store, &mut draw).await);
    }
    store.put_schema(ITEMS.backend, ITEMS.object_type, json!({}), &rules()).await.unwrap();
    let (anyone, alice) = ([Subject::Everyone], [Subject::Everyone, Subject::user("alice")]);
    let readers = [Access::Everything, Access::Subjects(&anyone), Access::Subjects(&alice)];
    let mut answered = [0; 3];
    for round in 0..8 {
        for _ in 0..250 {
            write_one(&store, &mut draw, &mut ids).await;
        }
        // Half the rounds count before splitting: buckets that are due hold more than their share.
        if round % 2 == 0 {
            split_all(&path);
        }
        for _ in 0..60 {
            let q = draw.range();
            for (reader, access) in readers.into_iter().enumerate() {
                let (tallied, counted) = both_counts(&store, &q, access).await;
                if let Some(tallied) = tallied {
                    answered[reader] += 1;
                    assert_eq!(tallied as u64, counted, "round {round}, {q}, {access:?}");
                }
            }
        }
        check_totals(&store, round).await;
        // The whole collection, from the tallies of its first key index.
        let every = json!({"$or": [{"n": {"$exists": true}}, {"n": {"$exists": false}}]});
        for access in readers {
            let (tallied, _) = both_counts(&store, &json!({}), access).await;
            let (_, counted) = both_counts(&store, &every, access).await;
            assert_eq!(tallied.map(|it| it as u64), Some(counted), "round {round}, the whole collection, {access:?}");
        }
    }
    // Of 480 ranges, some empty and many within one bucket, which the tallies leave to counting.
    assert!(answered.iter().all(|it| *it > 150), "the tallies answered {answered:?} counts of each reader");
    let buckets = async |condition: &str| -> i64 {
        let sql = format!("SELECT count(*) FROM key_tallies WHERE n_all > {} AND {condition}", tallies::SPLIT_ABOVE);
        let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_one(&store.writer).await.unwrap();
        n
    };
    let oversized = buckets("settled = 0").await;
    split_all(&path);
    let after = buckets("n_all > 2 * settled").await;
    assert_eq!(after, 0, "every bucket split or settled ({oversized} were due before the last split)");
}

#[tokio::test]
async fn dropping_an_index_forgets_its_tallies_and_indexing_again_counts_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&SqliteOptions { path: dir.path().join("eds.sqlite3"), readers: 2 }).await.unwrap();
    store.put_schema(ITEMS.backend, ITEMS.object_type, json!({}), &rules()).await.unwrap();
    for n in 0..400 {
        store.insert(ITEMS, props(json!({"n": n})), Author::default(), Acl::default()).await.unwrap();
    }
    let tallied = async |store: &SqliteStore| -> Option<(i64,)> {
        sqlx::query_as("SELECT sum(n_all) FROM key_tallies WHERE property = 'n'").fetch_one(&store.writer).await.ok()
    };
    assert_eq!(tallied(&store).await, Some((400,)));
    let unindexed = crate::SchemaRules { indexed: Vec::new(), cascades: Vec::new(), searched: Vec::new() };
    store.put_schema(ITEMS.backend, ITEMS.object_type, json!({}), &unindexed).await.unwrap();
    let (rows,): (i64,) = sqlx::query_as("SELECT count(*) FROM key_tallies").fetch_one(&store.writer).await.unwrap();
    assert_eq!(rows, 0);
    for n in 400..500 {
        store.insert(ITEMS, props(json!({"n": n})), Author::default(), Acl::default()).await.unwrap();
    }
    store.put_schema(ITEMS.backend, ITEMS.object_type, json!({}), &rules()).await.unwrap();
    assert_eq!(tallied(&store).await, Some((500,)));
    split_all(&dir.path().join("eds.sqlite3"));
    let (found, counted) = both_counts(&store, &json!({"n": {"$gte": 10, "$lt": 450}}), ALL).await;
    assert_eq!((found, counted), (Some(440), 440));
}

/// The ids of a page, and whether the store skipped buckets to find it.
async fn page(store: &SqliteStore, q: &Value, sort: &Value, offset: u32, access: Access<'_>) -> (Vec<String>, bool) {
    let filter = updraft_query::Filter::parse(q).unwrap();
    let sort = updraft_query::Sort::parse(sort).unwrap();
    let page = crate::Page { limit: 20, offset };
    let read = ListRead::new(ITEMS, &filter, &sort, lists::Shape::Page(page), access, store.hot.key_indexes()).unwrap();
    let skips = store.hot.inline(|conn| read.skips(conn)).unwrap();
    let query = crate::ListQuery { filter: &filter, sort: &sort, page };
    let docs = store.list(ITEMS, query, access).await.unwrap();
    (docs.iter().map(|doc| doc["id"].as_str().unwrap().to_owned()).collect(), skips)
}

#[tokio::test]
async fn pages_deep_in_an_index_skip_its_buckets_and_find_the_rows_an_offset_walk_finds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("eds.sqlite3");
    let store = SqliteStore::open(&SqliteOptions { path: path.clone(), readers: 2 }).await.unwrap();
    store.put_schema(ITEMS.backend, ITEMS.object_type, json!({}), &rules()).await.unwrap();
    let mut draw = Draw(0x2545_f491_4f6c_dd1d);
    // Numbers only, so that the whole index is one rank, with repeats (integers equal to reals among them). Half
    // the objects below 50 are private to alice, so that other readers skip only the buckets above.
    for i in 0..3000 {
        let n = if i % 3 == 0 { json!(draw.below(50)) } else { json!(draw.below(4000) as f64 / 4.0) };
        let private = i % 3 == 0 && i % 2 == 0;
        let read = if private { vec![Subject::user("alice")] } else { vec![Subject::Everyone] };
        let acl = Acl { read, ..Acl::default() };
        store.insert(ITEMS, props(json!({"n": n})), Author::default(), acl).await.unwrap();
    }
    split_all(&path);
    let (anyone, alice) = ([Subject::Everyone], [Subject::Everyone, Subject::user("alice")]);
    let readers = [Access::Everything, Access::Subjects(&anyone), Access::Subjects(&alice)];
    let mut skipped = [0; 3];
    for _ in 0..40 {
        let dir = if draw.below(2) == 0 { "asc" } else { "desc" };
        let sort = json!([{"sortBy": "n", "direction": dir}]);
        let offset = 256 + draw.below(2500) as u32;
        let lo = draw.below(600) as f64 / 2.0;
        for (q, same) in [
            (json!({}), json!({"n": {"$exists": true}})),
            (json!({"n": {"$gte": lo, "$lt": lo + 700.0}}), json!({"$and": [{"n": {"$gte": lo, "$lt": lo + 700.0}}]})),
        ] {
            for (reader, access) in readers.into_iter().enumerate() {
                let (ids, skips) = page(&store, &q, &sort, offset, access).await;
                let (walked, walks_skip) = page(&store, &same, &sort, offset, access).await;
                assert!(!walks_skip);
                assert_eq!(ids, walked, "{q} {dir} offset {offset} {access:?}");
                skipped[reader] += usize::from(skips);
            }
        }
    }
    assert!(skipped.iter().all(|it| *it > 25), "pages that skipped buckets, of 80 per reader: {skipped:?}");
}
