//! The rows of EDS files on PostgreSQL, as the embedded store's tests check them (`sqlite/files.rs`), and two
//! nodes completing one upload at once.

use std::sync::Arc;

use serde_json::{Map, json};
use updraft_core::ids::ObjectId;

use super::super::test_database::TestDatabase;
use crate::files::{FileStatus, Files, NewFile, StoredBytes};
use crate::postgres::{PostgresStore, now_ms};
use crate::{Access, Acl, Author, Collection, ObjectRef, Patch, Schemas, Store, StoreError, Subject};

const IMAGES: Collection<'static> = Collection { backend: "5376019e698b3c6ad500095a", object_type: "objects.images" };

fn everyone() -> Acl {
    let all = vec![Subject::Everyone];
    Acl { read: all.clone(), update: all.clone(), delete: all, admin: Vec::new() }
}

async fn attach(store: &PostgresStore, owner: &ObjectRef, property: &str) -> ObjectId {
    let id = ObjectId::generate();
    let file = NewFile { id, owner, property, file_name: "a.png", content_type: None, variants: None };
    let bytes = StoredBytes { size: 3, sha256: "abc" };
    store.attach_file(IMAGES.backend, file, bytes, Author::default(), Access::Everything).await.unwrap().unwrap();
    id
}

async fn trash(store: &PostgresStore) -> Vec<ObjectId> {
    let mut ids: Vec<ObjectId> = store.trashed_files(100).await.unwrap().into_iter().map(|(_, id)| id).collect();
    ids.sort_by_key(ToString::to_string);
    ids
}

fn sorted(mut ids: Vec<ObjectId>) -> Vec<ObjectId> {
    ids.sort_by_key(ToString::to_string);
    ids
}

#[tokio::test]
async fn files_go_to_the_trash_with_their_object_or_when_their_property_changes() {
    let database = TestDatabase::create().await;
    let store = database.open().await;
    let new_object = || async {
        let doc = store.insert(IMAGES, Map::new(), Author::default(), everyone()).await.unwrap();
        ObjectRef {
            object_type: IMAGES.object_type.to_owned(),
            id: ObjectId::parse(doc["id"].as_str().unwrap()).unwrap(),
        }
    };
    let owner = new_object().await;
    let first = attach(&store, &owner, "photo").await;
    let other = attach(&store, &owner, "cover").await;
    let doc = store.get(IMAGES, owner.id, Access::Everything).await.unwrap().unwrap();
    assert_eq!(doc["photo"], json!({"id": first.to_string(), "objectType": "files"}));
    assert!(trash(&store).await.is_empty(), "both files are referred to");

    // Another file into the same property replaces the first; an unrelated update keeps both.
    let second = attach(&store, &owner, "photo").await;
    assert_eq!(trash(&store).await, vec![first]);
    let patch = Patch::Merge(json!({"title": "x"}).as_object().unwrap().clone());
    store.update(IMAGES, owner.id, patch, Author::default(), Access::Everything).await.unwrap();
    assert_eq!(trash(&store).await, vec![first]);
    assert!(store.file(IMAGES.backend, first, false, Access::Everything).await.unwrap().is_none());
    // Setting the property to something else lets the file go.
    let patch = Patch::Merge(json!({"cover": null}).as_object().unwrap().clone());
    store.update(IMAGES, owner.id, patch, Author::default(), Access::Everything).await.unwrap();
    assert_eq!(trash(&store).await, sorted(vec![first, other]));
    store.forget_trashed(IMAGES.backend, first).await.unwrap();
    store.forget_trashed(IMAGES.backend, other).await.unwrap();

    // A chunked upload begun on the object, then the object deleted: both its files go.
    let pending = ObjectId::generate();
    let file =
        NewFile { id: pending, owner: &owner, property: "video", file_name: "v", content_type: None, variants: None };
    store.begin_file(IMAGES.backend, file, Access::Everything).await.unwrap().unwrap();
    assert!(store.record_chunk(IMAGES.backend, pending, 0, 10, 100).await.unwrap());
    assert!(!store.record_chunk(IMAGES.backend, pending, 0, 20, 100).await.unwrap(), "from 0 no more");
    assert!(!store.record_chunk(IMAGES.backend, pending, 10, 20, 99).await.unwrap(), "another total");
    store.delete(IMAGES, owner.id, Author::default(), Access::Everything).await.unwrap().unwrap();
    assert_eq!(trash(&store).await, sorted(vec![second, pending]));
    for id in [second, pending] {
        store.forget_trashed(IMAGES.backend, id).await.unwrap();
    }

    // Deleting the type's schema deletes its objects, and their files.
    let owner = new_object().await;
    let last = attach(&store, &owner, "photo").await;
    store.put_schema(IMAGES.backend, IMAGES.object_type, json!({}), &crate::SchemaRules::default()).await.unwrap();
    assert!(store.delete_schema(IMAGES.backend, IMAGES.object_type).await.unwrap());
    assert_eq!(trash(&store).await, vec![last]);
}

