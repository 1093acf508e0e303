//! The documents this store writes: one container, partition key path `/pk`.
//!
//! Every document carries `id` (unique within its logical partition), `pk`
//! (the partition key value) and `type`. Domain values that are queried are
//! copied into top-level fields next to the serialized domain document
//! (`doc`), which stays the source of truth when read back.
//!
//! | type | `pk` | `id` |
//! |---|---|---|
//! | `connection` | connection id | `connection` |
//! | `task` | its connection id | `task.<hash(task id)>` |
//! | `record` | its connection id | `rec.<hash(object, external id)>` |
//! | `audit` | its connection id | `audit.<hash(key)>` |
//! | `run` | its connection id | `run.<hash(run id)>` |
//! | `credential` | its connection id | `credential` |
//! | `webhook` | its connection id | `wh.<hash(dedup key)>` |
//! | `lock` | `~lock.<hash(name)>` | `lock` |
//! | `quarantine` | `~quarantine` | `q.<seq>` |
//! | `counter` | `~quarantine` | `counter` |
//! | `seq_counter` | its connection id | `seq` |
//! | `api_key` | `~apikey` | `key.<SHA-256 of the key>` (see `api.rs`) |
//!
//! A record document whose `deleted_at` is set is a tombstone (the records
//! feed's deletion entry): every query but the feed's excludes it with
//! `NOT IS_DEFINED(c.deleted_at)` (the field is absent on live records), and
//! point reads treat it as absent.
//!
//! Connection ids only contain `[A-Za-z0-9-_.:@]`, so the `~` prefix keeps the
//! global partitions apart from every connection's partition. Ids are hashed
//! because external ids, run ids and lock names may be longer than Cosmos DB's
//! 255-character id limit or contain `/ \ ? #`.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use syncbridge_core::model::{
    AuditRecord, Connection, LocalState, QuarantinedMessage, Record, SyncRun, SyncTask,
};
use syncbridge_core::store::{LastAction, SealedCredential};

/// Partition of the quarantine entries and their sequence counter.
pub(crate) const QUARANTINE_PK: &str = "~quarantine";

/// A stable, id-safe digest of `parts` (128 bits, hex).
pub(crate) fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    hex::encode(&h.finalize()[..16])
}

pub(crate) fn task_id(task: &str) -> String {
    format!("task.{}", digest(&[task]))
}

pub(crate) fn record_id(object: &str, external_id: &str) -> String {
    format!("rec.{}", digest(&[object, external_id]))
}

pub(crate) fn audit_id(key: &str) -> String {
    format!("audit.{}", digest(&[key]))
}

pub(crate) fn run_id(run: &str) -> String {
    format!("run.{}", digest(&[run]))
}

pub(crate) fn webhook_id(dedup_key: &str) -> String {
    format!("wh.{}", digest(&[dedup_key]))
}

pub(crate) fn lock_pk(name: &str) -> String {
    format!("~lock.{}", digest(&[name]))
}

