//! The [`Store`] trait: every piece of durable state goes through it.
//!
//! One contract, several backends (SQLite for the embedded default, Cosmos DB
//! in Azure); the contract suite in `syncbridge-sqlite/tests` holds each to the
//! same behaviour.
//!
//! # Invariants every backend keeps
//!
//! - A page of records and the task's cursor commit together or not at all
//!   ([`Store::commit_page`]): a crash resumes from the last committed page.
//! - A commit is accepted only under the task's current lease; a worker whose
//!   lease was taken over cannot move the cursor back.
//! - A record's `version` grows with every write of it: a page commit bumps it
//!   by one exactly when the content hash changes (unchanged records are not
//!   written); [`Store::write_record`] is compare-and-swap on it, and every
//!   writer must give the new state a higher version than the one it read,
//!   or two concurrent writers could both succeed.
//! - Task writes that take or release a lease are compare-and-swap on `version`.
//! - What a page commit does with each record is [`classify`]'s decision
//!   (held → unchanged → stale → update/create), the same in every backend.
//! - Every content write stamps a per-connection change sequence and a
//!   removal keeps a tombstone only [`Store::records_feed`] sees (see [`feed`]).

use std::fmt;

// ---- page-commit classification and the records feed (issues 16, 17) ----
pub mod changes;
pub mod classify;
pub mod feed;

pub use changes::{
    AuditEntry, AuditKey, AuditQuery, ClaimOutcome, ConflictQuery, IdempotencyClaim, RecordKey,
    StoredAnswer,
};
pub use classify::{DeleteAction, PageAction, StoredHead, classify, classify_delete};
pub use feed::{ActionFilter, FeedEntry, FeedQuery, LastAction};

use serde::{Deserialize, Serialize};

use crate::apikeys::ApiKey;
use crate::clock::Timestamp;
use crate::ids::{ConnectionId, ExternalId, ObjectType, RunId, TaskId, TenantId};
use crate::model::{
    AuditRecord, Connection, Lease, QuarantinedMessage, Record, SyncRun, SyncTask, WebhookEvent,
};

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The task's lease is held by someone else or has been taken over.
    #[error("lease on task {0} is no longer held")]
    LeaseLost(TaskId),
    /// A compare-and-swap lost against a concurrent writer.
    #[error("concurrent update of {0}")]
    Conflict(String),
    /// A referenced row does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// Worth retrying (busy database, throttling, timeout).
    #[error("store temporarily unavailable: {0}")]
    Unavailable(String),
    /// Stored data could not be read back (a bug or manual tampering).
    #[error("store data corrupt: {0}")]
    Corrupt(String),
    /// The store this process opened is no longer the one at its location
    /// (the embedded store's file was deleted or replaced while open). Every
    /// operation fails from then on: a write would go where nobody reads it.
    /// Not worth retrying in this process.
    #[error("store detached: {0}")]
    Detached(String),
}

impl StoreError {
    /// Whether the same call may succeed later without anyone fixing data:
    /// an unavailable store (busy, locked, full, failing I/O) or a lost
    /// compare-and-swap. A lost lease, a missing row or corrupt data stay so.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Conflict(_))
    }
}

/// One record to write in a page commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordUpsert {
    /// Id in the provider.
    pub external_id: ExternalId,
    /// Canonical fields.
    pub data: serde_json::Value,
    /// [`crate::model::content_hash`] of `data`.
    pub hash: String,
    /// The provider's last-modified time.
    pub remote_updated_at: Option<Timestamp>,
}

/// A page of inbound changes and the cursor after it, committed atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageCommit {
    /// The task being run.
    pub task: TaskId,
    /// The lease it runs under.
    pub lease_token: String,
    /// Connection of the records.
    pub connection: ConnectionId,
    /// Object type of the records.
    pub object: ObjectType,
    /// Records seen on the page.
    pub upserts: Vec<RecordUpsert>,
    /// Records the provider reports deleted.
    pub deletes: Vec<ExternalId>,
    /// The cursor to resume from after this page.
    pub cursor: Option<String>,
}

