//! Schema and migrations. Each entry of [`MIGRATIONS`] runs once, in order,
//! under the write lock; `PRAGMA user_version` records how many have run.

use std::time::{Duration, Instant};

use rusqlite::Connection;
use syncbridge_core::StoreError;

/// One step of a migration. Every step is idempotent (a table or index that
/// exists, or a column that is already there, is left alone), so a migration
/// that somehow runs twice cannot fail half-way or break the data dir.
enum Step {
    /// Statements that are idempotent by themselves (`IF NOT EXISTS`).
    Sql(&'static str),
    /// `ALTER TABLE <table> ADD COLUMN <column> <decl>` unless the column exists.
    AddColumn {
        table: &'static str,
        column: &'static str,
        decl: &'static str,
    },
    /// Anything else; the function checks for itself whether there is work.
    Custom(fn(&Connection) -> rusqlite::Result<()>),
}

/// The migrations, in order; `PRAGMA user_version` counts the applied ones.
const MIGRATIONS: &[&[Step]] = &[
    // 1: initial schema.
    &[Step::Sql(
        "CREATE TABLE IF NOT EXISTS connections (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        doc TEXT NOT NULL
     );
     CREATE TABLE IF NOT EXISTS tasks (
        id TEXT PRIMARY KEY,
        connection TEXT NOT NULL,
        priority INTEGER NOT NULL,
        next_run_at INTEGER NOT NULL,
        lease_until INTEGER,
        version INTEGER NOT NULL,
        doc TEXT NOT NULL
     );
     CREATE INDEX IF NOT EXISTS tasks_due ON tasks (next_run_at, priority);
     CREATE INDEX IF NOT EXISTS tasks_connection ON tasks (connection);
     CREATE TABLE IF NOT EXISTS records (
        connection TEXT NOT NULL,
        object TEXT NOT NULL,
        external_id TEXT NOT NULL,
        data TEXT NOT NULL,
        hash TEXT NOT NULL,
        version INTEGER NOT NULL,
        remote_updated_at INTEGER,
        PRIMARY KEY (connection, object, external_id)
     ) WITHOUT ROWID;
     CREATE TABLE IF NOT EXISTS runs (
        id TEXT PRIMARY KEY,
        task TEXT NOT NULL,
        connection TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        doc TEXT NOT NULL
     );
     CREATE INDEX IF NOT EXISTS runs_task ON runs (task, started_at);
     CREATE TABLE IF NOT EXISTS webhook_events (
        connection TEXT NOT NULL,
        dedup_key TEXT NOT NULL,
        received_at INTEGER NOT NULL,
        body BLOB NOT NULL,
        PRIMARY KEY (connection, dedup_key)
     ) WITHOUT ROWID;
     CREATE TABLE IF NOT EXISTS quarantine (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        source TEXT NOT NULL,
        message_id TEXT,
        reason TEXT NOT NULL,
        body BLOB NOT NULL,
        at INTEGER NOT NULL
     );",
    )],
    // 2: sealed credentials and named locks.
    &[Step::Sql(
        "CREATE TABLE IF NOT EXISTS credentials (
        connection TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        key_version TEXT NOT NULL,
        nonce BLOB NOT NULL,
        ciphertext BLOB NOT NULL,
        expires_at INTEGER,
        refreshed_at INTEGER NOT NULL
     );
     CREATE INDEX IF NOT EXISTS credentials_expiry ON credentials (expires_at);
     CREATE TABLE IF NOT EXISTS locks (
        name TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        until INTEGER NOT NULL
     ) WITHOUT ROWID;",
    )],
    // 3: the connection a quarantined webhook event belongs to (for replay).
    &[Step::AddColumn {
        table: "quarantine",
        column: "connection",
        decl: "TEXT",
    }],
    // 4: webhook events carry whole bodies; a rowid table with a unique index
    //    keeps inserts cheap (WITHOUT ROWID suits only small rows).
    &[Step::Custom(webhook_events_rowid)],
    // 5: outbound sync. A record's local state (base, outbox, parked
    //    conflicts) lives with it; push_due_at mirrors the outbox's due time
    //    so the due-push sweep is an index range. The audit log is
    //    append-only, keyed by decision.
    &[
        Step::AddColumn {
            table: "records",
            column: "local",
            decl: "TEXT",
        },
        Step::AddColumn {
            table: "records",
            column: "push_due_at",
            decl: "INTEGER",
        },
        Step::Sql(
            "CREATE INDEX IF NOT EXISTS records_push_due ON records (push_due_at) WHERE push_due_at IS NOT NULL;
     CREATE INDEX IF NOT EXISTS records_local ON records (connection, object, external_id) WHERE local IS NOT NULL;
     CREATE TABLE IF NOT EXISTS audit (
        seq INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        connection TEXT NOT NULL,
        at INTEGER NOT NULL,
        doc TEXT NOT NULL
     );
     CREATE INDEX IF NOT EXISTS audit_connection ON audit (connection, seq);",
        ),
    ],
    // 6: webhook events are pruned past the dedup window oldest first; the
    //    index keeps that a range delete (received_at grows with inserts, so
    //    the index appends at its end and costs the accept path little).
    &[Step::Sql(
        "CREATE INDEX IF NOT EXISTS webhook_events_received ON webhook_events (received_at);",
    )],
    // 7: the scheduler, the watchdog and the token sweep read index ranges
    //    instead of every row. `eligible_at` is when a task can next be
    //    leased (due, and any lease expired), so a tick with nothing due
    //    reads nothing even while thousands of tasks are leased; `stall_at`
    //    mirrors SyncTask::stall_at (NULL once flagged) and
    //    `sweep_at` the credentials layer's next sweep time; both are
    //    backfilled with the same rules (timestamps are epoch milliseconds
    //    in the JSON documents; the sweep's idle limit is its default day).
    //    The backfills compute from the documents, so running them again
    //    writes the same values.
    &[
        Step::AddColumn {
            table: "tasks",
            column: "stall_at",
            decl: "INTEGER",
        },
        Step::AddColumn {
            table: "tasks",
            column: "eligible_at",
            decl: "INTEGER",
        },
        Step::AddColumn {
            table: "credentials",
            column: "sweep_at",
            decl: "INTEGER",
        },
        Step::Sql(
            "UPDATE tasks SET stall_at = CASE WHEN json_extract(doc, '$.stalled') THEN NULL
        ELSE COALESCE(json_extract(doc, '$.last_run_at'), next_run_at)
             + 2000 * MAX(json_extract(doc, '$.interval_secs'), 1) END;
     CREATE INDEX IF NOT EXISTS tasks_stall ON tasks (stall_at) WHERE stall_at IS NOT NULL;
     UPDATE tasks SET eligible_at = MAX(next_run_at, COALESCE(lease_until + 1, next_run_at));
     CREATE INDEX IF NOT EXISTS tasks_eligible ON tasks (eligible_at);
     UPDATE credentials SET sweep_at = MIN(
        expires_at - MIN(MAX(300000, (expires_at - refreshed_at) / 10), (expires_at - refreshed_at) / 2),
        refreshed_at + 86400000) WHERE expires_at IS NOT NULL;
     CREATE INDEX IF NOT EXISTS credentials_sweep ON credentials (sweep_at) WHERE sweep_at IS NOT NULL;",
        ),
    ],
    // 8: the records feed (core's `store::feed`). Every record carries its
    //    connection's change sequence and when/how our store last changed
    //    it; a removal keeps the row as a tombstone (`deleted_at` set, local
    //    state cleared) that only the feed reads. `record_seq` holds each
    //    connection's last sequence, bumped in the writing transaction.
    //    Backfill: existing rows numbered per connection in key order after
    //    any already numbered, stamped `added` at the migration's time; the
    //    counter takes the highest number. Every statement touches only
    //    unnumbered rows or raises the counter to the maximum, so running
    //    it again changes nothing.
    &[
        Step::AddColumn {
            table: "records",
            column: "seq",
            decl: "INTEGER",
        },
        Step::AddColumn {
            table: "records",
            column: "first_seen_at",
            decl: "INTEGER",
        },
        Step::AddColumn {
            table: "records",
            column: "last_modified_at",
            decl: "INTEGER",
        },
        Step::AddColumn {
            table: "records",
            column: "last_action",
            decl: "TEXT NOT NULL DEFAULT 'added'",
        },
        Step::AddColumn {
            table: "records",
            column: "deleted_at",
            decl: "INTEGER",
        },
        Step::Sql(
            "CREATE TABLE IF NOT EXISTS record_seq (
        connection TEXT PRIMARY KEY,
        last INTEGER NOT NULL
     ) WITHOUT ROWID;
     UPDATE records SET seq = n.seq,
        first_seen_at = COALESCE(first_seen_at, n.now),
        last_modified_at = COALESCE(last_modified_at, n.now)
     FROM (SELECT connection AS c, object AS o, external_id AS e,
             CAST(unixepoch('subsec') * 1000 AS INTEGER) AS now,
             ROW_NUMBER() OVER (PARTITION BY connection ORDER BY object, external_id)
               + COALESCE((SELECT MAX(seq) FROM records r2 WHERE r2.connection = r1.connection), 0) AS seq
           FROM records r1 WHERE seq IS NULL) AS n
     WHERE records.connection = n.c AND records.object = n.o AND records.external_id = n.e;
     INSERT INTO record_seq (connection, last)
        SELECT connection, MAX(seq) FROM records WHERE seq IS NOT NULL GROUP BY connection
        ON CONFLICT(connection) DO UPDATE SET last = MAX(last, excluded.last);
     CREATE INDEX IF NOT EXISTS records_feed ON records (connection, object, seq);",
        ),
    ],
    // 9: the product API (SyncApi). API keys are stored as their SHA-256
    //    only, found by it; connection and run lists page by key ranges
    //    (a tenant's connections by id, a connection's runs newest first).
    &[Step::Sql(
        "CREATE TABLE IF NOT EXISTS api_keys (
        id TEXT PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        doc TEXT NOT NULL
     );
     CREATE INDEX IF NOT EXISTS connections_tenant ON connections (tenant, id);
     CREATE INDEX IF NOT EXISTS runs_connection_started ON runs (connection, started_at, id);
     CREATE INDEX IF NOT EXISTS runs_started ON runs (started_at, id);",
    )],
    // 10: the API's status filters (`connections?status=`, `runs?status=`)
    //    read index ranges: expression indexes on the documents' status,
    //    spelled exactly as the queries in `api.rs` spell it (SQLite uses an
    //    expression index only for the identical expression).
    &[Step::Sql(
        "CREATE INDEX IF NOT EXISTS connections_status ON connections (json_extract(doc, '$.status'), id);
     CREATE INDEX IF NOT EXISTS runs_status ON runs (json_extract(doc, '$.status'), started_at, id);
     CREATE INDEX IF NOT EXISTS runs_connection_status ON runs (connection, json_extract(doc, '$.status'), started_at, id);",
    )],
    // 11: optimistic concurrency on connections (the API's ETag): a
    //    version bumped by every write; existing rows start at 0.
    &[Step::AddColumn {
        table: "connections",
        column: "version",
        decl: "INTEGER NOT NULL DEFAULT 0",
    }],
    // 12: function heartbeats (core's `heartbeat`): one row per function,
    //    merged under the write lock.
    &[Step::Sql(
        "CREATE TABLE IF NOT EXISTS function_beats (
        function TEXT PRIMARY KEY,
        doc TEXT NOT NULL
     ) WITHOUT ROWID;",
    )],
    // 13: the product API's changes. Idempotency keys per API key (the
    //    document is core's `IdempotencyEntry`; `expires_at` indexed for
    //    pruning); records with parked conflicts and a connection's audit
    //    page by index ranges.
    &[Step::Sql(
        "CREATE TABLE IF NOT EXISTS idempotency_keys (
        scope TEXT NOT NULL,
        key TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        doc TEXT NOT NULL,
        PRIMARY KEY (scope, key)
     ) WITHOUT ROWID;
     CREATE INDEX IF NOT EXISTS idempotency_keys_expiry ON idempotency_keys (expires_at);
     CREATE INDEX IF NOT EXISTS records_conflicts ON records (connection, object, external_id)
        WHERE json_array_length(local, '$.conflicts') > 0;
     CREATE INDEX IF NOT EXISTS audit_connection_at ON audit (connection, at, seq);",
    )],
    // 14: connect sessions (the OAuth connect flow): one document each,
    //     advanced by compare-and-swap on `version`; `expires_at` for pruning.
    &[Step::Sql(
        "CREATE TABLE IF NOT EXISTS connect_sessions (
        id TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        doc TEXT NOT NULL
     );",
    )],
    // 15: the dashboard's run stats (`Store::run_stats`): one GROUP BY over
    //     a range of run starts; the summed document fields are in the index
    //     (spelled exactly as `api::run_stats_query` spells them), so the
    //     aggregate reads the index alone.
    &[Step::Sql(
        "CREATE INDEX IF NOT EXISTS runs_stats ON runs (started_at,
        json_extract(doc, '$.status'), json_extract(doc, '$.counts.created'),
        json_extract(doc, '$.counts.updated'), json_extract(doc, '$.counts.deleted'),
        json_extract(doc, '$.finished_at'));",
    )],
    // 16: the dashboard's notification rules (core's `notify_rules`): one
    //     document, replaced by compare-and-swap on `version`. Pruning
    //     reads indexes: expiring API keys (sessions, sign-in links) through
    //     a partial index only they are in (the expression spelled exactly
    //     as `api::prune_api_keys` spells it), connect sessions by a range
    //     on `expires_at`.
    &[Step::Sql(
        "CREATE TABLE IF NOT EXISTS notification_rules (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        version INTEGER NOT NULL,
        doc TEXT NOT NULL
     );
     CREATE INDEX IF NOT EXISTS api_keys_expiry ON api_keys (json_extract(doc, '$.expires_at'))
        WHERE json_extract(doc, '$.expires_at') IS NOT NULL;
     CREATE INDEX IF NOT EXISTS connect_sessions_expiry ON connect_sessions (expires_at);",
    )],
    // 17: a task lives in two tables: `task_state`, the narrow row a
    //     scheduler tick reads by index and writes (the lease's token and
    //     expiry, version, priority, the generation a lease is fenced by,
    //     the due, stall and eligibility times), and `task_docs`, its
    //     document. A lease writes only the narrow row, which every read
    //     merges over the document, so a tick leasing tens of thousands of
    //     tasks dirties pages of small rows instead of rewriting every
    //     document (BENCHMARKS.md, "Scheduler at scale"). The rows move
    //     out of `tasks`, which stays, empty, so that migrations 1-16 can
    //     run again on it (they name its columns); copies never overwrite,
    //     so running this again changes nothing. A document that is not
    //     JSON keeps no lease (reading that task fails as before).
    &[Step::Sql(
        "CREATE TABLE IF NOT EXISTS task_state (
        id TEXT PRIMARY KEY,
        connection TEXT NOT NULL,
        priority INTEGER NOT NULL,
        next_run_at INTEGER NOT NULL,
        lease_until INTEGER,
        lease_token TEXT,
        version INTEGER NOT NULL,
        generation INTEGER NOT NULL DEFAULT 0,
        stall_at INTEGER,
        eligible_at INTEGER
     );
     CREATE TABLE IF NOT EXISTS task_docs (
        id TEXT PRIMARY KEY,
        doc TEXT NOT NULL
     );
     INSERT INTO task_state (id, connection, priority, next_run_at, lease_until, lease_token,
          version, generation, stall_at, eligible_at)
        SELECT id, connection, priority, next_run_at, lease_until,
          CASE WHEN json_valid(doc) THEN json_extract(doc, '$.lease.token') END,
          version, COALESCE(CASE WHEN json_valid(doc) THEN json_extract(doc, '$.generation') END, 0),
          stall_at, COALESCE(eligible_at, MAX(next_run_at, COALESCE(lease_until + 1, next_run_at)))
        FROM tasks WHERE true
        ON CONFLICT(id) DO NOTHING;
     INSERT INTO task_docs (id, doc) SELECT id, doc FROM tasks WHERE true
        ON CONFLICT(id) DO NOTHING;
     DELETE FROM tasks;
     CREATE INDEX IF NOT EXISTS task_state_connection ON task_state (connection);
     CREATE INDEX IF NOT EXISTS task_state_stall ON task_state (stall_at) WHERE stall_at IS NOT NULL;
     CREATE INDEX IF NOT EXISTS task_state_eligible ON task_state (eligible_at);",
    )],
];