#[tokio::test]
async fn uploads_untouched_since_the_cutoff_expire_and_the_rest_stay() {
    let database = TestDatabase::create().await;
    let store = database.open().await;
    let doc = store.insert(IMAGES, Map::new(), Author::default(), everyone()).await.unwrap();
    let owner = ObjectRef {
        object_type: IMAGES.object_type.to_owned(),
        id: ObjectId::parse(doc["id"].as_str().unwrap()).unwrap(),
    };
    let complete = attach(&store, &owner, "photo").await;
    let begin = |property: &'static str| {
        let owner = &owner;
        let store = &store;
        async move {
            let id = ObjectId::generate();
            let file = NewFile { id, owner, property, file_name: "v", content_type: None, variants: None };
            store.begin_file(IMAGES.backend, file, Access::Everything).await.unwrap().unwrap();
            id
        }
    };
    let (empty, incomplete) = (begin("video").await, begin("audio").await);
    assert!(store.record_chunk(IMAGES.backend, incomplete, 0, 10, 100).await.unwrap());
    let cutoff = now_ms() + 1;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let recent = begin("poster").await;

    assert_eq!(store.expire_uploads(cutoff, 1).await.unwrap(), 1, "at most the limit");
    assert_eq!(store.expire_uploads(cutoff, 100).await.unwrap(), 1);
    assert_eq!(store.expire_uploads(cutoff, 100).await.unwrap(), 0);
    assert_eq!(trash(&store).await, sorted(vec![empty, incomplete]));
    for (id, kept) in [(complete, true), (recent, true), (empty, false), (incomplete, false)] {
        assert_eq!(store.file(IMAGES.backend, id, false, Access::Everything).await.unwrap().is_some(), kept);
    }
    assert!(!store.record_chunk(IMAGES.backend, incomplete, 10, 20, 100).await.unwrap(), "no file to add to");
    let doc = store.get(IMAGES, owner.id, Access::Everything).await.unwrap().unwrap();
    assert_eq!(doc["photo"]["id"], complete.to_string(), "the object is as it was");
}

#[tokio::test]
async fn a_file_is_seen_by_who_reads_its_object_and_uploaded_into_by_who_updates_it() {
    let database = TestDatabase::create().await;
    let store = database.open().await;
    let (reader, nobody) = ([Subject::Everyone, Subject::user("r")], [Subject::Everyone]);
    let acl = Acl { read: vec![Subject::user("r")], ..Acl::default() };
    let doc = store.insert(IMAGES, Map::new(), Author::default(), acl).await.unwrap();
    let owner = ObjectRef {
        object_type: IMAGES.object_type.to_owned(),
        id: ObjectId::parse(doc["id"].as_str().unwrap()).unwrap(),
    };
    let file = attach(&store, &owner, "photo").await;
    let b = IMAGES.backend;
    assert!(store.file(b, file, false, Access::Subjects(&reader)).await.unwrap().is_some());
    assert!(store.file(b, file, false, Access::Subjects(&nobody)).await.unwrap().is_none());
    assert!(matches!(store.file(b, file, true, Access::Subjects(&reader)).await, Err(StoreError::Forbidden)));
    assert!(matches!(store.may_upload(b, &owner, Access::Subjects(&reader)).await, Err(StoreError::Forbidden)));
    assert!(store.may_upload(b, &owner, Access::Subjects(&nobody)).await.unwrap().is_none());
    let id = ObjectId::generate();
    let new = NewFile { id, owner: &owner, property: "photo", file_name: "b", content_type: None, variants: None };
    let bytes = StoredBytes { size: 1, sha256: "x" };
    let refused = store.attach_file(b, new, bytes, Author::default(), Access::Subjects(&reader)).await;
    assert!(matches!(refused, Err(StoreError::Forbidden)));
    assert!(store.file(b, id, false, Access::Everything).await.unwrap().is_none(), "nothing was written");
    assert_eq!(store.files(b, &[file, id], Access::Subjects(&reader)).await.unwrap().len(), 1);
}

