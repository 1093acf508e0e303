//! The axum extractor for host invocations, and the failure semantics around it.
//!
//! # Failure semantics (§5, §11.5)
//!
//! Any non-2xx answer fails the invocation and makes the trigger retry: Service Bus
//! abandons the message and redelivers it **immediately**, up to `MaxDeliveryCount`,
//! then dead-letters it. So the extractor distinguishes kinds of bad input:
//!
//! - **Malformed envelope** (the body is not a JSON `{"Data":…,"Metadata":…}` object):
//!   a host/transport fault, not a property of one message. The extractor rejects it
//!   with [`ProtocolError`] → **400** and a clear message; the host logs the failure.
//! - **Undecodable typed payload** (a well-formed envelope whose trigger value or
//!   message body cannot be decoded): the extractor does *not* reject it.
//!   [`Invocation`] always carries the raw envelope ([`Invocation::raw`],
//!   [`Invocation::request`]) and the outcome in [`Invocation::payload`]. The handler
//!   then asks [`PayloadError::is_poison`]:
//!   - **poison** (the message itself is bad, e.g. its body is not the expected JSON):
//!     every redelivery would fail identically, so quarantine the raw envelope and
//!     answer [`InvocationResponse::quarantined`] (200). The host completes the message
//!     instead of spinning it through a hot retry loop. If quarantining fails, answer
//!     non-2xx so the broker keeps (and eventually dead-letters) the message.
//!   - **not poison** (the handler expects a binding function.json does not provide):
//!     every message would fail, so answer non-2xx ([`ProtocolError::Payload`]) and let
//!     them dead-letter visibly rather than quarantining a whole queue.
//! - **Transient failures** during processing (downstream 5xx, throttling): answer
//!   non-2xx; the broker redelivers with `DeliveryCount + 1`.
//!
//! ```no_run
//! use axum::http::StatusCode;
//! use axum::response::{IntoResponse, Response};
//! use syncbridge_protocol::{Invocation, InvocationResponse, ProtocolError, ServiceBusInvocation};
//!
//! #[derive(serde::Deserialize)]
//! struct Job {
//!     id: String,
//! }
//!
//! async fn quarantine(_raw: &[u8], _reason: &str) -> std::io::Result<()> {
//!     Ok(())
//! }
//!
//! async fn process_job(inv: Invocation<ServiceBusInvocation>) -> Response {
//!     let job = inv.payload.clone().and_then(|msg| msg.json::<Job>());
//!     let job = match job {
//!         Ok(job) => job,
//!         Err(e) if e.is_poison() => {
//!             if quarantine(&inv.raw, &e.to_string()).await.is_err() {
//!                 return StatusCode::SERVICE_UNAVAILABLE.into_response(); // retry later
//!             }
//!             return InvocationResponse::quarantined(e).into_response(); // 200: completed
//!         }
//!         Err(e) => return ProtocolError::from(e).into_response(), // 400: misconfiguration
//!     };
//!     // ... process; a transient failure answers non-2xx so the broker redelivers.
//!     InvocationResponse::new().log(format!("processed {}", job.id)).into_response()
//! }
//!
//! let app: axum::Router = axum::Router::new().route("/ProcessJob", axum::routing::post(process_job));
//! ```
//!
//! Handlers for which a host retry of bad input is harmless (timers: a failed run is
//! only logged) can call [`Invocation::into_payload_or_reject`].
//!
//! The extractor is for the JSON envelope modes (§4a–§4c). Forwarded/proxied HTTP
//! functions (§4d) receive the client's request itself and use ordinary axum
//! extractors; [`InvocationContext::from_parts`] still reads the headers.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::request::{FromInvocation, InvocationContext, InvocationRequest, PayloadError};
#[cfg(doc)]
use crate::response::InvocationResponse;

