//! Search on PostgreSQL through the store's traits: the embedded store's search tests (`sqlite/search/tests.rs`)
//! where they are about answers rather than FTS5, and the phrase syntax against the reference evaluator
//! (`Expr::matches`) on random corpora and phrases. Each test has a database of its own.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};
use updraft_query::Sort;
use updraft_query::search::{Expr, Operator};

use super::super::test_database::TestDatabase;
use crate::postgres::PostgresStore;
use crate::{Access, Acl, AclChange, Author, Collection, Page, Schemas, Search, SearchQuery, Store, Subject};

const BACKEND: &str = "5376019e698b3c6ad500095a";

fn public() -> Acl {
    Acl { read: vec![Subject::Everyone], ..Acl::default() }
}

async fn searched(store: &PostgresStore, object_type: &str, indexed: &[&str], searched: &[&str]) {
    let rules = crate::SchemaRules {
        indexed: indexed.iter().map(|p| p.to_string()).collect(),
        cascades: Vec::new(),
        searched: searched.iter().map(|p| p.to_string()).collect(),
    };
    store.put_schema(BACKEND, object_type, json!({}), &rules).await.unwrap();
}

async fn insert(store: &PostgresStore, object_type: &str, doc: Value, acl: Acl) -> String {
    let at = Collection { backend: BACKEND, object_type };
    let doc = store.insert(at, doc.as_object().unwrap().clone(), Author::default(), acl).await.unwrap();
    doc["id"].as_str().unwrap().to_owned()
}

struct Ask<'a> {
    types: &'a [&'a str],
    phrase: &'a str,
    properties: Option<&'a [&'a str]>,
    access: Access<'a>,
    default: Operator,
}

impl<'a> Ask<'a> {
    fn new(types: &'a [&'a str], phrase: &'a str) -> Ask<'a> {
        Ask { types, phrase, properties: None, access: Access::Everything, default: Operator::Or }
    }

    async fn ids(&self, store: &PostgresStore) -> Vec<String> {
        let (types, properties, expr, sort) = self.parts();
        let query = SearchQuery { object_types: &types, phrase: &expr, properties: properties.as_deref(), sort: &sort };
        let found = store.search(BACKEND, query, Page { limit: 1000, offset: 0 }, self.access).await.unwrap();
        let count = store.search_count(BACKEND, query, self.access).await.unwrap();
        assert_eq!(count as usize, found.len(), "{}: count and page agree", self.phrase);
        found.iter().map(|doc| doc["id"].as_str().unwrap().to_owned()).collect()
    }

    async fn sorted_ids(&self, store: &PostgresStore) -> Vec<String> {
        sorted(self.ids(store).await)
    }

