//! What the outbound tests share: a world of the real sandbox over loopback,
//! the real SQLite store and the real local queue, plus two fault injectors.
//!
//! - [`CrashingStore`] wraps the real SQLite store: `write_record` fails
//!   while armed, exactly as if the worker process had died before its commit
//!   reached the store (the provider may already have applied the push).
//!   Everything else goes straight to SQLite. Nothing is simulated but the crash.
//! - [`QueueDown`] refuses every send (the real local queue cannot be made to
//!   fail on demand); the real queue takes over after.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use syncbridge_core::connector::registry::Registry;
use syncbridge_core::merge::ConnectionPolicies;
use syncbridge_core::pipeline::worker::WorkerDeps;
use syncbridge_core::{Clock, OutboundMessage, QueueError, QueueName, QueueSender, SystemClock};
use syncbridge_localqueue::{LocalQueue, LocalQueueOptions};
use syncbridge_sandbox::SandboxHandle;
use syncbridge_sqlite::SqliteStore;
use syncbridge_tests::pipeline::{deps, run_once};
use syncbridge_tests::{add_connection, sandbox};

use syncbridge_core::model::{
    AuditRecord, Connection, Lease, QuarantinedMessage, Record, SyncRun, SyncTask, WebhookEvent,
};
use syncbridge_core::store::{
    PageCommit, PageOutcome, QuarantineEntry, RecordWrite, SealedCredential,
};
use syncbridge_core::{
    ConnectionId, ExternalId, ObjectType, Store, StoreError, TaskId, TenantId, Timestamp,
};

/// The wrapper.
#[derive(Debug)]
pub struct CrashingStore {
    inner: Arc<dyn Store>,
    /// Record writes still allowed before the crash; negative = no crash armed.
    writes_left: AtomicI64,
}

