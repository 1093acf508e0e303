//! The push decision, in one place: what one push of a record does, as a
//! pure function of the record, its local state, the provider's record and
//! the connection's conflict policies.
//!
//! Nothing here performs I/O, reads a clock or draws a random number: the
//! time and the random part of a new create request's key come in with the
//! [`PushInput`]. [`plan_push`] answers a [`PushPlan`] with the audit entries
//! of its decisions; the executor (`execute.rs`) carries it out and
//! `commit.rs` commits the result. What a failed provider call means
//! ([`on_failure`]) and whether a record has a push to make at all
//! ([`pending`]) are decided here too.

use std::time::Duration;

use serde_json::{Map, Value};

use super::PushOutcome;
use crate::clock::Timestamp;
use crate::connector::http::{FetchError, RemoteRecord};
use crate::merge::{
    self, Chosen, ConnectionPolicies, FieldValues, Policy, PolicyConfig, Version, three_way_merge,
};
use crate::model::{AuditRecord, CreateRequest, LocalState, ParkedConflict, Record, content_hash};

/// What a push knows of the provider's copy of the record.
#[derive(Debug, Clone, PartialEq)]
pub enum Remote {
    /// Not read yet.
    Unread,
    /// Read: the provider has no (live) such record.
    Gone,
    /// Read: the provider's record.
    Found(RemoteRecord),
}

/// Everything a push decides on.
#[derive(Debug, Clone)]
pub struct PushInput<'a> {
    /// The record as read, with a push pending.
    pub record: &'a Record,
    /// Its local state ([`pending`]).
    pub local: &'a LocalState,
    /// What is known of the provider's copy.
    pub remote: Remote,
    /// The connection's conflict policies (the record's resolutions are laid over them).
    pub policies: &'a ConnectionPolicies,
    /// When the decision is made: the time of its audit entries and parked conflicts.
    pub now: Timestamp,
    /// The random part of a new create request's idempotency key.
    pub create_nonce: u128,
}

/// What one push does.
#[derive(Debug, Clone, PartialEq)]
pub enum PushPlan {
    /// Read the provider's record, then plan again with it.
    ReadRemote,
    /// Send the local create (`request`; every attempt sends the same one
    /// under the same key).
    Create {
        /// The request.
        request: CreateRequest,
        /// Whether it must be stored before it is sent.
        stored: CreateStored,
    },
    /// Remove our copy without a provider write: a create never sent was
    /// deleted, or the provider deleted the record (`audit`: the dropped
    /// local change, if any).
    Remove {
        /// Decisions to append.
        audit: Vec<AuditRecord>,
    },
    /// Try again later.
    Retry {
        /// Why.
        error: String,
    },
    /// The provider changed the record after we deleted it and the policy
    /// keeps its update: our copy takes the provider's state, nothing is sent.
    KeepRemote {
        /// The decision.
        audit: Vec<AuditRecord>,
        /// The provider's record.
        remote: RemoteRecord,
    },
    /// Delete the record at the provider. `audit` (the delete winning over a
    /// provider's update, if there was one) is appended before the DELETE.
    Delete {
        /// Decisions to append first.
        audit: Vec<AuditRecord>,
    },
    /// Merge field by field, push what the provider must receive.
    Merge(MergePlan),
}

/// Whether a create's request is already stored with the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateStored {
    /// Stored by an earlier attempt: send it as it is.
    Already,
    /// New: store it before sending it, so that a crash after the provider
    /// created the record re-sends the same request, which its idempotency
    /// key answers.
    NotYet,
}

/// A merge's decisions.
#[derive(Debug, Clone, PartialEq)]
pub struct MergePlan {
    /// One entry per decision; appended before anything is pushed (a crash
    /// after the provider applied the push re-merges to no conflict, so
    /// appending them only with the final commit could lose them).
    pub audit: Vec<AuditRecord>,
    /// Fields the provider must receive (`null` clears).
    pub push: FieldValues,
    /// The new base.
    pub merged: FieldValues,
    /// Remote changes for our copy (`null` clears).
    pub apply: FieldValues,
    /// Conflicts parked for a person.
    pub conflicts: Vec<ParkedConflict>,
    /// The parked fields' names.
    pub parked: Vec<String>,
    /// Conflicts resolved by policy.
    pub resolved: u64,
    /// The provider's record as read.
    pub remote: RemoteRecord,
}

/// What a failed provider call means for the push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A transient failure: try again, no sooner than `at_least`.
    Retry {
        /// What failed.
        error: String,
        /// A wait the provider asked for.
        at_least: Option<Duration>,
    },
    /// A permanent failure: park the push with the provider's answer.
    Park {
        /// The provider's answer.
        error: String,
        /// What becomes of a stored create request.
        create: StoredCreate,
    },
}

