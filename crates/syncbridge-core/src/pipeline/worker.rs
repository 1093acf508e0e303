//! A sync job end to end, as the SyncInboundWorker runs it.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::clock::Timestamp;
use crate::connector::http::{HttpConnector, RetryPolicy};
use crate::connector::registry::Registry;
use crate::credentials::CredentialProvider;
use crate::events::{Event, EventSink};
use crate::ids::RunId;
use crate::model::SyncTask;
use crate::model::{
    ConnectionStatus, JobReason, Lease, Priority, RunCounts, RunStatus, SyncJob, SyncRun,
};
use crate::pipeline::inbound::{BreakerTrip, InboundError, InboundOutcome, run_inbound};
use crate::ratelimit::RateLimiter;
use crate::store::{Store, StoreError};

/// Everything a worker needs, shared across invocations.
#[derive(Debug, Clone)]
pub struct WorkerDeps {
    /// Durable state.
    pub store: Arc<dyn Store>,
    /// Connector definitions.
    pub registry: Arc<Registry>,
    /// Shared provider budget.
    pub limiter: Arc<dyn RateLimiter>,
    /// Request authorization.
    pub credentials: Arc<dyn CredentialProvider>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// HTTP client (one pool per process).
    pub http: reqwest::Client,
    /// Retry behaviour of provider calls.
    pub retry: RetryPolicy,
    /// Lease length for runs the worker starts itself (webhook follow-ups).
    pub lease_for: Duration,
    /// Where operational events go.
    pub events: Arc<dyn EventSink>,
}

/// What happened to a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// The run finished (the run record says how).
    Ran(SyncRun),
    /// Nothing to do; the reason is logged.
    Skipped(String),
}

/// Failures the host should retry (answer non-2xx). Everything else becomes a
/// run record and a success answer, so a bad job never loops hot.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The store is unavailable; redelivery may succeed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Runs an inbound job. `progress` sees the counts after every page.
///
/// Phases, each a function with a typed result: [`claim`] the task's lease
/// (or skip the job), [`JobCtx::open_run`] (check the connection and its
/// definition, write the run record), [`JobCtx::run`] (the inbound run),
/// [`judge`] its result (pure) and [`JobCtx::close_run`] (run record, lease
/// release, events).
pub async fn handle_inbound_job(
    deps: &WorkerDeps,
    job: &SyncJob,
    progress: &(dyn Fn(&RunCounts) + Send + Sync),
) -> Result<JobOutcome, WorkerError> {
    let Held { task, job, now } = match claim(deps, job).await? {
        Claim::Held(held) => *held,
        Claim::Skip(why) => return Ok(JobOutcome::Skipped(why)),
    };
    let ctx = JobCtx {
        deps,
        task: &task,
        lease_token: &job.lease_token,
        now,
    };
    let OpenRun {
        connector,
        mut run,
        previous,
        feed_from,
    } = match ctx.open_run().await? {
        Opened::Run(open) => *open,
        Opened::Done(outcome) => return Ok(outcome),
    };
    let (result, counts) = ctx.run(&connector, progress).await;
    run.counts = counts;
    let end = deps.clock.now();
    run.finished_at = Some(end);
    let verdict = judge(result, &mut run, task.interval_secs, end);
    ctx.close_run(run, verdict, previous, feed_from, end).await
}

/// What [`claim`] found.
enum Claim {
    /// The job holds its task's lease: run it.
    Held(Box<Held>),
    /// Nothing to do, for this reason.
    Skip(String),
}

/// A job that holds its task's lease.
struct Held {
    /// The task, as read under the lease.
    task: SyncTask,
    /// The job, with its lease token (a webhook follow-up's own).
    job: SyncJob,
    /// When the job started.
    now: Timestamp,
}

