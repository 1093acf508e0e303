//! `SyncOutboundWorker` (Service Bus queue `sync-outbound`).
//!
//! Plumbing only so far: it decodes the job (quarantining poison), checks the
//! lease, and releases the task. Pushing local changes to providers is the
//! outbound-sync issue; until then an outbound job reports that it pushed
//! nothing, truthfully.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use syncbridge_protocol::{Invocation, InvocationResponse, ServiceBusInvocation};

use crate::error::HandlerError;
use crate::queue_job::{Decoded, decode};
use crate::state::AppState;

/// The function name.
pub const FUNCTION: &str = "SyncOutboundWorker";

/// `POST /SyncOutboundWorker`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(&format!("/{FUNCTION}"), post(handle))
        .with_state(state)
}

async fn handle(
    State(state): State<AppState>,
    inv: Invocation<ServiceBusInvocation>,
) -> Result<InvocationResponse, HandlerError> {
    let id = inv.context.invocation_id.clone().unwrap_or_default();
    let job = match decode(
        &*state.store,
        &*state.events,
        FUNCTION,
        inv,
        state.clock.now(),
    )
    .await?
    {
        Decoded::Job(b) => b.0,
        Decoded::Quarantined(answer) => return Ok(answer),
    };
    let now = state.clock.now();
    let line = match state.store.get_task(&job.task).await? {
        Some(task)
            if task
                .lease
                .as_ref()
                .is_some_and(|l| l.token == job.lease_token) =>
        {
            let next = now.add(Duration::from_secs(task.interval_secs.into()));
            state
                .store
                .release_task(&task.id, &job.lease_token, next, now)
                .await?;
            format!(
                "outbound job for {}: no outbound changes pushed (outbound push not implemented yet)",
                job.task
            )
        }
        Some(_) => format!("stale outbound job for {}: lease superseded", job.task),
        None => format!("outbound job for unknown task {}", job.task),
    };
    tracing::info!(invocation_id = %id, "{line}");
    Ok(InvocationResponse::new().log(line))
}