impl CrashingStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Store>) -> Self {
        CrashingStore {
            inner,
            writes_left: AtomicI64::new(-1),
        }
    }

    /// The next `n` record writes succeed, then every one fails (the process
    /// died) until [`Self::recover`].
    pub fn crash_after_writes(&self, n: i64) {
        self.writes_left.store(n, Ordering::SeqCst);
    }

    /// The process is back: writes succeed again.
    pub fn recover(&self) {
        self.writes_left.store(-1, Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl Store for CrashingStore {
    async fn put_connection(&self, c: &Connection) -> Result<(), StoreError> {
        self.inner.put_connection(c).await
    }
    async fn get_connection_tagged(
        &self,
        id: &ConnectionId,
    ) -> Result<Option<(Connection, String)>, StoreError> {
        self.inner.get_connection_tagged(id).await
    }
    async fn replace_connection(
        &self,
        c: &Connection,
        expected: &str,
    ) -> Result<String, StoreError> {
        self.inner.replace_connection(c, expected).await
    }
    async fn get_connection(&self, id: &ConnectionId) -> Result<Option<Connection>, StoreError> {
        self.inner.get_connection(id).await
    }
    async fn list_connections(
        &self,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<Connection>, StoreError> {
        self.inner.list_connections(tenant).await
    }
    async fn delete_connection(&self, id: &ConnectionId) -> Result<bool, StoreError> {
        self.inner.delete_connection(id).await
    }
    async fn put_task(&self, t: &SyncTask) -> Result<(), StoreError> {
        self.inner.put_task(t).await
    }
    async fn get_task(&self, id: &TaskId) -> Result<Option<SyncTask>, StoreError> {
        self.inner.get_task(id).await
    }
    async fn list_tasks(
        &self,
        connection: Option<&ConnectionId>,
    ) -> Result<Vec<SyncTask>, StoreError> {
        self.inner.list_tasks(connection).await
    }
    async fn due_tasks(&self, now: Timestamp, limit: usize) -> Result<Vec<SyncTask>, StoreError> {
        self.inner.due_tasks(now, limit).await
    }
    async fn lease_task(
        &self,
        id: &TaskId,
        expected_version: i64,
        lease: &Lease,
    ) -> Result<bool, StoreError> {
        self.inner.lease_task(id, expected_version, lease).await
    }
    async fn stall_candidates(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<SyncTask>, StoreError> {
        self.inner.stall_candidates(now, limit).await
    }
    async fn release_task(
        &self,
        id: &TaskId,
        lease_token: &str,
        next_run_at: Timestamp,
        finished_at: Timestamp,
    ) -> Result<bool, StoreError> {
        self.inner
            .release_task(id, lease_token, next_run_at, finished_at)
            .await
    }
    async fn request_run(
        &self,
        id: &TaskId,
        priority: syncbridge_core::model::Priority,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        self.inner.request_run(id, priority, at).await
    }
    async fn set_task_stalled(&self, id: &TaskId, stalled: bool) -> Result<(), StoreError> {
        self.inner.set_task_stalled(id, stalled).await
    }
    async fn commit_page(&self, page: &PageCommit) -> Result<PageOutcome, StoreError> {
        self.inner.commit_page(page).await
    }
    async fn write_record(&self, w: &RecordWrite) -> Result<(), StoreError> {
        let left = self.writes_left.load(Ordering::SeqCst);
        if left == 0 {
            return Err(StoreError::Unavailable(
                "injected crash: the write never reached the store".into(),
            ));
        }
        if left > 0 {
            self.writes_left.fetch_sub(1, Ordering::SeqCst);
        }
        self.inner.write_record(w).await
    }
    async fn due_pushes(&self, now: Timestamp, limit: usize) -> Result<Vec<Record>, StoreError> {
        self.inner.due_pushes(now, limit).await
    }
    async fn list_local_changes(
        &self,
        connection: Option<&ConnectionId>,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        self.inner.list_local_changes(connection, limit).await
    }
    async fn list_audit(
        &self,
        connection: Option<&ConnectionId>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.inner.list_audit(connection, limit).await
    }
    async fn get_record(
        &self,
        connection: &ConnectionId,
        object: &ObjectType,
        id: &ExternalId,
    ) -> Result<Option<Record>, StoreError> {
        self.inner.get_record(connection, object, id).await
    }
    async fn count_records(
        &self,
        connection: &ConnectionId,
        object: &ObjectType,
    ) -> Result<u64, StoreError> {
        self.inner.count_records(connection, object).await
    }
    async fn list_records(
        &self,
        connection: &ConnectionId,
        object: &ObjectType,
        after: Option<&ExternalId>,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        self.inner
            .list_records(connection, object, after, limit)
            .await
    }
    async fn records_feed(
        &self,
        q: &syncbridge_core::store::FeedQuery,
    ) -> Result<Vec<syncbridge_core::store::FeedEntry>, StoreError> {
        self.inner.records_feed(q).await
    }
    async fn feed_position(&self, connection: &ConnectionId) -> Result<u64, StoreError> {
        self.inner.feed_position(connection).await
    }
    async fn put_run(&self, run: &SyncRun) -> Result<(), StoreError> {
        self.inner.put_run(run).await
    }
    async fn list_runs(
        &self,
        task: Option<&TaskId>,
        limit: usize,
    ) -> Result<Vec<SyncRun>, StoreError> {
        self.inner.list_runs(task, limit).await
    }
    async fn get_credential(
        &self,
        connection: &ConnectionId,
    ) -> Result<Option<SealedCredential>, StoreError> {
        self.inner.get_credential(connection).await
    }
    async fn put_credential(
        &self,
        c: &SealedCredential,
        expected_version: Option<i64>,
    ) -> Result<bool, StoreError> {
        self.inner.put_credential(c, expected_version).await
    }
    async fn credentials_due(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<SealedCredential>, StoreError> {
        self.inner.credentials_due(now, limit).await
    }
    async fn try_lock(
        &self,
        name: &str,
        owner: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.inner.try_lock(name, owner, until, now).await
    }
    async fn unlock(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        self.inner.unlock(name, owner).await
    }
    async fn insert_webhook_event(
        &self,
        e: &WebhookEvent,
        dedup_since: Timestamp,
    ) -> Result<bool, StoreError> {
        self.inner.insert_webhook_event(e, dedup_since).await
    }
    async fn insert_webhook_events(
        &self,
        events: &[WebhookEvent],
        window: std::time::Duration,
    ) -> Result<Vec<bool>, StoreError> {
        self.inner.insert_webhook_events(events, window).await
    }
    async fn quarantine(&self, m: &QuarantinedMessage) -> Result<i64, StoreError> {
        self.inner.quarantine(m).await
    }
    async fn list_quarantine(&self, limit: usize) -> Result<Vec<QuarantineEntry>, StoreError> {
        self.inner.list_quarantine(limit).await
    }
    async fn prune_webhook_events(
        &self,
        received_before: Timestamp,
        limit: usize,
    ) -> Result<u64, StoreError> {
        self.inner
            .prune_webhook_events(received_before, limit)
            .await
    }
    async fn take_quarantined(&self, id: i64) -> Result<Option<QuarantinedMessage>, StoreError> {
        self.inner.take_quarantined(id).await
    }
    // ---- product API (SyncApi): passed through ----
    async fn create_api_key(
        &self,
        key: &syncbridge_core::apikeys::ApiKey,
    ) -> Result<(), StoreError> {
        self.inner.create_api_key(key).await
    }
    async fn find_api_key(
        &self,
        hash: &str,
    ) -> Result<Option<syncbridge_core::apikeys::ApiKey>, StoreError> {
        self.inner.find_api_key(hash).await
    }
    async fn list_api_keys(&self) -> Result<Vec<syncbridge_core::apikeys::ApiKey>, StoreError> {
        self.inner.list_api_keys().await
    }
    async fn revoke_api_key(&self, id: &str, at: Timestamp) -> Result<bool, StoreError> {
        self.inner.revoke_api_key(id, at).await
    }
    async fn prune_api_keys(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.inner.prune_api_keys(now).await
    }
    async fn get_notification_rules(
        &self,
    ) -> Result<Option<syncbridge_core::notify_rules::NotificationRules>, StoreError> {
        self.inner.get_notification_rules().await
    }
    async fn put_notification_rules(
        &self,
        rules: &syncbridge_core::notify_rules::NotificationRules,
    ) -> Result<bool, StoreError> {
        self.inner.put_notification_rules(rules).await
    }
    async fn create_connect_session(
        &self,
        s: &syncbridge_core::connect::ConnectSession,
    ) -> Result<(), StoreError> {
        self.inner.create_connect_session(s).await
    }
    async fn get_connect_session(
        &self,
        id: &str,
    ) -> Result<Option<syncbridge_core::connect::ConnectSession>, StoreError> {
        self.inner.get_connect_session(id).await
    }
    async fn advance_connect_session(
        &self,
        next: &syncbridge_core::connect::ConnectSession,
    ) -> Result<bool, StoreError> {
        self.inner.advance_connect_session(next).await
    }
    async fn list_connections_page(
        &self,
        q: &syncbridge_core::store::ConnectionQuery,
    ) -> Result<Vec<Connection>, StoreError> {
        self.inner.list_connections_page(q).await
    }
    async fn list_runs_page(
        &self,
        q: &syncbridge_core::store::RunQuery,
    ) -> Result<Vec<SyncRun>, StoreError> {
        self.inner.list_runs_page(q).await
    }
    async fn get_run(&self, id: &syncbridge_core::RunId) -> Result<Option<SyncRun>, StoreError> {
        self.inner.get_run(id).await
    }
    async fn run_stats(
        &self,
        q: &syncbridge_core::store::RunStatsQuery,
    ) -> Result<Vec<syncbridge_core::store::RunBucket>, StoreError> {
        self.inner.run_stats(q).await
    }
    async fn claim_idempotency_key(
        &self,
        c: &syncbridge_core::store::IdempotencyClaim,
    ) -> Result<syncbridge_core::store::ClaimOutcome, StoreError> {
        self.inner.claim_idempotency_key(c).await
    }
    async fn complete_idempotency_key(
        &self,
        c: &syncbridge_core::store::IdempotencyClaim,
        answer: &syncbridge_core::store::StoredAnswer,
    ) -> Result<bool, StoreError> {
        self.inner.complete_idempotency_key(c, answer).await
    }
    async fn release_idempotency_key(
        &self,
        c: &syncbridge_core::store::IdempotencyClaim,
    ) -> Result<bool, StoreError> {
        self.inner.release_idempotency_key(c).await
    }
    async fn list_conflicts_page(
        &self,
        q: &syncbridge_core::store::ConflictQuery,
    ) -> Result<Vec<Record>, StoreError> {
        self.inner.list_conflicts_page(q).await
    }
    async fn list_audit_page(
        &self,
        q: &syncbridge_core::store::AuditQuery,
    ) -> Result<Vec<syncbridge_core::store::AuditEntry>, StoreError> {
        self.inner.list_audit_page(q).await
    }
    async fn put_function_beat(
        &self,
        beat: &syncbridge_core::heartbeat::FunctionBeat,
    ) -> Result<(), StoreError> {
        self.inner.put_function_beat(beat).await
    }
    async fn list_function_beats(
        &self,
    ) -> Result<Vec<syncbridge_core::heartbeat::FunctionBeat>, StoreError> {
        self.inner.list_function_beats().await
    }
}

/// One connection `c1` to a fresh sandbox, its contacts pulled once.
pub struct World {
    pub sandbox: SandboxHandle,
    pub store: Arc<CrashingStore>,
    pub queue: Arc<LocalQueue>,
    pub deps: WorkerDeps,
    pub task: SyncTask,
    pub conn: ConnectionId,
    pub _dir: tempfile::TempDir,
}

/// The object under test.
pub fn contacts() -> ObjectType {
    ObjectType::parse("contacts").unwrap()
}

/// A world with `records` contacts and the connection's conflict `policies`.
pub async fn world(records: usize, policies: ConnectionPolicies) -> World {
    world_on(records, policies, Arc::new(SystemClock)).await
}

/// [`world`] whose worker and queue read `clock`: with a `ManualClock` a
/// scheduled message comes due when the test advances it, without waiting.
pub async fn world_on(
    records: usize,
    policies: ConnectionPolicies,
    clock: Arc<dyn Clock>,
) -> World {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(records).await;
    let sqlite: Arc<dyn Store> = Arc::new(SqliteStore::open_in(dir.path()).unwrap());
    let store = Arc::new(CrashingStore::new(sqlite));
    let tasks = add_connection(&*store, "c1", &sandbox.base_url(), &["contacts"], None).await;
    let conn = ConnectionId::parse("c1").unwrap();
    let mut c = store.get_connection(&conn).await.unwrap().unwrap();
    c.conflicts = policies;
    store.put_connection(&c).await.unwrap();
    let queue = Arc::new(
        LocalQueue::open_with(
            dir.path().join("queue.db"),
            LocalQueueOptions::with_clock(clock.clone()),
        )
        .unwrap(),
    );
    queue.declare_queue(QueueName::SYNC_OUTBOUND).unwrap();
    let mut deps = deps(store.clone(), Registry::builtin());
    deps.clock = clock;
    let task = tasks.into_iter().next().unwrap();
    run_once(&deps, &task).await;
    World {
        sandbox,
        store,
        queue,
        deps,
        task,
        conn,
        _dir: dir,
    }
}

/// A queue that refuses every send.
#[derive(Debug)]
pub struct QueueDown;

#[async_trait::async_trait]
impl QueueSender for QueueDown {
    async fn send(&self, _: Vec<OutboundMessage>) -> Result<(), QueueError> {
        Err(QueueError::Transient("queue unavailable".into()))
    }
}
