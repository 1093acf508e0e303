//! `TokenRefresher` (timer): refreshes OAuth tokens that expire within their
//! margin, and idle ones at least daily, before any worker needs them (the
//! workers refresh on demand as the backstop). One refresh per credential at a
//! time across every process; see `syncbridge-credentials`.

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use syncbridge_protocol::{Invocation, InvocationResponse, TimerInvocation};

use crate::scheduler::HandlerErrorOr;
use crate::state::{AppState, RefresherState};

/// The function name.
pub const FUNCTION: &str = "TokenRefresher";

/// Most credentials one invocation refreshes (the rest wait for the next tick).
const SWEEP_LIMIT: usize = 5000;

/// `POST /TokenRefresher`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(&format!("/{FUNCTION}"), post(handle))
        .with_state(state.refresher())
}

async fn handle(
    State(state): State<RefresherState>,
    inv: Invocation<TimerInvocation>,
) -> Result<InvocationResponse, HandlerErrorOr> {
    let _timer = inv.into_payload_or_reject()?;
    let report = state
        .credentials
        .sweep(state.clock.now(), SWEEP_LIMIT)
        .await
        .map_err(crate::HandlerError::Sweep)?;
    let line = format!(
        "token sweep: {} checked, {} refreshed, {} failed, {} need re-authorization",
        report.checked, report.refreshed, report.failed, report.needs_reauth
    );
    tracing::info!(
        checked = report.checked,
        refreshed = report.refreshed,
        failed = report.failed,
        needs_reauth = report.needs_reauth,
        "token sweep"
    );
    Ok(InvocationResponse::new()
        .log(line)
        .return_value(serde_json::to_value(report).unwrap_or_default()))
}
