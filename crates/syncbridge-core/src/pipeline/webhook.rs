//! What a verified webhook event turns into: the follow-up jobs of the
//! connection's inbound tasks it names, with deterministic message ids, and
//! the replay of an event that was quarantined because it named none.
//!
//! Receiving (signatures, dedup, the group-commit writer) is the
//! `WebhookReceiver` handler's, in `syncbridge-functions`; this module holds
//! the decisions it and the CLI's `quarantine replay` share. Everything here
//! but [`load_target`] and [`replay`] is pure.

use sha2::{Digest, Sha256};

use crate::ids::{ConnectionId, ObjectType, TaskId};
use crate::model::{
    Connection, Direction, JobMessage, JobReason, Priority, QuarantinedMessage, SyncJob,
};
use crate::queue::{OutboundMessage, QueueError, QueueSender};
use crate::store::{Store, StoreError};

/// A webhook connection and the inbound tasks its events may route to.
#[derive(Debug, Clone)]
pub struct RouteTarget {
    /// The connection (it has webhook settings).
    pub conn: Connection,
    /// Its inbound tasks: id and object.
    pub inbound: Vec<(TaskId, ObjectType)>,
}

/// A verified delivery, as routing needs it.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    /// The event's dedup key ([`dedup_key`]).
    pub dedup_key: &'a str,
    /// Carried by every follow-up job (the provider's delivery id, else a new id).
    pub correlation_id: &'a str,
    /// The raw body.
    pub body: &'a [u8],
}

/// Where a verified event goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// One `sync-inbound` job per routed task.
    FollowUps(Vec<OutboundMessage>),
    /// It names only objects no inbound task covers: quarantine it, saying why.
    Unmatched {
        /// Why (names the connection and the objects the body named).
        reason: String,
    },
}

