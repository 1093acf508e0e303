//! The raw invocation envelope the host POSTs (§4) and what every typed view shares.
//!
//! The host sends `{"Data": {...}, "Metadata": {...}}` (Newtonsoft, PascalCase keys) to
//! `POST /<FunctionName>` with the `X-Azure-Functions-*` headers (§2). [`InvocationRequest`]
//! keeps both maps untouched; typed views ([`crate::TimerInvocation`],
//! [`crate::ServiceBusInvocation`], [`crate::HttpInvocation`]) are decoded from it via
//! [`FromInvocation`].

use axum::http::{HeaderMap, Uri};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::encoding::{self, DecodeWarning, format_time_utc, lookup};
use crate::env::{HOST_VERSION_HEADER, INVOCATION_ID_HEADER};

/// The raw envelope: one `Data` entry per trigger/input binding name, plus the
/// trigger's binding data in `Metadata` (always including `sys`, §4).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InvocationRequest {
    /// `Data`: binding name → value, encoded per the §4 value-encoding rules.
    /// Missing or `null` in the payload is read as empty.
    #[serde(rename = "Data", default, deserialize_with = "null_as_empty")]
    pub data: Map<String, Value>,
    /// `Metadata`: trigger binding data (scalar strings double-quoted, ints as
    /// strings, nulls omitted, `sys` object). Missing or `null` is read as empty.
    #[serde(rename = "Metadata", default, deserialize_with = "null_as_empty")]
    pub metadata: Map<String, Value>,
}

fn null_as_empty<'de, D>(d: D) -> Result<Map<String, Value>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Ok(Option::<Map<String, Value>>::deserialize(d)?.unwrap_or_default())
}

impl InvocationRequest {
    /// Parses the envelope from the request body bytes.
    ///
    /// # Errors
    /// The bytes are not JSON, or not a JSON object whose `Data`/`Metadata` are objects.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        // Go through `Value` first: serde's derived struct impl would also accept a
        // JSON *array* as a positional struct, which is never a valid envelope.
        match serde_json::from_slice::<Value>(bytes)? {
            Value::Object(map) => serde_json::from_value(Value::Object(map)),
            other => Err(serde::de::Error::custom(format!(
                "the envelope is a JSON {}, not an object",
                encoding::json_kind(&other)
            ))),
        }
    }

    /// Serializes the envelope as the host would send it.
    pub fn to_vec(&self) -> Vec<u8> {
        // A struct of two `Map<String, Value>` always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The value of one `Data` binding (`null` counts as absent).
    pub fn binding(&self, name: &str) -> Option<&Value> {
        self.data.get(name).filter(|v| !v.is_null())
    }

    /// `Metadata.sys` (`MethodName`, `UtcNow`, `RandGuid`), present on every invocation (§4).
    pub fn sys(&self) -> Option<SysMetadata> {
        let sys = encoding::as_object(lookup(&self.metadata, "sys")?)?;
        let mut ignored = Vec::new();
        Some(SysMetadata {
            method_name: encoding::meta_string(&sys, "MethodName", &mut ignored)
                .unwrap_or_default(),
            utc_now: encoding::meta_time(&sys, "UtcNow", &mut ignored),
            rand_guid: encoding::meta_string(&sys, "RandGuid", &mut ignored),
        })
    }

    /// `Metadata.RetryContext`, present only while a function-level `retry` policy is
    /// re-running the invocation (§1b).
    pub fn retry_context(&self) -> Option<RetryContext> {
        let ctx = encoding::as_object(lookup(&self.metadata, "RetryContext")?)?;
        let int = |key| {
            encoding::meta_i64(&ctx, key)
                .and_then(Result::ok)
                .and_then(|n| i32::try_from(n).ok())
        };
        Some(RetryContext {
            retry_count: int("RetryCount").unwrap_or(0),
            max_retry_count: int("MaxRetryCount").unwrap_or(0),
            exception: lookup(&ctx, "Exception").cloned(),
        })
    }

    /// The single `Data` entry, or the one satisfying `pick` when there are several.
    /// Used by typed views to find their trigger without knowing the binding name.
    pub(crate) fn find_binding(
        &self,
        preferred: &[&str],
        pick: impl Fn(&Value) -> bool,
    ) -> Result<(String, &Value), PayloadError> {
        for name in preferred {
            if let Some(v) = self.binding(name) {
                return Ok(((*name).to_owned(), v));
            }
        }
        let present: Vec<(&String, &Value)> =
            self.data.iter().filter(|(_, v)| !v.is_null()).collect();
        match present.as_slice() {
            [] => Err(PayloadError::MissingBinding {
                binding: preferred.first().map_or("<trigger>", |s| s).to_owned(),
            }),
            [(name, value)] => Ok(((*name).clone(), value)),
            many => {
                let matching: Vec<_> = many.iter().filter(|(_, v)| pick(v)).collect();
                match matching.as_slice() {
                    [(name, value)] => Ok(((*name).clone(), value)),
                    _ => Err(PayloadError::AmbiguousBinding {
                        candidates: many.iter().map(|(k, _)| (*k).clone()).collect(),
                    }),
                }
            }
        }
    }
}

