//! The domain model: what is stored, queued and reported.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::Timestamp;
use crate::ids::{ConnectionId, ExternalId, ObjectType, RunId, TaskId, TenantId};

/// Health of a connection as far as calling its provider goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    /// Calls go out normally.
    Active,
    /// The provider rejected the refresh token: a person must re-authorize.
    /// Nothing calls the provider for this connection until then.
    NeedsReauth,
    /// Switched off by an operator.
    Disabled,
}

impl ConnectionStatus {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::Active => "active",
            ConnectionStatus::NeedsReauth => "needs_reauth",
            ConnectionStatus::Disabled => "disabled",
        }
    }

    /// Parses the stored text.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(ConnectionStatus::Active),
            "needs_reauth" => Some(ConnectionStatus::NeedsReauth),
            "disabled" => Some(ConnectionStatus::Disabled),
            _ => None,
        }
    }
}

/// How a connection's incoming webhooks are verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookSettings {
    /// Signature scheme name (`github`, `stripe`, `standard-webhooks`, …).
    pub scheme: String,
    /// Every currently active secret (more than one during a rotation),
    /// sealed by the credentials layer with the same envelope as the
    /// connection's OAuth tokens: the store never holds them in plain text.
    pub sealed_secrets: SealedSecrets,
}

/// An AEAD-sealed value as stored (AES-256-GCM under a versioned data key;
/// `syncbridge-credentials` seals and opens it). `Debug` shows only the key
/// version and the lengths.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedSecrets {
    /// Which data-encryption key sealed it (keys rotate without downtime).
    pub key_version: String,
    /// AEAD nonce, hex.
    #[serde(with = "hex_bytes")]
    pub nonce: Vec<u8>,
    /// AEAD ciphertext with its tag, hex.
    #[serde(with = "hex_bytes")]
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for SealedSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedSecrets")
            .field("key_version", &self.key_version)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

/// Bytes as a hex string in stored JSON.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        hex::decode(text).map_err(serde::de::Error::custom)
    }
}

/// One tenant's link to one account of an external system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    /// Unique id (also the webhook route segment).
    pub id: ConnectionId,
    /// The owning tenant.
    pub tenant: TenantId,
    /// Connector definition name (`sandbox`, `hubspot`, `github`, …).
    pub provider: String,
    /// Whether the provider may be called.
    pub status: ConnectionStatus,
    /// Overrides the connector's base URL (e.g. a local sandbox port).
    pub base_url: Option<String>,
    /// Webhook verification, when the provider sends webhooks.
    pub webhook: Option<WebhookSettings>,
    /// Connector settings (path parameters such as `owner`/`repo`).
    #[serde(default)]
    pub settings: std::collections::BTreeMap<String, String>,
    /// How conflicting changes are resolved, per object and field
    /// (default: `manual` everywhere, so nothing is lost silently).
    #[serde(
        default,
        skip_serializing_if = "crate::merge::ConnectionPolicies::is_empty"
    )]
    pub conflicts: crate::merge::ConnectionPolicies,
    /// When the connection was created.
    pub created_at: Timestamp,
}

/// Which way records flow for a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Provider → our store.
    Inbound,
    /// Our store → provider.
    Outbound,
}

impl Direction {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }

    /// Parses the stored text.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "inbound" => Some(Direction::Inbound),
            "outbound" => Some(Direction::Outbound),
            _ => None,
        }
    }
}

/// Scheduling class; lower sorts first (more urgent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// A person is waiting (e.g. "sync now" in the product).
    Interactive = 0,
    /// A provider webhook told us something changed.
    WebhookFollowUp = 1,
    /// The regular schedule.
    Scheduled = 2,
    /// Initial or repair backfills; yields to everything else.
    Backfill = 3,
}

impl Priority {
    /// All classes, most urgent first.
    pub const ALL: [Priority; 4] = [
        Priority::Interactive,
        Priority::WebhookFollowUp,
        Priority::Scheduled,
        Priority::Backfill,
    ];

    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Interactive => "interactive",
            Priority::WebhookFollowUp => "webhook_follow_up",
            Priority::Scheduled => "scheduled",
            Priority::Backfill => "backfill",
        }
    }

    /// Parses the stored text.
    pub fn parse(s: &str) -> Option<Self> {
        Priority::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// A worker's claim on a task, so two workers never run it at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Unique per lease; commits must present it.
    pub token: String,
    /// The lease is void after this instant (the watchdog re-queues the task).
    pub until: Timestamp,
}

