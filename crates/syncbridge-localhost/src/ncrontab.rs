//! NCRONTAB schedules as the Functions timer trigger reads them: six fields
//! `{second} {minute} {hour} {day} {month} {day-of-week}`, evaluated in UTC
//! (the host's default when `WEBSITE_TIME_ZONE` is unset).
//!
//! Each field accepts `*`, a value, `a-b`, `*/n`, `a-b/n`, `a/n` (= `a-max/n`)
//! and comma lists of those. Months accept `JAN`–`DEC`, days of week `SUN`–`SAT`
//! (0 = Sunday … 6 = Saturday); names are case-insensitive and may be spelled in
//! full. Like NCrontab (the library behind the host's `CronSchedule`), an instant
//! matches only when **both** the day-of-month and the day-of-week fields match.
//!
//! A schedule written as `%Name%` is an app-setting reference; the host expands
//! it (`syncbridge_protocol::expand_app_settings`) before parsing. Pure code: no
//! clock, no I/O.

use std::fmt;

use syncbridge_core::Timestamp;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// A parsed six-field NCRONTAB expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    text: String,
    seconds: u64,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
}

/// Why an expression was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid NCRONTAB schedule {expression:?}: {reason}")]
pub struct ScheduleError {
    /// The text that failed.
    pub expression: String,
    /// What is wrong with it.
    pub reason: String,
}

#[derive(Clone, Copy)]
struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MONTH_NAMES: &[&str] = &[
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const DAY_NAMES: &[&str] = &[
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];

const FIELDS: [FieldSpec; 6] = [
    FieldSpec {
        name: "second",
        min: 0,
        max: 59,
        names: &[],
    },
    FieldSpec {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
    },
    FieldSpec {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
    },
    FieldSpec {
        name: "day",
        min: 1,
        max: 31,
        names: &[],
    },
    FieldSpec {
        name: "month",
        min: 1,
        max: 12,
        names: MONTH_NAMES,
    },
    FieldSpec {
        name: "day-of-week",
        min: 0,
        max: 6,
        names: DAY_NAMES,
    },
];

/// How far ahead [`Schedule::next_after`] looks before deciding a schedule never
/// fires (covers e.g. "29 February that is a Monday", which recurs every 28 years).
const HORIZON_YEARS: i32 = 30;

impl Schedule {
    /// Parses a six-field expression.
    pub fn parse(expression: &str) -> Result<Self, ScheduleError> {
        let err = |reason: String| ScheduleError {
            expression: expression.to_string(),
            reason,
        };
        let parts: Vec<&str> = expression.split_whitespace().collect();
        if parts.len() != 6 {
            return Err(err(format!(
                "expected 6 fields {{second}} {{minute}} {{hour}} {{day}} {{month}} {{day-of-week}}, got {}",
                parts.len()
            )));
        }
        let mut masks = [0u64; 6];
        for ((mask, part), spec) in masks.iter_mut().zip(&parts).zip(FIELDS) {
            *mask = parse_field(part, spec)
                .map_err(|r| err(format!("{} field {part:?}: {r}", spec.name)))?;
        }
        let [seconds, minutes, hours, days, months, weekdays] = masks;
        Ok(Schedule {
            text: parts.join(" "),
            seconds,
            minutes,
            hours,
            days,
            months,
            weekdays,
        })
    }

    /// The expression as parsed (whitespace normalised).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the whole second containing `t` is an occurrence.
    pub fn matches(&self, t: Timestamp) -> bool {
        let dt = to_datetime(t);
        self.matches_datetime(&dt)
    }

    fn matches_datetime(&self, dt: &OffsetDateTime) -> bool {
        has(self.months, u8::from(dt.month()).into())
            && has(self.days, dt.day().into())
            && has(self.weekdays, dt.weekday().number_days_from_sunday().into())
            && has(self.hours, dt.hour().into())
            && has(self.minutes, dt.minute().into())
            && has(self.seconds, dt.second().into())
    }

    /// The first occurrence strictly after `t` (occurrences are whole seconds),
    /// or `None` if there is none within 30 years (e.g. `0 0 0 31 2 *`).
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        let start = to_datetime(Timestamp::from_millis((t.as_unix_secs() + 1) * 1000));
        let limit_year = start.year() + HORIZON_YEARS;
        let mut dt = start;
        loop {
            if dt.year() > limit_year {
                return None;
            }
            if !has(self.months, u8::from(dt.month()).into()) {
                let (y, m) = match dt.month() {
                    Month::December => (dt.year() + 1, Month::January),
                    m => (dt.year(), m.next()),
                };
                dt = midnight(Date::from_calendar_date(y, m, 1).ok()?);
                continue;
            }
            if !has(self.days, dt.day().into())
                || !has(self.weekdays, dt.weekday().number_days_from_sunday().into())
            {
                dt = midnight(dt.date().next_day()?);
                continue;
            }
            if !has(self.hours, dt.hour().into()) {
                dt = dt.replace_time(Time::from_hms(dt.hour(), 0, 0).ok()?) + time::Duration::HOUR;
                continue;
            }
            if !has(self.minutes, dt.minute().into()) {
                dt = dt.replace_time(Time::from_hms(dt.hour(), dt.minute(), 0).ok()?)
                    + time::Duration::MINUTE;
                continue;
            }
            if !has(self.seconds, dt.second().into()) {
                dt += time::Duration::SECOND;
                continue;
            }
            return Some(Timestamp::from_millis(dt.unix_timestamp() * 1000));
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for Schedule {
    type Err = ScheduleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Schedule::parse(s)
    }
}

fn has(mask: u64, v: u32) -> bool {
    v < 64 && mask & (1 << v) != 0
}

fn midnight(d: Date) -> OffsetDateTime {
    PrimitiveDateTime::new(d, Time::MIDNIGHT).assume_utc()
}

fn to_datetime(t: Timestamp) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(t.as_unix_secs()).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn parse_field(text: &str, spec: FieldSpec) -> Result<u64, String> {
    let mut mask = 0u64;
    for item in text.split(',') {
        if item.is_empty() {
            return Err("empty list item".into());
        }
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s.parse().map_err(|_| format!("bad step {s:?}"))?;
                if step == 0 {
                    return Err("step must be at least 1".into());
                }
                (r, Some(step))
            }
            None => (item, None),
        };
        let (lo, hi) = if range == "*" {
            (spec.min, spec.max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a, spec)?, value(b, spec)?)
        } else {
            let v = value(range, spec)?;
            // `a/n` runs from a to the field's maximum.
            (v, if step.is_some() { spec.max } else { v })
        };
        if lo > hi {
            return Err(format!("range {lo}-{hi} runs backwards"));
        }
        let step = step.unwrap_or(1);
        let mut v = lo;
        while v <= hi {
            mask |= 1 << v;
            v += step;
        }
    }
    Ok(mask)
}