/// What parking a push does with the record's stored create request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredCreate {
    /// Keep it (the next attempt re-sends it).
    Keep,
    /// Forget it: the provider refused it and created nothing, so the
    /// product's fix (or delete) is a new create (or nothing to undo).
    Forget,
}

/// The record's local state if it has a push to make; otherwise what the
/// push job reports.
pub fn pending(rec: &Record) -> Result<&LocalState, PushOutcome> {
    let Some(local) = rec.local.as_ref() else {
        return Err(PushOutcome::UpToDate);
    };
    if local.push_due_at.is_none() {
        return Err(PushOutcome::Skipped(format!(
            "record {} has no push pending (parked)",
            rec.external_id
        )));
    }
    Ok(local)
}

/// Decides one push.
pub fn plan_push(input: PushInput<'_>) -> PushPlan {
    // A local create: nothing to read, nothing to merge.
    if input.record.is_provisional() {
        return plan_create(&input);
    }
    let policies = policies(&input);
    let PushInput {
        record: rec,
        local,
        remote,
        now,
        ..
    } = input;
    let remote = match remote {
        Remote::Unread => return PushPlan::ReadRemote,
        Remote::Found(remote) => remote,
        // Deleted at the provider. A local delete is then done; a local
        // update loses to the deletion (we do not resurrect records), and
        // the decision is audited.
        Remote::Gone if local.deleted => return PushPlan::Remove { audit: Vec::new() },
        Remote::Gone => {
            let audit = vec![record_decision(
                rec,
                now,
                "deleted_remotely",
                &local.local_updated_at.as_millis().to_string(),
                "the provider deleted the record; the local change was dropped",
            )];
            return PushPlan::Remove { audit };
        }
    };
    if let (Some(stored), Some(read)) = (rec.remote_updated_at, remote.updated_at)
        && read < stored
    {
        // An older version than one we already hold: a lagging replica.
        return PushPlan::Retry {
            error: "the provider answered an older version".into(),
        };
    }
    let decide = Decide {
        rec,
        local,
        policies: &policies,
        now,
    };
    if local.deleted {
        decide.delete(remote)
    } else {
        PushPlan::Merge(decide.merge(remote))
    }
}

fn plan_create(input: &PushInput<'_>) -> PushPlan {
    let (rec, local) = (input.record, input.local);
    match &local.create {
        Some(request) => PushPlan::Create {
            request: request.clone(),
            stored: CreateStored::Already,
        },
        // Never sent (or refused): a delete has nothing to undo.
        None if local.deleted => PushPlan::Remove { audit: Vec::new() },
        None => PushPlan::Create {
            request: CreateRequest {
                key: format!("{}:{:032x}", idempotency_key(rec), input.create_nonce),
                fields: Value::Object(non_null(&rec.data)),
            },
            stored: CreateStored::NotYet,
        },
    }
}

/// A decision against the provider's record.
struct Decide<'a> {
    rec: &'a Record,
    local: &'a LocalState,
    policies: &'a PolicyConfig,
    now: Timestamp,
}

