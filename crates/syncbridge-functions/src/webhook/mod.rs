//! `WebhookReceiver` (HTTP-only function, proxied so the raw body arrives byte
//! for byte): `POST /api/webhooks/{connectionId}`.
//!
//! The accept path does only this, in order: look up the connection's webhook
//! settings; verify the signature over the raw bytes (constant time, timestamp
//! tolerance from the injected clock, every active secret); answer provider
//! handshakes; dedup by the provider's event id (or the body hash) inside the
//! window while storing the event durably; enqueue one follow-up job per
//! routed task with a deterministic `MessageId`; answer 202. Everything else
//! happens behind the queue. The jobs carry the delivery's correlation id (the
//! provider's delivery id, else a new UUID; see [`crate::correlation`]).
//!
//! Bad input gets a 4xx with a message that never contains a secret, nothing is
//! stored or enqueued, and a counter is incremented. That includes the body:
//! past `SYNCBRIDGE_WEBHOOK_MAX_BYTES` it is 413 (after reading the rest and
//! throwing it away, see `read_body`), stalled past the body read timeout
//! 408. Stored settings no delivery could pass — a scheme that does not
//! parse, secrets that are unusable for it or do not open — answer 403
//! saying so: it is the operator's to fix, and a 5xx would only make the
//! provider retry. The secrets are stored sealed and opened with the
//! connection's settings (cached for [`CONFIG_TTL`]).
//!
//! # Throughput
//!
//! Two things keep the accept path short. Connection settings and the
//! connection's inbound tasks are cached in memory for [`CONFIG_TTL`] (a new
//! secret or task takes effect within that time). And accepted events are
//! written by one writer task that *group-commits*: every event waiting at that
//! moment is deduplicated and stored in one store transaction, and their
//! follow-up jobs are enqueued in one queue batch, before each request gets its
//! answer. Nothing is acknowledged before it is durable. The store and the
//! enqueue are two pipelined stages (the next batch is stored while the
//! previous one is enqueued; answers still go out in order, after the enqueue),
//! and on the embedded backends a background task checkpoints the SQLite WALs
//! so that commits rarely pay for a checkpoint's `fsync`s.
//!
//! # Layout
//!
//! This module is the HTTP shim: it reads, verifies and answers. What a
//! verified event becomes (routing, dedup key, follow-up message ids, and
//! the replay `syncbridge quarantine replay` runs) is core's [`syncbridge_core::pipeline::webhook`]; the writer is
//! `group_commit`'s; the settings cache `connections`'s; the WAL
//! checkpointer and the pruner `upkeep`'s.

mod body;
mod connections;
mod group_commit;
mod upkeep;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde_json::json;
use syncbridge_core::model::{QuarantinedMessage, WebhookEvent};
use syncbridge_core::pipeline::webhook::{self as domain, Delivery, Route};
use syncbridge_core::{ConnectionId, Timestamp};
use syncbridge_signatures::{HandshakeResponse, Request, Scheme, Verified, WebhookSecret};
use tokio::sync::{mpsc, oneshot};

use self::body::{BodyFault, read_body};
use self::connections::{ConfigCache, ConnInfo};
use self::group_commit::{Pending, WriteError, Written};
use crate::state::AppState;

pub use self::connections::CONFIG_TTL;

/// The function name.
pub const FUNCTION: &str = "WebhookReceiver";

/// Outcome counters, readable at `GET /api/webhooks/_stats`.
#[derive(Debug, Default)]
pub struct WebhookCounters {
    counts: std::sync::Mutex<BTreeMap<&'static str, u64>>,
    accepted: AtomicU64,
}

impl WebhookCounters {
    fn bump(&self, what: &'static str) {
        *self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(what)
            .or_default() += 1;
    }

    /// Counts by outcome.
    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        let mut m = self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        m.insert("accepted", self.accepted.load(Ordering::Relaxed));
        m
    }
}

#[derive(Clone, Debug)]
struct WebhookState {
    app: AppState,
    counters: Arc<WebhookCounters>,
    cache: Arc<ConfigCache>,
    writer: mpsc::Sender<Pending>,
}

/// `POST /api/webhooks/{connectionId}` and `GET /api/webhooks/_stats`.
pub fn router(state: AppState) -> Router {
    router_with_counters(state, Arc::default())
}

