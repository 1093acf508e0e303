//! The `function.json` model (§3): bindings and the function-level `retry` policy (§1b).
//!
//! Binding `type` and enum values (`dataType`, `cardinality`, `authLevel`, `direction`)
//! are matched ignoring ASCII case, as the host does. Binding types this model does not
//! know are kept as [`BindingKind::Other`], and unknown keys of known bindings are kept
//! in `extra`, so parse → serialize never loses configuration.

use std::time::Duration;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::encoding::DataType;
use crate::host_json::{ConfigError, expand_app_settings, parse_timespan};

/// Defines a string enum parsed ignoring ASCII case and serialized in its canonical
/// function.json spelling.
macro_rules! ci_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// The canonical function.json spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses a spelling, ignoring ASCII case.
            pub fn parse(s: &str) -> Option<Self> {
                $(if s.eq_ignore_ascii_case($text) { return Some($name::$variant); })+
                None
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::parse(&s).ok_or_else(|| D::Error::custom(format!(
                    concat!("unknown ", stringify!($name), " {:?} (expected one of: {})"),
                    s,
                    [$($text),+].join(", ")
                )))
            }
        }
    };
}

ci_enum! {
    /// A binding's `direction`.
    Direction { /// `in`.
        In = "in", /// `out`.
        Out = "out", /// `inout`.
        InOut = "inout" }
}

ci_enum! {
    /// `cardinality` of a Service Bus trigger (§3).
    Cardinality { /// `one`: one message per invocation.
        One = "one", /// `many`: batches; metadata keys get an `Array` suffix.
        Many = "many" }
}

ci_enum! {
    /// `authLevel` of an HTTP trigger (§3).
    AuthLevel { /// No key needed.
        Anonymous = "anonymous", /// Function or host key (`?code=` / `x-functions-key`).
        Function = "function", /// Master key.
        Admin = "admin" }
}

impl Serialize for DataType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for DataType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DataType::parse(&s).ok_or_else(|| {
            D::Error::custom(format!(
                "unknown dataType {s:?} (expected binary, string or stream)"
            ))
        })
    }
}

/// `function.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionJson {
    /// `bindings`.
    #[serde(default)]
    pub bindings: Vec<Binding>,
    /// `retry`: runtime retry policy (GA for timers among our triggers, §1b).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// `disabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// Any other key.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl FunctionJson {
    /// The file's name in each function's folder.
    pub const FILE_NAME: &'static str = "function.json";

    /// Parses `function.json` text.
    ///
    /// # Errors
    /// Invalid JSON or binding shape.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        serde_json::from_str(text).map_err(|e| ConfigError::Json(e.to_string()))
    }

    /// The trigger binding (direction `in`, type ending in `Trigger`).
    pub fn trigger(&self) -> Option<&Binding> {
        self.bindings
            .iter()
            .find(|b| b.direction == Direction::In && b.kind.is_trigger())
    }

    /// Whether the host may forward/proxy this function's requests (§4d,
    /// `IsHttpInAndOutFunction`): exactly one input binding, of type `httpTrigger`, and
    /// exactly one output binding, of type `http`. Anything else (e.g. an added
    /// `serviceBus` output) means the JSON envelope of §4c.
    pub fn is_http_only(&self) -> bool {
        let inputs: Vec<&Binding> = self
            .bindings
            .iter()
            .filter(|b| b.direction == Direction::In)
            .collect();
        let outputs: Vec<&Binding> = self
            .bindings
            .iter()
            .filter(|b| b.direction == Direction::Out)
            .collect();
        inputs.len() + outputs.len() == self.bindings.len()
            && matches!(inputs.as_slice(), [b] if matches!(b.kind, BindingKind::HttpTrigger(_)))
            && matches!(outputs.as_slice(), [b] if matches!(b.kind, BindingKind::Http(_)))
    }
}

/// One entry of `bindings`.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// `name`: the `Data`/`Outputs` key (`$return` binds `ReturnValue`).
    pub name: String,
    /// `direction`.
    pub direction: Direction,
    /// `type` and its type-specific settings.
    pub kind: BindingKind,
}

/// A binding's `type` with its settings.
#[derive(Debug, Clone, PartialEq)]
pub enum BindingKind {
    /// `timerTrigger`.
    TimerTrigger(TimerTrigger),
    /// `serviceBusTrigger`.
    ServiceBusTrigger(ServiceBusTrigger),
    /// `httpTrigger`.
    HttpTrigger(HttpTrigger),
    /// `http` (output).
    Http(HttpOutputBinding),
    /// `serviceBus` (output).
    ServiceBus(ServiceBusOutput),
    /// Any other type, kept verbatim.
    Other {
        /// The `type` as written.
        type_name: String,
        /// The remaining keys.
        properties: Map<String, Value>,
    },
}

