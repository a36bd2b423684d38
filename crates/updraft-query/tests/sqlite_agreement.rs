//! The compiled SQLite SQL must select and order exactly what the in-memory evaluator does.

use std::str::FromStr;

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use sqlx::{
    AssertSqlSafe, Connection,
    sqlite::{SqliteConnectOptions, SqliteConnection},
};
use updraft_query::{
    Direction, Filter, Sort,
    sqlite::{self, Bind},
};

const KEYS: &[&str] = &["a", "b", "c"];
const PATHS: &[&str] = &[
    "a",
    "b",
    "c",
    "a",
    "b",
    "c",
    "a.b",
    "a.c",
    "b.a",
    "a.b.c",
    "id",
    "createdAt",
    "updatedAt",
    "creator",
    "creator.id",
];
// The JSON-looking strings must stay text: an element's properties are looked up only in containers. The times
// and ids are those of `with_reserved`, and what lies between them.
const STRINGS: &[&str] = &[
    "a",
    "b",
    "ab",
    "B",
    "é😀",
    "",
    "a\"\\\n",
    "\u{0}b",
    r#"{"a":"a"}"#,
    r#"["a"]"#,
    "000000000000003",
    "00000000000000",
    "000000000000003x",
    "o2",
    "u1",
];
const PATTERNS: &[&str] = &["^a", "b$", "a", "é", "^$", ".", "^[ab]+$", "^00000000000000", "^o", "^ab*", "^a."];

/// The properties with a key index in the store layout; `b` is kept free of arrays there.
const INDEXED: &[&str] = &["a", "b"];
/// Those whose array elements are in the element table (all of them, as in the store).
const INDEX_ELEMENTS: &[&str] = INDEXED;

/// A fixed-width time format: text order is time order, as with the store's ISO times.
fn format_ms(ms: i64) -> String {
    format!("{ms:015}")
}

struct Db {
    conn: SqliteConnection,
    /// The rows are store objects with columns for the reserved properties, and key indexes on `INDEXED`.
    layout: Option<Vec<sqlite::Indexed>>,
}

impl Db {
    async fn new(docs: &[Value]) -> Db {
        let options = SqliteConnectOptions::from_str("sqlite::memory:").unwrap().with_regexp();
        let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
        sqlx::query("CREATE TABLE obj (id INTEGER PRIMARY KEY, doc BLOB NOT NULL)").execute(&mut conn).await.unwrap();
        for (id, doc) in docs.iter().enumerate() {
            sqlx::query("INSERT INTO obj (id, doc) VALUES (?, jsonb(?))")
                .bind(id as i64)
                .bind(doc.to_string())
                .execute(&mut conn)
                .await
                .unwrap();
        }
        Db { conn, layout: None }
    }

