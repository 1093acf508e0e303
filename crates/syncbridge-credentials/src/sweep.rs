//! The TokenRefresher's sweep: refresh every OAuth credential that is due
//! (within its margin, or idle for a day), spread with jitter, bounded in
//! concurrency and, when the manager has one, by the rate limiter.
//!
//! Selection reads only the store's plaintext metadata, never decrypting a
//! credential that is not due: every save stores [`margin::sweep_at`], the
//! first instant [`margin::sweep_due`] holds, and the store answers
//! `credentials_due(now, limit)` from an index on it. A sweep with nothing
//! due reads nothing, however many connections there are.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use rand::Rng;
use serde::Serialize;
use syncbridge_core::connector::definition::AuthDef;
use syncbridge_core::credentials::CredentialError;
use syncbridge_core::model::ConnectionStatus;
use syncbridge_core::{ConnectionId, Timestamp};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::manager::{CredentialManager, Inner, RefreshTrigger};
use crate::margin;

/// What a sweep did. `checked = refreshed + skipped + failed + needs_reauth`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Credentials with sweep metadata that were looked at.
    pub scanned: usize,
    /// Of those, due and handled (at most `limit`).
    pub checked: usize,
    /// Refreshed by this sweep (one token request each).
    pub refreshed: usize,
    /// No longer due once locked (a sibling refreshed), or not refreshable
    /// (disabled connection, not an OAuth connector).
    pub skipped: usize,
    /// Failed: transient provider errors, misconfiguration, orphans.
    pub failed: usize,
    /// Found or marked `needs_reauth`.
    pub needs_reauth: usize,
    /// Wall time of the sweep in milliseconds.
    pub elapsed_ms: u64,
}

enum ItemOutcome {
    Refreshed,
    Skipped,
    Failed,
    NeedsReauth,
}

/// `n` start delays, uniform in `[0, spread)`, from `rng`.
pub fn jitter_delays(n: usize, spread: Duration, rng: &mut impl Rng) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            if spread.is_zero() {
                Duration::ZERO
            } else {
                spread.mul_f64(rng.random_range(0.0..1.0))
            }
        })
        .collect()
}

/// Which credentials of a scan are due at `now`, soonest expiry first.
pub fn select_due(
    rows: &[(ConnectionId, Option<Timestamp>, Timestamp)],
    now: Timestamp,
    idle_after: Duration,
    limit: usize,
) -> Vec<ConnectionId> {
    rows.iter()
        .filter(|(_, exp, refreshed)| margin::sweep_due(*exp, *refreshed, now, idle_after))
        .take(limit)
        .map(|(id, _, _)| id.clone())
        .collect()
}

impl CredentialManager {
    /// Refreshes at most `limit` credentials due at `now`; see the module docs.
    ///
    /// # Errors
    /// The scan itself failed (store unavailable). Per-credential failures
    /// are counted in the report.
    pub async fn sweep(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<SweepReport, CredentialError> {
        let started = Instant::now();
        let i = &self.inner;
        let rows = i
            .store
            .credentials_due(now, limit)
            .await
            .map_err(|e| CredentialError::Transient(e.to_string()))?;
        if rows.len() >= limit {
            tracing::info!(
                due = rows.len(),
                "more credentials are due than one sweep handles; the next sweep takes the rest"
            );
        }
        let meta: Vec<_> = rows
            .into_iter()
            .map(|c| (c.connection, c.expires_at, c.refreshed_at))
            .collect();
        let due = select_due(&meta, now, i.config.idle_refresh_after, limit);
        let delays = {
            let mut rng = i.rng.lock().unwrap_or_else(|e| e.into_inner());
            jitter_delays(due.len(), i.config.sweep_jitter, &mut *rng)
        };
        let permits = Arc::new(Semaphore::new(i.config.sweep_concurrency.max(1)));
        let mut tasks = JoinSet::new();
        for (id, delay) in due.into_iter().zip(delays) {
            let (inner, permits, me) = (i.clone(), permits.clone(), self.clone());
            tasks.spawn(async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let _permit = permits
                    .acquire_owned()
                    .await
                    .expect("semaphore is never closed");
                sweep_one(&me, &inner, &id, now).await
            });
        }
        let mut report = SweepReport {
            scanned: meta.len(),
            ..SweepReport::default()
        };
        while let Some(r) = tasks.join_next().await {
            report.checked += 1;
            match r {
                Ok(ItemOutcome::Refreshed) => report.refreshed += 1,
                Ok(ItemOutcome::Skipped) => report.skipped += 1,
                Ok(ItemOutcome::NeedsReauth) => report.needs_reauth += 1,
                Ok(ItemOutcome::Failed) | Err(_) => report.failed += 1,
            }
        }
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        tracing::info!(
            scanned = report.scanned,
            checked = report.checked,
            refreshed = report.refreshed,
            skipped = report.skipped,
            failed = report.failed,
            needs_reauth = report.needs_reauth,
            elapsed_ms = report.elapsed_ms,
            "token sweep done"
        );
        Ok(report)
    }
}

async fn sweep_one(
    me: &CredentialManager,
    inner: &Arc<Inner>,
    id: &ConnectionId,
    now: Timestamp,
) -> ItemOutcome {
    let conn = match inner.store.get_connection(id).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            tracing::warn!(connection = %id, "credential without a connection");
            return ItemOutcome::Failed;
        }
        Err(e) => {
            tracing::warn!(connection = %id, error = %e, "sweep could not read the connection");
            return ItemOutcome::Failed;
        }
    };
    match conn.status {
        ConnectionStatus::Active => {}
        ConnectionStatus::NeedsReauth => return ItemOutcome::NeedsReauth,
        ConnectionStatus::Disabled => return ItemOutcome::Skipped,
    }
    let Some(def) = inner.connectors.get(&conn.provider) else {
        tracing::warn!(connection = %id, provider = %conn.provider, "sweep: unknown connector");
        return ItemOutcome::Failed;
    };
    if !matches!(def.auth, AuthDef::Oauth2 { .. }) {
        return ItemOutcome::Skipped;
    }
    match me.refresh(&conn, &def, RefreshTrigger::Sweep { now }).await {
        Ok(o) if o.performed => ItemOutcome::Refreshed,
        Ok(_) => ItemOutcome::Skipped,
        Err(CredentialError::NeedsReauth) => ItemOutcome::NeedsReauth,
        Err(e) => {
            tracing::warn!(connection = %id, error = %e, "sweep refresh failed");
            ItemOutcome::Failed
        }
    }
}
