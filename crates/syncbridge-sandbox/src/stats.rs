//! Counters served by `GET /_sandbox/stats`, so tests and benchmarks can check
//! what the sync engine actually did to the provider (how many calls, how many
//! 429s it provoked, how often it refreshed tokens).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Live counters (all relaxed atomics: they are statistics, not synchronisation).
#[derive(Debug, Default)]
pub struct Stats {
    pub(crate) requests: AtomicU64,
    pub(crate) throttled: AtomicU64,
    pub(crate) unauthorized: AtomicU64,
    pub(crate) token_requests: AtomicU64,
    pub(crate) fault_errors: AtomicU64,
    pub(crate) fault_drops: AtomicU64,
    pub(crate) fault_truncations: AtomicU64,
    pub(crate) fault_delays: AtomicU64,
    pub(crate) webhook_batches: AtomicU64,
    pub(crate) webhook_events: AtomicU64,
    pub(crate) webhook_attempts: AtomicU64,
    pub(crate) webhook_failures: AtomicU64,
    routes: Mutex<BTreeMap<String, u64>>,
}

/// Adds one to a counter.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Stats {
    pub(crate) fn count_route(&self, route: String) {
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        *routes.entry(route).or_insert(0) += 1;
    }

    /// A consistent-enough copy of every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let faults = FaultStats {
            errors: get(&self.fault_errors),
            drops: get(&self.fault_drops),
            truncations: get(&self.fault_truncations),
            delays: get(&self.fault_delays),
        };
        StatsSnapshot {
            requests: get(&self.requests),
            throttled: get(&self.throttled),
            unauthorized: get(&self.unauthorized),
            token_requests: get(&self.token_requests),
            faults_injected: faults.errors + faults.drops + faults.truncations + faults.delays,
            faults,
            webhooks: WebhookStats {
                batches_delivered: get(&self.webhook_batches),
                events_delivered: get(&self.webhook_events),
                attempts: get(&self.webhook_attempts),
                failures: get(&self.webhook_failures),
            },
            routes: self
                .routes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }

    /// Zeroes every counter.
    pub(crate) fn reset(&self) {
        for c in [
            &self.requests,
            &self.throttled,
            &self.unauthorized,
            &self.token_requests,
            &self.fault_errors,
            &self.fault_drops,
            &self.fault_truncations,
            &self.fault_delays,
            &self.webhook_batches,
            &self.webhook_events,
            &self.webhook_attempts,
            &self.webhook_failures,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        self.routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

/// The `/_sandbox/stats` document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// Provider API (`/crm`) requests seen, including throttled and faulted ones.
    pub requests: u64,
    /// 429 responses sent.
    pub throttled: u64,
    /// 401 responses sent on `/crm` routes.
    pub unauthorized: u64,
    /// `POST /oauth/v1/token` requests.
    pub token_requests: u64,
    /// Sum of every injected fault (a delayed error counts twice).
    pub faults_injected: u64,
    /// Injected faults by kind.
    pub faults: FaultStats,
    /// Webhook delivery.
    pub webhooks: WebhookStats,
    /// Requests per `"METHOD /matched/{path}"` (every route, admin included).
    pub routes: BTreeMap<String, u64>,
}

/// Injected faults by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultStats {
    /// 5xx answers.
    pub errors: u64,
    /// Dropped connections.
    pub drops: u64,
    /// Truncated bodies.
    pub truncations: u64,
    /// Added delays.
    pub delays: u64,
}

/// Webhook delivery counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookStats {
    /// Batches the target accepted (2xx).
    pub batches_delivered: u64,
    /// Events in those batches.
    pub events_delivered: u64,
    /// POSTs made, retries included.
    pub attempts: u64,
    /// Batches given up on (4xx, or 5xx/connection errors after all retries).
    pub failures: u64,
}
