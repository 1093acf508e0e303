//! The outbox: groups of repeating events and the messages waiting to be
//! sent, in one SQLite file (WAL). Every function here is synchronous and
//! runs one transaction; the service calls them on the blocking pool.
//!
//! A message row is written in the same transaction that records the event,
//! so an event the service accepted is never lost by a crash: it is sent by
//! whichever process runs `deliver_due` next. Sending is at-least-once: a row
//! is claimed (attempts + 1, due again after a lease) before the request and
//! marked delivered after it, so a crash in between sends it again later.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use crate::error::NotifyError;

const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS outbox (
    id          TEXT PRIMARY KEY,   -- message id: webhook-id, stable across retries
    channel     TEXT NOT NULL,      -- channel name (the URL is never stored)
    group_id    TEXT NOT NULL,
    occurrence  TEXT NOT NULL,      -- 'first' | 'repeated'
    event       TEXT NOT NULL,      -- the core Event as JSON
    count       INTEGER NOT NULL,
    first_at    INTEGER NOT NULL,   -- ms since epoch
    last_at     INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    due_at      INTEGER NOT NULL,   -- next attempt, or end of the current claim
    attempts    INTEGER NOT NULL DEFAULT 0,
    state       TEXT NOT NULL,      -- 'pending' | 'delivered' | 'dead'
    last_error  TEXT,
    done_at     INTEGER
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox(state, due_at);
CREATE INDEX IF NOT EXISTS outbox_group ON outbox(group_id, occurrence, state);
CREATE TABLE IF NOT EXISTS groups (
    key              TEXT PRIMARY KEY,  -- tenant | group_key
    group_id         TEXT NOT NULL,
    channels         TEXT NOT NULL,     -- JSON array of channel names
    opened_at        INTEGER NOT NULL,
    first_due_at     INTEGER NOT NULL,  -- when the first message goes out
    closes_at        INTEGER NOT NULL,  -- end of the current window
    pending          INTEGER NOT NULL,  -- occurrences not reported yet
    pending_first_at INTEGER,
    last_at          INTEGER NOT NULL,
    last_event       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS groups_close ON groups(closes_at);
";

/// Opens (creating) the outbox file.
pub(crate) fn open(path: &Path) -> Result<Connection, NotifyError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| NotifyError::Store(format!("cannot create {}: {e}", parent.display())))?;
    }
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    syncbridge_sqlite::enable_wal(&conn, Duration::from_secs(5))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(NotifyError::Store(format!(
            "{} has schema version {version}; this build knows {SCHEMA_VERSION}",
            path.display()
        )));
    }
    tx.execute_batch(SCHEMA)?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(conn)
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}_{:032x}", rand::random::<u128>())
}

/// What recording an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnqueueOutcome {
    /// No route: the reason.
    Dropped(&'static str),
    /// A new group: its first message was queued for these channels.
    Queued {
        /// One message per channel.
        messages: usize,
    },
    /// Counted into an open group (no new message now).
    Grouped,
}

struct Group {
    key: String,
    group_id: String,
    channels: Vec<String>,
    first_due_at: i64,
    closes_at: i64,
    pending: i64,
    pending_first_at: Option<i64>,
    last_at: i64,
    last_event: String,
}

fn load_group(tx: &Transaction<'_>, key: &str) -> Result<Option<Group>, NotifyError> {
    let row = tx
        .query_row(
            "SELECT key, group_id, channels, first_due_at, closes_at, pending, pending_first_at,
                    last_at, last_event
             FROM groups WHERE key = ?1",
            params![key],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, Option<i64>>(6)?,
                    r.get::<_, i64>(7)?,
                    r.get::<_, String>(8)?,
                ))
            },
        )
        .optional()?;
    row.map(
        |(key, group_id, channels, first_due_at, closes_at, pending, pfa, last_at, ev)| {
            let channels = serde_json::from_str(&channels)
                .map_err(|e| NotifyError::Store(format!("group {key}: bad channel list: {e}")))?;
            Ok(Group {
                key,
                group_id,
                channels,
                first_due_at,
                closes_at,
                pending,
                pending_first_at: pfa,
                last_at,
                last_event: ev,
            })
        },
    )
    .transpose()
}

/// One outbox message for one channel: a group's first occurrence, or its
/// "repeated N more times" summary. Times are Unix milliseconds.
struct NewMessage<'a> {
    channel: &'a str,
    group_id: &'a str,
    /// `first` or `repeated`.
    occurrence: &'a str,
    event: &'a str,
    /// Occurrences it stands for.
    count: i64,
    first_at: i64,
    last_at: i64,
    now: i64,
    due_at: i64,
}

fn insert_message(tx: &Transaction<'_>, m: &NewMessage<'_>) -> Result<(), NotifyError> {
    tx.execute(
        "INSERT INTO outbox (id, channel, group_id, occurrence, event, count, first_at, last_at,
                             created_at, due_at, attempts, state)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 0, 'pending')",
        params![
            new_id("ntf"),
            m.channel,
            m.group_id,
            m.occurrence,
            m.event,
            m.count,
            m.first_at,
            m.last_at,
            m.now,
            m.due_at
        ],
    )?;
    Ok(())
}

