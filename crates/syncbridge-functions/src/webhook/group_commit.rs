//! The webhook receiver's group-commit writer: every delivery accepted while
//! the previous batch was being written is deduplicated and stored in one
//! store transaction, and their follow-up jobs are enqueued in one queue
//! batch, before each request gets its answer.

use std::sync::Arc;

use syncbridge_core::model::{QuarantinedMessage, WebhookEvent};
use syncbridge_core::{OutboundMessage, QueueError, StoreError};
use tokio::sync::{mpsc, oneshot};

use super::FUNCTION;
use crate::state::AppState;

/// One accepted delivery waiting for the writer.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) event: WebhookEvent,
    pub(super) messages: Vec<OutboundMessage>,
    /// `messages.len()` (the writer moves the messages out).
    pub(super) jobs: usize,
    pub(super) quarantine: Option<QuarantinedMessage>,
    pub(super) reply: oneshot::Sender<Result<Written, WriteError>>,
}

/// What became of a delivery.
#[derive(Debug)]
pub(super) enum Written {
    /// Stored, and this many follow-up jobs enqueued.
    Enqueued(usize),
    /// Stored and quarantined (it names no object a task covers).
    Quarantined,
    /// Stored before (within the dedup window); its jobs were enqueued again.
    Duplicate,
}

/// Why a delivery was not acknowledged (the provider retries it).
#[derive(Debug, Clone, thiserror::Error)]
pub(super) enum WriteError {
    /// Storing the batch failed (for every delivery in it).
    #[error("store unavailable: {0}")]
    Store(Arc<StoreError>),
    /// Quarantining the event failed.
    #[error("{0}")]
    Quarantine(Arc<StoreError>),
    /// A duplicate's jobs could not be enqueued again; nothing new is stored.
    #[error("queue unavailable; retry later")]
    Requeue,
    /// The event is stored but its jobs could not be enqueued: it is kept in
    /// quarantine for replay.
    #[error("queue unavailable; event kept for replay")]
    KeptForReplay,
}

/// A batch the store stage has written, on its way to the enqueue stage.
#[derive(Debug)]
struct Stored {
    /// The events, in the order of `rest` (moved out of their [`Pending`]).
    events: Vec<WebhookEvent>,
    /// What is left of each delivery (its `event` field is emptied).
    rest: Vec<Pending>,
    /// Per event: new (`true`) or a duplicate; `Err` when the store failed.
    fresh: Result<Vec<bool>, Arc<StoreError>>,
}

/// Largest group commit.
const MAX_BATCH: usize = 512;

/// Starts the writer; deliveries go in through the returned sender.
pub(super) fn spawn(app: AppState) -> mpsc::Sender<Pending> {
    let (tx, rx) = mpsc::channel(4096);
    tokio::spawn(writer(app, rx));
    tx
}

/// The group-commit writer, two stages in a pipeline so the store transaction
/// of one batch overlaps the queue transaction of the previous one:
///
/// 1. *store*: drains every waiting delivery, dedups and stores them in one
///    transaction;
/// 2. *enqueue*: enqueues the new events' jobs in one batch (several stored
///    batches at once when they are waiting), then answers each delivery.
///
/// Every answer — duplicates included — is given by stage 2, in batch order,
/// after the enqueue of every earlier batch finished: no delivery is
/// acknowledged (not even as a duplicate of one still in flight) before the
/// event is stored and its jobs are enqueued.
///
/// A duplicate's jobs are enqueued again (the queue drops those it holds, by
/// `MessageId`): a process that died between the two stages stored the event
/// without its jobs, and the provider's redelivery is what brings them back.
/// A redelivery that comes after the queue's duplicate-detection window
/// (10 minutes locally, the queue's setting on Service Bus) costs one extra
/// follow-up sync, never a lost one.
async fn writer(app: AppState, mut rx: mpsc::Receiver<Pending>) {
    let (stored_tx, stored_rx) = mpsc::channel::<Stored>(4);
    let enqueue = tokio::spawn(enqueue_stage(app.clone(), stored_rx));
    let mut rest = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut rest, MAX_BATCH).await > 0 {
        let events: Vec<WebhookEvent> = rest
            .iter_mut()
            .map(|p: &mut Pending| take_event(&mut p.event))
            .collect();
        let fresh = app
            .store
            .insert_webhook_events(&events, app.settings.webhook_dedup_window)
            .await
            .map_err(Arc::new);
        let batch = Stored {
            events,
            rest: std::mem::replace(&mut rest, Vec::with_capacity(MAX_BATCH)),
            fresh,
        };
        if stored_tx.send(batch).await.is_err() {
            break;
        }
    }
    drop(stored_tx);
    let _ = enqueue.await;
}