    /// Store objects: `docs` as given by `with_reserved`, their reserved properties in columns too.
    async fn store(docs: &[Value]) -> Db {
        let options = SqliteConnectOptions::from_str("sqlite::memory:").unwrap().with_regexp();
        let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
        let ddl = "CREATE TABLE obj (n INTEGER PRIMARY KEY, id TEXT NOT NULL, created_ms INTEGER NOT NULL, \
                   updated_ms INTEGER NOT NULL, doc BLOB NOT NULL)";
        sqlx::query(ddl).execute(&mut conn).await.unwrap();
        for property in INDEXED {
            let ddl = format!("CREATE INDEX key_{property} ON obj ({}, n)", sqlite::key_index_terms(property, "doc"));
            sqlx::query(AssertSqlSafe(ddl)).execute(&mut conn).await.unwrap();
        }
        for (n, doc) in docs.iter().enumerate() {
            let ms = |key: &str| doc[key].as_str().unwrap().parse::<i64>().unwrap();
            sqlx::query("INSERT INTO obj (n, id, created_ms, updated_ms, doc) VALUES (?, ?, ?, ?, jsonb(?))")
                .bind(n as i64)
                .bind(doc["id"].as_str().unwrap())
                .bind(ms("createdAt"))
                .bind(ms("updatedAt"))
                .bind(doc.to_string())
                .execute(&mut conn)
                .await
                .unwrap();
        }
        // The element table of the store: one row per array element of an indexed property.
        let ddl = "CREATE TABLE array_keys (property TEXT NOT NULL, rank INTEGER NOT NULL, value, id INTEGER NOT NULL)";
        sqlx::query(ddl).execute(&mut conn).await.unwrap();
        for property in INDEX_ELEMENTS {
            let fill = format!(
                "INSERT INTO array_keys SELECT '{property}',
                     CASE e.type WHEN 'integer' THEN 1 WHEN 'real' THEN 1 WHEN 'text' THEN 2 WHEN 'object' THEN 3
                                 WHEN 'array' THEN 4 WHEN 'true' THEN 5 WHEN 'false' THEN 5 ELSE 0 END,
                     CASE e.type WHEN 'object' THEN (CASE WHEN json_type(e.value, '$.id') IS 'text'
                                                          THEN e.value ->> '$.id' END)
                                 WHEN 'array' THEN NULL ELSE e.atom END,
                     n
                 FROM obj, jsonb_each(obj.doc, '$.{property}') AS e WHERE json_type(obj.doc, '$.{property}') IS 'array'"
            );
            sqlx::query(AssertSqlSafe(fill)).execute(&mut conn).await.unwrap();
        }
        let indexed = INDEXED
            .iter()
            .map(|property| sqlite::Indexed {
                property: property.to_string(),
                arrays: docs.iter().any(|doc| doc[property].is_array()),
            })
            .collect();
        Db { conn, layout: Some(indexed) }
    }

    /// The ids of the rows matching `filter`, ordered by `sort` and then by id in the first key's direction.
    /// `walked`: the rows come as a walk of another index yields them to the store, with the key terms of the
    /// indexed properties computed once a row (`compile_walked`).
    async fn select(&mut self, filter: &Filter, sort: &Sort, walked: bool) -> Result<Vec<i64>, sqlx::Error> {
        let mut from = "obj".to_owned();
        let (compiled, order, row) = match &self.layout {
            None => (sqlite::compile(filter, "doc"), sqlite::order_by(sort, "doc", &["id"]), "id"),
            Some(indexed) => {
                let layout = sqlite::Layout { doc: "doc", reserved: Some(format_ms), indexed };
                let compiled = if walked {
                    let keys: String = indexed
                        .iter()
                        .map(|it| format!(", {}", sqlite::walked_key_columns(&it.property, "doc")))
                        .collect();
                    from =
                        format!("(SELECT rowid AS walked{keys} FROM obj) AS walk CROSS JOIN obj ON obj.rowid = walked");
                    sqlite::compile_walked(filter, &layout, "walk")
                } else {
                    sqlite::compile_in(filter, &layout)
                };
                (compiled, sqlite::order_by_in(sort, filter, &layout, &["n"]), "n")
            }
        };
        // As the store does, an index union reads only the ids of its branches (which must hold every match).
        let mut binds = Vec::new();
        let mut ids = String::new();
        if let Some(indexed) = &self.layout {
            let layout = sqlite::Layout { doc: "doc", reserved: Some(format_ms), indexed };
            if let Some(branches) = sqlite::branches(filter, &layout) {
                let selects: Vec<String> = branches
                    .into_iter()
                    .map(|branch| match branch {
                        sqlite::Branch::Rows(rows) => {
                            binds.extend(rows.binds);
                            format!("SELECT n FROM obj WHERE {}", rows.where_clause)
                        }
                        sqlite::Branch::Elements { property, condition } => {
                            binds.extend(condition.binds);
                            format!(
                                "SELECT id FROM array_keys WHERE property = '{property}' AND {}",
                                condition.where_clause
                            )
                        }
                    })
                    .collect();
                ids = format!("n IN ({}) AND ", selects.join(" UNION ALL "));
            }
        }
        binds.extend(compiled.binds);
        let text = format!("SELECT obj.{row} FROM {from} WHERE {ids}{} ORDER BY {order}", compiled.where_clause);
        let mut query = sqlx::query_scalar(AssertSqlSafe(text));
        for bind in binds {
            query = match bind {
                Bind::Int(it) => query.bind(it),
                Bind::Real(it) => query.bind(it),
                Bind::Text(it) => query.bind(it),
            };
        }
        query.fetch_all(&mut self.conn).await
    }
}