/// Ends a group's window at `now`: queues the "repeated N more times"
/// message if there were repeats and starts the next window, or removes the
/// group if the window was quiet. Returns the group if it lives on.
fn roll(
    tx: &Transaction<'_>,
    mut g: Group,
    now: i64,
    window_ms: i64,
) -> Result<Option<Group>, NotifyError> {
    if g.pending <= 0 {
        tx.execute("DELETE FROM groups WHERE key = ?1", params![g.key])?;
        return Ok(None);
    }
    for ch in &g.channels {
        insert_message(
            tx,
            &NewMessage {
                channel: ch,
                group_id: &g.group_id,
                occurrence: "repeated",
                event: &g.last_event,
                count: g.pending,
                first_at: g.pending_first_at.unwrap_or(g.last_at),
                last_at: g.last_at,
                now,
                due_at: now,
            },
        )?;
    }
    let next = g.closes_at.saturating_add(window_ms);
    g.closes_at = if next > now {
        next
    } else {
        now.saturating_add(window_ms)
    };
    g.pending = 0;
    g.pending_first_at = None;
    tx.execute(
        "UPDATE groups SET pending = 0, pending_first_at = NULL, closes_at = ?2 WHERE key = ?1",
        params![g.key, g.closes_at],
    )?;
    Ok(Some(g))
}

/// Records one occurrence of an event routed to `channels`.
pub(crate) fn record(
    conn: &mut Connection,
    now: i64,
    key: &str,
    channels: &[String],
    event: &str,
    wait_ms: i64,
    window_ms: i64,
) -> Result<EnqueueOutcome, NotifyError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut group = load_group(&tx, key)?;
    if let Some(g) = group.take() {
        group = if now >= g.closes_at {
            roll(&tx, g, now, window_ms)?
        } else {
            Some(g)
        };
    }
    let outcome = match group {
        None => {
            let group_id = new_id("grp");
            let first_due = now.saturating_add(wait_ms);
            for ch in channels {
                insert_message(
                    &tx,
                    &NewMessage {
                        channel: ch,
                        group_id: &group_id,
                        occurrence: "first",
                        event,
                        count: 1,
                        first_at: now,
                        last_at: now,
                        now,
                        due_at: first_due,
                    },
                )?;
            }
            let channels_json = serde_json::to_string(channels)
                .map_err(|e| NotifyError::Store(format!("cannot store channel list: {e}")))?;
            tx.execute(
                "INSERT INTO groups (key, group_id, channels, opened_at, first_due_at, closes_at,
                                     pending, pending_first_at, last_at, last_event)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, NULL, ?4, ?7)",
                params![
                    key,
                    group_id,
                    channels_json,
                    now,
                    first_due,
                    now.saturating_add(window_ms),
                    event
                ],
            )?;
            EnqueueOutcome::Queued {
                messages: channels.len(),
            }
        }
        Some(g) => {
            // While the first message is still held, the occurrence joins it.
            let bumped = if now < g.first_due_at {
                tx.execute(
                    "UPDATE outbox SET count = count + 1, last_at = ?2
                     WHERE group_id = ?1 AND occurrence = 'first' AND state = 'pending'
                       AND attempts = 0",
                    params![g.group_id, now],
                )?
            } else {
                0
            };
            if bumped == 0 {
                tx.execute(
                    "UPDATE groups SET pending = pending + 1,
                            pending_first_at = COALESCE(pending_first_at, ?2),
                            last_at = ?2, last_event = ?3
                     WHERE key = ?1",
                    params![g.key, now, event],
                )?;
            } else {
                tx.execute(
                    "UPDATE groups SET last_at = ?2, last_event = ?3 WHERE key = ?1",
                    params![g.key, now, event],
                )?;
            }
            EnqueueOutcome::Grouped
        }
    };
    tx.commit()?;
    Ok(outcome)
}

