//! The push executor: takes the record's lock, reads what the planner
//! needs, carries out its [`PushPlan`] (provider calls, compare-and-swap
//! writes) and parks or retries a push that failed. It decides nothing
//! itself: the decisions are in `plan.rs`.

use std::time::Duration;

use serde_json::Map;

use super::cas::write_next;
use super::commit::{EarlierDelete, Pushed, commit_pushed, commit_removal};
use super::lock::PushLock;
use super::plan::{
    self, CreateStored, Failure, MergePlan, PushInput, PushPlan, Remote, StoredCreate,
};
use super::relay::{push_message, queue_push};
use super::{PushError, PushOutcome, PushReport};
use crate::connector::definition::ObjectDef;
use crate::connector::http::{FetchError, HttpConnector, RemoteRecord, backoff};
use crate::events::Event;
use crate::merge::FieldValues;
use crate::model::{
    AuditRecord, Connection, ConnectionStatus, CreateRequest, LocalState, PushJob, Record,
};
use crate::pipeline::worker::WorkerDeps;
use crate::queue::QueueSender;

/// Transient push failures before the push is parked for a person (with
/// backoff capped at 15 minutes, about a day of trying).
const MAX_ATTEMPTS: u32 = 100;

/// Pushes one record's pending changes (the `SyncOutboundWorker` job).
///
/// One push per record at a time, across processes: the job takes the
/// record's named lock in the store; a job that finds it taken queues itself
/// again for a few seconds later (a new scheduled message, not a redelivery).
/// A crashed holder's lock expires after five minutes.
pub async fn handle_push_job(
    deps: &WorkerDeps,
    queue: &dyn QueueSender,
    job: &PushJob,
) -> Result<PushReport, PushError> {
    let now = deps.clock.now();
    let Some(lock) = PushLock::take(
        deps,
        &job.connection,
        &job.object,
        &job.external_id,
        &job.message_id(),
    )
    .await?
    else {
        let mut m = push_message(job, Some(now.add(Duration::from_secs(3))));
        m.message_id = format!("{}:busy{}", m.message_id, now.as_millis());
        queue.send(vec![m]).await?;
        return Ok(PushReport::just(PushOutcome::Skipped(
            "another push of this record is running; this one comes back shortly".into(),
        )));
    };
    let result = push_record(deps, queue, job).await;
    lock.release(deps).await;
    result
}

/// The report of a push that found the record changed under it: the product
/// changed it, and that change queued its own push, which follows.
fn own_push_follows() -> PushReport {
    PushReport::just(PushOutcome::Skipped(
        "the record changed meanwhile; its own push follows".into(),
    ))
}

/// Loads what the push needs and runs it (under the record's lock).
async fn push_record(
    deps: &WorkerDeps,
    queue: &dyn QueueSender,
    job: &PushJob,
) -> Result<PushReport, PushError> {
    let Some(rec) = deps
        .store
        .get_record(&job.connection, &job.object, &job.external_id)
        .await?
    else {
        return Ok(PushReport::just(PushOutcome::Skipped(format!(
            "record {} no longer exists",
            job.external_id
        ))));
    };
    let local = match plan::pending(&rec) {
        Ok(local) => local.clone(),
        Err(outcome) => return Ok(PushReport::just(outcome)),
    };
    let Some(conn) = deps.store.get_connection(&job.connection).await? else {
        return Ok(PushReport::just(PushOutcome::Skipped(format!(
            "connection {} no longer exists",
            job.connection
        ))));
    };
    let stop = Stop { deps, queue };
    let Some(def) = deps.registry.get(&conn.provider) else {
        let error = format!("connector {} is not installed", conn.provider);
        return stop.park(&rec, error, StoredCreate::Keep).await;
    };
    let Some(obj) = def.object(rec.object.as_str()).filter(|o| o.push.is_some()) else {
        let error = format!("{} is read-only for {}", rec.object, conn.provider);
        return stop.park(&rec, error, StoredCreate::Keep).await;
    };
    if conn.status != ConnectionStatus::Active {
        let error = format!("connection {} is {}", conn.id, conn.status.as_str());
        return stop.retry(&rec, error, None).await;
    }
    let connector = HttpConnector::new(
        deps.http.clone(),
        def.clone(),
        conn.clone(),
        deps.limiter.clone(),
        deps.credentials.clone(),
        deps.clock.clone(),
        deps.retry.clone(),
    );
    let push = Push {
        deps,
        stop,
        conn: &conn,
        obj,
        connector: &connector,
    };
    push.run(rec, &local).await
}

/// One push of one record.
struct Push<'a> {
    deps: &'a WorkerDeps,
    stop: Stop<'a>,
    conn: &'a Connection,
    obj: &'a ObjectDef,
    connector: &'a HttpConnector,
}