/// The documents as the store keeps them: reserved properties set (times from a few values, so that they tie),
/// and `b` without arrays, so that its conditions compile without their array half.
fn with_reserved(docs: &[Value]) -> Vec<Value> {
    docs.iter()
        .enumerate()
        .map(|(n, doc)| {
            let mut doc = doc.as_object().cloned().unwrap_or_default();
            if let Some(Value::Array(items)) = doc.get("b") {
                let first = items.first().cloned().unwrap_or(Value::Null);
                doc.insert("b".to_owned(), first);
            }
            let n = n as i64;
            doc.insert("id".to_owned(), json!(format!("o{n}")));
            doc.insert("createdAt".to_owned(), json!(format_ms(n % 5)));
            doc.insert("updatedAt".to_owned(), json!(format_ms(n % 5 + n % 3)));
            if n % 3 != 0 {
                doc.insert("creator".to_owned(), json!({"id": format!("u{}", n % 3), "objectType": "users"}));
            }
            Value::Object(doc)
        })
        .collect()
}

/// What the evaluator selects, in the same order as `Db::select`.
fn expected(docs: &[Value], filter: &Filter, sort: &Sort) -> Vec<i64> {
    let mut hits: Vec<(i64, &Value)> =
        docs.iter().enumerate().filter(|(_, doc)| filter.matches(doc)).map(|(id, doc)| (id as i64, doc)).collect();
    // Stable, and `hits` is in id order (reversed when the first key descends), so ties stay ordered by id as in SQL.
    if sort.keys.first().is_some_and(|key| key.direction == Direction::Desc) {
        hits.reverse();
    }
    hits.sort_by(|a, b| sort.compare(a.1, b.1));
    hits.into_iter().map(|(id, _)| id).collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn check(docs: &[Value], queries: &[(Value, Value)]) -> Result<(), TestCaseError> {
    runtime().block_on(async {
        let stored = with_reserved(docs);
        let mut dbs = [(Db::new(docs).await, docs), (Db::store(&stored).await, &stored[..])];
        for (q, sort_json) in queries {
            let filter = Filter::parse(q).map_err(|e| TestCaseError::fail(format!("{q} does not parse: {e}")))?;
            let sort =
                Sort::parse(sort_json).map_err(|e| TestCaseError::fail(format!("{sort_json} does not parse: {e}")))?;
            for (db, docs) in &mut dbs {
                // A list without a sort comes in the order of the index serving it, as the store runs it.
                let sort = match (&db.layout, sort.keys.is_empty()) {
                    (Some(indexed), true) => {
                        let layout = sqlite::Layout { doc: "doc", reserved: Some(format_ms), indexed };
                        sqlite::index_order(&filter, &layout).unwrap_or_else(|| sort.clone())
                    }
                    _ => sort.clone(),
                };
                let want = expected(docs, &filter, &sort);
                let got =
                    db.select(&filter, &sort, false).await.map_err(|e| TestCaseError::fail(format!("{q}: {e}")))?;
                let layout = if db.layout.is_some() { "store layout" } else { "plain" };
                prop_assert_eq!(got, want.clone(), "{}: q = {}, sort = {}", layout, q, sort_json);
                if db.layout.is_some() {
                    let got =
                        db.select(&filter, &sort, true).await.map_err(|e| TestCaseError::fail(format!("{q}: {e}")))?;
                    prop_assert_eq!(got, want, "walked: q = {}, sort = {}", q, sort_json);
                }
            }
        }
        Ok(())
    })
}

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(KEYS).prop_map(str::to_owned)
}

fn path() -> impl Strategy<Value = String> {
    prop::sample::select(PATHS).prop_map(str::to_owned)
}

fn string() -> impl Strategy<Value = Value> {
    prop::sample::select(STRINGS).prop_map(Value::from)
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![(-1i64..=2).prop_map(Value::from), prop::sample::select(&[-0.5, 1.5, 2.0][..]).prop_map(Value::from)]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![Just(Value::Null), any::<bool>().prop_map(Value::from), number(), string()]
}

