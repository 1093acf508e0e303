//! Migration 8 (the records feed) on a file written by the previous schema:
//! existing records get sequences, times and `added`, and the counter
//! continues after them.

use std::sync::Arc;

use syncbridge_core::model::Record;
use syncbridge_core::store::{FeedEntry, FeedQuery, LastAction};
use syncbridge_core::{
    Clock, ConnectionId, ManualClock, ObjectType, Store, SystemClock, Timestamp,
};
use syncbridge_sqlite::{SCHEMA_VERSION, SqliteStore};
use syncbridge_store_contract::insert;

fn record(conn: &str, object: &str, id: &str) -> Record {
    syncbridge_store_contract::record(conn, object, id, id, 1, None)
}

async fn feed(s: &dyn Store, conn: &str, object: &str) -> Vec<FeedEntry> {
    s.records_feed(&FeedQuery {
        connection: ConnectionId::parse(conn).unwrap(),
        object: ObjectType::parse(object).unwrap(),
        after_seq: None,
        modified_after: None,
        actions: Default::default(),
        limit: 100,
    })
    .await
    .unwrap()
}

/// Turns the file back into schema 7: the feed's columns, index and
/// counter table gone, the version recorded as 7.
fn back_to_schema_7(path: &std::path::Path) {
    let db = rusqlite::Connection::open(path).unwrap();
    db.execute_batch(
        "DROP INDEX records_feed;
         DROP TABLE record_seq;
         ALTER TABLE records DROP COLUMN seq;
         ALTER TABLE records DROP COLUMN first_seen_at;
         ALTER TABLE records DROP COLUMN last_modified_at;
         ALTER TABLE records DROP COLUMN last_action;
         ALTER TABLE records DROP COLUMN deleted_at;
         PRAGMA user_version = 7;",
    )
    .unwrap();
}

/// What was tried: records of two connections (two objects in one) written
/// under schema 7, the file opened by this build, then opened again with
/// the version set back (the migration re-run on its own work), then a new
/// write. What holds: every record is in the feed as `added`, numbered per
/// connection without repeats, stamped with the migration's time; a re-run
/// changes nothing; the next write of a connection draws a higher number
/// than every backfilled one; the existing reads see the same records.
#[tokio::test]
async fn existing_records_are_backfilled_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let s = SqliteStore::open(&path).unwrap();
        for (c, o, id) in [
            ("c1", "contacts", "b"),
            ("c1", "contacts", "a"),
            ("c1", "deals", "d"),
            ("c2", "contacts", "z"),
        ] {
            insert(&s, &record(c, o, id)).await;
        }
    }
    back_to_schema_7(&path);
    let before = SystemClock.now();
    let s = SqliteStore::open(&path).unwrap();
    let after = SystemClock.now();
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    let c1 = [
        feed(&s, "c1", "contacts").await,
        feed(&s, "c1", "deals").await,
    ]
    .concat();
    let c2 = feed(&s, "c2", "contacts").await;
    let mut seqs: Vec<u64> = c1.iter().map(|e| e.seq).collect();
    seqs.sort();
    seqs.dedup();
    assert_eq!((seqs.len(), c2.len()), (3, 1), "{c1:?} {c2:?}");
    for e in c1.iter().chain(&c2) {
        assert_eq!((e.last_action, e.deleted_at), (LastAction::Added, None));
        assert_eq!(e.first_seen_at, e.last_modified_at);
        assert!(
            (before..=after).contains(&e.first_seen_at),
            "stamped at the migration: {e:?}"
        );
    }
    drop(s);

    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 7)
        .unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1)));
    let s = SqliteStore::open(&path).unwrap().with_clock(clock);
    let again = [
        feed(&s, "c1", "contacts").await,
        feed(&s, "c1", "deals").await,
    ]
    .concat();
    assert_eq!(again, c1, "a re-run changes nothing");
    insert(&s, &record("c1", "deals", "e")).await;
    let e = feed(&s, "c1", "deals").await.pop().unwrap();
    assert_eq!(e.external_id.as_str(), "e");
    assert!(
        e.seq > *seqs.last().unwrap(),
        "the counter continues: {e:?}"
    );
    let c1_id = ConnectionId::parse("c1").unwrap();
    let contacts = ObjectType::parse("contacts").unwrap();
    assert_eq!(s.count_records(&c1_id, &contacts).await.unwrap(), 2);
}