fn take_event(e: &mut WebhookEvent) -> WebhookEvent {
    WebhookEvent {
        connection: e.connection.clone(),
        dedup_key: std::mem::take(&mut e.dedup_key),
        received_at: e.received_at,
        body: std::mem::take(&mut e.body),
    }
}

/// Stage 2 of [`writer`].
async fn enqueue_stage(app: AppState, mut rx: mpsc::Receiver<Stored>) {
    let mut batches = Vec::with_capacity(4);
    while rx.recv_many(&mut batches, 4).await > 0 {
        // Duplicates are sent too: their first delivery may have been stored
        // by a process that died before its enqueue. The deterministic
        // `MessageId` makes the queue drop every job it already holds.
        let mut messages = Vec::new();
        for b in &mut batches {
            if b.fresh.is_ok() {
                for p in &mut b.rest {
                    messages.append(&mut p.messages);
                }
            }
        }
        let sent = if messages.is_empty() {
            Ok(())
        } else {
            app.queue.send(messages).await
        };
        for b in batches.drain(..) {
            answer(&app, b, &sent).await;
        }
    }
}

/// Answers every delivery of a stored batch.
async fn answer(app: &AppState, b: Stored, sent: &Result<(), QueueError>) {
    let fresh = match b.fresh {
        Ok(f) => f,
        Err(e) => {
            for p in b.rest {
                let _ = p.reply.send(Err(WriteError::Store(e.clone())));
            }
            return;
        }
    };
    for ((p, event), new) in b.rest.into_iter().zip(b.events).zip(fresh) {
        let answer = match p.quarantine {
            Some(q) => {
                let done = if new {
                    Written::Quarantined
                } else {
                    Written::Duplicate
                };
                quarantine(app, q, done).await
            }
            None if !new => match sent {
                Ok(()) => Ok(Written::Duplicate),
                // Nothing new is stored; the provider retries later.
                Err(_) => Err(WriteError::Requeue),
            },
            None => match sent {
                Ok(()) => Ok(Written::Enqueued(p.jobs)),
                Err(e) => Err(keep_for_replay(app, event, e).await),
            },
        };
        let _ = p.reply.send(answer);
    }
}

/// Quarantines an event that names no object a task covers. A duplicate is
/// quarantined again too: its first delivery may have died between storing
/// the event and quarantining it (an entry more, never one less). `done` is
/// the answer once it is quarantined.
async fn quarantine(
    app: &AppState,
    q: QuarantinedMessage,
    done: Written,
) -> Result<Written, WriteError> {
    match app.store.quarantine(&q).await {
        Ok(_) => {
            app.events
                .emit(syncbridge_core::events::Event::MessageQuarantined {
                    source: q.source,
                    message_id: q.message_id,
                    reason: q.reason,
                })
                .await;
            Ok(done)
        }
        Err(e) => Err(WriteError::Quarantine(Arc::new(e))),
    }
}

/// The event is stored (a retry would be a duplicate) but its jobs were not
/// enqueued: it goes to quarantine, where `syncbridge quarantine replay`
/// finds it.
async fn keep_for_replay(app: &AppState, event: WebhookEvent, e: &QueueError) -> WriteError {
    let q = QuarantinedMessage {
        source: format!("{FUNCTION}/enqueue"),
        message_id: Some(event.dedup_key),
        connection: Some(event.connection),
        reason: format!("follow-up enqueue failed: {e}"),
        body: event.body,
        at: event.received_at,
    };
    let _ = app.store.quarantine(&q).await;
    WriteError::KeptForReplay
}
