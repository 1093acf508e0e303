//! Committing a push's result: the new base, the remote changes rebased onto
//! any product change that raced the push, the provider's id for a create
//! (adopting the record a pull stored under it first), or the record's
//! removal.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use super::cas::{Swap, retry_cas, swap, write_of};
use super::plan::to_fields;
use super::relay::queue_push;
use super::submit::{canonical, fresh_local};
use super::{PushError, PushOutcome, PushReport};
use crate::clock::Timestamp;
use crate::connector::definition::ObjectDef;
use crate::connector::http::RemoteRecord;
use crate::ids::ExternalId;
use crate::merge::{self, FieldValues};
use crate::model::{AuditRecord, LocalState, ParkedConflict, Record, content_hash};
use crate::pipeline::worker::WorkerDeps;
use crate::queue::QueueSender;

/// What becomes of a delete the record carried when the push read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EarlierDelete {
    /// It stays pending: a create does not push it (the delete is pushed
    /// after the create, under the provider's id).
    StaysPending,
    /// This push settled it; only a delete the product made since the read
    /// stays pending.
    Settled,
}

/// A successful push (or a merge without a push), to commit.
pub(super) struct Pushed<'a> {
    /// The object's definition.
    pub obj: &'a ObjectDef,
    /// What becomes of a delete the record carried when read.
    pub earlier_delete: EarlierDelete,
    /// The record as the push read it.
    pub read: &'a Record,
    /// The new base.
    pub merged: &'a FieldValues,
    /// The remote changes for our copy, rebased onto any product change
    /// that raced the push.
    pub apply: &'a FieldValues,
    /// The provider's record after the write.
    pub after: Option<RemoteRecord>,
    /// The push's decisions (appended idempotently by key).
    pub audit: Vec<AuditRecord>,
    /// Conflicts parked for a person.
    pub parked: &'a [ParkedConflict],
}

/// Commits a successful push.
pub(super) async fn commit_pushed(
    deps: &WorkerDeps,
    queue: &dyn QueueSender,
    pushed: Pushed<'_>,
) -> Result<(), PushError> {
    let read = pushed.read;
    let new_id = pushed
        .after
        .as_ref()
        .map(|a| a.id.clone())
        .filter(|_| read.is_provisional())
        .unwrap_or_else(|| read.external_id.clone());
    let commit = Commit {
        deps,
        queue,
        pushed: &pushed,
        new_id: &new_id,
    };
    retry_cas(read.clone(), |current| commit.attempt(current))
        .await?
        .ok_or_else(|| PushError::Contended(read.external_id.clone()))
}

/// One commit of a push, tried against the record as it now is.
struct Commit<'a> {
    deps: &'a WorkerDeps,
    queue: &'a dyn QueueSender,
    pushed: &'a Pushed<'a>,
    /// The record's id after the commit (the provider's, for a create).
    new_id: &'a ExternalId,
}

impl Commit<'_> {
    /// Writes the commit over `current`; `Continue` with the record as it is
    /// now when it moved meanwhile.
    async fn attempt(&self, current: Record) -> Result<ControlFlow<(), Record>, PushError> {
        let (deps, read) = (self.deps, self.pushed.read);
        let next = self.next(&current, deps.clock.now());
        let w = write_of(
            &current,
            Some(current.version),
            Some(next),
            self.pushed.audit.clone(),
        );
        if swap(deps.store.as_ref(), &w).await? == Swap::Written {
            // More to push (a change that raced this one, or a create that
            // now has its provider id): queue it under the record's current id.
            if let Some(rec) = w.next.filter(push_due) {
                queue_push(self.queue, &rec, rec.version, 0, None).await?;
            }
            return Ok(ControlFlow::Break(()));
        }
        let again = deps
            .store
            .get_record(&read.connection, &read.object, &read.external_id)
            .await?;
        match again {
            Some(r) if r.version == current.version && self.new_id != &current.external_id => {
                // A pull stored the created record under its provider id
                // before we could move ours there.
                adopt_pulled_create(self, &current, w.next.as_ref()).await?;
                Ok(ControlFlow::Break(()))
            }
            Some(r) => Ok(ControlFlow::Continue(r)),
            None => Ok(ControlFlow::Break(())),
        }
    }

    /// The record after the commit over `current`.
    fn next(&self, current: &Record, now: Timestamp) -> Record {
        let p = self.pushed;
        let (obj, read, merged) = (p.obj, p.read, p.merged);
        let data = canonical(obj, &rebased(&to_fields(&read.data), current, p.apply));
        let base = canonical(obj, merged);
        let prev = current.local.clone();
        // A delete the product made meanwhile (or, for a create, before it)
        // stays pending.
        let deleted = prev.as_ref().is_some_and(|l| l.deleted)
            && (p.earlier_delete == EarlierDelete::StaysPending || current.version != read.version);
        let parked_fields: Vec<&str> = p.parked.iter().map(|c| c.field.as_str()).collect();
        let data_fields = to_fields(&data);
        let pending = deleted
            || obj.fields.keys().any(|f| {
                !parked_fields.contains(&f.as_str())
                    && merge::field(&data_fields, f) != merge::field(merged, f)
            });
        let local = (pending || !p.parked.is_empty()).then(|| {
            let prev = prev.unwrap_or_else(|| fresh_local(base.clone(), now));
            LocalState {
                base,
                deleted,
                local_updated_at: prev.local_updated_at,
                push_due_at: pending.then_some(now),
                attempts: 0,
                last_error: None,
                conflicts: p.parked.to_vec(),
                resolutions: BTreeMap::new(),
                create: None,
            }
        });
        Record {
            connection: current.connection.clone(),
            object: current.object.clone(),
            external_id: self.new_id.clone(),
            hash: content_hash(&data),
            data,
            version: current.version + 1,
            remote_updated_at: p
                .after
                .as_ref()
                .and_then(|a| a.updated_at)
                .or(current.remote_updated_at),
            local,
        }
    }
}

