//! The host's side of the protocol: build the exact request payloads the real
//! Functions host sends (§4) and parse handler responses (§5).
//!
//! Used by our local Functions host emulator and by tests, so the payload shapes live
//! only in this crate. The builders deliberately reproduce the host's quirks: scalar
//! strings double-quoted, ints as strings, nulls omitted, the `sys` object, and — for
//! `dataType: string` Service Bus bindings and JSON HTTP bodies — top-level body fields
//! leaking into `Metadata` (§4 `ApplyBindingData`).

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::encoding::{encode_base64, format_time_naive_utc, format_time_offset, quote};
use crate::http::is_binary_media_type;
use crate::request::{InvocationRequest, SysMetadata};
use crate::response::{InvocationResponse, ResponseParseError};
use crate::timer::{ScheduleStatus, timer_data};

/// Builds a timer invocation (§4a) with the trigger in `Data.timer`.
///
/// `schedule_status = None` produces `"ScheduleStatus": null`, as the host sends when
/// schedule monitoring is off (locally).
pub fn timer_request(
    is_past_due: bool,
    schedule_status: Option<&ScheduleStatus>,
    utc_now: OffsetDateTime,
    method_name: &str,
) -> InvocationRequest {
    let mut data = Map::new();
    data.insert("timer".into(), timer_data(is_past_due, schedule_status));
    let mut metadata = Map::new();
    metadata.insert(
        "sys".into(),
        SysMetadata::new(method_name, utc_now).to_value(),
    );
    InvocationRequest { data, metadata }
}

/// The broker-side properties of a message being delivered (§4b metadata keys).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BrokerMessage {
    /// `MessageId`.
    pub message_id: Option<String>,
    /// `DeliveryCount` (1 on first delivery; [`BrokerMessage::new`] sets it).
    pub delivery_count: u32,
    /// `EnqueuedTimeUtc` / `EnqueuedTime`.
    pub enqueued_time: Option<OffsetDateTime>,
    /// `ExpiresAtUtc` / `ExpiresAt`.
    pub expires_at: Option<OffsetDateTime>,
    /// `SequenceNumber`.
    pub sequence_number: Option<i64>,
    /// `ContentType`.
    pub content_type: Option<String>,
    /// `CorrelationId`.
    pub correlation_id: Option<String>,
    /// `SessionId`.
    pub session_id: Option<String>,
    /// `Subject` (also published as the legacy `Label`).
    pub subject: Option<String>,
    /// `ReplyTo`.
    pub reply_to: Option<String>,
    /// `To`.
    pub to: Option<String>,
    /// `PartitionKey`.
    pub partition_key: Option<String>,
    /// `DeadLetterSource`.
    pub dead_letter_source: Option<String>,
    /// `LockToken`.
    pub lock_token: Option<String>,
    /// `ApplicationProperties` (also published as the legacy `UserProperties`).
    pub application_properties: Map<String, Value>,
    /// Namespace for the `Client` object (`ns.servicebus.windows.net`).
    pub fully_qualified_namespace: Option<String>,
}

impl BrokerMessage {
    /// A first delivery (`DeliveryCount = 1`) of message `message_id`.
    pub fn new(message_id: impl Into<String>) -> Self {
        Self {
            message_id: Some(message_id.into()),
            delivery_count: 1,
            ..Self::default()
        }
    }
}