/// The router, sharing `counters` with the caller (tests, benchmarks). Must be
/// called inside a Tokio runtime (it starts the writer task).
pub fn router_with_counters(state: AppState, counters: Arc<WebhookCounters>) -> Router {
    let tx = group_commit::spawn(state.clone());
    upkeep::spawn_checkpointer(&state, tx.downgrade());
    upkeep::spawn_pruner(&state, tx.downgrade());
    Router::new()
        .route("/api/webhooks/_stats", get(stats))
        .route("/api/webhooks/{connection_id}", post(receive))
        .route(&format!("/{FUNCTION}"), any(envelope_refused))
        .with_state(WebhookState {
            app: state,
            counters,
            cache: Arc::default(),
            writer: tx,
        })
}

/// The host invokes `POST /<FunctionName>` with its JSON envelope when it does
/// not proxy the request (`enableProxyingHttpRequest` not honoured: an old
/// host, or a plan or setting that ignores it; see docs/azure.md). The
/// envelope carries a re-encoded body, over which no signature can be
/// verified, so nothing is accepted; a 500 and an error log make the
/// misconfiguration visible (the provider retries once it is fixed) instead
/// of a silent 404.
async fn envelope_refused(State(s): State<WebhookState>) -> Response {
    s.counters.bump("not_proxied");
    tracing::error!(
        function = FUNCTION,
        "invoked with the Functions host's JSON envelope instead of the proxied request: \
         customHandler.enableProxyingHttpRequest is not in effect on this host; \
         webhooks cannot be verified and are refused"
    );
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        axum::Json(json!({
            "error": "the Functions host is not proxying HTTP requests \
                      (host.json customHandler.enableProxyingHttpRequest not in effect); \
                      webhook deliveries cannot be verified"
        })),
    )
        .into_response()
}

async fn stats(State(s): State<WebhookState>) -> Response {
    axum::Json(s.counters.snapshot()).into_response()
}

/// A JSON answer from ready text.
fn json_text(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Parses a connection's scheme setting: a scheme name, or a JSON object for `hmac`.
pub fn parse_scheme(text: &str) -> Result<Scheme, String> {
    if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| format!("invalid scheme configuration: {e}"))
    } else {
        text.parse::<Scheme>().map_err(|e| e.to_string())
    }
}

/// A refused delivery: its status, the counter it bumps, and a message that
/// never contains a secret.
#[derive(Debug)]
struct Rejection {
    status: StatusCode,
    what: &'static str,
    message: String,
}

impl Rejection {
    fn new(status: StatusCode, what: &'static str, message: impl Into<String>) -> Self {
        Rejection {
            status,
            what,
            message: message.into(),
        }
    }

    fn unknown_connection() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "unknown_connection",
            "unknown connection",
        )
    }

    fn writer_stopped() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "event writer stopped",
        )
    }

    /// Counts it, logs it and answers it.
    fn respond(self, counters: &WebhookCounters) -> Response {
        counters.bump(self.what);
        tracing::info!(
            status = self.status.as_u16(),
            outcome = self.what,
            "webhook rejected: {}",
            self.message
        );
        (self.status, axum::Json(json!({ "error": self.message }))).into_response()
    }
}

impl From<BodyFault> for Rejection {
    fn from(fault: BodyFault) -> Self {
        match fault {
            BodyFault::TooLarge(limit) => Rejection::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("the body is larger than {limit} bytes (SYNCBRIDGE_WEBHOOK_MAX_BYTES)"),
            ),
            BodyFault::TimedOut(e) => {
                Rejection::new(StatusCode::REQUEST_TIMEOUT, "body_timeout", e)
            }
            BodyFault::Broken(e) => Rejection::new(
                StatusCode::BAD_REQUEST,
                "broken_body",
                format!("the body could not be read: {e}"),
            ),
        }
    }
}

/// Maps a failed verification to its answer. Settings no delivery could pass
/// are the operator's to fix: a 403 that says so (a 5xx would only make the
/// provider retry).
fn verify_rejection(e: syncbridge_signatures::VerifyError) -> Rejection {
    use syncbridge_signatures::VerifyError as V;
    let (status, what) = match &e {
        V::MissingHeader(_) | V::MalformedHeader { .. } | V::NoSupportedSignature(_) => {
            (StatusCode::BAD_REQUEST, "malformed_signature")
        }
        V::UnsupportedContent(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_content"),
        V::TimestampOutsideTolerance { .. } => (StatusCode::UNAUTHORIZED, "stale_timestamp"),
        V::NoSecrets | V::InvalidSecret(_) | V::InvalidConfig(_) => {
            let message = format!(
                "this connection's webhook settings cannot verify any delivery ({e}); \
                 set them again with `syncbridge connections add --replace`"
            );
            return Rejection::new(StatusCode::FORBIDDEN, "bad_configuration", message);
        }
        _ => (StatusCode::UNAUTHORIZED, "bad_signature"),
    };
    Rejection::new(status, what, e.to_string())
}

/// The first (client-side) value of an `X-Forwarded-*` header.
fn forwarded<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let v = headers.get(name)?.to_str().ok()?;
    let first = v.split(',').next()?.trim();
    (!first.is_empty()).then_some(first)
}

