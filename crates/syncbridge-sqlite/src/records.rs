//! Record writes and the records feed (core's `store::feed` rules).
//!
//! Every row of `records` carries its connection's change sequence (`seq`)
//! and when/how our store last changed it. A removal keeps the row as a
//! tombstone (`deleted_at` set, local state cleared): every read except the
//! feed filters `deleted_at IS NULL`. The connection's last sequence lives in
//! `record_seq`, read once and written back once per transaction
//! ([`SeqCounter`]); every writing transaction holds the write lock
//! (`BEGIN IMMEDIATE`), so no two writes can draw the same number.

use rusqlite::{Connection as Db, OptionalExtension, params};
use syncbridge_core::model::LocalState;
use syncbridge_core::store::feed::action_of_write;
use syncbridge_core::store::{
    DeleteAction, FeedEntry, FeedQuery, LastAction, PageCommit, PageOutcome, RecordWrite,
    StoredHead, classify, classify_delete,
};
use syncbridge_core::{ExternalId, StoreError, Timestamp};

use crate::{backend, corrupt, from_json, to_json};

/// A connection's change sequence within one write transaction.
pub(crate) struct SeqCounter {
    connection: String,
    last: i64,
    drawn: bool,
}

impl SeqCounter {
    /// Reads the connection's last sequence (0 if it never had one).
    pub(crate) fn read(db: &Db, connection: &str) -> Result<Self, StoreError> {
        let last: Option<i64> = db
            .prepare_cached("SELECT last FROM record_seq WHERE connection = ?1")
            .map_err(backend)?
            .query_row([connection], |r| r.get(0))
            .optional()
            .map_err(backend)?;
        Ok(SeqCounter {
            connection: connection.to_owned(),
            last: last.unwrap_or(0),
            drawn: false,
        })
    }

    /// The next sequence number.
    pub(crate) fn draw(&mut self) -> i64 {
        self.last += 1;
        self.drawn = true;
        self.last
    }

    /// Writes the counter back if a number was drawn (same transaction).
    pub(crate) fn save(self, db: &Db) -> Result<(), StoreError> {
        if !self.drawn {
            return Ok(());
        }
        db.prepare_cached(
            "INSERT INTO record_seq (connection, last) VALUES (?1, ?2)
             ON CONFLICT(connection) DO UPDATE SET last = excluded.last",
        )
        .map_err(backend)?
        .execute(params![self.connection, self.last])
        .map_err(backend)?;
        Ok(())
    }
}

/// The feed metadata a content write stamps.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stamp {
    pub seq: i64,
    pub now: Timestamp,
    pub action: LastAction,
}

/// One record row to write (borrowed from a page upsert or a [`syncbridge_core::model::Record`]).
pub(crate) struct RowWrite<'a> {
    pub connection: &'a str,
    pub object: &'a str,
    pub external_id: &'a str,
    pub data: &'a serde_json::Value,
    pub hash: &'a str,
    pub version: i64,
    pub remote_updated_at: Option<Timestamp>,
    pub local: Option<&'a LocalState>,
}

/// The live record at (connection, object, id) as a page commit sees it.
pub(crate) fn stored_head(
    db: &Db,
    connection: &str,
    object: &str,
    id: &str,
) -> Result<Option<StoredHead>, StoreError> {
    db.prepare_cached(
        "SELECT hash, version, remote_updated_at, local IS NOT NULL FROM records
         WHERE connection = ?1 AND object = ?2 AND external_id = ?3 AND deleted_at IS NULL",
    )
    .map_err(backend)?
    .query_row(params![connection, object, id], |r| {
        Ok(StoredHead {
            hash: r.get(0)?,
            version: r.get(1)?,
            remote_updated_at: r.get::<_, Option<i64>>(2)?.map(Timestamp::from_millis),
            held: r.get(3)?,
        })
    })
    .optional()
    .map_err(backend)
}

