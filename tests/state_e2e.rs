//! The data dir under a hostile environment, with the real binaries (issue
//! 14): a fresh data dir opened by all five handlers at once, the CLI writing
//! beside a running `syncbridge up`, `state.db` deleted under running
//! handlers, a connection removed and added again, and a custom connector
//! definition used through the CLI.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use syncbridge_core::model::RunStatus;
use syncbridge_core::{ConnectionId, ObjectType, QueueName, Store};
use syncbridge_sqlite::{SCHEMA_VERSION, SqliteStore};
use syncbridge_tests::*;
use tokio::io::{AsyncBufReadExt, BufReader};

const HANDLERS: [&str; 5] = [
    "sync-scheduler",
    "sync-inbound-worker",
    "sync-outbound-worker",
    "token-refresher",
    "webhook-receiver",
];
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Runs the real `syncbridge` CLI on `data_dir`.
fn cli(data_dir: &Path, args: &[&str]) -> Output {
    std::process::Command::new(bin_dir().join("syncbridge"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("SYNCBRIDGE_CONNECTORS_DIR")
        .output()
        .expect("syncbridge runs")
}

/// Starts one handler binary on a fresh port and reads its log until it says
/// it is serving (`Ok`) or it exits (`Err` with everything it wrote). A
/// port picked free can be taken by another test's process before the
/// handler binds it: that start is retried on a new port (at most twice),
/// because it says nothing about the store; every other failure counts.
async fn start_handler(
    bin: &'static str,
    data_dir: std::path::PathBuf,
) -> (tokio::process::Child, Result<(), String>) {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (child, ready) = start_handler_once(bin, data_dir.clone()).await;
        match &ready {
            Err(e) if e.contains("Address already in use") && attempt < 3 => continue,
            _ => return (child, ready),
        }
    }
}

async fn start_handler_once(
    bin: &'static str,
    data_dir: std::path::PathBuf,
) -> (tokio::process::Child, Result<(), String>) {
    let mut child = tokio::process::Command::new(bin_dir().join(bin))
        .env(syncbridge_protocol::PORT_ENV, free_port().to_string())
        .env("SYNCBRIDGE_DATA_DIR", &data_dir)
        .env("SYNCBRIDGE_LOG_FORMAT", "text")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("handler starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    let ready = tokio::time::timeout(Duration::from_secs(120), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("custom handler listening") {
                return Ok(());
            }
            seen.push_str(&line);
            seen.push('\n');
        }
        Err(format!("{bin} exited before serving:\n{seen}"))
    })
    .await
    .unwrap_or_else(|_| Err(format!("{bin} did not start within 120 s")));
    (child, ready)
}

