//! What a handler answers (§5).
//!
//! ```json
//! { "Outputs": { "res": { "statusCode": 202, "body": {...}, "headers": {...} } },
//!   "Logs": [ "line 1" ],
//!   "ReturnValue": null }
//! ```
//!
//! The answer to the host is **always** HTTP 200 `application/json` when the invocation
//! succeeded: any non-2xx fails the invocation, discards outputs, and makes the trigger
//! retry (Service Bus redelivers immediately, §5). For HTTP triggers the client-visible
//! status goes into `Outputs.<res>.statusCode` (§11.6).

use std::collections::BTreeMap;
use std::fmt;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::encoding::{self, lookup};

/// The handler's answer to one invocation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InvocationResponse {
    /// `Outputs`: output binding name → value.
    #[serde(rename = "Outputs")]
    pub outputs: Map<String, Value>,
    /// `Logs`: lines the host logs at Information under the invocation (App Insights).
    #[serde(rename = "Logs")]
    pub logs: Vec<String>,
    /// `ReturnValue`: feeds a `$return` binding; `null` otherwise.
    #[serde(rename = "ReturnValue")]
    pub return_value: Value,
}

impl InvocationResponse {
    /// An empty success: no outputs, no logs, `ReturnValue: null`.
    pub fn new() -> Self {
        Self::default()
    }

    /// A success for **poison** input that the caller has already quarantined.
    ///
    /// Answering 2xx makes the host complete the message (§5), so the same undecodable
    /// bytes do not spin through immediate redeliveries up to `MaxDeliveryCount`
    /// (§11.5). Persist the raw envelope ([`crate::Invocation::raw`]) *before*
    /// returning this; if persisting fails, answer non-2xx instead so the broker
    /// retries and eventually dead-letters it rather than dropping it.
    pub fn quarantined(reason: impl fmt::Display) -> Self {
        Self::new().log(format!("{QUARANTINE_LOG_PREFIX}{reason}"))
    }

    /// Whether this response is a [`Self::quarantined`] answer.
    pub fn is_quarantined(&self) -> bool {
        self.logs
            .iter()
            .any(|l| l.starts_with(QUARANTINE_LOG_PREFIX))
    }

    /// Appends a `Logs` line.
    #[must_use]
    pub fn log(mut self, line: impl Into<String>) -> Self {
        self.logs.push(line.into());
        self
    }

    /// Appends several `Logs` lines (e.g. decode warnings).
    #[must_use]
    pub fn log_all(mut self, lines: impl IntoIterator<Item = String>) -> Self {
        self.logs.extend(lines);
        self
    }

    /// Sets the output binding `name` to `value`.
    ///
    /// Use JSON objects or arrays, not bare strings: the host base64-decodes any
    /// string output that happens to be valid base64 (§5, `"abcd1234"` → 6 bytes).
    /// A hazardous value is still set, but a warning line is added to `Logs`.
    #[must_use]
    pub fn output(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        let name = name.into();
        let value = value.into();
        if encoding::is_base64_hazard(&value) {
            self.logs.push(format!(
                "syncbridge-protocol warning: output `{name}` is a bare string that the host \
                 will base64-decode (functions-host.md §5); send a JSON object instead"
            ));
        }
        self.outputs.insert(name, value);
        self
    }

    /// Sets `ReturnValue`.
    #[must_use]
    pub fn return_value(mut self, value: impl Into<Value>) -> Self {
        self.return_value = value.into();
        self
    }

    /// Sets the HTTP output binding `binding` (usually `res`) for a non-forwarded HTTP
    /// function: `status` is what the *client* sees; the host itself gets 200 (§5,
    /// §11.6). Pass the body as a JSON object (`json!({...})`), never a bare token (§5).
    #[must_use]
    pub fn http_response<K, V>(
        self,
        binding: impl Into<String>,
        status: StatusCode,
        headers: impl IntoIterator<Item = (K, V)>,
        body: impl Into<Value>,
    ) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        let out = HttpOutput {
            status_code: status.as_u16(),
            headers: headers
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            body: body.into(),
        };
        self.http_output(binding, out)
    }

    /// [`Self::http_response`] with a JSON body and `Content-Type: application/json`.
    #[must_use]
    pub fn http_json(
        self,
        binding: impl Into<String>,
        status: StatusCode,
        body: impl Into<Value>,
    ) -> Self {
        self.http_response(
            binding,
            status,
            [("Content-Type", "application/json")],
            body,
        )
    }

    /// Sets an HTTP output binding from an [`HttpOutput`].
    #[must_use]
    pub fn http_output(mut self, binding: impl Into<String>, out: HttpOutput) -> Self {
        let binding = binding.into();
        if encoding::is_base64_hazard(&out.body) {
            self.logs.push(format!(
                "syncbridge-protocol warning: body of `{binding}` is a bare string that may be \
                 base64-decoded by the host (functions-host.md §5); send a JSON object instead"
            ));
        }
        self.outputs.insert(binding, out.to_value());
        self
    }

    /// The response body bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        // Maps of `Value` always serialize.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses a handler's response body the way the host does: keys matched ignoring
    /// case (Newtonsoft), every member optional, `Logs` entries stringified.
    ///
    /// # Errors
    /// Not JSON, not an object, or `Outputs`/`Logs` of the wrong JSON kind. The host
    /// fails the invocation in that case (§5).
    pub fn parse(bytes: &[u8]) -> Result<Self, ResponseParseError> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| ResponseParseError::NotJson(e.to_string()))?;
        let Value::Object(root) = value else {
            return Err(ResponseParseError::NotAnObject(encoding::json_kind(&value)));
        };
        let outputs = match lookup(&root, "Outputs") {
            None => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(other) => {
                return Err(ResponseParseError::Field {
                    field: "Outputs",
                    message: format!(
                        "expected an object, found a JSON {}",
                        encoding::json_kind(other)
                    ),
                });
            }
        };
        let logs = match lookup(&root, "Logs") {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .filter(|v| !v.is_null())
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect(),
            Some(other) => {
                return Err(ResponseParseError::Field {
                    field: "Logs",
                    message: format!(
                        "expected an array, found a JSON {}",
                        encoding::json_kind(other)
                    ),
                });
            }
        };
        let return_value = lookup(&root, "ReturnValue").cloned().unwrap_or(Value::Null);
        Ok(Self {
            outputs,
            logs,
            return_value,
        })
    }

    /// The HTTP output binding `binding`, parsed leniently (for the local host).
    ///
    /// # Errors
    /// The output is present but not a usable HTTP response object.
    pub fn http_output_of(&self, binding: &str) -> Option<Result<HttpOutput, ResponseParseError>> {
        lookup(&self.outputs, binding).map(HttpOutput::from_value)
    }
}