/// Builds a single-message Service Bus invocation (§4b).
///
/// - `data_type_binary = true`: `Data.<binding>` is the base64 of `body`; `Metadata`
///   holds only the broker properties.
/// - `data_type_binary = false` (`string`, also the host default): `Data.<binding>` is
///   the UTF-8 text of `body` JSON-quoted twice, and if that text is a JSON object its
///   top-level non-array, non-null properties are copied into `Metadata`, overwriting
///   same-named keys ignoring case (§4 `ApplyBindingData`). The leaked values are
///   encoded with the §4 rules (strings quoted again, integers as strings): the note
///   does not say how leaked values are encoded, so this is \[infer\]. The fixture
///   `service_bus_string_leaked.json` covers the other possibility (raw JSON tokens,
///   `"MessageId": 5`), and the parser accepts both.
///
/// Metadata encoding follows §4/§4b: scalar strings double-quoted, ints as strings,
/// dates as plain ISO strings, dictionaries as objects, nulls omitted, plus
/// `MessageActions`, `Client` and `sys`.
pub fn service_bus_request(
    binding_name: &str,
    body: &[u8],
    props: &BrokerMessage,
    data_type_binary: bool,
    sys: &SysMetadata,
) -> InvocationRequest {
    let mut meta = Map::new();
    // §4: plain .NET strings are JSON-quoted a second time.
    fn put_str(meta: &mut Map<String, Value>, key: &str, v: &Option<String>) {
        if let Some(v) = v {
            meta.insert(key.into(), Value::String(quote(v)));
        }
    }
    meta.insert(
        "DeliveryCount".into(),
        Value::String(props.delivery_count.to_string()),
    );
    put_str(&mut meta, "DeadLetterSource", &props.dead_letter_source);
    put_str(&mut meta, "LockToken", &props.lock_token);
    if let Some(t) = props.expires_at {
        meta.insert("ExpiresAtUtc".into(), format_time_naive_utc(t).into());
        meta.insert("ExpiresAt".into(), format_time_offset(t).into());
    }
    if let Some(t) = props.enqueued_time {
        meta.insert("EnqueuedTimeUtc".into(), format_time_naive_utc(t).into());
        meta.insert("EnqueuedTime".into(), format_time_offset(t).into());
    }
    put_str(&mut meta, "MessageId", &props.message_id);
    put_str(&mut meta, "ContentType", &props.content_type);
    put_str(&mut meta, "ReplyTo", &props.reply_to);
    if let Some(n) = props.sequence_number {
        meta.insert("SequenceNumber".into(), Value::String(n.to_string()));
    }
    put_str(&mut meta, "To", &props.to);
    put_str(&mut meta, "Subject", &props.subject);
    put_str(&mut meta, "Label", &props.subject);
    put_str(&mut meta, "CorrelationId", &props.correlation_id);
    let app_props = Value::Object(props.application_properties.clone());
    meta.insert("ApplicationProperties".into(), app_props.clone());
    meta.insert("UserProperties".into(), app_props);
    put_str(&mut meta, "SessionId", &props.session_id);
    put_str(&mut meta, "PartitionKey", &props.partition_key);
    meta.insert("MessageActions".into(), Value::Object(Map::new()));
    let mut client = Map::new();
    if let Some(ns) = &props.fully_qualified_namespace {
        client.insert("FullyQualifiedNamespace".into(), ns.clone().into());
    }
    client.insert("IsClosed".into(), false.into());
    meta.insert("Client".into(), Value::Object(client));

    let mut data = Map::new();
    if data_type_binary {
        data.insert(binding_name.into(), Value::String(encode_base64(body)));
    } else {
        let text = String::from_utf8_lossy(body);
        data.insert(binding_name.into(), Value::String(quote(&text)));
        leak_json_fields(&mut meta, &text);
    }
    meta.insert("sys".into(), sys.to_value());
    InvocationRequest {
        data,
        metadata: meta,
    }
}

/// Copies a JSON object body's top-level properties into `Metadata` the way
/// `Utility.ApplyBindingData` does (§4): non-array, non-null values, overwriting
/// same-named keys ignoring case (binding data is case-insensitive \[infer\]; the
/// existing key's spelling is kept).
fn leak_json_fields(meta: &mut Map<String, Value>, text: &str) {
    let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(text) else {
        return;
    };
    for (key, value) in fields {
        let encoded = match value {
            Value::Array(_) | Value::Null => continue,
            Value::String(s) => Value::String(quote(&s)),
            Value::Number(n) if n.is_i64() || n.is_u64() => Value::String(n.to_string()),
            other => other,
        };
        let existing = meta
            .keys()
            .find(|k| k.eq_ignore_ascii_case(&key))
            .cloned()
            .unwrap_or(key);
        meta.insert(existing, encoded);
    }
}

/// A client HTTP request as the host received it, before it builds `Data.req` (§4c).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HttpRequestSpec {
    /// The method (`POST`).
    pub method: String,
    /// The full public URL including `/api/...` and the query string.
    pub url: String,
    /// Request headers in arrival order (repeats allowed).
    pub headers: Vec<(String, String)>,
    /// Route parameters (`{source}` → `github`).
    pub params: BTreeMap<String, String>,
    /// The request body; `None` or empty models `Content-Length: 0` / chunked (omitted).
    pub body: Option<Bytes>,
}

