//! The pure core of bidirectional sync (issue 7): a field-by-field three-way
//! merge between our store (*local*, the sync target) and the provider
//! (*remote*, the source), conflict policies configurable per connection,
//! object and field, audit entries for every decision, echo suppression and
//! the remote ordering guard.
//!
//! Nothing here performs I/O or reads a clock: every function is a pure
//! function of its arguments, and every collection it returns is ordered
//! (`BTreeMap`, field-name order), so the same inputs always give the same
//! output, byte for byte once serialized.
//!
//! # Decisions taken here (and relied on by callers)
//!
//! - **`null` ≡ absent.** A top-level field whose value is JSON `null` is the
//!   same as a missing field: both mean "no value". The merge never reports a
//!   change or a conflict between the two, and [`fields_hash`] hashes them
//!   alike, so a provider that echoes a cleared field as `null` (or drops it)
//!   does not look like a change. Nested `null`s are ordinary values. Inputs
//!   must be *complete* snapshots of the mapped fields: a field missing from a
//!   partial payload would read as a deletion, so complete a partial payload
//!   from the base before merging.
//! - **Change sets use `null` to clear.** In [`MergeOutcome::push_to_remote`]
//!   and [`MergeOutcome::apply_locally`] a `null` value means "clear this
//!   field"; [`MergeOutcome::merged`] never contains `null` (cleared fields are
//!   absent). [`apply_changes`] applies a change set with exactly that meaning.
//! - **A decision is one conflicting field.** A [`Decision`] is made for, and
//!   only for, a field changed on both sides since the base to *different*
//!   values; clean merges (one side changed, or both changed to the same value)
//!   are not decisions. [`audit_entries`] yields exactly one [`AuditEntry`] per
//!   decision; its [`AuditEntry::key`] identifies the decision (record, field,
//!   policy, base/local/remote values, chosen side) so that re-evaluating the
//!   same conflict — a redelivered message, a crash-and-retry, a parked field
//!   merged again — yields the same key and an idempotent audit append stores
//!   it once.
//! - **`latest` compares modification times.** A provider version orders two
//!   *remote* snapshots (see [`should_apply_remote`]) but says nothing about
//!   when our store changed, so it cannot order a local change against a
//!   remote one. `latest` therefore compares [`Version::local_updated_at`]
//!   with [`Version::remote_updated_at`]; the later side wins; on a tie, or
//!   when either time is unknown, the remote wins (deterministic tie-break).
//!   Both times are record-level (providers report record-level modification
//!   times), and `local_updated_at` must be the time of the last change made
//!   by the product, not of a sync write.
//! - **A parked field keeps its base.** Under `manual`, the conflicting field
//!   is neither pushed nor applied; `merged` keeps the *base* value for it, so
//!   storing `merged` as the new base keeps the conflict visible (and parked)
//!   on every later merge until someone resolves it — for example by merging
//!   once more with a field-level override from [`PolicyConfig::with_field`]
//!   and [`Policy::favouring`].
//! - **Echo suppression is the base.** After a push is acknowledged the
//!   base equals what the provider holds, so our own write coming back (by
//!   webhook or poll) merges to nothing: [`MergeOutcome::is_noop`]. No hash of
//!   the last push is kept: an earlier design that suppressed snapshots whose
//!   hash matched the last push hid a concurrent remote change (found by the
//!   model test).
//!
//! # How the outbound worker is expected to use it
//!
//! Per record, one sync step at a time (the model test in
//! `tests/model.rs` drives exactly this sequence through crashes,
//! redeliveries and random interleavings):
//!
//! 1. Take a remote snapshot (webhook, poll, or a fresh read before pushing).
//!    Drop it if `!should_apply_remote(stored, incoming)`.
//! 2. `three_way_merge(base, local, remote, …)`.
//! 3. In one store transaction: apply `apply_locally` to the local record,
//!    store `interim_base` as the base (pushed fields keep their old base until
//!    the provider acknowledges them), store the incoming version, append the
//!    audit entries idempotently by key, and, if
//!    `push_to_remote` is not empty, write an outbox entry (changes, idempotency
//!    key, the snapshot's version for `If-Match` and `merged`).
//! 4. Push with the idempotency key. On success, in one transaction: base =
//!    `merged`, stored version = the provider's answer, outbox entry removed. If the provider refuses because the
//!    record moved, drop the outbox entry and start again from 1 with a fresh
//!    read. While an outbox entry is pending, inbound snapshots for the record
//!    wait.

mod audit;
mod fields;
mod policy;
mod three_way;
mod version;

pub use audit::{AuditEntry, audit_entries};
pub use fields::{
    FieldValues, apply_changes, field, fields_from_value, fields_hash, fields_to_value, normalize,
    same_fields,
};
pub use policy::{
    ConnectionPolicies, ObjectPolicies, Policy, PolicyConfig, PolicySource, ResolvedPolicy,
};
pub use three_way::{Chosen, Decision, MergeOutcome, Reason, Side, three_way_merge};
pub use version::{RemoteVersion, Version, remote_order, should_apply_remote};

/// Why an input could not be used.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// Record data must be a JSON object of canonical fields.
    #[error("record data must be a JSON object of fields, found {found}")]
    NotAnObject {
        /// The JSON type found instead.
        found: &'static str,
    },
    /// A policy configuration could not be read.
    #[error("invalid policy configuration: {0}")]
    PolicyConfig(#[from] serde_json::Error),
}