/// `Metadata.sys` (§4): the function name and the host's clock at dispatch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysMetadata {
    /// `MethodName`: the function (folder) name.
    pub method_name: String,
    /// `UtcNow`: when the host dispatched the invocation.
    pub utc_now: Option<OffsetDateTime>,
    /// `RandGuid`: a per-invocation random GUID.
    pub rand_guid: Option<String>,
}

impl SysMetadata {
    /// A `sys` object for `method_name` at `utc_now`, with a `RandGuid` derived from both
    /// (deterministic, so host-side fixtures are reproducible; only its shape matters).
    pub fn new(method_name: impl Into<String>, utc_now: OffsetDateTime) -> Self {
        use std::hash::{Hash, Hasher};
        let method_name = method_name.into();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        method_name.hash(&mut h);
        utc_now.unix_timestamp_nanos().hash(&mut h);
        let a = h.finish();
        a.rotate_left(17).hash(&mut h);
        let b = h.finish();
        let guid = format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0x0fff,
            0x8000 | ((b >> 48) & 0x3fff),
            b & 0xffff_ffff_ffff
        );
        Self {
            method_name,
            utc_now: Some(utc_now),
            rand_guid: Some(guid),
        }
    }

    /// The `sys` JSON object as the host writes it (plain strings, §4a/§4b examples).
    pub fn to_value(&self) -> Value {
        let mut map = Map::new();
        map.insert("MethodName".into(), Value::String(self.method_name.clone()));
        if let Some(t) = self.utc_now {
            map.insert("UtcNow".into(), Value::String(format_time_utc(t)));
        }
        if let Some(g) = &self.rand_guid {
            map.insert("RandGuid".into(), Value::String(g.clone()));
        }
        Value::Object(map)
    }
}

/// `Metadata.RetryContext` while a function-level retry policy is active (§1b).
#[derive(Debug, Clone, PartialEq)]
pub struct RetryContext {
    /// `RetryCount`: 0 on the first attempt.
    pub retry_count: i32,
    /// `MaxRetryCount` from the policy (`-1` = forever).
    pub max_retry_count: i32,
    /// `Exception` of the previous attempt, as the host serialized it.
    pub exception: Option<Value>,
}

/// Per-invocation facts that come from the HTTP request rather than the envelope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvocationContext {
    /// `X-Azure-Functions-InvocationId` header (§2); use it to correlate logs.
    pub invocation_id: Option<String>,
    /// The function name: `Metadata.sys.MethodName`, else the request path's first
    /// segment (`POST /<FunctionName>`, §2).
    pub function_name: Option<String>,
    /// `X-Azure-Functions-HostVersion` header (§2).
    pub host_version: Option<String>,
}