impl Push<'_> {
    /// Plans (reading the provider's record when the plan asks for it) and
    /// carries the plan out.
    async fn run(&self, rec: Record, local: &LocalState) -> Result<PushReport, PushError> {
        // The key of a DELETE is the record's as read, before any audit append.
        let key = plan::idempotency_key(&rec);
        let mut remote = Remote::Unread;
        loop {
            let input = PushInput {
                record: &rec,
                local,
                remote,
                policies: &self.conn.conflicts,
                now: self.deps.clock.now(),
                create_nonce: rand::random(),
            };
            return match plan::plan_push(input) {
                PushPlan::ReadRemote => {
                    remote = match self.connector.read_record(self.obj, &rec.external_id).await {
                        Ok(Some(found)) => Remote::Found(found),
                        Ok(None) => Remote::Gone,
                        Err(e) => return self.stop.failed(&rec, e).await,
                    };
                    continue;
                }
                PushPlan::Create { request, stored } => self.create(rec, request, stored).await,
                PushPlan::Remove { audit } => commit_removal(self.deps, &rec, audit).await,
                PushPlan::Retry { error } => self.stop.retry(&rec, error, None).await,
                PushPlan::KeepRemote { audit, remote } => {
                    self.keep_remote(&rec, audit, remote).await
                }
                PushPlan::Delete { audit } => self.delete(rec, audit, &key).await,
                PushPlan::Merge(plan) => self.merge(rec, plan).await,
            };
        }
    }

    /// Sends the create (stored first when new); a delete or an edit made
    /// since is pushed after it, under the provider's id.
    async fn create(
        &self,
        rec: Record,
        request: CreateRequest,
        stored: CreateStored,
    ) -> Result<PushReport, PushError> {
        let rec = match stored {
            CreateStored::Already => rec,
            CreateStored::NotYet => {
                let written = write_next(self.deps.store.as_ref(), &rec, Vec::new(), |next| {
                    if let Some(l) = next.local.as_mut() {
                        l.create = Some(request.clone());
                    }
                })
                .await?;
                let Some(rec) = written else {
                    return Ok(own_push_follows());
                };
                rec
            }
        };
        let sent = request.fields;
        let fields = plan::non_null(&sent);
        let n = fields.len();
        let created = match self
            .connector
            .create_record(self.obj, &fields, &request.key)
            .await
        {
            Ok(Some(created)) => created,
            Ok(None) => {
                let error = "the provider's create answer has no record".into();
                return self.stop.park(&rec, error, StoredCreate::Keep).await;
            }
            Err(e) => return self.stop.failed(&rec, e).await,
        };
        let id = created.id.clone();
        let (merged, apply) = (plan::to_fields(&sent), FieldValues::new());
        let pushed = self.pushed(EarlierDelete::StaysPending, &rec, &merged, &apply);
        self.commit(Pushed {
            after: Some(created),
            ..pushed
        })
        .await?;
        Ok(PushReport::just(PushOutcome::Pushed {
            fields: n,
            created: Some(id),
        }))
    }

    /// The provider's update wins over our delete: our copy takes its state.
    async fn keep_remote(
        &self,
        rec: &Record,
        audit: Vec<AuditRecord>,
        remote: RemoteRecord,
    ) -> Result<PushReport, PushError> {
        let theirs = plan::to_fields(&remote.data);
        let pushed = self.pushed(EarlierDelete::Settled, rec, &theirs, &theirs);
        self.commit(Pushed {
            after: Some(remote),
            audit,
            ..pushed
        })
        .await?;
        Ok(PushReport {
            conflicts_resolved: 1,
            ..PushReport::just(PushOutcome::UpToDate)
        })
    }

    /// Appends the decision (if any), then deletes at the provider; a 404
    /// (deleted meanwhile, or by an attempt that crashed) is done too.
    async fn delete(
        &self,
        rec: Record,
        audit: Vec<AuditRecord>,
        key: &str,
    ) -> Result<PushReport, PushError> {
        let resolved = audit.len() as u64;
        let Some(rec) = self.append(rec, audit).await? else {
            return Ok(own_push_follows());
        };
        match self
            .connector
            .delete_record(self.obj, &rec.external_id, key)
            .await
        {
            Ok(()) | Err(FetchError::Rejected { status: 404, .. }) => {
                commit_removal(self.deps, &rec, Vec::new()).await?;
                Ok(PushReport {
                    conflicts_resolved: resolved,
                    ..PushReport::just(PushOutcome::Deleted)
                })
            }
            Err(e) => self.stop.failed(&rec, e).await,
        }
    }

    /// Appends the merge's decisions, pushes what the provider must receive
    /// and commits the merge.
    async fn merge(&self, rec: Record, plan: MergePlan) -> Result<PushReport, PushError> {
        let Some(rec) = self.append(rec, plan.audit.clone()).await? else {
            return Ok(own_push_follows());
        };
        let sent = plan.push.len();
        let mut answer = None;
        if sent > 0 {
            let changes: Map<_, _> = plan.push.clone().into_iter().collect();
            let key = plan::update_key(&rec, &plan.push);
            match self
                .connector
                .update_record(self.obj, &rec.external_id, &changes, &key)
                .await
            {
                Ok(a) => answer = a,
                Err(e) => return self.stop.failed(&rec, e).await,
            }
        }
        let pushed = self.pushed(EarlierDelete::Settled, &rec, &plan.merged, &plan.apply);
        self.commit(Pushed {
            after: answer.or(Some(plan.remote)),
            audit: plan.audit,
            parked: &plan.conflicts,
            ..pushed
        })
        .await?;
        if !plan.conflicts.is_empty() {
            self.deps
                .events
                .emit(Event::ConflictParked {
                    tenant: self.conn.tenant.clone(),
                    connection: self.conn.id.clone(),
                    object: rec.object.to_string(),
                    record: rec.external_id.to_string(),
                    fields: plan.parked.clone(),
                })
                .await;
        }
        let outcome = if sent > 0 {
            PushOutcome::Pushed {
                fields: sent,
                created: None,
            }
        } else {
            PushOutcome::UpToDate
        };
        Ok(PushReport {
            outcome,
            conflicts_resolved: plan.resolved,
            conflicts_parked: plan.parked.len() as u64,
            applied_locally: plan.apply.len() as u64,
        })
    }

    /// Appends `audit` before the provider write (nothing when empty);
    /// answers the record as written, or `None` when it changed meanwhile.
    async fn append(
        &self,
        rec: Record,
        audit: Vec<AuditRecord>,
    ) -> Result<Option<Record>, PushError> {
        if audit.is_empty() {
            return Ok(Some(rec));
        }
        Ok(write_next(self.deps.store.as_ref(), &rec, audit, |_| {}).await?)
    }

    /// A commit of this push with no provider answer, audit or conflicts yet.
    fn pushed<'a>(
        &'a self,
        earlier_delete: EarlierDelete,
        read: &'a Record,
        merged: &'a FieldValues,
        apply: &'a FieldValues,
    ) -> Pushed<'a> {
        Pushed {
            obj: self.obj,
            earlier_delete,
            read,
            merged,
            apply,
            after: None,
            audit: Vec::new(),
            parked: &[],
        }
    }

    async fn commit(&self, pushed: Pushed<'_>) -> Result<(), PushError> {
        commit_pushed(self.deps, self.stop.queue, pushed).await
    }
}

