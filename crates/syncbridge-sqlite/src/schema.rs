//! Schema and migrations. Each entry of [`MIGRATIONS`] runs once, in order, in
//! its own transaction; `PRAGMA user_version` records how many have run.

use rusqlite::Connection;

const MIGRATIONS: &[&str] = &[
    // 1: initial schema.
    "CREATE TABLE connections (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        doc TEXT NOT NULL
     );
     CREATE TABLE tasks (
        id TEXT PRIMARY KEY,
        connection TEXT NOT NULL,
        priority INTEGER NOT NULL,
        next_run_at INTEGER NOT NULL,
        lease_until INTEGER,
        version INTEGER NOT NULL,
        doc TEXT NOT NULL
     );
     CREATE INDEX tasks_due ON tasks (next_run_at, priority);
     CREATE INDEX tasks_connection ON tasks (connection);
     CREATE TABLE records (
        connection TEXT NOT NULL,
        object TEXT NOT NULL,
        external_id TEXT NOT NULL,
        data TEXT NOT NULL,
        hash TEXT NOT NULL,
        version INTEGER NOT NULL,
        remote_updated_at INTEGER,
        PRIMARY KEY (connection, object, external_id)
     ) WITHOUT ROWID;
     CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        task TEXT NOT NULL,
        connection TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        doc TEXT NOT NULL
     );
     CREATE INDEX runs_task ON runs (task, started_at);
     CREATE TABLE webhook_events (
        connection TEXT NOT NULL,
        dedup_key TEXT NOT NULL,
        received_at INTEGER NOT NULL,
        body BLOB NOT NULL,
        PRIMARY KEY (connection, dedup_key)
     ) WITHOUT ROWID;
     CREATE TABLE quarantine (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        source TEXT NOT NULL,
        message_id TEXT,
        reason TEXT NOT NULL,
        body BLOB NOT NULL,
        at INTEGER NOT NULL
     );",
    // 2: sealed credentials and named locks.
    "CREATE TABLE credentials (
        connection TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        key_version TEXT NOT NULL,
        nonce BLOB NOT NULL,
        ciphertext BLOB NOT NULL,
        expires_at INTEGER,
        refreshed_at INTEGER NOT NULL
     );
     CREATE INDEX credentials_expiry ON credentials (expires_at);
     CREATE TABLE locks (
        name TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        until INTEGER NOT NULL
     ) WITHOUT ROWID;",
    // 3: the connection a quarantined webhook event belongs to (for replay).
    "ALTER TABLE quarantine ADD COLUMN connection TEXT;",
    // 4: webhook events carry whole bodies; a rowid table with a unique index
    //    keeps inserts cheap (WITHOUT ROWID suits only small rows).
    "CREATE TABLE webhook_events_v4 (
        id INTEGER PRIMARY KEY,
        connection TEXT NOT NULL,
        dedup_key TEXT NOT NULL,
        received_at INTEGER NOT NULL,
        body BLOB NOT NULL
     );
     INSERT INTO webhook_events_v4 (connection, dedup_key, received_at, body)
        SELECT connection, dedup_key, received_at, body FROM webhook_events;
     DROP TABLE webhook_events;
     ALTER TABLE webhook_events_v4 RENAME TO webhook_events;
     CREATE UNIQUE INDEX webhook_events_key ON webhook_events (connection, dedup_key);",
    // 5: outbound sync. A record's local state (base, outbox, parked
    //    conflicts) lives with it; push_due_at mirrors the outbox's due time
    //    so the due-push sweep is an index range. The audit log is
    //    append-only, keyed by decision.
    "ALTER TABLE records ADD COLUMN local TEXT;
     ALTER TABLE records ADD COLUMN push_due_at INTEGER;
     CREATE INDEX records_push_due ON records (push_due_at) WHERE push_due_at IS NOT NULL;
     CREATE INDEX records_local ON records (connection, object, external_id) WHERE local IS NOT NULL;
     CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        connection TEXT NOT NULL,
        at INTEGER NOT NULL,
        doc TEXT NOT NULL
     );
     CREATE INDEX audit_connection ON audit (connection, seq);",
    // 6: webhook events are pruned past the dedup window oldest first; the
    //    index keeps that a range delete (received_at grows with inserts, so
    //    the index appends at its end and costs the accept path little).
    "CREATE INDEX webhook_events_received ON webhook_events (received_at);",
    // 7: the scheduler, the watchdog and the token sweep read index ranges
    //    instead of every row. `eligible_at` is when a task can next be
    //    leased (due, and any lease expired), so a tick with nothing due
    //    reads nothing even while thousands of tasks are leased; `stall_at`
    //    mirrors SyncTask::stall_at (NULL once flagged) and
    //    `sweep_at` the credentials layer's next sweep time; both are
    //    backfilled with the same rules (timestamps are epoch milliseconds
    //    in the JSON documents; the sweep's idle limit is its default day).
    "ALTER TABLE tasks ADD COLUMN stall_at INTEGER;
     UPDATE tasks SET stall_at = CASE WHEN json_extract(doc, '$.stalled') THEN NULL
        ELSE COALESCE(json_extract(doc, '$.last_run_at'), next_run_at)
             + 2000 * MAX(json_extract(doc, '$.interval_secs'), 1) END;
     CREATE INDEX tasks_stall ON tasks (stall_at) WHERE stall_at IS NOT NULL;
     ALTER TABLE tasks ADD COLUMN eligible_at INTEGER;
     UPDATE tasks SET eligible_at = MAX(next_run_at, COALESCE(lease_until + 1, next_run_at));
     CREATE INDEX tasks_eligible ON tasks (eligible_at);
     ALTER TABLE credentials ADD COLUMN sweep_at INTEGER;
     UPDATE credentials SET sweep_at = MIN(
        expires_at - MIN(MAX(300000, (expires_at - refreshed_at) / 10), (expires_at - refreshed_at) / 2),
        refreshed_at + 86400000) WHERE expires_at IS NOT NULL;
     CREATE INDEX credentials_sweep ON credentials (sweep_at) WHERE sweep_at IS NOT NULL;",
];

/// Connection settings: WAL so several processes share the file, a busy
/// timeout instead of immediate `SQLITE_BUSY`, and `synchronous = NORMAL`
/// (durable across process crashes; WAL keeps the database consistent on power loss).
pub(crate) fn configure(db: &Connection) -> rusqlite::Result<()> {
    db.busy_timeout(std::time::Duration::from_secs(10))?;
    db.pragma_update(None, "journal_mode", "WAL")?;
    db.pragma_update(None, "synchronous", "NORMAL")?;
    db.pragma_update(None, "foreign_keys", "ON")?;
    // Reads through a memory map instead of a read() copy per page, and a
    // larger page cache than the 2 MiB default: a scheduler tick reads tens
    // of thousands of task rows scattered over the file, and with the
    // defaults most of its CPU went to copying pages out of the OS cache
    // (BENCHMARKS.md, "Scheduler at scale"). Both are limits, not
    // allocations: memory grows only with what is touched.
    db.pragma_update(None, "mmap_size", 256 * 1024 * 1024)?;
    db.pragma_update(None, "cache_size", -16 * 1024)?;
    Ok(())
}

/// Applies every migration not yet applied.
pub(crate) fn migrate(db: &mut Connection) -> rusqlite::Result<()> {
    let done: i64 = db.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(done as usize) {
        let tx = db.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "applied store migration");
    }
    Ok(())
}