/// One object type of one connection, synced in one direction on a schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncTask {
    /// Unique id, conventionally `<connection>:<object>:<direction>`.
    pub id: TaskId,
    /// Owning tenant (for fairness).
    pub tenant: TenantId,
    /// The connection to sync.
    pub connection: ConnectionId,
    /// The object type to sync.
    pub object: ObjectType,
    /// Which way.
    pub direction: Direction,
    /// Scheduling class of the next run.
    pub priority: Priority,
    /// Seconds between scheduled runs.
    pub interval_secs: u32,
    /// When the task is next due.
    pub next_run_at: Timestamp,
    /// Connector-defined resume point, committed with each page of records.
    pub cursor: Option<String>,
    /// The current lease, if a run is queued or in flight.
    pub lease: Option<Lease>,
    /// When the last run finished (successfully or not).
    pub last_run_at: Option<Timestamp>,
    /// Set by the watchdog when the task has not run within twice its interval.
    pub stalled: bool,
    /// Optimistic-concurrency version, bumped on every write.
    pub version: i64,
    /// Tells this task from an earlier one with the same id (a connection
    /// removed and added again restarts `version`): part of every lease token,
    /// so the new task's jobs never repeat the old one's `MessageId`, which
    /// the queue's duplicate detection would drop. Fixed for the task's life,
    /// so racing scheduler ticks still compute the same token. 0 (the token
    /// without it) for tasks stored before it existed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generation: u32,
}

/// What one of [`SyncTask`]'s store operations decided: the stores apply
/// the same rules (every backend reads the task, calls the method, and
/// writes the task back only for `Write`), so the rules live here once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskChange<R> {
    /// The task changed: write it, then answer `R`.
    Write(R),
    /// Nothing to write: answer `R` as it is.
    Keep(R),
}

impl SyncTask {
    /// A generation for a task being created (random, never 0).
    pub fn new_generation() -> u32 {
        rand::random::<u32>().max(1)
    }

    /// The lease token a scheduler tick takes now: `v<version>`, plus
    /// `-g<generation>` when the task has one. Deterministic, so two
    /// schedulers racing on one task compute the same token (and message id).
    pub fn lease_token(&self) -> String {
        match self.generation {
            0 => format!("v{}", self.version),
            g => format!("v{}-g{g:x}", self.version),
        }
    }

    /// Takes `lease` (the caller checked the version). A priority boost
    /// (interactive, webhook follow-up) is used up by the run this lease
    /// starts, so a boost asked for while it runs is seen at release.
    pub fn take_lease(&mut self, lease: Lease) {
        self.lease = Some(lease);
        self.priority = self.priority_once_leased();
        self.version += 1;
    }

    /// The priority [`SyncTask::take_lease`] leaves: a boost is used up.
    pub fn priority_once_leased(&self) -> Priority {
        self.priority.max(Priority::Scheduled)
    }

    /// Ends the lease (the caller checked the token) at `finished_at`: the
    /// next run is due at `next_run_at`, or at once, keeping its boost, when
    /// one was asked for while this run went on ([`crate::Store::request_run`]).
    pub fn end_lease(&mut self, next_run_at: Timestamp, finished_at: Timestamp) {
        self.lease = None;
        self.next_run_at = if self.priority < Priority::Scheduled {
            next_run_at.min(finished_at)
        } else {
            next_run_at
        };
        self.last_run_at = Some(finished_at);
        self.stalled = false;
        self.version += 1;
    }

    /// Takes `lease` if the task is still at `expected_version`
    /// ([`crate::Store::lease_task`]); `Keep(false)` when another writer got
    /// there first.
    pub fn lease_at(&mut self, expected_version: i64, lease: &Lease) -> TaskChange<bool> {
        if self.version != expected_version {
            return TaskChange::Keep(false);
        }
        self.take_lease(lease.clone());
        TaskChange::Write(true)
    }

    /// Ends the lease held under `token` ([`crate::Store::release_task`]);
    /// `Keep(false)` when the lease is no longer that one.
    pub fn release(
        &mut self,
        token: &str,
        next_run_at: Timestamp,
        finished_at: Timestamp,
    ) -> TaskChange<bool> {
        if self.lease.as_ref().map(|l| l.token.as_str()) != Some(token) {
            return TaskChange::Keep(false);
        }
        self.end_lease(next_run_at, finished_at);
        TaskChange::Write(true)
    }

    /// Asks for a run no later than `at` with at least `priority` urgency
    /// ([`crate::Store::request_run`]). Touches nothing else, so it is safe
    /// while a run holds the lease.
    pub fn ask_for_run(&mut self, priority: Priority, at: Timestamp) -> TaskChange<()> {
        self.next_run_at = self.next_run_at.min(at);
        self.priority = self.priority.min(priority);
        self.version += 1;
        TaskChange::Write(())
    }

