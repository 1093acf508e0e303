//! Manual resolution of a parked conflict.

use std::ops::ControlFlow;

use super::cas::{retry_cas, write_next};
use super::lock::PushLock;
use super::relay::queue_push;
use crate::ids::{ConnectionId, ExternalId, ObjectType};
use crate::merge::Side;
use crate::pipeline::worker::WorkerDeps;
use crate::queue::{QueueError, QueueSender};
use crate::store::StoreError;

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
    let resolution = Resolution {
        deps,
        queue,
        connection,
        object,
        id,
        field,
        side,
    };
    let result = retry_cas((), |()| resolution.attempt()).await;
    lock.release(deps).await;
    result?.ok_or_else(|| ResolveError::Store(StoreError::Conflict(id.to_string())))
}

/// One resolution, under the record's push lock.
struct Resolution<'a> {
    deps: &'a WorkerDeps,
    queue: &'a dyn QueueSender,
    connection: &'a ConnectionId,
    object: &'a ObjectType,
    id: &'a ExternalId,
    field: &'a str,
    side: Side,
}

impl Resolution<'_> {
    /// Reads the record, writes the resolution; `Continue` when the record moved meanwhile.
    async fn attempt(&self) -> Result<ControlFlow<()>, ResolveError> {
        let (deps, id, field) = (self.deps, self.id, self.field);
        let rec = deps
            .store
            .get_record(self.connection, self.object, id)
            .await?
            .ok_or_else(|| ResolveError::NotFound(id.clone()))?;
        if !rec
            .local
            .as_ref()
            .is_some_and(|l| l.conflicts.iter().any(|c| c.field == field))
        {
            return Err(ResolveError::NoConflict {
                record: id.clone(),
                field: field.to_owned(),
            });
        }
        let now = deps.clock.now();
        let written = write_next(deps.store.as_ref(), &rec, Vec::new(), |next| {
            if let Some(local) = next.local.as_mut() {
                local.conflicts.retain(|c| c.field != field);
                local.resolutions.insert(field.to_owned(), self.side);
                local.push_due_at = Some(now);
            }
        })
        .await?;
        let Some(next) = written else {
            return Ok(ControlFlow::Continue(()));
        };
        queue_push(self.queue, &next, next.version, 0, None).await?;
        Ok(ControlFlow::Break(()))
    }
}
