//! Tests of the SQLite store through its traits: objects, ACLs, users and groups, the change log, query plans.

use serde_json::json;

use super::*;
use crate::{Schemas, Subject};

const ALL: Access<'static> = Access::Everything;

fn new_password(hash: &str) -> crate::NewPassword<'_> {
    crate::NewPassword { hash, keep_token: None }
}

fn template() -> Acl {
    let everyone = vec![Subject::Everyone];
    Acl { read: everyone.clone(), update: everyone.clone(), delete: everyone, admin: vec![Subject::Creator] }
}

const TODOS: Collection<'static> = Collection { backend: "5376019e698b3c6ad500095a", object_type: "objects.todos" };

pub(super) async fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(&SqliteOptions { path: dir.path().join("eds.sqlite3"), readers: 2 }).await.unwrap()
}

/// A schema's rules with `properties` indexed, and nothing else.
pub(super) fn indexed(properties: &[&str]) -> crate::SchemaRules {
    crate::SchemaRules {
        indexed: properties.iter().map(|p| p.to_string()).collect(),
        cascades: Vec::new(),
        searched: Vec::new(),
    }
}

fn props(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

#[tokio::test]
async fn objects_are_created_read_updated_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let created = store
        .insert(TODOS, props(json!({"title": "milk", "id": "forged"})), Author::user("u1"), template())
        .await
        .unwrap();
    let id = ObjectId::parse(created["id"].as_str().unwrap()).unwrap();
    assert_eq!(created["title"], "milk");
    assert_eq!(created["objectType"], "objects.todos");
    assert_eq!(created["createdAt"], created["updatedAt"]);

    assert_eq!(store.get(TODOS, id, ALL).await.unwrap(), Some(created.clone()));
    let other = Collection { object_type: "objects.lists", ..TODOS };
    assert_eq!(store.get(other, id, ALL).await.unwrap(), None, "an id names an object of one collection only");

    let updated = store
        .update(TODOS, id, crate::Patch::Merge(props(json!({"done": true}))), Author::user("u2"), ALL)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((updated["title"].clone(), updated["done"].clone()), (json!("milk"), json!(true)));
    assert_eq!(updated["updater"], json!({"id": "u2", "objectType": "users"}));
    assert_eq!(updated["createdAt"], created["createdAt"]);

    assert_eq!(store.delete(TODOS, id, Author::default(), ALL).await.unwrap(), Some(updated));
    assert_eq!(store.get(TODOS, id, ALL).await.unwrap(), None);
    assert_eq!(store.delete(TODOS, id, Author::default(), ALL).await.unwrap(), None);
    assert_eq!(store.update(TODOS, id, crate::Patch::Merge(Map::new()), Author::default(), ALL).await.unwrap(), None);
}

#[tokio::test]
async fn updated_at_only_grows_even_within_one_millisecond() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let created = store.insert(TODOS, Map::new(), Author::default(), template()).await.unwrap();
    let id = ObjectId::parse(created["id"].as_str().unwrap()).unwrap();
    let mut last = created["updatedAt"].as_str().unwrap().to_owned();
    for n in 0..20 {
        let doc = store
            .update(TODOS, id, crate::Patch::Merge(props(json!({"n": n}))), Author::default(), ALL)
            .await
            .unwrap()
            .unwrap();
        let at = doc["updatedAt"].as_str().unwrap().to_owned();
        assert!(at > last, "{at} after {last}");
        last = at;
    }
}

#[tokio::test]
async fn acknowledged_writes_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let created =
        store.insert(TODOS, props(json!({"kept": [1, {"a": null}]})), Author::default(), template()).await.unwrap();
    store.close().await;
    drop(store);
    let store = open(&dir).await;
    let id = ObjectId::parse(created["id"].as_str().unwrap()).unwrap();
    assert_eq!(store.get(TODOS, id, ALL).await.unwrap(), Some(created));
}

#[tokio::test]
async fn concurrent_writers_each_get_their_object() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(open(&dir).await);
    let tasks: Vec<_> = (0..50)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                store.insert(TODOS, props(json!({"n": n})), Author::default(), template()).await.unwrap()
            })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    let anyone = [Subject::Everyone];
    for task in tasks {
        let doc = task.await.unwrap();
        ids.insert(doc["id"].as_str().unwrap().to_owned());
        // On this single-threaded runtime all fifty are queued before the committer runs: one batch, one statement.
        let id = ObjectId::parse(doc["id"].as_str().unwrap()).unwrap();
        assert_eq!(store.get(TODOS, id, Access::Subjects(&anyone)).await.unwrap(), Some(doc.clone()));
        let acl = store.acl(TODOS, id, ALL).await.unwrap().unwrap();
        assert_eq!(acl, template().resolve_creator(None), "an anonymous creator resolves to nobody");
    }
    assert_eq!(ids.len(), 50);
}

