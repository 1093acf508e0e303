//! A durable queue in one SQLite file with the Service Bus semantics the
//! product relies on. The local Functions host receives from it; the binaries
//! it runs send to it (through [`QueueSender`]) — several processes, one file.
//!
//! # Semantics (mirroring Azure Service Bus queues)
//!
//! - **Duplicate detection**: a message whose `MessageId` was already sent to the
//!   same queue inside the window ([`LocalQueueOptions::duplicate_detection_window`],
//!   default 10 minutes, measured from the first send) is silently dropped and the
//!   send still succeeds. A zero window turns detection off.
//! - **Scheduled messages**: `scheduled_enqueue_at` keeps a message invisible
//!   (counted as `scheduled`) until that instant; its `EnqueuedTimeUtc` is then the
//!   scheduled time.
//! - **Peek-lock**: [`LocalQueue::receive`] hands out the oldest visible message
//!   with a lock token and makes it invisible until the lock expires. Each delivery
//!   increments `delivery_count` (1 on the first). [`LocalQueue::complete`] deletes
//!   it; [`LocalQueue::abandon`] makes it visible again at once, or moves it to
//!   `<queue>/$DeadLetterQueue` with reason `MaxDeliveryCountExceeded` once the
//!   delivery count has reached [`LocalQueueOptions::max_delivery_count`]. A lock
//!   that simply expires counts as a delivery too: the message is redelivered, or
//!   dead-lettered when it was already at the maximum.
//! - **Dead-letter queue**: the path `<queue>/$DeadLetterQueue` is itself a queue
//!   (receivable, never dead-lettered further, ignores TTL); senders cannot
//!   target it.
//! - **Time to live**: a message with a TTL disappears once expired (the Service
//!   Bus default, dead-lettering on expiry off).
//!
//! # Time and processes
//!
//! Every time decision asks the injected [`Clock`] (tests move a `ManualClock`).
//! The file is opened in WAL mode with a busy timeout and every write is a
//! `BEGIN IMMEDIATE` transaction, so any number of handles in any number of
//! processes may share it. The API is synchronous (each call is one short
//! transaction); the [`QueueSender`] implementation runs it on tokio's blocking
//! pool.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use syncbridge_core::{
    ChunksError, Clock, OutboundMessage, QueueError, QueueSender, SystemClock, Timestamp,
};

/// Suffix of a queue's dead-letter sub-queue, as Service Bus spells it.
pub const DEAD_LETTER_SUFFIX: &str = "/$DeadLetterQueue";
/// `DeadLetterReason` set when the delivery count is exhausted.
pub const MAX_DELIVERY_COUNT_EXCEEDED: &str = "MaxDeliveryCountExceeded";
/// Service Bus default duplicate-detection window.
pub const DEFAULT_DUPLICATE_DETECTION_WINDOW: Duration = Duration::from_secs(10 * 60);
/// Service Bus default `MaxDeliveryCount`.
pub const DEFAULT_MAX_DELIVERY_COUNT: u32 = 10;
/// Longest `MessageId` / `SessionId` Service Bus accepts.
pub const MAX_ID_LEN: usize = 128;
/// Longest entity path Service Bus accepts.
pub const MAX_ENTITY_PATH_LEN: usize = 260;

/// The queue's file name inside a data directory. Other crates name the
/// file through this (or [`queue_path`]), never by spelling it.
pub const QUEUE_FILE: &str = "queue.db";

/// The queue's file in `data_dir`: `<dir>/queue.db`.
pub fn queue_path(data_dir: impl AsRef<Path>) -> PathBuf {
    data_dir.as_ref().join(QUEUE_FILE)
}

/// `<queue>/$DeadLetterQueue`.
pub fn dead_letter_queue_name(queue: &str) -> String {
    format!("{queue}{DEAD_LETTER_SUFFIX}")
}

/// Whether `queue` names a dead-letter sub-queue.
pub fn is_dead_letter_queue(queue: &str) -> bool {
    queue.ends_with(DEAD_LETTER_SUFFIX)
}

