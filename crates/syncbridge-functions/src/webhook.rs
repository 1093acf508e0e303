//! `WebhookReceiver` (HTTP-only function, proxied so the raw body arrives byte
//! for byte): `POST /api/webhooks/{connectionId}`.
//!
//! The accept path does only this, in order: look up the connection's webhook
//! settings; verify the signature over the raw bytes (constant time, timestamp
//! tolerance from the injected clock, every active secret); answer provider
//! handshakes; dedup by the provider's event id (or the body hash) inside the
//! window while storing the event durably; enqueue one follow-up job per
//! routed task with a deterministic `MessageId`; answer 202. Everything else
//! happens behind the queue.
//!
//! Bad input gets a 4xx with a message that never contains a secret, nothing is
//! stored or enqueued, and a counter is incremented.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use syncbridge_core::model::{
    Direction, JobReason, Priority, QuarantinedMessage, SyncJob, WebhookEvent,
};
use syncbridge_core::{ConnectionId, OutboundMessage, QueueName};
use syncbridge_signatures::{Request, Scheme, WebhookSecret};

use crate::state::AppState;

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
}

/// `POST /api/webhooks/{connectionId}` and `GET /api/webhooks/_stats`.
pub fn router(state: AppState) -> Router {
    router_with_counters(state, Arc::default())
}

/// The router, sharing `counters` with the caller (tests, benchmarks).
pub fn router_with_counters(state: AppState, counters: Arc<WebhookCounters>) -> Router {
    let limit = state.settings.webhook_max_bytes;
    Router::new()
        .route("/api/webhooks/_stats", get(stats))
        .route("/api/webhooks/{connection_id}", post(receive))
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .with_state(WebhookState {
            app: state,
            counters,
        })
}

async fn stats(State(s): State<WebhookState>) -> Response {
    axum::Json(s.counters.snapshot()).into_response()
}

fn reject(s: &WebhookState, status: StatusCode, what: &'static str, message: String) -> Response {
    s.counters.bump(what);
    tracing::info!(
        status = status.as_u16(),
        outcome = what,
        "webhook rejected: {message}"
    );
    (status, axum::Json(json!({ "error": message }))).into_response()
}

/// Parses a connection's scheme setting: a scheme name, or a JSON object for `hmac`.
pub fn parse_scheme(text: &str) -> Result<Scheme, String> {
    if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| format!("invalid scheme configuration: {e}"))
    } else {
        text.parse::<Scheme>().map_err(|e| e.to_string())
    }
}

/// Object types an event body names (`object`, `objectType`, `object_type`,
/// at the top level or in each element of a batch).
fn named_objects(body: &[u8]) -> Vec<String> {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let items: Vec<&Value> = match &v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    let mut out: Vec<String> = items
        .into_iter()
        .filter_map(|i| {
            ["object", "objectType", "object_type"]
                .iter()
                .find_map(|k| i.get(*k)?.as_str())
        })
        .map(str::to_owned)
        .collect();
    out.sort();
    out.dedup();
    out
}

