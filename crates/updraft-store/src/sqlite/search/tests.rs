//! Search through the store's traits: what the triggers and the backfill keep, the phrase syntax against the
//! reference evaluator, ACLs, counts and pages.

use proptest::prelude::*;
use serde_json::{Value, json};
use updraft_query::Sort;
use updraft_query::search::{Expr, Operator};

use crate::sqlite::{SqliteOptions, SqliteStore};
use crate::{Access, Acl, AclChange, Author, Collection, Page, Schemas, Search, SearchQuery, Store, Subject};

const BACKEND: &str = "5376019e698b3c6ad500095a";

async fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(&SqliteOptions { path: dir.path().join("eds.sqlite3"), readers: 2 }).await.unwrap()
}

fn public() -> Acl {
    Acl { read: vec![Subject::Everyone], ..Acl::default() }
}

async fn searched(store: &SqliteStore, object_type: &str, indexed: &[&str], searched: &[&str]) {
    let rules = crate::SchemaRules {
        indexed: indexed.iter().map(|p| p.to_string()).collect(),
        cascades: Vec::new(),
        searched: searched.iter().map(|p| p.to_string()).collect(),
    };
    store.put_schema(BACKEND, object_type, json!({}), &rules).await.unwrap();
}

async fn insert(store: &SqliteStore, object_type: &str, doc: Value, acl: Acl) -> String {
    let at = Collection { backend: BACKEND, object_type };
    let doc = store.insert(at, doc.as_object().unwrap().clone(), Author::default(), acl).await.unwrap();
    doc["id"].as_str().unwrap().to_owned()
}

struct Ask<'a> {
    types: &'a [&'a str],
    phrase: &'a str,
    properties: Option<&'a [&'a str]>,
    access: Access<'a>,
}

impl<'a> Ask<'a> {
    fn new(types: &'a [&'a str], phrase: &'a str) -> Ask<'a> {
        Ask { types, phrase, properties: None, access: Access::Everything }
    }

    async fn ids(&self, store: &SqliteStore) -> Vec<String> {
        let (types, properties, expr, sort) = self.parts();
        let query = SearchQuery { object_types: &types, phrase: &expr, properties: properties.as_deref(), sort: &sort };
        let found = store.search(BACKEND, query, Page { limit: 1000, offset: 0 }, self.access).await.unwrap();
        let count = store.search_count(BACKEND, query, self.access).await.unwrap();
        assert_eq!(count as usize, found.len(), "{}: count and page agree", self.phrase);
        found.iter().map(|doc| doc["id"].as_str().unwrap().to_owned()).collect()
    }

    async fn sorted_ids(&self, store: &SqliteStore) -> Vec<String> {
        let mut ids = self.ids(store).await;
        ids.sort();
        ids
    }

    fn parts(&self) -> (Vec<String>, Option<Vec<String>>, Expr, Sort) {
        let types = self.types.iter().map(|t| t.to_string()).collect();
        let properties = self.properties.map(|p| p.iter().map(|p| p.to_string()).collect());
        (types, properties, Expr::parse(self.phrase, Operator::Or).unwrap(), Sort { keys: Vec::new() })
    }
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

#[tokio::test]
async fn words_phrases_wildcards_and_accents_across_two_types() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
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
    assert_eq!(Ask::new(&["objects.toys"], "cat*").ids(&store).await, [toy]);
}

#[tokio::test]
async fn relevance_ranks_a_page_and_an_asked_sort_overrides_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
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
    let expr = Expr::parse("fox", Operator::Or).unwrap();
    let types = vec!["objects.notes".to_owned()];
    let query = SearchQuery { object_types: &types, phrase: &expr, properties: None, sort: &sort };
    let page = |offset| Page { limit: 1, offset };
    let first = store.search(BACKEND, query, page(0), Access::Everything).await.unwrap();
    let second = store.search(BACKEND, query, page(1), Access::Everything).await.unwrap();
    assert_eq!((first[0]["id"].as_str().unwrap(), second[0]["id"].as_str().unwrap()), (once.as_str(), thrice.as_str()));
}

