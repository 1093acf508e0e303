//! `SyncInboundWorker` (Service Bus queue `sync-inbound`): runs one inbound
//! sync job per message. The invocation span gets the job's correlation id
//! (set by the webhook receiver or the scheduler), message id, delivery count,
//! task and connection; each finished run logs one `sync run finished` line.

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use syncbridge_core::model::{JobMessage, SyncJob, SyncRun};
use syncbridge_core::pipeline::worker::{JobOutcome, handle_inbound_job};
use syncbridge_protocol::{Invocation, InvocationResponse, ServiceBusInvocation};

use crate::error::HandlerError;
use crate::queue_job::{Decoded, decode};
use crate::state::AppState;

/// The function name.
pub const FUNCTION: &str = "SyncInboundWorker";

/// `POST /SyncInboundWorker`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(&format!("/{FUNCTION}"), post(handle))
        .layer(axum::extract::DefaultBodyLimit::max(4 << 20))
        .with_state(state)
}

async fn handle(
    State(state): State<AppState>,
    inv: Invocation<ServiceBusInvocation>,
) -> Result<InvocationResponse, HandlerError> {
    let (job, msg) = match decode(
        &*state.store,
        &*state.events,
        FUNCTION,
        inv,
        state.clock.now(),
    )
    .await?
    {
        Decoded::Job(b) => *b,
        Decoded::Quarantined(answer) => return Ok(answer),
    };
    record_job(&job, &msg);
    let deps = state.worker_deps();
    let outcome = handle_inbound_job(&deps, &job, &|c| {
        tracing::debug!(pages = c.pages, fetched = c.fetched, "page committed");
    })
    .await
    .map_err(|e| HandlerError::Other(e.to_string()))?;
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
