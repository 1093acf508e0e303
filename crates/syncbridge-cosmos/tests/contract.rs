//! The store contract (crates/syncbridge-store-contract) against Cosmos DB —
//! the SDK's in-memory emulator (`azure_data_cosmos_driver`, feature
//! `__internal_in_memory_emulator`, dev-dependency pinned to `=1.1.0-beta.1`).
//!
//! The emulator replaces only the HTTP transport at the bottom of the SDK
//! pipeline: `CosmosClient` → `ContainerClient` → driver (routing, session
//! tokens, retries, request signing) run for real, and the emulator answers
//! with Cosmos DB's status codes (409, 412, 424, 429 + `x-ms-retry-after-ms`),
//! ETags, query engine and transactional-batch limits. The database and
//! container are created through the SDK's control plane, like any client.
//!
//! What the emulator does not model (see docs/azure.md): TTL expiry (no
//! contract case depends on it — webhook dedup compares `received_at`),
//! indexing policies (the composite indexes are only exercised in Azure), RU
//! accounting beyond the opt-in throttling simulation.

use std::sync::Arc;
use std::time::Duration;

use azure_data_cosmos::models::ContainerProperties;
use azure_data_cosmos::options::{OperationOptionsBuilder, Region, ThrottlingRetryOptionsBuilder};
use azure_data_cosmos::{
    AccountEndpoint, AccountReference, CosmosClient, CosmosRuntimeBuilder, RoutingStrategy,
};
use azure_data_cosmos_driver::in_memory_emulator::{
    ContainerConfig, InMemoryEmulatorHttpClient, RequestObserver, VirtualAccountConfig,
    VirtualRegion,
};
use serde_json::json;
use syncbridge_core::model::{AuditRecord, Lease, Priority, content_hash};
use syncbridge_core::store::{PageCommit, RecordUpsert, RecordWrite};
use syncbridge_core::{ExternalId, Store, StoreError, Timestamp};
use syncbridge_cosmos::{CosmosStore, CosmosStoreOptions};

fn store_container_for_tests(s: &CosmosStore) -> azure_data_cosmos::clients::ContainerClient {
    s.container().clone()
}

const ENDPOINT: &str = "https://syncbridge-test.emulator.local/";

async fn emulator_client() -> CosmosClient {
    let config = VirtualAccountConfig::new(vec![VirtualRegion::new(
        "East US",
        ENDPOINT.parse().unwrap(),
    )])
    .unwrap();
    let emulator = Arc::new(InMemoryEmulatorHttpClient::new(config));
    let runtime = CosmosRuntimeBuilder::from(emulator.runtime_builder())
        .build()
        .await
        .unwrap();
    CosmosClient::builder()
        .with_runtime(runtime)
        .build(
            AccountReference::with_authentication_key(
                ENDPOINT.parse::<AccountEndpoint>().unwrap(),
                azure_core::credentials::Secret::new("dGVzdGtleQ=="),
            ),
            RoutingStrategy::ProximityTo(Region::EAST_US),
        )
        .await
        .unwrap()
}

/// A fresh emulated account with database `syncbridge` and container `state`
/// (partition key `/pk`, as infra/main.bicep declares it).
async fn fresh_with(options: CosmosStoreOptions) -> CosmosStore {
    let client = emulator_client().await;
    client.create_database("syncbridge", None).await.unwrap();
    client
        .database_client("syncbridge")
        .create_container(
            ContainerProperties::new("state".to_string(), "/pk".into()),
            None,
        )
        .await
        .unwrap();
    CosmosStore::from_client(&client, "syncbridge", "state", options)
        .await
        .unwrap()
}

async fn fresh() -> Arc<dyn Store> {
    Arc::new(fresh_with(CosmosStoreOptions::default()).await)
}

