//! The Service Bus REST *send* surface (functions-host.md §7), served on the host's
//! HTTP port so code that sends by REST in Azure can be pointed at the local host:
//!
//! - `POST /{queue}/messages` with the payload as body, its `Content-Type` as the
//!   message content type, broker properties in the `BrokerProperties` header
//!   (JSON: `MessageId`, `Label`, `CorrelationId`, `SessionId`, `PartitionKey`,
//!   `TimeToLive` in seconds, `ScheduledEnqueueTimeUtc` in RFC 1123; unknown keys
//!   ignored) and application properties as any other header (JSON-quoted
//!   string values are unquoted) → `201 Created`;
//! - the same URL with `Content-Type: application/vnd.microsoft.servicebus.json`
//!   and a JSON array `[{"Body", "BrokerProperties", "UserProperties",
//!   "IsBodyBase64"}]` → one message per element, `201 Created`; request headers do
//!   not apply to batch messages;
//! - a queue the host does not know → `404` with a Service Bus–style XML error;
//!   a malformed request → `400`; no `Authorization` header → `401` (any Bearer or
//!   SharedAccessSignature value is accepted locally); a message over the size
//!   limit → `403` (the documented "quota exceeded / message too large").
//!
//! A repeated `MessageId` inside the duplicate-detection window still answers 201
//! and is dropped by the queue. Without `MessageId` one is generated.
//!
//! These are Service Bus's JSON shapes, not the Functions host's, which is why
//! they live here rather than in `syncbridge-protocol`.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;
use syncbridge_core::{OutboundMessage, QueueName, Timestamp};
use syncbridge_localqueue::{Envelope, LocalQueue, LocalQueueError};

/// Batch media type (exact, no charset parameter).
pub const BATCH_CONTENT_TYPE: &str = "application/vnd.microsoft.servicebus.json";
/// Largest single message or batch accepted over HTTP (Premium's HTTP limit).
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// The `BrokerProperties` JSON (header on a single send, member of a batch item).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BrokerProperties {
    /// Duplicate-detection key.
    pub message_id: Option<String>,
    /// Subject (legacy name).
    pub label: Option<String>,
    /// Subject (current name; accepted too).
    pub subject: Option<String>,
    /// Correlation id.
    pub correlation_id: Option<String>,
    /// Session id.
    pub session_id: Option<String>,
    /// Must equal `SessionId` when both are set.
    pub partition_key: Option<String>,
    /// Seconds.
    pub time_to_live: Option<f64>,
    /// RFC 1123 (`Sun, 06 Nov 1994 08:49:37 GMT`).
    pub scheduled_enqueue_time_utc: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BatchItem {
    body: Value,
    #[serde(default)]
    broker_properties: Option<BrokerProperties>,
    #[serde(default)]
    user_properties: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    is_body_base64: bool,
}

/// A REST answer: status plus a (possibly empty) body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestReply {
    /// HTTP status.
    pub status: StatusCode,
    /// Service Bus–style XML error body, empty on success.
    pub body: String,
}

impl RestReply {
    fn created() -> Self {
        RestReply {
            status: StatusCode::CREATED,
            body: String::new(),
        }
    }

    fn error(status: StatusCode, detail: impl AsRef<str>) -> Self {
        let detail = detail
            .as_ref()
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        RestReply {
            status,
            body: format!(
                "<Error><Code>{}</Code><Detail>{detail}</Detail></Error>",
                status.as_u16()
            ),
        }
    }
}

/// Headers that are transport or broker metadata, never application properties.
fn is_standard_header(name: &str) -> bool {
    const STANDARD: &[&str] = &[
        "accept",
        "accept-encoding",
        "authorization",
        "brokerproperties",
        "connection",
        "content-length",
        "content-type",
        "expect",
        "host",
        "keep-alive",
        "te",
        "transfer-encoding",
        "user-agent",
        "traceparent",
        "tracestate",
        "request-id",
        "date",
    ];
    STANDARD.contains(&name) || name.starts_with("x-ms-") || name.starts_with("x-forwarded-")
}