/// How a [`LocalQueue`] handle behaves. Every handle on one file should use the
/// same window and maximum (Service Bus keeps them per entity; here they are per
/// handle, and the receiving side — the host — is the one that matters for the
/// delivery count).
#[derive(Debug, Clone)]
pub struct LocalQueueOptions {
    /// Source of "now" for every decision (enqueue, schedule, lock, dedup, TTL).
    pub clock: Arc<dyn Clock>,
    /// Repeats of a `MessageId` inside this window are dropped; zero = off.
    pub duplicate_detection_window: Duration,
    /// Deliveries after which an abandoned or lock-expired message is dead-lettered.
    pub max_delivery_count: u32,
    /// How long a writer waits for another process's transaction.
    pub busy_timeout: Duration,
}

impl Default for LocalQueueOptions {
    fn default() -> Self {
        LocalQueueOptions {
            clock: Arc::new(SystemClock),
            duplicate_detection_window: DEFAULT_DUPLICATE_DETECTION_WINDOW,
            max_delivery_count: DEFAULT_MAX_DELIVERY_COUNT,
            busy_timeout: Duration::from_secs(10),
        }
    }
}

impl LocalQueueOptions {
    /// Defaults with `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        LocalQueueOptions {
            clock,
            ..Default::default()
        }
    }
}

/// Why a queue operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LocalQueueError {
    /// The database refused or failed.
    #[error("local queue database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Creating the database's folder failed.
    #[error("local queue file: {0}")]
    Io(#[from] std::io::Error),
    /// The lock token is unknown, expired or already settled (Service Bus
    /// `MessageLockLost`).
    #[error("the message lock was lost (expired, already settled or never held)")]
    LockLost,
    /// The message or entity name breaks a Service Bus rule.
    #[error("invalid message: {0}")]
    Invalid(String),
    /// A stored row could not be read back.
    #[error("corrupt queue row: {0}")]
    Corrupt(String),
}

impl LocalQueueError {
    /// Whether retrying may help (a busy or briefly unavailable database).
    pub fn is_transient(&self) -> bool {
        use rusqlite::ErrorCode::*;
        match self {
            LocalQueueError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                DatabaseBusy | DatabaseLocked | SystemIoFailure | DiskFull | CannotOpen
            ),
            LocalQueueError::Io(_) => true,
            _ => false,
        }
    }
}

impl From<LocalQueueError> for QueueError {
    fn from(e: LocalQueueError) -> Self {
        if e.is_transient() {
            QueueError::Transient(e.to_string())
        } else {
            QueueError::Permanent(e.to_string())
        }
    }
}

type Result<T, E = LocalQueueError> = std::result::Result<T, E>;

/// A message to send plus the broker properties that [`OutboundMessage`] does not
/// carry (the Service Bus REST endpoint sets them from `BrokerProperties`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Queue, id, body, content type, schedule, session, application properties.
    pub message: OutboundMessage,
    /// `Subject` (legacy `Label`).
    pub subject: Option<String>,
    /// `CorrelationId`.
    pub correlation_id: Option<String>,
    /// `TimeToLive`: the message disappears this long after it becomes active.
    pub time_to_live: Option<Duration>,
}

impl From<OutboundMessage> for Envelope {
    fn from(message: OutboundMessage) -> Self {
        Envelope {
            message,
            subject: None,
            correlation_id: None,
            time_to_live: None,
        }
    }
}

/// An [`Envelope`] by reference (sends need not copy message bodies).
#[derive(Clone, Copy)]
struct EnvelopeView<'a> {
    message: &'a OutboundMessage,
    subject: Option<&'a str>,
    correlation_id: Option<&'a str>,
    time_to_live: Option<Duration>,
}

/// What happened to one sent message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendResult {
    /// Stored with this sequence number.
    Enqueued {
        /// The broker-assigned, strictly increasing sequence number.
        sequence_number: i64,
    },
    /// Dropped: the `MessageId` was seen inside the duplicate-detection window.
    Duplicate,
}

