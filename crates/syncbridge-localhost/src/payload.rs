//! The host-side payloads, from this crate's types to the protocol's builders. No
//! JSON shape is spelled here: see [`crate::protocol_gaps`] / `syncbridge-protocol`.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::http::{HeaderMap, Uri};
use serde_json::Value;
use syncbridge_core::Timestamp;
use syncbridge_localqueue::LockedMessage;
use syncbridge_protocol::DataType;

use crate::protocol_gaps as gaps;

/// Timer payload (§4a).
pub fn timer(function: &str, binding: &str, is_past_due: bool, now: Timestamp) -> Vec<u8> {
    gaps::timer_request(function, binding, is_past_due, now)
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
    let delivered = gaps::DeliveredMessage {
        body: &m.body,
        message_id: &m.message_id,
        delivery_count: m.delivery_count,
        sequence_number: m.sequence_number,
        enqueued_time: m.enqueued_time,
        expires_at: m.expires_at,
        lock_token: &msg.lock_token,
        content_type: m.content_type.as_deref(),
        correlation_id: m.correlation_id.as_deref(),
        session_id: m.session_id.as_deref(),
        subject: m.subject.as_deref(),
        properties: &m.properties,
        dead_letter_source: None,
    };
    gaps::service_bus_request(
        function,
        binding,
        data_type == Some(DataType::Binary),
        &delivered,
        now,
    )
}

/// An incoming HTTP request for a non-forwarded function.
#[derive(Debug, Clone)]
pub struct HttpRequestParts {
    /// Full URL the client used.
    pub url: String,
    /// Method.
    pub method: String,
    /// Request URI (for the query).
    pub uri: Uri,
    /// Headers.
    pub headers: HeaderMap,
    /// Route values.
    pub params: BTreeMap<String, String>,
    /// Raw body.
    pub body: Bytes,
}

/// Non-forwarded HTTP payload (§4c).
pub fn http(function: &str, binding: &str, r: &HttpRequestParts, now: Timestamp) -> Vec<u8> {
    let mut query: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in url_query_pairs(r.uri.query().unwrap_or("")) {
        query
            .entry(k)
            .and_modify(|e| {
                e.push(',');
                e.push_str(&v);
            })
            .or_insert(v);
    }
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in &r.headers {
        headers
            .entry(canonical_header(name.as_str()))
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    let facts = gaps::HttpRequestFacts {
        url: &r.url,
        method: &r.method,
        query,
        headers,
        params: &r.params,
        body: &r.body,
        content_type: r.headers.get("content-type").and_then(|v| v.to_str().ok()),
    };
    gaps::http_request(function, binding, &facts, now)
}

/// Message bodies for a Service Bus output value (§5 collector rules).
pub fn output_message_bodies(value: &Value) -> Vec<Vec<u8>> {
    gaps::output_message_bodies(value)
}

/// `content-type` → `Content-Type` (the host shows headers as the client sent them;
/// hyper lower-cases them, so restore the conventional spelling).
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

fn url_query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let dec = |s: &str| crate::route::percent_decode(&s.replace('+', " "));
            (dec(k), dec(v))
        })
        .collect()
}
