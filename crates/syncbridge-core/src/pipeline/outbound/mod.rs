//! Outbound sync: the product's own changes in, pushes to the provider out,
//! conflicts resolved field by field.
//!
//! # The record's two states
//!
//! A record in the store is our copy (`data`). While it differs from what
//! the provider has agreed to, it carries a [`LocalState`]: the last state
//! both sides agreed on (the *base*), when the next push is due (the outbox),
//! and any field parked for a person. Inbound pulls leave such a record alone
//! ([`Store::commit_page`] counts it `held`): the push reads the provider
//! fresh and merges instead, so a remote change that arrived meanwhile is
//! never overwritten blindly.
//!
//! # Flow
//!
//! 1. [`submit_change`] (a library call; `syncbridge changes submit` and the
//!    demo make it) writes the change and its outbox entry in one compare-and-swap
//!    write, then enqueues a [`PushJob`] with a deterministic `MessageId`.
//!    If the process dies between the two, [`requeue_due_pushes`] (run by
//!    the scheduler's tick) sends it again; duplicate detection drops repeats.
//! 2. [`handle_push_job`] (SyncOutboundWorker) reads the provider's record,
//!    merges `base`/`local`/`remote` with the connection's policies, sends
//!    the fields the provider must receive with an idempotency key, and
//!    commits the result with compare-and-swap: new base = the merged state,
//!    applied remote changes, audit entries (one per decision, idempotent by
//!    key), parked conflicts. A product change that raced the push is rebased
//!    on top, not lost.
//! 3. Echo suppression falls out of the base: after a push the base equals
//!    what the provider holds, so our own write coming back by webhook or
//!    poll hashes equal to our copy and changes nothing.
//!
//! A local create gets a provisional `local:<reference>` id. What its create
//! request sends is stored ([`LocalState::create`]) before the first attempt,
//! so every attempt is the same request under the same idempotency key; an
//! edit or delete made meanwhile is pushed after it, under the provider's id.
//!
//! Transient failures (5xx, timeouts, rate limits) re-enqueue the job with a
//! scheduled time and capped exponential backoff; permanent ones (4xx) park
//! the push with the provider's answer until the product changes the record
//! again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use super::worker::WorkerDeps;
use crate::clock::Timestamp;
use crate::connector::definition::ObjectDef;
use crate::connector::http::{FetchError, HttpConnector, RemoteRecord, backoff};
use crate::events::Event;
use crate::ids::{ConnectionId, ExternalId, ObjectType};
use crate::merge::{
    self, Chosen, FieldValues, Policy, PolicyConfig, Side, Version, three_way_merge,
};
use crate::model::{
    AuditRecord, Connection, ConnectionStatus, CreateRequest, LocalState, PROVISIONAL_PREFIX,
    ParkedConflict, PushJob, Record, content_hash,
};
use crate::queue::{OutboundMessage, QueueError, QueueName, QueueSender};
use crate::store::{RecordWrite, StoreError};

/// Compare-and-swap retries before a write gives up as contended.
const CAS_ATTEMPTS: usize = 16;

/// Transient push failures before the push is parked for a person (with
/// backoff capped at 15 minutes, about a day of trying).
const MAX_ATTEMPTS: u32 = 100;

/// How long one push job may hold its record's lock.
const PUSH_LOCK: Duration = Duration::from_secs(300);

/// What the product changes.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeOp {
    /// A new record; `reference` is the product's own id for it (the record
    /// is `local:<reference>` until the provider assigns an id).
    Create {
        /// The product's id.
        reference: String,
        /// Canonical fields.
        fields: Map<String, Value>,
    },
    /// Some fields of an existing record (`null` clears a field).
    Update {
        /// The record.
        id: ExternalId,
        /// Canonical fields to change.
        fields: Map<String, Value>,
    },
    /// Delete a record.
    Delete {
        /// The record.
        id: ExternalId,
    },
}

/// One change the product submits.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalChange {
    /// Connection.
    pub connection: ConnectionId,
    /// Object type.
    pub object: ObjectType,
    /// What changes.
    pub op: ChangeOp,
}

/// What [`submit_change`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// The record (provisional for a create).
    pub external_id: ExternalId,
    /// Its version after the change.
    pub version: i64,
    /// Whether a push was queued (false: the change changed nothing).
    pub queued: bool,
}

/// Why a change was refused. Nothing is written when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// No such connection.
    #[error("connection {0} not found")]
    UnknownConnection(ConnectionId),
    /// The connection's connector is not installed.
    #[error("connector {0} is not installed")]
    UnknownConnector(String),
    /// The connector does not sync this object.
    #[error("connector {provider} has no object {object}")]
    UnknownObject {
        /// Connector.
        provider: String,
        /// Object asked for.
        object: ObjectType,
    },
    /// The object has no write endpoints.
    #[error("{0} is read-only: its connector definition has no `push` table")]
    ReadOnly(ObjectType),
    /// A field the connector does not map.
    #[error("field `{field}` is not mapped for {object} (mapped: {known})")]
    UnknownField {
        /// Object.
        object: ObjectType,
        /// The field.
        field: String,
        /// The mapped fields.
        known: String,
    },
    /// No such record.
    #[error("record {0} not found")]
    NotFound(ExternalId),
    /// A create whose reference is already used.
    #[error("record {0} already exists")]
    Exists(ExternalId),
    /// A reference that cannot form an id.
    #[error("invalid reference: {0}")]
    BadReference(String),
    /// The record kept changing under us.
    #[error("record {0} is changing too fast; try again")]
    Contended(ExternalId),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The push could not be queued; the change is stored and the outbox
    /// sweep will queue it.
    #[error("change stored, but queueing its push failed (the outbox sweep retries): {0}")]
    Queue(#[from] QueueError),
}

