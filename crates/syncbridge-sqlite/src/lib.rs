//! The embedded default [`Store`]: all syncbridge state in one SQLite file.
//!
//! # Layout
//!
//! - [`SqliteStore`]: the [`Store`] implementation. One write connection behind
//!   a mutex, used from `spawn_blocking` so the async runtime never blocks on
//!   disk; WAL mode so other processes (the five binaries, the CLI) read and
//!   write the same file concurrently.
//! - `api`: the product API's part (API keys by hash, keyset pages of
//!   connections and runs), apart from the sync engine's queries;
//!   `changes`: its change calls' idempotency keys and the keyset pages of
//!   parked conflicts and of the audit.
//! - `schema`: the migrations, applied in order on open (`PRAGMA user_version`)
//!   under the write lock, so processes opening a fresh file together migrate it once.
//!
//! Every transaction that writes starts with `BEGIN IMMEDIATE`: a deferred one
//! that reads first and then writes cannot wait for the write lock (SQLite
//! answers `SQLITE_BUSY` at once, busy timeout or not, whenever another
//! process committed in between), so under load it failed with "database is
//! locked".
//!
//! The store remembers which file it opened (device and inode) and checks,
//! after every operation, that the path still names that file. A `state.db`
//! deleted or replaced under a running process would otherwise take every
//! later write with it, silently; instead every operation from then on fails
//! with [`StoreError::Detached`].
//!
//! Documents (connections, tasks, runs) are stored as JSON next to the columns
//! queries filter on; a task's document is in a table of its own
//! (`task_docs`) beside the narrow `task_state` row that leases write, whose
//! lease, version and priority win over the document's; records keep their canonical JSON, hash and version in
//! columns so a page commit can skip unchanged rows without parsing JSON.
//!
//! - `records`: record writes and the records feed (change sequence,
//!   tombstones; every read but the feed filters `deleted_at IS NULL`).

mod api;
mod changes;
mod records;
mod schema;

pub use schema::{SCHEMA_VERSION, enable_wal};

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection as Db, OptionalExtension, TransactionBehavior::Immediate, params};
use syncbridge_core::apikeys::ApiKey;
use syncbridge_core::connect::ConnectSession;
use syncbridge_core::model::{
    AuditRecord, Connection, Lease, Priority, QuarantinedMessage, Record, SyncRun, SyncTask,
    TaskChange, WebhookEvent,
};
use syncbridge_core::notify_rules::NotificationRules;
use syncbridge_core::store::{
    AuditEntry, AuditQuery, ClaimOutcome, ConflictQuery, IdempotencyClaim, StoredAnswer,
};
use syncbridge_core::store::{
    ConnectionQuery, LeaseRequest, PageCommit, PageOutcome, QuarantineEntry, RecordWrite, RunQuery,
    SealedCredential,
};
use syncbridge_core::store::{FeedEntry, FeedQuery};
use syncbridge_core::store::{RunBucket, RunStatsQuery};
use syncbridge_core::{
    Clock, ConnectionId, ExternalId, ObjectType, RunId, Store, StoreError, SystemClock, TaskId,
    TenantId, Timestamp,
};

/// The store's file name inside a data directory. Other crates name the
/// file through this (or [`state_path`]), never by spelling it.
pub const STATE_FILE: &str = "state.db";

/// The store's file in `data_dir`: `<dir>/state.db`.
pub fn state_path(data_dir: impl AsRef<Path>) -> PathBuf {
    data_dir.as_ref().join(STATE_FILE)
}

/// The SQLite store. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    db: Arc<Mutex<Db>>,
    path: PathBuf,
    file: Arc<FileIdentity>,
    /// Stamps the records feed's `last_modified_at` (the wall clock unless
    /// a test injects one, see [`SqliteStore::with_clock`]).
    clock: Arc<dyn Clock>,
}

/// Whether [`SqliteStore::open_with`] may create a missing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Create (and migrate) the file if it does not exist: the handlers,
    /// `syncbridge up`, `connections add`.
    CreateIfMissing,
    /// Only an existing file; a missing one is [`StoreError::NotFound`]
    /// (commands that only read or change what is there).
    ExistingOnly,
}

/// The file a store opened, to notice when its path names another file (or none).
#[derive(Debug)]
struct FileIdentity {
    dev: u64,
    ino: u64,
    /// Whether the loss was logged (once per store).
    reported: AtomicBool,
}

impl FileIdentity {
    fn of(path: &Path) -> Result<Self, StoreError> {
        let m = std::fs::metadata(path)
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", path.display())))?;
        Ok(FileIdentity {
            dev: m.dev(),
            ino: m.ino(),
            reported: AtomicBool::new(false),
        })
    }

    /// One `stat` of the path: `Detached` when it is gone or another file.
    fn check(&self, path: &Path) -> Result<(), StoreError> {
        let now = match std::fs::metadata(path) {
            Ok(m) if (m.dev(), m.ino()) == (self.dev, self.ino) => return Ok(()),
            Ok(_) => "replaced by another file",
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "deleted",
            // Cannot tell (permissions, I/O): not proof of loss; the operation's
            // own result stands.
            Err(_) => return Ok(()),
        };
        let msg = format!(
            "{} was {now} while this process had it open; its writes since then are lost with the old file. Restart the process (and restore the file from a backup if it was deleted by mistake)",
            path.display()
        );
        if !self.reported.swap(true, Ordering::Relaxed) {
            tracing::error!(path = %path.display(), "store file {now}: every store operation fails from now on");
        }
        Err(StoreError::Detached(msg))
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

fn backend(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            StoreError::Unavailable(e.to_string())
        }
        other => StoreError::Unavailable(other.to_string()),
    }
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("domain documents serialize")
}