#[tokio::test]
async fn results_are_filtered_by_acl_inside_the_query() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    searched(&store, "objects.notes", &["text"], &["text"]).await;
    let ann = vec![Subject::Everyone, Subject::user("ann")];
    let bob = vec![Subject::Everyone, Subject::user("bob")];
    let anns = insert(
        &store,
        "objects.notes",
        json!({"text": "secret plan"}),
        Acl { read: vec![Subject::user("ann")], ..Acl::default() },
    )
    .await;
    let shared = insert(&store, "objects.notes", json!({"text": "public plan"}), public()).await;
    let ask = |access| Ask { access, ..Ask::new(&["objects.notes"], "plan") };
    assert_eq!(ask(Access::Subjects(&ann)).sorted_ids(&store).await, sorted(vec![anns.clone(), shared.clone()]));
    assert_eq!(ask(Access::Subjects(&bob)).ids(&store).await, [shared.as_str()]);
    assert_eq!(ask(Access::Subjects(&[Subject::Everyone])).ids(&store).await, [shared.as_str()]);
    assert!(ask(Access::Subjects(&[])).ids(&store).await.is_empty());
    // The set path (text inside words) filters alike.
    let inside = Ask { access: Access::Subjects(&bob), ..Ask::new(&["objects.notes"], "*ecre*") };
    assert!(inside.ids(&store).await.is_empty());

    // The rows carry the public bit, so a count checks no ACL of a public row: taking the access away moves the
    // row, and the object is gone for everyone else at once, in counts (which `ids` checks) and pages alike.
    let notes = Collection { backend: BACKEND, object_type: "objects.notes" };
    let shared_id = updraft_core::ids::ObjectId::parse(&shared).unwrap();
    let private = Acl { read: vec![Subject::user("ann")], admin: vec![Subject::user("ann")], ..Acl::default() };
    store.change_acl(notes, shared_id, AclChange::Replace(private), Access::Everything).await.unwrap().unwrap();
    assert!(ask(Access::Subjects(&bob)).ids(&store).await.is_empty());
    assert!(ask(Access::Subjects(&[Subject::Everyone])).ids(&store).await.is_empty());
    assert!(
        Ask { access: Access::Subjects(&bob), ..Ask::new(&["objects.notes"], "*lan*") }.ids(&store).await.is_empty()
    );
    assert_eq!(ask(Access::Subjects(&ann)).ids(&store).await.len(), 2);
    store.change_acl(notes, shared_id, AclChange::Add(public()), Access::Everything).await.unwrap().unwrap();
    assert_eq!(ask(Access::Subjects(&bob)).ids(&store).await, [shared.as_str()]);
    assert_full_text_rows(&store, 2).await;
}

/// Each table holds `objects` rows, no more: a row a write failed to move would answer for an object it no
/// longer describes.
async fn assert_full_text_rows(store: &SqliteStore, objects: i64) {
    for table in ["search_words", "search_grams"] {
        let sql = format!("SELECT count(*) FROM {table}_docsize");
        let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_one(&store.writer).await.unwrap();
        assert_eq!(n, objects, "{table}");
    }
}

#[tokio::test]
async fn better_matches_rank_first_shorter_rows_among_equals() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    searched(&store, "objects.notes", &["text"], &["text"]).await;
    let long = insert(
        &store,
        "objects.notes",
        json!({"text": "cat one two three four five six seven eight nine ten eleven twelve"}),
        public(),
    )
    .await;
    let short = insert(&store, "objects.notes", json!({"text": "cat and dog"}), public()).await;
    let twice = insert(&store, "objects.notes", json!({"text": "cat cat sat"}), public()).await;
    for i in 0..20 {
        insert(&store, "objects.notes", json!({"text": format!("filler {i}")}), public()).await;
    }
    // Twice beats once; among single hits, the shorter row; the bounded read and the whole read agree.
    assert_eq!(Ask::new(&["objects.notes"], "cat").ids(&store).await, [twice.as_str(), short.as_str(), long.as_str()]);
    let (t, p, expr, sort) = Ask::new(&["objects.notes"], "cat").parts();
    let query = SearchQuery { object_types: &t, phrase: &expr, properties: p.as_deref(), sort: &sort };
    let second = store.search(BACKEND, query, Page { limit: 1, offset: 1 }, Access::Everything).await.unwrap();
    assert_eq!(second[0]["id"], short.as_str());
}

