//! Property tests for the encodings that must be lossless.

use proptest::prelude::*;
use serde_json::Value;
use syncbridge_protocol::encoding::{quote, unquote};
use syncbridge_protocol::{
    BodySource, BrokerMessage, DataType, FromInvocation, InvocationRequest, ServiceBusInvocation,
    SysMetadata, service_bus_request,
};
use time::macros::datetime;

fn sys() -> SysMetadata {
    SysMetadata::new("ProcessJob", datetime!(2024-05-01 12:00 UTC))
}

proptest! {
    /// Proves arbitrary bytes sent as a binary Service Bus body come back exactly, over the wire,
    /// through both the declared-binary and the robust (undeclared) decoder.
    #[test]
    fn binary_body_round_trips_exactly(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let req = service_bus_request("msg", &body, &BrokerMessage::new("m"), true, &sys());
        let req = InvocationRequest::from_slice(&req.to_vec()).unwrap();
        let declared = ServiceBusInvocation::from_binding(&req, "msg", Some(DataType::Binary)).unwrap();
        prop_assert_eq!(&declared.body, &body);
        let robust = ServiceBusInvocation::from_invocation(&req).unwrap();
        prop_assert_eq!(&robust.body, &body);
        prop_assert_eq!(robust.body_source, BodySource::Base64);
    }

    /// Proves arbitrary metadata strings survive the host's double quoting (§4), over the wire.
    #[test]
    fn metadata_strings_survive_double_quoting(
        id in any::<String>(),
        corr in any::<String>(),
        prop in any::<String>(),
    ) {
        prop_assert_eq!(unquote(&quote(&id)), id.clone());
        let mut props = BrokerMessage::new(id.clone());
        props.correlation_id = Some(corr.clone());
        props.session_id = Some(id.clone());
        props.application_properties.insert("p".into(), Value::String(prop.clone()));
        let req = service_bus_request("msg", b"{}", &props, true, &sys());
        let req = InvocationRequest::from_slice(&req.to_vec()).unwrap();
        let md = ServiceBusInvocation::from_invocation(&req).unwrap().metadata;
        prop_assert_eq!(md.message_id, Some(id.clone()));
        prop_assert_eq!(md.session_id, Some(id));
        prop_assert_eq!(md.correlation_id, Some(corr));
        prop_assert_eq!(&md.application_properties["p"], &Value::String(prop));
        prop_assert!(md.warnings.is_empty());
    }

    /// Proves UTF-8 text sent as a `dataType: string` body comes back exactly, whatever it
    /// contains (including JSON objects whose fields leak into Metadata).
    #[test]
    fn string_body_round_trips(text in any::<String>(), as_object in any::<bool>()) {
        let text = if as_object { serde_json::json!({ "DeliveryCount": text, "MessageId": text }).to_string() } else { text };
        let req = service_bus_request("msg", text.as_bytes(), &BrokerMessage::new("m"), false, &sys());
        let req = InvocationRequest::from_slice(&req.to_vec()).unwrap();
        let m = ServiceBusInvocation::from_binding(&req, "msg", Some(DataType::String)).unwrap();
        prop_assert_eq!(m.body, text.into_bytes());
        prop_assert!(m.metadata.delivery_count >= 1);
    }

    /// Proves decoding arbitrary JSON metadata never panics (garbage in, warnings out).
    #[test]
    fn arbitrary_metadata_never_panics(
        count in prop_oneof![any::<i64>().prop_map(Value::from), any::<String>().prop_map(Value::from), Just(Value::Bool(true))],
        id in prop_oneof![any::<f64>().prop_map(Value::from), any::<String>().prop_map(Value::from), Just(serde_json::json!({"x": 1}))],
    ) {
        let mut req = InvocationRequest::default();
        req.data.insert("msg".into(), Value::from("e30="));
        req.metadata.insert("DeliveryCount".into(), count);
        req.metadata.insert("MessageId".into(), id);
        req.metadata.insert("SequenceNumber".into(), Value::from("nope"));
        req.metadata.insert("ApplicationProperties".into(), Value::from(3));
        let m = ServiceBusInvocation::from_invocation(&req).unwrap();
        prop_assert!(m.metadata.application_properties.is_empty());
    }
}