/// What a page commit changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageOutcome {
    /// New records.
    pub created: u64,
    /// Records whose hash changed.
    pub updated: u64,
    /// Records whose hash was the same (nothing written).
    pub unchanged: u64,
    /// Records removed (already-absent ids are not counted).
    pub deleted: u64,
    /// Records left alone because a local change or a parked conflict holds
    /// them (the outbound worker merges the provider's state instead).
    #[serde(default)]
    pub held: u64,
    /// Records older than the stored copy (by the provider's modification
    /// time): an older remote version never overwrites a newer one.
    #[serde(default)]
    pub stale: u64,
}

/// A compare-and-swap write of one record and what goes with it, in one
/// transaction: the record's new state (or its removal, or its move to the
/// id the provider assigned) and the audit entries of the decisions that
/// produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordWrite {
    /// Connection of the record.
    pub connection: ConnectionId,
    /// Object type.
    pub object: ObjectType,
    /// The record's id now.
    pub external_id: ExternalId,
    /// The version the writer read; `None` = the record must not exist.
    /// A mismatch is [`StoreError::Conflict`] and writes nothing.
    pub expect_version: Option<i64>,
    /// The new state (its `external_id` may differ: the record moves there,
    /// which must not exist yet), or `None` to remove the record.
    pub next: Option<Record>,
    /// Decisions to append; an entry whose key is already stored is skipped.
    pub audit: Vec<AuditRecord>,
}

/// A quarantined message with its store id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineEntry {
    /// Store-assigned id, for replay.
    pub id: i64,
    /// The message.
    pub message: QuarantinedMessage,
}

/// A connection's credentials as stored: sealed (encrypted) by the
/// credentials layer; the store never sees plaintext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedCredential {
    /// Owning connection.
    pub connection: ConnectionId,
    /// Compare-and-swap version, bumped on every save.
    pub version: i64,
    /// Which data-encryption key sealed it (keys rotate without downtime).
    pub key_version: String,
    /// AEAD nonce.
    pub nonce: Vec<u8>,
    /// AEAD ciphertext of the credential document.
    pub ciphertext: Vec<u8>,
    /// When the access token expires (plaintext metadata, for the refresher's sweep).
    pub expires_at: Option<Timestamp>,
    /// When it was last refreshed (or created).
    pub refreshed_at: Timestamp,
    /// When the refresher's sweep should next look at it (within its
    /// refresh margin, or idle too long), computed by the credentials layer
    /// on every save; `None` = never (no refresh token, needs re-authorization).
    /// Indexed, so a sweep reads only what is due.
    #[serde(default)]
    pub sweep_at: Option<Timestamp>,
}

/// One lease a scheduler tick asks for (see [`Store::lease_tasks`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRequest {
    /// The task as the tick read it. Its `version` and `generation` are the
    /// expected ones: another writer's change, or a replacement of the task
    /// (`put_task` of a new task with the same id, which restarts the
    /// version but draws a new generation), voids the request. Backends may
    /// write the leased task from it without reading it again.
    pub task: SyncTask,
    /// The lease to take.
    pub lease: Lease,
}

// ---- product API (SyncApi): paged queries ---------------------------------
// Keyset pages for the API's lists, which must stay fast at 10,000
// connections and 100,000 runs: every page is an index range after the
// previous page's last key, never an offset.

/// A page of connections: filters, the last id of the previous page, a size.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionQuery {
    /// Only this tenant's.
    pub tenant: Option<TenantId>,
    /// Only connections in this state.
    pub status: Option<crate::model::ConnectionStatus>,
    /// Only this connector's.
    pub provider: Option<String>,
    /// Ids after this one (ordered by id).
    pub after: Option<ConnectionId>,
    /// At most this many.
    pub limit: usize,
}

/// Where a page of runs resumes: runs are ordered newest first by
/// (`started_at`, `id`), and a page continues strictly after this key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunKey {
    /// The last run's start.
    pub started_at: Timestamp,
    /// The last run's id.
    pub id: RunId,
}

