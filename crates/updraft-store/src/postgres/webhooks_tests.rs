//! The shared webhook outbox on PostgreSQL, with two stores on one database standing for two nodes: claims are
//! exclusive, deliveries of one object go in order, an expired claim is taken over, and `has_webhooks` hears of
//! another node's webhooks.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, json};
use updraft_core::ids::ObjectId;

use super::super::test_database::TestDatabase;
use crate::postgres::{PostgresStore, now_ms};
use crate::{Access, Acl, Author, Collection, DeliveryStatus, Outcome, Patch, Store, WebhookSpec, Webhooks};

const BACKEND: &str = "5376019e698b3c6ad500095a";
const NOTES: Collection<'static> = Collection { backend: BACKEND, object_type: "objects.notes" };

fn spec() -> WebhookSpec {
    WebhookSpec {
        url: "http://127.0.0.1:9/hook".into(),
        object_types: Vec::new(),
        events: Vec::new(),
        headers: Vec::new(),
    }
}

async fn new_note(store: &PostgresStore) -> ObjectId {
    let doc = store.insert(NOTES, Map::new(), Author::default(), Acl::default()).await.unwrap();
    ObjectId::parse(doc["id"].as_str().unwrap()).unwrap()
}

async fn touch(store: &PostgresStore, id: ObjectId, n: i64) {
    let patch = Patch::Merge(json!({ "n": n }).as_object().unwrap().clone());
    store.update(NOTES, id, patch, Author::default(), Access::Everything).await.unwrap().unwrap();
}

fn delivered() -> Outcome {
    Outcome::Delivered { status: 200 }
}

/// Every delivery's object, by delivery id.
async fn objects_of(store: &PostgresStore, webhook: &str) -> BTreeMap<i64, String> {
    let all = store.deliveries(BACKEND, webhook, 1000, 0).await.unwrap();
    all.into_iter().map(|d| (d.id, d.object_id)).collect()
}

/// What the claiming workers saw: ids claimed, and ids finished (marked before their outcome commits, so that a
/// delivery claimed right after its predecessor's commit finds it marked).
#[derive(Default)]
struct Seen {
    claimed: Vec<i64>,
    finished: BTreeSet<i64>,
}