pub(crate) fn quarantine_id(seq: i64) -> String {
    format!("q.{seq}")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ConnectionDoc {
    pub id: String,
    pub pk: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub tenant: String,
    pub doc: Connection,
}

impl ConnectionDoc {
    pub fn new(c: &Connection) -> Self {
        ConnectionDoc {
            id: "connection".into(),
            pk: c.id.to_string(),
            kind: "connection".into(),
            tenant: c.tenant.to_string(),
            doc: c.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TaskDoc {
    pub id: String,
    pub pk: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub task_id: String,
    /// `Priority as i64`: lower is more urgent.
    pub priority: i64,
    pub next_run_at: i64,
    /// Always written (null when unleased) so `c.lease_until = null` matches.
    pub lease_until: Option<i64>,
    /// When the task can next be leased: due, and any lease expired. The
    /// scheduler's query is a range on it per priority class, so a tick
    /// reads only eligible tasks, never every task.
    #[serde(default)]
    pub eligible_at: i64,
    /// [`SyncTask::stall_at`]: the watchdog's range (null once flagged).
    #[serde(default)]
    pub stall_at: Option<i64>,
    pub doc: SyncTask,
}

impl TaskDoc {
    pub fn new(t: &SyncTask) -> Self {
        TaskDoc {
            id: task_id(t.id.as_str()),
            pk: t.connection.to_string(),
            kind: "task".into(),
            task_id: t.id.to_string(),
            priority: t.priority as i64,
            next_run_at: t.next_run_at.as_millis(),
            lease_until: t.lease.as_ref().map(|l| l.until.as_millis()),
            eligible_at: t.lease.as_ref().map_or(t.next_run_at.as_millis(), |l| {
                t.next_run_at.as_millis().max(l.until.as_millis() + 1)
            }),
            stall_at: t.stall_at().map(|at| at.as_millis()),
            doc: t.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RecordDoc {
    pub id: String,
    pub pk: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub object: String,
    pub external_id: String,
    pub data: serde_json::Value,
    pub hash: String,
    pub version: i64,
    pub remote_updated_at: Option<i64>,
    /// The outbound state, the source of truth (never filtered on: the
    /// indexing policy excludes `/local/*` like `/data/*`). Absent in
    /// documents written before outbound sync, read back as `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalState>,
    /// `local.push_due_at` in ms, present only while a push is due: the
    /// outbox that `due_pushes` ranges over (single-property `ORDER BY`, so
    /// the range index covers it; no composite index).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_due_at: Option<i64>,
    /// Present exactly while `local` is: `<pk> <object> <external id>`.
    /// Both the "has a local state" filter and the sort key of
    /// `list_local_changes` — one string ordered like the tuple (connection
    /// ids and object types only contain `[A-Za-z0-9-_.:@]`, all above the
    /// space), so a single-property `ORDER BY` gives SQLite's
    /// (connection, object, id) order without a composite index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_key: Option<String>,
    /// `local_key`, present only while the local state has parked
    /// conflicts: the filter and sort key of `list_conflicts_page`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict_key: Option<String>,
    /// The records feed (core's `store::feed`): the connection's change
    /// sequence of the last content write. Absent on documents written
    /// before the feed existed (they enter the feed when next changed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_action: Option<LastAction>,
    /// Set on tombstones only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<i64>,
}

impl RecordDoc {
    /// Stamps a content write: sequence `seq` at `now`, as `action`;
    /// `first_seen_at` is `now` for an added record and kept otherwise.
    pub fn stamp(&mut self, seq: i64, now: i64, action: LastAction) {
        if action == LastAction::Added || self.first_seen_at.is_none() {
            self.first_seen_at = Some(now);
        }
        self.seq = Some(seq);
        self.last_modified_at = Some(now);
        self.last_action = Some(action);
        self.deleted_at = match action {
            LastAction::Deleted => Some(now),
            LastAction::Added | LastAction::Updated => None,
        };
    }

    /// This document as a tombstone: last data kept, local state cleared
    /// (the stamp with [`LastAction::Deleted`] sets `deleted_at`).
    pub fn into_tombstone(mut self) -> Self {
        self.local = None;
        self.push_due_at = None;
        self.local_key = None;
        self.conflict_key = None;
        self
    }

    /// Keeps the feed metadata of the stored `prior` (a write that changed no content).
    pub fn keep_feed_of(&mut self, prior: &RecordDoc) {
        self.seq = prior.seq;
        self.first_seen_at = prior.first_seen_at;
        self.last_modified_at = prior.last_modified_at;
        self.last_action = prior.last_action;
    }

    /// The document of `r` in partition `pk` under `object` (the caller's
    /// connection and object, whatever `r` says, like the SQLite store).
    pub fn new(pk: &str, object: &str, r: &Record) -> Self {
        RecordDoc {
            id: record_id(object, r.external_id.as_str()),
            pk: pk.to_owned(),
            kind: "record".into(),
            object: object.to_owned(),
            external_id: r.external_id.to_string(),
            data: r.data.clone(),
            hash: r.hash.clone(),
            version: r.version,
            remote_updated_at: r.remote_updated_at.map(|t| t.as_millis()),
            push_due_at: r
                .local
                .as_ref()
                .and_then(|l| l.push_due_at)
                .map(|t| t.as_millis()),
            local_key: r
                .local
                .as_ref()
                .map(|_| local_key(pk, object, r.external_id.as_str())),
            conflict_key: r
                .local
                .as_ref()
                .filter(|l| !l.conflicts.is_empty())
                .map(|_| local_key(pk, object, r.external_id.as_str())),
            local: r.local.clone(),
            seq: None,
            first_seen_at: None,
            last_modified_at: None,
            last_action: None,
            deleted_at: None,
        }
    }
}

/// See [`RecordDoc::local_key`].
pub(crate) fn local_key(pk: &str, object: &str, external_id: &str) -> String {
    format!("{pk} {object} {external_id}")
}

/// What a page commit needs to know about a stored record.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RecordHead {
    pub id: String,
    pub hash: String,
    pub version: i64,
    #[serde(rename = "_etag")]
    pub etag: String,
    #[serde(default)]
    pub remote_updated_at: Option<i64>,
    /// Present while the record has a local state (then it is held).
    #[serde(default)]
    pub local_key: Option<String>,
    /// Kept by an update (see [`RecordDoc::first_seen_at`]).
    #[serde(default)]
    pub first_seen_at: Option<i64>,
    /// Set on tombstones, which a page commit treats as absent.
    #[serde(default)]
    pub deleted_at: Option<i64>,
}

impl RecordHead {
    /// Whether this is a live record (not a tombstone).
    pub fn is_live(&self) -> bool {
        self.deleted_at.is_none()
    }
}

/// One audit entry, in its connection's partition so it commits in the same
/// transactional batch as the record write that decided it. The id is
/// derived from the key: a key already stored makes a second create fail
/// with 409, which is how "an entry whose key is already stored is skipped"
/// holds (see `CosmosStore::write_record`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AuditDoc {
    pub id: String,
    pub pk: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub key: String,
    pub at: i64,
    /// Sort key of the log: `at` (ms) × 1000 + the entry's position in its
    /// write, so the entries of one write (usually one instant) keep their
    /// order. Exact as a JSON number until the year 2255.
    pub log_order: i64,
    pub doc: AuditRecord,
}

impl AuditDoc {
    /// Entry `position` (< 1000) of a write.
    pub fn new(a: &AuditRecord, position: usize) -> Self {
        let at = a.at.as_millis();
        AuditDoc {
            id: audit_id(&a.key),
            pk: a.connection.to_string(),
            kind: "audit".into(),
            key: a.key.clone(),
            at,
            log_order: at.saturating_mul(1000).saturating_add(position as i64),
            doc: a.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RunDoc {
    pub id: String,
    pub pk: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub run_id: String,
    pub task: String,
    pub started_at: i64,
    pub doc: SyncRun,
}

impl RunDoc {
    pub fn new(r: &SyncRun) -> Self {
        RunDoc {
            id: run_id(r.id.as_str()),
            pk: r.connection.to_string(),
            kind: "run".into(),
            run_id: r.id.to_string(),
            task: r.task.to_string(),
            started_at: r.started_at.as_millis(),
            doc: r.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CredentialDoc {
    pub id: String,
    pub pk: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: i64,
    pub expires_at: Option<i64>,
    /// The sweep's range ([`SealedCredential::sweep_at`]).
    #[serde(default)]
    pub sweep_at: Option<i64>,
    pub doc: SealedCredential,
}

impl CredentialDoc {
    pub fn new(c: &SealedCredential) -> Self {
        CredentialDoc {
            id: "credential".into(),
            pk: c.connection.to_string(),
            kind: "credential".into(),
            version: c.version,
            expires_at: c.expires_at.map(|t| t.as_millis()),
            sweep_at: c.sweep_at.map(|t| t.as_millis()),
            doc: c.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WebhookDoc {
    pub id: String,
    pub pk: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub dedup_key: String,
    pub received_at: i64,
    /// Base64 of the raw body.
    pub body: String,
    /// Seconds until Cosmos DB's TTL sweep removes the entry (the container
    /// has `defaultTtl = -1`, i.e. per-item TTL; dedup never depends on it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LockDoc {
    pub id: String,
    pub pk: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub owner: String,
    pub until: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct QuarantineDoc {
    pub id: String,
    pub pk: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub seq: i64,
    pub doc: QuarantinedMessage,
}

/// Id of a connection's change-sequence counter (a [`CounterDoc`] of type
/// `seq_counter` in the connection's partition, `next` = the next sequence).
pub(crate) const SEQ_COUNTER_ID: &str = "seq";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CounterDoc {
    pub id: String,
    pub pk: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// The next sequence number to hand out.
    pub next: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids are short, deterministic, free of Cosmos DB's forbidden characters,
    /// and distinguish part boundaries.
    #[test]
    fn ids_are_safe_and_stable() {
        let long = "x/y?z#\\".repeat(100);
        let id = record_id("contacts", &long);
        assert!(id.len() < 255);
        assert!(!id.contains(['/', '\\', '?', '#']));
        assert_eq!(id, record_id("contacts", &long));
        assert_ne!(record_id("ab", "c"), record_id("a", "bc"));
        assert!(lock_pk("n").starts_with('~'));
        assert_ne!(audit_id("k"), record_id("k", ""));
    }

    /// The local key sorts like the (connection, object, id) tuple.
    #[test]
    fn local_key_orders_like_the_tuple() {
        let mut keys = [
            ("c1", "deals", "a"),
            ("c1", "contacts", "b"),
            ("c1-x", "contacts", "a"),
            ("c1", "contacts.x", "a"),
            ("c1", "contacts", "a b"),
            ("c1", "contacts", "a"),
        ];
        let mut by_key: Vec<String> = keys.iter().map(|(c, o, i)| local_key(c, o, i)).collect();
        keys.sort();
        by_key.sort();
        assert_eq!(
            by_key,
            keys.iter()
                .map(|(c, o, i)| local_key(c, o, i))
                .collect::<Vec<_>>()
        );
    }
}
