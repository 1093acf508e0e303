//! `SyncInboundWorker` (Service Bus queue `sync-inbound`): runs one inbound
//! sync job per message. The invocation span gets the job's correlation id
//! (set by the webhook receiver or the scheduler), message id, delivery count,
//! task and connection; each finished run logs one `sync run finished` line.

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use syncbridge_core::model::{JobMessage, SyncJob, SyncRun};
use syncbridge_core::pipeline::worker::{
    JobOutcome, WorkerError, give_back_lease, handle_inbound_job, retry_message_id,
    store_retry_delay,
};
use syncbridge_core::store::StoreError;
use syncbridge_protocol::{Invocation, InvocationResponse, ServiceBusInvocation};

use crate::error::HandlerError;
use crate::queue_job::{Decoded, decode};
use crate::state::{AppState, WorkerState};

/// The function name.
pub const FUNCTION: &str = "SyncInboundWorker";

/// `POST /SyncInboundWorker`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(&format!("/{FUNCTION}"), post(handle))
        .layer(axum::extract::DefaultBodyLimit::max(4 << 20))
        .with_state(state.worker())
}

async fn handle(
    State(state): State<WorkerState>,
    inv: Invocation<ServiceBusInvocation>,
) -> Result<InvocationResponse, HandlerError> {
    let (job, msg) = match decode(
        &*state.deps.store,
        &*state.deps.events,
        FUNCTION,
        inv,
        state.deps.clock.now(),
    )
    .await?
    {
        Decoded::Job(b) => *b,
        Decoded::Quarantined(answer) => return Ok(answer),
    };
    record_job(&job, &msg);
    let outcome = match handle_inbound_job(&state.deps, &job, &|c| {
        tracing::debug!(pages = c.pages, fetched = c.fetched, "page committed");
    })
    .await
    {
        Ok(outcome) => outcome,
        Err(WorkerError::Store(e)) if e.is_transient() => {
            return retry_later(&state, job, &msg, e).await;
        }
        // This process's store file is gone (logged once, loudly, by the
        // store). Answering non-2xx would burn the message's deliveries in
        // seconds and dead-letter every job before anyone restarts the
        // handlers; a backed-off retry keeps each job until they do.
        Err(WorkerError::Store(e @ StoreError::Detached(_))) => {
            return retry_later(&state, job, &msg, e).await;
        }
        // Corrupt data or a vanished row: a retry cannot fix it; fail the
        // delivery so the message ends in the dead-letter queue, visibly.
        Err(WorkerError::Store(e)) => return Err(HandlerError::Store(e)),
    };
    let line = match &outcome {
        JobOutcome::Ran(run) => {
            log_run(run);
            format!(
                "run {} {}: {} page(s), {} fetched, {} created, {} updated, {} unchanged, {} deleted{}",
                run.id,
                run.status.as_str(),
                run.counts.pages,
                run.counts.fetched,
                run.counts.created,
                run.counts.updated,
                run.counts.unchanged,
                run.counts.deleted,
                run.error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            )
        }
        JobOutcome::Skipped(why) => {
            tracing::info!(reason = %why, "job skipped");
            format!("skipped: {why}")
        }
    };
    let mut answer = InvocationResponse::new()
        .log_all(msg.warning_logs())
        .log(line);
    if let JobOutcome::Ran(run) = outcome {
        answer = answer.return_value(serde_json::to_value(&run).expect("runs serialize"));
    }
    Ok(answer)
}

/// The store failed transiently (full disk, a lock held too long, a damaged
/// file — SQLite reports all of these as unavailable): the
/// job comes back as a scheduled message after a growing delay
/// ([`store_retry_delay`]) and this delivery is acknowledged, instead of a
/// non-2xx answer whose immediate redeliveries would burn the message's
/// deliveries in milliseconds and dead-letter it. The retry keeps the job's
/// lease, so it resumes the same run when the store answers again. Only if
/// the retry cannot be enqueued either does the host see a failure: the
/// task's lease is given back first where the store allows (so the
/// scheduler re-queues the task at its next tick rather than after the
/// lease expires), and the answer waits out a delay that grows with the
/// message's delivery count while holding its lock, so even those
/// redeliveries are not hot.
async fn retry_later(
    state: &WorkerState,
    job: SyncJob,
    msg: &ServiceBusInvocation,
    error: syncbridge_core::StoreError,
) -> Result<InvocationResponse, HandlerError> {
    let body = msg.json::<JobMessage>().unwrap_or(JobMessage {
        job,
        correlation_id: None,
        retry: 0,
    });
    let retry = body.retry.saturating_add(1);
    let delay = store_retry_delay(retry);
    let next = JobMessage { retry, ..body };
    let id = retry_message_id(msg.metadata.message_id.as_deref(), &next.job, retry);
    let at = state.deps.clock.now().add(delay);
    match state
        .queue
        .send(vec![crate::correlation::scheduled_retry(&next, id, at)])
        .await
    {
        Ok(()) => {
            tracing::warn!(error = %error, retry, delay_secs = delay.as_secs(),
                "store unavailable; job rescheduled");
            Ok(InvocationResponse::new()
                .log_all(msg.warning_logs())
                .log(format!(
                    "store unavailable ({error}); retry #{retry} scheduled in {}s",
                    delay.as_secs()
                )))
        }
        Err(send) => {
            tracing::warn!(error = %error, send_error = %send, "store unavailable and the retry could not be enqueued");
            match give_back_lease(&*state.deps.store, &next.job, state.deps.clock.now()).await {
                Ok(released) => tracing::info!(released, "task lease given back"),
                Err(e) => tracing::warn!(error = %e, "task lease could not be given back"),
            }
            // Each redelivery of this message waits longer (1 s, 2 s … 30 s).
            let redeliveries = msg.metadata.delivery_count.saturating_sub(1);
            tokio::time::sleep(store_retry_delay(retry.saturating_add(redeliveries))).await;
            Err(HandlerError::Store(error))
        }
    }
}

/// The message's correlation id: the job body's, else the broker's `CorrelationId`.
fn correlation_id(msg: &ServiceBusInvocation) -> Option<String> {
    msg.json::<JobMessage>()
        .ok()
        .and_then(|m| m.correlation_id)
        .or_else(|| msg.metadata.correlation_id.clone())
}

/// Puts what the job is about on the invocation span.
fn record_job(job: &SyncJob, msg: &ServiceBusInvocation) {
    let span = tracing::Span::current();
    if let Some(c) = correlation_id(msg) {
        span.record("correlation_id", c.as_str());
    }
    if let Some(m) = &msg.metadata.message_id {
        span.record("message_id", m.as_str());
    }
    span.record("delivery_count", msg.metadata.delivery_count);
    span.record("task", job.task.as_str());
    span.record("connection", job.connection.as_str());
}

/// One structured line per finished run (docs/telemetry.md queries it).
fn log_run(run: &SyncRun) {
    macro_rules! run_event {
        ($level:ident $(, $extra:tt)*) => {
            tracing::$level!(
                run_id = %run.id,
                status = run.status.as_str(),
                pages = run.counts.pages,
                fetched = run.counts.fetched,
                created = run.counts.created,
                updated = run.counts.updated,
                unchanged = run.counts.unchanged,
                deleted = run.counts.deleted,
                requests = run.counts.requests,
                throttled = run.counts.throttled,
                $($extra,)*
                "sync run finished"
            )
        };
    }
    match run.error.as_deref() {
        None => run_event!(info),
        Some(error) => run_event!(warn, error),
    }
}
