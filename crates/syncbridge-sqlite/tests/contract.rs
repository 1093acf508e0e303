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
    quarantine_and_replay,
    credential_compare_and_swap,
    named_locks,
    write_record_compare_and_swap,
    audit_appended_once_per_key,
    due_pushes_oldest_first,
    local_changes_listed,
    page_commit_holds_local_and_skips_stale,
    run_requested_during_a_lease_survives_its_release,
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