/// A page of runs, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunQuery {
    /// Only this connection's.
    pub connection: Option<ConnectionId>,
    /// Only runs in one of these states (empty = any).
    pub statuses: Vec<crate::model::RunStatus>,
    /// Only runs started at or after this instant.
    pub since: Option<Timestamp>,
    /// Continue after this key (the previous page's last run).
    pub after: Option<RunKey>,
    /// At most this many.
    pub limit: usize,
}

/// Which runs [`Store::run_stats`] sums and how it buckets them: runs
/// started in `[since, until)`, in buckets of `bucket_ms` counted from `since`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunStatsQuery {
    /// First instant counted; the first bucket starts here.
    pub since: Timestamp,
    /// First instant not counted.
    pub until: Timestamp,
    /// Width of a bucket in milliseconds.
    pub bucket_ms: std::num::NonZeroU32,
}

/// The sums of the runs that started in one bucket of a [`RunStatsQuery`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunBucket {
    /// Start of the bucket (`since + k * bucket_ms`).
    pub start: Timestamp,
    /// Runs started in it.
    pub runs: u64,
    /// Of which ended [`crate::model::RunStatus::Failed`].
    pub failed: u64,
    /// Records created, updated or deleted by them.
    pub records: u64,
    /// Of which have finished (have `finished_at`).
    pub finished: u64,
    /// Sum of the finished runs' durations in milliseconds (a run that
    /// finished before it started counts 0).
    pub duration_ms: u64,
}

