//! The product API's part of the store (`SyncApi`): API keys (only their
//! hashes) and keyset pages of connections and runs. Kept apart from the
//! sync engine's queries in `lib.rs`; the trait methods there delegate here.

use rusqlite::types::Value;
use rusqlite::{Connection as Db, OptionalExtension, params, params_from_iter};
use syncbridge_core::apikeys::ApiKey;
use syncbridge_core::connect::ConnectSession;
use syncbridge_core::model::{Connection, SyncRun};
use syncbridge_core::notify_rules::NotificationRules;
use syncbridge_core::store::{ConnectionQuery, RunBucket, RunQuery, RunStatsQuery};
use syncbridge_core::{RunId, StoreError, Timestamp};

use crate::{backend, from_json, to_json};

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

pub(crate) fn create_api_key(db: &Db, key: &ApiKey) -> Result<(), StoreError> {
    match db.execute(
        "INSERT INTO api_keys (id, hash, doc) VALUES (?1, ?2, ?3)",
        params![key.id, key.hash, to_json(key)],
    ) {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => {
            Err(StoreError::Conflict(format!("api key {}", key.id)))
        }
        Err(e) => Err(backend(e)),
    }
}

pub(crate) fn find_api_key(db: &Db, hash: &str) -> Result<Option<ApiKey>, StoreError> {
    let doc: Option<String> = db
        .query_row("SELECT doc FROM api_keys WHERE hash = ?1", [hash], |r| {
            r.get(0)
        })
        .optional()
        .map_err(backend)?;
    doc.map(|d| from_json("api key", &d)).transpose()
}

pub(crate) fn list_api_keys(db: &Db) -> Result<Vec<ApiKey>, StoreError> {
    let mut st = db
        .prepare("SELECT doc FROM api_keys ORDER BY id")
        .map_err(backend)?;
    let docs = st
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    docs.iter().map(|d| from_json("api key", d)).collect()
}

pub(crate) fn revoke_api_key(db: &mut Db, id: &str, at: Timestamp) -> Result<bool, StoreError> {
    let tx = db
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(backend)?;
    let doc: Option<String> = tx
        .query_row("SELECT doc FROM api_keys WHERE id = ?1", [id], |r| r.get(0))
        .optional()
        .map_err(backend)?;
    let Some(doc) = doc else {
        return Ok(false);
    };
    let mut key: ApiKey = from_json("api key", &doc)?;
    if key.revoked_at.is_none() {
        key.revoked_at = Some(at);
        tx.execute(
            "UPDATE api_keys SET doc = ?2 WHERE id = ?1",
            params![id, to_json(&key)],
        )
        .map_err(backend)?;
    }
    tx.commit().map_err(backend)?;
    Ok(true)
}

/// Deletes expiring keys (sessions, sign-in links) that are expired or
/// revoked; one statement reading the partial index `api_keys_expiry`,
/// which holds only those (`SCAN api_keys USING INDEX api_keys_expiry`),
/// never the API keys.
pub(crate) fn prune_api_keys(db: &Db, now: Timestamp) -> Result<u64, StoreError> {
    let n = db
        .execute(
            "DELETE FROM api_keys WHERE json_extract(doc, '$.expires_at') IS NOT NULL
             AND (json_extract(doc, '$.expires_at') <= ?1 OR json_extract(doc, '$.revoked_at') IS NOT NULL)",
            [now.as_millis()],
        )
        .map_err(backend)?;
    Ok(n as u64)
}

pub(crate) fn get_notification_rules(db: &Db) -> Result<Option<NotificationRules>, StoreError> {
    let doc: Option<String> = db
        .query_row("SELECT doc FROM notification_rules WHERE id = 1", [], |r| {
            r.get(0)
        })
        .optional()
        .map_err(backend)?;
    doc.map(|d| from_json("notification rules", &d)).transpose()
}