/// A worker: claims a few due deliveries at a time, checks each is the first unfinished one of its object, and
/// records it delivered; ends when all `total` are finished.
async fn work(store: Arc<PostgresStore>, objects: Arc<BTreeMap<i64, String>>, seen: Arc<Mutex<Seen>>) {
    let total = objects.len();
    loop {
        let due = store.due_deliveries(now_ms(), 3, &[]).await.unwrap();
        if due.is_empty() {
            if seen.lock().unwrap().finished.len() == total {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        let mut outcomes = Vec::new();
        {
            let mut seen = seen.lock().unwrap();
            for due in &due {
                let id = due.delivery.id;
                let object = &objects[&id];
                let earlier = objects.range(..id).filter(|(_, o)| *o == object);
                assert!(
                    earlier.clone().all(|(e, _)| seen.finished.contains(e)),
                    "delivery {id} claimed while an earlier one of its object is unfinished"
                );
                seen.claimed.push(id);
                seen.finished.insert(id);
                outcomes.push((id, delivered()));
            }
        }
        tokio::task::yield_now().await;
        store.record_outcomes(&outcomes).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_never_claim_a_delivery_twice_and_keep_each_objects_order() {
    let database = TestDatabase::create().await;
    let (a, b) = (Arc::new(database.open().await), Arc::new(database.open().await));
    let webhook = a.create_webhook(BACKEND, spec(), "secret".into()).await.unwrap();
    // 12 objects made and changed 3 times, interleaved: 48 deliveries, 4 in a row per object.
    let mut notes = Vec::new();
    for _ in 0..12 {
        notes.push(new_note(&a).await);
    }
    for n in 0..3 {
        for (i, id) in notes.iter().enumerate() {
            touch(if i % 2 == 0 { &a } else { &b }, *id, n).await;
        }
    }
    let objects = Arc::new(objects_of(&a, &webhook.id).await);
    assert_eq!(objects.len(), 48);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let workers: Vec<_> = [&a, &b, &a, &b]
        .into_iter()
        .map(|store| tokio::spawn(work(store.clone(), objects.clone(), seen.clone())))
        .collect();
    for worker in workers {
        tokio::time::timeout(Duration::from_secs(60), worker).await.expect("the workers finish").unwrap();
    }
    let claimed = std::mem::take(&mut seen.lock().unwrap().claimed);
    let unique: BTreeSet<i64> = claimed.iter().copied().collect();
    assert_eq!(unique.len(), claimed.len(), "no delivery claimed twice");
    assert_eq!(unique.len(), 48, "every delivery claimed");
    let statuses = a.deliveries(BACKEND, &webhook.id, 1000, 0).await.unwrap();
    assert!(statuses.iter().all(|d| d.status == DeliveryStatus::Delivered && d.attempts == 1));
    assert_eq!(a.next_due().await.unwrap(), None);
}

#[tokio::test]
async fn an_expired_claim_is_taken_over_and_a_release_gives_a_delivery_back_at_once() {
    let database = TestDatabase::create().await;
    let (a, b) = (database.open().await, database.open().await);
    let webhook = a.create_webhook(BACKEND, spec(), "secret".into()).await.unwrap();
    let note = new_note(&a).await;
    touch(&a, note, 1).await;
    let now = now_ms();
    let claimed = a.due_deliveries(now, 10, &[]).await.unwrap();
    assert_eq!(claimed.len(), 1, "the update waits behind the creation");
    let first = claimed[0].delivery.id;
    assert_eq!(claimed[0].webhook.id, webhook.id);
    assert!(b.due_deliveries(now + 1000, 10, &[]).await.unwrap().is_empty(), "claimed, and the next waits");
    let leased = a.deliveries(BACKEND, &webhook.id, 10, 0).await.unwrap();
    let lease = a.webhook_lease_ms;
    assert!(leased.iter().find(|d| d.id == first).unwrap().next_ms >= now + lease, "due when the lease ends");
    // The claiming node died: after the lease, another takes the same delivery, and still not the next.
    let later = now + lease + 1;
    let taken = b.due_deliveries(later, 10, &[]).await.unwrap();
    assert_eq!(taken.iter().map(|d| d.delivery.id).collect::<Vec<_>>(), [first]);
    assert!(a.due_deliveries(later, 10, &[]).await.unwrap().is_empty());
    b.record_outcomes(&[(first, delivered())]).await.unwrap();
    let second = a.due_deliveries(now_ms(), 10, &[]).await.unwrap();
    assert_eq!(second.len(), 1);
    assert!(second[0].delivery.id > first);
    // Given back unattempted: due at once, for any node.
    a.release(&[second[0].delivery.id]).await.unwrap();
    let again = b.due_deliveries(now_ms(), 10, &[]).await.unwrap();
    assert_eq!(again.iter().map(|d| d.delivery.id).collect::<Vec<_>>(), [second[0].delivery.id]);
}

#[tokio::test]
async fn a_redelivery_during_a_claim_keeps_the_lease_and_outcomes_set_the_state() {
    let database = TestDatabase::create().await;
    let (a, b) = (database.open().await, database.open().await);
    let webhook = a.create_webhook(BACKEND, spec(), "secret".into()).await.unwrap();
    new_note(&a).await;
    let claimed = a.due_deliveries(now_ms(), 10, &[]).await.unwrap();
    let id = claimed[0].delivery.id;
    let redelivered = b.redeliver(BACKEND, &webhook.id, id).await.unwrap().unwrap();
    assert_eq!((redelivered.status, redelivered.attempts), (DeliveryStatus::Pending, 0));
    assert!(redelivered.next_ms > now_ms() + 1000, "still leased");
    assert!(b.due_deliveries(now_ms(), 10, &[]).await.unwrap().is_empty(), "no second attempt meanwhile");
    // A retry, then death; a dead delivery is redelivered at once.
    let retry_at = now_ms() + 60_000;
    let retry = Outcome::Retry { next_ms: retry_at, status: Some(503), error: "busy".into() };
    a.record_outcomes(&[(id, retry)]).await.unwrap();
    assert_eq!(b.next_due().await.unwrap(), Some(retry_at));
    let claimed = b.due_deliveries(retry_at, 10, &[]).await.unwrap();
    assert_eq!(claimed[0].delivery.attempts, 1);
    b.record_outcomes(&[(id, Outcome::Dead { status: None, error: "refused".into() })]).await.unwrap();
    let dead = &a.deliveries(BACKEND, &webhook.id, 10, 0).await.unwrap()[0];
    assert_eq!((dead.status, dead.attempts, dead.last_error.as_deref()), (DeliveryStatus::Dead, 2, Some("refused")));
    let again = a.redeliver(BACKEND, &webhook.id, id).await.unwrap().unwrap();
    assert!(again.next_ms <= now_ms() && again.finished_ms.is_none());
    assert_eq!(b.due_deliveries(now_ms(), 10, &[]).await.unwrap().len(), 1);
    assert!(a.redeliver("another backend", &webhook.id, id).await.unwrap().is_none());
    // Only finished deliveries are pruned; deleting the webhook takes the rest.
    assert_eq!(a.prune_deliveries(now_ms() + 1).await.unwrap(), 0, "pending again");
    assert!(a.delete_webhook(BACKEND, &webhook.id).await.unwrap());
    assert_eq!(a.next_due().await.unwrap(), None);
}

#[tokio::test]
async fn webhooks_are_managed_per_backend_and_another_nodes_first_webhook_is_heard_of() {
    let database = TestDatabase::create().await;
    let (a, b) = (database.open().await, database.open().await);
    assert!(!a.has_webhooks() && !b.has_webhooks());
    let mut asked = spec();
    asked.object_types = vec!["objects.notes".into()];
    asked.events = vec![crate::ChangeEvent::Update];
    asked.headers = vec![("Authorization".into(), "Bearer x".into())];
    let webhook = b.create_webhook(BACKEND, asked.clone(), "secret".into()).await.unwrap();
    assert!(b.has_webhooks());
    let heard = async {
        while !a.has_webhooks() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), heard).await.expect("node a counts b's webhook");
    assert_eq!(a.webhook(BACKEND, &webhook.id).await.unwrap().unwrap().spec, asked);
    assert!(a.webhook("another backend", &webhook.id).await.unwrap().is_none());
    assert_eq!(a.webhooks(BACKEND).await.unwrap(), std::slice::from_ref(&webhook));
    // Only updates of notes are queued.
    let note = new_note(&a).await;
    touch(&a, note, 1).await;
    let queued = a.deliveries(BACKEND, &webhook.id, 10, 0).await.unwrap();
    assert_eq!(queued.len(), 1);
    let mut changed = asked;
    changed.url = "http://127.0.0.1:9/other".into();
    let updated = a.update_webhook(BACKEND, &webhook.id, changed.clone()).await.unwrap().unwrap();
    assert_eq!(updated.spec, changed);
    assert!(a.update_webhook("another backend", &webhook.id, changed).await.unwrap().is_none());
    assert!(!a.delete_webhook("another backend", &webhook.id).await.unwrap());
    assert!(a.delete_webhook(BACKEND, &webhook.id).await.unwrap());
    assert!(!a.has_webhooks());
    let gone = async {
        while b.has_webhooks() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), gone).await.expect("node b hears the webhook went");
}
