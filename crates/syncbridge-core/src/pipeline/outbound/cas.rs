//! Compare-and-swap writes of one record: the retry loop every
//! read-decide-write of the outbound pipeline runs in, and the single write
//! that gives way to a product change made meanwhile.

use std::future::Future;
use std::ops::ControlFlow;

use crate::model::{AuditRecord, Record};
use crate::store::{RecordWrite, Store, StoreError};

/// Compare-and-swap retries before a write gives up as contended.
pub(super) const CAS_ATTEMPTS: usize = 16;

/// What a compare-and-swap write found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Swap {
    /// The record was as expected; the write is done.
    Written,
    /// The record changed (or appeared, or went) since it was read; nothing
    /// was written.
    Moved,
}

/// Runs `attempt` (read, decide, write with compare-and-swap) until it is
/// done, at most [`CAS_ATTEMPTS`] times. An attempt answers
/// `Continue(state)` when its write found the record moved (the next attempt
/// starts from `state`), `Break(done)` when it is done. `None`: the record
/// was still moving after the last attempt.
pub(super) async fn retry_cas<S, T, E, F, Fut>(mut state: S, mut attempt: F) -> Result<Option<T>, E>
where
    F: FnMut(S) -> Fut,
    Fut: Future<Output = Result<ControlFlow<T, S>, E>>,
{
    for _ in 0..CAS_ATTEMPTS {
        match attempt(state).await? {
            ControlFlow::Break(done) => return Ok(Some(done)),
            ControlFlow::Continue(next) => state = next,
        }
    }
    Ok(None)
}

/// One compare-and-swap write.
pub(super) async fn swap(store: &dyn Store, w: &RecordWrite) -> Result<Swap, StoreError> {
    match store.write_record(w).await {
        Ok(()) => Ok(Swap::Written),
        Err(StoreError::Conflict(_)) => Ok(Swap::Moved),
        Err(e) => Err(e),
    }
}

/// Writes `rec` as changed by `change`, at its next version, with `audit`,
/// if the record is still as read. Answers what was written, or `None` when
/// it changed meanwhile: the product changed it, and that change queued its
/// own push, which follows.
pub(super) async fn write_next(
    store: &dyn Store,
    rec: &Record,
    audit: Vec<AuditRecord>,
    change: impl FnOnce(&mut Record),
) -> Result<Option<Record>, StoreError> {
    let mut next = rec.clone();
    next.version += 1;
    change(&mut next);
    let w = write_of(rec, Some(rec.version), Some(next), audit);
    Ok(match swap(store, &w).await? {
        Swap::Written => w.next,
        Swap::Moved => None,
    })
}

/// A write of the record `at` (its connection, object and id).
pub(super) fn write_of(
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
