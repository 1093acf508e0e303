//! Manual resolution of parked conflicts: a side or a value per field.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use super::cas::{retry_cas, write_next};
use super::lock::PushLock;
use super::relay::queue_push;
use crate::ids::{ConnectionId, ExternalId, ObjectType};
use crate::merge::Side;
use crate::model::content_hash;
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

/// What a person decides for one parked field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// This side's value wins (`Local`: ours, pushed; `Remote`: the provider's, applied).
    Take(Side),
    /// This value wins: it becomes our value and is pushed.
    Value(serde_json::Value),
}

impl Choice {
    /// One field's choice, as [`resolve_conflict`] takes it.
    pub fn one(field: &str, choice: Choice) -> BTreeMap<String, Choice> {
        BTreeMap::from([(field.to_owned(), choice)])
    }
}

/// The record whose conflicts are resolved.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// Connection.
    pub connection: &'a ConnectionId,
    /// Object type.
    pub object: &'a ObjectType,
    /// Record.
    pub id: &'a ExternalId,
}

/// A person resolves parked conflicts, one [`Choice`] per field, in one
/// write (`syncbridge changes resolve` and the API's resolve call this).
/// The next push merges with the field-level overrides, audits the
/// decisions and pushes or applies the winners. Every field must have a
/// parked conflict; otherwise nothing is written.
pub async fn resolve_conflict(
    deps: &WorkerDeps,
    queue: &dyn QueueSender,
    target: Target<'_>,
    choices: &BTreeMap<String, Choice>,
) -> Result<(), ResolveError> {
    let id = target.id;
    // Under the record's push lock: a push in flight commits the conflicts
    // and resolutions it merged with, which would undo this one.
    let Some(lock) = PushLock::take(deps, target.connection, target.object, id, "resolve").await?
    else {
        return Err(ResolveError::Busy(id.clone()));
    };
    let resolution = Resolution {
        deps,
        queue,
        target,
        choices,
    };
    let result = retry_cas((), |()| resolution.attempt()).await;
    lock.release(deps).await;
    result?.ok_or_else(|| ResolveError::Store(StoreError::Conflict(id.to_string())))
}

/// One resolution, under the record's push lock.
struct Resolution<'a> {
    deps: &'a WorkerDeps,
    queue: &'a dyn QueueSender,
    target: Target<'a>,
    choices: &'a BTreeMap<String, Choice>,
}

impl Resolution<'_> {
    /// Reads the record, writes the resolution; `Continue` when the record moved meanwhile.
    async fn attempt(&self) -> Result<ControlFlow<()>, ResolveError> {
        let (deps, id) = (self.deps, self.target.id);
        let rec = deps
            .store
            .get_record(self.target.connection, self.target.object, id)
            .await?
            .ok_or_else(|| ResolveError::NotFound(id.clone()))?;
        let parked = |field: &str| {
            rec.local
                .as_ref()
                .is_some_and(|l| l.conflicts.iter().any(|c| c.field == field))
        };
        if let Some(field) = self.choices.keys().find(|f| !parked(f)) {
            return Err(ResolveError::NoConflict {
                record: id.clone(),
                field: field.clone(),
            });
        }
        let now = deps.clock.now();
        let written = write_next(deps.store.as_ref(), &rec, Vec::new(), |next| {
            let mut data_changed = false;
            if let Some(local) = next.local.as_mut() {
                for (field, choice) in self.choices {
                    local.conflicts.retain(|c| &c.field != field);
                    let side = match choice {
                        Choice::Take(side) => *side,
                        Choice::Value(value) => {
                            if let Some(data) = next.data.as_object_mut() {
                                data.insert(field.clone(), value.clone());
                                data_changed = true;
                            }
                            Side::Local
                        }
                    };
                    local.resolutions.insert(field.clone(), side);
                }
                local.push_due_at = Some(now);
            }
            if data_changed {
                next.hash = content_hash(&next.data);
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
