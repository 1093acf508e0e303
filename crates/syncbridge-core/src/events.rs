//! Operational events the core raises, for notifications and the product.
//!
//! Capabilities raise an [`Event`] through an [`EventSink`] and carry on: a
//! sink never fails its caller (it records or queues the event durably and
//! logs its own problems). The notification service implements `EventSink`
//! and routes events by kind, tenant and severity without knowing anything
//! about the code that raised them.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::ids::{ConnectionId, RunId, TaskId, TenantId};
use crate::model::Connection;

/// How urgent an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Good news or a notice (a run recovered).
    Info,
    /// Needs attention soon (stalled task, parked conflict, fallback engaged).
    Warning,
    /// Something is broken for a tenant until a person acts.
    Critical,
}

/// Every event kind, documented. Serialized with a `kind` tag in snake_case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// A sync run failed (provider unavailable, bad pages, store error…).
    SyncRunFailed {
        /// Owning tenant.
        tenant: TenantId,
        /// Connection.
        connection: ConnectionId,
        /// Task.
        task: TaskId,
        /// Why (never contains a secret).
        error: String,
    },
    /// A task whose previous run failed has succeeded again.
    SyncRunRecovered {
        /// Owning tenant.
        tenant: TenantId,
        /// Connection.
        connection: ConnectionId,
        /// Task.
        task: TaskId,
    },
    /// The watchdog found a task that has not run within twice its interval.
    TaskStalled {
        /// Owning tenant.
        tenant: TenantId,
        /// Connection.
        connection: ConnectionId,
        /// Task.
        task: TaskId,
        /// Its last finished run, if any.
        last_run_at: Option<Timestamp>,
        /// Its interval.
        interval_secs: u32,
    },
    /// The provider rejected the connection's refresh token: a person must re-authorize.
    ConnectionNeedsReauth {
        /// Owning tenant.
        tenant: TenantId,
        /// Connection.
        connection: ConnectionId,
        /// Connector name.
        provider: String,
        /// The provider's reason (error code), never a token.
        reason: String,
    },
    /// The provider rejected our OAuth client (`invalid_client`): every
    /// connection of this provider app is affected.
    ProviderCredentialsRejected {
        /// Connector name.
        provider: String,
        /// The provider's reason.
        reason: String,
    },
    /// A run's deletions exceeded the allowed share; nothing was deleted.
    MassDeleteBreakerTripped {
        /// Owning tenant.
        tenant: TenantId,
        /// Connection.
        connection: ConnectionId,
        /// Task.
        task: TaskId,
        /// Deletions the provider reported.
        deletes: u64,
        /// Records in the store.
        total: u64,
        /// The configured limit (share of total).
        max_share: f64,
    },
    /// A bidirectional conflict waits for a person to resolve it.
    ConflictParked {
        /// Owning tenant.
        tenant: TenantId,
        /// Connection.
        connection: ConnectionId,
        /// Object type.
        object: String,
        /// Record id.
        record: String,
        /// Fields in conflict.
        fields: Vec<String>,
    },
    /// A message that can never be processed was set aside.
    MessageQuarantined {
        /// Function or queue.
        source: String,
        /// Its id, when known.
        message_id: Option<String>,
        /// Why.
        reason: String,
    },
    /// A message exhausted its deliveries and went to the dead-letter queue.
    MessageDeadLettered {
        /// Queue.
        queue: String,
        /// Message id.
        message_id: String,
        /// Broker reason.
        reason: String,
    },
    /// Shared rate limiting is unavailable; instances fell back to local limits.
    RateLimitFallbackEngaged {
        /// Provider, or `*` for all.
        provider: String,
        /// Why.
        reason: String,
    },
    /// An inbound run changed records in the store (product webhook `sync.completed`).
    SyncCompleted {
        /// Owning tenant.
        tenant: TenantId,
        /// Connection.
        connection: ConnectionId,
        /// Object type.
        object: String,
        /// The run.
        run: RunId,
        /// How the run ended (`succeeded`, `parked`, `failed`): a run that
        /// stops early keeps the pages it committed.
        status: String,
        /// Records new to the store.
        added: u64,
        /// Records whose content changed.
        updated: u64,
        /// Records deleted (tombstoned).
        deleted: u64,
        /// The records feed cursor (`GET /v1/records?cursor=`) of this
        /// object from before the run: reading from it returns the run's
        /// changes (and any later ones).
        records_cursor: String,
    },
    /// A connection was added (CLI `connections add` or `POST /v1/connections`).
    ConnectionCreated {
        /// Owning tenant.
        tenant: TenantId,
        /// Connection.
        connection: ConnectionId,
        /// Connector name.
        provider: String,
    },
    /// A `needs_reauth` (or active) connection got new credentials through
    /// the connect flow; its tasks were asked to run at once.
    ConnectionReauthorized {
        /// Owning tenant.
        tenant: TenantId,
        /// Connection.
        connection: ConnectionId,
        /// Connector name.
        provider: String,
    },
}

