//! The store contract (crates/syncbridge-store-contract) against SQLite files.

use std::sync::Arc;

use syncbridge_core::Store;
use syncbridge_sqlite::SqliteStore;

macro_rules! contract {
    ($($case:ident),* $(,)?) => {$(
        /// Contract case of the same name, on a fresh SQLite file.
        #[tokio::test]
        async fn $case() {
            let dir = tempfile::tempdir().unwrap();
            let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in(dir.path()).unwrap());
            syncbridge_store_contract::$case(store).await;
        }
    )*};
}

contract!(
    connections_crud,
    due_tasks_order_and_leases,
    page_commit_counts_and_versions,
    page_commit_requires_lease,
    runs_round_trip,
    webhook_dedup_window,
    webhook_batch_dedup,
    webhook_prune_keeps_window,
    quarantine_and_replay,
    credential_compare_and_swap,
    named_locks,
    write_record_compare_and_swap,
    audit_appended_once_per_key,
    due_pushes_oldest_first,
    local_changes_listed,
    page_commit_holds_local_and_skips_stale,
    run_requested_during_a_lease_survives_its_release,
    stall_candidates_and_batch_leases,
    api_keys_by_hash,
    connection_and_run_pages,
    connect_sessions_advance_once,
    connection_versions,
    function_beats,
    idempotency_keys,
    conflict_pages,
    audit_pages,
    run_stats_buckets,
    expiring_keys_pruned,
    notification_rules_versioned,
);

/// Reopening the file keeps every committed record and migrations are not re-run destructively.
#[tokio::test]
async fn state_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = SqliteStore::open_in(dir.path()).unwrap();
        s.put_connection(&syncbridge_store_contract::connection("c1", "t1"))
            .await
            .unwrap();
    }
    let s = SqliteStore::open_in(dir.path()).unwrap();
    assert_eq!(s.list_connections(None).await.unwrap().len(), 1);
}

/// What was tried: three events older than the window and one inside it,
/// pruned with a limit of 2, then again. What holds on SQLite (no TTL): the
/// old events go, oldest first and at most `limit` per call, the fresh one
/// stays and still dedups its redelivery, and an old key is accepted anew.
#[tokio::test]
async fn webhook_prune_removes_exactly_the_old_events() {
    use std::time::Duration;
    use syncbridge_core::model::WebhookEvent;
    use syncbridge_core::{ConnectionId, Timestamp};
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open_in(dir.path()).unwrap();
    let window = Duration::from_secs(600);
    let t0 = Timestamp::from_millis(1_700_000_000_000);
    let now = t0.add(Duration::from_secs(1000));
    let ev = |key: &str, at: Timestamp| WebhookEvent {
        connection: ConnectionId::parse("c1").unwrap(),
        dedup_key: key.into(),
        received_at: at,
        body: b"{}".to_vec(),
    };
    for (i, k) in ["a", "b", "c"].iter().enumerate() {
        let at = t0.add(Duration::from_secs(i as u64));
        assert!(
            s.insert_webhook_event(&ev(k, at), at.sub(window))
                .await
                .unwrap()
        );
    }
    let fresh = ev("fresh", now.sub(Duration::from_secs(5)));
    assert!(
        s.insert_webhook_event(&fresh, fresh.received_at.sub(window))
            .await
            .unwrap()
    );
    let cutoff = now.sub(window);
    assert_eq!(s.prune_webhook_events(cutoff, 2).await.unwrap(), 2);
    assert_eq!(s.prune_webhook_events(cutoff, 2).await.unwrap(), 1);
    assert_eq!(s.prune_webhook_events(cutoff, 2).await.unwrap(), 0);
    assert!(
        !s.insert_webhook_event(&fresh, now.sub(window))
            .await
            .unwrap(),
        "fresh kept"
    );
    assert!(
        s.insert_webhook_event(&ev("a", now), now.sub(window))
            .await
            .unwrap()
    );
}

macro_rules! feed_contract {
    ($($case:ident),* $(,)?) => {$(
        /// Records-feed contract case of the same name, on a fresh SQLite
        /// file stamping with the case's clock.
        #[tokio::test]
        async fn $case() {
            let dir = tempfile::tempdir().unwrap();
            let clock = Arc::new(syncbridge_core::ManualClock::new(syncbridge_core::Timestamp::EPOCH));
            let store = SqliteStore::open_in(dir.path()).unwrap().with_clock(clock.clone());
            syncbridge_store_contract::$case(Arc::new(store), clock).await;
        }
    )*};
}

feed_contract!(records_feed_page_commits, records_feed_record_writes);

/// Connect sessions a day past their expiry are deleted when the next
/// session is created (the only place they are made); a session expired
/// less than a day ago (its link still answers "expired") and live ones
/// are kept. Cosmos DB drops them by per-item TTL at the same age.
#[tokio::test]
async fn expired_connect_sessions_are_pruned() {
    use syncbridge_core::connect::SESSION_TTL;
    use syncbridge_store_contract::connect_session;
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_in(dir.path()).unwrap();
    let old = connect_session(1);
    let recent = connect_session(2);
    let recent = syncbridge_core::connect::ConnectSession {
        created_at: old.created_at.add(std::time::Duration::from_secs(3600)),
        expires_at: old.expires_at.add(std::time::Duration::from_secs(3600)),
        ..recent
    };
    store.create_connect_session(&old).await.unwrap();
    store.create_connect_session(&recent).await.unwrap();
    // A new session a day and a half hour after `old` expired: `old` is past
    // the day of grace, `recent` is not.
    let day = std::time::Duration::from_secs(86_400);
    let new = syncbridge_core::connect::ConnectSession {
        created_at: old
            .expires_at
            .add(day)
            .add(std::time::Duration::from_secs(1800)),
        expires_at: old.expires_at.add(day).add(SESSION_TTL),
        ..connect_session(3)
    };
    store.create_connect_session(&new).await.unwrap();
    assert_eq!(store.get_connect_session(&old.id).await.unwrap(), None);
    assert_eq!(
        store.get_connect_session(&recent.id).await.unwrap(),
        Some(recent)
    );
    assert_eq!(store.get_connect_session(&new.id).await.unwrap(), Some(new));
}
