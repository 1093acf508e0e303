//! How the host encodes individual values, and the defensive decoders for them.
//!
//! Everything here follows the "Value-encoding rules" of `functions-host.md` §4:
//! every `Data` and `Metadata` value passes through the host's
//! `GetHttpScriptInvocationContextValue`, which
//!
//! - writes `byte[]` as base64,
//! - embeds objects/dictionaries as JSON objects,
//! - JSON-quotes plain .NET strings **a second time** (`"abc"` arrives as `"\"abc\""`),
//! - turns integers into strings (`"DeliveryCount": "1"`),
//! - writes dates as plain ISO-8601 strings,
//! - omits null values entirely.
//!
//! Values copied from a JSON message body into `Metadata` (§4, `Utility.ApplyBindingData`)
//! may arrive in any of those shapes or as raw JSON tokens, so every reader here
//! accepts all of them and reports what it had to guess.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

/// The `dataType` a trigger binding declares (function.json, §3).
///
/// It decides how the trigger value is encoded in `Data` (§4b): `binary` → base64 of
/// the exact bytes; `string` (and the host's default when omitted) → the UTF-8 text,
/// JSON-quoted twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    /// `"dataType": "binary"`: the value is base64 (recommended, §11.4).
    Binary,
    /// `"dataType": "string"`: the value is double-encoded text.
    String,
    /// `"dataType": "stream"`: not meaningful for custom handlers; decoded like `string`.
    Stream,
}

