//! A circuit breaker around the shared backend, on an injected clock.
//!
//! Closed: calls go through; `failure_threshold` consecutive failures open
//! it. Open: calls are refused (the caller falls back) until `open_for` has
//! passed; then exactly one call is let through as a probe (half-open). A
//! successful probe closes the breaker; a failed one opens it again. A probe
//! that never reports back (its future was dropped) is replaced after
//! another `open_for`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use syncbridge_core::{Clock, Timestamp};

/// Breaker settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker.
    pub failure_threshold: u32,
    /// How long it stays open before a probe.
    pub open_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 3,
            open_for: Duration::from_secs(2),
        }
    }
}

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through; `failures` consecutive failures so far.
    Closed {
        /// Consecutive failures.
        failures: u32,
    },
    /// Calls are refused until `until`.
    Open {
        /// When a probe may go.
        until: Timestamp,
    },
    /// One probe is in flight since `since`.
    HalfOpen {
        /// When the probe started.
        since: Timestamp,
    },
}

/// What the caller should do with one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Use the backend.
    Pass,
    /// Use the backend as the half-open probe (reconnect first if needed).
    Probe,
    /// Do not touch the backend; fall back.
    Reject,
}

/// The breaker.
#[derive(Debug)]
pub struct CircuitBreaker {
    cfg: BreakerConfig,
    clock: Arc<dyn Clock>,
    state: Mutex<BreakerState>,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(cfg: BreakerConfig, clock: Arc<dyn Clock>) -> Self {
        CircuitBreaker {
            cfg,
            clock,
            state: Mutex::new(BreakerState::Closed { failures: 0 }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BreakerState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        *self.lock()
    }

    /// Whether calls currently go to the backend without probing.
    pub fn is_closed(&self) -> bool {
        matches!(self.state(), BreakerState::Closed { .. })
    }

    /// When an open breaker will next let a probe through (`None` if not open).
    pub fn open_until(&self) -> Option<Timestamp> {
        match self.state() {
            BreakerState::Open { until } => Some(until),
            BreakerState::HalfOpen { since } => Some(since.add(self.cfg.open_for)),
            BreakerState::Closed { .. } => None,
        }
    }

    /// Decides what one call does.
    pub fn admit(&self) -> Admission {
        let now = self.clock.now();
        let mut s = self.lock();
        match *s {
            BreakerState::Closed { .. } => Admission::Pass,
            BreakerState::Open { until } if now >= until => {
                *s = BreakerState::HalfOpen { since: now };
                Admission::Probe
            }
            BreakerState::HalfOpen { since } if now >= since.add(self.cfg.open_for) => {
                *s = BreakerState::HalfOpen { since: now };
                Admission::Probe
            }
            _ => Admission::Reject,
        }
    }

    /// Reports a successful call (closes a half-open breaker).
    pub fn on_success(&self) {
        let mut s = self.lock();
        match *s {
            BreakerState::Closed { failures: 0 } => {}
            BreakerState::Closed { .. } | BreakerState::HalfOpen { .. } => {
                *s = BreakerState::Closed { failures: 0 };
            }
            // A slow success from before the breaker opened does not close it.
            BreakerState::Open { .. } => {}
        }
    }

    /// Reports a failed call (error or timeout).
    pub fn on_failure(&self) {
        let now = self.clock.now();
        let mut s = self.lock();
        let open = BreakerState::Open {
            until: now.add(self.cfg.open_for),
        };
        match *s {
            BreakerState::Closed { failures } => {
                let failures = failures + 1;
                *s = if failures >= self.cfg.failure_threshold {
                    open
                } else {
                    BreakerState::Closed { failures }
                };
            }
            BreakerState::HalfOpen { .. } => *s = open,
            BreakerState::Open { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use syncbridge_core::ManualClock;

    use super::*;

    fn breaker() -> (Arc<ManualClock>, CircuitBreaker) {
        let clock = Arc::new(ManualClock::new(Timestamp::from_millis(10_000)));
        let b = CircuitBreaker::new(
            BreakerConfig {
                failure_threshold: 2,
                open_for: Duration::from_secs(1),
            },
            clock.clone(),
        );
        (clock, b)
    }

    /// Threshold failures open it; after open_for exactly one probe goes; its success closes it.
    #[test]
    fn open_probe_close() {
        let (clock, b) = breaker();
        assert_eq!(b.admit(), Admission::Pass);
        b.on_failure();
        b.on_success(); // a success resets the count
        b.on_failure();
        assert!(b.is_closed());
        b.on_failure();
        assert_eq!(
            b.state(),
            BreakerState::Open {
                until: Timestamp::from_millis(11_000)
            }
        );
        assert_eq!(b.admit(), Admission::Reject);
        clock.advance(Duration::from_millis(1000));
        assert_eq!(b.admit(), Admission::Probe);
        assert_eq!(b.admit(), Admission::Reject, "only one probe at a time");
        b.on_success();
        assert!(b.is_closed());
        assert_eq!(b.admit(), Admission::Pass);
    }

    /// A failed probe re-opens it for another period; a lost probe is replaced after open_for.
    #[test]
    fn failed_and_lost_probes() {
        let (clock, b) = breaker();
        b.on_failure();
        b.on_failure();
        clock.advance(Duration::from_secs(1));
        assert_eq!(b.admit(), Admission::Probe);
        b.on_failure();
        assert_eq!(b.admit(), Admission::Reject);
        assert_eq!(b.open_until(), Some(Timestamp::from_millis(12_000)));
        clock.advance(Duration::from_secs(1));
        assert_eq!(b.admit(), Admission::Probe);
        // the probe never reports back
        clock.advance(Duration::from_millis(999));
        assert_eq!(b.admit(), Admission::Reject);
        clock.advance(Duration::from_millis(1));
        assert_eq!(b.admit(), Admission::Probe);
        // a stale success while open does not close it
        b.on_failure();
        b.on_success();
        assert!(!b.is_closed());
    }
}
