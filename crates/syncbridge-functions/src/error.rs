//! The handler error: what the host sees when an invocation fails.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A failure a retry may fix. The host gets a 500 and retries (Service Bus
/// redelivers; timers follow their retry policy). Logged once, here.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] syncbridge_core::StoreError),
    /// A queue send failed.
    #[error(transparent)]
    Queue(#[from] syncbridge_core::QueueError),
    /// Anything else transient.
    #[error("{0}")]
    Other(String),
}

impl IntoResponse for HandlerError {
    fn into_response(self) -> Response {
        tracing::error!(error = %self, "invocation failed; the host will retry");
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}
