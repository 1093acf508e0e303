//! `SyncScheduler` (timer): one [`syncbridge_core::scheduler::tick`] per
//! invocation. Every inbound job it enqueues gets a new correlation id
//! ([`crate::correlation::Correlating`]), logged as `job enqueued`.

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use syncbridge_core::scheduler::{SchedulerConfig, tick};
use syncbridge_protocol::{Invocation, InvocationResponse, ProtocolError, TimerInvocation};

use crate::error::HandlerError;
use crate::state::{AppState, SchedulerState};

/// The function name (folder of its function.json).
pub const FUNCTION: &str = "SyncScheduler";

/// `POST /SyncScheduler`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(&format!("/{FUNCTION}"), post(handle))
        .with_state(state.scheduler())
}

async fn handle(
    State(state): State<SchedulerState>,
    inv: Invocation<TimerInvocation>,
) -> Result<InvocationResponse, HandlerErrorOr> {
    let timer = inv.into_payload_or_reject()?;
    let cfg = SchedulerConfig {
        lease_for: state.lease_for,
        ..Default::default()
    };
    // Core's tick sends plain jobs; each gets a new correlation id on its way out.
    let queue = crate::correlation::Correlating(state.queue.clone());
    let report = tick(&*state.store, &queue, &*state.clock, &*state.events, &cfg)
        .await
        .map_err(HandlerError::Tick)?;
    tracing::info!(
        past_due = timer.is_past_due,
        enqueued = report.enqueued,
        requeued_expired = report.requeued_expired,
        stalled = report.stalled.len(),
        "scheduler tick"
    );
    Ok(InvocationResponse::new()
        .log(format!(
            "enqueued {} job(s), re-queued {} expired lease(s), {} lost race(s), {} newly stalled",
            report.enqueued,
            report.requeued_expired,
            report.lost_races,
            report.stalled.len()
        ))
        .return_value(serde_json::to_value(&report).expect("report serializes")))
}

/// Either a protocol rejection (400) or a retryable failure (500).
#[derive(Debug)]
pub enum HandlerErrorOr {
    /// Malformed invocation.
    Protocol(ProtocolError),
    /// Retryable failure.
    Handler(HandlerError),
}

impl From<ProtocolError> for HandlerErrorOr {
    fn from(e: ProtocolError) -> Self {
        HandlerErrorOr::Protocol(e)
    }
}

impl From<HandlerError> for HandlerErrorOr {
    fn from(e: HandlerError) -> Self {
        HandlerErrorOr::Handler(e)
    }
}

impl axum::response::IntoResponse for HandlerErrorOr {
    fn into_response(self) -> axum::response::Response {
        match self {
            HandlerErrorOr::Protocol(e) => {
                tracing::warn!(error = %e, "malformed invocation");
                e.into_response()
            }
            HandlerErrorOr::Handler(e) => e.into_response(),
        }
    }
}