/// The URL the provider called (signed by Twilio, Square, HubSpot v2/v3 and
/// `{url}` templates). Behind the Functions host's proxy (and the local
/// host's) `Host` names this handler; the caller's host and scheme arrive as
/// `X-Forwarded-Host` / `X-Forwarded-Proto`.
fn called_url(headers: &HeaderMap, uri: &Uri) -> String {
    let host = forwarded(headers, "x-forwarded-host")
        .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()))
        .unwrap_or("localhost");
    let proto = forwarded(headers, "x-forwarded-proto").unwrap_or("http");
    format!("{proto}://{host}{uri}")
}

/// The headers whose values are text, as the verifier takes them.
fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(k, v)| {
            v.to_str()
                .ok()
                .map(|v| (k.as_str().to_owned(), v.to_owned()))
        })
        .collect()
}

/// A connection's usable verification settings at one instant.
struct Verifier<'a> {
    scheme: &'a Scheme,
    secrets: &'a [WebhookSecret],
    now: Timestamp,
    tolerance_secs: i64,
}

impl<'a> Verifier<'a> {
    /// The connection's scheme and secrets, or the 403 saying why they cannot
    /// verify any delivery.
    fn of(info: &'a ConnInfo, now: Timestamp, tolerance_secs: i64) -> Result<Self, Rejection> {
        let scheme = info.scheme.as_ref().map_err(|e| {
            Rejection::new(
                StatusCode::FORBIDDEN,
                "bad_scheme",
                format!("this connection's webhook scheme cannot be used: {e}"),
            )
        })?;
        let secrets = info
            .secrets
            .as_ref()
            .map_err(|e| Rejection::new(StatusCode::FORBIDDEN, "bad_configuration", e.clone()))?;
        Ok(Verifier {
            scheme,
            secrets,
            now,
            tolerance_secs,
        })
    }

    fn check(&self, secrets: &[WebhookSecret], req: &Request<'_>) -> Result<Verified, Rejection> {
        syncbridge_signatures::verify(
            self.scheme,
            secrets,
            req,
            self.now.as_unix_secs(),
            self.tolerance_secs,
        )
        .map_err(verify_rejection)
    }

    /// Verifies the signature with every active secret.
    fn verify(&self, req: &Request<'_>) -> Result<Verified, Rejection> {
        self.check(self.secrets, req)
    }

    /// The answer to a provider handshake, when the body is one. It is keyed
    /// with the secret the provider signed with (Zoom's): during a rotation,
    /// the one that verified.
    fn handshake(&self, req: &Request<'_>) -> Option<HandshakeResponse> {
        let first = self.secrets.first()?;
        syncbridge_signatures::handshake(self.scheme, first, req.body)?;
        let signer = self
            .secrets
            .iter()
            .find(|s| self.check(std::slice::from_ref(*s), req).is_ok())
            .unwrap_or(first);
        syncbridge_signatures::handshake(self.scheme, signer, req.body)
    }
}

/// The HTTP side of a delivery, as the handler received it.
struct Call {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

async fn receive(
    State(s): State<WebhookState>,
    Path(connection_id): Path<String>,
    OriginalUri(uri): OriginalUri,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let call = Call {
        method,
        uri,
        headers,
    };
    match accept(&s, connection_id, &call, body).await {
        Ok(answer) => answer,
        Err(rejected) => rejected.respond(&s.counters),
    }
}

/// The accept path, phase by phase: read the body, find the connection,
/// verify, answer a handshake, or route and hand the event to the writer.
async fn accept(
    s: &WebhookState,
    connection_id: String,
    call: &Call,
    body: Body,
) -> Result<Response, Rejection> {
    let app = &s.app;
    let body = read_body(body, app.settings.webhook_max_bytes).await?;
    let conn_id =
        ConnectionId::parse(connection_id).map_err(|_| Rejection::unknown_connection())?;
    tracing::Span::current().record("connection", conn_id.as_str());
    let info = s
        .cache
        .get(app, &conn_id)
        .await
        .map_err(|e| {
            Rejection::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                e.to_string(),
            )
        })?
        .ok_or_else(Rejection::unknown_connection)?;
    let now = app.clock.now();
    let tolerance = app.settings.webhook_tolerance.as_secs() as i64;
    let verifier = Verifier::of(&info, now, tolerance)?;
    let url = called_url(&call.headers, &call.uri);
    let header_list = header_pairs(&call.headers);
    let req = Request {
        method: call.method.as_str(),
        url: &url,
        headers: &header_list,
        body: &body,
    };
    let verified = verifier.verify(&req)?;
    if let Some(h) = verifier.handshake(&req) {
        s.counters.bump("handshake");
        return Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, h.content_type)],
            h.body,
        )
            .into_response());
    }
    let routed = route(&info, conn_id, verified, &body, now);
    let written = s.write(routed).await?;
    Ok(s.written_response(written))
}

