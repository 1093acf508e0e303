//! Push jobs onto the outbound queue: one push as it is decided, and the
//! outbox relay that queues every push that is due.

use crate::clock::Timestamp;
use crate::model::{PushJob, Record};
use crate::queue::{OutboundMessage, QueueError, QueueName, QueueSender};

/// The push job of `rec` at `version`, after `attempt` failures.
fn job_of(rec: &Record, version: i64, attempt: u32) -> PushJob {
    PushJob {
        connection: rec.connection.clone(),
        object: rec.object.clone(),
        external_id: rec.external_id.clone(),
        version,
        attempt,
    }
}

/// Queues a push of `rec` (at `version`, after `attempt` failures), delivered
/// no earlier than `at`.
pub(super) async fn queue_push(
    queue: &dyn QueueSender,
    rec: &Record,
    version: i64,
    attempt: u32,
    at: Option<Timestamp>,
) -> Result<(), QueueError> {
    let job = job_of(rec, version, attempt);
    queue.send(vec![push_message(&job, at)]).await
}

/// The queue message for a push job, delivered no earlier than `at`.
pub fn push_message(job: &PushJob, at: Option<Timestamp>) -> OutboundMessage {
    let mut m = OutboundMessage::json(QueueName::outbound(), job.message_id(), job);
    m.scheduled_enqueue_at = at;
    m
}

/// The outbox relay: queues a push for every record whose push is due (at
/// most `limit`). Run on every scheduler tick; a push already queued has the
/// same `MessageId` and is dropped by duplicate detection.
pub async fn requeue_due_pushes(
    store: &dyn crate::Store,
    queue: &dyn QueueSender,
    now: Timestamp,
    limit: usize,
) -> Result<usize, RequeueError> {
    let due = store.due_pushes(now, limit).await?;
    let messages: Vec<OutboundMessage> = due
        .iter()
        .map(|rec| {
            let attempt = rec.local.as_ref().map_or(0, |l| l.attempts);
            push_message(&job_of(rec, rec.version, attempt), None)
        })
        .collect();
    let n = messages.len();
    if n > 0 {
        queue.send(messages).await?;
    }
    Ok(n)
}

/// Why the outbox relay stopped: a store or queue failure, the scheduler
/// tick's own error (the relay runs in the tick).
pub type RequeueError = crate::scheduler::TickError;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ConnectionId, ExternalId, ObjectType};

    /// A push message's id names the record, version and attempt, so a
    /// retry is a new message and a re-sent push is a duplicate.
    #[test]
    fn push_message_ids() {
        let job = PushJob {
            connection: ConnectionId::parse("c1").unwrap(),
            object: ObjectType::parse("contacts").unwrap(),
            external_id: ExternalId::parse("42").unwrap(),
            version: 3,
            attempt: 0,
        };
        let m = push_message(&job, None);
        assert_eq!(m.message_id, "push:c1:contacts:42:v3:a0");
        assert_eq!(m.queue.as_str(), "sync-outbound");
        let again = push_message(
            &PushJob {
                attempt: 1,
                ..job.clone()
            },
            None,
        );
        assert_ne!(again.message_id, m.message_id);
    }
}
