//! The field-by-field three-way merge.

use std::collections::BTreeSet;
use std::fmt;

use crate::{ConnectionId, ObjectType};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fields::{FieldValues, apply_changes, field};
use super::policy::{Policy, PolicyConfig, PolicySource};
use super::version::Version;

/// One side of a sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Our store (the sync target).
    Local,
    /// The provider (the source).
    Remote,
}

/// What a decision chose for a conflicting field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Chosen {
    /// The local value; it is pushed to the provider.
    Local,
    /// The remote value; it is applied to our store.
    Remote,
    /// Neither: parked for a person, both sides keep their values.
    Parked,
}

impl Chosen {
    /// The winning side, unless parked.
    pub fn side(self) -> Option<Side> {
        match self {
            Chosen::Local => Some(Side::Local),
            Chosen::Remote => Some(Side::Remote),
            Chosen::Parked => None,
        }
    }
}

impl From<Side> for Chosen {
    fn from(side: Side) -> Self {
        match side {
            Side::Local => Chosen::Local,
            Side::Remote => Chosen::Remote,
        }
    }
}

/// Why a decision chose what it chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// `source_wins`: the provider's value wins.
    SourceWins,
    /// `target_wins`: our store's value wins.
    TargetWins,
    /// `latest`: our record changed after the provider's.
    LocalIsLater,
    /// `latest`: the provider's record changed after ours.
    RemoteIsLater,
    /// `latest`: both changed at the same instant; the remote wins the tie.
    TieRemoteWins,
    /// `latest`: a modification time is unknown, so the local change cannot
    /// be shown to be later; the remote wins.
    UnknownTimeRemoteWins,
    /// `manual`: parked until a person resolves it.
    ManualParked,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::SourceWins => "policy source_wins: the provider's value wins",
            Reason::TargetWins => "policy target_wins: our store's value wins",
            Reason::LocalIsLater => "policy latest: our record changed after the provider's",
            Reason::RemoteIsLater => "policy latest: the provider's record changed after ours",
            Reason::TieRemoteWins => {
                "policy latest: both changed at the same instant; the provider wins the tie"
            }
            Reason::UnknownTimeRemoteWins => {
                "policy latest: a modification time is unknown; the provider wins"
            }
            Reason::ManualParked => "policy manual: parked until someone resolves it",
        })
    }
}

/// The resolution of one conflicting field: changed on both sides since the
/// base, to different values. `None` values mean absent (or `null`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The field.
    pub field: String,
    /// The policy applied.
    pub policy: Policy,
    /// Which configuration level the policy came from.
    pub policy_source: PolicySource,
    /// The value both sides last agreed on.
    pub base: Option<Value>,
    /// Our store's value.
    pub local: Option<Value>,
    /// The provider's value.
    pub remote: Option<Value>,
    /// What won.
    pub chosen: Chosen,
    /// Why.
    pub reason: Reason,
}

/// The result of a merge. Every map is in field-name order, every list too.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeOutcome {
    /// The state both sides agree on after the merge: the new base. Never
    /// contains `null`. A parked field keeps its base value here, so the
    /// conflict stays visible until resolved.
    pub merged: FieldValues,
    /// Fields the provider must receive (`null` = clear the field).
    pub push_to_remote: FieldValues,
    /// Fields our store must change (`null` = clear the field).
    pub apply_locally: FieldValues,
    /// One per conflicting field, in field order.
    pub decisions: Vec<Decision>,
    /// Fields parked under `manual`, in field order.
    pub parked: Vec<String>,
}

impl MergeOutcome {
    /// Nothing to push, nothing to apply, nothing decided.
    pub fn is_noop(&self) -> bool {
        self.push_to_remote.is_empty() && self.apply_locally.is_empty() && self.decisions.is_empty()
    }

    /// Our record after applying [`Self::apply_locally`] to `local`.
    pub fn local_after_apply(&self, local: &FieldValues) -> FieldValues {
        apply_changes(local, &self.apply_locally)
    }

