//! The product API's change calls: idempotency keys (core's
//! `store::changes` rules, decided by `IdempotencyEntry::decide` inside one
//! `IMMEDIATE` transaction) and the keyset pages of parked conflicts
//! (`records_conflicts`, a partial index) and of a connection's audit
//! (`audit_connection_at`).

use rusqlite::{Connection as Db, OptionalExtension, TransactionBehavior::Immediate, params};
use syncbridge_core::StoreError;
use syncbridge_core::model::{AuditRecord, Record};
use syncbridge_core::store::changes::{Decision, IdempotencyEntry};
use syncbridge_core::store::{
    AuditEntry, AuditKey, AuditQuery, ClaimOutcome, ConflictQuery, IdempotencyClaim, StoredAnswer,
};

use crate::{backend, from_json, query_records, to_json};

/// Expired keys removed per claim (keeps the table at about a day of keys
/// without a sweeper).
const PRUNE_PER_CLAIM: i64 = 16;

fn stored(db: &Db, scope: &str, key: &str) -> Result<Option<IdempotencyEntry>, StoreError> {
    let doc: Option<String> = db
        .query_row(
            "SELECT doc FROM idempotency_keys WHERE scope = ?1 AND key = ?2",
            [scope, key],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend)?;
    doc.map(|d| from_json("idempotency key", &d)).transpose()
}

fn put(db: &Db, e: &IdempotencyEntry) -> Result<(), StoreError> {
    db.execute(
        "INSERT INTO idempotency_keys (scope, key, expires_at, doc) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(scope, key) DO UPDATE SET expires_at = excluded.expires_at, doc = excluded.doc",
        params![e.scope, e.key, e.expires_at.as_millis(), to_json(e)],
    )
    .map_err(backend)?;
    Ok(())
}

pub(crate) fn claim(db: &mut Db, c: &IdempotencyClaim) -> Result<ClaimOutcome, StoreError> {
    let tx = db.transaction_with_behavior(Immediate).map_err(backend)?;
    tx.execute(
        "DELETE FROM idempotency_keys WHERE (scope, key) IN
           (SELECT scope, key FROM idempotency_keys WHERE expires_at <= ?1 LIMIT ?2)",
        params![c.now.as_millis(), PRUNE_PER_CLAIM],
    )
    .map_err(backend)?;
    let current = stored(&tx, &c.scope, &c.key)?;
    let outcome = match IdempotencyEntry::decide(current.as_ref(), c) {
        Decision::Take(entry) => {
            put(&tx, &entry)?;
            ClaimOutcome::Claimed
        }
        Decision::Answer(a) => a,
    };
    tx.commit().map_err(backend)?;
    Ok(outcome)
}

/// Completes (`Some(answer)`) or releases (`None`) a claim still held by `c`.
pub(crate) fn complete(
    db: &mut Db,
    c: &IdempotencyClaim,
    answer: Option<StoredAnswer>,
) -> Result<bool, StoreError> {
    let tx = db.transaction_with_behavior(Immediate).map_err(backend)?;
    let Some(mut entry) = stored(&tx, &c.scope, &c.key)? else {
        return Ok(false);
    };
    if entry.token != c.token || entry.answer.is_some() {
        return Ok(false);
    }
    match answer {
        Some(a) => {
            entry.answer = Some(a);
            put(&tx, &entry)?;
        }
        None => {
            tx.execute(
                "DELETE FROM idempotency_keys WHERE scope = ?1 AND key = ?2",
                [&c.scope, &c.key],
            )
            .map_err(backend)?;
        }
    }
    tx.commit().map_err(backend)?;
    Ok(true)
}

/// Records with parked conflicts after the cursor: the `records_conflicts`
/// range (its `WHERE` repeated exactly, so the planner uses it).
pub(crate) fn conflicts_page(db: &Db, q: &ConflictQuery) -> Result<Vec<Record>, StoreError> {
    let after = q.after.as_ref();
    query_records(
        db,
        "WHERE json_array_length(local, '$.conflicts') > 0 AND deleted_at IS NULL
           AND (?1 IS NULL OR connection = ?1)
           AND (?2 IS NULL OR (connection, object, external_id) > (?2, ?3, ?4))
         ORDER BY connection, object, external_id LIMIT ?5",
        params![
            q.connection.as_ref().map(|c| c.as_str()),
            after.map(|a| a.connection.as_str()),
            after.map(|a| a.object.as_str()),
            after.map(|a| a.external_id.as_str()),
            q.limit.min(i64::MAX as usize) as i64
        ],
    )
}

/// The tiebreak spelling of an audit row's `seq`: fixed width, so text
/// order is number order.
fn tie(seq: i64) -> String {
    format!("{seq:020}")
}

/// A connection's audit after the cursor, oldest first: the
/// `audit_connection_at` range.
pub(crate) fn audit_page(db: &Db, q: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
    let (at, seq) = match &q.after {
        Some(k) => (
            Some(k.order),
            Some(
                k.tie
                    .parse::<i64>()
                    .map_err(|_| StoreError::NotFound(format!("audit position {:?}", k.tie)))?,
            ),
        ),
        None => (None, None),
    };
    let mut st = db
        .prepare_cached(
            "SELECT at, seq, doc FROM audit WHERE connection = ?1
               AND (?2 IS NULL OR (at, seq) > (?2, ?3))
             ORDER BY at, seq LIMIT ?4",
        )
        .map_err(backend)?;
    let rows = st
        .query_map(
            params![
                q.connection.as_str(),
                at,
                seq,
                q.limit.min(i64::MAX as usize) as i64
            ],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            },
        )
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    rows.into_iter()
        .map(|(at, seq, doc)| {
            let record: AuditRecord = from_json("audit entry", &doc)?;
            Ok(AuditEntry {
                key: AuditKey {
                    order: at,
                    tie: tie(seq),
                },
                record,
            })
        })
        .collect()
}