/// A ref, as the store keeps them: objects order by their id.
fn reference() -> impl Strategy<Value = Value> {
    prop::sample::select(&["u1", "u2", "o2"][..]).prop_map(|id| json!({"id": id, "objectType": "users"}))
}

fn value(depth: u32) -> impl Strategy<Value = Value> {
    prop_oneof![4 => scalar(), 1 => reference()].prop_recursive(depth, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..3).prop_map(|it| Value::Object(it.into_iter().collect())),
        ]
    })
}

/// Mostly scalars, so that equality literals often hit.
fn literal() -> impl Strategy<Value = Value> {
    prop_oneof![8 => scalar(), 1 => reference(), 2 => value(2)]
}

fn doc() -> impl Strategy<Value = Value> {
    let field = prop_oneof![4 => scalar(), 1 => reference(), 2 => value(3)];
    prop::collection::btree_map(key(), field, 1..4).prop_map(|it| Value::Object(it.into_iter().collect()))
}

/// One operator and its operand, without nested operators.
fn leaf_op() -> impl Strategy<Value = (String, Value)> {
    let op = |name: &'static str| Just(name.to_owned());
    prop_oneof![
        (prop::sample::select(&["$eq", "$ne"][..]).prop_map(str::to_owned), literal()),
        (
            prop::sample::select(&["$gt", "$gte", "$lt", "$lte"][..]).prop_map(str::to_owned),
            prop_oneof![number(), string()]
        ),
        (
            prop::sample::select(&["$in", "$nin", "$all"][..]).prop_map(str::to_owned),
            prop::collection::vec(literal(), 0..4).prop_map(Value::Array)
        ),
        (op("$exists"), any::<bool>().prop_map(Value::from)),
        (op("$size"), (0u64..3).prop_map(Value::from)),
    ]
}

/// An operator object such as `{"$gt": 1, "$lt": 3}`.
fn ops() -> impl Strategy<Value = Value> {
    let regex = (prop::sample::select(PATTERNS), prop::bool::ANY).prop_map(|(pattern, case_insensitive)| {
        let mut map = Map::new();
        map.insert("$regex".to_owned(), pattern.into());
        if case_insensitive {
            map.insert("$options".to_owned(), "i".into());
        }
        map
    });
    let flat = prop_oneof![
        4 => prop::collection::vec(leaf_op(), 1..3).prop_map(|it| it.into_iter().collect::<Map<_, _>>()),
        1 => regex,
    ];
    flat.prop_recursive(2, 8, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|it| json!({"$not": it}).as_object().unwrap().clone()),
            inner.prop_map(|it| json!({"$elemMatch": it}).as_object().unwrap().clone()),
        ]
    })
    .prop_map(Value::Object)
}

fn filter() -> impl Strategy<Value = Value> {
    let condition = prop_oneof![literal(), ops()];
    let leaf =
        prop::collection::vec((path(), condition), 0..3).prop_map(|it| Value::Object(it.into_iter().collect())).boxed();
    leaf.clone().prop_recursive(3, 12, 3, move |inner| {
        let non_empty = inner.clone().prop_map(|it| match it {
            Value::Object(map) if map.is_empty() => json!({"a": {"$exists": true}}),
            it => it,
        });
        prop_oneof![
            3 => leaf.clone(),
            2 => (prop::sample::select(&["$and", "$or", "$nor"][..]), prop::collection::vec(inner.clone(), 1..3))
                .prop_map(|(op, filters)| json!({ op: filters })),
            1 => (path(), non_empty).prop_map(|(path, sub)| json!({ path: {"$elemMatch": sub} })),
        ]
    })
}

fn sort() -> impl Strategy<Value = Value> {
    prop::collection::vec((path(), prop::sample::select(&["asc", "desc"][..])), 0..3).prop_map(|keys| {
        Value::Array(keys.into_iter().map(|(path, dir)| json!({"sortBy": path, "direction": dir})).collect())
    })
}