#[tokio::test]
async fn apps_have_two_backends_and_take_their_data_when_deleted() {
    use crate::{Tenants, TokenGrant};
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let app = store.create_app("todos", &crate::AccessDefaults::for_environment).await.unwrap();
    let environments: Vec<&str> = app.backends.iter().map(|b| b.environment.as_str()).collect();
    assert_eq!(environments, ["development", "production"]);
    let dev = &app.backends[0];
    assert_ne!(dev.master_key, dev.secret);
    assert_eq!(store.backend(&dev.id).await.unwrap().as_ref(), Some(dev));
    assert_eq!(store.apps().await.unwrap(), vec![app.clone()]);

    let at = Collection { backend: &dev.id, object_type: "objects.todos" };
    let doc = store.insert(at, Map::new(), Author::default(), template()).await.unwrap();
    let id = ObjectId::parse(doc["id"].as_str().unwrap()).unwrap();
    store.put_schema(&dev.id, "objects.todos", json!({"name": "todos"}), &indexed(&["n"])).await.unwrap();
    assert_eq!(store.schema(&dev.id, "objects.todos").await.unwrap().as_deref(), Some(&json!({"name": "todos"})));
    assert!(store.delete_app(&app.id).await.unwrap());
    assert!(!store.delete_app(&app.id).await.unwrap());
    assert_eq!(store.backend(&dev.id).await.unwrap(), None);
    assert_eq!(store.get(at, id, ALL).await.unwrap(), None, "the app's objects went with it");
    assert_eq!(store.schema(&dev.id, "objects.todos").await.unwrap(), None, "and its schemas");
    let (indexes,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name LIKE 'sort:%'")
            .fetch_one(&store.readers)
            .await
            .unwrap();
    assert_eq!(indexes, 0, "and their indexes");

    let grant = TokenGrant { subject: "account".into(), expires_ms: now_ms() + 60_000 };
    store.save_token("h1", grant.clone()).await.unwrap();
    store.save_token("h2", TokenGrant { expires_ms: now_ms() - 1, ..grant.clone() }).await.unwrap();
    assert_eq!(store.token("h1").await.unwrap(), Some(grant));
    assert_eq!(store.token("h2").await.unwrap(), None, "expired");
    store.revoke_token("h1").await.unwrap();
    assert_eq!(store.token("h1").await.unwrap(), None, "revoked");
}

#[tokio::test]
async fn usernames_are_unique_per_backend_and_passwords_stay_out_of_documents() {
    use crate::{StoreError, USERS, Users};
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let john = store
        .insert_user("b1", props(json!({"username": "john"})), "hash1", Author::default(), template())
        .await
        .unwrap();
    assert!(john.get("password").is_none());
    let again =
        store.insert_user("b1", props(json!({"username": "john"})), "hash2", Author::default(), template()).await;
    assert!(matches!(again, Err(StoreError::Taken { property: "username" })), "{again:?}");
    store.insert_user("b2", props(json!({"username": "john"})), "hash3", Author::default(), template()).await.unwrap();

    let (doc, hash) = store.login("b1", "john").await.unwrap().unwrap();
    assert_eq!((doc, hash.as_str()), (john.clone(), "hash1"));
    let id = ObjectId::parse(john["id"].as_str().unwrap()).unwrap();
    let patch = |value: Value| crate::Patch::Merge(props(value));
    store
        .update_user("b1", id, patch(json!({"age": 3})), Some(new_password("hash4")), Author::default(), ALL)
        .await
        .unwrap()
        .unwrap();
    let (doc, hash) = store.login("b1", "john").await.unwrap().unwrap();
    assert_eq!((doc["age"].clone(), hash.as_str()), (json!(3), "hash4"));

    let jane =
        store.insert_user("b1", props(json!({"username": "jane"})), "h", Author::default(), template()).await.unwrap();
    let jane_id = ObjectId::parse(jane["id"].as_str().unwrap()).unwrap();
    let users = Collection { backend: "b1", object_type: USERS };
    let renamed = store
        .update(users, jane_id, crate::Patch::Merge(props(json!({"username": "john"}))), Author::default(), ALL)
        .await;
    assert!(matches!(renamed, Err(StoreError::Taken { .. })), "renaming onto a taken username fails");
    let renamed = store
        .update_user(
            "b1",
            jane_id,
            patch(json!({"username": "john"})),
            Some(new_password("h2")),
            Author::default(),
            ALL,
        )
        .await;
    assert!(matches!(renamed, Err(StoreError::Taken { .. })));
    let (_, hash) = store.login("b1", "jane").await.unwrap().unwrap();
    assert_eq!(hash, "h", "a failed update leaves the password as it was");

    store.delete(users, id, Author::default(), ALL).await.unwrap();
    assert_eq!(store.login("b1", "john").await.unwrap(), None);
}

#[tokio::test]
async fn memberships_follow_users_and_groups() {
    use crate::{Groups, Page, USERGROUPS, USERS, Users};
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let id_of = |doc: &Value| ObjectId::parse(doc["id"].as_str().unwrap()).unwrap();
    let john =
        store.insert_user("b", props(json!({"username": "john"})), "h", Author::default(), template()).await.unwrap();
    let jane =
        store.insert_user("b", props(json!({"username": "jane"})), "h", Author::default(), template()).await.unwrap();
    let groups = Collection { backend: "b", object_type: USERGROUPS };
    let admins = store.insert(groups, props(json!({"name": "admins"})), Author::default(), template()).await.unwrap();
    let (g, u1, u2) = (id_of(&admins), id_of(&john), id_of(&jane));

    assert!(store.add_member("b", g, u1).await.unwrap());
    assert!(!store.add_member("b", g, u1).await.unwrap(), "already a member");
    assert!(store.add_member("b", g, u2).await.unwrap());
    let page = Page { limit: 10, offset: 0 };
    assert_eq!(store.members("b", g, page, Access::Everything).await.unwrap(), vec![john.clone(), jane.clone()]);
    assert_eq!(
        store.members("b", g, Page { limit: 1, offset: 1 }, Access::Everything).await.unwrap(),
        vec![jane.clone()]
    );
    assert_eq!(store.count_members("b", g, Access::Everything).await.unwrap(), 2);
    assert_eq!(store.groups_of("b", &u1.to_string()).await.unwrap(), vec![g.to_string()]);

    assert!(store.remove_member("b", g, u1).await.unwrap());
    assert!(!store.remove_member("b", g, u1).await.unwrap());
    store.delete(Collection { backend: "b", object_type: USERS }, u2, Author::default(), ALL).await.unwrap();
    assert_eq!(store.count_members("b", g, Access::Everything).await.unwrap(), 0, "a deleted user leaves its groups");
    store.add_member("b", g, u1).await.unwrap();
    store.delete(groups, g, Author::default(), ALL).await.unwrap();
    assert!(store.groups_of("b", &u1.to_string()).await.unwrap().is_empty(), "a deleted group has no members");
}

#[tokio::test]
async fn lists_filter_sort_and_page_in_the_database() {
    use updraft_query::{Filter, Sort};

    use crate::{ListQuery, Page};
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    for (title, n, tags) in
        [("b", 2, json!(["x"])), ("a", 1, json!(["x", "y"])), ("c", 3, json!([])), ("B", 4, json!(["y"]))]
    {
        store
            .insert(TODOS, props(json!({"title": title, "n": n, "tags": tags})), Author::default(), template())
            .await
            .unwrap();
    }
    let other = Collection { object_type: "objects.other", ..TODOS };
    store.insert(other, props(json!({"title": "a", "n": 1})), Author::default(), template()).await.unwrap();

    let titles = |docs: Vec<Value>| docs.iter().map(|d| d["title"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    let filter = Filter::parse(&json!({"tags": "x"})).unwrap();
    let sort = Sort::parse(&json!([{"sortBy": "title", "direction": "asc"}])).unwrap();
    let page = Page { limit: 10, offset: 0 };
    let found = store.list(TODOS, ListQuery { filter: &filter, sort: &sort, page }, ALL).await.unwrap();
    assert_eq!(titles(found), ["a", "b"]);

    let all = Filter::parse(&json!({})).unwrap();
    let by_n_desc = Sort::parse(&json!([{"sortBy": "n", "direction": "desc"}])).unwrap();
    let second_page = Page { limit: 2, offset: 1 };
    let found = store.list(TODOS, ListQuery { filter: &all, sort: &by_n_desc, page: second_page }, ALL).await.unwrap();
    assert_eq!(titles(found), ["c", "b"]);
    let unsorted = Sort::parse(&json!([])).unwrap();
    let found = store.list(TODOS, ListQuery { filter: &all, sort: &unsorted, page }, ALL).await.unwrap();
    assert_eq!(titles(found), ["b", "a", "c", "B"], "creation order by default");

    let regex = Filter::parse(&json!({"title": {"$regex": "^b$", "$options": "i"}})).unwrap();
    assert_eq!(store.count(TODOS, &regex, ALL).await.unwrap(), 2);
    let range = Filter::parse(&json!({"n": {"$gte": 2, "$lt": 4}})).unwrap();
    assert_eq!(store.count(TODOS, &range, ALL).await.unwrap(), 2);
    assert_eq!(store.count(TODOS, &all, ALL).await.unwrap(), 4, "other collections are not counted");
}

#[tokio::test]
async fn acls_filter_reads_in_sql_and_guard_changes() {
    use crate::{AclChange, Permission};
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let anyone = vec![Subject::Everyone];
    let alice = vec![Subject::Everyone, Subject::user("alice")];
    let bob = vec![Subject::Everyone, Subject::user("bob"), Subject::group("team")];
    let private = Acl { read: vec![], update: vec![], delete: vec![], admin: vec![Subject::Creator] };

    let public = store.insert(TODOS, props(json!({"t": "public"})), Author::default(), template()).await.unwrap();
    let secret = store.insert(TODOS, props(json!({"t": "alice's"})), Author::user("alice"), private).await.unwrap();
    let id = |doc: &Value| ObjectId::parse(doc["id"].as_str().unwrap()).unwrap();

    let all = updraft_query::Filter::parse(&json!({})).unwrap();
    for (who, seen) in [(&anyone, 1), (&alice, 2), (&bob, 1)] {
        assert_eq!(store.count(TODOS, &all, Access::Subjects(who)).await.unwrap(), seen, "{who:?}");
    }
    assert_eq!(store.get(TODOS, id(&secret), Access::Subjects(&bob)).await.unwrap(), None, "unreadable looks absent");
    assert!(store.get(TODOS, id(&secret), Access::Subjects(&alice)).await.unwrap().is_some());
    assert!(matches!(
        store
            .update(TODOS, id(&secret), crate::Patch::Merge(Map::new()), Author::user("bob"), Access::Subjects(&bob))
            .await,
        Ok(None)
    ));

    // Alice lets the team read, not change.
    let team = Acl { read: vec![Subject::group("team")], ..Acl::default() };
    let acl =
        store.change_acl(TODOS, id(&secret), AclChange::Add(team), Access::Subjects(&alice)).await.unwrap().unwrap();
    assert_eq!(acl.read, [Subject::group("team")]);
    assert_eq!(acl.admin, [Subject::user("alice")], "creator resolved to alice");
    assert!(store.get(TODOS, id(&secret), Access::Subjects(&bob)).await.unwrap().is_some());
    let denied = store
        .update(TODOS, id(&secret), crate::Patch::Merge(Map::new()), Author::user("bob"), Access::Subjects(&bob))
        .await;
    assert!(matches!(denied, Err(StoreError::Forbidden)), "{denied:?}");
    let denied = store.change_acl(TODOS, id(&secret), AclChange::Replace(Acl::default()), Access::Subjects(&bob)).await;
    assert!(matches!(denied, Err(StoreError::Forbidden)));
    assert!(matches!(
        store.delete(TODOS, id(&secret), Author::default(), Access::Subjects(&bob)).await,
        Err(StoreError::Forbidden)
    ));

    // The public object: anyone updates and deletes; an anonymous creator leaves no admin.
    let acl = store.acl(TODOS, id(&public), Access::Subjects(&anyone)).await.unwrap().unwrap();
    assert!(acl.admin.is_empty());
    assert!(Access::Subjects(&anyone).permits(&acl, Permission::Delete));
    assert!(store.delete(TODOS, id(&public), Author::default(), Access::Subjects(&anyone)).await.unwrap().is_some());
}

/// How SQLite would run one page of a list, as `EXPLAIN QUERY PLAN` lines.
async fn list_plan(store: &SqliteStore, q: Value, sort: Value, access: Access<'_>) -> String {
    let filter = updraft_query::Filter::parse(&q).unwrap();
    let sort = updraft_query::Sort::parse(&sort).unwrap();
    let query = ListQuery { filter: &filter, sort: &sort, page: crate::Page { limit: 20, offset: 0 } };
    store.explain(TODOS, query, false, access).await.unwrap().steps.join("\n")
}

#[tokio::test]
async fn a_page_sorted_on_an_indexed_property_walks_its_index_without_sorting() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    store.put_schema(TODOS.backend, TODOS.object_type, json!({}), &indexed(&["n"])).await.unwrap();
    let subjects = [Subject::Everyone, Subject::user("u1")];
    for (direction, access) in [("asc", ALL), ("desc", Access::Subjects(&subjects))] {
        let plan =
            list_plan(&store, json!({"done": false}), json!([{"sortBy": "n", "direction": direction}]), access).await;
        assert!(plan.contains("key:5376019e698b3c6ad500095a:objects.todos:n"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }
    // Without a sort, pages come in creation order from the primary index.
    let plan = list_plan(&store, json!({}), json!([]), ALL).await;
    assert!(plan.contains("objects_by_creation") && !plan.contains("TEMP B-TREE"), "{plan}");

    // Dropping `indexed` drops the index.
    store.put_schema(TODOS.backend, TODOS.object_type, json!({}), &indexed(&[])).await.unwrap();
    let plan = list_plan(&store, json!({"done": false}), json!([{"sortBy": "n", "direction": "asc"}]), ALL).await;
    assert!(plan.contains("TEMP B-TREE"), "{plan}");
    let (left,): (i64,) = sqlx::query_as("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name LIKE '%:n'")
        .fetch_one(&store.readers)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn a_read_over_its_inline_budget_moves_to_the_blocking_pool_and_answers_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    for n in 0..50 {
        store
            .insert(TODOS, props(json!({"n": n % 7, "tag": format!("t{n}")})), Author::default(), template())
            .await
            .unwrap();
    }
    let filter = updraft_query::Filter::parse(&json!({"n": {"$gte": 3}})).unwrap();
    let sort = updraft_query::Sort::parse(&json!([{"sortBy": "n", "direction": "desc"}])).unwrap();
    let page = crate::Page { limit: 10, offset: 5 };
    let inline = store.list(TODOS, ListQuery { filter: &filter, sort: &sort, page }, ALL).await.unwrap();
    let count_inline = store.count(TODOS, &filter, ALL).await.unwrap();
    assert_eq!(store.hot.moved_to_blocking_pool(), 0);

    // No budget: a list or count that runs a thousand VM steps is interrupted and runs again elsewhere.
    store.hot.set_checks_inline(0);
    let moved = store.list(TODOS, ListQuery { filter: &filter, sort: &sort, page }, ALL).await.unwrap();
    assert_eq!(moved, inline);
    assert_eq!(store.count(TODOS, &filter, ALL).await.unwrap(), count_inline);
    assert_eq!(count_inline, 50 - 8 - 7 - 7, "n = 0 eight times, 1 and 2 seven times each");
    assert_eq!(store.hot.moved_to_blocking_pool(), 2, "both reads ran over their budget");
    let ns: Vec<i64> = inline.iter().map(|doc| doc["n"].as_i64().unwrap()).collect();
    assert_eq!(ns, [6, 6, 5, 5, 5, 5, 5, 5, 5, 4], "seven of each, from the sixth on");
}

#[tokio::test]
async fn an_object_extending_its_parent_follows_the_parent_acl_and_goes_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let lists = Collection { object_type: "objects.lists", ..TODOS };
    let cascade = crate::Cascade { property: "list".into(), target_type: "objects.lists".into() };
    let rules = crate::SchemaRules { indexed: Vec::new(), cascades: vec![cascade], searched: Vec::new() };
    store.put_schema(TODOS.backend, TODOS.object_type, json!({}), &rules).await.unwrap();
    let owner_only = |user: &str| Acl { admin: vec![Subject::user(user)], ..Acl::default() };

    let list = store.insert(lists, Map::new(), Author::user("a"), owner_only("a")).await.unwrap();
    let list_id = id(&list);
    let parent = crate::ObjectRef { object_type: "objects.lists".into(), id: list_id };
    let todo_props = props(json!({"list": {"id": list_id.to_string(), "objectType": "objects.lists"}}));
    let todo =
        store.insert_inheriting(TODOS, todo_props, Author::user("a"), owner_only("a"), Some(parent)).await.unwrap();
    let todo_id = id(&todo);
    let other = store.insert(TODOS, Map::new(), Author::user("a"), owner_only("a")).await.unwrap();

    let (a, b) = ([Subject::Everyone, Subject::user("a")], [Subject::Everyone, Subject::user("b")]);
    let page = crate::Page { limit: 10, offset: 0 };
    let everything = updraft_query::Filter::parse(&json!({})).unwrap();
    let no_sort = updraft_query::Sort::parse(&json!([])).unwrap();
    let query = ListQuery { filter: &everything, sort: &no_sort, page };
    assert!(store.get(TODOS, todo_id, Access::Subjects(&b)).await.unwrap().is_none());
    assert!(store.list(TODOS, query, Access::Subjects(&b)).await.unwrap().is_empty());

    // Sharing the list shares its todos, for reading and for what else the list grants.
    let share = Acl { read: vec![Subject::user("b")], update: vec![Subject::user("b")], ..Acl::default() };
    store.change_acl(lists, list_id, AclChange::Add(share), Access::Subjects(&a)).await.unwrap().unwrap();
    assert_eq!(store.get(TODOS, todo_id, Access::Subjects(&b)).await.unwrap(), Some(todo.clone()));
    let seen = store.list(TODOS, query, Access::Subjects(&b)).await.unwrap();
    assert_eq!(seen, vec![todo.clone()], "the todo outside the list stays hidden");
    assert_eq!(store.count(TODOS, &everything, Access::Subjects(&b)).await.unwrap(), 1);
    let patch = crate::Patch::Merge(props(json!({"done": true})));
    assert!(store.update(TODOS, todo_id, patch, Author::user("b"), Access::Subjects(&b)).await.unwrap().is_some());
    let denied = store.delete(TODOS, todo_id, Author::default(), Access::Subjects(&b)).await;
    assert!(matches!(denied, Err(StoreError::Forbidden)), "{denied:?}");
    assert_eq!(store.acl(TODOS, todo_id, Access::Subjects(&b)).await.unwrap(), Some(owner_only("a")));

    // Deleting the list deletes its todos, and only those.
    store.delete(lists, list_id, Author::default(), Access::Subjects(&a)).await.unwrap().unwrap();
    assert!(store.get(TODOS, todo_id, ALL).await.unwrap().is_none());
    assert!(store.get(TODOS, id(&other), ALL).await.unwrap().is_some());
}

fn id(doc: &Value) -> ObjectId {
    ObjectId::parse(doc["id"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn every_committed_change_is_recorded_in_order_with_its_readers() {
    use crate::{ChangeEvent, Changes};
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(open(&dir).await);
    let mut watch = store.watch_changes();
    let lists = Collection { object_type: "objects.lists", ..TODOS };
    let cascade = crate::Cascade { property: "list".into(), target_type: "objects.lists".into() };
    let rules = crate::SchemaRules { indexed: Vec::new(), cascades: vec![cascade], searched: Vec::new() };
    store.put_schema(TODOS.backend, TODOS.object_type, json!({}), &rules).await.unwrap();
    let private = |user: &str| Acl { admin: vec![Subject::user(user)], ..Acl::default() };

    let list = store.insert(lists, Map::new(), Author::user("a"), private("a")).await.unwrap();
    let parent = crate::ObjectRef { object_type: "objects.lists".into(), id: id(&list) };
    let share = Acl { read: vec![Subject::group("g")], ..Acl::default() };
    store.change_acl(lists, id(&list), AclChange::Add(share), ALL).await.unwrap();
    let body = props(json!({"list": {"id": list["id"], "objectType": "objects.lists"}}));
    let todo = store.insert_inheriting(TODOS, body, Author::user("b"), private("b"), Some(parent)).await.unwrap();
    // Concurrent inserts commit as one batch, and their changes with them.
    let batch: Vec<_> = (0..5)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                store.insert(TODOS, props(json!({"n": n})), Author::default(), template()).await.unwrap()
            })
        })
        .collect();
    for task in batch {
        task.await.unwrap();
    }
    let patch = crate::Patch::Merge(props(json!({"done": true})));
    store.update(TODOS, id(&todo), patch, Author::user("a"), ALL).await.unwrap().unwrap();
    // A failed change records nothing.
    let denied = store.delete(lists, id(&list), Author::user("c"), Access::Subjects(&[Subject::user("c")])).await;
    assert!(matches!(denied, Ok(None)), "{denied:?}");
    store.delete(lists, id(&list), Author::user("a"), ALL).await.unwrap().unwrap();
    assert!(watch.has_changed().unwrap());
    watch.mark_unchanged();

    let changes = store.changes_after(0, 100).await.unwrap();
    let summary: Vec<(ChangeEvent, &str)> = changes.iter().map(|c| (c.event, c.object_type.as_str())).collect();
    use ChangeEvent::*;
    let todos = TODOS.object_type;
    let expected = [
        (Create, "objects.lists"),
        (Create, todos),
        (Create, todos),
        (Create, todos),
        (Create, todos),
        (Create, todos),
        (Create, todos),
        (Update, todos),
        (Delete, "objects.lists"),
        (Delete, todos),
    ];
    assert_eq!(summary, expected);
    assert!(changes.windows(2).all(|w| w[0].seq < w[1].seq));
    let todo_created = &changes[1];
    assert_eq!(todo_created.object, todo);
    assert_eq!(todo_created.user_id.as_deref(), Some("b"));
    assert_eq!(
        todo_created.readers,
        [Subject::user("b"), Subject::group("g"), Subject::user("a")],
        "its own and its list's readers"
    );
    assert_eq!(changes[2].readers, [Subject::Everyone]);
    assert_eq!(changes[7].object["done"], true);
    assert_eq!(changes[7].user_id.as_deref(), Some("a"));
    let cascaded = &changes[9];
    assert_eq!((cascaded.object["id"].clone(), cascaded.user_id.as_deref()), (todo["id"].clone(), Some("a")));
    assert_eq!(
        cascaded.readers,
        [Subject::user("b"), Subject::group("g"), Subject::user("a")],
        "as it was before the list went"
    );

    assert_eq!(store.changes_after(changes[8].seq, 100).await.unwrap(), changes[9..]);
    assert_eq!(store.changes_after(0, 2).await.unwrap(), changes[..2]);
    assert_eq!(store.prune_changes(now_ms() + 1).await.unwrap(), 10);
    assert!(store.changes_after(0, 100).await.unwrap().is_empty());
}

/// Concurrent inserts commit as one batch statement; each keeps its parent, author and request id.
#[tokio::test]
async fn batched_inserts_keep_their_parent_author_and_request() {
    use crate::Changes;
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(open(&dir).await);
    let lists = Collection { object_type: "objects.lists", ..TODOS };
    let owner_only = |user: &str| Acl { admin: vec![Subject::user(user)], ..Acl::default() };
    let list = store.insert(lists, Map::new(), Author::user("a"), owner_only("a")).await.unwrap();
    let list_id = id(&list);
    let after = store.latest_change().await.unwrap();
    let inserts: Vec<_> = (0..64)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let parent = crate::ObjectRef { object_type: "objects.lists".into(), id: list_id };
                let (user, request) = (format!("u{n}"), format!("req-{n}"));
                let author = Author { user: Some(&user), request_id: Some(&request) };
                store.insert_inheriting(TODOS, props(json!({"n": n})), author, Acl::default(), Some(parent)).await
            })
        })
        .collect();
    for insert in inserts {
        insert.await.unwrap().unwrap();
    }
    let changes = store.changes_after(after, 1000).await.unwrap();
    assert_eq!(changes.len(), 64);
    for change in &changes {
        let n = change.object["n"].as_i64().unwrap();
        assert_eq!(change.user_id.as_deref(), Some(format!("u{n}").as_str()));
        assert_eq!(change.request_id.as_deref(), Some(format!("req-{n}").as_str()));
        assert_eq!(change.readers, [Subject::user("a")], "the parent's admin reads its children");
    }
    // The children follow the parent's ACL, so the parent link was stored with each.
    let a = [Subject::Everyone, Subject::user("a")];
    let everything = updraft_query::Filter::parse(&json!({})).unwrap();
    assert_eq!(store.count(TODOS, &everything, Access::Subjects(&a)).await.unwrap(), 64);
}

