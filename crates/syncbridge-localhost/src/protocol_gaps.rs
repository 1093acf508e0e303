//! STOPGAP: host-side JSON that `syncbridge-protocol` does not (yet) provide —
//! host.json / function.json models and the payload builders the host POSTs.
//! Everything here follows functions-host.md §1, §3, §4 and should move into
//! `syncbridge-protocol` (the only module meant to know the host's JSON); the rest
//! of this crate reaches it only through [`crate::app`] and [`crate::payload`].

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};
use syncbridge_protocol::SysMetadata;
use syncbridge_protocol::encoding::{encode_base64, format_time_utc, quote};
use time::OffsetDateTime;

// ---------------------------------------------------------------- host.json (§1)

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HostJson {
    #[serde(default)]
    custom_handler: Option<CustomHandler>,
    #[serde(default)]
    extensions: Option<Extensions>,
    #[serde(default)]
    function_timeout: Option<String>,
    #[serde(default)]
    configuration_profile: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CustomHandler {
    #[serde(default)]
    description: Option<Description>,
    #[serde(default)]
    enable_forwarding_http_request: bool,
    #[serde(default)]
    enable_proxying_http_request: bool,
    #[serde(default)]
    http: Option<CustomHandlerHttp>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CustomHandlerHttp {
    #[serde(default)]
    enable_proxying: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Description {
    #[serde(default)]
    arguments: Vec<String>,
    #[serde(default)]
    working_directory: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Extensions {
    #[serde(default)]
    http: Option<HttpExtension>,
    #[serde(default)]
    service_bus: Option<ServiceBusExtension>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HttpExtension {
    #[serde(default)]
    route_prefix: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServiceBusExtension {
    #[serde(default)]
    max_concurrent_calls: Option<u32>,
}

/// The host.json facts the local host uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// `customHandler.enableForwardingHttpRequest`.
    pub enable_forwarding: bool,
    /// `customHandler.enableProxyingHttpRequest`, `customHandler.http.enableProxying`
    /// or `configurationProfile: mcp-custom-handler`.
    pub enable_proxying: bool,
    /// `customHandler.description.arguments`.
    pub arguments: Vec<String>,
    /// `customHandler.description.workingDirectory`.
    pub working_directory: Option<String>,
    /// `extensions.http.routePrefix` (`None` = default `api`).
    pub route_prefix: Option<String>,
    /// `extensions.serviceBus.maxConcurrentCalls`.
    pub max_concurrent_calls: Option<u32>,
    /// `functionTimeout` (`hh:mm:ss` or `d.hh:mm:ss`; `-1` = none → `None`).
    pub function_timeout: Option<Duration>,
}

/// Parses host.json.
pub fn parse_host_json(text: &str) -> Result<HostFacts, String> {
    let h: HostJson = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let ch = h.custom_handler.unwrap_or_default();
    let desc = ch.description.unwrap_or_default();
    let ext = h.extensions.unwrap_or_default();
    let mcp = h.configuration_profile.as_deref() == Some("mcp-custom-handler");
    let function_timeout = match h.function_timeout.as_deref() {
        None => None,
        Some(t) if t.trim() == "-1" => None,
        Some(t) => Some(
            parse_timespan(t).ok_or_else(|| format!("functionTimeout {t:?} is not hh:mm:ss"))?,
        ),
    };
    let mut route_prefix = ext.http.and_then(|h| h.route_prefix);
    if mcp && route_prefix.is_none() {
        route_prefix = Some(String::new());
    }
    Ok(HostFacts {
        enable_forwarding: ch.enable_forwarding_http_request,
        enable_proxying: ch.enable_proxying_http_request
            || ch.http.is_some_and(|h| h.enable_proxying)
            || mcp,
        arguments: desc.arguments,
        working_directory: desc.working_directory,
        route_prefix,
        max_concurrent_calls: ext.service_bus.and_then(|s| s.max_concurrent_calls),
        function_timeout,
    })
}

/// .NET TimeSpan text: `hh:mm:ss[.fff]` or `d.hh:mm:ss`.
fn parse_timespan(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (days, rest) = match text.split_once('.') {
        Some((d, r)) if r.contains(':') && !d.contains(':') => (d.parse::<u64>().ok()?, r),
        _ => (0, text),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let [h, m, s] = parts.as_slice() else {
        return None;
    };
    let secs: f64 = s.parse().ok()?;
    let total = days * 86_400 + h.parse::<u64>().ok()? * 3600 + m.parse::<u64>().ok()? * 60;
    Some(Duration::from_secs(total) + Duration::from_secs_f64(secs))
}

// ------------------------------------------------------------ function.json (§3)

/// One binding of a function.json, with the properties the local host reads.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Binding {
    /// `name`.
    pub name: String,
    /// `type`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `direction` (`in` / `out`; triggers are `in`).
    #[serde(default)]
    pub direction: Option<String>,
    /// timerTrigger `schedule`.
    #[serde(default)]
    pub schedule: Option<String>,
    /// timerTrigger `runOnStartup`.
    #[serde(default)]
    pub run_on_startup: Option<bool>,
    /// serviceBus `queueName`.
    #[serde(default)]
    pub queue_name: Option<String>,
    /// serviceBusTrigger `cardinality`.
    #[serde(default)]
    pub cardinality: Option<String>,
    /// `dataType`.
    #[serde(default)]
    pub data_type: Option<String>,
    /// httpTrigger `route`.
    #[serde(default)]
    pub route: Option<String>,
    /// httpTrigger `methods`.
    #[serde(default)]
    pub methods: Vec<String>,
}

impl Binding {
    /// Input or trigger (anything not `direction: out`).
    pub fn is_input(&self) -> bool {
        !self
            .direction
            .as_deref()
            .is_some_and(|d| d.eq_ignore_ascii_case("out"))
    }
}

#[derive(Debug, Deserialize)]
struct FunctionJson {
    bindings: Vec<Binding>,
    #[serde(default)]
    disabled: bool,
}

/// Parses a function.json into its bindings (a `disabled` function is an error).
pub fn parse_function_json(text: &str) -> Result<Vec<Binding>, String> {
    let f: FunctionJson = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if f.disabled {
        return Err("function is disabled".into());
    }
    Ok(f.bindings)
}

// ------------------------------------------------------------- payloads (§4)

fn to_offset(t: syncbridge_core::Timestamp) -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(t.as_millis())
}

fn envelope(data: Map<String, Value>, metadata: Map<String, Value>) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"Data": data, "Metadata": metadata})).unwrap_or_default()
}