async fn new_owner(store: &PostgresStore) -> ObjectRef {
    let doc = store.insert(IMAGES, Map::new(), Author::default(), everyone()).await.unwrap();
    ObjectRef { object_type: IMAGES.object_type.to_owned(), id: ObjectId::parse(doc["id"].as_str().unwrap()).unwrap() }
}

#[tokio::test]
async fn variants_take_their_status_and_unrendered_ones_are_found() {
    let database = TestDatabase::create().await;
    let store = database.open().await;
    let owner = new_owner(&store).await;
    let id = ObjectId::generate();
    let variants = json!({"thumb": {"status": "processing"}});
    let file = NewFile {
        id,
        owner: &owner,
        property: "photo",
        file_name: "a.png",
        content_type: None,
        variants: Some(variants),
    };
    let bytes = StoredBytes { size: 3, sha256: "abc" };
    store.attach_file(IMAGES.backend, file, bytes, Author::default(), Access::Everything).await.unwrap().unwrap();
    assert_eq!(store.unrendered_files(10).await.unwrap(), [(IMAGES.backend.to_owned(), id)]);
    store.set_variant_status(IMAGES.backend, id, "thumb", "complete").await.unwrap();
    // A variant the row does not name yet is made, as SQLite's json_set makes it.
    store.set_variant_status(IMAGES.backend, id, "large", "failed").await.unwrap();
    assert!(store.unrendered_files(10).await.unwrap().is_empty());
    let record = store.file(IMAGES.backend, id, false, Access::Everything).await.unwrap().unwrap();
    assert_eq!(record.variants, Some(json!({"thumb": {"status": "complete"}, "large": {"status": "failed"}})));
    assert_eq!((record.status, record.size, record.sha256.as_deref()), (FileStatus::Complete, Some(3), Some("abc")));
}

/// Two nodes complete one chunked upload at once: the file row's lock makes one of them find it complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_completing_one_upload_take_turns() {
    let database = TestDatabase::create().await;
    let (a, b) = (Arc::new(database.open().await), Arc::new(database.open().await));
    for _ in 0..5 {
        let owner = new_owner(&a).await;
        let id = ObjectId::generate();
        let file = NewFile { id, owner: &owner, property: "video", file_name: "v", content_type: None, variants: None };
        a.begin_file(IMAGES.backend, file, Access::Everything).await.unwrap().unwrap();
        assert!(b.record_chunk(IMAGES.backend, id, 0, 4, 8).await.unwrap());
        let complete = |store: Arc<PostgresStore>| async move {
            let bytes = StoredBytes { size: 8, sha256: "x" };
            store.complete_file(IMAGES.backend, id, bytes, Author::default(), Access::Everything).await
        };
        let (first, second) = tokio::join!(tokio::spawn(complete(a.clone())), tokio::spawn(complete(b.clone())));
        let outcomes = [first.unwrap(), second.unwrap()];
        let won = outcomes.iter().filter(|it| matches!(it, Ok(Some(_)))).count();
        let refused = outcomes.iter().filter(|it| matches!(it, Err(StoreError::Invalid { .. }))).count();
        assert_eq!((won, refused), (1, 1), "{outcomes:?}");
        let doc = a.get(IMAGES, owner.id, Access::Everything).await.unwrap().unwrap();
        assert_eq!(doc["video"]["id"], id.to_string());
        let record = b.file(IMAGES.backend, id, false, Access::Everything).await.unwrap().unwrap();
        assert_eq!((record.status, record.received), (FileStatus::Complete, 8));
    }
}
