//! `SyncInboundWorker` (Service Bus queue `sync-inbound`): runs one inbound
//! sync job per message.

use axum::Router;
use axum::extract::State;
use axum::routing::post;
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
    let id = inv.context.invocation_id.clone().unwrap_or_default();
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
    let span = tracing::info_span!("inbound", invocation_id = %id, task = %job.task, delivery = msg.metadata.delivery_count);
    let _enter = span.enter();
    drop(_enter);
    let deps = state.worker_deps();
    let outcome = handle_inbound_job(&deps, &job, &|c| {
        tracing::debug!(invocation_id = %id, pages = c.pages, fetched = c.fetched, "page committed");
    })
    .await
    .map_err(|e| HandlerError::Other(e.to_string()))?;
    let line = match &outcome {
        JobOutcome::Ran(run) => format!(
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
        ),
        JobOutcome::Skipped(why) => format!("skipped: {why}"),
    };
    tracing::info!(invocation_id = %id, task = %job.task, "{line}");
    let mut answer = InvocationResponse::new()
        .log_all(msg.warning_logs())
        .log(line);
    if let JobOutcome::Ran(run) = outcome {
        answer = answer.return_value(serde_json::to_value(&run).expect("runs serialize"));
    }
    Ok(answer)
}