/// Rolls every group whose window has closed by `now`.
pub(crate) fn close_windows(
    conn: &mut Connection,
    now: i64,
    window_ms: i64,
) -> Result<(), NotifyError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let keys: Vec<String> = {
        let mut stmt = tx.prepare("SELECT key FROM groups WHERE closes_at <= ?1")?;
        stmt.query_map(params![now], |r| r.get(0))?
            .collect::<Result<_, _>>()?
    };
    for key in keys {
        if let Some(g) = load_group(&tx, &key)? {
            roll(&tx, g, now, window_ms)?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// A claimed message.
#[derive(Debug, Clone)]
pub(crate) struct Claimed {
    pub id: String,
    pub channel: String,
    pub occurrence: String,
    pub event: String,
    pub count: i64,
    pub first_at: i64,
    pub last_at: i64,
    /// Attempts including this one.
    pub attempts: u32,
}

/// Claims up to `limit` due messages: each is due again after `lease_ms`
/// unless its outcome is recorded first.
pub(crate) fn claim(
    conn: &mut Connection,
    now: i64,
    lease_ms: i64,
    limit: u32,
) -> Result<Vec<Claimed>, NotifyError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let rows: Vec<Claimed> = {
        let mut stmt = tx.prepare(
            "SELECT id, channel, occurrence, event, count, first_at, last_at, attempts
             FROM outbox WHERE state = 'pending' AND due_at <= ?1
             ORDER BY due_at, created_at LIMIT ?2",
        )?;
        stmt.query_map(params![now, limit], |r| {
            Ok(Claimed {
                id: r.get(0)?,
                channel: r.get(1)?,
                occurrence: r.get(2)?,
                event: r.get(3)?,
                count: r.get(4)?,
                first_at: r.get(5)?,
                last_at: r.get(6)?,
                attempts: r.get::<_, u32>(7)?.saturating_add(1),
            })
        })?
        .collect::<Result<_, _>>()?
    };
    for row in &rows {
        tx.execute(
            "UPDATE outbox SET attempts = ?2, due_at = ?3 WHERE id = ?1",
            params![row.id, row.attempts, now.saturating_add(lease_ms)],
        )?;
    }
    tx.commit()?;
    Ok(rows)
}

/// The recorded outcome of one claimed message.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    Delivered,
    Retry { due_at: i64, error: String },
    Dead { error: String },
}

/// Records outcomes in one transaction.
pub(crate) fn finish(
    conn: &mut Connection,
    now: i64,
    outcomes: &[(String, Outcome)],
) -> Result<(), NotifyError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for (id, outcome) in outcomes {
        match outcome {
            Outcome::Delivered => tx.execute(
                "UPDATE outbox SET state = 'delivered', done_at = ?2, last_error = NULL
                 WHERE id = ?1",
                params![id, now],
            )?,
            Outcome::Retry { due_at, error } => tx.execute(
                "UPDATE outbox SET due_at = ?2, last_error = ?3 WHERE id = ?1 AND state = 'pending'",
                params![id, due_at, error],
            )?,
            Outcome::Dead { error } => tx.execute(
                "UPDATE outbox SET state = 'dead', done_at = ?2, last_error = ?3 WHERE id = ?1",
                params![id, now, error],
            )?,
        };
    }
    tx.commit()?;
    Ok(())
}

/// Deletes delivered and dead messages finished before `cutoff`.
pub(crate) fn prune(conn: &mut Connection, cutoff: i64) -> Result<usize, NotifyError> {
    Ok(conn.execute(
        "DELETE FROM outbox WHERE state IN ('delivered', 'dead') AND done_at < ?1",
        params![cutoff],
    )?)
}

/// The earliest instant at which `deliver_due` has work: a due message or a
/// closing window.
pub(crate) fn next_due(conn: &Connection) -> Result<Option<i64>, NotifyError> {
    Ok(conn.query_row(
        "SELECT MIN(t) FROM (
             SELECT MIN(due_at) AS t FROM outbox WHERE state = 'pending'
             UNION ALL SELECT MIN(closes_at) FROM groups)",
        [],
        |r| r.get(0),
    )?)
}

/// Counts by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// Messages waiting (held, due, or being retried).
    pub pending: u64,
    /// Messages delivered (kept for the retention period).
    pub delivered: u64,
    /// Messages given up on (kept for the retention period).
    pub dead: u64,
    /// Open grouping windows.
    pub open_groups: u64,
}

pub(crate) fn stats(conn: &Connection) -> Result<OutboxStats, NotifyError> {
    let mut s = OutboxStats::default();
    let mut stmt = conn.prepare("SELECT state, COUNT(*) FROM outbox GROUP BY state")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?)))?;
    for row in rows {
        let (state, n) = row?;
        match state.as_str() {
            "pending" => s.pending = n,
            "delivered" => s.delivered = n,
            "dead" => s.dead = n,
            _ => {}
        }
    }
    s.open_groups = conn.query_row("SELECT COUNT(*) FROM groups", [], |r| r.get(0))?;
    Ok(s)
}

/// A message that was given up on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadMessage {
    /// Message id.
    pub id: String,
    /// Channel name.
    pub channel: String,
    /// Attempts made.
    pub attempts: u32,
    /// The last error (no URL, no secret).
    pub last_error: Option<String>,
}

pub(crate) fn dead(conn: &Connection, limit: u32) -> Result<Vec<DeadMessage>, NotifyError> {
    let mut stmt = conn.prepare(
        "SELECT id, channel, attempts, last_error FROM outbox WHERE state = 'dead'
         ORDER BY done_at DESC LIMIT ?1",
    )?;
    let rows = stmt
        .query_map(params![limit], |r| {
            Ok(DeadMessage {
                id: r.get(0)?,
                channel: r.get(1)?,
                attempts: r.get(2)?,
                last_error: r.get(3)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}
