//! The compiled PostgreSQL SQL must select and order exactly what the in-memory evaluator does (the counterpart of
//! `sqlite_agreement.rs`, against a real server: see `pg/mod.rs`).
//!
//! PostgreSQL text cannot hold U+0000 (nor can JSONB strings), so the store refuses documents holding it and the
//! documents generated here hold none; query literals may, and must still agree. Numbers are those that
//! PostgreSQL hands back as serde_json wrote them (checked for every case), plus in literals some that it would
//! not (`1e300`), and big integers on both sides of 2^53 and i64, where exact and `float8` comparison differ.

mod pg;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value, json};
use sqlx::{AssertSqlSafe, postgres::PgConnection};
use updraft_query::{
    Direction, Filter, Sort,
    postgres::{self, Bind, Indexed, Layout},
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
/// Document strings: the JSON-looking ones must stay text; the times and ids are those of `with_reserved`, and
/// what lies between them; "B" and "a" order differently by code point and in the database's (ICU) collation.
const STRINGS: &[&str] = &[
    "a",
    "b",
    "ab",
    "B",
    "é😀",
    "",
    "a\"\\\n",
    "a\nb",
    r#"{"a":"a"}"#,
    r#"["a"]"#,
    "1970-01-01T00:00:00.003Z",
    "1970-01-01T00:00:00.00",
    "1970-01-01T00:00:00.003Zx",
    "o2",
    "u1",
];
/// Query strings: also strings holding U+0000, which no stored string can.
const QUERY_STRINGS: &[&str] = &["\u{0}b", "a\u{0}"];
const PATTERNS: &[&str] = &[
    "^a",
    "b$",
    "a",
    "é",
    "^$",
    ".",
    "^[ab]+$",
    "^1970-01-01T00:00:00.00",
    "^o",
    "^ab*",
    "^a.",
    // `.`, newlines and anchors, where PostgreSQL's own regex syntax differs.
    "a.b",
    "(?s)a.b",
    "^a.*$",
    "(?m)^b",
    "a$",
    "\\n",
    "(?i)^A",
    "(?i)É",
    "\\bb",
    "\\w\\W",
    "\\d",
    "[^a]",
    "^\\u{0}",
    "a{2,}|😀",
];
const INDEXED: &[&str] = &["a", "b"];
/// Floats, one of them integral beyond 2^53, where integers next to it round to it.
const DOC_NUMBERS: &[f64] = &[-0.5, 1.5, 2.0, 0.1, -1e-7, 9_007_199_254_740_996.0];
/// Integers exact in i64 but not in f64 (and their neighbours), and beyond i64 (which compare as floats).
///
/// Two values that round to the same f64 while one compares as an integer and the other as a float are equal to
/// the evaluator but not to each other's other neighbours, so they have no consistent order: documents hold no
/// such pair (2^53 + 1 and 2^53 are both integers; i64::MAX, which rounds to 2^63, is only in literals).
const BIG_INTEGERS: &[i64] = &[1 << 53, (1 << 53) + 1, -(1 << 53) - 1, 1 << 62, (1 << 62) + 1, i64::MIN];
const BEYOND_I64: &[u64] = &[1 << 63, u64::MAX];
/// Literals may hold these on top: floats tying 2^53 + 1 and 2^63, one printed with an exponent, and integers
/// rounding to 2^63 and to 2^53 + 4.
const LITERAL_FLOATS: &[f64] = &[9_007_199_254_740_992.0, 1e300, 9.223_372_036_854_776e18];
const LITERAL_INTEGERS: &[i64] = &[i64::MAX, i64::MAX - 1, (1 << 53) + 5];

/// The store's time format.
fn format_ms(ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    updraft_core::timestamp::format(at)
}

/// Inserts `docs` as the rows of `backend` (reserved columns from the documents when they have them), in one
/// statement.
async fn insert(conn: &mut PgConnection, backend: &str, docs: &[Value]) {
    let ms = |doc: &Value, key: &str| match doc.get(key).and_then(Value::as_str) {
        Some(text) => (0..10).find(|ms| format_ms(*ms) == text).unwrap_or(0),
        None => 0,
    };
    let rows: Vec<Value> = docs
        .iter()
        .enumerate()
        .map(|(n, doc)| {
            let id = doc.get("id").and_then(Value::as_str).map_or_else(|| format!("row{n}"), str::to_owned);
            json!({"n": n, "id": id, "doc": doc, "created": ms(doc, "createdAt"), "updated": ms(doc, "updatedAt")})
        })
        .collect();
    sqlx::query(
        "INSERT INTO objects (backend, object_type, id, doc, created_ms, updated_ms, acl, n) \
         SELECT $1, 'things', r ->> 'id', r -> 'doc', (r ->> 'created')::bigint, (r ->> 'updated')::bigint, '{}', \
         (r ->> 'n')::bigint FROM jsonb_array_elements($2::jsonb) AS r",
    )
    .bind(backend)
    .bind(Value::Array(rows).to_string())
    .execute(&mut *conn)
    .await
    .unwrap();
}

/// The documents of `backend` as PostgreSQL hands them back.
async fn stored(conn: &mut PgConnection, backend: &str) -> Vec<Value> {
    let rows: Vec<String> = sqlx::query_scalar("SELECT doc::text FROM objects WHERE backend = $1 ORDER BY n")
        .bind(backend)
        .fetch_all(conn)
        .await
        .unwrap();
    rows.iter().map(|it| serde_json::from_str(it).unwrap()).collect()
}

/// The `n` of the rows of `backend` matching `filter`, ordered by `sort` and then by `n`.
async fn select(
    conn: &mut PgConnection,
    backend: &str,
    layout: &Layout<'_>,
    filter: &Filter,
    sort: &Sort,
) -> Result<Vec<i64>, String> {
    let compiled = postgres::compile_in(filter, layout, 2).map_err(|e| e.to_string())?;
    let order = postgres::order_by_in(sort, filter, layout, &["n"]);
    let text = format!(
        "SELECT n FROM objects WHERE backend = $1 AND object_type = 'things' AND {} ORDER BY {order}",
        compiled.where_clause
    );
    let mut query = sqlx::query_scalar(AssertSqlSafe(text)).bind(backend.to_owned());
    for bind in compiled.binds {
        query = match bind {
            Bind::Int(it) => query.bind(it),
            Bind::Real(it) => query.bind(it),
            Bind::Text(it) => query.bind(it),
        };
    }
    query.fetch_all(conn).await.map_err(|e| e.to_string())
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
            doc.insert("updatedAt".to_owned(), json!(format_ms(n % 5 + n % 3 % 2)));
            if n % 3 != 0 {
                doc.insert("creator".to_owned(), json!({"id": format!("u{}", n % 3), "objectType": "users"}));
            }
            Value::Object(doc)
        })
        .collect()
}