    /// Sets the watchdog's stalled flag to `stalled`
    /// ([`crate::Store::set_task_stalled`]); nothing to write when it
    /// already has that value.
    pub fn flag_stalled(&mut self, stalled: bool) -> TaskChange<()> {
        if self.stalled == stalled {
            return TaskChange::Keep(());
        }
        self.stalled = stalled;
        self.version += 1;
        TaskChange::Write(())
    }

    /// When the watchdog flags this task unless a run finishes first: twice
    /// its interval after its last run (or after it first became due, if it
    /// never ran); `None` once flagged. Stores keep it in an indexed column
    /// (or property), so the watchdog reads only the tasks past it instead
    /// of every task at every tick.
    pub fn stall_at(&self) -> Option<Timestamp> {
        if self.stalled {
            return None;
        }
        let since = self.last_run_at.unwrap_or(self.next_run_at);
        Some(since.add(std::time::Duration::from_secs(
            2 * u64::from(self.interval_secs.max(1)),
        )))
    }

    /// The conventional id for a connection's object in a direction.
    pub fn id_for(connection: &ConnectionId, object: &ObjectType, direction: Direction) -> TaskId {
        TaskId::parse(format!("{connection}:{object}:{}", direction.as_str()))
            .expect("components are valid ids")
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Still going.
    Running,
    /// Finished; the cursor is at the end.
    Succeeded,
    /// Stopped by an error; committed pages stay committed.
    Failed,
    /// Checkpointed and re-enqueued for later (rate-limit quota, backoff).
    Parked,
    /// Its worker stopped before it finished: closed by the next run of the
    /// task (after a crash or a store failure), or by the run itself when it
    /// found its lease taken over. Pages it committed stay committed; its
    /// counts are what it recorded, often none.
    Interrupted,
}

impl RunStatus {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Parked => "parked",
            RunStatus::Interrupted => "interrupted",
        }
    }

    /// Parses the stored text.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "running" => Some(RunStatus::Running),
            "succeeded" => Some(RunStatus::Succeeded),
            "failed" => Some(RunStatus::Failed),
            "parked" => Some(RunStatus::Parked),
            "interrupted" => Some(RunStatus::Interrupted),
            _ => None,
        }
    }
}

/// What a run did, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunCounts {
    /// Pages fetched from the provider.
    pub pages: u64,
    /// Records seen in those pages.
    pub fetched: u64,
    /// Records new to the store.
    pub created: u64,
    /// Records whose content changed.
    pub updated: u64,
    /// Records skipped because their content hash was unchanged.
    pub unchanged: u64,
    /// Records deleted.
    pub deleted: u64,
    /// Provider requests made (including retries).
    pub requests: u64,
    /// Provider requests answered 429.
    pub throttled: u64,
}

impl RunCounts {
    /// Adds another count set to this one.
    pub fn add(&mut self, o: &RunCounts) {
        self.pages += o.pages;
        self.fetched += o.fetched;
        self.created += o.created;
        self.updated += o.updated;
        self.unchanged += o.unchanged;
        self.deleted += o.deleted;
        self.requests += o.requests;
        self.throttled += o.throttled;
    }
}

/// One execution of a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRun {
    /// Unique id.
    pub id: RunId,
    /// The task that ran.
    pub task: TaskId,
    /// Its connection.
    pub connection: ConnectionId,
    /// Start instant.
    pub started_at: Timestamp,
    /// End instant, once finished.
    pub finished_at: Option<Timestamp>,
    /// Outcome.
    pub status: RunStatus,
    /// What happened.
    pub counts: RunCounts,
    /// Why it failed or parked (never contains a secret).
    pub error: Option<String>,
}

/// A record in canonical form, as held in our store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Owning connection.
    pub connection: ConnectionId,
    /// Object type.
    pub object: ObjectType,
    /// Id in the provider.
    pub external_id: ExternalId,
    /// Canonical fields after mapping.
    pub data: serde_json::Value,
    /// [`content_hash`] of `data`.
    pub hash: String,
    /// Local version, incremented every time the content changes.
    pub version: i64,
    /// The provider's last-modified time for this record, if it reports one.
    pub remote_updated_at: Option<Timestamp>,
    /// Present while our copy differs from what the provider has agreed to:
    /// a local change not yet pushed, or a conflict parked for a person.
    /// Inbound pulls leave such a record alone (the outbound worker reads the
    /// provider fresh and merges); `None` means `data` is the agreed state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalState>,
}