impl DataType {
    /// The spelling used in function.json.
    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Binary => "binary",
            DataType::String => "string",
            DataType::Stream => "stream",
        }
    }

    /// Parses a function.json spelling, ignoring ASCII case (the host does too).
    pub fn parse(s: &str) -> Option<Self> {
        [DataType::Binary, DataType::String, DataType::Stream]
            .into_iter()
            .find(|d| d.as_str().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which decoding path produced a trigger body (see [`decode_trigger_value`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodySource {
    /// The value was base64: the documented `dataType: binary` path (§4b, §11.4).
    Base64,
    /// The value was a JSON string whose content was itself a JSON string literal:
    /// the `dataType: string` double encoding (§4, host unit test, Ballerina capture).
    DoubleEncodedString,
    /// The value was a JSON string used as-is (KarlGW's single-encoded fixture, §4b).
    PlainString,
    /// The value was a JSON object/array/number/bool; its JSON text is the body.
    JsonValue,
}

/// A non-fatal oddity met while decoding; handlers usually copy these into `Logs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeWarning {
    /// The `Data`/`Metadata` key concerned.
    pub key: String,
    /// What was wrong and what was assumed instead.
    pub message: String,
}

impl DecodeWarning {
    pub(crate) fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for DecodeWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Removes the host's extra layer of JSON quoting from a scalar string, if present.
///
/// `"\"job-123\""` (the raw JSON text) reaches us as the Rust string `"job-123"` *with*
/// quotes; this returns `job-123`. A value that is not a JSON string literal (a plain
/// value, or one that leaked in from a message body single-encoded, §4) is returned
/// unchanged. Exactly one layer is removed: a value whose real text is a JSON literal
/// survives because the host quoted it once more.
pub fn unquote(raw: &str) -> String {
    if raw.starts_with('"')
        && let Ok(inner) = serde_json::from_str::<String>(raw)
    {
        return inner;
    }
    raw.to_owned()
}

/// JSON-quotes a string the way the host does for plain .NET strings (§4), i.e. the
/// inverse of [`unquote`]: `job-123` → `"job-123"` (quotes included in the text).
pub fn quote(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

/// Looks a key up exactly, then ignoring ASCII case: the host's binding-data
/// dictionaries are case-insensitive (§4 \[infer\]), so a clobbering body field may
/// arrive as `messageId`. JSON `null` counts as absent (the host omits nulls).
pub(crate) fn lookup<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    let found = map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    });
    found.filter(|v| !v.is_null())
}

/// Reads a scalar string from `Metadata`, accepting double-quoted, single-quoted
/// (plain) and non-string scalars.
///
/// - String → [`unquote`]d (the documented double-quote rule, §4).
/// - Number/bool → its JSON text, with a warning: the host always writes string
///   properties as strings, so a number means a message-body field such as
///   `"MessageId": 5` leaked into Metadata and clobbered the real value (§4
///   `ApplyBindingData`). The real value is gone; the leaked one is the best we have.
/// - Object/array → `None` with a warning (same leak, unusable).
pub(crate) fn meta_string(
    map: &Map<String, Value>,
    key: &str,
    warnings: &mut Vec<DecodeWarning>,
) -> Option<String> {
    match lookup(map, key)? {
        Value::String(s) => Some(unquote(s)),
        v @ (Value::Number(_) | Value::Bool(_)) => {
            warnings.push(DecodeWarning::new(
                key,
                format!(
                    "expected a string but found {v}; probably a message-body field that \
                     leaked into Metadata (functions-host.md §4); using it as text"
                ),
            ));
            Some(v.to_string())
        }
        other => {
            warnings.push(DecodeWarning::new(
                key,
                format!(
                    "expected a string but found a JSON {}; ignored (functions-host.md §4)",
                    json_kind(other)
                ),
            ));
            None
        }
    }
}

/// Reads an integer from `Metadata`: the host writes ints as strings (`"17"`, §4); a
/// raw number (leaked body field) is accepted as well. `Err` holds a description of the
/// unusable value; the caller decides the fallback.
pub(crate) fn meta_i64(map: &Map<String, Value>, key: &str) -> Option<Result<i64, String>> {
    let value = lookup(map, key)?;
    Some(match value {
        Value::Number(n) => n.as_i64().ok_or_else(|| format!("{n} is not an integer")),
        Value::String(s) => {
            let text = unquote(s);
            text.trim()
                .parse::<i64>()
                .map_err(|_| format!("{text:?} is not an integer"))
        }
        other => Err(format!("found a JSON {}", json_kind(other))),
    })
}

/// Reads an ISO-8601 timestamp from `Metadata` (plain or quoted; with `Z`, an offset,
/// or no offset at all, which the host uses for `*Utc` values and which means UTC).
pub(crate) fn meta_time(
    map: &Map<String, Value>,
    key: &str,
    warnings: &mut Vec<DecodeWarning>,
) -> Option<OffsetDateTime> {
    match lookup(map, key)? {
        Value::String(s) => {
            let text = unquote(s);
            let parsed = parse_time(&text);
            if parsed.is_none() {
                warnings.push(DecodeWarning::new(
                    key,
                    format!("{text:?} is not an ISO-8601 timestamp; ignored"),
                ));
            }
            parsed
        }
        other => {
            warnings.push(DecodeWarning::new(
                key,
                format!(
                    "expected a timestamp string but found a JSON {}; ignored",
                    json_kind(other)
                ),
            ));
            None
        }
    }
}

/// Parses the timestamp shapes the host emits: RFC 3339 (`2023-10-12T20:13:49.64Z`,
/// `…+00:00`, 7 fractional digits from .NET) or offset-less (`2023-10-12T20:13:49`,
/// taken as UTC).
pub fn parse_time(text: &str) -> Option<OffsetDateTime> {
    let text = text.trim();
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(t);
    }
    let naive = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    PrimitiveDateTime::parse(text, naive)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

/// Formats a timestamp as RFC 3339 in UTC (`…Z`), the shape of `sys.UtcNow` (§4a).
pub fn format_time_utc(t: OffsetDateTime) -> String {
    t.to_offset(UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Formats a UTC timestamp without an offset, the shape of `EnqueuedTimeUtc` in §4b.
pub(crate) fn format_time_naive_utc(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    let base = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let mut out = t.format(base).unwrap_or_default();
    if t.nanosecond() != 0 {
        // .NET round-trip format: 7 fractional digits (100 ns ticks).
        out.push_str(&format!(".{:07}", t.nanosecond() / 100));
    }
    out
}

/// Formats a timestamp with an explicit `+00:00` offset, the shape of `EnqueuedTime` in §4b.
pub(crate) fn format_time_offset(t: OffsetDateTime) -> String {
    let mut out = format_time_naive_utc(t);
    out.push_str("+00:00");
    out
}

/// Decodes a trigger value from `Data.<binding>` into the exact body bytes.
///
/// With `hint = Some(DataType::Binary)` the documented path (§4b, §11.4) is tried first:
/// the value is strict, padded standard base64. Otherwise, or if that fails, the
/// "Robust decoder" of §4 applies:
///
/// 1. JSON-unquote (serde already did that: the value is a JSON string `s`);
/// 2. if `s` unquotes again, the inner text is the body (double-encoded `string`);
/// 3. else, unless the binding is declared `string`, try base64;
/// 4. else `s` itself is the body (single-encoded, KarlGW's fixture).
///
/// Step 2 cannot misfire on base64 input (base64 never starts with `"`). Step 3 can
/// misread a short single-encoded text such as `abcd` as base64: that ambiguity is
/// inherent in the undeclared path and is why binding `dataType: binary` is
/// recommended. Non-string values (an embedded object) yield their JSON text.
///
/// Returns `None` when the value is absent or `null`.
pub fn decode_trigger_value(
    value: Option<&Value>,
    hint: Option<DataType>,
    warnings: &mut Vec<DecodeWarning>,
    key: &str,
) -> Option<(Vec<u8>, BodySource)> {
    let value = value.filter(|v| !v.is_null())?;
    let s = match value {
        Value::String(s) => s,
        other => {
            return Some((other.to_string().into_bytes(), BodySource::JsonValue));
        }
    };
    if hint == Some(DataType::Binary) {
        if let Ok(bytes) = STANDARD.decode(s) {
            return Some((bytes, BodySource::Base64));
        }
        warnings.push(DecodeWarning::new(
            key,
            "binding declares dataType binary but the value is not base64; \
             decoded as text (functions-host.md §4b)",
        ));
    }
    if s.starts_with('"')
        && let Ok(inner) = serde_json::from_str::<String>(s)
    {
        return Some((inner.into_bytes(), BodySource::DoubleEncodedString));
    }
    let may_be_base64 = !matches!(hint, Some(DataType::String | DataType::Stream));
    if may_be_base64 && let Ok(bytes) = STANDARD.decode(s) {
        return Some((bytes, BodySource::Base64));
    }
    Some((s.clone().into_bytes(), BodySource::PlainString))
}

/// Base64-encodes bytes the way Newtonsoft writes `byte[]` (standard alphabet, padded).
pub fn encode_base64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Strict standard base64 decoding (padded), as used for octet-stream HTTP bodies.
pub(crate) fn decode_base64(s: &str) -> Option<Vec<u8>> {
    STANDARD.decode(s.trim()).ok()
}

/// True when the host would base64-decode this output value before sending it on (§5:
/// "for non-binary output bindings the host first tries `Convert.FromBase64String` on
/// any string output"). Bare tokens such as `"abcd1234"` are affected; JSON objects are not.
pub fn is_base64_hazard(value: &Value) -> bool {
    match value {
        Value::String(s) => !s.is_empty() && decode_base64(s).is_some(),
        _ => false,
    }
}

/// A short name for a JSON value's kind, for error messages.
pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Accepts an object, or a string holding a JSON object (possibly quoted once more),
/// which is how some host versions emit nested values (the doc sample's `"Query": "{}"`, §4c).
pub(crate) fn as_object(value: &Value) -> Option<Map<String, Value>> {
    match value {
        Value::Object(map) => Some(map.clone()),
        Value::String(s) => {
            let text = unquote(s);
            match serde_json::from_str::<Value>(&text) {
                Ok(Value::Object(map)) => Some(map),
                _ => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Proves one layer of host quoting is removed and plain values pass through.
    #[test]
    fn unquote_removes_exactly_one_layer() {
        assert_eq!(unquote("\"job-123\""), "job-123");
        assert_eq!(unquote("job-123"), "job-123");
        assert_eq!(unquote("\"\\\"x\\\"\""), "\"x\"");
        assert_eq!(unquote("\"unterminated"), "\"unterminated");
    }

    /// Proves `quote` is the inverse of `unquote` for awkward text.
    #[test]
    fn quote_then_unquote_round_trips() {
        for s in ["", "a\"b", "line\nbreak", "ünïcode", "\\"] {
            assert_eq!(unquote(&quote(s)), s);
        }
    }

    /// Proves every timestamp shape the note shows parses.
    #[test]
    fn parse_time_accepts_host_shapes() {
        for s in [
            "2023-10-12T20:13:49.64Z",
            "2022-07-05T11:40:07.4850616Z",
            "2023-10-12T20:13:49",
            "2023-10-12T20:13:49+00:00",
            "2023-10-12T20:13:49.1234567",
        ] {
            assert!(parse_time(s).is_some(), "{s}");
        }
        assert!(parse_time("yesterday").is_none());
    }

    /// Proves the naive and offset formatters produce what `parse_time` reads back.
    #[test]
    fn time_formatters_round_trip() {
        let t = time::macros::datetime!(2023-10-12 20:13:49.123_456_7 UTC);
        assert_eq!(format_time_naive_utc(t), "2023-10-12T20:13:49.1234567");
        assert_eq!(parse_time(&format_time_naive_utc(t)), Some(t));
        assert_eq!(parse_time(&format_time_offset(t)), Some(t));
        assert_eq!(parse_time(&format_time_utc(t)), Some(t));
    }

    /// Proves the robust decoder's order: double-encoded text, base64, plain text.
    #[test]
    fn robust_decoder_paths() {
        let mut w = Vec::new();
        let dec = |v: Value, hint, w: &mut Vec<DecodeWarning>| {
            decode_trigger_value(Some(&v), hint, w, "msg").unwrap()
        };
        assert_eq!(
            dec(json!("eyJqb2JJZCI6IjEyMyJ9"), None, &mut w),
            (br#"{"jobId":"123"}"#.to_vec(), BodySource::Base64)
        );
        assert_eq!(
            dec(json!("\"aaaaa\""), None, &mut w),
            (b"aaaaa".to_vec(), BodySource::DoubleEncodedString)
        );
        assert_eq!(
            dec(json!("{\"a\":1}"), None, &mut w),
            (b"{\"a\":1}".to_vec(), BodySource::PlainString)
        );
        assert_eq!(
            dec(json!("abcd"), Some(DataType::String), &mut w),
            (b"abcd".to_vec(), BodySource::PlainString)
        );
        assert!(w.is_empty());
        assert_eq!(
            dec(json!("not base64!"), Some(DataType::Binary), &mut w).1,
            BodySource::PlainString
        );
        assert_eq!(w.len(), 1);
        assert!(decode_trigger_value(Some(&Value::Null), None, &mut w, "msg").is_none());
    }

    /// Proves the §5 base64 hazard check flags bare tokens and spares objects.
    #[test]
    fn base64_hazard_detection() {
        assert!(is_base64_hazard(&json!("abcd1234")));
        assert!(!is_base64_hazard(&json!("queued!")));
        assert!(!is_base64_hazard(&json!({"status": "queued"})));
    }
}
