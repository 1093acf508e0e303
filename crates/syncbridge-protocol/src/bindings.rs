//! Host-side behaviour of bindings that the local host reproduces (moved here
//! from the local host's former stopgap module: this crate is the only one that
//! knows the host's JSON):
//!
//! - [`output_message_bodies`]: how the host's Service Bus *output* binding turns
//!   one `Outputs.<name>` value into message bodies (§5);
//! - [`rename_timer_binding`]: [`crate::timer_request`] always names the
//!   trigger `timer`; a function.json may name it otherwise;
//! - [`with_retry_context`]: `Metadata.RetryContext` while a function-level retry
//!   policy re-runs a timer (§1b); the `Exception` shape (`{"Message"}`) is inferred.

use crate::InvocationRequest;
use serde_json::Value;

/// Adds `Metadata.RetryContext {RetryCount, MaxRetryCount, Exception}` (§1b) to a
/// re-run invocation. The host embeds it as an object (a POCO), so counts are numbers.
pub fn with_retry_context(
    mut request: InvocationRequest,
    retry_count: u32,
    max_retry_count: i32,
    exception: Option<&str>,
) -> InvocationRequest {
    let exception = exception.map_or(Value::Null, |m| serde_json::json!({ "Message": m }));
    request.metadata.insert(
        "RetryContext".into(),
        serde_json::json!({
            "RetryCount": retry_count,
            "MaxRetryCount": max_retry_count,
            "Exception": exception,
        }),
    );
    request
}

/// Moves the trigger value built under `Data.timer` to `Data.<binding>`.
pub fn rename_timer_binding(mut request: InvocationRequest, binding: &str) -> InvocationRequest {
    if binding != "timer"
        && let Some(v) = request.data.remove("timer")
    {
        request.data.insert(binding.to_string(), v);
    }
    request
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

    /// The retry context added to a re-run decodes with the protocol crate's reader.
    #[test]
    fn retry_context_round_trips() {
        let r = with_retry_context(InvocationRequest::default(), 2, 3, Some("boom"));
        let ctx = r.retry_context().unwrap();
        assert_eq!((ctx.retry_count, ctx.max_retry_count), (2, 3));
        assert_eq!(ctx.exception, Some(json!({"Message": "boom"})));
    }

    /// A timer binding named otherwise than `timer` gets the trigger value under its own name.
    #[test]
    fn timer_binding_rename() {
        let mut r = InvocationRequest::default();
        r.data.insert("timer".into(), json!({"IsPastDue": false}));
        let r = rename_timer_binding(r, "tick");
        assert!(r.data.get("timer").is_none() && r.data.get("tick").is_some());
    }
}
