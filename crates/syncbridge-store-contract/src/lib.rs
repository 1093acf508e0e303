//! The store contract: one suite, every backend.
//!
//! Each backend's test file builds a fresh, empty store per case and calls
//! [`run_all`] (or a single case). A case panics with a message naming the
//! broken promise; the promises are the invariants documented on
//! [`syncbridge_core::store`].

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use syncbridge_core::model::{
    Connection, ConnectionStatus, Direction, Lease, Priority, QuarantinedMessage, RunCounts,
    RunStatus, SyncRun, SyncTask, WebhookEvent, content_hash,
};
use syncbridge_core::store::{PageCommit, RecordUpsert, SealedCredential};
use syncbridge_core::{
    ConnectionId, ExternalId, ObjectType, RunId, Store, StoreError, TenantId, Timestamp,
};

const T0: Timestamp = Timestamp::from_millis(1_764_000_000_000);

/// A connection for tests.
pub fn connection(id: &str, tenant: &str) -> Connection {
    Connection {
        id: ConnectionId::parse(id).unwrap(),
        tenant: TenantId::parse(tenant).unwrap(),
        provider: "sandbox".into(),
        status: ConnectionStatus::Active,
        base_url: Some("http://127.0.0.1:1".into()),
        webhook: None,
        settings: Default::default(),
        created_at: T0,
    }
}

/// An inbound task for tests, due at `T0`.
pub fn task(conn: &str, object: &str, priority: Priority) -> SyncTask {
    let c = ConnectionId::parse(conn).unwrap();
    let o = ObjectType::parse(object).unwrap();
    SyncTask {
        id: SyncTask::id_for(&c, &o, Direction::Inbound),
        tenant: TenantId::parse("t1").unwrap(),
        connection: c,
        object: o,
        direction: Direction::Inbound,
        priority,
        interval_secs: 60,
        next_run_at: T0,
        cursor: None,
        lease: None,
        last_run_at: None,
        stalled: false,
        version: 0,
    }
}

fn upsert(id: &str, name: &str) -> RecordUpsert {
    let data = json!({ "name": name });
    RecordUpsert {
        external_id: ExternalId::parse(id).unwrap(),
        hash: content_hash(&data),
        data,
        remote_updated_at: Some(T0),
    }
}

fn page(
    t: &SyncTask,
    token: &str,
    upserts: Vec<RecordUpsert>,
    deletes: &[&str],
    cursor: &str,
) -> PageCommit {
    PageCommit {
        task: t.id.clone(),
        lease_token: token.into(),
        connection: t.connection.clone(),
        object: t.object.clone(),
        upserts,
        deletes: deletes
            .iter()
            .map(|d| ExternalId::parse(*d).unwrap())
            .collect(),
        cursor: Some(cursor.into()),
    }
}

async fn leased(store: &dyn Store, t: &SyncTask, token: &str) -> SyncTask {
    store.put_task(t).await.unwrap();
    let lease = Lease {
        token: token.into(),
        until: T0.add(Duration::from_secs(300)),
    };
    assert!(
        store.lease_task(&t.id, t.version, &lease).await.unwrap(),
        "fresh lease must succeed"
    );
    store.get_task(&t.id).await.unwrap().unwrap()
}

/// Connections: put, get, list by tenant, replace, delete (with their tasks).
pub async fn connections_crud(store: Arc<dyn Store>) {
    store.put_connection(&connection("b", "t1")).await.unwrap();
    store.put_connection(&connection("a", "t2")).await.unwrap();
    let all = store.list_connections(None).await.unwrap();
    assert_eq!(
        all.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        ["a", "b"],
        "ordered by id"
    );
    let t1 = store
        .list_connections(Some(&TenantId::parse("t1").unwrap()))
        .await
        .unwrap();
    assert_eq!(t1.len(), 1);
    let mut b = connection("b", "t1");
    b.status = ConnectionStatus::NeedsReauth;
    store.put_connection(&b).await.unwrap();
    assert_eq!(
        store.get_connection(&b.id).await.unwrap(),
        Some(b.clone()),
        "put replaces"
    );
    store
        .put_task(&task("b", "contacts", Priority::Scheduled))
        .await
        .unwrap();
    assert!(store.delete_connection(&b.id).await.unwrap());
    assert!(
        !store.delete_connection(&b.id).await.unwrap(),
        "second delete reports absence"
    );
    assert_eq!(store.get_connection(&b.id).await.unwrap(), None);
    assert!(
        store.list_tasks(Some(&b.id)).await.unwrap().is_empty(),
        "tasks go with the connection"
    );
}