/// Writes a row (over a live row or a tombstone). With a `stamp` the feed
/// metadata is set (a tombstone's `first_seen_at` restarts: the record is
/// new); without one the row keeps its sequence and metadata (a write that
/// changed no content).
pub(crate) fn put_record(
    db: &Db,
    row: &RowWrite<'_>,
    stamp: Option<Stamp>,
) -> Result<(), StoreError> {
    // `last_action` is NOT NULL: a stampless write passes any value, which
    // only an insert would use, and a stampless write never inserts.
    let action = stamp.map_or(LastAction::Updated, |s| s.action);
    db.prepare_cached(
        "INSERT INTO records (connection, object, external_id, data, hash, version,
           remote_updated_at, local, push_due_at, seq, first_seen_at, last_modified_at,
           last_action, deleted_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12, NULL)
         ON CONFLICT(connection, object, external_id) DO UPDATE SET data = excluded.data,
           hash = excluded.hash, version = excluded.version,
           remote_updated_at = excluded.remote_updated_at, local = excluded.local,
           push_due_at = excluded.push_due_at,
           first_seen_at = CASE WHEN records.deleted_at IS NULL
             THEN COALESCE(records.first_seen_at, excluded.first_seen_at)
             ELSE excluded.first_seen_at END,
           last_modified_at = CASE WHEN excluded.seq IS NULL THEN records.last_modified_at
             ELSE excluded.last_modified_at END,
           last_action = CASE WHEN excluded.seq IS NULL THEN records.last_action
             ELSE excluded.last_action END,
           seq = COALESCE(excluded.seq, records.seq),
           deleted_at = NULL",
    )
    .map_err(backend)?
    .execute(params![
        row.connection,
        row.object,
        row.external_id,
        to_json(row.data),
        row.hash,
        row.version,
        row.remote_updated_at.map(|t| t.as_millis()),
        row.local.map(to_json),
        row.local.and_then(|l| l.push_due_at).map(|t| t.as_millis()),
        stamp.map(|s| s.seq),
        stamp.map(|s| s.now.as_millis()),
        action.as_str(),
    ])
    .map_err(backend)?;
    Ok(())
}

/// Turns the live row at (connection, object, id) into a tombstone stamped
/// with `seq`; `false` if there was no live row.
pub(crate) fn tombstone(
    db: &Db,
    (connection, object, id): (&str, &str, &str),
    seq: i64,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let n = db
        .prepare_cached(
            "UPDATE records SET deleted_at = ?4, last_modified_at = ?4, last_action = 'deleted',
               seq = ?5, local = NULL, push_due_at = NULL
             WHERE connection = ?1 AND object = ?2 AND external_id = ?3 AND deleted_at IS NULL",
        )
        .map_err(backend)?
        .execute(params![connection, object, id, now.as_millis(), seq])
        .map_err(backend)?;
    Ok(n > 0)
}

/// Applies a page's upserts and deletes (the lease is checked by the
/// caller): [`classify`] decides, this writes and stamps.
pub(crate) fn apply_page(
    db: &Db,
    page: &PageCommit,
    now: Timestamp,
) -> Result<PageOutcome, StoreError> {
    let (c, o) = (page.connection.as_str(), page.object.as_str());
    let mut seq = SeqCounter::read(db, c)?;
    let mut out = PageOutcome::default();
    for u in &page.upserts {
        let stored = stored_head(db, c, o, u.external_id.as_str())?;
        let action = classify(u, stored.as_ref());
        out.count(action);
        let Some(version) = action.version() else {
            continue;
        };
        let row = RowWrite {
            connection: c,
            object: o,
            external_id: u.external_id.as_str(),
            data: &u.data,
            hash: &u.hash,
            version,
            remote_updated_at: u.remote_updated_at,
            local: None,
        };
        let stamp = Stamp {
            seq: seq.draw(),
            now,
            action: action_of_write(stored.is_some()),
        };
        put_record(db, &row, Some(stamp))?;
    }
    for id in &page.deletes {
        let action = classify_delete(stored_head(db, c, o, id.as_str())?.as_ref());
        out.count_delete(action);
        if action == DeleteAction::Delete {
            tombstone(db, (c, o, id.as_str()), seq.draw(), now)?;
        }
    }
    seq.save(db)?;
    Ok(out)
}