/// A push that stops short: parked for a person, or retried later.
#[derive(Clone, Copy)]
struct Stop<'a> {
    deps: &'a WorkerDeps,
    queue: &'a dyn QueueSender,
}

impl Stop<'_> {
    /// A failed provider call: parked or retried ([`plan::on_failure`]).
    async fn failed(&self, rec: &Record, e: FetchError) -> Result<PushReport, PushError> {
        match plan::on_failure(rec, e) {
            Failure::Retry { error, at_least } => self.retry(rec, error, at_least).await,
            Failure::Park { error, create } => self.park(rec, error, create).await,
        }
    }

    /// Parks the push with the provider's answer (no retry until the
    /// product changes the record again).
    async fn park(
        &self,
        rec: &Record,
        error: String,
        create: StoredCreate,
    ) -> Result<PushReport, PushError> {
        update_local(self.deps, rec, |l| {
            if create == StoredCreate::Forget {
                l.create = None;
            }
            l.push_due_at = None;
            l.attempts += 1;
            l.last_error = Some(error.clone());
        })
        .await?;
        tracing::warn!(record = %rec.external_id, object = %rec.object, %error, "push parked");
        Ok(PushReport::just(PushOutcome::Parked { error }))
    }

    /// Schedules another attempt with capped exponential backoff (full
    /// jitter), as a scheduled message: never a hot redelivery loop.
    async fn retry(
        &self,
        rec: &Record,
        error: String,
        at_least: Option<Duration>,
    ) -> Result<PushReport, PushError> {
        let deps = self.deps;
        let attempts = rec.local.as_ref().map_or(0, |l| l.attempts) + 1;
        if attempts > MAX_ATTEMPTS {
            let error = format!("gave up after {MAX_ATTEMPTS} attempts; last: {error}");
            return self.park(rec, error, StoredCreate::Keep).await;
        }
        let policy = crate::connector::http::RetryPolicy {
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(15 * 60),
            ..deps.retry.clone()
        };
        let wait = backoff(&policy, attempts, rand::random::<f64>().max(0.1))
            .max(at_least.unwrap_or_default());
        let at = deps.clock.now().add(wait);
        let Some(version) = update_local(deps, rec, |l| {
            l.push_due_at = Some(at);
            l.attempts = attempts;
            l.last_error = Some(error.clone());
        })
        .await?
        else {
            return Ok(own_push_follows());
        };
        queue_push(self.queue, rec, version, attempts, Some(at)).await?;
        Ok(PushReport::just(PushOutcome::Retry { at, error }))
    }
}

/// Changes the record's local state if the record is still as read; answers
/// its new version, or `None` when it changed meanwhile (its own push follows).
async fn update_local(
    deps: &WorkerDeps,
    rec: &Record,
    change: impl FnOnce(&mut LocalState),
) -> Result<Option<i64>, PushError> {
    let written = write_next(deps.store.as_ref(), rec, Vec::new(), |next| {
        if let Some(l) = next.local.as_mut() {
            change(l);
        }
    })
    .await?;
    Ok(written.map(|r| r.version))
}