#[tokio::test]
async fn phrases_are_weighed_by_their_remembered_frequencies() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    store.hot.frequencies().at_any_size();
    searched(&store, "objects.notes", &["text"], &["text"]).await;
    let common = insert(&store, "objects.notes", json!({"text": "common x"}), public()).await;
    let rare = insert(&store, "objects.notes", json!({"text": "rare x"}), public()).await;
    for i in 0..20 {
        insert(&store, "objects.notes", json!({"text": format!("common {i}")}), public()).await;
    }
    // The rarer word weighs more; the search remembers each phrase's frequency under its own text.
    let ask = Ask::new(&["objects.notes"], "common rare");
    assert_eq!(ask.ids(&store).await[0], rare);
    let rows = 22;
    assert_eq!(store.hot.frequencies().get("{p0} : \"common\"", rows), Some(21));
    assert_eq!(store.hot.frequencies().get("{p0} : \"rare\"", rows), Some(1));
    // What is remembered is what weighs: told the opposite, the search ranks the other way.
    store.hot.frequencies().put("{p0} : \"common\"", rows, 1);
    store.hot.frequencies().put("{p0} : \"rare\"", rows, 21);
    let ids = ask.ids(&store).await;
    assert_eq!(ids.last(), Some(&rare));
    assert!(ids.contains(&common));
    // A single phrase is weighed by nothing, so its frequency is neither counted nor remembered.
    Ask::new(&["objects.notes"], "x").ids(&store).await;
    assert_eq!(store.hot.frequencies().get("{p0} : \"x\"", rows), None);
}

#[tokio::test]
async fn the_index_follows_updates_deletes_and_schema_changes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
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

    // Deleting the newest object frees its rowid for the next insert: no stale row may answer for it.
    let id = updraft_core::ids::ObjectId::parse(&second).unwrap();
    store.delete(notes, id, Author::default(), Access::Everything).await.unwrap().unwrap();
    assert!(Ask::new(&types, "beta").ids(&store).await.is_empty());
    let third = insert(&store, "objects.notes", json!({"title": "delta"}), public()).await;
    assert_eq!(Ask::new(&types, "delta").ids(&store).await, [third.as_str()]);
    assert!(Ask::new(&types, "beta OR alpha").ids(&store).await.is_empty());
    assert_full_text_rows(&store, 2).await;

    // No longer searched: refused, and the rows are gone (a schema that searches again finds only what is there).
    searched(&store, "objects.notes", &["title"], &[]).await;
    let (t, p, expr, sort) = Ask::new(&types, "delta").parts();
    let query = SearchQuery { object_types: &t, phrase: &expr, properties: p.as_deref(), sort: &sort };
    let err = store.search(BACKEND, query, Page { limit: 10, offset: 0 }, Access::Everything).await.unwrap_err();
    assert!(err.to_string().contains("declared `indexed`"), "{err}");
    store.delete_schema(BACKEND, "objects.notes").await.unwrap();
    searched(&store, "objects.notes", &["title"], &["title"]).await;
    let fresh = insert(&store, "objects.notes", json!({"title": "delta"}), public()).await;
    assert_eq!(Ask::new(&types, "delta").ids(&store).await, [fresh]);
}