/// §4a timer payload (ScheduleStatus null: monitoring is off locally).
pub fn timer_request(
    function: &str,
    binding: &str,
    is_past_due: bool,
    now: syncbridge_core::Timestamp,
) -> Vec<u8> {
    let mut data = Map::new();
    data.insert(
        binding.to_string(),
        serde_json::json!({"Schedule": {"AdjustForDST": true}, "ScheduleStatus": null, "IsPastDue": is_past_due}),
    );
    let mut meta = Map::new();
    meta.insert(
        "sys".into(),
        SysMetadata::new(function, to_offset(now)).to_value(),
    );
    envelope(data, meta)
}

/// The broker-side facts of one delivered message.
#[derive(Debug, Clone)]
pub struct DeliveredMessage<'a> {
    /// Body bytes.
    pub body: &'a [u8],
    /// `MessageId`.
    pub message_id: &'a str,
    /// `DeliveryCount`.
    pub delivery_count: u32,
    /// `SequenceNumber`.
    pub sequence_number: i64,
    /// `EnqueuedTimeUtc`.
    pub enqueued_time: syncbridge_core::Timestamp,
    /// `ExpiresAtUtc` (`None` = never).
    pub expires_at: Option<syncbridge_core::Timestamp>,
    /// `LockToken`.
    pub lock_token: &'a str,
    /// `ContentType`.
    pub content_type: Option<&'a str>,
    /// `CorrelationId`.
    pub correlation_id: Option<&'a str>,
    /// `SessionId`.
    pub session_id: Option<&'a str>,
    /// `Subject` / `Label`.
    pub subject: Option<&'a str>,
    /// `ApplicationProperties`.
    pub properties: &'a BTreeMap<String, String>,
    /// `DeadLetterSource`.
    pub dead_letter_source: Option<&'a str>,
}

