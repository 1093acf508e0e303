//! Recovery of the whole local deployment: `syncbridge up` killed with
//! SIGKILL in the middle of a sync, and a store that runs out of space.
//!
//! Both run the real binaries (the `syncbridge` CLI, the five handlers)
//! against the sandbox provider over loopback. The scheduler's timer is parked
//! far in the future and the first job is enqueued the way the scheduler
//! enqueues it (lease `v0`, `MessageId` `<task>:v0`), so whatever finishes the
//! sync after the fault is the recovery path itself, not a later tick.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use syncbridge_core::model::{JobReason, Lease, RunStatus, SyncJob, SyncTask};
use syncbridge_core::{Clock, OutboundMessage, QueueName, Store, SystemClock};
use syncbridge_localqueue::LocalQueue;
use syncbridge_tests::pipeline::{actual, assert_in_sync};
use syncbridge_tests::{
    add_connection, bin_dir, eventually, free_port, host_config, repo_root, sandbox, slow_sandbox,
    start_host, store,
};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A timer schedule that does not fire during a test (1 January, midnight).
const PARKED: &str = "0 0 0 1 1 *";

/// Leases `task` as a scheduler tick would and returns the job it would enqueue.
async fn lease_like_the_scheduler(store: &dyn Store, task: &SyncTask) -> SyncJob {
    let lease = Lease {
        token: "v0".into(),
        until: SystemClock.now().add(Duration::from_secs(900)),
    };
    assert!(store.lease_task(&task.id, 0, &lease).await.unwrap());
    SyncJob {
        task: task.id.clone(),
        connection: task.connection.clone(),
        object: task.object.clone(),
        priority: task.priority,
        reason: JobReason::Scheduled,
        lease_token: lease.token,
    }
}

fn job_message(job: &SyncJob) -> OutboundMessage {
    OutboundMessage::json(QueueName::inbound(), job.message_id(), job)
}

/// Whether process `pid` still runs (a zombie waiting to be reaped does not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim().to_string()))
        .is_some_and(|rest| !rest.starts_with('Z') && !rest.starts_with('X'))
}

/// The running children of `pid` (Linux `/proc`).
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(child) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let ppid = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok());
        if ppid == Some(pid) && alive(child) {
            out.push(child);
        }
    }
    out
}

/// `syncbridge up` as a user runs it, on `data_dir`, with both timers parked.
struct Up {
    child: Child,
    pid: u32,
}

impl Up {
    /// Starts it and waits until it printed that every handler is up.
    async fn start(data_dir: &Path) -> Up {
        let mut child = Command::new(bin_dir().join("syncbridge"))
            .args(["up", "--http-port", &free_port().to_string(), "--app-root"])
            .arg(repo_root())
            .env("SYNCBRIDGE_DATA_DIR", data_dir)
            .env("SYNC_SCHEDULER_SCHEDULE", PARKED)
            .env("TOKEN_REFRESHER_SCHEDULE", PARKED)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("syncbridge up starts");
        let pid = child.id().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let started = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.starts_with("webhooks:") {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(started.ok(), Some(true), "syncbridge up did not come up");
        // Keep reading so `up` never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Up { child, pid }
    }
}

/// kill -9 of `syncbridge up` in the middle of a sync: no handler of the killed
/// host survives it, and after a restart the interrupted delivery is handed
/// out again at once (its lock is taken back from the dead host) and resumes
/// its own run under its own lease from the committed cursor — no scheduler
/// tick, no lease expiry. The interrupted run record is closed as
/// `interrupted`, the sync ends equal to the sandbox with every record written
/// once, and SIGTERM stops the second `up` cleanly with its handlers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_of_up_resumes_and_leaves_no_orphans() {
    const N: usize = 3000;
    // 40 ms per provider call: a pass (30 pages) lasts over a second, so
    // the kill lands inside it.
    let sbx = slow_sandbox(N, 40).await;
    let base = sbx.base_url();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(store(dir.path()));
    let task = add_connection(&*store, "c1", &base, &["contacts"], None)
        .await
        .remove(0);
    let job = lease_like_the_scheduler(&*store, &task).await;
    LocalQueue::open(dir.path().join("queue.db"))
        .unwrap()
        .enqueue(&[job_message(&job)])
        .unwrap();