/// What the evaluator selects, in the same order as `select`.
fn expected(docs: &[Value], filter: &Filter, sort: &Sort) -> Vec<i64> {
    let mut hits: Vec<(i64, &Value)> =
        docs.iter().enumerate().filter(|(_, doc)| filter.matches(doc)).map(|(n, doc)| (n as i64, doc)).collect();
    // Stable, and `hits` is in `n` order (reversed when the first key descends), as the tiebreak orders ties.
    if sort.keys.first().is_some_and(|key| key.direction == Direction::Desc) {
        hits.reverse();
    }
    hits.sort_by(|a, b| sort.compare(a.1, b.1));
    hits.into_iter().map(|(n, _)| n).collect()
}

/// Loads `docs` (plain, and with reserved properties under the store layout) and checks every query on both.
async fn check(conn: &mut PgConnection, docs: &[Value], queries: &[(Value, Value)]) -> Result<(), TestCaseError> {
    sqlx::query("DELETE FROM objects").execute(&mut *conn).await.unwrap();
    let reserved = with_reserved(docs);
    insert(conn, "plain", docs).await;
    insert(conn, "store", &reserved).await;
    prop_assert_eq!(&stored(conn, "plain").await, docs, "PostgreSQL hands the documents back as written");
    prop_assert_eq!(&stored(conn, "store").await, &reserved, "PostgreSQL hands the documents back as written");
    let indexed: Vec<Indexed> = INDEXED
        .iter()
        .map(|property| Indexed {
            property: property.to_string(),
            arrays: reserved.iter().any(|doc| doc[property].is_array()),
        })
        .collect();
    let layouts = [
        ("plain", Layout::plain("doc"), docs),
        ("store", Layout { doc: "doc", reserved: Some(format_ms), indexed: &indexed }, &reserved[..]),
    ];
    for (q, sort_json) in queries {
        let filter = Filter::parse(q).map_err(|e| TestCaseError::fail(format!("{q} does not parse: {e}")))?;
        let sort = Sort::parse(sort_json).map_err(|e| TestCaseError::fail(format!("{sort_json}: {e}")))?;
        for (backend, layout, docs) in &layouts {
            let got = select(conn, backend, layout, &filter, &sort).await.map_err(TestCaseError::fail)?;
            prop_assert_eq!(got, expected(docs, &filter, &sort), "{}: q = {}, sort = {}", backend, q, sort_json);
        }
    }
    Ok(())
}

