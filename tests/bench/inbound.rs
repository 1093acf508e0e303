//! Records per second, end to end: the local sandbox over loopback HTTP →
//! the inbound pipeline (extract, hash, compare) → the embedded SQLite store.
//!
//! Run with: `cargo run --release -p syncbridge-tests --bin bench-inbound [-- RECORDS]`
//! Runs the initial sync of RECORDS contacts (default 100,000) with the shipped
//! sandbox definition (100 records per page, as HubSpot allows) and with pages
//! of 1,000, then an incremental re-run with nothing changed (it re-reads only
//! the lookback window) and a forced full re-read where every record is
//! unchanged; prints records/s for each.

use std::sync::Arc;
use std::time::Instant;

use syncbridge_core::Store;
use syncbridge_core::connector::definition::ConnectorDef;
use syncbridge_core::connector::registry::{BUILTIN, Registry};
use syncbridge_tests::pipeline::{deps, run_once};
use syncbridge_tests::{add_connection, store};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let cfg = syncbridge_sandbox::SandboxConfig {
        records_per_object: n,
        auth_enabled: false,
        max_page_size: 1000,
        ..Default::default()
    };
    let sbx = syncbridge_sandbox::spawn(cfg).await.unwrap();
    println!("{n} contacts, sandbox on {}", sbx.base_url());
    println!(
        "{:<34} {:>10} {:>10} {:>12}",
        "case", "records", "seconds", "records/s"
    );
    for page in [100usize, 1000] {
        let text = BUILTIN
            .iter()
            .find(|(f, _)| *f == "sandbox.toml")
            .unwrap()
            .1
            .replace("limit = \"100\"", &format!("limit = \"{page}\""));
        let mut registry = Registry::default();
        registry.insert(ConnectorDef::from_toml("sandbox.toml", &text).unwrap());
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(store(dir.path()));
        let task = add_connection(&*store, "bench", &sbx.base_url(), &["contacts"], None)
            .await
            .remove(0);
        let deps = deps(store.clone(), registry);
        for label in ["initial sync", "unchanged re-run"] {
            let t0 = Instant::now();
            let run = run_once(&deps, &task).await;
            let secs = t0.elapsed().as_secs_f64();
            // The unchanged re-run only re-reads the lookback window.
            let records = if label == "initial sync" {
                run.counts.created
            } else {
                run.counts.fetched
            };
            assert_eq!(run.status.as_str(), "succeeded", "{:?}", run.error);
            println!(
                "{:<34} {:>10} {:>10.2} {:>12.0}",
                format!("{label}, {page}/page"),
                records,
                secs,
                records as f64 / secs
            );
            if label == "unchanged re-run" {
                // The re-run only fetches the lookback window; report the full-pass cost instead.
                let t = store.get_task(&task.id).await.unwrap().unwrap();
                let mut t2 = t.clone();
                t2.cursor = None;
                t2.version = t.version;
                store.put_task(&t2).await.unwrap();
                let t0 = Instant::now();
                let run = run_once(&deps, &task).await;
                let secs = t0.elapsed().as_secs_f64();
                assert_eq!(run.counts.unchanged, n as u64);
                println!(
                    "{:<34} {:>10} {:>10.2} {:>12.0}",
                    format!("full re-read, all unchanged, {page}/page"),
                    n,
                    secs,
                    n as f64 / secs
                );
            }
        }
    }
}