    let mut first = Up::start(dir.path()).await;
    let handlers = children_of(first.pid);
    assert_eq!(
        handlers.len(),
        6,
        "six handler processes (the five functions and SyncApi): {handlers:?}"
    );
    let n = N as u64;
    eventually(
        Duration::from_secs(60),
        "the first run to commit a page",
        || {
            let store = store.clone();
            let task = task.clone();
            async move {
                let c = store
                    .count_records(&task.connection, &task.object)
                    .await
                    .unwrap();
                (c > 0 && c < n).then_some(())
            }
        },
    )
    .await;
    first.child.start_kill().unwrap();
    first.child.wait().await.unwrap();
    eventually(
        Duration::from_secs(10),
        "every handler of the killed host to exit",
        || {
            let left: Vec<u32> = handlers.iter().copied().filter(|p| alive(*p)).collect();
            async move { left.is_empty().then_some(()) }
        },
    )
    .await;
    let t = store.get_task(&task.id).await.unwrap().unwrap();
    assert_eq!(
        t.lease.as_ref().map(|l| l.token.as_str()),
        Some("v0"),
        "the kill interrupted the run"
    );

    let mut second = Up::start(dir.path()).await;
    // Well inside one scheduler tick (a minute); the timer is parked anyway.
    eventually(
        Duration::from_secs(60),
        "the interrupted sync to finish",
        || {
            let store = store.clone();
            let task = task.clone();
            async move {
                let t = store.get_task(&task.id).await.unwrap().unwrap();
                t.lease.is_none().then_some(())
            }
        },
    )
    .await;
    assert_in_sync(&*store, &task, &base).await;
    assert!(
        actual(&*store, &task).await.values().all(|(_, v)| *v == 1),
        "a record was written twice"
    );
    let runs = store.list_runs(Some(&task.id), 10).await.unwrap();
    let statuses: Vec<RunStatus> = runs.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [RunStatus::Succeeded, RunStatus::Interrupted],
        "{runs:#?}"
    );
    assert!(
        runs[1]
            .error
            .as_deref()
            .is_some_and(|e| e.contains(runs[0].id.as_str())),
        "the interrupted run names its successor: {runs:#?}"
    );

    // SIGTERM stops `up` like Ctrl-C: exit 0, handlers gone.
    let handlers = children_of(second.pid);
    assert_eq!(handlers.len(), 6);
    let term = std::process::Command::new("kill")
        .args(["-TERM", &second.pid.to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = tokio::time::timeout(Duration::from_secs(30), second.child.wait())
        .await
        .expect("up stops on SIGTERM")
        .unwrap();
    assert!(status.success(), "up exited with {status}");
    assert!(
        handlers.iter().all(|p| !alive(*p)),
        "handlers left after SIGTERM"
    );
}

/// Rows the test writes into the store's file to take its space, as another
/// program filling the disk would.
struct Filler {
    db: rusqlite::Connection,
}

impl Filler {
    /// Grows `state.db` with filler rows until it has at least `pages` pages.
    fn fill(path: &Path, pages: u64) -> Filler {
        let mut db = rusqlite::Connection::open(path).unwrap();
        db.busy_timeout(Duration::from_secs(10)).unwrap();
        db.execute_batch("CREATE TABLE IF NOT EXISTS fault_filler (b BLOB)")
            .unwrap();
        let tx = db.transaction().unwrap();
        loop {
            let n: u64 = tx.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
            if n >= pages {
                break;
            }
            tx.execute("INSERT INTO fault_filler (b) VALUES (zeroblob(3000))", [])
                .unwrap();
        }
        tx.commit().unwrap();
        Filler { db }
    }

    /// Frees the space: the pages go to the file's free list, which writers reuse.
    fn free(&self) {
        self.db.execute("DELETE FROM fault_filler", []).unwrap();
    }
}

fn state_db(dir: &Path) -> PathBuf {
    dir.join("state.db")
}

/// A full disk while a sync runs: with `state.db` out of space (SQLite's own
/// "database or disk is full", through the fault-injection page cap the
/// handlers get) the worker's job comes back as scheduled retries with growing
/// delays instead of burning its deliveries into the dead-letter queue, and the
/// task keeps its lease for that job. Once space returns, the next retry
/// resumes the run: the sync converges within a minute, nothing is
/// dead-lettered, and the runs the full disk cut short are closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_backs_off_and_converges_when_space_returns() {
    const N: usize = 1500;
    let sbx = sandbox(N).await;
    let base = sbx.base_url();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(store(dir.path()));
    let task = add_connection(&*store, "c1", &base, &["contacts"], None)
        .await
        .remove(0);
    let job = lease_like_the_scheduler(&*store, &task).await;
    // The "disk": whatever the file has now plus 300 pages, all taken by filler.
    let size: u64 = rusqlite::Connection::open(state_db(dir.path()))
        .unwrap()
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    let cap = size + 300;
    let filler = Filler::fill(&state_db(dir.path()), cap);

    let mut cfg = host_config(dir.path());
    cfg.env
        .insert("SYNCBRIDGE_FAULT_STORE_MAX_PAGES".into(), cap.to_string());
    let host = start_host(cfg).await;
    host.queue.enqueue(&[job_message(&job)]).unwrap();

    // Two retries scheduled means two failed runs, each acknowledged, none hot.
    let retry2 = format!("{}:r2", job.message_id());
    eventually(Duration::from_secs(30), "the second store retry", || {
        let seen = host
            .queue
            .peek("sync-inbound")
            .unwrap()
            .iter()
            .any(|m| m.message_id == retry2 && m.scheduled_enqueue_time.is_some());
        async move { seen.then_some(()) }
    })
    .await;
    assert!(host.queue.dead_letters("sync-inbound").unwrap().is_empty());
    assert!(
        store
            .count_records(&task.connection, &task.object)
            .await
            .unwrap()
            < N as u64,
        "the full store took a whole sync"
    );
    let t = store.get_task(&task.id).await.unwrap().unwrap();
    assert_eq!(t.lease.map(|l| l.token), Some("v0".to_string()));

    filler.free();
    let freed = Instant::now();
    eventually(
        Duration::from_secs(60),
        "the sync to converge after space returned",
        || {
            let store = store.clone();
            let task = task.clone();
            async move {
                let t = store.get_task(&task.id).await.unwrap().unwrap();
                t.lease.is_none().then_some(())
            }
        },
    )
    .await;
    let took = freed.elapsed();
    assert_in_sync(&*store, &task, &base).await;
    assert!(host.queue.dead_letters("sync-inbound").unwrap().is_empty());
    let runs = store.list_runs(Some(&task.id), 50).await.unwrap();
    assert_eq!(runs[0].status, RunStatus::Succeeded, "{runs:#?}");
    assert!(
        runs.iter().all(|r| r.status != RunStatus::Running),
        "a run cut short by the full disk is still open: {runs:#?}"
    );
    println!(
        "converged {:.1} s after space returned, {} run(s)",
        took.as_secs_f64(),
        runs.len()
    );
    host.shutdown().await;
}