fn from_json<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| corrupt(what, e))
}

impl SqliteStore {
    /// Opens (creating and migrating if needed) the store at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, OpenMode::CreateIfMissing)
    }

    /// Opens the store at `path`, creating it only if `mode` allows; migrates it.
    pub fn open_with(path: impl AsRef<Path>, mode: OpenMode) -> Result<Self, StoreError> {
        use rusqlite::OpenFlags;
        let path = path.as_ref().to_path_buf();
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        match mode {
            OpenMode::CreateIfMissing => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| StoreError::Unavailable(format!("{}: {e}", dir.display())))?;
                }
                flags |= OpenFlags::SQLITE_OPEN_CREATE;
            }
            OpenMode::ExistingOnly if !path.is_file() => {
                return Err(StoreError::NotFound(format!("store {}", path.display())));
            }
            OpenMode::ExistingOnly => {}
        }
        let mut db = Db::open_with_flags(&path, flags).map_err(backend)?;
        let at = |step: &str, e: rusqlite::Error| {
            StoreError::Unavailable(format!("{step} {}: {e}", path.display()))
        };
        schema::configure(&db).map_err(|e| at("setting up", e))?;
        schema::refuse_newer(&db, &path)?;
        schema::migrate(&mut db).map_err(|e| at("migrating", e))?;
        let file = FileIdentity::of(&path)?;
        Ok(SqliteStore {
            db: Arc::new(Mutex::new(db)),
            path,
            file: Arc::new(file),
            clock: Arc::new(SystemClock),
        })
    }

    /// The same store, stamping record changes with `clock`'s time (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The state file for a data directory: `<dir>/state.db`.
    pub fn open_in(data_dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open(state_path(data_dir))
    }

    /// Fault injection (tests only): caps the file at `pages` pages for this
    /// store's connection, so a write that would grow it fails with SQLite's
    /// "database or disk is full" (`SQLITE_FULL`), exactly as on a full disk;
    /// freeing pages (deleting rows) makes room again. Never lowers the cap
    /// below the file's current size. Returns the cap in effect.
    pub fn cap_pages_for_fault_injection(&self, pages: u64) -> Result<u64, StoreError> {
        let db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        let pages = i64::try_from(pages).unwrap_or(i64::MAX);
        db.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |r| {
            r.get::<_, i64>(0)
        })
        .map(|n| n.max(0) as u64)
        .map_err(backend)
    }

    /// `<dir>/state.db`, opened with `mode`.
    pub fn open_in_with(data_dir: impl AsRef<Path>, mode: OpenMode) -> Result<Self, StoreError> {
        Self::open_with(state_path(data_dir), mode)
    }

    /// The schema version of the open file (`PRAGMA user_version`).
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        let db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        db.query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(backend)
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with the connection on the blocking pool, then checks that
    /// the path still names the file it ran on: when it does not, whatever
    /// `f` did went to a file nobody will open again, and the caller gets
    /// [`StoreError::Detached`] instead of its result.
    async fn with<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Db) -> Result<T, StoreError> + Send + 'static,
    {
        let (db, file, path) = (self.db.clone(), self.file.clone(), self.path.clone());
        tokio::task::spawn_blocking(move || {
            let mut guard = db.lock().unwrap_or_else(|p| p.into_inner());
            let out = f(&mut guard);
            file.check(&path)?;
            out
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("store task failed: {e}")))?
    }
}

/// Checkpoints a WAL-mode SQLite file from its own connection, so that the
/// copy of committed pages into the database file (and its `fsync`s) happens
/// off the writers' commit path. `PASSIVE`: it never waits for or blocks
/// writers or readers; writers keep their own automatic checkpoint as a
/// fallback. Durability is unchanged: commits are durable at the writers'
/// `synchronous` level whether this runs or not.
#[derive(Debug)]
pub struct WalCheckpointer {
    db: Mutex<Db>,
}

impl WalCheckpointer {
    /// Opens its own connection to the (existing) file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let db = Db::open_with_flags(
            path.as_ref(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(backend)?;
        // Never wait: a busy checkpointer lock means someone else is checkpointing.
        db.busy_timeout(std::time::Duration::ZERO)
            .map_err(backend)?;
        Ok(WalCheckpointer { db: Mutex::new(db) })
    }

    /// One passive checkpoint (cheap when there is nothing to copy); returns
    /// the frames in the WAL and how many of them are now in the database file.
    /// Blocking: run it on a thread that may wait for the disk.
    pub fn checkpoint(&self) -> Result<(i64, i64), StoreError> {
        let db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        // `wal_checkpoint` reports (busy, frames in the WAL, frames checkpointed).
        let (_, log, done): (i64, i64, i64) = db
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(backend)?;
        Ok((log, done))
    }
}

fn read_credential(
    row: &rusqlite::Row<'_>,
) -> rusqlite::Result<Result<SealedCredential, StoreError>> {
    let conn: String = row.get(0)?;
    Ok(ConnectionId::parse(conn)
        .map_err(|e| corrupt("credential connection", e))
        .map(|connection| SealedCredential {
            connection,
            version: row.get(1).unwrap_or_default(),
            key_version: row.get(2).unwrap_or_default(),
            nonce: row.get(3).unwrap_or_default(),
            ciphertext: row.get(4).unwrap_or_default(),
            expires_at: row
                .get::<_, Option<i64>>(5)
                .ok()
                .flatten()
                .map(Timestamp::from_millis),
            refreshed_at: Timestamp::from_millis(row.get(6).unwrap_or_default()),
            sweep_at: row
                .get::<_, Option<i64>>(7)
                .ok()
                .flatten()
                .map(Timestamp::from_millis),
        }))
}