/// Due tasks come most urgent first and skip live leases; expired leases are due again.
pub async fn due_tasks_order_and_leases(store: Arc<dyn Store>) {
    let mut late = task("c1", "deals", Priority::Scheduled);
    late.next_run_at = T0.add(Duration::from_secs(3600));
    store.put_task(&late).await.unwrap();
    store
        .put_task(&task("c1", "contacts", Priority::Backfill))
        .await
        .unwrap();
    store
        .put_task(&task("c2", "contacts", Priority::Interactive))
        .await
        .unwrap();
    let due = store.due_tasks(T0, 10).await.unwrap();
    let ids: Vec<_> = due.iter().map(|t| t.id.to_string()).collect();
    assert_eq!(
        ids,
        ["c2:contacts:inbound", "c1:contacts:inbound"],
        "priority order, future task excluded"
    );
    assert_eq!(
        store.due_tasks(T0, 1).await.unwrap().len(),
        1,
        "limit respected"
    );

    let t = due[0].clone();
    let lease = Lease {
        token: "L1".into(),
        until: T0.add(Duration::from_secs(60)),
    };
    assert!(store.lease_task(&t.id, t.version, &lease).await.unwrap());
    assert!(
        !store.lease_task(&t.id, t.version, &lease).await.unwrap(),
        "a second lease at the old version loses the compare-and-swap"
    );
    assert_eq!(
        store.due_tasks(T0, 10).await.unwrap().len(),
        1,
        "a live lease hides the task"
    );
    let after_expiry = T0.add(Duration::from_secs(61));
    assert_eq!(
        store.due_tasks(after_expiry, 10).await.unwrap().len(),
        2,
        "an expired lease is due again"
    );

    assert!(
        !store.release_task(&t.id, "wrong", T0, T0).await.unwrap(),
        "release needs the token"
    );
    let next = T0.add(Duration::from_secs(60));
    assert!(store.release_task(&t.id, "L1", next, T0).await.unwrap());
    let r = store.get_task(&t.id).await.unwrap().unwrap();
    assert_eq!(
        (r.lease, r.next_run_at, r.last_run_at),
        (None, next, Some(T0))
    );
}

/// A page commit writes records and cursor together, skips unchanged hashes,
/// bumps versions only on change, and deletes.
pub async fn page_commit_counts_and_versions(store: Arc<dyn Store>) {
    let t = leased(&*store, &task("c1", "contacts", Priority::Scheduled), "L").await;
    let out = store
        .commit_page(&page(
            &t,
            "L",
            vec![upsert("1", "a"), upsert("2", "b")],
            &[],
            "p1",
        ))
        .await
        .unwrap();
    assert_eq!(
        (out.created, out.updated, out.unchanged, out.deleted),
        (2, 0, 0, 0)
    );
    assert_eq!(
        store
            .get_task(&t.id)
            .await
            .unwrap()
            .unwrap()
            .cursor
            .as_deref(),
        Some("p1")
    );

    let out = store
        .commit_page(&page(
            &t,
            "L",
            vec![upsert("1", "a"), upsert("2", "B")],
            &["3"],
            "p2",
        ))
        .await
        .unwrap();
    assert_eq!(
        (out.created, out.updated, out.unchanged, out.deleted),
        (0, 1, 1, 0),
        "absent delete not counted"
    );
    let r2 = store
        .get_record(&t.connection, &t.object, &ExternalId::parse("2").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((r2.version, r2.data["name"].as_str()), (2, Some("B")));
    let r1 = store
        .get_record(&t.connection, &t.object, &ExternalId::parse("1").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r1.version, 1, "unchanged content keeps its version");

    let out = store
        .commit_page(&page(&t, "L", vec![], &["1"], "p3"))
        .await
        .unwrap();
    assert_eq!(out.deleted, 1);
    assert_eq!(
        store.count_records(&t.connection, &t.object).await.unwrap(),
        1
    );
    let listed = store
        .list_records(&t.connection, &t.object, None, 10)
        .await
        .unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|r| r.external_id.as_str())
            .collect::<Vec<_>>(),
        ["2"]
    );
}