/// Object types an event body names (`object`, `objectType`, `object_type`,
/// at the top level or in each element of a batch). Reads only those keys:
/// everything else is skipped without building a JSON tree. `"event"` names
/// the envelope, not a record type (every Stripe event says
/// `"object": "event"`), so it names nothing: such an event routes to all of
/// the connection's inbound tasks.
pub fn named_objects(body: &[u8]) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Names {
        #[serde(default, alias = "objectType", alias = "object_type")]
        object: Option<String>,
    }
    // The first byte picks the shape, so the body is parsed once, straight
    // into `Names` (an untagged enum would first buffer the whole tree).
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let mut out: Vec<String> = match first {
        Some(b'{') => serde_json::from_slice::<Names>(body)
            .ok()
            .and_then(|n| n.object)
            .into_iter()
            .collect(),
        Some(b'[') => serde_json::from_slice::<Vec<Names>>(body)
            .map(|v| v.into_iter().filter_map(|n| n.object).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    out.retain(|n| n != "event");
    out.sort();
    out.dedup();
    out
}

/// The key an event is deduplicated by: the provider's event id, else the
/// body's SHA-256 (`sha256:<hex>`), so a redelivery of the same bytes is
/// recognised even from a provider that sends no id.
pub fn dedup_key(event_id: Option<String>, body: &[u8]) -> String {
    event_id.unwrap_or_else(|| format!("sha256:{}", hex::encode(Sha256::digest(body))))
}

/// The `MessageId` of an event's follow-up job for `task`: derived from the
/// connection, the dedup key and the task only, so a redelivery of the event
/// (or a receiver that died between storing and enqueueing) enqueues the same
/// id and the queue's duplicate detection keeps one.
pub fn follow_up_message_id(conn: &ConnectionId, dedup_key: &str, task: &TaskId) -> String {
    let digest = Sha256::digest(format!("{conn}\n{dedup_key}\n{task}"));
    format!("wh-{}", hex::encode(&digest[..16]))
}

/// What to do with a verified event: the follow-up jobs for the connection's
/// inbound tasks the body names (all of them when it names none), each
/// carrying the delivery's correlation id, or [`Route::Unmatched`] when it
/// names only objects nobody syncs.
pub fn route(target: &RouteTarget, d: Delivery<'_>) -> Route {
    let conn = &target.conn.id;
    let named = named_objects(d.body);
    let routed: Vec<_> = target
        .inbound
        .iter()
        .filter(|(_, o)| named.is_empty() || named.iter().any(|n| n == o.as_str()))
        .collect();
    if routed.is_empty() {
        return Route::Unmatched {
            reason: format!(
                "verified event for {conn} matches no sync task (objects named: {named:?})"
            ),
        };
    }
    Route::FollowUps(
        routed
            .into_iter()
            .map(|(task, object)| {
                let job = SyncJob {
                    task: task.clone(),
                    connection: conn.clone(),
                    object: object.clone(),
                    priority: Priority::WebhookFollowUp,
                    reason: JobReason::Webhook {
                        event: d.dedup_key.to_string(),
                    },
                    lease_token: String::new(),
                };
                let id = follow_up_message_id(conn, d.dedup_key, task);
                JobMessage::inbound_message(job, id, d.correlation_id)
            })
            .collect(),
    )
}

/// The connection `id` with its inbound tasks, or `None` when there is no
/// such connection or it takes no webhooks.
pub async fn load_target(
    store: &dyn Store,
    id: &ConnectionId,
) -> Result<Option<RouteTarget>, StoreError> {
    let Some(conn) = store.get_connection(id).await? else {
        return Ok(None);
    };
    if conn.webhook.is_none() {
        return Ok(None);
    }
    let inbound = store
        .list_tasks(Some(id))
        .await?
        .into_iter()
        .filter(|t| t.direction == Direction::Inbound)
        .map(|t| (t.id, t.object))
        .collect();
    Ok(Some(RouteTarget { conn, inbound }))
}

/// Why a quarantined webhook event could not be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The quarantine entry names no connection.
    #[error("the entry names no connection")]
    NoConnection,
    /// The connection is gone or takes no webhooks any more.
    #[error("connection {0} no longer accepts webhooks")]
    NotAccepting(ConnectionId),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Enqueueing the follow-up jobs failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Re-routes a quarantined webhook event (after its tasks were fixed): the
/// follow-up jobs are enqueued with `correlation_id`, and their number is
/// returned, or `Ok(None)` if it still matches no task.
pub async fn replay(
    store: &dyn Store,
    queue: &dyn QueueSender,
    q: &QuarantinedMessage,
    correlation_id: &str,
) -> Result<Option<usize>, ReplayError> {
    let conn_id = q.connection.clone().ok_or(ReplayError::NoConnection)?;
    let Some(target) = load_target(store, &conn_id).await? else {
        return Err(ReplayError::NotAccepting(conn_id));
    };
    let key = q.message_id.clone().unwrap_or_default();
    let delivery = Delivery {
        dedup_key: &key,
        correlation_id,
        body: &q.body,
    };
    match route(&target, delivery) {
        Route::FollowUps(messages) => {
            let n = messages.len();
            queue.send(messages).await?;
            tracing::info!(connection = %conn_id, event = %key, correlation_id = %correlation_id, jobs = n, "quarantined webhook event replayed");
            Ok(Some(n))
        }
        Route::Unmatched { .. } => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TenantId;
    use crate::model::{ConnectionStatus, SealedSecrets, WebhookSettings};

    /// Object names are found at the top level and in batches; other bodies name none.
    #[test]
    fn named_objects_table() {
        assert_eq!(named_objects(br#"{"object":"contacts"}"#), ["contacts"]);
        assert_eq!(
            named_objects(br#"[{"object":"deals"},{"objectType":"contacts"},{"object":"deals"}]"#),
            ["contacts", "deals"]
        );
        assert_eq!(named_objects(br#"  {"object_type":"deals"}"#), ["deals"]);
        assert!(named_objects(b"not json").is_empty());
        assert!(named_objects(b"").is_empty());
        assert!(named_objects(br#"{"type":"ping"}"#).is_empty());
        // Stripe's envelope: names no record type (routes to every task).
        assert!(
            named_objects(br#"{"id":"evt_1","object":"event","type":"customer.updated"}"#)
                .is_empty()
        );
    }

    /// The provider's id is the key when there is one; else the body's hash.
    #[test]
    fn dedup_key_is_the_event_id_else_the_body_hash() {
        assert_eq!(dedup_key(Some("evt_1".into()), b"x"), "evt_1");
        assert_eq!(
            dedup_key(None, b"abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    /// A follow-up's id depends on connection, event and task, nothing else,
    /// and keeps its documented shape (`wh-` + 32 hex digits).
    #[test]
    fn follow_up_message_ids_are_deterministic() {
        let c = ConnectionId::parse("c1").unwrap();
        let t = TaskId::parse("t1").unwrap();
        let id = follow_up_message_id(&c, "evt_1", &t);
        assert_eq!(id, follow_up_message_id(&c, "evt_1", &t));
        assert!(id.starts_with("wh-") && id.len() == 35, "{id}");
        let digest = Sha256::digest("c1\nevt_1\nt1");
        assert_eq!(id, format!("wh-{}", hex::encode(&digest[..16])));
        let other_task = TaskId::parse("t2").unwrap();
        let other_conn = ConnectionId::parse("c2").unwrap();
        assert_ne!(id, follow_up_message_id(&c, "evt_1", &other_task));
        assert_ne!(id, follow_up_message_id(&c, "evt_2", &t));
        assert_ne!(id, follow_up_message_id(&other_conn, "evt_1", &t));
    }

    fn target() -> RouteTarget {
        let conn = Connection {
            id: ConnectionId::parse("c1").unwrap(),
            tenant: TenantId::parse("acme").unwrap(),
            provider: "sandbox".into(),
            status: ConnectionStatus::Active,
            base_url: None,
            webhook: Some(WebhookSettings {
                scheme: "github".into(),
                sealed_secrets: SealedSecrets {
                    key_version: "k1".into(),
                    nonce: Vec::new(),
                    ciphertext: Vec::new(),
                },
            }),
            settings: Default::default(),
            conflicts: Default::default(),
            created_at: crate::clock::Timestamp::from_millis(0),
        };
        let task = |t: &str, o: &str| (TaskId::parse(t).unwrap(), ObjectType::parse(o).unwrap());
        RouteTarget {
            conn,
            inbound: vec![task("t-contacts", "contacts"), task("t-deals", "deals")],
        }
    }

    fn routed_tasks(route: &Route) -> Vec<String> {
        let Route::FollowUps(messages) = route else {
            panic!("not routed: {route:?}")
        };
        messages
            .iter()
            .map(|m| {
                let body: JobMessage = serde_json::from_slice(&m.body).unwrap();
                assert_eq!(body.correlation_id.as_deref(), Some("corr"));
                assert_eq!(m.properties[JobMessage::CORRELATION_PROPERTY], "corr");
                assert_eq!(body.job.priority, Priority::WebhookFollowUp);
                assert_eq!(
                    body.job.reason,
                    JobReason::Webhook {
                        event: "evt_1".into()
                    }
                );
                assert_eq!(
                    m.message_id,
                    follow_up_message_id(&body.job.connection, "evt_1", &body.job.task)
                );
                body.job.task.to_string()
            })
            .collect()
    }

    /// Routing: the named objects' tasks; every task when none is named;
    /// nothing (quarantine) when only unsynced objects are named.
    #[test]
    fn route_table() {
        let t = target();
        let go = |body: &[u8]| {
            route(
                &t,
                Delivery {
                    dedup_key: "evt_1",
                    correlation_id: "corr",
                    body,
                },
            )
        };
        assert_eq!(routed_tasks(&go(br#"{"object":"deals"}"#)), ["t-deals"]);
        assert_eq!(
            routed_tasks(&go(br#"{"object":"event"}"#)),
            ["t-contacts", "t-deals"]
        );
        assert_eq!(
            routed_tasks(&go(br#"[{"object":"deals"},{"object":"contacts"}]"#)),
            ["t-contacts", "t-deals"]
        );
        assert_eq!(
            go(br#"{"object":"invoices"}"#),
            Route::Unmatched {
                reason:
                    r#"verified event for c1 matches no sync task (objects named: ["invoices"])"#
                        .into()
            }
        );
        let none = RouteTarget {
            inbound: Vec::new(),
            ..t.clone()
        };
        assert!(matches!(
            route(
                &none,
                Delivery {
                    dedup_key: "evt_1",
                    correlation_id: "corr",
                    body: b"{}",
                }
            ),
            Route::Unmatched { .. }
        ));
    }
}
