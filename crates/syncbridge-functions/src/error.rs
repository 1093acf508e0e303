//! The handler error: what the host sees when an invocation fails.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use syncbridge_core::credentials::CredentialError;
use syncbridge_core::pipeline::outbound::PushError;
use syncbridge_core::scheduler::TickError;
use syncbridge_protocol::PayloadError;

/// A failure a retry may fix, or a deployment that must be fixed. The host
/// gets a 500 and retries (Service Bus redelivers, dead-lettering in the
/// end; timers follow their retry policy). Logged once, here. Each variant
/// keeps the failure's kind (store, queue, provider, configuration) to the
/// edge instead of flattening it into text.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] syncbridge_core::StoreError),
    /// A queue send failed.
    #[error(transparent)]
    Queue(#[from] syncbridge_core::QueueError),
    /// Configuration: the function.json does not declare the binding the
    /// handler reads, so every message would fail alike (not poison).
    #[error("cannot read the invocation: {0}")]
    Binding(PayloadError),
    /// A push failed (its store or queue, or a record changing too fast).
    #[error(transparent)]
    Push(#[from] PushError),
    /// The scheduler's tick failed (its store or queue).
    #[error("scheduler tick failed: {0}")]
    Tick(#[from] TickError),
    /// The token sweep failed (the store, the key store or a provider).
    #[error("token sweep failed: {0}")]
    Sweep(#[from] CredentialError),
}

/// The class of a failed invocation, carried in the response's extensions
/// to the heartbeat (`serve::app`), never on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureKind(pub &'static str);

impl HandlerError {
    /// The failure's class: `store`, `queue`, `binding`, `push`, `tick`, `sweep`.
    pub fn kind(&self) -> &'static str {
        match self {
            HandlerError::Store(_) => "store",
            HandlerError::Queue(_) => "queue",
            HandlerError::Binding(_) => "binding",
            HandlerError::Push(_) => "push",
            HandlerError::Tick(_) => "tick",
            HandlerError::Sweep(_) => "sweep",
        }
    }
}

impl IntoResponse for HandlerError {
    fn into_response(self) -> Response {
        tracing::error!(error = %self, "invocation failed; the host will retry");
        let kind = FailureKind(self.kind());
        let mut response = (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response();
        response.extensions_mut().insert(kind);
        response
    }
}