/// A stored message as a receiver (or a dead-letter inspection) sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Entity path it currently lives in (a DLQ path once dead-lettered).
    pub queue: String,
    /// Broker-assigned, strictly increasing.
    pub sequence_number: i64,
    /// Sender-chosen id (the duplicate-detection key).
    pub message_id: String,
    /// Payload bytes, exactly as sent.
    pub body: Vec<u8>,
    /// `ContentType`.
    pub content_type: Option<String>,
    /// `SessionId`.
    pub session_id: Option<String>,
    /// `CorrelationId`.
    pub correlation_id: Option<String>,
    /// `Subject` / `Label`.
    pub subject: Option<String>,
    /// `ApplicationProperties`.
    pub properties: BTreeMap<String, String>,
    /// When it became (or becomes) active: the send time, or the scheduled time.
    pub enqueued_time: Timestamp,
    /// `ScheduledEnqueueTimeUtc`, if it was scheduled.
    pub scheduled_enqueue_time: Option<Timestamp>,
    /// When it expires (`EnqueuedTime + TimeToLive`), if it has a TTL.
    pub expires_at: Option<Timestamp>,
    /// Deliveries so far; 1 while held by its first receiver.
    pub delivery_count: u32,
    /// `DeadLetterReason`, once dead-lettered.
    pub dead_letter_reason: Option<String>,
    /// `DeadLetterErrorDescription`, once dead-lettered.
    pub dead_letter_description: Option<String>,
}

/// A received message and the lock that settles it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedMessage {
    /// The message (its `delivery_count` includes this delivery).
    pub message: Message,
    /// Pass to [`LocalQueue::complete`] / [`LocalQueue::abandon`].
    pub lock_token: String,
    /// The message becomes visible again at this instant unless settled.
    pub locked_until: Timestamp,
}

/// What [`LocalQueue::abandon`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbandonOutcome {
    /// Visible again for the next receive.
    Redelivered,
    /// Moved to the dead-letter queue (delivery count exhausted).
    DeadLettered,
}

/// Messages in a queue by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounts {
    /// Visible to the next receive.
    pub active: u64,
    /// Waiting for their scheduled enqueue time.
    pub scheduled: u64,
    /// Held by a receiver under an unexpired lock.
    pub locked: u64,
    /// In `<queue>/$DeadLetterQueue`.
    pub dead_lettered: u64,
}

/// A handle on a queue file. Cheap to clone (clones share one connection);
/// open the file again for an independent connection.
#[derive(Clone)]
pub struct LocalQueue {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    options: LocalQueueOptions,
    conn: Mutex<Connection>,
    /// Wakes in-process receivers on a send (other processes are seen by polling).
    sent: tokio::sync::Notify,
}

