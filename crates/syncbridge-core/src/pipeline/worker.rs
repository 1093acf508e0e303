//! A sync job end to end, as the SyncInboundWorker runs it.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::connector::http::{HttpConnector, RetryPolicy};
use crate::connector::registry::Registry;
use crate::credentials::CredentialProvider;
use crate::events::{Event, EventSink};
use crate::ids::RunId;
use crate::model::{
    ConnectionStatus, JobReason, Lease, Priority, RunCounts, RunStatus, SyncJob, SyncRun,
};
use crate::pipeline::inbound::{InboundError, InboundOutcome, run_inbound};
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
pub async fn handle_inbound_job(
    deps: &WorkerDeps,
    job: &SyncJob,
    progress: &(dyn Fn(&RunCounts) + Send + Sync),
) -> Result<JobOutcome, WorkerError> {
    let Some(mut task) = deps.store.get_task(&job.task).await? else {
        return Ok(JobOutcome::Skipped(format!(
            "task {} no longer exists",
            job.task
        )));
    };
    let now = deps.clock.now();
    let mut job = job.clone();
    if let JobReason::Webhook { event } = &job.reason {
        // Webhook follow-ups are enqueued without a lease: take one now (its
        // token derived from the event, so a redelivery of this job after its
        // worker died recognises its own lease and resumes the run), or, if
        // another run holds it, ask for another run right after (nothing is lost).
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
                return Ok(JobOutcome::Skipped(format!(
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
    let job = &job;
    if task.lease.as_ref().map(|l| l.token.as_str()) != Some(job.lease_token.as_str()) {
        return Ok(JobOutcome::Skipped(format!(
            "stale job for {}: its lease was superseded",
            job.task
        )));
    }
    let next = now.add(Duration::from_secs(task.interval_secs.into()));
    let Some(conn) = deps.store.get_connection(&task.connection).await? else {
        deps.store
            .release_task(&task.id, &job.lease_token, next, now)
            .await?;
        return Ok(JobOutcome::Skipped(format!(
            "connection {} no longer exists",
            task.connection
        )));
    };
    if conn.status != ConnectionStatus::Active {
        deps.store
            .release_task(&task.id, &job.lease_token, next, now)
            .await?;
        return Ok(JobOutcome::Skipped(format!(
            "connection {} is {}",
            conn.id,
            conn.status.as_str()
        )));
    }
    let mut run = SyncRun {
        id: RunId::parse(format!(
            "{}@{}-{}",
            task.id,
            job.lease_token,
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
        deps.store
            .release_task(&task.id, &job.lease_token, next, now)
            .await?;
        return Ok(JobOutcome::Ran(run));
    };
    let recent = deps.store.list_runs(Some(&task.id), 10).await?;
    let previous = recent.first().cloned();
    close_interrupted(&*deps.store, &recent, &run).await?;
    deps.store.put_run(&run).await?;
    let connector = HttpConnector::new(
        deps.http.clone(),
        def,
        conn,
        deps.limiter.clone(),
        deps.credentials.clone(),
        deps.clock.clone(),
        deps.retry.clone(),
    );
    let mut counts = RunCounts::default();
    let result = run_inbound(
        &*deps.store,
        &connector,
        &task,
        &job.lease_token,
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
    let end = deps.clock.now();
    // The breaker raises its own, more specific event instead of "run failed".
    let breaker_tripped = matches!(result, Ok(InboundOutcome::Completed { breaker: Some(_) }));
    run.counts = counts;
    run.finished_at = Some(end);
    let next_run_at = match result {
        Ok(InboundOutcome::Completed { breaker: None }) => {
            run.status = RunStatus::Succeeded;
            end.add(Duration::from_secs(task.interval_secs.into()))
        }
        Ok(InboundOutcome::Completed {
            breaker: Some(trip),
        }) => {
            tracing::warn!(task = %task.id, "{}", trip.message);
            run.status = RunStatus::Failed;
            run.error = Some(trip.message.clone());
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
            end.add(Duration::from_secs(task.interval_secs.into()))
        }
        Ok(InboundOutcome::Parked(wait)) => {
            run.status = RunStatus::Parked;
            run.error = Some(format!(
                "rate limited; resumes from the committed cursor in {}s",
                wait.as_secs()
            ));
            end.add(wait)
        }
        Err(InboundError::Store(StoreError::LeaseLost(_))) => {
            run.status = RunStatus::Interrupted;
            run.error =
                Some("lease lost to a newer run; stopped without committing further".into());
            deps.store.put_run(&run).await?;
            return Ok(JobOutcome::Ran(run));
        }
        Err(InboundError::Store(e)) => {
            run.status = RunStatus::Failed;
            run.error = Some(e.to_string());
            // Best effort: the store is what failed.
            let _ = deps.store.put_run(&run).await;
            return Err(WorkerError::Store(e));
        }
        Err(e) => {
            run.status = RunStatus::Failed;
            run.error = Some(e.to_string());
            // Retry failed runs sooner than the schedule, but not hot.
            end.add(Duration::from_secs(u64::from(task.interval_secs).min(60)))
        }
    };
    deps.store.put_run(&run).await?;
    deps.store
        .release_task(&task.id, &job.lease_token, next_run_at, end)
        .await?;
    let was_failing = previous.is_some_and(|p| p.status == RunStatus::Failed);
    match run.status {
        RunStatus::Failed if !breaker_tripped => {
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
    Ok(JobOutcome::Ran(run))
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
