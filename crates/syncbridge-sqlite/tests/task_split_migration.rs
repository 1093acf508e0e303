//! Migration 17 (a task's narrow row apart from its document) on a file
//! written by the previous schema: every task reads back as it was, leases
//! and their fencing carry over, and running it again changes nothing.

use std::time::Duration;

use syncbridge_core::model::{Lease, Priority, SyncTask};
use syncbridge_core::store::LeaseRequest;
use syncbridge_core::{Store, Timestamp};
use syncbridge_sqlite::{SCHEMA_VERSION, SqliteStore};
use syncbridge_store_contract::task;

/// The store contract's `task` is due at this instant.
const T0: i64 = 1_764_000_000_000;

fn at(secs: u64) -> Timestamp {
    Timestamp::from_millis(T0).add(Duration::from_secs(secs))
}

/// Writes `t` as schema 16 did: every column and the whole document in one
/// `tasks` row.
fn write_v16(db: &rusqlite::Connection, t: &SyncTask) {
    db.execute(
        "INSERT INTO tasks (id, connection, priority, next_run_at, lease_until, version, doc, stall_at, eligible_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, MAX(?4, COALESCE(?5 + 1, ?4)))",
        rusqlite::params![
            t.id.as_str(),
            t.connection.as_str(),
            t.priority as i64,
            t.next_run_at.as_millis(),
            t.lease.as_ref().map(|l| l.until.as_millis()),
            t.version,
            serde_json::to_string(t).unwrap(),
            t.stall_at().map(|s| s.as_millis())
        ],
    )
    .unwrap();
}

/// A schema-16 file holding `tasks` (a fresh file, its task tables of
/// schema 17 dropped, the version set back).
fn v16_file(path: &std::path::Path, tasks: &[SyncTask]) {
    drop(SqliteStore::open(path).unwrap());
    let db = rusqlite::Connection::open(path).unwrap();
    db.execute_batch("DROP TABLE task_state; DROP TABLE task_docs; PRAGMA user_version = 16;")
        .unwrap();
    for t in tasks {
        write_v16(&db, t);
    }
}

fn ids(v: &[SyncTask]) -> Vec<&str> {
    v.iter().map(|t| t.id.as_str()).collect()
}

/// What was tried: three tasks written under schema 16 (one due, one
/// leased by a worker in its second generation with a cursor, one boosted
/// and due later), the file opened by this build, then opened again with
/// the version set back to 16 and to 0 (every migration re-run on its own
/// work). What holds: each task reads back equal to what was written; the
/// leased one is not due and its lease is fenced by version and generation
/// (a stale request loses, the current one wins); due order and the boost
/// are kept; a re-run changes nothing and leaves the old table empty.
#[tokio::test]
async fn tasks_move_out_and_keep_their_leases() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let due = task("c1", "contacts", Priority::Scheduled);
    let mut leased = task("c1", "deals", Priority::Scheduled);
    leased.generation = 2;
    leased.cursor = Some("page-7".into());
    leased.take_lease(Lease {
        token: leased.lease_token(),
        until: at(900),
    });
    let mut boosted = task("c2", "contacts", Priority::Interactive);
    boosted.next_run_at = at(30);
    let written = [due.clone(), leased.clone(), boosted.clone()];
    v16_file(&path, &written);

    for back_to in [None, Some(16), Some(0)] {
        if let Some(v) = back_to {
            rusqlite::Connection::open(&path)
                .unwrap()
                .pragma_update(None, "user_version", v)
                .unwrap();
        }
        let s = SqliteStore::open(&path).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
        for t in &written {
            assert_eq!(
                s.get_task(&t.id).await.unwrap().as_ref(),
                Some(t),
                "after {back_to:?}"
            );
        }
        assert_eq!(
            ids(&s.due_tasks(at(60), 10).await.unwrap()),
            [boosted.id.as_str(), due.id.as_str()],
            "the boost first; a live lease is not due"
        );
        let old: i64 = rusqlite::Connection::open(&path)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM tasks", [], |r| r.get(0))
            .unwrap();
        assert_eq!(old, 0, "the old table is left empty");
    }

    let s = SqliteStore::open(&path).unwrap();
    let mut stale = leased.clone();
    stale.generation = 1;
    let lease = Lease {
        token: "next".into(),
        until: at(2000),
    };
    let request = |task: SyncTask| LeaseRequest {
        task,
        lease: lease.clone(),
    };
    assert_eq!(
        s.lease_tasks(&[request(stale), request(leased.clone())])
            .await
            .unwrap(),
        [false, true],
        "the carried-over generation fences the stale request"
    );
    let now = s.get_task(&leased.id).await.unwrap().unwrap();
    assert_eq!(
        (now.lease, now.version, now.cursor),
        (Some(lease), leased.version + 1, leased.cursor)
    );
}
