//! Shared harness of the end-to-end tests (`tests/*.rs` beside this file):
//! where the built handler binaries are, a local host over a temp data dir,
//! a sandbox provider (and a slowed one), a provider's signed webhook, and
//! a polling helper with a deadline. [`processes`]: the binaries as child
//! processes (the CLI, `syncbridge up` and handlers with their logs, free
//! ports, waiting for an answer, the leak scan's file search). [`fleet`]: the
//! connections and runs the API benchmarks seed, and the API they serve.
//!
//! The binaries must be built first (`cargo build --workspace --bins`, which
//! `scripts/test` does); a missing binary fails the test with that advice.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use syncbridge_core::model::{
    Connection, ConnectionStatus, Direction, Priority, SyncTask, WebhookSettings,
};
use syncbridge_core::{ConnectionId, ObjectType, Store, TenantId, Timestamp};
use syncbridge_localhost::{HostConfig, LocalHost, LocalHostHandle};
use syncbridge_sqlite::SqliteStore;

pub mod fleet;
pub mod processes;
pub mod provider_harness;

pub use processes::{
    Logged, answering, cli, files_holding, free_port, succeeded, syncbridge_cli,
    syncbridge_cli_with, text,
};

/// The repository root (host.json, functions/).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repo root")
}

/// `target/<profile>`, where cargo put the handler binaries.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    for b in [
        "sync-scheduler",
        "sync-inbound-worker",
        "sync-outbound-worker",
        "token-refresher",
        "webhook-receiver",
        "sync-api",
    ] {
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
        (
            "SYNCBRIDGE_DATA_DIR".to_string(),
            data_dir.display().to_string(),
        ),
        // Timers are fired by hand in tests; keep the schedules far apart.
        (
            "SYNC_SCHEDULER_SCHEDULE".to_string(),
            "0 0 0 1 1 *".to_string(),
        ),
        (
            "TOKEN_REFRESHER_SCHEDULE".to_string(),
            "0 0 0 1 1 *".to_string(),
        ),
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

/// Registers connection `id` to the sandbox at `base_url` with inbound tasks for `objects`
/// (and `webhook` settings, already sealed).
pub async fn add_connection(
    store: &dyn Store,
    id: &str,
    base_url: &str,
    objects: &[&str],
    webhook: Option<WebhookSettings>,
) -> Vec<SyncTask> {
    let conn = Connection {
        id: ConnectionId::parse(id).unwrap(),
        tenant: TenantId::parse("acme").unwrap(),
        provider: "sandbox".into(),
        status: ConnectionStatus::Active,
        base_url: Some(base_url.into()),
        webhook,
        settings: BTreeMap::new(),
        conflicts: Default::default(),
        created_at: Timestamp::from_millis(0),
    };
    store.put_connection(&conn).await.unwrap();
    let mut tasks = Vec::new();
    for o in objects {
        let t = inbound_task(
            &conn,
            ObjectType::parse(*o).unwrap(),
            Timestamp::from_millis(0),
        );
        store.put_task(&t).await.unwrap();
        tasks.push(t);
    }
    tasks
}

/// A fresh hourly inbound task of `conn` for `object`, due at `due`.
pub fn inbound_task(conn: &Connection, object: ObjectType, due: Timestamp) -> SyncTask {
    SyncTask {
        id: SyncTask::id_for(&conn.id, &object, Direction::Inbound),
        tenant: conn.tenant.clone(),
        connection: conn.id.clone(),
        object,
        direction: Direction::Inbound,
        priority: Priority::Scheduled,
        interval_secs: 3600,
        next_run_at: due,
        cursor: None,
        lease: None,
        last_run_at: None,
        stalled: false,
        version: 0,
        generation: 0,
    }
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
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A sandbox with `records` per object and no auth.
pub async fn sandbox(records: usize) -> syncbridge_sandbox::SandboxHandle {
    let cfg = syncbridge_sandbox::SandboxConfig {
        records_per_object: records,
        auth_enabled: false,
        ..Default::default()
    };
    syncbridge_sandbox::spawn(cfg)
        .await
        .expect("sandbox starts")
}

/// A sandbox with `records` per object and no auth that answers every call
/// `latency_ms` late (a seeded fault), so a sync lasts long enough for a
/// test to interrupt it.
pub async fn slow_sandbox(records: usize, latency_ms: u64) -> syncbridge_sandbox::SandboxHandle {
    let sbx = sandbox(records).await;
    pipeline::admin(
        &sbx.base_url(),
        "config",
        serde_json::json!({"faults": {"seed": 1, "latency_rate": 1.0, "latency_ms": latency_ms}}),
    )
    .await;
    sbx
}

/// GET `url` with bearer `key`: its JSON body (`None` if the call or the
/// body fails, so a poll can try again).
pub async fn get_json(http: &reqwest::Client, url: &str, key: &str) -> Option<serde_json::Value> {
    http.get(url)
        .bearer_auth(key)
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The Standard Webhooks headers a provider sends with `body` to `url`,
/// signed now with `secret` as message `msg_id`.
pub fn standard_webhook_headers(
    url: &str,
    body: &str,
    secret: &str,
    msg_id: &str,
) -> Vec<(String, String)> {
    let req = syncbridge_signatures::Request {
        method: "POST",
        url,
        headers: &[],
        body: body.as_bytes(),
    };
    syncbridge_signatures::sign(
        &syncbridge_signatures::Scheme::StandardWebhooks,
        &syncbridge_signatures::WebhookSecret::new(secret),
        &req,
        unix_now(),
        msg_id,
    )
    .unwrap()
}

/// A JSON `body` POSTed to `url` as a provider delivers it: signed now
/// ([`standard_webhook_headers`]) with `secret` as message `msg_id`.
pub fn signed_webhook_post(
    http: &reqwest::Client,
    url: &str,
    body: String,
    secret: &str,
    msg_id: &str,
) -> reqwest::RequestBuilder {
    let headers = standard_webhook_headers(url, &body, secret, msg_id);
    let mut rb = http
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    for (k, v) in headers {
        rb = rb.header(k, v);
    }
    rb
}

/// In-process pipeline harness: runs inbound jobs the way SyncInboundWorker
/// does, against a real SQLite store and a real sandbox over loopback.
pub mod pipeline {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::Duration;

    use syncbridge_core::connector::extract::extract_page;
    use syncbridge_core::connector::http::RetryPolicy;
    use syncbridge_core::connector::registry::Registry;
    use syncbridge_core::credentials::NoCredentials;
    use syncbridge_core::model::{JobReason, Lease, SyncJob, SyncRun, SyncTask};
    use syncbridge_core::pipeline::worker::{JobOutcome, WorkerDeps, handle_inbound_job};
    use syncbridge_core::ratelimit::Unlimited;
    use syncbridge_core::{Store, SystemClock};

    /// Worker dependencies over `store` with a quick retry policy.
    pub fn deps(store: Arc<dyn Store>, registry: Registry) -> WorkerDeps {
        WorkerDeps {
            store,
            registry: Arc::new(registry),
            limiter: Arc::new(Unlimited),
            credentials: Arc::new(NoCredentials),
            clock: Arc::new(SystemClock),
            http: reqwest::Client::new(),
            retry: RetryPolicy {
                max_attempts: 8,
                base_delay: Duration::from_millis(5),
                max_delay: Duration::from_millis(100),
                max_inline_wait: Duration::from_secs(5),
                timeout: Duration::from_secs(5),
            },
            lease_for: Duration::from_secs(600),
            events: Arc::new(syncbridge_core::events::NoEvents),
        }
    }

    /// Leases `task` and runs one inbound job for it, returning the run record.
    pub async fn run_once(deps: &WorkerDeps, task: &SyncTask) -> SyncRun {
        let t = deps.store.get_task(&task.id).await.unwrap().unwrap();
        let lease = Lease {
            token: format!("v{}", t.version),
            until: deps.clock.now().add(Duration::from_secs(600)),
        };
        assert!(
            deps.store
                .lease_task(&t.id, t.version, &lease)
                .await
                .unwrap()
        );
        let job = SyncJob {
            task: t.id.clone(),
            connection: t.connection.clone(),
            object: t.object.clone(),
            priority: t.priority,
            reason: JobReason::Manual,
            lease_token: lease.token,
        };
        match handle_inbound_job(deps, &job, &|_| {}).await.unwrap() {
            JobOutcome::Ran(run) => run,
            JobOutcome::Skipped(why) => panic!("job skipped: {why}"),
        }
    }

    /// What the store must hold for `object`: id → content hash of every live
    /// sandbox record, mapped by the shipped sandbox connector definition.
    pub async fn expected(base_url: &str, object: &str) -> BTreeMap<String, String> {
        let all: serde_json::Value = reqwest::get(format!("{base_url}/_sandbox/records/{object}"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let def = Registry::builtin().get("sandbox").unwrap();
        let page = extract_page(
            def.object(object).unwrap(),
            &serde_json::json!({ "results": all }),
            false,
        )
        .unwrap();
        page.upserts
            .into_iter()
            .map(|u| (u.external_id.to_string(), u.hash))
            .collect()
    }

    /// What the store holds: id → (hash, version).
    pub async fn actual(store: &dyn Store, task: &SyncTask) -> BTreeMap<String, (String, i64)> {
        let mut out = BTreeMap::new();
        let mut after = None;
        loop {
            let batch = store
                .list_records(&task.connection, &task.object, after.as_ref(), 5000)
                .await
                .unwrap();
            let Some(last) = batch.last() else { break };
            after = Some(last.external_id.clone());
            for r in batch {
                out.insert(r.external_id.to_string(), (r.hash, r.version));
            }
        }
        out
    }

    /// Asserts the store equals the sandbox exactly (ids and content).
    pub async fn assert_in_sync(store: &dyn Store, task: &SyncTask, base_url: &str) {
        let want = expected(base_url, task.object.as_str()).await;
        let have: BTreeMap<String, String> = actual(store, task)
            .await
            .into_iter()
            .map(|(k, (h, _))| (k, h))
            .collect();
        let missing: Vec<_> = want
            .keys()
            .filter(|k| !have.contains_key(*k))
            .take(5)
            .collect();
        let extra: Vec<_> = have
            .keys()
            .filter(|k| !want.contains_key(*k))
            .take(5)
            .collect();
        let differ: Vec<_> = want
            .iter()
            .filter(|(k, h)| have.get(*k).is_some_and(|x| x != *h))
            .map(|(k, _)| k)
            .take(5)
            .collect();
        assert!(
            missing.is_empty() && extra.is_empty() && differ.is_empty(),
            "store differs from sandbox: {} vs {} records; missing {missing:?}, extra {extra:?}, stale {differ:?}",
            have.len(),
            want.len()
        );
    }

    /// Posts JSON to a sandbox admin route.
    pub async fn admin(base_url: &str, route: &str, body: serde_json::Value) -> serde_json::Value {
        let c = reqwest::Client::new();
        let r = c
            .post(format!("{base_url}/_sandbox/{route}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "sandbox {route}: {}", r.status());
        r.json().await.unwrap()
    }
}