async fn receive(
    State(s): State<WebhookState>,
    Path(connection_id): Path<String>,
    OriginalUri(uri): OriginalUri,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let app = &s.app;
    let Ok(conn_id) = ConnectionId::parse(connection_id) else {
        return reject(
            &s,
            StatusCode::NOT_FOUND,
            "unknown_connection",
            "unknown connection".into(),
        );
    };
    let conn = match app.store.get_connection(&conn_id).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return reject(
                &s,
                StatusCode::NOT_FOUND,
                "unknown_connection",
                "unknown connection".into(),
            );
        }
        Err(e) => {
            return reject(
                &s,
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                e.to_string(),
            );
        }
    };
    let Some(settings) = &conn.webhook else {
        return reject(
            &s,
            StatusCode::NOT_FOUND,
            "no_webhook",
            "connection does not accept webhooks".into(),
        );
    };
    let scheme = match parse_scheme(&settings.scheme) {
        Ok(sc) => sc,
        Err(e) => return reject(&s, StatusCode::INTERNAL_SERVER_ERROR, "bad_scheme", e),
    };
    let secrets: Vec<WebhookSecret> = settings
        .secrets
        .iter()
        .map(|x| WebhookSecret::new(x.expose()))
        .collect();
    let header_list: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| {
            v.to_str()
                .ok()
                .map(|v| (k.as_str().to_owned(), v.to_owned()))
        })
        .collect();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let proto = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("http");
    let url = format!("{proto}://{host}{uri}");
    let req = Request {
        method: method.as_str(),
        url: &url,
        headers: &header_list,
        body: &body,
    };
    let now = app.clock.now();
    let tolerance = app.settings.webhook_tolerance.as_secs() as i64;
    let verified =
        match syncbridge_signatures::verify(&scheme, &secrets, &req, now.as_unix_secs(), tolerance)
        {
            Ok(v) => v,
            Err(e) => {
                use syncbridge_signatures::VerifyError as V;
                let (status, what) = match &e {
                    V::MissingHeader(_)
                    | V::MalformedHeader { .. }
                    | V::NoSupportedSignature(_) => {
                        (StatusCode::BAD_REQUEST, "malformed_signature")
                    }
                    V::UnsupportedContent(_) => {
                        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_content")
                    }
                    V::TimestampOutsideTolerance { .. } => {
                        (StatusCode::UNAUTHORIZED, "stale_timestamp")
                    }
                    V::NoSecrets | V::InvalidSecret(_) | V::InvalidConfig(_) => {
                        (StatusCode::INTERNAL_SERVER_ERROR, "bad_configuration")
                    }
                    _ => (StatusCode::UNAUTHORIZED, "bad_signature"),
                };
                return reject(&s, status, what, e.to_string());
            }
        };
    if let Some(first) = secrets.first()
        && let Some(h) = syncbridge_signatures::handshake(&scheme, first, &body)
    {
        s.counters.bump("handshake");
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, h.content_type)],
            h.body,
        )
            .into_response();
    }
    let dedup_key = verified
        .event_id
        .unwrap_or_else(|| format!("sha256:{}", hex::encode(Sha256::digest(&body))));
    let event = WebhookEvent {
        connection: conn.id.clone(),
        dedup_key: dedup_key.clone(),
        received_at: now,
        body: body.to_vec(),
    };
    match app
        .store
        .insert_webhook_event(&event, now.sub(app.settings.webhook_dedup_window))
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            s.counters.bump("duplicate");
            return (StatusCode::OK, axum::Json(json!({ "status": "duplicate" }))).into_response();
        }
        Err(e) => {
            return reject(
                &s,
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                e.to_string(),
            );
        }
    }

    // Route the event to the connection's inbound tasks it names.
    let tasks = match app.store.list_tasks(Some(&conn.id)).await {
        Ok(t) => t
            .into_iter()
            .filter(|t| t.direction == Direction::Inbound)
            .collect::<Vec<_>>(),
        Err(e) => {
            return reject(
                &s,
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                e.to_string(),
            );
        }
    };
    let named = named_objects(&body);
    let routed: Vec<_> = if named.is_empty() {
        tasks
    } else {
        tasks
            .into_iter()
            .filter(|t| named.iter().any(|n| n == t.object.as_str()))
            .collect()
    };
    if routed.is_empty() {
        let q = QuarantinedMessage {
            source: FUNCTION.into(),
            message_id: Some(dedup_key),
            reason: format!(
                "verified event for {} matches no sync task (objects named: {named:?})",
                conn.id
            ),
            body: body.to_vec(),
            at: now,
        };
        return match app.store.quarantine(&q).await {
            Ok(id) => {
                s.counters.bump("quarantined");
                (
                    StatusCode::ACCEPTED,
                    axum::Json(json!({ "status": "quarantined", "quarantine_id": id })),
                )
                    .into_response()
            }
            Err(e) => reject(
                &s,
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                e.to_string(),
            ),
        };
    }
    let messages: Vec<OutboundMessage> = routed
        .iter()
        .map(|t| {
            let job = SyncJob {
                task: t.id.clone(),
                connection: conn.id.clone(),
                object: t.object.clone(),
                priority: Priority::WebhookFollowUp,
                reason: JobReason::Webhook {
                    event: dedup_key.clone(),
                },
                lease_token: String::new(),
            };
            let digest = Sha256::digest(format!("{}\n{}\n{}", conn.id, dedup_key, t.id));
            OutboundMessage::json(
                QueueName::inbound(),
                format!("wh-{}", hex::encode(&digest[..16])),
                &job,
            )
        })
        .collect();
    if let Err(e) = app.queue.send(messages).await {
        // The event is stored (a retry would be a duplicate): keep it replayable.
        let q = QuarantinedMessage {
            source: format!("{FUNCTION}/enqueue"),
            message_id: Some(dedup_key),
            reason: format!("follow-up enqueue failed: {e}"),
            body: body.to_vec(),
            at: now,
        };
        let _ = app.store.quarantine(&q).await;
        return reject(
            &s,
            StatusCode::SERVICE_UNAVAILABLE,
            "queue_unavailable",
            "queue unavailable; event kept for replay".into(),
        );
    }
    s.counters.accepted.fetch_add(1, Ordering::Relaxed);
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({ "status": "accepted", "jobs": routed.len() })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Object names are found at the top level and in batches; other bodies name none.
    #[test]
    fn named_objects_table() {
        assert_eq!(named_objects(br#"{"object":"contacts"}"#), ["contacts"]);
        assert_eq!(
            named_objects(br#"[{"object":"deals"},{"objectType":"contacts"},{"object":"deals"}]"#),
            ["contacts", "deals"]
        );
        assert!(named_objects(b"not json").is_empty());
        assert!(named_objects(br#"{"type":"ping"}"#).is_empty());
    }
}