/// What was tried: 50 fresh data dirs, each started by all five real handler
/// binaries at once (what `syncbridge up` does on a new data dir), each with
/// its own `FUNCTIONS_CUSTOMHANDLER_PORT`, until every one serves. What
/// holds: 0 of the 250 starts fail, and every `state.db` ends at the latest
/// schema version. Before the fix, about 1 start in 4 failed (`duplicate
/// column name: local`, or "database is locked" from the migration or from
/// switching the new file to WAL), and a process reading a stale version
/// could set it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fresh_data_dir_started_by_all_handlers_at_once() {
    const DIRS: usize = 50;
    let mut failures = Vec::new();
    for round in 0..DIRS {
        let dir = tempfile::tempdir().unwrap();
        let starts = HANDLERS.map(|h| start_handler(h, dir.path().to_path_buf()));
        let started = futures_join_all(starts).await;
        let mut children = Vec::new();
        for (child, ready) in started {
            if let Err(e) = ready {
                failures.push(format!("dir {round}: {e}"));
            }
            children.push(child);
        }
        for mut c in children {
            let _ = c.kill().await;
        }
        // Read as the handlers left it (opening a store would migrate it).
        let version: i64 = rusqlite::Connection::open(dir.path().join("state.db"))
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        if version != SCHEMA_VERSION {
            failures.push(format!("dir {round}: schema version {version}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} handler starts failed; first: {}",
        failures.len(),
        DIRS * HANDLERS.len(),
        failures[0]
    );
}

/// Awaits every future (in parallel, on the runtime).
async fn futures_join_all<F, T>(futs: [F; 5]) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

/// Sends SIGINT (what Ctrl-C sends) to `pid` and waits for it to exit.
async fn interrupt(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status();
    }
    if tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

/// What was tried: `syncbridge up` (the five handlers under the local host,
/// the scheduler ticking every 2 s) pulls 100,000 sandbox contacts while the
/// CLI, in another process, writes in a loop: `connections add` and
/// `connections remove` of other connections, and `changes submit` on
/// contacts already pulled (each push then goes through the outbound
/// worker). What holds: every CLI command succeeds, no output of the CLI or
/// of `up` mentions "database is locked", and the pull completes with all
/// 100,000 records. Before the fix, write transactions began deferred, and a
/// writer that had read could not wait for the lock.
#[allow(clippy::too_many_lines, reason = "a test scenario: tests are exempt")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cli_writes_beside_up_syncing_100k_records() {
    const RECORDS: usize = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sbx = sandbox(RECORDS).await;
    let base = sbx.base_url();
    let add = cli(
        d,
        &[
            "connections",
            "add",
            "--tenant",
            "acme",
            "--id",
            "main",
            "--provider",
            "sandbox",
            "--base-url",
            &base,
            "--objects",
            "contacts",
            "--interval-secs",
            "3600",
        ],
    );
    assert!(add.status.success(), "{}", text(&add));
    let log = d.join("up.log");
    let mut up = tokio::process::Command::new(bin_dir().join("syncbridge"))
        .arg("--data-dir")
        .arg(d)
        .args(["up", "--http-port", &free_port().to_string()])
        .env("SYNC_SCHEDULER_SCHEDULE", "*/2 * * * * *")
        .env("TOKEN_REFRESHER_SCHEDULE", "0 0 0 1 1 *")
        .env_remove("SYNCBRIDGE_CONNECTORS_DIR")
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(d.join("up.err")).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let store = SqliteStore::open_in(d).unwrap();
    let (conn, contacts) = (
        ConnectionId::parse("main").unwrap(),
        ObjectType::parse("contacts").unwrap(),
    );
    let mut failures = Vec::new();
    let (mut commands, mut submits) = (0, 0);
    let started = std::time::Instant::now();
    let done = loop {
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "the pull did not finish in 15 minutes"
        );
        let extra = format!("extra-{commands}");
        let d2 = d.to_path_buf();
        let base2 = base.clone();
        let count = store.count_records(&conn, &contacts).await.unwrap();
        let outs = tokio::task::spawn_blocking(move || {
            let mut outs = vec![
                cli(
                    &d2,
                    &[
                        "connections",
                        "add",
                        "--tenant",
                        "other",
                        "--id",
                        &extra,
                        "--provider",
                        "sandbox",
                        "--base-url",
                        &base2,
                        "--objects",
                        "deals",
                        "--interval-secs",
                        "3600",
                    ],
                ),
                cli(&d2, &["connections", "remove", "--id", &extra]),
            ];
            if count > 0 {
                // Contacts are pulled in id order: 1 is there once any is.
                let phone = format!("phone=+1 555 {count:07}");
                outs.push(cli(
                    &d2,
                    &[
                        "changes",
                        "submit",
                        "--connection",
                        "main",
                        "--object",
                        "contacts",
                        "--id",
                        "1",
                        "--set",
                        &phone,
                    ],
                ));
            }
            outs
        })
        .await
        .unwrap();
        for o in &outs {
            commands += 1;
            if !o.status.success() || text(o).contains("locked") {
                failures.push(text(o));
            }
        }
        submits += usize::from(outs.len() == 3);
        let runs = store
            .list_runs(
                Some(&syncbridge_core::TaskId::parse("main:contacts:inbound").unwrap()),
                5,
            )
            .await
            .unwrap();
        if let Some(r) = runs.iter().find(|r| r.status == RunStatus::Succeeded) {
            break r.clone();
        }
    };
    interrupt(&mut up).await;
    let up_log = format!(
        "{}{}",
        std::fs::read_to_string(&log).unwrap_or_default(),
        std::fs::read_to_string(d.join("up.err")).unwrap_or_default()
    );
    assert!(
        failures.is_empty(),
        "{} of {commands} CLI commands failed; first: {}",
        failures.len(),
        failures[0]
    );
    let locked: Vec<&str> = up_log
        .lines()
        .filter(|l| l.contains("database is locked"))
        .collect();
    assert!(
        locked.is_empty(),
        "{} lines of `up` say locked: {:?}",
        locked.len(),
        &locked[..locked.len().min(3)]
    );
    assert!(submits > 0, "some changes were submitted during the pull");
    assert_eq!(done.counts.created as usize, RECORDS, "{done:?}");
    assert_eq!(
        store.count_records(&conn, &contacts).await.unwrap() as usize,
        RECORDS
    );
}

