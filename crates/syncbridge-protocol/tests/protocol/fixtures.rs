//! Each documented payload shape (§4a–§4c) parses into the right typed view.

use axum::http::Method;
use serde_json::json;
use syncbridge_protocol::extract::parse_envelope;
use syncbridge_protocol::{
    BodySource, FromInvocation, HttpBodyEncoding, HttpInvocation, ProtocolError,
    ServiceBusInvocation, TimerInvocation,
};
use time::macros::datetime;

use crate::{envelope, fixture};

/// Proves a monitored timer tick (§4a) yields IsPastDue, all three ScheduleStatus times and sys.
#[test]
fn timer_with_schedule_status() {
    let t = TimerInvocation::from_invocation(&envelope("timer_with_status.json")).unwrap();
    assert!(!t.is_past_due);
    let status = t.schedule_status.expect("status present");
    assert_eq!(status.last, datetime!(2023-10-12 20:13:49.64 UTC));
    assert_eq!(status.next, datetime!(2023-10-12 20:18:49 UTC));
    assert_eq!(
        status.last_updated,
        datetime!(2023-10-12 20:13:49.644_041_1 UTC)
    );
    assert_eq!(t.adjust_for_dst, Some(true));
    let sys = t.sys.unwrap();
    assert_eq!(sys.method_name, "timer");
    assert_eq!(
        sys.utc_now,
        Some(datetime!(2022-07-05 11:40:07.485_061_6 UTC))
    );
    assert!(t.warnings.is_empty(), "{:?}", t.warnings);
}

/// Proves the local case `"ScheduleStatus": null` (§4a) decodes to `None` without warnings.
#[test]
fn timer_with_null_schedule_status() {
    let t = TimerInvocation::from_invocation(&envelope("timer_status_null.json")).unwrap();
    assert!(t.is_past_due);
    assert_eq!(t.schedule_status, None);
    assert!(t.warnings.is_empty());
}

/// Proves an absent ScheduleStatus is accepted like null.
#[test]
fn timer_with_absent_schedule_status() {
    let mut req = envelope("timer_status_null.json");
    req.data["timer"]
        .as_object_mut()
        .unwrap()
        .remove("ScheduleStatus");
    let t = TimerInvocation::from_invocation(&req).unwrap();
    assert_eq!(t.schedule_status, None);
}

