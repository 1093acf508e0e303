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
    if let JobReason::Webhook { .. } = job.reason {
        // Webhook follow-ups are enqueued without a lease: take one now, or, if
        // a run holds it, ask for another run right after (nothing is lost).
        let busy = task.lease.as_ref().is_some_and(|l| l.until > now);
        let lease = Lease {
            token: format!("wh{}", task.version),
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
        job.lease_token = lease.token;
        task = deps
            .store
            .get_task(&job.task)
            .await?
            .ok_or_else(|| StoreError::NotFound(job.task.to_string()))?;
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
    let previous = deps
        .store
        .list_runs(Some(&task.id), 1)
        .await?
        .into_iter()
        .next();
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
            run.status = RunStatus::Failed;
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