    /// The provider's record after it applied [`Self::push_to_remote`] to
    /// `remote`.
    pub fn remote_after_push(&self, remote: &FieldValues) -> FieldValues {
        apply_changes(remote, &self.push_to_remote)
    }

    /// The base to store before the provider has acknowledged the push:
    /// [`Self::merged`], except that every field still to be pushed keeps its
    /// value from `old_base`. Storing `merged` before the push lands would make
    /// a failed push look like the provider reverting our change.
    pub fn interim_base(&self, old_base: &FieldValues) -> FieldValues {
        let mut out = self.merged.clone();
        for name in self.push_to_remote.keys() {
            match field(old_base, name) {
                Some(v) => out.insert(name.clone(), v.clone()),
                None => out.remove(name),
            };
        }
        out
    }
}

/// Merges local and remote changes since `base`, field by field.
///
/// For every field present (non-`null`) in any of the three:
///
/// - same value on both sides (unchanged, or changed to the same value) →
///   that value, no decision;
/// - changed on one side only → that side's value (a clean merge);
/// - changed on both sides to different values → a [`Decision`] under the
///   field's policy from `policies`: `source_wins` → remote, `target_wins` →
///   local, `latest` → the side whose record changed later by
///   `versions.local_updated_at` / `versions.remote_updated_at` (the remote on
///   a tie or an unknown time), `manual` → parked (base kept in `merged`,
///   nothing pushed or applied for it).
///
/// A field "changes" to absent when it is deleted; absent and `null` are the
/// same value. Pure and deterministic: no clock, no I/O, ordered output.
pub fn three_way_merge(
    base: &FieldValues,
    local: &FieldValues,
    remote: &FieldValues,
    versions: &Version,
    policies: &PolicyConfig,
    object: &ObjectType,
    connection: &ConnectionId,
) -> MergeOutcome {
    let names: BTreeSet<&String> = base
        .keys()
        .chain(local.keys())
        .chain(remote.keys())
        .collect();
    let mut out = MergeOutcome::default();
    for name in names {
        let (b, l, r) = (field(base, name), field(local, name), field(remote, name));
        let (value, parked) = if l == r {
            (l, false)
        } else if l == b {
            (r, false)
        } else if r == b {
            (l, false)
        } else {
            let resolved = policies.resolve(connection, object, name);
            let (chosen, reason) = decide(resolved.policy, versions);
            out.decisions.push(Decision {
                field: name.clone(),
                policy: resolved.policy,
                policy_source: resolved.source,
                base: b.cloned(),
                local: l.cloned(),
                remote: r.cloned(),
                chosen,
                reason,
            });
            match chosen {
                Chosen::Local => (l, false),
                Chosen::Remote => (r, false),
                Chosen::Parked => (b, true),
            }
        };
        if let Some(v) = value {
            out.merged.insert(name.clone(), v.clone());
        }
        if parked {
            out.parked.push(name.clone());
            continue;
        }
        let change = || value.cloned().unwrap_or(Value::Null);
        if value != r {
            out.push_to_remote.insert(name.clone(), change());
        }
        if value != l {
            out.apply_locally.insert(name.clone(), change());
        }
    }
    out
}

/// Applies a policy to one conflicting field.
fn decide(policy: Policy, versions: &Version) -> (Chosen, Reason) {
    match policy {
        Policy::SourceWins => (Chosen::Remote, Reason::SourceWins),
        Policy::TargetWins => (Chosen::Local, Reason::TargetWins),
        Policy::Manual => (Chosen::Parked, Reason::ManualParked),
        Policy::Latest => match (versions.local_updated_at, versions.remote_updated_at) {
            (Some(l), Some(r)) if l > r => (Chosen::Local, Reason::LocalIsLater),
            (Some(l), Some(r)) if l < r => (Chosen::Remote, Reason::RemoteIsLater),
            (Some(_), Some(_)) => (Chosen::Remote, Reason::TieRemoteWins),
            _ => (Chosen::Remote, Reason::UnknownTimeRemoteWins),
        },
    }
}