fn naive_utc(t: OffsetDateTime) -> String {
    let s = format_time_utc(t);
    s.strip_suffix('Z').unwrap_or(&s).to_string()
}

/// §4b Service Bus payload for one message; `binary` → base64 body, otherwise
/// the text JSON-quoted twice with a JSON-object body's top-level non-array fields
/// copied over Metadata (`ApplyBindingData`).
pub fn service_bus_request(
    function: &str,
    binding: &str,
    binary: bool,
    m: &DeliveredMessage<'_>,
    now: syncbridge_core::Timestamp,
) -> Vec<u8> {
    let mut data = Map::new();
    let text = String::from_utf8_lossy(m.body).into_owned();
    let value = if binary {
        Value::String(encode_base64(m.body))
    } else {
        Value::String(quote(&text))
    };
    data.insert(binding.to_string(), value);
    let q = |s: &str| Value::String(quote(s));
    let mut meta = Map::new();
    meta.insert(
        "DeliveryCount".into(),
        Value::String(m.delivery_count.to_string()),
    );
    meta.insert("LockToken".into(), q(m.lock_token));
    let expires = m.expires_at.map(to_offset);
    let (exp_utc, exp) = match expires {
        Some(t) => (naive_utc(t), format!("{}+00:00", naive_utc(t))),
        None => (
            "9999-12-31T23:59:59.9999999".to_string(),
            "9999-12-31T23:59:59.9999999+00:00".to_string(),
        ),
    };
    meta.insert("ExpiresAtUtc".into(), Value::String(exp_utc));
    meta.insert("ExpiresAt".into(), Value::String(exp));
    let enq = to_offset(m.enqueued_time);
    meta.insert("EnqueuedTimeUtc".into(), Value::String(naive_utc(enq)));
    meta.insert(
        "EnqueuedTime".into(),
        Value::String(format!("{}+00:00", naive_utc(enq))),
    );
    meta.insert("MessageId".into(), q(m.message_id));
    if let Some(ct) = m.content_type {
        meta.insert("ContentType".into(), q(ct));
    }
    meta.insert(
        "SequenceNumber".into(),
        Value::String(m.sequence_number.to_string()),
    );
    if let Some(s) = m.subject {
        meta.insert("Subject".into(), q(s));
        meta.insert("Label".into(), q(s));
    }
    if let Some(c) = m.correlation_id {
        meta.insert("CorrelationId".into(), q(c));
    }
    if let Some(s) = m.session_id {
        meta.insert("SessionId".into(), q(s));
    }
    if let Some(d) = m.dead_letter_source {
        meta.insert("DeadLetterSource".into(), q(d));
    }
    let props: Map<String, Value> = m
        .properties
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    meta.insert("ApplicationProperties".into(), Value::Object(props.clone()));
    meta.insert("UserProperties".into(), Value::Object(props));
    meta.insert("MessageActions".into(), Value::Object(Map::new()));
    meta.insert(
        "Client".into(),
        serde_json::json!({"FullyQualifiedNamespace": "localhost", "IsClosed": false}),
    );
    if !binary {
        apply_binding_data(&mut meta, &text);
    }
    meta.insert(
        "sys".into(),
        SysMetadata::new(function, to_offset(now)).to_value(),
    );
    envelope(data, meta)
}