/// A request-body limit that fits every payload the host can send (use with
/// `axum::extract::DefaultBodyLimit::max`; axum's own default is 2 MB).
///
/// The largest is a Premium Service Bus message: up to 100 MB over AMQP (§7), which
/// arrives base64-encoded (×4/3) plus metadata. Standard-tier messages are ≤ 256 KB.
/// Oversized envelopes are rejected with 413 and therefore redelivered until they
/// dead-letter.
pub const RECOMMENDED_BODY_LIMIT: usize = 140 * 1024 * 1024;

/// One host invocation, decoded as `T` where possible.
#[derive(Debug, Clone)]
pub struct Invocation<T> {
    /// Invocation id, function name and host version.
    pub context: InvocationContext,
    /// The parsed envelope, always available (also when `payload` is `Err`).
    pub request: InvocationRequest,
    /// The exact request body bytes, for quarantining poison input verbatim.
    pub raw: Bytes,
    /// `T` decoded from the envelope, or why that is impossible (poison).
    pub payload: Result<T, PayloadError>,
}

impl<T> Invocation<T> {
    /// The decoded payload, or the poison error.
    ///
    /// # Errors
    /// The envelope could not be decoded as `T`.
    pub fn into_payload(self) -> Result<T, PayloadError> {
        self.payload
    }

    /// The decoded payload, or a [`ProtocolError::Payload`] (400) to return as-is.
    /// Only appropriate where a host retry is harmless (see the module docs).
    ///
    /// # Errors
    /// The envelope could not be decoded as `T`.
    pub fn into_payload_or_reject(self) -> Result<T, ProtocolError> {
        self.payload.map_err(ProtocolError::Payload)
    }
}

impl<S, T> FromRequest<S> for Invocation<T>
where
    S: Send + Sync,
    T: FromInvocation,
{
    type Rejection = ProtocolError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let headers = parts.headers.clone();
        let uri = parts.uri.clone();
        // `Bytes` honours axum's `DefaultBodyLimit` (2 MB unless the router raises it,
        // e.g. to `RECOMMENDED_BODY_LIMIT`).
        let raw = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(|rejection| ProtocolError::Body {
                status: rejection.status(),
                message: rejection.body_text(),
            })?;
        let request = parse_envelope(&raw)?;
        let context = InvocationContext::from_parts(&headers, &uri, Some(&request));
        let payload = T::from_invocation(&request);
        Ok(Self {
            context,
            request,
            raw,
            payload,
        })
    }
}

/// Parses envelope bytes, mapping failures to [`ProtocolError::MalformedEnvelope`].
///
/// # Errors
/// Empty body, not JSON, not an object, or `Data`/`Metadata` not objects.
pub fn parse_envelope(bytes: &[u8]) -> Result<InvocationRequest, ProtocolError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ProtocolError::MalformedEnvelope {
            message: "the request body is empty".to_owned(),
        });
    }
    InvocationRequest::from_slice(bytes).map_err(|e| ProtocolError::MalformedEnvelope {
        message: e.to_string(),
    })
}

/// Why an invocation request was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProtocolError {
    /// The body could not be read (e.g. over the body limit).
    #[error("could not read the invocation body: {message}")]
    Body {
        /// The status axum chose (413 for an oversized body).
        status: StatusCode,
        /// axum's explanation.
        message: String,
    },
    /// The body is not the host's JSON envelope.
    #[error(
        "malformed invocation envelope: expected a JSON object \
         {{\"Data\": {{...}}, \"Metadata\": {{...}}}} (functions-host.md §4): {message}"
    )]
    MalformedEnvelope {
        /// The parser's explanation.
        message: String,
    },
    /// The envelope is fine but the typed payload is not (see the module docs).
    #[error("undecodable invocation payload: {0}")]
    Payload(#[from] PayloadError),
}

impl ProtocolError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ProtocolError::Body { status, .. } => *status,
            ProtocolError::MalformedEnvelope { .. } | ProtocolError::Payload(_) => {
                StatusCode::BAD_REQUEST
            }
        }
    }
}

impl IntoResponse for ProtocolError {
    fn into_response(self) -> Response {
        (self.status(), format!("syncbridge-protocol: {self}")).into_response()
    }
}