fn signed_webhook(url: &str, id: &str) -> reqwest::RequestBuilder {
    let body =
        format!(r#"{{"id":"{id}","type":"contact.updated","object":"contacts","objectId":"1"}}"#);
    signed_webhook_post(
        &reqwest::Client::new(),
        url,
        body,
        SECRET,
        &format!("msg_{id}"),
    )
}

/// What was tried: the handlers run under the local host, a webhook is
/// accepted, then `state.db` (with its WAL and shared-memory files) is
/// deleted while they run, and more webhooks arrive; then the read-only CLI
/// commands run on the now empty data dir. What holds: the webhooks after
/// the deletion are answered 5xx (the provider keeps them and retries), never
/// 202 for an event written to a file nobody will open again; the CLI's
/// `connections list`, `runs`, `quarantine list` and `changes list` each say
/// that there is no state.db and exit non-zero, and none of them creates one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_state_db_fails_loudly_and_is_not_recreated_by_reads() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let add = cli(
        d,
        &[
            "connections",
            "add",
            "--tenant",
            "acme",
            "--id",
            "conn1",
            "--provider",
            "sandbox",
            "--base-url",
            "http://127.0.0.1:9",
            "--objects",
            "contacts",
            "--webhook-scheme",
            "standard-webhooks",
            "--webhook-secret",
            SECRET,
        ],
    );
    assert!(add.status.success(), "{}", text(&add));
    let host = start_host(host_config(d)).await;
    let url = format!("{}/api/webhooks/conn1", host.url());
    let first = signed_webhook(&url, "evt_before").send().await.unwrap();
    assert_eq!(first.status().as_u16(), 202);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(d.join(format!("state.db{suffix}")));
    }
    for i in 0..3 {
        let r = signed_webhook(&url, &format!("evt_after_{i}"))
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_server_error(),
            "a webhook after state.db was deleted was answered {}",
            r.status()
        );
    }
    host.shutdown().await;
    assert!(!d.join("state.db").exists());
    for args in [
        &["connections", "list"][..],
        &["runs"],
        &["quarantine", "list"],
        &["changes", "list"],
    ] {
        let out = cli(d, args);
        assert!(!out.status.success(), "{args:?}: {}", text(&out));
        assert!(
            text(&out).contains("no state.db"),
            "{args:?}: {}",
            text(&out)
        );
        assert!(!d.join("state.db").exists(), "{args:?} created a store");
    }
}

/// What was tried: `connections add`, a scheduler tick (one job queued),
/// `connections remove` and the same `connections add` again, then another
/// tick, all within the queue's 10-minute duplicate-detection window; and a
/// third tick racing the second. What holds: the re-added connection's job
/// is queued (two jobs in all, not one: before the fix the re-added task
/// restarted at version 0, its job had the first one's `MessageId` and the
/// queue dropped it, blocking the connection for the lease time), and the
/// racing tick queues nothing more (ticks stay idempotent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readded_connection_gets_its_job_queued() {
    use syncbridge_core::events::NoEvents;
    use syncbridge_core::scheduler::{SchedulerConfig, tick};
    use syncbridge_localqueue::LocalQueue;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let add = || {
        cli(
            d,
            &[
                "connections",
                "add",
                "--tenant",
                "acme",
                "--id",
                "c1",
                "--provider",
                "sandbox",
                "--base-url",
                "http://127.0.0.1:9",
                "--objects",
                "contacts",
            ],
        )
    };
    assert!(add().status.success());
    let store = SqliteStore::open_in(d).unwrap();
    let queue = LocalQueue::open(d.join("queue.db")).unwrap();
    let clock = syncbridge_core::SystemClock;
    let cfg = SchedulerConfig::default();
    let first = tick(&store, &queue, &clock, &NoEvents, &cfg).await.unwrap();
    assert_eq!(first.enqueued, 1);
    let removed = cli(d, &["connections", "remove", "--id", "c1"]);
    assert!(removed.status.success(), "{}", text(&removed));
    assert!(add().status.success());
    let second = tick(&store, &queue, &clock, &NoEvents, &cfg).await.unwrap();
    assert_eq!(second.enqueued, 1);
    let third = tick(&store, &queue, &clock, &NoEvents, &cfg).await.unwrap();
    assert_eq!(
        third.enqueued, 0,
        "the task is leased: nothing more to send"
    );
    let counts = queue.counts(QueueName::SYNC_INBOUND).unwrap();
    assert_eq!(
        counts.active, 2,
        "the re-added connection's job was dropped as a duplicate: {counts:?}"
    );
}

/// What was tried: a connector definition `mine` (the sandbox's, renamed)
/// in `SYNCBRIDGE_CONNECTORS_DIR`, then `connections add --provider mine`
/// through the CLI. What holds: the CLI knows the definition the handlers
/// load and creates the connection with a task per object it defines.
/// Before the fix the CLI loaded only the built-ins: `no connector named
/// "mine"`.
#[tokio::test]
async fn custom_connector_usable_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let defs = dir.path().join("connectors");
    std::fs::create_dir_all(&defs).unwrap();
    let sandbox = syncbridge_core::connector::registry::BUILTIN
        .iter()
        .find(|(f, _)| *f == "sandbox.toml")
        .unwrap()
        .1;
    let mine = sandbox.replacen("name = \"sandbox\"", "name = \"mine\"", 1);
    assert_ne!(mine, sandbox, "the definition was renamed");
    std::fs::write(defs.join("mine.toml"), mine).unwrap();
    let data = dir.path().join("data");
    let out = std::process::Command::new(bin_dir().join("syncbridge"))
        .arg("--data-dir")
        .arg(&data)
        .args([
            "connections",
            "add",
            "--tenant",
            "acme",
            "--id",
            "m1",
            "--provider",
            "mine",
            "--base-url",
            "http://127.0.0.1:9",
        ])
        .env("SYNCBRIDGE_CONNECTORS_DIR", &defs)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let store = SqliteStore::open_in(&data).unwrap();
    let c = store
        .get_connection(&ConnectionId::parse("m1").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.provider, "mine");
    assert_eq!(store.list_tasks(None).await.unwrap().len(), 3);
}
