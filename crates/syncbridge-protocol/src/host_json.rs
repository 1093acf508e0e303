//! The `host.json` model for a custom-handler app (§1), plus the pieces shared with
//! `function.json`: `%AppSetting%` expansion and .NET `TimeSpan` parsing.
//!
//! Unknown keys are preserved in `extra` maps so a parse → serialize round trip does not
//! lose settings this model does not name.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::function_json::FunctionJson;

/// `host.json` (§1).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostJson {
    /// `version` (`"2.0"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `customHandler`: how to start the handler and how HTTP reaches it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_handler: Option<CustomHandler>,
    /// `extensionBundle` (`Microsoft.Azure.Functions.ExtensionBundle`, `[4.*, 5.0.0)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension_bundle: Option<ExtensionBundle>,
    /// `functionTimeout` as a .NET TimeSpan (`"00:10:00"`); see [`HostJson::function_timeout`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_timeout: Option<String>,
    /// `extensions`: `serviceBus` and `http` sections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Extensions>,
    /// `logging`, untouched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<Value>,
    /// `concurrency` (dynamic concurrency), untouched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Value>,
    /// Any other top-level key.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `customHandler` (§1; bound onto the host's `HttpWorkerOptions`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomHandler {
    /// `description`: the executable to launch.
    pub description: CustomHandlerDescription,
    /// `enableForwardingHttpRequest`: legacy "rebuild and forward" mode (§4d). Default false.
    #[serde(default)]
    pub enable_forwarding_http_request: bool,
    /// `enableProxyingHttpRequest`: YARP proxying of the live request (§4d). Default false.
    #[serde(default)]
    pub enable_proxying_http_request: bool,
    /// `port`: pin the handler port (newer hosts) instead of a random one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `http` (newer hosts: `defaultAuthorizationLevel`, `routes`, `enableProxying`), untouched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<Value>,
    /// Any other key.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `customHandler.description` (§1).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomHandlerDescription {
    /// `defaultExecutablePath`: relative to the app root if the file exists there,
    /// else looked up on PATH. Must not be empty.
    pub default_executable_path: String,
    /// `arguments`: appended to the command line; `%APP_SETTING%` tokens are expanded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arguments: Vec<String>,
    /// `workingDirectory`: relative to the app root; empty/absent = app root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
    /// Any other key (`defaultWorkerPath`, `workerArguments`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl CustomHandlerDescription {
    /// `arguments` with `%APP_SETTING%` tokens expanded (§1 \[doc\]).
    ///
    /// # Errors
    /// [`ConfigError::MissingAppSetting`] for a token with no value.
    pub fn expanded_arguments(
        &self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Vec<String>, ConfigError> {
        self.arguments
            .iter()
            .map(|a| expand_app_settings(a, &lookup))
            .collect()
    }
}

/// `extensionBundle`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExtensionBundle {
    /// `id`.
    pub id: String,
    /// `version` range.
    pub version: String,
}

/// `extensions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Extensions {
    /// `extensions.serviceBus` (§1a).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_bus: Option<ServiceBusOptions>,
    /// `extensions.http`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpExtension>,
    /// Any other extension section.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `extensions.serviceBus` for extension 5.x (§1a). `None` = extension default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceBusOptions {
    /// `prefetchCount` (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefetch_count: Option<u32>,
    /// `autoCompleteMessages` (default true; keep true for custom handlers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_complete_messages: Option<bool>,
    /// `maxAutoLockRenewalDuration` (TimeSpan, default `00:05:00`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_auto_lock_renewal_duration: Option<String>,
    /// `maxConcurrentCalls` (default 16 × processors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_calls: Option<u32>,
    /// `maxConcurrentSessions` (default 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_sessions: Option<u32>,
    /// `maxConcurrentCallsPerSession` (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_calls_per_session: Option<u32>,
    /// `maxMessageBatchSize` (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_message_batch_size: Option<u32>,
    /// `minMessageBatchSize` (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_message_batch_size: Option<u32>,
    /// `maxBatchWaitTime` (TimeSpan, default 30 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_batch_wait_time: Option<String>,
    /// `sessionIdleTimeout` (TimeSpan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_idle_timeout: Option<String>,
    /// Any other key (`clientRetryOptions`, `transportType`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `extensions.http`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpExtension {
    /// `routePrefix` (default `api`; `""` removes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_prefix: Option<String>,
    /// Any other key.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// How an HTTP-triggered function's requests reach the handler (§4c/§4d).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMode {
    /// JSON envelope with `Data.req` (§4c); answer via `Outputs.res`.
    Envelope,
    /// Legacy forwarding: a rebuilt request on the original path (§4d).
    Forwarded,
    /// YARP proxying: the live request on the original path and query (§4d).
    Proxied,
}