/// Builds a non-forwarded HTTP invocation (§4c) with the request in `Data.<binding_name>`.
///
/// - `Query` is parsed from the URL, multi-values joined with `,`.
/// - `Headers` groups values per name (first spelling kept) into arrays.
/// - `Body` is omitted when empty; base64 for `application/octet-stream` and
///   `multipart/*`; otherwise the (lossily decoded) UTF-8 text.
/// - `Metadata` gets `Query`, `Headers` (name → joined string), the route params as
///   double-quoted strings, a JSON body's top-level fields (§4c "JSON bodies also
///   populate Metadata"), and `sys`.
pub fn http_request(
    binding_name: &str,
    req: &HttpRequestSpec,
    sys: &SysMetadata,
) -> InvocationRequest {
    let mut query: Vec<(String, String)> = Vec::new();
    let query_text = req
        .url
        .split_once('?')
        .map(|(_, q)| q.split('#').next().unwrap_or_default())
        .unwrap_or_default();
    for (k, v) in url::form_urlencoded::parse(query_text.as_bytes()) {
        match query
            .iter_mut()
            .find(|(name, _)| name.eq_ignore_ascii_case(&k))
        {
            Some((_, existing)) => {
                existing.push(',');
                existing.push_str(&v);
            }
            None => query.push((k.into_owned(), v.into_owned())),
        }
    }
    let query_obj: Map<String, Value> = query
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();

    let mut headers: Vec<(String, Vec<String>)> = Vec::new();
    for (name, value) in &req.headers {
        match headers
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some((_, values)) => values.push(value.clone()),
            None => headers.push((name.clone(), vec![value.clone()])),
        }
    }
    let content_type = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        .and_then(|(_, v)| v.first().cloned());

    let mut request = Map::new();
    request.insert("Url".into(), req.url.clone().into());
    request.insert("Method".into(), req.method.to_ascii_uppercase().into());
    request.insert("Query".into(), Value::Object(query_obj.clone()));
    request.insert(
        "Headers".into(),
        Value::Object(
            headers
                .iter()
                .map(|(n, v)| (n.clone(), Value::from(v.clone())))
                .collect(),
        ),
    );
    request.insert(
        "Params".into(),
        Value::Object(
            req.params
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        ),
    );
    request.insert(
        "Identities".into(),
        serde_json::json!([{ "AuthenticationType": null, "IsAuthenticated": false, "Claims": [] }]),
    );
    let mut leaked_text = None;
    if let Some(body) = req.body.as_ref().filter(|b| !b.is_empty()) {
        if content_type.as_deref().is_some_and(is_binary_media_type) {
            request.insert("Body".into(), Value::String(encode_base64(body)));
        } else {
            let text = String::from_utf8_lossy(body).into_owned();
            request.insert("Body".into(), Value::String(text.clone()));
            leaked_text = Some(text);
        }
    }

    let mut meta = Map::new();
    meta.insert("Query".into(), Value::Object(query_obj));
    meta.insert(
        "Headers".into(),
        Value::Object(
            headers
                .iter()
                .map(|(n, v)| (n.clone(), Value::String(v.join(","))))
                .collect(),
        ),
    );
    for (k, v) in &req.params {
        meta.insert(k.clone(), Value::String(quote(v)));
    }
    if let Some(text) = leaked_text {
        leak_json_fields(&mut meta, &text);
    }
    meta.insert("sys".into(), sys.to_value());

    let mut data = Map::new();
    data.insert(binding_name.into(), Value::Object(request));
    InvocationRequest {
        data,
        metadata: meta,
    }
}

/// Parses a handler's response body (§5) the way the host does; see
/// [`InvocationResponse::parse`]. `statusCode` in HTTP outputs may be a string or a
/// number ([`crate::HttpOutput::from_value`]).
///
/// # Errors
/// The body is not a JSON object of the §5 shape.
pub fn parse_invocation_response(bytes: &[u8]) -> Result<InvocationResponse, ResponseParseError> {
    InvocationResponse::parse(bytes)
}