impl fmt::Debug for LocalQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalQueue")
            .field("path", &self.inner.path)
            .field("options", &self.inner.options)
            .finish()
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS queues (
    name TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    message_id TEXT NOT NULL,
    body BLOB NOT NULL,
    content_type TEXT,
    session_id TEXT,
    correlation_id TEXT,
    subject TEXT,
    properties TEXT NOT NULL,
    enqueued_at INTEGER NOT NULL,
    scheduled_at INTEGER,
    expires_at INTEGER,
    delivery_count INTEGER NOT NULL DEFAULT 0,
    lock_token TEXT,
    locked_until INTEGER,
    dead_letter_reason TEXT,
    dead_letter_description TEXT
);
CREATE INDEX IF NOT EXISTS messages_by_queue ON messages (queue, enqueued_at, seq);
CREATE INDEX IF NOT EXISTS messages_by_lock ON messages (lock_token) WHERE lock_token IS NOT NULL;
CREATE TABLE IF NOT EXISTS dedup (
    queue TEXT NOT NULL,
    message_id TEXT NOT NULL,
    seen_at INTEGER NOT NULL,
    PRIMARY KEY (queue, message_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedup_by_seen ON dedup (seen_at);
";

const COLUMNS: &str = "queue, seq, message_id, body, content_type, session_id, correlation_id, subject, \
     properties, enqueued_at, scheduled_at, expires_at, delivery_count, dead_letter_reason, \
     dead_letter_description";

/// `lock_token IS NULL OR locked_until <= now` — not held by anyone.
const UNLOCKED: &str = "(lock_token IS NULL OR locked_until <= ?2)";

impl LocalQueue {
    /// Opens (creating if needed) the queue file at `path` with default options
    /// and the system clock.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, LocalQueueOptions::default())
    }

    /// Opens (creating if needed) the queue file at `path`.
    pub fn open_with(path: impl AsRef<Path>, options: LocalQueueOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let mut conn = Connection::open(&path)?;
        conn.busy_timeout(options.busy_timeout)?;
        syncbridge_sqlite::enable_wal(&conn, options.busy_timeout)?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // A page cache larger than the 2 MiB default: a scheduler tick sends
        // tens of thousands of jobs in one transaction, whose dirty pages
        // (the dedup index takes them in random order) would otherwise spill
        // to the WAL before the commit and be written again. A limit, not an
        // allocation.
        conn.pragma_update(None, "cache_size", -16 * 1024)?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(SCHEMA)?;
        tx.commit()?;
        Ok(LocalQueue {
            inner: Arc::new(Inner {
                path,
                options,
                conn: Mutex::new(conn),
                sent: tokio::sync::Notify::new(),
            }),
        })
    }

    /// The file this handle uses.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The options this handle was opened with.
    pub fn options(&self) -> &LocalQueueOptions {
        &self.inner.options
    }

    fn now(&self) -> Timestamp {
        self.inner.options.clock.now()
    }

    fn with_tx<T>(&self, f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.inner.conn.lock().unwrap_or_else(|e| e.into_inner());
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Declares a queue (idempotent). Sending declares its queue implicitly;
    /// the host declares every queue its functions name so the REST endpoint can
    /// tell a known entity from a missing one.
    pub fn declare_queue(&self, queue: &str) -> Result<()> {
        validate_entity(queue)?;
        let now = self.now();
        self.with_tx(|tx| {
            tx.execute(
                "INSERT OR IGNORE INTO queues (name, created_at) VALUES (?1, ?2)",
                params![queue, now.as_millis()],
            )?;
            Ok(())
        })
    }

    /// Whether `queue` was declared (a DLQ path exists when its queue does).
    pub fn queue_exists(&self, queue: &str) -> Result<bool> {
        let base = queue.strip_suffix(DEAD_LETTER_SUFFIX).unwrap_or(queue);
        let conn = self.inner.conn.lock().unwrap_or_else(|e| e.into_inner());
        Ok(conn
            .query_row("SELECT 1 FROM queues WHERE name = ?1", [base], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Every declared queue, sorted.
    pub fn queues(&self) -> Result<Vec<String>> {
        let conn = self.inner.conn.lock().unwrap_or_else(|e| e.into_inner());
        let mut stmt = conn.prepare("SELECT name FROM queues ORDER BY name")?;
        let names = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(names)
    }

    /// Sends `messages` in one transaction (all or nothing), synchronously.
    pub fn enqueue(&self, messages: &[OutboundMessage]) -> Result<Vec<SendResult>> {
        self.enqueue_views(messages.iter().map(|m| EnvelopeView {
            message: m,
            subject: None,
            correlation_id: None,
            time_to_live: None,
        }))
    }

    /// Sends `envelopes` in one transaction (all or nothing), synchronously.
    pub fn enqueue_envelopes(&self, envelopes: &[Envelope]) -> Result<Vec<SendResult>> {
        self.enqueue_views(envelopes.iter().map(|e| EnvelopeView {
            message: &e.message,
            subject: e.subject.as_deref(),
            correlation_id: e.correlation_id.as_deref(),
            time_to_live: e.time_to_live,
        }))
    }

    /// The one send path: validates all, then one `BEGIN IMMEDIATE` transaction
    /// with cached statements. Expired dedup ids are forgotten first, so an id
    /// still in the table is a repeat inside the window (also within the batch).
    fn enqueue_views<'a>(
        &self,
        views: impl ExactSizeIterator<Item = EnvelopeView<'a>> + Clone,
    ) -> Result<Vec<SendResult>> {
        for env in views.clone() {
            validate_outbound(env.message)?;
        }
        let now = self.now();
        let window = self.inner.options.duplicate_detection_window;
        let results = self.with_tx(|tx| {
            // Forget ids whose window has passed.
            tx.prepare_cached("DELETE FROM dedup WHERE seen_at <= ?1")?
                .execute([now.sub(window).as_millis()])?;
            let mut declare = tx.prepare_cached(
                "INSERT OR IGNORE INTO queues (name, created_at) VALUES (?1, ?2)",
            )?;
            let mut remember = tx.prepare_cached(
                "INSERT OR IGNORE INTO dedup (queue, message_id, seen_at) VALUES (?1, ?2, ?3)",
            )?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO messages (queue, message_id, body, content_type, session_id, \
                 correlation_id, subject, properties, enqueued_at, scheduled_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?;
            let mut declared: Option<&str> = None;
            let mut results = Vec::with_capacity(views.len());
            for env in views {
                let m = env.message;
                let queue = m.queue.as_str();
                if declared != Some(queue) {
                    declare.execute(params![queue, now.as_millis()])?;
                    declared = Some(queue);
                }
                if !window.is_zero()
                    && remember.execute(params![queue, m.message_id, now.as_millis()])? == 0
                {
                    tracing::debug!(queue, message_id = %m.message_id, "duplicate message dropped");
                    results.push(SendResult::Duplicate);
                    continue;
                }
                let enqueued = m.scheduled_enqueue_at.map_or(now, |s| s.max(now));
                let expires = env.time_to_live.map(|ttl| enqueued.add(ttl).as_millis());
                let properties = serde_json::to_string(&m.properties)
                    .map_err(|e| LocalQueueError::Invalid(e.to_string()))?;
                insert.execute(params![
                    queue,
                    m.message_id,
                    m.body,
                    m.content_type,
                    m.session_id,
                    env.correlation_id,
                    env.subject,
                    properties,
                    enqueued.as_millis(),
                    m.scheduled_enqueue_at.map(Timestamp::as_millis),
                    expires,
                ])?;
                results.push(SendResult::Enqueued {
                    sequence_number: tx.last_insert_rowid(),
                });
            }
            Ok(results)
        })?;
        self.inner.sent.notify_waiters();
        Ok(results)
    }

    /// Moves lock-expired messages that used up their deliveries to the DLQ and
    /// drops TTL-expired ones. Runs inside every receive/inspect transaction.
    fn sweep(&self, tx: &rusqlite::Transaction<'_>, queue: &str, now: Timestamp) -> Result<()> {
        if is_dead_letter_queue(queue) {
            return Ok(());
        }
        let max = self.inner.options.max_delivery_count;
        tx.execute(
            "UPDATE messages SET queue = ?3, lock_token = NULL, locked_until = NULL, \
             dead_letter_reason = ?4, dead_letter_description = ?5 \
             WHERE queue = ?1 AND lock_token IS NOT NULL AND locked_until <= ?2 \
             AND delivery_count >= ?6",
            params![
                queue,
                now.as_millis(),
                dead_letter_queue_name(queue),
                MAX_DELIVERY_COUNT_EXCEEDED,
                exhausted_description(max),
                max
            ],
        )?;
        tx.execute(
            &format!(
                "DELETE FROM messages WHERE queue = ?1 AND expires_at IS NOT NULL \
                 AND expires_at <= ?2 AND {UNLOCKED}"
            ),
            params![queue, now.as_millis()],
        )?;
        Ok(())
    }

    /// Peek-lock receive: the oldest visible message of `queue` (or of a DLQ path),
    /// locked for `lock_duration`, or `None` when nothing is visible.
    pub fn receive(&self, queue: &str, lock_duration: Duration) -> Result<Option<LockedMessage>> {
        let now = self.now();
        self.with_tx(|tx| {
            self.sweep(tx, queue, now)?;
            let seq: Option<i64> = tx
                .query_row(
                    &format!(
                        "SELECT seq FROM messages WHERE queue = ?1 AND enqueued_at <= ?2 \
                         AND {UNLOCKED} ORDER BY seq LIMIT 1"
                    ),
                    params![queue, now.as_millis()],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(seq) = seq else { return Ok(None) };
            let lock_token = new_uuid();
            let locked_until = now.add(lock_duration);
            tx.execute(
                "UPDATE messages SET delivery_count = delivery_count + 1, lock_token = ?2, \
                 locked_until = ?3 WHERE seq = ?1",
                params![seq, lock_token, locked_until.as_millis()],
            )?;
            let message = tx.query_row(
                &format!("SELECT {COLUMNS} FROM messages WHERE seq = ?1"),
                [seq],
                read_message,
            )??;
            Ok(Some(LockedMessage {
                message,
                lock_token,
                locked_until,
            }))
        })
    }

    /// Settles a received message: it is deleted. [`LocalQueueError::LockLost`]
    /// when the lock expired, was settled, or is unknown.
    pub fn complete(&self, lock_token: &str) -> Result<()> {
        let now = self.now();
        self.with_tx(|tx| {
            let n = tx.execute(
                "DELETE FROM messages WHERE lock_token = ?1 AND locked_until > ?2",
                params![lock_token, now.as_millis()],
            )?;
            if n == 0 {
                Err(LocalQueueError::LockLost)
            } else {
                Ok(())
            }
        })
    }

    /// Releases a received message: visible again at once, or dead-lettered with
    /// `MaxDeliveryCountExceeded` when its delivery count reached the maximum.
    pub fn abandon(&self, lock_token: &str) -> Result<AbandonOutcome> {
        let now = self.now();
        let max = self.inner.options.max_delivery_count;
        self.with_tx(|tx| {
            let row: Option<(i64, String, u32)> = tx
                .query_row(
                    "SELECT seq, queue, delivery_count FROM messages \
                     WHERE lock_token = ?1 AND locked_until > ?2",
                    params![lock_token, now.as_millis()],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            let Some((seq, queue, count)) = row else {
                return Err(LocalQueueError::LockLost);
            };
            if count >= max && !is_dead_letter_queue(&queue) {
                move_to_dlq(
                    tx,
                    seq,
                    &queue,
                    MAX_DELIVERY_COUNT_EXCEEDED,
                    &exhausted_description(max),
                )?;
                tracing::info!(
                    queue,
                    seq,
                    count,
                    "message dead-lettered: {MAX_DELIVERY_COUNT_EXCEEDED}"
                );
                Ok(AbandonOutcome::DeadLettered)
            } else {
                tx.execute(
                    "UPDATE messages SET lock_token = NULL, locked_until = NULL WHERE seq = ?1",
                    [seq],
                )?;
                Ok(AbandonOutcome::Redelivered)
            }
        })
        .inspect(|_| self.inner.sent.notify_waiters())
    }

    /// Moves a received message to the dead-letter queue explicitly.
    pub fn dead_letter(&self, lock_token: &str, reason: &str, description: &str) -> Result<()> {
        let now = self.now();
        self.with_tx(|tx| {
            let row: Option<(i64, String)> = tx
                .query_row(
                    "SELECT seq, queue FROM messages WHERE lock_token = ?1 AND locked_until > ?2",
                    params![lock_token, now.as_millis()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((seq, queue)) = row else {
                return Err(LocalQueueError::LockLost);
            };
            if is_dead_letter_queue(&queue) {
                return Err(LocalQueueError::Invalid(
                    "cannot dead-letter from a dead-letter queue".into(),
                ));
            }
            move_to_dlq(tx, seq, &queue, reason, description)
        })
    }

    /// Extends a held lock to `now + lock_duration`; returns the new expiry.
    pub fn renew_lock(&self, lock_token: &str, lock_duration: Duration) -> Result<Timestamp> {
        let now = self.now();
        let until = now.add(lock_duration);
        self.with_tx(|tx| {
            let n = tx.execute(
                "UPDATE messages SET locked_until = ?3 WHERE lock_token = ?1 AND locked_until > ?2",
                params![lock_token, now.as_millis(), until.as_millis()],
            )?;
            if n == 0 {
                Err(LocalQueueError::LockLost)
            } else {
                Ok(until)
            }
        })
    }

    /// Ends every lock held now, in every queue, as if it had expired this
    /// instant: each such message is redelivered (its delivery count already
    /// counts the interrupted delivery) or, at the maximum, dead-lettered by the
    /// next receive — what Service Bus does when a receiver's locks lapse.
    /// For a host starting on a file whose previous host died (`kill -9`, power
    /// loss): its locks would otherwise hide the messages until they expire.
    /// Only call it when no other live receiver uses the file. Returns how many
    /// locks were ended.
    pub fn expire_all_locks(&self) -> Result<usize> {
        let now = self.now();
        let n = self.with_tx(|tx| {
            Ok(tx.execute(
                "UPDATE messages SET locked_until = ?1 \
                 WHERE lock_token IS NOT NULL AND locked_until > ?1",
                [now.as_millis()],
            )?)
        })?;
        if n > 0 {
            self.inner.sent.notify_waiters();
        }
        Ok(n)
    }

    /// Every message in `queue`'s dead-letter queue, oldest first.
    pub fn dead_letters(&self, queue: &str) -> Result<Vec<Message>> {
        self.peek(&dead_letter_queue_name(queue))
    }

    /// Every message stored under the entity path `queue` (any state), oldest
    /// first, without locking or counting a delivery.
    pub fn peek(&self, queue: &str) -> Result<Vec<Message>> {
        let now = self.now();
        self.with_tx(|tx| {
            if let Some(base) = queue.strip_suffix(DEAD_LETTER_SUFFIX) {
                self.sweep(tx, base, now)?;
            } else {
                self.sweep(tx, queue, now)?;
            }
            let mut stmt = tx.prepare(&format!(
                "SELECT {COLUMNS} FROM messages WHERE queue = ?1 ORDER BY seq"
            ))?;
            let rows = stmt.query_map([queue], read_message)?;
            let mut out = Vec::new();
            for row in rows {
                out.push(row??);
            }
            Ok(out)
        })
    }

    /// Messages in `queue` by state.
    pub fn counts(&self, queue: &str) -> Result<QueueCounts> {
        let now = self.now();
        self.with_tx(|tx| {
            self.sweep(tx, queue, now)?;
            let count = |sql: &str, q: &str| -> Result<u64> {
                Ok(tx.query_row(sql, params![q, now.as_millis()], |r| r.get::<_, i64>(0))? as u64)
            };
            Ok(QueueCounts {
                active: count(
                    &format!(
                        "SELECT COUNT(*) FROM messages WHERE queue = ?1 AND enqueued_at <= ?2 AND {UNLOCKED}"
                    ),
                    queue,
                )?,
                scheduled: count(
                    "SELECT COUNT(*) FROM messages WHERE queue = ?1 AND enqueued_at > ?2 \
                     AND lock_token IS NULL",
                    queue,
                )?,
                locked: count(
                    "SELECT COUNT(*) FROM messages WHERE queue = ?1 AND lock_token IS NOT NULL \
                     AND locked_until > ?2",
                    queue,
                )?,
                dead_lettered: count(
                    "SELECT COUNT(*) FROM messages WHERE queue = ?1 AND ?2 = ?2",
                    &dead_letter_queue_name(queue),
                )?,
            })
        })
    }

    /// Waits until a send or abandon through *this process* may have made a
    /// message visible, or `max` passes (sends from other processes are only
    /// seen by polling, so callers use a short `max`).
    pub async fn wait_for_send(&self, max: Duration) {
        let _ = tokio::time::timeout(max, self.inner.sent.notified()).await;
    }
}

fn move_to_dlq(
    tx: &rusqlite::Transaction<'_>,
    seq: i64,
    queue: &str,
    reason: &str,
    description: &str,
) -> Result<()> {
    tx.execute(
        "UPDATE messages SET queue = ?2, lock_token = NULL, locked_until = NULL, \
         dead_letter_reason = ?3, dead_letter_description = ?4 WHERE seq = ?1",
        params![seq, dead_letter_queue_name(queue), reason, description],
    )?;
    Ok(())
}

fn exhausted_description(max: u32) -> String {
    format!("Message could not be consumed after {max} delivery attempts.")
}

fn read_message(r: &Row<'_>) -> rusqlite::Result<Result<Message>> {
    let properties: String = r.get(8)?;
    let properties = match serde_json::from_str(&properties) {
        Ok(p) => p,
        Err(e) => return Ok(Err(LocalQueueError::Corrupt(format!("properties: {e}")))),
    };
    Ok(Ok(Message {
        queue: r.get(0)?,
        sequence_number: r.get(1)?,
        message_id: r.get(2)?,
        body: r.get(3)?,
        content_type: r.get(4)?,
        session_id: r.get(5)?,
        correlation_id: r.get(6)?,
        subject: r.get(7)?,
        properties,
        enqueued_time: Timestamp::from_millis(r.get(9)?),
        scheduled_enqueue_time: r.get::<_, Option<i64>>(10)?.map(Timestamp::from_millis),
        expires_at: r.get::<_, Option<i64>>(11)?.map(Timestamp::from_millis),
        delivery_count: r.get(12)?,
        dead_letter_reason: r.get(13)?,
        dead_letter_description: r.get(14)?,
    }))
}

fn validate_entity(queue: &str) -> Result<()> {
    if queue.is_empty() || queue.len() > MAX_ENTITY_PATH_LEN {
        return Err(LocalQueueError::Invalid(format!(
            "entity path must be 1–{MAX_ENTITY_PATH_LEN} characters: {queue:?}"
        )));
    }
    if queue.contains('$') {
        return Err(LocalQueueError::Invalid(format!(
            "cannot send to a system sub-queue: {queue:?}"
        )));
    }
    Ok(())
}

fn validate_outbound(m: &OutboundMessage) -> Result<()> {
    validate_entity(m.queue.as_str())?;
    if m.message_id.is_empty() || m.message_id.len() > MAX_ID_LEN {
        return Err(LocalQueueError::Invalid(format!(
            "MessageId must be 1–{MAX_ID_LEN} characters"
        )));
    }
    if m.session_id.as_ref().is_some_and(|s| s.len() > MAX_ID_LEN) {
        return Err(LocalQueueError::Invalid(format!(
            "SessionId longer than {MAX_ID_LEN} characters"
        )));
    }
    Ok(())
}

/// A random version-4 UUID in its usual text form (lock tokens, generated ids).
pub fn new_uuid() -> String {
    let b: u128 = rand::random::<u128>() & !(0xF << 76) & !(0x3 << 62) | (0x4 << 76) | (0x2 << 62);
    let h = format!("{b:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[async_trait::async_trait]
impl QueueSender for LocalQueue {
    async fn send(&self, messages: Vec<OutboundMessage>) -> Result<(), QueueError> {
        let queue = self.clone();
        let run = move || queue.enqueue(&messages).map(|_| ());
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => handle
                .spawn_blocking(run)
                .await
                .map_err(|e| QueueError::Transient(format!("local queue task failed: {e}")))?
                .map_err(QueueError::from),
            Err(_) => run().map_err(QueueError::from),
        }
    }

    /// Every chunk in one transaction: all sent, or none (`sent` is 0).
    async fn send_chunks(&self, chunks: Vec<Vec<OutboundMessage>>) -> Result<(), ChunksError> {
        let all: Vec<OutboundMessage> = chunks.into_iter().flatten().collect();
        self.send(all)
            .await
            .map_err(|error| ChunksError { sent: 0, error })
    }

    /// Counts from the queue file ([`LocalQueue::counts`]).
    async fn depth(&self, queue: &syncbridge_core::QueueName) -> syncbridge_core::QueueDepth {
        let (q, name) = (self.clone(), queue.as_str().to_owned());
        let counted = tokio::task::spawn_blocking(move || q.counts(&name)).await;
        match counted {
            Ok(Ok(c)) => syncbridge_core::QueueDepth::Counted(syncbridge_core::MessageCounts {
                active: c.active,
                scheduled: c.scheduled,
                locked: Some(c.locked),
                dead_lettered: c.dead_lettered,
            }),
            Ok(Err(e)) => syncbridge_core::QueueDepth::Unknown(format!("counting {queue}: {e}")),
            Err(e) => syncbridge_core::QueueDepth::Unknown(format!("counting {queue}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Generated ids look like version-4 UUIDs and differ.
    #[test]
    fn uuids_are_v4_and_distinct() {
        let a = new_uuid();
        let b = new_uuid();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
    }
}