/// A commit under a lost lease changes nothing: neither records nor cursor.
pub async fn page_commit_requires_lease(store: Arc<dyn Store>) {
    let t = leased(&*store, &task("c1", "contacts", Priority::Scheduled), "L").await;
    store
        .commit_page(&page(&t, "L", vec![upsert("1", "a")], &[], "p1"))
        .await
        .unwrap();
    let err = store
        .commit_page(&page(
            &t,
            "stale",
            vec![upsert("1", "changed"), upsert("9", "x")],
            &[],
            "p9",
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LeaseLost(_)), "got {err:?}");
    assert_eq!(
        store
            .get_task(&t.id)
            .await
            .unwrap()
            .unwrap()
            .cursor
            .as_deref(),
        Some("p1")
    );
    assert_eq!(
        store.count_records(&t.connection, &t.object).await.unwrap(),
        1
    );
    let r = store
        .get_record(&t.connection, &t.object, &ExternalId::parse("1").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.data["name"], "a");
}

/// Runs are listed newest first and replaced by id.
pub async fn runs_round_trip(store: Arc<dyn Store>) {
    let t = task("c1", "contacts", Priority::Scheduled);
    for i in 0..3 {
        let run = SyncRun {
            id: RunId::parse(format!("r{i}")).unwrap(),
            task: t.id.clone(),
            connection: t.connection.clone(),
            started_at: T0.add(Duration::from_secs(i)),
            finished_at: None,
            status: RunStatus::Running,
            counts: RunCounts::default(),
            error: None,
        };
        store.put_run(&run).await.unwrap();
    }
    let mut r = store.list_runs(Some(&t.id), 10).await.unwrap()[0].clone();
    assert_eq!(r.id.as_str(), "r2", "newest first");
    r.status = RunStatus::Succeeded;
    r.counts.created = 5;
    store.put_run(&r).await.unwrap();
    let again = store.list_runs(None, 10).await.unwrap();
    assert_eq!(again.len(), 3);
    assert_eq!(again[0], r);
}

/// Webhook events dedup by key inside the window, and are accepted again after it.
pub async fn webhook_dedup_window(store: Arc<dyn Store>) {
    let e = WebhookEvent {
        connection: ConnectionId::parse("c1").unwrap(),
        dedup_key: "evt_1".into(),
        received_at: T0,
        body: b"{}".to_vec(),
    };
    let window = Duration::from_secs(600);
    assert!(
        store
            .insert_webhook_event(&e, T0.sub(window))
            .await
            .unwrap()
    );
    let mut again = e.clone();
    again.received_at = T0.add(Duration::from_secs(5));
    assert!(
        !store
            .insert_webhook_event(&again, again.received_at.sub(window))
            .await
            .unwrap(),
        "duplicate inside window"
    );
    let mut other = e.clone();
    other.connection = ConnectionId::parse("c2").unwrap();
    assert!(
        store
            .insert_webhook_event(&other, T0.sub(window))
            .await
            .unwrap(),
        "keys are per connection"
    );
    let mut late = e.clone();
    late.received_at = T0.add(Duration::from_secs(601));
    assert!(
        store
            .insert_webhook_event(&late, late.received_at.sub(window))
            .await
            .unwrap(),
        "accepted after the window"
    );
}

/// A batch of events dedups against stored events and within itself, in order.
pub async fn webhook_batch_dedup(store: Arc<dyn Store>) {
    let ev = |key: &str, at: Timestamp| WebhookEvent {
        connection: ConnectionId::parse("c1").unwrap(),
        dedup_key: key.into(),
        received_at: at,
        body: key.as_bytes().to_vec(),
    };
    let window = Duration::from_secs(600);
    assert!(
        store
            .insert_webhook_event(&ev("a", T0), T0.sub(window))
            .await
            .unwrap()
    );
    let later = T0.add(Duration::from_secs(1));
    let got = store
        .insert_webhook_events(
            &[
                ev("a", later),
                ev("b", later),
                ev("b", later),
                ev("c", later),
            ],
            window,
        )
        .await
        .unwrap();
    assert_eq!(
        got,
        [false, true, false, true],
        "stored dup, new, in-batch dup, new"
    );
}

/// Quarantine keeps messages in order and hands each back exactly once.
pub async fn quarantine_and_replay(store: Arc<dyn Store>) {
    for i in 0..2 {
        let m = QuarantinedMessage {
            source: "SyncInboundWorker".into(),
            message_id: Some(format!("m{i}")),
            connection: (i == 1).then(|| ConnectionId::parse("c1").unwrap()),
            reason: "body is not a sync job".into(),
            body: vec![0xff, i],
            at: T0,
        };
        store.quarantine(&m).await.unwrap();
    }
    let list = store.list_quarantine(10).await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].message.message_id.as_deref(), Some("m0"));
    assert_eq!(
        list[1].message.connection.as_ref().map(|c| c.as_str()),
        Some("c1")
    );
    let taken = store.take_quarantined(list[0].id).await.unwrap().unwrap();
    assert_eq!(taken.body, vec![0xff, 0]);
    assert_eq!(
        store.take_quarantined(list[0].id).await.unwrap(),
        None,
        "taken only once"
    );
    assert_eq!(store.list_quarantine(10).await.unwrap().len(), 1);
}

