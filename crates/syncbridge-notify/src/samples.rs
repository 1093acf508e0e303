//! Every event kind by name, and one sample event of each kind.
//!
//! [`kind_index`] matches the [`Event`] enum exhaustively, so adding a
//! variant to the core does not compile until it has a place in
//! [`EVENT_KINDS`] and (checked by a test) a sample in [`sample_events`]:
//! the renderers and their tests then cover it automatically.

use syncbridge_core::events::Event;
use syncbridge_core::{ConnectionId, RunId, TaskId, TenantId, Timestamp};

/// Every event kind name, as [`Event::kind`] spells it.
pub const EVENT_KINDS: [&str; 13] = [
    "sync_run_failed",
    "sync_run_recovered",
    "task_stalled",
    "connection_needs_reauth",
    "provider_credentials_rejected",
    "mass_delete_breaker_tripped",
    "conflict_parked",
    "message_quarantined",
    "message_dead_lettered",
    "rate_limit_fallback_engaged",
    "sync_completed",
    "connection_created",
    "connection_reauthorized",
];

/// The position of the event's kind in [`EVENT_KINDS`] (exhaustive match: a
/// new variant is a compile error here).
pub fn kind_index(event: &Event) -> usize {
    match event {
        Event::SyncRunFailed { .. } => 0,
        Event::SyncRunRecovered { .. } => 1,
        Event::TaskStalled { .. } => 2,
        Event::ConnectionNeedsReauth { .. } => 3,
        Event::ProviderCredentialsRejected { .. } => 4,
        Event::MassDeleteBreakerTripped { .. } => 5,
        Event::ConflictParked { .. } => 6,
        Event::MessageQuarantined { .. } => 7,
        Event::MessageDeadLettered { .. } => 8,
        Event::RateLimitFallbackEngaged { .. } => 9,
        Event::SyncCompleted { .. } => 10,
        Event::ConnectionCreated { .. } => 11,
        Event::ConnectionReauthorized { .. } => 12,
    }
}

fn ids(tenant: &str) -> (TenantId, ConnectionId, TaskId) {
    (
        TenantId::parse(tenant).expect("sample tenant id is valid"),
        ConnectionId::parse(format!("{tenant}-hubspot")).expect("sample connection id is valid"),
        TaskId::parse(format!("{tenant}-hubspot:contacts:inbound"))
            .expect("sample task id is valid"),
    )
}

/// One realistic event of every kind, in [`EVENT_KINDS`] order, for tenant
/// `tenant` where the kind has one. Used by `send_test` and the tests.
///
/// # Panics
///
/// When `tenant` is not a valid [`TenantId`].
pub fn sample_events_for(tenant: &str) -> Vec<Event> {
    let (t, c, k) = ids(tenant);
    vec![
        Event::SyncRunFailed {
            tenant: t.clone(),
            connection: c.clone(),
            task: k.clone(),
            error: "provider answered HTTP 503 <Service Unavailable> & gave up after 5 retries"
                .into(),
        },
        Event::SyncRunRecovered {
            tenant: t.clone(),
            connection: c.clone(),
            task: k.clone(),
        },
        Event::TaskStalled {
            tenant: t.clone(),
            connection: c.clone(),
            task: k.clone(),
            last_run_at: Some(Timestamp::from_millis(1_764_331_200_000)),
            interval_secs: 300,
        },
        Event::ConnectionNeedsReauth {
            tenant: t.clone(),
            connection: c.clone(),
            provider: "hubspot".into(),
            reason: "invalid_grant".into(),
        },
        Event::ProviderCredentialsRejected {
            provider: "hubspot".into(),
            reason: "invalid_client".into(),
        },
        Event::MassDeleteBreakerTripped {
            tenant: t.clone(),
            connection: c.clone(),
            task: k,
            deletes: 6_000,
            total: 10_000,
            max_share: 0.2,
        },
        Event::ConflictParked {
            tenant: t.clone(),
            connection: c.clone(),
            object: "contacts".into(),
            record: "1501".into(),
            fields: vec!["email".into(), "phone".into()],
        },
        Event::MessageQuarantined {
            source: "SyncInboundWorker".into(),
            message_id: Some("3f1c2a9e-job".into()),
            reason: "body is not a sync job: missing field `task`".into(),
        },
        Event::MessageDeadLettered {
            queue: "sync-inbound".into(),
            message_id: "acme-hubspot:contacts:inbound:v42".into(),
            reason: "MaxDeliveryCountExceeded".into(),
        },
        Event::RateLimitFallbackEngaged {
            provider: "*".into(),
            reason: "Redis unreachable: connection refused".into(),
        },
        Event::SyncCompleted {
            tenant: t.clone(),
            connection: c.clone(),
            object: "contacts".into(),
            run: RunId::parse(format!("{tenant}-hubspot:contacts:inbound:r1"))
                .expect("sample run id is valid"),
            status: "succeeded".into(),
            added: 120,
            updated: 7,
            deleted: 2,
            records_cursor: syncbridge_core::store::feed::cursor(
                &c,
                &syncbridge_core::ObjectType::parse("contacts").expect("valid object"),
                4_711,
            ),
        },
        Event::ConnectionCreated {
            tenant: t.clone(),
            connection: c.clone(),
            provider: "hubspot".into(),
        },
        Event::ConnectionReauthorized {
            tenant: t,
            connection: c,
            provider: "hubspot".into(),
        },
    ]
}

/// [`sample_events_for`] tenant `acme`.
pub fn sample_events() -> Vec<Event> {
    sample_events_for("acme")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The samples cover every kind exactly once, in `EVENT_KINDS` order, and names agree with `Event::kind`.
    #[test]
    fn samples_cover_every_kind() {
        let samples = sample_events();
        assert_eq!(samples.len(), EVENT_KINDS.len());
        for (i, e) in samples.iter().enumerate() {
            assert_eq!(kind_index(e), i);
            assert_eq!(EVENT_KINDS[kind_index(e)], e.kind());
        }
    }
}