/// All durable state. Implementations are cheap to share (`Arc<dyn Store>`).
#[async_trait::async_trait]
pub trait Store: Send + Sync + fmt::Debug + 'static {
    // ---- connections -------------------------------------------------------

    /// Creates or replaces a connection.
    async fn put_connection(&self, c: &Connection) -> Result<(), StoreError>;
    /// One connection.
    async fn get_connection(&self, id: &ConnectionId) -> Result<Option<Connection>, StoreError>;
    /// All connections, or one tenant's, ordered by id.
    async fn list_connections(
        &self,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<Connection>, StoreError>;
    /// Removes a connection with its tasks, runs and records. `false` if absent.
    async fn delete_connection(&self, id: &ConnectionId) -> Result<bool, StoreError>;
    /// One connection with its version tag: opaque (letters, digits, `.`,
    /// `-`, no quotes), different after every write of the connection
    /// (`put_connection` included) and never repeated by a connection
    /// deleted and created again. The API's `ETag`.
    async fn get_connection_tagged(
        &self,
        id: &ConnectionId,
    ) -> Result<Option<(Connection, String)>, StoreError>;
    /// Replaces connection `c.id` only if its tag is still `expected`
    /// (optimistic concurrency); returns the new tag.
    /// [`StoreError::Conflict`] when the tag changed (nothing written),
    /// [`StoreError::NotFound`] when the connection is gone.
    async fn replace_connection(
        &self,
        c: &Connection,
        expected: &str,
    ) -> Result<String, StoreError>;

    // ---- tasks -------------------------------------------------------------

    /// Creates a task, or replaces it entirely.
    async fn put_task(&self, t: &SyncTask) -> Result<(), StoreError>;
    /// One task.
    async fn get_task(&self, id: &TaskId) -> Result<Option<SyncTask>, StoreError>;
    /// All tasks, or one connection's, ordered by id.
    async fn list_tasks(
        &self,
        connection: Option<&ConnectionId>,
    ) -> Result<Vec<SyncTask>, StoreError>;
    /// Tasks due at `now` whose lease is absent or expired, most urgent first
    /// (priority, then `next_run_at`), at most `limit`.
    async fn due_tasks(&self, now: Timestamp, limit: usize) -> Result<Vec<SyncTask>, StoreError>;
    /// Takes a lease if the task is still at `expected_version`. `Ok(false)` if
    /// another writer got there first.
    async fn lease_task(
        &self,
        id: &TaskId,
        expected_version: i64,
        lease: &Lease,
    ) -> Result<bool, StoreError>;
    /// Takes many leases, each as [`Store::lease_task`] would; the answer
    /// says, in order, which were taken. A tick at scale leases thousands of
    /// tasks: backends that can (SQLite: one transaction) override this.
    async fn lease_tasks(&self, requests: &[LeaseRequest]) -> Result<Vec<bool>, StoreError> {
        let mut taken = Vec::with_capacity(requests.len());
        for r in requests {
            taken.push(
                self.lease_task(&r.task.id, r.task.version, &r.lease)
                    .await?,
            );
        }
        Ok(taken)
    }
    /// Tasks not yet flagged whose [`SyncTask::stall_at`] is before `now`,
    /// earliest first, at most `limit`: the watchdog's candidates. An index
    /// range, never a scan of every task.
    async fn stall_candidates(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<SyncTask>, StoreError>;
    /// Ends a lease: clears it and schedules the next run. `Ok(false)` if the
    /// lease is no longer ours (nothing is written).
    async fn release_task(
        &self,
        id: &TaskId,
        lease_token: &str,
        next_run_at: Timestamp,
        finished_at: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Asks for a run no later than `at` with at least `priority` urgency
    /// (webhook follow-ups, "sync now"). Touches nothing else, so it is safe
    /// while a run holds the lease.
    async fn request_run(
        &self,
        id: &TaskId,
        priority: crate::model::Priority,
        at: Timestamp,
    ) -> Result<(), StoreError>;
    /// Sets or clears the watchdog's stalled flag.
    async fn set_task_stalled(&self, id: &TaskId, stalled: bool) -> Result<(), StoreError>;

    // ---- records -----------------------------------------------------------

    /// Writes a page of records, deletes, and the cursor in one transaction,
    /// under the task's lease. Unchanged hashes are skipped; records with a
    /// [`Record::local`] state are held (neither updated nor deleted); an
    /// upsert whose `remote_updated_at` is older than the stored one is stale
    /// and skipped: [`classify`] decides each record. Applied upserts and
    /// deletes stamp the records feed (see [`feed`]).
    async fn commit_page(&self, page: &PageCommit) -> Result<PageOutcome, StoreError>;
    /// Writes one record with compare-and-swap on its version (see [`RecordWrite`]).
    async fn write_record(&self, w: &RecordWrite) -> Result<(), StoreError>;
    /// Records whose push is due at `now`, oldest due first, at most `limit`.
    async fn due_pushes(&self, now: Timestamp, limit: usize) -> Result<Vec<Record>, StoreError>;
    /// Records with a local state (pending pushes, parked pushes, parked
    /// conflicts), all connections or one, ordered by (connection, object, id).
    async fn list_local_changes(
        &self,
        connection: Option<&ConnectionId>,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError>;
    /// The audit log, oldest first (by `at`, then the order within one
    /// write), all connections or one. Deleting a connection keeps its audit
    /// entries (the log is a record of decisions taken).
    async fn list_audit(
        &self,
        connection: Option<&ConnectionId>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError>;
    /// One record.
    async fn get_record(
        &self,
        connection: &ConnectionId,
        object: &ObjectType,
        id: &ExternalId,
    ) -> Result<Option<Record>, StoreError>;
    /// Number of records of an object.
    async fn count_records(
        &self,
        connection: &ConnectionId,
        object: &ObjectType,
    ) -> Result<u64, StoreError>;
    /// Records of an object ordered by external id, after `after`, at most `limit`.
    async fn list_records(
        &self,
        connection: &ConnectionId,
        object: &ObjectType,
        after: Option<&ExternalId>,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError>;

    // ---- records feed (issue 17; rules in [`feed`]) -------------------------

    /// Records of one object in change order (seq ascending) after `after_seq`, at most `limit`,
    /// tombstones included. A record changed again gets a new, higher seq, so a client paging
    /// through sees it again later and never skips it.
    async fn records_feed(&self, q: &FeedQuery) -> Result<Vec<FeedEntry>, StoreError>;
    /// The connection's last drawn change sequence (0 before its first
    /// change): a feed read after it (`after_seq`) returns exactly what
    /// changes from now on, of any object.
    async fn feed_position(&self, connection: &ConnectionId) -> Result<u64, StoreError>;

    // ---- runs --------------------------------------------------------------

    /// Creates or replaces a run record.
    async fn put_run(&self, run: &SyncRun) -> Result<(), StoreError>;
    /// Latest runs first, all or one task's.
    async fn list_runs(
        &self,
        task: Option<&TaskId>,
        limit: usize,
    ) -> Result<Vec<SyncRun>, StoreError>;

    // ---- credentials and locks ---------------------------------------------

    /// A connection's sealed credential.
    async fn get_credential(
        &self,
        connection: &ConnectionId,
    ) -> Result<Option<SealedCredential>, StoreError>;
    /// Saves a credential if the stored version is still `expected_version`
    /// (`None` = must not exist yet). The saved version is `c.version`, which
    /// the caller sets to `expected_version + 1`. `Ok(false)` = lost the race.
    async fn put_credential(
        &self,
        c: &SealedCredential,
        expected_version: Option<i64>,
    ) -> Result<bool, StoreError>;
    /// Credentials whose [`SealedCredential::sweep_at`] is at or before
    /// `now`, soonest first, at most `limit` (an index range).
    async fn credentials_due(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<SealedCredential>, StoreError>;
    /// Takes the named lock for `owner` until `until` if it is free or expired
    /// (or already `owner`'s). `Ok(false)` if someone else holds it.
    async fn try_lock(
        &self,
        name: &str,
        owner: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Releases the lock if `owner` holds it.
    async fn unlock(&self, name: &str, owner: &str) -> Result<(), StoreError>;

    // ---- webhooks and quarantine ------------------------------------------

    /// Stores an event unless one with the same connection and dedup key was
    /// stored at or after `dedup_since`. `Ok(false)` means duplicate.
    async fn insert_webhook_event(
        &self,
        e: &WebhookEvent,
        dedup_since: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Stores a batch of events in one transaction where the backend can;
    /// each is deduplicated against events stored within `window` before its
    /// `received_at` (and against earlier events of the same batch). Returns
    /// `true` for each new event.
    async fn insert_webhook_events(
        &self,
        events: &[WebhookEvent],
        window: std::time::Duration,
    ) -> Result<Vec<bool>, StoreError> {
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            out.push(
                self.insert_webhook_event(e, e.received_at.sub(window))
                    .await?,
            );
        }
        Ok(out)
    }
    /// Removes at most `limit` stored webhook events received before
    /// `received_before` (callers pass `now - dedup window`, so no event that
    /// could still dedup a redelivery is removed); returns how many went.
    /// Backends that expire events themselves (Cosmos DB's per-item TTL)
    /// remove nothing here and return 0.
    async fn prune_webhook_events(
        &self,
        received_before: Timestamp,
        limit: usize,
    ) -> Result<u64, StoreError>;
    /// Sets a message aside; returns its id.
    async fn quarantine(&self, m: &QuarantinedMessage) -> Result<i64, StoreError>;
    /// Quarantined messages, oldest first.
    async fn list_quarantine(&self, limit: usize) -> Result<Vec<QuarantineEntry>, StoreError>;
    /// Removes and returns a quarantined message (for replay).
    async fn take_quarantined(&self, id: i64) -> Result<Option<QuarantinedMessage>, StoreError>;

    // ---- product API (SyncApi): API keys -----------------------------------

    /// Stores a new key. [`StoreError::Conflict`] if its id or hash is taken.
    async fn create_api_key(&self, key: &ApiKey) -> Result<(), StoreError>;
    /// The key whose [`ApiKey::hash`] is `hash`, revoked or not.
    async fn find_api_key(&self, hash: &str) -> Result<Option<ApiKey>, StoreError>;
    /// Every key, revoked ones too, ordered by id.
    async fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError>;
    /// Marks a key revoked at `at` (kept for the record). `Ok(false)` if there
    /// is no such key; revoking a revoked key keeps its first revocation time.
    async fn revoke_api_key(&self, id: &str, at: Timestamp) -> Result<bool, StoreError>;
    /// Deletes the keys that expire ([`ApiKey::expires_at`] set: dashboard
    /// sessions, sign-in links) and are expired at `now` or revoked (signed
    /// out, spent); keys without an expiry stay, revoked or not (they are
    /// listed for the record). Returns how many were deleted.
    async fn prune_api_keys(&self, now: Timestamp) -> Result<u64, StoreError>;

    // ---- notification rules (the dashboard's; see [`crate::notify_rules`]) --

    /// The stored rules, if the dashboard saved any.
    async fn get_notification_rules(
        &self,
    ) -> Result<Option<crate::notify_rules::NotificationRules>, StoreError>;
    /// Stores `rules` if the stored version is still `rules.version - 1`
    /// (0: nothing stored yet); compare-and-swap, so of two saves from the
    /// same version exactly one gets `true`.
    async fn put_notification_rules(
        &self,
        rules: &crate::notify_rules::NotificationRules,
    ) -> Result<bool, StoreError>;

    // ---- connect flow (SyncApi): connect sessions ---------------------------

    /// Stores a new session. [`StoreError::Conflict`] if its id is taken.
    async fn create_connect_session(
        &self,
        s: &crate::connect::ConnectSession,
    ) -> Result<(), StoreError>;
    /// One session by id.
    async fn get_connect_session(
        &self,
        id: &str,
    ) -> Result<Option<crate::connect::ConnectSession>, StoreError>;
    /// Replaces the session `next.id` with `next` if its stored version is
    /// still `next.version - 1` (compare-and-swap: of two callers advancing
    /// the same version, exactly one gets `true`); `false` when it moved on
    /// or does not exist.
    async fn advance_connect_session(
        &self,
        next: &crate::connect::ConnectSession,
    ) -> Result<bool, StoreError>;

    // ---- product API (SyncApi): paged queries ------------------------------

    /// One page of connections ordered by id (see [`ConnectionQuery`]).
    async fn list_connections_page(
        &self,
        q: &ConnectionQuery,
    ) -> Result<Vec<Connection>, StoreError>;
    /// One page of runs, newest first (see [`RunQuery`]).
    async fn list_runs_page(&self, q: &RunQuery) -> Result<Vec<SyncRun>, StoreError>;
    /// One run by id.
    async fn get_run(&self, id: &RunId) -> Result<Option<SyncRun>, StoreError>;
    /// The sums of the runs started in the query's period, per bucket:
    /// only buckets with runs, oldest first. An aggregate in the store (no
    /// run document is decoded here): the dashboard's 24-hour charts.
    async fn run_stats(&self, q: &RunStatsQuery) -> Result<Vec<RunBucket>, StoreError>;

    // ---- function heartbeats (health) --------------------------------------

    /// Merges `beat` into its function's stored beat
    /// ([`crate::heartbeat::FunctionBeat::merge`]) atomically, so
    /// concurrent instances of a function lose nothing; stores it when
    /// there is none.
    async fn put_function_beat(
        &self,
        beat: &crate::heartbeat::FunctionBeat,
    ) -> Result<(), StoreError>;
    /// Every function's beat, ordered by function name.
    async fn list_function_beats(&self) -> Result<Vec<crate::heartbeat::FunctionBeat>, StoreError>;

    // ---- product API (SyncApi): changes (rules in [`changes`]) -------------

    /// Claims an idempotency key for a request (see [`changes`]).
    async fn claim_idempotency_key(&self, c: &IdempotencyClaim)
    -> Result<ClaimOutcome, StoreError>;
    /// Stores the answer under the claim; `Ok(false)` if the claim is no
    /// longer this one (it lapsed and was taken over).
    async fn complete_idempotency_key(
        &self,
        c: &IdempotencyClaim,
        answer: &StoredAnswer,
    ) -> Result<bool, StoreError>;
    /// Gives a claimed key back (the request was refused): the key is
    /// forgotten, so the next request under it is a new one. `Ok(false)` if
    /// the claim is no longer this one.
    async fn release_idempotency_key(&self, c: &IdempotencyClaim) -> Result<bool, StoreError>;
    /// One page of records with parked conflicts, ordered by (connection,
    /// object, external id): an index range after the previous page's last.
    async fn list_conflicts_page(&self, q: &ConflictQuery) -> Result<Vec<Record>, StoreError>;
    /// One page of a connection's audit, oldest first (like [`Store::list_audit`]).
    async fn list_audit_page(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError>;
}