/// A verified event with what it routes to, before the writer has it.
struct Routed {
    event: WebhookEvent,
    messages: Vec<syncbridge_core::OutboundMessage>,
    quarantine: Option<QuarantinedMessage>,
}

/// The event to store and its follow-up jobs, or its quarantine entry
/// ([`domain::route`]).
fn route(
    info: &ConnInfo,
    conn_id: ConnectionId,
    verified: Verified,
    body: &Bytes,
    now: Timestamp,
) -> Routed {
    // The provider's delivery id correlates the follow-up jobs' logs with the
    // delivery (and with the provider's own delivery log); else a new id.
    let correlation_id = verified
        .event_id
        .clone()
        .unwrap_or_else(crate::correlation::new_id);
    tracing::Span::current().record("correlation_id", correlation_id.as_str());
    let dedup_key = domain::dedup_key(verified.event_id, body);
    let delivery = Delivery {
        dedup_key: &dedup_key,
        correlation_id: &correlation_id,
        body,
    };
    let (messages, quarantine) = match domain::route(&info.target, delivery) {
        Route::FollowUps(m) => (m, None),
        Route::Unmatched { reason } => (
            Vec::new(),
            Some(QuarantinedMessage {
                source: FUNCTION.into(),
                message_id: Some(dedup_key.clone()),
                connection: Some(info.target.conn.id.clone()),
                reason,
                body: body.to_vec(),
                at: now,
            }),
        ),
    };
    let event = WebhookEvent {
        connection: conn_id,
        dedup_key,
        received_at: now,
        body: body.to_vec(),
    };
    Routed {
        event,
        messages,
        quarantine,
    }
}

impl WebhookState {
    /// Hands the event to the group-commit writer and waits until it is
    /// stored and its jobs are enqueued (or the writer says why not).
    async fn write(&self, r: Routed) -> Result<Written, Rejection> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            event: r.event,
            jobs: r.messages.len(),
            messages: r.messages,
            quarantine: r.quarantine,
            reply,
        };
        if self.writer.send(pending).await.is_err() {
            return Err(Rejection::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "event writer stopped",
            ));
        }
        match answer.await {
            Ok(Ok(written)) => Ok(written),
            Ok(Err(e)) => Err(Rejection::from(e)),
            Err(_) => Err(Rejection::writer_stopped()),
        }
    }

    /// The answer to a delivery the writer took.
    fn written_response(&self, written: Written) -> Response {
        match written {
            Written::Enqueued(jobs) => {
                self.counters.accepted.fetch_add(1, Ordering::Relaxed);
                tracing::info!(jobs, "webhook accepted");
                // What `Json(json!({"status": "accepted", "jobs": jobs}))` writes, without the tree.
                json_text(
                    StatusCode::ACCEPTED,
                    format!(r#"{{"jobs":{jobs},"status":"accepted"}}"#),
                )
            }
            Written::Duplicate => {
                self.counters.bump("duplicate");
                json_text(StatusCode::OK, r#"{"status":"duplicate"}"#.to_owned())
            }
            Written::Quarantined => {
                self.counters.bump("quarantined");
                tracing::warn!(
                    reason = "names no object a sync task covers",
                    "webhook event quarantined"
                );
                (
                    StatusCode::ACCEPTED,
                    axum::Json(json!({ "status": "quarantined" })),
                )
                    .into_response()
            }
        }
    }
}

impl From<WriteError> for Rejection {
    fn from(e: WriteError) -> Self {
        Rejection::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What was tried: deliveries to 10,050 distinct connection ids nobody
    /// configured (no signature needed to get this far). What must hold: the
    /// settings cache stays within its bound.
    #[tokio::test]
    async fn the_settings_cache_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let app = AppState::embedded(crate::Settings::for_data_dir(dir.path())).unwrap();
        let cache = ConfigCache::default();
        for n in 0..connections::CACHE_CAP + 50 {
            let id = ConnectionId::parse(format!("nobody{n}")).unwrap();
            assert!(cache.get(&app, &id).await.unwrap().is_none());
        }
        let len = cache.map.lock().unwrap().len();
        assert!(len <= connections::CACHE_CAP, "{len} entries");
    }
}