/// §4: a JSON-object string body's top-level non-array properties overwrite Metadata.
fn apply_binding_data(meta: &mut Map<String, Value>, text: &str) {
    if let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(text) {
        for (k, v) in obj {
            if !v.is_array() && !v.is_null() {
                meta.insert(k, v);
            }
        }
    }
}

/// The request facts of a non-forwarded HTTP invocation.
#[derive(Debug, Clone)]
pub struct HttpRequestFacts<'a> {
    /// Full URL as the client used it.
    pub url: &'a str,
    /// Method.
    pub method: &'a str,
    /// Query pairs (multi-values joined with `,`).
    pub query: BTreeMap<String, String>,
    /// Header name → values.
    pub headers: BTreeMap<String, Vec<String>>,
    /// Route values.
    pub params: &'a BTreeMap<String, String>,
    /// Raw body.
    pub body: &'a [u8],
    /// `Content-Type`, if any.
    pub content_type: Option<&'a str>,
}

/// §4c payload for a non-forwarded HTTP invocation.
pub fn http_request(
    function: &str,
    binding: &str,
    r: &HttpRequestFacts<'_>,
    now: syncbridge_core::Timestamp,
) -> Vec<u8> {
    let query: Map<String, Value> = r
        .query
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let headers: Map<String, Value> = r
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                Value::Array(v.iter().cloned().map(Value::String).collect()),
            )
        })
        .collect();
    let params: Map<String, Value> = r
        .params
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let mut req = Map::new();
    req.insert("Url".into(), Value::String(r.url.to_string()));
    req.insert("Method".into(), Value::String(r.method.to_string()));
    req.insert("Query".into(), Value::Object(query.clone()));
    req.insert("Headers".into(), Value::Object(headers));
    req.insert("Params".into(), Value::Object(params.clone()));
    req.insert(
        "Identities".into(),
        serde_json::json!([{"AuthenticationType": null, "IsAuthenticated": false, "Claims": []}]),
    );
    let binary = r.content_type.is_some_and(|ct| {
        let ct = ct.to_ascii_lowercase();
        ct.starts_with("application/octet-stream") || ct.contains("multipart")
    });
    let text = String::from_utf8_lossy(r.body).into_owned();
    if !r.body.is_empty() {
        let body = if binary {
            encode_base64(r.body)
        } else {
            text.clone()
        };
        req.insert("Body".into(), Value::String(body));
    }
    let mut data = Map::new();
    data.insert(binding.to_string(), Value::Object(req));
    let mut meta = Map::new();
    meta.insert("Query".into(), Value::Object(query));
    let flat_headers: Map<String, Value> = r
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.join(","))))
        .collect();
    meta.insert("Headers".into(), Value::Object(flat_headers));
    for (k, v) in params {
        meta.insert(k, Value::String(quote(v.as_str().unwrap_or_default())));
    }
    if !binary {
        apply_binding_data(&mut meta, &text);
    }
    meta.insert(
        "sys".into(),
        SysMetadata::new(function, to_offset(now)).to_value(),
    );
    envelope(data, meta)
}

// -------------------------------------------------------- output bindings (§5)

/// Message bodies for one Service Bus output value, as the host's collector
/// binding makes them: `null` → none; an array (or a string holding a JSON array)
/// → one per element; a string that is valid base64 → its decoded bytes (the
/// documented gotcha); a string holding a JSON object → re-serialized; other
/// strings → their text; other JSON → its text.
pub fn output_message_bodies(value: &Value) -> Vec<Vec<u8>> {
    match value {
        Value::Null => Vec::new(),
        Value::Array(items) => items
            .iter()
            .filter(|v| !v.is_null())
            .map(scalar_body)
            .collect(),
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Array(items)) => items
                .iter()
                .filter(|v| !v.is_null())
                .map(scalar_body)
                .collect(),
            _ => vec![scalar_body(value)],
        },
        other => vec![scalar_body(other)],
    }
}