/// Reads the job's task and makes sure the job holds its lease. Webhook
/// follow-ups are enqueued without a lease and take one here (its token
/// derived from the event, so a redelivery of this job after its worker died
/// recognises its own lease and resumes the run), or, if another run holds
/// it, ask for another run right after (nothing is lost).
async fn claim(deps: &WorkerDeps, job: &SyncJob) -> Result<Claim, StoreError> {
    let Some(mut task) = deps.store.get_task(&job.task).await? else {
        return Ok(Claim::Skip(format!("task {} no longer exists", job.task)));
    };
    let now = deps.clock.now();
    let mut job = job.clone();
    if let JobReason::Webhook { event } = &job.reason {
        let own = webhook_lease_token(event);
        let held = task.lease.as_ref();
        if held.is_none_or(|l| l.token != own) {
            let busy = held.is_some_and(|l| l.until > now);
            let lease = Lease {
                token: own.clone(),
                until: now.add(deps.lease_for),
            };
            if busy
                || !deps
                    .store
                    .lease_task(&task.id, task.version, &lease)
                    .await?
            {
                deps.store
                    .request_run(&task.id, Priority::WebhookFollowUp, now)
                    .await?;
                return Ok(Claim::Skip(format!(
                    "{} is running; a follow-up run was requested",
                    task.id
                )));
            }
            task = deps
                .store
                .get_task(&job.task)
                .await?
                .ok_or_else(|| StoreError::NotFound(job.task.to_string()))?;
        }
        job.lease_token = own;
    }
    if task.lease.as_ref().map(|l| l.token.as_str()) != Some(job.lease_token.as_str()) {
        return Ok(Claim::Skip(format!(
            "stale job for {}: its lease was superseded",
            job.task
        )));
    }
    Ok(Claim::Held(Box::new(Held { task, job, now })))
}

/// One job's borrowed context, shared by its phases.
struct JobCtx<'a> {
    deps: &'a WorkerDeps,
    task: &'a SyncTask,
    lease_token: &'a str,
    /// When the job started.
    now: Timestamp,
}

/// What [`JobCtx::open_run`] found.
enum Opened {
    /// The run is recorded as running: run it.
    Run(Box<OpenRun>),
    /// The job ended here (the lease is released).
    Done(JobOutcome),
}

/// A run recorded as running, with the connector to run it with.
struct OpenRun {
    connector: HttpConnector,
    run: SyncRun,
    /// The task's latest run before this one.
    previous: Option<SyncRun>,
    /// The connection's feed position before the run (`sync.completed`'s cursor).
    feed_from: u64,
}

/// How a run's result is recorded ([`judge`]).
#[derive(Debug)]
enum Verdict {
    /// Record the run and release the task, due again at `next_run_at`.
    Release {
        next_run_at: Timestamp,
        /// The mass-delete breaker tripped (it raises its own event).
        breaker: Option<BreakerTrip>,
    },
    /// A newer run took the lease: record the run, touch nothing else.
    LeaseLost,
    /// The store failed: record the run if it can, and fail the job.
    StoreFailed(StoreError),
}

