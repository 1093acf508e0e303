//! Correlation ids on `sync-inbound` jobs.
//!
//! A correlation id ties an inbound job to what caused it, across processes:
//! the webhook receiver uses the provider's delivery id (or a new UUID when
//! the provider sends none), the scheduler a new UUID per job. It travels in
//! the job body ([`JobMessage::correlation_id`]) and, for people reading a
//! queue or its dead-letter queue, as the `correlation_id` application
//! property. The inbound worker records it on its invocation span.

use std::sync::Arc;

use syncbridge_core::model::JobMessage;
use syncbridge_core::{OutboundMessage, QueueError, QueueName, QueueSender};

/// Application property carrying the correlation id.
pub const PROPERTY: &str = JobMessage::CORRELATION_PROPERTY;

/// A new correlation id (a random UUID).
pub fn new_id() -> String {
    syncbridge_localqueue::new_uuid()
}

/// Gives a `sync-inbound` job message that has no correlation id a new one
/// (in its body and as the application property); returns the message's id.
/// Other messages are left alone.
/// `body` sent again, due at `at`: the same job and correlation id, with its
/// retry count (a store-failure retry of the inbound worker).
pub fn scheduled_retry(
    body: &JobMessage,
    message_id: impl Into<String>,
    at: syncbridge_core::Timestamp,
) -> OutboundMessage {
    let mut msg = OutboundMessage::json(QueueName::inbound(), message_id, body);
    msg.scheduled_enqueue_at = Some(at);
    if let Some(id) = &body.correlation_id {
        msg.properties.insert(PROPERTY.into(), id.clone());
    }
    msg
}

fn stamp(msg: &mut OutboundMessage) -> Option<String> {
    if msg.queue != QueueName::inbound() {
        return None;
    }
    let mut body: JobMessage = serde_json::from_slice(&msg.body).ok()?;
    let id = match &body.correlation_id {
        Some(id) => id.clone(),
        None => {
            let id = new_id();
            body.correlation_id = Some(id.clone());
            msg.body = serde_json::to_vec(&body).ok()?;
            id
        }
    };
    msg.properties
        .entry(PROPERTY.into())
        .or_insert_with(|| id.clone());
    Some(id)
}

/// Stamps (and logs) every inbound job of `messages` that has no id yet.
fn stamp_all(messages: &mut [OutboundMessage]) {
    for msg in messages {
        if let Some(id) = stamp(msg) {
            tracing::info!(
                correlation_id = %id,
                message_id = %msg.message_id,
                queue = %msg.queue,
                "job enqueued"
            );
        }
    }
}

/// A [`QueueSender`] that stamps correlation ids on inbound jobs sent by code
/// that does not set them (the scheduler's tick in core) and logs each one.
#[derive(Debug)]
pub struct Correlating(pub Arc<dyn QueueSender>);

#[async_trait::async_trait]
impl QueueSender for Correlating {
    async fn send(&self, mut messages: Vec<OutboundMessage>) -> Result<(), QueueError> {
        stamp_all(&mut messages);
        self.0.send(messages).await
    }

    /// Stamps every chunk, then lets the inner sender send them its way
    /// (the local queue: in one transaction).
    async fn send_chunks(
        &self,
        mut chunks: Vec<Vec<OutboundMessage>>,
    ) -> Result<(), syncbridge_core::ChunksError> {
        for chunk in &mut chunks {
            stamp_all(chunk);
        }
        self.0.send_chunks(chunks).await
    }

    async fn depth(&self, queue: &syncbridge_core::QueueName) -> syncbridge_core::QueueDepth {
        self.0.depth(queue).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syncbridge_core::model::{JobReason, Priority, SyncJob};
    use syncbridge_core::{ConnectionId, ObjectType, TaskId};

    fn job() -> SyncJob {
        SyncJob {
            task: TaskId::parse("t1").unwrap(),
            connection: ConnectionId::parse("c1").unwrap(),
            object: ObjectType::parse("contacts").unwrap(),
            priority: Priority::Scheduled,
            reason: JobReason::Scheduled,
            lease_token: "v1".into(),
        }
    }

    /// A plain `SyncJob` body gets an id; a body with one keeps it; the body
    /// still decodes as a `SyncJob`; other queues are untouched.
    #[test]
    fn stamps_only_inbound_jobs_without_an_id() {
        let mut plain = OutboundMessage::json(QueueName::inbound(), "m1", &job());
        let id = stamp(&mut plain).unwrap();
        let decoded: JobMessage = serde_json::from_slice(&plain.body).unwrap();
        assert_eq!(decoded.correlation_id.as_deref(), Some(id.as_str()));
        assert_eq!(plain.properties[PROPERTY], id);
        let as_job: SyncJob = serde_json::from_slice(&plain.body).unwrap();
        assert_eq!(as_job, job());

        let mut given = JobMessage::inbound_message(job(), "m2", "evt_1");
        let before = given.body.clone();
        assert_eq!(stamp(&mut given).as_deref(), Some("evt_1"));
        assert_eq!(given.body, before);

        let mut other = OutboundMessage::json(QueueName::outbound(), "m3", &job());
        let before = other.body.clone();
        assert_eq!(stamp(&mut other), None);
        assert_eq!(other.body, before);
        assert!(other.properties.is_empty());
    }
}