fn value(text: &str, spec: FieldSpec) -> Result<u32, String> {
    let v = if let Ok(n) = text.parse::<u32>() {
        n
    } else {
        let lower = text.to_ascii_lowercase();
        let idx = spec
            .names
            .iter()
            .position(|full| lower.len() >= 3 && full.starts_with(&lower))
            .ok_or_else(|| format!("{text:?} is not a number or a name"))?;
        idx as u32 + spec.min
    };
    if v < spec.min || v > spec.max {
        return Err(format!("{v} is outside {}-{}", spec.min, spec.max));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ts(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
    }

    /// Table: next occurrence strictly after a given instant for the documented field forms.
    #[test]
    fn next_occurrence_table() {
        let cases = [
            // expression, after, expected next
            (
                "0 */5 * * * *",
                "2026-11-28T12:03:10Z",
                "2026-11-28T12:05:00Z",
            ),
            (
                "0 */5 * * * *",
                "2026-11-28T12:05:00Z",
                "2026-11-28T12:10:00Z",
            ),
            (
                "0 */5 * * * *",
                "2026-11-28T12:04:59.999Z",
                "2026-11-28T12:05:00Z",
            ),
            (
                "*/10 * * * * *",
                "2026-11-28T12:00:00.500Z",
                "2026-11-28T12:00:10Z",
            ),
            (
                "* * * * * *",
                "2026-11-28T12:00:00Z",
                "2026-11-28T12:00:01Z",
            ),
            (
                "0 0 * * * *",
                "2026-11-28T23:30:00Z",
                "2026-11-29T00:00:00Z",
            ),
            (
                "0 30 9 * * *",
                "2026-11-28T09:30:00Z",
                "2026-11-29T09:30:00Z",
            ),
            (
                "0 30 9-17 * * *",
                "2026-11-28T17:31:00Z",
                "2026-11-29T09:30:00Z",
            ),
            (
                "0 0 9-17/4 * * *",
                "2026-11-28T10:00:00Z",
                "2026-11-28T13:00:00Z",
            ),
            (
                "0 0 0 * * 0",
                "2026-11-28T00:00:00Z",
                "2026-11-29T00:00:00Z",
            ), // Sat → Sun
            (
                "0 0 9 * * MON",
                "2026-11-28T00:00:00Z",
                "2026-11-30T09:00:00Z",
            ),
            (
                "0 0 9 * * mon-fri",
                "2026-11-28T10:00:00Z",
                "2026-11-30T09:00:00Z",
            ),
            (
                "0 0 9 * * Monday,Wed",
                "2026-12-01T10:00:00Z",
                "2026-12-02T09:00:00Z",
            ),
            (
                "0 0 0 1 JAN *",
                "2026-11-28T00:00:00Z",
                "2027-01-01T00:00:00Z",
            ),
            (
                "0 0 0 1 jan,JUL *",
                "2027-01-01T00:00:00Z",
                "2027-07-01T00:00:00Z",
            ),
            (
                "0 0 0 31 * *",
                "2026-11-28T00:00:00Z",
                "2026-12-31T00:00:00Z",
            ),
            (
                "0 0 0 29 2 *",
                "2026-03-01T00:00:00Z",
                "2028-02-29T00:00:00Z",
            ),
            (
                "0 0 0 13 * 5",
                "2026-01-01T00:00:00Z",
                "2026-02-13T00:00:00Z",
            ), // Friday the 13th (AND)
            (
                "5,10-12 0 0 * * *",
                "2026-11-28T00:00:10Z",
                "2026-11-28T00:00:11Z",
            ),
            (
                "30/15 * * * * *",
                "2026-11-28T00:00:46Z",
                "2026-11-28T00:01:30Z",
            ),
            (
                "0 0 12 * */3 *",
                "2026-11-28T00:00:00Z",
                "2027-01-01T12:00:00Z",
            ),
            (
                "0 59 23 31 12 *",
                "2026-12-31T23:59:00Z",
                "2027-12-31T23:59:00Z",
            ),
        ];
        for (expr, after, expected) in cases {
            let s = Schedule::parse(expr).unwrap();
            assert_eq!(
                s.next_after(ts(after)),
                Some(ts(expected)),
                "{expr} after {after}"
            );
        }
    }

    /// Schedules that can never fire yield None instead of looping forever.
    #[test]
    fn impossible_schedule_has_no_next() {
        let s = Schedule::parse("0 0 0 31 2 *").unwrap();
        assert_eq!(s.next_after(ts("2026-01-01T00:00:00Z")), None);
        let s = Schedule::parse("0 0 0 30 FEB *").unwrap();
        assert_eq!(s.next_after(ts("2026-01-01T00:00:00Z")), None);
    }

    /// Malformed expressions are rejected with the field named.
    #[test]
    fn rejects_malformed() {
        for bad in [
            "0 */5 * * *",
            "0 */5 * * * * *",
            "60 * * * * *",
            "0 60 * * * *",
            "0 0 24 * * *",
            "0 0 0 0 * *",
            "0 0 0 32 * *",
            "0 0 0 * 13 *",
            "0 0 0 * * 7",
            "*/0 * * * * *",
            "5-1 * * * * *",
            "a * * * * *",
            "0 0 0 * FOO *",
            "0 0 0 * * MO",
            "1,,2 * * * * *",
        ] {
            let e = Schedule::parse(bad).unwrap_err();
            assert!(!e.reason.is_empty(), "{bad}");
        }
        assert!(Schedule::parse("0 0 0 * * 6").is_ok());
    }

    fn field(min: u32, max: u32) -> impl Strategy<Value = String> {
        let single = prop_oneof![
            Just("*".to_string()),
            (min..=max).prop_map(|v| v.to_string()),
            (min..=max, min..=max).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
            (1u32..=(max - min + 1)).prop_map(|n| format!("*/{n}")),
            (min..=max, min..=max, 1u32..6).prop_map(|(a, b, n)| format!(
                "{}-{}/{n}",
                a.min(b),
                a.max(b)
            )),
        ];
        proptest::collection::vec(single, 1..3).prop_map(|v| v.join(","))
    }

    fn expression() -> impl Strategy<Value = String> {
        (
            field(0, 59),
            field(0, 59),
            field(0, 23),
            field(1, 28),
            field(1, 12),
            field(0, 6),
        )
            .prop_map(|(s, m, h, d, mo, w)| format!("{s} {m} {h} {d} {mo} {w}"))
    }

    proptest! {
        /// next(t) is strictly after t, matches the expression, and (for short gaps) no earlier second matches.
        #[test]
        fn next_is_later_and_matches(expr in expression(), t in 1_600_000_000_000i64..2_200_000_000_000i64) {
            let s = Schedule::parse(&expr).unwrap();
            let t = Timestamp::from_millis(t);
            let next = s.next_after(t).expect("days 1-28 exist every month, so every schedule fires");
            prop_assert!(next > t);
            prop_assert!(s.matches(next));
            prop_assert_eq!(next.as_millis() % 1000, 0);
            let first_candidate = (t.as_unix_secs() + 1) * 1000;
            if next.as_millis() - first_candidate <= 3_600_000 {
                let mut c = first_candidate;
                while c < next.as_millis() {
                    prop_assert!(!s.matches(Timestamp::from_millis(c)), "{} matches earlier", Timestamp::from_millis(c));
                    c += 1000;
                }
            }
        }
    }
}