/// Runs `cases` cases of `strategy` through `check`, in one fresh database.
fn run<S: Strategy<Value = (Vec<Value>, Vec<(Value, Value)>)>>(cases: u32, strategy: S) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let db = runtime.block_on(pg::TestDb::create());
    let mut conn = runtime.block_on(db.connect());
    for property in INDEXED {
        // The key index, as the store makes it: its expressions must be immutable, and planning sees it.
        let ddl = format!("CREATE INDEX ON objects ({}, created_ms, id)", postgres::key_index_terms(property, "doc"));
        runtime.block_on(sqlx::query(AssertSqlSafe(ddl)).execute(&mut conn)).unwrap();
    }
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|it| it.parse().ok()).unwrap_or(cases);
    let config = Config { cases, source_file: Some(file!()), ..Config::default() };
    let conn = std::cell::RefCell::new(conn);
    let result = TestRunner::new(config)
        .run(&strategy, |(docs, queries)| runtime.block_on(check(&mut conn.borrow_mut(), &docs, &queries)));
    if let Err(e) = result {
        panic!("{e}");
    }
    drop(db);
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
    prop_oneof![
        6 => (-1i64..=2).prop_map(Value::from),
        3 => prop::sample::select(DOC_NUMBERS).prop_map(Value::from),
        2 => prop::sample::select(BIG_INTEGERS).prop_map(Value::from),
        1 => prop::sample::select(BEYOND_I64).prop_map(Value::from),
    ]
}

fn query_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => number(),
        1 => prop::sample::select(LITERAL_FLOATS).prop_map(Value::from),
        1 => prop::sample::select(LITERAL_INTEGERS).prop_map(Value::from),
    ]
}

fn query_string() -> impl Strategy<Value = Value> {
    prop_oneof![8 => string(), 1 => prop::sample::select(QUERY_STRINGS).prop_map(Value::from)]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![Just(Value::Null), any::<bool>().prop_map(Value::from), number(), string()]
}

fn query_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![Just(Value::Null), any::<bool>().prop_map(Value::from), query_number(), query_string()]
}

/// A ref, as the store keeps them: objects order by their id.
fn reference() -> impl Strategy<Value = Value> {
    prop::sample::select(&["u1", "u2", "o2"][..]).prop_map(|id| json!({"id": id, "objectType": "users"}))
}

fn value(depth: u32, leaf: BoxedStrategy<Value>) -> impl Strategy<Value = Value> {
    prop_oneof![4 => leaf, 1 => reference()].prop_recursive(depth, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..3).prop_map(|it| Value::Object(it.into_iter().collect())),
        ]
    })
}

/// Mostly scalars, so that equality literals often hit.
fn literal() -> impl Strategy<Value = Value> {
    prop_oneof![8 => query_scalar(), 1 => reference(), 2 => value(2, query_scalar().boxed())]
}

fn doc() -> impl Strategy<Value = Value> {
    let field = prop_oneof![4 => scalar(), 1 => reference(), 2 => value(3, scalar().boxed())];
    prop::collection::btree_map(key(), field, 1..4).prop_map(|it| Value::Object(it.into_iter().collect()))
}

fn bound() -> impl Strategy<Value = Value> {
    prop_oneof![query_number(), query_string()]
}