/// Insert an event, or replace an entry older than the window; a fresh entry
/// with the same key is a duplicate and leaves the row untouched (0 rows).
const INSERT_EVENT: &str = "INSERT INTO webhook_events (connection, dedup_key, received_at, body) VALUES (?1, ?2, ?3, ?4)
     ON CONFLICT(connection, dedup_key) DO UPDATE SET received_at = excluded.received_at, body = excluded.body
     WHERE webhook_events.received_at < ?5";

fn read_quarantined(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<QuarantinedMessage> {
    Ok(QuarantinedMessage {
        source: r.get(at)?,
        message_id: r.get(at + 1)?,
        reason: r.get(at + 2)?,
        body: r.get(at + 3)?,
        at: Timestamp::from_millis(r.get(at + 4)?),
        connection: r
            .get::<_, Option<String>>(at + 5)?
            .and_then(|c| ConnectionId::parse(c).ok()),
    })
}

/// Writes a whole task: its scheduling columns in `task_state` (the lease's
/// token and expiry, version and priority are authoritative there, see
/// [`TaskRow`]) and its document in `task_docs`.
fn write_task(db: &Db, t: &SyncTask) -> rusqlite::Result<usize> {
    let lease = t.lease.as_ref();
    let n = db
        .prepare_cached(
            "INSERT INTO task_state (id, connection, priority, next_run_at, lease_until, lease_token,
               version, generation, stall_at, eligible_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, MAX(?4, COALESCE(?5 + 1, ?4)))
             ON CONFLICT(id) DO UPDATE SET connection = excluded.connection, priority = excluded.priority,
               next_run_at = excluded.next_run_at, lease_until = excluded.lease_until,
               lease_token = excluded.lease_token, version = excluded.version,
               generation = excluded.generation, stall_at = excluded.stall_at,
               eligible_at = excluded.eligible_at",
        )?
        .execute(params![
            t.id.as_str(),
            t.connection.as_str(),
            t.priority as i64,
            t.next_run_at.as_millis(),
            lease.map(|l| l.until.as_millis()),
            lease.map(|l| l.token.as_str()),
            t.version,
            t.generation,
            t.stall_at().map(|at| at.as_millis())
        ])?;
    db.prepare_cached(
        "INSERT INTO task_docs (id, doc) VALUES (?1, ?2)
         ON CONFLICT(id) DO UPDATE SET doc = excluded.doc",
    )?
    .execute(params![t.id.as_str(), to_json(t)])?;
    Ok(n)
}

/// One lease of [`Store::lease_tasks`], reduced to what its write needs.
struct LeaseWrite {
    /// Position in the caller's request list (the answer's order).
    at: usize,
    id: String,
    /// The version the lease expects (compare-and-swap).
    expected: i64,
    generation: u32,
    token: String,
    until: i64,
    /// The task's priority once leased, when the lease used up a boost.
    boost_used: Option<i64>,
}

impl LeaseWrite {
    fn new(at: usize, r: &LeaseRequest) -> Self {
        let t = &r.task;
        let leased_priority = t.priority_once_leased();
        LeaseWrite {
            at,
            id: t.id.as_str().to_owned(),
            expected: t.version,
            generation: t.generation,
            token: r.lease.token.clone(),
            until: r.lease.until.as_millis(),
            boost_used: (leased_priority != t.priority).then_some(leased_priority as i64),
        }
    }
}

impl SqliteStore {
    /// Read-modify-write of a task in one `IMMEDIATE` transaction: `change`
    /// (one of [`SyncTask`]'s store operations) decides whether to write.
    async fn update_task<R: Send + 'static>(
        &self,
        id: &TaskId,
        change: impl FnOnce(&mut SyncTask) -> TaskChange<R> + Send + 'static,
    ) -> Result<R, StoreError> {
        let id = id.clone();
        self.with(move |db| {
            let tx = db.transaction_with_behavior(Immediate).map_err(backend)?;
            let Some(mut t) = load_task(&tx, id.as_str())? else {
                return Err(StoreError::NotFound(format!("task {id}")));
            };
            let answer = match change(&mut t) {
                TaskChange::Keep(answer) => return Ok(answer),
                TaskChange::Write(answer) => answer,
            };
            write_task(&tx, &t).map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(answer)
        })
        .await
    }
}

/// Takes the lease `w` describes (as `SyncTask::take_lease` would leave
/// the task: version + 1, a boost used up) if the stored task is still at
/// version `w.expected` and of the same generation (compare-and-swap
/// without a read: `put_task` may replace a task with a new one at the
/// same version, e.g. `connections add --replace`, and that one must not
/// get the old lease); `false` if it moved on, was replaced or is gone. It
/// writes the narrow `task_state` row only, never the document (migration 17
/// moved documents out so that a tick's tens of thousands of leases dirty
/// few pages), and assigns only the columns a lease changes, because
/// SQLite rewrites every index on an assigned column: `next_run_at` and
/// `stall_at` stay, and `priority` only when the lease used up a boost.
fn lease_if(db: &Db, w: &LeaseWrite) -> rusqlite::Result<bool> {
    let n = match w.boost_used {
        None => db
            .prepare_cached(
                "UPDATE task_state SET lease_until = ?2, lease_token = ?3, version = ?4 + 1,
                   eligible_at = MAX(next_run_at, ?2 + 1)
                 WHERE id = ?1 AND version = ?4 AND generation = ?5",
            )?
            .execute(params![w.id, w.until, w.token, w.expected, w.generation])?,
        Some(priority) => db
            .prepare_cached(
                "UPDATE task_state SET lease_until = ?2, lease_token = ?3, version = ?4 + 1,
                   eligible_at = MAX(next_run_at, ?2 + 1), priority = ?6
                 WHERE id = ?1 AND version = ?4 AND generation = ?5",
            )?
            .execute(params![
                w.id,
                w.until,
                w.token,
                w.expected,
                w.generation,
                priority
            ])?,
    };
    Ok(n == 1)
}

