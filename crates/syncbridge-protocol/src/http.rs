//! Non-forwarded HTTP trigger invocations (§4c).
//!
//! Used when forwarding/proxying is off, or when the function has bindings besides one
//! `httpTrigger` in and one `http` out (§4d). The request arrives as `Data.req`:
//!
//! ```json
//! { "Url": "https://app.azurewebsites.net/api/webhooks/github?x=1", "Method": "POST",
//!   "Query": {"x": "1"}, "Headers": {"Content-Type": ["application/json"]},
//!   "Params": {"source": "github"}, "Identities": [...], "Body": "{\n  \"action\": \"opened\"\n}" }
//! ```
//!
//! `Body` is omitted unless `Content-Length > 0`; it is base64 for
//! `application/octet-stream` and `multipart/*`, otherwise the decoded text (not
//! byte-exact: use forwarded/proxied mode for signatures, §11.1).

use std::collections::BTreeMap;

use axum::http::Method;
use bytes::Bytes;
use serde_json::{Map, Value};

use crate::encoding::{self, DecodeWarning, lookup};
use crate::request::{FromInvocation, InvocationRequest, PayloadError, SysMetadata};

/// How `Data.req.Body` was encoded (§4c).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpBodyEncoding {
    /// Text re-emitted as a JSON string.
    Text,
    /// Base64 of the raw bytes (octet-stream, multipart).
    Base64,
    /// A JSON value other than a string (defensive; not produced by current hosts).
    Json,
}

/// A decoded non-forwarded HTTP request.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpInvocation {
    /// The `Data` key (the trigger binding's `name`, usually `req`).
    pub binding: String,
    /// `Url`: the public URL including `/api` route prefix and query.
    pub url: String,
    /// `Method`.
    pub method: Method,
    /// `Query`: name → value (multi-values already joined by the host).
    pub query: BTreeMap<String, String>,
    /// `Headers`: name (as sent) → values.
    pub headers: BTreeMap<String, Vec<String>>,
    /// `Params`: route parameters (`{source}` in `webhooks/{source}`).
    pub params: BTreeMap<String, String>,
    /// `Identities`, untouched.
    pub identities: Vec<Value>,
    /// `Body` bytes; `None` when the host omitted it (no `Content-Length`, or 0).
    pub body: Option<Bytes>,
    /// How the body was encoded, when present.
    pub body_encoding: Option<HttpBodyEncoding>,
    /// `Metadata.sys`.
    pub sys: Option<SysMetadata>,
    /// Oddities met while decoding.
    pub warnings: Vec<DecodeWarning>,
}