/// Words from a small vocabulary with accents and a shared stem, so that phrases, prefixes and text inside words
/// all find something.
fn corpus() -> impl Strategy<Value = Vec<(String, String)>> {
    let word = prop::sample::select(vec!["cat", "Cats", "café", "cafe", "dog", "dôgma", "bobcat", "tree", "b2b"]);
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
    ]);
    let op = prop::sample::select(vec![" ", " AND ", " OR ", " AND NOT "]);
    (term.clone(), prop::collection::vec((op, term), 0..3))
        .prop_map(|(first, rest)| rest.into_iter().fold(first.to_owned(), |acc, (op, term)| format!("{acc}{op}{term}")))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// The store finds exactly what the reference evaluator matches, on either property, with either default.
    #[test]
    fn search_agrees_with_the_reference_evaluator(docs in corpus(), phrase in phrase(), and in any::<bool>()) {
        let default = if and { Operator::And } else { Operator::Or };
        let Ok(expr) = Expr::parse(&phrase, default) else { return Ok(()) };
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store = open(&dir).await;
            searched(&store, "objects.docs", &["a", "b"], &["a", "b"]).await;
            let mut expected = Vec::new();
            for (a, b) in &docs {
                let id = insert(&store, "objects.docs", json!({"a": a, "b": b}), public()).await;
                if expr.matches(&[a, b]) {
                    expected.push(id);
                }
            }
            let types = vec!["objects.docs".to_owned()];
            let sort = Sort { keys: Vec::new() };
            let query = SearchQuery { object_types: &types, phrase: &expr, properties: None, sort: &sort };
            let found = store.search(BACKEND, query, Page { limit: 1000, offset: 0 }, Access::Everything).await.unwrap();
            let mut found: Vec<String> = found.iter().map(|d| d["id"].as_str().unwrap().to_owned()).collect();
            found.sort();
            expected.sort();
            prop_assert_eq!(found, expected, "{:?} ({:?}) over {:?}", phrase, expr, docs);
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn a_database_from_before_search_is_indexed_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    // As a release before search kept it: the schema declares an indexed string, and no slot exists.
    let schema = json!({"name": "notes", "properties": [{"name": "text", "type": "string", "indexed": true}]});
    let rules = crate::SchemaRules { indexed: vec!["text".into()], ..crate::SchemaRules::default() };
    store.put_schema(BACKEND, "objects.notes", schema, &rules).await.unwrap();
    let id = insert(&store, "objects.notes", json!({"text": "kept from before"}), public()).await;
    let (t, p, expr, sort) = Ask::new(&["objects.notes"], "kept").parts();
    let query = SearchQuery { object_types: &t, phrase: &expr, properties: p.as_deref(), sort: &sort };
    assert!(store.search(BACKEND, query, Page { limit: 10, offset: 0 }, Access::Everything).await.is_err());
    drop(store);

    let store = open(&dir).await;
    assert_eq!(Ask::new(&["objects.notes"], "kept").ids(&store).await, [id]);
}

#[tokio::test]
async fn the_merge_step_leaves_fewer_segments_and_the_same_answers() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    searched(&store, "objects.notes", &["text"], &["text"]).await;
    // One insert at a time: a batch each, a segment each, which FTS5 merges only in fours at insert time.
    for i in 0..40 {
        insert(&store, "objects.notes", json!({"text": format!("word{} common", i % 7)}), public()).await;
    }
    let segments = || async {
        let (n,): (i64,) = sqlx::query_as("SELECT count(DISTINCT segid) FROM search_words_idx")
            .fetch_one(&store.writer)
            .await
            .unwrap();
        n
    };
    let before = segments().await;
    let found = Ask::new(&["objects.notes"], "common").sorted_ids(&store).await;
    assert_eq!(found.len(), 40);
    let merged = super::merge(&store.writer, std::time::Duration::from_secs(5)).await.unwrap();
    let after = segments().await;
    assert!(merged > 0 && after < before, "{before} segments, {merged} steps, then {after}");
    assert_eq!(Ask::new(&["objects.notes"], "common").sorted_ids(&store).await, found);
    assert_eq!(Ask::new(&["objects.notes"], "word3").ids(&store).await.len(), 6);
    // Nothing left to merge: the next call ends at once.
    assert_eq!(super::merge(&store.writer, std::time::Duration::from_secs(5)).await.unwrap(), 0);
}
