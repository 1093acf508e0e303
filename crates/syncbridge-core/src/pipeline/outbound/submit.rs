//! The product's changes in: a change and its outbox entry in one
//! compare-and-swap write, then its push queued.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::cas::{Swap, retry_cas, swap, write_of};
use super::plan::to_fields;
use super::relay::queue_push;
use crate::clock::Timestamp;
use crate::connector::definition::ObjectDef;
use crate::ids::{ConnectionId, ExternalId, ObjectType};
use crate::merge::{self, FieldValues};
use crate::model::{Connection, LocalState, PROVISIONAL_PREFIX, Record, content_hash};
use crate::pipeline::worker::WorkerDeps;
use crate::queue::{QueueError, QueueSender};
use crate::store::StoreError;

/// What the product changes.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeOp {
    /// A new record; `reference` is the product's own id for it (the record
    /// is `local:<reference>` until the provider assigns an id).
    Create {
        /// The product's id.
        reference: String,
        /// Canonical fields.
        fields: Map<String, Value>,
    },
    /// Some fields of an existing record (`null` clears a field).
    Update {
        /// The record.
        id: ExternalId,
        /// Canonical fields to change.
        fields: Map<String, Value>,
    },
    /// Delete a record.
    Delete {
        /// The record.
        id: ExternalId,
    },
}

/// One change the product submits.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalChange {
    /// Connection.
    pub connection: ConnectionId,
    /// Object type.
    pub object: ObjectType,
    /// What changes.
    pub op: ChangeOp,
}

/// What [`submit_change`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// The record (provisional for a create).
    pub external_id: ExternalId,
    /// Its version after the change.
    pub version: i64,
    /// Whether a push was queued (false: the change changed nothing).
    pub queued: bool,
}

/// Why a change was refused. Nothing is written when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// No such connection.
    #[error("connection {0} not found")]
    UnknownConnection(ConnectionId),
    /// The connection's connector is not installed.
    #[error("connector {0} is not installed")]
    UnknownConnector(String),
    /// The connector does not sync this object.
    #[error("connector {provider} has no object {object}")]
    UnknownObject {
        /// Connector.
        provider: String,
        /// Object asked for.
        object: ObjectType,
    },
    /// The object has no write endpoints.
    #[error("{0} is read-only: its connector definition has no `push` table")]
    ReadOnly(ObjectType),
    /// A field the connector does not map.
    #[error("field `{field}` is not mapped for {object} (mapped: {known})")]
    UnknownField {
        /// Object.
        object: ObjectType,
        /// The field.
        field: String,
        /// The mapped fields.
        known: String,
    },
    /// No such record.
    #[error("record {0} not found")]
    NotFound(ExternalId),
    /// A create whose reference is already used.
    #[error("record {0} already exists")]
    Exists(ExternalId),
    /// A reference that cannot form an id.
    #[error("invalid reference: {0}")]
    BadReference(String),
    /// The record kept changing under us.
    #[error("record {0} is changing too fast; try again")]
    Contended(ExternalId),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The push could not be queued; the change is stored and the outbox
    /// sweep will queue it.
    #[error("change stored, but queueing its push failed (the outbox sweep retries): {0}")]
    Queue(#[from] QueueError),
}

/// Checks the connection, its connector and the object; answers the object's definition.
async fn object_def(
    deps: &WorkerDeps,
    connection: &ConnectionId,
    object: &ObjectType,
) -> Result<(Connection, Arc<crate::connector::ConnectorDef>), ChangeError> {
    let conn = deps
        .store
        .get_connection(connection)
        .await?
        .ok_or_else(|| ChangeError::UnknownConnection(connection.clone()))?;
    let def = deps
        .registry
        .get(&conn.provider)
        .ok_or_else(|| ChangeError::UnknownConnector(conn.provider.clone()))?;
    let obj = def
        .object(object.as_str())
        .ok_or_else(|| ChangeError::UnknownObject {
            provider: conn.provider.clone(),
            object: object.clone(),
        })?;
    if obj.push.is_none() {
        return Err(ChangeError::ReadOnly(object.clone()));
    }
    Ok((conn, def))
}

/// The canonical form of a record's data: every mapped field, `null` where
/// absent, exactly as inbound pulls write it (so equal states hash equally).
pub fn canonical(obj: &ObjectDef, fields: &FieldValues) -> Value {
    Value::Object(
        obj.fields
            .keys()
            .map(|k| (k.clone(), fields.get(k).cloned().unwrap_or(Value::Null)))
            .collect(),
    )
}

/// Records a change of the product's and queues its push.
pub async fn submit_change(
    deps: &WorkerDeps,
    queue: &dyn QueueSender,
    change: &LocalChange,
) -> Result<Submitted, ChangeError> {
    let (_, def) = object_def(deps, &change.connection, &change.object).await?;
    let obj = def.object(change.object.as_str()).expect("checked");
    if let ChangeOp::Create { fields, .. } | ChangeOp::Update { fields, .. } = &change.op
        && let Some(field) = fields.keys().find(|f| !obj.fields.contains_key(*f))
    {
        return Err(ChangeError::UnknownField {
            object: change.object.clone(),
            field: field.clone(),
            known: obj.fields.keys().cloned().collect::<Vec<_>>().join(", "),
        });
    }
    let id = match &change.op {
        ChangeOp::Create { reference, .. } => {
            ExternalId::parse(format!("{PROVISIONAL_PREFIX}{reference}"))
                .map_err(|e| ChangeError::BadReference(e.to_string()))?
        }
        ChangeOp::Update { id, .. } | ChangeOp::Delete { id } => id.clone(),
    };
    let at = Submit {
        deps,
        queue,
        change,
        obj,
        id: &id,
    };
    retry_cas((), |()| at.attempt())
        .await?
        .ok_or_else(|| ChangeError::Contended(id.clone()))
}

