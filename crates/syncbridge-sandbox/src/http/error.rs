//! HubSpot's error body: `{"status":"error","message":…,"correlationId":…,"category":…}`.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::render::json_bytes;
use crate::store::StoreError;

/// An error answered in HubSpot's shape.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) category: &'static str,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        category: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            category,
            message: message.into(),
        }
    }

    pub(crate) fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message)
    }

    pub(crate) fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            "resource not found",
        )
    }
}

fn correlation_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("5b5d0c1e-0000-4000-8000-{n:012x}")
}

impl ApiError {
    /// The JSON body bytes (for responses stored under an idempotency key).
    pub(crate) fn body(&self) -> Vec<u8> {
        let body = json!({
            "status": "error",
            "message": self.message,
            "correlationId": correlation_id(),
            "category": self.category,
        });
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_bytes(self.status, self.body())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::not_found(),
            StoreError::UnknownObject(_)
            | StoreError::ReadOnly(_)
            | StoreError::InvalidCursor(_) => ApiError::validation(e.to_string()),
            StoreError::Conflict { .. } => {
                ApiError::new(StatusCode::CONFLICT, "CONFLICT", e.to_string())
            }
        }
    }
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found()
}