macro_rules! contract {
    ($($case:ident),* $(,)?) => {$(
        /// Contract case of the same name, on a fresh emulated Cosmos DB account.
        #[tokio::test]
        async fn $case() {
            syncbridge_store_contract::$case(fresh().await).await;
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

/// `run_all` too, so a case added to the contract runs here even before it is
/// listed above by name.
#[tokio::test]
async fn every_contract_case_via_run_all() {
    syncbridge_store_contract::run_all(fresh).await;
}

macro_rules! feed_contract {
    ($($case:ident),* $(,)?) => {$(
        /// Records-feed contract case of the same name, on a fresh emulated
        /// account stamping with the case's clock.
        #[tokio::test]
        async fn $case() {
            let clock = Arc::new(syncbridge_core::ManualClock::new(Timestamp::EPOCH));
            let store = fresh_with(CosmosStoreOptions::default()).await.with_clock(clock.clone());
            syncbridge_store_contract::$case(Arc::new(store), clock).await;
        }
    )*};
}

feed_contract!(records_feed_page_commits, records_feed_record_writes);

/// An emulated account whose container is provisioned at 400 RU/s (so the
/// throttling simulation has a budget), optionally with a request observer and
/// the SDK's own 429 retries off.
async fn provisioned(
    throttling: bool,
    observer: Option<Arc<dyn RequestObserver>>,
    options: CosmosStoreOptions,
) -> CosmosStore {
    let config = VirtualAccountConfig::new(vec![VirtualRegion::new(
        "East US",
        ENDPOINT.parse().unwrap(),
    )])
    .unwrap()
    .with_throttling_enabled(throttling);
    let mut emulator = InMemoryEmulatorHttpClient::new(config);
    if let Some(o) = observer {
        emulator = emulator.with_request_observer(o);
    }
    let emulator = Arc::new(emulator);
    let emu_store = emulator.store();
    emu_store.create_database("syncbridge");
    emu_store.create_container_with_config(
        "syncbridge",
        "state",
        serde_json::from_value(json!({ "paths": ["/pk"], "kind": "Hash", "version": 2 })).unwrap(),
        ContainerConfig::new()
            .with_partition_count(1)
            .with_throughput(400)
            .build()
            .unwrap(),
    );
    let runtime = CosmosRuntimeBuilder::from(emulator.runtime_builder())
        .build()
        .await
        .unwrap();
    let mut builder = CosmosClient::builder().with_runtime(runtime);
    if throttling {
        builder = builder.with_default_operation_options(
            OperationOptionsBuilder::new()
                .with_throttling_retry_options(
                    ThrottlingRetryOptionsBuilder::new()
                        .with_max_retry_count(0)
                        .build(),
                )
                .build(),
        );
    }
    let client = builder
        .build(
            AccountReference::with_authentication_key(
                ENDPOINT.parse::<AccountEndpoint>().unwrap(),
                azure_core::credentials::Secret::new("dGVzdGtleQ=="),
            ),
            RoutingStrategy::ProximityTo(Region::EAST_US),
        )
        .await
        .unwrap();
    CosmosStore::from_client(&client, "syncbridge", "state", options)
        .await
        .unwrap()
}

const T0: Timestamp = Timestamp::from_millis(1_764_000_000_000);

fn upsert(id: usize, name: &str, pad: usize) -> RecordUpsert {
    let data = json!({ "name": name, "pad": "x".repeat(pad) });
    RecordUpsert {
        external_id: ExternalId::parse(format!("r{id:05}")).unwrap(),
        hash: content_hash(&data),
        data,
        remote_updated_at: Some(T0),
    }
}

async fn leased_task(store: &CosmosStore, token: &str) -> syncbridge_core::model::SyncTask {
    let t = syncbridge_store_contract::task("c1", "contacts", Priority::Scheduled);
    store.put_task(&t).await.unwrap();
    let lease = Lease {
        token: token.into(),
        until: T0.add(Duration::from_secs(300)),
    };
    assert!(store.lease_task(&t.id, t.version, &lease).await.unwrap());
    store.get_task(&t.id).await.unwrap().unwrap()
}

/// A page larger than one transactional batch (250 records of ~10 kB: more
/// than 100 operations and more than the byte budget) commits in several
/// batches, counts exactly, and re-committing it changes nothing.
#[tokio::test]
async fn large_page_is_split_and_idempotent() {
    let store = fresh_with(CosmosStoreOptions {
        max_batch_bytes: 600_000,
        ..CosmosStoreOptions::default()
    })
    .await;
    let t = leased_task(&store, "L").await;
    let page = PageCommit {
        task: t.id.clone(),
        lease_token: "L".into(),
        connection: t.connection.clone(),
        object: t.object.clone(),
        upserts: (0..250).map(|i| upsert(i, "a", 10_000)).collect(),
        deletes: vec![],
        cursor: Some("p1".into()),
    };
    let out = store.commit_page(&page).await.unwrap();
    assert_eq!((out.created, out.updated, out.unchanged), (250, 0, 0));
    assert_eq!(
        store.count_records(&t.connection, &t.object).await.unwrap(),
        250
    );
    let task = store.get_task(&t.id).await.unwrap().unwrap();
    assert_eq!(task.cursor.as_deref(), Some("p1"));

    let again = store.commit_page(&page).await.unwrap();
    assert_eq!((again.created, again.updated, again.unchanged), (0, 0, 250));
    let r = store
        .get_record(
            &t.connection,
            &t.object,
            &ExternalId::parse("r00249").unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.version, 1, "an unchanged hash never bumps the version");
    let listed = store
        .list_records(
            &t.connection,
            &t.object,
            Some(&ExternalId::parse("r00247").unwrap()),
            10,
        )
        .await
        .unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|r| r.external_id.as_str())
            .collect::<Vec<_>>(),
        ["r00248", "r00249"]
    );
}

/// Calls back (and waits for it) when the emulator receives its `n`-th
/// transactional batch: a deterministic "something happens between two batches
/// of one page commit".
#[derive(Debug)]
struct OnBatch {
    n: usize,
    seen: std::sync::atomic::AtomicUsize,
    hit: std::sync::Mutex<Option<std::sync::mpsc::Sender<std::sync::mpsc::Sender<()>>>>,
}

impl RequestObserver for OnBatch {
    fn on_request(&self, request: &azure_core::http::Request) {
        let is_batch = request
            .headers()
            .get_optional_str(&azure_core::http::headers::HeaderName::from_static(
                "x-ms-cosmos-is-batch-request",
            ))
            .is_some();
        if !is_batch || self.seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 != self.n {
            return;
        }
        if let Some(tx) = self.hit.lock().unwrap().take() {
            let (done_tx, done_rx) = std::sync::mpsc::channel();
            if tx.send(done_tx).is_ok() {
                // Hold this batch until the take-over has been written.
                let _ = done_rx.recv_timeout(Duration::from_secs(10));
            }
        }
    }
}

/// A page split into several batches whose lease is taken over between two
/// batches: the next batch's guard (a read of the task with `If-Match`) fails
/// with 412, nothing after it is written, the cursor does not move, and the
/// caller hears `LeaseLost`. The take-over is injected deterministically when
/// the emulator receives the third batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_page_stops_when_the_lease_is_taken_over() {
    let (hit_tx, hit_rx) = std::sync::mpsc::channel();
    let observer = Arc::new(OnBatch {
        n: 3,
        seen: Default::default(),
        hit: std::sync::Mutex::new(Some(hit_tx)),
    });
    let store = Arc::new(
        provisioned(
            false,
            Some(observer.clone() as Arc<dyn RequestObserver>),
            CosmosStoreOptions {
                max_batch_ops: 12, // ten records + the sequence counter + the guard per batch
                ..CosmosStoreOptions::default()
            },
        )
        .await,
    );
    let t = leased_task(&store, "L").await;
    let page = PageCommit {
        task: t.id.clone(),
        lease_token: "L".into(),
        connection: t.connection.clone(),
        object: t.object.clone(),
        upserts: (0..40).map(|i| upsert(i, "a", 10)).collect(),
        deletes: vec![],
        cursor: Some("p1".into()),
    };
    // The take-over runs on its own thread and runtime while the third batch waits.
    let other = store.clone();
    let id = t.id.clone();
    let takeover = std::thread::spawn(move || {
        let done: std::sync::mpsc::Sender<()> = hit_rx.recv().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let took = rt.block_on(async {
            let current = other.get_task(&id).await.unwrap().unwrap();
            let lease = Lease {
                token: "L2".into(),
                until: T0.add(Duration::from_secs(600)),
            };
            other
                .lease_task(&id, current.version, &lease)
                .await
                .unwrap()
        });
        done.send(()).unwrap();
        took
    });
    let err = store.commit_page(&page).await.unwrap_err();
    assert!(takeover.join().unwrap(), "the take-over got the lease");
    assert!(matches!(err, StoreError::LeaseLost(_)), "got {err:?}");
    let after = store.get_task(&t.id).await.unwrap().unwrap();
    assert_eq!(after.cursor, None, "cursor untouched");
    assert_eq!(after.lease.unwrap().token, "L2");
    assert_eq!(
        store.count_records(&t.connection, &t.object).await.unwrap(),
        20,
        "the two batches before the take-over stay (ahead of the cursor), the rest were refused"
    );
}

/// Deletes and upserts of the same id within one page follow SQLite's
/// sequential semantics, and deleting absent ids counts nothing.
#[tokio::test]
async fn same_id_twice_in_a_page() {
    let store = fresh_with(CosmosStoreOptions::default()).await;
    let t = leased_task(&store, "L").await;
    let mut page = PageCommit {
        task: t.id.clone(),
        lease_token: "L".into(),
        connection: t.connection.clone(),
        object: t.object.clone(),
        upserts: vec![upsert(1, "a", 0), upsert(1, "b", 0), upsert(2, "a", 0)],
        deletes: vec![
            ExternalId::parse("r00002").unwrap(),
            ExternalId::parse("zz").unwrap(),
        ],
        cursor: Some("p1".into()),
    };
    let out = store.commit_page(&page).await.unwrap();
    assert_eq!((out.created, out.updated, out.deleted), (2, 1, 1));
    let r1 = store
        .get_record(
            &t.connection,
            &t.object,
            &ExternalId::parse("r00001").unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((r1.version, r1.data["name"].as_str()), (2, Some("b")));
    assert_eq!(
        store.count_records(&t.connection, &t.object).await.unwrap(),
        1
    );
    page.upserts = vec![upsert(1, "b", 0)];
    page.deletes = vec![];
    let out = store.commit_page(&page).await.unwrap();
    assert_eq!(out.unchanged, 1);
}

/// With the emulator's throttling simulation on (400 RU/s provisioned) and the
/// SDK's own throttling retries switched off, requests are answered 429 with
/// `x-ms-retry-after-ms`; the store waits as told and retries, and the contract
/// still holds.
#[tokio::test]
async fn throttled_account_still_keeps_the_contract() {
    let store = provisioned(
        true,
        None,
        CosmosStoreOptions {
            throttle_retries: 50,
            ..CosmosStoreOptions::default()
        },
    )
    .await;
    // Proof that throttling is live: a burst of large writes through the raw
    // SDK client (no store retries) is refused with 429.
    let raw = store_container_for_tests(&store);
    let big = json!({ "id": "seed", "pk": "c9", "pad": "x".repeat(200_000) });
    let mut saw_429 = false;
    for i in 0..20 {
        let mut doc = big.clone();
        doc["id"] = json!(format!("seed{i}"));
        if let Err(e) = raw.create_item("c9", &format!("seed{i}"), &doc, None).await {
            assert_eq!(u16::from(e.status().status_code()), 429, "{e}");
            saw_429 = true;
            break;
        }
    }
    assert!(saw_429, "the emulator throttles a burst at 400 RU/s");
    syncbridge_store_contract::page_commit_counts_and_versions(Arc::new(store)).await;
}

// ---- record writes (outbound sync) ------------------------------------------

fn rec(id: &str, name: &str, version: i64) -> syncbridge_core::model::Record {
    let data = json!({ "name": name });
    syncbridge_core::model::Record {
        connection: syncbridge_core::ConnectionId::parse("c1").unwrap(),
        object: syncbridge_core::ObjectType::parse("contacts").unwrap(),
        external_id: ExternalId::parse(id).unwrap(),
        hash: content_hash(&data),
        data,
        version,
        remote_updated_at: Some(T0),
        local: None,
    }
}

fn entry(r: &syncbridge_core::model::Record, key: &str, note: &str) -> AuditRecord {
    AuditRecord {
        key: key.into(),
        connection: r.connection.clone(),
        object: r.object.clone(),
        external_id: r.external_id.clone(),
        at: T0,
        entry: json!({ "note": note }),
    }
}

fn write(
    current: &syncbridge_core::model::Record,
    expect: Option<i64>,
    next: Option<syncbridge_core::model::Record>,
    audit: Vec<AuditRecord>,
) -> RecordWrite {
    RecordWrite {
        connection: current.connection.clone(),
        object: current.object.clone(),
        external_id: current.external_id.clone(),
        expect_version: expect,
        next,
        audit,
    }
}

/// A store whose `n`-th transactional batch waits while `interlude` runs
/// (on its own thread and runtime) against the same store: a deterministic
/// "another writer got in between the read and the batch".
async fn with_interlude<F, Fut>(n: usize, interlude: F) -> Arc<CosmosStore>
where
    F: FnOnce(Arc<CosmosStore>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let (hit_tx, hit_rx) = std::sync::mpsc::channel();
    let observer = Arc::new(OnBatch {
        n,
        seen: Default::default(),
        hit: std::sync::Mutex::new(Some(hit_tx)),
    });
    let store = Arc::new(
        provisioned(
            false,
            Some(observer as Arc<dyn RequestObserver>),
            CosmosStoreOptions::default(),
        )
        .await,
    );
    let other = store.clone();
    std::thread::spawn(move || {
        let Ok(done) = hit_rx.recv() else { return };
        let done: std::sync::mpsc::Sender<()> = done;
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(interlude(other));
        done.send(()).unwrap();
    });
    store
}

/// An audit key stored by another writer after this write looked its keys up
/// (so its create fails with 409 inside the batch): the batch rolls back, the
/// retry skips the key, and the record write still commits. The stored entry
/// is the other writer's, listed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_key_stored_concurrently_is_skipped() {
    let store = with_interlude(2, |s| async move {
        let other = rec("2", "b", 1);
        s.write_record(&write(
            &other,
            None,
            Some(other.clone()),
            vec![entry(&other, "k1", "theirs")],
        ))
        .await
        .unwrap();
    })
    .await;
    let r = rec("1", "a", 1);
    store
        .write_record(&write(&r, None, Some(r.clone()), vec![]))
        .await
        .unwrap(); // batch 1
    let next = rec("1", "a2", 2);
    store
        .write_record(&write(
            &r,
            Some(1),
            Some(next.clone()),
            vec![entry(&next, "k1", "ours"), entry(&next, "k2", "ours")],
        ))
        .await
        .unwrap(); // batch 2 waits for the interlude, fails with 409, is retried
    let got = store
        .get_record(&r.connection, &r.object, &r.external_id)
        .await
        .unwrap();
    assert_eq!(got, Some(next));
    let audit = store.list_audit(None, 10).await.unwrap();
    assert_eq!(
        audit
            .iter()
            .map(|a| (a.key.as_str(), a.entry["note"].as_str().unwrap()))
            .collect::<Vec<_>>(),
        [("k1", "theirs"), ("k2", "ours")]
    );
}

/// A concurrent write of the record between this write's read and its batch
/// (its `If-Match` fails with 412): the re-read finds another version, the
/// caller hears `Conflict`, and none of its audit entries is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_written_concurrently_is_a_conflict() {
    let store = with_interlude(2, |s| async move {
        let r = rec("1", "a", 1);
        s.write_record(&write(&r, Some(1), Some(rec("1", "theirs", 2)), vec![]))
            .await
            .unwrap();
    })
    .await;
    let r = rec("1", "a", 1);
    store
        .write_record(&write(&r, None, Some(r.clone()), vec![]))
        .await
        .unwrap();
    let err = store
        .write_record(&write(
            &r,
            Some(1),
            Some(rec("1", "ours", 2)),
            vec![entry(&r, "k-ours", "lost")],
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "got {err:?}");
    let got = store
        .get_record(&r.connection, &r.object, &r.external_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.data["name"], "theirs");
    assert!(store.list_audit(None, 10).await.unwrap().is_empty());
}

/// A move whose target appears between the check and the batch (its create
/// fails with 409): `Conflict`, the record stays at its old id, the target
/// is the other writer's, no audit entry is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn move_target_created_concurrently_is_a_conflict() {
    let store = with_interlude(2, |s| async move {
        let p1 = rec("p1", "pulled", 1);
        s.write_record(&write(&p1, None, Some(p1.clone()), vec![]))
            .await
            .unwrap();
    })
    .await;
    let x = rec("local:x", "ours", 1);
    store
        .write_record(&write(&x, None, Some(x.clone()), vec![]))
        .await
        .unwrap();
    let err = store
        .write_record(&write(
            &x,
            Some(1),
            Some(rec("p1", "ours", 2)),
            vec![entry(&x, "k-move", "lost")],
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "got {err:?}");
    let get = |id: &str| {
        let (s, id) = (store.clone(), ExternalId::parse(id).unwrap());
        let (c, o) = (x.connection.clone(), x.object.clone());
        async move {
            s.get_record(&c, &o, &id)
                .await
                .unwrap()
                .map(|r| r.data["name"].as_str().unwrap().to_owned())
        }
    };
    assert_eq!(get("local:x").await.as_deref(), Some("ours"));
    assert_eq!(get("p1").await.as_deref(), Some("pulled"));
    assert!(store.list_audit(None, 10).await.unwrap().is_empty());
}

/// A write whose audit entries cannot fit one transactional batch with the
/// record, or that carries an entry of another connection, is refused before
/// anything is sent (the write is one batch or nothing).
#[tokio::test]
async fn record_write_that_cannot_be_one_batch_is_refused() {
    let store = fresh().await;
    let r = rec("1", "a", 1);
    let many: Vec<_> = (0..99).map(|i| entry(&r, &format!("k{i}"), "x")).collect();
    let err = store
        .write_record(&write(&r, None, Some(r.clone()), many))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "got {err:?}");
    let mut foreign = entry(&r, "k", "x");
    foreign.connection = syncbridge_core::ConnectionId::parse("c2").unwrap();
    let err = store
        .write_record(&write(&r, None, Some(r.clone()), vec![foreign]))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "got {err:?}");
    assert_eq!(
        store
            .get_record(&r.connection, &r.object, &r.external_id)
            .await
            .unwrap(),
        None
    );
    assert!(store.list_audit(None, 10).await.unwrap().is_empty());
    let fits: Vec<_> = (0..98)
        .map(|i| entry(&r, &format!("k{i:02}"), "x"))
        .collect();
    store
        .write_record(&write(&r, None, Some(r.clone()), fits))
        .await
        .unwrap();
    assert_eq!(store.list_audit(None, 200).await.unwrap().len(), 98);
}