    fn parts(&self) -> (Vec<String>, Option<Vec<String>>, Expr, Sort) {
        let types = self.types.iter().map(|t| t.to_string()).collect();
        let properties = self.properties.map(|p| p.iter().map(|p| p.to_string()).collect());
        (types, properties, Expr::parse(self.phrase, self.default).unwrap(), Sort { keys: Vec::new() })
    }
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

/// Each object of a searched collection has one search row, no more.
async fn assert_search_rows(store: &PostgresStore, objects: i64) {
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM search_texts").fetch_one(&store.pool).await.unwrap();
    assert_eq!(n, objects);
}

#[tokio::test]
async fn words_phrases_wildcards_and_accents_across_two_types() {
    let database = TestDatabase::create().await;
    let store = database.open().await;
    searched(&store, "objects.pets", &["name", "note", "age"], &["name", "note"]).await;
    searched(&store, "objects.toys", &["label"], &["label"]).await;
    let cat = insert(&store, "objects.pets", json!({"name": "Tom", "note": "a grey cat", "age": 3}), public()).await;
    let dog = insert(&store, "objects.pets", json!({"name": "Rex", "note": "a loud dog"}), public()).await;
    let toy = insert(&store, "objects.toys", json!({"label": "Catapult for the café"}), public()).await;
    let both = ["objects.pets", "objects.toys"];

    assert_eq!(Ask::new(&both, "cat").ids(&store).await, [cat.as_str()]);
    assert_eq!(Ask::new(&both, "cat OR dog").sorted_ids(&store).await, sorted(vec![cat.clone(), dog.clone()]));
    assert_eq!(Ask::new(&both, "cat*").sorted_ids(&store).await, sorted(vec![cat.clone(), toy.clone()]));
    assert_eq!(Ask::new(&both, "*apul*").ids(&store).await, [toy.as_str()]);
    assert_eq!(Ask::new(&both, "CAFE").ids(&store).await, [toy.as_str()]);
    assert_eq!(Ask::new(&both, "*AFÉ").ids(&store).await, [toy.as_str()]);
    assert_eq!(Ask::new(&both, "\"grey cat\"").ids(&store).await, [cat.as_str()]);
    assert!(Ask::new(&both, "\"cat grey\"").ids(&store).await.is_empty());
    assert_eq!(Ask::new(&both, "a AND NOT dog").ids(&store).await, [cat.as_str()]);
    assert_eq!(Ask::new(&both, "*loud* -tom").ids(&store).await, [dog.as_str()], "a negated term excludes");
    assert_eq!(Ask::new(&both, "tom OR NOT *oud*").ids(&store).await.len(), 2, "Tom, and everything without loud");
    assert_eq!(Ask::new(&both, "*").ids(&store).await.len(), 3);
    // Only searched properties, and only those asked for.
    assert!(Ask::new(&both, "3").ids(&store).await.is_empty(), "age is not a searched property");
    let only_name = Ask { properties: Some(&["name"]), ..Ask::new(&both, "cat OR rex") };
    assert_eq!(only_name.ids(&store).await, [dog.as_str()]);
    // Only the types asked for.
    assert_eq!(Ask::new(&["objects.toys"], "cat*").ids(&store).await, [toy.as_str()]);
    // The strings of an array are searched as one text, as SQLite joins them.
    let listed = insert(&store, "objects.toys", json!({"label": ["first part", "second", 7]}), public()).await;
    assert_eq!(Ask::new(&["objects.toys"], "\"part second\"").ids(&store).await, [listed.as_str()]);
    assert!(Ask::new(&["objects.toys"], "7").ids(&store).await.is_empty());
    // Another backend's objects are never found.
    let elsewhere = Collection { backend: "5376019e698b3c6ad500095b", object_type: "objects.toys" };
    store
        .insert(elsewhere, json!({"label": "cat"}).as_object().unwrap().clone(), Author::default(), public())
        .await
        .unwrap();
    assert_eq!(Ask::new(&["objects.toys"], "*").ids(&store).await.len(), 2);
    // `İ` folds to `i` and a combining dot, which is no letter: as for the reference, `İx` is in no text.
    let dotted = insert(&store, "objects.toys", json!({"label": "İx"}), public()).await;
    assert!(!Expr::parse("İx", Operator::Or).unwrap().matches(&["İx"]));
    assert!(Ask::new(&["objects.toys"], "İx").ids(&store).await.is_empty());
    assert_eq!(Ask::new(&["objects.toys"], "x").ids(&store).await, [dotted.as_str()]);
    // A word too long for the GIN index's lexemes: the row is checked exactly by every search.
    let long = format!("{} catalogue", "z".repeat(300));
    let long = insert(&store, "objects.toys", json!({ "label": long }), public()).await;
    assert_eq!(Ask::new(&["objects.toys"], "catalogue").ids(&store).await, [long.as_str()]);
    assert_eq!(Ask::new(&["objects.toys"], "zz*").ids(&store).await, [long.as_str()]);
    assert!(Ask::new(&["objects.toys"], "\"catalogue zz\"").ids(&store).await.is_empty());
    let terms: (String,) = sqlx::query_as("SELECT terms::text FROM search_texts WHERE id = $1")
        .bind(&long)
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(terms.0, "'!'");
}

/// A write and a change of the searched properties on two nodes at once: whichever locks the collection's row
/// first, the object ends up indexed with the new properties.
#[tokio::test]
async fn a_write_racing_a_change_of_the_searched_properties_is_indexed_with_the_new_ones() {
    let database = TestDatabase::create().await;
    let store = std::sync::Arc::new(database.open().await);
    searched(&store, "objects.notes", &[], &["a"]).await;
    let notes = Collection { backend: BACKEND, object_type: "objects.notes" };
    let both = || vec!["a".to_owned(), "b".to_owned()];

    // The writer first: the change waits for it, then reads its object.
    let mut writer = store.pool.begin().await.unwrap();
    let id = updraft_core::ids::ObjectId::generate();
    let doc = json!({"id": id.to_string(), "objectType": "objects.notes", "a": "old", "b": "first"});
    super::super::insert_doc(&mut writer, notes, id, doc.as_object().unwrap(), 1, &public(), None).await.unwrap();
    let change = tokio::spawn({
        let store = store.clone();
        async move {
            let mut tx = store.pool.begin().await.unwrap();
            super::reindex(&mut tx, BACKEND, "objects.notes", &both()).await.unwrap();
            tx.commit().await.unwrap();
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!change.is_finished(), "the change waits for the writer");
    writer.commit().await.unwrap();
    change.await.unwrap();
    assert_eq!(Ask::new(&["objects.notes"], "first").ids(&store).await, [id.to_string()]);

    // The change first: the writer waits for it, then indexes with the properties it made.
    let mut change = store.pool.begin().await.unwrap();
    super::reindex(&mut change, BACKEND, "objects.notes", &["b".to_owned()]).await.unwrap();
    let write = tokio::spawn({
        let store = store.clone();
        async move { insert(&store, "objects.notes", json!({"a": "x", "b": "second"}), public()).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!write.is_finished(), "the writer waits for the change");
    change.commit().await.unwrap();
    let second = write.await.unwrap();
    assert_eq!(Ask::new(&["objects.notes"], "second").ids(&store).await, [second]);
    assert_search_rows(&store, 2).await;
}

#[tokio::test]
async fn relevance_ranks_a_page_and_an_asked_sort_overrides_it() {
    let database = TestDatabase::create().await;
    let store = database.open().await;
    searched(&store, "objects.notes", &["text", "n"], &["text"]).await;
    let once =
        insert(&store, "objects.notes", json!({"text": "fox and a long tail of other words here", "n": 1}), public())
            .await;
    let thrice = insert(&store, "objects.notes", json!({"text": "fox fox fox", "n": 2}), public()).await;
    assert_eq!(Ask::new(&["objects.notes"], "fox").ids(&store).await, [thrice.clone(), once.clone()]);
    // The best match is not Bob's to read: his page of one is the next best, not an empty page.
    let anns = Acl { read: vec![Subject::user("ann")], ..Acl::default() };
    let best = insert(&store, "objects.notes", json!({"text": "fox fox fox fox", "n": 3}), anns).await;
    let expr = Expr::parse("fox", Operator::Or).unwrap();
    let (types, sort) = (vec!["objects.notes".to_owned()], Sort { keys: Vec::new() });
    let query = SearchQuery { object_types: &types, phrase: &expr, properties: None, sort: &sort };
    let one = Page { limit: 1, offset: 0 };
    let bob = [Subject::Everyone, Subject::user("bob")];
    let page = store.search(BACKEND, query, one, Access::Subjects(&bob)).await.unwrap();
    assert_eq!(page[0]["id"], thrice.as_str());
    let ann = [Subject::Everyone, Subject::user("ann")];
    let page = store.search(BACKEND, query, one, Access::Subjects(&ann)).await.unwrap();
    assert_eq!(page[0]["id"], best.as_str());

    let sort = Sort::parse(&json!([{"sortBy": "n", "direction": "asc"}])).unwrap();
    let query = SearchQuery { object_types: &types, phrase: &expr, properties: None, sort: &sort };
    let page = |offset| Page { limit: 1, offset };
    let first = store.search(BACKEND, query, page(0), Access::Everything).await.unwrap();
    let second = store.search(BACKEND, query, page(1), Access::Everything).await.unwrap();
    assert_eq!((first[0]["id"].as_str().unwrap(), second[0]["id"].as_str().unwrap()), (once.as_str(), thrice.as_str()));
}

#[tokio::test]
async fn results_are_filtered_by_acl_inside_the_query() {
    let database = TestDatabase::create().await;
    let store = database.open().await;
    searched(&store, "objects.notes", &["text"], &["text"]).await;
    let ann = vec![Subject::Everyone, Subject::user("ann")];
    let bob = vec![Subject::Everyone, Subject::user("bob")];
    let anns_acl = Acl { read: vec![Subject::user("ann")], ..Acl::default() };
    let anns = insert(&store, "objects.notes", json!({"text": "secret plan"}), anns_acl).await;
    let shared = insert(&store, "objects.notes", json!({"text": "public plan"}), public()).await;
    let ask = |access| Ask { access, ..Ask::new(&["objects.notes"], "plan") };
    assert_eq!(ask(Access::Subjects(&ann)).sorted_ids(&store).await, sorted(vec![anns.clone(), shared.clone()]));
    assert_eq!(ask(Access::Subjects(&bob)).ids(&store).await, [shared.as_str()]);
    assert_eq!(ask(Access::Subjects(&[Subject::Everyone])).ids(&store).await, [shared.as_str()]);
    assert!(ask(Access::Subjects(&[])).ids(&store).await.is_empty());
    let inside = Ask { access: Access::Subjects(&bob), ..Ask::new(&["objects.notes"], "*ecre*") };
    assert!(inside.ids(&store).await.is_empty());

    // An ACL change is seen by the next search, in counts (which `ids` checks) and pages alike.
    let notes = Collection { backend: BACKEND, object_type: "objects.notes" };
    let shared_id = updraft_core::ids::ObjectId::parse(&shared).unwrap();
    let private = Acl { read: vec![Subject::user("ann")], admin: vec![Subject::user("ann")], ..Acl::default() };
    store.change_acl(notes, shared_id, AclChange::Replace(private), Access::Everything).await.unwrap().unwrap();
    assert!(ask(Access::Subjects(&bob)).ids(&store).await.is_empty());
    assert!(ask(Access::Subjects(&[Subject::Everyone])).ids(&store).await.is_empty());
    let lan = Ask { access: Access::Subjects(&bob), ..Ask::new(&["objects.notes"], "*lan*") };
    assert!(lan.ids(&store).await.is_empty());
    assert_eq!(ask(Access::Subjects(&ann)).ids(&store).await.len(), 2);
    store.change_acl(notes, shared_id, AclChange::Add(public()), Access::Everything).await.unwrap().unwrap();
    assert_eq!(ask(Access::Subjects(&bob)).ids(&store).await, [shared.as_str()]);
    assert_search_rows(&store, 2).await;
}

#[tokio::test]
async fn better_matches_rank_first_shorter_rows_and_rarer_words_weigh_more() {
    let database = TestDatabase::create().await;
    let store = database.open().await;
    searched(&store, "objects.notes", &["text"], &["text"]).await;
    let long = "cat one two three four five six seven eight nine ten eleven twelve";
    let long = insert(&store, "objects.notes", json!({ "text": long }), public()).await;
    let short = insert(&store, "objects.notes", json!({"text": "cat and dog"}), public()).await;
    let twice = insert(&store, "objects.notes", json!({"text": "cat cat sat"}), public()).await;
    let rare = insert(&store, "objects.notes", json!({"text": "rare x"}), public()).await;
    for i in 0..20 {
        insert(&store, "objects.notes", json!({"text": format!("common {i}")}), public()).await;
    }
    // Twice beats once; among single hits, the shorter row; a page of the ranking is the ranking's.
    assert_eq!(Ask::new(&["objects.notes"], "cat").ids(&store).await, [twice.as_str(), short.as_str(), long.as_str()]);
    let (t, p, expr, sort) = Ask::new(&["objects.notes"], "cat").parts();
    let query = SearchQuery { object_types: &t, phrase: &expr, properties: p.as_deref(), sort: &sort };
    let second = store.search(BACKEND, query, Page { limit: 1, offset: 1 }, Access::Everything).await.unwrap();
    assert_eq!(second[0]["id"], short.as_str());
    // Of two phrases, the rarer weighs more.
    assert_eq!(Ask::new(&["objects.notes"], "common rare").ids(&store).await[0], rare);
    // Text inside words has no relevance: newest first.
    let inside = Ask::new(&["objects.notes"], "*cat* OR *are*").ids(&store).await;
    assert_eq!(inside, [rare.as_str(), twice.as_str(), short.as_str(), long.as_str()]);
}

#[tokio::test]
async fn the_index_follows_updates_deletes_and_schema_changes() {
    let database = TestDatabase::create().await;
    let store = database.open().await;
    let notes = Collection { backend: BACKEND, object_type: "objects.notes" };
    // Objects first, then the schema: the backfill indexes them.
    let first = insert(&store, "objects.notes", json!({"title": "alpha", "body": "one"}), public()).await;
    searched(&store, "objects.notes", &["title"], &["title"]).await;
    let second = insert(&store, "objects.notes", json!({"title": "alpha beta", "body": "two"}), public()).await;
    let types = ["objects.notes"];
    assert_eq!(Ask::new(&types, "alpha").sorted_ids(&store).await, sorted(vec![first.clone(), second.clone()]));
    assert!(Ask::new(&types, "one").ids(&store).await.is_empty());

    // A new searched property moves the slots: everything is indexed again.
    searched(&store, "objects.notes", &["body", "title"], &["body", "title"]).await;
    assert_eq!(Ask::new(&types, "one").ids(&store).await, [first.as_str()]);
    assert_eq!(Ask::new(&types, "*lph*").ids(&store).await.len(), 2);

    let id = updraft_core::ids::ObjectId::parse(&first).unwrap();
    let patch = crate::Patch::Merge(json!({"title": "gamma"}).as_object().unwrap().clone());
    store.update(notes, id, patch, Author::default(), Access::Everything).await.unwrap().unwrap();
    assert_eq!(Ask::new(&types, "alpha").ids(&store).await, [second.as_str()]);
    assert_eq!(Ask::new(&types, "gamma").ids(&store).await, [first.as_str()]);

    let id = updraft_core::ids::ObjectId::parse(&second).unwrap();
    store.delete(notes, id, Author::default(), Access::Everything).await.unwrap().unwrap();
    assert!(Ask::new(&types, "beta").ids(&store).await.is_empty());
    let third = insert(&store, "objects.notes", json!({"title": "delta"}), public()).await;
    assert_eq!(Ask::new(&types, "delta").ids(&store).await, [third.as_str()]);
    assert!(Ask::new(&types, "beta OR alpha").ids(&store).await.is_empty());
    assert_search_rows(&store, 2).await;

    // No longer searched: refused, and the rows are gone (a schema that searches again finds only what is there).
    searched(&store, "objects.notes", &["title"], &[]).await;
    assert_search_rows(&store, 0).await;
    let (t, p, expr, sort) = Ask::new(&types, "delta").parts();
    let query = SearchQuery { object_types: &t, phrase: &expr, properties: p.as_deref(), sort: &sort };
    let err = store.search(BACKEND, query, Page { limit: 10, offset: 0 }, Access::Everything).await.unwrap_err();
    assert!(err.to_string().contains("declared `indexed`"), "{err}");
    store.delete_schema(BACKEND, "objects.notes").await.unwrap();
    searched(&store, "objects.notes", &["title"], &["title"]).await;
    let fresh = insert(&store, "objects.notes", json!({"title": "delta"}), public()).await;
    assert_eq!(Ask::new(&types, "delta").ids(&store).await, [fresh]);
    // More searched properties than a type may have: refused as by the embedded store.
    let many: Vec<String> = (0..=crate::MAX_SEARCHED_PER_TYPE).map(|i| format!("p{i}")).collect();
    let rules = crate::SchemaRules { searched: many, ..crate::SchemaRules::default() };
    let err = store.put_schema(BACKEND, "objects.many", json!({}), &rules).await.unwrap_err();
    assert!(err.to_string().contains("searched properties per object type"), "{err}");
}

/// The SQLite test's vocabulary (accents, a shared stem, a word with digits), and a letter whose lower case
/// takes a combining mark.
fn corpus() -> impl Strategy<Value = Vec<(String, String)>> {
    let word = prop::sample::select(vec!["cat", "Cats", "café", "cafe", "dog", "dôgma", "bobcat", "tree", "b2b", "İx"]);
    let text = prop::collection::vec(word, 0..5).prop_map(|w| w.join(" "));
    prop::collection::vec((text.clone(), text), 1..8)
}

fn phrase() -> impl Strategy<Value = String> {
    let term = prop::sample::select(vec![
        "cat",
        "cats",
        "cafe",
        "CAFÉ",
        "dog",
        "ca*",
        "*at*",
        "*ogm*",
        "\"cat cafe\"",
        "\"dog tree\"",
        "tree*",
        "*",
        "-dog",
        "b2b",
        "*ca*",
        "\"cats cafe\"*",
        "(cat OR tree)",
        "NOT cafe",
        "İx",
        "*İx*",
        "x",
    ]);
    let op = prop::sample::select(vec![" ", " AND ", " OR ", " AND NOT "]);
    (term.clone(), prop::collection::vec((op, term), 0..3))
        .prop_map(|(first, rest)| rest.into_iter().fold(first.to_owned(), |acc, (op, term)| format!("{acc}{op}{term}")))
}

/// The store finds exactly what the reference evaluator matches, over both properties or one, with either
/// default operator; each case in a collection of its own.
#[test]
fn search_agrees_with_the_reference_evaluator() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let database = runtime.block_on(TestDatabase::create());
    let store = runtime.block_on(database.open());
    let case = std::cell::Cell::new(0);
    let mut runner = TestRunner::new(Config { cases: 96, ..Config::default() });
    let strategy = (corpus(), phrase(), any::<bool>(), any::<bool>());
    let outcome = runner.run(&strategy, |(docs, phrase, and, only_b)| {
        let default = if and { Operator::And } else { Operator::Or };
        if Expr::parse(&phrase, default).is_err() {
            return Ok(());
        }
        case.set(case.get() + 1);
        let object_type = format!("objects.docs{}", case.get());
        runtime.block_on(async {
            searched(&store, &object_type, &["a", "b"], &["a", "b"]).await;
            let expr = Expr::parse(&phrase, default).unwrap();
            let mut expected = Vec::new();
            for (a, b) in &docs {
                let id = insert(&store, &object_type, json!({"a": a, "b": b}), public()).await;
                let texts: Vec<&str> = if only_b { vec![b] } else { vec![a, b] };
                if expr.matches(&texts) {
                    expected.push(id);
                }
            }
            let types = [object_type.as_str()];
            let ask = Ask { properties: only_b.then_some(&["b"][..]), default, ..Ask::new(&types, &phrase) };
            prop_assert_eq!(
                ask.sorted_ids(&store).await,
                sorted(expected),
                "{:?} ({:?}) over {:?}",
                phrase,
                expr,
                docs
            );
            Ok(())
        })
    });
    runtime.block_on(store.close());
    drop(database);
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}
