//! Audit entries: one per decision.

use crate::model::content_hash;
use crate::{ConnectionId, ExternalId, ObjectType};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::policy::{Policy, PolicySource};
use super::three_way::{Chosen, Decision, MergeOutcome, Reason};
use super::version::Version;

/// One resolution decision, as appended to the audit log: the record, the
/// field with its base/local/remote values, the versions seen, the policy
/// and the outcome. Carries no timestamp (the caller stamps the append time);
/// everything in it is a pure function of the merge's inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Identifies the decision: a hash of connection, object, record, field,
    /// policy, base/local/remote values and chosen side. Re-evaluating the
    /// same conflict (redelivery, retry after a crash, a parked field merged
    /// again) gives the same key, so an append that ignores a known key stores
    /// each decision once. Versions are deliberately left out of the key for
    /// that reason; they are recorded as first seen.
    pub key: String,
    /// The connection.
    pub connection: ConnectionId,
    /// The object type.
    pub object: ObjectType,
    /// The record's id in the provider.
    pub record: ExternalId,
    /// The conflicting field.
    pub field: String,
    /// The value both sides last agreed on (`None` = absent).
    pub base: Option<Value>,
    /// Our store's value.
    pub local: Option<Value>,
    /// The provider's value.
    pub remote: Option<Value>,
    /// The versions the merge saw.
    pub versions: Version,
    /// The policy applied.
    pub policy: Policy,
    /// Which configuration level the policy came from.
    pub policy_source: PolicySource,
    /// The outcome.
    pub chosen: Chosen,
    /// Why.
    pub reason: Reason,
}

impl AuditEntry {
    /// The entry for one decision of a merge of `record`.
    pub fn from_decision(
        connection: &ConnectionId,
        object: &ObjectType,
        record: &ExternalId,
        versions: &Version,
        decision: &Decision,
    ) -> Self {
        AuditEntry {
            key: decision_key(connection, object, record, decision),
            connection: connection.clone(),
            object: object.clone(),
            record: record.clone(),
            field: decision.field.clone(),
            base: decision.base.clone(),
            local: decision.local.clone(),
            remote: decision.remote.clone(),
            versions: versions.clone(),
            policy: decision.policy,
            policy_source: decision.policy_source,
            chosen: decision.chosen,
            reason: decision.reason,
        }
    }
}

/// One audit entry per decision of `outcome`, in field order.
pub fn audit_entries(
    connection: &ConnectionId,
    object: &ObjectType,
    record: &ExternalId,
    versions: &Version,
    outcome: &MergeOutcome,
) -> Vec<AuditEntry> {
    outcome
        .decisions
        .iter()
        .map(|d| AuditEntry::from_decision(connection, object, record, versions, d))
        .collect()
}

fn decision_key(
    connection: &ConnectionId,
    object: &ObjectType,
    record: &ExternalId,
    d: &Decision,
) -> String {
    content_hash(&json!({
        "connection": connection,
        "object": object,
        "record": record,
        "field": d.field,
        "policy": d.policy,
        "base": d.base,
        "local": d.local,
        "remote": d.remote,
        "chosen": d.chosen,
    }))
}