impl JobCtx<'_> {
    /// Releases the task's lease, due again at the next interval.
    async fn release_for_next_interval(&self) -> Result<(), StoreError> {
        let next = self
            .now
            .add(Duration::from_secs(self.task.interval_secs.into()));
        self.deps
            .store
            .release_task(&self.task.id, self.lease_token, next, self.now)
            .await
            .map(drop)
    }

    /// Checks the connection and its connector definition and records the
    /// run as running (closing runs whose workers are gone).
    async fn open_run(&self) -> Result<Opened, StoreError> {
        let (deps, task, now) = (self.deps, self.task, self.now);
        let Some(conn) = deps.store.get_connection(&task.connection).await? else {
            self.release_for_next_interval().await?;
            return Ok(Opened::Done(JobOutcome::Skipped(format!(
                "connection {} no longer exists",
                task.connection
            ))));
        };
        if conn.status != ConnectionStatus::Active {
            self.release_for_next_interval().await?;
            return Ok(Opened::Done(JobOutcome::Skipped(format!(
                "connection {} is {}",
                conn.id,
                conn.status.as_str()
            ))));
        }
        let mut run = SyncRun {
            id: RunId::parse(format!(
                "{}@{}-{}",
                task.id,
                self.lease_token,
                now.as_millis()
            ))
            .expect("valid run id"),
            task: task.id.clone(),
            connection: conn.id.clone(),
            started_at: now,
            finished_at: None,
            status: RunStatus::Running,
            counts: RunCounts::default(),
            error: None,
        };
        let Some(def) = deps.registry.get(&conn.provider) else {
            run.status = RunStatus::Failed;
            run.error = Some(format!("no connector definition named {}", conn.provider));
            run.finished_at = Some(now);
            deps.store.put_run(&run).await?;
            self.release_for_next_interval().await?;
            return Ok(Opened::Done(JobOutcome::Ran(run)));
        };
        let recent = deps.store.list_runs(Some(&task.id), 10).await?;
        let previous = recent.first().cloned();
        close_interrupted(&*deps.store, &recent, &run).await?;
        deps.store.put_run(&run).await?;
        let feed_from = deps.store.feed_position(&task.connection).await?;
        let connector = HttpConnector::new(
            deps.http.clone(),
            def,
            conn,
            deps.limiter.clone(),
            deps.credentials.clone(),
            deps.clock.clone(),
            deps.retry.clone(),
        );
        Ok(Opened::Run(Box::new(OpenRun {
            connector,
            run,
            previous,
            feed_from,
        })))
    }

    /// The inbound run, and its counts with the connector's request figures.
    async fn run(
        &self,
        connector: &HttpConnector,
        progress: &(dyn Fn(&RunCounts) + Send + Sync),
    ) -> (Result<InboundOutcome, InboundError>, RunCounts) {
        let mut counts = RunCounts::default();
        let result = run_inbound(
            &*self.deps.store,
            connector,
            self.task,
            self.lease_token,
            &mut counts,
            progress,
        )
        .await;
        counts.requests = connector
            .stats()
            .requests
            .load(std::sync::atomic::Ordering::Relaxed);
        counts.throttled = connector
            .stats()
            .throttled
            .load(std::sync::atomic::Ordering::Relaxed);
        (result, counts)
    }

    /// Records the finished run, releases the task and raises the events
    /// the outcome calls for.
    async fn close_run(
        &self,
        run: SyncRun,
        verdict: Verdict,
        previous: Option<SyncRun>,
        feed_from: u64,
        end: Timestamp,
    ) -> Result<JobOutcome, WorkerError> {
        let (deps, task) = (self.deps, self.task);
        let (next_run_at, breaker) = match verdict {
            Verdict::Release {
                next_run_at,
                breaker,
            } => (next_run_at, breaker),
            Verdict::LeaseLost => {
                deps.store.put_run(&run).await?;
                return Ok(JobOutcome::Ran(run));
            }
            Verdict::StoreFailed(e) => {
                // Best effort: the store is what failed.
                let _ = deps.store.put_run(&run).await;
                return Err(WorkerError::Store(e));
            }
        };
        if let Some(trip) = &breaker {
            tracing::warn!(task = %task.id, "{}", trip.message);
            deps.events
                .emit(Event::MassDeleteBreakerTripped {
                    tenant: task.tenant.clone(),
                    connection: task.connection.clone(),
                    task: task.id.clone(),
                    deletes: trip.deletes,
                    total: trip.total,
                    max_share: trip.max_share,
                })
                .await;
        }
        deps.store.put_run(&run).await?;
        deps.store
            .release_task(&task.id, self.lease_token, next_run_at, end)
            .await?;
        let was_failing = previous.is_some_and(|p| p.status == RunStatus::Failed);
        match run.status {
            // The breaker raised its own, more specific event instead of "run failed".
            RunStatus::Failed if breaker.is_none() => {
                deps.events
                    .emit(Event::SyncRunFailed {
                        tenant: task.tenant.clone(),
                        connection: task.connection.clone(),
                        task: task.id.clone(),
                        error: run.error.clone().unwrap_or_default(),
                    })
                    .await;
            }
            RunStatus::Succeeded if was_failing => {
                deps.events
                    .emit(Event::SyncRunRecovered {
                        tenant: task.tenant.clone(),
                        connection: task.connection.clone(),
                        task: task.id.clone(),
                    })
                    .await;
            }
            _ => {}
        }
        if let Some(e) = sync_completed(task, &run, feed_from) {
            deps.events.emit(e).await;
        }
        Ok(JobOutcome::Ran(run))
    }
}

/// The product's `sync.completed` for a recorded run that changed records
/// (pages commit as they go, so a run that parked or failed later may have
/// changed some); none when nothing changed. Its cursor is the feed's
/// position from before the run (`feed_from`). Pure.
fn sync_completed(task: &SyncTask, run: &SyncRun, feed_from: u64) -> Option<Event> {
    let c = &run.counts;
    if c.created + c.updated + c.deleted == 0 {
        return None;
    }
    Some(Event::SyncCompleted {
        tenant: task.tenant.clone(),
        connection: task.connection.clone(),
        object: task.object.as_str().to_owned(),
        run: run.id.clone(),
        status: run.status.as_str().to_owned(),
        added: c.created,
        updated: c.updated,
        deleted: c.deleted,
        records_cursor: crate::store::feed::cursor(&task.connection, &task.object, feed_from),
    })
}

