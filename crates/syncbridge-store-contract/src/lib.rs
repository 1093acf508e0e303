//! The store contract: one suite, every backend.
//!
//! Each backend's test file builds a fresh, empty store per case and calls
//! [`run_all`] (or a single case). A case panics with a message naming the
//! broken promise; the promises are the invariants documented on
//! [`syncbridge_core::store`].

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use syncbridge_core::apikeys::{ApiKey, ApiScope};
use syncbridge_core::connect::{ConnectOutcome, ConnectSession, ConnectStage};
use syncbridge_core::model::{
    AuditRecord, Connection, ConnectionStatus, Direction, Lease, LocalState, Priority,
    QuarantinedMessage, Record, RunCounts, RunStatus, SyncRun, SyncTask, WebhookEvent,
    content_hash,
};
use syncbridge_core::store::{
    ActionFilter, AuditQuery, ClaimOutcome, ConflictQuery, ConnectionQuery, FeedEntry, FeedQuery,
    IdempotencyClaim, LastAction, LeaseRequest, PageCommit, RecordKey, RecordUpsert, RecordWrite,
    RunBucket, RunKey, RunQuery, RunStatsQuery, SealedCredential, StoredAnswer,
};
use syncbridge_core::{
    ConnectionId, ExternalId, ManualClock, ObjectType, RunId, Store, StoreError, TenantId,
    Timestamp,
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
        conflicts: Default::default(),
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
        generation: 0,
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

/// Optimistic concurrency on connections (the API's `ETag`).
///
/// Tried: a replace under the tag just read; a second replace under the
/// now stale tag; a `put_connection` between a read and a replace; a
/// replace of a missing connection; the connection deleted and created
/// again, then a replace under a tag from before the delete.
///
/// Must hold: the current tag wins and returns a new tag equal to what a
/// read returns; a stale tag is `Conflict` and writes nothing; every write
/// (put too) changes the tag; missing is `NotFound`; a tag never comes back
/// for the connection created again.
pub async fn connection_versions(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let mut c = connection("v1", "t1");
    s.put_connection(&c).await.unwrap();
    let (read, t1) = s.get_connection_tagged(&c.id).await.unwrap().unwrap();
    assert_eq!(read, c);
    assert!(
        !t1.is_empty() && !t1.contains('"'),
        "opaque, without quotes: {t1:?}"
    );
    c.status = ConnectionStatus::Disabled;
    let t2 = s.replace_connection(&c, &t1).await.unwrap();
    assert_ne!(t2, t1, "a write changes the tag");
    let (now, t) = s.get_connection_tagged(&c.id).await.unwrap().unwrap();
    assert_eq!((&now, &t), (&c, &t2), "the write and its tag");
    let mut stale = c.clone();
    stale.status = ConnectionStatus::Active;
    assert!(
        matches!(
            s.replace_connection(&stale, &t1).await,
            Err(StoreError::Conflict(_))
        ),
        "a stale tag loses"
    );
    assert_eq!(
        s.get_connection(&c.id).await.unwrap(),
        Some(c.clone()),
        "and writes nothing"
    );
    c.base_url = Some("http://127.0.0.1:2".into());
    s.put_connection(&c).await.unwrap();
    let (_, t3) = s.get_connection_tagged(&c.id).await.unwrap().unwrap();
    assert_ne!(t3, t2, "put changes the tag too");
    assert!(matches!(
        s.replace_connection(&c, &t2).await,
        Err(StoreError::Conflict(_))
    ));
    let missing = connection("nope", "t1");
    assert!(matches!(
        s.replace_connection(&missing, "x").await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.get_connection_tagged(&missing.id).await.unwrap(), None);
    assert!(s.delete_connection(&c.id).await.unwrap());
    let mut again = connection("v1", "t1");
    again.created_at = T0.add(Duration::from_secs(1));
    s.put_connection(&again).await.unwrap();
    let (_, fresh) = s.get_connection_tagged(&again.id).await.unwrap().unwrap();
    assert!(
        ![&t1, &t2, &t3].contains(&&fresh),
        "no tag of the deleted connection comes back: {fresh}"
    );
    assert!(matches!(
        s.replace_connection(&again, &t1).await,
        Err(StoreError::Conflict(_))
    ));
}

/// Function heartbeats (health).
///
/// Tried: a success and a failure of one function, a late-arriving older
/// beat, a beat of a second function, concurrent beats of one function, a
/// beat an hour later.
///
/// Must hold: the stored beat is the merge of all (latest times whatever
/// the arrival order, the latest failure's kind, every failure time once);
/// concurrent beats lose none of their failures; the list is ordered by
/// function; failures out of the window are dropped.
pub async fn function_beats(store: Arc<dyn Store>) {
    use syncbridge_core::heartbeat::{FunctionBeat, Outcome};
    let s = store.as_ref();
    let fail = |kind: &str| Outcome::Failure { kind: kind.into() };
    assert!(s.list_function_beats().await.unwrap().is_empty());
    let w = "SyncInboundWorker";
    s.put_function_beat(&FunctionBeat::of(w, at(10), &Outcome::Success))
        .await
        .unwrap();
    s.put_function_beat(&FunctionBeat::of(w, at(20), &fail("store")))
        .await
        .unwrap();
    s.put_function_beat(&FunctionBeat::of(w, at(5), &fail("queue")))
        .await
        .unwrap();
    s.put_function_beat(&FunctionBeat::of("SyncScheduler", at(7), &Outcome::Success))
        .await
        .unwrap();
    let beats = s.list_function_beats().await.unwrap();
    assert_eq!(
        beats
            .iter()
            .map(|b| b.function.as_str())
            .collect::<Vec<_>>(),
        ["SyncInboundWorker", "SyncScheduler"],
        "ordered by function"
    );
    let b = &beats[0];
    assert_eq!(
        (b.last_invocation, b.last_success, b.last_failure),
        (at(20), Some(at(10)), Some(at(20))),
        "latest of each, whatever the arrival order"
    );
    assert_eq!(b.last_error_kind.as_deref(), Some("store"));
    assert_eq!(b.failures, [at(5), at(20)]);
    assert_eq!(beats[1].failures, []);

    let mut writes = tokio::task::JoinSet::new();
    for i in 0..8 {
        let store = store.clone();
        let beat = FunctionBeat::of(w, at(30 + i), &fail("push"));
        writes.spawn(async move { store.put_function_beat(&beat).await });
    }
    while let Some(r) = writes.join_next().await {
        r.unwrap().unwrap();
    }
    let b = s.list_function_beats().await.unwrap().remove(0);
    assert_eq!(b.failures.len(), 10, "no concurrent failure lost: {b:?}");
    assert_eq!(b.recent_failures(at(40)), 10);

    s.put_function_beat(&FunctionBeat::of(w, at(3700), &Outcome::Success))
        .await
        .unwrap();
    let b = s.list_function_beats().await.unwrap().remove(0);
    assert!(b.failures.is_empty(), "an hour later: {b:?}");
    assert_eq!(b.last_error_kind.as_deref(), Some("push"), "kept");
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

/// What was tried: a webhook follow-up is asked for while a run holds the
/// task's lease, then the run ends with its usual next time an hour on.
/// What must hold: the follow-up is not erased: the task is due at once
/// with the webhook priority. A boost that started the run is used up by
/// it (the next run is the scheduled one).
pub async fn run_requested_during_a_lease_survives_its_release(store: Arc<dyn Store>) {
    let hour = T0.add(Duration::from_secs(3600));
    let t = leased(&*store, &task("c1", "contacts", Priority::Scheduled), "L").await;
    store
        .request_run(&t.id, Priority::WebhookFollowUp, T0)
        .await
        .unwrap();
    assert!(store.release_task(&t.id, "L", hour, T0).await.unwrap());
    let r = store.get_task(&t.id).await.unwrap().unwrap();
    assert_eq!(
        (r.next_run_at, r.priority, r.lease),
        (T0, Priority::WebhookFollowUp, None),
        "asked for during the run: due at once"
    );

    let boosted = leased(&*store, &task("c2", "contacts", Priority::Interactive), "M").await;
    assert!(
        store
            .release_task(&boosted.id, "M", hour, T0)
            .await
            .unwrap()
    );
    let r = store.get_task(&boosted.id).await.unwrap().unwrap();
    assert_eq!(
        (r.next_run_at, r.priority),
        (hour, Priority::Scheduled),
        "the boost that started the run is used up"
    );
}

/// What was tried: tasks that ran recently, ran long ago, never ran, are
/// flagged already, are leased; leases taken in one batch, one of them at a
/// stale version. What must hold: the watchdog's candidates are exactly the
/// unflagged tasks past twice their interval, earliest deadline first; a
/// flag or a finished run removes a task from them; a batch lease takes
/// exactly the requests at the current version, and a tick with nothing
/// eligible gets nothing while leases are live.
#[allow(clippy::too_many_lines, reason = "a contract case: tests are exempt")]
pub async fn stall_candidates_and_batch_leases(store: Arc<dyn Store>) {
    let secs = |n| T0.add(Duration::from_secs(n));
    // interval 60 s: stalled 120 s after the last run (or first due time).
    let mut fresh = task("c1", "contacts", Priority::Scheduled);
    fresh.last_run_at = Some(secs(100));
    let mut old = task("c1", "deals", Priority::Scheduled);
    old.last_run_at = Some(secs(10));
    let never = task("c2", "contacts", Priority::Scheduled); // due at T0
    let mut flagged = task("c2", "deals", Priority::Scheduled);
    flagged.stalled = true;
    for t in [&fresh, &old, &never, &flagged] {
        store.put_task(t).await.unwrap();
    }
    let ids = |v: Vec<SyncTask>| v.into_iter().map(|t| t.id.to_string()).collect::<Vec<_>>();
    assert_eq!(
        ids(store.stall_candidates(secs(200), 10).await.unwrap()),
        ["c2:contacts:inbound", "c1:deals:inbound"],
        "past the deadline (T0+120 s, T0+130 s), earliest first; recent and flagged excluded"
    );
    assert!(
        store
            .stall_candidates(secs(120), 10)
            .await
            .unwrap()
            .is_empty(),
        "exactly at the deadline is not yet stalled"
    );
    assert_eq!(store.stall_candidates(secs(200), 1).await.unwrap().len(), 1);
    store.set_task_stalled(&never.id, true).await.unwrap();
    assert_eq!(
        ids(store.stall_candidates(secs(200), 10).await.unwrap()),
        ["c1:deals:inbound"],
        "a flagged task is no longer a candidate"
    );

    let current = store.get_task(&old.id).await.unwrap().unwrap();
    let lease = |token: &str| Lease {
        token: token.into(),
        until: secs(1000),
    };
    let mut stale = store.get_task(&fresh.id).await.unwrap().unwrap();
    stale.version += 7;
    let taken = store
        .lease_tasks(&[
            LeaseRequest {
                task: current,
                lease: lease("A"),
            },
            LeaseRequest {
                task: stale,
                lease: lease("B"),
            },
        ])
        .await
        .unwrap();
    assert_eq!(
        taken,
        [true, false],
        "only the request at the current version wins"
    );
    assert_eq!(
        store.get_task(&old.id).await.unwrap().unwrap().lease,
        Some(lease("A")),
        "the winner holds its lease"
    );
    assert_eq!(
        store.get_task(&fresh.id).await.unwrap().unwrap().lease,
        None,
        "the losing request wrote nothing"
    );
    assert!(
        !ids(store.due_tasks(secs(999), 10).await.unwrap()).contains(&old.id.to_string()),
        "a live lease is not due"
    );
    assert!(
        store
            .release_task(&old.id, "A", secs(5000), secs(500))
            .await
            .unwrap()
    );
    assert_eq!(
        ids(store.stall_candidates(secs(600), 10).await.unwrap()),
        ["c1:contacts:inbound"],
        "a finished run moves its deadline to T0+500 s + 120 s (the other task's passed at T0+220 s)"
    );
    assert_eq!(
        ids(store.stall_candidates(secs(621), 10).await.unwrap()),
        ["c1:contacts:inbound", "c1:deals:inbound"]
    );
    // A batch lease uses up a boost, in the document and in what due_tasks orders by.
    let boosted = task("c3", "contacts", Priority::Interactive);
    let follow_up = task("c4", "contacts", Priority::WebhookFollowUp);
    store.put_task(&boosted).await.unwrap();
    store.put_task(&follow_up).await.unwrap();
    let taken = store
        .lease_tasks(&[LeaseRequest {
            task: boosted.clone(),
            lease: lease("C"),
        }])
        .await
        .unwrap();
    assert_eq!(taken, [true]);
    let stored = store.get_task(&boosted.id).await.unwrap().unwrap();
    assert_eq!(stored.priority, Priority::Scheduled, "the boost is used up");
    let after_expiry = ids(store.due_tasks(secs(1001), 10).await.unwrap());
    assert_eq!(
        after_expiry[0],
        follow_up.id.to_string(),
        "{after_expiry:?}"
    );
    assert!(
        after_expiry.contains(&boosted.id.to_string()),
        "expired lease: due again"
    );

    // A task replaced at the same version (a connection added again with
    // --replace) after the tick read it: the lease never brings back the
    // replaced task's document.
    let mut first = task("c5", "contacts", Priority::Scheduled);
    first.generation = 1;
    store.put_task(&first).await.unwrap();
    let read = store.get_task(&first.id).await.unwrap().unwrap();
    let mut replacement = first.clone();
    replacement.generation = 2;
    replacement.interval_secs = 7200;
    store.put_task(&replacement).await.unwrap();
    store
        .lease_tasks(&[LeaseRequest {
            task: read,
            lease: lease("D"),
        }])
        .await
        .unwrap();
    let now_stored = store.get_task(&first.id).await.unwrap().unwrap();
    assert_eq!(
        (now_stored.generation, now_stored.interval_secs),
        (2, 7200),
        "the replacement stands"
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

/// What was tried: events stored across two dedup windows, then pruned with
/// the cutoff the receiver uses (`now - window`). What holds: an event inside
/// the window is never pruned (its redelivery is still a duplicate), an older
/// one may be (backends with a TTL prune nothing themselves), and pruning never
/// removes more than asked.
pub async fn webhook_prune_keeps_window(store: Arc<dyn Store>) {
    let window = Duration::from_secs(600);
    let ev = |key: &str, at: Timestamp| WebhookEvent {
        connection: ConnectionId::parse("c1").unwrap(),
        dedup_key: key.into(),
        received_at: at,
        body: b"{}".to_vec(),
    };
    let old_at = T0;
    let now = T0.add(Duration::from_secs(1000));
    for k in ["old_1", "old_2", "old_3"] {
        assert!(
            store
                .insert_webhook_event(&ev(k, old_at), old_at.sub(window))
                .await
                .unwrap()
        );
    }
    let fresh = ev("fresh", now.sub(Duration::from_secs(10)));
    assert!(
        store
            .insert_webhook_event(&fresh, fresh.received_at.sub(window))
            .await
            .unwrap()
    );
    let cutoff = now.sub(window);
    let first = store.prune_webhook_events(cutoff, 2).await.unwrap();
    assert!(first <= 2, "pruned {first}, more than the limit of 2");
    let rest = store.prune_webhook_events(cutoff, 100).await.unwrap();
    assert!(first + rest <= 3, "only the three old events can go");
    let mut redelivery = fresh.clone();
    redelivery.received_at = now;
    assert!(
        !store
            .insert_webhook_event(&redelivery, now.sub(window))
            .await
            .unwrap(),
        "an event inside the window survives pruning: its redelivery is a duplicate"
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
        // The credentials layer derives it; here simply the expiry.
        sweep_at: expires.map(Timestamp::from_millis),
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
    let due_at = |ms| {
        let store = store.clone();
        async move {
            store
                .credentials_due(Timestamp::from_millis(ms), 10)
                .await
                .unwrap()
                .iter()
                .map(|c| c.connection.to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        due_at(200).await,
        ["c2", "c1"],
        "due at or before now, soonest first; never-due credentials excluded"
    );
    assert_eq!(due_at(199).await, ["c2"], "not yet due is not read");
    assert!(due_at(49).await.is_empty());
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

// ---- outbound sync: local state, compare-and-swap writes, outbox, audit ----

fn at(secs: u64) -> Timestamp {
    T0.add(Duration::from_secs(secs))
}

/// A local state whose push is due at `due` (`None` = nothing to push: a
/// parked push or a parked conflict). Built through serde so that fields the
/// model gains later take their defaults here.
fn local_state(due: Option<Timestamp>) -> LocalState {
    serde_json::from_value(json!({
        "base": { "name": "agreed" },
        "local_updated_at": T0,
        "push_due_at": due,
    }))
    .expect("a valid local state")
}

/// A push parked on a permanent failure: no `push_due_at`, the provider's answer kept.
fn parked_push() -> LocalState {
    let mut l = local_state(None);
    l.attempts = 3;
    l.last_error = Some("provider answered 422: email is invalid".into());
    l
}

/// Only a conflict parked for a person: nothing to push.
fn parked_conflict() -> LocalState {
    let mut l = local_state(None);
    l.conflicts = vec![
        serde_json::from_value(json!({
            "field": "name",
            "base": "agreed",
            "local": "ours",
            "remote": "theirs",
            "parked_at": T0,
        }))
        .expect("a valid parked conflict"),
    ];
    l
}

/// A record of `conn`/`object` with data `{"name": name}` (hash to match).
pub fn record(
    conn: &str,
    object: &str,
    id: &str,
    name: &str,
    version: i64,
    local: Option<LocalState>,
) -> Record {
    let data = json!({ "name": name });
    Record {
        connection: ConnectionId::parse(conn).unwrap(),
        object: ObjectType::parse(object).unwrap(),
        external_id: ExternalId::parse(id).unwrap(),
        hash: content_hash(&data),
        data,
        version,
        remote_updated_at: Some(T0),
        local,
    }
}

/// An audit entry about `r`, decided `secs` after `T0`.
fn audit_of(r: &Record, key: &str, secs: u64, note: &str) -> AuditRecord {
    AuditRecord {
        key: key.into(),
        connection: r.connection.clone(),
        object: r.object.clone(),
        external_id: r.external_id.clone(),
        at: at(secs),
        entry: json!({ "field": "name", "outcome": note }),
    }
}

/// A write of the record `current` (its connection, object and id) expecting `expect`.
fn write_of(
    current: &Record,
    expect: Option<i64>,
    next: Option<Record>,
    audit: Vec<AuditRecord>,
) -> RecordWrite {
    RecordWrite {
        connection: current.connection.clone(),
        object: current.object.clone(),
        external_id: current.external_id.clone(),
        expect_version: expect,
        next,
        audit,
    }
}

/// Inserts `r` (which must not exist yet), without audit entries.
pub async fn insert(store: &dyn Store, r: &Record) {
    store
        .write_record(&write_of(r, None, Some(r.clone()), vec![]))
        .await
        .unwrap_or_else(|e| panic!("inserting {}: {e}", r.external_id));
}

async fn stored(store: &dyn Store, r: &Record) -> Option<Record> {
    stored_at(store, r, r.external_id.as_str()).await
}

async fn stored_at(store: &dyn Store, r: &Record, id: &str) -> Option<Record> {
    store
        .get_record(&r.connection, &r.object, &ExternalId::parse(id).unwrap())
        .await
        .unwrap()
}

fn names(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| format!("{}/{}/{}", r.connection, r.object, r.external_id))
        .collect()
}

async fn audit_keys(store: &dyn Store, conn: Option<&str>, limit: usize) -> Vec<String> {
    let c = conn.map(|c| ConnectionId::parse(c).unwrap());
    store
        .list_audit(c.as_ref(), limit)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.key)
        .collect()
}

fn assert_conflict(r: Result<(), StoreError>, what: &str) {
    match r {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("{what}: expected StoreError::Conflict, got {other:?}"),
    }
}

/// `write_record` is compare-and-swap on the record's version.
///
/// Tried, in order: insert a provisional `local:x` (`expect_version: None`)
/// with an audit entry; insert it again; update it expecting a stale version;
/// update a record that does not exist expecting a version; update `local:x`
/// expecting its current version; move it to the provider id `p2`, which is
/// taken; move it to the free provider id `p1`; remove `p1` expecting a stale
/// version; remove it expecting its current version (`next: None`). Every
/// losing write carries an audit entry of its own.
///
/// Must hold: each losing write (wrong expectation, or a move onto an
/// existing id) is `StoreError::Conflict` and writes nothing — the records
/// involved read back unchanged and none of its audit entries is listed;
/// each winning write stores `next` exactly as given (local state included),
/// a move leaves nothing at the old id, a removal leaves nothing at all; the
/// audit log holds exactly the winning writes' entries.
#[allow(clippy::too_many_lines, reason = "a contract case: tests are exempt")]
pub async fn write_record_compare_and_swap(store: Arc<dyn Store>) {
    let x1 = record(
        "c1",
        "contacts",
        "local:x",
        "a",
        1,
        Some(local_state(Some(T0))),
    );
    store
        .write_record(&write_of(
            &x1,
            None,
            Some(x1.clone()),
            vec![audit_of(&x1, "k-insert", 1, "created locally")],
        ))
        .await
        .unwrap();
    assert_eq!(
        stored(&*store, &x1).await,
        Some(x1.clone()),
        "an insert stores next as given, local state included"
    );

    let mut again = record("c1", "contacts", "local:x", "other", 1, None);
    again.remote_updated_at = None;
    assert_conflict(
        store
            .write_record(&write_of(
                &x1,
                None,
                Some(again),
                vec![audit_of(&x1, "k-insert-again", 2, "lost")],
            ))
            .await,
        "an insert (expect_version None) of an existing record",
    );
    let mut stale_next = x1.clone();
    stale_next.data = json!({ "name": "stale" });
    stale_next.version = 8;
    assert_conflict(
        store
            .write_record(&write_of(
                &x1,
                Some(7),
                Some(stale_next),
                vec![audit_of(&x1, "k-stale", 2, "lost")],
            ))
            .await,
        "an update expecting a stale version",
    );
    assert_eq!(
        stored(&*store, &x1).await,
        Some(x1.clone()),
        "losing writes change nothing"
    );
    let ghost = record("c1", "contacts", "ghost", "g", 2, None);
    assert_conflict(
        store
            .write_record(&write_of(
                &ghost,
                Some(1),
                Some(ghost.clone()),
                vec![audit_of(&ghost, "k-ghost", 2, "lost")],
            ))
            .await,
        "an update of a record that does not exist",
    );
    assert_eq!(
        stored(&*store, &ghost).await,
        None,
        "a losing write creates nothing"
    );

    let x2 = record(
        "c1",
        "contacts",
        "local:x",
        "b",
        2,
        Some(local_state(Some(at(5)))),
    );
    store
        .write_record(&write_of(
            &x1,
            Some(1),
            Some(x2.clone()),
            vec![audit_of(&x2, "k-update", 3, "changed locally")],
        ))
        .await
        .unwrap();
    assert_eq!(stored(&*store, &x1).await, Some(x2.clone()));

    let p2 = record("c1", "contacts", "p2", "someone else", 1, None);
    insert(&*store, &p2).await;
    let mut onto_p2 = record("c1", "contacts", "p2", "b", 3, None);
    onto_p2.remote_updated_at = Some(at(9));
    assert_conflict(
        store
            .write_record(&write_of(
                &x2,
                Some(2),
                Some(onto_p2),
                vec![audit_of(&x2, "k-move-taken", 4, "lost")],
            ))
            .await,
        "a move onto an id that exists",
    );
    assert_eq!(
        stored(&*store, &x2).await,
        Some(x2.clone()),
        "a move onto a taken id leaves the record where it was"
    );
    assert_eq!(
        stored(&*store, &p2).await,
        Some(p2.clone()),
        "… and the taken id untouched"
    );

    let mut p1 = record("c1", "contacts", "p1", "b", 3, None);
    p1.remote_updated_at = Some(at(9));
    store
        .write_record(&write_of(
            &x2,
            Some(2),
            Some(p1.clone()),
            vec![audit_of(&p1, "k-move", 5, "created remotely")],
        ))
        .await
        .unwrap();
    assert_eq!(
        stored(&*store, &x2).await,
        None,
        "nothing stays at the provisional id"
    );
    assert_eq!(stored(&*store, &p1).await, Some(p1.clone()), "moved");
    assert_eq!(
        store
            .count_records(&p1.connection, &p1.object)
            .await
            .unwrap(),
        2,
        "p1 and p2"
    );

    assert_conflict(
        store
            .write_record(&write_of(
                &p1,
                Some(2),
                None,
                vec![audit_of(&p1, "k-remove-stale", 6, "lost")],
            ))
            .await,
        "a removal expecting a stale version",
    );
    assert_eq!(stored(&*store, &p1).await, Some(p1.clone()));
    store
        .write_record(&write_of(
            &p1,
            Some(3),
            None,
            vec![audit_of(&p1, "k-remove", 7, "deleted")],
        ))
        .await
        .unwrap();
    assert_eq!(stored(&*store, &p1).await, None, "removed");
    assert_eq!(
        store
            .count_records(&p1.connection, &p1.object)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        audit_keys(&*store, None, 100).await,
        ["k-insert", "k-update", "k-move", "k-remove"],
        "exactly the winning writes' audit entries"
    );
}

/// The audit log is append-only, one entry per key.
///
/// Tried: a write in connection `c1` with entries `k1`, `k2`; a second write
/// of the same record repeating `k2` with a later time and other content (a
/// redelivered decision), adding `k3`, and carrying `k4` twice (different
/// content); a write in connection `c2` with `k5`; then listing everything,
/// each connection, and with limits.
///
/// Must hold: each key is listed once, with the time and content of its
/// first write; entries are listed oldest first; a connection filter lists
/// only that connection's entries; a limit keeps the oldest ones.
pub async fn audit_appended_once_per_key(store: Arc<dyn Store>) {
    let r1 = record("c1", "contacts", "1", "a", 1, Some(local_state(Some(T0))));
    let a1 = audit_of(&r1, "k1", 1, "first");
    let a2 = audit_of(&r1, "k2", 2, "second");
    store
        .write_record(&write_of(
            &r1,
            None,
            Some(r1.clone()),
            vec![a1.clone(), a2.clone()],
        ))
        .await
        .unwrap();
    let r1b = record("c1", "contacts", "1", "b", 2, None);
    let a3 = audit_of(&r1b, "k3", 3, "third");
    let a4 = audit_of(&r1b, "k4", 4, "fourth");
    store
        .write_record(&write_of(
            &r1,
            Some(1),
            Some(r1b.clone()),
            vec![
                audit_of(&r1b, "k2", 10, "second, decided again"),
                a3.clone(),
                a4.clone(),
                audit_of(&r1b, "k4", 11, "fourth, repeated in the same write"),
            ],
        ))
        .await
        .unwrap();
    let r2 = record("c2", "contacts", "1", "z", 1, None);
    let a5 = audit_of(&r2, "k5", 6, "other connection");
    store
        .write_record(&write_of(&r2, None, Some(r2.clone()), vec![a5.clone()]))
        .await
        .unwrap();

    let all = store.list_audit(None, 100).await.unwrap();
    assert_eq!(
        all,
        [a1.clone(), a2.clone(), a3.clone(), a4.clone(), a5.clone()],
        "once per key (the first write's entry kept), oldest first"
    );
    let c1 = ConnectionId::parse("c1").unwrap();
    let c2 = ConnectionId::parse("c2").unwrap();
    assert_eq!(
        store.list_audit(Some(&c1), 100).await.unwrap(),
        [a1.clone(), a2.clone(), a3.clone(), a4],
        "filtered by connection"
    );
    assert_eq!(store.list_audit(Some(&c2), 100).await.unwrap(), [a5]);
    assert_eq!(
        store.list_audit(Some(&c1), 3).await.unwrap(),
        [a1.clone(), a2.clone(), a3],
        "a limit keeps the oldest"
    );
    assert_eq!(store.list_audit(None, 2).await.unwrap(), [a1, a2]);
    assert!(
        store
            .list_audit(Some(&ConnectionId::parse("c3").unwrap()), 100)
            .await
            .unwrap()
            .is_empty()
    );
}

/// `due_pushes` is the outbox sweep.
///
/// Tried: pushes due at +30 s (`c1/contacts/a`), +10 s (`c2/contacts/b`),
/// +20 s (`c1/deals/c`) and +99 s (`c1/contacts/d`); a parked push (local
/// state without `push_due_at`, `c1/contacts/e`), a parked conflict only
/// (`c1/contacts/f`) and a synced record without local state
/// (`c1/contacts/g`). Asked at +30 s with room for all, with limit 2, at T0
/// (before any is due) and at +1000 s; then `b`'s push is done (a write
/// clears its local state) and the sweep asked again.
///
/// Must hold: exactly the records due at or before `now` (inclusive), whole
/// (local state included), oldest due first, at most `limit`; parked pushes,
/// parked conflicts and synced records are never due; a done push is not due.
pub async fn due_pushes_oldest_first(store: Arc<dyn Store>) {
    let a = record(
        "c1",
        "contacts",
        "a",
        "a",
        1,
        Some(local_state(Some(at(30)))),
    );
    let b = record(
        "c2",
        "contacts",
        "b",
        "b",
        1,
        Some(local_state(Some(at(10)))),
    );
    let c = record("c1", "deals", "c", "c", 1, Some(local_state(Some(at(20)))));
    let d = record(
        "c1",
        "contacts",
        "d",
        "d",
        1,
        Some(local_state(Some(at(99)))),
    );
    let e = record("c1", "contacts", "e", "e", 1, Some(parked_push()));
    let f = record("c1", "contacts", "f", "f", 1, Some(parked_conflict()));
    let g = record("c1", "contacts", "g", "g", 1, None);
    for r in [&a, &b, &c, &d, &e, &f, &g] {
        insert(&*store, r).await;
    }
    assert_eq!(
        store.due_pushes(at(30), 100).await.unwrap(),
        [b.clone(), c.clone(), a.clone()],
        "due at or before now, oldest first, whole"
    );
    assert_eq!(
        names(&store.due_pushes(at(30), 2).await.unwrap()),
        names(&[b.clone(), c.clone()]),
        "limit keeps the oldest"
    );
    assert!(
        store.due_pushes(T0, 100).await.unwrap().is_empty(),
        "nothing due yet"
    );
    assert_eq!(
        names(&store.due_pushes(at(1000), 100).await.unwrap()),
        names(&[b.clone(), c.clone(), a.clone(), d.clone()]),
        "parked pushes, parked conflicts and synced records are never due"
    );
    let done = record("c2", "contacts", "b", "b", 2, None);
    store
        .write_record(&write_of(&b, Some(1), Some(done), vec![]))
        .await
        .unwrap();
    assert_eq!(
        names(&store.due_pushes(at(30), 100).await.unwrap()),
        names(&[c, a]),
        "a done push is no longer due"
    );
}

/// `list_local_changes` lists the records that carry a local state.
///
/// Tried: in `c1`, a pending push (`contacts/a`), a parked push
/// (`contacts/c`), a parked conflict only (`deals/b`) and two synced records
/// (`contacts/b`, `deals/a`); in `c2`, a pending push (`contacts/a`). Listed
/// for `c1`, `c2`, an unknown connection and all connections, with limits;
/// then `c1`'s `contacts/a` is synced (a write clears its local state) and
/// `c1` listed again.
///
/// Must hold: a connection's listing holds exactly its records with a local
/// state, whole, ordered by (object, id); the listing of all connections holds
/// every such record (compared as a set: the cross-connection order is the
/// backend's); a limit bounds it; a cleared local state drops the record out.
pub async fn local_changes_listed(store: Arc<dyn Store>) {
    let c1_a = record("c1", "contacts", "a", "a", 1, Some(local_state(Some(T0))));
    let c1_c = record("c1", "contacts", "c", "c", 1, Some(parked_push()));
    let c1_deal_b = record("c1", "deals", "b", "b", 1, Some(parked_conflict()));
    let c1_b = record("c1", "contacts", "b", "b", 1, None);
    let c1_deal_a = record("c1", "deals", "a", "a", 1, None);
    let c2_a = record("c2", "contacts", "a", "a", 1, Some(local_state(Some(T0))));
    for r in [&c1_deal_b, &c1_c, &c1_b, &c2_a, &c1_a, &c1_deal_a] {
        insert(&*store, r).await;
    }
    let c1 = ConnectionId::parse("c1").unwrap();
    let c2 = ConnectionId::parse("c2").unwrap();
    assert_eq!(
        store.list_local_changes(Some(&c1), 100).await.unwrap(),
        [c1_a.clone(), c1_c.clone(), c1_deal_b.clone()],
        "exactly c1's records with a local state, by (object, id), whole"
    );
    assert_eq!(
        store.list_local_changes(Some(&c2), 100).await.unwrap(),
        std::slice::from_ref(&c2_a)
    );
    assert!(
        store
            .list_local_changes(Some(&ConnectionId::parse("c3").unwrap()), 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        names(&store.list_local_changes(Some(&c1), 2).await.unwrap()),
        names(&[c1_a.clone(), c1_c.clone()]),
        "limit"
    );
    let mut all = names(&store.list_local_changes(None, 100).await.unwrap());
    all.sort();
    let mut expected = names(&[c1_a.clone(), c1_c.clone(), c1_deal_b.clone(), c2_a]);
    expected.sort();
    assert_eq!(all, expected, "every connection's local changes");
    assert_eq!(
        store.list_local_changes(None, 3).await.unwrap().len(),
        3,
        "limit across connections"
    );
    let synced = record("c1", "contacts", "a", "a", 2, None);
    store
        .write_record(&write_of(&c1_a, Some(1), Some(synced), vec![]))
        .await
        .unwrap();
    assert_eq!(
        names(&store.list_local_changes(Some(&c1), 100).await.unwrap()),
        names(&[c1_c, c1_deal_b]),
        "a cleared local state drops out"
    );
}

/// A page commit never overwrites a local change and never moves a record
/// back in time.
///
/// Tried: records `1`–`5` and `7` committed with `remote_updated_at` +10 s;
/// local states written on `1` (pending push) and `2` (parked conflict). Then
/// one page that upserts `1` with new content (held), deletes `2` (held),
/// upserts `3` with new content but an older time (stale), upserts `4` with
/// its stored content and an older time (unchanged: the hash check comes
/// first), upserts `5` with new content and the same time (updated), upserts
/// `7` with new content and no time (updated: an unknown time is not older),
/// and creates `6`. Then `1`'s local state is cleared and a last page
/// upserts `1` with new content, deletes `3`, and deletes `2` again.
///
/// Must hold: the counts are exactly (created, updated, unchanged, deleted,
/// held, stale) = (1, 2, 1, 0, 2, 1), then (0, 1, 0, 1, 1, 0); held and
/// stale records read back exactly as before (data, version, time, local
/// state); the cursor moves with each page; once its local state is cleared
/// a record takes inbound changes again.
#[allow(clippy::too_many_lines, reason = "a contract case: tests are exempt")]
pub async fn page_commit_holds_local_and_skips_stale(store: Arc<dyn Store>) {
    let t = leased(&*store, &task("c1", "contacts", Priority::Scheduled), "L").await;
    let timed = |id: &str, name: &str, secs: Option<u64>| {
        let mut u = upsert(id, name);
        u.remote_updated_at = secs.map(at);
        u
    };
    let first: Vec<_> = ["1", "2", "3", "4", "5", "7"]
        .iter()
        .map(|id| timed(id, id, Some(10)))
        .collect();
    let out = store
        .commit_page(&page(&t, "L", first, &[], "p1"))
        .await
        .unwrap();
    assert_eq!(out.created, 6);

    let get = |id: &'static str| {
        let store = store.clone();
        let (c, o) = (t.connection.clone(), t.object.clone());
        async move {
            store
                .get_record(&c, &o, &ExternalId::parse(id).unwrap())
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("record {id} is missing"))
        }
    };
    let mut held1 = get("1").await;
    let mut local1 = local_state(Some(T0));
    local1.attempts = 2;
    local1.last_error = Some("provider answered 503".into());
    held1.local = Some(local1);
    held1.data = json!({ "name": "ours" });
    held1.hash = content_hash(&held1.data);
    held1.version = 2;
    store
        .write_record(&write_of(&held1, Some(1), Some(held1.clone()), vec![]))
        .await
        .unwrap();
    let mut held2 = get("2").await;
    held2.local = Some(parked_conflict());
    held2.version = 2;
    store
        .write_record(&write_of(&held2, Some(1), Some(held2.clone()), vec![]))
        .await
        .unwrap();
    let before3 = get("3").await;
    let before4 = get("4").await;

    let out = store
        .commit_page(&page(
            &t,
            "L",
            vec![
                timed("1", "theirs", Some(20)),
                timed("3", "older", Some(5)),
                timed("4", "4", Some(5)),
                timed("5", "newer", Some(10)),
                timed("7", "untimed", None),
                timed("6", "new", Some(10)),
            ],
            &["2"],
            "p2",
        ))
        .await
        .unwrap();
    assert_eq!(
        (
            out.created,
            out.updated,
            out.unchanged,
            out.deleted,
            out.held,
            out.stale
        ),
        (1, 2, 1, 0, 2, 1),
        "(created, updated, unchanged, deleted, held, stale) of {out:?}"
    );
    assert_eq!(
        store
            .get_task(&t.id)
            .await
            .unwrap()
            .unwrap()
            .cursor
            .as_deref(),
        Some("p2"),
        "the cursor moves past held and stale records"
    );
    assert_eq!(
        get("1").await,
        held1,
        "a held upsert leaves the record and its local state intact"
    );
    assert_eq!(
        get("2").await,
        held2,
        "a held delete leaves the record and its local state intact"
    );
    assert_eq!(get("3").await, before3, "a stale upsert writes nothing");
    assert_eq!(
        get("4").await,
        before4,
        "an unchanged upsert writes nothing"
    );
    let r5 = get("5").await;
    assert_eq!((r5.version, r5.data["name"].as_str()), (2, Some("newer")));
    let r7 = get("7").await;
    assert_eq!(
        (r7.version, r7.data["name"].as_str(), r7.remote_updated_at),
        (2, Some("untimed"), None)
    );

    let mut synced1 = held1.clone();
    synced1.local = None;
    synced1.version = 3;
    store
        .write_record(&write_of(&held1, Some(2), Some(synced1), vec![]))
        .await
        .unwrap();
    let out = store
        .commit_page(&page(
            &t,
            "L",
            vec![timed("1", "theirs", Some(20))],
            &["3", "2"],
            "p3",
        ))
        .await
        .unwrap();
    assert_eq!(
        (
            out.created,
            out.updated,
            out.unchanged,
            out.deleted,
            out.held,
            out.stale
        ),
        (0, 1, 0, 1, 1, 0),
        "(created, updated, unchanged, deleted, held, stale) of {out:?}"
    );
    let r1 = get("1").await;
    assert_eq!(
        (r1.version, r1.data["name"].as_str(), r1.local),
        (4, Some("theirs"), None),
        "without a local state the record takes inbound changes again"
    );
    assert_eq!(get("2").await, held2, "still held");
    assert_eq!(
        store.count_records(&t.connection, &t.object).await.unwrap(),
        6,
        "1, 2, 4, 5, 6, 7"
    );
}

// ---- product API (SyncApi): API keys and pages -----------------------------

fn api_key(id: &str, hash: &str, scope: ApiScope) -> ApiKey {
    ApiKey {
        id: id.into(),
        name: format!("name of {id}"),
        scope,
        hash: hash.into(),
        created_at: T0,
        revoked_at: None,
        expires_at: None,
    }
}

/// API keys are found by hash only, listed by id, unique by id and by hash,
/// and revoked once (the first revocation time stays).
pub async fn api_keys_by_hash(store: Arc<dyn Store>) {
    let a = api_key("key_a", &"a".repeat(64), ApiScope::Read);
    let b = api_key("key_b", &"b".repeat(64), ApiScope::Admin);
    store.create_api_key(&b).await.unwrap();
    store.create_api_key(&a).await.unwrap();
    assert_eq!(store.find_api_key(&a.hash).await.unwrap(), Some(a.clone()));
    assert_eq!(store.find_api_key(&"c".repeat(64)).await.unwrap(), None);
    let same_hash = api_key("key_c", &a.hash, ApiScope::Admin);
    assert!(
        matches!(
            store.create_api_key(&same_hash).await,
            Err(StoreError::Conflict(_))
        ),
        "a hash is unique"
    );
    let same_id = api_key("key_a", &"d".repeat(64), ApiScope::Admin);
    assert!(
        matches!(
            store.create_api_key(&same_id).await,
            Err(StoreError::Conflict(_))
        ),
        "an id is unique"
    );
    let ids: Vec<String> = store
        .list_api_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(ids, ["key_a", "key_b"]);
    let at = T0.add(Duration::from_secs(5));
    assert!(store.revoke_api_key("key_a", at).await.unwrap());
    assert!(
        store
            .revoke_api_key("key_a", at.add(Duration::from_secs(1)))
            .await
            .unwrap()
    );
    assert!(!store.revoke_api_key("key_x", at).await.unwrap());
    let found = store.find_api_key(&a.hash).await.unwrap().unwrap();
    assert_eq!(found.revoked_at, Some(at), "the first revocation stays");
    assert_eq!(
        store
            .find_api_key(&b.hash)
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        None
    );
}

fn run_at(conn: &str, id: &str, secs: u64, status: RunStatus) -> SyncRun {
    let t = task(conn, "contacts", Priority::Scheduled);
    SyncRun {
        id: RunId::parse(id).unwrap(),
        task: t.id,
        connection: t.connection,
        started_at: T0.add(Duration::from_secs(secs)),
        finished_at: None,
        status,
        counts: RunCounts::default(),
        error: None,
    }
}

/// Connection pages follow ids with filters; run pages go newest first by
/// (started_at, id), resume strictly after their cursor (ties included) and
/// filter by connection, status and start time; a run is found by id.
pub async fn connection_and_run_pages(store: Arc<dyn Store>) {
    for (id, tenant) in [("c1", "t1"), ("c2", "t2"), ("c3", "t1"), ("c4", "t1")] {
        let mut c = connection(id, tenant);
        if id == "c3" {
            c.status = ConnectionStatus::NeedsReauth;
        }
        if id == "c4" {
            c.provider = "hubspot".into();
        }
        store.put_connection(&c).await.unwrap();
    }
    let ids = |v: Vec<Connection>| v.into_iter().map(|c| c.id.to_string()).collect::<Vec<_>>();
    let mut q = ConnectionQuery {
        tenant: Some(TenantId::parse("t1").unwrap()),
        limit: 2,
        ..Default::default()
    };
    assert_eq!(
        ids(store.list_connections_page(&q).await.unwrap()),
        ["c1", "c3"]
    );
    q.after = Some(ConnectionId::parse("c3").unwrap());
    assert_eq!(ids(store.list_connections_page(&q).await.unwrap()), ["c4"]);
    let by_status = ConnectionQuery {
        status: Some(ConnectionStatus::NeedsReauth),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        ids(store.list_connections_page(&by_status).await.unwrap()),
        ["c3"]
    );
    let by_provider = ConnectionQuery {
        provider: Some("hubspot".into()),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        ids(store.list_connections_page(&by_provider).await.unwrap()),
        ["c4"]
    );

    // r2 and r3 start at the same instant: the id breaks the tie.
    for r in [
        run_at("c1", "r1", 1, RunStatus::Succeeded),
        run_at("c1", "r2", 2, RunStatus::Failed),
        run_at("c1", "r3", 2, RunStatus::Succeeded),
        run_at("c1", "r4", 3, RunStatus::Interrupted),
        run_at("c2", "r5", 4, RunStatus::Succeeded),
    ] {
        store.put_run(&r).await.unwrap();
    }
    let rids = |v: &[SyncRun]| v.iter().map(|r| r.id.to_string()).collect::<Vec<_>>();
    let mut rq = RunQuery {
        connection: Some(ConnectionId::parse("c1").unwrap()),
        limit: 2,
        ..Default::default()
    };
    let first = store.list_runs_page(&rq).await.unwrap();
    assert_eq!(rids(&first), ["r4", "r3"]);
    rq.after = Some(RunKey {
        started_at: first[1].started_at,
        id: first[1].id.clone(),
    });
    assert_eq!(
        rids(&store.list_runs_page(&rq).await.unwrap()),
        ["r2", "r1"]
    );
    let failed = RunQuery {
        statuses: vec![RunStatus::Failed, RunStatus::Interrupted],
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        rids(&store.list_runs_page(&failed).await.unwrap()),
        ["r4", "r2"]
    );
    let since = RunQuery {
        since: Some(T0.add(Duration::from_secs(3))),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        rids(&store.list_runs_page(&since).await.unwrap()),
        ["r5", "r4"]
    );
    let r2 = store.get_run(&RunId::parse("r2").unwrap()).await.unwrap();
    assert_eq!(r2.map(|r| r.status), Some(RunStatus::Failed));
    assert_eq!(
        store.get_run(&RunId::parse("nope").unwrap()).await.unwrap(),
        None
    );
}

/// Expiring keys (dashboard sessions, sign-in links) are deleted once
/// expired or revoked; live ones and API keys (no expiry), revoked or
/// not, are kept.
pub async fn expiring_keys_pruned(store: Arc<dyn Store>) {
    let expiring = |id: &str, hash: char, end: Timestamp| ApiKey {
        expires_at: Some(end),
        ..api_key(id, &hash.to_string().repeat(64), ApiScope::Admin)
    };
    let end = T0.add(Duration::from_secs(3600));
    let live = expiring("ses_live", 'a', end);
    let expired = expiring("ses_old", 'b', T0.add(Duration::from_secs(60)));
    let spent = expiring("lgn_spent", 'c', end);
    let key = api_key("key_plain", &"d".repeat(64), ApiScope::Read);
    let revoked_key = api_key("key_revoked", &"e".repeat(64), ApiScope::Read);
    for k in [&live, &expired, &spent, &key, &revoked_key] {
        store.create_api_key(k).await.unwrap();
    }
    assert!(store.revoke_api_key("lgn_spent", T0).await.unwrap());
    assert!(store.revoke_api_key("key_revoked", T0).await.unwrap());
    assert_eq!(
        store
            .find_api_key(&live.hash)
            .await
            .unwrap()
            .unwrap()
            .expires_at,
        Some(end),
        "the expiry is stored"
    );
    let now = T0.add(Duration::from_secs(60));
    assert_eq!(store.prune_api_keys(now).await.unwrap(), 2);
    let ids: Vec<String> = store
        .list_api_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(ids, ["key_plain", "key_revoked", "ses_live"]);
    assert_eq!(store.find_api_key(&expired.hash).await.unwrap(), None);
    assert_eq!(
        store.prune_api_keys(now).await.unwrap(),
        0,
        "nothing left to prune"
    );
    assert_eq!(
        store.prune_api_keys(end).await.unwrap(),
        1,
        "the live one ends too"
    );
}

/// The notification rules: one document, absent at first, written by
/// compare-and-swap on its version (of two saves from one version exactly
/// one wins; a stale or skipped version writes nothing).
pub async fn notification_rules_versioned(store: Arc<dyn Store>) {
    use syncbridge_core::events::Severity;
    use syncbridge_core::notify_rules::{DefaultRoute, NotificationRules, Rule};
    assert_eq!(store.get_notification_rules().await.unwrap(), None);
    let v1 = NotificationRules {
        version: 1,
        rules: vec![
            Rule::new(&["ops"])
                .tenant(TenantId::parse("acme").unwrap())
                .kinds(&["sync_run_failed"])
                .min_severity(Severity::Warning),
        ],
        default: Some(DefaultRoute {
            min_severity: Severity::Critical,
            channels: vec!["ops".into(), "pager".into()],
        }),
        updated_at: T0,
    };
    let other_v1 = NotificationRules {
        rules: Vec::new(),
        default: None,
        ..v1.clone()
    };
    let (a, b) = tokio::join!(
        store.put_notification_rules(&v1),
        store.put_notification_rules(&other_v1)
    );
    assert!(a.unwrap() ^ b.unwrap(), "exactly one first save wins");
    let won = store.get_notification_rules().await.unwrap().unwrap();
    assert!(won == v1 || won == other_v1, "stored whole: {won:?}");
    assert!(
        !store.put_notification_rules(&v1).await.unwrap(),
        "a second version 1 is refused"
    );
    let v3 = NotificationRules {
        version: 3,
        ..v1.clone()
    };
    assert!(
        !store.put_notification_rules(&v3).await.unwrap(),
        "no skipping"
    );
    let v2 = NotificationRules {
        version: 2,
        rules: vec![Rule::new(&["pager"])],
        default: None,
        updated_at: T0.add(Duration::from_secs(5)),
    };
    assert!(store.put_notification_rules(&v2).await.unwrap());
    assert_eq!(
        store.get_notification_rules().await.unwrap(),
        Some(v2.clone())
    );
    assert!(!store.put_notification_rules(&v2).await.unwrap(), "stale");
    assert_eq!(store.get_notification_rules().await.unwrap(), Some(v2));
}

/// A connect session in its first stage, for tests.
pub fn connect_session(id_byte: u8) -> ConnectSession {
    ConnectSession {
        id: syncbridge_core::connect::token_text("cs_", &[id_byte; 16]),
        tenant: TenantId::parse("t1").unwrap(),
        provider: "sandbox".into(),
        connection_id: ConnectionId::parse("c1").unwrap(),
        reconnect: false,
        return_url: "https://app.example/connected".into(),
        base_url: Some("http://127.0.0.1:1".into()),
        // Read back whole: the new connection's settings travel with it.
        settings: [("owner".to_string(), "octo".to_string())].into(),
        created_at: T0,
        expires_at: T0.add(syncbridge_core::connect::SESSION_TTL),
        link_hash: "a".repeat(64),
        stage: ConnectStage::Created,
        version: 1,
    }
}

/// Connect sessions: created once per id, read back whole, advanced only
/// from the version the caller read — of two concurrent advances of one
/// version exactly one wins, so a link or a `state` is used once.
pub async fn connect_sessions_advance_once(store: Arc<dyn Store>) {
    let s = connect_session(1);
    store.create_connect_session(&s).await.unwrap();
    assert!(
        matches!(
            store.create_connect_session(&s).await,
            Err(StoreError::Conflict(_))
        ),
        "a session id is created once"
    );
    assert_eq!(
        store.get_connect_session(&s.id).await.unwrap(),
        Some(s.clone())
    );
    assert_eq!(store.get_connect_session("cs_none").await.unwrap(), None);
    let opened = s.advanced(ConnectStage::Opened {
        state_hash: "b".repeat(64),
        verifier: Some(syncbridge_core::model::SealedSecrets {
            key_version: "1".into(),
            nonce: vec![1; 12],
            ciphertext: vec![2; 40],
        }),
        redirect_uri: "http://127.0.0.1:7071/api/v1/connect/callback".into(),
        browser_hash: Some("c".repeat(64)),
    });
    // Two racers advance version 1: one wins.
    let other = s.advanced(ConnectStage::Done {
        outcome: ConnectOutcome::Failed {
            error: "state_invalid".into(),
        },
    });
    let (a, b) = tokio::join!(
        store.advance_connect_session(&opened),
        store.advance_connect_session(&other)
    );
    assert!(
        a.unwrap() ^ b.unwrap(),
        "exactly one advance of a version wins"
    );
    let won = store.get_connect_session(&s.id).await.unwrap().unwrap();
    assert_eq!(won.version, 2);
    assert!(
        won == opened || won == other,
        "the winner's document is stored whole"
    );
    // A replay of the same step (version 1 → 2 again) is refused.
    assert!(!store.advance_connect_session(&opened).await.unwrap());
    let done = won.advanced(ConnectStage::Done {
        outcome: ConnectOutcome::Connected {
            connection_id: ConnectionId::parse("c1").unwrap(),
        },
    });
    assert!(store.advance_connect_session(&done).await.unwrap());
    assert_eq!(
        store.get_connect_session(&s.id).await.unwrap(),
        Some(done.clone())
    );
    assert!(!store.advance_connect_session(&done).await.unwrap());
    assert!(
        !store
            .advance_connect_session(&connect_session(2).advanced(ConnectStage::Created))
            .await
            .unwrap(),
        "advancing an unknown session does nothing"
    );
    assert_eq!(
        store
            .get_connect_session(&connect_session(2).id)
            .await
            .unwrap(),
        None
    );
}

/// Runs every contract case, each against a fresh store from `make` (the
/// records-feed cases take the store's clock too; backends run them by name).
/// Run stats (the dashboard's charts).
///
/// Tried: runs of two connections in the first, third and fourth hour after
/// `T0` — succeeded, failed, still running, one whose `finished_at` is before
/// its start — plus one a second before `T0` and one exactly at `until`; a
/// period with no runs; the running run stored again, finished.
///
/// Must hold: only runs started in `[since, until)` count; buckets start at
/// `since + k * width`, only non-empty ones, oldest first; failed, records
/// (created + updated + deleted), finished and duration sums are exact (an
/// unfinished run adds no duration; a negative one adds 0); a rewritten run
/// counts once, with its new fields.
pub async fn run_stats_buckets(store: Arc<dyn Store>) {
    let at = |secs: u64| T0.add(Duration::from_secs(secs));
    let run = |conn: &str, id: &str, start: Timestamp, status, ms: Option<i64>, counts| SyncRun {
        started_at: start,
        finished_at: ms.map(|ms| Timestamp::from_millis(start.as_millis() + ms)),
        counts,
        ..run_at(conn, id, 0, status)
    };
    let counts = |created, updated, deleted| RunCounts {
        created,
        updated,
        deleted,
        fetched: 99,
        ..Default::default()
    };
    let running = run(
        "c1",
        "r3",
        at(1_800),
        RunStatus::Running,
        None,
        counts(4, 0, 0),
    );
    for r in [
        run(
            "c1",
            "r1",
            at(10),
            RunStatus::Succeeded,
            Some(2_000),
            counts(3, 1, 0),
        ),
        run(
            "c2",
            "r2",
            at(1_200),
            RunStatus::Failed,
            Some(500),
            counts(0, 0, 2),
        ),
        running.clone(),
        run(
            "c2",
            "r4",
            at(7_201),
            RunStatus::Succeeded,
            Some(100),
            counts(1, 0, 0),
        ),
        run(
            "c1",
            "r6",
            at(7_300),
            RunStatus::Succeeded,
            Some(-5_000),
            counts(0, 0, 0),
        ),
        run(
            "c1",
            "r0",
            T0.sub(Duration::from_secs(1)),
            RunStatus::Failed,
            Some(1),
            counts(7, 0, 0),
        ),
        run(
            "c2",
            "r5",
            at(10_800),
            RunStatus::Failed,
            Some(1),
            counts(7, 0, 0),
        ),
    ] {
        store.put_run(&r).await.unwrap();
    }
    let hour = std::num::NonZeroU32::new(3_600_000).unwrap();
    let q = RunStatsQuery {
        since: T0,
        until: at(10_800),
        bucket_ms: hour,
    };
    let bucket = |start, runs, failed, records, finished, duration_ms| RunBucket {
        start,
        runs,
        failed,
        records,
        finished,
        duration_ms,
    };
    assert_eq!(
        store.run_stats(&q).await.unwrap(),
        [
            bucket(T0, 3, 1, 10, 2, 2_500),
            bucket(at(7_200), 2, 0, 1, 2, 100),
        ],
        "[since, until) in hour buckets, empty hours left out"
    );
    let empty = RunStatsQuery {
        since: at(20_000),
        until: at(30_000),
        bucket_ms: hour,
    };
    assert_eq!(store.run_stats(&empty).await.unwrap(), []);

    let finished = SyncRun {
        status: RunStatus::Succeeded,
        finished_at: Some(at(1_801)),
        ..running
    };
    store.put_run(&finished).await.unwrap();
    assert_eq!(
        store.run_stats(&q).await.unwrap()[0],
        bucket(T0, 3, 1, 10, 3, 3_500),
        "the rewritten run counts once, finished"
    );
}

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
    write_record_compare_and_swap(make().await).await;
    audit_appended_once_per_key(make().await).await;
    due_pushes_oldest_first(make().await).await;
    local_changes_listed(make().await).await;
    page_commit_holds_local_and_skips_stale(make().await).await;
    run_requested_during_a_lease_survives_its_release(make().await).await;
    stall_candidates_and_batch_leases(make().await).await;
    api_keys_by_hash(make().await).await;
    connection_and_run_pages(make().await).await;
    connect_sessions_advance_once(make().await).await;
    connection_versions(make().await).await;
    function_beats(make().await).await;
    idempotency_keys(make().await).await;
    conflict_pages(make().await).await;
    audit_pages(make().await).await;
    run_stats_buckets(make().await).await;
    expiring_keys_pruned(make().await).await;
    notification_rules_versioned(make().await).await;
}

// ---- records feed (issue 17): change sequence, tombstones ----------------
//
// These cases take the clock the store stamps `last_modified_at` with
// (`SqliteStore::with_clock`, `CosmosStore::with_clock`), so times are exact.

/// Reads a whole feed of `object` in `conn` with `actions`, after `after`.
async fn feed_of(
    store: &dyn Store,
    conn: &str,
    object: &str,
    after: Option<u64>,
    tune: impl FnOnce(&mut FeedQuery),
) -> Vec<FeedEntry> {
    let mut q = FeedQuery {
        connection: ConnectionId::parse(conn).unwrap(),
        object: ObjectType::parse(object).unwrap(),
        after_seq: after,
        modified_after: None,
        actions: ActionFilter::default(),
        limit: 1000,
    };
    tune(&mut q);
    store.records_feed(&q).await.unwrap()
}

fn feed_ids(entries: &[FeedEntry]) -> Vec<(&str, LastAction)> {
    entries
        .iter()
        .map(|e| (e.external_id.as_str(), e.last_action))
        .collect()
}

fn assert_ascending(entries: &[FeedEntry], what: &str) {
    assert!(
        entries.windows(2).all(|w| w[0].seq < w[1].seq),
        "{what}: seq strictly ascending, got {:?}",
        entries.iter().map(|e| e.seq).collect::<Vec<_>>()
    );
}

fn stale_upsert(id: &str, name: &str) -> RecordUpsert {
    let mut u = upsert(id, name);
    u.remote_updated_at = Some(T0.sub(Duration::from_secs(60)));
    u
}

/// The feed through page commits.
///
/// Tried: page 1 (contacts a, b, c at `T0`); a page of another object (deals
/// d at `T0+1s`); page 2 at `T0+2s` (a unchanged, b changed, e new, c
/// deleted, an absent id deleted); page 3 at `T0+3s` that changes nothing
/// (b stale, a unchanged); a client paging with limit 2; a change of a while
/// it pages; filters; `c` created again at `T0+5s`.
///
/// Must hold: change order with strictly increasing sequences across both
/// objects; skipped writes (unchanged, stale, absent delete) stamp nothing;
/// metadata exact (first seen kept on update, last modified = the write's
/// time); a tombstone keeps its last data and is invisible to get, count and
/// list; a record changed while a client pages appears again after its
/// cursor; action, time and limit filters; a re-created record is `added`
/// again with a new first-seen time and version 1.
#[allow(clippy::too_many_lines, reason = "a contract case: tests are exempt")]
pub async fn records_feed_page_commits(store: Arc<dyn Store>, clock: Arc<ManualClock>) {
    let s = store.as_ref();
    let c1 = ConnectionId::parse("c1").unwrap();
    assert_eq!(
        s.feed_position(&c1).await.unwrap(),
        0,
        "no change drawn yet"
    );
    clock.set(T0);
    let t = leased(s, &task("c1", "contacts", Priority::Scheduled), "L").await;
    let p1 = vec![upsert("a", "a"), upsert("b", "b"), upsert("c", "c")];
    s.commit_page(&page(&t, "L", p1, &[], "1")).await.unwrap();
    clock.set(at(1));
    let deals = leased(s, &task("c1", "deals", Priority::Scheduled), "D").await;
    let d = vec![upsert("d", "d")];
    s.commit_page(&page(&deals, "D", d, &[], "1"))
        .await
        .unwrap();
    let first = feed_of(s, "c1", "contacts", None, |_| {}).await;
    use LastAction::*;
    assert_eq!(feed_ids(&first), [("a", Added), ("b", Added), ("c", Added)]);
    assert!(
        first
            .iter()
            .all(|e| (e.first_seen_at, e.last_modified_at, e.deleted_at) == (T0, T0, None))
    );
    assert_eq!(first[1].data, json!({ "name": "b" }), "the stored fields");
    let d_seq = feed_of(s, "c1", "deals", None, |_| {}).await[0].seq;
    assert!(
        d_seq > first[2].seq,
        "one sequence across the connection's objects"
    );

    clock.set(at(2));
    let p2 = vec![upsert("a", "a"), upsert("b", "b2"), upsert("e", "e")];
    let out = s
        .commit_page(&page(&t, "L", p2, &["c", "zz"], "2"))
        .await
        .unwrap();
    assert_eq!(
        (out.created, out.updated, out.unchanged, out.deleted),
        (1, 1, 1, 1)
    );
    clock.set(at(3));
    let p3 = vec![stale_upsert("b", "old"), upsert("a", "a")];
    let out = s
        .commit_page(&page(&t, "L", p3, &["zz"], "3"))
        .await
        .unwrap();
    assert_eq!((out.stale, out.unchanged), (1, 1), "{out:?}");
    let all = feed_of(s, "c1", "contacts", None, |_| {}).await;
    assert_eq!(
        feed_ids(&all),
        [("a", Added), ("b", Updated), ("e", Added), ("c", Deleted)],
        "change order; skipped writes stamp nothing"
    );
    assert_ascending(&all, "contacts");
    assert!(
        all[1].seq > d_seq && all[0].seq == first[0].seq,
        "a kept its sequence"
    );
    let (b, c) = (&all[1], &all[3]);
    assert_eq!(
        (b.first_seen_at, b.last_modified_at, &b.data),
        (T0, at(2), &json!({ "name": "b2" }))
    );
    assert_eq!(
        (c.deleted_at, c.last_modified_at, &c.data),
        (Some(at(2)), at(2), &json!({ "name": "c" }))
    );

    // Tombstones are invisible to every other read.
    let (conn, obj) = (&t.connection, &t.object);
    let c_id = ExternalId::parse("c").unwrap();
    assert_eq!(s.get_record(conn, obj, &c_id).await.unwrap(), None);
    assert_eq!(s.count_records(conn, obj).await.unwrap(), 3, "a, b, e");
    let listed = s.list_records(conn, obj, None, 10).await.unwrap();
    assert_eq!(
        names(&listed),
        ["c1/contacts/a", "c1/contacts/b", "c1/contacts/e"]
    );

    // A client pages with limit 2; `a` changes between its reads.
    let page1 = feed_of(s, "c1", "contacts", None, |q| q.limit = 2).await;
    assert_eq!(feed_ids(&page1), [("a", Added), ("b", Updated)]);
    clock.set(at(4));
    let pa = vec![upsert("a", "a2")];
    s.commit_page(&page(&t, "L", pa, &[], "4")).await.unwrap();
    let page2 = feed_of(s, "c1", "contacts", Some(page1[1].seq), |q| q.limit = 2).await;
    assert_eq!(feed_ids(&page2), [("e", Added), ("c", Deleted)]);
    let page3 = feed_of(s, "c1", "contacts", Some(page2[1].seq), |q| q.limit = 2).await;
    assert_eq!(
        feed_ids(&page3),
        [("a", Updated)],
        "the re-change comes again, later"
    );
    assert!(page3[0].seq > page2[1].seq);
    let page4 = feed_of(s, "c1", "contacts", Some(page3[0].seq), |q| q.limit = 2).await;
    assert!(page4.is_empty(), "the end: {page4:?}");
    assert_eq!(
        s.feed_position(&c1).await.unwrap(),
        page3[0].seq,
        "the position is the last drawn sequence"
    );
    assert_eq!(
        s.feed_position(&ConnectionId::parse("c2").unwrap())
            .await
            .unwrap(),
        0,
        "per connection"
    );

    // Filters.
    let gone = feed_of(s, "c1", "contacts", None, |q| {
        q.actions = ActionFilter {
            added: false,
            updated: false,
            deleted: true,
        }
    })
    .await;
    assert_eq!(feed_ids(&gone), [("c", Deleted)]);
    let no_added = feed_of(s, "c1", "contacts", None, |q| q.actions.added = false).await;
    assert_eq!(
        feed_ids(&no_added),
        [("b", Updated), ("c", Deleted), ("a", Updated)]
    );
    let since = feed_of(s, "c1", "contacts", None, |q| {
        q.modified_after = Some(at(2))
    })
    .await;
    assert_eq!(
        feed_ids(&since),
        [("a", Updated)],
        "strictly after the time"
    );
    let none = feed_of(s, "c1", "contacts", None, |q| q.limit = 0).await;
    assert!(none.is_empty());
    assert!(
        feed_of(s, "c2", "contacts", None, |_| {}).await.is_empty(),
        "per connection"
    );

    // Created again: added, new first-seen time, version 1.
    clock.set(at(5));
    s.commit_page(&page(&t, "L", vec![upsert("c", "c3")], &[], "5"))
        .await
        .unwrap();
    let latest = feed_of(s, "c1", "contacts", Some(page3[0].seq), |_| {}).await;
    assert_eq!(feed_ids(&latest), [("c", Added)]);
    assert_eq!(s.feed_position(&c1).await.unwrap(), latest[0].seq);
    assert_eq!(
        (latest[0].first_seen_at, latest[0].deleted_at),
        (at(5), None)
    );
    let c_now = s
        .get_record(conn, obj, &c_id)
        .await
        .unwrap()
        .expect("live again");
    assert_eq!((c_now.version, c_now.data), (1, json!({ "name": "c3" })));
}

/// The feed through `write_record`, held records and connection deletion.
///
/// Tried: a product create of `x` at `T0`; an update of its content at
/// `T0+1s`; a write of its local state alone; an inbound page (upsert and
/// delete) while it is held; a move of `local:y` to `y`; a removal of `x`;
/// a create of `x` again over its tombstone; deleting the connection; the
/// connection created again.
///
/// Must hold: creates are `added`, content changes `updated`, removals
/// tombstones (`deleted`, local state gone) that other reads and the
/// compare-and-swap do not see; a write that only changes the local state
/// and held page records stamp nothing; a move is a tombstone at the old
/// id and an `added` record at the new one; deleting the connection removes
/// its tombstones, and the connection created again continues its sequence.
pub async fn records_feed_record_writes(store: Arc<dyn Store>, clock: Arc<ManualClock>) {
    let s = store.as_ref();
    use LastAction::*;
    clock.set(T0);
    let x1 = record("c1", "contacts", "x", "x1", 1, Some(local_state(Some(T0))));
    insert(s, &x1).await;
    clock.set(at(1));
    let x2 = record(
        "c1",
        "contacts",
        "x",
        "x2",
        2,
        Some(local_state(Some(at(1)))),
    );
    s.write_record(&write_of(&x1, Some(1), Some(x2.clone()), vec![]))
        .await
        .unwrap();
    let feed = feed_of(s, "c1", "contacts", None, |_| {}).await;
    assert_eq!(feed_ids(&feed), [("x", Updated)]);
    assert_eq!(
        (feed[0].first_seen_at, feed[0].last_modified_at),
        (T0, at(1))
    );
    let x_seq = feed[0].seq;

    // Local state alone, then an inbound page while held: nothing stamped.
    clock.set(at(2));
    let mut x3 = x2.clone();
    x3.version = 3;
    x3.local = Some(parked_push());
    s.write_record(&write_of(&x2, Some(2), Some(x3.clone()), vec![]))
        .await
        .unwrap();
    let t = leased(s, &task("c1", "contacts", Priority::Scheduled), "L").await;
    let out = s
        .commit_page(&page(&t, "L", vec![upsert("x", "theirs")], &["x"], "1"))
        .await
        .unwrap();
    assert_eq!(out.held, 2, "{out:?}");
    let feed = feed_of(s, "c1", "contacts", None, |_| {}).await;
    assert_eq!(
        (feed.len(), feed[0].seq, feed[0].last_modified_at),
        (1, x_seq, at(1))
    );

    // A move: tombstone at the old id, added at the new one.
    clock.set(at(3));
    let y_local = record(
        "c1",
        "contacts",
        "local:y",
        "y",
        5,
        Some(local_state(Some(at(3)))),
    );
    insert(s, &y_local).await;
    let mut y = y_local.clone();
    y.external_id = ExternalId::parse("y").unwrap();
    y.local = None;
    s.write_record(&write_of(&y_local, Some(5), Some(y.clone()), vec![]))
        .await
        .unwrap();
    // Removal of x: a tombstone without local state, invisible to CAS and reads.
    clock.set(at(4));
    s.write_record(&write_of(&x3, Some(3), None, vec![]))
        .await
        .unwrap();
    let feed = feed_of(s, "c1", "contacts", Some(x_seq), |_| {}).await;
    assert_eq!(
        feed_ids(&feed),
        [("local:y", Deleted), ("y", Added), ("x", Deleted)],
        "the provisional record's own entry was replaced by its tombstone"
    );
    assert_ascending(&feed, "record writes");
    assert_eq!(
        (feed[2].deleted_at, &feed[2].data),
        (Some(at(4)), &json!({ "name": "x2" }))
    );
    assert_eq!(stored(s, &x1).await, None);
    assert_eq!(s.list_local_changes(None, 10).await.unwrap(), vec![]);
    assert_eq!(s.due_pushes(at(100), 10).await.unwrap(), vec![]);
    clock.set(at(5));
    insert(s, &x1).await; // expect_version None: the tombstone is not a record
    let again = feed_of(s, "c1", "contacts", Some(feed[2].seq), |_| {}).await;
    assert_eq!(feed_ids(&again), [("x", Added)]);
    assert_eq!(again[0].first_seen_at, at(5));
    let last_seq = again[0].seq;

    // Deleting the connection removes tombstones; a re-created one continues.
    s.put_connection(&connection("c1", "t1")).await.unwrap();
    s.write_record(&write_of(&x1, Some(1), None, vec![]))
        .await
        .unwrap();
    assert!(s.delete_connection(&t.connection).await.unwrap());
    assert!(feed_of(s, "c1", "contacts", None, |_| {}).await.is_empty());
    s.put_connection(&connection("c1", "t1")).await.unwrap();
    insert(s, &x1).await;
    let reborn = feed_of(s, "c1", "contacts", None, |_| {}).await;
    assert_eq!(feed_ids(&reborn), [("x", Added)]);
    assert!(reborn[0].seq > last_seq, "{} > {last_seq}", reborn[0].seq);
}

// ---- product API (issue 17): changes — idempotency keys, conflict and audit pages

fn idem(scope: &str, key: &str, fingerprint: &str, token: &str, secs: u64) -> IdempotencyClaim {
    IdempotencyClaim {
        scope: scope.into(),
        key: key.into(),
        fingerprint: fingerprint.into(),
        token: token.into(),
        now: at(secs),
    }
}

fn answer(id: &str) -> StoredAnswer {
    StoredAnswer {
        status: 202,
        body: json!({ "id": id, "status": "pending" }),
    }
}

/// Idempotency keys follow Stripe's rules on every backend.
///
/// Tried: key `k` claimed in scope `s1`; claimed twice more while in flight
/// (same request, other request) and in another scope; completed; replayed;
/// completed again by a stale token; a second key claimed, released and
/// claimed again; a third key's claim left to lapse (61 s) and taken over,
/// after which the first claim's completion is refused; everything after
/// 24 h.
///
/// Must hold: the second claim of the same request is `InFlight`, of another
/// `Reused`; scopes are apart; a completed key replays its answer exactly
/// (and other requests stay `Reused`); only the current token completes or
/// releases; a released key is claimable at once; a lapsed claim is taken
/// over by the next claim; after retention a key is new again.
#[allow(clippy::too_many_lines, reason = "a contract case: tests are exempt")]
pub async fn idempotency_keys(store: Arc<dyn Store>) {
    use ClaimOutcome::*;
    let first = idem("s1", "k", "f1", "t1", 0);
    assert_eq!(store.claim_idempotency_key(&first).await.unwrap(), Claimed);
    let same = idem("s1", "k", "f1", "t2", 5);
    assert_eq!(
        store.claim_idempotency_key(&same).await.unwrap(),
        InFlight,
        "claim twice"
    );
    let other = idem("s1", "k", "f2", "t3", 5);
    assert_eq!(
        store.claim_idempotency_key(&other).await.unwrap(),
        Reused,
        "other fingerprint"
    );
    let elsewhere = idem("s2", "k", "f2", "t4", 5);
    assert_eq!(
        store.claim_idempotency_key(&elsewhere).await.unwrap(),
        Claimed,
        "keys are scoped"
    );
    assert!(
        !store
            .complete_idempotency_key(&same, &answer("x"))
            .await
            .unwrap(),
        "a token that never held the key completes nothing"
    );
    assert!(
        store
            .complete_idempotency_key(&first, &answer("r1"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .complete_idempotency_key(&first, &answer("r2"))
            .await
            .unwrap(),
        "a completed key keeps its first answer"
    );
    assert_eq!(
        store
            .claim_idempotency_key(&idem("s1", "k", "f1", "t5", 3600))
            .await
            .unwrap(),
        Replay(answer("r1")),
        "complete then replay"
    );
    assert_eq!(
        store
            .claim_idempotency_key(&idem("s1", "k", "f2", "t6", 3600))
            .await
            .unwrap(),
        Reused
    );
    // Released: forgotten at once.
    let second = idem("s1", "k2", "f1", "u1", 0);
    assert_eq!(store.claim_idempotency_key(&second).await.unwrap(), Claimed);
    assert!(
        !store
            .release_idempotency_key(&idem("s1", "k2", "f1", "zz", 1))
            .await
            .unwrap()
    );
    assert!(store.release_idempotency_key(&second).await.unwrap());
    assert_eq!(
        store
            .claim_idempotency_key(&idem("s1", "k2", "f9", "u2", 1))
            .await
            .unwrap(),
        Claimed,
        "a released key is new again, whatever the request"
    );
    // Expiry of a claim: a crashed request does not lock the key.
    let crashed = idem("s1", "k3", "f1", "v1", 0);
    assert_eq!(
        store.claim_idempotency_key(&crashed).await.unwrap(),
        Claimed
    );
    assert_eq!(
        store
            .claim_idempotency_key(&idem("s1", "k3", "f1", "v2", 59))
            .await
            .unwrap(),
        InFlight
    );
    let takeover = idem("s1", "k3", "f1", "v3", 61);
    assert_eq!(
        store.claim_idempotency_key(&takeover).await.unwrap(),
        Claimed,
        "expiry"
    );
    assert!(
        !store
            .complete_idempotency_key(&crashed, &answer("old"))
            .await
            .unwrap(),
        "the lapsed claim's request cannot complete over the takeover"
    );
    assert!(
        store
            .complete_idempotency_key(&takeover, &answer("new"))
            .await
            .unwrap()
    );
    // Retention: a day after the first claim the key is new.
    let day = 24 * 3600;
    assert_eq!(
        store
            .claim_idempotency_key(&idem("s1", "k", "f2", "w1", day))
            .await
            .unwrap(),
        Claimed,
        "kept 24 h, then forgotten"
    );
    assert_eq!(
        store
            .claim_idempotency_key(&idem("s1", "k3", "f1", "w2", day + 1))
            .await
            .unwrap(),
        Claimed
    );
}

/// Records with parked conflicts page by (connection, object, id).
///
/// Tried: parked conflicts on c1/contacts/a, c1/contacts/c, c1/deals/b and
/// c2/contacts/a, a pending push without conflicts on c1/contacts/b and a
/// synced record; pages of 2 over c1, then over everything; the conflict of
/// c1/contacts/a cleared.
///
/// Must hold: only records with conflicts, whole, in key order, each page
/// continuing strictly after the last key; a cleared conflict drops out.
pub async fn conflict_pages(store: Arc<dyn Store>) {
    let a = record("c1", "contacts", "a", "a", 1, Some(parked_conflict()));
    let c = record("c1", "contacts", "c", "c", 1, Some(parked_conflict()));
    let deal = record("c1", "deals", "b", "b", 1, Some(parked_conflict()));
    let other = record("c2", "contacts", "a", "a", 1, Some(parked_conflict()));
    let pending = record("c1", "contacts", "b", "b", 1, Some(local_state(Some(T0))));
    let synced = record("c1", "contacts", "d", "d", 1, None);
    for r in [&deal, &synced, &other, &c, &pending, &a] {
        insert(&*store, r).await;
    }
    let c1 = ConnectionId::parse("c1").unwrap();
    let key = |r: &Record| RecordKey {
        connection: r.connection.clone(),
        object: r.object.clone(),
        external_id: r.external_id.clone(),
    };
    let page = |connection: Option<ConnectionId>, after: Option<RecordKey>, limit| {
        let store = store.clone();
        async move {
            store
                .list_conflicts_page(&ConflictQuery {
                    connection,
                    after,
                    limit,
                })
                .await
                .unwrap()
        }
    };
    let p1 = page(Some(c1.clone()), None, 2).await;
    assert_eq!(p1, [a.clone(), c.clone()], "first page, whole records");
    let p2 = page(Some(c1.clone()), Some(key(&p1[1])), 2).await;
    assert_eq!(
        p2,
        std::slice::from_ref(&deal),
        "continues after the last key"
    );
    assert!(page(Some(c1.clone()), Some(key(&deal)), 2).await.is_empty());
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let p = page(None, after.clone(), 3).await;
        all.extend(names(&p));
        match p.last() {
            Some(last) if p.len() == 3 => after = Some(key(last)),
            _ => break,
        }
    }
    assert_eq!(
        all,
        names(&[a.clone(), c.clone(), deal.clone(), other]),
        "all connections"
    );
    let cleared = record("c1", "contacts", "a", "a", 2, Some(local_state(Some(T0))));
    store
        .write_record(&write_of(&a, Some(1), Some(cleared), vec![]))
        .await
        .unwrap();
    assert_eq!(
        names(&page(Some(c1), None, 10).await),
        names(&[c, deal]),
        "cleared drops out"
    );
}

/// A connection's audit pages oldest first, by the key a page hands out.
///
/// Tried: five entries on c1 over three writes (two in one write at the same
/// instant, one written later but decided earlier) and one on c2; pages of 2.
///
/// Must hold: the pages together are c1's `list_audit` order exactly, each
/// continuing strictly after the previous page's last key, nothing of c2.
pub async fn audit_pages(store: Arc<dyn Store>) {
    let r = record("c1", "contacts", "a", "a", 1, None);
    insert(&*store, &r).await;
    let writes = [
        vec![audit_of(&r, "k1", 10, "one"), audit_of(&r, "k2", 10, "two")],
        vec![audit_of(&r, "k3", 20, "three")],
        vec![
            audit_of(&r, "k4", 5, "early"),
            audit_of(&r, "k5", 30, "five"),
        ],
    ];
    for (version, audit) in (1..).zip(writes) {
        let next = record("c1", "contacts", "a", "a", version + 1, None);
        store
            .write_record(&write_of(&r, Some(version), Some(next), audit))
            .await
            .unwrap();
    }
    let r2 = record("c2", "contacts", "a", "a", 1, None);
    insert(&*store, &r2).await;
    let next = record("c2", "contacts", "a", "a", 2, None);
    store
        .write_record(&write_of(
            &r2,
            Some(1),
            Some(next),
            vec![audit_of(&r2, "x", 1, "c2")],
        ))
        .await
        .unwrap();
    let c1 = ConnectionId::parse("c1").unwrap();
    let mut keys = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_audit_page(&AuditQuery {
                connection: c1.clone(),
                after: after.clone(),
                limit: 2,
            })
            .await
            .unwrap();
        assert!(page.len() <= 2, "limit");
        keys.extend(page.iter().map(|e| e.record.key.clone()));
        match page.last() {
            Some(last) if page.len() == 2 => after = Some(last.key.clone()),
            _ => break,
        }
    }
    assert_eq!(
        keys,
        audit_keys(&*store, Some("c1"), 100).await,
        "list_audit's order"
    );
    assert_eq!(keys, ["k4", "k1", "k2", "k3", "k5"]);
}