/// A connection's audit log outlives the connection (as in the SQLite store):
/// deleting the connection removes its records, not its audit entries.
#[tokio::test]
async fn audit_outlives_its_connection() {
    let store = fresh().await;
    store
        .put_connection(&syncbridge_store_contract::connection("c1", "t1"))
        .await
        .unwrap();
    let r = rec("1", "a", 1);
    store
        .write_record(&write(&r, None, Some(r.clone()), vec![entry(&r, "k", "x")]))
        .await
        .unwrap();
    assert!(store.delete_connection(&r.connection).await.unwrap());
    assert_eq!(
        store
            .get_record(&r.connection, &r.object, &r.external_id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .list_audit(Some(&r.connection), 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

/// A record that gains a local state between a page commit's read and its
/// batch (the replace's `If-Match` fails with 412): the re-read holds it, so
/// the page neither overwrites the local change nor loses its cursor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_changed_locally_during_a_page_commit_is_held() {
    let store = with_interlude(2, |s| async move {
        let c = syncbridge_core::ConnectionId::parse("c1").unwrap();
        let o = syncbridge_core::ObjectType::parse("contacts").unwrap();
        let id = ExternalId::parse("r00001").unwrap();
        let mut r = s.get_record(&c, &o, &id).await.unwrap().unwrap();
        let mut next = r.clone();
        next.version += 1;
        next.local = Some(
            serde_json::from_value(
                json!({ "base": r.data, "local_updated_at": T0, "push_due_at": T0 }),
            )
            .unwrap(),
        );
        next.data = json!({ "name": "ours" });
        next.hash = content_hash(&next.data);
        r.local = None;
        s.write_record(&write(&r, Some(r.version), Some(next), vec![]))
            .await
            .unwrap();
    })
    .await;
    let t = leased_task(&store, "L").await;
    let mut page = PageCommit {
        task: t.id.clone(),
        lease_token: "L".into(),
        connection: t.connection.clone(),
        object: t.object.clone(),
        upserts: vec![upsert(1, "a", 0)],
        deletes: vec![],
        cursor: Some("p1".into()),
    };
    store.commit_page(&page).await.unwrap(); // batch 1
    page.upserts = vec![upsert(1, "theirs", 0)];
    page.cursor = Some("p2".into());
    let out = store.commit_page(&page).await.unwrap(); // batch 2: 412, re-read
    assert_eq!((out.updated, out.held), (0, 1), "{out:?}");
    let r = store
        .get_record(
            &t.connection,
            &t.object,
            &ExternalId::parse("r00001").unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((r.data["name"].as_str(), r.version), (Some("ours"), 2));
    assert!(r.local.is_some());
    let task = store.get_task(&t.id).await.unwrap().unwrap();
    assert_eq!(task.cursor.as_deref(), Some("p2"));
}
