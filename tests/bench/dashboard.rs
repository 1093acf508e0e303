//! The admin dashboard at scale, in Debian's chromium, on the embedded
//! default (SQLite store in a temp dir).
//!
//! Run with: `cargo run -p syncbridge-tests --bin bench-dashboard` after
//! `scripts/ui --build` (the dashboard must be built into `sync-api`'s
//! library) — needs node and /usr/bin/chromium, as `scripts/ui --e2e` does.
//!
//! Seeds 10,000 connections across 1,000 tenants (every 100th disabled),
//! one task each and 100,000 runs (10 per connection, one a second going
//! back from now, one in ten failed), makes an admin key and serves
//! `syncbridge_api::router` (the API and the embedded dashboard) on
//! 127.0.0.1. Then `ui/bench/dashboard.mjs` signs in and loads the Overview
//! and the Connections page, 1 cold and 5 warm times each, and reports the
//! time from navigation to interactive (the page's data on screen: the
//! charts, the table's first row), with the gzipped size of the bundle.

use std::time::{Duration, Instant};

use syncbridge_core::apikeys::ApiScope;
use syncbridge_core::model::{Connection, ConnectionStatus, RunCounts, RunStatus, SyncRun};
use syncbridge_core::{ConnectionId, ObjectType, RunId, Store, TenantId, Timestamp};
use syncbridge_functions::{AppState, Settings};
use syncbridge_tests::inbound_task;

const CONNECTIONS: usize = 10_000;
const TENANTS: usize = 1_000;
const RUNS_PER_CONNECTION: usize = 10;

fn connection(c: usize, now: Timestamp) -> Connection {
    Connection {
        id: ConnectionId::parse(format!("conn-{c:05}")).unwrap(),
        tenant: TenantId::parse(format!("tenant-{}", c % TENANTS)).unwrap(),
        provider: "sandbox".into(),
        status: if c % 100 == 99 {
            ConnectionStatus::Disabled
        } else {
            ConnectionStatus::Active
        },
        base_url: None,
        webhook: None,
        settings: Default::default(),
        conflicts: Default::default(),
        created_at: now,
    }
}

async fn seed(store: &dyn Store, now: Timestamp) {
    let t0 = Instant::now();
    for c in 0..CONNECTIONS {
        let conn = connection(c, now);
        store.put_connection(&conn).await.unwrap();
        let t = inbound_task(&conn, ObjectType::parse("contacts").unwrap(), now);
        store.put_task(&t).await.unwrap();
        for n in 0..RUNS_PER_CONNECTION {
            let started_at = now.sub(Duration::from_secs((n * CONNECTIONS + c + 1) as u64));
            let failed = (c + n) % 10 == 3;
            let run = SyncRun {
                id: RunId::parse(format!("run-{}-{n:02}", conn.id.as_str())).unwrap(),
                task: t.id.clone(),
                connection: conn.id.clone(),
                started_at,
                finished_at: Some(started_at.add(Duration::from_secs(5))),
                status: if failed {
                    RunStatus::Failed
                } else {
                    RunStatus::Succeeded
                },
                counts: RunCounts {
                    pages: 1,
                    fetched: 100,
                    created: 10,
                    updated: 5,
                    unchanged: 85,
                    ..Default::default()
                },
                error: failed.then(|| "provider answered 500".to_owned()),
            };
            store.put_run(&run).await.unwrap();
        }
    }
    println!(
        "seeded {CONNECTIONS} connections, {} runs in {:.1} s",
        CONNECTIONS * RUNS_PER_CONNECTION,
        t0.elapsed().as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    assert!(
        syncbridge_api::dashboard::built(),
        "the dashboard is not built into this binary: run scripts/ui --build, then this again"
    );
    let dir = tempfile::tempdir().unwrap();
    let app = AppState::embedded(Settings::for_data_dir(dir.path())).unwrap();
    let now = app.clock.now();
    seed(app.store.as_ref(), now).await;
    let key = syncbridge_api::keys::create(app.store.as_ref(), "bench", ApiScope::Admin, now)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = syncbridge_api::router(app.clone());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let root = syncbridge_tests::repo_root();
    let secret = key.key.expose().to_owned();
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(root.join("ui/bench/dashboard.mjs"))
            .arg(&base)
            .env("BENCH_API_KEY", secret)
            .current_dir(root.join("ui"))
            .status()
            .expect("node runs")
    })
    .await
    .unwrap();
    assert!(status.success(), "ui/bench/dashboard.mjs failed: {status}");
}