#[tokio::test]
async fn get_many_answers_the_readable_targets_once_by_primary_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let mine = Acl { read: vec![Subject::user("a")], ..Acl::default() };
    let public = store.insert(TODOS, props(json!({"t": "public"})), Author::default(), template()).await.unwrap();
    let private = store.insert(TODOS, props(json!({"t": "private"})), Author::default(), mine).await.unwrap();
    let lists = Collection { object_type: "objects.lists", ..TODOS };
    let list = store.insert(lists, props(json!({"t": "list"})), Author::default(), template()).await.unwrap();
    let object_ref = |doc: &Value| crate::ObjectRef {
        object_type: doc["objectType"].as_str().unwrap().to_owned(),
        id: ObjectId::parse(doc["id"].as_str().unwrap()).unwrap(),
    };
    let missing = crate::ObjectRef { object_type: "objects.todos".to_owned(), id: ObjectId::generate() };
    let wrong_type = crate::ObjectRef { object_type: "objects.lists".to_owned(), ..object_ref(&public) };
    let refs = [object_ref(&public), object_ref(&private), object_ref(&list), object_ref(&public), missing, wrong_type];
    let titles = |docs: Vec<Value>| {
        let mut titles: Vec<String> = docs.iter().map(|doc| doc["t"].as_str().unwrap().to_owned()).collect();
        titles.sort();
        titles
    };
    let anyone = [Subject::Everyone];
    let got = store.get_many(TODOS.backend, &refs, Access::Subjects(&anyone)).await.unwrap();
    assert_eq!(titles(got), ["list", "public"]);
    let a = [Subject::Everyone, Subject::user("a")];
    let got = store.get_many(TODOS.backend, &refs, Access::Subjects(&a)).await.unwrap();
    assert_eq!(titles(got), ["list", "private", "public"]);
    assert_eq!(store.get_many("another backend", &refs, ALL).await.unwrap(), Vec::<Value>::new());
    assert_eq!(store.get_many(TODOS.backend, &[], ALL).await.unwrap(), Vec::<Value>::new());

    let (allowed, _) = readable(Access::Subjects(&a));
    let plan: Vec<(i64, i64, i64, String)> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {}", get_many_statement(&allowed))))
            .fetch_all(&store.readers)
            .await
            .unwrap();
    let plan: Vec<&str> = plan.iter().map(|row| row.3.as_str()).collect();
    assert!(plan.iter().any(|step| step.starts_with("SEARCH objects USING INDEX objects_by_id")), "{plan:?}");
    assert!(!plan.iter().any(|step| step.starts_with("SCAN objects")), "{plan:?}");
}