/// Checks the connection, its connector and the object; answers the object's definition.
async fn object_def(
    deps: &WorkerDeps,
    connection: &ConnectionId,
    object: &ObjectType,
) -> Result<(Connection, Arc<crate::connector::ConnectorDef>), ChangeError> {
    let conn = deps
        .store
        .get_connection(connection)
        .await?
        .ok_or_else(|| ChangeError::UnknownConnection(connection.clone()))?;
    let def = deps
        .registry
        .get(&conn.provider)
        .ok_or_else(|| ChangeError::UnknownConnector(conn.provider.clone()))?;
    let obj = def
        .object(object.as_str())
        .ok_or_else(|| ChangeError::UnknownObject {
            provider: conn.provider.clone(),
            object: object.clone(),
        })?;
    if obj.push.is_none() {
        return Err(ChangeError::ReadOnly(object.clone()));
    }
    Ok((conn, def))
}

/// The canonical form of a record's data: every mapped field, `null` where
/// absent, exactly as inbound pulls write it (so equal states hash equally).
pub fn canonical(obj: &ObjectDef, fields: &FieldValues) -> Value {
    Value::Object(
        obj.fields
            .keys()
            .map(|k| (k.clone(), fields.get(k).cloned().unwrap_or(Value::Null)))
            .collect(),
    )
}

fn to_fields(v: &Value) -> FieldValues {
    merge::fields_from_value(v).unwrap_or_default()
}

/// Records a change of the product's and queues its push.
pub async fn submit_change(
    deps: &WorkerDeps,
    queue: &dyn QueueSender,
    change: &LocalChange,
) -> Result<Submitted, ChangeError> {
    let (_, def) = object_def(deps, &change.connection, &change.object).await?;
    let obj = def.object(change.object.as_str()).expect("checked");
    if let ChangeOp::Create { fields, .. } | ChangeOp::Update { fields, .. } = &change.op
        && let Some(field) = fields.keys().find(|f| !obj.fields.contains_key(*f))
    {
        return Err(ChangeError::UnknownField {
            object: change.object.clone(),
            field: field.clone(),
            known: obj.fields.keys().cloned().collect::<Vec<_>>().join(", "),
        });
    }
    let id = match &change.op {
        ChangeOp::Create { reference, .. } => {
            ExternalId::parse(format!("{PROVISIONAL_PREFIX}{reference}"))
                .map_err(|e| ChangeError::BadReference(e.to_string()))?
        }
        ChangeOp::Update { id, .. } | ChangeOp::Delete { id } => id.clone(),
    };
    for _ in 0..CAS_ATTEMPTS {
        let now = deps.clock.now();
        let current = deps
            .store
            .get_record(&change.connection, &change.object, &id)
            .await?;
        let mut w = RecordWrite {
            connection: change.connection.clone(),
            object: change.object.clone(),
            external_id: id.clone(),
            expect_version: current.as_ref().map(|r| r.version),
            next: None,
            audit: Vec::new(),
        };
        let next = match (&change.op, current) {
            (ChangeOp::Create { .. }, Some(_)) => return Err(ChangeError::Exists(id)),
            (ChangeOp::Create { fields, .. }, None) => {
                let data = canonical(obj, &to_fields(&Value::Object(fields.clone())));
                Some(Record {
                    connection: change.connection.clone(),
                    object: change.object.clone(),
                    external_id: id.clone(),
                    hash: content_hash(&data),
                    data,
                    // Not 1: a reference used again after its first record
                    // moved or went would repeat the first one's push
                    // `MessageId`s, which duplicate detection drops.
                    version: now.as_millis().max(1),
                    remote_updated_at: None,
                    local: Some(fresh_local(Value::Object(Map::new()), now)),
                })
            }
            (_, None) => return Err(ChangeError::NotFound(id)),
            (ChangeOp::Update { fields, .. }, Some(rec)) => {
                let changes = to_changes(fields);
                let mut merged = to_fields(&rec.data);
                merged = merge::apply_changes(&merged, &changes);
                let data = canonical(obj, &merged);
                if data == rec.data && !rec.local.as_ref().is_some_and(|l| l.deleted) {
                    return Ok(Submitted {
                        external_id: id,
                        version: rec.version,
                        queued: false,
                    });
                }
                let local = changed_local(&rec, false, now);
                Some(Record {
                    hash: content_hash(&data),
                    data,
                    version: rec.version + 1,
                    local: Some(local),
                    ..rec
                })
            }
            (ChangeOp::Delete { .. }, Some(rec)) => {
                let local = changed_local(&rec, true, now);
                Some(Record {
                    version: rec.version + 1,
                    local: Some(local),
                    ..rec
                })
            }
        };
        w.next = next.clone();
        match deps.store.write_record(&w).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
        let Some(rec) = next else {
            return Ok(Submitted {
                external_id: id,
                version: w.expect_version.unwrap_or(0) + 1,
                queued: false,
            });
        };
        queue_push(queue, &rec, rec.version, 0, None).await?;
        return Ok(Submitted {
            external_id: id,
            version: rec.version,
            queued: true,
        });
    }
    Err(ChangeError::Contended(id))
}

/// A write of the record `at` (its connection, object and id).
fn write_of(
    at: &Record,
    expect_version: Option<i64>,
    next: Option<Record>,
    audit: Vec<AuditRecord>,
) -> RecordWrite {
    RecordWrite {
        connection: at.connection.clone(),
        object: at.object.clone(),
        external_id: at.external_id.clone(),
        expect_version,
        next,
        audit,
    }
}

/// The local state of `rec` after the product changed (or deleted) it at
/// `now`: a push is due again and a parked push is retried.
fn changed_local(rec: &Record, deleted: bool, now: Timestamp) -> LocalState {
    let mut local = rec
        .local
        .clone()
        .unwrap_or_else(|| fresh_local(rec.data.clone(), now));
    local.deleted = deleted;
    local.local_updated_at = now;
    local.push_due_at = Some(now);
    local.attempts = 0;
    local.last_error = None;
    local
}