impl Decide<'_> {
    /// A local delete: the policy of the record-level `_record` field
    /// decides whether a provider's update since the base keeps the record.
    fn delete(&self, remote: RemoteRecord) -> PushPlan {
        let (rec, local) = (self.rec, self.local);
        let remote_changed = !merge::same_fields(&to_fields(&local.base), &to_fields(&remote.data));
        // This delete against this remote state.
        let basis = format!(
            "{}:{}",
            local.local_updated_at.as_millis(),
            content_hash(&remote.data)
        );
        let policy = self
            .policies
            .resolve(&rec.connection, &rec.object, "_record")
            .policy;
        let keep_remote = remote_changed
            && match policy {
                Policy::TargetWins => false,
                Policy::SourceWins | Policy::Manual => true,
                Policy::Latest => remote
                    .updated_at
                    .is_none_or(|r| r >= local.local_updated_at),
            };
        let decided = |winner: &str| {
            vec![record_decision(
                rec,
                self.now,
                "delete_vs_update",
                &basis,
                &format!("policy {}: {winner}", policy.as_str()),
            )]
        };
        if keep_remote {
            return PushPlan::KeepRemote {
                audit: decided("the provider's update wins over the local delete"),
                remote,
            };
        }
        // The decision is appended before the DELETE, like a merge's: after
        // a crash past the DELETE the provider answers 404, and that path
        // removes the record without deciding anything.
        PushPlan::Delete {
            audit: if remote_changed {
                decided("the local delete wins over the provider's update")
            } else {
                Vec::new()
            },
        }
    }

    /// A local update: the three-way merge.
    fn merge(&self, remote: RemoteRecord) -> MergePlan {
        let (rec, local, now) = (self.rec, self.local, self.now);
        let versions = Version {
            remote_version: None,
            remote_updated_at: remote.updated_at,
            local_version: rec.version,
            local_updated_at: Some(local.local_updated_at),
        };
        let out = three_way_merge(
            &to_fields(&local.base),
            &to_fields(&rec.data),
            &to_fields(&remote.data),
            &versions,
            self.policies,
            &rec.object,
            &rec.connection,
        );
        let audit = merge::audit_entries(
            &rec.connection,
            &rec.object,
            &rec.external_id,
            &versions,
            &out,
        )
        .into_iter()
        .map(|e| AuditRecord {
            key: e.key.clone(),
            connection: rec.connection.clone(),
            object: rec.object.clone(),
            external_id: rec.external_id.clone(),
            at: now,
            entry: serde_json::to_value(&e).expect("audit entries serialize"),
        })
        .collect();
        let (parked, resolved): (Vec<_>, Vec<_>) = out
            .decisions
            .iter()
            .partition(|d| d.chosen == Chosen::Parked);
        let conflicts = parked
            .into_iter()
            .map(|d| ParkedConflict {
                field: d.field.clone(),
                base: d.base.clone().unwrap_or(Value::Null),
                local: d.local.clone().unwrap_or(Value::Null),
                remote: d.remote.clone().unwrap_or(Value::Null),
                parked_at: now,
            })
            .collect();
        MergePlan {
            audit,
            resolved: resolved.len() as u64,
            conflicts,
            push: out.push_to_remote,
            merged: out.merged,
            apply: out.apply_locally,
            parked: out.parked,
            remote,
        }
    }
}

/// The connection's policies with the record's manual resolutions laid
/// over them (field level); `manual` where nothing is configured.
fn policies(input: &PushInput<'_>) -> PolicyConfig {
    let rec = input.record;
    let base = PolicyConfig {
        default: Policy::Manual,
        connections: [(rec.connection.clone(), input.policies.clone())].into(),
    };
    input
        .local
        .resolutions
        .iter()
        .fold(base, |p, (field, side)| {
            p.with_field(
                &rec.connection,
                &rec.object,
                field,
                Policy::favouring(*side),
            )
        })
}

/// What a failed provider call means for the push of `rec`.
pub fn on_failure(rec: &Record, e: FetchError) -> Failure {
    match e {
        // 412: the record moved under a conditional write; read again.
        FetchError::Rejected {
            status: 412,
            message,
        } => Failure::Retry {
            error: format!("provider answered 412: {message}"),
            at_least: None,
        },
        // A provisional record's only provider call is its create: refused,
        // it created nothing, so the request is forgotten.
        FetchError::Rejected { status, message } => Failure::Park {
            error: format!("provider answered {status}: {message}"),
            create: stored_create_on_refusal(rec),
        },
        // Nothing was sent: the definition cannot express the write.
        FetchError::NotWritable(message) => Failure::Park {
            error: message,
            create: stored_create_on_refusal(rec),
        },
        FetchError::Park(wait) => Failure::Retry {
            error: format!("rate limited for {wait:?}"),
            at_least: Some(wait),
        },
        other => Failure::Retry {
            error: other.to_string(),
            at_least: None,
        },
    }
}

/// What becomes of a stored create request when the provider refuses the
/// push: a provisional record's only call is its create, which created
/// nothing, so the request is forgotten (the product's fix is a new create).
fn stored_create_on_refusal(rec: &Record) -> StoredCreate {
    if rec.is_provisional() {
        StoredCreate::Forget
    } else {
        StoredCreate::Keep
    }
}

/// The idempotency key of a record's pending write: stable across
/// redeliveries and crashes of the same attempt.
pub fn idempotency_key(rec: &Record) -> String {
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

/// The idempotency key of an update sending `changes` to `rec`.
pub fn update_key(rec: &Record, changes: &FieldValues) -> String {
    format!("{}:{}", idempotency_key(rec), merge::fields_hash(changes))
}

/// The fields of a JSON object that have a value.
pub fn non_null(data: &Value) -> Map<String, Value> {
    data.as_object()
        .map(|m| {
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// The fields of a JSON object (none for anything else).
pub fn to_fields(v: &Value) -> FieldValues {
    merge::fields_from_value(v).unwrap_or_default()
}

/// A record-level decision for the audit log, keyed by what was decided
/// (`basis`: the states it was decided between), not by the record's
/// version, so a retry or a redelivery that decides it again appends nothing.
fn record_decision(
    rec: &Record,
    at: Timestamp,
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
        at,
        entry: serde_json::json!({ "decision": kind, "outcome": outcome, "local_version": rec.version }),
    }
}