fn scalar_body(value: &Value) -> Vec<u8> {
    use base64::Engine as _;
    match value {
        Value::String(s) => {
            if !s.is_empty()
                && let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(s)
            {
                return bytes;
            }
            match serde_json::from_str::<Value>(s) {
                Ok(v @ Value::Object(_)) => v.to_string().into_bytes(),
                _ => s.clone().into_bytes(),
            }
        }
        other => other.to_string().into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use syncbridge_protocol::{InvocationRequest, ServiceBusInvocation, TimerInvocation};

    /// host.json facts: proxy flags, route prefix, concurrency and TimeSpan timeouts.
    #[test]
    fn host_json_facts() {
        let h = parse_host_json(
            r#"{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"handler","arguments":["--x"]},
                "enableProxyingHttpRequest":true},
                "functionTimeout":"00:10:00","extensions":{"serviceBus":{"maxConcurrentCalls":8},"http":{"routePrefix":""}}}"#,
        )
        .unwrap();
        assert!(h.enable_proxying && !h.enable_forwarding);
        assert_eq!(h.route_prefix.as_deref(), Some(""));
        assert_eq!(h.max_concurrent_calls, Some(8));
        assert_eq!(h.function_timeout, Some(Duration::from_secs(600)));
        assert_eq!(h.arguments, vec!["--x"]);
        assert_eq!(
            parse_timespan("1.02:00:00"),
            Some(Duration::from_secs(26 * 3600))
        );
        assert!(parse_host_json("{").is_err());
    }

    /// The payloads built here decode with the protocol crate's handler-side decoders.
    #[test]
    fn payloads_round_trip_through_protocol_decoders() {
        let now = syncbridge_core::Timestamp::from_millis(1_764_331_200_000);
        let t = InvocationRequest::from_slice(&timer_request("Tick", "timer", true, now)).unwrap();
        let timer = TimerInvocation::from_binding(&t, "timer").unwrap();
        assert!(timer.is_past_due);
        assert_eq!(t.sys().unwrap().method_name, "Tick");

        let props = BTreeMap::from([("tenant".to_string(), "t1".to_string())]);
        let m = DeliveredMessage {
            body: &[0, 159, 146, 150],
            message_id: "job-1",
            delivery_count: 2,
            sequence_number: 17,
            enqueued_time: now,
            expires_at: None,
            lock_token: "lock",
            content_type: Some("application/octet-stream"),
            correlation_id: None,
            session_id: None,
            subject: None,
            properties: &props,
            dead_letter_source: None,
        };
        let r = InvocationRequest::from_slice(&service_bus_request("Work", "msg", true, &m, now))
            .unwrap();
        let sb = ServiceBusInvocation::from_binding(
            &r,
            "msg",
            Some(syncbridge_protocol::DataType::Binary),
        )
        .unwrap();
        assert_eq!(sb.body, vec![0, 159, 146, 150]);
        assert_eq!(sb.metadata.delivery_count, 2);
        assert_eq!(sb.metadata.message_id.as_deref(), Some("job-1"));
        assert_eq!(sb.metadata.sequence_number, Some(17));
        assert_eq!(
            sb.metadata.application_properties.get("tenant"),
            Some(&json!("t1"))
        );
    }

    /// Output values become message bodies per the collector rules (arrays split, base64 decoded).
    #[test]
    fn output_bodies() {
        assert_eq!(
            output_message_bodies(&json!([{"a":1},{"b":2}])),
            vec![b"{\"a\":1}".to_vec(), b"{\"b\":2}".to_vec()]
        );
        assert_eq!(
            output_message_bodies(&json!("[1,2]")),
            vec![b"1".to_vec(), b"2".to_vec()]
        );
        assert_eq!(
            output_message_bodies(&json!("abcd1234")),
            vec![vec![0x69, 0xb7, 0x1d, 0xd7, 0x6d, 0xf8]]
        );
        assert_eq!(
            output_message_bodies(&json!("hello world")),
            vec![b"hello world".to_vec()]
        );
        assert!(output_message_bodies(&Value::Null).is_empty());
    }
}