/// The schema version this build writes: the number of migrations.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Migration 4: rebuilds `webhook_events` as a rowid table, unless it is one already.
fn webhook_events_rowid(db: &Connection) -> rusqlite::Result<()> {
    if has_column(db, "webhook_events", "id")? {
        return Ok(());
    }
    db.execute_batch(
        "DROP TABLE IF EXISTS webhook_events_v4;
     CREATE TABLE webhook_events_v4 (
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
     CREATE UNIQUE INDEX IF NOT EXISTS webhook_events_key ON webhook_events (connection, dedup_key);",
    )
}

fn has_column(db: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    let mut st = db.prepare("SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2")?;
    st.exists([table, column])
}

impl Step {
    fn apply(&self, db: &Connection) -> rusqlite::Result<()> {
        match self {
            Step::Sql(sql) => db.execute_batch(sql),
            Step::AddColumn {
                table,
                column,
                decl,
            } => {
                if !has_column(db, table, column)? {
                    db.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {decl}"))?;
                }
                Ok(())
            }
            Step::Custom(f) => f(db),
        }
    }
}

/// How long a connection waits for another's lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Switches the file to WAL (a no-op once it is), retrying for up to
/// `wait`. Turning a fresh file to WAL takes an exclusive lock that SQLite
/// does not wait for through the busy handler (the pragma already holds a
/// shared lock, and SQLite never waits to upgrade one), so processes
/// opening a new data dir together got "database is locked". Shared by
/// every SQLite file of the embedded default (store, local queue,
/// notification outbox).
pub fn enable_wal(db: &Connection, wait: Duration) -> rusqlite::Result<()> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(2);
    loop {
        match db.pragma_update(None, "journal_mode", "WAL") {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy && start.elapsed() < wait =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// Connection settings: WAL so several processes share the file, a busy
/// timeout instead of immediate `SQLITE_BUSY`, and `synchronous = NORMAL`
/// (durable across process crashes; WAL keeps the database consistent on power loss).
pub(crate) fn configure(db: &Connection) -> rusqlite::Result<()> {
    db.busy_timeout(BUSY_TIMEOUT)?;
    enable_wal(db, BUSY_TIMEOUT)?;
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

fn user_version(db: &Connection) -> rusqlite::Result<i64> {
    db.query_row("PRAGMA user_version", [], |r| r.get(0))
}

/// Refuses a file a newer build migrated further: this build would write
/// rows without the newer columns (an older CLI beside upgraded handlers
/// would leave tasks the newer scheduler never sees as due). Not transient:
/// the fix is to run the newer build.
pub(crate) fn refuse_newer(db: &Connection, path: &std::path::Path) -> Result<(), StoreError> {
    let seen = user_version(db).map_err(|e| {
        StoreError::Unavailable(format!(
            "reading the schema version of {}: {e}",
            path.display()
        ))
    })?;
    if seen > SCHEMA_VERSION {
        return Err(StoreError::Corrupt(format!(
            "{} has schema version {seen}, newer than this build's {SCHEMA_VERSION}: it was written by a newer syncbridge; use that version",
            path.display()
        )));
    }
    Ok(())
}

/// Applies every migration not yet applied.
///
/// Several processes open a fresh data dir at once (the five handlers under
/// `syncbridge up`), so the version is read again under the write lock
/// (`BEGIN IMMEDIATE`) and every pending migration runs in that one
/// transaction: two processes can never both apply migration N, and the
/// version only ever grows (a file a newer build migrated further is
/// refused before this, by `refuse_newer`). Opens that find the schema
/// current take no write lock.
pub(crate) fn migrate(db: &mut Connection) -> rusqlite::Result<()> {
    let seen = user_version(db)?;
    if seen >= SCHEMA_VERSION {
        return Ok(());
    }
    let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let done = user_version(&tx)?;
    for (i, steps) in MIGRATIONS.iter().enumerate().skip(done.max(0) as usize) {
        for step in *steps {
            step.apply(&tx)?;
        }
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
    }
    tx.commit()?;
    if done < SCHEMA_VERSION {
        tracing::info!(from = done, to = SCHEMA_VERSION, "applied store migrations");
    }
    Ok(())
}