/// Any JSON built from operator and field names: most of it is rejected, the rest must still agree.
fn arbitrary_q() -> impl Strategy<Value = Value> {
    let names = prop::sample::select(
        &[
            "a",
            "b",
            "a.b",
            "$eq",
            "$ne",
            "$gt",
            "$lt",
            "$in",
            "$nin",
            "$all",
            "$exists",
            "$size",
            "$regex",
            "$options",
            "$elemMatch",
            "$not",
            "$and",
            "$or",
            "$nor",
            "$foo",
        ][..],
    )
    .prop_map(str::to_owned);
    let leaf = prop_oneof![scalar(), Just(json!("i")), Just(json!("^a"))];
    leaf.prop_recursive(4, 24, 3, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map(names.clone(), inner, 0..3)
                .prop_map(|it| Value::Object(it.into_iter().collect())),
        ]
    })
}

/// The shapes an index serves, on the indexed and reserved properties: equality, ranges, `$in`, `$exists`,
/// prefixes, their negations, and `$and`/`$or` of them.
fn indexed_filter() -> impl Strategy<Value = Value> {
    let path = prop::sample::select(&["a", "b", "b", "id", "createdAt", "updatedAt", "creator", "creator.id"][..]);
    let bound = || prop_oneof![number(), string()];
    let condition = prop_oneof![
        literal(),
        (prop::sample::select(&["$ne", "$gt", "$gte", "$lt", "$lte"][..]), literal()).prop_filter_map(
            "a comparison takes a number or a string",
            |(op, operand)| {
                (op == "$ne" || operand.is_number() || operand.is_string()).then(|| json!({ op: operand }))
            }
        ),
        (bound(), bound()).prop_map(|(low, high)| json!({"$gte": low, "$lt": high})),
        (prop::sample::select(&["$in", "$nin"][..]), prop::collection::vec(literal(), 0..4))
            .prop_map(|(op, items)| json!({ op: items })),
        any::<bool>().prop_map(|exists| json!({"$exists": exists})),
        prop::sample::select(PATTERNS).prop_map(|pattern| json!({"$regex": pattern})),
        Just(json!({"$ne": null})),
    ];
    let leaf = prop::collection::vec((path, condition), 1..3)
        .prop_map(|it| Value::Object(it.into_iter().map(|(path, condition)| (path.to_owned(), condition)).collect()));
    leaf.prop_recursive(2, 8, 3, |inner| {
        (prop::sample::select(&["$and", "$or"][..]), prop::collection::vec(inner, 1..3))
            .prop_map(|(op, filters)| json!({ op: filters }))
    })
}