impl BindingKind {
    /// The canonical `type` spelling.
    pub fn type_name(&self) -> &str {
        match self {
            BindingKind::TimerTrigger(_) => "timerTrigger",
            BindingKind::ServiceBusTrigger(_) => "serviceBusTrigger",
            BindingKind::HttpTrigger(_) => "httpTrigger",
            BindingKind::Http(_) => "http",
            BindingKind::ServiceBus(_) => "serviceBus",
            BindingKind::Other { type_name, .. } => type_name,
        }
    }

    /// Whether this is a trigger type.
    pub fn is_trigger(&self) -> bool {
        self.type_name().to_ascii_lowercase().ends_with("trigger")
    }
}

/// `timerTrigger` settings (§3).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimerTrigger {
    /// `schedule`: 6-field NCRONTAB (`{second} {minute} {hour} {day} {month} {day-of-week}`),
    /// a TimeSpan, or a `%AppSetting%` reference to one.
    pub schedule: String,
    /// `runOnStartup` (keep false in production, §3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_on_startup: Option<bool>,
    /// `useMonitor` (default true for schedules ≥ 1 minute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_monitor: Option<bool>,
    /// Any other key.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl TimerTrigger {
    /// The schedule with `%AppSetting%` references resolved through `lookup`; when a
    /// referenced setting is missing, `default` is used instead. The result must be a
    /// 6-field NCRONTAB expression or a TimeSpan.
    ///
    /// # Errors
    /// [`ConfigError::InvalidSchedule`] when the resolved schedule is neither.
    pub fn resolved_schedule(
        &self,
        lookup: impl Fn(&str) -> Option<String>,
        default: &str,
    ) -> Result<String, ConfigError> {
        let schedule = match expand_app_settings(&self.schedule, lookup) {
            Ok(s) => s,
            Err(ConfigError::MissingAppSetting { .. }) => default.to_owned(),
            Err(other) => return Err(other),
        };
        validate_schedule(&schedule)?;
        Ok(schedule)
    }
}

/// Checks a timer schedule is 6-field NCRONTAB (§3) or a TimeSpan.
///
/// # Errors
/// [`ConfigError::InvalidSchedule`] otherwise (5-field Unix cron is the usual mistake).
pub fn validate_schedule(schedule: &str) -> Result<(), ConfigError> {
    let fields = schedule.split_whitespace().count();
    if fields == 6 || (fields == 1 && parse_timespan(schedule).is_ok()) {
        return Ok(());
    }
    Err(ConfigError::InvalidSchedule {
        schedule: schedule.to_owned(),
        reason: format!(
            "{fields} fields; NCRONTAB needs 6: {{second}} {{minute}} {{hour}} {{day}} \
             {{month}} {{day-of-week}} (functions-host.md §3)"
        ),
    })
}

/// `serviceBusTrigger` settings (§3).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceBusTrigger {
    /// `queueName` (queue variant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_name: Option<String>,
    /// `topicName` (topic variant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_name: Option<String>,
    /// `subscriptionName` (topic variant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_name: Option<String>,
    /// `connection`: app-setting prefix (§6 identity connections).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// `dataType`: decides the body encoding (§4b); omitted = `string`. Use `binary`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_type: Option<DataType>,
    /// `cardinality` (default `one`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cardinality: Option<Cardinality>,
    /// `isSessionsEnabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_sessions_enabled: Option<bool>,
    /// `autoCompleteMessages` (extension 5.x; leave default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_complete_messages: Option<bool>,
    /// Any other key.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ServiceBusTrigger {
    /// The effective `dataType`: the host's default for Service Bus is `string` (§3).
    pub fn effective_data_type(&self) -> DataType {
        self.data_type.unwrap_or(DataType::String)
    }

    /// The entity path: the queue, or `topic/Subscriptions/subscription`.
    pub fn entity_path(&self) -> Option<String> {
        match (&self.queue_name, &self.topic_name, &self.subscription_name) {
            (Some(q), _, _) => Some(q.clone()),
            (None, Some(t), Some(s)) => Some(format!("{t}/Subscriptions/{s}")),
            _ => None,
        }
    }
}