fn sealed(conn: &str, version: i64, expires: Option<i64>) -> SealedCredential {
    SealedCredential {
        connection: ConnectionId::parse(conn).unwrap(),
        version,
        key_version: "k1".into(),
        nonce: vec![1; 12],
        ciphertext: vec![version as u8; 32],
        expires_at: expires.map(Timestamp::from_millis),
        refreshed_at: T0,
    }
}

/// Credentials are saved by compare-and-swap on their version; the loser of a race writes nothing.
pub async fn credential_compare_and_swap(store: Arc<dyn Store>) {
    let id = ConnectionId::parse("c1").unwrap();
    assert!(
        store
            .put_credential(&sealed("c1", 1, Some(100)), None)
            .await
            .unwrap(),
        "create"
    );
    assert!(
        !store
            .put_credential(&sealed("c1", 1, Some(100)), None)
            .await
            .unwrap(),
        "create twice loses"
    );
    assert!(
        store
            .put_credential(&sealed("c1", 2, Some(200)), Some(1))
            .await
            .unwrap(),
        "swap from 1"
    );
    assert!(
        !store
            .put_credential(&sealed("c1", 2, Some(300)), Some(1))
            .await
            .unwrap(),
        "stale swap loses"
    );
    let got = store.get_credential(&id).await.unwrap().unwrap();
    assert_eq!(got, sealed("c1", 2, Some(200)));
    store
        .put_credential(&sealed("c2", 1, Some(50)), None)
        .await
        .unwrap();
    store
        .put_credential(&sealed("c3", 1, None), None)
        .await
        .unwrap();
    let due = store
        .credentials_expiring(Timestamp::from_millis(250), 10)
        .await
        .unwrap();
    assert_eq!(
        due.iter()
            .map(|c| c.connection.as_str())
            .collect::<Vec<_>>(),
        ["c2", "c1"],
        "soonest first; no-expiry credentials excluded"
    );
    assert_eq!(
        store
            .get_credential(&ConnectionId::parse("nope").unwrap())
            .await
            .unwrap(),
        None
    );
}

/// A named lock has one holder until it expires or is released.
pub async fn named_locks(store: Arc<dyn Store>) {
    let t = |ms| Timestamp::from_millis(ms);
    assert!(
        store
            .try_lock("refresh:c1", "a", t(1000), t(0))
            .await
            .unwrap()
    );
    assert!(
        !store
            .try_lock("refresh:c1", "b", t(1000), t(10))
            .await
            .unwrap(),
        "held by a"
    );
    assert!(
        store
            .try_lock("refresh:c1", "a", t(2000), t(10))
            .await
            .unwrap(),
        "the holder may extend"
    );
    assert!(
        store
            .try_lock("refresh:c2", "b", t(1000), t(10))
            .await
            .unwrap(),
        "locks are per name"
    );
    store.unlock("refresh:c1", "b").await.unwrap();
    assert!(
        !store
            .try_lock("refresh:c1", "b", t(3000), t(20))
            .await
            .unwrap(),
        "only the holder unlocks"
    );
    store.unlock("refresh:c1", "a").await.unwrap();
    assert!(
        store
            .try_lock("refresh:c1", "b", t(3000), t(20))
            .await
            .unwrap(),
        "free after unlock"
    );
    assert!(
        store
            .try_lock("refresh:c1", "c", t(9000), t(3000))
            .await
            .unwrap(),
        "free after expiry"
    );
}

/// Runs every contract case, each against a fresh store from `make`.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Arc<dyn Store>>,
{
    connections_crud(make().await).await;
    due_tasks_order_and_leases(make().await).await;
    page_commit_counts_and_versions(make().await).await;
    page_commit_requires_lease(make().await).await;
    runs_round_trip(make().await).await;
    webhook_dedup_window(make().await).await;
    webhook_batch_dedup(make().await).await;
    quarantine_and_replay(make().await).await;
    credential_compare_and_swap(make().await).await;
    named_locks(make().await).await;
}