/// One operator and its operand, without nested operators.
fn leaf_op() -> impl Strategy<Value = (String, Value)> {
    let op = |name: &'static str| Just(name.to_owned());
    prop_oneof![
        (prop::sample::select(&["$eq", "$ne"][..]).prop_map(str::to_owned), literal()),
        (prop::sample::select(&["$gt", "$gte", "$lt", "$lte"][..]).prop_map(str::to_owned), bound()),
        (
            prop::sample::select(&["$in", "$nin", "$all"][..]).prop_map(str::to_owned),
            prop::collection::vec(literal(), 0..4).prop_map(Value::Array)
        ),
        (op("$exists"), any::<bool>().prop_map(Value::from)),
        (op("$size"), (0u64..3).prop_map(Value::from)),
    ]
}

fn regex() -> impl Strategy<Value = Map<String, Value>> {
    (prop::sample::select(PATTERNS), prop::bool::ANY).prop_map(|(pattern, case_insensitive)| {
        let mut map = Map::new();
        map.insert("$regex".to_owned(), pattern.into());
        if case_insensitive {
            map.insert("$options".to_owned(), "i".into());
        }
        map
    })
}

/// An operator object such as `{"$gt": 1, "$lt": 3}`.
fn ops() -> impl Strategy<Value = Value> {
    let flat = prop_oneof![
        4 => prop::collection::vec(leaf_op(), 1..3).prop_map(|it| it.into_iter().collect::<Map<_, _>>()),
        1 => regex(),
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

/// The shapes an index serves, on the indexed and reserved properties: equality, ranges, `$in`, `$exists`,
/// prefixes, their negations, and `$and`/`$or` of them.
fn indexed_filter() -> impl Strategy<Value = Value> {
    let path = prop::sample::select(&["a", "b", "b", "id", "createdAt", "updatedAt", "creator", "creator.id"][..]);
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

#[test]
fn indexed_shapes_agree() {
    let queries = prop::collection::vec((indexed_filter(), indexed_sort()), 1..6);
    run(1000, (prop::collection::vec(doc(), 10..30), queries));
}

#[test]
fn postgres_agrees_with_the_evaluator() {
    let queries = prop::collection::vec((filter(), sort()), 1..6);
    run(1000, (prop::collection::vec(doc(), 10..30), queries));
}

/// Numbers alone, on an indexed property (`a`, which may hold arrays) and one that is not (`c`): where exact and
/// `float8` comparison part, big integers must meet each other and the floats that round like them.
#[test]
fn numbers_agree() {
    let field = prop_oneof![3 => number(), 1 => prop::collection::vec(number(), 0..3).prop_map(Value::Array)];
    let doc = (prop::sample::select(&["a", "c"][..]), field).prop_map(|(key, value)| json!({ key: value }));
    let condition = prop_oneof![
        query_number(),
        (prop::sample::select(&["$ne", "$gt", "$gte", "$lt", "$lte"][..]), query_number())
            .prop_map(|(op, n)| json!({ op: n })),
        (prop::sample::select(&["$in", "$nin"][..]), prop::collection::vec(query_number(), 0..4))
            .prop_map(|(op, items)| json!({ op: items })),
    ];
    let query = (prop::sample::select(&["a", "c"][..]), condition, prop::sample::select(&["asc", "desc"][..]))
        .prop_map(|(key, condition, dir)| (json!({ key: condition }), json!([{"sortBy": key, "direction": dir}])));
    run(300, (prop::collection::vec(doc, 10..30), prop::collection::vec(query, 1..6)));
}

/// Regex features one by one, on strings made to tell the translations apart.
#[test]
fn regexes_agree() {
    #[rustfmt::skip]
    let patterns = [
        "\\bfoo\\b", "\\Bo", "\\b{start}o", "\\b{end}o", "o\\b{end}", "(?-u:\\b)é", "\\b{start-half}x",
        "x\\b{end-half}", "(?m)^b", "(?m)b$", "(?mR)^b", "(?mR)a$", "(?m)a$", "(?R)a$", "^a$", "(?i)straße",
        "(?i)ǅ", "\\p{Greek}", "\\pL+\\d", "[[:alpha:]]", "(?u:\\w)+$", "[^\\n]+$", "\\s", "a{300}", "(a|b){2,3}c",
        "^(?:x|)$", "", "[a-c&&b-d]", "[\\x{1F600}-\\x{1F64F}]", "é😀$", "\\x{0}", "(?s:.)\\n", ".\\r", "\\.",
        "[\\[\\]^-]", "(?x) a b # comment", "^\\d{2,}?$", "\\A\\z",
    ];
    #[rustfmt::skip]
    let strings = [
        "foo", "a foo b", "foobar", "éo", "o", "xo ox", "a\r\nb", "a\rb", "a\nb", "b\r\n", "a", "STRASSE", "ǆ", "αβγ",
        "x1", "a]^-", "😀", "é😀", "", "abac", "a.b", " ", "٣٤", "ab",
    ];
    let mut docs: Vec<Value> = strings.iter().map(|it| json!({"a": it, "c": [it]})).collect();
    docs.push(json!({"a": "a".repeat(300)}));
    let queries = patterns.iter().flat_map(|it| [json!({"a": {"$regex": it}}), json!({"c": {"$regex": it}})]);
    run(1, Just((docs, queries.map(|q| (q, json!([]))).collect())));
}

/// Any JSON built from operator and field names: most of it is rejected, the rest must still agree.
#[test]
fn whatever_parses_agrees() {
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
    let leaf = prop_oneof![query_scalar(), Just(json!("i")), Just(json!("^a"))];
    let q = leaf.prop_recursive(4, 24, 3, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map(names.clone(), inner, 0..3)
                .prop_map(|it| Value::Object(it.into_iter().collect())),
        ]
    });
    let parsing = q.prop_filter("parses", |q| Filter::parse(q).is_ok()).prop_map(|q| vec![(q, json!([]))]);
    run(500, (prop::collection::vec(doc(), 10..20), parsing));
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
        json!({"id": "X", "count": 0.5, "title": "line\nbreak"}),
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
        (json!({"title": {"$regex": "^A", "$options": "i"}}), json!([{"sortBy": "title"}])),
        (json!({"title": {"$regex": "e.b"}}), json!([])),
        (json!({"title": {"$regex": "e.b", "$options": "s"}}), json!([])),
        (json!({}), json!([{"sortBy": "title"}, {"sortBy": "count", "direction": "desc"}])),
    ];
    let expected_ids: Vec<Vec<i64>> = vec![
        vec![0],
        vec![0],
        vec![0, 1],
        vec![2],
        vec![0, 1, 3, 4, 5, 6],
        vec![2, 0],
        vec![2, 3],
        vec![4],
        vec![1, 2],
        vec![],
        vec![6],
        vec![4, 5, 1, 2, 0, 6, 3],
    ];
    let strategy = Just((docs, queries.clone()));
    for ((q, sort), ids) in queries.iter().zip(&expected_ids) {
        let (filter, sort) = (Filter::parse(q).unwrap(), Sort::parse(sort).unwrap());
        assert_eq!(&expected(&strategy.0.0, &filter, &sort), ids, "evaluator, q = {q}");
    }
    run(1, strategy);
}

#[test]
fn largest_and_deepest_filters_run() {
    let values: Vec<Value> = (0..1000).map(|it| json!(format!("v{it}"))).collect();
    let largest = json!({"a": {"$in": values}, "b": {"$nin": [1, 2, 3]}});
    let mut deepest = json!({"a": {"$elemMatch": {"$not": {"$gt": 1}}}});
    for level in 0.. {
        let next = match level % 3 {
            0 => json!({"$or": [deepest.clone(), {"b": null}]}),
            1 => json!({"a": {"$elemMatch": deepest.clone()}}),
            _ => json!({"$nor": [deepest.clone()]}),
        };
        if Filter::parse(&next).is_err() {
            break;
        }
        deepest = next;
    }
    let docs = vec![
        json!({"a": "v999"}),
        json!({"a": ["x", "v0"], "b": 2}),
        json!({"a": "v1000"}),
        json!({"a": [{"a": [0]}]}),
        json!({"b": 1}),
    ];
    run(1, Just((docs, vec![(largest, json!([])), (deepest, json!([]))])));
}
