//! Sending to queues. Every enqueue in the system goes through [`QueueSender`]:
//! Service Bus in Azure, the local host's durable SQLite queue on one machine.

use std::collections::BTreeMap;
use std::fmt;

use crate::clock::Timestamp;

/// A queue name. The two the product uses are constants.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueName(String);

impl QueueName {
    /// Pull jobs: provider → store.
    pub const SYNC_INBOUND: &'static str = "sync-inbound";
    /// Push jobs: store → provider.
    pub const SYNC_OUTBOUND: &'static str = "sync-outbound";

    /// A queue name (Service Bus entity path rules: 1–260 characters).
    pub fn new(s: impl Into<String>) -> Self {
        QueueName(s.into())
    }

    /// `sync-inbound`.
    pub fn inbound() -> Self {
        QueueName::new(Self::SYNC_INBOUND)
    }

    /// `sync-outbound`.
    pub fn outbound() -> Self {
        QueueName::new(Self::SYNC_OUTBOUND)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A message to send, with the broker properties code paths need to set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundMessage {
    /// Destination.
    pub queue: QueueName,
    /// Deterministic id; the broker drops a repeat inside its duplicate-detection window.
    pub message_id: String,
    /// Payload bytes.
    pub body: Vec<u8>,
    /// Payload media type.
    pub content_type: Option<String>,
    /// Deliver no earlier than this (backoff, parked jobs).
    pub scheduled_enqueue_at: Option<Timestamp>,
    /// Session, for ordered processing per key.
    pub session_id: Option<String>,
    /// Application properties.
    pub properties: BTreeMap<String, String>,
}

impl OutboundMessage {
    /// A JSON message for `queue` with id `message_id`.
    pub fn json(
        queue: QueueName,
        message_id: impl Into<String>,
        body: &impl serde::Serialize,
    ) -> Self {
        OutboundMessage {
            queue,
            message_id: message_id.into(),
            body: serde_json::to_vec(body).expect("job bodies serialize"),
            content_type: Some("application/json".into()),
            scheduled_enqueue_at: None,
            session_id: None,
            properties: BTreeMap::new(),
        }
    }

    /// Schedules the message for later delivery.
    pub fn at(mut self, t: Timestamp) -> Self {
        self.scheduled_enqueue_at = Some(t);
        self
    }
}

/// Why a send failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Worth retrying (timeouts, 5xx, throttling, a busy database).
    #[error("queue temporarily unavailable: {0}")]
    Transient(String),
    /// Retrying cannot help (missing entity, message too large, auth refused).
    #[error("queue rejected the message: {0}")]
    Permanent(String),
}

impl QueueError {
    /// Whether a retry may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, QueueError::Transient(_))
    }
}

/// A queue's messages by state, as its backend counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MessageCounts {
    /// Waiting for a receiver.
    pub active: u64,
    /// Waiting for their scheduled time.
    pub scheduled: u64,
    /// Held by a receiver now (`None`: the backend does not say).
    pub locked: Option<u64>,
    /// In the dead-letter queue.
    pub dead_lettered: u64,
}

/// How deep a queue is, or why that is not known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueDepth {
    /// Counted.
    Counted(MessageCounts),
    /// Not known, and why (the backend cannot count, the identity may not
    /// read the counts, the broker did not answer).
    Unknown(String),
}

/// Why [`QueueSender::send_chunks`] stopped, and how far it got.
#[derive(Debug, thiserror::Error)]
#[error("sending chunk {} failed: {error}", sent + 1)]
pub struct ChunksError {
    /// Chunks sent whole before the failure (none of the later ones was).
    pub sent: usize,
    /// The failure.
    #[source]
    pub error: QueueError,
}

/// Sends messages to a queue. Implementations must be idempotent by `message_id`
/// within their duplicate-detection window.
#[async_trait::async_trait]
pub trait QueueSender: Send + Sync + fmt::Debug + 'static {
    /// Sends a batch; all or nothing where the backend allows.
    async fn send(&self, messages: Vec<OutboundMessage>) -> Result<(), QueueError>;

    /// Sends `chunks` in order, each all or nothing; on failure, says how
    /// many whole chunks were sent before it (the caller gives back what the
    /// rest stood for). This default sends each with [`QueueSender::send`];
    /// a backend that can commit them all at once (the local queue: one
    /// transaction, so a scheduler tick's tens of thousands of jobs write
    /// each page once) does so, and then a failure sent none.
    async fn send_chunks(&self, chunks: Vec<Vec<OutboundMessage>>) -> Result<(), ChunksError> {
        for (sent, chunk) in chunks.into_iter().enumerate() {
            if chunk.is_empty() {
                continue;
            }
            self.send(chunk)
                .await
                .map_err(|error| ChunksError { sent, error })?;
        }
        Ok(())
    }

    /// The queue's depth and dead letters, for health reports (never
    /// fails: what cannot be counted is [`QueueDepth::Unknown`] with the
    /// reason). Senders that cannot count keep this default.
    async fn depth(&self, queue: &QueueName) -> QueueDepth {
        QueueDepth::Unknown(format!("this queue sender cannot count {queue}"))
    }
}