#[tokio::test]
async fn finding_15_a_page_lists_documents_as_deep_as_the_parser_reads() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    // 127 levels in all: serde_json reads 127 levels, and the page's array would have been the 128th.
    let deep = (0..126).fold(json!(1), |inner, _| json!({ "a": inner }));
    store.insert(TODOS, props(json!({ "a": deep })), Author::default(), template()).await.unwrap();
    let filter = updraft_query::Filter::parse(&json!({})).unwrap();
    let sort = updraft_query::Sort::parse(&json!([])).unwrap();
    let page = crate::Page { limit: 10, offset: 0 };
    let docs = store.list(TODOS, ListQuery { filter: &filter, sort: &sort, page }, ALL).await.unwrap();
    assert_eq!(docs.len(), 1);
    let refs = [crate::ObjectRef {
        object_type: TODOS.object_type.to_owned(),
        id: ObjectId::parse(docs[0]["id"].as_str().unwrap()).unwrap(),
    }];
    assert_eq!(store.get_many(TODOS.backend, &refs, ALL).await.unwrap(), docs);
}

/// Deleting the users schema deletes the users, and with them their passwords and memberships, as deleting each
/// user would; deleting the usergroups schema takes the groups' memberships and member rules.
#[tokio::test]
async fn a_deleted_users_or_groups_schema_leaves_no_passwords_or_memberships() {
    use crate::{Groups, Users};
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let rows = |table: &'static str| {
        let store = &store;
        async move {
            let sql = format!("SELECT count(*) FROM {table} WHERE backend = 'b'");
            let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_one(&store.readers).await.unwrap();
            n
        }
    };
    let user =
        store.insert_user("b", props(json!({"username": "john"})), "h", Author::default(), template()).await.unwrap();
    let groups = Collection { backend: "b", object_type: USERGROUPS };
    let group = store.insert(groups, props(json!({"name": "g"})), Author::default(), template()).await.unwrap();
    let id_of = |doc: &Value| ObjectId::parse(doc["id"].as_str().unwrap()).unwrap();
    store.add_member("b", id_of(&group), id_of(&user)).await.unwrap();
    let rules = crate::SchemaRules::default();
    store.put_schema("b", USERS, json!({"name": "users", "properties": []}), &rules).await.unwrap();
    store.put_schema("b", USERGROUPS, json!({"name": "usergroups", "properties": []}), &rules).await.unwrap();
    assert_eq!((rows("passwords").await, rows("members").await), (1, 1));

    assert!(store.delete_schema("b", USERS).await.unwrap());
    assert_eq!((rows("passwords").await, rows("members").await), (0, 0));
    assert!(store.login("b", "john").await.unwrap().is_none());
    store.change_member_acl("b", id_of(&group), crate::AclChange::Replace(template()), template()).await.unwrap();
    assert_eq!(rows("member_acls").await, 1);
    assert!(store.delete_schema("b", USERGROUPS).await.unwrap());
    assert_eq!(rows("member_acls").await, 0);
}