impl InvocationContext {
    /// Builds the context from request headers, the request URI and the parsed envelope.
    pub fn from_parts(headers: &HeaderMap, uri: &Uri, request: Option<&InvocationRequest>) -> Self {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .filter(|s| !s.is_empty())
        };
        let from_sys = request
            .and_then(InvocationRequest::sys)
            .map(|s| s.method_name)
            .filter(|s| !s.is_empty());
        let from_path = uri
            .path()
            .trim_start_matches('/')
            .split('/')
            .next()
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        Self {
            invocation_id: header(INVOCATION_ID_HEADER),
            function_name: from_sys.or(from_path),
            host_version: header(HOST_VERSION_HEADER),
        }
    }
}

/// A typed view decoded from the raw envelope; implemented by every trigger type so
/// [`crate::Invocation<T>`] can extract it.
pub trait FromInvocation: Sized {
    /// Decodes `Self` from the envelope.
    ///
    /// # Errors
    /// The envelope lacks or garbles what `Self` needs. A [`PayloadError`] is a property
    /// of the payload bytes: retrying the same payload can never succeed.
    fn from_invocation(request: &InvocationRequest) -> Result<Self, PayloadError>;
}

impl FromInvocation for InvocationRequest {
    fn from_invocation(request: &InvocationRequest) -> Result<Self, PayloadError> {
        Ok(request.clone())
    }
}

/// Why a well-formed envelope cannot be decoded into the requested typed view.
///
/// Every variant is deterministic: redelivering the same payload yields the same
/// error. [`PayloadError::is_poison`] separates a bad *message* (quarantine it and
/// answer 2xx) from a handler/function.json mismatch (answer non-2xx and fix the
/// deployment); see [`crate::extract`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PayloadError {
    /// `Data` has no (non-null) entry for the binding.
    #[error("Data has no value for binding `{binding}` (functions-host.md §4)")]
    MissingBinding {
        /// The binding name looked for.
        binding: String,
    },
    /// `Data` has several entries and none is recognisably the trigger.
    #[error(
        "Data has several bindings ({}) and the trigger cannot be told apart; decode it by name",
        candidates.join(", ")
    )]
    AmbiguousBinding {
        /// The binding names present.
        candidates: Vec<String>,
    },
    /// The binding value has the wrong shape.
    #[error("binding `{binding}`: {message}")]
    Malformed {
        /// The binding name.
        binding: String,
        /// What was wrong.
        message: String,
    },
    /// The message body is not what the application expects (e.g. not the job JSON).
    #[error("message body of binding `{binding}` is undecodable: {message}")]
    Body {
        /// The binding name.
        binding: String,
        /// The decoder's error.
        message: String,
    },
}

impl PayloadError {
    /// True when the *input itself* is bad ([`PayloadError::Malformed`],
    /// [`PayloadError::Body`]): the same bytes fail on every redelivery, so quarantine
    /// them and answer [`crate::InvocationResponse::quarantined`].
    ///
    /// False for [`PayloadError::MissingBinding`] / [`PayloadError::AmbiguousBinding`]:
    /// those mean the handler expects a binding the function.json does not declare (or
    /// cannot tell which one), so *every* message would fail. Quarantining would
    /// silently swallow the whole queue; answer non-2xx so the messages dead-letter
    /// visibly, and fix the deployment.
    pub fn is_poison(&self) -> bool {
        matches!(
            self,
            PayloadError::Malformed { .. } | PayloadError::Body { .. }
        )
    }
}

/// Collects warnings into a `Vec` of display strings (for `InvocationResponse::logs`).
pub fn warnings_to_logs(warnings: &[DecodeWarning]) -> Vec<String> {
    warnings
        .iter()
        .map(|w| format!("syncbridge-protocol warning: {w}"))
        .collect()
}
