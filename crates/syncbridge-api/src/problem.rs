//! Errors as RFC 9457 `application/problem+json`, each with a stable `type`.
//!
//! One error enum for the API's boundary ([`ApiError`]); every handler
//! returns it, and every refusal, including the extractors' (bad JSON, a
//! malformed query, an oversize body), leaves as a problem document.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use syncbridge_core::StoreError;
use utoipa::ToSchema;

/// Where the stable problem types live: `urn:syncbridge:problem:<slug>`.
pub const TYPE_PREFIX: &str = "urn:syncbridge:problem:";

/// An RFC 9457 problem document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
pub struct Problem {
    /// Stable identifier of the kind of problem (`urn:syncbridge:problem:<slug>`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong this time.
    pub detail: String,
}

/// Why an API call was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No key, or one that is unknown or revoked.
    #[error("a valid API key is required: Authorization: Bearer sbk_…")]
    Unauthorized,
    /// The key's scope is below what the route needs.
    #[error("this key's scope is {have}; this call needs {needed}")]
    Forbidden {
        /// The key's scope.
        have: &'static str,
        /// The scope the route needs.
        needed: &'static str,
    },
    /// A change made with the dashboard's session cookie lacks the
    /// session's CSRF token (header `X-CSRF-Token`).
    #[error("a change made with a session cookie needs the header X-CSRF-Token")]
    Csrf,
    /// The named thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Input that cannot be accepted (parameters, body, ids).
    #[error("{0}")]
    InvalidRequest(String),
    /// A cursor this API did not hand out (or for another list).
    #[error("{0}")]
    InvalidCursor(String),
    /// The body is larger than the API accepts.
    #[error("{0}")]
    TooLarge(String),
    /// The request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// The object cannot be pushed (its connector has no write endpoints).
    #[error("{0}")]
    ReadOnlyObject(String),
    /// A conflict-policy document the connection cannot take (an unknown
    /// policy, or an object or field its connector lacks).
    #[error("{0}")]
    InvalidPolicies(String),
    /// The `Idempotency-Key` was used for another request.
    #[error("Idempotency-Key {0:?} was used for another request (method, path or body differ)")]
    IdempotencyKeyReused(String),
    /// The first request under this `Idempotency-Key` has not answered yet.
    #[error("a request under Idempotency-Key {0:?} is still being processed; retry later")]
    IdempotencyKeyInFlight(String),
    /// `If-Match` names a version the resource no longer has.
    #[error("{0}")]
    PreconditionFailed(String),
    /// Notification rules that do not fit the configuration (an unknown
    /// channel, kind or severity); the detail names the entry.
    #[error("{0}")]
    InvalidRules(String),
    /// Nothing at this path.
    #[error("no route at {0}")]
    NoRoute(String),
    /// The path exists, the method does not.
    #[error("method not allowed here")]
    MethodNotAllowed,
    /// A backend (store, queue) is unavailable; retrying may succeed.
    #[error("{0}")]
    Unavailable(String),
    /// A fault in stored data or in this service.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// Status, type slug and title.
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        use ApiError::*;
        match self {
            Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden", "Insufficient scope"),
            Csrf => (StatusCode::FORBIDDEN, "csrf", "CSRF token required"),
            NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            InvalidRequest(_) => (
                StatusCode::BAD_REQUEST,
                "invalid-request",
                "Invalid request",
            ),
            InvalidCursor(_) => (StatusCode::BAD_REQUEST, "invalid-cursor", "Invalid cursor"),
            TooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                "Request body too large",
            ),
            Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            ReadOnlyObject(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "read-only-object",
                "Object cannot be pushed",
            ),
            InvalidPolicies(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-conflict-policies",
                "Invalid conflict policies",
            ),
            IdempotencyKeyReused(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency key reused",
            ),
            IdempotencyKeyInFlight(_) => (
                StatusCode::CONFLICT,
                "idempotency-key-in-flight",
                "Idempotency key in flight",
            ),
            PreconditionFailed(_) => (
                StatusCode::PRECONDITION_FAILED,
                "precondition-failed",
                "Precondition failed",
            ),
            InvalidRules(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-rules",
                "Invalid notification rules",
            ),
            NoRoute(_) => (StatusCode::NOT_FOUND, "no-route", "No such route"),
            MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Temporarily unavailable",
            ),
            Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
            ),
        }
    }

    /// The problem document.
    pub fn problem(&self) -> Problem {
        let (status, slug, title) = self.parts();
        Problem {
            kind: format!("{TYPE_PREFIX}{slug}"),
            title: title.into(),
            status: status.as_u16(),
            detail: self.to_string(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::NotFound(format!("{what} not found")),
            StoreError::Conflict(what) => {
                ApiError::Conflict(format!("concurrent update of {what}; try again"))
            }
            StoreError::Unavailable(_) | StoreError::Detached(_) => {
                ApiError::Unavailable(format!("the store is unavailable: {e}"))
            }
            StoreError::LeaseLost(_) | StoreError::Corrupt(_) => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::BytesRejection(b) if b.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::TooLarge(b.body_text())
            }
            other => ApiError::InvalidRequest(format!("request body: {}", other.body_text())),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::InvalidRequest(format!("query: {}", r.body_text()))
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::InvalidRequest(format!("path: {}", r.body_text()))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let p = self.problem();
        if p.status >= 500 {
            tracing::warn!(status = p.status, problem = %p.kind, detail = %p.detail, "api call failed");
        }
        let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (status, axum::Json(p)).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

/// The fallback for paths no route matches.
pub(crate) async fn no_route(uri: axum::http::Uri) -> ApiError {
    ApiError::NoRoute(uri.path().to_owned())
}

/// The fallback for a known path with another method.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