impl HttpInvocation {
    /// The first value of a header, looked up ignoring ASCII case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_values(name).first().map(String::as_str)
    }

    /// All values of a header, looked up ignoring ASCII case.
    pub fn header_values(&self, name: &str) -> &[String] {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map_or(&[], |(_, v)| v.as_slice())
    }

    /// The body parsed as JSON of type `J`.
    ///
    /// # Errors
    /// No body, or the body is not valid JSON for `J`.
    pub fn json<J: serde::de::DeserializeOwned>(&self) -> Result<J, PayloadError> {
        let body = self.body.as_deref().unwrap_or_default();
        serde_json::from_slice(body).map_err(|e| PayloadError::Body {
            binding: self.binding.clone(),
            message: e.to_string(),
        })
    }

    /// Decodes the HTTP trigger binding called `binding`.
    ///
    /// # Errors
    /// The binding is absent or not an object, `Method` is missing/invalid, or an
    /// octet-stream/multipart `Body` is not base64.
    pub fn from_binding(request: &InvocationRequest, binding: &str) -> Result<Self, PayloadError> {
        let value = request
            .binding(binding)
            .ok_or_else(|| PayloadError::MissingBinding {
                binding: binding.to_owned(),
            })?;
        Self::decode(request, binding, value)
    }

    fn decode(
        request: &InvocationRequest,
        binding: &str,
        value: &Value,
    ) -> Result<Self, PayloadError> {
        let malformed = |message: String| PayloadError::Malformed {
            binding: binding.to_owned(),
            message,
        };
        let req = encoding::as_object(value).ok_or_else(|| {
            malformed(format!(
                "expected the HTTP request object, found a JSON {}",
                encoding::json_kind(value)
            ))
        })?;
        let mut warnings = Vec::new();
        let url = match lookup(&req, "Url") {
            Some(Value::String(s)) => s.clone(),
            _ => {
                warnings.push(DecodeWarning::new("Url", "missing; left empty"));
                String::new()
            }
        };
        let method = match lookup(&req, "Method") {
            // Normalized to upper case so `Method::POST` comparisons work whatever the
            // client sent.
            Some(Value::String(s)) => Method::from_bytes(s.trim().to_ascii_uppercase().as_bytes())
                .map_err(|_| malformed(format!("Method {s:?} is not an HTTP method")))?,
            _ => return Err(malformed("Method is missing".to_owned())),
        };
        // The MS doc sample shows `"Query": "{}"` but code and captures produce an
        // object (§4c); `string_map` accepts both.
        let query = string_map(&req, "Query", &mut warnings);
        let params = string_map(&req, "Params", &mut warnings);
        let headers = header_map(&req, &mut warnings);
        let identities = match lookup(&req, "Identities") {
            Some(Value::Array(a)) => a.clone(),
            _ => Vec::new(),
        };
        let content_type = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .and_then(|(_, v)| v.first())
            .map(|s| s.to_ascii_lowercase());
        let (body, body_encoding) = match lookup(&req, "Body") {
            None => (None, None),
            // §4c: base64 for octet-stream and any multipart type, decoded text otherwise.
            Some(Value::String(s)) if content_type.as_deref().is_some_and(is_binary_media_type) => {
                let bytes = encoding::decode_base64(s).ok_or_else(|| {
                    malformed(format!(
                        "Body of a {} request must be base64 (functions-host.md §4c)",
                        content_type.as_deref().unwrap_or_default()
                    ))
                })?;
                (Some(Bytes::from(bytes)), Some(HttpBodyEncoding::Base64))
            }
            Some(Value::String(s)) => (
                Some(Bytes::from(s.clone().into_bytes())),
                Some(HttpBodyEncoding::Text),
            ),
            Some(other) => (
                Some(Bytes::from(other.to_string().into_bytes())),
                Some(HttpBodyEncoding::Json),
            ),
        };
        Ok(Self {
            binding: binding.to_owned(),
            url,
            method,
            query,
            headers,
            params,
            identities,
            body,
            body_encoding,
            sys: request.sys(),
            warnings,
        })
    }
}

/// True for the media types whose `Body` the host base64-encodes (§4c).
pub fn is_binary_media_type(content_type: &str) -> bool {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    media == "application/octet-stream" || media.contains("multipart")
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn string_map(
    req: &Map<String, Value>,
    key: &str,
    warnings: &mut Vec<DecodeWarning>,
) -> BTreeMap<String, String> {
    let Some(v) = lookup(req, key) else {
        return BTreeMap::new();
    };
    match encoding::as_object(v) {
        Some(map) => map
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.clone(), scalar_text(v)))
            .collect(),
        None => {
            warnings.push(DecodeWarning::new(
                key,
                format!(
                    "expected an object, found a JSON {}; ignored",
                    encoding::json_kind(v)
                ),
            ));
            BTreeMap::new()
        }
    }
}

fn header_map(
    req: &Map<String, Value>,
    warnings: &mut Vec<DecodeWarning>,
) -> BTreeMap<String, Vec<String>> {
    let Some(v) = lookup(req, "Headers") else {
        return BTreeMap::new();
    };
    let Some(map) = encoding::as_object(v) else {
        warnings.push(DecodeWarning::new(
            "Headers",
            format!(
                "expected an object, found a JSON {}; ignored",
                encoding::json_kind(v)
            ),
        ));
        return BTreeMap::new();
    };
    // Headers are name → array of strings (§4c); a bare string is accepted as one value.
    map.iter()
        .map(|(k, v)| {
            let values = match v {
                Value::Array(items) => items.iter().map(scalar_text).collect(),
                Value::Null => Vec::new(),
                other => vec![scalar_text(other)],
            };
            (k.clone(), values)
        })
        .collect()
}

fn looks_like_http(v: &Value) -> bool {
    encoding::as_object(v).is_some_and(|m| lookup(&m, "Method").is_some())
}

impl FromInvocation for HttpInvocation {
    /// Finds the request by binding name `req`, else the only `Data` entry, else the
    /// entry that has a `Method` field.
    fn from_invocation(request: &InvocationRequest) -> Result<Self, PayloadError> {
        let (name, value) = request.find_binding(&["req"], looks_like_http)?;
        Self::decode(request, &name, value)
    }
}