impl HostJson {
    /// The file's name at the app root.
    pub const FILE_NAME: &'static str = "host.json";

    /// Parses `host.json` text and checks `defaultExecutablePath` is not empty.
    ///
    /// # Errors
    /// Invalid JSON/shape, or an empty `defaultExecutablePath` (a host config error, §1).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let parsed: Self =
            serde_json::from_str(text).map_err(|e| ConfigError::Json(e.to_string()))?;
        if let Some(ch) = &parsed.custom_handler
            && ch.description.default_executable_path.trim().is_empty()
        {
            return Err(ConfigError::EmptyExecutablePath);
        }
        Ok(parsed)
    }

    /// `extensions.http.routePrefix`, default `api` (§3).
    pub fn route_prefix(&self) -> &str {
        self.extensions
            .as_ref()
            .and_then(|e| e.http.as_ref())
            .and_then(|h| h.route_prefix.as_deref())
            .unwrap_or("api")
    }

    /// `functionTimeout` as a duration; `Ok(None)` when unset (plan default applies, §1).
    ///
    /// # Errors
    /// Not a .NET TimeSpan.
    pub fn function_timeout(&self) -> Result<Option<Duration>, ConfigError> {
        self.function_timeout
            .as_deref()
            .map(parse_timespan)
            .transpose()
            .map(Option::flatten)
    }

    /// How `function` receives HTTP requests: forwarded/proxied only when the flag is
    /// on **and** the function is HTTP-only (§4d); any extra binding silently falls
    /// back to the envelope. With both flags on, proxying is assumed to win \[infer\].
    pub fn http_mode(&self, function: &FunctionJson) -> HttpMode {
        let Some(ch) = &self.custom_handler else {
            return HttpMode::Envelope;
        };
        if !function.is_http_only() {
            HttpMode::Envelope
        } else if ch.enable_proxying_http_request {
            HttpMode::Proxied
        } else if ch.enable_forwarding_http_request {
            HttpMode::Forwarded
        } else {
            HttpMode::Envelope
        }
    }
}

