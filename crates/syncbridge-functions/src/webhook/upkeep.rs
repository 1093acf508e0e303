//! The receiver's background upkeep: checkpointing the embedded SQLite WALs
//! off the commit path, and pruning stored events past the dedup window.
//! Both stop when the router is dropped (the writer's sender can no longer
//! be upgraded).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::group_commit::Pending;
use crate::state::AppState;

/// Keeps the embedded store's and queue's WALs short from a background
/// thread ([`syncbridge_sqlite::WalCheckpointer`]), so the group commit rarely
/// pays for a checkpoint (a copy and two `fsync`s) while every delivery of the
/// batch waits. Stops when the router is dropped (`alive` can no longer be
/// upgraded). Files that do not exist (Azure backends, test stores) are skipped.
pub(super) fn spawn_checkpointer(state: &AppState, alive: mpsc::WeakSender<Pending>) {
    // `Settings::webhook_checkpoint`: 0 leaves it to SQLite's automatic checkpoint.
    let every = state.settings.webhook_checkpoint;
    if every.is_zero() {
        return;
    }
    let azure = &state.settings.azure;
    let dir = &state.settings.data_dir;
    let files = [
        (azure.cosmos.is_none(), syncbridge_sqlite::state_path(dir)),
        (
            azure.service_bus.is_none(),
            syncbridge_localqueue::queue_path(dir),
        ),
    ];
    let checkpointers: Arc<Vec<syncbridge_sqlite::WalCheckpointer>> = Arc::new(
        files
            .into_iter()
            .filter(|(embedded, path)| *embedded && path.exists())
            .filter_map(|(_, path)| syncbridge_sqlite::WalCheckpointer::open(path).ok())
            .collect(),
    );
    if checkpointers.is_empty() {
        return;
    }
    spawn_every(every, alive, move || {
        let c = checkpointers.clone();
        async move {
            let _ = tokio::task::spawn_blocking(move || {
                for one in c.iter() {
                    if let Err(e) = one.checkpoint() {
                        tracing::debug!("background checkpoint: {e}");
                    }
                }
            })
            .await;
        }
    });
}

/// Runs `work` every `period` (the first time at once; a late tick delays
/// the next ones rather than bunching them) until the router is dropped.
fn spawn_every<F, Fut>(period: Duration, alive: mpsc::WeakSender<Pending>, mut work: F)
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if alive.upgrade().is_none() {
                break;
            }
            work().await;
        }
    });
}

/// How often stored webhook events past the dedup window are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// Events removed per store call: each call is one short transaction, so the
/// group commit waits for at most one batch, never for the whole backlog.
const PRUNE_BATCH: usize = 1000;

/// Removes stored events older than the dedup window, in batches, until none
/// are left, every [`PRUNE_EVERY`]; without it the embedded store's
/// `webhook_events` grows forever (Cosmos DB expires them by TTL and prunes
/// nothing here). An event inside the window is never removed, so acceptance
/// stays exactly-once within it. Stops with the router, like the checkpointer.
pub(super) fn spawn_pruner(state: &AppState, alive: mpsc::WeakSender<Pending>) {
    let (store, clock) = (state.store.clone(), state.clock.clone());
    let window = state.settings.webhook_dedup_window;
    spawn_every(PRUNE_EVERY, alive, move || {
        let (store, clock) = (store.clone(), clock.clone());
        async move {
            let cutoff = clock.now().sub(window);
            loop {
                match store.prune_webhook_events(cutoff, PRUNE_BATCH).await {
                    Ok(n) if n as usize >= PRUNE_BATCH => tokio::task::yield_now().await,
                    Ok(n) => {
                        if n > 0 {
                            tracing::debug!(pruned = n, "webhook events past the dedup window");
                        }
                        break;
                    }
                    Err(e) => {
                        tracing::warn!("pruning webhook events: {e}");
                        break;
                    }
                }
            }
        }
    });
}
