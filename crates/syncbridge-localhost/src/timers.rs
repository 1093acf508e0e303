//! Timer triggers: one loop per timer function. It asks the injected clock for
//! "now", fires when the next NCRONTAB occurrence is due, and otherwise waits in
//! short real-time slices (≤ 100 ms), so a test that moves a `ManualClock` sees the
//! tick promptly without sleeping for schedule time.
//!
//! Like the host, invocations of one timer function never overlap (a manual
//! [`crate::LocalHostHandle::fire_timer`] waits for a running tick), a run that
//! starts more than [`PAST_DUE_AFTER`] late carries `IsPastDue: true`, and missed
//! occurrences collapse into one catch-up run. `ScheduleStatus` is `null` (schedule
//! monitoring is off locally, as in the host without storage). A failed tick is
//! logged; the next occurrence runs normally (§5).

use std::sync::Arc;
use std::time::Duration;

use syncbridge_core::Timestamp;

use crate::HostState;
use crate::app::{FunctionSpec, Trigger};
use crate::events::TriggerKind;
use crate::invoke::{InvokeFailure, Invoked, invoke};
use crate::payload;

/// How late a tick may start before it counts as past due.
pub const PAST_DUE_AFTER: Duration = Duration::from_secs(1);
/// Longest real-time wait between looks at the clock.
const SLICE: Duration = Duration::from_millis(100);

/// Fires one timer invocation now (serialised with the schedule loop).
pub(crate) async fn fire(
    host: &HostState,
    f: &FunctionSpec,
    is_past_due: bool,
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
        payload::timer(&f.name, binding, is_past_due, now)
    })
    .await
}

/// The schedule loop for `f` (a timer function); returns on shutdown.
pub(crate) async fn run(host: Arc<HostState>, f: Arc<FunctionSpec>) {
    let Trigger::Timer {
        schedule,
        run_on_startup,
        ..
    } = &f.trigger
    else {
        return;
    };
    let mut shutdown = host.shutdown.clone();
    if *run_on_startup {
        let _ = fire(&host, &f, false).await;
    }
    let mut next: Option<Timestamp> = schedule.next_after(host.clock.now());
    if next.is_none() {
        tracing::warn!(function = %f.name, schedule = %schedule, "schedule never fires");
        return;
    }
    while let Some(due) = next {
        let now = host.clock.now();
        if now >= due {
            let past_due = now.since(due) > PAST_DUE_AFTER;
            let _ = fire(&host, &f, past_due).await;
            // Missed occurrences collapse into the run just made.
            next = schedule.next_after(host.clock.now().max(due));
            continue;
        }
        let wait = due.since(now).min(SLICE);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = crate::until_shutdown(&mut shutdown) => return,
        }
    }
}