fn fresh_local(base: Value, now: Timestamp) -> LocalState {
    LocalState {
        base,
        deleted: false,
        local_updated_at: now,
        push_due_at: Some(now),
        attempts: 0,
        last_error: None,
        conflicts: Vec::new(),
        resolutions: BTreeMap::new(),
        create: None,
    }
}

/// A change set from the product's map (`null` kept: it clears).
fn to_changes(fields: &Map<String, Value>) -> FieldValues {
    fields.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Queues a push of `rec` (at `version`, after `attempt` failures), delivered
/// no earlier than `at`.
async fn queue_push(
    queue: &dyn QueueSender,
    rec: &Record,
    version: i64,
    attempt: u32,
    at: Option<Timestamp>,
) -> Result<(), QueueError> {
    let job = PushJob {
        connection: rec.connection.clone(),
        object: rec.object.clone(),
        external_id: rec.external_id.clone(),
        version,
        attempt,
    };
    queue.send(vec![push_message(&job, at)]).await
}

/// The queue message for a push job, delivered no earlier than `at`.
pub fn push_message(job: &PushJob, at: Option<Timestamp>) -> OutboundMessage {
    let mut m = OutboundMessage::json(QueueName::outbound(), job.message_id(), job);
    m.scheduled_enqueue_at = at;
    m
}

/// The outbox relay: queues a push for every record whose push is due (at
/// most `limit`). Run on every scheduler tick; a push already queued has the
/// same `MessageId` and is dropped by duplicate detection.
pub async fn requeue_due_pushes(
    store: &dyn crate::Store,
    queue: &dyn QueueSender,
    now: Timestamp,
    limit: usize,
) -> Result<usize, RequeueError> {
    let due = store.due_pushes(now, limit).await?;
    let messages: Vec<OutboundMessage> = due
        .iter()
        .map(|rec| {
            let job = PushJob {
                connection: rec.connection.clone(),
                object: rec.object.clone(),
                external_id: rec.external_id.clone(),
                version: rec.version,
                attempt: rec.local.as_ref().map_or(0, |l| l.attempts),
            };
            push_message(&job, None)
        })
        .collect();
    let n = messages.len();
    if n > 0 {
        queue.send(messages).await?;
    }
    Ok(n)
}

/// Why the outbox relay stopped.
#[derive(Debug, thiserror::Error)]
pub enum RequeueError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Queueing failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// What one push job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// Fields were sent (`created` / `deleted` for those writes).
    Pushed {
        /// Fields sent.
        fields: usize,
        /// The provider's id, when the write created the record.
        created: Option<ExternalId>,
    },
    /// The record was deleted at the provider.
    Deleted,
    /// Nothing to send: already in sync (a repeated or late job, or an echo).
    UpToDate,
    /// A transient failure; the job is queued again for `at`.
    Retry {
        /// When.
        at: Timestamp,
        /// What failed.
        error: String,
    },
    /// A permanent failure: the push is parked with the provider's answer
    /// until the product changes the record again.
    Failed {
        /// The provider's answer.
        error: String,
    },
    /// Nothing to do: no such record, or nothing pending.
    Skipped(String),
}

/// A push job's result, with what the merge decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushReport {
    /// What happened.
    pub outcome: PushOutcome,
    /// Conflicts resolved by policy (one per field).
    pub conflicts_resolved: u64,
    /// Conflicts parked for a person (one per field).
    pub conflicts_parked: u64,
    /// Remote changes applied to our copy (fields).
    pub applied_locally: u64,
}

impl PushReport {
    fn just(outcome: PushOutcome) -> Self {
        PushReport {
            outcome,
            conflicts_resolved: 0,
            conflicts_parked: 0,
            applied_locally: 0,
        }
    }
}

/// Failures the host should retry (answer non-2xx).
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Queueing a retry failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The record kept changing under us.
    #[error("record {0} is changing too fast")]
    Contended(ExternalId),
}

/// Pushes one record's pending changes (the `SyncOutboundWorker` job).
///
/// One push per record at a time, across processes: the job takes the
/// record's named lock in the store; a job that finds it taken queues itself
/// again for a few seconds later (a new scheduled message, not a redelivery).
/// A crashed holder's lock expires after [`PUSH_LOCK`].
pub async fn handle_push_job(
    deps: &WorkerDeps,
    queue: &dyn QueueSender,
    job: &PushJob,
) -> Result<PushReport, PushError> {
    let now = deps.clock.now();
    let Some(lock) = PushLock::take(
        deps,
        &job.connection,
        &job.object,
        &job.external_id,
        &job.message_id(),
    )
    .await?
    else {
        let mut m = push_message(job, Some(now.add(Duration::from_secs(3))));
        m.message_id = format!("{}:busy{}", m.message_id, now.as_millis());
        queue.send(vec![m]).await?;
        return Ok(PushReport::just(PushOutcome::Skipped(
            "another push of this record is running; this one comes back shortly".into(),
        )));
    };
    let result = push_record(deps, queue, job).await;
    lock.release(deps).await;
    result
}

/// A record's push lock in the store, held by one push (or resolution).
struct PushLock {
    name: String,
    owner: String,
}

impl PushLock {
    /// Takes the lock of the record for [`PUSH_LOCK`]; `None` while another holder has it.
    async fn take(
        deps: &WorkerDeps,
        connection: &ConnectionId,
        object: &ObjectType,
        id: &ExternalId,
        holder: &str,
    ) -> Result<Option<Self>, StoreError> {
        let name = format!("push:{connection}:{object}:{id}");
        let owner = format!("{holder}#{:016x}", rand::random::<u64>());
        let now = deps.clock.now();
        let taken = deps
            .store
            .try_lock(&name, &owner, now.add(PUSH_LOCK), now)
            .await?;
        Ok(taken.then_some(PushLock { name, owner }))
    }