/// A compare-and-swap write of one record (see `Store::write_record`); the
/// caller appends the audit entries in the same transaction. A removal or a
/// move leaves a tombstone at the old id; the new state is stamped when it
/// is new at its id or its content hash changed, and keeps its sequence when
/// only the local state changed (outbound bookkeeping is no content change).
pub(crate) fn write_record(db: &Db, w: &RecordWrite, now: Timestamp) -> Result<(), StoreError> {
    let (c, o, id) = (
        w.connection.as_str(),
        w.object.as_str(),
        w.external_id.as_str(),
    );
    let current = stored_head(db, c, o, id)?;
    if current.as_ref().map(|h| h.version) != w.expect_version {
        return Err(StoreError::Conflict(format!("record {o}/{id}")));
    }
    let moved = w
        .next
        .as_ref()
        .is_some_and(|n| n.external_id != w.external_id);
    let mut seq = SeqCounter::read(db, c)?;
    if current.is_some() && (w.next.is_none() || moved) {
        tombstone(db, (c, o, id), seq.draw(), now)?;
    }
    if let Some(r) = &w.next {
        let to = r.external_id.as_str();
        if moved && stored_head(db, c, o, to)?.is_some() {
            return Err(StoreError::Conflict(format!("record {o}/{to}")));
        }
        let live = current.as_ref().filter(|_| !moved);
        let stamp = match live {
            Some(h) if h.hash == r.hash => None,
            _ => Some(Stamp {
                seq: seq.draw(),
                now,
                action: action_of_write(live.is_some()),
            }),
        };
        let row = RowWrite {
            connection: c,
            object: o,
            external_id: to,
            data: &r.data,
            hash: &r.hash,
            version: r.version,
            remote_updated_at: r.remote_updated_at,
            local: r.local.as_ref(),
        };
        put_record(db, &row, stamp)?;
    }
    seq.save(db)
}

/// One feed row: id, data, seq, first seen, last modified, last action, deleted at.
type FeedRow = (
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    String,
    Option<i64>,
);

/// The feed read (see `Store::records_feed`): a range of the
/// `records_feed (connection, object, seq)` index from `after_seq`, the
/// time and action filters applied to the rows it walks.
pub(crate) fn records_feed(db: &Db, q: &FeedQuery) -> Result<Vec<FeedEntry>, StoreError> {
    let mut st = db
        .prepare_cached(
            "SELECT external_id, data, seq, first_seen_at, last_modified_at, last_action, deleted_at
             FROM records
             WHERE connection = ?1 AND object = ?2 AND seq > ?3
               AND (?4 IS NULL OR last_modified_at > ?4)
               AND ((?5 AND last_action = 'added') OR (?6 AND last_action = 'updated')
                    OR (?7 AND last_action = 'deleted'))
             ORDER BY seq LIMIT ?8",
        )
        .map_err(backend)?;
    let after = i64::try_from(q.after_seq.unwrap_or(0)).unwrap_or(i64::MAX);
    let rows = st
        .query_map(
            params![
                q.connection.as_str(),
                q.object.as_str(),
                after,
                q.modified_after.map(|t| t.as_millis()),
                q.actions.added,
                q.actions.updated,
                q.actions.deleted,
                i64::try_from(q.limit).unwrap_or(i64::MAX),
            ],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            },
        )
        .map_err(backend)?
        .collect::<Result<Vec<FeedRow>, _>>()
        .map_err(backend)?;
    rows.into_iter().map(feed_entry).collect()
}

fn feed_entry(
    (id, data, seq, first, last, action, deleted): FeedRow,
) -> Result<FeedEntry, StoreError> {
    // Rows the migration backfilled always have both times; a missing one
    // would be a hand-edited file, read as the epoch rather than refused.
    let at = |t: Option<i64>| Timestamp::from_millis(t.unwrap_or(0));
    Ok(FeedEntry {
        external_id: ExternalId::parse(id).map_err(|e| corrupt("record id", e))?,
        data: from_json("record data", &data)?,
        seq: u64::try_from(seq).map_err(|e| corrupt("record seq", e))?,
        first_seen_at: at(first),
        last_modified_at: at(last),
        last_action: LastAction::parse(&action)
            .ok_or_else(|| corrupt("record last_action", &action))?,
        deleted_at: deleted.map(Timestamp::from_millis),
    })
}