/// One change of one record.
struct Submit<'a> {
    deps: &'a WorkerDeps,
    queue: &'a dyn QueueSender,
    change: &'a LocalChange,
    obj: &'a ObjectDef,
    id: &'a ExternalId,
}

impl Submit<'_> {
    /// Reads the record, writes the change; `Continue` when the record moved meanwhile.
    async fn attempt(&self) -> Result<ControlFlow<Submitted>, ChangeError> {
        let (deps, change, id) = (self.deps, self.change, self.id);
        let now = deps.clock.now();
        let current = deps
            .store
            .get_record(&change.connection, &change.object, id)
            .await?;
        let expect_version = current.as_ref().map(|r| r.version);
        let next = match self.next(current, now)? {
            Next::Write(next) => *next,
            Next::Unchanged(answer) => return Ok(ControlFlow::Break(answer)),
        };
        let w = write_of(&next, expect_version, Some(next.clone()), Vec::new());
        if swap(deps.store.as_ref(), &w).await? == Swap::Moved {
            return Ok(ControlFlow::Continue(()));
        }
        queue_push(self.queue, &next, next.version, 0, None).await?;
        Ok(ControlFlow::Break(Submitted {
            external_id: id.clone(),
            version: next.version,
            queued: true,
        }))
    }

    /// The record after the change.
    fn next(&self, current: Option<Record>, now: Timestamp) -> Result<Next, ChangeError> {
        let (change, obj, id) = (self.change, self.obj, self.id);
        Ok(Next::Write(Box::new(match (&change.op, current) {
            (ChangeOp::Create { .. }, Some(_)) => return Err(ChangeError::Exists(id.clone())),
            (ChangeOp::Create { fields, .. }, None) => {
                let data = canonical(obj, &to_fields(&Value::Object(fields.clone())));
                Record {
                    connection: change.connection.clone(),
                    object: change.object.clone(),
                    external_id: id.clone(),
                    hash: content_hash(&data),
                    data,
                    // Not 1: a reference used again after its first record
                    // moved or went would repeat the first one's push
                    // `MessageId`s, which duplicate detection drops.
                    version: now.as_millis().max(1),
                    remote_updated_at: None,
                    local: Some(fresh_local(Value::Object(Map::new()), now)),
                }
            }
            (_, None) => return Err(ChangeError::NotFound(id.clone())),
            (ChangeOp::Update { fields, .. }, Some(rec)) => {
                let changes = to_changes(fields);
                let merged = merge::apply_changes(&to_fields(&rec.data), &changes);
                let data = canonical(obj, &merged);
                if data == rec.data && !rec.local.as_ref().is_some_and(|l| l.deleted) {
                    return Ok(Next::Unchanged(Submitted {
                        external_id: id.clone(),
                        version: rec.version,
                        queued: false,
                    }));
                }
                let local = changed_local(&rec, Edit::Update, now);
                Record {
                    hash: content_hash(&data),
                    data,
                    version: rec.version + 1,
                    local: Some(local),
                    ..rec
                }
            }
            (ChangeOp::Delete { .. }, Some(rec)) => {
                let local = changed_local(&rec, Edit::Delete, now);
                Record {
                    version: rec.version + 1,
                    local: Some(local),
                    ..rec
                }
            }
        })))
    }
}

/// A record after a change.
enum Next {
    /// The record to write.
    Write(Box<Record>),
    /// The change changes nothing: nothing is written or queued.
    Unchanged(Submitted),
}

/// What the product did to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edit {
    /// Changed fields.
    Update,
    /// Deleted it.
    Delete,
}

/// The local state of `rec` after the product changed (or deleted) it at
/// `now`: a push is due again and a parked push is retried.
fn changed_local(rec: &Record, edit: Edit, now: Timestamp) -> LocalState {
    let mut local = rec
        .local
        .clone()
        .unwrap_or_else(|| fresh_local(rec.data.clone(), now));
    local.deleted = edit == Edit::Delete;
    local.local_updated_at = now;
    local.push_due_at = Some(now);
    local.attempts = 0;
    local.last_error = None;
    local
}

/// The local state of a record whose push is due at `now`, agreed on `base`.
pub(super) fn fresh_local(base: Value, now: Timestamp) -> LocalState {
    LocalState {
        base,
        deleted: false,
        local_updated_at: now,
        push_due_at: Some(now),
        attempts: 0,
        last_error: None,
        conflicts: Vec::new(),
        resolutions: BTreeMap::new(),
        create: None,
    }
}

/// A change set from the product's map (`null` kept: it clears).
fn to_changes(fields: &Map<String, Value>) -> FieldValues {
    fields.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}
