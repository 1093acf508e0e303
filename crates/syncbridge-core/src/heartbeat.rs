//! Function heartbeats: when each function was last invoked, last succeeded,
//! last failed (and how), and how often it failed in the last hour — kept in
//! the store, so `GET /v1/health` can report every function of a deployment,
//! whichever instance ran it.
//!
//! [`FunctionBeat`] is the stored record and [`FunctionBeat::merge`] the one
//! rule that combines a new beat with the stored one (both stores apply it
//! under their write lock or ETag, so concurrent instances lose nothing but
//! the failure times beyond [`MAX_FAILURES`]). [`Heartbeat`] is what a
//! handler holds: it writes a failure at once and a success at most once per
//! interval, so a busy function costs one store write per interval, and
//! its "last invocation" is at most that old.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::{Clock, Timestamp};
use crate::store::Store;

/// How far back failures count.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(3600);
/// The most failure times one beat keeps (the latest).
pub const MAX_FAILURES: usize = 500;
/// How often a function that keeps succeeding writes its beat.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// How one invocation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The function answered the invocation as done.
    Success,
    /// It failed (the host retries); `kind` names the failure's class
    /// (`store`, `queue`, `push`, … or an HTTP status), never its text.
    Failure {
        /// The failure's class.
        kind: String,
    },
}

/// One function's heartbeat as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionBeat {
    /// The function's name (`SyncInboundWorker`, …).
    pub function: String,
    /// The latest invocation recorded.
    pub last_invocation: Timestamp,
    /// The latest success.
    pub last_success: Option<Timestamp>,
    /// The latest failure.
    pub last_failure: Option<Timestamp>,
    /// The latest failure's class.
    pub last_error_kind: Option<String>,
    /// Failure times within [`FAILURE_WINDOW`] of `last_invocation`,
    /// ascending, at most [`MAX_FAILURES`].
    #[serde(default)]
    pub failures: Vec<Timestamp>,
}

impl FunctionBeat {
    /// The beat of one invocation of `function` at `at`. Pure.
    pub fn of(function: &str, at: Timestamp, outcome: &Outcome) -> Self {
        let (success, failure, kind) = match outcome {
            Outcome::Success => (Some(at), None, None),
            Outcome::Failure { kind } => (None, Some(at), Some(kind.clone())),
        };
        FunctionBeat {
            function: function.to_owned(),
            last_invocation: at,
            last_success: success,
            last_failure: failure,
            last_error_kind: kind,
            failures: failure.into_iter().collect(),
        }
    }

    /// `self` (stored) combined with `new` (same function), whatever order
    /// they were recorded in: the latest of each time, the latest failure's
    /// kind, the failure times of both (once each) within the window of the
    /// latest invocation. Pure.
    pub fn merge(&self, new: &FunctionBeat) -> FunctionBeat {
        let last_invocation = self.last_invocation.max(new.last_invocation);
        let (last_failure, last_error_kind) = match (self.last_failure, new.last_failure) {
            (Some(a), Some(b)) if a > b => (Some(a), self.last_error_kind.clone()),
            (_, Some(b)) => (Some(b), new.last_error_kind.clone()),
            (a, None) => (a, self.last_error_kind.clone()),
        };
        let since = last_invocation.sub(FAILURE_WINDOW);
        let mut failures: Vec<Timestamp> = self
            .failures
            .iter()
            .chain(&new.failures)
            .copied()
            .filter(|t| *t > since)
            .collect();
        failures.sort_unstable();
        failures.dedup();
        let excess = failures.len().saturating_sub(MAX_FAILURES);
        failures.drain(..excess);
        FunctionBeat {
            function: self.function.clone(),
            last_invocation,
            last_success: self.last_success.max(new.last_success),
            last_failure,
            last_error_kind,
            failures,
        }
    }

    /// Failures within [`FAILURE_WINDOW`] before `now`. Pure.
    pub fn recent_failures(&self, now: Timestamp) -> usize {
        let since = now.sub(FAILURE_WINDOW);
        self.failures.iter().filter(|t| **t > since).count()
    }
}

/// A handler's heartbeat writer (one per process and function).
#[derive(Debug)]
pub struct Heartbeat {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    function: String,
    interval: Duration,
    last_write: Mutex<Option<Timestamp>>,
}

impl Heartbeat {
    /// A writer for `function`, writing successes at most once per `interval`.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        function: &str,
        interval: Duration,
    ) -> Self {
        Heartbeat {
            store,
            clock,
            function: function.to_owned(),
            interval,
            last_write: Mutex::new(None),
        }
    }

    /// Records one invocation's outcome: a failure at once, a success when
    /// the last write is `interval` old (or there was none). A store
    /// failure is logged and otherwise ignored: a heartbeat never fails
    /// the invocation it describes.
    pub async fn record(&self, outcome: Outcome) {
        let now = self.clock.now();
        {
            let mut last = self.last_write.lock().unwrap_or_else(|p| p.into_inner());
            let due = matches!(outcome, Outcome::Failure { .. })
                || last.is_none_or(|t| now >= t.add(self.interval));
            if !due {
                return;
            }
            *last = Some(now);
        }
        let beat = FunctionBeat::of(&self.function, now, &outcome);
        if let Err(e) = self.store.put_function_beat(&beat).await {
            tracing::warn!(function = %self.function, error = %e, "heartbeat not recorded");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_millis(1_800_000_000_000 + s * 1000)
    }

    fn fail(kind: &str) -> Outcome {
        Outcome::Failure { kind: kind.into() }
    }

    /// Tried: beats merged in and out of order, failures older than the
    /// window, more failures than kept. Must hold: the latest of each time
    /// wins whatever the order; the kind goes with the latest failure;
    /// failure times are kept once, within the window, the latest
    /// `MAX_FAILURES`.
    #[test]
    fn merge_keeps_the_latest_and_the_window() {
        let a = FunctionBeat::of("F", at(10), &fail("store"));
        let b = FunctionBeat::of("F", at(20), &Outcome::Success);
        let c = FunctionBeat::of("F", at(15), &fail("queue"));
        let forward = a.merge(&c).merge(&b);
        let backward = b.merge(&c).merge(&a);
        assert_eq!(forward, backward, "order does not matter");
        assert_eq!(forward.last_invocation, at(20));
        assert_eq!(forward.last_success, Some(at(20)));
        assert_eq!(
            (forward.last_failure, forward.last_error_kind.as_deref()),
            (Some(at(15)), Some("queue"))
        );
        assert_eq!(forward.failures, [at(10), at(15)]);
        assert_eq!(forward.merge(&c).failures.len(), 2, "once each");
        assert_eq!(forward.recent_failures(at(20)), 2);
        assert_eq!(forward.recent_failures(at(3610)), 1, "an hour later");

        let late = FunctionBeat::of("F", at(4000), &Outcome::Success);
        assert!(
            forward.merge(&late).failures.is_empty(),
            "out of the window"
        );
        let mut many = FunctionBeat::of("F", at(0), &Outcome::Success);
        for s in 0..(MAX_FAILURES as i64 + 5) {
            many = many.merge(&FunctionBeat::of("F", at(s), &fail("x")));
        }
        assert_eq!(many.failures.len(), MAX_FAILURES);
        assert_eq!(many.failures[0], at(5), "the latest are kept");
    }
}