/// A database of the release before `objects` became a rowid table (every migration up to that one, the key and
/// ref indexes in their old shape) opens with its objects, indexes, elements and cascades working.
#[tokio::test]
async fn a_database_from_before_the_rowid_table_is_migrated_whole() {
    use crate::Page;
    use updraft_query::{Filter, Sort};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("eds.sqlite3");
    let before = MIGRATIONS.iter().position(|step| step.contains("CREATE TABLE objects_by_rowid")).unwrap();
    let (backend, todos, lists) = (TODOS.backend, TODOS.object_type, "objects.lists");
    let list_id = "5376019e698b3c6ad5000001";
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        for step in &MIGRATIONS[..before] {
            conn.execute_batch(step).unwrap();
        }
        conn.execute_batch(&format!("PRAGMA user_version = {before}")).unwrap();
        // As the previous release's schemas.rs made them.
        let key_terms = updraft_query::sqlite::key_index_terms("tags", "doc");
        conn.execute_batch(&format!(
            "INSERT INTO property_indexes VALUES ('{backend}', '{todos}', 'tags');
             CREATE INDEX \"key:{backend}:{todos}:tags\" ON objects (backend, object_type, {key_terms}, created_ms)
               WHERE object_type = '{todos}';
             INSERT INTO ref_cascades VALUES ('{backend}', '{todos}', 'list', '{lists}');
             CREATE INDEX \"ref:{backend}:{todos}:list\" ON objects (backend, doc ->> '$.list.id')
               WHERE object_type = '{todos}';"
        ))
        .unwrap();
        let insert = "INSERT INTO objects (backend, object_type, id, doc, created_ms, updated_ms, public_read)
                      VALUES (?1, ?2, ?3, jsonb(?4), ?5, ?5, 1)";
        let list = json!({"id": list_id, "objectType": lists, "title": "groceries"});
        conn.execute(insert, rusqlite::params![backend, lists, list_id, list.to_string(), 1]).unwrap();
        for (i, tags) in [json!(["x", "y"]), json!("x"), json!(["z"])].into_iter().enumerate() {
            let id = format!("5376019e698b3c6ad500010{i}");
            let doc = json!({"id": id, "objectType": todos, "title": format!("todo {i}"), "tags": tags,
                             "list": {"id": list_id, "objectType": lists}});
            conn.execute(insert, rusqlite::params![backend, todos, id, doc.to_string(), 10 + i as i64]).unwrap();
        }
    }

    let store = open(&dir).await;
    let (sql,): (String,) =
        sqlx::query_as("SELECT sql FROM sqlite_master WHERE name = 'objects'").fetch_one(&store.readers).await.unwrap();
    assert!(!sql.contains("WITHOUT ROWID"), "{sql}");
    let (key_index,): (String,) = sqlx::query_as("SELECT sql FROM sqlite_master WHERE name = ?")
        .bind(format!("key:{backend}:{todos}:tags"))
        .fetch_one(&store.readers)
        .await
        .unwrap();
    assert!(key_index.contains("created_ms, id, public_read"), "{key_index}");
    let (ref_indexes,): (i64,) = sqlx::query_as("SELECT count(*) FROM sqlite_master WHERE name = ?")
        .bind(format!("ref:{backend}:{todos}:list"))
        .fetch_one(&store.readers)
        .await
        .unwrap();
    assert_eq!(ref_indexes, 1);

    let titles = |docs: Vec<Value>| docs.iter().map(|d| d["title"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    let page = Page { limit: 10, offset: 0 };
    let unsorted = Sort::parse(&json!([])).unwrap();
    let contains_x = Filter::parse(&json!({"tags": "x"})).unwrap();
    let query = ListQuery { filter: &contains_x, sort: &unsorted, page };
    assert_eq!(titles(store.list(TODOS, query, ALL).await.unwrap()), ["todo 0", "todo 1"], "elements kept");

    // The element triggers were made again with the table.
    store.insert(TODOS, props(json!({"title": "todo 3", "tags": ["x"]})), Author::default(), template()).await.unwrap();
    let query = ListQuery { filter: &contains_x, sort: &unsorted, page };
    assert_eq!(titles(store.list(TODOS, query, ALL).await.unwrap()), ["todo 0", "todo 1", "todo 3"]);
    let by_title = Sort::parse(&json!([{"sortBy": "title", "direction": "desc"}])).unwrap();
    let all = Filter::parse(&json!({})).unwrap();
    let query = ListQuery { filter: &all, sort: &by_title, page: Page { limit: 2, offset: 1 } };
    assert_eq!(titles(store.list(TODOS, query, ALL).await.unwrap()), ["todo 2", "todo 1"]);

    // Deleting the list deletes its todos (the cascade), and their elements.
    let lists_at = Collection { backend, object_type: lists };
    let list = ObjectId::parse(list_id).unwrap();
    assert!(store.delete(lists_at, list, Author::default(), ALL).await.unwrap().is_some());
    assert_eq!(store.count(TODOS, &all, ALL).await.unwrap(), 1, "todo 3 names no list");
    let (elements,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM array_keys").fetch_one(&store.readers).await.unwrap();
    assert_eq!(elements, 1);
}