/// Who an event is for, beyond the operators' routing rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProductEvent {
    /// Not sent to the product.
    No,
    /// Sent to the product's webhook as this Standard Webhooks `type`
    /// (`sync.completed`, …).
    Yes(&'static str),
}

impl Event {
    /// The snake_case kind name (`sync_run_failed`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Event::SyncRunFailed { .. } => "sync_run_failed",
            Event::SyncRunRecovered { .. } => "sync_run_recovered",
            Event::TaskStalled { .. } => "task_stalled",
            Event::ConnectionNeedsReauth { .. } => "connection_needs_reauth",
            Event::ProviderCredentialsRejected { .. } => "provider_credentials_rejected",
            Event::MassDeleteBreakerTripped { .. } => "mass_delete_breaker_tripped",
            Event::ConflictParked { .. } => "conflict_parked",
            Event::MessageQuarantined { .. } => "message_quarantined",
            Event::MessageDeadLettered { .. } => "message_dead_lettered",
            Event::RateLimitFallbackEngaged { .. } => "rate_limit_fallback_engaged",
            Event::SyncCompleted { .. } => "sync_completed",
            Event::ConnectionCreated { .. } => "connection_created",
            Event::ConnectionReauthorized { .. } => "connection_reauthorized",
        }
    }

    /// Whether the product's webhook receives it, and as which `type`.
    pub fn product(&self) -> ProductEvent {
        match self {
            Event::SyncCompleted { .. } => ProductEvent::Yes("sync.completed"),
            Event::ConnectionCreated { .. } => ProductEvent::Yes("connection.created"),
            Event::ConnectionReauthorized { .. } => ProductEvent::Yes("connection.reauthorized"),
            Event::ConnectionNeedsReauth { .. } => ProductEvent::Yes("connection.needs_reauth"),
            _ => ProductEvent::No,
        }
    }

    /// `connection.created` for a connection just stored (the CLI and the API raise it alike).
    pub fn connection_created(conn: &Connection) -> Self {
        Event::ConnectionCreated {
            tenant: conn.tenant.clone(),
            connection: conn.id.clone(),
            provider: conn.provider.clone(),
        }
    }

    /// `connection.reauthorized` for a connection whose credentials the connect flow replaced.
    pub fn connection_reauthorized(conn: &Connection) -> Self {
        Event::ConnectionReauthorized {
            tenant: conn.tenant.clone(),
            connection: conn.id.clone(),
            provider: conn.provider.clone(),
        }
    }

    /// How urgent it is.
    pub fn severity(&self) -> Severity {
        match self {
            Event::SyncRunRecovered { .. }
            | Event::SyncCompleted { .. }
            | Event::ConnectionCreated { .. }
            | Event::ConnectionReauthorized { .. } => Severity::Info,
            Event::TaskStalled { .. }
            | Event::ConflictParked { .. }
            | Event::MessageQuarantined { .. }
            | Event::RateLimitFallbackEngaged { .. } => Severity::Warning,
            Event::SyncRunFailed { .. }
            | Event::ConnectionNeedsReauth { .. }
            | Event::ProviderCredentialsRejected { .. }
            | Event::MassDeleteBreakerTripped { .. }
            | Event::MessageDeadLettered { .. } => Severity::Critical,
        }
    }

    /// The tenant concerned, if the event belongs to one.
    pub fn tenant(&self) -> Option<&TenantId> {
        match self {
            Event::SyncRunFailed { tenant, .. }
            | Event::SyncRunRecovered { tenant, .. }
            | Event::TaskStalled { tenant, .. }
            | Event::ConnectionNeedsReauth { tenant, .. }
            | Event::MassDeleteBreakerTripped { tenant, .. }
            | Event::ConflictParked { tenant, .. }
            | Event::SyncCompleted { tenant, .. }
            | Event::ConnectionCreated { tenant, .. }
            | Event::ConnectionReauthorized { tenant, .. } => Some(tenant),
            _ => None,
        }
    }

    /// Events with the same key are "the same failure repeating" and are
    /// grouped into one notification with a count.
    pub fn group_key(&self) -> String {
        match self {
            Event::SyncRunFailed { task, error, .. } => format!("sync_run_failed:{task}:{error}"),
            Event::SyncRunRecovered { task, .. } => format!("sync_run_recovered:{task}"),
            Event::TaskStalled { task, .. } => format!("task_stalled:{task}"),
            Event::ConnectionNeedsReauth { connection, .. } => {
                format!("connection_needs_reauth:{connection}")
            }
            Event::ProviderCredentialsRejected { provider, .. } => {
                format!("provider_credentials_rejected:{provider}")
            }
            Event::MassDeleteBreakerTripped { task, .. } => {
                format!("mass_delete_breaker_tripped:{task}")
            }
            Event::ConflictParked {
                connection,
                object,
                record,
                ..
            } => {
                format!("conflict_parked:{connection}:{object}:{record}")
            }
            Event::MessageQuarantined { source, reason, .. } => {
                format!("message_quarantined:{source}:{reason}")
            }
            Event::MessageDeadLettered { queue, reason, .. } => {
                format!("message_dead_lettered:{queue}:{reason}")
            }
            Event::RateLimitFallbackEngaged { provider, .. } => {
                format!("rate_limit_fallback_engaged:{provider}")
            }
            // Each run is its own news: never folded with another run's.
            Event::SyncCompleted { run, object, .. } => format!("sync_completed:{run}:{object}"),
            Event::ConnectionCreated { connection, .. } => {
                format!("connection_created:{connection}")
            }
            Event::ConnectionReauthorized { connection, .. } => {
                format!("connection_reauthorized:{connection}")
            }
        }
    }

    /// A one-line human title.
    pub fn title(&self) -> String {
        match self {
            Event::SyncRunFailed { task, .. } => format!("Sync failed: {task}"),
            Event::SyncRunRecovered { task, .. } => format!("Sync recovered: {task}"),
            Event::TaskStalled { task, .. } => format!("Sync stalled: {task}"),
            Event::ConnectionNeedsReauth {
                connection,
                provider,
                ..
            } => {
                format!("Re-authorization needed: {connection} ({provider})")
            }
            Event::ProviderCredentialsRejected { provider, .. } => {
                format!("OAuth client rejected by {provider}")
            }
            Event::MassDeleteBreakerTripped { task, .. } => format!("Mass delete refused: {task}"),
            Event::ConflictParked { object, record, .. } => {
                format!("Conflict needs a decision: {object} {record}")
            }
            Event::MessageQuarantined { source, .. } => format!("Message quarantined by {source}"),
            Event::MessageDeadLettered { queue, .. } => format!("Message dead-lettered on {queue}"),
            Event::RateLimitFallbackEngaged { provider, .. } => {
                format!("Rate limiting fell back to local limits ({provider})")
            }
            Event::SyncCompleted {
                connection,
                object,
                added,
                updated,
                deleted,
                ..
            } => format!(
                "Synced {connection} {object}: {added} added, {updated} updated, {deleted} deleted"
            ),
            Event::ConnectionCreated {
                connection,
                provider,
                ..
            } => format!("Connection created: {connection} ({provider})"),
            Event::ConnectionReauthorized {
                connection,
                provider,
                ..
            } => format!("Connection re-authorized: {connection} ({provider})"),
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.title())
    }
}

/// Where events go. Implementations record the event durably or log why they
/// could not; they never fail or block the caller for long.
#[async_trait::async_trait]
pub trait EventSink: Send + Sync + fmt::Debug + 'static {
    /// Raises an event.
    async fn emit(&self, event: Event);
}

/// Discards events (tests, tools that raise none).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoEvents;

#[async_trait::async_trait]
impl EventSink for NoEvents {
    async fn emit(&self, event: Event) {
        tracing::debug!(kind = event.kind(), "event discarded: {event}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kinds serialize as the documented snake_case tag and round-trip.
    #[test]
    fn serde_tag_round_trip() {
        let e = Event::MessageQuarantined {
            source: "SyncInboundWorker".into(),
            message_id: None,
            reason: "bad".into(),
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["kind"], e.kind());
        assert_eq!(serde_json::from_value::<Event>(v).unwrap(), e);
    }
}
