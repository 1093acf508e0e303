//! Timer trigger invocations (§4a).
//!
//! ```json
//! { "Data": { "timer": { "Schedule": {"AdjustForDST": true},
//!     "ScheduleStatus": {"Last": "…", "Next": "…", "LastUpdated": "…"},
//!     "IsPastDue": false } },
//!   "Metadata": { "sys": { "MethodName": "timer", "UtcNow": "…", "RandGuid": "…" } } }
//! ```
//!
//! `ScheduleStatus` is `null` when schedule monitoring is off (locally, or `useMonitor:
//! false`); we also accept it absent.

use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::encoding::{self, DecodeWarning, format_time_utc, lookup};
use crate::request::{FromInvocation, InvocationRequest, PayloadError, SysMetadata};

/// A decoded timer tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerInvocation {
    /// `IsPastDue`: this run is catching up a missed occurrence (§5 timer outcome, §11.9).
    pub is_past_due: bool,
    /// `ScheduleStatus`, `None` when monitoring is off (null) or absent.
    pub schedule_status: Option<ScheduleStatus>,
    /// `Schedule.AdjustForDST`, when present.
    pub adjust_for_dst: Option<bool>,
    /// `Metadata.sys`.
    pub sys: Option<SysMetadata>,
    /// Oddities met while decoding (never fatal).
    pub warnings: Vec<DecodeWarning>,
}

/// `ScheduleStatus` (persisted by the schedule monitor, §3 `useMonitor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleStatus {
    /// `Last`: the previous occurrence.
    pub last: OffsetDateTime,
    /// `Next`: the next expected occurrence.
    pub next: OffsetDateTime,
    /// `LastUpdated`: when the monitor last wrote the status.
    pub last_updated: OffsetDateTime,
}

impl ScheduleStatus {
    /// The JSON object the host embeds (§4a).
    pub fn to_value(&self) -> Value {
        serde_json::json!({
            "Last": format_time_utc(self.last),
            "Next": format_time_utc(self.next),
            "LastUpdated": format_time_utc(self.last_updated),
        })
    }
}

fn looks_like_timer(v: &Value) -> bool {
    encoding::as_object(v).is_some_and(|m| lookup(&m, "IsPastDue").is_some())
}

impl TimerInvocation {
    /// Decodes the timer binding called `binding`.
    ///
    /// # Errors
    /// The binding is absent, not an object, or lacks a boolean `IsPastDue`.
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
        // The timer info is a POCO, so the host embeds an object (§4); a JSON string
        // holding that object is accepted too.
        let obj = encoding::as_object(value).ok_or_else(|| {
            malformed(format!(
                "expected the timer info object, found a JSON {}",
                encoding::json_kind(value)
            ))
        })?;
        let is_past_due = match lookup(&obj, "IsPastDue") {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => match encoding::unquote(s).trim() {
                t if t.eq_ignore_ascii_case("true") => true,
                t if t.eq_ignore_ascii_case("false") => false,
                other => return Err(malformed(format!("IsPastDue is {other:?}, not a bool"))),
            },
            Some(other) => return Err(malformed(format!("IsPastDue is {other}, not a bool"))),
            None => return Err(malformed("IsPastDue is missing".to_owned())),
        };
        let mut warnings = Vec::new();
        let schedule_status = match lookup(&obj, "ScheduleStatus") {
            None => None,
            Some(v) => decode_status(v, &mut warnings),
        };
        let adjust_for_dst = lookup(&obj, "Schedule")
            .and_then(encoding::as_object)
            .and_then(|s| lookup(&s, "AdjustForDST").and_then(Value::as_bool));
        Ok(Self {
            is_past_due,
            schedule_status,
            adjust_for_dst,
            sys: request.sys(),
            warnings,
        })
    }
}

fn decode_status(value: &Value, warnings: &mut Vec<DecodeWarning>) -> Option<ScheduleStatus> {
    let Some(map) = encoding::as_object(value) else {
        warnings.push(DecodeWarning::new(
            "ScheduleStatus",
            format!(
                "expected an object or null, found a JSON {}; treated as null",
                encoding::json_kind(value)
            ),
        ));
        return None;
    };
    let time = |key: &str, w: &mut Vec<DecodeWarning>| -> Option<OffsetDateTime> {
        let t = encoding::meta_time(&map, key, w);
        if t.is_none() && lookup(&map, key).is_none() {
            w.push(DecodeWarning::new(key, "missing from ScheduleStatus"));
        }
        t
    };
    let (last, next, last_updated) = (
        time("Last", warnings),
        time("Next", warnings),
        time("LastUpdated", warnings),
    );
    match (last, next, last_updated) {
        (Some(last), Some(next), Some(last_updated)) => Some(ScheduleStatus {
            last,
            next,
            last_updated,
        }),
        _ => {
            warnings.push(DecodeWarning::new(
                "ScheduleStatus",
                "incomplete; treated as null (monitoring off)",
            ));
            None
        }
    }
}

impl FromInvocation for TimerInvocation {
    /// Finds the timer binding by name `timer`, else the only `Data` entry, else the
    /// entry that has an `IsPastDue` field.
    fn from_invocation(request: &InvocationRequest) -> Result<Self, PayloadError> {
        let (name, value) = request.find_binding(&["timer"], looks_like_timer)?;
        Self::decode(request, &name, value)
    }
}

/// Internal helper so host-side code and tests share the object layout.
pub(crate) fn timer_data(is_past_due: bool, status: Option<&ScheduleStatus>) -> Value {
    let mut map = Map::new();
    map.insert("Schedule".into(), serde_json::json!({"AdjustForDST": true}));
    map.insert(
        "ScheduleStatus".into(),
        status.map_or(Value::Null, ScheduleStatus::to_value),
    );
    map.insert("IsPastDue".into(), Value::Bool(is_past_due));
    Value::Object(map)
}
