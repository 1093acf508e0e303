//! Outbound overhead per record, beyond the provider's own latency.
//!
//! Run with: `cargo run --release -p syncbridge-tests --bin bench-outbound [-- RECORDS]`
//!
//! Against the in-process sandbox over loopback, with the real SQLite store
//! and the real durable local queue:
//!
//! - **provider only**: per record, the exact requests a push sends — a
//!   fresh `GET` of the record and a `PATCH` with an idempotency key — made
//!   directly with reqwest. This is the provider's latency as seen from here.
//! - **pipeline**: per record, what the product and the SyncOutboundWorker
//!   do: `submit_change` (compare-and-swap write + enqueue), receive the
//!   message, `handle_push_job` (the same GET and PATCH, the three-way merge,
//!   the commit), complete the message.
//!
//! The overhead is the difference of per-record means (goal ≤ 1 ms): for the
//! worker alone (`handle_push_job`: what SyncOutboundWorker adds; in Azure
//! the host does the receive and complete) and end to end (with
//! `submit_change` and the local queue's receive/complete).
//! Each case runs over distinct records so both do the same provider work.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use syncbridge_core::connector::registry::Registry;
use syncbridge_core::model::PushJob;
use syncbridge_core::pipeline::outbound::{
    ChangeOp, LocalChange, PushOutcome, handle_push_job, submit_change,
};
use syncbridge_core::{ConnectionId, ExternalId, ObjectType, QueueName, Store};
use syncbridge_localqueue::LocalQueue;
use syncbridge_tests::pipeline::{deps, run_once};
use syncbridge_tests::{add_connection, store};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_000);
    let cfg = syncbridge_sandbox::SandboxConfig {
        records_per_object: (2 * n) as usize,
        auth_enabled: false,
        ..Default::default()
    };
    let sbx = syncbridge_sandbox::spawn(cfg).await.unwrap();
    let base = sbx.base_url();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(store(dir.path()));
    let task = add_connection(&*store, "bench", &base, &["contacts"], None)
        .await
        .remove(0);
    let deps = deps(store.clone(), Registry::builtin());
    run_once(&deps, &task).await;
    let queue = LocalQueue::open(dir.path().join("queue.db")).unwrap();
    let http = reqwest::Client::new();

    // Provider only: records 1..=n.
    let t0 = Instant::now();
    for id in 1..=n {
        let r = http
            .get(format!("{base}/crm/v3/objects/contacts/{id}"))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        r.bytes().await.unwrap();
        let r = http
            .patch(format!("{base}/crm/v3/objects/contacts/{id}"))
            .header("Idempotency-Key", format!("direct-{id}"))
            .json(&json!({"properties": {"phone": format!("+1 555 {id:06}")}}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        r.bytes().await.unwrap();
    }
    let provider = t0.elapsed();

    // The pipeline: records n+1..=2n.
    let conn = ConnectionId::parse("bench").unwrap();
    let contacts = ObjectType::parse("contacts").unwrap();
    let (mut submit, mut push, mut worker) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let t0 = Instant::now();
    for id in n + 1..=2 * n {
        let t = Instant::now();
        submit_change(
            &deps,
            &queue,
            &LocalChange {
                connection: conn.clone(),
                object: contacts.clone(),
                op: ChangeOp::Update {
                    id: ExternalId::parse(id.to_string()).unwrap(),
                    fields: json!({"phone": format!("+1 555 {id:06}")})
                        .as_object()
                        .unwrap()
                        .clone(),
                },
            },
        )
        .await
        .unwrap();
        submit += t.elapsed();
        let t = Instant::now();
        let m = queue
            .receive(QueueName::SYNC_OUTBOUND, Duration::from_secs(60))
            .unwrap()
            .unwrap();
        let job: PushJob = serde_json::from_slice(&m.message.body).unwrap();
        let w = Instant::now();
        let report = handle_push_job(&deps, &queue, &job).await.unwrap();
        worker += w.elapsed();
        assert!(
            matches!(report.outcome, PushOutcome::Pushed { fields: 1, .. }),
            "{report:?}"
        );
        queue.complete(&m.lock_token).unwrap();
        push += t.elapsed();
    }
    let pipeline = t0.elapsed();

    let per = |d: Duration| d.as_secs_f64() * 1000.0 / n as f64;
    println!("{n} records per case, sandbox on {base}");
    println!("{:<44} {:>12}", "case", "ms/record");
    println!(
        "{:<44} {:>12.3}",
        "provider only (GET + PATCH, reqwest)",
        per(provider)
    );
    println!(
        "{:<44} {:>12.3}",
        "pipeline (submit + receive + push + complete)",
        per(pipeline)
    );
    println!("{:<44} {:>12.3}", "  of which submit_change", per(submit));
    println!(
        "{:<44} {:>12.3}",
        "  of which receive + handle_push_job + complete",
        per(push)
    );
    println!(
        "{:<44} {:>12.3}",
        "    of which handle_push_job (the worker)",
        per(worker)
    );
    println!(
        "{:<44} {:>12.3}",
        "worker overhead beyond the provider",
        per(worker) - per(provider)
    );
    println!(
        "{:<44} {:>12.3}",
        "end-to-end overhead beyond the provider",
        per(pipeline) - per(provider)
    );
}
