//! Service Bus triggers: one receive loop per queue-triggered function, fed from the
//! [`syncbridge_localqueue::LocalQueue`] with the extension's settlement rules (§5):
//!
//! - peek-lock receive, at most `extensions.serviceBus.maxConcurrentCalls`
//!   invocations in flight per function;
//! - the documented payload (`Data.<binding>` per `dataType`, broker properties in
//!   `Metadata`) is POSTed to `/<FunctionName>`;
//! - 2xx (outputs applied) → complete; non-2xx, timeout, connection error, bad
//!   answer, failed output flush → abandon, i.e. immediate redelivery with
//!   `DeliveryCount + 1`, dead-lettered after the queue's `MaxDeliveryCount`;
//! - a settlement that fails transiently (queue file busy, disk full) is retried
//!   with backoff while the lock holds, so the message does not stay locked;
//! - on shutdown, in-flight messages are abandoned (visible again for the next run);
//! - idle polling every 50 ms, woken early by in-process sends.

use std::sync::Arc;
use std::time::Duration;

use syncbridge_localqueue::{AbandonOutcome, LocalQueueError, LockedMessage};
use tokio::sync::Semaphore;

use crate::HostState;
use crate::app::{FunctionSpec, Trigger};
use crate::events::{HostEvent, TriggerKind};
use crate::invoke::invoke;
use crate::payload;

/// Idle poll interval.
pub const IDLE_POLL: Duration = Duration::from_millis(50);
/// First wait before settling a message again after a transient failure.
pub const SETTLE_RETRY_BASE: Duration = Duration::from_millis(200);
/// Longest wait between settlement attempts.
pub const SETTLE_RETRY_MAX: Duration = Duration::from_secs(10);

/// The receive loop for `f` (a Service Bus–triggered function); returns on shutdown
/// or when the function's handler has failed for good.
pub(crate) async fn run(host: Arc<HostState>, f: Arc<FunctionSpec>) {
    let Trigger::ServiceBus { queue, .. } = &f.trigger else {
        return;
    };
    let mut shutdown = host.shutdown.clone();
    let slots = Arc::new(Semaphore::new(host.max_concurrent_calls.max(1)));
    let max = u32::try_from(host.max_concurrent_calls.max(1)).unwrap_or(u32::MAX);
    receive_loop(&host, &f, queue, &slots, &mut shutdown).await;
    // In-flight deliveries abandon on shutdown; wait for them so nothing stays locked.
    let _ = slots.acquire_many(max).await;
}

async fn receive_loop(
    host: &Arc<HostState>,
    f: &Arc<FunctionSpec>,
    queue: &str,
    slots: &Arc<Semaphore>,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        // Do not take messages while the handler is not up: they would only burn deliveries.
        if host.wait_ready(&f.name).await.is_err() {
            if host.has_failed(&f.name) || *shutdown.borrow() {
                return;
            }
            continue;
        }
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("semaphore never closed"),
            _ = crate::until_shutdown(shutdown) => return,
        };
        let received = {
            let q = host.queue.clone();
            let name = queue.to_string();
            let lock = host.lock_duration;
            tokio::task::spawn_blocking(move || q.receive(&name, lock)).await
        };
        let msg = match received {
            Ok(Ok(Some(m))) => m,
            Ok(Ok(None)) => {
                drop(permit);
                tokio::select! {
                    _ = host.queue.wait_for_send(IDLE_POLL) => {}
                    _ = crate::until_shutdown(shutdown) => return,
                }
                continue;
            }
            Ok(Err(e)) => {
                tracing::warn!(function = %f.name, queue, "receive failed: {e}");
                drop(permit);
                tokio::time::sleep(IDLE_POLL).await;
                continue;
            }
            Err(e) => {
                tracing::error!(function = %f.name, "receive task failed: {e}");
                return;
            }
        };
        let host = host.clone();
        let f = f.clone();
        tokio::spawn(async move {
            deliver(&host, &f, msg).await;
            drop(permit);
        });
    }
}

async fn deliver(host: &HostState, f: &FunctionSpec, msg: LockedMessage) {
    let Trigger::ServiceBus {
        binding,
        data_type,
        queue,
    } = &f.trigger
    else {
        return;
    };
    let mut shutdown = host.shutdown.clone();
    let now = host.clock.now();
    let outcome = tokio::select! {
        r = invoke(host, f, TriggerKind::ServiceBus, || payload::service_bus(&f.name, binding, *data_type, &msg, now)) => Some(r),
        _ = crate::until_shutdown(&mut shutdown) => None,
    };
    let settlement = match outcome {
        Some(Ok(_)) => Settlement::Complete,
        _ => Settlement::Abandon,
    };
    match settle(host, &msg, settlement).await {
        Ok(Ok(Some(AbandonOutcome::DeadLettered))) => {
            tracing::warn!(
                function = %f.name, queue, message_id = %msg.message.message_id,
                delivery_count = msg.message.delivery_count,
                "message dead-lettered (MaxDeliveryCountExceeded)"
            );
            let _ = host.events.send(HostEvent::DeadLettered {
                function: f.name.clone(),
                queue: queue.clone(),
                message_id: msg.message.message_id.clone(),
            });
        }
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(function = %f.name, queue, "settling the message failed: {e}"),
        Err(e) => tracing::error!(function = %f.name, "settle task failed: {e}"),
    }
}

/// How a delivery ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settlement {
    /// Delete the message (the invocation succeeded).
    Complete,
    /// Release it for redelivery, or dead-letter it at the maximum.
    Abandon,
}

/// Settles `msg`. A transient failure (the queue file busy past its timeout,
/// or its disk full) is retried with backoff ([`SETTLE_RETRY_BASE`] doubling
/// to [`SETTLE_RETRY_MAX`]) while the lock holds and the host runs, instead of
/// leaving the message locked until its lock expires (the invocation timeout
/// plus a minute).
async fn settle(
    host: &HostState,
    msg: &LockedMessage,
    settlement: Settlement,
) -> Result<Result<Option<AbandonOutcome>, LocalQueueError>, tokio::task::JoinError> {
    let mut delay = SETTLE_RETRY_BASE;
    loop {
        let q = host.queue.clone();
        let token = msg.lock_token.clone();
        let r = tokio::task::spawn_blocking(move || match settlement {
            Settlement::Complete => q.complete(&token).map(|()| None),
            Settlement::Abandon => q.abandon(&token).map(Some),
        })
        .await?;
        match r {
            Err(e)
                if e.is_transient()
                    && host.clock.now().add(delay) < msg.locked_until
                    && !*host.shutdown.borrow() =>
            {
                tracing::warn!(message_id = %msg.message.message_id, ?settlement,
                    "settling the message failed ({e}); retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(SETTLE_RETRY_MAX);
            }
            other => return Ok(other),
        }
    }
}
