//! `SyncOutboundWorker` (Service Bus queue `sync-outbound`): pushes one
//! record's local changes per message
//! ([`syncbridge_core::pipeline::outbound::handle_push_job`]).
//!
//! Retries are the pipeline's own (a scheduled message with backoff) and
//! permanent failures park the push, so the host only sees a failure when
//! the store or the queue is down — the redelivery then is the right retry.

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use syncbridge_core::model::PushJob;
use syncbridge_core::pipeline::outbound::{PushOutcome, handle_push_job};
use syncbridge_protocol::{Invocation, InvocationResponse, ServiceBusInvocation};

use crate::error::HandlerError;
use crate::queue_job::{Decoded, decode};
use crate::state::{AppState, WorkerState};

/// The function name.
pub const FUNCTION: &str = "SyncOutboundWorker";

/// `POST /SyncOutboundWorker`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(&format!("/{FUNCTION}"), post(handle))
        .with_state(state.worker())
}

async fn handle(
    State(state): State<WorkerState>,
    inv: Invocation<ServiceBusInvocation>,
) -> Result<InvocationResponse, HandlerError> {
    let id = inv.context.invocation_id.clone().unwrap_or_default();
    let (job, msg): (PushJob, _) = match decode(
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
    let report = handle_push_job(&state.deps, &*state.queue, &job).await?;
    let what = match &report.outcome {
        PushOutcome::Pushed {
            fields,
            created: Some(id),
        } => format!("created as {id} ({fields} field(s))"),
        PushOutcome::Pushed { fields, .. } => format!("pushed {fields} field(s)"),
        PushOutcome::Deleted => "deleted".into(),
        PushOutcome::UpToDate => "up to date".into(),
        PushOutcome::Retry { at, error } => format!("retry at {at}: {error}"),
        PushOutcome::Parked { error } => format!("parked: {error}"),
        PushOutcome::Skipped(why) => format!("skipped: {why}"),
    };
    let line = format!(
        "push {}/{}/{}: {what}; {} conflict(s) resolved, {} parked, {} remote field(s) applied",
        job.connection,
        job.object,
        job.external_id,
        report.conflicts_resolved,
        report.conflicts_parked,
        report.applied_locally
    );
    tracing::info!(invocation_id = %id, connection = %job.connection, object = %job.object,
        record = %job.external_id, delivery = msg.metadata.delivery_count, "{line}");
    Ok(InvocationResponse::new()
        .log_all(msg.warning_logs())
        .log(line)
        .return_value(serde_json::json!({
            "outcome": what,
            "conflicts_resolved": report.conflicts_resolved,
            "conflicts_parked": report.conflicts_parked,
            "applied_locally": report.applied_locally,
        })))
}