    /// Gives it back (a lock that cannot be released expires on its own).
    async fn release(self, deps: &WorkerDeps) {
        if let Err(e) = deps.store.unlock(&self.name, &self.owner).await {
            tracing::warn!(lock = %self.name, error = %e, "push lock not released; it expires on its own");
        }
    }
}

async fn push_record(
    deps: &WorkerDeps,
    queue: &dyn QueueSender,
    job: &PushJob,
) -> Result<PushReport, PushError> {
    let Some(rec) = deps
        .store
        .get_record(&job.connection, &job.object, &job.external_id)
        .await?
    else {
        return Ok(PushReport::just(PushOutcome::Skipped(format!(
            "record {} no longer exists",
            job.external_id
        ))));
    };
    let Some(local) = rec.local.clone() else {
        return Ok(PushReport::just(PushOutcome::UpToDate));
    };
    if local.push_due_at.is_none() {
        return Ok(PushReport::just(PushOutcome::Skipped(format!(
            "record {} has no push pending (parked)",
            rec.external_id
        ))));
    }
    let Some(conn) = deps.store.get_connection(&job.connection).await? else {
        return Ok(PushReport::just(PushOutcome::Skipped(format!(
            "connection {} no longer exists",
            job.connection
        ))));
    };
    let Some(def) = deps.registry.get(&conn.provider) else {
        return fail(
            deps,
            &rec,
            format!("connector {} is not installed", conn.provider),
        )
        .await;
    };
    let Some(obj) = def.object(rec.object.as_str()).filter(|o| o.push.is_some()) else {
        return fail(
            deps,
            &rec,
            format!("{} is read-only for {}", rec.object, conn.provider),
        )
        .await;
    };
    if conn.status != ConnectionStatus::Active {
        return retry(
            deps,
            queue,
            &rec,
            format!("connection {} is {}", conn.id, conn.status.as_str()),
            None,
        )
        .await;
    }
    let connector = HttpConnector::new(
        deps.http.clone(),
        def.clone(),
        conn.clone(),
        deps.limiter.clone(),
        deps.credentials.clone(),
        deps.clock.clone(),
        deps.retry.clone(),
    );
    let key = idempotency_key(&rec);
    // A local create: nothing to read, nothing to merge.
    if rec.is_provisional() {
        let (rec, request) = match &local.create {
            Some(request) => (rec.clone(), request.clone()),
            // Never sent (or refused): a delete has nothing to undo.
            None if local.deleted => return commit_removal(deps, &rec, Vec::new()).await,
            None => {
                // The request is stored before it is sent, so a crash after
                // the provider created the record re-sends the same request,
                // which its idempotency key answers.
                let request = CreateRequest {
                    key: format!("{key}:{:032x}", rand::random::<u128>()),
                    fields: Value::Object(non_null(&rec.data)),
                };
                let mut next = rec.clone();
                next.version += 1;
                if let Some(l) = next.local.as_mut() {
                    l.create = Some(request.clone());
                }
                let w = write_of(&rec, Some(rec.version), Some(next.clone()), Vec::new());
                match deps.store.write_record(&w).await {
                    Ok(()) => (next, request),
                    Err(StoreError::Conflict(_)) => {
                        return Ok(PushReport::just(PushOutcome::Skipped(
                            "the record changed meanwhile; its own push follows".into(),
                        )));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        // Every attempt sends the same create under the same key; a delete
        // or an edit made since is pushed after it, under the provider's id.
        let sent = request.fields;
        let fields = non_null(&sent);
        let n = fields.len();
        return match connector
            .write_record(obj, None, Some(&fields), &request.key)
            .await
        {
            Ok(Some(created)) => {
                let id = created.id.clone();
                commit_pushed(
                    deps,
                    queue,
                    obj,
                    true,
                    &rec,
                    &to_fields(&sent),
                    &FieldValues::new(),
                    Some(created),
                    Vec::new(),
                    &[],
                )
                .await?;
                Ok(PushReport::just(PushOutcome::Pushed {
                    fields: n,
                    created: Some(id),
                }))
            }
            Ok(None) => {
                fail(
                    deps,
                    &rec,
                    "the provider's create answer has no record".into(),
                )
                .await
            }
            Err(e) => on_error(deps, queue, &rec, e).await,
        };
    }
    let remote = match connector.read_record(obj, &rec.external_id).await {
        Ok(r) => r,
        Err(e) => return on_error(deps, queue, &rec, e).await,
    };
    let policies = PolicyConfig {
        default: Policy::Manual,
        connections: [(conn.id.clone(), conn.conflicts.clone())].into(),
    };
    let policies = local.resolutions.iter().fold(policies, |p, (field, side)| {
        p.with_field(&conn.id, &rec.object, field, Policy::favouring(*side))
    });
    let Some(remote) = remote else {
        // Deleted at the provider. A local delete is then done; a local
        // update loses to the deletion (we do not resurrect records), and the
        // decision is audited.
        let mut audit = Vec::new();
        if !local.deleted {
            audit.push(record_decision(
                deps,
                &rec,
                "deleted_remotely",
                &local.local_updated_at.as_millis().to_string(),
                "the provider deleted the record; the local change was dropped",
            ));
        }
        return commit_removal(deps, &rec, audit).await;
    };
    if let (Some(stored), Some(read)) = (rec.remote_updated_at, remote.updated_at)
        && read < stored
    {
        // An older version than one we already hold: a lagging replica.
        return retry(
            deps,
            queue,
            &rec,
            "the provider answered an older version".into(),
            None,
        )
        .await;
    }
    let base = to_fields(&local.base);
    let mine = to_fields(&rec.data);
    let theirs = to_fields(&remote.data);
    if local.deleted {
        let remote_changed = !merge::same_fields(&base, &theirs);
        // This delete against this remote state.
        let basis = format!(
            "{}:{}",
            local.local_updated_at.as_millis(),
            content_hash(&remote.data)
        );
        let policy = policies.resolve(&conn.id, &rec.object, "_record").policy;
        let keep_remote = remote_changed
            && match policy {
                Policy::TargetWins => false,
                Policy::SourceWins | Policy::Manual => true,
                Policy::Latest => remote
                    .updated_at
                    .is_none_or(|r| r >= local.local_updated_at),
            };
        if keep_remote {
            // The provider changed the record after we deleted it: the
            // policy keeps it; our copy takes the provider's state.
            let audit = vec![record_decision(
                deps,
                &rec,
                "delete_vs_update",
                &basis,
                &format!(
                    "policy {}: the provider's update wins over the local delete",
                    policy.as_str()
                ),
            )];
            commit_pushed(
                deps,
                queue,
                obj,
                false,
                &rec,
                &theirs,
                &theirs,
                Some(remote),
                audit,
                &[],
            )
            .await?;
            return Ok(PushReport {
                conflicts_resolved: 1,
                ..PushReport::just(PushOutcome::UpToDate)
            });
        }
        // The decision is appended before the DELETE, like a merge's: after a
        // crash past the DELETE the provider answers 404, and that path
        // removes the record without deciding anything.
        let mut rec = rec;
        let resolved = u64::from(remote_changed);
        if remote_changed {
            let audit = vec![record_decision(
                deps,
                &rec,
                "delete_vs_update",
                &basis,
                &format!(
                    "policy {}: the local delete wins over the provider's update",
                    policy.as_str()
                ),
            )];
            let mut next = rec.clone();
            next.version += 1;
            match deps
                .store
                .write_record(&write_of(
                    &rec,
                    Some(rec.version),
                    Some(next.clone()),
                    audit,
                ))
                .await
            {
                Ok(()) => rec = next,
                Err(StoreError::Conflict(_)) => {
                    return Ok(PushReport::just(PushOutcome::Skipped(
                        "the record changed meanwhile; its own push follows".into(),
                    )));
                }
                Err(e) => return Err(e.into()),
            }
        }
        return match connector
            .write_record(obj, Some(&rec.external_id), None, &key)
            .await
        {
            Ok(_) | Err(FetchError::Rejected { status: 404, .. }) => {
                commit_removal(deps, &rec, Vec::new()).await?;
                Ok(PushReport {
                    conflicts_resolved: resolved,
                    ..PushReport::just(PushOutcome::Deleted)
                })
            }
            Err(e) => on_error(deps, queue, &rec, e).await,
        };
    }
    let versions = Version {
        remote_version: None,
        remote_updated_at: remote.updated_at,
        local_version: rec.version,
        local_updated_at: Some(local.local_updated_at),
    };
    let out = three_way_merge(
        &base,
        &mine,
        &theirs,
        &versions,
        &policies,
        &rec.object,
        &conn.id,
    );
    let audit: Vec<AuditRecord> =
        merge::audit_entries(&conn.id, &rec.object, &rec.external_id, &versions, &out)
            .into_iter()
            .map(|e| AuditRecord {
                key: e.key.clone(),
                connection: conn.id.clone(),
                object: rec.object.clone(),
                external_id: rec.external_id.clone(),
                at: deps.clock.now(),
                entry: serde_json::to_value(&e).expect("audit entries serialize"),
            })
            .collect();
    let resolved = out
        .decisions
        .iter()
        .filter(|d| d.chosen != Chosen::Parked)
        .count() as u64;
    let parked = out.parked.len() as u64;
    // The decisions are appended before anything is pushed: a crash after
    // the provider applied the push re-merges to no conflict, so appending
    // them only with the final commit could lose them.
    let mut rec = rec;
    if !audit.is_empty() {
        let mut next = rec.clone();
        next.version += 1;
        let w = write_of(&rec, Some(rec.version), Some(next.clone()), audit.clone());
        match deps.store.write_record(&w).await {
            Ok(()) => rec = next,
            Err(StoreError::Conflict(_)) => {
                // The product changed the record meanwhile: its own push follows.
                return Ok(PushReport::just(PushOutcome::Skipped(
                    "the record changed meanwhile; its own push follows".into(),
                )));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let key = idempotency_key(&rec);
    let mut answer = None;
    let sent = out.push_to_remote.len();
    if sent > 0 {
        let changes: Map<String, Value> = out.push_to_remote.clone().into_iter().collect();
        let key = format!("{key}:{}", merge::fields_hash(&out.push_to_remote));
        match connector
            .write_record(obj, Some(&rec.external_id), Some(&changes), &key)
            .await
        {
            Ok(a) => answer = a,
            Err(e) => return on_error(deps, queue, &rec, e).await,
        }
    }
    let after = answer.or(Some(remote));
    let conflicts: Vec<ParkedConflict> = out
        .decisions
        .iter()
        .filter(|d| d.chosen == Chosen::Parked)
        .map(|d| ParkedConflict {
            field: d.field.clone(),
            base: d.base.clone().unwrap_or(Value::Null),
            local: d.local.clone().unwrap_or(Value::Null),
            remote: d.remote.clone().unwrap_or(Value::Null),
            parked_at: deps.clock.now(),
        })
        .collect();
    commit_pushed(
        deps,
        queue,
        obj,
        false,
        &rec,
        &out.merged,
        &out.apply_locally,
        after,
        audit,
        &conflicts,
    )
    .await?;
    if !conflicts.is_empty() {
        deps.events
            .emit(Event::ConflictParked {
                tenant: conn.tenant.clone(),
                connection: conn.id.clone(),
                object: rec.object.to_string(),
                record: rec.external_id.to_string(),
                fields: out.parked.clone(),
            })
            .await;
    }
    let outcome = if sent > 0 {
        PushOutcome::Pushed {
            fields: sent,
            created: None,
        }
    } else {
        PushOutcome::UpToDate
    };
    Ok(PushReport {
        outcome,
        conflicts_resolved: resolved,
        conflicts_parked: parked,
        applied_locally: out.apply_locally.len() as u64,
    })
}

/// The idempotency key of a record's pending write: stable across
/// redeliveries and crashes of the same attempt.
fn idempotency_key(rec: &Record) -> String {
    if rec.is_provisional() {
        // The prefix of a create's key ([`CreateRequest::key`] adds a random
        // part and is stored with the request).
        return format!("sb:{}:{}:{}", rec.connection, rec.object, rec.external_id);
    }
    format!(
        "sb:{}:{}:{}:v{}",
        rec.connection, rec.object, rec.external_id, rec.version
    )
}

fn non_null(data: &Value) -> Map<String, Value> {
    data.as_object()
        .map(|m| {
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// A record-level decision for the audit log, keyed by what was decided
/// (`basis`: the states it was decided between), not by the record's
/// version, so a retry or a redelivery that decides it again appends nothing.
fn record_decision(
    deps: &WorkerDeps,
    rec: &Record,
    kind: &str,
    basis: &str,
    outcome: &str,
) -> AuditRecord {
    AuditRecord {
        key: format!(
            "{}:{}:{}:{kind}:{basis}",
            rec.connection, rec.object, rec.external_id
        ),
        connection: rec.connection.clone(),
        object: rec.object.clone(),
        external_id: rec.external_id.clone(),
        at: deps.clock.now(),
        entry: serde_json::json!({ "decision": kind, "outcome": outcome, "local_version": rec.version }),
    }
}

/// Commits a successful push (or merge without a push). `merged` is the new
/// base; `apply` the remote changes for our copy, rebased onto any product
/// change that raced the push; `after` the provider's record after the write.
#[allow(clippy::too_many_arguments)]
async fn commit_pushed(
    deps: &WorkerDeps,
    queue: &dyn QueueSender,
    obj: &ObjectDef,
    keep_deleted: bool,
    read: &Record,
    merged: &FieldValues,
    apply: &FieldValues,
    after: Option<RemoteRecord>,
    audit: Vec<AuditRecord>,
    parked: &[ParkedConflict],
) -> Result<(), PushError> {
    let read_fields = to_fields(&read.data);
    let new_id = after
        .as_ref()
        .map(|a| a.id.clone())
        .filter(|_| read.is_provisional())
        .unwrap_or_else(|| read.external_id.clone());
    let mut current = read.clone();
    for _ in 0..CAS_ATTEMPTS {
        let now_fields = to_fields(&current.data);
        // Rebase: a remote change applies unless the product changed that field since we read it.
        let mut data = now_fields.clone();
        for (k, v) in apply {
            if merge::field(&now_fields, k) == merge::field(&read_fields, k) {
                if v.is_null() {
                    data.remove(k);
                } else {
                    data.insert(k.clone(), v.clone());
                }
            }
        }
        let data = canonical(obj, &data);
        let base = canonical(obj, merged);
        let prev = current.local.clone();
        // A delete the product made meanwhile (or, for a create, before it)
        // stays pending.
        let deleted = prev.as_ref().is_some_and(|l| l.deleted)
            && (keep_deleted || current.version != read.version);
        let parked_fields: Vec<&str> = parked.iter().map(|c| c.field.as_str()).collect();
        let data_fields = to_fields(&data);
        let pending = deleted
            || obj.fields.keys().any(|f| {
                !parked_fields.contains(&f.as_str())
                    && merge::field(&data_fields, f) != merge::field(merged, f)
            });
        let local = if pending || !parked.is_empty() {
            let prev = prev.unwrap_or_else(|| fresh_local(base.clone(), deps.clock.now()));
            Some(LocalState {
                base,
                deleted,
                local_updated_at: prev.local_updated_at,
                push_due_at: pending.then(|| deps.clock.now()),
                attempts: 0,
                last_error: None,
                conflicts: parked.to_vec(),
                resolutions: BTreeMap::new(),
                create: None,
            })
        } else {
            None
        };
        let next = Record {
            connection: current.connection.clone(),
            object: current.object.clone(),
            external_id: new_id.clone(),
            hash: content_hash(&data),
            data,
            version: current.version + 1,
            remote_updated_at: after
                .as_ref()
                .and_then(|a| a.updated_at)
                .or(current.remote_updated_at),
            local,
        };
        let w = write_of(&current, Some(current.version), Some(next), audit.clone());
        match deps.store.write_record(&w).await {
            Ok(()) => {
                // More to push (a change that raced this one, or a create
                // that now has its provider id): queue it under the record's
                // current id.
                if let Some(rec) = w
                    .next
                    .filter(|r| r.local.as_ref().is_some_and(|l| l.push_due_at.is_some()))
                {
                    queue_push(queue, &rec, rec.version, 0, None).await?;
                }
                return Ok(());
            }
            Err(StoreError::Conflict(_)) => {
                let again = deps
                    .store
                    .get_record(&read.connection, &read.object, &read.external_id)
                    .await?;
                match again {
                    Some(r) if r.version == current.version && new_id != current.external_id => {
                        // A pull stored the created record under its provider
                        // id before we could move ours there.
                        return adopt_pulled_create(
                            deps, queue, obj, &current, &new_id, merged, w.next,
                        )
                        .await;
                    }
                    Some(r) => current = r,
                    None => return Ok(()),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(PushError::Contended(read.external_id.clone()))
}

/// The provider created our record and a pull already stored it under the
/// provider's id: keep that record, carry over any local edit made since the
/// create (pushed next), and drop the provisional one. The target is written
/// first, so a crash in between leaves the provisional record due, whose
/// re-sent create the idempotency key answers with the same id.
async fn adopt_pulled_create(
    deps: &WorkerDeps,
    queue: &dyn QueueSender,
    obj: &ObjectDef,
    provisional: &Record,
    id: &ExternalId,
    created: &FieldValues,
    wanted: Option<Record>,
) -> Result<(), PushError> {
    for _ in 0..CAS_ATTEMPTS {
        let Some(target) = deps
            .store
            .get_record(&provisional.connection, &provisional.object, id)
            .await?
        else {
            return Err(PushError::Contended(id.clone()));
        };
        let pending = wanted
            .as_ref()
            .and_then(|w| w.local.as_ref().map(|l| (w, l)))
            .filter(|(_, l)| l.push_due_at.is_some());
        let carried = match (pending, &target.local) {
            (None, _) => None,
            (Some((w, wl)), None) => {
                let data = canonical(obj, &to_fields(&w.data));
                // The base is what the create sent (both sides agreed on it
                // then): remote edits the pull brought since stay theirs. The
                // product's edit keeps its own time (for `latest`), and its
                // delete stays a delete.
                let mut local = fresh_local(canonical(obj, created), deps.clock.now());
                local.local_updated_at = wl.local_updated_at;
                local.deleted = wl.deleted;
                Some(Record {
                    hash: content_hash(&data),
                    data,
                    version: target.version + 1,
                    local: Some(local),
                    ..target.clone()
                })
            }
            // A local delete of the target stands.
            (Some(_), Some(tl)) if tl.deleted => None,
            (Some((w, wl)), Some(tl)) => Some(carry_edit(
                obj,
                &target,
                tl,
                &canonical(obj, created),
                w,
                wl,
                deps.clock.now(),
            )),
        };
        if let Some(next) = carried {
            let w = write_of(
                &target,
                Some(target.version),
                Some(next.clone()),
                Vec::new(),
            );
            match deps.store.write_record(&w).await {
                Ok(()) => {
                    queue_push(queue, &next, next.version, 0, None).await?;
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        let w = write_of(provisional, Some(provisional.version), None, Vec::new());
        return match deps.store.write_record(&w).await {
            Ok(()) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e.into()),
        };
    }
    Err(PushError::Contended(id.clone()))
}

/// The product edited both the provisional record (after its create was
/// sent) and the record a pull stored under the provider's id: the
/// provisional record's edit since the create is laid over the target's
/// change, a field both edits changed keeps the one of the record edited
/// last (times are kept per record, not per field), a delete of either is a
/// delete, and the target's base stays (its push merges against the
/// provider as usual).
fn carry_edit(
    obj: &ObjectDef,
    target: &Record,
    tl: &LocalState,
    sent: &Value,
    wanted: &Record,
    wl: &LocalState,
    now: Timestamp,
) -> Record {
    let sent = to_fields(sent);
    let edited = to_fields(&canonical(obj, &to_fields(&wanted.data)));
    let base = to_fields(&tl.base);
    let mut fields = to_fields(&target.data);
    for (k, v) in &edited {
        let target_changed = fields.get(k) != base.get(k);
        if sent.get(k) == Some(v) || (target_changed && tl.local_updated_at > wl.local_updated_at) {
            continue;
        }
        fields.insert(k.clone(), v.clone());
    }
    let data = canonical(obj, &fields);
    Record {
        hash: content_hash(&data),
        data,
        version: target.version + 1,
        local: Some(LocalState {
            deleted: tl.deleted || wl.deleted,
            local_updated_at: tl.local_updated_at.max(wl.local_updated_at),
            push_due_at: Some(now),
            attempts: 0,
            last_error: None,
            ..tl.clone()
        }),
        ..target.clone()
    }
}

/// Removes a record the provider no longer has (after a pushed delete, or
/// deleted remotely), unless the product changed it again meanwhile.
async fn commit_removal(
    deps: &WorkerDeps,
    rec: &Record,
    audit: Vec<AuditRecord>,
) -> Result<PushReport, PushError> {
    let w = RecordWrite {
        connection: rec.connection.clone(),
        object: rec.object.clone(),
        external_id: rec.external_id.clone(),
        expect_version: Some(rec.version),
        next: None,
        audit,
    };
    match deps.store.write_record(&w).await {
        Ok(()) | Err(StoreError::Conflict(_)) => Ok(PushReport::just(PushOutcome::Deleted)),
        Err(e) => Err(e.into()),
    }
}

async fn on_error(
    deps: &WorkerDeps,
    queue: &dyn QueueSender,
    rec: &Record,
    e: FetchError,
) -> Result<PushReport, PushError> {
    match e {
        // 412: the record moved under a conditional write; read again.
        FetchError::Rejected {
            status: 412,
            message,
        } => {
            retry(
                deps,
                queue,
                rec,
                format!("provider answered 412: {message}"),
                None,
            )
            .await
        }
        // A provisional record's only provider call is its create: refused,
        // it created nothing, so the request is forgotten and the product's
        // fix (or delete) is a new create (or nothing to undo).
        FetchError::Rejected { status, message } => {
            let error = if status == 0 {
                message
            } else {
                format!("provider answered {status}: {message}")
            };
            park(deps, rec, error, rec.is_provisional()).await
        }
        FetchError::Park(wait) => {
            retry(
                deps,
                queue,
                rec,
                format!("rate limited for {wait:?}"),
                Some(wait),
            )
            .await
        }
        other => retry(deps, queue, rec, other.to_string(), None).await,
    }
}

/// Parks the push with the provider's answer (no retry until the product
/// changes the record again).
async fn fail(deps: &WorkerDeps, rec: &Record, error: String) -> Result<PushReport, PushError> {
    park(deps, rec, error, false).await
}

/// [`fail`], forgetting a provisional record's stored create request when
/// `forget_create` (the provider refused it).
async fn park(
    deps: &WorkerDeps,
    rec: &Record,
    error: String,
    forget_create: bool,
) -> Result<PushReport, PushError> {
    update_local(deps, rec, |l| {
        if forget_create {
            l.create = None;
        }
        l.push_due_at = None;
        l.attempts += 1;
        l.last_error = Some(error.clone());
    })
    .await?;
    tracing::warn!(record = %rec.external_id, object = %rec.object, %error, "push parked");
    Ok(PushReport::just(PushOutcome::Failed { error }))
}

/// Schedules another attempt with capped exponential backoff (full jitter),
/// as a scheduled message: never a hot redelivery loop.
async fn retry(
    deps: &WorkerDeps,
    queue: &dyn QueueSender,
    rec: &Record,
    error: String,
    at_least: Option<Duration>,
) -> Result<PushReport, PushError> {
    let attempts = rec.local.as_ref().map_or(0, |l| l.attempts) + 1;
    if attempts > MAX_ATTEMPTS {
        return fail(
            deps,
            rec,
            format!("gave up after {MAX_ATTEMPTS} attempts; last: {error}"),
        )
        .await;
    }
    let policy = crate::connector::http::RetryPolicy {
        base_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(15 * 60),
        ..deps.retry.clone()
    };
    let wait = backoff(&policy, attempts, rand::random::<f64>().max(0.1))
        .max(at_least.unwrap_or_default());
    let at = deps.clock.now().add(wait);
    let Some(version) = update_local(deps, rec, |l| {
        l.push_due_at = Some(at);
        l.attempts = attempts;
        l.last_error = Some(error.clone());
    })
    .await?
    else {
        return Ok(PushReport::just(PushOutcome::Skipped(
            "the record changed meanwhile; its own push follows".into(),
        )));
    };
    queue_push(queue, rec, version, attempts, Some(at)).await?;
    Ok(PushReport::just(PushOutcome::Retry { at, error }))
}

/// Changes the record's local state if the record is still as read; answers
/// its new version, or `None` when it changed meanwhile (its own push follows).
async fn update_local(
    deps: &WorkerDeps,
    rec: &Record,
    f: impl FnOnce(&mut LocalState),
) -> Result<Option<i64>, PushError> {
    let mut next = rec.clone();
    next.version += 1;
    if let Some(l) = next.local.as_mut() {
        f(l);
    }
    let w = write_of(rec, Some(rec.version), Some(next.clone()), Vec::new());
    match deps.store.write_record(&w).await {
        Ok(()) => Ok(Some(next.version)),
        Err(StoreError::Conflict(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Why a manual resolution was refused.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// No such record.
    #[error("record {0} not found")]
    NotFound(ExternalId),
    /// The field has no parked conflict.
    #[error("record {record} has no parked conflict on `{field}`")]
    NoConflict {
        /// Record.
        record: ExternalId,
        /// Field.
        field: String,
    },
    /// A push of the record is running (its result could undo the
    /// resolution); try again in a few seconds.
    #[error("a push of record {0} is running; try again in a few seconds")]
    Busy(ExternalId),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Queueing failed (the outbox sweep retries).
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// A person resolves a parked conflict: `side` wins for `field`. The next
/// push merges with that field-level override, audits the decision and
/// pushes or applies the winner.
pub async fn resolve_conflict(
    deps: &WorkerDeps,
    queue: &dyn QueueSender,
    connection: &ConnectionId,
    object: &ObjectType,
    id: &ExternalId,
    field: &str,
    side: Side,
) -> Result<(), ResolveError> {
    // Under the record's push lock: a push in flight commits the conflicts
    // and resolutions it merged with, which would undo this one.
    let Some(lock) = PushLock::take(deps, connection, object, id, "resolve").await? else {
        return Err(ResolveError::Busy(id.clone()));
    };
    let result = resolve_locked(deps, queue, connection, object, id, field, side).await;
    lock.release(deps).await;
    result
}

async fn resolve_locked(
    deps: &WorkerDeps,
    queue: &dyn QueueSender,
    connection: &ConnectionId,
    object: &ObjectType,
    id: &ExternalId,
    field: &str,
    side: Side,
) -> Result<(), ResolveError> {
    for _ in 0..CAS_ATTEMPTS {
        let rec = deps
            .store
            .get_record(connection, object, id)
            .await?
            .ok_or_else(|| ResolveError::NotFound(id.clone()))?;
        let mut next = rec.clone();
        let Some(local) = next
            .local
            .as_mut()
            .filter(|l| l.conflicts.iter().any(|c| c.field == field))
        else {
            return Err(ResolveError::NoConflict {
                record: id.clone(),
                field: field.to_owned(),
            });
        };
        local.conflicts.retain(|c| c.field != field);
        local.resolutions.insert(field.to_owned(), side);
        local.push_due_at = Some(deps.clock.now());
        next.version += 1;
        let w = write_of(&rec, Some(rec.version), Some(next.clone()), Vec::new());
        match deps.store.write_record(&w).await {
            Ok(()) => {
                queue_push(queue, &next, next.version, 0, None).await?;
                return Ok(());
            }
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ResolveError::Store(StoreError::Conflict(id.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A push message's id names the record, version and attempt, so a
    /// retry is a new message and a re-sent push is a duplicate.
    #[test]
    fn push_message_ids() {
        let job = PushJob {
            connection: ConnectionId::parse("c1").unwrap(),
            object: ObjectType::parse("contacts").unwrap(),
            external_id: ExternalId::parse("42").unwrap(),
            version: 3,
            attempt: 0,
        };
        let m = push_message(&job, None);
        assert_eq!(m.message_id, "push:c1:contacts:42:v3:a0");
        assert_eq!(m.queue.as_str(), "sync-outbound");
        let again = push_message(
            &PushJob {
                attempt: 1,
                ..job.clone()
            },
            None,
        );
        assert_ne!(again.message_id, m.message_id);
    }
}
