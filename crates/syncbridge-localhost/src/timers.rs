//! Timer triggers: one loop per timer function. It asks the injected clock for
//! "now", fires when the next NCRONTAB occurrence is due, and otherwise waits in
//! short real-time slices (≤ 100 ms), so a test that moves a `ManualClock` sees the
//! tick promptly without sleeping for schedule time.
//!
//! Like the host, invocations of one timer function never overlap (a manual
//! [`crate::LocalHostHandle::fire_timer`] waits for a running tick), a run that
//! starts more than [`PAST_DUE_AFTER`] late carries `IsPastDue: true`, and missed
//! occurrences collapse into one catch-up run. `ScheduleStatus` is `null` (schedule
//! monitoring is off locally, as in the host without storage).
//!
//! A failed scheduled tick is re-run under the function's `retry` policy (§1b:
//! `fixedDelay` / `exponentialBackoff`, `maxRetryCount` -1 = forever), each re-run
//! carrying `Metadata.RetryContext`; delays are measured on the injected clock.
//! Without a policy the failure is logged and the next occurrence runs normally
//! (§5). A manual fire is a single attempt.

use std::sync::Arc;
use std::time::Duration;

use syncbridge_core::Timestamp;

use crate::HostState;
use crate::app::{FunctionSpec, Trigger};
use crate::events::TriggerKind;
use crate::invoke::{InvokeFailure, Invoked, invoke};
use crate::payload::{self, RetryAttempt};

/// How late a tick may start before it counts as past due.
pub const PAST_DUE_AFTER: Duration = Duration::from_secs(1);
/// Longest real-time wait between looks at the clock.
const SLICE: Duration = Duration::from_millis(100);

/// Fires one timer invocation now (serialised with the schedule loop).
pub(crate) async fn fire(
    host: &HostState,
    f: &FunctionSpec,
    is_past_due: bool,
    retry: Option<&RetryAttempt>,
) -> Result<Invoked, InvokeFailure> {
    let _singleton = host.timer_lock(&f.name).lock().await;
    let Trigger::Timer { binding, .. } = &f.trigger else {
        return Err(InvokeFailure {
            function: f.name.clone(),
            invocation_id: String::new(),
            reason: "not a timer-triggered function".into(),
        });
    };
    let now = host.clock.now();
    invoke(host, f, TriggerKind::Timer, || {
        payload::timer(&f.name, binding, is_past_due, now, retry)
    })
    .await
}

/// One scheduled occurrence, with the function's retry policy applied.
/// Returns false when shutdown interrupted a retry wait.
async fn tick(host: &HostState, f: &FunctionSpec, is_past_due: bool) -> bool {
    let Trigger::Timer { retry: policy, .. } = &f.trigger else {
        return true;
    };
    let mut attempt: Option<RetryAttempt> = None;
    loop {
        let failure = match fire(host, f, is_past_due, attempt.as_ref()).await {
            Ok(_) => return true,
            Err(e) => e.reason,
        };
        let Some(policy) = policy else { return true };
        let done = attempt.as_ref().map_or(0, |a| a.retry_count);
        if policy.max_retry_count().is_some_and(|max| done >= max) {
            tracing::warn!(function = %f.name, retries = done, "timer retries exhausted");
            return true;
        }
        let next = done + 1;
        let delay = policy.delay_for(next).unwrap_or(Duration::ZERO);
        tracing::info!(function = %f.name, retry = next, ?delay, "timer invocation failed; retrying");
        if !wait_until(host, host.clock.now().add(delay)).await {
            return false;
        }
        let max_retry_count = match policy {
            syncbridge_protocol::RetryPolicy::FixedDelay {
                max_retry_count, ..
            }
            | syncbridge_protocol::RetryPolicy::ExponentialBackoff {
                max_retry_count, ..
            } => *max_retry_count,
        };
        attempt = Some(RetryAttempt {
            retry_count: next,
            max_retry_count,
            exception: failure,
        });
    }
}

/// Waits until the injected clock reaches `t`; false on shutdown.
async fn wait_until(host: &HostState, t: Timestamp) -> bool {
    let mut shutdown = host.shutdown.clone();
    loop {
        let now = host.clock.now();
        if now >= t {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(t.since(now).min(SLICE)) => {}
            _ = crate::until_shutdown(&mut shutdown) => return false,
        }
    }
}

/// The schedule loop for `f` (a timer function), scheduling from `started`
/// (read when the host started, so the first occurrence does not depend on when
/// this task first runs); returns on shutdown.
pub(crate) async fn run(host: Arc<HostState>, f: Arc<FunctionSpec>, started: Timestamp) {
    let Trigger::Timer {
        schedule,
        run_on_startup,
        ..
    } = &f.trigger
    else {
        return;
    };
    if *run_on_startup && !tick(&host, &f, false).await {
        return;
    }
    let mut next: Option<Timestamp> = schedule.next_after(started);
    if next.is_none() {
        tracing::warn!(function = %f.name, schedule = %schedule, "schedule never fires");
    }
    while let Some(due) = next {
        if !wait_until(&host, due).await {
            return;
        }
        let past_due = host.clock.now().since(due) > PAST_DUE_AFTER;
        if !tick(&host, &f, past_due).await {
            return;
        }
        // Missed occurrences collapse into the run just made.
        next = schedule.next_after(host.clock.now().max(due));
    }
}
