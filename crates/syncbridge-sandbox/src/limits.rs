//! The app-wide fixed-window rate limiter (HubSpot limits each app to N
//! requests per 10-second window) and the header values it reports.
//!
//! The window starts with the first request after a reset or a config change
//! and is measured on tokio's clock, so tests can pause time.

use std::time::Duration;

use tokio::time::Instant;

use crate::config::RateLimit;

/// What the limiter reports on every `/crm` response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateInfo {
    /// Requests allowed per window.
    pub limit: u32,
    /// Requests left in the current window (after this one).
    pub remaining: u32,
    /// Time until the window resets.
    pub reset_in: Duration,
    /// Window length.
    pub window: Duration,
}

impl RateInfo {
    /// `reset_in` rounded up to whole seconds, at least 1 (for `Retry-After`
    /// and `X-RateLimit-Reset`).
    pub fn reset_secs(&self) -> u64 {
        let s = self.reset_in.as_secs() + u64::from(self.reset_in.subsec_nanos() > 0);
        s.max(1)
    }
}

/// Fixed-window counter.
#[derive(Debug, Default)]
pub struct Limiter {
    window: Option<(RateLimit, Instant, u32)>,
}

impl Limiter {
    /// Counts one request under `rule`; `Err` when it is over the limit.
    ///
    /// # Errors
    /// The request exceeds the window's budget; the info says when it resets.
    pub fn check(&mut self, rule: RateLimit, now: Instant) -> Result<RateInfo, RateInfo> {
        let (start, used) = match self.window {
            Some((r, start, used)) if r == rule && now < start + rule.window => (start, used),
            _ => (now, 0),
        };
        let info = |used: u32| RateInfo {
            limit: rule.limit,
            remaining: rule.limit.saturating_sub(used),
            reset_in: (start + rule.window).saturating_duration_since(now),
            window: rule.window,
        };
        if used >= rule.limit {
            self.window = Some((rule, start, used));
            return Err(info(used));
        }
        self.window = Some((rule, start, used + 1));
        Ok(info(used + 1))
    }

    /// Forgets the current window.
    pub fn reset(&mut self) {
        self.window = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// N requests pass per window, the next is refused with the time to reset, and the window renews.
    #[test]
    fn fixed_window() {
        let rule = RateLimit::new(2, Duration::from_secs(10));
        let mut l = Limiter::default();
        let t0 = Instant::now();
        assert_eq!(l.check(rule, t0).unwrap().remaining, 1);
        assert_eq!(l.check(rule, t0).unwrap().remaining, 0);
        let refused = l.check(rule, t0 + Duration::from_millis(2500)).unwrap_err();
        assert_eq!(refused.remaining, 0);
        assert_eq!(refused.reset_in, Duration::from_millis(7500));
        assert_eq!(refused.reset_secs(), 8);
        assert!(l.check(rule, t0 + Duration::from_secs(10)).is_ok());
    }
}