/// Our copy's fields with the remote changes `apply` rebased onto it: a
/// remote change applies unless the product changed that field since the
/// push read it (`read`).
fn rebased(read: &FieldValues, current: &Record, apply: &FieldValues) -> FieldValues {
    let now_fields = to_fields(&current.data);
    let mut data = now_fields.clone();
    for (k, v) in apply {
        if merge::field(&now_fields, k) == merge::field(read, k) {
            if v.is_null() {
                data.remove(k);
            } else {
                data.insert(k.clone(), v.clone());
            }
        }
    }
    data
}

/// Whether a record has a push due.
fn push_due(rec: &Record) -> bool {
    rec.local.as_ref().is_some_and(|l| l.push_due_at.is_some())
}

/// The provider created our record and a pull already stored it under the
/// provider's id: keep that record, carry over any local edit made since the
/// create (pushed next), and drop the provisional one. The target is written
/// first, so a crash in between leaves the provisional record due, whose
/// re-sent create the idempotency key answers with the same id.
async fn adopt_pulled_create(
    commit: &Commit<'_>,
    provisional: &Record,
    wanted: Option<&Record>,
) -> Result<(), PushError> {
    let adopt = Adopt {
        commit,
        provisional,
        wanted: wanted.filter(|w| push_due(w)),
    };
    retry_cas((), |()| adopt.attempt())
        .await?
        .ok_or_else(|| PushError::Contended(commit.new_id.clone()))
}

/// One adoption of a record a pull stored under the provider's id.
struct Adopt<'a> {
    commit: &'a Commit<'a>,
    provisional: &'a Record,
    /// The provisional record as the commit wanted it, if a push was due
    /// (an edit or delete made since the create).
    wanted: Option<&'a Record>,
}

impl Adopt<'_> {
    async fn attempt(&self) -> Result<ControlFlow<()>, PushError> {
        let Commit {
            deps,
            queue,
            pushed,
            new_id: id,
        } = self.commit;
        let store = deps.store.as_ref();
        let p = self.provisional;
        let Some(target) = store.get_record(&p.connection, &p.object, id).await? else {
            return Err(PushError::Contended((*id).clone()));
        };
        let carried = self.wanted.and_then(|wanted| {
            let created = canonical(pushed.obj, pushed.merged);
            carried(pushed.obj, &target, &created, wanted, deps.clock.now())
        });
        if let Some(next) = carried {
            let w = write_of(&target, Some(target.version), Some(next), Vec::new());
            if swap(store, &w).await? == Swap::Moved {
                return Ok(ControlFlow::Continue(()));
            }
            let next = w.next.as_ref().expect("written");
            queue_push(*queue, next, next.version, 0, None).await?;
        }
        // Written, or already moved or gone: either way it is done.
        swap(store, &write_of(p, Some(p.version), None, Vec::new())).await?;
        Ok(ControlFlow::Break(()))
    }
}

/// The adopted record with the provisional record's pending change
/// (`wanted`, made since the create sent `created`) carried over; `None`
/// when the target's own local delete stands.
fn carried(
    obj: &ObjectDef,
    target: &Record,
    created: &serde_json::Value,
    wanted: &Record,
    now: Timestamp,
) -> Option<Record> {
    let wl = wanted.local.as_ref()?;
    match &target.local {
        None => {
            let data = canonical(obj, &to_fields(&wanted.data));
            // The base is what the create sent (both sides agreed on it
            // then): remote edits the pull brought since stay theirs. The
            // product's edit keeps its own time (for `latest`), and its
            // delete stays a delete.
            let mut local = fresh_local(created.clone(), now);
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
        Some(tl) if tl.deleted => None,
        Some(tl) => Some(carry_edit(obj, target, tl, created, wanted, wl, now)),
    }
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
    sent: &serde_json::Value,
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
pub(super) async fn commit_removal(
    deps: &WorkerDeps,
    rec: &Record,
    audit: Vec<AuditRecord>,
) -> Result<PushReport, PushError> {
    let w = write_of(rec, Some(rec.version), None, audit);
    swap(deps.store.as_ref(), &w).await?;
    Ok(PushReport::just(PushOutcome::Deleted))
}