/// Compare-and-swap on the one row's version: an insert when the expected
/// version is 0 (a row already there fails it), else one conditional update.
pub(crate) fn put_notification_rules(
    db: &Db,
    next: &NotificationRules,
) -> Result<bool, StoreError> {
    let version = i64::try_from(next.version)
        .map_err(|_| StoreError::Corrupt("notification rules version overflows".into()))?;
    let n = if version <= 1 {
        db.execute(
            "INSERT INTO notification_rules (id, version, doc) VALUES (1, ?1, ?2)
             ON CONFLICT(id) DO NOTHING",
            params![version, to_json(next)],
        )
    } else {
        db.execute(
            "UPDATE notification_rules SET version = ?1, doc = ?2 WHERE id = 1 AND version = ?3",
            params![version, to_json(next), version - 1],
        )
    }
    .map_err(backend)?;
    Ok(n == 1)
}

/// A connection's tag: its version, and its creation time, so a connection
/// deleted and created again (versions start over) never repeats a tag.
fn connection_tag(c: &Connection, version: i64) -> String {
    format!("{}.{version}", c.created_at.as_millis())
}

pub(crate) fn get_connection_tagged(
    db: &Db,
    id: &syncbridge_core::ConnectionId,
) -> Result<Option<(Connection, String)>, StoreError> {
    let row: Option<(String, i64)> = db
        .query_row(
            "SELECT doc, version FROM connections WHERE id = ?1",
            [id.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(backend)?;
    row.map(|(doc, version)| {
        let c: Connection = from_json("connection", &doc)?;
        let tag = connection_tag(&c, version);
        Ok((c, tag))
    })
    .transpose()
}

/// Replaces the connection under its tag, in one `IMMEDIATE` transaction.
pub(crate) fn replace_connection(
    db: &mut Db,
    c: &Connection,
    expected: &str,
) -> Result<String, StoreError> {
    let tx = db
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(backend)?;
    let Some((_, tag)) = get_connection_tagged(&tx, &c.id)? else {
        return Err(StoreError::NotFound(format!("connection {}", c.id)));
    };
    if tag != expected {
        return Err(StoreError::Conflict(format!(
            "connection {} changed since version {expected}",
            c.id
        )));
    }
    let version: i64 = tx
        .query_row(
            "UPDATE connections SET tenant = ?2, doc = ?3, version = version + 1
             WHERE id = ?1 RETURNING version",
            params![c.id.as_str(), c.tenant.as_str(), to_json(c)],
            |r| r.get(0),
        )
        .map_err(backend)?;
    tx.commit().map_err(backend)?;
    Ok(connection_tag(c, version))
}

/// Merges a heartbeat into its function's row in one `IMMEDIATE` transaction.
pub(crate) fn put_function_beat(
    db: &mut Db,
    beat: &syncbridge_core::heartbeat::FunctionBeat,
) -> Result<(), StoreError> {
    let tx = db
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(backend)?;
    let stored: Option<String> = tx
        .query_row(
            "SELECT doc FROM function_beats WHERE function = ?1",
            [beat.function.as_str()],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend)?;
    let merged = match stored {
        Some(doc) => from_json::<syncbridge_core::heartbeat::FunctionBeat>("function beat", &doc)?
            .merge(beat),
        None => beat.clone(),
    };
    tx.execute(
        "INSERT INTO function_beats (function, doc) VALUES (?1, ?2)
         ON CONFLICT(function) DO UPDATE SET doc = excluded.doc",
        params![merged.function, to_json(&merged)],
    )
    .map_err(backend)?;
    tx.commit().map_err(backend)
}

/// How long an expired connect session is kept (so its link still answers
/// "expired", not "unknown"); Cosmos DB's per-item TTL keeps them as long.
const CONNECT_SESSION_GRACE_MS: i64 = 86_400_000;

/// Stores a session, first deleting the ones a day past their expiry:
/// sessions are only made here, so this bounds them without a timer (one
/// range delete on `connect_sessions_expiry`; the new session's creation
/// time is the clock).
pub(crate) fn create_connect_session(db: &Db, s: &ConnectSession) -> Result<(), StoreError> {
    db.execute(
        "DELETE FROM connect_sessions WHERE expires_at < ?1",
        [s.created_at.as_millis() - CONNECT_SESSION_GRACE_MS],
    )
    .map_err(backend)?;
    match db.execute(
        "INSERT INTO connect_sessions (id, version, expires_at, doc) VALUES (?1, ?2, ?3, ?4)",
        params![s.id, s.version, s.expires_at.as_millis(), to_json(s)],
    ) {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => {
            Err(StoreError::Conflict(format!("connect session {}", s.id)))
        }
        Err(e) => Err(backend(e)),
    }
}

pub(crate) fn get_connect_session(db: &Db, id: &str) -> Result<Option<ConnectSession>, StoreError> {
    let doc: Option<String> = db
        .query_row(
            "SELECT doc FROM connect_sessions WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend)?;
    doc.map(|d| from_json("connect session", &d)).transpose()
}

/// One `UPDATE … WHERE version = ?`: atomic by itself, so of two callers
/// advancing one version exactly one changes a row.
pub(crate) fn advance_connect_session(db: &Db, next: &ConnectSession) -> Result<bool, StoreError> {
    let n = db
        .execute(
            "UPDATE connect_sessions SET version = ?2, doc = ?3 WHERE id = ?1 AND version = ?4",
            params![next.id, next.version, to_json(next), next.version - 1],
        )
        .map_err(backend)?;
    Ok(n == 1)
}

/// A `WHERE` clause built from optional filters, with its parameters.
#[derive(Default)]
struct Filter {
    clauses: Vec<String>,
    params: Vec<Value>,
}

impl Filter {
    /// Adds `clause`, whose `?` placeholders take `values` in order.
    fn and(&mut self, clause: &str, values: impl IntoIterator<Item = Value>) {
        let mut text = String::new();
        let mut values = values.into_iter();
        for (i, part) in clause.split('?').enumerate() {
            if i > 0 {
                self.params
                    .push(values.next().expect("a value per placeholder"));
                text.push_str(&format!("?{}", self.params.len()));
            }
            text.push_str(part);
        }
        self.clauses.push(text);
    }

    /// The query for the documents of `table` matching the filter, in
    /// `order`, at most `limit`, and its parameters.
    fn sql(mut self, table: &str, order: &str, limit: usize) -> (String, Vec<Value>) {
        let filter = if self.clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        };
        self.params
            .push(Value::Integer(limit.min(i64::MAX as usize) as i64));
        let sql = format!(
            "SELECT doc FROM {table} {filter} ORDER BY {order} LIMIT ?{}",
            self.params.len()
        );
        (sql, self.params)
    }
}

pub(crate) fn docs<T: serde::de::DeserializeOwned>(
    db: &Db,
    what: &str,
    sql: &str,
    params: &[Value],
) -> Result<Vec<T>, StoreError> {
    let mut st = db.prepare(sql).map_err(backend)?;
    let docs = st
        .query_map(params_from_iter(params.iter()), |r| r.get::<_, String>(0))
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    docs.iter().map(|d| from_json(what, d)).collect()
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

/// A page of connections: the primary key (or `connections_tenant`, or with
/// a status filter `connections_status`) range after the cursor; the
/// provider is read from the document.
pub(crate) fn list_connections_page(
    db: &Db,
    q: &ConnectionQuery,
) -> Result<Vec<Connection>, StoreError> {
    let (sql, params) = connections_query(q);
    docs(db, "connection", &sql, &params)
}

fn connections_query(q: &ConnectionQuery) -> (String, Vec<Value>) {
    let mut f = Filter::default();
    if let Some(t) = &q.tenant {
        f.and("tenant = ?", [text(t.as_str())]);
    }
    if let Some(after) = &q.after {
        f.and("id > ?", [text(after.as_str())]);
    }
    if let Some(s) = q.status {
        f.and("json_extract(doc, '$.status') = ?", [text(s.as_str())]);
    }
    if let Some(p) = &q.provider {
        f.and("json_extract(doc, '$.provider') = ?", [text(p)]);
    }
    f.sql("connections", "id", q.limit)
}

/// A page of runs, newest first: the `runs_connection_started` (or
/// `runs_started`; with a status filter `runs_connection_status` or
/// `runs_status`) index range before the cursor's (started_at, id).
pub(crate) fn list_runs_page(db: &Db, q: &RunQuery) -> Result<Vec<SyncRun>, StoreError> {
    let (sql, params) = runs_query(q);
    docs(db, "run", &sql, &params)
}

fn runs_query(q: &RunQuery) -> (String, Vec<Value>) {
    let mut f = Filter::default();
    if let Some(c) = &q.connection {
        f.and("connection = ?", [text(c.as_str())]);
    }
    if let Some(since) = q.since {
        f.and("started_at >= ?", [Value::Integer(since.as_millis())]);
    }
    if let Some(after) = &q.after {
        let at = after.started_at.as_millis();
        f.and(
            "(started_at < ? OR (started_at = ? AND id < ?))",
            [
                Value::Integer(at),
                Value::Integer(at),
                text(after.id.as_str()),
            ],
        );
    }
    if !q.statuses.is_empty() {
        let marks = vec!["?"; q.statuses.len()].join(", ");
        f.and(
            &format!("json_extract(doc, '$.status') IN ({marks})"),
            q.statuses.iter().map(|s| text(s.as_str())),
        );
    }
    f.sql("runs", "started_at DESC, id DESC", q.limit)
}

/// Per-bucket sums of the runs started in `[since, until)`: one `GROUP BY`
/// over the `runs_stats` index range (migration 15), whose columns are the
/// start and, spelled exactly as here, the document fields summed — so
/// SQLite reads the index alone, never a run document.
fn run_stats_query(q: &RunStatsQuery) -> (String, Vec<Value>) {
    let sql = "SELECT (started_at - ?1) / ?3 AS bucket, COUNT(*),
            COALESCE(SUM(json_extract(doc, '$.status') = 'failed'), 0),
            COALESCE(SUM(json_extract(doc, '$.counts.created')
                + json_extract(doc, '$.counts.updated')
                + json_extract(doc, '$.counts.deleted')), 0),
            COUNT(json_extract(doc, '$.finished_at')),
            COALESCE(SUM(MAX(json_extract(doc, '$.finished_at') - started_at, 0)), 0)
         FROM runs WHERE started_at >= ?1 AND started_at < ?2
         GROUP BY bucket ORDER BY bucket"
        .to_owned();
    let params = vec![
        Value::Integer(q.since.as_millis()),
        Value::Integer(q.until.as_millis()),
        Value::Integer(i64::from(q.bucket_ms.get())),
    ];
    (sql, params)
}

pub(crate) fn run_stats(db: &Db, q: &RunStatsQuery) -> Result<Vec<RunBucket>, StoreError> {
    let (sql, params) = run_stats_query(q);
    let mut st = db.prepare_cached(&sql).map_err(backend)?;
    let width = i64::from(q.bucket_ms.get());
    let since = q.since.as_millis();
    let n = |v: i64| u64::try_from(v).unwrap_or(0);
    st.query_map(params_from_iter(params.iter()), |r| {
        Ok(RunBucket {
            start: Timestamp::from_millis(since + r.get::<_, i64>(0)? * width),
            runs: n(r.get(1)?),
            failed: n(r.get(2)?),
            records: n(r.get(3)?),
            finished: n(r.get(4)?),
            duration_ms: n(r.get(5)?),
        })
    })
    .and_then(|rows| rows.collect())
    .map_err(backend)
}

pub(crate) fn get_run(db: &Db, id: &RunId) -> Result<Option<SyncRun>, StoreError> {
    let doc: Option<String> = db
        .query_row("SELECT doc FROM runs WHERE id = ?1", [id.as_str()], |r| {
            r.get(0)
        })
        .optional()
        .map_err(backend)?;
    doc.map(|d| from_json("run", &d)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use syncbridge_core::model::{ConnectionStatus, RunStatus};
    use syncbridge_core::store::RunKey;
    use syncbridge_core::{ConnectionId, TenantId};

    /// What SQLite plans for `sql` (the `detail` column of each step).
    fn plan(db: &Db, (sql, params): (String, Vec<Value>)) -> String {
        let mut st = db.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        st.query_map(params_from_iter(params.iter()), |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
            .join("; ")
    }

    fn migrated() -> Db {
        let mut db = Db::open_in_memory().unwrap();
        crate::schema::migrate(&mut db).unwrap();
        db
    }

    /// Tried: the dashboard's run stats over a day in hour buckets. Must
    /// hold: SQLite reads a range of the `runs_stats` index alone (covering:
    /// no run document is read) and groups in its order (no sort).
    #[test]
    fn run_stats_reads_the_covering_index() {
        let db = migrated();
        let q = RunStatsQuery {
            since: Timestamp::from_millis(0),
            until: Timestamp::from_millis(86_400_000),
            bucket_ms: std::num::NonZeroU32::new(3_600_000).unwrap(),
        };
        let p = plan(&db, run_stats_query(&q));
        assert!(
            p.contains("SEARCH runs USING COVERING INDEX runs_stats"),
            "{p}"
        );
        assert!(!p.contains("SCAN runs"), "{p}");
    }

    /// Tried: the API's status filters on connections and runs, alone, with
    /// a cursor, a tenant or a connection. Must hold: every one reads an
    /// index range (`SEARCH … USING INDEX`), never a scan of the table; a
    /// single status reads in the page's order (no sort).
    #[test]
    fn status_filters_read_index_ranges() {
        let db = migrated();
        let by_status = ConnectionQuery {
            status: Some(ConnectionStatus::NeedsReauth),
            after: Some(ConnectionId::parse("c5").unwrap()),
            limit: 50,
            ..Default::default()
        };
        let p = plan(&db, connections_query(&by_status));
        assert!(p.contains("USING INDEX connections_status"), "{p}");
        assert!(!p.contains("TEMP B-TREE"), "in id order already: {p}");
        let with_tenant = ConnectionQuery {
            tenant: Some(TenantId::parse("t1").unwrap()),
            ..by_status.clone()
        };
        let p = plan(&db, connections_query(&with_tenant));
        assert!(p.starts_with("SEARCH connections USING"), "{p}");

        let one = RunQuery {
            statuses: vec![RunStatus::Failed],
            limit: 50,
            ..Default::default()
        };
        let p = plan(&db, runs_query(&one));
        assert!(p.contains("USING INDEX runs_status"), "{p}");
        assert!(!p.contains("TEMP B-TREE"), "newest first already: {p}");
        let of_connection = RunQuery {
            connection: Some(ConnectionId::parse("c1").unwrap()),
            after: Some(RunKey {
                started_at: Timestamp::from_millis(5),
                id: RunId::parse("r5").unwrap(),
            }),
            ..one.clone()
        };
        let p = plan(&db, runs_query(&of_connection));
        assert!(p.contains("USING INDEX runs_connection_status"), "{p}");
        let several = RunQuery {
            statuses: vec![RunStatus::Failed, RunStatus::Succeeded],
            ..one
        };
        let p = plan(&db, runs_query(&several));
        assert!(p.contains("USING INDEX runs_status"), "{p}");
        assert!(!p.contains("SCAN runs"), "{p}");
    }
}