impl Record {
    /// Whether the record was created locally and the provider has no id for it yet.
    pub fn is_provisional(&self) -> bool {
        self.external_id.as_str().starts_with(PROVISIONAL_PREFIX)
    }
}

/// Prefix of the id a locally created record carries until the provider
/// assigns its own (`local:` + the product's reference).
pub const PROVISIONAL_PREFIX: &str = "local:";

/// The outbound side of a record: what both sides last agreed on and what is
/// still to be pushed. Stored with the record, so a local change, its outbox
/// entry and any parked conflict commit together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalState {
    /// The last state both sides agreed on (the three-way merge's base);
    /// `{}` for a record created locally.
    pub base: serde_json::Value,
    /// Deleted locally; the delete is not pushed yet.
    #[serde(default)]
    pub deleted: bool,
    /// When the product last changed the record (for the `latest` policy).
    pub local_updated_at: Timestamp,
    /// The outbox: when the next push attempt is due. `None` when nothing is
    /// to be pushed (only a parked conflict) or the push is parked on a
    /// permanent failure.
    #[serde(default)]
    pub push_due_at: Option<Timestamp>,
    /// Failed push attempts since the last success.
    #[serde(default)]
    pub attempts: u32,
    /// The provider's answer to the last failed push (permanent failures park here).
    #[serde(default)]
    pub last_error: Option<String>,
    /// Fields parked under the `manual` policy, waiting for a person.
    #[serde(default)]
    pub conflicts: Vec<ParkedConflict>,
    /// A person's resolutions of parked fields (field → winning side),
    /// applied by the next push as field-level policy overrides.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub resolutions: std::collections::BTreeMap<String, crate::merge::Side>,
    /// For a record created locally: its create request, stored before the
    /// first attempt. Every attempt repeats it exactly (a provider answers a
    /// repeat of a create that landed instead of refusing a changed one), and
    /// an edit or delete made meanwhile is pushed once the record has its
    /// provider id. `None`: no create has been sent, or the provider refused
    /// the last one (the next attempt is a new request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<CreateRequest>,
}

/// A create request as first sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateRequest {
    /// The idempotency key it goes under: new for every create (a reused
    /// reference is a new create), the same for every retry of it.
    pub key: String,
    /// The fields it sends.
    pub fields: serde_json::Value,
}

/// One field changed on both sides, parked for manual resolution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParkedConflict {
    /// The field.
    pub field: String,
    /// The value both sides last agreed on (`null` = absent).
    pub base: serde_json::Value,
    /// Our value.
    pub local: serde_json::Value,
    /// The provider's value.
    pub remote: serde_json::Value,
    /// When it was parked.
    pub parked_at: Timestamp,
}

/// One conflict-resolution decision, appended to the audit log. `key`
/// identifies the decision, so re-evaluating the same conflict (a redelivered
/// message, a retried push) appends nothing new.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Identity of the decision.
    pub key: String,
    /// Connection.
    pub connection: ConnectionId,
    /// Object type.
    pub object: ObjectType,
    /// Record.
    pub external_id: ExternalId,
    /// When it was decided.
    pub at: Timestamp,
    /// The decision: fields, base/local/remote values, versions, policy, outcome.
    pub entry: serde_json::Value,
}

/// Stable hash of a record's canonical content: SHA-256 over the compact JSON
/// text, whose object keys serde_json keeps sorted. Two records with equal
/// fields hash equally whatever order the provider sent the fields in.
pub fn content_hash(data: &serde_json::Value) -> String {
    let text = serde_json::to_vec(data).expect("a Value always serializes");
    let digest = Sha256::digest(&text);
    hex::encode(&digest[..16])
}

/// A verified webhook delivery, stored before it is acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEvent {
    /// Receiving connection.
    pub connection: ConnectionId,
    /// Provider event/delivery id (or a body hash when the provider sends none);
    /// the dedup key within the connection.
    pub dedup_key: String,
    /// When it arrived.
    pub received_at: Timestamp,
    /// The raw body as signed by the provider.
    pub body: Vec<u8>,
}

/// Why a job was enqueued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobReason {
    /// The task was due on its schedule.
    Scheduled,
    /// A webhook event asked for a follow-up.
    Webhook {
        /// The event's dedup key.
        event: String,
    },
    /// Someone asked for it (CLI, API).
    Manual,
}

/// The body of a message on `sync-inbound` / `sync-outbound`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncJob {
    /// Task to run.
    pub task: TaskId,
    /// Its connection (for routing and logs).
    pub connection: ConnectionId,
    /// Its object type.
    pub object: ObjectType,
    /// Scheduling class.
    pub priority: Priority,
    /// Why.
    pub reason: JobReason,
    /// The lease the scheduler took; the worker commits under it.
    pub lease_token: String,
}

