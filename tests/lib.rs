//! Shared harness of the end-to-end tests (`tests/*.rs` beside this file):
//! where the built handler binaries are, a local host over a temp data dir,
//! a sandbox provider, and a polling helper with a deadline.
//!
//! The binaries must be built first (`cargo build --workspace --bins`, which
//! `scripts/test` does); a missing binary fails the test with that advice.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use syncbridge_core::model::{Connection, ConnectionStatus, Direction, Priority, SyncTask, WebhookSettings};
use syncbridge_core::{ConnectionId, ObjectType, SecretString, Store, TenantId, Timestamp};
use syncbridge_localhost::{HostConfig, LocalHost, LocalHostHandle};
use syncbridge_sqlite::SqliteStore;

/// The repository root (host.json, functions/).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().expect("repo root")
}

/// `target/<profile>`, where cargo put the handler binaries.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    for b in ["sync-scheduler", "sync-inbound-worker", "sync-outbound-worker", "token-refresher", "webhook-receiver"] {
        assert!(
            dir.join(b).is_file(),
            "handler binary {b} not found in {}: run `cargo build --workspace --bins` first (scripts/test does)",
            dir.display()
        );
    }
    dir
}

/// A local host config over `data_dir` running the real binaries.
pub fn host_config(data_dir: &Path) -> HostConfig {
    let root = repo_root();
    let mut cfg = HostConfig::new(&root, bin_dir(), data_dir);
    cfg.functions_dir = Some(root.join("functions"));
    cfg.env = BTreeMap::from([
        ("SYNCBRIDGE_DATA_DIR".to_string(), data_dir.display().to_string()),
        // Timers are fired by hand in tests; keep the schedules far apart.
        ("SYNC_SCHEDULER_SCHEDULE".to_string(), "0 0 0 1 1 *".to_string()),
        ("TOKEN_REFRESHER_SCHEDULE".to_string(), "0 0 0 1 1 *".to_string()),
    ]);
    cfg
}

/// Starts the local host.
pub async fn start_host(cfg: HostConfig) -> LocalHostHandle {
    LocalHost::start(cfg).await.expect("local host starts")
}

/// Opens the embedded store of `data_dir`.
pub fn store(data_dir: &Path) -> SqliteStore {
    SqliteStore::open_in(data_dir).expect("store opens")
}

/// Registers connection `id` to the sandbox at `base_url` with inbound tasks for `objects`.
pub async fn add_connection(
    store: &dyn Store,
    id: &str,
    base_url: &str,
    objects: &[&str],
    webhook: Option<(&str, &str)>,
) -> Vec<SyncTask> {
    let conn = Connection {
        id: ConnectionId::parse(id).unwrap(),
        tenant: TenantId::parse("acme").unwrap(),
        provider: "sandbox".into(),
        status: ConnectionStatus::Active,
        base_url: Some(base_url.into()),
        webhook: webhook.map(|(scheme, secret)| WebhookSettings {
            scheme: scheme.into(),
            secrets: vec![SecretString::new(secret)],
        }),
        settings: BTreeMap::new(),
        created_at: Timestamp::from_millis(0),
    };
    store.put_connection(&conn).await.unwrap();
    let mut tasks = Vec::new();
    for o in objects {
        let object = ObjectType::parse(*o).unwrap();
        let t = SyncTask {
            id: SyncTask::id_for(&conn.id, &object, Direction::Inbound),
            tenant: conn.tenant.clone(),
            connection: conn.id.clone(),
            object,
            direction: Direction::Inbound,
            priority: Priority::Scheduled,
            interval_secs: 3600,
            next_run_at: Timestamp::from_millis(0),
            cursor: None,
            lease: None,
            last_run_at: None,
            stalled: false,
            version: 0,
        };
        store.put_task(&t).await.unwrap();
        tasks.push(t);
    }
    tasks
}

/// Polls `cond` every 25 ms until it yields `Some`, failing the test with
/// `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut cond: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = cond().await {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A sandbox with `records` per object and no auth.
pub async fn sandbox(records: usize) -> syncbridge_sandbox::SandboxHandle {
    let cfg = syncbridge_sandbox::SandboxConfig { records_per_object: records, auth_enabled: false, ..Default::default() };
    syncbridge_sandbox::spawn(cfg).await.expect("sandbox starts")
}