/// A webhook-started run whose worker died resumes on the redelivery of its
/// job: the lease it took is recognised as its own (its token comes from the
/// event), so the redelivery runs at once instead of being told the task is
/// busy until the lease expires; the run left "running" is closed as
/// `interrupted`. A follow-up for another event while the lease is live is
/// still turned into a requested run, not a second concurrent run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivered_webhook_job_resumes_its_own_run() {
    use syncbridge_core::connector::registry::Registry;
    use syncbridge_core::model::{Priority, SyncRun};
    use syncbridge_core::pipeline::worker::{JobOutcome, handle_inbound_job, webhook_lease_token};
    use syncbridge_core::{RunId, Timestamp};
    let sbx = sandbox(300).await;
    let base = sbx.base_url();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(store(dir.path()));
    let task = add_connection(&*store, "c1", &base, &["contacts"], None)
        .await
        .remove(0);
    let deps = syncbridge_tests::pipeline::deps(store.clone(), Registry::builtin());
    let webhook_job = |event: &str| SyncJob {
        task: task.id.clone(),
        connection: task.connection.clone(),
        object: task.object.clone(),
        priority: Priority::WebhookFollowUp,
        reason: JobReason::Webhook {
            event: event.into(),
        },
        lease_token: String::new(),
    };
    // What the first delivery left when its worker was killed: the lease it
    // took, live for another 10 minutes, and its run record still "running".
    let token = webhook_lease_token("evt-1");
    let lease = Lease {
        token: token.clone(),
        until: SystemClock.now().add(Duration::from_secs(600)),
    };
    assert!(store.lease_task(&task.id, 0, &lease).await.unwrap());
    let dead = SyncRun {
        id: RunId::parse(format!("{}@{token}-1", task.id)).unwrap(),
        task: task.id.clone(),
        connection: task.connection.clone(),
        started_at: Timestamp::from_millis(1),
        finished_at: None,
        status: RunStatus::Running,
        counts: Default::default(),
        error: None,
    };
    store.put_run(&dead).await.unwrap();

    // Another event's follow-up meanwhile: the task is busy, a run is requested.
    let other = handle_inbound_job(&deps, &webhook_job("evt-2"), &|_| {})
        .await
        .unwrap();
    assert!(matches!(other, JobOutcome::Skipped(_)), "{other:?}");

    // The redelivery of evt-1's job resumes the run.
    let outcome = handle_inbound_job(&deps, &webhook_job("evt-1"), &|_| {})
        .await
        .unwrap();
    let JobOutcome::Ran(run) = outcome else {
        panic!("the redelivery did not run: {outcome:?}");
    };
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_in_sync(&*store, &task, &base).await;
    let runs = store.list_runs(Some(&task.id), 10).await.unwrap();
    let closed = runs.iter().find(|r| r.id == dead.id).unwrap();
    assert_eq!(closed.status, RunStatus::Interrupted);
    assert!(closed.finished_at.is_some());
}
