//! The host-side payloads: this crate's types handed to `syncbridge-protocol`'s
//! builders ([`timer_request`], [`service_bus_request`], [`http_request`]). No JSON
//! shape is spelled here.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::http::HeaderMap;
use serde_json::{Map, Value};
use syncbridge_core::Timestamp;
use syncbridge_localqueue::LockedMessage;
use syncbridge_protocol::{
    BrokerMessage, DataType, HttpRequestSpec, InvocationRequest, SysMetadata, http_request,
    service_bus_request, timer_request,
};
use time::OffsetDateTime;

use syncbridge_protocol::bindings;

/// `Client.FullyQualifiedNamespace` reported for local messages.
pub const LOCAL_NAMESPACE: &str = "localhost";

fn to_offset(t: Timestamp) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.as_millis()) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// A re-run of a timer under its `retry` policy (§1b).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryAttempt {
    /// 1 for the first retry.
    pub retry_count: u32,
    /// The policy's `maxRetryCount` (-1 = forever).
    pub max_retry_count: i32,
    /// Why the previous attempt failed.
    pub exception: String,
}

/// Timer payload (§4a) with the trigger under `binding`, plus `RetryContext` on a re-run.
pub fn timer(
    function: &str,
    binding: &str,
    is_past_due: bool,
    now: Timestamp,
    retry: Option<&RetryAttempt>,
) -> Vec<u8> {
    let request = timer_request(is_past_due, None, to_offset(now), function);
    let request = bindings::rename_timer_binding(request, binding);
    match retry {
        Some(r) => bindings::with_retry_context(
            request,
            r.retry_count,
            r.max_retry_count,
            Some(&r.exception),
        )
        .to_vec(),
        None => request.to_vec(),
    }
}

/// Service Bus payload for one locked message (§4b).
pub fn service_bus(
    function: &str,
    binding: &str,
    data_type: Option<DataType>,
    msg: &LockedMessage,
    now: Timestamp,
) -> Vec<u8> {
    let m = &msg.message;
    let props = BrokerMessage {
        message_id: Some(m.message_id.clone()),
        delivery_count: m.delivery_count,
        enqueued_time: Some(to_offset(m.enqueued_time)),
        expires_at: m.expires_at.map(to_offset),
        sequence_number: Some(m.sequence_number),
        content_type: m.content_type.clone(),
        correlation_id: m.correlation_id.clone(),
        session_id: m.session_id.clone(),
        subject: m.subject.clone(),
        lock_token: Some(msg.lock_token.clone()),
        application_properties: m
            .properties
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect::<Map<String, Value>>(),
        fully_qualified_namespace: Some(LOCAL_NAMESPACE.to_string()),
        ..BrokerMessage::default()
    };
    let binary = data_type == Some(DataType::Binary);
    let sys = SysMetadata::new(function, to_offset(now));
    service_bus_request(binding, &m.body, &props, binary, &sys).to_vec()
}

/// An incoming HTTP request for a non-forwarded function.
#[derive(Debug, Clone)]
pub struct HttpRequestParts {
    /// Full URL the client used (with the route prefix and query).
    pub url: String,
    /// Method.
    pub method: String,
    /// Headers.
    pub headers: HeaderMap,
    /// Route values.
    pub params: BTreeMap<String, String>,
    /// Raw body.
    pub body: Bytes,
}

/// Non-forwarded HTTP payload (§4c).
pub fn http(function: &str, binding: &str, r: &HttpRequestParts, now: Timestamp) -> Vec<u8> {
    let spec = HttpRequestSpec {
        method: r.method.clone(),
        url: r.url.clone(),
        headers: r
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    canonical_header(k.as_str()),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        params: r.params.clone(),
        body: Some(r.body.clone()),
    };
    let sys = SysMetadata::new(function, to_offset(now));
    http_request(binding, &spec, &sys).to_vec()
}

/// Message bodies for a Service Bus output value (§5 collector rules).
pub fn output_message_bodies(value: &Value) -> Vec<Vec<u8>> {
    bindings::output_message_bodies(value)
}

/// `content-type` → `Content-Type`: the host shows header names as the client
/// sent them, hyper lower-cases them, so restore the conventional spelling.
fn canonical_header(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut c = part.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// The decoded envelope of `bytes` (tests and debugging).
pub fn parse(bytes: &[u8]) -> Option<InvocationRequest> {
    InvocationRequest::from_slice(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use syncbridge_localqueue::Message;
    use syncbridge_protocol::{ServiceBusInvocation, TimerInvocation};

    /// A locked queue message becomes a §4b payload that the handler-side decoder reads back exactly.
    #[test]
    fn service_bus_payload_round_trips() {
        let now = Timestamp::from_millis(1_795_867_390_000);
        let msg = LockedMessage {
            message: Message {
                queue: "jobs".into(),
                sequence_number: 17,
                message_id: "job-1".into(),
                body: vec![0, 159, 146, 150],
                content_type: Some("application/octet-stream".into()),
                session_id: None,
                correlation_id: Some("c-1".into()),
                subject: None,
                properties: BTreeMap::from([("tenant".to_string(), "t1".to_string())]),
                enqueued_time: now,
                scheduled_enqueue_time: None,
                expires_at: None,
                delivery_count: 2,
                dead_letter_reason: None,
                dead_letter_description: None,
            },
            lock_token: "lock-1".into(),
            locked_until: now,
        };
        let bytes = service_bus("Work", "msg", Some(DataType::Binary), &msg, now);
        let r = parse(&bytes).unwrap();
        let sb = ServiceBusInvocation::from_binding(&r, "msg", Some(DataType::Binary)).unwrap();
        assert_eq!(sb.body, vec![0, 159, 146, 150]);
        assert_eq!(sb.metadata.delivery_count, 2);
        assert_eq!(sb.metadata.message_id.as_deref(), Some("job-1"));
        assert_eq!(sb.metadata.sequence_number, Some(17));
        assert_eq!(sb.metadata.correlation_id.as_deref(), Some("c-1"));
        assert_eq!(sb.metadata.lock_token.as_deref(), Some("lock-1"));
        assert_eq!(
            sb.metadata.application_properties.get("tenant"),
            Some(&Value::String("t1".into()))
        );
        assert_eq!(r.sys().unwrap().method_name, "Work");
    }

    /// A timer payload under a custom binding name decodes, with IsPastDue carried through.
    #[test]
    fn timer_payload_round_trips() {
        let r = parse(&timer(
            "Tick",
            "tick",
            true,
            Timestamp::from_millis(0),
            None,
        ))
        .unwrap();
        assert!(
            TimerInvocation::from_binding(&r, "tick")
                .unwrap()
                .is_past_due
        );
    }
}
