//! A record's push lock: one push (or manual resolution) of a record at a
//! time, across processes.

use std::time::Duration;

use crate::ids::{ConnectionId, ExternalId, ObjectType};
use crate::pipeline::worker::WorkerDeps;
use crate::store::StoreError;

/// How long one push job may hold its record's lock.
pub(super) const PUSH_LOCK: Duration = Duration::from_secs(300);

/// A record's push lock in the store, held by one push (or resolution).
pub(super) struct PushLock {
    name: String,
    owner: String,
}

impl PushLock {
    /// Takes the lock of the record for [`PUSH_LOCK`]; `None` while another holder has it.
    pub(super) async fn take(
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
    pub(super) async fn release(self, deps: &WorkerDeps) {
        if let Err(e) = deps.store.unlock(&self.name, &self.owner).await {
            tracing::warn!(lock = %self.name, error = %e, "push lock not released; it expires on its own");
        }
    }
}