fn indexed_sort() -> impl Strategy<Value = Value> {
    let key = prop::sample::select(&["a", "b", "createdAt", "updatedAt", "id"][..]);
    prop::collection::vec((key, prop::sample::select(&["asc", "desc"][..])), 0..3).prop_map(|keys| {
        Value::Array(keys.into_iter().map(|(path, dir)| json!({"sortBy": path, "direction": dir})).collect())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn indexed_shapes_agree(
        docs in prop::collection::vec(doc(), 10..30),
        queries in prop::collection::vec((indexed_filter(), indexed_sort()), 1..6),
    ) {
        check(&docs, &queries)?;
    }

    #[test]
    fn whatever_parses_agrees(docs in prop::collection::vec(doc(), 10..20), q in arbitrary_q()) {
        if Filter::parse(&q).is_ok() {
            check(&docs, &[(q, json!([]))])?;
        }
    }

    #[test]
    fn sqlite_agrees_with_the_evaluator(
        docs in prop::collection::vec(doc(), 10..30),
        queries in prop::collection::vec((filter(), sort()), 1..6),
    ) {
        check(&docs, &queries)?;
    }
}

#[test]
fn spec_examples_agree() {
    let docs = vec![
        json!({"completed": true, "title": "b", "count": 5, "username": "a"}),
        json!({"completed": false, "title": "A", "count": 25, "username": "logintest"}),
        json!({"title": "a", "file": {"id": "f1", "objectType": "files"}, "track": {"id": "t1"}}),
        json!({"title": "é", "file": null, "tags": ["x", "y"], "track": {"id": "t2"}}),
        json!({"todoList": {"id": "L", "objectType": "objects.todoLists"}, "updatedAt": "2014-01-02"}),
        json!({"todoList": {"id": "M", "objectType": "objects.todoLists"}, "updatedAt": "2014-01-01"}),
        json!({"id": "X", "count": 0.5}),
    ];
    let queries: Vec<(Value, Value)> = vec![
        (json!({"completed": true}), json!([{"sortBy": "updatedAt", "direction": "desc"}])),
        (json!({"username": {"$in": ["a", "b"]}}), json!([{"sortBy": "username", "direction": "asc"}])),
        (json!({"count": {"$in": [0, 5, 25, 20, 50]}}), json!([])),
        (json!({"file": {"$ne": null}}), json!([])),
        (json!({"file": null}), json!([])),
        (json!({"$or": [{"completed": true}, {"title": "a"}]}), json!([{"sortBy": "title"}])),
        (json!({"track.id": {"$in": ["t1", "t2"]}}), json!([])),
        (json!({"todoList": {"id": "L", "objectType": "objects.todoLists"}}), json!([])),
        (json!({"id": "X"}), json!([])),
        (json!({}), json!([{"sortBy": "title"}, {"sortBy": "count", "direction": "desc"}])),
        (json!({"title": {"$regex": "^A", "$options": "i"}}), json!([{"sortBy": "title"}])),
        (json!({"tags": {"$all": ["y", "x"], "$size": 2}}), json!([])),
        (json!({"tags": {"$elemMatch": {"$gt": "x"}}}), json!([])),
    ];
    runtime().block_on(async {
        let mut db = Db::new(&docs).await;
        let expected_ids: Vec<Vec<i64>> = vec![
            vec![0],
            vec![0],
            vec![0, 1],
            vec![2],
            vec![0, 1, 3, 4, 5, 6],
            vec![2, 0],
            vec![2, 3],
            vec![4],
            vec![6],
            vec![6, 4, 5, 1, 2, 0, 3],
            vec![1, 2],
            vec![3],
            vec![3],
        ];
        for ((q, sort), expected_ids) in queries.iter().zip(expected_ids) {
            let filter = Filter::parse(q).unwrap();
            let sort = Sort::parse(sort).unwrap();
            assert_eq!(expected(&docs, &filter, &sort), expected_ids, "evaluator, q = {q}");
            assert_eq!(db.select(&filter, &sort, false).await.unwrap(), expected_ids, "sqlite, q = {q}");
        }
    });
}

#[test]
fn largest_filter_runs_in_sqlite() {
    let values: Vec<Value> = (0..1000).map(|it| json!(format!("v{it}"))).collect();
    let q = json!({"a": {"$in": values}, "b": {"$nin": [1, 2, 3]}});
    let filter = Filter::parse(&q).unwrap();
    let docs = vec![json!({"a": "v999"}), json!({"a": ["x", "v0"], "b": 2}), json!({"a": "v1000"})];
    runtime().block_on(async {
        let mut db = Db::new(&docs).await;
        let sort = Sort { keys: vec![] };
        assert_eq!(db.select(&filter, &sort, false).await.unwrap(), [0]);
    });
}

#[test]
fn deepest_filter_runs_in_sqlite() {
    // Alternate the nesting kinds that add subqueries and NOTs, up to the parser's depth cap.
    let mut q = json!({"a": {"$elemMatch": {"$not": {"$gt": 1}}}});
    for level in 0.. {
        let next = match level % 3 {
            0 => json!({"$or": [q.clone(), {"b": null}]}),
            1 => json!({"a": {"$elemMatch": q.clone()}}),
            _ => json!({"$nor": [q.clone()]}),
        };
        if Filter::parse(&next).is_err() {
            break;
        }
        q = next;
    }
    let filter = Filter::parse(&q).unwrap();
    assert!(q.to_string().matches("$elemMatch").count() >= 7, "{q}");
    let docs = vec![json!({"a": [{"a": [0]}]}), json!({"b": 1})];
    runtime().block_on(async {
        let mut db = Db::new(&docs).await;
        let sort = Sort { keys: vec![] };
        assert_eq!(db.select(&filter, &sort, false).await.unwrap(), expected(&docs, &filter, &sort));
    });
}
