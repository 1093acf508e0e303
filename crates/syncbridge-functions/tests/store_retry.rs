//! The inbound worker when the store fails, through the real router, against
//! a real SQLite store that is full (SQLite's own `SQLITE_FULL`, via the
//! fault-injection page cap and filler rows) and the sandbox provider.
//!
//! What was tried: a job whose page commit hits the full store, once with the
//! queue working and once with the queue locked by another connection (its
//! sends fail with "database is locked" after a 50 ms busy timeout).
//! What must hold: with the queue working, the delivery is acknowledged and
//! the job comes back as a scheduled `…:r1` message about a second later,
//! keeping the task's lease; with the queue refusing too, the worker answers
//! non-2xx only after giving the task's lease back, so the task is due for
//! the scheduler's next tick rather than blocked until the lease expires.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use syncbridge_core::model::{
    Connection, ConnectionStatus, Direction, JobReason, Lease, Priority, SyncJob, SyncTask,
};
use syncbridge_core::{
    Clock, ConnectionId, ObjectType, OutboundMessage, QueueName, Store, SystemClock, TenantId,
};
use syncbridge_functions::{AppState, Settings, inbound};
use syncbridge_localqueue::{LocalQueue, LocalQueueOptions};
use syncbridge_protocol::{BrokerMessage, SysMetadata};
use syncbridge_sqlite::SqliteStore;
use tower::ServiceExt;

async fn setup(dir: &std::path::Path, base_url: String) -> (SyncTask, SyncJob) {
    let store = SqliteStore::open_in(dir).unwrap();
    let conn = Connection {
        id: ConnectionId::parse("c1").unwrap(),
        tenant: TenantId::parse("acme").unwrap(),
        provider: "sandbox".into(),
        status: ConnectionStatus::Active,
        base_url: Some(base_url),
        webhook: None,
        settings: Default::default(),
        conflicts: Default::default(),
        created_at: SystemClock.now(),
    };
    store.put_connection(&conn).await.unwrap();
    let object = ObjectType::parse("contacts").unwrap();
    let task = SyncTask {
        id: SyncTask::id_for(&conn.id, &object, Direction::Inbound),
        tenant: conn.tenant.clone(),
        connection: conn.id.clone(),
        object,
        direction: Direction::Inbound,
        priority: Priority::Scheduled,
        interval_secs: 3600,
        next_run_at: SystemClock.now(),
        cursor: None,
        lease: None,
        last_run_at: None,
        stalled: false,
        version: 0,
        generation: 0,
    };
    store.put_task(&task).await.unwrap();
    let lease = Lease {
        token: "v0".into(),
        until: SystemClock.now().add(Duration::from_secs(900)),
    };
    assert!(store.lease_task(&task.id, 0, &lease).await.unwrap());
    let job = SyncJob {
        task: task.id.clone(),
        connection: task.connection.clone(),
        object: task.object.clone(),
        priority: task.priority,
        reason: JobReason::Scheduled,
        lease_token: "v0".into(),
    };
    (task, job)
}

/// Fills `state.db` with rows of another table until it has 200 more pages, and
/// returns that size: the cap the handler's store gets.
fn fill(dir: &std::path::Path) -> u64 {
    let mut db = rusqlite::Connection::open(dir.join("state.db")).unwrap();
    let size: u64 = db.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
    db.execute_batch("CREATE TABLE fault_filler (b BLOB)")
        .unwrap();
    let tx = db.transaction().unwrap();
    while tx
        .query_row("PRAGMA page_count", [], |r| r.get::<_, u64>(0))
        .unwrap()
        < size + 200
    {
        tx.execute("INSERT INTO fault_filler (b) VALUES (zeroblob(3000))", [])
            .unwrap();
    }
    tx.commit().unwrap();
    db.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap()
}

async fn deliver(state: &AppState, job: &SyncJob) -> StatusCode {
    let msg = OutboundMessage::json(QueueName::inbound(), job.message_id(), job);
    let invocation = syncbridge_protocol::service_bus_request(
        "msg",
        &msg.body,
        &BrokerMessage::new(msg.message_id.clone()),
        true,
        &SysMetadata::new(inbound::FUNCTION, time::OffsetDateTime::now_utc()),
    );
    let req = Request::post(format!("/{}", inbound::FUNCTION))
        .header("content-type", "application/json")
        .body(Body::from(invocation.to_vec()))
        .unwrap();
    inbound::router(state.clone())
        .oneshot(req)
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_store_reschedules_or_gives_the_lease_back() {
    let sbx = syncbridge_sandbox::spawn(syncbridge_sandbox::SandboxConfig {
        records_per_object: 500,
        auth_enabled: false,
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (task, job) = setup(dir.path(), sbx.base_url()).await;
    let cap = fill(dir.path());
    let mut settings = Settings::for_data_dir(dir.path());
    settings.fault_store_max_pages = Some(cap);
    let mut state = AppState::embedded(settings).unwrap();

    // The queue works: acknowledged, retried later under the same lease.
    let before = SystemClock.now();
    assert_eq!(deliver(&state, &job).await, StatusCode::OK);
    let queue = LocalQueue::open(dir.path().join("queue.db")).unwrap();
    let queued = queue.peek(QueueName::SYNC_INBOUND).unwrap();
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0].message_id, format!("{}:r1", job.message_id()));
    let at = queued[0].scheduled_enqueue_time.expect("a scheduled retry");
    assert!(at >= before.add(Duration::from_secs(1)), "retried too soon");
    let t = state.store.get_task(&task.id).await.unwrap().unwrap();
    assert_eq!(t.lease.map(|l| l.token), Some("v0".to_string()));

    // The queue refuses too (another connection holds its write lock).
    state.queue = Arc::new(
        LocalQueue::open_with(
            dir.path().join("queue.db"),
            LocalQueueOptions {
                busy_timeout: Duration::from_millis(50),
                ..Default::default()
            },
        )
        .unwrap(),
    );
    let blocker = rusqlite::Connection::open(dir.path().join("queue.db")).unwrap();
    blocker
        .execute_batch("BEGIN IMMEDIATE; DELETE FROM dedup WHERE 0;")
        .unwrap();
    assert_eq!(
        deliver(&state, &job).await,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    blocker.execute_batch("ROLLBACK").unwrap();
    let t = state.store.get_task(&task.id).await.unwrap().unwrap();
    assert!(t.lease.is_none(), "the lease was kept: {:?}", t.lease);
    assert!(
        t.next_run_at <= SystemClock.now(),
        "the task is not due for the next tick"
    );
    assert_eq!(
        queue.peek(QueueName::SYNC_INBOUND).unwrap().len(),
        1,
        "no second retry was enqueued"
    );
}
