//! Host-side builders (what the real host would send) → handler-side parsers.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::{Value, json};
use syncbridge_protocol::{
    BodySource, BrokerMessage, DataType, FromInvocation, HttpBodyEncoding, HttpInvocation,
    HttpRequestSpec, InvocationRequest, ScheduleStatus, ServiceBusInvocation, SysMetadata,
    TimerInvocation, http_request, service_bus_request, timer_request,
};
use time::macros::datetime;

fn sys() -> SysMetadata {
    SysMetadata::new("ProcessJob", datetime!(2024-05-01 12:00:00.25 UTC))
}

fn broker() -> BrokerMessage {
    let mut props = BrokerMessage::new("job-123");
    props.delivery_count = 3;
    props.sequence_number = Some(42);
    props.enqueued_time = Some(datetime!(2024-05-01 11:59:59.1234567 UTC));
    props.content_type = Some("application/json".into());
    props.lock_token = Some("4e77b3a5".into());
    props.correlation_id = Some("req-\"quoted\"".into());
    props
        .application_properties
        .insert("tenant".into(), json!("t1"));
    props
        .application_properties
        .insert("attempt".into(), json!(2));
    props
}

/// Round-trips the envelope through bytes so every test also covers serialization.
fn over_the_wire(req: &InvocationRequest) -> InvocationRequest {
    InvocationRequest::from_slice(&req.to_vec()).unwrap()
}

/// Proves a built timer request with ScheduleStatus decodes to the same values and sys.
#[test]
fn timer_round_trip_with_status() {
    let status = ScheduleStatus {
        last: datetime!(2024-05-01 11:55:00 UTC),
        next: datetime!(2024-05-01 12:00:00 UTC),
        last_updated: datetime!(2024-05-01 11:55:00.0123 UTC),
    };
    let now = datetime!(2024-05-01 12:00:00.0042 UTC);
    let req = over_the_wire(&timer_request(true, Some(&status), now, "Tick"));
    let t = TimerInvocation::from_invocation(&req).unwrap();
    assert!(t.is_past_due);
    assert_eq!(t.schedule_status, Some(status));
    let sys = t.sys.unwrap();
    assert_eq!((sys.method_name.as_str(), sys.utc_now), ("Tick", Some(now)));
    assert!(sys.rand_guid.is_some());
}

/// Proves the local-host timer writes an explicit `"ScheduleStatus": null` (§4a) that decodes to None.
#[test]
fn timer_round_trip_without_status() {
    let req = timer_request(false, None, datetime!(2024-05-01 12:00 UTC), "Tick");
    assert_eq!(req.data["timer"]["ScheduleStatus"], Value::Null);
    assert!(
        req.data["timer"]
            .as_object()
            .unwrap()
            .contains_key("ScheduleStatus")
    );
    let t = TimerInvocation::from_invocation(&over_the_wire(&req)).unwrap();
    assert_eq!(t.schedule_status, None);
}