impl SyncJob {
    /// Deterministic Service Bus `MessageId`: the same lease never yields two
    /// messages, so a retried scheduler tick is dropped by duplicate detection.
    pub fn message_id(&self) -> String {
        format!("{}:{}", self.task, self.lease_token)
    }
}

/// A [`SyncJob`] as it travels on `sync-inbound`: the job's fields, plus an
/// optional `correlation_id` in the same flat JSON object that ties the job to
/// what caused it (the webhook delivery id, or an id the scheduler minted) in
/// every log line from sender to worker. A body without it is a plain
/// `SyncJob` and decodes as one, and a `SyncJob` decoder ignores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobMessage {
    /// The job.
    #[serde(flatten)]
    pub job: SyncJob,
    /// Correlation id; absent from older senders' messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// Retries of this job after store failures so far (0 = none; absent when 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retry: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl JobMessage {
    /// Application property carrying the correlation id, for people reading
    /// a queue or its dead-letter queue.
    pub const CORRELATION_PROPERTY: &'static str = "correlation_id";

    /// A `sync-inbound` message for `job` with `message_id`, carrying
    /// `correlation_id` in its body and as the application property.
    pub fn inbound_message(
        job: SyncJob,
        message_id: impl Into<String>,
        correlation_id: &str,
    ) -> crate::queue::OutboundMessage {
        let body = JobMessage {
            job,
            correlation_id: Some(correlation_id.to_string()),
            retry: 0,
        };
        let mut msg = crate::queue::OutboundMessage::json(
            crate::queue::QueueName::inbound(),
            message_id,
            &body,
        );
        msg.properties.insert(
            Self::CORRELATION_PROPERTY.into(),
            correlation_id.to_string(),
        );
        msg
    }
}

/// The body of a message on `sync-outbound`: push one record's local
/// changes. The worker reconciles the record's current state, whatever
/// version the message names, so a late or repeated message pushes nothing twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushJob {
    /// Connection.
    pub connection: ConnectionId,
    /// Object type.
    pub object: ObjectType,
    /// The record (a provisional `local:` id for a create).
    pub external_id: ExternalId,
    /// The record's version when the push was requested.
    pub version: i64,
    /// Failed attempts before this one.
    #[serde(default)]
    pub attempt: u32,
}

impl PushJob {
    /// Deterministic `MessageId`: one message per record version and attempt,
    /// so the outbox sweep re-sending a pending push is dropped as a duplicate.
    pub fn message_id(&self) -> String {
        format!(
            "push:{}:{}:{}:v{}:a{}",
            self.connection, self.object, self.external_id, self.version, self.attempt
        )
    }
}

/// A message that could never be processed, kept for inspection and replay
/// instead of being retried hot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantinedMessage {
    /// Where it came from (function or queue name).
    pub source: String,
    /// Its message id (or webhook dedup key), when known.
    pub message_id: Option<String>,
    /// The connection it belongs to, when known (webhook events).
    #[serde(default)]
    pub connection: Option<ConnectionId>,
    /// Why it was set aside.
    pub reason: String,
    /// The raw payload.
    pub body: Vec<u8>,
    /// When.
    pub at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Key order in the provider's JSON does not change the hash; a value does.
    #[test]
    fn hash_ignores_key_order() {
        let a: serde_json::Value = serde_json::from_str(r#"{"a":1,"b":"x"}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{"b":"x","a":1}"#).unwrap();
        let c: serde_json::Value = serde_json::from_str(r#"{"b":"y","a":1}"#).unwrap();
        assert_eq!(content_hash(&a), content_hash(&b));
        assert_ne!(content_hash(&a), content_hash(&c));
    }

    /// Priorities sort most urgent first and round-trip through their text.
    #[test]
    fn priority_order_and_text() {
        let mut v = vec![
            Priority::Backfill,
            Priority::Interactive,
            Priority::Scheduled,
        ];
        v.sort();
        assert_eq!(
            v,
            [
                Priority::Interactive,
                Priority::Scheduled,
                Priority::Backfill
            ]
        );
        for p in Priority::ALL {
            assert_eq!(Priority::parse(p.as_str()), Some(p));
        }
    }

    proptest! {
        /// Distinct string values give distinct hashes (no accidental collisions in practice).
        #[test]
        fn hash_distinguishes_values(a in ".{0,40}", b in ".{0,40}") {
            prop_assume!(a != b);
            let ha = content_hash(&serde_json::json!({"f": a}));
            let hb = content_hash(&serde_json::json!({"f": b}));
            prop_assert_ne!(ha, hb);
        }
    }
}
