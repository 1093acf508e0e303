//! The store file under stress from outside: several processes opening a
//! fresh file at once, a migration that meets its own work already done, and
//! the file deleted or replaced while a process has it open (issue 14).

use std::sync::{Arc, Barrier};

use syncbridge_core::{ConnectionId, Store, StoreError};
use syncbridge_sqlite::{OpenMode, SCHEMA_VERSION, SqliteStore};

fn user_version(path: &std::path::Path) -> i64 {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

/// What was tried: 50 fresh files, each opened by 8 connections at once
/// (threads released together by a barrier; SQLite locks connections of one
/// process against each other as it locks processes). What holds: every
/// open succeeds, and each file ends at the latest version with its schema
/// whole (a later write through every store works). Before the fix the
/// version was read outside the migration's transaction, so two openers ran
/// the same migration and one failed (`duplicate column name`, `table …
/// already exists`).
#[test]
fn concurrent_opens_of_a_fresh_file_migrate_it_once() {
    const FILES: usize = 50;
    const OPENERS: usize = 8;
    let mut failures = Vec::new();
    for round in 0..FILES {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let barrier = Arc::new(Barrier::new(OPENERS));
        let handles: Vec<_> = (0..OPENERS)
            .map(|_| {
                let (path, barrier) = (path.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    SqliteStore::open(&path)
                })
            })
            .collect();
        for h in handles {
            if let Err(e) = h.join().unwrap() {
                failures.push(format!("file {round}: {e}"));
            }
        }
        assert_eq!(user_version(&path), SCHEMA_VERSION, "file {round}");
    }
    assert!(
        failures.is_empty(),
        "{} of {} opens failed, first: {:?}",
        failures.len(),
        FILES * OPENERS,
        &failures[..failures.len().min(5)]
    );
}

/// What was tried: a file whose recorded version is set back to 0, 2 and 4
/// (what a process that read a stale version would do: run migrations
/// whose work is already there), then opened again; and a file recorded at
/// a version newer than this build knows. What holds: the re-run migrations
/// succeed without touching the data and the version is the latest again;
/// the newer file is refused with an error naming it (an older build would
/// write rows without the newer columns) and its version is never lowered.
#[tokio::test]
async fn migrations_are_idempotent_and_never_lower_the_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let s = SqliteStore::open(&path).unwrap();
    s.put_connection(&syncbridge_store_contract::connection("c1", "t1"))
        .await
        .unwrap();
    drop(s);
    for back_to in [0, 2, 4] {
        rusqlite::Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", back_to)
            .unwrap();
        let s = SqliteStore::open(&path)
            .unwrap_or_else(|e| panic!("re-running migrations after {back_to}: {e}"));
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
        assert_eq!(s.list_connections(None).await.unwrap().len(), 1);
    }
    let newer = SCHEMA_VERSION + 3;
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", newer)
        .unwrap();
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt(m) if m.contains("newer than this build")),
        "a newer schema is refused, not written by an older build: {err}"
    );
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, newer, "never lowered");
}

/// What was tried: a store open in this process while its `state.db` (with
/// its WAL and shared-memory files) is deleted, and another while its file
/// is replaced by a new store at the same path. What holds: every later
/// operation of the old handle fails with `StoreError::Detached` (it does
/// not report success for a write into a file nobody will open again), and
/// the new file has none of those writes.
#[tokio::test]
async fn a_deleted_or_replaced_file_fails_every_operation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let s = SqliteStore::open(&path).unwrap();
    s.put_connection(&syncbridge_store_contract::connection("c1", "t1"))
        .await
        .unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.path().join(format!("state.db{suffix}")));
    }
    let write = s
        .put_connection(&syncbridge_store_contract::connection("c2", "t1"))
        .await;
    assert!(matches!(write, Err(StoreError::Detached(_))), "{write:?}");
    let read = s.list_connections(None).await;
    assert!(
        matches!(read, Err(StoreError::Detached(ref m)) if m.contains("deleted")),
        "{read:?}"
    );

    // Replaced: another store created at the path while the old one is open.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let old = SqliteStore::open(&path).unwrap();
    for suffix in ["", "-wal", "-shm"] {
        std::fs::rename(
            dir.path().join(format!("state.db{suffix}")),
            dir.path().join(format!("moved-away.db{suffix}")),
        )
        .unwrap();
    }
    let new = SqliteStore::open(&path).unwrap();
    let write = old
        .put_connection(&syncbridge_store_contract::connection("c3", "t1"))
        .await;
    assert!(
        matches!(write, Err(StoreError::Detached(ref m)) if m.contains("replaced")),
        "{write:?}"
    );
    assert!(
        new.get_connection(&ConnectionId::parse("c3").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    new.put_connection(&syncbridge_store_contract::connection("c4", "t1"))
        .await
        .expect("the new file works");
}

/// What was tried: opening a data dir without `state.db` for a command that
/// only reads or changes what is there. What holds: `NotFound` naming the
/// file, and no file is created.
#[test]
fn existing_only_never_creates_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let e = SqliteStore::open_in_with(dir.path(), OpenMode::ExistingOnly).unwrap_err();
    assert!(
        matches!(e, StoreError::NotFound(ref m) if m.contains("state.db")),
        "{e:?}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    SqliteStore::open_in(dir.path()).unwrap();
    SqliteStore::open_in_with(dir.path(), OpenMode::ExistingOnly).expect("now it exists");
}

/// What was tried: 6 store handles on one file (6 connections, as 6
/// processes would hold), each calling `request_run` and `set_task_stalled`
/// (both read the task, then write it) 150 times on the same task at once.
/// What holds: no call fails, and every `request_run` counted (the version
/// grew by one per write). Before the fix those transactions began deferred:
/// a writer that had read while another committed could not wait for the
/// lock, and SQLite answered "database is locked" at once, busy timeout or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_then_write_transactions_wait_for_the_lock() {
    use syncbridge_core::model::Priority;
    const HANDLES: usize = 6;
    const ROUNDS: usize = 150;
    let dir = tempfile::tempdir().unwrap();
    let first = SqliteStore::open_in(dir.path()).unwrap();
    first
        .put_connection(&syncbridge_store_contract::connection("c1", "t1"))
        .await
        .unwrap();
    let task = syncbridge_store_contract::task("c1", "contacts", Priority::Scheduled);
    first.put_task(&task).await.unwrap();
    let mut joins = Vec::new();
    for h in 0..HANDLES {
        let store = SqliteStore::open_in(dir.path()).unwrap();
        let id = task.id.clone();
        joins.push(tokio::spawn(async move {
            let mut errors = Vec::new();
            for i in 0..ROUNDS {
                let at = syncbridge_core::Timestamp::from_millis(i as i64);
                if let Err(e) = store.request_run(&id, Priority::Interactive, at).await {
                    errors.push(e.to_string());
                }
                if let Err(e) = store.set_task_stalled(&id, (i + h) % 2 == 0).await {
                    errors.push(e.to_string());
                }
            }
            errors
        }));
    }
    let mut errors = Vec::new();
    for j in joins {
        errors.extend(j.await.unwrap());
    }
    assert!(
        errors.is_empty(),
        "{} of {} calls failed, first: {:?}",
        errors.len(),
        2 * HANDLES * ROUNDS,
        &errors[..errors.len().min(3)]
    );
    let after = first.get_task(&task.id).await.unwrap().unwrap();
    assert!(
        after.version >= (HANDLES * ROUNDS) as i64,
        "every request_run wrote: version {}",
        after.version
    );
}