/// Proves the documented `dataType: binary` message (§4b) yields exact bytes and clean metadata.
#[test]
fn service_bus_binary_message() {
    let m = ServiceBusInvocation::from_invocation(&envelope("service_bus_binary.json")).unwrap();
    assert_eq!(m.binding, "msg");
    assert_eq!(m.body, br#"{"jobId":"123"}"#);
    assert_eq!(m.body_source, BodySource::Base64);
    let md = &m.metadata;
    assert_eq!(md.delivery_count, 1);
    assert_eq!(md.message_id.as_deref(), Some("job-123"));
    assert_eq!(md.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        md.lock_token.as_deref(),
        Some("4e77b3a5-6c2d-4f1e-9a8b-7c6d5e4f3a2b")
    );
    assert_eq!(md.sequence_number, Some(17));
    assert_eq!(
        md.enqueued_time_utc,
        Some(datetime!(2023-10-12 20:13:49 UTC))
    );
    assert_eq!(md.expires_at_utc, Some(datetime!(2023-10-26 20:13:49 UTC)));
    assert_eq!(md.application_properties["tenant"], json!("t1"));
    assert_eq!(md.session_id, None, "absent keys are nulls");
    assert_eq!(md.sys.as_ref().unwrap().method_name, "ProcessJob");
    assert!(md.warnings.is_empty(), "{:?}", md.warnings);
    #[derive(serde::Deserialize)]
    struct Job {
        #[serde(rename = "jobId")]
        job_id: String,
    }
    assert_eq!(m.json::<Job>().unwrap().job_id, "123");
}

/// Proves a double-encoded string body survives, and leaked body fields (`DeliveryCount: "x"`,
/// `MessageId: 5`, §4 ApplyBindingData) fall back with warnings instead of failing.
#[test]
fn service_bus_string_message_with_leaked_fields() {
    let m =
        ServiceBusInvocation::from_invocation(&envelope("service_bus_string_leaked.json")).unwrap();
    assert_eq!(
        m.body,
        br#"{"jobId":"123","DeliveryCount":"x","MessageId":5,"tags":["a"]}"#
    );
    assert_eq!(m.body_source, BodySource::DoubleEncodedString);
    let md = &m.metadata;
    assert_eq!(
        md.delivery_count, 1,
        "garbage DeliveryCount falls back to 1"
    );
    assert_eq!(
        md.message_id.as_deref(),
        Some("5"),
        "clobbered id is kept as text"
    );
    assert_eq!(md.sequence_number, Some(18));
    let keys: Vec<&str> = md.warnings.iter().map(|w| w.key.as_str()).collect();
    assert!(keys.contains(&"DeliveryCount"), "{keys:?}");
    assert!(keys.contains(&"MessageId"), "{keys:?}");
    assert!(m.warning_logs().iter().all(|l| l.contains("§4")));
}

/// Proves KarlGW's single-encoded variant (§4b) and plain/numeric metadata scalars are accepted.
#[test]
fn service_bus_single_encoded_string_message() {
    let m =
        ServiceBusInvocation::from_invocation(&envelope("service_bus_string_single.json")).unwrap();
    assert_eq!(m.body, br#"{"jobId":"123"}"#);
    assert_eq!(m.body_source, BodySource::PlainString);
    assert_eq!(m.metadata.delivery_count, 2);
    assert_eq!(m.metadata.message_id.as_deref(), Some("job-123"));
    assert_eq!(m.metadata.sequence_number, Some(19));
}

/// Proves a non-forwarded JSON request (§4c) yields URL, method, query, multi-value headers,
/// params and the body text with whitespace preserved.
#[test]
fn http_json_request() {
    let h = HttpInvocation::from_invocation(&envelope("http_json.json")).unwrap();
    assert_eq!(h.binding, "req");
    assert_eq!(h.method, Method::POST);
    assert_eq!(
        h.url,
        "https://app.azurewebsites.net/api/webhooks/github?x=1"
    );
    assert_eq!(h.query["x"], "1");
    assert_eq!(h.params["source"], "github");
    assert_eq!(h.header("content-type"), Some("application/json"));
    assert_eq!(h.header_values("ACCEPT"), ["text/html", "application/json"]);
    assert!(
        h.header("x-hub-signature-256")
            .unwrap()
            .starts_with("sha256=")
    );
    assert_eq!(
        h.body.as_deref(),
        Some(&b"{\n  \"action\": \"opened\"\n}"[..])
    );
    assert_eq!(h.body_encoding, Some(HttpBodyEncoding::Text));
    assert_eq!(h.json::<serde_json::Value>().unwrap()["action"], "opened");
    assert_eq!(h.identities.len(), 1);
}

/// Proves an octet-stream body (§4c) is base64-decoded to the exact bytes.
#[test]
fn http_octet_stream_request() {
    let h = HttpInvocation::from_invocation(&envelope("http_octet_stream.json")).unwrap();
    assert_eq!(h.method, Method::PUT);
    assert_eq!(
        h.body.as_deref(),
        Some(&[0x00, 0x01, 0xff, 0x80, 0x7f, b'\n'][..])
    );
    assert_eq!(h.body_encoding, Some(HttpBodyEncoding::Base64));
}

/// Proves an omitted Body (Content-Length 0 / chunked, §4c) is `None`, a lower-case method
/// is normalized, and the doc sample's string `"Query": "{}"` is accepted.
#[test]
fn http_request_without_body() {
    let h = HttpInvocation::from_invocation(&envelope("http_no_body.json")).unwrap();
    assert_eq!(h.body, None);
    assert_eq!(h.body_encoding, None);
    assert_eq!(h.method, Method::GET);
    assert!(h.query.is_empty());
    assert!(h.warnings.is_empty(), "{:?}", h.warnings);
}

/// Proves every malformed envelope is a `MalformedEnvelope` error with a helpful message.
#[test]
fn malformed_envelopes_are_rejected() {
    for name in [
        "malformed_not_json.txt",
        "malformed_array.json",
        "malformed_data_string.json",
        "malformed_truncated.json",
    ] {
        let err = parse_envelope(&fixture(name)).unwrap_err();
        assert!(
            matches!(err, ProtocolError::MalformedEnvelope { .. }),
            "{name}: {err:?}"
        );
        assert!(err.to_string().contains("\"Data\""), "{name}: {err}");
        assert_eq!(err.status(), axum::http::StatusCode::BAD_REQUEST);
    }
    assert!(parse_envelope(b"  ").is_err());
}

/// Proves a well-formed envelope lacking the trigger is a `PayloadError`, not a panic.
#[test]
fn missing_trigger_is_a_payload_error() {
    let req = syncbridge_protocol::InvocationRequest::from_slice(br#"{"Data":{},"Metadata":{}}"#)
        .unwrap();
    assert!(TimerInvocation::from_invocation(&req).is_err());
    assert!(ServiceBusInvocation::from_invocation(&req).is_err());
    assert!(HttpInvocation::from_invocation(&req).is_err());
    let timer_garbage = syncbridge_protocol::InvocationRequest::from_slice(
        br#"{"Data":{"timer":{"IsPastDue":"maybe"}}}"#,
    )
    .unwrap();
    assert!(TimerInvocation::from_invocation(&timer_garbage).is_err());
}