/// Handles `POST /{queue}/messages`. `queue` is the entity path before `/messages`.
pub fn handle_send(
    queue_store: &LocalQueue,
    queue: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> RestReply {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !(auth.starts_with("Bearer ") || auth.starts_with("SharedAccessSignature ")) {
        return RestReply::error(
            StatusCode::UNAUTHORIZED,
            "MissingToken: the request needs an Authorization header (Bearer or SharedAccessSignature)",
        );
    }
    match queue_store.queue_exists(queue) {
        Ok(true) => {}
        Ok(false) => {
            return RestReply::error(
                StatusCode::NOT_FOUND,
                format!("The messaging entity '{queue}' could not be found."),
            );
        }
        Err(e) => return RestReply::error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
    if body.len() > MAX_REQUEST_BYTES {
        return RestReply::error(
            StatusCode::FORBIDDEN,
            format!(
                "The request size {} exceeds the limit of {MAX_REQUEST_BYTES} bytes.",
                body.len()
            ),
        );
    }
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let envelopes = if content_type.as_deref() == Some(BATCH_CONTENT_TYPE) {
        parse_batch(queue, body)
    } else {
        parse_single(queue, headers, content_type, body)
    };
    let envelopes = match envelopes {
        Ok(e) => e,
        Err(detail) => return RestReply::error(StatusCode::BAD_REQUEST, detail),
    };
    match queue_store.enqueue_envelopes(&envelopes) {
        Ok(_) => RestReply::created(),
        Err(e @ LocalQueueError::Invalid(_)) => {
            RestReply::error(StatusCode::BAD_REQUEST, e.to_string())
        }
        Err(e) if e.is_transient() => {
            RestReply::error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
        Err(e) => RestReply::error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn parse_single(
    queue: &str,
    headers: &HeaderMap,
    content_type: Option<String>,
    body: &[u8],
) -> Result<Vec<Envelope>, String> {
    let props = match headers.get("brokerproperties") {
        Some(v) => {
            let text = v
                .to_str()
                .map_err(|_| "BrokerProperties is not visible ASCII".to_string())?;
            serde_json::from_str::<BrokerProperties>(text)
                .map_err(|e| format!("BrokerProperties is not valid JSON: {e}"))?
        }
        None => BrokerProperties::default(),
    };
    let mut app = BTreeMap::new();
    for (name, value) in headers {
        if is_standard_header(name.as_str()) {
            continue;
        }
        let Ok(text) = value.to_str() else { continue };
        app.insert(name.as_str().to_string(), unquote_property(text));
    }
    Ok(vec![envelope(
        queue,
        props,
        body.to_vec(),
        content_type,
        app,
    )?])
}

fn parse_batch(queue: &str, body: &[u8]) -> Result<Vec<Envelope>, String> {
    let items: Vec<BatchItem> = serde_json::from_slice(body)
        .map_err(|e| format!("batch body is not a JSON array of messages: {e}"))?;
    if items.is_empty() {
        return Err("batch is empty".into());
    }
    items
        .into_iter()
        .map(|item| {
            let bytes = match (&item.body, item.is_body_base64) {
                (Value::String(s), true) => base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map_err(|e| {
                        format!("Body is not base64 although IsBodyBase64 is true: {e}")
                    })?,
                (Value::String(s), false) => s.clone().into_bytes(),
                (other, _) => other.to_string().into_bytes(),
            };
            let app = item
                .user_properties
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| {
                    let text = match v {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (k, text)
                })
                .collect();
            envelope(
                queue,
                item.broker_properties.unwrap_or_default(),
                bytes,
                None,
                app,
            )
        })
        .collect()
}

fn envelope(
    queue: &str,
    props: BrokerProperties,
    body: Vec<u8>,
    content_type: Option<String>,
    properties: BTreeMap<String, String>,
) -> Result<Envelope, String> {
    if let (Some(s), Some(p)) = (&props.session_id, &props.partition_key)
        && s != p
    {
        return Err("SessionId and PartitionKey must be equal when both are set".into());
    }
    let scheduled = props
        .scheduled_enqueue_time_utc
        .as_deref()
        .map(|t| {
            httpdate::parse_http_date(t)
                .map(|st| {
                    let ms = st
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_millis() as i64)
                        .unwrap_or(0);
                    Timestamp::from_millis(ms)
                })
                .map_err(|_| format!("ScheduledEnqueueTimeUtc {t:?} is not an RFC 1123 date"))
        })
        .transpose()?;
    let ttl = match props.time_to_live {
        Some(s) if s.is_finite() && s > 0.0 => Some(Duration::from_secs_f64(s)),
        Some(s) => {
            return Err(format!(
                "TimeToLive must be a positive number of seconds, got {s}"
            ));
        }
        None => None,
    };
    Ok(Envelope {
        message: OutboundMessage {
            queue: QueueName::new(queue),
            message_id: props
                .message_id
                .unwrap_or_else(|| syncbridge_localqueue::new_uuid().replace('-', "")),
            body,
            content_type,
            scheduled_enqueue_at: scheduled,
            session_id: props.session_id,
            properties,
        },
        subject: props.label.or(props.subject),
        correlation_id: props.correlation_id,
        time_to_live: ttl,
    })
}

/// Custom-property header values are JSON-quoted strings (`"High"`); numbers and
/// unquoted text are kept as written.
fn unquote_property(text: &str) -> String {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::String(s)) => s,
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use syncbridge_core::ManualClock;
    use syncbridge_localqueue::LocalQueueOptions;

    fn queue() -> (tempfile::TempDir, LocalQueue) {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(Timestamp::from_millis(
            784_111_777_000 - 60_000,
        )));
        let q = LocalQueue::open_with(
            dir.path().join("q.db"),
            LocalQueueOptions::with_clock(clock),
        )
        .unwrap();
        q.declare_queue("jobs").unwrap();
        (dir, q)
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer local".parse().unwrap());
        for (k, v) in pairs {
            h.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    /// A single send maps BrokerProperties, Content-Type and custom headers onto the stored message.
    #[test]
    fn single_send_maps_properties() {
        let (_d, q) = queue();
        let h = headers(&[
            ("content-type", "application/json"),
            (
                "brokerproperties",
                r#"{"MessageId":"order-1","Label":"OrderCreated","CorrelationId":"c","SessionId":"s1","TimeToLive":90,"ScheduledEnqueueTimeUtc":"Sun, 06 Nov 1994 08:49:37 GMT","Unknown":1}"#,
            ),
            ("priority", "\"High\""),
            ("x-ms-retrypolicy", "NoRetry"),
        ]);
        let r = handle_send(&q, "jobs", &h, b"{\"a\":1}");
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let m = &q.peek("jobs").unwrap()[0];
        assert_eq!(m.message_id, "order-1");
        assert_eq!(m.subject.as_deref(), Some("OrderCreated"));
        assert_eq!(m.session_id.as_deref(), Some("s1"));
        assert_eq!(m.content_type.as_deref(), Some("application/json"));
        assert_eq!(
            m.scheduled_enqueue_time,
            Some(Timestamp::from_millis(784_111_777_000))
        );
        assert_eq!(
            m.properties,
            BTreeMap::from([("priority".to_string(), "High".to_string())])
        );
        assert_eq!(m.body, b"{\"a\":1}");
    }

    /// A batch yields one message per element, with base64 bodies decoded and user properties kept.
    #[test]
    fn batch_send() {
        let (_d, q) = queue();
        let h = headers(&[("content-type", BATCH_CONTENT_TYPE)]);
        let body = br#"[{"Body":"one","BrokerProperties":{"MessageId":"1"},"UserProperties":{"Priority":"Low","n":2}},
                        {"Body":"AP8=","IsBodyBase64":true,"BrokerProperties":{"MessageId":"2"}}]"#;
        assert_eq!(
            handle_send(&q, "jobs", &h, body).status,
            StatusCode::CREATED
        );
        let all = q.peek("jobs").unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].body, b"one");
        assert_eq!(all[0].properties.get("n").map(String::as_str), Some("2"));
        assert_eq!(all[1].body, vec![0x00, 0xff]);
    }

    /// Unknown entity → 404, no auth → 401, bad properties → 400, mismatched PartitionKey → 400.
    #[test]
    fn error_statuses() {
        let (_d, q) = queue();
        assert_eq!(
            handle_send(&q, "nope", &headers(&[]), b"x").status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            handle_send(&q, "jobs", &HeaderMap::new(), b"x").status,
            StatusCode::UNAUTHORIZED
        );
        let bad = headers(&[("brokerproperties", "{not json")]);
        assert_eq!(
            handle_send(&q, "jobs", &bad, b"x").status,
            StatusCode::BAD_REQUEST
        );
        let pk = headers(&[(
            "brokerproperties",
            r#"{"SessionId":"a","PartitionKey":"b"}"#,
        )]);
        assert_eq!(
            handle_send(&q, "jobs", &pk, b"x").status,
            StatusCode::BAD_REQUEST
        );
        let when = headers(&[(
            "brokerproperties",
            r#"{"ScheduledEnqueueTimeUtc":"tomorrow"}"#,
        )]);
        assert_eq!(
            handle_send(&q, "jobs", &when, b"x").status,
            StatusCode::BAD_REQUEST
        );
        assert!(q.peek("jobs").unwrap().is_empty());
    }
}