const QUARANTINE_LOG_PREFIX: &str = "syncbridge: poison input quarantined: ";

impl IntoResponse for InvocationResponse {
    fn into_response(self) -> Response {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            self.to_vec(),
        )
            .into_response()
    }
}

/// The value of an HTTP output binding (`Outputs.res`, §5).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpOutput {
    /// `statusCode` for the client (we write a number; the host also takes a string).
    pub status_code: u16,
    /// `headers`: name → value.
    pub headers: BTreeMap<String, String>,
    /// `body`: any JSON; prefer objects (§5 base64 gotcha).
    pub body: Value,
}

impl HttpOutput {
    /// The JSON object for `Outputs`.
    pub fn to_value(&self) -> Value {
        let mut map = Map::new();
        map.insert("statusCode".into(), Value::from(self.status_code));
        if !self.headers.is_empty() {
            let headers = self
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            map.insert("headers".into(), Value::Object(headers));
        }
        map.insert("body".into(), self.body.clone());
        Value::Object(map)
    }

    /// Parses an HTTP output as the host does: `statusCode` (or `status`) as a number
    /// or a numeric string, default 200; `headers` an object of scalars; `body` any JSON.
    ///
    /// # Errors
    /// Not an object, or a status that is not a valid HTTP status code.
    pub fn from_value(value: &Value) -> Result<Self, ResponseParseError> {
        let obj = encoding::as_object(value).ok_or_else(|| ResponseParseError::Field {
            field: "statusCode",
            message: format!(
                "the HTTP output must be an object, found a JSON {}",
                encoding::json_kind(value)
            ),
        })?;
        let status = lookup(&obj, "statusCode").or_else(|| lookup(&obj, "status"));
        let status_code = match status {
            None => 200,
            Some(v) => {
                let n = match v {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) => encoding::unquote(s).trim().parse::<u64>().ok(),
                    _ => None,
                };
                n.and_then(|n| u16::try_from(n).ok())
                    .filter(|n| (100..=999).contains(n))
                    .ok_or_else(|| ResponseParseError::Field {
                        field: "statusCode",
                        message: format!("{v} is not an HTTP status code"),
                    })?
            }
        };
        let headers = lookup(&obj, "headers")
            .and_then(encoding::as_object)
            .map(|m| {
                m.into_iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| {
                        let v = match v {
                            Value::String(s) => s,
                            Value::Array(items) => items
                                .iter()
                                .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                                .collect::<Vec<_>>()
                                .join(", "),
                            other => other.to_string(),
                        };
                        (k, v)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let body = lookup(&obj, "body").cloned().unwrap_or(Value::Null);
        Ok(Self {
            status_code,
            headers,
            body,
        })
    }

    /// The bytes to send to the client: a string body as its text, `null` as empty,
    /// anything else as its JSON text.
    pub fn body_bytes(&self) -> Vec<u8> {
        match &self.body {
            Value::Null => Vec::new(),
            Value::String(s) => s.clone().into_bytes(),
            other => other.to_string().into_bytes(),
        }
    }
}

/// Why a handler response could not be parsed (host side).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseParseError {
    /// The body is not JSON.
    #[error("handler response is not JSON: {0}")]
    NotJson(String),
    /// The body is JSON but not an object.
    #[error("handler response must be a JSON object, found a JSON {0}")]
    NotAnObject(&'static str),
    /// A member has the wrong shape.
    #[error("handler response member `{field}`: {message}")]
    Field {
        /// Which member.
        field: &'static str,
        /// What was wrong.
        message: String,
    },
}
