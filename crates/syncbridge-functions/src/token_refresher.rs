//! `TokenRefresher` (timer).
//!
//! Plumbing only so far: it decodes the timer and reports the connections that
//! would be swept. Refreshing OAuth tokens is the credentials issue.

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use syncbridge_core::model::ConnectionStatus;
use syncbridge_protocol::{Invocation, InvocationResponse, TimerInvocation};

use crate::scheduler::HandlerErrorOr;
use crate::state::AppState;

/// The function name.
pub const FUNCTION: &str = "TokenRefresher";

/// `POST /TokenRefresher`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(&format!("/{FUNCTION}"), post(handle))
        .with_state(state)
}

async fn handle(
    State(state): State<AppState>,
    inv: Invocation<TimerInvocation>,
) -> Result<InvocationResponse, HandlerErrorOr> {
    let id = inv.context.invocation_id.clone().unwrap_or_default();
    let _timer = inv.into_payload_or_reject()?;
    let conns = state
        .store
        .list_connections(None)
        .await
        .map_err(crate::HandlerError::from)?;
    let active = conns
        .iter()
        .filter(|c| c.status == ConnectionStatus::Active)
        .count();
    let line = format!(
        "token sweep: {active} active connection(s) checked; token refresh not implemented yet"
    );
    tracing::info!(invocation_id = %id, "{line}");
    Ok(InvocationResponse::new().log(line))
}
