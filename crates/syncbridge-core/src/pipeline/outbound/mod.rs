//! Outbound sync: the product's own changes in, pushes to the provider out,
//! conflicts resolved field by field.
//!
//! # The record's two states
//!
//! A record in the store is our copy (`data`). While it differs from what
//! the provider has agreed to, it carries a
//! [`LocalState`](crate::model::LocalState): the last state both sides agreed
//! on (the *base*), when the next push is due (the outbox), and any field
//! parked for a person. Inbound pulls leave such a record alone
//! ([`Store::commit_page`](crate::Store::commit_page) counts it `held`): the
//! push reads the provider fresh and merges instead, so a remote change that
//! arrived meanwhile is never overwritten blindly.
//!
//! # Flow
//!
//! 1. [`submit_change`] (a library call; `syncbridge changes submit` and the
//!    demo make it) writes the change and its outbox entry in one compare-and-swap
//!    write, then enqueues a [`PushJob`](crate::model::PushJob) with a
//!    deterministic `MessageId`.
//!    If the process dies between the two, [`requeue_due_pushes`] (run by
//!    the scheduler's tick) sends it again; duplicate detection drops repeats.
//! 2. [`handle_push_job`] (SyncOutboundWorker) reads the provider's record,
//!    decides the push ([`plan::plan_push`]: create, delete or merge),
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
//! request sends is stored
//! ([`LocalState::create`](crate::model::LocalState::create)) before the
//! first attempt, so every attempt is the same request under the same
//! idempotency key; an edit or delete made meanwhile is pushed after it,
//! under the provider's id.
//!
//! Transient failures (5xx, timeouts, rate limits) re-enqueue the job with a
//! scheduled time and capped exponential backoff; permanent ones (4xx) park
//! the push with the provider's answer until the product changes the record
//! again ([`PushOutcome::Parked`]).
//!
//! # Where it lives
//!
//! - `plan.rs`: **the push decision** — a pure function from the record,
//!   its local state, the provider's record and the policies to a
//!   [`plan::PushPlan`] (create, delete, merge, …) with its audit entries;
//!   also what a failed provider call means. Start here.
//! - `execute.rs`: [`handle_push_job`], the thin executor: takes the
//!   record's lock, reads, plans, calls the provider, parks or retries.
//! - `commit.rs`: commits a push's result (rebased onto a product change
//!   that raced it), or removes the record.
//! - `cas.rs`: the one compare-and-swap retry loop and the single write that
//!   gives way to a product change (whose own push follows).
//! - `submit.rs` ([`submit_change`]), `resolve.rs` ([`resolve_conflict`]),
//!   `relay.rs` (push messages, [`requeue_due_pushes`]), `lock.rs` (the
//!   record's push lock).

use crate::clock::Timestamp;
use crate::ids::ExternalId;
use crate::queue::QueueError;
use crate::store::StoreError;

mod cas;
mod commit;
mod execute;
mod lock;
pub mod plan;
mod relay;
mod resolve;
mod submit;

pub use execute::handle_push_job;
pub use relay::{RequeueError, push_message, requeue_due_pushes};
pub use resolve::{Choice, ResolveError, Target, resolve_conflict};
pub use submit::{ChangeError, ChangeOp, LocalChange, Submitted, canonical, submit_change};

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
    Parked {
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
    /// A report of `outcome` alone (no merge decisions).
    pub(crate) fn just(outcome: PushOutcome) -> Self {
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