/// Expands `%NAME%` tokens from app settings (environment variables), as the host does
/// for `description.arguments` (§1) and binding expressions such as
/// `"schedule": "%SYNC_SCHEDULE%"`. A `%` without a closing `%`, or enclosing
/// whitespace, is literal.
///
/// # Errors
/// [`ConfigError::MissingAppSetting`] when a token has no value.
pub fn expand_app_settings(
    input: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(start) = rest.find('%') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('%') {
            Some(end) if end > 0 && !after[..end].chars().any(char::is_whitespace) => {
                let name = &after[..end];
                let value = lookup(name).ok_or_else(|| ConfigError::MissingAppSetting {
                    name: name.to_owned(),
                })?;
                out.push_str(&value);
                rest = &after[end + 1..];
            }
            _ => {
                out.push('%');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Parses a .NET `TimeSpan` string: `[-][d.]hh:mm:ss[.fffffff]`. Negative values
/// (`-00:00:00.0010000` = infinite lock renewal, §1a) yield `Ok(None)`.
///
/// # Errors
/// [`ConfigError::InvalidTimeSpan`] for anything else.
pub fn parse_timespan(text: &str) -> Result<Option<Duration>, ConfigError> {
    let bad = || ConfigError::InvalidTimeSpan {
        value: text.to_owned(),
    };
    let t = text.trim();
    if let Some(positive) = t.strip_prefix('-') {
        parse_timespan(positive)?;
        return Ok(None);
    }
    let parts: Vec<&str> = t.split(':').collect();
    let [head, minutes, seconds] = parts.as_slice() else {
        return Err(bad());
    };
    let (days, hours) = match head.split_once('.') {
        Some((d, h)) => (d.parse::<u64>().map_err(|_| bad())?, h),
        None => (0, *head),
    };
    let hours: u64 = hours.parse().map_err(|_| bad())?;
    let minutes: u64 = minutes.parse().map_err(|_| bad())?;
    let (secs, frac) = match seconds.split_once('.') {
        Some((s, f)) => (s, Some(f)),
        None => (*seconds, None),
    };
    let secs: u64 = secs.parse().map_err(|_| bad())?;
    if hours > 23 || minutes > 59 || secs > 59 {
        return Err(bad());
    }
    let nanos = match frac {
        None => 0,
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            let digits: u32 = f.parse().map_err(|_| bad())?;
            digits * 10u32.pow(9 - u32::try_from(f.len()).map_err(|_| bad())?)
        }
        Some(_) => return Err(bad()),
    };
    let total = ((days * 24 + hours) * 60 + minutes) * 60 + secs;
    Ok(Some(Duration::new(total, nanos)))
}

/// Why `host.json`/`function.json` or a setting could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Not valid JSON for the model.
    #[error("invalid JSON: {0}")]
    Json(String),
    /// `customHandler.description.defaultExecutablePath` is empty.
    #[error("DefaultExecutablePath cannot be empty (host.json customHandler.description)")]
    EmptyExecutablePath,
    /// A `%NAME%` token has no app setting.
    #[error("app setting `{name}` referenced as %{name}% is not set")]
    MissingAppSetting {
        /// The setting name.
        name: String,
    },
    /// Not a .NET TimeSpan.
    #[error("{value:?} is not a TimeSpan ([d.]hh:mm:ss[.fffffff])")]
    InvalidTimeSpan {
        /// The offending text.
        value: String,
    },
    /// A timer schedule that is neither 6-field NCRONTAB nor a TimeSpan.
    #[error("timer schedule {schedule:?} is invalid: {reason}")]
    InvalidSchedule {
        /// The (expanded) schedule.
        schedule: String,
        /// What is wrong.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Proves `%NAME%` expansion, literal `%`, and the missing-setting error.
    #[test]
    fn app_setting_expansion() {
        let lookup = |k: &str| (k == "PORT").then(|| "7071".to_owned());
        assert_eq!(
            expand_app_settings("--port=%PORT%", lookup).unwrap(),
            "--port=7071"
        );
        assert_eq!(
            expand_app_settings("100% sure", lookup).unwrap(),
            "100% sure"
        );
        assert_eq!(
            expand_app_settings("50% of 10%", lookup).unwrap(),
            "50% of 10%"
        );
        assert_eq!(
            expand_app_settings("%NOPE%", lookup),
            Err(ConfigError::MissingAppSetting {
                name: "NOPE".into()
            })
        );
    }

    /// Proves the TimeSpan forms used in host.json and retry policies parse.
    #[test]
    fn timespan_forms() {
        assert_eq!(
            parse_timespan("00:10:00").unwrap(),
            Some(Duration::from_secs(600))
        );
        assert_eq!(
            parse_timespan("1.02:00:00").unwrap(),
            Some(Duration::from_secs(93_600))
        );
        assert_eq!(
            parse_timespan("00:00:00.5").unwrap(),
            Some(Duration::from_millis(500))
        );
        assert_eq!(parse_timespan("-00:00:00.0010000").unwrap(), None);
        for bad in ["10", "00:60:00", "aa:bb:cc", "00:00:00.x"] {
            assert!(parse_timespan(bad).is_err(), "{bad}");
        }
    }
}