/// What a finished run's result means: its status and error (set on `run`)
/// and when its task is due again. Pure.
fn judge(
    result: Result<InboundOutcome, InboundError>,
    run: &mut SyncRun,
    interval_secs: u32,
    end: Timestamp,
) -> Verdict {
    let interval = Duration::from_secs(interval_secs.into());
    let (status, error, next_run_at, breaker) = match result {
        Ok(InboundOutcome::Completed { breaker: None }) => {
            (RunStatus::Succeeded, None, end.add(interval), None)
        }
        Ok(InboundOutcome::Completed {
            breaker: Some(trip),
        }) => (
            RunStatus::Failed,
            Some(trip.message.clone()),
            end.add(interval),
            Some(trip),
        ),
        Ok(InboundOutcome::Parked(wait)) => (
            RunStatus::Parked,
            Some(format!(
                "rate limited; resumes from the committed cursor in {}s",
                wait.as_secs()
            )),
            end.add(wait),
            None,
        ),
        Err(InboundError::Store(StoreError::LeaseLost(_))) => {
            run.status = RunStatus::Interrupted;
            run.error =
                Some("lease lost to a newer run; stopped without committing further".into());
            return Verdict::LeaseLost;
        }
        Err(InboundError::Store(e)) => {
            run.status = RunStatus::Failed;
            run.error = Some(e.to_string());
            return Verdict::StoreFailed(e);
        }
        // Retry failed runs sooner than the schedule, but not hot.
        Err(e) => (
            RunStatus::Failed,
            Some(e.to_string()),
            end.add(interval.min(Duration::from_secs(60))),
            None,
        ),
    };
    run.status = status;
    run.error = error;
    Verdict::Release {
        next_run_at,
        breaker,
    }
}

/// Closes the runs of `run`'s task that are still marked running: this job
/// holds the task's lease, so their workers are gone (killed, or stopped by a
/// store failure before they could write their end) or superseded. Each
/// becomes [`RunStatus::Interrupted`], naming the run that took over.
async fn close_interrupted(
    store: &dyn Store,
    recent: &[SyncRun],
    run: &SyncRun,
) -> Result<(), StoreError> {
    for old in recent
        .iter()
        .filter(|r| r.status == RunStatus::Running && r.id != run.id)
    {
        let mut closed = old.clone();
        closed.status = RunStatus::Interrupted;
        closed.finished_at = Some(run.started_at);
        closed.error = Some(format!(
            "interrupted: its worker stopped before the run finished; run {} took over",
            run.id
        ));
        tracing::info!(run_id = %old.id, by = %run.id, "interrupted run closed");
        store.put_run(&closed).await?;
    }
    Ok(())
}

/// The lease token of a webhook follow-up for `event`: derived from the event,
/// so every delivery of the same job computes the same one.
pub fn webhook_lease_token(event: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(event.as_bytes());
    format!("wh-{}", hex::encode(&digest[..8]))
}

/// The lease `job` runs under: the scheduler's, or a webhook follow-up's own.
pub fn job_lease_token(job: &SyncJob) -> String {
    match &job.reason {
        JobReason::Webhook { event } => webhook_lease_token(event),
        _ => job.lease_token.clone(),
    }
}

/// Delay before the first retry of a job whose store failed.
pub const STORE_RETRY_BASE: Duration = Duration::from_secs(1);
/// Longest delay between such retries: a store that comes back (space freed,
/// lock gone) is used again within this.
pub const STORE_RETRY_MAX: Duration = Duration::from_secs(30);

/// The delay before retry `retry` (1 = the first) of a job that failed on the
/// store: 1 s, 2 s, 4 s … doubling, at most [`STORE_RETRY_MAX`]. Pure.
pub fn store_retry_delay(retry: u32) -> Duration {
    let doublings = retry.saturating_sub(1).min(16);
    (STORE_RETRY_BASE * 2u32.pow(doublings)).min(STORE_RETRY_MAX)
}