/// What every task read selects: the document and the columns a lease
/// writes without touching it, in [`TaskRow`] order.
const TASK_SELECT: &str = "SELECT d.doc, t.lease_token, t.lease_until, t.version, t.priority FROM task_state t JOIN task_docs d ON d.id = t.id";

/// A task as stored: its document, and the lease, version and priority
/// columns, which win over the document's copies (a lease writes only them).
struct TaskRow {
    doc: String,
    lease_token: Option<String>,
    lease_until: Option<i64>,
    version: i64,
    priority: i64,
}

fn read_task(row: &rusqlite::Row<'_>) -> rusqlite::Result<TaskRow> {
    Ok(TaskRow {
        doc: row.get(0)?,
        lease_token: row.get(1)?,
        lease_until: row.get(2)?,
        version: row.get(3)?,
        priority: row.get(4)?,
    })
}

/// The task a row holds: the document with the columns merged in.
fn task_from_row(r: TaskRow) -> Result<SyncTask, StoreError> {
    let mut t: SyncTask = from_json("task", &r.doc)?;
    t.lease = match (r.lease_token, r.lease_until) {
        (Some(token), Some(until)) => Some(Lease {
            token,
            until: Timestamp::from_millis(until),
        }),
        _ => None,
    };
    t.version = r.version;
    t.priority = usize::try_from(r.priority)
        .ok()
        .and_then(|p| Priority::ALL.get(p).copied())
        .ok_or_else(|| corrupt("task priority", r.priority))?;
    Ok(t)
}

/// The tasks a query returns, in its order; `sql_tail` follows
/// [`TASK_SELECT`] (a `WHERE` on the `task_state t` columns and an `ORDER BY`).
fn query_tasks(
    db: &Db,
    sql_tail: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<SyncTask>, StoreError> {
    let mut st = db
        .prepare_cached(&format!("{TASK_SELECT} {sql_tail}"))
        .map_err(backend)?;
    let rows = st
        .query_map(params, read_task)
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    rows.into_iter().map(task_from_row).collect()
}

fn load_task(db: &Db, id: &str) -> Result<Option<SyncTask>, StoreError> {
    Ok(query_tasks(db, "WHERE t.id = ?1", [id])?.pop())
}

/// The columns every record query selects, in [`RecordRow`] order.
const RECORD_COLUMNS: &str =
    "connection, object, external_id, data, hash, version, remote_updated_at, local";

/// A record row: connection, object, id, data, hash, version, remote_updated_at, local.
type RecordRow = (
    String,
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<String>,
);

fn row_to_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<RecordRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
    ))
}

fn make_record(
    (c, o, id, data, hash, version, remote, local): RecordRow,
) -> Result<Record, StoreError> {
    Ok(Record {
        connection: ConnectionId::parse(c).map_err(|e| corrupt("record connection", e))?,
        object: ObjectType::parse(o).map_err(|e| corrupt("record object", e))?,
        external_id: ExternalId::parse(id).map_err(|e| corrupt("record id", e))?,
        data: from_json("record data", &data)?,
        hash,
        version,
        remote_updated_at: remote.map(Timestamp::from_millis),
        local: local
            .map(|l| from_json("record local state", &l))
            .transpose()?,
    })
}

