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

use std::time::Instant;

use syncbridge_core::{Store, Timestamp};
use syncbridge_functions::{AppState, Settings};
use syncbridge_tests::fleet::{CONNECTIONS, RUNS_PER_CONNECTION, seed_connection, serve_api};

async fn seed(store: &dyn Store, now: Timestamp) {
    let t0 = Instant::now();
    for c in 0..CONNECTIONS {
        seed_connection(store, c, now).await;
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
    let (base, secret) = serve_api(&app, now).await;
    let root = syncbridge_tests::repo_root();
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