/// The `MessageId` of retry `retry` of the message `delivered` (its own id,
/// without an earlier retry suffix) carrying `job`: `<id>:r<retry>`, so a
/// repeated retry of one delivery is dropped by duplicate detection. Pure.
pub fn retry_message_id(delivered: Option<&str>, job: &SyncJob, retry: u32) -> String {
    let base = delivered.map_or_else(|| job.message_id(), str::to_string);
    let base = match base.rsplit_once(":r") {
        Some((head, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
            head.to_string()
        }
        _ => base,
    };
    format!("{base}:r{retry}")
}

/// Gives `job`'s lease back and makes its task due now, for a job that can
/// neither run nor be retried later (the retry could not be enqueued): the
/// scheduler re-queues the task at its next tick instead of when the lease
/// expires. `Ok(false)` when the lease is no longer the job's.
pub async fn give_back_lease(
    store: &dyn Store,
    job: &SyncJob,
    now: crate::clock::Timestamp,
) -> Result<bool, StoreError> {
    let Some(task) = store.get_task(&job.task).await? else {
        return Ok(false);
    };
    let token = job_lease_token(job);
    let last = task.last_run_at.unwrap_or(task.next_run_at);
    if !store.release_task(&task.id, &token, now, last).await? {
        return Ok(false);
    }
    if job.priority < Priority::Scheduled {
        // Releasing used up the boost; keep it.
        store.request_run(&task.id, job.priority, now).await?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ConnectionId, ObjectType, TaskId};

    fn job(reason: JobReason, token: &str) -> SyncJob {
        SyncJob {
            task: TaskId::parse("c1:contacts:inbound").unwrap(),
            connection: ConnectionId::parse("c1").unwrap(),
            object: ObjectType::parse("contacts").unwrap(),
            priority: Priority::Scheduled,
            reason,
            lease_token: token.into(),
        }
    }

    /// Store retries back off 1, 2, 4 … seconds and stop growing at 30 s.
    #[test]
    fn store_retry_delays() {
        let secs: Vec<u64> = (1..=8).map(|n| store_retry_delay(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(store_retry_delay(u32::MAX), STORE_RETRY_MAX);
        assert_eq!(store_retry_delay(0), STORE_RETRY_BASE);
    }

    /// A retry's id is the delivered id plus `:r<n>`, replacing an earlier suffix, never stacking.
    #[test]
    fn retry_ids() {
        let j = job(JobReason::Scheduled, "v3");
        assert_eq!(retry_message_id(None, &j, 1), "c1:contacts:inbound:v3:r1");
        assert_eq!(
            retry_message_id(Some("c1:contacts:inbound:v3:r1"), &j, 2),
            "c1:contacts:inbound:v3:r2"
        );
        assert_eq!(retry_message_id(Some("wh-abc"), &j, 1), "wh-abc:r1");
        assert_eq!(retry_message_id(Some("x:rz"), &j, 1), "x:rz:r1");
    }

    /// A run that added, changed or deleted records raises `sync_completed` with its counts; an idle run raises nothing.
    #[test]
    fn sync_completed_only_when_records_changed() {
        let task = SyncTask {
            id: TaskId::parse("c1:contacts:inbound").unwrap(),
            tenant: crate::ids::TenantId::parse("acme").unwrap(),
            connection: ConnectionId::parse("c1").unwrap(),
            object: ObjectType::parse("contacts").unwrap(),
            direction: crate::model::Direction::Inbound,
            priority: Priority::Scheduled,
            interval_secs: 60,
            next_run_at: Timestamp::EPOCH,
            cursor: None,
            lease: None,
            last_run_at: None,
            stalled: false,
            version: 1,
            generation: 1,
        };
        let mut run = SyncRun {
            id: RunId::parse("run-1").unwrap(),
            task: task.id.clone(),
            connection: task.connection.clone(),
            started_at: Timestamp::EPOCH,
            finished_at: Some(Timestamp::EPOCH),
            status: RunStatus::Succeeded,
            counts: RunCounts {
                fetched: 9,
                unchanged: 9,
                ..RunCounts::default()
            },
            error: None,
        };
        assert_eq!(sync_completed(&task, &run, 7), None);
        run.counts.created = 3;
        run.counts.updated = 2;
        run.counts.deleted = 1;
        let e = sync_completed(&task, &run, 7).expect("changes raise the event");
        assert_eq!(
            e,
            Event::SyncCompleted {
                tenant: task.tenant.clone(),
                connection: task.connection.clone(),
                object: "contacts".into(),
                run: run.id.clone(),
                status: "succeeded".into(),
                added: 3,
                updated: 2,
                deleted: 1,
                records_cursor: crate::store::feed::cursor(&task.connection, &task.object, 7),
            }
        );
    }

    /// A webhook job's lease token depends only on its event; other jobs use the scheduler's.
    #[test]
    fn lease_tokens() {
        let a = job(JobReason::Webhook { event: "e1".into() }, "");
        let b = job(JobReason::Webhook { event: "e2".into() }, "");
        assert_eq!(job_lease_token(&a), job_lease_token(&a.clone()));
        assert_ne!(job_lease_token(&a), job_lease_token(&b));
        assert!(job_lease_token(&a).starts_with("wh-"));
        assert_eq!(job_lease_token(&job(JobReason::Scheduled, "v7")), "v7");
    }
}