/// `httpTrigger` settings (§3).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpTrigger {
    /// `authLevel`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_level: Option<AuthLevel>,
    /// `methods` (lower-case verbs); empty = all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// `route` (`webhooks/{source}`), relative to the route prefix; default = function name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// Any other key.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `http` output settings (none beyond name/direction).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpOutputBinding {
    /// Any key.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `serviceBus` output settings (§3). Only the body can be set from a custom handler (§5).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceBusOutput {
    /// `queueName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_name: Option<String>,
    /// `topicName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_name: Option<String>,
    /// `connection`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// Any other key.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Serialize for Binding {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = Map::new();
        map.insert("name".into(), self.name.clone().into());
        map.insert("type".into(), self.kind.type_name().into());
        map.insert("direction".into(), self.direction.as_str().into());
        let settings = match &self.kind {
            BindingKind::TimerTrigger(t) => serde_json::to_value(t),
            BindingKind::ServiceBusTrigger(t) => serde_json::to_value(t),
            BindingKind::HttpTrigger(t) => serde_json::to_value(t),
            BindingKind::Http(t) => serde_json::to_value(t),
            BindingKind::ServiceBus(t) => serde_json::to_value(t),
            BindingKind::Other { properties, .. } => Ok(Value::Object(properties.clone())),
        }
        .map_err(serde::ser::Error::custom)?;
        if let Value::Object(settings) = settings {
            map.extend(settings);
        }
        map.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Binding {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut map = Map::<String, Value>::deserialize(d)?;
        let mut take_str = |key: &str| -> Result<String, D::Error> {
            match map.remove(key) {
                Some(Value::String(s)) => Ok(s),
                Some(other) => Err(D::Error::custom(format!(
                    "binding `{key}` must be a string, found {other}"
                ))),
                None => Err(D::Error::custom(format!("binding is missing `{key}`"))),
            }
        };
        let type_name = take_str("type")?;
        let name = take_str("name")?;
        let direction = take_str("direction")?;
        let direction = Direction::parse(&direction).ok_or_else(|| {
            D::Error::custom(format!(
                "binding `{name}`: unknown direction {direction:?} (expected in, out or inout)"
            ))
        })?;
        let rest = Value::Object(map);
        let ctx = |e: serde_json::Error| D::Error::custom(format!("binding `{name}`: {e}"));
        let kind = match type_name.to_ascii_lowercase().as_str() {
            "timertrigger" => BindingKind::TimerTrigger(serde_json::from_value(rest).map_err(ctx)?),
            "servicebustrigger" => {
                BindingKind::ServiceBusTrigger(serde_json::from_value(rest).map_err(ctx)?)
            }
            "httptrigger" => BindingKind::HttpTrigger(serde_json::from_value(rest).map_err(ctx)?),
            "http" => BindingKind::Http(serde_json::from_value(rest).map_err(ctx)?),
            "servicebus" => BindingKind::ServiceBus(serde_json::from_value(rest).map_err(ctx)?),
            _ => BindingKind::Other {
                type_name,
                properties: match rest {
                    Value::Object(m) => m,
                    _ => Map::new(),
                },
            },
        };
        Ok(Self {
            name,
            direction,
            kind,
        })
    }
}

/// The function-level `retry` policy (§1b). `maxRetryCount: -1` retries forever;
/// counts live in instance memory (best effort).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "strategy")]
pub enum RetryPolicy {
    /// `fixedDelay`.
    #[serde(rename = "fixedDelay", rename_all = "camelCase")]
    FixedDelay {
        /// `maxRetryCount`.
        max_retry_count: i32,
        /// `delayInterval` (TimeSpan).
        delay_interval: String,
    },
    /// `exponentialBackoff`.
    #[serde(rename = "exponentialBackoff", rename_all = "camelCase")]
    ExponentialBackoff {
        /// `maxRetryCount`.
        max_retry_count: i32,
        /// `minimumInterval` (TimeSpan).
        minimum_interval: String,
        /// `maximumInterval` (TimeSpan).
        maximum_interval: String,
    },
}

impl RetryPolicy {
    /// `maxRetryCount`; `None` for `-1` (forever).
    pub fn max_retry_count(&self) -> Option<u32> {
        let n = match self {
            RetryPolicy::FixedDelay {
                max_retry_count, ..
            }
            | RetryPolicy::ExponentialBackoff {
                max_retry_count, ..
            } => *max_retry_count,
        };
        u32::try_from(n).ok()
    }

    /// The delay before retry number `attempt` (1-based): fixed, or
    /// `min × 2^(attempt-1)` capped at `max`.
    ///
    /// # Errors
    /// An interval is not a TimeSpan.
    pub fn delay_for(&self, attempt: u32) -> Result<Duration, ConfigError> {
        let span = |s: &str| parse_timespan(s).map(Option::unwrap_or_default);
        match self {
            RetryPolicy::FixedDelay { delay_interval, .. } => span(delay_interval),
            RetryPolicy::ExponentialBackoff {
                minimum_interval,
                maximum_interval,
                ..
            } => {
                let (min, max) = (span(minimum_interval)?, span(maximum_interval)?);
                let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(31));
                Ok(min.saturating_mul(factor).min(max))
            }
        }
    }
}