/// Proves the binary Service Bus payload is encoded like the host (§4b: base64 body, strings
/// double-quoted, ints as strings, nulls omitted, sys present).
#[test]
fn service_bus_binary_encoding_shape() {
    let req = service_bus_request("msg", br#"{"jobId":"1"}"#, &broker(), true, &sys());
    assert_eq!(req.data["msg"], json!("eyJqb2JJZCI6IjEifQ=="));
    let md = &req.metadata;
    assert_eq!(md["MessageId"], json!("\"job-123\""));
    assert_eq!(md["DeliveryCount"], json!("3"));
    assert_eq!(md["SequenceNumber"], json!("42"));
    assert_eq!(md["EnqueuedTimeUtc"], json!("2024-05-01T11:59:59.1234567"));
    assert_eq!(
        md["EnqueuedTime"],
        json!("2024-05-01T11:59:59.1234567+00:00")
    );
    assert_eq!(md["ApplicationProperties"], md["UserProperties"]);
    assert!(!md.contains_key("SessionId"), "nulls are omitted");
    assert_eq!(md["sys"]["MethodName"], json!("ProcessJob"));
    assert!(!md.contains_key("jobId"), "binary bodies never leak (§4)");
}

/// Proves the binary Service Bus payload decodes back to the same body and properties.
#[test]
fn service_bus_binary_round_trip() {
    let props = broker();
    let req = over_the_wire(&service_bus_request(
        "msg",
        b"\x00\xffraw",
        &props,
        true,
        &sys(),
    ));
    let m = ServiceBusInvocation::from_binding(&req, "msg", Some(DataType::Binary)).unwrap();
    assert_eq!(m.body, b"\x00\xffraw");
    assert_eq!(m.body_source, BodySource::Base64);
    let md = &m.metadata;
    assert_eq!(md.delivery_count, 3);
    assert_eq!(md.message_id.as_deref(), Some("job-123"));
    assert_eq!(md.correlation_id.as_deref(), Some("req-\"quoted\""));
    assert_eq!(md.sequence_number, Some(42));
    assert_eq!(md.enqueued_time_utc, props.enqueued_time);
    assert_eq!(md.lock_token.as_deref(), Some("4e77b3a5"));
    assert_eq!(md.application_properties, props.application_properties);
    assert!(md.warnings.is_empty(), "{:?}", md.warnings);
    assert!(m.warnings.is_empty());
}

/// Proves a `dataType: string` payload is double-encoded with leaked body fields, and the parser
/// still recovers the exact body and falls back on the clobbered DeliveryCount (§4).
#[test]
fn service_bus_string_round_trip_survives_leaks() {
    let body = br#"{"jobId":"7","DeliveryCount":"x","messageId":5,"tags":["a"],"gone":null}"#;
    let req = service_bus_request("msg", body, &broker(), false, &sys());
    let raw = req.data["msg"].as_str().unwrap();
    assert!(raw.starts_with("\"{"), "double-encoded: {raw}");
    let md = &req.metadata;
    assert_eq!(
        md["jobId"],
        json!("\"7\""),
        "leaked string is quoted like any string"
    );
    assert_eq!(
        md["DeliveryCount"],
        json!("\"x\""),
        "leak overwrote the real count"
    );
    assert_eq!(
        md["MessageId"],
        json!("5"),
        "case-insensitive overwrite keeps key spelling"
    );
    assert!(!md.contains_key("messageId"));
    assert!(!md.contains_key("tags"), "arrays are not copied");
    assert!(!md.contains_key("gone"), "nulls are not copied");

    let m = ServiceBusInvocation::from_invocation(&over_the_wire(&req)).unwrap();
    assert_eq!(m.body, body);
    assert_eq!(m.body_source, BodySource::DoubleEncodedString);
    assert_eq!(m.metadata.delivery_count, 1);
    assert!(m.metadata.warnings.iter().any(|w| w.key == "DeliveryCount"));
    assert_eq!(m.metadata.message_id.as_deref(), Some("5"));
}

/// Proves a non-forwarded JSON HTTP request round-trips: query multi-values joined, headers
/// grouped, params, body text, and JSON body fields in Metadata (§4c).
#[test]
fn http_json_round_trip() {
    let spec = HttpRequestSpec {
        method: "post".into(),
        url: "https://app.azurewebsites.net/api/webhooks/github?x=1&tag=a&tag=b%20c".into(),
        headers: vec![
            ("Content-Type".into(), "application/json".into()),
            ("X-Multi".into(), "1".into()),
            ("x-multi".into(), "2".into()),
        ],
        params: BTreeMap::from([("source".into(), "github".into())]),
        body: Some(Bytes::from_static(b"{\n  \"action\": \"opened\"\n}")),
    };
    let req = http_request(
        "req",
        &spec,
        &SysMetadata::new("Webhook", datetime!(2024-05-01 12:00 UTC)),
    );
    assert_eq!(req.metadata["action"], json!("\"opened\""));
    assert_eq!(req.metadata["source"], json!("\"github\""));
    assert_eq!(req.metadata["Headers"]["X-Multi"], json!("1,2"));

    let h = HttpInvocation::from_invocation(&over_the_wire(&req)).unwrap();
    assert_eq!(h.method.as_str(), "POST");
    assert_eq!(h.query["x"], "1");
    assert_eq!(h.query["tag"], "a,b c");
    assert_eq!(h.header_values("x-multi"), ["1", "2"]);
    assert_eq!(h.params["source"], "github");
    assert_eq!(h.body, spec.body);
    assert_eq!(h.body_encoding, Some(HttpBodyEncoding::Text));
}

/// Proves octet-stream and multipart bodies travel as base64 and come back byte-exact, and an
/// empty body is omitted (§4c).
#[test]
fn http_binary_and_empty_round_trip() {
    let sys = SysMetadata::new("Upload", datetime!(2024-05-01 12:00 UTC));
    for ct in [
        "application/octet-stream",
        "multipart/form-data; boundary=x",
    ] {
        let spec = HttpRequestSpec {
            method: "PUT".into(),
            url: "https://app/api/upload".into(),
            headers: vec![("content-type".into(), ct.into())],
            body: Some(Bytes::from_static(b"\x00\x01\xff\xfe")),
            ..HttpRequestSpec::default()
        };
        let req = http_request("req", &spec, &sys);
        assert_eq!(req.data["req"]["Body"], json!("AAH//g=="));
        let h = HttpInvocation::from_invocation(&over_the_wire(&req)).unwrap();
        assert_eq!(h.body, spec.body, "{ct}");
        assert_eq!(h.body_encoding, Some(HttpBodyEncoding::Base64));
    }
    let empty = HttpRequestSpec {
        method: "GET".into(),
        url: "https://app/api/status".into(),
        body: Some(Bytes::new()),
        ..HttpRequestSpec::default()
    };
    let req = http_request("req", &empty, &sys);
    assert!(!req.data["req"].as_object().unwrap().contains_key("Body"));
    assert_eq!(HttpInvocation::from_invocation(&req).unwrap().body, None);
}