pub(crate) fn query_records(
    db: &Db,
    sql_tail: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Record>, StoreError> {
    let mut st = db
        .prepare_cached(&format!("SELECT {RECORD_COLUMNS} FROM records {sql_tail}"))
        .map_err(backend)?;
    let rows = st
        .query_map(params, row_to_record)
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    rows.into_iter().map(make_record).collect()
}

#[async_trait]
impl Store for SqliteStore {
    async fn put_connection(&self, c: &Connection) -> Result<(), StoreError> {
        let c = c.clone();
        self.with(move |db| {
            db.execute(
                "INSERT INTO connections (id, tenant, doc, version) VALUES (?1, ?2, ?3, 1)
                 ON CONFLICT(id) DO UPDATE SET tenant = excluded.tenant, doc = excluded.doc,
                    version = connections.version + 1",
                params![c.id.as_str(), c.tenant.as_str(), to_json(&c)],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn get_connection(&self, id: &ConnectionId) -> Result<Option<Connection>, StoreError> {
        let id = id.clone();
        self.with(move |db| {
            let doc: Option<String> = db
                .query_row(
                    "SELECT doc FROM connections WHERE id = ?1",
                    [id.as_str()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            doc.map(|d| from_json("connection", &d)).transpose()
        })
        .await
    }

    async fn get_connection_tagged(
        &self,
        id: &ConnectionId,
    ) -> Result<Option<(Connection, String)>, StoreError> {
        let id = id.clone();
        self.with(move |db| api::get_connection_tagged(db, &id))
            .await
    }

    async fn replace_connection(
        &self,
        c: &Connection,
        expected: &str,
    ) -> Result<String, StoreError> {
        let (c, expected) = (c.clone(), expected.to_owned());
        self.with(move |db| api::replace_connection(db, &c, &expected))
            .await
    }

    async fn list_connections(
        &self,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<Connection>, StoreError> {
        let tenant = tenant.cloned();
        self.with(move |db| {
            let mut st = db
                .prepare("SELECT doc FROM connections WHERE ?1 IS NULL OR tenant = ?1 ORDER BY id")
                .map_err(backend)?;
            let docs = st
                .query_map([tenant.as_ref().map(|t| t.as_str())], |r| {
                    r.get::<_, String>(0)
                })
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            docs.iter().map(|d| from_json("connection", d)).collect()
        })
        .await
    }

    async fn delete_connection(&self, id: &ConnectionId) -> Result<bool, StoreError> {
        let id = id.clone();
        self.with(move |db| {
            let tx = db.transaction_with_behavior(Immediate).map_err(backend)?;
            let n = tx
                .execute("DELETE FROM connections WHERE id = ?1", [id.as_str()])
                .map_err(backend)?;
            tx.execute(
                "DELETE FROM task_docs WHERE id IN (SELECT id FROM task_state WHERE connection = ?1)",
                [id.as_str()],
            )
            .map_err(backend)?;
            for table in ["task_state", "records", "runs", "webhook_events", "credentials"] {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE connection = ?1"),
                    [id.as_str()],
                )
                .map_err(backend)?;
            }
            tx.commit().map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn put_task(&self, t: &SyncTask) -> Result<(), StoreError> {
        let t = t.clone();
        self.with(move |db| write_task(db, &t).map(|_| ()).map_err(backend))
            .await
    }

    async fn get_task(&self, id: &TaskId) -> Result<Option<SyncTask>, StoreError> {
        let id = id.clone();
        self.with(move |db| load_task(db, id.as_str())).await
    }

    async fn list_tasks(
        &self,
        connection: Option<&ConnectionId>,
    ) -> Result<Vec<SyncTask>, StoreError> {
        let c = connection.cloned();
        self.with(move |db| {
            query_tasks(
                db,
                "WHERE ?1 IS NULL OR t.connection = ?1 ORDER BY t.id",
                [c.as_ref().map(|c| c.as_str())],
            )
        })
        .await
    }

    async fn due_tasks(&self, now: Timestamp, limit: usize) -> Result<Vec<SyncTask>, StoreError> {
        self.with(move |db| {
            query_tasks(
                db,
                "WHERE t.eligible_at <= ?1
                 ORDER BY t.priority, t.next_run_at, t.id LIMIT ?2",
                params![now.as_millis(), limit as i64],
            )
        })
        .await
    }

    async fn lease_task(
        &self,
        id: &TaskId,
        expected_version: i64,
        lease: &Lease,
    ) -> Result<bool, StoreError> {
        let lease = lease.clone();
        self.update_task(id, move |t| t.lease_at(expected_version, &lease))
            .await
    }

    async fn lease_tasks(&self, requests: &[LeaseRequest]) -> Result<Vec<bool>, StoreError> {
        // In key order: the writes walk the table's pages once, front to
        // back, instead of in the plan's (tenant round-robin) order.
        let mut writes: Vec<LeaseWrite> = requests
            .iter()
            .enumerate()
            .map(|(at, r)| LeaseWrite::new(at, r))
            .collect();
        writes.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        let total = requests.len();
        self.with(move |db| {
            // One transaction for a whole tick's plan: tens of thousands of
            // leases commit in one fsync-free WAL append instead of one each.
            let tx = db.transaction_with_behavior(Immediate).map_err(backend)?;
            let mut taken = vec![false; total];
            for w in &writes {
                taken[w.at] = lease_if(&tx, w).map_err(backend)?;
            }
            tx.commit().map_err(backend)?;
            Ok(taken)
        })
        .await
    }

    async fn stall_candidates(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<SyncTask>, StoreError> {
        self.with(move |db| {
            query_tasks(
                db,
                "WHERE t.stall_at IS NOT NULL AND t.stall_at < ?1
                 ORDER BY t.stall_at LIMIT ?2",
                params![now.as_millis(), limit as i64],
            )
        })
        .await
    }

    async fn release_task(
        &self,
        id: &TaskId,
        lease_token: &str,
        next_run_at: Timestamp,
        finished_at: Timestamp,
    ) -> Result<bool, StoreError> {
        let token = lease_token.to_owned();
        self.update_task(id, move |t| t.release(&token, next_run_at, finished_at))
            .await
    }

    async fn request_run(
        &self,
        id: &TaskId,
        priority: Priority,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        self.update_task(id, move |t| t.ask_for_run(priority, at))
            .await
    }

    async fn set_task_stalled(&self, id: &TaskId, stalled: bool) -> Result<(), StoreError> {
        self.update_task(id, move |t| t.flag_stalled(stalled)).await
    }

    async fn commit_page(&self, page: &PageCommit) -> Result<PageOutcome, StoreError> {
        let (page, now) = (page.clone(), self.clock.now());
        self.with(move |db| {
            let tx = db.transaction_with_behavior(Immediate).map_err(backend)?;
            let Some(mut task) = load_task(&tx, page.task.as_str())? else {
                return Err(StoreError::NotFound(format!("task {}", page.task)));
            };
            if task.lease.as_ref().map(|l| l.token.as_str()) != Some(page.lease_token.as_str()) {
                return Err(StoreError::LeaseLost(page.task.clone()));
            }
            let out = records::apply_page(&tx, &page, now)?;
            task.cursor = page.cursor.clone();
            task.version += 1;
            write_task(&tx, &task).map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(out)
        })
        .await
    }

    async fn get_record(
        &self,
        connection: &ConnectionId,
        object: &ObjectType,
        id: &ExternalId,
    ) -> Result<Option<Record>, StoreError> {
        let (c, o, id) = (connection.clone(), object.clone(), id.clone());
        self.with(move |db| {
            Ok(query_records(
                db,
                "WHERE connection = ?1 AND object = ?2 AND external_id = ?3 AND deleted_at IS NULL",
                params![c.as_str(), o.as_str(), id.as_str()],
            )?
            .pop())
        })
        .await
    }

    async fn count_records(
        &self,
        connection: &ConnectionId,
        object: &ObjectType,
    ) -> Result<u64, StoreError> {
        let (c, o) = (connection.clone(), object.clone());
        self.with(move |db| {
            db.query_row(
                "SELECT COUNT(*) FROM records WHERE connection = ?1 AND object = ?2 AND deleted_at IS NULL",
                params![c.as_str(), o.as_str()],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(backend)
        })
        .await
    }

    async fn list_records(
        &self,
        connection: &ConnectionId,
        object: &ObjectType,
        after: Option<&ExternalId>,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        let (c, o, after) = (connection.clone(), object.clone(), after.cloned());
        self.with(move |db| {
            query_records(
                db,
                "WHERE connection = ?1 AND object = ?2 AND (?3 IS NULL OR external_id > ?3)
                   AND deleted_at IS NULL
                 ORDER BY external_id LIMIT ?4",
                params![
                    c.as_str(),
                    o.as_str(),
                    after.as_ref().map(|a| a.as_str()),
                    limit as i64
                ],
            )
        })
        .await
    }

    // ---- records feed (issue 17; see the `records` module) ------------------

    async fn records_feed(&self, q: &FeedQuery) -> Result<Vec<FeedEntry>, StoreError> {
        let q = q.clone();
        self.with(move |db| records::records_feed(db, &q)).await
    }

    async fn feed_position(&self, connection: &ConnectionId) -> Result<u64, StoreError> {
        let c = connection.clone();
        self.with(move |db| {
            let last: Option<i64> = db
                .query_row(
                    "SELECT last FROM record_seq WHERE connection = ?1",
                    [c.as_str()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            Ok(last.unwrap_or(0).max(0) as u64)
        })
        .await
    }

    async fn write_record(&self, w: &RecordWrite) -> Result<(), StoreError> {
        let (w, now) = (w.clone(), self.clock.now());
        self.with(move |db| {
            let tx = db.transaction_with_behavior(Immediate).map_err(backend)?;
            records::write_record(&tx, &w, now)?;
            for a in &w.audit {
                tx.prepare_cached(
                    "INSERT INTO audit (key, connection, at, doc) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT(key) DO NOTHING",
                )
                .map_err(backend)?
                .execute(params![
                    a.key,
                    a.connection.as_str(),
                    a.at.as_millis(),
                    to_json(a)
                ])
                .map_err(backend)?;
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn due_pushes(&self, now: Timestamp, limit: usize) -> Result<Vec<Record>, StoreError> {
        self.with(move |db| {
            query_records(
                db,
                "WHERE push_due_at IS NOT NULL AND push_due_at <= ?1 AND deleted_at IS NULL
                 ORDER BY push_due_at, connection, object, external_id LIMIT ?2",
                params![now.as_millis(), limit as i64],
            )
        })
        .await
    }

    async fn list_local_changes(
        &self,
        connection: Option<&ConnectionId>,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        let c = connection.cloned();
        self.with(move |db| {
            query_records(
                db,
                "WHERE local IS NOT NULL AND (?1 IS NULL OR connection = ?1) AND deleted_at IS NULL
                 ORDER BY connection, object, external_id LIMIT ?2",
                params![c.as_ref().map(|c| c.as_str()), limit as i64],
            )
        })
        .await
    }

    async fn list_audit(
        &self,
        connection: Option<&ConnectionId>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let c = connection.cloned();
        self.with(move |db| {
            let mut st = db
                .prepare_cached(
                    "SELECT doc FROM audit WHERE ?1 IS NULL OR connection = ?1 ORDER BY at, seq LIMIT ?2",
                )
                .map_err(backend)?;
            let docs = st
                .query_map(params![c.as_ref().map(|c| c.as_str()), limit as i64], |r| {
                    r.get::<_, String>(0)
                })
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            docs.iter().map(|d| from_json("audit entry", d)).collect()
        })
        .await
    }

    async fn put_run(&self, run: &SyncRun) -> Result<(), StoreError> {
        let run = run.clone();
        self.with(move |db| {
            db.execute(
                "INSERT INTO runs (id, task, connection, started_at, doc) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(id) DO UPDATE SET doc = excluded.doc",
                params![
                    run.id.as_str(),
                    run.task.as_str(),
                    run.connection.as_str(),
                    run.started_at.as_millis(),
                    to_json(&run)
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn list_runs(
        &self,
        task: Option<&TaskId>,
        limit: usize,
    ) -> Result<Vec<SyncRun>, StoreError> {
        let task = task.cloned();
        self.with(move |db| {
            let mut st = db
                .prepare("SELECT doc FROM runs WHERE ?1 IS NULL OR task = ?1 ORDER BY started_at DESC, id DESC LIMIT ?2")
                .map_err(backend)?;
            let docs = st
                .query_map(params![task.as_ref().map(|t| t.as_str()), limit as i64], |r| {
                    r.get::<_, String>(0)
                })
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            docs.iter().map(|d| from_json("run", d)).collect()
        })
        .await
    }

    async fn get_credential(
        &self,
        connection: &ConnectionId,
    ) -> Result<Option<SealedCredential>, StoreError> {
        let c = connection.clone();
        self.with(move |db| {
            db.query_row(
                "SELECT connection, version, key_version, nonce, ciphertext, expires_at, refreshed_at, sweep_at
                 FROM credentials WHERE connection = ?1",
                [c.as_str()],
                read_credential,
            )
            .optional()
            .map_err(backend)?
            .transpose()
        })
        .await
    }

    async fn put_credential(
        &self,
        c: &SealedCredential,
        expected_version: Option<i64>,
    ) -> Result<bool, StoreError> {
        let c = c.clone();
        self.with(move |db| {
            let args = params![
                c.connection.as_str(),
                c.version,
                c.key_version,
                c.nonce,
                c.ciphertext,
                c.expires_at.map(|t| t.as_millis()),
                c.refreshed_at.as_millis(),
                expected_version,
                c.sweep_at.map(|t| t.as_millis())
            ];
            let n = match expected_version {
                None => db
                    .execute(
                        "INSERT INTO credentials (connection, version, key_version, nonce, ciphertext, expires_at, refreshed_at, sweep_at)
                         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?9 WHERE ?8 IS NULL
                         ON CONFLICT(connection) DO NOTHING",
                        args,
                    )
                    .map_err(backend)?,
                Some(_) => db
                    .execute(
                        "UPDATE credentials SET version = ?2, key_version = ?3, nonce = ?4, ciphertext = ?5,
                           expires_at = ?6, refreshed_at = ?7, sweep_at = ?9
                         WHERE connection = ?1 AND version = ?8",
                        args,
                    )
                    .map_err(backend)?,
            };
            Ok(n == 1)
        })
        .await
    }

    async fn credentials_due(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<SealedCredential>, StoreError> {
        self.with(move |db| {
            let mut st = db
                .prepare_cached(
                    "SELECT connection, version, key_version, nonce, ciphertext, expires_at, refreshed_at, sweep_at
                     FROM credentials WHERE sweep_at IS NOT NULL AND sweep_at <= ?1
                     ORDER BY sweep_at LIMIT ?2",
                )
                .map_err(backend)?;
            let rows = st
                .query_map(params![now.as_millis(), limit as i64], read_credential)
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            rows.into_iter().collect()
        })
        .await
    }

    async fn try_lock(
        &self,
        name: &str,
        owner: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let (name, owner) = (name.to_owned(), owner.to_owned());
        self.with(move |db| {
            let n = db
                .execute(
                    "INSERT INTO locks (name, owner, until) VALUES (?1, ?2, ?3)
                     ON CONFLICT(name) DO UPDATE SET owner = excluded.owner, until = excluded.until
                     WHERE locks.until <= ?4 OR locks.owner = excluded.owner",
                    params![name, owner, until.as_millis(), now.as_millis()],
                )
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }

    async fn unlock(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        let (name, owner) = (name.to_owned(), owner.to_owned());
        self.with(move |db| {
            db.execute(
                "DELETE FROM locks WHERE name = ?1 AND owner = ?2",
                params![name, owner],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn insert_webhook_event(
        &self,
        e: &WebhookEvent,
        dedup_since: Timestamp,
    ) -> Result<bool, StoreError> {
        let e = e.clone();
        self.with(move |db| {
            // Insert, or replace an entry older than the window; a fresh entry
            // with the same key is a duplicate and leaves the row untouched.
            let n = db
                .execute(
                    INSERT_EVENT,
                    params![
                        e.connection.as_str(),
                        e.dedup_key,
                        e.received_at.as_millis(),
                        e.body,
                        dedup_since.as_millis()
                    ],
                )
                .map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn insert_webhook_events(
        &self,
        events: &[WebhookEvent],
        window: std::time::Duration,
    ) -> Result<Vec<bool>, StoreError> {
        let events = events.to_vec();
        self.with(move |db| {
            let tx = db.transaction_with_behavior(Immediate).map_err(backend)?;
            let mut out = Vec::with_capacity(events.len());
            {
                let mut st = tx.prepare_cached(INSERT_EVENT).map_err(backend)?;
                for e in &events {
                    let since = e.received_at.sub(window);
                    let n = st
                        .execute(params![
                            e.connection.as_str(),
                            e.dedup_key,
                            e.received_at.as_millis(),
                            e.body,
                            since.as_millis()
                        ])
                        .map_err(backend)?;
                    out.push(n > 0);
                }
            }
            tx.commit().map_err(backend)?;
            Ok(out)
        })
        .await
    }

    async fn quarantine(&self, m: &QuarantinedMessage) -> Result<i64, StoreError> {
        let m = m.clone();
        self.with(move |db| {
            db.execute(
                "INSERT INTO quarantine (source, message_id, reason, body, at, connection) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![m.source, m.message_id, m.reason, m.body, m.at.as_millis(), m.connection.as_ref().map(|c| c.as_str())],
            )
            .map_err(backend)?;
            Ok(db.last_insert_rowid())
        })
        .await
    }

    async fn list_quarantine(&self, limit: usize) -> Result<Vec<QuarantineEntry>, StoreError> {
        self.with(move |db| {
            let mut st = db
                .prepare(
                    "SELECT id, source, message_id, reason, body, at, connection FROM quarantine ORDER BY id LIMIT ?1",
                )
                .map_err(backend)?;
            let rows = st
                .query_map([limit as i64], |r| {
                    Ok(QuarantineEntry {
                        id: r.get(0)?,
                        message: read_quarantined(r, 1)?,
                    })
                })
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            Ok(rows)
        })
        .await
    }

    async fn prune_webhook_events(
        &self,
        received_before: Timestamp,
        limit: usize,
    ) -> Result<u64, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with(move |db| {
            let n = db
                .prepare_cached(
                    "DELETE FROM webhook_events WHERE id IN (
                        SELECT id FROM webhook_events WHERE received_at < ?1
                        ORDER BY received_at LIMIT ?2)",
                )
                .and_then(|mut st| st.execute(params![received_before.as_millis(), limit]))
                .map_err(backend)?;
            Ok(n as u64)
        })
        .await
    }

    async fn take_quarantined(&self, id: i64) -> Result<Option<QuarantinedMessage>, StoreError> {
        self.with(move |db| {
            let tx = db.transaction_with_behavior(Immediate).map_err(backend)?;
            let m = tx
                .query_row(
                    "SELECT source, message_id, reason, body, at, connection FROM quarantine WHERE id = ?1",
                    [id],
                    |r| read_quarantined(r, 0),
                )
                .optional()
                .map_err(backend)?;
            tx.execute("DELETE FROM quarantine WHERE id = ?1", [id])
                .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(m)
        })
        .await
    }

    // ---- product API (SyncApi): API keys and pages (see `api.rs`) ----------

    async fn create_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let key = key.clone();
        self.with(move |db| api::create_api_key(db, &key)).await
    }

    async fn find_api_key(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        let hash = hash.to_owned();
        self.with(move |db| api::find_api_key(db, &hash)).await
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        self.with(|db| api::list_api_keys(db)).await
    }

    async fn revoke_api_key(&self, id: &str, at: Timestamp) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.with(move |db| api::revoke_api_key(db, &id, at)).await
    }

    async fn prune_api_keys(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.with(move |db| api::prune_api_keys(db, now)).await
    }

    async fn get_notification_rules(&self) -> Result<Option<NotificationRules>, StoreError> {
        self.with(|db| api::get_notification_rules(db)).await
    }

    async fn put_notification_rules(&self, rules: &NotificationRules) -> Result<bool, StoreError> {
        let rules = rules.clone();
        self.with(move |db| api::put_notification_rules(db, &rules))
            .await
    }

    async fn create_connect_session(&self, s: &ConnectSession) -> Result<(), StoreError> {
        let s = s.clone();
        self.with(move |db| api::create_connect_session(db, &s))
            .await
    }

    async fn get_connect_session(&self, id: &str) -> Result<Option<ConnectSession>, StoreError> {
        let id = id.to_owned();
        self.with(move |db| api::get_connect_session(db, &id)).await
    }

    async fn advance_connect_session(&self, next: &ConnectSession) -> Result<bool, StoreError> {
        let next = next.clone();
        self.with(move |db| api::advance_connect_session(db, &next))
            .await
    }

    async fn list_connections_page(
        &self,
        q: &ConnectionQuery,
    ) -> Result<Vec<Connection>, StoreError> {
        let q = q.clone();
        self.with(move |db| api::list_connections_page(db, &q))
            .await
    }

    async fn list_runs_page(&self, q: &RunQuery) -> Result<Vec<SyncRun>, StoreError> {
        let q = q.clone();
        self.with(move |db| api::list_runs_page(db, &q)).await
    }

    async fn get_run(&self, id: &RunId) -> Result<Option<SyncRun>, StoreError> {
        let id = id.clone();
        self.with(move |db| api::get_run(db, &id)).await
    }

    async fn run_stats(&self, q: &RunStatsQuery) -> Result<Vec<RunBucket>, StoreError> {
        let q = *q;
        self.with(move |db| api::run_stats(db, &q)).await
    }

    // ---- product API (SyncApi): changes (see the `changes` module) ----------

    async fn claim_idempotency_key(
        &self,
        c: &IdempotencyClaim,
    ) -> Result<ClaimOutcome, StoreError> {
        let c = c.clone();
        self.with(move |db| changes::claim(db, &c)).await
    }

    async fn complete_idempotency_key(
        &self,
        c: &IdempotencyClaim,
        answer: &StoredAnswer,
    ) -> Result<bool, StoreError> {
        let (c, answer) = (c.clone(), answer.clone());
        self.with(move |db| changes::complete(db, &c, Some(answer)))
            .await
    }

    async fn release_idempotency_key(&self, c: &IdempotencyClaim) -> Result<bool, StoreError> {
        let c = c.clone();
        self.with(move |db| changes::complete(db, &c, None)).await
    }

    async fn list_conflicts_page(&self, q: &ConflictQuery) -> Result<Vec<Record>, StoreError> {
        let q = q.clone();
        self.with(move |db| changes::conflicts_page(db, &q)).await
    }

    async fn list_audit_page(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        let q = q.clone();
        self.with(move |db| changes::audit_page(db, &q)).await
    }

    async fn put_function_beat(
        &self,
        beat: &syncbridge_core::heartbeat::FunctionBeat,
    ) -> Result<(), StoreError> {
        let beat = beat.clone();
        self.with(move |db| api::put_function_beat(db, &beat)).await
    }

    async fn list_function_beats(
        &self,
    ) -> Result<Vec<syncbridge_core::heartbeat::FunctionBeat>, StoreError> {
        self.with(|db| {
            api::docs(
                db,
                "function beat",
                "SELECT doc FROM function_beats ORDER BY function",
                &[],
            )
        })
        .await
    }
}
