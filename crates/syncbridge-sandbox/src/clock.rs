//! Sandbox time: epoch milliseconds, the ISO-8601 text HubSpot uses
//! (`2024-01-31T12:00:00.000Z`), and the mutation clock.
//!
//! Every mutation (create, update, archive, `/_sandbox/mutate` batch) takes its
//! `updatedAt` from [`MutationClock::tick`], which is strictly increasing: a
//! later mutation always carries a later millisecond than any earlier one, even
//! when the wall clock stalls or steps back. That is what makes an
//! `(updatedAt, id)` keyset walk with an exclusive `updatedAfter` watermark
//! lossless (see `store`).

use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

/// Wall-clock milliseconds since the Unix epoch.
pub fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Formats epoch milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn iso(ms: i64) -> String {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// Parses an instant given either as epoch milliseconds (`"1706702400000"`,
/// what HubSpot's search filters use) or as RFC 3339 text with any offset.
pub fn parse_instant(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<i64>() {
        return Some(ms);
    }
    let t = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos().div_euclid(1_000_000)).ok()
}

/// The per-sandbox mutation clock (lives inside the store, so it is only
/// advanced under the store's write lock).
#[derive(Debug, Clone)]
pub struct MutationClock {
    last: i64,
}

impl MutationClock {
    /// A clock whose next tick is later than `floor_ms` (the newest seeded timestamp).
    pub fn new(floor_ms: i64) -> Self {
        Self { last: floor_ms }
    }

    /// The timestamp for the next mutation: `max(wall, last + 1)`.
    pub fn tick(&mut self) -> i64 {
        self.tick_at(wall_ms())
    }

    /// [`tick`](Self::tick) with an explicit wall-clock reading.
    pub fn tick_at(&mut self, wall: i64) -> i64 {
        self.last = wall.max(self.last + 1);
        self.last
    }

    /// The timestamp of the latest mutation (or the floor).
    pub fn last(&self) -> i64 {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ISO formatting keeps three fractional digits and round-trips through the parser.
    #[test]
    fn iso_round_trip() {
        assert_eq!(iso(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso(1_706_702_400_123), "2024-01-31T12:00:00.123Z");
        assert_eq!(
            parse_instant(&iso(1_706_702_400_123)),
            Some(1_706_702_400_123)
        );
        assert_eq!(parse_instant("1706702400000"), Some(1_706_702_400_000));
        assert_eq!(
            parse_instant("2024-01-31T13:00:00+01:00"),
            Some(1_706_702_400_000)
        );
        assert_eq!(parse_instant("yesterday"), None);
    }

    /// The mutation clock never repeats or goes back, even when the wall clock does.
    #[test]
    fn clock_is_strictly_increasing() {
        let mut c = MutationClock::new(1_000);
        assert_eq!(c.tick_at(500), 1_001);
        assert_eq!(c.tick_at(500), 1_002);
        assert_eq!(c.tick_at(5_000), 5_000);
        assert_eq!(c.tick_at(5_000), 5_001);
        assert_eq!(c.last(), 5_001);
    }
}
